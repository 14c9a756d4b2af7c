/* libmcpgate: an MCP (Model Context Protocol) server engine that speaks both protocol eras
 * (the legacy initialize handshake, 2024-11-05 .. 2025-11-25, and the stateless 2026-07-28
 * revision) to any transport: stdio here, Streamable HTTP and HTTP+SSE in transport/.
 *
 * Usage:
 *     struct mcp_server *srv = mcp_server_new("my-server", "1.0.0");
 *     struct mcp_tool_def t = {.name = "echo", .description = "Echo the text",
 *                              .input_schema = "{\"type\":\"object\",...}", .handler = echo};
 *     if (mcp_tool_add(srv, &t) != 0) ...
 *     return mcp_serve_stdio(srv);
 *
 * Handlers run on a worker pool, several at once: they must be thread-safe with respect to their
 * own user data. Every JSON value handed to a handler is borrowed for the duration of the call;
 * every value a handler returns through an OUT parameter becomes the engine's.
 *
 * Functions return 0 on success or a negative MCPGATE_E* code. */
#ifndef MCPGATE_MCPGATE_H
#define MCPGATE_MCPGATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes shared with the library internals (src/core/err.h holds the full table). */
#define MCPGATE_EINVALID -3
#define MCPGATE_ENOTFOUND -6
#define MCPGATE_EEXISTS -7
#define MCPGATE_ECANCELLED -14
#define MCPGATE_ETIMEOUT -15
#define MCPGATE_EINPUT_REQUIRED -16 /* return it from a handler when mcp_ctx_ask() returned it */
#define MCPGATE_EUNSUPPORTED -17    /* the client lacks the capability a request needs */
#define MCPGATE_EDEFERRED -20       /* a tool handler answers later: see mcp_ctx_finish() */
#define MCPGATE_EWOULDBLOCK -21     /* an MCP_TOOL_NONBLOCKING handler must wait after all */

const char *mcpgate_version(void);
const char *mcpgate_strerror(int code);

/* ---- Protocol revisions ------------------------------------------------------------------ */

#define MCP_VERSION_LATEST_LEGACY "2025-11-25"
#define MCP_VERSION_MODERN "2026-07-28"

/* ---- Server and registry ----------------------------------------------------------------- */

struct mcp_server; /* the registry: tools, resources, prompts; shared by every session */
struct mcp_ctx;    /* the context of one request, valid during a handler call */

struct mcp_server *mcp_server_new(const char *name, const char *version);
void mcp_server_free(struct mcp_server *srv); /* after every session has ended */

/* Settings; call before serving. */
void mcp_server_set_title(struct mcp_server *srv, const char *title);
void mcp_server_set_instructions(struct mcp_server *srv, const char *instructions);
void mcp_server_set_page_size(struct mcp_server *srv, unsigned n);      /* default 100 */
void mcp_server_set_max_message(struct mcp_server *srv, size_t bytes);  /* default 4 MiB */
void mcp_server_set_max_depth(struct mcp_server *srv, unsigned depth);  /* default 64 */
void mcp_server_set_workers(struct mcp_server *srv, unsigned n);        /* default: cores */
/* The key that integrity-protects MRTR requestState (HMAC-SHA256). Random per process unless
 * set; set it when several instances must accept each other's state. len >= 32. */
int mcp_server_set_state_key(struct mcp_server *srv, const unsigned char *key, size_t len);
/* How long clients may cache list results in the 2026-07-28 era (ttlMs); default 60000. */
void mcp_server_set_list_ttl(struct mcp_server *srv, long ttl_ms);

/* -- Tools -- */

/* A tool handler fills *result with a CallToolResult object ({"content": [...], ...}); build it
 * with the mcp_result_* helpers or by hand. A failure the model should see is a result with
 * isError (mcp_result_error()), not a negative return. Return MCPGATE_EINPUT_REQUIRED when
 * mcp_ctx_ask() returned it, MCPGATE_ECANCELLED when mcp_ctx_cancelled() says so; any other
 * negative return becomes a JSON-RPC internal error. args is always an object. */
typedef int (*mcp_tool_fn)(struct mcp_ctx *ctx, json_t *args, json_t **result /* OUT */,
                           void *udata);

