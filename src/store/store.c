/* The storage seam: parses the store URL, opens the backend and dispatches every operation
 * through its table (store_int.h). Records' *_clear() functions live here too, since they
 * belong to no backend. */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "store/store_int.h"

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int store_open(const char *url, struct store **out)
{
    int r = ERR_INTERNAL;
    const struct store_ops *ops = NULL;
    const char *path;
    void *impl = NULL;
    struct store *st = NULL;

    *out = NULL;
    if (url == NULL || *url == '\0') {
        log_error("store: no database URL");
        r = ERR_INVALID;
        goto out;
    }
    if (has_prefix(url, "postgres://") || has_prefix(url, "postgresql://")) {
        /* The URL may carry a password: not logged. */
        log_error("store: the PostgreSQL backend is not built yet; use sqlite:PATH");
        r = ERR_UNSUPPORTED;
        goto out;
    }
    if (has_prefix(url, "sqlite:")) {
        path = url + strlen("sqlite:");
        if (has_prefix(path, "//")) /* sqlite:///abs/path or sqlite://rel/path */
            path += 2;
    } else if (strstr(url, "://") != NULL) {
        log_error("store: unsupported database URL scheme (expected sqlite:PATH)");
        r = ERR_UNSUPPORTED;
        goto out;
    } else {
        path = url;
    }
    if (*path == '\0') {
        log_error("store: empty database path in URL");
        r = ERR_INVALID;
        goto out;
    }
    ops = &store_sqlite_ops;
    if ((r = store_sqlite_open(path, &impl)) != 0)
        goto out;
    st = xcalloc(1, sizeof(*st));
    st->ops = ops;
    st->impl = impl;
    impl = NULL;
    *out = st;
    r = 0;
out:
    if (impl != NULL)
        ops->close(impl);
    return r;
}

void store_close(struct store *st)
{
    if (st == NULL)
        return;
    st->ops->close(st->impl);
    free(st);
}

const char *store_client_kind_name(enum store_client_kind kind)
{
    switch (kind) {
    case CLIENT_STATIC: return "static";
    case CLIENT_DCR: return "dcr";
    case CLIENT_CIMD: return "cimd";
    }
    return "unknown";
}

/* ---- users ---- */

int store_user_add(struct store *st, const char *username, const char *password_hash, int64_t now,
                   int64_t *id)
{
    if (id != NULL)
        *id = 0;
    return st->ops->user_add(st->impl, username, password_hash, now, id);
}

int store_user_get(struct store *st, const char *username, struct store_user *out)
{
    memset(out, 0, sizeof(*out));
    return st->ops->user_get(st->impl, username, out);
}

int store_user_get_id(struct store *st, int64_t id, struct store_user *out)
{
    memset(out, 0, sizeof(*out));
    return st->ops->user_get_id(st->impl, id, out);
}

int store_user_list(struct store *st, json_t **out)
{
    *out = NULL;
    return st->ops->user_list(st->impl, out);
}

int store_user_count(struct store *st, int64_t *n)
{
    *n = 0;
    return st->ops->user_count(st->impl, n);
}

int store_user_remove(struct store *st, const char *username)
{
    return st->ops->user_remove(st->impl, username);
}

int store_user_set_password(struct store *st, const char *username, const char *password_hash)
{
    return st->ops->user_set_password(st->impl, username, password_hash);
}

int store_user_login_result(struct store *st, int64_t id, bool ok, int64_t locked_until)
{
    return st->ops->user_login_result(st->impl, id, ok, locked_until);
}

void store_user_clear(struct store_user *u)
{
    if (u == NULL)
        return;
    free(u->username);
    free(u->password_hash);
    memset(u, 0, sizeof(*u));
}

/* ---- clients ---- */

int store_client_put(struct store *st, const struct store_client *c)
{
    return st->ops->client_put(st->impl, c);
}

int store_client_get(struct store *st, const char *client_id, struct store_client *out)
{
    memset(out, 0, sizeof(*out));
    return st->ops->client_get(st->impl, client_id, out);
}

int store_client_list(struct store *st, json_t **out)
{
    *out = NULL;
    return st->ops->client_list(st->impl, out);
}

int store_client_remove(struct store *st, const char *client_id)
{
    return st->ops->client_remove(st->impl, client_id);
}

