/* systemd's notification protocol: datagrams to a socket the test binds in
 * place of systemd's (a path and an abstract name), nothing at all without
 * NOTIFY_SOCKET, the watchdog's variables and its timer. */
#include "check_run.h"
#include <check.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "berth/sd_notify.h"

/* The service manager's end: a datagram socket bound to name ("@x":
 * abstract, with the exact length systemd uses), NOTIFY_SOCKET set to it. */
static int manager_socket(const char *name)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    ck_assert_uint_lt(len, sizeof sa.sun_path);
    memcpy(sa.sun_path, name, len);
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (name[0] == '@')
        sa.sun_path[0] = '\0';
    else
        salen++, unlink(name);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, salen), 0);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", name, 1), 0);
    return fd;
}

/* The next datagram as a string ("" after the 2 s timeout). */
static const char *next_msg(int fd, char *buf, size_t size)
{
    ssize_t k = recv(fd, buf, size - 1, 0);
    buf[k > 0 ? k : 0] = '\0';
    return buf;
}

START_TEST(test_unset_is_a_no_op)
{
    unsetenv("NOTIFY_SOCKET");
    ck_assert_ptr_null(sd_notify_new());
    setenv("NOTIFY_SOCKET", "", 1);
    ck_assert_ptr_null(sd_notify_new());
    /* Every call takes the NULL of "no manager" and does nothing. */
    ck_assert_int_eq(sd_notify_ready(NULL, "x"), 0);
    ck_assert_int_eq(sd_notify_stopping(NULL), 0);
    ck_assert_int_eq(sd_notify_send(NULL, "WATCHDOG=1"), 0);
    setenv("WATCHDOG_USEC", "1000", 1);
    struct event_base *base = event_base_new();
    ck_assert_int_eq(sd_notify_watchdog_start(NULL, base), 0);
    event_base_free(base);
    sd_notify_free(NULL);
}
END_TEST

START_TEST(test_path_socket)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/berth-sdn-%d.sock", (int)getpid());
    int fd = manager_socket(path);
    /* The notifier's socket takes the lowest free number: this one. */
    int next = dup(0);
    close(next);
    struct sd_notifier *n = sd_notify_new();
    ck_assert_ptr_nonnull(n);
    /* Not inherited by what berth runs (nft, ssh). */
    ck_assert_int_ne(fcntl(next, F_GETFD) & FD_CLOEXEC, 0);
    char buf[512];
    ck_assert_int_eq(sd_notify_ready(n, "serving 3 ports"), 0);
    ck_assert_str_eq(next_msg(fd, buf, sizeof buf), "READY=1\nSTATUS=serving 3 ports");
    ck_assert_int_eq(sd_notify_ready(n, NULL), 0);
    ck_assert_str_eq(next_msg(fd, buf, sizeof buf), "READY=1");
    ck_assert_int_eq(sd_notify_stopping(n), 0);
    ck_assert_str_eq(next_msg(fd, buf, sizeof buf), "STOPPING=1\nSTATUS=stopping");
    /* Left set for whoever reads it next (unset_environment=0). */
    ck_assert_str_eq(getenv("NOTIFY_SOCKET"), path);
    sd_notify_free(n);
    close(fd);
    unlink(path);
}
END_TEST

/* A reload: RELOADING=1 stamped with CLOCK_MONOTONIC in µs, as
 * Type=notify-reload asks, between the clock read before and after. */
