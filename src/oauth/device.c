/* The device authorization grant (RFC 8628): POST /device_authorization, where a client that
 * cannot show a browser (a command line, a device without one) gets a device code and a user
 * code; the /device page, where a signed-in person enters the user code and approves or denies
 * on the consent page; and the device_code grant at /token, which the client polls.
 *
 * User codes are short so that people can type them: 8 letters of 20, about 34.6 bits. They
 * are stored as an HMAC under the page key (a copy of the database alone does not reveal
 * them), live device_ttl (10 minutes), and guessing is bounded three ways: a per-IP bucket on
 * entering codes, a count of wrong codes per browser session (DEVICE_MAX_FAILURES, after which
 * the session may enter no more), and sign-in itself (a new session costs the password and the
 * login bucket). Consent is asked every time, never remembered nor skipped for first-party
 * clients: approving a code someone else started hands them the approver's access, which is
 * exactly what device-code phishing is after, so the page shows the code to compare with the
 * device's and says where codes must come from. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "oauth/html.h"
#include "oauth/oauth_int.h"

#define DEVICE_MAX_FAILURES 5  /* wrong user codes a browser session may enter */
#define DEVICE_SLOW_DOWN 5     /* seconds added to the interval by slow_down (RFC 8628 3.5) */
#define DEVICE_CONSENT_TTL 600 /* the consent form's sealed request, at most */
#define DEVICE_PUT_TRIES 5     /* user code collisions tolerated when storing one */

static const char *fget(json_t *form, const char *key)
{
    return json_string_value(json_object_get(form, key));
}

static void hash_str(const char *s, unsigned char out[STORE_HASH_LEN])
{
    crypto_sha256(s, strlen(s), out);
}

/* ---- user codes ---- */

