/* The MCP client transport: one remote MCP server over Streamable HTTP (both eras) or the
 * legacy HTTP+SSE transport, with OAuth underneath. Used by `mcpgate connect` (the stdio
 * proxy), the command-line client (tools, call) and the gateway's HTTP upstreams.
 *
 * mcpc owns a thread that runs every transfer on one libcurl multi handle; the API is safe
 * from any thread, and every callback runs on that thread (keep them short; never call the
 * *_sync functions from one).
 *
 * Eras (SPEC-NOTES 1-2; 2026-07-28 versioning): by default mcpc_connect probes with
 * server/discover (modern) and falls back to initialize (legacy) when the answer is not a
 * modern one, and from a Streamable HTTP failure (400/404/405) to the HTTP+SSE transport as
 * --transport allows. A pinned protocol version skips the probe.
 *
 * What it does so callers need not:
 *  - wire ids: every request gets an id of mcpc's own; responses come back with that id
 *    (callers map them to theirs);
 *  - legacy: Mcp-Session-Id and MCP-Protocol-Version on every request, the GET stream for
 *    server messages, resumption of broken streams with Last-Event-ID after retry:, a 404 on
 *    the session re-initializes with the same initialize params and replays what was in
 *    flight, DELETE on close;
 *  - modern: the _meta keys (protocolVersion, clientCapabilities, clientInfo) when the caller
 *    left them out, Mcp-Method, Mcp-Name, Mcp-Param-* from tools' x-mcp-header annotations
 *    (tools whose annotations are invalid are dropped from tools/list results), cancellation
 *    by closing the stream;
 *  - OAuth: the bearer token on every request; a 401 or 403 insufficient_scope parks the
 *    request, the auth thread refreshes, signs in or steps up, and the request is sent again
 *    (at most twice); proactive refresh before expiry. */
#ifndef MCPGATE_CLIENT_MCPC_H
#define MCPGATE_CLIENT_MCPC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/http.h"
#include "client/oauthc.h"
#include "core/err.h"

/* JSON-RPC error codes mcpc reports itself (server errors pass through unchanged). */
#define MCPC_ERR_TRANSPORT -32000 /* the server could not be reached, or answered HTTP junk */
#define MCPC_ERR_AUTH -32001      /* not signed in, or the sign-in failed */
#define MCPC_ERR_CLOSED -32002    /* the client is closing */

#define MCPC_MODERN_VERSION "2026-07-28"
#define MCPC_LEGACY_VERSION "2025-11-25"

enum mcpc_transport {
    MCPC_HTTP_FIRST, /* Streamable HTTP, falling back to HTTP+SSE (default) */
    MCPC_SSE_FIRST,  /* HTTP+SSE, falling back to Streamable HTTP */
    MCPC_HTTP_ONLY,
    MCPC_SSE_ONLY,
};

enum mcpc_era {
    MCPC_ERA_NONE,   /* not connected */
    MCPC_ERA_MODERN, /* 2026-07-28 Streamable HTTP, stateless */
    MCPC_ERA_LEGACY, /* initialize handshake over Streamable HTTP */
    MCPC_ERA_SSE,    /* initialize handshake over the 2024-11-05 HTTP+SSE transport */
};

struct mcpc_opts {
    const char *url;
    enum mcpc_transport transport;
    const char *protocol_version;   /* pinned; NULL: probe */
    const char *const *headers;     /* "Name: value", NULL-terminated; may be NULL */
    struct hc_opts http;
    struct oauthc *auth;            /* borrowed; NULL: no authorization */
    json_t *client_info;            /* borrowed; NULL: {"name":"mcpgate","version":...} */
    json_t *capabilities;           /* borrowed; NULL: {} */
    int ping_interval_s;            /* keep-alive; 0: none */
    int connect_timeout_s;          /* each connect step; 0: 30 */
};

struct mcpc_events {
    /* A notification from the server (borrowed). */
    void (*on_notification)(void *arg, json_t *msg);
    /* A request from the server (legacy era: sampling, elicitation, roots, ping); answer it
     * with mcpc_respond. Borrowed. related: the handle of the request on whose stream it
     * came (0: the listening stream). When NULL, mcpc answers -32601 itself. */
    void (*on_request)(void *arg, json_t *msg, uint64_t related);
    /* The connection is gone for good (the server keeps refusing, the session cannot be
     * re-established). */
    void (*on_lost)(void *arg, const char *why);
};

