#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level cur_level = LOG_INFO;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_copy; /* a second destination (the client's --debug log), or NULL */
static bool log_quiet; /* nothing on stderr (the copy still gets everything) */

void log_set_copy(FILE *f, bool quiet_stderr)
{
    pthread_mutex_lock(&log_mu);
    log_copy = f;
    log_quiet = quiet_stderr;
    pthread_mutex_unlock(&log_mu);
}

void log_set_level(enum log_level level)
{
    cur_level = level;
}

enum log_level log_get_level(void)
{
    return cur_level;
}

int log_level_parse(const char *s, enum log_level *out)
{
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

void log_write(enum log_level level, const char *func, const char *fmt, ...)
{
    static const char *tags[] = {"debug", "info", "warn", "error", "off"};
    char ts[32];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_mu);
    if (!log_quiet)
        fprintf(stderr, "%s.%03ldZ mcpgate %s %s: %s\n", ts, now.tv_nsec / 1000000, tags[level],
                func, msg);
    if (log_copy != NULL) {
        fprintf(log_copy, "%s.%03ldZ %s %s: %s\n", ts, now.tv_nsec / 1000000, tags[level], func,
                msg);
        fflush(log_copy);
    }
    pthread_mutex_unlock(&log_mu);
}
