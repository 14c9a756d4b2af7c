/* The SQLite backend's tables: users, clients, grants, codes, refresh and access tokens,
 * consents, browser sessions, device authorizations, signing keys, the audit trail and
 * housekeeping, each operation one statement or one IMMEDIATE transaction under the handle's
 * lock (the plumbing is sqlite_db.c's). Every value is bound. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "store/sqlite_int.h"

/* ---- users ---- */

#define USER_SELECT                                                                                \
    "SELECT id, username, password_hash, created_at, failed_logins, locked_until FROM users "

static int user_get(struct sq *s, const char *sql, const struct val *key, struct store_user *u)
{
    struct q q = {0};
    int r;
    sqdb_lock(s);
    if ((r = sqdb_q_open(s, &q, sql, key)) != 0 || (r = sqdb_q_row(&q)) != 0)
        goto out;
    u->id = sqdb_col_i64(&q, 0);
    u->username = sqdb_col_str(&q, 1);
    u->password_hash = sqdb_col_str(&q, 2);
    u->created_at = sqdb_col_i64(&q, 3);
    u->failed_logins = (int)sqdb_col_i64(&q, 4);
    u->locked_until = sqdb_col_i64(&q, 5);
out:
    sqdb_q_close(&q);
    sqdb_unlock(s);
    return r;
}

static int sq_user_add(void *impl, const char *username, const char *password_hash, int64_t now,
                       int64_t *id)
{
    struct sq *s = impl;
    sqdb_lock(s);
    int r = sqdb_run(s, "INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?)",
                     VALS(V_S(username), V_S(password_hash), V_I(now)));
    if (r == 0 && id != NULL)
        *id = sqlite3_last_insert_rowid(s->db);
    sqdb_unlock(s);
    return r;
}

static int sq_user_get(void *impl, const char *username, struct store_user *out)
{
    return user_get(impl, USER_SELECT "WHERE username = ?", VALS(V_S(username)), out);
}

static int sq_user_get_id(void *impl, int64_t id, struct store_user *out)
{
    return user_get(impl, USER_SELECT "WHERE id = ?", VALS(V_I(id)), out);
}

static json_t *user_row(struct q *q)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(sqdb_col_i64(q, 0)));
    json_object_set_new(o, "username", sqdb_col_json_str(q, 1));
    json_object_set_new(o, "created_at", json_integer(sqdb_col_i64(q, 2)));
    return o;
}

static int sq_user_list(void *impl, json_t **out)
{
    return sqdb_list(impl, "SELECT id, username, created_at FROM users ORDER BY id", NULL,
                     STORE_LIST_MAX, user_row, out);
}

static int count_rows(struct sq *s, const char *sql, int64_t *n)
{
    struct q q = {0};
    int r;
    sqdb_lock(s);
    if ((r = sqdb_q_open(s, &q, sql, NULL)) == 0 && (r = sqdb_q_row(&q)) == 0)
        *n = sqdb_col_i64(&q, 0);
    sqdb_q_close(&q);
    sqdb_unlock(s);
    return r;
}

static int sq_user_count(void *impl, int64_t *n)
{
    return count_rows(impl, "SELECT count(*) FROM users", n);
}

/* Revokes the grants a condition on grants selects (?2), as of ?1, and what hangs off them:
 * access tokens revoked, refresh tokens deleted, unused codes spent. */
#define REVOKE_SQL(where)                                                                          \
    {                                                                                              \
        "UPDATE access_tokens SET revoked_at = ?1 WHERE revoked_at = 0 AND grant_id IN "           \
        "(SELECT grant_id FROM grants WHERE " where ")",                                           \
            "DELETE FROM refresh_tokens WHERE grant_id IN "                                        \
            "(SELECT grant_id FROM grants WHERE " where ")",                                       \
            "UPDATE codes SET used = 1 WHERE used = 0 AND grant_id IN "                            \
            "(SELECT grant_id FROM grants WHERE " where ")",                                       \
            "UPDATE grants SET revoked_at = ?1 WHERE revoked_at = 0 AND " where,                   \
    }
static const char *const revoke_by_grant[] = REVOKE_SQL("grant_id = ?2");
static const char *const revoke_by_user[] = REVOKE_SQL("user_id = ?2");
static const char *const revoke_by_client[] = REVOKE_SQL("client_id = ?2");

/* Inside a transaction. key is the ?2 value. */
static int revoke_grants(struct sq *s, const char *const sql[4], struct val key, int64_t now)
{
    int r = 0;
    for (int i = 0; i < 4 && r == 0; i++)
        r = sqdb_run(s, sql[i], VALS(V_I(sqdb_stamp(now)), key));
    return r;
}

static int sq_user_remove(void *impl, const char *username)
{
    struct sq *s = impl;
    struct q q = {0};
    int64_t id;
    int r;
    sqdb_lock(s);
    if ((r = sqdb_tx_begin(s)) != 0)
        goto out;
    if ((r = sqdb_q_open(s, &q, "SELECT id FROM users WHERE username = ?", VALS(V_S(username)))) !=
            0 ||
        (r = sqdb_q_row(&q)) != 0)
        goto out;
    id = sqdb_col_i64(&q, 0);
    sqdb_q_close(&q);
    if ((r = revoke_grants(s, revoke_by_user, (struct val)V_I(id), (int64_t)time(NULL))) != 0 ||
        (r = sqdb_run(s, "DELETE FROM consents WHERE user_id = ?", VALS(V_I(id)))) != 0 ||
        (r = sqdb_run(s, "DELETE FROM browser_sessions WHERE user_id = ?", VALS(V_I(id)))) != 0 ||
        (r = sqdb_run(s, "DELETE FROM users WHERE id = ?", VALS(V_I(id)))) != 0)
        goto out;
    r = sqdb_tx_commit(s);
out:
    sqdb_q_close(&q);
    if (r != 0)
        sqdb_tx_rollback(s);
    sqdb_unlock(s);
    return r;
}

