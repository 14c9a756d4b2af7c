/* schemacheck: validates every message mcpgate sent against the official MCP JSON Schema of its
 * protocol revision, with mcpgate's own validator (src/mcp/jsonschema.h).
 *
 *     schemacheck SCHEMA_DIR CLIENT_TO_SERVER.jsonl SERVER_TO_CLIENT.jsonl
 *
 * Each file holds one JSON-RPC message per line, as captured with tee. SCHEMA_DIR holds one
 * schema per revision, named <revision>.json (definitions under "$defs" or "definitions").
 *
 * The client's requests tell each response its type (paired by id: initialize ->
 * InitializeResult, tools/call -> CallToolResult or InputRequiredResult, ...). The revision of a
 * request is the one its params._meta["io.modelcontextprotocol/protocolVersion"] names, else the
 * one the initialize result negotiated. Revisions without a schema file (2025-03-26, 2024-11-05)
 * are checked against 2025-06-18, and a note says so. Server notifications and server-to-client
 * requests are checked by method; every message is also checked against its revision's JSON-RPC
 * envelope (JSONRPCResponse/JSONRPCError in 2025-06-18, JSONRPCResultResponse/
 * JSONRPCErrorResponse later), and errors whose code has a definition of its own in the revision
 * (ParseError, UnsupportedProtocolVersionError, ...) against it too.
 *
 * A message whose type or revision cannot be told is a failure, never a pass. One line is printed
 * per message checked, then "schemacheck: N passed, M failed"; the exit status is 1 when M > 0 or
 * N == 0, 2 on a usage or I/O error.
 *
 * An error answering a message whose id could not be read carries no id: the MCP schemas type
 * id as string|integer and let it be omitted (JSON-RPC 2.0's "id": null is not valid MCP), so
 * such an error is checked as it is, and a null id fails. */
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "mcp/jsonrpc.h"
#include "mcp/jsonschema.h"

#define MODERN_REVISION "2026-07-28"
#define OLDEST_SCHEMA "2025-06-18"
#define MAX_REVS 16
#define MAX_NOTES 32
#define META_VERSION "io.modelcontextprotocol/protocolVersion"

struct rev {
    char version[32];
    json_t *doc;        /* owned */
    struct jschema *js; /* owned */
    const char *defs;   /* "$defs" or "definitions" (borrowed from a literal) */
};

/* A request the client sent. */
struct req {
    char *key;            /* jsonrpc_id_key(id), owned */
    char *method;         /* owned */
    char *meta_version;   /* params._meta protocol version, owned, NULL when absent */
    json_t *progress;     /* params._meta.progressToken, owned, NULL when absent */
    const char *init_ask; /* initialize: params.protocolVersion (borrowed from requested) */
    json_t *msg;          /* the request, owned */
    bool answered;
};

struct checker {
    const char *dir;
    struct rev revs[MAX_REVS];
    size_t nrevs;
    struct req *reqs; /* owned */
    size_t nreqs, capreqs;
    char session[32]; /* the schema revision of messages outside any _meta request, or "" */
    char *notes[MAX_NOTES];
    size_t nnotes;
    unsigned passed, failed;
};

static void note(struct checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct checker *c, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < c->nnotes; i++) {
        if (strcmp(c->notes[i], buf) == 0)
            return;
    }
    if (c->nnotes < MAX_NOTES)
        c->notes[c->nnotes++] = xstrdup(buf);
    printf("note: %s\n", buf);
}

/* ---- schemas ---- */

/* The compiled schema of a revision, loaded on first use; NULL when there is no file. */
static struct rev *rev_get(struct checker *c, const char *version)
{
    for (size_t i = 0; i < c->nrevs; i++) {
        if (strcmp(c->revs[i].version, version) == 0)
            return c->revs[i].js != NULL ? &c->revs[i] : NULL;
    }
    if (c->nrevs == MAX_REVS || strlen(version) >= sizeof(c->revs[0].version) ||
        strchr(version, '/') != NULL)
        return NULL;
    struct rev *r = &c->revs[c->nrevs++];
    memset(r, 0, sizeof(*r));
    snprintf(r->version, sizeof(r->version), "%s", version);
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.json", c->dir, version);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL; /* remembered as absent */
    fclose(f);
    json_error_t jerr;
    r->doc = json_load_file(path, 0, &jerr);
    if (r->doc == NULL) {
        fprintf(stderr, "schemacheck: %s: %s (line %d)\n", path, jerr.text, jerr.line);
        exit(2);
    }
    r->defs = json_object_get(r->doc, "$defs") != NULL ? "$defs" : "definitions";
    char *err = NULL;
    if (jschema_new(r->doc, &r->js, &err) != 0) {
        fprintf(stderr, "schemacheck: %s does not compile: %s\n", path, err ? err : "?");
        exit(2);
    }
    free(err);
    return r;
}

