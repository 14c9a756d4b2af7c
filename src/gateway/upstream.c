/* The running gateway (see gateway.h): upstreams, their children (slots: shared or one per
 * session), their catalogs registered in the server under NAME__, who may see what, the reaper
 * (restarts, idle children, list changes, timeouts) and reload. The calls themselves are
 * forward.c's.
 *
 * Lifetimes: upstreams (and the slot refs their children's events carry) are only freed by
 * gw_free, after every child is stopped, so a handler in flight never meets freed memory; a
 * registry entry's handler data is freed by the registry once the entry is removed and no
 * call uses it; a parked call is ended before its connection is; a connection found for a
 * call is held until the call is registered on it. */
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
#include "gateway/gw_int.h"
#include "mcp/jsonrpc.h"

/* ---- children ---- */

static void on_conn_notification(void *arg, json_t *msg);
#define HEALTHY_RUN_MS 60000 /* a child that ran this long did not die of starting */

static void on_conn_exit(void *arg, const char *why);

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
    struct gw_conn *conn; /* the child it was made for (u->mu), to tell a stale exit */
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
    ref->conn = c;
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

#define HEALTHY_RUN_MS 60000 /* a child that ran this long did not die of starting */

static void on_conn_exit(void *arg, const char *why)
{
    struct slot_ref *ref = arg;
    struct up *u = ref->up;
    pthread_mutex_lock(&u->mu);
    bool shared = strcmp(ref->slot->owner, "shared") == 0;
    if (ref->slot->conn != ref->conn) {
        /* a child already replaced (a call found it gone first): its end is old news */
        pthread_mutex_unlock(&u->mu);
        log_info("[%s] %s (already replaced)", u->cfg.name, why);
        return;
    }
    ref->slot->dead = true;
    /* a child that ran a while was fine; one that dies soon after starting counts as a failed
     * start, so a crash loop backs off (0.5 s doubling to 32 s) and ends at maxRestarts */
    if (clock_ms() - ref->slot->started_at >= HEALTHY_RUN_MS)
        ref->slot->restarts = 0;
    else
        ref->slot->restarts++;
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
void gw_caller(struct mcp_ctx *ctx, char *out, size_t outlen)
{
    const struct mcp_identity *who = ctx != NULL ? mcp_ctx_identity(ctx) : NULL;
    unsigned long long key = ctx != NULL ? mcp_ctx_session_key(ctx) : 0;
    const char *sub = who != NULL && who->subject != NULL ? who->subject : "-";
    if (key != 0) {
        snprintf(out, outlen, "s:%llu", key);
    } else if (strlen(sub) <= 60) {
        snprintf(out, outlen, "u:%s", sub);
    } else { /* long subjects (client:<a URL>): a digest, never a shared prefix */
        unsigned char d[CRYPTO_SHA256_LEN];
        crypto_sha256(sub, strlen(sub), d);
        char hex[2 * 16 + 1];
        for (int i = 0; i < 16; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
        snprintf(out, outlen, "u#%s", hex);
    }
}

void slot_owner(struct up *u, struct mcp_ctx *ctx, char *owner, size_t ownerlen)
{
    if (u->cfg.process == GW_SHARED || u->cfg.url != NULL)
        snprintf(owner, ownerlen, "shared");
    else
        gw_caller(ctx, owner, ownerlen);
}

/* The running connection of owner's slot, held (gw_conn_release), or NULL when there is none
 * yet or it is (re)starting: never waits. */
struct gw_conn *slot_ready(struct up *u, const char *owner)
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
int slot_for(struct up *u, struct mcp_ctx *ctx, struct gw_conn **out, char *owner, size_t ownerlen,
             char *why, size_t whylen)
{
    struct gateway *gw = u->gw;
    *out = NULL;
    slot_owner(u, ctx, owner, ownerlen);
    pthread_mutex_lock(&gw->mu);
    bool removed = u->removed;
    pthread_mutex_unlock(&gw->mu);
    if (removed) { /* a reload took it away: nothing of it starts again */
        reason_set(why, whylen, "%s was removed from the configuration", u->cfg.name);
        return ERR_NOTFOUND;
    }
    /* a shared child serves everyone: whoever happens to start it lends it no identity */
    bool shared = strcmp(owner, "shared") == 0;
    const struct mcp_identity *who = ctx != NULL && !shared ? mcp_ctx_identity(ctx) : NULL;
    unsigned long long key = ctx != NULL && !shared ? mcp_ctx_session_key(ctx) : 0;
    pthread_mutex_lock(&u->mu);
    struct slot *s = u->slots;
    while (s != NULL && strcmp(s->owner, owner) != 0)
        s = s->next;
    while (s != NULL && s->starting)
        pthread_cond_wait(&u->cv, &u->mu); /* one start at a time; use what it started */
    if (s != NULL && s->conn != NULL && !s->dead && gw_conn_alive(s->conn)) {
        *out = s->conn;
        gw_conn_hold(*out);
        pthread_mutex_unlock(&u->mu);
        return 0;
    }
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
        s->started_at = clock_ms();
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

struct entry *entry_new(struct up *u, const char *orig)
{
    struct entry *e = xcalloc(1, sizeof *e);
    e->up = u;
    e->orig = xstrdup(orig);
    return e;
}

void entry_release(void *udata)
{
    struct entry *e = udata;
    if (e != NULL) {
        free(e->orig);
        free(e);
    }
}

char *gw_dump_or_null(json_t *v)
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

/* Tools or prompts (resources: resources.c). */
static void unregister_kind(struct up *u, const char *kind)
{
    json_t *names = json_object_get(u->reg, kind);
    size_t i;
    json_t *n;
    json_array_foreach (names, i, n) {
        const char *name = json_string_value(n);
        if (strcmp(kind, "tools") == 0)
            (void)mcp_tool_remove(u->gw->srv, name);
        else
            (void)mcp_prompt_remove(u->gw->srv, name);
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
        char *in = gw_dump_or_null(json_object_get(t, "inputSchema"));
        char *outs = gw_dump_or_null(json_object_get(t, "outputSchema"));
        char *ann = gw_dump_or_null(json_object_get(t, "annotations"));
        char *icons = gw_dump_or_null(json_object_get(t, "icons"));
        json_t *mj = gw_expose_tool_meta(u, json_object_get(t, "_meta"));
        char *meta = gw_dump_or_null(mj);
        json_decref(mj);
        if (json_object_get(json_object_get(json_object_get(t, "_meta"), "ui"), "resourceUri") ||
            json_object_get(json_object_get(t, "_meta"), "ui/resourceUri"))
            atomic_store(&u->ui_tools, true);
        struct mcp_tool_def d = {.name = name,
                                 .title = json_string_value(json_object_get(t, "title")),
                                 .description =
                                     json_string_value(json_object_get(t, "description")),
                                 .input_schema = in,
                                 .output_schema = outs,
                                 .annotations = ann,
                                 .icons = icons,
                                 .meta = meta,
                                 .handler = tool_fwd,
                                 .udata = entry_new(u, orig),
                                 .release = entry_release,
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
        if (r == 0) {
            json_array_append_new(names, json_string(name));
        } else {
            entry_release(d.udata);
            log_warn("[%s] tool %s not offered: %s", u->cfg.name, orig, mcpgate_strerror(r));
        }
        free(name);
        free(in);
        free(outs);
        free(ann);
        free(icons);
        free(meta);
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
        char *args = gw_dump_or_null(json_object_get(p, "arguments"));
        struct mcp_prompt_def d = {.name = name,
                                   .title = json_string_value(json_object_get(p, "title")),
                                   .description =
                                       json_string_value(json_object_get(p, "description")),
                                   .arguments = args,
                                   .handler = prompt_fwd,
                                   .udata = entry_new(u, orig),
                                   .release = entry_release};
        if (mcp_prompt_add(u->gw->srv, &d) == 0) {
            json_array_append_new(names, json_string(name));
        } else {
            entry_release(d.udata);
            log_warn("[%s] prompt %s not offered", u->cfg.name, orig);
        }
        free(name);
        free(args);
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
    pthread_mutex_lock(&u->cat_mu);
    pthread_mutex_lock(&u->gw->mu);
    bool removed = u->removed;
    pthread_mutex_unlock(&u->gw->mu);
    if (removed) { /* reloaded away meanwhile: register nothing of it */
        pthread_mutex_unlock(&u->cat_mu);
        return;
    }
    mcp_server_batch(u->gw->srv, true);
    /* resources first: a tool may point at one (MCP Apps), under the name decided here */
    if (resources && json_object_get(caps, "resources") != NULL) {
        json_t *l = list_all(c, "resources/list", "resources", tmo);
        json_t *t = list_all(c, "resources/templates/list", "resourceTemplates", tmo);
        gw_resources_offer(u, l, t);
        json_decref(l);
        json_decref(t);
    }
    if (tools && json_object_get(caps, "tools") != NULL) {
        pthread_mutex_lock(&u->mu);
        bool retool = u->retool;
        u->retool = false;
        pthread_mutex_unlock(&u->mu);
        json_t *l = list_all(c, "tools/list", "tools", tmo);
        if (l != NULL && (changed(u, "tools", l) || retool)) {
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
    mcp_server_batch(u->gw->srv, false);
    pthread_mutex_lock(&u->gw->res_mu);
    size_t nres = json_array_size(json_object_get(u->res_reg, "resources"));
    size_t ntpl = json_array_size(json_object_get(u->res_reg, "templates"));
    pthread_mutex_unlock(&u->gw->res_mu);
    log_info("[%s] offers %zu tools, %zu prompts, %zu resources, %zu templates", u->cfg.name,
             json_array_size(json_object_get(u->reg, "tools")),
             json_array_size(json_object_get(u->reg, "prompts")), nres, ntpl);
    pthread_mutex_unlock(&u->cat_mu);
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
        if (uri == NULL)
            return;
        char *x = gw_expose_uri(u, uri);
        const char *owner = ref->slot->owner;
        if (strcmp(owner, "shared") == 0)
            mcp_resource_updated(u->gw->srv, x != NULL ? x : uri);
        else if (strncmp(owner, "s:", 2) == 0) /* a session's own child: its news alone */
            mcp_resource_updated_in(u->gw->srv, strtoull(owner + 2, NULL, 10), x != NULL ? x : uri);
        free(x); /* a user's child (2026-07-28, no session): nobody to tell */
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

struct up *up_named(struct gateway *gw, const char *name, size_t n)
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

/* May who use u? Its scope, and its users when it names some. */
static bool up_allowed(struct gateway *gw, struct up *u, const struct mcp_identity *who)
{
    if (!gw->auth || u == NULL)
        return true;
    bool ok = who != NULL && scope_has(who->scopes, u->cfg.scope);
    if (ok && u->cfg.users != NULL) {
        ok = false;
        size_t i;
        json_t *x;
        json_array_foreach (u->cfg.users, i, x)
            if (who->username != NULL && strcmp(json_string_value(x), who->username) == 0)
                ok = true;
    }
    return ok;
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
    bool ok = up_allowed(gw, u, who);
    pthread_mutex_unlock(&gw->mu);
    return ok;
}

/* completion/complete for an upstream's prompt or resource template: asked of that upstream
 * (the caller's own child for a per-session server) under the upstream's own name. */
static int gw_complete(struct mcp_ctx *ctx, json_t *ref, const char *arg_name,
                       const char *arg_value, json_t *context_args, json_t **values, void *udata)
{
    struct gateway *gw = udata;
    const char *type = json_string_value(json_object_get(ref, "type"));
    const char *name = json_string_value(json_object_get(ref, "name"));
    const char *uri = json_string_value(json_object_get(ref, "uri"));
    struct up *u = NULL;
    json_t *uref = NULL;
    if (type != NULL && strcmp(type, "ref/prompt") == 0 && name != NULL) {
        const char *sep = strstr(name, GW_SEP);
        pthread_mutex_lock(&gw->mu);
        u = sep != NULL ? up_named(gw, name, (size_t)(sep - name)) : NULL;
        pthread_mutex_unlock(&gw->mu);
        if (u != NULL) {
            if (!up_allowed(gw, u, mcp_ctx_identity(ctx)))
                return MCPGATE_ENOTFOUND;
            uref = json_pack("{s:s, s:s}", "type", type, "name", sep + strlen(GW_SEP));
        }
    } else if (type != NULL && strcmp(type, "ref/resource") == 0 && uri != NULL) {
        char *upname = NULL;
        char *orig = gw_ref_owner(gw, uri, &upname);
        if (orig != NULL) {
            pthread_mutex_lock(&gw->mu);
            u = up_named(gw, upname, strlen(upname));
            pthread_mutex_unlock(&gw->mu);
            if (u != NULL)
                uref = json_pack("{s:s, s:s}", "type", type, "uri", orig);
        }
        free(orig);
        free(upname);
        /* whoever it is found through (a template, a resource, a URI a template matches) */
        if (u != NULL && !up_allowed(gw, u, mcp_ctx_identity(ctx))) {
            json_decref(uref);
            return MCPGATE_ENOTFOUND;
        }
    }
    if (u == NULL) {
        json_decref(uref);
        return gw->next_complete != NULL
                   ? gw->next_complete(ctx, ref, arg_name, arg_value, context_args, values,
                                       gw->next_complete_arg)
                   : MCPGATE_ENOTFOUND;
    }
    struct gw_conn *c = NULL;
    char owner[96], why[300] = "";
    if (slot_for(u, ctx, &c, owner, sizeof owner, why, sizeof why) != 0) {
        json_decref(uref);
        log_warn("[%s] completion/complete: %s", u->cfg.name, why);
        return MCPGATE_EINVALID;
    }
    if (json_object_get(json_object_get(gw_conn_info(c), "capabilities"), "completions") == NULL) {
        gw_conn_release(c);
        json_decref(uref);
        *values = json_array(); /* it completes nothing */
        return 0;
    }
    json_t *params = json_pack("{s:o, s:{s:s, s:s}}", "ref", uref, "argument", "name", arg_name,
                               "value", arg_value);
    if (json_is_object(context_args))
        json_object_set_new(params, "context", json_pack("{s:O}", "arguments", context_args));
    json_t *resp = NULL;
    int r = gw_conn_call(c, "completion/complete", params, u->cfg.call_timeout_s * 1000, NULL,
                         &resp, why, sizeof why);
    gw_conn_release(c);
    json_t *got = json_object_get(json_object_get(json_object_get(resp, "result"), "completion"),
                                  "values");
    if (r != 0 || !json_is_array(got)) {
        const char *m = json_string_value(json_object_get(json_object_get(resp, "error"), "message"));
        log_warn("[%s] completion/complete: %s", u->cfg.name, r != 0 ? why : m ?: "no values");
        json_decref(resp);
        return MCPGATE_EINVALID;
    }
    *values = json_array();
    size_t i;
    json_t *v;
    json_array_foreach (got, i, v)
        if (json_is_string(v))
            json_array_append(*values, v);
    json_decref(resp);
    return 0;
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
    gw_watch_again(u, false); /* clients may have subscribed to its URIs before it came */
}

static struct up *up_new(struct gateway *gw, struct gw_upstream_cfg *cfg)
{
    struct up *u = xcalloc(1, sizeof *u);
    u->gw = gw;
    u->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg); /* moved */
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->cv, NULL);
    u->reg = json_pack("{s:[], s:[]}", "tools", "prompts");
    u->seen = json_object();
    pthread_mutex_init(&u->cat_mu, NULL);
    u->res_offer = json_array();
    u->tpl_offer = json_array();
    u->res_reg = json_pack("{s:[], s:[]}", "resources", "templates");
    u->ns_res = json_object();
    u->ns_tpl = json_object();
    u->plain_res = json_object();
    u->plain_tpl = json_array();
    return u;
}

static void up_stop(struct up *u)
{
    /* after a catalog_load in progress (it sees removed and registers nothing more) */
    pthread_mutex_lock(&u->cat_mu);
    mcp_server_batch(u->gw->srv, true);
    unregister_kind(u, "tools");
    unregister_kind(u, "prompts");
    gw_resources_withdraw(u); /* one that shared a URI with it may drop its name */
    mcp_server_batch(u->gw->srv, false);
    pthread_mutex_unlock(&u->cat_mu);
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
                    gw_watch_again(u, true);
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
    pthread_mutex_init(&gw->res_mu, NULL);
    pthread_cond_init(&gw->cv, NULL);
    mcp_server_set_access(srv, gw_access, gw);
    mcp_server_set_session_end(srv, on_session_end, gw);
    gw->watch_want = json_object();
    gw->watch_again = json_object();
    gw->sub_map = json_object();
    gw->sub_count = json_object();
    mcp_server_set_watch(srv, gw_watch, gw);
    gw->next_complete = mcp_completion_get(srv, &gw->next_complete_arg);
    mcp_completion_set(srv, gw_complete, gw);
    struct up **tail = &gw->ups;
    for (size_t i = 0; i < cfg->nup; i++) {
        struct up *u = up_new(gw, &cfg->up[i]);
        *tail = u;
        tail = &u->next;
    }
    for (struct up *u = gw->ups; u != NULL; u = u->next)
        up_start(u);
    if (pthread_create(&gw->reaper, NULL, reaper_main, gw) != 0 ||
        pthread_create(&gw->watcher, NULL, gw_watcher_main, gw) != 0) {
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
    mcp_server_set_watch(gw->srv, NULL, NULL);
    mcp_completion_set(gw->srv, gw->next_complete, gw->next_complete_arg);
    pthread_mutex_lock(&gw->mu);
    gw->stop = true;
    pthread_cond_broadcast(&gw->cv);
    pthread_mutex_unlock(&gw->mu);
    if (gw->reaper)
        pthread_join(gw->reaper, NULL);
    if (gw->watcher)
        pthread_join(gw->watcher, NULL);
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
        json_decref(u->res_offer);
        json_decref(u->tpl_offer);
        json_decref(u->ns_res);
        json_decref(u->ns_tpl);
        json_decref(u->plain_res);
        json_decref(u->plain_tpl);
        json_decref(u->res_reg);
        pthread_mutex_destroy(&u->cat_mu);
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
    json_decref(gw->watch_want);
    json_decref(gw->watch_again);
    json_decref(gw->sub_map);
    json_decref(gw->sub_count);
    pthread_mutex_destroy(&gw->mu);
    pthread_mutex_destroy(&gw->res_mu);
    pthread_cond_destroy(&gw->cv);
    free(gw);
}
