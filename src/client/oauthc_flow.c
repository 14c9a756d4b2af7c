/* The OAuth client's conversations with the authorization server: discovery, registration
 * (static, CIMD, DCR), and the three ways to get tokens (browser with PKCE, device code,
 * client credentials). See oauthc.h. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/callback.h"
#include "client/oauthc_int.h"
#include "core/buf.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/reason.h"
#include "core/xmalloc.h"
#include "oauth/form.h"

extern char **environ;

#define DEVICE_INTERVAL_DEFAULT 5
#define DEVICE_INTERVAL_MAX 60

/* ---- small helpers ---- */

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static bool json_array_has(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach (arr, i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return true;
    return false;
}

static void describe_reply(const struct oauthc_reply *rep, char *out, size_t outlen)
{
    if (rep->error[0] != '\0')
        reason_set(out, outlen, "HTTP %ld, %s%s%s", rep->status, rep->error,
                   rep->description[0] ? ": " : "", rep->description);
    else
        reason_set(out, outlen, "HTTP %ld", rep->status);
}

const char *oauthc_resource(struct oauthc *oc, json_t *server)
{
    if (oc->o.no_resource)
        return NULL;
    if (oc->o.resource != NULL)
        return oc->o.resource;
    return jstr(server, "resource");
}

/* ---- discovery ---- */

/* Fetches a JSON document: 0 with *doc on 200 and a JSON object; ERR_NOTFOUND on 404 (or
 * any 4xx: some servers answer 400 or 405 for unknown paths); an error otherwise. */
static int fetch_doc(struct oauthc *oc, const char *url, json_t **doc, char *why, size_t whylen)
{
    struct oauthc_reply rep;
    *doc = NULL;
    int r = oauthc_request(oc, url, NULL, NULL, &rep, why, whylen);
    if (r != 0)
        return r;
    if (rep.status == 200 && rep.doc != NULL) {
        *doc = rep.doc;
        rep.doc = NULL;
        r = 0;
    } else if (rep.status >= 400 && rep.status < 500) {
        reason_set(why, whylen, "%s: HTTP %ld", url, rep.status);
        r = ERR_NOTFOUND;
    } else {
        reason_set(why, whylen, "%s: HTTP %ld%s", url, rep.status,
                   rep.status == 200 ? " but not a JSON object" : "");
        r = ERR_INVALID;
    }
    oauthc_reply_clear(&rep);
    return r;
}

/* The protected resource metadata: from the challenge's URL, else the well-known ones.
 * ERR_NOTFOUND when none exists (a 2025-03-26 server). */
static int discover_prm(struct oauthc *oc, const struct www_auth *w, json_t **prm, char *why,
                        size_t whylen)
{
    json_t *urls = discovery_prm_urls(oc->o.server_url), *v;
    size_t i;
    int r = ERR_NOTFOUND;
    char last[300] = "";
    *prm = NULL;
    if (urls == NULL) {
        reason_set(why, whylen, "the server URL is not an absolute http(s) URL");
        return ERR_INVALID;
    }
    if (w != NULL && w->resource_metadata != NULL) {
        /* a remote server does not get to make us fetch from this machine's own services */
        if (hc_url_is_loopback(w->resource_metadata) && !hc_url_is_loopback(oc->o.server_url))
            log_warn("oauth: ignoring the server's resource_metadata on this machine (%s): the "
                     "server is not",
                     w->resource_metadata);
        else
            json_array_insert_new(urls, 0, json_string(w->resource_metadata));
    }
    json_array_foreach (urls, i, v) {
        const char *url = json_string_value(v);
        char cwhy[300];
        if (hc_url_check(&oc->o.http, url, cwhy, sizeof cwhy) != 0) {
            log_warn("oauth: skipping protected resource metadata URL: %s", cwhy);
            continue;
        }
        json_t *doc = NULL;
        r = fetch_doc(oc, url, &doc, last, sizeof last);
        if (r == ERR_NOTFOUND)
            continue;
        if (r != 0)
            break;
        if ((r = discovery_prm_check(doc, oc->o.server_url, cwhy, sizeof cwhy)) != 0) {
            reason_set(last, sizeof last, "protected resource metadata at %s: %s", url, cwhy);
            json_decref(doc);
            r = ERR_INVALID;
            break; /* a document that exists but is wrong is an error, not a reason to go on */
        }
        log_debug("oauth: protected resource metadata from %s", url);
        *prm = doc;
        r = 0;
        break;
    }
    json_decref(urls);
    if (r != 0)
        reason_set(why, whylen, "%s", last);
    return r;
}

static int discover_as(struct oauthc *oc, const char *issuer, json_t **asm_doc, char *why,
                       size_t whylen)
{
    json_t *urls = discovery_as_urls(issuer), *v;
    size_t i;
    int r = ERR_NOTFOUND;
    char last[300] = "";
    *asm_doc = NULL;
    if (urls == NULL) {
        reason_set(why, whylen, "the authorization server '%s' is not an http(s) URL", issuer);
        return ERR_INVALID;
    }
    if (hc_url_is_loopback(issuer) && !hc_url_is_loopback(oc->o.server_url)) {
        json_decref(urls);
        reason_set(why, whylen,
                   "the server names an authorization server on this machine (%s) but is not "
                   "on it; refused",
                   issuer);
        return ERR_INVALID;
    }
    json_array_foreach (urls, i, v) {
        json_t *doc = NULL;
        char cwhy[300];
        r = fetch_doc(oc, json_string_value(v), &doc, last, sizeof last);
        if (r == ERR_NOTFOUND)
            continue;
        if (r != 0)
            break;
        if ((r = discovery_as_check(doc, issuer, cwhy, sizeof cwhy)) != 0) {
            reason_set(last, sizeof last, "authorization server metadata at %s: %s",
                       json_string_value(v), cwhy);
            json_decref(doc);
            r = ERR_INVALID;
            break;
        }
        log_debug("oauth: authorization server metadata from %s", json_string_value(v));
        *asm_doc = doc;
        r = 0;
        break;
    }
    json_decref(urls);
    if (r != 0)
        reason_set(why, whylen, "%s", last);
    return r;
}

int oauthc_discover(struct oauthc *oc, const struct www_auth *w, json_t **server, char *why,
                    size_t whylen)
{
    json_t *prm = NULL, *asm_doc = NULL, *srv = NULL;
    char *issuer = NULL, *resource = NULL;
    bool legacy = false;
    *server = NULL;
    oauthc_say(oc, "discovering how %s signs in", oc->o.server_url);
    int r = discover_prm(oc, w, &prm, why, whylen);
    if (r == 0) {
        json_t *as = json_array_get(json_object_get(prm, "authorization_servers"), 0);
        issuer = xstrdup(json_string_value(as));
        resource = xstrdup(jstr(prm, "resource"));
        if ((r = discover_as(oc, issuer, &asm_doc, why, whylen)) != 0)
            goto out;
    } else if (r == ERR_NOTFOUND) {
        /* 2025-03-26: no resource metadata; the server's origin is the authorization server,
         * with its metadata or with the default endpoints */
        legacy = true;
        json_t *fb = discovery_legacy_fallback(oc->o.server_url);
        issuer = xstrdup(jstr(fb, "issuer"));
        json_decref(fb);
        r = discover_as(oc, issuer, &asm_doc, why, whylen);
        if (r == ERR_NOTFOUND) {
            log_info("oauth: no metadata at all; using %s/authorize, /token, /register", issuer);
            asm_doc = discovery_legacy_fallback(oc->o.server_url);
            r = 0;
        } else if (r != 0) {
            goto out;
        }
        resource = discovery_canonical_resource(oc->o.server_url);
    } else {
        goto out;
    }
    srv = json_object();
    json_object_set_new(srv, "issuer", json_string(issuer));
    json_object_set_new(srv, "metadata", asm_doc);
    asm_doc = NULL;
    json_object_set_new(srv, "prm", prm != NULL ? prm : json_null());
    prm = NULL;
    json_object_set_new(srv, "resource", json_string(resource));
    json_object_set_new(srv, "legacy", json_boolean(legacy));
    json_object_set_new(srv, "fetched_at", json_integer(oauthc_now()));
    if ((r = tstore_put(oc->o.store, oc->o.key, "server", srv)) != 0) {
        reason_set(why, whylen, "cannot write the token store: %s", err_str(r));
        goto out;
    }
    oauthc_say(oc, "authorization server: %s", issuer);
    *server = srv;
    srv = NULL;
    r = 0;
out:
    json_decref(srv);
    json_decref(prm);
    json_decref(asm_doc);
    free(issuer);
    free(resource);
    return r;
}

/* ---- registration ---- */

json_t *oauthc_client_load(struct oauthc *oc, json_t *server)
{
    const char *issuer = jstr(server, "issuer");
    if (oc->o.static_client_info != NULL) {
        json_t *c = json_deep_copy(oc->o.static_client_info);
        json_object_set_new(c, "issuer", json_string(issuer != NULL ? issuer : ""));
        json_object_set_new(c, "source", json_string("static"));
        if (jstr(c, "token_endpoint_auth_method") == NULL) {
            json_t *methods = json_object_get(json_object_get(server, "metadata"),
                                              "token_endpoint_auth_methods_supported");
            const char *m = "none";
            if (jstr(c, "client_secret") != NULL)
                m = json_array_size(methods) > 0 && !json_array_has(methods, "client_secret_basic")
                        ? "client_secret_post"
                        : "client_secret_basic";
            json_object_set_new(c, "token_endpoint_auth_method", json_string(m));
        }
        return c;
    }
    json_t *c = NULL;
    if (tstore_get(oc->o.store, oc->o.key, "client", &c) != 0)
        return NULL;
    if (issuer == NULL || jstr(c, "issuer") == NULL || strcmp(jstr(c, "issuer"), issuer) != 0 ||
        jstr(c, "client_id") == NULL) {
        log_info("oauth: the stored registration belongs to another authorization server");
        json_decref(c);
        return NULL;
    }
    return c;
}

void oauthc_client_auth(json_t *client, json_t *form, char **authz)
{
    *authz = NULL;
    const char *id = jstr(client, "client_id"), *secret = jstr(client, "client_secret");
    const char *method = jstr(client, "token_endpoint_auth_method");
    if (method == NULL)
        method = secret != NULL ? "client_secret_basic" : "none";
    if (secret != NULL && strcmp(method, "client_secret_basic") == 0) {
        /* RFC 6749 2.3.1: both parts form-urlencoded before base64 */
        char *eid = form_encode(id), *esec = form_encode(secret);
        char *pair = xasprintf("%s:%s", eid, esec);
        size_t n = strlen(pair);
        char *b64 = b64_encode(pair, n);
        *authz = xasprintf("Basic %s", b64);
        crypto_wipe(pair, n);
        crypto_wipe(b64, strlen(b64));
        crypto_wipe(esec, strlen(esec));
        free(pair);
        free(b64);
        free(eid);
        free(esec);
        return;
    }
    json_object_set_new(form, "client_id", json_string(id != NULL ? id : ""));
    if (secret != NULL && strcmp(method, "client_secret_post") == 0)
        json_object_set_new(form, "client_secret", json_string(secret));
}

/* Does a registration fit this sign-in (its redirect URI, when one is needed)? */
static bool client_fits(json_t *client, const char *redirect_uri)
{
    if (redirect_uri == NULL)
        return true;
    json_t *uris = json_object_get(client, "redirect_uris");
    if (!json_is_array(uris))
        return true; /* static info without redirect_uris: the AS knows better */
    return json_array_has(uris, redirect_uri);
}

/* DCR (RFC 7591), storing the result. */
static int dcr(struct oauthc *oc, json_t *server, const char *redirect_uri, const char *scope,
               json_t **client, char *why, size_t whylen)
{
    json_t *md = json_object(), *reg = NULL;
    struct oauthc_reply rep = {0};
    int r;
    const char *endpoint = jstr(json_object_get(server, "metadata"), "registration_endpoint");
    *client = NULL;
    if (endpoint == NULL) {
        reason_set(why, whylen,
                   "the authorization server %s offers no dynamic client registration; register "
                   "a client there and pass --static-oauth-client-info '{\"client_id\":...}'",
                   jstr(server, "issuer"));
        r = ERR_UNSUPPORTED;
        goto out;
    }
    bool cc = oc->o.flow == OAUTHC_FLOW_CLIENT_CREDENTIALS;
    bool device = oc->o.flow == OAUTHC_FLOW_DEVICE;
    json_object_set_new(md, "client_name",
                        json_string(oc->o.client_name != NULL ? oc->o.client_name : "mcpgate"));
    json_object_set_new(md, "client_uri", json_string("https://github.com/mcpgate/mcpgate"));
    json_object_set_new(md, "software_id", json_string("mcpgate"));
    json_object_set_new(md, "software_version", json_string(MCPGATE_VERSION));
    json_object_set_new(md, "application_type", json_string("native"));
    if (redirect_uri != NULL)
        json_object_set_new(md, "redirect_uris", json_pack("[s]", redirect_uri));
    else
        json_object_set_new(md, "redirect_uris", json_array());
    if (cc) {
        json_object_set_new(md, "grant_types", json_pack("[s]", "client_credentials"));
        json_object_set_new(md, "token_endpoint_auth_method", json_string("client_secret_basic"));
        json_object_set_new(md, "response_types", json_array());
    } else if (device) {
        json_object_set_new(md, "grant_types",
                            json_pack("[ss]", "urn:ietf:params:oauth:grant-type:device_code",
                                      "refresh_token"));
        json_object_set_new(md, "token_endpoint_auth_method", json_string("none"));
        json_object_set_new(md, "response_types", json_array());
    } else {
        json_object_set_new(md, "grant_types",
                            json_pack("[ss]", "authorization_code", "refresh_token"));
        json_object_set_new(md, "response_types", json_pack("[s]", "code"));
        json_object_set_new(md, "token_endpoint_auth_method", json_string("none"));
    }
    if (scope != NULL)
        json_object_set_new(md, "scope", json_string(scope));
    if (oc->o.static_client_metadata != NULL)
        json_object_update(md, oc->o.static_client_metadata);
    oauthc_say(oc, "registering with %s", jstr(server, "issuer"));
    if ((r = oauthc_post_json(oc, endpoint, md, NULL, &rep, why, whylen)) != 0)
        goto out;
    if ((rep.status != 201 && rep.status != 200) || rep.doc == NULL ||
        jstr(rep.doc, "client_id") == NULL) {
        char d[300];
        describe_reply(&rep, d, sizeof d);
        reason_set(why, whylen, "client registration at %s failed: %s", endpoint, d);
        r = ERR_INVALID;
        goto out;
    }
    reg = json_deep_copy(rep.doc);
    /* what the AS did not echo, we asked for */
    const char *keep[] = {"redirect_uris", "token_endpoint_auth_method", "grant_types"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        json_t *v = json_object_get(reg, keep[i]);
        bool bad = i == 1 ? !json_is_string(v) : !json_is_array(v); /* null, a number, ... */
        if (bad)
            json_object_set(reg, keep[i], json_object_get(md, keep[i]));
    }
    const char *method = jstr(reg, "token_endpoint_auth_method");
    if (jstr(reg, "client_secret") == NULL && (method == NULL || strcmp(method, "none") != 0))
        json_object_set_new(reg, "token_endpoint_auth_method", json_string("none"));
    json_object_set_new(reg, "issuer", json_string(jstr(server, "issuer")));
    json_object_set_new(reg, "source", json_string("dcr"));
    if ((r = tstore_put(oc->o.store, oc->o.key, "client", reg)) != 0) {
        reason_set(why, whylen, "cannot store the registration: %s", err_str(r));
        goto out;
    }
    *client = reg;
    reg = NULL;
    r = 0;
out:
    oauthc_reply_clear(&rep);
    json_decref(reg);
    json_decref(md);
    return r;
}

/* The client to use: static, stored (if it fits), CIMD, or a new DCR one. */
static int ensure_client(struct oauthc *oc, json_t *server, const char *redirect_uri,
                         const char *scope, bool force_new, json_t **client, char *why,
                         size_t whylen)
{
    *client = NULL;
    if (oc->o.static_client_info != NULL) {
        *client = oauthc_client_load(oc, server);
        return 0;
    }
    json_t *md = json_object_get(server, "metadata");
    if (oc->o.client_metadata_url != NULL) {
        if (json_is_true(json_object_get(md, "client_id_metadata_document_supported"))) {
            json_t *c = json_object();
            json_object_set_new(c, "client_id", json_string(oc->o.client_metadata_url));
            json_object_set_new(c, "token_endpoint_auth_method", json_string("none"));
            json_object_set_new(c, "issuer", json_string(jstr(server, "issuer")));
            json_object_set_new(c, "source", json_string("cimd"));
            *client = c;
            return 0;
        }
        log_info("oauth: %s does not accept client ID metadata documents; registering "
                 "dynamically", jstr(server, "issuer"));
    }
    if (!force_new) {
        json_t *c = oauthc_client_load(oc, server);
        if (c != NULL && client_fits(c, redirect_uri)) {
            *client = c;
            return 0;
        }
        json_decref(c);
    }
    return dcr(oc, server, redirect_uri, scope, client, why, whylen);
}

/* ---- the token request shared by every grant ---- */

struct token_ask {
    json_t *server, *client;
    const char *scope;   /* requested, kept with the tokens */
};

static int token_request(struct oauthc *oc, const struct token_ask *a, json_t *form,
                         struct oauthc_reply *rep, char *why, size_t whylen)
{
    const char *endpoint = jstr(json_object_get(a->server, "metadata"), "token_endpoint");
    char *authz = NULL;
    oauthc_client_auth(a->client, form, &authz);
    const char *res = oauthc_resource(oc, a->server);
    if (res != NULL && json_object_get(form, "resource") == NULL)
        json_object_set_new(form, "resource", json_string(res));
    int r = oauthc_request(oc, endpoint, form, authz, rep, why, whylen);
    if (authz != NULL) {
        crypto_wipe(authz, strlen(authz));
        free(authz);
    }
    return r;
}

/* A 200 token response: parse, annotate, store. */
static int tokens_accept(struct oauthc *oc, const struct token_ask *a, struct oauthc_reply *rep,
                         char *why, size_t whylen)
{
    json_t *tok = NULL;
    int r = oauthc_token_parse(rep->doc, oauthc_now(), &tok, why, whylen);
    if (r != 0)
        return r;
    if (a->scope != NULL)
        json_object_set_new(tok, "requested_scope", json_string(a->scope));
    json_object_set_new(tok, "issuer", json_string(jstr(a->server, "issuer")));
    json_object_set_new(tok, "client_id", json_string(jstr(a->client, "client_id")));
    const char *res = oauthc_resource(oc, a->server);
    if (res != NULL)
        json_object_set_new(tok, "resource", json_string(res));
    r = oauthc_tokens_save(oc, tok);
    if (r != 0)
        reason_set(why, whylen, "cannot store the tokens: %s", err_str(r));
    json_decref(tok);
    return r;
}

/* ---- the browser ---- */

/* Runs "CMD URL" through /bin/sh (CMD may hold arguments; the URL is "$1", never parsed by the
 * shell), detached from our stdio so it never writes into the protocol stream. */
static void *reaper(void *arg)
{
    pid_t pid = (pid_t)(intptr_t)arg;
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return NULL;
}

static int spawn_opener(const char *cmd, const char *url)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, 2, 2);
    char *script = xasprintf("%s \"$1\"", cmd);
    char *argv[] = {"sh", "-c", script, "mcpgate-browser", (char *)url, NULL};
    pid_t pid;
    int r = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    free(script);
    if (r != 0)
        return -1;
    /* an opener that fails at once (no such command, no display) is worth reporting; one
     * still running after half a second is a browser, reaped by a detached thread */
    for (int i = 0; i < 10; i++) {
        int st;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, reaper, (void *)(intptr_t)pid) != 0)
        log_debug("cannot start a reaper thread; the opener stays a zombie");
    pthread_attr_destroy(&at);
    return 0;
}

