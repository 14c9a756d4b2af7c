/* libFuzzer target: user codes as typed on the /device page (oauth_user_code_normalize). The
 * input is one typed string (up to its first NUL). Checked against a second, plain reading of
 * the rule (letters of the alphabet in any case, '-' and ' ' ignored, exactly 8 of them, input
 * at most OAUTH_USER_CODE_INPUT_MAX bytes), and what is accepted must survive formatting:
 * "XXXX-XXXX" and its lower case normalize back to the same code. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oauth/oauth_int.h"

/* The rule, read plainly: 1 when in is a user code, with the code in out. */
static int reference(const char *in, char out[OAUTH_USER_CODE_LEN + 1])
{
    static const char alphabet[] = OAUTH_USER_CODE_ALPHABET;
    size_t len = strlen(in), n = 0;
    if (len > OAUTH_USER_CODE_INPUT_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '-' || c == ' ')
            continue;
        unsigned char up = c >= 'a' && c <= 'z' ? (unsigned char)(c - 32) : c;
        int known = 0;
        for (size_t k = 0; k < sizeof(alphabet) - 1; k++)
            known |= alphabet[k] == up;
        if (!known || n == OAUTH_USER_CODE_LEN)
            return 0;
        out[n++] = (char)up;
    }
    out[n] = '\0';
    return n == OAUTH_USER_CODE_LEN;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = strndup((const char *)data, size);
    char got[OAUTH_USER_CODE_LEN + 1], want[OAUTH_USER_CODE_LEN + 1];
    char shown[OAUTH_USER_CODE_LEN + 2], again[OAUTH_USER_CODE_LEN + 1];
    if (in == NULL)
        return 0;
    int r = oauth_user_code_normalize(in, got);
    int ok = reference(in, want);
    if (r != 0 && r != ERR_INVALID)
        __builtin_trap();
    if ((r == 0) != ok)
        __builtin_trap();
    if (r != 0) {
        if (got[0] != '\0') /* refused: nothing half-written */
            __builtin_trap();
    } else {
        if (strcmp(got, want) != 0)
            __builtin_trap();
        oauth_user_code_format(got, shown);
        if (strlen(shown) != OAUTH_USER_CODE_LEN + 1 || shown[OAUTH_USER_CODE_LEN / 2] != '-')
            __builtin_trap();
        if (oauth_user_code_normalize(shown, again) != 0 || strcmp(again, got) != 0)
            __builtin_trap();
        for (char *p = shown; *p != '\0'; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p + 32);
        if (oauth_user_code_normalize(shown, again) != 0 || strcmp(again, got) != 0)
            __builtin_trap();
    }
    free(in);
    return 0;
}
