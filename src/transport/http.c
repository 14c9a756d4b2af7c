/* The HTTP server (libmicrohttpd; the only file that includes microhttpd.h): routing, the
 * DNS-rebinding checks, CORS and security headers, limits, Streamable HTTP in both eras at
 * /mcp, HTTP+SSE (2024-11-05) at /sse and /messages, /healthz and /metrics, and a graceful
 * stop on SIGTERM.
 *
 * A request runs on an MHD thread until its body is in; then the engine answers inline or from
 * a worker. While the answer is pending the connection is suspended (no thread held); the
 * stream's wake hook resumes it. SSE responses are produced by a content reader that suspends
 * when it has nothing to send. */
#include <arpa/inet.h>
#include <errno.h>
#include <sys/epoll.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "mcp/jsonrpc.h"
#include "mcp/mcp_int.h"
#include "mcp/session.h"
#include "oauth/form.h"
#include "transport/hstream.h"
#include "transport/http_int.h"

/* ---- small helpers ---- */

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static bool has_token(const char *list, const char *token)
{
    if (list == NULL)
        return false;
    size_t tl = strlen(token);
    for (const char *p = list; (p = strcasestr(p, token)) != NULL; p += tl) {
        bool start = p == list || p[-1] == ',' || p[-1] == ' ';
        char e = p[tl];
        if (start && (e == '\0' || e == ',' || e == ';' || e == ' '))
            return true;
    }
    return false;
}

/* ---- responses ---- */

static void add_headers(struct http_server *hs, struct req *r, struct MHD_Response *resp,
                        json_t *own)
{
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (json_object_get(own, "X-Frame-Options") == NULL)
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    if (json_object_get(own, "Content-Security-Policy") == NULL)
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'none'; frame-ancestors 'none'");
    if (json_object_get(own, "Referrer-Policy") == NULL)
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    if (json_object_get(own, "Cache-Control") == NULL)
        MHD_add_response_header(resp, "Cache-Control", "no-store");
    const char *k;
    json_t *v;
    json_object_foreach(own, k, v) {
        if (json_is_string(v))
            MHD_add_response_header(resp, k, json_string_value(v));
    }
    if (r != NULL && r->cors_origin != NULL) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->cors_origin);
        MHD_add_response_header(resp, "Vary", "Origin");
        MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                                "Mcp-Session-Id, WWW-Authenticate, MCP-Protocol-Version");
    }
    if (r != NULL && r->sess != NULL && r->route == ROUTE_MCP)
        MHD_add_response_header(resp, "Mcp-Session-Id", r->sess->id);
}

static void add_common_headers(struct http_server *hs, struct req *r, struct MHD_Response *resp)
{
    add_headers(hs, r, resp, NULL);
}

/* Sends what the authorization server answered. */
static enum MHD_Result send_oauth(struct req *r, struct oauth_response *o)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        o->body_len, o->body, o->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    o->body = NULL;
    if (o->content_type != NULL)
        MHD_add_response_header(resp, "Content-Type", o->content_type);
    /* Discovery documents allow any origin themselves; do not add our CORS on top. */
    bool own_cors = json_object_get(o->headers, "Access-Control-Allow-Origin") != NULL;
    const char *cors = r->cors_origin;
    if (own_cors)
        r->cors_origin = NULL;
    add_headers(r->hs, r, resp, o->headers);
    r->cors_origin = cors;
    r->status = o->status;
    enum MHD_Result ret = MHD_queue_response(r->conn, o->status, resp);
    MHD_destroy_response(resp);
    oauth_response_clear(o);
    return ret;
}

static enum MHD_Result send_body(struct req *r, unsigned status, const char *type, char *body,
                                 size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, body, body ? MHD_RESPMEM_MUST_FREE
                                                        : MHD_RESPMEM_PERSISTENT);
    if (type != NULL)
        MHD_add_response_header(resp, "Content-Type", type);
    add_common_headers(r->hs, r, resp);
    if (status == 405)
        MHD_add_response_header(resp, "Allow", r->allow ? r->allow : "GET, POST, DELETE");
    r->status = status;
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_empty(struct req *r, unsigned status)
{
    return send_body(r, status, NULL, NULL, 0);
}

/* A JSON-RPC error as the whole response (id may be NULL: then it is omitted, never null). */
static enum MHD_Result send_rpc_error(struct req *r, unsigned status, json_t *id, int code,
                                      json_t *data, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static enum MHD_Result send_rpc_error(struct req *r, unsigned status, json_t *id, int code,
                                      json_t *data, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *e = json_pack("{s:i, s:s}", "code", code, "message", msg);
    if (data != NULL)
        json_object_set_new(e, "data", data);
    json_t *m = json_pack("{s:s, s:o}", "jsonrpc", "2.0", "error", e);
    if (id != NULL)
        json_object_set(m, "id", id);
    char *txt = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    log_debug("%s %s -> %u: %s", r->method, r->url, status, msg);
    return send_body(r, status, "application/json", txt, strlen(txt));
}

static void conn_wake(struct hstream *st);

/* ---- the hang-up watcher ----
 * A suspended connection is out of libmicrohttpd's event loop, so a client that leaves is only
 * noticed at the next write. This thread keeps the sockets of waiting responses in an epoll set
 * of its own, watching for the peer hanging up; it then marks the stream gone and wakes it, so
 * the connection ends now (and a 2026-07-28 request is cancelled). */

struct hup_slot {
    struct hstream *st; /* +1, NULL when free */
    int fd;             /* -1 once fired */
    uint32_t gen;
};

struct hup {
    int epfd;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    pthread_mutex_t mu;
    struct hup_slot *slots;
    size_t n, cap;
    size_t *free_list;
    size_t nfree;
};

static void *hup_main(void *arg)
{
    struct hup *h = arg;
    struct epoll_event ev[64];
    while (!atomic_load(&h->stop)) {
        int n = epoll_wait(h->epfd, ev, 64, 500);
        for (int i = 0; i < n; i++) {
            uint64_t id = ev[i].data.u64;
            size_t slot = (size_t)(id & 0xffffffffu);
            struct hstream *st = NULL;
            pthread_mutex_lock(&h->mu);
            if (slot < h->n && h->slots[slot].st != NULL && h->slots[slot].gen == (id >> 32) &&
                h->slots[slot].fd >= 0) {
                st = h->slots[slot].st;
                hstream_ref(st);
                epoll_ctl(h->epfd, EPOLL_CTL_DEL, h->slots[slot].fd, NULL);
                h->slots[slot].fd = -1;
            }
            pthread_mutex_unlock(&h->mu);
            if (st == NULL)
                continue;
            pthread_mutex_lock(&st->mu);
            st->gone = true;
            pthread_mutex_unlock(&st->mu);
            conn_wake(st);
            hstream_unref(st);
        }
    }
    return NULL;
}

static struct hup *hup_new(void)
{
    struct hup *h = xcalloc(1, sizeof(*h));
    pthread_mutex_init(&h->mu, NULL);
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (h->epfd >= 0 && pthread_create(&h->thread, NULL, hup_main, h) == 0)
        h->started = true;
    return h;
}

static void hup_free(struct hup *h)
{
    if (h == NULL)
        return;
    atomic_store(&h->stop, true);
    if (h->started)
        pthread_join(h->thread, NULL);
    for (size_t i = 0; i < h->n; i++)
        hstream_unref(h->slots[i].st);
    if (h->epfd >= 0)
        close(h->epfd);
    free(h->slots);
    free(h->free_list);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

/* Watches r's socket; r->hup_id identifies the registration. */
static void hup_watch(struct req *r, struct hstream *st)
{
    struct hup *h = r->hs->hup;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (h == NULL || !h->started || r->hup_id != 0 || ci == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    size_t slot;
    if (h->nfree > 0) {
        slot = h->free_list[--h->nfree];
    } else {
        if (h->n == h->cap) {
            h->cap = h->cap ? h->cap * 2 : 64;
            h->slots = xrealloc(h->slots, h->cap * sizeof(*h->slots));
            h->free_list = xrealloc(h->free_list, h->cap * sizeof(*h->free_list));
        }
        slot = h->n++;
        h->slots[slot].gen = 0;
    }
    struct hup_slot *s = &h->slots[slot];
    s->gen++;
    s->st = st;
    hstream_ref(st);
    s->fd = ci->connect_fd;
    uint64_t id = (uint64_t)s->gen << 32 | slot;
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLHUP | EPOLLERR, .data.u64 = id};
    if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, s->fd, &ev) != 0) {
        s->fd = -1; /* not watched; the keep-alive still finds the peer gone */
    }
    pthread_mutex_unlock(&h->mu);
    r->hup_id = id;
}

