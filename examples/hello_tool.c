/* A minimal MCP server built on libmcpgate: one tool, served over stdio or HTTP.
 *
 *     cc hello_tool.c $(pkg-config --cflags --libs jansson) -lmcpgate ... -o hello_tool
 *     ./hello_tool                       # MCP on stdin/stdout
 *     ./hello_tool --http 127.0.0.1:8080 # MCP at http://127.0.0.1:8080/mcp until Ctrl-C
 */
#include <stdio.h>
#include <string.h>

#include <mcpgate/mcpgate.h>

/* Greets someone; asks for a name through elicitation when none was given, which works in
 * both protocol eras without the tool knowing which one the client speaks. */
static int hello(struct mcp_ctx *ctx, json_t *args, json_t **result, void *udata)
{
    const char *name = json_string_value(json_object_get(args, "name"));
    json_t *answer = NULL;
    if (name == NULL) {
        json_t *q = json_pack("{s:s, s:{s:s, s:{s:{s:s}}, s:[s]}}", "message", "Who is this?",
                              "requestedSchema", "type", "object", "properties", "name", "type",
                              "string", "required", "name");
        int r = mcp_ctx_ask(ctx, "who", "elicitation/create", q, &answer);
        if (r == MCPGATE_EUNSUPPORTED)
            name = "stranger"; /* the client cannot ask: fall back */
        else if (r != 0)
            return r; /* includes MCPGATE_EINPUT_REQUIRED: the engine asks and calls us again */
        else
            name = json_string_value(json_object_get(json_object_get(answer, "content"), "name"));
    }
    char text[256];
    snprintf(text, sizeof(text), "Hello, %.200s! (protocol %s)", name ? name : "stranger",
             mcp_ctx_protocol_version(ctx));
    json_decref(answer);
    *result = mcp_result_text(text);
    return 0;
}

static void ready(void *arg, const char *url)
{
    fprintf(stderr, "hello_tool: serving MCP at %s\n", url);
}

int main(int argc, char **argv)
{
    struct mcp_server *srv = mcp_server_new("hello", "1.0.0");
    struct mcp_tool_def tool = {
        .name = "hello",
        .description = "Says hello to someone.",
        .input_schema = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\","
                        "\"maxLength\":100}},\"additionalProperties\":false}",
        .annotations = "{\"readOnlyHint\":true}",
        .handler = hello,
    };
    if (mcp_tool_add(srv, &tool) != 0)
        return 1;
    int r;
    if (argc == 3 && strcmp(argv[1], "--http") == 0) {
        struct mcp_http_options http = {.listen = argv[2], .on_ready = ready};
        r = mcp_serve_http(srv, &http);
    } else {
        r = mcp_serve_stdio(srv);
    }
    mcp_server_free(srv);
    return r == 0 ? 0 : 1;
}
