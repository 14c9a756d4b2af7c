/* The gateway's internals shared by upstream.c (upstreams, their children and catalogs, the
 * reaper, reload) and forward.c (calls forwarded to them). */
#ifndef MCPGATE_GATEWAY_GW_INT_H
#define MCPGATE_GATEWAY_GW_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "gateway/conn.h"
#include "gateway/gateway.h"

#define PARK_TTL_MS (10 * 60 * 1000) /* a question waits this long for the client's retry */
#define REAPER_TICK_MS 500

struct up;

/* The live upstream called name[0..n) (gw->mu held), or NULL. */
struct up *up_named(struct gateway *gw, const char *name, size_t n);
/* A registered entry's handler data. */
struct entry {
    struct up *up;
    char *orig; /* the upstream's own name, URI or URI template */
    bool tpl;   /* a resource template */
    bool ns;    /* ... registered under its namespaced form (resources.c) */
    struct entry *next;
};

/* A child (or the HTTP connection) serving one owner: everyone (shared) or one session/user. */
struct slot {
    char *owner;          /* "shared", "s:<session key>" or "u:<subject>" */
    char *user;           /* subject of a per-session child, for the per-user cap */
    struct gw_conn *conn; /* NULL while (re)starting or after it died */
    bool dead;
    bool starting; /* a thread is starting it: others wait (up's cv) */
    int restarts;       /* failed starts and early exits in a row */
    long long started_at;
    long long retry_at; /* shared: when to try starting it again */
    struct slot *next;
};

struct up {
    struct gateway *gw;
    struct gw_upstream_cfg cfg; /* owned (moved out of the configuration) */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a slot finished starting */
    struct slot *slots;
    pthread_mutex_t cat_mu; /* one catalog_load at a time */
    json_t *reg;  /* tools and prompts registered: {"tools": [names], "prompts": [names]} */
    json_t *seen; /* the upstream's lists as last seen: {"tools": [...], ...} */
    bool removed;
    bool refresh_tools, refresh_prompts, refresh_resources;
    bool retool;   /* list the tools again even if unchanged (a UI resource was renamed) */
    atomic_bool ui_tools; /* some tool points at a UI resource */
    /* resources.c: the resources and templates as last listed (gateway's res_mu), and those
     * registered under the namespaced form, {orig: exposed} (gateway's mu) */
    json_t *res_offer, *tpl_offer;
    json_t *res_reg; /* registered: {"resources": [URIs], "templates": [...]} (res_mu) */
    json_t *ns_res, *ns_tpl;
    json_t *plain_res, *plain_tpl; /* ... and those under their own URI: {URI: true}, [tpl] */
    atomic_bool has_ns; /* ns_res or ns_tpl is not empty: URIs leaving it need a look */
    struct up *next;
};

/* A call left waiting upstream for a 2026-07-28 client's next round (it must answer the
 * server's question first). */
struct parked {
    char token[48];
    struct up *up;
    struct gw_call *k;
    json_t *question; /* the server's request awaiting the answer */
    long long since;
    struct parked *next;
};

struct gateway {
    struct mcp_server *srv;
    bool auth;
    pthread_mutex_t mu; /* the lists below, children counts */
    pthread_cond_t cv;
    struct up *ups; /* live and removed (removed ones stay until gw_free) */
    struct entry *entries; /* slot refs parked until gw_free (orig holds the ref) */
    struct parked *parked;
    json_t *uri_owner; /* resource URI or template (as registered) -> upstream name */
    pthread_mutex_t res_mu; /* one decision on resource names at a time (resources.c) */
    json_t *watch_want;     /* news for the watcher: {URI: subscribed (the latest)} */
    json_t *watch_again;    /* {upstream: restarted}: its subscriptions to look at again */
    json_t *sub_map;        /* watcher's: {URI clients know: "upstream\nits own URI"} */
    json_t *sub_count;      /* watcher's: {"upstream\nits own URI": names leading there} */
    pthread_t watcher;
    mcp_complete_fn next_complete; /* completion of what is not the upstreams' (built-ins) */
    void *next_complete_arg;
    int max_children, max_per_user, children;
    pthread_t reaper;
    bool stop;
};

