/* client/callback: the loopback redirect listener of a browser sign-in (RFC 8252 7.3). The
 * request-head parser on a table of complete, incomplete, oversize and hostile heads (each fed
 * from an allocation of its exact size, and every proper prefix of the good ones), then the
 * listener end to end over real loopback sockets, with a thread playing the browser. */
/* cmocka.h needs these first. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "client/callback.h"

/* ---- the request head parser ---- */

struct pr_case {
    const char *in;
    size_t len; /* 0: strlen(in) */
    int rc;
    const char *method, *path;
    const char *query; /* JSON of the expected query object */
};

#define LIT(s) s, sizeof(s) - 1
#define HOST "Host: 127.0.0.1:33418\r\n"
#define UA "User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"

static const struct pr_case pr_cases[] = {
    /* What browsers send back from an authorization server. */
    {"GET /callback?code=SplxlOBeZQQYbYS6WxSbIA&state=xyz HTTP/1.1\r\n" HOST UA
     "Accept: text/html\r\n\r\n",
     0, 0, "GET", "/callback", "{\"code\":\"SplxlOBeZQQYbYS6WxSbIA\",\"state\":\"xyz\"}"},
    {"GET /callback?error=access_denied&error_description=The+user+said+no%21&state=s1 "
     "HTTP/1.1\r\n" HOST "\r\n",
     0, 0, "GET", "/callback",
     "{\"error\":\"access_denied\",\"error_description\":\"The user said no!\",\"state\":\"s1\"}"},
    {"GET /callback?code=a%2Fb%3Dc+d&state=%7E HTTP/1.0\r\n" HOST "\r\n", 0, 0, "GET", "/callback",
     "{\"code\":\"a/b=c d\",\"state\":\"~\"}"},
    {"GET /callback?iss=https%3A%2F%2Fas.example.com&code=c&state=s HTTP/1.1\r\n" HOST "\r\n", 0, 0,
     "GET", "/callback", "{\"iss\":\"https://as.example.com\",\"code\":\"c\",\"state\":\"s\"}"},
    /* UTF-8 through escapes is fine. */
    {"GET /callback?msg=caf%C3%A9 HTTP/1.1\r\n" HOST "\r\n", 0, 0, "GET", "/callback",
     "{\"msg\":\"caf\xc3\xa9\"}"},
    /* Bytes after the head (a body, a pipelined request) are not the parser's business. */
    {"POST /callback?state=s HTTP/1.1\r\n" HOST "Content-Length: 3\r\n\r\nabc", 0, 0, "POST",
     "/callback", "{\"state\":\"s\"}"},
    {"GET /a HTTP/1.1\r\n" HOST "\r\nGET /b HTTP/1.1\r\n\r\n", 0, 0, "GET", "/a", "{}"},
    /* Other paths, no query, an empty query, empty pairs, a name without '='. */
    {"GET /favicon.ico HTTP/1.1\r\n" HOST UA "\r\n", 0, 0, "GET", "/favicon.ico", "{}"},
    {"GET / HTTP/1.1\r\n" HOST "\r\n", 0, 0, "GET", "/", "{}"},
    {"GET /callback? HTTP/1.1\r\n" HOST "\r\n", 0, 0, "GET", "/callback", "{}"},
    {"GET /callback?&&code=1&& HTTP/1.1\r\n" HOST "\r\n", 0, 0, "GET", "/callback",
     "{\"code\":\"1\"}"},
    {"GET /callback?flag HTTP/1.1\r\n" HOST "\r\n", 0, 0, "GET", "/callback", "{\"flag\":\"\"}"},
    {"GET /a/b/../c;x=y?q=1 HTTP/1.1\r\n" HOST "\r\n", 0, 0, "GET", "/a/b/../c;x=y",
     "{\"q\":\"1\"}"},
    {"GET //callback HTTP/1.1\r\n" HOST "\r\n", 0, 0, "GET", "//callback", "{}"},
    /* Methods: upper case, up to 7 letters. */
    {"OPTIONS /callback HTTP/1.1\r\n" HOST "\r\n", 0, 0, "OPTIONS", "/callback", "{}"},
    {"HEAD /callback HTTP/1.1\r\n" HOST "\r\n", 0, 0, "HEAD", "/callback", "{}"},
    /* Lenient peers end lines with a bare LF; header lines are not examined. */
    {"GET /callback?code=c&state=s HTTP/1.1\nHost: x\n\n", 0, 0, "GET", "/callback",
     "{\"code\":\"c\",\"state\":\"s\"}"},
    {"GET /callback HTTP/1.1\n\n", 0, 0, "GET", "/callback", "{}"},
    {"GET /callback HTTP/1.1\r\nX-Odd: \x01\x7f\xff\r\n\r\n", 0, 0, "GET", "/callback", "{}"},

    /* Incomplete: more bytes are needed. */
    {"", 0, ERR_EOF, NULL, NULL, NULL},
    {"G", 0, ERR_EOF, NULL, NULL, NULL},
    {"GET /callback?code=c&state=s HTTP/1.1\r\n", 0, ERR_EOF, NULL, NULL, NULL},
    {"GET /callback HTTP/1.1\r\n" HOST, 0, ERR_EOF, NULL, NULL, NULL},
    {"GET /callback HTTP/1.1\r\n" HOST "\r", 0, ERR_EOF, NULL, NULL, NULL},
    {"GET /callback HTTP/1.1\n", 0, ERR_EOF, NULL, NULL, NULL},
    /* garbage is "incomplete" until its blank line or the cap */
    {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 0, ERR_EOF, NULL, NULL, NULL},

    /* Malformed request lines. */
    {"\n\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET\n\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {" /callback HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"get /callback HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"G3T /callback HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GETTTTTT /callback HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET\t/callback HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback \r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET  /callback HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback  HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback HTTP/1.1 \r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback HTTP/2.0\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback HTTP/1.2\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback HTTP/1.10\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback http/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback HTTP/1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    /* The target must be a path. */
    {"GET callback HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET http://127.0.0.1:33418/callback HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL,
     NULL},
    {"GET * HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"CONNECT 127.0.0.1:443 HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET ?code=c HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    /* Fragments never reach a server; one that does is hostile. */
    {"GET /callback?code=c#frag HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback# HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    /* Control and non-ASCII bytes in the target. */
    {"GET /call\x01"
     "back HTTP/1.1\r\n" HOST "\r\n",
     0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback\r HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback?code=\x7f HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /caf\xc3\xa9 HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback?code=\xff HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    /* NUL anywhere in the head. */
    {LIT("GET /callback\0 HTTP/1.1\r\n" HOST "\r\n"), ERR_PARSE, NULL, NULL, NULL},
    {LIT("GET /callback HTTP/1.1\r\nX: a\0b\r\n\r\n"), ERR_PARSE, NULL, NULL, NULL},
    {LIT("\0\n\n"), ERR_PARSE, NULL, NULL, NULL},
    /* Bad queries: escapes, UTF-8, NUL, repeated parameters, empty names, too many, too long. */
    {"GET /callback?code=%zz&state=s HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback?code=%4 HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback?code=% HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback?co%g1de=x HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback?code=%ff HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback?code=%C3 HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback?code=a%00b HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback?state=a&code=c&state=b HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL,
     NULL},
    {"GET /callback?state=a&st%61te=a HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
    {"GET /callback?=x HTTP/1.1\r\n" HOST "\r\n", 0, ERR_PARSE, NULL, NULL, NULL},
};

/* A copy of in[0..len) in an allocation of exactly len bytes (1 when empty), so that ASan
 * reports any read past it. */
static char *exact(const char *in, size_t len)
{
    char *p = malloc(len > 0 ? len : 1);
    assert_non_null(p);
    memcpy(p, in, len);
    return p;
}

static int parse(const char *in, size_t len, struct cb_request *req, char *why, size_t whylen)
{
    char *p = exact(in, len);
    int r = cb_parse_request(p, len, req, why, whylen);
    free(p);
    return r;
}

static void check_case(const struct pr_case *c, size_t i)
{
    size_t len = c->len ? c->len : strlen(c->in);
    struct cb_request req;
    char why[256] = "";
    int r = parse(c->in, len, &req, why, sizeof why);
    if (r != c->rc)
        fail_msg("case %zu: rc %d (%s), want %d", i, r, why, c->rc);
    if (r == ERR_PARSE || r == ERR_TOOBIG) {
        if (why[0] == '\0')
            fail_msg("case %zu: no reason given", i);
        assert_null(req.path);
        assert_null(req.query);
    }
    if (r == 0) {
        assert_string_equal(req.method, c->method);
        assert_string_equal(req.path, c->path);
        json_t *want = json_loads(c->query, 0, NULL);
        assert_non_null(want);
        if (!json_equal(req.query, want)) {
            char *got = json_dumps(req.query, JSON_COMPACT);
            fail_msg("case %zu: query %s, want %s", i, got, c->query);
        }
        json_decref(want);
    }
    cb_request_clear(&req);
    assert_null(req.path);
    assert_null(req.query);
}

static void test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof pr_cases / sizeof pr_cases[0]; i++)
        check_case(&pr_cases[i], i);
}

/* Every proper prefix of a complete head is incomplete (ERR_EOF), never an error or a
 * success: the listener gets requests in arbitrary pieces. */
static void test_parse_prefixes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof pr_cases / sizeof pr_cases[0]; i++) {
        const struct pr_case *c = &pr_cases[i];
        if (c->rc != 0)
            continue;
        size_t len = c->len ? c->len : strlen(c->in);
        /* where the head ends: through the first blank line */
        const char *crlf = strstr(c->in, "\r\n\r\n"), *lflf = strstr(c->in, "\n\n");
        size_t head = crlf != NULL && (lflf == NULL || crlf < lflf) ? (size_t)(crlf - c->in) + 4
                                                                    : (size_t)(lflf - c->in) + 2;
        assert_true(head <= len);
        for (size_t n = 0; n < head; n++) {
            struct cb_request req;
            char why[256] = "";
            int r = parse(c->in, n, &req, why, sizeof why);
            if (r != ERR_EOF)
                fail_msg("case %zu, prefix %zu: rc %d (%s), want ERR_EOF", i, n, r, why);
            cb_request_clear(&req);
        }
        /* the whole head is enough */
        struct cb_request req;
        char why[256] = "";
        assert_int_equal(parse(c->in, head, &req, why, sizeof why), 0);
        assert_string_equal(req.path, c->path);
        cb_request_clear(&req);
    }
}

/* A head that consists of the request line alone ("GET /callback HTTP/1.1" CRLF CRLF) is what
 * curl -0 or a hand-typed request sends. */
static void test_parse_request_line_only(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "GET /callback?code=c&state=s HTTP/1.1\r\n\r\n",
        "GET /callback HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct cb_request req;
        char why[256] = "";
        int r = parse(ok[i], strlen(ok[i]), &req, why, sizeof why);
        if (r != 0)
            fail_msg("'%s': rc %d (%s)", ok[i], r, why);
        assert_string_equal(req.method, "GET");
        assert_int_equal(req.path[0], '/');
        cb_request_clear(&req);
    }
    /* an empty head, and the HTTP/2 connection preface (curl --http2-prior-knowledge), are
     * malformed, not a crash */
    static const char *const bad[] = {"\r\n\r\n", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                                      "GET /callback HTTP/2.0\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct cb_request req;
        char why[256] = "";
        assert_int_equal(parse(bad[i], strlen(bad[i]), &req, why, sizeof why), ERR_PARSE);
        assert_true(why[0] != '\0');
        cb_request_clear(&req);
    }
}

