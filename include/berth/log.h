/* Logging: one line per event on stderr, "berth: LEVEL: message".
 *
 * The threshold is process-wide configuration, set once at start-up from
 * --log-level and only read afterwards; it is the one piece of state that is
 * not hung off struct berth, because every module logs. */
#ifndef BERTH_LOG_H
#define BERTH_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parses "error", "warn", "info", "debug". Returns 0, or -1 if unknown. */
int log_level_parse(const char *text, enum log_level *out);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#include <stdarg.h>
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
/* debug lines are formatted only when enabled: they sit on per-connection
 * paths. */
#define log_debug(...)                                                                \
    do {                                                                              \
        if (log_get_level() >= LOG_DEBUG)                                             \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                          \
    } while (0)

#endif
