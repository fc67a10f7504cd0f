/* A round of Swarm applied to a registry: the names (service, tasks.,
 * slot; a stack's or none), the VIP only where berth is attached, tasks on
 * nodes that are down left out, this node's tasks through docker_gwbridge
 * when berth is not attached (and never an overlay address it cannot
 * reach), a second identical round putting nothing, and a scale down
 * dropping exactly the task that went. */
#include "check_run.h"
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "berth/swarm_round.h"

static struct registry *reg;
static struct swarm_round *round_;
static struct swarm_held *held;

static void setup(void)
{
    reg = registry_new();
    round_ = swarm_round_new();
    held = swarm_held_new();
    ck_assert(reg && round_ && held);
}

static void teardown(void)
{
    swarm_held_free(held, reg);
    ck_assert_uint_eq(registry_count(reg), 0);
    swarm_round_free(round_);
    registry_free(reg);
}

static struct swarm_ip ip4(const char *text)
{
    struct swarm_ip ip = {.family = AF_INET};
    ck_assert_int_eq(inet_pton(AF_INET, text, ip.ip), 1);
    return ip;
}

static void network(const char *id, const char *name, bool attached)
{
    struct swarm_network n = {0};
    snprintf(n.id, sizeof n.id, "%s", id);
    snprintf(n.name, sizeof n.name, "%s", name);
    ck_assert_int_eq(swarm_round_add_network(round_, &n, attached), 0);
}

static struct swarm_service service(const char *id, const char *name,
                                    const char *stack, const char *vip)
{
    struct swarm_service s = {0};
    snprintf(s.id, sizeof s.id, "%s", id);
    snprintf(s.name, sizeof s.name, "%s", name);
    snprintf(s.stack, sizeof s.stack, "%s", stack);
    s.dnsrr = vip == NULL;
    if (vip) {
        snprintf(s.vips[0].net_id, sizeof s.vips[0].net_id, "net");
        s.vips[0].ip = ip4(vip);
        s.nvips = 1;
    }
    return s;
}

static struct swarm_task task(const char *id, const char *svc, const char *node,
                              int slot, const char *addr, const char *cid)
{
    struct swarm_task t = {.slot = slot};
    snprintf(t.id, sizeof t.id, "%s", id);
    snprintf(t.service_id, sizeof t.service_id, "%s", svc);
    snprintf(t.node_id, sizeof t.node_id, "%s", node);
    snprintf(t.container_id, sizeof t.container_id, "%s", cid ? cid : "");
    if (addr) {
        snprintf(t.addrs[0].net_id, sizeof t.addrs[0].net_id, "net");
        t.addrs[0].ip = ip4(addr);
        t.naddrs = 1;
    }
    return t;
}

/* The name's IPv4 addresses, sorted by the registry's order, as text:
 * "10.0.1.5 10.0.1.6"; "-" when the name does not exist. */
static const char *resolve(const char *name)
{
    static char out[256];
    struct addr a[8];
    int n = registry_resolve(reg, name, strlen(name), AF_INET, a, 8);
    if (n < 0)
        return "-";
    out[0] = '\0';
    for (int i = 0; i < n && i < 8; i++) {
        char b[64];
        size_t l = strlen(out);
        snprintf(out + l, sizeof out - l, "%s%s", i ? " " : "",
                 addr_format_ip(&a[i], b, sizeof b));
    }
    return out;
}

static struct swarm_outcome apply(void)
{
    struct swarm_outcome out;
    ck_assert_int_eq(swarm_round_apply(round_, held, reg, &out), 0);
    return out;
}

/* A manager's round, berth attached to the overlay "lab_net". */
static void attached_round(bool with_third)
{
    swarm_round_reset(round_);
    network("net", "lab_net", true);
    struct swarm_service web = service("W", "lab_web", "lab", "10.0.1.2");
    struct swarm_service db = service("D", "lab_db", "lab", NULL);
    web.replicas = 4; /* one is on a node that is down */
    db.replicas = 2;
    ck_assert_int_eq(swarm_round_add_service(round_, &web), 0);
    ck_assert_int_eq(swarm_round_add_service(round_, &db), 0);
    ck_assert_int_eq(swarm_round_add_node(round_, "n1", true), 0);
    ck_assert_int_eq(swarm_round_add_node(round_, "n2", true), 0);
    ck_assert_int_eq(swarm_round_add_node(round_, "n3", false), 0);
    struct swarm_task ts[] = {
        task("t1", "W", "n1", 1, "10.0.1.5", NULL),
        task("t2", "W", "n2", 2, "10.0.1.6", NULL),
        task("t3", "W", "n2", 3, "10.0.1.7", NULL),
        task("t4", "W", "n3", 4, "10.0.1.8", NULL), /* its node is down */
        task("d1", "D", "n1", 1, "10.0.1.20", NULL),
        task("d2", "D", "n2", 2, "10.0.1.21", NULL),
        task("x1", "gone", "n1", 1, "10.0.1.30", NULL), /* no such service */
    };
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        if (with_third || strcmp(ts[i].id, "t3") != 0)
            ck_assert_int_eq(swarm_round_add_task(round_, &ts[i]), 0);
}