static void hup_unwatch(struct http_server *hs, struct req *r)
{
    struct hup *h = hs->hup;
    if (h == NULL || r->hup_id == 0)
        return;
    size_t slot = (size_t)(r->hup_id & 0xffffffffu);
    struct hstream *st = NULL;
    pthread_mutex_lock(&h->mu);
    if (slot < h->n && h->slots[slot].gen == (r->hup_id >> 32) && h->slots[slot].st != NULL) {
        if (h->slots[slot].fd >= 0)
            epoll_ctl(h->epfd, EPOLL_CTL_DEL, h->slots[slot].fd, NULL);
        st = h->slots[slot].st;
        h->slots[slot].st = NULL;
        h->slots[slot].fd = -1;
        h->free_list[h->nfree++] = slot;
    }
    pthread_mutex_unlock(&h->mu);
    hstream_unref(st);
    r->hup_id = 0;
}

/* ---- streams on connections ---- */

/* The stream's wake hook: resume the connection if it waits for output. */
static void conn_wake(struct hstream *st)
{
    pthread_mutex_lock(&st->mu);
    struct req *r = st->conn;
    if (r != NULL && st->suspended) {
        st->suspended = false;
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&st->mu);
}

static void attach(struct req *r, struct hstream *st)
{
    hstream_ref(st);
    r->st = st;
    pthread_mutex_lock(&st->mu);
    st->conn = r;
    st->detached = false;
    st->wake = conn_wake;
    pthread_mutex_unlock(&st->mu);
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct req *r = cls;
    struct hstream *st = r->st;
    pthread_mutex_lock(&st->mu);
    size_t n = st->out.len < max ? st->out.len : max;
    if (n > 0) {
        memcpy(buf, st->out.data, n);
        buf_consume(&st->out, n);
        pthread_mutex_unlock(&st->mu);
        return (ssize_t)n;
    }
    if (st->final && !st->standalone) {
        pthread_mutex_unlock(&st->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    if (st->gone) {
        pthread_mutex_unlock(&st->mu);
        return MHD_CONTENT_READER_END_WITH_ERROR; /* the peer left: close now */
    }
    st->suspended = true;
    MHD_suspend_connection(r->conn);
    pthread_mutex_unlock(&st->mu);
    return 0;
}

/* Answers from the stream once it has a shape: JSON, or an SSE response left open. */
static enum MHD_Result respond_from_stream(struct req *r)
{
    struct hstream *st = r->st;
    pthread_mutex_lock(&st->mu);
    enum hstream_mode mode = st->mode;
    if (mode == HSTREAM_PENDING && atomic_load(&r->hs->stopping)) {
        pthread_mutex_unlock(&st->mu);
        return send_rpc_error(r, 503, NULL, -32000, NULL, "Service Unavailable: shutting down");
    }
    if (mode == HSTREAM_PENDING && st->gone) {
        pthread_mutex_unlock(&st->mu);
        return MHD_NO; /* the peer left while we waited: close the connection */
    }
    if (mode == HSTREAM_PENDING) {
        /* Nothing yet: wait without holding a thread. */
        st->suspended = true;
        MHD_suspend_connection(r->conn);
        pthread_mutex_unlock(&st->mu);
        hup_watch(r, st);
        return MHD_YES;
    }
    if (mode == HSTREAM_JSON) {
        size_t len = 0;
        char *body = buf_steal(&st->out, &len);
        int code = st->error_code;
        pthread_mutex_unlock(&st->mu);
        /* Error codes that the transport spec ties to an HTTP status. */
        unsigned status = 200;
        if (code == JSONRPC_PARSE_ERROR || code == JSONRPC_INVALID_REQUEST ||
            code == MCP_HEADER_MISMATCH || code == MCP_MISSING_CAPABILITY ||
            code == MCP_UNSUPPORTED_VERSION)
            status = 400;
        else if (code == JSONRPC_METHOD_NOT_FOUND && r->modern)
            status = 404;
        return send_body(r, status, "application/json", body, len);
    }
    pthread_mutex_unlock(&st->mu);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 2048, sse_reader, r, NULL);
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    add_common_headers(r->hs, r, resp);
    r->status = 200;
    r->sse = true;
    http_streams_track(r->hs, r, true);
    hup_watch(r, st);
    enum MHD_Result ret = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---- who is asking ---- */

/* The client's address and scheme: the socket's, or, behind a trusted proxy, what it says in
 * X-Forwarded-For (the first, i.e. original, client) and X-Forwarded-Proto. */
static void identify_client(struct req *r)
{
    struct http_server *hs = r->hs;
    r->https = hs->tls_cert != NULL;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(r->client, sizeof(r->client), "?");
    if (ci != NULL && ci->client_addr != NULL) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->client,
                      sizeof(r->client));
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->client,
                      sizeof(r->client));
    }
    if (!hs->o.trust_proxy)
        return;
    const char *xff = header(r->conn, "X-Forwarded-For");
    if (xff != NULL) {
        while (*xff == ' ')
            xff++;
        size_t n = strcspn(xff, ", ");
        if (n > 0 && n < sizeof(r->client))
            snprintf(r->client, sizeof(r->client), "%.*s", (int)n, xff);
    }
    const char *proto = header(r->conn, "X-Forwarded-Proto");
    if (proto != NULL)
        r->https = strncasecmp(proto, "https", 5) == 0;
}

