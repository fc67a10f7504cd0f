/* The relay layer's name resolution: replicas rotate per connection, and a
 * replica passed over goes last, for TCP only, for a while, in a table
 * that stays small. */
#include "check_run.h"
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "berth/registry.h"
#include "berth/relay.h"
#include "looptest.h"

struct fx {
    struct event_base *base;
    struct registry *reg;
    struct relay_ctx *ctx;
    struct mapping tcp, udp; /* api.lab:8080 */
};

/* Replicas lab_api_1..n at 127.0.0.(1+i). */
static void fx_start(struct fx *f, int n)
{
    memset(f, 0, sizeof *f);
    f->base = event_base_new();
    f->reg = registry_new();
    ck_assert_ptr_nonnull(f->base);
    ck_assert_ptr_nonnull(f->reg);
    for (int i = 1; i <= n; i++) {
        char id[65], name[32];
        snprintf(id, sizeof id, "%064d", i);
        snprintf(name, sizeof name, "lab_api_%d", i);
        struct reg_endpoint ep = {.network = "lab_default", .has_v4 = true};
        ck_assert_int_eq(inet_pton(AF_INET, "127.0.0.1", &ep.v4), 1);
        ep.v4.s_addr = htonl(ntohl(ep.v4.s_addr) + (uint32_t)i);
        struct reg_container c = {.id = id,
                                  .name = name,
                                  .project = "lab",
                                  .service = "api",
                                  .number = i,
                                  .eps = &ep,
                                  .neps = 1};
        ck_assert_int_eq(registry_put(f->reg, &c), 0);
    }
    f->ctx = relay_ctx_new(f->base, f->reg);
    ck_assert_ptr_nonnull(f->ctx);
    f->tcp = (struct mapping){.proto = PROTO_TCP, .target_port = 8080};
    strcpy(f->tcp.target_name, "api.lab");
    f->udp = f->tcp;
    f->udp.proto = PROTO_UDP;
}

static void fx_stop(struct fx *f)
{
    relay_ctx_free(f->ctx);
    registry_free(f->reg);
    event_base_free(f->base);
}

/* Replica i's address (127.0.0.(1+i):8080). */
static struct addr replica(int i)
{
    char ip[32];
    snprintf(ip, sizeof ip, "127.0.0.%d", 1 + i);
    return t_addr(ip, 8080);
}

/* One resolution as the replicas' numbers in order: "2,3,1". */
static const char *order(struct fx *f, const struct mapping *m, unsigned *rr)
{
    static char out[64];
    struct addr a[8];
    size_t n = relay_resolve(f->ctx, m, rr, a, 8);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(addr_port(&a[i]), 8080);
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a[i].ss;
        char num[8];
        snprintf(num, sizeof num, "%s%u", i ? "," : "",
                 ntohl(s4->sin_addr.s_addr) & 0xff);
        strcat(out, num);
    }
    return out;
}

/* Numbers above are the last octet: replica 1 is 127.0.0.2. */
START_TEST(test_rotation)
{
    struct fx f;
    fx_start(&f, 3);
    unsigned rr = 0;
    ck_assert_str_eq(order(&f, &f.tcp, &rr), "2,3,4");
    ck_assert_str_eq(order(&f, &f.tcp, &rr), "3,4,2");
    ck_assert_str_eq(order(&f, &f.tcp, &rr), "4,2,3");
    ck_assert_str_eq(order(&f, &f.tcp, &rr), "2,3,4");
    ck_assert_ptr_null(f.ctx->passed); /* nothing marked, nothing made */
    fx_stop(&f);
}
END_TEST

/* A service with more replicas than one connection tries (8): over as many
 * connections as replicas, each one is tried first exactly once. */
START_TEST(test_rotation_reaches_every_replica)
{
    struct fx f;
    fx_start(&f, 20);
    unsigned rr = 0, first_seen[256] = {0};
    for (int i = 0; i < 20; i++) {
        struct addr a[8];
        ck_assert_uint_eq(relay_resolve(f.ctx, &f.tcp, &rr, a, 8), 8);
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a[0].ss;
        first_seen[ntohl(s4->sin_addr.s_addr) & 0xff]++;
    }
    for (int i = 1; i <= 20; i++)
        ck_assert_msg(first_seen[1 + i] == 1, "replica %d first %u times", i,
                      first_seen[1 + i]);
    fx_stop(&f);
}
END_TEST

