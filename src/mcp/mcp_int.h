/* Private structures of the MCP engine, shared by server.c (registry), session.c (framing,
 * eras, lifecycle), methods.c (the MCP methods), ctx.c (handler context, MRTR state). */
#ifndef MCPGATE_MCP_INT_H
#define MCPGATE_MCP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "core/pool.h"
#include "mcp/jsonrpc.h"
#include "mcp/jsonschema.h"
#include "mcp/session.h"
#include "mcpgate/mcpgate.h"

#define MCP_SERVER_NAME_DEFAULT "mcpgate"
#define MRTR_STATE_TTL_SECONDS 3600

/* A registry entry. Entries are immutable after creation and reference-counted so that a call in
 * flight keeps its tool alive while another thread removes it. */
struct tool {
    atomic_int refs;
    char *name;
    json_t *listing;            /* the Tool object sent in tools/list */
    struct jschema *in_schema;  /* compiled inputSchema */
    struct jschema *out_schema; /* compiled outputSchema, or NULL */
    mcp_tool_fn fn;
    void *udata;
    void (*release)(void *udata); /* set once registered */
    unsigned flags;
    bool param_headers; /* some property carries x-mcp-header (SEP-2243) */
};

struct resource {
    atomic_int refs;
    char *uri;
    json_t *listing;
    mcp_resource_fn fn;
    void *udata;
    void (*release)(void *udata); /* set once registered */
};

struct rtemplate {
    atomic_int refs;
    char *uri_template;
    json_t *listing;
    mcp_resource_fn fn;
    void *udata;
    void (*release)(void *udata); /* set once registered */
};

struct prompt {
    atomic_int refs;
    char *name;
    json_t *listing;
    mcp_prompt_fn fn;
    void *udata;
    void (*release)(void *udata); /* set once registered */
};

/* A growable array of registry entries of one kind (void * for reuse across kinds). */
struct reglist {
    void **items;
    size_t n, cap;
};

struct mcp_server {
    char *name, *version, *title, *instructions;
    unsigned page_size;
    size_t max_message;
    unsigned max_depth;
    unsigned workers;
    long list_ttl_ms;
    unsigned char state_key[32];

    pthread_rwlock_t reg_lock; /* guards the lists below */
    struct reglist tools, resources, templates, prompts;
    mcp_complete_fn complete;
    void *complete_udata;
    mcp_call_hook_fn call_hook;
    void *call_hook_arg;
    mcp_access_fn access;
    void *access_arg;
    mcp_session_end_fn session_end;
    void *session_end_arg;

    pthread_mutex_t watch_mu; /* guards the two below and the hook */
    json_t *watched;          /* resource URI -> subscriptions to it (sessions and listens) */
    mcp_watch_fn watch;
    void *watch_arg;

    json_t *info;                /* serverInfo, built once (immutable once serving) */

    pthread_mutex_t sessions_mu; /* guards the session list and the pool's creation */
    struct mcp_session *sessions;
    struct pool *pool;
};

/* A request being handled (for cancellation and progress). */
struct inflight {
    json_t *id;
    char *key;        /* jsonrpc_id_key(id) */
    void *stream;     /* the transport stream its messages go to */
    bool cancelled;
    bool is_listen;   /* a subscriptions/listen stream */
    json_t *listen_filter; /* what the listen asked for (honoured subset) */
    void (*on_cancel)(void *arg); /* a deferred request's (mcp_ctx_on_cancel), called once */
    void *on_cancel_arg;
    struct inflight *next;
};

/* A server-to-client request waiting for the client's answer (legacy era). */
struct pending {
    char *key;
    json_t *result; /* set when answered (result object or error object) */
    bool is_error;
    bool done;
    struct pending *next;
};

enum session_state { SESSION_NEW, SESSION_INITIALIZED, SESSION_READY };

struct mcp_session {
    struct mcp_server *srv;
    struct mcp_session_io io;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    int refs;
    bool closed;
    bool input_closed; /* no more messages will come: nobody can answer a question */

    enum session_state state;
    char version[16];     /* negotiated legacy revision */
    json_t *client_caps;  /* legacy: from initialize */
    json_t *client_info;
    int log_level;        /* legacy: minimum level sent; 0 (debug) until logging/setLevel */
    json_t *subscriptions; /* legacy resources/subscribe: object of uri -> true */

    struct inflight *inflight;
    struct pending *pending;
    unsigned long long next_out_id;
    unsigned running_jobs;
    /* the in-flight request whose on_cancel runs now (compared, never followed), and the
     * thread running it: finishing that request elsewhere waits for it */
    const struct inflight *cancelling;
    pthread_t cancel_thread;

    unsigned long long key; /* unique in the process (mcp_ctx_session_key) */

    struct mcp_session *next, *prev; /* in srv->sessions */
};

