/* The HTTP server's state outside the wire protocols: options and their defaults, the Host,
 * Origin and CORS allow-lists, the table of sessions, stream slots, metrics, the timer that
 * sends keep-alives and expires idle sessions, and the drain on shutdown. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "mcp/mcp_int.h"
#include "mcp/session.h"
#include "transport/http_int.h"

/* ---- options ---- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    struct buf b;
    buf_init(&b, 1u << 20);
    char chunk[4096];
    size_t n;
    int r = 0;
    while (r == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        r = buf_append(&b, chunk, n);
    fclose(f);
    if (r != 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b, NULL);
}

/* Splits "a, b,c" into lower-case items appended to *list. */
static void add_list(char ***list, size_t *n, const char *csv)
{
    if (csv == NULL)
        return;
    const char *p = csv;
    while (*p != '\0') {
        while (*p == ' ' || *p == ',')
            p++;
        size_t len = strcspn(p, ",");
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (len > 0) {
            char *item = xstrndup(p, len);
            for (char *c = item; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            *list = xrealloc(*list, (*n + 1) * sizeof(**list));
            (*list)[(*n)++] = item;
        }
        p += strcspn(p, ",");
    }
}

/* The host part of "host", "host:port", "[v6]:port", or of a URL's authority. */
/* The host part of a Host header ("host", "host:port", "[v6]:port"), or, when url is true, of
 * a URL's authority ("scheme://host:port/..."; only there is "://" meaningful). */
static size_t host_part(const char *s, bool url, const char **start)
{
    const char *p = s;
    if (url) {
        size_t scheme = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
        if (scheme == 0 || strncmp(p + scheme, "://", 3) != 0)
            return 0;
        p += scheme + 3;
    }
    *start = p;
    if (*p == '[') {
        const char *end = strchr(p, ']');
        if (end == NULL)
            return 0;
        size_t n = (size_t)(end - p + 1);
        /* After "[v6]" only a port or the end may follow. */
        return end[1] == '\0' || end[1] == ':' || (url && strchr("/?#", end[1])) ? n : 0;
    }
    size_t n = strcspn(p, ":/?#@ \t");
    char stop = p[n];
    if (stop == '\0' || stop == ':')
        return n;
    return url && (stop == '/' || stop == '?' || stop == '#') ? n : 0; /* junk after a Host */
}

static int parse_listen(const char *listen, struct sockaddr_storage *out, char **host_out)
{
    const char *colon = strrchr(listen, ':');
    if (colon == NULL)
        return ERR_INVALID;
    char host[256];
    size_t hl = (size_t)(colon - listen);
    if (hl >= sizeof(host))
        return ERR_INVALID;
    memcpy(host, listen, hl);
    host[hl] = '\0';
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    char *end = NULL;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || port > 65535)
        return ERR_INVALID;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%lu", port);
    if (getaddrinfo(host[0] ? host : NULL, portstr, &hints, &ai) != 0 || ai == NULL)
        return ERR_INVALID;
    memcpy(out, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    *host_out = xstrdup(host[0] ? host : "0.0.0.0");
    return 0;
}

static bool addr_is_loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
    if (a->ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
    return false;
}

static bool addr_is_any(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (a->ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
    return false;
}

int http_server_new(struct mcp_server *srv, const struct mcp_http_options *opts,
                    struct http_server **out)
{
    struct http_server *hs = xcalloc(1, sizeof(*hs));
    char *listen_host = NULL;
    *out = NULL;
    hs->srv = srv;
    if (opts != NULL)
        hs->o = *opts;
    struct mcp_http_options *o = &hs->o;
    if (o->listen == NULL)
        o->listen = "127.0.0.1:8080";
    if (o->max_body == 0)
        o->max_body = srv->max_message;
    if (o->conn_memory == 0)
        o->conn_memory = 16 * 1024;
    if (o->max_connections == 0)
        o->max_connections = 10000;
    if (o->max_sessions == 0)
        o->max_sessions = 10000;
    if (o->max_streams == 0)
        o->max_streams = 20000;
    if (o->request_timeout == 0)
        o->request_timeout = 30;
    if (o->session_idle == 0)
        o->session_idle = 1800;
    if (o->keepalive == 0)
        o->keepalive = 15;
    if (o->threads == 0)
        o->threads = pool_default_size();
    if (o->resume_events == 0)
        o->resume_events = 256;
    hs->retry_ms = 2000;
    hs->stream_limit = 8u << 20;
    hs->base_path = xstrdup("");
    pthread_mutex_init(&hs->mu, NULL);
    pthread_mutex_init(&hs->tmu, NULL);
    pthread_mutex_init(&hs->timer_mu, NULL);
    pthread_cond_init(&hs->timer_cv, NULL);
    hs->table_cap = 1024;
    hs->table = xcalloc(hs->table_cap, sizeof(*hs->table));

    if (parse_listen(o->listen, &hs->addr, &listen_host) != 0) {
        log_error("--listen '%s': expected HOST:PORT (e.g. 127.0.0.1:8080, [::1]:0)", o->listen);
        goto fail;
    }
    if (o->tls_cert != NULL || o->tls_key != NULL) {
        if (o->tls_cert == NULL || o->tls_key == NULL) {
            log_error("TLS needs both a certificate and a key");
            goto fail;
        }
        if ((hs->tls_cert = read_file(o->tls_cert)) == NULL ||
            (hs->tls_key = read_file(o->tls_key)) == NULL) {
            log_error("cannot read the TLS certificate or key: %s", strerror(errno));
            goto fail;
        }
    }
    /* The Host names we answer to: loopback names when listening on loopback (or on every
     * interface), the listen address itself, the public URL's host, and any configured. */
    if (addr_is_loopback(&hs->addr) || addr_is_any(&hs->addr))
        add_list(&hs->hosts, &hs->nhosts, "localhost,127.0.0.1,[::1]");
    if (!addr_is_any(&hs->addr)) {
        char *h = hs->addr.ss_family == AF_INET6 ? xasprintf("[%s]", listen_host)
                                                  : xstrdup(listen_host);
        add_list(&hs->hosts, &hs->nhosts, h);
        free(h);
    }
    if (o->public_url != NULL) {
        const char *hp;
        size_t hl = host_part(o->public_url, true, &hp);
        char *h = xstrndup(hp, hl);
        add_list(&hs->hosts, &hs->nhosts, h);
        free(h);
    } else if (addr_is_any(&hs->addr) && o->allowed_hosts == NULL) {
        log_warn("listening on every interface without --public-url or --allowed-host: only "
                 "requests addressed to localhost are accepted (DNS-rebinding protection)");
    }
    add_list(&hs->hosts, &hs->nhosts, o->allowed_hosts);
    add_list(&hs->cors, &hs->ncors, o->cors_origins);

    /* Many long-lived streams need many descriptors. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct mcp_session_io io = {.send = hstateless_io_send, .hold = hstream_io_hold, .arg = hs};
    hs->stateless = mcp_session_new(srv, &io);
    free(listen_host);
    *out = hs;
    return 0;
fail:
    free(listen_host);
    http_server_free(hs);
    return ERR_INVALID;
}

/* ---- allow-lists ---- */

static bool in_list(char **list, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(list[i]) == len && strncasecmp(list[i], s, len) == 0)
            return true;
    }
    return false;
}

bool http_host_allowed(struct http_server *hs, const char *value, bool is_origin)
{
    const char *h = NULL;
    size_t len = host_part(value, is_origin, &h); /* "null" and opaque origins: 0 */
    if (len > 0 && !is_origin) {
        /* A port, when present, must be digits only. */
        const char *port = h + len;
        if (*port == ':' && (port[1] == '\0' || strspn(port + 1, "0123456789") != strlen(port + 1)))
            return false;
    }
    return len > 0 && in_list(hs->hosts, hs->nhosts, h, len);
}

bool http_cors_allowed(struct http_server *hs, const char *origin)
{
    if (in_list(hs->cors, hs->ncors, "*", 1))
        return true;
    return in_list(hs->cors, hs->ncors, origin, strlen(origin));
}

bool http_header_equals(const char *v, const char *want)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return strlen(want) == n && strncmp(v, want, n) == 0;
}

