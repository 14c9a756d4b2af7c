/* The MCP client transport's connection: which era and transport the server speaks (the
 * probe order of 2026-07-28 versioning and 2025-11-25 backwards compatibility), the legacy
 * handshake, and SEP-2243's x-mcp-header mirroring for the modern era. See mcpc.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/mcpc_int.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/reason.h"
#include "core/utf8.h"
#include "core/xmalloc.h"
#include "mcp/jsonrpc.h"

static const char *const legacy_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26",
                                              "2024-11-05"};

bool mcpc_version_legacy(const char *v)
{
    for (size_t i = 0; v != NULL && i < sizeof legacy_versions / sizeof *legacy_versions; i++)
        if (strcmp(v, legacy_versions[i]) == 0)
            return true;
    return false;
}

json_t *mcpc_default_init(struct mcpc *c, const char *version)
{
    return json_pack("{s:s, s:O, s:O}", "protocolVersion", version, "capabilities",
                     c->capabilities, "clientInfo", c->client_info);
}

static void set_era(struct mcpc *c, enum mcpc_era era, const char *version)
{
    pthread_mutex_lock(&c->mu);
    c->era = era;
    snprintf(c->proto, sizeof c->proto, "%s", version != NULL ? version : "");
    pthread_mutex_unlock(&c->mu);
}

static int rpc_error_code(json_t *msg)
{
    json_t *e = json_object_get(msg, "error");
    return json_is_object(e) ? (int)json_integer_value(json_object_get(e, "code")) : 0;
}

static const char *rpc_error_message(json_t *msg)
{
    const char *m = json_string_value(json_object_get(json_object_get(msg, "error"), "message"));
    return m != NULL ? m : "";
}

/* Results of one probe step. */
enum step { STEP_OK, STEP_NEXT, STEP_FAIL, STEP_AUTH /* not authorized */ };

static enum step transport_failure(struct rawres *rr, char *why, size_t whylen)
{
    reason_set(why, whylen, "%s", rr->why[0] ? rr->why : "the server did not answer");
    return STEP_FAIL;
}

/* 2026-07-28: POST server/discover. A DiscoverResult or a modern error body means modern. */
static enum step try_modern(struct mcpc *c, int tmo, char *why, size_t whylen)
{
    struct rawres rr;
    set_era(c, MCPC_ERA_MODERN, MCPC_MODERN_VERSION);
    c->tools_loaded = false;
    int r = mcpc_raw_call(c, PK_REQUEST, "server/discover", NULL, false, tmo, &rr);
    enum step st = STEP_NEXT;
    if (r == 0 && rpc_error_code(rr.msg) == MCP_UNSUPPORTED_VERSION) {
        /* "select a mutually supported version from the supported list and retry": when ours
         * is listed (a server may refuse a first request for its own reasons), once */
        json_t *sup = json_object_get(json_object_get(json_object_get(rr.msg, "error"), "data"),
                                      "supported");
        size_t i;
        json_t *v;
        bool listed = false;
        json_array_foreach (sup, i, v)
            if (json_is_string(v) && strcmp(json_string_value(v), MCPC_MODERN_VERSION) == 0)
                listed = true;
        if (listed) {
            mcpc_rawres_clear(&rr);
            r = mcpc_raw_call(c, PK_REQUEST, "server/discover", NULL, false, tmo, &rr);
        }
    }
    if (r != 0 || (rr.err != 0 && rr.status == 0)) {
        st = transport_failure(&rr, why, whylen);
        goto out;
    }
    if (rr.err == ERR_INVALID && (rr.status == 401 || rr.status == 403)) {
        reason_set(why, whylen, "%s", rr.why);
        st = STEP_AUTH;
        goto out;
    }
    json_t *res = json_object_get(rr.msg, "result");
    json_t *sv = json_object_get(res, "supportedVersions");
    if (json_is_object(res) && json_is_array(sv)) {
        bool ours = false;
        size_t i;
        json_t *v;
        json_array_foreach (sv, i, v)
            if (json_is_string(v) && strcmp(json_string_value(v), MCPC_MODERN_VERSION) == 0)
                ours = true;
        if (!ours) {
            log_info("the server speaks the modern era but not %s; trying the legacy handshake",
                     MCPC_MODERN_VERSION);
            goto out;
        }
        json_t *info = json_deep_copy(res);
        json_t *si = json_object_get(json_object_get(res, "_meta"),
                                     "io.modelcontextprotocol/serverInfo");
        if (si != NULL && json_object_get(info, "serverInfo") == NULL)
            json_object_set(info, "serverInfo", si);
        json_object_set_new(info, "protocolVersion", json_string(MCPC_MODERN_VERSION));
        pthread_mutex_lock(&c->mu);
        json_decref(c->server_info);
        c->server_info = info;
        pthread_mutex_unlock(&c->mu);
        st = STEP_OK;
        goto out;
    }
    int code = rpc_error_code(rr.msg);
    if (code == MCP_UNSUPPORTED_VERSION) {
        log_info("the server does not support %s; trying the legacy handshake",
                 MCPC_MODERN_VERSION);
        goto out;
    }
    if (code == MCP_HEADER_MISMATCH || code == MCP_MISSING_CAPABILITY) {
        reason_set(why, whylen, "the server refused server/discover: %s (%d)",
                   rpc_error_message(rr.msg), code);
        st = STEP_FAIL;
        goto out;
    }
    log_debug("server/discover: HTTP %ld%s; not a modern server", rr.status,
              rr.msg != NULL ? ", a JSON-RPC error" : "");
out:
    mcpc_rawres_clear(&rr);
    if (st != STEP_OK)
        set_era(c, MCPC_ERA_NONE, NULL);
    return st;
}

