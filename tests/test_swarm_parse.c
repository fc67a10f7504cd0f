/* Swarm's answers as a 20.10 and a 28 manager give them (services, tasks,
 * nodes, overlay networks, a network's verbose view, docker_gwbridge, the
 * local task containers): what berth reads of each, and the broken ones
 * refused with a reason instead of half read. */
#include "check_run.h"
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "berth/swarm_parse.h"

static char err[256];

#define S(x) x, strlen(x)

static const char *ip_text(const struct swarm_ip *ip, char *buf, size_t len)
{
    return inet_ntop(ip->family, ip->ip, buf, (socklen_t)len);
}

START_TEST(test_service_vip_and_dnsrr)
{
    struct swarm_service s;
    char b[64];
    ck_assert_int_eq(
        swarm_parse_service(
            S("{\"ID\":\"k3v1x2\",\"Spec\":{\"Name\":\"lab_web\",\"Labels\":"
              "{\"com.docker.stack.namespace\":\"lab\"},\"Mode\":{\"Replicated\":{\"Replicas\":3}},"
              "\"EndpointSpec\":{\"Mode\":\"vip\"}},"
              "\"Endpoint\":{\"Spec\":{\"Mode\":\"vip\"},\"VirtualIPs\":["
              "{\"NetworkID\":\"ingressid\",\"Addr\":\"10.0.0.5/24\"},"
              "{\"NetworkID\":\"netid\",\"Addr\":\"10.0.1.2/24\"}]}}"),
            &s, err, sizeof err),
        0);
    ck_assert_str_eq(s.id, "k3v1x2");
    ck_assert_str_eq(s.name, "lab_web");
    ck_assert_str_eq(s.stack, "lab");
    ck_assert(!s.dnsrr);
    ck_assert_int_eq(s.replicas, 3);
    ck_assert_uint_eq(s.nvips, 2);
    ck_assert_str_eq(s.vips[1].net_id, "netid");
    ck_assert_str_eq(ip_text(&s.vips[1].ip, b, sizeof b), "10.0.1.2");
    ck_assert_str_eq(swarm_short_name(s.name, s.stack), "web");

    ck_assert_int_eq(swarm_parse_service(S("{\"ID\":\"q\",\"Spec\":{\"Name\":\"db\","
                                           "\"EndpointSpec\":{\"Mode\":\"dnsrr\"}}}"),
                                         &s, err, sizeof err),
                     0);
    ck_assert(s.dnsrr);
    ck_assert_int_eq(s.replicas, -1); /* global, or not said */
    ck_assert_str_eq(s.stack, "");
    ck_assert_str_eq(swarm_short_name(s.name, s.stack), "db");
    /* A stack prefix that is the whole name, or another stack's. */
    ck_assert_str_eq(swarm_short_name("lab_", "lab"), "lab_");
    ck_assert_str_eq(swarm_short_name("labx_web", "lab"), "labx_web");

    ck_assert_int_eq(swarm_parse_service(S("{\"Spec\":{\"Name\":\"x\"}}"), &s, err,
                                         sizeof err),
                     -1);
    ck_assert_str_eq(err, "service: no ID or Spec.Name, or one too long");
    ck_assert_int_eq(swarm_parse_service(S("[1]"), &s, err, sizeof err), -1);
    ck_assert_str_eq(err, "service: not a JSON object");
}
END_TEST

START_TEST(test_task)
{
    struct swarm_task t;
    char b[64];
    const char *running =
        "{\"ID\":\"t1\",\"ServiceID\":\"k3v1x2\",\"NodeID\":\"n1\",\"Slot\":2,"
        "\"Status\":{\"State\":\"running\",\"ContainerStatus\":{\"ContainerID\":\"c0ffee\"}},"
        "\"DesiredState\":\"running\",\"NetworksAttachments\":["
        "{\"Network\":{\"ID\":\"ingressid\"},\"Addresses\":[\"10.0.0.7/24\"]},"
        "{\"Network\":{\"ID\":\"netid\"},\"Addresses\":[\"10.0.1.9/24\",\"fd00::9/64\"]}]}";
    ck_assert_int_eq(swarm_parse_task(S(running), &t, err, sizeof err), 1);
    ck_assert_str_eq(t.id, "t1");
    ck_assert_str_eq(t.service_id, "k3v1x2");
    ck_assert_str_eq(t.node_id, "n1");
    ck_assert_str_eq(t.container_id, "c0ffee");
    ck_assert_int_eq(t.slot, 2);
    ck_assert_uint_eq(t.naddrs, 2);
    ck_assert_str_eq(ip_text(&t.addrs[1].ip, b, sizeof b), "10.0.1.9");
    /* Shutting down, or still starting: not a target. */
    ck_assert_int_eq(swarm_parse_task(S("{\"ID\":\"t2\",\"ServiceID\":\"s\","
                                        "\"Status\":{\"State\":\"running\"},"
                                        "\"DesiredState\":\"shutdown\"}"),
                                      &t, err, sizeof err),
                     0);
    ck_assert_int_eq(swarm_parse_task(S("{\"ID\":\"t3\",\"ServiceID\":\"s\","
                                        "\"Status\":{\"State\":\"starting\"},"
                                        "\"DesiredState\":\"running\"}"),
                                      &t, err, sizeof err),
                     0);
    /* A global service's task has no slot. */
    ck_assert_int_eq(swarm_parse_task(S("{\"ID\":\"t4\",\"ServiceID\":\"s\","
                                        "\"Status\":{\"State\":\"running\"},"
                                        "\"DesiredState\":\"running\"}"),
                                      &t, err, sizeof err),
                     1);
    ck_assert_int_eq(t.slot, 0);
    ck_assert_uint_eq(t.naddrs, 0);
    ck_assert_int_eq(swarm_parse_task(S("{\"ID\":\"t5\"}"), &t, err, sizeof err), -1);
}
END_TEST

