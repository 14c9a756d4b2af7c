/* oauth/html: every page renders as a whole document, caller-supplied text is always escaped,
 * and the consent page carries what the authorize endpoint needs back. With MCPGATE_HTML_DUMP
 * set to a directory, the sample pages are also written there for a look in a browser. */
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

#include "oauth/html.h"

#define XSS_SCRIPT "<script>alert(1)</script>"
#define XSS_IMG "\"><img src=x onerror=alert(1)>"
#define XSS_ATTR "' onmouseover='x"

static const char *const payloads[] = {XSS_SCRIPT, XSS_IMG, XSS_ATTR, XSS_SCRIPT XSS_IMG XSS_ATTR};

static void dump(const char *name, const char *doc)
{
    const char *dir = getenv("MCPGATE_HTML_DUMP");
    if (dir == NULL || doc == NULL)
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/%s.html", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return;
    fputs(doc, f);
    fclose(f);
}

static size_t count(const char *doc, const char *needle)
{
    size_t n = 0;
    for (const char *p = doc; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void assert_document(const char *doc)
{
    assert_non_null(doc);
    assert_true(strncmp(doc, "<!DOCTYPE html>\n<html lang=\"en\">", 32) == 0);
    assert_non_null(strstr(doc, "<meta charset=\"utf-8\">"));
    assert_non_null(strstr(doc, "<meta name=\"viewport\""));
    assert_non_null(strstr(doc, "<style>"));
    assert_non_null(strstr(doc, "</html>\n"));
    /* Nothing external, no script. */
    assert_null(strstr(doc, "<script"));
    assert_null(strstr(doc, "<link"));
    assert_null(strstr(doc, "url("));
    assert_null(strstr(doc, "@import"));
}

/* The payload left no markup behind: no tag or attribute it tried to open exists, and any
 * "onerror=" is text: after the escaped start of the payload, or starting an element's text. */
static void assert_no_injection(const char *doc)
{
    assert_non_null(doc);
    assert_null(strstr(doc, "<script"));
    assert_null(strstr(doc, "<img src=x"));
    assert_null(strstr(doc, "' onmouseover"));
    assert_null(strstr(doc, "\" onmouseover"));
    for (const char *p = doc; (p = strstr(p, "onerror=")) != NULL; p++) {
        static const char img[] = "&lt;img src=x ", quot[] = "&quot;";
        size_t at = (size_t)(p - doc);
        bool text =
            (at >= sizeof img - 1 && memcmp(p - (sizeof img - 1), img, sizeof img - 1) == 0) ||
            (at >= sizeof quot - 1 && memcmp(p - (sizeof quot - 1), quot, sizeof quot - 1) == 0) ||
            (at > 0 && p[-1] == '>'); /* the start of a text node (a scope split at spaces) */
        if (!text)
            fail_msg("unescaped onerror= at offset %zu: %.60s", at, p - 30);
    }
}

/* Escaping must not change the document's structure: the same page filled with a harmless
 * word has exactly as many markup characters. */
static void assert_same_markup(const char *benign, const char *hostile)
{
    static const char *const marks[] = {"<", ">", "\"", "'"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        size_t a = count(benign, marks[i]), b = count(hostile, marks[i]);
        if (a != b)
            fail_msg("'%s' occurs %zu times with benign input, %zu with a payload", marks[i], a, b);
    }
}

static json_t *scopes_of(const char *name, const char *desc)
{
    return json_pack("[{s:s, s:s}, {s:s, s:s}]", "name", name, "description", desc, "name",
                     "tools:call", "description", desc);
}

static json_t *grants_of(const char *s)
{
    return json_pack("[{s:s, s:s, s:s, s:s, s:i}, {s:i, s:s, s:s, s:i}]", "grant_id", s,
                     "client_name", s, "client_id", s, "scope", s, "created_at", 1700000000,
                     "grant_id", 42, "client_id", s, "scope", s, "created_at", 1);
}

static char *login_with(const char *s)
{
    struct html_login p = {.server_name = s,
                           .action = s,
                           .csrf = s,
                           .continue_to = s,
                           .error = s,
                           .username = s,
                           .client_name = s};
    return html_login_page(&p);
}

static char *consent_with(const char *s, const char *logo)
{
    json_t *scopes = scopes_of(s, s);
    struct html_consent p = {.server_name = s,
                             .action = s,
                             .csrf = s,
                             .request_id = s,
                             .username = s,
                             .client_name = s,
                             .client_id = s,
                             .logo_uri = logo,
                             .client_uri = s,
                             .redirect_host = s,
                             .loopback_redirect = true,
                             .unverified = true,
                             .scopes = scopes,
                             .resource = s,
                             .user_code = s};
    char *doc = html_consent_page(&p);
    json_decref(scopes);
    return doc;
}

static char *device_with(const char *s)
{
    struct html_device p = {.server_name = s,
                            .action = s,
                            .csrf = s,
                            .username = s,
                            .user_code = s,
                            .error = s,
                            .locked = false};
    return html_device_page(&p);
}

static char *apps_with(const char *s)
{
    json_t *grants = grants_of(s);
    struct html_apps p = {
        .server_name = s, .action = s, .csrf = s, .username = s, .grants = grants, .notice = s};
    char *doc = html_apps_page(&p);
    json_decref(grants);
    return doc;
}

static void test_escape(void **state)
{
    char *e = html_escape("a&b<c>d\"e'f\xc3\xa9");
    assert_string_equal(e, "a&amp;b&lt;c&gt;d&quot;e&#39;f\xc3\xa9");
    free(e);
    e = html_escape("");
    assert_string_equal(e, "");
    free(e);
    e = html_escape("&amp;");
    assert_string_equal(e, "&amp;amp;");
    free(e);
}

/* Every field of every page gets each payload. */
/* The renderings compared: every page, with the consent page twice (a quote-breaking https
 * logo, and a logo holding the payload, dropped when it has spaces). */
#define PAGES 7
static void render_all(const char *s, const char *quote_logo, char *doc[PAGES])
{
    char logo[256];
    snprintf(logo, sizeof logo, "https://logo.example/%s", s);
    doc[0] = login_with(s);
    doc[1] = consent_with(s, quote_logo);
    doc[2] = apps_with(s);
    doc[3] = html_error_page(s, s, s);
    doc[4] = html_done_page(s, s);
    doc[5] = consent_with(s, logo);
    doc[6] = device_with(s);
}

/* Every field of every page gets each payload; the same pages filled with a look-alike whose
 * markup characters are letters must have the same markup. */
static void test_xss(void **state)
{
    for (size_t k = 0; k < sizeof payloads / sizeof payloads[0]; k++) {
        char *doc[PAGES], *benign[PAGES];
        char *look = strdup(payloads[k]);
        for (char *c = look; *c != '\0'; c++)
            if (strchr("<>\"'&", *c) != NULL)
                *c = 'q';
        render_all(payloads[k], "https://logo.example/\"onerror=\"alert(1)", doc);
        render_all(look, "https://logo.example/qonerror=qalert(1)", benign);
        for (size_t i = 0; i < PAGES; i++) {
            assert_document(benign[i]);
            assert_document(doc[i]);
            assert_no_injection(doc[i]);
            assert_null(strstr(doc[i], "\"onerror=\""));
            assert_same_markup(benign[i], doc[i]);
            free(doc[i]);
            free(benign[i]);
        }
        free(look);
    }
}

static void test_login(void **state)
{
    struct html_login p = {.server_name = "mcpgate",
                           .action = "/login",
                           .csrf = "CSRF123",
                           .continue_to = "/authorize?client_id=a&redirect_uri=x\"><script>",
                           .error = NULL,
                           .username = NULL,
                           .client_name = NULL};
    char *doc = html_login_page(&p);
    assert_document(doc);
    assert_non_null(strstr(doc, "<form method=\"post\" action=\"/login\">"));
    assert_non_null(strstr(doc, "name=\"csrf\" value=\"CSRF123\""));
    assert_non_null(strstr(doc, "name=\"continue\" "
                                "value=\"/authorize?client_id=a&amp;redirect_uri=x&quot;&gt;"
                                "&lt;script&gt;\""));
    assert_non_null(strstr(doc, "autocomplete=\"username\""));
    assert_non_null(strstr(doc, "autocomplete=\"current-password\""));
    assert_non_null(strstr(doc, "<label for=\"username\">"));
    assert_non_null(strstr(doc, "<label for=\"password\">"));
    assert_non_null(strstr(doc, ">Sign in</button>"));
    assert_null(strstr(doc, "role=\"alert\""));
    assert_null(strstr(doc, "to continue to"));
    free(doc);

    p.error = "Wrong username or password.";
    p.username = "alice";
    p.client_name = "Claude";
    doc = html_login_page(&p);
    dump("login", doc);
    assert_document(doc);
    assert_non_null(strstr(doc, "role=\"alert\">Wrong username or password.</div>"));
    assert_non_null(strstr(doc, "value=\"alice\""));
    assert_non_null(strstr(doc, "Sign in to continue to <span class=\"hl\">Claude</span>"));
    free(doc);
}

static void test_consent(void **state)
{
    json_t *scopes = json_pack("[{s:s, s:s}, {s:s, s:s}]", "name", "tools:read", "description",
                               "See the list of tools and what they do", "name", "tools:call",
                               "description", "Run tools on your behalf");
    struct html_consent p = {.server_name = "mcpgate",
                             .action = "/authorize/consent",
                             .csrf = "CSRF123",
                             .request_id = "REQ456",
                             .username = "alice@example.com",
                             .client_name = "Claude Code",
                             .client_id = "c_8f3a2b",
                             .logo_uri = NULL,
                             .client_uri = "https://claude.ai",
                             .redirect_host = "localhost:33418",
                             .loopback_redirect = false,
                             .unverified = false,
                             .scopes = scopes,
                             .resource = "https://mcp.example.com/mcp"};
    char *doc = html_consent_page(&p);
    assert_document(doc);
    assert_non_null(strstr(doc, "<form method=\"post\" action=\"/authorize/consent\">"));
    assert_non_null(strstr(doc, "name=\"decision\" value=\"approve\""));
    assert_non_null(strstr(doc, "name=\"decision\" value=\"deny\""));
    assert_int_equal(count(doc, "type=\"submit\""), 2);
    assert_non_null(strstr(doc, "type=\"hidden\" name=\"csrf\" value=\"CSRF123\""));
    assert_non_null(strstr(doc, "type=\"hidden\" name=\"request\" value=\"REQ456\""));
    assert_non_null(strstr(doc, "Claude Code"));
    assert_non_null(strstr(doc, "wants to access <span class=\"hl\">"
                                "https://mcp.example.com/mcp</span> on your behalf"));
    assert_non_null(strstr(doc, "alice@example.com"));
    assert_non_null(strstr(doc, "tools:read"));
    assert_non_null(strstr(doc, "Run tools on your behalf"));
    assert_non_null(strstr(doc, "localhost:33418"));
    assert_null(strstr(doc, "only continue if you started it yourself"));
    assert_null(strstr(doc, "has not verified who made it"));
    assert_null(strstr(doc, "<img"));
    assert_null(strstr(doc, "<a "));
    free(doc);

    p.loopback_redirect = true;
    p.unverified = true;
    p.logo_uri = "https://claude.ai/logo.png";
    doc = html_consent_page(&p);
    dump("consent", doc);
    assert_document(doc);
    assert_non_null(strstr(doc, "This app runs on your computer: only continue if you started "
                                "it yourself"));
    assert_non_null(strstr(doc, "This app registered itself; mcpgate has not verified who made "
                                "it"));
    assert_non_null(strstr(doc, "<img class=\"logo\" src=\"https://claude.ai/logo.png\""));
    free(doc);

    /* Only https logos become images. */
    static const char *const bad_logos[] = {
        "javascript:alert(1)",
        "http://claude.ai/logo.png",
        "data:image/png;base64,AAAA",
        "//claude.ai/logo.png",
        "https://",
        "https:///x",
        "https://a b/c",
        "JaVaScRiPt:x",
    };
    for (size_t i = 0; i < sizeof bad_logos / sizeof bad_logos[0]; i++) {
        p.logo_uri = bad_logos[i];
        doc = html_consent_page(&p);
        assert_document(doc);
        if (strstr(doc, "<img") != NULL)
            fail_msg("logo_uri \"%s\" rendered as an image", bad_logos[i]);
        free(doc);
    }

    /* No client_name: the client_id stands in; no scopes still renders. */
    p.client_name = NULL;
    p.logo_uri = NULL;
    p.scopes = NULL;
    doc = html_consent_page(&p);
    assert_document(doc);
    assert_non_null(strstr(doc, "<span class=\"hl\">c_8f3a2b</span> wants to access"));
    free(doc);
    json_decref(scopes);
}

static void test_device(void **state)
{
    struct html_device p = {.server_name = "mcpgate",
                            .action = "/device",
                            .csrf = "CSRF123",
                            .username = "alice",
                            .user_code = "BCDF-GHJK",
                            .error = NULL,
                            .locked = false};
    char *doc = html_device_page(&p);
    dump("device", doc);
    assert_document(doc);
    assert_non_null(strstr(doc, "<form method=\"post\" action=\"/device\">"));
    assert_non_null(strstr(doc, "type=\"hidden\" name=\"csrf\" value=\"CSRF123\""));
    assert_non_null(strstr(doc, "name=\"user_code\" value=\"BCDF-GHJK\""));
    assert_non_null(strstr(doc, "<label for=\"user_code\">"));
    assert_non_null(strstr(doc, "Signed in as <span class=\"hl\">alice</span>"));
    assert_non_null(strstr(doc, "never a code someone sent you"));
    assert_non_null(strstr(doc, ">Continue</button>"));
    assert_null(strstr(doc, "role=\"alert\""));
    free(doc);

    p.user_code = NULL;
    p.error = "That code is not valid, or it has expired.";
    doc = html_device_page(&p);
    assert_document(doc);
    assert_non_null(strstr(doc, "role=\"alert\">That code is not valid, or it has expired.</div>"));
    assert_non_null(strstr(doc, "name=\"user_code\" value=\"\""));
    free(doc);

    /* Locked: the message and no form. */
    p.locked = true;
    p.error = "Too many wrong codes.";
    doc = html_device_page(&p);
    dump("device-locked", doc);
    assert_document(doc);
    assert_non_null(strstr(doc, "Too many wrong codes."));
    assert_null(strstr(doc, "<form"));
    assert_null(strstr(doc, "<input"));
    free(doc);

    /* The consent page of the device flow shows the code to compare. */
    struct html_consent c = {.server_name = "mcpgate",
                             .action = "/device",
                             .csrf = "CSRF123",
                             .request_id = "REQ",
                             .username = "alice",
                             .client_name = "mcpgate",
                             .client_id = "c_1",
                             .unverified = true,
                             .resource = "https://mcp.example.com/mcp",
                             .user_code = "BCDF-GHJK"};
    doc = html_consent_page(&c);
    dump("consent-device", doc);
    assert_document(doc);
    assert_non_null(strstr(doc, "your device shows <span class=\"hl\"><code>BCDF-GHJK</code>"));
    assert_non_null(strstr(doc, "<form method=\"post\" action=\"/device\">"));
    assert_null(strstr(doc, "you will be sent to"));
    free(doc);
    c.user_code = NULL;
    doc = html_consent_page(&c);
    assert_null(strstr(doc, "Check the code"));
    free(doc);
}

static void test_error_done(void **state)
{
    char *doc = html_error_page("mcpgate", "Invalid request",
                                "The redirect_uri is not registered for this client.");
    dump("error", doc);
    assert_document(doc);
    assert_non_null(strstr(doc, "<h1>Invalid request</h1>"));
    assert_non_null(strstr(doc, "The redirect_uri is not registered for this client."));
    /* Nothing clickable. */
    assert_null(strstr(doc, "<a"));
    assert_null(strstr(doc, "<form"));
    assert_null(strstr(doc, "<button"));
    assert_null(strstr(doc, "<input"));
    assert_null(strstr(doc, "<img"));
    free(doc);

    doc = html_done_page("You're signed in", "You can close this window and return to the app.");
    dump("done", doc);
    assert_document(doc);
    assert_non_null(strstr(doc, "You&#39;re signed in"));
    assert_non_null(strstr(doc, "You can close this window"));
    assert_null(strstr(doc, "<a"));
    assert_null(strstr(doc, "<form"));
    free(doc);
}

static void test_apps(void **state)
{
    json_t *grants = json_pack("[{s:s, s:s, s:s, s:s, s:i}, {s:i, s:s, s:s, s:i}]", "grant_id",
                               "g_1", "client_name", "Claude Code", "client_id", "c_1", "scope",
                               "tools:read tools:call", "created_at", 1700000000, "grant_id", 7,
                               "client_id", "c_2", "scope", "", "created_at", 1735689600);
    struct html_apps p = {.server_name = "mcpgate",
                          .action = "/apps/revoke",
                          .csrf = "CSRF123",
                          .username = "alice",
                          .grants = grants,
                          .notice = "Access revoked."};
    char *doc = html_apps_page(&p);
    dump("apps", doc);
    assert_document(doc);
    assert_non_null(strstr(doc, "role=\"status\">Access revoked.</div>"));
    assert_int_equal(count(doc, "<form method=\"post\" action=\"/apps/revoke\">"), 2);
    assert_int_equal(count(doc, "name=\"csrf\" value=\"CSRF123\""), 2);
    assert_int_equal(count(doc, ">Revoke</button>"), 2);
    assert_non_null(strstr(doc, "name=\"grant_id\" value=\"g_1\""));
    assert_non_null(strstr(doc, "name=\"grant_id\" value=\"7\""));
    assert_non_null(strstr(doc, "Claude Code"));
    assert_non_null(strstr(doc, ">c_2</div>")); /* no name: the client_id */
    assert_non_null(strstr(doc, "<span class=\"tag\">tools:read</span>"));
    assert_non_null(strstr(doc, "<span class=\"tag\">tools:call</span>"));
    assert_non_null(strstr(doc, "Since 14 Nov 2023, 22:13 UTC"));
    assert_non_null(strstr(doc, "1 Jan 2025, 00:00 UTC"));
    assert_null(strstr(doc, "No apps are connected"));
    free(doc);

    json_t *none = json_array();
    p.grants = none;
    p.notice = NULL;
    doc = html_apps_page(&p);
    dump("apps-empty", doc);
    assert_document(doc);
    assert_non_null(strstr(doc, "No apps are connected to your account."));
    assert_null(strstr(doc, "<form"));
    assert_null(strstr(doc, "role=\"status\""));
    free(doc);
    json_decref(none);
    json_decref(grants);
}

/* A page that would pass the size cap is refused rather than cut. */
static void test_cap(void **state)
{
    size_t n = 300 * 1024;
    char *big = malloc(n + 1);
    memset(big, '<', n);
    big[n] = '\0';
    assert_null(html_error_page("mcpgate", "t", big)); /* 4 bytes each: past 1 MiB */
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),     cmocka_unit_test(test_xss),
        cmocka_unit_test(test_login),      cmocka_unit_test(test_consent),
        cmocka_unit_test(test_error_done), cmocka_unit_test(test_apps),
        cmocka_unit_test(test_cap),       cmocka_unit_test(test_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
