/* Helpers shared by the administration commands (user, client, keys, audit): option errors,
 * opening the store, reading passwords, parsing and printing times, printing untrusted text. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "store/store.h"

/* ---- options ---- */

int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
{
    va_list ap;
    const char *end = strstr(usage, "\n\n");
    fprintf(stderr, "mcpgate %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    /* The synopsis: the usage up to its first blank line. */
    fprintf(stderr, "\n%.*s\n", end != NULL ? (int)(end - usage) : (int)strlen(usage), usage);
    return 2;
}

int cli_option_error(const char *cmd, int c, char **argv, const char *usage)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    if (c == ':')
        return cli_usage_error(cmd, usage, "option '%s' needs a value", arg);
    if (optopt > ' ' && optopt < 0x7f && arg[0] == '-' && arg[1] != '-')
        return cli_usage_error(cmd, usage, "unknown option '-%c'", optopt);
    return cli_usage_error(cmd, usage, "unknown option '%s'", arg);
}

void cli_admin_init(void)
{
    /* The library's info lines (a key created, ...) are for servers; a command says what it
     * did itself. Warnings and errors still explain failures the one-line message summarizes. */
    if (log_get_level() < LOG_WARN)
        log_set_level(LOG_WARN);
}

/* ---- the store ---- */

const char *cli_db_url(const char *opt)
{
    if (opt != NULL)
        return opt;
    const char *env = getenv("MCPGATE_DB");
    if (env != NULL && env[0] != '\0')
        return env;
    return CLI_DB_DEFAULT;
}

/* The file of a sqlite URL ("sqlite:PATH", "sqlite://PATH" or a bare path, as store_open
 * reads them), or NULL for another kind of URL. Points into url. */
static const char *sqlite_path(const char *url)
{
    if (strncmp(url, "sqlite:", 7) == 0) {
        url += 7;
        if (strncmp(url, "//", 2) == 0)
            url += 2;
        return url;
    }
    if (strstr(url, "://") != NULL)
        return NULL;
    return url;
}

/* The URL as shown in messages: a sqlite path as it is, another URL by its scheme only (a
 * PostgreSQL URL may carry a password). */
static void shown_url(const char *url, char *out, size_t outlen)
{
    const char *path = sqlite_path(url);
    if (path != NULL) {
        snprintf(out, outlen, "%s", url);
        return;
    }
    snprintf(out, outlen, "%.*s://...", (int)(strstr(url, "://") - url), url);
}

int cli_store_open(const char *cmd, const char *url, bool must_exist, struct store **out)
{
    char shown[512];
    const char *path = sqlite_path(url);
    struct stat sb;
    int r;

    *out = NULL;
    shown_url(url, shown, sizeof(shown));
    if (must_exist && path != NULL && *path != '\0' && strcmp(path, ":memory:") != 0 &&
        stat(path, &sb) != 0 && errno == ENOENT) {
        fprintf(stderr, "mcpgate %s: no database at %s (give --db URL or set MCPGATE_DB)\n", cmd,
                path);
        return -1;
    }
    if ((r = store_open(url, out)) != 0) {
        fprintf(stderr, "mcpgate %s: cannot open the database %s: %s\n", cmd, shown, err_str(r));
        return -1;
    }
    return 0;
}

char *cli_master_key_path(const char *db_url)
{
    const char *path = sqlite_path(db_url);
    if (path == NULL || *path == '\0' || strcmp(path, ":memory:") == 0)
        return NULL;
    return xasprintf("%s.key", path);
}

/* ---- passwords ---- */

/* The terminal whose echo is off, for the signal handler to restore it. */
static volatile sig_atomic_t tty_fd = -1;
static struct termios tty_saved;

