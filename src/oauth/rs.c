/* The resource server's bearer check. A token is verified once (ES256 signature, iss, aud,
 * exp, typ; then its jti and grant against the store for revocation) and cached by the hash of
 * the token, so the next requests cost a hash and a lookup; the cached verdict is re-checked
 * against the store after revocation_bound seconds, which bounds how long a revoked token can
 * still be used. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "oauth/jwt.h"
#include "oauth/oauth_int.h"

#define RS_SLOTS 8192
#define TOKEN_MAX 8192

struct rs_entry {
    unsigned char hash[CRYPTO_SHA256_LEN]; /* of the whole token */
    bool used;
    int64_t checked_at;
    struct oauth_principal p;
};

struct rs_cache {
    pthread_rwlock_t lock;
    struct rs_entry slots[RS_SLOTS];
};

struct rs_cache *rs_cache_new(void)
{
    struct rs_cache *c = xcalloc(1, sizeof(*c));
    pthread_rwlock_init(&c->lock, NULL);
    return c;
}

void rs_cache_free(struct rs_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < RS_SLOTS; i++)
        oauth_principal_clear(&c->slots[i].p);
    pthread_rwlock_destroy(&c->lock);
    free(c);
}

void rs_cache_forget_grant(struct rs_cache *c, const char *grant_id)
{
    pthread_rwlock_wrlock(&c->lock);
    for (size_t i = 0; i < RS_SLOTS; i++) {
        struct rs_entry *e = &c->slots[i];
        if (e->used && e->p.grant_id != NULL && strcmp(e->p.grant_id, grant_id) == 0) {
            oauth_principal_clear(&e->p);
            e->used = false;
        }
    }
    pthread_rwlock_unlock(&c->lock);
}

static char *dup0(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void principal_copy(struct oauth_principal *dst, const struct oauth_principal *src)
{
    dst->subject = dup0(src->subject);
    dst->username = dup0(src->username);
    dst->client_id = dup0(src->client_id);
    dst->scope = dup0(src->scope);
    dst->grant_id = dup0(src->grant_id);
    dst->expires_at = src->expires_at;
}

static size_t slot_of(const unsigned char h[CRYPTO_SHA256_LEN])
{
    size_t v;
    memcpy(&v, h, sizeof(v));
    return v % RS_SLOTS;
}

static void challenge(struct oauth_server *os, struct oauth_response *r, const char *error,
                      const char *desc)
{
    char hdr[1024];
    if (error != NULL)
        snprintf(hdr, sizeof(hdr),
                 "Bearer error=\"%s\", error_description=\"%s\", resource_metadata=\"%s\", "
                 "scope=\"%s\"",
                 error, desc, os->prm_url, os->scopes);
    else
        snprintf(hdr, sizeof(hdr), "Bearer resource_metadata=\"%s\", scope=\"%s\"", os->prm_url,
                 os->scopes);
    json_t *body = json_pack("{s:s, s:s}", "error", error ? error : "invalid_request",
                             "error_description", desc);
    oresp_json(r, 401, body);
    oresp_header(r, "WWW-Authenticate", hdr);
    oresp_header(r, "Cache-Control", "no-store");
}

void oauth_insufficient_scope(struct oauth_server *os, const char *needed,
                              struct oauth_response *r)
{
    char hdr[1024];
    snprintf(hdr, sizeof(hdr),
             "Bearer error=\"insufficient_scope\", scope=\"%s\", resource_metadata=\"%s\", "
             "error_description=\"this request needs the scope %s\"",
             needed, os->prm_url, needed);
    memset(r, 0, sizeof(*r));
    oresp_json(r, 403, json_pack("{s:s, s:s}", "error", "insufficient_scope", "error_description",
                                 "the access token lacks a scope this request needs"));
    oresp_header(r, "WWW-Authenticate", hdr);
}

static bool aud_ok(json_t *aud, const char *resource)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), resource) == 0;
    size_t i;
    json_t *a;
    json_array_foreach(aud, i, a) {
        if (json_is_string(a) && strcmp(json_string_value(a), resource) == 0)
            return true;
    }
    return false;
}

