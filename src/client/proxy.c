/* `mcpgate connect` (see proxy.h). The main thread reads stdin; mcpc's thread delivers what the
 * server says; both write stdout through one lock. Every request in flight is a struct fwd,
 * which remembers the client's id and, for the era bridges, the multi-round-trip state. */
#include "client/proxy.h"

#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/lines.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/reason.h"
#include "core/xmalloc.h"
#include "mcp/jsonrpc.h"

#define LINE_MAX_BYTES (8u << 20)
#define MRTR_ROUNDS_MAX 8

enum down_era { DOWN_UNKNOWN, DOWN_LEGACY, DOWN_MODERN };

struct fwd {
    struct proxy *px;
    json_t *client_id;     /* the id to answer; NULL while a modern client owes a retry */
    char *method;
    json_t *params;        /* as the client sent them (the base of MRTR retries upstream) */
    uint64_t handle;       /* mcpc's */
    bool modern;           /* the client speaks 2026-07-28 */
    int rounds;
    /* legacy client <- modern server: what the server asked, what the client answered */
    json_t *awaiting;      /* key -> minted request id (string) */
    json_t *responses;     /* key -> result */
    char *request_state;
    /* modern client <- legacy server: server requests not yet shown, and shown ones */
    json_t *queued;        /* array of server requests */
    json_t *shown;         /* key -> server request id */
    char *state_token;
    bool listen;           /* a modern client's subscriptions/listen held by the proxy */
    bool cancelled;        /* unlinked by the client's cancel: on_reply frees it (mu) */
    json_t *final;         /* the server's answer while the client owes a retry (mu) */
    struct fwd *next;
};

struct proxy {
    const struct proxy_opts *o;
    struct mcpc *c;
    pthread_mutex_t mu; /* fwds, client facts, mint counter */
    struct fwd *fwds;
    unsigned long mint;
    bool connected;
    enum down_era down;
    json_t *client_caps;
    json_t *client_info;
    char client_version[32];
    char *log_level;
    json_t *subs;       /* resource subscriptions (modern server) */
    pthread_mutex_t out_mu;
    bool out_broken;
};

/* ---- output ---- */

static void emit(struct proxy *px, json_t *msg)
{
    char *s = json_dumps(msg, JSON_COMPACT);
    if (s == NULL)
        return;
    size_t n = strlen(s);
    pthread_mutex_lock(&px->out_mu);
    if (!px->out_broken) {
        struct part {
            const char *p;
            size_t n;
        } parts[2] = {{s, n}, {"\n", 1}};
        for (int i = 0; i < 2 && !px->out_broken; i++) {
            const char *p = parts[i].p;
            size_t left = parts[i].n;
            while (left > 0) {
                ssize_t w = write(px->o->out_fd, p, left);
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0) {
                    px->out_broken = true;
                    break;
                }
                p += w;
                left -= (size_t)w;
            }
        }
    }
    pthread_mutex_unlock(&px->out_mu);
    free(s);
}

static void emit_result(struct proxy *px, json_t *id, json_t *result /* stolen */)
{
    json_t *m = jsonrpc_result(id, result);
    emit(px, m);
    json_decref(m);
}

static void emit_error(struct proxy *px, json_t *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void emit_error(struct proxy *px, json_t *id, int code, const char *fmt, ...)
{
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *null = json_null();
    json_t *m = jsonrpc_error(id != NULL ? id : null, code, msg, NULL);
    emit(px, m);
    json_decref(m);
    json_decref(null);
}

/* ---- helpers ---- */

bool proxy_tool_ignored(json_t *globs, const char *name)
{
    size_t i;
    json_t *g;
    if (name == NULL)
        return false;
    json_array_foreach (globs, i, g)
        if (json_is_string(g) && fnmatch(json_string_value(g), name, FNM_CASEFOLD) == 0)
            return true;
    return false;
}

/* obj's "_meta" object, created when missing. Borrowed. */
static json_t *meta_of(json_t *obj)
{
    json_t *meta = json_object_get(obj, "_meta");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(obj, "_meta", meta);
    }
    return meta;
}

void proxy_filter_tools(json_t *globs, json_t *tools)
{
    if (globs == NULL || !json_is_array(tools))
        return;
    for (size_t i = 0; i < json_array_size(tools);) {
        const char *name = json_string_value(json_object_get(json_array_get(tools, i), "name"));
        if (proxy_tool_ignored(globs, name))
            json_array_remove(tools, i);
        else
            i++;
    }
}

static void fwd_free(struct fwd *f)
{
    if (f == NULL)
        return;
    json_decref(f->client_id);
    free(f->method);
    json_decref(f->params);
    json_decref(f->awaiting);
    json_decref(f->responses);
    free(f->request_state);
    json_decref(f->queued);
    json_decref(f->shown);
    free(f->state_token);
    json_decref(f->final);
    free(f);
}

/* The client gave up on f (unlinked, mu held): mcpc still calls on_reply once for it (the
 * answer, or NULL), which frees it; a listen has no request upstream and goes at once.
 * Returns whether the caller frees it now. */
