/* The SQLite backend (the only includer of sqlite3.h). One connection per store handle, opened
 * FULLMUTEX and used under the handle's own mutex as well: a transaction spans several calls,
 * and sqlite3_errmsg() must describe our own failure, not another thread's. Several handles
 * (threads or processes) may share the file: WAL mode, a busy timeout, write transactions
 * begun IMMEDIATE, and single-use operations done in one statement or one such transaction.
 *
 * Every value is bound; the only SQL text built at run time is "PRAGMA user_version = N" from
 * an integer of ours. Failures are logged with sqlite3_errmsg() and the statement's first
 * characters (no values, so no secrets) and return ERR_IO; constraint failures map to
 * ERR_EXISTS (unique key), ERR_NOTFOUND (missing referenced row) or ERR_INVALID. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "store/store_int.h"

/* ---- schema (store/sqlite_schema.c) ---- */

#define SCHEMA_VERSION store_sqlite_schema_version

/* ---- connection and statements ---- */

/* Prepared statements kept per connection, keyed by the address of their SQL text (every
 * statement is a string literal), so each is compiled once. */
#define STMT_CACHE 64

struct stmt_slot {
    const char *sql;
    sqlite3_stmt *st;
    bool in_use;
};

struct sq {
    sqlite3 *db;
    pthread_mutex_t mu; /* held for each whole operation */
    char *path;         /* for log lines (owned) */
    struct stmt_slot cache[STMT_CACHE];
};

/* Parameters are passed as an array of typed values, ended by V_END (see VALS). */
enum val_type { V_END = 0, V_INT, V_TEXT, V_BLOB };
struct val {
    enum val_type t;
    int64_t i;
    const void *p; /* V_TEXT (NUL-terminated) or V_BLOB; NULL binds SQL NULL */
    size_t n;      /* V_BLOB length */
};
#define V_I(x)                                                                                     \
    {                                                                                              \
        .t = V_INT, .i = (x)                                                                       \
    }
#define V_S(x)                                                                                     \
    {                                                                                              \
        .t = V_TEXT, .p = (x)                                                                      \
    }
#define V_B(x, len)                                                                                \
    {                                                                                              \
        .t = V_BLOB, .p = (x), .n = (len)                                                          \
    }
#define V_H(x) V_B((x), STORE_HASH_LEN)
#define VALS(...) ((const struct val[]){__VA_ARGS__, {.t = V_END}})

/* A prepared statement; sql is kept for log lines. */
struct q {
    struct sq *s;
    sqlite3_stmt *st;
    const char *sql;
    struct stmt_slot *slot; /* the cache entry st belongs to, or NULL (finalize on close) */
};

static int db_fail(struct sq *s, int rc, const char *what)
{
    switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        log_debug("sqlite: %s: unique key taken (%.48s)", s->path, what);
        return ERR_EXISTS;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        log_debug("sqlite: %s: referenced row missing (%.48s)", s->path, what);
        return ERR_NOTFOUND;
    case SQLITE_CONSTRAINT_NOTNULL:
    case SQLITE_CONSTRAINT_CHECK:
        log_warn("sqlite: %s: %s (%.48s)", s->path, sqlite3_errmsg(s->db), what);
        return ERR_INVALID;
    default: break;
    }
    log_error("sqlite: %s: %s [%s] (%.48s)", s->path, sqlite3_errmsg(s->db), sqlite3_errstr(rc),
              what);
    return ERR_IO;
}

static void q_close(struct q *q)
{
    if (q->slot != NULL) {
        sqlite3_reset(q->st);
        sqlite3_clear_bindings(q->st);
        q->slot->in_use = false;
        q->slot = NULL;
    } else {
        sqlite3_finalize(q->st);
    }
    q->st = NULL;
}

/* A compiled statement for sql from the connection's cache (prepared on first use). */
static int prepare(struct sq *s, struct q *q, const char *sql)
{
    struct stmt_slot *free_slot = NULL;
    for (size_t i = 0; i < STMT_CACHE; i++) {
        struct stmt_slot *e = &s->cache[i];
        if (e->sql == sql && !e->in_use) {
            e->in_use = true;
            q->slot = e;
            q->st = e->st;
            return SQLITE_OK;
        }
        if (e->sql == NULL && free_slot == NULL)
            free_slot = e;
    }
    int rc = sqlite3_prepare_v3(s->db, sql, -1, free_slot ? SQLITE_PREPARE_PERSISTENT : 0, &q->st,
                                NULL);
    if (rc == SQLITE_OK && free_slot != NULL) {
        free_slot->sql = sql;
        free_slot->st = q->st;
        free_slot->in_use = true;
        q->slot = free_slot;
    }
    return rc;
}

/* Prepares sql (releasing what q held) and binds vals (may be NULL: no parameters). */
static int q_open(struct sq *s, struct q *q, const char *sql, const struct val *vals)
{
    q_close(q);
    q->s = s;
    q->sql = sql;
    int rc = prepare(s, q, sql);
    for (int i = 0; rc == SQLITE_OK && vals != NULL && vals[i].t != V_END; i++) {
        const struct val *v = &vals[i];
        if (v->t == V_INT)
            rc = sqlite3_bind_int64(q->st, i + 1, v->i);
        else if (v->p == NULL)
            rc = sqlite3_bind_null(q->st, i + 1);
        else if (v->t == V_TEXT)
            rc = sqlite3_bind_text64(q->st, i + 1, v->p, strlen(v->p), SQLITE_TRANSIENT,
                                     SQLITE_UTF8);
        else
            rc = sqlite3_bind_blob64(q->st, i + 1, v->p, v->n, SQLITE_TRANSIENT);
    }
    return rc == SQLITE_OK ? 0 : db_fail(s, rc, sql);
}

