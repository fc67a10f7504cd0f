#include "berth/ssh_dial.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "berth/log.h"

extern char **environ;

/* The docker CLI's own ssh flags (cli/connhelper/connhelper.go): give up
 * connecting after 30 s, and no pseudo-terminal, so the remote command
 * runs as a plain command and its stdio carries bytes unchanged. */
#define CONNECT_TIMEOUT "ConnectTimeout=30"
/* How long a child may take to end after SIGTERM before SIGKILL (the
 * CLI's commandconn waits 3 s too). */
#define KILL_AFTER_MS 3000
/* Kept of one stderr line: a message, not a log. */
#define LINE_MAX_LEN 256

struct ssh_conn {
    struct ssh_dial *d;
    struct ssh_conn *next;
    int sock;   /* the caller's socket, -1 once closed */
    int listen; /* what sock connects to, until ssh gets the other end */
    struct event *listen_ev;
    char argv_buf[1024]; /* ssh's arguments, NUL-separated, for the spawn */
    pid_t pid;           /* 0 before the spawn and once reaped */
    int err_fd;          /* read end of the child's stderr, -1 before and at EOF */
    struct event *err_ev, *kill_timer;
    char line[LINE_MAX_LEN]; /* the stderr line being read */
    size_t llen;
    bool told;    /* this child already explained itself */
    bool stopped; /* berth ended it: its exit status explains nothing */
};

struct ssh_dial {
    struct event_base *base;
    struct event *sigchld; /* added with the first child */
    struct ssh_conn *conns;
    char last_error[LINE_MAX_LEN + 64];
};

static void conn_free(struct ssh_conn *c)
{
    struct ssh_conn **p = &c->d->conns;
    while (*p != c)
        p = &(*p)->next;
    *p = c->next;
    if (c->err_ev)
        event_free(c->err_ev);
    if (c->listen_ev)
        event_free(c->listen_ev);
    if (c->listen >= 0)
        close(c->listen);
    if (c->kill_timer)
        event_free(c->kill_timer);
    if (c->err_fd >= 0)
        close(c->err_fd);
    if (c->sock >= 0)
        close(c->sock);
    free(c);
}

/* One complete stderr line: the first one that says something (ssh's
 * "Warning: Permanently added ..." does not) explains this child. */
static void take_line(struct ssh_conn *c)
{
    char *s = c->line;
    c->line[c->llen] = '\0';
    c->llen = 0;
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = '\0';
    /* Once berth ended it, it only says so ("Killed by signal 15."). */
    if (!n || c->told || c->stopped || strncmp(s, "Warning:", 8) == 0)
        return;
    c->told = true;
    snprintf(c->d->last_error, sizeof c->d->last_error, "%s", s);
}

/* Reads what is there without blocking. Lines past LINE_MAX_LEN are cut;
 * everything is read so that ssh never blocks on a full pipe. */
static void drain(struct ssh_conn *c)
{
    char buf[1024];
    ssize_t n;
    while (c->err_fd >= 0 && (n = read(c->err_fd, buf, sizeof buf)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n')
                take_line(c);
            else if (c->llen < sizeof c->line - 1)
                c->line[c->llen++] = buf[i];
        }
    }
    /* EOF (or an error): the child and all it started are gone. */
    if (c->llen)
        take_line(c);
    if (c->err_ev) {
        event_free(c->err_ev);
        c->err_ev = NULL;
    }
    if (c->err_fd >= 0) {
        close(c->err_fd);
        c->err_fd = -1;
    }
}

static void on_stderr(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drain(arg);
}

/* Reaps c's child if it exited; returns whether it is gone. */
static bool reap(struct ssh_conn *c)
{
    int st;
    if (!c->pid)
        return true;
    pid_t r = waitpid(c->pid, &st, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR))
        return false;
    c->pid = 0; /* reaped, or not ours to wait for (ECHILD): never signal it again */
    if (r < 0 || c->stopped)
        return true;
    drain(c); /* its stderr explains it better than a status */
    if (!c->told && WIFEXITED(st) && WEXITSTATUS(st)) {
        c->told = true;
        snprintf(c->d->last_error, sizeof c->d->last_error,
                 "ssh exited with status %d", WEXITSTATUS(st));
    }
    return true;
}

