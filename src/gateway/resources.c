/* The upstreams' resources and resource templates (see gw_int.h).
 *
 * Each is registered under its own URI, except where two upstreams offer the same one: then
 * every offer of that URI carries its upstream's name after the scheme and its slashes
 * ("demo://doc/a" from "left" and "right" becomes "demo://left/doc/a" and "demo://right/doc/a";
 * "urn:x" becomes "urn:left/x"). No resource hides another, and since the rule looks at every
 * offer at once, the names do not depend on which upstream answered first. A namespaced form
 * that happens to equal another upstream's plain URI namespaces that one too, until nothing
 * collides. URIs leaving an upstream (read contents, links and embedded resources in results,
 * update notifications, a tool's UI resource) are rewritten to the names clients know; reads
 * are rewritten back. Text that mentions a URI is left alone. */
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "gateway/gw_int.h"
#include "mcp/mcp_int.h"

/* ---- the namespaced form ---- */

/* Where name goes into uri: after "scheme:" and the slashes that follow (then *ins is
 * "name/"), or at the front of a URI without a scheme (then *ins is "mcpgate:~name/": the '~',
 * which no name starts with, keeps it apart from the namespaced form of "mcpgate:..."). */
static size_t ns_where(const char *uri, const char *name, char **ins)
{
    size_t i = 0;
    if (isalpha((unsigned char)uri[0])) {
        while (isalnum((unsigned char)uri[i]) || uri[i] == '+' || uri[i] == '-' || uri[i] == '.')
            i++;
        if (uri[i] == ':') {
            i++;
            while (uri[i] == '/')
                i++;
            *ins = xasprintf("%s/", name);
            return i;
        }
    }
    *ins = xasprintf("mcpgate:~%s/", name);
    return 0;
}

char *gw_ns_uri(const char *name, const char *uri)
{
    char *ins;
    size_t at = ns_where(uri, name, &ins);
    char *r = xasprintf("%.*s%s%s", (int)at, uri, ins, uri + at);
    free(ins);
    return r;
}

char *gw_ns_strip(const char *name, const char *tpl, const char *uri)
{
    char *ins;
    size_t at = ns_where(tpl, name, &ins);
    size_t n = strlen(ins);
    char *r = NULL;
    if (strlen(uri) >= at + n && strncmp(uri, tpl, at) == 0 && strncmp(uri + at, ins, n) == 0)
        r = xasprintf("%.*s%s", (int)at, uri, uri + at + n);
    free(ins);
    return r;
}

/* ---- what clients see of an upstream's URIs ---- */

char *gw_expose_uri(struct up *u, const char *uri)
{
    if (uri == NULL || !atomic_load_explicit(&u->has_ns, memory_order_acquire))
        return NULL;
    char *r = NULL;
    pthread_mutex_lock(&u->gw->mu);
    const char *x = json_string_value(json_object_get(u->ns_res, uri));
    size_t i;
    json_t *plain;
    bool keep = json_object_get(u->plain_res, uri) != NULL; /* registered as it is */
    json_array_foreach (u->plain_tpl, i, plain) {
        if (keep)
            break;
        json_t *vars = uri_template_match(json_string_value(plain), uri);
        keep = vars != NULL;
        json_decref(vars);
    }
    if (x != NULL) {
        r = xstrdup(x);
    } else if (!keep) {
        const char *tpl;
        json_t *v;
        json_object_foreach (u->ns_tpl, tpl, v) {
            json_t *vars = uri_template_match(tpl, uri);
            if (vars != NULL) {
                json_decref(vars);
                char *ins;
                size_t at = ns_where(tpl, u->cfg.name, &ins);
                r = xasprintf("%.*s%s%s", (int)at, uri, ins, uri + at);
                free(ins);
                break;
            }
        }
    }
    pthread_mutex_unlock(&u->gw->mu);
    return r;
}

