/* Calls forwarded to upstreams (see gw_int.h): tools/call, prompts/get, resources/read.
 *
 * A tools/call to a running upstream holds no thread while it waits: sent from the thread that
 * read the request, answered from the connection's thread (see "tools/call without a waiting
 * thread" below). Anything that must wait runs on a worker. When the upstream asks the user
 * something, the handler asks the client (mcp_ctx_ask): a legacy client answers at once; a
 * 2026-07-28 one gets input_required and calls again, so the upstream call is parked (its
 * token in the engine's sealed request state) and the next round picks it up where it
 * waits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/reason.h"
#include "core/xmalloc.h"
#include "gateway/gw_int.h"
#include "mcp/jsonrpc.h"

struct fwd_hooks {
    struct mcp_ctx *ctx;
};

static bool fh_cancelled(void *arg)
{
    return mcp_ctx_cancelled(((struct fwd_hooks *)arg)->ctx);
}

static void fh_progress(void *arg, json_t *params)
{
    struct fwd_hooks *h = arg;
    json_t *total = json_object_get(params, "total");
    mcp_ctx_progress(h->ctx, json_number_value(json_object_get(params, "progress")),
                     total != NULL ? json_number_value(total) : -1,
                     json_string_value(json_object_get(params, "message")));
}

static void fh_log(void *arg, json_t *params)
{
    static const char *const levels[] = {"debug", "info",     "notice", "warning",
                                         "error", "critical", "alert",  "emergency"};
    struct fwd_hooks *h = arg;
    const char *lv = json_string_value(json_object_get(params, "level"));
    int level = MCP_LOG_INFO;
    for (int i = 0; lv != NULL && i < 8; i++)
        if (strcmp(lv, levels[i]) == 0)
            level = i;
    mcp_ctx_log(h->ctx, (enum mcp_log_level)level,
                json_string_value(json_object_get(params, "logger")),
                json_deep_copy(json_object_get(params, "data")));
}

/* The MRTR key of a server question: stable across the client's rounds. */
static void question_key(json_t *question, char out[24])
{
    char *idk = jsonrpc_id_key(json_object_get(question, "id"));
    unsigned char h[CRYPTO_SHA256_LEN];
    crypto_sha256(idk != NULL ? idk : "", idk != NULL ? strlen(idk) : 0, h);
    free(idk);
    snprintf(out, 24, "q%02x%02x%02x%02x%02x%02x", h[0], h[1], h[2], h[3], h[4], h[5]);
}

static struct parked *unpark(struct gateway *gw, const char *token)
{
    pthread_mutex_lock(&gw->mu);
    struct parked *found = NULL;
    for (struct parked **pp = &gw->parked; *pp != NULL; pp = &(*pp)->next) {
        struct parked *p = *pp;
        if (strlen(p->token) == strlen(token) && crypto_equal(p->token, token, strlen(token))) {
            *pp = p->next;
            found = p;
            break;
        }
    }
    pthread_mutex_unlock(&gw->mu);
    return found;
}

/* Ends the parked calls on connection c (all of them when c is NULL and older is 0). */
void end_parked(struct gateway *gw, struct gw_conn *c, long long older_than)
{
    for (;;) {
        struct parked *p = NULL;
        pthread_mutex_lock(&gw->mu);
        for (struct parked **pp = &gw->parked; *pp != NULL; pp = &(*pp)->next) {
            struct parked *x = *pp;
            if ((c == NULL || gw_call_conn(x->k) == c) &&
                (older_than == 0 || x->since < older_than)) {
                *pp = x->next;
                p = x;
                break;
            }
        }
        pthread_mutex_unlock(&gw->mu);
        if (p == NULL)
            return;
        gw_call_end(p->k, true, "the client did not come back with its answer");
        json_decref(p->question);
        free(p);
    }
}

/* Waits for call k and answers the server's questions through the client (question: one
 * already received, or NULL), until the response (0, *resp new), MCPGATE_EINPUT_REQUIRED (a
 * 2026-07-28 client must answer first: the call is parked under token, made when empty),
 * ERR_CANCELLED or another error with why. Ends or parks k. On a worker thread. */
