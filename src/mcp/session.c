/* A session: parses what the transport feeds it, chooses the era of each request, runs the
 * legacy lifecycle (initialize -> initialized), tracks requests in flight for cancellation, and
 * matches the client's answers to server-to-client requests. */
#include "mcp/session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "mcp/mcp_int.h"

#define ASK_TIMEOUT_SECONDS 600 /* how long a server-to-client request may wait for its answer */

static atomic_ullong session_keys;

struct mcp_session *mcp_session_new(struct mcp_server *srv, const struct mcp_session_io *io)
{
    struct mcp_session *s = xcalloc(1, sizeof(*s));
    s->srv = srv;
    s->key = atomic_fetch_add(&session_keys, 1) + 1;
    s->io = *io;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->refs = 1;
    s->state = SESSION_NEW;
    s->log_level = 0;
    s->subscriptions = json_object();
    server_session_link(srv, s);
    return s;
}

static void inflight_free(struct mcp_session *s, struct inflight *f)
{
    if (f->stream != NULL && s->io.hold != NULL)
        s->io.hold(s->io.arg, f->stream, false);
    if (f->is_listen) {
        size_t i;
        json_t *u;
        json_array_foreach(json_object_get(f->listen_filter, "resourceSubscriptions"), i, u)
            server_watch(s->srv, json_string_value(u), -1);
    }
    json_decref(f->id);
    json_decref(f->listen_filter);
    free(f->key);
    free(f);
}

void session_ref(struct mcp_session *s)
{
    pthread_mutex_lock(&s->mu);
    s->refs++;
    pthread_mutex_unlock(&s->mu);
}

