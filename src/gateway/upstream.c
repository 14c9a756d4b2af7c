/* The running gateway (see gateway.h): upstreams, their children, their catalogs registered in
 * the server, and the handlers that forward each call.
 *
 * A tools/call to a running upstream holds no thread while it waits: sent from the thread that
 * read the request, answered from the connection's thread (see "tools/call without a waiting
 * thread" below). Anything that must wait runs on a worker. When the upstream asks the user
 * something, the handler asks the client (mcp_ctx_ask): a legacy client answers at once; a
 * 2026-07-28 one gets input_required and calls again, so the upstream call is parked (its
 * token in the engine's sealed request state) and the next round picks it up where it waits.
 * Lifetimes:
 * upstreams and entries are only freed by gw_free, after every child is stopped, so a handler
 * in flight never meets freed memory; a parked call is ended before its connection is. */
#include <fnmatch.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/reason.h"
#include "core/xmalloc.h"
#include "gateway/conn.h"
#include "gateway/gateway.h"
#include "mcp/jsonrpc.h"

#define PARK_TTL_MS (10 * 60 * 1000) /* a question waits this long for the client's retry */
#define REAPER_TICK_MS 500

struct up;

/* A registered entry's handler data. */
struct entry {
    struct up *up;
    char *orig; /* the upstream's own name or URI */
    struct entry *next;
};

/* A child (or the HTTP connection) serving one owner: everyone (shared) or one session/user. */
struct slot {
    char *owner;          /* "shared", "s:<session key>" or "u:<subject>" */
    char *user;           /* subject of a per-session child, for the per-user cap */
    struct gw_conn *conn; /* NULL while (re)starting or after it died */
    bool dead;
    bool starting; /* a thread is starting it: others wait (up's cv) */
    int restarts;
    long long retry_at; /* shared: when to try starting it again */
    struct slot *next;
};

struct up {
    struct gateway *gw;
    struct gw_upstream_cfg cfg; /* owned (moved out of the configuration) */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a slot finished starting */
    struct slot *slots;
    json_t *reg;  /* what is registered: {"tools": [names], "prompts": [...], ...} */
    json_t *seen; /* the upstream's lists as last seen: {"tools": [...], ...} */
    bool removed;
    bool refresh_tools, refresh_prompts, refresh_resources;
    struct up *next;
};

/* A call left waiting upstream for a 2026-07-28 client's next round (it must answer the
 * server's question first). */
struct parked {
    char token[48];
    struct up *up;
    struct gw_call *k;
    json_t *question; /* the server's request awaiting the answer */
    long long since;
    struct parked *next;
};

struct gateway {
    struct mcp_server *srv;
    bool auth;
    pthread_mutex_t mu; /* the lists below, children counts */
    pthread_cond_t cv;
    struct up *ups; /* live and removed (removed ones stay until gw_free) */
    struct entry *entries;
    struct parked *parked;
    json_t *uri_owner; /* resource URI or template -> upstream name */
    int max_children, max_per_user, children;
    pthread_t reaper;
    bool stop;
};

/* ---- children ---- */

static void on_conn_notification(void *arg, json_t *msg);
static void on_conn_exit(void *arg, const char *why);
static void end_parked(struct gateway *gw, struct gw_conn *c, long long older_than);

/* v with every ${MCPGATE_...} replaced by its value in vals ("K=V" strings; empty when absent).
 * New vector of new strings. */
static char **fill_vars(char *const *v, char *const *vals)
{
    size_t n = 0;
    while (v != NULL && v[n] != NULL)
        n++;
    char **out = xcalloc(n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        const char *s = v[i];
        size_t cap = strlen(s) + 64, len = 0;
        char *o = xmalloc(cap);
        while (*s) {
            const char *close;
            if (s[0] == '$' && s[1] == '{' && strncmp(s + 2, "MCPGATE_", 8) == 0 &&
                (close = strchr(s + 2, '}')) != NULL) {
                size_t nl = (size_t)(close - s - 2);
                const char *val = "";
                for (char *const *k = vals; *k != NULL; k++)
                    if (strncmp(*k, s + 2, nl) == 0 && (*k)[nl] == '=')
                        val = *k + nl + 1;
                size_t vl = strlen(val);
                if (len + vl + 1 > cap)
                    o = xrealloc(o, cap = (len + vl + 1) * 2);
                memcpy(o + len, val, vl);
                len += vl;
                s = close + 1;
                continue;
            }
            if (len + 2 > cap)
                o = xrealloc(o, cap *= 2);
            o[len++] = *s++;
        }
        o[len] = '\0';
        out[i] = o;
    }
    return out;
}

static void free_vars(char **v)
{
    for (char **p = v; p != NULL && *p != NULL; p++)
        free(*p);
    free(v);
}

struct slot_ref {
    struct up *up;
    struct slot *slot;
};

