/* The gateway's configuration file: parsed, validated, every error located (see gateway.h).
 * The file is the user's own: a syntax error names its line and column, a wrong value its key
 * path ("mcpServers.github.args[2]") and what is expected. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/reason.h"
#include "core/xmalloc.h"
#include "gateway/gateway.h"

#define CONFIG_MAX (1024 * 1024)
#define UPSTREAMS_MAX 64
#define LIST_MAX 256

const char *const gw_default_pass_env[] = {"PATH", "HOME", "USER", "LOGNAME", "LANG",
                                            "LC_ALL", "TZ", "TMPDIR", "SHELL", NULL};

struct checker {
    const char *path; /* the file */
    json_t *errors;
};

static void err(struct checker *ck, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err(struct checker *ck, const char *key, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *line = xasprintf("%s: %s: %s", ck->path, key, msg);
    json_t *v = json_string(line);
    free(line);
    if (v == NULL) {
        /* keys and jansson's texts may quote the file's own bytes, which may not be UTF-8 */
        char qkey[260], qmsg[610];
        reason_quote(key, 250, qkey);
        reason_quote(msg, 600, qmsg);
        line = xasprintf("%s: %s: %s", ck->path, qkey, qmsg);
        v = json_string(line);
        free(line);
    }
    json_array_append_new(ck->errors, v != NULL ? v : json_string("(an unprintable error)"));
}

static bool name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > GW_NAME_MAX || strstr(n, GW_SEP) != NULL || n[0] == '_' ||
        n[len - 1] == '_')
        return false;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return false;
    return true;
}

/* A string member (NULL when absent; an error when present and not a non-empty string). */
static const char *get_str(struct checker *ck, json_t *obj, const char *key, const char *where)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return NULL;
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        char k[300];
        snprintf(k, sizeof k, "%s.%s", where, key);
        err(ck, k, "must be a non-empty string");
        return NULL;
    }
    return json_string_value(v);
}

static int get_int(struct checker *ck, json_t *obj, const char *key, const char *where, int def,
                   int lo, int hi)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return def;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        char k[300];
        snprintf(k, sizeof k, "%s.%s", where, key);
        err(ck, k, "must be an integer from %d to %d", lo, hi);
        return def;
    }
    return (int)json_integer_value(v);
}

/* An array of strings, as a NULL-terminated vector (NULL when absent or wrong). */
static char **get_strv(struct checker *ck, json_t *obj, const char *key, const char *where)
{
    json_t *v = json_object_get(obj, key);
    char k[300];
    snprintf(k, sizeof k, "%s.%s", where, key);
    if (v == NULL)
        return NULL;
    if (!json_is_array(v) || json_array_size(v) > LIST_MAX) {
        err(ck, k, "must be an array of at most %d strings", LIST_MAX);
        return NULL;
    }
    char **out = xcalloc(json_array_size(v) + 1, sizeof *out);
    size_t i;
    json_t *e;
    bool ok = true;
    json_array_foreach (v, i, e) {
        if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e)) {
            char k2[340];
            snprintf(k2, sizeof k2, "%.300s[%zu]", k, i);
            err(ck, k2, "must be a string");
            ok = false;
            continue;
        }
        out[i] = xstrdup(json_string_value(e));
    }
    if (!ok) {
        for (size_t j = 0; out[j] != NULL || j < json_array_size(v); j++)
            free(out[j]);
        free(out);
        return NULL;
    }
    return out;
}

static void strv_free(char **v)
{
    for (char **p = v; p != NULL && *p != NULL; p++)
        free(*p);
    free(v);
}

/* An object of string values (env, headers). */
static bool check_str_object(struct checker *ck, json_t *v, const char *k, bool header)
{
    if (!json_is_object(v) || json_object_size(v) > LIST_MAX) {
        err(ck, k, "must be an object of at most %d string values", LIST_MAX);
        return false;
    }
    const char *name;
    json_t *e;
    bool ok = true;
    json_object_foreach (v, name, e) {
        char k2[400];
        snprintf(k2, sizeof k2, "%s.%s", k, name);
        if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e)) {
            err(ck, k2, "must be a string");
            ok = false;
        } else if (header && strpbrk(json_string_value(e), "\r\n") != NULL) {
            err(ck, k2, "a header value cannot hold a line break");
            ok = false;
        }
        if (*name == '\0' || strchr(name, '=') != NULL ||
            (header && strpbrk(name, " \t:\r\n") != NULL)) {
            err(ck, k2, "is not a valid %s name", header ? "header" : "variable");
            ok = false;
        }
    }
    return ok;
}

