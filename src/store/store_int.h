/* Private to store/: the table of operations a backend provides. store.c parses the URL, picks
 * the backend and dispatches every public store_* call through st->ops; a backend sees only
 * its own impl pointer. Semantics are those documented in store.h, with two differences:
 * output records are zeroed by store.c before the call, and store_audit_add's detail is
 * borrowed here (store.c drops the caller's reference after the call). */
#ifndef MCPGATE_STORE_STORE_INT_H
#define MCPGATE_STORE_STORE_INT_H

#include "store/store.h"

/* Caps on list results (a registration endpoint open to anyone can grow the clients table). */
#define STORE_LIST_MAX 100000
#define STORE_AUDIT_LIST_MAX 10000 /* store_audit_list: a limit of 0 or above means this */
#define STORE_KEY_LIST_MAX 1000

struct store_ops {
    const char *name; /* "sqlite" */
    void (*close)(void *impl);

    int (*user_add)(void *impl, const char *username, const char *password_hash, int64_t now,
                    int64_t *id);
    int (*user_get)(void *impl, const char *username, struct store_user *out);
    int (*user_get_id)(void *impl, int64_t id, struct store_user *out);
    int (*user_list)(void *impl, json_t **out);
    int (*user_count)(void *impl, int64_t *n);
    int (*user_remove)(void *impl, const char *username);
    int (*user_set_password)(void *impl, const char *username, const char *password_hash);
    int (*user_login_result)(void *impl, int64_t id, bool ok, int64_t locked_until);

    int (*client_put)(void *impl, const struct store_client *c);
    int (*client_get)(void *impl, const char *client_id, struct store_client *out);
    int (*client_list)(void *impl, json_t **out);
    int (*client_remove)(void *impl, const char *client_id);
    int (*client_count)(void *impl, int64_t *n);

    int (*grant_put)(void *impl, const struct store_grant *g);
    int (*grant_get)(void *impl, const char *grant_id, struct store_grant *out);
    int (*grant_revoke)(void *impl, const char *grant_id, int64_t now);
    int (*grants_of_user)(void *impl, int64_t user_id, json_t **out);

    int (*code_put)(void *impl, const struct store_code *c);
    int (*code_take)(void *impl, const unsigned char hash[STORE_HASH_LEN], struct store_code *out);

    int (*refresh_put)(void *impl, const struct store_refresh *r);
    int (*refresh_rotate)(void *impl, const unsigned char old[STORE_HASH_LEN],
                          const struct store_refresh *next, int64_t now,
                          struct store_refresh *old_out);
    int (*refresh_get)(void *impl, const unsigned char hash[STORE_HASH_LEN],
                       struct store_refresh *out);

    int (*access_put)(void *impl, const unsigned char jti_hash[STORE_HASH_LEN],
                      const char *grant_id, int64_t expires_at);
    int (*access_check)(void *impl, const unsigned char jti_hash[STORE_HASH_LEN]);
    int (*access_revoke)(void *impl, const unsigned char jti_hash[STORE_HASH_LEN], int64_t now);
    int (*access_grant)(void *impl, const unsigned char jti_hash[STORE_HASH_LEN], char **grant_id);

    int (*consent_put)(void *impl, int64_t user_id, const char *client_id, const char *scope,
                       int64_t now);
    int (*consent_get)(void *impl, int64_t user_id, const char *client_id, char **scope);
    int (*consent_remove)(void *impl, int64_t user_id, const char *client_id);

    int (*bsession_put)(void *impl, const struct store_browser_session *b);
    int (*bsession_get)(void *impl, const unsigned char hash[STORE_HASH_LEN], int64_t now,
                        struct store_browser_session *out);
    int (*bsession_remove)(void *impl, const unsigned char hash[STORE_HASH_LEN]);
    int (*bsession_device_failure)(void *impl, const unsigned char hash[STORE_HASH_LEN],
                                   int *failures);

    int (*device_put)(void *impl, const struct store_device *d);
    int (*device_get)(void *impl, const unsigned char hash[STORE_HASH_LEN],
                      struct store_device *out);
    int (*device_get_user)(void *impl, const unsigned char user_hash[STORE_HASH_LEN],
                           struct store_device *out);
    int (*device_decide)(void *impl, const unsigned char user_hash[STORE_HASH_LEN], int64_t now,
                         int64_t user_id, const struct store_grant *g);
    int (*device_poll)(void *impl, const unsigned char hash[STORE_HASH_LEN], int64_t now,
                       int64_t step, struct store_device *out, bool *slow);

    int (*key_put)(void *impl, const struct store_key *k);
    int (*key_list)(void *impl, struct store_key **keys, size_t *n);
    int (*key_retire_current)(void *impl, int64_t now);

    int (*audit_add)(void *impl, int64_t ts, const char *event, const char *user,
                     const char *client, const char *ip, const json_t *detail /* borrowed */);
    /* events: array of {ts, event, user, client, ip, detail}; all or nothing. */
    int (*audit_add_batch)(void *impl, const json_t *events);
    int (*audit_list)(void *impl, int64_t since, const char *user, unsigned limit, json_t **out);

    int (*purge)(void *impl, int64_t now);
};

struct store {
    const struct store_ops *ops; /* static */
    void *impl;                  /* owned, freed by ops->close */
};

/* store/sqlite.c: opens (creating, 0600) and migrates the database at path. */
extern const struct store_ops store_sqlite_ops;
int store_sqlite_open(const char *path, void **impl /* OUT */) ERR_WARN_UNUSED;
/* store/sqlite_schema.c: the migrations, in order; store_sqlite_schema_version counts them. */
extern const char *const store_sqlite_migrations[];
extern const int store_sqlite_schema_version;

/* "static", "dcr", "cimd" (as listed by store_client_list). */
const char *store_client_kind_name(enum store_client_kind kind);

#endif
