/* client/oauthc: the token endpoint response parser (RFC 6749 5.1, RFC 6750, RFC 9449's DPoP
 * token type refused) and the derived loopback callback port. */
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

#include "client/oauthc.h"

#define NOW 1700000000LL

struct tok_case {
    const char *resp; /* JSON */
    int rc;
    const char *want; /* JSON of the stored document; NULL on error */
};

/* The stored document always carries obtained_at: NOW. */
#define OBT "\"obtained_at\":1700000000"

static const struct tok_case tok_cases[] = {
    /* RFC 6749 5.1's example */
    {"{\"access_token\":\"2YotnFZFEjr1zCsicMWpAA\",\"token_type\":\"example\",\"expires_in\":3600,"
     "\"refresh_token\":\"tGzv3JOkF0XG5Qx2TlKWIA\",\"example_parameter\":\"example_value\"}",
     ERR_INVALID, NULL},
    {"{\"access_token\":\"2YotnFZFEjr1zCsicMWpAA\",\"token_type\":\"Bearer\",\"expires_in\":3600,"
     "\"refresh_token\":\"tGzv3JOkF0XG5Qx2TlKWIA\",\"example_parameter\":\"example_value\"}",
     0,
     "{\"access_token\":\"2YotnFZFEjr1zCsicMWpAA\",\"refresh_token\":\"tGzv3JOkF0XG5Qx2TlKWIA\","
     "\"expires_at\":1700003600," OBT "}"},
    /* only the required members */
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\"}", 0, "{\"access_token\":\"at\"," OBT "}"},
    /* a JWT access token, a scope, an id_token that is not kept */
    {"{\"access_token\":\"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln\",\"token_type\":\"Bearer\","
     "\"expires_in\":300,\"scope\":\"mcp:tools files:read\",\"id_token\":\"x.y.z\"}",
     0,
     "{\"access_token\":\"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln\",\"expires_at\":1700000300,"
     "\"scope\":\"mcp:tools files:read\"," OBT "}"},
    /* token_type is case-insensitive (RFC 6749 5.1) */
    {"{\"access_token\":\"at\",\"token_type\":\"bearer\"}", 0, "{\"access_token\":\"at\"," OBT "}"},
    {"{\"access_token\":\"at\",\"token_type\":\"BEARER\"}", 0, "{\"access_token\":\"at\"," OBT "}"},
    {"{\"access_token\":\"at\",\"token_type\":\"bEaReR\"}", 0, "{\"access_token\":\"at\"," OBT "}"},
    /* expires_in: integer, real (truncated), zero, null (as absent), huge (clamped to 10 y) */
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":0}", 0,
     "{\"access_token\":\"at\",\"expires_at\":1700000000," OBT "}"},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":3599.9}", 0,
     "{\"access_token\":\"at\",\"expires_at\":1700003599," OBT "}"},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":0.5}", 0,
     "{\"access_token\":\"at\",\"expires_at\":1700000000," OBT "}"},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":null}", 0,
     "{\"access_token\":\"at\"," OBT "}"},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":315360000}", 0,
     "{\"access_token\":\"at\",\"expires_at\":2015360000," OBT "}"},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":315360001}", 0,
     "{\"access_token\":\"at\",\"expires_at\":2015360000," OBT "}"},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":9223372036854775807}", 0,
     "{\"access_token\":\"at\",\"expires_at\":2015360000," OBT "}"},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":1e11}", 0,
     "{\"access_token\":\"at\",\"expires_at\":2015360000," OBT "}"},
    /* refresh_token and scope: null is absent; an empty scope is a scope */
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"refresh_token\":null,\"scope\":null}", 0,
     "{\"access_token\":\"at\"," OBT "}"},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"scope\":\"\"}", 0,
     "{\"access_token\":\"at\",\"scope\":\"\"," OBT "}"},
    /* every visible ASCII character is allowed in a token */
    {"{\"access_token\":\"!#$%&'()*+,-./0123456789:;<=>?@AZ[\\\\]^_`az{|}~\\\"\","
     "\"token_type\":\"Bearer\",\"refresh_token\":\"r~/+=\"}",
     0,
     "{\"access_token\":\"!#$%&'()*+,-./0123456789:;<=>?@AZ[\\\\]^_`az{|}~\\\"\","
     "\"refresh_token\":\"r~/+=\"," OBT "}"},

    /* token_type: missing, another scheme, DPoP (RFC 9449), not a string, padded */
    {"{\"access_token\":\"at\"}", ERR_INVALID, NULL},
    {"{\"access_token\":\"at\",\"token_type\":\"DPoP\"}", ERR_INVALID, NULL},
    {"{\"access_token\":\"at\",\"token_type\":\"dpop\"}", ERR_INVALID, NULL},
    {"{\"access_token\":\"at\",\"token_type\":\"mac\"}", ERR_INVALID, NULL},
    {"{\"access_token\":\"at\",\"token_type\":\"N_A\"}", ERR_INVALID, NULL},
    {"{\"access_token\":\"at\",\"token_type\":\"\"}", ERR_INVALID, NULL},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer \"}", ERR_INVALID, NULL},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearers\"}", ERR_INVALID, NULL},
    {"{\"access_token\":\"at\",\"token_type\":[\"Bearer\"]}", ERR_INVALID, NULL},
    {"{\"access_token\":\"at\",\"token_type\":null}", ERR_INVALID, NULL},
    /* access_token: missing, empty, not a string, spaces, controls, non-ASCII */
    {"{\"token_type\":\"Bearer\"}", ERR_INVALID, NULL},
    {"{\"access_token\":\"\",\"token_type\":\"Bearer\"}", ERR_INVALID, NULL},
    {"{\"access_token\":null,\"token_type\":\"Bearer\"}", ERR_INVALID, NULL},
    {"{\"access_token\":42,\"token_type\":\"Bearer\"}", ERR_INVALID, NULL},
    {"{\"access_token\":true,\"token_type\":\"Bearer\"}", ERR_INVALID, NULL},
    {"{\"access_token\":{\"v\":\"at\"},\"token_type\":\"Bearer\"}", ERR_INVALID, NULL},
    {"{\"access_token\":\"a b\",\"token_type\":\"Bearer\"}", ERR_INVALID, NULL},
    {"{\"access_token\":\" at\",\"token_type\":\"Bearer\"}", ERR_INVALID, NULL},
    {"{\"access_token\":\"at\\t\",\"token_type\":\"Bearer\"}", ERR_INVALID, NULL},
    {"{\"access_token\":\"at\\r\\nX-Evil: 1\",\"token_type\":\"Bearer\"}", ERR_INVALID, NULL},
    {"{\"access_token\":\"at\\u007f\",\"token_type\":\"Bearer\"}", ERR_INVALID, NULL},
    {"{\"access_token\":\"caf\\u00e9\",\"token_type\":\"Bearer\"}", ERR_INVALID, NULL},
    /* expires_in: negative, a string, a boolean, an object, a huge real */
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":-1}", ERR_INVALID, NULL},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":-0.5}", ERR_INVALID, NULL},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":-9223372036854775807}",
     ERR_INVALID, NULL},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":\"3600\"}", ERR_INVALID,
     NULL},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":true}", ERR_INVALID, NULL},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":{}}", ERR_INVALID, NULL},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"expires_in\":1e300}", ERR_INVALID, NULL},
    /* refresh_token: empty, not a string, spaces */
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"refresh_token\":\"\"}", ERR_INVALID,
     NULL},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"refresh_token\":7}", ERR_INVALID, NULL},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"refresh_token\":\"r t\"}", ERR_INVALID,
     NULL},
    /* scope: not a string */
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"scope\":[\"a\",\"b\"]}", ERR_INVALID,
     NULL},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"scope\":5}", ERR_INVALID, NULL},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"scope\":false}", ERR_INVALID, NULL},
    /* not an object: an error response would be an object, these are junk */
    {"[{\"access_token\":\"at\",\"token_type\":\"Bearer\"}]", ERR_PARSE, NULL},
    {"\"at\"", ERR_PARSE, NULL},
    {"null", ERR_PARSE, NULL},
};