static bool fwd_abandon(struct fwd *f)
{
    if (f->listen)
        return true;
    f->cancelled = true;
    return false;
}

/* (mu) */
static void fwd_unlink(struct proxy *px, struct fwd *f)
{
    for (struct fwd **pp = &px->fwds; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            return;
        }
    }
}

static bool ids_equal(json_t *a, json_t *b)
{
    return a != NULL && b != NULL && json_equal(a, b);
}

/* (mu) */
static struct fwd *fwd_by_client_id(struct proxy *px, json_t *id)
{
    for (struct fwd *f = px->fwds; f != NULL; f = f->next)
        if (ids_equal(f->client_id, id))
            return f;
    return NULL;
}

static bool modern_meta(json_t *params)
{
    return json_object_get(json_object_get(params, "_meta"),
                           "io.modelcontextprotocol/protocolVersion") != NULL;
}

static enum mcpc_era up_era(struct proxy *px)
{
    return mcpc_era(px->c);
}

static bool up_modern(struct proxy *px)
{
    return up_era(px) == MCPC_ERA_MODERN;
}

/* ---- connecting ---- */

/* Connects upstream once, with init (the client's initialize params, or ones made from a
 * modern client's _meta). 0, or an error with why. */
static int ensure_connected(struct proxy *px, json_t *init, char *why, size_t whylen)
{
    if (px->connected)
        return 0;
    json_t *ip = json_deep_copy(init);
    json_t *ci = json_object_get(ip, "clientInfo");
    const char *name = json_string_value(json_object_get(ci, "name"));
    if (name != NULL) {
        char *n = xasprintf("%s (via mcpgate)", name);
        json_object_set_new(ci, "name", json_string(n));
        free(n);
    }
    int r = mcpc_connect(px->c, ip, why, whylen);
    json_decref(ip);
    if (r != 0)
        return r;
    px->connected = true;
    if (up_modern(px)) {
        /* list-changed notifications come through subscriptions/listen */
        json_t *info = mcpc_server_info(px->c);
        json_t *caps = json_object_get(info, "capabilities");
        json_t *filter = json_object();
        if (json_is_true(json_object_get(json_object_get(caps, "tools"), "listChanged")))
            json_object_set_new(filter, "toolsListChanged", json_true());
        if (json_is_true(json_object_get(json_object_get(caps, "prompts"), "listChanged")))
            json_object_set_new(filter, "promptsListChanged", json_true());
        if (json_is_true(json_object_get(json_object_get(caps, "resources"), "listChanged")))
            json_object_set_new(filter, "resourcesListChanged", json_true());
        if (json_object_size(filter) > 0 && px->down == DOWN_LEGACY) {
            if (mcpc_listen(px->c, filter) != 0)
                log_warn("cannot listen for the server's notifications");
        } else {
            json_decref(filter);
        }
        json_decref(info);
    }
    return 0;
}

static void connect_failed(struct proxy *px, json_t *id, int r, const char *why)
{
    fprintf(stderr, "mcpgate: cannot connect to %s: %s\n", px->o->mcpc.url, why);
    emit_error(px, id, r == ERR_INVALID ? MCPC_ERR_AUTH : MCPC_ERR_TRANSPORT,
               "mcpgate could not connect to %s: %s", px->o->mcpc.url, why);
}

static void handle_initialize(struct proxy *px, json_t *id, json_t *params)
{
    char why[600];
    pthread_mutex_lock(&px->mu);
    px->down = DOWN_LEGACY;
    json_decref(px->client_caps);
    json_decref(px->client_info);
    px->client_caps = json_deep_copy(json_object_get(params, "capabilities"));
    px->client_info = json_deep_copy(json_object_get(params, "clientInfo"));
    const char *v = json_string_value(json_object_get(params, "protocolVersion"));
    snprintf(px->client_version, sizeof px->client_version, "%s", v != NULL ? v : "");
    pthread_mutex_unlock(&px->mu);
    if (!json_is_object(px->client_caps)) {
        json_decref(px->client_caps);
        px->client_caps = json_object();
    }
    int r = ensure_connected(px, params, why, sizeof why);
    if (r != 0) {
        connect_failed(px, id, r, why);
        return;
    }
    json_t *info = mcpc_server_info(px->c);
    if (!up_modern(px)) {
        emit_result(px, id, json_deep_copy(info));
        json_decref(info);
        return;
    }
    /* a legacy client of a modern server: the handshake is ours to answer */
    json_t *res = json_object();
    json_object_set_new(res, "protocolVersion",
                        json_string(mcpc_version_legacy(px->client_version)
                                        ? px->client_version
                                        : MCPC_LEGACY_VERSION));
    json_t *caps = json_deep_copy(json_object_get(info, "capabilities"));
    json_object_set_new(res, "capabilities", caps != NULL ? caps : json_object());
    json_t *si = json_object_get(info, "serverInfo");
    json_object_set_new(res, "serverInfo",
                        si != NULL ? json_deep_copy(si)
                                   : json_pack("{s:s, s:s}", "name", "mcp-server", "version", "0"));
    if (json_object_get(info, "instructions") != NULL)
        json_object_set(res, "instructions", json_object_get(info, "instructions"));
    emit_result(px, id, res);
    json_decref(info);
}

