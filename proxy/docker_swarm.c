#include "berth/docker_swarm.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/clock.h"
#include "berth/config.h"
#include "berth/docker_fault.h"
#include "berth/invariant.h"
#include "berth/json_split.h"
#include "berth/log.h"
#include "berth/swarm_feed.h"
#include "berth/swarm_round.h"

#define REQUEST_TIMEOUT_MS 10000
/* A list element (a task is some 2 KB); what one data callback may hold. */
#define ELEM_MAX (1u << 20)
#define PIECE_MAX (8u << 20)
/* A network's verbose view names every task on it. */
#define VIEW_MAX (32u << 20)
#define BODY_MAX (16u << 20)
/* An event's round: soon, and one for a burst of events. */
#define POKE_MS 500
/* Swarm has no task events: after a service event (or at start), while
 * some replicated service runs fewer tasks than it wants, look again every
 * second, at most this many times, so a new or scaled service is followed
 * as its tasks start rather than a poll interval later. */
#define QUICK_MS 1000
#define QUICK_ROUNDS 30

/* filters={"driver":["overlay"]}, {"label":["com.docker.swarm.task.id"]}
 * and {"desired-state":["running"]} */
#define OVERLAYS "%7B%22driver%22%3A%5B%22overlay%22%5D%7D"
#define TASK_CONTAINERS "%7B%22label%22%3A%5B%22com.docker.swarm.task.id%22%5D%7D"
#define RUNNING "%7B%22desired-state%22%3A%5B%22running%22%5D%7D"

/* Where a round is; one request at a time. */
enum sw_step {
    SW_IDLE,     /* between rounds (or stopped) */
    SW_PING,     /* which role: the Swarm header */
    SW_INFO,     /* ... or /info's, before API 1.42 */
    SW_NETWORKS, /* the overlays, and which are attached */
    SW_GATEWAY,  /* docker_gwbridge's members (some overlay not attached) */
    SW_LOCAL,    /* this node's task containers */
    SW_SERVICES, /* manager, attached: the services */
    SW_NODES,    /* ... the nodes */
    SW_TASKS,    /* ... the running tasks */
    SW_VIEW,     /* worker, attached: each attached overlay's verbose view */
};

static const char *const step_what[] = {
    "",
    "GET /_ping",
    "GET /info",
    "GET /networks",
    "GET /networks/docker_gwbridge",
    "GET /containers/json",
    "GET /services",
    "GET /nodes",
    "GET /tasks",
    "GET /networks (verbose)",
};

struct docker_swarm {
    struct event_base *base;
    struct http *http;
    const struct http_target *target;
    struct registry *reg;
    docker_swarm_changed_fn *changed;
    void *arg;
    char version[16];
    unsigned poll_s;
    bool running;    /* between start and stop */
    bool again;      /* poked during a round: another one soon after */
    bool converging; /* the last round: some service short of its tasks */
    unsigned quick;  /* quick rounds left (QUICK_ROUNDS) */
    enum sw_step step;
    char role[8];   /* "manager", "worker" or "" */
    bool role_said; /* /_ping had a Swarm header (API 1.42+) */
    struct http_req *req;
    struct event *timer;
    struct json_split js;
    struct swarm_round *round;
    struct swarm_held *held;
    size_t view_next; /* SW_VIEW: the next network to view */
    bool said_follow; /* the summary line, once per role */
    char said_role[8];
    char last_why[300]; /* a failure, said once until another */
    /* Overlays said to be out of reach, by name, once each. */
    char (*said_nets)[SWARM_NAME_MAX];
    size_t nsaid;
};

static void run_step(struct docker_swarm *s, enum sw_step step);

static void schedule(struct docker_swarm *s, uint64_t ms)
{
    struct timeval tv = clock_tv(ms);
    evtimer_add(s->timer, &tv);
}

/* The round is over (or failed): the next one after the poll interval. */
static void round_end(struct docker_swarm *s)
{
    s->step = SW_IDLE;
    if (!s->running || !s->poll_s)
        return;
    uint64_t ms = (uint64_t)s->poll_s * 1000;
    if (s->again)
        ms = POKE_MS;
    else if (s->converging && s->quick && QUICK_MS < ms) {
        s->quick--;
        ms = QUICK_MS;
    }
    schedule(s, ms);
    s->again = false;
}

static void round_failed(struct docker_swarm *s, const char *why)
{
    char line[sizeof s->last_why];
    snprintf(line, sizeof line, "%s: %s", step_what[s->step], why);
    if (strcmp(line, s->last_why) != 0) {
        log_warn("swarm: %s; keeping the last %zu entries, trying again", line,
                 swarm_held_count(s->held));
        snprintf(s->last_why, sizeof s->last_why, "%s", line);
    }
    round_end(s);
}