void session_unref(struct mcp_session *s)
{
    pthread_mutex_lock(&s->mu);
    int left = --s->refs;
    pthread_mutex_unlock(&s->mu);
    if (left > 0)
        return;
    while (s->inflight != NULL) {
        struct inflight *f = s->inflight;
        s->inflight = f->next;
        inflight_free(s, f);
    }
    json_decref(s->client_caps);
    json_decref(s->client_info);
    json_decref(s->subscriptions);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void session_send(struct mcp_session *s, void *stream, json_t *msg, bool final)
{
    /* Compact output never contains a raw newline: strings escape it. */
    char *txt = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (txt == NULL) {
        log_error("could not serialize an outgoing message");
        return;
    }
    s->io.send(s->io.arg, stream, txt, strlen(txt), final);
    free(txt);
}

static void send_error(struct mcp_session *s, void *stream, json_t *id, int code, const char *msg)
{
    session_send(s, stream, jsonrpc_error(id, code, msg, NULL), true);
}

/* Adds an answer (stolen; NULL for a request that ends without one) to a batch; the last one
 * sends the array. */
static void batch_answer(struct mcp_session *s, struct batch *b, json_t *msg)
{
    pthread_mutex_lock(&b->mu);
    if (msg != NULL)
        json_array_append_new(b->answers, msg);
    bool last = --b->pending == 0;
    pthread_mutex_unlock(&b->mu);
    if (!last)
        return;
    if (json_array_size(b->answers) > 0)
        session_send(s, b->stream, json_incref(b->answers), true);
    json_decref(b->answers);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* ---- requests in flight ---- */

static struct inflight *inflight_add(struct mcp_session *s, json_t *id, void *stream)
{
    struct inflight *f = xcalloc(1, sizeof(*f));
    f->id = json_incref(id);
    f->key = jsonrpc_id_key(id);
    f->stream = stream;
    if (stream != NULL && s->io.hold != NULL)
        s->io.hold(s->io.arg, stream, true);
    pthread_mutex_lock(&s->mu);
    f->next = s->inflight;
    s->inflight = f;
    pthread_mutex_unlock(&s->mu);
    return f;
}

/* Unlinks f; returns whether it had been cancelled. Frees f. Waits while another thread runs
 * f's on_cancel hook (the hook's own thread may finish f). */
static bool inflight_remove(struct mcp_session *s, struct inflight *f)
{
    pthread_mutex_lock(&s->mu);
    while (s->cancelling == f && !pthread_equal(s->cancel_thread, pthread_self()))
        pthread_cond_wait(&s->cv, &s->mu);
    for (struct inflight **pp = &s->inflight; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    bool cancelled = f->cancelled;
    pthread_mutex_unlock(&s->mu);
    inflight_free(s, f);
    return cancelled;
}

void session_finish(struct mcp_ctx *ctx, json_t *result, json_t *error)
{
    struct mcp_session *s = ctx->s;
    bool cancelled = false;
    if (ctx->req != NULL) {
        cancelled = inflight_remove(s, ctx->req);
        ctx->req = NULL;
    }
    if (cancelled) {
        /* The client said it will ignore the answer; the spec says not to send one. */
        log_debug("request %s cancelled; response dropped", ctx->method);
        json_decref(result);
        json_decref(error);
        if (ctx->batch != NULL)
            batch_answer(s, ctx->batch, NULL);
        ctx_free(ctx);
        return;
    }
    json_t *msg;
    if (result != NULL) {
        if (ctx->modern) {
            if (json_object_get(result, "resultType") == NULL)
                json_object_set_new(result, "resultType", json_string("complete"));
            json_t *meta = json_object_get(result, "_meta");
            if (!json_is_object(meta)) {
                meta = json_object();
                json_object_set_new(result, "_meta", meta);
            }
            json_object_set_new(meta, "io.modelcontextprotocol/serverInfo", server_info(s->srv));
        }
        msg = jsonrpc_result(ctx->id, result);
    } else {
        msg = error;
    }
    if (ctx->batch != NULL)
        batch_answer(s, ctx->batch, msg);
    else
        session_send(s, ctx->stream, msg, true);
    ctx_free(ctx);
}

/* ---- server-to-client requests (legacy era) ---- */

int session_request_client(struct mcp_ctx *ctx, const char *method, json_t *params,
                           json_t **result)
{
    struct mcp_session *s = ctx->s;
    *result = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->closed || s->input_closed || (ctx->req != NULL && ctx->req->cancelled)) {
        pthread_mutex_unlock(&s->mu);
        json_decref(params);
        return ERR_CANCELLED;
    }
    struct pending *p = xcalloc(1, sizeof(*p));
    unsigned long long n = ++s->next_out_id;
    json_t *id = json_string_nocheck("");
    char idbuf[48];
    snprintf(idbuf, sizeof(idbuf), "mcpgate-%llu", n);
    json_string_set(id, idbuf);
    p->key = jsonrpc_id_key(id);
    p->next = s->pending;
    s->pending = p;
    pthread_mutex_unlock(&s->mu);

    session_send(s, ctx->stream, jsonrpc_request(id, method, params), false);
    json_decref(id);

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += ASK_TIMEOUT_SECONDS;
    int r = 0;
    struct pool *pool = server_pool(s->srv);
    pool_block_enter(pool);
    pthread_mutex_lock(&s->mu);
    while (!p->done && !s->closed && !s->input_closed &&
           !(ctx->req != NULL && ctx->req->cancelled)) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &deadline) == ETIMEDOUT) {
            r = ERR_TIMEOUT;
            break;
        }
    }
    for (struct pending **pp = &s->pending; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    pool_block_exit(pool);
    if (p->done) {
        *result = p->result;
        r = p->is_error ? ERR_INVALID : 0;
    } else {
        json_decref(p->result);
        if (r == 0)
            r = ERR_CANCELLED;
    }
    free(p->key);
    free(p);
    return r;
}

