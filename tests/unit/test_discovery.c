/* client/discovery: WWW-Authenticate parsing, metadata URL order, document checks, canonical
 * resource and scope selection (MCP 2025-11-25 authorization, RFC 9110 11, RFC 9728, RFC 8414,
 * RFC 8707). */
/* cmocka.h needs these first. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/discovery.h"

#define RM "https://a/.well-known/oauth-protected-resource"

/* ---- WWW-Authenticate ---- */

struct wa_case {
    const char *in;
    const char *scheme, *resource_metadata, *scope, *error, *error_description;
};

static const struct wa_case wa_ok[] = {
    {"Bearer", "Bearer", NULL, NULL, NULL, NULL},
    {"Bearer   ", "Bearer", NULL, NULL, NULL, NULL},
    {"  Bearer", "Bearer", NULL, NULL, NULL, NULL},
    {"bearer", "bearer", NULL, NULL, NULL, NULL},
    {"BEARER scope=x", "BEARER", NULL, "x", NULL, NULL},
    {"Bearer resource_metadata=\"" RM "\"", "Bearer", RM, NULL, NULL, NULL},
    {"Bearer resource_metadata=\"" RM "\", scope=\"mcp files:read\"", "Bearer", RM,
     "mcp files:read", NULL, NULL},
    /* the example from the brief: Bearer last, after a Basic challenge with parameters */
    {"Basic realm=\"x\", Bearer resource_metadata=\"" RM "\", scope=\"mcp files:read\"", "Bearer",
     RM, "mcp files:read", NULL, NULL},
    /* Bearer first, another challenge after it */
    {"Bearer scope=\"a b\", error=\"invalid_token\", Basic realm=\"x\", charset=\"UTF-8\"",
     "Bearer", NULL, "a b", "invalid_token", NULL},
    {"Bearer scope=a, Basic", "Bearer", NULL, "a", NULL, NULL},
    {"Basic, Bearer", "Bearer", NULL, NULL, NULL, NULL},
    {"Basic,Bearer scope=s", "Bearer", NULL, "s", NULL, NULL},
    {"Negotiate, Basic realm=x, Bearer error=invalid_token", "Bearer", NULL, NULL, "invalid_token",
     NULL},
    /* token68 forms, for Bearer and for the others */
    {"Bearer abc", "Bearer", NULL, NULL, NULL, NULL},
    {"Bearer mF_9.B5f-4.1JqM", "Bearer", NULL, NULL, NULL, NULL},
    {"Bearer abc==", "Bearer", NULL, NULL, NULL, NULL},
    {"Bearer a+b/c~d=", "Bearer", NULL, NULL, NULL, NULL},
    {"Bearer scope=", "Bearer", NULL, NULL, NULL, NULL},  /* a token68, not an empty scope */
    {"Bearer scope= x", "Bearer", NULL, "x", NULL, NULL}, /* BWS: a parameter, not a token68 */
    {"Basic dXNlcjpwYXNz, Bearer scope=x", "Bearer", NULL, "x", NULL, NULL},
    {"Basic dXNlcjpwYXNz==  , Bearer", "Bearer", NULL, NULL, NULL, NULL},
    {"Newauth abc=, Bearer scope=y", "Bearer", NULL, "y", NULL, NULL},
    /* quoted-string escapes */
    {"Bearer error_description=\"say \\\"hi\\\"\"", "Bearer", NULL, NULL, NULL, "say \"hi\""},
    {"Bearer error_description=\"back\\\\slash\"", "Bearer", NULL, NULL, NULL, "back\\slash"},
    {"Bearer error_description=\"\\a\\b\\,\"", "Bearer", NULL, NULL, NULL, "ab,"},
    {"Bearer error_description=\"a, b=c, Basic\"", "Bearer", NULL, NULL, NULL, "a, b=c, Basic"},
    {"Bearer error_description=\"\"", "Bearer", NULL, NULL, NULL, ""},
    {"Bearer error_description=\"tab\there\"", "Bearer", NULL, NULL, NULL, "tab\there"},
    {"Bearer error_description=\"caf\xc3\xa9\"", "Bearer", NULL, NULL, NULL, "caf\xc3\xa9"},
    /* insufficient_scope for step-up */
    {"Bearer error=\"insufficient_scope\", scope=\"files:write\", resource_metadata=\"" RM
     "\", error_description=\"need write\"",
     "Bearer", RM, "files:write", "insufficient_scope", "need write"},
    /* parameter names are case-insensitive; unknown ones are ignored */
    {"Bearer Scope=a, RESOURCE_METADATA=\"" RM "\", Error=x", "Bearer", RM, "a", "x", NULL},
    {"Bearer realm=\"mcp\", foo=bar, scope=a", "Bearer", NULL, "a", NULL, NULL},
    {"Bearer foo=\"x\", foo=\"y\", scope=a", "Bearer", NULL, "a", NULL, NULL},
    /* extra spaces, BWS around '=', empty list elements */
    {"Bearer   scope = \"a\" ,   error =x", "Bearer", NULL, "a", "x", NULL},
    {"Bearer scope=a,, ,error=b,", "Bearer", NULL, "a", "b", NULL},
    {" , ,Bearer scope=a", "Bearer", NULL, "a", NULL, NULL},
    {"Bearer\t, Basic", "Bearer", NULL, NULL, NULL, NULL},
    /* the first Bearer challenge is used */
    {"Bearer scope=first, Bearer scope=second", "Bearer", NULL, "first", NULL, NULL},
};

