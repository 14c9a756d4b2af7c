/* The client side's HTTP: libcurl behind a small interface (this pair is the only includer of
 * curl.h on the client side). Two ways to use it:
 *
 *  - hc_fetch(): one blocking request with its whole response in memory (discovery documents,
 *    token and registration requests). Any thread.
 *  - struct hc_multi + struct hc_xfer: many transfers on one thread's event loop (the MCP
 *    transport: POSTs answered with SSE streams, GET streams), with callbacks for the
 *    response's headers, each body chunk as it arrives, and the end.
 *
 * Every request gets the same policy from struct hc_opts: TLS verified (system CAs plus
 * --cacert), plain http only to loopback unless allow_http, proxies from the environment
 * (HTTPS_PROXY, HTTP_PROXY and http_proxy, ALL_PROXY, NO_PROXY), no redirects followed,
 * bounded header and body sizes. */
#ifndef MCPGATE_CLIENT_HTTP_H
#define MCPGATE_CLIENT_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

struct hc_opts {
    const char *cacert;     /* PEM file of extra CA certificates (added to the system ones) */
    bool allow_http;        /* plain http to any host; otherwise only to loopback */
    long connect_timeout_ms; /* 0: 10 s */
    const char *user_agent; /* NULL: "mcpgate/VERSION" */
};

#define HC_MAX_HEADERS 100
#define HC_HEADERS_BYTES (64 * 1024)

/* The response headers of the final response (those of a 1xx are dropped). Names as sent. */
struct hc_headers {
    size_t n;
    char *name[HC_MAX_HEADERS];  /* owned */
    char *value[HC_MAX_HEADERS]; /* owned, surrounding whitespace removed */
    size_t bytes;
};
/* The first header of that name (case-insensitive), or NULL. */
const char *hc_header(const struct hc_headers *h, const char *name);
void hc_headers_clear(struct hc_headers *h);

struct hc_req {
    const char *method;          /* "GET", "POST", "DELETE" */
    const char *url;
    const char *const *headers;  /* "Name: value" strings, NULL-terminated; may be NULL */
    const char *body;            /* may be NULL */
    size_t body_len;
    long timeout_ms;             /* whole transfer; 0: none (streams) */
    size_t max_body;             /* hc_fetch: ERR_TOOBIG past it; 0: 4 MiB */
};

struct hc_resp {
    long status;                 /* 0 when no response arrived */
    struct hc_headers headers;
    struct buf body;
    char error[256];             /* what went wrong, in words, when hc_fetch fails */
};

void hc_resp_init(struct hc_resp *r);
void hc_resp_free(struct hc_resp *r);

/* libcurl's global initialisation, once per process (called by everything below). */
void hc_global_init(void);

/* Checks a URL against the policy before any request: absolute http(s), printable ASCII, no
 * userinfo, http only to loopback unless allow_http. 0, or ERR_INVALID with a reason. */
int hc_url_check(const struct hc_opts *o, const char *url, char *why, size_t whylen)
    ERR_WARN_UNUSED;
/* True for 127.0.0.0/8, ::1 and "localhost" hosts of an http(s) URL. */
bool hc_url_is_loopback(const char *url);

/* One request, blocking. 0 when a response arrived (any status: check resp->status); otherwise
 * ERR_IO (connection, TLS, DNS), ERR_TIMEOUT, ERR_TOOBIG (body past max_body) or ERR_INVALID
 * (URL refused by the policy), with resp->error set. */
int hc_fetch(const struct hc_opts *o, const struct hc_req *req, struct hc_resp *resp)
    ERR_WARN_UNUSED;

/* ---- asynchronous transfers on an event loop ---- */

struct hc_xfer;
struct hc_xfer_cbs {
    /* The final response's status and headers, once, before any data. */
    void (*on_headers)(void *arg, struct hc_xfer *x, long status, const struct hc_headers *h);
    /* A chunk of the body; return non-zero to abort the transfer (on_done then gets
     * ERR_CANCELLED). */
    int (*on_data)(void *arg, struct hc_xfer *x, const char *p, size_t n);
    /* The end: err 0 when the response completed, else ERR_IO / ERR_TIMEOUT / ERR_CANCELLED
     * with why. After this call the transfer is gone (freed by the loop). */
    void (*on_done)(void *arg, struct hc_xfer *x, int err, const char *why);
};

struct hc_multi;
struct hc_multi *hc_multi_new(const struct hc_opts *o);
/* Aborts every transfer (their on_done runs with ERR_CANCELLED) and frees. NULL is a no-op. */
void hc_multi_free(struct hc_multi *m);
/* Starts a transfer (copies everything in req). *out (may be NULL) names it for hc_xfer_abort
 * until its on_done. Loop thread only. */
int hc_multi_start(struct hc_multi *m, const struct hc_req *req, const struct hc_xfer_cbs *cbs,
                   void *arg, struct hc_xfer **out /* OUT */) ERR_WARN_UNUSED;
/* Aborts a running transfer: its on_done is called (from here) with ERR_CANCELLED. */
void hc_xfer_abort(struct hc_multi *m, struct hc_xfer *x);
/* Waits up to timeout_ms for network activity, for extra_fd (>= 0) to become readable, or for
 * hc_multi_wakeup; runs the callbacks of whatever happened. Returns 1 when extra_fd is
 * readable, else 0. Loop thread only. */
int hc_multi_poll(struct hc_multi *m, int extra_fd, int timeout_ms);
/* Makes a hc_multi_poll in progress return early. Any thread. */
void hc_multi_wakeup(struct hc_multi *m);
/* Transfers in progress. */
size_t hc_multi_count(const struct hc_multi *m);

#endif