/* ---- the checks every request passes first ---- */

/* DNS-rebinding protection: the Host must be one we serve, and an Origin, when present, one we
 * serve or one allowed for CORS. */
static enum MHD_Result count_host(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0)
        ++*(int *)cls;
    return MHD_YES;
}

static enum MHD_Result check_origin(struct req *r, bool *ok)
{
    struct http_server *hs = r->hs;
    const char *host = header(r->conn, MHD_HTTP_HEADER_HOST);
    const char *origin = header(r->conn, "Origin");
    const char *fwd_host = hs->o.trust_proxy ? header(r->conn, "X-Forwarded-Host") : NULL;
    if (fwd_host != NULL)
        host = fwd_host; /* the proxy says which name the client used */
    *ok = false;
    int nhost = 0;
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_host, &nhost);
    if (nhost > 1) /* RFC 9112 3.2 */
        return send_rpc_error(r, 400, NULL, -32000, NULL, "Bad Request: more than one Host header");
    if (host == NULL || !http_host_allowed(hs, host, false)) {
        log_info("refused %s %s from %s: Host '%.80s' is not served here (DNS rebinding "
                 "protection)",
                 r->method, r->url, r->client, host ? host : "(none)");
        return send_rpc_error(r, 403, NULL, -32000, NULL, "Forbidden: invalid Host header '%.80s'",
                              host ? host : "");
    }
    bool public_doc = strncmp(r->url, "/.well-known/", 13) == 0 || strcmp(r->url, "/jwks") == 0 ||
                      strstr(r->url, "/.well-known/") != NULL;
    if (origin != NULL && !public_doc) {
        if (http_cors_allowed(hs, origin)) {
            r->cors_origin = origin;
        } else if (!http_host_allowed(hs, origin, true)) {
            log_info("refused %s %s from %s: Origin '%.80s' is not allowed", r->method, r->url,
                     r->client, origin);
            return send_rpc_error(r, 403, NULL, -32000, NULL, "Forbidden: invalid Origin '%.80s'",
                                  origin);
        }
    }
    *ok = true;
    return MHD_YES;
}

static enum MHD_Result preflight(struct req *r)
{
    if (r->cors_origin == NULL)
        return send_empty(r, 403);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    add_common_headers(r->hs, r, resp);
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            "Content-Type, Accept, Authorization, Mcp-Session-Id, "
                            "MCP-Protocol-Version, Mcp-Method, Mcp-Name, Last-Event-ID");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    r->status = 204;
    enum MHD_Result ret = MHD_queue_response(r->conn, 204, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---- /mcp ---- */

static const char *const legacy_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26",
                                              "2024-11-05"};

static bool legacy_version(const char *v)
{
    for (size_t i = 0; i < sizeof(legacy_versions) / sizeof(*legacy_versions); i++) {
        if (strcmp(v, legacy_versions[i]) == 0)
            return true;
    }
    return false;
}

/* Counts what in a parsed message or batch gets an answer: everything but notifications and
 * responses (invalid messages are answered with an error). */
static size_t count_requests(json_t *msg)
{
    if (json_is_object(msg)) {
        bool method = json_object_get(msg, "method") != NULL;
        bool id = json_object_get(msg, "id") != NULL;
        bool response = json_object_get(msg, "result") != NULL ||
                        json_object_get(msg, "error") != NULL;
        return !((method && !id) || (!method && response));
    }
    if (!json_is_array(msg))
        return 1;
    size_t n = 0, i;
    json_t *m;
    json_array_foreach(msg, i, m) n += count_requests(m);
    return n;
}

/* The engine's view of who is asking (NULL when OAuth is off). */
static const struct mcp_identity *identity_of(struct req *r, struct mcp_identity *buf)
{
    if (!r->authed)
        return NULL;
    buf->subject = r->who.subject;
    buf->username = r->who.username;
    buf->client_id = r->who.client_id;
    buf->scopes = r->who.scope;
    return buf;
}

/* The scope a tool needs (per-tool configuration, else the default scope). */
static const char *tool_scope(struct http_server *hs, const char *tool)
{
    const char *s = json_string_value(json_object_get(hs->tool_scopes, tool));
    if (s != NULL)
        return s;
    /* "prefix*" entries: the gateway's upstream__* */
    const char *k;
    json_t *v;
    json_object_foreach (hs->tool_scopes, k, v) {
        size_t n = strlen(k);
        if (n > 1 && k[n - 1] == '*' && strncmp(tool, k, n - 1) == 0)
            return json_string_value(v);
    }
    return hs->default_scope;
}

/* A tools/call whose token lacks the tool's scope gets 403 insufficient_scope (step-up). */
static bool scope_refused(struct req *r, json_t *msg, enum MHD_Result *ret)
{
    struct http_server *hs = r->hs;
    if (!r->authed || !json_is_object(msg))
        return false;
    const char *method = json_string_value(json_object_get(msg, "method"));
    if (method == NULL || strcmp(method, "tools/call") != 0)
        return false;
    const char *tool = json_string_value(json_object_get(json_object_get(msg, "params"), "name"));
    if (tool == NULL)
        return false;
    const char *need = tool_scope(hs, tool);
    if (oauth_scope_has(hs->oauth, r->who.scope, need))
        return false;
    log_info("tools/call %.80s refused for %s: needs scope %s (granted: '%s')", tool,
             r->who.subject, need, r->who.scope);
    struct oauth_response o = {0};
    oauth_insufficient_scope(hs->oauth, need, &o);
    *ret = send_oauth(r, &o);
    return true;
}

/* Feeds body to the engine session ms on a new stream of r, then answers. */
static enum MHD_Result feed_and_answer(struct req *r, json_t *msg, struct mcp_session *ms,
                                       struct hsession *sess, size_t nrequests, bool modern)
{
    struct http_server *hs = r->hs;
    struct mcp_identity idbuf;
    const struct mcp_identity *who = identity_of(r, &idbuf);
    enum MHD_Result refused;
    if (scope_refused(r, msg, &refused))
        return refused;
    if (nrequests == 0) {
        /* Notifications and responses only: accepted, no body. */
        mcp_session_feed_parsed(ms, msg, NULL, who);
        return send_empty(r, 202);
    }
    struct hstream *st = hstream_new(sess, hs->stream_limit);
    st->cancel_on_close = modern; /* a batch's answers arrive as one array: one final */
    if (sess != NULL)
        hsession_add_stream(sess, st);
    attach(r, st);
    hstream_unref(st); /* r holds it now (and the session's table, when there is one) */
    mcp_session_feed_parsed(ms, msg, st, who);
    buf_free(&r->body);
    r->phase = PHASE_ANSWER;
    return respond_from_stream(r);
}