static void expose_member(struct up *u, json_t *obj, const char *key)
{
    char *x = gw_expose_uri(u, json_string_value(json_object_get(obj, key)));
    if (x != NULL)
        json_object_set_new(obj, key, json_string(x));
    free(x);
}

void gw_expose_block(struct up *u, json_t *block)
{
    const char *type = json_string_value(json_object_get(block, "type"));
    if (type == NULL || !atomic_load_explicit(&u->has_ns, memory_order_acquire))
        return;
    if (strcmp(type, "resource_link") == 0)
        expose_member(u, block, "uri");
    else if (strcmp(type, "resource") == 0)
        expose_member(u, json_object_get(block, "resource"), "uri");
}

void gw_expose_blocks(struct up *u, json_t *blocks)
{
    if (!atomic_load_explicit(&u->has_ns, memory_order_acquire))
        return;
    size_t i;
    json_t *b;
    json_array_foreach (blocks, i, b)
        gw_expose_block(u, b);
}

void gw_expose_content(struct up *u, json_t *item)
{
    expose_member(u, item, "uri");
}

json_t *gw_expose_tool_meta(struct up *u, json_t *meta)
{
    if (!json_is_object(meta))
        return NULL;
    json_t *m = json_deep_copy(meta);
    expose_member(u, json_object_get(m, "ui"), "resourceUri"); /* MCP Apps */
    expose_member(u, m, "ui/resourceUri");                     /* its earlier spelling */
    return m;
}

/* ---- who offers what ---- */

struct offer {
    const char *up, *orig;
    char *exposed; /* the namespaced form, once asked */
    bool ns;
};

static const char *offer_ns(struct offer *o)
{
    if (o->exposed == NULL)
        o->exposed = gw_ns_uri(o->up, o->orig);
    return o->exposed;
}

json_t *gw_ns_plan(json_t *offers)
{
    size_t n = 0, cap = 16;
    struct offer *o = xmalloc(cap * sizeof *o);
    json_t *count = json_object(); /* URI -> upstreams offering it */
    const char *up;
    json_t *list;
    json_object_foreach (offers, up, list) {
        json_t *mine = json_object();
        size_t i;
        json_t *v;
        json_array_foreach (list, i, v) {
            const char *uri = json_string_value(v);
            if (uri == NULL || json_object_get(mine, uri) != NULL)
                continue; /* listed twice by one upstream: one offer */
            json_object_set_new(mine, uri, json_true());
            if (n == cap) {
                cap *= 2;
                o = xrealloc(o, cap * sizeof *o);
            }
            o[n++] = (struct offer){.up = up, .orig = uri};
            json_t *c = json_object_get(count, uri);
            json_object_set_new(count, uri, json_integer(c != NULL ? json_integer_value(c) + 1 : 1));
        }
        json_decref(mine);
    }
    for (size_t i = 0; i < n; i++)
        o[i].ns = json_integer_value(json_object_get(count, o[i].orig)) > 1;
    json_decref(count);
    /* a namespaced form equal to a plain URI: that one is namespaced too, until none is */
    for (bool again = true; again;) {
        again = false;
        json_t *taken = json_object();
        for (size_t i = 0; i < n; i++)
            if (o[i].ns)
                json_object_set_new(taken, offer_ns(&o[i]), json_true());
        for (size_t i = 0; i < n; i++) {
            if (!o[i].ns && json_object_get(taken, o[i].orig) != NULL) {
                o[i].ns = true;
                again = true;
            }
        }
        json_decref(taken);
    }
    json_t *plan = json_object();
    json_object_foreach (offers, up, list)
        json_object_set_new(plan, up, json_object());
    for (size_t i = 0; i < n; i++) {
        if (o[i].ns)
            json_object_set_new(json_object_get(plan, o[i].up), o[i].orig,
                                json_string(offer_ns(&o[i])));
        free(o[i].exposed);
    }
    free(o);
    return plan;
}