static int slot_start(struct up *u, struct slot *s, const struct mcp_identity *who,
                      unsigned long long session, char *why, size_t whylen)
{
    struct slot_ref *ref = xcalloc(1, sizeof *ref); /* freed with the gateway's entries */
    ref->up = u;
    ref->slot = s;
    struct gw_conn_events ev = {
        .on_notification = on_conn_notification, .on_exit = on_conn_exit, .arg = ref};
    struct gw_conn *c = NULL;
    int r;
    if (u->cfg.url != NULL) {
        r = gw_conn_http(&u->cfg, &ev, &c, why, whylen);
    } else {
        /* who is calling reaches a per-session child through its environment */
        char *env[6] = {0};
        size_t n = 0;
        if (who != NULL && who->subject != NULL)
            env[n++] = xasprintf("MCPGATE_SUBJECT=%s", who->subject);
        if (who != NULL && who->username != NULL)
            env[n++] = xasprintf("MCPGATE_USER=%s", who->username);
        if (who != NULL && who->client_id != NULL)
            env[n++] = xasprintf("MCPGATE_CLIENT_ID=%s", who->client_id);
        if (session != 0)
            env[n++] = xasprintf("MCPGATE_SESSION=%llu", session);
        /* ${MCPGATE_*} in the configured args and env take this child's values */
        struct gw_upstream_cfg mine = u->cfg;
        mine.args = fill_vars(u->cfg.args, env);
        mine.env = fill_vars(u->cfg.env, env);
        r = gw_conn_spawn(&mine, env, &ev, &c, why, whylen);
        free_vars(mine.args);
        free_vars(mine.env);
        for (size_t i = 0; i < n; i++)
            free(env[i]);
    }
    if (r != 0) {
        free(ref);
        return r;
    }
    pthread_mutex_lock(&u->gw->mu);
    /* the ref lives as long as the gateway: park it among the entries' allocations */
    struct entry *keep = xcalloc(1, sizeof *keep);
    keep->orig = (char *)ref; /* freed in gw_free */
    keep->up = NULL;
    keep->next = u->gw->entries;
    u->gw->entries = keep;
    pthread_mutex_unlock(&u->gw->mu);
    pthread_mutex_lock(&u->mu);
    s->conn = c;
    s->dead = false;
    pthread_mutex_unlock(&u->mu);
    return 0;
}

static void slot_stop(struct up *u, struct slot *s)
{
    pthread_mutex_lock(&u->mu);
    struct gw_conn *c = s->conn;
    s->conn = NULL;
    s->dead = true;
    pthread_mutex_unlock(&u->mu);
    if (c != NULL) {
        if (u->cfg.url == NULL) {
            pthread_mutex_lock(&u->gw->mu);
            u->gw->children--;
            pthread_mutex_unlock(&u->gw->mu);
        }
        end_parked(u->gw, c, 0);
        gw_conn_free(c);
    }
}

static void on_conn_exit(void *arg, const char *why)
{
    struct slot_ref *ref = arg;
    struct up *u = ref->up;
    pthread_mutex_lock(&u->mu);
    bool shared = strcmp(ref->slot->owner, "shared") == 0;
    ref->slot->dead = true;
    if (shared)
        ref->slot->retry_at =
            clock_ms() + (500LL << (ref->slot->restarts < 6 ? ref->slot->restarts : 6));
    pthread_mutex_unlock(&u->mu);
    log_warn("[%s] %s%s", u->cfg.name, why,
             shared ? "; calls in flight fail, it is restarted"
                    : "; its session's next call "
                      "starts a new one");
    pthread_mutex_lock(&u->gw->mu);
    pthread_cond_broadcast(&u->gw->cv);
    pthread_mutex_unlock(&u->gw->mu);
}

/* Whose child serves the request: everyone's, its session's, or (2026-07-28, no session) its
 * user's. */
static void slot_owner(struct up *u, struct mcp_ctx *ctx, char *owner, size_t ownerlen)
{
    const struct mcp_identity *who = ctx != NULL ? mcp_ctx_identity(ctx) : NULL;
    unsigned long long key = ctx != NULL ? mcp_ctx_session_key(ctx) : 0;
    if (u->cfg.process == GW_SHARED || u->cfg.url != NULL)
        snprintf(owner, ownerlen, "shared");
    else if (key != 0)
        snprintf(owner, ownerlen, "s:%llu", key);
    else
        snprintf(owner, ownerlen, "u:%.70s", who != NULL && who->subject ? who->subject : "-");
}

/* The running connection of owner's slot, held (gw_conn_release), or NULL when there is none
 * yet or it is (re)starting: never waits. */
static struct gw_conn *slot_ready(struct up *u, const char *owner)
{
    struct gw_conn *c = NULL;
    pthread_mutex_lock(&u->mu);
    struct slot *s = u->slots;
    while (s != NULL && strcmp(s->owner, owner) != 0)
        s = s->next;
    if (s != NULL && !s->starting && !s->dead && s->conn != NULL && gw_conn_alive(s->conn)) {
        c = s->conn;
        gw_conn_hold(c);
    }
    pthread_mutex_unlock(&u->mu);
    return c;
}

/* The connection for a call, held (gw_conn_release): the shared child (restarted if it died),
 * or the caller's own per-session child (started on first use, within the caps). */
