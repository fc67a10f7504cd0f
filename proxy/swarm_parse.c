#include "berth/swarm_parse.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STACK_LABEL "com.docker.stack.namespace"

static int fail(char *err, size_t errlen, const char *what, const char *where)
{
    snprintf(err, errlen, "%s: %s", where, what);
    return -1;
}

static const cJSON *at(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static const char *str_at(const cJSON *obj, const char *key)
{
    const cJSON *v = at(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Copies s into a fixed field; false when it does not fit (a name longer
 * than any Docker makes: the element is refused, not cut). */
static bool copy(char *dst, size_t cap, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n >= cap)
        return false;
    memcpy(dst, s ? s : "", n);
    dst[n] = '\0';
    return true;
}

const char *swarm_short_name(const char *name, const char *stack)
{
    size_t n = strlen(stack);
    if (n && strncmp(name, stack, n) == 0 && name[n] == '_' && name[n + 1])
        return name + n + 1;
    return name;
}

int swarm_parse_ip(const char *text, struct swarm_ip *out)
{
    char ip[64];
    const char *slash = strchr(text, '/');
    size_t n = slash ? (size_t)(slash - text) : strlen(text);
    if (n == 0 || n >= sizeof ip)
        return -1;
    memcpy(ip, text, n);
    ip[n] = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, ip, out->ip) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, ip, out->ip) == 1)
        out->family = AF_INET6;
    else
        return -1;
    return 0;
}

