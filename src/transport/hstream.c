/* Logical HTTP response streams and Streamable HTTP sessions (see hstream.h). */
#include "transport/hstream.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "mcp/session.h"

/* ---- streams ---- */

struct hstream *hstream_new(struct hsession *sess, size_t limit)
{
    struct hstream *st = xcalloc(1, sizeof(*st));
    pthread_mutex_init(&st->mu, NULL);
    st->refs = 1;
    st->mode = HSTREAM_PENDING;
    st->detached = true;
    buf_init(&st->out, limit);
    if (sess != NULL) {
        hsession_ref(sess);
        st->sess = sess;
    }
    return st;
}

void hstream_ref(struct hstream *st)
{
    pthread_mutex_lock(&st->mu);
    st->refs++;
    pthread_mutex_unlock(&st->mu);
}

void hstream_unref(struct hstream *st)
{
    if (st == NULL)
        return;
    pthread_mutex_lock(&st->mu);
    int left = --st->refs;
    pthread_mutex_unlock(&st->mu);
    if (left > 0)
        return;
    buf_free(&st->out);
    hstream_unref(st->redirect);
    if (st->sess != NULL)
        hsession_unref(st->sess);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

static void wake(struct hstream *st)
{
    void (*fn)(struct hstream *) = NULL;
    pthread_mutex_lock(&st->mu);
    if (!st->detached)
        fn = st->wake;
    pthread_mutex_unlock(&st->mu);
    if (fn != NULL)
        fn(st);
}

/* Appends one SSE frame; st->mu held. Returns the frame for the resumption ring (caller
 * frees) when the stream belongs to a session. */
static char *append_event(struct hstream *st, const char *msg, size_t len, size_t *flen)
{
    char head[64] = "";
    if (st->sess != NULL)
        snprintf(head, sizeof(head), "id: %" PRIu64 "-%" PRIu64 "\n", st->id, ++st->seq);
    size_t hl = strlen(head);
    /* "event: message" is the default type and is omitted. Compact JSON has no newline. */
    size_t n = hl + 6 + len + 2;
    char *frame = xmalloc(n + 1);
    memcpy(frame, head, hl);
    memcpy(frame + hl, "data: ", 6);
    memcpy(frame + hl + 6, msg, len);
    memcpy(frame + hl + 6 + len, "\n\n", 3);
    if (buf_append(&st->out, frame, n) != 0) {
        /* The client does not read: it loses this stream rather than the server its memory. */
        log_warn("stream %" PRIu64 ": output buffer full; dropping the connection", st->id);
        st->final = true;
        st->standalone = false;
        buf_reset(&st->out);
    }
    *flen = n;
    return frame;
}

static void ring_push(struct hsession *s, uint64_t stream, uint64_t seq, char *frame, size_t len);

void hstream_push(struct hstream *st, const char *msg, size_t len, bool final)
{
    char *frame = NULL;
    size_t flen = 0;
    uint64_t id = 0, seq = 0;
    pthread_mutex_lock(&st->mu);
    if (st->final && !st->standalone) {
        pthread_mutex_unlock(&st->mu); /* ended; nothing more belongs here */
        return;
    }
    if (st->mode == HSTREAM_PENDING && final) {
        /* The answer came first and alone: a plain JSON response. The engine serializes
         * errors as {"jsonrpc":"2.0","error":{"code":N,...: note the code for the status. */
        static const char prefix[] = "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":";
        if (len > sizeof(prefix) && memcmp(msg, prefix, sizeof(prefix) - 1) == 0)
            st->error_code = (int)strtol(msg + sizeof(prefix) - 1, NULL, 10);
        st->mode = HSTREAM_JSON;
        if (buf_append(&st->out, msg, len) != 0)
            buf_reset(&st->out);
    } else {
        st->mode = HSTREAM_SSE;
        frame = append_event(st, msg, len, &flen);
        id = st->id;
        seq = st->seq;
    }
    if (final)
        st->final = true;
    struct hsession *sess = st->sess;
    pthread_mutex_unlock(&st->mu);
    if (frame != NULL && sess != NULL)
        ring_push(sess, id, seq, frame, flen);
    else
        free(frame);
    wake(st);
}

void hstream_push_routed(struct hstream *st, const char *msg, size_t len, bool final)
{
    pthread_mutex_lock(&st->mu);
    struct hstream *to = st->redirect;
    if (to != NULL)
        hstream_ref(to);
    pthread_mutex_unlock(&st->mu);
    if (to == NULL) {
        hstream_push(st, msg, len, final);
        /* A session stream whose connection is gone leaves the table once it has ended. */
        pthread_mutex_lock(&st->mu);
        bool gone = st->final && st->detached && !st->standalone && st->sess != NULL;
        pthread_mutex_unlock(&st->mu);
        if (gone)
            hsession_remove_stream(st->sess, st);
        return;
    }
    hstream_push_routed(to, msg, len, final);
    hstream_unref(to);
}

void hstream_detach(struct hstream *st)
{
    pthread_mutex_lock(&st->mu);
    st->detached = true;
    st->conn = NULL;
    bool ended = st->final && !st->standalone;
    bool standalone = st->standalone;
    pthread_mutex_unlock(&st->mu);
    /* An ended stream, or a standalone one nobody listens to any more, leaves the session's
     * table; a request stream still running stays, for the client to resume. */
    if (st->sess != NULL && (ended || standalone))
        hsession_remove_stream(st->sess, st);
}

void hstream_io_hold(void *arg, void *stream, bool take)
{
    if (take)
        hstream_ref(stream);
    else
        hstream_unref(stream);
}

size_t hstream_take(struct hstream *st, char *buf, size_t max, bool *eof)
{
    pthread_mutex_lock(&st->mu);
    size_t n = st->out.len < max ? st->out.len : max;
    if (n > 0) {
        memcpy(buf, st->out.data, n);
        buf_consume(&st->out, n);
    }
    *eof = st->out.len == 0 && st->final && !st->standalone;
    pthread_mutex_unlock(&st->mu);
    return n;
}

void hstream_keepalive(struct hstream *st)
{
    pthread_mutex_lock(&st->mu);
    bool idle = st->mode == HSTREAM_SSE && st->out.len == 0 && !st->detached;
    if (idle && buf_append(&st->out, ": keep-alive\n\n", 14) != 0)
        idle = false;
    pthread_mutex_unlock(&st->mu);
    if (idle)
        wake(st);
}

void hstream_start_sse(struct hstream *st, long retry_ms, bool priming)
{
    pthread_mutex_lock(&st->mu);
    st->mode = HSTREAM_SSE;
    char line[96];
    int r = 0;
    if (retry_ms > 0) {
        snprintf(line, sizeof(line), "retry: %ld\n", retry_ms);
        r = buf_append_str(&st->out, line);
    }
    if (priming && st->sess != NULL) {
        /* An event with an id and empty data: the client has a Last-Event-ID from the start. */
        snprintf(line, sizeof(line), "id: %" PRIu64 "-%" PRIu64 "\ndata: \n\n", st->id,
                 ++st->seq);
        r = r ? r : buf_append_str(&st->out, line);
    } else if (retry_ms > 0) {
        r = r ? r : buf_append_str(&st->out, "\n");
    }
    (void)r; /* a fresh stream's buffer always has room for a few bytes */
    pthread_mutex_unlock(&st->mu);
    wake(st);
}

void hstream_end(struct hstream *st)
{
    pthread_mutex_lock(&st->mu);
    st->final = true;
    st->standalone = false;
    pthread_mutex_unlock(&st->mu);
    wake(st);
}

/* ---- sessions ---- */

struct hsession *hsession_new(struct mcp_server *srv, enum hsession_kind kind, size_t ring_events,
                              size_t ring_bytes)
{
    struct hsession *s = xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->refs = 1;
    s->kind = kind;
    /* 144 bits from the CSPRNG: unguessable, and visible ASCII as the spec asks. */
    char *id = crypto_random_token(18);
    snprintf(s->id, sizeof(s->id), "%s", id);
    free(id);
    /* The ring grows on demand up to ring_events: an idle session costs no ring at all. */
    s->ring_cap = ring_events ? ring_events : 1;
    s->ring = NULL;
    s->ring_alloc = 0;
    s->ring_max_bytes = ring_bytes;
    s->last_active = time(NULL);
    struct mcp_session_io io = {.send = hsession_io_send, .hold = hstream_io_hold, .arg = s};
    s->ms = mcp_session_new(srv, &io);
    return s;
}

void hsession_ref(struct hsession *s)
{
    pthread_mutex_lock(&s->mu);
    s->refs++;
    pthread_mutex_unlock(&s->mu);
}

void hsession_unref(struct hsession *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    int left = --s->refs;
    pthread_mutex_unlock(&s->mu);
    if (left > 0)
        return;
    for (size_t i = 0; i < s->ring_len; i++)
        free(s->ring[(s->ring_head + i) % s->ring_alloc].data);
    free(s->ring);
    free(s->owner);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void hsession_close(struct hsession *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->closed) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    s->closed = true;
    struct mcp_session *ms = s->ms;
    s->ms = NULL;
    pthread_mutex_unlock(&s->mu);
    /* Waits for running handlers; they may still push to streams, which stay valid. */
    mcp_session_close(ms);
    pthread_mutex_lock(&s->mu);
    struct hstream *list = s->streams;
    s->streams = NULL;
    s->get = NULL;
    pthread_mutex_unlock(&s->mu);
    while (list != NULL) {
        struct hstream *next = list->next;
        hstream_end(list);
        hstream_unref(list);
        list = next;
    }
}

void hsession_add_stream(struct hsession *s, struct hstream *st)
{
    hstream_ref(st);
    pthread_mutex_lock(&s->mu);
    st->id = ++s->next_stream;
    st->next = s->streams;
    s->streams = st;
    if (st->standalone)
        s->get = st;
    s->last_active = time(NULL);
    pthread_mutex_unlock(&s->mu);
}

void hsession_remove_stream(struct hsession *s, struct hstream *st)
{
    bool found = false;
    pthread_mutex_lock(&s->mu);
    for (struct hstream **pp = &s->streams; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == st) {
            *pp = st->next;
            found = true;
            break;
        }
    }
    if (s->get == st)
        s->get = NULL;
    s->last_active = time(NULL);
    pthread_mutex_unlock(&s->mu);
    if (found)
        hstream_unref(st);
}

