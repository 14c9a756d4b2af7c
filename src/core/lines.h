/* Newline-delimited framing of a byte stream (stdio JSON-RPC): bytes in, whole lines out. A
 * line is at most max bytes; a longer one is reported once and skipped to its end, never
 * buffered whole. */
#ifndef MCPGATE_CORE_LINES_H
#define MCPGATE_CORE_LINES_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

struct lines {
    struct buf line; /* the line being read */
    bool skipping;   /* inside a line past the cap */
};

/* Called for each line (without its LF, nor a CR before it; empty lines are not reported), or
 * with line NULL once for each line longer than the cap. */
typedef void (*lines_fn)(void *arg, const char *line, size_t len);

void lines_init(struct lines *l, size_t max);
void lines_free(struct lines *l);
void lines_feed(struct lines *l, const char *p, size_t n, lines_fn fn, void *arg);

#endif
