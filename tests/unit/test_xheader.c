/* client/mcpc: SEP-2243's x-mcp-header mirroring. Header values (as is, or =?base64?...?=
 * when they hold non-ASCII or control bytes, leading or trailing whitespace, or look encoded),
 * the validity rules of the annotations (a token, case-insensitively unique, only on string,
 * integer and boolean properties, found through "properties" chains) and the headers built
 * from a tools/call's arguments. Every encoded value is decoded again and compared. */
/* cmocka.h needs these first. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/mcpc.h"
#include "core/crypto.h"

/* ---- values ---- */

struct val_case {
    const char *in, *want;
};

static const struct val_case val_cases[] = {
    /* plain: visible ASCII, inner spaces, empty */
    {"", ""},
    {"us-west1", "us-west1"},
    {"Hello", "Hello"},
    {"a b  c", "a b  c"},
    {"SGVsbG8=", "SGVsbG8="},
    {"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"},
    /* half-wrapped or differently-cased wrappers are literal (the server's regex is exact) */
    {"=?base64?SGVsbG8=", "=?base64?SGVsbG8="},
    {"SGVsbG8=?=", "SGVsbG8=?="},
    {"=?base64?=", "=?base64?="},
    {"=?BASE64?SGVsbG8=?=", "=?BASE64?SGVsbG8=?="},
    {"=?utf-8?B?SGVsbG8=?=", "=?utf-8?B?SGVsbG8=?="},
    /* SEP-2243's example: non-ASCII */
    {"Hello, \xe4\xb8\x96\xe7\x95\x8c", "=?base64?SGVsbG8sIOS4lueVjA==?="},
    {"\xc3\xa9", "=?base64?w6k=?="},
    {"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "=?base64?5pel5pys6Kqe?="},
    {"caf\xc3\xa9 au lait", "=?base64?Y2Fmw6kgYXUgbGFpdA==?="},
    /* leading or trailing whitespace (a server trims it) */
    {" lead", "=?base64?IGxlYWQ=?="},
    {"trail ", "=?base64?dHJhaWwg?="},
    {" ", "=?base64?IA==?="},
    {"\ttab", "=?base64?CXRhYg==?="},
    /* control bytes anywhere: header injection must be impossible */
    {"a\tb", "=?base64?YQli?="},
    {"line\nbreak", "=?base64?bGluZQpicmVhaw==?="},
    {"\r\n", "=?base64?DQo=?="},
    {"x\r\nX-Injected: 1", "=?base64?eA0KWC1JbmplY3RlZDogMQ==?="},
    {"\x7f", "=?base64?fw==?="},
    /* values that look encoded are encoded, so they survive decoding */
    {"=?base64?SGVsbG8=?=", "=?base64?PT9iYXNlNjQ/U0dWc2JHOD0/PQ==?="},
    {"=?base64?\?=", "=?base64?PT9iYXNlNjQ/Pz0=?="},
};

/* The value a server recovers from a header (conformance-fixtures 5.6): trimmed; when wrapped,
 * the strict base64 inside. */
static char *server_view(const char *h)
{
    size_t n = strlen(h);
    if (n >= 11 && strncmp(h, "=?base64?", 9) == 0 && strcmp(h + n - 2, "?=") == 0) {
        unsigned char *out = NULL;
        size_t outlen = 0;
        if (b64_decode_strict(h + 9, n - 11, &out, &outlen) != 0)
            fail_msg("'%s': the base64 inside is not strict", h);
        char *s = malloc(outlen + 1);
        assert_non_null(s);
        memcpy(s, out, outlen);
        s[outlen] = '\0';
        free(out);
        return s;
    }
    while (*h == ' ' || *h == '\t')
        h++;
    n = strlen(h);
    while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    return strndup(h, n);
}

/* A header value is visible ASCII and spaces, without surrounding whitespace. */
static void check_header_safe(const char *v)
{
    size_t n = strlen(v);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] >= 0x7f)
            fail_msg("'%s': byte 0x%02x in a header value", v, (unsigned char)v[i]);
    if (n > 0 && (v[0] == ' ' || v[n - 1] == ' '))
        fail_msg("'%s': surrounding whitespace", v);
}

static void test_value_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof val_cases / sizeof val_cases[0]; i++) {
        char *v = mcpc_header_value(val_cases[i].in);
        assert_non_null(v);
        if (strcmp(v, val_cases[i].want) != 0)
            fail_msg("case %zu: '%s', want '%s'", i, v, val_cases[i].want);
        check_header_safe(v);
        char *back = server_view(v);
        assert_string_equal(back, val_cases[i].in);
        free(back);
        free(v);
    }
}

