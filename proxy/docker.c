#include "berth/docker.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "berth/backoff.h"
#include "berth/clock.h"
#include "berth/docker_endpoint.h"
#include "berth/docker_parse.h"
#include "berth/invariant.h"
#include "berth/line_split.h"
#include "berth/log.h"

#define INSPECTS_AT_ONCE 16
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 8000
#define REQUEST_TIMEOUT_MS 10000
#define LINE_MAX_BYTES (1u << 20)
/* filters={"type":["container","network"]} */
#define EVENT_FILTER "%7B%22type%22%3A%5B%22container%22%2C%22network%22%5D%7D"

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

/* One inspect in flight. again: an event came for this container meanwhile,
 * so the answer may be stale: ask again instead of applying it. */
struct job {
    struct docker *d;
    struct job *next;
    struct http_req *req;
    bool again;
    char id[REG_ID_MAX];
};

struct docker {
    struct event_base *base;
    struct registry *reg;
    struct http *http;
    struct docker_endpoint ep;
    char version[16];
    struct http_req *ping, *events, *list, *nets;
    long events_status;
    struct line_split lines; /* the event stream (or its error body) */
    int64_t last_event;      /* for since= on reconnect */
    enum docker_phase phase;
    struct event *retry;
    /* Runs from a failure to the next sync: "an outage" while non-zero. */
    struct backoff backoff;
    bool nets_again;           /* a network event came during GET /networks */
    char last_why[400];        /* last failure reported, said once */
    char (*queue)[REG_ID_MAX]; /* ids waiting for an inspect slot */
    size_t nqueue, qcap;
    struct job *jobs;
    size_t njobs;
    docker_changed_fn *changed;
    void *arg;
};

static void start(struct docker *d);
static void inspect(struct docker *d, const char *id);
static void refresh_networks(struct docker *d);

static void changed(struct docker *d)
{
    if (d->changed)
        d->changed(d->arg);
}

/* ---- failure and reconnection ---- */

static void stop_requests(struct docker *d)
{
    http_cancel(d->ping);
    http_cancel(d->events);
    http_cancel(d->list);
    http_cancel(d->nets);
    d->ping = d->events = d->list = d->nets = NULL;
    while (d->jobs) {
        struct job *j = d->jobs;
        d->jobs = j->next;
        http_cancel(j->req);
        free(j);
    }
    d->njobs = 0;
    d->nqueue = 0;
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
    switch (p) {
    case DOCKER_CONNECTING:
        /* Starts from scratch: nothing of the last attempt is running. */
        INVARIANT(!d->ping && !d->events && !d->list && !d->nets && !d->jobs);
        break;
    case DOCKER_SYNCED:
        log_info("docker: %s %zu running containers (API %s)",
                 d->backoff.cur_ms ? "reconnected, resynced" : "synced",
                 registry_count(d->reg), d->version);
        backoff_reset(&d->backoff);
        break;
    case DOCKER_WAITING: {
        /* Keep serving our table; start over after a growing pause. */
        stop_requests(d);
        unsigned ms = backoff_next(&d->backoff);
        if (backoff_first(&d->backoff))
            log_warn("docker: %s; serving the last known %zu containers, reconnecting",
                     why, registry_count(d->reg));
        else if (strcmp(why, d->last_why) != 0) /* a new reason: say it */
            log_warn("docker: %s; still serving %zu containers, retrying", why,
                     registry_count(d->reg));
        else
            log_debug("docker: %s; retrying in %u ms", why, ms);
        snprintf(d->last_why, sizeof d->last_why, "%s", why);
        struct timeval tv = clock_tv(ms);
        evtimer_add(d->retry, &tv);
        break;
    }
    default: /* the callers start what these wait for */
        break;
    }
}

/* Something went wrong talking to the daemon. */
static void fail(struct docker *d, const char *what, const char *why)
{
    char now[sizeof d->last_why];
    /* A daemon's error text can be long: cut, it still says which. */
    if (snprintf(now, sizeof now, "%s: %s", what, why) >= (int)sizeof now)
        memcpy(now + sizeof now - 4, "...", 4);
    set_phase(d, DOCKER_WAITING, now);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    start(arg);
}

/* An HTTP answer that is not a success, as one line. */
static bool answer_failed(struct docker *d, const char *what, long status,
                          const char *body, size_t len, const char *error)
{
    char msg[400];
    if (error) {
        fail(d, what, error);
        return true;
    }
    if (status == 200)
        return false;
    char text[300];
    docker_error_text(body, len, text, sizeof text);
    snprintf(msg, sizeof msg, "HTTP %ld: %s", status, text);
    fail(d, what, msg);
    return true;
}

/* ---- inspects ---- */

static void check_synced(struct docker *d)
{
    if (d->phase == DOCKER_SYNCING && !d->njobs && !d->nqueue && !d->nets)
        set_phase(d, DOCKER_SYNCED, NULL);
}

static int start_job(struct docker *d, struct job *j);