bool http_modern_method_known(const char *method)
{
    static const char *const known[] = {
        "server/discover", "tools/list",  "tools/call",          "prompts/list",
        "prompts/get",     "resources/list", "resources/templates/list", "resources/read",
        "completion/complete", "subscriptions/listen",
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(*known); i++) {
        if (strcmp(method, known[i]) == 0)
            return true;
    }
    return false;
}

/* ---- sessions table: open hashing on the random id ---- */

static size_t slot_of(struct http_server *hs, const char *id)
{
    size_t h = 5381;
    for (const char *p = id; *p; p++)
        h = h * 33 + (unsigned char)*p;
    return h % hs->table_cap;
}

struct hsession *http_session_create(struct http_server *hs, enum hsession_kind kind)
{
    pthread_mutex_lock(&hs->mu);
    if (hs->nsessions >= hs->o.max_sessions) {
        pthread_mutex_unlock(&hs->mu);
        log_warn("session refused: %u sessions open (the limit)", hs->o.max_sessions);
        return NULL;
    }
    hs->nsessions++;
    pthread_mutex_unlock(&hs->mu);
    struct hsession *s = hsession_new(hs->srv, kind, hs->o.resume_events, 1u << 20);
    hsession_ref(s); /* the caller's */
    pthread_mutex_lock(&hs->mu);
    size_t i = slot_of(hs, s->id);
    s->hnext = hs->table[i];
    hs->table[i] = s;
    pthread_mutex_unlock(&hs->mu);
    log_debug("session %.8s... opened (%s)", s->id,
              kind == HSESSION_SSE ? "HTTP+SSE" : "Streamable HTTP");
    return s;
}

