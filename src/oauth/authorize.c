/* The browser side of the authorization server: /authorize (validated in RFC 9700's order: a
 * bad client_id or redirect_uri is shown on our page, never redirected), sign-in with CSRF
 * protection and per-account backoff, consent (remembered per user, client and scopes), the
 * connected-apps page where a user revokes a grant, and sign-out. The device flow's pages
 * (device.c) use its helpers.
 *
 * Nothing is kept in memory between the consent page and its answer: the validated
 * authorization request travels in the form, sealed with HMAC-SHA256 and bound to the user and
 * a deadline, so any instance can finish the flow. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "oauth/form.h"
#include "oauth/html.h"
#include "oauth/oauth_int.h"

#define SESSION_COOKIE OAUTH_SESSION_COOKIE
#define LOGIN_COOKIE "mcpgate_login"
#define SESSION_TTL (12 * 3600)
#define PENDING_TTL 600

static const char *pget(json_t *params, const char *k)
{
    return json_string_value(json_object_get(params, k));
}

/* ---- small helpers ---- */

static void hash_str(const char *s, unsigned char out[STORE_HASH_LEN])
{
    crypto_sha256(s, strlen(s), out);
}

char *oauth_cookie_get(const char *header, const char *name)
{
    if (header == NULL)
        return NULL;
    size_t nl = strlen(name);
    const char *p = header;
    while (*p) {
        while (*p == ' ' || *p == ';')
            p++;
        if (strncmp(p, name, nl) == 0 && p[nl] == '=') {
            const char *v = p + nl + 1;
            size_t n = strcspn(v, ";");
            return n > 0 && n < 256 ? xstrndup(v, n) : NULL;
        }
        p += strcspn(p, ";");
    }
    return NULL;
}

static void set_cookie(struct oauth_response *r, bool https, const char *name, const char *value,
                       int max_age)
{
    char *c = xasprintf("%s=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%d%s", name,
                        value ? value : "", max_age, https ? "; Secure" : "");
    /* A response sets at most one cookie here; keep the header simple. */
    oresp_header(r, "Set-Cookie", c);
    free(c);
}

static char *mac_b64(struct oauth_server *os, const char *label, const char *data)
{
    char *msg = xasprintf("%s|%s", label, data);
    unsigned char mac[CRYPTO_SHA256_LEN];
    int r = crypto_hmac_sha256(os->page_key, sizeof(os->page_key), msg, strlen(msg), mac);
    free(msg);
    return r == 0 ? b64url_encode(mac, sizeof(mac)) : xstrdup("");
}

static bool mac_ok(struct oauth_server *os, const char *label, const char *data, const char *mac)
{
    char *want = mac_b64(os, label, data);
    bool ok = mac != NULL && strlen(mac) == strlen(want) && crypto_equal(mac, want, strlen(want));
    free(want);
    return ok;
}

char *oauth_seal(struct oauth_server *os, const char *label, json_t *obj)
{
    char *txt = json_dumps(obj, JSON_COMPACT);
    char *b64 = b64url_encode(txt, strlen(txt));
    free(txt);
    char *mac = mac_b64(os, label, b64);
    char *out = xasprintf("%s.%s", b64, mac);
    free(b64);
    free(mac);
    return out;
}

json_t *oauth_unseal(struct oauth_server *os, const char *label, const char *token)
{
    const char *dot = token ? strrchr(token, '.') : NULL;
    if (dot == NULL || strlen(token) > 16384)
        return NULL;
    char *b64 = xstrndup(token, (size_t)(dot - token));
    json_t *obj = NULL;
    if (mac_ok(os, label, b64, dot + 1)) {
        unsigned char *raw = NULL;
        size_t rawlen = 0;
        if (b64url_decode(b64, strlen(b64), &raw, &rawlen) == 0)
            obj = json_loadb((const char *)raw, rawlen, 0, NULL);
        free(raw);
    }
    free(b64);
    return obj;
}

