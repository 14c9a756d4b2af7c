/* Built-in toolsets that `mcpgate serve --tools NAME` registers. */
#ifndef MCPGATE_TOOLS_TOOLS_H
#define MCPGATE_TOOLS_TOOLS_H

#include "mcpgate/mcpgate.h"

/* Registers a comma-separated list of toolsets ("demo", "conformance"). Returns 0, or
 * MCPGATE_ENOTFOUND naming the unknown set in *bad (borrowed from names' copy; static). */
int tools_register(struct mcp_server *srv, const char *names, const char **bad);

int tools_demo_register(struct mcp_server *srv);
int tools_conformance_register(struct mcp_server *srv);

#endif
