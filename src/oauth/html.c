/* Server-rendered pages (see html.h). Pages are built with put(), whose only string conversion
 * is an escaping %s, so caller-supplied text cannot reach the document unescaped unless it is
 * passed to lit(), which takes only markup written in this file. The pages load nothing: CSS is
 * inline, there is no JavaScript, and the only image is a client logo over https. A page that
 * would pass HTML_MAX bytes is not rendered (the functions return NULL). */
#include "oauth/html.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/buf.h"
#include "core/xmalloc.h"

#define HTML_MAX (1024 * 1024)
#define LOGO_URI_MAX 2048

static const char css[] =
    ":root{color-scheme:light dark;--bg:#f3f4f6;--card:#fff;--text:#111827;--muted:#4b5563;"
    "--border:#d9dde3;--soft:#f7f8fa;--primary:#1d4ed8;--primary-hover:#1e40af;--on-primary:#fff;"
    "--warn-bg:#fff7e0;--warn-border:#d99a06;--warn-text:#5a3e00;--err-bg:#fdeeee;"
    "--err-border:#d14343;--err-text:#7f1d1d;--ok-bg:#eaf7ef;--ok-border:#2f9e5c;"
    "--ok-text:#14532d;--danger:#b42318}"
    "@media (prefers-color-scheme:dark){:root{--bg:#0f1115;--card:#181b21;--text:#e7e9ee;"
    "--muted:#a3aab6;--border:#2d323c;--soft:#1f232b;--primary:#6b9bff;--primary-hover:#8cb2ff;"
    "--on-primary:#0b1020;--warn-bg:#2b2210;--warn-border:#b98309;--warn-text:#f5d98e;"
    "--err-bg:#2d1515;--err-border:#c24141;--err-text:#f6b4b4;--ok-bg:#12261b;"
    "--ok-border:#2f9e5c;--ok-text:#a7e3bf;--danger:#ff8a80}}"
    "*{box-sizing:border-box}"
    "html{-webkit-text-size-adjust:100%}"
    "body{margin:0;min-height:100vh;padding:48px 16px;background:var(--bg);color:var(--text);"
    "font:15px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,"
    "\"Noto Sans\",sans-serif;display:flex;flex-direction:column;align-items:center}"
    ".brand{display:flex;align-items:center;gap:10px;margin:0 0 20px;font-weight:600;"
    "font-size:16px;color:var(--text)}"
    ".mark{width:30px;height:30px;border-radius:8px;background:var(--primary);"
    "color:var(--on-primary);display:inline-flex;align-items:center;justify-content:center;"
    "font-weight:700;font-size:15px}"
    ".card{width:100%;max-width:420px;background:var(--card);border:1px solid var(--border);"
    "border-radius:14px;padding:32px;box-shadow:0 1px 2px rgba(16,24,40,.05),"
    "0 12px 32px rgba(16,24,40,.08)}"
    "h1{font-size:21px;line-height:1.35;margin:0 0 6px;font-weight:650;overflow-wrap:anywhere}"
    "h2{font-size:14px;margin:24px 0 8px;font-weight:600;color:var(--muted);"
    "text-transform:uppercase;letter-spacing:.04em}"
    "p{margin:0 0 12px}"
    ".card>:last-child{margin-bottom:0}"
    ".sub{color:var(--muted);margin:0 0 20px;overflow-wrap:anywhere}"
    ".hl{color:var(--text);font-weight:650}"
    "label{display:block;font-weight:600;font-size:14px;margin:16px 0 6px}"
    "input[type=text],input[type=password]{display:block;width:100%;padding:10px 12px;"
    "font:inherit;color:var(--text);background:var(--card);border:1px solid var(--border);"
    "border-radius:8px}"
    "input:focus{outline:2px solid var(--primary);outline-offset:1px;border-color:var(--primary)}"
    ".btn{display:inline-flex;align-items:center;justify-content:center;padding:10px 16px;"
    "font:inherit;font-weight:600;border-radius:8px;border:1px solid transparent;cursor:pointer;"
    "min-height:42px}"
    ".btn:focus-visible{outline:2px solid var(--primary);outline-offset:2px}"
    ".btn-primary{background:var(--primary);color:var(--on-primary)}"
    ".btn-primary:hover{background:var(--primary-hover)}"
    ".btn-secondary{background:var(--card);color:var(--text);border-color:var(--border)}"
    ".btn-secondary:hover{background:var(--soft)}"
    ".btn-block{width:100%;margin-top:24px}"
    ".btn-small{padding:6px 12px;min-height:0;font-size:14px}"
    ".btn-danger{background:var(--card);color:var(--danger);border-color:var(--border)}"
    ".btn-danger:hover{background:var(--err-bg);border-color:var(--err-border)}"
    ".actions{display:flex;gap:12px;margin-top:24px}"
    ".actions .btn{flex:1}"
    ".alert{padding:12px 14px;border-radius:8px;border:1px solid;border-left-width:4px;"
    "margin:16px 0;font-size:14px;overflow-wrap:anywhere}"
    ".alert strong{display:block;margin-bottom:2px}"
    ".alert-error{background:var(--err-bg);border-color:var(--err-border);color:var(--err-text)}"
    ".alert-warn{background:var(--warn-bg);border-color:var(--warn-border);"
    "color:var(--warn-text)}"
    ".alert-ok{background:var(--ok-bg);border-color:var(--ok-border);color:var(--ok-text)}"
    ".client{display:flex;align-items:center;gap:14px;margin:0 0 20px}"
    ".logo,.avatar{width:52px;height:52px;border-radius:12px;flex:none}"
    ".logo{object-fit:contain;background:#fff;border:1px solid var(--border)}"
    ".avatar{display:inline-flex;align-items:center;justify-content:center;background:var(--soft);"
    "border:1px solid var(--border);font-weight:700;font-size:22px;color:var(--muted)}"
    ".client-name{font-weight:650;font-size:16px;overflow-wrap:anywhere}"
    ".meta{color:var(--muted);font-size:13px;overflow-wrap:anywhere}"
    ".badge{display:inline-block;margin-left:6px;padding:1px 8px;border-radius:999px;"
    "font-size:12px;font-weight:600;vertical-align:2px;background:var(--warn-bg);"
    "color:var(--warn-text);border:1px solid var(--warn-border)}"
    ".list{list-style:none;margin:0;padding:0;border:1px solid var(--border);border-radius:10px}"
    ".list li{padding:12px 14px;border-top:1px solid var(--border)}"
    ".list li:first-child{border-top:0}"
    ".scope-name{font-weight:600;overflow-wrap:anywhere}"
    ".scope-desc{color:var(--muted);font-size:14px;overflow-wrap:anywhere}"
    ".redirect{margin:20px 0 0;font-size:14px;color:var(--muted);overflow-wrap:anywhere}"
    ".fine{margin:20px 0 0;font-size:13px;color:var(--muted);overflow-wrap:anywhere}"
    "code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em}"
    ".app{display:flex;align-items:flex-start;gap:12px}"
    ".app-main{flex:1;min-width:0}"
    ".app form{margin:0;flex:none}"
    ".tags{margin:4px 0}"
    ".tag{display:inline-block;margin:2px 4px 2px 0;padding:1px 8px;border-radius:999px;"
    "font-size:12px;background:var(--soft);border:1px solid var(--border);"
    "overflow-wrap:anywhere}"
    ".empty{padding:28px 16px;text-align:center;color:var(--muted);border:1px dashed "
    "var(--border);border-radius:10px}"
    ".icon{width:44px;height:44px;border-radius:50%;display:flex;align-items:center;"
    "justify-content:center;font-size:22px;font-weight:700;margin:0 0 16px}"
    ".icon-ok{background:var(--ok-bg);color:var(--ok-text);border:1px solid var(--ok-border)}"
    ".icon-err{background:var(--err-bg);color:var(--err-text);border:1px solid var(--err-border)}"
    "@media (max-width:480px){body{padding:24px 12px}.card{padding:24px 20px}"
    ".actions{flex-direction:column-reverse}}";

