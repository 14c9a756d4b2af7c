/* libFuzzer target: client/oauthc's token endpoint response parser. The input is a response
 * body, loaded as the client loads it (JSON, duplicates refused) and parsed at a time taken
 * from its length. A document accepted for storage holds exactly: access_token (1-16 KiB of
 * visible ASCII), obtained_at (now), and optionally refresh_token (the same alphabet),
 * expires_at (now to now + 10 years) and scope (a string); the response is not modified. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/oauthc.h"

static void check_token(json_t *t)
{
    const char *s = json_string_value(t);
    if (s == NULL)
        __builtin_trap();
    size_t n = strlen(s);
    if (n == 0 || n > 16384 || n != json_string_length(t))
        __builtin_trap();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *resp = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (resp == NULL)
        return 0;
    long long now = 1700000000LL + (long long)(size % 1000) * 86400;
    char *before = json_dumps(resp, JSON_COMPACT | JSON_ENCODE_ANY);
    json_t *out = (json_t *)1;
    char why[300];
    why[0] = '\0';
    int r = oauthc_token_parse(resp, now, &out, why, sizeof why);
    if (r != 0) {
        if (out != NULL || why[0] == '\0' || (r != ERR_PARSE && r != ERR_INVALID))
            __builtin_trap();
    } else {
        if (!json_is_object(out))
            __builtin_trap();
        const char *k;
        json_t *v;
        json_object_foreach (out, k, v) {
            if (strcmp(k, "access_token") == 0 || strcmp(k, "refresh_token") == 0) {
                check_token(v);
                if (!json_equal(v, json_object_get(resp, k)))
                    __builtin_trap();
            } else if (strcmp(k, "obtained_at") == 0) {
                if (!json_is_integer(v) || json_integer_value(v) != now)
                    __builtin_trap();
            } else if (strcmp(k, "expires_at") == 0) {
                if (!json_is_integer(v) || json_integer_value(v) < now ||
                    json_integer_value(v) > now + 10LL * 365 * 86400)
                    __builtin_trap();
            } else if (strcmp(k, "scope") == 0) {
                if (!json_is_string(v) || !json_equal(v, json_object_get(resp, "scope")))
                    __builtin_trap();
            } else {
                __builtin_trap();
            }
        }
        if (json_object_get(out, "access_token") == NULL ||
            json_object_get(out, "obtained_at") == NULL)
            __builtin_trap();
        json_decref(out);
    }
    char *after = json_dumps(resp, JSON_COMPACT | JSON_ENCODE_ANY);
    if (before == NULL || after == NULL || strcmp(before, after) != 0)
        __builtin_trap();
    free(before);
    free(after);
    json_decref(resp);
    return 0;
}
