/* The context a handler sees: who calls, progress, logging, cancellation, and mcp_ctx_ask(),
 * which asks the client a question in either era (a server-to-client request in the legacy
 * era, a multi round-trip request with integrity-protected requestState in 2026-07-28). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "mcp/mcp_int.h"

static const char *const level_names[] = {"debug", "info",     "notice", "warning",
                                          "error", "critical", "alert",  "emergency"};

int log_level_from_name(const char *name)
{
    for (int i = 0; i < 8; i++) {
        if (strcmp(name, level_names[i]) == 0)
            return i;
    }
    return -1;
}

const char *log_level_name(int level)
{
    return level >= 0 && level < 8 ? level_names[level] : "info";
}

static char *dup0(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void ctx_set_identity(struct mcp_ctx *ctx, const struct mcp_identity *who)
{
    if (who == NULL)
        return;
    ctx->identity.subject = dup0(who->subject);
    ctx->identity.username = dup0(who->username);
    ctx->identity.client_id = dup0(who->client_id);
    ctx->identity.scopes = dup0(who->scopes);
}

struct mcp_ctx *ctx_new(struct mcp_session *s, json_t *id, void *stream, const char *method)
{
    struct mcp_ctx *ctx = xcalloc(1, sizeof(*ctx));
    ctx->s = s;
    ctx->id = json_incref(id);
    ctx->stream = stream;
    if (stream != NULL && s->io.hold != NULL)
        s->io.hold(s->io.arg, stream, true);
    ctx->method = xstrdup(method);
    ctx->log_level = -1;
    return ctx;
}

void ctx_free(struct mcp_ctx *ctx)
{
    if (ctx == NULL)
        return;
    if (ctx->stream != NULL && ctx->s->io.hold != NULL)
        ctx->s->io.hold(ctx->s->io.arg, ctx->stream, false);
    free(ctx->fail_why);
    json_decref(ctx->id);
    json_decref(ctx->client_caps);
    json_decref(ctx->progress_token);
    json_decref(ctx->uri_vars);
    json_decref(ctx->input_responses);
    json_decref(ctx->input_requests);
    json_decref(ctx->state);
    json_decref(ctx->args);
    tool_unref(ctx->tool);
    free((char *)ctx->identity.subject);
    free((char *)ctx->identity.username);
    free((char *)ctx->identity.client_id);
    free((char *)ctx->identity.scopes);
    free((char *)ctx->method);
    free(ctx);
}

/* ---- accessors ---- */

static const struct mcp_identity anonymous = {NULL, NULL, NULL, NULL};

void mcp_ctx_block(struct mcp_ctx *ctx, bool blocking)
{
    struct pool *pool = server_pool(ctx->s->srv);
    if (blocking)
        pool_block_enter(pool);
    else
        pool_block_exit(pool);
}

bool mcp_ctx_on_pool(const struct mcp_ctx *ctx)
{
    return ctx->on_pool;
}

struct ctx_run {
    struct mcp_ctx *ctx;
    void (*fn)(struct mcp_ctx *ctx, void *arg);
    void *arg;
};

static void ctx_run_job(void *p)
{
    struct ctx_run *r = p;
    r->ctx->on_pool = true;
    r->fn(r->ctx, r->arg);
    free(r);
}

void mcp_ctx_run(struct mcp_ctx *ctx, void (*fn)(struct mcp_ctx *ctx, void *arg), void *arg)
{
    struct ctx_run *r = xmalloc(sizeof *r);
    r->ctx = ctx;
    r->fn = fn;
    r->arg = arg;
    pool_submit(server_pool(ctx->s->srv), ctx_run_job, r);
}

unsigned long long mcp_ctx_session_key(const struct mcp_ctx *ctx)
{
    return ctx->modern ? 0 : ctx->s->key;
}

const struct mcp_identity *mcp_ctx_identity(const struct mcp_ctx *ctx)
{
    return ctx->identity.subject != NULL ? &ctx->identity : &anonymous;
}

const char *mcp_ctx_protocol_version(const struct mcp_ctx *ctx)
{
    return ctx->version;
}

bool mcp_ctx_is_modern(const struct mcp_ctx *ctx)
{
    return ctx->modern;
}

json_t *mcp_ctx_client_capabilities(const struct mcp_ctx *ctx)
{
    return ctx->client_caps;
}

const char *mcp_ctx_uri_var(const struct mcp_ctx *ctx, const char *name)
{
    return json_string_value(json_object_get(ctx->uri_vars, name));
}

