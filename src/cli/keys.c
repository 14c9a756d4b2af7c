/* mcpgate keys rotate|list: the ES256 keys that sign access tokens. Their private halves are
 * sealed in the database under a master key kept outside it (a file, or MCPGATE_MASTER_KEY). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "core/crypto.h"
#include "core/xmalloc.h"
#include "oauth/jwt.h"
#include "store/store.h"

#define DB_HELP                                                                                    \
    "  --db URL                the database (default $MCPGATE_DB, else " CLI_DB_DEFAULT ")\n"      \
    "  -h, --help              this help\n"

static const char rotate_usage[] =
    "usage: mcpgate keys rotate [--master-key-file PATH] [--db URL]\n"
    "\n"
    "Creates a new signing key and makes it the current one; prints its kid. The previous\n"
    "key is retired: it signs nothing more but still verifies the tokens it signed until\n"
    "they expire.\n"
    "\n"
    "  --master-key-file PATH  the master key that seals the private keys (default: the\n"
    "                          database file + .key, created 0600 when missing); the\n"
    "                          MCPGATE_MASTER_KEY environment variable (base64url of 32\n"
    "                          bytes) overrides it\n" DB_HELP;

static const char list_usage[] =
    "usage: mcpgate keys list [--json] [--db URL]\n"
    "\n"
    "Lists the signing keys, current first: kid, algorithm, creation time, and whether it is\n"
    "the current key or retired (and since when). Private keys are never shown.\n"
    "\n"
    "  --json                  a JSON array of {kid, alg, created_at, retired_at, "
    "current}\n" DB_HELP;

static const char keys_usage[] =
    "usage: mcpgate keys rotate [--master-key-file PATH] [--db URL]\n"
    "       mcpgate keys list [--json] [--db URL]\n"
    "\n"
    "Manages the keys that sign access tokens.\n"
    "Run 'mcpgate keys COMMAND --help' for the options of a command.\n";

static int keys_rotate(int argc, char **argv)
{
    enum { O_DB = 1000, O_KEYFILE };
    static const struct option opts[] = {
        {"db", required_argument, NULL, O_DB},
        {"master-key-file", required_argument, NULL, O_KEYFILE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "keys rotate", *db = NULL, *key_opt = NULL, *env;
    char *key_path = NULL, *kid = NULL;
    unsigned char master[32];
    struct store *st = NULL;
    struct jwt_keyset *ks = NULL;
    struct stat sb;
    bool from_env, created = false;
    int64_t now = (int64_t)time(NULL);
    int status = 1, r, c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_DB: db = optarg; break;
        case O_KEYFILE: key_opt = optarg; break;
        case 'h': fputs(rotate_usage, stdout); return 0;
        default: return cli_option_error(cmd, c, argv, rotate_usage);
        }
    }
    if (optind < argc) {
        return cli_usage_error(cmd, rotate_usage, "unexpected argument '%s'", argv[optind]);
    }
    if (key_opt != NULL && *key_opt == '\0') {
        fprintf(stderr, "mcpgate %s: --master-key-file: empty path\n", cmd);
        return 2;
    }
    env = getenv("MCPGATE_MASTER_KEY");
    from_env = env != NULL && env[0] != '\0';
    key_path = key_opt != NULL ? xstrdup(key_opt) : cli_master_key_path(cli_db_url(db));
    if (!from_env && key_path == NULL) {
        fprintf(stderr,
                "mcpgate %s: no master key file for this database: give "
                "--master-key-file PATH or set MCPGATE_MASTER_KEY\n",
                cmd);
        return 2;
    }

    if (cli_store_open(cmd, cli_db_url(db), false, &st) != 0)
        goto out;
    if (!from_env)
        created = lstat(key_path, &sb) != 0 && errno == ENOENT;
    if ((r = jwt_master_key_load(key_path, master)) != 0) {
        if (from_env)
            fprintf(stderr,
                    "mcpgate %s: MCPGATE_MASTER_KEY: %s (base64url of 32 bytes "
                    "expected)\n",
                    cmd, err_str(r));
        else
            fprintf(stderr, "mcpgate %s: cannot load the master key file %s: %s\n", cmd, key_path,
                    err_str(r));
        goto out;
    }
    if (created)
        fprintf(stderr,
                "mcpgate %s: created the master key file %s: keep it (and back it up) "
                "with the database; it unseals the signing keys\n",
                cmd, key_path);
    /* Loading first proves this master key opens the current key (a wrong one would seal the
     * new key under a key the servers do not have), and creates the first key if there is
     * none, so that what is rotated out is a key. */
    if ((r = jwt_keyset_load(st, master, now, 0, &ks)) != 0) {
        if (r == ERR_INTEGRITY)
            fprintf(stderr,
                    "mcpgate %s: the master key does not open the current signing key "
                    "(another --master-key-file or MCPGATE_MASTER_KEY?)\n",
                    cmd);
        else
            fprintf(stderr, "mcpgate %s: cannot load the signing keys: %s\n", cmd, err_str(r));
        goto out;
    }
    if ((r = jwt_key_rotate(st, master, now, &kid)) != 0) {
        fprintf(stderr, "mcpgate %s: cannot rotate the signing key: %s\n", cmd, err_str(r));
        goto out;
    }
    printf("%s\n", kid);
    status = cli_finish_output(cmd);