static void deliver_response(struct mcp_session *s, json_t *msg, json_t *id)
{
    if (id == NULL) {
        log_warn("client sent an error response without an id: %s",
                 json_string_value(json_object_get(json_object_get(msg, "error"), "message")));
        return;
    }
    char *key = jsonrpc_id_key(id);
    bool found = false;
    pthread_mutex_lock(&s->mu);
    for (struct pending *p = s->pending; p != NULL; p = p->next) {
        if (!p->done && strcmp(p->key, key) == 0) {
            json_t *err = json_object_get(msg, "error");
            p->is_error = err != NULL;
            p->result = json_incref(err != NULL ? err : json_object_get(msg, "result"));
            p->done = true;
            found = true;
            pthread_cond_broadcast(&s->cv);
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (!found)
        log_debug("response to unknown or finished request %s ignored", key);
    free(key);
}

/* Calls the on_cancel hook of each cancelled deferred request, once each, outside the lock;
 * one hook at a time per session. */
static void fire_cancels(struct mcp_session *s)
{
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->cancelling != NULL)
            pthread_cond_wait(&s->cv, &s->mu);
        struct inflight *f = s->inflight;
        while (f != NULL && !(f->cancelled && f->on_cancel != NULL))
            f = f->next;
        if (f == NULL)
            break;
        void (*fn)(void *) = f->on_cancel;
        void *arg = f->on_cancel_arg;
        f->on_cancel = NULL;
        s->cancelling = f;
        s->cancel_thread = pthread_self();
        pthread_mutex_unlock(&s->mu);
        fn(arg); /* may finish f: f is not touched after this */
        pthread_mutex_lock(&s->mu);
        s->cancelling = NULL;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

int mcp_ctx_on_cancel(struct mcp_ctx *ctx, void (*fn)(void *arg), void *arg)
{
    struct mcp_session *s = ctx->s;
    int r = 0;
    pthread_mutex_lock(&s->mu);
    if (s->closed || (ctx->req != NULL && ctx->req->cancelled)) {
        r = ERR_CANCELLED;
    } else if (ctx->req != NULL) {
        ctx->req->on_cancel = fn;
        ctx->req->on_cancel_arg = arg;
    }
    pthread_mutex_unlock(&s->mu);
    return r;
}

/* ---- notifications from the client ---- */

/* A cancelled listen has no job that would remove it: unlink and free those here. */
static void reap_listens(struct mcp_session *s)
{
    struct inflight *gone = NULL;
    pthread_mutex_lock(&s->mu);
    struct inflight **pp = &s->inflight;
    while (*pp != NULL) {
        struct inflight *f = *pp;
        if (f->is_listen && f->cancelled) {
            *pp = f->next;
            f->next = gone;
            gone = f;
        } else {
            pp = &f->next;
        }
    }
    pthread_mutex_unlock(&s->mu);
    while (gone != NULL) {
        struct inflight *f = gone;
        gone = f->next;
        inflight_free(s, f);
    }
}

static void cancel_request(struct mcp_session *s, json_t *params)
{
    json_t *rid = json_object_get(params, "requestId");
    if (!json_is_string(rid) && !json_is_integer(rid))
        return;
    char *key = jsonrpc_id_key(rid);
    pthread_mutex_lock(&s->mu);
    for (struct inflight *f = s->inflight; f != NULL; f = f->next) {
        if (strcmp(f->key, key) == 0) {
            f->cancelled = true;
            pthread_cond_broadcast(&s->cv);
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    reap_listens(s);
    fire_cancels(s);
    free(key);
}

static void handle_notification(struct mcp_session *s, const char *method, json_t *params)
{
    if (strcmp(method, "notifications/initialized") == 0) {
        pthread_mutex_lock(&s->mu);
        if (s->state == SESSION_INITIALIZED)
            s->state = SESSION_READY;
        pthread_mutex_unlock(&s->mu);
    } else if (strcmp(method, "notifications/cancelled") == 0) {
        cancel_request(s, params);
    } else {
        log_debug("notification %s ignored", method);
    }
}

/* ---- requests ---- */

static const char *const modern_versions[] = {MCP_VERSION_MODERN};
static const char *const legacy_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26",
                                              "2024-11-05"};

static bool version_in(const char *v, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v, list[i]) == 0)
            return true;
    }
    return false;
}

json_t *session_supported_versions(void);
json_t *session_supported_versions(void)
{
    json_t *a = json_array();
    for (size_t i = 0; i < sizeof(modern_versions) / sizeof(*modern_versions); i++)
        json_array_append_new(a, json_string(modern_versions[i]));
    for (size_t i = 0; i < sizeof(legacy_versions) / sizeof(*legacy_versions); i++)
        json_array_append_new(a, json_string(legacy_versions[i]));
    return a;
}