int oauth_user_code_normalize(const char *in, char out[OAUTH_USER_CODE_LEN + 1])
{
    size_t n = 0;
    out[0] = '\0';
    if (in == NULL || strnlen(in, OAUTH_USER_CODE_INPUT_MAX + 1) > OAUTH_USER_CODE_INPUT_MAX)
        return ERR_INVALID;
    for (const char *p = in; *p != '\0'; p++) {
        char c = *p;
        if (c == '-' || c == ' ')
            continue;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (n == OAUTH_USER_CODE_LEN || strchr(OAUTH_USER_CODE_ALPHABET, c) == NULL) {
            out[0] = '\0';
            return ERR_INVALID;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    if (n != OAUTH_USER_CODE_LEN) {
        out[0] = '\0';
        return ERR_INVALID;
    }
    return 0;
}

void oauth_user_code_format(const char *normalized, char out[OAUTH_USER_CODE_LEN + 2])
{
    snprintf(out, OAUTH_USER_CODE_LEN + 2, "%.*s-%.*s", OAUTH_USER_CODE_LEN / 2, normalized,
             OAUTH_USER_CODE_LEN / 2, normalized + OAUTH_USER_CODE_LEN / 2);
}

/* A random user code, every letter uniform over the alphabet (bytes past the largest multiple
 * of its size are drawn again). */
static int user_code_new(char out[OAUTH_USER_CODE_LEN + 1])
{
    static const char alphabet[] = OAUTH_USER_CODE_ALPHABET;
    const unsigned n = sizeof(alphabet) - 1, limit = 256 - 256 % n;
    unsigned char b[32];
    size_t got = 0;
    int r = 0;
    while (got < OAUTH_USER_CODE_LEN && r == 0) {
        if ((r = crypto_random(b, sizeof(b))) != 0)
            break;
        for (size_t i = 0; i < sizeof(b) && got < OAUTH_USER_CODE_LEN; i++) {
            if (b[i] < limit)
                out[got++] = alphabet[b[i] % n];
        }
    }
    out[got] = '\0';
    crypto_wipe(b, sizeof(b));
    return r;
}

/* The stored form of a normalized user code: an HMAC under the page key, since 35 bits
 * hashed without a key would be found from a copy of the database in seconds. */
static int user_hash(struct oauth_server *os, const char *normalized,
                     unsigned char out[STORE_HASH_LEN])
{
    char msg[32 + OAUTH_USER_CODE_LEN];
    int n = snprintf(msg, sizeof(msg), "device-user-code|%s", normalized);
    int r = crypto_hmac_sha256(os->page_key, sizeof(os->page_key), msg, (size_t)n, out);
    crypto_wipe(msg, sizeof(msg));
    return r;
}

/* RFC 6749 3.3: scope tokens are %x21 / %x23-5B / %x5D-7E, separated by spaces. */
static bool scope_syntax_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p != ' ' && (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\'))
            return false;
    }
    return true;
}

/* ---- POST /device_authorization ---- */

void oauth_device_authorization(struct oauth_server *os, const struct oauth_request *req,
                                struct oauth_response *resp)
{
    if (oauth_limited(os, "token", req, resp)) /* it checks client secrets too */
        return;
    json_t *form = oauth_form_body(req, resp);
    if (form == NULL)
        return;
    struct store_client c = {0};
    char *scope = NULL, *device_code = NULL, *uri = NULL, *complete = NULL;
    const char *requested = fget(form, "scope"), *resource = fget(form, "resource");
    char code[OAUTH_USER_CODE_LEN + 1] = "", shown[OAUTH_USER_CODE_LEN + 2];
    if (oauth_client_authenticate(os, req, form, &c, resp) != 0)
        goto out;
    if (!oauth_grant_type_allowed(&c, OAUTH_GRANT_DEVICE)) {
        oresp_error(resp, 400, "unauthorized_client",
                    "this client did not register the device_code grant (its grant_types must "
                    "include " OAUTH_GRANT_DEVICE ")");
        goto out;
    }
    if (requested != NULL && !scope_syntax_ok(requested)) {
        oresp_error(resp, 400, "invalid_scope",
                    "scope holds a character no scope can have (RFC 6749 3.3)");
        goto out;
    }
    if (resource != NULL && strcmp(resource, os->resource) != 0) {
        oresp_error(resp, 400, "invalid_target", "resource must be %s (this server's MCP endpoint)",
                    os->resource);
        goto out;
    }
    scope = oauth_scope_normalize(os, requested); /* unknown scopes dropped, as at /authorize */
    int64_t now = oauth_now();
    device_code = crypto_random_token(32);
    struct store_device d = {.client_id = c.client_id,
                             .scope = scope,
                             .resource = os->resource,
                             .created_at = now,
                             .expires_at = now + os->cfg.device_ttl,
                             .interval = os->cfg.device_interval};
    hash_str(device_code, d.hash);
    int r = ERR_EXISTS;
    for (int i = 0; i < DEVICE_PUT_TRIES && r == ERR_EXISTS; i++) {
        if ((r = user_code_new(code)) != 0 || (r = user_hash(os, code, d.user_hash)) != 0)
            break;
        r = store_device_put(os->st, &d);
    }
    if (r != 0) {
        oresp_error(resp, 500, "server_error", "could not record the device authorization");
        goto out;
    }
    oauth_user_code_format(code, shown);
    uri = xasprintf("%s/device", os->issuer);
    json_t *q = json_pack("{s:s}", "user_code", shown);
    complete = oauth_url_with(uri, q);
    json_decref(q);
    oresp_json(resp, 200,
               json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "device_code", device_code, "user_code",
                         shown, "verification_uri", uri, "verification_uri_complete", complete,
                         "expires_in", (json_int_t)os->cfg.device_ttl, "interval",
                         (json_int_t)os->cfg.device_interval));
    oresp_header(resp, "Cache-Control", "no-store");
    oresp_header(resp, "Pragma", "no-cache");
    oauth_audit(os, "device_code_issued", NULL, c.client_id, req->client_ip,
                json_pack("{s:s}", "scope", scope));
    log_debug("oauth: device code issued to %s, scope '%s', for %lld s", c.client_id, scope,
              (long long)os->cfg.device_ttl);
out:
    if (device_code != NULL)
        crypto_wipe(device_code, strlen(device_code));
    crypto_wipe(code, sizeof(code));
    free(device_code);
    free(scope);
    free(uri);
    free(complete);
    store_client_clear(&c);
    json_decref(form);
}

/* ---- the device_code grant at /token ---- */

