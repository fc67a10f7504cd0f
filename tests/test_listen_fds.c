/* systemd socket activation: LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES parsed
 * (another pid ignored, counts, names, bad values), the variables unset
 * once read, and real sockets read back (TCP listening, UDP bound, the
 * IPv6 wildcard's IPV6_V6ONLY, what is refused) and taken by address. */
#include "check_run.h"
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/listen_fds.h"

static char err[512];

static struct listen_fds *parse(const char *pid, const char *fds, const char *names)
{
    err[0] = '\0';
    return listen_fds_parse(pid, fds, names, 4242, err, sizeof err);
}

START_TEST(test_not_for_us)
{
    const char *cases[][2] = {
        {NULL, NULL}, {NULL, "2"},    {"4243", "2"},
        {"1", "2"},   {"4242", NULL}, {"4242", "0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct listen_fds *t = parse(cases[i][0], cases[i][1], "a:b");
        ck_assert_msg(t != NULL, "case %zu: %s", i, err);
        ck_assert_uint_eq(t->n, 0);
        listen_fds_free(t);
    }
    /* Another pid: LISTEN_FDS is not even looked at. */
    struct listen_fds *t = parse("4243", "nonsense", NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->n, 0);
    listen_fds_free(t);
}
END_TEST

START_TEST(test_counts_and_names)
{
    struct listen_fds *t = parse("4242", "3", NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->n, 3);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(t->fds[i].fd, LISTEN_FDS_START + (int)i);
        ck_assert_str_eq(t->fds[i].name, "");
        ck_assert(!t->fds[i].taken);
    }
    t->n = 0; /* not ours to close: fds 3..5 of the test runner */
    listen_fds_free(t);

    /* Fewer names than fds, an empty one in the middle. */
    t = parse("4242", "3", "web::dns");
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(t->fds[0].name, "web");
    ck_assert_str_eq(t->fds[1].name, "");
    ck_assert_str_eq(t->fds[2].name, "dns");
    t->n = 0;
    listen_fds_free(t);
    t = parse("4242", "2", "web");
    ck_assert_str_eq(t->fds[0].name, "web");
    ck_assert_str_eq(t->fds[1].name, "");
    t->n = 0;
    listen_fds_free(t);
    /* More names than fds: the extra ones ignored. */
    t = parse("4242", "1", "a:b:c");
    ck_assert_uint_eq(t->n, 1);
    ck_assert_str_eq(t->fds[0].name, "a");
    t->n = 0;
    listen_fds_free(t);
}
END_TEST

START_TEST(test_bad_values)
{
    const char *pids[] = {"",      "abc",   "-1", "+4242",
                          " 4242", "4242x", "0",  "99999999999999999999"};
    for (size_t i = 0; i < sizeof pids / sizeof pids[0]; i++) {
        ck_assert_msg(parse(pids[i], "1", NULL) == NULL, "LISTEN_PID=%s", pids[i]);
        ck_assert_msg(strstr(err, "LISTEN_PID=") != NULL, "%s", err);
    }
    const char *fds[] = {"", "x", "-1", "2 ", "4097", "18446744073709551617"};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        ck_assert_msg(parse("4242", fds[i], NULL) == NULL, "LISTEN_FDS=%s", fds[i]);
        char want[64];
        snprintf(want, sizeof want, "LISTEN_FDS=%s:", fds[i]);
        ck_assert_msg(strstr(err, want) != NULL, "%s", err);
    }
    struct listen_fds *t = parse("4242", "4096", NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->n, 4096);
    t->n = 0;
    listen_fds_free(t);
    char names[600];
    memset(names, 'x', sizeof names - 1);
    names[sizeof names - 1] = '\0';
    names[3] = ':';
    ck_assert_ptr_null(parse("4242", "2", names));
    ck_assert_msg(strstr(err, "LISTEN_FDNAMES: name 2") != NULL, "%s", err);
}
END_TEST

/* The variables are gone once read, whatever they held. */
START_TEST(test_env_unset)
{
    char self[32];
    snprintf(self, sizeof self, "%d", (int)getpid() + 1);
    setenv("LISTEN_PID", self, 1);
    setenv("LISTEN_FDS", "2", 1);
    setenv("LISTEN_FDNAMES", "a:b", 1);
    struct listen_fds *t = listen_fds_from_env(err, sizeof err);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->n, 0);
    listen_fds_free(t);
    ck_assert_ptr_null(getenv("LISTEN_PID"));
    ck_assert_ptr_null(getenv("LISTEN_FDS"));
    ck_assert_ptr_null(getenv("LISTEN_FDNAMES"));

    snprintf(self, sizeof self, "%d", (int)getpid());
    setenv("LISTEN_PID", self, 1);
    setenv("LISTEN_FDS", "two", 1);
    ck_assert_ptr_null(listen_fds_from_env(err, sizeof err));
    ck_assert_msg(strstr(err, "LISTEN_FDS=two") != NULL, "%s", err);
    ck_assert_ptr_null(getenv("LISTEN_PID"));
    ck_assert_ptr_null(getenv("LISTEN_FDS"));
}
END_TEST

/* A socket of family/type bound to ip port 0 (listening when listen_too),
 * without FD_CLOEXEC, as a service manager hands it over. */
static int sock(int family, int type, const char *ip, bool listen_too)
{
    int fd = socket(family, type, 0);
    ck_assert_int_ge(fd, 0);
    struct addr a;
    ck_assert_int_eq(addr_from_ip(&a, ip, 0), 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a.ss, a.len), 0);
    if (listen_too)
        ck_assert_int_eq(listen(fd, 8), 0);
    return fd;
}

