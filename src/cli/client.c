/* mcpgate client add|list|remove: OAuth clients registered by the administrator (kind static),
 * next to those that registered themselves (DCR) or are known by a metadata URL (CIMD). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/crypto.h"
#include "core/xmalloc.h"
#include "oauth/oauth_int.h"
#include "store/store.h"

#define CLIENT_ID_MAX 128
#define LIST_MAX 64 /* --redirect-uri, --grant-type given at most this often */

#define DB_HELP                                                                                    \
    "  --db URL                the database (default $MCPGATE_DB, else " CLI_DB_DEFAULT ")\n"      \
    "  -h, --help              this help\n"

static const char add_usage[] =
    "usage: mcpgate client add --name NAME --redirect-uri URI [--redirect-uri URI ...]\n"
    "                          [--confidential] [--first-party] [--scope S] [--grant-type G ...]\n"
    "                          [--client-id ID] [--db URL]\n"
    "\n"
    "Registers a client ahead of time. Prints its client_id and, for a confidential client,\n"
    "its secret: that one time only (the database keeps only a hash of it).\n"
    "\n"
    "  --name NAME             the name shown to users on the consent page\n"
    "  --redirect-uri URI      an allowed redirect URI (repeatable): https, or http on a\n"
    "                          loopback address, or a private-use scheme (com.example.app:/cb)\n"
    "  --confidential          the client authenticates with a secret (client_secret_basic);\n"
    "                          default: a public client (PKCE only)\n"
    "  --first-party           trusted: users are not asked for consent\n"
    "  --scope S               the scopes the client may request (space-separated)\n"
    "  --grant-type G          authorization_code, refresh_token, client_credentials or\n"
    "                          urn:ietf:params:oauth:grant-type:device_code (repeatable;\n"
    "                          default authorization_code and refresh_token;\n"
    "                          client_credentials needs --confidential)\n"
    "  --client-id ID          this client_id (1-128 characters of A-Z a-z 0-9 . _ ~ -) instead\n"
    "                          of a random one\n" DB_HELP;

static const char list_usage[] =
    "usage: mcpgate client list [--json] [--db URL]\n"
    "\n"
    "Lists the clients: registered here (static), by dynamic registration (dcr), or by a\n"
    "client ID metadata document (cimd). Secrets are never shown (only hashes are stored).\n"
    "\n"
    "  --json                  a JSON array of {client_id, name, kind, redirect_uris,\n"
    "                          first_party, confidential, grant_types, scope,\n"
    "                          created_at}\n" DB_HELP;

static const char remove_usage[] =
    "usage: mcpgate client remove CLIENT_ID [--db URL]\n"
    "\n"
    "Removes a client; its grants and tokens are revoked with it.\n"
    "\n" DB_HELP;

static const char client_usage[] =
    "usage: mcpgate client add --name NAME --redirect-uri URI [options]\n"
    "       mcpgate client list [--json] [--db URL]\n"
    "       mcpgate client remove CLIENT_ID [--db URL]\n"
    "\n"
    "Manages the OAuth clients of the authorization server.\n"
    "Run 'mcpgate client COMMAND --help' for the options of a command.\n";

static bool client_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > CLIENT_ID_MAX)
        return false;
    for (const char *p = id; *p != '\0'; p++) {
        char ch = *p;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '~' || ch == '-'))
            return false;
    }
    return true;
}

/* A string array member from the given values; NULL when one is not valid UTF-8. */
static json_t *string_array(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_string(v[i]);
        if (s == NULL) {
            json_decref(a);
            return NULL;
        }
        json_array_append_new(a, s);
    }
    return a;
}

/* Prints a metadata error; one naming a redirect URI ("redirect_uris[1]: ...") names it. */
static void print_meta_error(const char *cmd, const char *why, const char *const *uris,
                             size_t n_uris)
{
    static const char prefix[] = "redirect_uris[";
    unsigned long long idx;
    char num[24];
    if (strncmp(why, prefix, sizeof(prefix) - 1) == 0) {
        const char *p = why + sizeof(prefix) - 1;
        size_t len = strspn(p, "0123456789");
        if (len > 0 && len < sizeof(num) && p[len] == ']') {
            memcpy(num, p, len);
            num[len] = '\0';
            if (cli_parse_uint(num, n_uris, &idx) == 0 && idx < n_uris) {
                const char *rest = p + len + 1;
                rest += strspn(rest, ": ");
                fprintf(stderr, "mcpgate %s: redirect URI '", cmd);
                cli_print_text(stderr, uris[idx]);
                fprintf(stderr, "' refused: %s\n", rest);
                return;
            }
        }
    }
    fprintf(stderr, "mcpgate %s: invalid client metadata: %s\n", cmd, why);
}