void oauth_device_token(struct oauth_server *os, const struct oauth_request *req, json_t *form,
                        const struct store_client *c, struct oauth_response *resp)
{
    const char *code = fget(form, "device_code"), *resource = fget(form, "resource");
    struct store_device d = {0};
    struct store_grant g = {0};
    char *username = NULL;
    bool slow = false;
    int64_t now = oauth_now();
    unsigned char h[STORE_HASH_LEN];
    int r;
    if (!oauth_grant_type_allowed(c, OAUTH_GRANT_DEVICE)) {
        oresp_error(resp, 400, "unauthorized_client",
                    "this client did not register the device_code grant");
        return;
    }
    if (code == NULL) {
        oresp_error(resp, 400, "invalid_request", "device_code is missing");
        return;
    }
    hash_str(code, h);
    /* Client, expiry and resource first: a poll with another client's code changes nothing. */
    if ((r = store_device_get(os->st, h, &d)) != 0) {
        if (r == ERR_NOTFOUND)
            oresp_error(resp, 400, "invalid_grant", "unknown device code");
        else
            oresp_error(resp, 500, "server_error", "could not read the device code");
        goto out;
    }
    if (strcmp(d.client_id, c->client_id) != 0) {
        oresp_error(resp, 400, "invalid_grant", "the device code was issued to another client");
        goto out;
    }
    if (d.expires_at <= now) {
        oresp_error(resp, 400, "expired_token",
                    "the device code has expired (it lives %lld s); request a new one",
                    (long long)os->cfg.device_ttl);
        goto out;
    }
    if (resource != NULL && (d.resource == NULL || strcmp(resource, d.resource) != 0)) {
        oresp_error(resp, 400, "invalid_target",
                    "resource differs from the one in the device authorization request");
        goto out;
    }
    store_device_clear(&d);
    if ((r = store_device_poll(os->st, h, now, DEVICE_SLOW_DOWN, &d, &slow)) != 0) {
        if (r == ERR_NOTFOUND)
            oresp_error(resp, 400, "invalid_grant", "unknown device code");
        else
            oresp_error(resp, 500, "server_error", "could not read the device code");
        goto out;
    }
    switch (d.status) {
    case DEVICE_PENDING:
        if (slow)
            oresp_error(resp, 400, "slow_down",
                        "polled less than %lld s after the previous request; wait %lld s "
                        "between requests from now on",
                        (long long)d.interval, (long long)(d.interval + DEVICE_SLOW_DOWN));
        else
            oresp_error(resp, 400, "authorization_pending",
                        "the user has not approved or denied yet; ask again in %lld s",
                        (long long)d.interval);
        break;
    case DEVICE_DENIED:
        oresp_error(resp, 400, "access_denied", "the user denied the request");
        break;
    case DEVICE_ISSUED:
        /* Replayed: someone else may hold the code; end everything it produced. */
        if (d.grant_id != NULL)
            oauth_revoke_grant(os, d.grant_id, c->client_id, req->client_ip, "device code replay");
        oresp_error(resp, 400, "invalid_grant",
                    "the device code was already used; the tokens issued from it have been "
                    "revoked");
        break;
    case DEVICE_APPROVED:
        if (d.grant_id == NULL || store_grant_get(os->st, d.grant_id, &g) != 0 ||
            g.revoked_at != 0) {
            oresp_error(resp, 400, "invalid_grant", "the authorization was revoked");
            break;
        }
        username = oauth_username_of(os, g.user_id);
        oauth_issue(os, &g, g.scope, username, oauth_grant_type_allowed(c, "refresh_token"), req,
                    resp);
        break;
    }
out:
    free(username);
    store_device_clear(&d);
    store_grant_clear(&g);
}

/* ---- the /device page ---- */

/* The browser session of a request: 0 with *b filled, or ERR_NOTFOUND. */
static int browser_session(struct oauth_server *os, const struct oauth_request *req,
                           struct store_browser_session *b)
{
    char *tok = oauth_cookie_get(req->cookie, OAUTH_SESSION_COOKIE);
    int r = ERR_NOTFOUND;
    memset(b, 0, sizeof(*b));
    if (tok != NULL) {
        unsigned char h[STORE_HASH_LEN];
        hash_str(tok, h);
        r = store_bsession_get(os->st, h, oauth_now(), b);
        crypto_wipe(tok, strlen(tok));
        free(tok);
    }
    return r;
}