static void on_sigchld(evutil_socket_t fd, short what, void *arg)
{
    struct ssh_dial *d = arg;
    (void)fd;
    (void)what;
    for (struct ssh_conn *c = d->conns, *next; c; c = next) {
        next = c->next;
        if (reap(c) && c->sock < 0) {
            drain(c);
            conn_free(c);
        }
    }
}

static void on_kill_timer(evutil_socket_t fd, short what, void *arg)
{
    struct ssh_conn *c = arg;
    (void)fd;
    (void)what;
    if (reap(c))
        conn_free(c); /* its socket is closed: the timer runs only after that */
    else
        kill(c->pid, SIGKILL); /* the SIGCHLD event reaps it */
}

struct ssh_dial *ssh_dial_new(struct event_base *base)
{
    struct ssh_dial *d = calloc(1, sizeof *d);
    if (d)
        d->base = base;
    return d;
}

void ssh_dial_free(struct ssh_dial *d)
{
    if (!d)
        return;
    for (struct ssh_conn *c = d->conns; c; c = c->next)
        if (c->pid) {
            c->stopped = true;
            kill(c->pid, SIGTERM);
        }
    /* ssh ends on SIGTERM at once; a bounded wait, then SIGKILL, which no
     * process survives, so the blocking waitpid after it returns. */
    for (int i = 0; i < 100; i++) {
        bool left = false;
        for (struct ssh_conn *c = d->conns; c; c = c->next)
            left |= !reap(c);
        if (!left)
            break;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    while (d->conns) {
        struct ssh_conn *c = d->conns;
        if (c->pid) {
            kill(c->pid, SIGKILL);
            while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
        conn_free(c);
    }
    if (d->sigchld)
        event_free(d->sigchld);
    free(d);
}

/* Finds ssh as execvp would, before forking, so a missing one is told
 * clearly and at once rather than as a child's exit status. */
static bool find_ssh(char *out, size_t len)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/bin:/bin";
    for (const char *p = path; *p;) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if ((size_t)snprintf(out, len, "%.*s/ssh", (int)n, n ? p : ".") < len &&
            access(out, X_OK) == 0)
            return true;
        p += n + (end ? 1 : 0);
    }
    return false;
}

/* Quotes s for the remote shell (ssh passes the command as one string). */
static void sh_quote(char *out, size_t len, const char *s)
{
    size_t o = 0;
    if (len < 3)
        return;
    out[o++] = '\'';
    for (; *s && o + 6 < len; s++) {
        if (*s == '\'') {
            memcpy(out + o, "'\\''", 4);
            o += 4;
        } else {
            out[o++] = *s;
        }
    }
    out[o++] = '\'';
    out[o] = '\0';
}

/* Moves fd above 0-2, which the child's dup2s overwrite (berth may run
 * with its standard fds closed). */
static int above_stdio(int fd)
{
    if (fd > 2)
        return fd;
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return moved;
}

/* In the child between fork and exec: only async-signal-safe calls. All
 * signals are blocked on entry (berth's handlers must not run here: they
 * would report to the parent's loop). */
