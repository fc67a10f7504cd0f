#include "berth/docker.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "berth/backoff.h"
#include "berth/clock.h"
#include "berth/config.h"
#include "berth/docker_endpoint.h"
#include "berth/docker_fault.h"
#include "berth/docker_parse.h"
#include "berth/docker_swarm.h"
#include "berth/docker_sync.h"
#include "berth/invariant.h"
#include "berth/line_split.h"
#include "berth/log.h"
#include "berth/metrics.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 8000
#define REQUEST_TIMEOUT_MS 10000
/* The longest event line; a longer one is dropped to its end. */
#define LINE_MAX_BYTES (1u << 20)
/* What may wait for one callback of the stream (libcurl hands over 16 KB
 * a read), and the most a /_ping or /networks answer may hold. */
#define EVENTS_PIECE_MAX (8u << 20)
#define PING_BODY_MAX (64u << 10)
#define NETWORKS_BODY_MAX (16u << 20)
/* While syncing, the registry changes with every inspect answer: the
 * changed callback (labels walk every container) is told at most this
 * often, then once more when the sync ends. Once synced, at once. */
#define CHANGED_SYNCING_MS 200
/* During an outage the same failure is said again this often (as a
 * warning: a log filtered to warnings must still show it lasts). */
#define OUTAGE_REMIND_MS (5 * 60 * 1000)
/* filters={"type":["container","network","service","node"]} (the last two
 * come from managers only: they tell docker_swarm to look again) */
#define EVENT_FILTER                                                                  \
    "%7B%22type%22%3A%5B%22container%22%2C%22network%22%2C%22service%22%2C%22node%22" \
    "%5D%7D"

/* Where the client is with the daemon; set_phase makes every change. */
enum docker_phase {
    DOCKER_IDLE,       /* made, not started yet */
    DOCKER_CONNECTING, /* GET /_ping (the API version), then GET /events
                         * until its headers say the stream is up */
    DOCKER_LISTING,    /* the stream is up (events apply from now on):
                         * GET /containers/json and /networks in flight */
    DOCKER_SYNCING,    /* list applied; inspects, /networks still running */
    DOCKER_SYNCED,     /* the table matches the daemon; following events */
    DOCKER_WAITING,    /* after a failure: no request runs, the retry timer
                         * does; the last table is still served */
};

struct docker {
    struct event_base *base;
    struct registry *reg;
    struct http *http;
    struct docker_endpoint ep;
    struct docker_sync *sync;   /* the list and the inspects */
    struct docker_swarm *swarm; /* services and tasks, on a swarm node */
    struct metrics *metrics;    /* NULL: nothing counted */
    char version[16];
    struct http_req *ping, *events, *nets;
    long events_status;
    struct line_split lines; /* the event stream */
    int64_t last_event;      /* for since= on reconnect */
    enum docker_phase phase;
    struct event *retry;
    struct event *notify; /* a changed callback due (see CHANGED_SYNCING_MS) */
    /* Runs from a failure to the next sync: "an outage" while non-zero. */
    struct backoff backoff;
    bool nets_again;    /* a network event came during GET /networks */
    char last_why[400]; /* last failure reported, said once */
    uint64_t outage_ms; /* when the running outage began */
    uint64_t warned_ms; /* when it was last said as a warning */
    /* Bounded staleness: this long without a sync (from the start, or from
     * the failure that began an outage), the registry is marked stale
     * until the next sync ends. 0: never. */
    uint64_t stale_ms;
    struct event *stale;
    docker_changed_fn *changed;
    void *arg;
};

static void start(struct docker *d);
static void refresh_networks(struct docker *d);

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    struct docker *d = arg;
    (void)fd;
    (void)what;
    d->changed(d->arg);
}

/* The registry changed: tell the owner soon, once for many changes. */
static void changed(struct docker *d)
{
    if (!d->changed || evtimer_pending(d->notify, NULL))
        return;
    struct timeval tv = clock_tv(d->phase == DOCKER_SYNCED ? 0 : CHANGED_SYNCING_MS);
    evtimer_add(d->notify, &tv);
}

/* ---- failure and reconnection ---- */