/* 1: a row; 0: done; else an ERR_ code (logged). */
static int q_step(struct q *q)
{
    int rc = sqlite3_step(q->st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return db_fail(q->s, rc, q->sql);
}

/* Steps to completion, ignoring rows. */
static int q_run(struct q *q)
{
    int r;
    while ((r = q_step(q)) == 1)
        ;
    return r;
}

/* 0 with the first row current, ERR_NOTFOUND when there is none. */
static int q_row(struct q *q)
{
    int r = q_step(q);
    return r == 1 ? 0 : r == 0 ? ERR_NOTFOUND : r;
}

/* Prepares and runs a statement that returns no rows. The caller holds the lock. */
static int run(struct sq *s, const char *sql, const struct val *vals)
{
    struct q q = {0};
    int r;
    if ((r = q_open(s, &q, sql, vals)) == 0)
        r = q_run(&q);
    q_close(&q);
    return r;
}

static int changes(struct sq *s)
{
    return sqlite3_changes(s->db); /* sqlite3_changes64 needs 3.37 */
}

static void lock(struct sq *s)
{
    pthread_mutex_lock(&s->mu);
}

static void unlock(struct sq *s)
{
    pthread_mutex_unlock(&s->mu);
}

/* One locked statement; with must_change, ERR_NOTFOUND when it changed no row. */
static int write1(struct sq *s, const char *sql, const struct val *vals, bool must_change)
{
    lock(s);
    int r = run(s, sql, vals);
    if (r == 0 && must_change && changes(s) == 0)
        r = ERR_NOTFOUND;
    unlock(s);
    return r;
}

static char *col_str(struct q *q, int i)
{
    const unsigned char *t = sqlite3_column_text(q->st, i);
    return t == NULL ? NULL : xstrdup((const char *)t);
}

static int64_t col_i64(struct q *q, int i)
{
    return sqlite3_column_int64(q->st, i);
}

/* false when NULL or not STORE_HASH_LEN bytes. */
static bool col_hash(struct q *q, int i, unsigned char out[STORE_HASH_LEN])
{
    const void *p = sqlite3_column_blob(q->st, i);
    if (p == NULL || sqlite3_column_bytes(q->st, i) != STORE_HASH_LEN)
        return false;
    memcpy(out, p, STORE_HASH_LEN);
    return true;
}

static json_t *col_json_str(struct q *q, int i)
{
    const unsigned char *t = sqlite3_column_text(q->st, i);
    json_t *j = t == NULL ? NULL : json_string((const char *)t);
    return j != NULL ? j : json_null();
}

/* Parses a JSON column; a NULL column gives json null; corrupt text gives NULL (logged). */
static json_t *col_json(struct q *q, int i)
{
    const unsigned char *t = sqlite3_column_text(q->st, i);
    if (t == NULL)
        return json_null();
    json_error_t e;
    json_t *j = json_loads((const char *)t, JSON_DECODE_ANY, &e);
    if (j == NULL)
        log_error("sqlite: %s: corrupt JSON column: %s", q->s->path, e.text);
    return j;
}

/* A write transaction: takes the write lock now (waiting up to the busy timeout), so a
 * read-then-write inside cannot fail on a stale snapshot. */
static int tx_begin(struct sq *s)
{
    return run(s, "BEGIN IMMEDIATE", NULL);
}

static int tx_commit(struct sq *s)
{
    return run(s, "COMMIT", NULL);
}

static void tx_rollback(struct sq *s)
{
    if (!sqlite3_get_autocommit(s->db) && run(s, "ROLLBACK", NULL) != 0)
        log_error("sqlite: %s: rollback failed", s->path);
}

/* revoked_at and rotated_at use 0 for "not yet": a time of 0 would undo the mark. */
static int64_t stamp(int64_t now)
{
    return now > 0 ? now : 1;
}

/* Appends one object per row, built by row(); more than max rows is ERR_TOOBIG. */
static int list_rows(struct q *q, size_t max, json_t *(*row)(struct q *q), json_t **out)
{
    int r;
    json_t *arr = json_array();
    while ((r = q_step(q)) == 1) {
        if (json_array_size(arr) >= max) {
            log_warn("sqlite: %s: more than %zu rows; refusing to list them", q->s->path, max);
            r = ERR_TOOBIG;
            goto out;
        }
        json_t *o = row(q);
        if (o == NULL) {
            r = ERR_IO;
            goto out;
        }
        json_array_append_new(arr, o);
    }
    if (r != 0)
        goto out;
    *out = arr;
    arr = NULL;
out:
    json_decref(arr);
    return r;
}

/* A locked listing: sql with vals, one object per row. */
static int list(struct sq *s, const char *sql, const struct val *vals, size_t max,
                json_t *(*row)(struct q *q), json_t **out)
{
    struct q q = {0};
    int r;
    lock(s);
    if ((r = q_open(s, &q, sql, vals)) == 0)
        r = list_rows(&q, max, row, out);
    q_close(&q);
    unlock(s);
    return r;
}

/* ---- open, migrate, close ---- */

static int user_version(struct sq *s, int *v)
{
    struct q q = {0};
    int r;
    if ((r = q_open(s, &q, "PRAGMA user_version", NULL)) != 0)
        goto out;
    if ((r = q_step(&q)) < 0)
        goto out;
    if (r == 0) {
        r = db_fail(s, SQLITE_ERROR, q.sql);
        goto out;
    }
    *v = sqlite3_column_int(q.st, 0);
    r = 0;
out:
    q_close(&q);
    return r;
}

static int refuse_newer(struct sq *s, int v)
{
    log_error("sqlite: %s: database schema version %d is newer than this mcpgate supports "
              "(%d); refusing to use it: upgrade mcpgate or restore a matching backup",
              s->path, v, SCHEMA_VERSION);
    return ERR_UNSUPPORTED;
}

static int migrate(struct sq *s)
{
    int r = ERR_INTERNAL;
    int v = 0;
    char *errmsg = NULL;

    for (;;) {
        if ((r = tx_begin(s)) != 0)
            goto out;
        /* Read again under the write lock: another process may have migrated meanwhile. */
        if ((r = user_version(s, &v)) != 0)
            goto out;
        if (v > SCHEMA_VERSION) {
            r = refuse_newer(s, v);
            goto out;
        }
        if (v == SCHEMA_VERSION)
            break;
        if (sqlite3_exec(s->db, store_sqlite_migrations[v], NULL, NULL, &errmsg) != SQLITE_OK) {
            log_error("sqlite: %s: migration %d failed: %s", s->path, v + 1,
                      errmsg != NULL ? errmsg : "?");
            r = ERR_IO;
            goto out;
        }
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
        /* Not run(): its statement cache is keyed by the address of the SQL text, which is
         * this buffer's for every migration, so a second one would reuse the first's. */
        if (sqlite3_exec(s->db, sql, NULL, NULL, &errmsg) != SQLITE_OK) {
            log_error("sqlite: %s: setting the schema version %d failed: %s", s->path, v + 1,
                      errmsg != NULL ? errmsg : "?");
            r = ERR_IO;
            goto out;
        }
        if ((r = tx_commit(s)) != 0)
            goto out;
        log_info("sqlite: %s: schema migrated to version %d", s->path, v + 1);
    }
    if ((r = tx_commit(s)) != 0)
        goto out;
    r = 0;
out:
    if (r != 0)
        tx_rollback(s);
    sqlite3_free(errmsg);
    return r;
}

/* Creates the file 0600 ourselves, before SQLite would create it 0644 & ~umask. The -wal and
 * -shm files SQLite creates take the database file's mode. */
static int create_private(const char *path)
{
    if (strcmp(path, ":memory:") == 0)
        return 0;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        int r = 0;
        if (fchmod(fd, 0600) != 0) {
            log_error("sqlite: %s: chmod: %s", path, strerror(errno));
            r = ERR_IO;
        }
        close(fd);
        return r;
    }
    if (errno != EEXIST) {
        log_error("sqlite: %s: create: %s", path, strerror(errno));
        return ERR_IO;
    }
    struct stat sb;
    if (stat(path, &sb) == 0 && (sb.st_mode & 077) != 0)
        log_warn("sqlite: %s: database file is accessible to other users (mode %03o)", path,
                 (unsigned)(sb.st_mode & 0777));
    return 0;
}

