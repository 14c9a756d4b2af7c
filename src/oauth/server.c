/* The authorization server's frame: configuration, dispatch by path, the discovery documents
 * (RFC 9728 protected resource metadata in every variant clients probe, RFC 8414 metadata,
 * JWKS), response helpers, scopes, per-IP rate limits and the audit trail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "oauth/html.h"
#include "oauth/jwt.h"
#include "oauth/oauth_int.h"

int64_t oauth_now(void)
{
    return (int64_t)time(NULL);
}

/* ---- responses ---- */

void oresp_header(struct oauth_response *r, const char *name, const char *value)
{
    if (r->headers == NULL)
        r->headers = json_object();
    json_object_set_new(r->headers, name, json_string(value));
}

void oresp_json(struct oauth_response *r, unsigned status, json_t *body)
{
    r->status = status;
    r->content_type = "application/json";
    r->body = json_dumps(body, JSON_COMPACT);
    r->body_len = r->body ? strlen(r->body) : 0;
    json_decref(body);
}

void oresp_error(struct oauth_response *r, unsigned status, const char *error, const char *fmt,
                 ...)
{
    char desc[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(desc, sizeof(desc), fmt, ap);
    va_end(ap);
    log_debug("oauth: %u %s: %s", status, error, desc);
    oresp_json(r, status, json_pack("{s:s, s:s}", "error", error, "error_description", desc));
    oresp_header(r, "Cache-Control", "no-store");
    oresp_header(r, "Pragma", "no-cache");
}

void oresp_html(struct oauth_response *r, unsigned status, char *html)
{
    r->status = status;
    r->content_type = "text/html; charset=utf-8";
    r->body = html;
    r->body_len = html ? strlen(html) : 0;
    /* Pages refuse to be framed and load nothing but inline styles and https/data images. */
    /* No form-action: browsers apply it to the redirect after a form too, and the consent
     * form's answer is a redirect to the application. Referrer same-origin: with no-referrer
     * browsers send "Origin: null" on our own forms, which the Origin check must refuse. */
    oresp_header(r, "Content-Security-Policy",
                 "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
                 "frame-ancestors 'none'; base-uri 'none'");
    oresp_header(r, "X-Frame-Options", "DENY");
    oresp_header(r, "Referrer-Policy", "same-origin");
    oresp_header(r, "Cache-Control", "no-store");
}

void oresp_redirect(struct oauth_response *r, unsigned status, const char *location)
{
    r->status = status;
    r->content_type = NULL;
    r->body = NULL;
    r->body_len = 0;
    oresp_header(r, "Location", location);
    oresp_header(r, "Cache-Control", "no-store");
}

void oresp_error_page(struct oauth_server *os, struct oauth_response *r, unsigned status,
                      const char *title, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_debug("oauth: error page %u: %s: %s", status, title, msg);
    oresp_html(r, status, html_error_page(os->server_name, title, msg));
}

void oauth_response_clear(struct oauth_response *resp)
{
    free(resp->body);
    json_decref(resp->headers);
    memset(resp, 0, sizeof(*resp));
}

void oauth_principal_clear(struct oauth_principal *p)
{
    free(p->subject);
    free(p->username);
    free(p->client_id);
    free(p->scope);
    free(p->grant_id);
    memset(p, 0, sizeof(*p));
}

/* ---- scopes ---- */

static bool word_in(const char *list, const char *w, size_t wl)
{
    const char *p = list;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n == wl && n > 0 && strncmp(p, w, n) == 0)
            return true;
        p += n;
    }
    return false;
}

