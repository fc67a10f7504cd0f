/* Transparent mode's watch, with a scripted check in place of the host's
 * (no nft, no root): which kinds of packets it checks as mappings come,
 * with which targets; the verdicts copied into the relay context; each
 * finding logged once however often it is checked again; the re-check
 * armed only while something is broken and never when once-only. */
#include "check_run.h"

#include "berth/relay.h"
#include "berth/tproxy_watch.h"
#include "looptest.h"

/* Short, so a test sees re-checks happen; long next to one pump pass. */
#define RECHECK_MS 30

/* The scripted host: what each check answers, and what it was asked. */
struct fake {
    enum tproxy_result result[4];
    const char *why[4];
    int calls;
    unsigned need;         /* the last check's */
    struct addr target[2]; /* the last check's (len 0: none) */
};

static void fake_check(void *arg, unsigned need, const struct addr *const targets[2],
                       struct tproxy_report *rep)
{
    struct fake *f = arg;
    f->calls++;
    f->need = need;
    for (int v6 = 0; v6 < 2; v6++) {
        memset(&f->target[v6], 0, sizeof f->target[v6]);
        if (targets && targets[v6])
            f->target[v6] = *targets[v6];
    }
    memset(rep, 0, sizeof *rep);
    for (unsigned i = 0; i < 4; i++) {
        if (!(need & 1u << i))
            continue;
        rep->result[i] = f->result[i];
        snprintf(rep->why[i], sizeof rep->why[i], "%s", f->why[i] ? f->why[i] : "ok");
    }
}

static void script(struct fake *f, enum tproxy_result r, const char *why)
{
    for (unsigned i = 0; i < 4; i++) {
        f->result[i] = r;
        f->why[i] = why;
    }
}

struct fx {
    struct event_base *base;
    struct relay_ctx *ctx;
    struct tproxy_watch *w;
    struct fake fake;
    FILE *log; /* stderr while the test runs */
    int saved_stderr;
};

static void fx_init(struct fx *x, unsigned recheck_ms)
{
    memset(x, 0, sizeof *x);
    log_set_level(LOG_INFO);
    x->base = event_base_new();
    ck_assert_ptr_nonnull(x->base);
    x->ctx = relay_ctx_new(x->base, NULL);
    ck_assert_ptr_nonnull(x->ctx);
    x->w = tproxy_watch_new(x->base, x->ctx, recheck_ms, fake_check, &x->fake);
    ck_assert_ptr_nonnull(x->w);
    x->log = tmpfile();
    ck_assert_ptr_nonnull(x->log);
    fflush(stderr);
    x->saved_stderr = dup(2);
    dup2(fileno(x->log), 2);
}

static void fx_done(struct fx *x)
{
    fflush(stderr);
    dup2(x->saved_stderr, 2);
    close(x->saved_stderr);
    fclose(x->log);
    tproxy_watch_free(x->w);
    relay_ctx_free(x->ctx);
    event_base_free(x->base);
}

/* How many logged lines so far hold text. */
static int logged(struct fx *x, const char *text)
{
    fflush(stderr);
    char buf[16384];
    rewind(x->log);
    size_t n = fread(buf, 1, sizeof buf - 1, x->log);
    buf[n] = '\0';
    fseek(x->log, 0, SEEK_END);
    int count = 0;
    for (const char *p = buf; (p = strstr(p, text)); p += strlen(text))
        count++;
    return count;
}

static struct mapping mapping(enum proto proto, const char *target, bool transparent)
{
    struct mapping m;
    memset(&m, 0, sizeof m);
    m.proto = proto;
    m.listen = t_addr(strchr(target, ':') ? "::" : "0.0.0.0", 8080);
    m.target = t_addr(target, 80);
    m.transparent = transparent;
    snprintf(m.label, sizeof m.label, "test->%s", target);
    return m;
}

