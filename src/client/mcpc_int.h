/* Private to the MCP client transport: mcpc.c (the loop thread, requests, streams, auth and
 * re-initialization) and mcpc_connect.c (era detection, the handshake, x-mcp-header). */
#ifndef MCPGATE_CLIENT_MCPC_INT_H
#define MCPGATE_CLIENT_MCPC_INT_H

#include <pthread.h>

#include "client/mcpc.h"
#include "client/sse.h"
#include "core/buf.h"

#define MCPC_MAX_MESSAGE (8u << 20)
#define MCPC_AUTH_TRIES 2 /* sends of one request after a 401 before giving up */
#define MCPC_RESUMES 5    /* reconnections of one broken stream */

enum preq_kind {
    PK_REQUEST, /* a JSON-RPC request; the answer comes on its stream (or the SSE stream) */
    PK_POST,    /* a notification or a response: 202 expected */
    PK_GET,     /* the legacy listening stream (Streamable HTTP GET, or the HTTP+SSE stream) */
    PK_LISTEN,  /* modern subscriptions/listen: a request whose stream stays open */
    PK_DELETE,  /* the end of a legacy session */
};

/* What a connect step needs to know of an exchange, beyond its answer. */
struct rawres {
    int err; /* transport error (0: a response arrived) */
    long status;
    char *session_id; /* Mcp-Session-Id of the response */
    char *ctype;
    json_t *msg;  /* the JSON-RPC response, or NULL */
    json_t *body; /* a JSON body that was not our response (error bodies), or NULL */
    char why[300];
};

struct mcpc;
struct preq;
typedef void (*preq_then_fn)(struct mcpc *c, struct preq *p, json_t *resp /* may be NULL */);

struct preq {
    struct mcpc *c; /* back-pointer for the transfer's callbacks */
    enum preq_kind kind;
    uint64_t handle;
    json_int_t wire_id; /* requests */
    char *method;
    json_t *msg; /* the message as sent (owned) */
    mcpc_reply_fn cb;
    void *arg;
    preq_then_fn then;   /* internal requests: called on the loop thread instead of cb */
    struct waiter *sync; /* mcpc_request_sync / connect steps */
    struct rawres *raw;  /* connect steps: the HTTP outcome is reported, not interpreted
                          * (inside sync, or owned when raw_owned) */
    bool raw_owned;
    struct hc_xfer *x; /* the running transfer, or NULL */
    int auth_tries, resumes, failures;
    char *token; /* the bearer token sent (to tell the auth thread which failed) */
    long status;
    char *www; /* WWW-Authenticate of a 401/403 */
    bool sse;
    bool completed; /* the caller has its answer (or error) */
    bool cancelled;
    bool parked;          /* waiting for the auth thread or a re-initialization */
    bool reinit_done;     /* already replayed once after a 404 */
    bool resuming;        /* the transfer is a GET with Last-Event-ID */
    bool use_session;     /* send Mcp-Session-Id (not on initialize) */
    long xfer_timeout_ms; /* a cap on each transfer (connect steps); 0: none */
    struct buf body;      /* a JSON answer being read */
    struct sse_parser sp;
    bool sp_on;
    long long due; /* > 0: start (again) at this time, ms */
    long long opened_at; /* a stream: when its 2xx came (ms) */
    struct preq *next, *prev;
};

/* A caller waiting for an answer (mcpc_request_sync, connect steps). Shared by the caller and
 * the request, freed by whichever lets go last (a caller that timed out may leave first). */
struct waiter {
    int refs;     /* (mu) */
    bool done;    /* (mu) */
    json_t *resp; /* the answer (new reference), or NULL */
    bool want_raw;
    struct rawres raw; /* the HTTP outcome, for connect steps */
};

enum cmd_kind { CMD_SEND, CMD_CANCEL, CMD_STOP, CMD_LISTEN };

struct cmd {
    enum cmd_kind kind;
    struct preq *p;  /* CMD_SEND */
    uint64_t handle; /* CMD_CANCEL */
    char *reason;
    json_t *filter; /* CMD_LISTEN */
    struct cmd *next;
};

struct mcpc {
    struct mcpc_opts o; /* strings and JSON below are owned copies */
    char *url;
    char **headers;
    json_t *client_info, *capabilities;
    char *pinned;
    struct mcpc_events ev;
    void *ev_arg;

    struct hc_multi *m;
    pthread_t loop;
    bool loop_started;
    pthread_mutex_t mu; /* guards cmds, waiters, auth_* and the fields marked (mu) */
    pthread_cond_t cv;
    struct cmd *cmds, *cmds_tail;
    uint64_t next_handle; /* (mu) */
    bool stopping;        /* (mu) */