static void on_stale(evutil_socket_t fd, short what, void *arg)
{
    struct docker *d = arg;
    (void)fd;
    (void)what;
    registry_set_stale(d->reg, true);
    log_warn("docker: no answer from the engine for %" PRIu64 "s; name targets stop "
             "resolving until it is back",
             d->stale_ms / 1000);
}

/* Starts counting towards staleness, unless it already counts. */
static void arm_stale(struct docker *d)
{
    if (!d->stale_ms || evtimer_pending(d->stale, NULL) || registry_stale(d->reg))
        return;
    struct timeval tv = clock_tv(d->stale_ms);
    evtimer_add(d->stale, &tv);
}

static void stop_requests(struct docker *d)
{
    http_cancel(d->ping);
    http_cancel(d->events);
    http_cancel(d->nets);
    d->ping = d->events = d->nets = NULL;
    docker_sync_stop(d->sync);
    docker_swarm_stop(d->swarm);
    line_split_reset(&d->lines);
}

/* Every change of phase, and what entering one means. why: the failure,
 * for DOCKER_WAITING (NULL otherwise). */
static void set_phase(struct docker *d, enum docker_phase p, const char *why)
{
    /* The phases each one may follow. A failure stops every request, so
     * nothing is left to fail again while waiting. */
    static const unsigned char follows[] = {
        [DOCKER_CONNECTING] = 1u << DOCKER_IDLE | 1u << DOCKER_WAITING,
        [DOCKER_LISTING] = 1u << DOCKER_CONNECTING,
        [DOCKER_SYNCING] = 1u << DOCKER_LISTING,
        [DOCKER_SYNCED] = 1u << DOCKER_SYNCING,
        [DOCKER_WAITING] = 1u << DOCKER_CONNECTING | 1u << DOCKER_LISTING |
                           1u << DOCKER_SYNCING | 1u << DOCKER_SYNCED,
    };
    INVARIANT(follows[p] >> d->phase & 1u);
    d->phase = p;
    /* Up while the names are current: synced and following events. */
    metrics_docker_up(d->metrics, p == DOCKER_SYNCED);
    switch (p) {
    case DOCKER_CONNECTING:
        /* Starts from scratch: nothing of the last attempt is running. */
        INVARIANT(!d->ping && !d->events && !d->nets);
        break;
    case DOCKER_SYNCED: {
        char took[32];
        if (d->backoff.cur_ms)
            log_info("docker: reconnected after %s, resynced %zu running containers "
                     "(API %s)",
                     docker_duration(clock_ms() - d->outage_ms, took, sizeof took),
                     registry_count(d->reg) - registry_swarm_count(d->reg),
                     d->version);
        else
            log_info("docker: synced %zu running containers (API %s)",
                     registry_count(d->reg) - registry_swarm_count(d->reg),
                     d->version);
        backoff_reset(&d->backoff);
        registry_set_engine(d->reg, true, NULL);
        evtimer_del(d->stale);
        if (registry_stale(d->reg)) {
            registry_set_stale(d->reg, false);
            log_info("docker: the engine answers again; name targets resolve again");
        }
        if (evtimer_pending(d->notify, NULL)) { /* the sync's last changes */
            evtimer_del(d->notify);
            d->changed(d->arg);
        }
        docker_swarm_start(d->swarm, d->version);
        break;
    }
    case DOCKER_WAITING: {
        /* Keep serving our table; start over after a growing pause. */
        stop_requests(d);
        unsigned ms = backoff_next(&d->backoff);
        uint64_t now = clock_ms();
        char took[32], kept[64] = "";
        /* Tells the relays why a name finds nothing, for their clients. */
        bool known = registry_known(d->reg);
        registry_set_engine(d->reg, known, why);
        if (known)
            snprintf(kept, sizeof kept, "%zu containers", registry_count(d->reg));
        if (backoff_first(&d->backoff)) {
            d->outage_ms = d->warned_ms = now;
            log_warn("docker: %s; %s%s, reconnecting", why,
                     known ? "serving the last known " : "nothing known yet",
                     known ? kept : "");
            arm_stale(d);
        } else if (strcmp(why, d->last_why) != 0 || /* a new reason: say it */
                   now - d->warned_ms >= OUTAGE_REMIND_MS) {
            d->warned_ms = now;
            log_warn("docker: %s; no connection for %s, %s%s, retrying", why,
                     docker_duration(now - d->outage_ms, took, sizeof took),
                     known ? "still serving " : "nothing known yet",
                     known ? kept : "");
        } else {
            log_debug("docker: %s; retrying in %u ms", why, ms);
        }
        snprintf(d->last_why, sizeof d->last_why, "%s", why);
        struct timeval tv = clock_tv(ms);
        evtimer_add(d->retry, &tv);
        break;
    }
    default: /* the callers start what these wait for */
        break;
    }
}