int store_client_count(struct store *st, int64_t *n)
{
    *n = 0;
    return st->ops->client_count(st->impl, n);
}

void store_client_clear(struct store_client *c)
{
    if (c == NULL)
        return;
    free(c->client_id);
    json_decref(c->metadata);
    memset(c, 0, sizeof(*c));
}

/* ---- grants, codes, tokens ---- */

int store_grant_put(struct store *st, const struct store_grant *g)
{
    return st->ops->grant_put(st->impl, g);
}

int store_grant_get(struct store *st, const char *grant_id, struct store_grant *out)
{
    memset(out, 0, sizeof(*out));
    return st->ops->grant_get(st->impl, grant_id, out);
}

int store_grant_revoke(struct store *st, const char *grant_id, int64_t now)
{
    return st->ops->grant_revoke(st->impl, grant_id, now);
}

int store_grants_of_user(struct store *st, int64_t user_id, json_t **out)
{
    *out = NULL;
    return st->ops->grants_of_user(st->impl, user_id, out);
}

void store_grant_clear(struct store_grant *g)
{
    if (g == NULL)
        return;
    free(g->grant_id);
    free(g->client_id);
    free(g->scope);
    free(g->resource);
    memset(g, 0, sizeof(*g));
}

int store_code_put(struct store *st, const struct store_code *c)
{
    return st->ops->code_put(st->impl, c);
}

int store_code_take(struct store *st, const unsigned char hash[STORE_HASH_LEN],
                    struct store_code *out)
{
    memset(out, 0, sizeof(*out));
    return st->ops->code_take(st->impl, hash, out);
}

void store_code_clear(struct store_code *c)
{
    if (c == NULL)
        return;
    free(c->grant_id);
    free(c->client_id);
    free(c->redirect_uri);
    free(c->code_challenge);
    free(c->scope);
    free(c->resource);
    memset(c, 0, sizeof(*c));
}

int store_refresh_put(struct store *st, const struct store_refresh *r)
{
    return st->ops->refresh_put(st->impl, r);
}

int store_refresh_rotate(struct store *st, const unsigned char old[STORE_HASH_LEN],
                         const struct store_refresh *next, int64_t now,
                         struct store_refresh *old_out)
{
    memset(old_out, 0, sizeof(*old_out));
    return st->ops->refresh_rotate(st->impl, old, next, now, old_out);
}

int store_refresh_get(struct store *st, const unsigned char hash[STORE_HASH_LEN],
                      struct store_refresh *out)
{
    memset(out, 0, sizeof(*out));
    return st->ops->refresh_get(st->impl, hash, out);
}

void store_refresh_clear(struct store_refresh *r)
{
    if (r == NULL)
        return;
    free(r->grant_id);
    memset(r, 0, sizeof(*r));
}

int store_access_put(struct store *st, const unsigned char jti_hash[STORE_HASH_LEN],
                     const char *grant_id, int64_t expires_at)
{
    return st->ops->access_put(st->impl, jti_hash, grant_id, expires_at);
}

int store_access_check(struct store *st, const unsigned char jti_hash[STORE_HASH_LEN])
{
    return st->ops->access_check(st->impl, jti_hash);
}

int store_access_revoke(struct store *st, const unsigned char jti_hash[STORE_HASH_LEN], int64_t now)
{
    return st->ops->access_revoke(st->impl, jti_hash, now);
}

int store_access_grant(struct store *st, const unsigned char jti_hash[STORE_HASH_LEN],
                       char **grant_id)
{
    *grant_id = NULL;
    return st->ops->access_grant(st->impl, jti_hash, grant_id);
}

/* ---- consent, browser sessions ---- */

int store_consent_put(struct store *st, int64_t user_id, const char *client_id, const char *scope,
                      int64_t now)
{
    return st->ops->consent_put(st->impl, user_id, client_id, scope, now);
}

int store_consent_get(struct store *st, int64_t user_id, const char *client_id, char **scope)
{
    *scope = NULL;
    return st->ops->consent_get(st->impl, user_id, client_id, scope);
}

int store_consent_remove(struct store *st, int64_t user_id, const char *client_id)
{
    return st->ops->consent_remove(st->impl, user_id, client_id);
}

