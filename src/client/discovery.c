/* Authorization discovery for the client side, as pure functions (see discovery.h). Every input
 * here comes from the network (a 401's WWW-Authenticate header, fetched JSON documents) or from
 * the user (the server URL), so the parsers work on explicit lengths, check every byte, and cap
 * what they accept; the URL builders only ever emit "http://" or "https://" URLs made of
 * printable ASCII. */
#include "client/discovery.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/reason.h"
#include "core/buf.h"
#include "core/xmalloc.h"

/* A WWW-Authenticate value longer than this is refused (servers send a few hundred bytes). */
#define WWW_AUTH_MAX 16384
/* URLs longer than this are refused (server URLs, issuers, metadata documents' URLs). */
#define URL_MAX 8192
/* The longest scope string discovery_scope() builds. */
#define SCOPE_MAX 8192
/* Longest piece of untrusted text quoted in a reason before it is cut with "...". */
#define WHY_QUOTE_MAX 120

#define PRM_WELL_KNOWN "/.well-known/oauth-protected-resource"
#define AS_WELL_KNOWN "/.well-known/oauth-authorization-server"
#define OIDC_WELL_KNOWN "/.well-known/openid-configuration"

/* ---- WWW-Authenticate (RFC 9110 11.6.1, 11.2-11.4, 5.6) ---- */

static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token68_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

static bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

struct lexer {
    const char *p, *end;
};

static void skip_ows(struct lexer *lx)
{
    while (lx->p < lx->end && is_ows((unsigned char)*lx->p))
        lx->p++;
}

static size_t token_len(const struct lexer *lx)
{
    size_t n = 0;
    while (lx->p + n < lx->end && is_tchar((unsigned char)lx->p[n]))
        n++;
    return n;
}

/* At a token68 ("Basic dXNlcjpwYXNz", "Bearer abc==")? It must run to the end of its list
 * element: an auth-param such as "a=b" starts like one but continues after the '='. */
static size_t token68_len(const struct lexer *lx)
{
    const char *q = lx->p;
    while (q < lx->end && is_token68_char((unsigned char)*q))
        q++;
    if (q == lx->p)
        return 0;
    while (q < lx->end && *q == '=')
        q++;
    size_t n = (size_t)(q - lx->p);
    while (q < lx->end && is_ows((unsigned char)*q))
        q++;
    return q == lx->end || *q == ',' ? n : 0;
}

/* Is the list element at lx an auth-param (token BWS "=")? Otherwise it starts a challenge. */
static bool at_auth_param(const struct lexer *lx)
{
    struct lexer t = *lx;
    size_t n = token_len(&t);
    if (n == 0)
        return false;
    t.p += n;
    skip_ows(&t);
    return t.p < t.end && *t.p == '=';
}

/* quoted-string with its escapes removed; lx is at the opening DQUOTE. */
static int quoted_string(struct lexer *lx, char **out /* OUT */)
{
    struct buf b;
    int r = ERR_PARSE;
    *out = NULL;
    buf_init(&b, WWW_AUTH_MAX);
    lx->p++;
    for (;;) {
        if (lx->p >= lx->end)
            goto out; /* unterminated */
        unsigned char c = (unsigned char)*lx->p++;
        if (c == '"')
            break;
        if (c == '\\') {
            if (lx->p >= lx->end)
                goto out;
            c = (unsigned char)*lx->p++;
        }
        /* qdtext and quoted-pair: HTAB, SP, VCHAR, obs-text; no other controls. */
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            goto out;
        if ((r = buf_append(&b, &c, 1)) != 0)
            goto out;
        r = ERR_PARSE;
    }
    *out = b.data != NULL ? buf_steal(&b, NULL) : xstrdup("");
    r = 0;
out:
    buf_free(&b);
    return r;
}

/* One auth-param; value is NULL when the caller does not want it. */
static int auth_param(struct lexer *lx, const char **name, size_t *namelen, char **value /* OUT */)
{
    *value = NULL;
    *namelen = token_len(lx);
    *name = lx->p;
    if (*namelen == 0)
        return ERR_PARSE;
    lx->p += *namelen;
    skip_ows(lx);
    if (lx->p >= lx->end || *lx->p != '=')
        return ERR_PARSE;
    lx->p++;
    skip_ows(lx);
    if (lx->p < lx->end && *lx->p == '"')
        return quoted_string(lx, value);
    size_t n = token_len(lx);
    if (n == 0)
        return ERR_PARSE;
    *value = xstrndup(lx->p, n);
    lx->p += n;
    return 0;
}