static bool is_known_var(const char *key, const char *const *known);

/* The variables a per-session child gets from the caller: left as ${...} here, filled in for
 * each child (upstream.c). */
static bool per_child_var(const char *name)
{
    static const char *const vars[] = {"MCPGATE_USER", "MCPGATE_SUBJECT", "MCPGATE_CLIENT_ID",
                                       "MCPGATE_SESSION", NULL};
    return is_known_var(name, vars);
}

/* ${VAR} from mcpgate's environment (so secrets stay out of the file). */
static char *expand(const char *s)
{
    size_t cap = strlen(s) + 1, n = 0;
    char *out = xmalloc(cap);
    for (const char *p = s; *p;) {
        const char *close;
        if (p[0] == '$' && p[1] == '{' && (close = strchr(p + 2, '}')) != NULL &&
            close - p - 2 < 128) {
            char name[130];
            snprintf(name, sizeof name, "%.*s", (int)(close - p - 2), p + 2);
            if (per_child_var(name)) {
                size_t keep = (size_t)(close - p + 1);
                if (n + keep + 1 > cap)
                    out = xrealloc(out, cap = n + keep + cap + 1);
                memcpy(out + n, p, keep);
                n += keep;
                p = close + 1;
                continue;
            }
            const char *v = getenv(name);
            size_t vl = v != NULL ? strlen(v) : 0;
            if (n + vl + 1 > cap)
                out = xrealloc(out, cap = n + vl + cap + 1);
            memcpy(out + n, v != NULL ? v : "", vl);
            n += vl;
            p = close + 1;
            continue;
        }
        if (n + 2 > cap)
            out = xrealloc(out, cap *= 2);
        out[n++] = *p++;
    }
    out[n] = '\0';
    return out;
}

static bool is_known_var(const char *key, const char *const *known)
{
    for (; *known != NULL; known++)
        if (strcmp(key, *known) == 0)
            return true;
    return false;
}

static bool is_known(const char *key, const char *const *known)
{
    for (; *known != NULL; known++)
        if (strcmp(key, *known) == 0)
            return true;
    return false;
}

