/* Log lines (log.c): text lines as berth always wrote them, JSON lines one
 * object each with time, level, mapping, client and message, strings
 * escaped whatever the bytes, long messages cut without breaking the line. */
#include "check_run.h"
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "berth/log.h"

/* 2026-11-30T12:00:00.123Z */
static const struct timespec at = {.tv_sec = 1796040000, .tv_nsec = 123456789};

#define MAP "127.0.0.1:8080->10.0.0.2:80/tcp"
#define CLIENT "10.0.0.9:51234"

static char line[LOG_JSON_MAX + 1];

/* The line as a C string. */
static const char *fmt_line(enum log_format f, enum log_level level,
                            const char *mapping, const char *client, const char *msg)
{
    size_t size = f == LOG_FORMAT_JSON ? LOG_JSON_MAX : LOG_TEXT_MAX;
    size_t n = log_format_line(line, size, f, level, &at, mapping, client, msg);
    ck_assert_uint_le(n, size);
    line[n] = '\0';
    return line;
}

static const char *escape(const char *text, size_t outlen)
{
    static char out[256];
    ck_assert_uint_le(outlen, sizeof out);
    size_t n = log_json_escape(out, outlen, text);
    ck_assert_uint_eq(n, strlen(out));
    ck_assert_uint_lt(n, outlen);
    return out;
}

START_TEST(test_escape_specials)
{
    ck_assert_str_eq(escape("plain text", 256), "plain text");
    ck_assert_str_eq(escape("say \"hi\" \\o/", 256), "say \\\"hi\\\" \\\\o/");
    ck_assert_str_eq(escape("a\nb\tc\rd", 256), "a\\nb\\tc\\rd");
    ck_assert_str_eq(escape("\x01\x08\x0c\x1f\x7f", 256),
                     "\\u0001\\u0008\\u000c\\u001f\\u007f");
    ck_assert_str_eq(escape("", 256), "");
}
END_TEST

