/* Settings from argv (and, through config_file, a --config JSON file), as
 * plain values.
 *
 * Pure: no sockets, no binding. Parsers return 0, or -1 with a one-line
 * message in err that names the offending text and the reason (main prefixes
 * it with "berth: "). */
#ifndef BERTH_CONFIG_H
#define BERTH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "berth/log.h"
#include "berth/mapping.h"
#include "berth/sockaddr.h"

/* The defaults of what a plan carries, in one place: config_new's, and those
 * of a plan made without a config (docker-proxy mode, plan.h's PLAN_INIT). */
#define CONFIG_UDP_TIMEOUT 90
/* docker-proxy 28's, Go's defaults on both sockets of a connection: the
 * first probe after 15 s of silence, then every 15 s; 9 unanswered probes
 * end the connection (a dead peer is noticed after about 2.5 minutes). */
#define CONFIG_TCP_KEEPALIVE ((struct sock_keepalive){15, 15, 9})

/* Seconds without a working connection to the Docker engine after which
 * names stop resolving (README, "Bounded staleness"): long enough for a
 * dockerd restart, short next to how soon Docker hands a stopped
 * container's address to a new one. */
#define CONFIG_STALE_AFTER 60

/* Seconds between reads of a swarm's tasks (Swarm sends no task events):
 * a scaled or moved service is followed within this, at the cost of a
 * few requests to the engine each time (Traefik's Swarm provider: 15). */
#define CONFIG_SWARM_POLL 10

/* How long --check waits for the Docker engine to sync before it says
 * what runs behind each name target: a local engine takes milliseconds. */
#define CONFIG_CHECK_WAIT 3

struct strlist {
    char **v;
    size_t n;
};

/* What one publish entry switches on beside its spec: its own keys in a
 * config file object, else the switches of where it came from (the command
 * line's --transparent/--proxy-protocol for -p entries, the same keys at a
 * config file's top level for its plain-string entries). */
struct publish_opts {
    bool transparent;
    enum proxy_proto proxy_proto; /* NONE for a UDP entry */
    /* While parsing: where it came from, what it said itself (-1: nothing). */
    bool from_file;
    signed char own_transparent, own_proxy_proto;
};

/* The switches one source gives its publish entries. */
struct publish_defaults {
    bool transparent;
    enum proxy_proto proxy_proto;
};

struct config {
    struct strlist publish;
    struct publish_opts *publish_opts; /* one per publish entry */
    struct publish_defaults cli, file;
    bool loading_file; /* while a config file's keys are applied */
    char *docker;      /* NULL: $DOCKER_HOST or the default socket */
    bool no_docker;
    bool labels;
    struct strlist dns;
    char *domain;
    unsigned ttl;
    struct strlist upstream;
    unsigned udp_timeout;                /* seconds */
    unsigned max_conns;                  /* per published TCP port; 0 = unlimited */
    struct sock_keepalive tcp_keepalive; /* both sockets of a session */
    unsigned idle_timeout; /* seconds without a byte either way; 0 = never */
    unsigned stale_after;  /* seconds without the engine; 0 = never stale */
    unsigned swarm_poll;   /* seconds between Swarm rounds; 0 = not followed */
    char *config_path;
    char *admin; /* --admin ADDR:PORT, validated; NULL: no HTTP listener */
    bool check;
    unsigned check_wait; /* --check: seconds to wait for Docker; 0 = ask none */
    /* Not an option: the host has IPv6 (sock_host_has_ipv6), set by main
     * before plan_new, so a spec without HOST_IP listens on [::] too. */
    bool host_ipv6;
    enum log_level log_level;
    enum log_format log_format;
    bool help;
    bool version;
};

struct config *config_new(void);
void config_free(struct config *c);

/* Reads argv (argv[0] is the program). A --config file is loaded first and
 * the command line then wins: scalars override, lists append. */
int config_parse_args(struct config *c, int argc, char **argv, char *err,
                      size_t errlen);

void config_usage(const char *prog, FILE *out);

/* For config_file: the option table and the steps a command-line value goes
 * through, so that a file's keys go through the same ones.
 * CONFIG_TEXT: a string, which a JSON config may also give as a whole
 * number ("tcp-keepalive": 0). */
enum config_kind { CONFIG_FLAG, CONFIG_STRING, CONFIG_LIST, CONFIG_UINT, CONFIG_TEXT };

struct config_option {
    const char *name;
    char short_name;
    enum config_kind kind;
    unsigned max; /* CONFIG_UINT: largest accepted value */
    unsigned min;
};

/* For config_file: the option of a long name (len bytes); NULL if none. */
const struct config_option *config_option_find(const char *name, size_t len);

/* For config_file: validates one value of o and stores it. where is
 * "--name" on the command line or "config 'f.json': name" from a file;
 * messages read "<where> '<value>': <reason>". */
int config_apply(struct config *c, const struct config_option *o, const char *v,
                 const char *where, char *err, size_t errlen);

/* For config_file: sets (or clears) a CONFIG_FLAG option. */
void config_set_flag(struct config *c, const struct config_option *o, bool on);

/* For config_file: appends a publish entry with nothing of its own yet (its
 * source's switches apply); -1 out of memory. */
int config_publish_add(struct config *c, const char *spec);

/* For config_file: gives each publish entry its switches, its own else its
 * source's. */
void config_publish_resolve(struct config *c);

#endif