char *oauth_scope_normalize(const struct oauth_server *os, const char *requested)
{
    struct buf b;
    buf_init(&b, 4096);
    const char *p = requested ? requested : "";
    int r = 0;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = strcspn(p, " \t");
        if (n == 0)
            break;
        bool offered = word_in(os->scopes, p, n) || (n == 8 && strncmp(p, "claudeai", 8) == 0);
        bool dup = b.len > 0 && word_in(b.data, p, n);
        if (!offered)
            log_debug("oauth: scope '%.*s' is not offered here; dropped", (int)(n > 64 ? 64 : n),
                      p);
        else if (!dup)
            r = r ? r : buf_printf(&b, "%s%.*s", b.len ? " " : "", (int)n, p);
        p += n;
    }
    if (r != 0 || b.len == 0) {
        buf_reset(&b);
        size_t n = strcspn(os->scopes, " ");
        r = buf_printf(&b, "%.*s", (int)n, os->scopes);
    }
    (void)r;
    return buf_steal(&b, NULL);
}

bool oauth_scope_subset(const char *a, const char *b)
{
    const char *p = a ? a : "";
    while (*p) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n > 0 && !word_in(b ? b : "", p, n))
            return false;
        p += n;
    }
    return true;
}

bool oauth_scope_has(const struct oauth_server *os, const char *granted, const char *scope)
{
    if (granted == NULL || scope == NULL)
        return false;
    if (word_in(granted, scope, strlen(scope)))
        return true;
    /* "claudeai" is what Claude asks for: it stands for the first offered scope. */
    size_t first = strcspn(os->scopes, " ");
    return word_in(granted, "claudeai", 8) && strlen(scope) == first &&
           strncmp(scope, os->scopes, first) == 0;
}

/* ---- rate limits: per (bucket, ip) token buckets in a small fixed table ---- */

#define RL_SLOTS 4096

struct rl_slot {
    char key[80];
    double tokens;
    int64_t last_ms;
};

struct ratelimit {
    pthread_mutex_t mu;
    struct rl_slot slots[RL_SLOTS];
};

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

bool oauth_ratelimit(struct oauth_server *os, const char *bucket, const char *ip,
                     unsigned *retry_after)
{
    /* Burst and refill per minute: generous for people, tight for scripts. */
    double burst = 20, per_min = 60;
    if (strcmp(bucket, "login") == 0)
        burst = 10, per_min = 20;
    else if (strcmp(bucket, "device") == 0) /* user codes: few bits, guessing must be slow */
        burst = 10, per_min = 5;
    else if (strcmp(bucket, "register") == 0)
        burst = 10, per_min = 10;
    char key[80];
    snprintf(key, sizeof(key), "%s|%s", bucket, ip ? ip : "?");
    size_t h = 5381;
    for (const char *p = key; *p; p++)
        h = h * 33 + (unsigned char)*p;
    struct ratelimit *rl = os->rl;
    pthread_mutex_lock(&rl->mu);
    struct rl_slot *s = &rl->slots[h % RL_SLOTS];
    int64_t now = now_ms();
    if (strcmp(s->key, key) != 0) {
        /* A collision evicts the other address: limits stay bounded in memory. */
        snprintf(s->key, sizeof(s->key), "%s", key);
        s->tokens = burst;
        s->last_ms = now;
    }
    s->tokens += (double)(now - s->last_ms) * per_min / 60000.0;
    if (s->tokens > burst)
        s->tokens = burst;
    s->last_ms = now;
    bool ok = s->tokens >= 1.0;
    if (ok)
        s->tokens -= 1.0;
    else
        *retry_after = (unsigned)((1.0 - s->tokens) * 60.0 / per_min) + 1;
    pthread_mutex_unlock(&rl->mu);
    if (!ok)
        log_info("oauth: rate limit on %s for %s (retry after %u s)", bucket, ip, *retry_after);
    return ok;
}

/* ---- audit ---- */

#define AUDIT_QUEUE_MAX 100000
#define AUDIT_BATCH 256