static int forward_wait(struct up *u, struct mcp_ctx *ctx, struct gw_call *k, json_t *question,
                        char token[48], json_t **resp, char *why, size_t whylen, bool keep)
{
    struct gateway *gw = u->gw;
    int r = 0;
    struct fwd_hooks fh = {.ctx = ctx};
    struct gw_call_hooks hooks = {
        .cancelled = fh_cancelled, .progress = fh_progress, .log = fh_log, .arg = &fh};
    long long deadline = clock_ms() + u->cfg.call_timeout_s * 1000LL;
    while (r == 0) {
        if (question == NULL) {
            mcp_ctx_block(ctx, true); /* the pool may start another worker meanwhile */
            r = gw_call_wait(k, deadline, &hooks, resp, &question, why, whylen);
            mcp_ctx_block(ctx, false);
            if (r != GW_ASKED)
                break;
        }
        char key[24];
        question_key(question, key);
        json_t *ans = NULL;
        int ar = mcp_ctx_ask(ctx, key, json_string_value(json_object_get(question, "method")),
                             json_deep_copy(json_object_get(question, "params")), &ans);
        if (ar == MCPGATE_EINPUT_REQUIRED) {
            /* the client answers with its next round: the call waits upstream meanwhile */
            struct parked *p = xcalloc(1, sizeof *p);
            if (token[0] == '\0') {
                char *tk = crypto_random_token(24);
                snprintf(token, 48, "%s", tk);
                free(tk);
            }
            snprintf(p->token, sizeof p->token, "%s", token);
            p->up = u;
            p->k = k;
            p->question = question;
            p->since = clock_ms();
            pthread_mutex_lock(&gw->mu);
            p->next = gw->parked;
            gw->parked = p;
            pthread_mutex_unlock(&gw->mu);
            mcp_ctx_state_set(ctx, json_pack("{s:s}", "gw", token));
            return MCPGATE_EINPUT_REQUIRED;
        }
        if (ar != 0)
            json_decref(ans);
        if (gw_call_reply(k, question, ar == 0 ? ans : NULL,
                          ar == MCPGATE_EUNSUPPORTED ? JSONRPC_METHOD_NOT_FOUND
                                                     : JSONRPC_INTERNAL_ERROR,
                          ar == MCPGATE_EUNSUPPORTED ? "the client does not support this request"
                                                     : "the client could not answer") != 0)
            log_warn("[%s] cannot pass the client's answer on", u->cfg.name);
        json_decref(question);
        question = NULL;
        r = 0; /* answered: wait on */
    }
    json_decref(question);
    if (!keep) /* else the caller ends it (after finishing: a cancel hook may still use it) */
        gw_call_end(k, r == ERR_CANCELLED || r == ERR_TIMEOUT, why);
    return r;
}

/* Forwards method/params (stolen) to the upstream for this request and waits (forward_wait),
 * or picks up the call a 2026-07-28 client's earlier round parked. On a worker thread. */
static int forward(struct up *u, struct mcp_ctx *ctx, const char *method, json_t *params,
                   json_t **resp, char *why, size_t whylen)
{
    struct gw_call *k = NULL;
    json_t *question = NULL;
    char token[48] = "";
    *resp = NULL;
    const char *t = json_string_value(json_object_get(mcp_ctx_state_get(ctx), "gw"));
    if (t != NULL) {
        struct parked *p = unpark(u->gw, t);
        json_decref(params);
        if (p == NULL) {
            reason_set(why, whylen,
                       "the call this answer belongs to has ended (it waited more "
                       "than 10 minutes, or the server stopped); call again");
            return ERR_INVALID;
        }
        k = p->k;
        question = p->question;
        snprintf(token, sizeof token, "%s", p->token);
        free(p);
        return forward_wait(u, ctx, k, question, token, resp, why, whylen, false);
    }
    char owner[80];
    struct gw_conn *conn = NULL;
    int r = slot_for(u, ctx, &conn, owner, sizeof owner, why, whylen);
    if (r != 0) {
        json_decref(params);
        return r;
    }
    bool progress = mcp_ctx_progress_token(ctx) != NULL;
    char caller[80];
    gw_caller(ctx, caller, sizeof caller);
    r = gw_call_start(conn, method, params, progress, true, caller, &k, why, whylen);
    gw_conn_release(conn); /* the call keeps it now */
    if (r != 0) {
        gw_call_end(k, false, why);
        return r;
    }
    return forward_wait(u, ctx, k, NULL, token, resp, why, whylen, false);
}

