/* libcurl for the client side: one policy for every request (see http.h), a blocking fetch and
 * an event loop of transfers. */
#include "client/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/reason.h"
#include "core/xmalloc.h"

#define FETCH_BODY_DEFAULT (4u << 20)
#define CONNECT_TIMEOUT_DEFAULT 10000L
#define URL_MAX 8192

struct hc_xfer {
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;             /* owned copy of the request body */
    struct hc_headers headers;
    long status;
    bool headers_sent;      /* on_headers called */
    bool aborted;           /* on_data asked to stop */
    bool header_overflow;
    struct hc_xfer_cbs cbs;
    void *arg;
    char errbuf[CURL_ERROR_SIZE];
    struct hc_xfer *next, *prev; /* the loop's list */
};

struct hc_multi {
    CURLM *multi;
    struct hc_opts opts;
    struct hc_xfer *xfers;
    size_t count;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init_once(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        log_error("libcurl failed to initialise");
}

void hc_global_init(void)
{
    pthread_once(&global_once, global_init_once);
}

/* ---- headers ---- */

const char *hc_header(const struct hc_headers *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->name[i], name) == 0)
            return h->value[i];
    return NULL;
}

void hc_headers_clear(struct hc_headers *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->name[i]);
        free(h->value[i]);
    }
    h->n = 0;
    h->bytes = 0;
}

/* One header line (no CRLF handling needed by callers): "HTTP/1.1 200 OK" starts a response
 * (the headers of an earlier 1xx or of nothing are dropped), "Name: value" is added, the blank
 * line ends the block. Returns -1 past the caps. */
static int header_line(struct hc_headers *h, const char *p, size_t n)
{
    while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == '\n'))
        n--;
    if (n == 0)
        return 0;
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        hc_headers_clear(h);
        return 0;
    }
    const char *colon = memchr(p, ':', n);
    if (colon == NULL || colon == p)
        return 0; /* obsolete folding or junk: ignored */
    if (h->n >= HC_MAX_HEADERS || h->bytes + n > HC_HEADERS_BYTES)
        return -1;
    const char *v = colon + 1, *end = p + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    h->name[h->n] = xstrndup(p, (size_t)(colon - p));
    h->value[h->n] = xstrndup(v, (size_t)(end - v));
    h->n++;
    h->bytes += n;
    return 0;
}

/* ---- URL policy ---- */

/* The host part of an absolute http(s) URL, into out (brackets of an IPv6 literal removed).
 * -1 when it is not one. */
static int url_host(const char *url, char *out, size_t outlen, bool *https)
{
    const char *p;
    if (strncasecmp(url, "https://", 8) == 0) {
        p = url + 8;
        *https = true;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
        *https = false;
    } else {
        return -1;
    }
    size_t auth = strcspn(p, "/?#");
    if (memchr(p, '@', auth) != NULL)
        return -1; /* userinfo: never */
    const char *h = p, *hend;
    if (*h == '[') {
        hend = memchr(h, ']', auth);
        if (hend == NULL)
            return -1;
        h++;
    } else {
        hend = h;
        while (hend < p + auth && *hend != ':')
            hend++;
    }
    size_t n = (size_t)(hend - h);
    if (n == 0 || n >= outlen)
        return -1;
    memcpy(out, h, n);
    out[n] = '\0';
    return 0;
}

/* One part of a dotted-decimal IPv4 address as libcurl reads it: 1-3 decimal digits, no sign,
 * no leading zero (libcurl takes 0127 as octal). -1 when not. */
static int dec_octet(const char **p)
{
    const char *s = *p;
    int v = 0, n = 0;
    while (n < 4 && s[n] >= '0' && s[n] <= '9')
        v = v * 10 + (s[n++] - '0');
    if (n == 0 || n > 3 || (n > 1 && s[0] == '0') || v > 255)
        return -1;
    *p = s + n;
    return v;
}

static bool host_is_loopback(const char *host)
{
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "::1") == 0)
        return true;
    /* 127.0.0.0/8, strictly in dotted decimal */
    const char *p = host;
    for (int i = 0; i < 4; i++) {
        int v = dec_octet(&p);
        if (v < 0 || (i == 0 && v != 127))
            return false;
        if (i < 3 && *p++ != '.')
            return false;
    }
    return *p == '\0';
}

bool hc_url_is_loopback(const char *url)
{
    char host[256];
    bool https;
    return url_host(url, host, sizeof host, &https) == 0 && host_is_loopback(host);
}

