/* Clients: RFC 7591 metadata validation, redirect URI matching (exact, plus any port on the
 * loopback IP literals: RFC 8252 section 7.3), lookup (pre-registered and DCR clients from the
 * store; client ID metadata documents fetched over https with size, time and SSRF limits and
 * cached per their Cache-Control), and the registration endpoints (RFC 7591 POST /register,
 * RFC 7592 GET|PUT|DELETE /register/<client_id>).
 *
 * Reasons written to why may become an OAuth error_description, so they stay within what
 * RFC 6749 allows there (printable ASCII without '"' and '\'): values from the client are
 * quoted in a sanitised, truncated form.
 *
 * The CIMD fetch needs libcurl; it is compiled only with MCPGATE_HAVE_CURL. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "core/reason.h"
#include "core/buf.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "oauth/oauth_int.h"

#ifdef MCPGATE_HAVE_CURL
#include <curl/curl.h>
#endif

#define REDIRECT_URIS_MAX 20
#define URI_MAX 2000
#define CLIENT_NAME_MAX 200  /* characters */
#define SHORT_STRING_MAX 200 /* software_id, software_version */
#define SCOPE_MAX 1000
#define CONTACTS_MAX 20
#define CONTACT_MAX 320
#define BODY_MAX (64 * 1024) /* registration requests and metadata documents */
#define SHOWN_MAX 40         /* longest client value quoted in a reason */

#define CIMD_TTL_MIN 60
#define CIMD_TTL_MAX 86400
#define CIMD_TTL_DEFAULT 3600

/* ---- URIs ---- */

/* The parts of an absolute http(s) URI, as spans of the original string. */
struct uri {
    bool https;
    const char *host; /* "[::1]" keeps its brackets */
    size_t host_len;
    bool has_port;
    const char *path; /* from the first '/', '?', '#' after the authority (may be "") */
    bool has_query;
    bool has_fragment;
};

static bool is_alpha(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 pchar, without pct-encoded (checked by the caller). */
static bool is_pchar(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || strchr("-._~!$&'()*+,;=:@", c) != NULL;
}

static bool host_is_loopback(const struct uri *u)
{
    return (u->host_len == 9 && strncmp(u->host, "127.0.0.1", 9) == 0) ||
           (u->host_len == 5 && strncmp(u->host, "[::1]", 5) == 0) ||
           (u->host_len == 9 && strncasecmp(u->host, "localhost", 9) == 0);
}

/* Parses an absolute http or https URI strictly: a lowercase-insensitive scheme, "//", a host
 * (DNS name, IPv4 or bracketed IPv6; no userinfo, no percent-encoding), an optional port
 * 1-65535, then path, query and fragment of RFC 3986 characters. On error *err is a reason
 * (static string). */
static bool uri_parse(const char *s, struct uri *u, const char **err)
{
    const char *p = s;
    memset(u, 0, sizeof(*u));
    *err = "not an absolute URI";
    if (!is_alpha((unsigned char)*p))
        return false;
    while (is_alpha((unsigned char)*p) || is_digit((unsigned char)*p) || *p == '+' || *p == '-' ||
           *p == '.')
        p++;
    if (*p != ':')
        return false;
    size_t sl = (size_t)(p - s);
    if (sl == 5 && strncasecmp(s, "https", 5) == 0) {
        u->https = true;
    } else if (!(sl == 4 && strncasecmp(s, "http", 4) == 0)) {
        *err = "the scheme is not allowed (https, or http for a loopback host)";
        return false;
    }
    p++;
    if (p[0] != '/' || p[1] != '/')
        return false;
    p += 2;
    size_t alen = strcspn(p, "/?#");
    if (memchr(p, '@', alen) != NULL) {
        *err = "must not contain userinfo";
        return false;
    }
    u->host = p;
    if (*p == '[') {
        const char *close = memchr(p, ']', alen);
        *err = "bad host";
        if (close == NULL || close - p < 3)
            return false;
        for (const char *q = p + 1; q < close; q++) {
            if (!is_hex((unsigned char)*q) && *q != ':' && *q != '.')
                return false;
        }
        char lit[64];
        struct in6_addr a6;
        size_t ll = (size_t)(close - p - 1);
        if (ll >= sizeof(lit))
            return false;
        memcpy(lit, p + 1, ll);
        lit[ll] = '\0';
        if (inet_pton(AF_INET6, lit, &a6) != 1)
            return false;
        p = close + 1;
    } else {
        while (is_alpha((unsigned char)*p) || is_digit((unsigned char)*p) || *p == '-' || *p == '.')
            p++;
    }
    u->host_len = (size_t)(p - u->host);
    if (u->host_len == 0 || u->host_len > 255 || u->host[0] == '.' || u->host[0] == '-') {
        *err = "bad host";
        return false;
    }
    if (*p == ':') {
        unsigned long port = 0;
        size_t n = 0;
        p++;
        while (is_digit((unsigned char)p[n]) && n < 6)
            port = port * 10 + (unsigned long)(p[n++] - '0');
        *err = "bad port";
        if (n == 0 || n > 5 || port == 0 || port > 65535)
            return false;
        u->has_port = true;
        p += n;
    }
    if (*p != '\0' && *p != '/' && *p != '?' && *p != '#') {
        *err = "bad host";
        return false;
    }
    u->path = p;
    /* path, then ?query, then #fragment */
    int part = 0;
    for (; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '%') {
            if (!is_hex((unsigned char)p[1]) || !is_hex((unsigned char)p[2])) {
                *err = "bad percent-encoding";
                return false;
            }
            p += 2;
        } else if (c == '?' && part == 0) {
            part = 1;
            u->has_query = true;
        } else if (c == '#' && part < 2) {
            part = 2;
            u->has_fragment = true;
        } else if (!is_pchar(c) && c != '/' && !(part > 0 && c == '?')) {
            *err = "contains a character not allowed in a URI";
            return false;
        }
    }
    return true;
}

