/* The MCP methods. Lists and lifecycle methods answer inline; anything that runs user code
 * (tools/call, resources/read, prompts/get, completion/complete) runs as a job on the pool and
 * answers from there. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "mcp/mcp_int.h"

/* session.c */
struct inflight *session_track(struct mcp_ctx *ctx);
void session_job_begin(struct mcp_session *s);
void session_job_end(struct mcp_session *s);
json_t *session_supported_versions(void);

#define CURSOR_MAX 64

static void fail(struct mcp_ctx *ctx, int code, json_t *data, const char *msg)
{
    session_finish(ctx, NULL, jsonrpc_error(ctx->id, code, msg, data));
}

static void failf(struct mcp_ctx *ctx, int code, json_t *data, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void failf(struct mcp_ctx *ctx, int code, json_t *data, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fail(ctx, code, data, msg);
}

/* List and read results of the modern era carry cache hints. */
static void add_cache_hints(struct mcp_ctx *ctx, json_t *result)
{
    if (!ctx->modern)
        return;
    json_object_set_new(result, "ttlMs", json_integer(ctx->s->srv->list_ttl_ms));
    /* What a caller sees may depend on who they are (scopes), so never share across users. */
    json_object_set_new(result, "cacheScope", json_string("private"));
}

/* ---- pagination ---- */

/* Parses params.cursor into *offset. Cursors are opaque to clients: base64url("kind:offset"). */
static int cursor_parse(json_t *params, const char *kind, size_t n, size_t *offset)
{
    *offset = 0;
    json_t *c = json_object_get(params, "cursor");
    if (c == NULL || json_is_null(c))
        return 0;
    if (!json_is_string(c) || json_string_length(c) > CURSOR_MAX)
        return ERR_INVALID;
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    if (b64url_decode(json_string_value(c), json_string_length(c), &raw, &rawlen) != 0)
        return ERR_INVALID;
    char text[CURSOR_MAX + 1];
    snprintf(text, sizeof(text), "%.*s", (int)rawlen, raw);
    free(raw);
    size_t klen = strlen(kind);
    if (strncmp(text, kind, klen) != 0 || text[klen] != ':')
        return ERR_INVALID;
    char *end = NULL;
    unsigned long long v = strtoull(text + klen + 1, &end, 10);
    if (end == text + klen + 1 || *end != '\0' || v > n)
        return ERR_INVALID;
    *offset = (size_t)v;
    return 0;
}

static void list_entries(struct mcp_ctx *ctx, json_t *params, struct reglist *l,
                         size_t listing_off, size_t name_off, const char *access_kind,
                         const char *field, const char *kind)
{
    struct mcp_server *srv = ctx->s->srv;
    size_t off;
    pthread_rwlock_rdlock(&srv->reg_lock);
    if (cursor_parse(params, kind, l->n, &off) != 0) {
        pthread_rwlock_unlock(&srv->reg_lock);
        failf(ctx, JSONRPC_INVALID_PARAMS, NULL,
              "Invalid params: cursor is not one this server issued for %s (start again "
              "without a cursor)",
              field);
        return;
    }
    json_t *arr = json_array();
    size_t end = off;
    /* a page holds page_size entries the caller may see; the cursor is a registry index */
    for (; end < l->n && json_array_size(arr) < srv->page_size; end++) {
        const char *name = *(char **)((char *)l->items[end] + name_off);
        if (!server_access(srv, &ctx->identity, access_kind, name))
            continue;
        json_t *listing = *(json_t **)((char *)l->items[end] + listing_off);
        json_array_append(arr, listing);
    }
    json_t *res = json_pack("{s:o}", field, arr);
    if (end < l->n) {
        char text[48];
        snprintf(text, sizeof(text), "%s:%zu", kind, end);
        char *cursor = b64url_encode(text, strlen(text));
        json_object_set_new(res, "nextCursor", json_string(cursor));
        free(cursor);
    }
    pthread_rwlock_unlock(&srv->reg_lock);
    add_cache_hints(ctx, res);
    session_finish(ctx, res, NULL);
}

/* ---- jobs: running user handlers on the pool ---- */

enum job_kind { JOB_TOOL, JOB_PROMPT, JOB_RESOURCE, JOB_COMPLETE };

struct job {
    enum job_kind kind;
    struct mcp_ctx *ctx;
    json_t *params; /* +1 */
    struct tool *tool;
    struct prompt *prompt;
    struct resource *res;
    struct rtemplate *tpl;
    bool prepared; /* tools/call: arguments checked, ctx->args set */
};

static void job_free(struct job *j)
{
    json_decref(j->params);
    tool_unref(j->tool);
    prompt_unref(j->prompt);
    resource_unref(j->res);
    rtemplate_unref(j->tpl);
    free(j);
}

/* Opens a retry's requestState and inputResponses (modern era); false when it answered. */
static bool mrtr_restore(struct mcp_ctx *ctx, json_t *params, const char *name, json_t *args)
{
    if (!ctx->modern)
        return true;
    json_t *st = json_object_get(params, "requestState");
    json_t *resp = json_object_get(params, "inputResponses");
    if (st != NULL) {
        const char *why = NULL;
        if (!json_is_string(st) ||
            ctx_state_open(ctx, json_string_value(st), name, args, &why) != 0) {
            log_debug("%s %s: %s", ctx->method, name, why ? why : "requestState not a string");
            failf(ctx, JSONRPC_INVALID_PARAMS, NULL, "Invalid params: %s",
                  why ? why : "requestState must be a string");
            return false;
        }
    }
    if (resp != NULL) {
        if (!json_is_object(resp)) {
            fail(ctx, JSONRPC_INVALID_PARAMS, NULL,
                 "Invalid params: inputResponses must be an object");
            return false;
        }
        const char *key;
        json_t *v;
        json_object_foreach(resp, key, v) {
            if (!json_is_object(v)) {
                failf(ctx, JSONRPC_INVALID_PARAMS, NULL,
                      "Invalid params: inputResponses['%.64s'] must be a result object", key);
                return false;
            }
        }
        if (ctx->input_responses == NULL)
            ctx->input_responses = json_object();
        json_object_update(ctx->input_responses, resp);
    }
    return true;
}

/* Turns a handler's non-zero return into the right answer. */
static void handler_failed(struct mcp_ctx *ctx, int r, const char *what, const char *name,
                           json_t *args)
{
    if (r == ERR_INPUT_REQUIRED && ctx->modern && ctx->input_requests != NULL) {
        char *state = ctx_state_seal(ctx, name, args);
        json_t *res = json_pack("{s:s, s:O, s:s}", "resultType", "input_required",
                                "inputRequests", ctx->input_requests, "requestState", state);
        free(state);
        session_finish(ctx, res, NULL);
        return;
    }
    if (r == ERR_UNSUPPORTED && ctx->missing_cap != NULL) {
        json_t *caps = json_pack("{s:{}}", ctx->missing_cap);
        failf(ctx, MCP_MISSING_CAPABILITY, json_pack("{s:o}", "requiredCapabilities", caps),
              "%s '%s' needs the client capability '%s', which this client did not declare",
              what, name, ctx->missing_cap);
        return;
    }
    if (r == ERR_CANCELLED) {
        fail(ctx, JSONRPC_INTERNAL_ERROR, NULL, "Request cancelled");
        return;
    }
    if (r == ERR_TIMEOUT) {
        failf(ctx, JSONRPC_INTERNAL_ERROR, NULL, "%s '%s' timed out waiting for the client",
              what, name);
        return;
    }
    const char *why = ctx->fail_why != NULL ? ctx->fail_why : err_str(r);
    log_warn("%s '%s' failed: %s", what, name, why);
    failf(ctx, JSONRPC_INTERNAL_ERROR, NULL, "%s '%s' failed: %s", what, name, why);
}

/* Tells the server's call hook how a tools/call ended. */
static void call_done(struct mcp_ctx *ctx, const char *tool, const char *outcome,
                      const struct timespec *t0)
{
    struct mcp_server *srv = ctx->s->srv;
    if (srv->call_hook == NULL)
        return;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
    srv->call_hook(srv->call_hook_arg, mcp_ctx_identity(ctx), tool, outcome, secs);
}

/* The end of a tools/call, on whichever thread finishes it: checks the result against the
 * tool's outputSchema, tells the call hook, answers, drops what the call kept and lets the
 * session close. */
static void tool_end(struct mcp_ctx *ctx, int r, json_t *result)
{
    struct mcp_session *s = ctx->s;
    struct tool *t = ctx->tool;
    json_t *args = ctx->args; /* handler_failed seals it into MRTR state */
    struct timespec t0 = ctx->t0;
    ctx->tool = NULL;
    ctx->args = NULL;
    struct jschema_error verr;
    if (r == ERR_WOULDBLOCK)
        r = ERR_INTERNAL; /* only an inline handler may ask for the pool */
    if (r != 0) {
        json_decref(result);
        result = NULL;
        call_done(ctx, t->name,
                  r == ERR_INPUT_REQUIRED ? "input_required"
                  : r == ERR_CANCELLED    ? "cancelled"
                                          : "error",
                  &t0);
        handler_failed(ctx, r, "tool", t->name, args);
        goto out;
    }
    if (!json_is_object(result)) {
        call_done(ctx, t->name, "error", &t0);
        failf(ctx, JSONRPC_INTERNAL_ERROR, NULL, "tool '%s' returned no result object", t->name);
        goto out;
    }
    json_t *structured = json_object_get(result, "structuredContent");
    if (json_object_get(result, "content") == NULL) {
        /* Structured results also carry a text copy for clients that read content only. */
        char *txt = structured ? json_dumps(structured, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        json_object_set_new(result, "content", txt ? json_pack("[o]", mcp_content_text(txt))
                                                   : json_array());
        free(txt);
    }
    if (t->out_schema != NULL && !json_is_true(json_object_get(result, "isError"))) {
        if (structured == NULL) {
            call_done(ctx, t->name, "error", &t0);
            failf(ctx, JSONRPC_INTERNAL_ERROR, NULL,
                  "tool '%s' declares an outputSchema but returned no structuredContent",
                  t->name);
            goto out;
        }
        if (jschema_validate(t->out_schema, NULL, structured, &verr) != 0) {
            call_done(ctx, t->name, "error", &t0);
            log_error("tool %s: structuredContent violates its outputSchema at '%s': %s",
                      t->name, verr.path, verr.message);
            failf(ctx, JSONRPC_INTERNAL_ERROR, NULL,
                  "tool '%s' returned structuredContent that violates its outputSchema at '%s': "
                  "%s",
                  t->name, verr.path, verr.message);
            goto out;
        }
    }
    call_done(ctx, t->name, json_is_true(json_object_get(result, "isError")) ? "tool_error" : "ok",
              &t0);
    session_finish(ctx, result, NULL);
    result = NULL;
out:
    json_decref(result);
    json_decref(args);
    tool_unref(t);
    session_job_end(s);
}

void mcp_ctx_finish(struct mcp_ctx *ctx, int rc, json_t *result)
{
    if (ctx->tool == NULL) {
        log_error("mcp_ctx_finish: not a deferred tools/call; ignored");
        json_decref(result);
        return;
    }
    tool_end(ctx, rc, result);
}

/* Runs a tools/call: arguments checked (once), the handler, then tool_end unless the handler
 * deferred its answer. Returns false, having answered nothing, when a handler run inline asked
 * for the pool (MCPGATE_EWOULDBLOCK). */
static bool run_tool(struct job *j)
{
    struct mcp_ctx *ctx = j->ctx;
    struct tool *t = j->tool;
    if (!j->prepared) {
        clock_gettime(CLOCK_MONOTONIC, &ctx->t0);
        json_t *args = json_object_get(j->params, "arguments");
        args = args == NULL || json_is_null(args) ? json_object() : json_incref(args);
        if (!mrtr_restore(ctx, j->params, t->name, args)) {
            json_decref(args);
            return true;
        }
        /* Invalid arguments are a tool execution error the model can read and correct
         * (SEP-1303). */
        struct jschema_error verr;
        if (jschema_validate(t->in_schema, NULL, args, &verr) != 0) {
            log_debug("tools/call %s: arguments rejected at '%s': %s", t->name, verr.path,
                      verr.message);
            call_done(ctx, t->name, "tool_error", &ctx->t0);
            session_finish(ctx,
                           mcp_result_error("Invalid arguments for tool '%s': at '%s': %s (%s)",
                                            t->name, verr.path[0] ? verr.path : "/",
                                            verr.message, verr.keyword),
                           NULL);
            json_decref(args);
            return true;
        }
        ctx->args = args;
        j->prepared = true;
    }
    reg_ref(&t->refs);
    ctx->tool = t;
    session_job_begin(ctx->s); /* ended by tool_end, on whichever thread */
    json_t *result = NULL;
    int r = t->fn(ctx, ctx->args, &result, t->udata);
    if (r == ERR_DEFERRED)
        return true; /* ctx may be gone already */
    if (r == ERR_WOULDBLOCK && !ctx->on_pool) {
        json_decref(result);
        ctx->tool = NULL;
        tool_unref(t);
        session_job_end(ctx->s);
        return false;
    }
    tool_end(ctx, r, result);
    return true;
}

static void run_prompt(struct job *j)
{
    struct mcp_ctx *ctx = j->ctx;
    struct prompt *p = j->prompt;
    json_t *args = json_object_get(j->params, "arguments");
    json_t *own_args = NULL, *result = NULL;
    if (args == NULL || json_is_null(args))
        args = own_args = json_object();
    if (!mrtr_restore(ctx, j->params, p->name, args))
        goto out;
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(p->listing, "arguments"), i, a) {
        const char *an = json_string_value(json_object_get(a, "name"));
        json_t *v = an ? json_object_get(args, an) : NULL;
        if (json_is_true(json_object_get(a, "required")) && !json_is_string(v)) {
            failf(ctx, JSONRPC_INVALID_PARAMS, NULL,
                  "Invalid params: prompt '%s' needs the string argument '%s'", p->name, an);
            goto out;
        }
    }
    int r = p->fn(ctx, args, &result, p->udata);
    if (r != 0) {
        json_decref(result);
        result = NULL;
        handler_failed(ctx, r, "prompt", p->name, args);
    } else if (!json_is_object(result) || !json_is_array(json_object_get(result, "messages"))) {
        failf(ctx, JSONRPC_INTERNAL_ERROR, NULL, "prompt '%s' returned no messages", p->name);
    } else {
        session_finish(ctx, result, NULL);
        result = NULL;
    }
out:
    json_decref(result);
    json_decref(own_args);
}

static void resource_not_found(struct mcp_ctx *ctx, const char *uri)
{
    /* -32002 in the legacy era; 2026-07-28 made it -32602. */
    failf(ctx, ctx->modern ? JSONRPC_INVALID_PARAMS : MCP_RESOURCE_NOT_FOUND,
          json_pack("{s:s}", "uri", uri), "Resource not found: %s", uri);
}

static void run_resource(struct job *j)
{
    struct mcp_ctx *ctx = j->ctx;
    const char *uri = json_string_value(json_object_get(j->params, "uri"));
    json_t *contents = NULL;
    if (!mrtr_restore(ctx, j->params, uri, NULL))
        return;
    mcp_resource_fn fn = j->res ? j->res->fn : j->tpl->fn;
    void *udata = j->res ? j->res->udata : j->tpl->udata;
    int r = fn(ctx, uri, &contents, udata);
    if (r == ERR_NOTFOUND) {
        resource_not_found(ctx, uri);
    } else if (r != 0) {
        handler_failed(ctx, r, "resource", uri, NULL);
    } else if (!json_is_array(contents)) {
        failf(ctx, JSONRPC_INTERNAL_ERROR, NULL, "resource '%s' returned no contents", uri);
    } else {
        json_t *res = json_pack("{s:O}", "contents", contents);
        add_cache_hints(ctx, res);
        session_finish(ctx, res, NULL);
    }
    json_decref(contents);
}

static void run_complete(struct job *j)
{
    struct mcp_ctx *ctx = j->ctx;
    struct mcp_server *srv = ctx->s->srv;
    json_t *ref = json_object_get(j->params, "ref");
    json_t *arg = json_object_get(j->params, "argument");
    json_t *cargs = json_object_get(json_object_get(j->params, "context"), "arguments");
    json_t *values = NULL;
    int r = srv->complete(ctx, ref, json_string_value(json_object_get(arg, "name")),
                          json_string_value(json_object_get(arg, "value")), cargs, &values,
                          srv->complete_udata);
    if (r == ERR_NOTFOUND) {
        fail(ctx, JSONRPC_INVALID_PARAMS, NULL, "Invalid params: nothing to complete for this ref");
    } else if (r != 0 || !json_is_array(values)) {
        handler_failed(ctx, r != 0 ? r : ERR_INTERNAL, "completion", "complete", NULL);
    } else {
        size_t total = json_array_size(values);
        json_t *first = json_array();
        for (size_t i = 0; i < total && i < 100; i++)
            json_array_append(first, json_array_get(values, i));
        json_t *res = json_pack("{s:{s:o, s:I, s:b}}", "completion", "values", first, "total",
                                (json_int_t)total, "hasMore", total > 100);
        session_finish(ctx, res, NULL);
    }
    json_decref(values);
}

static void job_run(void *arg)
{
    struct job *j = arg;
    struct mcp_session *s = j->ctx->s;
    j->ctx->on_pool = true;
    switch (j->kind) {
    case JOB_TOOL: run_tool(j); break;
    case JOB_PROMPT: run_prompt(j); break;
    case JOB_RESOURCE: run_resource(j); break;
    case JOB_COMPLETE: run_complete(j); break;
    }
    job_free(j);
    session_job_end(s);
}

static void submit(struct job *j, json_t *params)
{
    j->params = json_incref(params);
    session_track(j->ctx);
    session_job_begin(j->ctx->s);
    pool_submit(server_pool(j->ctx->s->srv), job_run, j);
}

/* ---- the methods ---- */

static const char *name_param(struct mcp_ctx *ctx, json_t *params, const char *key)
{
    json_t *v = json_object_get(params, key);
    if (!json_is_string(v) || json_string_length(v) == 0) {
        failf(ctx, JSONRPC_INVALID_PARAMS, NULL, "Invalid params: %s needs params.%s (a string)",
              ctx->method, key);
        return NULL;
    }
    return json_string_value(v);
}

/* params.name, and params.arguments when present must be an object; NULL after answering. */
static const char *name_and_args(struct mcp_ctx *ctx, json_t *params)
{
    const char *name = name_param(ctx, params, "name");
    if (name == NULL)
        return NULL;
    json_t *args = json_object_get(params, "arguments");
    if (args != NULL && !json_is_object(args) && !json_is_null(args)) {
        fail(ctx, JSONRPC_INVALID_PARAMS, NULL, "Invalid params: arguments must be an object");
        return NULL;
    }
    return name;
}

static void m_tools_call(struct mcp_ctx *ctx, json_t *params)
{
    const char *name = name_and_args(ctx, params);
    if (name == NULL)
        return;
    struct tool *t = server_tool_get(ctx->s->srv, name);
    if (t != NULL && !server_access(ctx->s->srv, &ctx->identity, "tool", name)) {
        tool_unref(t);
        t = NULL;
    }
    if (t == NULL) {
        failf(ctx, JSONRPC_INVALID_PARAMS, NULL, "Unknown tool: %s", name);
        return;
    }
    struct job *j = xcalloc(1, sizeof(*j));
    j->kind = JOB_TOOL;
    j->ctx = ctx;
    j->tool = t;
    if (t->flags & MCP_TOOL_NONBLOCKING) {
        /* Never waits: run it here, saving the hand-off to a worker; to the pool after all
         * when the handler says it must wait. */
        j->params = json_incref(params);
        session_track(ctx);
        if (run_tool(j)) {
            job_free(j);
            return;
        }
        session_job_begin(ctx->s);
        pool_submit(server_pool(ctx->s->srv), job_run, j);
        return;
    }
    submit(j, params);
}

static void m_prompts_get(struct mcp_ctx *ctx, json_t *params)
{
    const char *name = name_and_args(ctx, params);
    if (name == NULL)
        return;
    struct prompt *p = server_prompt_get(ctx->s->srv, name);
    if (p != NULL && !server_access(ctx->s->srv, &ctx->identity, "prompt", name)) {
        prompt_unref(p);
        p = NULL;
    }
    if (p == NULL) {
        failf(ctx, JSONRPC_INVALID_PARAMS, NULL, "Invalid params: unknown prompt: %s", name);
        return;
    }
    struct job *j = xcalloc(1, sizeof(*j));
    j->kind = JOB_PROMPT;
    j->ctx = ctx;
    j->prompt = p;
    submit(j, params);
}

static void m_resources_read(struct mcp_ctx *ctx, json_t *params)
{
    const char *uri = name_param(ctx, params, "uri");
    if (uri == NULL)
        return;
    struct resource *r;
    struct rtemplate *t;
    json_t *vars;
    if (server_resource_find(ctx->s->srv, uri, &r, &t, &vars) != 0) {
        resource_not_found(ctx, uri);
        return;
    }
    if (!server_access(ctx->s->srv, &ctx->identity, r != NULL ? "resource" : "template",
                       r != NULL ? r->uri : t->uri_template)) {
        resource_unref(r);
        rtemplate_unref(t);
        json_decref(vars);
        resource_not_found(ctx, uri);
        return;
    }
    ctx->uri_vars = vars;
    struct job *j = xcalloc(1, sizeof(*j));
    j->kind = JOB_RESOURCE;
    j->ctx = ctx;
    j->res = r;
    j->tpl = t;
    submit(j, params);
}

static void m_complete(struct mcp_ctx *ctx, json_t *params)
{
    if (ctx->s->srv->complete == NULL) {
        fail(ctx, JSONRPC_METHOD_NOT_FOUND, NULL,
             "Method not found: this server offers no completions");
        return;
    }
    json_t *ref = json_object_get(params, "ref");
    json_t *arg = json_object_get(params, "argument");
    if (!json_is_object(ref) || !json_is_string(json_object_get(ref, "type")) ||
        !json_is_object(arg) || !json_is_string(json_object_get(arg, "name")) ||
        !json_is_string(json_object_get(arg, "value"))) {
        fail(ctx, JSONRPC_INVALID_PARAMS, NULL,
             "Invalid params: completion/complete needs ref {type, name|uri} and argument "
             "{name, value}");
        return;
    }
    struct job *j = xcalloc(1, sizeof(*j));
    j->kind = JOB_COMPLETE;
    j->ctx = ctx;
    submit(j, params);
}

static void m_tools_list(struct mcp_ctx *ctx, json_t *params)
{
    list_entries(ctx, params, &ctx->s->srv->tools, offsetof(struct tool, listing),
                 offsetof(struct tool, name), "tool", "tools", "t");
}

static void m_resources_list(struct mcp_ctx *ctx, json_t *params)
{
    list_entries(ctx, params, &ctx->s->srv->resources, offsetof(struct resource, listing),
                 offsetof(struct resource, uri), "resource", "resources", "r");
}

static void m_templates_list(struct mcp_ctx *ctx, json_t *params)
{
    list_entries(ctx, params, &ctx->s->srv->templates, offsetof(struct rtemplate, listing),
                 offsetof(struct rtemplate, uri_template), "template", "resourceTemplates", "rt");
}

static void m_prompts_list(struct mcp_ctx *ctx, json_t *params)
{
    list_entries(ctx, params, &ctx->s->srv->prompts, offsetof(struct prompt, listing),
                 offsetof(struct prompt, name), "prompt", "prompts", "p");
}

static void m_ping(struct mcp_ctx *ctx, json_t *params)
{
    session_finish(ctx, json_object(), NULL);
}

static void m_set_level(struct mcp_ctx *ctx, json_t *params)
{
    json_t *lv = json_object_get(params, "level");
    int level = json_is_string(lv) ? log_level_from_name(json_string_value(lv)) : -1;
    if (level < 0) {
        fail(ctx, JSONRPC_INVALID_PARAMS, NULL,
             "Invalid params: level must be one of debug, info, notice, warning, error, "
             "critical, alert, emergency");
        return;
    }
    pthread_mutex_lock(&ctx->s->mu);
    ctx->s->log_level = level;
    pthread_mutex_unlock(&ctx->s->mu);
    session_finish(ctx, json_object(), NULL);
}

static void m_subscribe(struct mcp_ctx *ctx, json_t *params)
{
    const char *uri = name_param(ctx, params, "uri");
    if (uri == NULL)
        return;
    bool on = strcmp(ctx->method, "resources/subscribe") == 0;
    pthread_mutex_lock(&ctx->s->mu);
    if (on && json_object_size(ctx->s->subscriptions) >= 1024) {
        pthread_mutex_unlock(&ctx->s->mu);
        fail(ctx, JSONRPC_INVALID_PARAMS, NULL,
             "Invalid params: too many subscriptions on this session (limit 1024)");
        return;
    }
    bool had = json_object_get(ctx->s->subscriptions, uri) != NULL;
    if (on)
        json_object_set_new(ctx->s->subscriptions, uri, json_true());
    else
        json_object_del(ctx->s->subscriptions, uri);
    if (on != had) /* counted under the lock, so a concurrent change counts after this one */
        server_watch(ctx->s->srv, uri, on ? 1 : -1);
    pthread_mutex_unlock(&ctx->s->mu);
    session_finish(ctx, json_object(), NULL);
}

json_t *methods_discover_result(struct mcp_server *srv)
{
    json_t *res = json_pack("{s:o, s:o, s:I, s:s}", "supportedVersions",
                            session_supported_versions(), "capabilities",
                            server_capabilities(srv), "ttlMs", (json_int_t)srv->list_ttl_ms,
                            "cacheScope", "public");
    if (srv->instructions != NULL)
        json_object_set_new(res, "instructions", json_string(srv->instructions));
    return res;
}

static void m_discover(struct mcp_ctx *ctx, json_t *params)
{
    json_t *res = methods_discover_result(ctx->s->srv);
    if (!ctx->modern) {
        /* Asked outside the 2026-07-28 era: still answer in its shape. */
        json_object_set_new(res, "resultType", json_string("complete"));
        json_object_set_new(res, "_meta", json_pack("{s:o}", "io.modelcontextprotocol/serverInfo",
                                                    server_info(ctx->s->srv)));
    }
    session_finish(ctx, res, NULL);
}

static void m_listen(struct mcp_ctx *ctx, json_t *params)
{
    json_t *want = json_object_get(params, "notifications");
    if (!json_is_object(want)) {
        fail(ctx, JSONRPC_INVALID_PARAMS, NULL,
             "Invalid params: subscriptions/listen needs params.notifications (an object)");
        return;
    }
    /* Honour what we support; everything here is supported. */
    json_t *honoured = json_object();
    static const char *const flags[] = {"toolsListChanged", "resourcesListChanged",
                                        "promptsListChanged"};
    for (size_t i = 0; i < 3; i++) {
        if (json_is_true(json_object_get(want, flags[i])))
            json_object_set_new(honoured, flags[i], json_true());
    }
    json_t *uris = json_object_get(want, "resourceSubscriptions");
    if (json_is_array(uris)) {
        json_t *keep = json_array(), *seen = json_object();
        size_t i;
        json_t *u;
        json_array_foreach(uris, i, u) {
            if (json_is_string(u) && i < 1024 &&
                json_object_get(seen, json_string_value(u)) == NULL) {
                json_object_set_new(seen, json_string_value(u), json_true());
                json_array_append(keep, u);
            }
        }
        json_decref(seen);
        json_object_set_new(honoured, "resourceSubscriptions", keep);
    }
    struct inflight *f = session_track(ctx);
    pthread_mutex_lock(&ctx->s->mu);
    f->is_listen = true;
    f->listen_filter = json_incref(honoured);
    /* counted before anyone can end the listen (inflight_free counts it out) */
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(honoured, "resourceSubscriptions"), i, u)
        server_watch(ctx->s->srv, json_string_value(u), 1);
    pthread_mutex_unlock(&ctx->s->mu);
    json_t *ack = json_pack("{s:o, s:{s:O}}", "notifications", honoured, "_meta",
                            "io.modelcontextprotocol/subscriptionId", ctx->id);
    session_send(ctx->s, ctx->stream,
                 jsonrpc_notification("notifications/subscriptions/acknowledged", ack), false);
    /* The request stays open: the session owns it now (the in-flight record); the response is
     * sent only when the server ends the subscription. */
    ctx->req = NULL;
    ctx_free(ctx);
}

