/* The registry: tools, resources, resource templates, prompts, completion; and the list of live
 * sessions that change notifications go to. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "mcp/mcp_int.h"

const char *mcpgate_version(void)
{
    return MCPGATE_VERSION;
}

const char *mcpgate_strerror(int code)
{
    return err_str(code);
}

struct mcp_server *mcp_server_new(const char *name, const char *version)
{
    struct mcp_server *srv = xcalloc(1, sizeof(*srv));
    srv->name = xstrdup(name != NULL ? name : MCP_SERVER_NAME_DEFAULT);
    srv->version = xstrdup(version != NULL ? version : MCPGATE_VERSION);
    srv->page_size = 100;
    srv->max_message = 4u << 20;
    srv->max_depth = 64;
    srv->list_ttl_ms = 60000;
    if (crypto_random(srv->state_key, sizeof(srv->state_key)) != 0)
        abort();
    pthread_rwlock_init(&srv->reg_lock, NULL);
    pthread_mutex_init(&srv->sessions_mu, NULL);
    pthread_mutex_init(&srv->watch_mu, NULL);
    srv->watched = json_object();
    return srv;
}

static void tool_free(struct tool *t);
static void resource_free(struct resource *r);
static void rtemplate_free(struct rtemplate *t);
static void prompt_free(struct prompt *p);

void mcp_server_free(struct mcp_server *srv)
{
    if (srv == NULL)
        return;
    pool_free(srv->pool);
    for (size_t i = 0; i < srv->tools.n; i++)
        tool_unref(srv->tools.items[i]);
    for (size_t i = 0; i < srv->resources.n; i++)
        resource_unref(srv->resources.items[i]);
    for (size_t i = 0; i < srv->templates.n; i++)
        rtemplate_unref(srv->templates.items[i]);
    for (size_t i = 0; i < srv->prompts.n; i++)
        prompt_unref(srv->prompts.items[i]);
    free(srv->tools.items);
    free(srv->resources.items);
    free(srv->templates.items);
    free(srv->prompts.items);
    json_decref(srv->info);
    crypto_wipe(srv->state_key, sizeof(srv->state_key));
    pthread_rwlock_destroy(&srv->reg_lock);
    pthread_mutex_destroy(&srv->sessions_mu);
    pthread_mutex_destroy(&srv->watch_mu);
    json_decref(srv->watched);
    free(srv->name);
    free(srv->version);
    free(srv->title);
    free(srv->instructions);
    free(srv);
}

void mcp_server_set_title(struct mcp_server *srv, const char *title)
{
    free(srv->title);
    srv->title = title ? xstrdup(title) : NULL;
    json_decref(srv->info); /* rebuilt on next use */
    srv->info = NULL;
}

void mcp_server_set_instructions(struct mcp_server *srv, const char *instructions)
{
    free(srv->instructions);
    srv->instructions = instructions ? xstrdup(instructions) : NULL;
}

void mcp_server_set_page_size(struct mcp_server *srv, unsigned n)
{
    srv->page_size = n ? n : 1;
}

void mcp_server_set_max_message(struct mcp_server *srv, size_t bytes)
{
    srv->max_message = bytes ? bytes : 1;
}

void mcp_server_set_max_depth(struct mcp_server *srv, unsigned depth)
{
    srv->max_depth = depth ? depth : 1;
}

void mcp_server_set_workers(struct mcp_server *srv, unsigned n)
{
    srv->workers = n;
}

void mcp_server_set_list_ttl(struct mcp_server *srv, long ttl_ms)
{
    srv->list_ttl_ms = ttl_ms < 0 ? 0 : ttl_ms;
}

int mcp_server_set_state_key(struct mcp_server *srv, const unsigned char *key, size_t len)
{
    if (len < 32)
        return ERR_INVALID;
    /* Longer keys are hashed down to the HMAC block-friendly 32 bytes. */
    crypto_sha256(key, len, srv->state_key);
    return 0;
}