static bool csrf_ok(const char *sent, const char *csrf)
{
    return sent != NULL && csrf != NULL && strlen(sent) == strlen(csrf) &&
           crypto_equal(sent, csrf, strlen(csrf));
}

/* To the sign-in page, then back to /device with the code the person had (when it is one). */
static void to_login(struct oauth_response *resp, unsigned status, const char *shown)
{
    json_t *q = json_object();
    if (shown != NULL)
        json_object_set_new(q, "user_code", json_string(shown));
    char *cont = oauth_url_with("/device", q);
    json_decref(q);
    q = json_pack("{s:s}", "continue", cont);
    char *loc = oauth_url_with("/login", q);
    json_decref(q);
    oresp_redirect(resp, status, loc);
    free(loc);
    free(cont);
}

static void entry_page(struct oauth_server *os, struct oauth_response *resp, unsigned status,
                       const char *csrf, const char *username, const char *prefill,
                       const char *error, bool locked)
{
    struct html_device page = {.server_name = os->server_name,
                               .action = "/device",
                               .csrf = csrf,
                               .username = username,
                               .user_code = prefill,
                               .error = error,
                               .locked = locked};
    oresp_html(resp, status, html_device_page(&page));
}

#define LOCKED_MESSAGE                                                                             \
    "Too many wrong codes were entered in this browser session, so it cannot enter more. Sign "    \
    "out and sign in again to continue."

static void device_get(struct oauth_server *os, const struct oauth_request *req,
                       struct oauth_response *resp)
{
    struct store_browser_session b;
    struct store_user u = {0};
    char code[OAUTH_USER_CODE_LEN + 1], shown[OAUTH_USER_CODE_LEN + 2] = "";
    if (req->query_error != NULL) {
        oresp_error_page(os, resp, 400, "Bad request", "%s", req->query_error);
        return;
    }
    /* Where the decision's 303 leads: the same text for anyone. */
    const char *done = fget(req->query, "done");
    if (done != NULL && strcmp(done, "approved") == 0) {
        oresp_html(resp, 200,
                   html_done_page("Device connected", "You can go back to your device: it "
                                                      "finishes signing in by itself."));
        return;
    }
    if (done != NULL && strcmp(done, "denied") == 0) {
        oresp_error_page(os, resp, 200, "Access denied",
                         "The device was not given access. You can close this window.");
        return;
    }
    const char *typed = fget(req->query, "user_code");
    if (typed != NULL && oauth_user_code_normalize(typed, code) == 0)
        oauth_user_code_format(code, shown);
    if (browser_session(os, req, &b) != 0 || store_user_get_id(os->st, b.user_id, &u) != 0) {
        to_login(resp, 302, shown[0] ? shown : NULL);
        goto out;
    }
    if (b.device_failures >= DEVICE_MAX_FAILURES)
        entry_page(os, resp, 429, b.csrf, u.username, NULL, LOCKED_MESSAGE, true);
    else
        entry_page(os, resp, 200, b.csrf, u.username, shown[0] ? shown : NULL, NULL, false);
out:
    store_user_clear(&u);
    store_bsession_clear(&b);
}

