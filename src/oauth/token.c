/* The token endpoint (authorization_code with PKCE, refresh_token with rotation,
 * client_credentials; the device_code grant is in device.c), RFC 7009 revocation and RFC 7662
 * introspection, with client authentication (none, client_secret_basic, client_secret_post).
 * Every failure answers the RFC 6749 error with a description that says exactly what failed,
 * and logs it at debug. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "oauth/form.h"
#include "oauth/jwt.h"
#include "oauth/oauth_int.h"

static const char *fget(json_t *form, const char *key)
{
    return json_string_value(json_object_get(form, key));
}

static void hash_str(const char *s, unsigned char out[STORE_HASH_LEN])
{
    crypto_sha256(s, strlen(s), out);
}

json_t *oauth_form_body(const struct oauth_request *req, struct oauth_response *resp)
{
    if (req->content_type == NULL ||
        strncasecmp(req->content_type, "application/x-www-form-urlencoded", 33) != 0) {
        oresp_error(resp, 400, "invalid_request",
                    "the body must be application/x-www-form-urlencoded");
        return NULL;
    }
    json_t *form = NULL;
    char why[160];
    if (form_parse(req->body ? req->body : "", req->body_len, &form, why, sizeof(why)) != 0) {
        oresp_error(resp, 400, "invalid_request", "%s", why);
        return NULL;
    }
    return form;
}

/* "%XX"-decodes one component of a Basic credential (RFC 6749 2.3.1). */
static char *form_decode(const char *s, size_t n)
{
    char *pair = xasprintf("v=%.*s", (int)n, s);
    json_t *f = NULL;
    char why[64];
    char *out = NULL;
    if (form_parse(pair, strlen(pair), &f, why, sizeof(why)) == 0 &&
        json_is_string(json_object_get(f, "v")))
        out = xstrdup(json_string_value(json_object_get(f, "v")));
    json_decref(f);
    free(pair);
    return out;
}

int oauth_client_authenticate(struct oauth_server *os, const struct oauth_request *req,
                              json_t *form, struct store_client *c, struct oauth_response *resp)
{
    char *basic_id = NULL, *basic_secret = NULL;
    int r = ERR_INVALID;
    memset(c, 0, sizeof(*c));
    bool basic = req->authorization != NULL && strncasecmp(req->authorization, "Basic ", 6) == 0;
    if (basic) {
        const char *b64 = req->authorization + 6;
        unsigned char *raw = NULL;
        size_t rawlen = 0;
        char *colon = NULL;
        if (b64_decode_strict(b64, strlen(b64), &raw, &rawlen) == 0 &&
            (colon = memchr(raw, ':', rawlen)) != NULL) {
            basic_id = form_decode((char *)raw, (size_t)(colon - (char *)raw));
            basic_secret = form_decode(colon + 1, rawlen - (size_t)(colon + 1 - (char *)raw));
        }
        free(raw);
        if (basic_id == NULL || basic_secret == NULL) {
            oresp_error(resp, 401, "invalid_client", "the Basic credentials are malformed");
            oresp_header(resp, "WWW-Authenticate", "Basic realm=\"mcpgate\"");
            goto out;
        }
    }
    const char *form_id = fget(form, "client_id");
    const char *form_secret = fget(form, "client_secret");
    if (basic && form_secret != NULL) {
        oresp_error(resp, 400, "invalid_request",
                    "use one client authentication method, not Basic and client_secret both");
        goto out;
    }
    if (basic && form_id != NULL && strcmp(form_id, basic_id) != 0) {
        oresp_error(resp, 400, "invalid_request", "client_id differs from the Basic credentials");
        goto out;
    }
    const char *id = basic ? basic_id : form_id;
    const char *secret = basic ? basic_secret : form_secret;
    if (id == NULL) {
        oresp_error(resp, 401, "invalid_client", "client_id is missing");
        goto out;
    }
    char why[200];
    if (oauth_client_lookup(os, id, c, why, sizeof(why)) != 0) {
        /* 401 invalid_client also tells clients like Claude to register again. */
        oresp_error(resp, 401, "invalid_client", "unknown client_id (%s)", why);
        if (basic)
            oresp_header(resp, "WWW-Authenticate", "Basic realm=\"mcpgate\"");
        goto out;
    }
    if (!c->has_secret) {
        if (secret != NULL) {
            oresp_error(resp, 401, "invalid_client",
                        "this client is public (token_endpoint_auth_method none) and has no "
                        "secret");
            goto out;
        }
    } else {
        unsigned char h[STORE_HASH_LEN];
        if (secret == NULL) {
            oresp_error(resp, 401, "invalid_client",
                        "this client must authenticate (client_secret_basic or "
                        "client_secret_post)");
            if (basic)
                oresp_header(resp, "WWW-Authenticate", "Basic realm=\"mcpgate\"");
            goto out;
        }
        hash_str(secret, h);
        if (!crypto_equal(h, c->secret_hash, sizeof(h))) {
            oresp_error(resp, 401, "invalid_client", "the client secret is wrong");
            if (basic)
                oresp_header(resp, "WWW-Authenticate", "Basic realm=\"mcpgate\"");
            goto out;
        }
    }
    log_debug("oauth: client %s authenticated (%s)", c->client_id,
              c->has_secret ? (basic ? "client_secret_basic" : "client_secret_post") : "none");
    r = 0;
out:
    if (basic_secret != NULL)
        crypto_wipe(basic_secret, strlen(basic_secret));
    free(basic_id);
    free(basic_secret);
    if (r != 0)
        store_client_clear(c);
    return r;
}

