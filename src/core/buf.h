/* A growable byte buffer with a hard cap (curl dynbuf, OpenSSH sshbuf). Appends past the cap
 * fail with ERR_TOOBIG and leave the buffer as it was. The data is always NUL-terminated. */
#ifndef MCPGATE_CORE_BUF_H
#define MCPGATE_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "core/err.h"

struct buf {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;   /* allocated bytes */
    size_t limit; /* maximum len */
};

void buf_init(struct buf *b, size_t limit);
void buf_free(struct buf *b); /* releases memory; the buffer can be reused */
void buf_reset(struct buf *b); /* len = 0, keeps memory */
int buf_append(struct buf *b, const void *p, size_t n) ERR_WARN_UNUSED;
int buf_append_str(struct buf *b, const char *s) ERR_WARN_UNUSED;
int buf_printf(struct buf *b, const char *fmt, ...) ERR_WARN_UNUSED
    __attribute__((format(printf, 2, 3)));
/* Removes the first n bytes. */
void buf_consume(struct buf *b, size_t n);
/* Hands the data to the caller (who frees it) and resets the buffer. */
char *buf_steal(struct buf *b, size_t *len /* OUT, may be NULL */);

#endif
