/* client/http: the URL policy applied before any request. Absolute http(s) URLs of printable
 * ASCII without userinfo; plain http only to a loopback host (127.0.0.0/8, ::1, localhost)
 * unless allow_http. The loopback test must agree with the address libcurl will connect to. */
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

#include "client/http.h"

struct url_case {
    const char *url;
    bool ok;       /* hc_url_check without allow_http */
    bool ok_http;  /* with allow_http */
    bool loopback; /* hc_url_is_loopback */
};

static const struct url_case url_cases[] = {
    /* https anywhere */
    {"https://mcp.example.com/mcp", true, true, false},
    {"HTTPS://MCP.EXAMPLE.COM/MCP", true, true, false},
    {"https://mcp.example.com", true, true, false},
    {"https://mcp.example.com:8443/mcp?x=1&y=%20#frag", true, true, false},
    {"https://[2001:db8::1]:443/mcp", true, true, false},
    {"https://xn--caf-dma.example/", true, true, false},
    {"https://127.0.0.1/", true, true, true},
    {"https://localhost:8443/mcp", true, true, true},
    /* plain http to loopback */
    {"http://127.0.0.1:3000/mcp", true, true, true},
    {"http://127.0.0.1", true, true, true},
    {"http://127.0.0.1?x=1", true, true, true},
    {"http://127.0.0.1#f", true, true, true},
    {"http://127.1.2.3/", true, true, true},
    {"http://127.255.255.255:1/", true, true, true},
    {"http://127.0.0.0/", true, true, true},
    {"http://localhost:8080/mcp", true, true, true},
    {"http://LocalHost/", true, true, true},
    {"Http://localhost/", true, true, true},
    {"http://[::1]:8080/mcp", true, true, true},
    {"http://[::1]/", true, true, true},
    /* plain http elsewhere: only with allow_http */
    {"http://mcp.example.com/mcp", false, true, false},
    {"http://10.0.0.1:8080/", false, true, false},
    {"http://0.0.0.0:8080/", false, true, false},
    {"http://128.0.0.1/", false, true, false},
    {"http://126.255.255.255/", false, true, false},
    {"http://127.0.0.256/", false, true, false},
    {"http://127.0.0.1.nip.io/", false, true, false},
    {"http://127.0.0.1.example.com:80/", false, true, false},
    {"http://localhost.example.com/", false, true, false},
    {"http://localhostx/", false, true, false},
    {"http://[::2]/", false, true, false},
    {"http://[fe80::1]/", false, true, false},
    {"http://[2001:db8::1]/", false, true, false},
    /* userinfo: never (it hides the real host from a reader) */
    {"https://user@mcp.example.com/", false, false, false},
    {"https://user:pass@mcp.example.com/", false, false, false},
    {"https://@mcp.example.com/", false, false, false},
    {"http://evil.example@127.0.0.1/", false, false, false},
    {"http://127.0.0.1@evil.example/", false, false, false},
    {"http://127.0.0.1:80@evil.example/", false, false, false},
    {"http://127.0.0.1\\@evil.example/", false, false, false},
    /* spaces, controls, non-ASCII */
    {"https://mcp.example.com/a b", false, false, false},
    {" https://mcp.example.com/", false, false, false},
    {"https://mcp.example.com/\t", false, false, false},
    {"https://mcp.example.com/\r\nX-Evil: 1", false, false, false},
    {"https://mcp.example.com/\x7f", false, false, false},
    {"https://caf\xc3\xa9.example/", false, false, false},
    {"http://127.0.0.1/caf\xc3\xa9", false, false, true},
    /* not absolute http(s) */
    {"", false, false, false},
    {"/mcp", false, false, false},
    {"mcp.example.com/mcp", false, false, false},
    {"127.0.0.1:8080", false, false, false},
    {"//mcp.example.com/mcp", false, false, false},
    {"ftp://mcp.example.com/", false, false, false},
    {"file:///etc/passwd", false, false, false},
    {"ws://127.0.0.1/", false, false, false},
    {"javascript:alert(1)", false, false, false},
    {"https:/mcp.example.com", false, false, false},
    {"https:mcp.example.com", false, false, false},
    {"https://", false, false, false},
    {"https:///mcp", false, false, false},
    {"https://?x", false, false, false},
    {"http://:8080/", false, false, false},
    {"http://[::1/", false, false, false},
    {"http://[]/", false, false, false},
};