START_TEST(test_kinds_checked_as_ports_come)
{
    struct fx x;
    fx_init(&x, RECHECK_MS);
    /* Not transparent: nothing to check. */
    struct mapping plain = mapping(PROTO_TCP, "10.0.0.2", false);
    ck_assert_uint_eq(tproxy_watch_note(x.w, &plain), 0);
    tproxy_watch_add(x.w, 0);
    ck_assert_int_eq(x.fake.calls, 0);

    struct mapping tcp4 = mapping(PROTO_TCP, "10.0.0.2", true);
    ck_assert_uint_eq(tproxy_watch_note(x.w, &tcp4), TPROXY_TCP4);
    tproxy_watch_add(x.w, TPROXY_TCP4);
    ck_assert_int_eq(x.fake.calls, 1);
    ck_assert_uint_eq(x.fake.need, TPROXY_TCP4);
    ck_assert(addr_equal(&x.fake.target[0], &tcp4.target));
    ck_assert_uint_eq(x.fake.target[1].len, 0);

    /* Covered already: no new check, the first target stays. */
    struct mapping tcp4b = mapping(PROTO_TCP, "10.0.0.3", true);
    ck_assert_uint_eq(tproxy_watch_note(x.w, &tcp4b), 0);
    tproxy_watch_add(x.w, TPROXY_TCP4);
    ck_assert_int_eq(x.fake.calls, 1);

    /* A name target: IPv4, what it resolves to first; no target known. */
    struct mapping named = mapping(PROTO_UDP, "10.0.0.4", true);
    memset(&named.target, 0, sizeof named.target);
    snprintf(named.target_name, sizeof named.target_name, "web");
    ck_assert_uint_eq(tproxy_watch_note(x.w, &named), TPROXY_UDP4);

    /* A UDP port to an IPv6 target: every kind covered so far again. */
    struct mapping udp6 = mapping(PROTO_UDP, "2001:db8::5", true);
    ck_assert_uint_eq(tproxy_watch_note(x.w, &udp6), TPROXY_UDP6);
    tproxy_watch_add(x.w, TPROXY_UDP4 | TPROXY_UDP6);
    ck_assert_int_eq(x.fake.calls, 2);
    ck_assert_uint_eq(x.fake.need, TPROXY_TCP4 | TPROXY_UDP4 | TPROXY_UDP6);
    ck_assert_uint_eq(tproxy_watch_covered(x.w),
                      TPROXY_TCP4 | TPROXY_UDP4 | TPROXY_UDP6);
    ck_assert(addr_equal(&x.fake.target[0], &tcp4.target));
    ck_assert(addr_equal(&x.fake.target[1], &udp6.target));
    fx_done(&x);
}
END_TEST

START_TEST(test_verdicts_copied)
{
    struct fx x;
    fx_init(&x, RECHECK_MS);
    x.fake.result[0] = TPROXY_BROKEN; /* TCP/IPv4 */
    x.fake.why[0] = "no marking rule";
    x.fake.result[3] = TPROXY_WORKS; /* UDP/IPv6 */
    x.fake.why[3] = "mark 0x1 works";
    x.fake.result[1] = TPROXY_UNKNOWN; /* UDP/IPv4: not broken, warned */
    x.fake.why[1] = "nft is not installed";
    tproxy_watch_add(x.w, TPROXY_TCP4 | TPROXY_UDP4 | TPROXY_UDP6);
    ck_assert_str_eq(x.ctx->transparent_broken[0][0], "no marking rule");
    ck_assert_str_eq(x.ctx->transparent_broken[0][1], "");
    ck_assert_str_eq(x.ctx->transparent_broken[1][1], "");
    ck_assert_int_eq(logged(&x, "transparent mode cannot work: no marking rule; "
                                "transparent mappings of TCP/IPv4 connect"),
                     1);
    ck_assert_int_eq(logged(&x,
                            "transparent mode: nft is not installed; for UDP/IPv4"),
                     1);
    ck_assert_int_eq(logged(&x, "transparent mode: mark 0x1 works, for UDP/IPv6"), 1);

    /* Fixed: the verdict clears, said as news. */
    script(&x.fake, TPROXY_WORKS, "mark 0x1 works");
    ck_assert(PUMP_UNTIL(x.base, 2000, x.fake.calls == 2));
    ck_assert_str_eq(x.ctx->transparent_broken[0][0], "");
    ck_assert_int_eq(
        logged(&x, "transparent mode works now: mark 0x1 works, for TCP/IPv4"), 1);
    fx_done(&x);
}
END_TEST

/* Kinds with one finding share a line; the same finding re-checked is not
 * said again; a new reason is. */
START_TEST(test_finding_logged_once)
{
    struct fx x;
    fx_init(&x, RECHECK_MS);
    script(&x.fake, TPROXY_BROKEN, "no ip rule");
    tproxy_watch_add(x.w, TPROXY_TCP4 | TPROXY_UDP4);
    ck_assert_int_eq(logged(&x, "cannot work: no ip rule"), 1);
    ck_assert_int_eq(logged(&x, "transparent mappings of TCP/IPv4, UDP/IPv4 connect"),
                     1);
    ck_assert(PUMP_UNTIL(x.base, 2000, x.fake.calls >= 4));
    ck_assert_int_eq(logged(&x, "cannot work"), 1);

    x.fake.why[0] = x.fake.why[1] = "no marking rule";
    int calls = x.fake.calls;
    ck_assert(PUMP_UNTIL(x.base, 2000, x.fake.calls >= calls + 3));
    ck_assert_int_eq(logged(&x, "cannot work: no marking rule"), 1);
    ck_assert_int_eq(logged(&x, "cannot work"), 2);
    fx_done(&x);
}
END_TEST

