/* Publish specs: "[HOST_IP:]HOST_PORT[-END]:TARGET:TARGET_PORT[-END][/tcp|/udp|/sctp]".
 *
 * Pure parsing, no I/O. On error the parser writes the reason (without the
 * offending text, which the caller names) into err and returns -1. */
#ifndef BERTH_SPEC_H
#define BERTH_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/mapping.h"
#include "berth/sockaddr.h"

#define SPEC_NAME_MAX MAPPING_NAME_MAX

struct spec {
    struct addr host; /* host IP, port unset; 0.0.0.0 by default */
    /* No HOST_IP given: listen on every address, 0.0.0.0 and, when the
     * host has IPv6, [::] too (as docker run -p). An explicit 0.0.0.0 is
     * IPv4 only, [::] IPv6 only. */
    bool host_default;
    uint16_t host_lo, host_hi;
    bool target_is_ip;
    struct addr target;                  /* when target_is_ip; port unset */
    char target_name[SPEC_NAME_MAX + 1]; /* otherwise: a Docker name */
    uint16_t target_lo, target_hi;
    enum proto proto;
};

int spec_parse(const char *text, struct spec *out, char *err, size_t errlen);

/* Parses "N" or "N-M" (1..65535, N <= M). what names the field in errors. */
int spec_parse_ports(const char *text, size_t len, const char *what, uint16_t *lo,
                     uint16_t *hi, char *err, size_t errlen);

const char *proto_name(enum proto p);
/* TCP and SCTP: a listening socket, and sessions (tcp_relay); UDP: flows. */
bool proto_is_stream(enum proto p);
/* What socket(2) takes for p: SOCK_STREAM or SOCK_DGRAM, and IPPROTO_*. */
int proto_sock_type(enum proto p);
int proto_ipproto(enum proto p);

/* "v1" or "v2": a PROXY protocol version; "off" for none. Returns 0, or -1
 * for anything else. */
int spec_parse_proxy_proto(const char *text, enum proxy_proto *out);
/* "v1", "v2" or "off". */
const char *proxy_proto_name(enum proxy_proto p);
/* "true"/"false" in any case, "1"/"0", "yes"/"no", "on"/"off": how labels
 * and environment variables say a switch. Returns 0, or -1. */
int spec_parse_switch(const char *text, bool *out);

#endif
