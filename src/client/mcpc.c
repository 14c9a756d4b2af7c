/* The MCP client transport's engine (see mcpc.h): the loop thread, requests and their streams,
 * the listening stream (the auth thread and re-initialization after a lost session are
 * mcpc_auth.c's).
 *
 * Every struct preq is owned by the loop thread once submitted. A request's life: queued
 * (CMD_SEND) -> sent (x != NULL) -> answered (completed) and its transfer ended (x == NULL)
 * -> freed. On the way it may be parked (waiting for the auth thread or a re-initialization)
 * and sent again, or its broken stream resumed with a GET and Last-Event-ID. */
#include "client/mcpc.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "client/discovery.h"
#include "client/mcpc_int.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/reason.h"
#include "core/xmalloc.h"
#include "mcp/jsonrpc.h"

long long mcpc_now_ms(void)
{
    return clock_ms();
}

/* ---- requests ---- */

struct preq *mcpc_preq_new(struct mcpc *c, enum preq_kind kind, const char *method, json_t *params)
{
    struct preq *p = xcalloc(1, sizeof *p);
    p->c = c;
    p->kind = kind;
    p->method = method != NULL ? xstrdup(method) : NULL;
    p->use_session = true;
    buf_init(&p->body, MCPC_MAX_MESSAGE);
    pthread_mutex_lock(&c->mu);
    p->handle = ++c->next_handle;
    pthread_mutex_unlock(&c->mu);
    if (kind == PK_REQUEST || kind == PK_LISTEN) {
        json_t *zero = json_integer(0); /* the real id is set when sent */
        p->msg = jsonrpc_request(zero, method, params);
        json_decref(zero);
    } else if (kind == PK_POST && method != NULL)
        p->msg = jsonrpc_notification(method, params);
    else
        json_decref(params);
    return p;
}

static void waiter_unref(struct mcpc *c, struct waiter *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    bool last = --w->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (!last)
        return;
    json_decref(w->resp);
    mcpc_rawres_clear(&w->raw);
    free(w);
}

static void preq_free(struct preq *p)
{
    if (p == NULL)
        return;
    if (p->kind == PK_REQUEST && p->cb != NULL && !p->completed)
        p->cb(p->arg, NULL); /* no answer will come: the caller may let go of arg */
    if (p->sync != NULL) {
        /* a waiter still waiting hears that nothing will come */
        pthread_mutex_lock(&p->c->mu);
        p->sync->done = true;
        pthread_cond_broadcast(&p->c->cv);
        pthread_mutex_unlock(&p->c->mu);
        waiter_unref(p->c, p->sync);
    }
    if (p->raw_owned) {
        mcpc_rawres_clear(p->raw);
        free(p->raw);
    }
    free(p->method);
    json_decref(p->msg);
    free(p->token);
    free(p->www);
    buf_free(&p->body);
    if (p->sp_on)
        sse_free(&p->sp);
    free(p);
}

/* Appends: requests go out in the order they were made (notifications/initialized before
 * the first request). */
void mcpc_list_add(struct mcpc *c, struct preq *p)
{
    p->next = NULL;
    p->prev = c->reqs_tail;
    if (c->reqs_tail != NULL)
        c->reqs_tail->next = p;
    else
        c->reqs = p;
    c->reqs_tail = p;
}

static void list_del(struct mcpc *c, struct preq *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else if (c->reqs == p)
        c->reqs = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    else if (c->reqs_tail == p)
        c->reqs_tail = p->prev;
    p->next = p->prev = NULL;
}

/* Frees p once nothing refers to it: answered (or not a request) and no transfer. */
void mcpc_maybe_release(struct mcpc *c, struct preq *p)
{
    if (p->x != NULL || p->due > 0 || p->parked)
        return;
    if ((p->kind == PK_REQUEST || p->kind == PK_LISTEN) && !p->completed && !p->cancelled)
        return;
    if (c->get_stream == p)
        c->get_stream = NULL;
    list_del(c, p);
    preq_free(p);
}

static void raw_note_headers(struct preq *p, long status, const struct hc_headers *h)
{
    if (p->raw == NULL)
        return;
    p->raw->status = status;
    const char *sid = hc_header(h, "Mcp-Session-Id");
    const char *ct = hc_header(h, "Content-Type");
    free(p->raw->session_id);
    free(p->raw->ctype);
    p->raw->session_id = sid != NULL ? xstrdup(sid) : NULL;
    p->raw->ctype = ct != NULL ? xstrdup(ct) : NULL;
}

/* The caller gets its answer: the callback, the waiter, or the internal continuation. */
static void complete(struct mcpc *c, struct preq *p, json_t *resp)
{
    if (p->completed || p->cancelled)
        return;
    p->completed = true;
    if (p->raw != NULL && resp != NULL && p->raw->msg == NULL)
        p->raw->msg = json_incref(resp);
    if (p->then != NULL) {
        p->then(c, p, resp);
    } else if (p->sync != NULL) {
        pthread_mutex_lock(&c->mu);
        if (p->sync->resp == NULL && resp != NULL)
            p->sync->resp = json_incref(resp);
        p->sync->done = true;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
    } else if (p->cb != NULL && resp != NULL) {
        p->cb(p->arg, resp);
    }
}

void mcpc_fail(struct mcpc *c, struct preq *p, int code, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->raw != NULL && p->raw->why[0] == '\0')
        snprintf(p->raw->why, sizeof p->raw->why, "%.299s", msg);
    if (p->kind != PK_REQUEST && p->kind != PK_LISTEN) {
        log_warn("%s", msg);
        return;
    }
    json_t *id = json_integer(p->wire_id);
    json_t *err = jsonrpc_error(id, code, msg, NULL);
    json_decref(id);
    complete(c, p, err);
    json_decref(err);
}

static struct preq *find_request(struct mcpc *c, json_t *id)
{
    if (!json_is_integer(id))
        return NULL;
    json_int_t v = json_integer_value(id);
    for (struct preq *p = c->reqs; p != NULL; p = p->next)
        if ((p->kind == PK_REQUEST || p->kind == PK_LISTEN) && p->wire_id == v && !p->completed)
            return p;
    return NULL;
}