struct pool *server_pool(struct mcp_server *srv)
{
    pthread_mutex_lock(&srv->sessions_mu);
    if (srv->pool == NULL)
        srv->pool = pool_new(srv->workers);
    struct pool *p = srv->pool;
    pthread_mutex_unlock(&srv->sessions_mu);
    return p;
}

/* ---- reference counting ---- */

void reg_ref(atomic_int *refs)
{
    atomic_fetch_add(refs, 1);
}

#define UNREF(type, fn)                                                                            \
    void type##_unref(struct type *x)                                                              \
    {                                                                                              \
        if (x != NULL && atomic_fetch_sub(&x->refs, 1) == 1)                                       \
            fn(x);                                                                                 \
    }
UNREF(tool, tool_free)
UNREF(resource, resource_free)
UNREF(rtemplate, rtemplate_free)
UNREF(prompt, prompt_free)

static void tool_free(struct tool *t)
{
    if (t->release != NULL)
        t->release(t->udata);
    free(t->name);
    json_decref(t->listing);
    jschema_free(t->in_schema);
    jschema_free(t->out_schema);
    free(t);
}

static void resource_free(struct resource *r)
{
    if (r->release != NULL)
        r->release(r->udata);
    free(r->uri);
    json_decref(r->listing);
    free(r);
}

static void rtemplate_free(struct rtemplate *t)
{
    if (t->release != NULL)
        t->release(t->udata);
    free(t->uri_template);
    json_decref(t->listing);
    free(t);
}

static void prompt_free(struct prompt *p)
{
    if (p->release != NULL)
        p->release(p->udata);
    free(p->name);
    json_decref(p->listing);
    free(p);
}

/* ---- helpers ---- */

static void reglist_push(struct reglist *l, void *item)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->items = xrealloc(l->items, l->cap * sizeof(*l->items));
    }
    l->items[l->n++] = item;
}

static void reglist_remove_at(struct reglist *l, size_t i)
{
    memmove(&l->items[i], &l->items[i + 1], (l->n - i - 1) * sizeof(*l->items));
    l->n--;
}

/* Parses optional JSON text into *out (NULL text: NULL). */
static int parse_opt(const char *text, const char *what, const char *owner, json_t **out)
{
    *out = NULL;
    if (text == NULL)
        return 0;
    json_error_t e;
    *out = json_loads(text, 0, &e);
    if (*out == NULL) {
        log_error("%s of '%s' is not valid JSON: %s (line %d)", what, owner, e.text, e.line);
        return ERR_INVALID;
    }
    return 0;
}

static void set_str(json_t *o, const char *key, const char *v)
{
    if (v != NULL)
        json_object_set_new(o, key, json_string(v));
}

static bool tool_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n < 1 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

static int compile_schema(json_t *schema, const char *what, const char *owner,
                          struct jschema **out)
{
    char *why = NULL;
    int r = jschema_new(schema, out, &why);
    if (r != 0) {
        log_error("%s of tool '%s' is not a usable JSON Schema: %s", what, owner,
                  why ? why : err_str(r));
        free(why);
        return ERR_INVALID;
    }
    return 0;
}

/* ---- tools ---- */