static void sq_close(void *impl)
{
    struct sq *s = impl;
    if (s == NULL)
        return;
    for (size_t i = 0; i < STMT_CACHE; i++)
        sqlite3_finalize(s->cache[i].st);
    if (s->db != NULL && sqlite3_close(s->db) != SQLITE_OK)
        log_error("sqlite: %s: close: %s", s->path, sqlite3_errmsg(s->db));
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s);
}

int store_sqlite_open(const char *path, void **impl)
{
    int r = ERR_INTERNAL;
    struct sq *s = NULL;
    struct q q = {0};
    int v = 0;

    *impl = NULL;
    if (sqlite3_libversion_number() < 3035000) {
        log_error("sqlite: library %s is too old (3.35 or later needed)", sqlite3_libversion());
        r = ERR_UNSUPPORTED;
        goto out;
    }
    if ((r = create_private(path)) != 0)
        goto out;
    s = xcalloc(1, sizeof(*s));
    s->path = xstrdup(path);
    pthread_mutex_init(&s->mu, NULL);
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        log_error("sqlite: %s: open: %s", path,
                  s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        r = ERR_IO;
        goto out;
    }
    sqlite3_extended_result_codes(s->db, 1);
    /* No writable_schema and the like: a corrupt or hostile file cannot be made worse. */
    if (sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(s->db, 5000) != SQLITE_OK) {
        r = db_fail(s, sqlite3_errcode(s->db), "configure");
        goto out;
    }
    /* Before anything writes: a database from a newer mcpgate is left as it is. */
    if ((r = user_version(s, &v)) != 0)
        goto out;
    if (v > SCHEMA_VERSION) {
        r = refuse_newer(s, v);
        goto out;
    }
    if ((r = q_open(s, &q, "PRAGMA journal_mode = WAL", NULL)) != 0)
        goto out;
    if ((r = q_step(&q)) < 0)
        goto out;
    if (r == 1) {
        const char *mode = (const char *)sqlite3_column_text(q.st, 0);
        if (mode != NULL && strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0)
            log_warn("sqlite: %s: journal mode is %s, not wal", path, mode);
    }
    q_close(&q);
    if ((r = run(s, "PRAGMA synchronous = NORMAL", NULL)) != 0 ||
        (r = run(s, "PRAGMA foreign_keys = ON", NULL)) != 0)
        goto out;
    if (v < SCHEMA_VERSION && (r = migrate(s)) != 0) /* an up-to-date open writes nothing */
        goto out;
    log_debug("sqlite: %s: open, schema version %d", path, SCHEMA_VERSION);
    *impl = s;
    s = NULL;
    r = 0;
out:
    q_close(&q);
    sq_close(s);
    return r;
}