/* A modern client's request: the init params for a legacy server. A 2026-07-28 client
 * declares its capabilities per request, a legacy session once: the session gets every
 * capability the proxy can carry across (as input_required), and a server request for one the
 * current request did not declare is refused by the proxy (see on_server_request). */
static json_t *init_from_meta(json_t *params)
{
    json_t *meta = json_object_get(params, "_meta");
    json_t *info = json_object_get(meta, "io.modelcontextprotocol/clientInfo");
    json_t *caps = json_pack("{s:{s:{}, s:{}}, s:{}, s:{}}", "elicitation", "form", "url",
                             "sampling", "roots");
    return json_pack("{s:s, s:o, s:O}", "protocolVersion", MCPC_LEGACY_VERSION, "capabilities",
                     caps, "clientInfo",
                     info != NULL ? info
                                  : json_pack("{s:s, s:s}", "name", "mcp-client", "version", "0"));
}

/* Did a 2026-07-28 request declare the capability a server request needs? */
static bool declared(json_t *params, const char *method)
{
    json_t *caps = json_object_get(json_object_get(params, "_meta"),
                                   "io.modelcontextprotocol/clientCapabilities");
    const char *need = NULL;
    if (strcmp(method, "elicitation/create") == 0)
        need = "elicitation";
    else if (strcmp(method, "sampling/createMessage") == 0)
        need = "sampling";
    else if (strcmp(method, "roots/list") == 0)
        need = "roots";
    return need != NULL && json_object_get(caps, need) != NULL;
}

/* ---- answers from the server ---- */

static void on_reply(void *arg, json_t *resp);

static void forward_up(struct proxy *px, struct fwd *f, json_t *params /* stolen */)
{
    if (mcpc_request(px->c, f->method, params, on_reply, f, &f->handle) != 0) {
        pthread_mutex_lock(&px->mu);
        fwd_unlink(px, f);
        pthread_mutex_unlock(&px->mu);
        emit_error(px, f->client_id, MCPC_ERR_CLOSED, "mcpgate is shutting down");
        fwd_free(f);
    }
}

/* The params to send upstream for a legacy client of a modern server: its capabilities,
 * identity and log level in _meta (mcpc adds the protocol version). */
static json_t *modernize(struct proxy *px, json_t *params)
{
    json_t *p = params != NULL ? json_deep_copy(params) : json_object();
    json_t *meta = meta_of(p);
    pthread_mutex_lock(&px->mu);
    if (px->client_caps != NULL)
        json_object_set(meta, "io.modelcontextprotocol/clientCapabilities", px->client_caps);
    if (px->client_info != NULL)
        json_object_set(meta, "io.modelcontextprotocol/clientInfo", px->client_info);
    if (px->log_level != NULL)
        json_object_set_new(meta, "io.modelcontextprotocol/logLevel", json_string(px->log_level));
    pthread_mutex_unlock(&px->mu);
    return p;
}

/* For a legacy server: the modern _meta keys go (the version travels in the handshake). */
static json_t *legacize(json_t *params)
{
    json_t *p = params != NULL ? json_deep_copy(params) : NULL;
    json_t *meta = json_object_get(p, "_meta");
    if (json_is_object(meta)) {
        json_object_del(meta, "io.modelcontextprotocol/protocolVersion");
        json_object_del(meta, "io.modelcontextprotocol/clientCapabilities");
        json_object_del(meta, "io.modelcontextprotocol/clientInfo");
        json_object_del(meta, "io.modelcontextprotocol/logLevel");
        if (json_object_size(meta) == 0)
            json_object_del(p, "_meta");
    }
    return p;
}

/* Legacy client, modern server: the server needs input; ask the client with requests of its
 * own era and retry when every answer is in. (mu held) */
static bool mrtr_ask_client(struct proxy *px, struct fwd *f, json_t *result)
{
    json_t *reqs = json_object_get(result, "inputRequests");
    const char *state = json_string_value(json_object_get(result, "requestState"));
    if (++f->rounds > MRTR_ROUNDS_MAX)
        return false;
    free(f->request_state);
    f->request_state = state != NULL ? xstrdup(state) : NULL;
    json_decref(f->awaiting);
    json_decref(f->responses);
    f->awaiting = json_object();
    f->responses = json_object();
    const char *key;
    json_t *ir;
    json_object_foreach (reqs, key, ir) {
        const char *method = json_string_value(json_object_get(ir, "method"));
        if (method == NULL)
            return false;
        char idbuf[48];
        snprintf(idbuf, sizeof idbuf, "mcpgate-%lu", ++px->mint);
        json_t *params = json_deep_copy(json_object_get(ir, "params"));
        if (strcmp(method, "elicitation/create") == 0 && json_is_object(params) &&
            json_is_string(json_object_get(params, "mode")) &&
            strcmp(json_string_value(json_object_get(params, "mode")), "url") == 0 &&
            json_object_get(params, "elicitationId") == NULL) {
            /* 2025-11-25 URL elicitation needs an id; 2026-07-28 dropped it */
            json_object_set_new(params, "elicitationId", json_string(idbuf));
        }
        json_t *id = json_string(idbuf);
        json_t *req = jsonrpc_request(id, method, params);
        json_object_set_new(f->awaiting, key, id);
        emit(px, req);
        json_decref(req);
    }
    return true;
}