/* Every single byte, alone and between letters, survives the trip. */
static void test_value_bytes(void **state)
{
    (void)state;
    for (int c = 1; c < 256; c++) {
        char in[4] = {(char)c, '\0'}, mid[4] = {'a', (char)c, 'b', '\0'};
        const char *ins[] = {in, mid};
        for (size_t k = 0; k < 2; k++) {
            char *v = mcpc_header_value(ins[k]);
            check_header_safe(v);
            bool plain = c >= 0x20 && c < 0x7f && !(k == 0 && c == ' ');
            if (plain)
                assert_string_equal(v, ins[k]);
            else
                assert_memory_equal(v, "=?base64?", 9);
            char *back = server_view(v);
            assert_string_equal(back, ins[k]);
            free(back);
            free(v);
        }
    }
    /* a long value */
    char *big = malloc(100001);
    assert_non_null(big);
    memset(big, 'x', 100000);
    big[100000] = '\0';
    char *v = mcpc_header_value(big);
    assert_string_equal(v, big);
    free(v);
    big[50000] = '\n';
    v = mcpc_header_value(big);
    char *back = server_view(v);
    assert_string_equal(back, big);
    free(back);
    free(v);
    free(big);
}

/* ---- annotations and headers ---- */

struct hdr_case {
    const char *schema, *args; /* JSON; args NULL: no arguments */
    const char *want;          /* JSON array of header lines (any order); NULL: invalid */
};

#define P(props) "{\"type\":\"object\",\"properties\":{" props "}}"
#define REGION "\"region\":{\"type\":\"string\",\"x-mcp-header\":\"Region\"}"

