#include "core/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
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
