#include "berth/relay.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "berth/dgram.h"
#include "berth/pipe_pool.h"
#include "berth/registry.h"

/* Idle pipes kept for reuse: enough for the bursts of a busy port, small
 * next to the fd limit. */
#define PIPES_KEPT 256
#define CONNECT_TIMEOUT_S 10
#define UDP_TIMEOUT_S 90
#define UDP_MAX_FLOWS 4096
/* Replicas looked at per resolution: a new connection tries at most these. */
#define RESOLVE_MAX 16

struct relay_ctx *relay_ctx_new(struct event_base *base, struct registry *reg)
{
    struct relay_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    ctx->base = base;
    ctx->reg = reg;
    ctx->scratch_len = pipe_pool_capacity();
    ctx->connect_timeout.tv_sec = CONNECT_TIMEOUT_S;
    ctx->udp_timeout = UDP_TIMEOUT_S;
    ctx->udp_max_flows = UDP_MAX_FLOWS;
    if (!(ctx->pipes = pipe_pool_new(PIPES_KEPT)) ||
        !(ctx->scratch = malloc(ctx->scratch_len))) {
        relay_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

void relay_ctx_free(struct relay_ctx *ctx)
{
    if (!ctx)
        return;
    pipe_pool_free(ctx->pipes);
    dgram_batch_free(ctx->udp);
    free(ctx->scratch);
    free(ctx);
}

struct dgram_batch *relay_dgram_batch(struct relay_ctx *ctx)
{
    if (!ctx->udp)
        ctx->udp = dgram_batch_new();
    return ctx->udp;
}

size_t relay_resolve(struct relay_ctx *ctx, const struct mapping *m, unsigned *rr,
                     struct addr *out, size_t max)
{
    if (!ctx->reg || max == 0)
        return 0;
    struct addr found[RESOLVE_MAX];
    size_t len = strlen(m->target_name), cap = max < RESOLVE_MAX ? max : RESOLVE_MAX;
    int n = registry_resolve(ctx->reg, m->target_name, len, AF_INET, found, cap);
    if (n <= 0)
        n = registry_resolve(ctx->reg, m->target_name, len, AF_INET6, found, cap);
    if (n <= 0)
        return 0;
    size_t k = (size_t)n < cap ? (size_t)n : cap;
    size_t first = (*rr)++ % k;
    for (size_t i = 0; i < k; i++) {
        out[i] = found[(first + i) % k];
        addr_set_port(&out[i], m->target_port);
    }
    return k;
}

uint64_t relay_names_version(const struct relay_ctx *ctx)
{
    return ctx->reg ? registry_version(ctx->reg) : 0;
}
