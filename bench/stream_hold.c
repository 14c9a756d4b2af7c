/*
 * stream_hold: opens N idle MCP SSE streams to one HTTP server and holds them, so that the
 * server's memory per open stream can be measured (bench/http.sh).
 *
 *   stream_hold -p PORT -n N [-k mcp|sse] [-c INFLIGHT] [-t SETUP_SEC] [-a ADDRS] [-q HOLD_SEC]
 *               [-h HOST]
 *
 * Each stream is its own keep-alive connection, driven by one epoll loop over non-blocking
 * sockets, at most INFLIGHT (default 64) connections in their set-up phase at a time:
 *
 *   -k mcp (default), Streamable HTTP with a session: POST /mcp initialize (protocolVersion
 *          2025-11-25) -> 200 with an Mcp-Session-Id; POST notifications/initialized with that
 *          id -> 202; GET /mcp (Accept: text/event-stream, the id) -> 200 text/event-stream.
 *   -k sse, legacy HTTP+SSE: GET /sse -> 200 text/event-stream and an `endpoint` event.
 *
 * All three requests of a stream go over the same connection. Once the set-up phase ends (every
 * stream open or failed, or SETUP_SEC, default 60, elapsed) it prints one line
 *
 *   streams=OK wanted=N wrong=W failed=F timeout=T setup_ms=MS kind=K
 *
 * (wrong: an answer with an unexpected status or content type; failed: connection refused,
 * reset or closed during set-up; timeout: still in set-up when the time ran out), then holds the
 * open streams, reading and discarding whatever the server sends (keep-alive comments), until
 * SIGTERM, SIGINT, its parent's death or HOLD_SEC (default 600), and prints
 *
 *   held=OK closed_by_server=C
 *
 * Exit status: 0 when no answer was wrong and at least one stream opened, 1 otherwise, 2 on a
 * usage or system error. RLIMIT_NOFILE is raised to fit N; -a ADDRS (default 1) spreads the
 * connections over the source addresses 127.0.0.1 .. 127.0.0.ADDRS when the ephemeral ports of
 * one address would run out.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_CAP 8192
#define SID_CAP 160
#define PROTO "2025-11-25"
#define INITIALIZE                                                                                 \
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"     \
    "\"" PROTO                                                                                     \
    "\",\"capabilities\":{},\"clientInfo\":{\"name\":\"stream_hold\",\"version\":\"1\"}}}"

enum phase { P_FREE, P_CONNECTING, P_INIT, P_NOTIF, P_GET, P_HOLD, P_DONE };

struct conn {
    int fd;
    enum phase phase;
    size_t len;        /* bytes in buf */
    char *buf;         /* owned; only during set-up */
    char sid[SID_CAP]; /* Mcp-Session-Id, mcp kind */
};

static volatile sig_atomic_t stop;
static const char *host = "127.0.0.1";
static int port;
static int sse_kind;
static long n_ok, n_wrong, n_failed, n_timeout, n_closed;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long parse_long(const char *s, const char *what)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0) {
        fprintf(stderr, "stream_hold: bad %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

static void raise_nofile(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur >= (rlim_t)want)
        return;
    if (rl.rlim_max < (rlim_t)want) {
        struct rlimit up = {(rlim_t)want, (rlim_t)want};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0) /* works as root */
            return;
    }
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* Finds header NAME (lower case, with the colon) in the header block; copies its value. */
static int header(const char *hdrs, size_t hlen, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = hdrs, *end = hdrs + hlen;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl;
            size_t vl;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            vl = (size_t)(eol - v);
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return 1;
        }
        p = eol + 2;
    }
    return 0;
}

/*
 * Parses one response in c->buf. Returns 0 when more bytes are needed, 1 when complete (or, with
 * headers_only, when the headers are in), -1 when it cannot be parsed. OUT: *status, and the
 * headers copied into hdr (NUL-terminated) for the caller's checks.
 */