/* Out of the swarm (or following it switched off): its names go. */
static void forget_all(struct docker_swarm *s, const char *why)
{
    size_t n = swarm_held_clear(s->held, s->reg);
    s->nsaid = 0; /* overlays are said again if they come back */
    if (n) {
        log_info("swarm: %s; %zu entries dropped", why, n);
        s->changed(s->arg);
    }
    s->said_follow = false;
}

/* ---- the round's end ---- */

static void apply(struct docker_swarm *s)
{
    struct swarm_outcome out;
    if (swarm_round_apply(s->round, s->held, s->reg, &out) < 0) {
        round_failed(s, "out of memory");
        return;
    }
    s->last_why[0] = '\0';
    s->converging = out.converging;
    if (!s->said_follow || strcmp(s->said_role, s->role) != 0) {
        log_info("swarm: following %zu services, %zu tasks as a %s%s", out.services,
                 out.tasks, s->role,
                 strcmp(s->role, "worker") == 0 ? " (network view)" : "");
        s->said_follow = true;
        snprintf(s->said_role, sizeof s->said_role, "%s", s->role);
    }
    if (out.put || out.dropped)
        s->changed(s->arg);
    round_end(s);
}

/* ---- answers, fed into the round (swarm_feed.h) ---- */

static enum sw_step after(struct docker_swarm *s, enum sw_step done);

static enum swarm_answer answer_of(enum sw_step step)
{
    switch (step) {
    case SW_NETWORKS:
        return SWARM_NETWORKS;
    case SW_LOCAL:
        return SWARM_LOCAL;
    case SW_SERVICES:
        return SWARM_SERVICES;
    case SW_NODES:
        return SWARM_NODES;
    case SW_TASKS:
        return SWARM_TASKS;
    case SW_GATEWAY:
        return SWARM_GATEWAY;
    default:
        return SWARM_VIEW;
    }
}

static int elem(void *arg, const char *e, size_t len, char *err, size_t errlen)
{
    struct docker_swarm *s = arg;
    return swarm_feed_elem(s->round, answer_of(s->step), e, len, err, errlen);
}

static void on_list_data(void *arg, const char *data, size_t len)
{
    struct docker_swarm *s = arg;
    char err[200];
    if (json_split_feed(&s->js, data, len, elem, s, err, sizeof err) < 0) {
        http_cancel(s->req);
        s->req = NULL;
        round_failed(s, err);
    }
}

static void on_list_done(void *arg, long status, const char *body, size_t len,
                         const struct http_error *error)
{
    struct docker_swarm *s = arg;
    char err[400];
    s->req = NULL;
    if (error || status != 200) {
        docker_fault_explain(s->target, error, status, body, len, err, sizeof err);
        round_failed(s, err);
    } else if (json_split_end(&s->js, err, sizeof err) < 0) {
        round_failed(s, err);
    } else {
        run_step(s, after(s, s->step));
    }
}

/* docker_gwbridge's members, or a network's view: whole. */
static void on_body_done(void *arg, long status, const char *body, size_t len,
                         const struct http_error *error)
{
    struct docker_swarm *s = arg;
    char err[400];
    s->req = NULL;
    if (s->step == SW_GATEWAY && !error && status == 404) {
        body = "{}"; /* no task ever ran here */
        len = 2;
    } else if (error || status != 200) {
        docker_fault_explain(s->target, error, status, body, len, err, sizeof err);
        round_failed(s, err);
        return;
    }
    if (swarm_feed_body(s->round, answer_of(s->step), body, len, err, sizeof err) <
        0) {
        round_failed(s, err);
        return;
    }
    run_step(s, after(s, s->step));
}

/* ---- the order of a round ---- */

static bool any_attached(const struct docker_swarm *s, bool want)
{
    for (size_t i = 0; i < swarm_round_networks(s->round); i++) {
        bool on;
        swarm_round_network(s->round, i, &on);
        if (on == want)
            return true;
    }
    return false;
}