int mcp_tool_add(struct mcp_server *srv, const struct mcp_tool_def *def)
{
    int r = ERR_INVALID;
    json_t *in = NULL, *outs = NULL, *ann = NULL, *meta = NULL, *icons = NULL;
    struct tool *t = NULL;

    if (def == NULL || def->handler == NULL || !tool_name_ok(def->name)) {
        log_error("tool name '%s' is invalid (1-128 chars of A-Z a-z 0-9 _ - .) or has no handler",
                  def && def->name ? def->name : "(null)");
        goto out;
    }
    if ((r = parse_opt(def->input_schema, "inputSchema", def->name, &in)) != 0 ||
        (r = parse_opt(def->output_schema, "outputSchema", def->name, &outs)) != 0 ||
        (r = parse_opt(def->annotations, "annotations", def->name, &ann)) != 0 ||
        (r = parse_opt(def->meta, "_meta", def->name, &meta)) != 0 ||
        (r = parse_opt(def->icons, "icons", def->name, &icons)) != 0)
        goto out;
    if (in == NULL)
        in = json_pack("{s:s}", "type", "object");
    r = ERR_INVALID;
    if (!json_is_object(in) || (outs != NULL && !json_is_object(outs))) {
        log_error("tool '%s': inputSchema and outputSchema must be JSON objects", def->name);
        goto out;
    }
    t = xcalloc(1, sizeof(*t));
    atomic_init(&t->refs, 1);
    t->name = xstrdup(def->name);
    t->fn = def->handler;
    t->udata = def->udata;
    t->flags = def->flags;
    if ((r = compile_schema(in, "inputSchema", def->name, &t->in_schema)) != 0)
        goto out;
    if (outs != NULL && (r = compile_schema(outs, "outputSchema", def->name, &t->out_schema)) != 0)
        goto out;
    const char *pk;
    json_t *pv;
    json_object_foreach(json_object_get(in, "properties"), pk, pv) {
        if (json_is_string(json_object_get(pv, "x-mcp-header")))
            t->param_headers = true;
    }
    t->listing = json_pack("{s:s}", "name", def->name);
    set_str(t->listing, "title", def->title);
    set_str(t->listing, "description", def->description);
    json_object_set(t->listing, "inputSchema", in);
    if (outs != NULL)
        json_object_set(t->listing, "outputSchema", outs);
    if (ann != NULL)
        json_object_set(t->listing, "annotations", ann);
    if (icons != NULL)
        json_object_set(t->listing, "icons", icons);
    if (meta != NULL)
        json_object_set(t->listing, "_meta", meta);

    pthread_rwlock_wrlock(&srv->reg_lock);
    for (size_t i = 0; i < srv->tools.n; i++) {
        if (strcmp(((struct tool *)srv->tools.items[i])->name, def->name) == 0) {
            pthread_rwlock_unlock(&srv->reg_lock);
            log_error("tool '%s' is already registered", def->name);
            r = ERR_EXISTS;
            goto out;
        }
    }
    t->release = def->release;
    reglist_push(&srv->tools, t);
    t = NULL;
    pthread_rwlock_unlock(&srv->reg_lock);
    server_broadcast(srv, "notifications/tools/list_changed", "toolsListChanged", NULL);
    r = 0;
out:
    if (t != NULL)
        tool_free(t);
    json_decref(in);
    json_decref(outs);
    json_decref(ann);
    json_decref(meta);
    json_decref(icons);
    return r;
}

/* Removes the entry whose key (name or uri, read by keyof) equals key from l. */
static void *reglist_take(struct reglist *l, const char *key, const char *(*keyof)(void *))
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(keyof(l->items[i]), key) == 0) {
            void *x = l->items[i];
            reglist_remove_at(l, i);
            return x;
        }
    }
    return NULL;
}

static const char *tool_key(void *x) { return ((struct tool *)x)->name; }
static const char *resource_key(void *x) { return ((struct resource *)x)->uri; }
static const char *prompt_key(void *x) { return ((struct prompt *)x)->name; }
static const char *rtemplate_key(void *x) { return ((struct rtemplate *)x)->uri_template; }

int mcp_tool_remove(struct mcp_server *srv, const char *name)
{
    pthread_rwlock_wrlock(&srv->reg_lock);
    struct tool *t = reglist_take(&srv->tools, name, tool_key);
    pthread_rwlock_unlock(&srv->reg_lock);
    if (t == NULL)
        return ERR_NOTFOUND;
    tool_unref(t);
    server_broadcast(srv, "notifications/tools/list_changed", "toolsListChanged", NULL);
    return 0;
}

