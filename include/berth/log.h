/* Logging: one line per event on stderr, "TIME berth LEVEL: message", or
 * with --log-format json one JSON object per line for log shippers:
 *   {"time":"2026-11-30T12:00:00.123Z","level":"info","mapping":"...",
 *    "client":"10.0.0.9:51234","message":"..."}
 *
 * The threshold and the format are process-wide configuration, set once at
 * start-up from --log-level and --log-format and only read afterwards; they
 * are the one piece of state that is not hung off struct berth, because
 * every module logs. */
#ifndef BERTH_LOG_H
#define BERTH_LOG_H

#include <stddef.h>
#include <time.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

/* A text line's bytes, newline included, are fewer than LOG_TEXT_MAX (the
 * message is cut); a JSON line's at most LOG_JSON_MAX (the message value
 * is cut between characters, the line stays one object). */
#define LOG_TEXT_MAX 1024
#define LOG_JSON_MAX 4096

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_set_format(enum log_format format);
enum log_format log_get_format(void);

/* Parses "error", "warn", "info", "debug". Returns 0, or -1 if unknown. */
int log_level_parse(const char *text, enum log_level *out);
/* Parses "text", "json". Returns 0, or -1 if unknown. */
int log_format_parse(const char *text, enum log_format *out);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#include <stdarg.h>
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* A line about one port's mapping ("127.0.0.1:8080->10.0.0.2:80/tcp") and,
 * unless client is NULL, one client ("10.0.0.9:51234"): in text
 * "MAPPING client CLIENT: message" ("MAPPING: message" without a client),
 * in JSON the fields "mapping" and "client". mapping NULL: as log_msg. */
void log_at(enum log_level level, const char *mapping, const char *client,
            const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void log_vat(enum log_level level, const char *mapping, const char *client,
             const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

/* The line log_vat writes, into line (size bytes, at least 128), newline
 * included and not NUL-terminated; returns its length. Pure: for tests. */
size_t log_format_line(char *line, size_t size, enum log_format format,
                       enum log_level level, const struct timespec *ts,
                       const char *mapping, const char *client, const char *msg);

/* text as the inside of a JSON string into out (outlen > 0 bytes, NUL
 * included): '"', '\\' and control characters escaped (DEL too), well-formed
 * UTF-8 kept, each byte that is not UTF-8 written as \ufffd. Stops between
 * characters when out is full. Returns the length written. */
size_t log_json_escape(char *out, size_t outlen, const char *text);

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
