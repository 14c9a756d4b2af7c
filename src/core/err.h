/* One table of error codes for the whole library (OpenSSH ssherr.h). Fallible functions
 * return 0 on success or one of these negative codes. */
#ifndef MCPGATE_CORE_ERR_H
#define MCPGATE_CORE_ERR_H

#define ERR_OK 0
#define ERR_INTERNAL -1      /* a bug or an impossible state */
#define ERR_NOMEM -2         /* allocation failed (xmalloc aborts instead; kept for APIs) */
#define ERR_INVALID -3       /* input failed validation (details go elsewhere) */
#define ERR_TOOBIG -4        /* a size or count cap was exceeded */
#define ERR_PARSE -5         /* malformed syntax (JSON, form, header) */
#define ERR_NOTFOUND -6      /* no such object */
#define ERR_EXISTS -7        /* object already exists */
#define ERR_IO -8            /* read/write failed (errno kept by the caller) */
#define ERR_EOF -9           /* end of input */
#define ERR_CRYPTO -10       /* a crypto primitive failed */
#define ERR_INTEGRITY -11    /* a MAC or signature did not verify */
#define ERR_UTF8 -12         /* input is not valid UTF-8 */
#define ERR_DEPTH -13        /* nesting too deep */
#define ERR_CANCELLED -14    /* the operation was cancelled */
#define ERR_TIMEOUT -15      /* the operation timed out */
#define ERR_INPUT_REQUIRED -16 /* MRTR: the handler needs client input before it can finish */
#define ERR_UNSUPPORTED -17  /* the peer or configuration does not support this */
#define ERR_BADSTATE -18       /* called in the wrong state */
#define ERR_USAGE -19        /* bad command-line or API usage */
#define ERR_DEFERRED -20     /* a tool handler will answer later (mcp_ctx_finish) */
#define ERR_WOULDBLOCK -21   /* a handler run inline must wait: run it on the worker pool */

#define ERR_WARN_UNUSED __attribute__((warn_unused_result))

const char *err_str(int code);

#endif