START_TEST(test_passed_over_goes_last)
{
    struct fx f;
    fx_start(&f, 3);
    struct addr r2 = replica(2); /* 127.0.0.3 */
    relay_pass_over(f.ctx, &r2);
    unsigned rr = 0;
    ck_assert_str_eq(order(&f, &f.tcp, &rr), "2,4,3");
    ck_assert_str_eq(order(&f, &f.tcp, &rr), "4,2,3"); /* would start at 3 */
    ck_assert_str_eq(order(&f, &f.tcp, &rr), "4,2,3");
    /* A UDP flow has no connect to fail: TCP's marks do not move it. */
    rr = 1;
    ck_assert_str_eq(order(&f, &f.udp, &rr), "3,4,2");
    /* Another port of the same replica is another target. */
    struct mapping other = f.tcp;
    other.target_port = 9090;
    rr = 1;
    struct addr a[8];
    ck_assert_uint_eq(relay_resolve(f.ctx, &other, &rr, a, 8), 3);
    ck_assert_uint_eq(addr_port(&a[0]), 9090);
    ck_assert_uint_eq(ntohl(((struct sockaddr_in *)&a[0].ss)->sin_addr.s_addr) & 0xff,
                      3);
    fx_stop(&f);
}
END_TEST

/* Every replica passed over: all are tried anyway, in the usual rotation;
 * the only replica of a name likewise. */
START_TEST(test_all_passed_over)
{
    struct fx f;
    fx_start(&f, 3);
    for (int i = 1; i <= 3; i++) {
        struct addr r = replica(i);
        relay_pass_over(f.ctx, &r);
    }
    unsigned rr = 1;
    ck_assert_str_eq(order(&f, &f.tcp, &rr), "3,4,2");
    fx_stop(&f);

    fx_start(&f, 1);
    struct addr r = replica(1);
    relay_pass_over(f.ctx, &r);
    rr = 0;
    ck_assert_str_eq(order(&f, &f.tcp, &rr), "2");
    fx_stop(&f);
}
END_TEST

START_TEST(test_pass_over_expires)
{
    struct fx f;
    fx_start(&f, 2);
    f.ctx->pass_over_ms = 100;
    struct addr r = replica(1);
    relay_pass_over(f.ctx, &r);
    unsigned rr = 0;
    ck_assert_str_eq(order(&f, &f.tcp, &rr), "3,2");
    usleep(150 * 1000); /* the configured time, not patience */
    rr = 0;
    ck_assert_str_eq(order(&f, &f.tcp, &rr), "2,3");
    /* Marked again: the new mark holds its full time. */
    relay_pass_over(f.ctx, &r);
    rr = 0;
    ck_assert_str_eq(order(&f, &f.tcp, &rr), "3,2");
    fx_stop(&f);
}
END_TEST

/* Thousands of addresses failing never grow the table; a mark just made
 * holds even so (what is forgotten is what was due soonest). */
START_TEST(test_table_is_bounded)
{
    struct fx f;
    fx_start(&f, 2);
    struct addr r = replica(1);
    relay_pass_over(f.ctx, &r);
    struct relay_passed *table = f.ctx->passed;
    ck_assert_ptr_nonnull(table);
    for (unsigned i = 0; i < 5000; i++) {
        struct addr other = t_addr("10.0.0.0", (uint16_t)(1 + i % 60000));
        ((struct sockaddr_in *)&other.ss)->sin_addr.s_addr = htonl(0x0a000000u + i);
        relay_pass_over(f.ctx, &other);
    }
    ck_assert_ptr_eq(f.ctx->passed, table); /* one allocation, never more */
    relay_pass_over(f.ctx, &r);
    unsigned rr = 0;
    ck_assert_str_eq(order(&f, &f.tcp, &rr), "3,2");
    fx_stop(&f);
}
END_TEST

/* Bounded staleness: a stale registry resolves no name target, TCP or
 * UDP, and resolves again once it is current. */
START_TEST(test_stale_registry_resolves_nothing)
{
    struct fx f;
    fx_start(&f, 3);
    unsigned rr = 0;
    struct addr a[8];
    registry_set_stale(f.reg, true);
    ck_assert_uint_eq(relay_resolve(f.ctx, &f.tcp, &rr, a, 8), 0);
    ck_assert_uint_eq(relay_resolve(f.ctx, &f.udp, &rr, a, 8), 0);
    registry_set_stale(f.reg, false);
    ck_assert_uint_eq(relay_resolve(f.ctx, &f.tcp, &rr, a, 8), 3);
    fx_stop(&f);
}
END_TEST

