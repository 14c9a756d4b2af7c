/* oauth/device.c: user codes as people type them (RFC 8628 6.1: case-insensitive, dashes and
 * spaces ignored), and how they are shown. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <string.h>

#include "oauth/oauth_int.h"

static void test_normalize_table(void **state)
{
    static const struct {
        const char *in;
        const char *out; /* NULL: refused */
    } t[] = {
        {"BCDF-GHJK", "BCDFGHJK"},
        {"bcdf-ghjk", "BCDFGHJK"},
        {"BcDfGhJk", "BCDFGHJK"},
        {" bcdf ghjk ", "BCDFGHJK"},
        {"B-C-D-F-G-H-J-K", "BCDFGHJK"},
        {"--ZZZZ--XXXX--", "ZZZZXXXX"},
        {"LMNP QRST", "LMNPQRST"},
        {"VWXZ-BCDF", "VWXZBCDF"},
        /* wrong length */
        {"", NULL},
        {"-", NULL},
        {"BCDF-GHJ", NULL},
        {"BCDF-GHJKL", NULL},
        /* letters outside the alphabet: vowels, Y, digits */
        {"ACDF-GHJK", NULL},
        {"BCDF-GHJE", NULL},
        {"BCDF-GHJY", NULL},
        {"BCDF-GHJ0", NULL},
        {"BCDF-GHJ1", NULL},
        /* other separators and bytes */
        {"BCDF_GHJK", NULL},
        {"BCDF\tGHJK", NULL},
        {"BCDF.GHJK", NULL},
        {"BCDF\xc3\x9fGHJK", NULL},
        {"BCDF-GHJK\n", NULL},
        {"\xef\xbc\xa2" "CDF-GHJK", NULL}, /* a fullwidth B */
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char out[OAUTH_USER_CODE_LEN + 1];
        int r = oauth_user_code_normalize(t[i].in, out);
        if (t[i].out == NULL) {
            if (r != ERR_INVALID)
                fail_msg("row %zu ('%s'): accepted as '%s'", i, t[i].in, out);
            assert_string_equal(out, "");
        } else {
            if (r != 0)
                fail_msg("row %zu ('%s'): refused", i, t[i].in);
            assert_string_equal(out, t[i].out);
        }
    }
}

static void test_normalize_limits(void **state)
{
    char out[OAUTH_USER_CODE_LEN + 1];
    assert_int_equal(oauth_user_code_normalize(NULL, out), ERR_INVALID);
    /* Padding is allowed up to the input cap, not past it. */
    char in[OAUTH_USER_CODE_INPUT_MAX + 2];
    memset(in, ' ', sizeof(in));
    memcpy(in, "BCDFGHJK", 8);
    in[OAUTH_USER_CODE_INPUT_MAX] = '\0';
    assert_int_equal(oauth_user_code_normalize(in, out), 0);
    assert_string_equal(out, "BCDFGHJK");
    in[OAUTH_USER_CODE_INPUT_MAX] = ' ';
    in[OAUTH_USER_CODE_INPUT_MAX + 1] = '\0';
    assert_int_equal(oauth_user_code_normalize(in, out), ERR_INVALID);
}

static void test_format(void **state)
{
    char shown[OAUTH_USER_CODE_LEN + 2], again[OAUTH_USER_CODE_LEN + 1];
    oauth_user_code_format("BCDFGHJK", shown);
    assert_string_equal(shown, "BCDF-GHJK");
    assert_int_equal(oauth_user_code_normalize(shown, again), 0);
    assert_string_equal(again, "BCDFGHJK");
    /* The alphabet (RFC 8628 6.1's): 20 consonants; no vowels, so no words and no O or I to
     * read as 0 or 1. */
    assert_int_equal(strlen(OAUTH_USER_CODE_ALPHABET), 20);
    assert_null(strpbrk(OAUTH_USER_CODE_ALPHABET, "AEIOUY01"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_table),
        cmocka_unit_test(test_normalize_limits),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