/* The signed-in user of this browser, or 0. *csrf gets the session's form token. */
static int64_t session_user(struct oauth_server *os, const struct oauth_request *req,
                            char **csrf)
{
    char *tok = oauth_cookie_get(req->cookie, SESSION_COOKIE);
    int64_t uid = 0;
    *csrf = NULL;
    if (tok != NULL) {
        unsigned char h[STORE_HASH_LEN];
        hash_str(tok, h);
        struct store_browser_session b = {0};
        if (store_bsession_get(os->st, h, oauth_now(), &b) == 0) {
            uid = b.user_id;
            *csrf = xstrdup(b.csrf);
        }
        store_bsession_clear(&b);
        free(tok);
    }
    return uid;
}

json_t *oauth_page_params(const struct oauth_request *req, struct oauth_response *resp,
                          struct oauth_server *os)
{
    if (strcmp(req->method, "GET") == 0) {
        if (req->query_error != NULL) {
            oresp_error_page(os, resp, 400, "Bad request", "%s", req->query_error);
            return NULL;
        }
        return req->query ? json_incref(req->query) : json_object();
    }
    json_t *form = NULL;
    char why[160];
    if (req->content_type == NULL ||
        strncasecmp(req->content_type, "application/x-www-form-urlencoded", 33) != 0) {
        oresp_error_page(os, resp, 400, "Bad request", "The form was not sent as a form.");
        return NULL;
    }
    if (form_parse(req->body ? req->body : "", req->body_len, &form, why, sizeof(why)) != 0) {
        oresp_error_page(os, resp, 400, "Bad request", "%s", why);
        return NULL;
    }
    return form;
}

char *oauth_url_with(const char *base, json_t *pairs)
{
    struct buf b;
    buf_init(&b, 16384);
    int r = buf_append_str(&b, base);
    char sep = strchr(base, '?') ? '&' : '?';
    const char *k;
    json_t *v;
    json_object_foreach(pairs, k, v) {
        if (!json_is_string(v))
            continue;
        char *ev = form_encode(json_string_value(v));
        r = r ? r : buf_printf(&b, "%c%s=%s", sep, k, ev);
        free(ev);
        sep = '&';
    }
    (void)r;
    return buf_steal(&b, NULL);
}

/* Redirects to the client with an error (after client and redirect_uri were validated). */
static void redirect_error(struct oauth_server *os, struct oauth_response *resp, unsigned status,
                           const char *redirect_uri, const char *state, const char *error,
                           const char *desc)
{
    json_t *q = json_pack("{s:s, s:s}", "error", error, "error_description", desc);
    if (state != NULL)
        json_object_set_new(q, "state", json_string(state));
    json_object_set_new(q, "iss", json_string(os->issuer)); /* RFC 9207, errors included */
    char *loc = oauth_url_with(redirect_uri, q);
    json_decref(q);
    log_debug("oauth: authorize: redirecting with error %s: %s", error, desc);
    oresp_redirect(resp, status, loc);
    free(loc);
}

/* The validated authorization request. */
struct authz {
    json_t *p;          /* the raw parameters */
    struct store_client client;
    const char *redirect_uri;
    bool redirect_sent;  /* in the request (then /token must repeat it) */
    const char *state;
    char challenge[44];
    char *scope;        /* normalized */
    const char *resource;
};

static void authz_clear(struct authz *a)
{
    json_decref(a->p);
    store_client_clear(&a->client);
    free(a->scope);
}

/* Validates in the order RFC 9700 asks. Returns 0, or answers (page or redirect) and returns
 * non-zero. */
