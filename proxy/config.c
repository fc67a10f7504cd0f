#include "berth/config.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/config_file.h"
#include "berth/sockaddr.h"
#include "berth/spec.h"

/* Order matters only for --help. */
static const struct config_option options[] = {
    {"publish", 'p', CONFIG_LIST, 0, 0},
    {"docker", 0, CONFIG_STRING, 0, 0},
    {"no-docker", 0, CONFIG_FLAG, 0, 0},
    {"labels", 0, CONFIG_FLAG, 0, 0},
    {"transparent", 0, CONFIG_FLAG, 0, 0},
    {"proxy-protocol", 0, CONFIG_STRING, 0, 0},
    {"dns", 0, CONFIG_LIST, 0, 0},
    {"domain", 0, CONFIG_STRING, 0, 0},
    {"ttl", 0, CONFIG_UINT, INT32_MAX, 0},
    {"upstream", 0, CONFIG_LIST, 0, 0},
    {"udp-timeout", 0, CONFIG_UINT, INT32_MAX, 1},
    {"max-conns", 0, CONFIG_UINT, 1000000, 0},
    {"tcp-keepalive", 0, CONFIG_TEXT, 0, 0},
    {"idle-timeout", 0, CONFIG_UINT, INT32_MAX, 0},
    {"stale-after", 0, CONFIG_UINT, INT32_MAX, 0},
    {"swarm-poll", 0, CONFIG_UINT, 86400, 0},
    {"config", 0, CONFIG_STRING, 0, 0},
    {"check", 0, CONFIG_FLAG, 0, 0},
    {"check-wait", 0, CONFIG_UINT, 60, 0},
    {"log-level", 0, CONFIG_STRING, 0, 0},
    {"log-format", 0, CONFIG_STRING, 0, 0},
    {"admin", 0, CONFIG_STRING, 0, 0},
    {"help", 'h', CONFIG_FLAG, 0, 0},
    {"version", 0, CONFIG_FLAG, 0, 0},
};
#define NOPTIONS (sizeof options / sizeof options[0])

struct config *config_new(void)
{
    struct config *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->ttl = 5;
    c->udp_timeout = CONFIG_UDP_TIMEOUT;
    c->tcp_keepalive = CONFIG_TCP_KEEPALIVE;
    c->stale_after = CONFIG_STALE_AFTER;
    c->swarm_poll = CONFIG_SWARM_POLL;
    c->check_wait = CONFIG_CHECK_WAIT;
    c->log_level = LOG_INFO;
    c->domain = strdup("docker");
    if (!c->domain) {
        free(c);
        return NULL;
    }
    return c;
}

static void strlist_clear(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int strlist_add(struct strlist *l, const char *s)
{
    char **v = realloc(l->v, (l->n + 1) * sizeof *v);
    if (!v)
        return -1;
    l->v = v;
    if (!(l->v[l->n] = strdup(s)))
        return -1;
    l->n++;
    return 0;
}

void config_free(struct config *c)
{
    if (!c)
        return;
    strlist_clear(&c->publish);
    free(c->publish_opts);
    strlist_clear(&c->dns);
    strlist_clear(&c->upstream);
    free(c->docker);
    free(c->domain);
    free(c->config_path);
    free(c->admin);
    free(c);
}

const struct config_option *config_option_find(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strlen(options[i].name) == len && strncmp(options[i].name, name, len) == 0)
            return &options[i];
    return NULL;
}

static const struct config_option *find_short(char c)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (options[i].short_name == c)
            return &options[i];
    return NULL;
}

/* "ADDR:PORT" with a bracketed IPv6 address; port required unless
 * default_port is non-zero. */
static int check_hostport(const char *s, uint16_t default_port)
{
    struct addr a;
    return addr_parse_hostport(&a, s, default_port);
}

static bool valid_domain(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 200 || s[0] == '.' || s[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
                  (ch == '.' && s[i + 1] != '.');
        if (!ok)
            return false;
    }
    return true;
}

/* "IDLE[:INTERVAL:COUNT]", whole seconds; IDLE alone keeps the default
 * interval and count (as Go's KeepAlive does), "0" alone is off. */
