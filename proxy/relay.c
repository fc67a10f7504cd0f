#include "berth/relay.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "berth/clock.h"
#include "berth/config.h"
#include "berth/dgram.h"
#include "berth/hash.h"
#include "berth/log_limit.h"
#include "berth/pipe_pool.h"
#include "berth/registry.h"
#include "berth/transparent.h"

/* Idle pipes kept for reuse: enough for the bursts of a busy port, small
 * next to the fd limit. */
#define PIPES_KEPT 256
#define CONNECT_TIMEOUT_S 10
#define UDP_MAX_FLOWS 4096
/* Replicas looked at per resolution: a new connection tries at most these. */
#define RESOLVE_MAX 16
/* How long a replica that refused or timed out goes last. Docker's event
 * stream takes a stopped container out of the name within a second, so
 * this covers replicas that run but do not accept: a process still
 * starting or crashed inside a live container, a full backlog, a paused
 * container. 5 s spares a burst of new connections a refusal each, or a
 * share of the connect budget each for a silent replica, while one that
 * comes back is in the rotation again within 5 s (nginx's fail_timeout
 * is 10 s). */
#define PASS_OVER_MS 5000
/* The passed-over table: PASS_SETS sets of PASS_WAYS marks, a set chosen
 * by the address's hash, so it stays this size whatever number of
 * addresses ever fail. A mark evicts an expired one or the one due soonest,
 * which at worst is tried again early. */
#define PASS_SETS 16
#define PASS_WAYS 4
/* Lines said per connection: followed per port and reason, this many
 * kinds at once (past that counted together), summarised this often. */
#define SAID_KINDS 64
#define SAID_WINDOW_MS 10000

struct pass_mark {
    struct addr a;
    uint64_t until_ms; /* 0: free */
};

struct relay_passed {
    struct pass_mark set[PASS_SETS][PASS_WAYS];
    uint64_t last_until_ms; /* past this no mark holds: skip the lookups */
};

/* A summary's words are "MAPPING<SAID_SEP>message" (limited_say): the
 * mapping goes out as a field, the separator never appears in a label. */
#define SAID_SEP '\x1f'

static void say_summary(void *arg, enum log_level level, const char *line)
{
    (void)arg;
    const char *sep = strchr(line, SAID_SEP);
    if (!sep) { /* the "more lines not shown" line */
        log_msg(level, "%s", line);
        return;
    }
    char mapping[LOG_LIMIT_TEXT];
    size_t n = (size_t)(sep - line);
    memcpy(mapping, line, n);
    mapping[n] = '\0';
    log_at(level, mapping, NULL, "%s", sep + 1);
}

static void arm_said(struct relay_ctx *ctx, uint64_t now)
{
    uint64_t due = log_limit_due(ctx->said);
    if (due == UINT64_MAX || evtimer_pending(ctx->said_timer, NULL))
        return;
    struct timeval tv = clock_tv(due > now ? due - now : 0);
    evtimer_add(ctx->said_timer, &tv);
}

static void on_said_due(evutil_socket_t fd, short what, void *arg)
{
    struct relay_ctx *ctx = arg;
    (void)fd;
    (void)what;
    uint64_t now = clock_ms();
    log_limit_flush(ctx->said, now);
    arm_said(ctx, now);
}