static void open_browser(struct oauthc *oc, const char *url)
{
    oauthc_say(oc, "to sign in, open this address in a browser:\n\n    %s\n", url);
    if (oc->o.no_browser)
        return;
    const char *cmd = oc->o.browser;
    char first[512];
    if (cmd == NULL) {
        const char *env = getenv("BROWSER");
        if (env != NULL && *env != '\0') {
            /* $BROWSER is a ':'-separated list; the first entry is used */
            size_t n = strcspn(env, ":");
            if (n >= sizeof first)
                n = sizeof first - 1;
            memcpy(first, env, n);
            first[n] = '\0';
            cmd = first;
        } else {
            cmd = "xdg-open";
        }
    }
    if (spawn_opener(cmd, url) == 0)
        oauthc_say(oc, "opened the browser (%s); waiting for the sign-in", cmd);
    else
        oauthc_say(oc, "could not open a browser with '%s'; open the address above yourself",
                   cmd);
}

/* ---- authorization code with PKCE ---- */

static char *build_authorize_url(struct oauthc *oc, const char *endpoint, json_t *params)
{
    struct buf b;
    buf_init(&b, 64 * 1024);
    int r = buf_append_str(&b, endpoint);
    char sep = strchr(endpoint, '?') != NULL ? '&' : '?';
    const char *k;
    json_t *v;
    json_object_foreach (params, k, v) {
        char *ek = form_encode(k), *ev = form_encode(json_string_value(v));
        if (r == 0)
            r = buf_printf(&b, "%c%s=%s", sep, ek, ev);
        sep = '&';
        free(ek);
        free(ev);
    }
    if (r != 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b, NULL);
}

