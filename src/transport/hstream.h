/* Logical HTTP response streams and Streamable HTTP sessions, independent of the HTTP library.
 *
 * A stream (struct hstream) carries the messages of one POST's request, one GET stream or one
 * legacy /sse stream. It decides its shape from what arrives first: the request's own response
 * alone makes it a JSON response; anything else first (a notification, a server-to-client
 * request) makes it an SSE stream. A stream can outlive its connection: in a session, every
 * event it emits is numbered "<stream>-<seq>" and kept in the session's bounded ring, so a
 * client that reconnects with Last-Event-ID gets what it missed, and later events follow it.
 *
 * Locking: each stream has its own mutex; a session's mutex guards its table of streams and
 * its ring. The HTTP layer is told to wake a connection through the wake hook, called with no
 * lock held. */
#ifndef MCPGATE_TRANSPORT_HSTREAM_H
#define MCPGATE_TRANSPORT_HSTREAM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/buf.h"

struct hsession;
struct mcp_session;
struct mcp_server;

enum hstream_mode { HSTREAM_PENDING, HSTREAM_JSON, HSTREAM_SSE };

struct hstream {
    pthread_mutex_t mu;
    int refs;
    struct hsession *sess;   /* NULL for stateless (2026-07-28) requests; +1 ref */
    uint64_t id;             /* number within the session */
    uint64_t seq;            /* last event number */
    enum hstream_mode mode;
    struct buf out;          /* bytes not yet taken by the connection */
    bool final;              /* the request's response is in out: end after it */
    bool suspended;          /* the HTTP layer suspended the connection waiting for output */
    bool gone;               /* the peer hung up (seen by the HTTP layer's watcher) */
    bool standalone;         /* a GET or /sse stream: never ends by itself */
    bool detached;           /* no connection is attached */
    bool cancel_on_close;    /* 2026-07-28: closing the stream cancels the request */
    int error_code;          /* JSON-RPC code of a final error answered as JSON, or 0 */
    void *conn;              /* the HTTP layer's connection handle, or NULL */
    void (*wake)(struct hstream *st); /* set by the HTTP layer; called without locks */
    struct hstream *redirect; /* resumed elsewhere: the engine's messages go there (+1 ref) */
    struct hstream *next;    /* in the session's table */
};

/* An event kept for resumption. */
struct hevent {
    uint64_t stream, seq;
    char *data; /* the full SSE frame */
    size_t len;
};

enum hsession_kind { HSESSION_STREAMABLE, HSESSION_SSE };

struct hsession {
    pthread_mutex_t mu;
    int refs;
    char id[48];
    enum hsession_kind kind;
    struct mcp_session *ms;   /* the engine session */
    struct hstream *streams;  /* live streams (+1 ref each) */
    struct hstream *get;      /* the standalone GET / legacy /sse stream, or NULL */
    uint64_t next_stream;
    struct hevent *ring;      /* the last ring_cap events */
    size_t ring_cap, ring_alloc, ring_len, ring_head; /* cap: most events kept; alloc: now */
    size_t ring_bytes, ring_max_bytes;
    time_t last_active;
    bool closed;
    char *owner;              /* the subject that opened it (OAuth), or NULL */
    struct hsession *hnext;   /* hash chain in the server's table */
};

/* ---- streams ---- */

struct hstream *hstream_new(struct hsession *sess, size_t limit);
void hstream_ref(struct hstream *st);
void hstream_unref(struct hstream *st);
/* A message for the stream (from the engine's send). final: the request's response. */
void hstream_push(struct hstream *st, const char *msg, size_t len, bool final);
/* The same, following a resumed stream to where its output goes now. */
void hstream_push_routed(struct hstream *st, const char *msg, size_t len, bool final);
/* Called by the HTTP layer when its connection to st ends. */
void hstream_detach(struct hstream *st);
/* Takes up to max bytes of SSE output. Returns the count; *eof when the stream has ended and
 * everything was taken. 0 without eof: nothing now (the caller suspends; wake resumes). */
size_t hstream_take(struct hstream *st, char *buf, size_t max, bool *eof);
/* Adds an SSE comment (keep-alive) when the stream is idle and in SSE mode. */
void hstream_keepalive(struct hstream *st);
/* Starts SSE output now (GET streams, priming events) with an optional retry hint (ms). */
void hstream_start_sse(struct hstream *st, long retry_ms, bool priming);
/* Ends a standalone stream (shutdown, DELETE). */
void hstream_end(struct hstream *st);

/* ---- sessions ---- */

struct hsession *hsession_new(struct mcp_server *srv, enum hsession_kind kind, size_t ring_events,
                              size_t ring_bytes);
void hsession_ref(struct hsession *s);
void hsession_unref(struct hsession *s);
/* Closes the engine session and ends its streams. */
void hsession_close(struct hsession *s);
/* Attaches st as a live stream of the session (its messages are numbered and kept). */
void hsession_add_stream(struct hsession *s, struct hstream *st);
void hsession_remove_stream(struct hsession *s, struct hstream *st);
/* Parses "<stream>-<seq>"; 0 or ERR_PARSE. */
int hevent_id_parse(const char *s, uint64_t *stream, uint64_t *seq);
/* Resumption: copies into st every kept event of stream `stream` after seq, then, if that
 * stream is still live and not standalone, moves its future output to st. Returns 0, or
 * ERR_NOTFOUND when the session no longer has what the client asks for. */
int hsession_resume(struct hsession *s, struct hstream *st, uint64_t stream, uint64_t seq);

/* The engine's send callback for sessions (arg: struct hsession*) and for stateless requests
 * (arg: unused). */
void hsession_io_send(void *arg, void *stream, const char *msg, size_t len, bool final);
void hstateless_io_send(void *arg, void *stream, const char *msg, size_t len, bool final);
/* The engine's hold callback for both (takes or drops a reference to the stream). */
void hstream_io_hold(void *arg, void *stream, bool take);

#endif