/* The consent form's answer: approve or deny, then 303 to the page saying which. */
static void device_decide(struct oauth_server *os, const struct oauth_request *req, json_t *f,
                          const struct store_user *u, struct oauth_response *resp)
{
    json_t *pending = oauth_unseal(os, "device", fget(f, "request"));
    unsigned char *uh = NULL;
    size_t uhlen = 0;
    char *gid = NULL;
    int64_t now = oauth_now();
    const char *uh64 = fget(pending, "user_hash");
    if (pending == NULL || json_integer_value(json_object_get(pending, "user")) != u->id ||
        json_integer_value(json_object_get(pending, "exp")) < now || uh64 == NULL ||
        b64url_decode(uh64, strlen(uh64), &uh, &uhlen) != 0 || uhlen != STORE_HASH_LEN) {
        oresp_error_page(os, resp, 400, "Request expired",
                         "This request is no longer valid. Enter the code from your device "
                         "again.");
        goto out;
    }
    const char *client_id = fget(pending, "client_id"), *scope = fget(pending, "scope");
    const char *decision = fget(f, "decision");
    bool approve = decision != NULL && strcmp(decision, "approve") == 0;
    int r;
    if (approve) {
        gid = crypto_random_token(16);
        struct store_grant g = {.grant_id = gid,
                                .user_id = u->id,
                                .client_id = (char *)client_id,
                                .scope = (char *)scope,
                                .resource = (char *)fget(pending, "resource"),
                                .created_at = now};
        r = store_device_decide(os->st, uh, now, u->id, &g);
    } else {
        r = store_device_decide(os->st, uh, now, u->id, NULL);
    }
    if (r == ERR_NOTFOUND) {
        oresp_error_page(os, resp, 400, "Code no longer valid",
                         "This code has expired or was already used. Start again on your "
                         "device.");
        goto out;
    }
    if (r != 0) {
        oresp_error_page(os, resp, 500, "Something went wrong",
                         "Your answer could not be recorded. Please try again.");
        goto out;
    }
    json_t *detail = json_pack("{s:s, s:s, s:s}", "decision", approve ? "approve" : "deny", "scope",
                               scope ? scope : "", "flow", "device");
    if (gid != NULL)
        json_object_set_new(detail, "grant", json_string(gid));
    oauth_audit(os, "consent", u->username, client_id, req->client_ip, detail);
    log_debug("oauth: device: %s %s the device authorization of %s", u->username,
              approve ? "approved" : "denied", client_id);
    oresp_redirect(resp, 303, approve ? "/device?done=approved" : "/device?done=denied");
out:
    free(gid);
    free(uh);
    json_decref(pending);
}

/* A code was entered: the consent page for it, or the entry page again saying why not. */
static void device_enter(struct oauth_server *os, const struct oauth_request *req, json_t *f,
                         const struct store_browser_session *b, const struct store_user *u,
                         struct oauth_response *resp)
{
    struct store_device d = {0};
    struct store_client c = {0};
    char code[OAUTH_USER_CODE_LEN + 1], shown[OAUTH_USER_CODE_LEN + 2];
    char *sealed = NULL, *uh64 = NULL, why[200];
    json_t *words = NULL;
    unsigned char uh[STORE_HASH_LEN];
    int64_t now = oauth_now();
    unsigned retry;
    const char *typed = fget(f, "user_code");
    if (b->device_failures >= DEVICE_MAX_FAILURES) {
        entry_page(os, resp, 429, b->csrf, u->username, NULL, LOCKED_MESSAGE, true);
        goto out;
    }
    if (!oauth_ratelimit(os, "device", req->client_ip, &retry)) {
        char msg[96], ra[16];
        snprintf(msg, sizeof(msg), "Too many codes from your network. Try again in %u s.", retry);
        entry_page(os, resp, 429, b->csrf, u->username, NULL, msg, false);
        snprintf(ra, sizeof(ra), "%u", retry);
        oresp_header(resp, "Retry-After", ra);
        goto out;
    }
    if (oauth_user_code_normalize(typed, code) != 0) {
        /* Not a guess at any code: not counted. */
        bool keep = typed != NULL && strlen(typed) <= OAUTH_USER_CODE_INPUT_MAX;
        entry_page(os, resp, 400, b->csrf, u->username, keep ? typed : NULL,
                   "That is not a code: a code is 8 letters, like BCDF-GHJK.", false);
        goto out;
    }
    oauth_user_code_format(code, shown);
    if (user_hash(os, code, uh) != 0) {
        oresp_error_page(os, resp, 500, "Something went wrong", "Please try again.");
        goto out;
    }
    int r = store_device_get_user(os->st, uh, &d);
    if (r != 0 && r != ERR_NOTFOUND) {
        oresp_error_page(os, resp, 500, "Something went wrong", "Please try again.");
        goto out;
    }
    if (r == ERR_NOTFOUND || d.status != DEVICE_PENDING || d.expires_at <= now) {
        int failures = b->device_failures + 1, counted;
        if (store_bsession_device_failure(os->st, b->hash, &counted) == 0)
            failures = counted; /* another request of this session may have counted too */
        else
            log_warn("oauth: could not count a wrong user code");
        oauth_audit(os, "device_code_wrong", u->username, NULL, req->client_ip,
                    json_pack("{s:i}", "failures", failures));
        log_debug("oauth: device: %s entered a wrong user code (%d of %d)", u->username, failures,
                  DEVICE_MAX_FAILURES);
        if (failures >= DEVICE_MAX_FAILURES)
            entry_page(os, resp, 429, b->csrf, u->username, NULL, LOCKED_MESSAGE, true);
        else
            entry_page(os, resp, 400, b->csrf, u->username, shown,
                       "That code is not valid, or it has expired. Check the code your device "
                       "shows.",
                       false);
        goto out;
    }
    if (oauth_client_lookup(os, d.client_id, &c, why, sizeof(why)) != 0) {
        oresp_error_page(os, resp, 400, "Unknown application",
                         "The application that asked for this code is not registered with %s "
                         "any more: %s",
                         os->server_name, why);
        goto out;
    }
    uh64 = b64url_encode(uh, sizeof(uh));
    int64_t exp = now + DEVICE_CONSENT_TTL < d.expires_at ? now + DEVICE_CONSENT_TTL : d.expires_at;
    json_t *pending = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "user_hash", uh64, "client_id",
                                d.client_id, "scope", d.scope ? d.scope : "", "resource",
                                d.resource ? d.resource : os->resource, "user", (json_int_t)u->id,
                                "exp", (json_int_t)exp);
    sealed = oauth_seal(os, "device", pending);
    json_decref(pending);
    words = oauth_scope_words(d.scope ? d.scope : "");
    const char *logo = json_string_value(json_object_get(c.metadata, "logo_uri"));
    struct html_consent page = {
        .server_name = os->server_name,
        .action = "/device",
        .csrf = b->csrf,
        .request_id = sealed,
        .username = u->username,
        .client_name = json_string_value(json_object_get(c.metadata, "client_name")),
        .client_id = c.client_id,
        .logo_uri = logo != NULL && strncmp(logo, "https://", 8) == 0 ? logo : NULL,
        .client_uri = json_string_value(json_object_get(c.metadata, "client_uri")),
        .unverified = c.kind != CLIENT_STATIC,
        .scopes = words,
        .resource = d.resource,
        .user_code = shown,
    };
    oresp_html(resp, 200, html_consent_page(&page));
    log_debug("oauth: device: %s entered the user code of %s; asking for consent", u->username,
              c.client_id);
