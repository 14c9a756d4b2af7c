/* stdio transport: newline-delimited JSON-RPC on stdin/stdout. stdout carries only protocol
 * messages; logs go to stderr. A line longer than the message limit is answered with an error
 * and skipped, never buffered whole. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "mcp/jsonrpc.h"
#include "mcp/mcp_int.h"
#include "mcp/session.h"

/* Output with combined writes: a sender appends its line to the pending buffer; if no one is
 * writing, it becomes the writer and writes everything pending (its own line and whatever
 * other threads queued meanwhile) in as few write calls as possible. */
struct stdio_out {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fd;
    bool writing; /* a thread is in write() */
    bool broken;  /* the reader of stdout went away */
    struct buf pending;
};

static void write_all(struct stdio_out *o, const char *p, size_t n)
{
    while (n > 0 && !o->broken) {
        ssize_t w = write(o->fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            log_error("stdout: %s; no more messages will be written", strerror(errno));
            o->broken = true;
            break;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void stdio_send(void *arg, void *stream, const char *msg, size_t len, bool final)
{
    struct stdio_out *o = arg;
    pthread_mutex_lock(&o->mu);
    /* Backpressure: a client that does not read makes senders wait rather than grow memory. */
    while (!o->broken && o->pending.len > (16u << 20))
        pthread_cond_wait(&o->cv, &o->mu);
    if (o->broken || buf_append(&o->pending, msg, len) != 0 ||
        buf_append(&o->pending, "\n", 1) != 0) {
        pthread_mutex_unlock(&o->mu);
        return;
    }
    if (o->writing) {
        pthread_mutex_unlock(&o->mu);
        return; /* the current writer takes it */
    }
    o->writing = true;
    while (o->pending.len > 0 && !o->broken) {
        size_t n = 0;
        char *data = buf_steal(&o->pending, &n);
        pthread_mutex_unlock(&o->mu);
        write_all(o, data, n);
        free(data);
        pthread_mutex_lock(&o->mu);
        pthread_cond_broadcast(&o->cv);
    }
    o->writing = false;
    pthread_mutex_unlock(&o->mu);
}

static void feed_line(struct mcp_session *s, char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i == len)
        return; /* blank line */
    mcp_session_feed(s, line + i, len - i, NULL);
}

static int serve_fds(struct mcp_server *srv, int in_fd, int out_fd)
{
    struct stdio_out out = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
                            .fd = out_fd};
    buf_init(&out.pending, (size_t)1 << 30);
    struct mcp_session_io io = {.send = stdio_send, .arg = &out};
    struct mcp_session *s = mcp_session_new(srv, &io);
    size_t limit = srv->max_message;
    struct buf line;
    char chunk[65536];
    bool skipping = false; /* inside an oversized line */
    int r = 0;

    buf_init(&line, limit);
    for (;;) {
        ssize_t n = read(in_fd, chunk, sizeof(chunk));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_error("stdin: %s", strerror(errno));
            r = ERR_IO;
            break;
        }
        if (n == 0)
            break;
        char *p = chunk, *end = chunk + n;
        while (p < end) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t seg = (size_t)((nl ? nl : end) - p);
            if (!skipping) {
                if (nl != NULL && line.len == 0) {
                    feed_line(s, p, seg); /* the common case: no copy */
                } else if (buf_append(&line, p, seg) != 0) {
                    char msg[128];
                    snprintf(msg, sizeof(msg),
                             "Invalid Request: message exceeds the limit of %zu bytes", limit);
                    log_warn("stdin: %s; skipping to the next line", msg);
                    mcp_session_reject(s, JSONRPC_INVALID_REQUEST, msg, NULL);
                    buf_reset(&line);
                    skipping = true;
                } else if (nl != NULL) {
                    feed_line(s, line.data, line.len);
                    buf_reset(&line);
                }
            }
            if (nl == NULL)
                break;
            skipping = false;
            p = nl + 1;
        }
    }
    if (!skipping && line.len > 0)
        feed_line(s, line.data, line.len); /* a last message without its newline */
    buf_free(&line);
    if (r == 0)
        mcp_session_drain(s); /* a client that closes stdin still gets its answers */
    mcp_session_close(s);
    buf_free(&out.pending);
    return r;
}

int mcp_serve_stdio(struct mcp_server *srv)
{
    signal(SIGPIPE, SIG_IGN);
    log_info("serving MCP on stdio (protocol revisions %s and earlier; %s stateless)",
             MCP_VERSION_LATEST_LEGACY, MCP_VERSION_MODERN);
    return serve_fds(srv, STDIN_FILENO, STDOUT_FILENO);
}
