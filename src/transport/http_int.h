/* Private to the HTTP transport: http.c (libmicrohttpd glue, the wire protocols) and
 * http_server.c (configuration, sessions table, allow-lists, metrics, timers, drain). */
#ifndef MCPGATE_TRANSPORT_HTTP_INT_H
#define MCPGATE_TRANSPORT_HTTP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "core/buf.h"
#include "mcpgate/mcpgate.h"
#include "oauth/oauth.h"
#include "transport/hstream.h"

enum route {
    ROUTE_MCP, ROUTE_SSE, ROUTE_MESSAGES, ROUTE_HEALTHZ, ROUTE_METRICS, ROUTE_OAUTH, ROUTE_OTHER
};
#define ROUTE_COUNT 7

enum phase { PHASE_BODY = 0, PHASE_ANSWER, PHASE_DONE };

struct MHD_Daemon;
struct hup;
struct MHD_Connection;

/* One HTTP request (libmicrohttpd's con_cls). */
struct req {
    struct http_server *hs;
    struct MHD_Connection *conn;
    const char *method, *url; /* borrowed from libmicrohttpd for the request's life */
    enum route route;
    enum phase phase;
    struct timespec start;
    struct buf body;
    bool too_big;
    struct hstream *st;       /* the response stream (+1), or NULL */
    struct hsession *sess;    /* +1, or NULL */
    unsigned status;
    const char *allow;        /* Allow header of a 405 */
    const char *cors_origin;  /* echoed when allowed */
    bool modern;              /* a 2026-07-28 request */
    bool sse;                 /* answered with an SSE stream */
    bool stream_slot;         /* holds one of max_streams */
    bool sse_owner;           /* the /sse connection of an HTTP+SSE session */
    bool endless;             /* a stream that never ends by itself: GET, /sse, listen */
    bool https;               /* the client's scheme (TLS, or X-Forwarded-Proto via a proxy) */
    char client[64];          /* the client's address (X-Forwarded-For via a trusted proxy) */
    struct oauth_principal who; /* the bearer's identity when OAuth is on */
    bool authed;
    struct req *tnext, *tprev; /* in hs->tracked while streaming */
    uint64_t hup_id;          /* registration with the hang-up watcher, 0 if none */
};

struct http_metrics {
    atomic_ulong requests[ROUTE_COUNT][16]; /* by route and status slot */
    atomic_ulong latency_le[12];            /* cumulative histogram buckets (non-streaming) */
    atomic_ulong latency_count;
    atomic_ullong latency_sum_us;
};

struct http_server {
    struct mcp_server *srv;
    struct mcp_http_options o; /* with defaults filled in */
    struct MHD_Daemon *d;
    struct sockaddr_storage addr;
    unsigned short port;
    char *tls_cert, *tls_key;  /* PEM contents */
    char *base_path;           /* "" */
    char *endpoint_url;        /* where clients reach /mcp */
    char **hosts;              /* allowed Host names, lower case, no port */
    size_t nhosts;
    char **cors;               /* allowed origins; "*" allows all */
    size_t ncors;
    long retry_ms;             /* SSE retry hint */
    size_t stream_limit;       /* bytes buffered per stream before a slow reader is dropped */
    atomic_bool stopping;

    struct mcp_session *stateless; /* every 2026-07-28 request shares it; one stream each */

    pthread_mutex_t mu;        /* the sessions table */
    struct hsession **table;
    size_t table_cap, nsessions;

    atomic_uint streams;       /* open SSE streams (GET, /sse) */
    atomic_uint active;        /* requests in flight */
    pthread_mutex_t tmu;       /* the tracked list */
    struct req *tracked;       /* requests answered by a stream */
    size_t ntracked;

    pthread_t timer;
    bool timer_started;
    pthread_mutex_t timer_mu;
    pthread_cond_t timer_cv;

    struct http_metrics m;

    struct hup *hup;            /* watches waiting connections for the peer hanging up */
    struct oauth_server *oauth; /* NULL: no authentication (--no-auth) */
    json_t *tool_scopes;        /* tool name -> the scope it needs (default: the first offered) */
    char *default_scope;
};

/* Builds the authorization server once the listening address (and so the issuer's default) is
 * known. base_url: scheme://host:port of this server, or the public URL. */
typedef int (*http_auth_init_fn)(void *arg, const char *base_url, struct oauth_server **out);
/* mcp_serve_http, with OAuth when init is given. tool_scopes: "tool=scope,..." or NULL. */
int http_serve(struct mcp_server *srv, const struct mcp_http_options *opts, http_auth_init_fn init,
               void *init_arg, const char *tool_scopes);

/* http_server.c */
int http_server_new(struct mcp_server *srv, const struct mcp_http_options *opts,
                    struct http_server **out);
void http_server_started(struct http_server *hs);
void http_server_drain(struct http_server *hs);
void http_server_free(struct http_server *hs);
bool http_host_allowed(struct http_server *hs, const char *value, bool is_origin);
bool http_cors_allowed(struct http_server *hs, const char *origin);
bool http_header_equals(const char *header_value, const char *want);
bool http_modern_method_known(const char *method);
struct hsession *http_session_create(struct http_server *hs, enum hsession_kind kind); /* +1 */
struct hsession *http_session_find(struct http_server *hs, const char *id);           /* +1 */
struct hsession *http_session_take(struct http_server *hs, const char *id); /* unlinked */
bool http_stream_slot(struct http_server *hs);
void http_stream_release(struct http_server *hs);
void http_streams_track(struct http_server *hs, struct req *r, bool add);
void http_metrics_count(struct http_server *hs, enum route route, unsigned status, double secs);
char *http_metrics_render(struct http_server *hs, size_t *len);

#endif
