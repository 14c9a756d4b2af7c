/* Storage for the authorization server: a table of operations over an opaque handle, with a
 * SQLite backend (store/sqlite.c) and, next, a PostgreSQL one. Every operation is one statement
 * or one short transaction on both, so several instances can share a database; single-use
 * operations (taking a code, rotating a refresh token) are atomic.
 *
 * Secrets never reach the store in clear: codes, device and user codes, refresh tokens,
 * access-token ids, client secrets, registration access tokens and browser-session ids are
 * stored as SHA-256 hashes (STORE_HASH_LEN bytes, computed by the caller); passwords as
 * argon2id hashes; signing keys encrypted.
 *
 * Times are Unix seconds. Strings in records are owned by the record; *_clear() frees them.
 * Functions return 0, ERR_NOTFOUND, ERR_EXISTS (a unique key taken, or a single-use item
 * already used: see each), or ERR_IO (the database failed; logged). */
#ifndef MCPGATE_STORE_STORE_H
#define MCPGATE_STORE_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

#define STORE_HASH_LEN 32

struct store;

struct store_user {
    int64_t id;
    char *username;
    char *password_hash;  /* argon2id encoded string */
    int64_t created_at;
    int failed_logins;    /* consecutive failures */
    int64_t locked_until; /* no login before this time */
};

enum store_client_kind { CLIENT_STATIC = 0, CLIENT_DCR = 1, CLIENT_CIMD = 2 };

struct store_client {
    char *client_id;
    enum store_client_kind kind;
    unsigned char secret_hash[STORE_HASH_LEN];
    bool has_secret;           /* confidential client */
    unsigned char reg_token_hash[STORE_HASH_LEN]; /* RFC 7592 registration access token */
    bool has_reg_token;
    json_t *metadata;          /* RFC 7591 client metadata as registered/fetched (owned) */
    bool first_party;          /* consent may be skipped */
    int64_t created_at;
    int64_t expires_at;        /* CIMD cache expiry; 0: none */
};

struct store_grant {
    char *grant_id;  /* random */
    int64_t user_id; /* 0 for client_credentials */
    char *client_id;
    char *scope;     /* space-separated, normalized */
    char *resource;  /* the audience */
    int64_t created_at;
    int64_t revoked_at; /* 0: active */
};

struct store_code {
    unsigned char hash[STORE_HASH_LEN];
    char *grant_id;
    char *client_id;
    char *redirect_uri;
    char *code_challenge; /* canonical base64url of the S256 digest */
    char *scope;
    char *resource;
    int64_t user_id;
    int64_t expires_at;
    bool used; /* set by store_code_take */
};

struct store_refresh {
    unsigned char hash[STORE_HASH_LEN];
    char *grant_id;
    int64_t created_at;
    int64_t expires_at;
    int64_t rotated_at; /* 0: the current token of its grant */
};

struct store_browser_session {
    unsigned char hash[STORE_HASH_LEN];
    int64_t user_id;
    char *csrf;  /* the form token bound to this session */
    int64_t created_at;
    int64_t expires_at;
    int device_failures; /* wrong user codes entered on the device page */
};

/* A device authorization (RFC 8628): found by the hash of its device code (the polling
 * client) or by the keyed hash of its user code (the person approving it). */
enum store_device_status {
    DEVICE_PENDING = 0,  /* nobody decided yet */
    DEVICE_APPROVED = 1, /* approved; grant_id names the grant; tokens not yet issued */
    DEVICE_DENIED = 2,
    DEVICE_ISSUED = 3,   /* the client has taken its tokens: the code is spent */
};

struct store_device {
    unsigned char hash[STORE_HASH_LEN];      /* of the device code */
    unsigned char user_hash[STORE_HASH_LEN]; /* of the user code (unique) */
    char *client_id;
    char *scope;     /* requested, normalized */
    char *resource;
    int64_t created_at;
    int64_t expires_at;
    int64_t interval;  /* seconds the client must wait between polls; grows on slow_down */
    int64_t last_poll; /* 0: not polled yet */
    enum store_device_status status;
    int64_t user_id;   /* who approved or denied; 0 while pending */
    char *grant_id;    /* the grant an approval made; NULL otherwise */
};

struct store_key {
    char *kid;
    char *alg;            /* "ES256" */
    unsigned char *sealed; /* the private key, encrypted (AES-256-GCM, see core/crypto) */
    size_t sealed_len;
    char *public_jwk;     /* JSON text */
    int64_t created_at;
    int64_t retired_at;   /* 0: the current signing key; else verify-only until expiry */
};

/* Opens "sqlite:PATH" (or a bare path): creates the file (0600) and runs migrations. */
int store_open(const char *url, struct store **out /* OUT */) ERR_WARN_UNUSED;
void store_close(struct store *st);

