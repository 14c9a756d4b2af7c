/* client/sse: the WHATWG HTML "interpreting an event stream" rules, fed in arbitrary chunks.
 * Whole lines inside a chunk are parsed in place; only a line split across chunks is copied
 * into p->line. Line ends are found with memchr, remembering the next CR and LF so a chunk is
 * scanned once whatever mix of line endings it holds. */
#include "client/sse.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#define LINE_SLACK 16 /* room in a line for "data: " and a BOM around a max_event value */
#define BOM "\xEF\xBB\xBF"

void sse_init(struct sse_parser *p, size_t max_event, sse_event_fn fn, void *arg)
{
    memset(p, 0, sizeof *p);
    p->on_event = fn;
    p->arg = arg;
    p->max_event = max_event;
    size_t line_max = max_event > SIZE_MAX - LINE_SLACK ? SIZE_MAX : max_event + LINE_SLACK;
    buf_init(&p->line, line_max);
    /* Each data line is stored with its "\n" and the last one goes at dispatch. */
    buf_init(&p->data, max_event == SIZE_MAX ? SIZE_MAX : max_event + 1);
    buf_init(&p->type, max_event);
    p->retry_ms = -1;
}

void sse_free(struct sse_parser *p)
{
    if (p == NULL)
        return;
    buf_free(&p->line);
    buf_free(&p->data);
    buf_free(&p->type);
}

void sse_finish(struct sse_parser *p)
{
    buf_reset(&p->line);
    buf_reset(&p->data);
    buf_reset(&p->type);
    memcpy(p->id, p->last_id, sizeof p->id);
    p->bom_checked = false;
    p->cr_pending = false;
}

static bool field_is(const char *name, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(name, lit, n) == 0;
}

static int dispatch(struct sse_parser *p)
{
    memcpy(p->last_id, p->id, sizeof p->last_id);
    if (p->data.len == 0) {
        buf_reset(&p->type);
        return 0;
    }
    p->data.data[--p->data.len] = '\0'; /* the "\n" after the last data line */
    const char *type = "message";
    if (p->type.len > 0) /* with a NUL the type has no C spelling: "" matches nothing */
        type = memchr(p->type.data, '\0', p->type.len) == NULL ? p->type.data : "";
    struct sse_event ev = {
        .type = type,
        .data = p->data.data,
        .data_len = p->data.len,
        .id = p->last_id,
    };
    int r = p->on_event != NULL ? p->on_event(p->arg, &ev) : 0;
    buf_reset(&p->data);
    buf_reset(&p->type);
    return r;
}

static void set_retry(struct sse_parser *p, const char *v, size_t n)
{
    long ms = 0;
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return;
        int d = v[i] - '0';
        ms = ms > (LONG_MAX - d) / 10 ? LONG_MAX : ms * 10 + d;
    }
    p->retry_ms = ms;
}

static int process_line(struct sse_parser *p, const char *s, size_t n)
{
    int r;
    if (!p->bom_checked) {
        p->bom_checked = true;
        if (n >= 3 && memcmp(s, BOM, 3) == 0) {
            s += 3;
            n -= 3;
        }
    }
    if (n == 0)
        return dispatch(p);
    if (s[0] == ':') {
        p->comments++;
        return 0;
    }
    const char *colon = memchr(s, ':', n);
    size_t name_len = colon != NULL ? (size_t)(colon - s) : n;
    const char *v = colon != NULL ? colon + 1 : s + n;
    size_t vn = n - (size_t)(v - s);
    if (vn > 0 && v[0] == ' ') {
        v++;
        vn--;
    }
    if (field_is(s, name_len, "data")) {
        if ((r = buf_append(&p->data, v, vn)) != 0 || (r = buf_append(&p->data, "\n", 1)) != 0)
            return r;
    } else if (field_is(s, name_len, "event")) {
        buf_reset(&p->type);
        if ((r = buf_append(&p->type, v, vn)) != 0)
            return r;
    } else if (field_is(s, name_len, "id")) {
        if (vn < sizeof p->id && memchr(v, '\0', vn) == NULL) {
            memcpy(p->id, v, vn);
            p->id[vn] = '\0';
        }
    } else if (field_is(s, name_len, "retry")) {
        set_retry(p, v, vn);
    }
    return 0;
}

/* The next CR or LF at or after s, or NULL. *cr and *lf hold the last memchr answers (NULL:
 * none left in the chunk), so each is searched again only once s has passed it. */
static const char *next_eol(const char *s, const char *end, const char **cr, const char **lf)
{
    if (*cr != NULL && *cr < s)
        *cr = memchr(s, '\r', (size_t)(end - s));
    if (*lf != NULL && *lf < s)
        *lf = memchr(s, '\n', (size_t)(end - s));
    if (*cr == NULL || (*lf != NULL && *lf < *cr))
        return *lf;
    return *cr;
}

int sse_feed(struct sse_parser *p, const char *bytes, size_t len)
{
    const char *s = bytes, *end = bytes + len;
    int r;
    if (len == 0)
        return 0;
    if (p->cr_pending) {
        p->cr_pending = false;
        if (*s == '\n')
            s++;
    }
    const char *cr = memchr(s, '\r', (size_t)(end - s));
    const char *lf = memchr(s, '\n', (size_t)(end - s));
    while (s < end) {
        const char *eol = next_eol(s, end, &cr, &lf);
        if (eol == NULL)
            return buf_append(&p->line, s, (size_t)(end - s));
        const char *line = s;
        size_t n = (size_t)(eol - s);
        if (p->line.len > 0) { /* the line began in an earlier chunk */
            if ((r = buf_append(&p->line, s, n)) != 0)
                return r;
            line = p->line.data;
            n = p->line.len;
        } else if (n > p->line.limit) {
            return ERR_TOOBIG;
        }
        s = eol + 1;
        if (*eol == '\r') {
            if (s == end)
                p->cr_pending = true;
            else if (*s == '\n')
                s++;
        }
        r = process_line(p, line, n);
        buf_reset(&p->line);
        if (r != 0)
            return r;
    }
    return 0;
}