static void test_wwwauth_ok(void **state)
{
    for (size_t i = 0; i < sizeof wa_ok / sizeof wa_ok[0]; i++) {
        const struct wa_case *c = &wa_ok[i];
        struct www_auth w;
        int r = www_auth_parse(c->in, &w);
        if (r != 0)
            fail_msg("case %zu [%s]: %d", i, c->in, r);
        const char *got[] = {w.scheme, w.resource_metadata, w.scope, w.error, w.error_description};
        const char *want[] = {c->scheme, c->resource_metadata, c->scope, c->error,
                              c->error_description};
        for (size_t k = 0; k < 5; k++) {
            if ((got[k] == NULL) != (want[k] == NULL) ||
                (got[k] != NULL && strcmp(got[k], want[k]) != 0))
                fail_msg("case %zu [%s] field %zu: got [%s], want [%s]", i, c->in, k,
                         got[k] ? got[k] : "(null)", want[k] ? want[k] : "(null)");
        }
        www_auth_clear(&w);
        assert_null(w.scheme);
        assert_null(w.scope);
    }
}

static const char *const wa_bad[] = {
    "",
    "   ",
    ",,",
    "Basic realm=\"x\"",               /* no Bearer */
    "Basic Bearer",                    /* "Bearer" is Basic's token68 */
    "Bearerx",                         /* not the Bearer scheme */
    "Bear",                            /* not the Bearer scheme */
    "Bearer scope=\"unterminated",     /* unterminated quoted-string */
    "Bearer scope=\"ends in escape\\", /* escape at the end */
    "Bearer scope=\"a\"b",             /* garbage after a quoted-string */
    "Bearer scope=a b",                /* garbage after a token */
    "Bearer scope=,error=x",           /* empty value */
    "Bearer =x",                       /* empty name */
    "Bearer scope==x",                 /* '=' is not a tchar */
    "Bearer a b",                      /* two token68s */
    "Bearer abc== def",                /* token68 then junk */
    "Bearer scope=\"x\" Basic",        /* a missing comma */
    "Bearer=x",                        /* no space after the scheme */
    "Bearer\"x\"",                     /* no space after the scheme */
    "\"Bearer\"",                      /* quoted scheme */
    "Bearer scope=\"a\x01\"",          /* control character */
    "Bearer scope=\"a\\\x01\"",        /* escaped control character */
    "Bearer scope=\"a\x7f\"",          /* DEL */
    "Bearer scope=a\x01",              /* control character in a token */
    "Bearer scope=a, scope=b",         /* repeated parameter */
    "Bearer scope=a, SCOPE=b",         /* repeated parameter, any case */
    "Bearer resource_metadata=\"" RM "\", resource_metadata=\"https://evil/\"",
    "Bearer scope=a, =",
    "Bearer scope=a, Basic realm=\"x",   /* a later challenge is malformed */
    "Bearer scope=a,Basic realm=x junk", /* a later challenge is malformed */
    "@Bearer",
    "Bearer; scope=a",
    "Bearer scope=a;error=b",
};

static void test_wwwauth_bad(void **state)
{
    for (size_t i = 0; i < sizeof wa_bad / sizeof wa_bad[0]; i++) {
        struct www_auth w = {.scheme = (char *)1};
        int r = www_auth_parse(wa_bad[i], &w);
        if (r != ERR_PARSE)
            fail_msg("case %zu [%s]: got %d, want ERR_PARSE", i, wa_bad[i], r);
        assert_null(w.scheme);
        assert_null(w.resource_metadata);
        assert_null(w.scope);
        assert_null(w.error);
        assert_null(w.error_description);
    }
    struct www_auth w;
    assert_int_equal(www_auth_parse(NULL, &w), ERR_PARSE);
    www_auth_clear(NULL);
}