static int validate(struct oauth_server *os, json_t *p, bool repeated, struct authz *a,
                    struct oauth_response *resp)
{
    char why[200];
    const char *client_id = pget(p, "client_id");
    a->p = json_incref(p);
    if (repeated) {
        oresp_error_page(os, resp, 400, "Bad authorization request",
                         "A parameter appears more than once in the request.");
        return ERR_INVALID;
    }
    if (client_id == NULL) {
        oresp_error_page(os, resp, 400, "Bad authorization request",
                         "The application did not say who it is (client_id is missing).");
        return ERR_INVALID;
    }
    if (oauth_client_lookup(os, client_id, &a->client, why, sizeof(why)) != 0) {
        oresp_error_page(os, resp, 400, "Unknown application",
                         "This application is not registered with %s: %s", os->server_name, why);
        return ERR_INVALID;
    }
    a->redirect_uri = pget(p, "redirect_uri");
    a->redirect_sent = a->redirect_uri != NULL;
    json_t *uris = json_object_get(a->client.metadata, "redirect_uris");
    if (a->redirect_uri == NULL && json_array_size(uris) == 1)
        a->redirect_uri = json_string_value(json_array_get(uris, 0));
    if (a->redirect_uri == NULL || !oauth_redirect_uri_allowed(&a->client, a->redirect_uri)) {
        oresp_error_page(os, resp, 400, "Bad redirect address",
                         a->redirect_uri
                             ? "The address this application asked to return to is not one it "
                               "registered, so %s will not send you there."
                             : "The application did not say where to return to (%s needs "
                               "redirect_uri).",
                         os->server_name);
        return ERR_INVALID;
    }
    /* From here on, errors go back to the application. */
    a->state = pget(p, "state");
    const char *rt = pget(p, "response_type"), *cc = pget(p, "code_challenge");
    const char *ccm = pget(p, "code_challenge_method");
    if (rt == NULL || strcmp(rt, "code") != 0) {
        redirect_error(os, resp, 302, a->redirect_uri, a->state, "unsupported_response_type",
                       "response_type must be code");
        return ERR_INVALID;
    }
    if (cc == NULL) {
        redirect_error(os, resp, 302, a->redirect_uri, a->state, "invalid_request",
                       "code_challenge is required (PKCE with S256)");
        return ERR_INVALID;
    }
    if (ccm == NULL || strcmp(ccm, "S256") != 0) {
        redirect_error(os, resp, 302, a->redirect_uri, a->state, "invalid_request",
                       "code_challenge_method must be S256 (plain is not accepted)");
        return ERR_INVALID;
    }
    if (pkce_challenge_normalize(cc, a->challenge) != 0) {
        redirect_error(os, resp, 302, a->redirect_uri, a->state, "invalid_request",
                       "code_challenge must be the base64url SHA-256 of the verifier (43 "
                       "characters)");
        return ERR_INVALID;
    }
    a->resource = pget(p, "resource");
    if (a->resource != NULL && strcmp(a->resource, os->resource) != 0) {
        snprintf(why, sizeof(why), "resource must be %s (this server's MCP endpoint)",
                 os->resource);
        redirect_error(os, resp, 302, a->redirect_uri, a->state, "invalid_target", why);
        return ERR_INVALID;
    }
    a->resource = os->resource; /* absent: the token is for this endpoint */
    a->scope = oauth_scope_normalize(os, pget(p, "scope"));
    log_debug("oauth: authorize: client %s, redirect %s, scope '%s': request valid",
              a->client.client_id, a->redirect_uri, a->scope);
    return 0;
}

/* Issues the code and redirects back to the client. */
static void issue_code(struct oauth_server *os, const struct oauth_request *req, unsigned status,
                       int64_t user_id, const char *username, const char *client_id,
                       const char *redirect_uri, bool redirect_sent, const char *challenge,
                       const char *scope, const char *resource, const char *state,
                       struct oauth_response *resp)
{
    int64_t now = oauth_now();
    char *gid = crypto_random_token(16), *code = crypto_random_token(32);
    struct store_grant g = {.grant_id = gid, .user_id = user_id, .client_id = (char *)client_id,
                            .scope = (char *)scope, .resource = (char *)resource,
                            .created_at = now};
    struct store_code c = {.grant_id = gid, .client_id = (char *)client_id,
                           /* empty: not in the request, so /token need not repeat it */
                           .redirect_uri = (char *)(redirect_sent ? redirect_uri : ""),
                           .code_challenge = (char *)challenge, .scope = (char *)scope,
                           .resource = (char *)resource, .user_id = user_id,
                           .expires_at = now + os->cfg.code_ttl};
    hash_str(code, c.hash);
    if (store_grant_put(os->st, &g) != 0 || store_code_put(os->st, &c) != 0) {
        redirect_error(os, resp, status, redirect_uri, state, "server_error",
                       "could not record the authorization");
    } else {
        json_t *q = json_pack("{s:s}", "code", code);
        if (state != NULL)
            json_object_set_new(q, "state", json_string(state));
        json_object_set_new(q, "iss", json_string(os->issuer));
        char *loc = oauth_url_with(redirect_uri, q);
        json_decref(q);
        oresp_redirect(resp, status, loc);
        free(loc);
        oauth_audit(os, "code_issued", username, client_id, req->client_ip,
                    json_pack("{s:s, s:s}", "scope", scope, "grant", gid));
        log_debug("oauth: authorize: code issued to %s for user %s", client_id, username);
    }
    crypto_wipe(code, strlen(code));
    free(code);
    free(gid);
}