/* String(value) as a JavaScript client would put it in a header. */
static char *arg_string(json_t *v)
{
    if (json_is_string(v))
        return xstrdup(json_string_value(v));
    if (json_is_integer(v))
        return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    if (json_is_real(v)) {
        for (int prec = 15; prec <= 17; prec++) {
            char *t = xasprintf("%.*g", prec, json_real_value(v));
            if (strtod(t, NULL) == json_real_value(v))
                return t;
            free(t);
        }
    }
    if (json_is_boolean(v))
        return xstrdup(json_is_true(v) ? "true" : "false");
    return NULL;
}

/* SEP-2243: arguments a tool marks with x-mcp-header travel in Mcp-Param-<Name> headers too
 * (so that proxies can route on them); the two must agree. Returns NULL when they do, else
 * what is wrong. */
static const char *check_param_headers(struct req *r, json_t *params, char *why, size_t whylen)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    struct tool *t = name ? server_tool_get(r->hs->srv, name) : NULL;
    if (t == NULL)
        return NULL; /* the engine answers unknown tools */
    if (!t->param_headers) {
        tool_unref(t);
        return NULL;
    }
    json_t *props = json_object_get(json_object_get(t->listing, "inputSchema"), "properties");
    json_t *args = json_object_get(params, "arguments");
    const char *key;
    json_t *prop;
    const char *bad = NULL;
    json_object_foreach(props, key, prop) {
        const char *hname = json_string_value(json_object_get(prop, "x-mcp-header"));
        json_t *v = json_object_get(args, key);
        if (hname == NULL || v == NULL || json_is_null(v))
            continue;
        char full[160];
        snprintf(full, sizeof(full), "Mcp-Param-%.64s", hname);
        const char *hv = header(r->conn, full);
        char *want = arg_string(v);
        if (hv == NULL) {
            snprintf(why, whylen, "header %.80s is required (it carries argument '%.40s')", full, key);
            bad = why;
        } else {
            while (*hv == ' ' || *hv == '\t')
                hv++;
            size_t n = strlen(hv);
            while (n > 0 && (hv[n - 1] == ' ' || hv[n - 1] == '\t'))
                n--;
            char *got = NULL;
            if (n >= 12 && strncmp(hv, "=?base64?", 9) == 0 && strncmp(hv + n - 2, "?=", 2) == 0) {
                unsigned char *raw = NULL;
                size_t rawlen = 0;
                if (b64_decode_strict(hv + 9, n - 11, &raw, &rawlen) != 0 ||
                    jsonrpc_scan((const char *)raw, rawlen, 1, NULL) != 0) {
                    snprintf(why, whylen, "header %.80s is not valid =?base64?...?= UTF-8", full);
                    bad = why;
                } else {
                    got = xstrndup((const char *)raw, rawlen);
                }
                free(raw);
            } else {
                got = xstrndup(hv, n);
            }
            if (bad == NULL && (want == NULL || got == NULL || strcmp(want, got) != 0)) {
                snprintf(why, whylen, "header %.80s does not match argument '%.40s'", full, key);
                bad = why;
            }
            free(got);
        }
        free(want);
        if (bad != NULL)
            break;
    }
    tool_unref(t);
    return bad;
}

/* A session may only be used by the subject that opened it. */
static bool session_owned(struct req *r, struct hsession *s)
{
    if (!r->authed || s->owner == NULL)
        return true;
    return strcmp(s->owner, r->who.subject) == 0;
}

static enum MHD_Result mcp_post_modern(struct req *r, json_t *msg, const char *hv)
{
    struct http_server *hs = r->hs;
    json_t *id = json_is_object(msg) ? json_object_get(msg, "id") : NULL;
    if (id != NULL && !json_is_string(id) && !json_is_integer(id))
        id = NULL;
    if (!json_is_object(msg))
        return send_rpc_error(r, 400, NULL, JSONRPC_INVALID_REQUEST, NULL,
                              "Invalid Request: protocol %s takes one message per POST, not a "
                              "batch",
                              MCP_VERSION_MODERN);
    const char *method = json_string_value(json_object_get(msg, "method"));
    if (method == NULL || id == NULL) /* notifications and responses: nothing to route */
        return feed_and_answer(r, msg, hs->stateless, NULL, 0, true);
    json_t *params = json_object_get(msg, "params");
    json_t *meta = json_object_get(params, "_meta");
    json_t *pv = json_object_get(meta, "io.modelcontextprotocol/protocolVersion");
    json_t *caps = json_object_get(meta, "io.modelcontextprotocol/clientCapabilities");
    if (!json_is_string(pv) || !json_is_object(caps))
        return send_rpc_error(r, 400, id, JSONRPC_INVALID_PARAMS, NULL,
                              "Invalid params: params._meta needs "
                              "\"io.modelcontextprotocol/protocolVersion\" (a string) and "
                              "\"io.modelcontextprotocol/clientCapabilities\" (an object)");
    if (strcmp(json_string_value(pv), hv) != 0)
        return send_rpc_error(r, 400, id, MCP_HEADER_MISMATCH, NULL,
                              "Header mismatch: MCP-Protocol-Version is '%.40s' but "
                              "params._meta says '%.40s'",
                              hv, json_string_value(pv));
    if (strcmp(hv, MCP_VERSION_MODERN) != 0) {
        json_t *data = json_pack("{s:[s], s:s}", "supported", MCP_VERSION_MODERN, "requested", hv);
        return send_rpc_error(r, 400, id, MCP_UNSUPPORTED_VERSION, data,
                              "Unsupported protocol version '%.40s' (supported: %s; the legacy "
                              "revisions through initialize)",
                              hv, MCP_VERSION_MODERN);
    }
    const char *hm = header(r->conn, "Mcp-Method");
    if (hm == NULL || !http_header_equals(hm, method))
        return send_rpc_error(r, 400, id, MCP_HEADER_MISMATCH, NULL,
                              "Header mismatch: Mcp-Method must be present and equal the body's "
                              "method '%.80s'",
                              method);
    const char *name_key = strcmp(method, "resources/read") == 0 ? "uri"
                           : (strcmp(method, "tools/call") == 0 ||
                              strcmp(method, "prompts/get") == 0)
                               ? "name"
                               : NULL;
    if (name_key != NULL) {
        const char *want = json_string_value(json_object_get(params, name_key));
        const char *hn = header(r->conn, "Mcp-Name");
        if (want != NULL && (hn == NULL || !http_header_equals(hn, want)))
            return send_rpc_error(r, 400, id, MCP_HEADER_MISMATCH, NULL,
                                  "Header mismatch: Mcp-Name must be present and equal "
                                  "params.%s",
                                  name_key);
    }
    char why[200];
    if (strcmp(method, "tools/call") == 0 && check_param_headers(r, params, why, sizeof(why)))
        return send_rpc_error(r, 400, id, MCP_HEADER_MISMATCH, NULL, "Header mismatch: %s", why);
    if (!http_modern_method_known(method))
        return send_rpc_error(r, 404, id, JSONRPC_METHOD_NOT_FOUND, NULL,
                              "Method not found: %.80s (protocol %s)", method,
                              MCP_VERSION_MODERN);
    r->modern = true;
    r->endless = strcmp(method, "subscriptions/listen") == 0;
    return feed_and_answer(r, msg, hs->stateless, NULL, 1, true);
}