START_TEST(test_reloading)
{
    char name[64];
    snprintf(name, sizeof name, "@berth-sdn-reload-%d", (int)getpid());
    int fd = manager_socket(name);
    struct sd_notifier *n = sd_notify_new();
    ck_assert_ptr_nonnull(n);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(sd_notify_reloading(n), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    char buf[512];
    const char *got = next_msg(fd, buf, sizeof buf);
    unsigned long long usec = 0;
    char status[32] = "";
    ck_assert_int_eq(sscanf(got, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=%31s",
                            &usec, status),
                     2);
    ck_assert_str_eq(status, "reloading");
    ck_assert_uint_ge(usec, (unsigned long long)t0.tv_sec * 1000000ull +
                                (unsigned long long)t0.tv_nsec / 1000u);
    ck_assert_uint_le(usec, (unsigned long long)t1.tv_sec * 1000000ull +
                                (unsigned long long)t1.tv_nsec / 1000u);
    ck_assert_int_eq(sd_notify_ready(n, NULL), 0);
    ck_assert_str_eq(next_msg(fd, buf, sizeof buf), "READY=1");
    sd_notify_free(n);
    /* No manager: a no-op. */
    ck_assert_int_eq(sd_notify_reloading(NULL), 0);
    close(fd);
}
END_TEST

START_TEST(test_abstract_socket)
{
    char name[64];
    snprintf(name, sizeof name, "@berth-sdn-test-%d", (int)getpid());
    /* Bound with the exact length: a sender counting a trailing NUL would
     * name another socket and this receive would time out. */
    int fd = manager_socket(name);
    struct sd_notifier *n = sd_notify_new();
    ck_assert_ptr_nonnull(n);
    char buf[512];
    ck_assert_int_eq(sd_notify_ready(n, "abstract"), 0);
    ck_assert_str_eq(next_msg(fd, buf, sizeof buf), "READY=1\nSTATUS=abstract");
    sd_notify_free(n);
    close(fd);
}
END_TEST

START_TEST(test_long_status_keeps_ready)
{
    char name[64];
    snprintf(name, sizeof name, "@berth-sdn-long-%d", (int)getpid());
    int fd = manager_socket(name);
    struct sd_notifier *n = sd_notify_new();
    char status[1024], buf[2048];
    memset(status, 's', sizeof status - 1);
    status[sizeof status - 1] = '\0';
    ck_assert_int_eq(sd_notify_ready(n, status), 0);
    const char *got = next_msg(fd, buf, sizeof buf);
    ck_assert(strncmp(got, "READY=1\nSTATUS=sss", 18) == 0);
    sd_notify_free(n);
    close(fd);
}
END_TEST

START_TEST(test_unusable_names)
{
    const char *bad[] = {"relative/path", "notify"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("NOTIFY_SOCKET", bad[i], 1);
        ck_assert_ptr_null(sd_notify_new());
    }
    char longname[200];
    memset(longname, 'a', sizeof longname - 1);
    longname[0] = '/';
    longname[sizeof longname - 1] = '\0';
    setenv("NOTIFY_SOCKET", longname, 1);
    ck_assert_ptr_null(sd_notify_new());
    /* Nobody listening there: the send fails, said, survived. */
    setenv("NOTIFY_SOCKET", "/nonexistent/berth-notify.sock", 1);
    struct sd_notifier *n = sd_notify_new();
    ck_assert_ptr_nonnull(n);
    ck_assert_int_eq(sd_notify_ready(n, "x"), -1);
    ck_assert_int_eq(sd_notify_send(n, "WATCHDOG=1"), -1);
    sd_notify_free(n);
}
END_TEST

START_TEST(test_watchdog_variables)
{
    pid_t me = 4242;
    ck_assert_uint_eq(sd_notify_watchdog_usec("200000", NULL, me), 200000);
    ck_assert_uint_eq(sd_notify_watchdog_usec("200000", "", me), 200000);
    ck_assert_uint_eq(sd_notify_watchdog_usec("200000", "4242", me), 200000);
    /* The variables were meant for another process (our parent). */
    ck_assert_uint_eq(sd_notify_watchdog_usec("200000", "4243", me), 0);
    ck_assert_uint_eq(sd_notify_watchdog_usec("200000", "x", me), 0);
    ck_assert_uint_eq(sd_notify_watchdog_usec("200000", "-4242", me), 0);
    ck_assert_uint_eq(sd_notify_watchdog_usec(NULL, NULL, me), 0);
    ck_assert_uint_eq(sd_notify_watchdog_usec("", NULL, me), 0);
    ck_assert_uint_eq(sd_notify_watchdog_usec("0", NULL, me), 0);
    ck_assert_uint_eq(sd_notify_watchdog_usec("12abc", NULL, me), 0);
    ck_assert_uint_eq(sd_notify_watchdog_usec(" -1", NULL, me), 0);
    ck_assert_uint_eq(sd_notify_watchdog_usec("-1", NULL, me), 0);
    ck_assert_uint_eq(sd_notify_watchdog_usec("99999999999999999999999", NULL, me), 0);
}
END_TEST

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

START_TEST(test_watchdog_pings_from_the_loop)
{
    char name[64];
    snprintf(name, sizeof name, "@berth-sdn-wd-%d", (int)getpid());
    int fd = manager_socket(name);
    struct event_base *base = event_base_new();
    struct sd_notifier *n = sd_notify_new();
    unsetenv("WATCHDOG_USEC");
    ck_assert_int_eq(sd_notify_watchdog_start(n, base), 0);
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)getpid() + 1);
    setenv("WATCHDOG_USEC", "40000", 1);
    setenv("WATCHDOG_PID", pid, 1);
    ck_assert_int_eq(sd_notify_watchdog_start(n, base), 0); /* not ours */
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    ck_assert_int_eq(sd_notify_watchdog_start(n, base), 40000);
    /* 110 ms of loop at one ping per 20 ms: the first at once, then ~5. */
    struct event *stop = evtimer_new(base, on_stop, base);
    struct timeval tv = {.tv_usec = 110000};
    evtimer_add(stop, &tv);
    event_base_dispatch(base);
    int pings = 0;
    char buf[64];
    struct timeval none = {.tv_usec = 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    while (*next_msg(fd, buf, sizeof buf)) {
        ck_assert_str_eq(buf, "WATCHDOG=1");
        pings++;
    }
    ck_assert_int_ge(pings, 4);
    ck_assert_int_le(pings, 7);
    event_free(stop);
    sd_notify_free(n); /* frees its timer before the base goes */
    event_base_free(base);
    close(fd);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sd_notify");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_unset_is_a_no_op);
    tcase_add_test(tc, test_path_socket);
    tcase_add_test(tc, test_abstract_socket);
    tcase_add_test(tc, test_reloading);
    tcase_add_test(tc, test_long_status_keeps_ready);
    tcase_add_test(tc, test_unusable_names);
    tcase_add_test(tc, test_watchdog_variables);
    tcase_add_test(tc, test_watchdog_pings_from_the_loop);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return check_run(suite()); }