/* Tool flags. */
#define MCP_TOOL_NONBLOCKING 1u /* the handler never waits (no sleep, no I/O wait, no
                                   mcp_ctx_ask): it runs on the thread that received the
                                   request, saving a hand-off to the worker pool. It may
                                   return MCPGATE_EWOULDBLOCK (before doing anything) to be
                                   run again on the pool, where mcp_ctx_on_pool() is true */

struct mcp_tool_def {
    const char *name;          /* 1-128 chars of [A-Za-z0-9_.-]; required */
    const char *title;         /* optional */
    const char *description;   /* optional but strongly advised */
    const char *input_schema;  /* JSON text, a JSON Schema object; NULL: {"type":"object"} */
    const char *output_schema; /* JSON text or NULL; results must then carry structuredContent */
    const char *annotations;   /* JSON text of ToolAnnotations or NULL */
    const char *meta;          /* JSON text of the tool's _meta or NULL */
    const char *icons;         /* JSON text of an Icon array or NULL */
    mcp_tool_fn handler;       /* required */
    void *udata;
    void (*release)(void *udata); /* optional: called with udata once the entry is removed
                                     and no call uses it any more (not when adding fails) */
    unsigned flags;            /* MCP_TOOL_* */
};

/* Adds a tool (the definition is copied). Sessions are told through list_changed. Returns
 * MCPGATE_EEXISTS for a duplicate name, MCPGATE_EINVALID for a bad name or schema. */
int mcp_tool_add(struct mcp_server *srv, const struct mcp_tool_def *def);
int mcp_tool_remove(struct mcp_server *srv, const char *name);

/* -- Resources -- */

/* Fills *contents with an array of TextResourceContents / BlobResourceContents objects, or
 * returns MCPGATE_ENOTFOUND. uri is the one requested; for templates, mcp_ctx_uri_var()
 * gives the values of the template's variables. */
typedef int (*mcp_resource_fn)(struct mcp_ctx *ctx, const char *uri, json_t **contents /* OUT */,
                               void *udata);

struct mcp_resource_def {
    const char *uri;          /* required */
    const char *name;         /* required */
    const char *title;
    const char *description;
    const char *mime_type;
    const char *annotations;  /* JSON text or NULL */
    long long size;           /* bytes, or -1 when unknown */
    mcp_resource_fn handler;  /* required */
    void *udata;
    void (*release)(void *udata); /* optional: called with udata once the entry is removed
                                     and no call uses it any more (not when adding fails) */
};

struct mcp_resource_template_def {
    const char *uri_template; /* RFC 6570 level 1: "file:///{path}", "test://t/{id}/data" */
    const char *name;         /* required */
    const char *title;
    const char *description;
    const char *mime_type;
    mcp_resource_fn handler;  /* required */
    void *udata;
    void (*release)(void *udata); /* optional: called with udata once the entry is removed
                                     and no call uses it any more (not when adding fails) */
};

int mcp_resource_add(struct mcp_server *srv, const struct mcp_resource_def *def);
int mcp_resource_remove(struct mcp_server *srv, const char *uri);
/* MCPGATE_EEXISTS for a template already registered (the same uriTemplate string). */
int mcp_resource_template_add(struct mcp_server *srv, const struct mcp_resource_template_def *d);
int mcp_resource_template_remove(struct mcp_server *srv, const char *uri_template);
/* Tells every session subscribed to uri that it changed (notifications/resources/updated). */
void mcp_resource_updated(struct mcp_server *srv, const char *uri);
/* The same for one session only (its key: mcp_ctx_session_key), if it is subscribed. */
void mcp_resource_updated_in(struct mcp_server *srv, unsigned long long session, const char *uri);
/* Tells every session that a list changed without changing it: what is "tools", "prompts" or
 * "resources" (legacy sessions get notifications/<what>/list_changed; 2026-07-28 listen streams
 * get it when they asked for <what>ListChanged). Adding or removing an entry already does this. */
void mcp_server_notify_list_changed(struct mcp_server *srv, const char *what);
/* Brackets many additions and removals made by this thread: each list that changed is
 * announced once, when the outermost batch ends (begin false). */
void mcp_server_batch(struct mcp_server *srv, bool begin);

/* -- Prompts -- */