/* A table of the given fds, as listen_fds_parse would make for them. */
static struct listen_fds *table(const int *fds, size_t n)
{
    char count[16];
    snprintf(count, sizeof count, "%zu", n);
    struct listen_fds *t = listen_fds_parse("4242", count, "web:dns", 4242, err,
                                            sizeof err);
    ck_assert_ptr_nonnull(t);
    for (size_t i = 0; i < n; i++)
        t->fds[i].fd = fds[i];
    return t;
}

START_TEST(test_inspect_and_take)
{
    int fds[2] = {sock(AF_INET, SOCK_STREAM, "127.0.0.1", true),
                  sock(AF_INET, SOCK_DGRAM, "127.0.0.1", false)};
    struct listen_fds *t = table(fds, 2);
    ck_assert_msg(listen_fds_inspect(t, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(t->fds[0].type, SOCK_STREAM);
    ck_assert_int_eq(t->fds[1].type, SOCK_DGRAM);
    for (size_t i = 0; i < 2; i++)
        ck_assert(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
    struct addr tcp = t->fds[0].addr, udp = t->fds[1].addr, other;
    ck_assert_uint_ne(addr_port(&tcp), 0);
    char d[LISTEN_FD_NAME_MAX + 128], want[128], a[ADDR_STRLEN];
    snprintf(want, sizeof want, "fd %d (web) %s/tcp", fds[0],
             addr_format(&tcp, a, sizeof a));
    ck_assert_str_eq(listen_fd_describe(&t->fds[0], d, sizeof d), want);

    /* Address and type must both match. */
    ck_assert_int_eq(listen_fds_take(t, &tcp, IPPROTO_UDP), -1);
    addr_from_ip(&other, "127.0.0.2", addr_port(&tcp));
    ck_assert_int_eq(listen_fds_take(t, &other, IPPROTO_TCP), -1);
    addr_from_ip(&other, "0.0.0.0", addr_port(&tcp));
    ck_assert_int_eq(listen_fds_take(t, &other, IPPROTO_TCP), -1);
    ck_assert_ptr_eq(listen_fds_untaken(t), &t->fds[0]);
    ck_assert_int_eq(listen_fds_take(t, &tcp, IPPROTO_TCP), fds[0]);
    ck_assert_int_eq(listen_fds_take(t, &tcp, IPPROTO_TCP), -1); /* once */
    ck_assert_ptr_eq(listen_fds_untaken(t), &t->fds[1]);
    ck_assert_int_eq(listen_fds_take(t, &udp, IPPROTO_UDP), fds[1]);
    ck_assert_ptr_null(listen_fds_untaken(t));
    listen_fds_free(t);
    /* Taken: still open, the taker's. */
    ck_assert_int_ge(fcntl(fds[0], F_GETFD), 0);
    ck_assert_int_ge(fcntl(fds[1], F_GETFD), 0);
    close(fds[0]);
    close(fds[1]);

    /* Not taken: closed with the table. */
    int fd = sock(AF_INET, SOCK_DGRAM, "127.0.0.1", false);
    t = table(&fd, 1);
    ck_assert_int_eq(listen_fds_inspect(t, err, sizeof err), 0);
    listen_fds_free(t);
    ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
}
END_TEST

/* fd refused by inspect with an error holding want. */
static void refused(int fd, const char *want)
{
    struct listen_fds *t = table(&fd, 1);
    ck_assert_int_eq(listen_fds_inspect(t, err, sizeof err), -1);
    ck_assert_msg(strstr(err, want) != NULL, "want \"%s\" in: %s", want, err);
    char me[32];
    snprintf(me, sizeof me, "fd %d (web)", fd);
    ck_assert_msg(strstr(err, me) != NULL, "%s", err);
    listen_fds_free(t);
}

START_TEST(test_refused)
{
    refused(sock(AF_INET, SOCK_STREAM, "127.0.0.1", false), "not listening");
    refused(socket(AF_INET, SOCK_DGRAM, 0), "not bound");
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    refused(sv[0], "not an IPv4 or IPv6 socket");
    close(sv[1]);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    refused(p[0], "not a socket");
    close(p[1]);
    int raw = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP); /* ping socket */
    if (raw >= 0) {
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (bind(raw, (struct sockaddr *)&sa, sizeof sa) == 0)
            refused(raw, "neither TCP, UDP nor SCTP");
        else
            close(raw);
    }
}
END_TEST

/* [::] with IPV6_V6ONLY, as berth binds it itself, is taken; without it,
 * the socket would take IPv4 too, which berth's 0.0.0.0 mapping does. */
START_TEST(test_ipv6_wildcard)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return; /* no IPv6 here */
    int off = 0, on = 1;
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
    ck_assert_int_eq(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off), 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(fd, 8), 0);
    refused(fd, "IPV6_V6ONLY off");

    fd = socket(AF_INET6, SOCK_DGRAM, 0);
    ck_assert_int_eq(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on), 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct listen_fds *t = table(&fd, 1);
    ck_assert_msg(listen_fds_inspect(t, err, sizeof err) == 0, "%s", err);
    struct addr any;
    addr_from_ip(&any, "::", addr_port(&t->fds[0].addr));
    ck_assert_int_eq(listen_fds_take(t, &any, IPPROTO_UDP), fd);
    listen_fds_free(t);
    close(fd);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("listen_fds");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_not_for_us);
    tcase_add_test(tc, test_counts_and_names);
    tcase_add_test(tc, test_bad_values);
    tcase_add_test(tc, test_env_unset);
    tcase_add_test(tc, test_inspect_and_take);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_ipv6_wildcard);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return check_run(suite()); }
