/* mcpgate user add|list|remove|passwd: the accounts that log in at the authorization server. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/crypto.h"
#include "store/store.h"

#define DB_HELP                                                                                    \
    "  --db URL            the database (default $MCPGATE_DB, else " CLI_DB_DEFAULT ")\n"          \
    "  -h, --help          this help\n"

static const char add_usage[] =
    "usage: mcpgate user add NAME [--password-stdin] [--db URL]\n"
    "\n"
    "Adds a user who can log in at the authorization server. NAME is 1-64 characters of\n"
    "A-Z a-z 0-9 . _ @ -. The password (8 to 1024 characters) is asked twice on the terminal,\n"
    "without echo, and stored as an argon2id hash.\n"
    "\n"
    "  --password-stdin    read the password as one line of standard input instead\n" DB_HELP;

static const char list_usage[] =
    "usage: mcpgate user list [--json] [--db URL]\n"
    "\n"
    "Lists the users.\n"
    "\n"
    "  --json              a JSON array of {id, username, created_at}\n" DB_HELP;

static const char remove_usage[] =
    "usage: mcpgate user remove NAME [--db URL]\n"
    "\n"
    "Removes a user; the grants the user approved are revoked with it.\n"
    "\n" DB_HELP;

static const char passwd_usage[] =
    "usage: mcpgate user passwd NAME [--password-stdin] [--db URL]\n"
    "\n"
    "Sets a user's password (asked twice on the terminal, without echo).\n"
    "\n"
    "  --password-stdin    read the password as one line of standard input instead\n" DB_HELP;

static const char user_usage[] =
    "usage: mcpgate user add NAME [--password-stdin] [--db URL]\n"
    "       mcpgate user list [--json] [--db URL]\n"
    "       mcpgate user remove NAME [--db URL]\n"
    "       mcpgate user passwd NAME [--password-stdin] [--db URL]\n"
    "\n"
    "Manages the users of the authorization server.\n"
    "Run 'mcpgate user COMMAND --help' for the options of a command.\n";

enum { F_NAME = 1, F_STDIN = 2, F_JSON = 4 };

struct user_args {
    const char *db;
    const char *name;
    bool from_stdin;
    bool json;
};

/* Parses the options of one subcommand (flags: which it takes). Returns -1 to go on, else the
 * exit status. */
static int parse(const char *cmd, const char *usage, unsigned flags, int argc, char **argv,
                 struct user_args *a)
{
    enum { O_DB = 1000, O_STDIN, O_JSON };
    static const struct option opts[] = {
        {"db", required_argument, NULL, O_DB},
        {"password-stdin", no_argument, NULL, O_STDIN},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(a, 0, sizeof(*a));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_DB: a->db = optarg; break;
        case O_STDIN:
        case O_JSON:
            if (!(flags & (c == O_STDIN ? F_STDIN : F_JSON))) {
                return cli_usage_error(cmd, usage, "unknown option '%s'", argv[optind - 1]);
            }
            if (c == O_STDIN)
                a->from_stdin = true;
            else
                a->json = true;
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: return cli_option_error(cmd, c, argv, usage);
        }
    }
    if (flags & F_NAME) {
        if (optind >= argc) {
            return cli_usage_error(cmd, usage, "missing the user NAME");
        }
        a->name = argv[optind++];
        if (!cli_username_valid(a->name)) {
            return cli_usage_error(cmd, usage,
                                   "invalid user name: 1-%d characters of A-Z a-z 0-9 . _ @ -",
                                   CLI_USERNAME_MAX);
        }
    }
    if (optind < argc) {
        return cli_usage_error(cmd, usage, "unexpected argument '%s'", argv[optind]);
    }
    return -1;
}

/* Reads a password and returns its argon2id hash, or NULL after one line on stderr. */
static char *new_password_hash(const char *cmd, const char *name, bool from_stdin)
{
    char *pw = NULL, *hash = NULL;
    int r;
    if (cli_password_read(cmd, name, from_stdin, &pw) != 0)
        return NULL;
    if ((r = crypto_password_hash(pw, &hash)) != 0)
        fprintf(stderr, "mcpgate %s: cannot hash the password: %s\n", cmd, err_str(r));
    cli_password_free(pw);
    return hash;
}