struct hsession *http_session_find(struct http_server *hs, const char *id)
{
    if (strlen(id) >= sizeof(((struct hsession *)0)->id))
        return NULL;
    pthread_mutex_lock(&hs->mu);
    struct hsession *s = hs->table[slot_of(hs, id)];
    while (s != NULL && strcmp(s->id, id) != 0)
        s = s->hnext;
    if (s != NULL) {
        hsession_ref(s);
        pthread_mutex_lock(&s->mu);
        s->last_active = time(NULL);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&hs->mu);
    return s;
}

struct hsession *http_session_take(struct http_server *hs, const char *id)
{
    pthread_mutex_lock(&hs->mu);
    struct hsession **pp = &hs->table[slot_of(hs, id)];
    while (*pp != NULL && strcmp((*pp)->id, id) != 0)
        pp = &(*pp)->hnext;
    struct hsession *s = *pp;
    if (s != NULL) {
        *pp = s->hnext;
        s->hnext = NULL;
        hs->nsessions--;
    }
    pthread_mutex_unlock(&hs->mu);
    return s;
}

/* ---- streams ---- */

bool http_stream_slot(struct http_server *hs)
{
    unsigned n = atomic_fetch_add(&hs->streams, 1);
    if (n >= hs->o.max_streams) {
        atomic_fetch_sub(&hs->streams, 1);
        log_warn("stream refused: %u streams open (the limit)", hs->o.max_streams);
        return false;
    }
    return true;
}

void http_stream_release(struct http_server *hs)
{
    atomic_fetch_sub(&hs->streams, 1);
}

void http_streams_track(struct http_server *hs, struct req *r, bool add)
{
    pthread_mutex_lock(&hs->tmu);
    if (add) {
        r->tprev = NULL;
        r->tnext = hs->tracked;
        if (hs->tracked != NULL)
            hs->tracked->tprev = r;
        hs->tracked = r;
        hs->ntracked++;
    } else {
        if (r->tprev != NULL)
            r->tprev->tnext = r->tnext;
        else if (hs->tracked == r)
            hs->tracked = r->tnext;
        if (r->tnext != NULL)
            r->tnext->tprev = r->tprev;
        r->tnext = r->tprev = NULL;
        hs->ntracked--;
    }
    pthread_mutex_unlock(&hs->tmu);
}

/* Calls fn on the stream of every tracked request (only the endless ones when asked; under the
 * tracked lock: fn must not complete requests, only wake them). */
static void each_tracked_if(struct http_server *hs, bool endless_only,
                            void (*fn)(struct hstream *))
{
    pthread_mutex_lock(&hs->tmu);
    for (struct req *r = hs->tracked; r != NULL; r = r->tnext) {
        if (r->st != NULL && (!endless_only || r->endless))
            fn(r->st);
    }
    pthread_mutex_unlock(&hs->tmu);
}

static void each_tracked(struct http_server *hs, void (*fn)(struct hstream *))
{
    each_tracked_if(hs, false, fn);
}

/* ---- metrics ---- */

static const unsigned status_slots[16] = {200, 202, 204, 400, 401, 403, 404, 405,
                                          406, 409, 413, 415, 429, 500, 503, 0};
static const double latency_bounds[12] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                          0.05,   0.1,   0.25,   0.5,   1.0,  5.0};
static const char *const route_names[ROUTE_COUNT] = {"/mcp",     "/sse",  "/messages", "/healthz",
                                                     "/metrics", "oauth", "other"};

