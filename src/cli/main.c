/* mcpgate: one binary for an MCP server with OAuth, a gateway, and a client proxy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "mcpgate/mcpgate.h"

static const char usage[] =
    "usage: mcpgate COMMAND [options]\n"
    "\n"
    "Commands:\n"
    "  serve      run an MCP server (stdio with --stdio)\n"
    "  connect    serve a remote MCP server on stdin/stdout (for Claude Desktop), signing in\n"
    "  login      sign in to a remote MCP server\n"
    "  logout     revoke and forget the tokens of a remote MCP server\n"
    "  token      print a valid access token for a remote MCP server\n"
    "  tools      list the tools of an MCP server\n"
    "  call       call a tool of an MCP server\n"
    "  user       add, list, remove users, set their passwords\n"
    "  client     add, list, remove OAuth clients\n"
    "  keys       rotate and list the token signing keys\n"
    "  audit      print the audit log\n"
    "  version    print the version\n"
    "  help       print this help\n"
    "\n"
    "Run 'mcpgate COMMAND --help' for the options of a command.\n";

int cli_parse_size(const char *s, size_t *out)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s)
        return -1;
    unsigned long long mult = 1;
    if (*end == 'k' || *end == 'K')
        mult = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        mult = 1024 * 1024, end++;
    if (*end != '\0' || v == 0 || v > (1ull << 40) / mult)
        return -1;
    *out = (size_t)(v * mult);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("mcpgate %s\n", mcpgate_version());
        return 0;
    }
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "user") == 0)
        return cmd_user(argc - 1, argv + 1);
    if (strcmp(cmd, "client") == 0)
        return cmd_client(argc - 1, argv + 1);
    if (strcmp(cmd, "keys") == 0)
        return cmd_keys(argc - 1, argv + 1);
    if (strcmp(cmd, "audit") == 0)
        return cmd_audit(argc - 1, argv + 1);
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } client_cmds[] = {{"connect", cmd_connect}, {"login", cmd_login}, {"logout", cmd_logout},
                       {"token", cmd_token},     {"tools", cmd_tools}, {"call", cmd_call}};
    for (size_t i = 0; i < sizeof client_cmds / sizeof client_cmds[0]; i++)
        if (strcmp(cmd, client_cmds[i].name) == 0)
            return client_cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mcpgate: unknown command '%s'\n\n%s", cmd, usage);
    return 2;
}