static void check_globs(struct checker *ck, json_t *tools, const char *where, json_t **allow,
                        json_t **deny)
{
    static const char *const known[] = {"allow", "deny", NULL};
    char k[300];
    snprintf(k, sizeof k, "%s.tools", where);
    if (!json_is_object(tools)) {
        err(ck, k, "must be an object {\"allow\": [globs], \"deny\": [globs]}");
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach (tools, key, v) {
        char k2[320];
        snprintf(k2, sizeof k2, "%s.%s", k, key);
        if (!is_known(key, known)) {
            err(ck, k2, "unknown key (allow, deny)");
            continue;
        }
        bool ok = json_is_array(v) && json_array_size(v) <= LIST_MAX;
        size_t i;
        json_t *g;
        json_array_foreach (v, i, g)
            if (!json_is_string(g) || json_string_length(g) == 0)
                ok = false;
        if (!ok) {
            err(ck, k2, "must be an array of non-empty glob strings");
            continue;
        }
        if (strcmp(key, "allow") == 0)
            *allow = json_incref(v);
        else
            *deny = json_incref(v);
    }
}

static void upstream_parse(struct checker *ck, const char *name, json_t *v,
                           struct gw_upstream_cfg *u)
{
    static const char *const known[] = {
        "command", "args",  "env",     "cwd",          "url",          "headers",
        "transport", "protocolVersion", "scope", "users", "tools", "process",
        "callTimeout", "startTimeout", "idleTimeout", "maxRestarts", "maxChildren",
        "passEnv", "description", "disabled", NULL};
    char where[120];
    snprintf(where, sizeof where, "mcpServers.%s", name);
    u->name = xstrdup(name);
    u->source = json_incref(v);
    if (!name_ok(name))
        err(ck, where,
            "the name must be 1-%d characters of A-Z a-z 0-9 - _ without \"__\" or a leading "
            "or trailing '_' (it prefixes the tools: %s__tool)",
            GW_NAME_MAX, name);
    if (!json_is_object(v)) {
        err(ck, where, "must be an object with \"command\" or \"url\"");
        return;
    }
    const char *key;
    json_t *e;
    json_object_foreach (v, key, e) {
        if (!is_known(key, known)) {
            char k[300];
            snprintf(k, sizeof k, "%s.%s", where, key);
            err(ck, k, "unknown key");
        }
    }
    const char *command = get_str(ck, v, "command", where);
    const char *url = get_str(ck, v, "url", where);
    if ((command == NULL) == (url == NULL)) {
        err(ck, where, "needs exactly one of \"command\" (a stdio server) or \"url\" (an "
                       "HTTP server)");
    }
    char k[300];
    if (command != NULL) {
        u->command = expand(command);
        u->args = get_strv(ck, v, "args", where);
        for (char **a = u->args; a != NULL && *a != NULL; a++) {
            char *x = expand(*a);
            free(*a);
            *a = x;
        }
        const char *cwd = get_str(ck, v, "cwd", where);
        if (cwd != NULL) {
            struct stat st;
            snprintf(k, sizeof k, "%s.cwd", where);
            if (stat(cwd, &st) != 0 || !S_ISDIR(st.st_mode))
                err(ck, k, "'%s' is not a directory", cwd);
            u->cwd = xstrdup(cwd);
        }
        /* the child's environment: the pass-through variables, then env */
        char **pass = get_strv(ck, v, "passEnv", where);
        json_t *envo = json_object_get(v, "env");
        snprintf(k, sizeof k, "%s.env", where);
        if (envo != NULL && !check_str_object(ck, envo, k, false))
            envo = NULL;
        size_t n = 0, cap = 16;
        u->env = xcalloc(cap, sizeof *u->env);
        const char *const *names = pass != NULL ? (const char *const *)pass : gw_default_pass_env;
        for (const char *const *p = names; *p != NULL; p++) {
            const char *val = getenv(*p);
            if (val == NULL || json_object_get(envo, *p) != NULL)
                continue;
            if (n + 2 > cap)
                u->env = xrealloc(u->env, (cap *= 2) * sizeof *u->env);
            u->env[n++] = xasprintf("%s=%s", *p, val);
        }
        const char *ek;
        json_t *ev;
        json_object_foreach (envo, ek, ev) {
            if (n + 2 > cap)
                u->env = xrealloc(u->env, (cap *= 2) * sizeof *u->env);
            char *x = expand(json_string_value(ev));
            u->env[n++] = xasprintf("%s=%s", ek, x);
            free(x);
        }
        u->env[n] = NULL;
        strv_free(pass);
        if (json_object_get(v, "headers") != NULL || json_object_get(v, "transport") != NULL) {
            snprintf(k, sizeof k, "%s", where);
            err(ck, k, "\"headers\" and \"transport\" belong to an HTTP server (\"url\")");
        }
    }
    if (url != NULL) {
        snprintf(k, sizeof k, "%s.url", where);
        if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)
            err(ck, k, "must be an http(s) URL");
        u->url = expand(url);
        json_t *h = json_object_get(v, "headers");
        snprintf(k, sizeof k, "%s.headers", where);
        if (h != NULL && check_str_object(ck, h, k, true)) {
            u->headers = xcalloc(json_object_size(h) + 1, sizeof *u->headers);
            size_t n = 0;
            const char *hk;
            json_t *hv;
            json_object_foreach (h, hk, hv) {
                char *x = expand(json_string_value(hv));
                u->headers[n++] = xasprintf("%s: %s", hk, x);
                free(x);
            }
        }
        const char *t = get_str(ck, v, "transport", where);
        if (t != NULL) {
            snprintf(k, sizeof k, "%s.transport", where);
            if (strcmp(t, "http-first") != 0 && strcmp(t, "sse-first") != 0 &&
                strcmp(t, "http-only") != 0 && strcmp(t, "sse-only") != 0)
                err(ck, k, "must be http-first, sse-first, http-only or sse-only");
            u->transport = xstrdup(t);
        }
        const char *pv = get_str(ck, v, "protocolVersion", where);
        if (pv != NULL)
            u->protocol_version = xstrdup(pv);
        if (json_object_get(v, "args") != NULL || json_object_get(v, "env") != NULL) {
            err(ck, where, "\"args\" and \"env\" belong to a stdio server (\"command\")");
        }
    }
    const char *scope = get_str(ck, v, "scope", where);
    if (scope != NULL && strpbrk(scope, " \"\\") != NULL) {
        snprintf(k, sizeof k, "%s.scope", where);
        err(ck, k, "one scope token (no spaces or quotes)");
    }
    u->scope = scope != NULL ? xstrdup(scope) : xasprintf("mcp:%s", name);
    json_t *users = json_object_get(v, "users");
    if (users != NULL) {
        snprintf(k, sizeof k, "%s.users", where);
        bool ok = json_is_array(users) && json_array_size(users) <= LIST_MAX;
        size_t i;
        json_t *x;
        json_array_foreach (users, i, x)
            if (!json_is_string(x))
                ok = false;
        if (!ok)
            err(ck, k, "must be an array of usernames");
        else
            u->users = json_incref(users);
    }
    json_t *tools = json_object_get(v, "tools");
    if (tools != NULL)
        check_globs(ck, tools, where, &u->allow, &u->deny);
    const char *proc = get_str(ck, v, "process", where);
    u->process = GW_SHARED;
    if (proc != NULL) {
        if (strcmp(proc, "per-session") == 0)
            u->process = GW_PER_SESSION;
        else if (strcmp(proc, "shared") != 0) {
            snprintf(k, sizeof k, "%s.process", where);
            err(ck, k, "must be \"shared\" (one child for everyone) or \"per-session\"");
        }
        if (u->process == GW_PER_SESSION && url != NULL) {
            snprintf(k, sizeof k, "%s.process", where);
            err(ck, k, "\"per-session\" is for stdio servers (\"command\")");
        }
    }
    u->call_timeout_s = get_int(ck, v, "callTimeout", where, 300, 1, 86400);
    u->start_timeout_s = get_int(ck, v, "startTimeout", where, 30, 1, 600);
    u->idle_timeout_s = get_int(ck, v, "idleTimeout", where, 600, 1, 86400);
    u->max_restarts = get_int(ck, v, "maxRestarts", where, 5, 0, 1000);
    u->max_children = get_int(ck, v, "maxChildren", where, 50, 1, 10000);
}