static void child(int sock, int err, const char *path, char **argv, pid_t parent)
{
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    /* Its own session, as the CLI does: no terminal to prompt on, and a ^C
     * meant for berth does not reach it. It dies with berth. */
    setsid();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    if (dup2(sock, 0) < 0 || dup2(sock, 1) < 0 || dup2(err, 2) < 0)
        _exit(127);
    /* Nothing of berth's leaks into ssh: listeners, the daemon's fds. */
    if (syscall(SYS_close_range, 3u, ~0u, 0u) < 0) {
        struct rlimit rl;
        long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536
                       ? (long)rl.rlim_cur
                       : 65536;
        for (long fd = 3; fd < max; fd++)
            close((int)fd);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(path, argv, environ);
    static const char msg[] = "cannot run ssh\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(127);
}

/* Runs ssh with sock as its stdin and stdout (sock is closed here). */
static int spawn(struct ssh_conn *c, int sock, char *err, size_t errlen)
{
    char path[4096];
    if (!find_ssh(path, sizeof path)) {
        snprintf(err, errlen, "the ssh command is not installed (no ssh in PATH)");
        close(sock);
        return -1;
    }
    char *argv[16];
    int n = 0;
    for (char *a = c->argv_buf; *a && n < 15; a += strlen(a) + 1)
        argv[n++] = a;
    argv[n] = NULL;
    int ep[2] = {-1, -1};
    if ((sock = above_stdio(sock)) < 0 || pipe2(ep, O_CLOEXEC) < 0 ||
        (ep[0] = above_stdio(ep[0])) < 0 || (ep[1] = above_stdio(ep[1])) < 0 ||
        fcntl(ep[0], F_SETFL, fcntl(ep[0], F_GETFL) | O_NONBLOCK) < 0 ||
        !(c->err_ev = event_new(c->d->base, ep[0], EV_READ | EV_PERSIST, on_stderr,
                                c)) ||
        event_add(c->err_ev, NULL) < 0) {
        snprintf(err, errlen, "cannot start ssh: %s", strerror(errno));
        goto fail;
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        child(sock, ep[1], path, argv, parent);
    int saved = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        snprintf(err, errlen, "cannot start ssh: %s", strerror(saved));
        goto fail;
    }
    close(sock);
    close(ep[1]);
    c->err_fd = ep[0];
    c->pid = pid;
    log_debug("ssh: started %d", (int)pid);
    return 0;
fail:
    if (sock >= 0)
        close(sock);
    for (int i = 0; i < 2; i++)
        if (ep[i] >= 0)
            close(ep[i]);
    if (c->err_ev) {
        event_free(c->err_ev);
        c->err_ev = NULL;
    }
    return -1;
}

/* The caller's socket connected: the other end goes to a new ssh. A
 * connection from any other process (the name is reachable by everyone
 * in the network namespace) is refused. */
static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct ssh_conn *c = arg;
    (void)what;
    int s;
    while ((s = accept4(fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
        struct ucred cred;
        socklen_t len = sizeof cred;
        if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
            cred.pid != getpid()) {
            close(s);
            continue;
        }
        event_free(c->listen_ev);
        c->listen_ev = NULL;
        close(c->listen);
        c->listen = -1;
        char err[200];
        if (spawn(c, s, err, sizeof err) < 0) /* the caller sees EOF */
            snprintf(c->d->last_error, sizeof c->d->last_error, "%s", err);
        return;
    }
}

/* ssh_dial_open's arguments: ssh [-l user] [-p port] -o ConnectTimeout=30
 * -T -- host COMMAND, NUL-separated. */
static int build_argv(struct ssh_conn *c, const struct ssh_dest *dest)
{
    char port[16], remote[600];
    snprintf(port, sizeof port, "%u", dest->port);
    if (dest->path && dest->path[strspn(dest->path, "/")]) {
        char host_opt[300], quoted[560];
        snprintf(host_opt, sizeof host_opt, "--host=unix://%s", dest->path);
        sh_quote(quoted, sizeof quoted, host_opt);
        snprintf(remote, sizeof remote, "docker %s system dial-stdio", quoted);
    } else {
        snprintf(remote, sizeof remote, "docker system dial-stdio");
    }
    const char *args[] = {"ssh",
                          dest->user && *dest->user ? "-l" : NULL,
                          dest->user && *dest->user ? dest->user : NULL,
                          dest->port ? "-p" : NULL,
                          dest->port ? port : NULL,
                          "-o",
                          CONNECT_TIMEOUT,
                          "-T",
                          "--",
                          dest->host,
                          remote};
    size_t o = 0;
    for (size_t i = 0; i < sizeof args / sizeof args[0]; i++) {
        if (!args[i])
            continue;
        size_t n = strlen(args[i]) + 1;
        if (o + n + 1 > sizeof c->argv_buf)
            return -1;
        memcpy(c->argv_buf + o, args[i], n);
        o += n;
    }
    c->argv_buf[o] = '\0';
    return 0;
}

int ssh_dial_open(struct ssh_dial *d, const struct ssh_dest *dest,
                  struct sockaddr_un *addr, socklen_t *addrlen, char *err,
                  size_t errlen)
{
    char path[4096];
    if (!find_ssh(path, sizeof path)) {
        snprintf(err, errlen, "the ssh command is not installed (no ssh in PATH)");
        return -1;
    }
    if (!d->sigchld) {
        if (!(d->sigchld = evsignal_new(d->base, SIGCHLD, on_sigchld, d)) ||
            evsignal_add(d->sigchld, NULL) < 0) {
            if (d->sigchld)
                event_free(d->sigchld);
            d->sigchld = NULL;
            snprintf(err, errlen, "cannot watch child processes");
            return -1;
        }
    }
    struct ssh_conn *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "cannot start ssh: out of memory");
        return -1;
    }
    c->d = d;
    c->err_fd = c->sock = c->listen = -1;
    /* An abstract name the kernel picks (autobind: only the family). */
    struct sockaddr_un any = {.sun_family = AF_UNIX};
    *addrlen = sizeof *addr;
    if (build_argv(c, dest) < 0) {
        snprintf(err, errlen, "ssh destination too long");
        goto fail;
    }
    if ((c->listen = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) <
            0 ||
        bind(c->listen, (struct sockaddr *)&any, sizeof any.sun_family) < 0 ||
        listen(c->listen, 4) < 0 ||
        getsockname(c->listen, (struct sockaddr *)addr, addrlen) < 0 ||
        (c->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        !(c->listen_ev = event_new(d->base, c->listen, EV_READ | EV_PERSIST, on_accept,
                                   c)) ||
        !(c->kill_timer = evtimer_new(d->base, on_kill_timer, c)) ||
        event_add(c->listen_ev, NULL) < 0) {
        snprintf(err, errlen, "cannot start ssh: %s", strerror(errno));
        goto fail;
    }
    c->next = d->conns;
    d->conns = c;
    return c->sock;
fail:
    if (c->listen_ev)
        event_free(c->listen_ev);
    if (c->kill_timer)
        event_free(c->kill_timer);
    if (c->listen >= 0)
        close(c->listen);
    if (c->sock >= 0)
        close(c->sock);
    free(c);
    return -1;
}