/* Verifies a token from scratch; fills p. Returns NULL or what is wrong. */
static const char *verify(struct oauth_server *os, const char *token, int64_t now,
                          struct oauth_principal *p)
{
    json_t *claims = NULL;
    const char *why = NULL;
    struct jwt_keyset *ks = oauth_keys_acquire(os);
    int r = jwt_verify(ks, token, &claims, &why);
    oauth_keys_release(os);
    if (r != 0 && why != NULL && strcmp(why, "unknown kid") == 0) {
        oauth_keys_refresh(os);
        ks = oauth_keys_acquire(os);
        r = jwt_verify(ks, token, &claims, &why);
        oauth_keys_release(os);
    }
    if (r != 0)
        return why ? why : "the token is not valid";
    const char *err = NULL;
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    json_int_t exp = json_integer_value(json_object_get(claims, "exp"));
    const char *jti = json_string_value(json_object_get(claims, "jti"));
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    if (iss == NULL || strcmp(iss, os->issuer) != 0)
        err = "the token was issued by another server";
    else if (!aud_ok(json_object_get(claims, "aud"), os->resource))
        err = "the token is for another resource (audience)";
    else if (!json_is_integer(json_object_get(claims, "exp")) || exp <= now)
        err = "the token has expired";
    else if (jti == NULL || sub == NULL)
        err = "the token lacks jti or sub";
    if (err == NULL) {
        unsigned char h[CRYPTO_SHA256_LEN];
        crypto_sha256(jti, strlen(jti), h);
        int c = store_access_check(os->st, h);
        if (c == ERR_INVALID)
            err = "the token has been revoked";
        else if (c != 0)
            err = "the token is not known to this server";
        else if (store_access_grant(os->st, h, &p->grant_id) != 0)
            err = "the token's grant is unknown";
    }
    if (err == NULL) {
        p->subject = xstrdup(sub);
        p->username = dup0(json_string_value(json_object_get(claims, "username")));
        p->client_id = dup0(json_string_value(json_object_get(claims, "client_id")));
        p->scope = xstrdup(json_string_value(json_object_get(claims, "scope")) ?: "");
        p->expires_at = exp;
    }
    json_decref(claims);
    return err;
}

int oauth_bearer_check(struct oauth_server *os, const char *authorization,
                       struct oauth_principal *who, struct oauth_response *resp)
{
    memset(who, 0, sizeof(*who));
    memset(resp, 0, sizeof(*resp));
    if (authorization == NULL) {
        log_debug("oauth: request without a token: 401 with the discovery hint");
        challenge(os, resp, NULL, "this MCP server needs an OAuth access token");
        return ERR_INVALID;
    }
    if (strncasecmp(authorization, "Bearer ", 7) != 0) {
        challenge(os, resp, "invalid_request", "use the Bearer scheme");
        return ERR_INVALID;
    }
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    size_t len = strlen(token);
    if (len == 0 || len > TOKEN_MAX) {
        challenge(os, resp, "invalid_token", "the token is empty or too long");
        return ERR_INVALID;
    }
    unsigned char h[CRYPTO_SHA256_LEN];
    crypto_sha256(token, len, h);
    int64_t now = oauth_now();
    size_t slot = slot_of(h);

    pthread_rwlock_rdlock(&os->cache->lock);
    struct rs_entry *e = &os->cache->slots[slot];
    if (e->used && crypto_equal(e->hash, h, sizeof(h)) && e->p.expires_at > now &&
        now - e->checked_at < (int64_t)os->cfg.revocation_bound) {
        principal_copy(who, &e->p);
        pthread_rwlock_unlock(&os->cache->lock);
        return 0;
    }
    pthread_rwlock_unlock(&os->cache->lock);

    const char *err = verify(os, token, now, who);
    if (err != NULL) {
        log_debug("oauth: bearer token refused: %s", err);
        oauth_principal_clear(who);
        challenge(os, resp, "invalid_token", err);
        return ERR_INVALID;
    }
    log_debug("oauth: bearer token accepted: %s via client %s, scope '%s'", who->subject,
              who->client_id ? who->client_id : "?", who->scope);
    pthread_rwlock_wrlock(&os->cache->lock);
    e = &os->cache->slots[slot];
    oauth_principal_clear(&e->p);
    memcpy(e->hash, h, sizeof(h));
    e->used = true;
    e->checked_at = now;
    principal_copy(&e->p, who);
    pthread_rwlock_unlock(&os->cache->lock);
    return 0;
}