out:
    crypto_wipe(code, sizeof(code));
    json_decref(words);
    free(sealed);
    free(uh64);
    store_client_clear(&c);
    store_device_clear(&d);
}

static void device_post(struct oauth_server *os, const struct oauth_request *req,
                        struct oauth_response *resp)
{
    json_t *f = oauth_page_params(req, resp, os);
    if (f == NULL)
        return;
    struct store_browser_session b;
    struct store_user u = {0};
    char code[OAUTH_USER_CODE_LEN + 1], shown[OAUTH_USER_CODE_LEN + 2] = "";
    if (browser_session(os, req, &b) != 0 || store_user_get_id(os->st, b.user_id, &u) != 0) {
        if (oauth_user_code_normalize(fget(f, "user_code"), code) == 0)
            oauth_user_code_format(code, shown);
        to_login(resp, 303, shown[0] ? shown : NULL);
        goto out;
    }
    if (!csrf_ok(fget(f, "csrf"), b.csrf)) {
        log_info("oauth: device page refused: CSRF token missing or wrong (user %s)", u.username);
        oresp_error_page(os, resp, 403, "Request refused",
                         "This form did not come from %s's device page.", os->server_name);
        goto out;
    }
    if (fget(f, "request") != NULL)
        device_decide(os, req, f, &u, resp);
    else
        device_enter(os, req, f, &b, &u, resp);
out:
    store_user_clear(&u);
    store_bsession_clear(&b);
    json_decref(f);
}

void oauth_device_page(struct oauth_server *os, const struct oauth_request *req,
                       struct oauth_response *resp)
{
    if (strcmp(req->method, "POST") == 0)
        device_post(os, req, resp);
    else
        device_get(os, req, resp);
}