/* ---- users ---- */

#define USER_SELECT                                                                                \
    "SELECT id, username, password_hash, created_at, failed_logins, locked_until FROM users "

static int user_get(struct sq *s, const char *sql, const struct val *key, struct store_user *u)
{
    struct q q = {0};
    int r;
    lock(s);
    if ((r = q_open(s, &q, sql, key)) != 0 || (r = q_row(&q)) != 0)
        goto out;
    u->id = col_i64(&q, 0);
    u->username = col_str(&q, 1);
    u->password_hash = col_str(&q, 2);
    u->created_at = col_i64(&q, 3);
    u->failed_logins = (int)col_i64(&q, 4);
    u->locked_until = col_i64(&q, 5);
out:
    q_close(&q);
    unlock(s);
    return r;
}

static int sq_user_add(void *impl, const char *username, const char *password_hash, int64_t now,
                       int64_t *id)
{
    struct sq *s = impl;
    lock(s);
    int r = run(s, "INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?)",
                VALS(V_S(username), V_S(password_hash), V_I(now)));
    if (r == 0 && id != NULL)
        *id = sqlite3_last_insert_rowid(s->db);
    unlock(s);
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
    json_object_set_new(o, "id", json_integer(col_i64(q, 0)));
    json_object_set_new(o, "username", col_json_str(q, 1));
    json_object_set_new(o, "created_at", json_integer(col_i64(q, 2)));
    return o;
}

static int sq_user_list(void *impl, json_t **out)
{
    return list(impl, "SELECT id, username, created_at FROM users ORDER BY id", NULL,
                STORE_LIST_MAX, user_row, out);
}

static int count_rows(struct sq *s, const char *sql, int64_t *n)
{
    struct q q = {0};
    int r;
    lock(s);
    if ((r = q_open(s, &q, sql, NULL)) == 0 && (r = q_row(&q)) == 0)
        *n = col_i64(&q, 0);
    q_close(&q);
    unlock(s);
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
        r = run(s, sql[i], VALS(V_I(stamp(now)), key));
    return r;
}

static int sq_user_remove(void *impl, const char *username)
{
    struct sq *s = impl;
    struct q q = {0};
    int64_t id;
    int r;
    lock(s);
    if ((r = tx_begin(s)) != 0)
        goto out;
    if ((r = q_open(s, &q, "SELECT id FROM users WHERE username = ?", VALS(V_S(username)))) != 0 ||
        (r = q_row(&q)) != 0)
        goto out;
    id = col_i64(&q, 0);
    q_close(&q);
    if ((r = revoke_grants(s, revoke_by_user, (struct val)V_I(id), (int64_t)time(NULL))) != 0 ||
        (r = run(s, "DELETE FROM consents WHERE user_id = ?", VALS(V_I(id)))) != 0 ||
        (r = run(s, "DELETE FROM browser_sessions WHERE user_id = ?", VALS(V_I(id)))) != 0 ||
        (r = run(s, "DELETE FROM users WHERE id = ?", VALS(V_I(id)))) != 0)
        goto out;
    r = tx_commit(s);
out:
    q_close(&q);
    if (r != 0)
        tx_rollback(s);
    unlock(s);
    return r;
}

static int sq_user_set_password(void *impl, const char *username, const char *password_hash)
{
    return write1(impl, "UPDATE users SET password_hash = ? WHERE username = ?",
                  VALS(V_S(password_hash), V_S(username)), true);
}

