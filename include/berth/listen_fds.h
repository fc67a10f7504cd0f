/* systemd socket activation, without libsystemd: the sockets a service
 * manager passes as fds 3..3+LISTEN_FDS-1 when LISTEN_PID is this process
 * (sd_listen_fds(3)), each read back as what it is (family, TCP listening
 * or UDP bound, address, its LISTEN_FDNAMES name) so the front end can
 * hand each to the mapping listening on exactly that address and
 * protocol instead of binding it itself.
 * Errors: NULL/-1 with one line naming the fd and its address in err. */
#ifndef BERTH_LISTEN_FDS_H
#define BERTH_LISTEN_FDS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "berth/sockaddr.h"

/* SD_LISTEN_FDS_START: the first passed fd. */
#define LISTEN_FDS_START 3
/* More would be a mistake in the unit (and more than any fd limit). */
#define LISTEN_FDS_MAX 4096
/* systemd's own limit on FileDescriptorName= (FDNAME_MAX 255) plus NUL. */
#define LISTEN_FD_NAME_MAX 256

struct listen_fd {
    int fd;
    char name[LISTEN_FD_NAME_MAX]; /* "" when LISTEN_FDNAMES gave none */
    /* Filled by listen_fds_inspect: */
    int type;         /* SOCK_STREAM (a listening TCP socket) or SOCK_DGRAM (UDP) */
    int protocol;     /* IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP (listening,
                       * one-to-one style: SocketProtocol=sctp) */
    struct addr addr; /* getsockname */
    bool taken;       /* handed to a mapping: no longer ours to close */
};

struct listen_fds {
    size_t n;
    struct listen_fd *fds;
};

/* Pure: the three variables' texts (NULL: unset) for process self. An
 * empty table (n 0) when they are not for self: LISTEN_PID unset or
 * another pid, LISTEN_FDS unset or 0. NULL with err for values that name
 * this process but make no sense (LISTEN_PID or LISTEN_FDS not a number,
 * LISTEN_FDS above LISTEN_FDS_MAX, a name too long). LISTEN_FDNAMES: one
 * name per fd, ':'-separated; missing ones stay "", extra ones are
 * ignored (as sd_listen_fds_with_names does with fewer names). */
struct listen_fds *listen_fds_parse(const char *pid, const char *fds,
                                    const char *names, pid_t self, char *err,
                                    size_t errlen);
/* Closes every fd not taken, frees t. */
void listen_fds_free(struct listen_fds *t);

/* Reads each fd: sets FD_CLOEXEC (children do not inherit it), and
 * requires an IPv4 or IPv6 socket that is TCP and listening, or UDP and
 * bound; an IPv6 wildcard socket must have IPV6_V6ONLY on, as berth binds
 * its own ([::] and 0.0.0.0 are two mappings: BindIPv6Only=ipv6-only).
 * -1 with the first fd that fails said in err. */
int listen_fds_inspect(struct listen_fds *t, char *err, size_t errlen);

/* getenv + listen_fds_parse + listen_fds_inspect, and unsets LISTEN_PID,
 * LISTEN_FDS and LISTEN_FDNAMES whatever they held (sd_listen_fds with
 * unset_environment), so no child takes them for its own. */
struct listen_fds *listen_fds_from_env(char *err, size_t errlen);

/* The passed socket bound to exactly a (address and port) of protocol
 * (IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP), marked taken: the caller
 * owns the fd now. -1 when none (or it is taken already). */
int listen_fds_take(struct listen_fds *t, const struct addr *a, int protocol);

/* The first socket not taken (NULL: all were): the one to name when some
 * passed socket matches nothing. */
const struct listen_fd *listen_fds_untaken(const struct listen_fds *t);

/* "fd 3 (web) 127.0.0.1:8080/tcp" into buf; always NUL-terminated. */
const char *listen_fd_describe(const struct listen_fd *f, char *buf, size_t len);

#endif