static void retry_up(struct proxy *px, struct fwd *f)
{
    json_t *p = modernize(px, f->params);
    if (json_object_size(f->responses) > 0)
        json_object_set(p, "inputResponses", f->responses);
    if (f->request_state != NULL)
        json_object_set_new(p, "requestState", json_string(f->request_state));
    forward_up(px, f, p);
}

static void on_reply(void *arg, json_t *resp)
{
    struct fwd *f = arg;
    struct proxy *px = f->px;
    json_t *result = json_object_get(resp, "result");
    pthread_mutex_lock(&px->mu);
    if (f->cancelled) { /* the client gave up on it: this was mcpc's last word */
        pthread_mutex_unlock(&px->mu);
        fwd_free(f);
        return;
    }
    if (resp == NULL) { /* no answer will come (it never left) */
        fwd_unlink(px, f);
        pthread_mutex_unlock(&px->mu);
        if (f->client_id != NULL)
            emit_error(px, f->client_id, MCPC_ERR_CLOSED,
                       "the request could not be sent (the connection is closing)");
        fwd_free(f);
        return;
    }
    if (f->client_id == NULL) {
        /* the client owes a retry (it was shown the server's questions): the answer waits
         * for it */
        json_decref(f->final);
        f->final = json_incref(resp);
        pthread_mutex_unlock(&px->mu);
        return;
    }
    bool modern_up = up_modern(px);
    if (json_is_object(result) && modern_up && !f->modern) {
        const char *rt = json_string_value(json_object_get(result, "resultType"));
        if (rt != NULL && strcmp(rt, "input_required") == 0) {
            if (json_object_size(json_object_get(result, "inputRequests")) == 0) {
                /* only requestState: retry at once */
                free(f->request_state);
                const char *st = json_string_value(json_object_get(result, "requestState"));
                f->request_state = st != NULL ? xstrdup(st) : NULL;
                json_decref(f->responses);
                f->responses = json_object();
                bool again = ++f->rounds <= MRTR_ROUNDS_MAX;
                pthread_mutex_unlock(&px->mu);
                if (again) {
                    retry_up(px, f);
                    return;
                }
                pthread_mutex_lock(&px->mu);
            } else if (mrtr_ask_client(px, f, result)) {
                pthread_mutex_unlock(&px->mu);
                return;
            }
            fwd_unlink(px, f);
            pthread_mutex_unlock(&px->mu);
            emit_error(px, f->client_id, JSONRPC_INTERNAL_ERROR,
                       "the server kept asking for input (%d rounds); giving up", f->rounds);
            fwd_free(f);
            return;
        }
    }
    fwd_unlink(px, f);
    pthread_mutex_unlock(&px->mu);
    json_t *out = json_deep_copy(resp);
    json_object_set(out, "id", f->client_id);
    json_t *r2 = json_object_get(out, "result");
    if (json_is_object(r2)) {
        if (modern_up && !f->modern) {
            json_object_del(r2, "resultType");
        } else if (!modern_up && f->modern) {
            if (json_object_get(r2, "resultType") == NULL)
                json_object_set_new(r2, "resultType", json_string("complete"));
            json_t *info = mcpc_server_info(px->c);
            json_t *si = json_object_get(info, "serverInfo");
            if (si != NULL)
                json_object_set(meta_of(r2), "io.modelcontextprotocol/serverInfo", si);
            /* 2026-07-28 list and read results are cacheable: a legacy server says nothing of
             * freshness, so nothing may be cached, and never across users */
            static const char *const cacheable[] = {"tools/list", "prompts/list",
                                                    "resources/list", "resources/templates/list",
                                                    "resources/read"};
            for (size_t i = 0; i < sizeof cacheable / sizeof *cacheable; i++) {
                if (f->method != NULL && strcmp(f->method, cacheable[i]) == 0) {
                    if (json_object_get(r2, "ttlMs") == NULL)
                        json_object_set_new(r2, "ttlMs", json_integer(0));
                    if (json_object_get(r2, "cacheScope") == NULL)
                        json_object_set_new(r2, "cacheScope", json_string("private"));
                }
            }
            json_decref(info);
        }
        if (f->method != NULL && strcmp(f->method, "tools/list") == 0)
            proxy_filter_tools(px->o->ignore_tools, json_object_get(r2, "tools"));
    } else if (!modern_up && !f->modern) {
        /* legacy both ways: a -32602 resource-not-found of 2026 is -32002 only if told so */
    }
    emit(px, out);
    json_decref(out);
    fwd_free(f);
}


