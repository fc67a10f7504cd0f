/* /metrics (metrics.c): the text format (HELP and TYPE once per family,
 * label values escaped), histograms cumulative with +Inf equal to the
 * count, counters exactly what was added, a port's series gone with it. */
#include "check_run.h"
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "berth/metrics.h"

/* The whole page, NUL-terminated; the caller frees it. */
static char *render(const struct metrics *m)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(metrics_render(m, out), 0);
    ck_assert_int_eq(fclose(out), 0);
    return text;
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static struct mapping tcp_map(const char *listen, const char *target)
{
    struct mapping m = {.proto = PROTO_TCP};
    ck_assert_int_eq(addr_parse_hostport(&m.listen, listen, 0), 0);
    ck_assert_int_eq(addr_parse_hostport(&m.target, target, 0), 0);
    return m;
}

START_TEST(test_exact_counts_and_labels)
{
    struct metrics *m = metrics_new();
    struct mapping tm = tcp_map("127.0.0.1:8080", "10.0.0.2:80");
    struct map_stats *s = metrics_port_new(m, &tm, &tm.listen);
    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < 37; i++) {
        s->conns++;
        s->bytes[METRICS_IN] += 1000 + (uint64_t)i;
        s->bytes[METRICS_OUT] += 7;
    }
    s->conns_active = 2;
    metrics_connect_done(s, ECONNREFUSED, 1000);
    metrics_connect_done(s, ECONNREFUSED, 1000);
    metrics_connect_done(s, ETIMEDOUT, 1000);
    char *t = render(m);
    const char *l = "{listen=\"127.0.0.1:8080\",proto=\"tcp\",target=\"10.0.0.2:80\"";
    char want[512];
    snprintf(want, sizeof want, "berth_connections_total%s} 37\n", l);
    ck_assert_ptr_nonnull(strstr(t, want));
    snprintf(want, sizeof want, "berth_connections_active%s} 2\n", l);
    ck_assert_ptr_nonnull(strstr(t, want));
    /* 37 * 1000 + 0 + 1 + ... + 36 */
    snprintf(want, sizeof want, "berth_bytes_total%s,direction=\"in\"} 37666\n", l);
    ck_assert_ptr_nonnull(strstr(t, want));
    snprintf(want, sizeof want, "berth_bytes_total%s,direction=\"out\"} 259\n", l);
    ck_assert_ptr_nonnull(strstr(t, want));
    snprintf(want, sizeof want, "berth_connect_errors_total%s,reason=\"refused\"} 2\n",
             l);
    ck_assert_ptr_nonnull(strstr(t, want));
    snprintf(want, sizeof want, "berth_connect_errors_total%s,reason=\"timeout\"} 1\n",
             l);
    ck_assert_ptr_nonnull(strstr(t, want));
    /* Failed connects are not in the duration histogram. */
    snprintf(want, sizeof want, "berth_connect_duration_seconds_count%s} 0\n", l);
    ck_assert_ptr_nonnull(strstr(t, want));
    /* Each family's HELP and TYPE said once. */
    ck_assert_int_eq(count_of(t, "# TYPE berth_bytes_total counter\n"), 1);
    ck_assert_int_eq(count_of(t, "# HELP berth_connect_duration_seconds "), 1);
    ck_assert_ptr_nonnull(
        strstr(t, "berth_build_info{version=\"" BERTH_VERSION "\"} 1\n"));
    /* No engine followed: no berth_docker_* at all. */
    ck_assert_ptr_null(strstr(t, "berth_docker_"));
    free(t);
    metrics_port_free(s);
    metrics_free(m);
}
END_TEST

