/* The client commands: connect (the stdio proxy), login, logout, token, tools, call. They share
 * one set of options (transport, headers, TLS, OAuth) parsed here into a struct remote. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "client/mcpc.h"
#include "client/oauthc.h"
#include "client/proxy.h"
#include "client/tokenstore.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/reason.h"
#include "core/xmalloc.h"
#include "mcp/jsonrpc.h"

#define FILE_ARG_MAX (1024 * 1024)
#define HEADERS_MAX 64

enum rcmd { R_CONNECT, R_LOGIN, R_LOGOUT, R_TOKEN, R_TOOLS, R_CALL };
enum elicit { ELICIT_AUTO, ELICIT_PROMPT, ELICIT_DEFAULTS, ELICIT_DECLINE };

struct remote {
    enum rcmd cmd;
    const char *name;           /* "connect", ... as shown in messages */
    const char *usage;
    const char *url;
    enum mcpc_transport transport;
    const char *protocol_version;
    json_t *header_lines;       /* as given (the store key uses these, before ${VAR}) */
    json_t *headers;            /* expanded "Name: value" strings */
    struct hc_opts http;
    bool no_auth;
    json_t *static_info, *static_md;
    const char *cimd_url;
    const char *resource;
    bool no_resource;
    const char *scope;
    json_t *authorize_params;
    const char *browser;
    bool no_browser;
    const char *callback_host;
    int callback_port;
    bool port_strict;
    int auth_timeout;
    enum oauthc_flow flow;
    const char *config_dir;
    bool debug, silent, json, force;
    json_t *ignore_tools;
    int ping_interval;
    int timeout_s;
    enum elicit elicit;
    char **rest;                /* arguments after the URL */
    int nrest;

    struct tstore *ts;
    char *key;
    struct oauthc *oc;
    FILE *debug_log;
};

#define COMMON_HELP                                                                                \
    "Transport:\n"                                                                                 \
    "  --transport MODE         http-first (default), sse-first, http-only, sse-only\n"           \
    "  --protocol-version V     speak only V (2026-07-28, 2025-11-25, ...); default: try\n"       \
    "                           2026-07-28, fall back to the initialize handshake\n"              \
    "  --header 'Name: value'   add a header to every request (repeatable; 'Name:value' too;\n"  \
    "                           ${VAR} is replaced by the environment variable)\n"               \
    "  --header-file FILE       headers from FILE, one per line ('#' starts a comment)\n"         \
    "  --allow-http             allow plain http to hosts other than loopback\n"                  \
    "  --cacert FILE            trust the CA certificates in FILE too (PEM)\n"                     \
    "  --timeout SEC            give up on a request after SEC seconds (default: none for\n"     \
    "                           connect, 120 for the others)\n"                                   \
    "  HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY are honoured.\n"                           \
    "\n"                                                                                           \
    "Authorization (OAuth 2.1, discovered from the server's 401):\n"                              \
    "  --no-auth                never sign in (for servers without OAuth)\n"                      \
    "  --static-oauth-client-info JSON|@FILE   a pre-registered client: {\"client_id\",\n"       \
    "                           \"client_secret\"?, \"redirect_uris\"?}\n"                        \
    "  --static-oauth-client-metadata JSON|@FILE   merged into dynamic registration\n"            \
    "  --client-metadata-url URL   our client ID metadata document (used when the\n"             \
    "                           authorization server supports them)\n"                            \
    "  --resource URI           the resource indicator to send (default: the server's)\n"         \
    "  --disable-resource-parameter   send no resource indicator\n"                               \
    "  --scope 'S1 S2'          the scope to ask for (default: the server's challenge, else\n"   \
    "                           its metadata)\n"                                                  \
    "  --authorize-param K=V    add K=V to the authorization URL (repeatable)\n"                  \
    "  --browser CMD            open the sign-in page with CMD URL (default: $BROWSER, then\n"   \
    "                           xdg-open); the address is always printed on stderr\n"            \
    "  --no-browser             only print the sign-in address\n"                                 \
    "  --callback-port N        the loopback port of the sign-in redirect (default: derived\n"   \
    "                           from the URL; another is used if it is busy, unless given)\n"     \
    "  --callback-host H        the loopback address to listen on (default 127.0.0.1)\n"          \
    "  --auth-timeout SEC       how long to wait for the sign-in (default 300)\n"                 \
    "  --device-code            sign in on another device with a code (RFC 8628)\n"              \
    "  --client-credentials     sign in as the client itself (needs a client secret in\n"         \
    "                           --static-oauth-client-info)\n"                                    \
    "  --config-dir DIR         where tokens are kept (default $MCPGATE_CONFIG_DIR, else\n"       \
    "                           $XDG_CONFIG_HOME/mcpgate, else ~/.config/mcpgate)\n"             \
    "\n"                                                                                           \
    "  --debug                  log every step on stderr and in a log file in the store\n"        \
    "  --silent                 print nothing but errors on stderr\n"                             \
    "  -h, --help               this help\n"

static const char connect_usage[] =
    "usage: mcpgate connect URL [CALLBACK_PORT] [options]\n"
    "\n"
    "Serves the remote MCP server at URL on stdin/stdout, for clients that only start local\n"
    "servers (Claude Desktop). Signs in through the browser when the server asks, keeps the\n"
    "tokens, refreshes them, and bridges the 2026-07-28 and the initialize eras both ways.\n"
    "stdout carries only protocol messages; stderr says what is happening.\n"
    "\n"
    "  --ignore-tool GLOB       hide tools matching GLOB (case-insensitive; repeatable)\n"
    "  --ping-interval SEC      keep the connection alive with a request every SEC seconds\n"
    "\n" COMMON_HELP;

static const char login_usage[] =
    "usage: mcpgate login URL [--force] [options]\n"
    "\n"
    "Signs in to the MCP server at URL and keeps the tokens for connect, tools and call.\n"
    "\n"
    "  --force                  sign in again even when signed in\n"
    "\n" COMMON_HELP;

static const char logout_usage[] =
    "usage: mcpgate logout URL [options]\n"
    "\n"
    "Revokes the tokens at the authorization server (when it offers revocation) and forgets\n"
    "everything kept for URL.\n"
    "\n" COMMON_HELP;

static const char token_usage[] =
    "usage: mcpgate token URL [options]\n"
    "\n"
    "Prints a valid access token for URL on stdout (refreshed when it is about to expire), for\n"
    "scripts: curl -H \"Authorization: Bearer $(mcpgate token URL)\" ... Never signs in: run\n"
    "mcpgate login first.\n"
    "\n" COMMON_HELP;