/* The cap: a head without its blank line is incomplete below CB_REQUEST_MAX bytes and too big
 * from there on; long queries hit the form parser's caps. */
static void test_parse_caps(void **state)
{
    (void)state;
    size_t big = CB_REQUEST_MAX + 100;
    char *in = malloc(big + 1);
    assert_non_null(in);
    memcpy(in, "GET /callback?x=", 16);
    memset(in + 16, 'a', big - 16);
    in[big] = '\0';
    struct cb_request req;
    char why[256] = "";
    assert_int_equal(parse(in, CB_REQUEST_MAX - 1, &req, why, sizeof why), ERR_EOF);
    why[0] = '\0';
    assert_int_equal(parse(in, CB_REQUEST_MAX, &req, why, sizeof why), ERR_TOOBIG);
    assert_non_null(strstr(why, "16384"));
    assert_int_equal(parse(in, big, &req, why, sizeof why), ERR_TOOBIG);
    /* the same bytes as line endings only: still too big */
    memset(in, '\r', big);
    assert_int_equal(parse(in, CB_REQUEST_MAX, &req, why, sizeof why), ERR_TOOBIG);
    free(in);

    /* 64 parameters are fine, 65 are not; a value of 8 KiB is fine, one more byte is not */
    char q[12000];
    size_t n = 0;
    n += (size_t)snprintf(q + n, sizeof q - n, "GET /callback?");
    for (int i = 0; i < 64; i++)
        n += (size_t)snprintf(q + n, sizeof q - n, "%sp%d=%d", i ? "&" : "", i, i);
    snprintf(q + n, sizeof q - n, " HTTP/1.1\r\n" HOST "\r\n");
    assert_int_equal(parse(q, strlen(q), &req, why, sizeof why), 0);
    assert_int_equal(json_object_size(req.query), 64);
    cb_request_clear(&req);
    snprintf(q + n, sizeof q - n, "&p64=x HTTP/1.1\r\n" HOST "\r\n");
    assert_int_equal(parse(q, strlen(q), &req, why, sizeof why), ERR_PARSE);

    n = (size_t)snprintf(q, sizeof q, "GET /callback?code=");
    memset(q + n, 'c', 8192);
    snprintf(q + n + 8192, sizeof q - n - 8192, " HTTP/1.1\r\n" HOST "\r\n");
    assert_int_equal(parse(q, strlen(q), &req, why, sizeof why), 0);
    assert_int_equal(strlen(json_string_value(json_object_get(req.query, "code"))), 8192);
    cb_request_clear(&req);
    snprintf(q + n + 8192, sizeof q - n - 8192, "c HTTP/1.1\r\n" HOST "\r\n");
    assert_int_equal(parse(q, strlen(q), &req, why, sizeof why), ERR_PARSE);

    cb_request_clear(NULL); /* harmless */
}

