/* docker-proxy compatibility: dockerd's userland-proxy command line
 *   -proto tcp|udp -host-ip IP -host-port N -container-ip IP
 *   -container-port N [-use-listen-fd]
 * and its fd protocol: fd 3 is a pipe that gets "0\n" once forwarding, or
 * "1\n<error>" before exiting 1; with -use-listen-fd, fd 4 is the bound
 * (TCP: listening) socket to use. */
#ifndef BERTH_COMPAT_H
#define BERTH_COMPAT_H

#include <stdbool.h>
#include <stddef.h>

#include "berth/config.h"
#include "berth/plan.h"

struct compat_args {
    enum proto proto;
    struct addr host;      /* with port */
    struct addr container; /* with port */
    bool use_listen_fd;
    bool version;
};

/* True when argv is in docker-proxy's form (its flags, single dash). */
bool compat_wanted(int argc, char **argv);

/* Parses docker-proxy flags as Go's flag package does (-f v, -f=v, --f v).
 * Returns 0, or -1 with a one-line reason in err. */
int compat_parse(int argc, char **argv, struct compat_args *out, char *err,
                 size_t errlen);

/* Applies berth's own settings that dockerd's environment carries
 * (BERTH_TCP_KEEPALIVE, BERTH_IDLE_TIMEOUT, BERTH_UDP_TIMEOUT,
 * BERTH_LOG_LEVEL, BERTH_PROXY_PROTOCOL, each read as the option of that
 * name) to plan and the log, and gives the switches for the one mapping in
 * *sw (BERTH_TRANSPARENT=1 and the PROXY protocol). Returns 0, or -1 with
 * a one-line reason in err. */
int compat_env(struct plan *plan, struct publish_defaults *sw, char *err,
               size_t errlen);

/* Runs berth as dockerd's userland proxy; returns the exit status. */
int compat_main(int argc, char **argv);

#endif