/* A redirect URI: https anywhere, http only to a loopback host; no fragment, no userinfo. */
static bool redirect_uri_valid(const char *s, const char **err)
{
    struct uri u;
    if (!uri_parse(s, &u, err))
        return false;
    if (u.has_fragment) {
        *err = "must not contain a fragment";
        return false;
    }
    if (!u.https && !host_is_loopback(&u)) {
        *err = "http is only allowed for loopback hosts";
        return false;
    }
    return true;
}

/* A client ID metadata document URL: https, a path other than "/", no dot segments, no
 * fragment (draft-ietf-oauth-client-id-metadata-document section 3). */
static bool cimd_url_valid(const char *s, const char **err)
{
    struct uri u;
    if (strlen(s) > URI_MAX) {
        *err = "too long";
        return false;
    }
    if (!uri_parse(s, &u, err))
        return false;
    if (!u.https || strncmp(s, "https://", 8) != 0) {
        *err = "must be an https URL";
        return false;
    }
    if (u.has_fragment) {
        *err = "must not contain a fragment";
        return false;
    }
    size_t plen = strcspn(u.path, "?");
    if (plen < 2 || u.path[0] != '/') {
        *err = "must have a path";
        return false;
    }
    for (const char *seg = u.path; seg < u.path + plen;) {
        seg++; /* past '/' */
        size_t n = strcspn(seg, "/?");
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.')) {
            *err = "must not contain dot segments";
            return false;
        }
        seg += n;
    }
    return true;
}

/* For "http://127.0.0.1[:port]REST" and "http://[::1][:port]REST": which of the two (0, 1)
 * and REST (path and query). The port, when present, is 1-5 digits without a leading zero,
 * at most 65535. */
static int loopback_ip_split(const char *s, const char **rest)
{
    static const char *const prefixes[] = {"http://127.0.0.1", "http://[::1]"};
    for (int i = 0; i < 2; i++) {
        size_t pl = strlen(prefixes[i]);
        if (strncmp(s, prefixes[i], pl) != 0)
            continue;
        const char *p = s + pl;
        if (*p == ':') {
            unsigned long port = 0;
            size_t n = 0;
            p++;
            if (*p == '0')
                return -1;
            while (is_digit((unsigned char)p[n]) && n < 6)
                port = port * 10 + (unsigned long)(p[n++] - '0');
            if (n == 0 || n > 5 || port > 65535)
                return -1;
            p += n;
        }
        if (*p != '\0' && *p != '/' && *p != '?')
            return -1;
        *rest = p;
        return i;
    }
    return -1;
}

bool oauth_redirect_uri_allowed(const struct store_client *c, const char *redirect_uri)
{
    json_t *uris = c && c->metadata ? json_object_get(c->metadata, "redirect_uris") : NULL;
    size_t i;
    json_t *v;
    if (redirect_uri == NULL || !json_is_array(uris))
        return false;
    const char *req_rest = NULL;
    int req_kind = loopback_ip_split(redirect_uri, &req_rest);
    json_array_foreach (uris, i, v) {
        const char *reg = json_string_value(v);
        const char *reg_rest = NULL;
        if (reg == NULL)
            continue;
        if (strcmp(reg, redirect_uri) == 0)
            return true;
        /* RFC 8252 section 7.3: loopback IP literals match with any port. */
        if (req_kind >= 0 && loopback_ip_split(reg, &reg_rest) == req_kind &&
            strcmp(reg_rest, req_rest) == 0 && strchr(req_rest, '#') == NULL)
            return true;
    }
    return false;
}

const char *oauth_client_auth_method(const struct store_client *c)
{
    static const char *const methods[] = {"none", "client_secret_basic", "client_secret_post"};
    const char *m =
        c->metadata ? json_string_value(json_object_get(c->metadata, "token_endpoint_auth_method"))
                    : NULL;
    for (size_t i = 0; m != NULL && i < 3; i++) {
        if (strcmp(m, methods[i]) == 0)
            return methods[i];
    }
    return c->has_secret ? "client_secret_basic" : "none";
}

/* ---- metadata ---- */

static bool array_has(json_t *a, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach (a, i, v) {
        const char *x = json_string_value(v);
        if (x != NULL && strcmp(x, s) == 0)
            return true;
    }
    return false;
}

/* UTF-8 characters in s (jansson strings are valid UTF-8), or SIZE_MAX when it holds a
 * control character. */
static size_t text_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            return SIZE_MAX;
        if ((c & 0xc0) != 0x80)
            n++;
    }
    return n;
}

/* An array of distinct strings, each one of allowed[] (NULL-terminated). */
static bool check_enum_array(json_t *a, const char *name, const char *const allowed[],
                             const char *hint, char *w, size_t wl)
{
    char sh[SHOWN_MAX + 4];
    size_t i;
    json_t *v;
    if (!json_is_array(a)) {
        reason_set(w, wl, "%s: must be an array of strings", name);
        return false;
    }
    json_array_foreach (a, i, v) {
        const char *s = json_string_value(v);
        bool known = false;
        if (s == NULL) {
            reason_set(w, wl, "%s[%zu]: must be a string", name, i);
            return false;
        }
        for (size_t k = 0; allowed[k] != NULL; k++)
            known = known || strcmp(s, allowed[k]) == 0;
        if (!known) {
            reason_set(w, wl, "%s[%zu]: '%s' is not supported (%s)", name, i,
                       reason_quote(s, SHOWN_MAX, sh), hint);
            return false;
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(json_string_value(json_array_get(a, k)), s) == 0) {
                reason_set(w, wl, "%s[%zu]: '%s' appears twice", name, i, s);
                return false;
            }
        }
    }
    return true;
}