/* The "server" settings serve reads (cli/serve.c): names and types. */
static void server_check(struct checker *ck, json_t *server)
{
    static const char *const strings[] = {"listen", "publicUrl", "allowedHosts", "corsOrigins",
                                          "tlsCert", "tlsKey", "db", "issuer", "scopes",
                                          "tools", "instructions", "logLevel", NULL};
    static const char *const ints[] = {"accessTtl", "refreshTtl", "purgeInterval",
                                       "maxMessage", "maxConnections",
                                       "maxConnectionsPerIp", "maxSessions", "maxStreams",
                                       "sessionIdle", "requestTimeout", "workers", NULL};
    static const char *const bools[] = {"trustProxy", "noAuth", NULL};
    const char *key;
    json_t *v;
    json_object_foreach (server, key, v) {
        char k[200];
        snprintf(k, sizeof k, "server.%s", key);
        if (is_known(key, strings)) {
            if (!json_is_string(v))
                err(ck, k, "must be a string");
        } else if (is_known(key, ints)) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > 400000000)
                err(ck, k, "must be a positive integer");
        } else if (is_known(key, bools)) {
            if (!json_is_boolean(v))
                err(ck, k, "must be true or false");
        } else {
            err(ck, k, "unknown setting");
        }
    }
}

static void upstream_clear(struct gw_upstream_cfg *u)
{
    free(u->name);
    free(u->command);
    strv_free(u->args);
    strv_free(u->env);
    free(u->cwd);
    free(u->url);
    strv_free(u->headers);
    free(u->transport);
    free(u->protocol_version);
    free(u->scope);
    json_decref(u->users);
    json_decref(u->allow);
    json_decref(u->deny);
    json_decref(u->source);
}

void gw_config_free(struct gw_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->nup; i++)
        upstream_clear(&cfg->up[i]);
    free(cfg->up);
    free(cfg->path);
    json_decref(cfg->server);
    free(cfg);
}