static void handle_initialize(struct mcp_ctx *ctx, json_t *params)
{
    struct mcp_session *s = ctx->s;
    json_t *pv = json_object_get(params, "protocolVersion");
    json_t *caps = json_object_get(params, "capabilities");
    json_t *info = json_object_get(params, "clientInfo");
    if (!json_is_string(pv)) {
        session_finish(ctx, NULL,
                       jsonrpc_error(ctx->id, JSONRPC_INVALID_PARAMS,
                                     "initialize: params.protocolVersion must be a string", NULL));
        return;
    }
    if (caps != NULL && !json_is_object(caps)) {
        session_finish(ctx, NULL,
                       jsonrpc_error(ctx->id, JSONRPC_INVALID_PARAMS,
                                     "initialize: params.capabilities must be an object", NULL));
        return;
    }
    const char *want = json_string_value(pv);
    /* The client's revision when we speak it, else our latest legacy one (the client decides
     * whether it can continue). */
    const char *version = version_in(want, legacy_versions, 4) ? want : legacy_versions[0];

    pthread_mutex_lock(&s->mu);
    if (s->state != SESSION_NEW) {
        pthread_mutex_unlock(&s->mu);
        session_finish(ctx, NULL,
                       jsonrpc_error(ctx->id, JSONRPC_INVALID_REQUEST,
                                     "initialize was already received on this session", NULL));
        return;
    }
    s->state = SESSION_INITIALIZED;
    snprintf(s->version, sizeof(s->version), "%s", version);
    s->client_caps = caps != NULL ? json_deep_copy(caps) : json_object();
    s->client_info = info != NULL ? json_deep_copy(info) : NULL;
    pthread_mutex_unlock(&s->mu);

    json_t *res = json_pack("{s:s, s:o, s:o}", "protocolVersion", version, "capabilities",
                            server_capabilities(s->srv), "serverInfo", server_info(s->srv));
    if (s->srv->instructions != NULL)
        json_object_set_new(res, "instructions", json_string(s->srv->instructions));
    log_info("session initialized: client %s %s, protocol %s",
             json_string_value(json_object_get(info, "name")) ?: "(unnamed)",
             json_string_value(json_object_get(info, "version")) ?: "", version);
    session_finish(ctx, res, NULL);
}

static bool modern_removed(const char *method)
{
    static const char *const removed[] = {"initialize", "ping", "logging/setLevel",
                                          "resources/subscribe", "resources/unsubscribe"};
    for (size_t i = 0; i < sizeof(removed) / sizeof(*removed); i++) {
        if (strcmp(method, removed[i]) == 0)
            return true;
    }
    return false;
}

static void handle_request(struct mcp_session *s, json_t *msg, json_t *id, void *stream,
                           struct batch *b, const struct mcp_identity *who)
{
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *params = json_object_get(msg, "params");
    json_t *owned_params = NULL;
    if (params == NULL)
        params = owned_params = json_object();
    json_t *meta = json_object_get(params, "_meta");
    json_t *pv = json_object_get(meta, "io.modelcontextprotocol/protocolVersion");

    struct mcp_ctx *ctx = ctx_new(s, id, stream, method);
    ctx->batch = b;
    ctx_set_identity(ctx, who);
    json_t *tok = json_object_get(meta, "progressToken");
    if (json_is_string(tok) || json_is_integer(tok))
        ctx->progress_token = json_incref(tok);

    pthread_mutex_lock(&s->mu);
    enum session_state state = s->state;
    pthread_mutex_unlock(&s->mu);