bool oauth_grant_type_allowed(const struct store_client *c, const char *gt)
{
    json_t *gts = json_object_get(c->metadata, "grant_types");
    if (!json_is_array(gts)) /* RFC 7591 default */
        return strcmp(gt, "authorization_code") == 0;
    size_t i;
    json_t *g;
    json_array_foreach(gts, i, g) {
        if (json_is_string(g) && strcmp(json_string_value(g), gt) == 0)
            return true;
    }
    return false;
}

void oauth_issue(struct oauth_server *os, const struct store_grant *g, const char *scope,
                 const char *username, bool refresh, const struct oauth_request *req,
                 struct oauth_response *resp)
{
    int64_t now = oauth_now();
    char *jti = crypto_random_token(16);
    char sub[96];
    if (g->user_id > 0)
        snprintf(sub, sizeof(sub), "user:%lld", (long long)g->user_id);
    else
        snprintf(sub, sizeof(sub), "client:%.80s", g->client_id);
    json_t *claims = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "iss", os->issuer,
                               "sub", sub, "aud", g->resource, "client_id", g->client_id, "scope",
                               scope, "iat", (json_int_t)now, "exp",
                               (json_int_t)(now + os->cfg.access_ttl), "jti", jti);
    if (username != NULL)
        json_object_set_new(claims, "username", json_string(username));
    char *at = NULL, *rt = NULL;
    unsigned char jh[STORE_HASH_LEN];
    hash_str(jti, jh);
    struct jwt_keyset *ks = oauth_keys_acquire(os);
    int r = jwt_sign(ks, claims, &at);
    oauth_keys_release(os);
    json_decref(claims);
    if (r != 0 || store_access_put(os->st, jh, g->grant_id, now + os->cfg.access_ttl) != 0) {
        oresp_error(resp, 500, "server_error", "could not issue the access token");
        goto out;
    }
    if (refresh) {
        rt = crypto_random_token(32);
        struct store_refresh rec = {.grant_id = g->grant_id, .created_at = now,
                                    .expires_at = now + os->cfg.refresh_ttl};
        hash_str(rt, rec.hash);
        if (store_refresh_put(os->st, &rec) != 0) {
            oresp_error(resp, 500, "server_error", "could not issue the refresh token");
            goto out;
        }
    }
    json_t *body = json_pack("{s:s, s:s, s:I, s:s}", "access_token", at, "token_type", "Bearer",
                             "expires_in", (json_int_t)os->cfg.access_ttl, "scope", scope);
    if (rt != NULL)
        json_object_set_new(body, "refresh_token", json_string(rt));
    oresp_json(resp, 200, body);
    oresp_header(resp, "Cache-Control", "no-store");
    oresp_header(resp, "Pragma", "no-cache");
    oauth_audit(os, "token_issued", username, g->client_id, req->client_ip,
                json_pack("{s:s, s:s, s:b}", "grant", g->grant_id, "scope", scope, "refresh",
                          rt != NULL));
    log_debug("oauth: tokens issued to client %s for %s, scope '%s'%s", g->client_id, sub, scope,
              rt ? " (with refresh token)" : "");