/* The legacy handshake's answer: the version must be one we speak. */
static enum step accept_init(struct mcpc *c, struct rawres *rr, char *why, size_t whylen)
{
    json_t *res = json_object_get(rr->msg, "result");
    const char *v = json_string_value(json_object_get(res, "protocolVersion"));
    if (!json_is_object(res)) {
        if (rr->msg != NULL)
            reason_set(why, whylen, "the server refused initialize: %s (%d)",
                       rpc_error_message(rr->msg), rpc_error_code(rr->msg));
        else
            reason_set(why, whylen, "the server did not answer initialize (HTTP %ld)",
                       rr->status);
        return STEP_FAIL;
    }
    if (!mcpc_version_legacy(v)) {
        char q[70];
        reason_set(why, whylen, "the server answered initialize with protocol version '%s', "
                                "which this client does not speak",
                   reason_quote(v != NULL ? v : "", 60, q));
        return STEP_FAIL;
    }
    pthread_mutex_lock(&c->mu);
    json_decref(c->server_info);
    c->server_info = json_deep_copy(res);
    snprintf(c->proto, sizeof c->proto, "%s", v);
    pthread_mutex_unlock(&c->mu);
    return STEP_OK;
}

static bool fallback_status(long st)
{
    return st == 400 || st == 404 || st == 405;
}

