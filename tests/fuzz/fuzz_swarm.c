/* libFuzzer target: Swarm's answers come from the engine (or whatever
 * answers on its socket): every parser of them, then a round made of what
 * they read applied to a registry twice (attached and not), must neither
 * crash nor leave the registry holding what the round no longer has. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/swarm_round.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int view(void *arg, const struct swarm_service *s, const struct swarm_task *t,
                size_t n)
{
    struct swarm_round *r = arg;
    if (swarm_round_add_service(r, s) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (swarm_round_add_task(r, &t[i]) < 0)
            return -1;
    return 0;
}

static int member(void *arg, const char *cid, const struct swarm_ip *ip)
{
    return swarm_round_add_gateway(arg, cid, ip);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    char err[256], id[SWARM_ID_MAX];
    bool ready;
    struct registry *reg = registry_new();
    struct swarm_round *r = swarm_round_new();
    struct swarm_held *h = swarm_held_new();
    if (!reg || !r || !h)
        goto out;
    for (int pass = 0; pass < 2; pass++) {
        swarm_round_reset(r);
        struct swarm_network n;
        struct swarm_service s;
        struct swarm_task t;
        if (swarm_parse_network(body, size, &n, err, sizeof err) == 0)
            swarm_round_add_network(r, &n, pass == 0);
        if (swarm_parse_service(body, size, &s, err, sizeof err) == 0)
            swarm_round_add_service(r, &s);
        if (swarm_parse_task(body, size, &t, err, sizeof err) == 1) {
            swarm_round_add_task(r, &t);
            /* Attached to whatever network the task names. */
            for (size_t i = 0; i < t.naddrs; i++) {
                struct swarm_network on = {0};
                memcpy(on.id, t.addrs[i].net_id, sizeof on.id);
                memcpy(on.name, t.addrs[i].net_id, sizeof on.id);
                swarm_round_add_network(r, &on, pass == 0);
            }
        }
        if (swarm_parse_node(body, size, id, &ready, err, sizeof err) == 0)
            swarm_round_add_node(r, id, ready);
        swarm_parse_view(body, size, view, r, err, sizeof err);
        swarm_parse_members(body, size, member, r, err, sizeof err);
        if (swarm_parse_local_task(body, size, &t, &s, err, sizeof err) == 1)
            swarm_round_add_local(r, &t, &s);
        struct swarm_outcome o;
        swarm_round_apply(r, h, reg, &o);
        struct addr a[4];
        registry_resolve(reg, body, size < 200 ? size : 200, AF_INET, a, 4);
    }
    /* An empty round takes everything out again. */
    swarm_round_reset(r);
    struct swarm_outcome o;
    if (swarm_round_apply(r, h, reg, &o) == 0 && registry_count(reg) != 0)
        abort();
out:
    swarm_held_free(h, reg);
    swarm_round_free(r);
    registry_free(reg);
    return 0;
}