/* ---- requests from the server (legacy servers) ---- */

/* Modern client, legacy server: show the client what the server asks, as an
 * InputRequiredResult answering its current request. (mu held) */
static void present_inputs(struct proxy *px, struct fwd *f)
{
    if (f->client_id == NULL || json_array_size(f->queued) == 0)
        return;
    json_t *reqs = json_object();
    if (f->shown == NULL)
        f->shown = json_object();
    size_t i;
    json_t *m;
    json_array_foreach (f->queued, i, m) {
        char key[32];
        snprintf(key, sizeof key, "r%lu", ++px->mint);
        json_object_set_new(reqs, key,
                            json_pack("{s:O, s:O}", "method", json_object_get(m, "method"),
                                      "params",
                                      json_object_get(m, "params") != NULL
                                          ? json_object_get(m, "params")
                                          : json_object()));
        json_object_set(f->shown, key, json_object_get(m, "id"));
    }
    json_array_clear(f->queued);
    if (f->state_token == NULL)
        f->state_token = crypto_random_token(24);
    json_t *res = json_pack("{s:s, s:o, s:s}", "resultType", "input_required", "inputRequests",
                            reqs, "requestState", f->state_token);
    json_t *msg = jsonrpc_result(f->client_id, res);
    emit(px, msg);
    json_decref(msg);
    json_decref(f->client_id);
    f->client_id = NULL; /* the retry brings a new id */
}

static void on_server_request(void *arg, json_t *msg, uint64_t related)
{
    struct proxy *px = arg;
    pthread_mutex_lock(&px->mu);
    if (px->down != DOWN_MODERN) {
        pthread_mutex_unlock(&px->mu);
        emit(px, msg); /* same era: the client answers, with the server's id */
        return;
    }
    struct fwd *f = NULL;
    for (struct fwd *g = px->fwds; g != NULL; g = g->next)
        if (g->handle == related && related != 0)
            f = g;
    if (f == NULL) {
        pthread_mutex_unlock(&px->mu);
        json_t *e = jsonrpc_error(json_object_get(msg, "id"), JSONRPC_METHOD_NOT_FOUND,
                                  "the client (2026-07-28) can only be asked during a request",
                                  NULL);
        if (mcpc_respond(px->c, e) != 0)
            log_warn("cannot answer the server");
        return;
    }
    const char *method = json_string_value(json_object_get(msg, "method"));
    if (method == NULL || !declared(f->params, method)) {
        pthread_mutex_unlock(&px->mu);
        json_t *e = jsonrpc_errorf(json_object_get(msg, "id"), JSONRPC_METHOD_NOT_FOUND, NULL,
                                   "the client did not declare the capability for %s",
                                   method != NULL ? method : "that request");
        if (mcpc_respond(px->c, e) != 0)
            log_warn("cannot answer the server");
        return;
    }
    if (f->queued == NULL)
        f->queued = json_array();
    json_array_append(f->queued, msg);
    present_inputs(px, f);
    pthread_mutex_unlock(&px->mu);
}

static void on_server_notification(void *arg, json_t *msg)
{
    struct proxy *px = arg;
    const char *method = json_string_value(json_object_get(msg, "method"));
    if (method == NULL)
        return;
    pthread_mutex_lock(&px->mu);
    enum down_era down = px->down;
    json_t *listen_id = NULL;
    for (struct fwd *f = px->fwds; f != NULL; f = f->next)
        if (f->listen && f->client_id != NULL)
            listen_id = json_incref(f->client_id);
    pthread_mutex_unlock(&px->mu);
    json_t *out = json_deep_copy(msg);
    json_t *params = json_object_get(out, "params");
    if (down != DOWN_MODERN && up_modern(px)) {
        if (strcmp(method, "notifications/subscriptions/acknowledged") == 0) {
            json_decref(out);
            json_decref(listen_id);
            return;
        }
        json_t *meta = json_object_get(params, "_meta");
        json_object_del(meta, "io.modelcontextprotocol/subscriptionId");
        if (json_is_object(meta) && json_object_size(meta) == 0)
            json_object_del(params, "_meta");
    } else if (down == DOWN_MODERN && !up_modern(px)) {
        bool listened = strcmp(method, "notifications/tools/list_changed") == 0 ||
                        strcmp(method, "notifications/prompts/list_changed") == 0 ||
                        strcmp(method, "notifications/resources/list_changed") == 0 ||
                        strcmp(method, "notifications/resources/updated") == 0;
        if (listened) {
            if (listen_id == NULL) {
                json_decref(out);
                return; /* nobody listens */
            }
            if (!json_is_object(params)) {
                params = json_object();
                json_object_set_new(out, "params", params);
            }
            json_object_set(meta_of(params), "io.modelcontextprotocol/subscriptionId", listen_id);
        }
    }
    json_decref(listen_id);
    emit(px, out);
    json_decref(out);
}

