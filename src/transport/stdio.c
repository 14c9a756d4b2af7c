/* stdio transport: newline-delimited JSON-RPC on stdin/stdout. stdout carries only protocol
 * messages; logs go to stderr. A line longer than the message limit is answered with an error
 * and skipped, never buffered whole. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "mcp/jsonrpc.h"
#include "mcp/mcp_int.h"
#include "mcp/session.h"

struct stdio_out {
    pthread_mutex_t mu;
    int fd;
    bool broken; /* the reader of stdout went away */
};

static void stdio_send(void *arg, void *stream, const char *msg, size_t len, bool final)
{
    struct stdio_out *o = arg;
    struct iovec iov[2] = {{(void *)msg, len}, {(void *)"\n", 1}};
    pthread_mutex_lock(&o->mu);
    size_t left = len + 1;
    int idx = 0;
    while (!o->broken && left > 0) {
        ssize_t n = writev(o->fd, &iov[idx], 2 - idx);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_error("stdout: %s; no more messages will be written", strerror(errno));
            o->broken = true;
            break;
        }
        left -= (size_t)n;
        while (n > 0 && idx < 2) {
            if ((size_t)n >= iov[idx].iov_len) {
                n -= (ssize_t)iov[idx].iov_len;
                iov[idx].iov_len = 0;
                idx++;
            } else {
                iov[idx].iov_base = (char *)iov[idx].iov_base + n;
                iov[idx].iov_len -= (size_t)n;
                n = 0;
            }
        }
    }
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
    struct stdio_out out = {.mu = PTHREAD_MUTEX_INITIALIZER, .fd = out_fd, .broken = false};
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
    return r;
}

int mcp_serve_stdio(struct mcp_server *srv)
{
    signal(SIGPIPE, SIG_IGN);
    log_info("serving MCP on stdio (protocol revisions %s and earlier; %s stateless)",
             MCP_VERSION_LATEST_LEGACY, MCP_VERSION_MODERN);
    return serve_fds(srv, STDIN_FILENO, STDOUT_FILENO);
}