/* Something went wrong talking to the daemon. what: the request, or
 * NULL when it does not matter (no connection at all). */
static void fail(struct docker *d, const char *what, const char *why)
{
    char now[sizeof d->last_why];
    /* A daemon's error text can be long: cut, it still says which. */
    if (snprintf(now, sizeof now, "%s%s%s", what ? what : "", what ? ": " : "", why) >=
        (int)sizeof now)
        memcpy(now + sizeof now - 4, "...", 4);
    set_phase(d, DOCKER_WAITING, now);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    start(arg);
}

/* An HTTP answer that is not a success fails the connection, explained
 * (docker_fault.h). */
static bool answer_failed(struct docker *d, const char *what, long status,
                          const char *body, size_t len, const struct http_error *error)
{
    char why[350];
    if (!error && status == 200)
        return false;
    docker_fault_explain(&d->ep.target, error, status, body, len, why, sizeof why);
    /* A connection that could not be made failed whatever was asked. */
    fail(d, docker_fault_unreachable(error) ? NULL : what, why);
    return true;
}

/* ---- the sync (list and inspects: docker_sync.c) ---- */

static void check_synced(struct docker *d)
{
    if (d->phase == DOCKER_SYNCING && docker_sync_idle(d->sync) && !d->nets)
        set_phase(d, DOCKER_SYNCED, NULL);
}

static void on_sync_changed(void *arg) { changed(arg); }

static void on_swarm_changed(void *arg) { changed(arg); }

static void on_sync_listed(void *arg)
{
    struct docker *d = arg;
    set_phase(d, DOCKER_SYNCING, NULL);
    check_synced(d);
}

static void on_sync_idle(void *arg) { check_synced(arg); }

static void on_sync_failed(void *arg, const char *what, const char *why)
{
    fail(arg, what, why);
}

static void on_networks(void *arg, long status, const char *body, size_t len,
                        const struct http_error *error)
{
    struct docker *d = arg;
    d->nets = NULL;
    char err[350];
    if (d->nets_again) {
        d->nets_again = false;
        refresh_networks(d);
        return;
    }
    if (error || status != 200)
        docker_fault_explain(&d->ep.target, error, status, body, len, err, sizeof err);
    if (error || status != 200 ||
        docker_parse_networks(body, len, d->reg, err, sizeof err) < 0)
        log_error("docker: GET /networks: %s; keeping the known subnets", err);
    check_synced(d);
}

static void refresh_networks(struct docker *d)
{
    if (d->nets) {
        d->nets_again = true; /* the answer in flight may predate it */
        return;
    }
    char path[64];
    snprintf(path, sizeof path, "/v%s/networks", d->version);
    struct http_callbacks cb = {.done = on_networks, .arg = d};
    d->nets = http_get(d->http, &d->ep.target, path, REQUEST_TIMEOUT_MS,
                       NETWORKS_BODY_MAX, &cb);
}

static void begin_sync(struct docker *d)
{
    set_phase(d, DOCKER_LISTING, NULL);
    if (docker_sync_list(d->sync, d->version) < 0) {
        fail(d, "GET /containers/json", "cannot start a request");
        return;
    }
    refresh_networks(d);
}

/* ---- the event stream ---- */