struct page {
    struct buf b;
    int err; /* the first append error; later appends are skipped */
};

static void append_escaped(struct page *pg, const char *s)
{
    const char *run = s;
    for (; pg->err == 0 && *s != '\0'; s++) {
        const char *rep;
        switch (*s) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: continue;
        }
        if ((pg->err = buf_append(&pg->b, run, (size_t)(s - run))) == 0)
            pg->err = buf_append_str(&pg->b, rep);
        run = s + 1;
    }
    if (pg->err == 0)
        pg->err = buf_append(&pg->b, run, (size_t)(s - run));
}

/* Appends markup written in this file, never caller data. */
static void lit(struct page *pg, const char *markup)
{
    if (pg->err == 0)
        pg->err = buf_append_str(&pg->b, markup);
}

/* Appends fmt with its conversions: %s is a string, HTML-escaped (NULL is empty); %d an int;
 * %lld a long long; %% a '%'. Nothing else (ERR_INTERNAL). The format attribute lets the
 * compiler check the arguments. */
static void put(struct page *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct page *pg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    while (pg->err == 0 && *fmt != '\0') {
        const char *pct = strchr(fmt, '%');
        size_t n = pct != NULL ? (size_t)(pct - fmt) : strlen(fmt);
        if ((pg->err = buf_append(&pg->b, fmt, n)) != 0 || pct == NULL)
            break;
        fmt = pct + 1;
        if (*fmt == 's') {
            const char *s = va_arg(ap, const char *);
            append_escaped(pg, s != NULL ? s : "");
            fmt += 1;
        } else if (*fmt == 'd') {
            pg->err = buf_printf(&pg->b, "%d", va_arg(ap, int));
            fmt += 1;
        } else if (strncmp(fmt, "lld", 3) == 0) {
            pg->err = buf_printf(&pg->b, "%lld", va_arg(ap, long long));
            fmt += 3;
        } else if (*fmt == '%') {
            pg->err = buf_append(&pg->b, "%", 1);
            fmt += 1;
        } else {
            pg->err = ERR_INTERNAL;
        }
    }
    va_end(ap);
}

