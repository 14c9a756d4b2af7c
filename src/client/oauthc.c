/* The OAuth client's state and its decisions (see oauthc.h): which token to send, what a 401 or
 * 403 means, refresh, logout. The sign-in flows themselves are in oauthc_flow.c. */
#include "client/oauthc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "client/oauthc_int.h"
#include "core/buf.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/reason.h"
#include "core/xmalloc.h"
#include "oauth/form.h"

#define ACCESS_TOKEN_MAX 16384
#define REFRESH_EARLY_S 60        /* refresh this long before expiry */
#define REFRESH_SPACING_S 5       /* proactive refreshes at least this far apart */
#define LEASE_STALE_MARGIN_S 60   /* a sign-in lease is stale after the auth timeout + this */
#define BACKOFF_FIRST_S 30
#define BACKOFF_MAX_S 600
#define STEP_UP_MAX 3

long long oauthc_now(void)
{
    return (long long)time(NULL);
}

void oauthc_say(const struct oauthc *oc, const char *fmt, ...)
{
    if (oc->o.quiet)
        return;
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "mcpgate: %s\n", line);
}

void oauthc_reply_clear(struct oauthc_reply *r)
{
    json_decref(r->doc);
    memset(r, 0, sizeof *r);
}

/* ---- HTTP ---- */

static void reply_fill(struct oauthc_reply *rep, struct hc_resp *resp)
{
    char q[260];
    rep->status = resp->status;
    const char *www = hc_header(&resp->headers, "WWW-Authenticate");
    if (www != NULL)
        snprintf(rep->www, sizeof rep->www, "%s", www);
    json_t *doc = json_loadb(resp->body.data != NULL ? resp->body.data : "", resp->body.len,
                             JSON_REJECT_DUPLICATES, NULL);
    if (json_is_object(doc)) {
        rep->doc = doc;
        doc = NULL;
        const char *e = json_string_value(json_object_get(rep->doc, "error"));
        const char *d = json_string_value(json_object_get(rep->doc, "error_description"));
        if (e != NULL)
            snprintf(rep->error, sizeof rep->error, "%s", reason_quote(e, 60, q));
        if (d != NULL)
            snprintf(rep->description, sizeof rep->description, "%s",
                     reason_quote(d, 240, q));
    }
    json_decref(doc);
}

static int do_request(struct oauthc *oc, const char *method, const char *url, const char *ctype,
                      const char *body, const char *authz, struct oauthc_reply *rep, char *why,
                      size_t whylen)
{
    const char *headers[4];
    size_t nh = 0;
    char *ct = NULL, *au = NULL;
    headers[nh++] = "Accept: application/json";
    if (ctype != NULL)
        headers[nh++] = ct = xasprintf("Content-Type: %s", ctype);
    if (authz != NULL)
        headers[nh++] = au = xasprintf("Authorization: %s", authz);
    headers[nh] = NULL;
    struct hc_req req = {.method = method,
                         .url = url,
                         .headers = headers,
                         .body = body,
                         .body_len = body != NULL ? strlen(body) : 0,
                         .timeout_ms = 30000,
                         .max_body = OAUTHC_DOC_MAX};
    struct hc_resp resp;
    hc_resp_init(&resp);
    memset(rep, 0, sizeof *rep);
    int r = hc_fetch(&oc->o.http, &req, &resp);
    if (au != NULL)
        crypto_wipe(au, strlen(au));
    free(au);
    free(ct);
    if (r != 0) {
        reason_set(why, whylen, "%s", resp.error);
        hc_resp_free(&resp);
        return r;
    }
    log_debug("oauth: %s %s -> %ld", method, url, resp.status);
    reply_fill(rep, &resp);
    if (resp.body.data != NULL)
        crypto_wipe(resp.body.data, resp.body.len); /* may hold tokens */
    hc_resp_free(&resp);
    return 0;
}