static int sq_user_login_result(void *impl, int64_t id, bool ok, int64_t locked_until)
{
    if (ok)
        return write1(impl, "UPDATE users SET failed_logins = 0, locked_until = 0 WHERE id = ?",
                      VALS(V_I(id)), true);
    return write1(impl,
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
    int r = write1(impl,
                   "INSERT INTO clients (client_id, kind, secret_hash, reg_token_hash, metadata, "
                   "first_party, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT (client_id) DO UPDATE SET kind = excluded.kind, "
                   "secret_hash = excluded.secret_hash, reg_token_hash = excluded.reg_token_hash, "
                   "metadata = excluded.metadata, first_party = excluded.first_party, "
                   "expires_at = excluded.expires_at",
                   VALS(V_S(c->client_id), V_I((int64_t)c->kind),
                        V_H(c->has_secret ? c->secret_hash : NULL),
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
    lock(s);
    if ((r = q_open(s, &q,
                    "SELECT client_id, kind, secret_hash, reg_token_hash, metadata, first_party, "
                    "created_at, expires_at FROM clients WHERE client_id = ?",
                    VALS(V_S(client_id)))) != 0 ||
        (r = q_row(&q)) != 0)
        goto out;
    if ((out->metadata = col_json(&q, 4)) == NULL) {
        r = ERR_IO;
        goto out;
    }
    out->client_id = col_str(&q, 0);
    out->kind = (enum store_client_kind)col_i64(&q, 1);
    out->has_secret = col_hash(&q, 2, out->secret_hash);
    out->has_reg_token = col_hash(&q, 3, out->reg_token_hash);
    out->first_party = col_i64(&q, 5) != 0;
    out->created_at = col_i64(&q, 6);
    out->expires_at = col_i64(&q, 7);
out:
    q_close(&q);
    unlock(s);
    return r;
}

static json_t *client_row(struct q *q)
{
    json_t *meta = col_json(q, 6);
    if (meta == NULL)
        return NULL;
    json_t *o = json_object();
    json_object_set_new(o, "client_id", col_json_str(q, 0));
    json_object_set_new(o, "kind",
                        json_string(store_client_kind_name((enum store_client_kind)col_i64(q, 1))));
    json_object_set_new(o, "has_secret", json_boolean(col_i64(q, 2) != 0));
    json_object_set_new(o, "first_party", json_boolean(col_i64(q, 3) != 0));
    json_object_set_new(o, "created_at", json_integer(col_i64(q, 4)));
    json_object_set_new(o, "expires_at", json_integer(col_i64(q, 5)));
    json_object_set_new(o, "metadata", meta);
    return o;
}

static int sq_client_list(void *impl, json_t **out)
{
    return list(impl,
                "SELECT client_id, kind, secret_hash IS NOT NULL, first_party, created_at, "
                "expires_at, metadata FROM clients ORDER BY created_at, client_id",
                NULL, STORE_LIST_MAX, client_row, out);
}

static int sq_client_remove(void *impl, const char *client_id)
{
    struct sq *s = impl;
    int r;
    lock(s);
    if ((r = tx_begin(s)) != 0)
        goto out;
    if ((r = run(s, "DELETE FROM clients WHERE client_id = ?", VALS(V_S(client_id)))) != 0)
        goto out;
    if (changes(s) == 0) {
        r = ERR_NOTFOUND;
        goto out;
    }
    struct val key = V_S(client_id);
    if ((r = revoke_grants(s, revoke_by_client, key, (int64_t)time(NULL))) != 0 ||
        (r = run(s, "DELETE FROM consents WHERE client_id = ?", VALS(key))) != 0)
        goto out;
    r = tx_commit(s);
out:
    if (r != 0)
        tx_rollback(s);
    unlock(s);
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
    return run(s,
               "INSERT INTO grants (grant_id, user_id, client_id, scope, resource, created_at, "
               "revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
               VALS(V_S(g->grant_id), V_I(g->user_id), V_S(g->client_id), V_S(g->scope),
                    V_S(g->resource), V_I(g->created_at), V_I(g->revoked_at)));
}

static int sq_grant_put(void *impl, const struct store_grant *g)
{
    struct sq *s = impl;
    lock(s);
    int r = insert_grant(s, g);
    unlock(s);
    return r;
}

static int sq_grant_get(void *impl, const char *grant_id, struct store_grant *out)
{
    struct sq *s = impl;
    struct q q = {0};
    int r;
    lock(s);
    if ((r = q_open(s, &q,
                    "SELECT grant_id, user_id, client_id, scope, resource, created_at, revoked_at "
                    "FROM grants WHERE grant_id = ?",
                    VALS(V_S(grant_id)))) != 0 ||
        (r = q_row(&q)) != 0)
        goto out;
    out->grant_id = col_str(&q, 0);
    out->user_id = col_i64(&q, 1);
    out->client_id = col_str(&q, 2);
    out->scope = col_str(&q, 3);
    out->resource = col_str(&q, 4);
    out->created_at = col_i64(&q, 5);
    out->revoked_at = col_i64(&q, 6);
out:
    q_close(&q);
    unlock(s);
    return r;
}

static int sq_grant_revoke(void *impl, const char *grant_id, int64_t now)
{
    struct sq *s = impl;
    struct q q = {0};
    int r;
    lock(s);
    if ((r = tx_begin(s)) != 0)
        goto out;
    if ((r = q_open(s, &q, "SELECT 1 FROM grants WHERE grant_id = ?", VALS(V_S(grant_id)))) != 0 ||
        (r = q_row(&q)) != 0)
        goto out;
    q_close(&q);
    /* Also when already revoked: catches tokens stored since. */
    if ((r = revoke_grants(s, revoke_by_grant, (struct val)V_S(grant_id), now)) != 0)
        goto out;
    r = tx_commit(s);
out:
    q_close(&q);
    if (r != 0)
        tx_rollback(s);
    unlock(s);
    return r;
}

static json_t *grant_row(struct q *q)
{
    json_t *o = json_object();
    json_object_set_new(o, "grant_id", col_json_str(q, 0));
    json_object_set_new(o, "client_id", col_json_str(q, 1));
    json_object_set_new(o, "scope", col_json_str(q, 2));
    json_object_set_new(o, "created_at", json_integer(col_i64(q, 3)));
    return o;
}

static int sq_grants_of_user(void *impl, int64_t user_id, json_t **out)
{
    return list(impl,
                "SELECT grant_id, client_id, scope, created_at FROM grants "
                "WHERE user_id = ? AND revoked_at = 0 ORDER BY created_at DESC, rowid DESC",
                VALS(V_I(user_id)), STORE_LIST_MAX, grant_row, out);
}

/* ---- codes ---- */

static int sq_code_put(void *impl, const struct store_code *c)
{
    return write1(impl,
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
    (void)col_hash(q, 0, c->hash); /* the key: CHECKed to be STORE_HASH_LEN bytes */
    c->grant_id = col_str(q, 1);
    c->client_id = col_str(q, 2);
    c->redirect_uri = col_str(q, 3);
    c->code_challenge = col_str(q, 4);
    c->scope = col_str(q, 5);
    c->resource = col_str(q, 6);
    c->user_id = col_i64(q, 7);
    c->expires_at = col_i64(q, 8);
    c->used = col_i64(q, 9) != 0;
}

static int sq_code_take(void *impl, const unsigned char hash[STORE_HASH_LEN],
                        struct store_code *out)
{
    struct sq *s = impl;
    struct q q = {0};
    int r;
    lock(s);
    /* One statement: of racing takers, in any process, exactly one sees the row change. */
    if ((r = q_open(s, &q,
                    "UPDATE codes SET used = 1 WHERE hash = ? AND used = 0 RETURNING " CODE_COLS,
                    VALS(V_H(hash)))) != 0 ||
        (r = q_step(&q)) < 0)
        goto out;
    if (r == 1) {
        read_code(&q, out);
        if ((r = q_run(&q)) != 0) /* to completion: the autocommit transaction ends here */
            store_code_clear(out);
        goto out;
    }
    /* Nothing changed: used before, or unknown. */
    r = q_open(s, &q, "SELECT " CODE_COLS " FROM codes WHERE hash = ?", VALS(V_H(hash)));
    if (r != 0 || (r = q_row(&q)) != 0)
        goto out;
    read_code(&q, out);
    r = ERR_EXISTS;
out:
    q_close(&q);
    unlock(s);
    return r;
}

/* ---- refresh tokens ---- */

#define REFRESH_SELECT                                                                             \
    "SELECT hash, grant_id, created_at, expires_at, rotated_at FROM refresh_tokens WHERE hash = ?"

static void read_refresh(struct q *q, struct store_refresh *rt)
{
    (void)col_hash(q, 0, rt->hash);
    rt->grant_id = col_str(q, 1);
    rt->created_at = col_i64(q, 2);
    rt->expires_at = col_i64(q, 3);
    rt->rotated_at = col_i64(q, 4);
}

static int insert_refresh(struct sq *s, const struct store_refresh *rt, const char *grant_id)
{
    return run(s,
               "INSERT INTO refresh_tokens (hash, grant_id, created_at, expires_at, rotated_at) "
               "VALUES (?, ?, ?, ?, ?)",
               VALS(V_H(rt->hash), V_S(grant_id), V_I(rt->created_at), V_I(rt->expires_at),
                    V_I(rt->rotated_at)));
}

static int sq_refresh_put(void *impl, const struct store_refresh *rt)
{
    struct sq *s = impl;
    lock(s);
    int r = insert_refresh(s, rt, rt->grant_id);
    unlock(s);
    return r;
}

static int sq_refresh_rotate(void *impl, const unsigned char old[STORE_HASH_LEN],
                             const struct store_refresh *next, int64_t now,
                             struct store_refresh *old_out)
{
    struct sq *s = impl;
    struct q q = {0};
    int r;
    lock(s);
    if ((r = tx_begin(s)) != 0)
        goto out;
    if ((r = q_open(s, &q, REFRESH_SELECT, VALS(V_H(old)))) != 0 || (r = q_row(&q)) != 0)
        goto out;
    read_refresh(&q, old_out);
    q_close(&q);
    if (old_out->rotated_at != 0) {
        r = ERR_EXISTS; /* reuse: the record goes back all the same */
        goto out;
    }
    if (next->grant_id != NULL && strcmp(next->grant_id, old_out->grant_id) != 0) {
        log_error("sqlite: %s: refresh rotation across grants refused", s->path);
        r = ERR_INVALID;
        goto out;
    }
    if ((r = run(s, "UPDATE refresh_tokens SET rotated_at = ? WHERE hash = ? AND rotated_at = 0",
                 VALS(V_I(stamp(now)), V_H(old)))) != 0)
        goto out;
    if (changes(s) != 1) { /* impossible under the write lock */
        r = ERR_INTERNAL;
        goto out;
    }
    if ((r = insert_refresh(s, next, old_out->grant_id)) != 0 || (r = tx_commit(s)) != 0)
        goto out;
    old_out->rotated_at = stamp(now);
out:
    q_close(&q);
    if (r != 0) {
        tx_rollback(s);
        if (r != ERR_EXISTS)
            store_refresh_clear(old_out);
    }
    unlock(s);
    return r;
}

static int sq_refresh_get(void *impl, const unsigned char hash[STORE_HASH_LEN],
                          struct store_refresh *out)
{
    struct sq *s = impl;
    struct q q = {0};
    int r;
    lock(s);
    if ((r = q_open(s, &q, REFRESH_SELECT, VALS(V_H(hash)))) == 0 && (r = q_row(&q)) == 0)
        read_refresh(&q, out);
    q_close(&q);
    unlock(s);
    return r;
}

/* ---- access tokens ---- */

static int sq_access_put(void *impl, const unsigned char jti_hash[STORE_HASH_LEN],
                         const char *grant_id, int64_t expires_at)
{
    return write1(impl,
                  "INSERT INTO access_tokens (jti_hash, grant_id, expires_at) VALUES (?, ?, ?)",
                  VALS(V_H(jti_hash), V_S(grant_id), V_I(expires_at)), false);
}

static int sq_access_check(void *impl, const unsigned char jti_hash[STORE_HASH_LEN])
{
    struct sq *s = impl;
    struct q q = {0};
    int r;
    lock(s);
    if ((r = q_open(s, &q,
                    "SELECT a.revoked_at, coalesce(g.revoked_at, 0) FROM access_tokens a "
                    "LEFT JOIN grants g ON g.grant_id = a.grant_id WHERE a.jti_hash = ?",
                    VALS(V_H(jti_hash)))) == 0 &&
        (r = q_row(&q)) == 0 && (col_i64(&q, 0) != 0 || col_i64(&q, 1) != 0))
        r = ERR_INVALID;
    q_close(&q);
    unlock(s);
    return r;
}

static int sq_access_revoke(void *impl, const unsigned char jti_hash[STORE_HASH_LEN], int64_t now)
{
    /* Idempotent: a revoked token keeps its first revocation time. */
    return write1(impl,
                  "UPDATE access_tokens SET revoked_at = "
                  "CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END WHERE jti_hash = ?",
                  VALS(V_I(stamp(now)), V_H(jti_hash)), true);
}

/* A locked SELECT of one text column; the string goes to *out. */
static int get_text(struct sq *s, const char *sql, const struct val *vals, char **out)
{
    struct q q = {0};
    int r;
    lock(s);
    if ((r = q_open(s, &q, sql, vals)) == 0 && (r = q_row(&q)) == 0)
        *out = col_str(&q, 0);
    q_close(&q);
    unlock(s);
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
    return write1(
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
    return write1(impl, "DELETE FROM consents WHERE user_id = ? AND client_id = ?",
                  VALS(V_I(user_id), V_S(client_id)), true);
}

/* ---- browser sessions ---- */

static int sq_bsession_put(void *impl, const struct store_browser_session *b)
{
    return write1(
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
    lock(s);
    if ((r = q_open(s, &q,
                    "SELECT hash, user_id, csrf, created_at, expires_at, device_failures "
                    "FROM browser_sessions WHERE hash = ? AND expires_at > ?",
                    VALS(V_H(hash), V_I(now)))) != 0 ||
        (r = q_row(&q)) != 0)
        goto out;
    (void)col_hash(&q, 0, out->hash);
    out->user_id = col_i64(&q, 1);
    out->csrf = col_str(&q, 2);
    out->created_at = col_i64(&q, 3);
    out->expires_at = col_i64(&q, 4);
    out->device_failures = (int)col_i64(&q, 5);
out:
    q_close(&q);
    unlock(s);
    return r;
}

static int sq_bsession_device_failure(void *impl, const unsigned char hash[STORE_HASH_LEN],
                                      int *failures)
{
    struct sq *s = impl;
    struct q q = {0};
    int r;
    lock(s);
    if ((r = q_open(s, &q,
                    "UPDATE browser_sessions SET device_failures = device_failures + 1 "
                    "WHERE hash = ? RETURNING device_failures",
                    VALS(V_H(hash)))) == 0 &&
        (r = q_row(&q)) == 0) {
        *failures = (int)col_i64(&q, 0);
        r = q_run(&q); /* to completion: the autocommit transaction ends here */
    }
    q_close(&q);
    unlock(s);
    return r;
}

static int sq_bsession_remove(void *impl, const unsigned char hash[STORE_HASH_LEN])
{
    return write1(impl, "DELETE FROM browser_sessions WHERE hash = ?", VALS(V_H(hash)), true);
}

/* ---- device authorizations ---- */

#define DEVICE_COLS                                                                                \
    "hash, user_hash, client_id, scope, resource, created_at, expires_at, poll_interval, "        \
    "last_poll, status, user_id, grant_id"

static void read_device(struct q *q, struct store_device *d)
{
    (void)col_hash(q, 0, d->hash); /* both CHECKed to be STORE_HASH_LEN bytes */
    (void)col_hash(q, 1, d->user_hash);
    d->client_id = col_str(q, 2);
    d->scope = col_str(q, 3);
    d->resource = col_str(q, 4);
    d->created_at = col_i64(q, 5);
    d->expires_at = col_i64(q, 6);
    d->interval = col_i64(q, 7);
    d->last_poll = col_i64(q, 8);
    d->status = (enum store_device_status)col_i64(q, 9);
    d->user_id = col_i64(q, 10);
    d->grant_id = col_str(q, 11);
}

static int sq_device_put(void *impl, const struct store_device *d)
{
    struct sq *s = impl;
    int r;
    lock(s);
    if ((r = tx_begin(s)) != 0)
        goto out;
    if ((r = run(s, "DELETE FROM device_codes WHERE expires_at <= ?",
                 VALS(V_I(d->created_at)))) != 0 ||
        (r = run(s,
                 "INSERT INTO device_codes (hash, user_hash, client_id, scope, resource, "
                 "created_at, expires_at, poll_interval) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 VALS(V_H(d->hash), V_H(d->user_hash), V_S(d->client_id), V_S(d->scope),
                      V_S(d->resource), V_I(d->created_at), V_I(d->expires_at),
                      V_I(d->interval)))) != 0)
        goto out;
    r = tx_commit(s);
out:
    if (r != 0)
        tx_rollback(s);
    unlock(s);
    return r;
}

static int device_get(struct sq *s, const char *sql, const unsigned char key[STORE_HASH_LEN],
                      struct store_device *out)
{
    struct q q = {0};
    int r;
    lock(s);
    if ((r = q_open(s, &q, sql, VALS(V_H(key)))) == 0 && (r = q_row(&q)) == 0)
        read_device(&q, out);
    q_close(&q);
    unlock(s);
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

static int sq_device_decide(void *impl, const unsigned char user_hash[STORE_HASH_LEN],
                            int64_t now, int64_t user_id, const struct store_grant *g)
{
    struct sq *s = impl;
    int r;
    lock(s);
    if ((r = tx_begin(s)) != 0)
        goto out;
    if ((r = run(s,
                 "UPDATE device_codes SET status = ?, user_id = ?, grant_id = ? "
                 "WHERE user_hash = ? AND status = 0 AND expires_at > ?",
                 VALS(V_I(g != NULL ? DEVICE_APPROVED : DEVICE_DENIED), V_I(user_id),
                      V_S(g != NULL ? g->grant_id : NULL), V_H(user_hash), V_I(now)))) != 0)
        goto out;
    if (changes(s) != 1) {
        r = ERR_NOTFOUND;
        goto out;
    }
    if (g == NULL || (r = insert_grant(s, g)) == 0)
        r = tx_commit(s);
out:
    if (r != 0)
        tx_rollback(s);
    unlock(s);
    return r;
}

static int sq_device_poll(void *impl, const unsigned char hash[STORE_HASH_LEN], int64_t now,
                          int64_t step, struct store_device *out, bool *slow)
{
    struct sq *s = impl;
    struct q q = {0};
    int r;
    lock(s);
    if ((r = tx_begin(s)) != 0)
        goto out;
    if ((r = q_open(s, &q, "SELECT " DEVICE_COLS " FROM device_codes WHERE hash = ?",
                    VALS(V_H(hash)))) != 0 ||
        (r = q_row(&q)) != 0)
        goto out;
    read_device(&q, out);
    q_close(&q);
    if (out->expires_at > now && out->status == DEVICE_PENDING) {
        *slow = out->last_poll != 0 && now - out->last_poll < out->interval;
        r = run(s, "UPDATE device_codes SET last_poll = ?, poll_interval = ? WHERE hash = ?",
                VALS(V_I(stamp(now)), V_I(out->interval + (*slow ? step : 0)), V_H(hash)));
    } else if (out->expires_at > now && out->status == DEVICE_APPROVED) {
        r = run(s, "UPDATE device_codes SET status = 3 WHERE hash = ? AND status = 1",
                VALS(V_H(hash)));
        if (r == 0 && changes(s) != 1) /* impossible under the write lock */
            r = ERR_INTERNAL;
    }
    if (r == 0)
        r = tx_commit(s);
out:
    q_close(&q);
    if (r != 0) {
        tx_rollback(s);
        store_device_clear(out);
        *slow = false;
    }
    unlock(s);
    return r;
}

/* ---- signing keys ---- */

static int sq_key_put(void *impl, const struct store_key *k)
{
    /* sealed is NOT NULL: an empty one still binds a zero-length blob. */
    const void *sealed = k->sealed != NULL ? (const void *)k->sealed : (const void *)"";
    return write1(impl,
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
    lock(s);
    if ((r = q_open(s, &q,
                    "SELECT kid, alg, sealed, public_jwk, created_at, retired_at FROM signing_keys "
                    "ORDER BY retired_at = 0 DESC, retired_at DESC, created_at DESC, kid",
                    NULL)) != 0)
        goto out;
    while ((r = q_step(&q)) == 1) {
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
        k->kid = col_str(&q, 0);
        k->alg = col_str(&q, 1);
        const void *p = sqlite3_column_blob(q.st, 2);
        int bytes = sqlite3_column_bytes(q.st, 2);
        k->sealed_len = p != NULL && bytes > 0 ? (size_t)bytes : 0;
        k->sealed = xmalloc(k->sealed_len);
        if (k->sealed_len > 0)
            memcpy(k->sealed, p, k->sealed_len);
        k->public_jwk = col_str(&q, 3);
        k->created_at = col_i64(&q, 4);
        k->retired_at = col_i64(&q, 5);
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
    q_close(&q);
    unlock(s);
    return r;
}

static int sq_key_retire_current(void *impl, int64_t now)
{
    return write1(impl, "UPDATE signing_keys SET retired_at = ? WHERE retired_at = 0",
                  VALS(V_I(stamp(now))), false);
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
    int r = write1(impl,
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
    lock(s);
    if ((r = tx_begin(s)) != 0)
        goto out;
    size_t i;
    const json_t *e;
    json_array_foreach(events, i, e) {
        json_t *detail = json_object_get(e, "detail");
        char *text = detail != NULL && !json_is_null(detail)
                         ? json_dumps(detail, JSON_COMPACT | JSON_ENCODE_ANY)
                         : NULL;
        r = run(s,
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
        r = tx_commit(s);
    if (r != 0)
        tx_rollback(s);
out:
    unlock(s);
    return r;
}

static json_t *audit_row(struct q *q)
{
    json_t *detail = col_json(q, 5);
    if (detail == NULL)
        return NULL;
    json_t *o = json_object();
    json_object_set_new(o, "ts", json_integer(col_i64(q, 0)));
    json_object_set_new(o, "event", col_json_str(q, 1));
    json_object_set_new(o, "user", col_json_str(q, 2));
    json_object_set_new(o, "client", col_json_str(q, 3));
    json_object_set_new(o, "ip", col_json_str(q, 4));
    json_object_set_new(o, "detail", detail);
    return o;
}

static int sq_audit_list(void *impl, int64_t since, const char *user, unsigned limit, json_t **out)
{
    /* Two statements rather than "?2 IS NULL OR user = ?2", so each can use its index. */
    if (user == NULL)
        return list(impl,
                    "SELECT ts, event, user, client, ip, detail FROM audit WHERE ts >= ? "
                    "ORDER BY ts DESC, id DESC LIMIT ?",
                    VALS(V_I(since), V_I((int64_t)limit)), limit, audit_row, out);
    return list(impl,
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
    lock(s);
    if ((r = tx_begin(s)) != 0)
        goto out;
    for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
        if ((r = run(s, sql[i], VALS(V_I(now)))) != 0)
            goto out;
        n += changes(s);
    }
    if ((r = tx_commit(s)) != 0)
        goto out;
    if (n > 0)
        log_info("sqlite: %s: deleted %lld expired rows", s->path, (long long)n);
out:
    if (r != 0)
        tx_rollback(s);
    unlock(s);
    return r;
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
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