static int sq_user_set_password(void *impl, const char *username, const char *password_hash)
{
    return sqdb_write1(impl, "UPDATE users SET password_hash = ? WHERE username = ?",
                       VALS(V_S(password_hash), V_S(username)), true);
}

static int sq_user_login_result(void *impl, int64_t id, bool ok, int64_t locked_until)
{
    if (ok)
        return sqdb_write1(impl,
                           "UPDATE users SET failed_logins = 0, locked_until = 0 WHERE id = ?",
                           VALS(V_I(id)), true);
    return sqdb_write1(impl,
                       "UPDATE users SET failed_logins = failed_logins + 1, locked_until = ? "
                       "WHERE id = ?",
                       VALS(V_I(locked_until), V_I(id)), true);
}

/* ---- clients ---- */

static int sq_client_put(void *impl, const struct store_client *c)
{
    char *meta = c->metadata != NULL ? json_dumps(c->metadata, JSON_COMPACT | JSON_ENCODE_ANY)
                                     : xstrdup("{}");
    if (meta == NULL) {
        log_error("sqlite: client metadata does not serialize");
        return ERR_INVALID;
    }
    /* An upsert, not INSERT OR REPLACE (a replace deletes the row first). The first
     * registration time is kept. */
    int r = sqdb_write1(
        impl,
        "INSERT INTO clients (client_id, kind, secret_hash, reg_token_hash, metadata, "
        "first_party, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (client_id) DO UPDATE SET kind = excluded.kind, "
        "secret_hash = excluded.secret_hash, reg_token_hash = excluded.reg_token_hash, "
        "metadata = excluded.metadata, first_party = excluded.first_party, "
        "expires_at = excluded.expires_at",
        VALS(V_S(c->client_id), V_I((int64_t)c->kind), V_H(c->has_secret ? c->secret_hash : NULL),
             V_H(c->has_reg_token ? c->reg_token_hash : NULL), V_S(meta),
             V_I(c->first_party ? 1 : 0), V_I(c->created_at), V_I(c->expires_at)),
        false);
    free(meta);
    return r;
}

static int sq_client_get(void *impl, const char *client_id, struct store_client *out)
{
    struct sq *s = impl;
    struct q q = {0};
    int r;
    sqdb_lock(s);
    if ((r = sqdb_q_open(
             s, &q,
             "SELECT client_id, kind, secret_hash, reg_token_hash, metadata, first_party, "
             "created_at, expires_at FROM clients WHERE client_id = ?",
             VALS(V_S(client_id)))) != 0 ||
        (r = sqdb_q_row(&q)) != 0)
        goto out;
    if ((out->metadata = sqdb_col_json(&q, 4)) == NULL) {
        r = ERR_IO;
        goto out;
    }
    out->client_id = sqdb_col_str(&q, 0);
    out->kind = (enum store_client_kind)sqdb_col_i64(&q, 1);
    out->has_secret = sqdb_col_hash(&q, 2, out->secret_hash);
    out->has_reg_token = sqdb_col_hash(&q, 3, out->reg_token_hash);
    out->first_party = sqdb_col_i64(&q, 5) != 0;
    out->created_at = sqdb_col_i64(&q, 6);
    out->expires_at = sqdb_col_i64(&q, 7);
out:
    sqdb_q_close(&q);
    sqdb_unlock(s);
    return r;
}

static json_t *client_row(struct q *q)
{
    json_t *meta = sqdb_col_json(q, 6);
    if (meta == NULL)
        return NULL;
    json_t *o = json_object();
    json_object_set_new(o, "client_id", sqdb_col_json_str(q, 0));
    json_object_set_new(
        o, "kind", json_string(store_client_kind_name((enum store_client_kind)sqdb_col_i64(q, 1))));
    json_object_set_new(o, "has_secret", json_boolean(sqdb_col_i64(q, 2) != 0));
    json_object_set_new(o, "first_party", json_boolean(sqdb_col_i64(q, 3) != 0));
    json_object_set_new(o, "created_at", json_integer(sqdb_col_i64(q, 4)));
    json_object_set_new(o, "expires_at", json_integer(sqdb_col_i64(q, 5)));
    json_object_set_new(o, "metadata", meta);
    return o;
}

static int sq_client_list(void *impl, json_t **out)
{
    return sqdb_list(impl,
                     "SELECT client_id, kind, secret_hash IS NOT NULL, first_party, created_at, "
                     "expires_at, metadata FROM clients ORDER BY created_at, client_id",
                     NULL, STORE_LIST_MAX, client_row, out);
}