/* 2025-11-25 Streamable HTTP: POST initialize. */
static enum step try_legacy(struct mcpc *c, int tmo, bool may_fall_back, char *why, size_t whylen)
{
    struct rawres rr;
    const char *version = json_string_value(json_object_get(c->init_params, "protocolVersion"));
    set_era(c, MCPC_ERA_LEGACY, NULL); /* no MCP-Protocol-Version before the answer */
    pthread_mutex_lock(&c->mu);
    free(c->session_id);
    c->session_id = NULL;
    pthread_mutex_unlock(&c->mu);
    int r = mcpc_raw_call(c, PK_REQUEST, "initialize", json_deep_copy(c->init_params), false,
                          tmo, &rr);
    enum step st;
    if (r != 0 || (rr.err != 0 && rr.status == 0)) {
        st = transport_failure(&rr, why, whylen);
    } else if (rr.err == ERR_INVALID && (rr.status == 401 || rr.status == 403)) {
        reason_set(why, whylen, "%s", rr.why);
        st = STEP_AUTH;
    } else if (rr.msg == NULL || (rpc_error_code(rr.msg) != 0 && rr.status >= 400)) {
        if (may_fall_back && fallback_status(rr.status)) {
            log_info("initialize over Streamable HTTP: HTTP %ld; trying the HTTP+SSE transport",
                     rr.status);
            st = STEP_NEXT;
        } else {
            reason_set(why, whylen, "initialize: HTTP %ld%s%s", rr.status,
                       rr.msg != NULL ? ": " : "", rr.msg != NULL ? rpc_error_message(rr.msg) : "");
            st = STEP_FAIL;
        }
    } else {
        st = accept_init(c, &rr, why, whylen);
        if (st == STEP_OK) {
            pthread_mutex_lock(&c->mu);
            c->session_id = rr.session_id != NULL ? xstrdup(rr.session_id) : NULL;
            pthread_mutex_unlock(&c->mu);
        }
    }
    (void)version;
    mcpc_rawres_clear(&rr);
    if (st != STEP_OK)
        set_era(c, MCPC_ERA_NONE, NULL);
    return st;
}

/* 2024-11-05 HTTP+SSE: GET the stream, wait for its endpoint event, POST initialize there;
 * the answer comes on the stream. */
static enum step try_sse(struct mcpc *c, int tmo, bool may_fall_back, char *why, size_t whylen)
{
    set_era(c, MCPC_ERA_SSE, NULL);
    pthread_mutex_lock(&c->mu);
    free(c->post_url);
    c->post_url = NULL;
    c->endpoint_failed = false;
    pthread_mutex_unlock(&c->mu);
    /* the loop opens the stream (the era is already SSE) */
    struct preq *g = mcpc_preq_new(c, PK_GET, NULL, NULL);
    if (mcpc_submit(c, g, false, false, 0, NULL, NULL) != 0) {
        reason_set(why, whylen, "the client is closing");
        return STEP_FAIL;
    }
    long long deadline = mcpc_now_ms() + tmo;
    enum step st = STEP_FAIL;
    pthread_mutex_lock(&c->mu);
    while (c->post_url == NULL && !c->endpoint_failed && mcpc_now_ms() < deadline)
        cond_wait_ms(&c->cv, &c->mu, 100);
    bool have = c->post_url != NULL;
    bool failed = c->endpoint_failed;
    char ewhy[300];
    snprintf(ewhy, sizeof ewhy, "%s", c->endpoint_why);
    pthread_mutex_unlock(&c->mu);
    if (!have) {
        if (failed && may_fall_back) {
            log_info("the HTTP+SSE transport: %s; trying Streamable HTTP", ewhy);
            st = STEP_NEXT;
        } else {
            reason_set(why, whylen, "%s", failed ? ewhy
                                                 : "the server sent no endpoint event on its "
                                                   "SSE stream");
        }
        set_era(c, MCPC_ERA_NONE, NULL);
        return st;
    }
    struct rawres rr;
    int r = mcpc_raw_call(c, PK_REQUEST, "initialize", json_deep_copy(c->init_params), false, tmo,
                          &rr);
    if (r != 0 || rr.msg == NULL) {
        reason_set(why, whylen, "initialize over HTTP+SSE: %s",
                   rr.why[0] ? rr.why : "no answer on the stream");
        st = STEP_FAIL;
    } else {
        st = accept_init(c, &rr, why, whylen);
    }
    mcpc_rawres_clear(&rr);
    if (st != STEP_OK)
        set_era(c, MCPC_ERA_NONE, NULL);
    return st;
}

