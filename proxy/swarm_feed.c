#include "berth/swarm_feed.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "berth/sockaddr.h"
#include "berth/swarm_parse.h"

static int full(char *err, size_t errlen, const char *what, int max)
{
    snprintf(err, errlen, "more than %d %s", max, what);
    return -1;
}

/* berth runs in a container attached to n when it has an address in one
 * of n's subnets: it reaches every task on n. */
static bool attached(const struct swarm_network *n)
{
    for (size_t k = 0; k < n->nsubnets; k++)
        if (sock_host_in_subnet(&n->subnets[k].net, n->subnets[k].prefix))
            return true;
    return false;
}

int swarm_feed_elem(struct swarm_round *r, enum swarm_answer kind, const char *e,
                    size_t len, char *err, size_t errlen)
{
    struct swarm_network n;
    struct swarm_service s;
    struct swarm_task t;
    char id[SWARM_ID_MAX];
    bool ready;
    int rc;
    switch (kind) {
    case SWARM_NETWORKS:
        if (swarm_parse_network(e, len, &n, err, errlen) < 0)
            return -1;
        /* The routing mesh's: no task is named through it. */
        if (!n.ingress && swarm_round_add_network(r, &n, attached(&n)) < 0)
            return full(err, errlen, "overlay networks", SWARM_NETWORKS_MAX);
        return 0;
    case SWARM_LOCAL:
        if ((rc = swarm_parse_local_task(e, len, &t, &s, err, errlen)) <= 0)
            return rc;
        if (swarm_round_add_local(r, &t, &s) < 0)
            return full(err, errlen, "task containers", SWARM_TASKS_MAX);
        return 0;
    case SWARM_SERVICES:
        if (swarm_parse_service(e, len, &s, err, errlen) < 0)
            return -1;
        if (swarm_round_add_service(r, &s) < 0)
            return full(err, errlen, "services", SWARM_SERVICES_MAX);
        return 0;
    case SWARM_NODES:
        if (swarm_parse_node(e, len, id, &ready, err, errlen) < 0)
            return -1;
        if (swarm_round_add_node(r, id, ready) < 0)
            return full(err, errlen, "nodes", SWARM_TASKS_MAX);
        return 0;
    case SWARM_TASKS:
        if ((rc = swarm_parse_task(e, len, &t, err, errlen)) <= 0)
            return rc;
        if (swarm_round_add_task(r, &t) < 0)
            return full(err, errlen, "running tasks", SWARM_TASKS_MAX);
        return 0;
    default:
        snprintf(err, errlen, "not a list answer");
        return -1;
    }
}

static int gateway(void *arg, const char *cid, const struct swarm_ip *ip)
{
    return swarm_round_add_gateway(arg, cid, ip);
}

/* A service of a network's view that is not the network's stack's: another
 * stack's when its name starts with "<stack>_" of a network that stack
 * made (the view has no labels), else outside stacks. */
static void guess_stack(const struct swarm_round *r, struct swarm_service *s)
{
    for (size_t i = 0; i < swarm_round_networks(r) && !s->stack[0]; i++) {
        bool on;
        const struct swarm_network *n = swarm_round_network(r, i, &on);
        if (n->stack[0] && swarm_short_name(s->name, n->stack) != s->name)
            memcpy(s->stack, n->stack, sizeof s->stack);
    }
}

static int view_service(void *arg, const struct swarm_service *svc,
                        const struct swarm_task *tasks, size_t n)
{
    struct swarm_round *r = arg;
    struct swarm_service s = *svc;
    guess_stack(r, &s);
    if (swarm_round_add_service(r, &s) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (swarm_round_add_task(r, &tasks[i]) < 0)
            return -1;
    return 0;
}

int swarm_feed_body(struct swarm_round *r, enum swarm_answer kind, const char *body,
                    size_t len, char *err, size_t errlen)
{
    int rc;
    if (errlen)
        err[0] = '\0';
    if (kind == SWARM_GATEWAY)
        rc = swarm_parse_members(body, len, gateway, r, err, errlen);
    else if (kind == SWARM_VIEW)
        rc = swarm_parse_view(body, len, view_service, r, err, errlen);
    else {
        snprintf(err, errlen, "not a whole answer");
        return -1;
    }
    /* The parsers' own errors are said; a refusal of the round's is not. */
    if (rc < 0 && !err[0])
        return full(err, errlen, "tasks", SWARM_TASKS_MAX);
    return rc;
}