/* {upstream: [the URIs (key "uri") or templates ("uriTemplate") it offers]} */
static json_t *offers_of(struct up **ups, size_t nups, bool templates)
{
    json_t *offers = json_object();
    for (size_t k = 0; k < nups; k++) {
        json_t *uris = json_array();
        size_t i;
        json_t *item;
        json_array_foreach (templates ? ups[k]->tpl_offer : ups[k]->res_offer, i, item) {
            json_t *uri = json_object_get(item, templates ? "uriTemplate" : "uri");
            if (json_is_string(uri) && json_string_length(uri) > 0)
                json_array_append(uris, uri);
        }
        json_object_set_new(offers, ups[k]->cfg.name, uris);
    }
    return offers;
}

/* ---- the registry ---- */

static void unregister(struct up *u)
{
    static const char *const kinds[] = {"resources", "templates"};
    for (size_t k = 0; k < 2; k++) {
        json_t *names = json_object_get(u->res_reg, kinds[k]);
        size_t i;
        json_t *v;
        json_array_foreach (names, i, v) {
            const char *name = json_string_value(v);
            if (k == 0)
                (void)mcp_resource_remove(u->gw->srv, name);
            else
                (void)mcp_resource_template_remove(u->gw->srv, name);
            pthread_mutex_lock(&u->gw->mu);
            json_object_del(u->gw->uri_owner, name);
            pthread_mutex_unlock(&u->gw->mu);
        }
        json_object_set_new(u->res_reg, kinds[k], json_array());
    }
}

static bool claim(struct up *u, const char *uri)
{
    pthread_mutex_lock(&u->gw->mu);
    const char *owner = json_string_value(json_object_get(u->gw->uri_owner, uri));
    bool ok = owner == NULL;
    if (ok)
        json_object_set_new(u->gw->uri_owner, uri, json_string(u->cfg.name));
    pthread_mutex_unlock(&u->gw->mu);
    return ok;
}

static void unclaim(struct up *u, const char *uri)
{
    pthread_mutex_lock(&u->gw->mu);
    json_object_del(u->gw->uri_owner, uri);
    pthread_mutex_unlock(&u->gw->mu);
}

static void register_all(struct up *u)
{
    size_t i;
    json_t *r;
    json_t *names = json_object_get(u->res_reg, "resources");
    json_array_foreach (u->res_offer, i, r) {
        const char *orig = json_string_value(json_object_get(r, "uri"));
        if (orig == NULL || *orig == '\0')
            continue;
        const char *uri = json_string_value(json_object_get(u->ns_res, orig));
        if (uri == NULL)
            uri = orig;
        if (!claim(u, uri))
            continue; /* listed twice by the upstream */
        const char *name = json_string_value(json_object_get(r, "name"));
        char *ann = gw_dump_or_null(json_object_get(r, "annotations"));
        json_t *size = json_object_get(r, "size");
        struct entry *e = entry_new(u, orig);
        struct mcp_resource_def d = {.uri = uri,
                                     .name = name != NULL ? name : orig,
                                     .title = json_string_value(json_object_get(r, "title")),
                                     .description =
                                         json_string_value(json_object_get(r, "description")),
                                     .mime_type = json_string_value(json_object_get(r, "mimeType")),
                                     .annotations = ann,
                                     .size = json_is_integer(size) ? json_integer_value(size) : -1,
                                     .handler = resource_fwd,
                                     .udata = e,
                                     .release = entry_release};
        int rc = mcp_resource_add(u->gw->srv, &d);
        if (rc == 0) {
            json_array_append_new(names, json_string(uri));
        } else {
            entry_release(e);
            unclaim(u, uri);
            log_warn("[%s] resource %s not offered: %s", u->cfg.name, uri, mcpgate_strerror(rc));
        }
        free(ann);
    }
    json_t *tnames = json_object_get(u->res_reg, "templates");
    json_array_foreach (u->tpl_offer, i, r) {
        const char *orig = json_string_value(json_object_get(r, "uriTemplate"));
        if (orig == NULL || *orig == '\0')
            continue;
        const char *tpl = json_string_value(json_object_get(u->ns_tpl, orig));
        bool ns = tpl != NULL;
        if (tpl == NULL)
            tpl = orig;
        if (!claim(u, tpl))
            continue; /* listed twice by the upstream */
        struct entry *e = entry_new(u, orig);
        e->tpl = true;
        e->ns = ns;
        const char *name = json_string_value(json_object_get(r, "name"));
        struct mcp_resource_template_def d = {
            .uri_template = tpl,
            .name = name != NULL ? name : orig,
            .title = json_string_value(json_object_get(r, "title")),
            .description = json_string_value(json_object_get(r, "description")),
            .mime_type = json_string_value(json_object_get(r, "mimeType")),
            .handler = resource_fwd,
            .udata = e,
            .release = entry_release};
        int rc = mcp_resource_template_add(u->gw->srv, &d);
        if (rc == 0) {
            json_array_append_new(tnames, json_string(tpl));
        } else {
            entry_release(e);
            unclaim(u, tpl);
            log_warn("[%s] resource template %s not offered: %s", u->cfg.name, tpl,
                     mcpgate_strerror(rc));
        }
    }
}