int oauthc_request(struct oauthc *oc, const char *url, json_t *form, const char *authz,
                   struct oauthc_reply *rep, char *why, size_t whylen)
{
    if (form == NULL)
        return do_request(oc, "GET", url, NULL, NULL, authz, rep, why, whylen);
    struct buf b;
    buf_init(&b, OAUTHC_DOC_MAX);
    const char *k;
    json_t *v;
    int r = 0;
    json_object_foreach (form, k, v) {
        if (!json_is_string(v))
            continue;
        char *ek = form_encode(k), *ev = form_encode(json_string_value(v));
        if (r == 0)
            r = buf_printf(&b, "%s%s=%s", b.len > 0 ? "&" : "", ek, ev);
        crypto_wipe(ev, strlen(ev));
        free(ek);
        free(ev);
    }
    if (r != 0) {
        reason_set(why, whylen, "the request is too large");
        buf_free(&b);
        return r;
    }
    r = do_request(oc, "POST", url, "application/x-www-form-urlencoded", b.data ? b.data : "",
                   authz, rep, why, whylen);
    if (b.data != NULL)
        crypto_wipe(b.data, b.len);
    buf_free(&b);
    return r;
}

int oauthc_post_json(struct oauthc *oc, const char *url, json_t *body, const char *authz,
                     struct oauthc_reply *rep, char *why, size_t whylen)
{
    char *s = json_dumps(body, JSON_COMPACT);
    if (s == NULL) {
        reason_set(why, whylen, "cannot serialize the request");
        return ERR_INTERNAL;
    }
    int r = do_request(oc, "POST", url, "application/json", s, authz, rep, why, whylen);
    free(s);
    return r;
}

/* ---- token documents ---- */

static bool visible_ascii(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if ((unsigned char)s[n] < 0x21 || (unsigned char)s[n] > 0x7e)
            return false;
    return n > 0 && n <= max;
}

int oauthc_token_parse(json_t *resp, long long now, json_t **out, char *why, size_t whylen)
{
    *out = NULL;
    if (!json_is_object(resp)) {
        reason_set(why, whylen, "the token response is not a JSON object");
        return ERR_PARSE;
    }
    json_t *at = json_object_get(resp, "access_token");
    json_t *tt = json_object_get(resp, "token_type");
    json_t *ei = json_object_get(resp, "expires_in");
    json_t *rt = json_object_get(resp, "refresh_token");
    json_t *sc = json_object_get(resp, "scope");
    if (!json_is_string(at) || !visible_ascii(json_string_value(at), ACCESS_TOKEN_MAX)) {
        reason_set(why, whylen,
                   "the token response has no usable access_token (a string of 1 to %d "
                   "visible ASCII characters)",
                   ACCESS_TOKEN_MAX);
        return ERR_INVALID;
    }
    if (!json_is_string(tt) || strcasecmp(json_string_value(tt), "Bearer") != 0) {
        reason_set(why, whylen, "the token response's token_type is not Bearer");
        return ERR_INVALID;
    }
    if (ei != NULL && !json_is_null(ei) &&
        !(json_is_integer(ei) && json_integer_value(ei) >= 0) &&
        !(json_is_real(ei) && json_real_value(ei) >= 0 && json_real_value(ei) < 1e12)) {
        reason_set(why, whylen, "the token response's expires_in is not a non-negative number");
        return ERR_INVALID;
    }
    if (rt != NULL && !json_is_null(rt) &&
        !(json_is_string(rt) && visible_ascii(json_string_value(rt), ACCESS_TOKEN_MAX))) {
        reason_set(why, whylen, "the token response's refresh_token is not a usable string");
        return ERR_INVALID;
    }
    if (sc != NULL && !json_is_null(sc) && !json_is_string(sc)) {
        reason_set(why, whylen, "the token response's scope is not a string");
        return ERR_INVALID;
    }
    json_t *doc = json_object();
    json_object_set(doc, "access_token", at);
    if (json_is_string(rt))
        json_object_set(doc, "refresh_token", rt);
    if (ei != NULL && !json_is_null(ei)) {
        long long secs = json_is_integer(ei) ? (long long)json_integer_value(ei)
                                             : (long long)json_real_value(ei);
        if (secs > 10LL * 365 * 86400)
            secs = 10LL * 365 * 86400;
        json_object_set_new(doc, "expires_at", json_integer(now + secs));
    }
    if (json_is_string(sc))
        json_object_set(doc, "scope", sc);
    json_object_set_new(doc, "obtained_at", json_integer(now));
    *out = doc;
    return 0;
}

