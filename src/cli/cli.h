#ifndef MCPGATE_CLI_H
#define MCPGATE_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct store;

int cmd_serve(int argc, char **argv);
/* Parses a size such as 4194304, 4096k, 4M; returns 0 or -1. */
int cli_parse_size(const char *s, size_t *out);

/* ---- administration commands (user.c, client.c, keys.c, audit.c) ---- */
/* argv[0] is the command word ("user", ...); they return the exit status: 0, 1 on an error
 * (one line on stderr), 2 on a usage error. */
int cmd_user(int argc, char **argv);
int cmd_client(int argc, char **argv);
int cmd_keys(int argc, char **argv);
int cmd_audit(int argc, char **argv);

/* ---- client commands (remote.c): connect, login, logout, token, tools, call ---- */
int cmd_connect(int argc, char **argv);
int cmd_login(int argc, char **argv);
int cmd_logout(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_tools(int argc, char **argv);
int cmd_call(int argc, char **argv);

/* ---- helpers shared by the administration commands (common.c) ---- */
#define CLI_DB_DEFAULT "sqlite:./mcpgate.db"
#define CLI_USERNAME_MAX 64
#define CLI_PASSWORD_MIN 8    /* characters */
#define CLI_PASSWORD_MAX 1024 /* bytes */
#define CLI_TIME_LEN 32

/* Log level warn at least: the library's info lines are for servers. */
void cli_admin_init(void);
/* Prints "mcpgate CMD: message" and the synopsis of usage (up to its first blank line) on
 * stderr; returns 2, the exit status of a usage error. */
int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* After getopt_long (optstring starting with ':') returned '?' or ':': a usage error. cmd is the
 * command as shown ("user add"). */
int cli_option_error(const char *cmd, int c, char **argv, const char *usage);

/* The database URL: opt (--db) when given, else $MCPGATE_DB, else CLI_DB_DEFAULT. */
const char *cli_db_url(const char *opt);
/* Opens the store; on failure prints one line naming the database (never a URL's password)
 * and returns -1. With must_exist a missing sqlite file is an error, not created. */
int cli_store_open(const char *cmd, const char *url, bool must_exist, struct store **out /* OUT */);
/* The default master key file of a database: its sqlite path + ".key" (caller frees); NULL
 * when the URL is not a sqlite file. */
char *cli_master_key_path(const char *db_url);

/* Reads a new password: with from_stdin one line of stdin (newline stripped), else from the
 * terminal without echo, twice (must match). Refuses empty, shorter than CLI_PASSWORD_MIN
 * characters, longer than CLI_PASSWORD_MAX bytes. On failure prints one line and returns -1.
 * *out is freed (and wiped) with cli_password_free. */
int cli_password_read(const char *cmd, const char *user, bool from_stdin, char **out /* OUT */);
void cli_password_free(char *pw);

/* 1-64 characters of [A-Za-z0-9._@-]. */
bool cli_username_valid(const char *name);

/* Decimal digits only, at most max; 0 or -1. */
int cli_parse_uint(const char *s, unsigned long long max, unsigned long long *out /* OUT */);
/* N followed by s, m, h, d or w (30m, 2h, 7d); 0 or -1. */
int cli_parse_duration(const char *s, int64_t *seconds /* OUT */);
/* A Unix time, an ISO date or UTC date-time (2026-11-23, 2026-11-23T10:00:00Z), or a duration
 * back from now; 0 or -1. */
int cli_parse_time(const char *s, int64_t now, int64_t *out /* OUT */);
/* UTC, 2026-11-23T10:00:00Z. */
void cli_format_time(int64_t t, char out[CLI_TIME_LEN]);

/* Prints untrusted text with control characters escaped; token also escapes spaces and
 * backslashes and prints "-" for NULL or empty (one column of a line). */
void cli_print_text(FILE *f, const char *s);
void cli_print_token(FILE *f, const char *s);
/* Prints v as indented JSON and a newline on stdout; on failure one line and -1. */
int cli_json_print(const char *cmd, json_t *v);
/* Flushes stdout: 0, or 1 (the exit status) after a line on stderr. */
int cli_finish_output(const char *cmd);

#endif
