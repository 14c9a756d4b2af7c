/* token_load: load generator for the OAuth token endpoint's refresh_token grant with rotation
 * (bench/oauth.sh). Each of N keep-alive HTTP/1.1 connections runs one refresh chain: POST the
 * refresh token it holds, read the answer, take the new refresh_token from it, post that one,
 * and so on. One thread, one epoll loop, non-blocking sockets.
 *
 *   token_load -p PORT -f CHAINS [-h HOST] [-c N] [-d SEC] [-W SEC] [-k K] [-s ADDR] [-R]
 *              [-l LABEL]
 *
 * CHAINS (written by bench/glewlwyd/flows.py): line 1 the token endpoint's path, line 2 the
 * Authorization header value, then one refresh token per line; -c N uses the first N (default:
 * all of them, one connection each).
 *
 * Source addresses: every connection binds a loopback source address (from -s, default
 * 127.1.0.1, counting up) before connect(). With -k K a connection moves to a fresh address
 * after K requests (closes after the K-th answer and reconnects from the next address), so that
 * a per-address limit on the token endpoint (mcpgate: burst 20, then 1 per second) never trips:
 * the figure is the endpoint's work, not the limiter's refill rate. -k 0 keeps one address per
 * connection for the whole run.
 *
 * Measured: responses completed in the window [start + W, start + W + d) (default W 0, d 10),
 * from the moment a request is written to its complete answer: rate_rps, mean/p50/p99/max in
 * microseconds. Requests in flight when the window ends are still read and checked, not counted.
 *
 * Every answer is checked: status 200, an access_token and a refresh_token different from the
 * one sent. Anything else counts in errors= (limited= for 429) and ends that chain (with rotation
 * its token is spent or its grant revoked). -R: after the run, each chain's previous (rotated)
 * token is posted once more, from a fresh address; the server must refuse it (4xx), else it
 * counts in reuse_accepted= and errors=.
 *
 * Output: one line of key=value pairs. Exit status: 0 all right, 1 wrong answers, 2 the run
 * could not complete (cannot connect, no answer for 10 s, out of memory). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TOKEN_MAX 4096
#define STALL_US 10000000LL

enum state { CONNECTING, SENDING, READING, DEAD };

struct conn {
    int fd;
    enum state st;
    char token[TOKEN_MAX], prev[TOKEN_MAX];
    char *out;
    size_t out_len, out_off;
    char *in;
    size_t in_len, in_cap;
    int64_t t_send;
    unsigned on_addr; /* requests answered on the current source address */
    uint32_t addr;    /* host order */
};

static const char *host = "127.0.0.1", *path, *auth;
static int port;
static uint32_t next_addr;
static unsigned per_addr;
static long reconnects, addrs_used, errors, limited, wrong_body, reuse_refused, reuse_accepted;
static int ep;

static int64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static void die(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("token_load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(status);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL)
        die(2, "out of memory");
    return q;
}

static uint32_t take_addr(void)
{
    /* Skip .0 and .255 so that every address looks like a host. */
    while ((next_addr & 0xff) == 0 || (next_addr & 0xff) == 255)
        next_addr++;
    if ((next_addr >> 24) != 127)
        die(2, "ran out of loopback source addresses");
    addrs_used++;
    return next_addr++;
}

/* A non-blocking socket bound to ADDR, connecting to the server. */
static int open_from(uint32_t addr, int blocking)
{
    int fd = socket(AF_INET, SOCK_STREAM | (blocking ? 0 : SOCK_NONBLOCK) | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die(2, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(addr)};
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0)
        die(2, "bind %s: %s", inet_ntoa(src.sin_addr), strerror(errno));
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1)
        die(2, "bad host %s", host);
    if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 && errno != EINPROGRESS)
        die(2, "connect to %s:%d: %s", host, port, strerror(errno));
    return fd;
}

static size_t urlenc(char *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
    return n;
}

