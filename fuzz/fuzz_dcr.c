/* libFuzzer target: RFC 7591 client metadata validation. The input is parsed as JSON; an object
 * is checked as a DCR request and as a client ID metadata document. Accepted metadata must have
 * its defaults filled in, and a reason must fit an OAuth error_description. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "oauth/oauth_int.h"

#define CIMD_URL "https://client.example/oauth/metadata.json"

static void check(json_t *doc, const char *cimd)
{
    json_t *m = json_deep_copy(doc);
    char why[300] = "";
    int r = oauth_client_metadata_check(m, cimd, why, sizeof(why));
    if (r == 0) {
        const char *method = json_string_value(json_object_get(m, "token_endpoint_auth_method"));
        if (method == NULL || !json_is_array(json_object_get(m, "grant_types")) ||
            !json_is_array(json_object_get(m, "response_types")))
            __builtin_trap();
        if (cimd != NULL && strcmp(method, "none") != 0)
            __builtin_trap();
    } else {
        if (r != ERR_INVALID || why[0] == '\0')
            __builtin_trap();
        for (const char *p = why; *p; p++) {
            if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
                __builtin_trap();
        }
    }
    json_decref(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t err;
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &err);
    if (json_is_object(doc)) {
        check(doc, NULL);
        check(doc, CIMD_URL);
    }
    json_decref(doc);
    return 0;
}
