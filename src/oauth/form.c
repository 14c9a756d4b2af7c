/* application/x-www-form-urlencoded, strictly (see form.h). The reason written to whybuf may be
 * shown to a client as an OAuth error_description, so it stays within what RFC 6749 allows
 * there (printable ASCII without '"' and '\'): parameter names are quoted in a sanitised,
 * truncated form. */
#include "oauth/form.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/reason.h"
#include "core/utf8.h"
#include "core/xmalloc.h"

/* OAuth parameter names are short; a long one is an attack or a mistake. */
#define FORM_MAX_NAME 256
/* Longest parameter name quoted in a reason before it is cut with "...". */
#define WHY_NAME_MAX 40

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes src[0..n) ('+' is a space, %XX a byte) into a new NUL-terminated string. Returns
 * ERR_PARSE on a '%' not followed by two hex digits, ERR_TOOBIG past max decoded bytes. */
static int decode(const char *src, size_t n, size_t max, char **out /* OUT */,
                  size_t *outlen /* OUT */)
{
    *out = NULL;
    char *d = xmalloc(n + 1);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = i + 2 < n ? hexval((unsigned char)src[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)src[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                free(d);
                return ERR_PARSE;
            }
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        if (j == max) {
            free(d);
            return ERR_TOOBIG;
        }
        d[j++] = (char)c;
    }
    d[j] = '\0';
    *out = d;
    *outlen = j;
    return 0;
}

/* Checks decoded text: well-formed UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF), no NUL, no control characters (C0, DEL, C1) except tab, CR and LF when
 * allow_newlines. Returns NULL or what is wrong. */
static const char *check_text(const char *text, size_t n, bool allow_newlines)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (c == 0)
                return "contains a NUL byte";
            bool space = c == '\t' || c == '\r' || c == '\n';
            if ((c < 0x20 && !(allow_newlines && space)) || c == 0x7f)
                return "contains a control character";
            i++;
            continue;
        }
        uint32_t cp;
        size_t len = utf8_decode(s + i, n - i, &cp);
        if (len == 0)
            return "is not valid UTF-8";
        if (cp >= 0x80 && cp <= 0x9f)
            return "contains a control character";
        i += len;
    }
    return NULL;
}

int form_parse(const char *s, size_t len, json_t **out, char *whybuf, size_t whylen)
{
    int r = ERR_INTERNAL;
    json_t *obj = json_object();
    char *name = NULL, *value = NULL;
    size_t nlen, vlen, nparams = 0;
    char shown[WHY_NAME_MAX + 4];
    const char *bad;

    *out = NULL;
    reason_set(whybuf, whylen, "%s", "");
    if (obj == NULL)
        goto out;
    const char *p = len > 0 ? s : NULL, *end = len > 0 ? s + len : NULL;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp != NULL ? amp : end;
        if (pe == p) { /* "&&", a leading or a trailing '&' */
            p = pe + 1;
            continue;
        }
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ne = eq != NULL ? eq : pe;
        const char *vs = eq != NULL ? eq + 1 : pe;

        if (++nparams > FORM_MAX_PARAMS) {
            r = ERR_TOOBIG;
            reason_set(whybuf, whylen, "more than %d parameters", FORM_MAX_PARAMS);
            goto out;
        }
        if (ne == p) {
            r = ERR_PARSE;
            reason_set(whybuf, whylen, "a parameter has an empty name");
            goto out;
        }
        if ((r = decode(p, (size_t)(ne - p), FORM_MAX_NAME, &name, &nlen)) != 0) {
            if (r == ERR_TOOBIG)
                reason_set(whybuf, whylen, "a parameter name is longer than %d bytes",
                           FORM_MAX_NAME);
            else
                reason_set(whybuf, whylen, "invalid %%-escape in a parameter name");
            goto out;
        }
        if ((bad = check_text(name, nlen, false)) != NULL) {
            r = ERR_PARSE;
            reason_set(whybuf, whylen, "a parameter name %s", bad);
            goto out;
        }
        reason_quote(name, WHY_NAME_MAX, shown);
        if (json_object_get(obj, name) != NULL) {
            r = ERR_EXISTS;
            reason_set(whybuf, whylen, "parameter '%s' appears twice", shown);
            goto out;
        }
        if ((r = decode(vs, (size_t)(pe - vs), FORM_MAX_VALUE, &value, &vlen)) != 0) {
            if (r == ERR_TOOBIG)
                reason_set(whybuf, whylen, "parameter '%s' is longer than %d bytes", shown,
                    FORM_MAX_VALUE);
            else
                reason_set(whybuf, whylen, "invalid %%-escape in '%s'", shown);
            goto out;
        }
        if ((bad = check_text(value, vlen, true)) != NULL) {
            r = ERR_PARSE;
            reason_set(whybuf, whylen, "parameter '%s' %s", shown, bad);
            goto out;
        }
        /* Both were checked above, so jansson need not check them again. */
        if (json_object_set_new_nocheck(obj, name, json_stringn_nocheck(value, vlen)) != 0) {
            r = ERR_INTERNAL;
            goto out;
        }
        free(name);
        free(value);
        name = value = NULL;
        if (pe == end)
            break;
        p = pe + 1;
    }
    *out = obj;
    obj = NULL;
    r = 0;
out:
    free(name);
    free(value);
    json_decref(obj);
    return r;
}

char *form_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    if (s == NULL)
        s = "";
    size_t n = strlen(s);
    char *e = xmalloc(3 * n + 1), *d = e;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        unsigned char c = *p;
        bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                          (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
        if (unreserved) {
            *d++ = (char)c;
        } else {
            *d++ = '%';
            *d++ = hex[c >> 4];
            *d++ = hex[c & 0x0f];
        }
    }
    *d = '\0';
    return e;
}