START_TEST(test_recheck_only_while_broken)
{
    struct fx x;
    fx_init(&x, RECHECK_MS);
    script(&x.fake, TPROXY_WORKS, "mark 0x1 works");
    tproxy_watch_add(x.w, TPROXY_TCP4);
    ck_assert(!tproxy_watch_rechecking(x.w));
    t_pump_for(x.base, 3 * RECHECK_MS);
    ck_assert_int_eq(x.fake.calls, 1);

    /* A kind that fails arms it: checked again until it works. */
    x.fake.result[2] = TPROXY_BROKEN;
    x.fake.why[2] = "no IPv6 route";
    tproxy_watch_add(x.w, TPROXY_TCP6);
    ck_assert_int_eq(x.fake.calls, 2);
    ck_assert(tproxy_watch_rechecking(x.w));
    ck_assert(PUMP_UNTIL(x.base, 2000, x.fake.calls >= 4));
    ck_assert_uint_eq(x.fake.need, TPROXY_TCP4 | TPROXY_TCP6);
    ck_assert(tproxy_watch_rechecking(x.w));

    x.fake.result[2] = TPROXY_WORKS;
    int calls = x.fake.calls;
    ck_assert(PUMP_UNTIL(x.base, 2000, x.fake.calls > calls));
    ck_assert(!tproxy_watch_rechecking(x.w));
    calls = x.fake.calls;
    t_pump_for(x.base, 4 * RECHECK_MS);
    ck_assert_int_eq(x.fake.calls, calls);

    /* Not known is not broken: no re-check either. */
    x.fake.result[1] = TPROXY_UNKNOWN;
    x.fake.why[1] = "nft did not answer in 2 s";
    tproxy_watch_add(x.w, TPROXY_UDP4);
    ck_assert(!tproxy_watch_rechecking(x.w));
    fx_done(&x);
}
END_TEST

START_TEST(test_once_only_never_rechecks)
{
    struct fx x;
    fx_init(&x, RECHECK_MS);
    tproxy_watch_set_once(x.w, true);
    script(&x.fake, TPROXY_BROKEN, "no CAP_NET_ADMIN");
    tproxy_watch_add(x.w, TPROXY_TCP4);
    ck_assert_int_eq(x.fake.calls, 1);
    ck_assert(!tproxy_watch_rechecking(x.w));
    t_pump_for(x.base, 4 * RECHECK_MS);
    ck_assert_int_eq(x.fake.calls, 1);
    ck_assert_str_eq(x.ctx->transparent_broken[0][0], "no CAP_NET_ADMIN");
    /* A new kind is still checked, once. */
    tproxy_watch_add(x.w, TPROXY_UDP4);
    ck_assert_int_eq(x.fake.calls, 2);
    ck_assert(!tproxy_watch_rechecking(x.w));
    ck_assert_int_eq(logged(&x, "cannot work: no CAP_NET_ADMIN"), 2);
    fx_done(&x);
}
END_TEST

/* Made once-only while a re-check is due: that one runs, no more. */
START_TEST(test_once_only_stops_rechecks)
{
    struct fx x;
    fx_init(&x, RECHECK_MS);
    script(&x.fake, TPROXY_BROKEN, "no ip rule");
    tproxy_watch_add(x.w, TPROXY_TCP4);
    ck_assert(tproxy_watch_rechecking(x.w));
    tproxy_watch_set_once(x.w, true);
    ck_assert(PUMP_UNTIL(x.base, 2000, x.fake.calls == 2));
    ck_assert(!tproxy_watch_rechecking(x.w));
    t_pump_for(x.base, 4 * RECHECK_MS);
    ck_assert_int_eq(x.fake.calls, 2);
    fx_done(&x);
}
END_TEST

/* The default check is the host's: it answers for every kind asked. */
START_TEST(test_default_check_is_the_hosts)
{
    struct event_base *base = event_base_new();
    struct relay_ctx *ctx = relay_ctx_new(base, NULL);
    struct tproxy_watch *w = tproxy_watch_new(base, ctx, 60000, NULL, NULL);
    ck_assert_ptr_nonnull(w);
    tproxy_watch_set_once(w, true);
    tproxy_watch_add(w, TPROXY_TCP4);
    ck_assert_uint_eq(tproxy_watch_covered(w), TPROXY_TCP4);
    ck_assert(!tproxy_watch_rechecking(w));
    tproxy_watch_free(w);
    tproxy_watch_free(NULL);
    relay_ctx_free(ctx);
    event_base_free(base);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tproxy_watch");
    TCase *tc = tcase_create("watch");
    t_tcase_timeout(tc, 15);
    tcase_add_test(tc, test_kinds_checked_as_ports_come);
    tcase_add_test(tc, test_verdicts_copied);
    tcase_add_test(tc, test_finding_logged_once);
    tcase_add_test(tc, test_recheck_only_while_broken);
    tcase_add_test(tc, test_once_only_never_rechecks);
    tcase_add_test(tc, test_once_only_stops_rechecks);
    tcase_add_test(tc, test_default_check_is_the_hosts);
    suite_add_tcase(s, tc);
    return check_run(s);
}