/* Grows the ring's storage (keeping the order of events) while below ring_cap. mu held. */
static void ring_grow(struct hsession *s)
{
    if (s->ring_len < s->ring_alloc || s->ring_alloc >= s->ring_cap)
        return;
    size_t n = s->ring_alloc ? s->ring_alloc * 2 : 8;
    if (n > s->ring_cap)
        n = s->ring_cap;
    struct hevent *r = xcalloc(n, sizeof(*r));
    for (size_t i = 0; i < s->ring_len; i++)
        r[i] = s->ring[(s->ring_head + i) % s->ring_alloc];
    free(s->ring);
    s->ring = r;
    s->ring_alloc = n;
    s->ring_head = 0;
}

static void ring_push(struct hsession *s, uint64_t stream, uint64_t seq, char *frame, size_t len)
{
    pthread_mutex_lock(&s->mu);
    ring_grow(s);
    /* Evict the oldest events while over the count or byte budget. */
    while (s->ring_len > 0 &&
           (s->ring_len == s->ring_alloc || s->ring_bytes + len > s->ring_max_bytes)) {
        struct hevent *old = &s->ring[s->ring_head];
        s->ring_bytes -= old->len;
        free(old->data);
        old->data = NULL;
        s->ring_head = (s->ring_head + 1) % s->ring_alloc;
        s->ring_len--;
    }
    if (len > s->ring_max_bytes) {
        pthread_mutex_unlock(&s->mu);
        free(frame);
        return;
    }
    struct hevent *e = &s->ring[(s->ring_head + s->ring_len) % s->ring_alloc];
    e->stream = stream;
    e->seq = seq;
    e->data = frame;
    e->len = len;
    s->ring_len++;
    s->ring_bytes += len;
    pthread_mutex_unlock(&s->mu);
}