static enum MHD_Result mcp_post_legacy(struct req *r, json_t *msg, const char *hv);

static enum MHD_Result mcp_post(struct req *r)
{
    struct http_server *hs = r->hs;
    const char *ct = header(r->conn, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *accept = header(r->conn, MHD_HTTP_HEADER_ACCEPT);
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0)
        return send_rpc_error(r, 415, NULL, JSONRPC_INVALID_REQUEST, NULL,
                              "Unsupported Media Type: Content-Type must be application/json");
    if (!has_token(accept, "*/*") &&
        !(has_token(accept, "application/json") && has_token(accept, "text/event-stream")))
        return send_rpc_error(r, 406, NULL, JSONRPC_INVALID_REQUEST, NULL,
                              "Not Acceptable: Accept must list application/json and "
                              "text/event-stream");
    struct jsonrpc_fail fail;
    json_t *msg = NULL;
    if (jsonrpc_parse(r->body.data, r->body.len, hs->srv->max_message, hs->srv->max_depth, &msg,
                      &fail) != 0)
        return send_rpc_error(r, 400, NULL, fail.code, NULL, "%s", fail.message);

    enum MHD_Result ret;
    if (json_is_array(msg) && json_array_size(msg) == 0) {
        json_decref(msg);
        return send_rpc_error(r, 400, NULL, JSONRPC_INVALID_REQUEST, NULL,
                              "Invalid Request: empty batch");
    }
    const char *hv = header(r->conn, "MCP-Protocol-Version");
    if (hv != NULL && !legacy_version(hv) && strcmp(hv, MCP_VERSION_MODERN) != 0 &&
        header(r->conn, "Mcp-Session-Id") != NULL) {
        /* A session (legacy era) with a version header we do not speak at all. */
        json_t *id = json_is_object(msg) ? json_object_get(msg, "id") : NULL;
        json_t *data = json_pack("{s:[s,s,s,s,s], s:s}", "supported", MCP_VERSION_MODERN,
                                 "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05",
                                 "requested", hv);
        enum MHD_Result ret2 = send_rpc_error(
            r, 400, json_is_string(id) || json_is_integer(id) ? id : NULL,
            MCP_UNSUPPORTED_VERSION, data,
            "Unsupported protocol version '%.40s' in MCP-Protocol-Version (this session "
            "negotiated a legacy revision)",
            hv);
        json_decref(msg);
        return ret2;
    }
    if (hv != NULL && !legacy_version(hv)) {
        ret = mcp_post_modern(r, msg, hv);
        json_decref(msg);
        return ret;
    }
    ret = mcp_post_legacy(r, msg, hv);
    json_decref(msg);
    return ret;
}

/* The legacy era: sessions. */
static enum MHD_Result mcp_post_legacy(struct req *r, json_t *msg, const char *hv)
{
    struct http_server *hs = r->hs;
    const char *sid = header(r->conn, "Mcp-Session-Id");
    bool init = json_is_object(msg) &&
                strcmp(json_string_value(json_object_get(msg, "method")) ?: "", "initialize") == 0;
    size_t nreq = count_requests(msg);
    json_t *meta_pv = json_object_get(json_object_get(json_object_get(msg, "params"), "_meta"),
                                      "io.modelcontextprotocol/protocolVersion");
    if (hv == NULL && sid == NULL && !init && json_is_object(msg) && meta_pv != NULL) {
        /* A 2026-07-28 request without its header: say what is missing. */
        return send_rpc_error(r, 400, NULL, MCP_HEADER_MISMATCH, NULL,
                              "Header mismatch: a %s request needs the MCP-Protocol-Version "
                              "header",
                              MCP_VERSION_MODERN);
    }
    if (init && sid == NULL) {
        struct hsession *s = http_session_create(hs, HSESSION_STREAMABLE);
        if (s == NULL)
            return send_rpc_error(r, 503, NULL, -32000, NULL,
                                  "Service Unavailable: too many sessions (limit %u)",
                                  hs->o.max_sessions);
        r->sess = s;
        if (r->authed)
            s->owner = xstrdup(r->who.subject);
        return feed_and_answer(r, msg, s->ms, s, nreq, false);
    }
    if (sid == NULL)
        return send_rpc_error(r, 400, NULL, -32000, NULL,
                              "Bad Request: Mcp-Session-Id header is required (send initialize "
                              "first)");
    struct hsession *s = http_session_find(hs, sid);
    if (s == NULL)
        return send_rpc_error(r, 404, NULL, -32001,
                              NULL, "Session not found: it expired or was ended; initialize again");
    r->sess = s;
    if (!session_owned(r, s))
        return send_rpc_error(r, 403, NULL, -32000, NULL,
                              "Forbidden: this session belongs to another user");
    if (hv != NULL && s->ms != NULL) {
        /* MCP-Protocol-Version must be the negotiated one. */
        const char *neg = s->ms->version;
        if (neg[0] != '\0' && strcmp(neg, hv) != 0)
            return send_rpc_error(r, 400, NULL, JSONRPC_INVALID_REQUEST, NULL,
                                  "Bad Request: MCP-Protocol-Version '%.40s' differs from the "
                                  "negotiated '%s'",
                                  hv, neg);
    }
    if (s->ms == NULL)
        return send_rpc_error(r, 404, NULL, -32001, NULL, "Session not found: it was ended");
    return feed_and_answer(r, msg, s->ms, s, nreq, false);
}

