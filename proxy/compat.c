#include "berth/compat.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "berth/berth.h"
#include "berth/config.h"
#include "berth/log.h"
#include "berth/spec.h"

#define STATUS_FD 3
#define LISTEN_FD 4

static const char *const flag_names[] = {
    "proto",          "host-ip",       "host-port", "container-ip",
    "container-port", "use-listen-fd", "v",         "version",
};
#define NFLAGS (sizeof flag_names / sizeof flag_names[0])

/* "-name", "--name", "-name=value": returns the flag's index or -1. */
static int match_flag(const char *arg, const char **value)
{
    if (arg[0] != '-')
        return -1;
    const char *name = arg + 1 + (arg[1] == '-');
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    for (size_t i = 0; i < NFLAGS; i++) {
        if (strlen(flag_names[i]) == len && strncmp(flag_names[i], name, len) == 0) {
            *value = eq ? eq + 1 : NULL;
            return (int)i;
        }
    }
    return -1;
}

bool compat_wanted(int argc, char **argv)
{
    /* berth's own options are all --long or -p/-h; docker-proxy's are
     * single-dash words, and dockerd always passes -proto first. -v and
     * -version alone are docker-proxy's way to ask for the version. */
    for (int i = 1; i < argc; i++) {
        const char *v;
        int k = match_flag(argv[i], &v);
        if (k >= 0 && argv[i][1] != '-' && (k <= 5 || argc == 2))
            return true;
    }
    return false;
}

/* A boolean flag's value as Go's strconv.ParseBool reads it. Returns 0,
 * or -1 if it is none of its spellings. */
static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
            *out = strcmp(s, yes[i]) == 0;
            return 0;
        }
    }
    return -1;
}

static int parse_port(const char *s, uint16_t *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno || v < 1 || v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

int compat_parse(int argc, char **argv, struct compat_args *out, char *err,
                 size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->proto = PROTO_TCP;
    const char *host_ip = "0.0.0.0", *container_ip = "0.0.0.0";
    uint16_t host_port = 0, container_port = 0;
    for (int i = 1; i < argc; i++) {
        const char *value;
        int k = match_flag(argv[i], &value);
        if (k < 0) {
            snprintf(err, errlen, "docker-proxy mode: unknown flag '%s'", argv[i]);
            return -1;
        }
        const char *name = flag_names[k];
        if (strcmp(name, "use-listen-fd") == 0 || strcmp(name, "v") == 0 ||
            strcmp(name, "version") == 0) {
            bool on = true;
            if (value && parse_bool(value, &on) < 0) {
                snprintf(err, errlen, "-%s '%s': want true or false", name, value);
                return -1;
            }
            if (name[0] == 'u')
                out->use_listen_fd = on;
            else
                out->version = on;
            continue;
        }
        if (!value) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "flag '-%s' needs a value", name);
                return -1;
            }
            value = argv[++i];
        }
        if (strcmp(name, "proto") == 0) {
            if (strcmp(value, "tcp") == 0 || strcmp(value, "tcp4") == 0 ||
                strcmp(value, "tcp6") == 0)
                out->proto = PROTO_TCP;
            else if (strcmp(value, "udp") == 0 || strcmp(value, "udp4") == 0 ||
                     strcmp(value, "udp6") == 0)
                out->proto = PROTO_UDP;
            else if (strcmp(value, "sctp") == 0 || strcmp(value, "sctp4") == 0 ||
                     strcmp(value, "sctp6") == 0)
                out->proto = PROTO_SCTP;
            else {
                snprintf(err, errlen, "-proto '%s': berth forwards tcp, udp and sctp",
                         value);
                return -1;
            }
        } else if (strcmp(name, "host-ip") == 0) {
            host_ip = value;
        } else if (strcmp(name, "container-ip") == 0) {
            container_ip = value;
        } else if (parse_port(value, strcmp(name, "host-port") == 0
                                         ? &host_port
                                         : &container_port) < 0) {
            snprintf(err, errlen, "-%s '%s': want a port in 1-65535", name, value);
            return -1;
        }
    }
    if (out->version)
        return 0;
    if (addr_from_ip(&out->host, host_ip, host_port) < 0) {
        snprintf(err, errlen, "-host-ip '%s': not an IP address", host_ip);
        return -1;
    }
    if (addr_from_ip(&out->container, container_ip, container_port) < 0) {
        snprintf(err, errlen, "-container-ip '%s': not an IP address", container_ip);
        return -1;
    }
    if (!host_port || !container_port) {
        snprintf(err, errlen, "-%s is required",
                 !host_port ? "host-port" : "container-port");
        return -1;
    }
    return 0;
}

/* Tells dockerd how start-up went, once; fd 3 is closed afterwards so
 * dockerd's read sees EOF. Run by hand, without fd 3, this is a no-op. */
