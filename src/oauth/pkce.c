/* PKCE (RFC 7636), S256 only. A code_challenge is the base64url (no padding) encoding of a
 * 32-byte SHA-256 digest: 43 characters. Some clients send it padded or in the standard
 * alphabet (seed 000); those spellings of the same digest are accepted and canonicalized, so
 * the store and the comparison at /token only ever see the canonical form. Anything else
 * (whitespace, another length, a mixed alphabet, non-zero stray bits) is refused. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "oauth/oauth_int.h"

#define CHALLENGE_LEN 43 /* base64url of 32 bytes, unpadded */
#define VERIFIER_MIN 43
#define VERIFIER_MAX 128

static bool is_alnum(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int pkce_challenge_normalize(const char *challenge, char out[44])
{
    unsigned char *raw = NULL;
    size_t rawlen = 0, n;
    bool url = false, std = false;
    char tmp[45];
    int r = ERR_INVALID;

    out[0] = '\0';
    if (challenge == NULL)
        return ERR_INVALID;
    n = strnlen(challenge, CHALLENGE_LEN + 2);
    /* 43 unpadded or 44 with the one '=' that 32 bytes need. */
    if (n != CHALLENGE_LEN && !(n == CHALLENGE_LEN + 1 && challenge[CHALLENGE_LEN] == '='))
        return ERR_INVALID;
    for (size_t i = 0; i < CHALLENGE_LEN; i++) {
        unsigned char c = (unsigned char)challenge[i];
        if (c == '-' || c == '_')
            url = true;
        else if (c == '+' || c == '/')
            std = true;
        else if (!is_alnum(c))
            return ERR_INVALID;
    }
    if (url && std)
        return ERR_INVALID; /* one alphabet or the other, not both */
    if (std) {
        memcpy(tmp, challenge, CHALLENGE_LEN);
        tmp[CHALLENGE_LEN] = '=';
        tmp[CHALLENGE_LEN + 1] = '\0';
        if (b64_decode_strict(tmp, CHALLENGE_LEN + 1, &raw, &rawlen) != 0)
            goto out;
    } else {
        /* The '=' checked above is left out: the decoder would strip any number of them. */
        if (b64url_decode(challenge, CHALLENGE_LEN, &raw, &rawlen) != 0)
            goto out;
    }
    if (rawlen != CRYPTO_SHA256_LEN)
        goto out;
    char *enc = b64url_encode(raw, rawlen);
    if (strlen(enc) != CHALLENGE_LEN) {
        free(enc);
        goto out;
    }
    memcpy(out, enc, CHALLENGE_LEN + 1);
    free(enc);
    r = 0;
out:
    free(raw);
    return r;
}

/* RFC 7636 section 4.1: code-verifier = 43*128unreserved. */
static bool verifier_ok(const char *v, size_t *len)
{
    size_t n = 0;
    for (; v[n] != '\0'; n++) {
        unsigned char c = (unsigned char)v[n];
        if (n >= VERIFIER_MAX)
            return false;
        if (!is_alnum(c) && c != '-' && c != '.' && c != '_' && c != '~')
            return false;
    }
    *len = n;
    return n >= VERIFIER_MIN;
}

bool pkce_verify(const char *verifier, const char *canonical_challenge)
{
    unsigned char digest[CRYPTO_SHA256_LEN];
    size_t vlen = 0;
    bool ok;

    if (verifier == NULL || canonical_challenge == NULL || !verifier_ok(verifier, &vlen))
        return false;
    if (strnlen(canonical_challenge, CHALLENGE_LEN + 1) != CHALLENGE_LEN)
        return false;
    crypto_sha256(verifier, vlen, digest);
    char *enc = b64url_encode(digest, sizeof(digest));
    ok = strlen(enc) == CHALLENGE_LEN && crypto_equal(enc, canonical_challenge, CHALLENGE_LEN);
    crypto_wipe(digest, sizeof(digest));
    free(enc);
    return ok;
}