/* Stores a Bearer parameter we use; the others are ignored. A repeated one is an error (RFC
 * 9110 11.2: "each parameter name MUST only occur once per challenge"): which of two
 * resource_metadata URLs to trust is not a guess to make. */
static int bearer_param(struct www_auth *w, const char *name, size_t n, char **value)
{
    static const struct {
        const char *name;
        size_t off;
    } known[] = {
        {"resource_metadata", offsetof(struct www_auth, resource_metadata)},
        {"scope", offsetof(struct www_auth, scope)},
        {"error", offsetof(struct www_auth, error)},
        {"error_description", offsetof(struct www_auth, error_description)},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strlen(known[i].name) != n || strncasecmp(known[i].name, name, n) != 0)
            continue;
        char **slot = (char **)(void *)((char *)w + known[i].off);
        if (*slot != NULL)
            return ERR_PARSE;
        *slot = *value;
        *value = NULL;
        return 0;
    }
    return 0;
}

int www_auth_parse(const char *header, struct www_auth *out)
{
    struct www_auth w = {0};
    char *value = NULL;
    int r = ERR_PARSE;
    bool in_bearer = false;

    memset(out, 0, sizeof *out);
    if (header == NULL)
        return ERR_PARSE;
    size_t len = strnlen(header, WWW_AUTH_MAX + 1);
    if (len > WWW_AUTH_MAX)
        return ERR_PARSE;
    struct lexer lx = {header, header + len};

    /* #challenge: empty list elements and OWS around commas are allowed (RFC 9110 5.6.1). */
    for (;;) {
        while (lx.p < lx.end && (is_ows((unsigned char)*lx.p) || *lx.p == ','))
            lx.p++;
        if (lx.p >= lx.end)
            break;
        /* challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ] */
        size_t n = token_len(&lx);
        if (n == 0)
            goto out;
        const char *scheme = lx.p;
        lx.p += n;
        in_bearer = w.scheme == NULL && n == 6 && strncasecmp(scheme, "Bearer", 6) == 0;
        if (in_bearer)
            w.scheme = xstrndup(scheme, n);
        bool sp = lx.p < lx.end && *lx.p == ' ';
        skip_ows(&lx);
        if (lx.p >= lx.end || *lx.p == ',')
            continue; /* no token68 or parameters */
        if (!sp)
            goto out; /* "Bearer=x", "Bearer\"x\"", "Bearer\tx" */
        if ((n = token68_len(&lx)) > 0) {
            lx.p += n;
            skip_ows(&lx);
            continue;
        }
        /* #auth-param, up to the next element that is not one (the next challenge). */
        for (;;) {
            const char *name;
            if ((r = auth_param(&lx, &name, &n, &value)) != 0)
                goto out;
            r = ERR_PARSE;
            if (in_bearer && bearer_param(&w, name, n, &value) != 0)
                goto out;
            free(value);
            value = NULL;
            skip_ows(&lx);
            if (lx.p >= lx.end)
                break;
            if (*lx.p != ',')
                goto out; /* "scope=a b" */
            while (lx.p < lx.end && (is_ows((unsigned char)*lx.p) || *lx.p == ','))
                lx.p++;
            if (lx.p >= lx.end || !at_auth_param(&lx))
                break;
        }
    }
    if (w.scheme == NULL)
        goto out; /* no Bearer challenge */
    *out = w;
    memset(&w, 0, sizeof w);
    r = 0;
out:
    free(value);
    www_auth_clear(&w);
    return r;
}

void www_auth_clear(struct www_auth *w)
{
    if (w == NULL)
        return;
    free(w->scheme);
    free(w->resource_metadata);
    free(w->scope);
    free(w->error);
    free(w->error_description);
    memset(w, 0, sizeof *w);
}

/* ---- URLs (RFC 3986, restricted to what an MCP server URL or an issuer can be) ---- */

/* An absolute http(s) URL, split; pointers into the parsed string. */
struct url {
    bool https;
    const char *host; /* reg-name, IPv4 address or "[IPv6]" (brackets included) */
    size_t host_len;
    unsigned port;    /* 0 when absent or the scheme's default */
    const char *path; /* "" or starts with '/' */
    size_t path_len;
    const char *query; /* after '?', or NULL when there is no query */
    size_t query_len;
    bool fragment;
};