static void check(json_t *resp, int want_rc, const char *want, const char *label)
{
    json_t *out = (json_t *)1;
    char why[300] = "";
    int r = oauthc_token_parse(resp, NOW, &out, why, sizeof why);
    if (r != want_rc)
        fail_msg("%s: rc %d (%s), want %d", label, r, why, want_rc);
    if (r != 0) {
        assert_null(out);
        if (why[0] == '\0')
            fail_msg("%s: no reason given", label);
        return;
    }
    json_t *w = json_loads(want, 0, NULL);
    assert_non_null(w);
    if (!json_equal(out, w)) {
        char *got = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
        fail_msg("%s: got %s, want %s", label, got, want);
    }
    json_decref(w);
    json_decref(out);
}

static void test_token_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof tok_cases / sizeof tok_cases[0]; i++) {
        json_error_t e;
        json_t *resp = json_loads(tok_cases[i].resp, JSON_DECODE_ANY, &e);
        if (resp == NULL)
            fail_msg("case %zu: bad JSON: %s", i, e.text);
        char label[32];
        snprintf(label, sizeof label, "case %zu", i);
        check(resp, tok_cases[i].rc, tok_cases[i].want, label);
        /* the response is not modified */
        json_t *again = json_loads(tok_cases[i].resp, JSON_DECODE_ANY, NULL);
        assert_true(json_equal(resp, again));
        json_decref(again);
        json_decref(resp);
    }
    json_t *out = (json_t *)1;
    char why[300];
    assert_int_equal(oauthc_token_parse(NULL, NOW, &out, why, sizeof why), ERR_PARSE);
    assert_null(out);
}