static char *finish(struct page *pg)
{
    if (pg->err != 0) {
        buf_free(&pg->b);
        return NULL;
    }
    return buf_steal(&pg->b, NULL);
}

/* The first character of s (a whole UTF-8 sequence), ASCII letters upper-cased, or "?". */
static void initial(const char *s, char out[5])
{
    const unsigned char *u = (const unsigned char *)(s != NULL ? s : "");
    size_t n = u[0] < 0x80 ? 1 : u[0] >= 0xf0 ? 4 : u[0] >= 0xe0 ? 3 : u[0] >= 0xc0 ? 2 : 0;
    size_t i;
    for (i = 0; i < n && u[i] != '\0' && (i == 0 || (u[i] & 0xc0) == 0x80); i++)
        out[i] = (char)u[i];
    if (i != n || n == 0 || u[0] <= ' ') {
        memcpy(out, "?", 2);
        return;
    }
    out[n] = '\0';
    if (out[0] >= 'a' && out[0] <= 'z')
        out[0] = (char)(out[0] - 'a' + 'A');
}

/* An absolute https URL with a host and no spaces or control characters. */
static bool is_https_uri(const char *s)
{
    if (s == NULL || strncasecmp(s, "https://", 8) != 0 || s[8] == '\0' || s[8] == '/')
        return false;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++, n++)
        if (*p <= ' ' || *p == 0x7f || n >= LOGO_URI_MAX)
            return false;
    return true;
}

static void date_utc(long long secs, char out[40])
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)secs;
    struct tm tm;
    if (secs <= 0 || gmtime_r(&t, &tm) == NULL || tm.tm_mon < 0 || tm.tm_mon > 11) {
        memcpy(out, "an unknown date", 16);
        return;
    }
    snprintf(out, 40, "%d %s %d, %02d:%02d UTC", tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min);
}

static void begin(struct page *pg, const char *title, const char *server_name)
{
    buf_init(&pg->b, HTML_MAX);
    pg->err = 0;
    lit(pg, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<meta name=\"referrer\" content=\"same-origin\">\n"
            "<meta name=\"robots\" content=\"noindex, nofollow\">\n");
    if (server_name != NULL)
        put(pg, "<title>%s \xc2\xb7 %s</title>\n", title, server_name);
    else
        put(pg, "<title>%s</title>\n", title);
    lit(pg, "<style>");
    lit(pg, css);
    lit(pg, "</style>\n</head>\n<body>\n");
    if (server_name != NULL) {
        char mark[5];
        initial(server_name, mark);
        put(pg,
            "<header class=\"brand\"><span class=\"mark\" aria-hidden=\"true\">%s</span>"
            "<span>%s</span></header>\n",
            mark, server_name);
    }
    lit(pg, "<main class=\"card\">\n");
}