static void on_lost(void *arg, const char *why)
{
    struct proxy *px = arg;
    fprintf(stderr, "mcpgate: the connection to %s is lost: %s\n", px->o->mcpc.url, why);
    px->connected = false;
}

/* ---- messages from the client ---- */

/* Answers a legacy client's request locally (modern server): true when done. */
static bool answer_locally_legacy(struct proxy *px, json_t *id, const char *method, json_t *params)
{
    if (strcmp(method, "ping") == 0) {
        emit_result(px, id, json_object());
        return true;
    }
    if (strcmp(method, "logging/setLevel") == 0) {
        const char *lvl = json_string_value(json_object_get(params, "level"));
        if (lvl == NULL) {
            emit_error(px, id, JSONRPC_INVALID_PARAMS, "logging/setLevel needs a level");
            return true;
        }
        pthread_mutex_lock(&px->mu);
        free(px->log_level);
        px->log_level = xstrdup(lvl);
        pthread_mutex_unlock(&px->mu);
        emit_result(px, id, json_object());
        return true;
    }
    bool sub = strcmp(method, "resources/subscribe") == 0;
    if (sub || strcmp(method, "resources/unsubscribe") == 0) {
        const char *uri = json_string_value(json_object_get(params, "uri"));
        if (uri == NULL) {
            emit_error(px, id, JSONRPC_INVALID_PARAMS, "%s needs a uri", method);
            return true;
        }
        pthread_mutex_lock(&px->mu);
        if (px->subs == NULL)
            px->subs = json_array();
        size_t i;
        json_t *v;
        bool have = false;
        json_array_foreach (px->subs, i, v) {
            if (strcmp(json_string_value(v), uri) == 0) {
                have = true;
                if (!sub) {
                    json_array_remove(px->subs, i);
                    break;
                }
            }
        }
        if (sub && !have && json_array_size(px->subs) < 1024)
            json_array_append_new(px->subs, json_string(uri));
        json_t *filter = json_pack("{s:O}", "resourceSubscriptions", px->subs);
        pthread_mutex_unlock(&px->mu);
        json_t *info = mcpc_server_info(px->c);
        json_t *caps = json_object_get(info, "capabilities");
        if (json_is_true(json_object_get(json_object_get(caps, "tools"), "listChanged")))
            json_object_set_new(filter, "toolsListChanged", json_true());
        if (json_is_true(json_object_get(json_object_get(caps, "prompts"), "listChanged")))
            json_object_set_new(filter, "promptsListChanged", json_true());
        if (json_is_true(json_object_get(json_object_get(caps, "resources"), "listChanged")))
            json_object_set_new(filter, "resourcesListChanged", json_true());
        json_decref(info);
        if (mcpc_listen(px->c, filter) != 0)
            log_warn("cannot update the subscriptions");
        emit_result(px, id, json_object());
        return true;
    }
    return false;
}

/* Modern client, legacy server: server/discover from the handshake, subscriptions/listen
 * held by the proxy, retries of input_required answered to the server. true when done. */