static int parse_keepalive(const char *v, struct sock_keepalive *k)
{
    unsigned long f[3];
    int n = 0;
    for (const char *p = v;;) {
        char *end;
        if (*p < '0' || *p > '9')
            return -1;
        errno = 0;
        f[n++] = strtoul(p, &end, 10);
        if (errno)
            return -1;
        if (*end == '\0')
            break;
        if (*end != ':' || n == 3)
            return -1;
        p = end + 1;
    }
    if (n == 1 && f[0] == 0) {
        *k = (struct sock_keepalive){0, 0, 0};
        return 0;
    }
    struct sock_keepalive d = CONFIG_TCP_KEEPALIVE;
    unsigned long interval = n == 3 ? f[1] : d.interval,
                  count = n == 3 ? f[2] : d.count;
    if (n == 2 || f[0] < 1 || f[0] > SOCK_KEEPALIVE_TIME_MAX || interval < 1 ||
        interval > SOCK_KEEPALIVE_TIME_MAX || count < 1 ||
        count > SOCK_KEEPALIVE_COUNT_MAX)
        return -1;
    *k = (struct sock_keepalive){(unsigned)f[0], (unsigned)interval, (unsigned)count};
    return 0;
}

/* A publish entry with nothing of its own yet: its source's switches
 * apply (config_publish_resolve). */
int config_publish_add(struct config *c, const char *spec)
{
    struct publish_opts *o = realloc(c->publish_opts, (c->publish.n + 1) * sizeof *o);
    if (!o)
        return -1;
    c->publish_opts = o;
    o[c->publish.n] = (struct publish_opts){.from_file = c->loading_file,
                                            .own_transparent = -1,
                                            .own_proxy_proto = -1};
    return strlist_add(&c->publish, spec);
}

/* Each entry's switches: its own, else its source's. The PROXY protocol is
 * TCP's, transparent mode TCP's and UDP's: a source's switch leaves other
 * entries without them (an entry's own was refused when read). */
void config_publish_resolve(struct config *c)
{
    for (size_t i = 0; i < c->publish.n; i++) {
        struct publish_opts *o = &c->publish_opts[i];
        const struct publish_defaults *d = o->from_file ? &c->file : &c->cli;
        o->transparent = o->own_transparent >= 0 ? o->own_transparent != 0
                                                 : d->transparent;
        o->proxy_proto = o->own_proxy_proto >= 0 ? (enum proxy_proto)o->own_proxy_proto
                                                 : d->proxy_proto;
        struct spec sp;
        char why[200];
        if (spec_parse(c->publish.v[i], &sp, why, sizeof why) < 0)
            continue;
        if (sp.proto != PROTO_TCP)
            o->proxy_proto = PROXY_PROTO_NONE;
        if (sp.proto == PROTO_SCTP)
            o->transparent = false;
    }
}

static int set_string(char **slot, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return -1;
    free(*slot);
    *slot = copy;
    return 0;
}

/* Validates one value and stores it. where is "--name" on the command line
 * or "config 'f.json': name" from a file; messages read
 * "<where> '<value>': <reason>". */