int mcpc_connect(struct mcpc *c, json_t *init_params, char *why, size_t whylen)
{
    int tmo = (c->o.connect_timeout_s > 0 ? c->o.connect_timeout_s : 30) * 1000;
    const char *pin = c->pinned;
    bool modern_ok = pin == NULL || strcmp(pin, MCPC_MODERN_VERSION) == 0;
    bool legacy_ok = pin == NULL || mcpc_version_legacy(pin);
    if (!modern_ok && !legacy_ok) {
        reason_set(why, whylen, "protocol version '%s' is not one this client speaks", pin);
        return ERR_USAGE;
    }
    json_decref(c->init_params);
    if (init_params != NULL) {
        c->init_params = json_deep_copy(init_params);
        if (pin != NULL && mcpc_version_legacy(pin))
            json_object_set_new(c->init_params, "protocolVersion", json_string(pin));
    } else {
        c->init_params = mcpc_default_init(c, pin != NULL && legacy_ok ? pin : MCPC_LEGACY_VERSION);
    }
    /* the steps in order, per --transport */
    enum { S_MODERN, S_LEGACY, S_SSE } order[3];
    size_t n = 0;
    switch (c->o.transport) {
    case MCPC_SSE_ONLY:
        order[n++] = S_SSE;
        break;
    case MCPC_SSE_FIRST:
        order[n++] = S_SSE;
        if (modern_ok)
            order[n++] = S_MODERN;
        if (legacy_ok)
            order[n++] = S_LEGACY;
        break;
    case MCPC_HTTP_ONLY:
        if (modern_ok)
            order[n++] = S_MODERN;
        if (legacy_ok)
            order[n++] = S_LEGACY;
        break;
    case MCPC_HTTP_FIRST:
    default:
        if (modern_ok)
            order[n++] = S_MODERN;
        if (legacy_ok) {
            order[n++] = S_LEGACY;
            order[n++] = S_SSE;
        }
        break;
    }
    enum step st = STEP_NEXT;
    for (size_t i = 0; i < n && st == STEP_NEXT; i++) {
        bool more = i + 1 < n;
        switch (order[i]) {
        case S_MODERN:
            st = try_modern(c, tmo, why, whylen);
            break;
        case S_LEGACY:
            st = try_legacy(c, tmo, more, why, whylen);
            break;
        case S_SSE:
            st = try_sse(c, tmo, more, why, whylen);
            break;
        }
    }
    if (st == STEP_NEXT) {
        reason_set(why, whylen, "the server at %s answers none of the transports tried", c->url);
        return ERR_UNSUPPORTED;
    }
    if (st == STEP_AUTH)
        return ERR_INVALID;
    if (st == STEP_FAIL)
        return ERR_IO;
    enum mcpc_era era = mcpc_era(c);
    if (era == MCPC_ERA_LEGACY || era == MCPC_ERA_SSE) {
        if (mcpc_notify(c, "notifications/initialized", NULL) != 0)
            log_warn("could not send notifications/initialized");
    }
    if (era == MCPC_ERA_LEGACY) {
        /* the server may send requests (elicitation) on this stream while answering the next
         * call, and drops them when it is not open yet: wait until it is (or refused), 2 s */
        pthread_mutex_lock(&c->mu);
        c->get_ready = false;
        pthread_mutex_unlock(&c->mu);
        if (mcpc_submit(c, mcpc_preq_new(c, PK_GET, NULL, NULL), false, false, 0, NULL, NULL) != 0)
            log_warn("could not open the notification stream");
        long long deadline = mcpc_now_ms() + 2000;
        pthread_mutex_lock(&c->mu);
        while (!c->get_ready && mcpc_now_ms() < deadline)
            cond_wait_ms(&c->cv, &c->mu, 20);
        pthread_mutex_unlock(&c->mu);
    }
    log_info("connected to %s (%s, protocol %s)", c->url,
             era == MCPC_ERA_MODERN ? "stateless Streamable HTTP"
             : era == MCPC_ERA_LEGACY ? "Streamable HTTP"
                                      : "HTTP+SSE",
             c->proto);
    return 0;
}

/* ---- SEP-2243: x-mcp-header ---- */

static bool header_token(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 64)
        return false;
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
        if (!ok)
            return false;
    }
    return true;
}