static bool is_loopback_uri(const char *u)
{
    return strncmp(u, "http://127.", 11) == 0 || strncmp(u, "http://[::1]", 12) == 0 ||
           strncmp(u, "http://localhost", 16) == 0;
}

static char *host_of(const char *u)
{
    const char *p = strstr(u, "://");
    p = p ? p + 3 : u;
    return xstrndup(p, strcspn(p, "/?#"));
}

json_t *oauth_scope_words(const char *scope)
{
    json_t *a = json_array();
    const char *p = scope;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n == 0)
            break;
        char *name = xstrndup(p, n);
        const char *desc = strcmp(name, "mcp") == 0 || strcmp(name, "claudeai") == 0
                               ? "Use the tools, resources and prompts of this MCP server as you"
                               : strncmp(name, "mcp:", 4) == 0
                                     ? "Use the tools of one connected MCP server as you"
                                     : "Access granted under this name";
        json_array_append_new(a, json_pack("{s:s, s:s}", "name", name, "description", desc));
        free(name);
        p += n;
    }
    return a;
}

void oauth_authorize(struct oauth_server *os, const struct oauth_request *req,
                     struct oauth_response *resp)
{
    json_t *p = oauth_page_params(req, resp, os);
    if (p == NULL)
        return;
    struct authz a = {0};
    char *csrf = NULL, *remembered = NULL;
    struct store_user u = {0};
    if (validate(os, p, req->query_repeated, &a, resp) != 0)
        goto out;
    int64_t uid = session_user(os, req, &csrf);
    if (uid == 0 || store_user_get_id(os->st, uid, &u) != 0) {
        /* Sign in first, then come back to this very request. */
        json_t *q = json_object();
        static const char *const keep[] = {"response_type", "client_id",      "redirect_uri",
                                           "state",         "scope",          "code_challenge",
                                           "code_challenge_method", "resource"};
        for (size_t i = 0; i < sizeof(keep) / sizeof(*keep); i++) {
            if (pget(p, keep[i]) != NULL)
                json_object_set_new(q, keep[i], json_string(pget(p, keep[i])));
        }
        char *cont = oauth_url_with("/authorize", q);
        json_decref(q);
        json_t *lq = json_pack("{s:s}", "continue", cont);
        char *loc = oauth_url_with("/login", lq);
        json_decref(lq);
        oresp_redirect(resp, strcmp(req->method, "POST") == 0 ? 303 : 302, loc);
        free(loc);
        free(cont);
        goto out;
    }
    bool remembered_ok = store_consent_get(os->st, uid, a.client.client_id, &remembered) == 0 &&
                         oauth_scope_subset(a.scope, remembered);
    bool first_party = a.client.first_party && os->cfg.auto_approve_first_party;
    if (remembered_ok || first_party) {
        log_debug("oauth: authorize: consent %s for %s", remembered_ok ? "remembered" : "implied "
                                                                                       "(first "
                                                                                       "party)",
                  a.client.client_id);
        issue_code(os, req, strcmp(req->method, "POST") == 0 ? 303 : 302, uid, u.username,
                   a.client.client_id, a.redirect_uri, a.redirect_sent, a.challenge, a.scope,
                   a.resource, a.state, resp);
        goto out;
    }
    json_t *pending = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "client_id",
                                a.client.client_id, "redirect_uri", a.redirect_uri, "challenge",
                                a.challenge, "scope", a.scope, "resource", a.resource, "user",
                                (json_int_t)uid, "exp", (json_int_t)(oauth_now() + PENDING_TTL));
    if (a.state != NULL)
        json_object_set_new(pending, "state", json_string(a.state));
    json_object_set_new(pending, "sent", json_boolean(a.redirect_sent));
    char *sealed = oauth_seal(os, "pending", pending);
    json_decref(pending);
    char *rhost = host_of(a.redirect_uri);
    json_t *words = oauth_scope_words(a.scope);
    const char *logo = json_string_value(json_object_get(a.client.metadata, "logo_uri"));
    struct html_consent page = {
        .server_name = os->server_name,
        .action = "/authorize/consent",
        .csrf = csrf,
        .request_id = sealed,
        .username = u.username,
        .client_name = json_string_value(json_object_get(a.client.metadata, "client_name")),
        .client_id = a.client.client_id,
        .logo_uri = logo != NULL && strncmp(logo, "https://", 8) == 0 ? logo : NULL,
        .client_uri = json_string_value(json_object_get(a.client.metadata, "client_uri")),
        .redirect_host = rhost,
        .loopback_redirect = is_loopback_uri(a.redirect_uri),
        .unverified = a.client.kind != CLIENT_STATIC,
        .scopes = words,
        .resource = a.resource,
    };
    oresp_html(resp, 200, html_consent_page(&page));
    json_decref(words);
    free(rhost);
    free(sealed);