static int response(struct conn *c, int headers_only, int *status, char *hdr, size_t hcap)
{
    char *eoh = memmem(c->buf, c->len, "\r\n\r\n", 4);
    size_t hlen, blen;
    char val[64];
    if (eoh == NULL)
        return c->len >= BUF_CAP - 1 ? -1 : 0;
    hlen = (size_t)(eoh - c->buf) + 2;
    if (hlen + 1 > hcap || c->len < 12 || strncmp(c->buf, "HTTP/1.", 7) != 0)
        return -1;
    memcpy(hdr, c->buf, hlen);
    hdr[hlen] = '\0';
    *status = (int)strtol(c->buf + 9, NULL, 10);
    if (headers_only)
        return 1;
    blen = c->len - (hlen + 2);
    if (header(hdr, hlen, "content-length:", val, sizeof val))
        return blen >= (size_t)strtol(val, NULL, 10) ? 1 : 0;
    if (header(hdr, hlen, "transfer-encoding:", val, sizeof val) && strcasestr(val, "chunked")) {
        const char *body = eoh + 4;
        if (blen >= 5 && memcmp(body + blen - 5, "0\r\n\r\n", 5) == 0 &&
            (blen == 5 || memcmp(body + blen - 7, "\r\n", 2) == 0))
            return 1;
        return 0;
    }
    return (*status == 202 || *status == 204) ? 1 : -1;
}

static int send_all(int fd, const char *s, size_t n)
{
    /* Requests are a few hundred bytes on a fresh socket: one send() takes them all. */
    ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
    return w == (ssize_t)n ? 0 : -1;
}

static int send_post(struct conn *c, const char *body)
{
    char req[1024];
    int n;
    if (c->sid[0] != '\0')
        n = snprintf(req, sizeof req,
                     "POST /mcp HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                     "Accept: application/json, text/event-stream\r\nMcp-Session-Id: %s\r\n"
                     "MCP-Protocol-Version: " PROTO "\r\nContent-Length: %zu\r\n\r\n%s",
                     host, port, c->sid, strlen(body), body);
    else
        n = snprintf(req, sizeof req,
                     "POST /mcp HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                     "Accept: application/json, text/event-stream\r\nContent-Length: %zu\r\n\r\n%s",
                     host, port, strlen(body), body);
    if (n < 0 || (size_t)n >= sizeof req)
        return -1;
    return send_all(c->fd, req, (size_t)n);
}

static int send_get(struct conn *c)
{
    char req[512];
    int n;
    if (sse_kind)
        n = snprintf(req, sizeof req,
                     "GET /sse HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n\r\n", host,
                     port);
    else
        n = snprintf(req, sizeof req,
                     "GET /mcp HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n"
                     "Mcp-Session-Id: %s\r\nMCP-Protocol-Version: " PROTO "\r\n\r\n",
                     host, port, c->sid);
    if (n < 0 || (size_t)n >= sizeof req)
        return -1;
    return send_all(c->fd, req, (size_t)n);
}

/* Reports the first few failures on stderr, so a failed run says why. */
static void why(const char *what, int err)
{
    static int shown;
    if (shown++ < 3)
        fprintf(stderr, "stream_hold: %s: %s\n", what, strerror(err));
}

static void finish(struct conn *c, long *counter)
{
    if (counter != NULL)
        (*counter)++;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->phase = P_DONE;
}

/* Advances a connection in set-up after its socket became readable. Returns 1 when the stream
 * just became established. */