int store_bsession_put(struct store *st, const struct store_browser_session *b)
{
    return st->ops->bsession_put(st->impl, b);
}

int store_bsession_get(struct store *st, const unsigned char hash[STORE_HASH_LEN], int64_t now,
                       struct store_browser_session *out)
{
    memset(out, 0, sizeof(*out));
    return st->ops->bsession_get(st->impl, hash, now, out);
}

int store_bsession_remove(struct store *st, const unsigned char hash[STORE_HASH_LEN])
{
    return st->ops->bsession_remove(st->impl, hash);
}

int store_bsession_device_failure(struct store *st, const unsigned char hash[STORE_HASH_LEN],
                                  int *failures)
{
    *failures = 0;
    return st->ops->bsession_device_failure(st->impl, hash, failures);
}

void store_bsession_clear(struct store_browser_session *b)
{
    if (b == NULL)
        return;
    if (b->csrf != NULL) {
        explicit_bzero(b->csrf, strlen(b->csrf));
        free(b->csrf);
    }
    memset(b, 0, sizeof(*b));
}

/* ---- device authorizations ---- */

int store_device_put(struct store *st, const struct store_device *d)
{
    return st->ops->device_put(st->impl, d);
}

int store_device_get(struct store *st, const unsigned char hash[STORE_HASH_LEN],
                     struct store_device *out)
{
    memset(out, 0, sizeof(*out));
    return st->ops->device_get(st->impl, hash, out);
}

int store_device_get_user(struct store *st, const unsigned char user_hash[STORE_HASH_LEN],
                          struct store_device *out)
{
    memset(out, 0, sizeof(*out));
    return st->ops->device_get_user(st->impl, user_hash, out);
}

int store_device_decide(struct store *st, const unsigned char user_hash[STORE_HASH_LEN],
                        int64_t now, int64_t user_id, const struct store_grant *g)
{
    return st->ops->device_decide(st->impl, user_hash, now, user_id, g);
}

int store_device_poll(struct store *st, const unsigned char hash[STORE_HASH_LEN], int64_t now,
                      int64_t step, struct store_device *out, bool *slow)
{
    memset(out, 0, sizeof(*out));
    *slow = false;
    return st->ops->device_poll(st->impl, hash, now, step, out, slow);
}

void store_device_clear(struct store_device *d)
{
    if (d == NULL)
        return;
    free(d->client_id);
    free(d->scope);
    free(d->resource);
    free(d->grant_id);
    memset(d, 0, sizeof(*d));
}

/* ---- signing keys ---- */

int store_key_put(struct store *st, const struct store_key *k)
{
    return st->ops->key_put(st->impl, k);
}

int store_key_list(struct store *st, struct store_key **keys, size_t *n)
{
    *keys = NULL;
    *n = 0;
    return st->ops->key_list(st->impl, keys, n);
}

int store_key_retire_current(struct store *st, int64_t now)
{
    return st->ops->key_retire_current(st->impl, now);
}

void store_key_clear(struct store_key *k)
{
    if (k == NULL)
        return;
    free(k->kid);
    free(k->alg);
    if (k->sealed != NULL) {
        explicit_bzero(k->sealed, k->sealed_len);
        free(k->sealed);
    }
    free(k->public_jwk);
    memset(k, 0, sizeof(*k));
}

/* ---- audit ---- */

int store_audit_add(struct store *st, int64_t ts, const char *event, const char *user,
                    const char *client, const char *ip, json_t *detail)
{
    int r = st->ops->audit_add(st->impl, ts, event, user, client, ip, detail);
    json_decref(detail); /* stolen, whatever the outcome */
    return r;
}

int store_audit_add_batch(struct store *st, const json_t *events)
{
    return json_array_size(events) == 0 ? 0 : st->ops->audit_add_batch(st->impl, events);
}

int store_audit_list(struct store *st, int64_t since, const char *user, unsigned limit,
                     json_t **out)
{
    *out = NULL;
    if (limit == 0 || limit > STORE_AUDIT_LIST_MAX)
        limit = STORE_AUDIT_LIST_MAX;
    return st->ops->audit_list(st->impl, since, user, limit, out);
}

/* ---- housekeeping ---- */

int store_purge(struct store *st, int64_t now)
{
    return st->ops->purge(st->impl, now);
}
