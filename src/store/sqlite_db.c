/* The SQLite backend's plumbing (see sqlite_int.h). One connection per store handle, opened
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "store/sqlite_int.h"

/* ---- schema (store/sqlite_schema.c) ---- */

#define SCHEMA_VERSION store_sqlite_schema_version

/* ---- connection and statements ---- */

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

void sqdb_q_close(struct q *q)
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
    int rc =
        sqlite3_prepare_v3(s->db, sql, -1, free_slot ? SQLITE_PREPARE_PERSISTENT : 0, &q->st, NULL);
    if (rc == SQLITE_OK && free_slot != NULL) {
        free_slot->sql = sql;
        free_slot->st = q->st;
        free_slot->in_use = true;
        q->slot = free_slot;
    }
    return rc;
}

/* Prepares sql (releasing what q held) and binds vals (may be NULL: no parameters). */
int sqdb_q_open(struct sq *s, struct q *q, const char *sql, const struct val *vals)
{
    sqdb_q_close(q);
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
int sqdb_q_step(struct q *q)
{
    int rc = sqlite3_step(q->st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return db_fail(q->s, rc, q->sql);
}

/* Steps to completion, ignoring rows. */
int sqdb_q_run(struct q *q)
{
    int r;
    while ((r = sqdb_q_step(q)) == 1)
        ;
    return r;
}

/* 0 with the first row current, ERR_NOTFOUND when there is none. */
int sqdb_q_row(struct q *q)
{
    int r = sqdb_q_step(q);
    return r == 1 ? 0 : r == 0 ? ERR_NOTFOUND : r;
}

/* Prepares and runs a statement that returns no rows. The caller holds the lock. */
int sqdb_run(struct sq *s, const char *sql, const struct val *vals)
{
    struct q q = {0};
    int r;
    if ((r = sqdb_q_open(s, &q, sql, vals)) == 0)
        r = sqdb_q_run(&q);
    sqdb_q_close(&q);
    return r;
}

int sqdb_changes(struct sq *s)
{
    return sqlite3_changes(s->db); /* sqlite3_changes64 needs 3.37 */
}

void sqdb_lock(struct sq *s)
{
    pthread_mutex_lock(&s->mu);
}

void sqdb_unlock(struct sq *s)
{
    pthread_mutex_unlock(&s->mu);
}

/* One locked statement; with must_change, ERR_NOTFOUND when it changed no row. */
int sqdb_write1(struct sq *s, const char *sql, const struct val *vals, bool must_change)
{
    sqdb_lock(s);
    int r = sqdb_run(s, sql, vals);
    if (r == 0 && must_change && sqdb_changes(s) == 0)
        r = ERR_NOTFOUND;
    sqdb_unlock(s);
    return r;
}

char *sqdb_col_str(struct q *q, int i)
{
    const unsigned char *t = sqlite3_column_text(q->st, i);
    return t == NULL ? NULL : xstrdup((const char *)t);
}

int64_t sqdb_col_i64(struct q *q, int i)
{
    return sqlite3_column_int64(q->st, i);
}

/* false when NULL or not STORE_HASH_LEN bytes. */
bool sqdb_col_hash(struct q *q, int i, unsigned char out[STORE_HASH_LEN])
{
    const void *p = sqlite3_column_blob(q->st, i);
    if (p == NULL || sqlite3_column_bytes(q->st, i) != STORE_HASH_LEN)
        return false;
    memcpy(out, p, STORE_HASH_LEN);
    return true;
}

json_t *sqdb_col_json_str(struct q *q, int i)
{
    const unsigned char *t = sqlite3_column_text(q->st, i);
    json_t *j = t == NULL ? NULL : json_string((const char *)t);
    return j != NULL ? j : json_null();
}

/* Parses a JSON column; a NULL column gives json null; corrupt text gives NULL (logged). */
json_t *sqdb_col_json(struct q *q, int i)
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
int sqdb_tx_begin(struct sq *s)
{
    return sqdb_run(s, "BEGIN IMMEDIATE", NULL);
}

int sqdb_tx_commit(struct sq *s)
{
    return sqdb_run(s, "COMMIT", NULL);
}

void sqdb_tx_rollback(struct sq *s)
{
    if (!sqlite3_get_autocommit(s->db) && sqdb_run(s, "ROLLBACK", NULL) != 0)
        log_error("sqlite: %s: rollback failed", s->path);
}

/* revoked_at and rotated_at use 0 for "not yet": a time of 0 would undo the mark. */
int64_t sqdb_stamp(int64_t now)
{
    return now > 0 ? now : 1;
}

/* Appends one object per row, built by row(); more than max rows is ERR_TOOBIG. */
static int list_rows(struct q *q, size_t max, json_t *(*row)(struct q *q), json_t **out)
{
    int r;
    json_t *arr = json_array();
    while ((r = sqdb_q_step(q)) == 1) {
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
int sqdb_list(struct sq *s, const char *sql, const struct val *vals, size_t max,
              json_t *(*row)(struct q *q), json_t **out)
{
    struct q q = {0};
    int r;
    sqdb_lock(s);
    if ((r = sqdb_q_open(s, &q, sql, vals)) == 0)
        r = list_rows(&q, max, row, out);
    sqdb_q_close(&q);
    sqdb_unlock(s);
    return r;
}

/* ---- open, migrate, close ---- */

static int user_version(struct sq *s, int *v)
{
    struct q q = {0};
    int r;
    if ((r = sqdb_q_open(s, &q, "PRAGMA user_version", NULL)) != 0)
        goto out;
    if ((r = sqdb_q_step(&q)) < 0)
        goto out;
    if (r == 0) {
        r = db_fail(s, SQLITE_ERROR, q.sql);
        goto out;
    }
    *v = sqlite3_column_int(q.st, 0);
    r = 0;
out:
    sqdb_q_close(&q);
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
        if ((r = sqdb_tx_begin(s)) != 0)
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
        /* Not sqdb_run(): its statement cache is keyed by the address of the SQL text, which is
         * this buffer's for every migration, so a second one would reuse the first's. */
        if (sqlite3_exec(s->db, sql, NULL, NULL, &errmsg) != SQLITE_OK) {
            log_error("sqlite: %s: setting the schema version %d failed: %s", s->path, v + 1,
                      errmsg != NULL ? errmsg : "?");
            r = ERR_IO;
            goto out;
        }
        if ((r = sqdb_tx_commit(s)) != 0)
            goto out;
        log_info("sqlite: %s: schema migrated to version %d", s->path, v + 1);
    }
    if ((r = sqdb_tx_commit(s)) != 0)
        goto out;
    r = 0;
out:
    if (r != 0)
        sqdb_tx_rollback(s);
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

void sqdb_close(void *impl)
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
    if ((r = sqdb_q_open(s, &q, "PRAGMA journal_mode = WAL", NULL)) != 0)
        goto out;
    if ((r = sqdb_q_step(&q)) < 0)
        goto out;
    if (r == 1) {
        const char *mode = (const char *)sqlite3_column_text(q.st, 0);
        if (mode != NULL && strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0)
            log_warn("sqlite: %s: journal mode is %s, not wal", path, mode);
    }
    sqdb_q_close(&q);
    if ((r = sqdb_run(s, "PRAGMA synchronous = NORMAL", NULL)) != 0 ||
        (r = sqdb_run(s, "PRAGMA foreign_keys = ON", NULL)) != 0)
        goto out;
    if (v < SCHEMA_VERSION && (r = migrate(s)) != 0) /* an up-to-date open writes nothing */
        goto out;
    log_debug("sqlite: %s: open, schema version %d", path, SCHEMA_VERSION);
    *impl = s;
    s = NULL;
    r = 0;
out:
    sqdb_q_close(&q);
    sqdb_close(s);
    return r;
}
