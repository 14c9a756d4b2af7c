/* oauth/form: strict application/x-www-form-urlencoded parsing and percent-encoding. */
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

#include "oauth/form.h"

struct ok_case {
    const char *in;
    const char *want; /* the parsed object as compact JSON with sorted keys */
};

static const struct ok_case ok_cases[] = {
    {"", "{}"},
    {"a=1", "{\"a\": \"1\"}"},
    {"a=1&b=2", "{\"a\": \"1\", \"b\": \"2\"}"},
    {"b=x%20y+z", "{\"b\": \"x y z\"}"},
    {"q=a+b+c", "{\"q\": \"a b c\"}"},
    {"hex=%2f%2F%3a%3A", "{\"hex\": \"//::\"}"},
    {"e=", "{\"e\": \"\"}"},
    {"flag", "{\"flag\": \"\"}"},
    {"flag&x=1", "{\"flag\": \"\", \"x\": \"1\"}"},
    {"a=1&&b=2", "{\"a\": \"1\", \"b\": \"2\"}"},
    {"a=1&", "{\"a\": \"1\"}"},
    {"&a=1", "{\"a\": \"1\"}"},
    {"&&&", "{}"},
    {"a=b=c", "{\"a\": \"b=c\"}"},
    {"my+name=v", "{\"my name\": \"v\"}"},
    {"%6E%61me=v", "{\"name\": \"v\"}"},
    {"u=%C3%A9t%C3%A9", "{\"u\": \"\xc3\xa9t\xc3\xa9\"}"},
    {"u=\xc3\xa9", "{\"u\": \"\xc3\xa9\"}"}, /* raw UTF-8 is accepted too */
    {"emoji=%F0%9F%98%80", "{\"emoji\": \"\xf0\x9f\x98\x80\"}"},
    {"ml=line1%0D%0Aline2%09tab", "{\"ml\": \"line1\\r\\nline2\\ttab\"}"},
    {"redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcb&code_challenge_method=S256",
     "{\"code_challenge_method\": \"S256\", \"redirect_uri\": \"http://127.0.0.1:8080/cb\"}"},
};

static void test_parse_ok(void **state)
{
    for (size_t i = 0; i < sizeof ok_cases / sizeof ok_cases[0]; i++) {
        json_t *obj = (json_t *)1;
        char why[128] = "x";
        int r = form_parse(ok_cases[i].in, strlen(ok_cases[i].in), &obj, why, sizeof why);
        if (r != 0)
            fail_msg("case %zu \"%s\": %d (%s)", i, ok_cases[i].in, r, why);
        assert_string_equal(why, "");
        char *got = json_dumps(obj, JSON_SORT_KEYS);
        if (strcmp(got, ok_cases[i].want) != 0)
            fail_msg("case %zu \"%s\": got %s, want %s", i, ok_cases[i].in, got, ok_cases[i].want);
        free(got);
        json_decref(obj);
    }
}

struct bad_case {
    const char *in;
    int want;
    const char *why; /* a substring of the reason */
};