struct tool *server_tool_get(struct mcp_server *srv, const char *name)
{
    struct tool *found = NULL;
    pthread_rwlock_rdlock(&srv->reg_lock);
    for (size_t i = 0; i < srv->tools.n; i++) {
        struct tool *t = srv->tools.items[i];
        if (strcmp(t->name, name) == 0) {
            reg_ref(&t->refs);
            found = t;
            break;
        }
    }
    pthread_rwlock_unlock(&srv->reg_lock);
    return found;
}

/* ---- resources ---- */

int mcp_resource_add(struct mcp_server *srv, const struct mcp_resource_def *def)
{
    json_t *ann = NULL;
    if (def == NULL || def->uri == NULL || def->name == NULL || def->handler == NULL ||
        parse_opt(def->annotations, "annotations", def ? def->uri : "", &ann) != 0) {
        log_error("resource needs a uri, a name and a handler");
        return ERR_INVALID;
    }
    struct resource *r = xcalloc(1, sizeof(*r));
    atomic_init(&r->refs, 1);
    r->uri = xstrdup(def->uri);
    r->fn = def->handler;
    r->udata = def->udata;
    r->listing = json_pack("{s:s, s:s}", "uri", def->uri, "name", def->name);
    set_str(r->listing, "title", def->title);
    set_str(r->listing, "description", def->description);
    set_str(r->listing, "mimeType", def->mime_type);
    if (ann != NULL)
        json_object_set_new(r->listing, "annotations", ann);
    if (def->size >= 0)
        json_object_set_new(r->listing, "size", json_integer(def->size));

    pthread_rwlock_wrlock(&srv->reg_lock);
    for (size_t i = 0; i < srv->resources.n; i++) {
        if (strcmp(((struct resource *)srv->resources.items[i])->uri, def->uri) == 0) {
            pthread_rwlock_unlock(&srv->reg_lock);
            resource_free(r);
            return ERR_EXISTS;
        }
    }
    r->release = def->release;
    reglist_push(&srv->resources, r);
    pthread_rwlock_unlock(&srv->reg_lock);
    server_broadcast(srv, "notifications/resources/list_changed", "resourcesListChanged", NULL);
    return 0;
}

int mcp_resource_remove(struct mcp_server *srv, const char *uri)
{
    pthread_rwlock_wrlock(&srv->reg_lock);
    struct resource *r = reglist_take(&srv->resources, uri, resource_key);
    pthread_rwlock_unlock(&srv->reg_lock);
    if (r == NULL)
        return ERR_NOTFOUND;
    resource_unref(r);
    server_broadcast(srv, "notifications/resources/list_changed", "resourcesListChanged", NULL);
    return 0;
}

int mcp_resource_template_add(struct mcp_server *srv, const struct mcp_resource_template_def *d)
{
    if (d == NULL || d->uri_template == NULL || d->name == NULL || d->handler == NULL) {
        log_error("resource template needs a uriTemplate, a name and a handler");
        return ERR_INVALID;
    }
    struct rtemplate *t = xcalloc(1, sizeof(*t));
    atomic_init(&t->refs, 1);
    t->uri_template = xstrdup(d->uri_template);
    t->fn = d->handler;
    t->udata = d->udata;
    t->listing = json_pack("{s:s, s:s}", "uriTemplate", d->uri_template, "name", d->name);
    set_str(t->listing, "title", d->title);
    set_str(t->listing, "description", d->description);
    set_str(t->listing, "mimeType", d->mime_type);
    pthread_rwlock_wrlock(&srv->reg_lock);
    for (size_t i = 0; i < srv->templates.n; i++) {
        if (strcmp(((struct rtemplate *)srv->templates.items[i])->uri_template, d->uri_template) ==
            0) {
            pthread_rwlock_unlock(&srv->reg_lock);
            rtemplate_free(t);
            return ERR_EXISTS;
        }
    }
    t->release = d->release;
    reglist_push(&srv->templates, t);
    pthread_rwlock_unlock(&srv->reg_lock);
    server_broadcast(srv, "notifications/resources/list_changed", "resourcesListChanged", NULL);
    return 0;
}

