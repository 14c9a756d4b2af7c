/* JSON-RPC 2.0 framing: the first thing untrusted bytes meet. Parsing checks size, UTF-8 and
 * nesting before jansson sees the text, then classifies the message. Errors are data: a code
 * and a message that says what was wrong. */
#ifndef MCPGATE_MCP_JSONRPC_H
#define MCPGATE_MCP_JSONRPC_H

#include <jansson.h>
#include <stddef.h>

#include "core/err.h"

#define JSONRPC_PARSE_ERROR -32700
#define JSONRPC_INVALID_REQUEST -32600
#define JSONRPC_METHOD_NOT_FOUND -32601
#define JSONRPC_INVALID_PARAMS -32602
#define JSONRPC_INTERNAL_ERROR -32603
#define MCP_RESOURCE_NOT_FOUND -32002  /* legacy era; -32602 in 2026-07-28 */
#define MCP_HEADER_MISMATCH -32020
#define MCP_MISSING_CAPABILITY -32021
#define MCP_UNSUPPORTED_VERSION -32022

enum jsonrpc_kind { JSONRPC_REQUEST, JSONRPC_NOTIFICATION, JSONRPC_RESPONSE };

struct jsonrpc_fail {
    int code;          /* JSON-RPC error code */
    char message[200]; /* what was wrong */
};

/* Checks that buf is UTF-8 and nests at most max_depth arrays/objects (strings are skipped).
 * Returns 0, ERR_UTF8 or ERR_DEPTH; *offset (may be NULL) is the byte where it failed. */
int jsonrpc_scan(const char *buf, size_t len, unsigned max_depth, size_t *offset) ERR_WARN_UNUSED;

/* Parses one JSON text (a message or a batch array). On failure returns ERR_TOOBIG, ERR_UTF8,
 * ERR_DEPTH or ERR_PARSE and fills *fail with -32700/-32600 and a message. */
int jsonrpc_parse(const char *buf, size_t len, size_t max_len, unsigned max_depth,
                  json_t **out /* OUT */, struct jsonrpc_fail *fail /* OUT */) ERR_WARN_UNUSED;

/* Classifies one message object. Returns 0 with *kind set, or ERR_INVALID with *fail (-32600,
 * what is wrong). A usable id (string or integer) is returned borrowed in *id even for an
 * invalid message, so the error can name it; otherwise *id is NULL. */
int jsonrpc_classify(json_t *msg, enum jsonrpc_kind *kind /* OUT */, json_t **id /* OUT */,
                     struct jsonrpc_fail *fail /* OUT */) ERR_WARN_UNUSED;

/* Builders; each returns a new message. id is borrowed (copied), result/params/data stolen. */
json_t *jsonrpc_result(json_t *id, json_t *result);
json_t *jsonrpc_error(json_t *id, int code, const char *message, json_t *data);
json_t *jsonrpc_errorf(json_t *id, int code, json_t *data, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
json_t *jsonrpc_request(json_t *id, const char *method, json_t *params);
json_t *jsonrpc_notification(const char *method, json_t *params);

/* A stable string key for an id ("s:abc" or "n:42"), for tables; caller frees. */
char *jsonrpc_id_key(const json_t *id);

#endif
