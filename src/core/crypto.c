#include "core/crypto.h"

#include <argon2.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

int crypto_random(void *out, size_t n)
{
    if (n > 0x7fffffff || RAND_bytes(out, (int)n) != 1)
        return ERR_CRYPTO;
    return 0;
}

char *crypto_random_token(size_t n)
{
    unsigned char raw[64];
    if (n > sizeof(raw) || crypto_random(raw, n) != 0)
        abort(); /* no randomness: nothing secure can be done */
    char *s = b64url_encode(raw, n);
    crypto_wipe(raw, sizeof(raw));
    return s;
}

void crypto_sha256(const void *data, size_t len, unsigned char out[CRYPTO_SHA256_LEN])
{
    SHA256(data, len, out);
}

int crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                       unsigned char out[CRYPTO_SHA256_LEN])
{
    unsigned int outlen = 0;
    if (keylen > 0x7fffffff)
        return ERR_INVALID;
    if (HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen) == NULL ||
        outlen != CRYPTO_SHA256_LEN)
        return ERR_CRYPTO;
    return 0;
}

int crypto_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void crypto_wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *b64url_encode(const void *data, size_t len)
{
    const unsigned char *p = data;
    char *out = xmalloc(len / 3 * 4 + 5);
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        out[o++] = b64url_alphabet[v >> 6 & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (len - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
    } else if (len - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        out[o++] = b64url_alphabet[v >> 6 & 63];
    }
    out[o] = '\0';
    return out;
}

static int b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int b64url_decode(const char *s, size_t slen, unsigned char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    while (slen > 0 && s[slen - 1] == '=')
        slen--;
    if (slen % 4 == 1)
        return ERR_PARSE;
    unsigned char *buf = xmalloc(slen / 4 * 3 + 3);
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < slen; i++) {
        int v = b64url_val((unsigned char)s[i]);
        if (v < 0) {
            free(buf);
            return ERR_PARSE;
        }
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (unsigned char)(acc >> bits & 0xff);
        }
    }
    /* Leftover bits must be zero (canonical encoding). */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
        free(buf);
        return ERR_PARSE;
    }
    *out = buf;
    *outlen = o;
    return 0;
}

char *b64_encode(const void *data, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    char *out = xmalloc((len + 2) / 3 * 4 + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = i + 1 < len ? alphabet[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

int b64_decode_strict(const char *s, size_t slen, unsigned char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (slen % 4 != 0)
        return ERR_PARSE;
    size_t pad = 0;
    while (pad < 2 && pad < slen && s[slen - 1 - pad] == '=')
        pad++;
    /* Map the standard alphabet onto the url-safe one and reuse its decoder, which also
     * rejects non-zero leftover bits. */
    char *tmp = xmalloc(slen + 1);
    for (size_t i = 0; i < slen - pad; i++) {
        char c = s[i];
        if (c == '-' || c == '_' || c == '=') {
            free(tmp);
            return ERR_PARSE;
        }
        tmp[i] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    int r = b64url_decode(tmp, slen - pad, out, outlen);
    free(tmp);
    return r;
}

/* ---- sealing (AES-256-GCM) ---- */

#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16

int crypto_seal(const unsigned char key[32], const void *aad, size_t aadlen, const void *plain,
                size_t n, unsigned char **out, size_t *outlen)
{
    int r = ERR_CRYPTO, len = 0;
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char *buf = NULL;
    size_t total = 0;

    *out = NULL;
    *outlen = 0;
    if ((aad == NULL && aadlen > 0) || (plain == NULL && n > 0))
        return ERR_INVALID;
    if (n > INT_MAX - SEAL_NONCE_LEN - SEAL_TAG_LEN || aadlen > INT_MAX)
        return ERR_TOOBIG;
    total = SEAL_NONCE_LEN + n + SEAL_TAG_LEN;
    buf = xmalloc(total);
    if ((r = crypto_random(buf, SEAL_NONCE_LEN)) != 0)
        goto out;
    r = ERR_CRYPTO;
    if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
        EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, key, buf) != 1)
        goto out;
    if (aadlen > 0 && EVP_EncryptUpdate(ctx, NULL, &len, aad, (int)aadlen) != 1)
        goto out;
    if (n > 0 && (EVP_EncryptUpdate(ctx, buf + SEAL_NONCE_LEN, &len, plain, (int)n) != 1 ||
                  (size_t)len != n))
        goto out;
    if (EVP_EncryptFinal_ex(ctx, buf + SEAL_NONCE_LEN + n, &len) != 1 || len != 0 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN, buf + SEAL_NONCE_LEN + n) != 1)
        goto out;
    *out = buf;
    *outlen = total;
    buf = NULL;
    r = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    if (buf != NULL) {
        crypto_wipe(buf, total);
        free(buf);
    }
    return r;
}

/* The plaintext gets a NUL after its n bytes, so text can be used as a string. */
int crypto_open(const unsigned char key[32], const void *aad, size_t aadlen,
                const unsigned char *sealed, size_t n, unsigned char **out, size_t *outlen)
{
    int r = ERR_CRYPTO, len = 0;
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char *buf = NULL, tag[SEAL_TAG_LEN];
    size_t plen = 0;

    *out = NULL;
    *outlen = 0;
    if (aad == NULL && aadlen > 0)
        return ERR_INVALID;
    if (sealed == NULL || n < SEAL_NONCE_LEN + SEAL_TAG_LEN)
        return ERR_PARSE;
    if (n > INT_MAX || aadlen > INT_MAX)
        return ERR_TOOBIG;
    plen = n - SEAL_NONCE_LEN - SEAL_TAG_LEN;
    buf = xmalloc(plen + 1);
    memcpy(tag, sealed + n - SEAL_TAG_LEN, SEAL_TAG_LEN);
    if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
        EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, sealed) != 1)
        goto out;
    if (aadlen > 0 && EVP_DecryptUpdate(ctx, NULL, &len, aad, (int)aadlen) != 1)
        goto out;
    if (plen > 0 && (EVP_DecryptUpdate(ctx, buf, &len, sealed + SEAL_NONCE_LEN, (int)plen) != 1 ||
                     (size_t)len != plen))
        goto out;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, tag) != 1)
        goto out;
    if (EVP_DecryptFinal_ex(ctx, buf + plen, &len) != 1) {
        r = ERR_INTEGRITY;
        goto out;
    }
    buf[plen] = '\0';
    *out = buf;
    *outlen = plen;
    buf = NULL;
    r = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    if (buf != NULL) {
        crypto_wipe(buf, plen + 1);
        free(buf);
    }
    return r;
}

