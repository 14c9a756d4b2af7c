/* The gateway's names for resources two upstreams offer (gateway/resources.c): the namespaced
 * form, its inverse for templates, and the plan that leaves no two offers under one URI
 * whatever the order the upstreams answered in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "gateway/gw_int.h"

static void expect_ns(const char *name, const char *uri, const char *want)
{
    char *got = gw_ns_uri(name, uri);
    if (strcmp(got, want) != 0)
        fail_msg("%s from %s: got %s, want %s", uri, name, got, want);
    free(got);
}

static void test_form(void **state)
{
    (void)state;
    expect_ns("left", "demo://doc/a", "demo://left/doc/a");
    expect_ns("left", "file:///tmp/x", "file:///left/tmp/x");
    expect_ns("left", "urn:isbn:1", "urn:left/isbn:1");
    expect_ns("ui-1", "ui://widget.html", "ui://ui-1/widget.html");
    expect_ns("a_b", "git+ssh://h/r", "git+ssh://a_b/h/r");
    expect_ns("left", "demo://t/{id}", "demo://left/t/{id}");
    /* no scheme (not a URI, or a template starting with a variable): a prefix of ours */
    expect_ns("left", "{+path}", "mcpgate:~left/{+path}");
    expect_ns("left", "9p://x", "mcpgate:~left/9p://x");
    expect_ns("left", "", "mcpgate:~left/");
    /* ... never the namespaced form of a URI of the scheme "mcpgate" */
    expect_ns("left", "mcpgate:{+path}", "mcpgate:left/{+path}");
}

static void expect_strip(const char *name, const char *tpl, const char *uri, const char *want)
{
    char *got = gw_ns_strip(name, tpl, uri);
    if (want == NULL) {
        if (got != NULL)
            fail_msg("%s against %s: got %s, want none", uri, tpl, got);
        return;
    }
    if (got == NULL || strcmp(got, want) != 0)
        fail_msg("%s against %s: got %s, want %s", uri, tpl, got ? got : "(none)", want);
    free(got);
}

static void test_strip(void **state)
{
    (void)state;
    expect_strip("left", "demo://t/{id}", "demo://left/t/7", "demo://t/7");
    expect_strip("left", "file:///{+path}", "file:///left/a/b", "file:///a/b");
    expect_strip("left", "{+path}", "mcpgate:~left/x/y", "x/y");
    expect_strip("left", "{+path}", "mcpgate:left/x/y", NULL);
    expect_strip("left", "urn:{id}", "urn:left/42", "urn:42");
    /* not the namespaced form of that template: refused, not guessed */
    expect_strip("left", "demo://t/{id}", "demo://right/t/7", NULL);
    expect_strip("left", "demo://t/{id}", "demo://t/7", NULL);
    expect_strip("left", "demo://t/{id}", "demo:/", NULL);
    expect_strip("left", "demo://t/{id}", "", NULL);
}

static json_t *plan_of(const char *offers_json)
{
    json_error_t e;
    json_t *offers = json_loads(offers_json, 0, &e);
    assert_non_null(offers);
    json_t *plan = gw_ns_plan(offers);
    json_decref(offers);
    return plan;
}

static void expect_plan(const char *offers_json, const char *want_json)
{
    json_t *plan = plan_of(offers_json);
    json_t *want = json_loads(want_json, 0, NULL);
    assert_non_null(want);
    if (!json_equal(plan, want)) {
        char *got = json_dumps(plan, JSON_COMPACT | JSON_SORT_KEYS);
        fail_msg("offers %s: got %s, want %s", offers_json, got, want_json);
    }
    json_decref(plan);
    json_decref(want);
}

