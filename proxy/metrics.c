#include "berth/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "berth/spec.h"

struct metrics {
    struct map_stats *ports; /* every published port's block */
    struct map_stats *last;  /* the tail of ports: appending is O(1) */
    uint64_t dns[2][16];     /* [forwarded][rcode] */
    struct histogram dns_forward;
    int docker_up; /* -1: no engine followed */
    uint64_t docker_events;
    uint64_t reloads[2]; /* [ok] */
};

static const double bounds[METRICS_BUCKETS] = {.0005, .001, .0025, .005, .01,
                                               .025,  .05,  .1,    .25,  .5,
                                               1,     2.5,  5};
static const char *const bound_text[METRICS_BUCKETS] = {"0.0005", "0.001", "0.0025",
                                                        "0.005",  "0.01",  "0.025",
                                                        "0.05",   "0.1",   "0.25",
                                                        "0.5",    "1",     "2.5",
                                                        "5"};

static const char *const connect_reason[METRICS_CONNECT_REASONS] = {
    "refused", "timeout", "unreachable", "resource", "other", "no_target"};
static const char *const drop_reason[METRICS_UDP_DROPS] = {"no_target", "flow", "send",
                                                           "draining"};
static const char *const rcode_name[16] = {"NOERROR",  "FORMERR", "SERVFAIL",
                                           "NXDOMAIN", "NOTIMP",  "REFUSED",
                                           "YXDOMAIN", "YXRRSET", "NXRRSET",
                                           "NOTAUTH",  "NOTZONE", "RCODE11",
                                           "RCODE12",  "RCODE13", "RCODE14",
                                           "RCODE15"};

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (m)
        m->docker_up = -1;
    return m;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    /* Ports outlive nothing: berth frees its ports first, but a block
     * left over is detached rather than left pointing here. */
    for (struct map_stats *s = m->ports; s; s = s->next)
        s->owner = NULL;
    free(m);
}

struct map_stats *metrics_port_new(struct metrics *m, const struct mapping *map,
                                   const struct addr *listen)
{
    if (!m)
        return NULL;
    struct map_stats *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->owner = m;
    s->proto = map->proto;
    addr_format(listen, s->listen, sizeof s->listen);
    if (map->target_name[0])
        snprintf(s->target, sizeof s->target, "%s:%u", map->target_name,
                 (unsigned)map->target_port);
    else
        addr_format(&map->target, s->target, sizeof s->target);
    /* Appended: /metrics lists ports in the order they were published. */
    s->prev = m->last;
    if (m->last)
        m->last->next = s;
    else
        m->ports = s;
    m->last = s;
    return s;
}

void metrics_port_free(struct map_stats *s)
{
    if (!s)
        return;
    if (s->owner) {
        if (s->prev)
            s->prev->next = s->next;
        else
            s->owner->ports = s->next;
        if (s->next)
            s->next->prev = s->prev;
        else
            s->owner->last = s->prev;
    }
    free(s);
}

void metrics_port_draining(struct map_stats *s)
{
    if (s)
        s->draining = true;
}

enum metrics_connect_reason metrics_connect_reason(int err)
{
    const char *why;
    if (sock_err_is_resource(err, &why))
        return METRICS_RESOURCE;
    switch (err) {
    case ECONNREFUSED:
    case ECONNRESET:
        return METRICS_REFUSED;
    case ETIMEDOUT:
        return METRICS_TIMEOUT;
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EHOSTDOWN:
    case ENETDOWN:
        return METRICS_UNREACHABLE;
    default:
        return METRICS_OTHER;
    }
}

void histogram_observe(struct histogram *h, double seconds)
{
    size_t i = 0;
    while (i < METRICS_BUCKETS && seconds > bounds[i])
        i++;
    h->n[i]++;
    h->count++;
    h->sum += seconds;
}

void metrics_connect_done(struct map_stats *s, int err, uint64_t ns)
{
    if (!s)
        return;
    if (err == 0)
        histogram_observe(&s->connect, (double)ns / 1e9);
    else
        s->connect_errors[metrics_connect_reason(err)]++;
}

void metrics_dns_answer(struct metrics *m, unsigned rcode, bool forwarded)
{
    if (m)
        m->dns[forwarded][rcode & 15]++;
}

void metrics_dns_forward_time(struct metrics *m, uint64_t ns)
{
    if (m)
        histogram_observe(&m->dns_forward, (double)ns / 1e9);
}

void metrics_docker_up(struct metrics *m, bool up)
{
    if (m)
        m->docker_up = up;
}

void metrics_docker_event(struct metrics *m)
{
    if (m)
        m->docker_events++;
}

void metrics_reload(struct metrics *m, bool ok)
{
    if (m)
        m->reloads[ok]++;
}

uint64_t metrics_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- rendering ---- */

/* A label value: backslash, double quote and newline escaped. */
static void put_value(FILE *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            fputs("\\\\", out);
        else if (*v == '"')
            fputs("\\\"", out);
        else if (*v == '\n')
            fputs("\\n", out);
        else
            fputc(*v, out);
    }
}

