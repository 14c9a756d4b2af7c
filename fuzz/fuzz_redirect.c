/* libFuzzer target: redirect URI matching. The input is "<registered URI>\n<requested URI>";
 * oauth_redirect_uri_allowed must never crash, and must allow an exact match. A port-agnostic
 * match is only ever granted to http://127.0.0.1 and http://[::1] registrations. */
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
    if (nl == NULL || memchr(p, '\0', size) != NULL)
        return 0;
    char *reg = strndup(p, (size_t)(nl - p));
    char *uri = strndup(nl + 1, size - (size_t)(nl - p) - 1);
    json_t *s = json_string(reg); /* NULL for invalid UTF-8: jansson would refuse it anyway */
    if (s != NULL) {
        struct store_client c = {0};
        c.metadata = json_pack("{s:[o]}", "redirect_uris", s);
        bool ok = oauth_redirect_uri_allowed(&c, uri);
        if (strcmp(reg, uri) == 0 && !ok)
            __builtin_trap();
        if (ok && strcmp(reg, uri) != 0 && strncmp(reg, "http://127.0.0.1", 16) != 0 &&
            strncmp(reg, "http://[::1]", 12) != 0)
            __builtin_trap();
        if (ok && strchr(uri, '#') != NULL && strcmp(reg, uri) != 0)
            __builtin_trap();
        json_decref(c.metadata);
    }
    free(reg);
    free(uri);
    return 0;
}