static const struct hdr_case hdr_cases[] = {
    /* conformance fixture (docs/conformance-fixtures.md 5.6) */
    {P(REGION ",\"query\":{\"type\":\"string\"}"), "{\"region\":\"us-west1\",\"query\":\"q\"}",
     "[\"Mcp-Param-Region: us-west1\"]"},
    {P(REGION), "{\"region\":\"Hello, \xe4\xb8\x96\xe7\x95\x8c\"}",
     "[\"Mcp-Param-Region: =?base64?SGVsbG8sIOS4lueVjA==?=\"]"},
    {P(REGION), "{\"region\":\"=?base64?SGVsbG8=\"}", "[\"Mcp-Param-Region: =?base64?SGVsbG8=\"]"},
    {P(REGION), "{\"region\":\"\"}", "[\"Mcp-Param-Region: \"]"},
    /* absent, null, no arguments at all, arguments not an object: no header */
    {P(REGION), "{\"query\":\"q\"}", "[]"},
    {P(REGION), "{\"region\":null}", "[]"},
    {P(REGION), NULL, "[]"},
    {P(REGION), "[\"us-west1\"]", "[]"},
    {P(REGION), "\"us-west1\"", "[]"},
    /* integers in decimal, booleans as true/false */
    {P("\"n\":{\"type\":\"integer\",\"x-mcp-header\":\"Count\"}"), "{\"n\":42}",
     "[\"Mcp-Param-Count: 42\"]"},
    {P("\"n\":{\"type\":\"integer\",\"x-mcp-header\":\"Count\"}"), "{\"n\":-7}",
     "[\"Mcp-Param-Count: -7\"]"},
    {P("\"n\":{\"type\":\"integer\",\"x-mcp-header\":\"Count\"}"), "{\"n\":0}",
     "[\"Mcp-Param-Count: 0\"]"},
    /* the ends of the range the spec allows (JavaScript's safe integers) */
    {P("\"n\":{\"type\":\"integer\",\"x-mcp-header\":\"Count\"}"), "{\"n\":9007199254740991}",
     "[\"Mcp-Param-Count: 9007199254740991\"]"},
    {P("\"n\":{\"type\":\"integer\",\"x-mcp-header\":\"Count\"}"), "{\"n\":-9007199254740991}",
     "[\"Mcp-Param-Count: -9007199254740991\"]"},
    {P("\"b\":{\"type\":\"boolean\",\"x-mcp-header\":\"Dry-Run\"}"), "{\"b\":true}",
     "[\"Mcp-Param-Dry-Run: true\"]"},
    {P("\"b\":{\"type\":\"boolean\",\"x-mcp-header\":\"Dry-Run\"}"), "{\"b\":false}",
     "[\"Mcp-Param-Dry-Run: false\"]"},
    /* objects and arrays given for a mirrored property: no header */
    {P(REGION), "{\"region\":{\"a\":1}}", "[]"},
    {P(REGION), "{\"region\":[\"a\"]}", "[]"},
    /* several headers; the name keeps its case */
    {P(REGION ",\"t\":{\"type\":\"string\",\"x-mcp-header\":\"tenant_ID\"},"
              "\"n\":{\"type\":\"integer\",\"x-mcp-header\":\"N\"}"),
     "{\"region\":\"eu\",\"t\":\"acme\",\"n\":3}",
     "[\"Mcp-Param-Region: eu\",\"Mcp-Param-tenant_ID: acme\",\"Mcp-Param-N: 3\"]"},
    /* an integer property sent as a JSON real: 3.0 is 3; fractions and values beyond 2^53
     * (which no long long holds exactly, or at all) give no header */
    {P("\"n\":{\"type\":\"integer\",\"x-mcp-header\":\"N\"}"), "{\"n\":3.0}",
     "[\"Mcp-Param-N: 3\"]"},
    {P("\"n\":{\"type\":\"integer\",\"x-mcp-header\":\"N\"}"), "{\"n\":2.5}", "[]"},
    {P("\"n\":{\"type\":\"integer\",\"x-mcp-header\":\"N\"}"), "{\"n\":-9.2e55}", "[]"},
    {P("\"n\":{\"type\":\"integer\",\"x-mcp-header\":\"N\"}"), "{\"n\":1e300}", "[]"},
    /* every token character, and a 64-character name */
    {P("\"s\":{\"type\":\"string\",\"x-mcp-header\":\"!#$%&'*+-.^_`|~09azAZ\"}"), "{\"s\":\"v\"}",
     "[\"Mcp-Param-!#$%&'*+-.^_`|~09azAZ: v\"]"},
    {P("\"s\":{\"type\":\"string\",\"x-mcp-header\":"
       "\"A123456789012345678901234567890123456789012345678901234567890123\"}"),
     "{\"s\":\"v\"}",
     "[\"Mcp-Param-A123456789012345678901234567890123456789012345678901234567890123: v\"]"},
    /* nested objects through "properties" */
    {P("\"opts\":{\"type\":\"object\",\"properties\":{\"tenant\":{\"type\":\"string\","
       "\"x-mcp-header\":\"Tenant\"}}}"),
     "{\"opts\":{\"tenant\":\"acme\"}}", "[\"Mcp-Param-Tenant: acme\"]"},
    {P("\"opts\":{\"type\":\"object\",\"properties\":{\"tenant\":{\"type\":\"string\","
       "\"x-mcp-header\":\"Tenant\"}}}"),
     "{\"opts\":\"acme\"}", "[]"},
    {P("\"opts\":{\"type\":\"object\",\"properties\":{\"tenant\":{\"type\":\"string\","
       "\"x-mcp-header\":\"Tenant\"}}}"),
     "{\"tenant\":\"acme\"}", "[]"},
    {P("\"a\":{\"type\":\"object\",\"properties\":{\"b\":{\"type\":\"object\",\"properties\":"
       "{\"c\":{\"type\":\"boolean\",\"x-mcp-header\":\"Deep\"}}}}}"),
     "{\"a\":{\"b\":{\"c\":true}}}", "[\"Mcp-Param-Deep: true\"]"},
    /* annotation-like text inside values (default, const, enum, examples) is not an annotation */
    {P("\"s\":{\"type\":\"object\",\"default\":{\"x-mcp-header\":\"D\"},"
       "\"examples\":[{\"x-mcp-header\":\"E\"}],\"enum\":[{\"x-mcp-header\":\"N\"}],"
       "\"const\":{\"x-mcp-header\":\"C\"}}"),
     "{\"s\":{}}", "[]"},
    /* schemas without annotations, odd property schemas */
    {"{\"type\":\"object\"}", "{\"a\":1}", "[]"},
    {P(""), "{}", "[]"},
    {P("\"a\":true,\"b\":false,\"c\":{}"), "{\"a\":1}", "[]"},
    {"{\"type\":\"object\",\"properties\":[{\"type\":\"string\",\"x-mcp-header\":\"R\"}]}",
     "{\"0\":\"a\"}", "[]"},
    {"[]", "{}", "[]"},

    /* invalid names: not tokens, empty, too long, not strings */
    {P("\"s\":{\"type\":\"string\",\"x-mcp-header\":\"Bad Name\"}"), NULL, NULL},
    {P("\"s\":{\"type\":\"string\",\"x-mcp-header\":\"\"}"), NULL, NULL},
    {P("\"s\":{\"type\":\"string\",\"x-mcp-header\":\"X:Y\"}"), NULL, NULL},
    {P("\"s\":{\"type\":\"string\",\"x-mcp-header\":\"X\\r\\nY\"}"), NULL, NULL},
    {P("\"s\":{\"type\":\"string\",\"x-mcp-header\":\"R\xc3\xa9gion\"}"), NULL, NULL},
    {P("\"s\":{\"type\":\"string\",\"x-mcp-header\":\"(x)\"}"), NULL, NULL},
    {P("\"s\":{\"type\":\"string\",\"x-mcp-header\":\"a/b\"}"), NULL, NULL},
    {P("\"s\":{\"type\":\"string\",\"x-mcp-header\":"
       "\"A1234567890123456789012345678901234567890123456789012345678901234\"}"),
     NULL, NULL},
    {P("\"s\":{\"type\":\"string\",\"x-mcp-header\":5}"), NULL, NULL},
    {P("\"s\":{\"type\":\"string\",\"x-mcp-header\":true}"), NULL, NULL},
    {P("\"s\":{\"type\":\"string\",\"x-mcp-header\":null}"), NULL, NULL},
    {P("\"s\":{\"type\":\"string\",\"x-mcp-header\":[\"X\"]}"), NULL, NULL},
    /* duplicates, in any case, at any depth */
    {P(REGION ",\"r2\":{\"type\":\"string\",\"x-mcp-header\":\"Region\"}"), NULL, NULL},
    {P(REGION ",\"r2\":{\"type\":\"string\",\"x-mcp-header\":\"REGION\"}"), NULL, NULL},
    {P(REGION ",\"o\":{\"type\":\"object\",\"properties\":{\"r\":{\"type\":\"string\","
              "\"x-mcp-header\":\"region\"}}}"),
     NULL, NULL},
    /* only string, integer and boolean properties */
    {P("\"s\":{\"type\":\"number\",\"x-mcp-header\":\"N\"}"), NULL, NULL},
    {P("\"s\":{\"type\":\"object\",\"x-mcp-header\":\"N\"}"), NULL, NULL},
    {P("\"s\":{\"type\":\"array\",\"x-mcp-header\":\"N\"}"), NULL, NULL},
    {P("\"s\":{\"type\":\"null\",\"x-mcp-header\":\"N\"}"), NULL, NULL},
    {P("\"s\":{\"x-mcp-header\":\"N\"}"), NULL, NULL},
    {P("\"s\":{\"type\":[\"string\",\"null\"],\"x-mcp-header\":\"N\"}"), NULL, NULL},
    {P("\"s\":{\"type\":\"String\",\"x-mcp-header\":\"N\"}"), NULL, NULL},
    /* an invalid annotation deep down invalidates the tool */
    {P(REGION ",\"o\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"number\","
              "\"x-mcp-header\":\"X\"}}}"),
     "{\"region\":\"eu\"}", NULL},
};