static int step(int ep, struct conn *c)
{
    char hdr[BUF_CAP], ct[128];
    int status = 0, r;
    ssize_t got = recv(c->fd, c->buf + c->len, BUF_CAP - 1 - c->len, 0);
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
        why("connection closed during set-up", got == 0 ? ECONNRESET : errno);
        finish(c, &n_failed);
        return 0;
    }
    if (got < 0)
        return 0;
    c->len += (size_t)got;
    c->buf[c->len] = '\0';
    r = response(c, c->phase == P_GET, &status, hdr, sizeof hdr);
    if (r == 0)
        return 0;
    if (r < 0) {
        finish(c, &n_wrong);
        return 0;
    }
    switch (c->phase) {
    case P_INIT:
        if (status != 200 || !header(hdr, strlen(hdr), "mcp-session-id:", c->sid, SID_CAP) ||
            strstr(c->buf, "\"protocolVersion\"") == NULL) {
            fprintf(stderr, "stream_hold: initialize answered %d without a session\n", status);
            finish(c, &n_wrong);
            return 0;
        }
        c->len = 0;
        c->phase = P_NOTIF;
        if (send_post(c, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}") != 0)
            finish(c, &n_failed);
        return 0;
    case P_NOTIF:
        if (status != 202) {
            fprintf(stderr, "stream_hold: notifications/initialized answered %d\n", status);
            finish(c, &n_wrong);
            return 0;
        }
        c->len = 0;
        c->phase = P_GET;
        if (send_get(c) != 0)
            finish(c, &n_failed);
        return 0;
    case P_GET:
        if (status != 200 || !header(hdr, strlen(hdr), "content-type:", ct, sizeof ct) ||
            strncasecmp(ct, "text/event-stream", 17) != 0) {
            fprintf(stderr, "stream_hold: GET answered %d (%s)\n", status, hdr);
            finish(c, &n_wrong);
            return 0;
        }
        if (sse_kind && strstr(c->buf + strlen(hdr), "event: endpoint") == NULL) {
            if (c->len >= BUF_CAP - 1) {
                finish(c, &n_wrong);
                return 0;
            }
            return 0; /* the endpoint event has not arrived yet */
        }
        free(c->buf);
        c->buf = NULL;
        c->phase = P_HOLD;
        (void)ep;
        return 1;
    default: return 0;
    }
}

