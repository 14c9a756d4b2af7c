/* The demo toolset: a few small, real tools that show what the engine does (structured output,
 * progress, logging, cancellation, asking the user, the caller's identity), one resource, one
 * resource template and one prompt with completion. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tools/tools.h"

static int echo(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    *result = mcp_result_text(json_string_value(json_object_get(args, "text")));
    return 0;
}

static int add(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    double a = json_number_value(json_object_get(args, "a"));
    double b = json_number_value(json_object_get(args, "b"));
    double sum = a + b;
    char text[64];
    snprintf(text, sizeof(text), "%.17g", sum);
    *result = json_pack("{s:[o], s:{s:f}}", "content", mcp_content_text(text),
                        "structuredContent", "sum", sum);
    return 0;
}

static int now(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    struct timespec ts;
    struct tm tm;
    char iso[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
    *result = json_pack("{s:[o], s:{s:s, s:I}}", "content", mcp_content_text(iso),
                        "structuredContent", "utc", iso, "unix", (json_int_t)ts.tv_sec);
    return 0;
}

static int whoami(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    const struct mcp_identity *id = mcp_ctx_identity(ctx);
    json_t *s = json_pack("{s:b}", "authenticated", id->subject != NULL);
    if (id->subject != NULL) {
        json_object_set_new(s, "subject", json_string(id->subject));
        if (id->username)
            json_object_set_new(s, "username", json_string(id->username));
        if (id->client_id)
            json_object_set_new(s, "clientId", json_string(id->client_id));
        json_object_set_new(s, "scopes", json_string(id->scopes ? id->scopes : ""));
    }
    json_object_set_new(s, "protocolVersion", json_string(mcp_ctx_protocol_version(ctx)));
    char text[256];
    snprintf(text, sizeof(text), "%s (protocol %s)",
             id->subject ? (id->username ? id->username : id->subject) : "anonymous (no sign-in)",
             mcp_ctx_protocol_version(ctx));
    *result = json_pack("{s:[o], s:o}", "content", mcp_content_text(text), "structuredContent", s);
    return 0;
}

/* Counts down one step per interval, reporting progress and logging each step; stops when
 * cancelled. */
static int countdown(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    json_int_t steps = json_integer_value(json_object_get(args, "steps"));
    json_int_t ms = json_integer_value(json_object_get(args, "intervalMs"));
    if (ms == 0)
        ms = 100;
    for (json_int_t i = 0; i < steps; i++) {
        mcp_ctx_log(ctx, MCP_LOG_INFO, "countdown", json_pack("{s:I}", "remaining", steps - i));
        mcp_ctx_progress(ctx, (double)i, (double)steps, NULL);
        if (mcp_ctx_sleep(ctx, (long)ms) != 0)
            return MCPGATE_ECANCELLED;
    }
    mcp_ctx_progress(ctx, (double)steps, (double)steps, "done");
    char text[64];
    snprintf(text, sizeof(text), "counted down %lld steps", (long long)steps);
    *result = mcp_result_text(text);
    return 0;
}

/* Asks the user for their name (elicitation) in either era. */
static int greet_user(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    json_t *answer = NULL;
    json_t *params = json_pack(
        "{s:s, s:{s:s, s:{s:{s:s, s:s}}, s:[s]}}", "message", "What is your name?",
        "requestedSchema", "type", "object", "properties", "name", "type", "string",
        "description", "Your name", "required", "name");
    int r = mcp_ctx_ask(ctx, "name", "elicitation/create", params, &answer);
    if (r == MCPGATE_EUNSUPPORTED) {
        *result = mcp_result_error("this client cannot ask the user questions (no elicitation)");
        return 0;
    }
    if (r != 0)
        return r;
    const char *action = json_string_value(json_object_get(answer, "action"));
    const char *name = json_string_value(json_object_get(json_object_get(answer, "content"),
                                                         "name"));
    char text[300];
    if (action != NULL && strcmp(action, "accept") == 0 && name != NULL)
        snprintf(text, sizeof(text), "Hello, %.200s!", name);
    else
        snprintf(text, sizeof(text), "The user chose not to say (%s).", action ? action : "?");
    json_decref(answer);
    *result = mcp_result_text(text);
    return 0;
}

static int readme(struct mcp_ctx *ctx, const char *uri, json_t **contents, void *udata)
{
    *contents = json_pack("[{s:s, s:s, s:s}]", "uri", uri, "mimeType", "text/markdown", "text",
                          "# mcpgate demo\n\nTools: echo, add, time, whoami, countdown, "
                          "greet_user.\n");
    return 0;
}

static int number_fact(struct mcp_ctx *ctx, const char *uri, json_t **contents, void *udata)
{
    const char *n = mcp_ctx_uri_var(ctx, "n");
    char *end = NULL;
    long long v = strtoll(n, &end, 10);
    if (end == n || *end != '\0')
        return MCPGATE_ENOTFOUND;
    char text[128];
    snprintf(text, sizeof(text), "%lld is %s.", v, v % 2 == 0 ? "even" : "odd");
    *contents = json_pack("[{s:s, s:s, s:s}]", "uri", uri, "mimeType", "text/plain", "text", text);
    return 0;
}

