/* The only place (with oauth/jwt) that includes OpenSSL headers: random bytes, SHA-256,
 * HMAC-SHA256, constant-time comparison, wiping, base64url. */
#ifndef MCPGATE_CORE_CRYPTO_H
#define MCPGATE_CORE_CRYPTO_H

#include <stddef.h>

#include "core/err.h"

#define CRYPTO_SHA256_LEN 32

int crypto_random(void *out, size_t n) ERR_WARN_UNUSED;
/* A random string of n bytes of entropy, base64url without padding (caller frees). */
char *crypto_random_token(size_t n);
void crypto_sha256(const void *data, size_t len, unsigned char out[CRYPTO_SHA256_LEN]);
int crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                       unsigned char out[CRYPTO_SHA256_LEN]) ERR_WARN_UNUSED;
/* 1 when equal; the time taken depends on n only. */
int crypto_equal(const void *a, const void *b, size_t n);
void crypto_wipe(void *p, size_t n);

/* base64url without padding; returns a new NUL-terminated string. */
char *b64url_encode(const void *data, size_t len);
/* Decodes base64url (padding optional); ERR_PARSE on a bad character or length. */
int b64url_decode(const char *s, size_t slen, unsigned char **out /* OUT */,
                  size_t *outlen /* OUT */) ERR_WARN_UNUSED;

/* AES-256-GCM with a random 96-bit nonce: out = nonce || ciphertext || tag. aad may be NULL.
 * open fails with ERR_INTEGRITY when anything was changed. Used for keys at rest. */
int crypto_seal(const unsigned char key[32], const void *aad, size_t aadlen, const void *plain,
                size_t n, unsigned char **out /* OUT */, size_t *outlen /* OUT */) ERR_WARN_UNUSED;
int crypto_open(const unsigned char key[32], const void *aad, size_t aadlen,
                const unsigned char *sealed, size_t n, unsigned char **out /* OUT */,
                size_t *outlen /* OUT */) ERR_WARN_UNUSED;

/* Passwords: argon2id (t=3, m=64 MiB, p=1, 16-byte salt), PHC-encoded. verify returns 1 when
 * the password matches (constant time), 0 when not, negative on a malformed hash. */
int crypto_password_hash(const char *password, char **encoded /* OUT */) ERR_WARN_UNUSED;
int crypto_password_verify(const char *encoded, const char *password);

/* Standard base64 with padding (RFC 4648 4); returns a new string. */
char *b64_encode(const void *data, size_t len);

/* Decodes standard base64 strictly: alphabet A-Z a-z 0-9 + /, length a multiple of 4, '='
 * padding only at the end, no stray bits. ERR_PARSE otherwise. */
int b64_decode_strict(const char *s, size_t slen, unsigned char **out /* OUT */,
                      size_t *outlen /* OUT */) ERR_WARN_UNUSED;

#endif
