#include "berth/docker_sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/docker_fault.h"
#include "berth/docker_parse.h"
#include "berth/idmap.h"
#include "berth/log.h"

#define INSPECTS_AT_ONCE 16
#define INSPECT_TIMEOUT_MS 10000
/* Real inspect answers are 5-50 KB; 16 run at once. */
#define INSPECT_BODY_MAX (2u << 20)
/* dockerd takes seconds to list tens of thousands of containers. */
#define LIST_TIMEOUT_MS 60000
/* What may wait for one data callback (libcurl hands over 16 KB a read). */
#define LIST_PIECE_MAX (8u << 20)
/* ~17 MB of ids and as much index at most: far more than a host runs. */
#define LIST_MAX (1u << 18)
/* Inspects the event stream may leave waiting; more changes than that at
 * once are cheaper to learn from a fresh list. */
#define WAITING_MAX (1u << 14)
/* Listed ids marked current per loop turn in a resync's sweep (~2 ms):
 * 100,000 at once held every relay for 40 ms (120 ms under ASan). */
#define KEEP_SLICE 8192

/* One inspect, waiting or running. again: asked for while running, so the
 * answer may predate the change: ask once more instead of applying it. */
struct job {
    struct docker_sync *s;
    struct job *next;     /* in the waiting queue or the running list */
    struct http_req *req; /* NULL while waiting */
    bool again;
    char id[REG_ID_MAX];
};

struct docker_sync {
    struct http *http;
    const struct http_target *target;
    struct registry *reg;
    struct docker_sync_hooks hooks;
    char version[16];
    bool leave_tasks; /* see docker_sync_leave_tasks */
    struct http_req *list_req;
    /* The list as it arrives; once applied, the ids still to inspect, from
     * list_next on (freed when all were started). */
    struct docker_list *list;
    size_t list_next;
    size_t kept;             /* the list's ids marked current so far */
    struct event *keep_more; /* the next slice of them, next loop turn */
    bool listed;             /* applied (and not stopped since) */
    struct idmap *jobs;      /* id -> job, every waiting and running one */
    struct job *head, *tail; /* waiting, oldest first */
    size_t nwaiting;
    struct job *running;
    size_t nrunning;
    bool overflow;        /* too many waiting: resyncing soon */
    struct event *resync; /* reports the overflow outside the event stream */
};

static void pump(struct docker_sync *s);

/* ---- inspects ---- */

static void apply_inspect(struct docker_sync *s, const char *id, long status,
                          const char *body, size_t len)
{
    char err[300];
    if (status == 404) { /* gone already */
        registry_drop(s->reg, id);
        s->hooks.changed(s->hooks.arg);
        return;
    }
    if (docker_answer_failed(status, body, len, NULL, err, sizeof err)) {
        log_error("docker: inspect %.12s: %s; keeping what was known", id, err);
        return;
    }
    struct docker_inspect in;
    if (docker_parse_inspect(body, len, &in, err, sizeof err) < 0) {
        log_error("docker: inspect %.12s: %s; keeping what was known", id, err);
        return;
    }
    if (in.running && !(in.swarm_task && s->leave_tasks)) {
        if (registry_put(s->reg, &in.c) < 0)
            log_error("docker: inspect %.12s: out of memory", id);
        else
            log_debug("docker: %s (%.12s) running, %zu networks", in.c.name, id,
                      in.c.neps);
    } else {
        registry_drop(s->reg, id);
        log_debug("docker: %s (%.12s) not running", in.c.name, id);
    }
    docker_inspect_release(&in);
    s->hooks.changed(s->hooks.arg);
}

static void forget_job(struct docker_sync *s, struct job *j)
{
    for (struct job **p = &s->running; *p; p = &(*p)->next) {
        if (*p == j) {
            *p = j->next;
            s->nrunning--;
            break;
        }
    }
    idmap_del(s->jobs, j->id);
    free(j);
}

static int start_job(struct docker_sync *s, struct job *j);

static void on_inspect(void *arg, long status, const char *body, size_t len,
                       const struct http_error *error)
{
    struct job *j = arg;
    struct docker_sync *s = j->s;
    j->req = NULL;
    if (j->again) {
        j->again = false;
        if (start_job(s, j) == 0)
            return;
    } else if (error) {
        log_error("docker: inspect %.12s: %s", j->id, error->text);
    } else {
        apply_inspect(s, j->id, status, body, len);
    }
    forget_job(s, j);
    pump(s);
    if (docker_sync_idle(s))
        s->hooks.idle(s->hooks.arg);
}