/* The request for TOKEN into *out (reused buffer). */
static size_t build(char **out, const char *token)
{
    char body[TOKEN_MAX * 3 + 64];
    int b = snprintf(body, sizeof(body), "grant_type=refresh_token&refresh_token=");
    b += (int)urlenc(body + b, token);
    size_t cap = (size_t)b + strlen(path) + strlen(auth) + strlen(host) + 256;
    *out = xrealloc(*out, cap);
    int n = snprintf(*out, cap,
                     "POST %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: %s\r\n"
                     "Content-Type: application/x-www-form-urlencoded\r\n"
                     "Accept: application/json\r\nContent-Length: %d\r\n\r\n%s",
                     path, host, port, auth, b, body);
    return (size_t)n;
}

static void watch(struct conn *c, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, op, c->fd, &ev) != 0)
        die(2, "epoll_ctl: %s", strerror(errno));
}

static void start_connect(struct conn *c)
{
    c->addr = take_addr();
    c->on_addr = 0;
    c->fd = open_from(c->addr, 0);
    c->st = CONNECTING;
    c->in_len = 0;
    watch(c, EPOLL_CTL_ADD, EPOLLOUT);
}

static void send_next(struct conn *c)
{
    c->out_len = build(&c->out, c->token);
    c->out_off = 0;
    c->st = SENDING;
    c->t_send = now_us();
    watch(c, EPOLL_CTL_MOD, EPOLLOUT);
}

static void kill_conn(struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->st = DEAD;
}

/* Header value of NAME in the head [h, h+n), or NULL. */
static const char *header(const char *h, size_t n, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = memchr(h, '\n', n), *end = h + n;
    while (p != NULL && p + 1 < end) {
        p++;
        if ((size_t)(end - p) > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            const char *e = v;
            while (e < end && *e != '\r' && *e != '\n')
                e++;
            *vlen = (size_t)(e - v);
            return v;
        }
        p = memchr(p, '\n', (size_t)(end - p));
    }
    return NULL;
}

/* Copies the JSON string value of "key" in body into out (no escapes expected in tokens; \/ is
 * unescaped). Returns its length, or -1. */
static int json_str(const char *body, size_t n, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\"", key);
    const char *p = memmem(body, n, pat, strlen(pat)), *end = body + n;
    if (p == NULL)
        return -1;
    p += strlen(pat);
    while (p < end && (*p == ' ' || *p == ':'))
        p++;
    if (p >= end || *p != '"')
        return -1;
    p++;
    size_t o = 0;
    while (p < end && *p != '"') {
        if (*p == '\\') {
            if (p + 1 >= end || p[1] != '/')
                return -1;
            p++;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = *p++;
    }
    if (p >= end)
        return -1;
    out[o] = '\0';
    return (int)o;
}