void http_metrics_count(struct http_server *hs, enum route route, unsigned status, double secs)
{
    size_t slot = 15;
    for (size_t i = 0; i < 15; i++) {
        if (status_slots[i] == status) {
            slot = i;
            break;
        }
    }
    atomic_fetch_add(&hs->m.requests[route][slot], 1);
    if (secs < 0 || route != ROUTE_MCP)
        return; /* streams are not latencies */
    for (size_t i = 0; i < 12; i++) {
        if (secs <= latency_bounds[i])
            atomic_fetch_add(&hs->m.latency_le[i], 1);
    }
    atomic_fetch_add(&hs->m.latency_count, 1);
    atomic_fetch_add(&hs->m.latency_sum_us, (unsigned long long)(secs * 1e6));
}

char *http_metrics_render(struct http_server *hs, size_t *len)
{
    struct buf b;
    buf_init(&b, 1u << 20);
    int r = buf_append_str(&b, "# HELP mcpgate_http_requests_total HTTP requests answered.\n"
                               "# TYPE mcpgate_http_requests_total counter\n");
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        for (size_t k = 0; k < 16; k++) {
            unsigned long v = atomic_load(&hs->m.requests[i][k]);
            if (v == 0)
                continue;
            char code[8];
            snprintf(code, sizeof(code), "%u", status_slots[k]);
            r = r ? r
                  : buf_printf(&b, "mcpgate_http_requests_total{route=\"%s\",status=\"%s\"} %lu\n",
                               route_names[i], k == 15 ? "other" : code, v);
        }
    }
    r = r ? r
          : buf_append_str(&b, "# HELP mcpgate_http_request_duration_seconds Time to answer a "
                               "POST to /mcp (streams excluded).\n"
                               "# TYPE mcpgate_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i < 12; i++)
        r = r ? r
              : buf_printf(&b, "mcpgate_http_request_duration_seconds_bucket{le=\"%g\"} %lu\n",
                           latency_bounds[i], atomic_load(&hs->m.latency_le[i]));
    unsigned long count = atomic_load(&hs->m.latency_count);
    r = r ? r
          : buf_printf(&b,
                       "mcpgate_http_request_duration_seconds_bucket{le=\"+Inf\"} %lu\n"
                       "mcpgate_http_request_duration_seconds_sum %.6f\n"
                       "mcpgate_http_request_duration_seconds_count %lu\n",
                       count, (double)atomic_load(&hs->m.latency_sum_us) / 1e6, count);
    pthread_mutex_lock(&hs->mu);
    size_t sessions = hs->nsessions;
    pthread_mutex_unlock(&hs->mu);
    r = r ? r
          : buf_printf(&b,
                       "# HELP mcpgate_sessions Open MCP sessions.\n# TYPE mcpgate_sessions gauge\n"
                       "mcpgate_sessions %zu\n"
                       "# HELP mcpgate_streams Open SSE streams (GET and /sse).\n"
                       "# TYPE mcpgate_streams gauge\nmcpgate_streams %u\n"
                       "# HELP mcpgate_streaming_responses Responses being streamed now.\n"
                       "# TYPE mcpgate_streaming_responses gauge\nmcpgate_streaming_responses "
                       "%zu\n",
                       sessions, atomic_load(&hs->streams), hs->ntracked);
    (void)r; /* 1 MiB is far more than this text */
    return buf_steal(&b, len);
}

/* ---- the timer: keep-alives and idle sessions ---- */

static void expire_sessions(struct http_server *hs)
{
    time_t now = time(NULL);
    for (;;) {
        struct hsession *victim = NULL;
        pthread_mutex_lock(&hs->mu);
        for (size_t i = 0; i < hs->table_cap && victim == NULL; i++) {
            for (struct hsession *s = hs->table[i]; s != NULL; s = s->hnext) {
                pthread_mutex_lock(&s->mu);
                bool idle = s->get == NULL &&
                            now - s->last_active > (time_t)hs->o.session_idle;
                pthread_mutex_unlock(&s->mu);
                if (idle) {
                    victim = s;
                    break;
                }
            }
        }
        pthread_mutex_unlock(&hs->mu);
        if (victim == NULL)
            return;
        struct hsession *s = http_session_take(hs, victim->id);
        if (s != NULL) {
            log_info("session %.8s... expired after %u s idle", s->id, hs->o.session_idle);
            hsession_close(s);
            hsession_unref(s);
        }
    }
}

static void *timer_main(void *arg)
{
    struct http_server *hs = arg;
    time_t last_keepalive = time(NULL), last_expiry = time(NULL);
    pthread_mutex_lock(&hs->timer_mu);
    while (!atomic_load(&hs->stopping)) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_sec += 1;
        pthread_cond_timedwait(&hs->timer_cv, &hs->timer_mu, &t);
        if (atomic_load(&hs->stopping))
            break;
        pthread_mutex_unlock(&hs->timer_mu);
        time_t now = time(NULL);
        if (now - last_keepalive >= (time_t)hs->o.keepalive) {
            each_tracked(hs, hstream_keepalive);
            last_keepalive = now;
        }
        if (now - last_expiry >= 5) {
            expire_sessions(hs);
            last_expiry = now;
        }
        pthread_mutex_lock(&hs->timer_mu);
    }
    pthread_mutex_unlock(&hs->timer_mu);
    return NULL;
}

