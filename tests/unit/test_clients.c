/* oauth/pkce.c and the pure parts of oauth/clients.c: the RFC 7636 Appendix B vector and the
 * spellings of a challenge accepted or refused, redirect URI matching (exact; any port for the
 * loopback IP literals only), and RFC 7591 metadata validation, including Claude's callbacks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "oauth/oauth_int.h"

#define RFC_VERIFIER "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
#define RFC_CHALLENGE "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

/* ---- PKCE ---- */

static void test_pkce_rfc7636(void **state)
{
    char canon[44];
    assert_int_equal(pkce_challenge_normalize(RFC_CHALLENGE, canon), 0);
    assert_string_equal(canon, RFC_CHALLENGE);
    assert_true(pkce_verify(RFC_VERIFIER, canon));
    /* the same digest in the standard alphabet, padded */
    assert_int_equal(
        pkce_challenge_normalize("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM=", canon), 0);
    assert_string_equal(canon, RFC_CHALLENGE);
    assert_true(pkce_verify(RFC_VERIFIER, canon));
    assert_false(pkce_verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl", canon));
    assert_false(pkce_verify(RFC_VERIFIER, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
    /* well-formed, but another digest */
    assert_int_equal(pkce_challenge_normalize("E9Melhoa2OwvFrEMTJguCQaoWL1bUWkhAMqCgM8dpkM", canon),
                     0);
    assert_false(pkce_verify(RFC_VERIFIER, canon));
    assert_false(pkce_verify(RFC_VERIFIER, ""));
    assert_false(pkce_verify(NULL, canon));
}

static void test_pkce_spellings(void **state)
{
    /* 32 bytes whose encoding uses both 62 and 63: 0xfb 0xff ... */
    unsigned char raw[32];
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (unsigned char)(0xfb + i * 7);
    char *url = b64url_encode(raw, sizeof(raw));
    assert_int_equal(strlen(url), 43);
    assert_true(strpbrk(url, "-_") != NULL);
    char stdb[45], stdnopad[44], urlpad[45];
    for (size_t i = 0; i < 43; i++)
        stdb[i] = url[i] == '-' ? '+' : url[i] == '_' ? '/' : url[i];
    memcpy(stdnopad, stdb, 43);
    stdnopad[43] = '\0';
    stdb[43] = '=';
    stdb[44] = '\0';
    snprintf(urlpad, sizeof(urlpad), "%s=", url);

    const char *ok[] = {url, urlpad, stdb, stdnopad, RFC_CHALLENGE "="};
    for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
        char canon[44];
        if (pkce_challenge_normalize(ok[i], canon) != 0)
            fail_msg("'%s' refused", ok[i]);
        assert_string_equal(canon, i == 4 ? RFC_CHALLENGE : url);
    }

    /* one character from each alphabet */
    char mixed[44];
    memcpy(mixed, url, 44);
    mixed[strpbrk(mixed, "-_") == mixed ? 1 : 0] = '+';
    const char *bad[] = {
        "",
        "E9Melhoa2OwvFrEMTJguCQaoWL1bUWkhAMqCgM8dpk",    /* 42 */
        "E9Melhoa2OwvFrEMTJguCQaoWL1bUWkhAMqCgM8dpkMA",  /* 44, no '=' */
        "E9Melhoa2OwvFrEMTJguCQaoWL1bUWkhAMqCgM8dpkM==", /* two '=' */
        "E9Melhoa2OwvFrEMTJguCQaoWL1bUWkhAMqCgM8dpkN",   /* stray low bits */
        "E9Melhoa2OwvFrEMTJguCQaoWL1bUWkhAMqCgM8dpk=",   /* '=' inside 43 */
        " E9Melhoa2OwvFrEMTJguCQaoWL1bUWkhAMqCgM8dpkM",
        "E9Melhoa2OwvFrEMTJguCQaoWL1bUWkhAMqCgM8dpkM ",
        "E9Melhoa2OwvFrEMTJguCQaoWL1bUWkhAMqCgM8dp\nM",
        "E9Melhoa2OwvFrEMTJguCQaoWL1bUWkhAMqCgM8dp.M",
        "E9Melhoa2OwvFrEMTJguCQaoWL1bUWkhAMqCgM8dp~M",
        "plain-verifier-is-not-a-challenge",
        mixed,
        RFC_VERIFIER "AAAA", /* 47 */
        "E9Melhoa2OwvFrEMTJguCQaoWL1bUWkhAMqCgM8dpkM=A",
        "RTlNZWxob2EyT3d2RnJFTVRKZ3VDUWFvV0wxYlVXa2hBTXFDZ004ZHBrTQ", /* base64 of base64 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        char canon[44];
        if (pkce_challenge_normalize(bad[i], canon) == 0)
            fail_msg("'%s' accepted", bad[i]);
    }
    /* mixed must really be mixed for the test to mean something */
    assert_true(strpbrk(mixed, "-_") != NULL && strchr(mixed, '+') != NULL);
    char canon[44];
    assert_int_equal(pkce_challenge_normalize(NULL, canon), ERR_INVALID);
    free(url);
}

static void test_pkce_verifier_charset(void **state)
{
    char v[200], canon[44];
    unsigned char d[32];
    for (size_t len = 40; len <= 131; len++) {
        for (size_t i = 0; i < len; i++)
            v[i] = "aZ09-._~"[i % 8];
        v[len] = '\0';
        crypto_sha256(v, len, d);
        char *c = b64url_encode(d, 32);
        assert_int_equal(pkce_challenge_normalize(c, canon), 0);
        bool expect = len >= 43 && len <= 128;
        if (pkce_verify(v, canon) != expect)
            fail_msg("verifier of length %zu: %s", len, expect ? "refused" : "accepted");
        free(c);
    }
    /* characters outside [A-Za-z0-9-._~], with a challenge that would match */
    const char *bad[] = {"dBjftJeZ4CVP+mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                         "dBjftJeZ4CVP mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                         "dBjftJeZ4CVP/mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                         "dBjftJeZ4CVP=mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
                         "dBjftJeZ4CVP\xc3\xa9mB92K27uhbUJU1p1r_wW1gFWFOEjX"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        crypto_sha256(bad[i], strlen(bad[i]), d);
        char *c = b64url_encode(d, 32);
        if (pkce_verify(bad[i], c))
            fail_msg("verifier '%s' accepted", bad[i]);
        free(c);
    }
}

/* ---- redirect URIs ---- */

static struct store_client client_with(const char *const uris[])
{
    struct store_client c = {0};
    c.client_id = strdup("c1");
    c.metadata = json_object();
    json_t *a = json_array();
    for (size_t i = 0; uris[i] != NULL; i++)
        json_array_append_new(a, json_string(uris[i]));
    json_object_set_new(c.metadata, "redirect_uris", a);
    return c;
}

static void test_redirect_matching(void **state)
{
    static const char *const reg[] = {"https://claude.ai/api/mcp/auth_callback",
                                      "https://claude.com/api/mcp/auth_callback",
                                      "http://127.0.0.1/callback",
                                      "http://[::1]:8080/cb?x=1",
                                      "http://localhost:3334/oauth/callback",
                                      "https://app.example/cb?a=b",
                                      NULL};
    static const struct {
        const char *uri;
        bool ok;
    } t[] = {
        {"https://claude.ai/api/mcp/auth_callback", true},
        {"https://claude.com/api/mcp/auth_callback", true},
        /* prefix, suffix and host confusion */
        {"https://claude.ai/api/mcp/auth_callback.evil.com", false},
        {"https://claude.ai.evil.com/api/mcp/auth_callback", false},
        {"https://claude.ai/api/mcp/auth_callback/", false},
        {"https://claude.ai/api/mcp/auth_callbac", false},
        {"https://claude.ai/api/mcp/auth_callback?x=1", false},
        {"https://claude.ai/api/mcp/auth_callback#frag", false},
        {"https://claude.ai/api/mcp/AUTH_CALLBACK", false},
        {"https://CLAUDE.AI/api/mcp/auth_callback", false},
        {"http://claude.ai/api/mcp/auth_callback", false},
        {"https://user@claude.ai/api/mcp/auth_callback", false},
        {"https://claude.ai@evil.com/api/mcp/auth_callback", false},
        {"https://claude.ai:443/api/mcp/auth_callback", false},
        {"https://claude.ai/api/mcp/../mcp/auth_callback", false},
        {"https://claude.ai/api/mcp/auth_callback%00", false},
        {"", false},
        /* loopback IPv4, registered without a port: any port */
        {"http://127.0.0.1/callback", true},
        {"http://127.0.0.1:1/callback", true},
        {"http://127.0.0.1:65535/callback", true},
        {"http://127.0.0.1:51234/callback", true},
        {"http://127.0.0.1:65536/callback", false},
        {"http://127.0.0.1:0/callback", false},
        {"http://127.0.0.1:080/callback", false},
        {"http://127.0.0.1:/callback", false},
        {"http://127.0.0.1:5x/callback", false},
        {"http://127.0.0.1:51234/callback/", false},
        {"http://127.0.0.1:51234/Callback", false},
        {"http://127.0.0.1:51234/callback?x", false},
        {"http://127.0.0.1:51234/callback#x", false},
        {"http://127.0.0.1:51234@evil.com/callback", false},
        {"http://127.0.0.1.evil.com/callback", false},
        {"http://127.0.0.2:51234/callback", false},
        {"https://127.0.0.1:51234/callback", false},
        {"http://[::1]:51234/callback", false},
        /* loopback IPv6 with a port and a query: any port, same query */
        {"http://[::1]:8080/cb?x=1", true},
        {"http://[::1]:9/cb?x=1", true},
        {"http://[::1]/cb?x=1", true},
        {"http://[::1]:9/cb?x=2", false},
        {"http://[::1]:9/cb", false},
        {"http://[::1]:9/cb?x=1&y", false},
        {"http://[0:0:0:0:0:0:0:1]:9/cb?x=1", false},
        {"http://127.0.0.1:9/cb?x=1", false},
        /* localhost: exact only */
        {"http://localhost:3334/oauth/callback", true},
        {"http://localhost:3335/oauth/callback", false},
        {"http://localhost/oauth/callback", false},
        {"http://127.0.0.1:3334/oauth/callback", false},
        /* queries are part of the match */
        {"https://app.example/cb?a=b", true},
        {"https://app.example/cb?a=c", false},
        {"https://app.example/cb", false},
        {"https://app.example/cb?a=b&c=d", false},
    };
    struct store_client c = client_with(reg);
    for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
        if (oauth_redirect_uri_allowed(&c, t[i].uri) != t[i].ok)
            fail_msg("'%s' should be %s", t[i].uri, t[i].ok ? "allowed" : "refused");
    }
    assert_false(oauth_redirect_uri_allowed(&c, NULL));
    json_decref(c.metadata);
    free(c.client_id);

    /* A registration with a port still matches any port; localhost registrations do not. */
    static const char *const reg2[] = {"http://127.0.0.1:33418/", NULL};
    c = client_with(reg2);
    assert_true(oauth_redirect_uri_allowed(&c, "http://127.0.0.1:33418/"));
    assert_true(oauth_redirect_uri_allowed(&c, "http://127.0.0.1:4000/"));
    assert_true(oauth_redirect_uri_allowed(&c, "http://127.0.0.1/"));
    assert_false(oauth_redirect_uri_allowed(&c, "http://127.0.0.1:4000"));
    assert_false(oauth_redirect_uri_allowed(&c, "http://127.0.0.1:4000//"));
    json_decref(c.metadata);
    free(c.client_id);

    /* No metadata, or no redirect_uris: nothing matches. */
    struct store_client empty = {0};
    assert_false(oauth_redirect_uri_allowed(&empty, "https://claude.ai/api/mcp/auth_callback"));
}

static void test_auth_method(void **state)
{
    struct store_client c = {0};
    assert_string_equal(oauth_client_auth_method(&c), "none");
    c.has_secret = true;
    assert_string_equal(oauth_client_auth_method(&c), "client_secret_basic");
    c.metadata = json_pack("{s:s}", "token_endpoint_auth_method", "client_secret_post");
    assert_string_equal(oauth_client_auth_method(&c), "client_secret_post");
    json_decref(c.metadata);
    c.metadata = json_pack("{s:s}", "token_endpoint_auth_method", "private_key_jwt");
    assert_string_equal(oauth_client_auth_method(&c), "client_secret_basic");
    json_decref(c.metadata);
}

/* ---- metadata ---- */

#define CIMD_URL "https://claude.ai/oauth/mcp-oauth-client-metadata"

static void test_metadata_table(void **state)
{
    static const struct {
        const char *json;
        const char *cimd; /* NULL: DCR */
        const char *why;  /* NULL: accepted; else a substring of the reason */
    } t[] = {
        /* Claude's DCR request (public client) and its callbacks */
        {"{\"client_name\":\"Claude\",\"redirect_uris\":[\"https://claude.ai/api/mcp/"
         "auth_callback\",\"https://claude.com/api/mcp/auth_callback\"],\"grant_types\":["
         "\"authorization_code\",\"refresh_token\"],\"response_types\":[\"code\"],"
         "\"token_endpoint_auth_method\":\"none\",\"scope\":\"claudeai\"}",
         NULL, NULL},
        /* Claude's metadata documents */
        {"{\"client_id\":\"" CIMD_URL "\",\"client_name\":\"Claude\",\"redirect_uris\":["
         "\"https://claude.ai/api/mcp/auth_callback\"],\"token_endpoint_auth_method\":\"none\","
         "\"grant_types\":[\"authorization_code\",\"refresh_token\"]}",
         CIMD_URL, NULL},
        {"{\"client_id\":\"https://claude.ai/oauth/claude-code-client-metadata\","
         "\"redirect_uris\":[\"http://localhost/callback\",\"http://127.0.0.1/callback\"]}",
         "https://claude.ai/oauth/claude-code-client-metadata", NULL},
        /* mcp-remote style: loopback http, confidential by default */
        {"{\"redirect_uris\":[\"http://localhost:3334/oauth/callback\"]}", NULL, NULL},
        {"{\"redirect_uris\":[\"http://[::1]:3334/cb\"],\"application_type\":\"native\"}", NULL,
         NULL},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"x-unknown\":{\"kept\":true},"
         "\"client_uri\":\"https://a.example\",\"logo_uri\":\"https://a.example/l.png\","
         "\"tos_uri\":\"https://a.example/tos\",\"policy_uri\":\"https://a.example/p\","
         "\"contacts\":[\"ops@a.example\"],\"software_id\":\"x\",\"software_version\":\"1\"}",
         NULL, NULL},
        /* mcpgate login --device-code: the device grant needs no redirect_uris */
        {"{\"client_name\":\"mcpgate\",\"redirect_uris\":[],\"grant_types\":["
         "\"urn:ietf:params:oauth:grant-type:device_code\",\"refresh_token\"],"
         "\"response_types\":[],\"token_endpoint_auth_method\":\"none\"}",
         NULL, NULL},
        {"{\"grant_types\":[\"urn:ietf:params:oauth:grant-type:device_code\"]}", NULL, NULL},
        {"{\"grant_types\":[\"urn:ietf:params:oauth:grant-type:device_code\"],"
         "\"response_types\":[\"code\"]}",
         NULL, "grant_types: response_types code needs authorization_code"},
        {"{\"grant_types\":[\"urn:ietf:params:oauth:grant-type:device_cod\"]}", NULL,
         "grant_types[0]: 'urn:ietf:params:oauth:grant-type:device_...' is not supported"},
        /* client_credentials only: no redirect_uris needed */
        {"{\"grant_types\":[\"client_credentials\"],\"token_endpoint_auth_method\":"
         "\"client_secret_post\"}",
         NULL, NULL},

        /* redirect_uris */
        {"{}", NULL, "redirect_uris: required"},
        {"{\"redirect_uris\":[]}", NULL, "redirect_uris: must not be empty"},
        {"{\"redirect_uris\":\"https://a.example/cb\"}", NULL, "redirect_uris: must be an array"},
        {"{\"redirect_uris\":[1]}", NULL, "redirect_uris[0]: must be a string"},
        {"{\"redirect_uris\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\","
         "\"l\",\"m\",\"n\",\"o\",\"p\",\"q\",\"r\",\"s\",\"t\",\"u\"]}",
         NULL, "at most 20"},
        {"{\"redirect_uris\":[\"https://a.example/cb\",\"http://a.example/cb\"]}", NULL,
         "redirect_uris[1]: http is only allowed for loopback hosts"},
        {"{\"redirect_uris\":[\"javascript:alert(1)\"]}", NULL, "redirect_uris[0]: the scheme"},
        {"{\"redirect_uris\":[\"data:text/html,hi\"]}", NULL, "redirect_uris[0]: the scheme"},
        {"{\"redirect_uris\":[\"file:///etc/passwd\"]}", NULL, "redirect_uris[0]: the scheme"},
        {"{\"redirect_uris\":[\"com.example.app:/cb\"]}", NULL, "redirect_uris[0]: the scheme"},
        {"{\"redirect_uris\":[\"/relative/cb\"]}", NULL, "not an absolute URI"},
        {"{\"redirect_uris\":[\"https:/a.example/cb\"]}", NULL, "not an absolute URI"},
        {"{\"redirect_uris\":[\"https://a.example/cb#x\"]}", NULL, "must not contain a fragment"},
        {"{\"redirect_uris\":[\"https://user@a.example/cb\"]}", NULL, "userinfo"},
        {"{\"redirect_uris\":[\"https://a.example:0/cb\"]}", NULL, "bad port"},
        {"{\"redirect_uris\":[\"https://a.example:99999/cb\"]}", NULL, "bad port"},
        {"{\"redirect_uris\":[\"https:///cb\"]}", NULL, "bad host"},
        {"{\"redirect_uris\":[\"https://a.example\\\\@b/cb\"]}", NULL, "userinfo"},
        {"{\"redirect_uris\":[\"https://a.example/c b\"]}", NULL, "character not allowed"},
        {"{\"redirect_uris\":[\"https://a.example/%zz\"]}", NULL, "percent"},
        {"{\"redirect_uris\":[\"http://127.0.0.1.evil.com/cb\"]}", NULL, "loopback"},
        {"{\"redirect_uris\":[\"http://10.0.0.1/cb\"]}", NULL, "loopback"},

        /* token_endpoint_auth_method */
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"token_endpoint_auth_method\":"
         "\"private_key_jwt\"}",
         NULL, "token_endpoint_auth_method: 'private_key_jwt' is not supported"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"token_endpoint_auth_method\":1}", NULL,
         "token_endpoint_auth_method: must be a string"},

        /* grant_types, response_types and their consistency */
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"grant_types\":[\"implicit\"]}", NULL,
         "grant_types[0]: 'implicit' is not supported"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"grant_types\":[\"password\"]}", NULL,
         "grant_types[0]"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"grant_types\":[]}", NULL,
         "grant_types: must not be empty"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"response_types\":[\"token\"]}", NULL,
         "response_types[0]: 'token' is not supported"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"response_types\":[]}", NULL,
         "response_types: authorization_code in grant_types needs code"},
        {"{\"grant_types\":[\"client_credentials\"],\"response_types\":[\"code\"]}", NULL,
         "grant_types: response_types code needs authorization_code"},
        {"{\"grant_types\":[\"client_credentials\"],\"token_endpoint_auth_method\":\"none\"}", NULL,
         "grant_types: client_credentials needs a client secret (token_endpoint_auth_method "
         "is none)"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"grant_types\":[\"authorization_code\","
         "\"authorization_code\"]}",
         NULL, "appears twice"},

        /* the other members */
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"client_name\":7}", NULL,
         "client_name: must be a string"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"client_name\":\"a\\nb\"}", NULL,
         "client_name"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"logo_uri\":\"http://a.example/l.png\"}",
         NULL, "logo_uri: must be an https URL"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"client_uri\":\"javascript:x\"}", NULL,
         "client_uri: must be an https URL"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"scope\":[\"mcp\"]}", NULL, "scope"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"scope\":\"a\\\"b\"}", NULL, "scope"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"contacts\":\"x\"}", NULL, "contacts"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"application_type\":\"desktop\"}", NULL,
         "application_type"},

        /* CIMD */
        {"{\"client_id\":\"https://evil.example/doc\",\"redirect_uris\":[\"https://a.example/"
         "cb\"]}",
         CIMD_URL, "client_id: must equal"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"]}", CIMD_URL, "client_id: must equal"},
        {"{\"client_id\":\"" CIMD_URL "/\",\"redirect_uris\":[\"https://a.example/cb\"]}", CIMD_URL,
         "client_id: must equal"},
        {"{\"client_id\":\"" CIMD_URL "\",\"redirect_uris\":[\"https://a.example/cb\"],"
         "\"token_endpoint_auth_method\":\"client_secret_basic\"}",
         CIMD_URL, "supports only none"},
        {"{\"client_id\":\"" CIMD_URL "\",\"redirect_uris\":[\"https://a.example/cb\"],"
         "\"token_endpoint_auth_method\":\"private_key_jwt\"}",
         CIMD_URL, "token_endpoint_auth_method"},
        {"{\"client_id\":\"" CIMD_URL "\",\"redirect_uris\":[\"https://a.example/cb\"],"
         "\"client_secret\":\"s\"}",
         CIMD_URL, "client_secret"},
        {"[]", NULL, "must be a JSON object"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
        json_error_t jerr;
        json_t *m = json_loads(t[i].json, 0, &jerr);
        char w[300] = "";
        if (m == NULL)
            fail_msg("row %zu: bad JSON in the test: %s", i, jerr.text);
        int r = oauth_client_metadata_check(m, t[i].cimd, w, sizeof(w));
        if (t[i].why == NULL && r != 0)
            fail_msg("row %zu refused: %s", i, w);
        if (t[i].why != NULL && r != ERR_INVALID)
            fail_msg("row %zu accepted (expected '%s')", i, t[i].why);
        if (t[i].why != NULL && strstr(w, t[i].why) == NULL)
            fail_msg("row %zu: reason '%s' lacks '%s'", i, w, t[i].why);
        for (const char *p = w; *p; p++) {
            if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
                fail_msg("row %zu: reason has a character not allowed in error_description", i);
        }
        json_decref(m);
    }
}