out:
    store_user_clear(&u);
    free(remembered);
    free(csrf);
    authz_clear(&a);
    json_decref(p);
}

void oauth_consent(struct oauth_server *os, const struct oauth_request *req,
                   struct oauth_response *resp)
{
    json_t *f = oauth_page_params(req, resp, os), *pending = NULL;
    if (f == NULL)
        return;
    char *csrf = NULL;
    struct store_user u = {0};
    int64_t uid = session_user(os, req, &csrf);
    const char *sent = pget(f, "csrf");
    if (uid == 0 || store_user_get_id(os->st, uid, &u) != 0) {
        oresp_error_page(os, resp, 401, "Signed out", "Your session ended. Start again from the "
                                                      "application.");
        goto out;
    }
    if (sent == NULL || csrf == NULL || strlen(sent) != strlen(csrf) ||
        !crypto_equal(sent, csrf, strlen(csrf))) {
        log_info("oauth: consent refused: CSRF token missing or wrong (user %s)", u.username);
        oresp_error_page(os, resp, 403, "Request refused",
                         "This form did not come from %s's consent page.", os->server_name);
        goto out;
    }
    pending = oauth_unseal(os, "pending", pget(f, "request"));
    if (pending == NULL || json_integer_value(json_object_get(pending, "user")) != uid ||
        json_integer_value(json_object_get(pending, "exp")) < oauth_now()) {
        oresp_error_page(os, resp, 400, "Request expired",
                         "This authorization request is no longer valid. Start again from the "
                         "application.");
        goto out;
    }
    const char *client_id = pget(pending, "client_id"), *redirect = pget(pending, "redirect_uri");
    const char *scope = pget(pending, "scope"), *state = pget(pending, "state");
    const char *decision = pget(f, "decision");
    if (decision == NULL || strcmp(decision, "approve") != 0) {
        oauth_audit(os, "consent", u.username, client_id, req->client_ip,
                    json_pack("{s:s, s:s}", "decision", "deny", "scope", scope));
        redirect_error(os, resp, 303, redirect, state, "access_denied",
                       "the user declined the request");
        goto out;
    }
    if (store_consent_put(os->st, uid, client_id, scope, oauth_now()) != 0)
        log_warn("oauth: could not remember consent");
    oauth_audit(os, "consent", u.username, client_id, req->client_ip,
                json_pack("{s:s, s:s}", "decision", "approve", "scope", scope));
    issue_code(os, req, 303, uid, u.username, client_id, redirect,
               json_is_true(json_object_get(pending, "sent")), pget(pending, "challenge"), scope,
               pget(pending, "resource"), state, resp);
out:
    store_user_clear(&u);
    free(csrf);
    json_decref(pending);
    json_decref(f);
}

