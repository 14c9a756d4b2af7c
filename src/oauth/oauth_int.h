/* Private to oauth/: server.c (dispatch, metadata, responses, scopes, rate limits, audit),
 * authorize.c (/authorize, login, consent, connected apps), token.c (/token, /revoke,
 * /introspect, client authentication), device.c (the device authorization grant: its
 * endpoint, its pages, its token requests), clients.c (registration, CIMD, redirect
 * matching), pkce.c, rs.c (bearer validation and its cache). */
#ifndef MCPGATE_OAUTH_INT_H
#define MCPGATE_OAUTH_INT_H

#include <pthread.h>
#include <stdarg.h>

#include "oauth/oauth.h"
#include "store/store.h"

/* The device authorization grant's grant_type (RFC 8628 3.4). */
#define OAUTH_GRANT_DEVICE "urn:ietf:params:oauth:grant-type:device_code"

struct jwt_keyset;
struct rs_cache;
struct ratelimit;

struct oauth_server {
    struct oauth_config cfg;  /* strings below are the owned copies */
    char *issuer;             /* no trailing slash */
    char *resource;           /* issuer + mcp_path */
    char *prm_url;            /* issuer + "/.well-known/oauth-protected-resource" + mcp_path */
    char *server_name;
    char *scopes;             /* offered scopes, space-separated */
    struct store *st;         /* borrowed */
    unsigned char master[32]; /* seals signing keys */
    unsigned char page_key[32]; /* HMAC key: login CSRF, sealed consent requests */

    pthread_rwlock_t ks_lock;
    struct jwt_keyset *ks;
    int64_t ks_loaded_at;

    struct rs_cache *cache;
    struct ratelimit *rl;

    /* Audit events are queued and written in batches by a thread of their own: a tool call
     * must not wait for a database commit. */
    pthread_mutex_t audit_mu;
    pthread_cond_t audit_cv;
    json_t *audit_queue; /* array of events */
    bool audit_stop;
    bool audit_started;
    unsigned long audit_dropped;
    pthread_t audit_thread;
};

int64_t oauth_now(void);