static int sq_client_remove(void *impl, const char *client_id)
{
    struct sq *s = impl;
    int r;
    sqdb_lock(s);
    if ((r = sqdb_tx_begin(s)) != 0)
        goto out;
    if ((r = sqdb_run(s, "DELETE FROM clients WHERE client_id = ?", VALS(V_S(client_id)))) != 0)
        goto out;
    if (sqdb_changes(s) == 0) {
        r = ERR_NOTFOUND;
        goto out;
    }
    struct val key = V_S(client_id);
    if ((r = revoke_grants(s, revoke_by_client, key, (int64_t)time(NULL))) != 0 ||
        (r = sqdb_run(s, "DELETE FROM consents WHERE client_id = ?", VALS(key))) != 0)
        goto out;
    r = sqdb_tx_commit(s);
out:
    if (r != 0)
        sqdb_tx_rollback(s);
    sqdb_unlock(s);
    return r;
}

static int sq_client_count(void *impl, int64_t *n)
{
    return count_rows(impl, "SELECT count(*) FROM clients", n);
}

/* ---- grants ---- */

/* The caller holds the lock. */
static int insert_grant(struct sq *s, const struct store_grant *g)
{
    return sqdb_run(
        s,
        "INSERT INTO grants (grant_id, user_id, client_id, scope, resource, created_at, "
        "revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        VALS(V_S(g->grant_id), V_I(g->user_id), V_S(g->client_id), V_S(g->scope), V_S(g->resource),
             V_I(g->created_at), V_I(g->revoked_at)));
}

static int sq_grant_put(void *impl, const struct store_grant *g)
{
    struct sq *s = impl;
    sqdb_lock(s);
    int r = insert_grant(s, g);
    sqdb_unlock(s);
    return r;
}

static int sq_grant_get(void *impl, const char *grant_id, struct store_grant *out)
{
    struct sq *s = impl;
    struct q q = {0};
    int r;
    sqdb_lock(s);
    if ((r = sqdb_q_open(
             s, &q,
             "SELECT grant_id, user_id, client_id, scope, resource, created_at, revoked_at "
             "FROM grants WHERE grant_id = ?",
             VALS(V_S(grant_id)))) != 0 ||
        (r = sqdb_q_row(&q)) != 0)
        goto out;
    out->grant_id = sqdb_col_str(&q, 0);
    out->user_id = sqdb_col_i64(&q, 1);
    out->client_id = sqdb_col_str(&q, 2);
    out->scope = sqdb_col_str(&q, 3);
    out->resource = sqdb_col_str(&q, 4);
    out->created_at = sqdb_col_i64(&q, 5);
    out->revoked_at = sqdb_col_i64(&q, 6);
out:
    sqdb_q_close(&q);
    sqdb_unlock(s);
    return r;
}

static int sq_grant_revoke(void *impl, const char *grant_id, int64_t now)
{
    struct sq *s = impl;
    struct q q = {0};
    int r;
    sqdb_lock(s);
    if ((r = sqdb_tx_begin(s)) != 0)
        goto out;
    if ((r = sqdb_q_open(s, &q, "SELECT 1 FROM grants WHERE grant_id = ?", VALS(V_S(grant_id)))) !=
            0 ||
        (r = sqdb_q_row(&q)) != 0)
        goto out;
    sqdb_q_close(&q);
    /* Also when already revoked: catches tokens stored since. */
    if ((r = revoke_grants(s, revoke_by_grant, (struct val)V_S(grant_id), now)) != 0)
        goto out;
    r = sqdb_tx_commit(s);
out:
    sqdb_q_close(&q);
    if (r != 0)
        sqdb_tx_rollback(s);
    sqdb_unlock(s);
    return r;
}

static json_t *grant_row(struct q *q)
{
    json_t *o = json_object();
    json_object_set_new(o, "grant_id", sqdb_col_json_str(q, 0));
    json_object_set_new(o, "client_id", sqdb_col_json_str(q, 1));
    json_object_set_new(o, "scope", sqdb_col_json_str(q, 2));
    json_object_set_new(o, "created_at", json_integer(sqdb_col_i64(q, 3)));
    return o;
}

static int sq_grants_of_user(void *impl, int64_t user_id, json_t **out)
{
    return sqdb_list(impl,
                     "SELECT grant_id, client_id, scope, created_at FROM grants "
                     "WHERE user_id = ? AND revoked_at = 0 ORDER BY created_at DESC, rowid DESC",
                     VALS(V_I(user_id)), STORE_LIST_MAX, grant_row, out);
}

/* ---- codes ---- */

static int sq_code_put(void *impl, const struct store_code *c)
{
    return sqdb_write1(
        impl,
        "INSERT INTO codes (hash, grant_id, client_id, redirect_uri, code_challenge, "
        "scope, resource, user_id, expires_at, used) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        VALS(V_H(c->hash), V_S(c->grant_id), V_S(c->client_id), V_S(c->redirect_uri),
             V_S(c->code_challenge), V_S(c->scope), V_S(c->resource), V_I(c->user_id),
             V_I(c->expires_at), V_I(c->used ? 1 : 0)),
        false);
}

#define CODE_COLS                                                                                  \
    "hash, grant_id, client_id, redirect_uri, code_challenge, scope, resource, user_id, "          \
    "expires_at, used"