static const struct bad_case bad_cases[] = {
    {"scope=a&scope=b", ERR_EXISTS, "parameter 'scope' appears twice"},
    {"scope=a&x=1&scope=a", ERR_EXISTS, "'scope' appears twice"},
    {"a&a", ERR_EXISTS, "'a' appears twice"},
    {"sc%6Fpe=a&scope=b", ERR_EXISTS, "'scope' appears twice"}, /* same after decoding */
    {"redirect_uri=%", ERR_PARSE, "invalid %-escape in 'redirect_uri'"},
    {"redirect_uri=%G1", ERR_PARSE, "invalid %-escape in 'redirect_uri'"},
    {"redirect_uri=%4", ERR_PARSE, "invalid %-escape in 'redirect_uri'"},
    {"redirect_uri=abc%4&x=1", ERR_PARSE, "invalid %-escape in 'redirect_uri'"},
    {"state=%%41", ERR_PARSE, "invalid %-escape in 'state'"},
    {"na%me=1", ERR_PARSE, "invalid %-escape in a parameter name"},
    {"state=%C3%28", ERR_PARSE, "parameter 'state' is not valid UTF-8"},
    {"state=%C3", ERR_PARSE, "'state' is not valid UTF-8"},
    {"state=%C0%AF", ERR_PARSE, "'state' is not valid UTF-8"},       /* overlong '/' */
    {"state=%ED%A0%80", ERR_PARSE, "'state' is not valid UTF-8"},    /* surrogate */
    {"state=%F4%90%80%80", ERR_PARSE, "'state' is not valid UTF-8"}, /* past U+10FFFF */
    {"state=\xff", ERR_PARSE, "'state' is not valid UTF-8"},
    {"state=a%00b", ERR_PARSE, "parameter 'state' contains a NUL byte"},
    {"state=a%01", ERR_PARSE, "'state' contains a control character"},
    {"state=%7F", ERR_PARSE, "'state' contains a control character"},
    {"state=%C2%85", ERR_PARSE, "'state' contains a control character"}, /* C1 NEL */
    {"a%00=1", ERR_PARSE, "a parameter name contains a NUL byte"},
    {"a%0A=1", ERR_PARSE, "a parameter name contains a control character"},
    {"=1", ERR_PARSE, "empty name"},
    {"a=1&=2", ERR_PARSE, "empty name"},
};

static void test_parse_bad(void **state)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        json_t *obj = (json_t *)1;
        char why[128] = "";
        int r = form_parse(bad_cases[i].in, strlen(bad_cases[i].in), &obj, why, sizeof why);
        if (r != bad_cases[i].want)
            fail_msg("case %zu \"%s\": got %d (%s), want %d", i, bad_cases[i].in, r, why,
                     bad_cases[i].want);
        assert_null(obj);
        if (strstr(why, bad_cases[i].why) == NULL)
            fail_msg("case %zu \"%s\": reason \"%s\" lacks \"%s\"", i, bad_cases[i].in, why,
                     bad_cases[i].why);
    }
}

/* The length argument is honoured: bytes past it are not read, a NUL inside it is refused. */
static void test_parse_len(void **state)
{
    json_t *obj;
    char why[128];
    assert_int_equal(form_parse("a=1&b=2", 3, &obj, why, sizeof why), 0);
    assert_int_equal(json_object_size(obj), 1);
    assert_string_equal(json_string_value(json_object_get(obj, "a")), "1");
    json_decref(obj);
    assert_int_equal(form_parse("a=1\0b", 5, &obj, why, sizeof why), ERR_PARSE);
    assert_non_null(strstr(why, "'a' contains a NUL byte"));
    assert_int_equal(form_parse(NULL, 0, &obj, NULL, 0), 0);
    assert_int_equal(json_object_size(obj), 0);
    json_decref(obj);
}

