#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level cur_level = LOG_INFO;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

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

    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&log_mu);
    fprintf(stderr, "%s.%03ldZ mcpgate %s %s: ", ts, now.tv_nsec / 1000000, tags[level], func);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    pthread_mutex_unlock(&log_mu);
    va_end(ap);
}