int mcp_resource_template_remove(struct mcp_server *srv, const char *uri_template)
{
    pthread_rwlock_wrlock(&srv->reg_lock);
    struct rtemplate *t = reglist_take(&srv->templates, uri_template, rtemplate_key);
    pthread_rwlock_unlock(&srv->reg_lock);
    if (t == NULL)
        return ERR_NOTFOUND;
    rtemplate_unref(t);
    server_broadcast(srv, "notifications/resources/list_changed", "resourcesListChanged", NULL);
    return 0;
}

static void broadcast_to(struct mcp_server *srv, const char *method, const char *filter_key,
                         const char *uri, unsigned long long only);

void mcp_resource_updated(struct mcp_server *srv, const char *uri)
{
    server_broadcast(srv, "notifications/resources/updated", "resourceSubscriptions", uri);
}

void mcp_resource_updated_in(struct mcp_server *srv, unsigned long long session, const char *uri)
{
    broadcast_to(srv, "notifications/resources/updated", "resourceSubscriptions", uri, session);
}

/* RFC 6570 level 1 matching: literal text must match exactly; each {var} takes one or more
 * characters up to the next literal character (or '/' when the template ends with the var,
 * unless it is {+var}, which may span '/'). */
json_t *uri_template_match(const char *tpl, const char *uri)
{
    json_t *vars = json_object();
    const char *t = tpl, *u = uri;
    while (*t != '\0') {
        if (*t != '{') {
            if (*t != *u)
                goto fail;
            t++;
            u++;
            continue;
        }
        const char *close = strchr(t, '}');
        if (close == NULL)
            goto fail;
        bool reserved = t[1] == '+';
        const char *name = t + 1 + (reserved ? 1 : 0);
        size_t namelen = (size_t)(close - name);
        t = close + 1;
        char stop = *t; /* next literal char, or NUL */
        const char *start = u;
        while (*u != '\0' && *u != stop && (reserved || *u != '/' || stop == '/'))
            u++;
        if (u == start || namelen == 0 || namelen > 64)
            goto fail;
        char key[65];
        memcpy(key, name, namelen);
        key[namelen] = '\0';
        json_object_set_new(vars, key, json_stringn(start, (size_t)(u - start)));
    }
    if (*u != '\0')
        goto fail;
    return vars;
fail:
    json_decref(vars);
    return NULL;
}

int server_resource_find(struct mcp_server *srv, const char *uri, struct resource **res,
                         struct rtemplate **tpl, json_t **vars)
{
    *res = NULL;
    *tpl = NULL;
    *vars = NULL;
    pthread_rwlock_rdlock(&srv->reg_lock);
    for (size_t i = 0; i < srv->resources.n; i++) {
        struct resource *r = srv->resources.items[i];
        if (strcmp(r->uri, uri) == 0) {
            reg_ref(&r->refs);
            *res = r;
            pthread_rwlock_unlock(&srv->reg_lock);
            return 0;
        }
    }
    for (size_t i = 0; i < srv->templates.n; i++) {
        struct rtemplate *t = srv->templates.items[i];
        json_t *v = uri_template_match(t->uri_template, uri);
        if (v != NULL) {
            reg_ref(&t->refs);
            *tpl = t;
            *vars = v;
            pthread_rwlock_unlock(&srv->reg_lock);
            return 0;
        }
    }
    pthread_rwlock_unlock(&srv->reg_lock);
    return ERR_NOTFOUND;
}

/* ---- prompts ---- */