static char *end(struct page *pg)
{
    lit(pg, "</main>\n</body>\n</html>\n");
    return finish(pg);
}

char *html_escape(const char *s)
{
    struct page pg = {.err = 0};
    buf_init(&pg.b, SIZE_MAX / 2);
    append_escaped(&pg, s != NULL ? s : "");
    return finish(&pg);
}

char *html_login_page(const struct html_login *p)
{
    struct page pg;
    begin(&pg, "Sign in", p->server_name);
    if (p->client_name != NULL) {
        put(&pg, "<h1>Sign in to continue to <span class=\"hl\">%s</span></h1>\n", p->client_name);
        put(&pg, "<p class=\"sub\">Use your %s account.</p>\n",
            p->server_name != NULL ? p->server_name : "");
    } else {
        lit(&pg, "<h1>Sign in</h1>\n");
        put(&pg, "<p class=\"sub\">Use your %s account.</p>\n",
            p->server_name != NULL ? p->server_name : "");
    }
    if (p->error != NULL)
        put(&pg, "<div class=\"alert alert-error\" role=\"alert\">%s</div>\n", p->error);
    put(&pg, "<form method=\"post\" action=\"%s\">\n", p->action);
    put(&pg, "<input type=\"hidden\" name=\"csrf\" value=\"%s\">\n", p->csrf);
    put(&pg, "<input type=\"hidden\" name=\"continue\" value=\"%s\">\n", p->continue_to);
    bool have_user = p->username != NULL && p->username[0] != '\0';
    put(&pg,
        "<label for=\"username\">Username</label>\n"
        "<input type=\"text\" id=\"username\" name=\"username\" value=\"%s\" "
        "autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" required%s>\n",
        have_user ? p->username : "", have_user ? "" : " autofocus");
    put(&pg,
        "<label for=\"password\">Password</label>\n"
        "<input type=\"password\" id=\"password\" name=\"password\" "
        "autocomplete=\"current-password\" required%s>\n",
        have_user ? " autofocus" : "");
    lit(&pg, "<button type=\"submit\" class=\"btn btn-primary btn-block\">Sign in</button>\n"
             "</form>\n");
    return end(&pg);
}

static void consent_scopes(struct page *pg, json_t *scopes)
{
    if (!json_is_array(scopes) || json_array_size(scopes) == 0) {
        lit(pg, "<h2>It will be able to</h2>\n<ul class=\"list\"><li><div class=\"scope-desc\">"
                "Use the basic features of this server as you. No additional permissions "
                "were requested.</div></li></ul>\n");
        return;
    }
    lit(pg, "<h2>It will be able to</h2>\n<ul class=\"list\">\n");
    size_t i;
    json_t *sc;
    json_array_foreach (scopes, i, sc) {
        const char *name = json_is_string(sc) ? json_string_value(sc)
                                              : json_string_value(json_object_get(sc, "name"));
        const char *desc = json_string_value(json_object_get(sc, "description"));
        if (name == NULL)
            continue;
        put(pg, "<li><div class=\"scope-name\">%s</div>", name);
        if (desc != NULL && desc[0] != '\0')
            put(pg, "<div class=\"scope-desc\">%s</div>", desc);
        lit(pg, "</li>\n");
    }
    lit(pg, "</ul>\n");
}

