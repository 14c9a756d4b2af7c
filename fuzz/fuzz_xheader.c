/* libFuzzer target: client/mcpc's SEP-2243 x-mcp-header mirroring. The input is a tool's
 * input schema, a NUL byte, and a tools/call's arguments (both JSON; without the NUL there
 * are no arguments). Annotations are either invalid (NULL, with a reason, whatever the
 * arguments) or give header lines "Mcp-Param-<token>: <value>", names unique regardless of
 * case, values of visible ASCII and inner spaces that a server decodes back to a string.
 * Each part is also used as a header value, which must survive the trip exactly. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/mcpc.h"
#include "core/crypto.h"

/* What a server recovers from a header value: the strict base64 inside =?base64?...?=, or
 * the value trimmed. Traps on a wrapper that does not decode. */
static char *server_view(const char *h)
{
    size_t n = strlen(h);
    if (n >= 11 && strncmp(h, "=?base64?", 9) == 0 && strcmp(h + n - 2, "?=") == 0) {
        unsigned char *out = NULL;
        size_t outlen = 0;
        if (b64_decode_strict(h + 9, n - 11, &out, &outlen) != 0)
            __builtin_trap();
        char *s = malloc(outlen + 1);
        if (s == NULL)
            __builtin_trap();
        memcpy(s, out, outlen);
        s[outlen] = '\0';
        free(out);
        return s;
    }
    while (*h == ' ' || *h == '\t')
        h++;
    n = strlen(h);
    while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    return strndup(h, n);
}

static void check_value(const char *v)
{
    size_t n = strlen(v);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] >= 0x7f)
            __builtin_trap();
    if (n > 0 && (v[0] == ' ' || v[n - 1] == ' '))
        __builtin_trap();
}

static void roundtrip(const char *s)
{
    char *v = mcpc_header_value(s);
    if (v == NULL)
        __builtin_trap();
    check_value(v);
    char *back = server_view(v);
    if (strcmp(back, s) != 0)
        __builtin_trap();
    free(back);
    free(v);
}

static bool token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void check_headers(json_t *h)
{
    size_t i, j;
    json_t *line, *other;
    if (!json_is_array(h))
        __builtin_trap();
    json_array_foreach (h, i, line) {
        const char *s = json_string_value(line);
        if (s == NULL || strncmp(s, "Mcp-Param-", 10) != 0)
            __builtin_trap();
        const char *name = s + 10, *colon = strstr(name, ": ");
        if (colon == NULL || colon == name)
            __builtin_trap();
        for (const char *p = name; p < colon; p++)
            if (!token_char((unsigned char)*p))
                __builtin_trap();
        check_value(colon + 2);
        char *back = server_view(colon + 2);
        free(back);
        size_t nl = (size_t)(colon - s);
        json_array_foreach (h, j, other) {
            const char *o = json_string_value(other);
            if (j != i && strncasecmp(o, s, nl) == 0 && o[nl] == ':')
                __builtin_trap();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t slen = nul != NULL ? (size_t)(nul - data) : size;
    const char *a = nul != NULL ? (const char *)nul + 1 : NULL;
    size_t alen = nul != NULL ? size - slen - 1 : 0;

    /* each part as a header value (up to its first NUL) */
    char *s = strndup((const char *)data, slen);
    roundtrip(s);
    free(s);
    if (a != NULL) {
        s = strndup(a, alen);
        roundtrip(s);
        free(s);
    }

    json_t *schema = json_loadb((const char *)data, slen, 0, NULL);
    if (schema == NULL)
        return 0;
    json_t *args = a != NULL ? json_loadb(a, alen, JSON_DECODE_ANY, NULL) : NULL;
    char why[300];
    why[0] = '\0';
    json_t *h = mcpc_param_headers(schema, args, why, sizeof why);
    char why2[300];
    json_t *h0 = mcpc_param_headers(schema, NULL, why2, sizeof why2);
    if ((h == NULL) != (h0 == NULL))
        __builtin_trap();
    if (h == NULL) {
        if (why[0] == '\0')
            __builtin_trap();
    } else {
        check_headers(h);
        if (json_array_size(h0) != 0)
            __builtin_trap();
    }
    json_decref(h);
    json_decref(h0);
    json_decref(args);
    json_decref(schema);
    return 0;
}
