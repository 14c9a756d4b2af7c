/* JWT access tokens (RFC 9068) signed with ES256, and the signing keys behind them. The only
 * oauth/ file that includes JOSE headers (cjose). Keys live in the store, their private halves
 * sealed (AES-256-GCM) under a master key that never enters the database. */
#ifndef MCPGATE_OAUTH_JWT_H
#define MCPGATE_OAUTH_JWT_H

#include <jansson.h>
#include <stdint.h>

#include "core/err.h"

struct store;
struct jwt_keyset;

/* The master key: MCPGATE_MASTER_KEY (base64url of 32 bytes) when set, else the file path
 * (created 0600 with a random key on first use; refused if group/other can read it). */
int jwt_master_key_load(const char *path, unsigned char key[32] /* OUT */) ERR_WARN_UNUSED;

/* Loads the keys from the store (creating the first ES256 key when there is none). Retired keys
 * are kept for verification while retired_at + keep_seconds > now. */
int jwt_keyset_load(struct store *st, const unsigned char master[32], int64_t now,
                    int64_t keep_seconds, struct jwt_keyset **out /* OUT */) ERR_WARN_UNUSED;
void jwt_keyset_free(struct jwt_keyset *ks);
/* Adds a new current key, retiring the previous one (it still verifies). */
int jwt_key_rotate(struct store *st, const unsigned char master[32], int64_t now,
                   char **kid /* OUT, may be NULL */) ERR_WARN_UNUSED;
/* The public keys as a JWKS document {"keys":[...]} (new reference). */
json_t *jwt_keyset_jwks(const struct jwt_keyset *ks);

/* Signs claims (borrowed) with the current key: header {"typ":"at+jwt","alg":"ES256","kid"}. */
int jwt_sign(const struct jwt_keyset *ks, json_t *claims, char **token /* OUT */) ERR_WARN_UNUSED;

/* Verifies a compact JWS: exactly three parts, header alg "ES256" (never "none", never HS*),
 * typ "at+jwt", a kid in the keyset, a valid signature over the exact bytes received. On
 * success *claims is the payload (new reference); claim checks (exp, iss, aud) are the
 * caller's. On failure returns ERR_INVALID and *why says which check failed. */
int jwt_verify(const struct jwt_keyset *ks, const char *token, json_t **claims /* OUT */,
               const char **why /* OUT */) ERR_WARN_UNUSED;

#endif