int ssh_dial_close(struct ssh_dial *d, int fd)
{
    struct ssh_conn *c = d->conns;
    while (c && c->sock != fd)
        c = c->next;
    if (!c)
        return close(fd);
    int rc = close(c->sock);
    c->sock = -1;
    drain(c);
    if (reap(c)) { /* exited, or never started */
        conn_free(c);
        return rc;
    }
    /* libcurl is done with it; like the CLI, SIGTERM, SIGKILL if it lingers. */
    c->stopped = true;
    kill(c->pid, SIGTERM);
    struct timeval tv = {KILL_AFTER_MS / 1000, (KILL_AFTER_MS % 1000) * 1000};
    evtimer_add(c->kill_timer, &tv);
    return rc;
}

const char *ssh_dial_last_error(struct ssh_dial *d)
{
    for (struct ssh_conn *c = d->conns, *next; c; c = next) {
        next = c->next;
        drain(c);
        if (reap(c) && c->sock < 0)
            conn_free(c);
    }
    return d->last_error;
}

void ssh_dial_forget(struct ssh_dial *d) { d->last_error[0] = '\0'; }

void ssh_dest_url(const struct ssh_dest *dest, char *out, size_t len)
{
    bool v6 = strchr(dest->host, ':') != NULL;
    char port[16] = "";
    if (dest->port)
        snprintf(port, sizeof port, ":%u", dest->port);
    snprintf(out, len, "ssh://%s%s%s%s%s%s",
             dest->user && *dest->user ? dest->user : "",
             dest->user && *dest->user ? "@" : "", v6 ? "[" : "", dest->host,
             v6 ? "]" : "", port);
}