static void test_wwwauth_caps(void **state)
{
    /* 16 KiB is accepted, one byte more is not; a long quoted-string is fine. */
    size_t max = 16384;
    char *s = malloc(max + 2);
    memcpy(s, "Bearer scope=\"", 14);
    memset(s + 14, 'x', max - 15);
    s[max - 1] = '"';
    s[max] = '\0';
    struct www_auth w;
    assert_int_equal(www_auth_parse(s, &w), 0);
    assert_int_equal(strlen(w.scope), max - 15);
    www_auth_clear(&w);
    memmove(s + 15, s + 14, max - 14 + 1);
    s[14] = 'x';
    assert_int_equal(strlen(s), max + 1);
    assert_int_equal(www_auth_parse(s, &w), ERR_PARSE);
    /* Many empty list elements and challenges take linear time and parse. */
    memset(s, ',', max);
    memcpy(s + max - 6, "Bearer", 6);
    s[max] = '\0';
    assert_int_equal(www_auth_parse(s, &w), 0);
    www_auth_clear(&w);
    free(s);
}

/* ---- metadata URLs ---- */

struct url_case {
    const char *in;
    const char *want; /* compact JSON array, or NULL */
};

#define PRM "/.well-known/oauth-protected-resource"
#define ASW "/.well-known/oauth-authorization-server"
#define OIDC "/.well-known/openid-configuration"

static const struct url_case prm_cases[] = {
    {"https://h/mcp", "[\"https://h" PRM "/mcp\",\"https://h" PRM "\"]"},
    {"https://h/mcp/", "[\"https://h" PRM "/mcp\",\"https://h" PRM "\"]"},
    {"https://h:8443/api/mcp/", "[\"https://h:8443" PRM "/api/mcp\",\"https://h:8443" PRM "\"]"},
    {"https://h", "[\"https://h" PRM "\"]"},
    {"https://h/", "[\"https://h" PRM "\"]"},
    {"https://h//", "[\"https://h" PRM "\"]"},
    {"https://h/?x=1", "[\"https://h" PRM "\"]"},
    {"https://h?x=1#f", "[\"https://h" PRM "\"]"},
    {"https://h/mcp?session=1&x=2", "[\"https://h" PRM "/mcp\",\"https://h" PRM "\"]"},
    {"https://h/mcp#frag", "[\"https://h" PRM "/mcp\",\"https://h" PRM "\"]"},
    {"https://h/mcp/?q#f", "[\"https://h" PRM "/mcp\",\"https://h" PRM "\"]"},
    {"HTTPS://Example.COM:443/MCP",
     "[\"https://example.com" PRM "/MCP\",\"https://example.com" PRM "\"]"},
    {"http://localhost:3000/mcp",
     "[\"http://localhost:3000" PRM "/mcp\",\"http://localhost:3000" PRM "\"]"},
    {"http://127.0.0.1:80/", "[\"http://127.0.0.1" PRM "\"]"},
    {"https://[::1]:8443/mcp", "[\"https://[::1]:8443" PRM "/mcp\",\"https://[::1]:8443" PRM "\"]"},
    {"https://[2001:DB8::1]/a/b",
     "[\"https://[2001:db8::1]" PRM "/a/b\",\"https://[2001:db8::1]" PRM "\"]"},
    {"https://[::ffff:192.0.2.1]", "[\"https://[::ffff:192.0.2.1]" PRM "\"]"},
    {"https://h:/mcp", "[\"https://h" PRM "/mcp\",\"https://h" PRM "\"]"},
    {"https://h:08443/mcp", "[\"https://h:8443" PRM "/mcp\",\"https://h:8443" PRM "\"]"},
    {"https://h/a%20b", "[\"https://h" PRM "/a%20b\",\"https://h" PRM "\"]"},
    {"ftp://h/mcp", NULL},
    {"h/mcp", NULL},
    {"/mcp", NULL},
    {"https://", NULL},
    {"https:///mcp", NULL},
    {"https://u:p@h/mcp", NULL},
    {"https://h:99999/mcp", NULL},
    {"https://h:0/mcp", NULL},
    {"https://h:123456/mcp", NULL},
    {"https://h:x/mcp", NULL},
    {"https://[::1/mcp", NULL},
    {"https://[fe80::1%25eth0]/", NULL},
    {"https://[]/", NULL},
    {"https://h h/", NULL},
    {"https://h/a b", NULL},
    {"https://h/\x01", NULL},
    {"https://h/\xc3\xa9", NULL},
    {"", NULL},
    {NULL, NULL},
};

