/* Bounded staleness in DNS: a registry marked stale withdraws container
 * names with SERVFAIL (not NXDOMAIN, which resolvers would cache as "no
 * such name") and answers no PTR from itself; the zone's apex and other
 * names are unaffected; all comes back once it is current again. */
#include "check_run.h"
#include <check.h>
#include <stdlib.h>

#include "dnsfx.h"

static uint8_t buf[65536];

START_TEST(test_stale_withdraws_names)
{
    struct dns_fx f;
    struct dns_options o = {.ttl = 5};
    dns_fx_start(&f, &o);
    t_put(f.reg, "a100000000000000000000000000000000000000000000000000000000000000",
          "web", NULL, NULL, 0, "bridge", "172.17.0.2", NULL, NULL);
    struct t_reply *r = t_ask(&f, "web.docker", DNS_T_A, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->rcode, DNS_NOERROR);
    ck_assert_uint_eq(r->an, 1);
    free(r);

    registry_set_stale(f.reg, true);
    const char *names[] = {"web.docker", "WEB.docker", "nope.docker", "bridge.docker"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        r = t_ask(&f, names[i], DNS_T_A, 1232, buf, sizeof buf);
        ck_assert_msg(r->rcode == DNS_SERVFAIL, "%s: rcode %u", names[i], r->rcode);
        ck_assert_uint_eq(r->an, 0);
        ck_assert_str_eq(r->qname, names[i]);
        ck_assert(r->has_opt); /* EDNS still echoed */
        free(r);
    }
    /* The apex is berth's own, not the engine's: still answered. */
    r = t_ask(&f, "docker", DNS_T_SOA, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->rcode, DNS_NOERROR);
    ck_assert_uint_eq(r->an, 1);
    free(r);
    /* A container's PTR is not answered from the stale table: it goes
     * upstream (here a refusing one, so SERVFAIL), never "web.docker". */
    r = t_ask(&f, "2.0.17.172.in-addr.arpa", DNS_T_PTR, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->an, 0);
    ck_assert_uint_eq(r->rcode, DNS_SERVFAIL);
    free(r);

    registry_set_stale(f.reg, false);
    r = t_ask(&f, "web.docker", DNS_T_A, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->rcode, DNS_NOERROR);
    ck_assert_uint_eq(r->an, 1);
    free(r);
    r = t_ask(&f, "2.0.17.172.in-addr.arpa", DNS_T_PTR, -1, buf, sizeof buf);
    ck_assert_uint_eq(r->an, 1);
    free(r);
    dns_fx_stop(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dns_stale");
    TCase *tc = tcase_create("dns_stale");
    t_tcase_timeout(tc, 30);
    tcase_add_test(tc, test_stale_withdraws_names);
    suite_add_tcase(s, tc);
    return check_run(s);
}