START_TEST(test_attached_manager)
{
    attached_round(true);
    struct swarm_outcome out = apply();
    ck_assert_uint_eq(out.tasks, 5);
    ck_assert_uint_eq(out.services, 2);
    ck_assert(out.converging); /* web: 3 of 4 */
    /* The VIP in DNS; the tasks by tasks. and by slot. */
    ck_assert_str_eq(resolve("web.lab"), "10.0.1.2");
    ck_assert_str_eq(resolve("tasks.web.lab"), "10.0.1.5 10.0.1.6 10.0.1.7");
    ck_assert_str_eq(resolve("2.web.lab"), "10.0.1.6");
    ck_assert_str_eq(resolve("4.web.lab"), "-");
    ck_assert_str_eq(resolve("db.lab"), "10.0.1.20 10.0.1.21");
    ck_assert_str_eq(resolve("tasks.db.lab"), "10.0.1.20 10.0.1.21");
    ck_assert_str_eq(resolve("lab"), ""); /* the stack: a name without address */
    ck_assert_uint_eq(registry_swarm_count(reg), 6);
    /* Reverse: Docker's name for the task's container. */
    struct addr a;
    char name[128];
    ck_assert_int_eq(addr_from_ip(&a, "10.0.1.6", 0), 0);
    ck_assert_int_eq(registry_ptr(reg, &a, name, sizeof name), 0);
    ck_assert_str_eq(name, "lab_web.2.t2");

    /* The same again: nothing put, nothing dropped, same answers. */
    uint64_t v = registry_version(reg);
    attached_round(true);
    out = apply();
    ck_assert_uint_eq(out.put, 0);
    ck_assert_uint_eq(out.dropped, 0);
    ck_assert_uint_eq(registry_version(reg), v);

    /* Scaled down: exactly the task that went. */
    attached_round(false);
    out = apply();
    ck_assert_uint_eq(out.put, 0);
    ck_assert_uint_eq(out.dropped, 1);
    ck_assert_str_eq(resolve("tasks.web.lab"), "10.0.1.5 10.0.1.6");
    ck_assert_str_eq(resolve("3.web.lab"), "-");

    /* Out of the swarm: every entry goes. */
    ck_assert_uint_eq(swarm_held_clear(held, reg), 5);
    ck_assert_str_eq(resolve("web.lab"), "-");
    ck_assert_uint_eq(registry_swarm_count(reg), 0);
}
END_TEST

/* berth on a host, not attached: this node's tasks through
 * docker_gwbridge, never an overlay address; the service's name is its
 * tasks' (no VIP it could reach). */
START_TEST(test_not_attached_local_only)
{
    swarm_round_reset(round_);
    network("net", "lab_net", false);
    struct swarm_service web = service("W", "lab_web", "lab", "10.0.1.2");
    ck_assert_int_eq(swarm_round_add_service(round_, &web), 0);
    struct swarm_task remote = task("t1", "W", "n2", 1, "10.0.1.5", "c1");
    struct swarm_task here = task("t2", "W", "n1", 2, "10.0.1.6", "c2");
    ck_assert_int_eq(swarm_round_add_task(round_, &remote), 0);
    ck_assert_int_eq(swarm_round_add_task(round_, &here), 0);
    struct swarm_ip gw = ip4("172.18.0.3");
    ck_assert_int_eq(swarm_round_add_gateway(round_, "c2", &gw), 0);
    /* The same task from this node's containers: counted once. */
    struct swarm_task local = task("t2", "W", "", 2, NULL, "c2");
    ck_assert_int_eq(swarm_round_add_local(round_, &local, &web), 0);
    struct swarm_outcome out = apply();
    ck_assert_uint_eq(out.tasks, 1);
    ck_assert_str_eq(resolve("web.lab"), "172.18.0.3");
    ck_assert_str_eq(resolve("tasks.web.lab"), "172.18.0.3");
    ck_assert_str_eq(resolve("2.web.lab"), "172.18.0.3");
    ck_assert_str_eq(resolve("1.web.lab"), "-");
}
END_TEST

/* A worker not attached: only the local containers say what runs. A
 * service outside stacks is named by itself. */