int oauthc_tokens_save(struct oauthc *oc, json_t *tokens)
{
    pthread_mutex_lock(&oc->mu);
    json_decref(oc->tokens);
    oc->tokens = json_deep_copy(tokens);
    pthread_mutex_unlock(&oc->mu);
    return tstore_put(oc->o.store, oc->o.key, "tokens", tokens);
}

static void tokens_reload(struct oauthc *oc)
{
    json_t *t = NULL;
    if (tstore_get(oc->o.store, oc->o.key, "tokens", &t) != 0)
        t = NULL;
    pthread_mutex_lock(&oc->mu);
    json_decref(oc->tokens);
    oc->tokens = t;
    pthread_mutex_unlock(&oc->mu);
}

static void tokens_drop(struct oauthc *oc)
{
    if (tstore_remove(oc->o.store, oc->o.key, "tokens") != 0)
        log_debug("oauth: no tokens to remove");
    pthread_mutex_lock(&oc->mu);
    json_decref(oc->tokens);
    oc->tokens = NULL;
    pthread_mutex_unlock(&oc->mu);
}

/* A copy of the cached tokens (NULL when none). */
static json_t *tokens_get(struct oauthc *oc)
{
    pthread_mutex_lock(&oc->mu);
    json_t *t = oc->tokens != NULL ? json_deep_copy(oc->tokens) : NULL;
    pthread_mutex_unlock(&oc->mu);
    return t;
}

static bool tokens_fresh(json_t *t, long long now, long long margin)
{
    json_t *exp = json_object_get(t, "expires_at");
    return !json_is_integer(exp) || json_integer_value(exp) > now + margin;
}

int oauthc_new(const struct oauthc_opts *o, struct oauthc **out)
{
    *out = NULL;
    if (o->server_url == NULL || o->store == NULL || o->key == NULL)
        return ERR_USAGE;
    struct oauthc *oc = xcalloc(1, sizeof *oc);
    oc->o = *o;
    oc->callback_host = xstrdup(o->callback_host != NULL ? o->callback_host : "127.0.0.1");
    oc->o.callback_host = oc->callback_host;
    if (oc->o.auth_timeout_s <= 0)
        oc->o.auth_timeout_s = 300;
    pthread_mutex_init(&oc->mu, NULL);
    tokens_reload(oc);
    json_t *srv = NULL;
    if (tstore_get(o->store, o->key, "server", &srv) == 0)
        oc->server = srv;
    json_t *t = oc->tokens;
    if (t != NULL && json_is_string(json_object_get(t, "requested_scope")))
        oc->last_scope = xstrdup(json_string_value(json_object_get(t, "requested_scope")));
    *out = oc;
    return 0;
}

void oauthc_free(struct oauthc *oc)
{
    if (oc == NULL)
        return;
    json_decref(oc->tokens);
    json_decref(oc->server);
    free(oc->last_scope);
    free(oc->callback_host);
    pthread_mutex_destroy(&oc->mu);
    free(oc);
}

int oauthc_access_token(struct oauthc *oc, char **out)
{
    *out = NULL;
    int r = ERR_NOTFOUND;
    pthread_mutex_lock(&oc->mu);
    const char *at = json_string_value(json_object_get(oc->tokens, "access_token"));
    if (at != NULL) {
        *out = xstrdup(at);
        r = 0;
    }
    pthread_mutex_unlock(&oc->mu);
    return r;
}

/* How early to refresh: a minute, or a quarter of a short lifetime (a token that lives 20 s is
 * not refreshed the moment it arrives). */
static long long refresh_margin(json_t *t)
{
    json_t *exp = json_object_get(t, "expires_at"), *got = json_object_get(t, "obtained_at");
    if (!json_is_integer(exp) || !json_is_integer(got))
        return REFRESH_EARLY_S;
    long long life = json_integer_value(exp) - json_integer_value(got);
    return life / 4 < REFRESH_EARLY_S ? (life > 0 ? life / 4 : 0) : REFRESH_EARLY_S;
}

bool oauthc_refresh_due(struct oauthc *oc)
{
    long long now = oauthc_now();
    pthread_mutex_lock(&oc->mu);
    bool due = oc->tokens != NULL && json_object_get(oc->tokens, "refresh_token") != NULL &&
               !tokens_fresh(oc->tokens, now, refresh_margin(oc->tokens)) &&
               now >= oc->refresh_next;
    pthread_mutex_unlock(&oc->mu);
    return due;
}