static void read_code(struct q *q, struct store_code *c)
{
    (void)sqdb_col_hash(q, 0, c->hash); /* the key: CHECKed to be STORE_HASH_LEN bytes */
    c->grant_id = sqdb_col_str(q, 1);
    c->client_id = sqdb_col_str(q, 2);
    c->redirect_uri = sqdb_col_str(q, 3);
    c->code_challenge = sqdb_col_str(q, 4);
    c->scope = sqdb_col_str(q, 5);
    c->resource = sqdb_col_str(q, 6);
    c->user_id = sqdb_col_i64(q, 7);
    c->expires_at = sqdb_col_i64(q, 8);
    c->used = sqdb_col_i64(q, 9) != 0;
}

static int sq_code_take(void *impl, const unsigned char hash[STORE_HASH_LEN],
                        struct store_code *out)
{
    struct sq *s = impl;
    struct q q = {0};
    int r;
    sqdb_lock(s);
    /* One statement: of racing takers, in any process, exactly one sees the row change. */
    if ((r = sqdb_q_open(
             s, &q, "UPDATE codes SET used = 1 WHERE hash = ? AND used = 0 RETURNING " CODE_COLS,
             VALS(V_H(hash)))) != 0 ||
        (r = sqdb_q_step(&q)) < 0)
        goto out;
    if (r == 1) {
        read_code(&q, out);
        if ((r = sqdb_q_run(&q)) != 0) /* to completion: the autocommit transaction ends here */
            store_code_clear(out);
        goto out;
    }
    /* Nothing changed: used before, or unknown. */
    r = sqdb_q_open(s, &q, "SELECT " CODE_COLS " FROM codes WHERE hash = ?", VALS(V_H(hash)));
    if (r != 0 || (r = sqdb_q_row(&q)) != 0)
        goto out;
    read_code(&q, out);
    r = ERR_EXISTS;
out:
    sqdb_q_close(&q);
    sqdb_unlock(s);
    return r;
}

/* ---- refresh tokens ---- */

#define REFRESH_SELECT                                                                             \
    "SELECT hash, grant_id, created_at, expires_at, rotated_at FROM refresh_tokens WHERE hash = ?"

static void read_refresh(struct q *q, struct store_refresh *rt)
{
    (void)sqdb_col_hash(q, 0, rt->hash);
    rt->grant_id = sqdb_col_str(q, 1);
    rt->created_at = sqdb_col_i64(q, 2);
    rt->expires_at = sqdb_col_i64(q, 3);
    rt->rotated_at = sqdb_col_i64(q, 4);
}

static int insert_refresh(struct sq *s, const struct store_refresh *rt, const char *grant_id)
{
    return sqdb_run(
        s,
        "INSERT INTO refresh_tokens (hash, grant_id, created_at, expires_at, rotated_at) "
        "VALUES (?, ?, ?, ?, ?)",
        VALS(V_H(rt->hash), V_S(grant_id), V_I(rt->created_at), V_I(rt->expires_at),
             V_I(rt->rotated_at)));
}

static int sq_refresh_put(void *impl, const struct store_refresh *rt)
{
    struct sq *s = impl;
    sqdb_lock(s);
    int r = insert_refresh(s, rt, rt->grant_id);
    sqdb_unlock(s);
    return r;
}

static int sq_refresh_rotate(void *impl, const unsigned char old[STORE_HASH_LEN],
                             const struct store_refresh *next, int64_t now,
                             struct store_refresh *old_out)
{
    struct sq *s = impl;
    struct q q = {0};
    int r;
    sqdb_lock(s);
    if ((r = sqdb_tx_begin(s)) != 0)
        goto out;
    if ((r = sqdb_q_open(s, &q, REFRESH_SELECT, VALS(V_H(old)))) != 0 || (r = sqdb_q_row(&q)) != 0)
        goto out;
    read_refresh(&q, old_out);
    sqdb_q_close(&q);
    if (old_out->rotated_at != 0) {
        r = ERR_EXISTS; /* reuse: the record goes back all the same */
        goto out;
    }
    if (next->grant_id != NULL && strcmp(next->grant_id, old_out->grant_id) != 0) {
        log_error("sqlite: %s: refresh rotation across grants refused", s->path);
        r = ERR_INVALID;
        goto out;
    }
    if ((r = sqdb_run(s,
                      "UPDATE refresh_tokens SET rotated_at = ? WHERE hash = ? AND rotated_at = 0",
                      VALS(V_I(sqdb_stamp(now)), V_H(old)))) != 0)
        goto out;
    if (sqdb_changes(s) != 1) { /* impossible under the write lock */
        r = ERR_INTERNAL;
        goto out;
    }
    if ((r = insert_refresh(s, next, old_out->grant_id)) != 0 || (r = sqdb_tx_commit(s)) != 0)
        goto out;
    old_out->rotated_at = sqdb_stamp(now);
out:
    sqdb_q_close(&q);
    if (r != 0) {
        sqdb_tx_rollback(s);
        if (r != ERR_EXISTS)
            store_refresh_clear(old_out);
    }
    sqdb_unlock(s);
    return r;
}

static int sq_refresh_get(void *impl, const unsigned char hash[STORE_HASH_LEN],
                          struct store_refresh *out)
{
    struct sq *s = impl;
    struct q q = {0};
    int r;
    sqdb_lock(s);
    if ((r = sqdb_q_open(s, &q, REFRESH_SELECT, VALS(V_H(hash)))) == 0 && (r = sqdb_q_row(&q)) == 0)
        read_refresh(&q, out);
    sqdb_q_close(&q);
    sqdb_unlock(s);
    return r;
}

