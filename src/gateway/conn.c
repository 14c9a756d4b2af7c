/* Upstream connections (see conn.h). A stdio child has two threads of its own: one reads its
 * stdout (responses wake their callers; notifications and questions are routed), one logs its
 * stderr. An HTTP upstream is an mcpc, whose thread does the same through callbacks. Callers
 * of ordinary calls (server worker threads) wait on their call's condition variable and do the
 * work their call's inbox collects (progress, log messages, questions) on their own thread, so
 * a slow answer from the user never blocks the reader. Asynchronous calls have no waiter: the
 * reader passes progress and log messages to their callbacks and ends them with the response;
 * a question turns one into an ordinary call (its owner then waits on a worker). */
#include "gateway/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/mcpc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/lines.h"
#include "core/log.h"
#include "core/reason.h"
#include "core/xmalloc.h"
#include "mcp/jsonrpc.h"

extern char **environ;

#define LINE_MAX_BYTES (16u << 20)
#define STDERR_LINE_MAX 2048
#define MRTR_ROUNDS 8

struct gw_call {
    struct gw_conn *c;
    json_int_t id;
    json_t *resp;
    bool done;
    bool linked;       /* in c->calls */
    pthread_cond_t cv; /* signalled when something arrives for this call (c->mu) */
    char ptoken[40];   /* our progress token ("" when none asked) */
    char owner[80];
    bool asks;       /* the caller takes questions */
    json_t *inbox;   /* messages for the caller: notifications and questions */
    uint64_t handle; /* mcpc's (HTTP) */
    int pins;        /* the reader signals outside the lock: end waits for it (c->mu) */
    /* asynchronous calls: callbacks instead of a waiter */
    const struct gw_call_async *acb; /* NULL once synchronous (or always) */
    void *aarg;
    bool fired;         /* acb->done was called or is about to be: nothing else is delivered */
    long long deadline; /* when it times out (gw_conn_expire), 0 for never */
    struct gw_call *next;
};
#define call gw_call

struct gw_conn {
    char name[GW_NAME_MAX + 1];
    bool http;
    /* stdio */
    pid_t pid;
    int in_fd, out_fd, err_fd; /* in_fd: under wmu once running (closed by gw_conn_free) */
    int pipe_cap;              /* the capacity of the pipe to its stdin (F_GETPIPE_SZ) */
    long write_wait_ms;        /* how long a write may wait for room (WRITE_WAIT_MS or less) */
    pthread_t reader, errlog;
    bool threads;
    pthread_mutex_t wmu;
    /* http */
    struct mcpc *mc;
    /* both */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct call *calls;
    json_int_t next_id;
    bool dead;
    char dead_why[200];
    json_t *info;
    struct gw_conn_events ev;
    unsigned busy;
    long long idle_since;
    bool exit_told;
};

/* ---- writing (stdio) ---- */

/* How long a write to a child's stdin may wait for room. A child that reads nothing for this
 * long is stuck: it is stopped (its calls end with an error) rather than left holding threads. */
#define WRITE_WAIT_MS 30000

/* Writes msg and a newline to the child's stdin (non-blocking, so never past the deadline).
 * wait_ms 0: only if the writer lock is free and the pipe has room for all of it at once
 * (what the reader thread does: it must never wait on the child, which may be waiting on it). */
static int write_line_within(struct gw_conn *c, json_t *msg, long wait_ms)
{
    char *s = json_dumps(msg, JSON_COMPACT);
    if (s == NULL)
        return ERR_INTERNAL;
    size_t n = strlen(s);
    s = xrealloc(s, n + 2);
    s[n++] = '\n';
    s[n] = '\0';
    if (wait_ms == 0 ? pthread_mutex_trylock(&c->wmu) != 0 : pthread_mutex_lock(&c->wmu) != 0) {
        free(s);
        return ERR_WOULDBLOCK;
    }
    int r = c->in_fd >= 0 ? 0 : ERR_IO;
    long long deadline = clock_ms() + wait_ms;
    const char *p = s;
    bool started = false;
    while (r == 0 && n > 0) {
        ssize_t w = write(c->in_fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            long left = (long)(deadline - clock_ms());
            if (!started && wait_ms == 0) {
                r = ERR_WOULDBLOCK; /* nothing written: the stream is intact */
                break;
            }
            if (left <= 0) {
                r = ERR_TIMEOUT;
                break;
            }
            struct pollfd pf = {.fd = c->in_fd, .events = POLLOUT};
            (void)poll(&pf, 1, (int)(left < 1000 ? left : 1000));
            continue;
        }
        if (w <= 0) {
            r = ERR_IO;
            break;
        }
        if (!started && wait_ms == 0)
            deadline = clock_ms() + 1000; /* a line begun must be finished, but not for long */
        started = true;
        p += w;
        n -= (size_t)w;
    }
    pthread_mutex_unlock(&c->wmu);
    free(s);
    if (r == ERR_TIMEOUT) {
        /* it took nothing for that long (or half a line is out): it cannot go on */
        log_warn("[%s] reads nothing from us any more; stopping it", c->name);
        if (c->pid > 0)
            kill(-c->pid, SIGKILL);
        /* until its reader sees it go (briefly): the next call then starts a new one */
        pthread_mutex_lock(&c->mu);
        long long until = clock_ms() + 2000;
        while (!c->dead && clock_ms() < until)
            cond_wait_ms(&c->cv, &c->mu, 50);
        pthread_mutex_unlock(&c->mu);
        r = ERR_IO;
    }
    return r;
}