/* Paces proactive refreshes: at most one per REFRESH_SPACING_S (tokens that come back
 * already due, expires_in 0, do not make every request refresh), and after failures in a row
 * (the authorization server down) 2, 4, ... up to 60 s apart. */
static void refresh_paced(struct oauthc *oc, bool ok)
{
    pthread_mutex_lock(&oc->mu);
    oc->refresh_fails = ok ? 0 : oc->refresh_fails + 1;
    long long wait = REFRESH_SPACING_S;
    if (oc->refresh_fails > 0) {
        int n = oc->refresh_fails < 6 ? oc->refresh_fails : 6;
        wait = (long long)1 << n;
        if (wait > 60)
            wait = 60;
    }
    oc->refresh_next = oauthc_now() + wait;
    pthread_mutex_unlock(&oc->mu);
}

/* ---- refresh ---- */

/* The server document, from memory, the store, or discovery. */
static int server_get(struct oauthc *oc, const struct www_auth *w, json_t **out, char *why,
                      size_t whylen)
{
    if (oc->server != NULL && w == NULL) {
        *out = json_incref(oc->server);
        return 0;
    }
    json_t *srv = NULL;
    int r = oauthc_discover(oc, w, &srv, why, whylen);
    if (r != 0)
        return r;
    json_decref(oc->server);
    oc->server = json_incref(srv);
    *out = srv;
    return 0;
}

/* Refreshes with the stored refresh token. 0 when new tokens are stored; ERR_INVALID when
 * the grant is gone (invalid_grant: tokens dropped; invalid_client: registration dropped);
 * ERR_NOTFOUND without a refresh token; transport errors as they come. */