/* ---- access tokens ---- */

static int sq_access_put(void *impl, const unsigned char jti_hash[STORE_HASH_LEN],
                         const char *grant_id, int64_t expires_at)
{
    return sqdb_write1(
        impl, "INSERT INTO access_tokens (jti_hash, grant_id, expires_at) VALUES (?, ?, ?)",
        VALS(V_H(jti_hash), V_S(grant_id), V_I(expires_at)), false);
}

static int sq_access_check(void *impl, const unsigned char jti_hash[STORE_HASH_LEN])
{
    struct sq *s = impl;
    struct q q = {0};
    int r;
    sqdb_lock(s);
    if ((r = sqdb_q_open(s, &q,
                         "SELECT a.revoked_at, coalesce(g.revoked_at, 0) FROM access_tokens a "
                         "LEFT JOIN grants g ON g.grant_id = a.grant_id WHERE a.jti_hash = ?",
                         VALS(V_H(jti_hash)))) == 0 &&
        (r = sqdb_q_row(&q)) == 0 && (sqdb_col_i64(&q, 0) != 0 || sqdb_col_i64(&q, 1) != 0))
        r = ERR_INVALID;
    sqdb_q_close(&q);
    sqdb_unlock(s);
    return r;
}

static int sq_access_revoke(void *impl, const unsigned char jti_hash[STORE_HASH_LEN], int64_t now)
{
    /* Idempotent: a revoked token keeps its first revocation time. */
    return sqdb_write1(impl,
                       "UPDATE access_tokens SET revoked_at = "
                       "CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END WHERE jti_hash = ?",
                       VALS(V_I(sqdb_stamp(now)), V_H(jti_hash)), true);
}

/* A locked SELECT of one text column; the string goes to *out. */
static int get_text(struct sq *s, const char *sql, const struct val *vals, char **out)
{
    struct q q = {0};
    int r;
    sqdb_lock(s);
    if ((r = sqdb_q_open(s, &q, sql, vals)) == 0 && (r = sqdb_q_row(&q)) == 0)
        *out = sqdb_col_str(&q, 0);
    sqdb_q_close(&q);
    sqdb_unlock(s);
    return r;
}

static int sq_access_grant(void *impl, const unsigned char jti_hash[STORE_HASH_LEN],
                           char **grant_id)
{
    return get_text(impl, "SELECT grant_id FROM access_tokens WHERE jti_hash = ?",
                    VALS(V_H(jti_hash)), grant_id);
}

/* ---- consents ---- */

static int sq_consent_put(void *impl, int64_t user_id, const char *client_id, const char *scope,
                          int64_t now)
{
    return sqdb_write1(
        impl,
        "INSERT INTO consents (user_id, client_id, scope, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (user_id, client_id) DO UPDATE "
        "SET scope = excluded.scope, created_at = excluded.created_at",
        VALS(V_I(user_id), V_S(client_id), V_S(scope), V_I(now)), false);
}

static int sq_consent_get(void *impl, int64_t user_id, const char *client_id, char **scope)
{
    return get_text(impl, "SELECT scope FROM consents WHERE user_id = ? AND client_id = ?",
                    VALS(V_I(user_id), V_S(client_id)), scope);
}

static int sq_consent_remove(void *impl, int64_t user_id, const char *client_id)
{
    return sqdb_write1(impl, "DELETE FROM consents WHERE user_id = ? AND client_id = ?",
                       VALS(V_I(user_id), V_S(client_id)), true);
}

/* ---- browser sessions ---- */

static int sq_bsession_put(void *impl, const struct store_browser_session *b)
{
    return sqdb_write1(
        impl,
        "INSERT INTO browser_sessions (hash, user_id, csrf, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?)",
        VALS(V_H(b->hash), V_I(b->user_id), V_S(b->csrf), V_I(b->created_at), V_I(b->expires_at)),
        false);
}

static int sq_bsession_get(void *impl, const unsigned char hash[STORE_HASH_LEN], int64_t now,
                           struct store_browser_session *out)
{
    struct sq *s = impl;
    struct q q = {0};
    int r;
    sqdb_lock(s);
    if ((r = sqdb_q_open(s, &q,
                         "SELECT hash, user_id, csrf, created_at, expires_at, device_failures "
                         "FROM browser_sessions WHERE hash = ? AND expires_at > ?",
                         VALS(V_H(hash), V_I(now)))) != 0 ||
        (r = sqdb_q_row(&q)) != 0)
        goto out;
    (void)sqdb_col_hash(&q, 0, out->hash);
    out->user_id = sqdb_col_i64(&q, 1);
    out->csrf = sqdb_col_str(&q, 2);
    out->created_at = sqdb_col_i64(&q, 3);
    out->expires_at = sqdb_col_i64(&q, 4);
    out->device_failures = (int)sqdb_col_i64(&q, 5);
out:
    sqdb_q_close(&q);
    sqdb_unlock(s);
    return r;
}