/* The identity the upstream sees in _meta (never the caller's token). */
static void add_identity(struct mcp_ctx *ctx, json_t *params)
{
    const struct mcp_identity *who = mcp_ctx_identity(ctx);
    if (who == NULL || who->subject == NULL)
        return;
    json_t *meta = json_object_get(params, "_meta");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(params, "_meta", meta);
    }
    json_t *id = json_pack("{s:s}", "subject", who->subject);
    if (who->username != NULL)
        json_object_set_new(id, "username", json_string(who->username));
    if (who->client_id != NULL)
        json_object_set_new(id, "client_id", json_string(who->client_id));
    json_object_set_new(meta, "io.mcpgate/identity", id);
}

static json_t *error_result(struct up *u, int r, const char *why)
{
    if (r == ERR_TIMEOUT)
        return mcp_result_error("%s did not answer within %d s", u->cfg.name,
                                u->cfg.call_timeout_s);
    if (r == ERR_IO)
        return mcp_result_error("%s stopped during the call (%s); try again", u->cfg.name, why);
    return mcp_result_error("%s: %s", u->cfg.name, why);
}

/* What a tools/call handler returns for the upstream's answer (resp, borrowed) or failure r:
 * the upstream's result (decorations of its own era dropped) or a tool error the model
 * reads. */
static int tool_result(struct up *u, int r, json_t *resp, const char *why, json_t **result)
{
    *result = NULL;
    if (r == MCPGATE_EINPUT_REQUIRED || r == ERR_CANCELLED)
        return r == ERR_CANCELLED ? MCPGATE_ECANCELLED : r;
    if (r != 0) {
        *result = error_result(u, r, why);
        return 0;
    }
    json_t *res = json_object_get(resp, "result");
    if (!json_is_object(res)) {
        const char *m =
            json_string_value(json_object_get(json_object_get(resp, "error"), "message"));
        *result = mcp_result_error("%s: %s", u->cfg.name, m != NULL ? m : "no result");
        return 0;
    }
    *result = json_deep_copy(res);
    json_object_del(*result, "resultType");
    gw_expose_blocks(u, json_object_get(*result, "content"));
    json_t *meta = json_object_get(*result, "_meta");
    json_object_del(meta, "io.modelcontextprotocol/serverInfo");
    if (json_is_object(meta) && json_object_size(meta) == 0)
        json_object_del(*result, "_meta");
    return 0;
}

/* ---- tools/call without a waiting thread ----
 *
 * The handler runs on the thread that read the request (MCP_TOOL_NONBLOCKING): when the
 * upstream's connection is up, it sends the call and returns MCPGATE_EDEFERRED; the
 * connection's thread answers the client when the response comes (done), so a call costs no
 * hand-off to a worker and back. A question from the upstream sends the call to a worker
 * (asked: asking the client may wait); anything that would wait before sending (a child to
 * start, a parked call to resume) runs on a worker from the start (MCPGATE_EWOULDBLOCK). */

struct afwd {
    struct up *up;
    struct mcp_ctx *ctx;
    struct gw_call *k;
};

static void afwd_done(void *arg, struct gw_call *k, json_t *resp, int r, const char *why)
{
    struct afwd *a = arg;
    json_t *result = NULL;
    int rc = tool_result(a->up, r, resp, why, &result);
    json_decref(resp);
    /* finishing first: the engine waits for a cancel hook running on another thread, which
     * may still look at k */
    mcp_ctx_finish(a->ctx, rc, result);
    gw_call_end(k, r == ERR_CANCELLED || r == ERR_TIMEOUT, why);
    free(a);
}

