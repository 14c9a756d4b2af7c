/* mcpgate serve */
#include <getopt.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <signal.h>

#include "cli/cli.h"
#include "gateway/gateway.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "mcpgate/mcpgate.h"
#include "oauth/oauth.h"
#include "store/store.h"
#include "tools/tools.h"
#include "transport/http_int.h"

static const char serve_usage[] =
    "usage: mcpgate serve [--listen HOST:PORT] [options]\n"
    "       mcpgate serve --stdio [options]\n"
    "\n"
    "Serves MCP, answering both protocol eras: the initialize handshake (2024-11-05,\n"
    "2025-03-26, 2025-06-18, 2025-11-25) and the stateless 2026-07-28 revision.\n"
    "Over HTTP: Streamable HTTP at /mcp, HTTP+SSE (2024-11-05) at /sse and /messages,\n"
    "GET /healthz and GET /metrics (Prometheus).\n"
    "\n"
    "Transport:\n"
    "  --listen HOST:PORT       HTTP address (default 127.0.0.1:8080; port 0 picks a free one)\n"
    "  --stdio                  newline-delimited JSON-RPC on stdin/stdout instead (logs on\n"
    "                           stderr)\n"
    "  --public-url URL         the base URL clients use (e.g. https://mcp.example.com); its\n"
    "                           host is accepted in Host headers\n"
    "  --allowed-host H[,H]     more Host names to accept (DNS-rebinding protection refuses\n"
    "                           others with 403)\n"
    "  --cors-origin O[,O]      browser origins allowed to call (or '*')\n"
    "  --tls-cert FILE          serve HTTPS with this PEM certificate ...\n"
    "  --tls-key FILE           ... and this PEM key\n"
    "  --trust-proxy            take scheme and client address from X-Forwarded-* (behind\n"
    "                           nginx or haproxy)\n"
    "\n"
    "Authentication (OAuth 2.1; on by default over HTTP):\n"
    "  --no-auth                no authentication (local use; loopback only unless\n"
    "                           --no-auth-public)\n"
    "  --no-auth-public         allow --no-auth on a non-loopback address\n"
    "  --db URL                 state: sqlite:PATH (default sqlite:./mcpgate.db; env MCPGATE_DB)\n"
    "  --issuer URL             the public base URL of the authorization server (default: the\n"
    "                           public URL, else http://LISTEN)\n"
    "  --master-key-file PATH   key that seals the signing keys (default: the database path +\n"
    "                           .key; env MCPGATE_MASTER_KEY wins)\n"
    "  --scopes 'S1 S2'         scopes offered (default 'mcp'; 'claudeai' is accepted as 'mcp')\n"
    "  --tool-scope T=S[,T=S]   the scope a tool needs (default: the first offered scope)\n"
    "  --access-ttl SEC         access token lifetime (3600)\n"
    "  --refresh-ttl SEC        refresh token lifetime (2592000, 30 days)\n"
    "  --code-ttl SEC           authorization code lifetime (60)\n"
    "  --device-code-ttl SEC    device code lifetime, RFC 8628 (600)\n"
    "  --device-interval SEC    seconds a device client waits between polls (5)\n"
    "  --purge-interval SEC     how often expired codes, tokens and sessions are deleted\n"
    "                           from the database (3600; also at start)\n"
    "  --refresh-grace SEC      a rotated refresh token retried within SEC is refused without\n"
    "                           revoking the grant (default 0: any reuse revokes it)\n"
    "  --revocation-bound SEC   how long a revoked token may still pass the cache (5)\n"
    "  --no-dcr                 refuse dynamic client registration\n"
    "  --no-cimd                refuse client ID metadata documents\n"
    "  --cimd-allow-private     fetch CIMD documents from private addresses (testing)\n"
    "  --cimd-cacert FILE       PEM CA certificates to verify CIMD servers with (replaces\n"
    "                           libcurl's CA bundle; certificates are always verified)\n"
    "  --auto-approve-first-party  skip consent for pre-registered first-party clients\n"
    "\n"
    "Content:\n"
    "  --config FILE            the gateway: the MCP servers of FILE (Claude Desktop's\n"
    "                           {\"mcpServers\": {...}} shape, plus mcpgate's keys and a \"server\"\n"
    "                           object of settings) behind this server, their tools as\n"
    "                           NAME__tool; SIGHUP reloads it (docs/gateway.md)\n"
    "  --check                  with --config: validate FILE, print every error, exit\n"
    "  --tools SET[,SET]        built-in toolsets: demo (echo, add, time, whoami, countdown,\n"
    "                           greet_user, a resource, a prompt), conformance (the fixtures of\n"
    "                           the official conformance suite); default: demo (none with\n"
    "                           --config)\n"
    "  --instructions TEXT      instructions sent to clients at initialize/discover\n"
    "\n"
    "Limits:\n"
    "  --max-message SIZE       largest message or request body (default 4M; k, M suffixes);\n"
    "                           a larger body gets 413\n"
    "  --max-header SIZE        per-connection buffer, bounds the request headers (16k)\n"
    "  --max-connections N      connections in total (10000)\n"
    "  --max-connections-per-ip N  connections from one address (default: no cap)\n"
    "  --max-sessions N         MCP sessions (10000)\n"
    "  --max-streams N          open SSE streams (20000)\n"
    "  --request-timeout SEC    idle seconds before a connection is closed (30)\n"
    "  --session-idle SEC       idle seconds before a session expires (1800)\n"
    "  --threads N              HTTP threads (default: one per core)\n"
    "  --keepalive SEC          seconds between SSE keep-alive comments, which also find dead\n"
    "                           peers of idle streams (15)\n"
    "  --max-depth N            deepest JSON nesting accepted (default 64)\n"
    "  --page-size N            items per page of list results (default 100)\n"
    "  --workers N              handler threads (default: 2 per core + 2)\n"
    "\n"
    "Other:\n"
    "  --log-level LEVEL        debug, info, warn, error or off (default info; stderr)\n"
    "  -h, --help               this help\n";