static bool check_redirect_uris(json_t *uris, bool required, char *w, size_t wl)
{
    size_t i;
    json_t *v;
    if (uris == NULL) {
        if (required)
            reason_set(w, wl, "redirect_uris: required for the authorization_code grant");
        return !required;
    }
    if (!json_is_array(uris)) {
        reason_set(w, wl, "redirect_uris: must be an array of strings");
        return false;
    }
    if (json_array_size(uris) == 0 && required) {
        reason_set(w, wl, "redirect_uris: must not be empty");
        return false;
    }
    if (json_array_size(uris) > REDIRECT_URIS_MAX) {
        reason_set(w, wl, "redirect_uris: at most %d are allowed", REDIRECT_URIS_MAX);
        return false;
    }
    json_array_foreach (uris, i, v) {
        const char *s = json_string_value(v), *err = "bad";
        if (s == NULL) {
            reason_set(w, wl, "redirect_uris[%zu]: must be a string", i);
            return false;
        }
        if (json_string_length(v) > URI_MAX) {
            reason_set(w, wl, "redirect_uris[%zu]: longer than %d characters", i, URI_MAX);
            return false;
        }
        if (strlen(s) != json_string_length(v) || !redirect_uri_valid(s, &err)) {
            reason_set(w, wl, "redirect_uris[%zu]: %s", i, err);
            return false;
        }
    }
    return true;
}

/* An https URL shown to people (client_uri, logo_uri, tos_uri, policy_uri). */
static bool check_https_member(json_t *meta, const char *name, char *w, size_t wl)
{
    json_t *v = json_object_get(meta, name);
    const char *s = json_string_value(v), *err = NULL;
    struct uri u;
    if (v == NULL)
        return true;
    if (s == NULL || json_string_length(v) > URI_MAX || strlen(s) != json_string_length(v)) {
        reason_set(w, wl, "%s: must be a URL of at most %d characters", name, URI_MAX);
        return false;
    }
    if (strncasecmp(s, "https:", 6) != 0) {
        reason_set(w, wl, "%s: must be an https URL", name);
        return false;
    }
    if (!uri_parse(s, &u, &err)) {
        reason_set(w, wl, "%s: %s", name, err);
        return false;
    }
    if (!u.https) {
        reason_set(w, wl, "%s: must be an https URL", name);
        return false;
    }
    return true;
}

static bool check_text_member(json_t *meta, const char *name, size_t max, char *w, size_t wl)
{
    json_t *v = json_object_get(meta, name);
    const char *s = json_string_value(v);
    if (v == NULL)
        return true;
    if (s == NULL || strlen(s) != json_string_length(v) || text_chars(s) > max) {
        reason_set(w, wl,
                   "%s: must be a string of at most %zu characters, without control characters",
                   name, max);
        return false;
    }
    return true;
}

/* RFC 6749 section 3.3: scope-tokens of %x21 / %x23-5B / %x5D-7E separated by spaces. */
static bool check_scope(json_t *meta, char *w, size_t wl)
{
    json_t *v = json_object_get(meta, "scope");
    const char *s = json_string_value(v);
    if (v == NULL)
        return true;
    if (s == NULL || json_string_length(v) > SCOPE_MAX) {
        reason_set(w, wl, "scope: must be a string of at most %d characters", SCOPE_MAX);
        return false;
    }
    for (size_t i = 0; i < json_string_length(v); i++) {
        unsigned char c = (unsigned char)s[i];
        if (c != ' ' && (c < 0x21 || c > 0x7e || c == '"' || c == '\\')) {
            reason_set(w, wl, "scope: contains a character not allowed in a scope");
            return false;
        }
    }
    return true;
}

static bool check_contacts(json_t *meta, char *w, size_t wl)
{
    json_t *a = json_object_get(meta, "contacts"), *v;
    size_t i;
    if (a == NULL)
        return true;
    if (!json_is_array(a) || json_array_size(a) > CONTACTS_MAX) {
        reason_set(w, wl, "contacts: must be an array of at most %d strings", CONTACTS_MAX);
        return false;
    }
    json_array_foreach (a, i, v) {
        const char *s = json_string_value(v);
        if (s == NULL || strlen(s) != json_string_length(v) || text_chars(s) > CONTACT_MAX) {
            reason_set(w, wl, "contacts[%zu]: must be a string of at most %d characters", i,
                       CONTACT_MAX);
            return false;
        }
    }
    return true;
}

/* The validation behind oauth_client_metadata_check; *bad_redirect tells an error in
 * redirect_uris (RFC 7591 invalid_redirect_uri) from the others (invalid_client_metadata). */