int config_apply(struct config *c, const struct config_option *o, const char *v,
                 const char *where, char *err, size_t errlen)
{
    const char *name = o->name;
    char why[200];
    if (strcmp(name, "publish") == 0) {
        struct spec sp;
        if (spec_parse(v, &sp, why, sizeof why) < 0) {
            snprintf(err, errlen, "%s '%s': %s", where, v, why);
            return -1;
        }
        return config_publish_add(c, v);
    }
    if (strcmp(name, "proxy-protocol") == 0) {
        struct publish_defaults *d = c->loading_file ? &c->file : &c->cli;
        if (spec_parse_proxy_proto(v, &d->proxy_proto) < 0) {
            snprintf(err, errlen, "%s '%s': want v1, v2 or off", where, v);
            return -1;
        }
        return 0;
    }
    if (strcmp(name, "dns") == 0) {
        if (check_hostport(v, 0) < 0) {
            snprintf(
                err, errlen,
                "%s '%s': want ADDR:PORT with an IP address ([::1]:5353 for IPv6)",
                where, v);
            return -1;
        }
        return strlist_add(&c->dns, v);
    }
    if (strcmp(name, "admin") == 0) {
        if (check_hostport(v, 0) < 0) {
            snprintf(
                err, errlen,
                "%s '%s': want ADDR:PORT with an IP address ([::1]:9180 for IPv6)",
                where, v);
            return -1;
        }
        return set_string(&c->admin, v);
    }
    if (strcmp(name, "upstream") == 0) {
        if (check_hostport(v, 53) < 0) {
            snprintf(err, errlen, "%s '%s': want an IP address with an optional :PORT",
                     where, v);
            return -1;
        }
        return strlist_add(&c->upstream, v);
    }
    if (strcmp(name, "docker") == 0) {
        /* Its syntax is the endpoint resolver's (docker_endpoint.c), which
         * main runs before anything binds: one parser for every source. */
        if (!*v) {
            snprintf(
                err, errlen,
                "%s: want unix:///path, tcp://host[:port] or ssh://[user@]host[:port]",
                where);
            return -1;
        }
        return set_string(&c->docker, v);
    }
    if (strcmp(name, "domain") == 0) {
        if (!valid_domain(v)) {
            snprintf(err, errlen, "%s '%s': not a valid DNS domain", where, v);
            return -1;
        }
        return set_string(&c->domain, v);
    }
    if (strcmp(name, "log-level") == 0) {
        if (log_level_parse(v, &c->log_level) < 0) {
            snprintf(err, errlen, "%s '%s': want error, warn, info or debug", where,
                     v);
            return -1;
        }
        return 0;
    }
    if (strcmp(name, "log-format") == 0) {
        if (log_format_parse(v, &c->log_format) < 0) {
            snprintf(err, errlen, "%s '%s': want text or json", where, v);
            return -1;
        }
        return 0;
    }
    if (strcmp(name, "config") == 0)
        return set_string(&c->config_path, v);
    if (strcmp(name, "tcp-keepalive") == 0) {
        if (parse_keepalive(v, &c->tcp_keepalive) < 0) {
            snprintf(err, errlen,
                     "%s '%s': want IDLE[:INTERVAL:COUNT] (IDLE and INTERVAL "
                     "1-%d seconds, COUNT 1-%d), or 0 for off",
                     where, v, SOCK_KEEPALIVE_TIME_MAX, SOCK_KEEPALIVE_COUNT_MAX);
            return -1;
        }
        return 0;
    }
    if (o->kind == CONFIG_UINT) {
        char *end;
        errno = 0;
        unsigned long n = strtoul(v, &end, 10);
        if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno || n > o->max ||
            n < o->min) {
            snprintf(err, errlen, "%s '%s': want a whole number in %u-%u", where, v,
                     o->min, o->max);
            return -1;
        }
        if (strcmp(name, "ttl") == 0)
            c->ttl = (unsigned)n;
        else if (strcmp(name, "udp-timeout") == 0)
            c->udp_timeout = (unsigned)n;
        else if (strcmp(name, "idle-timeout") == 0)
            c->idle_timeout = (unsigned)n;
        else if (strcmp(name, "stale-after") == 0)
            c->stale_after = (unsigned)n;
        else if (strcmp(name, "swarm-poll") == 0)
            c->swarm_poll = (unsigned)n;
        else if (strcmp(name, "check-wait") == 0)
            c->check_wait = (unsigned)n;
        else
            c->max_conns = (unsigned)n;
        return 0;
    }
    return 0;
}

void config_set_flag(struct config *c, const struct config_option *o, bool on)
{
    const char *n = o->name;
    if (strcmp(n, "no-docker") == 0)
        c->no_docker = on;
    else if (strcmp(n, "labels") == 0)
        c->labels = on;
    else if (strcmp(n, "transparent") == 0)
        (c->loading_file ? &c->file : &c->cli)->transparent = on;
    else if (strcmp(n, "check") == 0)
        c->check = on;
    else if (strcmp(n, "help") == 0)
        c->help = on;
    else if (strcmp(n, "version") == 0)
        c->version = on;
}

/* Walks argv. With only_config, records --config and nothing else. */
static int walk_args(struct config *c, int argc, char **argv, bool only_config,
                     char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const struct config_option *o = NULL;
        const char *value = NULL;
        char where[64];
        if (strncmp(arg, "--", 2) == 0 && arg[2] != '\0') {
            const char *eq = strchr(arg + 2, '=');
            size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
            o = config_option_find(arg + 2, len);
            if (o && eq)
                value = eq + 1;
        } else if (arg[0] == '-' && arg[1] != '\0' && arg[1] != '-') {
            o = find_short(arg[1]);
            if (o && arg[2] != '\0')
                value = o->kind == CONFIG_FLAG ? NULL : arg + 2;
            if (o && o->kind == CONFIG_FLAG && arg[2] != '\0')
                o = NULL;
        } else {
            snprintf(err, errlen, "unexpected argument '%s' (see berth --help)", arg);
            return -1;
        }
        if (!o) {
            snprintf(err, errlen, "unknown option '%s' (see berth --help)", arg);
            return -1;
        }
        snprintf(where, sizeof where, "--%s", o->name);
        if (o->kind == CONFIG_FLAG) {
            if (value) {
                snprintf(err, errlen, "option '--%s' takes no value", o->name);
                return -1;
            }
            if (!only_config)
                config_set_flag(c, o, true);
            continue;
        }
        if (!value) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "option '%s' needs a value", arg);
                return -1;
            }
            value = argv[++i];
        }
        bool is_config = strcmp(o->name, "config") == 0;
        if (is_config != only_config)
            continue;
        if (config_apply(c, o, value, where, err, errlen) < 0)
            return -1;
    }
    return 0;
}