out:
    if (rt != NULL)
        crypto_wipe(rt, strlen(rt));
    if (at != NULL)
        crypto_wipe(at, strlen(at));
    free(at);
    free(rt);
    free(jti);
}

char *oauth_username_of(struct oauth_server *os, int64_t user_id)
{
    struct store_user u = {0};
    char *name = NULL;
    if (user_id > 0 && store_user_get_id(os->st, user_id, &u) == 0)
        name = xstrdup(u.username);
    store_user_clear(&u);
    return name;
}

void oauth_revoke_grant(struct oauth_server *os, const char *grant_id, const char *client,
                        const char *ip, const char *reason)
{
    if (store_grant_revoke(os->st, grant_id, oauth_now()) != 0)
        log_error("oauth: could not revoke grant (%s)", reason);
    rs_cache_forget_grant(os->cache, grant_id);
    oauth_audit(os, "revoked", NULL, client, ip,
                json_pack("{s:s, s:s}", "grant", grant_id, "reason", reason));
    log_info("oauth: grant of client %s revoked: %s", client ? client : "?", reason);
}

static void grant_code(struct oauth_server *os, const struct oauth_request *req, json_t *form,
                       const struct store_client *c, struct oauth_response *resp)
{
    const char *code = fget(form, "code"), *redirect = fget(form, "redirect_uri");
    const char *verifier = fget(form, "code_verifier"), *resource = fget(form, "resource");
    struct store_code sc = {0};
    struct store_grant g = {0};
    char *username = NULL;
    if (code == NULL) {
        oresp_error(resp, 400, "invalid_request", "code is missing");
        return;
    }
    unsigned char h[STORE_HASH_LEN];
    hash_str(code, h);
    int r = store_code_take(os->st, h, &sc);
    if (r == ERR_NOTFOUND) {
        oresp_error(resp, 400, "invalid_grant", "unknown authorization code");
        goto out;
    }
    if (r == ERR_EXISTS) {
        /* A replayed code: someone else may hold it; end everything it produced. */
        oauth_revoke_grant(os, sc.grant_id, c->client_id, req->client_ip,
                           "authorization code replay");
        oresp_error(resp, 400, "invalid_grant",
                    "the authorization code was already used; the tokens issued from it have "
                    "been revoked");
        goto out;
    }
    if (r != 0) {
        oresp_error(resp, 500, "server_error", "could not read the authorization code");
        goto out;
    }
    if (strcmp(sc.client_id, c->client_id) != 0) {
        oresp_error(resp, 400, "invalid_grant", "the authorization code was issued to another "
                                                "client");
        goto out;
    }
    if (sc.expires_at <= oauth_now()) {
        oresp_error(resp, 400, "invalid_grant", "the authorization code has expired (it lives %lld "
                                                "s)",
                    (long long)os->cfg.code_ttl);
        goto out;
    }
    /* RFC 6749 4.1.3: required, and identical, when the authorization request had it. */
    bool was_sent = sc.redirect_uri[0] != '\0';
    if (was_sent ? redirect == NULL || strcmp(redirect, sc.redirect_uri) != 0
                 : redirect != NULL && !oauth_redirect_uri_allowed(c, redirect)) {
        oresp_error(resp, 400, "invalid_grant",
                    redirect ? "redirect_uri differs from the one in the authorization request"
                             : "redirect_uri is missing (it was in the authorization request)");
        goto out;
    }
    if (verifier == NULL) {
        oresp_error(resp, 400, "invalid_grant", "code_verifier is missing (PKCE is required)");
        goto out;
    }
    if (!pkce_verify(verifier, sc.code_challenge)) {
        oresp_error(resp, 400, "invalid_grant",
                    "code_verifier does not match the code_challenge (S256), or is not 43-128 "
                    "characters of A-Z a-z 0-9 - . _ ~");
        goto out;
    }
    if (resource != NULL && strcmp(resource, sc.resource) != 0) {
        oresp_error(resp, 400, "invalid_target",
                    "resource differs from the one in the authorization request");
        goto out;
    }
    if (store_grant_get(os->st, sc.grant_id, &g) != 0 || g.revoked_at != 0) {
        oresp_error(resp, 400, "invalid_grant", "the authorization was revoked");
        goto out;
    }
    username = oauth_username_of(os, g.user_id);
    oauth_issue(os, &g, g.scope, username, oauth_grant_type_allowed(c, "refresh_token"), req, resp);
out:
    free(username);
    store_code_clear(&sc);
    store_grant_clear(&g);
}