struct relay_ctx *relay_ctx_new(struct event_base *base, struct registry *reg)
{
    struct relay_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    ctx->base = base;
    ctx->reg = reg;
    ctx->scratch_len = pipe_pool_capacity();
    ctx->connect_timeout.tv_sec = CONNECT_TIMEOUT_S;
    ctx->udp_timeout = CONFIG_UDP_TIMEOUT;
    ctx->udp_max_flows = UDP_MAX_FLOWS;
    ctx->tcp_keepalive = CONFIG_TCP_KEEPALIVE;
    sock_keepalive_kernel(&ctx->tcp_keepalive_kernel);
    ctx->pass_over_ms = PASS_OVER_MS;
    if (!(ctx->pipes = pipe_pool_new(PIPES_KEPT)) ||
        !(ctx->scratch = malloc(ctx->scratch_len)) ||
        !(ctx->said = log_limit_new(SAID_KINDS, SAID_WINDOW_MS, say_summary, NULL)) ||
        !(ctx->said_timer = evtimer_new(base, on_said_due, ctx))) {
        relay_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

void relay_ctx_free(struct relay_ctx *ctx)
{
    if (!ctx)
        return;
    if (ctx->said) /* what repeated until now */
        log_limit_flush_scope(ctx->said, NULL, clock_ms());
    log_limit_free(ctx->said);
    if (ctx->said_timer)
        event_free(ctx->said_timer);
    pipe_pool_free(ctx->pipes);
    dgram_batch_free(ctx->udp);
    dgram_out_free(ctx->udp_out);
    free(ctx->passed);
    transparent_free(ctx->transparent);
    free(ctx->scratch);
    free(ctx);
}

struct dgram_batch *relay_dgram_batch(struct relay_ctx *ctx)
{
    if (!ctx->udp)
        ctx->udp = dgram_batch_new();
    return ctx->udp;
}

struct dgram_out *relay_dgram_out(struct relay_ctx *ctx)
{
    if (!ctx->udp_out)
        ctx->udp_out = dgram_out_new();
    return ctx->udp_out;
}

static struct pass_mark *pass_set(struct relay_passed *p, const struct addr *a)
{
    return p->set[addr_hash(a) % PASS_SETS];
}

void relay_pass_over(struct relay_ctx *ctx, const struct addr *a)
{
    /* Out of memory: the replica merely keeps its place in the rotation. */
    if (!ctx->passed && !(ctx->passed = calloc(1, sizeof *ctx->passed)))
        return;
    uint64_t until = clock_ms() + ctx->pass_over_ms;
    struct pass_mark *set = pass_set(ctx->passed, a), *pick = &set[0];
    for (int i = 0; i < PASS_WAYS; i++) {
        if (addr_equal(&set[i].a, a)) {
            pick = &set[i];
            break;
        }
        if (set[i].until_ms < pick->until_ms)
            pick = &set[i];
    }
    pick->a = *a;
    pick->until_ms = until;
    if (until > ctx->passed->last_until_ms)
        ctx->passed->last_until_ms = until;
}

static bool passed_over(struct relay_passed *p, const struct addr *a, uint64_t now)
{
    const struct pass_mark *set = pass_set(p, a);
    for (int i = 0; i < PASS_WAYS; i++)
        if (set[i].until_ms > now && addr_equal(&set[i].a, a))
            return true;
    return false;
}

size_t relay_resolve(struct relay_ctx *ctx, const struct mapping *m, unsigned *rr,
                     struct addr *out, size_t max)
{
    /* A stale table may send clients to someone else's address. */
    if (!ctx->reg || max == 0 || registry_stale(ctx->reg))
        return 0;
    struct addr found[RESOLVE_MAX];
    size_t len = strlen(m->target_name), cap = max < RESOLVE_MAX ? max : RESOLVE_MAX;
    /* A Swarm service's name answers its VIP in DNS; berth goes to its
     * tasks itself ("tasks.<name>"), balancing and following them where
     * no VIP may answer. */
    const char *name = m->target_name;
    char tasks[sizeof m->target_name + 8];
    if (registry_swarm_count(ctx->reg) &&
        snprintf(tasks, sizeof tasks, "tasks.%s", name) < (int)sizeof tasks &&
        registry_resolve(ctx->reg, tasks, len + 6, AF_INET, NULL, 0) >= 0) {
        name = tasks;
        len += 6;
    }
    /* The registry rotates: with more replicas than fit here, each
     * connection still starts one further along all of them. */
    unsigned start = (*rr)++;
    int n = registry_resolve_from(ctx->reg, name, len, AF_INET, start, found, cap);
    if (n <= 0)
        n = registry_resolve_from(ctx->reg, name, len, AF_INET6, start, found, cap);
    if (n <= 0)
        return 0;
    size_t k = (size_t)n < cap ? (size_t)n : cap;
    size_t first = 0;
    /* Only TCP and SCTP mark replicas (a UDP flow has no connect to fail),
     * and the clock is read only while some mark may hold. */
    uint64_t now = 0;
    bool marks = m->proto != PROTO_UDP && ctx->passed &&
                 (now = clock_ms()) < ctx->passed->last_until_ms;
    bool late[RESOLVE_MAX];
    for (size_t i = 0; i < k; i++) {
        addr_set_port(&found[i], m->target_port);
        late[i] = marks && passed_over(ctx->passed, &found[i], now);
    }
    /* The rotation twice: first the replicas not passed over, then those. */
    size_t w = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < k; i++)
            if (late[(first + i) % k] == (pass == 1))
                out[w++] = found[(first + i) % k];
    return k;
}

uint64_t relay_names_version(const struct relay_ctx *ctx)
{
    return ctx->reg ? registry_version(ctx->reg) : 0;
}

void relay_log(enum log_level level, const struct mapping *m,
               const struct addr *client, const char *fmt, ...)
{
    if (level > log_get_level())
        return;
    char peer[ADDR_STRLEN], msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_at(level, m->label, addr_format(client, peer, sizeof peer), "%s", msg);
}

/* Why relay_resolve finds nothing, as relay_unresolved says it. */
enum unresolved {
    UNRESOLVED_NONE = 1, /* synced: nothing runs by that name */
    UNRESOLVED_STALE,
    UNRESOLVED_UNKNOWN, /* never synced */
    UNRESOLVED_LOST,    /* synced once, the engine cannot be followed now */
};

static enum unresolved unresolved_state(const struct relay_ctx *ctx, const char **why)
{
    *why = ctx->reg ? registry_engine_why(ctx->reg) : "";
    if (ctx->reg && registry_stale(ctx->reg))
        return UNRESOLVED_STALE;
    if (ctx->reg && !registry_known(ctx->reg))
        return UNRESOLVED_UNKNOWN;
    return (*why)[0] ? UNRESOLVED_LOST : UNRESOLVED_NONE;
}

uint64_t relay_unresolved_key(const struct relay_ctx *ctx)
{
    const char *why;
    enum unresolved st = unresolved_state(ctx, &why);
    /* The engine's why is a few dozen bytes: hashed, not formatted. */
    return (uint64_t)st << 32 | hash_bytes(HASH_INIT, why, strlen(why));
}

void relay_unresolved(const struct relay_ctx *ctx, const struct mapping *m, char *out,
                      size_t outlen)
{
    const char *name = m->target_name, *why;
    switch (unresolved_state(ctx, &why)) {
    case UNRESOLVED_STALE:
        snprintf(out, outlen,
                 "'%s': not resolved while berth's container list is stale (no sync "
                 "with the Docker engine for longer than --stale-after%s%s)",
                 name, why[0] ? ": " : "", why);
        return;
    case UNRESOLVED_UNKNOWN:
        if (why[0])
            snprintf(
                out, outlen,
                "'%s': nothing known yet: berth cannot follow the Docker engine: %s",
                name, why);
        else
            snprintf(out, outlen,
                     "'%s': nothing known yet: the first sync with the Docker engine "
                     "has not ended",
                     name);
        return;
    case UNRESOLVED_LOST:
        snprintf(out, outlen,
                 "no running container '%s' (as of the last sync; berth cannot follow "
                 "the Docker engine now: %s)",
                 name, why);
        return;
    case UNRESOLVED_NONE:
        break;
    }
    snprintf(out, outlen, "no running container '%s'", name);
}

uint64_t relay_key(enum relay_said kind, int err, const struct addr *a)
{
    uint64_t h = (uint64_t)kind << 56 | (uint64_t)(unsigned)err << 32;
    return a ? h | addr_hash(a) : h;
}

/* The slot for the summary's words when the line is to be said now;
 * NULL: only counted (or filtered out). */
static char *limited_accept(struct relay_ctx *ctx, enum log_level level,
                            const struct mapping *m, uint64_t key)
{
    if (level > log_get_level())
        return NULL;
    uint64_t now = clock_ms();
    char *text = log_limit_event(ctx->said, m, key, level, now);
    arm_said(ctx, now);
    return text;
}

static void limited_say(enum log_level level, const struct mapping *m,
                        const struct addr *client, char *text, const char *msg)
{
    char peer[ADDR_STRLEN];
    log_at(level, m->label, addr_format(client, peer, sizeof peer), "%s", msg);
    /* The summary says it without the client: it stands for many. */
    if (snprintf(text, LOG_LIMIT_TEXT, "%s%c%s", m->label, SAID_SEP, msg) >=
        LOG_LIMIT_TEXT)
        memcpy(text + LOG_LIMIT_TEXT - 4, "...", 4); /* cut: it still says which */
}

void relay_log_limited(struct relay_ctx *ctx, enum log_level level,
                       const struct mapping *m, const struct addr *client,
                       uint64_t key, const char *fmt, ...)
{
    char *text = limited_accept(ctx, level, m, key);
    if (!text)
        return;
    char msg[LOG_LIMIT_TEXT];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    limited_say(level, m, client, text, msg);
}

void relay_log_unresolved(struct relay_ctx *ctx, const struct mapping *m,
                          const struct addr *client, const char *suffix)
{
    char *text = limited_accept(ctx, LOG_INFO, m,
                                relay_key(RELAY_SAID_UNRESOLVED, 0, NULL) ^
                                    relay_unresolved_key(ctx));
    if (!text)
        return;
    char why[REG_WHY_MAX + 200], msg[LOG_LIMIT_TEXT];
    relay_unresolved(ctx, m, why, sizeof why);
    if (snprintf(msg, sizeof msg, "%s%s", why, suffix) >= (int)sizeof msg)
        memcpy(msg + sizeof msg - 4, "...", 4);
    limited_say(LOG_INFO, m, client, text, msg);
}

void relay_forget(struct relay_ctx *ctx, const struct mapping *m)
{
    log_limit_flush_scope(ctx->said, m, clock_ms());
    arm_said(ctx, clock_ms());
}

/* /status */

bool relay_passed_over(const struct relay_ctx *ctx, const struct addr *a)
{
    return ctx->passed && passed_over(ctx->passed, a, clock_ms());
}
