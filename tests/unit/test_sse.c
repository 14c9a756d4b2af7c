/* client/sse: the WHATWG HTML event stream examples, MCP-shaped streams, every line ending,
 * the caps, and each case fed again split at every pair of positions and byte by byte. */
/* cmocka.h needs these first. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/sse.h"

/* Events are logged as "type|id|data;" one after the other. */
struct rec {
    struct buf log;
    int n;
    int stop_after; /* the callback returns stop_rc on this event (0: never) */
    int stop_rc;
};

static int record(void *arg, const struct sse_event *ev)
{
    struct rec *r = arg;
    assert_non_null(ev->type);
    assert_non_null(ev->id);
    assert_int_equal(ev->data[ev->data_len], '\0');
    if (buf_append_str(&r->log, ev->type) != 0 || buf_append(&r->log, "|", 1) != 0 ||
        buf_append_str(&r->log, ev->id) != 0 || buf_append(&r->log, "|", 1) != 0 ||
        buf_append(&r->log, ev->data, ev->data_len) != 0 || buf_append(&r->log, ";", 1) != 0)
        fail_msg("log full");
    r->n++;
    return r->n == r->stop_after ? r->stop_rc : 0;
}

struct result {
    int rc;
    struct rec rec;
    char last_id[256];
    long retry_ms;
    unsigned long comments;
};

/* Feeds in[0..len) as the chunks ending at cuts[0..ncuts) and then at len, each chunk in its
 * own allocation so that ASan sees any read past it, and finishes the stream. */
static void run(const char *in, size_t len, size_t max_event, const size_t *cuts, size_t ncuts,
                struct result *res)
{
    struct sse_parser p;
    memset(res, 0, sizeof *res);
    buf_init(&res->rec.log, 1 << 20);
    sse_init(&p, max_event, record, &res->rec);
    size_t at = 0;
    for (size_t i = 0; i <= ncuts && res->rc == 0; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        char *chunk = malloc(to - at + 1);
        assert_non_null(chunk);
        memcpy(chunk, in + at, to - at);
        res->rc = sse_feed(&p, chunk, to - at);
        free(chunk);
        at = to;
    }
    sse_finish(&p);
    memcpy(res->last_id, p.last_id, sizeof res->last_id);
    res->retry_ms = p.retry_ms;
    res->comments = p.comments;
    sse_free(&p);
}

struct sse_case {
    const char *in;
    size_t len;       /* 0: strlen(in) */
    const char *want; /* the event log */
    size_t want_len;  /* 0: strlen(want) */
    const char *last_id;
    long retry_ms;
    unsigned long comments;
    int rc;
    size_t max_event; /* 0: 4096 */
};

#define LIT(s) s, sizeof(s) - 1
#define MCP_MSG "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}}"
#define MCP_NOTE "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}"