void oauth_audit(struct oauth_server *os, const char *event, const char *user,
                 const char *client, const char *ip, json_t *detail)
{
    json_t *e = json_pack("{s:I, s:s}", "ts", (json_int_t)oauth_now(), "event", event);
    if (user != NULL)
        json_object_set_new(e, "user", json_string(user));
    if (client != NULL)
        json_object_set_new(e, "client", json_string(client));
    if (ip != NULL)
        json_object_set_new(e, "ip", json_string(ip));
    if (detail != NULL)
        json_object_set_new(e, "detail", detail);
    pthread_mutex_lock(&os->audit_mu);
    if (json_array_size(os->audit_queue) >= AUDIT_QUEUE_MAX) {
        os->audit_dropped++; /* the database is not keeping up; counted, logged by the writer */
        json_decref(e);
    } else {
        json_array_append_new(os->audit_queue, e);
        if (json_array_size(os->audit_queue) >= AUDIT_BATCH)
            pthread_cond_signal(&os->audit_cv);
    }
    pthread_mutex_unlock(&os->audit_mu);
}

/* Writes what is queued, every 200 ms or every AUDIT_BATCH events, in one transaction; and
 * deletes expired rows (codes, tokens, sessions, device authorizations) at start and every
 * purge_interval, so the database does not grow with every sign-in. */
static void *audit_main(void *arg)
{
    struct oauth_server *os = arg;
    int64_t next_purge = 0;
    pthread_mutex_lock(&os->audit_mu);
    for (;;) {
        if (json_array_size(os->audit_queue) < AUDIT_BATCH && !os->audit_stop) {
            (void)cond_wait_ms(&os->audit_cv, &os->audit_mu, 200);
        }
        json_t *batch = os->audit_queue;
        os->audit_queue = json_array();
        unsigned long dropped = os->audit_dropped;
        os->audit_dropped = 0;
        bool stop = os->audit_stop;
        pthread_mutex_unlock(&os->audit_mu);
        if (dropped > 0)
            log_warn("oauth: %lu audit events dropped (the database is too slow)", dropped);
        if (store_audit_add_batch(os->st, batch) != 0)
            log_warn("oauth: could not record %zu audit events", json_array_size(batch));
        json_decref(batch);
        int64_t now = oauth_now();
        if (!stop && now >= next_purge) {
            if (store_purge(os->st, now) != 0)
                log_warn("oauth: could not delete expired rows; trying again in %lld s",
                         (long long)os->cfg.purge_interval);
            next_purge = now + os->cfg.purge_interval;
        }
        pthread_mutex_lock(&os->audit_mu);
        if (stop && json_array_size(os->audit_queue) == 0)
            break;
    }
    pthread_mutex_unlock(&os->audit_mu);
    return NULL;
}

/* ---- keys ---- */

struct jwt_keyset *oauth_keys_acquire(struct oauth_server *os)
{
    /* Another process may have rotated the keys: reload now and then. */
    int64_t now = oauth_now();
    pthread_rwlock_rdlock(&os->ks_lock);
    if (now - os->ks_loaded_at < 60)
        return os->ks;
    pthread_rwlock_unlock(&os->ks_lock);
    pthread_rwlock_wrlock(&os->ks_lock);
    if (now - os->ks_loaded_at >= 60) {
        struct jwt_keyset *ks = NULL;
        if (jwt_keyset_load(os->st, os->master, now, os->cfg.access_ttl, &ks) == 0) {
            jwt_keyset_free(os->ks);
            os->ks = ks;
        }
        os->ks_loaded_at = now;
    }
    pthread_rwlock_unlock(&os->ks_lock);
    pthread_rwlock_rdlock(&os->ks_lock);
    return os->ks;
}

void oauth_keys_refresh(struct oauth_server *os)
{
    pthread_rwlock_wrlock(&os->ks_lock);
    int64_t now = oauth_now();
    if (now - os->ks_loaded_at >= 5)
        os->ks_loaded_at = now - 60; /* the next acquire reloads */
    pthread_rwlock_unlock(&os->ks_lock);
}

void oauth_keys_release(struct oauth_server *os)
{
    pthread_rwlock_unlock(&os->ks_lock);
}

/* ---- the server ---- */

static char *strip_slash(const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        n--;
    return xstrndup(s, n);
}