/* ---- the listener, end to end ---- */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A connection to 127.0.0.1:port, or -1 (no cmocka assertions here: browser threads call it). */
static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 8};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_str(int fd, const char *s)
{
    size_t n = strlen(s);
    if (fd < 0)
        return;
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the listener may have closed it: the response says why */
        s += w;
        n -= (size_t)w;
    }
}

/* Everything the peer sends until it closes (or 8 s pass), NUL-terminated. */
static char *read_all(int fd)
{
    size_t cap = 65536, len = 0;
    char *b = malloc(cap + 1);
    if (b == NULL)
        abort();
    for (; fd >= 0;) {
        ssize_t n = recv(fd, b + len, cap - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == cap)
            break;
    }
    b[len] = '\0';
    return b;
}

#define MAX_STEPS 8
#define MAX_IDLE 24

/* The browser: opens idle connections first (preconnections that never send a byte), then
 * sends each request on its own connection and reads the whole response (the last one is
 * the callback, answered only after cb_reply). */
struct browser {
    int port;
    int idle;
    const char *req[MAX_STEPS];
    const char *split_at; /* send the last request in two pieces, cut before this text */
    char *resp[MAX_STEPS];
    int idle_fd[MAX_IDLE];
};

static void *browser_run(void *arg)
{
    struct browser *b = arg;
    for (int i = 0; i < b->idle; i++)
        b->idle_fd[i] = dial(b->port);
    for (int i = 0; i < MAX_STEPS && b->req[i] != NULL; i++) {
        int fd = dial(b->port);
        const char *cut = (i + 1 == MAX_STEPS || b->req[i + 1] == NULL) && b->split_at != NULL
                              ? strstr(b->req[i], b->split_at)
                              : NULL;
        if (cut != NULL) {
            char *first = strndup(b->req[i], (size_t)(cut - b->req[i]));
            send_str(fd, first);
            free(first);
            usleep(150 * 1000);
            send_str(fd, cut);
        } else {
            send_str(fd, b->req[i]);
        }
        b->resp[i] = read_all(fd);
        if (fd >= 0)
            close(fd);
    }
    for (int i = 0; i < b->idle; i++)
        if (b->idle_fd[i] >= 0)
            close(b->idle_fd[i]);
    return NULL;
}