/* Returns -1 when the request cannot start (j is then still s's). */
static int start_job(struct docker_sync *s, struct job *j)
{
    char path[160];
    snprintf(path, sizeof path, "/v%s/containers/%s/json", s->version, j->id);
    struct http_callbacks cb = {.done = on_inspect, .arg = j};
    j->req = http_get(s->http, s->target, path, INSPECT_TIMEOUT_MS, INSPECT_BODY_MAX,
                      &cb);
    if (!j->req) {
        log_error("docker: inspect %.12s: cannot start a request", j->id);
        return -1;
    }
    return 0;
}

/* A job for id, known to have none, not yet anywhere but the index. */
static struct job *new_job(struct docker_sync *s, const char *id)
{
    struct job *j = calloc(1, sizeof *j);
    if (j) {
        j->s = s;
        snprintf(j->id, sizeof j->id, "%s", id);
        if (idmap_put(s->jobs, j->id, j) == 0)
            return j;
        free(j);
    }
    log_error("docker: inspect %.12s: out of memory", id);
    return NULL;
}

static void run(struct docker_sync *s, struct job *j)
{
    j->next = s->running;
    s->running = j;
    s->nrunning++;
    if (start_job(s, j) < 0)
        forget_job(s, j);
}

/* Starts inspects while fewer than INSPECTS_AT_ONCE run: the waiting ones
 * (events: the newest news) first, then the list's, from its cursor. */
static void pump(struct docker_sync *s)
{
    while (s->nrunning < INSPECTS_AT_ONCE && s->head) {
        struct job *j = s->head;
        if (!(s->head = j->next))
            s->tail = NULL;
        s->nwaiting--;
        run(s, j);
    }
    while (s->nrunning < INSPECTS_AT_ONCE && s->listed && s->list) {
        if (s->list_next == docker_list_count(s->list)) {
            docker_list_free(s->list);
            s->list = NULL;
            break;
        }
        const char *id = docker_list_id(s->list, s->list_next++);
        struct job *j = idmap_get(s->jobs, id);
        if (j) {
            j->again = j->req != NULL; /* waiting: it will be fresh anyway */
            continue;
        }
        if ((j = new_job(s, id)))
            run(s, j);
    }
}

static void on_resync(evutil_socket_t fd, short what, void *arg)
{
    struct docker_sync *s = arg;
    (void)fd;
    (void)what;
    char why[100];
    snprintf(why, sizeof why, "more than %u containers changed at once", WAITING_MAX);
    s->hooks.failed(s->hooks.arg, "inspect", why);
}

void docker_sync_inspect(struct docker_sync *s, const char *id)
{
    struct job *j = idmap_get(s->jobs, id);
    if (j) {
        j->again = j->req != NULL;
        return;
    }
    if (s->overflow)
        return;
    if (s->nwaiting >= WAITING_MAX) {
        /* Said from the loop: this runs inside the event stream's
         * callback, which a resync would tear down under its feet. */
        struct timeval now = {0, 0};
        s->overflow = true;
        evtimer_add(s->resync, &now);
        return;
    }
    if (!(j = new_job(s, id)))
        return;
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    s->nwaiting++;
    pump(s);
}

/* ---- the list ---- */

/* The whole list came: forget what it lacks (stopped while we were away)
 * and then inspect what it has. What it lacks is found by marking what it
 * has, a slice a loop turn; an inspect that landed since the list was
 * asked for marked its container too (running, listed or not). */
static void keep_listed(evutil_socket_t fd, short what, void *arg)
{
    struct docker_sync *s = arg;
    (void)fd;
    (void)what;
    size_t n = docker_list_count(s->list);
    size_t end = n - s->kept > KEEP_SLICE ? s->kept + KEEP_SLICE : n;
    for (; s->kept < end; s->kept++)
        registry_keep(s->reg, docker_list_id(s->list, s->kept));
    if (s->kept < n) {
        struct timeval now = {0, 0};
        evtimer_add(s->keep_more, &now);
        return;
    }
    size_t gone = registry_sweep(s->reg);
    if (gone)
        s->hooks.changed(s->hooks.arg);
    log_debug("docker: %zu containers listed, %zu gone", n, gone);
    s->listed = true;
    s->list_next = 0;
    pump(s);
    s->hooks.listed(s->hooks.arg);
}