int hevent_id_parse(const char *s, uint64_t *stream, uint64_t *seq)
{
    char *end = NULL;
    if (s == NULL || *s < '0' || *s > '9' || strlen(s) > 41)
        return ERR_PARSE;
    unsigned long long a = strtoull(s, &end, 10);
    if (*end != '-' || end[1] < '0' || end[1] > '9')
        return ERR_PARSE;
    unsigned long long b = strtoull(end + 1, &end, 10);
    if (*end != '\0')
        return ERR_PARSE;
    *stream = a;
    *seq = b;
    return 0;
}

int hsession_resume(struct hsession *s, struct hstream *st, uint64_t stream, uint64_t seq)
{
    struct hstream *live = NULL;
    bool known = false;
    pthread_mutex_lock(&s->mu);
    for (struct hstream *x = s->streams; x != NULL; x = x->next) {
        if (x->id == stream) {
            live = x;
            hstream_ref(live);
        }
    }
    pthread_mutex_lock(&st->mu);
    st->mode = HSTREAM_SSE;
    for (size_t i = 0; i < s->ring_len; i++) {
        struct hevent *e = &s->ring[(s->ring_head + i) % s->ring_alloc];
        if (e->stream != stream)
            continue;
        known = true;
        if (e->seq > seq && buf_append(&st->out, e->data, e->len) != 0)
            break;
    }
    pthread_mutex_unlock(&st->mu);
    pthread_mutex_unlock(&s->mu);
    if (!known && live == NULL)
        return ERR_NOTFOUND;
    if (live != NULL) {
        /* The stream is still producing: its future events go to the new connection. Its id
         * and numbering carry over so later resumptions keep working. */
        pthread_mutex_lock(&live->mu);
        bool ended = live->final && !live->standalone;
        pthread_mutex_lock(&st->mu);
        st->id = live->id;
        st->seq = live->seq;
        st->standalone = live->standalone;
        st->final = ended;
        pthread_mutex_unlock(&st->mu);
        live->final = true;
        live->standalone = false;
        buf_reset(&live->out);
        pthread_mutex_unlock(&live->mu);
        wake(live); /* its old connection, if any, ends */
        if (!ended) {
            pthread_mutex_lock(&s->mu);
            for (struct hstream **pp = &s->streams; *pp != NULL; pp = &(*pp)->next) {
                if (*pp == live) {
                    *pp = live->next;
                    hstream_unref(live); /* the table's reference */
                    break;
                }
            }
            hstream_ref(st);
            st->next = s->streams;
            s->streams = st;
            if (st->standalone)
                s->get = st;
            pthread_mutex_unlock(&s->mu);
            /* Messages the engine still sends to the old stream must reach the new one. */
            pthread_mutex_lock(&live->mu);
            live->redirect = st;
            hstream_ref(st);
            pthread_mutex_unlock(&live->mu);
        }
        hstream_unref(live);
    } else {
        pthread_mutex_lock(&st->mu);
        st->id = stream;
        st->final = true; /* a finished stream: replay, then end */
        pthread_mutex_unlock(&st->mu);
    }
    wake(st);
    return 0;
}

/* ---- the engine's send callbacks ---- */

void hsession_io_send(void *arg, void *stream, const char *msg, size_t len, bool final)
{
    struct hsession *s = arg;
    struct hstream *st = stream;
    if (s->kind == HSESSION_SSE || st == NULL) {
        /* Legacy HTTP+SSE: everything goes on the /sse stream. Streamable HTTP: messages that
         * belong to no request go on the standalone GET stream, when one is open. */
        pthread_mutex_lock(&s->mu);
        st = s->get;
        if (st != NULL)
            hstream_ref(st);
        pthread_mutex_unlock(&s->mu);
        if (st == NULL) {
            log_debug("session message dropped: no stream open to carry it");
            return;
        }
        hstream_push(st, msg, len, false);
        hstream_unref(st);
        return;
    }
    hstream_push_routed(st, msg, len, final);
}

void hstateless_io_send(void *arg, void *stream, const char *msg, size_t len, bool final)
{
    if (stream != NULL)
        hstream_push((struct hstream *)stream, msg, len, final);
}