int oauth_server_new(const struct oauth_config *cfg, struct store *st, struct oauth_server **out)
{
    struct oauth_server *os = xcalloc(1, sizeof(*os));
    int r = ERR_INVALID;
    *out = NULL;
    os->cfg = *cfg;
    os->st = st;
    if (cfg->issuer == NULL || strncmp(cfg->issuer, "http", 4) != 0) {
        log_error("the issuer must be an http(s) URL");
        goto out;
    }
    os->issuer = strip_slash(cfg->issuer);
    const char *mp = cfg->mcp_path ? cfg->mcp_path : "/mcp";
    os->resource = xasprintf("%s%s", os->issuer, mp);
    os->prm_url = xasprintf("%s/.well-known/oauth-protected-resource%s", os->issuer, mp);
    os->server_name = xstrdup(cfg->server_name ? cfg->server_name : "mcpgate");
    os->scopes = xstrdup(cfg->scopes && cfg->scopes[0] ? cfg->scopes : "mcp");
    if (os->cfg.access_ttl <= 0)
        os->cfg.access_ttl = 3600;
    if (os->cfg.refresh_ttl <= 0)
        os->cfg.refresh_ttl = 30 * 86400;
    if (os->cfg.code_ttl <= 0)
        os->cfg.code_ttl = 60;
    if (os->cfg.device_ttl <= 0)
        os->cfg.device_ttl = 600;
    if (os->cfg.device_interval <= 0)
        os->cfg.device_interval = 5;
    if (os->cfg.purge_interval <= 0)
        os->cfg.purge_interval = 3600;
    if (os->cfg.revocation_bound == 0)
        os->cfg.revocation_bound = 5;
    os->cfg.issuer = os->issuer;
    os->cfg.server_name = os->server_name;
    os->cfg.scopes = os->scopes;
    os->cfg.master_key_path = NULL; /* borrowed; not kept */
    pthread_rwlock_init(&os->ks_lock, NULL);
    os->rl = xcalloc(1, sizeof(*os->rl));
    pthread_mutex_init(&os->rl->mu, NULL);
    os->cache = rs_cache_new();
    pthread_mutex_init(&os->audit_mu, NULL);
    pthread_cond_init(&os->audit_cv, NULL);
    os->audit_queue = json_array();
    if (pthread_create(&os->audit_thread, NULL, audit_main, os) == 0)
        os->audit_started = true;
    if ((r = jwt_master_key_load(cfg->master_key_path, os->master)) != 0) {
        log_error("cannot load the master key (%s)", cfg->master_key_path);
        goto out;
    }
    if ((r = crypto_hmac_sha256(os->master, sizeof(os->master), "mcpgate-pages-v1", 16,
                                os->page_key)) != 0)
        goto out;
    if ((r = jwt_keyset_load(st, os->master, oauth_now(), os->cfg.access_ttl, &os->ks)) != 0) {
        log_error("cannot load the signing keys (wrong master key?)");
        goto out;
    }
    os->ks_loaded_at = oauth_now();
    log_info("authorization server: issuer %s, resource %s, scopes '%s'", os->issuer,
             os->resource, os->scopes);
    *out = os;
    os = NULL;
    r = 0;
out:
    oauth_server_free(os);
    return r;
}

void oauth_server_free(struct oauth_server *os)
{
    if (os == NULL)
        return;
    if (os->audit_started) { /* flush what is queued */
        pthread_mutex_lock(&os->audit_mu);
        os->audit_stop = true;
        pthread_cond_signal(&os->audit_cv);
        pthread_mutex_unlock(&os->audit_mu);
        pthread_join(os->audit_thread, NULL);
    }
    json_decref(os->audit_queue);
    if (os->audit_queue != NULL || os->audit_started) {
        pthread_cond_destroy(&os->audit_cv);
        pthread_mutex_destroy(&os->audit_mu);
    }
    jwt_keyset_free(os->ks);
    rs_cache_free(os->cache);
    if (os->rl != NULL) {
        pthread_mutex_destroy(&os->rl->mu);
        free(os->rl);
    }
    pthread_rwlock_destroy(&os->ks_lock);
    crypto_wipe(os->master, sizeof(os->master));
    crypto_wipe(os->page_key, sizeof(os->page_key));
    free(os->issuer);
    free(os->resource);
    free(os->prm_url);
    free(os->server_name);
    free(os->scopes);
    free(os);
}

