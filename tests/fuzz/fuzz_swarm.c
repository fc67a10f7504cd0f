/* libFuzzer target: Swarm's answers come from the engine (or whatever
 * answers on its socket): every parser of them, through the round's feed,
 * then the round applied to a registry, must neither crash nor leave the
 * registry holding what a round no longer has. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/swarm_feed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    char err[256];
    struct registry *reg = registry_new();
    struct swarm_round *r = swarm_round_new();
    struct swarm_held *h = swarm_held_new();
    if (!reg || !r || !h)
        goto out;
    static const enum swarm_answer lists[] = {SWARM_NETWORKS, SWARM_LOCAL,
                                              SWARM_SERVICES, SWARM_NODES,
                                              SWARM_TASKS};
    for (int pass = 0; pass < 2; pass++) {
        swarm_round_reset(r);
        /* The input as an overlay berth is attached to, on the first pass. */
        struct swarm_network n = {.nsubnets = 1};
        memcpy(n.id, "netid", 6);
        memcpy(n.name, "lab_net", 8);
        addr_from_ip(&n.subnets[0].net, "10.0.0.0", 0);
        n.subnets[0].prefix = 8;
        swarm_round_add_network(r, &n, pass == 0);
        for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
            swarm_feed_elem(r, lists[i], body, size, err, sizeof err);
        swarm_feed_body(r, SWARM_GATEWAY, body, size, err, sizeof err);
        swarm_feed_body(r, SWARM_VIEW, body, size, err, sizeof err);
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