out:
    crypto_wipe(master, sizeof(master));
    jwt_keyset_free(ks);
    free(kid);
    free(key_path);
    store_close(st);
    return status;
}

static int keys_list(int argc, char **argv)
{
    enum { O_DB = 1000, O_JSON };
    static const struct option opts[] = {
        {"db", required_argument, NULL, O_DB},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "keys list", *db = NULL;
    bool json = false;
    struct store *st = NULL;
    struct store_key *keys = NULL;
    size_t n = 0;
    json_t *arr = NULL;
    int status = 1, r, c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_DB: db = optarg; break;
        case O_JSON: json = true; break;
        case 'h': fputs(list_usage, stdout); return 0;
        default: return cli_option_error(cmd, c, argv, list_usage);
        }
    }
    if (optind < argc) {
        return cli_usage_error(cmd, list_usage, "unexpected argument '%s'", argv[optind]);
    }
    if (cli_store_open(cmd, cli_db_url(db), true, &st) != 0)
        goto out;
    if ((r = store_key_list(st, &keys, &n)) != 0) {
        fprintf(stderr, "mcpgate %s: cannot list the signing keys: %s\n", cmd, err_str(r));
        goto out;
    }
    if (json) {
        arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:s?, s:s?, s:I, s:I, s:b}", "kid", keys[i].kid,
                                                 "alg", keys[i].alg, "created_at",
                                                 (json_int_t)keys[i].created_at, "retired_at",
                                                 (json_int_t)keys[i].retired_at, "current",
                                                 keys[i].retired_at == 0));
        if (cli_json_print(cmd, arr) != 0)
            goto out;
    } else {
        printf("%-43s  %-5s  %-20s  %s\n", "KID", "ALG", "CREATED", "STATUS");
        for (size_t i = 0; i < n; i++) {
            char created[CLI_TIME_LEN], retired[CLI_TIME_LEN];
            cli_format_time(keys[i].created_at, created);
            cli_format_time(keys[i].retired_at, retired);
            cli_print_token(stdout, keys[i].kid);
            size_t w = keys[i].kid != NULL ? strlen(keys[i].kid) : 1;
            printf("%*s  %-5s  %-20s  %s%s\n", w < 43 ? (int)(43 - w) : 0, "",
                   keys[i].alg != NULL ? keys[i].alg : "-", created,
                   keys[i].retired_at == 0 ? "current" : "retired ",
                   keys[i].retired_at == 0 ? "" : retired);
        }
    }
    status = cli_finish_output(cmd);
out:
    json_decref(arr);
    for (size_t i = 0; i < n; i++)
        store_key_clear(&keys[i]);
    free(keys);
    store_close(st);
    return status;
}

int cmd_keys(int argc, char **argv)
{
    if (argc < 2) {
        fputs(keys_usage, stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(keys_usage, stdout);
        return 0;
    }
    cli_admin_init();
    if (strcmp(argv[1], "rotate") == 0)
        return keys_rotate(argc - 1, argv + 1);
    if (strcmp(argv[1], "list") == 0)
        return keys_list(argc - 1, argv + 1);
    return cli_usage_error("keys", keys_usage, "unknown command '%s'", argv[1]);
}