static const struct url_case as_cases[] = {
    {"https://as.example", "[\"https://as.example" ASW "\",\"https://as.example" OIDC "\"]"},
    {"https://as.example/", "[\"https://as.example" ASW "\",\"https://as.example" OIDC "\"]"},
    {"https://as.example/tenant1",
     "[\"https://as.example" ASW "/tenant1\",\"https://as.example" OIDC
     "/tenant1\",\"https://as.example/tenant1" OIDC "\"]"},
    {"https://as.example/tenant1/",
     "[\"https://as.example" ASW "/tenant1\",\"https://as.example" OIDC
     "/tenant1\",\"https://as.example/tenant1" OIDC "\"]"},
    {"https://AS.example:8443/a/b",
     "[\"https://as.example:8443" ASW "/a/b\",\"https://as.example:8443" OIDC
     "/a/b\",\"https://as.example:8443/a/b" OIDC "\"]"},
    {"http://[::1]:9000", "[\"http://[::1]:9000" ASW "\",\"http://[::1]:9000" OIDC "\"]"},
    {"https://as.example?x=1#f", "[\"https://as.example" ASW "\",\"https://as.example" OIDC "\"]"},
    {"mailto:a@b", NULL},
    {"https://", NULL},
    {NULL, NULL},
};

static void check_urls(const struct url_case *cases, size_t n, json_t *(*fn)(const char *))
{
    for (size_t i = 0; i < n; i++) {
        json_t *arr = fn(cases[i].in);
        char *got = arr != NULL ? json_dumps(arr, JSON_COMPACT) : NULL;
        const char *want = cases[i].want;
        if ((got == NULL) != (want == NULL) || (got != NULL && strcmp(got, want) != 0))
            fail_msg("case %zu [%s]: got %s, want %s", i, cases[i].in ? cases[i].in : "(null)",
                     got ? got : "NULL", want ? want : "NULL");
        free(got);
        json_decref(arr);
    }
}

static void test_prm_urls(void **state)
{
    check_urls(prm_cases, sizeof prm_cases / sizeof prm_cases[0], discovery_prm_urls);
}

static void test_as_urls(void **state)
{
    check_urls(as_cases, sizeof as_cases / sizeof as_cases[0], discovery_as_urls);
}