int gw_config_parse(const char *text, size_t len, const char *path, struct gw_config **out,
                    json_t **errors)
{
    struct checker ck = {.path = path, .errors = json_array()};
    struct gw_config *cfg = xcalloc(1, sizeof *cfg);
    json_error_t je;
    json_t *root = NULL;
    int r = ERR_INVALID;
    *out = NULL;
    *errors = NULL;
    cfg->path = xstrdup(path);
    if (len > CONFIG_MAX) {
        err(&ck, "(file)", "larger than %d bytes", CONFIG_MAX);
        goto out;
    }
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        char k[64];
        snprintf(k, sizeof k, "line %d, column %d", je.line, je.column);
        err(&ck, k, "%s", je.text);
        r = ERR_PARSE;
        goto out;
    }
    if (!json_is_object(root)) {
        err(&ck, "(top)", "must be a JSON object with \"mcpServers\"");
        goto out;
    }
    static const char *const known[] = {"mcpServers", "server", "limits", NULL};
    const char *key;
    json_t *v;
    json_object_foreach (root, key, v)
        if (!is_known(key, known))
            err(&ck, key, "unknown key (mcpServers, server, limits)");
    json_t *servers = json_object_get(root, "mcpServers");
    if (!json_is_object(servers)) {
        err(&ck, "mcpServers", "missing, or not an object of named servers");
    } else if (json_object_size(servers) > UPSTREAMS_MAX) {
        err(&ck, "mcpServers", "more than %d servers", UPSTREAMS_MAX);
    } else {
        cfg->up = xcalloc(json_object_size(servers) + 1, sizeof *cfg->up);
        json_object_foreach (servers, key, v) {
            if (json_is_true(json_object_get(v, "disabled")))
                continue;
            upstream_parse(&ck, key, v, &cfg->up[cfg->nup++]);
        }
    }
    json_t *server = json_object_get(root, "server");
    if (server != NULL && !json_is_object(server))
        err(&ck, "server", "must be an object of settings");
    else if (server != NULL)
        server_check(&ck, server), cfg->server = json_incref(server);
    json_t *limits = json_object_get(root, "limits");
    if (limits != NULL && !json_is_object(limits))
        err(&ck, "limits", "must be an object");
    cfg->max_children = get_int(&ck, limits, "maxChildren", "limits", 100, 1, 100000);
    cfg->max_children_per_user = get_int(&ck, limits, "maxChildrenPerUser", "limits", 10, 1,
                                         10000);
    if (json_array_size(ck.errors) == 0)
        r = 0;
out:
    json_decref(root);
    if (r != 0) {
        gw_config_free(cfg);
        *errors = ck.errors;
        return r;
    }
    json_decref(ck.errors);
    *out = cfg;
    return 0;
}

int gw_config_load(const char *path, struct gw_config **out, json_t **errors)
{
    *out = NULL;
    *errors = NULL;
    FILE *f = fopen(path, "re");
    struct stat st;
    if (f == NULL || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        char *line = xasprintf("%s: (file): cannot read it", path);
        *errors = json_pack("[s]", line);
        free(line);
        if (f != NULL)
            fclose(f);
        return ERR_IO;
    }
    size_t cap = (size_t)st.st_size < CONFIG_MAX ? (size_t)st.st_size + 1 : CONFIG_MAX + 1;
    char *text = xmalloc(cap + 1);
    size_t len = fread(text, 1, cap, f);
    fclose(f);
    int r = gw_config_parse(text, len, path, out, errors);
    free(text);
    return r;
}

char *gw_tool_scopes(const struct gw_config *cfg)
{
    size_t cap = 64, n = 0;
    char *s = xcalloc(1, cap);
    for (size_t i = 0; i < cfg->nup; i++) {
        char *e = xasprintf("%s%s" GW_SEP "*=%s", n > 0 ? "," : "", cfg->up[i].name,
                            cfg->up[i].scope);
        size_t el = strlen(e);
        if (n + el + 1 > cap)
            s = xrealloc(s, cap = (n + el + 1) * 2);
        memcpy(s + n, e, el + 1);
        n += el;
        free(e);
    }
    return s;
}

char *gw_scopes(const struct gw_config *cfg)
{
    size_t cap = 64, n = 0;
    char *s = xcalloc(1, cap);
    for (size_t i = 0; i < cfg->nup; i++) {
        const char *sc = cfg->up[i].scope;
        bool dup = false;
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->up[j].scope, sc) == 0)
                dup = true;
        if (dup)
            continue;
        size_t el = strlen(sc) + 1;
        if (n + el + 1 > cap)
            s = xrealloc(s, cap = (n + el + 1) * 2);
        if (n > 0)
            s[n++] = ' ';
        memcpy(s + n, sc, el);
        n += el - 1;
    }
    return s;
}