/* ---- messages from the server ---- */

static void answer_server_request(struct mcpc *c, json_t *msg)
{
    json_t *id = json_object_get(msg, "id");
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *resp;
    if (method != NULL && strcmp(method, "ping") == 0)
        resp = jsonrpc_result(id, json_object());
    else
        resp = jsonrpc_errorf(id, JSONRPC_METHOD_NOT_FOUND, NULL, "this client does not offer %s",
                              method != NULL ? method : "that method");
    struct preq *p = mcpc_preq_new(c, PK_POST, NULL, NULL);
    p->msg = resp;
    p->due = 1;
    mcpc_list_add(c, p);
}

static void handle_message(struct mcpc *c, struct preq *via, json_t *msg)
{
    enum jsonrpc_kind kind;
    json_t *id = NULL;
    struct jsonrpc_fail f;
    if (!json_is_object(msg) || jsonrpc_classify(msg, &kind, &id, &f) != 0) {
        log_warn("the server sent a message that is not JSON-RPC (%s); ignored",
                 json_is_object(msg) ? f.message : "not an object");
        return;
    }
    if (kind == JSONRPC_RESPONSE) {
        struct preq *p = find_request(c, id);
        if (p == NULL) {
            log_debug("a response to no request in flight (late, or cancelled); ignored");
            return;
        }
        if (c->era == MCPC_ERA_MODERN && p->method != NULL && strcmp(p->method, "tools/list") == 0)
            mcpc_tools_snoop(c, json_object_get(msg, "result"));
        complete(c, p, msg);
        if (p != via)
            mcpc_maybe_release(c, p); /* answered on another stream (HTTP+SSE): done with */
        return;
    }
    if (kind == JSONRPC_REQUEST) {
        if (c->ev.on_request != NULL)
            c->ev.on_request(c->ev_arg, msg,
                             via != NULL && via->kind == PK_REQUEST ? via->handle : 0);
        else
            answer_server_request(c, msg);
        return;
    }
    if (c->ev.on_notification != NULL)
        c->ev.on_notification(c->ev_arg, msg);
}

static void handle_text(struct mcpc *c, struct preq *via, const char *data, size_t len)
{
    json_t *msg = NULL;
    struct jsonrpc_fail f;
    if (jsonrpc_parse(data, len, MCPC_MAX_MESSAGE, 64, &msg, &f) != 0) {
        log_warn("the server sent something that is not JSON (%s); ignored", f.message);
        return;
    }
    if (json_is_array(msg)) {
        size_t i;
        json_t *v;
        json_array_foreach (msg, i, v)
            handle_message(c, via, v);
    } else {
        handle_message(c, via, msg);
    }
    json_decref(msg);
}

/* The HTTP+SSE endpoint event: the URL to POST to, resolved against the stream's URL, and
 * only on the server's own origin (a token must never be sent elsewhere). */
static char *origin_of(const char *url)
{
    char *o = discovery_canonical_resource(url);
    if (o == NULL)
        return NULL;
    char *slash = strchr(o + (strncmp(o, "https", 5) == 0 ? 8 : 7), '/');
    if (slash != NULL)
        *slash = '\0';
    char *q = strchr(o, '?');
    if (q != NULL)
        *q = '\0';
    return o;
}