static void tty_restore_and_die(int sig)
{
    if (tty_fd >= 0)
        tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Not the job-control stops: their default action keeps the echo off until the read goes on. */
static const int tty_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define N_TTY_SIGNALS (sizeof(tty_signals) / sizeof(tty_signals[0]))

/* Reads one line from fd into buf (at most CLI_PASSWORD_MAX bytes, no newline kept), one byte
 * at a time so that nothing after the line is consumed or left in a stdio buffer. Returns the
 * length, -1 on a read error, -2 when the line is too long. *eof tells end of input before
 * anything was read. */
static ssize_t read_line(int fd, char *buf, bool *eof)
{
    size_t n = 0;
    bool toolong = false;
    *eof = false;
    for (;;) {
        char ch;
        ssize_t got = read(fd, &ch, 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -1;
        if (got == 0) {
            *eof = n == 0 && !toolong;
            break;
        }
        if (ch == '\n')
            break;
        if (n < CLI_PASSWORD_MAX + 1)
            buf[n++] = ch; /* one byte past the limit: a '\r' may still be stripped */
        else
            toolong = true;
        ch = 0;
    }
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    if (toolong || n > CLI_PASSWORD_MAX)
        return -2;
    return (ssize_t)n;
}

/* Characters, not bytes: UTF-8 continuation bytes are not counted. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static int password_check(const char *cmd, const char *pw, ssize_t len)
{
    if (len == -2) {
        fprintf(stderr, "mcpgate %s: password longer than %d bytes\n", cmd, CLI_PASSWORD_MAX);
        return -1;
    }
    if (len == 0) {
        fprintf(stderr, "mcpgate %s: empty password refused\n", cmd);
        return -1;
    }
    if (strlen(pw) != (size_t)len) {
        fprintf(stderr, "mcpgate %s: the password contains a NUL byte\n", cmd);
        return -1;
    }
    if (utf8_chars(pw) < CLI_PASSWORD_MIN) {
        fprintf(stderr, "mcpgate %s: password too short: at least %d characters\n", cmd,
                CLI_PASSWORD_MIN);
        return -1;
    }
    return 0;
}

static int tty_write(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Prompts on the terminal with echo off and reads one line into buf. */
static ssize_t tty_read(int fd, const char *prompt, char *buf, bool *eof)
{
    struct termios quiet;
    struct sigaction sa, old[N_TTY_SIGNALS];
    ssize_t len;
    int saved_errno;

    if (tty_write(fd, prompt) != 0 || tcgetattr(fd, &tty_saved) != 0)
        return -1;
    quiet = tty_saved;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
    quiet.c_lflag |= ECHONL;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = tty_restore_and_die;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_TTY_SIGNALS; i++)
        sigaction(tty_signals[i], &sa, &old[i]);
    tty_fd = fd;
    if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0) {
        len = -1;
    } else {
        len = read_line(fd, buf, eof);
    }
    saved_errno = errno;
    tcsetattr(fd, TCSAFLUSH, &tty_saved);
    tty_fd = -1;
    for (size_t i = 0; i < N_TTY_SIGNALS; i++)
        sigaction(tty_signals[i], &old[i], NULL);
    errno = saved_errno;
    return len;
}

int cli_password_read(const char *cmd, const char *user, bool from_stdin, char **out)
{
    int r = -1, fd = -1;
    char *pw = xmalloc(CLI_PASSWORD_MAX + 2), *again = NULL;
    ssize_t len;
    bool eof;

    *out = NULL;
    if (from_stdin) {
        if ((len = read_line(STDIN_FILENO, pw, &eof)) == -1) {
            fprintf(stderr, "mcpgate %s: cannot read the password from stdin: %s\n", cmd,
                    strerror(errno));
            goto out;
        }
        if (eof) {
            fprintf(stderr, "mcpgate %s: no password on stdin\n", cmd);
            goto out;
        }
        if (password_check(cmd, pw, len) != 0)
            goto out;
    } else {
        char prompt[128];
        if ((fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
            fprintf(stderr,
                    "mcpgate %s: no terminal to read the password from; use "
                    "--password-stdin\n",
                    cmd);
            goto out;
        }
        snprintf(prompt, sizeof(prompt), "Password for %s: ", user);
        if ((len = tty_read(fd, prompt, pw, &eof)) == -1) {
            fprintf(stderr, "mcpgate %s: cannot read the password from the terminal: %s\n", cmd,
                    strerror(errno));
            goto out;
        }
        if (eof) {
            fprintf(stderr, "mcpgate %s: no password given\n", cmd);
            goto out;
        }
        if (password_check(cmd, pw, len) != 0)
            goto out;
        again = xmalloc(CLI_PASSWORD_MAX + 2);
        ssize_t len2 = tty_read(fd, "Retype the password: ", again, &eof);
        if (len2 == -1) {
            fprintf(stderr, "mcpgate %s: cannot read the password from the terminal: %s\n", cmd,
                    strerror(errno));
            goto out;
        }
        if (len2 != len || !crypto_equal(pw, again, (size_t)len)) {
            fprintf(stderr, "mcpgate %s: the passwords do not match\n", cmd);
            goto out;
        }
    }
    *out = pw;
    pw = NULL;
    r = 0;
out:
    cli_password_free(pw);
    cli_password_free(again);
    if (fd >= 0)
        close(fd);
    return r;
}

void cli_password_free(char *pw)
{
    if (pw == NULL)
        return;
    crypto_wipe(pw, CLI_PASSWORD_MAX + 2);
    free(pw);
}

/* ---- names ---- */

bool cli_username_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CLI_USERNAME_MAX)
        return false;
    for (const char *p = name; *p != '\0'; p++) {
        char ch = *p;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '@' || ch == '-'))
            return false;
    }
    return true;
}