int mcp_prompt_add(struct mcp_server *srv, const struct mcp_prompt_def *def)
{
    json_t *args = NULL;
    if (def == NULL || def->name == NULL || def->handler == NULL ||
        parse_opt(def->arguments, "arguments", def ? def->name : "", &args) != 0 ||
        (args != NULL && !json_is_array(args))) {
        log_error("prompt needs a name, a handler and arguments as a JSON array");
        json_decref(args);
        return ERR_INVALID;
    }
    struct prompt *p = xcalloc(1, sizeof(*p));
    atomic_init(&p->refs, 1);
    p->name = xstrdup(def->name);
    p->fn = def->handler;
    p->udata = def->udata;
    p->listing = json_pack("{s:s}", "name", def->name);
    set_str(p->listing, "title", def->title);
    set_str(p->listing, "description", def->description);
    if (args != NULL)
        json_object_set_new(p->listing, "arguments", args);
    pthread_rwlock_wrlock(&srv->reg_lock);
    for (size_t i = 0; i < srv->prompts.n; i++) {
        if (strcmp(((struct prompt *)srv->prompts.items[i])->name, def->name) == 0) {
            pthread_rwlock_unlock(&srv->reg_lock);
            prompt_free(p);
            return ERR_EXISTS;
        }
    }
    p->release = def->release;
    reglist_push(&srv->prompts, p);
    pthread_rwlock_unlock(&srv->reg_lock);
    server_broadcast(srv, "notifications/prompts/list_changed", "promptsListChanged", NULL);
    return 0;
}

int mcp_prompt_remove(struct mcp_server *srv, const char *name)
{
    pthread_rwlock_wrlock(&srv->reg_lock);
    struct prompt *p = reglist_take(&srv->prompts, name, prompt_key);
    pthread_rwlock_unlock(&srv->reg_lock);
    if (p == NULL)
        return ERR_NOTFOUND;
    prompt_unref(p);
    server_broadcast(srv, "notifications/prompts/list_changed", "promptsListChanged", NULL);
    return 0;
}

struct prompt *server_prompt_get(struct mcp_server *srv, const char *name)
{
    struct prompt *found = NULL;
    pthread_rwlock_rdlock(&srv->reg_lock);
    for (size_t i = 0; i < srv->prompts.n; i++) {
        struct prompt *p = srv->prompts.items[i];
        if (strcmp(p->name, name) == 0) {
            reg_ref(&p->refs);
            found = p;
            break;
        }
    }
    pthread_rwlock_unlock(&srv->reg_lock);
    return found;
}

void mcp_server_set_access(struct mcp_server *srv, mcp_access_fn fn, void *arg)
{
    srv->access = fn;
    srv->access_arg = arg;
}

void mcp_server_set_watch(struct mcp_server *srv, mcp_watch_fn fn, void *arg)
{
    pthread_mutex_lock(&srv->watch_mu);
    srv->watch = fn;
    srv->watch_arg = arg;
    pthread_mutex_unlock(&srv->watch_mu);
}

json_t *mcp_server_watched(struct mcp_server *srv)
{
    json_t *out = json_array();
    pthread_mutex_lock(&srv->watch_mu);
    const char *uri;
    json_t *v;
    json_object_foreach (srv->watched, uri, v)
        json_array_append_new(out, json_string(uri));
    pthread_mutex_unlock(&srv->watch_mu);
    return out;
}

void server_watch(struct mcp_server *srv, const char *uri, int delta)
{
    pthread_mutex_lock(&srv->watch_mu);
    json_t *had = json_object_get(srv->watched, uri);
    if (delta < 0 && had == NULL) { /* never counted in: nothing to count out */
        pthread_mutex_unlock(&srv->watch_mu);
        return;
    }
    json_int_t n = json_integer_value(had) + delta;
    if (n > 0)
        json_object_set_new(srv->watched, uri, json_integer(n));
    else
        json_object_del(srv->watched, uri);
    if (srv->watch != NULL && ((delta > 0 && n == delta) || (delta < 0 && n <= 0)))
        srv->watch(srv->watch_arg, uri, delta > 0);
    pthread_mutex_unlock(&srv->watch_mu);
}