START_TEST(test_label_values_escaped)
{
    struct metrics *m = metrics_new();
    struct mapping um = {.proto = PROTO_UDP, .target_port = 53};
    ck_assert_int_eq(addr_parse_hostport(&um.listen, "[::1]:5353", 0), 0);
    /* Not a name berth accepts: the escaping must hold whatever comes. */
    snprintf(um.target_name, sizeof um.target_name, "a\\b\"c\nd");
    struct map_stats *s = metrics_port_new(m, &um, &um.listen);
    s->datagrams[METRICS_IN] = 5;
    s->udp_dropped[METRICS_DROP_NO_TARGET] = 3;
    char *t = render(m);
    ck_assert_ptr_nonnull(
        strstr(t, "berth_udp_datagrams_total{listen=\"[::1]:5353\",proto=\"udp\","
                  "target=\"a\\\\b\\\"c\\nd:53\",direction=\"in\"} 5\n"));
    ck_assert_ptr_nonnull(strstr(t, ",reason=\"no_target\"} 3\n"));
    /* A UDP port has no TCP series. */
    ck_assert_ptr_null(strstr(t, "berth_connections_total{"));
    /* Every line is a comment or ends in a value: no raw newline inside. */
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n"))
        ck_assert(line[0] == '#' || strncmp(line, "berth_", 6) == 0 ||
                  strncmp(line, "process_", 8) == 0);
    free(t);
    metrics_port_free(s);
    metrics_free(m);
}
END_TEST

START_TEST(test_histogram_cumulative)
{
    struct histogram h = {0};
    /* A bound itself falls in its own bucket (le: less or equal). */
    double v[] = {0.0005, 0.0006, 0.3, 0.3, 10};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        histogram_observe(&h, v[i]);
    ck_assert_uint_eq(h.count, 5);
    ck_assert_uint_eq(h.n[0], 1);               /* <= 0.0005 */
    ck_assert_uint_eq(h.n[1], 1);               /* <= 0.001 */
    ck_assert_uint_eq(h.n[9], 2);               /* <= 0.5 */
    ck_assert_uint_eq(h.n[METRICS_BUCKETS], 1); /* above 5 */

    struct metrics *m = metrics_new();
    metrics_dns_forward_time(m, 500000);    /* 0.0005 s */
    metrics_dns_forward_time(m, 300000000); /* 0.3 s */
    metrics_dns_forward_time(m, 9000000000ull);
    char *t = render(m);
    const char *f = "berth_dns_forward_duration_seconds";
    char want[128];
    static const struct {
        const char *le;
        int n;
    } rows[] = {{"0.0005", 1}, {"0.001", 1}, {"0.25", 1},
                {"0.5", 2},    {"5", 2},     {"+Inf", 3}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        snprintf(want, sizeof want, "%s_bucket{le=\"%s\"} %d\n", f, rows[i].le,
                 rows[i].n);
        ck_assert_msg(strstr(t, want), "missing %s", want);
    }
    snprintf(want, sizeof want, "%s_count 3\n", f);
    ck_assert_ptr_nonnull(strstr(t, want));
    snprintf(want, sizeof want, "%s_sum 9.3005\n", f);
    ck_assert_ptr_nonnull(strstr(t, want));
    ck_assert_int_eq(count_of(t, "_bucket{le="), METRICS_BUCKETS + 1);
    free(t);
    metrics_free(m);
}
END_TEST

START_TEST(test_connect_reasons)
{
    ck_assert_int_eq(metrics_connect_reason(ECONNREFUSED), METRICS_REFUSED);
    ck_assert_int_eq(metrics_connect_reason(ETIMEDOUT), METRICS_TIMEOUT);
    ck_assert_int_eq(metrics_connect_reason(EHOSTUNREACH), METRICS_UNREACHABLE);
    ck_assert_int_eq(metrics_connect_reason(ENETUNREACH), METRICS_UNREACHABLE);
    ck_assert_int_eq(metrics_connect_reason(EMFILE), METRICS_RESOURCE);
    ck_assert_int_eq(metrics_connect_reason(ENOBUFS), METRICS_RESOURCE);
    ck_assert_int_eq(metrics_connect_reason(EACCES), METRICS_OTHER);
}
END_TEST