const char *oauth_resource(const struct oauth_server *os)
{
    return os->resource;
}

char *oauth_default_scope(const struct oauth_server *os)
{
    return xstrndup(os->scopes, strcspn(os->scopes, " "));
}

/* ---- discovery documents ---- */

static json_t *scopes_array(const struct oauth_server *os)
{
    json_t *a = json_array();
    const char *p = os->scopes;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n > 0) /* never an empty entry (seed 004) */
            json_array_append_new(a, json_stringn(p, n));
        p += n;
    }
    return a;
}

static json_t *prm_document(const struct oauth_server *os)
{
    return json_pack("{s:s, s:[s], s:o, s:[s], s:s}", "resource", os->resource,
                     "authorization_servers", os->issuer, "scopes_supported", scopes_array(os),
                     "bearer_methods_supported", "header", "resource_name", os->server_name);
}

static json_t *as_metadata(const struct oauth_server *os)
{
    json_t *m = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:[s], s:[s], s:[s,s,s,s], s:[s,s,s], s:[s],"
        " s:[s,s], s:[s,s], s:b, s:b}",
        "issuer", os->issuer, "authorization_endpoint", "", "token_endpoint", "",
        "jwks_uri", "", "revocation_endpoint", "", "introspection_endpoint", "",
        "service_documentation", "https://modelcontextprotocol.io", "scopes_supported",
        scopes_array(os), "response_types_supported", "code", "response_modes_supported", "query",
        "grant_types_supported", "authorization_code", "refresh_token", "client_credentials",
        OAUTH_GRANT_DEVICE,
        "token_endpoint_auth_methods_supported", "none", "client_secret_basic",
        "client_secret_post", "code_challenge_methods_supported", "S256",
        "revocation_endpoint_auth_methods_supported", "client_secret_basic", "client_secret_post",
        "introspection_endpoint_auth_methods_supported", "client_secret_basic",
        "client_secret_post", "authorization_response_iss_parameter_supported", 1,
        "client_id_metadata_document_supported", os->cfg.cimd);
    char *u;
#define ENDPOINT(key, path)                                                                        \
    u = xasprintf("%s%s", os->issuer, path);                                                       \
    json_object_set_new(m, key, json_string(u));                                                   \
    free(u)
    ENDPOINT("authorization_endpoint", "/authorize");
    ENDPOINT("token_endpoint", "/token");
    ENDPOINT("jwks_uri", "/jwks");
    ENDPOINT("revocation_endpoint", "/revoke");
    ENDPOINT("introspection_endpoint", "/introspect");
    ENDPOINT("device_authorization_endpoint", "/device_authorization");
    if (os->cfg.dcr) {
        ENDPOINT("registration_endpoint", "/register");
    }
#undef ENDPOINT
    return m;
}

/* The paths clients probe for discovery (seed 004: serve identical documents at each). */
static bool is_prm_path(const struct oauth_server *os, const char *path)
{
    const char *mp = os->cfg.mcp_path ? os->cfg.mcp_path : "/mcp";
    char a[128], b[128];
    snprintf(a, sizeof(a), "/.well-known/oauth-protected-resource%s", mp);
    snprintf(b, sizeof(b), "%s/.well-known/oauth-protected-resource", mp);
    return strcmp(path, "/.well-known/oauth-protected-resource") == 0 || strcmp(path, a) == 0 ||
           strcmp(path, b) == 0;
}