static enum MHD_Result mcp_get(struct req *r)
{
    struct http_server *hs = r->hs;
    const char *hv = header(r->conn, "MCP-Protocol-Version");
    if (hv != NULL && !legacy_version(hv)) {
        r->allow = "POST";
        return send_rpc_error(r, 405, NULL, -32000, NULL,
                              "Method Not Allowed: protocol %s has no GET stream; use "
                              "subscriptions/listen",
                              MCP_VERSION_MODERN);
    }
    if (!has_token(header(r->conn, MHD_HTTP_HEADER_ACCEPT), "text/event-stream"))
        return send_rpc_error(r, 406, NULL, -32000, NULL,
                              "Not Acceptable: Accept must list text/event-stream");
    const char *sid = header(r->conn, "Mcp-Session-Id");
    if (sid == NULL)
        return send_rpc_error(r, 400, NULL, -32000, NULL,
                              "Bad Request: Mcp-Session-Id header is required");
    struct hsession *s = http_session_find(hs, sid);
    if (s == NULL)
        return send_rpc_error(r, 404, NULL, -32001, NULL, "Session not found");
    r->sess = s; /* released when the request completes */
    if (s->ms == NULL)
        return send_rpc_error(r, 404, NULL, -32001, NULL, "Session not found");
    if (!session_owned(r, s))
        return send_rpc_error(r, 403, NULL, -32000, NULL,
                              "Forbidden: this session belongs to another user");
    if (!http_stream_slot(hs))
        return send_rpc_error(r, 503, NULL, -32000, NULL,
                              "Service Unavailable: too many open streams");
    struct hstream *st = hstream_new(s, hs->stream_limit);
    const char *last = header(r->conn, "Last-Event-ID");
    if (last != NULL) {
        uint64_t sid_n, seq;
        if (hevent_id_parse(last, &sid_n, &seq) != 0 || hsession_resume(s, st, sid_n, seq) != 0) {
            hstream_unref(st);
            http_stream_release(hs);
            return send_rpc_error(r, 400, NULL, -32000, NULL,
                                  "Bad Request: Last-Event-ID '%.60s' names no event this session "
                                  "still has",
                                  last);
        }
    } else {
        pthread_mutex_lock(&s->mu);
        bool busy = s->get != NULL;
        pthread_mutex_unlock(&s->mu);
        if (busy) {
            hstream_unref(st);
            http_stream_release(hs);
            return send_rpc_error(r, 409, NULL, -32000, NULL,
                                  "Conflict: this session already has a GET stream open");
        }
        st->standalone = true;
        hsession_add_stream(s, st);
        hstream_start_sse(st, hs->retry_ms, true);
    }
    r->stream_slot = true;
    r->endless = true;
    attach(r, st);
    hstream_unref(st);
    r->phase = PHASE_ANSWER;
    return respond_from_stream(r);
}

static enum MHD_Result mcp_delete(struct req *r)
{
    const char *hv = header(r->conn, "MCP-Protocol-Version");
    if (hv != NULL && !legacy_version(hv)) {
        r->allow = "POST";
        return send_rpc_error(r, 405, NULL, -32000, NULL,
                              "Method Not Allowed: protocol %s has no sessions to delete",
                              MCP_VERSION_MODERN);
    }
    const char *sid = header(r->conn, "Mcp-Session-Id");
    if (sid == NULL)
        return send_rpc_error(r, 400, NULL, -32000, NULL,
                              "Bad Request: Mcp-Session-Id header is required");
    struct hsession *s = http_session_find(r->hs, sid);
    if (s == NULL)
        return send_rpc_error(r, 404, NULL, -32001, NULL, "Session not found");
    bool owned = session_owned(r, s);
    hsession_unref(s);
    if (!owned)
        return send_rpc_error(r, 403, NULL, -32000, NULL,
                              "Forbidden: this session belongs to another user");
    s = http_session_take(r->hs, sid);
    if (s == NULL)
        return send_rpc_error(r, 404, NULL, -32001, NULL, "Session not found");
    log_info("session %.8s... ended by the client", s->id);
    hsession_close(s);
    hsession_unref(s);
    return send_empty(r, 200);
}

/* ---- HTTP+SSE (2024-11-05) ---- */

static enum MHD_Result sse_open(struct req *r)
{
    struct http_server *hs = r->hs;
    if (!http_stream_slot(hs))
        return send_rpc_error(r, 503, NULL, -32000, NULL,
                              "Service Unavailable: too many open streams");
    struct hsession *s = http_session_create(hs, HSESSION_SSE);
    if (s == NULL) {
        http_stream_release(hs);
        return send_rpc_error(r, 503, NULL, -32000, NULL, "Service Unavailable: too many sessions");
    }
    struct hstream *st = hstream_new(s, hs->stream_limit);
    st->standalone = true;
    hsession_add_stream(s, st);
    pthread_mutex_lock(&st->mu);
    st->mode = HSTREAM_SSE;
    char ev[160];
    snprintf(ev, sizeof(ev), "event: endpoint\ndata: %s/messages?sessionId=%s\n\n",
             hs->base_path, s->id);
    int rc = buf_append_str(&st->out, ev);
    pthread_mutex_unlock(&st->mu);
    (void)rc;
    r->sess = s; /* http_session_create's reference */
    if (r->authed)
        s->owner = xstrdup(r->who.subject);
    r->sse_owner = true; /* the session lives as long as this connection */
    r->stream_slot = true;
    r->endless = true;
    attach(r, st);
    hstream_unref(st);
    r->phase = PHASE_ANSWER;
    return respond_from_stream(r);
}

static enum MHD_Result sse_post(struct req *r)
{
    const char *sid = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "sessionId");
    if (sid == NULL)
        return send_rpc_error(r, 400, NULL, -32000, NULL, "Bad Request: sessionId is required");
    struct hsession *s = http_session_find(r->hs, sid);
    if (s == NULL)
        return send_rpc_error(r, 404, NULL, -32001, NULL, "Session not found");
    r->sess = s; /* released when the request completes */
    if (s->kind != HSESSION_SSE || s->ms == NULL)
        return send_rpc_error(r, 404, NULL, -32001, NULL, "Session not found");
    if (!session_owned(r, s))
        return send_rpc_error(r, 403, NULL, -32000, NULL,
                              "Forbidden: this session belongs to another user");
    const char *ct = header(r->conn, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0)
        return send_rpc_error(r, 415, NULL, JSONRPC_INVALID_REQUEST, NULL,
                              "Unsupported Media Type: Content-Type must be application/json");
    /* Answers (and parse errors) go on the /sse stream. */
    struct jsonrpc_fail fail;
    json_t *msg = NULL;
    if (jsonrpc_parse(r->body.data, r->body.len, r->hs->srv->max_message,
                      r->hs->srv->max_depth, &msg, &fail) != 0) {
        mcp_session_reject(s->ms, fail.code, fail.message, NULL);
        return send_body(r, 202, "text/plain", xstrdup("Accepted"), 8);
    }
    enum MHD_Result refused;
    if (scope_refused(r, msg, &refused)) {
        json_decref(msg);
        return refused;
    }
    struct mcp_identity idbuf;
    mcp_session_feed_parsed(s->ms, msg, NULL, identity_of(r, &idbuf));
    json_decref(msg);
    return send_body(r, 202, "text/plain", xstrdup("Accepted"), 8);
}

/* ---- OAuth ---- */

/* Per connection: the raw query string of the current request, captured before libmicrohttpd
 * decodes it (leniently), so the OAuth endpoints can parse it strictly. */