static bool rev_has(const struct rev *r, const char *def)
{
    return json_object_get(json_object_get(r->doc, r->defs), def) != NULL;
}

/* The schema revision for a protocol version. from_meta: the version came from a request's
 * _meta (only 2026-07-28 and later put it there). NULL when none applies. */
static struct rev *rev_for(struct checker *c, const char *version, bool from_meta)
{
    struct rev *r = rev_get(c, version);
    if (r != NULL)
        return r;
    if (strcmp(version, "2025-03-26") == 0 || strcmp(version, "2024-11-05") == 0) {
        note(c, "revision %s has no schema file: its messages are checked against %s", version,
             OLDEST_SCHEMA);
        return rev_get(c, OLDEST_SCHEMA);
    }
    if (from_meta) {
        note(c,
             "requests naming the unknown revision '%s' in _meta are checked against %s, the "
             "revision that defines per-request versions and their errors",
             version, MODERN_REVISION);
        return rev_get(c, MODERN_REVISION);
    }
    return NULL;
}

/* ---- input ---- */

/* Calls fn for each line of path (without its newline); returns the number of lines. */
static size_t read_lines(const char *path, void (*fn)(void *, const char *, size_t, size_t),
                         void *arg)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "schemacheck: %s: cannot open\n", path);
        exit(2);
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)n;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        fn(arg, line, len, lineno);
    }
    free(line);
    fclose(f);
    return lineno;
}

static bool id_usable(const json_t *id)
{
    return json_is_string(id) || json_is_integer(id);
}

static void add_request(struct checker *c, json_t *m)
{
    json_t *id = json_object_get(m, "id");
    json_t *method = json_object_get(m, "method");
    if (!id_usable(id) || !json_is_string(method))
        return; /* a notification, a response, or something the server rejected */
    if (c->nreqs == c->capreqs) {
        c->capreqs = c->capreqs ? c->capreqs * 2 : 64;
        c->reqs = xrealloc(c->reqs, c->capreqs * sizeof(*c->reqs));
    }
    struct req *q = &c->reqs[c->nreqs++];
    memset(q, 0, sizeof(*q));
    q->key = jsonrpc_id_key(id);
    q->method = xstrdup(json_string_value(method));
    q->msg = json_incref(m);
    json_t *params = json_object_get(m, "params");
    json_t *meta = json_object_get(params, "_meta");
    json_t *pv = json_object_get(meta, META_VERSION);
    if (pv != NULL)
        q->meta_version = xstrdup(json_is_string(pv) ? json_string_value(pv) : "(not a string)");
    json_t *tok = json_object_get(meta, "progressToken");
    if (tok != NULL)
        q->progress = json_incref(tok);
    if (strcmp(q->method, "initialize") == 0)
        q->init_ask = json_string_value(json_object_get(params, "protocolVersion"));
}

static void client_line(void *arg, const char *line, size_t len, size_t lineno)
{
    struct checker *c = arg;
    json_t *m = json_loadb(line, len, 0, NULL);
    if (m == NULL)
        return; /* malformed on purpose, or not JSON: the server's answer has id null */
    if (json_is_array(m)) {
        size_t i;
        json_t *e;
        json_array_foreach (m, i, e)
            add_request(c, e);
    } else {
        add_request(c, m);
    }
    json_decref(m);
}

struct out_line {
    char *text; /* owned */
    size_t len, lineno;
};

struct out_lines {
    struct out_line *v;
    size_t n, cap;
};