/* Decides the names of every live upstream's resources and templates and registers again
 * those of the upstreams whose offers or names changed (u's offers just did). Holds res_mu. */
static void sync_all(struct gateway *gw, struct up *dirty)
{
    pthread_mutex_lock(&gw->mu);
    size_t nups = 0;
    for (struct up *x = gw->ups; x != NULL; x = x->next)
        nups += !x->removed;
    struct up **ups = xcalloc(nups + 1, sizeof *ups);
    nups = 0;
    for (struct up *x = gw->ups; x != NULL; x = x->next)
        if (!x->removed)
            ups[nups++] = x;
    pthread_mutex_unlock(&gw->mu);

    json_t *offers = offers_of(ups, nups, false);
    json_t *res = gw_ns_plan(offers);
    json_decref(offers);
    offers = offers_of(ups, nups, true);
    json_t *tpl = gw_ns_plan(offers);
    json_decref(offers);
    json_t **want_res = xcalloc(nups + 1, sizeof *want_res);
    json_t **want_tpl = xcalloc(nups + 1, sizeof *want_tpl);
    bool *redo = xcalloc(nups + 1, sizeof *redo);
    for (size_t k = 0; k < nups; k++) {
        want_res[k] = json_incref(json_object_get(res, ups[k]->cfg.name));
        want_tpl[k] = json_incref(json_object_get(tpl, ups[k]->cfg.name));
        redo[k] = !json_equal(want_res[k], ups[k]->ns_res) ||
                  !json_equal(want_tpl[k], ups[k]->ns_tpl);
    }
    json_decref(res);
    json_decref(tpl);

    mcp_server_batch(gw->srv, true);
    /* everything that moves leaves first, so nothing it held is still taken when it comes back */
    if (dirty != NULL && dirty->removed)
        unregister(dirty);
    for (size_t k = 0; k < nups; k++)
        if (redo[k] || ups[k] == dirty)
            unregister(ups[k]);
    for (size_t k = 0; k < nups; k++) {
        if (!redo[k] && ups[k] != dirty)
            continue;
        struct up *u = ups[k];
        pthread_mutex_lock(&gw->mu);
        json_decref(u->ns_res);
        json_decref(u->ns_tpl);
        u->ns_res = want_res[k];
        u->ns_tpl = want_tpl[k];
        want_res[k] = want_tpl[k] = NULL;
        json_object_clear(u->plain_res);
        json_array_clear(u->plain_tpl);
        size_t i;
        json_t *item;
        json_array_foreach (u->res_offer, i, item) {
            const char *o = json_string_value(json_object_get(item, "uri"));
            if (o != NULL && json_object_get(u->ns_res, o) == NULL)
                json_object_set_new(u->plain_res, o, json_true());
        }
        json_array_foreach (u->tpl_offer, i, item) {
            json_t *o = json_object_get(item, "uriTemplate");
            if (json_is_string(o) && json_object_get(u->ns_tpl, json_string_value(o)) == NULL)
                json_array_append(u->plain_tpl, o);
        }
        atomic_store_explicit(&u->has_ns,
                              json_object_size(u->ns_res) + json_object_size(u->ns_tpl) > 0,
                              memory_order_release);
        pthread_mutex_unlock(&gw->mu);
        register_all(u);
        gw_watch_again(u, false); /* URIs clients watch may be its now */
        if (redo[k]) {
            log_info("[%s] %zu resources and %zu templates carry its name (offered elsewhere too)",
                     u->cfg.name, json_object_size(u->ns_res), json_object_size(u->ns_tpl));
            if (atomic_load(&u->ui_tools)) {
                /* a tool points at a UI resource whose name may just have changed */
                pthread_mutex_lock(&u->mu);
                u->retool = u->refresh_tools = true;
                pthread_mutex_unlock(&u->mu);
            }
        }
    }
    mcp_server_batch(gw->srv, false);
    for (size_t k = 0; k < nups; k++) {
        json_decref(want_res[k]);
        json_decref(want_tpl[k]);
    }
    free(want_res);
    free(want_tpl);
    free(redo);
    free(ups);
    pthread_mutex_lock(&gw->mu);
    pthread_cond_broadcast(&gw->cv); /* the reaper: tools to list again */
    pthread_mutex_unlock(&gw->mu);
}