static void test_metadata_defaults(void **state)
{
    char w[300];
    json_t *m =
        json_pack("{s:[s], s:{s:b}}", "redirect_uris", "https://a.example/cb", "x-ext", "kept", 1);
    assert_int_equal(oauth_client_metadata_check(m, NULL, w, sizeof(w)), 0);
    assert_string_equal(json_string_value(json_object_get(m, "token_endpoint_auth_method")),
                        "client_secret_basic");
    json_t *gt = json_object_get(m, "grant_types"), *rt = json_object_get(m, "response_types");
    assert_int_equal(json_array_size(gt), 1);
    assert_string_equal(json_string_value(json_array_get(gt, 0)), "authorization_code");
    assert_int_equal(json_array_size(rt), 1);
    assert_string_equal(json_string_value(json_array_get(rt, 0)), "code");
    assert_non_null(json_object_get(m, "x-ext")); /* unknown members kept */
    json_decref(m);

    /* A metadata document defaults to none (it cannot carry a secret). */
    m = json_pack("{s:s, s:[s]}", "client_id", CIMD_URL, "redirect_uris",
                  "http://127.0.0.1/callback");
    assert_int_equal(oauth_client_metadata_check(m, CIMD_URL, w, sizeof(w)), 0);
    assert_string_equal(json_string_value(json_object_get(m, "token_endpoint_auth_method")),
                        "none");
    json_decref(m);

    /* client_credentials only: response_types defaults to [] */
    m = json_pack("{s:[s]}", "grant_types", "client_credentials");
    assert_int_equal(oauth_client_metadata_check(m, NULL, w, sizeof(w)), 0);
    assert_int_equal(json_array_size(json_object_get(m, "response_types")), 0);
    json_decref(m);

    /* long values */
    char name[260];
    memset(name, 'n', sizeof(name) - 1);
    name[200] = '\0';
    m = json_pack("{s:[s], s:s}", "redirect_uris", "https://a.example/cb", "client_name", name);
    assert_int_equal(oauth_client_metadata_check(m, NULL, w, sizeof(w)), 0);
    json_decref(m);
    name[200] = 'n';
    name[201] = '\0';
    m = json_pack("{s:[s], s:s}", "redirect_uris", "https://a.example/cb", "client_name", name);
    assert_int_equal(oauth_client_metadata_check(m, NULL, w, sizeof(w)), ERR_INVALID);
    json_decref(m);
    /* 200 characters of two bytes each are still 200 characters */
    char wide[420];
    for (int i = 0; i < 200; i++)
        memcpy(wide + 2 * i, "\xc3\xa9", 2);
    wide[400] = '\0';
    m = json_pack("{s:[s], s:s}", "redirect_uris", "https://a.example/cb", "client_name", wide);
    assert_int_equal(oauth_client_metadata_check(m, NULL, w, sizeof(w)), 0);
    json_decref(m);

    char uri[2100];
    int n = snprintf(uri, sizeof(uri), "https://a.example/");
    memset(uri + n, 'p', 2000 - (size_t)n);
    uri[2000] = '\0';
    m = json_pack("{s:[s]}", "redirect_uris", uri);
    assert_int_equal(oauth_client_metadata_check(m, NULL, w, sizeof(w)), 0);
    json_decref(m);
    uri[2000] = 'p';
    uri[2001] = '\0';
    m = json_pack("{s:[s]}", "redirect_uris", uri);
    assert_int_equal(oauth_client_metadata_check(m, NULL, w, sizeof(w)), ERR_INVALID);
    assert_non_null(strstr(w, "redirect_uris[0]: longer than 2000"));
    json_decref(m);

    /* a client value quoted in a reason is sanitised */
    m = json_pack("{s:[s], s:s}", "redirect_uris", "https://a.example/cb",
                  "token_endpoint_auth_method", "x\"\\\n\xc3\xa9");
    assert_int_equal(oauth_client_metadata_check(m, NULL, w, sizeof(w)), ERR_INVALID);
    assert_null(strpbrk(w, "\"\\\n"));
    json_decref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pkce_rfc7636),          cmocka_unit_test(test_pkce_spellings),
        cmocka_unit_test(test_pkce_verifier_charset), cmocka_unit_test(test_redirect_matching),
        cmocka_unit_test(test_auth_method),           cmocka_unit_test(test_metadata_table),
        cmocka_unit_test(test_metadata_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