static bool answer_locally_modern(struct proxy *px, json_t *id, const char *method,
                                  json_t *params)
{
    if (strcmp(method, "server/discover") == 0) {
        json_t *info = mcpc_server_info(px->c);
        json_t *res = json_object();
        json_object_set_new(res, "resultType", json_string("complete"));
        json_object_set_new(res, "supportedVersions", json_pack("[s]", MCPC_MODERN_VERSION));
        json_t *caps = json_deep_copy(json_object_get(info, "capabilities"));
        json_object_set_new(res, "capabilities", caps != NULL ? caps : json_object());
        if (json_object_get(info, "instructions") != NULL)
            json_object_set(res, "instructions", json_object_get(info, "instructions"));
        json_object_set_new(res, "ttlMs", json_integer(0));
        json_object_set_new(res, "cacheScope", json_string("private"));
        if (json_object_get(info, "serverInfo") != NULL)
            json_object_set_new(res, "_meta",
                                json_pack("{s:O}", "io.modelcontextprotocol/serverInfo",
                                          json_object_get(info, "serverInfo")));
        emit_result(px, id, res);
        json_decref(info);
        return true;
    }
    if (strcmp(method, "subscriptions/listen") == 0) {
        struct fwd *f = xcalloc(1, sizeof *f);
        f->px = px;
        f->client_id = json_deep_copy(id);
        f->method = xstrdup(method);
        f->modern = true;
        f->listen = true;
        pthread_mutex_lock(&px->mu);
        f->next = px->fwds;
        px->fwds = f;
        pthread_mutex_unlock(&px->mu);
        json_t *ack = jsonrpc_notification(
            "notifications/subscriptions/acknowledged",
            json_pack("{s:{s:O}, s:O}", "_meta", "io.modelcontextprotocol/subscriptionId", id,
                      "notifications",
                      json_object_get(params, "notifications") != NULL
                          ? json_object_get(params, "notifications")
                          : json_object()));
        emit(px, ack);
        json_decref(ack);
        return true;
    }
    const char *state = json_string_value(json_object_get(params, "requestState"));
    if (state == NULL)
        return false;
    pthread_mutex_lock(&px->mu);
    struct fwd *f = NULL;
    for (struct fwd *g = px->fwds; g != NULL; g = g->next)
        if (g->state_token != NULL && strlen(g->state_token) == strlen(state) &&
            crypto_equal(g->state_token, state, strlen(state)))
            f = g;
    if (f == NULL) {
        pthread_mutex_unlock(&px->mu);
        emit_error(px, id, JSONRPC_INVALID_PARAMS,
                   "requestState is unknown or already used (was the request restarted?)");
        return true;
    }
    json_t *responses = json_object_get(params, "inputResponses");
    const char *key;
    json_t *sid;
    json_object_foreach (f->shown, key, sid) {
        json_t *r = json_object_get(responses, key), *m;
        if (r != NULL)
            m = jsonrpc_result(sid, json_deep_copy(r));
        else
            m = jsonrpc_error(sid, JSONRPC_INTERNAL_ERROR, "the client gave no answer", NULL);
        if (mcpc_respond(px->c, m) != 0)
            log_warn("cannot answer the server");
    }
    json_object_clear(f->shown);
    json_decref(f->client_id);
    f->client_id = json_deep_copy(id);
    json_t *final = NULL;
    if (f->final != NULL) { /* the server answered meanwhile: that is the retry's answer */
        final = f->final;
        f->final = NULL;
        json_array_clear(f->queued);
    } else {
        present_inputs(px, f); /* more questions may be waiting already */
    }
    pthread_mutex_unlock(&px->mu);
    if (final != NULL) {
        on_reply(f, final);
        json_decref(final);
    }
    return true;
}

static void handle_request(struct proxy *px, json_t *msg)
{
    json_t *id = json_object_get(msg, "id");
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *params = json_object_get(msg, "params");
    char why[600];
    if (strcmp(method, "initialize") == 0) {
        handle_initialize(px, id, params);
        return;
    }
    bool modern = modern_meta(params);
    if (!px->connected) {
        pthread_mutex_lock(&px->mu);
        if (px->down == DOWN_UNKNOWN)
            px->down = modern ? DOWN_MODERN : DOWN_LEGACY;
        pthread_mutex_unlock(&px->mu);
        json_t *init = modern ? init_from_meta(params)
                              : json_pack("{s:s, s:{}, s:{s:s, s:s}}", "protocolVersion",
                                          MCPC_LEGACY_VERSION, "capabilities", "clientInfo",
                                          "name", "mcp-client", "version", "0");
        int r = ensure_connected(px, init, why, sizeof why);
        json_decref(init);
        if (r != 0) {
            connect_failed(px, id, r, why);
            return;
        }
    }
    if (strcmp(method, "tools/call") == 0 && px->o->ignore_tools != NULL) {
        const char *name = json_string_value(json_object_get(params, "name"));
        if (proxy_tool_ignored(px->o->ignore_tools, name)) {
            emit_error(px, id, JSONRPC_INVALID_PARAMS,
                       "Tool \"%s\" is not available (mcpgate --ignore-tool)", name);
            return;
        }
    }
    bool up_mod = up_modern(px);
    if (up_mod && !modern && answer_locally_legacy(px, id, method, params))
        return;
    if (!up_mod && modern && answer_locally_modern(px, id, method, params))
        return;
    struct fwd *f = xcalloc(1, sizeof *f);
    f->px = px;
    f->client_id = json_deep_copy(id);
    f->method = xstrdup(method);
    f->params = params != NULL ? json_deep_copy(params) : NULL;
    f->modern = modern;
    json_t *up;
    if (up_mod && !modern)
        up = modernize(px, params);
    else if (!up_mod && modern)
        up = legacize(params);
    else
        up = params != NULL ? json_deep_copy(params) : NULL;
    pthread_mutex_lock(&px->mu);
    f->next = px->fwds;
    px->fwds = f;
    pthread_mutex_unlock(&px->mu);
    forward_up(px, f, up);
}