/* Says once per overlay that berth reaches only this node's tasks on it. */
static void say_unattached(struct docker_swarm *s)
{
    for (size_t i = 0; i < swarm_round_networks(s->round); i++) {
        bool on;
        const struct swarm_network *n = swarm_round_network(s->round, i, &on);
        bool said = false;
        for (size_t k = 0; k < s->nsaid && !said; k++)
            said = strcmp(s->said_nets[k], n->name) == 0;
        if (on || said)
            continue;
        char sub[ADDR_STRLEN + 8] = "no subnet";
        if (n->nsubnets) {
            addr_format_ip(&n->subnets[0].net, sub, sizeof sub);
            size_t l = strlen(sub);
            snprintf(sub + l, sizeof sub - l, "/%u", n->subnets[0].prefix);
        }
        log_warn(
            "swarm: not attached to overlay '%s' (%s): only this node's tasks on it "
            "are reachable, through docker_gwbridge; run berth as a global service "
            "on it (README: Across hosts with Swarm)",
            n->name, sub);
        void *v = realloc(s->said_nets, (s->nsaid + 1) * sizeof *s->said_nets);
        if (!v)
            return;
        s->said_nets = v;
        snprintf(s->said_nets[s->nsaid++], SWARM_NAME_MAX, "%s", n->name);
    }
}

static enum sw_step after(struct docker_swarm *s, enum sw_step done)
{
    bool manager = strcmp(s->role, "manager") == 0;
    switch (done) {
    case SW_NETWORKS:
        say_unattached(s);
        if (any_attached(s, false))
            return SW_GATEWAY;
        /* Every overlay attached: no local detour. */
        __attribute__((fallthrough));
    case SW_LOCAL:
        if (!any_attached(s, true))
            return SW_IDLE;
        return manager ? SW_SERVICES : SW_VIEW;
    case SW_GATEWAY:
        return SW_LOCAL;
    case SW_SERVICES:
        return SW_NODES;
    case SW_NODES:
        return SW_TASKS;
    case SW_TASKS:
        return SW_IDLE;
    case SW_VIEW:
        return SW_VIEW; /* run_step moves on to the next network, or ends */
    default:
        return SW_IDLE;
    }
}

/* The next attached network to view, from s->view_next; NULL: none left. */
static const struct swarm_network *next_view(struct docker_swarm *s)
{
    while (s->view_next < swarm_round_networks(s->round)) {
        bool on;
        const struct swarm_network *n = swarm_round_network(s->round, s->view_next++,
                                                            &on);
        if (on)
            return n;
    }
    return NULL;
}

static void run_step(struct docker_swarm *s, enum sw_step step)
{
    char path[256];
    const char *v = s->version;
    size_t max = PIECE_MAX;
    bool list = true;
    if (step == SW_VIEW && s->step != SW_VIEW)
        s->view_next = 0;
    const struct swarm_network *view = step == SW_VIEW ? next_view(s) : NULL;
    if (step == SW_IDLE || (step == SW_VIEW && !view)) {
        apply(s);
        return;
    }
    s->step = step;
    switch (step) {
    case SW_NETWORKS:
        snprintf(path, sizeof path, "/v%s/networks?filters=%s", v, OVERLAYS);
        break;
    case SW_GATEWAY:
        snprintf(path, sizeof path, "/v%s/networks/docker_gwbridge", v);
        list = false;
        max = BODY_MAX;
        break;
    case SW_LOCAL:
        snprintf(path, sizeof path, "/v%s/containers/json?filters=%s", v,
                 TASK_CONTAINERS);
        break;
    case SW_SERVICES:
        snprintf(path, sizeof path, "/v%s/services", v);
        break;
    case SW_NODES:
        snprintf(path, sizeof path, "/v%s/nodes", v);
        break;
    case SW_TASKS:
        snprintf(path, sizeof path, "/v%s/tasks?filters=%s", v, RUNNING);
        break;
    default: /* SW_VIEW */
        snprintf(path, sizeof path, "/v%s/networks/%s?verbose=true", v, view->id);
        list = false;
        max = VIEW_MAX;
        break;
    }
    json_split_reset(&s->js);
    struct http_callbacks cb = {.data = list ? on_list_data : NULL,
                                .done = list ? on_list_done : on_body_done,
                                .arg = s};
    if (!(s->req = http_get(s->http, s->target, path, REQUEST_TIMEOUT_MS, max, &cb)))
        round_failed(s, "cannot start a request");
}

/* ---- the role, from /_ping's Swarm header ---- */

/* The role known: the round goes on, or ends without a swarm. */
static void role_known(struct docker_swarm *s)
{
    if (!s->role[0]) {
        forget_all(s, "this engine is not in a swarm (any more)");
        round_end(s);
        return;
    }
    swarm_round_reset(s->round);
    run_step(s, SW_NETWORKS);
}

static void on_info(void *arg, long status, const char *body, size_t len,
                    const struct http_error *error)
{
    struct docker_swarm *s = arg;
    char err[400];
    s->req = NULL;
    /* An engine without /info (a stand-in of the Engine API) is no swarm
     * node: nothing to say. */
    if (!error && status == 404) {
        s->role[0] = '\0';
    } else if (error || status != 200) {
        docker_fault_explain(s->target, error, status, body, len, err, sizeof err);
        round_failed(s, err);
        return;
    } else if (swarm_parse_info(body, len, s->role, err, sizeof err) < 0) {
        round_failed(s, err);
        return;
    }
    role_known(s);
}

