/* The gateway: existing MCP servers (stdio children, remote HTTP servers) put behind mcpgate's
 * server and OAuth. `mcpgate serve --config FILE` reads a configuration in the shape users write
 * for Claude Desktop ({"mcpServers": {...}}) plus mcpgate's own keys, starts the upstreams,
 * and registers their tools, prompts, resources and templates in the server's registry under
 * stable names (`<upstream>__<tool>`), each entry forwarding to its upstream.
 *
 * config.c parses and validates the file (every error located: file, key, reason); child.c
 * runs one stdio upstream process; upstream.c keeps the upstreams, their catalogs and the
 * forwarding handlers. */
#ifndef MCPGATE_GATEWAY_H
#define MCPGATE_GATEWAY_H

#include <jansson.h>
#include <stdbool.h>

#include "core/err.h"
#include "mcpgate/mcpgate.h"

#define GW_NAME_MAX 32
#define GW_SEP "__"

enum gw_process { GW_SHARED, GW_PER_SESSION };

struct gw_upstream_cfg {
    char *name;            /* [A-Za-z0-9-]{1,32} (and '_' not doubled): the tool prefix */
    /* stdio */
    char *command;         /* NULL for an HTTP upstream */
    char **args;           /* NULL-terminated */
    char **env;            /* "K=V", NULL-terminated: the environment given to the child */
    char *cwd;
    /* http */
    char *url;
    char **headers;        /* "Name: value", NULL-terminated */
    char *transport;       /* http-first (default), sse-first, http-only, sse-only */
    char *protocol_version;
    /* mcpgate's */
    char *scope;           /* the scope that unlocks it (default mcp:<name>) */
    json_t *users;         /* usernames allowed (array), or NULL: every signed-in user */
    json_t *allow, *deny;  /* tool globs (arrays) or NULL */
    enum gw_process process;
    int call_timeout_s;    /* one call (300) */
    int start_timeout_s;   /* spawn to initialize answered (30) */
    int idle_timeout_s;    /* per-session children stopped after this idle (600) */
    int max_restarts;      /* restarts in a row before giving up (5) */
    int max_children;      /* per-session children of this upstream (50) */
    json_t *source;        /* the upstream's JSON as written (to tell a changed one on reload) */
};

struct gw_config {
    char *path;
    struct gw_upstream_cfg *up;
    size_t nup;
    json_t *server;           /* the "server" object (settings for serve), or NULL */
    int max_children;         /* stdio children in total (100) */
    int max_children_per_user;/* per-session children of one user (10) */
};

/* Parses and validates FILE. On failure returns ERR_INVALID (or ERR_IO, ERR_PARSE) and
 * *errors, an array of strings "FILE: key: reason" naming every problem found. */
int gw_config_load(const char *path, struct gw_config **out /* OUT */,
                   json_t **errors /* OUT */) ERR_WARN_UNUSED;
/* The same from text (path only names it in errors). */
int gw_config_parse(const char *text, size_t len, const char *path,
                    struct gw_config **out /* OUT */, json_t **errors /* OUT */) ERR_WARN_UNUSED;
void gw_config_free(struct gw_config *cfg);
/* The variables of the process environment an upstream child gets by default. */
extern const char *const gw_default_pass_env[];

/* ---- the running gateway ---- */

struct gateway;

/* Starts every upstream of cfg (its shared child or HTTP connection, or a probe child for a
 * per-session one, to learn the catalog) and registers their entries in srv. auth: requests
 * carry identities and scopes (HTTP with OAuth); without it every entry is visible. cfg stays
 * the caller's until gw_reload or gw_free. Upstreams that fail to start are logged and retried
 * in the background; they do not stop the others. */
int gw_start(struct mcp_server *srv, struct gw_config *cfg, bool auth,
             struct gateway **out /* OUT */) ERR_WARN_UNUSED;
/* Applies a new configuration: unchanged upstreams keep their children and sessions; removed
 * ones are stopped and unregistered; added and changed ones are (re)started. Takes cfg. */
int gw_reload(struct gateway *gw, struct gw_config *cfg) ERR_WARN_UNUSED;
/* Stops every child (stdin closed, SIGTERM, then SIGKILL to its process group). */
void gw_free(struct gateway *gw);
/* The tool-scope entries for the HTTP layer: "up__*=scope" per upstream, comma-separated
 * (caller frees), and the scopes to offer (space-separated, caller frees). */
char *gw_tool_scopes(const struct gw_config *cfg);
char *gw_scopes(const struct gw_config *cfg);

#endif
