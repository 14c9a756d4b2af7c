/* mcpgate audit: the authorization server's audit log (logins, consents, tokens, clients),
 * newest first. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "store/store.h"

#define AUDIT_LIMIT_MAX 10000

static const char audit_usage[] =
    "usage: mcpgate audit [--since WHEN] [--user NAME] [--limit N] [--json] [--db URL]\n"
    "\n"
    "Prints the audit log, newest first, one event a line: time (UTC), event, user, client,\n"
    "address, detail (JSON). A missing field is shown as -.\n"
    "\n"
    "  --since WHEN        only events at or after WHEN: a Unix time, a date or UTC time\n"
    "                      (2026-11-23, 2026-11-23T10:00:00Z), or a duration back from now\n"
    "                      (90s, 30m, 2h, 7d, 2w)\n"
    "  --user NAME         only the events of this user\n"
    "  --limit N           at most N events (default 100, at most 10000)\n"
    "  --json              a JSON array of {time, ts, event, user, client, ip, detail}\n"
    "  --db URL            the database (default $MCPGATE_DB, else " CLI_DB_DEFAULT ")\n"
    "  -h, --help          this help\n";

static void print_event(json_t *e)
{
    char when[CLI_TIME_LEN];
    json_t *detail = json_object_get(e, "detail");

    cli_format_time(json_integer_value(json_object_get(e, "ts")), when);
    printf("%s ", when);
    cli_print_token(stdout, json_string_value(json_object_get(e, "event")));
    putchar(' ');
    cli_print_token(stdout, json_string_value(json_object_get(e, "user")));
    putchar(' ');
    cli_print_token(stdout, json_string_value(json_object_get(e, "client")));
    putchar(' ');
    cli_print_token(stdout, json_string_value(json_object_get(e, "ip")));
    putchar(' ');
    if (detail == NULL || json_is_null(detail)) {
        putchar('-');
    } else {
        /* ASCII only: no control character reaches the terminal through a string. */
        char *text = json_dumps(detail, JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
        cli_print_text(stdout, text != NULL ? text : "?");
        free(text);
    }
    putchar('\n');
}

int cmd_audit(int argc, char **argv)
{
    enum { O_DB = 1000, O_SINCE, O_USER, O_LIMIT, O_JSON };
    static const struct option opts[] = {
        {"db", required_argument, NULL, O_DB},
        {"since", required_argument, NULL, O_SINCE},
        {"user", required_argument, NULL, O_USER},
        {"limit", required_argument, NULL, O_LIMIT},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "audit", *db = NULL, *user = NULL;
    int64_t since = 0;
    unsigned long long limit = 100;
    bool json = false;
    struct store *st = NULL;
    json_t *events = NULL, *e;
    size_t i;
    int status = 1, r, c;

    cli_admin_init();
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_DB: db = optarg; break;
        case O_SINCE:
            if (cli_parse_time(optarg, (int64_t)time(NULL), &since) != 0) {
                fprintf(stderr,
                        "mcpgate %s: --since: '%s' is not a Unix time, a date "
                        "(2026-11-23, 2026-11-23T10:00:00Z) or a duration (30m, 2h, "
                        "7d)\n",
                        cmd, optarg);
                return 2;
            }
            break;
        case O_USER:
            if (*optarg == '\0') {
                fprintf(stderr, "mcpgate %s: --user: empty name\n", cmd);
                return 2;
            }
            user = optarg;
            break;
        case O_LIMIT:
            if (cli_parse_uint(optarg, AUDIT_LIMIT_MAX, &limit) != 0 || limit == 0) {
                fprintf(stderr, "mcpgate %s: --limit: expected 1..%d\n", cmd, AUDIT_LIMIT_MAX);
                return 2;
            }
            break;
        case O_JSON: json = true; break;
        case 'h': fputs(audit_usage, stdout); return 0;
        default: return cli_option_error(cmd, c, argv, audit_usage);
        }
    }
    if (optind < argc) {
        return cli_usage_error(cmd, audit_usage, "unexpected argument '%s'", argv[optind]);
    }
    if (cli_store_open(cmd, cli_db_url(db), true, &st) != 0)
        goto out;
    if ((r = store_audit_list(st, since, user, (unsigned)limit, &events)) != 0) {
        fprintf(stderr, "mcpgate %s: cannot read the audit log: %s\n", cmd, err_str(r));
        goto out;
    }
    if (json) {
        json_array_foreach (events, i, e) {
            char when[CLI_TIME_LEN];
            cli_format_time(json_integer_value(json_object_get(e, "ts")), when);
            json_object_set_new(e, "time", json_string(when));
        }
        if (cli_json_print(cmd, events) != 0)
            goto out;
    } else {
        json_array_foreach (events, i, e)
            print_event(e);
    }
    status = cli_finish_output(cmd);
out:
    json_decref(events);
    store_close(st);
    return status;
}
