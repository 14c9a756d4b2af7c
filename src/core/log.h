/* Logging to stderr only (stdout may carry protocol messages). Never pass a token, code, secret,
 * password or Authorization header to these macros. */
#ifndef MCPGATE_CORE_LOG_H
#define MCPGATE_CORE_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 };

#include <stdbool.h>
#include <stdio.h>

void log_set_level(enum log_level level);
/* Also writes every line to f (NULL: stop); quiet_stderr: not to stderr. */
void log_set_copy(FILE *f, bool quiet_stderr);
enum log_level log_get_level(void);
int log_level_parse(const char *s, enum log_level *out /* OUT */);
void log_write(enum log_level level, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_AT(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) >= log_get_level())                                                              \
            log_write((lvl), __func__, __VA_ARGS__);                                               \
    } while (0)
#define log_debug(...) LOG_AT(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_INFO, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_WARN, __VA_ARGS__)
#define log_error(...) LOG_AT(LOG_ERROR, __VA_ARGS__)

#endif