static int metadata_check(json_t *meta, const char *cimd_url, char *w, size_t wl,
                          bool *bad_redirect)
{
    static const char *const methods[] = {"none", "client_secret_basic", "client_secret_post",
                                          NULL};
    static const char *const grants[] = {"authorization_code", "refresh_token",
                                         "client_credentials", OAUTH_GRANT_DEVICE, NULL};
    static const char *const responses[] = {"code", NULL};
    char sh[SHOWN_MAX + 4];

    *bad_redirect = false;
    if (!json_is_object(meta)) {
        reason_set(w, wl, "client metadata must be a JSON object");
        return ERR_INVALID;
    }

    /* token_endpoint_auth_method: RFC 7591 defaults to client_secret_basic; a metadata
     * document cannot carry a shared secret, so "none" is both its default and its only
     * supported value (private_key_jwt is not implemented). */
    json_t *m = json_object_get(meta, "token_endpoint_auth_method");
    if (m == NULL) {
        m = json_string(cimd_url ? "none" : "client_secret_basic");
        json_object_set_new(meta, "token_endpoint_auth_method", m);
    }
    const char *method = json_string_value(m);
    bool known = false;
    if (method == NULL) {
        reason_set(w, wl, "token_endpoint_auth_method: must be a string");
        return ERR_INVALID;
    }
    for (size_t k = 0; methods[k] != NULL; k++)
        known = known || strcmp(method, methods[k]) == 0;
    if (!known) {
        reason_set(w, wl,
            "token_endpoint_auth_method: '%s' is not supported (none, client_secret_basic, "
            "client_secret_post)",
            reason_quote(method, SHOWN_MAX, sh));
        return ERR_INVALID;
    }
    bool public_client = strcmp(method, "none") == 0;
    if (cimd_url != NULL && !public_client) {
        reason_set(w, wl,
            "token_endpoint_auth_method: a client ID metadata document supports only none, "
            "not %s",
            method);
        return ERR_INVALID;
    }

    /* grant_types and response_types, with their RFC 7591 defaults; response_types defaults
     * to ["code"] only when the grants include authorization_code (so a client_credentials
     * or device client need not say response_types: []), and only that grant needs
     * redirect_uris. */
    json_t *gt = json_object_get(meta, "grant_types");
    if (gt == NULL) {
        gt = json_pack("[s]", "authorization_code");
        json_object_set_new(meta, "grant_types", gt);
    }
    if (!check_enum_array(gt, "grant_types", grants,
                          "authorization_code, refresh_token, client_credentials, "
                          OAUTH_GRANT_DEVICE, w, wl))
        return ERR_INVALID;
    if (json_array_size(gt) == 0) {
        reason_set(w, wl, "grant_types: must not be empty");
        return ERR_INVALID;
    }
    bool authz_code = array_has(gt, "authorization_code");
    json_t *rt = json_object_get(meta, "response_types");
    if (rt == NULL) {
        rt = authz_code ? json_pack("[s]", "code") : json_array();
        json_object_set_new(meta, "response_types", rt);
    }
    if (!check_enum_array(rt, "response_types", responses, "only code", w, wl))
        return ERR_INVALID;
    if (authz_code && !array_has(rt, "code")) {
        reason_set(w, wl, "response_types: authorization_code in grant_types needs code");
        return ERR_INVALID;
    }
    if (!authz_code && array_has(rt, "code")) {
        reason_set(w, wl, "grant_types: response_types code needs authorization_code");
        return ERR_INVALID;
    }
    if (public_client && array_has(gt, "client_credentials")) {
        reason_set(w, wl,
            "grant_types: client_credentials needs a client secret (token_endpoint_auth_method "
            "is none)");
        return ERR_INVALID;
    }

    if (!check_redirect_uris(json_object_get(meta, "redirect_uris"), authz_code, w, wl)) {
        *bad_redirect = true;
        return ERR_INVALID;
    }

    json_t *at = json_object_get(meta, "application_type");
    if (at != NULL && (!json_is_string(at) || (strcmp(json_string_value(at), "web") != 0 &&
                                               strcmp(json_string_value(at), "native") != 0))) {
        reason_set(w, wl, "application_type: must be web or native");
        return ERR_INVALID;
    }
    if (!check_text_member(meta, "client_name", CLIENT_NAME_MAX, w, wl) ||
        !check_text_member(meta, "software_id", SHORT_STRING_MAX, w, wl) ||
        !check_text_member(meta, "software_version", SHORT_STRING_MAX, w, wl) ||
        !check_https_member(meta, "client_uri", w, wl) ||
        !check_https_member(meta, "logo_uri", w, wl) ||
        !check_https_member(meta, "tos_uri", w, wl) ||
        !check_https_member(meta, "policy_uri", w, wl) || !check_scope(meta, w, wl) ||
        !check_contacts(meta, w, wl))
        return ERR_INVALID;

    if (cimd_url != NULL) {
        const char *id = json_string_value(json_object_get(meta, "client_id"));
        if (id == NULL || strcmp(id, cimd_url) != 0) {
            reason_set(w, wl, "client_id: must equal the URL of the metadata document");
            return ERR_INVALID;
        }
        if (json_object_get(meta, "client_secret") != NULL ||
            json_object_get(meta, "client_secret_expires_at") != NULL) {
            reason_set(w, wl, "client_secret: not allowed in a client ID metadata document");
            return ERR_INVALID;
        }
    }
    return 0;
}

int oauth_client_metadata_check(json_t *meta, const char *cimd_url, char *w, size_t wl)
{
    bool bad_redirect;
    return metadata_check(meta, cimd_url, w, wl, &bad_redirect);
}

/* ---- client ID metadata documents ---- */

#ifdef MCPGATE_HAVE_CURL

struct fetch {
    struct buf body;
    bool toobig;
    bool allow_private;
    bool refused; /* an address was refused (SSRF) */
    bool no_store;
    long max_age; /* -1: none */
};

static bool v4_blocked(uint32_t a)
{
    static const struct {
        uint32_t net;
        int bits;
    } nets[] = {
        {0x00000000, 8},  /* 0.0.0.0/8 "this network" */
        {0x0a000000, 8},  /* 10/8 */
        {0x64400000, 10}, /* 100.64/10 shared address space (CGNAT) */
        {0x7f000000, 8},  /* 127/8 loopback */
        {0xa9fe0000, 16}, /* 169.254/16 link-local, cloud metadata */
        {0xac100000, 12}, /* 172.16/12 */
        {0xc0000000, 24}, /* 192.0.0/24 IETF protocol assignments */
        {0xc0000200, 24}, /* 192.0.2/24 documentation */
        {0xc0a80000, 16}, /* 192.168/16 */
        {0xc6120000, 15}, /* 198.18/15 benchmarking */
        {0xc6336400, 24}, /* 198.51.100/24 documentation */
        {0xcb007100, 24}, /* 203.0.113/24 documentation */
        {0xe0000000, 4},  /* 224/4 multicast */
        {0xf0000000, 4},  /* 240/4 reserved, broadcast */
    };
    for (size_t i = 0; i < sizeof(nets) / sizeof(*nets); i++) {
        uint32_t mask = 0xffffffffu << (32 - nets[i].bits);
        if ((a & mask) == nets[i].net)
            return true;
    }
    return false;
}