static void server_line(void *arg, const char *line, size_t len, size_t lineno)
{
    struct out_lines *o = arg;
    if (len == 0)
        return;
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 64;
        o->v = xrealloc(o->v, o->cap * sizeof(*o->v));
    }
    o->v[o->n].text = xstrndup(line, len);
    o->v[o->n].len = len;
    o->v[o->n].lineno = lineno;
    o->n++;
}

/* The first unanswered request with this id; marks it answered when take. */
static struct req *find_request(struct checker *c, const json_t *id, bool take)
{
    char *key = jsonrpc_id_key(id);
    struct req *found = NULL;
    for (size_t i = 0; i < c->nreqs && found == NULL; i++) {
        if (!c->reqs[i].answered && strcmp(c->reqs[i].key, key) == 0)
            found = &c->reqs[i];
    }
    free(key);
    if (found != NULL && take)
        found->answered = true;
    return found;
}

/* The revision of messages that belong to no _meta request: the one initialize negotiated;
 * without an initialize, the stream's 2026-07-28 requests decide. */
static void choose_session_revision(struct checker *c, struct out_lines *o)
{
    const char *negotiated = NULL;
    json_t *keep = NULL;
    struct req *init = NULL;
    for (size_t i = 0; i < c->nreqs && init == NULL; i++) {
        if (strcmp(c->reqs[i].method, "initialize") == 0 && c->reqs[i].meta_version == NULL)
            init = &c->reqs[i];
    }
    for (size_t i = 0; init != NULL && i < o->n && negotiated == NULL; i++) {
        json_t *m = json_loadb(o->v[i].text, o->v[i].len, 0, NULL);
        json_t *pv = json_object_get(json_object_get(m, "result"), "protocolVersion");
        json_t *id = json_object_get(m, "id");
        if (json_is_string(pv) && id_usable(id)) {
            char *key = jsonrpc_id_key(id);
            if (strcmp(key, init->key) == 0) {
                keep = json_incref(pv);
                negotiated = json_string_value(pv);
            }
            free(key);
        }
        json_decref(m);
    }
    if (negotiated != NULL) {
        struct rev *r = rev_for(c, negotiated, false);
        if (r != NULL)
            snprintf(c->session, sizeof(c->session), "%s", r->version);
        printf("note: initialize negotiated protocol %s (schema %s)\n", negotiated,
               r ? r->version : "none");
    } else {
        for (size_t i = 0; i < c->nreqs; i++) {
            if (c->reqs[i].meta_version != NULL && rev_get(c, c->reqs[i].meta_version) != NULL) {
                snprintf(c->session, sizeof(c->session), "%s", c->reqs[i].meta_version);
                printf("note: no initialize in this stream: messages outside a request are "
                       "checked against %s, the revision its requests named in _meta\n",
                       c->session);
                break;
            }
        }
    }
    json_decref(keep);
}

/* ---- checking ---- */

struct check {
    const char *def;        /* definition name */
    const json_t *instance; /* borrowed */
};

static void idstr(const json_t *id, char *buf, size_t n)
{
    if (json_is_string(id))
        snprintf(buf, n, "\"%s\"", json_string_value(id));
    else if (json_is_integer(id))
        snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
    else if (json_is_null(id))
        snprintf(buf, n, "null");
    else
        snprintf(buf, n, "-");
}

static void fail_line(struct checker *c, const char *def, const char *path, const char *msg,
                      const char *where)
{
    printf("FAIL %s at %s: %s [%s]\n", def, path[0] ? path : "/", msg, where);
    c->failed++;
}

/* Runs the checks in order; the first failure is reported, or "ok" with the last definition. */
static void run_checks(struct checker *c, const struct rev *r, const struct check *checks, size_t n,
                       const char *where, const char *extra)
{
    for (size_t i = 0; i < n; i++) {
        char ref[128];
        struct jschema_error err;
        memset(&err, 0, sizeof(err));
        snprintf(ref, sizeof(ref), "#/%s/%s", r->defs, checks[i].def);
        int rc = jschema_validate(r->js, ref, checks[i].instance, &err);
        if (rc == ERR_NOTFOUND) {
            char msg[160];
            snprintf(msg, sizeof(msg), "revision %s defines no %s", r->version, checks[i].def);
            fail_line(c, checks[i].def, "", msg, where);
            return;
        }
        if (rc != 0) {
            fail_line(c, checks[i].def, err.path, rc == ERR_INVALID ? err.message : err_str(rc),
                      where);
            return;
        }
    }
    printf("ok   %s %s[%s]\n", checks[n - 1].def, extra ? extra : "", where);
    c->passed++;
}