static void afwd_progress(void *arg, json_t *params)
{
    struct fwd_hooks h = {.ctx = ((struct afwd *)arg)->ctx};
    fh_progress(&h, params);
}

static void afwd_log(void *arg, json_t *params)
{
    struct fwd_hooks h = {.ctx = ((struct afwd *)arg)->ctx};
    fh_log(&h, params);
}

/* On a worker: the rest of the call, waiting as forward() does. */
static void afwd_continue(struct mcp_ctx *ctx, void *arg)
{
    struct afwd *a = arg;
    char why[300] = "", token[48] = "";
    json_t *resp = NULL, *result = NULL;
    int r = forward_wait(a->up, ctx, a->k, NULL, token, &resp, why, sizeof why, true);
    int rc = tool_result(a->up, r, resp, why, &result);
    json_decref(resp);
    /* finishing first, as afwd_done does: the cancel hook may be using k on another thread */
    mcp_ctx_finish(ctx, rc, result);
    if (r != MCPGATE_EINPUT_REQUIRED) /* a parked call lives on in the parked list */
        gw_call_end(a->k, r == ERR_CANCELLED || r == ERR_TIMEOUT, why);
    free(a);
}

static void afwd_asked(void *arg, struct gw_call *k)
{
    (void)k;
    struct afwd *a = arg;
    mcp_ctx_run(a->ctx, afwd_continue, a);
}

static void afwd_cancel(void *arg)
{
    struct afwd *a = arg;
    gw_call_fire(a->k, ERR_CANCELLED, "cancelled by the client");
}

static const struct gw_call_async afwd_cb = {
    .done = afwd_done, .progress = afwd_progress, .log = afwd_log, .asked = afwd_asked};

/* Starts the call without waiting: MCPGATE_EDEFERRED, or MCPGATE_EWOULDBLOCK (nothing done,
 * params freed) when it has to wait for something first. */
static int tool_fwd_async(struct up *u, struct mcp_ctx *ctx, json_t *params)
{
    char owner[80], why[300] = "";
    struct gw_conn *conn = NULL;
    if (mcp_ctx_state_get(ctx) != NULL ||
        (slot_owner(u, ctx, owner, sizeof owner), (conn = slot_ready(u, owner)) == NULL)) {
        json_decref(params);
        return MCPGATE_EWOULDBLOCK;
    }
    /* the thread that read the request must not wait on a full pipe either: a request the
     * child's stdin has no room for goes through a worker */
    if (!gw_conn_room(conn, json_dumpb(params, NULL, 0, JSON_COMPACT) + 128)) {
        log_debug("[%s] no room in the pipe to the server: the call goes through a worker",
                  u->cfg.name);
        gw_conn_release(conn);
        json_decref(params);
        return MCPGATE_EWOULDBLOCK;
    }
    struct afwd *a = xcalloc(1, sizeof *a);
    a->up = u;
    a->ctx = ctx;
    char caller[80];
    gw_caller(ctx, caller, sizeof caller);
    a->k = gw_call_open_async(conn, mcp_ctx_progress_token(ctx) != NULL, caller,
                              clock_ms() + u->cfg.call_timeout_s * 1000LL, &afwd_cb, a, why,
                              sizeof why);
    gw_conn_release(conn);
    if (a->k == NULL) {
        free(a);
        json_decref(params);
        return MCPGATE_EWOULDBLOCK; /* it just died: a worker restarts it */
    }
    int r = ERR_CANCELLED;
    if (mcp_ctx_on_cancel(ctx, afwd_cancel, a) == 0)
        r = gw_call_send(a->k, "tools/call", params, why, sizeof why);
    else
        json_decref(params);
    gw_call_unpin(a->k, r, why); /* a and the call are done's from here on */
    return MCPGATE_EDEFERRED;
}