/* A response to a request: {"jsonrpc","id"(mcpc's),"result"|"error"} (borrowed). */
typedef void (*mcpc_reply_fn)(void *arg, json_t *response);

struct mcpc;

int mcpc_new(const struct mcpc_opts *o, const struct mcpc_events *ev, void *ev_arg,
             struct mcpc **out /* OUT */) ERR_WARN_UNUSED;
/* Closes the session (DELETE), ends every transfer (pending requests get MCPC_ERR_CLOSED),
 * stops the thread, frees. NULL is a no-op. Not from a callback. */
void mcpc_free(struct mcpc *c);
/* Did an mcpc_free leave a sign-in thread running (waiting for a browser)? Then what it uses
 * (the oauthc, the token store) must outlive it: the process is ending anyway. */
bool mcpc_left_behind(void);

/* Establishes the era and, in the legacy eras, the session: initialize with init_params
 * (borrowed; NULL: this client's protocol version, capabilities and clientInfo from the
 * options), then notifications/initialized. Blocks (sign-in included). 0, or an error with
 * why: ERR_INVALID when the server refused the credentials (the sign-in failed), ERR_IO and
 * others for the rest. Not from a callback. */
int mcpc_connect(struct mcpc *c, json_t *init_params, char *why, size_t whylen) ERR_WARN_UNUSED;
enum mcpc_era mcpc_era(struct mcpc *c);
/* The protocol version in use (static storage of mcpc; valid until mcpc_free). */
const char *mcpc_protocol_version(struct mcpc *c);
/* What the server said about itself: the initialize result (legacy) or the server/discover
 * result (modern; with serverInfo taken from its _meta). New reference, NULL before connect. */
json_t *mcpc_server_info(struct mcpc *c);

/* Sends a request; cb gets the response (or an error mcpc made), exactly once: with NULL when
 * no answer will come (cancelled, or never sent before mcpc_free), which is when arg may be
 * freed. Not called when mcpc_request fails. params is stolen (NULL: no params). *handle (may
 * be NULL) names it for mcpc_cancel. Any thread. */
int mcpc_request(struct mcpc *c, const char *method, json_t *params, mcpc_reply_fn cb,
                 void *arg, uint64_t *handle /* OUT */) ERR_WARN_UNUSED;
/* The same, waiting up to timeout_ms (0: forever) for the response (new reference).
 * Not from a callback. */
int mcpc_request_sync(struct mcpc *c, const char *method, json_t *params, int timeout_ms,
                      json_t **response /* OUT */) ERR_WARN_UNUSED;
/* Cancels a request: its callback gets no response, only the final NULL (possibly before
 * mcpc_cancel returns, on another thread; or a response already on its way). Legacy:
 * notifications/cancelled is sent; modern: the stream is closed (which is the cancellation). */
void mcpc_cancel(struct mcpc *c, uint64_t handle, const char *reason);
/* Sends a notification (params stolen) or a response to a server request (msg stolen). */
int mcpc_notify(struct mcpc *c, const char *method, json_t *params) ERR_WARN_UNUSED;
int mcpc_respond(struct mcpc *c, json_t *msg) ERR_WARN_UNUSED;

/* Modern era: opens subscriptions/listen with the filter (stolen), reopening it after a drop
 * with backoff; notifications arrive through on_notification. Replaces an earlier one. */
int mcpc_listen(struct mcpc *c, json_t *filter) ERR_WARN_UNUSED;

/* True for the legacy revisions this client speaks (2024-11-05 .. 2025-11-25). */
bool mcpc_version_legacy(const char *v);

/* ---- exposed for tests and fuzzing ---- */

/* The Mcp-Param-* headers of a tools/call (SEP-2243): for each x-mcp-header annotation of
 * input_schema (reachable through "properties" only), "Mcp-Param-<Name>: <value>" when the
 * argument is present; strings as they are unless they need =?base64?...?=, integers in
 * decimal, booleans true/false. Returns an array of header strings (new), or NULL with why
 * when the annotations are invalid (the tool must then be dropped). */
json_t *mcpc_param_headers(json_t *input_schema, json_t *arguments, char *why, size_t whylen);
/* A header value as SEP-2243 carries it: as is, or =?base64?...?= when it holds non-ASCII or
 * control bytes, leading or trailing whitespace, or looks like an encoded value. Caller frees. */
char *mcpc_header_value(const char *s);

#endif
