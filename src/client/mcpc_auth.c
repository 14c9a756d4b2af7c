/* The MCP client transport's auth thread (a challenge answered, or a proactive refresh,
 * without blocking the loop) and the re-initialization after the server lost the session
 * (see mcpc.c for the loop they serve). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/mcpc.h"
#include "client/mcpc_int.h"
#include "core/log.h"
#include "core/xmalloc.h"

/* ---- the auth thread ---- */

static void *auth_main(void *arg)
{
    struct mcpc *c = arg;
    char why[300] = "";
    int r;
    if (c->auth_refresh_only)
        r = oauthc_refresh_now(c->o.auth, why, sizeof why);
    else
        r = oauthc_challenge(c->o.auth, c->auth_status, c->auth_www, c->auth_failed, why,
                             sizeof why);
    pthread_mutex_lock(&c->mu);
    c->auth_result = r;
    snprintf(c->auth_why, sizeof c->auth_why, "%s", why);
    c->auth_finished = true;
    pthread_mutex_unlock(&c->mu);
    hc_multi_wakeup(c->m);
    return NULL;
}

/* Starts the auth thread for p's challenge (or a proactive refresh), unless it runs already:
 * then p simply waits with the others. */
void mcpc_start_auth(struct mcpc *c, struct preq *p, bool refresh_only)
{
    pthread_mutex_lock(&c->mu);
    bool running = c->auth_running;
    pthread_mutex_unlock(&c->mu);
    if (running)
        return;
    free(c->auth_www);
    free(c->auth_failed);
    c->auth_www = p != NULL && p->www != NULL ? xstrdup(p->www) : NULL;
    c->auth_failed = p != NULL && p->token != NULL ? xstrdup(p->token) : NULL;
    c->auth_status = p != NULL ? p->status : 0;
    c->auth_refresh_only = refresh_only;
    pthread_mutex_lock(&c->mu);
    c->auth_running = true;
    c->auth_finished = false;
    pthread_mutex_unlock(&c->mu);
    if (pthread_create(&c->auth_thread, NULL, auth_main, c) != 0) {
        pthread_mutex_lock(&c->mu);
        c->auth_running = false;
        c->auth_finished = true;
        c->auth_result = ERR_INTERNAL;
        snprintf(c->auth_why, sizeof c->auth_why, "cannot start the sign-in thread");
        pthread_mutex_unlock(&c->mu);
    }
}

/* Loop thread: the auth thread is done; send the parked requests again, or mcpc_fail them. */
void mcpc_auth_collect(struct mcpc *c)
{
    pthread_mutex_lock(&c->mu);
    bool fin = c->auth_finished;
    pthread_mutex_unlock(&c->mu);
    if (!fin)
        return;
    pthread_join(c->auth_thread, NULL);
    pthread_mutex_lock(&c->mu);
    c->auth_running = false;
    c->auth_finished = false;
    int r = c->auth_result;
    char why[300];
    snprintf(why, sizeof why, "%s", c->auth_why);
    pthread_mutex_unlock(&c->mu);
    if (c->auth_refresh_only) {
        if (r != 0 && r != ERR_NOTFOUND)
            log_warn("proactive refresh failed: %s", why);
        /* requests that got a 401 meanwhile waited for this: send them again with the new
         * token, or, when the refresh failed, let the first one start the full challenge */
        for (struct preq *p = c->reqs; p != NULL; p = p->next) {
            if (!p->parked || mcpc_waits_reinit(c, p))
                continue;
            if (r == 0) {
                p->parked = false;
                p->due = 1;
            } else {
                mcpc_start_auth(c, p, false);
                break;
            }
        }
        return;
    }
    for (struct preq *p = c->reqs, *next; p != NULL; p = next) {
        next = p->next;
        if (!p->parked || mcpc_waits_reinit(c, p))
            continue;
        p->parked = false;
        if (r == 0) {
            p->due = 1;
        } else {
            if (p->raw != NULL)
                p->raw->err = ERR_INVALID;
            if (p->kind == PK_GET || p->kind == PK_LISTEN) {
                p->cancelled = true;
                if (c->get_stream == p)
                    c->get_stream = NULL;
            }
            mcpc_fail(c, p, MCPC_ERR_AUTH, "not authorized: %s", why);
            mcpc_maybe_release(c, p);
        }
    }
}

/* ---- re-initialization after a lost session ---- */

void mcpc_reinit_then(struct mcpc *c, struct preq *ip, json_t *resp)
{
    json_t *result = json_object_get(resp, "result");
    c->reinit = false;
    if (!json_is_object(result)) {
        const char *m =
            json_string_value(json_object_get(json_object_get(resp, "error"), "message"));
        log_error("the server lost the session and refused a new one: %s",
                  m != NULL ? m : "no answer");
        for (struct preq *p = c->reqs, *next; p != NULL; p = next) {
            next = p->next;
            if (!p->parked)
                continue;
            p->parked = false;
            if (p->kind == PK_GET)
                p->cancelled = true;
            mcpc_fail(c, p, MCPC_ERR_TRANSPORT,
                      "the server lost the session and refused a new one");
            mcpc_maybe_release(c, p);
        }
        if (c->ev.on_lost != NULL)
            c->ev.on_lost(c->ev_arg, "the server lost the session and refused a new one");
        return;
    }
    /* the new session id arrived with the answer's headers (kept by on_x_headers in
     * ip->raw); notifications/initialized, then everything parked goes again */
    pthread_mutex_lock(&c->mu);
    free(c->session_id);
    c->session_id =
        ip->raw != NULL && ip->raw->session_id != NULL ? xstrdup(ip->raw->session_id) : NULL;
    pthread_mutex_unlock(&c->mu);
    log_info("new session with the server established");
    struct preq *n = mcpc_preq_new(c, PK_POST, "notifications/initialized", NULL);
    n->due = 1;
    mcpc_list_add(c, n);
    for (struct preq *p = c->reqs; p != NULL; p = p->next) {
        if (p->parked) {
            p->parked = false;
            p->due = mcpc_now_ms() + 1;
            p->reinit_done = true;
        }
    }
    if (c->get_stream == NULL)
        mcpc_stream_open(c);
}

void mcpc_start_reinit(struct mcpc *c)
{
    if (c->reinit)
        return;
    c->reinit = true;
    log_info("the server no longer knows the session; initializing a new one");
    if (c->era == MCPC_ERA_SSE) {
        pthread_mutex_lock(&c->mu);
        free(c->post_url);
        c->post_url = NULL;
        pthread_mutex_unlock(&c->mu);
        /* the stream's endpoint event brings the new URL; initialize then (see loop) */
        mcpc_stream_open(c);
        return;
    }
    pthread_mutex_lock(&c->mu);
    free(c->session_id);
    c->session_id = NULL;
    pthread_mutex_unlock(&c->mu);
    struct preq *ip = mcpc_preq_new(c, PK_REQUEST, "initialize", json_deep_copy(c->init_params));
    ip->use_session = false;
    ip->then = mcpc_reinit_then;
    ip->raw = xcalloc(1, sizeof *ip->raw); /* to read the new session id */
    ip->raw_owned = true;
    ip->due = 1;
    mcpc_list_add(c, ip);
}