/* A response is "HTTP/1.1 <status> ..." with an HTML body of exactly Content-Length bytes,
 * the security headers, and Connection: close. Returns the body. */
static const char *check_response(const char *resp, int status)
{
    char want[32];
    assert_non_null(resp);
    snprintf(want, sizeof want, "HTTP/1.1 %d ", status);
    if (strncmp(resp, want, strlen(want)) != 0)
        fail_msg("response '%.60s', want status %d", resp, status);
    const char *body = strstr(resp, "\r\n\r\n");
    assert_non_null(body);
    body += 4;
    const char *cl = strstr(resp, "\r\nContent-Length: ");
    assert_non_null(cl);
    assert_true(cl < body);
    assert_int_equal(strtoul(cl + 18, NULL, 10), strlen(body));
    assert_non_null(strstr(resp, "\r\nContent-Type: text/html; charset=utf-8\r\n"));
    assert_non_null(strstr(resp, "\r\nCache-Control: no-store\r\n"));
    assert_non_null(strstr(resp, "\r\nReferrer-Policy: no-referrer\r\n"));
    assert_non_null(strstr(resp, "\r\nConnection: close\r\n"));
    assert_non_null(strstr(body, "<html"));
    return body;
}

static void browser_free(struct browser *b)
{
    for (int i = 0; i < MAX_STEPS; i++)
        free(b->resp[i]);
}

