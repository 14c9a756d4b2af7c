/* The loopback redirect listener (see callback.h). One thread, poll(2) over the listening
 * socket and up to CB_MAX_CONNS connections: browsers open idle preconnections that never send
 * a byte, so a one-at-a-time server would stall behind them. Each connection has a deadline
 * and a capped buffer; everything it sends is parsed strictly. */
#include "client/callback.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/reason.h"
#include "core/xmalloc.h"
#include "oauth/form.h"
#include "oauth/html.h"

#define CB_MAX_CONNS 16
#define CB_CONN_DEADLINE_MS 10000

/* ---- the request head parser ---- */

void cb_request_clear(struct cb_request *r)
{
    if (r == NULL)
        return;
    free(r->path);
    json_decref(r->query);
    memset(r, 0, sizeof *r);
}

int cb_parse_request(const char *buf, size_t len, struct cb_request *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    /* the head ends at the first blank line (CRLF CRLF, or bare LF LF from lenient peers) */
    const char *end = NULL;
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] == '\n' && buf[i + 1] == '\n') {
            end = buf + i;
            break;
        }
        if (i + 3 < len && memcmp(buf + i, "\r\n\r\n", 4) == 0) {
            end = buf + i;
            break;
        }
    }
    if (end == NULL) {
        if (len >= CB_REQUEST_MAX) {
            reason_set(why, whylen, "request head longer than %d bytes", CB_REQUEST_MAX);
            return ERR_TOOBIG;
        }
        return ERR_EOF;
    }
    if (memchr(buf, '\0', (size_t)(end - buf)) != NULL) {
        reason_set(why, whylen, "NUL byte in the request head");
        return ERR_PARSE;
    }
    /* request line: METHOD SP target SP HTTP/1.x */
    /* a '\n' exists at end or end + 1 (the blank line found above) */
    const char *eol = memchr(buf, '\n', len);
    size_t linelen = (size_t)(eol - buf);
    if (linelen > 0 && buf[linelen - 1] == '\r')
        linelen--;
    const char *sp1 = memchr(buf, ' ', linelen);
    if (sp1 == NULL || sp1 == buf || (size_t)(sp1 - buf) >= sizeof out->method) {
        reason_set(why, whylen, "malformed request line");
        return ERR_PARSE;
    }
    for (const char *p = buf; p < sp1; p++) {
        if (*p < 'A' || *p > 'Z') {
            reason_set(why, whylen, "malformed method");
            return ERR_PARSE;
        }
    }
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', linelen - (size_t)(target - buf));
    if (sp2 == NULL || sp2 == target || *target != '/') {
        reason_set(why, whylen, "the request target must be a path starting with '/'");
        return ERR_PARSE;
    }
    size_t vlen = linelen - (size_t)(sp2 + 1 - buf);
    if (vlen != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 || (sp2[8] != '0' && sp2[8] != '1')) {
        reason_set(why, whylen, "not an HTTP/1.x request");
        return ERR_PARSE;
    }
    for (const char *p = target; p < sp2; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f) {
            reason_set(why, whylen, "control or non-ASCII byte in the request target");
            return ERR_PARSE;
        }
    }
    const char *q = memchr(target, '?', (size_t)(sp2 - target));
    const char *pathend = q != NULL ? q : sp2;
    const char *hash = memchr(target, '#', (size_t)(sp2 - target));
    if (hash != NULL) {
        reason_set(why, whylen, "a fragment in the request target");
        return ERR_PARSE;
    }
    json_t *query = NULL;
    if (q != NULL) {
        if (form_parse(q + 1, (size_t)(sp2 - q - 1), &query, why, whylen) != 0)
            return ERR_PARSE;
    } else {
        query = json_object();
    }
    memcpy(out->method, buf, (size_t)(sp1 - buf));
    out->method[sp1 - buf] = '\0';
    out->path = xstrndup(target, (size_t)(pathend - target));
    out->query = query;
    return 0;
}

/* ---- the listener ---- */

struct conn {
    int fd;
    long long deadline;
    struct buf in;
};