/* ---- users ---- */
int store_user_add(struct store *st, const char *username, const char *password_hash,
                   int64_t now, int64_t *id /* OUT, may be NULL */) ERR_WARN_UNUSED;
int store_user_get(struct store *st, const char *username, struct store_user *out)
    ERR_WARN_UNUSED;
int store_user_get_id(struct store *st, int64_t id, struct store_user *out) ERR_WARN_UNUSED;
int store_user_list(struct store *st, json_t **out /* array of {id, username, created_at} */)
    ERR_WARN_UNUSED;
int store_user_count(struct store *st, int64_t *n) ERR_WARN_UNUSED;
int store_user_remove(struct store *st, const char *username) ERR_WARN_UNUSED;
int store_user_set_password(struct store *st, const char *username, const char *password_hash)
    ERR_WARN_UNUSED;
/* Records a login attempt: success resets the failures; failure increments them and sets
 * locked_until = now + backoff(failures) (the caller passes the backoff it computed). */
int store_user_login_result(struct store *st, int64_t id, bool ok, int64_t locked_until)
    ERR_WARN_UNUSED;
void store_user_clear(struct store_user *u);

/* ---- clients ---- */
int store_client_put(struct store *st, const struct store_client *c) ERR_WARN_UNUSED; /* upsert */
int store_client_get(struct store *st, const char *client_id, struct store_client *out)
    ERR_WARN_UNUSED;
int store_client_list(struct store *st, json_t **out) ERR_WARN_UNUSED;
int store_client_remove(struct store *st, const char *client_id) ERR_WARN_UNUSED;
int store_client_count(struct store *st, int64_t *n) ERR_WARN_UNUSED;
void store_client_clear(struct store_client *c);

/* ---- grants, codes, tokens ---- */
int store_grant_put(struct store *st, const struct store_grant *g) ERR_WARN_UNUSED;
int store_grant_get(struct store *st, const char *grant_id, struct store_grant *out)
    ERR_WARN_UNUSED;
/* Revokes a grant (idempotent): its refresh tokens and access tokens stop working. */
int store_grant_revoke(struct store *st, const char *grant_id, int64_t now) ERR_WARN_UNUSED;
/* The active grants of a user, newest first: [{grant_id, client_id, scope, created_at}]. */
int store_grants_of_user(struct store *st, int64_t user_id, json_t **out) ERR_WARN_UNUSED;
void store_grant_clear(struct store_grant *g);

int store_code_put(struct store *st, const struct store_code *c) ERR_WARN_UNUSED;
/* Takes a code atomically. Returns 0 with the record when it was unused (now used);
 * ERR_EXISTS with the record when it had been used before (a replay: the caller revokes the
 * grant); ERR_NOTFOUND when unknown. Expiry is the caller's check. */
int store_code_take(struct store *st, const unsigned char hash[STORE_HASH_LEN],
                    struct store_code *out) ERR_WARN_UNUSED;
void store_code_clear(struct store_code *c);

int store_refresh_put(struct store *st, const struct store_refresh *r) ERR_WARN_UNUSED;
/* Rotates atomically: if old is its grant's current token, marks it rotated at now and stores
 * next (same grant), returning 0 with the old record; if old was already rotated, returns
 * ERR_EXISTS with the old record (reuse: the caller revokes the grant); ERR_NOTFOUND when
 * unknown. */
int store_refresh_rotate(struct store *st, const unsigned char old[STORE_HASH_LEN],
                         const struct store_refresh *next, int64_t now,
                         struct store_refresh *old_out) ERR_WARN_UNUSED;
int store_refresh_get(struct store *st, const unsigned char hash[STORE_HASH_LEN],
                      struct store_refresh *out) ERR_WARN_UNUSED;
void store_refresh_clear(struct store_refresh *r);

/* Access tokens are JWTs; the store keeps the hash of their jti to revoke them one by one. */
int store_access_put(struct store *st, const unsigned char jti_hash[STORE_HASH_LEN],
                     const char *grant_id, int64_t expires_at) ERR_WARN_UNUSED;
/* 0 when the jti is known and neither it nor its grant is revoked; ERR_NOTFOUND when unknown;
 * ERR_INVALID when revoked. */
int store_access_check(struct store *st, const unsigned char jti_hash[STORE_HASH_LEN])
    ERR_WARN_UNUSED;
int store_access_revoke(struct store *st, const unsigned char jti_hash[STORE_HASH_LEN],
                        int64_t now) ERR_WARN_UNUSED;
int store_access_grant(struct store *st, const unsigned char jti_hash[STORE_HASH_LEN],
                       char **grant_id /* OUT */) ERR_WARN_UNUSED;