char *html_consent_page(const struct html_consent *p)
{
    struct page pg;
    const char *client =
        p->client_name != NULL && p->client_name[0] != '\0' ? p->client_name : p->client_id;
    const char *server = p->server_name != NULL ? p->server_name : "this server";
    begin(&pg, "Authorize access", p->server_name);

    lit(&pg, "<div class=\"client\">");
    if (is_https_uri(p->logo_uri)) {
        put(&pg, "<img class=\"logo\" src=\"%s\" alt=\"\" width=\"52\" height=\"52\">",
            p->logo_uri);
    } else {
        char av[5];
        initial(client, av);
        put(&pg, "<span class=\"avatar\" aria-hidden=\"true\">%s</span>", av);
    }
    put(&pg, "<div><div class=\"client-name\">%s", client);
    if (p->unverified)
        lit(&pg, "<span class=\"badge\">Unverified</span>");
    lit(&pg, "</div>");
    if (p->client_uri != NULL && p->client_uri[0] != '\0')
        put(&pg, "<div class=\"meta\">%s</div>", p->client_uri); /* text, not a link */
    lit(&pg, "</div></div>\n");

    put(&pg,
        "<h1><span class=\"hl\">%s</span> wants to access <span class=\"hl\">%s</span> on your "
        "behalf</h1>\n",
        client, p->resource != NULL && p->resource[0] != '\0' ? p->resource : server);
    if (p->username != NULL)
        put(&pg, "<p class=\"sub\">Signed in as <span class=\"hl\">%s</span></p>\n", p->username);

    if (p->user_code != NULL)
        put(&pg,
            "<div class=\"alert alert-warn\" role=\"alert\"><strong>Check the code</strong>Only "
            "allow access if you started this sign-in yourself and your device shows "
            "<span class=\"hl\"><code>%s</code></span>.</div>\n",
            p->user_code);
    if (p->loopback_redirect)
        lit(&pg, "<div class=\"alert alert-warn\" role=\"alert\"><strong>App on this "
                 "computer</strong>This app runs on your computer: only continue if you started "
                 "it yourself.</div>\n");
    if (p->unverified)
        put(&pg,
            "<div class=\"alert alert-warn\" role=\"alert\"><strong>Unverified app</strong>This "
            "app registered itself; %s has not verified who made it. Its name and logo may not "
            "be genuine.</div>\n",
            server);

    consent_scopes(&pg, p->scopes);

    if (p->redirect_host != NULL && p->redirect_host[0] != '\0')
        put(&pg,
            "<p class=\"redirect\">After you choose, you will be sent to "
            "<span class=\"hl\">%s</span>.</p>\n",
            p->redirect_host);

    /* Deny comes first in the tree, so it is the form's default button. */
    put(&pg, "<form method=\"post\" action=\"%s\">\n", p->action);
    put(&pg, "<input type=\"hidden\" name=\"csrf\" value=\"%s\">\n", p->csrf);
    put(&pg, "<input type=\"hidden\" name=\"request\" value=\"%s\">\n", p->request_id);
    lit(&pg, "<div class=\"actions\">"
             "<button type=\"submit\" class=\"btn btn-secondary\" name=\"decision\" "
             "value=\"deny\">Deny</button>"
             "<button type=\"submit\" class=\"btn btn-primary\" name=\"decision\" "
             "value=\"approve\">Allow access</button></div>\n</form>\n");
    if (p->client_id != NULL && client != p->client_id)
        put(&pg, "<p class=\"fine\">Client ID: <code>%s</code><br>", p->client_id);
    else
        lit(&pg, "<p class=\"fine\">");
    lit(&pg, "You can revoke this access at any time from your connected apps.</p>\n");
    return end(&pg);
}

char *html_device_page(const struct html_device *p)
{
    struct page pg;
    begin(&pg, "Connect a device", p->server_name);
    lit(&pg, "<h1>Connect a device</h1>\n");
    if (p->username != NULL)
        put(&pg,
            "<p class=\"sub\">Signed in as <span class=\"hl\">%s</span>. Enter the code your "
            "device shows.</p>\n",
            p->username);
    else
        lit(&pg, "<p class=\"sub\">Enter the code your device shows.</p>\n");
    if (p->error != NULL)
        put(&pg, "<div class=\"alert alert-error\" role=\"alert\">%s</div>\n", p->error);
    if (p->locked)
        return end(&pg);
    lit(&pg, "<div class=\"alert alert-warn\" role=\"note\">Only enter a code shown by a device "
             "or app you are signing in to yourself, never a code someone sent you or read out "
             "to you.</div>\n");
    put(&pg, "<form method=\"post\" action=\"%s\">\n", p->action);
    put(&pg, "<input type=\"hidden\" name=\"csrf\" value=\"%s\">\n", p->csrf);
    put(&pg,
        "<label for=\"user_code\">Code</label>\n"
        "<input type=\"text\" id=\"user_code\" name=\"user_code\" value=\"%s\" "
        "placeholder=\"XXXX-XXXX\" maxlength=\"64\" autocomplete=\"off\" "
        "autocapitalize=\"characters\" spellcheck=\"false\" required autofocus>\n",
        p->user_code);
    lit(&pg, "<button type=\"submit\" class=\"btn btn-primary btn-block\">Continue</button>\n"
             "</form>\n");
    return end(&pg);
}

