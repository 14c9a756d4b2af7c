/* client/proxy: --ignore-tool globs (fnmatch, case-insensitive: '*', '?' and brackets) and the
 * filtering of a tools/list result by them. */
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

#include "client/proxy.h"

struct glob_case {
    const char *globs; /* JSON array */
    const char *name;
    bool ignored;
};

static const struct glob_case glob_cases[] = {
    /* exact names, in any case */
    {"[\"delete_repo\"]", "delete_repo", true},
    {"[\"delete_repo\"]", "DELETE_REPO", true},
    {"[\"Delete_Repo\"]", "delete_repo", true},
    {"[\"delete_repo\"]", "delete_repos", false},
    {"[\"delete_repo\"]", "delete_rep", false},
    {"[\"delete_repo\"]", "xdelete_repo", false},
    {"[\"delete_repo\"]", "", false},
    /* '*' */
    {"[\"delete_*\"]", "delete_repo", true},
    {"[\"delete_*\"]", "delete_", true},
    {"[\"delete_*\"]", "Delete_File", true},
    {"[\"delete_*\"]", "undelete_repo", false},
    {"[\"*_admin\"]", "github_admin", true},
    {"[\"*_admin\"]", "github_admin_x", false},
    {"[\"*write*\"]", "files.WriteFile", true},
    {"[\"*\"]", "anything", true},
    {"[\"*\"]", "", true},
    /* '?' is one character */
    {"[\"get_?\"]", "get_a", true},
    {"[\"get_?\"]", "get_", false},
    {"[\"get_?\"]", "get_ab", false},
    /* brackets, with case folding */
    {"[\"[a-c]_tool\"]", "b_tool", true},
    {"[\"[a-c]_tool\"]", "B_tool", true},
    {"[\"[a-c]_tool\"]", "d_tool", false},
    {"[\"[!a]*\"]", "abc", false},
    {"[\"[!a]*\"]", "bc", true},
    /* names with slashes, dots and dashes are plain characters ('*' crosses '/') */
    {"[\"fs/*\"]", "fs/read/deep", true},
    {"[\"fs.*\"]", "fs.read", true},
    {"[\"fs.*\"]", "fsxread", false},
    {"[\"my-tool\"]", "MY-TOOL", true},
    /* an escaped metacharacter is literal */
    {"[\"a\\\\*\"]", "a*", true},
    {"[\"a\\\\*\"]", "ab", false},
    /* UTF-8 names ('?' against a multibyte character depends on the locale: not tested) */
    {"[\"caf\xc3\xa9\"]", "caf\xc3\xa9", true},
    {"[\"caf*\"]", "caf\xc3\xa9", true},
    /* several globs: any one */
    {"[\"a\",\"b*\",\"c\"]", "beta", true},
    {"[\"a\",\"b*\",\"c\"]", "c", true},
    {"[\"a\",\"b*\",\"c\"]", "delta", false},
    /* non-strings are skipped; empty, non-array lists ignore nothing */
    {"[1, null, {\"g\":\"*\"}, \"x\"]", "x", true},
    {"[1, null, {\"g\":\"*\"}, \"x\"]", "y", false},
    {"[]", "x", false},
    {"{\"a\":\"*\"}", "x", false},
    {"\"*\"", "x", false},
    {"[\"\"]", "", true},
    {"[\"\"]", "x", false},
};

static void test_globs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof glob_cases / sizeof glob_cases[0]; i++) {
        json_error_t e;
        json_t *g = json_loads(glob_cases[i].globs, JSON_DECODE_ANY, &e);
        if (g == NULL)
            fail_msg("case %zu: bad JSON: %s", i, e.text);
        bool got = proxy_tool_ignored(g, glob_cases[i].name);
        if (got != glob_cases[i].ignored)
            fail_msg("case %zu: '%s' against %s: %d, want %d", i, glob_cases[i].name,
                     glob_cases[i].globs, got, glob_cases[i].ignored);
        assert_false(proxy_tool_ignored(g, NULL));
        json_decref(g);
    }
    assert_false(proxy_tool_ignored(NULL, "x"));
    assert_false(proxy_tool_ignored(NULL, NULL));
}

struct filter_case {
    const char *globs; /* JSON or NULL */
    const char *tools; /* JSON */
    const char *want;  /* JSON */
};

#define T(n) "{\"name\":\"" n "\",\"inputSchema\":{\"type\":\"object\"}}"

static const struct filter_case filter_cases[] = {
    {"[\"delete_*\"]", "[" T("read") "," T("delete_a") "," T("DELETE_b") "," T("write") "]",
     "[" T("read") "," T("write") "]"},
    /* consecutive matches, first and last */
    {"[\"x*\"]", "[" T("x1") "," T("x2") "," T("a") "," T("x3") "," T("x4") "]", "[" T("a") "]"},
    {"[\"*\"]", "[" T("a") "," T("b") "]", "[]"},
    {"[\"zzz\"]", "[" T("a") "," T("b") "]", "[" T("a") "," T("b") "]"},
    {"[]", "[" T("a") "]", "[" T("a") "]"},
    {NULL, "[" T("a") "]", "[" T("a") "]"},
    {"[\"a\"]", "[]", "[]"},
    /* entries without a string name are kept (the server's problem, not a match) */
    {"[\"*\"]", "[{\"title\":\"no name\"},{\"name\":5}, 7, " T("gone") "]",
     "[{\"title\":\"no name\"},{\"name\":5}, 7]"},
    /* not an array: untouched */
    {"[\"*\"]", "{\"name\":\"a\"}", "{\"name\":\"a\"}"},
};

static void test_filter(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof filter_cases / sizeof filter_cases[0]; i++) {
        const struct filter_case *c = &filter_cases[i];
        json_t *g = c->globs != NULL ? json_loads(c->globs, 0, NULL) : NULL;
        json_t *tools = json_loads(c->tools, 0, NULL), *want = json_loads(c->want, 0, NULL);
        assert_non_null(tools);
        assert_non_null(want);
        proxy_filter_tools(g, tools);
        if (!json_equal(tools, want)) {
            char *s = json_dumps(tools, JSON_COMPACT);
            fail_msg("case %zu: %s, want %s", i, s, c->want);
        }
        json_decref(g);
        json_decref(tools);
        json_decref(want);
    }
    proxy_filter_tools(NULL, NULL);
    json_t *g = json_loads("[\"*\"]", 0, NULL);
    proxy_filter_tools(g, NULL);
    json_decref(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_globs),
        cmocka_unit_test(test_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
