/* libFuzzer target: message parsing and dispatch. Each input is a sequence of lines fed to a
 * fresh session of a server with the demo tools, as a stdio client would send them; the
 * session is then closed (cancelling anything still running). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mcp/mcp_int.h"
#include "mcp/session.h"
#include "tools/tools.h"

static struct mcp_server *srv;

static void discard(void *arg, void *stream, const char *msg, size_t len, bool final)
{
    /* Every message we emit must be one line of JSON. */
    if (memchr(msg, '\n', len) != NULL)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (srv == NULL) {
        srv = mcp_server_new("fuzz", "0");
        mcp_server_set_max_message(srv, 65536);
        mcp_server_set_workers(srv, 2);
        const char *bad;
        if (tools_register(srv, "demo,conformance", &bad) != 0)
            __builtin_trap();
    }
    struct mcp_session_io io = {.send = discard, .arg = NULL};
    struct mcp_session *s = mcp_session_new(srv, &io);
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        if (n > 0)
            mcp_session_feed(s, p, n, NULL);
        p += n + 1;
    }
    mcp_session_close(s);
    return 0;
}