static int write_line(struct gw_conn *c, json_t *msg)
{
    return write_line_within(c, msg, c->write_wait_ms > 0 ? c->write_wait_ms : WRITE_WAIT_MS);
}

static int send_msg(struct gw_conn *c, json_t *msg /* stolen */)
{
    int r;
    pthread_mutex_lock(&c->mu);
    bool dead = c->dead;
    pthread_mutex_unlock(&c->mu);
    if (dead)
        r = ERR_IO;
    else if (c->http)
        r = json_object_get(msg, "method") != NULL && json_object_get(msg, "id") == NULL
                ? mcpc_notify(c->mc, json_string_value(json_object_get(msg, "method")),
                              json_incref(json_object_get(msg, "params")))
                : mcpc_respond(c->mc, json_incref(msg));
    else
        r = write_line(c, msg);
    json_decref(msg);
    return r;
}

/* ---- routing what the upstream sends (mu held) ---- */

static struct call *call_by_id(struct gw_conn *c, json_t *id)
{
    if (!json_is_integer(id))
        return NULL;
    for (struct call *k = c->calls; k != NULL; k = k->next)
        if (k->id == json_integer_value(id))
            return k;
    return NULL;
}

static struct call *call_by_token(struct gw_conn *c, json_t *token)
{
    const char *t = json_string_value(token);
    if (t == NULL)
        return NULL;
    for (struct call *k = c->calls; k != NULL; k = k->next)
        if (k->ptoken[0] != '\0' && strcmp(k->ptoken, t) == 0)
            return k;
    return NULL;
}

/* The call a question or a log line of a shared child belongs to: the only call in flight,
 * or the latest when every call in flight is for the same owner; else none (ambiguous: the
 * question could reach the wrong user). */
static struct call *call_for_question(struct gw_conn *c)
{
    struct call *latest = NULL;
    for (struct call *k = c->calls; k != NULL; k = k->next) {
        if (k->done)
            continue;
        if (latest != NULL && strcmp(k->owner, latest->owner) != 0)
            return NULL; /* calls of several owners: the question could reach the wrong one */
        if (latest == NULL || k->id > latest->id)
            latest = k;
    }
    return latest;
}

/* An answer from the reader thread: never waits on the child (it may be waiting on us). */
static int reader_reply(struct gw_conn *c, json_t *msg /* stolen */)
{
    if (c->http)
        return send_msg(c, msg);
    int r = write_line_within(c, msg, 0);
    json_decref(msg);
    return r;
}

static void refuse(struct gw_conn *c, json_t *id, int code, const char *why)
{
    json_t *e = jsonrpc_error(id, code, why, NULL);
    if (reader_reply(c, e) != 0)
        log_debug("[%s] cannot answer the server (its stdin is full)", c->name);
}

/* Ends an asynchronous call with its callback: marks it fired, waits until nothing is being
 * passed on to it, then calls done outside the lock. mu held; returns with it released. */
static void fire(struct gw_conn *c, struct call *k, json_t *resp /* stolen */, int r,
                 const char *why)
{
    k->fired = true;
    while (k->pins > 0)
        pthread_cond_wait(&c->cv, &c->mu);
    const struct gw_call_async *cb = k->acb;
    pthread_mutex_unlock(&c->mu);
    cb->done(k->aarg, k, resp, r, why);
}

/* The response to call k (NULL when none matches): wakes its waiter or, for an asynchronous
 * call, ends it. mu held; returns with it released. */