static int sq_bsession_device_failure(void *impl, const unsigned char hash[STORE_HASH_LEN],
                                      int *failures)
{
    struct sq *s = impl;
    struct q q = {0};
    int r;
    sqdb_lock(s);
    if ((r = sqdb_q_open(s, &q,
                         "UPDATE browser_sessions SET device_failures = device_failures + 1 "
                         "WHERE hash = ? RETURNING device_failures",
                         VALS(V_H(hash)))) == 0 &&
        (r = sqdb_q_row(&q)) == 0) {
        *failures = (int)sqdb_col_i64(&q, 0);
        r = sqdb_q_run(&q); /* to completion: the autocommit transaction ends here */
    }
    sqdb_q_close(&q);
    sqdb_unlock(s);
    return r;
}

static int sq_bsession_remove(void *impl, const unsigned char hash[STORE_HASH_LEN])
{
    return sqdb_write1(impl, "DELETE FROM browser_sessions WHERE hash = ?", VALS(V_H(hash)), true);
}

/* ---- device authorizations ---- */

#define DEVICE_COLS                                                                                \
    "hash, user_hash, client_id, scope, resource, created_at, expires_at, poll_interval, "         \
    "last_poll, status, user_id, grant_id"

static void read_device(struct q *q, struct store_device *d)
{
    (void)sqdb_col_hash(q, 0, d->hash); /* both CHECKed to be STORE_HASH_LEN bytes */
    (void)sqdb_col_hash(q, 1, d->user_hash);
    d->client_id = sqdb_col_str(q, 2);
    d->scope = sqdb_col_str(q, 3);
    d->resource = sqdb_col_str(q, 4);
    d->created_at = sqdb_col_i64(q, 5);
    d->expires_at = sqdb_col_i64(q, 6);
    d->interval = sqdb_col_i64(q, 7);
    d->last_poll = sqdb_col_i64(q, 8);
    d->status = (enum store_device_status)sqdb_col_i64(q, 9);
    d->user_id = sqdb_col_i64(q, 10);
    d->grant_id = sqdb_col_str(q, 11);
}

static int sq_device_put(void *impl, const struct store_device *d)
{
    struct sq *s = impl;
    int r;
    sqdb_lock(s);
    if ((r = sqdb_tx_begin(s)) != 0)
        goto out;
    if ((r = sqdb_run(s, "DELETE FROM device_codes WHERE expires_at <= ?",
                      VALS(V_I(d->created_at)))) != 0 ||
        (r = sqdb_run(s,
                      "INSERT INTO device_codes (hash, user_hash, client_id, scope, resource, "
                      "created_at, expires_at, poll_interval) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      VALS(V_H(d->hash), V_H(d->user_hash), V_S(d->client_id), V_S(d->scope),
                           V_S(d->resource), V_I(d->created_at), V_I(d->expires_at),
                           V_I(d->interval)))) != 0)
        goto out;
    r = sqdb_tx_commit(s);
out:
    if (r != 0)
        sqdb_tx_rollback(s);
    sqdb_unlock(s);
    return r;
}

static int device_get(struct sq *s, const char *sql, const unsigned char key[STORE_HASH_LEN],
                      struct store_device *out)
{
    struct q q = {0};
    int r;
    sqdb_lock(s);
    if ((r = sqdb_q_open(s, &q, sql, VALS(V_H(key)))) == 0 && (r = sqdb_q_row(&q)) == 0)
        read_device(&q, out);
    sqdb_q_close(&q);
    sqdb_unlock(s);
    return r;
}

static int sq_device_get(void *impl, const unsigned char hash[STORE_HASH_LEN],
                         struct store_device *out)
{
    return device_get(impl, "SELECT " DEVICE_COLS " FROM device_codes WHERE hash = ?", hash, out);
}

static int sq_device_get_user(void *impl, const unsigned char user_hash[STORE_HASH_LEN],
                              struct store_device *out)
{
    return device_get(impl, "SELECT " DEVICE_COLS " FROM device_codes WHERE user_hash = ?",
                      user_hash, out);
}

static int sq_device_decide(void *impl, const unsigned char user_hash[STORE_HASH_LEN], int64_t now,
                            int64_t user_id, const struct store_grant *g)
{
    struct sq *s = impl;
    int r;
    sqdb_lock(s);
    if ((r = sqdb_tx_begin(s)) != 0)
        goto out;
    if ((r = sqdb_run(s,
                      "UPDATE device_codes SET status = ?, user_id = ?, grant_id = ? "
                      "WHERE user_hash = ? AND status = 0 AND expires_at > ?",
                      VALS(V_I(g != NULL ? DEVICE_APPROVED : DEVICE_DENIED), V_I(user_id),
                           V_S(g != NULL ? g->grant_id : NULL), V_H(user_hash), V_I(now)))) != 0)
        goto out;
    if (sqdb_changes(s) != 1) {
        r = ERR_NOTFOUND;
        goto out;
    }
    if (g == NULL || (r = insert_grant(s, g)) == 0)
        r = sqdb_tx_commit(s);
out:
    if (r != 0)
        sqdb_tx_rollback(s);
    sqdb_unlock(s);
    return r;
}

