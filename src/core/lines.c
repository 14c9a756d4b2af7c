#include "core/lines.h"

#include <string.h>

void lines_init(struct lines *l, size_t max)
{
    buf_init(&l->line, max);
    l->skipping = false;
}

void lines_free(struct lines *l)
{
    buf_free(&l->line);
}

void lines_feed(struct lines *l, const char *p, size_t n, lines_fn fn, void *arg)
{
    const char *end = p + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t take = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        if (!l->skipping && buf_append(&l->line, p, take) != 0) {
            l->skipping = true;
            buf_reset(&l->line);
            fn(arg, NULL, 0);
        }
        if (nl == NULL)
            return;
        if (!l->skipping) {
            size_t len = l->line.len;
            if (len > 0 && l->line.data[len - 1] == '\r')
                len--;
            if (len > 0)
                fn(arg, l->line.data, len);
        }
        l->skipping = false;
        buf_reset(&l->line);
        p = nl + 1;
    }
}