char *html_error_page(const char *server_name, const char *title, const char *message)
{
    struct page pg;
    begin(&pg, title != NULL ? title : "Error", server_name);
    lit(&pg, "<div class=\"icon icon-err\" aria-hidden=\"true\">!</div>\n");
    put(&pg, "<h1>%s</h1>\n", title != NULL ? title : "Something went wrong");
    if (message != NULL)
        put(&pg, "<p class=\"sub\">%s</p>\n", message);
    return end(&pg);
}

static void app_scopes(struct page *pg, const char *scope)
{
    lit(pg, "<div class=\"tags\">");
    const char *s = scope != NULL ? scope : "";
    bool any = false;
    while (*s != '\0') {
        size_t n = strcspn(s, " ");
        if (n > 0) {
            char *tok = xstrndup(s, n);
            put(pg, "<span class=\"tag\">%s</span>", tok);
            free(tok);
            any = true;
        }
        s += n;
        s += strspn(s, " ");
    }
    if (!any)
        lit(pg, "<span class=\"meta\">No specific permissions</span>");
    lit(pg, "</div>");
}

static void app_row(struct page *pg, const struct html_apps *p, json_t *g)
{
    const char *name = json_string_value(json_object_get(g, "client_name"));
    const char *id = json_string_value(json_object_get(g, "client_id"));
    if (name == NULL || name[0] == '\0')
        name = id != NULL ? id : "Unnamed app";
    json_t *created = json_object_get(g, "created_at");
    long long secs = json_is_integer(created) ? (long long)json_integer_value(created)
                     : json_is_real(created)  ? (long long)json_real_value(created)
                                              : 0;
    char since[40];
    date_utc(secs, since);

    put(pg, "<li class=\"app\"><div class=\"app-main\"><div class=\"client-name\">%s</div>", name);
    app_scopes(pg, json_string_value(json_object_get(g, "scope")));
    put(pg, "<div class=\"meta\">Since %s</div></div>\n", since);

    put(pg, "<form method=\"post\" action=\"%s\">", p->action);
    put(pg, "<input type=\"hidden\" name=\"csrf\" value=\"%s\">", p->csrf);
    json_t *gid = json_object_get(g, "grant_id");
    if (json_is_integer(gid))
        put(pg, "<input type=\"hidden\" name=\"grant_id\" value=\"%lld\">",
            (long long)json_integer_value(gid));
    else
        put(pg, "<input type=\"hidden\" name=\"grant_id\" value=\"%s\">", json_string_value(gid));
    put(pg,
        "<button type=\"submit\" class=\"btn btn-danger btn-small\" aria-label=\"Revoke access "
        "for %s\">Revoke</button></form></li>\n",
        name);
}

char *html_apps_page(const struct html_apps *p)
{
    struct page pg;
    begin(&pg, "Connected apps", p->server_name);
    lit(&pg, "<h1>Connected apps</h1>\n");
    if (p->username != NULL)
        put(&pg,
            "<p class=\"sub\">Signed in as <span class=\"hl\">%s</span>. These apps can act on "
            "your behalf until you revoke their access.</p>\n",
            p->username);
    else
        lit(&pg, "<p class=\"sub\">These apps can act on your behalf until you revoke their "
                 "access.</p>\n");
    if (p->notice != NULL)
        put(&pg, "<div class=\"alert alert-ok\" role=\"status\">%s</div>\n", p->notice);
    if (!json_is_array(p->grants) || json_array_size(p->grants) == 0) {
        lit(&pg, "<div class=\"empty\">No apps are connected to your account.</div>\n");
        return end(&pg);
    }
    lit(&pg, "<ul class=\"list\">\n");
    size_t i;
    json_t *g;
    json_array_foreach (p->grants, i, g) {
        if (json_is_object(g))
            app_row(&pg, p, g);
    }
    lit(&pg, "</ul>\n");
    return end(&pg);
}

char *html_done_page(const char *title, const char *message)
{
    struct page pg;
    begin(&pg, title != NULL ? title : "Done", NULL);
    lit(&pg, "<div class=\"icon icon-ok\" aria-hidden=\"true\">\xe2\x9c\x93</div>\n");
    put(&pg, "<h1>%s</h1>\n", title != NULL ? title : "Done");
    if (message != NULL)
        put(&pg, "<p class=\"sub\">%s</p>\n", message);
    return end(&pg);
}
