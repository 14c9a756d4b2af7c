/* A Server-Sent Events parser (the WHATWG event stream format), incremental and bounded, for
 * the MCP client transports (Streamable HTTP responses, GET streams, legacy HTTP+SSE).
 *
 * Feed it bytes as they arrive, in any split; it calls back once per dispatched event. Lines
 * end with CRLF, LF or CR; a leading UTF-8 BOM is skipped; "field: value" strips one space;
 * comment lines (":") are ignored but reported for keep-alive accounting; "data" lines join
 * with "\n"; "event" sets the type (default "message"); "id" sets the last event id (one
 * containing NUL is ignored) and persists across events; "retry" with only digits sets the
 * reconnection delay; an event without data lines is not dispatched (but its id still
 * counts). One with an empty "data:" line is, with data "": that is MCP's priming event
 * ("id: 1-1\ndata: \n\n"), which the caller skips rather than parse as JSON-RPC. */
#ifndef MCPGATE_CLIENT_SSE_H
#define MCPGATE_CLIENT_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

struct sse_event {
    const char *type; /* "message" unless an event field said otherwise; "" if that type
                       * holds a NUL (no C spelling: it matches no type the caller knows) */
    const char *data; /* the joined data lines, NUL-terminated */
    size_t data_len;
    const char *id;   /* the last event id in force (may be "" ) */
};

/* Return 0 to go on, non-zero to stop the parser (sse_feed returns that value). */
typedef int (*sse_event_fn)(void *arg, const struct sse_event *ev);

struct sse_parser {
    sse_event_fn on_event;
    void *arg;
    size_t max_event;   /* cap on one event's data: ERR_TOOBIG past it; a line may be 16 bytes
                         * longer, for its field name and a BOM */
    struct buf line;    /* the line being read, when it spans chunks */
    struct buf data;    /* data of the event being built, each line followed by "\n" */
    struct buf type;
    char id[256];       /* the last event id buffer: set by "id" fields (one of 256 bytes or
                         * more is ignored, like one with a NUL) */
    char last_id[256];  /* the last event id string, copied from id at each blank line (even
                         * when nothing is dispatched): what Last-Event-ID sends on reconnect */
    bool bom_checked;
    bool cr_pending;    /* the previous chunk ended in CR: a following LF belongs to it */
    long retry_ms;      /* -1 until a retry field arrives */
    unsigned long comments; /* comment lines seen (keep-alives) */
};

void sse_init(struct sse_parser *p, size_t max_event, sse_event_fn fn, void *arg);
void sse_free(struct sse_parser *p);
/* Parses len bytes. Returns 0, ERR_TOOBIG (a line or an event past max_event: the stream must
 * be dropped), or the callback's non-zero value (the rest of the chunk is left unparsed).
 * Bytes pass through as they are (no U+FFFD replacement): data may hold invalid UTF-8 or
 * NULs, hence data_len; the JSON parser downstream rejects them. */
int sse_feed(struct sse_parser *p, const char *bytes, size_t len) ERR_WARN_UNUSED;
/* The stream ended: a pending event without its blank line is discarded, as the spec says
 * (its id too: id goes back to last_id). The parser may then read a new stream, say after a
 * reconnection; last_id, retry_ms and comments carry over. */
void sse_finish(struct sse_parser *p);

#endif