static uint32_t v4_at(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Loopback, private, link-local, unique-local, multicast, reserved, and IPv6 forms that embed
 * one of those IPv4 addresses (mapped, NAT64, 6to4); Teredo and IPv4-compatible refused. */
static bool addr_blocked(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        return v4_blocked(ntohl(s4->sin_addr.s_addr));
    }
    if (sa->sa_family != AF_INET6)
        return true;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
    const unsigned char *b = s6->sin6_addr.s6_addr;
    static const unsigned char zero[12] = {0};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (memcmp(b, zero, 12) == 0) /* ::, ::1, IPv4-compatible */
        return true;
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0)
        return v4_blocked(v4_at(b + 12));
    if (b[0] == 0x20 && b[1] == 0x02) /* 2002::/16 6to4 */
        return v4_blocked(v4_at(b + 2));
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0) /* 2001::/32 Teredo */
        return true;
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) /* documentation */
        return true;
    if ((b[0] & 0xfe) == 0xfc) /* fc00::/7 unique local */
        return true;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) /* fe80::/10 link-local */
        return true;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) /* fec0::/10 site-local (deprecated) */
        return true;
    if (b[0] == 0xff) /* multicast */
        return true;
    if (b[0] == 0x01 && b[1] == 0 && memcmp(b + 2, zero, 6) == 0) /* 100::/64 discard */
        return true;
    return false;
}

/* Every connection curl opens passes here with the address it resolved: refusing the socket
 * is the one check that also holds against DNS rebinding. */
static curl_socket_t on_opensocket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct fetch *f = arg;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    if (!f->allow_private && addr_blocked(&a->addr)) {
        f->refused = true;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol); /* not into children */
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct fetch *f = arg;
    if (buf_append(&f->body, p, size * n) != 0) {
        f->toobig = true;
        return 0; /* aborts the transfer */
    }
    return size * n;
}

/* Cache-Control: max-age=N, no-store, no-cache (treated as no-store: nothing revalidates). */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct fetch *f = arg;
    size_t len = size * n;
    if (len < 14 || strncasecmp(p, "cache-control:", 14) != 0)
        return len;
    const char *q = p + 14, *end = p + len;
    while (q < end) {
        while (q < end && (*q == ' ' || *q == '\t' || *q == ','))
            q++;
        const char *d = q;
        while (q < end && *q != ',' && *q != '\r' && *q != '\n')
            q++;
        size_t dl = (size_t)(q - d);
        while (dl > 0 && (d[dl - 1] == ' ' || d[dl - 1] == '\t'))
            dl--;
        if ((dl == 8 && strncasecmp(d, "no-store", 8) == 0) ||
            (dl == 8 && strncasecmp(d, "no-cache", 8) == 0)) {
            f->no_store = true;
        } else if (dl > 8 && strncasecmp(d, "max-age=", 8) == 0) {
            long v = 0;
            size_t i = 8;
            if (d[i] == '"')
                i++;
            if (i < dl && is_digit((unsigned char)d[i])) {
                for (; i < dl && is_digit((unsigned char)d[i]); i++)
                    v = v < 100000000 ? v * 10 + (d[i] - '0') : v;
                f->max_age = v;
            }
        }
        if (q < end && (*q == '\r' || *q == '\n'))
            break;
    }
    return len;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        log_error("oauth: libcurl failed to initialise");
}

/* GETs a metadata document: https only with the certificate verified (cimd_cacert, when set,
 * as the CA bundle), no redirects, no proxy, 3 s to connect, 5 s in all, at
 * most BODY_MAX bytes, never to a private address unless allowed. */
