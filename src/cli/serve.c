/* mcpgate serve */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/log.h"
#include "mcpgate/mcpgate.h"
#include "tools/tools.h"

static const char serve_usage[] =
    "usage: mcpgate serve --stdio [options]\n"
    "\n"
    "Serves MCP, answering both protocol eras: the initialize handshake (2024-11-05,\n"
    "2025-03-26, 2025-06-18, 2025-11-25) and the stateless 2026-07-28 revision.\n"
    "\n"
    "Transport:\n"
    "  --stdio                  newline-delimited JSON-RPC on stdin/stdout (logs on stderr)\n"
    "\n"
    "Content:\n"
    "  --tools SET[,SET]        built-in toolsets: demo (echo, add, time, whoami, countdown,\n"
    "                           greet_user, a resource, a prompt), conformance (the fixtures of\n"
    "                           the official conformance suite); default: demo\n"
    "  --instructions TEXT      instructions sent to clients at initialize/discover\n"
    "\n"
    "Limits:\n"
    "  --max-message SIZE       largest message accepted (default 4M; k and M suffixes)\n"
    "  --max-depth N            deepest JSON nesting accepted (default 64)\n"
    "  --page-size N            items per page of list results (default 100)\n"
    "  --workers N              handler threads (default: 2 per core + 2)\n"
    "\n"
    "Other:\n"
    "  --log-level LEVEL        debug, info, warn, error or off (default info; stderr)\n"
    "  -h, --help               this help\n";

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || *end != '\0' || v == 0 || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    enum { O_STDIO = 1000, O_TOOLS, O_INSTR, O_MAXMSG, O_MAXDEPTH, O_PAGE, O_WORKERS, O_LOG };
    static const struct option opts[] = {
        {"stdio", no_argument, NULL, O_STDIO},
        {"tools", required_argument, NULL, O_TOOLS},
        {"instructions", required_argument, NULL, O_INSTR},
        {"max-message", required_argument, NULL, O_MAXMSG},
        {"max-depth", required_argument, NULL, O_MAXDEPTH},
        {"page-size", required_argument, NULL, O_PAGE},
        {"workers", required_argument, NULL, O_WORKERS},
        {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int stdio = 0;
    const char *toolsets = "demo", *instructions = NULL;
    size_t max_message = 4u << 20;
    unsigned max_depth = 64, page_size = 100, workers = 0;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_STDIO: stdio = 1; break;
        case O_TOOLS: toolsets = optarg; break;
        case O_INSTR: instructions = optarg; break;
        case O_MAXMSG:
            if (cli_parse_size(optarg, &max_message) != 0) {
                fprintf(stderr, "mcpgate serve: --max-message: '%s' is not a size\n", optarg);
                return 2;
            }
            break;
        case O_MAXDEPTH:
            if (parse_uint(optarg, 10000, &max_depth) != 0) {
                fprintf(stderr, "mcpgate serve: --max-depth: expected 1..10000\n");
                return 2;
            }
            break;
        case O_PAGE:
            if (parse_uint(optarg, 100000, &page_size) != 0) {
                fprintf(stderr, "mcpgate serve: --page-size: expected 1..100000\n");
                return 2;
            }
            break;
        case O_WORKERS:
            if (parse_uint(optarg, 1024, &workers) != 0) {
                fprintf(stderr, "mcpgate serve: --workers: expected 1..1024\n");
                return 2;
            }
            break;
        case O_LOG: {
            enum log_level lv;
            if (log_level_parse(optarg, &lv) != 0) {
                fprintf(stderr, "mcpgate serve: --log-level: expected debug, info, warn, error "
                                "or off\n");
                return 2;
            }
            log_set_level(lv);
            break;
        }
        case 'h': fputs(serve_usage, stdout); return 0;
        default: fputs(serve_usage, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mcpgate serve: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!stdio) {
        fprintf(stderr, "mcpgate serve: only --stdio is available in this build (the HTTP "
                        "transport comes next)\n");
        return 2;
    }

    struct mcp_server *srv = mcp_server_new("mcpgate", mcpgate_version());
    mcp_server_set_title(srv, "mcpgate");
    mcp_server_set_max_message(srv, max_message);
    mcp_server_set_max_depth(srv, max_depth);
    mcp_server_set_page_size(srv, page_size);
    mcp_server_set_workers(srv, workers);
    if (instructions != NULL)
        mcp_server_set_instructions(srv, instructions);
    const char *bad = NULL;
    int r = tools_register(srv, toolsets, &bad);
    if (r != 0) {
        if (bad != NULL)
            fprintf(stderr, "mcpgate serve: --tools: unknown toolset '%.*s' (demo, conformance)\n",
                    (int)strcspn(bad, ","), bad);
        else
            fprintf(stderr, "mcpgate serve: registering tools failed: %s\n", mcpgate_strerror(r));
        mcp_server_free(srv);
        return 1;
    }
    r = mcp_serve_stdio(srv);
    mcp_server_free(srv);
    return r == 0 ? 0 : 1;
}
