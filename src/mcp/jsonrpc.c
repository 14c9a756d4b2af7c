#include "mcp/jsonrpc.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/utf8.h"
#include "core/xmalloc.h"

/* One pass over the text: validate UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF)
 * and count nesting outside strings. */
int jsonrpc_scan(const char *buf, size_t len, unsigned max_depth, size_t *offset)
{
    const unsigned char *p = (const unsigned char *)buf;
    unsigned depth = 0;
    bool in_str = false;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c < 0x80) {
            if (in_str) {
                if (c == '\\')
                    i++; /* skip the escaped byte; escapes are ASCII */
                else if (c == '"')
                    in_str = false;
            } else if (c == '"') {
                in_str = true;
            } else if (c == '[' || c == '{') {
                if (++depth > max_depth) {
                    if (offset)
                        *offset = i;
                    return ERR_DEPTH;
                }
            } else if ((c == ']' || c == '}') && depth > 0) {
                depth--;
            }
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0)
            goto bad;
        i += n;
    }
    return 0;
bad:
    if (offset)
        *offset = i;
    return ERR_UTF8;
}

static void failf(struct jsonrpc_fail *f, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void failf(struct jsonrpc_fail *f, int code, const char *fmt, ...)
{
    va_list ap;
    f->code = code;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof(f->message), fmt, ap);
    va_end(ap);
}

int jsonrpc_parse(const char *buf, size_t len, size_t max_len, unsigned max_depth, json_t **out,
                  struct jsonrpc_fail *fail)
{
    size_t off = 0;
    json_error_t jerr;
    int r;

    *out = NULL;
    if (len > max_len) {
        failf(fail, JSONRPC_INVALID_REQUEST, "message of %zu bytes exceeds the limit of %zu bytes",
              len, max_len);
        return ERR_TOOBIG;
    }
    if ((r = jsonrpc_scan(buf, len, max_depth, &off)) != 0) {
        if (r == ERR_UTF8)
            failf(fail, JSONRPC_PARSE_ERROR, "Parse error: invalid UTF-8 at byte %zu", off);
        else
            failf(fail, JSONRPC_INVALID_REQUEST,
                  "message nests deeper than %u levels (at byte %zu)", max_depth, off);
        return r;
    }
    /* JSON_DISABLE_EOF_CHECK is not used: trailing garbage is an error. NUL bytes inside strings
     * are allowed by JSON (\u0000) but not raw; jansson rejects them. */
    json_t *j = json_loadb(buf, len, JSON_DECODE_ANY, &jerr);
    if (j == NULL) {
        failf(fail, JSONRPC_PARSE_ERROR, "Parse error: %s at line %d, column %d", jerr.text,
              jerr.line, jerr.column);
        return ERR_PARSE;
    }
    if (!json_is_object(j) && !json_is_array(j)) {
        json_decref(j);
        failf(fail, JSONRPC_INVALID_REQUEST,
              "Invalid Request: a message must be a JSON object (or a batch array)");
        return ERR_PARSE;
    }
    *out = j;
    return 0;
}

static bool id_usable(const json_t *id)
{
    return json_is_string(id) || json_is_integer(id);
}

int jsonrpc_classify(json_t *msg, enum jsonrpc_kind *kind, json_t **id, struct jsonrpc_fail *fail)
{
    *id = NULL;
    if (!json_is_object(msg)) {
        failf(fail, JSONRPC_INVALID_REQUEST, "Invalid Request: a message must be a JSON object");
        return ERR_INVALID;
    }
    json_t *jid = json_object_get(msg, "id");
    if (id_usable(jid))
        *id = jid;
    json_t *ver = json_object_get(msg, "jsonrpc");
    if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0) {
        failf(fail, JSONRPC_INVALID_REQUEST, "Invalid Request: \"jsonrpc\" must be \"2.0\"");
        return ERR_INVALID;
    }
    json_t *method = json_object_get(msg, "method");
    if (method != NULL) {
        if (!json_is_string(method) || json_string_length(method) == 0) {
            failf(fail, JSONRPC_INVALID_REQUEST,
                  "Invalid Request: \"method\" must be a non-empty string");
            return ERR_INVALID;
        }
        json_t *params = json_object_get(msg, "params");
        if (params != NULL && !json_is_object(params)) {
            /* MCP params are always objects; JSON-RPC positional arrays are not used. */
            failf(fail, JSONRPC_INVALID_REQUEST, "Invalid Request: \"params\" must be an object");
            return ERR_INVALID;
        }
        if (jid == NULL) {
            *kind = JSONRPC_NOTIFICATION;
            return 0;
        }
        if (!id_usable(jid)) {
            failf(fail, JSONRPC_INVALID_REQUEST,
                  "Invalid Request: \"id\" must be a string or an integer (null is not allowed)");
            return ERR_INVALID;
        }
        *kind = JSONRPC_REQUEST;
        return 0;
    }
    json_t *result = json_object_get(msg, "result");
    json_t *error = json_object_get(msg, "error");
    if (result != NULL || error != NULL) {
        if (result != NULL && error != NULL) {
            failf(fail, JSONRPC_INVALID_REQUEST,
                  "Invalid Request: a response carries \"result\" or \"error\", not both");
            return ERR_INVALID;
        }
        if (error != NULL && !json_is_object(error)) {
            failf(fail, JSONRPC_INVALID_REQUEST, "Invalid Request: \"error\" must be an object");
            return ERR_INVALID;
        }
        if (!id_usable(jid) && !(error != NULL && json_is_null(jid))) {
            failf(fail, JSONRPC_INVALID_REQUEST,
                  "Invalid Request: a response needs the string or integer \"id\" of its request");
            return ERR_INVALID;
        }
        *kind = JSONRPC_RESPONSE;
        return 0;
    }
    failf(fail, JSONRPC_INVALID_REQUEST,
          "Invalid Request: a message needs \"method\" (request or notification) or "
          "\"result\"/\"error\" (response)");
    return ERR_INVALID;
}

json_t *jsonrpc_result(json_t *id, json_t *result)
{
    return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
}

json_t *jsonrpc_error(json_t *id, int code, const char *message, json_t *data)
{
    json_t *err = json_pack("{s:i, s:s}", "code", code, "message", message);
    if (data != NULL)
        json_object_set_new(err, "data", data);
    /* JSON-RPC 2.0 says "id": null when the id is unknown, but every MCP schema types the id
     * as a string or an integer and lets it be omitted (2025-11-25 on): omit it. */
    json_t *m = json_pack("{s:s, s:o}", "jsonrpc", "2.0", "error", err);
    if (id != NULL)
        json_object_set(m, "id", id);
    return m;
}

json_t *jsonrpc_errorf(json_t *id, int code, json_t *data, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return jsonrpc_error(id, code, msg, data);
}

json_t *jsonrpc_request(json_t *id, const char *method, json_t *params)
{
    json_t *m = json_pack("{s:s, s:O, s:s}", "jsonrpc", "2.0", "id", id, "method", method);
    if (params != NULL)
        json_object_set_new(m, "params", params);
    return m;
}

json_t *jsonrpc_notification(const char *method, json_t *params)
{
    json_t *m = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);
    if (params != NULL)
        json_object_set_new(m, "params", params);
    return m;
}

char *jsonrpc_id_key(const json_t *id)
{
    if (json_is_string(id))
        return xasprintf("s:%s", json_string_value(id));
    if (json_is_integer(id))
        return xasprintf("n:%" JSON_INTEGER_FORMAT, json_integer_value(id));
    return xstrdup("?");
}
