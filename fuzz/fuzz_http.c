/* libFuzzer target: the HTTP transport's own parsers of untrusted input, and the path a POST
 * body takes through a Streamable HTTP session.
 *
 * The input is split on its first NUL or newline into A and B (B empty when there is none).
 *   - A is a Host header value, an Origin, a Last-Event-ID and a method name:
 *     http_host_allowed (both ways), http_cors_allowed, hevent_id_parse,
 *     http_modern_method_known; http_header_equals(A, B) compares a header with a body value.
 *   - B, line by line, is the bodies of successive POSTs to one session: each is parsed as
 *     mcp_post does (jsonrpc_parse), fed on a new stream of the session, and the stream's output
 *     taken as the connection would; then the session closes, and a GET that resumes from the
 *     event id A replays the ring.
 * The server (no daemon: http_server_new only configures) is built once, like `mcpgate serve
 * --allowed-host example.com --cors-origin https://app.example` on 127.0.0.1.
 *
 * Oracles (__builtin_trap) check what each function promises, independently of its code. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "mcp/jsonrpc.h"
#include "mcp/mcp_int.h"
#include "mcp/session.h"
#include "tools/tools.h"
#include "transport/hstream.h"
#include "transport/http_int.h"

#define MAX_MESSAGE 65536

static struct mcp_server *srv;
static struct http_server *hs;
static bool strict;  /* FUZZ_HTTP_STRICT set: also trap on the known bugs */
static bool verbose; /* FUZZ_HTTP_VERBOSE set: print what each stream sent (reproducers) */

static void setup(void)
{
    log_set_level(LOG_OFF);
    strict = getenv("FUZZ_HTTP_STRICT") != NULL;
    verbose = getenv("FUZZ_HTTP_VERBOSE") != NULL;
    srv = mcp_server_new("fuzz", "0");
    mcp_server_set_max_message(srv, MAX_MESSAGE);
    mcp_server_set_workers(srv, 2);
    const char *bad;
    if (tools_register(srv, "demo", &bad) != 0)
        __builtin_trap();
    struct mcp_http_options opts = {
        .listen = "127.0.0.1:0",
        .allowed_hosts = "example.com",
        .cors_origins = "https://app.example",
    };
    if (http_server_new(srv, &opts, &hs) != 0)
        __builtin_trap();
}

/* ---- oracles ---- */

/* The hosts this server answers to (see setup and http_server_new). */
static const char *const served[] = {"localhost", "127.0.0.1", "[::1]", "example.com"};

/* The security property of the Host check: the name a browser resolved, the text before any
 * port, path or junk, is one we serve. (Junk after it is tolerated: browsers never send it.) */
static bool name_ok(const char *h, const char *delims)
{
    for (size_t i = 0; i < sizeof(served) / sizeof(*served); i++) {
        size_t n = strlen(served[i]);
        if (strncasecmp(h, served[i], n) == 0 &&
            (served[i][n - 1] == ']' || strchr(delims, h[n]) != NULL))
            return true;
    }
    return false;
}

static bool host_value_ok(const char *v)
{
    /* KNOWN BUG (reported): host_part() honours a "://" anywhere in a Host value, so
     * "evil.example.com/://localhost" is allowed. Exempt unless FUZZ_HTTP_STRICT is set, so
     * the campaign can look for other bugs. */
    if (!strict && strstr(v, "://") != NULL)
        return true;
    return name_ok(v, ":/?#");
}

/* An Origin: what follows its "://" starts with a name we serve. */
static bool origin_value_ok(const char *v)
{
    const char *sep = strstr(v, "://");
    return sep != NULL && name_ok(sep + 3, ":/?#");
}

