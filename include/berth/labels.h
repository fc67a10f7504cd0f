/* Label publishing (--labels): a running container labelled
 * berth.publish=[HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/tcp|/udp],...
 * is published for as long as it runs. Each published port forwards to the
 * container by its short id, so it follows restarts like any name target.
 * Two containers claiming one host port: the first keeps it, and a warning
 * names both. */
#ifndef BERTH_LABELS_H
#define BERTH_LABELS_H

#include <stdbool.h>

#include "berth/registry.h"

struct berth;
struct labels;

/* Publishes through b, which also owns the ports the command line asked
 * for: a label claiming one of those is refused with a warning. An entry
 * without HOST_IP listens on 0.0.0.0 and, with ipv6 (the host has it,
 * sock_host_has_ipv6), on [::] too, as docker run -p does. b and reg must
 * outlive l. */
struct labels *labels_new(struct berth *b, struct registry *reg, bool ipv6);
/* Unpublishes everything. */
void labels_free(struct labels *l);

/* Brings the published set in line with the registry (call after every
 * registry change; cheap when nothing changed). */
void labels_sync(struct labels *l);

/* Rewrites one label spec into a publish spec aimed at target:
 * "8080:80/udp" -> "8080:<target>:80/udp". Returns 0, or -1 with err. */
int labels_to_spec(const char *label, const char *target, char *out, size_t outlen,
                   char *err, size_t errlen);

#endif
