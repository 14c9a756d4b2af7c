/* libFuzzer target: PKCE. The input is "<code_challenge>\n<code_verifier>": the challenge is
 * canonicalized (and a canonical form must be 43 base64url characters that canonicalize to
 * themselves), then the verifier is checked against it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oauth/oauth_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    const char *nl = memchr(p, '\n', size);
    size_t cl = nl ? (size_t)(nl - p) : size;
    char *challenge = strndup(p, cl);
    char *verifier = nl ? strndup(nl + 1, size - cl - 1) : strdup("");
    char canon[44], again[44];
    if (pkce_challenge_normalize(challenge, canon) == 0) {
        if (strlen(canon) != 43 ||
            strspn(canon, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                          "0123456789-_") != 43)
            __builtin_trap();
        if (pkce_challenge_normalize(canon, again) != 0 || strcmp(canon, again) != 0)
            __builtin_trap();
        (void)pkce_verify(verifier, canon);
    }
    (void)pkce_verify(verifier, challenge);
    free(challenge);
    free(verifier);
    return 0;
}