#define CB_REQ(q) "GET /callback?" q " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n\r\n"
#define STATE "k3J9-state_0123456789abcdefABCDEF"

/* Runs the browser against a fresh listener until cb_wait returns; answers the callback with
 * cb_reply(ok, title, message) when it succeeded. */
static int serve(struct browser *b, const char *state, int timeout_ms, json_t **query, bool ok,
                 const char *title, const char *message)
{
    struct cb_listener *l = NULL;
    char why[256];
    assert_int_equal(cb_listen("127.0.0.1", 0, true, &l, why, sizeof why), 0);
    b->port = cb_port(l);
    assert_true(b->port > 0 && b->port < 65536);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, browser_run, b), 0);
    int r = cb_wait(l, state, timeout_ms, NULL, query);
    if (r == 0)
        cb_reply(l, ok, title, message);
    cb_reply(l, true, "again", "a second reply is a no-op");
    pthread_join(th, NULL);
    cb_close(l);
    return r;
}

/* The whole sign-in: a favicon request (404), a callback of another sign-in (400, the wait
 * goes on), one without state (400), a POST (405), junk (400), then the real one, which
 * returns its query and gets the success page; an idle preconnection is open all along. */
static void test_listener_flow(void **state)
{
    (void)state;
    struct browser b = {
        .idle = 1,
        .req =
            {
                "GET /favicon.ico HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                CB_REQ("code=stolen&state=another-sign-in"),
                CB_REQ("code=x"),
                CB_REQ("code=x&state=" STATE "x"),
                "POST /callback?code=x&state=" STATE " HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                "GET /callback?code=x#f HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                CB_REQ("code=the-code&state=" STATE "&iss=https%3A%2F%2Fas.example"),
            },
    };
    json_t *q = NULL;
    int r = serve(&b, STATE, 20000, &q, true, "Signed in <to> mcpgate",
                  "You can close this window & go back.");
    assert_int_equal(r, 0);
    assert_non_null(q);
    assert_string_equal(json_string_value(json_object_get(q, "code")), "the-code");
    assert_string_equal(json_string_value(json_object_get(q, "state")), STATE);
    assert_string_equal(json_string_value(json_object_get(q, "iss")), "https://as.example");
    json_decref(q);

    const char *body = check_response(b.resp[0], 404);
    assert_non_null(strstr(body, "/callback"));
    body = check_response(b.resp[1], 400);
    assert_non_null(strstr(body, "state"));
    assert_null(strstr(b.resp[1], "stolen"));
    check_response(b.resp[2], 400);
    check_response(b.resp[3], 400);
    check_response(b.resp[4], 405);
    body = check_response(b.resp[5], 400);
    assert_non_null(strstr(body, "fragment"));
    body = check_response(b.resp[6], 200);
    /* title and message are escaped */
    assert_non_null(strstr(body, "Signed in &lt;to&gt; mcpgate"));
    assert_non_null(strstr(body, "window &amp; go back."));
    assert_null(strstr(body, "<to>"));
    browser_free(&b);
}

