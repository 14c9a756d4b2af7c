/* The SQLite backend's plumbing shared by sqlite_db.c (the connection, its statement cache,
 * bound values, rows, transactions, open and migrate) and sqlite.c (the store's tables). The
 * only includers of sqlite3.h. */
#ifndef MCPGATE_STORE_SQLITE_INT_H
#define MCPGATE_STORE_SQLITE_INT_H

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store_int.h"

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

/* A statement with vals bound (sqdb_q_close it); sqdb_q_step: 1 a row, 0 done, < 0 error;
 * sqdb_q_run: stepped to the end; sqdb_q_row: exactly one row (ERR_NOTFOUND for none). */
int sqdb_q_open(struct sq *s, struct q *q, const char *sql, const struct val *vals);
int sqdb_q_step(struct q *q);
int sqdb_q_run(struct q *q);
int sqdb_q_row(struct q *q);
void sqdb_q_close(struct q *q);
/* One statement run to its end; rows changed by the last one. */
int sqdb_run(struct sq *s, const char *sql, const struct val *vals);
int sqdb_changes(struct sq *s);
/* The handle's mutex, held for each whole operation. */
void sqdb_lock(struct sq *s);
void sqdb_unlock(struct sq *s);
/* One locked statement; with must_change, ERR_NOTFOUND when it changed no row. */
int sqdb_write1(struct sq *s, const char *sql, const struct val *vals, bool must_change);
/* Columns of the current row. col_hash: false when NULL or not STORE_HASH_LEN bytes;
 * col_json: a NULL column gives json null, corrupt text NULL (logged). */
char *sqdb_col_str(struct q *q, int i);
int64_t sqdb_col_i64(struct q *q, int i);
bool sqdb_col_hash(struct q *q, int i, unsigned char out[STORE_HASH_LEN]);
json_t *sqdb_col_json_str(struct q *q, int i);
json_t *sqdb_col_json(struct q *q, int i);
/* A write transaction, begun IMMEDIATE. */
int sqdb_tx_begin(struct sq *s);
int sqdb_tx_commit(struct sq *s);
void sqdb_tx_rollback(struct sq *s);
/* revoked_at and rotated_at use 0 for "not yet": a time of 0 would undo the mark. */
int64_t sqdb_stamp(int64_t now);
/* A locked listing: sql with vals, at most max rows, one object per row. */
int sqdb_list(struct sq *s, const char *sql, const struct val *vals, size_t max,
              json_t *(*row)(struct q *q), json_t **out);
/* The store's close (store_sqlite_open is store_int.h's). */
void sqdb_close(void *impl);

#endif