static const struct sse_case cases[] = {
    /* The WHATWG HTML "event stream format" examples. */
    {"data: This is the first message.\n\ndata: This is the second message, it\n"
     "data: has two lines.\n\ndata: This is the third message.\n\n",
     0,
     "message||This is the first message.;message||This is the second message, it\n"
     "has two lines.;message||This is the third message.;",
     0, "", -1, 0, 0, 0},
    {"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n", 0,
     "add||73857293;remove||2153;add||113411;", 0, "", -1, 0, 0, 0},
    {"data: YHOO\ndata: +2\ndata: 10\n\n", 0, "message||YHOO\n+2\n10;", 0, "", -1, 0, 0, 0},
    {": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
     0, "message|1|first event;message||second event;message|| third event;", 0, "", -1, 1, 0, 0},
    {"data\n\ndata\ndata\n\ndata:", 0, "message||;message||\n;", 0, "", -1, 0, 0, 0},
    {"data:test\n\ndata: test\n\n", 0, "message||test;message||test;", 0, "", -1, 0, 0, 0},
    {"data:  test\n\n", 0, "message|| test;", 0, "", -1, 0, 0, 0},
    /* MCP-shaped streams: ids "stream-seq", a priming event, retry, keep-alives. */
    {"id: 3-17\ndata: " MCP_MSG "\n\n", 0, "message|3-17|" MCP_MSG ";", 0, "3-17", -1, 0, 0, 0},
    {"retry: 1000\nid: 3-0\ndata: \n\n: keep-alive\n\nid: 3-1\ndata: " MCP_NOTE
     "\n\nevent: message\nid: 3-2\ndata: " MCP_MSG "\n\n",
     0, "message|3-0|;message|3-1|" MCP_NOTE ";message|3-2|" MCP_MSG ";", 0, "3-2", 1000, 1, 0, 0},
    {"id: 3-0\n\n", 0, "", 0, "3-0", -1, 0, 0, 0}, /* no data line: not dispatched, id kept */
    {"id: 3-0\n\ndata: x\n\n", 0, "message|3-0|x;", 0, "3-0", -1, 0, 0, 0},
    /* ids persist; an empty one resets; one with a NUL is ignored; an unfinished one is not
     * committed. */
    {"id: 5\ndata: a\n\ndata: a2\n\nid\ndata: b\n\nid: 6\ndata: c\n\nid:\ndata: d\n\n", 0,
     "message|5|a;message|5|a2;message||b;message|6|c;message||d;", 0, "", -1, 0, 0, 0},
    {LIT("id: 1\ndata: a\n\nid: x\0y\ndata: b\n\n"), "message|1|a;message|1|b;", 0, "1", -1, 0, 0,
     0},
    {"id: 1\ndata: a\n\nid: 2\ndata: b\n", 0, "message|1|a;", 0, "1", -1, 0, 0, 0},
    {"id: 1\ndata: a\n\nid: 2\n", 0, "message|1|a;", 0, "1", -1, 0, 0, 0},
    {"id:  7\ndata: a\n\n", 0, "message| 7|a;", 0, " 7", -1, 0, 0, 0},
    /* retry */
    {"retry: 3000\n\n", 0, "", 0, "", 3000, 0, 0, 0},
    {"retry:0\n", 0, "", 0, "", 0, 0, 0, 0},
    {"retry: 3s\nretry:\nretry: 12 \nretry: -1\nretry:  5\nretry: 1e3\nretry\n", 0, "", 0, "", -1,
     0, 0, 0},
    {"retry: 1000\nretry: x\n", 0, "", 0, "", 1000, 0, 0, 0},
    {"retry: 99999999999999999999999999\n", 0, "", 0, "", LONG_MAX, 0, 0, 0},
    /* A BOM is skipped once, at the very start only. */
    {"\xEF\xBB\xBF"
     "data: x\n\n",
     0, "message||x;", 0, "", -1, 0, 0, 0},
    {"\xEF\xBB\xBF\ndata: y\n\n", 0, "message||y;", 0, "", -1, 0, 0, 0},
    {"\xEF\xBB\xBF\xEF\xBB\xBF"
     "data: x\n\n",
     0, "", 0, "", -1, 0, 0, 0},
    {"data: a\n\n\xEF\xBB\xBF"
     "data: b\n\n",
     0, "message||a;", 0, "", -1, 0, 0, 0},
    {"\xEF\xBB"
     "data: x\n\n",
     0, "", 0, "", -1, 0, 0, 0},
    {"\xEF\xBB\xBF: c\n", 0, "", 0, "", -1, 1, 0, 0},
    /* Every line ending, and mixes of them. */
    {"data: a\r\n\r\ndata: b\r\rdata: c\n\n", 0, "message||a;message||b;message||c;", 0, "", -1, 0,
     0, 0},
    {"data: a\rdata: b\r\n\n", 0, "message||a\nb;", 0, "", -1, 0, 0, 0},
    {"data: a\n\rdata: b\n\n", 0, "message||a;message||b;", 0, "", -1, 0, 0, 0},
    {"data: a\r\r\r\n\n\r\n\r\rdata: b\r\n\r\n", 0, "message||a;message||b;", 0, "", -1, 0, 0, 0},
    {"\r\n\r\n\n\r\r", 0, "", 0, "", -1, 0, 0, 0},
    {"data: a\r\n", 0, "", 0, "", -1, 0, 0, 0},
    /* Comments, unknown and odd fields. */
    {": keep-alive\n\n:\n: x\n", 0, "", 0, "", -1, 3, 0, 0},
    {"data: a\n: c\ndata: b\n\n", 0, "message||a\nb;", 0, "", -1, 1, 0, 0},
    {"foo: bar\ndata: x\nDATA: y\nData: z\ndata : w\ndatum: v\ndat: u\n\n", 0, "message||x;", 0, "",
     -1, 0, 0, 0},
    {"data: a:b: c\n\ndata:\tx\n\ndata::\n\n", 0, "message||a:b: c;message||\tx;message||:;", 0, "",
     -1, 0, 0, 0},
    {LIT("data: a\0b\n\n"), LIT("message||a\0b;"), "", -1, 0, 0, 0},
    {"data: caf\xC3\xA9 \xE2\x82\xAC\n\n", 0, "message||caf\xC3\xA9 \xE2\x82\xAC;", 0, "", -1, 0, 0,
     0},
    /* Event types: reset after every blank line, dispatched or not; empty means "message". */
    {"event: foo\ndata: 1\n\ndata: 2\n\n", 0, "foo||1;message||2;", 0, "", -1, 0, 0, 0},
    {LIT("event: message\0x\ndata: y\n\nevent: \0\ndata: z\n\n"), "||y;||z;", 0, "", -1, 0, 0, 0},
    {"event: foo\n\ndata: 2\n\n", 0, "message||2;", 0, "", -1, 0, 0, 0},
    {"event: foo\nevent\ndata: x\n\nevent: a\nevent: b\ndata: y\n\n", 0, "message||x;b||y;", 0, "",
     -1, 0, 0, 0},
    {"data: a\n\ndata: b", 0, "message||a;", 0, "", -1, 0, 0, 0},
    {"", 0, "", 0, "", -1, 0, 0, 0},
    /* Caps (max_event 8; a line may be 8 + 16 bytes). */
    {"data: 12345678\n\ndata: 12345678\n\n", 0, "message||12345678;message||12345678;", 0, "", -1,
     0, 0, 8},
    {"\xEF\xBB\xBF"
     "data: 12345678\n\n",
     0, "message||12345678;", 0, "", -1, 0, 0, 8},
    {"data: 1234\ndata: 123\n\n", 0, "message||1234\n123;", 0, "", -1, 0, 0, 8},
    {"data: a\n\ndata: 123456789\n\n", 0, "message||a;", 0, "", -1, 0, ERR_TOOBIG, 8},
    {"data: 1234\ndata: 1234\n\n", 0, "", 0, "", -1, 0, ERR_TOOBIG, 8},
    {"data\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\n\ndata\ndata\ndata\ndata\ndata\ndata\nd"
     "ata\ndata\ndata\ndata\n\n",
     0, "message||\n\n\n\n\n\n\n\n;", 0, "", -1, 0, ERR_TOOBIG, 8},
    {":23456789012345678901234\n", 0, "", 0, "", -1, 1, 0, 8},
    {"data: a\n\n:234567890123456789012345\n", 0, "message||a;", 0, "", -1, 0, ERR_TOOBIG, 8},
    {"data: a\n\n:234567890123456789012345", 0, "message||a;", 0, "", -1, 0, ERR_TOOBIG, 8},
    {"event: 123456789\n", 0, "", 0, "", -1, 0, ERR_TOOBIG, 8},
};