static void print_ready(void *arg, const char *url)
{
    fprintf(stderr, "mcpgate: serving MCP at %s\n", url);
    fflush(stderr);
}

/* Builds the authorization server once the listening address is known. */
struct auth_setup {
    struct oauth_config cfg;
    const char *issuer_flag;
    struct store *st;
};

static int auth_init(void *arg, const char *base_url, struct oauth_server **out)
{
    struct auth_setup *a = arg;
    a->cfg.issuer = a->issuer_flag ? a->issuer_flag : base_url;
    return oauth_server_new(&a->cfg, a->st, out);
}

/* The first start of a fresh database: an admin with a random password, shown once. */
static int first_run_admin(struct store *st)
{
    int64_t n = 0;
    if (store_user_count(st, &n) != 0)
        return -1;
    if (n > 0)
        return 0;
    char *pw = crypto_random_token(12), *hash = NULL;
    int r = crypto_password_hash(pw, &hash);
    if (r == 0)
        r = store_user_add(st, "admin", hash, (int64_t)time(NULL), NULL);
    if (r == 0)
        fprintf(stderr,
                "mcpgate: created the first user: admin, password %s\n"
                "mcpgate: (shown only now; change it with 'mcpgate user passwd admin')\n",
                pw);
    crypto_wipe(pw, strlen(pw));
    free(pw);
    free(hash);
    return r;
}

static int is_loopback_listen(const char *listen)
{
    return strncmp(listen, "127.", 4) == 0 || strncmp(listen, "[::1]:", 6) == 0 ||
           strncmp(listen, "localhost:", 10) == 0;
}

/* ---- the gateway's configuration: its "server" settings and SIGHUP ---- */

struct reloader {
    const char *path;
    struct gateway *gw;
    volatile bool stop;
    pthread_t th;
};

