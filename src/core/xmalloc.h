/* Allocation that cannot fail: out-of-memory aborts in one place (h2o, Redis). */
#ifndef MCPGATE_CORE_XMALLOC_H
#define MCPGATE_CORE_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a new string; aborts on OOM. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