static void check(size_t ci, const char *how, const struct result *res)
{
    const struct sse_case *c = &cases[ci];
    size_t want_len = c->want_len ? c->want_len : strlen(c->want);
    const char *got = res->rec.log.data != NULL ? res->rec.log.data : "";
    if (res->rc != c->rc)
        fail_msg("case %zu (%s): rc %d, want %d", ci, how, res->rc, c->rc);
    if (res->rec.log.len != want_len || memcmp(got, c->want, want_len) != 0)
        fail_msg("case %zu (%s): events \"%s\", want \"%s\"", ci, how, got, c->want);
    if (c->rc != 0)
        return; /* the stream is dropped: the rest of the state does not matter */
    if (strcmp(res->last_id, c->last_id) != 0)
        fail_msg("case %zu (%s): last_id \"%s\", want \"%s\"", ci, how, res->last_id, c->last_id);
    if (res->retry_ms != c->retry_ms)
        fail_msg("case %zu (%s): retry %ld, want %ld", ci, how, res->retry_ms, c->retry_ms);
    if (res->comments != c->comments)
        fail_msg("case %zu (%s): comments %lu, want %lu", ci, how, res->comments, c->comments);
}

static void case_input(size_t ci, size_t *len, size_t *max_event)
{
    *len = cases[ci].len ? cases[ci].len : strlen(cases[ci].in);
    *max_event = cases[ci].max_event ? cases[ci].max_event : 4096;
}

static void test_whole(void **state)
{
    (void)state;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        size_t len, max;
        struct result res;
        case_input(ci, &len, &max);
        run(cases[ci].in, len, max, NULL, 0, &res);
        check(ci, "whole", &res);
        buf_free(&res.rec.log);
    }
}

/* Every split into three chunks (which covers every split into two) and byte by byte. */
static void test_split(void **state)
{
    (void)state;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        size_t len, max;
        struct result res;
        char how[64];
        case_input(ci, &len, &max);
        for (size_t i = 0; i <= len; i++) {
            for (size_t j = i; j <= len; j++) {
                size_t cuts[2] = {i, j};
                run(cases[ci].in, len, max, cuts, 2, &res);
                snprintf(how, sizeof how, "split at %zu and %zu", i, j);
                check(ci, how, &res);
                buf_free(&res.rec.log);
            }
        }
        size_t *cuts = malloc((len + 1) * sizeof *cuts);
        assert_non_null(cuts);
        for (size_t i = 0; i < len; i++)
            cuts[i] = i + 1;
        run(cases[ci].in, len, max, cuts, len, &res);
        check(ci, "byte by byte", &res);
        buf_free(&res.rec.log);
        free(cuts);
    }
}