char *mcpc_header_value(const char *s)
{
    size_t n = strlen(s);
    bool plain = n == 0 || (s[0] != ' ' && s[0] != '\t' && s[n - 1] != ' ' && s[n - 1] != '\t');
    for (size_t i = 0; plain && i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch >= 0x7f)
            plain = false;
    }
    if (plain && n >= 11 && strncmp(s, "=?base64?", 9) == 0 && strcmp(s + n - 2, "?=") == 0)
        plain = false;
    if (plain)
        return xstrdup(s);
    char *b = b64_encode(s, n);
    char *v = xasprintf("=?base64?%s?=", b);
    free(b);
    return v;
}

/* Is there an x-mcp-header anywhere in v (a subschema reached other than through
 * "properties")? Values of default, const, enum and examples are data, not schemas. */
static bool annotated_anywhere(json_t *v, int depth)
{
    if (depth > 32)
        return true; /* too deep to vouch for */
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach (v, i, e)
            if (annotated_anywhere(e, depth + 1))
                return true;
        return false;
    }
    if (!json_is_object(v))
        return false;
    const char *k;
    json_t *e;
    json_object_foreach (v, k, e) {
        if (strcmp(k, "x-mcp-header") == 0)
            return true;
        if (strcmp(k, "default") == 0 || strcmp(k, "const") == 0 || strcmp(k, "enum") == 0 ||
            strcmp(k, "examples") == 0)
            continue;
        if (annotated_anywhere(e, depth + 1))
            return true;
    }
    return false;
}

/* Walks a schema: annotations are collected ({path: [...], header}) on properties reached from
 * the root through "properties" keys only; one anywhere else (the root, items, oneOf/anyOf/
 * allOf/not, if/then/else, $defs, ...) makes the tool invalid (SEP-2243), as does a name that
 * is not a token, a name used twice (ignoring case), or a type other than string, integer or
 * boolean. */
static int collect(json_t *schema, json_t *path, json_t *out, json_t *seen, int depth, char *why,
                   size_t whylen)
{
    if (depth > 16) {
        if (annotated_anywhere(schema, 0)) {
            reason_set(why, whylen, "an x-mcp-header is nested too deep");
            return ERR_INVALID;
        }
        return 0;
    }
    const char *key;
    json_t *prop;
    json_object_foreach (schema, key, prop) {
        if (strcmp(key, "properties") == 0 || strcmp(key, "default") == 0 ||
            strcmp(key, "const") == 0 || strcmp(key, "enum") == 0 ||
            strcmp(key, "examples") == 0)
            continue;
        if (strcmp(key, "x-mcp-header") == 0 && depth > 0)
            continue; /* this property's own annotation, checked by the caller */
        if (strcmp(key, "x-mcp-header") == 0 || annotated_anywhere(prop, 0)) {
            reason_set(why, whylen, "an x-mcp-header %s is not reachable through properties "
                                    "alone",
                       strcmp(key, "x-mcp-header") == 0 ? "on the root" : "under");
            if (strcmp(key, "x-mcp-header") != 0) {
                char q[70];
                reason_set(why, whylen, "an x-mcp-header under '%s' is not reachable through "
                                        "properties alone",
                           reason_quote(key, 60, q));
            }
            return ERR_INVALID;
        }
    }
    json_t *props = json_object_get(schema, "properties");
    if (!json_is_object(props))
        return 0;
    json_object_foreach (props, key, prop) {
        if (!json_is_object(prop))
            continue;
        json_t *h = json_object_get(prop, "x-mcp-header");
        json_t *p2 = json_copy(path);
        json_array_append_new(p2, json_string(key));
        if (h != NULL) {
            const char *hn = json_string_value(h);
            const char *type = json_string_value(json_object_get(prop, "type"));
            char lower[80];
            if (!header_token(hn)) {
                reason_set(why, whylen, "x-mcp-header of '%s' is not a header name token", key);
                json_decref(p2);
                return ERR_INVALID;
            }
            size_t i;
            for (i = 0; hn[i] != '\0' && i + 1 < sizeof lower; i++)
                lower[i] = (char)((hn[i] >= 'A' && hn[i] <= 'Z') ? hn[i] + 32 : hn[i]);
            lower[i] = '\0';
            if (json_object_get(seen, lower) != NULL) {
                reason_set(why, whylen, "x-mcp-header '%s' is used twice", hn);
                json_decref(p2);
                return ERR_INVALID;
            }
            if (type == NULL || (strcmp(type, "string") != 0 && strcmp(type, "integer") != 0 &&
                                 strcmp(type, "boolean") != 0)) {
                reason_set(why, whylen,
                           "x-mcp-header '%s' is on a property that is not a string, an integer "
                           "or a boolean", hn);
                json_decref(p2);
                return ERR_INVALID;
            }
            json_object_set_new(seen, lower, json_true());
            json_array_append_new(out, json_pack("{s:o, s:s}", "path", json_copy(p2), "header", hn));
        }
        int r = collect(prop, p2, out, seen, depth + 1, why, whylen);
        json_decref(p2);
        if (r != 0)
            return r;
    }
    return 0;
}