static const char *lookup(const char *const (*table)[2], size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i][0], key) == 0)
            return table[i][1];
    }
    return NULL;
}

#define COUNT(a) (sizeof(a) / sizeof(*(a)))

static const char *const result_defs[][2] = {
    {"initialize", "InitializeResult"},
    {"tools/list", "ListToolsResult"},
    {"tools/call", "CallToolResult"},
    {"resources/list", "ListResourcesResult"},
    {"resources/templates/list", "ListResourceTemplatesResult"},
    {"resources/read", "ReadResourceResult"},
    {"prompts/list", "ListPromptsResult"},
    {"prompts/get", "GetPromptResult"},
    {"completion/complete", "CompleteResult"},
    {"ping", "EmptyResult"},
    {"logging/setLevel", "EmptyResult"},
    {"resources/subscribe", "EmptyResult"},
    {"resources/unsubscribe", "EmptyResult"},
    {"server/discover", "DiscoverResult"},
    {"subscriptions/listen", "SubscriptionsListenResult"},
    {"tasks/get", "GetTaskResult"},
    {"tasks/list", "ListTasksResult"},
    {"tasks/cancel", "CancelTaskResult"},
    {"tasks/result", "GetTaskPayloadResult"},
};

static const char *const notification_defs[][2] = {
    {"notifications/progress", "ProgressNotification"},
    {"notifications/message", "LoggingMessageNotification"},
    {"notifications/cancelled", "CancelledNotification"},
    {"notifications/tools/list_changed", "ToolListChangedNotification"},
    {"notifications/resources/list_changed", "ResourceListChangedNotification"},
    {"notifications/prompts/list_changed", "PromptListChangedNotification"},
    {"notifications/resources/updated", "ResourceUpdatedNotification"},
    {"notifications/subscriptions/acknowledged", "SubscriptionsAcknowledgedNotification"},
    {"notifications/elicitation/complete", "ElicitationCompleteNotification"},
    {"notifications/tasks/status", "TaskStatusNotification"},
};

static const char *const server_request_defs[][2] = {
    {"elicitation/create", "ElicitRequest"},
    {"sampling/createMessage", "CreateMessageRequest"},
    {"roots/list", "ListRootsRequest"},
    {"ping", "PingRequest"},
};

static const struct {
    int code;
    const char *def;
} error_defs[] = {
    {-32700, "ParseError"},
    {-32600, "InvalidRequestError"},
    {-32601, "MethodNotFoundError"},
    {-32602, "InvalidParamsError"},
    {-32603, "InternalError"},
    {-32020, "HeaderMismatchError"},
    {-32021, "MissingRequiredClientCapabilityError"},
    {-32022, "UnsupportedProtocolVersionError"},
    {-32042, "URLElicitationRequiredError"},
};

static struct rev *session_rev(struct checker *c)
{
    return c->session[0] ? rev_get(c, c->session) : NULL;
}

static struct rev *request_rev(struct checker *c, const struct req *q, const json_t *result)
{
    if (q->meta_version != NULL)
        return rev_for(c, q->meta_version, true);
    if (strcmp(q->method, "initialize") == 0) {
        const char *v = json_string_value(json_object_get(result, "protocolVersion"));
        if (v == NULL)
            v = q->init_ask;
        struct rev *r = v ? rev_for(c, v, false) : NULL;
        return r != NULL ? r : session_rev(c);
    }
    if (strcmp(q->method, "server/discover") == 0 ||
        strcmp(q->method, "subscriptions/listen") == 0) {
        note(c, "%s without a _meta version is checked against %s, the only revision that has it",
             q->method, MODERN_REVISION);
        return rev_get(c, MODERN_REVISION);
    }
    return session_rev(c);
}