static void check_event_id(const char *a)
{
    uint64_t stream = 0, seq = 0;
    if (hevent_id_parse(a, &stream, &seq) != 0)
        return;
    /* Accepted: digits '-' digits, nothing else, at most 41 bytes. */
    size_t n = strlen(a), d1 = strspn(a, "0123456789");
    if (n > 41 || d1 == 0 || a[d1] != '-')
        __builtin_trap();
    size_t d2 = strspn(a + d1 + 1, "0123456789");
    if (d2 == 0 || d1 + 1 + d2 != n)
        __builtin_trap();
    /* Numbers that fit read back as written (leading zeros aside). */
    char want[48], got[48];
    const char *s1 = a, *s2 = a + d1 + 1;
    while (*s1 == '0' && s1[1] != '-')
        s1++;
    while (*s2 == '0' && s2[1] != '\0')
        s2++;
    size_t l1 = (size_t)(a + d1 - s1), l2 = strlen(s2);
    if (l1 < 20 && l2 < 20) {
        snprintf(want, sizeof(want), "%.*s-%s", (int)l1, s1, s2);
        snprintf(got, sizeof(got), "%llu-%llu", (unsigned long long)stream,
                 (unsigned long long)seq);
        if (strcmp(want, got) != 0)
            __builtin_trap();
    }
}

static void check_header_equals(const char *v, const char *want)
{
    /* Equal after trimming spaces and tabs around the header value, byte for byte. */
    const char *s = v + strspn(v, " \t");
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    bool expect = strlen(want) == n && memcmp(s, want, n) == 0;
    if (http_header_equals(v, want) != expect)
        __builtin_trap();
}

/* Every SSE frame the stream produced is made of "id:", "data:", "retry:" or comment lines,
 * and every data line of a message is one line of JSON. */
static void check_sse(const char *out, size_t len)
{
    if (len == 0)
        return;
    const char *p = out, *end = out + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            __builtin_trap(); /* a stream that ended stops at a frame boundary */
        size_t n = (size_t)(nl - p);
        if (n > 0 && strncmp(p, "id: ", 4) != 0 && strncmp(p, "data: ", 6) != 0 &&
            strncmp(p, "retry: ", 7) != 0 && p[0] != ':')
            __builtin_trap();
        if (n > 6 && strncmp(p, "data: ", 6) == 0) {
            json_t *j = json_loadb(p + 6, n - 6, 0, NULL);
            if (j == NULL)
                __builtin_trap();
            json_decref(j);
        }
        p = nl + 1;
    }
}

/* ---- the body path ---- */

/* What the connection of stream st would send, once the stream has ended. */
static void drain(struct hstream *st)
{
    char chunk[4096];
    struct buf all;
    buf_init(&all, 64u << 20);
    bool eof = false;
    size_t n;
    while ((n = hstream_take(st, chunk, sizeof(chunk), &eof)) > 0) {
        if (buf_append(&all, chunk, n) != 0)
            __builtin_trap();
    }
    pthread_mutex_lock(&st->mu);
    enum hstream_mode mode = st->mode;
    pthread_mutex_unlock(&st->mu);
    if (verbose)
        fprintf(stderr, "stream %llu (%s): %.*s\n", (unsigned long long)st->id,
                mode == HSTREAM_JSON ? "json" : mode == HSTREAM_SSE ? "sse" : "pending",
                (int)all.len, all.data ? all.data : "");
    if (mode == HSTREAM_JSON && all.len > 0) {
        json_t *j = json_loadb(all.data, all.len, 0, NULL);
        if (j == NULL)
            __builtin_trap(); /* a JSON answer is one JSON value */
        json_decref(j);
    } else if (mode == HSTREAM_SSE) {
        check_sse(all.data, all.len);
    }
    buf_free(&all);
}

/* What in a message or batch gets an answer, as the transport counts it to choose between 202
 * and a response stream: everything but notifications and responses. */