static void *reload_main(void *arg)
{
    struct reloader *rl = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    struct timespec tick = {0, 250 * 1000000};
    while (!rl->stop) {
        if (sigtimedwait(&set, NULL, &tick) != SIGHUP)
            continue;
        struct gw_config *cfg = NULL;
        json_t *errors = NULL;
        if (gw_config_load(rl->path, &cfg, &errors) != 0) {
            size_t i;
            json_t *e;
            log_error("SIGHUP: %s has errors; keeping the running configuration", rl->path);
            json_array_foreach (errors, i, e)
                log_error("%s", json_string_value(e));
            json_decref(errors);
            continue;
        }
        log_info("SIGHUP: reloading %s", rl->path);
        if (gw_reload(rl->gw, cfg) != 0)
            log_error("SIGHUP: reload failed");
    }
    return NULL;
}

/* A "server" setting: the string value of key, unless the command line set it. */
static const char *cfg_str(json_t *server, const char *key, const char *current)
{
    const char *v = json_string_value(json_object_get(server, key));
    return current != NULL || v == NULL ? current : v;
}

static unsigned cfg_uint(json_t *server, const char *key, unsigned current)
{
    json_t *v = json_object_get(server, key);
    return current != 0 || !json_is_integer(v) || json_integer_value(v) <= 0
               ? current
               : (unsigned)json_integer_value(v);
}

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
    enum {
        O_STDIO = 1000, O_TOOLS, O_INSTR, O_MAXMSG, O_MAXDEPTH, O_PAGE, O_WORKERS, O_LOG,
        O_LISTEN, O_PUBLIC, O_HOSTS, O_CORS, O_CERT, O_KEY, O_PROXY, O_NOAUTH, O_NOAUTHPUB,
        O_MAXHDR, O_MAXCONN, O_MAXCONNIP, O_MAXSESS, O_MAXSTREAMS, O_REQTO, O_SESSIDLE, O_THREADS,
        O_DB, O_ISSUER, O_MKEY, O_SCOPES, O_TOOLSCOPE, O_ATTL, O_RTTL, O_CTTL, O_GRACE, O_RBOUND,
        O_NODCR, O_NOCIMD, O_CIMDPRIV, O_CIMDCA, O_AUTOAPPROVE, O_KEEPALIVE, O_CONFIG, O_CHECK,
        O_DTTL, O_DINT, O_PURGE
    };
    static const struct option opts[] = {
        {"stdio", no_argument, NULL, O_STDIO},
        {"listen", required_argument, NULL, O_LISTEN},
        {"public-url", required_argument, NULL, O_PUBLIC},
        {"allowed-host", required_argument, NULL, O_HOSTS},
        {"cors-origin", required_argument, NULL, O_CORS},
        {"tls-cert", required_argument, NULL, O_CERT},
        {"tls-key", required_argument, NULL, O_KEY},
        {"trust-proxy", no_argument, NULL, O_PROXY},
        {"no-auth", no_argument, NULL, O_NOAUTH},
        {"no-auth-public", no_argument, NULL, O_NOAUTHPUB},
        {"max-header", required_argument, NULL, O_MAXHDR},
        {"max-connections", required_argument, NULL, O_MAXCONN},
        {"max-connections-per-ip", required_argument, NULL, O_MAXCONNIP},
        {"max-sessions", required_argument, NULL, O_MAXSESS},
        {"max-streams", required_argument, NULL, O_MAXSTREAMS},
        {"request-timeout", required_argument, NULL, O_REQTO},
        {"session-idle", required_argument, NULL, O_SESSIDLE},
        {"threads", required_argument, NULL, O_THREADS},
        {"keepalive", required_argument, NULL, O_KEEPALIVE},
        {"db", required_argument, NULL, O_DB},
        {"issuer", required_argument, NULL, O_ISSUER},
        {"master-key-file", required_argument, NULL, O_MKEY},
        {"scopes", required_argument, NULL, O_SCOPES},
        {"tool-scope", required_argument, NULL, O_TOOLSCOPE},
        {"access-ttl", required_argument, NULL, O_ATTL},
        {"refresh-ttl", required_argument, NULL, O_RTTL},
        {"code-ttl", required_argument, NULL, O_CTTL},
        {"device-code-ttl", required_argument, NULL, O_DTTL},
        {"device-interval", required_argument, NULL, O_DINT},
        {"purge-interval", required_argument, NULL, O_PURGE},
        {"refresh-grace", required_argument, NULL, O_GRACE},
        {"revocation-bound", required_argument, NULL, O_RBOUND},
        {"no-dcr", no_argument, NULL, O_NODCR},
        {"no-cimd", no_argument, NULL, O_NOCIMD},
        {"cimd-allow-private", no_argument, NULL, O_CIMDPRIV},
        {"cimd-cacert", required_argument, NULL, O_CIMDCA},
        {"auto-approve-first-party", no_argument, NULL, O_AUTOAPPROVE},
        {"tools", required_argument, NULL, O_TOOLS},
        {"config", required_argument, NULL, O_CONFIG},
        {"check", no_argument, NULL, O_CHECK},
        {"instructions", required_argument, NULL, O_INSTR},
        {"max-message", required_argument, NULL, O_MAXMSG},
        {"max-depth", required_argument, NULL, O_MAXDEPTH},
        {"page-size", required_argument, NULL, O_PAGE},
        {"workers", required_argument, NULL, O_WORKERS},
        {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int stdio = 0, no_auth_public = 0, no_auth = 0;
    struct auth_setup auth = {.cfg = {.dcr = true, .cimd = true}};
    const char *db = getenv("MCPGATE_DB"), *config = NULL;
    bool check = false;
    const char *tool_scopes = NULL;
    char *master_default = NULL;
    struct mcp_http_options http = {.on_ready = print_ready};
    size_t header_size = 0;
    const char *toolsets = NULL, *instructions = NULL;
    size_t max_message = 4u << 20;
    bool max_message_set = false;
    unsigned max_depth = 64, page_size = 100, workers = 0;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_STDIO: stdio = 1; break;
        case O_LISTEN: http.listen = optarg; break;
        case O_PUBLIC: http.public_url = optarg; break;
        case O_HOSTS: http.allowed_hosts = optarg; break;
        case O_CORS: http.cors_origins = optarg; break;
        case O_CERT: http.tls_cert = optarg; break;
        case O_KEY: http.tls_key = optarg; break;
        case O_PROXY: http.trust_proxy = true; break;
        case O_NOAUTH: no_auth = 1; break;
        case O_DB: db = optarg; break;
        case O_ISSUER: auth.issuer_flag = optarg; break;
        case O_MKEY: auth.cfg.master_key_path = optarg; break;
        case O_SCOPES: auth.cfg.scopes = optarg; break;
        case O_TOOLSCOPE: tool_scopes = optarg; break;
        case O_NODCR: auth.cfg.dcr = false; break;
        case O_NOCIMD: auth.cfg.cimd = false; break;
        case O_CIMDPRIV: auth.cfg.cimd_allow_private = true; break;
        case O_CIMDCA: auth.cfg.cimd_cacert = optarg; break;
        case O_AUTOAPPROVE: auth.cfg.auto_approve_first_party = true; break;
        case O_ATTL:
        case O_RTTL:
        case O_CTTL:
        case O_GRACE:
        case O_DTTL:
        case O_DINT:
        case O_PURGE:
        case O_RBOUND: {
            unsigned v;
            if (parse_uint(optarg, 400000000, &v) != 0) {
                fprintf(stderr, "mcpgate serve: %s: expected seconds\n", argv[optind - 1]);
                return 2;
            }
            if (c == O_ATTL)
                auth.cfg.access_ttl = v;
            else if (c == O_RTTL)
                auth.cfg.refresh_ttl = v;
            else if (c == O_CTTL)
                auth.cfg.code_ttl = v;
            else if (c == O_GRACE)
                auth.cfg.refresh_grace = v;
            else if (c == O_DTTL)
                auth.cfg.device_ttl = v;
            else if (c == O_DINT)
                auth.cfg.device_interval = v;
            else if (c == O_PURGE)
                auth.cfg.purge_interval = v;
            else
                auth.cfg.revocation_bound = v;
            break;
        }
        case O_NOAUTHPUB: no_auth_public = 1; break;
        case O_MAXHDR:
            if (cli_parse_size(optarg, &header_size) != 0 || header_size < 4096) {
                fprintf(stderr, "mcpgate serve: --max-header: a size of at least 4k\n");
                return 2;
            }
            http.conn_memory = header_size;
            break;
        case O_MAXCONN:
        case O_MAXCONNIP:
        case O_MAXSESS:
        case O_MAXSTREAMS:
        case O_REQTO:
        case O_SESSIDLE:
        case O_KEEPALIVE:
        case O_THREADS: {
            unsigned v;
            if (parse_uint(optarg, 10000000, &v) != 0) {
                fprintf(stderr, "mcpgate serve: %s: expected a positive number\n",
                        argv[optind - 1]);
                return 2;
            }
            if (c == O_MAXCONN)
                http.max_connections = v;
            else if (c == O_MAXCONNIP)
                http.max_connections_per_ip = v;
            else if (c == O_MAXSESS)
                http.max_sessions = v;
            else if (c == O_MAXSTREAMS)
                http.max_streams = v;
            else if (c == O_REQTO)
                http.request_timeout = v;
            else if (c == O_SESSIDLE)
                http.session_idle = v;
            else if (c == O_KEEPALIVE)
                http.keepalive = v;
            else
                http.threads = v;
            break;
        }
        case O_TOOLS: toolsets = optarg; break;
        case O_CONFIG: config = optarg; break;
        case O_CHECK: check = true; break;
        case O_INSTR: instructions = optarg; break;
        case O_MAXMSG:
            if (cli_parse_size(optarg, &max_message) != 0) {
                fprintf(stderr, "mcpgate serve: --max-message: '%s' is not a size\n", optarg);
                return 2;
            }
            max_message_set = true;
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
    struct gw_config *gwcfg = NULL;
    if (check && config == NULL) {
        fprintf(stderr, "mcpgate serve: --check validates a --config FILE\n");
        return 2;
    }
    if (config != NULL) {
        json_t *errors = NULL;
        if (gw_config_load(config, &gwcfg, &errors) != 0) {
            size_t i;
            json_t *e;
            json_array_foreach (errors, i, e)
                fprintf(stderr, "%s\n", json_string_value(e));
            fprintf(stderr, "mcpgate serve: %zu error%s in %s\n", json_array_size(errors),
                    json_array_size(errors) == 1 ? "" : "s", config);
            json_decref(errors);
            return 2;
        }
        if (check) {
            printf("%s: ok (%zu server%s)\n", config, gwcfg->nup, gwcfg->nup == 1 ? "" : "s");
            gw_config_free(gwcfg);
            return 0;
        }
        /* the file's settings, where the command line said nothing */
        json_t *sv = gwcfg->server;
        http.listen = cfg_str(sv, "listen", http.listen);
        http.public_url = cfg_str(sv, "publicUrl", http.public_url);
        http.allowed_hosts = cfg_str(sv, "allowedHosts", http.allowed_hosts);
        http.cors_origins = cfg_str(sv, "corsOrigins", http.cors_origins);
        http.tls_cert = cfg_str(sv, "tlsCert", http.tls_cert);
        http.tls_key = cfg_str(sv, "tlsKey", http.tls_key);
        if (json_is_true(json_object_get(sv, "trustProxy")))
            http.trust_proxy = true;
        db = cfg_str(sv, "db", db);
        auth.issuer_flag = cfg_str(sv, "issuer", auth.issuer_flag);
        auth.cfg.scopes = cfg_str(sv, "scopes", auth.cfg.scopes);
        auth.cfg.access_ttl = cfg_uint(sv, "accessTtl", auth.cfg.access_ttl);
        auth.cfg.refresh_ttl = cfg_uint(sv, "refreshTtl", auth.cfg.refresh_ttl);
        auth.cfg.purge_interval = cfg_uint(sv, "purgeInterval", auth.cfg.purge_interval);
        http.max_connections = cfg_uint(sv, "maxConnections", http.max_connections);
        http.max_connections_per_ip = cfg_uint(sv, "maxConnectionsPerIp",
                                               http.max_connections_per_ip);
        http.max_sessions = cfg_uint(sv, "maxSessions", http.max_sessions);
        http.max_streams = cfg_uint(sv, "maxStreams", http.max_streams);
        http.session_idle = cfg_uint(sv, "sessionIdle", http.session_idle);
        http.request_timeout = cfg_uint(sv, "requestTimeout", http.request_timeout);
        workers = cfg_uint(sv, "workers", workers);
        if (!max_message_set && json_is_integer(json_object_get(sv, "maxMessage")))
            max_message = (size_t)json_integer_value(json_object_get(sv, "maxMessage"));
        auth.cfg.refresh_ttl = cfg_uint(sv, "refreshTtl", auth.cfg.refresh_ttl);
        toolsets = cfg_str(sv, "tools", toolsets);
        instructions = cfg_str(sv, "instructions", instructions);
        if (json_is_true(json_object_get(sv, "noAuth")))
            no_auth = 1;
        const char *lv = json_string_value(json_object_get(sv, "logLevel"));
        enum log_level lvl;
        if (lv != NULL && log_level_parse(lv, &lvl) == 0)
            log_set_level(lvl);
        if (toolsets == NULL)
            toolsets = ""; /* a gateway offers its servers' tools, not the demo */
    }
    if (db == NULL)
        db = "sqlite:./mcpgate.db";
    if (toolsets == NULL)
        toolsets = "demo";
    /* every upstream's scope is offered, and unlocks its tools */
    char *all_scopes = NULL, *all_tool_scopes = NULL;
    if (gwcfg != NULL && gwcfg->nup > 0) {
        char *gs = gw_scopes(gwcfg), *gts = gw_tool_scopes(gwcfg);
        all_scopes = xasprintf("%s %s", auth.cfg.scopes != NULL ? auth.cfg.scopes : "mcp", gs);
        all_tool_scopes = tool_scopes != NULL ? xasprintf("%s,%s", tool_scopes, gts) : xstrdup(gts);
        auth.cfg.scopes = all_scopes;
        tool_scopes = all_tool_scopes;
        free(gs);
        free(gts);
    }
    if (!stdio && no_auth && http.listen != NULL && !is_loopback_listen(http.listen) &&
        !no_auth_public) {
        fprintf(stderr, "mcpgate serve: refusing to serve without authentication on %s (not a "
                        "loopback address); add --no-auth-public if that is really wanted\n",
                http.listen);
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
    struct gateway *gw = NULL;
    struct reloader rl = {.path = config};
    if (gwcfg != NULL) {
        /* SIGHUP is taken by the reloader thread alone: block it before any thread starts */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        if (gw_start(srv, gwcfg, !stdio && !no_auth, &gw) != 0) {
            fprintf(stderr, "mcpgate serve: cannot start the gateway\n");
            mcp_server_free(srv);
            free(all_scopes);
            free(all_tool_scopes);
            return 1;
        }
        rl.gw = gw;
        if (pthread_create(&rl.th, NULL, reload_main, &rl) != 0)
            rl.path = NULL;
    }
    if (stdio) {
        r = mcp_serve_stdio(srv);
    } else if (no_auth) {
        log_warn("serving without authentication (--no-auth)");
        http.max_body = max_message;
        r = mcp_serve_http(srv, &http);
    } else {
        if (store_open(db, &auth.st) != 0) {
            fprintf(stderr, "mcpgate serve: cannot open the database %s\n", db);
            mcp_server_free(srv);
            return 1;
        }
        if (auth.cfg.master_key_path == NULL) {
            master_default = cli_master_key_path(db); /* where `mcpgate keys` looks too */
            auth.cfg.master_key_path = master_default;
        }
        if (first_run_admin(auth.st) != 0) {
            fprintf(stderr, "mcpgate serve: cannot create the first user\n");
            r = 1;
        } else {
            http.max_body = max_message;
            r = http_serve(srv, &http, auth_init, &auth, tool_scopes);
        }
        store_close(auth.st);
        free(master_default);
    }
    if (gw != NULL) {
        if (rl.path != NULL) {
            rl.stop = true;
            pthread_join(rl.th, NULL);
        }
        gw_free(gw);
    }
    mcp_server_free(srv);
    free(all_scopes);
    free(all_tool_scopes);
    return r == 0 ? 0 : 1;
}