/* ---- sign-in ---- */

static bool continue_ok(const char *c)
{
    return c != NULL &&
           (strncmp(c, "/authorize?", 11) == 0 || strcmp(c, "/apps") == 0 ||
            strcmp(c, "/device") == 0 || strncmp(c, "/device?", 8) == 0) &&
           strstr(c, "//") == NULL && strchr(c, '\\') == NULL;
}

static void login_page(struct oauth_server *os, const struct oauth_request *req,
                       struct oauth_response *resp, unsigned status, const char *cont,
                       const char *error, const char *username)
{
    char *nonce = crypto_random_token(16);
    char *csrf = mac_b64(os, "login", nonce);
    char *client_name = NULL;
    if (cont != NULL && strncmp(cont, "/authorize?", 11) == 0) {
        json_t *q = NULL;
        char why[64];
        if (form_parse(cont + 11, strlen(cont + 11), &q, why, sizeof(why)) == 0) {
            struct store_client c = {0};
            const char *id = pget(q, "client_id");
            /* Only known clients are named: a CIMD document is fetched at /authorize. */
            if (id != NULL && strncmp(id, "https://", 8) != 0 &&
                store_client_get(os->st, id, &c) == 0) {
                const char *n = json_string_value(json_object_get(c.metadata, "client_name"));
                client_name = xstrdup(n ? n : id);
            }
            store_client_clear(&c);
        }
        json_decref(q);
    }
    struct html_login page = {.server_name = os->server_name,
                              .action = "/login",
                              .csrf = csrf,
                              .continue_to = cont ? cont : "/apps",
                              .error = error,
                              .username = username,
                              .client_name = client_name};
    oresp_html(resp, status, html_login_page(&page));
    set_cookie(resp, req->https, LOGIN_COOKIE, nonce, 1800);
    free(client_name);
    free(csrf);
    free(nonce);
}

/* Failed attempts in a row before the account waits; the wait doubles after that. */
#define LOGIN_FREE_FAILURES 5

static int64_t backoff(int failures)
{
    if (failures < LOGIN_FREE_FAILURES)
        return 0;
    int64_t s = (int64_t)30 << (failures - LOGIN_FREE_FAILURES > 5 ? 5 : failures - LOGIN_FREE_FAILURES);
    return s > 900 ? 900 : s;
}