static size_t count_requests(json_t *msg)
{
    if (json_is_object(msg)) {
        bool method = json_object_get(msg, "method") != NULL;
        bool id = json_object_get(msg, "id") != NULL;
        bool response =
            json_object_get(msg, "result") != NULL || json_object_get(msg, "error") != NULL;
        return !((method && !id) || (!method && response));
    }
    if (!json_is_array(msg))
        return 1;
    size_t n = 0, i;
    json_t *m;
    json_array_foreach(msg, i, m) n += count_requests(m);
    return n;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Like mcp_post + feed_and_answer: parse once, then feed on a new stream of the session (or with
 * no stream: 202), and wait (until the deadline) for the response, as a client would before
 * its next POST. */
static struct hstream *post_body(struct hsession *s, const char *body, size_t len,
                                 double deadline)
{
    struct jsonrpc_fail fail;
    json_t *msg = NULL;
    if (jsonrpc_parse(body, len, srv->max_message, srv->max_depth, &msg, &fail) != 0) {
        if (fail.code != JSONRPC_PARSE_ERROR && fail.code != JSONRPC_INVALID_REQUEST)
            __builtin_trap(); /* the two codes the transport maps to 400 */
        return NULL;
    }
    size_t nreq = count_requests(msg);
    if (s->ms == NULL) {
        json_decref(msg);
        return NULL;
    }
    if (nreq == 0) {
        mcp_session_feed_parsed(s->ms, msg, NULL, NULL);
        json_decref(msg);
        return NULL;
    }
    struct hstream *st = hstream_new(s, hs->stream_limit);
    hsession_add_stream(s, st);
    mcp_session_feed_parsed(s->ms, msg, st, NULL);
    json_decref(msg);
    for (;;) {
        pthread_mutex_lock(&st->mu);
        bool done = st->final;
        pthread_mutex_unlock(&st->mu);
        if (done || now_ms() > deadline)
            break;
        usleep(200);
    }
    return st;
}

static void feed_session(const char *a, const char *b, size_t blen)
{
    struct hsession *s = http_session_create(hs, HSESSION_STREAMABLE);
    if (s == NULL)
        __builtin_trap(); /* sessions leak: each input closes its own */
    struct hstream *streams[16];
    size_t nst = 0;
    double deadline = now_ms() + 100; /* slow tools (countdown) are cancelled after this */
    const char *p = b, *end = b + blen;
    while (p < end && nst < sizeof(streams) / sizeof(*streams)) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        if (n > 0) {
            struct hstream *st = post_body(s, p, n, deadline);
            if (st != NULL)
                streams[nst++] = st;
        }
        p += n + 1;
    }
    /* DELETE: handlers are cancelled and waited for; the streams end. */
    struct hsession *taken = http_session_take(hs, s->id);
    if (taken != s)
        __builtin_trap();
    hsession_close(s);
    for (size_t i = 0; i < nst; i++) {
        hstream_detach(streams[i]);
        drain(streams[i]);
        hstream_unref(streams[i]);
    }
    /* A GET resuming from event A of the closed session. */
    uint64_t sid = 0, seq = 0;
    if (hevent_id_parse(a, &sid, &seq) == 0) {
        struct hstream *st = hstream_new(s, hs->stream_limit);
        if (hsession_resume(s, st, sid, seq) == 0) {
            hstream_detach(st);
            drain(st);
        }
        hstream_unref(st);
    }
    hsession_unref(taken); /* the table's reference */
    hsession_unref(s);     /* http_session_create's */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (hs == NULL)
        setup();
    const char *in = (const char *)data;
    size_t alen = 0;
    while (alen < size && in[alen] != '\0' && in[alen] != '\n')
        alen++;
    char *a = strndup(in, alen);
    size_t blen = alen < size ? size - alen - 1 : 0;
    char *b = malloc(blen + 1);
    memcpy(b, in + size - blen, blen);
    b[blen] = '\0'; /* B may hold NULs: string functions see its first part */

    bool host = http_host_allowed(hs, a, false);
    bool origin = http_host_allowed(hs, a, true);
    if (host && !host_value_ok(a))
        __builtin_trap(); /* a Host we should refuse passed */
    if (origin && !origin_value_ok(a))
        __builtin_trap(); /* an Origin we should refuse passed */
    bool cors = http_cors_allowed(hs, a);
    if (cors && strcasecmp(a, "https://app.example") != 0)
        __builtin_trap();
    check_event_id(a);
    check_header_equals(a, b);
    check_header_equals(b, a);
    bool known = http_modern_method_known(a);
    if (known && (strchr(a, '/') == NULL || strlen(a) > 32))
        __builtin_trap();

    feed_session(a, b, blen);
    free(a);
    free(b);
    return 0;
}
