/* The client side of MCP authorization discovery, as pure functions (no I/O): parsing the
 * WWW-Authenticate challenge, the ordered candidate URLs for protected resource metadata and
 * for authorization server metadata, and the checks on the documents (SPEC-NOTES section 4;
 * MCP 2025-11-25 authorization; RFC 9728, RFC 8414). The transport fetches; this decides. */
#ifndef MCPGATE_CLIENT_DISCOVERY_H
#define MCPGATE_CLIENT_DISCOVERY_H

#include <jansson.h>
#include <stdbool.h>

#include "core/err.h"

struct www_auth {
    char *scheme;            /* "Bearer" (case preserved), or NULL when unparsable */
    char *resource_metadata; /* the resource_metadata parameter, or NULL */
    char *scope;             /* scope parameter, or NULL */
    char *error;             /* error parameter ("invalid_token", "insufficient_scope"), or NULL */
    char *error_description;
};

/* Parses a WWW-Authenticate header value (RFC 9110 11.6.1 challenges; auth-params as token or
 * quoted-string with backslash escapes; several challenges separated by commas: the Bearer one
 * is used, the first if several). ERR_PARSE when there is no Bearer challenge, when any part
 * of the header is malformed, when a parameter we use is repeated in the Bearer challenge, or
 * when the header is longer than 16 KiB; *out is then all NULL. */
int www_auth_parse(const char *header, struct www_auth *out /* OUT */) ERR_WARN_UNUSED;
void www_auth_clear(struct www_auth *w);

/* The protected resource metadata URLs to try for an MCP server URL, in order: the path-
 * inserted one (https://h/.well-known/oauth-protected-resource/mcp), then the root one
 * (https://h/.well-known/oauth-protected-resource). The header's resource_metadata, when
 * present, is tried first by the caller. Query and fragment are dropped; for a root path only
 * the root URL. Returns an array of strings (new reference), NULL when server_url is not an
 * absolute http(s) URL. */
json_t *discovery_prm_urls(const char *server_url);

/* The authorization server metadata URLs for an issuer, in order: with a path "/t1":
 * /.well-known/oauth-authorization-server/t1, /.well-known/openid-configuration/t1,
 * /t1/.well-known/openid-configuration; without: /.well-known/oauth-authorization-server,
 * /.well-known/openid-configuration. Terminating '/'s of the path are removed first; query and
 * fragment are dropped. NULL when issuer is not an absolute http(s) URL. */
json_t *discovery_as_urls(const char *issuer);

/* Checks a protected resource metadata document for server_url: its resource must identify the
 * server (RFC 9728 3.3: equal after normalizing scheme/host case, default ports and a trailing
 * slash; no fragment); authorization_servers a non-empty array of https (or loopback http)
 * URLs without query or fragment; scopes_supported, if present, an array of strings. */
int discovery_prm_check(json_t *prm, const char *server_url, char *why, size_t whylen)
    ERR_WARN_UNUSED;
/* Checks AS metadata fetched for issuer: issuer equal (string comparison), authorization and
 * token endpoints present, code_challenge_methods_supported present and containing S256 (a
 * server without it is refused, per the MCP spec), response_types_supported containing code;
 * the endpoints (and registration_endpoint, if present) https or loopback http URLs. */
int discovery_as_check(json_t *asm_doc, const char *issuer, char *why, size_t whylen)
    ERR_WARN_UNUSED;

/* The 2025-03-26 fallback when there is no metadata at all: the server's origin as the issuer
 * and /authorize, /token, /register as endpoints. Returns a synthetic metadata object (with
 * S256 and "code", which 2025-03-26 mandates, so it passes discovery_as_check), or NULL. */
json_t *discovery_legacy_fallback(const char *server_url);

/* The canonical resource URI of an MCP server URL (RFC 8707): lower-case scheme and host, no
 * default port, no fragment, path kept (no trailing slash added or removed), a non-empty query
 * kept. Caller frees; NULL when not an absolute http(s) URL. */
char *discovery_canonical_resource(const char *server_url);

/* The scope to request: the challenge's scope, else the PRM's scopes_supported joined, else
 * NULL (omit). With previous (step-up), the union, deduplicated, order kept. Caller frees. */
char *discovery_scope(const char *challenge_scope, json_t *prm, const char *previous);

#endif
