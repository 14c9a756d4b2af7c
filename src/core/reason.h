/* Human-readable reasons for errors (OAuth error_description, log lines): formatting into a
 * caller's buffer, and quoting untrusted text safely inside one. */
#ifndef MCPGATE_CORE_REASON_H
#define MCPGATE_CORE_REASON_H

#include <stddef.h>

/* printf into buf (len bytes); a NULL buf or len 0 is a no-op. */
void reason_set(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Copies untrusted s for quoting in a reason: printable ASCII only (anything else, and the
 * quote characters and backslash, become '?'), cut at max bytes with "..." added. out has room
 * for max + 4 bytes. Returns out. */
const char *reason_quote(const char *s, size_t max, char *out);

#endif