static int client_add(int argc, char **argv)
{
    enum { O_DB = 1000, O_NAME, O_REDIR, O_CONF, O_FIRST, O_SCOPE, O_GRANT, O_ID };
    static const struct option opts[] = {
        {"db", required_argument, NULL, O_DB},
        {"name", required_argument, NULL, O_NAME},
        {"redirect-uri", required_argument, NULL, O_REDIR},
        {"confidential", no_argument, NULL, O_CONF},
        {"first-party", no_argument, NULL, O_FIRST},
        {"scope", required_argument, NULL, O_SCOPE},
        {"grant-type", required_argument, NULL, O_GRANT},
        {"client-id", required_argument, NULL, O_ID},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const default_grants[] = {"authorization_code", "refresh_token"};
    const char *cmd = "client add";
    const char *db = NULL, *name = NULL, *scope = NULL, *id_opt = NULL;
    const char *uris[LIST_MAX], *grants[LIST_MAX];
    size_t n_uris = 0, n_grants = 0;
    bool confidential = false, first_party = false, authz_code = false;
    struct store *st = NULL;
    struct store_client c, existing;
    json_t *meta = NULL, *v;
    char *client_id = NULL, *secret = NULL;
    char why[512];
    int status = 1, r, ch;

    memset(&c, 0, sizeof(c));
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case O_DB: db = optarg; break;
        case O_NAME: name = optarg; break;
        case O_REDIR:
        case O_GRANT:
            if ((ch == O_REDIR ? n_uris : n_grants) >= LIST_MAX) {
                fprintf(stderr, "mcpgate %s: %s given more than %d times\n", cmd, argv[optind - 1],
                        LIST_MAX);
                return 2;
            }
            if (ch == O_REDIR)
                uris[n_uris++] = optarg;
            else
                grants[n_grants++] = optarg;
            break;
        case O_CONF: confidential = true; break;
        case O_FIRST: first_party = true; break;
        case O_SCOPE: scope = optarg; break;
        case O_ID: id_opt = optarg; break;
        case 'h': fputs(add_usage, stdout); return 0;
        default: return cli_option_error(cmd, ch, argv, add_usage);
        }
    }
    if (optind < argc) {
        return cli_usage_error(cmd, add_usage, "unexpected argument '%s'", argv[optind]);
    }
    if (name == NULL || *name == '\0') {
        return cli_usage_error(cmd, add_usage, "--name is required");
    }
    if (id_opt != NULL && !client_id_valid(id_opt)) {
        fprintf(stderr, "mcpgate %s: --client-id: 1-%d characters of A-Z a-z 0-9 . _ ~ -\n", cmd,
                CLIENT_ID_MAX);
        return 2;
    }
    if (n_grants == 0) {
        for (size_t i = 0; i < 2; i++)
            grants[n_grants++] = default_grants[i];
    }
    for (size_t i = 0; i < n_grants; i++)
        authz_code = authz_code || strcmp(grants[i], "authorization_code") == 0;
    if (authz_code && n_uris == 0) {
        return cli_usage_error(cmd, add_usage,
                               "--redirect-uri is required (for the authorization_code grant)");
    }

    /* RFC 7591 metadata, checked as a registration would be. */
    meta = json_object();
    if ((v = json_string(name)) == NULL) {
        fprintf(stderr, "mcpgate %s: --name: not valid UTF-8\n", cmd);
        goto out;
    }
    json_object_set_new(meta, "client_name", v);
    if ((v = string_array(uris, n_uris)) == NULL) {
        fprintf(stderr, "mcpgate %s: --redirect-uri: not valid UTF-8\n", cmd);
        goto out;
    }
    json_object_set_new(meta, "redirect_uris", v);
    if ((v = string_array(grants, n_grants)) == NULL) {
        fprintf(stderr, "mcpgate %s: --grant-type: not valid UTF-8\n", cmd);
        goto out;
    }
    json_object_set_new(meta, "grant_types", v);
    json_object_set_new(meta, "response_types",
                        authz_code ? json_pack("[s]", "code") : json_array());
    json_object_set_new(meta, "token_endpoint_auth_method",
                        json_string(confidential ? "client_secret_basic" : "none"));
    if (scope != NULL) {
        if ((v = json_string(scope)) == NULL) {
            fprintf(stderr, "mcpgate %s: --scope: not valid UTF-8\n", cmd);
            goto out;
        }
        json_object_set_new(meta, "scope", v);
    }
    why[0] = '\0';
    if (oauth_client_metadata_check(meta, NULL, why, sizeof(why)) != 0) {
        print_meta_error(cmd, why[0] != '\0' ? why : "refused", uris, n_uris);
        goto out;
    }

    if (cli_store_open(cmd, cli_db_url(db), false, &st) != 0)
        goto out;
    client_id = id_opt != NULL ? xstrdup(id_opt) : crypto_random_token(16);
    /* store_client_put replaces: a taken client_id is refused here. */
    if ((r = store_client_get(st, client_id, &existing)) == 0) {
        store_client_clear(&existing);
        fprintf(stderr, "mcpgate %s: client ID %s already exists\n", cmd, client_id);
        goto out;
    }
    if (r != ERR_NOTFOUND) {
        fprintf(stderr, "mcpgate %s: cannot read the clients: %s\n", cmd, err_str(r));
        goto out;
    }
    c.client_id = client_id;
    c.kind = CLIENT_STATIC;
    c.metadata = meta;
    c.first_party = first_party;
    c.created_at = (int64_t)time(NULL);
    if (confidential) {
        secret = crypto_random_token(32);
        crypto_sha256(secret, strlen(secret), c.secret_hash);
        c.has_secret = true;
    }
    if ((r = store_client_put(st, &c)) != 0) {
        fprintf(stderr, "mcpgate %s: cannot store the client: %s\n", cmd, err_str(r));
        goto out;
    }
    printf("client_id: %s\n", client_id);
    if (secret != NULL) {
        printf("client_secret: %s\n", secret);
        fprintf(stderr,
                "mcpgate %s: save the client secret now: it is shown only this once "
                "and not stored (the database keeps only its SHA-256)\n",
                cmd);
    }
    status = cli_finish_output(cmd);