static void test_canonical(void **state)
{
    static const char *const cases[][2] = {
        {"https://mcp.example.com/mcp", "https://mcp.example.com/mcp"},
        {"HTTPS://MCP.Example.Com/MCP", "https://mcp.example.com/MCP"},
        {"https://mcp.example.com:443/mcp", "https://mcp.example.com/mcp"},
        {"http://localhost:80/mcp", "http://localhost/mcp"},
        {"http://localhost:443/mcp", "http://localhost:443/mcp"},
        {"https://mcp.example.com:8443", "https://mcp.example.com:8443"},
        {"https://mcp.example.com/", "https://mcp.example.com/"},
        {"https://mcp.example.com/mcp/", "https://mcp.example.com/mcp/"},
        {"https://mcp.example.com/mcp#frag", "https://mcp.example.com/mcp"},
        {"https://mcp.example.com/mcp?tenant=a#f", "https://mcp.example.com/mcp?tenant=a"},
        {"https://mcp.example.com/mcp?", "https://mcp.example.com/mcp"},
        {"https://[::1]:8443/mcp", "https://[::1]:8443/mcp"},
        {"https://[ABCD::1]/mcp", "https://[abcd::1]/mcp"},
        {"file:///etc/passwd", NULL},
        {"mcp.example.com/mcp", NULL},
        {"https://a@b/", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = discovery_canonical_resource(cases[i][0]);
        const char *want = cases[i][1];
        if ((got == NULL) != (want == NULL) || (got != NULL && strcmp(got, want) != 0))
            fail_msg("case %zu [%s]: got %s, want %s", i, cases[i][0], got ? got : "NULL",
                     want ? want : "NULL");
        free(got);
    }
    assert_null(discovery_canonical_resource(NULL));
}

/* ---- document checks ---- */

struct doc_case {
    const char *doc;
    const char *against; /* server URL or issuer */
    int want;
    const char *why; /* a substring of the reason, when want != 0 */
};

#define AS_OK "\"authorization_servers\":[\"https://as.example\"]"

static const struct doc_case prm_docs[] = {
    {"{\"resource\":\"https://h/mcp\"," AS_OK "}", "https://h/mcp", 0, NULL},
    {"{\"resource\":\"https://h/mcp/\"," AS_OK "}", "https://h/mcp", 0, NULL},
    {"{\"resource\":\"https://h/mcp\"," AS_OK "}", "https://h/mcp/", 0, NULL},
    {"{\"resource\":\"https://H:443/mcp\"," AS_OK "}", "HTTPS://h/mcp", 0, NULL},
    {"{\"resource\":\"https://h\"," AS_OK "}", "https://h/", 0, NULL},
    {"{\"resource\":\"https://h/mcp\"," AS_OK "}", "https://h/mcp#x", 0, NULL},
    {"{\"resource\":\"https://h/mcp\",\"authorization_servers\":"
     "[\"https://a.example/t1\",\"http://127.0.0.1:9000\",\"http://[::1]\",\"http://localhost\"],"
     "\"scopes_supported\":[\"a\",\"b\"],\"bearer_methods_supported\":[\"header\"]}",
     "https://h/mcp", 0, NULL},
    {"[]", "https://h/mcp", ERR_INVALID, "must be a JSON object"},
    {"{" AS_OK "}", "https://h/mcp", ERR_INVALID, "resource: missing"},
    {"{\"resource\":1," AS_OK "}", "https://h/mcp", ERR_INVALID, "resource: must be a string"},
    {"{\"resource\":\"h/mcp\"," AS_OK "}", "https://h/mcp", ERR_INVALID,
     "resource: 'h/mcp' is not an absolute http(s) URL"},
    {"{\"resource\":\"https://evil/mcp\"," AS_OK "}", "https://h/mcp", ERR_INVALID,
     "resource: 'https://evil/mcp' does not match the server URL 'https://h/mcp'"},
    {"{\"resource\":\"https://h/other\"," AS_OK "}", "https://h/mcp", ERR_INVALID,
     "'https://h/other' does not match the server URL 'https://h/mcp'"},
    /* a path prefix at a segment boundary identifies the server (root metadata) */
    {"{\"resource\":\"https://h\"," AS_OK "}", "https://h/mcp", 0, NULL},
    {"{\"resource\":\"https://h/a\"," AS_OK "}", "https://h/a/mcp", 0, NULL},
    {"{\"resource\":\"https://h/mc\"," AS_OK "}", "https://h/mcp", ERR_INVALID, "does not match"},
    {"{\"resource\":\"https://h/mcp/x\"," AS_OK "}", "https://h/mcp", ERR_INVALID,
     "does not match"},
    {"{\"resource\":\"https://h:8443\"," AS_OK "}", "https://h/mcp", ERR_INVALID,
     "does not match"},
    {"{\"resource\":\"https://h?x=1\"," AS_OK "}", "https://h/mcp", ERR_INVALID,
     "does not match"},
    {"{\"resource\":\"http://h/mcp\"," AS_OK "}", "https://h/mcp", ERR_INVALID, "does not match"},
    {"{\"resource\":\"https://h:8443/mcp\"," AS_OK "}", "https://h/mcp", ERR_INVALID,
     "does not match"},
    {"{\"resource\":\"https://h/mcp//\"," AS_OK "}", "https://h/mcp", ERR_INVALID,
     "does not match"},
    {"{\"resource\":\"https://h/MCP\"," AS_OK "}", "https://h/mcp", ERR_INVALID, "does not match"},
    {"{\"resource\":\"https://h/mcp?a=1\"," AS_OK "}", "https://h/mcp", ERR_INVALID,
     "does not match"},
    {"{\"resource\":\"https://h/mcp#f\"," AS_OK "}", "https://h/mcp", ERR_INVALID,
     "resource: 'https://h/mcp#f' must not have a fragment"},
    {"{\"resource\":\"https://h/mcp\"}", "https://h/mcp", ERR_INVALID,
     "authorization_servers: missing"},
    {"{\"resource\":\"https://h/mcp\",\"authorization_servers\":[]}", "https://h/mcp", ERR_INVALID,
     "authorization_servers: must be a non-empty array"},
    {"{\"resource\":\"https://h/mcp\",\"authorization_servers\":\"https://as\"}", "https://h/mcp",
     ERR_INVALID, "authorization_servers: must be a non-empty array"},
    {"{\"resource\":\"https://h/mcp\",\"authorization_servers\":[\"https://as\",7]}",
     "https://h/mcp", ERR_INVALID, "authorization_servers[1]: must be a string"},
    {"{\"resource\":\"https://h/mcp\",\"authorization_servers\":[\"http://as.example\"]}",
     "https://h/mcp", ERR_INVALID,
     "authorization_servers[0]: 'http://as.example' must use https (http only for a loopback"},
    {"{\"resource\":\"https://h/mcp\",\"authorization_servers\":[\"http://127.0.0.2\"]}",
     "https://h/mcp", ERR_INVALID, "must use https"},
    {"{\"resource\":\"https://h/mcp\",\"authorization_servers\":[\"as.example\"]}", "https://h/mcp",
     ERR_INVALID, "authorization_servers[0]: 'as.example' is not an absolute http(s) URL"},
    {"{\"resource\":\"https://h/mcp\",\"authorization_servers\":[\"https://as?x=1\"]}",
     "https://h/mcp", ERR_INVALID,
     "authorization_servers[0]: 'https://as?x=1' must not have a query"},
    {"{\"resource\":\"https://h/mcp\",\"authorization_servers\":[\"https://as#f\"]}",
     "https://h/mcp", ERR_INVALID, "must not have a fragment"},
    {"{\"resource\":\"https://h/mcp\"," AS_OK ",\"scopes_supported\":\"a b\"}", "https://h/mcp",
     ERR_INVALID, "scopes_supported: must be an array of strings"},
    {"{\"resource\":\"https://h/mcp\"," AS_OK ",\"scopes_supported\":[\"a\",null]}",
     "https://h/mcp", ERR_INVALID, "scopes_supported: must be an array of strings"},
    {"{\"resource\":\"https://h/mcp\"," AS_OK "}", "h/mcp", ERR_INVALID,
     "server URL 'h/mcp' is not an absolute http(s) URL"},
};

#define ASM_TAIL                                                                                   \
    "\"authorization_endpoint\":\"https://as.example/authorize\","                                 \
    "\"token_endpoint\":\"https://as.example/token\","                                             \
    "\"response_types_supported\":[\"code\"],"                                                     \
    "\"code_challenge_methods_supported\":[\"plain\",\"S256\"]"

static const struct doc_case as_docs[] = {
    {"{\"issuer\":\"https://as.example\"," ASM_TAIL "}", "https://as.example", 0, NULL},
    {"{\"issuer\":\"https://as.example/t1\"," ASM_TAIL
     ",\"registration_endpoint\":\"https://as.example/register\"}",
     "https://as.example/t1", 0, NULL},
    {"{\"issuer\":\"http://127.0.0.1:9000\",\"authorization_endpoint\":\"http://127.0.0.1:9000/a\","
     "\"token_endpoint\":\"http://127.0.0.1:9000/t\",\"response_types_supported\":[\"code\"],"
     "\"code_challenge_methods_supported\":[\"S256\"]}",
     "http://127.0.0.1:9000", 0, NULL},
    {"{\"issuer\":\"https://as.example\",\"authorization_endpoint\":\"https://as.example/a?x=1\","
     "\"token_endpoint\":\"https://as.example/token\",\"response_types_supported\":[\"code\"],"
     "\"code_challenge_methods_supported\":[\"S256\"]}",
     "https://as.example", 0, NULL},
    {"null", "https://as.example", ERR_INVALID, "must be a JSON object"},
    {"{" ASM_TAIL "}", "https://as.example", ERR_INVALID, "issuer: missing"},
    {"{\"issuer\":[]," ASM_TAIL "}", "https://as.example", ERR_INVALID, "issuer: must be a string"},
    {"{\"issuer\":\"https://evil.example\"," ASM_TAIL "}", "https://as.example", ERR_INVALID,
     "issuer: 'https://evil.example' does not match the expected issuer 'https://as.example'"},
    /* a plain string comparison: no normalization */
    {"{\"issuer\":\"https://as.example/\"," ASM_TAIL "}", "https://as.example", ERR_INVALID,
     "does not match the expected issuer"},
    {"{\"issuer\":\"https://AS.example\"," ASM_TAIL "}", "https://as.example", ERR_INVALID,
     "does not match the expected issuer"},
    {"{\"issuer\":\"https://as.example\",\"token_endpoint\":\"https://as.example/token\","
     "\"response_types_supported\":[\"code\"],\"code_challenge_methods_supported\":[\"S256\"]}",
     "https://as.example", ERR_INVALID, "authorization_endpoint: missing"},
    {"{\"issuer\":\"https://as.example\",\"authorization_endpoint\":\"https://as.example/a\","
     "\"response_types_supported\":[\"code\"],\"code_challenge_methods_supported\":[\"S256\"]}",
     "https://as.example", ERR_INVALID, "token_endpoint: missing"},
    {"{\"issuer\":\"https://as.example\",\"authorization_endpoint\":\"http://as.example/a\","
     "\"token_endpoint\":\"https://as.example/token\",\"response_types_supported\":[\"code\"],"
     "\"code_challenge_methods_supported\":[\"S256\"]}",
     "https://as.example", ERR_INVALID,
     "authorization_endpoint: 'http://as.example/a' must use https"},
    {"{\"issuer\":\"https://as.example\",\"authorization_endpoint\":\"https://as.example/a\","
     "\"token_endpoint\":5,\"response_types_supported\":[\"code\"],"
     "\"code_challenge_methods_supported\":[\"S256\"]}",
     "https://as.example", ERR_INVALID, "token_endpoint: must be a string"},
    {"{\"issuer\":\"https://as.example\",\"authorization_endpoint\":\"https://as.example/a\","
     "\"token_endpoint\":\"/token\",\"response_types_supported\":[\"code\"],"
     "\"code_challenge_methods_supported\":[\"S256\"]}",
     "https://as.example", ERR_INVALID, "token_endpoint: '/token' is not an absolute http(s) URL"},
    {"{\"issuer\":\"https://as.example\"," ASM_TAIL ",\"registration_endpoint\":\"ftp://x\"}",
     "https://as.example", ERR_INVALID, "registration_endpoint: 'ftp://x' is not an absolute"},
    {"{\"issuer\":\"https://as.example\",\"authorization_endpoint\":\"https://as.example/a\","
     "\"token_endpoint\":\"https://as.example/t\",\"response_types_supported\":[\"code\"]}",
     "https://as.example", ERR_INVALID, "code_challenge_methods_supported: missing"},
    {"{\"issuer\":\"https://as.example\",\"authorization_endpoint\":\"https://as.example/a\","
     "\"token_endpoint\":\"https://as.example/t\",\"response_types_supported\":[\"code\"],"
     "\"code_challenge_methods_supported\":[\"plain\"]}",
     "https://as.example", ERR_INVALID, "code_challenge_methods_supported: does not contain S256"},
    {"{\"issuer\":\"https://as.example\",\"authorization_endpoint\":\"https://as.example/a\","
     "\"token_endpoint\":\"https://as.example/t\",\"response_types_supported\":[\"code\"],"
     "\"code_challenge_methods_supported\":\"S256\"}",
     "https://as.example", ERR_INVALID, "code_challenge_methods_supported: must be an array"},
    {"{\"issuer\":\"https://as.example\",\"authorization_endpoint\":\"https://as.example/a\","
     "\"token_endpoint\":\"https://as.example/t\",\"code_challenge_methods_supported\":[\"S256\"]}",
     "https://as.example", ERR_INVALID, "response_types_supported: missing"},
    {"{\"issuer\":\"https://as.example\",\"authorization_endpoint\":\"https://as.example/a\","
     "\"token_endpoint\":\"https://as.example/t\",\"response_types_supported\":[\"token\"],"
     "\"code_challenge_methods_supported\":[\"S256\"]}",
     "https://as.example", ERR_INVALID, "response_types_supported: does not contain code"},
    {"{\"issuer\":\"https://as.example\",\"authorization_endpoint\":\"https://as.example/a\","
     "\"token_endpoint\":\"https://as.example/t\",\"response_types_supported\":{},"
     "\"code_challenge_methods_supported\":[\"S256\"]}",
     "https://as.example", ERR_INVALID, "response_types_supported: must be an array"},
};

static void check_docs(const struct doc_case *cases, size_t n,
                       int (*fn)(json_t *, const char *, char *, size_t))
{
    for (size_t i = 0; i < n; i++) {
        json_error_t jerr;
        json_t *doc = json_loads(cases[i].doc, JSON_DECODE_ANY, &jerr);
        if (doc == NULL)
            fail_msg("case %zu: bad test JSON: %s", i, jerr.text);
        char why[256] = "x";
        int r = fn(doc, cases[i].against, why, sizeof why);
        if (r != cases[i].want)
            fail_msg("case %zu %s: got %d (%s), want %d", i, cases[i].doc, r, why, cases[i].want);
        if (r == 0 && why[0] != '\0')
            fail_msg("case %zu: reason \"%s\" on success", i, why);
        if (r != 0 && strstr(why, cases[i].why) == NULL)
            fail_msg("case %zu: reason \"%s\" lacks \"%s\"", i, why, cases[i].why);
        json_decref(doc);
    }
}

static void test_prm_check(void **state)
{
    check_docs(prm_docs, sizeof prm_docs / sizeof prm_docs[0], discovery_prm_check);
}

static void test_as_check(void **state)
{
    check_docs(as_docs, sizeof as_docs / sizeof as_docs[0], discovery_as_check);
}

/* Reasons quote untrusted text printable, without quote characters, cut short. */
static void test_reason_safe(void **state)
{
    char longurl[600] = "https://h/";
    memset(longurl + 10, 'a', 500);
    longurl[510] = '\0';
    json_t *doc =
        json_pack("{s:s, s:[s]}", "resource", longurl, "authorization_servers", "https://as");
    char why[512];
    assert_int_equal(discovery_prm_check(doc, "https://h/x", why, sizeof why), ERR_INVALID);
    assert_non_null(strstr(why, "aaa...'"));
    assert_true(strlen(why) < 300);
    json_decref(doc);
    doc = json_pack("{s:s}", "issuer", "x\"\\\n'\xc3\xa9");
    assert_int_equal(discovery_as_check(doc, "https://as", why, sizeof why), ERR_INVALID);
    for (const char *p = why; *p != '\0'; p++)
        assert_true(*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\');
    char tiny[8];
    assert_int_equal(discovery_as_check(doc, "https://as", tiny, sizeof tiny), ERR_INVALID);
    assert_true(strlen(tiny) < sizeof tiny);
    assert_int_equal(discovery_as_check(doc, "https://as", NULL, 0), ERR_INVALID);
    json_decref(doc);
}

static void test_legacy_fallback(void **state)
{
    json_t *m = discovery_legacy_fallback("HTTPS://Mcp.Example:443/v1/mcp?x#y");
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "issuer")), "https://mcp.example");
    assert_string_equal(json_string_value(json_object_get(m, "authorization_endpoint")),
                        "https://mcp.example/authorize");
    assert_string_equal(json_string_value(json_object_get(m, "token_endpoint")),
                        "https://mcp.example/token");
    assert_string_equal(json_string_value(json_object_get(m, "registration_endpoint")),
                        "https://mcp.example/register");
    char why[128];
    assert_int_equal(discovery_as_check(m, "https://mcp.example", why, sizeof why), 0);
    json_decref(m);
    m = discovery_legacy_fallback("http://127.0.0.1:8080/mcp");
    assert_string_equal(json_string_value(json_object_get(m, "token_endpoint")),
                        "http://127.0.0.1:8080/token");
    json_decref(m);
    assert_null(discovery_legacy_fallback("not a url"));
}