START_TEST(test_escape_utf8)
{
    /* Well-formed: kept as they are. */
    ck_assert_str_eq(escape("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 256),
                     "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* Each byte that is not UTF-8: U+FFFD. */
    ck_assert_str_eq(escape("a\xff"
                            "b",
                            256),
                     "a\\ufffdb");
    ck_assert_str_eq(escape("\xc0\x80", 256), "\\ufffd\\ufffd"); /* overlong */
    ck_assert_str_eq(escape("\xe0\x80\xaf", 256),
                     "\\ufffd\\ufffd\\ufffd"); /* overlong */
    ck_assert_str_eq(escape("\xed\xa0\x80", 256),
                     "\\ufffd\\ufffd\\ufffd"); /* surrogate */
    ck_assert_str_eq(escape("\xf4\x90\x80\x80", 256),
                     "\\ufffd\\ufffd\\ufffd\\ufffd"); /* past U+10FFFF */
    ck_assert_str_eq(escape("\xf5", 256), "\\ufffd");
    ck_assert_str_eq(escape("cut \xe2\x82", 256),
                     "cut \\ufffd\\ufffd");             /* at the end */
    ck_assert_str_eq(escape("\x80x", 256), "\\ufffdx"); /* a lone continuation */
}
END_TEST

START_TEST(test_escape_cut_between_characters)
{
    ck_assert_str_eq(escape("ab\"c", 4), "ab"); /* \" needs 2 of the 1 left */
    ck_assert_str_eq(escape("ab\"c", 5), "ab\\\"");
    ck_assert_str_eq(escape("a\x01", 6), "a"); /* \u0001 is 6 */
    ck_assert_str_eq(escape("a\xe2\x82\xac", 4), "a");
    ck_assert_str_eq(escape("a\xe2\x82\xac", 5), "a\xe2\x82\xac");
    ck_assert_str_eq(escape("abc", 1), "");
}
END_TEST

START_TEST(test_text_lines_as_before)
{
    /* Byte for byte what berth wrote before --log-format, relay.c's
     * "MAPPING client CLIENT: " prefix included. */
    ck_assert_str_eq(fmt_line(LOG_FORMAT_TEXT, LOG_INFO, NULL, NULL,
                              "forwarding 1 port"),
                     "2026-11-30T12:00:00.123Z berth info: forwarding 1 port\n");
    ck_assert_str_eq(fmt_line(LOG_FORMAT_TEXT, LOG_WARN, MAP, CLIENT,
                              "connect 10.0.0.2:80: Connection refused"),
                     "2026-11-30T12:00:00.123Z berth warn: " MAP " client " CLIENT
                     ": connect 10.0.0.2:80: Connection refused\n");
    ck_assert_str_eq(fmt_line(LOG_FORMAT_TEXT, LOG_WARN, MAP, NULL,
                              "refused (3 times in the last 10 s)"),
                     "2026-11-30T12:00:00.123Z berth warn: " MAP
                     ": refused (3 times in the last 10 s)\n");
    /* Text is not escaped: as before. */
    ck_assert_str_eq(fmt_line(LOG_FORMAT_TEXT, LOG_ERROR, NULL, NULL, "a \"b\""),
                     "2026-11-30T12:00:00.123Z berth error: a \"b\"\n");
}
END_TEST

START_TEST(test_text_long_line_cut)
{
    char msg[2000];
    memset(msg, 'x', sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    const char *l = fmt_line(LOG_FORMAT_TEXT, LOG_INFO, NULL, NULL, msg);
    ck_assert_uint_eq(strlen(l), LOG_TEXT_MAX - 1); /* as before: 1022 and \n */
    ck_assert_int_eq(l[LOG_TEXT_MAX - 2], '\n');
    ck_assert_int_eq(l[LOG_TEXT_MAX - 3], 'x');
}
END_TEST

START_TEST(test_json_lines)
{
    ck_assert_str_eq(fmt_line(LOG_FORMAT_JSON, LOG_INFO, NULL, NULL,
                              "forwarding 1 port"),
                     "{\"time\":\"2026-11-30T12:00:00.123Z\",\"level\":\"info\","
                     "\"message\":\"forwarding 1 port\"}\n");
    ck_assert_str_eq(fmt_line(LOG_FORMAT_JSON, LOG_WARN, MAP, CLIENT, "refused"),
                     "{\"time\":\"2026-11-30T12:00:00.123Z\",\"level\":\"warn\","
                     "\"mapping\":\"" MAP "\",\"client\":\"" CLIENT "\","
                     "\"message\":\"refused\"}\n");
    ck_assert_str_eq(fmt_line(LOG_FORMAT_JSON, LOG_DEBUG, MAP, NULL, "x"),
                     "{\"time\":\"2026-11-30T12:00:00.123Z\",\"level\":\"debug\","
                     "\"mapping\":\"" MAP "\",\"message\":\"x\"}\n");
}
END_TEST

/* The line parses as one JSON object whose message is want. */
static void parses_with_message(const char *l, const char *want)
{
    size_t n = strlen(l);
    ck_assert_int_eq(l[n - 1], '\n');
    ck_assert_ptr_null(memchr(l, '\n', n - 1)); /* one line */
    cJSON *o = cJSON_ParseWithLength(l, n);
    ck_assert_ptr_nonnull(o);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "message");
    ck_assert(cJSON_IsString(m));
    if (want)
        ck_assert_str_eq(m->valuestring, want);
    cJSON_Delete(o);
}

START_TEST(test_json_escapes_every_field)
{
    const char *l = fmt_line(LOG_FORMAT_JSON, LOG_WARN, "a\"b->c\\d/tcp", "x\ny",
                             "quote \" backslash \\ nl \n tab \t bell \x07 bad \xff");
    parses_with_message(
        l, "quote \" backslash \\ nl \n tab \t bell \x07 bad \xef\xbf\xbd");
    cJSON *o = cJSON_Parse(l);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "mapping")->valuestring,
                     "a\"b->c\\d/tcp");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "client")->valuestring,
                     "x\ny");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "time")->valuestring,
                     "2026-11-30T12:00:00.123Z");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "level")->valuestring,
                     "warn");
    cJSON_Delete(o);
}
END_TEST