static cJSON *object(const char *elem, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(elem, len);
    if (root && !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

int swarm_parse_info(const char *body, size_t len, char role[8], char *err,
                     size_t errlen)
{
    cJSON *root = object(body, len);
    if (!root)
        return fail(err, errlen, "not a JSON object", "info");
    const cJSON *sw = at(root, "Swarm");
    const char *state = str_at(sw, "LocalNodeState");
    role[0] = '\0';
    if (state && strcmp(state, "active") == 0)
        snprintf(role, 8, "%s",
                 cJSON_IsTrue(at(sw, "ControlAvailable")) ? "manager" : "worker");
    cJSON_Delete(root);
    return 0;
}

int swarm_parse_service(const char *elem, size_t len, struct swarm_service *out,
                        char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    cJSON *root = object(elem, len);
    if (!root)
        return fail(err, errlen, "not a JSON object", "service");
    const cJSON *spec = at(root, "Spec");
    const char *mode = str_at(at(spec, "EndpointSpec"), "Mode");
    if (!mode)
        mode = str_at(at(at(root, "Endpoint"), "Spec"), "Mode");
    int rc = 0;
    if (!copy(out->id, sizeof out->id, str_at(root, "ID")) || !out->id[0] ||
        !copy(out->name, sizeof out->name, str_at(spec, "Name")) || !out->name[0] ||
        !copy(out->stack, sizeof out->stack, str_at(at(spec, "Labels"), STACK_LABEL)))
        rc = fail(err, errlen, "no ID or Spec.Name, or one too long", "service");
    out->dnsrr = mode && strcmp(mode, "dnsrr") == 0;
    const cJSON *want = at(at(at(spec, "Mode"), "Replicated"), "Replicas");
    out->replicas = cJSON_IsNumber(want) && want->valuedouble >= 0 &&
                            want->valuedouble <= 1e6
                        ? (int)want->valuedouble
                        : -1;
    const cJSON *vip;
    cJSON_ArrayForEach(vip, at(at(root, "Endpoint"), "VirtualIPs")) {
        struct swarm_attach *a = &out->vips[out->nvips];
        const char *addr = str_at(vip, "Addr");
        if (rc == 0 && out->nvips < SWARM_ATTACH_MAX && addr &&
            copy(a->net_id, sizeof a->net_id, str_at(vip, "NetworkID")) &&
            swarm_parse_ip(addr, &a->ip) == 0)
            out->nvips++;
    }
    cJSON_Delete(root);
    return rc;
}

/* NetworksAttachments (tasks) into t->addrs: the first address of each. */
static void read_attachments(const cJSON *list, struct swarm_task *t)
{
    const cJSON *na;
    cJSON_ArrayForEach(na, list) {
        struct swarm_attach *a = &t->addrs[t->naddrs];
        const cJSON *addrs = at(na, "Addresses");
        const cJSON *first = cJSON_IsArray(addrs) ? cJSON_GetArrayItem(addrs, 0)
                                                  : NULL;
        if (t->naddrs < SWARM_ATTACH_MAX && cJSON_IsString(first) &&
            copy(a->net_id, sizeof a->net_id, str_at(at(na, "Network"), "ID")) &&
            swarm_parse_ip(first->valuestring, &a->ip) == 0)
            t->naddrs++;
    }
}

int swarm_parse_task(const char *elem, size_t len, struct swarm_task *out, char *err,
                     size_t errlen)
{
    memset(out, 0, sizeof *out);
    cJSON *root = object(elem, len);
    if (!root)
        return fail(err, errlen, "not a JSON object", "task");
    const cJSON *status = at(root, "Status");
    const cJSON *slot = at(root, "Slot");
    const char *state = str_at(status, "State");
    const char *desired = str_at(root, "DesiredState");
    int rc = 1;
    if (!copy(out->id, sizeof out->id, str_at(root, "ID")) || !out->id[0] ||
        !copy(out->service_id, sizeof out->service_id, str_at(root, "ServiceID")) ||
        !out->service_id[0] ||
        !copy(out->node_id, sizeof out->node_id, str_at(root, "NodeID")) ||
        !copy(out->container_id, sizeof out->container_id,
              str_at(at(status, "ContainerStatus"), "ContainerID")))
        rc = fail(err, errlen, "no ID or ServiceID, or one too long", "task");
    else if (!state || !desired || strcmp(state, "running") != 0 ||
             strcmp(desired, "running") != 0)
        rc = 0;
    if (cJSON_IsNumber(slot) && slot->valuedouble >= 1 && slot->valuedouble <= 1e6)
        out->slot = (int)slot->valuedouble;
    if (rc == 1)
        read_attachments(at(root, "NetworksAttachments"), out);
    cJSON_Delete(root);
    return rc;
}

int swarm_parse_node(const char *elem, size_t len, char id[SWARM_ID_MAX], bool *ready,
                     char *err, size_t errlen)
{
    cJSON *root = object(elem, len);
    if (!root)
        return fail(err, errlen, "not a JSON object", "node");
    const char *state = str_at(at(root, "Status"), "State");
    *ready = state && strcmp(state, "ready") == 0;
    int rc = copy(id, SWARM_ID_MAX, str_at(root, "ID")) && id[0]
                 ? 0
                 : fail(err, errlen, "no ID, or one too long", "node");
    cJSON_Delete(root);
    return rc;
}

static int read_network(const cJSON *root, struct swarm_network *out, char *err,
                        size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!copy(out->id, sizeof out->id, str_at(root, "Id")) || !out->id[0] ||
        !copy(out->name, sizeof out->name, str_at(root, "Name")) ||
        !copy(out->stack, sizeof out->stack, str_at(at(root, "Labels"), STACK_LABEL)))
        return fail(err, errlen, "no Id or Name, or one too long", "network");
    out->ingress = cJSON_IsTrue(at(root, "Ingress"));
    const cJSON *c;
    cJSON_ArrayForEach(c, at(at(root, "IPAM"), "Config")) {
        const char *sub = str_at(c, "Subnet");
        struct swarm_ip ip;
        const char *slash = sub ? strchr(sub, '/') : NULL;
        char *end;
        long prefix = slash ? strtol(slash + 1, &end, 10) : -1;
        if (out->nsubnets == SWARM_SUBNETS_MAX || !slash || *end || prefix < 0 ||
            prefix > 128 || swarm_parse_ip(sub, &ip) < 0)
            continue;
        struct reg_subnet *s = &out->subnets[out->nsubnets++];
        char text[INET6_ADDRSTRLEN];
        inet_ntop(ip.family, ip.ip, text, sizeof text);
        addr_from_ip(&s->net, text, 0);
        s->prefix = (unsigned)prefix;
    }
    return 0;
}

int swarm_parse_network(const char *elem, size_t len, struct swarm_network *out,
                        char *err, size_t errlen)
{
    cJSON *root = object(elem, len);
    if (!root)
        return fail(err, errlen, "not a JSON object", "network");
    int rc = read_network(root, out, err, errlen);
    cJSON_Delete(root);
    return rc;
}

/* "lab_web.2.<task id>": slot 2 and the task id; a global service's task
 * ("lab_agent.<node id>.<task id>") has no slot. */
static bool task_from_name(const char *name, struct swarm_task *t)
{
    const char *last = strrchr(name, '.');
    if (!last || last == name || !copy(t->id, sizeof t->id, last + 1) || !t->id[0])
        return false;
    const char *mid = last - 1;
    while (mid > name && *mid != '.')
        mid--;
    char *end;
    long slot = *mid == '.' ? strtol(mid + 1, &end, 10) : 0;
    t->slot = *mid == '.' && end == last && slot > 0 && slot <= 1000000 ? (int)slot
                                                                        : 0;
    /* A global service's: its node in the middle, kept for the task's name. */
    size_t n = (size_t)(last - mid - 1);
    if (!t->slot && *mid == '.' && n < sizeof t->node_id) {
        memcpy(t->node_id, mid + 1, n);
        t->node_id[n] = '\0';
    }
    return true;
}

int swarm_parse_view(const char *body, size_t len, swarm_view_fn *fn, void *arg,
                     char *err, size_t errlen)
{
    cJSON *root = object(body, len);
    if (!root)
        return fail(err, errlen, "not a JSON object", "network view");
    struct swarm_network net;
    struct swarm_task *tasks = NULL;
    int rc = read_network(root, &net, err, errlen);
    const cJSON *svc;
    cJSON_ArrayForEach(svc, at(root, "Services")) {
        if (rc < 0)
            break;
        struct swarm_service s = {.replicas = -1};
        /* Containers attached to the network outside any service sit
         * under the empty name. */
        if (!svc->string || !svc->string[0] ||
            !copy(s.name, sizeof s.name, svc->string))
            continue;
        if (!copy(s.id, sizeof s.id, s.name))
            continue;
        /* The view has no labels: a service is the network's stack's when
         * Docker's "<stack>_" prefix says so; another stack's service or
         * one outside stacks may share the network (swarm_feed guesses
         * the first from the other networks' stacks). */
        if (swarm_short_name(s.name, net.stack) != s.name)
            memcpy(s.stack, net.stack, sizeof s.stack);
        const char *vip = str_at(svc, "VIP");
        s.dnsrr = true;
        if (vip && vip[0] && swarm_parse_ip(vip, &s.vips[0].ip) == 0) {
            memcpy(s.vips[0].net_id, net.id, sizeof net.id);
            s.nvips = 1;
            s.dnsrr = false;
        }
        const cJSON *list = at(svc, "Tasks");
        size_t want = (size_t)cJSON_GetArraySize(list), n = 0;
        if (want > SWARM_VIEW_TASKS)
            want = SWARM_VIEW_TASKS;
        free(tasks);
        tasks = want ? calloc(want, sizeof *tasks) : NULL;
        if (want && !tasks) {
            rc = fail(err, errlen, "out of memory", "network view");
            break;
        }
        const cJSON *t;
        cJSON_ArrayForEach(t, list) {
            const char *name = str_at(t, "Name");
            const char *ip = str_at(t, "EndpointIP");
            struct swarm_task *k = &tasks[n];
            if (n == want || !name || !ip || !task_from_name(name, k) ||
                swarm_parse_ip(ip, &k->addrs[0].ip) < 0)
                continue;
            memcpy(k->service_id, s.id, sizeof s.id);
            memcpy(k->addrs[0].net_id, net.id, sizeof net.id);
            k->naddrs = 1;
            n++;
        }
        rc = fn(arg, &s, tasks, n);
    }
    free(tasks);
    cJSON_Delete(root);
    return rc;
}

int swarm_parse_members(const char *body, size_t len, swarm_member_fn *fn, void *arg,
                        char *err, size_t errlen)
{
    cJSON *root = object(body, len);
    if (!root)
        return fail(err, errlen, "not a JSON object", "network");
    int rc = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, at(root, "Containers")) {
        struct swarm_ip ip;
        const char *v4 = str_at(c, "IPv4Address");
        if (c->string && v4 && swarm_parse_ip(v4, &ip) == 0 &&
            (rc = fn(arg, c->string, &ip)) < 0)
            break;
    }
    cJSON_Delete(root);
    return rc;
}

