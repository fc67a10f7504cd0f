/* What a published port is: types only. The plan makes mappings from the
 * command line and config, labels make them from containers, berth owns
 * the listener of each, and the relays read them; none of those needs the
 * others' functions to share this. */
#ifndef BERTH_MAPPING_H
#define BERTH_MAPPING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "berth/sockaddr.h"

/* SCTP is relayed one-to-one style (SOCK_STREAM): a listener and sessions
 * as for TCP, each message passed whole (tcp_pump.h's message mode). */
enum proto { PROTO_TCP, PROTO_UDP, PROTO_SCTP };

/* A PROXY protocol header (HAProxy's doc/proxy-protocol.txt) sent to the
 * target as the first bytes of each TCP connection: opt-in per mapping. */
enum proxy_proto { PROXY_PROTO_NONE, PROXY_PROTO_V1, PROXY_PROTO_V2 };

/* Who asked for a port (what /status shows): a --publish on the command
 * line, an entry of the --config file, a container's berth.publish label. */
enum mapping_origin { MAPPING_CLI, MAPPING_CONFIG, MAPPING_LABEL };

/* A Docker name target at most (a DNS name's length). */
#define MAPPING_NAME_MAX 253
#define MAPPING_LABEL_MAX 128

struct mapping {
    enum proto proto;
    struct addr listen; /* host address and port to bind */
    struct addr target; /* where connections and datagrams go (IP) */
    /* A Docker name instead ("web", "api.lab"): resolved through the
     * registry per connection or flow; target_port goes with it. */
    char target_name[MAPPING_NAME_MAX + 1];
    uint16_t target_port;
    /* "127.0.0.1:8080->10.0.0.2:80/tcp", used in every log line. */
    char label[MAPPING_LABEL_MAX];
    size_t source; /* index of the --publish entry it came from */
    /* The socket towards the target is bound to the client's address
     * (IP_TRANSPARENT), where that can work; see transparent.h. */
    bool transparent;
    enum proxy_proto proxy_proto; /* TCP only */
    enum mapping_origin origin;
    /* MAPPING_LABEL: the container's name, owned by the publisher (labels)
     * for as long as the port is published; else NULL. */
    const char *owner;
};

#endif