static int sq_device_poll(void *impl, const unsigned char hash[STORE_HASH_LEN], int64_t now,
                          int64_t step, struct store_device *out, bool *slow)
{
    struct sq *s = impl;
    struct q q = {0};
    int r;
    sqdb_lock(s);
    if ((r = sqdb_tx_begin(s)) != 0)
        goto out;
    if ((r = sqdb_q_open(s, &q, "SELECT " DEVICE_COLS " FROM device_codes WHERE hash = ?",
                         VALS(V_H(hash)))) != 0 ||
        (r = sqdb_q_row(&q)) != 0)
        goto out;
    read_device(&q, out);
    sqdb_q_close(&q);
    if (out->expires_at > now && out->status == DEVICE_PENDING) {
        *slow = out->last_poll != 0 && now - out->last_poll < out->interval;
        r = sqdb_run(
            s, "UPDATE device_codes SET last_poll = ?, poll_interval = ? WHERE hash = ?",
            VALS(V_I(sqdb_stamp(now)), V_I(out->interval + (*slow ? step : 0)), V_H(hash)));
    } else if (out->expires_at > now && out->status == DEVICE_APPROVED) {
        r = sqdb_run(s, "UPDATE device_codes SET status = 3 WHERE hash = ? AND status = 1",
                     VALS(V_H(hash)));
        if (r == 0 && sqdb_changes(s) != 1) /* impossible under the write lock */
            r = ERR_INTERNAL;
    }
    if (r == 0)
        r = sqdb_tx_commit(s);
out:
    sqdb_q_close(&q);
    if (r != 0) {
        sqdb_tx_rollback(s);
        store_device_clear(out);
        *slow = false;
    }
    sqdb_unlock(s);
    return r;
}

/* ---- signing keys ---- */

static int sq_key_put(void *impl, const struct store_key *k)
{
    /* sealed is NOT NULL: an empty one still binds a zero-length blob. */
    const void *sealed = k->sealed != NULL ? (const void *)k->sealed : (const void *)"";
    return sqdb_write1(
        impl,
        "INSERT INTO signing_keys (kid, alg, sealed, public_jwk, created_at, retired_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        VALS(V_S(k->kid), V_S(k->alg), V_B(sealed, k->sealed_len), V_S(k->public_jwk),
             V_I(k->created_at), V_I(k->retired_at)),
        false);
}

static int sq_key_list(void *impl, struct store_key **keys, size_t *n)
{
    struct sq *s = impl;
    struct q q = {0};
    struct store_key *arr = NULL;
    size_t len = 0, cap = 0;
    int r;
    sqdb_lock(s);
    if ((r = sqdb_q_open(
             s, &q,
             "SELECT kid, alg, sealed, public_jwk, created_at, retired_at FROM signing_keys "
             "ORDER BY retired_at = 0 DESC, retired_at DESC, created_at DESC, kid",
             NULL)) != 0)
        goto out;
    while ((r = sqdb_q_step(&q)) == 1) {
        if (len >= STORE_KEY_LIST_MAX) {
            log_error("sqlite: %s: more than %d signing keys", s->path, STORE_KEY_LIST_MAX);
            r = ERR_TOOBIG;
            goto out;
        }
        if (len == cap) {
            cap = cap ? cap * 2 : 4;
            arr = xrealloc(arr, cap * sizeof(*arr));
        }
        struct store_key *k = &arr[len++];
        memset(k, 0, sizeof(*k));
        k->kid = sqdb_col_str(&q, 0);
        k->alg = sqdb_col_str(&q, 1);
        const void *p = sqlite3_column_blob(q.st, 2);
        int bytes = sqlite3_column_bytes(q.st, 2);
        k->sealed_len = p != NULL && bytes > 0 ? (size_t)bytes : 0;
        k->sealed = xmalloc(k->sealed_len);
        if (k->sealed_len > 0)
            memcpy(k->sealed, p, k->sealed_len);
        k->public_jwk = sqdb_col_str(&q, 3);
        k->created_at = sqdb_col_i64(&q, 4);
        k->retired_at = sqdb_col_i64(&q, 5);
    }
    if (r != 0)
        goto out;
    *keys = arr;
    *n = len;
    arr = NULL;
    len = 0;
out:
    for (size_t i = 0; i < len; i++)
        store_key_clear(&arr[i]);
    free(arr);
    sqdb_q_close(&q);
    sqdb_unlock(s);
    return r;
}

static int sq_key_retire_current(void *impl, int64_t now)
{
    return sqdb_write1(impl, "UPDATE signing_keys SET retired_at = ? WHERE retired_at = 0",
                       VALS(V_I(sqdb_stamp(now))), false);
}

/* ---- audit ---- */