    if (pv != NULL) {
        /* A 2026-07-28 request: everything it needs is in its own _meta. */
        ctx->modern = true;
        if (!json_is_string(pv)) {
            session_finish(ctx, NULL,
                           jsonrpc_error(id, JSONRPC_INVALID_PARAMS,
                                         "params._meta[\"io.modelcontextprotocol/protocolVersion\"]"
                                         " must be a string",
                                         NULL));
            goto out;
        }
        const char *v = json_string_value(pv);
        if (!version_in(v, modern_versions, 1)) {
            json_t *data = json_pack("{s:o, s:s}", "supported", session_supported_versions(),
                                     "requested", v);
            session_finish(ctx, NULL,
                           jsonrpc_errorf(id, MCP_UNSUPPORTED_VERSION, data,
                                          "Unsupported protocol version '%.40s': this server "
                                          "speaks %s statelessly, or the legacy revisions "
                                          "through initialize",
                                          v, MCP_VERSION_MODERN));
            goto out;
        }
        snprintf(ctx->version, sizeof(ctx->version), "%s", v);
        json_t *caps = json_object_get(meta, "io.modelcontextprotocol/clientCapabilities");
        if (!json_is_object(caps)) {
            session_finish(ctx, NULL,
                           jsonrpc_error(id, JSONRPC_INVALID_PARAMS,
                                         "params._meta[\"io.modelcontextprotocol/"
                                         "clientCapabilities\"] must be an object (use {} for "
                                         "none)",
                                         NULL));
            goto out;
        }
        ctx->client_caps = json_incref(caps);
        json_t *lvl = json_object_get(meta, "io.modelcontextprotocol/logLevel");
        ctx->log_level = json_is_string(lvl) ? log_level_from_name(json_string_value(lvl)) : -1;
        if (modern_removed(method)) {
            session_finish(ctx, NULL,
                           jsonrpc_errorf(id, JSONRPC_METHOD_NOT_FOUND, NULL,
                                          "Method not found: %s is not part of protocol revision "
                                          "%s",
                                          method, v));
            goto out;
        }
    } else if (strcmp(method, "initialize") == 0) {
        handle_initialize(ctx, params);
        goto out;
    } else if (state == SESSION_NEW && strcmp(method, "ping") != 0 &&
               strcmp(method, "server/discover") != 0) {
        session_finish(ctx, NULL,
                       jsonrpc_errorf(id, JSONRPC_INVALID_REQUEST, NULL,
                                      "%s before initialization: send initialize first, or (for "
                                      "protocol %s) put io.modelcontextprotocol/protocolVersion "
                                      "and clientCapabilities in params._meta",
                                      method, MCP_VERSION_MODERN));
        goto out;
    } else {
        pthread_mutex_lock(&s->mu);
        snprintf(ctx->version, sizeof(ctx->version), "%s",
                 s->version[0] ? s->version : legacy_versions[0]);
        ctx->client_caps = json_incref(s->client_caps);
        ctx->log_level = s->log_level;
        pthread_mutex_unlock(&s->mu);
    }
    methods_dispatch(ctx, params);
out:
    json_decref(owned_params);
}

/* Tracks a request for cancellation; called by methods.c before queuing a job. */
struct inflight *session_track(struct mcp_ctx *ctx);
struct inflight *session_track(struct mcp_ctx *ctx)
{
    ctx->req = inflight_add(ctx->s, ctx->id, ctx->stream);
    return ctx->req;
}

static void handle_message(struct mcp_session *s, json_t *msg, void *stream, struct batch *b,
                           const struct mcp_identity *who)
{
    enum jsonrpc_kind kind;
    json_t *id = NULL;
    struct jsonrpc_fail fail;
    if (jsonrpc_classify(msg, &kind, &id, &fail) != 0) {
        if (b != NULL)
            batch_answer(s, b, jsonrpc_error(id, fail.code, fail.message, NULL));
        else
            send_error(s, stream, id, fail.code, fail.message);
        return;
    }
    switch (kind) {
    case JSONRPC_RESPONSE:
        deliver_response(s, msg, id);
        break;
    case JSONRPC_NOTIFICATION:
        handle_notification(s, json_string_value(json_object_get(msg, "method")),
                            json_object_get(msg, "params"));
        break;
    case JSONRPC_REQUEST:
        handle_request(s, msg, id, stream, b, who);
        break;
    }
}

void mcp_session_feed(struct mcp_session *s, const char *data, size_t len, void *stream)
{
    json_t *msg = NULL;
    struct jsonrpc_fail fail;
    if (jsonrpc_parse(data, len, s->srv->max_message, s->srv->max_depth, &msg, &fail) != 0) {
        log_debug("rejected message: %s", fail.message);
        send_error(s, stream, NULL, fail.code, fail.message);
        return;
    }
    mcp_session_feed_parsed(s, msg, stream, NULL);
    json_decref(msg);
}