struct conn_ctx {
    char *raw_query; /* NULL: none; "\x01" when too long */
};

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = xcalloc(1, sizeof(struct conn_ctx));
    } else {
        struct conn_ctx *cc = *socket_context;
        if (cc != NULL)
            free(cc->raw_query);
        free(cc);
        *socket_context = NULL;
    }
}

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn_ctx *cc = ci != NULL ? ci->socket_context : NULL;
    if (cc != NULL) {
        free(cc->raw_query);
        const char *q = strchr(uri, '?');
        cc->raw_query = q == NULL ? NULL : strlen(q + 1) > 16384 ? xstrdup("\x01") : xstrdup(q + 1);
    }
    return NULL;
}

static enum MHD_Result oauth_dispatch(struct req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn_ctx *cc = ci != NULL ? ci->socket_context : NULL;
    const char *raw = cc != NULL ? cc->raw_query : NULL;
    json_t *query = NULL;
    char why[160];
    const char *query_error = NULL;
    if (raw != NULL && raw[0] == '\x01') {
        query_error = "the query string is too long";
    } else if (raw != NULL && form_parse(raw, strlen(raw), &query, why, sizeof(why)) != 0) {
        query_error = why; /* bad escapes, repeated parameters, invalid UTF-8 */
    }
    if (query == NULL)
        query = json_object();
    struct oauth_request oreq = {
        .method = r->method,
        .path = r->url,
        .query = query,
        .query_repeated = query_error != NULL,
        .query_error = query_error,
        .body = r->body.data,
        .body_len = r->body.len,
        .content_type = header(r->conn, MHD_HTTP_HEADER_CONTENT_TYPE),
        .authorization = header(r->conn, MHD_HTTP_HEADER_AUTHORIZATION),
        .cookie = header(r->conn, MHD_HTTP_HEADER_COOKIE),
        .client_ip = r->client,
        .https = r->https,
    };
    struct oauth_response o = {0};
    oauth_handle(r->hs->oauth, &oreq, &o);
    json_decref(query);
    return send_oauth(r, &o);
}

/* With OAuth on, the MCP endpoints need a valid bearer token. false after answering 401. */
static bool authenticate(struct req *r, enum MHD_Result *ret)
{
    struct http_server *hs = r->hs;
    if (hs->oauth == NULL)
        return true;
    struct oauth_response o = {0};
    if (oauth_bearer_check(hs->oauth, header(r->conn, MHD_HTTP_HEADER_AUTHORIZATION), &r->who,
                           &o) != 0) {
        *ret = send_oauth(r, &o);
        return false;
    }
    r->authed = true;
    return true;
}

/* ---- the request handler ---- */

static enum MHD_Result dispatch(struct req *r)
{
    struct http_server *hs = r->hs;
    if (hs->stopping)
        return send_rpc_error(r, 503, NULL, -32000, NULL, "Service Unavailable: shutting down");
    enum MHD_Result ret;
    if ((r->route == ROUTE_MCP || r->route == ROUTE_SSE || r->route == ROUTE_MESSAGES) &&
        !authenticate(r, &ret))
        return ret;
    switch (r->route) {
    case ROUTE_MCP:
        if (strcmp(r->method, "POST") == 0)
            return mcp_post(r);
        if (strcmp(r->method, "GET") == 0)
            return mcp_get(r);
        if (strcmp(r->method, "DELETE") == 0)
            return mcp_delete(r);
        break;
    case ROUTE_SSE:
        if (strcmp(r->method, "GET") == 0)
            return sse_open(r);
        r->allow = "GET";
        break;
    case ROUTE_MESSAGES:
        if (strcmp(r->method, "POST") == 0)
            return sse_post(r);
        r->allow = "POST";
        break;
    case ROUTE_HEALTHZ:
        if (strcmp(r->method, "GET") == 0) {
            char *b = xasprintf("{\"status\":\"ok\",\"version\":\"%s\"}", mcpgate_version());
            return send_body(r, 200, "application/json", b, strlen(b));
        }
        r->allow = "GET";
        break;
    case ROUTE_METRICS:
        if (strcmp(r->method, "GET") == 0) {
            size_t len = 0;
            char *b = http_metrics_render(hs, &len);
            return send_body(r, 200, "text/plain; version=0.0.4", b, len);
        }
        r->allow = "GET";
        break;
    case ROUTE_OAUTH:
        return oauth_dispatch(r);
    case ROUTE_OTHER:
        return send_rpc_error(r, 404, NULL, -32000, NULL, "Not Found: %.100s", r->url);
    }
    return send_rpc_error(r, 405, NULL, -32000, NULL, "Method Not Allowed: %s %.100s", r->method,
                          r->url);
}