void gw_resources_offer(struct up *u, json_t *resources, json_t *templates)
{
    struct gateway *gw = u->gw;
    pthread_mutex_lock(&gw->res_mu);
    bool same = (resources == NULL || json_equal(resources, u->res_offer)) &&
                (templates == NULL || json_equal(templates, u->tpl_offer));
    if (!same) {
        if (resources != NULL) {
            json_decref(u->res_offer);
            u->res_offer = json_incref(resources);
        }
        if (templates != NULL) {
            json_decref(u->tpl_offer);
            u->tpl_offer = json_incref(templates);
        }
        sync_all(gw, u);
    }
    pthread_mutex_unlock(&gw->res_mu);
}

void gw_resources_withdraw(struct up *u)
{
    struct gateway *gw = u->gw;
    pthread_mutex_lock(&gw->res_mu);
    json_decref(u->res_offer);
    json_decref(u->tpl_offer);
    u->res_offer = json_array();
    u->tpl_offer = json_array();
    sync_all(gw, u);
    pthread_mutex_unlock(&gw->res_mu);
}

/* ---- subscriptions ---- */

/* Which upstream serves the URI clients know as uri, and its own URI for it (*orig, to free).
 * Holds res_mu (the registrations stay put). */
static struct up *owner_of(struct gateway *gw, const char *uri, char **orig)
{
    pthread_mutex_lock(&gw->mu);
    struct up *ups = gw->ups;
    pthread_mutex_unlock(&gw->mu);
    for (struct up *u = ups; u != NULL; u = u->next) {
        if (u->removed)
            continue;
        size_t i;
        json_t *v;
        json_array_foreach (json_object_get(u->res_reg, "resources"), i, v) {
            if (strcmp(json_string_value(v), uri) != 0)
                continue;
            const char *o = uri, *k;
            json_t *x;
            json_object_foreach (u->ns_res, k, x)
                if (strcmp(json_string_value(x), uri) == 0)
                    o = k;
            *orig = xstrdup(o);
            return u;
        }
    }
    for (struct up *u = ups; u != NULL; u = u->next) {
        if (u->removed)
            continue;
        size_t i;
        json_t *v;
        json_array_foreach (json_object_get(u->res_reg, "templates"), i, v) {
            json_t *vars = uri_template_match(json_string_value(v), uri);
            if (vars == NULL)
                continue;
            json_decref(vars);
            const char *k;
            json_t *x;
            json_object_foreach (u->ns_tpl, k, x) {
                if (strcmp(json_string_value(x), json_string_value(v)) == 0) {
                    *orig = gw_ns_strip(u->cfg.name, k, uri);
                    return *orig != NULL ? u : NULL;
                }
            }
            *orig = xstrdup(uri);
            return u;
        }
    }
    return NULL;
}

