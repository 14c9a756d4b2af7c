/* One connection to an upstream MCP server, whatever carries it: a stdio child process
 * (spawned with posix_spawn in its own process group, newline-delimited JSON-RPC on its pipes,
 * its stderr logged line by line under the upstream's name) or a remote HTTP server (through
 * the client transport, mcpc). Calls are made from the server's worker threads, which wait
 * (gw_call_wait), or asynchronously (gw_call_open_async, answered through callbacks): several
 * at once, each with its own upstream id, its own progress token, and the server's
 * questions (elicitation, sampling, roots) routed back to the call they belong to. */
#ifndef MCPGATE_GATEWAY_CONN_H
#define MCPGATE_GATEWAY_CONN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "gateway/gateway.h"

struct gw_conn;

/* What a call does while it waits: the caller's own hooks. */
struct gw_call_hooks {
    /* Cancelled by the caller's client? Polled. */
    bool (*cancelled)(void *arg);
    /* A progress notification for this call (params borrowed). */
    void (*progress)(void *arg, json_t *params);
    /* A log message from the upstream while the call runs (params borrowed). */
    void (*log)(void *arg, json_t *params);
    /* The upstream asks something (method, params borrowed): return the result (new) or NULL
     * with *code and why for an error response (gw_conn_call only). */
    json_t *(*ask)(void *arg, const char *method, json_t *params, int *code, char *why,
                   size_t whylen);
    void *arg;
    const char *owner; /* who the call is for (routes questions of a shared stdio child) */
};

/* Connection-wide events (notifications not tied to a call: list_changed, resources/updated). */
struct gw_conn_events {
    void (*on_notification)(void *arg, json_t *msg);
    void (*on_exit)(void *arg, const char *why); /* the child died or the connection is lost */
    void *arg;
};

/* Spawns the stdio server u->command and does the initialize handshake (within
 * u->start_timeout_s). extra_env ("K=V", NULL-terminated, may be NULL) is added to u->env. */
int gw_conn_spawn(const struct gw_upstream_cfg *u, char *const *extra_env,
                  const struct gw_conn_events *ev, struct gw_conn **out /* OUT */, char *why,
                  size_t whylen) ERR_WARN_UNUSED;
/* Connects to the HTTP server u->url (era probe, handshake). */
int gw_conn_http(const struct gw_upstream_cfg *u, const struct gw_conn_events *ev,
                 struct gw_conn **out /* OUT */, char *why, size_t whylen) ERR_WARN_UNUSED;

/* A call in flight, which its caller may leave waiting (parked) and come back to. */
struct gw_call;
#define GW_ASKED 1

/* Sends method with params (stolen); progress: give it a progress token of its own; asks: the
 * caller takes the server's questions (else they are refused); owner routes a shared stdio
 * child's questions. *out is set even on failure (end it). */
int gw_call_start(struct gw_conn *c, const char *method, json_t *params, bool progress,
                  bool asks, const char *owner, struct gw_call **out /* OUT */, char *why,
                  size_t whylen) ERR_WARN_UNUSED;
/* Waits until the answer (0, *resp new), a question from the server (GW_ASKED, *question the
 * request, new: answer it with gw_call_reply), cancellation (hooks->cancelled; ERR_CANCELLED),
 * the deadline (ERR_TIMEOUT) or the end of the connection (ERR_IO). Progress and log messages
 * go to hooks meanwhile. */
int gw_call_wait(struct gw_call *k, long long deadline_ms, const struct gw_call_hooks *hooks,
                 json_t **resp /* OUT */, json_t **question /* OUT */, char *why, size_t whylen);
/* Answers a question: result (stolen) or, when NULL, an error (code, why). */
int gw_call_reply(struct gw_call *k, json_t *question, json_t *result, int code, const char *why);
/* Forgets the call; cancel: tell the server (notifications/cancelled) if it is still running. */
void gw_call_end(struct gw_call *k, bool cancel, const char *why);
struct gw_conn *gw_call_conn(struct gw_call *k);