struct cb_listener {
    int fd;
    int port;
    struct conn conns[CB_MAX_CONNS];
    size_t nconns;
    int waiting_fd; /* the callback connection handed to cb_reply */
};

#define now_ms clock_ms

static int bind_port(const char *host, int port, int *fdout, int *portout)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        sl = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        sl = sizeof *v6;
    } else {
        return ERR_INVALID;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return ERR_IO;
    int one = 1;
    /* SO_REUSEADDR lets a new listener take a port whose old connections linger in TIME_WAIT;
     * it never lets two listeners share a port on Linux (that is SO_REUSEPORT). */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
        int e = errno;
        close(fd);
        return e == EADDRINUSE ? ERR_EXISTS : ERR_IO;
    }
    if (listen(fd, 16) != 0) {
        close(fd);
        return ERR_IO;
    }
    sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *portout = ntohs(ss.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
    *fdout = fd;
    return 0;
}

int cb_listen(const char *host, int port, bool strict, struct cb_listener **out, char *why,
              size_t whylen)
{
    *out = NULL;
    int fd = -1, bound = 0;
    int r = bind_port(host, port, &fd, &bound);
    if (r == ERR_EXISTS && !strict && port != 0) {
        log_info("callback port %d is in use; using another one", port);
        r = bind_port(host, 0, &fd, &bound);
    }
    if (r == ERR_EXISTS) {
        reason_set(why, whylen,
                   "the callback port %s:%d is in use (another sign-in, or another program); "
                   "free it or choose another --callback-port",
                   host, port);
        return r;
    }
    if (r != 0) {
        reason_set(why, whylen, "cannot listen on %s:%d: %s", host, port,
                   r == ERR_INVALID ? "not an IP address" : strerror(errno));
        return r;
    }
    struct cb_listener *l = xcalloc(1, sizeof *l);
    l->fd = fd;
    l->port = bound;
    l->waiting_fd = -1;
    *out = l;
    return 0;
}

int cb_port(const struct cb_listener *l)
{
    return l->port;
}

static void conn_drop(struct cb_listener *l, size_t i)
{
    close(l->conns[i].fd);
    buf_free(&l->conns[i].in);
    l->conns[i] = l->conns[--l->nconns];
}

void cb_close(struct cb_listener *l)
{
    if (l == NULL)
        return;
    while (l->nconns > 0)
        conn_drop(l, 0);
    if (l->waiting_fd >= 0)
        close(l->waiting_fd);
    close(l->fd);
    free(l);
}

static void send_all(int fd, const char *p, size_t n)
{
    /* a loopback browser reads a few KiB at once; a peer that does not read is abandoned */
    long long deadline = now_ms() + 2000;
    while (n > 0 && now_ms() < deadline) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            poll(&pf, 1, 100);
        } else {
            return;
        }
    }
}

static void respond(int fd, int status, const char *reason, const char *html)
{
    char *head = xasprintf("HTTP/1.1 %d %s\r\n"
                           "Content-Type: text/html; charset=utf-8\r\n"
                           "Content-Length: %zu\r\n"
                           "Cache-Control: no-store\r\n"
                           "Referrer-Policy: no-referrer\r\n"
                           "X-Frame-Options: DENY\r\n"
                           "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "
                           "frame-ancestors 'none'\r\n"
                           "Connection: close\r\n\r\n",
                           status, reason, strlen(html));
    send_all(fd, head, strlen(head));
    send_all(fd, html, strlen(html));
    free(head);
}

static void respond_error(int fd, int status, const char *reason, const char *title,
                          const char *message)
{
    char *html = html_error_page("mcpgate", title, message);
    respond(fd, status, reason, html != NULL ? html : "");
    free(html);
}

/* What one readable connection holds: 1 when it is the awaited callback (*query set), 0 when
 * it was answered or needs more bytes, -1 when it is to be dropped. */