static void report(bool have_status_fd, const char *error)
{
    if (!have_status_fd)
        return;
    char buf[600];
    int n = error ? snprintf(buf, sizeof buf, "1\n%s", error)
                  : snprintf(buf, sizeof buf, "0\n");
    if (n > (int)sizeof buf - 1)
        n = (int)sizeof buf - 1;
    for (int off = 0; off < n;) {
        ssize_t w = write(STATUS_FD, buf + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (int)w;
    }
    close(STATUS_FD);
}

/* The socket dockerd handed over must be of the protocol it asked for: a
 * TCP socket for -proto sctp (or the reverse) would be accepted from and
 * relayed as the wrong protocol, messages cut into bytes or bytes read as
 * messages. */
static int check_listen_fd(enum proto proto, char *err, size_t errlen)
{
    int type, protocol;
    socklen_t len = sizeof type, plen = sizeof protocol;
    if (getsockopt(LISTEN_FD, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
        getsockopt(LISTEN_FD, SOL_SOCKET, SO_PROTOCOL, &protocol, &plen) < 0) {
        snprintf(err, errlen, "-use-listen-fd: fd %d: %s", LISTEN_FD, strerror(errno));
        return -1;
    }
    if (type != proto_sock_type(proto) || protocol != proto_ipproto(proto)) {
        snprintf(err, errlen, "-use-listen-fd: fd %d is not a %s socket", LISTEN_FD,
                 proto_name(proto));
        return -1;
    }
    fcntl(LISTEN_FD, F_SETFD, FD_CLOEXEC);
    return 0;
}

/* dockerd's flags are fixed, so berth's own settings reach this mode
 * through the environment dockerd passes on: each variable is read as the
 * option it names, with the same parser and messages. */
static const char *const env_options[][2] = {
    {"BERTH_TCP_KEEPALIVE", "--tcp-keepalive"},
    {"BERTH_IDLE_TIMEOUT", "--idle-timeout"},
    {"BERTH_UDP_TIMEOUT", "--udp-timeout"},
    {"BERTH_LOG_LEVEL", "--log-level"},
    {"BERTH_LOG_FORMAT", "--log-format"},
    {"BERTH_PROXY_PROTOCOL", "--proxy-protocol"},
};
#define NENV (sizeof env_options / sizeof env_options[0])

int compat_env(struct plan *plan, struct publish_defaults *sw, char *err,
               size_t errlen)
{
    struct config *c = config_new();
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < NENV && rc == 0; i++) {
        const char *value = getenv(env_options[i][0]);
        if (!value)
            continue;
        char *args[] = {"berth", (char *)env_options[i][1], (char *)value, NULL};
        char why[400];
        if (config_parse_args(c, 3, args, why, sizeof why) < 0) {
            snprintf(err, errlen, "%s: %s", env_options[i][0], why);
            rc = -1;
        }
    }
    /* A switch, not an option with a value: as labels say it. */
    const char *t = getenv("BERTH_TRANSPARENT");
    bool on = false;
    if (rc == 0 && t && spec_parse_switch(t, &on) < 0) {
        snprintf(err, errlen, "BERTH_TRANSPARENT '%s': want 1 or 0 (true, false)", t);
        rc = -1;
    }
    if (rc == 0) {
        *sw = (struct publish_defaults){.transparent = on,
                                        .proxy_proto = c->cli.proxy_proto};
        plan->tcp_keepalive = c->tcp_keepalive;
        plan->idle_timeout = c->idle_timeout;
        plan->udp_timeout = c->udp_timeout;
        log_set_level(c->log_level);
        log_set_format(c->log_format);
    }
    config_free(c);
    return rc;
}

int compat_main(int argc, char **argv)
{
    /* Decide about fd 3 before anything can open a descriptor there. */
    bool have_status_fd = fcntl(STATUS_FD, F_GETFD) != -1;
    if (have_status_fd)
        fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC);
    char err[512];
    struct compat_args a;
    if (compat_parse(argc, argv, &a, err, sizeof err) < 0) {
        fprintf(stderr, "berth: %s\n", err);
        report(have_status_fd, err);
        return 2;
    }
    if (a.version) {
        printf("berth %s (docker-proxy compatible)\n", BERTH_VERSION);
        return 0;
    }
    if (a.use_listen_fd && check_listen_fd(a.proto, err, sizeof err) < 0) {
        fprintf(stderr, "berth: %s\n", err);
        report(have_status_fd, err);
        return 1;
    }
    berth_raise_fd_limit();

    int rc = 1;
    struct plan plan = PLAN_INIT; /* the defaults, keepalive on as docker-proxy's */
    struct publish_defaults sw;
    if (compat_env(&plan, &sw, err, sizeof err) < 0) {
        fprintf(stderr, "berth: %s\n", err);
        report(have_status_fd, err);
        return 2;
    }
    struct event_base *base = berth_event_base_new();
    struct berth *b = NULL;
    int fd = a.use_listen_fd ? LISTEN_FD : -1;
    if (base && plan_add(&plan, a.proto, &a.host, &a.container) == 0) {
        /* dockerd passes one environment to every proxy it starts: the
         * switches go where they work, transparent mode on TCP and UDP,
         * the PROXY protocol on TCP. */
        plan.maps[0].transparent = a.proto != PROTO_SCTP && sw.transparent;
        if (a.proto == PROTO_TCP)
            plan.maps[0].proxy_proto = sw.proxy_proto;
    }
    if (!base || plan.n != 1 || !(b = berth_new(base, &plan, NULL))) {
        snprintf(err, sizeof err, "out of memory");
        if (fd >= 0)
            close(fd);
    } else {
        /* One process per port: transparent mode's host check runs once. */
        berth_set_docker_proxy(b);
        if (berth_start(b, &fd, err, sizeof err) == 0) {
            report(have_status_fd, NULL);
            have_status_fd = false;
            rc = berth_run(b) == 0 ? 0 : 1;
            if (rc)
                snprintf(err, sizeof err, "event loop failed");
        }
    }
    if (rc) {
        log_error("%s", err);
        report(have_status_fd, err);
    }
    berth_free(b);
    free(plan.maps);
    if (base)
        event_base_free(base);
    return rc;
}
