/* libFuzzer target: form_parse on request bodies and query strings. Whatever parses must
 * survive a round trip: each value, re-encoded with form_encode and parsed as "k=<encoded>",
 * comes back byte for byte. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "oauth/form.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *obj;
    char why[160];
    int r = form_parse((const char *)data, size, &obj, why, sizeof why);
    if (r != 0) {
        /* Errors are the documented ones, with a reason that fits. */
        if (r != ERR_PARSE && r != ERR_EXISTS && r != ERR_TOOBIG)
            __builtin_trap();
        if (why[0] == '\0' || strlen(why) >= sizeof why)
            __builtin_trap();
        return 0;
    }
    if (json_object_size(obj) > FORM_MAX_PARAMS)
        __builtin_trap();
    const char *name;
    json_t *v;
    json_object_foreach(obj, name, v)
    {
        const char *value = json_string_value(v);
        if (name[0] == '\0' || value == NULL || json_string_length(v) > FORM_MAX_VALUE ||
            strlen(value) != json_string_length(v))
            __builtin_trap();
        char *enc = form_encode(value);
        char *body = xasprintf("k=%s", enc);
        json_t *again;
        if (form_parse(body, strlen(body), &again, why, sizeof why) != 0)
            __builtin_trap();
        const char *back = json_string_value(json_object_get(again, "k"));
        if (json_object_size(again) != 1 || back == NULL || strcmp(back, value) != 0)
            __builtin_trap();
        json_decref(again);
        free(body);
        free(enc);
    }
    json_decref(obj);
    return 0;
}