/* The access token's cap is 16 KiB, for it and for the refresh token. */
static void test_token_sizes(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 16383, 16384, 16385, 100000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        char *t = malloc(n + 1);
        assert_non_null(t);
        memset(t, 'A', n);
        t[n] = '\0';
        int want = n <= 16384 ? 0 : ERR_INVALID;
        char label[64];

        json_t *resp = json_pack("{s:s, s:s}", "access_token", t, "token_type", "Bearer");
        json_t *w = json_pack("{s:s, s:I}", "access_token", t, "obtained_at", (json_int_t)NOW);
        char *ws = json_dumps(w, JSON_COMPACT);
        snprintf(label, sizeof label, "access_token of %zu", n);
        check(resp, want, ws, label);
        free(ws);
        json_decref(w);
        json_decref(resp);

        resp = json_pack("{s:s, s:s, s:s}", "access_token", "at", "token_type", "Bearer",
                         "refresh_token", t);
        w = json_pack("{s:s, s:s, s:I}", "access_token", "at", "refresh_token", t, "obtained_at",
                      (json_int_t)NOW);
        ws = json_dumps(w, JSON_COMPACT);
        snprintf(label, sizeof label, "refresh_token of %zu", n);
        check(resp, want, ws, label);
        free(ws);
        json_decref(w);
        json_decref(resp);
        free(t);
    }
}

/* expires_at is now + expires_in, at any now. */
static void test_token_now(void **state)
{
    (void)state;
    static const long long nows[] = {0, 1, NOW, 4102444800LL};
    for (size_t i = 0; i < sizeof nows / sizeof nows[0]; i++) {
        json_t *resp = json_pack("{s:s, s:s, s:i}", "access_token", "at", "token_type", "Bearer",
                                 "expires_in", 60);
        json_t *out = NULL;
        char why[300];
        assert_int_equal(oauthc_token_parse(resp, nows[i], &out, why, sizeof why), 0);
        assert_int_equal(json_integer_value(json_object_get(out, "expires_at")), nows[i] + 60);
        assert_int_equal(json_integer_value(json_object_get(out, "obtained_at")), nows[i]);
        json_decref(out);
        json_decref(resp);
    }
}

/* The callback port: 20000-39999, a function of the server URL alone (a registered
 * redirect_uri holds it, so it must not change between runs or versions), and spread out. */
static void test_derive_port(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        int port;
    } pinned[] = {
        {"https://mcp.example.com/mcp", 31379},
        {"http://127.0.0.1:8080/mcp", 23169},
        {"https://api.githubcopilot.com/mcp/", 31808},
        {"", 38288},
    };
    for (size_t i = 0; i < sizeof pinned / sizeof pinned[0]; i++) {
        assert_int_equal(oauthc_derive_port(pinned[i].url), pinned[i].port);
        assert_int_equal(oauthc_derive_port(pinned[i].url), pinned[i].port);
    }
    /* close URLs get different ports; all are in range */
    int seen[20000] = {0}, distinct = 0;
    char url[128];
    for (int i = 0; i < 500; i++) {
        snprintf(url, sizeof url, "https://mcp%d.example.com/mcp", i);
        int p = oauthc_derive_port(url);
        assert_in_range(p, 20000, 39999);
        assert_int_equal(p, oauthc_derive_port(url));
        if (seen[p - 20000]++ == 0)
            distinct++;
    }
    assert_true(distinct > 450);
    assert_int_not_equal(oauthc_derive_port("https://mcp.example.com/mcp"),
                         oauthc_derive_port("https://mcp.example.com/mcp/"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_table),
        cmocka_unit_test(test_token_sizes),
        cmocka_unit_test(test_token_now),
        cmocka_unit_test(test_derive_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