static int refresh(struct oauthc *oc, char *why, size_t whylen)
{
    int r = ERR_INTERNAL;
    json_t *tok = tokens_get(oc), *srv = NULL, *client = NULL, *form = NULL, *newtok = NULL;
    struct oauthc_reply rep = {0};
    char *authz = NULL;
    const char *rt = json_string_value(json_object_get(tok, "refresh_token"));
    if (rt == NULL) {
        r = ERR_NOTFOUND;
        goto out;
    }
    if ((r = server_get(oc, NULL, &srv, why, whylen)) != 0)
        goto out;
    if ((client = oauthc_client_load(oc, srv)) == NULL) {
        reason_set(why, whylen, "no client registration for this authorization server");
        tokens_drop(oc);
        r = ERR_INVALID;
        goto out;
    }
    const char *endpoint =
        json_string_value(json_object_get(json_object_get(srv, "metadata"), "token_endpoint"));
    if (endpoint == NULL) {
        reason_set(why, whylen, "the authorization server has no token endpoint");
        r = ERR_INVALID;
        goto out;
    }
    form = json_object();
    json_object_set_new(form, "grant_type", json_string("refresh_token"));
    json_object_set_new(form, "refresh_token", json_string(rt));
    const char *res = oauthc_resource(oc, srv);
    if (res != NULL)
        json_object_set_new(form, "resource", json_string(res));
    oauthc_client_auth(client, form, &authz);
    oauthc_say(oc, "refreshing the access token");
    if ((r = oauthc_request(oc, endpoint, form, authz, &rep, why, whylen)) != 0)
        goto out;
    if (rep.status != 200) {
        if (strcmp(rep.error, "invalid_grant") == 0) {
            reason_set(why, whylen, "the authorization server refused the refresh token "
                                    "(invalid_grant: revoked or expired)");
            tokens_drop(oc);
            r = ERR_INVALID;
        } else if (strcmp(rep.error, "invalid_client") == 0 || rep.status == 401) {
            reason_set(why, whylen, "the authorization server no longer knows this client "
                                    "(invalid_client); registering again");
            if (tstore_remove(oc->o.store, oc->o.key, "client") != 0)
                log_debug("oauth: no client to remove");
            tokens_drop(oc);
            r = ERR_INVALID;
        } else {
            reason_set(why, whylen, "refresh failed: HTTP %ld %s%s%s", rep.status, rep.error,
                       rep.description[0] ? ": " : "", rep.description);
            r = ERR_IO;
        }
        goto out;
    }
    if ((r = oauthc_token_parse(rep.doc, oauthc_now(), &newtok, why, whylen)) != 0)
        goto out;
    /* RFC 6749 6: a new refresh token is optional; keep the old one when none came */
    if (json_object_get(newtok, "refresh_token") == NULL)
        json_object_set_new(newtok, "refresh_token", json_string(rt));
    if (json_object_get(newtok, "scope") == NULL && json_object_get(tok, "scope") != NULL)
        json_object_set(newtok, "scope", json_object_get(tok, "scope"));
    const char *keep[] = {"requested_scope", "issuer", "client_id", "resource"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        if (json_object_get(tok, keep[i]) != NULL)
            json_object_set(newtok, keep[i], json_object_get(tok, keep[i]));
    if ((r = oauthc_tokens_save(oc, newtok)) != 0)
        log_warn("oauth: cannot store the refreshed tokens (%s); this process keeps using them",
                 err_str(r));
    oauthc_say(oc, "access token refreshed");
    r = 0;
out:
    if (authz != NULL) {
        crypto_wipe(authz, strlen(authz));
        free(authz);
    }
    oauthc_reply_clear(&rep);
    json_decref(newtok);
    json_decref(form);
    json_decref(client);
    json_decref(srv);
    json_decref(tok);
    return r;
}

/* ---- the lease and the challenge ---- */

static int lease_take(struct oauthc *oc, char *why, size_t whylen)
{
    int stale = oc->o.auth_timeout_s + LEASE_STALE_MARGIN_S;
    long holder = 0;
    int r = tstore_lease_take(oc->o.store, oc->o.key, "auth", stale, &holder);
    if (r == 0)
        return 0;
    if (r != ERR_EXISTS) {
        reason_set(why, whylen, "cannot use the token store: %s", err_str(r));
        return r;
    }
    oauthc_say(oc, "another mcpgate (pid %ld) is signing in or refreshing; waiting for it",
               holder);
    r = tstore_lease_wait(oc->o.store, oc->o.key, "auth", stale,
                          (oc->o.auth_timeout_s + LEASE_STALE_MARGIN_S) * 1000);
    if (r != 0)
        reason_set(why, whylen, "timed out waiting for another mcpgate's sign-in");
    return r;
}

static void lease_release(struct oauthc *oc)
{
    tstore_lease_release(oc->o.store, oc->o.key, "auth");
}

/* After taking the lease: did another process store a token other than the one that failed
 * (or, with failed NULL, any fresh one)? */
static bool someone_else_signed_in(struct oauthc *oc, const char *failed)
{
    tokens_reload(oc);
    json_t *t = tokens_get(oc);
    const char *at = json_string_value(json_object_get(t, "access_token"));
    bool yes = at != NULL && tokens_fresh(t, oauthc_now(), 0) &&
               (failed == NULL || strcmp(at, failed) != 0);
    json_decref(t);
    return yes;
}

int oauthc_refresh_now(struct oauthc *oc, char *why, size_t whylen)
{
    char *before = NULL;
    if (oauthc_access_token(oc, &before) != 0)
        return ERR_NOTFOUND;
    int r = lease_take(oc, why, whylen);
    if (r != 0)
        goto out;
    if (someone_else_signed_in(oc, before) && !oauthc_refresh_due(oc)) {
        r = 0;
    } else {
        r = refresh(oc, why, whylen);
        refresh_paced(oc, r == 0);
    }
    lease_release(oc);
out:
    free(before);
    return r;
}

static void backoff_fail(struct oauthc *oc, const char *why)
{
    oc->fail_backoff = oc->fail_backoff == 0 ? BACKOFF_FIRST_S : oc->fail_backoff * 2;
    if (oc->fail_backoff > BACKOFF_MAX_S)
        oc->fail_backoff = BACKOFF_MAX_S;
    oc->fail_until = oauthc_now() + oc->fail_backoff;
    snprintf(oc->fail_why, sizeof oc->fail_why, "%s", why);
}

/* Sign-in with scope, under the lease already held. */
static int sign_in_locked(struct oauthc *oc, const struct www_auth *w, const char *scope_in,
                          char *why, size_t whylen)
{
    json_t *srv = NULL;
    char *scope = NULL;
    int r;
    if (!oc->o.interactive && oc->o.flow != OAUTHC_FLOW_CLIENT_CREDENTIALS) {
        reason_set(why, whylen,
                   "not signed in to %s; run: mcpgate login %s", oc->o.server_url,
                   oc->o.server_url);
        return ERR_BADSTATE;
    }
    if ((r = server_get(oc, w, &srv, why, whylen)) != 0)
        return r;
    if (oc->o.scope != NULL)
        scope = xstrdup(oc->o.scope);
    else if (scope_in != NULL)
        scope = xstrdup(scope_in);
    else
        scope = discovery_scope(w != NULL ? w->scope : NULL, json_object_get(srv, "prm"), NULL);
    /* 2026-07-28: ask for offline_access (a refresh token) when the authorization server lists
     * it, for a user's sign-in; never when it does not (it would refuse the scope) */
    json_t *as_scopes = json_object_get(json_object_get(srv, "metadata"), "scopes_supported");
    bool offline = false;
    size_t i;
    json_t *v;
    json_array_foreach (as_scopes, i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), "offline_access") == 0)
            offline = true;
    if (offline && scope != NULL && oc->o.scope == NULL &&
        oc->o.flow != OAUTHC_FLOW_CLIENT_CREDENTIALS) {
        char *more = discovery_scope("offline_access", NULL, scope);
        if (more != NULL) {
            free(scope);
            scope = more;
        }
    }
    r = oauthc_sign_in(oc, srv, scope, why, whylen);
    if (r == 0) {
        free(oc->last_scope);
        oc->last_scope = scope;
        scope = NULL;
    }
    free(scope);
    json_decref(srv);
    return r;
}