/* upstream.c */

/* Whose child serves the request: everyone's, its session's, or (2026-07-28, no session) its
 * user's. */
void slot_owner(struct up *u, struct mcp_ctx *ctx, char *owner, size_t ownerlen);
/* Who is calling: "s:<session key>", else "u:<subject>" ("u#<digest>" for long ones). A
 * shared child's questions and log lines only go to a call when every call in flight on it is
 * the same caller's. */
void gw_caller(struct mcp_ctx *ctx, char *out, size_t outlen);
/* The running connection of owner's slot, held (gw_conn_release), or NULL when there is none
 * yet or it is (re)starting: never waits. */
struct gw_conn *slot_ready(struct up *u, const char *owner);
/* The connection for a call, held (gw_conn_release): the shared child (restarted if it died),
 * or the caller's own per-session child (started on first use, within the caps). */
int slot_for(struct up *u, struct mcp_ctx *ctx, struct gw_conn **out, char *owner, size_t ownerlen,
             char *why, size_t whylen);

/* A registered entry's handler data, freed by entry_release (the registry's release hook,
 * once the entry is removed and no call uses it). */
struct entry *entry_new(struct up *u, const char *orig);
void entry_release(void *udata);
/* v as compact JSON text (to free), or NULL for NULL and null. */
char *gw_dump_or_null(json_t *v);

/* resources.c */

/* The upstream listed its resources and templates (NULL: that list is unknown, as it was):
 * names are decided again for every upstream, and what changed is registered again. */
void gw_resources_offer(struct up *u, json_t *resources, json_t *templates);
/* The upstream offers none any more (stopped, removed). */
void gw_resources_withdraw(struct up *u);
/* Which URIs get their upstream's name: offers is {upstream: [URI or template, ...]}; the
 * answer {upstream: {URI: namespaced form}} holds those offered by two upstreams or more, and
 * those equal to another's namespaced form (none of the forms collides). */
json_t *gw_ns_plan(json_t *offers);
/* "demo://doc/a" offered by upstream "left": "demo://left/doc/a"; "urn:x": "urn:left/x". */
char *gw_ns_uri(const char *name, const char *uri);
/* The inverse for a URI that matched the namespaced form of template tpl, or NULL. */
char *gw_ns_strip(const char *name, const char *tpl, const char *uri);
/* The name clients know for a URI that came from u, or NULL when it is the same. */
char *gw_expose_uri(struct up *u, const char *uri);
/* The same applied in place: a content block (resource_link, resource), an array of them, one
 * of a read's contents; and a copy of a tool's _meta (its UI resource). */
void gw_expose_block(struct up *u, json_t *block);
void gw_expose_blocks(struct up *u, json_t *blocks);
void gw_expose_content(struct up *u, json_t *item);
json_t *gw_expose_tool_meta(struct up *u, json_t *meta);

/* The upstream's own URI (or template) for one clients know, to free, and the upstream's name
 * in *upname (to free); NULL when no upstream serves it. */
char *gw_ref_owner(struct gateway *gw, const char *uri, char **upname);

/* Subscriptions: the server's watch hook (a URI's first subscriber or its last) leaves the
 * news for the watcher thread, which passes it on to the upstream serving the URI (its calls
 * may wait; nothing else does on that thread). gw_watch_again: u started, restarted (its
 * subscriptions are sent again) or registered its resources again. */
void gw_watch(void *arg, const char *uri, bool watching);
void gw_watch_again(struct up *u, bool restarted);
void *gw_watcher_main(void *arg);

/* forward.c: the handlers registered for an upstream's entries (udata: struct entry) */
int tool_fwd(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata);
int prompt_fwd(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata);
int resource_fwd(struct mcp_ctx *ctx, const char *uri, json_t **contents, void *udata);
/* Ends the parked calls on connection c (all of them when c is NULL), or only those parked
 * before older_than when it is not 0. */
void end_parked(struct gateway *gw, struct gw_conn *c, long long older_than);

#endif
