/* --check: the whole plan as berth would run it, printed without binding
 * anything: the publish mappings (both listeners of a spec without
 * HOST_IP), the DNS listeners with zone, TTL and upstreams (from --upstream
 * or resolv.conf), labels on or off, the Docker endpoint actually used;
 * and, with the engine reachable within --check-wait, what runs behind
 * each name target now (a warning, not an error, when nothing does or the
 * engine cannot be reached: a plan is valid before its containers run). */
#ifndef BERTH_CHECK_H
#define BERTH_CHECK_H

#include <stddef.h>
#include <stdio.h>

#include "berth/config.h"
#include "berth/docker_endpoint.h"
#include "berth/plan.h"
#include "berth/sockaddr.h"

/* Prints the plan of c and p to out. ep: the endpoint main resolved, or
 * NULL when nothing needs Docker. Returns 0 (a valid plan), or -1 when
 * the check itself could not run (out of memory). */
int check_print(const struct config *c, const struct plan *p,
                const struct docker_endpoint *ep, FILE *out);

/* The distinct listen addresses of p's mappings and c's --dns that no
 * interface has now (sock_addr_configured), port 0, into out: at most max.
 * Returns how many. */
size_t check_unconfigured(const struct config *c, const struct plan *p,
                          struct addr *out, size_t max);

#endif