/* One line of the event stream (a line_fn). */
static void handle_event(void *arg, const char *line, size_t len)
{
    struct docker *d = arg;
    struct docker_event ev;
    char err[200];
    if (docker_parse_event(line, len, &ev, err, sizeof err) < 0) {
        log_warn("docker: %s; event skipped", err);
        return;
    }
    if (ev.time > d->last_event)
        d->last_event = ev.time;
    metrics_docker_event(d->metrics);
    log_debug("docker: event %s %s %.12s", ev.type, ev.action, ev.id);
    const char *a = ev.action;
    if (strcmp(ev.type, "service") == 0 || strcmp(ev.type, "node") == 0) {
        docker_swarm_poke(d->swarm);
        return;
    }
    if (strcmp(ev.type, "network") == 0) {
        if (strcmp(a, "connect") == 0 || strcmp(a, "disconnect") == 0) {
            if (ev.id[0])
                docker_sync_inspect(d->sync, ev.id);
        } else if (strcmp(a, "create") == 0 || strcmp(a, "destroy") == 0 ||
                   strcmp(a, "remove") == 0) {
            refresh_networks(d);
        }
        return;
    }
    if (strcmp(ev.type, "container") != 0 || !ev.id[0])
        return;
    if (strcmp(a, "die") == 0 || strcmp(a, "destroy") == 0) {
        /* Drop at once; an inspect in flight is asked again (its answer
         * may predate the event). */
        registry_drop(d->reg, ev.id);
        changed(d);
        if (strcmp(a, "die") == 0)
            docker_sync_inspect(d->sync, ev.id);
    } else if (strcmp(a, "start") == 0 || strcmp(a, "restart") == 0 ||
               strcmp(a, "unpause") == 0 || strcmp(a, "rename") == 0 ||
               strcmp(a, "update") == 0) {
        docker_sync_inspect(d->sync, ev.id);
    }
}

static void on_events_headers(void *arg, long status, const char *headers)
{
    struct docker *d = arg;
    (void)headers;
    d->events_status = status;
    if (status != 200)
        return;
    /* If the stream breaks before any event, resume from about now: a few
     * seconds early, since events repeat harmlessly but must not be lost. */
    int64_t now = (int64_t)time(NULL) - 5;
    if (d->last_event < now)
        d->last_event = now;
    begin_sync(d);
}

/* The stream is chunked by HTTP, not by event: line_split carries a
 * partial line over to the next piece. Only a 200's body comes here (an
 * error answer's first few KB go to on_events_done). */
static void on_events_data(void *arg, const char *data, size_t len)
{
    struct docker *d = arg;
    if (d->events_status != 200)
        return; /* a 2xx that is not the stream: nothing to follow */
    if (line_split_feed(&d->lines, data, len, handle_event, d) < 0)
        log_warn("docker: event line longer than 1 MiB; dropped");
}

static void on_events_done(void *arg, long status, const char *body, size_t len,
                           const struct http_error *error)
{
    struct docker *d = arg;
    d->events = NULL;
    if (!answer_failed(d, "GET /events", status, body, len, error))
        fail(d, "GET /events", "the daemon closed the stream");
}

static void start_events(struct docker *d)
{
    char path[300];
    int n = snprintf(path, sizeof path, "/v%s/events?filters=%s", d->version,
                     EVENT_FILTER);
    if (d->last_event)
        snprintf(path + n, sizeof path - (size_t)n, "&since=%" PRId64, d->last_event);
    d->events_status = 0;
    line_split_reset(&d->lines);
    struct http_callbacks cb = {.headers = on_events_headers,
                                .data = on_events_data,
                                .done = on_events_done,
                                .arg = d};
    if (!(d->events = http_get(d->http, &d->ep.target, path, 0, EVENTS_PIECE_MAX,
                               &cb)))
        fail(d, "GET /events", "cannot start a request");
}

/* ---- version negotiation ---- */

static void on_ping_headers(void *arg, long status, const char *headers)
{
    struct docker *d = arg;
    char v[16];
    if (status == 200 && http_header_value(headers, "Api-Version", v, sizeof v) == 0)
        snprintf(d->version, sizeof d->version, "%s", v);
}

static void on_ping(void *arg, long status, const char *body, size_t len,
                    const struct http_error *error)
{
    struct docker *d = arg;
    d->ping = NULL;
    if (answer_failed(d, "GET /_ping", status, body, len, error))
        return;
    start_events(d);
}

static void start(struct docker *d)
{
    set_phase(d, DOCKER_CONNECTING, NULL);
    snprintf(d->version, sizeof d->version, "1.41"); /* if _ping has none */
    struct http_callbacks cb = {.headers = on_ping_headers, .done = on_ping, .arg = d};
    if (!(d->ping = http_get(d->http, &d->ep.target, "/_ping", REQUEST_TIMEOUT_MS,
                             PING_BODY_MAX, &cb)))
        fail(d, "GET /_ping", "cannot start a request");
}