/* MCP 2026-07-28, Streamable HTTP, schema extension: x-mcp-header MUST only be on properties
 * statically reachable from the root through a chain of "properties" keys, never through
 * items, oneOf/anyOf/allOf/not, if/then/else or $ref (nor on the root); an annotation anywhere
 * else makes the tool definition invalid, and the client MUST drop the tool (conformance check
 * sep-2243-x-mcp-header-statically-reachable). */
static const char *const unreachable[] = {
    P("\"list\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"x-mcp-header\":\"Item\"}}"),
    P("\"t\":{\"type\":\"array\",\"prefixItems\":[{\"type\":\"string\",\"x-mcp-header\":\"P\"}]}"),
    P("\"u\":{\"oneOf\":[{\"type\":\"string\",\"x-mcp-header\":\"U\"}]}"),
    P("\"u\":{\"anyOf\":[{\"type\":\"string\",\"x-mcp-header\":\"U\"},{\"type\":\"null\"}]}"),
    P("\"u\":{\"allOf\":[{\"type\":\"string\",\"x-mcp-header\":\"U\"}]}"),
    P("\"u\":{\"not\":{\"type\":\"string\",\"x-mcp-header\":\"U\"}}"),
    P("\"u\":{\"type\":\"object\",\"if\":{\"required\":[\"a\"]},\"then\":{\"properties\":"
      "{\"a\":{\"type\":\"string\",\"x-mcp-header\":\"A\"}}}}"),
    P("\"o\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\","
      "\"x-mcp-header\":\"Extra\"}}"),
    "{\"type\":\"object\",\"$defs\":{\"r\":{\"type\":\"string\",\"x-mcp-header\":\"R\"}},"
    "\"properties\":{\"r\":{\"$ref\":\"#/$defs/r\"}}}",
    "{\"type\":\"object\",\"x-mcp-header\":\"Root\",\"properties\":{}}",
};