json_t *mcpc_param_headers(json_t *input_schema, json_t *arguments, char *why, size_t whylen)
{
    json_t *list = json_array(), *seen = json_object(), *path = json_array();
    int r = collect(input_schema, path, list, seen, 0, why, whylen);
    json_decref(seen);
    json_decref(path);
    if (r != 0) {
        json_decref(list);
        return NULL;
    }
    json_t *out = json_array(), *e;
    size_t i;
    json_array_foreach (list, i, e) {
        json_t *v = arguments, *k;
        size_t j;
        json_array_foreach (json_object_get(e, "path"), j, k)
            v = json_object_get(v, json_string_value(k));
        char *s = NULL;
        if (json_is_string(v))
            s = xstrdup(json_string_value(v));
        else if (json_is_integer(v))
            s = xasprintf("%lld", (long long)json_integer_value(v));
        else if (json_is_real(v) && json_real_value(v) > -9007199254740992.0 &&
                 json_real_value(v) < 9007199254740992.0 && /* in range before the cast */
                 json_real_value(v) == (double)(long long)json_real_value(v))
            s = xasprintf("%lld", (long long)json_real_value(v)); /* 3.0 for an integer */
        else if (json_is_boolean(v))
            s = xstrdup(json_is_true(v) ? "true" : "false");
        if (s == NULL)
            continue; /* absent or null: no header */
        char *enc = mcpc_header_value(s);
        char *line = xasprintf("Mcp-Param-%s: %s",
                               json_string_value(json_object_get(e, "header")), enc);
        json_array_append_new(out, json_string(line));
        free(line);
        free(enc);
        free(s);
    }
    json_decref(list);
    return out;
}

json_t *mcpc_tool_headers(struct mcpc *c, json_t *params)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    json_t *schema = name != NULL ? json_object_get(c->tool_schemas, name) : NULL;
    if (schema == NULL)
        return json_array();
    char why[200];
    json_t *h = mcpc_param_headers(schema, json_object_get(params, "arguments"), why, sizeof why);
    return h != NULL ? h : json_array();
}

void mcpc_tools_snoop(struct mcpc *c, json_t *result)
{
    json_t *tools = json_object_get(result, "tools");
    if (!json_is_array(tools))
        return;
    for (size_t i = 0; i < json_array_size(tools);) {
        json_t *t = json_array_get(tools, i);
        json_t *schema = json_object_get(t, "inputSchema");
        const char *name = json_string_value(json_object_get(t, "name"));
        char why[200];
        json_t *h = mcpc_param_headers(schema, NULL, why, sizeof why);
        if (h == NULL) {
            log_warn("tool '%s' dropped: %s", name != NULL ? name : "?", why);
            json_array_remove(tools, i);
            continue;
        }
        json_decref(h);
        if (name != NULL && json_object_size(c->tool_schemas) < 10000) {
            char *dump = json_dumps(schema, JSON_COMPACT);
            if (dump != NULL && strstr(dump, "x-mcp-header") != NULL)
                json_object_set(c->tool_schemas, name, schema);
            free(dump);
        }
        i++;
    }
}
