/* UTF-8, strictly (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF. */
#ifndef MCPGATE_CORE_UTF8_H
#define MCPGATE_CORE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes the sequence at p (n > 0 bytes available): returns its length (1-4) with *cp set,
 * or 0 when the bytes there are not a well-formed sequence (or are cut short). */
size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp /* OUT */);

#endif