static void deliver(struct gw_conn *c, struct call *k, json_t *resp)
{
    if (k == NULL || k->done || k->fired) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    k->done = true;
    if (k->acb != NULL) {
        fire(c, k, json_incref(resp), 0, NULL);
        return;
    }
    k->resp = json_incref(resp);
    /* wake it after unlocking, so it does not wake into a held mutex; the pin keeps the call
     * alive until then */
    k->pins++;
    pthread_mutex_unlock(&c->mu);
    pthread_cond_signal(&k->cv);
    pthread_mutex_lock(&c->mu);
    if (--k->pins == 0)
        pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* A notification for an asynchronous call, passed to its callback outside the lock; the pin
 * keeps the call from ending meanwhile. mu held; returns with it released. */
static void pass_on(struct gw_conn *c, struct call *k, void (*fn)(void *arg, json_t *params),
                    json_t *params)
{
    if (k->fired || fn == NULL) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    k->pins++;
    pthread_mutex_unlock(&c->mu);
    fn(k->aarg, params);
    pthread_mutex_lock(&c->mu);
    if (--k->pins == 0)
        pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void route(struct gw_conn *c, json_t *msg, uint64_t related)
{
    enum jsonrpc_kind kind;
    json_t *id = NULL;
    struct jsonrpc_fail f;
    if (!json_is_object(msg) || jsonrpc_classify(msg, &kind, &id, &f) != 0) {
        log_warn("[%s] sent something that is not JSON-RPC; ignored", c->name);
        return;
    }
    const char *method = json_string_value(json_object_get(msg, "method"));
    pthread_mutex_lock(&c->mu);
    if (kind == JSONRPC_RESPONSE) {
        deliver(c, call_by_id(c, id), msg);
        return;
    }
    if (kind == JSONRPC_REQUEST) {
        if (strcmp(method, "ping") == 0) {
            pthread_mutex_unlock(&c->mu);
            json_t *r = jsonrpc_result(id, json_object());
            if (reader_reply(c, r) != 0)
                log_debug("[%s] cannot answer ping", c->name);
            return;
        }
        struct call *k = NULL;
        if (related != 0) {
            for (struct call *x = c->calls; x != NULL; x = x->next)
                if (x->handle == related)
                    k = x;
        } else {
            k = call_for_question(c);
        }
        if (k == NULL || !k->asks || k->fired) {
            pthread_mutex_unlock(&c->mu);
            refuse(c, id, JSONRPC_METHOD_NOT_FOUND,
                   "mcpgate cannot tell which client to ask (no call in flight, or calls of "
                   "several users)");
            return;
        }
        if (json_array_size(k->inbox) >= 1000) {
            pthread_mutex_unlock(&c->mu);
            refuse(c, id, JSONRPC_INTERNAL_ERROR, "too many questions waiting for the client");
            return;
        }
        json_array_append(k->inbox, msg);
        if (k->acb != NULL) {
            /* asking the client may wait: the call's owner takes it from here, waiting
             * (gw_call_wait finds the question in the inbox) */
            const struct gw_call_async *cb = k->acb;
            k->acb = NULL;
            pthread_mutex_unlock(&c->mu);
            cb->asked(k->aarg, k);
            return;
        }
        pthread_cond_signal(&k->cv);
        pthread_mutex_unlock(&c->mu);
        return;
    }
    /* notifications */
    json_t *params = json_object_get(msg, "params");
    if (strcmp(method, "notifications/progress") == 0) {
        struct call *k = call_by_token(c, json_object_get(params, "progressToken"));
        if (k != NULL && k->acb != NULL) {
            pass_on(c, k, k->acb->progress, params);
            return;
        }
        if (k != NULL && json_array_size(k->inbox) < 1000) {
            json_array_append(k->inbox, msg);
            pthread_cond_signal(&k->cv);
        }
        pthread_mutex_unlock(&c->mu);
        return;
    }
    if (strcmp(method, "notifications/message") == 0) {
        struct call *k = call_for_question(c);
        if (k != NULL && k->acb != NULL) {
            pass_on(c, k, k->acb->log, params);
            return;
        }
        if (k != NULL && k->asks && json_array_size(k->inbox) < 1000) {
            json_array_append(k->inbox, msg);
            pthread_cond_signal(&k->cv);
            pthread_mutex_unlock(&c->mu);
            return;
        }
        pthread_mutex_unlock(&c->mu);
        const char *data = json_string_value(json_object_get(params, "data"));
        log_info("[%s] %s", c->name, data != NULL ? data : "(a log message)");
        return;
    }
    pthread_mutex_unlock(&c->mu);
    if (c->ev.on_notification != NULL)
        c->ev.on_notification(c->ev.arg, msg);
}

/* Ends the asynchronous calls that are due: all of them once the connection is dead (ERR_IO),
 * else those past their deadline at now (ERR_TIMEOUT). */
static void end_async(struct gw_conn *c, long long now)
{
    for (;;) {
        pthread_mutex_lock(&c->mu);
        struct call *k = c->calls;
        while (k != NULL && !(k->acb != NULL && !k->fired &&
                              (c->dead || (now > 0 && k->deadline > 0 && now >= k->deadline))))
            k = k->next;
        if (k == NULL) {
            pthread_mutex_unlock(&c->mu);
            return;
        }
        if (c->dead)
            fire(c, k, NULL, ERR_IO, c->dead_why);
        else
            fire(c, k, NULL, ERR_TIMEOUT, "the server did not answer in time");
    }
}

void gw_conn_expire(struct gw_conn *c, long long now)
{
    end_async(c, now);
}

static void mark_dead(struct gw_conn *c, const char *why)
{
    pthread_mutex_lock(&c->mu);
    bool was = c->dead;
    c->dead = true;
    if (!was)
        snprintf(c->dead_why, sizeof c->dead_why, "%s", why);
    pthread_cond_broadcast(&c->cv);
    for (struct call *k = c->calls; k != NULL; k = k->next)
        pthread_cond_signal(&k->cv);
    bool tell = !was && !c->exit_told;
    c->exit_told = true;
    pthread_mutex_unlock(&c->mu);
    end_async(c, 0);
    if (tell && c->ev.on_exit != NULL)
        c->ev.on_exit(c->ev.arg, why);
}

/* ---- the stdio child's threads ---- */

static void on_child_line(void *arg, const char *line, size_t len)
{
    struct gw_conn *c = arg;
    if (line == NULL) {
        log_warn("[%s] sent a line longer than %u bytes; skipped", c->name, LINE_MAX_BYTES);
        return;
    }
    json_t *msg = NULL;
    struct jsonrpc_fail f;
    if (jsonrpc_parse(line, len, LINE_MAX_BYTES, 64, &msg, &f) != 0) {
        /* servers that print to stdout: not ours to fix, worth a line */
        char q[130];
        log_warn("[%s] wrote a line that is not JSON on stdout: %s", c->name,
                 reason_quote(line, 120, q));
        return;
    }
    if (json_is_array(msg)) {
        size_t i;
        json_t *m;
        json_array_foreach (msg, i, m)
            route(c, m, 0);
    } else {
        route(c, msg, 0);
    }
    json_decref(msg);
}

static void *reader_main(void *arg)
{
    struct gw_conn *c = arg;
    struct lines lines;
    lines_init(&lines, LINE_MAX_BYTES);
    char chunk[65536];
    for (;;) {
        ssize_t n = read(c->out_fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        lines_feed(&lines, chunk, (size_t)n, on_child_line, c);
    }
    lines_free(&lines);
    int st = 0;
    char why[160];
    pid_t w = 0;
    for (int i = 0; i < 100 && w == 0; i++) { /* an exiting child is gone within moments */
        w = waitpid(c->pid, &st, WNOHANG);
        if (w == 0) {
            struct timespec ts = {0, 20 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    if (w == 0) {
        /* its output is closed but it runs on: it cannot answer anything any more. Calls end
         * now; it is stopped (its group: what it started too), then reaped */
        mark_dead(c, "the server closed its output but kept running; stopped");
        kill(-c->pid, SIGTERM);
        for (int i = 0; i < 100 && w == 0; i++) {
            w = waitpid(c->pid, &st, WNOHANG);
            if (w == 0) {
                struct timespec ts = {0, 20 * 1000000};
                nanosleep(&ts, NULL);
            }
        }
        if (w == 0) {
            kill(-c->pid, SIGKILL);
            w = waitpid(c->pid, &st, 0);
        }
    }
    if (w == c->pid && WIFEXITED(st))
        snprintf(why, sizeof why, "the server exited with status %d", WEXITSTATUS(st));
    else if (w == c->pid && WIFSIGNALED(st))
        snprintf(why, sizeof why, "the server was killed by signal %d", WTERMSIG(st));
    else
        snprintf(why, sizeof why, "the server closed its output");
    if (w == c->pid)
        c->pid = 0;
    mark_dead(c, why);
    return NULL;
}

/* A line of the child's stderr made safe for our log: control characters become '?'
 * (no forged log lines), the rest (UTF-8 included) stays as written. */
static void log_safe(char *s)
{
    for (unsigned char *p = (unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
}

static void *errlog_main(void *arg)
{
    struct gw_conn *c = arg;
    char buf[STDERR_LINE_MAX + 1];
    size_t n = 0;
    char chunk[4096];
    for (;;) {
        ssize_t r = read(c->err_fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r; i++) {
            if (chunk[i] == '\n' || n == STDERR_LINE_MAX) {
                buf[n] = '\0';
                log_safe(buf);
                if (n > 0)
                    log_info("[%s] %s", c->name, buf);
                n = 0;
                if (chunk[i] == '\n')
                    continue;
            }
            buf[n++] = chunk[i];
        }
    }
    return NULL;
}

/* ---- calls ---- */

static void call_unlink(struct gw_conn *c, struct call *k)
{
    if (!k->linked)
        return;
    for (struct call **pp = &c->calls; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == k) {
            *pp = k->next;
            break;
        }
    }
    k->linked = false;
    if (--c->busy == 0)
        c->idle_since = clock_ms();
    pthread_cond_broadcast(&c->cv); /* gw_conn_free waits for busy == 0 */
}

/* The HTTP reply callback needs the connection too. */
struct http_reply {
    struct gw_conn *c;
    long long id; /* the call's (ids are never reused; a freed call's address may be) */
};

static void on_http_done(void *arg, json_t *resp)
{
    struct http_reply *hr = arg;
    struct gw_conn *c = hr->c;
    pthread_mutex_lock(&c->mu);
    struct call *k = c->calls;
    while (k != NULL && k->id != hr->id)
        k = k->next;
    free(hr);
    if (resp == NULL && k != NULL && k->acb != NULL && !k->fired) {
        fire(c, k, NULL, ERR_IO, "the request failed");
        return;
    }
    deliver(c, k, resp);
}

/* A new call, linked (the connection counts it busy); NULL when the connection is dead. */
static struct call *call_open(struct gw_conn *c, bool progress, bool asks, const char *owner,
                              char *why, size_t whylen)
{
    struct call *k = xcalloc(1, sizeof *k);
    k->c = c;
    k->inbox = json_array();
    k->asks = asks;
    snprintf(k->owner, sizeof k->owner, "%s", owner != NULL ? owner : "");
    pthread_cond_init(&k->cv, NULL);
    pthread_mutex_lock(&c->mu);
    if (c->dead) {
        reason_set(why, whylen, "%s", c->dead_why);
        pthread_mutex_unlock(&c->mu);
        pthread_cond_destroy(&k->cv);
        json_decref(k->inbox);
        free(k);
        return NULL;
    }
    k->id = ++c->next_id;
    if (progress)
        snprintf(k->ptoken, sizeof k->ptoken, "gw-%lld", (long long)k->id);
    k->next = c->calls;
    c->calls = k;
    k->linked = true;
    c->busy++;
    pthread_mutex_unlock(&c->mu);
    return k;
}

/* Sends the call's request: method with params (stolen), our progress token added. */
static int call_send(struct call *k, const char *method, json_t *params, char *why,
                     size_t whylen)
{
    struct gw_conn *c = k->c;
    if (k->ptoken[0] != '\0') {
        if (params == NULL)
            params = json_object();
        json_t *meta = json_object_get(params, "_meta");
        if (!json_is_object(meta)) {
            meta = json_object();
            json_object_set_new(params, "_meta", meta);
        }
        json_object_set_new(meta, "progressToken", json_string(k->ptoken));
    }
    int r = 0;
    if (c->http) {
        struct http_reply *hr = xcalloc(1, sizeof *hr);
        hr->c = c;
        hr->id = k->id;
        uint64_t h = 0;
        if (mcpc_request(c->mc, method, params, on_http_done, hr, &h) != 0) {
            free(hr);
            r = ERR_IO;
            reason_set(why, whylen, "the connection is closing");
        }
        pthread_mutex_lock(&c->mu);
        k->handle = h;
        pthread_mutex_unlock(&c->mu);
    } else {
        json_t *idv = json_integer(k->id);
        json_t *msg = jsonrpc_request(idv, method, params);
        json_decref(idv);
        if (write_line(c, msg) != 0) {
            r = ERR_IO;
            reason_set(why, whylen, "cannot write to the server (it exited?)");
        }
        json_decref(msg);
    }
    return r;
}

int gw_call_start(struct gw_conn *c, const char *method, json_t *params, bool progress, bool asks,
                  const char *owner, struct gw_call **out, char *why, size_t whylen)
{
    *out = call_open(c, progress, asks, owner, why, whylen);
    if (*out == NULL) {
        json_decref(params);
        return ERR_IO;
    }
    return call_send(*out, method, params, why, whylen);
}

struct gw_call *gw_call_open_async(struct gw_conn *c, bool progress, const char *owner,
                                   long long deadline_ms, const struct gw_call_async *cb,
                                   void *arg, char *why, size_t whylen)
{
    struct call *k = call_open(c, progress, true, owner, why, whylen);
    if (k == NULL)
        return NULL;
    pthread_mutex_lock(&c->mu);
    k->acb = cb;
    k->aarg = arg;
    k->deadline = deadline_ms;
    k->pins = 1; /* the opener's, until gw_call_unpin: done waits for it */
    pthread_mutex_unlock(&c->mu);
    return k;
}

int gw_call_send(struct gw_call *k, const char *method, json_t *params, char *why, size_t whylen)
{
    return call_send(k, method, params, why, whylen);
}

void gw_call_unpin(struct gw_call *k, int r, const char *why)
{
    struct gw_conn *c = k->c;
    pthread_mutex_lock(&c->mu);
    k->pins--;
    if (r != 0 && k->acb != NULL && !k->fired && !k->done) {
        fire(c, k, NULL, r, why);
        return;
    }
    if (k->pins == 0)
        pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

bool gw_call_fire(struct gw_call *k, int r, const char *why)
{
    struct gw_conn *c = k->c;
    pthread_mutex_lock(&c->mu);
    if (k->acb == NULL || k->fired || k->done) {
        pthread_mutex_unlock(&c->mu);
        return false;
    }
    fire(c, k, NULL, r, why);
    return true;
}

bool gw_conn_room(struct gw_conn *c, size_t n)
{
    if (c->http)
        return true;
    int unread = 0;
    pthread_mutex_lock(&c->wmu);
    bool room = c->in_fd >= 0 && c->pipe_cap > 0 && ioctl(c->in_fd, FIONREAD, &unread) == 0 &&
                (size_t)c->pipe_cap > (size_t)unread + n;
    pthread_mutex_unlock(&c->wmu);
    return room;
}

void gw_conn_hold(struct gw_conn *c)
{
    pthread_mutex_lock(&c->mu);
    c->busy++;
    pthread_mutex_unlock(&c->mu);
}

void gw_conn_release(struct gw_conn *c)
{
    pthread_mutex_lock(&c->mu);
    if (--c->busy == 0)
        c->idle_since = clock_ms();
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int gw_call_wait(struct gw_call *k, long long deadline_ms, const struct gw_call_hooks *hooks,
                 json_t **resp, json_t **question, char *why, size_t whylen)
{
    struct gw_conn *c = k->c;
    *resp = NULL;
    *question = NULL;
    int r = 0;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (k->done) {
            *resp = k->resp;
            k->resp = NULL;
            r = 0;
            break;
        }
        /* what arrived for the caller: notifications handled here, a question returned */
        if (json_array_size(k->inbox) > 0) {
            json_t *m = json_incref(json_array_get(k->inbox, 0));
            json_array_remove(k->inbox, 0);
            pthread_mutex_unlock(&c->mu);
            const char *method = json_string_value(json_object_get(m, "method"));
            json_t *params = json_object_get(m, "params");
            if (json_object_get(m, "id") != NULL) {
                *question = m;
                return GW_ASKED;
            }
            if (hooks != NULL && strcmp(method, "notifications/progress") == 0 &&
                hooks->progress != NULL)
                hooks->progress(hooks->arg, params);
            else if (hooks != NULL && strcmp(method, "notifications/message") == 0 &&
                     hooks->log != NULL)
                hooks->log(hooks->arg, params);
            json_decref(m);
            pthread_mutex_lock(&c->mu);
            continue;
        }
        if (c->dead) {
            reason_set(why, whylen, "%s", c->dead_why);
            r = ERR_IO;
            break;
        }
        pthread_mutex_unlock(&c->mu);
        bool cancelled = hooks != NULL && hooks->cancelled != NULL && hooks->cancelled(hooks->arg);
        bool late = deadline_ms > 0 && clock_ms() >= deadline_ms;
        pthread_mutex_lock(&c->mu);
        if (k->done || json_array_size(k->inbox) > 0)
            continue;
        if (cancelled || late) {
            r = cancelled ? ERR_CANCELLED : ERR_TIMEOUT;
            reason_set(why, whylen, cancelled ? "cancelled" : "the server did not answer in time");
            break;
        }
        cond_wait_ms(&k->cv, &c->mu, 100);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

int gw_call_reply(struct gw_call *k, json_t *question, json_t *result, int code, const char *why)
{
    json_t *id = json_object_get(question, "id");
    json_t *m = result != NULL ? jsonrpc_result(id, result)
                               : jsonrpc_error(id, code, why != NULL ? why : "no answer", NULL);
    return send_msg(k->c, m);
}

void gw_call_end(struct gw_call *k, bool cancel, const char *why)
{
    if (k == NULL)
        return;
    struct gw_conn *c = k->c;
    pthread_mutex_lock(&c->mu);
    while (k->pins > 0)
        pthread_cond_wait(&c->cv, &c->mu); /* the reader is signalling it */
    bool tell = cancel && !k->done && !c->dead;
    uint64_t handle = k->handle;
    json_int_t id = k->id;
    call_unlink(c, k);
    pthread_mutex_unlock(&c->mu);
    if (tell) {
        if (c->http) {
            mcpc_cancel(c->mc, handle, why);
        } else {
            json_t *n = jsonrpc_notification("notifications/cancelled",
                                             json_pack("{s:I, s:s}", "requestId", (json_int_t)id,
                                                       "reason", why != NULL ? why : "cancelled"));
            if (write_line_within(c, n, 0) != 0) /* the reaper sends these: no waiting */
                log_debug("[%s] cannot send the cancellation (its stdin is full)", c->name);
            json_decref(n);
        }
    }
    json_decref(k->resp);
    json_decref(k->inbox);
    pthread_cond_destroy(&k->cv);
    free(k);
}

struct gw_conn *gw_call_conn(struct gw_call *k)
{
    return k->c;
}

/* One exchange, answering questions through hooks->ask (or refusing them). */
static int call_once(struct gw_conn *c, const char *method, json_t *params, int timeout_ms,
                     const struct gw_call_hooks *hooks, json_t **resp, char *why, size_t whylen)
{
    struct call *k = NULL;
    bool asks = hooks != NULL && hooks->ask != NULL;
    int r = gw_call_start(c, method, params, hooks != NULL && hooks->progress != NULL, asks,
                          hooks != NULL ? hooks->owner : NULL, &k, why, whylen);
    long long deadline = clock_ms() + (timeout_ms > 0 ? timeout_ms : 86400000LL);
    while (r == 0) {
        json_t *q = NULL;
        r = gw_call_wait(k, deadline, hooks, resp, &q, why, whylen);
        if (r != GW_ASKED)
            break;
        int code = JSONRPC_INTERNAL_ERROR;
        char w[300] = "the client could not answer";
        json_t *ans = hooks->ask(hooks->arg, json_string_value(json_object_get(q, "method")),
                                 json_object_get(q, "params"), &code, w, sizeof w);
        if (gw_call_reply(k, q, ans, code, w) != 0)
            log_warn("[%s] cannot pass the client's answer on", c->name);
        json_decref(q);
        r = 0;
    }
    gw_call_end(k, r == ERR_CANCELLED || r == ERR_TIMEOUT, why);
    return r;
}

int gw_conn_call(struct gw_conn *c, const char *method, json_t *params, int timeout_ms,
                 const struct gw_call_hooks *hooks, json_t **resp, char *why, size_t whylen)
{
    json_t *base = params != NULL ? json_deep_copy(params) : NULL;
    int r = call_once(c, method, params, timeout_ms, hooks, resp, why, whylen);
    /* a 2026-07-28 upstream asks its questions as input_required: ask, then call again */
    for (int round = 0; r == 0 && round < MRTR_ROUNDS; round++) {
        json_t *result = json_object_get(*resp, "result");
        const char *rt = json_string_value(json_object_get(result, "resultType"));
        if (rt == NULL || strcmp(rt, "input_required") != 0 || hooks == NULL || hooks->ask == NULL)
            break;
        json_t *answers = json_object();
        const char *key;
        json_t *ir;
        json_object_foreach (json_object_get(result, "inputRequests"), key, ir) {
            int code = 0;
            char w[300] = "";
            json_t *a = hooks->ask(hooks->arg, json_string_value(json_object_get(ir, "method")),
                                   json_object_get(ir, "params"), &code, w, sizeof w);
            if (a == NULL) {
                reason_set(why, whylen, "%s", w);
                r = ERR_INVALID;
                break;
            }
            json_object_set_new(answers, key, a);
        }
        if (r != 0) {
            json_decref(answers);
            break;
        }
        json_t *again = base != NULL ? json_deep_copy(base) : json_object();
        json_object_set_new(again, "inputResponses", answers);
        if (json_object_get(result, "requestState") != NULL)
            json_object_set(again, "requestState", json_object_get(result, "requestState"));
        json_decref(*resp);
        *resp = NULL;
        r = call_once(c, method, again, timeout_ms, hooks, resp, why, whylen);
    }
    json_decref(base);
    return r;
}

/* ---- starting ---- */

static struct gw_conn *conn_new(const char *name, const struct gw_conn_events *ev)
{
    struct gw_conn *c = xcalloc(1, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->in_fd = c->out_fd = c->err_fd = -1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->wmu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (ev != NULL)
        c->ev = *ev;
    c->idle_since = clock_ms();
    return c;
}

static json_t *client_capabilities(void)
{
    /* no roots: the client's roots are on another machine; a local server would take them
     * for its own */
    return json_pack("{s:{s:{}, s:{}}, s:{}}", "elicitation", "form", "url", "sampling");
}

static int handshake(struct gw_conn *c, const struct gw_upstream_cfg *u, char *why, size_t whylen)
{
    json_t *resp = NULL;
    json_t *params = json_pack("{s:s, s:o, s:{s:s, s:s}}", "protocolVersion",
                               MCP_VERSION_LATEST_LEGACY, "capabilities", client_capabilities(),
                               "clientInfo", "name", "mcpgate-gateway", "version", MCPGATE_VERSION);
    int r = call_once(c, "initialize", params, u->start_timeout_s * 1000, NULL, &resp, why, whylen);
    if (r == ERR_TIMEOUT)
        reason_set(why, whylen, "no answer to initialize within %d s (startTimeout)",
                   u->start_timeout_s);
    if (r != 0)
        return r;
    json_t *result = json_object_get(resp, "result");
    if (!json_is_object(result)) {
        const char *m =
            json_string_value(json_object_get(json_object_get(resp, "error"), "message"));
        reason_set(why, whylen, "initialize refused: %s", m != NULL ? m : "no result");
        json_decref(resp);
        return ERR_INVALID;
    }
    c->info = json_incref(result);
    json_decref(resp);
    json_t *n = jsonrpc_notification("notifications/initialized", NULL);
    r = write_line(c, n);
    json_decref(n);
    return r;
}

int gw_conn_spawn(const struct gw_upstream_cfg *u, char *const *extra_env,
                  const struct gw_conn_events *ev, struct gw_conn **out, char *why, size_t whylen)
{
    *out = NULL;
    int in[2] = {-1, -1}, outp[2] = {-1, -1}, errp[2] = {-1, -1};
    struct gw_conn *c = conn_new(u->name, ev);
    /* a call waits no longer for the pipe than it would for its answer */
    c->write_wait_ms = u->call_timeout_s > 0 && u->call_timeout_s * 1000L < WRITE_WAIT_MS
                           ? u->call_timeout_s * 1000L
                           : WRITE_WAIT_MS;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    char **envp = NULL, **argv = NULL;
    int r = ERR_IO;
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(outp, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
        reason_set(why, whylen, "pipe: %s", strerror(errno));
        goto fail;
    }
    size_t ne = 0, na = 0;
    for (char *const *e = u->env; e != NULL && *e != NULL; e++)
        ne++;
    for (char *const *e = extra_env; e != NULL && *e != NULL; e++)
        ne++;
    envp = xcalloc(ne + 1, sizeof *envp);
    ne = 0;
    for (char *const *e = u->env; e != NULL && *e != NULL; e++)
        envp[ne++] = *e;
    for (char *const *e = extra_env; e != NULL && *e != NULL; e++)
        envp[ne++] = *e;
    for (char *const *a = u->args; a != NULL && *a != NULL; a++)
        na++;
    argv = xcalloc(na + 2, sizeof *argv);
    argv[0] = u->command;
    for (size_t i = 0; i < na; i++)
        argv[i + 1] = u->args[i];
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    if (u->cwd != NULL)
        posix_spawn_file_actions_addchdir_np(&fa, u->cwd);
    posix_spawnattr_init(&at);
    /* its own process group: stopping it stops what it started too */
    posix_spawnattr_setpgroup(&at, 0);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    int e = strchr(u->command, '/') != NULL
                ? posix_spawn(&c->pid, u->command, &fa, &at, argv, envp)
                : posix_spawnp(&c->pid, u->command, &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (e != 0) {
        reason_set(why, whylen, "cannot start '%s': %s", u->command, strerror(e));
        c->pid = 0;
        goto fail;
    }
    close(in[0]);
    close(outp[1]);
    close(errp[1]);
    in[0] = outp[1] = errp[1] = -1;
    c->in_fd = in[1];
    c->pipe_cap = fcntl(in[1], F_GETPIPE_SZ);
    /* writes wait for room with a deadline (write_line_within), never forever */
    (void)fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
    c->out_fd = outp[0];
    c->err_fd = errp[0];
    if (pthread_create(&c->reader, NULL, reader_main, c) != 0 ||
        pthread_create(&c->errlog, NULL, errlog_main, c) != 0) {
        reason_set(why, whylen, "cannot start threads");
        goto fail;
    }
    c->threads = true;
    free(envp);
    free(argv);
    envp = NULL;
    argv = NULL;
    if ((r = handshake(c, u, why, whylen)) != 0)
        goto fail_started;
    log_info("[%s] started (pid %ld): %s %s", u->name, (long)c->pid,
             json_string_value(json_object_get(json_object_get(c->info, "serverInfo"), "name"))
                 ?: "?",
             json_string_value(json_object_get(c->info, "protocolVersion")) ?: "?");
    *out = c;
    return 0;
fail:
    if (in[0] >= 0)
        close(in[0]);
    if (in[1] >= 0 && c->in_fd != in[1])
        close(in[1]);
    if (outp[0] >= 0 && c->out_fd != outp[0])
        close(outp[0]);
    if (outp[1] >= 0)
        close(outp[1]);
    if (errp[0] >= 0 && c->err_fd != errp[0])
        close(errp[0]);
    if (errp[1] >= 0)
        close(errp[1]);
    free(envp);
    free(argv);
fail_started:
    c->exit_told = true; /* nobody to tell: the caller hears the error */
    gw_conn_free(c);
    return r != 0 ? r : ERR_IO;
}

/* ---- HTTP upstreams ---- */

static void http_notification(void *arg, json_t *msg)
{
    route(arg, msg, 0);
}

static void http_request(void *arg, json_t *msg, uint64_t related)
{
    route(arg, msg, related);
}

static void http_lost(void *arg, const char *why)
{
    mark_dead(arg, why);
}

int gw_conn_http(const struct gw_upstream_cfg *u, const struct gw_conn_events *ev,
                 struct gw_conn **out, char *why, size_t whylen)
{
    *out = NULL;
    struct gw_conn *c = conn_new(u->name, ev);
    c->http = true;
    json_t *caps = client_capabilities();
    json_t *info = json_pack("{s:s, s:s}", "name", "mcpgate-gateway", "version", MCPGATE_VERSION);
    enum mcpc_transport t = MCPC_HTTP_FIRST;
    if (u->transport != NULL)
        t = strcmp(u->transport, "sse-first") == 0   ? MCPC_SSE_FIRST
            : strcmp(u->transport, "http-only") == 0 ? MCPC_HTTP_ONLY
            : strcmp(u->transport, "sse-only") == 0  ? MCPC_SSE_ONLY
                                                     : MCPC_HTTP_FIRST;
    struct mcpc_opts mo = {.url = u->url,
                           .transport = t,
                           .protocol_version = u->protocol_version,
                           .headers = (const char *const *)u->headers,
                           .http = {.allow_http = true},
                           .client_info = info,
                           .capabilities = caps,
                           .connect_timeout_s = u->start_timeout_s};
    struct mcpc_events mev = {
        .on_notification = http_notification, .on_request = http_request, .on_lost = http_lost};
    int r = mcpc_new(&mo, &mev, c, &c->mc);
    json_decref(caps);
    json_decref(info);
    if (r != 0) {
        reason_set(why, whylen, "cannot use the URL %s", u->url);
        goto fail;
    }
    if ((r = mcpc_connect(c->mc, NULL, why, whylen)) != 0)
        goto fail;
    c->info = mcpc_server_info(c->mc);
    log_info("[%s] connected to %s (protocol %s)", u->name, u->url, mcpc_protocol_version(c->mc));
    *out = c;
    return 0;
fail:
    c->exit_told = true;
    gw_conn_free(c);
    return r != 0 ? r : ERR_IO;
}

/* ---- the rest ---- */

bool gw_conn_alive(struct gw_conn *c)
{
    pthread_mutex_lock(&c->mu);
    bool alive = !c->dead;
    pthread_mutex_unlock(&c->mu);
    return alive;
}

json_t *gw_conn_info(struct gw_conn *c)
{
    return c->info;
}

unsigned gw_conn_busy(struct gw_conn *c)
{
    pthread_mutex_lock(&c->mu);
    unsigned b = c->busy;
    pthread_mutex_unlock(&c->mu);
    return b;
}

long long gw_conn_idle_since(struct gw_conn *c)
{
    pthread_mutex_lock(&c->mu);
    long long t = c->idle_since;
    pthread_mutex_unlock(&c->mu);
    return t;
}

long gw_conn_pid(struct gw_conn *c)
{
    return c->http ? 0 : (long)c->pid;
}

static bool wait_exit(pid_t pid, int ms)
{
    for (int i = 0; i < ms / 20; i++) {
        if (kill(pid, 0) != 0)
            return true;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    return kill(pid, 0) != 0;
}

void gw_conn_free(struct gw_conn *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->exit_told = true; /* a stop we asked for is not news */
    pthread_mutex_unlock(&c->mu);
    if (c->http) {
        /* dead first (nothing sends any more), then wait for holders to leave, then free the
         * client under nobody's feet */
        mark_dead(c, "the gateway is stopping it");
        pthread_mutex_lock(&c->mu);
        while (c->busy > 0)
            cond_wait_ms(&c->cv, &c->mu, 20);
        pthread_mutex_unlock(&c->mu);
        mcpc_free(c->mc);
    } else {
        if (pthread_mutex_trylock(&c->wmu) != 0) {
            /* a writer waits for room the child does not make: stop it, the write fails */
            if (c->pid > 0 && kill(-c->pid, SIGTERM) == 0 && !wait_exit(c->pid, 2000))
                kill(-c->pid, SIGKILL);
            pthread_mutex_lock(&c->wmu);
        }
        if (c->in_fd >= 0) {
            close(c->in_fd); /* the MCP way to ask a stdio server to stop */
            c->in_fd = -1;
        }
        pthread_mutex_unlock(&c->wmu);
        pid_t pid = c->pid;
        if (pid > 0 && !wait_exit(pid, 2000)) {
            kill(-pid, SIGTERM);
            if (!wait_exit(pid, 2000))
                kill(-pid, SIGKILL);
        }
        if (c->threads) {
            pthread_join(c->reader, NULL);
            pthread_join(c->errlog, NULL);
        }
        if (c->out_fd >= 0)
            close(c->out_fd);
        if (c->err_fd >= 0)
            close(c->err_fd);
    }
    /* callers still waiting heard it (mark_dead broadcast): let them leave first */
    pthread_mutex_lock(&c->mu);
    c->dead = true;
    pthread_cond_broadcast(&c->cv);
    while (c->busy > 0)
        cond_wait_ms(&c->cv, &c->mu, 20);
    pthread_mutex_unlock(&c->mu);
    json_decref(c->info);
    pthread_mutex_destroy(&c->wmu);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
