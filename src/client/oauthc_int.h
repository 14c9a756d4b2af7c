/* Private to oauthc.c (tokens, refresh, the challenge logic, logout) and oauthc_flow.c
 * (discovery, registration, the sign-in flows). */
#ifndef MCPGATE_CLIENT_OAUTHC_INT_H
#define MCPGATE_CLIENT_OAUTHC_INT_H

#include <pthread.h>

#include "client/discovery.h"
#include "client/oauthc.h"

#define OAUTHC_DOC_MAX (1024 * 1024)

struct oauthc {
    struct oauthc_opts o;        /* strings below are owned copies */
    char *callback_host;
    pthread_mutex_t mu;          /* guards tokens (read by any thread) */
    json_t *tokens;              /* the stored "tokens" document, or NULL */
    json_t *server;              /* the stored "server" document, or NULL */
    char *last_scope;            /* the scope last requested (step-up builds on it) */
    int step_ups;                /* step-ups in a row without a success */
    long long fail_until;        /* no new sign-in before this time (backoff) */
    int fail_backoff;            /* seconds; 0 when the last sign-in worked */
    char fail_why[300];
    long long refresh_next;      /* no proactive refresh before this time (mu) */
    int refresh_fails;           /* proactive refreshes failed in a row (mu) */
};

/* ---- oauthc.c ---- */
long long oauthc_now(void);
/* A progress line on stderr ("mcpgate: ..."), unless quiet. */
void oauthc_say(const struct oauthc *oc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Caches tokens (owned by the caller) and stores them; on a store error they are still the
 * ones this process uses (the server may have retired the old refresh token already). */
int oauthc_tokens_save(struct oauthc *oc, json_t *tokens) ERR_WARN_UNUSED;

/* A JSON answer of an OAuth endpoint. */
struct oauthc_reply {
    long status;
    json_t *doc;          /* the body when it is a JSON object, else NULL */
    char error[64];       /* RFC 6749 error code of an error response, or "" */
    char description[256];/* its error_description, made printable */
    char www[1024];       /* WWW-Authenticate of the response, if any */
};
void oauthc_reply_clear(struct oauthc_reply *r);
/* GET (form NULL) or POST form (application/x-www-form-urlencoded from a JSON object of
 * strings) to url, with an optional Authorization header value. A transport failure is an
 * error with why; any HTTP status is 0 with the reply filled. */
int oauthc_request(struct oauthc *oc, const char *url, json_t *form, const char *authz,
                   struct oauthc_reply *rep /* OUT */, char *why, size_t whylen) ERR_WARN_UNUSED;
/* POST JSON (DCR). */
int oauthc_post_json(struct oauthc *oc, const char *url, json_t *body, const char *authz,
                     struct oauthc_reply *rep /* OUT */, char *why, size_t whylen)
    ERR_WARN_UNUSED;

/* ---- oauthc_flow.c ---- */
/* Discovery from a challenge (w may be NULL): protected resource metadata, authorization
 * server metadata. Stores and returns the "server" document: {"issuer", "metadata" (the AS
 * metadata), "prm" (or null), "resource", "legacy" (bool)}. */
int oauthc_discover(struct oauthc *oc, const struct www_auth *w, json_t **server /* OUT */,
                    char *why, size_t whylen) ERR_WARN_UNUSED;
/* The whole sign-in for the configured flow: registration as needed, the user's part, the
 * token request. Stores the tokens. scope may be NULL (omitted). */
int oauthc_sign_in(struct oauthc *oc, json_t *server, const char *scope, char *why,
                   size_t whylen) ERR_WARN_UNUSED;
/* Client authentication for a token, revocation or device request: adds client_id (and
 * client_secret for client_secret_post) to form, or sets *authz to a Basic value (caller
 * frees). */
void oauthc_client_auth(json_t *client, json_t *form, char **authz /* OUT */);
/* The stored registration if it belongs to the server's issuer, else NULL (borrowed by the
 * caller after a json_incref). */
json_t *oauthc_client_load(struct oauthc *oc, json_t *server);
/* The resource parameter to send, or NULL when disabled. Borrowed from oc or server. */
const char *oauthc_resource(struct oauthc *oc, json_t *server);

#endif