/* ---- passwords (argon2id) ---- */

#define PW_T_COST 3
#define PW_M_COST 65536 /* KiB */
#define PW_PARALLEL 1
#define PW_SALT_LEN 16
#define PW_HASH_LEN 32
#define PW_MAX_LEN 4096
/* A stored hash asking for more than this is refused rather than computed. */
#define PW_M_COST_MAX (1u << 20) /* 1 GiB */
#define PW_T_COST_MAX 16

int crypto_password_hash(const char *password, char **encoded)
{
    int r = ERR_CRYPTO;
    unsigned char salt[PW_SALT_LEN];
    char *enc = NULL;
    size_t pwlen, enclen;

    *encoded = NULL;
    if (password == NULL)
        return ERR_INVALID;
    if ((pwlen = strlen(password)) > PW_MAX_LEN)
        return ERR_TOOBIG;
    if ((r = crypto_random(salt, sizeof(salt))) != 0)
        goto out;
    enclen =
        argon2_encodedlen(PW_T_COST, PW_M_COST, PW_PARALLEL, PW_SALT_LEN, PW_HASH_LEN, Argon2_id);
    enc = xmalloc(enclen);
    if (argon2id_hash_encoded(PW_T_COST, PW_M_COST, PW_PARALLEL, password, pwlen, salt,
                              sizeof(salt), PW_HASH_LEN, enc, enclen) != ARGON2_OK) {
        r = ERR_CRYPTO;
        goto out;
    }
    *encoded = enc;
    enc = NULL;
    r = 0;
out:
    free(enc);
    crypto_wipe(salt, sizeof(salt));
    return r;
}

/* Reads the decimal after "name=" at *p; advances past it. */
static int phc_param(const char **p, const char *name, unsigned long *v)
{
    size_t nl = strlen(name);
    char *end;
    if (strncmp(*p, name, nl) != 0 || (*p)[nl] != '=' || (*p)[nl + 1] < '0' || (*p)[nl + 1] > '9')
        return ERR_PARSE;
    *v = strtoul(*p + nl + 1, &end, 10);
    *p = end;
    return 0;
}

/* Checks the shape and the cost of "$argon2id$v=19$m=M,t=T,p=P$..." before argon2 allocates m
 * KiB for it: a corrupted or planted hash must not make a login cost gigabytes. */
static int phc_check(const char *encoded)
{
    static const char prefix[] = "$argon2id$v=19$";
    const char *p = encoded;
    unsigned long m, t, par;
    if (strncmp(p, prefix, sizeof(prefix) - 1) != 0)
        return ERR_PARSE;
    p += sizeof(prefix) - 1;
    if (phc_param(&p, "m", &m) != 0 || *p++ != ',' || phc_param(&p, "t", &t) != 0 || *p++ != ',' ||
        phc_param(&p, "p", &par) != 0 || *p != '$')
        return ERR_PARSE;
    if (m > PW_M_COST_MAX || t > PW_T_COST_MAX || par > 16)
        return ERR_TOOBIG;
    return 0;
}

int crypto_password_verify(const char *encoded, const char *password)
{
    int r;
    size_t pwlen;

    if (encoded == NULL || password == NULL)
        return ERR_INVALID;
    if ((r = phc_check(encoded)) != 0)
        return r;
    if ((pwlen = strlen(password)) > PW_MAX_LEN)
        return 0; /* cannot have been hashed: a mismatch, not a malformed hash */
    /* argon2 reads the password in place (no copy to wipe) and compares in constant time. */
    switch (argon2id_verify(encoded, password, pwlen)) {
    case ARGON2_OK: return 1;
    case ARGON2_VERIFY_MISMATCH: return 0;
    case ARGON2_MEMORY_ALLOCATION_ERROR: return ERR_NOMEM;
    default: return ERR_PARSE;
    }
}