static int greeting_prompt(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    const char *name = json_string_value(json_object_get(args, "name"));
    const char *style = json_string_value(json_object_get(args, "style"));
    char text[400];
    snprintf(text, sizeof(text), "Write a %.40s greeting for %.200s.", style ? style : "friendly",
             name);
    *result = json_pack("{s:s, s:[{s:s, s:o}]}", "description", "A greeting", "messages", "role",
                        "user", "content", mcp_content_text(text));
    return 0;
}

static int complete(struct mcp_ctx *ctx, json_t *ref, const char *arg, const char *value,
                    json_t *context_args, json_t **values, void *udata)
{
    static const char *const styles[] = {"friendly", "formal", "funny", "poetic"};
    *values = json_array();
    if (strcmp(arg, "style") != 0)
        return 0;
    for (size_t i = 0; i < 4; i++) {
        if (strncmp(styles[i], value, strlen(value)) == 0)
            json_array_append_new(*values, json_string(styles[i]));
    }
    return 0;
}

int tools_demo_register(struct mcp_server *srv)
{
    static const struct mcp_tool_def tools[] = {
        {.name = "echo",
         .title = "Echo",
         .description = "Returns the text it is given.",
         .input_schema = "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\","
                         "\"description\":\"Text to echo\"}},\"required\":[\"text\"],"
                         "\"additionalProperties\":false}",
         .annotations = "{\"readOnlyHint\":true,\"openWorldHint\":false}",
         .handler = echo,
         .flags = MCP_TOOL_NONBLOCKING},
        {.name = "add",
         .title = "Add two numbers",
         .description = "Adds a and b.",
         .input_schema = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"number\"},"
                         "\"b\":{\"type\":\"number\"}},\"required\":[\"a\",\"b\"],"
                         "\"additionalProperties\":false}",
         .output_schema = "{\"type\":\"object\",\"properties\":{\"sum\":{\"type\":\"number\"}},"
                          "\"required\":[\"sum\"]}",
         .annotations = "{\"readOnlyHint\":true,\"idempotentHint\":true,\"openWorldHint\":false}",
         .handler = add,
         .flags = MCP_TOOL_NONBLOCKING},
        {.name = "time",
         .title = "Current time",
         .description = "The current time in UTC (ISO 8601 and Unix seconds).",
         .input_schema = "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}",
         .output_schema = "{\"type\":\"object\",\"properties\":{\"utc\":{\"type\":\"string\"},"
                          "\"unix\":{\"type\":\"integer\"}},\"required\":[\"utc\",\"unix\"]}",
         .annotations = "{\"readOnlyHint\":true,\"openWorldHint\":false}",
         .handler = now,
         .flags = MCP_TOOL_NONBLOCKING},
        {.name = "whoami",
         .title = "Who am I",
         .description = "Who the server believes is calling: user, client and granted scopes.",
         .input_schema = "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}",
         .annotations = "{\"readOnlyHint\":true,\"openWorldHint\":false}",
         .handler = whoami,
         .flags = MCP_TOOL_NONBLOCKING},
        {.name = "countdown",
         .title = "Count down",
         .description = "Counts down, reporting progress and a log message at each step. "
                        "Cancellable.",
         .input_schema = "{\"type\":\"object\",\"properties\":{\"steps\":{\"type\":\"integer\","
                         "\"minimum\":1,\"maximum\":1000},\"intervalMs\":{\"type\":\"integer\","
                         "\"minimum\":1,\"maximum\":60000}},\"required\":[\"steps\"],"
                         "\"additionalProperties\":false}",
         .annotations = "{\"readOnlyHint\":true,\"openWorldHint\":false}",
         .handler = countdown},
        {.name = "greet_user",
         .title = "Greet the user",
         .description = "Asks the user for their name (elicitation), then greets them.",
         .input_schema = "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}",
         .handler = greet_user},
    };
    int r;
    for (size_t i = 0; i < sizeof(tools) / sizeof(*tools); i++) {
        if ((r = mcp_tool_add(srv, &tools[i])) != 0)
            return r;
    }
    struct mcp_resource_def res = {.uri = "demo://readme", .name = "readme",
                                   .title = "About the demo", .mime_type = "text/markdown",
                                   .size = -1, .handler = readme};
    struct mcp_resource_template_def tpl = {.uri_template = "demo://numbers/{n}",
                                            .name = "number-fact", .title = "A fact about n",
                                            .mime_type = "text/plain", .handler = number_fact};
    struct mcp_prompt_def prompt = {
        .name = "greeting", .title = "Greeting", .description = "Write a greeting for someone.",
        .arguments = "[{\"name\":\"name\",\"description\":\"Who to greet\",\"required\":true},"
                     "{\"name\":\"style\",\"description\":\"friendly, formal, funny or "
                     "poetic\"}]",
        .handler = greeting_prompt};
    if ((r = mcp_resource_add(srv, &res)) != 0 || (r = mcp_resource_template_add(srv, &tpl)) != 0 ||
        (r = mcp_prompt_add(srv, &prompt)) != 0)
        return r;
    mcp_completion_set(srv, complete, NULL);
    return 0;
}