static void grant_refresh(struct oauth_server *os, const struct oauth_request *req, json_t *form,
                          const struct store_client *c, struct oauth_response *resp)
{
    const char *rt = fget(form, "refresh_token"), *scope = fget(form, "scope");
    const char *resource = fget(form, "resource");
    struct store_refresh old = {0}, cur = {0};
    struct store_grant g = {0};
    char *want = NULL, *username = NULL, *next = NULL;
    int64_t now = oauth_now();
    if (rt == NULL) {
        oresp_error(resp, 400, "invalid_request", "refresh_token is missing");
        return;
    }
    if (!oauth_grant_type_allowed(c, "refresh_token")) {
        oresp_error(resp, 400, "unauthorized_client",
                    "this client did not register the refresh_token grant");
        return;
    }
    unsigned char h[STORE_HASH_LEN];
    hash_str(rt, h);
    if (store_refresh_get(os->st, h, &cur) != 0) {
        oresp_error(resp, 400, "invalid_grant", "unknown refresh token");
        goto out;
    }
    if (store_grant_get(os->st, cur.grant_id, &g) != 0 || g.revoked_at != 0) {
        oresp_error(resp, 400, "invalid_grant", "the grant of this refresh token was revoked; "
                                                "sign in again");
        goto out;
    }
    if (strcmp(g.client_id, c->client_id) != 0) {
        oresp_error(resp, 400, "invalid_grant", "the refresh token was issued to another client");
        goto out;
    }
    if (cur.expires_at <= now) {
        oresp_error(resp, 400, "invalid_grant", "the refresh token has expired; sign in again");
        goto out;
    }
    if (resource != NULL && strcmp(resource, g.resource) != 0) {
        oresp_error(resp, 400, "invalid_target", "resource differs from the grant's");
        goto out;
    }
    want = scope ? oauth_scope_normalize(os, scope) : xstrdup(g.scope);
    if (!oauth_scope_subset(want, g.scope)) {
        oresp_error(resp, 400, "invalid_scope",
                    "a refresh cannot widen the scope: '%s' was not all granted (granted: '%s')",
                    want, g.scope);
        goto out;
    }
    next = crypto_random_token(32);
    struct store_refresh nrec = {.grant_id = g.grant_id, .created_at = now,
                                 .expires_at = now + os->cfg.refresh_ttl};
    hash_str(next, nrec.hash);
    int r = store_refresh_rotate(os->st, h, &nrec, now, &old);
    if (r == ERR_EXISTS) {
        if (os->cfg.refresh_grace > 0 && old.rotated_at + os->cfg.refresh_grace >= now) {
            /* A retry that lost the previous answer: refuse, but spare the grant. */
            oresp_error(resp, 400, "invalid_grant",
                        "this refresh token was just rotated; use the newer one");
        } else {
            oauth_revoke_grant(os, g.grant_id, c->client_id, req->client_ip, "refresh token reuse");
            oresp_error(resp, 400, "invalid_grant",
                        "the refresh token was already used; the grant has been revoked (sign in "
                        "again)");
        }
        goto out;
    }
    if (r != 0) {
        oresp_error(resp, 500, "server_error", "could not rotate the refresh token");
        goto out;
    }
    /* The new refresh token is in the store; oauth_issue() adds another only when asked. */
    username = oauth_username_of(os, g.user_id);
    struct oauth_response tmp = {0};
    oauth_issue(os, &g, want, username, false, req, &tmp);
    if (tmp.status == 200) {
        json_t *body = json_loadb(tmp.body, tmp.body_len, 0, NULL);
        json_object_set_new(body, "refresh_token", json_string(next));
        oauth_response_clear(&tmp);
        oresp_json(resp, 200, body);
        oresp_header(resp, "Cache-Control", "no-store");
        oresp_header(resp, "Pragma", "no-cache");
        oauth_audit(os, "refreshed", username, c->client_id, req->client_ip,
                    json_pack("{s:s}", "grant", g.grant_id));
    } else {
        *resp = tmp;
    }
out:
    if (next != NULL)
        crypto_wipe(next, strlen(next));
    free(next);
    free(want);
    free(username);
    store_refresh_clear(&old);
    store_refresh_clear(&cur);
    store_grant_clear(&g);
}

