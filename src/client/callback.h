/* The loopback redirect listener of a browser sign-in (RFC 8252 7.3): a tiny HTTP server on
 * 127.0.0.1 that waits for the authorization server to send the browser back to
 * http://127.0.0.1:PORT/callback?code=...&state=..., answers it with a page the user can read,
 * and hands the query to the OAuth client. Anything else (favicon requests, browsers' idle
 * preconnections, other paths, hostile bytes) is answered or dropped without disturbing the
 * wait. */
#ifndef MCPGATE_CLIENT_CALLBACK_H
#define MCPGATE_CLIENT_CALLBACK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define CB_PATH "/callback"
#define CB_REQUEST_MAX 16384

struct cb_request {
    char method[8]; /* "GET", ... */
    char *path;     /* owned: the path of the target, without query */
    json_t *query;  /* owned: the query parameters, {} when none */
};

/* Parses the head of an HTTP/1.x request from a loopback peer. Returns 0 when buf holds the
 * whole head (through the blank line); ERR_EOF when more bytes are needed; ERR_TOOBIG past
 * CB_REQUEST_MAX; ERR_PARSE with why for anything malformed (bad request line, a target not
 * starting with '/', a bad query: bad escape, repeated or too many parameters). */
int cb_parse_request(const char *buf, size_t len, struct cb_request *out /* OUT */, char *why,
                     size_t whylen) ERR_WARN_UNUSED;
void cb_request_clear(struct cb_request *r);

struct cb_listener;

/* Listens on host (an IPv4 or IPv6 loopback literal) and port. With port 0, or when the port is
 * taken and !strict, an ephemeral port is used instead. ERR_EXISTS when a strict port is
 * taken (why names it). */
int cb_listen(const char *host, int port, bool strict, struct cb_listener **out /* OUT */,
              char *why, size_t whylen) ERR_WARN_UNUSED;
int cb_port(const struct cb_listener *l);
void cb_close(struct cb_listener *l);

/* Serves the listener until a GET of CB_PATH arrives whose state equals state (compared in
 * constant time), for at most timeout_ms (or until *stop, polled, becomes true). Requests for
 * other paths get 404; a callback with another state gets 400 and a page saying so, and the
 * wait goes on. Returns 0 with *query (the callback's parameters, owned by the caller); the
 * browser's connection then waits for cb_reply. ERR_TIMEOUT or ERR_CANCELLED otherwise. */
int cb_wait(struct cb_listener *l, const char *state, int timeout_ms, volatile bool *stop,
            json_t **query /* OUT */) ERR_WARN_UNUSED;
/* Answers the callback that cb_wait returned: a success page, or a failure page with the
 * reason (escaped), then closes the connection. */
void cb_reply(struct cb_listener *l, bool ok, const char *title, const char *message);

#endif
