/* Where `mcpgate connect` and the CLI client keep what they learn about a server: the client
 * registration (per authorization server issuer), tokens, and the PKCE state of flows in
 * progress. ${MCPGATE_CONFIG_DIR:-${XDG_CONFIG_HOME:-~/.config}/mcpgate}, a directory 0700
 * with files 0600, each written atomically (temporary file, fsync, rename, fsync of the
 * directory). Entries are keyed by a hash of the server URL and the options that change the
 * identity (so two configurations never share tokens), in a layout versioned by a top-level
 * "v1/" directory that later versions keep reading.
 *
 * Several processes may use the store at once (Claude Desktop starts duplicates): a lease file
 * (O_CREAT|O_EXCL, holding the owner's pid and the time) gives one process the right to sign
 * in or refresh; a lease whose pid is dead or which is older than its timeout is stale and may
 * be taken over. */
#ifndef MCPGATE_CLIENT_TOKENSTORE_H
#define MCPGATE_CLIENT_TOKENSTORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"

struct tstore;

/* Opens (creating with mode 0700) the store directory: dir, or the default above when NULL
 * (a relative XDG_CONFIG_HOME is ignored, as the XDG spec says). Missing ancestors are created
 * 0700 too (mkdir -p); existing ancestors are left alone. The store directory, v1/ and every
 * entry directory, when found with group/other permissions, are tightened to 0700 (logged);
 * one owned by another user is refused (ERR_INVALID) unless we are root. The store directory
 * may be a symlink; nothing inside it is followed. Leases are not released by close. */
int tstore_open(const char *dir, struct tstore **out /* OUT */) ERR_WARN_UNUSED;
void tstore_close(struct tstore *ts);
const char *tstore_dir(const struct tstore *ts);

/* The key of a server configuration: lowercase hex SHA-256 of the URL and the identity parts
 * joined with "\n", no trailing newline: "url\nresource\nscope" (parts in order, NULLs as
 * empty; nparts 0 hashes the URL alone). Stored on disk: never change it within v1/. Caller
 * frees. Keys given to the functions below must be exactly this form (64 lowercase hex). */
char *tstore_key(const char *server_url, const char *const *identity_parts, size_t nparts);

/* Reads/writes one named JSON document (a JSON object) of an entry, <key>/<name>.json: name
 * is "tokens", "client", "flow-<state>" or "server" ([A-Za-z0-9_-]{1,64}; else ERR_INVALID).
 * get: ERR_NOTFOUND when absent; a corrupt file (bad JSON, not an object, over 1 MiB) is
 * ERR_PARSE (logged) and treated by callers as absent; a symlink or non-regular file is not
 * followed (ERR_INVALID). put writes atomically (0600), replacing a symlink at the target
 * rather than writing through it; a document over 1 MiB is ERR_TOOBIG. remove: ERR_NOTFOUND
 * when absent. */
int tstore_get(struct tstore *ts, const char *key, const char *name, json_t **out /* OUT */)
    ERR_WARN_UNUSED;
int tstore_put(struct tstore *ts, const char *key, const char *name, json_t *doc /* borrowed */)
    ERR_WARN_UNUSED;
int tstore_remove(struct tstore *ts, const char *key, const char *name) ERR_WARN_UNUSED;
/* Removes every file of an entry (documents, leases, leftovers) and its directory (logout);
 * ERR_NOTFOUND when there was no entry. */
int tstore_forget(struct tstore *ts, const char *key) ERR_WARN_UNUSED;

/* Opens <key>/debug.log for appending (created 0600, never through a symlink), creating the
 * entry's directory when needed. Returns a FILE the caller closes, or NULL. */
FILE *tstore_open_log(struct tstore *ts, const char *key);

/* Takes the lease "name" of an entry (e.g. "auth" for sign-in and refresh), <key>/<name>.lease:
 * 0 when taken; ERR_EXISTS when another live process holds it (its pid in *holder; 0 when the
 * store stayed busy for 2 s). Not reentrant: when this process already holds it (through any
 * struct tstore, any thread), ERR_EXISTS with *holder = getpid(). Stale leases (dead pid,
 * unparsable, time more than stale_seconds away from now, or our pid but left by an earlier
 * process) are taken over, by exactly one of the processes racing for them. stale_seconds <= 0:
 * only a dead holder makes a lease stale. */
int tstore_lease_take(struct tstore *ts, const char *key, const char *name, int stale_seconds,
                      long *holder /* OUT, may be NULL */) ERR_WARN_UNUSED;
/* Removes the lease only if it is still the file this process created (never a successor's
 * after a takeover). */
void tstore_lease_release(struct tstore *ts, const char *key, const char *name);
/* Waits (polling every 50-200 ms with jitter, at most timeout_ms) until this call takes the
 * lease: 0 when taken, ERR_TIMEOUT otherwise. A lease this process already holds is not free:
 * waiting for it times out unless another thread of ours releases it. */
int tstore_lease_wait(struct tstore *ts, const char *key, const char *name, int stale_seconds,
                      int timeout_ms) ERR_WARN_UNUSED;

#endif
