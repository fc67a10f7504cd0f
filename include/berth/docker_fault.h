/* Why berth cannot follow the Docker engine, in words a user can act on.
 *
 * Pure: from libcurl's result code, the OS errno behind it and libcurl's
 * text (or the daemon's HTTP answer), plus the endpoint, one line that
 * names the failure's class, the file or address involved (socket path,
 * URL, CA or certificate file) and a hint in parentheses, e.g.
 *   cannot connect to /var/run/docker.sock: permission denied (add
 *   yourself to the docker group or run as root)
 * The class comes from the code and errno where they tell it, from the
 * text only where they cannot (which TLS alert the daemon sent). */
#ifndef BERTH_DOCKER_FAULT_H
#define BERTH_DOCKER_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/http.h"

/* Explains a request to t that ended with error (no HTTP answer), or with
 * the HTTP answer status/body when error is NULL (the daemon's message is
 * taken from the body). Writes one line into out; never fails. */
void docker_fault_explain(const struct http_target *t, const struct http_error *error,
                          long status, const char *body, size_t len, char *out,
                          size_t outlen);

/* True when error says no connection could be made at all (whatever was
 * asked of the daemon, it would have failed the same). */
bool docker_fault_unreachable(const struct http_error *error);

/* ms as a short duration for messages: "45s", "2m13s", "1h05m". Returns
 * out. */
const char *docker_duration(uint64_t ms, char *out, size_t outlen);

#endif