int hc_url_check(const struct hc_opts *o, const char *url, char *why, size_t whylen)
{
    char host[256], q[130];
    bool https;
    size_t n = strlen(url);
    if (n == 0 || n > URL_MAX) {
        reason_set(why, whylen, "the URL is empty or longer than %d bytes", URL_MAX);
        return ERR_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f) {
            reason_set(why, whylen, "the URL '%s' holds a space or a non-ASCII byte",
                       reason_quote(url, 120, q));
            return ERR_INVALID;
        }
    }
    if (url_host(url, host, sizeof host, &https) != 0) {
        reason_set(why, whylen, "'%s' is not an absolute http(s) URL (with no user name)",
                   reason_quote(url, 120, q));
        return ERR_INVALID;
    }
    if (!https && !(o != NULL && o->allow_http) && !host_is_loopback(host)) {
        reason_set(why, whylen,
                   "'%s' is plain http to a host that is not loopback; use https (or "
                   "--allow-http on a network you trust)",
                   reason_quote(url, 120, q));
        return ERR_INVALID;
    }
    return 0;
}

/* ---- one configured easy handle ---- */

static void headers_done(struct hc_xfer *x)
{
    if (x->headers_sent)
        return;
    x->headers_sent = true;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
    if (x->cbs.on_headers != NULL)
        x->cbs.on_headers(x->arg, x, x->status, &x->headers);
}

static size_t on_header_cb(char *p, size_t size, size_t nitems, void *arg)
{
    struct hc_xfer *x = arg;
    size_t n = size * nitems;
    if (header_line(&x->headers, p, n) != 0) {
        x->header_overflow = true;
        return 0; /* abort: a response with thousands of headers is hostile */
    }
    /* the blank line after the final response's headers: tell the caller now, not with the
     * first byte of a body that may be long in coming (an SSE stream) */
    if ((n == 2 && p[0] == '\r' && p[1] == '\n') || (n == 1 && p[0] == '\n')) {
        long status = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && x->cbs.on_headers != NULL)
            headers_done(x);
    }
    return n;
}

/* The proxy for a URL from the environment, where libcurl would not look: it reads only the
 * lower-case http_proxy for http (a CGI defence that does not apply to a client), so
 * HTTP_PROXY is honoured here. NULL: leave it to libcurl (https_proxy, HTTPS_PROXY, ALL_PROXY,
 * NO_PROXY). */
static const char *env_http_proxy(const char *url)
{
    if (strncasecmp(url, "http://", 7) != 0)
        return NULL;
    const char *lower = getenv("http_proxy");
    if (lower != NULL && *lower != '\0')
        return NULL;
    const char *upper = getenv("HTTP_PROXY");
    return upper != NULL && *upper != '\0' ? upper : NULL;
}

static int xfer_setup(struct hc_xfer *x, const struct hc_opts *o, const struct hc_req *req,
                      char *why, size_t whylen)
{
    if (hc_url_check(o, req->url, why, whylen) != 0)
        return ERR_INVALID;
    hc_global_init();
    if ((x->easy = curl_easy_init()) == NULL) {
        reason_set(why, whylen, "libcurl could not create a handle");
        return ERR_INTERNAL;
    }
    CURL *h = x->easy;
    for (const char *const *hp = req->headers; hp != NULL && *hp != NULL; hp++) {
        /* "Name:" with nothing after it would make libcurl drop the header; "Name;" is its
         * spelling of a header with an empty value */
        const char *colon = strchr(*hp, ':');
        char *empty = NULL;
        if (colon != NULL && colon[1 + strspn(colon + 1, " \t")] == '\0')
            empty = xasprintf("%.*s;", (int)(colon - *hp), *hp);
        struct curl_slist *n = curl_slist_append(x->hdrs, empty != NULL ? empty : *hp);
        free(empty);
        if (n == NULL)
            return ERR_NOMEM;
        x->hdrs = n;
    }
    /* libcurl adds "Expect: 100-continue" to large POSTs: a round trip servers do not need. */
    struct curl_slist *n = curl_slist_append(x->hdrs, "Expect:");
    if (n == NULL)
        return ERR_NOMEM;
    x->hdrs = n;

    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     o != NULL && o->connect_timeout_ms > 0 ? o->connect_timeout_ms
                                                            : CONNECT_TIMEOUT_DEFAULT);
    if (req->timeout_ms > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(h, CURLOPT_USERAGENT,
                     o != NULL && o->user_agent != NULL ? o->user_agent
                                                        : "mcpgate/" MCPGATE_VERSION);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (o != NULL && o->cacert != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, o->cacert); /* CAPATH (the system's) still applies */
    const char *proxy = env_http_proxy(req->url);
    if (proxy != NULL)
        curl_easy_setopt(h, CURLOPT_PROXY, proxy);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""); /* whatever this libcurl decodes */
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(h, CURLOPT_PRIVATE, x);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);

    const char *method = req->method != NULL ? req->method : "GET";
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "POST") == 0) {
        x->body = xmalloc(req->body_len + 1);
        if (req->body_len > 0)
            memcpy(x->body, req->body, req->body_len);
        x->body[req->body_len] = '\0';
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (req->body != NULL) {
            x->body = xstrndup(req->body, req->body_len);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->body);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        }
    }
    return 0;
}