char *gw_ref_owner(struct gateway *gw, const char *uri, char **upname)
{
    char *orig = NULL;
    struct up *found = NULL;
    pthread_mutex_lock(&gw->res_mu);
    pthread_mutex_lock(&gw->mu);
    struct up *ups = gw->ups;
    pthread_mutex_unlock(&gw->mu);
    for (struct up *u = ups; u != NULL && found == NULL; u = u->next) {
        size_t i;
        json_t *v;
        json_array_foreach (json_object_get(u->res_reg, "templates"), i, v) {
            if (u->removed || strcmp(json_string_value(v), uri) != 0)
                continue;
            const char *o = uri, *k;
            json_t *x;
            json_object_foreach (u->ns_tpl, k, x)
                if (strcmp(json_string_value(x), uri) == 0)
                    o = k;
            orig = xstrdup(o);
            found = u;
            break;
        }
    }
    if (found == NULL)
        found = owner_of(gw, uri, &orig);
    if (found != NULL)
        *upname = xstrdup(found->cfg.name);
    pthread_mutex_unlock(&gw->res_mu);
    return found != NULL ? orig : NULL;
}

void gw_watch(void *arg, const char *uri, bool watching)
{
    struct gateway *gw = arg;
    pthread_mutex_lock(&gw->mu);
    json_object_set_new(gw->watch_want, uri, json_boolean(watching)); /* the latest wins */
    pthread_cond_broadcast(&gw->cv);
    pthread_mutex_unlock(&gw->mu);
}

void gw_watch_again(struct up *u, bool restarted)
{
    struct gateway *gw = u->gw;
    pthread_mutex_lock(&gw->mu);
    json_t *had = json_object_get(gw->watch_again, u->cfg.name);
    json_object_set_new(gw->watch_again, u->cfg.name,
                        json_boolean(restarted || json_is_true(had)));
    pthread_cond_broadcast(&gw->cv);
    pthread_mutex_unlock(&gw->mu);
}

/* Sends resources/(un)subscribe for the upstream's own URI; false when it could not. */
static bool watch_send(struct up *u, const char *orig, bool on)
{
    struct gw_conn *c = slot_ready(u, "shared");
    if (c == NULL)
        return false; /* (re)starting: it is subscribed again once it runs */
    json_t *resp = NULL;
    char why[200] = "";
    const char *method = on ? "resources/subscribe" : "resources/unsubscribe";
    int r = gw_conn_call(c, method, json_pack("{s:s}", "uri", orig), 10000, NULL, &resp, why,
                         sizeof why);
    gw_conn_release(c);
    json_t *err = json_object_get(resp, "error");
    if (r != 0 || err != NULL)
        log_warn("[%s] %s %s: %s", u->cfg.name, method, orig,
                 r != 0 ? why
                        : json_string_value(json_object_get(err, "message")) ?: "an error");
    else
        log_info("[%s] %s %s", u->cfg.name, on ? "subscribed to" : "unsubscribed from", orig);
    json_decref(resp);
    return r == 0 && err == NULL;
}

/* Does u take subscriptions from the gateway? Shared children and HTTP servers that declare
 * resources.subscribe (a per-session child's updates would be its session's alone). */
static bool takes_subscriptions(struct up *u)
{
    if (u->cfg.process != GW_SHARED && u->cfg.url == NULL)
        return false;
    struct gw_conn *c = slot_ready(u, "shared");
    if (c == NULL)
        return true; /* not running: assume so, and try when it does */
    json_t *caps = json_object_get(json_object_get(gw_conn_info(c), "capabilities"), "resources");
    bool yes = json_is_true(json_object_get(caps, "subscribe"));
    gw_conn_release(c);
    return yes;
}

