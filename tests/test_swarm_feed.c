/* A round fed from the engine's answers, element by element and whole:
 * overlays attached or not by this host's own addresses (127.0.0.0/8 is
 * on lo; a test network on none of this host's interfaces), the routing mesh left out, each
 * kind of element landing in the round, errors named, bounds kept. */
#include "check_run.h"
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "berth/swarm_feed.h"

#define S(x) x, strlen(x)

static char err[256];

START_TEST(test_networks_attached_by_address)
{
    struct swarm_round *r = swarm_round_new();
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(
        swarm_feed_elem(r, SWARM_NETWORKS,
                        S("{\"Name\":\"lo_net\",\"Id\":\"a\",\"IPAM\":{\"Config\":"
                          "[{\"Subnet\":\"127.0.0.0/8\"}]}}"),
                        err, sizeof err),
        0);
    /* A subnet none of this host's interfaces is in (test networks may be
     * in use here: the first that is not). */
    const char *far[] = {"198.51.100.0", "203.0.113.0", "10.254.253.0"}, *pick = NULL;
    for (size_t i = 0; i < 3 && !pick; i++) {
        struct addr net;
        ck_assert_int_eq(addr_from_ip(&net, far[i], 0), 0);
        if (!sock_host_in_subnet(&net, 24))
            pick = far[i];
    }
    ck_assert_ptr_nonnull(pick);
    char e[256];
    snprintf(
        e, sizeof e,
        "{\"Name\":\"far\",\"Id\":\"b\",\"IPAM\":{\"Config\":[{\"Subnet\":\"%s/24\"}]}}",
        pick);
    ck_assert_int_eq(swarm_feed_elem(r, SWARM_NETWORKS, S(e), err, sizeof err), 0);
    ck_assert_int_eq(
        swarm_feed_elem(r, SWARM_NETWORKS,
                        S("{\"Name\":\"ingress\",\"Id\":\"c\",\"Ingress\":true,"
                          "\"IPAM\":{\"Config\":[{\"Subnet\":\"127.0.0.0/8\"}]}}"),
                        err, sizeof err),
        0);
    ck_assert_uint_eq(swarm_round_networks(r), 2);
    bool on;
    ck_assert_str_eq(swarm_round_network(r, 0, &on)->name, "lo_net");
    ck_assert(on);
    ck_assert_str_eq(swarm_round_network(r, 1, &on)->name, "far");
    ck_assert(!on);
    ck_assert_int_eq(swarm_feed_elem(r, SWARM_NETWORKS, S("{\"Name\":1}"), err,
                                     sizeof err),
                     -1);
    ck_assert_str_eq(err, "network: no Id or Name, or one too long");
    swarm_round_free(r);
}
END_TEST

/* Every kind fed, then applied: the names answer what was fed. */
START_TEST(test_every_kind_then_applied)
{
    struct swarm_round *r = swarm_round_new();
    struct swarm_held *h = swarm_held_new();
    struct registry *reg = registry_new();
    ck_assert(r && h && reg);
    ck_assert_int_eq(
        swarm_feed_elem(r, SWARM_NETWORKS,
                        S("{\"Name\":\"lab_net\",\"Id\":\"n1\",\"IPAM\":{\"Config\":"
                          "[{\"Subnet\":\"127.0.0.0/8\"}]}}"),
                        err, sizeof err),
        0);
    ck_assert_int_eq(
        swarm_feed_elem(
            r, SWARM_SERVICES,
            S("{\"ID\":\"W\",\"Spec\":{\"Name\":\"lab_web\",\"Labels\":{"
              "\"com.docker.stack.namespace\":\"lab\"},\"EndpointSpec\":{\"Mode\":"
              "\"dnsrr\"}}}"),
            err, sizeof err),
        0);
    ck_assert_int_eq(
        swarm_feed_elem(r, SWARM_NODES,
                        S("{\"ID\":\"node\",\"Status\":{\"State\":\"ready\"}}"), err,
                        sizeof err),
        0);
#define TASK                                                                          \
    "{\"ID\":\"t%d\",\"ServiceID\":\"W\",\"NodeID\":\"node\",\"Slot\":%d,"            \
    "\"Status\":{\"State\":\"running\"},\"DesiredState\":\"running\","                \
    "\"NetworksAttachments\":[{\"Network\":{\"ID\":\"n1\"},\"Addresses\":"            \
    "[\"127.0.7.%d/8\"]}]}"
    for (int i = 1; i <= 3; i++) {
        char e[512];
        snprintf(e, sizeof e, TASK, i, i, i);
        ck_assert_int_eq(swarm_feed_elem(r, SWARM_TASKS, S(e), err, sizeof err), 0);
    }
    /* A task that is not running is no error, and not fed. */
    ck_assert_int_eq(
        swarm_feed_elem(r, SWARM_TASKS,
                        S("{\"ID\":\"t9\",\"ServiceID\":\"W\",\"Status\":{\"State\":"
                          "\"failed\"},\"DesiredState\":\"shutdown\"}"),
                        err, sizeof err),
        0);
    ck_assert_int_eq(swarm_feed_body(r, SWARM_GATEWAY,
                                     S("{\"Containers\":{\"c1\":{\"IPv4Address\":"
                                       "\"172.18.0.3/16\"}}}"),
                                     err, sizeof err),
                     0);
    struct swarm_outcome out;
    ck_assert_int_eq(swarm_round_apply(r, h, reg, &out), 0);
    ck_assert_uint_eq(out.tasks, 3);
    struct addr a[4];
    ck_assert_int_eq(registry_resolve(reg, S("web.lab"), AF_INET, a, 4), 3);
    ck_assert_int_eq(registry_resolve(reg, S("3.web.lab"), AF_INET, a, 4), 1);
    /* The wrong call for a kind, and a body that is no object. */
    ck_assert_int_eq(swarm_feed_elem(r, SWARM_VIEW, S("{}"), err, sizeof err), -1);
    ck_assert_str_eq(err, "not a list answer");
    ck_assert_int_eq(swarm_feed_body(r, SWARM_TASKS, S("{}"), err, sizeof err), -1);
    ck_assert_str_eq(err, "not a whole answer");
    ck_assert_int_eq(swarm_feed_body(r, SWARM_VIEW, S("[]"), err, sizeof err), -1);
    ck_assert_str_eq(err, "network view: not a JSON object");
    swarm_held_free(h, reg);
    ck_assert_uint_eq(registry_count(reg), 0);
    registry_free(reg);
    swarm_round_free(r);
}
END_TEST