static int slot_for(struct up *u, struct mcp_ctx *ctx, struct gw_conn **out, char *owner,
                    size_t ownerlen, char *why, size_t whylen)
{
    const struct mcp_identity *who = ctx != NULL ? mcp_ctx_identity(ctx) : NULL;
    unsigned long long key = ctx != NULL ? mcp_ctx_session_key(ctx) : 0;
    struct gateway *gw = u->gw;
    *out = NULL;
    slot_owner(u, ctx, owner, ownerlen);
    pthread_mutex_lock(&u->mu);
    struct slot *s = u->slots;
    while (s != NULL && strcmp(s->owner, owner) != 0)
        s = s->next;
    while (s != NULL && s->starting)
        pthread_cond_wait(&u->cv, &u->mu); /* one start at a time; use what it started */
    if (s != NULL && s->conn != NULL && !s->dead) {
        *out = s->conn;
        gw_conn_hold(*out);
        pthread_mutex_unlock(&u->mu);
        return 0;
    }
    bool shared = strcmp(owner, "shared") == 0;
    if (s != NULL && shared && s->restarts > u->cfg.max_restarts) {
        pthread_mutex_unlock(&u->mu);
        reason_set(why, whylen, "%s failed to start %d times in a row; see the server's log",
                   u->cfg.name, s->restarts);
        return ERR_UNSUPPORTED;
    }
    if (s == NULL) {
        s = xcalloc(1, sizeof *s);
        s->owner = xstrdup(owner);
        s->user = xstrdup(who != NULL && who->subject ? who->subject : "-");
        s->next = u->slots;
        u->slots = s;
    }
    /* a dead shared child is restarted below; a dead per-session one too (a new one) */
    struct gw_conn *old = s->conn;
    s->conn = NULL;
    s->starting = true;
    pthread_mutex_unlock(&u->mu);
    if (old != NULL) {
        if (u->cfg.url == NULL) {
            pthread_mutex_lock(&gw->mu);
            gw->children--;
            pthread_mutex_unlock(&gw->mu);
        }
        end_parked(gw, old, 0);
        gw_conn_free(old);
    }
    if (u->cfg.url == NULL) {
        /* the caps on children */
        pthread_mutex_lock(&gw->mu);
        int mine = 0, same_up = 0;
        if (!shared) {
            for (struct up *x = gw->ups; x != NULL; x = x->next) {
                pthread_mutex_lock(&x->mu);
                for (struct slot *y = x->slots; y != NULL; y = y->next) {
                    if (y->conn == NULL || strcmp(y->owner, "shared") == 0)
                        continue;
                    if (strcmp(y->user, s->user) == 0)
                        mine++;
                    if (x == u)
                        same_up++;
                }
                pthread_mutex_unlock(&x->mu);
            }
        }
        if (gw->children >= gw->max_children || (!shared && mine >= gw->max_per_user) ||
            (!shared && same_up >= u->cfg.max_children)) {
            pthread_mutex_unlock(&gw->mu);
            reason_set(why, whylen,
                       "too many running servers (limits: %d in all, %d per user, %d of %s); "
                       "try again later",
                       gw->max_children, gw->max_per_user, u->cfg.max_children, u->cfg.name);
            pthread_mutex_lock(&u->mu);
            s->starting = false;
            pthread_cond_broadcast(&u->cv);
            pthread_mutex_unlock(&u->mu);
            return ERR_TOOBIG;
        }
        gw->children++;
        pthread_mutex_unlock(&gw->mu);
    }
    int r = slot_start(u, s, who, key, why, whylen);
    pthread_mutex_lock(&u->mu);
    s->starting = false;
    pthread_cond_broadcast(&u->cv);
    if (r != 0) {
        s->restarts++;
        s->dead = true;
        s->retry_at = clock_ms() + (500LL << (s->restarts < 6 ? s->restarts : 6));
    } else {
        s->restarts = 0;
        *out = s->conn;
        gw_conn_hold(*out);
    }
    pthread_mutex_unlock(&u->mu);
    if (r != 0 && u->cfg.url == NULL) {
        pthread_mutex_lock(&gw->mu);
        gw->children--;
        pthread_mutex_unlock(&gw->mu);
    }
    return r;
}