static void grant_client_credentials(struct oauth_server *os, const struct oauth_request *req,
                                     json_t *form, const struct store_client *c,
                                     struct oauth_response *resp)
{
    const char *resource = fget(form, "resource");
    if (!c->has_secret || !oauth_grant_type_allowed(c, "client_credentials") ||
        c->kind != CLIENT_STATIC) {
        oresp_error(resp, 400, "unauthorized_client",
                    "client_credentials is for confidential clients an administrator registered "
                    "with that grant");
        return;
    }
    if (resource != NULL && strcmp(resource, os->resource) != 0) {
        oresp_error(resp, 400, "invalid_target", "resource must be %s", os->resource);
        return;
    }
    char *scope = oauth_scope_normalize(os, fget(form, "scope"));
    char *gid = crypto_random_token(16);
    struct store_grant g = {.grant_id = gid, .user_id = 0, .client_id = c->client_id,
                            .scope = scope, .resource = os->resource,
                            .created_at = oauth_now()};
    if (store_grant_put(os->st, &g) != 0)
        oresp_error(resp, 500, "server_error", "could not record the grant");
    else
        oauth_issue(os, &g, scope, NULL, false, req, resp);
    free(scope);
    free(gid);
}

bool oauth_limited(struct oauth_server *os, const char *bucket, const struct oauth_request *req,
                   struct oauth_response *resp)
{
    unsigned retry;
    if (oauth_ratelimit(os, bucket, req->client_ip, &retry))
        return false;
    oresp_error(resp, 429, "temporarily_unavailable", "too many requests; retry in %u s", retry);
    char ra[16];
    snprintf(ra, sizeof(ra), "%u", retry);
    oresp_header(resp, "Retry-After", ra);
    return true;
}

void oauth_token(struct oauth_server *os, const struct oauth_request *req,
                 struct oauth_response *resp)
{
    if (oauth_limited(os, "token", req, resp))
        return;
    json_t *form = oauth_form_body(req, resp);
    if (form == NULL)
        return;
    struct store_client c = {0};
    const char *gt = fget(form, "grant_type");
    if (gt == NULL) {
        oresp_error(resp, 400, "invalid_request", "grant_type is missing");
        goto out;
    }
    if (strcmp(gt, "authorization_code") != 0 && strcmp(gt, "refresh_token") != 0 &&
        strcmp(gt, "client_credentials") != 0 && strcmp(gt, OAUTH_GRANT_DEVICE) != 0) {
        oresp_error(resp, 400, "unsupported_grant_type",
                    "grant_type '%.60s' is not supported (authorization_code, refresh_token, "
                    "client_credentials, " OAUTH_GRANT_DEVICE ")",
                    gt);
        goto out;
    }
    if (oauth_client_authenticate(os, req, form, &c, resp) != 0)
        goto out;
    if (strcmp(gt, "authorization_code") == 0)
        grant_code(os, req, form, &c, resp);
    else if (strcmp(gt, "refresh_token") == 0)
        grant_refresh(os, req, form, &c, resp);
    else if (strcmp(gt, OAUTH_GRANT_DEVICE) == 0)
        oauth_device_token(os, req, form, &c, resp);
    else
        grant_client_credentials(os, req, form, &c, resp);
out:
    store_client_clear(&c);
    json_decref(form);
}

/* ---- revocation and introspection ---- */

/* Reads an access token's jti after verifying it (any expiry). NULL if not ours. */
static char *access_jti(struct oauth_server *os, const char *token, json_t **claims_out)
{
    json_t *claims = NULL;
    const char *why;
    struct jwt_keyset *ks = oauth_keys_acquire(os);
    int r = jwt_verify(ks, token, &claims, &why);
    oauth_keys_release(os);
    const char *jti = r == 0 ? json_string_value(json_object_get(claims, "jti")) : NULL;
    char *out = jti ? xstrdup(jti) : NULL;
    if (claims_out != NULL && out != NULL)
        *claims_out = claims;
    else
        json_decref(claims);
    return out;
}