out:
    if (secret != NULL) {
        crypto_wipe(secret, strlen(secret));
        free(secret);
    }
    crypto_wipe(c.secret_hash, sizeof(c.secret_hash));
    free(client_id);
    json_decref(meta);
    store_close(st);
    return status;
}

/* The kind of a listed client, whether the store gives it as a name or a number. */
static const char *kind_name(json_t *kind)
{
    if (json_is_string(kind))
        return json_string_value(kind);
    switch (json_integer_value(kind)) {
    case CLIENT_STATIC: return "static";
    case CLIENT_DCR: return "dcr";
    case CLIENT_CIMD: return "cimd";
    }
    return "unknown";
}

/* What the listing shows of one client: chosen members only (never hashes). */
static json_t *client_summary(json_t *row)
{
    json_t *meta = json_object_get(row, "metadata");
    json_t *uris = json_object_get(meta, "redirect_uris");
    json_t *grants = json_object_get(meta, "grant_types");
    const char *method = json_string_value(json_object_get(meta, "token_endpoint_auth_method"));
    json_t *has_secret = json_object_get(row, "has_secret");
    bool confidential = json_is_boolean(has_secret) ? json_is_true(has_secret)
                                                    : method != NULL && strcmp(method, "none") != 0;
    json_t *o = json_object();

    json_object_set(o, "client_id", json_object_get(row, "client_id"));
    json_object_set(o, "name",
                    json_is_string(json_object_get(meta, "client_name"))
                        ? json_object_get(meta, "client_name")
                        : json_null());
    json_object_set_new(o, "kind", json_string(kind_name(json_object_get(row, "kind"))));
    json_object_set_new(o, "redirect_uris", json_is_array(uris) ? json_copy(uris) : json_array());
    json_object_set_new(o, "first_party",
                        json_boolean(json_is_true(json_object_get(row, "first_party"))));
    json_object_set_new(o, "confidential", json_boolean(confidential));
    json_object_set_new(o, "grant_types", json_is_array(grants) ? json_copy(grants) : json_array());
    json_object_set(o, "scope",
                    json_is_string(json_object_get(meta, "scope")) ? json_object_get(meta, "scope")
                                                                   : json_null());
    json_object_set_new(o, "created_at",
                        json_integer(json_integer_value(json_object_get(row, "created_at"))));
    return o;
}

