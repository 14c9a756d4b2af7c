/* libFuzzer target: the client's authorization discovery parsers. Each input, as a C string,
 * is parsed as a WWW-Authenticate value and used as a server URL and as an issuer; every URL
 * built must be an http(s) URL of printable ASCII, and a parsed challenge must be Bearer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/discovery.h"

static void check_url(const char *u)
{
    if (u == NULL)
        __builtin_trap();
    if (strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0)
        __builtin_trap();
    for (const char *p = u; *p != '\0'; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            __builtin_trap();
}

static void check_urls(json_t *arr)
{
    size_t i;
    json_t *v;
    if (arr == NULL)
        return;
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        __builtin_trap();
    json_array_foreach (arr, i, v) {
        check_url(json_string_value(v));
    }
    json_decref(arr);
}

static void as_url(const char *s)
{
    check_urls(discovery_prm_urls(s));
    check_urls(discovery_as_urls(s));
    char *c = discovery_canonical_resource(s);
    if (c != NULL)
        check_url(c);
    free(c);
    json_t *legacy = discovery_legacy_fallback(s);
    if (legacy != NULL) {
        /* The synthetic metadata passes the checks (http only for a loopback host). */
        char why[256];
        const char *iss = json_string_value(json_object_get(legacy, "issuer"));
        check_url(iss);
        if (strncmp(iss, "https://", 8) == 0 &&
            discovery_as_check(legacy, iss, why, sizeof why) != 0)
            __builtin_trap();
    }
    json_decref(legacy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';

    struct www_auth w;
    if (www_auth_parse(s, &w) == 0) {
        if (w.scheme == NULL || strcasecmp(w.scheme, "Bearer") != 0)
            __builtin_trap();
        if (w.resource_metadata != NULL)
            as_url(w.resource_metadata);
        char *scope = discovery_scope(w.scope, NULL, w.error);
        free(scope);
    }
    www_auth_clear(&w);
    as_url(s);
    free(s);
    return 0;
}