/* Fills *result with a GetPromptResult ({"messages": [...]}). Required arguments are checked
 * before the call. */
typedef int (*mcp_prompt_fn)(struct mcp_ctx *ctx, json_t *args, json_t **result /* OUT */,
                             void *udata);

struct mcp_prompt_def {
    const char *name;        /* required */
    const char *title;
    const char *description;
    const char *arguments;   /* JSON text: [{"name", "description", "required"}], or NULL */
    mcp_prompt_fn handler;   /* required */
    void *udata;
    void (*release)(void *udata); /* optional: called with udata once the entry is removed
                                     and no call uses it any more (not when adding fails) */
};

int mcp_prompt_add(struct mcp_server *srv, const struct mcp_prompt_def *def);
int mcp_prompt_remove(struct mcp_server *srv, const char *name);

/* -- Completion -- */

/* ref is {"type": "ref/prompt", "name"} or {"type": "ref/resource", "uri"}; fills *values with
 * an array of strings (at most 100 are sent; the total is reported). */
typedef int (*mcp_complete_fn)(struct mcp_ctx *ctx, json_t *ref, const char *arg_name,
                               const char *arg_value, json_t *context_args,
                               json_t **values /* OUT */, void *udata);
void mcp_completion_set(struct mcp_server *srv, mcp_complete_fn fn, void *udata);
/* The handler set (NULL when none), to chain to it. */
mcp_complete_fn mcp_completion_get(struct mcp_server *srv, void **udata /* OUT */);

/* Called after every tools/call with who called, the tool, the outcome ("ok", "tool_error" for
 * isError results, "error" for JSON-RPC errors, "input_required", "cancelled") and how long it
 * took; for audit trails. Set before serving. */
struct mcp_identity;
typedef void (*mcp_call_hook_fn)(void *arg, const struct mcp_identity *who, const char *tool,
                                 const char *outcome, double seconds);
void mcp_server_set_call_hook(struct mcp_server *srv, mcp_call_hook_fn fn, void *arg);

/* Decides whether a caller may see and use an entry: kind is "tool", "prompt", "resource" or
 * "template", name the tool or prompt name, the resource URI or the URI template. Entries it
 * refuses are left out of lists and answered as unknown. Set before serving. */
typedef bool (*mcp_access_fn)(void *arg, const struct mcp_identity *who, const char *kind,
                              const char *name);
void mcp_server_set_access(struct mcp_server *srv, mcp_access_fn fn, void *arg);

/* Called when a client session (legacy era) ends, with its key (mcp_ctx_session_key). */
typedef void (*mcp_session_end_fn)(void *arg, unsigned long long key);
void mcp_server_set_session_end(struct mcp_server *srv, mcp_session_end_fn fn, void *arg);

/* Called when a resource URI gets its first subscriber (watching true) or loses its last one,
 * counting legacy sessions' resources/subscribe and 2026-07-28 subscriptions/listen streams
 * (until unsubscribed, closed or ended). Runs under an internal lock, so it must be quick and
 * not call the server; setting NULL waits for a call in progress. */
typedef void (*mcp_watch_fn)(void *arg, const char *uri, bool watching);
void mcp_server_set_watch(struct mcp_server *srv, mcp_watch_fn fn, void *arg);
/* The URIs subscribed to now: a new array of strings. */
json_t *mcp_server_watched(struct mcp_server *srv);

/* ---- Inside a handler -------------------------------------------------------------------- */

enum mcp_log_level {
    MCP_LOG_DEBUG, MCP_LOG_INFO, MCP_LOG_NOTICE, MCP_LOG_WARNING,
    MCP_LOG_ERROR, MCP_LOG_CRITICAL, MCP_LOG_ALERT, MCP_LOG_EMERGENCY
};

/* Who is calling. Anonymous on stdio; filled in from the access token on authenticated HTTP. */
struct mcp_identity {
    const char *subject;   /* stable user id, NULL when anonymous */
    const char *username;  /* display name, NULL when anonymous */
    const char *client_id; /* OAuth client, NULL when none */
    const char *scopes;    /* space-separated granted scopes, NULL when none */
};