/* ---- responses (server.c) ---- */
void oresp_json(struct oauth_response *r, unsigned status, json_t *body /* stolen */);
/* An RFC 6749 error: {"error", "error_description"}, Cache-Control: no-store. */
void oresp_error(struct oauth_response *r, unsigned status, const char *error, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));
void oresp_html(struct oauth_response *r, unsigned status, char *html /* stolen */);
/* A redirect (302 for GET flows, 303 after a POST). location copied. */
void oresp_redirect(struct oauth_response *r, unsigned status, const char *location);
void oresp_header(struct oauth_response *r, const char *name, const char *value);
/* The error page (never a redirect): for a bad client_id or redirect_uri. */
void oresp_error_page(struct oauth_server *os, struct oauth_response *r, unsigned status,
                      const char *title, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ---- scopes (server.c) ---- */
/* Normalizes a requested scope string: split on spaces, drop empty entries and duplicates and
 * scopes this server does not offer (logged at debug); an empty result becomes the first
 * offered scope. Returns a new string. */
char *oauth_scope_normalize(const struct oauth_server *os, const char *requested);
/* Every scope of a is in b (plain set inclusion, no aliases). */
bool oauth_scope_subset(const char *a, const char *b);

/* ---- rate limits (server.c): per-IP token buckets ---- */
/* bucket: "login", "token", "register", "introspect", "device" (user codes entered). true when
 * allowed; else *retry_after. */
bool oauth_ratelimit(struct oauth_server *os, const char *bucket, const char *ip,
                     unsigned *retry_after);

/* ---- clients (clients.c) ---- */
/* Finds a client: pre-registered or DCR from the store; an https URL client_id is a CIMD
 * document, fetched (size/time limits, SSRF checks) and cached per its HTTP headers. On
 * failure returns ERR_NOTFOUND or ERR_INVALID with *why (static or in whybuf). */
int oauth_client_lookup(struct oauth_server *os, const char *client_id,
                        struct store_client *out /* OUT */, char *whybuf, size_t whylen)
    ERR_WARN_UNUSED;
/* Exact match against the registered redirect URIs; for http://127.0.0.1 and http://[::1]
 * registrations any port matches (RFC 8252 7.3). */
bool oauth_redirect_uri_allowed(const struct store_client *c, const char *redirect_uri);
/* The client's registered auth method ("none", "client_secret_basic", "client_secret_post"). */
const char *oauth_client_auth_method(const struct store_client *c);
/* Validates RFC 7591 metadata (DCR) or a CIMD document (cimd_url non-NULL: its client_id must
 * equal it). Fills defaults into meta. 0 or ERR_INVALID with the reason in why. */
int oauth_client_metadata_check(json_t *meta, const char *cimd_url, char *why, size_t whylen)
    ERR_WARN_UNUSED;
/* POST /register and GET|PUT|DELETE /register/<client_id> (RFC 7591, RFC 7592). */
void oauth_register(struct oauth_server *os, const struct oauth_request *req,
                    struct oauth_response *resp);

/* ---- PKCE (pkce.c) ---- */
/* Canonicalizes an S256 code_challenge: base64url without padding is canonical; padded or
 * standard-alphabet base64 of the same 32-byte digest is accepted too (seed 000). out gets 43
 * characters + NUL. ERR_INVALID when it is not a 32-byte digest in any of these forms. */
int pkce_challenge_normalize(const char *challenge, char out[44]) ERR_WARN_UNUSED;
/* The verifier is 43-128 characters of [A-Za-z0-9-._~] and S256(verifier) equals the canonical
 * challenge (constant-time). */
bool pkce_verify(const char *verifier, const char *canonical_challenge);

/* ---- tokens (token.c) ---- */
void oauth_token(struct oauth_server *os, const struct oauth_request *req,
                 struct oauth_response *resp);
/* Parses an application/x-www-form-urlencoded body; answers and returns NULL on failure. */
json_t *oauth_form_body(const struct oauth_request *req, struct oauth_response *resp);
/* Authenticates the client of a request to /token, /revoke, /introspect or
 * /device_authorization. On failure answers (invalid_client: 401, with a Basic challenge when
 * Basic was tried) and returns non-zero; *c is filled on success (store_client_clear). */
int oauth_client_authenticate(struct oauth_server *os, const struct oauth_request *req,
                              json_t *form, struct store_client *c /* OUT */,
                              struct oauth_response *resp) ERR_WARN_UNUSED;
/* The client registered grant type gt (RFC 7591 default: authorization_code). */
bool oauth_grant_type_allowed(const struct store_client *c, const char *gt);
/* Mints an access token (and a refresh token when refresh) for a grant and answers with
 * them; records token_issued. */
void oauth_issue(struct oauth_server *os, const struct store_grant *g, const char *scope,
                 const char *username, bool refresh, const struct oauth_request *req,
                 struct oauth_response *resp);
/* The username of a user id, or NULL (caller frees). */
char *oauth_username_of(struct oauth_server *os, int64_t user_id);
/* Revokes a grant and everything it produced, with an audit event giving the reason. */
void oauth_revoke_grant(struct oauth_server *os, const char *grant_id, const char *client,
                        const char *ip, const char *reason);
/* Answers 429 with Retry-After and returns true when the client's address is over its budget
 * in bucket (see oauth_ratelimit). */
bool oauth_limited(struct oauth_server *os, const char *bucket, const struct oauth_request *req,
                   struct oauth_response *resp);
void oauth_revoke(struct oauth_server *os, const struct oauth_request *req,
                  struct oauth_response *resp);
void oauth_introspect(struct oauth_server *os, const struct oauth_request *req,
                      struct oauth_response *resp);
/* Keys: the current keyset (+ reload after rotation by another process); release after use. */
struct jwt_keyset *oauth_keys_acquire(struct oauth_server *os);
void oauth_keys_release(struct oauth_server *os);
/* Reloads the keys now (at most every 5 s): a token with an unknown kid may be signed by a key
 * another instance just created. */
void oauth_keys_refresh(struct oauth_server *os);

/* ---- browser flows (authorize.c) ---- */
#define OAUTH_SESSION_COOKIE "mcpgate_session"
/* The value of cookie name in a Cookie header, or NULL (caller frees). */
char *oauth_cookie_get(const char *header, const char *name);
/* Parameters of a GET (query) or POST (form body). NULL after answering (an error page) on a
 * bad query or body. */
json_t *oauth_page_params(const struct oauth_request *req, struct oauth_response *resp,
                          struct oauth_server *os);
/* Appends "k=v" pairs (the string members of pairs, form-encoded) to a URL that may already
 * have a query. Caller frees. */
char *oauth_url_with(const char *base, json_t *pairs);
/* Seals a JSON object for a hidden form field: base64url(json) "." HMAC under the page key
 * and label (one label per form, so a sealed value is only good where it was made); unseal
 * returns NULL when the seal is not intact. */
char *oauth_seal(struct oauth_server *os, const char *label, json_t *obj);
json_t *oauth_unseal(struct oauth_server *os, const char *label, const char *token);
/* The scopes of a scope string in words, for the consent page: [{name, description}]. */
json_t *oauth_scope_words(const char *scope);
void oauth_authorize(struct oauth_server *os, const struct oauth_request *req,
                     struct oauth_response *resp);
void oauth_login(struct oauth_server *os, const struct oauth_request *req,
                 struct oauth_response *resp);
void oauth_consent(struct oauth_server *os, const struct oauth_request *req,
                   struct oauth_response *resp);
void oauth_apps(struct oauth_server *os, const struct oauth_request *req,
                struct oauth_response *resp);
void oauth_logout(struct oauth_server *os, const struct oauth_request *req,
                  struct oauth_response *resp);

/* ---- the device authorization grant (device.c, RFC 8628) ---- */
/* User codes: 8 letters of 20 consonants (RFC 8628 6.1: no vowels, so no words and no O or I
 * to read as 0 or 1), shown as XXXX-XXXX, compared without case, dashes and spaces. */
#define OAUTH_USER_CODE_ALPHABET "BCDFGHJKLMNPQRSTVWXZ"
#define OAUTH_USER_CODE_LEN 8
#define OAUTH_USER_CODE_INPUT_MAX 64 /* longer input is not a user code */
/* Normalizes what a person typed: letters upper-cased, '-' and spaces dropped; the result
 * must be OAUTH_USER_CODE_LEN letters of the alphabet. ERR_INVALID otherwise (out empty). */
int oauth_user_code_normalize(const char *in, char out[OAUTH_USER_CODE_LEN + 1]) ERR_WARN_UNUSED;
/* "BCDFGHJK" -> "BCDF-GHJK" (out: OAUTH_USER_CODE_LEN + 2 bytes). */
void oauth_user_code_format(const char *normalized, char out[OAUTH_USER_CODE_LEN + 2]);
/* POST /device_authorization (RFC 8628 3.1, 3.2). */
void oauth_device_authorization(struct oauth_server *os, const struct oauth_request *req,
                                struct oauth_response *resp);
/* GET and POST /device: the page where a signed-in person enters a user code, then approves
 * or denies on the consent page. */
void oauth_device_page(struct oauth_server *os, const struct oauth_request *req,
                       struct oauth_response *resp);
/* The device_code grant at /token (RFC 8628 3.4, 3.5), for an authenticated client. */
void oauth_device_token(struct oauth_server *os, const struct oauth_request *req, json_t *form,
                        const struct store_client *c, struct oauth_response *resp);

/* ---- resource server (rs.c) ---- */
struct rs_cache *rs_cache_new(void);
void rs_cache_free(struct rs_cache *c);
/* Drops every cached entry of a grant (after a revocation by this process). */
void rs_cache_forget_grant(struct rs_cache *c, const char *grant_id);

#endif
