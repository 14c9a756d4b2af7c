/* `mcpgate connect`: a local stdio MCP server that is really a remote one. Newline-delimited
 * JSON-RPC on stdin/stdout (stdout carries nothing else), the remote server through mcpc, and
 * a bridge between eras when the two sides speak different ones:
 *
 *  - legacy local client (initialize) <-> modern server: the proxy answers initialize from
 *    server/discover, adds the client's capabilities to every request's _meta, answers ping
 *    and logging/setLevel itself, turns resources/subscribe into subscriptions/listen, and
 *    turns an InputRequiredResult into requests to the client (elicitation, sampling, roots)
 *    whose answers it sends back as inputResponses;
 *  - modern local client (_meta) <-> legacy server: the proxy answers server/discover from
 *    the initialize result, and turns the server's requests in the middle of a call into an
 *    InputRequiredResult whose requestState names the call, answering the server when the
 *    client retries;
 *  - same era: messages pass through with their ids mapped.
 *
 * Errors reach the client as JSON-RPC errors whose message says what to do. */
#ifndef MCPGATE_CLIENT_PROXY_H
#define MCPGATE_CLIENT_PROXY_H

#include <jansson.h>

#include "client/mcpc.h"

struct proxy_opts {
    struct mcpc_opts mcpc;   /* the remote server */
    json_t *ignore_tools;    /* borrowed: array of case-insensitive globs, or NULL */
    int in_fd, out_fd;       /* 0 and 1 */
};

/* Runs until stdin ends. Returns the exit status (0 after EOF). */
int proxy_run(const struct proxy_opts *o);

/* True when a tool name matches one of the globs (case-insensitive; '*' and '?'). */
bool proxy_tool_ignored(json_t *globs, const char *name);
/* Removes the tools whose names match globs from a tools array (in place). */
void proxy_filter_tools(json_t *globs, json_t *tools);

#endif