void oauth_login(struct oauth_server *os, const struct oauth_request *req,
                 struct oauth_response *resp)
{
    if (strcmp(req->method, "GET") == 0) {
        const char *cont = req->query ? pget(req->query, "continue") : NULL;
        if (cont != NULL && !continue_ok(cont))
            cont = NULL;
        char *csrf = NULL;
        if (session_user(os, req, &csrf) != 0) {
            oresp_redirect(resp, 302, cont ? cont : "/apps");
        } else {
            login_page(os, req, resp, 200, cont, NULL, NULL);
        }
        free(csrf);
        return;
    }
    json_t *f = oauth_page_params(req, resp, os);
    if (f == NULL)
        return;
    struct store_user u = {0};
    char *nonce = oauth_cookie_get(req->cookie, LOGIN_COOKIE);
    const char *cont = pget(f, "continue"), *username = pget(f, "username");
    const char *password = pget(f, "password");
    unsigned retry;
    if (!continue_ok(cont))
        cont = "/apps";
    if (!oauth_ratelimit(os, "login", req->client_ip, &retry)) {
        char msg[96];
        snprintf(msg, sizeof(msg), "Too many attempts from your network. Try again in %u s.",
                 retry);
        login_page(os, req, resp, 429, cont, msg, username);
        char ra[16];
        snprintf(ra, sizeof(ra), "%u", retry);
        oresp_header(resp, "Retry-After", ra);
        goto out;
    }
    if (nonce == NULL || !mac_ok(os, "login", nonce, pget(f, "csrf"))) {
        log_info("oauth: login refused: CSRF token missing or wrong");
        login_page(os, req, resp, 403, cont, "Your sign-in form expired. Please try again.",
                   username);
        goto out;
    }
    if (username == NULL || password == NULL || username[0] == '\0') {
        login_page(os, req, resp, 400, cont, "Enter your username and password.", username);
        goto out;
    }
    int64_t now = oauth_now();
    bool found = store_user_get(os->st, username, &u) == 0;
    if (found && u.locked_until > now) {
        char msg[128];
        snprintf(msg, sizeof(msg), "Too many failed attempts. Try again in %lld s.",
                 (long long)(u.locked_until - now));
        oauth_audit(os, "login_failed", username, NULL, req->client_ip,
                    json_pack("{s:s}", "reason", "account waiting after failures"));
        login_page(os, req, resp, 429, cont, msg, username);
        char ra[24];
        snprintf(ra, sizeof(ra), "%lld", (long long)(u.locked_until - now));
        oresp_header(resp, "Retry-After", ra);
        goto out;
    }
    /* An unknown user costs the same as a wrong password. */
    static const char dummy[] = "$argon2id$v=19$m=65536,t=3,p=1$c29tZXNhbHRzb21lc2FsdA$"
                                "q6f0Vw0QYJ3nqxaHvcaO3lb2jmYTmmfwX9IpRTXnOLg";
    bool ok = crypto_password_verify(found ? u.password_hash : dummy, password) == 1 && found;
    if (!ok) {
        if (found && store_user_login_result(os->st, u.id, false,
                                             now + backoff(u.failed_logins + 1)) != 0)
            log_warn("oauth: could not record a failed login");
        oauth_audit(os, "login_failed", username, NULL, req->client_ip,
                    json_pack("{s:s}", "reason", found ? "wrong password" : "unknown user"));
        log_debug("oauth: login failed for '%s' (%s)", username,
                  found ? "wrong password" : "unknown user");
        login_page(os, req, resp, 401, cont, "Wrong username or password.", username);
        goto out;
    }
    if (store_user_login_result(os->st, u.id, true, 0) != 0)
        log_warn("oauth: could not record a login");
    char *tok = crypto_random_token(32), *csrf = crypto_random_token(24);
    struct store_browser_session b = {.user_id = u.id, .csrf = csrf, .created_at = now,
                                      .expires_at = now + SESSION_TTL};
    hash_str(tok, b.hash);
    if (store_bsession_put(os->st, &b) != 0) {
        login_page(os, req, resp, 500, cont, "Sign-in failed on our side. Please try again.",
                   username);
    } else {
        oresp_redirect(resp, 303, cont);
        set_cookie(resp, req->https, SESSION_COOKIE, tok, SESSION_TTL);
        oauth_audit(os, "login_ok", u.username, NULL, req->client_ip, NULL);
        log_debug("oauth: %s signed in", u.username);
    }
    crypto_wipe(tok, strlen(tok));
    free(tok);
    free(csrf);
out:
    free(nonce);
    store_user_clear(&u);
    json_decref(f);
}

void oauth_logout(struct oauth_server *os, const struct oauth_request *req,
                  struct oauth_response *resp)
{
    json_t *f = oauth_page_params(req, resp, os);
    if (f == NULL)
        return;
    char *csrf = NULL, *tok = oauth_cookie_get(req->cookie, SESSION_COOKIE);
    int64_t uid = session_user(os, req, &csrf);
    const char *sent = pget(f, "csrf");
    if (uid != 0 && sent != NULL && csrf != NULL && strlen(sent) == strlen(csrf) &&
        crypto_equal(sent, csrf, strlen(csrf))) {
        unsigned char h[STORE_HASH_LEN];
        hash_str(tok, h);
        if (store_bsession_remove(os->st, h) != 0)
            log_warn("oauth: could not end a browser session");
    }
    oresp_redirect(resp, 303, "/login");
    set_cookie(resp, req->https, SESSION_COOKIE, "", 0);
    free(tok);
    free(csrf);
    json_decref(f);
}

/* ---- connected apps ---- */