int tool_fwd(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    struct entry *e = udata;
    char why[300] = "";
    json_t *params = json_pack("{s:s, s:O}", "name", e->orig, "arguments", args);
    add_identity(ctx, params);
    if (!mcp_ctx_on_pool(ctx))
        return tool_fwd_async(e->up, ctx, params);
    json_t *resp = NULL;
    int r = forward(e->up, ctx, "tools/call", params, &resp, why, sizeof why);
    int rc = tool_result(e->up, r, resp, why, result);
    json_decref(resp);
    return rc;
}

int prompt_fwd(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    struct entry *e = udata;
    char why[300] = "";
    json_t *params = json_pack("{s:s, s:O}", "name", e->orig, "arguments", args);
    add_identity(ctx, params);
    json_t *resp = NULL;
    int r = forward(e->up, ctx, "prompts/get", params, &resp, why, sizeof why);
    if (r == MCPGATE_EINPUT_REQUIRED)
        return r;
    json_t *res = r == 0 ? json_object_get(resp, "result") : NULL;
    if (!json_is_object(res)) {
        /* the client hears why: the server's own words, or what happened to the call */
        const char *m =
            json_string_value(json_object_get(json_object_get(resp, "error"), "message"));
        mcp_ctx_fail_reason(ctx, "%s: %s", e->up->cfg.name,
                            r == 0 ? (m != NULL ? m : "no result") : why);
        json_decref(resp);
        return r == ERR_CANCELLED ? MCPGATE_ECANCELLED : MCPGATE_EINVALID;
    }
    *result = json_deep_copy(res);
    json_object_del(*result, "resultType");
    size_t i;
    json_t *m;
    json_array_foreach (json_object_get(*result, "messages"), i, m)
        gw_expose_block(e->up, json_object_get(m, "content"));
    json_decref(resp);
    return 0;
}

int resource_fwd(struct mcp_ctx *ctx, const char *uri, json_t **contents, void *udata)
{
    struct entry *e = udata;
    char why[300] = "";
    /* the upstream's own URI: a resource's, or the concrete one of a template */
    char *orig = NULL;
    if (!e->tpl)
        orig = xstrdup(e->orig);
    else if (!e->ns)
        orig = xstrdup(uri);
    else if ((orig = gw_ns_strip(e->up->cfg.name, e->orig, uri)) == NULL)
        return MCPGATE_ENOTFOUND;
    json_t *params = json_pack("{s:s}", "uri", orig);
    add_identity(ctx, params);
    json_t *resp = NULL;
    int r = forward(e->up, ctx, "resources/read", params, &resp, why, sizeof why);
    if (r == MCPGATE_EINPUT_REQUIRED) {
        free(orig);
        return r;
    }
    json_t *c = r == 0 ? json_object_get(json_object_get(resp, "result"), "contents") : NULL;
    if (!json_is_array(c)) {
        json_t *err = json_object_get(resp, "error");
        json_int_t code = json_integer_value(json_object_get(err, "code"));
        const char *m = json_string_value(json_object_get(err, "message"));
        int rc = r == ERR_CANCELLED ? MCPGATE_ECANCELLED : MCPGATE_EINVALID;
        if (r == 0 && (code == -32002 || code == -32602)) /* the server has no such resource */
            rc = MCPGATE_ENOTFOUND;
        else if (rc != MCPGATE_ECANCELLED)
            mcp_ctx_fail_reason(ctx, "%s: %s", e->up->cfg.name,
                                r == 0 ? (m != NULL ? m : "no contents") : why);
        free(orig);
        json_decref(resp);
        return rc;
    }
    /* the contents of what was asked carry the name it was asked by; others are renamed */
    size_t i;
    json_t *item;
    json_array_foreach (c, i, item) {
        const char *cu = json_string_value(json_object_get(item, "uri"));
        if (cu != NULL && strcmp(cu, orig) == 0)
            json_object_set_new(item, "uri", json_string(uri));
        else
            gw_expose_content(e->up, item);
    }
    free(orig);
    *contents = json_incref(c);
    json_decref(resp);
    return 0;
}