int oauthc_challenge(struct oauthc *oc, long status, const char *www_authenticate,
                     const char *failed_token, char *why, size_t whylen)
{
    struct www_auth w = {0};
    bool have_w = www_authenticate != NULL && www_auth_parse(www_authenticate, &w) == 0;
    int r;
    char *scope = NULL;
    if (www_authenticate != NULL && !have_w)
        log_debug("oauth: unparsable WWW-Authenticate; discovering from well-known URLs");
    bool step_up = status == 403 && have_w && w.error != NULL &&
                   strcmp(w.error, "insufficient_scope") == 0;
    if (status == 403 && !step_up) {
        reason_set(why, whylen, "the server refused access (403%s%s)", have_w && w.error ? " " : "",
                   have_w && w.error ? w.error : "");
        r = ERR_INVALID;
        goto out;
    }
    if (step_up) {
        if (oc->step_ups >= STEP_UP_MAX) {
            reason_set(why, whylen,
                       "the server still asks for more scope (%s) after %d sign-ins; giving up",
                       w.scope != NULL ? w.scope : "unnamed", STEP_UP_MAX);
            r = ERR_INVALID;
            goto out;
        }
        scope = discovery_scope(w.scope, NULL, oc->last_scope);
        if (scope != NULL && oc->last_scope != NULL && strcmp(scope, oc->last_scope) == 0 &&
            oc->step_ups > 0) {
            reason_set(why, whylen, "the server asks for scope '%s', which the authorization "
                                    "server did not grant", w.scope != NULL ? w.scope : "");
            r = ERR_INVALID;
            goto out;
        }
        oc->step_ups++;
        oauthc_say(oc, "the server needs more access (scope %s); signing in again",
                   w.scope != NULL ? w.scope : "?");
    }
    if ((r = lease_take(oc, why, whylen)) != 0)
        goto out;
    if (!step_up && someone_else_signed_in(oc, failed_token)) {
        oauthc_say(oc, "using the tokens another mcpgate stored");
        lease_release(oc);
        r = 0;
        goto out;
    }
    if (!step_up) {
        r = refresh(oc, why, whylen);
        if (r == 0 || (r != ERR_NOTFOUND && r != ERR_INVALID)) {
            lease_release(oc);
            goto out;
        }
        if (r == ERR_INVALID)
            oauthc_say(oc, "%s; signing in again", why);
    }
    long long now = oauthc_now();
    if (now < oc->fail_until) {
        reason_set(why, whylen, "sign-in failed %lld s ago (%s); not retrying for %lld s, or "
                                "run: mcpgate login %s",
                   (long long)oc->fail_backoff - (oc->fail_until - now), oc->fail_why,
                   oc->fail_until - now, oc->o.server_url);
        lease_release(oc);
        r = ERR_BADSTATE;
        goto out;
    }
    r = sign_in_locked(oc, have_w ? &w : NULL, scope, why, whylen);
    lease_release(oc);
    if (r == 0) {
        oc->fail_backoff = 0;
        oc->fail_until = 0;
        if (!step_up)
            oc->step_ups = 0;
    } else if (r != ERR_BADSTATE) {
        backoff_fail(oc, why);
    }
out:
    free(scope);
    www_auth_clear(&w);
    return r;
}