void oauth_apps(struct oauth_server *os, const struct oauth_request *req,
                struct oauth_response *resp)
{
    char *csrf = NULL;
    struct store_user u = {0};
    json_t *grants = NULL, *f = NULL;
    const char *notice = NULL;
    int64_t uid = session_user(os, req, &csrf);
    if (uid == 0 || store_user_get_id(os->st, uid, &u) != 0) {
        oresp_redirect(resp, strcmp(req->method, "POST") == 0 ? 303 : 302,
                       "/login?continue=%2Fapps");
        goto out;
    }
    if (strcmp(req->method, "POST") == 0) {
        if ((f = oauth_page_params(req, resp, os)) == NULL)
            goto out;
        const char *sent = pget(f, "csrf"), *gid = pget(f, "grant_id");
        struct store_grant g = {0};
        if (sent == NULL || strlen(sent) != strlen(csrf) || !crypto_equal(sent, csrf, strlen(csrf))) {
            oresp_error_page(os, resp, 403, "Request refused",
                             "This form did not come from %s.", os->server_name);
            goto out;
        }
        if (gid != NULL && store_grant_get(os->st, gid, &g) == 0 && g.user_id == uid) {
            /* The app loses everything it holds from this user: every grant, the consent. */
            json_t *all = NULL;
            if (store_grants_of_user(os->st, uid, &all) != 0)
                all = json_array();
            size_t i;
            json_t *x;
            json_array_foreach(all, i, x) {
                const char *xid = pget(x, "grant_id");
                if (xid == NULL || strcmp(pget(x, "client_id") ?: "", g.client_id) != 0)
                    continue;
                if (store_grant_revoke(os->st, xid, oauth_now()) == 0) {
                    rs_cache_forget_grant(os->cache, xid);
                    oauth_audit(os, "revoked", u.username, g.client_id, req->client_ip,
                                json_pack("{s:s, s:s}", "grant", xid, "reason",
                                          "revoked by the user on the connected apps page"));
                }
            }
            json_decref(all);
            if (store_consent_remove(os->st, uid, g.client_id) != 0)
                log_warn("oauth: could not forget a consent");
        }
        store_grant_clear(&g);
        oresp_redirect(resp, 303, "/apps?notice=revoked");
        goto out;
    }
    if (req->query != NULL && pget(req->query, "notice") != NULL)
        notice = "Access revoked. The application must ask again to connect.";
    json_t *all = NULL;
    if (store_grants_of_user(os->st, uid, &all) != 0)
        all = json_array();
    /* One row per application (each authorization is a grant of its own): the oldest date,
     * the union of the scopes. */
    grants = json_array();
    size_t i;
    json_t *g;
    json_array_foreach(all, i, g) {
        const char *cid = pget(g, "client_id");
        json_t *row = NULL;
        size_t k;
        json_t *r2;
        json_array_foreach(grants, k, r2) {
            if (cid != NULL && strcmp(pget(r2, "client_id") ?: "", cid) == 0)
                row = r2;
        }
        if (row == NULL) {
            json_array_append(grants, g);
            continue;
        }
        if (json_integer_value(json_object_get(g, "created_at")) <
            json_integer_value(json_object_get(row, "created_at")))
            json_object_set(row, "created_at", json_object_get(g, "created_at"));
        const char *have = pget(row, "scope") ?: "", *more = pget(g, "scope") ?: "";
        if (!oauth_scope_subset(more, have)) {
            char *u2 = xasprintf("%s %s", have, more);
            char *n2 = oauth_scope_normalize(os, u2);
            json_object_set_new(row, "scope", json_string(n2));
            free(n2);
            free(u2);
        }
    }
    json_decref(all);
    json_array_foreach(grants, i, g) {
        struct store_client c = {0};
        const char *cid = pget(g, "client_id");
        if (cid != NULL && store_client_get(os->st, cid, &c) == 0) {
            const char *n = json_string_value(json_object_get(c.metadata, "client_name"));
            json_object_set_new(g, "client_name", json_string(n ? n : cid));
        }
        store_client_clear(&c);
    }
    struct html_apps page = {.server_name = os->server_name,
                             .action = "/apps/revoke",
                             .csrf = csrf,
                             .username = u.username,
                             .grants = grants,
                             .notice = notice};
    oresp_html(resp, 200, html_apps_page(&page));
out:
    json_decref(grants);
    json_decref(f);
    store_user_clear(&u);
    free(csrf);
}