/* ---- set-up ---- */

struct docker *docker_new(struct event_base *base, struct registry *reg,
                          const char *url, docker_changed_fn *changed_fn, void *arg,
                          char *err, size_t errlen)
{
    struct docker *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->base = base;
    d->reg = reg;
    d->changed = changed_fn;
    d->arg = arg;
    d->lines = LINE_SPLIT_INIT(LINE_MAX_BYTES);
    d->backoff = BACKOFF_INIT(BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    d->stale_ms = (uint64_t)CONFIG_STALE_AFTER * 1000;
    if (docker_endpoint_resolve(&d->ep, url, err, errlen) < 0) {
        free(d);
        return NULL;
    }
    char why[300];
    struct docker_sync_hooks hooks = {.changed = on_sync_changed,
                                      .listed = on_sync_listed,
                                      .idle = on_sync_idle,
                                      .failed = on_sync_failed,
                                      .arg = d};
    if (!(d->http = http_new(base, why, sizeof why)) ||
        !(d->retry = evtimer_new(base, on_retry, d)) ||
        !(d->notify = evtimer_new(base, on_notify, d)) ||
        !(d->stale = evtimer_new(base, on_stale, d)) ||
        !(d->sync = docker_sync_new(base, d->http, &d->ep.target, reg, &hooks)) ||
        !(d->swarm = docker_swarm_new(base, d->http, &d->ep.target, reg,
                                      on_swarm_changed, d))) {
        snprintf(err, errlen, "docker: %s", d->http ? "out of memory" : why);
        docker_free(d);
        return NULL;
    }
    docker_sync_leave_tasks(d->sync, true); /* Swarm followed by default */
    char where[sizeof d->ep.url + sizeof d->ep.source + 64];
    docker_endpoint_describe(&d->ep, where, sizeof where);
    log_info("docker: following %s", where);
    start(d); /* never synced yet: counts towards staleness from now */
    arm_stale(d);
    return d;
}

void docker_set_stale_after(struct docker *d, unsigned seconds)
{
    d->stale_ms = (uint64_t)seconds * 1000;
    evtimer_del(d->stale);
    if (!seconds) {
        if (registry_stale(d->reg)) {
            registry_set_stale(d->reg, false);
            log_info("docker: staleness off; name targets resolve again");
        }
        return;
    }
    /* Counted afresh: called at start, before the first sync could end. */
    if (d->phase != DOCKER_SYNCED)
        arm_stale(d);
}

void docker_free(struct docker *d)
{
    if (!d)
        return;
    if (d->http && d->sync && d->swarm)
        stop_requests(d);
    docker_swarm_free(d->swarm);
    docker_sync_free(d->sync);
    http_free(d->http);
    if (d->retry)
        event_free(d->retry);
    if (d->notify)
        event_free(d->notify);
    if (d->stale)
        event_free(d->stale);
    line_split_release(&d->lines);
    free(d);
}

bool docker_synced(const struct docker *d) { return d->phase == DOCKER_SYNCED; }

void docker_set_swarm_poll(struct docker *d, unsigned seconds)
{
    docker_swarm_set_poll(d->swarm, seconds);
    docker_sync_leave_tasks(d->sync, seconds > 0);
}

void docker_set_metrics(struct docker *d, struct metrics *m)
{
    d->metrics = m;
    metrics_docker_up(m, d->phase == DOCKER_SYNCED);
}

/* /status */

const char *docker_phase_name(const struct docker *d)
{
    switch (d->phase) {
    case DOCKER_IDLE:
        return "idle";
    case DOCKER_CONNECTING:
        return "connecting";
    case DOCKER_LISTING:
        return "listing";
    case DOCKER_SYNCING:
        return "syncing";
    case DOCKER_SYNCED:
        return "synced";
    case DOCKER_WAITING:
        return "waiting";
    }
    return "?";
}

void docker_describe(const struct docker *d, char *out, size_t len)
{
    docker_endpoint_describe(&d->ep, out, len);
}