START_TEST(test_port_series_leave_with_it)
{
    struct metrics *m = metrics_new();
    struct mapping a = tcp_map("127.0.0.1:1", "10.0.0.1:1");
    struct mapping b = tcp_map("127.0.0.1:2", "10.0.0.1:2");
    struct mapping c = tcp_map("127.0.0.1:3", "10.0.0.1:3");
    struct map_stats *sa = metrics_port_new(m, &a, &a.listen);
    struct map_stats *sb = metrics_port_new(m, &b, &b.listen);
    struct map_stats *sc = metrics_port_new(m, &c, &c.listen);
    metrics_port_free(sb); /* the middle one */
    char *t = render(m);
    ck_assert_ptr_nonnull(strstr(t, "listen=\"127.0.0.1:1\""));
    ck_assert_ptr_null(strstr(t, "listen=\"127.0.0.1:2\""));
    ck_assert_ptr_nonnull(strstr(t, "listen=\"127.0.0.1:3\""));
    free(t);
    metrics_port_free(sa);
    metrics_port_free(sc);
    t = render(m);
    ck_assert_ptr_null(strstr(t, "listen="));
    free(t);
    /* A block outliving its metrics is detached, not left dangling. */
    struct map_stats *late = metrics_port_new(m, &a, &a.listen);
    metrics_free(m);
    metrics_port_free(late);
    ck_assert_ptr_null(metrics_port_new(NULL, &a, &a.listen));
    metrics_port_free(NULL);
}
END_TEST

/* How many samples repeat an earlier one's name and labels (the line
 * without its value): a scrape of a page with any fails ("duplicate sample
 * for timestamp"), though promtool check metrics does not look for them. */
static int duplicate_series(const char *text)
{
    int dup = 0;
    char *copy = strdup(text);
    ck_assert_ptr_nonnull(copy);
    size_t n = 0, cap = 256;
    char **keys = calloc(cap, sizeof *keys);
    ck_assert_ptr_nonnull(keys);
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        char *sp = strrchr(line, ' ');
        ck_assert_ptr_nonnull(sp);
        *sp = '\0';
        for (size_t k = 0; k < n; k++)
            if (strcmp(keys[k], line) == 0) {
                fprintf(stderr, "series twice: %s\n", line);
                dup++;
            }
        if (n == cap) {
            cap *= 2;
            keys = realloc(keys, cap * sizeof *keys);
            ck_assert_ptr_nonnull(keys);
        }
        keys[n++] = line;
    }
    ck_assert_uint_gt(n, 0);
    free(keys);
    free(copy);
    return dup;
}

/* promtool's lint of the page, when installed (Debian package prometheus):
 * 0 when it passed or is missing, else its exit status. */