static void test_parse_caps(void **state)
{
    char why[128];
    json_t *obj;
    char *s = malloc(3 * FORM_MAX_VALUE + 64);

    /* FORM_MAX_PARAMS parameters pass (empty pairs do not count), one more does not. */
    size_t n = 0;
    for (int i = 0; i < FORM_MAX_PARAMS; i++)
        n += (size_t)snprintf(s + n, 32, "p%d=%d&&", i, i);
    assert_int_equal(form_parse(s, n, &obj, why, sizeof why), 0);
    assert_int_equal(json_object_size(obj), FORM_MAX_PARAMS);
    json_decref(obj);
    n += (size_t)snprintf(s + n, 32, "one=more");
    assert_int_equal(form_parse(s, n, &obj, why, sizeof why), ERR_TOOBIG);
    assert_null(obj);
    assert_non_null(strstr(why, "parameters"));

    /* A value of FORM_MAX_VALUE decoded bytes passes, however it is encoded; one more not. */
    memcpy(s, "code_verifier=", 14);
    n = 14;
    for (int i = 0; i < FORM_MAX_VALUE; i++) {
        memcpy(s + n, "%41", 3);
        n += 3;
    }
    assert_int_equal(form_parse(s, n, &obj, why, sizeof why), 0);
    assert_int_equal(strlen(json_string_value(json_object_get(obj, "code_verifier"))),
                     FORM_MAX_VALUE);
    json_decref(obj);
    s[n++] = 'A';
    assert_int_equal(form_parse(s, n, &obj, why, sizeof why), ERR_TOOBIG);
    assert_null(obj);
    assert_non_null(strstr(why, "'code_verifier' is longer than"));

    /* An absurdly long name, and a long name quoted in a reason is cut short. */
    memset(s, 'n', 3000);
    memcpy(s + 3000, "=1", 2);
    assert_int_equal(form_parse(s, 3002, &obj, why, sizeof why), ERR_TOOBIG);
    assert_non_null(strstr(why, "name is longer than"));
    memset(s, 'n', 100);
    memcpy(s + 100, "=%", 2);
    assert_int_equal(form_parse(s, 102, &obj, why, sizeof why), ERR_PARSE);
    assert_non_null(strstr(why, "nnn...'"));
    assert_true(strlen(why) < 80);
    free(s);
}

/* Reasons stay printable ASCII without '"' or '\' (RFC 6749 error_description), and fit. */
static void test_reason_safe(void **state)
{
    static const char *const in[] = {"%22%5C%C3%A9%0A=1&%22%5C%C3%A9%0A=2", "x%27%22=%ZZ"};
    for (size_t i = 0; i < 2; i++) {
        json_t *obj;
        char why[128];
        assert_true(form_parse(in[i], strlen(in[i]), &obj, why, sizeof why) < 0);
        assert_true(why[0] != '\0');
        for (const char *p = why; *p != '\0'; p++)
            assert_true(*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\');
        char tiny[8];
        assert_true(form_parse(in[i], strlen(in[i]), &obj, tiny, sizeof tiny) < 0);
        assert_true(strlen(tiny) < sizeof tiny);
    }
}

static void test_encode(void **state)
{
    static const char *const cases[][2] = {
        {"", ""},
        {"abcXYZ019-._~", "abcXYZ019-._~"},
        {"a b", "a%20b"},
        {"a+b&c=d%e", "a%2Bb%26c%3Dd%25e"},
        {"http://127.0.0.1:8080/cb?x=1#f", "http%3A%2F%2F127.0.0.1%3A8080%2Fcb%3Fx%3D1%23f"},
        {"\xc3\xa9", "%C3%A9"},
        {"*'()!", "%2A%27%28%29%21"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *e = form_encode(cases[i][0]);
        assert_string_equal(e, cases[i][1]);
        free(e);
    }
}

static void test_roundtrip(void **state)
{
    static const char *const values[] = {
        "",
        "plain",
        "two words  and three   spaces ",
        "a&b=c+d%20e%",
        "100% sure = yes & no",
        "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87",
        "line1\r\nline2\ttab",
        "http://localhost:3000/callback?state=a+b&x=%41",
        "~!@#$^*()[]{}|\\;:'\",<.>/?`",
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char *k = form_encode("k e&y=");
        char *v = form_encode(values[i]);
        size_t n = strlen(k) + strlen(v) + 16;
        char *body = malloc(n);
        snprintf(body, n, "%s=%s&z", k, v);
        json_t *obj;
        char why[128];
        assert_int_equal(form_parse(body, strlen(body), &obj, why, sizeof why), 0);
        assert_string_equal(json_string_value(json_object_get(obj, "k e&y=")), values[i]);
        assert_string_equal(json_string_value(json_object_get(obj, "z")), "");
        json_decref(obj);
        free(body);
        free(k);
        free(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),    cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_parse_len),   cmocka_unit_test(test_parse_caps),
        cmocka_unit_test(test_reason_safe), cmocka_unit_test(test_encode),
        cmocka_unit_test(test_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