json_t *mcp_ctx_progress_token(const struct mcp_ctx *ctx)
{
    return ctx->progress_token;
}

bool mcp_ctx_cancelled(const struct mcp_ctx *ctx)
{
    struct mcp_session *s = ctx->s;
    pthread_mutex_lock(&s->mu);
    bool c = s->closed || (ctx->req != NULL && ctx->req->cancelled);
    pthread_mutex_unlock(&s->mu);
    return c;
}

int mcp_ctx_sleep(struct mcp_ctx *ctx, long ms)
{
    struct mcp_session *s = ctx->s;
    struct timespec deadline = clock_deadline(ms);
    int r = 0;
    struct pool *pool = server_pool(s->srv);
    pool_block_enter(pool);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->closed || (ctx->req != NULL && ctx->req->cancelled)) {
            r = ERR_CANCELLED;
            break;
        }
        if (pthread_cond_timedwait(&s->cv, &s->mu, &deadline) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&s->mu);
    pool_block_exit(pool);
    return r;
}

/* ---- notifications tied to the request ---- */

void mcp_ctx_progress(struct mcp_ctx *ctx, double progress, double total, const char *message)
{
    if (ctx->progress_token == NULL || mcp_ctx_cancelled(ctx))
        return;
    json_t *p = json_pack("{s:O, s:f}", "progressToken", ctx->progress_token, "progress",
                          progress);
    if (total >= 0)
        json_object_set_new(p, "total", json_real(total));
    if (message != NULL)
        json_object_set_new(p, "message", json_string(message));
    session_send(ctx->s, ctx->stream, jsonrpc_notification("notifications/progress", p), false);
}

void mcp_ctx_log(struct mcp_ctx *ctx, enum mcp_log_level level, const char *logger, json_t *data)
{
    int min = ctx->log_level;
    if (!ctx->modern) {
        /* logging/setLevel may arrive while a handler runs: read the session's level now. */
        pthread_mutex_lock(&ctx->s->mu);
        min = ctx->s->log_level;
        pthread_mutex_unlock(&ctx->s->mu);
    }
    if (min < 0 || (int)level < min || mcp_ctx_cancelled(ctx)) {
        json_decref(data);
        return;
    }
    json_t *p = json_pack("{s:s, s:o}", "level", log_level_name((int)level), "data",
                          data != NULL ? data : json_null());
    if (logger != NULL)
        json_object_set_new(p, "logger", json_string(logger));
    session_send(ctx->s, ctx->stream, jsonrpc_notification("notifications/message", p), false);
}

/* ---- asking the client ---- */

static const char *capability_for(const char *method)
{
    if (strcmp(method, "elicitation/create") == 0)
        return "elicitation";
    if (strcmp(method, "sampling/createMessage") == 0)
        return "sampling";
    if (strcmp(method, "roots/list") == 0)
        return "roots";
    return NULL;
}

int mcp_ctx_ask(struct mcp_ctx *ctx, const char *key, const char *method, json_t *params,
                json_t **result)
{
    *result = NULL;
    const char *cap = capability_for(method);
    if (cap == NULL || key == NULL || key[0] == '\0') {
        json_decref(params);
        return ERR_INVALID;
    }
    if (params == NULL)
        params = json_object();
    if (json_object_get(ctx->client_caps, cap) == NULL) {
        ctx->missing_cap = cap;
        json_decref(params);
        return ERR_UNSUPPORTED;
    }
    if (!ctx->modern)
        return session_request_client(ctx, method, params, result);

    json_t *answer = json_object_get(ctx->input_responses, key);
    if (answer != NULL) {
        json_decref(params);
        *result = json_incref(answer);
        return 0;
    }
    if (ctx->input_requests == NULL)
        ctx->input_requests = json_object();
    json_object_set_new(ctx->input_requests, key,
                        json_pack("{s:s, s:o}", "method", method, "params", params));
    return ERR_INPUT_REQUIRED;
}

void mcp_ctx_forget(struct mcp_ctx *ctx, const char *key)
{
    if (ctx->input_responses != NULL && key != NULL)
        json_object_del(ctx->input_responses, key);
}

json_t *mcp_ctx_state_get(const struct mcp_ctx *ctx)
{
    return ctx->state;
}

void mcp_ctx_state_set(struct mcp_ctx *ctx, json_t *value)
{
    json_decref(ctx->state);
    ctx->state = value;
}

/* ---- requestState: base64url(payload) "." base64url(HMAC-SHA256(key, label || payload)) ---- */

#define STATE_LABEL "mcpgate-mrtr-v1."
#define STATE_MAX 262144 /* bytes of requestState we accept back */