/* A complete response in c->in? Returns its total length (0: not yet), sets status/body. */
static size_t complete(struct conn *c, int *status, const char **body, size_t *blen, int *close_)
{
    char *he = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (he == NULL)
        return 0;
    size_t hlen = (size_t)(he - c->in) + 4, vl;
    if (c->in_len < 12 || strncmp(c->in, "HTTP/1.", 7) != 0)
        die(1, "not an HTTP response: %.40s", c->in);
    *status = atoi(c->in + 9);
    const char *cl = header(c->in, hlen, "Content-Length", &vl);
    const char *te = header(c->in, hlen, "Transfer-Encoding", &vl);
    if (te != NULL)
        die(2, "chunked responses are not supported");
    size_t len = cl ? strtoul(cl, NULL, 10) : 0;
    if (c->in_len < hlen + len)
        return 0;
    const char *conn = header(c->in, hlen, "Connection", &vl);
    *close_ = conn != NULL && vl == 5 && strncasecmp(conn, "close", 5) == 0;
    *body = c->in + hlen;
    *blen = len;
    return hlen + len;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* One request with a blocking socket from a fresh address: the status, or -1. */
static int once(const char *token)
{
    int fd = open_from(take_addr(), 1);
    char *out = NULL, buf[65536];
    size_t n = build(&out, token), off = 0;
    while (off < n) {
        ssize_t w = write(fd, out + off, n - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    free(out);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t r = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (r < 12)
        return -1;
    buf[r] = '\0';
    return atoi(buf + 9);
}

int main(int argc, char **argv)
{
    const char *file = NULL, *label = "server", *src = "127.1.0.1";
    int nconn = 0, reuse = 0;
    double dur = 10, warm = 0;
    int o;
    while ((o = getopt(argc, argv, "h:p:f:c:d:W:k:s:Rl:")) != -1) {
        switch (o) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'f': file = optarg; break;
        case 'c': nconn = atoi(optarg); break;
        case 'd': dur = atof(optarg); break;
        case 'W': warm = atof(optarg); break;
        case 'k': per_addr = (unsigned)atoi(optarg); break;
        case 's': src = optarg; break;
        case 'R': reuse = 1; break;
        case 'l': label = optarg; break;
        default:
            fprintf(stderr, "usage: token_load -p PORT -f CHAINS [-h HOST] [-c N] [-d SEC] "
                            "[-W SEC] [-k K] [-s ADDR] [-R] [-l LABEL]\n");
            return 2;
        }
    }
    if (port <= 0 || file == NULL)
        die(2, "-p PORT and -f CHAINS are required");
    struct in_addr sa;
    if (inet_pton(AF_INET, src, &sa) != 1)
        die(2, "bad source address %s", src);
    next_addr = ntohl(sa.s_addr);

    FILE *f = fopen(file, "r");
    if (f == NULL)
        die(2, "%s: %s", file, strerror(errno));
    static char line[TOKEN_MAX];
    char **tokens = NULL;
    int ntok = 0, ln = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (ln == 0)
            path = strdup(line);
        else if (ln == 1)
            auth = strdup(line);
        else if (line[0] != '\0') {
            tokens = xrealloc(tokens, sizeof(*tokens) * (size_t)(ntok + 1));
            tokens[ntok++] = strdup(line);
        }
        ln++;
    }
    fclose(f);
    if (path == NULL || auth == NULL || ntok == 0)
        die(2, "%s: expected a path, an Authorization value and refresh tokens", file);
    if (nconn <= 0 || nconn > ntok)
        nconn = ntok;

    ep = epoll_create1(EPOLL_CLOEXEC);
    struct conn *cs = calloc((size_t)nconn, sizeof(*cs));
    if (cs == NULL)
        die(2, "out of memory");
    for (int i = 0; i < nconn; i++) {
        snprintf(cs[i].token, TOKEN_MAX, "%s", tokens[i]);
        start_connect(&cs[i]);
    }

    size_t ns = 0, scap = 1 << 16;
    uint32_t *samples = xrealloc(NULL, scap * sizeof(*samples));
    long counted = 0, done_total = 0;
    double sum_us = 0;
    int64_t t0 = now_us(), w0 = t0 + (int64_t)(warm * 1e6), w1 = w0 + (int64_t)(dur * 1e6);
    int64_t last_answer = t0;
    int alive = nconn;
    struct epoll_event evs[256];
    while (alive > 0) {
        int64_t now = now_us();
        int busy = 0;
        for (int i = 0; i < nconn; i++)
            busy += cs[i].st == SENDING || cs[i].st == READING || cs[i].st == CONNECTING;
        if (busy == 0)
            break;
        if (now - last_answer > STALL_US)
            die(2, "no answer for %lld s with %d requests in flight",
                (long long)(STALL_US / 1000000), busy);
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0 && errno != EINTR)
            die(2, "epoll_wait: %s", strerror(errno));
        for (int e = 0; e < n; e++) {
            struct conn *c = evs[e].data.ptr;
            if (c->st == CONNECTING) {
                int err = 0;
                socklen_t el = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err != 0)
                    die(2, "connect to %s:%d: %s", host, port, strerror(err));
                send_next(c);
                continue;
            }
            if (c->st == SENDING) {
                ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
                if (w < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                if (w <= 0)
                    die(2, "write: %s", w < 0 ? strerror(errno) : "closed");
                c->out_off += (size_t)w;
                if (c->out_off == c->out_len) {
                    c->st = READING;
                    watch(c, EPOLL_CTL_MOD, EPOLLIN);
                }
                continue;
            }
            if (c->st != READING)
                continue;
            if (c->in_cap - c->in_len < 8192) {
                c->in_cap = c->in_cap ? c->in_cap * 2 : 16384;
                c->in = xrealloc(c->in, c->in_cap);
            }
            ssize_t r = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len - 1);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r <= 0)
                die(2, "the server closed a connection with a request in flight (%s)",
                    r < 0 ? strerror(errno) : "EOF");
            c->in_len += (size_t)r;
            int status = 0, close_ = 0;
            const char *body;
            size_t blen;
            size_t used = complete(c, &status, &body, &blen, &close_);
            if (used == 0)
                continue;
            int64_t t = now_us();
            last_answer = t;
            done_total++;
            char next[TOKEN_MAX];
            int ok = status == 200 && memmem(body, blen, "\"access_token\"", 14) != NULL &&
                 json_str(body, blen, "refresh_token", next, sizeof(next)) > 0 &&
                 strcmp(next, c->token) != 0;
            if (!ok) {
                errors++;
                if (status == 429)
                    limited++;
                else
                    wrong_body++;
                if (errors <= 3)
                    fprintf(stderr, "token_load: %s: wrong answer (status %d): %.*s\n", label,
                            status, (int)(blen > 300 ? 300 : blen), body);
                kill_conn(c);
                alive--;
                continue;
            }
            if (c->t_send >= w0 && t < w1) {
                if (ns == scap) {
                    scap *= 2;
                    samples = xrealloc(samples, scap * sizeof(*samples));
                }
                uint32_t us = (uint32_t)(t - c->t_send);
                samples[ns++] = us;
                sum_us += us;
                counted++;
            }
            memcpy(c->prev, c->token, sizeof(c->prev));
            memcpy(c->token, next, sizeof(c->token));
            memmove(c->in, c->in + used, c->in_len - used);
            c->in_len -= used;
            c->on_addr++;
            if (t >= w1) { /* the window is over: this chain stops here */
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                c->st = DEAD;
                continue;
            }
            if (close_ || (per_addr > 0 && c->on_addr >= per_addr)) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                reconnects++;
                start_connect(c);
            } else {
                send_next(c);
            }
        }
    }
    int64_t t_end = now_us();

    if (reuse) {
        for (int i = 0; i < nconn; i++) {
            if (cs[i].prev[0] == '\0' || errors > 0)
                continue;
            int s = once(cs[i].prev);
            if (s >= 400 && s < 500) {
                reuse_refused++;
            } else {
                reuse_accepted++;
                errors++;
                fprintf(stderr, "token_load: %s: a rotated refresh token was accepted again "
                                "(status %d)\n", label, s);
            }
        }
    }

    qsort(samples, ns, sizeof(*samples), cmp_u32);
    double window = (double)((t_end < w1 ? t_end : w1) - w0) / 1e6;
    if (window <= 0)
        window = dur;
    printf("label=%s conns=%d requests=%ld total=%ld rate_rps=%.0f mean_us=%.0f p50_us=%u "
           "p99_us=%u max_us=%u errors=%ld limited=%ld wrong=%ld reconnects=%ld addrs=%ld",
           label, nconn, counted, done_total, counted / window, ns ? sum_us / (double)ns : 0,
           ns ? samples[ns / 2] : 0, ns ? samples[(size_t)((double)ns * 0.99)] : 0,
           ns ? samples[ns - 1] : 0, errors, limited, wrong_body, reconnects, addrs_used);
    if (reuse)
        printf(" reuse_refused=%ld reuse_accepted=%ld", reuse_refused, reuse_accepted);
    printf("\n");
    fflush(stdout);
    return errors > 0 ? 1 : 0;
}