static void next_queued(struct docker *d)
{
    while (d->nqueue && d->njobs < INSPECTS_AT_ONCE) {
        char id[REG_ID_MAX];
        memcpy(id, d->queue[0], sizeof id);
        memmove(d->queue, d->queue + 1, --d->nqueue * sizeof *d->queue);
        inspect(d, id);
    }
    check_synced(d);
}

static void apply_inspect(struct docker *d, const char *id, long status,
                          const char *body, size_t len)
{
    if (status == 404) { /* gone already */
        registry_drop(d->reg, id);
        changed(d);
        return;
    }
    char err[200];
    if (status != 200) {
        docker_error_text(body, len, err, sizeof err);
        log_error("docker: inspect %.12s: HTTP %ld: %s; keeping what was known", id,
                  status, err);
        return;
    }
    struct docker_inspect in;
    if (docker_parse_inspect(body, len, &in, err, sizeof err) < 0) {
        log_error("docker: inspect %.12s: %s; keeping what was known", id, err);
        return;
    }
    if (in.running) {
        if (registry_put(d->reg, &in.c) < 0)
            log_error("docker: inspect %.12s: out of memory", id);
        else
            log_debug("docker: %s (%.12s) running, %zu networks", in.c.name, id,
                      in.c.neps);
    } else {
        registry_drop(d->reg, id);
        log_debug("docker: %s (%.12s) not running", in.c.name, id);
    }
    docker_inspect_release(&in);
    changed(d);
}

static void unlink_job(struct docker *d, struct job *j)
{
    for (struct job **p = &d->jobs; *p; p = &(*p)->next) {
        if (*p == j) {
            *p = j->next;
            break;
        }
    }
    d->njobs--;
}

static void on_inspect(void *arg, long status, const char *body, size_t len,
                       const char *error)
{
    struct job *j = arg;
    struct docker *d = j->d;
    j->req = NULL;
    if (j->again) {
        j->again = false;
        if (start_job(d, j) < 0)
            next_queued(d); /* the job is gone: keep the queue moving */
        return;
    }
    unlink_job(d, j);
    if (error)
        log_error("docker: inspect %.12s: %s", j->id, error);
    else
        apply_inspect(d, j->id, status, body, len);
    free(j);
    next_queued(d);
}

static int start_job(struct docker *d, struct job *j)
{
    char path[160];
    snprintf(path, sizeof path, "/v%s/containers/%s/json", d->version, j->id);
    struct http_callbacks cb = {.done = on_inspect, .arg = j};
    j->req = http_get(d->http, &d->ep.target, path, REQUEST_TIMEOUT_MS, &cb);
    if (!j->req) {
        unlink_job(d, j);
        log_error("docker: inspect %.12s: cannot start a request", j->id);
        free(j);
        return -1;
    }
    return 0;
}

/* Asks for a fresh view of one container; repeats collapse into one. */
static void inspect(struct docker *d, const char *id)
{
    for (struct job *j = d->jobs; j; j = j->next) {
        if (strcmp(j->id, id) == 0) {
            j->again = true;
            return;
        }
    }
    if (d->njobs >= INSPECTS_AT_ONCE) {
        for (size_t i = 0; i < d->nqueue; i++)
            if (strcmp(d->queue[i], id) == 0)
                return;
        if (d->nqueue == d->qcap) {
            size_t cap = d->qcap ? d->qcap * 2 : 64;
            char(*q)[REG_ID_MAX] = realloc(d->queue, cap * sizeof *q);
            if (!q)
                return;
            d->queue = q;
            d->qcap = cap;
        }
        snprintf(d->queue[d->nqueue++], REG_ID_MAX, "%s", id);
        return;
    }
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->d = d;
    snprintf(j->id, sizeof j->id, "%s", id);
    j->next = d->jobs;
    d->jobs = j;
    d->njobs++;
    start_job(d, j);
}

/* ---- the full list (after the event stream is up) ---- */

struct sweep {
    char (*keep)[REG_ID_MAX];
    size_t nkeep;
    char (*drop)[REG_ID_MAX];
    size_t ndrop;
};

static void find_stale(const struct reg_container *c, void *arg)
{
    struct sweep *s = arg;
    for (size_t i = 0; i < s->nkeep; i++)
        if (strcmp(s->keep[i], c->id) == 0)
            return;
    snprintf(s->drop[s->ndrop++], REG_ID_MAX, "%s", c->id);
}

static void on_list(void *arg, long status, const char *body, size_t len,
                    const char *error)
{
    struct docker *d = arg;
    d->list = NULL;
    if (answer_failed(d, "GET /containers/json", status, body, len, error))
        return;
    char err[200];
    struct sweep s = {0};
    if (docker_parse_list(body, len, &s.keep, &s.nkeep, err, sizeof err) < 0) {
        fail(d, "GET /containers/json", err);
        return;
    }
    /* Containers that stopped while we were away are not in the list. */
    s.drop = calloc(registry_count(d->reg) + 1, sizeof *s.drop);
    if (s.drop) {
        registry_foreach(d->reg, find_stale, &s);
        for (size_t i = 0; i < s.ndrop; i++)
            registry_drop(d->reg, s.drop[i]);
        if (s.ndrop)
            changed(d);
    }
    set_phase(d, DOCKER_SYNCING, NULL);
    for (size_t i = 0; i < s.nkeep; i++)
        inspect(d, s.keep[i]);
    free(s.keep);
    free(s.drop);
    check_synced(d);
}

