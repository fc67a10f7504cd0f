/* --config JSON files: what they set, how the command line wins over them,
 * the switches of publish entries, and the exact one-line error for each
 * kind of mistake in a file. */
#include "check_run.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "berth/config.h"
#include "berth/config_file.h"

#define MAXARGS 24

#define KEEPALIVE_WANT                                                                \
    "': want IDLE[:INTERVAL:COUNT] (IDLE and INTERVAL 1-32767 seconds, COUNT "        \
    "1-127), or 0 for off"

static int parse(const char *const *args, struct config **out, char *err,
                 size_t errlen)
{
    char *argv[MAXARGS + 1];
    int argc = 0;
    argv[argc++] = (char *)"berth";
    for (; args[argc - 1]; argc++) {
        ck_assert_int_lt(argc, MAXARGS);
        argv[argc] = (char *)args[argc - 1];
    }
    argv[argc] = NULL;
    *out = config_new();
    ck_assert_ptr_nonnull(*out);
    return config_parse_args(*out, argc, argv, err, errlen);
}

/* Writes text to a fresh temporary file under $BERTH_TEST_ROOT (else /tmp);
 * returns its path (static buffer). */
static const char *temp_json(const char *text)
{
    static char path[256];
    const char *root = getenv("BERTH_TEST_ROOT");
    int n = snprintf(path, sizeof path, "%s/berth-test-XXXXXX.json",
                     root && *root ? root : "/tmp");
    ck_assert(n > 0 && (size_t)n < sizeof path);
    int fd = mkstemps(path, 5);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

START_TEST(test_file_and_precedence)
{
    const char *path = temp_json(
        "{\"publish\": [\"8080:1.2.3.4:80\", \"5353:1.2.3.4:53/udp\"],\n"
        " \"udp-timeout\": 20, \"max-conns\": 100, \"log-level\": \"warn\",\n"
        " \"no-docker\": true, \"tcp-keepalive\": \"30:5:3\", \"idle-timeout\": 900,\n"
        " \"stale-after\": 0}\n");
    const char *args[] = {"--config",        path, "--udp-timeout", "45", "-p",
                          "9090:1.2.3.4:90", NULL};
    struct config *c;
    char err[512];
    ck_assert_int_eq(parse(args, &c, err, sizeof err), 0);
    unlink(path);
    ck_assert_uint_eq(c->publish.n, 3); /* file first, then argv */
    ck_assert_str_eq(c->publish.v[0], "8080:1.2.3.4:80");
    ck_assert_str_eq(c->publish.v[2], "9090:1.2.3.4:90");
    ck_assert_uint_eq(c->udp_timeout, 45); /* argv wins */
    ck_assert_uint_eq(c->max_conns, 100);
    ck_assert_int_eq(c->log_level, LOG_WARN);
    ck_assert(c->no_docker);
    ck_assert_uint_eq(c->tcp_keepalive.idle, 30);
    ck_assert_uint_eq(c->tcp_keepalive.interval, 5);
    ck_assert_uint_eq(c->tcp_keepalive.count, 3);
    ck_assert_uint_eq(c->idle_timeout, 900);
    ck_assert_uint_eq(c->stale_after, 0);
    config_free(c);

    /* A number is a keepalive too: 0 turns it off, 20 is 20:15:9. */
    const char *texts[] = {"{\"tcp-keepalive\": 0}", "{\"tcp-keepalive\": 20}"};
    for (int i = 0; i < 2; i++) {
        path = temp_json(texts[i]);
        const char *args2[] = {"--config", path, NULL};
        ck_assert_int_eq(parse(args2, &c, err, sizeof err), 0);
        unlink(path);
        ck_assert_uint_eq(c->tcp_keepalive.idle, i == 0 ? 0 : 20);
        ck_assert_uint_eq(c->tcp_keepalive.interval, i == 0 ? 0 : 15);
        config_free(c);
    }
}
END_TEST

struct bad_file {
    const char *json;
    const char *error; /* after "config '<path>': " */
};

static const struct bad_file bad_files[] = {
    {"{\"publish\": [\"8080:web\"]}", "publish[0] '8080:web': missing target port"},
    {"{\"publish\": [\"8080:1.1.1.1:80\", 7]}",
     "'publish' must be an array of specs (strings or {\"spec\": ...} objects)"},
    {"{\"publish\": \"8080:1.1.1.1:80\"}",
     "'publish' must be an array of specs (strings or {\"spec\": ...} objects)"},
    {"{\"dns\": [7]}", "'dns' must be an array of strings"},
    {"{\"publish\": [{\"transparent\": true}]}",
     "publish[0]: an object needs \"spec\": a publish spec string"},
    {"{\"publish\": [{\"spec\": \"80:web\"}]}",
     "publish[0] '80:web': missing target port"},
    {"{\"publish\": [\"1:1.1.1.1:1\", {\"spec\": \"80:1.1.1.1:80\", \"transparent\": 1}]}",
     "publish[1]: 'transparent' must be true or false"},
    {"{\"publish\": [{\"spec\": \"80:1.1.1.1:80\", \"proxy_protocol\": \"v3\"}]}",
     "publish[0]: 'proxy_protocol' must be \"v1\", \"v2\" or \"off\""},
    {"{\"publish\": [{\"spec\": \"53:1.1.1.1:53/udp\", \"proxy_protocol\": \"v2\"}]}",
     "publish[0] '53:1.1.1.1:53/udp': the PROXY protocol is for TCP only"},
    {"{\"publish\": [{\"spec\": \"80:1.1.1.1:80\", \"proxy-protocol\": \"v2\"}]}",
     "publish[0]: unknown key 'proxy-protocol' (want spec, transparent, proxy_protocol)"},
    {"{\"proxy-protocol\": \"v9\"}", "proxy-protocol 'v9': want v1, v2 or off"},
    {"{\"transparent\": \"yes\"}", "'transparent' must be true or false"},
    {"{\"colour\": 1}", "unknown key 'colour'"},
    {"{\"config\": \"x\"}", "unknown key 'config'"},
    {"{\"udp-timeout\": \"90\"}", "'udp-timeout' must be a number"},
    {"{\"udp-timeout\": 1.5}", "'udp-timeout' must be a whole number in 1-2147483647"},
    {"{\"udp-timeout\": 0}", "udp-timeout '0': want a whole number in 1-2147483647"},
    {"{\"check\": 1}", "'check' must be true or false"},
    {"{\"tcp-keepalive\": true}",
     "'tcp-keepalive' must be a string or a whole number"},
    {"{\"tcp-keepalive\": 1.5}", "'tcp-keepalive' must be a string or a whole number"},
    {"{\"tcp-keepalive\": \"15:15\"}", "tcp-keepalive '15:15" KEEPALIVE_WANT},
    {"{\"tcp-keepalive\": 40000}", "tcp-keepalive '40000" KEEPALIVE_WANT},
    {"{\"idle-timeout\": \"60\"}", "'idle-timeout' must be a number"},
    {"{\"stale-after\": \"60\"}", "'stale-after' must be a number"},
    {"{\"idle-timeout\": -1}",
     "'idle-timeout' must be a whole number in 0-2147483647"},
    {"{\"domain\": 5}", "'domain' must be a string"},
    {"[1, 2]", "must be a JSON object"},
    {"{\n\"publish\": [\n\"8080:1.1.1.1:80\"\n,]}", "invalid JSON at line 4"},
    {"", "invalid JSON at line 1"},
    {"{}\n\n{}", "invalid JSON at line 3"},
};

START_TEST(test_bad_file)
{
    const char *path = temp_json(bad_files[_i].json);
    const char *args[] = {"--config", path, NULL};
    struct config *c;
    char err[512] = "", want[512];
    ck_assert_int_eq(parse(args, &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "config '%s': %s", path, bad_files[_i].error);
    unlink(path);
    ck_assert_str_eq(err, want);
    config_free(c);
}
END_TEST

/* --transparent and --proxy-protocol switch on the command line's
 * entries, a config file's top-level keys its plain-string entries, and an
 * object entry says for itself; the PROXY protocol never lands on UDP. */
START_TEST(test_publish_switches)
{
    const char *path = temp_json(
        "{\"publish\": [\"9000:10.0.0.1:80\", \"9053:10.0.0.1:53/udp\",\n"
        "  {\"spec\": \"9001:10.0.0.1:81\", \"transparent\": false,\n"
        "   \"proxy_protocol\": \"v1\"},\n"
        "  {\"spec\": \"9002:10.0.0.1:82\"},\n"
        "  {\"spec\": \"9003:10.0.0.1:83\", \"proxy_protocol\": \"off\"}],\n"
        " \"transparent\": true, \"proxy-protocol\": \"v2\"}");
    const char *args[] = {
        "-p", "8000:10.0.0.1:80",     "--config",         path, "--transparent",
        "-p", "8053:10.0.0.1:53/udp", "--proxy-protocol", "v1", NULL};
    struct config *c;
    char err[512] = "";
    ck_assert_int_eq(parse(args, &c, err, sizeof err), 0);
    unlink(path);
    /* The file's entries come first (loaded before the command line's). */
    static const struct {
        const char *spec;
        bool transparent;
        enum proxy_proto pp;
    } want[] = {
        {"9000:10.0.0.1:80", true, PROXY_PROTO_V2},
        {"9053:10.0.0.1:53/udp", true, PROXY_PROTO_NONE},
        {"9001:10.0.0.1:81", false, PROXY_PROTO_V1},
        {"9002:10.0.0.1:82", true, PROXY_PROTO_V2},
        {"9003:10.0.0.1:83", true, PROXY_PROTO_NONE},
        {"8000:10.0.0.1:80", true, PROXY_PROTO_V1},
        {"8053:10.0.0.1:53/udp", true, PROXY_PROTO_NONE},
    };
    ck_assert_uint_eq(c->publish.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < c->publish.n; i++) {
        ck_assert_str_eq(c->publish.v[i], want[i].spec);
        ck_assert_msg(c->publish_opts[i].transparent == want[i].transparent,
                      "%s: transparent", want[i].spec);
        ck_assert_int_eq(c->publish_opts[i].proxy_proto, want[i].pp);
    }
    config_free(c);

    /* Without the switches nothing is on. */
    const char *plain[] = {"-p", "8000:10.0.0.1:80", NULL};
    ck_assert_int_eq(parse(plain, &c, err, sizeof err), 0);
    ck_assert(!c->publish_opts[0].transparent);
    ck_assert_int_eq(c->publish_opts[0].proxy_proto, PROXY_PROTO_NONE);
    config_free(c);
}
END_TEST

/* From memory: only len bytes are read, and prefix starts every message. */
START_TEST(test_load_json)
{
    struct config *c = config_new();
    char err[512] = "";
    const char text[] = "{\"ttl\": 7, \"publish\": [\"80:1.2.3.4:80\"]}, \"ttl\": 9}";
    size_t len = strlen("{\"ttl\": 7, \"publish\": [\"80:1.2.3.4:80\"]}");
    ck_assert_int_eq(config_load_json(c, text, len, "here", err, sizeof err), 0);
    ck_assert_uint_eq(c->ttl, 7);
    ck_assert_uint_eq(c->publish.n, 1);
    ck_assert(c->publish_opts[0].from_file);
    ck_assert(!c->loading_file);
    ck_assert_int_eq(config_load_json(c, text, sizeof text - 1, "here", err,
                                      sizeof err),
                     -1);
    ck_assert_str_eq(err, "here: invalid JSON at line 1");
    ck_assert_int_eq(config_load_json(c, "{\"ttl\": -3}", strlen("{\"ttl\": -3}"),
                                      "here", err, sizeof err),
                     -1);
    ck_assert_str_eq(err, "here: 'ttl' must be a whole number in 0-2147483647");
    ck_assert(!c->loading_file); /* cleared on the error path too */
    config_free(c);
}
END_TEST

/* A path that opens but cannot be read (a directory) is one line too. */
START_TEST(test_read_error)
{
    struct config *c = config_new();
    char err[512] = "";
    ck_assert_int_eq(config_load_file(c, "/", err, sizeof err), -1);
    ck_assert_str_eq(err, "config '/': read error");
    config_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config_file");
    TCase *tc = tcase_create("config_file");
    tcase_add_test(tc, test_file_and_precedence);
    tcase_add_test(tc, test_publish_switches);
    tcase_add_loop_test(tc, test_bad_file, 0, sizeof bad_files / sizeof bad_files[0]);
    tcase_add_test(tc, test_load_json);
    tcase_add_test(tc, test_read_error);
    suite_add_tcase(s, tc);
    return check_run(s);
}