int swarm_parse_local_task(const char *elem, size_t len, struct swarm_task *t,
                           struct swarm_service *s, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    memset(s, 0, sizeof *s);
    cJSON *root = object(elem, len);
    if (!root)
        return fail(err, errlen, "not a JSON object", "container");
    const cJSON *labels = at(root, "Labels");
    const char *task = str_at(labels, "com.docker.swarm.task.name");
    int rc = 1;
    if (!task || !str_at(labels, "com.docker.swarm.service.name"))
        rc = 0;
    else if (!copy(t->container_id, sizeof t->container_id, str_at(root, "Id")) ||
             !task_from_name(task, t) ||
             !copy(s->name, sizeof s->name,
                   str_at(labels, "com.docker.swarm.service.name")) ||
             !copy(s->id, sizeof s->id,
                   str_at(labels, "com.docker.swarm.service.id")) ||
             !copy(s->stack, sizeof s->stack, str_at(labels, STACK_LABEL)) ||
             !s->id[0])
        rc = fail(err, errlen, "task labels missing or too long", "container");
    s->replicas = -1;
    if (rc == 1) {
        memcpy(t->service_id, s->id, sizeof s->id);
        s->dnsrr = true; /* seen from here: no VIP */
    }
    cJSON_Delete(root);
    return rc;
}