static void print_client(json_t *s)
{
    char created[CLI_TIME_LEN];
    size_t i;
    json_t *u;

    cli_format_time(json_integer_value(json_object_get(s, "created_at")), created);
    cli_print_token(stdout, json_string_value(json_object_get(s, "client_id")));
    printf("\n    name: ");
    cli_print_text(stdout, json_string_value(json_object_get(s, "name")));
    printf("\n    kind: %s, %s, %s, created %s\n", json_string_value(json_object_get(s, "kind")),
           json_is_true(json_object_get(s, "confidential")) ? "confidential" : "public",
           json_is_true(json_object_get(s, "first_party")) ? "first-party" : "third-party",
           created);
    json_array_foreach (json_object_get(s, "redirect_uris"), i, u) {
        printf("    redirect URI: ");
        cli_print_token(stdout, json_string_value(u));
        putchar('\n');
    }
}

/* Parses --db, --json (when json is non-NULL), -h and, when arg is non-NULL, one positional
 * argument. Returns -1 to go on, else the exit status. */
static int parse_simple(const char *cmd, const char *usage, int argc, char **argv, const char **db,
                        bool *json, const char **arg, const char *arg_name)
{
    enum { O_DB = 1000, O_JSON };
    static const struct option opts[] = {
        {"db", required_argument, NULL, O_DB},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    *db = NULL;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_DB: *db = optarg; break;
        case O_JSON:
            if (json == NULL) {
                return cli_usage_error(cmd, usage, "unknown option '--json'");
            }
            *json = true;
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: return cli_option_error(cmd, c, argv, usage);
        }
    }
    if (arg != NULL) {
        if (optind >= argc) {
            return cli_usage_error(cmd, usage, "missing the %s", arg_name);
        }
        *arg = argv[optind++];
    }
    if (optind < argc) {
        return cli_usage_error(cmd, usage, "unexpected argument '%s'", argv[optind]);
    }
    return -1;
}

static int client_list(int argc, char **argv)
{
    const char *cmd = "client list", *db;
    bool json = false;
    struct store *st = NULL;
    json_t *rows = NULL, *out = NULL, *row;
    size_t i;
    int status, r;

    if ((status = parse_simple(cmd, list_usage, argc, argv, &db, &json, NULL, NULL)) >= 0)
        return status;
    status = 1;
    if (cli_store_open(cmd, cli_db_url(db), true, &st) != 0)
        goto out;
    if ((r = store_client_list(st, &rows)) != 0) {
        fprintf(stderr, "mcpgate %s: cannot list the clients: %s\n", cmd, err_str(r));
        goto out;
    }
    out = json_array();
    json_array_foreach (rows, i, row)
        json_array_append_new(out, client_summary(row));
    if (json) {
        if (cli_json_print(cmd, out) != 0)
            goto out;
    } else {
        json_array_foreach (out, i, row)
            print_client(row);
    }
    status = cli_finish_output(cmd);
out:
    json_decref(out);
    json_decref(rows);
    store_close(st);
    return status;
}

static int client_remove(int argc, char **argv)
{
    const char *cmd = "client remove", *db, *id = NULL;
    struct store *st = NULL;
    int status, r;

    if ((status = parse_simple(cmd, remove_usage, argc, argv, &db, NULL, &id, "CLIENT_ID")) >= 0)
        return status;
    status = 1;
    if (cli_store_open(cmd, cli_db_url(db), true, &st) != 0)
        goto out;
    if ((r = store_client_remove(st, id)) != 0) {
        fprintf(stderr, "mcpgate %s: ", cmd);
        if (r == ERR_NOTFOUND) {
            fputs("no client ", stderr);
            cli_print_token(stderr, id);
        } else {
            fputs("cannot remove client ", stderr);
            cli_print_token(stderr, id);
            fprintf(stderr, ": %s", err_str(r));
        }
        fputc('\n', stderr);
        goto out;
    }
    printf("client ");
    cli_print_token(stdout, id);
    printf(" removed\n");
    status = cli_finish_output(cmd);
out:
    store_close(st);
    return status;
}

int cmd_client(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } subs[] = {{"add", client_add}, {"list", client_list}, {"remove", client_remove}};
    if (argc < 2) {
        fputs(client_usage, stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(client_usage, stdout);
        return 0;
    }
    cli_admin_init();
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        if (strcmp(argv[1], subs[i].name) == 0)
            return subs[i].fn(argc - 1, argv + 1);
    return cli_usage_error("client", client_usage, "unknown command '%s'", argv[1]);
}