static void family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A port's labels without the braces: listen="…",proto="…",target="…",
 * and state="draining" on a port a reload removed. */
static void port_labels(FILE *out, const struct map_stats *s)
{
    fputs("listen=\"", out);
    put_value(out, s->listen);
    fprintf(out, "\",proto=\"%s\",target=\"", proto_name(s->proto));
    put_value(out, s->target);
    fputs(s->draining ? "\",state=\"draining\"" : "\"", out);
}

static void port_series(FILE *out, const char *name, const struct map_stats *s,
                        const char *extra, uint64_t v)
{
    fprintf(out, "%s{", name);
    port_labels(out, s);
    fprintf(out, "%s} %llu\n", extra ? extra : "", (unsigned long long)v);
}

/* labels: what goes before le (with its trailing comma), or "". */
static void histogram_series(FILE *out, const char *name, const struct map_stats *s,
                             const struct histogram *h)
{
    uint64_t sum = 0;
    for (size_t i = 0; i <= METRICS_BUCKETS; i++) {
        sum += h->n[i];
        fprintf(out, "%s_bucket{", name);
        if (s) {
            port_labels(out, s);
            fputc(',', out);
        }
        fprintf(out, "le=\"%s\"} %llu\n", i < METRICS_BUCKETS ? bound_text[i] : "+Inf",
                (unsigned long long)sum);
    }
    fprintf(out, "%s_sum", name);
    if (s) {
        fputc('{', out);
        port_labels(out, s);
        fputc('}', out);
    }
    fprintf(out, " %.9g\n%s_count", h->sum, name);
    if (s) {
        fputc('{', out);
        port_labels(out, s);
        fputc('}', out);
    }
    fprintf(out, " %llu\n", (unsigned long long)h->count);
}

static void render_ports(const struct metrics *m, FILE *out)
{
    const struct map_stats *s;
    char extra[64];
    family(out, "berth_connections_total", "counter",
           "TCP connections and SCTP associations accepted on a published port.");
    for (s = m->ports; s; s = s->next)
        if (s->proto != PROTO_UDP)
            port_series(out, "berth_connections_total", s, NULL, s->conns);
    family(out, "berth_connections_active", "gauge",
           "TCP and SCTP sessions open now.");
    for (s = m->ports; s; s = s->next)
        if (s->proto != PROTO_UDP)
            port_series(out, "berth_connections_active", s, NULL, s->conns_active);
    family(out, "berth_bytes_total", "counter",
           "Payload bytes relayed (in: client to target, as the kernel took them; "
           "out: target to client).");
    for (s = m->ports; s; s = s->next)
        for (int d = 0; d < 2; d++)
            port_series(out, "berth_bytes_total", s,
                        d == METRICS_IN ? ",direction=\"in\"" : ",direction=\"out\"",
                        s->bytes[d]);
    family(out, "berth_connect_errors_total", "counter",
           "Connects to a TCP or SCTP target that failed, by reason.");
    for (s = m->ports; s; s = s->next)
        if (s->proto != PROTO_UDP)
            for (int r = 0; r < METRICS_CONNECT_REASONS; r++) {
                snprintf(extra, sizeof extra, ",reason=\"%s\"", connect_reason[r]);
                port_series(out, "berth_connect_errors_total", s, extra,
                            s->connect_errors[r]);
            }
    family(
        out, "berth_connect_duration_seconds", "histogram",
        "Time from accepting a TCP or SCTP client to its target's connect succeeding.");
    for (s = m->ports; s; s = s->next)
        if (s->proto != PROTO_UDP)
            histogram_series(out, "berth_connect_duration_seconds", s, &s->connect);
    family(out, "berth_udp_flows_active", "gauge", "UDP flows open now.");
    for (s = m->ports; s; s = s->next)
        if (s->proto == PROTO_UDP)
            port_series(out, "berth_udp_flows_active", s, NULL, s->flows_active);
    family(out, "berth_udp_datagrams_total", "counter",
           "UDP datagrams received (in: from clients, relayed or dropped; out: "
           "replies from targets).");
    for (s = m->ports; s; s = s->next)
        if (s->proto == PROTO_UDP)
            for (int d = 0; d < 2; d++)
                port_series(out, "berth_udp_datagrams_total", s,
                            d == METRICS_IN ? ",direction=\"in\""
                                            : ",direction=\"out\"",
                            s->datagrams[d]);
    family(out, "berth_udp_dropped_total", "counter",
           "UDP datagrams received from clients and not relayed, by reason.");
    for (s = m->ports; s; s = s->next)
        if (s->proto == PROTO_UDP)
            for (int r = 0; r < METRICS_UDP_DROPS; r++) {
                snprintf(extra, sizeof extra, ",reason=\"%s\"", drop_reason[r]);
                port_series(out, "berth_udp_dropped_total", s, extra,
                            s->udp_dropped[r]);
            }
}