const struct mcp_identity *mcp_ctx_identity(const struct mcp_ctx *ctx);
/* The client session of the request: a key unique in the process for a legacy session (an
 * initialize handshake, over stdio or HTTP), 0 for a 2026-07-28 request, which has none. */
unsigned long long mcp_ctx_session_key(const struct mcp_ctx *ctx);
const char *mcp_ctx_protocol_version(const struct mcp_ctx *ctx);
bool mcp_ctx_is_modern(const struct mcp_ctx *ctx); /* 2026-07-28 request */
/* The client's capabilities (initialize in the legacy era, _meta per request in the modern). */
json_t *mcp_ctx_client_capabilities(const struct mcp_ctx *ctx);
/* A template variable of the resource being read, or NULL. */
const char *mcp_ctx_uri_var(const struct mcp_ctx *ctx, const char *name);

/* True once the client cancelled the request (or its connection ended). Long handlers poll it
 * and return MCPGATE_ECANCELLED. */
bool mcp_ctx_cancelled(const struct mcp_ctx *ctx);
/* A handler about to wait on something outside (a network call, another process) brackets the
 * wait with mcp_ctx_block(ctx, true) ... mcp_ctx_block(ctx, false): the worker pool then adds
 * threads meanwhile, so waiting handlers do not hold up the others. */
void mcp_ctx_block(struct mcp_ctx *ctx, bool blocking);
/* Sleeps up to ms milliseconds, returning early (MCPGATE_ECANCELLED) if cancelled. */
int mcp_ctx_sleep(struct mcp_ctx *ctx, long ms);
/* True when the handler runs on a worker thread (it may wait), false when an
 * MCP_TOOL_NONBLOCKING handler runs on the thread that received the request. */
bool mcp_ctx_on_pool(const struct mcp_ctx *ctx);

/* Answering later. A tool handler that hands its work to something else (another process, an
 * event loop) returns MCPGATE_EDEFERRED without touching *result; whoever finishes the work
 * calls mcp_ctx_finish() exactly once, from any thread, with what the handler would have
 * returned (rc and result, stolen): the engine validates and sends it, and ctx is gone. Until
 * then ctx stays valid (progress, logging and mcp_ctx_cancelled() work from any thread) and
 * the session waits for it before it closes. mcp_ctx_finish() may run before the handler has
 * returned MCPGATE_EDEFERRED. */
void mcp_ctx_finish(struct mcp_ctx *ctx, int rc, json_t *result);
/* For a deferred request: fn(arg) is called once if the client cancels the request or its
 * connection or session ends before mcp_ctx_finish(); it runs on the engine's thread and may
 * call mcp_ctx_finish() itself. mcp_ctx_finish() on another thread waits for a running fn.
 * Returns MCPGATE_ECANCELLED (fn not kept) if the request is cancelled already. */
int mcp_ctx_on_cancel(struct mcp_ctx *ctx, void (*fn)(void *arg), void *arg);
/* For a deferred request that must now wait (ask the client, say): runs fn(ctx, arg) on the
 * worker pool, where mcp_ctx_on_pool() is true; fn ends it with mcp_ctx_finish(). */
void mcp_ctx_run(struct mcp_ctx *ctx, void (*fn)(struct mcp_ctx *ctx, void *arg), void *arg);

/* The request's _meta.progressToken (a string or an integer; borrowed), or NULL when absent. */
json_t *mcp_ctx_progress_token(const struct mcp_ctx *ctx);
/* Why the handler is about to fail (returning an error code): the client's JSON-RPC error
 * message says it instead of the code's generic words. */