int main(int argc, char **argv)
{
    long n = 0, inflight_max = 64, setup_s = 60, addrs = 1, hold_s = 600;
    long started = 0, inflight = 0, i;
    struct conn *conns;
    struct epoll_event evs[256];
    struct sigaction sa;
    double t0, deadline, t_setup;
    int ep, opt;

    while ((opt = getopt(argc, argv, "p:n:k:c:t:a:q:h:")) != -1) {
        switch (opt) {
        case 'p': port = (int)parse_long(optarg, "port"); break;
        case 'n': n = parse_long(optarg, "count"); break;
        case 'k':
            if (strcmp(optarg, "sse") == 0)
                sse_kind = 1;
            else if (strcmp(optarg, "mcp") != 0) {
                fprintf(stderr, "stream_hold: -k mcp or sse\n");
                return 2;
            }
            break;
        case 'c': inflight_max = parse_long(optarg, "in-flight count"); break;
        case 't': setup_s = parse_long(optarg, "set-up seconds"); break;
        case 'a': addrs = parse_long(optarg, "address count"); break;
        case 'q': hold_s = parse_long(optarg, "hold seconds"); break;
        case 'h': host = optarg; break;
        default:
            fprintf(stderr, "usage: stream_hold -p PORT -n N [-k mcp|sse] [-c INFLIGHT] "
                            "[-t SETUP_SEC] [-a ADDRS] [-q HOLD_SEC] [-h HOST]\n");
            return 2;
        }
    }
    if (port <= 0 || n <= 0 || inflight_max <= 0 || addrs < 1 || addrs > 254) {
        fprintf(stderr, "stream_hold: -p PORT and -n N are required\n");
        return 2;
    }
    raise_nofile(n + 64);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    conns = calloc((size_t)n, sizeof *conns);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (conns == NULL || ep < 0) {
        perror("stream_hold");
        return 2;
    }
    for (i = 0; i < n; i++)
        conns[i].fd = -1;

    t0 = now_ms();
    deadline = t0 + setup_s * 1e3;
    /* Set-up phase. */
    while (!stop && (started < n || inflight > 0) && now_ms() < deadline) {
        int k, ready;
        while (started < n && inflight < inflight_max) {
            struct conn *c = &conns[started];
            struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = (uint64_t)started};
            started++;
            inet_pton(AF_INET, host, &sin.sin_addr);
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (c->fd < 0) {
                why("socket", errno);
                finish(c, &n_failed);
                continue;
            }
            if (addrs > 1) {
                int one = 1;
                struct sockaddr_in src = {.sin_family = AF_INET};
                src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)((started - 1) % addrs));
                setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
                if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0) {
                    why("bind", errno);
                    finish(c, &n_failed);
                    continue;
                }
            }
            if (connect(c->fd, (struct sockaddr *)&sin, sizeof sin) != 0 && errno != EINPROGRESS) {
                why("connect", errno);
                finish(c, &n_failed);
                continue;
            }
            c->buf = malloc(BUF_CAP);
            if (c->buf == NULL || epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
                why("epoll_ctl", errno);
                finish(c, &n_failed);
                continue;
            }
            c->phase = P_CONNECTING;
            inflight++;
        }
        ready = epoll_wait(ep, evs, 256, 100);
        for (k = 0; k < ready; k++) {
            struct conn *c = &conns[evs[k].data.u64];
            if (c->phase == P_HOLD) {
                char scratch[4096];
                ssize_t got = recv(c->fd, scratch, sizeof scratch, 0);
                if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
                    n_ok--;
                    finish(c, &n_closed);
                }
                continue;
            }
            if (c->phase == P_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof err;
                struct epoll_event ev = {.events = EPOLLIN, .data.u64 = evs[k].data.u64};
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err != 0 || (evs[k].events & (EPOLLERR | EPOLLHUP))) {
                    why("connect", err != 0 ? err : ECONNRESET);
                    finish(c, &n_failed);
                    inflight--;
                    continue;
                }
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                c->phase = sse_kind ? P_GET : P_INIT;
                if ((sse_kind ? send_get(c) : send_post(c, INITIALIZE)) != 0) {
                    finish(c, &n_failed);
                    inflight--;
                }
                continue;
            }
            if (c->phase == P_INIT || c->phase == P_NOTIF || c->phase == P_GET) {
                if (step(ep, c)) {
                    n_ok++;
                    inflight--;
                } else if (c->phase == P_DONE) {
                    inflight--;
                }
            }
        }
    }
    /* Whatever is still setting up has run out of time. */
    for (i = 0; i < started; i++) {
        struct conn *c = &conns[i];
        if (c->phase != P_HOLD && c->phase != P_DONE)
            finish(c, &n_timeout);
    }
    n_timeout += n - started;
    t_setup = now_ms() - t0;
    printf("streams=%ld wanted=%ld wrong=%ld failed=%ld timeout=%ld setup_ms=%.0f kind=%s\n", n_ok,
           n, n_wrong, n_failed, n_timeout, t_setup, sse_kind ? "sse" : "mcp");
    fflush(stdout);

    /* Hold phase. */
    deadline = now_ms() + hold_s * 1e3;
    while (!stop && now_ms() < deadline) {
        int k, ready = epoll_wait(ep, evs, 256, 200);
        for (k = 0; k < ready; k++) {
            struct conn *c = &conns[evs[k].data.u64];
            char scratch[4096];
            ssize_t got;
            if (c->phase != P_HOLD)
                continue;
            got = recv(c->fd, scratch, sizeof scratch, 0);
            if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
                n_ok--;
                finish(c, &n_closed);
            }
        }
    }
    printf("held=%ld closed_by_server=%ld\n", n_ok, n_closed);
    fflush(stdout);
    for (i = 0; i < n; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    free(conns);
    return (n_wrong == 0 && n_ok + n_closed > 0) ? 0 : 1;
}