/* A worker's view has no labels: a service on the network of stack lab is
 * lab's by its "lab_" prefix, another stack's by the prefix of a network
 * that stack made, and one outside stacks is named by itself. */
START_TEST(test_view_stacks)
{
    struct swarm_round *r = swarm_round_new();
    struct swarm_held *h = swarm_held_new();
    struct registry *reg = registry_new();
    ck_assert(r && h && reg);
    ck_assert_int_eq(
        swarm_feed_elem(r, SWARM_NETWORKS,
                        S("{\"Name\":\"lab_net\",\"Id\":\"n1\",\"Labels\":{"
                          "\"com.docker.stack.namespace\":\"lab\"},\"IPAM\":{"
                          "\"Config\":[{\"Subnet\":\"127.0.0.0/8\"}]}}"),
                        err, sizeof err),
        0);
    ck_assert_int_eq(
        swarm_feed_elem(r, SWARM_NETWORKS,
                        S("{\"Name\":\"other_default\",\"Id\":\"n2\",\"Labels\":"
                          "{\"com.docker.stack.namespace\":\"other\"}}"),
                        err, sizeof err),
        0);
    ck_assert_int_eq(
        swarm_feed_body(
            r, SWARM_VIEW,
            S("{\"Name\":\"lab_net\",\"Id\":\"n1\",\"Labels\":{"
              "\"com.docker.stack.namespace\":\"lab\"},\"Services\":{"
              "\"lab_web\":{\"VIP\":\"\",\"Tasks\":[{\"Name\":\"lab_web.1.a\","
              "\"EndpointIP\":\"127.0.8.1\"}]},"
              "\"other_api\":{\"VIP\":\"\",\"Tasks\":[{\"Name\":\"other_api.1.b\","
              "\"EndpointIP\":\"127.0.8.2\"}]},"
              "\"solo\":{\"VIP\":\"\",\"Tasks\":[{\"Name\":\"solo.1.c\","
              "\"EndpointIP\":\"127.0.8.3\"}]}}}"),
            err, sizeof err),
        0);
    struct swarm_outcome out;
    ck_assert_int_eq(swarm_round_apply(r, h, reg, &out), 0);
    struct addr a[2];
    ck_assert_int_eq(registry_resolve(reg, S("tasks.web.lab"), AF_INET, a, 2), 1);
    ck_assert_int_eq(registry_resolve(reg, S("tasks.api.other"), AF_INET, a, 2), 1);
    ck_assert_int_eq(registry_resolve(reg, S("tasks.solo"), AF_INET, a, 2), 1);
    ck_assert_int_eq(registry_resolve(reg, S("solo.lab"), AF_INET, a, 2), -1);
    swarm_held_free(h, reg);
    registry_free(reg);
    swarm_round_free(r);
}
END_TEST

START_TEST(test_bounds_named)
{
    struct swarm_round *r = swarm_round_new();
    char e[256];
    int i = 0, rc = 0;
    for (; i <= SWARM_NETWORKS_MAX && rc == 0; i++) {
        snprintf(e, sizeof e, "{\"Name\":\"n%d\",\"Id\":\"id%d\"}", i, i);
        rc = swarm_feed_elem(r, SWARM_NETWORKS, S(e), err, sizeof err);
    }
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(i, SWARM_NETWORKS_MAX + 1);
    ck_assert_str_eq(err, "more than 512 overlay networks");
    swarm_round_free(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("swarm_feed");
    TCase *tc = tcase_create("feed");
    tcase_add_test(tc, test_networks_attached_by_address);
    tcase_add_test(tc, test_every_kind_then_applied);
    tcase_add_test(tc, test_view_stacks);
    tcase_add_test(tc, test_bounds_named);
    suite_add_tcase(s, tc);
    return check_run(s);
}