static void on_endpoint(struct mcpc *c, const char *data)
{
    char *u = NULL, *origin = origin_of(c->url);
    if (origin == NULL)
        return;
    if (strncmp(data, "http://", 7) == 0 || strncmp(data, "https://", 8) == 0) {
        char *dorigin = origin_of(data);
        if (dorigin != NULL && strcmp(dorigin, origin) == 0)
            u = xstrdup(data);
        free(dorigin);
    } else if (data[0] == '/' && data[1] != '/') {
        u = xasprintf("%s%s", origin, data);
    } else if (data[0] == '?') { /* RFC 3986 5.2.2: the same path, this query */
        const char *q = strchr(c->url, '?');
        size_t n = q != NULL ? (size_t)(q - c->url) : strlen(c->url);
        u = xasprintf("%.*s%s", (int)n, c->url, data);
    } else if (data[0] != '/') {
        const char *q = strchr(c->url, '?');
        size_t n = q != NULL ? (size_t)(q - c->url) : strlen(c->url);
        const char *last = c->url + n;
        while (last > c->url && last[-1] != '/')
            last--;
        u = xasprintf("%.*s%s", (int)(last - c->url), c->url, data);
    }
    free(origin);
    char why[300];
    if (u != NULL && hc_url_check(&c->o.http, u, why, sizeof why) != 0) {
        free(u);
        u = NULL;
    }
    pthread_mutex_lock(&c->mu);
    if (u == NULL) {
        c->endpoint_failed = true;
        snprintf(c->endpoint_why, sizeof c->endpoint_why,
                 "the server's endpoint event names another origin or a bad URL; refused");
    } else {
        free(c->post_url);
        c->post_url = u;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static int on_sse_event(void *arg, const struct sse_event *ev)
{
    struct preq *p = arg;
    struct mcpc *c = p->c;
    if (strcmp(ev->type, "endpoint") == 0) {
        if (c->era == MCPC_ERA_SSE && p->kind == PK_GET)
            on_endpoint(c, ev->data);
        return 0;
    }
    if (strcmp(ev->type, "message") != 0)
        return 0; /* other event types carry nothing for MCP */
    size_t n = ev->data_len;
    const char *d = ev->data;
    while (n > 0 && (*d == ' ' || *d == '\n' || *d == '\r' || *d == '\t'))
        d++, n--;
    if (n == 0)
        return 0; /* a priming event */
    handle_text(c, p, d, n);
    return 0;
}

/* ---- transfers ---- */

static const char *era_version(struct mcpc *c)
{
    return c->proto[0] != '\0' ? c->proto : NULL;
}

/* Mcp-Name for modern requests that name something. */
static const char *mcp_name_of(json_t *msg)
{
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *params = json_object_get(msg, "params");
    if (method == NULL)
        return NULL;
    if (strcmp(method, "tools/call") == 0 || strcmp(method, "prompts/get") == 0)
        return json_string_value(json_object_get(params, "name"));
    if (strcmp(method, "resources/read") == 0)
        return json_string_value(json_object_get(params, "uri"));
    return NULL;
}

static void hdr_add(json_t *arr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hdr_add(json_t *arr, const char *fmt, ...)
{
    char line[8300];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof line)
        json_array_append_new(arr, json_string(line));
}

static void on_x_headers(void *arg, struct hc_xfer *x, long status, const struct hc_headers *h);
static int on_x_data(void *arg, struct hc_xfer *x, const char *p, size_t n);
static void on_x_done(void *arg, struct hc_xfer *x, int err, const char *why);

static void start_transfer(struct mcpc *c, struct preq *p)
{
    json_t *hdrs = json_array();
    char *body = NULL, *token = NULL;
    const char *method = "POST", *url = c->url;
    p->due = 0;
    p->status = 0;
    p->sse = false;
    buf_reset(&p->body);
    free(p->www);
    p->www = NULL;
    bool get = p->kind == PK_GET || p->resuming;

    if ((p->kind == PK_REQUEST || p->kind == PK_LISTEN) && !p->resuming) {
        /* a fresh wire id on every send: a replay must not collide with an answer in flight */
        json_object_set_new(p->msg, "id", json_integer(++c->next_id));
        p->wire_id = c->next_id;
    }
    if (p->kind == PK_DELETE) {
        method = "DELETE";
    } else if (get) {
        method = "GET";
    } else if (c->era == MCPC_ERA_SSE) {
        url = c->post_url;
    }
    if (url == NULL) {
        mcpc_fail(c, p, MCPC_ERR_TRANSPORT, "not connected to the server");
        json_decref(hdrs);
        return;
    }
    hdr_add(hdrs, "Accept: %s", get ? "text/event-stream" : "application/json, text/event-stream");
    if (!get && p->kind != PK_DELETE) {
        hdr_add(hdrs, "Content-Type: application/json");
        body = json_dumps(p->msg, JSON_COMPACT);
    }
    if (c->era == MCPC_ERA_MODERN && p->msg != NULL) {
        hdr_add(hdrs, "MCP-Protocol-Version: %s", era_version(c));
        const char *m = json_string_value(json_object_get(p->msg, "method"));
        if (m != NULL)
            hdr_add(hdrs, "Mcp-Method: %s", m);
        const char *name = mcp_name_of(p->msg);
        if (name != NULL) {
            char *v = mcpc_header_value(name);
            hdr_add(hdrs, "Mcp-Name: %s", v);
            free(v);
        }
        if (m != NULL && strcmp(m, "tools/call") == 0) {
            json_t *ph = mcpc_tool_headers(c, json_object_get(p->msg, "params")), *v;
            size_t i;
            json_array_foreach (ph, i, v)
                json_array_append(hdrs, v);
            json_decref(ph);
        }
    } else if (c->era == MCPC_ERA_LEGACY || c->era == MCPC_ERA_SSE) {
        if (era_version(c) != NULL && c->era == MCPC_ERA_LEGACY)
            hdr_add(hdrs, "MCP-Protocol-Version: %s", era_version(c));
        if (c->session_id != NULL && p->use_session && c->era == MCPC_ERA_LEGACY)
            hdr_add(hdrs, "Mcp-Session-Id: %s", c->session_id);
    }
    if (p->resuming && p->sp_on && p->sp.last_id[0] != '\0')
        hdr_add(hdrs, "Last-Event-ID: %s", p->sp.last_id);
    if (c->o.auth != NULL) {
        if (oauthc_refresh_due(c->o.auth))
            mcpc_start_auth(c, NULL, true);
        if (oauthc_access_token(c->o.auth, &token) == 0) {
            char *line = xasprintf("Authorization: Bearer %s", token);
            json_array_append_new(hdrs, json_string(line));
            crypto_wipe(line, strlen(line));
            free(line);
        }
    }
    for (char **h = c->headers; h != NULL && *h != NULL; h++)
        if (token == NULL || strncasecmp(*h, "Authorization:", 14) != 0) /* signed in: ours */
            json_array_append_new(hdrs, json_string(*h));

    size_t nh = json_array_size(hdrs);
    const char **hv = xcalloc(nh + 1, sizeof *hv);
    for (size_t i = 0; i < nh; i++)
        hv[i] = json_string_value(json_array_get(hdrs, i));
    struct hc_req req = {.method = method,
                         .url = url,
                         .headers = hv,
                         .body = body,
                         .body_len = body != NULL ? strlen(body) : 0,
                         .timeout_ms = p->xfer_timeout_ms > 0 ? p->xfer_timeout_ms
                                       : p->kind == PK_POST || p->kind == PK_DELETE ? 30000
                                                                                    : 0};
    static const struct hc_xfer_cbs cbs = {on_x_headers, on_x_data, on_x_done};
    free(p->token);
    p->token = token;
    token = NULL;
    log_debug("-> %s %s%s%s", method, p->method != NULL ? p->method : "",
              p->resuming ? " (resuming)" : "", p->kind == PK_GET ? " (stream)" : "");
    int r = hc_multi_start(c->m, &req, &cbs, p, &p->x);
    if (r != 0) {
        p->x = NULL;
        mcpc_fail(c, p, MCPC_ERR_TRANSPORT, "cannot send to %s: %s", url, err_str(r));
    }
    /* the Authorization line inside hdrs is wiped with it */
    for (size_t i = 0; i < nh; i++) {
        const char *s = hv[i];
        if (strncasecmp(s, "Authorization:", 14) == 0)
            crypto_wipe((void *)s, strlen(s));
    }
    free(hv);
    json_decref(hdrs);
    free(body);
}

static void on_x_headers(void *arg, struct hc_xfer *x, long status, const struct hc_headers *h)
{
    struct preq *p = arg;
    struct mcpc *c = p->c;
    (void)x;
    p->status = status;
    raw_note_headers(p, status, h);
    if (p->kind == PK_GET) {
        pthread_mutex_lock(&c->mu);
        c->get_ready = true;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
    const char *ct = hc_header(h, "Content-Type");
    if (status == 401 || status == 403) {
        const char *w = hc_header(h, "WWW-Authenticate");
        p->www = w != NULL ? xstrdup(w) : NULL;
    }
    if (status >= 200 && status < 300 && ct != NULL &&
        strncasecmp(ct, "text/event-stream", 17) == 0) {
        p->sse = true;
        if (!p->sp_on) {
            sse_init(&p->sp, MCPC_MAX_MESSAGE, on_sse_event, p);
            p->sp_on = true;
        }
        if (p->kind == PK_GET || p->kind == PK_LISTEN)
            p->opened_at = mcpc_now_ms();
    }
    (void)c;
}

static int on_x_data(void *arg, struct hc_xfer *x, const char *d, size_t n)
{
    struct preq *p = arg;
    (void)x;
    if (p->sse) {
        int r = sse_feed(&p->sp, d, n);
        if (r == ERR_TOOBIG) {
            log_warn("the server sent an event larger than %u bytes; dropping the stream",
                     MCPC_MAX_MESSAGE);
            return 1;
        }
        return r;
    }
    if (buf_append(&p->body, d, n) != 0) {
        log_warn("the server's answer is larger than %u bytes; dropped", MCPC_MAX_MESSAGE);
        return 1;
    }
    return 0;
}

#define STREAM_LIVED_MS 10000 /* a stream open this long had nothing wrong with it */

static long long backoff_ms(int failures)
{
    long long ms = 500LL << (failures < 6 ? failures : 6); /* 0.5 s .. 32 s */
    return ms;
}

static bool challenge_is_step_up(const char *www)
{
    return www != NULL && strstr(www, "insufficient_scope") != NULL;
}

static void park(struct mcpc *c, struct preq *p)
{
    p->parked = true;
    (void)c;
}

/* A request's stream ended before its answer: resume with Last-Event-ID (legacy) when the
 * server gave event ids, else report. */
static void stream_ended(struct mcpc *c, struct preq *p, const char *why)
{
    bool can_resume = c->era == MCPC_ERA_LEGACY && p->sp_on && p->sp.last_id[0] != '\0';
    if (can_resume && p->resumes < MCPC_RESUMES) {
        p->resumes++;
        p->resuming = true;
        long retry = p->sp.retry_ms >= 0 ? p->sp.retry_ms : 1000;
        if (retry > 60000)
            retry = 60000;
        log_info("the stream of %s broke (%s); resuming in %ld ms", p->method, why, retry);
        sse_finish(&p->sp);
        p->due = mcpc_now_ms() + retry;
        return;
    }
    mcpc_fail(c, p, MCPC_ERR_TRANSPORT, "the server closed the stream of %s before answering (%s)",
              p->method != NULL ? p->method : "the request", why);
}

/* A listening stream ended: reconnect with backoff (it is how server notifications arrive). */
static void get_ended(struct mcpc *c, struct preq *p, const char *why)
{
    pthread_mutex_lock(&c->mu);
    c->get_ready = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (c->get_stream != p) {
        p->cancelled = true;
        return;
    }
    if (c->era == MCPC_ERA_SSE && c->post_url == NULL) {
        /* the HTTP+SSE stream ended before its endpoint event: connect (or a reconnection)
         * hears why */
        pthread_mutex_lock(&c->mu);
        c->endpoint_failed = true;
        if (p->status != 0 && p->status != 200)
            snprintf(c->endpoint_why, sizeof c->endpoint_why, "GET %s: HTTP %ld", c->url,
                     p->status);
        else
            snprintf(c->endpoint_why, sizeof c->endpoint_why, "GET %s: %s", c->url, why);
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        p->cancelled = true;
        c->get_stream = NULL;
        if (c->reinit) {
            c->reinit = false;
            for (struct preq *q = c->reqs, *nx; q != NULL; q = nx) {
                nx = q->next;
                if (!q->parked)
                    continue;
                q->parked = false;
                mcpc_fail(c, q, MCPC_ERR_TRANSPORT, "the SSE connection to the server is lost");
                mcpc_maybe_release(c, q);
            }
            if (c->ev.on_lost != NULL)
                c->ev.on_lost(c->ev_arg, "the SSE connection to the server is lost");
        }
        return;
    }
    if (p->status == 405 || (p->status == 404 && c->era == MCPC_ERA_MODERN)) {
        log_debug("the server offers no listening stream (HTTP %ld)", p->status);
        p->cancelled = true;
        c->get_stream = NULL;
        return;
    }
    /* a stream that lived a while was fine: only quick ends in a row count as failures (a
     * server that opens and closes at once is retried with backoff, then given up on) */
    bool lived = p->opened_at > 0 && mcpc_now_ms() - p->opened_at >= STREAM_LIVED_MS;
    p->opened_at = 0;
    if (lived)
        p->failures = 0;
    p->failures++;
    if (p->failures > 8) {
        log_warn("the server's notification stream keeps failing (%s); giving up on it", why);
        p->cancelled = true;
        c->get_stream = NULL;
        if (c->era == MCPC_ERA_SSE && c->ev.on_lost != NULL)
            c->ev.on_lost(c->ev_arg, "the SSE connection to the server is lost");
        return;
    }
    /* retry: as the server says (within 0.1-60 s) the first time, then no less than the
     * backoff */
    long long wait = backoff_ms(p->failures - 1);
    if (p->sse && p->sp_on && p->sp.retry_ms >= 0) {
        long long r = p->sp.retry_ms < 100 ? 100 : p->sp.retry_ms > 60000 ? 60000 : p->sp.retry_ms;
        wait = p->failures > 1 && r < wait ? wait : r;
    }
    if (p->kind == PK_GET && c->era == MCPC_ERA_LEGACY && p->sp_on)
        p->resuming = p->sp.last_id[0] != '\0';
    if (p->sp_on)
        sse_finish(&p->sp);
    if (c->era == MCPC_ERA_SSE) {
        /* a new HTTP+SSE stream is a new session: initialize again, at once after a stream
         * that lived, with backoff after streams that end as soon as they open */
        c->sse_drops = lived ? 0 : c->sse_drops + 1;
        long long delay = c->sse_drops > 1 ? backoff_ms(c->sse_drops - 2) : 0;
        log_info("the SSE stream ended (%s); reconnecting%s", why, delay > 0 ? " after a pause" : "");
        p->cancelled = true;
        c->get_stream = NULL;
        mcpc_start_reinit(c);
        if (c->get_stream != NULL && delay > 0)
            c->get_stream->due = mcpc_now_ms() + delay;
        return;
    }
    if (p->kind == PK_LISTEN) {
        p->completed = false;
        p->cancelled = false;
    }
    log_debug("the notification stream ended (%s); again in %lld ms", why, wait);
    p->due = mcpc_now_ms() + wait;
}

static void on_x_done(void *arg, struct hc_xfer *x, int err, const char *why)
{
    struct preq *p = arg;
    struct mcpc *c = p->c;
    (void)x;
    p->x = NULL;
    if (c->closing)
        return;
    if (p->sp_on && p->sse && err == 0)
        sse_finish(&p->sp);
    if (p->cancelled) {
        mcpc_maybe_release(c, p);
        return;
    }
    if (p->raw != NULL && err != 0) {
        p->raw->err = err;
        snprintf(p->raw->why, sizeof p->raw->why, "%s", why);
    }
    long st = p->status;

    /* authorization */
    if (err == 0 && (st == 401 || (st == 403 && challenge_is_step_up(p->www))) &&
        p->kind != PK_DELETE) {
        if (c->o.auth != NULL && p->auth_tries < MCPC_AUTH_TRIES) {
            p->auth_tries++;
            park(c, p);
            mcpc_start_auth(c, p, false);
            return;
        }
        if (p->kind == PK_GET || p->kind == PK_POST) {
            log_warn("the server refused %s (HTTP %ld)",
                     p->kind == PK_GET ? "the stream" : "a message", st);
            p->cancelled = true;
            if (c->get_stream == p)
                c->get_stream = NULL;
        } else {
            mcpc_fail(c, p, MCPC_ERR_AUTH,
                      c->o.auth != NULL
                          ? "the server still refuses the credentials (HTTP %ld) after "
                            "signing in again"
                          : "the server requires authorization (HTTP %ld)",
                      st);
        }
        mcpc_maybe_release(c, p);
        return;
    }
    /* a lost legacy session: initialize again, then replay */
    if (err == 0 && st == 404 && c->era == MCPC_ERA_LEGACY && c->session_id != NULL &&
        p->use_session && p->raw == NULL && p->kind != PK_DELETE) {
        if (!p->reinit_done || p->kind == PK_GET) {
            p->reinit_done = true;
            p->resuming = false;
            park(c, p);
            mcpc_start_reinit(c);
            return;
        }
        mcpc_fail(c, p, MCPC_ERR_TRANSPORT, "the server lost the session again after a new one");
        mcpc_maybe_release(c, p);
        return;
    }

    switch (p->kind) {
    case PK_GET:
        get_ended(c, p, err != 0 ? why : st >= 300 ? "refused" : "closed by the server");
        break;
    case PK_LISTEN:
        if (err == 0 && !p->sse && p->body.len > 0)
            handle_text(c, p, p->body.data, p->body.len);
        if (err == 0 && st >= 400 && st != 405) {
            log_warn("the server refused subscriptions/listen (HTTP %ld)", st);
            p->cancelled = true;
            if (c->get_stream == p)
                c->get_stream = NULL;
            break;
        }
        get_ended(c, p, err != 0 ? why : "closed by the server");
        break;
    case PK_POST:
    case PK_DELETE:
        if (err != 0)
            log_warn("could not deliver a message to the server: %s", why);
        else if (st >= 300 && !(p->kind == PK_DELETE && (st == 405 || st == 404)))
            log_warn("the server refused a message (HTTP %ld)", st);
        break;
    case PK_REQUEST:
        if (p->completed)
            break;
        if (err != 0) {
            if (p->sse || p->resuming)
                stream_ended(c, p, why);
            else
                mcpc_fail(c, p, MCPC_ERR_TRANSPORT, "%s", why);
            break;
        }
        if (p->resuming && st >= 400) {
            mcpc_fail(c, p, MCPC_ERR_TRANSPORT,
                      "the server could not resume the stream of %s (HTTP %ld)", p->method, st);
            break;
        }
        if (p->sse) {
            stream_ended(c, p, "the stream ended");
            break;
        }
        if (st == 202 && c->era == MCPC_ERA_SSE)
            break; /* the answer comes on the SSE stream */
        if (p->body.len > 0) {
            json_t *doc = NULL;
            struct jsonrpc_fail f;
            if (jsonrpc_parse(p->body.data, p->body.len, MCPC_MAX_MESSAGE, 64, &doc, &f) == 0) {
                json_t *eid = json_object_get(doc, "id");
                if (json_is_object(doc) && json_object_get(doc, "error") != NULL &&
                    (eid == NULL || json_is_null(eid))) {
                    /* an error without an id (a transport-level refusal): it is ours */
                    json_object_set_new(doc, "id", json_integer(p->wire_id));
                }
                if (p->raw != NULL && p->raw->body == NULL)
                    p->raw->body = json_incref(doc);
                if (json_is_object(doc) && json_object_get(doc, "jsonrpc") != NULL)
                    handle_message(c, p, doc);
                json_decref(doc);
            }
        }
        if (!p->completed) {
            if (p->raw != NULL) {
                complete(c, p, NULL);
                break;
            }
            char snippet[130] = "";
            if (p->body.len > 0)
                reason_quote(p->body.data, 120, snippet);
            mcpc_fail(c, p, MCPC_ERR_TRANSPORT, "HTTP %ld from the server%s%s", st,
                      snippet[0] ? ": " : "", snippet);
        }
        break;
    }
    mcpc_maybe_release(c, p);
}

/* ---- the listening stream ---- */

void mcpc_stream_open(struct mcpc *c)
{
    if (c->get_stream != NULL)
        return;
    struct preq *p;
    if (c->era == MCPC_ERA_MODERN) {
        if (c->listen_filter == NULL)
            return;
        json_t *params = json_pack("{s:O}", "notifications", c->listen_filter);
        p = mcpc_preq_new(c, PK_LISTEN, "subscriptions/listen", params);
        mcpc_inject_meta(c, p);
    } else {
        p = mcpc_preq_new(c, PK_GET, NULL, NULL);
    }
    p->due = 1;
    c->get_stream = p;
    mcpc_list_add(c, p);
}

/* ---- the loop ---- */

void mcpc_inject_meta(struct mcpc *c, struct preq *p)
{
    if (c->era != MCPC_ERA_MODERN || p->msg == NULL || p->kind == PK_POST)
        return;
    json_t *params = json_object_get(p->msg, "params");
    if (params == NULL) {
        params = json_object();
        json_object_set_new(p->msg, "params", params);
    }
    json_t *meta = json_object_get(params, "_meta");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(params, "_meta", meta);
    }
    if (json_object_get(meta, "io.modelcontextprotocol/protocolVersion") == NULL)
        json_object_set_new(meta, "io.modelcontextprotocol/protocolVersion", json_string(c->proto));
    if (json_object_get(meta, "io.modelcontextprotocol/clientCapabilities") == NULL)
        json_object_set(meta, "io.modelcontextprotocol/clientCapabilities", c->capabilities);
    if (json_object_get(meta, "io.modelcontextprotocol/clientInfo") == NULL)
        json_object_set(meta, "io.modelcontextprotocol/clientInfo", c->client_info);
}

/* Modern tools/call for a tool whose schema is not known: list the tools first, so the
 * x-mcp-header headers can be sent. */
static void tools_then(struct mcpc *c, struct preq *lp, json_t *resp)
{
    (void)resp;
    c->tools_loaded = true;
    for (struct preq *p = c->reqs; p != NULL; p = p->next) {
        if (p->parked && p->kind == PK_REQUEST && p->method != NULL &&
            strcmp(p->method, "tools/call") == 0 && p != lp) {
            p->parked = false;
            p->due = 1;
        }
    }
}

static void accept_send(struct mcpc *c, struct preq *p)
{
    mcpc_list_add(c, p);
    if (p->kind == PK_GET) {
        if (c->get_stream != NULL) {
            p->cancelled = true; /* one listening stream is enough */
            mcpc_maybe_release(c, p);
            return;
        }
        c->get_stream = p;
    }
    mcpc_inject_meta(c, p);
    if (c->era == MCPC_ERA_MODERN && p->kind == PK_REQUEST && p->method != NULL &&
        strcmp(p->method, "tools/call") == 0 && !c->tools_loaded) {
        bool listing = false;
        for (struct preq *q = c->reqs; q != NULL; q = q->next)
            if (q->then == tools_then)
                listing = true;
        if (!listing) {
            struct preq *lp = mcpc_preq_new(c, PK_REQUEST, "tools/list", NULL);
            lp->then = tools_then;
            mcpc_inject_meta(c, lp);
            lp->due = 1;
            mcpc_list_add(c, lp);
        }
        p->parked = true;
        return;
    }
    bool auth_busy;
    pthread_mutex_lock(&c->mu);
    auth_busy = c->auth_running && !c->auth_refresh_only;
    pthread_mutex_unlock(&c->mu);
    if (c->reinit || auth_busy) {
        p->parked = true; /* sent when the sign-in or the new session is ready */
        return;
    }
    p->due = 1;
}

static void do_cancel(struct mcpc *c, uint64_t handle, const char *reason)
{
    for (struct preq *p = c->reqs; p != NULL; p = p->next) {
        if (p->handle != handle || p->cancelled)
            continue;
        p->cancelled = true;
        if (c->era != MCPC_ERA_MODERN && p->kind == PK_REQUEST && !p->completed &&
            p->wire_id != 0) {
            json_t *params = json_pack("{s:I}", "requestId", (json_int_t)p->wire_id);
            if (reason != NULL)
                json_object_set_new(params, "reason", json_string(reason));
            struct preq *n = mcpc_preq_new(c, PK_POST, "notifications/cancelled", params);
            n->due = 1;
            mcpc_list_add(c, n);
        }
        p->parked = false;
        p->due = 0;
        if (p->x != NULL) {
            struct hc_xfer *x = p->x;
            hc_xfer_abort(c->m, x); /* on_x_done releases p */
        } else {
            mcpc_maybe_release(c, p);
        }
        return;
    }
}

static void run_commands(struct mcpc *c, bool *stop)
{
    pthread_mutex_lock(&c->mu);
    struct cmd *list = c->cmds;
    c->cmds = c->cmds_tail = NULL;
    pthread_mutex_unlock(&c->mu);
    while (list != NULL) {
        struct cmd *cm = list;
        list = cm->next;
        switch (cm->kind) {
        case CMD_SEND: accept_send(c, cm->p); break;
        case CMD_CANCEL: do_cancel(c, cm->handle, cm->reason); break;
        case CMD_STOP: *stop = true; break;
        case CMD_LISTEN:
            json_decref(c->listen_filter);
            c->listen_filter = cm->filter;
            cm->filter = NULL;
            if (c->get_stream != NULL && c->get_stream->kind == PK_LISTEN) {
                struct preq *old = c->get_stream;
                c->get_stream = NULL;
                old->cancelled = true;
                old->due = 0;
                if (old->x != NULL)
                    hc_xfer_abort(c->m, old->x);
                else
                    mcpc_maybe_release(c, old);
            }
            mcpc_stream_open(c);
            break;
        }
        json_decref(cm->filter);
        free(cm->reason);
        free(cm);
    }
}

static void maybe_ping(struct mcpc *c, long long now)
{
    if (c->o.ping_interval_s <= 0 || c->era == MCPC_ERA_NONE)
        return;
    if (c->next_ping == 0) {
        c->next_ping = now + c->o.ping_interval_s * 1000LL;
        return;
    }
    if (now < c->next_ping)
        return;
    c->next_ping = now + c->o.ping_interval_s * 1000LL;
    /* ping is gone from 2026-07-28; server/discover is the cheapest request there */
    struct preq *p =
        mcpc_preq_new(c, PK_REQUEST, c->era == MCPC_ERA_MODERN ? "server/discover" : "ping", NULL);
    log_debug("keep-alive %s", p->method);
    accept_send(c, p);
}

static void *loop_main(void *arg)
{
    struct mcpc *c = arg;
    bool stop = false;
    while (!stop) {
        run_commands(c, &stop);
        if (stop)
            break;
        mcpc_auth_collect(c);
        long long now = mcpc_now_ms(), next = now + 1000;
        maybe_ping(c, now);
        /* HTTP+SSE: a re-initialization waits for the stream's endpoint event */
        if (c->reinit && c->era == MCPC_ERA_SSE && c->post_url != NULL) {
            bool sent = false;
            for (struct preq *p = c->reqs; p != NULL; p = p->next)
                if (p->then == mcpc_reinit_then && !p->completed)
                    sent = true;
            if (!sent) {
                struct preq *ip =
                    mcpc_preq_new(c, PK_REQUEST, "initialize", json_deep_copy(c->init_params));
                ip->then = mcpc_reinit_then;
                ip->raw = xcalloc(1, sizeof *ip->raw);
                ip->raw_owned = true;
                ip->due = 1;
                mcpc_list_add(c, ip);
            }
        }
        for (struct preq *p = c->reqs, *nx; p != NULL; p = nx) {
            nx = p->next;
            if (p->due > 0 && p->due <= now && !p->parked && p->x == NULL) {
                if (!mcpc_waits_reinit(c, p))
                    start_transfer(c, p);
            } else if (p->due > now && p->due < next) {
                next = p->due;
            }
        }
        if (c->next_ping > 0 && c->next_ping < next)
            next = c->next_ping;
        int wait = (int)(next - mcpc_now_ms());
        if (wait < 0)
            wait = 0;
        hc_multi_poll(c->m, -1, wait);
    }
    /* closing: every request still waiting hears it */
    c->closing = true; /* on_x_done only forgets the transfer now */
    for (struct preq *p = c->reqs; p != NULL; p = p->next)
        if (p->x != NULL)
            hc_xfer_abort(c->m, p->x);
    while (c->reqs != NULL) {
        struct preq *p = c->reqs;
        if (p->kind == PK_REQUEST && !p->cancelled && !p->completed)
            mcpc_fail(c, p, MCPC_ERR_CLOSED, "the connection to the server is closing");
        list_del(c, p);
        preq_free(p);
    }
    return NULL;
}

/* ---- API ---- */

static char **strv_dup(const char *const *v)
{
    size_t n = 0;
    while (v != NULL && v[n] != NULL)
        n++;
    char **out = xcalloc(n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v[i]);
    return out;
}

int mcpc_new(const struct mcpc_opts *o, const struct mcpc_events *ev, void *ev_arg,
             struct mcpc **out)
{
    *out = NULL;
    char why[300];
    if (o->url == NULL || hc_url_check(&o->http, o->url, why, sizeof why) != 0)
        return ERR_INVALID;
    struct mcpc *c = xcalloc(1, sizeof *c);
    c->o = *o;
    c->url = xstrdup(o->url);
    c->o.url = c->url;
    c->headers = strv_dup(o->headers);
    c->o.headers = NULL;
    c->client_info = o->client_info != NULL
                         ? json_deep_copy(o->client_info)
                         : json_pack("{s:s, s:s}", "name", "mcpgate", "version", MCPGATE_VERSION);
    c->capabilities = o->capabilities != NULL ? json_deep_copy(o->capabilities) : json_object();
    c->pinned = o->protocol_version != NULL ? xstrdup(o->protocol_version) : NULL;
    c->o.protocol_version = c->pinned;
    if (ev != NULL)
        c->ev = *ev;
    c->ev_arg = ev_arg;
    c->tool_schemas = json_object();
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if ((c->m = hc_multi_new(&c->o.http)) == NULL) {
        mcpc_free(c);
        return ERR_INTERNAL;
    }
    if (pthread_create(&c->loop, NULL, loop_main, c) != 0) {
        mcpc_free(c);
        return ERR_INTERNAL;
    }
    c->loop_started = true;
    *out = c;
    return 0;
}

static void enqueue(struct mcpc *c, struct cmd *cm)
{
    pthread_mutex_lock(&c->mu);
    if (c->cmds_tail != NULL)
        c->cmds_tail->next = cm;
    else
        c->cmds = cm;
    c->cmds_tail = cm;
    pthread_mutex_unlock(&c->mu);
    hc_multi_wakeup(c->m);
}

int mcpc_submit(struct mcpc *c, struct preq *p, bool wait, bool raw, int timeout_ms, json_t **resp,
                struct rawres *rawout)
{
    struct waiter *w = NULL;
    if (resp != NULL)
        *resp = NULL;
    if (wait) {
        w = xcalloc(1, sizeof *w);
        w->refs = 2; /* the caller's and the request's */
        w->want_raw = raw;
        p->sync = w;
        if (raw)
            p->raw = &w->raw;
    }
    pthread_mutex_lock(&c->mu);
    bool stopping = c->stopping;
    pthread_mutex_unlock(&c->mu);
    if (stopping) {
        p->cb = NULL; /* the caller hears it from the return value */
        preq_free(p);
        if (w != NULL)
            waiter_unref(c, w);
        return ERR_CANCELLED;
    }
    uint64_t handle = p->handle;
    struct cmd *cm = xcalloc(1, sizeof *cm);
    cm->kind = CMD_SEND;
    cm->p = p;
    enqueue(c, cm);
    if (w == NULL)
        return 0;
    struct timespec until = clock_deadline(timeout_ms);
    int r = 0;
    pthread_mutex_lock(&c->mu);
    while (!w->done && r == 0) {
        if (timeout_ms > 0) {
            if (pthread_cond_timedwait(&c->cv, &c->mu, &until) != 0 && !w->done)
                r = ERR_TIMEOUT;
        } else {
            pthread_cond_wait(&c->cv, &c->mu);
        }
    }
    if (r == 0) {
        if (resp != NULL) {
            *resp = w->resp;
            w->resp = NULL;
        }
        if (rawout != NULL) {
            *rawout = w->raw; /* moved */
            memset(&w->raw, 0, sizeof w->raw);
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (r == ERR_TIMEOUT)
        mcpc_cancel(c, handle, "timed out");
    waiter_unref(c, w);
    return r;
}

void mcpc_rawres_clear(struct rawres *r)
{
    if (r == NULL)
        return;
    free(r->session_id);
    free(r->ctype);
    json_decref(r->msg);
    json_decref(r->body);
    memset(r, 0, sizeof *r);
}

int mcpc_raw_call(struct mcpc *c, enum preq_kind kind, const char *method, json_t *params,
                  bool use_session, int timeout_ms, struct rawres *out)
{
    memset(out, 0, sizeof *out);
    struct preq *p = mcpc_preq_new(c, kind, method, params);
    p->use_session = use_session;
    /* each exchange is capped, not the wait: a sign-in in the middle may take minutes */
    p->xfer_timeout_ms = timeout_ms;
    json_t *resp = NULL;
    int r = mcpc_submit(c, p, true, true, 0, &resp, out);
    if (r == ERR_TIMEOUT) {
        snprintf(out->why, sizeof out->why, "the server did not answer %s within %d s",
                 method != NULL ? method : "the request", timeout_ms / 1000);
        out->err = ERR_TIMEOUT;
    } else if (r != 0) {
        snprintf(out->why, sizeof out->why, "the client is closing");
        out->err = r;
    }
    if (out->msg == NULL && resp != NULL)
        out->msg = json_incref(resp);
    json_decref(resp);
    return r;
}

static atomic_bool left_behind;

bool mcpc_left_behind(void)
{
    return atomic_load(&left_behind);
}

void mcpc_free(struct mcpc *c)
{
    if (c == NULL)
        return;
    if (c->loop_started) {
        if (c->era == MCPC_ERA_LEGACY && c->session_id != NULL) {
            struct rawres rr;
            if (mcpc_raw_call(c, PK_DELETE, NULL, NULL, true, 2000, &rr) != 0)
                log_debug("DELETE of the session: no answer");
            mcpc_rawres_clear(&rr);
        }
        pthread_mutex_lock(&c->mu);
        c->stopping = true;
        pthread_mutex_unlock(&c->mu);
        struct cmd *cm = xcalloc(1, sizeof *cm);
        cm->kind = CMD_STOP;
        enqueue(c, cm);
        pthread_join(c->loop, NULL);
    }
    pthread_mutex_lock(&c->mu);
    bool auth = c->auth_running;
    pthread_mutex_unlock(&c->mu);
    if (auth) {
        /* a sign-in waiting for the browser cannot be interrupted; the process is ending */
        pthread_detach(c->auth_thread);
        atomic_store(&left_behind, true);
        log_debug("leaving a sign-in in progress behind");
        return;
    }
    while (c->cmds != NULL) {
        struct cmd *cm = c->cmds;
        c->cmds = cm->next;
        if (cm->p != NULL)
            preq_free(cm->p);
        json_decref(cm->filter);
        free(cm->reason);
        free(cm);
    }
    hc_multi_free(c->m);
    for (char **h = c->headers; h != NULL && *h != NULL; h++)
        free(*h);
    free(c->headers);
    free(c->url);
    free(c->pinned);
    json_decref(c->client_info);
    json_decref(c->capabilities);
    json_decref(c->server_info);
    json_decref(c->init_params);
    json_decref(c->listen_filter);
    json_decref(c->tool_schemas);
    free(c->session_id);
    free(c->post_url);
    free(c->auth_www);
    free(c->auth_failed);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

int mcpc_request(struct mcpc *c, const char *method, json_t *params, mcpc_reply_fn cb, void *arg,
                 uint64_t *handle)
{
    struct preq *p = mcpc_preq_new(c, PK_REQUEST, method, params);
    p->cb = cb;
    p->arg = arg;
    if (handle != NULL)
        *handle = p->handle;
    return mcpc_submit(c, p, false, false, 0, NULL, NULL);
}

int mcpc_request_sync(struct mcpc *c, const char *method, json_t *params, int timeout_ms,
                      json_t **response)
{
    struct preq *p = mcpc_preq_new(c, PK_REQUEST, method, params);
    return mcpc_submit(c, p, true, false, timeout_ms, response, NULL);
}

void mcpc_cancel(struct mcpc *c, uint64_t handle, const char *reason)
{
    struct cmd *cm = xcalloc(1, sizeof *cm);
    cm->kind = CMD_CANCEL;
    cm->handle = handle;
    cm->reason = reason != NULL ? xstrdup(reason) : NULL;
    enqueue(c, cm);
}

int mcpc_notify(struct mcpc *c, const char *method, json_t *params)
{
    struct preq *p = mcpc_preq_new(c, PK_POST, method, params);
    return mcpc_submit(c, p, false, false, 0, NULL, NULL);
}

int mcpc_respond(struct mcpc *c, json_t *msg)
{
    struct preq *p = mcpc_preq_new(c, PK_POST, NULL, NULL);
    p->msg = msg;
    return mcpc_submit(c, p, false, false, 0, NULL, NULL);
}

int mcpc_listen(struct mcpc *c, json_t *filter)
{
    struct cmd *cm = xcalloc(1, sizeof *cm);
    cm->kind = CMD_LISTEN;
    cm->filter = filter;
    enqueue(c, cm);
    return 0;
}

enum mcpc_era mcpc_era(struct mcpc *c)
{
    pthread_mutex_lock(&c->mu);
    enum mcpc_era e = c->era;
    pthread_mutex_unlock(&c->mu);
    return e;
}

const char *mcpc_protocol_version(struct mcpc *c)
{
    return c->proto;
}

json_t *mcpc_server_info(struct mcpc *c)
{
    pthread_mutex_lock(&c->mu);
    json_t *v = c->server_info != NULL ? json_incref(c->server_info) : NULL;
    pthread_mutex_unlock(&c->mu);
    return v;
}