/* Why a name resolves to nothing, for its clients: what is known of the
 * engine (never synced, why it cannot be followed, stale) or, synced, that
 * nothing runs by that name; each reason its own key. */
START_TEST(test_unresolved_says_why)
{
    struct fx f;
    fx_start(&f, 0);
    char out[600];
    uint64_t k[5];
    k[0] = relay_unresolved_key(f.ctx);
    relay_unresolved(f.ctx, &f.tcp, out, sizeof out);
    ck_assert_str_eq(out,
                     "'api.lab': nothing known yet: the first sync with the Docker "
                     "engine has not ended");
    const char *why = "cannot connect to /x.sock: no such socket (is dockerd running? "
                      "is the path right?)";
    registry_set_engine(f.reg, false, why);
    k[1] = relay_unresolved_key(f.ctx);
    relay_unresolved(f.ctx, &f.tcp, out, sizeof out);
    ck_assert_str_eq(out,
                     "'api.lab': nothing known yet: berth cannot follow the Docker "
                     "engine: cannot connect to /x.sock: no such socket (is "
                     "dockerd running? is the path right?)");
    registry_set_stale(f.reg, true);
    k[2] = relay_unresolved_key(f.ctx);
    relay_unresolved(f.ctx, &f.tcp, out, sizeof out);
    ck_assert_str_eq(out, "'api.lab': not resolved while berth's container list is "
                          "stale (no sync with the Docker engine for longer than "
                          "--stale-after: cannot connect to /x.sock: no such socket "
                          "(is dockerd running? is the path right?))");
    registry_set_stale(f.reg, false);
    registry_set_engine(f.reg, true, why); /* synced once, then lost */
    k[3] = relay_unresolved_key(f.ctx);
    relay_unresolved(f.ctx, &f.tcp, out, sizeof out);
    ck_assert_str_eq(out, "no running container 'api.lab' (as of the last sync; berth "
                          "cannot follow the Docker engine now: cannot connect to "
                          "/x.sock: no such socket (is dockerd running? is the path "
                          "right?))");
    registry_set_engine(f.reg, true, NULL);
    k[4] = relay_unresolved_key(f.ctx);
    relay_unresolved(f.ctx, &f.udp, out, sizeof out);
    ck_assert_str_eq(out, "no running container 'api.lab'");
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            ck_assert_uint_ne(k[i], k[j]);
    /* Another reason of the same class is another key. */
    registry_set_engine(f.reg, false, "GET /_ping: HTTP 500 from /x.sock: broke");
    ck_assert_uint_ne(relay_unresolved_key(f.ctx), k[1]);
    fx_stop(&f);
}
END_TEST

/* A client finding nothing: said once per reason with the suffix, then
 * counted; another reason is said again at once. */
START_TEST(test_log_unresolved)
{
    struct fx f;
    fx_start(&f, 0);
    log_set_level(LOG_INFO);
    strcpy(f.udp.label, "127.0.0.1:82->api.lab:8080/udp");
    registry_set_engine(f.reg, true, NULL);
    FILE *log = tmpfile();
    ck_assert_ptr_nonnull(log);
    int saved = dup(2);
    fflush(stderr);
    dup2(fileno(log), 2);
    struct addr client = t_addr("127.0.0.9", 40000);
    for (int i = 0; i < 100; i++)
        relay_log_unresolved(f.ctx, &f.udp, &client, "; datagram dropped");
    registry_set_engine(f.reg, true, "GET /events: connection reset");
    for (int i = 0; i < 50; i++)
        relay_log_unresolved(f.ctx, &f.udp, &client, "; datagram dropped");
    relay_forget(f.ctx, &f.udp);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(log);
    char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, log);
    text[n] = '\0';
    fclose(log);
    int lines = 0;
    for (const char *p = text; (p = strchr(p, '\n')); p++)
        lines++;
    ck_assert_msg(lines == 4, "want 4 lines, got:\n%s", text);
    ck_assert_msg(strstr(text, "berth info: 127.0.0.1:82->api.lab:8080/udp client "
                               "127.0.0.9:40000: no running container 'api.lab'; "
                               "datagram dropped\n"),
                  "%s", text);
    ck_assert_msg(strstr(text,
                         "berth info: 127.0.0.1:82->api.lab:8080/udp: no running "
                         "container 'api.lab'; datagram dropped (100 times"),
                  "%s", text);
    ck_assert_msg(strstr(text, "127.0.0.9:40000: no running container 'api.lab' (as "
                               "of the last sync; berth cannot follow the Docker "
                               "engine now: GET /events: connection reset); datagram "
                               "dropped\n"),
                  "%s", text);
    ck_assert_msg(strstr(text, "connection reset); datagram dropped (50 times"), "%s",
                  text);
    fx_stop(&f);
}
END_TEST