static enum route route_of(struct http_server *hs, const char *url)
{
    const char *p = url;
    size_t bl = strlen(hs->base_path);
    if (bl > 0) {
        if (strncmp(url, hs->base_path, bl) != 0)
            return ROUTE_OTHER;
        p = url + bl;
    }
    if (strcmp(p, "/mcp") == 0 || strcmp(p, "/mcp/") == 0)
        return ROUTE_MCP;
    if (strcmp(p, "/sse") == 0)
        return ROUTE_SSE;
    if (strcmp(p, "/messages") == 0 || strcmp(p, "/message") == 0)
        return ROUTE_MESSAGES;
    if (hs->oauth != NULL && oauth_route(hs->oauth, url))
        return ROUTE_OAUTH;
    if (strcmp(url, "/healthz") == 0)
        return ROUTE_HEALTHZ;
    if (strcmp(url, "/metrics") == 0)
        return ROUTE_METRICS;
    return ROUTE_OTHER;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct http_server *hs = cls;
    struct req *r = *con_cls;
    if (r == NULL) {
        r = xcalloc(1, sizeof(*r));
        r->hs = hs;
        r->conn = c;
        r->method = method;
        r->url = url;
        r->route = route_of(hs, url);
        clock_gettime(CLOCK_MONOTONIC, &r->start);
        buf_init(&r->body, hs->o.max_body);
        *con_cls = r;
        atomic_fetch_add(&hs->active, 1);
        identify_client(r);
        bool ok;
        enum MHD_Result ret = check_origin(r, &ok);
        if (!ok) {
            r->phase = PHASE_DONE;
            return ret;
        }
        if (strcmp(method, "OPTIONS") == 0) {
            r->phase = PHASE_DONE;
            return preflight(r);
        }
        const char *cl = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != NULL && strtoull(cl, NULL, 10) > hs->o.max_body) {
            r->phase = PHASE_DONE;
            return send_rpc_error(r, 413, NULL, JSONRPC_INVALID_REQUEST, NULL,
                                  "Payload Too Large: the body limit is %zu bytes",
                                  hs->o.max_body);
        }
        return MHD_YES;
    }
    if (r->phase == PHASE_BODY) {
        if (*upload_size > 0) {
            if (buf_append(&r->body, upload_data, *upload_size) != 0) {
                /* Past the cap (a chunked body says no length up front): answer now; the
                 * connection closes after it, the rest is never read. */
                *upload_size = 0;
                buf_free(&r->body);
                r->phase = PHASE_DONE;
                return send_rpc_error(r, 413, NULL, JSONRPC_INVALID_REQUEST, NULL,
                                      "Payload Too Large: the body limit is %zu bytes",
                                      hs->o.max_body);
            }
            *upload_size = 0;
            return MHD_YES;
        }
        if (r->too_big) {
            r->phase = PHASE_DONE;
            return send_rpc_error(r, 413, NULL, JSONRPC_INVALID_REQUEST, NULL,
                                  "Payload Too Large: the body limit is %zu bytes",
                                  hs->o.max_body);
        }
        r->phase = PHASE_DONE;
        return dispatch(r);
    }
    if (r->phase == PHASE_ANSWER) /* resumed: the stream has something */
        return respond_from_stream(r);
    *upload_size = 0; /* PHASE_DONE: a response is queued; upload data is discarded */
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *hs = cls;
    struct req *r = *con_cls;
    if (r == NULL)
        return;
    *con_cls = NULL;
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    double secs = (double)(end.tv_sec - r->start.tv_sec) +
                  (double)(end.tv_nsec - r->start.tv_nsec) / 1e9;
    http_metrics_count(hs, r->route, r->status ? r->status : 499, r->sse ? -1 : secs);
    log_debug("%s %s %u %.1f ms client=%s%s%s", r->method, r->url, r->status, secs * 1e3,
              r->client, r->https ? " https" : "",
              toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection ended early)");
    if (r->sse)
        http_streams_track(hs, r, false);
    hup_unwatch(hs, r);
    struct hstream *st = r->st;
    if (st != NULL) {
        pthread_mutex_lock(&st->mu);
        bool unfinished = !(st->final && st->out.len == 0) || st->standalone || st->gone;
        st->suspended = false;
        pthread_mutex_unlock(&st->mu);
        hstream_detach(st);
        if (st->cancel_on_close && unfinished) /* 2026-07-28: closing cancels the request */
            mcp_session_stream_closed(hs->stateless, st);
        hstream_unref(st);
    }
    if (r->stream_slot)
        http_stream_release(hs);
    if (r->sse_owner && r->sess != NULL) {
        /* The /sse connection is the HTTP+SSE session: it ends with it. */
        struct hsession *s = http_session_take(hs, r->sess->id);
        if (s != NULL) {
            hsession_close(s);
            hsession_unref(s);
        }
    }
    if (r->sess != NULL)
        hsession_unref(r->sess);
    oauth_principal_clear(&r->who);
    buf_free(&r->body);
    free(r);
    atomic_fetch_sub(&hs->active, 1);
}

/* ---- start and stop ---- */

/* libmicrohttpd hands us its own printf format: a callback that cannot be format-checked. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
#pragma GCC diagnostic pop
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_debug("libmicrohttpd: %s", msg);
}

static void audit_call(void *arg, const struct mcp_identity *who, const char *tool,
                       const char *outcome, double seconds)
{
    struct http_server *hs = arg;
    oauth_audit(hs->oauth, "tool_call", who->username ? who->username : who->subject,
                who->client_id, NULL,
                json_pack("{s:s, s:s, s:f}", "tool", tool, "outcome", outcome, "seconds",
                          seconds));
}

int mcp_serve_http(struct mcp_server *srv, const struct mcp_http_options *opts)
{
    return http_serve(srv, opts, NULL, NULL, NULL);
}

int http_serve(struct mcp_server *srv, const struct mcp_http_options *opts, http_auth_init_fn init,
               void *init_arg, const char *tool_scopes)
{
    struct http_server *hs = NULL;
    int r = http_server_new(srv, opts, &hs);
    if (r != 0)
        return r;
    if (tool_scopes != NULL) {
        hs->tool_scopes = json_object();
        for (const char *p = tool_scopes; *p;) {
            size_t n = strcspn(p, ",");
            const char *eq = memchr(p, '=', n);
            if (eq != NULL && eq != p && (size_t)(eq - p) + 1 < n) {
                char *tool = xstrndup(p, (size_t)(eq - p));
                json_object_set_new(hs->tool_scopes, tool,
                                    json_stringn(eq + 1, n - (size_t)(eq - p) - 1));
                free(tool);
            }
            p += n;
            if (*p == ',')
                p++;
        }
    }

    /* Signals are taken by sigwait in this thread; every thread started from here on
     * inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (hs->addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (hs->tls_cert != NULL)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, hs->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, hs->tls_key},
        {MHD_OPTION_END, 0, NULL},
    };
    hs->hup = hup_new();
    hs->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, hs, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, hs,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, hs, MHD_OPTION_URI_LOG_CALLBACK, uri_logger,
        hs,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&hs->addr,
        MHD_OPTION_THREAD_POOL_SIZE, hs->o.threads, MHD_OPTION_CONNECTION_LIMIT,
        hs->o.max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT, hs->o.max_connections_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, hs->o.request_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        hs->o.conn_memory, MHD_OPTION_NOTIFY_COMPLETED, on_completed, hs,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024,
        MHD_OPTION_ARRAY, hs->tls_cert ? tls_opts : &tls_opts[2], MHD_OPTION_END);
    if (hs->d == NULL) {
        log_error("cannot listen on %s: %s", hs->o.listen, strerror(errno));
        hup_free(hs->hup);
        hs->hup = NULL;
        http_server_free(hs);
        return ERR_IO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(hs->d, MHD_DAEMON_INFO_BIND_PORT);
    hs->port = info ? info->port : 0;
    http_server_started(hs);
    if (init != NULL) {
        size_t n = strlen(hs->endpoint_url) - 4; /* the base URL: without "/mcp" */
        char *base = xstrndup(hs->endpoint_url, n);
        r = init(init_arg, base, &hs->oauth);
        free(base);
        if (r != 0) {
            MHD_stop_daemon(hs->d);
            hs->d = NULL;
            hup_free(hs->hup);
            hs->hup = NULL;
            http_server_free(hs);
            return r;
        }
        hs->default_scope = oauth_default_scope(hs->oauth);
        mcp_server_set_call_hook(srv, audit_call, hs);
    }
    log_info("listening on %s (MCP endpoint %s)", hs->o.listen, hs->endpoint_url);
    if (hs->o.on_ready != NULL)
        hs->o.on_ready(hs->o.on_ready_arg, hs->endpoint_url);

    int sig = 0;
    sigwait(&sigs, &sig);
    log_info("%s: stopping (no new connections; running requests may finish)",
             sig == SIGTERM ? "SIGTERM" : "SIGINT");
    MHD_socket lsock = MHD_quiesce_daemon(hs->d);
    if (lsock != MHD_INVALID_SOCKET)
        close(lsock);
    http_server_drain(hs);
    MHD_stop_daemon(hs->d);
    hs->d = NULL;
    hup_free(hs->hup);
    hs->hup = NULL;
    http_server_free(hs);
    log_info("stopped");
    return 0;
}