START_TEST(test_local_containers_and_no_stack)
{
    swarm_round_reset(round_);
    network("net", "appnet", false);
    struct swarm_service api = service("A", "api", "", NULL);
    struct swarm_ip gw1 = ip4("172.18.0.4"), gw2 = ip4("172.18.0.5");
    ck_assert_int_eq(swarm_round_add_gateway(round_, "c4", &gw1), 0);
    ck_assert_int_eq(swarm_round_add_gateway(round_, "c5", &gw2), 0);
    struct swarm_task a1 = task("a1", "A", "", 1, NULL, "c4");
    struct swarm_task a3 = task("a3", "A", "", 3, NULL, "c5");
    struct swarm_task a9 = task("a9", "A", "", 9, NULL, "c9"); /* not on gwbridge */
    ck_assert_int_eq(swarm_round_add_local(round_, &a1, &api), 0);
    ck_assert_int_eq(swarm_round_add_local(round_, &a3, &api), 0);
    ck_assert_int_eq(swarm_round_add_local(round_, &a9, &api), 0);
    ck_assert(!apply().converging); /* nothing says how many it wants */
    ck_assert_str_eq(resolve("api"), "172.18.0.4 172.18.0.5");
    ck_assert_str_eq(resolve("tasks.api"), "172.18.0.4 172.18.0.5");
    ck_assert_str_eq(resolve("3.api"), "172.18.0.5");
    ck_assert_str_eq(resolve("9.api"), "-");
}
END_TEST

/* A worker reads one view per overlay: a service and a task on two of
 * them come twice. One entry each, with both networks' addresses, put
 * once and not again in a steady round. */
static void two_views(void)
{
    swarm_round_reset(round_);
    network("A", "lab_a", true);
    network("B", "lab_b", true);
    struct swarm_service sa = service("lab_web", "lab_web", "lab", "10.0.1.2");
    struct swarm_service sb = sa;
    snprintf(sa.vips[0].net_id, sizeof sa.vips[0].net_id, "A");
    snprintf(sb.vips[0].net_id, sizeof sb.vips[0].net_id, "B");
    sb.vips[0].ip = ip4("10.0.2.2");
    struct swarm_task ta = task("t1", "lab_web", "", 1, "10.0.1.5", NULL), tb = ta;
    snprintf(ta.addrs[0].net_id, sizeof ta.addrs[0].net_id, "A");
    snprintf(tb.addrs[0].net_id, sizeof tb.addrs[0].net_id, "B");
    tb.addrs[0].ip = ip4("10.0.2.5");
    ck_assert_int_eq(swarm_round_add_service(round_, &sa), 0);
    ck_assert_int_eq(swarm_round_add_task(round_, &ta), 0);
    ck_assert_int_eq(swarm_round_add_service(round_, &sb), 0);
    ck_assert_int_eq(swarm_round_add_task(round_, &tb), 0);
}

START_TEST(test_worker_views_merged)
{
    two_views();
    struct swarm_outcome out = apply();
    ck_assert_uint_eq(out.tasks, 1);
    ck_assert_str_eq(resolve("web.lab"), "10.0.1.2 10.0.2.2");
    ck_assert_str_eq(resolve("tasks.web.lab"), "10.0.1.5 10.0.2.5");
    two_views();
    out = apply();
    ck_assert_uint_eq(out.put, 0);
}
END_TEST

/* A vip service with no task berth can reach has no name: a publish
 * target finds nothing (and closes its client) instead of the VIP. */
START_TEST(test_no_vip_without_tasks)
{
    swarm_round_reset(round_);
    network("net", "lab_net", true);
    struct swarm_service web = service("W", "lab_web", "lab", "10.0.1.2");
    web.replicas = 0;
    ck_assert_int_eq(swarm_round_add_service(round_, &web), 0);
    apply();
    ck_assert_str_eq(resolve("web.lab"), "-");
    ck_assert_str_eq(resolve("tasks.web.lab"), "-");
}
END_TEST

/* Containers of this node are the docker client's: a resync's sweep of
 * them leaves Swarm's entries alone. */
START_TEST(test_container_sweep_keeps_swarm)
{
    attached_round(true);
    apply();
    size_t n = registry_count(reg);
    registry_sweep_begin(reg);
    ck_assert_uint_eq(registry_sweep(reg), 0);
    ck_assert_uint_eq(registry_count(reg), n);
}
END_TEST

START_TEST(test_bounds)
{
    struct swarm_task t = task("t", "W", "n1", 1, "10.0.1.5", NULL);
    size_t i = 0;
    for (; i < SWARM_TASKS_MAX; i++)
        ck_assert_int_eq(swarm_round_add_task(round_, &t), 0);
    ck_assert_int_eq(swarm_round_add_task(round_, &t), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("swarm_round");
    TCase *tc = tcase_create("round");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_attached_manager);
    tcase_add_test(tc, test_not_attached_local_only);
    tcase_add_test(tc, test_local_containers_and_no_stack);
    tcase_add_test(tc, test_container_sweep_keeps_swarm);
    tcase_add_test(tc, test_worker_views_merged);
    tcase_add_test(tc, test_no_vip_without_tasks);
    tcase_add_test(tc, test_bounds);
    suite_add_tcase(s, tc);
    return check_run(s);
}