int config_parse_args(struct config *c, int argc, char **argv, char *err,
                      size_t errlen)
{
    if (walk_args(c, argc, argv, true, err, errlen) < 0)
        return -1;
    if (c->config_path && config_load_file(c, c->config_path, err, errlen) < 0)
        return -1;
    if (walk_args(c, argc, argv, false, err, errlen) < 0)
        return -1;
    config_publish_resolve(c);
    return 0;
}

void config_usage(const char *prog, FILE *out)
{
    fprintf(
        out,
        "Usage: %s [OPTIONS]\n"
        "       %s -proto tcp|udp|sctp -host-ip IP -host-port N -container-ip IP -container-port N [-use-listen-fd]\n"
        "\n"
        "Publishes TCP, UDP and SCTP ports, as `docker run -p` does, from one process.\n"
        "\n"
        "  -p, --publish SPEC     [HOST_IP:]HOST_PORT[-END]:TARGET:TARGET_PORT[-END][/tcp|/udp|/sctp]\n"
        "                         repeatable; without HOST_IP: 0.0.0.0 and [::] (when the\n"
        "                         host has IPv6); IPv6 in brackets; an address the host\n"
        "                         lacks yet is bound anyway and served once it appears\n"
        "      --docker URL       Docker Engine API: unix:///path, tcp://host[:port] or\n"
        "                         ssh://[user@]host[:port] (default: as the docker CLI finds it)\n"
        "      --no-docker        never contact a Docker engine (IP targets only)\n"
        "      --labels           also publish containers' berth.publish labels\n"
        "      --transparent      the --publish targets see the client's address, not\n"
        "                         berth's (IP_TRANSPARENT; host set up by berth-tproxy)\n"
        "      --proxy-protocol v1|v2  send a PROXY protocol header to the --publish\n"
        "                         TCP targets, first on each connection\n"
        "      --dns ADDR:PORT    serve DNS for container names (repeatable)\n"
        "      --domain NAME      DNS zone of container names (default docker)\n"
        "      --ttl SECONDS      TTL of local DNS answers (default 5)\n"
        "      --upstream ADDR[:PORT]  where other DNS names go (repeatable)\n"
        "      --udp-timeout SECONDS   idle timeout of a UDP flow (default 90)\n"
        "      --max-conns N      concurrent TCP connections per port (default 0: no limit)\n"
        "      --tcp-keepalive IDLE[:INTERVAL:COUNT]  keepalive on both sockets of a TCP\n"
        "                         session, seconds (default 15:15:9; 0: off)\n"
        "      --idle-timeout SECONDS  close a TCP session silent both ways that long\n"
        "                         (default 0: never)\n"
        "      --stale-after SECONDS  without the Docker engine that long, stop\n"
        "                         resolving names (default 60; 0: never)\n"
        "      --swarm-poll SECONDS  on a Swarm node, read services and tasks this often\n"
        "                         (default 10; 0: do not follow Swarm)\n"
        "      --config FILE      JSON file with the same settings\n"
        "      --check            validate, print the plan (and what runs behind each name\n"
        "                         target now), exit without binding\n"
        "      --check-wait SECONDS  how long --check waits for Docker (default 3; 0: do\n"
        "                         not contact it)\n"
        "      --log-level LEVEL  error, warn, info or debug (default info)\n"
        "      --log-format FORMAT  text or json (one object per line) (default text)\n"
        "      --admin ADDR:PORT  serve HTTP there: /metrics (Prometheus)\n"
        "  -h, --help             this text\n"
        "      --version          print the version\n"
        "\n"
        "Exit status: 0 stopped by SIGINT/SIGTERM, 1 runtime failure, 2 bad usage.\n",
        prog, prog);
}