/* ---- scope ---- */

static void test_scope(void **state)
{
    static const struct {
        const char *challenge, *prm, *previous, *want;
    } cases[] = {
        {"mcp files:read", "{\"scopes_supported\":[\"x\"]}", NULL, "mcp files:read"},
        {"  mcp   files:read  mcp ", NULL, NULL, "mcp files:read"},
        {NULL, "{\"scopes_supported\":[\"a\",\"b\",\"a\"]}", NULL, "a b"},
        {"", "{\"scopes_supported\":[\"a\"]}", NULL, "a"},
        {"  ", "{\"scopes_supported\":[\"a\"]}", NULL, "a"},
        {NULL, "{\"scopes_supported\":[]}", NULL, NULL},
        {NULL, "{}", NULL, NULL},
        {NULL, NULL, NULL, NULL},
        {NULL, "{\"scopes_supported\":[\"a\",1,\"b\"]}", NULL, "a b"},
        /* step-up: the union, first-seen order */
        {"files:write", NULL, "mcp files:read", "mcp files:read files:write"},
        {"files:read files:write mcp", NULL, "mcp files:read", "mcp files:read files:write"},
        {"mcp", NULL, "mcp", "mcp"},
        {"b a", NULL, "a  a c", "a c b"},
        {NULL, "{\"scopes_supported\":[\"x\"]}", "mcp", "mcp x"},
        {NULL, NULL, "mcp", "mcp"},
        {"", NULL, "", NULL},
        /* a token is not a prefix match */
        {"files", NULL, "files:read", "files:read files"},
        {"files:read", NULL, "files", "files files:read"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *prm = cases[i].prm != NULL ? json_loads(cases[i].prm, 0, NULL) : NULL;
        char *got = discovery_scope(cases[i].challenge, prm, cases[i].previous);
        const char *want = cases[i].want;
        if ((got == NULL) != (want == NULL) || (got != NULL && strcmp(got, want) != 0))
            fail_msg("case %zu: got [%s], want [%s]", i, got ? got : "NULL", want ? want : "NULL");
        free(got);
        json_decref(prm);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wwwauth_ok),   cmocka_unit_test(test_wwwauth_bad),
        cmocka_unit_test(test_wwwauth_caps), cmocka_unit_test(test_prm_urls),
        cmocka_unit_test(test_as_urls),      cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_prm_check),    cmocka_unit_test(test_as_check),
        cmocka_unit_test(test_reason_safe),  cmocka_unit_test(test_legacy_fallback),
        cmocka_unit_test(test_scope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