static int cimd_fetch(struct oauth_server *os, const char *url, json_t **doc /* OUT */,
                      int64_t *ttl /* OUT */, char *w, size_t wl)
{
    struct fetch f = {.allow_private = os->cfg.cimd_allow_private, .max_age = -1};
    struct curl_slist *hdrs = NULL;
    CURL *h = NULL;
    long status = 0;
    json_error_t jerr;
    int r = ERR_INVALID;

    *doc = NULL;
    buf_init(&f.body, BODY_MAX);
    pthread_once(&curl_once, curl_init_once);
    if ((h = curl_easy_init()) == NULL) {
        reason_set(w, wl, "client metadata document: cannot start a fetch");
        r = ERR_INTERNAL;
        goto out;
    }
    hdrs = curl_slist_append(NULL, "Accept: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* no proxy from the environment: SSRF checks */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)BODY_MAX);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "mcpgate/" MCPGATE_VERSION);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (os->cfg.cimd_cacert != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, os->cfg.cimd_cacert);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &f);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &f);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &f);

    CURLcode res = curl_easy_perform(h);
    if (f.refused) {
        reason_set(w, wl,
            "client metadata document: its host resolves to a private or loopback "
            "address");
        goto out;
    }
    if (f.toobig || res == CURLE_FILESIZE_EXCEEDED) {
        reason_set(w, wl, "client metadata document: larger than %d bytes", BODY_MAX);
        goto out;
    }
    if (res != CURLE_OK) {
        reason_set(w, wl, "client metadata document: fetch failed (%s)", curl_easy_strerror(res));
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 300 && status < 400) {
        reason_set(w, wl, "client metadata document: HTTP %ld (redirects are not followed)",
                   status);
        goto out;
    }
    if (status != 200) {
        reason_set(w, wl, "client metadata document: HTTP %ld", status);
        goto out;
    }
    *doc = json_loadb(f.body.data ? f.body.data : "", f.body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(*doc)) {
        json_decref(*doc);
        *doc = NULL;
        reason_set(w, wl, "client metadata document: not a JSON object");
        goto out;
    }
    long t = f.no_store ? CIMD_TTL_MIN : f.max_age >= 0 ? f.max_age : CIMD_TTL_DEFAULT;
    *ttl = t < CIMD_TTL_MIN ? CIMD_TTL_MIN : t > CIMD_TTL_MAX ? CIMD_TTL_MAX : t;
    r = 0;
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    buf_free(&f.body);
    return r;
}

#else /* !MCPGATE_HAVE_CURL */

static int cimd_fetch(struct oauth_server *os, const char *url, json_t **doc, int64_t *ttl, char *w,
                      size_t wl)
{
    *doc = NULL;
    reason_set(w, wl, "client metadata documents are not supported by this build (no libcurl)");
    return ERR_INVALID;
}

#endif

/* Fetching a document takes an HTTP thread for up to the timeout, and anyone can name a URL:
 * failures are remembered for a while, and only a few fetches run at once. */
#define CIMD_FAIL_SLOTS 256
#define CIMD_FAIL_TTL 30
#define CIMD_CONCURRENT 2

struct cimd_fail {
    unsigned char url_hash[CRYPTO_SHA256_LEN];
    int64_t until;
    char reason[160];
};

static pthread_mutex_t cimd_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cimd_fail cimd_fails[CIMD_FAIL_SLOTS];
static unsigned cimd_running;

static struct cimd_fail *cimd_fail_slot(const unsigned char h[CRYPTO_SHA256_LEN])
{
    size_t i;
    memcpy(&i, h, sizeof(i));
    return &cimd_fails[i % CIMD_FAIL_SLOTS];
}

/* true (with the reason) when url failed recently; else takes a fetch slot if one is free. */
static bool cimd_refused(const char *url, int64_t now, unsigned char h[CRYPTO_SHA256_LEN],
                         char *w, size_t wl)
{
    crypto_sha256(url, strlen(url), h);
    bool refused = false;
    pthread_mutex_lock(&cimd_mu);
    struct cimd_fail *f = cimd_fail_slot(h);
    if (f->until > now && crypto_equal(f->url_hash, h, CRYPTO_SHA256_LEN)) {
        reason_set(w, wl, "%s (failed %lld s ago; not retried for %d s)", f->reason,
            (long long)(CIMD_FAIL_TTL - (f->until - now)), CIMD_FAIL_TTL);
        refused = true;
    } else if (cimd_running >= CIMD_CONCURRENT) {
        reason_set(w, wl,
                   "too many client metadata documents are being fetched; try again shortly");
        refused = true;
    } else {
        cimd_running++;
    }
    pthread_mutex_unlock(&cimd_mu);
    return refused;
}

static void cimd_done(const unsigned char h[CRYPTO_SHA256_LEN], int64_t now, const char *failure)
{
    pthread_mutex_lock(&cimd_mu);
    cimd_running--;
    if (failure != NULL) {
        struct cimd_fail *f = cimd_fail_slot(h);
        memcpy(f->url_hash, h, CRYPTO_SHA256_LEN);
        f->until = now + CIMD_FAIL_TTL;
        snprintf(f->reason, sizeof(f->reason), "%s", failure);
    }
    pthread_mutex_unlock(&cimd_mu);
}

static int cimd_lookup(struct oauth_server *os, const char *url, struct store_client *out, char *w,
                       size_t wl)
{
    const char *err;
    json_t *doc = NULL;
    int64_t ttl = CIMD_TTL_DEFAULT, now = oauth_now();
    char sub[300];
    int r;

    if (!cimd_url_valid(url, &err)) {
        reason_set(w, wl, "client_id: not a valid client metadata document URL (%s)", err);
        log_debug("oauth: client_id is not a valid CIMD URL: %s", err);
        return ERR_INVALID;
    }
    r = store_client_get(os->st, url, out);
    if (r == 0 && (out->kind != CLIENT_CIMD || out->expires_at > now)) {
        log_debug("oauth: client %s from the store (%s)", url,
                  out->kind == CLIENT_CIMD ? "cached metadata document" : "registered");
        return 0;
    }
    store_client_clear(out);
    memset(out, 0, sizeof(*out));
    unsigned char h[CRYPTO_SHA256_LEN];
    if (cimd_refused(url, now, h, w, wl)) {
        log_debug("oauth: client %s: %s", url, w ? w : "refused");
        return ERR_INVALID;
    }
    if ((r = cimd_fetch(os, url, &doc, &ttl, w, wl)) != 0) {
        log_debug("oauth: client %s: %s", url, w ? w : "fetch failed");
        cimd_done(h, now, w && w[0] ? w : "the metadata document could not be fetched");
        return r;
    }
    bool bad_redirect;
    if (metadata_check(doc, url, sub, sizeof(sub), &bad_redirect) != 0) {
        reason_set(w, wl, "client metadata document: %s", sub);
        log_debug("oauth: client %s: invalid metadata document: %s", url, sub);
        json_decref(doc);
        cimd_done(h, now, w && w[0] ? w : "invalid metadata document");
        return ERR_INVALID;
    }
    cimd_done(h, now, NULL);
    out->client_id = xstrdup(url);
    out->kind = CLIENT_CIMD;
    out->metadata = doc;
    out->created_at = now;
    out->expires_at = now + ttl;
    if (store_client_put(os->st, out) != 0)
        log_warn("oauth: could not cache the metadata document of %s", url);
    log_debug("oauth: client %s: metadata document fetched, cached for %lld s", url,
              (long long)ttl);
    return 0;
}

int oauth_client_lookup(struct oauth_server *os, const char *client_id, struct store_client *out,
                        char *whybuf, size_t whylen)
{
    int r;
    memset(out, 0, sizeof(*out));
    if (client_id == NULL || client_id[0] == '\0') {
        reason_set(whybuf, whylen, "client_id is missing");
        return ERR_INVALID;
    }
    if (strlen(client_id) > URI_MAX) {
        reason_set(whybuf, whylen, "unknown client_id");
        return ERR_NOTFOUND;
    }
    if (os->cfg.cimd && strncmp(client_id, "https://", 8) == 0)
        return cimd_lookup(os, client_id, out, whybuf, whylen);
    r = store_client_get(os->st, client_id, out);
    if (r == 0 && out->kind == CLIENT_CIMD) {
        /* A cached document while CIMD is off: not a client any more. */
        store_client_clear(out);
        memset(out, 0, sizeof(*out));
        r = ERR_NOTFOUND;
    }
    if (r == ERR_NOTFOUND) {
        reason_set(whybuf, whylen, "unknown client_id");
        log_debug("oauth: unknown client_id");
    } else if (r != 0) {
        reason_set(whybuf, whylen, "the client registry is unavailable");
    }
    return r;
}

/* ---- registration (RFC 7591) and management (RFC 7592) ---- */

/* Members the server assigns: never taken from a request. */
static void strip_assigned(json_t *meta)
{
    static const char *const names[] = {"client_id",
                                        "client_secret",
                                        "client_id_issued_at",
                                        "client_secret_expires_at",
                                        "registration_access_token",
                                        "registration_client_uri"};
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
        json_object_del(meta, names[i]);
}

static bool is_json_type(const char *ct)
{
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0)
        return false;
    return ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ';
}

