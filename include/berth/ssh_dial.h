/* Sockets whose peer is `ssh ... docker system dial-stdio`: the docker
 * CLI's way to reach an engine behind ssh://[user@]host[:port]. Each call
 * makes a socket for one HTTP connection (the event stream and other
 * requests run at once), and its own ssh process takes the other end as
 * its stdin and stdout. What ssh writes on stderr is read on the loop
 * (bounded) so a failure can be explained.
 *
 * The socket is handed over unconnected, with an address to connect to
 * (an abstract unix name the kernel picks, listened on by this object):
 * libcurl 7.88 (Debian 12) calls connect() even on a socket its caller
 * reports connected (CURL_SOCKOPT_ALREADY_CONNECTED, curl/curl#10626), so
 * a socketpair cannot be given to it. ssh starts once the connect comes
 * in, from berth's own process only (SO_PEERCRED).
 *
 * Children are reaped on the loop (a SIGCHLD event this object owns, added
 * with the first child), killed when their socket closes, and every one
 * still running is ended by ssh_dial_free: no zombies, no orphans.
 * Returns 0 / a socket, or -1 with a one-line reason in err. */
#ifndef BERTH_SSH_DIAL_H
#define BERTH_SSH_DIAL_H

#include <event2/event.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Where to run ssh to; strings are copied by whoever keeps one. */
struct ssh_dest {
    const char *host; /* NULL: not an ssh destination */
    const char *user; /* NULL or "": ssh's own default (~/.ssh/config, $USER) */
    const char *path; /* remote daemon socket, NULL or "/": the remote default */
    unsigned port;    /* 0: ssh's own default */
};

struct ssh_dial;

struct ssh_dial *ssh_dial_new(struct event_base *base);
/* Ends every child still running (SIGTERM, then SIGKILL after a short
 * wait) and reaps it. */
void ssh_dial_free(struct ssh_dial *d);

/* A socket for one connection to dest (close-on-exec, blocking: the
 * caller sets what it needs) and the address it must connect to, or -1
 * with a reason ("the ssh command is not installed"). ssh starts when the
 * connect arrives; if it cannot, the socket reads EOF and
 * ssh_dial_last_error says why. */
int ssh_dial_open(struct ssh_dial *d, const struct ssh_dest *dest,
                  struct sockaddr_un *addr, socklen_t *addrlen, char *err,
                  size_t errlen);
/* Closes a socket ssh_dial_open returned and ends its ssh process. Any
 * other fd is only closed. Returns close's result. */
int ssh_dial_close(struct ssh_dial *d, int fd);

/* The latest failure an ssh process reported (the first line of its stderr
 * that is not a warning, or its exit status), after reading what every
 * process wrote so far; "" when there is none. */
const char *ssh_dial_last_error(struct ssh_dial *d);
/* An answer came through ssh: what failed before no longer explains
 * anything. */
void ssh_dial_forget(struct ssh_dial *d);

/* "ssh://user@host:port" for messages (an IPv6 host in brackets). */
void ssh_dest_url(const struct ssh_dest *dest, char *out, size_t len);

#endif
