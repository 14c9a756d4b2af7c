/* The OAuth 2.1 client of `mcpgate connect` and the command-line client (SPEC-NOTES section 4;
 * MCP authorization 2025-11-25 and 2026-07-28): discovery from a 401, registration (static,
 * client ID metadata document, dynamic), the authorization code flow with PKCE through the
 * user's browser and a loopback listener, the device authorization grant (RFC 8628), the
 * client credentials grant, refresh, step-up on insufficient_scope, revocation at logout.
 *
 * Everything learned is kept in the token store (tokenstore.h) under one key per server
 * configuration: "tokens", "client" (the registration, with the issuer it belongs to),
 * "server" (the endpoints discovered) and "flow-<state>" (the PKCE verifier of a sign-in in
 * progress, one per state so parallel flows never overwrite each other). Sign-in and refresh
 * run under the store's "auth" lease: of several processes only one talks to the
 * authorization server; the others wait for the tokens it stores.
 *
 * All calls block; they are made from one thread at a time (the transport's auth thread or a
 * command's main thread), except oauthc_access_token, which any thread may call. */
#ifndef MCPGATE_CLIENT_OAUTHC_H
#define MCPGATE_CLIENT_OAUTHC_H

#include <jansson.h>
#include <stdbool.h>

#include "client/http.h"
#include "client/tokenstore.h"
#include "core/err.h"

enum oauthc_flow {
    OAUTHC_FLOW_CODE,               /* browser sign-in with PKCE (default) */
    OAUTHC_FLOW_DEVICE,             /* RFC 8628: a code to enter on another device */
    OAUTHC_FLOW_CLIENT_CREDENTIALS, /* machine client: its own credentials, no user */
};

struct oauthc_opts {
    const char *server_url;            /* the MCP endpoint */
    struct hc_opts http;
    struct tstore *store;              /* borrowed */
    const char *key;                   /* the store key of this configuration */
    const char *resource;              /* --resource; NULL: the PRM's resource, else the URL */
    bool no_resource;                  /* --disable-resource-parameter */
    const char *scope;                 /* --scope: forces the scope requested */
    json_t *static_client_info;        /* borrowed: {"client_id", "client_secret"?, ...} */
    json_t *static_client_metadata;    /* borrowed: merged into DCR and used for CIMD */
    const char *client_metadata_url;   /* CIMD: our client_id when the AS supports it */
    json_t *authorize_params;          /* borrowed: {"k": "v"} added to the authorize URL */
    const char *browser;               /* command to open a URL; NULL: $BROWSER, xdg-open */
    bool no_browser;                   /* only print the URL */
    const char *callback_host;         /* NULL: 127.0.0.1 */
    int callback_port;                 /* 0: derived from the server URL */
    bool callback_port_strict;         /* fail when the port is taken */
    int auth_timeout_s;                /* how long to wait for the user; 0: 300 */
    enum oauthc_flow flow;
    bool interactive;                  /* false: never start a sign-in, say how to */
    const char *client_name;           /* NULL: "mcpgate" */
    bool quiet;                        /* --silent: no progress lines on stderr */
};

struct oauthc;

int oauthc_new(const struct oauthc_opts *o, struct oauthc **out /* OUT */) ERR_WARN_UNUSED;
void oauthc_free(struct oauthc *oc);

/* The access token to send, refreshed first when it expires within a minute and a refresh
 * token is at hand. ERR_NOTFOUND when there is none yet (send the request without one: the
 * server's 401 starts discovery). Caller frees. Any thread. */
int oauthc_access_token(struct oauthc *oc, char **out /* OUT */) ERR_WARN_UNUSED;
/* True when the token expires within a minute and can be refreshed (no I/O). Any thread. */
bool oauthc_refresh_due(struct oauthc *oc);
/* Refreshes now, under the lease (after re-reading the store: another process may have done
 * it already). 0, ERR_NOTFOUND without tokens, or an error with why. */
int oauthc_refresh_now(struct oauthc *oc, char *why, size_t whylen) ERR_WARN_UNUSED;

/* The server refused a request: status 401 or 403, www_authenticate its header (may be NULL),
 * failed_token the token that was sent (NULL when none). Refreshes, signs in, or steps up the
 * scope, as the challenge says; 0 when a new token is ready (get it with
 * oauthc_access_token). Otherwise an error with why in words a person can act on. Repeated
 * failures are remembered: after a sign-in fails, new attempts are refused for a while
 * (30 s, doubling to 10 min) instead of opening the browser again and again. */
int oauthc_challenge(struct oauthc *oc, long status, const char *www_authenticate,
                     const char *failed_token, char *why, size_t whylen) ERR_WARN_UNUSED;

/* Signs in now (the login command): discovery without a challenge, then the flow. force:
 * even when valid tokens are stored. */
int oauthc_login(struct oauthc *oc, bool force, char *why, size_t whylen) ERR_WARN_UNUSED;

/* Revokes the stored tokens at the authorization server when it has a revocation endpoint
 * (refresh token first, then access token), then forgets everything stored for this
 * configuration. *revoked (may be NULL) says whether the revocation was accepted. 0, or
 * ERR_NOTFOUND when nothing was stored. */
int oauthc_logout(struct oauthc *oc, bool *revoked /* OUT */, char *why, size_t whylen)
    ERR_WARN_UNUSED;

/* ---- pieces exposed for tests and fuzzing ---- */

/* Parses a token endpoint response (RFC 6749 5.1) received at now: access_token (1-16 KiB of
 * visible ASCII), token_type Bearer (any case; DPoP and others refused), expires_in (a
 * non-negative integer, or absent), refresh_token, scope (a string). Returns the document to
 * store: {"access_token", "refresh_token"?, "expires_at"?, "scope"?, "obtained_at"}. */
int oauthc_token_parse(json_t *resp, long long now, json_t **out /* OUT */, char *why,
                       size_t whylen) ERR_WARN_UNUSED;
/* The callback port derived from a server URL when none is pinned: 20000-39999, stable. */
int oauthc_derive_port(const char *server_url);

#endif