static void check_response(struct checker *c, json_t *m, const char *where_in)
{
    json_t *id = json_object_get(m, "id");
    json_t *result = json_object_get(m, "result");
    json_t *error = json_object_get(m, "error");
    char where[256], ids[96];
    struct rev *r = NULL;
    const char *method = NULL;
    json_t *checked = m;
    json_t *copy = NULL;
    const char *extra = NULL;

    idstr(id, ids, sizeof(ids));
    if (id_usable(id)) {
        struct req *q = find_request(c, id, true);
        if (q == NULL) {
            snprintf(where, sizeof(where), "id=%s %s", ids, where_in);
            fail_line(c, result ? "JSONRPCResultResponse" : "JSONRPCErrorResponse", "/id",
                      "answers no request the client sent (or one already answered)", where);
            return;
        }
        method = q->method;
        r = request_rev(c, q, result);
    } else if (error != NULL && (id == NULL || json_is_null(id))) {
        r = session_rev(c);
    }
    snprintf(where, sizeof(where), "id=%s %s%s%s", ids, method ? method : "", method ? " " : "",
             where_in);
    if (r == NULL) {
        fail_line(c, error ? "JSONRPCErrorResponse" : "JSONRPCResultResponse", "",
                  "cannot determine the protocol revision of this response", where);
        goto out;
    }
    snprintf(where + strlen(where), sizeof(where) - strlen(where), " %s", r->version);

    if (error != NULL) {
        const char *env =
            rev_has(r, "JSONRPCErrorResponse") ? "JSONRPCErrorResponse" : "JSONRPCError";
        struct check checks[2] = {{env, checked}};
        size_t n = 1;
        json_int_t code = json_integer_value(json_object_get(error, "code"));
        for (size_t i = 0; i < COUNT(error_defs); i++) {
            if (error_defs[i].code != code || !rev_has(r, error_defs[i].def))
                continue;
            /* Some are Error objects, some whole error responses. */
            json_t *d = json_object_get(json_object_get(r->doc, r->defs), error_defs[i].def);
            bool whole = json_object_get(json_object_get(d, "properties"), "error") != NULL;
            checks[n++] = (struct check){error_defs[i].def, whole ? checked : error};
        }
        run_checks(c, r, checks, n, where, extra);
        goto out;
    }
    if (result == NULL) {
        fail_line(c, "JSONRPCResultResponse", "", "a response with neither result nor error",
                  where);
        goto out;
    }
    const char *def = lookup(result_defs, COUNT(result_defs), method);
    const char *rt = json_string_value(json_object_get(result, "resultType"));
    if (rt != NULL && strcmp(rt, "input_required") == 0)
        def = "InputRequiredResult";
    if (def == NULL) {
        char msg[200];
        snprintf(msg, sizeof(msg), "cannot tell the result type of method '%.100s'", method);
        fail_line(c, "Result", "", msg, where);
        goto out;
    }
    const char *env =
        rev_has(r, "JSONRPCResultResponse") ? "JSONRPCResultResponse" : "JSONRPCResponse";
    struct check checks[] = {{env, m}, {def, result}};
    run_checks(c, r, checks, COUNT(checks), where, NULL);
out:
    json_decref(copy);
}

/* The request a server notification belongs to, when it says (progress token, subscription). */
static struct req *notification_request(struct checker *c, const char *method, json_t *params)
{
    json_t *tok = json_object_get(params, "progressToken");
    if (strcmp(method, "notifications/progress") == 0 && tok != NULL) {
        for (size_t i = 0; i < c->nreqs; i++) {
            if (c->reqs[i].progress != NULL && json_equal(c->reqs[i].progress, tok))
                return &c->reqs[i];
        }
    }
    json_t *sub =
        json_object_get(json_object_get(params, "_meta"), "io.modelcontextprotocol/subscriptionId");
    if (id_usable(sub)) {
        char *key = jsonrpc_id_key(sub);
        struct req *found = NULL;
        for (size_t i = 0; i < c->nreqs && found == NULL; i++) {
            if (strcmp(c->reqs[i].key, key) == 0 &&
                strcmp(c->reqs[i].method, "subscriptions/listen") == 0)
                found = &c->reqs[i];
        }
        free(key);
        return found;
    }
    return NULL;
}