static void xfer_free(struct hc_xfer *x)
{
    if (x == NULL)
        return;
    if (x->easy != NULL)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    free(x->body);
    hc_headers_clear(&x->headers);
    free(x);
}

/* A curl result in plain words. */
static int curl_err(CURLcode rc, const char *errbuf, const char *url, char *why, size_t whylen)
{
    char q[130];
    const char *detail = errbuf != NULL && *errbuf != '\0' ? errbuf : curl_easy_strerror(rc);
    reason_quote(url, 120, q);
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        reason_set(why, whylen, "%s: timed out (%s)", q, detail);
        return ERR_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        reason_set(why, whylen, "%s: the host name does not resolve (%s)", q, detail);
        return ERR_IO;
    case CURLE_COULDNT_CONNECT:
        reason_set(why, whylen, "%s: could not connect (%s)", q, detail);
        return ERR_IO;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CONNECT_ERROR:
        reason_set(why, whylen, "%s: TLS failed (%s; --cacert FILE adds a private CA)", q,
                   detail);
        return ERR_IO;
    default:
        reason_set(why, whylen, "%s: %s", q, detail);
        return ERR_IO;
    }
}

/* ---- blocking fetch ---- */

struct fetch_ctx {
    struct hc_resp *resp;
    size_t max;
    bool toobig;
};

static size_t on_fetch_data(char *p, size_t size, size_t nmemb, void *arg)
{
    struct fetch_ctx *f = arg;
    size_t n = size * nmemb;
    if (f->resp->body.len + n > f->max || buf_append(&f->resp->body, p, n) != 0) {
        f->toobig = true;
        return 0;
    }
    return n;
}

void hc_resp_init(struct hc_resp *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->body, SIZE_MAX);
}

void hc_resp_free(struct hc_resp *r)
{
    if (r == NULL)
        return;
    hc_headers_clear(&r->headers);
    buf_free(&r->body);
}

int hc_fetch(const struct hc_opts *o, const struct hc_req *req, struct hc_resp *resp)
{
    int r = ERR_INTERNAL;
    struct hc_xfer *x = xcalloc(1, sizeof *x);
    struct fetch_ctx f = {.resp = resp,
                          .max = req->max_body > 0 ? req->max_body : FETCH_BODY_DEFAULT};
    hc_headers_clear(&resp->headers);
    buf_reset(&resp->body);
    resp->status = 0;
    resp->error[0] = '\0';
    if ((r = xfer_setup(x, o, req, resp->error, sizeof resp->error)) != 0)
        goto out;
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_fetch_data);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, &f);
    if (req->timeout_ms <= 0)
        curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, 30000L);
    CURLcode rc = curl_easy_perform(x->easy);
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    if (f.toobig) {
        reason_set(resp->error, sizeof resp->error, "the response is larger than %zu bytes",
                   f.max);
        r = ERR_TOOBIG;
        goto out;
    }
    if (x->header_overflow) {
        reason_set(resp->error, sizeof resp->error, "the response has too many headers");
        r = ERR_TOOBIG;
        goto out;
    }
    if (rc != CURLE_OK) {
        r = curl_err(rc, x->errbuf, req->url, resp->error, sizeof resp->error);
        goto out;
    }
    resp->status = status;
    resp->headers = x->headers; /* moved */
    memset(&x->headers, 0, sizeof x->headers);
    r = 0;
out:
    xfer_free(x);
    return r;
}

/* ---- the event loop ---- */