START_TEST(test_json_long_message_cut_is_still_one_object)
{
    /* 1023 control bytes escape to 6 each: far past the line's room. */
    char msg[LOG_TEXT_MAX];
    memset(msg, '\x01', sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    const char *l = fmt_line(LOG_FORMAT_JSON, LOG_INFO, MAP, CLIENT, msg);
    size_t n = strlen(l);
    ck_assert_uint_le(n, LOG_JSON_MAX);
    ck_assert_uint_gt(n, LOG_JSON_MAX - 8);
    ck_assert_str_eq(l + n - 3, "\"}\n");
    parses_with_message(l, NULL);
    cJSON *o = cJSON_Parse(l);
    const char *m = cJSON_GetObjectItemCaseSensitive(o, "message")->valuestring;
    ck_assert_uint_gt(strlen(m), 600);
    ck_assert_uint_eq(strspn(m, "\x01"), strlen(m)); /* whole escapes only */
    cJSON_Delete(o);

    /* Multi-byte characters are not split either. */
    char wide[LOG_TEXT_MAX];
    size_t w = 0;
    while (w + 4 < sizeof wide)
        w += (size_t)snprintf(wide + w, sizeof wide - w, "\xe2\x82\xac");
    l = fmt_line(LOG_FORMAT_JSON, LOG_INFO, NULL, NULL, wide);
    parses_with_message(l, wide); /* 3 bytes each: it fits whole */
}
END_TEST

START_TEST(test_format_parse)
{
    enum log_format f = LOG_FORMAT_TEXT;
    ck_assert_int_eq(log_format_parse("json", &f), 0);
    ck_assert_int_eq(f, LOG_FORMAT_JSON);
    ck_assert_int_eq(log_format_parse("text", &f), 0);
    ck_assert_int_eq(f, LOG_FORMAT_TEXT);
    ck_assert_int_eq(log_format_parse("yaml", &f), -1);
    ck_assert_int_eq(log_format_parse("JSON", &f), -1);
    ck_assert_int_eq(log_format_parse("", &f), -1);
}
END_TEST

/* What log_at and log_msg write to stderr, with the given settings. */
static size_t captured(char *out, size_t outlen, enum log_format f)
{
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(fileno(tmp), STDERR_FILENO), 0);
    log_set_format(f);
    log_set_level(LOG_INFO);
    log_at(LOG_WARN, MAP, CLIENT, "connect %s: %s", "10.0.0.2:80", "refused");
    log_msg(LOG_INFO, "listening: %d ports", 2);
    log_at(LOG_DEBUG, MAP, CLIENT, "filtered out"); /* below the threshold */
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    log_set_format(LOG_FORMAT_TEXT);
    rewind(tmp);
    size_t n = fread(out, 1, outlen - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return n;
}

START_TEST(test_log_at_writes_lines)
{
    char out[4096];
    captured(out, sizeof out, LOG_FORMAT_JSON);
    char *second = strchr(out, '\n');
    ck_assert_ptr_nonnull(second);
    *second++ = '\0';
    ck_assert_ptr_nonnull(
        strstr(out, "\"level\":\"warn\",\"mapping\":\"" MAP "\",\"client\":\"" CLIENT
                    "\",\"message\":\"connect 10.0.0.2:80: refused\"}"));
    ck_assert_ptr_nonnull(strstr(second,
                                 "\"level\":\"info\",\"message\":\"listening: 2 "
                                 "ports\"}\n"));
    ck_assert_ptr_null(strstr(second, "filtered"));
    ck_assert_int_eq(strchr(second, '\n')[1], '\0'); /* two lines, no more */

    captured(out, sizeof out, LOG_FORMAT_TEXT);
    ck_assert_ptr_nonnull(strstr(out, "Z berth warn: " MAP " client " CLIENT
                                      ": connect 10.0.0.2:80: refused\n"));
    ck_assert_ptr_nonnull(strstr(out, "Z berth info: listening: 2 ports\n"));
    ck_assert_ptr_null(strstr(out, "filtered"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_escape_specials);
    tcase_add_test(tc, test_escape_utf8);
    tcase_add_test(tc, test_escape_cut_between_characters);
    tcase_add_test(tc, test_text_lines_as_before);
    tcase_add_test(tc, test_text_long_line_cut);
    tcase_add_test(tc, test_json_lines);
    tcase_add_test(tc, test_json_escapes_every_field);
    tcase_add_test(tc, test_json_long_message_cut_is_still_one_object);
    tcase_add_test(tc, test_format_parse);
    tcase_add_test(tc, test_log_at_writes_lines);
    suite_add_tcase(s, tc);
    return check_run(s);
}