static int sq_audit_add(void *impl, int64_t ts, const char *event, const char *user,
                        const char *client, const char *ip, const json_t *detail)
{
    char *text = NULL;
    if (detail != NULL && (text = json_dumps(detail, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL) {
        log_error("sqlite: audit detail does not serialize");
        return ERR_INVALID;
    }
    int r =
        sqdb_write1(impl,
                    "INSERT INTO audit (ts, event, user, client, ip, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    VALS(V_I(ts), V_S(event), V_S(user), V_S(client), V_S(ip), V_S(text)), false);
    free(text);
    return r;
}

static int sq_audit_add_batch(void *impl, const json_t *events)
{
    struct sq *s = impl;
    int r;
    sqdb_lock(s);
    if ((r = sqdb_tx_begin(s)) != 0)
        goto out;
    size_t i;
    const json_t *e;
    json_array_foreach (events, i, e) {
        json_t *detail = json_object_get(e, "detail");
        char *text = detail != NULL && !json_is_null(detail)
                         ? json_dumps(detail, JSON_COMPACT | JSON_ENCODE_ANY)
                         : NULL;
        r = sqdb_run(s,
                     "INSERT INTO audit (ts, event, user, client, ip, detail) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                     VALS(V_I(json_integer_value(json_object_get(e, "ts"))),
                          V_S(json_string_value(json_object_get(e, "event"))),
                          V_S(json_string_value(json_object_get(e, "user"))),
                          V_S(json_string_value(json_object_get(e, "client"))),
                          V_S(json_string_value(json_object_get(e, "ip"))), V_S(text)));
        free(text);
        if (r != 0)
            break;
    }
    if (r == 0)
        r = sqdb_tx_commit(s);
    if (r != 0)
        sqdb_tx_rollback(s);
out:
    sqdb_unlock(s);
    return r;
}

static json_t *audit_row(struct q *q)
{
    json_t *detail = sqdb_col_json(q, 5);
    if (detail == NULL)
        return NULL;
    json_t *o = json_object();
    json_object_set_new(o, "ts", json_integer(sqdb_col_i64(q, 0)));
    json_object_set_new(o, "event", sqdb_col_json_str(q, 1));
    json_object_set_new(o, "user", sqdb_col_json_str(q, 2));
    json_object_set_new(o, "client", sqdb_col_json_str(q, 3));
    json_object_set_new(o, "ip", sqdb_col_json_str(q, 4));
    json_object_set_new(o, "detail", detail);
    return o;
}

static int sq_audit_list(void *impl, int64_t since, const char *user, unsigned limit, json_t **out)
{
    /* Two statements rather than "?2 IS NULL OR user = ?2", so each can use its index. */
    if (user == NULL)
        return sqdb_list(impl,
                         "SELECT ts, event, user, client, ip, detail FROM audit WHERE ts >= ? "
                         "ORDER BY ts DESC, id DESC LIMIT ?",
                         VALS(V_I(since), V_I((int64_t)limit)), limit, audit_row, out);
    return sqdb_list(
        impl,
        "SELECT ts, event, user, client, ip, detail FROM audit WHERE user = ? AND ts >= ? "
        "ORDER BY ts DESC, id DESC LIMIT ?",
        VALS(V_S(user), V_I(since), V_I((int64_t)limit)), limit, audit_row, out);
}

/* ---- housekeeping ---- */

static int sq_purge(void *impl, int64_t now)
{
    static const char *const sql[] = {
        "DELETE FROM codes WHERE expires_at <= ?",
        "DELETE FROM refresh_tokens WHERE expires_at <= ?",
        "DELETE FROM access_tokens WHERE expires_at <= ?",
        "DELETE FROM browser_sessions WHERE expires_at <= ?",
        "DELETE FROM device_codes WHERE expires_at <= ?",
    };
    struct sq *s = impl;
    int64_t n = 0;
    int r;
    sqdb_lock(s);
    if ((r = sqdb_tx_begin(s)) != 0)
        goto out;
    for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
        if ((r = sqdb_run(s, sql[i], VALS(V_I(now)))) != 0)
            goto out;
        n += sqdb_changes(s);
    }
    if ((r = sqdb_tx_commit(s)) != 0)
        goto out;
    if (n > 0)
        log_info("sqlite: %s: deleted %lld expired rows", s->path, (long long)n);
out:
    if (r != 0)
        sqdb_tx_rollback(s);
    sqdb_unlock(s);
    return r;
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .close = sqdb_close,
    .user_add = sq_user_add,
    .user_get = sq_user_get,
    .user_get_id = sq_user_get_id,
    .user_list = sq_user_list,
    .user_count = sq_user_count,
    .user_remove = sq_user_remove,
    .user_set_password = sq_user_set_password,
    .user_login_result = sq_user_login_result,
    .client_put = sq_client_put,
    .client_get = sq_client_get,
    .client_list = sq_client_list,
    .client_remove = sq_client_remove,
    .client_count = sq_client_count,
    .grant_put = sq_grant_put,
    .grant_get = sq_grant_get,
    .grant_revoke = sq_grant_revoke,
    .grants_of_user = sq_grants_of_user,
    .code_put = sq_code_put,
    .code_take = sq_code_take,
    .refresh_put = sq_refresh_put,
    .refresh_rotate = sq_refresh_rotate,
    .refresh_get = sq_refresh_get,
    .access_put = sq_access_put,
    .access_check = sq_access_check,
    .access_revoke = sq_access_revoke,
    .access_grant = sq_access_grant,
    .consent_put = sq_consent_put,
    .consent_get = sq_consent_get,
    .consent_remove = sq_consent_remove,
    .bsession_put = sq_bsession_put,
    .bsession_get = sq_bsession_get,
    .bsession_remove = sq_bsession_remove,
    .bsession_device_failure = sq_bsession_device_failure,
    .device_put = sq_device_put,
    .device_get = sq_device_get,
    .device_get_user = sq_device_get_user,
    .device_decide = sq_device_decide,
    .device_poll = sq_device_poll,
    .key_put = sq_key_put,
    .key_list = sq_key_list,
    .key_retire_current = sq_key_retire_current,
    .audit_add = sq_audit_add,
    .audit_add_batch = sq_audit_add_batch,
    .audit_list = sq_audit_list,
    .purge = sq_purge,
};
