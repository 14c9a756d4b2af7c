/* A session: one client's conversation with a server over one transport connection (stdio), or
 * one MCP session (Streamable HTTP), in either protocol era. The transport feeds it whole JSON
 * texts and receives the messages it sends through io.send. */
#ifndef MCPGATE_MCP_SESSION_H
#define MCPGATE_MCP_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct mcp_server;
struct mcp_session;

struct mcp_session_io {
    /* Called from any thread, possibly concurrently: the transport serializes. stream is the
     * one given to mcp_session_feed() for the request this message belongs to (NULL for
     * messages that belong to no request); final is true for the request's response. */
    void (*send)(void *arg, void *stream, const char *msg, size_t len, bool final);
    /* Optional: the engine takes (take=true) a reference to a non-NULL stream for as long as it
     * may send to it (a request being handled, an open subscription), and releases it. */
    void (*hold)(void *arg, void *stream, bool take);
    void *arg;
};

struct mcp_session *mcp_session_new(struct mcp_server *srv, const struct mcp_session_io *io);
/* Handles one JSON text (a message or a batch). Responses go out through io.send, now or
 * later from a worker. */
void mcp_session_feed(struct mcp_session *s, const char *data, size_t len, void *stream);
/* The same for a text the transport already parsed with jsonrpc_parse() (borrowed), on behalf
 * of who (NULL: anonymous; the strings are copied for each request). */
struct mcp_identity;
void mcp_session_feed_parsed(struct mcp_session *s, json_t *msg, void *stream,
                             const struct mcp_identity *who);
/* Answers a message the transport could not even frame (id null). */
void mcp_session_reject(struct mcp_session *s, int code, const char *message, void *stream);
/* Cancels the stream's requests (the transport lost the stream). */
void mcp_session_stream_closed(struct mcp_session *s, void *stream);
/* The client will send nothing more (stdin closed): lets running requests finish, failing
 * their questions to the client, and waits for them. Call mcp_session_close() after. */
void mcp_session_drain(struct mcp_session *s);
/* Ends the session: cancels running requests, waits for them, releases the caller's
 * reference. io.send is not called after this returns. */
void mcp_session_close(struct mcp_session *s);

#endif
