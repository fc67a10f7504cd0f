/* Connecting to a name's replicas in process: a replica that refuses or
 * stays silent passes the client on and is passed over by later
 * connections, one budget bounds all tries, the only replica is tried
 * anyway, and berth's own shortage of fds blames no replica. The replicas
 * are loopback addresses 127.0.0.2.. in a registry filled by hand. */
#include "check_run.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>

#include "berth/registry.h"
#include "testnet.h"

static struct addr local_of(int fd)
{
    struct addr a;
    a.len = sizeof a.ss;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a.ss, &a.len), 0);
    return a;
}

enum replica_mode {
    LISTENS,
    REFUSES, /* nothing listens */
    SILENT,  /* a full backlog: SYNs dropped, connect times out */
};

#define REPLICAS_MAX 3

struct names {
    struct relay_fx f;
    struct registry *reg;
    uint16_t port;
    int n;
    enum replica_mode mode[REPLICAS_MAX];
    int lfd[REPLICAS_MAX];     /* -1 for REFUSES */
    int fill[REPLICAS_MAX][4]; /* SILENT: what fills the backlog */
};

static struct addr replica_addr(int i, uint16_t port)
{
    char ip[32];
    snprintf(ip, sizeof ip, "127.0.0.%d", 2 + i);
    return t_addr(ip, port);
}