/* The responses of a JSON-RPC batch (2025-03-26), sent as one array when all are in. */
struct batch {
    pthread_mutex_t mu;
    int pending;      /* responses still to come */
    json_t *answers;  /* array */
    void *stream;
};

struct mcp_ctx {
    struct mcp_session *s;
    char *fail_why;            /* mcp_ctx_fail_reason: what a failed handler says, or NULL */
    struct batch *batch;       /* the batch this request came in, or NULL */
    struct inflight *req;      /* NULL for inline methods */
    json_t *id;
    void *stream;
    const char *method;
    bool modern;
    char version[16];
    json_t *client_caps;       /* borrowed from the request (modern) or the session (legacy) */
    json_t *progress_token;    /* borrowed, NULL when absent */
    int log_level;             /* -1: send no log notifications */
    json_t *uri_vars;          /* resource template variables, or NULL */
    struct mcp_identity identity; /* strings owned (copied per request) */

    /* MRTR (modern) */
    json_t *input_responses;   /* object: key -> the client's answer (accumulated) */
    json_t *input_requests;    /* object: key -> {method, params} asked this round */
    json_t *state;             /* the handler's own state */
    const char *missing_cap;   /* a capability mcp_ctx_ask found missing */

    /* tools/call: what finishing needs, kept for mcp_ctx_finish() (methods.c) */
    bool on_pool;              /* the handler runs on a worker thread */
    struct tool *tool;         /* +1 while the call runs */
    json_t *args;              /* +1 */
    struct timespec t0;        /* when the call started (the audit's duration) */
};

/* server.c */
void reg_ref(atomic_int *refs);
struct tool *server_tool_get(struct mcp_server *srv, const char *name); /* +1 ref */
void tool_unref(struct tool *t);
struct prompt *server_prompt_get(struct mcp_server *srv, const char *name);
void prompt_unref(struct prompt *p);
/* Finds a resource or a matching template; *vars gets template variables. +1 ref on either. */
int server_resource_find(struct mcp_server *srv, const char *uri, struct resource **res,
                         struct rtemplate **tpl, json_t **vars);
void resource_unref(struct resource *r);
void rtemplate_unref(struct rtemplate *t);
json_t *server_capabilities(struct mcp_server *srv);
json_t *server_info(struct mcp_server *srv);
struct pool *server_pool(struct mcp_server *srv);
void server_session_link(struct mcp_server *srv, struct mcp_session *s);
/* May the caller see this entry (the access hook, when set)? */
bool server_access(struct mcp_server *srv, const struct mcp_identity *who, const char *kind,
                   const char *name);
void server_session_unlink(struct mcp_server *srv, struct mcp_session *s);
/* Sends a notification to every session (legacy: initialized ones; modern: listens asking for
 * filter_key). uri limits resource updates to subscribers. */
void server_broadcast(struct mcp_server *srv, const char *method, const char *filter_key,
                      const char *uri);
/* Matches uri against an RFC 6570 level-1 template; returns a new object of variables or NULL. */
json_t *uri_template_match(const char *tpl, const char *uri);
/* One subscription to uri more (delta 1) or fewer (-1; ignored for a URI not counted); the
 * watch hook hears the first and the last. Called with the session's mu held, so that the
 * count of a subscription always comes before its removal's. */
void server_watch(struct mcp_server *srv, const char *uri, int delta);

/* session.c */
void session_send(struct mcp_session *s, void *stream, json_t *msg, bool final);
void session_ref(struct mcp_session *s);
void session_unref(struct mcp_session *s);
/* Finishes a request: decorates the result for the era, removes it from the in-flight list,
 * sends it unless cancelled. result or error is stolen. Frees ctx. */
void session_finish(struct mcp_ctx *ctx, json_t *result, json_t *error);
/* Sends a legacy server-to-client request and waits for the answer. */
int session_request_client(struct mcp_ctx *ctx, const char *method, json_t *params,
                           json_t **result);

/* methods.c */
/* Handles a request. Returns with the response sent (or a job queued that will send it). */
void methods_dispatch(struct mcp_ctx *ctx, json_t *params);
json_t *methods_discover_result(struct mcp_server *srv);

/* ctx.c */
struct mcp_ctx *ctx_new(struct mcp_session *s, json_t *id, void *stream, const char *method);
void ctx_free(struct mcp_ctx *ctx);
void ctx_set_identity(struct mcp_ctx *ctx, const struct mcp_identity *who);
/* MRTR requestState: seal the context's accumulated answers and state, bound to method,
 * name and arguments; open verifies and restores them into ctx. */
char *ctx_state_seal(struct mcp_ctx *ctx, const char *name, json_t *args);
int ctx_state_open(struct mcp_ctx *ctx, const char *token, const char *name, json_t *args,
                   const char **why);
int log_level_from_name(const char *name);
const char *log_level_name(int level);

#endif