void mcp_session_feed_parsed(struct mcp_session *s, json_t *msg, void *stream,
                             const struct mcp_identity *who)
{
    if (json_is_array(msg)) {
        /* JSON-RPC batches exist only in protocol revision 2025-03-26. */
        pthread_mutex_lock(&s->mu);
        bool allowed = s->state != SESSION_NEW && strcmp(s->version, "2025-03-26") == 0;
        char version[16];
        snprintf(version, sizeof(version), "%s", s->version[0] ? s->version : "(none yet)");
        pthread_mutex_unlock(&s->mu);
        if (!allowed) {
            char why[160];
            snprintf(why, sizeof(why),
                     "Invalid Request: JSON-RPC batches are only allowed in protocol revision "
                     "2025-03-26 (this session: %s)",
                     version);
            send_error(s, stream, NULL, JSONRPC_INVALID_REQUEST, why);
        } else if (json_array_size(msg) == 0) {
            send_error(s, stream, NULL, JSONRPC_INVALID_REQUEST, "Invalid Request: empty batch");
        } else {
            /* Everything but notifications and responses gets an answer in the array. */
            size_t i, answers = 0;
            json_t *m;
            enum jsonrpc_kind kind;
            json_t *id;
            struct jsonrpc_fail fail;
            json_array_foreach(msg, i, m) {
                if (jsonrpc_classify(m, &kind, &id, &fail) != 0 || kind == JSONRPC_REQUEST)
                    answers++;
            }
            struct batch *b = NULL;
            if (answers > 0) {
                b = xcalloc(1, sizeof(*b));
                pthread_mutex_init(&b->mu, NULL);
                b->pending = (int)answers + 1; /* +1: held until every element is dispatched */
                b->answers = json_array();
                b->stream = stream;
            }
            json_array_foreach(msg, i, m) {
                bool answered = jsonrpc_classify(m, &kind, &id, &fail) != 0 ||
                                kind == JSONRPC_REQUEST;
                handle_message(s, m, stream, answered ? b : NULL, who);
            }
            if (b != NULL)
                batch_answer(s, b, NULL);
        }
    } else {
        handle_message(s, msg, stream, NULL, who);
    }
}

void mcp_session_reject(struct mcp_session *s, int code, const char *message, void *stream)
{
    send_error(s, stream, NULL, code, message);
}

void mcp_session_stream_closed(struct mcp_session *s, void *stream)
{
    pthread_mutex_lock(&s->mu);
    for (struct inflight *f = s->inflight; f != NULL; f = f->next) {
        if (f->stream == stream)
            f->cancelled = true;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    reap_listens(s);
    fire_cancels(s);
}

/* Jobs call these around their work so that close can wait for them. */
void session_job_begin(struct mcp_session *s);
void session_job_end(struct mcp_session *s);
void session_job_begin(struct mcp_session *s)
{
    pthread_mutex_lock(&s->mu);
    s->running_jobs++;
    s->refs++;
    pthread_mutex_unlock(&s->mu);
}

void session_job_end(struct mcp_session *s)
{
    pthread_mutex_lock(&s->mu);
    s->running_jobs--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    session_unref(s);
}

void mcp_session_drain(struct mcp_session *s)
{
    pthread_mutex_lock(&s->mu);
    s->input_closed = true;
    pthread_cond_broadcast(&s->cv);
    while (s->running_jobs > 0)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

void mcp_session_close(struct mcp_session *s)
{
    if (s == NULL)
        return;
    server_session_unlink(s->srv, s);
    pthread_mutex_lock(&s->mu);
    for (struct inflight *f = s->inflight; f != NULL; f = f->next)
        f->cancelled = true;
    s->closed = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    fire_cancels(s); /* deferred requests end now rather than when their work does */
    pthread_mutex_lock(&s->mu);
    while (s->running_jobs > 0)
        pthread_cond_wait(&s->cv, &s->mu);
    bool was_session = s->state != SESSION_NEW;
    const char *uri;
    json_t *v;
    json_object_foreach (s->subscriptions, uri, v)
        server_watch(s->srv, uri, -1);
    json_object_clear(s->subscriptions);
    pthread_mutex_unlock(&s->mu);
    reap_listens(s);
    if (was_session && s->srv->session_end != NULL)
        s->srv->session_end(s->srv->session_end_arg, s->key);
    session_unref(s);
}