/* Asynchronous calls: nobody waits; the connection's thread calls back. */
struct gw_call_async {
    /* The end, called once: the response (resp, stolen: {"result"} or {"error"}) with r 0,
     * or r ERR_IO (the connection ended), ERR_TIMEOUT (gw_conn_expire) or whatever
     * gw_call_fire was given, with why. It runs on the connection's thread or on the thread
     * that fired, never while a progress or log callback of the call runs, and must end the
     * call (gw_call_end). */
    void (*done)(void *arg, struct gw_call *k, json_t *resp, int r, const char *why);
    /* Progress and log notifications of the call (params borrowed), on the connection's
     * thread. */
    void (*progress)(void *arg, json_t *params);
    void (*log)(void *arg, json_t *params);
    /* The server asks a question: the call is an ordinary one from now on (gw_call_wait
     * returns the question). Called once, on the connection's thread: must not wait. */
    void (*asked)(void *arg, struct gw_call *k);
};
/* Opens an asynchronous call (cb and arg borrowed until done); NULL when the connection is
 * dead (why says so). The call is pinned until gw_call_unpin: done waits for that, so the
 * opener may set up what done needs between opening and sending. deadline_ms 0: none. */
struct gw_call *gw_call_open_async(struct gw_conn *c, bool progress, const char *owner,
                                   long long deadline_ms, const struct gw_call_async *cb,
                                   void *arg, char *why, size_t whylen);
/* Sends the request of an open call: method with params (stolen). */
int gw_call_send(struct gw_call *k, const char *method, json_t *params, char *why,
                 size_t whylen) ERR_WARN_UNUSED;
/* Drops the opener's pin; r != 0 (sending failed, say) ends the call with r and why, through
 * done on this thread, unless it has ended. The opener must not use k afterwards. */
void gw_call_unpin(struct gw_call *k, int r, const char *why);
/* Ends an asynchronous call now with r and why (through done, on this thread) unless it has
 * ended or become synchronous; returns whether it did. Not while holding the pin. */
bool gw_call_fire(struct gw_call *k, int r, const char *why);
/* Ends the asynchronous calls whose deadline is past at now (ERR_TIMEOUT). */
void gw_conn_expire(struct gw_conn *c, long long now);
/* Can n bytes be written to the connection without waiting (a stdio child's pipe has room)? */
bool gw_conn_room(struct gw_conn *c, size_t n);
/* Keeps c from being freed (gw_conn_free waits) between finding it and starting a call. */
void gw_conn_hold(struct gw_conn *c);
void gw_conn_release(struct gw_conn *c);

/* Calls method with params (stolen) and waits up to timeout_ms for the response (new
 * reference in *resp: {"result"} or {"error"}). 0; ERR_CANCELLED (the upstream was told);
 * ERR_TIMEOUT; ERR_IO when the connection ended (why says how). */
int gw_conn_call(struct gw_conn *c, const char *method, json_t *params, int timeout_ms,
                 const struct gw_call_hooks *hooks, json_t **resp /* OUT */, char *why,
                 size_t whylen) ERR_WARN_UNUSED;
bool gw_conn_alive(struct gw_conn *c);
/* The initialize result (or discover result) of the upstream; borrowed. */
json_t *gw_conn_info(struct gw_conn *c);
/* Calls in flight, and the time of the last call's end (for idle stopping). */
unsigned gw_conn_busy(struct gw_conn *c);
long long gw_conn_idle_since(struct gw_conn *c);
/* The child's pid (0 for HTTP). */
long gw_conn_pid(struct gw_conn *c);
/* Ends it: stdin closed, 2 s, SIGTERM to the process group, 2 s, SIGKILL; in-flight calls get
 * ERR_IO. NULL is a no-op. */
void gw_conn_free(struct gw_conn *c);

#endif