static void test_plan(void **state)
{
    (void)state;
    /* nothing shared: every URI stays as the upstream wrote it */
    expect_plan("{\"a\": [\"x://1\", \"x://2\"], \"b\": [\"y://1\"]}", "{\"a\": {}, \"b\": {}}");
    /* shared: every offer of it carries its name, the others do not */
    expect_plan("{\"a\": [\"x://1\", \"x://2\"], \"b\": [\"x://1\"]}",
                "{\"a\": {\"x://1\": \"x://a/1\"}, \"b\": {\"x://1\": \"x://b/1\"}}");
    /* listed twice by one upstream: still one offer */
    expect_plan("{\"a\": [\"x://1\", \"x://1\"], \"b\": []}", "{\"a\": {}, \"b\": {}}");
    /* a namespaced form equal to another's plain URI: that one is namespaced too, and so on */
    expect_plan("{\"a\": [\"x://1\"], \"b\": [\"x://1\"], \"c\": [\"x://a/1\"], "
                "\"d\": [\"x://c/a/1\"]}",
                "{\"a\": {\"x://1\": \"x://a/1\"}, \"b\": {\"x://1\": \"x://b/1\"}, "
                "\"c\": {\"x://a/1\": \"x://c/a/1\"}, \"d\": {\"x://c/a/1\": \"x://d/c/a/1\"}}");
    /* the same upstream offering a URI and, plainly, the namespaced form of it */
    expect_plan("{\"a\": [\"x://1\", \"x://a/1\"], \"b\": [\"x://1\"]}",
                "{\"a\": {\"x://1\": \"x://a/1\", \"x://a/1\": \"x://a/a/1\"}, "
                "\"b\": {\"x://1\": \"x://b/1\"}}");
}

/* Whatever the order the upstreams are listed in, the same names; and never two offers under
 * one exposed URI. */
static void test_plan_order_and_uniqueness(void **state)
{
    (void)state;
    static const char *const ups[] = {"a", "b", "c", "d"};
    static const char *const uris[] = {"x://1", "x://a/1", "x://b/1", "x://c/a/1", "y:z",
                                       "y:a/z", "x://2", "{+p}", "mcpgate:{+p}"};
    const int nuris = (int)(sizeof uris / sizeof *uris);
    unsigned seed = 12345;
    for (int round = 0; round < 300; round++) {
        json_t *fwd = json_object(), *rev = json_object();
        json_t *lists[4];
        for (int k = 0; k < 4; k++) {
            lists[k] = json_array();
            for (int i = 0; i < nuris; i++) {
                seed = seed * 1103515245u + 12345u;
                if ((seed >> 16) % 3 == 0)
                    json_array_append_new(lists[k], json_string(uris[i]));
            }
        }
        for (int k = 0; k < 4; k++)
            json_object_set(fwd, ups[k], lists[k]);
        for (int k = 3; k >= 0; k--)
            json_object_set(rev, ups[k], lists[k]);
        json_t *p1 = gw_ns_plan(fwd), *p2 = gw_ns_plan(rev);
        assert_true(json_equal(p1, p2));
        json_t *seen = json_object();
        for (int k = 0; k < 4; k++) {
            size_t i;
            json_t *v;
            json_array_foreach (lists[k], i, v) {
                const char *x = json_string_value(
                    json_object_get(json_object_get(p1, ups[k]), json_string_value(v)));
                const char *exposed = x != NULL ? x : json_string_value(v);
                char who[64];
                snprintf(who, sizeof who, "%s %s", ups[k], json_string_value(v));
                const char *had = json_string_value(json_object_get(seen, exposed));
                if (had != NULL && strcmp(had, who) != 0)
                    fail_msg("%s exposed for %s and %s", exposed, had, who);
                json_object_set_new(seen, exposed, json_string(who));
            }
        }
        json_decref(seen);
        json_decref(p1);
        json_decref(p2);
        json_decref(fwd);
        json_decref(rev);
        for (int k = 0; k < 4; k++)
            json_decref(lists[k]);
    }
}

int main(void)
{
    log_set_level(LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form),
        cmocka_unit_test(test_strip),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_plan_order_and_uniqueness),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