/* The authorization server's error comes back like a code: the caller decides; cb_reply
 * with ok false sends a 400 page with the (escaped) reason. */
static void test_listener_error_reply(void **state)
{
    (void)state;
    struct browser b = {
        .req = {CB_REQ("error=access_denied&error_description=no+way&state=" STATE)},
    };
    json_t *q = NULL;
    assert_int_equal(
        serve(&b, STATE, 20000, &q, false, "Sign-in failed", "access_denied: <script>x</script>"),
        0);
    assert_string_equal(json_string_value(json_object_get(q, "error")), "access_denied");
    assert_string_equal(json_string_value(json_object_get(q, "error_description")), "no way");
    json_decref(q);
    const char *body = check_response(b.resp[0], 400);
    assert_non_null(strstr(body, "Sign-in failed"));
    assert_null(strstr(body, "<script>"));
    assert_non_null(strstr(body, "&lt;script&gt;"));
    browser_free(&b);
}

/* More idle preconnections than the listener keeps, then a callback sent in two pieces: the
 * oldest idle ones are dropped, the callback is served. */
static void test_listener_idle_connections(void **state)
{
    (void)state;
    struct browser b = {
        .idle = 20,
        .req = {CB_REQ("code=c2&state=" STATE)},
        .split_at = "&state=",
    };
    json_t *q = NULL;
    assert_int_equal(serve(&b, STATE, 20000, &q, true, "Done", NULL), 0);
    assert_string_equal(json_string_value(json_object_get(q, "code")), "c2");
    json_decref(q);
    check_response(b.resp[0], 200);
    browser_free(&b);
}

/* A request with only its request line (no header at all) is a valid HTTP/1.0 request. */
static void test_listener_bare_request(void **state)
{
    (void)state;
    struct browser b = {
        .req = {"GET /favicon.ico HTTP/1.0\r\nUser-Agent: x\r\n\r\n",
                "GET /callback?code=c3&state=" STATE " HTTP/1.0\r\n\r\n"},
    };
    json_t *q = NULL;
    assert_int_equal(serve(&b, STATE, 20000, &q, true, "Done", NULL), 0);
    assert_string_equal(json_string_value(json_object_get(q, "code")), "c3");
    json_decref(q);
    check_response(b.resp[0], 404);
    check_response(b.resp[1], 200);
    browser_free(&b);
}

