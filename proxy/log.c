#include "berth/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* See log.h for why these are the only file-level state in berth. */
static enum log_level threshold = LOG_INFO;
static enum log_format format = LOG_FORMAT_TEXT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const format_names[] = {"text", "json"};

void log_set_level(enum log_level level) { threshold = level; }

enum log_level log_get_level(void) { return threshold; }

void log_set_format(enum log_format f) { format = f; }

enum log_format log_get_format(void) { return format; }

int log_level_parse(const char *text, enum log_level *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

int log_format_parse(const char *text, enum log_format *out)
{
    for (size_t i = 0; i < sizeof format_names / sizeof format_names[0]; i++) {
        if (strcmp(text, format_names[i]) == 0) {
            *out = (enum log_format)i;
            return 0;
        }
    }
    return -1;
}

/* The length of the well-formed UTF-8 sequence at s (1-4), or 0 when the
 * byte there does not start one: overlong forms, surrogates and code points
 * past U+10FFFF are not well-formed (RFC 3629). */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c >= 0xc2 && c <= 0xdf)
        return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 &&
                       (s[3] & 0xc0) == 0x80
                   ? 4
                   : 0;
    }
    return 0;
}

size_t log_json_escape(char *out, size_t outlen, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)text;
    size_t w = 0;
    if (!outlen)
        return 0;
    while (*s) {
        char unit[8];
        size_t n = 0, used = 1;
        unsigned char c = *s;
        if (c == '"' || c == '\\') {
            unit[n++] = '\\';
            unit[n++] = (char)c;
        } else if (c == '\n' || c == '\t' || c == '\r') {
            unit[n++] = '\\';
            unit[n++] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(unit, "\\u00", 4);
            n = 4;
            unit[n++] = hex[c >> 4];
            unit[n++] = hex[c & 15];
        } else if (c < 0x80) {
            unit[n++] = (char)c;
        } else if ((used = utf8_len(s)) != 0) {
            memcpy(unit, s, used);
            n = used;
        } else {
            /* A byte that is not UTF-8 (a name or a message cut mid
             * character): the replacement character, so the line stays
             * valid JSON whatever the bytes. */
            memcpy(unit, "\\ufffd", 6);
            n = 6;
            used = 1;
        }
        if (w + n > outlen - 1)
            break; /* cut between characters, never inside an escape */
        memcpy(out + w, unit, n);
        w += n;
        s += used;
    }
    out[w] = '\0';
    return w;
}

/* Appends text whole when it fits with keep bytes to spare; false if not. */
static bool put(char *line, size_t size, size_t *len, size_t keep, const char *text)
{
    size_t n = strlen(text);
    if (*len + n + keep > size)
        return false;
    memcpy(line + *len, text, n);
    *len += n;
    return true;
}

/* ,"key":"value" -- the value cut to fit, with room always left for its
 * closing quote and the line's "}\n", so a cut line is still one object.
 * A field whose key does not fit is left out. */
static void put_field(char *line, size_t size, size_t *len, const char *key,
                      const char *value)
{
    const size_t keep = 3;
    if (!put(line, size, len, keep, ",\"") || !put(line, size, len, keep, key) ||
        !put(line, size, len, keep, "\":\""))
        return; /* cannot happen with the sizes log_vat uses */
    *len += log_json_escape(line + *len, size - keep - *len + 1, value);
    line[(*len)++] = '"';
}

size_t log_format_line(char *line, size_t size, enum log_format fmt,
                       enum log_level level, const struct timespec *ts,
                       const char *mapping, const char *client, const char *msg)
{
    struct tm tm;
    char stamp[100]; /* as long as any int fields could make it */
    gmtime_r(&ts->tv_sec, &tm);
    snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
             tm.tm_sec, ts->tv_nsec / 1000000);
    size_t len = 0;
    if (fmt == LOG_FORMAT_JSON) {
        put(line, size, &len, 3, "{\"time\":\"");
        put(line, size, &len, 3, stamp);
        put(line, size, &len, 3, "\",\"level\":\"");
        put(line, size, &len, 3, level_names[level]);
        put(line, size, &len, 3, "\"");
        if (mapping)
            put_field(line, size, &len, "mapping", mapping);
        if (client)
            put_field(line, size, &len, "client", client);
        put_field(line, size, &len, "message", msg);
        line[len++] = '}';
        line[len++] = '\n';
        return len;
    }
    /* Text: "MAPPING client CLIENT: " before the message, as relay.c said
     * it before lines had fields; cut to size - 2 bytes and the newline. */
    int n = snprintf(line, size, "%s berth %s: ", stamp, level_names[level]);
    int m;
    if (n < 0 || (size_t)n >= size - 1)
        n = 0;
    if (mapping && client)
        m = snprintf(line + n, size - (size_t)n - 1, "%s client %s: %s", mapping,
                     client, msg);
    else if (mapping)
        m = snprintf(line + n, size - (size_t)n - 1, "%s: %s", mapping, msg);
    else
        m = snprintf(line + n, size - (size_t)n - 1, "%s", msg);
    len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > size - 2)
        len = size - 2;
    line[len++] = '\n';
    return len;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vat(level, NULL, NULL, fmt, ap);
    va_end(ap);
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    log_vat(level, NULL, NULL, fmt, ap);
}

void log_at(enum log_level level, const char *mapping, const char *client,
            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vat(level, mapping, client, fmt, ap);
    va_end(ap);
}

void log_vat(enum log_level level, const char *mapping, const char *client,
             const char *fmt, va_list ap)
{
    if (level > threshold)
        return;
    /* Build the whole line first so concurrent writers (dockerd collects
     * many proxies' stderr) never see interleaved fragments. */
    char msg[LOG_TEXT_MAX], line[LOG_JSON_MAX];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t len =
        log_format_line(line, format == LOG_FORMAT_JSON ? LOG_JSON_MAX : LOG_TEXT_MAX,
                        format, level, &ts, mapping, client, msg);
    fwrite(line, 1, len, stderr);
}