void mcp_server_set_session_end(struct mcp_server *srv, mcp_session_end_fn fn, void *arg)
{
    srv->session_end = fn;
    srv->session_end_arg = arg;
}

bool server_access(struct mcp_server *srv, const struct mcp_identity *who, const char *kind,
                   const char *name)
{
    return srv->access == NULL || srv->access(srv->access_arg, who, kind, name);
}

void mcp_server_set_call_hook(struct mcp_server *srv, mcp_call_hook_fn fn, void *arg)
{
    srv->call_hook = fn;
    srv->call_hook_arg = arg;
}

void mcp_completion_set(struct mcp_server *srv, mcp_complete_fn fn, void *udata)
{
    srv->complete = fn;
    srv->complete_udata = udata;
}

mcp_complete_fn mcp_completion_get(struct mcp_server *srv, void **udata)
{
    *udata = srv->complete_udata;
    return srv->complete;
}

/* ---- what the server says about itself ---- */

json_t *server_capabilities(struct mcp_server *srv)
{
    /* Tools, resources and prompts are always announced (with listChanged): a server that omits
     * capabilities.tools never gets tools/list from Claude (seed 002), and registrations may
     * arrive at any time. */
    json_t *caps = json_pack("{s:{s:b}, s:{s:b, s:b}, s:{s:b}, s:{}}", "tools", "listChanged", 1,
                             "resources", "subscribe", 1, "listChanged", 1, "prompts",
                             "listChanged", 1, "logging");
    if (srv->complete != NULL)
        json_object_set_new(caps, "completions", json_object());
    return caps;
}

json_t *server_info(struct mcp_server *srv)
{
    /* Sent with every 2026-07-28 result: built once, shared (read-only) by reference. */
    pthread_mutex_lock(&srv->sessions_mu);
    if (srv->info == NULL) {
        srv->info = json_pack("{s:s, s:s}", "name", srv->name, "version", srv->version);
        set_str(srv->info, "title", srv->title);
    }
    json_t *info = json_incref(srv->info);
    pthread_mutex_unlock(&srv->sessions_mu);
    return info;
}

/* ---- sessions and notifications ---- */

void server_session_link(struct mcp_server *srv, struct mcp_session *s)
{
    pthread_mutex_lock(&srv->sessions_mu);
    s->prev = NULL;
    s->next = srv->sessions;
    if (srv->sessions != NULL)
        srv->sessions->prev = s;
    srv->sessions = s;
    pthread_mutex_unlock(&srv->sessions_mu);
}

void server_session_unlink(struct mcp_server *srv, struct mcp_session *s)
{
    pthread_mutex_lock(&srv->sessions_mu);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else if (srv->sessions == s)
        srv->sessions = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    pthread_mutex_unlock(&srv->sessions_mu);
}

/* Does a listen's filter ask for this notification? */
static bool listen_wants(json_t *filter, const char *filter_key, const char *uri)
{
    json_t *v = json_object_get(filter, filter_key);
    if (uri == NULL)
        return json_is_true(v);
    size_t i;
    json_t *u;
    json_array_foreach(v, i, u) {
        if (json_is_string(u) && strcmp(json_string_value(u), uri) == 0)
            return true;
    }
    return false;
}

struct listen_target {
    json_t *id; /* +1 ref */
    void *stream;
};

/* A batch of registry changes made by this thread: list_changed goes out once, at the end. */
static __thread int batch_depth;
static __thread unsigned batch_dirty; /* 1 tools, 2 prompts, 4 resources */