void oauth_revoke(struct oauth_server *os, const struct oauth_request *req,
                  struct oauth_response *resp)
{
    if (oauth_limited(os, "token", req, resp)) /* it checks client secrets too */
        return;
    json_t *form = oauth_form_body(req, resp);
    if (form == NULL)
        return;
    struct store_client c = {0};
    struct store_refresh rt = {0};
    struct store_grant g = {0};
    char *jti = NULL, *gid = NULL;
    const char *token = fget(form, "token");
    if (oauth_client_authenticate(os, req, form, &c, resp) != 0)
        goto out;
    if (token == NULL) {
        oresp_error(resp, 400, "invalid_request", "token is missing");
        goto out;
    }
    unsigned char h[STORE_HASH_LEN];
    hash_str(token, h);
    if (store_refresh_get(os->st, h, &rt) == 0) {
        /* A refresh token: its whole grant ends (RFC 7009 2.1). */
        if (store_grant_get(os->st, rt.grant_id, &g) == 0 && strcmp(g.client_id, c.client_id) == 0)
            oauth_revoke_grant(os, g.grant_id, c.client_id, req->client_ip,
                               "revoked by the client");
    } else if ((jti = access_jti(os, token, NULL)) != NULL) {
        unsigned char jh[STORE_HASH_LEN];
        hash_str(jti, jh);
        if (store_access_grant(os->st, jh, &gid) == 0 && store_grant_get(os->st, gid, &g) == 0 &&
            strcmp(g.client_id, c.client_id) == 0) {
            if (store_access_revoke(os->st, jh, oauth_now()) != 0)
                log_error("oauth: could not revoke an access token");
            rs_cache_forget_grant(os->cache, gid);
            oauth_audit(os, "revoked", NULL, c.client_id, req->client_ip,
                        json_pack("{s:s, s:s}", "grant", gid, "reason", "access token revoked"));
        }
    }
    /* RFC 7009: 200 whether or not the token was known. */
    resp->status = 200;
    resp->content_type = "application/json";
    resp->body = xstrdup("{}");
    resp->body_len = 2;
    oresp_header(resp, "Cache-Control", "no-store");
out:
    free(jti);
    free(gid);
    store_client_clear(&c);
    store_refresh_clear(&rt);
    store_grant_clear(&g);
    json_decref(form);
}

void oauth_introspect(struct oauth_server *os, const struct oauth_request *req,
                      struct oauth_response *resp)
{
    if (oauth_limited(os, "introspect", req, resp))
        return;
    json_t *form = oauth_form_body(req, resp);
    if (form == NULL)
        return;
    struct store_client c = {0};
    json_t *claims = NULL;
    char *jti = NULL;
    const char *token = fget(form, "token");
    if (oauth_client_authenticate(os, req, form, &c, resp) != 0)
        goto out;
    if (!c.has_secret) {
        oresp_error(resp, 401, "invalid_client", "introspection is for confidential clients");
        goto out;
    }
    if (token == NULL) {
        oresp_error(resp, 400, "invalid_request", "token is missing");
        goto out;
    }
    json_t *body = json_pack("{s:b}", "active", 0);
    if ((jti = access_jti(os, token, &claims)) != NULL) {
        unsigned char jh[STORE_HASH_LEN];
        hash_str(jti, jh);
        json_int_t exp = json_integer_value(json_object_get(claims, "exp"));
        if (store_access_check(os->st, jh) == 0 && exp > oauth_now()) {
            json_decref(body);
            body = json_pack("{s:b, s:s}", "active", 1, "token_type", "Bearer");
            static const char *const copy[] = {"scope", "client_id", "username", "sub", "aud",
                                               "iss",   "exp",       "iat",      "jti"};
            for (size_t i = 0; i < sizeof(copy) / sizeof(*copy); i++) {
                json_t *v = json_object_get(claims, copy[i]);
                if (v != NULL)
                    json_object_set(body, copy[i], v);
            }
        }
    }
    oresp_json(resp, 200, body);
    oresp_header(resp, "Cache-Control", "no-store");
out:
    free(jti);
    json_decref(claims);
    store_client_clear(&c);
    json_decref(form);
}
