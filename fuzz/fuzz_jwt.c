/* libFuzzer target: jwt_verify on untrusted bearer tokens. Each input, as a NUL-terminated
 * string, is verified against a keyset loaded once from a temporary sqlite store
 * (/tmp/mcpgate-fuzz-jwt-<pid>.db, removed at exit).
 *
 * The store holds one fixed ES256 key (a test key, published here on purpose), sealed at start
 * like any other, so the seed corpus can carry validly signed tokens that reach the signature
 * and payload checks rather than stopping at "unknown kid". */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "oauth/jwt.h"
#include "store/store.h"

/* A P-256 key made for this target only; never use it anywhere else. */
#define FUZZ_D "-R1FnZIO8QXhsLjtqnMP0E4A8LX-cZgX_LgJfZ4lrrI"
#define FUZZ_X "r7anWllwh1YzasEDTja3I6RhHqOGxr02qrzpVRaS4bs"
#define FUZZ_Y "LXkfcDKDIJd4sdtbx6U-TepbhcyMVi9vQobVc_wMO9I"

static const unsigned char fuzz_master[32] = "mcpgate-fuzz-jwt-master-key-0001";

static struct store *st;
static struct jwt_keyset *ks;
static char db_path[128];

static void fuzz_cleanup(void)
{
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    jwt_keyset_free(ks);
    ks = NULL;
    store_close(st);
    st = NULL;
    for (size_t i = 0; i < sizeof(sfx) / sizeof(*sfx); i++) {
        char *p = xasprintf("%s%s", db_path, sfx[i]);
        unlink(p);
        free(p);
    }
}

static void fuzz_init(void)
{
    static const char priv[] = "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" FUZZ_X
                               "\",\"y\":\"" FUZZ_Y "\",\"d\":\"" FUZZ_D "\"}";
    static const char canon[] =
        "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"" FUZZ_X "\",\"y\":\"" FUZZ_Y "\"}";
    unsigned char digest[CRYPTO_SHA256_LEN];
    char alg[] = "ES256";
    struct store_key k;

    log_set_level(LOG_OFF);
    snprintf(db_path, sizeof(db_path), "/tmp/mcpgate-fuzz-jwt-%ld.db", (long)getpid());
    char *url = xasprintf("sqlite:%s", db_path);
    if (store_open(url, &st) != 0)
        __builtin_trap();
    free(url);
    atexit(fuzz_cleanup);

    memset(&k, 0, sizeof(k));
    crypto_sha256(canon, strlen(canon), digest);
    k.kid = b64url_encode(digest, sizeof(digest)); /* RFC 7638 thumbprint */
    k.alg = alg;
    k.public_jwk = xasprintf("{\"alg\":\"ES256\",\"crv\":\"P-256\",\"kid\":\"%s\",\"kty\":\"EC\","
                             "\"use\":\"sig\",\"x\":\"" FUZZ_X "\",\"y\":\"" FUZZ_Y "\"}",
                             k.kid);
    if (crypto_seal(fuzz_master, k.kid, strlen(k.kid), priv, strlen(priv), &k.sealed,
                    &k.sealed_len) != 0 ||
        store_key_put(st, &k) != 0)
        __builtin_trap();
    free(k.kid);
    free(k.public_jwk);
    free(k.sealed);
    if (jwt_keyset_load(st, fuzz_master, 1700000000, 3600, &ks) != 0)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ks == NULL)
        fuzz_init();
    char *tok = xmalloc(size + 1);
    memcpy(tok, data, size);
    tok[size] = '\0';
    json_t *claims = NULL;
    const char *why = NULL;
    if (jwt_verify(ks, tok, &claims, &why) == 0) {
        /* Accepted: the claims are an object and there is no reason. */
        if (!json_is_object(claims) || why != NULL)
            __builtin_trap();
        json_decref(claims);
    } else if (claims != NULL || why == NULL) {
        __builtin_trap();
    }
    free(tok);
    return 0;
}