void mcp_ctx_fail_reason(struct mcp_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Sends notifications/progress when the client asked for progress (a progressToken); total
 * < 0 means unknown; message may be NULL. A no-op otherwise. */
void mcp_ctx_progress(struct mcp_ctx *ctx, double progress, double total, const char *message);
/* Sends notifications/message when the client's log level admits it. data is stolen. */
void mcp_ctx_log(struct mcp_ctx *ctx, enum mcp_log_level level, const char *logger, json_t *data);

/* Asks the client something: method is "elicitation/create", "sampling/createMessage" or
 * "roots/list"; params is stolen. Works in both eras:
 *  - legacy: sends the server-to-client request and waits for the answer (*result is the
 *    client's result object, owned by the caller) or for cancellation;
 *  - 2026-07-28 (MRTR): if the client already answered the question named key in an earlier
 *    round, returns that answer at once; otherwise records the question and returns
 *    MCPGATE_EINPUT_REQUIRED, which the handler returns in turn (it may ask further questions
 *    first, to batch them); the engine answers with an InputRequiredResult and calls the handler
 *    again, from the start, when the client retries with its answers.
 * Returns MCPGATE_EUNSUPPORTED when the client lacks the capability (elicitation, sampling,
 * roots): return it from the handler and the client gets the right error. key: [A-Za-z0-9_-],
 * unique within the handler. */
int mcp_ctx_ask(struct mcp_ctx *ctx, const char *key, const char *method, json_t *params,
                json_t **result /* OUT */);

/* MRTR handler state: a JSON value the handler wants back on its next round (kept in the
 * integrity-protected requestState); get returns NULL on a first round. set steals value. */
json_t *mcp_ctx_state_get(const struct mcp_ctx *ctx);
void mcp_ctx_state_set(struct mcp_ctx *ctx, json_t *value);
/* MRTR: drops the client's answer to the question named key (2026-07-28), so that the next
 * mcp_ctx_ask() under key asks again, e.g. when the user declined; a no-op in the legacy era. */
void mcp_ctx_forget(struct mcp_ctx *ctx, const char *key);

/* ---- Result builders --------------------------------------------------------------------- */

json_t *mcp_result_text(const char *text);                       /* {"content":[text]} */
json_t *mcp_result_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
json_t *mcp_content_text(const char *text);
json_t *mcp_content_image(const char *base64, const char *mime_type);
json_t *mcp_content_audio(const char *base64, const char *mime_type);

/* ---- Serving ----------------------------------------------------------------------------- */

/* Serves srv over stdin/stdout (newline-delimited JSON-RPC) until stdin closes, then waits for
 * running handlers (they see cancellation) and returns 0, or a negative code on an I/O error.
 * Logs go to stderr. */
int mcp_serve_stdio(struct mcp_server *srv);

/* Options of the HTTP transport; zero means the default. Strings are borrowed. */
struct mcp_http_options {
    const char *listen;        /* "HOST:PORT" (default "127.0.0.1:8080"; port 0: any free one) */
    const char *public_url;    /* the base URL clients use, e.g. "https://mcp.example.com";
                                  default derived from listen; its host is an allowed Host */
    const char *allowed_hosts; /* comma-separated extra Host names allowed (DNS rebinding) */
    const char *cors_origins;  /* comma-separated browser origins allowed, or "*" */
    const char *tls_cert;      /* PEM files: serve HTTPS */
    const char *tls_key;
    bool trust_proxy;          /* take scheme and client address from X-Forwarded-* */
    size_t max_body;           /* bytes of a request body (default 4 MiB): 413 beyond */
    size_t conn_memory;        /* per-connection buffer, caps the header size (default 16 KiB) */
    unsigned max_connections;  /* default 10000 */
    unsigned max_connections_per_ip; /* default 0: no per-IP cap */
    unsigned max_sessions;     /* default 10000 */
    unsigned max_streams;      /* open SSE streams, default 20000 */
    unsigned request_timeout;  /* seconds of inactivity before a connection is closed (30) */
    unsigned session_idle;     /* seconds before an idle session expires (default 1800) */
    unsigned keepalive;        /* seconds between SSE keep-alive comments (default 15) */
    unsigned threads;          /* HTTP threads (default: one per core) */
    unsigned resume_events;    /* events kept per session for Last-Event-ID (default 256) */
    /* Called once listening, with the MCP endpoint URL (port 0 resolved). */
    void (*on_ready)(void *arg, const char *endpoint_url);
    void *on_ready_arg;
};

/* Serves srv over Streamable HTTP at /mcp (both eras), HTTP+SSE at /sse and /messages,
 * /healthz and /metrics, until SIGINT or SIGTERM; then stops accepting, lets running
 * requests finish (up to 10 s), ends streams and returns 0. Negative code on a start-up
 * error (logged). */
int mcp_serve_http(struct mcp_server *srv, const struct mcp_http_options *opts);

#ifdef __cplusplus
}
#endif

#endif