/* ---- numbers, durations, times ---- */

int cli_parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    unsigned long long v = 0;
    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int cli_parse_duration(const char *s, int64_t *seconds)
{
    static const struct {
        char unit;
        int64_t secs;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}};
    size_t n = strlen(s);
    unsigned long long v;
    char num[24];

    if (n < 2 || n - 1 >= sizeof(num))
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (s[n - 1] != units[i].unit)
            continue;
        memcpy(num, s, n - 1);
        num[n - 1] = '\0';
        if (cli_parse_uint(num, (unsigned long long)INT64_MAX / (unsigned long long)units[i].secs,
                           &v) != 0)
            return -1;
        *seconds = (int64_t)v * units[i].secs;
        return 0;
    }
    return -1;
}

/* Fixed-width decimal field: exactly n digits. */
static int digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* 2026-11-23, 2026-11-23T10:00:00 or 2026-11-23T10:00:00Z (also with a space for the T),
 * always UTC. Out-of-range fields (2026-02-30) are refused, not normalized. */
static int parse_iso(const char *s, int64_t *out)
{
    struct tm tm;
    int y, mo, d, h = 0, mi = 0, sec = 0;
    size_t n = strlen(s);

    memset(&tm, 0, sizeof(tm));
    if (n < 10 || digits(s, 4, &y) != 0 || s[4] != '-' || digits(s + 5, 2, &mo) != 0 ||
        s[7] != '-' || digits(s + 8, 2, &d) != 0)
        return -1;
    if (n > 10) {
        if ((s[10] != 'T' && s[10] != 't' && s[10] != ' ') || n < 19 ||
            digits(s + 11, 2, &h) != 0 || s[13] != ':' || digits(s + 14, 2, &mi) != 0 ||
            s[16] != ':' || digits(s + 17, 2, &sec) != 0)
            return -1;
        if (n > 19 && !(n == 20 && (s[19] == 'Z' || s[19] == 'z')))
            return -1;
    }
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != d || tm.tm_mon != mo - 1)
        return -1;
    *out = (int64_t)t;
    return 0;
}

int cli_parse_time(const char *s, int64_t now, int64_t *out)
{
    unsigned long long v;
    int64_t back;

    if (cli_parse_uint(s, (unsigned long long)INT64_MAX, &v) == 0) {
        *out = (int64_t)v;
        return 0;
    }
    if (cli_parse_duration(s, &back) == 0) {
        *out = back >= now ? 0 : now - back;
        return 0;
    }
    return parse_iso(s, out);
}

void cli_format_time(int64_t t, char out[CLI_TIME_LEN])
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, CLI_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, CLI_TIME_LEN, "%lld", (long long)t);
}

/* ---- output ---- */

/* Control characters (C0, DEL, and C1 encoded in UTF-8) as escapes, so that text registered
 * by anyone (client names, attempted usernames) cannot drive the terminal; with token, also
 * spaces and backslashes, so that a column stays one word. */
static void put_escaped(FILE *f, const char *s, bool token)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f || (token && (*p == ' ' || *p == '\\')))
            fprintf(f, "\\x%02x", *p);
        else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
            fprintf(f, "\\u%04x", *++p);
        else
            fputc(*p, f);
    }
}

void cli_print_text(FILE *f, const char *s)
{
    put_escaped(f, s != NULL ? s : "", false);
}

void cli_print_token(FILE *f, const char *s)
{
    if (s == NULL || *s == '\0')
        fputc('-', f);
    else
        put_escaped(f, s, true);
}

int cli_json_print(const char *cmd, json_t *v)
{
    if (json_dumpf(v, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY) != 0 ||
        fputc('\n', stdout) == EOF) {
        fprintf(stderr, "mcpgate %s: cannot write the output\n", cmd);
        return -1;
    }
    return 0;
}

int cli_finish_output(const char *cmd)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "mcpgate %s: cannot write the output: %s\n", cmd, strerror(errno));
        return 1;
    }
    return 0;
}