/* RFC 9207 2.4, as MCP 2026-07-28 tabulates it. */
static int check_iss(json_t *server, json_t *query, char *why, size_t whylen)
{
    const char *issuer = jstr(server, "issuer");
    bool supported = json_is_true(json_object_get(json_object_get(server, "metadata"),
                                                  "authorization_response_iss_parameter_supported"));
    json_t *iss = json_object_get(query, "iss");
    if (iss == NULL) {
        if (supported) {
            reason_set(why, whylen, "the authorization response has no iss parameter, which "
                                    "its server promises (RFC 9207); refusing it");
            return ERR_INTEGRITY;
        }
        return 0;
    }
    if (!json_is_string(iss) || issuer == NULL || strcmp(json_string_value(iss), issuer) != 0) {
        char q[130];
        reason_set(why, whylen, "the authorization response comes from issuer '%s', not %s "
                                "(a mix-up attack?); refusing it",
                   reason_quote(json_string_value(iss) ? json_string_value(iss) : "", 120, q),
                   issuer != NULL ? issuer : "?");
        return ERR_INTEGRITY;
    }
    return 0;
}

static int flow_code(struct oauthc *oc, json_t *server, const char *scope, char *why,
                     size_t whylen)
{
    struct cb_listener *l = NULL;
    json_t *client = NULL, *params = NULL, *query = NULL, *form = NULL;
    char *state = NULL, *verifier = NULL, *challenge = NULL, *url = NULL, *redirect = NULL;
    struct oauthc_reply rep = {0};
    int r;
    json_t *md = json_object_get(server, "metadata");
    const char *endpoint = jstr(md, "authorization_endpoint");
    bool retried = false;

    int port = oc->o.callback_port;
    bool strict = oc->o.callback_port_strict || (port != 0 && oc->o.static_client_info != NULL);
    if (port == 0)
        port = oauthc_derive_port(oc->o.server_url);
    if ((r = cb_listen(oc->o.callback_host, port, strict, &l, why, whylen)) != 0)
        goto out;
    if (strchr(oc->o.callback_host, ':') != NULL)
        redirect = xasprintf("http://[%s]:%d%s", oc->o.callback_host, cb_port(l), CB_PATH);
    else
        redirect = xasprintf("http://%s:%d%s", oc->o.callback_host, cb_port(l), CB_PATH);

again:
    if ((r = ensure_client(oc, server, redirect, scope, retried, &client, why, whylen)) != 0)
        goto out;
    state = crypto_random_token(32);
    verifier = crypto_random_token(32); /* 43 characters of [A-Za-z0-9_-]: RFC 7636 4.1 */
    unsigned char h[CRYPTO_SHA256_LEN];
    crypto_sha256(verifier, strlen(verifier), h);
    challenge = b64url_encode(h, sizeof h);
    params = json_object();
    json_object_set_new(params, "response_type", json_string("code"));
    json_object_set_new(params, "client_id", json_string(jstr(client, "client_id")));
    json_object_set_new(params, "redirect_uri", json_string(redirect));
    if (scope != NULL)
        json_object_set_new(params, "scope", json_string(scope));
    json_object_set_new(params, "state", json_string(state));
    json_object_set_new(params, "code_challenge", json_string(challenge));
    json_object_set_new(params, "code_challenge_method", json_string("S256"));
    const char *res = oauthc_resource(oc, server);
    if (res != NULL)
        json_object_set_new(params, "resource", json_string(res));
    if (oc->o.authorize_params != NULL) {
        const char *k;
        json_t *v;
        json_object_foreach (oc->o.authorize_params, k, v)
            if (json_object_get(params, k) == NULL || strcmp(k, "resource") == 0 ||
                strcmp(k, "scope") == 0)
                json_object_set(params, k, v);
    }
    if ((url = build_authorize_url(oc, endpoint, params)) == NULL) {
        reason_set(why, whylen, "the authorization URL is too long");
        r = ERR_TOOBIG;
        goto out;
    }
    open_browser(oc, url);
    r = cb_wait(l, state, oc->o.auth_timeout_s * 1000, NULL, &query);
    if (r == ERR_TIMEOUT) {
        reason_set(why, whylen, "nobody signed in within %d s (--auth-timeout)",
                   oc->o.auth_timeout_s);
        goto out;
    }
    if (r != 0) {
        reason_set(why, whylen, "the sign-in was interrupted");
        goto out;
    }
    if ((r = check_iss(server, query, why, whylen)) != 0) {
        cb_reply(l, false, "Sign-in refused", why);
        goto out;
    }
    if (jstr(query, "error") != NULL) {
        char q1[70], q2[250];
        reason_set(why, whylen, "the authorization server refused the sign-in: %s%s%s",
                   reason_quote(jstr(query, "error"), 60, q1),
                   jstr(query, "error_description") ? ": " : "",
                   jstr(query, "error_description")
                       ? reason_quote(jstr(query, "error_description"), 240, q2)
                       : "");
        cb_reply(l, false, "Sign-in failed", why);
        r = ERR_INVALID;
        goto out;
    }
    if (jstr(query, "code") == NULL) {
        reason_set(why, whylen, "the authorization response has no code");
        cb_reply(l, false, "Sign-in failed", why);
        r = ERR_INVALID;
        goto out;
    }
    form = json_object();
    json_object_set_new(form, "grant_type", json_string("authorization_code"));
    json_object_set(form, "code", json_object_get(query, "code"));
    json_object_set_new(form, "redirect_uri", json_string(redirect));
    json_object_set_new(form, "code_verifier", json_string(verifier));
    struct token_ask a = {.server = server, .client = client, .scope = scope};
    if ((r = token_request(oc, &a, form, &rep, why, whylen)) != 0) {
        cb_reply(l, false, "Sign-in failed", why);
        goto out;
    }
    if (rep.status != 200) {
        char d[300];
        describe_reply(&rep, d, sizeof d);
        bool bad_client = strcmp(rep.error, "invalid_client") == 0;
        if (bad_client && !retried && jstr(client, "source") != NULL &&
            strcmp(jstr(client, "source"), "dcr") == 0) {
            /* an AS may drop registrations: register again once, then sign in again */
            oauthc_say(oc, "the authorization server no longer knows this client; registering "
                           "again");
            cb_reply(l, false, "Please sign in again",
                     "The application had to register again. A new sign-in page is opening.");
            retried = true;
            json_decref(client);
            json_decref(params);
            json_decref(query);
            json_decref(form);
            client = params = query = form = NULL;
            oauthc_reply_clear(&rep);
            free(state);
            free(verifier);
            free(challenge);
            free(url);
            state = verifier = challenge = url = NULL;
            goto again;
        }
        reason_set(why, whylen, "the token request failed: %s", d);
        cb_reply(l, false, "Sign-in failed", why);
        r = ERR_INVALID;
        goto out;
    }
    if ((r = tokens_accept(oc, &a, &rep, why, whylen)) != 0) {
        cb_reply(l, false, "Sign-in failed", why);
        goto out;
    }
    cb_reply(l, true, "Signed in",
             "mcpgate is connected. You can close this window and go back to your application.");
    oauthc_say(oc, "signed in");
    r = 0;
out:
    if (verifier != NULL) {
        crypto_wipe(verifier, strlen(verifier));
        free(verifier);
    }
    oauthc_reply_clear(&rep);
    cb_close(l);
    json_decref(client);
    json_decref(params);
    json_decref(query);
    json_decref(form);
    free(state);
    free(challenge);
    free(url);
    free(redirect);
    return r;
}