START_TEST(test_node_and_network)
{
    char id[SWARM_ID_MAX];
    bool ready = false;
    ck_assert_int_eq(
        swarm_parse_node(S("{\"ID\":\"n1\",\"Status\":{\"State\":\"ready\"}}"), id,
                         &ready, err, sizeof err),
        0);
    ck_assert_str_eq(id, "n1");
    ck_assert(ready);
    ck_assert_int_eq(
        swarm_parse_node(S("{\"ID\":\"n2\",\"Status\":{\"State\":\"down\"}}"), id,
                         &ready, err, sizeof err),
        0);
    ck_assert(!ready);

    struct swarm_network n;
    ck_assert_int_eq(
        swarm_parse_network(
            S("{\"Name\":\"lab_net\",\"Id\":\"netid\",\"Driver\":\"overlay\","
              "\"Labels\":{\"com.docker.stack.namespace\":\"lab\"},"
              "\"IPAM\":{\"Config\":[{\"Subnet\":\"10.0.1.0/24\",\"Gateway\":\"10.0.1.1\"},"
              "{\"Subnet\":\"fd00:1::/64\"},{\"Subnet\":\"bogus\"}]}}"),
            &n, err, sizeof err),
        0);
    ck_assert_str_eq(n.name, "lab_net");
    ck_assert_str_eq(n.stack, "lab");
    ck_assert(!n.ingress);
    ck_assert_uint_eq(n.nsubnets, 2);
    ck_assert_uint_eq(n.subnets[0].prefix, 24);
    ck_assert_uint_eq(n.subnets[1].prefix, 64);
    ck_assert_int_eq(swarm_parse_network(S("{\"Name\":\"ingress\",\"Id\":\"i\","
                                           "\"Ingress\":true}"),
                                         &n, err, sizeof err),
                     0);
    ck_assert(n.ingress);
}
END_TEST

struct seen {
    char services[4][2 * SWARM_NAME_MAX + 2];
    size_t nservices, ntasks;
    struct swarm_task tasks[8];
    bool dnsrr[4];
};

static int on_view(void *arg, const struct swarm_service *s,
                   const struct swarm_task *t, size_t n)
{
    struct seen *v = arg;
    v->dnsrr[v->nservices] = s->dnsrr;
    snprintf(v->services[v->nservices++], sizeof v->services[0], "%s|%s", s->name,
             s->stack);
    for (size_t i = 0; i < n; i++)
        v->tasks[v->ntasks++] = t[i];
    return 0;
}