static void handle_response(struct proxy *px, json_t *msg)
{
    json_t *id = json_object_get(msg, "id");
    /* an answer to one of our MRTR questions? */
    pthread_mutex_lock(&px->mu);
    for (struct fwd *f = px->fwds; f != NULL; f = f->next) {
        const char *key;
        json_t *mid;
        json_object_foreach (f->awaiting, key, mid) {
            if (!json_equal(mid, id))
                continue;
            json_t *result = json_object_get(msg, "result");
            if (result == NULL) {
                const char *em = json_string_value(
                    json_object_get(json_object_get(msg, "error"), "message"));
                fwd_unlink(px, f);
                json_t *cid = json_incref(f->client_id);
                uint64_t handle = f->handle;
                bool now = fwd_abandon(f);
                pthread_mutex_unlock(&px->mu);
                mcpc_cancel(px->c, handle, "the client refused the server's question");
                emit_error(px, cid, JSONRPC_INTERNAL_ERROR,
                           "the client could not answer the server's question: %s",
                           em != NULL ? em : "error");
                json_decref(cid);
                if (now)
                    fwd_free(f);
                return;
            }
            json_object_set(f->responses, key, result);
            json_object_del(f->awaiting, key);
            bool all = json_object_size(f->awaiting) == 0;
            pthread_mutex_unlock(&px->mu);
            if (all)
                retry_up(px, f);
            return;
        }
    }
    pthread_mutex_unlock(&px->mu);
    /* an answer to the server's request (legacy) */
    if (mcpc_respond(px->c, json_deep_copy(msg)) != 0)
        log_warn("cannot pass the client's answer to the server");
}

static void handle_notification(struct proxy *px, json_t *msg)
{
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *params = json_object_get(msg, "params");
    if (strcmp(method, "notifications/initialized") == 0)
        return; /* mcpc sent its own after the handshake */
    if (strcmp(method, "notifications/cancelled") == 0) {
        json_t *rid = json_object_get(params, "requestId");
        pthread_mutex_lock(&px->mu);
        struct fwd *f = fwd_by_client_id(px, rid);
        bool listen = false, now = false;
        uint64_t handle = 0;
        if (f != NULL) {
            fwd_unlink(px, f);
            listen = f->listen;
            handle = f->handle;
            now = fwd_abandon(f); /* f is on_reply's to free from here on */
        }
        pthread_mutex_unlock(&px->mu);
        if (f != NULL && !listen)
            mcpc_cancel(px->c, handle, json_string_value(json_object_get(params, "reason")));
        if (now)
            fwd_free(f);
        return;
    }
    if (!px->connected)
        return;
    if (up_modern(px))
        return; /* a 2026-07-28 server takes no other notification */
    if (mcpc_notify(px->c, method, params != NULL ? json_deep_copy(params) : NULL) != 0)
        log_warn("cannot pass %s to the server", method);
}

static void handle_line(struct proxy *px, const char *line, size_t len)
{
    json_t *msg = NULL, *id = NULL;
    struct jsonrpc_fail f;
    enum jsonrpc_kind kind;
    if (jsonrpc_parse(line, len, LINE_MAX_BYTES, 64, &msg, &f) != 0) {
        emit_error(px, NULL, f.code, "%s", f.message);
        return;
    }
    if (json_is_array(msg)) {
        emit_error(px, NULL, JSONRPC_INVALID_REQUEST, "batches are not supported");
        json_decref(msg);
        return;
    }
    if (jsonrpc_classify(msg, &kind, &id, &f) != 0) {
        emit_error(px, id, f.code, "%s", f.message);
        json_decref(msg);
        return;
    }
    switch (kind) {
    case JSONRPC_REQUEST:
        handle_request(px, msg);
        break;
    case JSONRPC_RESPONSE:
        handle_response(px, msg);
        break;
    case JSONRPC_NOTIFICATION:
        handle_notification(px, msg);
        break;
    }
    json_decref(msg);
}

static void on_line(void *arg, const char *line, size_t len)
{
    struct proxy *px = arg;
    if (line == NULL) {
        emit_error(px, NULL, JSONRPC_INVALID_REQUEST, "message larger than %u bytes; dropped",
                   LINE_MAX_BYTES);
        return;
    }
    if (strspn(line, " \t\r") >= len)
        return; /* blank */
    handle_line(px, line, len);
}

int proxy_run(const struct proxy_opts *o)
{
    struct proxy px;
    memset(&px, 0, sizeof px);
    px.o = o;
    pthread_mutex_init(&px.mu, NULL);
    pthread_mutex_init(&px.out_mu, NULL);
    struct mcpc_events ev = {.on_notification = on_server_notification,
                             .on_request = on_server_request,
                             .on_lost = on_lost};
    if (mcpc_new(&o->mcpc, &ev, &px, &px.c) != 0) {
        fprintf(stderr, "mcpgate: cannot use the server URL %s\n", o->mcpc.url);
        return 1;
    }
    struct lines lines;
    lines_init(&lines, LINE_MAX_BYTES);
    char chunk[65536];
    for (;;) {
        ssize_t n = read(o->in_fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        lines_feed(&lines, chunk, (size_t)n, on_line, &px);
    }
    lines_free(&lines);
    log_info("stdin closed; closing the connection");
    mcpc_free(px.c);
    pthread_mutex_lock(&px.mu);
    while (px.fwds != NULL) {
        struct fwd *f = px.fwds;
        px.fwds = f->next;
        fwd_free(f);
    }
    pthread_mutex_unlock(&px.mu);
    json_decref(px.client_caps);
    json_decref(px.client_info);
    json_decref(px.subs);
    free(px.log_level);
    return 0;
}