static const char tools_usage[] =
    "usage: mcpgate tools URL [--json] [options]\n"
    "\n"
    "Lists the tools of the MCP server at URL: one per line with its description, or with\n"
    "--json the tools as the server describes them (every page).\n"
    "\n"
    "  --json                   print JSON\n"
    "  --ignore-tool GLOB       hide tools matching GLOB (repeatable)\n"
    "\n" COMMON_HELP;

static const char call_usage[] =
    "usage: mcpgate call URL TOOL [JSON | KEY=VALUE ...] [--json] [options]\n"
    "\n"
    "Calls TOOL on the MCP server at URL and prints its text content. Arguments are one JSON\n"
    "object, or KEY=VALUE pairs (VALUE is taken as the type the tool's schema says; KEY:=JSON\n"
    "gives raw JSON). Exits 1 when the tool reports an error.\n"
    "\n"
    "  --json                   print the whole result as JSON\n"
    "  --elicitation MODE       when the tool asks the user something: prompt (on the\n"
    "                           terminal; the default when there is one), accept-defaults\n"
    "                           (the schema's defaults), decline (the default otherwise)\n"
    "\n" COMMON_HELP;

/* ---- argument helpers ---- */

/* ${VAR} replaced by the environment's value (empty, with a warning, when unset). */
static char *expand_env(const char *s)
{
    struct buf b;
    buf_init(&b, FILE_ARG_MAX);
    for (const char *p = s; *p != '\0';) {
        const char *close;
        if (p[0] == '$' && p[1] == '{' && (close = strchr(p + 2, '}')) != NULL) {
            char name[128];
            size_t n = (size_t)(close - p - 2);
            if (n > 0 && n < sizeof name) {
                memcpy(name, p + 2, n);
                name[n] = '\0';
                const char *v = getenv(name);
                if (v == NULL)
                    fprintf(stderr, "mcpgate: warning: ${%s} is not set; using an empty value\n",
                            name);
                else if (buf_append_str(&b, v) != 0)
                    break;
                p = close + 1;
                continue;
            }
        }
        if (buf_append(&b, p, 1) != 0)
            break;
        p++;
    }
    char *out = buf_steal(&b, NULL);
    return out != NULL ? out : xstrdup("");
}

static char *read_file_arg(const char *path, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        reason_set(why, whylen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    struct buf b;
    buf_init(&b, FILE_ARG_MAX);
    char chunk[8192];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0) {
        if (buf_append(&b, chunk, (size_t)n) != 0) {
            reason_set(why, whylen, "%s is larger than %d bytes", path, FILE_ARG_MAX);
            close(fd);
            buf_free(&b);
            return NULL;
        }
    }
    close(fd);
    char *s = buf_steal(&b, NULL);
    return s != NULL ? s : xstrdup("");
}

/* JSON|@file, with ${VAR} expanded, an object. */
static json_t *json_arg(const char *arg, char *why, size_t whylen)
{
    char *text = arg[0] == '@' ? read_file_arg(arg + 1, why, whylen) : xstrdup(arg);
    if (text == NULL)
        return NULL;
    char *exp = expand_env(text);
    free(text);
    json_error_t e;
    json_t *v = json_loads(exp, JSON_REJECT_DUPLICATES, &e);
    free(exp);
    if (!json_is_object(v)) {
        reason_set(why, whylen, "not a JSON object%s%s", v == NULL ? ": " : "",
                   v == NULL ? e.text : "");
        json_decref(v);
        return NULL;
    }
    return v;
}