static void test_url_table(void **state)
{
    (void)state;
    struct hc_opts strict = {0}, lax = {.allow_http = true};
    for (size_t i = 0; i < sizeof url_cases / sizeof url_cases[0]; i++) {
        const struct url_case *c = &url_cases[i];
        char why[300] = "";
        int r = hc_url_check(&strict, c->url, why, sizeof why);
        if ((r == 0) != c->ok)
            fail_msg("case %zu '%s': rc %d (%s), want %s", i, c->url, r, why,
                     c->ok ? "ok" : "refused");
        if (r != 0) {
            assert_int_equal(r, ERR_INVALID);
            if (why[0] == '\0')
                fail_msg("case %zu: no reason given", i);
        }
        /* no options is the strict policy */
        assert_int_equal(hc_url_check(NULL, c->url, why, sizeof why), r);
        why[0] = '\0';
        r = hc_url_check(&lax, c->url, why, sizeof why);
        if ((r == 0) != c->ok_http)
            fail_msg("case %zu '%s' with allow_http: rc %d (%s), want %s", i, c->url, r, why,
                     c->ok_http ? "ok" : "refused");
        if (hc_url_is_loopback(c->url) != c->loopback)
            fail_msg("case %zu '%s': loopback %d, want %d", i, c->url, !c->loopback, c->loopback);
    }
}

/* The reason quotes the URL safely (no control bytes reach a terminal) and briefly. */
static void test_url_reasons(void **state)
{
    (void)state;
    char why[300];
    assert_int_equal(hc_url_check(NULL, "http://mcp.example.com/", why, sizeof why), ERR_INVALID);
    assert_non_null(strstr(why, "mcp.example.com"));
    assert_non_null(strstr(why, "allow-http"));
    assert_int_equal(hc_url_check(NULL, "https://x/\x1b[31mred\r\n", why, sizeof why), ERR_INVALID);
    for (const char *p = why; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            fail_msg("control byte 0x%02x in the reason '%s'", (unsigned char)*p, why);
    /* a small buffer is filled, not overrun */
    char tiny[8];
    assert_int_equal(hc_url_check(NULL, "ftp://x", tiny, sizeof tiny), ERR_INVALID);
    assert_true(strlen(tiny) < sizeof tiny);
}

/* The length cap: 8192 bytes are fine, one more is not. */
static void test_url_length(void **state)
{
    (void)state;
    char *u = malloc(8194);
    assert_non_null(u);
    memcpy(u, "https://mcp.example.com/", 24);
    memset(u + 24, 'a', 8192 - 24);
    u[8192] = '\0';
    char why[300];
    assert_int_equal(hc_url_check(NULL, u, why, sizeof why), 0);
    u[8192] = 'a';
    u[8193] = '\0';
    assert_int_equal(hc_url_check(NULL, u, why, sizeof why), ERR_INVALID);
    /* a host name longer than any real one */
    memcpy(u, "https://", 8);
    memset(u + 8, 'h', 400);
    u[408] = '\0';
    assert_int_equal(hc_url_check(NULL, u, why, sizeof why), ERR_INVALID);
    assert_false(hc_url_is_loopback(u));
    free(u);
}

/* Numeric hosts that are not 127.0.0.0/8 the way libcurl reads them. libcurl (7.88 here)
 * normalizes IPv4 hosts like a browser: "0127.0.0.1" is octal, 87.0.0.1, so plain http to it
 * leaves the machine; a part past 255 makes the host a DNS name. */
static const char *const not_loopback[] = {
    "http://0127.0.0.1/",         "http://00127.0.0.1:8080/mcp", "http://0127.0.0.01/",
    "http://127.0.0.4294967297/", "http://+127.0.0.1/",          "http://127.0.0.+1/",
};

static void test_url_numeric_hosts(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof not_loopback / sizeof not_loopback[0]; i++) {
        char why[300] = "";
        if (hc_url_is_loopback(not_loopback[i])) {
            print_error("'%s' is taken for loopback\n", not_loopback[i]);
            bad++;
        }
        if (hc_url_check(NULL, not_loopback[i], why, sizeof why) == 0) {
            print_error("'%s' passes as plain http to loopback\n", not_loopback[i]);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_table),
        cmocka_unit_test(test_url_reasons),
        cmocka_unit_test(test_url_length),
        cmocka_unit_test(test_url_numeric_hosts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