static void test_long_id(void **state)
{
    (void)state;
    char in[600];
    struct result res;
    /* 255 bytes: kept. */
    memcpy(in, "id: ", 4);
    memset(in + 4, 'i', 255);
    int n = 4 + 255 + snprintf(in + 4 + 255, sizeof in - 4 - 255, "\ndata: a\n\n");
    run(in, (size_t)n, 4096, NULL, 0, &res);
    assert_int_equal(res.rc, 0);
    assert_int_equal(strlen(res.last_id), 255);
    assert_int_equal(res.rec.log.len, strlen("message||a;") + 255);
    buf_free(&res.rec.log);
    /* 256 bytes: ignored, the earlier id stays. */
    n = snprintf(in, sizeof in, "id: 9\n\nid: ");
    memset(in + n, 'i', 256);
    n += 256;
    n += snprintf(in + n, sizeof in - (size_t)n, "\ndata: a\n\n");
    run(in, (size_t)n, 4096, NULL, 0, &res);
    assert_int_equal(res.rc, 0);
    assert_string_equal(res.last_id, "9");
    assert_string_equal(res.rec.log.data, "message|9|a;");
    buf_free(&res.rec.log);
}

static void test_callback_stops(void **state)
{
    (void)state;
    static const char in[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    struct sse_parser p;
    struct rec rec = {.stop_after = 2, .stop_rc = 42};
    buf_init(&rec.log, 4096);
    sse_init(&p, 4096, record, &rec);
    assert_int_equal(sse_feed(&p, in, sizeof in - 1), 42);
    assert_string_equal(rec.log.data, "message||1;message||2;");
    sse_free(&p);
    buf_free(&rec.log);

    /* Byte by byte, the byte that ends the second event returns it. */
    rec.n = 0;
    buf_init(&rec.log, 4096);
    sse_init(&p, 4096, record, &rec);
    int r = 0;
    size_t i;
    for (i = 0; i < sizeof in - 1 && r == 0; i++)
        r = sse_feed(&p, in + i, 1);
    assert_int_equal(r, 42);
    assert_int_equal(i, strlen("data: 1\n\ndata: 2\n\n"));
    assert_string_equal(rec.log.data, "message||1;message||2;");
    sse_free(&p);
    buf_free(&rec.log);
}

/* After sse_finish the parser takes a new stream: a BOM is skipped again, a CR at the end of
 * the old stream does not eat an LF of the new one, and the unfinished event's id is dropped. */
static void test_reconnect(void **state)
{
    (void)state;
    static const char s1[] = "retry: 500\nid: 1\ndata: a\n\nid: 2\ndata: part\r";
    static const char s2[] = "\xEF\xBB\xBF\ndata: b\n\n";
    struct sse_parser p;
    struct rec rec = {0};
    buf_init(&rec.log, 4096);
    sse_init(&p, 4096, record, &rec);
    assert_int_equal(sse_feed(&p, s1, sizeof s1 - 1), 0);
    sse_finish(&p);
    assert_string_equal(p.last_id, "1");
    assert_int_equal(sse_feed(&p, s2, sizeof s2 - 1), 0);
    sse_finish(&p);
    assert_string_equal(rec.log.data, "message|1|a;message|1|b;");
    assert_int_equal(p.retry_ms, 500);
    sse_free(&p);
    sse_free(&p); /* reusable after free, and freeing twice is harmless */
    sse_free(NULL);
    buf_free(&rec.log);
}

/* A large chunk of many short lines parses in one pass, and an unbounded cap works. */
static void test_large(void **state)
{
    (void)state;
    size_t lines = 200000, len = lines * 8 + 2;
    char *in = malloc(len);
    assert_non_null(in);
    for (size_t i = 0; i < lines; i++)
        memcpy(in + i * 8, i % 2 ? "data: x\r" : "data: y\n", 8);
    memcpy(in + len - 2, "\n\n", 2); /* the last "\r" and this "\n" are one line end */
    struct result res;
    run(in, len, SIZE_MAX, NULL, 0, &res);
    assert_int_equal(res.rc, 0);
    assert_int_equal(res.rec.n, 1);
    assert_int_equal(res.rec.log.len, strlen("message||;") + lines * 2 - 1);
    buf_free(&res.rec.log);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole),     cmocka_unit_test(test_split),
        cmocka_unit_test(test_long_id),   cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_reconnect), cmocka_unit_test(test_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