static void test_listener_timeout(void **state)
{
    (void)state;
    struct cb_listener *l = NULL;
    char why[256];
    json_t *q = (json_t *)1;
    assert_int_equal(cb_listen("127.0.0.1", 0, false, &l, why, sizeof why), 0);
    long long t0 = now_ms();
    assert_int_equal(cb_wait(l, STATE, 300, NULL, &q), ERR_TIMEOUT);
    long long took = now_ms() - t0;
    assert_null(q);
    assert_true(took >= 290 && took < 3000);

    /* a connection that never sends does not turn a timeout into a hang */
    int fd = dial(cb_port(l));
    assert_true(fd >= 0);
    t0 = now_ms();
    assert_int_equal(cb_wait(l, STATE, 300, NULL, &q), ERR_TIMEOUT);
    assert_true(now_ms() - t0 < 3000);
    close(fd);

    /* nothing waits for a reply */
    cb_reply(l, true, "x", "y");
    cb_close(l);
    cb_close(NULL);
}

static volatile bool stop_flag;

static void *stop_later(void *arg)
{
    (void)arg;
    usleep(150 * 1000);
    stop_flag = true;
    return NULL;
}

static void test_listener_cancel(void **state)
{
    (void)state;
    struct cb_listener *l = NULL;
    char why[256];
    json_t *q = NULL;
    assert_int_equal(cb_listen("127.0.0.1", 0, false, &l, why, sizeof why), 0);
    stop_flag = true;
    assert_int_equal(cb_wait(l, STATE, 10000, &stop_flag, &q), ERR_CANCELLED);
    assert_null(q);

    stop_flag = false;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stop_later, NULL), 0);
    long long t0 = now_ms();
    assert_int_equal(cb_wait(l, STATE, 10000, &stop_flag, &q), ERR_CANCELLED);
    assert_true(now_ms() - t0 < 3000);
    pthread_join(th, NULL);
    assert_null(q);
    cb_close(l);
}

/* A pinned port that is taken: strict fails with ERR_EXISTS and names it; otherwise another
 * port is used. Port 0 always gets an ephemeral one. */
static void test_listener_ports(void **state)
{
    (void)state;
    struct cb_listener *a = NULL, *b = NULL;
    char why[256] = "", want[64];
    assert_int_equal(cb_listen("127.0.0.1", 0, true, &a, why, sizeof why), 0);
    int port = cb_port(a);
    assert_true(port > 0);

    assert_int_equal(cb_listen("127.0.0.1", port, true, &b, why, sizeof why), ERR_EXISTS);
    assert_null(b);
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    if (strstr(why, want) == NULL)
        fail_msg("'%s' does not name %s", why, want);

    assert_int_equal(cb_listen("127.0.0.1", port, false, &b, why, sizeof why), 0);
    assert_non_null(b);
    assert_true(cb_port(b) > 0);
    assert_int_not_equal(cb_port(b), port);
    cb_close(b);
    b = NULL;

    /* once the first listener is gone, the strict port is free again */
    cb_close(a);
    assert_int_equal(cb_listen("127.0.0.1", port, true, &a, why, sizeof why), 0);
    assert_int_equal(cb_port(a), port);
    cb_close(a);

    /* only IP literals */
    assert_int_not_equal(cb_listen("localhost", 0, false, &b, why, sizeof why), 0);
    assert_null(b);
    assert_int_not_equal(cb_listen("127.0.0.1.example", 0, false, &b, why, sizeof why), 0);
    assert_null(b);

    /* IPv6 loopback, where the host has it */
    int r = cb_listen("::1", 0, true, &b, why, sizeof why);
    if (r == 0) {
        assert_true(cb_port(b) > 0);
        cb_close(b);
    } else {
        assert_int_equal(r, ERR_IO);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_prefixes),
        cmocka_unit_test(test_parse_caps),
        cmocka_unit_test(test_listener_flow),
        cmocka_unit_test(test_listener_error_reply),
        cmocka_unit_test(test_listener_idle_connections),
        cmocka_unit_test(test_listener_timeout),
        cmocka_unit_test(test_listener_cancel),
        cmocka_unit_test(test_listener_ports),
        /* last: heads of the request line alone */
        cmocka_unit_test(test_parse_request_line_only),
        cmocka_unit_test(test_listener_bare_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