static size_t on_xfer_data(char *p, size_t size, size_t nmemb, void *arg)
{
    struct hc_xfer *x = arg;
    size_t n = size * nmemb;
    headers_done(x);
    if (x->aborted)
        return 0;
    if (n > 0 && x->cbs.on_data != NULL && x->cbs.on_data(x->arg, x, p, n) != 0) {
        x->aborted = true;
        return 0;
    }
    return n;
}

struct hc_multi *hc_multi_new(const struct hc_opts *o)
{
    hc_global_init();
    struct hc_multi *m = xcalloc(1, sizeof *m);
    if (o != NULL)
        m->opts = *o;
    if ((m->multi = curl_multi_init()) == NULL) {
        free(m);
        return NULL;
    }
    return m;
}

static void unlink_xfer(struct hc_multi *m, struct hc_xfer *x)
{
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        m->xfers = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    x->next = x->prev = NULL;
    m->count--;
}

/* Ends a transfer: out of the multi, off the list, on_done, freed. */
static void finish(struct hc_multi *m, struct hc_xfer *x, int err, const char *why)
{
    curl_multi_remove_handle(m->multi, x->easy);
    unlink_xfer(m, x);
    if (err == 0)
        headers_done(x); /* when nothing announced them yet */
    if (x->cbs.on_done != NULL)
        x->cbs.on_done(x->arg, x, err, why);
    xfer_free(x);
}

void hc_multi_free(struct hc_multi *m)
{
    if (m == NULL)
        return;
    while (m->xfers != NULL)
        finish(m, m->xfers, ERR_CANCELLED, "the client is closing");
    curl_multi_cleanup(m->multi);
    free(m);
}

int hc_multi_start(struct hc_multi *m, const struct hc_req *req, const struct hc_xfer_cbs *cbs,
                   void *arg, struct hc_xfer **out)
{
    char why[300];
    if (out != NULL)
        *out = NULL;
    struct hc_xfer *x = xcalloc(1, sizeof *x);
    int r = xfer_setup(x, &m->opts, req, why, sizeof why);
    if (r != 0) {
        log_warn("%s", why);
        xfer_free(x);
        return r;
    }
    x->cbs = *cbs;
    x->arg = arg;
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_xfer_data);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    if (curl_multi_add_handle(m->multi, x->easy) != CURLM_OK) {
        xfer_free(x);
        return ERR_INTERNAL;
    }
    x->next = m->xfers;
    if (m->xfers != NULL)
        m->xfers->prev = x;
    m->xfers = x;
    m->count++;
    if (out != NULL)
        *out = x;
    return 0;
}

void hc_xfer_abort(struct hc_multi *m, struct hc_xfer *x)
{
    if (x != NULL)
        finish(m, x, ERR_CANCELLED, "cancelled");
}

size_t hc_multi_count(const struct hc_multi *m)
{
    return m->count;
}

void hc_multi_wakeup(struct hc_multi *m)
{
    curl_multi_wakeup(m->multi);
}

/* Ends the transfers libcurl says are done; returns how many. */
static int drain_done(struct hc_multi *m)
{
    CURLMsg *msg;
    int left, n = 0;
    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct hc_xfer *x = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x == NULL)
            continue;
        CURLcode rc = msg->data.result;
        char why[300] = "";
        int err = 0;
        if (x->aborted) {
            err = ERR_CANCELLED;
            reason_set(why, sizeof why, "cancelled");
        } else if (x->header_overflow) {
            err = ERR_TOOBIG;
            reason_set(why, sizeof why, "the response has too many headers");
        } else if (rc != CURLE_OK) {
            char *url = NULL;
            curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url);
            err = curl_err(rc, x->errbuf, url != NULL ? url : "the server", why, sizeof why);
        }
        finish(m, x, err, why);
        n++;
    }
    return n;
}

int hc_multi_poll(struct hc_multi *m, int extra_fd, int timeout_ms)
{
    struct curl_waitfd wfd = {.fd = extra_fd, .events = CURL_WAIT_POLLIN};
    int still = 0;
    /* a fast server may have answered within this perform: report it before sleeping */
    curl_multi_perform(m->multi, &still);
    if (drain_done(m) > 0)
        timeout_ms = 0;
    curl_multi_poll(m->multi, extra_fd >= 0 ? &wfd : NULL, extra_fd >= 0 ? 1 : 0, timeout_ms,
                    NULL);
    curl_multi_perform(m->multi, &still);
    drain_done(m);
    return extra_fd >= 0 && (wfd.revents & CURL_WAIT_POLLIN) ? 1 : 0;
}
