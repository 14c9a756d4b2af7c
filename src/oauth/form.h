/* application/x-www-form-urlencoded parsing (request bodies and query strings), for the OAuth
 * endpoints. Strict: every value must be valid UTF-8 after decoding, a parameter may appear
 * once (RFC 6749 section 3.1), names and values and counts are capped. */
#ifndef MCPGATE_OAUTH_FORM_H
#define MCPGATE_OAUTH_FORM_H

#include <jansson.h>
#include <stddef.h>

#include "core/err.h"

#define FORM_MAX_PARAMS 64
#define FORM_MAX_VALUE 8192

/* Parses "a=1&b=x%20y+z" into {"a":"1","b":"x y z"}. Empty pairs ("&&") are skipped; a name
 * without '=' has the empty value. On error returns ERR_PARSE (bad %-escape, bad UTF-8, NUL),
 * ERR_EXISTS (a repeated name) or ERR_TOOBIG (too many parameters, a name or value too long),
 * with *why naming the problem (and the parameter when known; static or in whybuf). */
int form_parse(const char *s, size_t len, json_t **out /* OUT */, char *whybuf, size_t whylen)
    ERR_WARN_UNUSED;

/* Percent-encodes s for a query or form value (unreserved characters kept). Caller frees. */
char *form_encode(const char *s);

#endif