static bool is_asm_path(const struct oauth_server *os, const char *path)
{
    const char *mp = os->cfg.mcp_path ? os->cfg.mcp_path : "/mcp";
    char a[128], b[128];
    snprintf(a, sizeof(a), "/.well-known/oauth-authorization-server%s", mp);
    snprintf(b, sizeof(b), "%s/.well-known/oauth-authorization-server", mp);
    return strcmp(path, "/.well-known/oauth-authorization-server") == 0 || strcmp(path, a) == 0 ||
           strcmp(path, b) == 0;
}

static const char *const routes[] = {"/authorize", "/authorize/consent", "/token", "/revoke",
                                     "/introspect", "/jwks", "/login", "/logout", "/apps",
                                     "/apps/revoke", "/register", "/device_authorization",
                                     "/device"};

bool oauth_route(const struct oauth_server *os, const char *path)
{
    if (is_prm_path(os, path) || is_asm_path(os, path) || strncmp(path, "/register/", 10) == 0)
        return true;
    for (size_t i = 0; i < sizeof(routes) / sizeof(*routes); i++) {
        if (strcmp(path, routes[i]) == 0)
            return true;
    }
    return false;
}

static void discovery(struct oauth_response *resp, json_t *doc)
{
    oresp_json(resp, 200, doc);
    /* Public documents: cacheable, readable from browsers. */
    oresp_header(resp, "Cache-Control", "public, max-age=300");
    oresp_header(resp, "Access-Control-Allow-Origin", "*");
}

void oauth_handle(struct oauth_server *os, const struct oauth_request *req,
                  struct oauth_response *resp)
{
    memset(resp, 0, sizeof(*resp));
    const char *p = req->path;
    bool get = strcmp(req->method, "GET") == 0, post = strcmp(req->method, "POST") == 0;
    if (is_prm_path(os, p) || is_asm_path(os, p) || strcmp(p, "/jwks") == 0) {
        if (!get) {
            oresp_error(resp, 405, "invalid_request", "use GET");
            oresp_header(resp, "Allow", "GET");
            return;
        }
        if (is_prm_path(os, p)) {
            discovery(resp, prm_document(os));
        } else if (is_asm_path(os, p)) {
            discovery(resp, as_metadata(os));
        } else {
            struct jwt_keyset *ks = oauth_keys_acquire(os);
            json_t *jwks = jwt_keyset_jwks(ks);
            oauth_keys_release(os);
            discovery(resp, jwks);
        }
        return;
    }
    if (strcmp(p, "/register") == 0 || strncmp(p, "/register/", 10) == 0) {
        oauth_register(os, req, resp);
        return;
    }
    if (strcmp(p, "/authorize") == 0 && (get || post)) {
        oauth_authorize(os, req, resp);
    } else if (strcmp(p, "/authorize/consent") == 0 && post) {
        oauth_consent(os, req, resp);
    } else if (strcmp(p, "/login") == 0 && (get || post)) {
        oauth_login(os, req, resp);
    } else if (strcmp(p, "/logout") == 0 && post) {
        oauth_logout(os, req, resp);
    } else if ((strcmp(p, "/apps") == 0 && get) || (strcmp(p, "/apps/revoke") == 0 && post)) {
        oauth_apps(os, req, resp);
    } else if (strcmp(p, "/token") == 0 && post) {
        oauth_token(os, req, resp);
    } else if (strcmp(p, "/revoke") == 0 && post) {
        oauth_revoke(os, req, resp);
    } else if (strcmp(p, "/introspect") == 0 && post) {
        oauth_introspect(os, req, resp);
    } else if (strcmp(p, "/device_authorization") == 0 && post) {
        oauth_device_authorization(os, req, resp);
    } else if (strcmp(p, "/device") == 0 && (get || post)) {
        oauth_device_page(os, req, resp);
    } else {
        oresp_error(resp, 405, "invalid_request", "%s is not allowed on %s", req->method, p);
        oresp_header(resp, "Allow",
                     strcmp(p, "/authorize") == 0 || strcmp(p, "/login") == 0 ||
                             strcmp(p, "/device") == 0
                         ? "GET, POST"
                     : strcmp(p, "/apps") == 0 ? "GET"
                                               : "POST");
    }
}