void http_server_started(struct http_server *hs)
{
    bool tls = hs->tls_cert != NULL;
    if (hs->o.public_url != NULL) {
        size_t n = strlen(hs->o.public_url);
        while (n > 0 && hs->o.public_url[n - 1] == '/')
            n--;
        hs->endpoint_url = xasprintf("%.*s/mcp", (int)n, hs->o.public_url);
    } else {
        char host[INET6_ADDRSTRLEN + 2] = "127.0.0.1";
        if (hs->addr.ss_family == AF_INET && !addr_is_any(&hs->addr)) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&hs->addr)->sin_addr, host, sizeof(host));
        } else if (hs->addr.ss_family == AF_INET6) {
            char a[INET6_ADDRSTRLEN] = "::1";
            if (!addr_is_any(&hs->addr))
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&hs->addr)->sin6_addr, a, sizeof(a));
            snprintf(host, sizeof(host), "[%s]", a);
        }
        hs->endpoint_url = xasprintf("%s://%s:%u/mcp", tls ? "https" : "http", host, hs->port);
    }
    if (pthread_create(&hs->timer, NULL, timer_main, hs) == 0)
        hs->timer_started = true;
}

/* ---- stopping ---- */

static void end_stream(struct hstream *st)
{
    hstream_end(st);
}

static void wait_until(struct http_server *hs, unsigned (*left)(struct http_server *), int ms)
{
    for (int i = 0; i < ms / 10 && left(hs) > 0; i++)
        usleep(10000);
}

static unsigned all_active(struct http_server *hs)
{
    return atomic_load(&hs->active);
}

void http_server_drain(struct http_server *hs)
{
    /* 1. New requests get 503; streams that never end by themselves (GET, /sse,
     *    subscriptions/listen) end now, flushing what they hold. */
    atomic_store(&hs->stopping, true);
    pthread_mutex_lock(&hs->timer_mu);
    pthread_cond_broadcast(&hs->timer_cv);
    pthread_mutex_unlock(&hs->timer_mu);
    if (hs->timer_started)
        pthread_join(hs->timer, NULL);
    hs->timer_started = false;
    each_tracked_if(hs, true, end_stream);
    /* 2. Requests in flight finish, JSON or streamed (up to 10 s). */
    wait_until(hs, all_active, 10000);
    /* 3. Whatever still runs is cut: its stream ends now. */
    each_tracked(hs, end_stream);
    wait_until(hs, all_active, 2000);
    if (all_active(hs) > 0)
        log_warn("%u connections still open at shutdown; closing them", all_active(hs));
}

void http_server_free(struct http_server *hs)
{
    if (hs == NULL)
        return;
    if (hs->timer_started) { /* an early failure: the drain did not run */
        atomic_store(&hs->stopping, true);
        pthread_mutex_lock(&hs->timer_mu);
        pthread_cond_broadcast(&hs->timer_cv);
        pthread_mutex_unlock(&hs->timer_mu);
        pthread_join(hs->timer, NULL);
        hs->timer_started = false;
    }
    /* Sessions end: their handlers see cancellation and are waited for. */
    for (size_t i = 0; i < hs->table_cap; i++) {
        while (hs->table[i] != NULL) {
            struct hsession *s = hs->table[i];
            hs->table[i] = s->hnext;
            hsession_close(s);
            hsession_unref(s);
        }
    }
    if (hs->stateless != NULL)
        mcp_session_close(hs->stateless);
    for (size_t i = 0; i < hs->nhosts; i++)
        free(hs->hosts[i]);
    for (size_t i = 0; i < hs->ncors; i++)
        free(hs->cors[i]);
    free(hs->hosts);
    free(hs->cors);
    free(hs->table);
    free(hs->tls_cert);
    free(hs->tls_key);
    free(hs->base_path);
    free(hs->endpoint_url);
    oauth_server_free(hs->oauth);
    json_decref(hs->tool_scopes);
    free(hs->default_scope);
    pthread_mutex_destroy(&hs->mu);
    pthread_mutex_destroy(&hs->tmu);
    pthread_mutex_destroy(&hs->timer_mu);
    pthread_cond_destroy(&hs->timer_cv);
    free(hs);
}