START_TEST(test_view)
{
    /* A worker's view of an overlay: VIPs, tasks (a replicated one's name
     * carries its slot, a global one's its node), a container attached
     * outside any service under "". */
    const char *body =
        "{\"Name\":\"lab_net\",\"Id\":\"netid\",\"Labels\":"
        "{\"com.docker.stack.namespace\":\"lab\"},\"IPAM\":{\"Config\":[{\"Subnet\":"
        "\"10.0.1.0/24\"}]},\"Services\":{"
        "\"lab_web\":{\"VIP\":\"10.0.1.2\",\"Tasks\":["
        "{\"Name\":\"lab_web.1.aaa\",\"EndpointIP\":\"10.0.1.5\",\"Info\":{\"Host IP\":"
        "\"10.131.0.11\"}},"
        "{\"Name\":\"lab_web.3.ccc\",\"EndpointIP\":\"10.0.1.7\"}]},"
        "\"lab_agent\":{\"VIP\":\"\",\"Tasks\":[{\"Name\":\"lab_agent.node1.ggg\","
        "\"EndpointIP\":\"10.0.1.8\"}]},"
        "\"\":{\"Tasks\":[{\"Name\":\"loose\",\"EndpointIP\":\"10.0.1.9\"}]},"
        "\"solo\":{\"VIP\":\"10.0.1.3\",\"Tasks\":[]}}}";
    struct seen v = {0};
    ck_assert_int_eq(swarm_parse_view(S(body), on_view, &v, err, sizeof err), 0);
    ck_assert_uint_eq(v.nservices, 3);
    ck_assert_str_eq(v.services[0], "lab_web|lab");
    /* On the stack's network, but not of the stack: no stack. */
    ck_assert_str_eq(v.services[2], "solo|");
    ck_assert(!v.dnsrr[0]);
    ck_assert(v.dnsrr[1]);
    ck_assert_uint_eq(v.ntasks, 3);
    ck_assert_str_eq(v.tasks[0].id, "aaa");
    ck_assert_int_eq(v.tasks[0].slot, 1);
    ck_assert_str_eq(v.tasks[0].service_id, "lab_web");
    ck_assert_str_eq(v.tasks[0].addrs[0].net_id, "netid");
    ck_assert_int_eq(v.tasks[1].slot, 3);
    ck_assert_str_eq(v.tasks[2].id, "ggg");
    ck_assert_int_eq(v.tasks[2].slot, 0);
    ck_assert_str_eq(v.tasks[2].node_id, "node1"); /* for its name */
    ck_assert_int_eq(swarm_parse_view(S("[]"), on_view, &v, err, sizeof err), -1);
}
END_TEST

static int on_member(void *arg, const char *cid, const struct swarm_ip *ip)
{
    char b[64];
    char *out = arg;
    size_t l = strlen(out);
    snprintf(out + l, 256 - l, "%s=%s;", cid,
             inet_ntop(ip->family, ip->ip, b, sizeof b));
    return 0;
}

START_TEST(test_members_and_local)
{
    char out[256] = "";
    ck_assert_int_eq(
        swarm_parse_members(
            S("{\"Name\":\"docker_gwbridge\",\"Containers\":{"
              "\"c0ffee\":{\"Name\":\"gateway_1\",\"IPv4Address\":\"172.18.0.3/16\"},"
              "\"ingress-sbox\":{\"IPv4Address\":\"172.18.0.2/16\"},"
              "\"bad\":{\"IPv4Address\":\"\"}}}"),
            on_member, out, err, sizeof err),
        0);
    ck_assert_str_eq(out, "c0ffee=172.18.0.3;ingress-sbox=172.18.0.2;");

    struct swarm_task t;
    struct swarm_service s;
    ck_assert_int_eq(
        swarm_parse_local_task(
            S("{\"Id\":\"c0ffee\",\"Names\":[\"/lab_web.2.bbb\"],\"Labels\":{"
              "\"com.docker.swarm.task.id\":\"bbb\",\"com.docker.swarm.task.name\":"
              "\"lab_web.2.bbb\",\"com.docker.swarm.service.name\":\"lab_web\","
              "\"com.docker.swarm.service.id\":\"k3v1x2\",\"com.docker.stack.namespace\":"
              "\"lab\"}}"),
            &t, &s, err, sizeof err),
        1);
    ck_assert_str_eq(t.id, "bbb");
    ck_assert_int_eq(t.slot, 2);
    ck_assert_str_eq(t.container_id, "c0ffee");
    ck_assert_str_eq(t.service_id, "k3v1x2");
    ck_assert_str_eq(s.name, "lab_web");
    ck_assert_str_eq(s.stack, "lab");
    ck_assert_int_eq(swarm_parse_local_task(S("{\"Id\":\"x\",\"Labels\":{}}"), &t, &s,
                                            err, sizeof err),
                     0);
}
END_TEST

START_TEST(test_ip)
{
    struct swarm_ip ip;
    ck_assert_int_eq(swarm_parse_ip("10.0.1.5/24", &ip), 0);
    ck_assert_int_eq(ip.family, AF_INET);
    ck_assert_int_eq(swarm_parse_ip("fd00::1", &ip), 0);
    ck_assert_int_eq(ip.family, AF_INET6);
    ck_assert_int_eq(swarm_parse_ip("", &ip), -1);
    ck_assert_int_eq(swarm_parse_ip("/24", &ip), -1);
    ck_assert_int_eq(swarm_parse_ip("web", &ip), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("swarm_parse");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_service_vip_and_dnsrr);
    tcase_add_test(tc, test_task);
    tcase_add_test(tc, test_node_and_network);
    tcase_add_test(tc, test_view);
    tcase_add_test(tc, test_members_and_local);
    tcase_add_test(tc, test_ip);
    suite_add_tcase(s, tc);
    return check_run(s);
}