    /* (mu): written by the loop and connect, read by anyone */
    enum mcpc_era era;
    char proto[32];
    json_t *server_info;
    char *session_id;
    char *post_url;       /* HTTP+SSE: the endpoint event's URL */
    bool endpoint_failed; /* HTTP+SSE: the stream ended before the endpoint event */
    bool get_ready;       /* the listening stream got its answer's headers (or ended) */
    char endpoint_why[300];

    /* loop thread only */
    struct preq *reqs, *reqs_tail; /* in the order they were made */
    json_int_t next_id;
    json_t *init_params;     /* replayed on re-initialization */
    struct preq *get_stream; /* PK_GET or PK_LISTEN in progress (or waiting to reconnect) */
    json_t *listen_filter;
    bool reinit;          /* a re-initialization is in flight: park requests */
    int sse_drops;        /* HTTP+SSE streams in a row that ended soon after opening */
    bool closing;         /* the loop is ending */
    json_t *tool_schemas; /* modern: tool name -> inputSchema with x-mcp-header */
    bool tools_loaded;
    long long next_ping;

    /* the auth thread */
    pthread_t auth_thread;
    bool auth_running;      /* (mu) */
    bool auth_finished;     /* (mu): the loop should collect the result */
    bool auth_refresh_only; /* proactive refresh: nothing is parked */
    long auth_status;
    char *auth_www, *auth_failed;
    int auth_result;
    char auth_why[300];
};

/* ---- mcpc.c, for mcpc_connect.c ---- */
long long mcpc_now_ms(void);
/* A new request (not yet queued). */
struct preq *mcpc_preq_new(struct mcpc *c, enum preq_kind kind, const char *method,
                           json_t *params /* stolen */);
/* Queues p for the loop thread. With wait, waits for the answer (timeout_ms, 0: forever) and
 * returns it in *resp (new reference, may be NULL) and, when raw, the HTTP outcome in *raw:
 * 0, ERR_TIMEOUT or ERR_CANCELLED. */
int mcpc_submit(struct mcpc *c, struct preq *p, bool wait, bool raw, int timeout_ms,
                json_t **resp /* OUT */, struct rawres *rawout /* OUT */);
/* The response to a connect-step exchange, synchronously (raw: HTTP outcome reported). */
int mcpc_raw_call(struct mcpc *c, enum preq_kind kind, const char *method, json_t *params,
                  bool use_session, int timeout_ms, struct rawres *out /* OUT */) ERR_WARN_UNUSED;
void mcpc_rawres_clear(struct rawres *r);
/* Opens (or reopens) the listening stream for the era (loop thread). */
void mcpc_stream_open(struct mcpc *c);

/* ---- mcpc_connect.c ---- */
/* Modern: the x-mcp-header headers of a tools/call, from the cached schemas (array, new). */
json_t *mcpc_tool_headers(struct mcpc *c, json_t *params);
/* Modern: filters a tools/list result in place (tools with invalid annotations dropped) and
 * caches the schemas that carry annotations. */
void mcpc_tools_snoop(struct mcpc *c, json_t *result);
/* The default initialize params. New reference. */
json_t *mcpc_default_init(struct mcpc *c, const char *version);

/* mcpc.c, for mcpc_auth.c: the request list, a request's failure, the 2026-07-28 _meta */
void mcpc_list_add(struct mcpc *c, struct preq *p);
void mcpc_maybe_release(struct mcpc *c, struct preq *p);
void mcpc_fail(struct mcpc *c, struct preq *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void mcpc_inject_meta(struct mcpc *c, struct preq *p);

/* mcpc_auth.c: the auth thread started for p's challenge (or a proactive refresh) unless it
 * runs already; its result collected on the loop; the re-initialization after a lost
 * session (mcpc_reinit_then is its initialize's continuation). */
void mcpc_start_auth(struct mcpc *c, struct preq *p, bool refresh_only);
void mcpc_auth_collect(struct mcpc *c);
void mcpc_start_reinit(struct mcpc *c);
void mcpc_reinit_then(struct mcpc *c, struct preq *ip, json_t *resp);
/* Does p wait for a re-initialization in progress? Everything but the re-initialization's own
 * requests (its initialize, the new stream) does. */
static inline bool mcpc_waits_reinit(const struct mcpc *c, const struct preq *p)
{
    return c->reinit && p->then != mcpc_reinit_then && p->kind != PK_GET;
}

#endif