static void render_services(const struct metrics *m, FILE *out)
{
    family(out, "berth_dns_queries_total", "counter",
           "DNS replies sent, by rcode and by who answered.");
    for (int f = 0; f < 2; f++)
        for (int r = 0; r < 16; r++)
            if (m->dns[f][r])
                fprintf(out,
                        "berth_dns_queries_total{rcode=\"%s\",answer=\"%s\"} %llu\n",
                        rcode_name[r], f ? "forwarded" : "local",
                        (unsigned long long)m->dns[f][r]);
    family(out, "berth_dns_forward_duration_seconds", "histogram",
           "Time an upstream took to answer a forwarded query.");
    histogram_series(out, "berth_dns_forward_duration_seconds", NULL, &m->dns_forward);
    if (m->docker_up >= 0) {
        family(out, "berth_docker_up", "gauge",
               "1 while berth follows the Docker engine's events, else 0.");
        fprintf(out, "berth_docker_up %d\n", m->docker_up);
        family(out, "berth_docker_events_total", "counter",
               "Docker engine events read.");
        fprintf(out, "berth_docker_events_total %llu\n",
                (unsigned long long)m->docker_events);
    }
    family(out, "berth_config_reloads_total", "counter",
           "--config reloads (SIGHUP), applied or refused.");
    fprintf(out, "berth_config_reloads_total{result=\"ok\"} %llu\n",
            (unsigned long long)m->reloads[1]);
    fprintf(out, "berth_config_reloads_total{result=\"failed\"} %llu\n",
            (unsigned long long)m->reloads[0]);
    family(out, "berth_build_info", "gauge", "The running berth's version.");
    fprintf(out, "berth_build_info{version=\"%s\"} 1\n", BERTH_VERSION);
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own */
}

static long resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size, rss = -1;
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * sysconf(_SC_PAGESIZE);
}

/* Seconds since the epoch: boot time (/proc/stat btime) plus field 22 of
 * /proc/self/stat, in clock ticks since boot. */
static double start_time(void)
{
    unsigned long long btime = 0, ticks = 0;
    char line[256];
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %llu", &btime) == 1)
            break;
    fclose(f);
    char stat[1024];
    f = fopen("/proc/self/stat", "r");
    if (!f)
        return -1;
    size_t len = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[len] = '\0';
    /* The command may hold spaces and parentheses: fields count from the
     * last ')'; starttime is the 20th after it. */
    const char *p = strrchr(stat, ')');
    if (!p || !btime)
        return -1;
    for (int field = 2; field < 22 && p; field++)
        p = strchr(p + 1, ' ');
    if (!p || sscanf(p + 1, "%llu", &ticks) != 1)
        return -1;
    return (double)btime + (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

static void render_process(FILE *out)
{
    struct rusage ru;
    long fds = open_fds(), rss = resident_bytes();
    double started = start_time();
    if (fds >= 0) {
        family(out, "process_open_fds", "gauge", "Open file descriptors.");
        fprintf(out, "process_open_fds %ld\n", fds);
    }
    if (rss >= 0) {
        family(out, "process_resident_memory_bytes", "gauge", "Resident memory size.");
        fprintf(out, "process_resident_memory_bytes %ld\n", rss);
    }
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        family(out, "process_cpu_seconds_total", "counter",
               "User and system CPU time spent.");
        fprintf(out, "process_cpu_seconds_total %.6f\n",
                (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    }
    if (started >= 0) {
        family(out, "process_start_time_seconds", "gauge",
               "Start time of the process since the epoch, seconds.");
        fprintf(out, "process_start_time_seconds %.2f\n", started);
    }
}

int metrics_render(const struct metrics *m, FILE *out)
{
    render_ports(m, out);
    render_services(m, out);
    render_process(out);
    return ferror(out) ? -1 : 0;
}

void metrics_http_reply(struct evhttp_request *req, int code, const char *reason,
                        const char *type, struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    bool head = evhttp_request_get_command(req) == EVHTTP_REQ_HEAD;
    if (!body) {
        if (head)
            evhttp_send_reply(req, code, reason, NULL);
        else
            evhttp_send_error(req, code, reason);
        return;
    }
    if (type)
        evhttp_add_header(h, "Content-Type", type);
    if (!head) {
        evhttp_send_reply(req, code, reason, body);
        return;
    }
    char len[24];
    snprintf(len, sizeof len, "%zu", evbuffer_get_length(body));
    evhttp_add_header(h, "Content-Length", len);
    evhttp_send_reply(req, code, reason, NULL);
}

void metrics_http(struct evhttp_request *req, void *arg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    int rc = out ? metrics_render(arg, out) : -1;
    if (out && fclose(out) != 0)
        rc = -1;
    struct evbuffer *body = evbuffer_new();
    if (rc < 0 || !body || evbuffer_add(body, text, len) < 0) {
        free(text);
        if (body)
            evbuffer_free(body);
        metrics_http_reply(req, HTTP_INTERNAL, "out of memory", NULL, NULL);
        return;
    }
    free(text);
    metrics_http_reply(req, HTTP_OK, "OK", "text/plain; version=0.0.4; charset=utf-8",
                       body);
    evbuffer_free(body);
}
