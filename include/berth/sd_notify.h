/* The systemd notification protocol, without libsystemd: datagrams of
 * "KEY=value" lines to the AF_UNIX socket $NOTIFY_SOCKET names (a path,
 * or "@name" for an abstract one), so a Type=notify unit knows when berth
 * serves, when it stops, and that its loop still turns (the watchdog).
 * State lives in the caller's struct sd_notifier; NULL stands for "no
 * service manager listening", and every call takes it as a no-op. */
#ifndef BERTH_SD_NOTIFY_H
#define BERTH_SD_NOTIFY_H

#include <event2/event.h>
#include <stdint.h>
#include <sys/types.h>

struct sd_notifier;

/* Reads NOTIFY_SOCKET (and leaves it set: see sd_notify.c). NULL when it
 * is unset or empty, and when it cannot be used (a relative path, a name
 * too long, no socket): that is said in one warning naming the text. */
struct sd_notifier *sd_notify_new(void);
/* Stops the watchdog timer and closes the socket. */
void sd_notify_free(struct sd_notifier *n);

/* Sends msg (one or more "KEY=value" lines) in one datagram. 0, or -1
 * (a line logged when the errno differs from the last failure's). */
int sd_notify_send(struct sd_notifier *n, const char *msg);
/* READY=1, with STATUS=status when status is not NULL. */
int sd_notify_ready(struct sd_notifier *n, const char *status);
/* RELOADING=1 with MONOTONIC_USEC=<CLOCK_MONOTONIC now, in µs> (what a
 * Type=notify-reload unit must send) and STATUS=reloading: a reload
 * starts; READY=1 (sd_notify_ready) says it ended, applied or refused. */
int sd_notify_reloading(struct sd_notifier *n);
/* STOPPING=1: shutting down was asked for (SIGTERM, SIGINT). */
int sd_notify_stopping(struct sd_notifier *n);

/* Whether the service manager asks for watchdog pings: usec is
 * WATCHDOG_USEC's text, pid WATCHDOG_PID's (NULL: unset, then any process
 * may ping), self this process. The interval in microseconds, or 0 when
 * no pings are asked of this process (unset, zero, not a number, another
 * pid). */
uint64_t sd_notify_watchdog_usec(const char *usec, const char *pid, pid_t self);
/* Sends WATCHDOG=1 now and then every half of WATCHDOG_USEC from a timer
 * on base, when the environment asks for it. The interval in microseconds,
 * 0 when no watchdog is asked for, -1 (logged) when the timer could not be
 * made. */
int64_t sd_notify_watchdog_start(struct sd_notifier *n, struct event_base *base);

#endif