static int user_add(int argc, char **argv)
{
    const char *cmd = "user add";
    struct user_args a;
    struct store *st = NULL;
    struct store_user u;
    char *hash = NULL;
    int status, r;

    if ((status = parse(cmd, add_usage, F_NAME | F_STDIN, argc, argv, &a)) >= 0)
        return status;
    status = 1;
    if (cli_store_open(cmd, cli_db_url(a.db), false, &st) != 0)
        goto out;
    /* Before asking for a password that would be thrown away. */
    if ((r = store_user_get(st, a.name, &u)) == 0) {
        store_user_clear(&u);
        fprintf(stderr, "mcpgate %s: user %s already exists\n", cmd, a.name);
        goto out;
    }
    if (r != ERR_NOTFOUND) {
        fprintf(stderr, "mcpgate %s: cannot read the users: %s\n", cmd, err_str(r));
        goto out;
    }
    if ((hash = new_password_hash(cmd, a.name, a.from_stdin)) == NULL)
        goto out;
    if ((r = store_user_add(st, a.name, hash, (int64_t)time(NULL), NULL)) != 0) {
        if (r == ERR_EXISTS)
            fprintf(stderr, "mcpgate %s: user %s already exists\n", cmd, a.name);
        else
            fprintf(stderr, "mcpgate %s: cannot add user %s: %s\n", cmd, a.name, err_str(r));
        goto out;
    }
    printf("user %s added\n", a.name);
    status = cli_finish_output(cmd);
out:
    free(hash);
    store_close(st);
    return status;
}

static int user_list(int argc, char **argv)
{
    const char *cmd = "user list";
    struct user_args a;
    struct store *st = NULL;
    json_t *users = NULL, *u;
    size_t i;
    int status, r;

    if ((status = parse(cmd, list_usage, F_JSON, argc, argv, &a)) >= 0)
        return status;
    status = 1;
    if (cli_store_open(cmd, cli_db_url(a.db), true, &st) != 0)
        goto out;
    if ((r = store_user_list(st, &users)) != 0) {
        fprintf(stderr, "mcpgate %s: cannot list the users: %s\n", cmd, err_str(r));
        goto out;
    }
    if (a.json) {
        if (cli_json_print(cmd, users) != 0)
            goto out;
    } else {
        printf("%-20s  %s\n", "CREATED", "USERNAME");
        json_array_foreach (users, i, u) {
            char created[CLI_TIME_LEN];
            cli_format_time(json_integer_value(json_object_get(u, "created_at")), created);
            printf("%-20s  ", created);
            cli_print_token(stdout, json_string_value(json_object_get(u, "username")));
            putchar('\n');
        }
    }
    status = cli_finish_output(cmd);
out:
    json_decref(users);
    store_close(st);
    return status;
}

static int user_remove(int argc, char **argv)
{
    const char *cmd = "user remove";
    struct user_args a;
    struct store *st = NULL;
    int status, r;

    if ((status = parse(cmd, remove_usage, F_NAME, argc, argv, &a)) >= 0)
        return status;
    status = 1;
    if (cli_store_open(cmd, cli_db_url(a.db), true, &st) != 0)
        goto out;
    if ((r = store_user_remove(st, a.name)) != 0) {
        if (r == ERR_NOTFOUND)
            fprintf(stderr, "mcpgate %s: no user %s\n", cmd, a.name);
        else
            fprintf(stderr, "mcpgate %s: cannot remove user %s: %s\n", cmd, a.name, err_str(r));
        goto out;
    }
    printf("user %s removed\n", a.name);
    status = cli_finish_output(cmd);
out:
    store_close(st);
    return status;
}

static int user_passwd(int argc, char **argv)
{
    const char *cmd = "user passwd";
    struct user_args a;
    struct store *st = NULL;
    struct store_user u;
    char *hash = NULL;
    int status, r;

    if ((status = parse(cmd, passwd_usage, F_NAME | F_STDIN, argc, argv, &a)) >= 0)
        return status;
    status = 1;
    if (cli_store_open(cmd, cli_db_url(a.db), true, &st) != 0)
        goto out;
    if ((r = store_user_get(st, a.name, &u)) != 0) {
        if (r == ERR_NOTFOUND)
            fprintf(stderr, "mcpgate %s: no user %s\n", cmd, a.name);
        else
            fprintf(stderr, "mcpgate %s: cannot read user %s: %s\n", cmd, a.name, err_str(r));
        goto out;
    }
    store_user_clear(&u);
    if ((hash = new_password_hash(cmd, a.name, a.from_stdin)) == NULL)
        goto out;
    if ((r = store_user_set_password(st, a.name, hash)) != 0) {
        if (r == ERR_NOTFOUND)
            fprintf(stderr, "mcpgate %s: no user %s\n", cmd, a.name);
        else
            fprintf(stderr, "mcpgate %s: cannot set the password of %s: %s\n", cmd, a.name,
                    err_str(r));
        goto out;
    }
    printf("password of %s changed\n", a.name);
    status = cli_finish_output(cmd);
out:
    free(hash);
    store_close(st);
    return status;
}

int cmd_user(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } subs[] = {
        {"add", user_add},
        {"list", user_list},
        {"remove", user_remove},
        {"passwd", user_passwd},
    };
    if (argc < 2) {
        fputs(user_usage, stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(user_usage, stdout);
        return 0;
    }
    cli_admin_init();
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        if (strcmp(argv[1], subs[i].name) == 0)
            return subs[i].fn(argc - 1, argv + 1);
    return cli_usage_error("user", user_usage, "unknown command '%s'", argv[1]);
}