static void apply_list(struct docker_sync *s)
{
    s->kept = 0;
    keep_listed(-1, 0, s);
}

static void list_failed(struct docker_sync *s, const char *why)
{
    http_cancel(s->list_req);
    s->list_req = NULL;
    docker_list_free(s->list);
    s->list = NULL;
    s->hooks.failed(s->hooks.arg, "GET /containers/json", why);
}

static void on_list_data(void *arg, const char *data, size_t len)
{
    struct docker_sync *s = arg;
    char err[200];
    if (docker_list_feed(s->list, data, len, err, sizeof err) < 0)
        list_failed(s, err);
}

static void on_list_done(void *arg, long status, const char *body, size_t len,
                         const struct http_error *error)
{
    struct docker_sync *s = arg;
    char err[400];
    s->list_req = NULL;
    bool failed = error || status != 200;
    if (failed)
        docker_fault_explain(s->target, error, status, body, len, err, sizeof err);
    if (failed || docker_list_end(s->list, err, sizeof err) < 0) {
        list_failed(s, err);
        return;
    }
    apply_list(s);
}

int docker_sync_list(struct docker_sync *s, const char *version)
{
    char path[64];
    snprintf(s->version, sizeof s->version, "%s", version);
    snprintf(path, sizeof path, "/v%s/containers/json", s->version);
    http_cancel(s->list_req); /* none should run: the caller stopped us */
    s->list_req = NULL;
    docker_list_free(s->list);
    s->listed = false;
    registry_sweep_begin(s->reg);
    struct http_callbacks cb = {.data = on_list_data, .done = on_list_done, .arg = s};
    if (!(s->list = docker_list_new(LIST_MAX)) ||
        !(s->list_req = http_get(s->http, s->target, path, LIST_TIMEOUT_MS,
                                 LIST_PIECE_MAX, &cb))) {
        docker_list_free(s->list);
        s->list = NULL;
        return -1;
    }
    return 0;
}

/* ---- set-up ---- */

void docker_sync_leave_tasks(struct docker_sync *s, bool leave)
{
    s->leave_tasks = leave;
}

void docker_sync_stop(struct docker_sync *s)
{
    http_cancel(s->list_req);
    s->list_req = NULL;
    docker_list_free(s->list);
    s->list = NULL;
    s->listed = false;
    evtimer_del(s->keep_more);
    struct job *lists[] = {s->running, s->head};
    for (int i = 0; i < 2; i++) {
        for (struct job *j = lists[i], *next; j; j = next) {
            next = j->next;
            http_cancel(j->req);
            free(j);
        }
    }
    s->running = s->head = s->tail = NULL;
    s->nrunning = s->nwaiting = 0;
    idmap_clear(s->jobs);
    s->overflow = false;
    evtimer_del(s->resync);
}

bool docker_sync_idle(const struct docker_sync *s)
{
    return s->listed && !s->list && !s->nrunning && !s->nwaiting;
}

struct docker_sync *docker_sync_new(struct event_base *base, struct http *http,
                                    const struct http_target *target,
                                    struct registry *reg,
                                    const struct docker_sync_hooks *hooks)
{
    struct docker_sync *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->http = http;
    s->target = target;
    s->reg = reg;
    s->hooks = *hooks;
    snprintf(s->version, sizeof s->version, "1.41");
    if (!(s->jobs = idmap_new()) || !(s->resync = evtimer_new(base, on_resync, s)) ||
        !(s->keep_more = evtimer_new(base, keep_listed, s))) {
        docker_sync_free(s);
        return NULL;
    }
    return s;
}

void docker_sync_free(struct docker_sync *s)
{
    if (!s)
        return;
    if (s->jobs && s->resync && s->keep_more)
        docker_sync_stop(s);
    idmap_free(s->jobs);
    if (s->resync)
        event_free(s->resync);
    if (s->keep_more)
        event_free(s->keep_more);
    free(s);
}