static void on_ping_headers(void *arg, long status, const char *headers)
{
    struct docker_swarm *s = arg;
    char v[32] = "";
    s->role[0] = '\0';
    s->role_said = status == 200 &&
                   http_header_value(headers, "Swarm", v, sizeof v) == 0;
    if (strcmp(v, "active/manager") == 0)
        snprintf(s->role, sizeof s->role, "manager");
    else if (strcmp(v, "active/worker") == 0)
        snprintf(s->role, sizeof s->role, "worker");
}

static void on_ping(void *arg, long status, const char *body, size_t len,
                    const struct http_error *error)
{
    struct docker_swarm *s = arg;
    char err[400], path[64];
    s->req = NULL;
    if (error || status != 200) {
        docker_fault_explain(s->target, error, status, body, len, err, sizeof err);
        round_failed(s, err);
        return;
    }
    if (s->role_said) {
        role_known(s);
        return;
    }
    s->step = SW_INFO;
    snprintf(path, sizeof path, "/v%s/info", s->version);
    struct http_callbacks cb = {.done = on_info, .arg = s};
    if (!(s->req = http_get(s->http, s->target, path, REQUEST_TIMEOUT_MS, BODY_MAX,
                            &cb)))
        round_failed(s, "cannot start a request");
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct docker_swarm *s = arg;
    (void)fd;
    (void)what;
    if (!s->running || s->step != SW_IDLE)
        return;
    s->step = SW_PING;
    struct http_callbacks cb = {.headers = on_ping_headers, .done = on_ping, .arg = s};
    if (!(s->req = http_get(s->http, s->target, "/_ping", REQUEST_TIMEOUT_MS, 64 << 10,
                            &cb)))
        round_failed(s, "cannot start a request");
}

/* ---- set-up ---- */

struct docker_swarm *docker_swarm_new(struct event_base *base, struct http *http,
                                      const struct http_target *target,
                                      struct registry *reg,
                                      docker_swarm_changed_fn *changed, void *arg)
{
    struct docker_swarm *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    *s = (struct docker_swarm){.base = base,
                               .http = http,
                               .target = target,
                               .reg = reg,
                               .changed = changed,
                               .arg = arg,
                               .poll_s = CONFIG_SWARM_POLL,
                               .js = JSON_SPLIT_INIT(ELEM_MAX)};
    if (!(s->timer = evtimer_new(base, on_timer, s)) ||
        !(s->round = swarm_round_new()) || !(s->held = swarm_held_new())) {
        docker_swarm_free(s);
        return NULL;
    }
    return s;
}

void docker_swarm_free(struct docker_swarm *s)
{
    if (!s)
        return;
    docker_swarm_stop(s);
    if (s->timer)
        event_free(s->timer);
    swarm_held_free(s->held, s->reg);
    swarm_round_free(s->round);
    json_split_release(&s->js);
    free(s->said_nets);
    free(s);
}

void docker_swarm_set_poll(struct docker_swarm *s, unsigned seconds)
{
    s->poll_s = seconds;
}

void docker_swarm_start(struct docker_swarm *s, const char *version)
{
    snprintf(s->version, sizeof s->version, "%s", version);
    if (!s->poll_s) {
        forget_all(s, "following Swarm is off (--swarm-poll 0)");
        return;
    }
    s->running = true;
    s->quick = QUICK_ROUNDS;
    if (s->step == SW_IDLE)
        schedule(s, 0);
}

void docker_swarm_stop(struct docker_swarm *s)
{
    s->running = false;
    http_cancel(s->req);
    s->req = NULL;
    s->step = SW_IDLE;
    s->again = false;
    if (s->timer)
        evtimer_del(s->timer);
}

void docker_swarm_poke(struct docker_swarm *s)
{
    if (!s->running)
        return;
    s->quick = QUICK_ROUNDS;
    if (s->step != SW_IDLE) {
        s->again = true;
        return;
    }
    struct timeval left;
    if (evtimer_pending(s->timer, &left)) {
        /* Already due soon: leave it. */
        struct timeval now;
        event_base_gettimeofday_cached(s->base, &now);
        if (evutil_timercmp(&left, &now, <) ||
            (left.tv_sec - now.tv_sec) * 1000 <= POKE_MS)
            return;
    }
    schedule(s, POKE_MS);
}

const char *docker_swarm_role(const struct docker_swarm *s) { return s->role; }