/* Listens on replica i's address, or only fills the backlog (SILENT). */
static int replica_listen(struct names *x, int i, enum replica_mode mode)
{
    struct addr a = replica_addr(i, x->port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_msg(bind(fd, (struct sockaddr *)&a.ss, a.len) == 0, "bind: %s",
                  strerror(errno));
    ck_assert_int_eq(listen(fd, mode == SILENT ? 0 : 64), 0);
    struct addr bound = local_of(fd);
    if (!x->port) /* the first picks the port, the others share it */
        x->port = addr_port(&bound);
    if (mode == SILENT)
        for (int k = 0; k < 4; k++)
            x->fill[i][k] = t_connect(&bound);
    return fd;
}

/* "api.lab": replicas lab_api_1..n at 127.0.0.2.., one port, each as
 * modes[i] says, published through berth on 127.0.0.1. */
static void names_start(struct names *x, const enum replica_mode *modes, int n,
                        void (*tune)(struct relay_ctx *))
{
    memset(x, 0, sizeof *x);
    x->n = n;
    x->reg = registry_new();
    ck_assert_ptr_nonnull(x->reg);
    bool silent = false;
    for (int i = 0; i < n; i++) {
        x->mode[i] = modes[i];
        x->lfd[i] = replica_listen(x, i, modes[i]);
        if (modes[i] == REFUSES) { /* the port was needed, the listener not */
            close(x->lfd[i]);
            x->lfd[i] = -1;
        }
        silent |= modes[i] == SILENT;
        char id[65], name[32];
        snprintf(id, sizeof id, "%064d", i + 1);
        snprintf(name, sizeof name, "lab_api_%d", i + 1);
        struct addr a = replica_addr(i, 0);
        struct reg_endpoint ep = {.network = "lab_default", .has_v4 = true};
        ep.v4 = ((struct sockaddr_in *)&a.ss)->sin_addr;
        struct reg_container c = {.id = id,
                                  .name = name,
                                  .project = "lab",
                                  .service = "api",
                                  .number = i + 1,
                                  .eps = &ep,
                                  .neps = 1};
        ck_assert_int_eq(registry_put(x->reg, &c), 0);
    }
    if (silent)
        t_settle(100);
    struct relay_fx *f = &x->f;
    f->base = berth_event_base_new();
    struct addr l = t_addr("127.0.0.1", 0);
    ck_assert_int_eq(plan_add_named(&f->plan, PROTO_TCP, &l, "api.lab", x->port), 0);
    f->plan.udp_timeout = 90;
    f->b = berth_new(f->base, &f->plan, x->reg);
    ck_assert_ptr_nonnull(f->b);
    if (tune)
        tune(berth_ctx(f->b));
    char err[256];
    ck_assert_msg(berth_start(f->b, NULL, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(berth_local_addr(f->b, 0, &f->front), 0);
}

static void names_stop(struct names *x)
{
    relay_fx_stop(&x->f);
    for (int i = 0; i < x->n; i++) {
        if (x->lfd[i] >= 0)
            close(x->lfd[i]);
        for (int k = 0; k < 4; k++)
            if (x->fill[i][k] > 0)
                close(x->fill[i][k]);
    }
    registry_free(x->reg);
}

/* A connection through berth, accepted by whichever replica it reached;
 * -1 when the client was reset instead. */
static int through(struct names *x, int *client, int *replica)
{
    *client = t_connect(&x->f.front);
    int b = -1;
    char buf[1];
    ssize_t r = -1;
    PUMP_UNTIL(x->f.base, 5000, ({
                   for (int i = 0; i < x->n && b < 0; i++)
                       if (x->mode[i] == LISTENS &&
                           (b = accept4(x->lfd[i], NULL, NULL, SOCK_NONBLOCK)) >= 0)
                           *replica = i;
                   b >= 0 || (r = recv(*client, buf, 1, MSG_DONTWAIT)) >= 0 ||
                       errno != EAGAIN;
               }));
    ck_assert_msg(b >= 0 || (r < 0 && errno == ECONNRESET),
                  "neither accepted nor reset");
    return b;
}

static void budget_1800ms(struct relay_ctx *ctx)
{
    ctx->connect_timeout = (struct timeval){1, 800000};
}

/* A replica that does not answer costs one connection its share of the
 * budget (600 ms of 1800 with three replicas); later ones pass it over and
 * are served at once. Without that, every third would wait. */
START_TEST(test_silent_replica_passed_over)
{
    struct names x;
    const enum replica_mode modes[] = {LISTENS, SILENT, LISTENS};
    names_start(&x, modes, 3, budget_1800ms);
    int slow = 0;
    for (int i = 0; i < 9; i++) {
        int c, which = -1;
        uint64_t t0 = t_now_ms();
        int b = through(&x, &c, &which);
        uint64_t took = t_now_ms() - t0;
        ck_assert_int_ge(b, 0);
        ck_assert_int_ne(which, 1);
        t_transfer(x.f.base, c, b, 100);
        slow += took >= 450;
        close(c);
        close(b);
        ck_assert(PUMP_UNTIL(x.f.base, 3000, berth_tcp_sessions(x.f.b) == 0));
    }
    ck_assert_int_eq(slow, 1);
    names_stop(&x);
}
END_TEST

static void budget_600ms(struct relay_ctx *ctx)
{
    ctx->connect_timeout = (struct timeval){0, 600000};
}

/* No replica answers: the client is reset when the one budget is spent,
 * not after a full timeout per replica. Every replica is passed over then,
 * and the next connection still tries them all. */
START_TEST(test_budget_spans_replicas)
{
    struct names x;
    const enum replica_mode modes[] = {SILENT, SILENT, SILENT};
    names_start(&x, modes, 3, budget_600ms);
    for (int round = 0; round < 2; round++) {
        int c, which;
        uint64_t t0 = t_now_ms();
        ck_assert_int_lt(through(&x, &c, &which), 0);
        uint64_t took = t_now_ms() - t0;
        ck_assert_msg(took >= 550 && took < 1200, "round %d: reset after %llu ms",
                      round, (unsigned long long)took);
        close(c);
    }
    ck_assert_uint_eq(berth_tcp_sessions(x.f.b), 0);
    names_stop(&x);
}
END_TEST

/* Where replica i stands in the next resolution of the published name. */
static int rank_of(struct names *x, int i, unsigned rr)
{
    struct addr a[8], want = replica_addr(i, x->port);
    size_t n = relay_resolve(berth_ctx(x->f.b), &x->f.plan.maps[0], &rr, a, 8);
    for (size_t k = 0; k < n; k++)
        if (addr_equal(&a[k], &want))
            return (int)k;
    return -1;
}

/* A refusing replica: the client never notices, and the replica goes
 * last for later connections, whatever the rotation. */
START_TEST(test_refusing_replica_passed_over)
{
    struct names x;
    const enum replica_mode modes[] = {LISTENS, REFUSES, LISTENS};
    names_start(&x, modes, 3, NULL);
    for (int i = 0; i < 6; i++) {
        int c, which = -1;
        int b = through(&x, &c, &which);
        ck_assert_int_ge(b, 0);
        t_transfer(x.f.base, b, c, 10);
        close(c);
        close(b);
    }
    for (unsigned rr = 0; rr < 3; rr++)
        ck_assert_int_eq(rank_of(&x, 1, rr), 2);
    ck_assert_int_eq(rank_of(&x, 0, 0), 0);
    names_stop(&x);
}
END_TEST

/* The only replica is tried even while passed over. */
START_TEST(test_only_replica_tried_anyway)
{
    struct names x;
    const enum replica_mode modes[] = {REFUSES};
    names_start(&x, modes, 1, NULL);
    int c, which;
    ck_assert_int_lt(through(&x, &c, &which), 0);
    close(c);
    x.lfd[0] = replica_listen(&x, 0, LISTENS); /* back */
    x.mode[0] = LISTENS;
    int b = through(&x, &c, &which);
    ck_assert_int_ge(b, 0);
    t_transfer(x.f.base, c, b, 10);
    close(c);
    close(b);
    names_stop(&x);
}
END_TEST

/* berth out of fds when it opens the target's socket: the client is reset,
 * the log says it is berth's shortage, and no replica is passed over. */
START_TEST(test_own_shortage_blames_no_replica)
{
    struct names x;
    const enum replica_mode modes[] = {LISTENS, LISTENS};
    names_start(&x, modes, 2, NULL);
    FILE *log = tmpfile();
    ck_assert_ptr_nonnull(log);
    int saved_stderr = dup(2);
    int c = t_connect(&x.f.front);
    t_settle(50);
    int lowest = dup(0); /* accept takes this, socket() would take the next */
    close(lowest);
    struct rlimit old, low;
    getrlimit(RLIMIT_NOFILE, &old);
    low = old;
    low.rlim_cur = (rlim_t)lowest + 1;
    fflush(stderr);
    dup2(fileno(log), 2);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    char buf[4];
    ssize_t r = t_recv(x.f.base, c, buf, sizeof buf, 3000);
    int err = errno;
    setrlimit(RLIMIT_NOFILE, &old);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    ck_assert_int_eq(r, -1);
    ck_assert_int_eq(err, ECONNRESET);
    close(c);
    char text[4096] = "";
    rewind(log);
    size_t len = fread(text, 1, sizeof text - 1, log);
    text[len] = '\0';
    fclose(log);
    ck_assert_msg(strstr(text,
                         "berth is out of file descriptors (Too many open files)"),
                  "log: %s", text);
    ck_assert_ptr_null(berth_ctx(x.f.b)->passed);
    /* With fds again, the same replicas serve. */
    int which, b = through(&x, &c, &which);
    ck_assert_int_ge(b, 0);
    close(c);
    close(b);
    names_stop(&x);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tcp_connect");
    TCase *tc = tcase_create("replicas");
    t_tcase_timeout(tc, 60);
    tcase_add_test(tc, test_silent_replica_passed_over);
    tcase_add_test(tc, test_budget_spans_replicas);
    tcase_add_test(tc, test_refusing_replica_passed_over);
    tcase_add_test(tc, test_only_replica_tried_anyway);
    tcase_add_test(tc, test_own_shortage_blames_no_replica);
    suite_add_tcase(s, tc);
    return check_run(s);
}