/* ---- device authorization grant (RFC 8628) ---- */

static void sleep_s(int s)
{
    struct timespec ts = {s, 0};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int flow_device(struct oauthc *oc, json_t *server, const char *scope, char *why,
                       size_t whylen)
{
    json_t *client = NULL, *form = NULL;
    struct oauthc_reply rep = {0};
    int r;
    json_t *md = json_object_get(server, "metadata");
    const char *endpoint = jstr(md, "device_authorization_endpoint");
    if (endpoint == NULL) {
        reason_set(why, whylen, "the authorization server %s has no device authorization "
                                "endpoint; --device-code cannot be used with it",
                   jstr(server, "issuer"));
        return ERR_UNSUPPORTED;
    }
    if ((r = ensure_client(oc, server, NULL, scope, false, &client, why, whylen)) != 0)
        goto out;
    form = json_object();
    if (scope != NULL)
        json_object_set_new(form, "scope", json_string(scope));
    const char *res = oauthc_resource(oc, server);
    if (res != NULL)
        json_object_set_new(form, "resource", json_string(res));
    char *authz = NULL;
    oauthc_client_auth(client, form, &authz);
    r = oauthc_request(oc, endpoint, form, authz, &rep, why, whylen);
    if (authz != NULL)
        crypto_wipe(authz, strlen(authz));
    free(authz);
    if (r != 0)
        goto out;
    const char *device_code = jstr(rep.doc, "device_code"), *user_code = jstr(rep.doc, "user_code");
    const char *vuri = jstr(rep.doc, "verification_uri");
    const char *vcomplete = jstr(rep.doc, "verification_uri_complete");
    if (rep.status != 200 || device_code == NULL || user_code == NULL || vuri == NULL) {
        char d[300];
        describe_reply(&rep, d, sizeof d);
        reason_set(why, whylen, "the device authorization request failed: %s", d);
        r = ERR_INVALID;
        goto out;
    }
    json_int_t interval = json_integer_value(json_object_get(rep.doc, "interval"));
    json_int_t expires = json_integer_value(json_object_get(rep.doc, "expires_in"));
    if (interval <= 0)
        interval = DEVICE_INTERVAL_DEFAULT;
    if (interval > DEVICE_INTERVAL_MAX) /* the server's number: not a reason to hang */
        interval = DEVICE_INTERVAL_MAX;
    if (expires <= 0 || expires > oc->o.auth_timeout_s)
        expires = oc->o.auth_timeout_s;
    char q1[300], q2[70];
    oauthc_say(oc, "to sign in, visit %s and enter the code %s",
               reason_quote(vuri, 290, q1), reason_quote(user_code, 60, q2));
    if (vcomplete != NULL)
        oauthc_say(oc, "(or open %s)", reason_quote(vcomplete, 290, q1));
    char *dc = xstrdup(device_code);
    oauthc_reply_clear(&rep);
    long long deadline = oauthc_now() + expires;
    struct token_ask a = {.server = server, .client = client, .scope = scope};
    for (;;) {
        long long left = deadline - oauthc_now() + 1;
        sleep_s((int)(interval < left ? interval : left > 0 ? left : 0));
        if (oauthc_now() > deadline) {
            reason_set(why, whylen, "the device code expired before anyone approved it");
            r = ERR_TIMEOUT;
            break;
        }
        json_decref(form);
        form = json_object();
        json_object_set_new(form, "grant_type",
                            json_string("urn:ietf:params:oauth:grant-type:device_code"));
        json_object_set_new(form, "device_code", json_string(dc));
        oauthc_reply_clear(&rep);
        if ((r = token_request(oc, &a, form, &rep, why, whylen)) != 0)
            break;
        if (rep.status == 200) {
            r = tokens_accept(oc, &a, &rep, why, whylen);
            if (r == 0)
                oauthc_say(oc, "signed in");
            break;
        }
        if (strcmp(rep.error, "authorization_pending") == 0)
            continue;
        if (strcmp(rep.error, "slow_down") == 0) {
            interval += 5;
            if (interval > DEVICE_INTERVAL_MAX)
                interval = DEVICE_INTERVAL_MAX;
            continue;
        }
        char d[300];
        describe_reply(&rep, d, sizeof d);
        reason_set(why, whylen, "%s", strcmp(rep.error, "access_denied") == 0
                                          ? "the sign-in was denied"
                                          : d);
        r = ERR_INVALID;
        break;
    }
    crypto_wipe(dc, strlen(dc));
    free(dc);
out:
    oauthc_reply_clear(&rep);
    json_decref(form);
    json_decref(client);
    return r;
}

/* ---- client credentials ---- */

static int flow_client_credentials(struct oauthc *oc, json_t *server, const char *scope,
                                   char *why, size_t whylen)
{
    json_t *client = NULL, *form = NULL;
    struct oauthc_reply rep = {0};
    int r;
    if ((r = ensure_client(oc, server, NULL, scope, false, &client, why, whylen)) != 0)
        goto out;
    if (jstr(client, "client_secret") == NULL) {
        reason_set(why, whylen, "--client-credentials needs a client secret "
                                "(--static-oauth-client-info '{\"client_id\":...,"
                                "\"client_secret\":...}')");
        r = ERR_USAGE;
        goto out;
    }
    form = json_object();
    json_object_set_new(form, "grant_type", json_string("client_credentials"));
    if (scope != NULL)
        json_object_set_new(form, "scope", json_string(scope));
    struct token_ask a = {.server = server, .client = client, .scope = scope};
    if ((r = token_request(oc, &a, form, &rep, why, whylen)) != 0)
        goto out;
    if (rep.status != 200) {
        char d[300];
        describe_reply(&rep, d, sizeof d);
        reason_set(why, whylen, "the client credentials grant failed: %s", d);
        r = ERR_INVALID;
        goto out;
    }
    r = tokens_accept(oc, &a, &rep, why, whylen);
out:
    oauthc_reply_clear(&rep);
    json_decref(form);
    json_decref(client);
    return r;
}

int oauthc_sign_in(struct oauthc *oc, json_t *server, const char *scope, char *why,
                   size_t whylen)
{
    switch (oc->o.flow) {
    case OAUTHC_FLOW_DEVICE:
        return flow_device(oc, server, scope, why, whylen);
    case OAUTHC_FLOW_CLIENT_CREDENTIALS:
        return flow_client_credentials(oc, server, scope, why, whylen);
    case OAUTHC_FLOW_CODE:
    default:
        if (jstr(json_object_get(server, "metadata"), "authorization_endpoint") == NULL) {
            reason_set(why, whylen, "the authorization server has no authorization endpoint");
            return ERR_INVALID;
        }
        return flow_code(oc, server, scope, why, whylen);
    }
}