/* ---- consent, browser sessions ---- */
/* Remembered consent: the scopes (space-separated, sorted) a user approved for a client. */
int store_consent_put(struct store *st, int64_t user_id, const char *client_id,
                      const char *scope, int64_t now) ERR_WARN_UNUSED;
int store_consent_get(struct store *st, int64_t user_id, const char *client_id,
                      char **scope /* OUT */) ERR_WARN_UNUSED;
int store_consent_remove(struct store *st, int64_t user_id, const char *client_id)
    ERR_WARN_UNUSED;

int store_bsession_put(struct store *st, const struct store_browser_session *b) ERR_WARN_UNUSED;
int store_bsession_get(struct store *st, const unsigned char hash[STORE_HASH_LEN], int64_t now,
                       struct store_browser_session *out) ERR_WARN_UNUSED; /* unexpired only */
int store_bsession_remove(struct store *st, const unsigned char hash[STORE_HASH_LEN])
    ERR_WARN_UNUSED;
/* Counts one more wrong user code against a browser session; *failures gets the new count.
 * ERR_NOTFOUND when there is no such session. */
int store_bsession_device_failure(struct store *st, const unsigned char hash[STORE_HASH_LEN],
                                  int *failures /* OUT */) ERR_WARN_UNUSED;
void store_bsession_clear(struct store_browser_session *b);

/* ---- device authorizations (RFC 8628) ---- */
/* Stores a new pending device authorization; ERR_EXISTS when its device code or user code
 * hash is taken (the caller draws another user code). Authorizations that expired before
 * d->created_at are deleted on the way, so the table holds about the live ones only. */
int store_device_put(struct store *st, const struct store_device *d) ERR_WARN_UNUSED;
int store_device_get(struct store *st, const unsigned char hash[STORE_HASH_LEN],
                     struct store_device *out) ERR_WARN_UNUSED;
int store_device_get_user(struct store *st, const unsigned char user_hash[STORE_HASH_LEN],
                          struct store_device *out) ERR_WARN_UNUSED;
/* Decides a pending authorization that has not expired at now, found by its user code:
 * approve with g non-NULL (g is stored in the same transaction and the authorization refers
 * to it), deny with g NULL. ERR_NOTFOUND when no pending, unexpired authorization has this
 * user code (unknown, expired, or decided already). */
int store_device_decide(struct store *st, const unsigned char user_hash[STORE_HASH_LEN],
                        int64_t now, int64_t user_id, const struct store_grant *g)
    ERR_WARN_UNUSED;
/* One poll by the client, atomically. *out gets the authorization as it was before this
 * poll. Unexpired and pending: last_poll becomes now, and when the previous poll was less
 * than interval seconds before now, interval grows by step and *slow is set. Unexpired and
 * approved: it becomes issued, so exactly one poll sees DEVICE_APPROVED (the caller then
 * issues the tokens). Otherwise nothing changes. ERR_NOTFOUND when unknown. */
int store_device_poll(struct store *st, const unsigned char hash[STORE_HASH_LEN], int64_t now,
                      int64_t step, struct store_device *out, bool *slow /* OUT */)
    ERR_WARN_UNUSED;
void store_device_clear(struct store_device *d);

/* ---- signing keys ---- */
int store_key_put(struct store *st, const struct store_key *k) ERR_WARN_UNUSED;
/* Every key, current first: the caller keeps those retired less than a token lifetime ago. */
int store_key_list(struct store *st, struct store_key **keys /* OUT */, size_t *n /* OUT */)
    ERR_WARN_UNUSED;
/* Marks every current key retired at now (before a new current one is put). */
int store_key_retire_current(struct store *st, int64_t now) ERR_WARN_UNUSED;
void store_key_clear(struct store_key *k);

/* ---- audit ---- */
/* event: "login_ok", "login_failed", "consent", "code_issued", "token_issued", "refreshed",
 * "revoked", "client_registered", "tool_call", ...; detail is stolen (may be NULL). */
int store_audit_add(struct store *st, int64_t ts, const char *event, const char *user,
                    const char *client, const char *ip, json_t *detail) ERR_WARN_UNUSED;
/* Several events in one transaction: events is an array of {ts, event, user, client, ip,
 * detail} (borrowed). */
int store_audit_add_batch(struct store *st, const json_t *events) ERR_WARN_UNUSED;
/* Newest first, at most limit rows; since (0: any) and user (NULL: any) filter. */
int store_audit_list(struct store *st, int64_t since, const char *user, unsigned limit,
                     json_t **out) ERR_WARN_UNUSED;

/* ---- housekeeping ---- */
/* Deletes expired codes, refresh tokens, access-token ids, browser sessions, device
 * authorizations. */
int store_purge(struct store *st, int64_t now) ERR_WARN_UNUSED;

#endif
