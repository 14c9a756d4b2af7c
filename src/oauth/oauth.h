/* The OAuth 2.1 authorization server and the resource-server check, as functions of
 * (request, context) -> response: no sockets here. The HTTP transport builds a struct
 * oauth_request from what it received, calls oauth_handle() for the paths oauth_route() claims,
 * and sends the struct oauth_response back; for /mcp it calls oauth_bearer_check().
 *
 * Endpoints: RFC 9728 protected resource metadata (root, path-inserted and path-suffixed
 * variants), RFC 8414 metadata, JWKS, RFC 7591/7592 registration, /authorize with the login
 * and consent pages, RFC 8628 /device_authorization and the /device page, /token
 * (authorization_code, refresh_token, client_credentials, device_code), RFC 7009 /revoke,
 * RFC 7662 /introspect, and the "connected apps" page. */
#ifndef MCPGATE_OAUTH_OAUTH_H
#define MCPGATE_OAUTH_OAUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

struct oauth_server;
struct store;

struct oauth_config {
    const char *issuer;        /* the public base URL, no trailing slash: "https://mcp.example" */
    const char *mcp_path;      /* the MCP endpoint's path, default "/mcp" */
    const char *server_name;   /* shown on the pages, default "mcpgate" */
    const char *scopes;        /* space-separated scopes offered, default "mcp" */
    const char *master_key_path; /* default: the database path + ".key" */
    int64_t access_ttl;        /* seconds, default 3600 */
    int64_t refresh_ttl;       /* default 30 days */
    int64_t code_ttl;          /* default 60 */
    int64_t refresh_grace;     /* seconds a rotated refresh token stays usable, default 0 */
    int64_t device_ttl;        /* device code lifetime, default 600 */
    int64_t device_interval;   /* seconds a device client waits between polls, default 5 */
    int64_t purge_interval;    /* seconds between deletions of expired rows, default 3600 */
    unsigned revocation_bound; /* seconds a cached token check may lag a revocation (5) */
    bool dcr;                  /* dynamic client registration, default on (clients use it) */
    bool cimd;                 /* client ID metadata documents, default on */
    bool cimd_allow_private;   /* fetch CIMD from private/loopback addresses (tests) */
    const char *cimd_cacert;   /* PEM file of CAs for CIMD fetches (CURLOPT_CAINFO: replaces
                                * libcurl's bundle, its CA directory still applies); NULL: the
                                * system store. Borrowed: must outlive the server */
    bool auto_approve_first_party; /* skip consent for pre-registered first-party clients */
};

struct oauth_request {
    const char *method;        /* "GET", "POST", ... */
    const char *path;          /* without the query */
    json_t *query;             /* query parameters (object of strings); NULL if none */
    bool query_repeated;       /* a query parameter appeared twice */
    const char *query_error;   /* why the query string is malformed, or NULL */
    const char *body;          /* raw body, or NULL */
    size_t body_len;
    const char *content_type;
    const char *authorization; /* the Authorization header, or NULL */
    const char *cookie;        /* the Cookie header, or NULL */
    const char *client_ip;
    bool https;                /* the client's scheme */
};

struct oauth_response {
    unsigned status;
    const char *content_type;  /* static string */
    char *body;                /* owned */
    size_t body_len;
    json_t *headers;           /* object: header name -> string value (owned); may be NULL */
};

/* Who presented a valid access token. Strings owned by the struct (oauth_principal_clear). */
struct oauth_principal {
    char *subject;   /* "user:<id>" or "client:<client_id>" */
    char *username;  /* NULL for client_credentials */
    char *client_id;
    char *scope;     /* granted scopes, space-separated */
    char *grant_id;
    int64_t expires_at;
};

int oauth_server_new(const struct oauth_config *cfg, struct store *st,
                     struct oauth_server **out /* OUT */) ERR_WARN_UNUSED;
void oauth_server_free(struct oauth_server *os);

/* Does oauth_handle() answer this path? */
bool oauth_route(const struct oauth_server *os, const char *path);
void oauth_handle(struct oauth_server *os, const struct oauth_request *req,
                  struct oauth_response *resp /* OUT */);
void oauth_response_clear(struct oauth_response *resp);

/* Checks the bearer token of a request to the MCP endpoint. Returns 0 with *who filled, or
 * fills *challenge with the 401 to send (WWW-Authenticate: Bearer resource_metadata=...,
 * scope=..., and error= when a token was sent) and returns ERR_INVALID. */
int oauth_bearer_check(struct oauth_server *os, const char *authorization,
                       struct oauth_principal *who /* OUT */,
                       struct oauth_response *challenge /* OUT */) ERR_WARN_UNUSED;
/* A 403 insufficient_scope response naming the scopes needed. */
void oauth_insufficient_scope(struct oauth_server *os, const char *needed,
                              struct oauth_response *resp /* OUT */);
/* Whether a granted scope string includes scope (aliases resolved: "claudeai" is "mcp"). */
bool oauth_scope_has(const struct oauth_server *os, const char *granted, const char *scope);
void oauth_principal_clear(struct oauth_principal *p);

/* Records an audit event (for callers outside oauth/, e.g. tool calls). */
void oauth_audit(struct oauth_server *os, const char *event, const char *user,
                 const char *client, const char *ip, json_t *detail /* stolen */);

/* The resource URL (issuer + mcp_path) and the PRM URL, for logs and headers. */
const char *oauth_resource(const struct oauth_server *os);
/* The first offered scope, which tools need unless configured otherwise (caller frees). */
char *oauth_default_scope(const struct oauth_server *os);

#endif