static int promtool_check(const char *text)
{
    const char *tool = "/usr/bin/promtool";
    if (access(tool, X_OK) != 0) {
        fprintf(stderr, "%s not installed: the page was not linted\n", tool);
        return 0;
    }
    FILE *p = popen("/usr/bin/promtool check metrics >&2", "w");
    ck_assert_ptr_nonnull(p);
    fputs(text, p);
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* A reload replaced a port by one with other switches (transparent,
 * proxy-protocol): the same listen, proto and target twice, the removed
 * one draining. */
START_TEST(test_draining_port_has_own_series)
{
    struct metrics *m = metrics_new();
    struct mapping tm = tcp_map("127.0.0.1:8080", "10.0.0.2:80");
    struct mapping um = tcp_map("127.0.0.1:5353", "10.0.0.2:53");
    um.proto = PROTO_UDP;
    struct map_stats *old_t = metrics_port_new(m, &tm, &tm.listen);
    struct map_stats *old_u = metrics_port_new(m, &um, &um.listen);
    old_t->conns = 5;
    old_u->udp_dropped[METRICS_DROP_DRAINING] = 3;
    metrics_port_draining(old_t);
    metrics_port_draining(old_u);
    metrics_port_draining(NULL);
    struct map_stats *new_t = metrics_port_new(m, &tm, &tm.listen);
    struct map_stats *new_u = metrics_port_new(m, &um, &um.listen);
    new_t->conns = 2;
    char *t = render(m);
    const char *l = "{listen=\"127.0.0.1:8080\",proto=\"tcp\",target=\"10.0.0.2:80\"";
    char want[512];
    snprintf(want, sizeof want, "berth_connections_total%s,state=\"draining\"} 5\n",
             l);
    ck_assert_ptr_nonnull(strstr(t, want));
    snprintf(want, sizeof want, "berth_connections_total%s} 2\n", l);
    ck_assert_ptr_nonnull(strstr(t, want));
    snprintf(
        want, sizeof want,
        "berth_connect_duration_seconds_bucket%s,state=\"draining\",le=\"+Inf\"} 0\n",
        l);
    ck_assert_ptr_nonnull(strstr(t, want));
    ck_assert_ptr_nonnull(
        strstr(t,
               "berth_udp_dropped_total{listen=\"127.0.0.1:5353\",proto=\"udp\","
               "target=\"10.0.0.2:53\",state=\"draining\",reason=\"draining\"} 3\n"));
    ck_assert_ptr_nonnull(
        strstr(t, "berth_udp_dropped_total{listen=\"127.0.0.1:5353\",proto=\"udp\","
                  "target=\"10.0.0.2:53\",reason=\"draining\"} 0\n"));
    ck_assert_int_eq(duplicate_series(t), 0);
    ck_assert_int_eq(promtool_check(t), 0);
    free(t);
    /* Without the mark, the page Prometheus refused: every TCP series
     * twice (connections 2, bytes 2, reasons, 16 of the histogram). */
    old_t->draining = false;
    t = render(m);
    ck_assert_int_eq(duplicate_series(t), 2 + 2 + METRICS_CONNECT_REASONS + 16);
    free(t);
    metrics_port_free(old_t);
    metrics_port_free(old_u);
    metrics_port_free(new_t);
    metrics_port_free(new_u);
    metrics_free(m);
}
END_TEST

START_TEST(test_dns_docker_reloads_process)
{
    struct metrics *m = metrics_new();
    metrics_dns_answer(m, 0, false);
    metrics_dns_answer(m, 0, false);
    metrics_dns_answer(m, 3, false);
    metrics_dns_answer(m, 0, true);
    metrics_dns_answer(m, 2, true);
    metrics_docker_up(m, true);
    metrics_docker_event(m);
    metrics_docker_event(m);
    metrics_reload(m, true);
    metrics_reload(m, false);
    metrics_reload(m, false);
    /* NULL: counts nothing, as in docker-proxy mode. */
    metrics_dns_answer(NULL, 0, false);
    metrics_reload(NULL, true);
    char *t = render(m);
    ck_assert_ptr_nonnull(
        strstr(t, "berth_dns_queries_total{rcode=\"NOERROR\",answer=\"local\"} 2\n"));
    ck_assert_ptr_nonnull(
        strstr(t, "berth_dns_queries_total{rcode=\"NXDOMAIN\",answer=\"local\"} 1\n"));
    ck_assert_ptr_nonnull(
        strstr(t,
               "berth_dns_queries_total{rcode=\"NOERROR\",answer=\"forwarded\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(
        t, "berth_dns_queries_total{rcode=\"SERVFAIL\",answer=\"forwarded\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(t, "berth_docker_up 1\n"));
    ck_assert_ptr_nonnull(strstr(t, "berth_docker_events_total 2\n"));
    ck_assert_ptr_nonnull(strstr(t, "berth_config_reloads_total{result=\"ok\"} 1\n"));
    ck_assert_ptr_nonnull(
        strstr(t, "berth_config_reloads_total{result=\"failed\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(t, "\nprocess_open_fds "));
    ck_assert_ptr_nonnull(strstr(t, "\nprocess_resident_memory_bytes "));
    ck_assert_ptr_nonnull(strstr(t, "\nprocess_cpu_seconds_total "));
    /* Within a day of now: the boot time and start ticks add up. */
    const char *st = strstr(t, "\nprocess_start_time_seconds ");
    ck_assert_ptr_nonnull(st);
    double started = strtod(st + strlen("\nprocess_start_time_seconds "), NULL);
    ck_assert(started > (double)time(NULL) - 86400 &&
              started <= (double)time(NULL) + 1);
    free(t);
    metrics_docker_up(m, false);
    t = render(m);
    ck_assert_ptr_nonnull(strstr(t, "berth_docker_up 0\n"));
    free(t);
    metrics_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_exact_counts_and_labels);
    tcase_add_test(tc, test_label_values_escaped);
    tcase_add_test(tc, test_histogram_cumulative);
    tcase_add_test(tc, test_connect_reasons);
    tcase_add_test(tc, test_port_series_leave_with_it);
    tcase_add_test(tc, test_dns_docker_reloads_process);
    tcase_add_test(tc, test_draining_port_has_own_series);
    suite_add_tcase(s, tc);
    return check_run(s);
}