/* The bytes a URL may contain: printable ASCII without space and the characters RFC 3986
 * excludes ("<>\^`{|} and '"'). Percent-escapes pass through unchanged. */
static bool url_char_ok(unsigned char c)
{
    return c > 0x20 && c < 0x7f && strchr("\"<>\\^`{|}", c) == NULL;
}

static bool host_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static bool hex_digit(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Splits s into u; false when s is not an absolute http or https URL with a host (userinfo,
 * IP-literal zone ids and IPvFuture are refused, as are bytes no URL contains). */
static bool url_parse(const char *s, struct url *u)
{
    memset(u, 0, sizeof *u);
    if (s == NULL)
        return false;
    size_t len = strnlen(s, URL_MAX + 1);
    if (len > URL_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!url_char_ok((unsigned char)s[i]))
            return false;
    const char *p = s, *end = s + len;
    if (len >= 8 && strncasecmp(p, "https://", 8) == 0) {
        u->https = true;
        p += 8;
    } else if (len >= 7 && strncasecmp(p, "http://", 7) == 0) {
        p += 7;
    } else {
        return false;
    }

    /* authority = host [ ":" port ], up to '/', '?', '#' or the end */
    const char *a = p;
    while (p < end && *p != '/' && *p != '?' && *p != '#')
        p++;
    const char *aend = p, *h = a;
    if (memchr(a, '@', (size_t)(aend - a)) != NULL)
        return false;
    if (h < aend && *h == '[') {
        const char *q = h + 1;
        bool colon = false;
        while (q < aend && (hex_digit((unsigned char)*q) || *q == ':' || *q == '.')) {
            colon |= *q == ':';
            q++;
        }
        if (q >= aend || *q != ']' || !colon)
            return false;
        u->host = h;
        u->host_len = (size_t)(q + 1 - h);
        h = q + 1;
    } else {
        while (h < aend && host_char_ok((unsigned char)*h))
            h++;
        if (h == a)
            return false;
        u->host = a;
        u->host_len = (size_t)(h - a);
    }
    if (h < aend) {
        if (*h != ':')
            return false;
        unsigned long port = 0;
        size_t digits = 0;
        for (h++; h < aend; h++, digits++) {
            if (*h < '0' || *h > '9' || digits >= 5)
                return false;
            port = port * 10 + (unsigned long)(*h - '0');
        }
        if (port > 65535 || (digits > 0 && port == 0))
            return false;
        /* An empty port, as RFC 3986 6.2.3 says, is the default one. */
        if (digits > 0 && port != (u->https ? 443u : 80u))
            u->port = (unsigned)port;
    }

    u->path = p;
    while (p < end && *p != '?' && *p != '#')
        p++;
    u->path_len = (size_t)(p - u->path);
    if (p < end && *p == '?') {
        u->query = ++p;
        while (p < end && *p != '#')
            p++;
        u->query_len = (size_t)(p - u->query);
    }
    u->fragment = p < end;
    return true;
}

/* scheme "://" host [ ":" port ], lower-cased, without a default port. */
static int url_origin(const struct url *u, struct buf *b)
{
    int r;
    if ((r = buf_append_str(b, u->https ? "https://" : "http://")) != 0)
        return r;
    for (size_t i = 0; i < u->host_len; i++) {
        char c = u->host[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if ((r = buf_append(b, &c, 1)) != 0)
            return r;
    }
    if (u->port != 0 && (r = buf_printf(b, ":%u", u->port)) != 0)
        return r;
    return 0;
}

/* The path without its terminating slashes (RFC 8414 3.1, RFC 9728 3.1); "" for the root. */
static size_t path_trimmed_len(const struct url *u)
{
    size_t n = u->path_len;
    while (n > 0 && u->path[n - 1] == '/')
        n--;
    return n;
}

static bool is_loopback(const struct url *u)
{
    static const char *const hosts[] = {"127.0.0.1", "[::1]", "localhost"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++)
        if (u->host_len == strlen(hosts[i]) && strncasecmp(u->host, hosts[i], u->host_len) == 0)
            return true;
    return false;
}

/* Appends origin + infix + path-piece + suffix to arr. */
static int push_url(json_t *arr, const struct url *u, const char *infix, const char *path,
                    size_t pathlen, const char *suffix)
{
    struct buf b;
    int r;
    buf_init(&b, 2 * URL_MAX);
    if ((r = url_origin(u, &b)) != 0 || (r = buf_append_str(&b, infix)) != 0 ||
        (r = buf_append(&b, path, pathlen)) != 0 || (r = buf_append_str(&b, suffix)) != 0)
        goto out;
    r = json_array_append_new(arr, json_string(b.data)) == 0 ? 0 : ERR_INTERNAL;
out:
    buf_free(&b);
    return r;
}

json_t *discovery_prm_urls(const char *server_url)
{
    struct url u;
    json_t *arr = NULL, *ret = NULL;
    if (!url_parse(server_url, &u))
        return NULL;
    arr = json_array();
    size_t n = path_trimmed_len(&u);
    if (n > 0 && push_url(arr, &u, PRM_WELL_KNOWN, u.path, n, "") != 0)
        goto out;
    if (push_url(arr, &u, PRM_WELL_KNOWN, "", 0, "") != 0)
        goto out;
    ret = arr;
    arr = NULL;
out:
    json_decref(arr);
    return ret;
}

json_t *discovery_as_urls(const char *issuer)
{
    struct url u;
    json_t *arr = NULL, *ret = NULL;
    if (!url_parse(issuer, &u))
        return NULL;
    arr = json_array();
    size_t n = path_trimmed_len(&u);
    if (n > 0) {
        if (push_url(arr, &u, AS_WELL_KNOWN, u.path, n, "") != 0 ||
            push_url(arr, &u, OIDC_WELL_KNOWN, u.path, n, "") != 0 ||
            push_url(arr, &u, "", u.path, n, OIDC_WELL_KNOWN) != 0)
            goto out;
    } else {
        if (push_url(arr, &u, AS_WELL_KNOWN, "", 0, "") != 0 ||
            push_url(arr, &u, OIDC_WELL_KNOWN, "", 0, "") != 0)
            goto out;
    }
    ret = arr;
    arr = NULL;
out:
    json_decref(arr);
    return ret;
}

/* origin + path (+ "?" query when non-empty); trim drops one terminating '/' of the path. */
static char *url_canonical(const struct url *u, bool trim)
{
    struct buf b;
    char *ret = NULL;
    size_t n = u->path_len;
    if (trim && n > 0 && u->path[n - 1] == '/')
        n--;
    buf_init(&b, 2 * URL_MAX);
    if (url_origin(u, &b) != 0 || buf_append(&b, u->path, n) != 0)
        goto out;
    if (u->query != NULL && u->query_len > 0 &&
        (buf_append_str(&b, "?") != 0 || buf_append(&b, u->query, u->query_len) != 0))
        goto out;
    ret = buf_steal(&b, NULL);
out:
    buf_free(&b);
    return ret;
}

char *discovery_canonical_resource(const char *server_url)
{
    struct url u;
    if (!url_parse(server_url, &u))
        return NULL;
    return url_canonical(&u, false);
}

/* An authorization server or endpoint URL: https, or http to a loopback host. */
static int check_as_url(json_t *v, const char *field, bool identifier, char *w, size_t wl)
{
    struct url u;
    char shown[WHY_QUOTE_MAX + 4];
    if (!json_is_string(v)) {
        reason_set(w, wl, "%s: must be a string", field);
        return ERR_INVALID;
    }
    reason_quote(json_string_value(v), WHY_QUOTE_MAX, shown);
    if (!url_parse(json_string_value(v), &u)) {
        reason_set(w, wl, "%s: '%s' is not an absolute http(s) URL", field, shown);
        return ERR_INVALID;
    }
    if (!u.https && !is_loopback(&u)) {
        reason_set(w, wl, "%s: '%s' must use https (http only for a loopback host)", field, shown);
        return ERR_INVALID;
    }
    if (u.fragment || (identifier && u.query != NULL)) {
        reason_set(w, wl, "%s: '%s' must not have a %s", field, shown,
                   u.fragment ? "fragment" : "query");
        return ERR_INVALID;
    }
    return 0;
}

int discovery_prm_check(json_t *prm, const char *server_url, char *w, size_t wl)
{
    struct url su, ru;
    char *want = NULL, *got = NULL;
    char a[WHY_QUOTE_MAX + 4], b[WHY_QUOTE_MAX + 4];
    int r = ERR_INVALID;

    reason_set(w, wl, "%s", "");
    if (!url_parse(server_url, &su)) {
        reason_quote(server_url != NULL ? server_url : "(null)", WHY_QUOTE_MAX, a);
        reason_set(w, wl, "server URL '%s' is not an absolute http(s) URL", a);
        goto out;
    }
    if (!json_is_object(prm)) {
        reason_set(w, wl, "protected resource metadata must be a JSON object");
        goto out;
    }
    json_t *res = json_object_get(prm, "resource");
    if (res == NULL) {
        reason_set(w, wl, "resource: missing");
        goto out;
    }
    if (!json_is_string(res)) {
        reason_set(w, wl, "resource: must be a string");
        goto out;
    }
    reason_quote(json_string_value(res), WHY_QUOTE_MAX, a);
    reason_quote(server_url, WHY_QUOTE_MAX, b);
    if (!url_parse(json_string_value(res), &ru)) {
        reason_set(w, wl, "resource: '%s' is not an absolute http(s) URL", a);
        goto out;
    }
    if (ru.fragment) {
        reason_set(w, wl, "resource: '%s' must not have a fragment", a);
        goto out;
    }
    want = url_canonical(&su, true);
    got = url_canonical(&ru, true);
    /* the resource identifies the server: the same URL, or (as the MCP SDKs and the
     * conformance suite accept) a same-origin URL whose path is a prefix of the server's at a
     * segment boundary, e.g. https://h for https://h/mcp, when the document sits at the root */
    size_t glen = got != NULL ? strlen(got) : 0;
    bool prefix = want != NULL && got != NULL && ru.query == NULL && glen < strlen(want) &&
                  strncmp(want, got, glen) == 0 && (want[glen] == '/' || got[glen - 1] == '/');
    if (want == NULL || got == NULL || (strcmp(want, got) != 0 && !prefix)) {
        reason_set(w, wl, "resource: '%s' does not match the server URL '%s'", a, b);
        goto out;
    }

    json_t *as = json_object_get(prm, "authorization_servers"), *v;
    size_t i;
    if (as == NULL) {
        reason_set(w, wl, "authorization_servers: missing");
        goto out;
    }
    if (!json_is_array(as) || json_array_size(as) == 0) {
        reason_set(w, wl, "authorization_servers: must be a non-empty array");
        goto out;
    }
    json_array_foreach (as, i, v) {
        char field[48];
        snprintf(field, sizeof field, "authorization_servers[%zu]", i);
        if ((r = check_as_url(v, field, true, w, wl)) != 0)
            goto out;
    }
    r = ERR_INVALID;

    json_t *sc = json_object_get(prm, "scopes_supported");
    if (sc != NULL) {
        if (!json_is_array(sc)) {
            reason_set(w, wl, "scopes_supported: must be an array of strings");
            goto out;
        }
        json_array_foreach (sc, i, v) {
            if (!json_is_string(v)) {
                reason_set(w, wl, "scopes_supported: must be an array of strings");
                goto out;
            }
        }
    }
    r = 0;
out:
    free(want);
    free(got);
    return r;
}

static bool array_has_string(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach (arr, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return true;
    }
    return false;
}

int discovery_as_check(json_t *asm_doc, const char *issuer, char *w, size_t wl)
{
    char a[WHY_QUOTE_MAX + 4], b[WHY_QUOTE_MAX + 4];
    int r;

    reason_set(w, wl, "%s", "");
    if (!json_is_object(asm_doc)) {
        reason_set(w, wl, "authorization server metadata must be a JSON object");
        return ERR_INVALID;
    }
    json_t *iss = json_object_get(asm_doc, "issuer");
    if (iss == NULL) {
        reason_set(w, wl, "issuer: missing");
        return ERR_INVALID;
    }
    if (!json_is_string(iss)) {
        reason_set(w, wl, "issuer: must be a string");
        return ERR_INVALID;
    }
    if (issuer == NULL || strcmp(json_string_value(iss), issuer) != 0) {
        reason_quote(json_string_value(iss), WHY_QUOTE_MAX, a);
        reason_quote(issuer != NULL ? issuer : "(null)", WHY_QUOTE_MAX, b);
        reason_set(w, wl, "issuer: '%s' does not match the expected issuer '%s'", a, b);
        return ERR_INVALID;
    }
    static const char *const endpoints[] = {"authorization_endpoint", "token_endpoint"};
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++) {
        json_t *v = json_object_get(asm_doc, endpoints[i]);
        if (v == NULL) {
            reason_set(w, wl, "%s: missing", endpoints[i]);
            return ERR_INVALID;
        }
        if ((r = check_as_url(v, endpoints[i], false, w, wl)) != 0)
            return r;
    }
    json_t *reg = json_object_get(asm_doc, "registration_endpoint");
    if (reg != NULL && (r = check_as_url(reg, "registration_endpoint", false, w, wl)) != 0)
        return r;

    json_t *ccm = json_object_get(asm_doc, "code_challenge_methods_supported");
    if (ccm == NULL) {
        reason_set(w, wl,
            "code_challenge_methods_supported: missing (the server does not advertise "
            "PKCE, which MCP requires)");
        return ERR_INVALID;
    }
    if (!json_is_array(ccm)) {
        reason_set(w, wl, "code_challenge_methods_supported: must be an array");
        return ERR_INVALID;
    }
    if (!array_has_string(ccm, "S256")) {
        reason_set(w, wl, "code_challenge_methods_supported: does not contain S256");
        return ERR_INVALID;
    }
    json_t *rt = json_object_get(asm_doc, "response_types_supported");
    if (rt == NULL) {
        reason_set(w, wl, "response_types_supported: missing");
        return ERR_INVALID;
    }
    if (!json_is_array(rt)) {
        reason_set(w, wl, "response_types_supported: must be an array");
        return ERR_INVALID;
    }
    if (!array_has_string(rt, "code")) {
        reason_set(w, wl, "response_types_supported: does not contain code");
        return ERR_INVALID;
    }
    return 0;
}

json_t *discovery_legacy_fallback(const char *server_url)
{
    struct url u;
    struct buf b;
    json_t *ret = NULL;
    if (!url_parse(server_url, &u))
        return NULL;
    buf_init(&b, 2 * URL_MAX);
    if (url_origin(&u, &b) != 0)
        goto out;
    /* 2025-03-26 "Fallbacks for Servers without Metadata Discovery": the endpoints are at
     * these paths on the server's origin, and PKCE (S256) is mandatory for every client. */
    ret = json_pack("{s:s, s:s+, s:s+, s:s+, s:[s], s:[s], s:[s,s]}", "issuer", b.data,
                    "authorization_endpoint", b.data, "/authorize", "token_endpoint", b.data,
                    "/token", "registration_endpoint", b.data, "/register",
                    "response_types_supported", "code", "code_challenge_methods_supported", "S256",
                    "grant_types_supported", "authorization_code", "refresh_token");
out:
    buf_free(&b);
    return ret;
}

/* Appends the space-separated tokens of s to b, skipping those already in b. */
static int scope_union(struct buf *b, const char *s)
{
    int r;
    const char *p = s;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *t = p;
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
        size_t n = (size_t)(p - t);
        if (n == 0)
            continue;
        bool seen = false;
        const char *q = b->data != NULL ? b->data : "";
        while (*q != '\0' && !seen) {
            const char *e = strchr(q, ' ');
            size_t m = e != NULL ? (size_t)(e - q) : strlen(q);
            seen = m == n && memcmp(q, t, n) == 0;
            q += m + (e != NULL);
        }
        if (seen)
            continue;
        if ((b->len > 0 && (r = buf_append(b, " ", 1)) != 0) || (r = buf_append(b, t, n)) != 0)
            return r;
    }
    return 0;
}

char *discovery_scope(const char *challenge_scope, json_t *prm, const char *previous)
{
    struct buf b;
    char *ret = NULL;
    buf_init(&b, SCOPE_MAX);
    if (previous != NULL && scope_union(&b, previous) != 0)
        goto out;
    if (challenge_scope != NULL && challenge_scope[strspn(challenge_scope, " \t")] != '\0') {
        if (scope_union(&b, challenge_scope) != 0)
            goto out;
    } else {
        json_t *sc = json_object_get(prm, "scopes_supported"), *v;
        size_t i;
        json_array_foreach (sc, i, v) {
            if (json_is_string(v) && scope_union(&b, json_string_value(v)) != 0)
                goto out;
        }
    }
    if (b.len > 0)
        ret = buf_steal(&b, NULL);
out:
    buf_free(&b);
    return ret;
}