/* A client-known URI gets its first subscriber: the upstream behind it is subscribed to its
 * own URI (once for all the names that lead there). Watcher thread only. */
static void watch_on(struct gateway *gw, const char *uri)
{
    if (json_object_get(gw->sub_map, uri) != NULL)
        return;
    char *orig = NULL;
    pthread_mutex_lock(&gw->res_mu);
    struct up *u = owner_of(gw, uri, &orig);
    pthread_mutex_unlock(&gw->res_mu);
    if (u == NULL || !takes_subscriptions(u)) {
        if (u == NULL)
            log_debug("%s: no server offers it (yet)", uri);
        free(orig);
        return;
    }
    char *key = xasprintf("%s\n%s", u->cfg.name, orig);
    json_int_t n = json_integer_value(json_object_get(gw->sub_count, key));
    if (n == 0)
        (void)watch_send(u, orig, true);
    json_object_set_new(gw->sub_count, key, json_integer(n + 1));
    json_object_set_new(gw->sub_map, uri, json_string(key));
    free(key);
    free(orig);
}

/* Its last subscriber left: the upstream it was passed to is unsubscribed when no other name
 * leads there, whatever the URI's owner is now. Watcher thread only. */
static void watch_off(struct gateway *gw, const char *uri)
{
    const char *k = json_string_value(json_object_get(gw->sub_map, uri));
    if (k == NULL)
        return;
    char *key = xstrdup(k);
    json_object_del(gw->sub_map, uri);
    json_int_t n = json_integer_value(json_object_get(gw->sub_count, key)) - 1;
    if (n > 0) {
        json_object_set_new(gw->sub_count, key, json_integer(n));
    } else {
        json_object_del(gw->sub_count, key);
        char *nl = strchr(key, '\n');
        *nl = '\0';
        pthread_mutex_lock(&gw->mu);
        struct up *u = up_named(gw, key, strlen(key));
        pthread_mutex_unlock(&gw->mu);
        if (u != NULL)
            (void)watch_send(u, nl + 1, false);
    }
    free(key);
}

/* An upstream started, restarted or registered its resources again: URIs watched but not
 * passed on yet may be its; after a restart, its subscriptions are sent again. */
static void watch_again(struct gateway *gw, const char *name, bool restarted)
{
    json_t *watched = mcp_server_watched(gw->srv);
    pthread_mutex_lock(&gw->mu);
    struct up *u = up_named(gw, name, strlen(name));
    pthread_mutex_unlock(&gw->mu);
    const char *uri;
    json_t *v;
    size_t i;
    if (u != NULL && restarted) {
        size_t n = strlen(name);
        json_object_foreach (gw->sub_count, uri, v)
            if (strncmp(uri, name, n) == 0 && uri[n] == '\n')
                (void)watch_send(u, uri + n + 1, true);
    }
    json_array_foreach (watched, i, v)
        watch_on(gw, json_string_value(v)); /* passes over those already passed on */
    json_decref(watched);
}

void *gw_watcher_main(void *arg)
{
    struct gateway *gw = arg;
    pthread_mutex_lock(&gw->mu);
    while (!gw->stop) {
        if (json_object_size(gw->watch_want) == 0 && json_object_size(gw->watch_again) == 0) {
            cond_wait_ms(&gw->cv, &gw->mu, REAPER_TICK_MS);
            continue;
        }
        json_t *want = gw->watch_want, *again = gw->watch_again;
        gw->watch_want = json_object();
        gw->watch_again = json_object();
        pthread_mutex_unlock(&gw->mu);
        const char *key;
        json_t *v;
        json_object_foreach (want, key, v) {
            if (json_is_true(v))
                watch_on(gw, key);
            else
                watch_off(gw, key);
        }
        json_object_foreach (again, key, v)
            watch_again(gw, key, json_is_true(v));
        json_decref(want);
        json_decref(again);
        pthread_mutex_lock(&gw->mu);
    }
    pthread_mutex_unlock(&gw->mu);
    return NULL;
}