void mcp_server_batch(struct mcp_server *srv, bool begin)
{
    if (begin) {
        batch_depth++;
        return;
    }
    if (batch_depth == 0 || --batch_depth > 0)
        return;
    unsigned dirty = batch_dirty;
    batch_dirty = 0;
    if (dirty & 1)
        mcp_server_notify_list_changed(srv, "tools");
    if (dirty & 2)
        mcp_server_notify_list_changed(srv, "prompts");
    if (dirty & 4)
        mcp_server_notify_list_changed(srv, "resources");
}

void server_broadcast(struct mcp_server *srv, const char *method, const char *filter_key,
                      const char *uri)
{
    if (batch_depth > 0 && uri == NULL) {
        batch_dirty |= strstr(method, "/tools/") ? 1u : strstr(method, "/prompts/") ? 2u : 4u;
        return;
    }
    broadcast_to(srv, method, filter_key, uri, 0);
}

/* To every session (only == 0) or to the one whose key is only. */
static void broadcast_to(struct mcp_server *srv, const char *method, const char *filter_key,
                         const char *uri, unsigned long long only)
{
    pthread_mutex_lock(&srv->sessions_mu);
    for (struct mcp_session *s = srv->sessions; s != NULL; s = s->next) {
        if (only != 0 && s->key != only)
            continue;
        struct listen_target *targets = NULL;
        size_t ntargets = 0, cap = 0;
        pthread_mutex_lock(&s->mu);
        bool legacy = s->state != SESSION_NEW && !s->closed &&
                      (uri == NULL || json_object_get(s->subscriptions, uri) != NULL);
        for (struct inflight *f = s->inflight; f != NULL; f = f->next) {
            if (!f->is_listen || f->cancelled || !listen_wants(f->listen_filter, filter_key, uri))
                continue;
            if (ntargets == cap) {
                cap = cap ? cap * 2 : 4;
                targets = xrealloc(targets, cap * sizeof(*targets));
            }
            targets[ntargets].id = json_incref(f->id);
            targets[ntargets++].stream = f->stream;
        }
        pthread_mutex_unlock(&s->mu);

        if (legacy) {
            json_t *params = uri ? json_pack("{s:s}", "uri", uri) : NULL;
            session_send(s, NULL, jsonrpc_notification(method, params), false);
        }
        for (size_t i = 0; i < ntargets; i++) {
            json_t *p = uri ? json_pack("{s:s}", "uri", uri) : json_object();
            json_object_set_new(p, "_meta",
                                json_pack("{s:o}", "io.modelcontextprotocol/subscriptionId",
                                          targets[i].id));
            session_send(s, targets[i].stream, jsonrpc_notification(method, p), false);
        }
        free(targets);
    }
    pthread_mutex_unlock(&srv->sessions_mu);
}

void mcp_server_notify_list_changed(struct mcp_server *srv, const char *what)
{
    if (strcmp(what, "tools") == 0)
        server_broadcast(srv, "notifications/tools/list_changed", "toolsListChanged", NULL);
    else if (strcmp(what, "prompts") == 0)
        server_broadcast(srv, "notifications/prompts/list_changed", "promptsListChanged", NULL);
    else if (strcmp(what, "resources") == 0)
        server_broadcast(srv, "notifications/resources/list_changed", "resourcesListChanged",
                         NULL);
}

/* ---- result builders ---- */

json_t *mcp_content_text(const char *text)
{
    return json_pack("{s:s, s:s}", "type", "text", "text", text ? text : "");
}

json_t *mcp_content_image(const char *base64, const char *mime_type)
{
    return json_pack("{s:s, s:s, s:s}", "type", "image", "data", base64, "mimeType", mime_type);
}

json_t *mcp_content_audio(const char *base64, const char *mime_type)
{
    return json_pack("{s:s, s:s, s:s}", "type", "audio", "data", base64, "mimeType", mime_type);
}

json_t *mcp_result_text(const char *text)
{
    return json_pack("{s:[o]}", "content", mcp_content_text(text));
}

json_t *mcp_result_error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return json_pack("{s:[o], s:b}", "content", mcp_content_text(msg), "isError", 1);
}