/* ---- forwarding ---- */

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
static void end_parked(struct gateway *gw, struct gw_conn *c, long long older_than)
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
                        char token[48], json_t **resp, char *why, size_t whylen)
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
        return forward_wait(u, ctx, k, question, token, resp, why, whylen);
    }
    char owner[80];
    struct gw_conn *conn = NULL;
    int r = slot_for(u, ctx, &conn, owner, sizeof owner, why, whylen);
    if (r != 0) {
        json_decref(params);
        return r;
    }
    bool progress = mcp_ctx_progress_token(ctx) != NULL;
    r = gw_call_start(conn, method, params, progress, true, owner, &k, why, whylen);
    gw_conn_release(conn); /* the call keeps it now */
    if (r != 0) {
        gw_call_end(k, false, why);
        return r;
    }
    return forward_wait(u, ctx, k, NULL, token, resp, why, whylen);
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
    int r = forward_wait(a->up, ctx, a->k, NULL, token, &resp, why, sizeof why);
    int rc = tool_result(a->up, r, resp, why, &result);
    json_decref(resp);
    mcp_ctx_finish(ctx, rc, result);
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
    if (mcp_ctx_state_get(ctx) != NULL || (slot_owner(u, ctx, owner, sizeof owner),
                                           (conn = slot_ready(u, owner)) == NULL)) {
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
    a->k = gw_call_open_async(conn, mcp_ctx_progress_token(ctx) != NULL, owner,
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

static int tool_fwd(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
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

static int prompt_fwd(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
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
        if (r == 0)
            log_warn("[%s] prompts/get %s: %s", e->up->cfg.name, e->orig,
                     json_string_value(json_object_get(json_object_get(resp, "error"), "message"))
                         ?: "no result");
        else
            log_warn("[%s] prompts/get %s: %s", e->up->cfg.name, e->orig, why);
        json_decref(resp);
        return r == ERR_CANCELLED ? MCPGATE_ECANCELLED : MCPGATE_EINVALID;
    }
    *result = json_deep_copy(res);
    json_object_del(*result, "resultType");
    json_decref(resp);
    return 0;
}

static int resource_fwd(struct mcp_ctx *ctx, const char *uri, json_t **contents, void *udata)
{
    struct entry *e = udata;
    char why[300] = "";
    json_t *params = json_pack("{s:s}", "uri", uri);
    add_identity(ctx, params);
    json_t *resp = NULL;
    int r = forward(e->up, ctx, "resources/read", params, &resp, why, sizeof why);
    if (r == MCPGATE_EINPUT_REQUIRED)
        return r;
    json_t *c = r == 0 ? json_object_get(json_object_get(resp, "result"), "contents") : NULL;
    if (!json_is_array(c)) {
        json_decref(resp);
        return r == ERR_CANCELLED ? MCPGATE_ECANCELLED : MCPGATE_ENOTFOUND;
    }
    *contents = json_incref(c);
    json_decref(resp);
    return 0;
}

/* ---- catalogs: what each upstream offers, registered under its prefix ---- */

static bool tool_allowed(struct up *u, const char *name)
{
    size_t i;
    json_t *g;
    if (u->cfg.allow != NULL) {
        bool ok = false;
        json_array_foreach (u->cfg.allow, i, g)
            if (fnmatch(json_string_value(g), name, 0) == 0)
                ok = true;
        if (!ok)
            return false;
    }
    json_array_foreach (u->cfg.deny, i, g)
        if (fnmatch(json_string_value(g), name, 0) == 0)
            return false;
    return true;
}

static struct entry *entry_new(struct up *u, const char *orig)
{
    struct entry *e = xcalloc(1, sizeof *e);
    e->up = u;
    e->orig = xstrdup(orig);
    pthread_mutex_lock(&u->gw->mu);
    e->next = u->gw->entries;
    u->gw->entries = e;
    pthread_mutex_unlock(&u->gw->mu);
    return e;
}

static char *dump_or_null(json_t *v)
{
    return v != NULL && !json_is_null(v) ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

/* Every page of a list method (names: "tools", ...). New reference, or NULL. */
static json_t *list_all(struct gw_conn *c, const char *method, const char *field, int tmo)
{
    json_t *all = json_array();
    char *cursor = NULL;
    for (int page = 0; page < 100; page++) {
        json_t *params = cursor != NULL ? json_pack("{s:s}", "cursor", cursor) : NULL;
        json_t *resp = NULL;
        char why[200];
        free(cursor);
        cursor = NULL;
        if (gw_conn_call(c, method, params, tmo, NULL, &resp, why, sizeof why) != 0) {
            json_decref(all);
            return NULL;
        }
        json_t *res = json_object_get(resp, "result");
        json_array_extend(all, json_object_get(res, field));
        const char *next = json_string_value(json_object_get(res, "nextCursor"));
        if (next != NULL && *next != '\0')
            cursor = xstrdup(next);
        json_decref(resp);
        if (cursor == NULL)
            break;
    }
    free(cursor);
    return all;
}

static void unregister_kind(struct up *u, const char *kind)
{
    json_t *names = json_object_get(u->reg, kind);
    size_t i;
    json_t *n;
    json_array_foreach (names, i, n) {
        const char *name = json_string_value(n);
        if (strcmp(kind, "tools") == 0)
            (void)mcp_tool_remove(u->gw->srv, name);
        else if (strcmp(kind, "prompts") == 0)
            (void)mcp_prompt_remove(u->gw->srv, name);
        else if (strcmp(kind, "resources") == 0)
            (void)mcp_resource_remove(u->gw->srv, name);
        if (strcmp(kind, "resources") == 0 || strcmp(kind, "templates") == 0) {
            pthread_mutex_lock(&u->gw->mu);
            json_object_del(u->gw->uri_owner, name);
            pthread_mutex_unlock(&u->gw->mu);
        }
    }
    json_object_set_new(u->reg, kind, json_array());
}

static void register_tools(struct up *u, json_t *tools)
{
    size_t i;
    json_t *t;
    json_t *names = json_object_get(u->reg, "tools");
    json_array_foreach (tools, i, t) {
        const char *orig = json_string_value(json_object_get(t, "name"));
        if (orig == NULL || !tool_allowed(u, orig))
            continue;
        char *name = xasprintf("%s" GW_SEP "%s", u->cfg.name, orig);
        char *in = dump_or_null(json_object_get(t, "inputSchema"));
        char *outs = dump_or_null(json_object_get(t, "outputSchema"));
        char *ann = dump_or_null(json_object_get(t, "annotations"));
        char *icons = dump_or_null(json_object_get(t, "icons"));
        struct mcp_tool_def d = {.name = name,
                                 .title = json_string_value(json_object_get(t, "title")),
                                 .description =
                                     json_string_value(json_object_get(t, "description")),
                                 .input_schema = in,
                                 .output_schema = outs,
                                 .annotations = ann,
                                 .icons = icons,
                                 .handler = tool_fwd,
                                 .udata = entry_new(u, orig),
                                 .flags = MCP_TOOL_NONBLOCKING /* or MCPGATE_EWOULDBLOCK */};
        int r = mcp_tool_add(u->gw->srv, &d);
        if (r == MCPGATE_EINVALID) {
            /* a schema our validator cannot compile: the upstream validates its own input */
            d.input_schema = NULL;
            d.output_schema = NULL;
            r = mcp_tool_add(u->gw->srv, &d);
            if (r == 0)
                log_warn("[%s] tool %s: its schemas are not checked here (not understood)",
                         u->cfg.name, orig);
        }
        if (r == 0)
            json_array_append_new(names, json_string(name));
        else
            log_warn("[%s] tool %s not offered: %s", u->cfg.name, orig, mcpgate_strerror(r));
        free(name);
        free(in);
        free(outs);
        free(ann);
        free(icons);
    }
}

static void register_prompts(struct up *u, json_t *prompts)
{
    size_t i;
    json_t *p;
    json_t *names = json_object_get(u->reg, "prompts");
    json_array_foreach (prompts, i, p) {
        const char *orig = json_string_value(json_object_get(p, "name"));
        if (orig == NULL)
            continue;
        char *name = xasprintf("%s" GW_SEP "%s", u->cfg.name, orig);
        char *args = dump_or_null(json_object_get(p, "arguments"));
        struct mcp_prompt_def d = {.name = name,
                                   .title = json_string_value(json_object_get(p, "title")),
                                   .description =
                                       json_string_value(json_object_get(p, "description")),
                                   .arguments = args,
                                   .handler = prompt_fwd,
                                   .udata = entry_new(u, orig)};
        if (mcp_prompt_add(u->gw->srv, &d) == 0)
            json_array_append_new(names, json_string(name));
        else
            log_warn("[%s] prompt %s not offered", u->cfg.name, orig);
        free(name);
        free(args);
    }
}

static bool claim_uri(struct up *u, const char *uri)
{
    pthread_mutex_lock(&u->gw->mu);
    const char *owner = json_string_value(json_object_get(u->gw->uri_owner, uri));
    bool ok = owner == NULL;
    if (ok)
        json_object_set_new(u->gw->uri_owner, uri, json_string(u->cfg.name));
    pthread_mutex_unlock(&u->gw->mu);
    if (!ok && strcmp(owner, u->cfg.name) != 0)
        log_warn("[%s] resource %s is offered by %s already; skipped", u->cfg.name, uri, owner);
    return ok;
}

static void register_resources(struct up *u, json_t *resources, json_t *templates)
{
    size_t i;
    json_t *r;
    json_t *names = json_object_get(u->reg, "resources");
    json_array_foreach (resources, i, r) {
        const char *uri = json_string_value(json_object_get(r, "uri"));
        const char *name = json_string_value(json_object_get(r, "name"));
        if (uri == NULL || !claim_uri(u, uri))
            continue;
        char *ann = dump_or_null(json_object_get(r, "annotations"));
        json_t *size = json_object_get(r, "size");
        struct mcp_resource_def d = {.uri = uri,
                                     .name = name != NULL ? name : uri,
                                     .title = json_string_value(json_object_get(r, "title")),
                                     .description =
                                         json_string_value(json_object_get(r, "description")),
                                     .mime_type = json_string_value(json_object_get(r, "mimeType")),
                                     .annotations = ann,
                                     .size = json_is_integer(size) ? json_integer_value(size) : -1,
                                     .handler = resource_fwd,
                                     .udata = entry_new(u, uri)};
        if (mcp_resource_add(u->gw->srv, &d) == 0)
            json_array_append_new(names, json_string(uri));
        free(ann);
    }
    json_t *tnames = json_object_get(u->reg, "templates");
    json_array_foreach (templates, i, r) {
        const char *tpl = json_string_value(json_object_get(r, "uriTemplate"));
        const char *name = json_string_value(json_object_get(r, "name"));
        if (tpl == NULL || !claim_uri(u, tpl))
            continue;
        struct mcp_resource_template_def d = {
            .uri_template = tpl,
            .name = name != NULL ? name : tpl,
            .title = json_string_value(json_object_get(r, "title")),
            .description = json_string_value(json_object_get(r, "description")),
            .mime_type = json_string_value(json_object_get(r, "mimeType")),
            .handler = resource_fwd,
            .udata = entry_new(u, tpl)};
        if (mcp_resource_template_add(u->gw->srv, &d) == 0)
            json_array_append_new(tnames, json_string(tpl));
    }
}

/* Did a list change since it was last registered? Remembers it. */
static bool changed(struct up *u, const char *kind, json_t *list)
{
    json_t *old = json_object_get(u->seen, kind);
    if (old != NULL && json_equal(old, list))
        return false;
    json_object_set(u->seen, kind, list);
    return true;
}

/* Lists what the upstream offers (kinds per the flags) through c and registers what changed;
 * the server's clients hear one list_changed per list that did. */
static void catalog_load(struct up *u, struct gw_conn *c, bool tools, bool prompts, bool resources)
{
    json_t *caps = json_object_get(gw_conn_info(c), "capabilities");
    int tmo = u->cfg.start_timeout_s * 1000;
    mcp_server_batch(u->gw->srv, true);
    if (tools && json_object_get(caps, "tools") != NULL) {
        json_t *l = list_all(c, "tools/list", "tools", tmo);
        if (l != NULL && changed(u, "tools", l)) {
            unregister_kind(u, "tools");
            register_tools(u, l);
        }
        json_decref(l);
    }
    if (prompts && json_object_get(caps, "prompts") != NULL) {
        json_t *l = list_all(c, "prompts/list", "prompts", tmo);
        if (l != NULL && changed(u, "prompts", l)) {
            unregister_kind(u, "prompts");
            register_prompts(u, l);
        }
        json_decref(l);
    }
    if (resources && json_object_get(caps, "resources") != NULL) {
        json_t *l = list_all(c, "resources/list", "resources", tmo);
        json_t *t = list_all(c, "resources/templates/list", "resourceTemplates", tmo);
        bool ch = l != NULL && changed(u, "resources", l);
        ch = (t != NULL && changed(u, "templates", t)) || ch;
        if (ch) {
            unregister_kind(u, "resources");
            unregister_kind(u, "templates");
            register_resources(u, l, t);
        }
        json_decref(l);
        json_decref(t);
    }
    mcp_server_batch(u->gw->srv, false);
    log_info("[%s] offers %zu tools, %zu prompts, %zu resources, %zu templates", u->cfg.name,
             json_array_size(json_object_get(u->reg, "tools")),
             json_array_size(json_object_get(u->reg, "prompts")),
             json_array_size(json_object_get(u->reg, "resources")),
             json_array_size(json_object_get(u->reg, "templates")));
}

static void on_conn_notification(void *arg, json_t *msg)
{
    struct slot_ref *ref = arg;
    struct up *u = ref->up;
    const char *m = json_string_value(json_object_get(msg, "method"));
    if (m == NULL)
        return;
    if (strcmp(m, "notifications/resources/updated") == 0) {
        const char *uri = json_string_value(json_object_get(json_object_get(msg, "params"), "uri"));
        if (uri != NULL)
            mcp_resource_updated(u->gw->srv, uri);
        return;
    }
    /* list changes are picked up by the reaper thread (listing needs calls, not this thread) */
    pthread_mutex_lock(&u->mu);
    if (strcmp(m, "notifications/tools/list_changed") == 0)
        u->refresh_tools = true;
    else if (strcmp(m, "notifications/prompts/list_changed") == 0)
        u->refresh_prompts = true;
    else if (strcmp(m, "notifications/resources/list_changed") == 0)
        u->refresh_resources = true;
    pthread_mutex_unlock(&u->mu);
    pthread_mutex_lock(&u->gw->mu);
    pthread_cond_broadcast(&u->gw->cv);
    pthread_mutex_unlock(&u->gw->mu);
}

/* ---- who may see what ---- */

static struct up *up_named(struct gateway *gw, const char *name, size_t n)
{
    for (struct up *u = gw->ups; u != NULL; u = u->next)
        if (!u->removed && strlen(u->cfg.name) == n && strncmp(u->cfg.name, name, n) == 0)
            return u;
    return NULL;
}

static bool scope_has(const char *scopes, const char *want)
{
    size_t n = strlen(want);
    for (const char *p = scopes; p != NULL && *p != '\0';) {
        size_t l = strcspn(p, " ");
        if (l == n && strncmp(p, want, n) == 0)
            return true;
        p += l;
        p += strspn(p, " ");
    }
    return false;
}

static bool gw_access(void *arg, const struct mcp_identity *who, const char *kind, const char *name)
{
    struct gateway *gw = arg;
    if (!gw->auth)
        return true;
    struct up *u = NULL;
    pthread_mutex_lock(&gw->mu);
    if (strcmp(kind, "tool") == 0 || strcmp(kind, "prompt") == 0) {
        const char *sep = strstr(name, GW_SEP);
        if (sep != NULL)
            u = up_named(gw, name, (size_t)(sep - name));
    } else {
        const char *owner = json_string_value(json_object_get(gw->uri_owner, name));
        if (owner != NULL)
            u = up_named(gw, owner, strlen(owner));
    }
    bool ok = true;
    if (u != NULL) {
        ok = who != NULL && scope_has(who->scopes, u->cfg.scope);
        if (ok && u->cfg.users != NULL) {
            ok = false;
            size_t i;
            json_t *x;
            json_array_foreach (u->cfg.users, i, x)
                if (who->username != NULL && strcmp(json_string_value(x), who->username) == 0)
                    ok = true;
        }
    }
    pthread_mutex_unlock(&gw->mu);
    return ok;
}

static void on_session_end(void *arg, unsigned long long key)
{
    struct gateway *gw = arg;
    char owner[40];
    snprintf(owner, sizeof owner, "s:%llu", key);
    pthread_mutex_lock(&gw->mu);
    struct up *ups = gw->ups;
    pthread_mutex_unlock(&gw->mu);
    for (struct up *u = ups; u != NULL; u = u->next) {
        if (u->cfg.process != GW_PER_SESSION)
            continue;
        pthread_mutex_lock(&u->mu);
        struct slot *s = u->slots;
        while (s != NULL && strcmp(s->owner, owner) != 0)
            s = s->next;
        pthread_mutex_unlock(&u->mu);
        if (s != NULL) {
            log_info("[%s] the session ended; stopping its server", u->cfg.name);
            slot_stop(u, s);
        }
    }
}

/* ---- starting an upstream ---- */

/* A child of nobody in particular, to learn the catalog of a per-session upstream. */
static int spawn_probe(struct up *u, struct gw_conn **c, char *why, size_t whylen)
{
    char *none[] = {NULL};
    struct gw_upstream_cfg probe = u->cfg;
    probe.args = fill_vars(u->cfg.args, none);
    probe.env = fill_vars(u->cfg.env, none);
    struct gw_conn_events ev = {0};
    int r = gw_conn_spawn(&probe, NULL, &ev, c, why, whylen);
    free_vars(probe.args);
    free_vars(probe.env);
    return r;
}

static void up_start(struct up *u)
{
    char why[300] = "";
    struct gw_conn *c = NULL;
    if (u->cfg.process == GW_PER_SESSION && u->cfg.url == NULL) {
        /* a probe child, anonymous, to learn what every session's child will offer */
        if (spawn_probe(u, &c, why, sizeof why) != 0) {
            log_error("[%s] cannot start: %s", u->cfg.name, why);
            return;
        }
        catalog_load(u, c, true, true, true);
        gw_conn_free(c);
        return;
    }
    char owner[16];
    if (slot_for(u, NULL, &c, owner, sizeof owner, why, sizeof why) != 0) {
        log_error("[%s] cannot start: %s (retrying in the background)", u->cfg.name, why);
        return;
    }
    catalog_load(u, c, true, true, true);
    gw_conn_release(c);
}

static struct up *up_new(struct gateway *gw, struct gw_upstream_cfg *cfg)
{
    struct up *u = xcalloc(1, sizeof *u);
    u->gw = gw;
    u->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg); /* moved */
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->cv, NULL);
    u->reg = json_pack("{s:[], s:[], s:[], s:[]}", "tools", "prompts", "resources", "templates");
    u->seen = json_object();
    return u;
}

static void up_stop(struct up *u)
{
    mcp_server_batch(u->gw->srv, true);
    unregister_kind(u, "tools");
    unregister_kind(u, "prompts");
    unregister_kind(u, "resources");
    unregister_kind(u, "templates");
    mcp_server_batch(u->gw->srv, false);
    json_object_clear(u->seen);
    for (struct slot *s = u->slots; s != NULL; s = s->next)
        slot_stop(u, s);
}

/* ---- the reaper: idle children, restarts, list changes, abandoned questions ---- */

/* Asynchronous calls past their deadline end (nobody waits on them to notice). */
static void expire_calls(struct up *u, long long now)
{
    size_t n = 0, cap = 0;
    struct gw_conn **held = NULL;
    pthread_mutex_lock(&u->mu);
    for (struct slot *s = u->slots; s != NULL; s = s->next) {
        if (s->conn != NULL && gw_conn_busy(s->conn) > 0) {
            if (n == cap)
                held = xrealloc(held, (cap = cap ? cap * 2 : 16) * sizeof *held);
            gw_conn_hold(s->conn);
            held[n++] = s->conn;
        }
    }
    pthread_mutex_unlock(&u->mu);
    for (size_t i = 0; i < n; i++) {
        gw_conn_expire(held[i], now);
        gw_conn_release(held[i]);
    }
    free(held);
}

static void *reaper_main(void *arg)
{
    struct gateway *gw = arg;
    pthread_mutex_lock(&gw->mu);
    while (!gw->stop) {
        cond_wait_ms(&gw->cv, &gw->mu, REAPER_TICK_MS);
        if (gw->stop)
            break;
        struct up *ups = gw->ups;
        pthread_mutex_unlock(&gw->mu);
        long long now = clock_ms();
        for (struct up *u = ups; u != NULL; u = u->next) {
            if (u->removed)
                continue;
            expire_calls(u, now);
            pthread_mutex_lock(&u->mu);
            bool rt = u->refresh_tools, rp = u->refresh_prompts, rr = u->refresh_resources;
            u->refresh_tools = u->refresh_prompts = u->refresh_resources = false;
            struct slot *shared = NULL, *idle = NULL;
            for (struct slot *s = u->slots; s != NULL; s = s->next) {
                if (strcmp(s->owner, "shared") == 0) {
                    if (s->dead && !s->starting && s->restarts <= u->cfg.max_restarts &&
                        now >= s->retry_at)
                        shared = s;
                } else if (s->conn != NULL && idle == NULL && gw_conn_busy(s->conn) == 0 &&
                           now - gw_conn_idle_since(s->conn) > u->cfg.idle_timeout_s * 1000LL) {
                    idle = s;
                }
            }
            bool no_shared = u->slots == NULL && u->cfg.process == GW_SHARED;
            pthread_mutex_unlock(&u->mu);
            if (idle != NULL) {
                log_info("[%s] idle for %d s; stopping %s", u->cfg.name, u->cfg.idle_timeout_s,
                         idle->owner);
                slot_stop(u, idle);
            }
            if (shared != NULL || no_shared) {
                struct gw_conn *c = NULL;
                char owner[16], why[300];
                if (slot_for(u, NULL, &c, owner, sizeof owner, why, sizeof why) == 0) {
                    gw_conn_release(c);
                    log_info("[%s] running again", u->cfg.name);
                    rt = rp = rr = true; /* a new process may offer other things */
                } else {
                    log_warn("[%s] restart failed: %s", u->cfg.name, why);
                }
            }
            if (rt || rp || rr) {
                struct gw_conn *c = NULL;
                char owner[16], why[300];
                if (u->cfg.process == GW_PER_SESSION && u->cfg.url == NULL) {
                    if (spawn_probe(u, &c, why, sizeof why) == 0) {
                        catalog_load(u, c, rt, rp, rr);
                        gw_conn_free(c);
                    }
                } else if (slot_for(u, NULL, &c, owner, sizeof owner, why, sizeof why) == 0) {
                    catalog_load(u, c, rt, rp, rr);
                    gw_conn_release(c);
                }
            }
        }
        /* questions nobody came back to answer: let their calls end */
        end_parked(gw, NULL, now - PARK_TTL_MS);
        pthread_mutex_lock(&gw->mu);
    }
    pthread_mutex_unlock(&gw->mu);
    return NULL;
}

/* ---- the gateway ---- */

int gw_start(struct mcp_server *srv, struct gw_config *cfg, bool auth, struct gateway **out)
{
    struct gateway *gw = xcalloc(1, sizeof *gw);
    gw->srv = srv;
    gw->auth = auth;
    gw->max_children = cfg->max_children;
    gw->max_per_user = cfg->max_children_per_user;
    gw->uri_owner = json_object();
    pthread_mutex_init(&gw->mu, NULL);
    pthread_cond_init(&gw->cv, NULL);
    mcp_server_set_access(srv, gw_access, gw);
    mcp_server_set_session_end(srv, on_session_end, gw);
    struct up **tail = &gw->ups;
    for (size_t i = 0; i < cfg->nup; i++) {
        struct up *u = up_new(gw, &cfg->up[i]);
        *tail = u;
        tail = &u->next;
    }
    for (struct up *u = gw->ups; u != NULL; u = u->next)
        up_start(u);
    if (pthread_create(&gw->reaper, NULL, reaper_main, gw) != 0) {
        gw_free(gw);
        return ERR_INTERNAL;
    }
    gw_config_free(cfg);
    *out = gw;
    return 0;
}

int gw_reload(struct gateway *gw, struct gw_config *cfg)
{
    gw->max_children = cfg->max_children;
    gw->max_per_user = cfg->max_children_per_user;
    /* removed or changed upstreams stop first (their names may be reused) */
    for (struct up *u = gw->ups; u != NULL; u = u->next) {
        if (u->removed)
            continue;
        bool keep = false;
        for (size_t i = 0; i < cfg->nup; i++)
            if (cfg->up[i].name != NULL && strcmp(cfg->up[i].name, u->cfg.name) == 0 &&
                json_equal(cfg->up[i].source, u->cfg.source))
                keep = true;
        if (!keep) {
            log_info("[%s] removed or changed: stopping it", u->cfg.name);
            pthread_mutex_lock(&gw->mu);
            u->removed = true;
            pthread_mutex_unlock(&gw->mu);
            up_stop(u);
        }
    }
    for (size_t i = 0; i < cfg->nup; i++) {
        bool have = false;
        pthread_mutex_lock(&gw->mu);
        have = up_named(gw, cfg->up[i].name, strlen(cfg->up[i].name)) != NULL;
        pthread_mutex_unlock(&gw->mu);
        if (have)
            continue;
        struct up *u = up_new(gw, &cfg->up[i]);
        pthread_mutex_lock(&gw->mu);
        struct up **pp = &gw->ups;
        while (*pp != NULL)
            pp = &(*pp)->next;
        *pp = u;
        pthread_mutex_unlock(&gw->mu);
        log_info("[%s] added", u->cfg.name);
        up_start(u);
    }
    gw_config_free(cfg);
    return 0;
}

void gw_free(struct gateway *gw)
{
    if (gw == NULL)
        return;
    pthread_mutex_lock(&gw->mu);
    gw->stop = true;
    pthread_cond_broadcast(&gw->cv);
    pthread_mutex_unlock(&gw->mu);
    if (gw->reaper)
        pthread_join(gw->reaper, NULL);
    for (struct up *u = gw->ups; u != NULL; u = u->next)
        for (struct slot *s = u->slots; s != NULL; s = s->next)
            slot_stop(u, s);
    end_parked(gw, NULL, 0);
    while (gw->ups != NULL) {
        struct up *u = gw->ups;
        gw->ups = u->next;
        while (u->slots != NULL) {
            struct slot *s = u->slots;
            u->slots = s->next;
            free(s->owner);
            free(s->user);
            free(s);
        }
        free(u->cfg.name);
        free(u->cfg.command);
        for (char **a = u->cfg.args; a != NULL && *a != NULL; a++)
            free(*a);
        free(u->cfg.args);
        for (char **a = u->cfg.env; a != NULL && *a != NULL; a++)
            free(*a);
        free(u->cfg.env);
        free(u->cfg.cwd);
        free(u->cfg.url);
        for (char **a = u->cfg.headers; a != NULL && *a != NULL; a++)
            free(*a);
        free(u->cfg.headers);
        free(u->cfg.transport);
        free(u->cfg.protocol_version);
        free(u->cfg.scope);
        json_decref(u->cfg.users);
        json_decref(u->cfg.allow);
        json_decref(u->cfg.deny);
        json_decref(u->cfg.source);
        json_decref(u->reg);
        json_decref(u->seen);
        pthread_cond_destroy(&u->cv);
        pthread_mutex_destroy(&u->mu);
        free(u);
    }
    while (gw->entries != NULL) {
        struct entry *e = gw->entries;
        gw->entries = e->next;
        free(e->orig);
        free(e);
    }
    json_decref(gw->uri_owner);
    pthread_mutex_destroy(&gw->mu);
    pthread_cond_destroy(&gw->cv);
    free(gw);
}