static void test_header_unreachable(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof unreachable / sizeof unreachable[0]; i++) {
        json_error_t e;
        json_t *schema = json_loads(unreachable[i], 0, &e);
        if (schema == NULL)
            fail_msg("case %zu: bad schema JSON: %s", i, e.text);
        char why[300] = "";
        json_t *h = mcpc_param_headers(schema, NULL, why, sizeof why);
        if (h != NULL) {
            print_error("%s: accepted, want invalid (the tool must be dropped)\n", unreachable[i]);
            bad++;
        } else if (why[0] == '\0') {
            print_error("%s: no reason given\n", unreachable[i]);
            bad++;
        }
        json_decref(h);
        json_decref(schema);
    }
    assert_int_equal(bad, 0);
}

/* Sorted array of the strings in a (header order follows the schema's key order). */
static json_t *sorted(json_t *a)
{
    json_t *copy = json_copy(a);
    size_t n = json_array_size(copy);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(json_string_value(json_array_get(copy, j - 1)),
                                           json_string_value(json_array_get(copy, j))) > 0;
             j--) {
            json_t *x = json_incref(json_array_get(copy, j));
            json_array_set(copy, j, json_array_get(copy, j - 1));
            json_array_set_new(copy, j - 1, x);
        }
    return copy;
}

static void test_header_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof hdr_cases / sizeof hdr_cases[0]; i++) {
        const struct hdr_case *c = &hdr_cases[i];
        json_error_t e;
        json_t *schema = json_loads(c->schema, 0, &e);
        if (schema == NULL)
            fail_msg("case %zu: bad schema JSON: %s", i, e.text);
        json_t *args = c->args != NULL ? json_loads(c->args, JSON_DECODE_ANY, &e) : NULL;
        if (c->args != NULL && args == NULL)
            fail_msg("case %zu: bad arguments JSON: %s", i, e.text);
        char why[300] = "";
        json_t *got = mcpc_param_headers(schema, args, why, sizeof why);
        if (c->want == NULL) {
            if (got != NULL)
                fail_msg("case %zu: accepted, want invalid", i);
            if (why[0] == '\0')
                fail_msg("case %zu: no reason given", i);
        } else {
            if (got == NULL)
                fail_msg("case %zu: invalid (%s)", i, why);
            json_t *want = json_loads(c->want, 0, NULL);
            assert_non_null(want);
            json_t *g = sorted(got), *w = sorted(want);
            if (!json_equal(g, w)) {
                char *gs = json_dumps(got, JSON_COMPACT);
                fail_msg("case %zu: %s, want %s", i, gs, c->want);
            }
            json_decref(g);
            json_decref(w);
            json_decref(want);
            /* validity does not depend on the arguments */
            json_t *none = mcpc_param_headers(schema, NULL, why, sizeof why);
            assert_non_null(none);
            assert_int_equal(json_array_size(none), 0);
            json_decref(none);
        }
        json_decref(got);
        json_decref(args);
        json_decref(schema);
    }
    /* no schema at all */
    char why[300];
    json_t *h = mcpc_param_headers(NULL, NULL, why, sizeof why);
    assert_non_null(h);
    assert_int_equal(json_array_size(h), 0);
    json_decref(h);
}

/* Deep "properties" chains work to a reasonable depth and do not recurse without bound. */
static void test_header_depth(void **state)
{
    (void)state;
    for (int depth = 1; depth <= 200; depth += (depth < 20 ? 1 : 60)) {
        json_t *leaf = json_pack("{s:s, s:s}", "type", "string", "x-mcp-header", "Deep");
        json_t *val = json_string("v");
        for (int d = 0; d < depth; d++) {
            leaf = json_pack("{s:s, s:{s:o}}", "type", "object", "properties", "k", leaf);
            val = json_pack("{s:o}", "k", val);
        }
        char why[300];
        json_t *h = mcpc_param_headers(leaf, val, why, sizeof why);
        /* the property is at depth `depth` below the root's properties: mirrored down to 16
         * levels; deeper, the tool is refused rather than its annotation silently ignored */
        if (depth <= 16) {
            assert_non_null(h);
            assert_int_equal(json_array_size(h), 1);
            assert_string_equal(json_string_value(json_array_get(h, 0)), "Mcp-Param-Deep: v");
        } else {
            assert_null(h);
            assert_non_null(strstr(why, "too deep"));
        }
        json_decref(h);
        json_decref(leaf);
        json_decref(val);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_table),        cmocka_unit_test(test_value_bytes),
        cmocka_unit_test(test_header_table),       cmocka_unit_test(test_header_depth),
        cmocka_unit_test(test_header_unreachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
