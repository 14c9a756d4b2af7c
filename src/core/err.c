#include "core/err.h"

const char *err_str(int code)
{
    switch (code) {
    case ERR_OK: return "success";
    case ERR_INTERNAL: return "internal error";
    case ERR_NOMEM: return "out of memory";
    case ERR_INVALID: return "invalid input";
    case ERR_TOOBIG: return "too big";
    case ERR_PARSE: return "malformed input";
    case ERR_NOTFOUND: return "not found";
    case ERR_EXISTS: return "already exists";
    case ERR_IO: return "input/output error";
    case ERR_EOF: return "end of input";
    case ERR_CRYPTO: return "cryptographic operation failed";
    case ERR_INTEGRITY: return "integrity check failed";
    case ERR_UTF8: return "invalid UTF-8";
    case ERR_DEPTH: return "nesting too deep";
    case ERR_CANCELLED: return "cancelled";
    case ERR_TIMEOUT: return "timed out";
    case ERR_INPUT_REQUIRED: return "client input required";
    case ERR_UNSUPPORTED: return "unsupported";
    case ERR_BADSTATE: return "wrong state";
    case ERR_USAGE: return "usage error";
    case ERR_DEFERRED: return "answered later";
    case ERR_WOULDBLOCK: return "would block";
    }
    return "unknown error";
}
