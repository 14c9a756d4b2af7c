/* libFuzzer target: client/sse, differentially. The input is one event stream, parsed three
 * times: whole, split in two at a position derived from the first byte, and in chunks of 1 to
 * 13 bytes. All three must produce the same events, return code and final state. The first
 * byte also picks a small cap (odd) or a large one, and an event after which the callback
 * stops the parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/sse.h"

struct run {
    size_t max_event;
    unsigned stop_after; /* 0: never */
    unsigned n;
    uint64_t hash; /* FNV-1a over every event's fields */
    int rc;
};

static void mix(struct run *r, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        r->hash = (r->hash ^ s[i]) * 0x100000001b3ULL;
}

static int on_event(void *arg, const struct sse_event *ev)
{
    struct run *r = arg;
    size_t tl = strlen(ev->type), il = strlen(ev->id);
    if (il >= 256 || ev->data_len > r->max_event || ev->data[ev->data_len] != '\0')
        __builtin_trap();
    mix(r, &tl, sizeof tl);
    mix(r, ev->type, tl);
    mix(r, &il, sizeof il);
    mix(r, ev->id, il);
    mix(r, &ev->data_len, sizeof ev->data_len);
    mix(r, ev->data, ev->data_len);
    return ++r->n == r->stop_after ? 7 : 0;
}

struct outcome {
    struct run run;
    char last_id[256];
    long retry_ms;
    unsigned long comments;
};

/* Feeds data in chunks: one cut at split, or every step bytes when step > 0. Each chunk is
 * copied to its own allocation so that ASan catches a read past its end. */
static void parse(const uint8_t *data, size_t size, size_t split, size_t step, size_t max_event,
                  unsigned stop_after, struct outcome *o)
{
    struct sse_parser p;
    memset(o, 0, sizeof *o);
    o->run.max_event = max_event;
    o->run.stop_after = stop_after;
    o->run.hash = 0xcbf29ce484222325ULL;
    sse_init(&p, max_event, on_event, &o->run);
    size_t at = 0;
    while (at < size && o->run.rc == 0) {
        size_t n = step > 0 ? step : (at < split ? split : size) - at;
        if (n > size - at)
            n = size - at;
        char *chunk = malloc(n ? n : 1);
        if (chunk == NULL)
            __builtin_trap();
        memcpy(chunk, data + at, n);
        o->run.rc = sse_feed(&p, chunk, n);
        free(chunk);
        at += n;
    }
    sse_finish(&p);
    memcpy(o->last_id, p.last_id, sizeof o->last_id);
    o->retry_ms = p.retry_ms;
    o->comments = p.comments;
    sse_free(&p);
}

static void same(const struct outcome *a, const struct outcome *b)
{
    if (a->run.rc != b->run.rc || a->run.n != b->run.n || a->run.hash != b->run.hash)
        __builtin_trap();
    if (a->run.rc != 0)
        return; /* the state after an error is not specified */
    if (strcmp(a->last_id, b->last_id) != 0 || a->retry_ms != b->retry_ms ||
        a->comments != b->comments)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t b = data[0];
    size_t split = ((size_t)b * 131) % (size + 1);
    size_t step = 1 + b % 13;
    size_t max_event = (b & 1) ? 4 + b % 61 : 65536;
    unsigned stop_after = b >> 5; /* 0 to 7 */
    struct outcome whole, cut, chunked;
    parse(data, size, size, 0, max_event, stop_after, &whole);
    parse(data, size, split, 0, max_event, stop_after, &cut);
    parse(data, size, 0, step, max_event, stop_after, &chunked);
    same(&whole, &cut);
    same(&whole, &chunked);
    return 0;
}