/* "Name: value" or "Name:value": a header line, or NULL with why. */
static int header_check(const char *line, char *why, size_t whylen)
{
    const char *colon = strchr(line, ':');
    if (colon == NULL || colon == line) {
        reason_set(why, whylen, "'%s' is not 'Name: value'", line);
        return -1;
    }
    for (const char *p = line; p < colon; p++) {
        unsigned char c = (unsigned char)*p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+-.^_`|~", c) != NULL)) {
            reason_set(why, whylen, "'%.*s' is not a header name", (int)(colon - line), line);
            return -1;
        }
    }
    for (const char *p = colon + 1; *p; p++) {
        if (*p == '\r' || *p == '\n' || *p == '\0') {
            reason_set(why, whylen, "a header value cannot hold a line break");
            return -1;
        }
    }
    return 0;
}

static int add_header(struct remote *rm, const char *line, char *why, size_t whylen)
{
    if (json_array_size(rm->header_lines) >= HEADERS_MAX) {
        reason_set(why, whylen, "more than %d headers", HEADERS_MAX);
        return -1;
    }
    char *exp = expand_env(line);
    if (header_check(exp, why, whylen) != 0) {
        free(exp);
        return -1;
    }
    /* normalize "Name:value" to "Name: value" */
    char *colon = strchr(exp, ':');
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    char *norm = xasprintf("%.*s: %s", (int)(colon - exp), exp, v);
    if (strncasecmp(norm, "Authorization:", 14) == 0 && !rm->no_auth)
        fprintf(stderr, "mcpgate: note: an Authorization header is sent as given; OAuth sign-in "
                        "is then only used if the server refuses it\n");
    json_array_append_new(rm->header_lines, json_string(line));
    json_array_append_new(rm->headers, json_string(norm));
    free(norm);
    free(exp);
    return 0;
}

static int header_file(struct remote *rm, const char *path, char *why, size_t whylen)
{
    char *text = read_file_arg(path, why, whylen);
    if (text == NULL)
        return -1;
    int r = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL && r == 0;
         line = strtok_r(NULL, "\n", &save)) {
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            line[--n] = '\0';
        while (*line == ' ' || *line == '\t')
            line++;
        if (*line == '\0' || *line == '#')
            continue;
        r = add_header(rm, line, why, whylen);
    }
    free(text);
    return r;
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
    unsigned long long v;
    if (cli_parse_uint(s, (unsigned long long)hi, &v) != 0 || (long)v < lo)
        return -1;
    *out = (int)v;
    return 0;
}

/* ---- parsing ---- */

static int remote_parse(struct remote *rm, int argc, char **argv)
{
    enum {
        O_TRANSPORT = 1000, O_PROTO, O_HEADER, O_HEADER_FILE, O_ALLOW_HTTP, O_CACERT, O_TIMEOUT,
        O_NO_AUTH, O_STATIC_INFO, O_STATIC_MD, O_CIMD, O_RESOURCE, O_NO_RESOURCE, O_SCOPE,
        O_AUTHZ_PARAM, O_BROWSER, O_NO_BROWSER, O_CB_PORT, O_CB_HOST, O_AUTH_TIMEOUT, O_DEVICE,
        O_CC, O_CONFIG_DIR, O_DEBUG, O_SILENT, O_JSON, O_FORCE, O_IGNORE, O_PING, O_ELICIT,
    };
    static const struct option opts[] = {
        {"transport", required_argument, NULL, O_TRANSPORT},
        {"protocol-version", required_argument, NULL, O_PROTO},
        {"header", required_argument, NULL, O_HEADER},
        {"header-file", required_argument, NULL, O_HEADER_FILE},
        {"allow-http", no_argument, NULL, O_ALLOW_HTTP},
        {"cacert", required_argument, NULL, O_CACERT},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"no-auth", no_argument, NULL, O_NO_AUTH},
        {"static-oauth-client-info", required_argument, NULL, O_STATIC_INFO},
        {"static-oauth-client-metadata", required_argument, NULL, O_STATIC_MD},
        {"client-metadata-url", required_argument, NULL, O_CIMD},
        {"resource", required_argument, NULL, O_RESOURCE},
        {"disable-resource-parameter", no_argument, NULL, O_NO_RESOURCE},
        {"scope", required_argument, NULL, O_SCOPE},
        {"authorize-param", required_argument, NULL, O_AUTHZ_PARAM},
        {"browser", required_argument, NULL, O_BROWSER},
        {"no-browser", no_argument, NULL, O_NO_BROWSER},
        {"callback-port", required_argument, NULL, O_CB_PORT},
        {"callback-host", required_argument, NULL, O_CB_HOST},
        {"host", required_argument, NULL, O_CB_HOST},
        {"auth-timeout", required_argument, NULL, O_AUTH_TIMEOUT},
        {"device-code", no_argument, NULL, O_DEVICE},
        {"client-credentials", no_argument, NULL, O_CC},
        {"config-dir", required_argument, NULL, O_CONFIG_DIR},
        {"debug", no_argument, NULL, O_DEBUG},
        {"silent", no_argument, NULL, O_SILENT},
        {"json", no_argument, NULL, O_JSON},
        {"force", no_argument, NULL, O_FORCE},
        {"ignore-tool", required_argument, NULL, O_IGNORE},
        {"ping-interval", required_argument, NULL, O_PING},
        {"keep-alive", no_argument, NULL, O_PING},
        {"elicitation", required_argument, NULL, O_ELICIT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char why[400];
    int c;
    rm->header_lines = json_array();
    rm->headers = json_array();
    rm->auth_timeout = 300;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_TRANSPORT:
            if (strcmp(optarg, "http-first") == 0)
                rm->transport = MCPC_HTTP_FIRST;
            else if (strcmp(optarg, "sse-first") == 0)
                rm->transport = MCPC_SSE_FIRST;
            else if (strcmp(optarg, "http-only") == 0)
                rm->transport = MCPC_HTTP_ONLY;
            else if (strcmp(optarg, "sse-only") == 0)
                rm->transport = MCPC_SSE_ONLY;
            else
                return cli_usage_error(rm->name, rm->usage, "unknown --transport '%s'", optarg);
            break;
        case O_PROTO:
            if (strcmp(optarg, MCPC_MODERN_VERSION) != 0 && !mcpc_version_legacy(optarg))
                return cli_usage_error(rm->name, rm->usage,
                                       "--protocol-version: '%s' is not a revision this "
                                       "client speaks (2026-07-28, 2025-11-25, 2025-06-18, "
                                       "2025-03-26, 2024-11-05)",
                                       optarg);
            rm->protocol_version = optarg;
            break;
        case O_HEADER:
            if (add_header(rm, optarg, why, sizeof why) != 0)
                return cli_usage_error(rm->name, rm->usage, "--header: %s", why);
            break;
        case O_HEADER_FILE:
            if (header_file(rm, optarg, why, sizeof why) != 0)
                return cli_usage_error(rm->name, rm->usage, "--header-file: %s", why);
            break;
        case O_ALLOW_HTTP: rm->http.allow_http = true; break;
        case O_CACERT:
            if (access(optarg, R_OK) != 0)
                return cli_usage_error(rm->name, rm->usage, "--cacert: cannot read %s", optarg);
            rm->http.cacert = optarg;
            break;
        case O_TIMEOUT:
            if (parse_int(optarg, 1, 86400, &rm->timeout_s) != 0)
                return cli_usage_error(rm->name, rm->usage, "--timeout: 1 to 86400 seconds");
            break;
        case O_NO_AUTH: rm->no_auth = true; break;
        case O_STATIC_INFO:
            json_decref(rm->static_info);
            if ((rm->static_info = json_arg(optarg, why, sizeof why)) == NULL)
                return cli_usage_error(rm->name, rm->usage, "--static-oauth-client-info: %s",
                                       why);
            if (!json_is_string(json_object_get(rm->static_info, "client_id")))
                return cli_usage_error(rm->name, rm->usage,
                                       "--static-oauth-client-info needs a client_id");
            break;
        case O_STATIC_MD:
            json_decref(rm->static_md);
            if ((rm->static_md = json_arg(optarg, why, sizeof why)) == NULL)
                return cli_usage_error(rm->name, rm->usage, "--static-oauth-client-metadata: %s",
                                       why);
            break;
        case O_CIMD:
            if (strncmp(optarg, "https://", 8) != 0 || strchr(optarg + 8, '/') == NULL ||
                strchr(optarg + 8, '/')[1] == '\0')
                return cli_usage_error(rm->name, rm->usage,
                                       "--client-metadata-url must be an https URL with a path");
            rm->cimd_url = optarg;
            break;
        case O_RESOURCE:
            if (*optarg == '\0')
                rm->no_resource = true;
            else
                rm->resource = optarg;
            break;
        case O_NO_RESOURCE: rm->no_resource = true; break;
        case O_SCOPE: rm->scope = optarg; break;
        case O_AUTHZ_PARAM: {
            const char *eq = strchr(optarg, '=');
            if (eq == NULL || eq == optarg)
                return cli_usage_error(rm->name, rm->usage, "--authorize-param needs K=V");
            char k[128];
            snprintf(k, sizeof k, "%.*s", (int)(eq - optarg), optarg);
            static const char *const reserved[] = {"client_id",      "redirect_uri",
                                                   "response_type",  "state",
                                                   "code_challenge", "code_challenge_method"};
            for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
                if (strcmp(k, reserved[i]) == 0)
                    return cli_usage_error(rm->name, rm->usage,
                                           "--authorize-param cannot set %s", k);
            if (rm->authorize_params == NULL)
                rm->authorize_params = json_object();
            json_object_set_new(rm->authorize_params, k, json_string(eq + 1));
            break;
        }
        case O_BROWSER: rm->browser = optarg; break;
        case O_NO_BROWSER: rm->no_browser = true; break;
        case O_CB_PORT:
            if (parse_int(optarg, 1, 65535, &rm->callback_port) != 0)
                return cli_usage_error(rm->name, rm->usage, "--callback-port: 1 to 65535");
            rm->port_strict = true;
            break;
        case O_CB_HOST:
            if (strcmp(optarg, "localhost") == 0)
                optarg = "127.0.0.1";
            if (strncmp(optarg, "127.", 4) != 0 && strcmp(optarg, "::1") != 0)
                return cli_usage_error(rm->name, rm->usage,
                                       "--callback-host must be a loopback address");
            rm->callback_host = optarg;
            break;
        case O_AUTH_TIMEOUT:
            if (parse_int(optarg, 1, 86400, &rm->auth_timeout) != 0)
                return cli_usage_error(rm->name, rm->usage, "--auth-timeout: 1 to 86400 s");
            break;
        case O_DEVICE: rm->flow = OAUTHC_FLOW_DEVICE; break;
        case O_CC: rm->flow = OAUTHC_FLOW_CLIENT_CREDENTIALS; break;
        case O_CONFIG_DIR: rm->config_dir = optarg; break;
        case O_DEBUG: rm->debug = true; break;
        case O_SILENT: rm->silent = true; break;
        case O_JSON: rm->json = true; break;
        case O_FORCE: rm->force = true; break;
        case O_IGNORE:
            if (rm->ignore_tools == NULL)
                rm->ignore_tools = json_array();
            json_array_append_new(rm->ignore_tools, json_string(optarg));
            break;
        case O_PING:
            if (optarg == NULL)
                rm->ping_interval = 30;
            else if (parse_int(optarg, 1, 86400, &rm->ping_interval) != 0)
                return cli_usage_error(rm->name, rm->usage, "--ping-interval: 1 to 86400 s");
            break;
        case O_ELICIT:
            if (strcmp(optarg, "prompt") == 0)
                rm->elicit = ELICIT_PROMPT;
            else if (strcmp(optarg, "accept-defaults") == 0)
                rm->elicit = ELICIT_DEFAULTS;
            else if (strcmp(optarg, "decline") == 0)
                rm->elicit = ELICIT_DECLINE;
            else
                return cli_usage_error(rm->name, rm->usage,
                                       "--elicitation: prompt, accept-defaults or decline");
            break;
        case 'h':
            fputs(rm->usage, stdout);
            return -1;
        default:
            return cli_option_error(rm->name, c, argv, rm->usage);
        }
    }
    if (optind >= argc)
        return cli_usage_error(rm->name, rm->usage, "the server URL is missing");
    rm->url = argv[optind++];
    rm->rest = argv + optind;
    rm->nrest = argc - optind;
    if (rm->cmd == R_CONNECT && rm->nrest > 0) {
        /* mcp-remote's positional callback port */
        if (parse_int(rm->rest[0], 1, 65535, &rm->callback_port) != 0)
            return cli_usage_error(rm->name, rm->usage, "unexpected argument '%s'", rm->rest[0]);
        rm->port_strict = true;
        rm->rest++;
        rm->nrest--;
    }
    if (rm->cmd != R_CALL && rm->cmd != R_CONNECT && rm->nrest > 0)
        return cli_usage_error(rm->name, rm->usage, "unexpected argument '%s'", rm->rest[0]);
    if (rm->cmd == R_CALL && rm->nrest < 1)
        return cli_usage_error(rm->name, rm->usage, "the tool name is missing");
    if (hc_url_check(&rm->http, rm->url, why, sizeof why) != 0)
        return cli_usage_error(rm->name, rm->usage, "%s", why);
    if (rm->flow == OAUTHC_FLOW_CLIENT_CREDENTIALS &&
        !json_is_string(json_object_get(rm->static_info, "client_secret")))
        return cli_usage_error(rm->name, rm->usage,
                               "--client-credentials needs --static-oauth-client-info with a "
                               "client_secret");
    return 0;
}

/* ---- set-up ---- */

static int remote_setup(struct remote *rm)
{
    /* connect runs for hours: stderr says what happens (reconnections, refreshes); the
     * one-shot commands say only what went wrong */
    if (rm->silent)
        log_set_level(LOG_ERROR);
    else if (rm->debug)
        log_set_level(LOG_DEBUG);
    else
        log_set_level(rm->cmd == R_CONNECT ? LOG_INFO : LOG_WARN);
    if (rm->no_auth && rm->cmd != R_CONNECT && rm->cmd != R_TOOLS && rm->cmd != R_CALL) {
        fprintf(stderr, "mcpgate %s: --no-auth makes no sense here\n", rm->name);
        return 2;
    }
    if (rm->no_auth && !rm->debug)
        return 0;
    int r = tstore_open(rm->config_dir, &rm->ts);
    if (r != 0) {
        fprintf(stderr, "mcpgate %s: cannot open the token store: %s\n", rm->name, err_str(r));
        return 1;
    }
    /* the identity of this configuration: what changes whose tokens these are */
    struct buf params, hdrs;
    buf_init(&params, 1 << 20);
    buf_init(&hdrs, 1 << 20);
    const char *k;
    json_t *v;
    int br = 0;
    void *it;
    json_t *sorted = json_object();
    json_object_foreach (rm->authorize_params, k, v)
        json_object_set(sorted, k, v);
    char *ap = json_dumps(sorted, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(sorted);
    (void)it;
    size_t i;
    json_array_foreach (rm->header_lines, i, v)
        br |= buf_printf(&hdrs, "%s\n", json_string_value(v));
    const char *flow = rm->flow == OAUTHC_FLOW_DEVICE               ? "device"
                       : rm->flow == OAUTHC_FLOW_CLIENT_CREDENTIALS ? "client_credentials"
                                                                    : "";
    const char *parts[] = {
        rm->no_resource ? "-" : rm->resource,
        rm->scope,
        rm->cimd_url,
        json_string_value(json_object_get(rm->static_info, "client_id")),
        json_object_size(rm->authorize_params) > 0 ? ap : NULL,
        hdrs.len > 0 ? hdrs.data : NULL,
        flow[0] ? flow : NULL,
    };
    (void)br;
    rm->key = tstore_key(rm->url, parts, sizeof parts / sizeof *parts);
    free(ap);
    buf_free(&params);
    buf_free(&hdrs);
    if (rm->debug) {
        rm->debug_log = tstore_open_log(rm->ts, rm->key);
        if (rm->debug_log != NULL) {
            log_set_copy(rm->debug_log, false);
            fprintf(stderr, "mcpgate: debug log: %s/v1/%s/debug.log\n", tstore_dir(rm->ts),
                    rm->key);
        }
    }
    if (rm->no_auth)
        return 0;
    struct oauthc_opts oo = {
        .server_url = rm->url,
        .http = rm->http,
        .store = rm->ts,
        .key = rm->key,
        .resource = rm->resource,
        .no_resource = rm->no_resource,
        .scope = rm->scope,
        .static_client_info = rm->static_info,
        .static_client_metadata = rm->static_md,
        .client_metadata_url = rm->cimd_url,
        .authorize_params = rm->authorize_params,
        .browser = rm->browser,
        .no_browser = rm->no_browser,
        .callback_host = rm->callback_host,
        .callback_port = rm->callback_port,
        .callback_port_strict = rm->port_strict,
        .auth_timeout_s = rm->auth_timeout,
        .flow = rm->flow,
        .interactive = rm->cmd != R_TOKEN,
        .quiet = rm->silent,
    };
    if ((r = oauthc_new(&oo, &rm->oc)) != 0) {
        fprintf(stderr, "mcpgate %s: %s\n", rm->name, err_str(r));
        return 1;
    }
    return 0;
}

static void remote_free(struct remote *rm)
{
    if (!mcpc_left_behind()) { /* else a sign-in thread still uses them, until exit */
        oauthc_free(rm->oc);
        tstore_close(rm->ts);
    }
    free(rm->key);
    if (rm->debug_log != NULL) {
        log_set_copy(NULL, false);
        fclose(rm->debug_log);
    }
    json_decref(rm->header_lines);
    json_decref(rm->headers);
    json_decref(rm->static_info);
    json_decref(rm->static_md);
    json_decref(rm->authorize_params);
    json_decref(rm->ignore_tools);
}

/* The mcpc options; hv holds the header pointers (caller frees). */
static struct mcpc_opts mcpc_options(struct remote *rm, const char ***hv, json_t *caps)
{
    size_t n = json_array_size(rm->headers);
    *hv = xcalloc(n + 1, sizeof **hv);
    for (size_t i = 0; i < n; i++)
        (*hv)[i] = json_string_value(json_array_get(rm->headers, i));
    struct mcpc_opts mo = {
        .url = rm->url,
        .transport = rm->transport,
        .protocol_version = rm->protocol_version,
        .headers = *hv,
        .http = rm->http,
        .auth = rm->oc,
        .ping_interval_s = rm->ping_interval,
        .connect_timeout_s = rm->timeout_s > 0 ? rm->timeout_s : 0,
        .capabilities = caps,
    };
    return mo;
}

/* ---- connect ---- */

static int run_connect(struct remote *rm)
{
    const char **hv;
    struct proxy_opts po = {.mcpc = mcpc_options(rm, &hv, NULL),
                            .ignore_tools = rm->ignore_tools,
                            .in_fd = 0,
                            .out_fd = 1};
    signal(SIGPIPE, SIG_IGN);
    if (!rm->silent)
        fprintf(stderr, "mcpgate: proxying %s on stdin/stdout\n", rm->url);
    int st = proxy_run(&po);
    free(hv);
    return st;
}

/* ---- the one-shot commands ---- */

static int one_shot_connect(struct remote *rm, struct mcpc **c, const char ***hv, json_t *caps,
                            const struct mcpc_events *ev, void *ev_arg)
{
    char why[600];
    struct mcpc_opts mo = mcpc_options(rm, hv, caps);
    int r = mcpc_new(&mo, ev, ev_arg, c);
    if (r != 0) {
        fprintf(stderr, "mcpgate %s: %s\n", rm->name, err_str(r));
        return 1;
    }
    if ((r = mcpc_connect(*c, NULL, why, sizeof why)) != 0) {
        fprintf(stderr, "mcpgate %s: cannot connect to %s: %s\n", rm->name, rm->url, why);
        return 1;
    }
    return 0;
}

/* A response's error in words; NULL when it is a result. */
static const char *resp_error(json_t *resp, char *buf, size_t len)
{
    json_t *e = json_object_get(resp, "error");
    if (resp == NULL) {
        reason_set(buf, len, "no answer");
        return buf;
    }
    if (e == NULL)
        return NULL;
    const char *m = json_string_value(json_object_get(e, "message"));
    reason_set(buf, len, "%s (%lld)", m != NULL ? m : "error",
               (long long)json_integer_value(json_object_get(e, "code")));
    return buf;
}

static int request_timeout_ms(struct remote *rm)
{
    return (rm->timeout_s > 0 ? rm->timeout_s : 120) * 1000;
}

/* Every page of tools/list. */
static int list_tools(struct remote *rm, struct mcpc *c, json_t **tools)
{
    char why[600];
    json_t *all = json_array();
    char *cursor = NULL;
    for (int page = 0; page < 1000; page++) {
        json_t *params = cursor != NULL ? json_pack("{s:s}", "cursor", cursor) : NULL;
        json_t *resp = NULL;
        int r = mcpc_request_sync(c, "tools/list", params, request_timeout_ms(rm), &resp);
        free(cursor);
        cursor = NULL;
        if (r != 0 || resp_error(resp, why, sizeof why) != NULL) {
            fprintf(stderr, "mcpgate %s: tools/list failed: %s\n", rm->name,
                    r != 0 ? err_str(r) : why);
            json_decref(resp);
            json_decref(all);
            return 1;
        }
        json_t *result = json_object_get(resp, "result");
        json_array_extend(all, json_object_get(result, "tools"));
        const char *next = json_string_value(json_object_get(result, "nextCursor"));
        if (next != NULL && *next != '\0')
            cursor = xstrdup(next);
        json_decref(resp);
        if (cursor == NULL)
            break;
    }
    free(cursor);
    proxy_filter_tools(rm->ignore_tools, all);
    *tools = all;
    return 0;
}

static int run_tools(struct remote *rm)
{
    struct mcpc *c = NULL;
    const char **hv = NULL;
    json_t *tools = NULL;
    int st = one_shot_connect(rm, &c, &hv, NULL, NULL, NULL);
    if (st == 0)
        st = list_tools(rm, c, &tools);
    if (st == 0) {
        if (rm->json) {
            st = cli_json_print(rm->name, tools) == 0 ? 0 : 1;
        } else {
            size_t i;
            json_t *t;
            json_array_foreach (tools, i, t) {
                const char *d = json_string_value(json_object_get(t, "description"));
                cli_print_text(stdout, json_string_value(json_object_get(t, "name")));
                if (d != NULL) {
                    size_t n = strcspn(d, "\n");
                    char *first = xstrndup(d, n);
                    fputs("  ", stdout);
                    cli_print_text(stdout, first);
                    free(first);
                }
                fputc('\n', stdout);
            }
        }
        if (st == 0)
            st = cli_finish_output(rm->name);
    }
    json_decref(tools);
    mcpc_free(c);
    free(hv);
    return st;
}

/* KEY=VALUE with the schema's type for KEY; KEY:=JSON raw. */
static int build_args(struct remote *rm, json_t *schema, json_t **out)
{
    json_t *args = json_object();
    for (int i = 1; i < rm->nrest; i++) {
        const char *a = rm->rest[i];
        const char *eq = strchr(a, '=');
        if (eq == NULL || eq == a) {
            fprintf(stderr, "mcpgate call: '%s' is not KEY=VALUE\n", a);
            json_decref(args);
            return 2;
        }
        bool raw = eq[-1] == ':' && eq - 1 > a;
        char *key = xstrndup(a, (size_t)((raw ? eq - 1 : eq) - a));
        const char *val = eq + 1;
        json_t *prop = json_object_get(json_object_get(schema, "properties"), key);
        const char *type = json_string_value(json_object_get(prop, "type"));
        json_t *v = NULL;
        if (!raw && type != NULL && strcmp(type, "string") == 0) {
            v = json_string(val);
        } else {
            v = json_loads(val, JSON_DECODE_ANY, NULL);
            if (v == NULL && raw) {
                fprintf(stderr, "mcpgate call: %s := '%s' is not JSON\n", key, val);
                free(key);
                json_decref(args);
                return 2;
            }
            if (v == NULL)
                v = json_string(val);
        }
        json_object_set_new(args, key, v);
        free(key);
    }
    *out = args;
    return 0;
}

static void print_content(json_t *result)
{
    size_t i;
    json_t *item;
    json_array_foreach (json_object_get(result, "content"), i, item) {
        const char *type = json_string_value(json_object_get(item, "type"));
        if (type != NULL && strcmp(type, "text") == 0) {
            const char *t = json_string_value(json_object_get(item, "text"));
            fputs(t != NULL ? t : "", stdout);
            fputc('\n', stdout);
        } else if (type != NULL && (strcmp(type, "image") == 0 || strcmp(type, "audio") == 0)) {
            const char *d = json_string_value(json_object_get(item, "data"));
            printf("[%s %s, %zu bytes of base64]\n", type,
                   json_string_value(json_object_get(item, "mimeType")) ?: "?",
                   d != NULL ? strlen(d) : 0);
        } else if (type != NULL && strcmp(type, "resource_link") == 0) {
            printf("[link %s]\n", json_string_value(json_object_get(item, "uri")) ?: "?");
        } else if (type != NULL && strcmp(type, "resource") == 0) {
            json_t *res = json_object_get(item, "resource");
            const char *t = json_string_value(json_object_get(res, "text"));
            if (t != NULL) {
                fputs(t, stdout);
                fputc('\n', stdout);
            } else {
                printf("[resource %s]\n", json_string_value(json_object_get(res, "uri")) ?: "?");
            }
        }
    }
    if (json_array_size(json_object_get(result, "content")) == 0 &&
        json_object_get(result, "structuredContent") != NULL) {
        char *s = json_dumps(json_object_get(result, "structuredContent"), JSON_INDENT(2));
        if (s != NULL)
            puts(s);
        free(s);
    }
}

/* ---- what a tool asks the user (elicitation, legacy requests or 2026-07-28 input) ---- */

/* A value for one property of a requested schema: its default, else an empty value of its type
 * (accept-defaults), or what the user types (prompt). NULL: leave it out. */
static json_t *elicit_value(struct remote *rm, FILE *tty, const char *name, json_t *prop)
{
    const char *type = json_string_value(json_object_get(prop, "type"));
    json_t *def = json_object_get(prop, "default");
    json_t *en = json_object_get(prop, "enum");
    if (rm->elicit != ELICIT_PROMPT || tty == NULL) {
        if (def != NULL)
            return json_deep_copy(def);
        if (json_array_size(en) > 0)
            return json_deep_copy(json_array_get(en, 0));
        if (type == NULL)
            return NULL;
        if (strcmp(type, "boolean") == 0)
            return json_false();
        if (strcmp(type, "integer") == 0 || strcmp(type, "number") == 0)
            return json_integer(0);
        if (strcmp(type, "string") == 0)
            return json_string("");
        return NULL;
    }
    const char *title = json_string_value(json_object_get(prop, "title"));
    const char *desc = json_string_value(json_object_get(prop, "description"));
    for (int tries = 0; tries < 3; tries++) {
        fprintf(stderr, "  %s%s%s%s", title != NULL ? title : name, desc != NULL ? " (" : "",
                desc != NULL ? desc : "", desc != NULL ? ")" : "");
        if (json_array_size(en) > 0) {
            fputs(" [", stderr);
            size_t i;
            json_t *v;
            json_array_foreach (en, i, v)
                fprintf(stderr, "%s%s", i > 0 ? "/" : "", json_string_value(v) ?: "?");
            fputc(']', stderr);
        }
        if (def != NULL) {
            char *d = json_dumps(def, JSON_ENCODE_ANY);
            fprintf(stderr, " {default %s}", d != NULL ? d : "");
            free(d);
        }
        fputs(": ", stderr);
        char line[4096];
        if (fgets(line, sizeof line, tty) == NULL)
            return NULL;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0')
            return def != NULL ? json_deep_copy(def) : NULL;
        if (type != NULL && strcmp(type, "string") == 0)
            return json_string(line);
        if (type != NULL && strcmp(type, "boolean") == 0) {
            if (strcmp(line, "y") == 0 || strcmp(line, "yes") == 0 || strcmp(line, "true") == 0)
                return json_true();
            if (strcmp(line, "n") == 0 || strcmp(line, "no") == 0 || strcmp(line, "false") == 0)
                return json_false();
        } else {
            json_t *v = json_loads(line, JSON_DECODE_ANY, NULL);
            if (v != NULL && (type == NULL || (strcmp(type, "integer") == 0 && json_is_integer(v)) ||
                              (strcmp(type, "number") == 0 && json_is_number(v))))
                return v;
            json_decref(v);
        }
        fputs("  (not a valid value)\n", stderr);
    }
    return NULL;
}

/* The answer to one question from the server (method, params): a result, or NULL when the
 * command line cannot give one (*why says what to send as an error). */
static json_t *answer_input(struct remote *rm, const char *method, json_t *params, char *why,
                            size_t whylen)
{
    if (method != NULL && strcmp(method, "roots/list") == 0)
        return json_pack("{s:[]}", "roots");
    if (method == NULL || strcmp(method, "elicitation/create") != 0) {
        reason_set(why, whylen, "mcpgate call cannot answer %s", method ? method : "that");
        return NULL;
    }
    const char *message = json_string_value(json_object_get(params, "message"));
    const char *mode = json_string_value(json_object_get(params, "mode"));
    if (rm->elicit == ELICIT_DECLINE || (rm->elicit == ELICIT_AUTO && !isatty(0))) {
        fprintf(stderr, "mcpgate: the tool asks \"%s\"; declined (--elicitation)\n",
                message ? message : "");
        return json_pack("{s:s}", "action", "decline");
    }
    FILE *tty = rm->elicit == ELICIT_DEFAULTS ? NULL : fopen("/dev/tty", "r+");
    if (tty == NULL && rm->elicit != ELICIT_DEFAULTS) {
        fprintf(stderr, "mcpgate: the tool asks \"%s\", but there is no terminal; declined\n",
                message ? message : "");
        return json_pack("{s:s}", "action", "decline");
    }
    json_t *res;
    if (mode != NULL && strcmp(mode, "url") == 0) {
        const char *url = json_string_value(json_object_get(params, "url"));
        fprintf(stderr, "mcpgate: the tool asks: %s\n  open %s\n", message ? message : "",
                url ? url : "?");
        if (tty != NULL) {
            fputs("  press Enter when done, or type n to decline: ", stderr);
            char line[64];
            bool ok = fgets(line, sizeof line, tty) != NULL && line[0] != 'n';
            res = json_pack("{s:s}", "action", ok ? "accept" : "decline");
        } else {
            res = json_pack("{s:s}", "action", "accept");
        }
    } else {
        json_t *props = json_object_get(json_object_get(params, "requestedSchema"), "properties");
        json_t *content = json_object();
        if (tty != NULL)
            fprintf(stderr, "mcpgate: the tool asks: %s\n", message ? message : "");
        const char *k;
        json_t *prop;
        json_object_foreach (props, k, prop) {
            json_t *v = elicit_value(rm, tty, k, prop);
            if (v != NULL)
                json_object_set_new(content, k, v);
        }
        res = json_pack("{s:s, s:o}", "action", "accept", "content", content);
    }
    if (tty != NULL)
        fclose(tty);
    return res;
}

/* The call in progress: the answer, and questions from a legacy server meanwhile. */
struct call_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    json_t *resp;
    json_t *questions; /* server requests waiting for the main thread */
};

static void call_reply(void *arg, json_t *resp)
{
    struct call_wait *w = arg;
    pthread_mutex_lock(&w->mu);
    w->resp = json_incref(resp);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void call_question(void *arg, json_t *msg, uint64_t related)
{
    struct call_wait *w = arg;
    (void)related;
    pthread_mutex_lock(&w->mu);
    json_array_append(w->questions, msg);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Sends tools/call and waits for its answer, answering the server's questions meanwhile. */
static int call_once(struct remote *rm, struct mcpc *c, struct call_wait *w, json_t *params,
                     json_t **resp)
{
    uint64_t handle;
    w->resp = NULL;
    if (mcpc_request(c, "tools/call", params, call_reply, w, &handle) != 0)
        return ERR_CANCELLED;
    struct timespec until = clock_deadline(request_timeout_ms(rm));
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (json_array_size(w->questions) > 0) {
            json_t *q = json_incref(json_array_get(w->questions, 0));
            json_array_remove(w->questions, 0);
            pthread_mutex_unlock(&w->mu);
            char why[300];
            json_t *id = json_object_get(q, "id");
            json_t *res = answer_input(rm, json_string_value(json_object_get(q, "method")),
                                       json_object_get(q, "params"), why, sizeof why);
            json_t *m = res != NULL ? jsonrpc_result(id, res)
                                    : jsonrpc_error(id, JSONRPC_METHOD_NOT_FOUND, why, NULL);
            if (mcpc_respond(c, m) != 0)
                log_warn("cannot answer the server");
            json_decref(q);
            pthread_mutex_lock(&w->mu);
        }
        if (w->resp != NULL)
            break;
        if (pthread_cond_timedwait(&w->cv, &w->mu, &until) != 0 && w->resp == NULL &&
            json_array_size(w->questions) == 0) {
            pthread_mutex_unlock(&w->mu);
            mcpc_cancel(c, handle, "timed out");
            return ERR_TIMEOUT;
        }
    }
    *resp = w->resp;
    w->resp = NULL;
    pthread_mutex_unlock(&w->mu);
    return 0;
}

static int run_call(struct remote *rm)
{
    struct mcpc *c = NULL;
    const char **hv = NULL;
    json_t *args = NULL, *resp = NULL, *tools = NULL, *caps = json_object();
    const char *tool = rm->rest[0];
    char why[600];
    struct call_wait w = {.questions = json_array()};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    if (rm->elicit != ELICIT_DECLINE)
        json_object_set_new(caps, "elicitation", json_pack("{s:{}, s:{}}", "form", "url"));
    json_object_set_new(caps, "roots", json_object());
    struct mcpc_events ev = {.on_request = call_question};
    int st = one_shot_connect(rm, &c, &hv, caps, &ev, &w);
    if (st != 0)
        goto out;
    if (rm->nrest == 2 && rm->rest[1][0] == '{') {
        json_error_t e;
        args = json_loads(rm->rest[1], JSON_REJECT_DUPLICATES, &e);
        if (!json_is_object(args)) {
            fprintf(stderr, "mcpgate call: the arguments are not a JSON object: %s\n", e.text);
            st = 2;
            goto out;
        }
    } else if (rm->nrest > 1) {
        /* the schema tells the type of KEY=VALUE arguments */
        json_t *schema = NULL;
        if (list_tools(rm, c, &tools) == 0) {
            size_t i;
            json_t *t;
            json_array_foreach (tools, i, t)
                if (strcmp(json_string_value(json_object_get(t, "name")) ?: "", tool) == 0)
                    schema = json_object_get(t, "inputSchema");
        }
        if ((st = build_args(rm, schema, &args)) != 0)
            goto out;
    } else {
        args = json_object();
    }
    if (proxy_tool_ignored(rm->ignore_tools, tool)) {
        fprintf(stderr, "mcpgate call: tool '%s' is ignored (--ignore-tool)\n", tool);
        st = 1;
        goto out;
    }
    json_t *params = json_pack("{s:s, s:O}", "name", tool, "arguments", args);
    json_t *result = NULL;
    for (int round = 0;; round++) {
        int r = call_once(rm, c, &w, json_deep_copy(params), &resp);
        if (r != 0) {
            fprintf(stderr, "mcpgate call: %s\n",
                    r == ERR_TIMEOUT ? "the server did not answer in time (--timeout)"
                                     : err_str(r));
            st = 1;
            break;
        }
        if (resp_error(resp, why, sizeof why) != NULL) {
            fprintf(stderr, "mcpgate call: %s\n", why);
            st = 1;
            break;
        }
        result = json_object_get(resp, "result");
        const char *rt = json_string_value(json_object_get(result, "resultType"));
        if (rt == NULL || strcmp(rt, "input_required") != 0)
            break;
        /* 2026-07-28: answer what the tool asks, then call again with the answers */
        if (round >= 8) {
            fprintf(stderr, "mcpgate call: the tool kept asking for input; giving up\n");
            st = 1;
            break;
        }
        json_t *responses = json_object();
        const char *k;
        json_t *ir;
        json_object_foreach (json_object_get(result, "inputRequests"), k, ir) {
            json_t *a = answer_input(rm, json_string_value(json_object_get(ir, "method")),
                                     json_object_get(ir, "params"), why, sizeof why);
            if (a == NULL) {
                fprintf(stderr, "mcpgate call: %s\n", why);
                st = 1;
                break;
            }
            json_object_set_new(responses, k, a);
        }
        if (st != 0) {
            json_decref(responses);
            break;
        }
        json_object_del(params, "inputResponses");
        json_object_del(params, "requestState");
        if (json_object_size(responses) > 0)
            json_object_set(params, "inputResponses", responses);
        json_decref(responses);
        json_t *state = json_object_get(result, "requestState");
        if (state != NULL)
            json_object_set(params, "requestState", state);
        json_decref(resp);
        resp = NULL;
        result = NULL;
    }
    json_decref(params);
    if (st != 0)
        goto out;
    if (rm->json)
        st = cli_json_print(rm->name, result) == 0 ? 0 : 1;
    else
        print_content(result);
    if (st == 0)
        st = cli_finish_output(rm->name);
    if (st == 0 && json_is_true(json_object_get(result, "isError")))
        st = 1;
out:
    json_decref(args);
    json_decref(resp);
    json_decref(tools);
    mcpc_free(c);
    json_decref(caps);
    json_decref(w.questions);
    json_decref(w.resp);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    free(hv);
    return st;
}

static int run_login(struct remote *rm)
{
    char why[600];
    if (rm->force) {
        int r = oauthc_login(rm->oc, true, why, sizeof why);
        if (r != 0) {
            fprintf(stderr, "mcpgate login: %s\n", why);
            return 1;
        }
    }
    /* connecting makes the server say whether and how to sign in */
    struct mcpc *c = NULL;
    const char **hv = NULL;
    int st = one_shot_connect(rm, &c, &hv, NULL, NULL, NULL);
    mcpc_free(c);
    free(hv);
    if (st != 0)
        return st;
    char *tok = NULL;
    if (oauthc_access_token(rm->oc, &tok) != 0) {
        if (!rm->silent)
            fprintf(stderr, "mcpgate: %s does not ask for authorization; nothing to sign in to\n",
                    rm->url);
        return 0;
    }
    free(tok);
    if (!rm->silent)
        fprintf(stderr, "mcpgate: signed in to %s\n", rm->url);
    return 0;
}

static int run_logout(struct remote *rm)
{
    char why[600];
    bool revoked = false;
    int r = oauthc_logout(rm->oc, &revoked, why, sizeof why);
    if (r == ERR_NOTFOUND) {
        fprintf(stderr, "mcpgate logout: not signed in to %s\n", rm->url);
        return 1;
    }
    if (r != 0) {
        fprintf(stderr, "mcpgate logout: %s\n", why);
        return 1;
    }
    if (!rm->silent)
        fprintf(stderr, "mcpgate: signed out of %s (%s)\n", rm->url,
                revoked ? "tokens revoked at the authorization server"
                        : "tokens forgotten here; the server was not told");
    return 0;
}

static int run_token(struct remote *rm)
{
    char why[600], *tok = NULL;
    if (oauthc_access_token(rm->oc, &tok) != 0) {
        fprintf(stderr, "mcpgate token: not signed in to %s; run: mcpgate login %s\n", rm->url,
                rm->url);
        return 1;
    }
    if (oauthc_refresh_due(rm->oc)) {
        free(tok);
        tok = NULL;
        if (oauthc_refresh_now(rm->oc, why, sizeof why) != 0 ||
            oauthc_access_token(rm->oc, &tok) != 0) {
            fprintf(stderr, "mcpgate token: the token expired and could not be refreshed: %s; "
                            "run: mcpgate login %s\n",
                    why, rm->url);
            return 1;
        }
    }
    puts(tok);
    free(tok);
    return cli_finish_output(rm->name);
}

static int run(enum rcmd cmd, const char *name, const char *usage, int argc, char **argv)
{
    struct remote rm;
    memset(&rm, 0, sizeof rm);
    rm.cmd = cmd;
    rm.name = name;
    rm.usage = usage;
    int st = remote_parse(&rm, argc, argv);
    if (st == -1)
        st = 0; /* --help */
    else if (st == 0 && (st = remote_setup(&rm)) == 0) {
        switch (cmd) {
        case R_CONNECT: st = run_connect(&rm); break;
        case R_LOGIN: st = run_login(&rm); break;
        case R_LOGOUT: st = run_logout(&rm); break;
        case R_TOKEN: st = run_token(&rm); break;
        case R_TOOLS: st = run_tools(&rm); break;
        case R_CALL: st = run_call(&rm); break;
        }
    }
    remote_free(&rm);
    return st;
}

int cmd_connect(int argc, char **argv)
{
    return run(R_CONNECT, "connect", connect_usage, argc, argv);
}

int cmd_login(int argc, char **argv)
{
    return run(R_LOGIN, "login", login_usage, argc, argv);
}

int cmd_logout(int argc, char **argv)
{
    return run(R_LOGOUT, "logout", logout_usage, argc, argv);
}

int cmd_token(int argc, char **argv)
{
    return run(R_TOKEN, "token", token_usage, argc, argv);
}

int cmd_tools(int argc, char **argv)
{
    return run(R_TOOLS, "tools", tools_usage, argc, argv);
}

int cmd_call(int argc, char **argv)
{
    return run(R_CALL, "call", call_usage, argc, argv);
}