static void check_message(struct checker *c, json_t *m, size_t lineno)
{
    char where_in[64], where[256], ids[96];
    snprintf(where_in, sizeof(where_in), "line %zu", lineno);
    if (!json_is_object(m)) {
        fail_line(c, "JSONRPCMessage", "", "not a JSON-RPC message object", where_in);
        return;
    }
    json_t *method = json_object_get(m, "method");
    json_t *id = json_object_get(m, "id");
    if (method == NULL) {
        if (json_object_get(m, "result") == NULL && json_object_get(m, "error") == NULL) {
            fail_line(c, "JSONRPCMessage", "", "neither a request, a notification nor a response",
                      where_in);
            return;
        }
        check_response(c, m, where_in);
        return;
    }
    const char *name = json_is_string(method) ? json_string_value(method) : "(not a string)";
    idstr(id, ids, sizeof(ids));
    if (id != NULL) {
        /* A server-to-client request (legacy era). */
        snprintf(where, sizeof(where), "id=%s %s %s", ids, name, where_in);
        const char *def = lookup(server_request_defs, COUNT(server_request_defs), name);
        struct rev *r = session_rev(c);
        if (def == NULL || r == NULL) {
            fail_line(c, "ServerRequest", "",
                      def == NULL ? "no definition for this server-to-client request method"
                                  : "cannot determine the protocol revision",
                      where);
            return;
        }
        snprintf(where + strlen(where), sizeof(where) - strlen(where), " %s", r->version);
        struct check checks[] = {{"JSONRPCRequest", m}, {def, m}};
        run_checks(c, r, checks, COUNT(checks), where, NULL);
        return;
    }
    snprintf(where, sizeof(where), "%s %s", name, where_in);
    const char *def = lookup(notification_defs, COUNT(notification_defs), name);
    struct req *q = notification_request(c, name, json_object_get(m, "params"));
    struct rev *r = q != NULL ? request_rev(c, q, NULL) : session_rev(c);
    if (def == NULL || r == NULL) {
        fail_line(c, "ServerNotification", "",
                  def == NULL ? "no definition for this notification method"
                              : "cannot determine the protocol revision",
                  where);
        return;
    }
    snprintf(where + strlen(where), sizeof(where) - strlen(where), " %s", r->version);
    struct check checks[] = {{"JSONRPCNotification", m}, {def, m}};
    run_checks(c, r, checks, COUNT(checks), where, NULL);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr,
                "usage: schemacheck SCHEMA_DIR CLIENT_TO_SERVER.jsonl SERVER_TO_CLIENT.jsonl\n");
        return 2;
    }
    struct checker c;
    memset(&c, 0, sizeof(c));
    c.dir = argv[1];
    struct out_lines out = {0};

    read_lines(argv[2], client_line, &c);
    read_lines(argv[3], server_line, &out);
    choose_session_revision(&c, &out);

    for (size_t i = 0; i < out.n; i++) {
        json_error_t jerr;
        json_t *m = json_loadb(out.v[i].text, out.v[i].len, 0, &jerr);
        if (m == NULL) {
            char where[64], msg[256];
            snprintf(where, sizeof(where), "line %zu", out.v[i].lineno);
            snprintf(msg, sizeof(msg), "not JSON: %s", jerr.text);
            fail_line(&c, "JSONRPCMessage", "", msg, where);
        } else {
            check_message(&c, m, out.v[i].lineno);
        }
        json_decref(m);
        free(out.v[i].text);
    }
    free(out.v);

    size_t open = 0;
    for (size_t i = 0; i < c.nreqs; i++) {
        if (!c.reqs[i].answered)
            open++;
        free(c.reqs[i].key);
        free(c.reqs[i].method);
        free(c.reqs[i].meta_version);
        json_decref(c.reqs[i].progress);
        json_decref(c.reqs[i].msg);
    }
    free(c.reqs);
    if (open > 0)
        printf("note: %zu client request(s) got no response (cancelled, or still open)\n", open);
    for (size_t i = 0; i < c.nrevs; i++) {
        jschema_free(c.revs[i].js);
        json_decref(c.revs[i].doc);
    }
    for (size_t i = 0; i < c.nnotes; i++)
        free(c.notes[i]);
    printf("schemacheck: %u passed, %u failed\n", c.passed, c.failed);
    return c.failed > 0 || c.passed == 0 ? 1 : 0;
}