static char *args_digest(json_t *args)
{
    char *txt = json_dumps(args != NULL ? args : json_null(),
                           JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    unsigned char d[CRYPTO_SHA256_LEN];
    crypto_sha256(txt, strlen(txt), d);
    free(txt);
    return b64url_encode(d, 16);
}

static int state_mac(const struct mcp_server *srv, const char *payload, size_t len,
                     unsigned char mac[CRYPTO_SHA256_LEN])
{
    size_t ll = strlen(STATE_LABEL);
    char *msg = xmalloc(ll + len);
    memcpy(msg, STATE_LABEL, ll);
    memcpy(msg + ll, payload, len);
    int r = crypto_hmac_sha256(srv->state_key, sizeof(srv->state_key), msg, ll + len, mac);
    free(msg);
    return r;
}

char *ctx_state_seal(struct mcp_ctx *ctx, const char *name, json_t *args)
{
    char *digest = args_digest(args);
    json_t *p = json_pack("{s:i, s:s, s:s, s:s, s:I}", "v", 1, "m", ctx->method, "n",
                          name ? name : "", "a", digest, "e",
                          (json_int_t)time(NULL) + MRTR_STATE_TTL_SECONDS);
    free(digest);
    if (ctx->input_responses != NULL && json_object_size(ctx->input_responses) > 0)
        json_object_set(p, "r", ctx->input_responses);
    if (ctx->state != NULL)
        json_object_set(p, "s", ctx->state);
    char *txt = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    char *b64 = b64url_encode(txt, strlen(txt));
    free(txt);
    unsigned char mac[CRYPTO_SHA256_LEN];
    if (state_mac(ctx->s->srv, b64, strlen(b64), mac) != 0)
        abort();
    char *m64 = b64url_encode(mac, sizeof(mac));
    char *out = xasprintf("%s.%s", b64, m64);
    free(b64);
    free(m64);
    return out;
}

int ctx_state_open(struct mcp_ctx *ctx, const char *token, const char *name, json_t *args,
                   const char **why)
{
    int r = ERR_INTEGRITY;
    unsigned char *mac = NULL, *raw = NULL;
    size_t maclen = 0, rawlen = 0;
    json_t *p = NULL;
    char *digest = NULL;
    size_t len = strlen(token);
    const char *dot = strrchr(token, '.');

    *why = "requestState is malformed";
    if (len > STATE_MAX || dot == NULL)
        goto out;
    if (b64url_decode(dot + 1, strlen(dot + 1), &mac, &maclen) != 0 ||
        maclen != CRYPTO_SHA256_LEN)
        goto out;
    unsigned char want[CRYPTO_SHA256_LEN];
    if (state_mac(ctx->s->srv, token, (size_t)(dot - token), want) != 0)
        goto out;
    if (!crypto_equal(mac, want, sizeof(want))) {
        *why = "requestState failed its integrity check (tampered or issued by another server)";
        goto out;
    }
    if (b64url_decode(token, (size_t)(dot - token), &raw, &rawlen) != 0 ||
        (p = json_loadb((const char *)raw, rawlen, 0, NULL)) == NULL)
        goto out;
    digest = args_digest(args);
    if (json_integer_value(json_object_get(p, "v")) != 1 ||
        strcmp(json_string_value(json_object_get(p, "m")) ?: "", ctx->method) != 0 ||
        strcmp(json_string_value(json_object_get(p, "n")) ?: "", name ? name : "") != 0) {
        *why = "requestState belongs to a different request";
        goto out;
    }
    if (strcmp(json_string_value(json_object_get(p, "a")) ?: "", digest) != 0) {
        *why = "requestState was issued for different arguments";
        goto out;
    }
    if (json_integer_value(json_object_get(p, "e")) < (json_int_t)time(NULL)) {
        *why = "requestState has expired; start the request again";
        goto out;
    }
    json_t *resp = json_object_get(p, "r");
    if (json_is_object(resp)) {
        if (ctx->input_responses == NULL)
            ctx->input_responses = json_object();
        json_object_update(ctx->input_responses, resp);
    }
    json_t *st = json_object_get(p, "s");
    if (st != NULL)
        mcp_ctx_state_set(ctx, json_incref(st));
    *why = NULL;
    r = 0;
out:
    free(mac);
    free(raw);
    free(digest);
    json_decref(p);
    return r;
}

void mcp_ctx_fail_reason(struct mcp_ctx *ctx, const char *fmt, ...)
{
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(ctx->fail_why);
    ctx->fail_why = xstrdup(buf);
}