typedef void (*method_fn)(struct mcp_ctx *ctx, json_t *params);

static const struct {
    const char *name;
    method_fn fn;
} method_table[] = {
    {"tools/list", m_tools_list},
    {"tools/call", m_tools_call},
    {"resources/list", m_resources_list},
    {"resources/templates/list", m_templates_list},
    {"resources/read", m_resources_read},
    {"resources/subscribe", m_subscribe},
    {"resources/unsubscribe", m_subscribe},
    {"prompts/list", m_prompts_list},
    {"prompts/get", m_prompts_get},
    {"completion/complete", m_complete},
    {"logging/setLevel", m_set_level},
    {"ping", m_ping},
    {"server/discover", m_discover},
    {"subscriptions/listen", m_listen},
};

void methods_dispatch(struct mcp_ctx *ctx, json_t *params)
{
    for (size_t i = 0; i < sizeof(method_table) / sizeof(*method_table); i++) {
        if (strcmp(method_table[i].name, ctx->method) == 0) {
            if (!ctx->modern && strcmp(ctx->method, "subscriptions/listen") == 0)
                break; /* 2026-07-28 only */
            method_table[i].fn(ctx, params);
            return;
        }
    }
    failf(ctx, JSONRPC_METHOD_NOT_FOUND, NULL, "Method not found: %s", ctx->method);
}