int oauthc_login(struct oauthc *oc, bool force, char *why, size_t whylen)
{
    int r = lease_take(oc, why, whylen);
    if (r != 0)
        return r;
    if (!force && someone_else_signed_in(oc, NULL)) {
        oauthc_say(oc, "already signed in (mcpgate logout first, or --force)");
        lease_release(oc);
        return 0;
    }
    bool saved = oc->o.interactive;
    oc->o.interactive = true;
    /* force: discover again (the server may have moved its authorization server) */
    json_decref(oc->server);
    oc->server = NULL;
    r = sign_in_locked(oc, NULL, NULL, why, whylen);
    oc->o.interactive = saved;
    lease_release(oc);
    return r;
}

/* ---- logout ---- */

static bool revoke_one(struct oauthc *oc, const char *endpoint, json_t *client, const char *token,
                       const char *hint)
{
    json_t *form = json_object();
    char *authz = NULL, why[300];
    struct oauthc_reply rep = {0};
    json_object_set_new(form, "token", json_string(token));
    json_object_set_new(form, "token_type_hint", json_string(hint));
    oauthc_client_auth(client, form, &authz);
    bool ok = oauthc_request(oc, endpoint, form, authz, &rep, why, sizeof why) == 0 &&
              rep.status == 200;
    if (!ok)
        log_warn("revocation of the %s failed: %s", hint,
                 rep.status != 0 ? rep.error : why);
    if (authz != NULL) {
        crypto_wipe(authz, strlen(authz));
        free(authz);
    }
    oauthc_reply_clear(&rep);
    json_decref(form);
    return ok;
}

int oauthc_logout(struct oauthc *oc, bool *revoked, char *why, size_t whylen)
{
    if (revoked != NULL)
        *revoked = false;
    json_t *tok = tokens_get(oc), *client = NULL, *stored = NULL;
    int r;
    if (tok == NULL && oc->server == NULL &&
        tstore_get(oc->o.store, oc->o.key, "client", &stored) != 0) {
        reason_set(why, whylen, "nothing is stored for %s", oc->o.server_url);
        return ERR_NOTFOUND; /* and the lease would create the entry it is to remove */
    }
    json_decref(stored);
    if ((r = lease_take(oc, why, whylen)) != 0) {
        json_decref(tok);
        return r;
    }
    const char *endpoint = json_string_value(
        json_object_get(json_object_get(oc->server, "metadata"), "revocation_endpoint"));
    if (tok != NULL && oc->server != NULL && endpoint != NULL &&
        (client = oauthc_client_load(oc, oc->server)) != NULL) {
        const char *rt = json_string_value(json_object_get(tok, "refresh_token"));
        const char *at = json_string_value(json_object_get(tok, "access_token"));
        bool ok = true;
        if (rt != NULL)
            ok = revoke_one(oc, endpoint, client, rt, "refresh_token") && ok;
        if (at != NULL)
            ok = revoke_one(oc, endpoint, client, at, "access_token") && ok;
        if (revoked != NULL)
            *revoked = ok;
    }
    lease_release(oc);
    r = tstore_forget(oc->o.store, oc->o.key);
    pthread_mutex_lock(&oc->mu);
    json_decref(oc->tokens);
    oc->tokens = NULL;
    pthread_mutex_unlock(&oc->mu);
    json_decref(oc->server);
    oc->server = NULL;
    json_decref(client);
    json_decref(tok);
    if (r == ERR_NOTFOUND)
        reason_set(why, whylen, "nothing is stored for %s", oc->o.server_url);
    return r;
}

int oauthc_derive_port(const char *server_url)
{
    unsigned char h[CRYPTO_SHA256_LEN];
    crypto_sha256(server_url, strlen(server_url), h);
    return 20000 + (int)(((unsigned)h[0] << 8 | h[1]) % 20000);
}