/* Runs 300 limited lines for port a, one for port b, then forgets port a,
 * with stderr in a file; returns what was written. */
static void limited_run(struct fx *f, char *text, size_t len)
{
    FILE *log = tmpfile();
    ck_assert_ptr_nonnull(log);
    int saved = dup(2);
    fflush(stderr);
    dup2(fileno(log), 2);
    struct addr client = t_addr("127.0.0.9", 40000);
    struct addr target = t_addr("127.0.0.2", 8080);
    for (int i = 0; i < 300; i++) {
        addr_set_port(&client, (uint16_t)(40000 + i));
        relay_log_limited(f->ctx, LOG_WARN, &f->tcp, &client,
                          relay_key(RELAY_SAID_CONNECT, 111, &target),
                          "connect 127.0.0.2:8080: Connection refused");
    }
    relay_log_limited(f->ctx, LOG_WARN, &f->udp, &client,
                      relay_key(RELAY_SAID_CONNECT, 111, &target),
                      "connect 127.0.0.2:8080: Connection refused");
    relay_forget(f->ctx, &f->tcp);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(log);
    size_t n = fread(text, 1, len - 1, log);
    text[n] = '\0';
    fclose(log);
}

/* A line per connection is said once, then counted; the count is said
 * without the client when the port goes (or every 10 s: log_limit's own
 * suite drives the windows). One port's flood does not mute another. */
START_TEST(test_log_limited)
{
    struct fx f;
    fx_start(&f, 0);
    strcpy(f.tcp.label, "127.0.0.1:81->api.lab:8080/tcp");
    strcpy(f.udp.label, "127.0.0.1:82->api.lab:8080/udp");
    char text[4096];
    limited_run(&f, text, sizeof text);
    int lines = 0;
    for (const char *p = text; (p = strchr(p, '\n')); p++)
        lines++;
    ck_assert_msg(lines == 3, "want 3 lines, got:\n%s", text);
    ck_assert_msg(strstr(text, "berth warn: 127.0.0.1:81->api.lab:8080/tcp client "
                               "127.0.0.9:40000: connect 127.0.0.2:8080: Connection "
                               "refused\n"),
                  "%s", text);
    ck_assert_msg(strstr(text, "berth warn: 127.0.0.1:82->api.lab:8080/udp client "
                               "127.0.0.9:40299: connect"),
                  "%s", text);
    ck_assert_msg(strstr(text, "berth warn: 127.0.0.1:81->api.lab:8080/tcp: connect "
                               "127.0.0.2:8080: Connection refused (300 times in the "
                               "last 1 s)\n"),
                  "%s", text);
    /* Filtered out: nothing said, nothing counted. */
    log_set_level(LOG_ERROR);
    limited_run(&f, text, sizeof text);
    log_set_level(LOG_INFO);
    ck_assert_str_eq(text, "");
    fx_stop(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("relay");
    TCase *tc = tcase_create("relay");
    t_tcase_timeout(tc, 30);
    tcase_add_test(tc, test_rotation);
    tcase_add_test(tc, test_rotation_reaches_every_replica);
    tcase_add_test(tc, test_passed_over_goes_last);
    tcase_add_test(tc, test_all_passed_over);
    tcase_add_test(tc, test_pass_over_expires);
    tcase_add_test(tc, test_table_is_bounded);
    tcase_add_test(tc, test_stale_registry_resolves_nothing);
    tcase_add_test(tc, test_unresolved_says_why);
    tcase_add_test(tc, test_log_unresolved);
    tcase_add_test(tc, test_log_limited);
    suite_add_tcase(s, tc);
    return check_run(s);
}
