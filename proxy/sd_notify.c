/* sd_notify(3)'s wire protocol in a few lines, so berth needs no
 * libsystemd: one AF_UNIX datagram per message to $NOTIFY_SOCKET.
 *
 * NOTIFY_SOCKET stays in the environment (sd_notify's unset_environment=0,
 * what most daemons do): berth runs no child that speaks the protocol (nft,
 * iptables-save, ssh), and under the default NotifyAccess=main systemd
 * ignores any datagram not from the main pid anyway. */
#include "berth/sd_notify.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "berth/log.h"

struct sd_notifier {
    int fd;
    struct sockaddr_un sa;
    socklen_t salen;
    int last_errno;         /* of the last failed send: said once per errno */
    struct event *watchdog; /* NULL until sd_notify_watchdog_start */
    struct timeval every;
};

struct sd_notifier *sd_notify_new(void)
{
    const char *name = getenv("NOTIFY_SOCKET");
    if (!name || !*name)
        return NULL;
    struct sd_notifier *n = calloc(1, sizeof *n);
    if (!n) {
        log_warn("NOTIFY_SOCKET: out of memory; systemd is not told");
        return NULL;
    }
    n->fd = -1;
    n->sa.sun_family = AF_UNIX;
    size_t len = strlen(name);
    /* A path is absolute; "@name" is an abstract name, its '@' written as
     * the leading NUL and its length exact (no trailing NUL counted). */
    if ((name[0] != '/' && name[0] != '@') || len >= sizeof n->sa.sun_path) {
        log_warn("NOTIFY_SOCKET=%s: not an absolute path or @abstract name of at "
                 "most %zu bytes; systemd is not told",
                 name, sizeof n->sa.sun_path - 1);
        free(n);
        return NULL;
    }
    memcpy(n->sa.sun_path, name, len);
    if (name[0] == '@')
        n->sa.sun_path[0] = '\0';
    n->salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                           (name[0] == '/' ? 1 : 0));
    if ((n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
        log_warn("NOTIFY_SOCKET=%s: socket: %s; systemd is not told", name,
                 strerror(errno));
        free(n);
        return NULL;
    }
    return n;
}

void sd_notify_free(struct sd_notifier *n)
{
    if (!n)
        return;
    if (n->watchdog)
        event_free(n->watchdog);
    if (n->fd >= 0)
        close(n->fd);
    free(n);
}

/* flags: MSG_DONTWAIT for the watchdog's pings, so a manager that does not
 * read never stalls the loop (the next ping comes soon); READY=1 and
 * STOPPING=1 wait for room rather than be lost. */
static int send_flags(struct sd_notifier *n, const char *msg, int flags)
{
    if (!n)
        return 0;
    ssize_t k = sendto(n->fd, msg, strlen(msg), flags | MSG_NOSIGNAL,
                       (const struct sockaddr *)&n->sa, n->salen);
    if (k >= 0) {
        n->last_errno = 0;
        return 0;
    }
    if (errno != n->last_errno) {
        const char *path = n->sa.sun_path[0] ? n->sa.sun_path : n->sa.sun_path + 1;
        log_warn("NOTIFY_SOCKET %s%s: cannot send \"%.*s\": %s",
                 n->sa.sun_path[0] ? "" : "@", path, (int)strcspn(msg, "\n"), msg,
                 strerror(errno));
        n->last_errno = errno;
    }
    return -1;
}

int sd_notify_send(struct sd_notifier *n, const char *msg)
{
    return send_flags(n, msg, 0);
}

int sd_notify_ready(struct sd_notifier *n, const char *status)
{
    if (!status)
        return sd_notify_send(n, "READY=1");
    char msg[256];
    int k = snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status);
    if (k < 0)
        return sd_notify_send(n, "READY=1");
    /* A status too long is cut, never the READY=1 before it. */
    return sd_notify_send(n, msg);
}

int sd_notify_reloading(struct sd_notifier *n)
{
    if (!n)
        return 0;
    /* systemd matches the timestamp against its own clock to tell this
     * reload from an older one: CLOCK_MONOTONIC, not clock_ms's. */
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        return sd_notify_send(n, "RELOADING=1\nSTATUS=reloading");
    char msg[96];
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
             (unsigned long long)ts.tv_sec * 1000000ull +
                 (unsigned long long)ts.tv_nsec / 1000u);
    return sd_notify_send(n, msg);
}

int sd_notify_stopping(struct sd_notifier *n)
{
    return sd_notify_send(n, "STOPPING=1\nSTATUS=stopping");
}

uint64_t sd_notify_watchdog_usec(const char *usec, const char *pid, pid_t self)
{
    /* Digits only: strtoull alone takes " -1" as a huge number. */
    if (!usec || usec[0] < '0' || usec[0] > '9')
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(usec, &end, 10);
    if (errno || *end || v == 0)
        return 0;
    /* Set by systemd for the main pid only; a child that inherited the
     * variables must not ping on its parent's behalf. */
    if (pid && *pid) {
        errno = 0;
        long long p = strtoll(pid, &end, 10);
        if (errno || *end || pid[0] < '0' || pid[0] > '9' || p != (long long)self)
            return 0;
    }
    return (uint64_t)v;
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    struct sd_notifier *n = arg;
    (void)fd;
    (void)what;
    /* Sent from the loop itself: a loop stuck anywhere stops the pings,
     * and systemd restarts berth (Restart=on-failure). */
    send_flags(n, "WATCHDOG=1", MSG_DONTWAIT);
}

int64_t sd_notify_watchdog_start(struct sd_notifier *n, struct event_base *base)
{
    if (!n)
        return 0;
    uint64_t usec = sd_notify_watchdog_usec(getenv("WATCHDOG_USEC"),
                                            getenv("WATCHDOG_PID"), getpid());
    if (usec == 0)
        return 0;
    /* Half the timeout, as sd_watchdog_enabled(3) advises: one late turn
     * of the loop does not count as a hang. */
    uint64_t half = usec / 2 ? usec / 2 : 1;
    n->every.tv_sec = (time_t)(half / 1000000);
    n->every.tv_usec = (suseconds_t)(half % 1000000);
    if (!n->watchdog &&
        !(n->watchdog = event_new(base, -1, EV_PERSIST, on_watchdog, n))) {
        log_warn("WATCHDOG_USEC: out of memory for the timer; systemd will time "
                 "berth out");
        return -1;
    }
    if (event_add(n->watchdog, &n->every) < 0) {
        log_warn("WATCHDOG_USEC: cannot add the timer; systemd will time berth out");
        return -1;
    }
    on_watchdog(-1, 0, n);
    return (int64_t)usec;
}