static void on_networks(void *arg, long status, const char *body, size_t len,
                        const char *error)
{
    struct docker *d = arg;
    d->nets = NULL;
    char err[200];
    if (d->nets_again) {
        d->nets_again = false;
        refresh_networks(d);
        return;
    }
    if (error || status != 200) {
        if (error)
            snprintf(err, sizeof err, "%s", error);
        else
            docker_error_text(body, len, err, sizeof err);
        log_error("docker: GET /networks: %s; keeping the known subnets", err);
    } else if (docker_parse_networks(body, len, d->reg, err, sizeof err) < 0) {
        log_error("docker: GET /networks: %s; keeping the known subnets", err);
    }
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
    d->nets = http_get(d->http, &d->ep.target, path, REQUEST_TIMEOUT_MS, &cb);
}

static void begin_sync(struct docker *d)
{
    char path[64];
    set_phase(d, DOCKER_LISTING, NULL);
    snprintf(path, sizeof path, "/v%s/containers/json", d->version);
    struct http_callbacks cb = {.done = on_list, .arg = d};
    if (!(d->list = http_get(d->http, &d->ep.target, path, REQUEST_TIMEOUT_MS, &cb))) {
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
    log_debug("docker: event %s %s %.12s", ev.type, ev.action, ev.id);
    const char *a = ev.action;
    if (strcmp(ev.type, "network") == 0) {
        if (strcmp(a, "connect") == 0 || strcmp(a, "disconnect") == 0) {
            if (ev.id[0])
                inspect(d, ev.id);
        } else if (strcmp(a, "create") == 0 || strcmp(a, "destroy") == 0 ||
                   strcmp(a, "remove") == 0) {
            refresh_networks(d);
        }
        return;
    }
    if (strcmp(ev.type, "container") != 0 || !ev.id[0])
        return;
    if (strcmp(a, "die") == 0 || strcmp(a, "destroy") == 0) {
        /* Drop at once; an inspect in flight is marked stale by inspect(). */
        registry_drop(d->reg, ev.id);
        changed(d);
        if (strcmp(a, "die") == 0)
            inspect(d, ev.id);
    } else if (strcmp(a, "start") == 0 || strcmp(a, "restart") == 0 ||
               strcmp(a, "unpause") == 0 || strcmp(a, "rename") == 0 ||
               strcmp(a, "update") == 0) {
        inspect(d, ev.id);
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
 * partial line over to the next piece. */
static void on_events_data(void *arg, const char *data, size_t len)
{
    struct docker *d = arg;
    /* Not 200: an error body, kept whole for on_events_done. */
    line_fn *fn = d->events_status == 200 ? handle_event : NULL;
    if (line_split_feed(&d->lines, data, len, fn, d) < 0)
        log_warn("docker: event line longer than 1 MiB; dropped");
}

static void on_events_done(void *arg, long status, const char *body, size_t len,
                           const char *error)
{
    struct docker *d = arg;
    (void)body;
    (void)len;
    d->events = NULL;
    char why[400];
    if (error) {
        snprintf(why, sizeof why, "%s", error);
    } else if (status != 200) {
        char text[300];
        docker_error_text(d->lines.buf ? d->lines.buf : "", d->lines.len, text,
                          sizeof text);
        snprintf(why, sizeof why, "HTTP %ld: %s", status, text);
    } else {
        snprintf(why, sizeof why, "the daemon closed the stream");
    }
    fail(d, "GET /events", why);
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
    if (!(d->events = http_get(d->http, &d->ep.target, path, 0, &cb)))
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
                    const char *error)
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
                             &cb)))
        fail(d, "GET /_ping", "cannot start a request");
}

/* ---- set-up ---- */

struct docker *docker_new(struct event_base *base, struct registry *reg,
                          const char *url, docker_changed_fn *changed_fn, void *arg,
                          char *err, size_t errlen)
{
    if (!url)
        url = getenv("DOCKER_HOST") && *getenv("DOCKER_HOST")
                  ? getenv("DOCKER_HOST")
                  : "unix:///var/run/docker.sock";
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
    if (docker_endpoint_parse(&d->ep, url, err, errlen) < 0) {
        free(d);
        return NULL;
    }
    char why[300];
    if (!(d->http = http_new(base, why, sizeof why)) ||
        !(d->retry = evtimer_new(base, on_retry, d))) {
        snprintf(err, errlen, "docker: %s", d->http ? "out of memory" : why);
        docker_free(d);
        return NULL;
    }
    log_info("docker: following %s", url);
    start(d);
    return d;
}

void docker_free(struct docker *d)
{
    if (!d)
        return;
    if (d->http)
        stop_requests(d);
    http_free(d->http);
    if (d->retry)
        event_free(d->retry);
    free(d->queue);
    line_split_release(&d->lines);
    free(d);
}

bool docker_synced(const struct docker *d) { return d->phase == DOCKER_SYNCED; }
