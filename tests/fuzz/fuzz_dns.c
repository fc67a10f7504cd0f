/* libFuzzer target: any bytes as a DNS query through the whole local
 * answer path (parser, zone names, empty non-terminals, ns.docker, reverse
 * names, classes, errors, EDNS, truncation, over UDP
 * and TCP limits), and as an upstream answer through the forwarder's
 * checks. Besides not crashing, every reply berth builds must be a
 * well-formed message within the client's limit, answering the question
 * asked with the ID asked. Seeds: tests/fuzz/corpus_dns/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include "berth/dns_answer.h"
#include "berth/dns_wire.h"
#include "berth/log.h"
#include "berth/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                      \
    do {                                                                              \
        if (!(c))                                                                     \
            __builtin_trap();                                                         \
    } while (0)

static void put(struct registry *r, const char *id, const char *name,
                const char *project, const char *service, int number, const char *net,
                const char *v4, const char *v6)
{
    struct reg_endpoint ep = {.network = net};
    const char *aliases[] = {"alias", "db.internal"};
    ep.aliases = aliases;
    ep.naliases = 2;
    if (v4 && inet_pton(AF_INET, v4, &ep.v4) == 1)
        ep.has_v4 = true;
    if (v6 && inet_pton(AF_INET6, v6, &ep.v6) == 1)
        ep.has_v6 = true;
    struct reg_container c = {.id = id,
                              .name = name,
                              .project = project,
                              .service = service,
                              .number = number,
                              .eps = &ep,
                              .neps = 1};
    registry_put(r, &c);
}

/* A registry like a small Compose host: plain names, a dotted name, an
 * IPv6-only one, and a 300-replica service whose answer never fits UDP. */
static struct dns_responder *responder(void)
{
    static struct registry *reg;
    static struct dns_responder *resp;
    if (resp)
        return resp;
    log_set_level(LOG_ERROR);
    reg = registry_new();
    put(reg, "aaaaaaaaaaaa00000000000000000000000000000000000000000000000000ff", "web",
        NULL, NULL, 0, "bridge", "172.17.0.2", "fd00::2");
    put(reg, "bbbbbbbbbbbb00000000000000000000000000000000000000000000000000ff",
        "my.dotted", NULL, NULL, 0, "bridge", "172.17.0.3", NULL);
    put(reg, "cccccccccccc00000000000000000000000000000000000000000000000000ff", "six",
        NULL, NULL, 0, "v6", NULL, "fd00::9");
    for (int i = 1; i <= 300; i++) {
        char id[65], name[32], ip[32];
        snprintf(id, sizeof id, "d%063d", i);
        snprintf(name, sizeof name, "lab_api_%d", i);
        snprintf(ip, sizeof ip, "10.0.%d.%d", i / 256, i % 256);
        put(reg, id, name, "lab", "api", i, "lab_default", ip,
            i % 7 ? NULL : "fd00::77");
    }
    char err[128];
    resp = dns_responder_new(reg, "docker", 5, err, sizeof err);
    CHECK(resp);
    return resp;
}

/* A reply to the parsed query q: well-formed, within limit, its ID and
 * (when it has one) its question byte for byte. */
static void check_reply(const struct dns_query *q, const uint8_t *in,
                        const uint8_t *out, size_t len, size_t limit)
{
    CHECK(len >= DNS_HDR && len <= limit);
    CHECK(dns_msg_check(out, len) == (long)len);
    CHECK(out[0] == in[0] && out[1] == in[1]);
    CHECK(out[2] & 0x80);
    if (out[4] | out[5]) {
        CHECK(q->qname && len >= DNS_HDR + q->qname_len + 4);
        CHECK(memcmp(out + DNS_HDR, q->qname, q->qname_len) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[DNS_MSG_MAX], fq[DNS_QUERY_MAX], copy[DNS_MSG_MAX];
    struct dns_responder *r = responder();
    if (size > DNS_MSG_MAX)
        return 0;
    /* ns.docker answers with the address a query came to: one of each
     * family. */
    struct addr local[2];
    addr_from_ip(&local[0], "127.0.0.1", 53);
    addr_from_ip(&local[1], "::1", 53);
    for (int tcp = 0; tcp < 2; tcp++) {
        struct dns_query q;
        size_t len = 0, cap = tcp ? DNS_MSG_MAX : DNS_UDP_MAX;
        enum dns_action act = dns_respond(r, data, size, tcp, &local[tcp], &q, out,
                                          cap, &len);
        if (act == DNS_REPLY) {
            size_t limit = q.qname ? dns_reply_limit(&q, tcp) : cap;
            check_reply(&q, data, out, len, limit);
        } else if (act == DNS_FORWARD) {
            /* What would go upstream parses back as the same question. */
            size_t fl = dns_build_query(fq, sizeof fq, &q, 0x1234, q.edns ? 1232 : 0);
            CHECK(fl > 0);
            struct dns_query back;
            CHECK(dns_parse_query(fq, fl, &back) == 0);
            CHECK(back.qname_len == q.qname_len && back.qtype == q.qtype);
            /* The input as the upstream's answer to it. */
            memcpy(copy, data, size);
            if (size >= 2) {
                copy[0] = 0x12;
                copy[1] = 0x34;
            }
            (void)dns_match_answer(copy, size, fq, fl);
            /* SERVFAIL and the too-large-for-you reply. */
            size_t limit = dns_reply_limit(&q, tcp);
            len = dns_reply_empty(&q, DNS_RA, DNS_SERVFAIL, out, limit);
            check_reply(&q, data, out, len, limit);
            len = dns_reply_empty(&q, DNS_RA | DNS_TC, DNS_NOERROR, out, limit);
            check_reply(&q, data, out, len, limit);
            struct addr ip;
            (void)dns_ptr_parse(&q, &ip);
        } else {
            CHECK(len == 0);
        }
    }
    long end = dns_msg_check(data, size);
    CHECK(end <= (long)size);
    char text[4 * DNS_NAME_MAX + 2];
    dns_name_text(data, size, text, sizeof text);
    return 0;
}