static int conn_serve(struct conn *c, const char *state, json_t **query)
{
    char tmp[4096], why[200];
    ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        return -1;
    if (n < 0)
        return 0;
    if (buf_append(&c->in, tmp, (size_t)n) != 0) {
        respond_error(c->fd, 431, "Request Header Fields Too Large", "Bad request",
                      "The request is too large.");
        return -1;
    }
    struct cb_request req;
    int r = cb_parse_request(c->in.data, c->in.len, &req, why, sizeof why);
    if (r == ERR_EOF)
        return 0;
    if (r != 0) {
        log_debug("callback listener: bad request: %s", why);
        respond_error(c->fd, 400, "Bad Request", "Bad request", why);
        return -1;
    }
    int ret = -1;
    if (strcmp(req.path, CB_PATH) != 0) {
        respond_error(c->fd, 404, "Not Found", "Not found",
                      "This is mcpgate's sign-in listener; it only answers " CB_PATH ".");
    } else if (strcmp(req.method, "GET") != 0) {
        respond_error(c->fd, 405, "Method Not Allowed", "Method not allowed",
                      "The sign-in callback is a GET request.");
    } else {
        const char *got = json_string_value(json_object_get(req.query, "state"));
        if (got == NULL || strlen(got) != strlen(state) ||
            !crypto_equal(got, state, strlen(state))) {
            log_info("sign-in listener: a callback for another sign-in (state differs); "
                     "still waiting");
            respond_error(c->fd, 400, "Bad Request", "Not this sign-in",
                          "This callback does not belong to the sign-in in progress (its state "
                          "differs). Start the sign-in again from the application.");
        } else {
            *query = req.query;
            req.query = NULL;
            ret = 1;
        }
    }
    cb_request_clear(&req);
    return ret;
}

int cb_wait(struct cb_listener *l, const char *state, int timeout_ms, volatile bool *stop,
            json_t **query)
{
    *query = NULL;
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        if (stop != NULL && *stop)
            return ERR_CANCELLED;
        long long now = now_ms();
        if (now >= deadline)
            return ERR_TIMEOUT;
        /* expire idle connections */
        for (size_t i = 0; i < l->nconns;) {
            if (now >= l->conns[i].deadline)
                conn_drop(l, i);
            else
                i++;
        }
        struct pollfd pf[CB_MAX_CONNS + 1];
        pf[0] = (struct pollfd){.fd = l->fd, .events = POLLIN};
        for (size_t i = 0; i < l->nconns; i++)
            pf[i + 1] = (struct pollfd){.fd = l->conns[i].fd, .events = POLLIN};
        long long wait = deadline - now;
        if (wait > 200)
            wait = 200; /* to look at *stop and the connections' deadlines */
        int n = poll(pf, l->nconns + 1, (int)wait);
        if (n <= 0)
            continue;
        /* connections first: pf[] indexes shift when one is dropped, so walk backwards */
        for (size_t i = l->nconns; i > 0; i--) {
            if (pf[i].revents == 0)
                continue;
            int r = conn_serve(&l->conns[i - 1], state, query);
            if (r == 1) {
                l->waiting_fd = l->conns[i - 1].fd;
                l->conns[i - 1].fd = -1;
                buf_free(&l->conns[i - 1].in);
                l->conns[i - 1] = l->conns[--l->nconns];
                return 0;
            }
            if (r < 0)
                conn_drop(l, i - 1);
        }
        if (pf[0].revents & POLLIN) {
            int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd < 0)
                continue;
            if (l->nconns == CB_MAX_CONNS) {
                /* the oldest connection is the likeliest idle preconnection */
                conn_drop(l, 0);
            }
            struct conn *c = &l->conns[l->nconns++];
            c->fd = fd;
            c->deadline = now_ms() + CB_CONN_DEADLINE_MS;
            buf_init(&c->in, CB_REQUEST_MAX);
        }
    }
}

void cb_reply(struct cb_listener *l, bool ok, const char *title, const char *message)
{
    if (l->waiting_fd < 0)
        return;
    char *html = ok ? html_done_page(title, message) : html_error_page("mcpgate", title, message);
    respond(l->waiting_fd, ok ? 200 : 400, ok ? "OK" : "Bad Request", html != NULL ? html : "");
    free(html);
    shutdown(l->waiting_fd, SHUT_WR);
    close(l->waiting_fd);
    l->waiting_fd = -1;
}