/* The request body as a JSON object, or NULL with resp filled. */
static json_t *json_body(const struct oauth_request *req, struct oauth_response *resp)
{
    json_error_t jerr;
    json_t *o;
    if (!is_json_type(req->content_type)) {
        oresp_error(resp, 400, "invalid_client_metadata", "Content-Type must be application/json");
        return NULL;
    }
    if (req->body == NULL || req->body_len == 0) {
        oresp_error(resp, 400, "invalid_client_metadata", "the request body is empty");
        return NULL;
    }
    if (req->body_len > BODY_MAX) {
        oresp_error(resp, 413, "invalid_client_metadata",
                    "the request body is larger than %d bytes", BODY_MAX);
        return NULL;
    }
    o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(o)) {
        oresp_error(resp, 400, "invalid_client_metadata", "the request body is not a JSON object");
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *registration_doc(const struct oauth_server *os, const struct store_client *c,
                                const char *secret, const char *reg_token)
{
    json_t *o = json_deep_copy(c->metadata);
    char *uri = xasprintf("%s/register/%s", os->issuer, c->client_id);
    json_object_set_new(o, "client_id", json_string(c->client_id));
    json_object_set_new(o, "client_id_issued_at", json_integer(c->created_at));
    if (secret != NULL) {
        json_object_set_new(o, "client_secret", json_string(secret));
        json_object_set_new(o, "client_secret_expires_at", json_integer(0));
    }
    if (reg_token != NULL)
        json_object_set_new(o, "registration_access_token", json_string(reg_token));
    json_object_set_new(o, "registration_client_uri", json_string(uri));
    free(uri);
    return o;
}

static void answer(struct oauth_response *resp, unsigned status, json_t *doc)
{
    oresp_json(resp, status, doc);
    oresp_header(resp, "Cache-Control", "no-store");
    oresp_header(resp, "Pragma", "no-cache");
}

static void free_secret(char *s)
{
    if (s != NULL) {
        crypto_wipe(s, strlen(s));
        free(s);
    }
}

static void register_new(struct oauth_server *os, const struct oauth_request *req,
                         struct oauth_response *resp)
{
    struct store_client c = {0};
    char *secret = NULL, *reg_token = NULL, w[300];
    bool bad_redirect;
    json_t *meta;

    if ((meta = json_body(req, resp)) == NULL)
        return;
    strip_assigned(meta);
    if (metadata_check(meta, NULL, w, sizeof(w), &bad_redirect) != 0) {
        oresp_error(resp, 400, bad_redirect ? "invalid_redirect_uri" : "invalid_client_metadata",
                    "%s", w);
        goto out;
    }
    if (array_has(json_object_get(meta, "grant_types"), "client_credentials")) {
        /* A self-registered client acting for nobody would let anyone reach the tools
         * without a user signing in: client_credentials is for clients an administrator
         * registered (mcpgate client add). */
        oresp_error(resp, 400, "invalid_client_metadata",
                    "grant_types: client_credentials is only for clients registered by an "
                    "administrator");
        goto out;
    }
    const char *method = json_string_value(json_object_get(meta, "token_endpoint_auth_method"));
    c.client_id = crypto_random_token(16);
    c.kind = CLIENT_DCR;
    c.metadata = meta;
    c.created_at = oauth_now();
    /* A public client must not get a secret (Claude breaks when it does). */
    if (strcmp(method, "none") != 0) {
        secret = crypto_random_token(32);
        crypto_sha256(secret, strlen(secret), c.secret_hash);
        c.has_secret = true;
    }
    reg_token = crypto_random_token(32);
    crypto_sha256(reg_token, strlen(reg_token), c.reg_token_hash);
    c.has_reg_token = true;
    if (store_client_put(os->st, &c) != 0) {
        oresp_error(resp, 500, "server_error", "the registration could not be stored");
        goto out;
    }
    oauth_audit(os, "client_registered", NULL, c.client_id, req->client_ip,
                json_pack("{s:O?, s:O?, s:s}", "client_name", json_object_get(meta, "client_name"),
                          "redirect_uris", json_object_get(meta, "redirect_uris"),
                          "token_endpoint_auth_method", method));
    log_info("oauth: registered client %s (%s)", c.client_id, method);
    answer(resp, 201, registration_doc(os, &c, secret, reg_token));
out:
    free_secret(secret);
    free_secret(reg_token);
    free(c.client_id);
    crypto_wipe(c.secret_hash, sizeof(c.secret_hash));
    crypto_wipe(c.reg_token_hash, sizeof(c.reg_token_hash));
    json_decref(meta);
}

/* "Bearer <token>" (scheme case-insensitive), or NULL. */
static const char *bearer_token(const char *authz)
{
    if (authz == NULL || strncasecmp(authz, "Bearer ", 7) != 0)
        return NULL;
    const char *t = authz + 7;
    while (*t == ' ')
        t++;
    return *t != '\0' && strchr(t, ' ') == NULL ? t : NULL;
}

static void update(struct oauth_server *os, const struct oauth_request *req, struct store_client *c,
                   struct oauth_response *resp)
{
    char *secret = NULL, w[300];
    bool bad_redirect;
    json_t *meta, *v;

    if ((meta = json_body(req, resp)) == NULL)
        return;
    /* RFC 7592 section 2.2: client_id must match; client_secret, if sent, too. */
    v = json_object_get(meta, "client_id");
    if (!json_is_string(v) || strcmp(json_string_value(v), c->client_id) != 0) {
        oresp_error(resp, 400, "invalid_client_metadata",
                    "client_id: must be present and match the registration");
        goto out;
    }
    if ((v = json_object_get(meta, "client_secret")) != NULL) {
        unsigned char h[STORE_HASH_LEN];
        const char *s = json_string_value(v);
        bool ok = false;
        if (s != NULL) {
            crypto_sha256(s, json_string_length(v), h);
            ok = c->has_secret && crypto_equal(h, c->secret_hash, sizeof(h));
        }
        if (!ok) {
            oresp_error(resp, 400, "invalid_client_metadata",
                        "client_secret: does not match the registration");
            goto out;
        }
    }
    strip_assigned(meta);
    if (metadata_check(meta, NULL, w, sizeof(w), &bad_redirect) != 0) {
        oresp_error(resp, 400, bad_redirect ? "invalid_redirect_uri" : "invalid_client_metadata",
                    "%s", w);
        goto out;
    }
    if (array_has(json_object_get(meta, "grant_types"), "client_credentials")) {
        /* A self-registered client acting for nobody would let anyone reach the tools
         * without a user signing in: client_credentials is for clients an administrator
         * registered (mcpgate client add). */
        oresp_error(resp, 400, "invalid_client_metadata",
                    "grant_types: client_credentials is only for clients registered by an "
                    "administrator");
        goto out;
    }
    const char *method = json_string_value(json_object_get(meta, "token_endpoint_auth_method"));
    if (strcmp(method, "none") == 0) {
        c->has_secret = false;
        crypto_wipe(c->secret_hash, sizeof(c->secret_hash));
    } else if (!c->has_secret) {
        /* Public to confidential: the client needs a secret now. */
        secret = crypto_random_token(32);
        crypto_sha256(secret, strlen(secret), c->secret_hash);
        c->has_secret = true;
    }
    json_decref(c->metadata);
    c->metadata = meta;
    meta = NULL;
    if (store_client_put(os->st, c) != 0) {
        oresp_error(resp, 500, "server_error", "the registration could not be stored");
        goto out;
    }
    oauth_audit(os, "client_updated", NULL, c->client_id, req->client_ip,
                json_pack("{s:s}", "token_endpoint_auth_method", method));
    log_info("oauth: client %s updated its registration", c->client_id);
    answer(resp, 200, registration_doc(os, c, secret, NULL));
out:
    free_secret(secret);
    json_decref(meta);
}

static void manage(struct oauth_server *os, const struct oauth_request *req, const char *id,
                   struct oauth_response *resp)
{
    struct store_client c = {0};
    unsigned char h[STORE_HASH_LEN];
    const char *tok = bearer_token(req->authorization);
    bool get = strcmp(req->method, "GET") == 0, put = strcmp(req->method, "PUT") == 0,
         del = strcmp(req->method, "DELETE") == 0, ok = false;
    int r;

    if (!get && !put && !del) {
        oresp_error(resp, 405, "invalid_request", "%s is not allowed here", req->method);
        oresp_header(resp, "Allow", "GET, PUT, DELETE");
        return;
    }
    r = store_client_get(os->st, id, &c);
    if (r != 0 && r != ERR_NOTFOUND) {
        oresp_error(resp, 500, "server_error", "the client registry is unavailable");
        return;
    }
    if (tok != NULL) {
        /* Hash and compare even for an unknown client: the answer takes the same time. */
        crypto_sha256(tok, strlen(tok), h);
        ok = crypto_equal(h, c.reg_token_hash, sizeof(h)) && r == 0 && c.kind == CLIENT_DCR &&
             c.has_reg_token;
        crypto_wipe(h, sizeof(h));
    }
    if (!ok) {
        log_debug("oauth: registration management refused: %s",
                  tok ? "wrong token or unknown client" : "no bearer token");
        oresp_error(resp, 401, "invalid_token",
                    "the registration access token is missing or invalid");
        oresp_header(resp, "WWW-Authenticate", tok ? "Bearer error=\"invalid_token\"" : "Bearer");
        goto out;
    }
    if (get) {
        answer(resp, 200, registration_doc(os, &c, NULL, NULL));
    } else if (put) {
        update(os, req, &c, resp);
    } else if (store_client_remove(os->st, id) != 0) {
        oresp_error(resp, 500, "server_error", "the registration could not be removed");
    } else {
        oauth_audit(os, "client_deleted", NULL, id, req->client_ip, NULL);
        log_info("oauth: client %s deleted its registration", id);
        resp->status = 204;
        resp->content_type = NULL;
        resp->body = NULL;
        resp->body_len = 0;
        oresp_header(resp, "Cache-Control", "no-store");
    }
out:
    store_client_clear(&c);
}

void oauth_register(struct oauth_server *os, const struct oauth_request *req,
                    struct oauth_response *resp)
{
    unsigned retry = 0;
    char ra[16];

    if (!os->cfg.dcr) {
        oresp_error(resp, 403, "access_denied", "registration is disabled");
        return;
    }
    if (!oauth_ratelimit(os, "register", req->client_ip, &retry)) {
        oresp_error(resp, 429, "invalid_request", "too many registration requests; retry in %u s",
                    retry);
        snprintf(ra, sizeof(ra), "%u", retry);
        oresp_header(resp, "Retry-After", ra);
        return;
    }
    if (strcmp(req->path, "/register") == 0) {
        if (strcmp(req->method, "POST") != 0) {
            oresp_error(resp, 405, "invalid_request", "use POST to register a client");
            oresp_header(resp, "Allow", "POST");
            return;
        }
        register_new(os, req, resp);
        return;
    }
    const char *id = req->path + strlen("/register/");
    if (strncmp(req->path, "/register/", 10) != 0 || *id == '\0' || strchr(id, '/') != NULL) {
        oresp_error(resp, 404, "invalid_request", "no such registration");
        return;
    }
    manage(os, req, id, resp);
}
