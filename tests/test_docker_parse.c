/* Docker API bodies recorded from a real dockerd (tests/fixtures/docker-api)
 * and the broken answers a daemon or a proxy in between can produce. */
#include "check_run.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/docker_parse.h"
#include "berth/labels.h"

#ifndef FIXTURES
#define FIXTURES "tests/fixtures/docker"
#endif

static char *slurp(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", FIXTURES, name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "fixture %s", path);
    static char buf[1 << 20];
    *len = fread(buf, 1, sizeof buf - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

START_TEST(test_inspect_replica)
{
    size_t len;
    char *body = slurp("inspect_compose_replica.json", &len);
    struct docker_inspect in;
    char err[200];
    ck_assert_int_eq(docker_parse_inspect(body, len, &in, err, sizeof err), 0);
    ck_assert(in.running);
    ck_assert_str_eq(in.c.name, "lab_api_2");
    ck_assert_str_eq(in.c.project, "lab");
    ck_assert_str_eq(in.c.service, "api");
    ck_assert_int_eq(in.c.number, 2);
    ck_assert(!in.c.oneoff);
    ck_assert_ptr_null(in.c.publish);
    ck_assert_uint_eq(in.c.neps, 1);
    ck_assert_str_eq(in.c.eps[0].network, "lab_default");
    ck_assert(in.c.eps[0].has_v4 && !in.c.eps[0].has_v6);
    ck_assert_uint_eq(in.c.eps[0].naliases, 2);
    ck_assert_str_eq(in.c.eps[0].aliases[0], "api");

    /* Straight into a registry: the names it answers. */
    struct registry *r = registry_new();
    ck_assert_int_eq(registry_put(r, &in.c), 0);
    struct addr a[4];
    char ip[64];
    ck_assert_int_eq(registry_resolve(r, "api.lab", 7, AF_INET, a, 4), 1);
    ck_assert_str_eq(addr_format_ip(&a[0], ip, sizeof ip), "10.234.0.2");
    ck_assert_int_eq(registry_resolve(r, "2.api.lab", 9, AF_INET, a, 4), 1);
    ck_assert_int_eq(registry_resolve(r, "api.lab_default", 15, AF_INET, a, 4), 1);
    ck_assert_int_eq(registry_resolve(r, "lab_api_2", 9, AF_INET6, a, 4), 0);
    registry_free(r);
    docker_inspect_release(&in);
}
END_TEST

START_TEST(test_inspect_two_networks_and_alias)
{
    size_t len;
    char *body = slurp("inspect_two_networks_alias.json", &len);
    struct docker_inspect in;
    char err[200];
    ck_assert_int_eq(docker_parse_inspect(body, len, &in, err, sizeof err), 0);
    ck_assert_str_eq(in.c.name, "web");
    ck_assert_ptr_null(in.c.project);
    ck_assert_uint_eq(in.c.neps, 2);
    struct registry *r = registry_new();
    ck_assert_int_eq(registry_put(r, &in.c), 0);
    struct addr a[4];
    char ip[64];
    ck_assert_int_eq(registry_resolve(r, "web", 3, AF_INET, a, 4), 2);
    ck_assert_int_eq(registry_resolve(r, "db.backend", 10, AF_INET, a, 4), 1);
    ck_assert_str_eq(addr_format_ip(&a[0], ip, sizeof ip), "10.234.1.2");
    ck_assert_int_eq(registry_resolve(r, "web.bridge", 10, AF_INET, a, 4), 1);
    ck_assert_str_eq(addr_format_ip(&a[0], ip, sizeof ip), "10.233.20.2");
    registry_free(r);
    docker_inspect_release(&in);
}
END_TEST

START_TEST(test_list_and_networks)
{
    size_t len;
    char *body = slurp("containers_list.json", &len);
    char(*ids)[REG_ID_MAX];
    size_t n;
    char err[200];
    ck_assert_int_eq(docker_parse_list(body, len, &ids, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 5);
    ck_assert_uint_eq(strlen(ids[0]), 64);
    free(ids);

    body = slurp("networks_list.json", &len);
    struct registry *r = registry_new();
    ck_assert_int_eq(docker_parse_networks(body, len, r, err, sizeof err), 0);
    struct addr ip;
    addr_from_ip(&ip, "10.234.1.77", 0);
    ck_assert(registry_knows_client(r, &ip));
    addr_from_ip(&ip, "10.233.20.9", 0);
    ck_assert(registry_knows_client(r, &ip));
    addr_from_ip(&ip, "192.0.2.1", 0);
    ck_assert(!registry_knows_client(r, &ip));
    /* A later list without "backend": its subnet is forgotten. */
    const char *fewer = "[{\"Name\": \"bridge\", \"IPAM\": {\"Config\": "
                        "[{\"Subnet\": \"10.233.20.0/24\"}]}}]";
    ck_assert_int_eq(docker_parse_networks(fewer, strlen(fewer), r, err, sizeof err),
                     0);
    addr_from_ip(&ip, "10.234.1.77", 0);
    ck_assert(!registry_knows_client(r, &ip));
    addr_from_ip(&ip, "10.233.20.9", 0);
    ck_assert(registry_knows_client(r, &ip));
    registry_free(r);
}
END_TEST

/* A recorded stream: compose up/scale/down, rename, restart, network
 * connect and disconnect. */
/* Compose's network labels: a network is named by its key too
 * (lab_backend by "backend"); what is not a pair of strings is no key. */
START_TEST(test_networks_compose_keys)
{
    size_t len;
    char *body = slurp("inspect_compose_replica.json", &len);
    struct docker_inspect in;
    char err[200];
    ck_assert_int_eq(docker_parse_inspect(body, len, &in, err, sizeof err), 0);
    struct registry *r = registry_new();
    ck_assert_int_eq(registry_put(r, &in.c), 0);
    docker_inspect_release(&in);
    struct addr a[4];
    char ip[64];
    ck_assert_int_eq(registry_resolve(r, "api.default", 11, AF_INET, a, 4), -1);
    body = slurp("networks_compose_projects.json", &len);
    ck_assert_int_eq(docker_parse_networks(body, len, r, err, sizeof err), 0);
    ck_assert_int_eq(registry_resolve(r, "api.default", 11, AF_INET, a, 4), 1);
    ck_assert_str_eq(addr_format_ip(&a[0], ip, sizeof ip), "10.234.0.2");
    ck_assert_int_eq(registry_resolve(r, "lab_api_2.default", 17, AF_INET, a, 4), 1);
    ck_assert_int_eq(registry_resolve(r, "default", 7, AF_INET, a, 4), 0);
    /* Keys whose networks hold no container: no name below them. */
    ck_assert_int_eq(registry_resolve(r, "api.backend", 11, AF_INET, a, 4), -1);
    addr_from_ip(&a[0], "10.234.2.7", 0);
    ck_assert(registry_knows_client(r, &a[0]));

    /* Labels of the wrong shape, a key without its project, a project
     * without a key: no key, the network still known. */
    const char *odd[] = {
        "[{\"Name\": \"lab_default\", \"Labels\": [\"default\"]}]",
        "[{\"Name\": \"lab_default\", \"Labels\": {\"com.docker.compose.network\": "
        "7, \"com.docker.compose.project\": \"lab\"}}]",
        "[{\"Name\": \"lab_default\", \"Labels\": {\"com.docker.compose.network\": "
        "\"default\"}}]",
        "[{\"Name\": \"lab_default\", \"Labels\": {\"com.docker.compose.project\": "
        "\"lab\"}}]",
        "[{\"Name\": \"lab_default\", \"Labels\": {\"com.docker.compose.network\": "
        "\"\", \"com.docker.compose.project\": \"lab\"}}]",
    };
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        ck_assert_int_eq(docker_parse_networks(odd[i], strlen(odd[i]), r, err,
                                               sizeof err),
                         0);
        ck_assert_msg(registry_resolve(r, "api.default", 11, AF_INET, a, 4) == -1,
                      "%s", odd[i]);
        ck_assert_int_eq(registry_resolve(r, "api.lab_default", 15, AF_INET, a, 4), 1);
    }
    /* More networks than an engine makes: refused, the last list kept. */
    ck_assert_int_eq(docker_parse_networks(body, len, r, err, sizeof err), 0);
    size_t cap = 5000 * 24 + 3;
    char *many = malloc(cap), *w = many;
    ck_assert_ptr_nonnull(many);
    *w++ = '[';
    for (int i = 0; i < 5000; i++)
        w += sprintf(w, "%s{\"Name\":\"n%d\"}", i ? "," : "", i);
    *w++ = ']';
    ck_assert_int_eq(docker_parse_networks(many, (size_t)(w - many), r, err,
                                           sizeof err),
                     -1);
    ck_assert_str_eq(err, "network list: more than 4096 networks");
    free(many);
    ck_assert_int_eq(registry_resolve(r, "api.default", 11, AF_INET, a, 4), 1);
    registry_free(r);
}
END_TEST

START_TEST(test_events)
{
    size_t len;
    char *body = slurp("events.jsonl", &len);
    int seen = 0, renames = 0, connects = 0, destroys = 0, with_id = 0;
    for (char *line = body, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        struct docker_event ev;
        char err[200];
        ck_assert_int_eq(docker_parse_event(line, (size_t)(nl - line), &ev, err,
                                            sizeof err),
                         0);
        ck_assert_int_gt(ev.time, 1700000000);
        bool about_container = strcmp(ev.type, "container") == 0 ||
                               strcmp(ev.action, "connect") == 0 ||
                               strcmp(ev.action, "disconnect") == 0;
        if (about_container) {
            ck_assert_uint_eq(strlen(ev.id), 64); /* the container, every time */
            with_id++;
        } else {
            ck_assert_str_eq(ev.id, ""); /* network create/destroy */
        }
        renames += strcmp(ev.action, "rename") == 0;
        connects += strcmp(ev.type, "network") == 0 &&
                    strcmp(ev.action, "connect") == 0;
        destroys += strcmp(ev.type, "container") == 0 &&
                    strcmp(ev.action, "destroy") == 0;
        seen++;
    }
    ck_assert_int_eq(seen, 56);
    ck_assert_int_eq(with_id, 52);
    ck_assert_int_eq(renames, 1);
    ck_assert_int_eq(connects, 7);
    ck_assert_int_eq(destroys, 5);
}
END_TEST

struct bad {
    int kind; /* 0 inspect, 1 list, 2 networks, 3 event */
    const char *body;
    const char *error;
};

static const struct bad bads[] = {
    {0, "", "inspect: not a JSON object"},
    {0, "[1,2]", "inspect: not a JSON object"},
    {0, "{\"Id\": 5, \"Name\": \"/x\"}", "inspect: no valid \"Id\""},
    {0, "{\"Id\": \"zz\", \"Name\": \"/x\"}", "inspect: no valid \"Id\""},
    {0, "{\"Id\": \"0123456789ab\"}", "inspect: no \"Name\""},
    {0, "{\"Id\": \"0123456789ab\", \"Name\": \"/x\", \"State\": {\"Run",
     "inspect: not a JSON object"},
    {1, "{\"message\": \"oops\"}", "container list: not a JSON array"},
    {1, "[{\"Id\": \"../../etc\"}]", "container list: an entry has no valid \"Id\""},
    {1, "[\"0123456789ab\"]", "container list: an entry has no valid \"Id\""},
    {1, "[{\"Id\": 12345678901234}]", "container list: an entry has no valid \"Id\""},
    {1, "[{\"Id\": \"0123456789a\\u0062\"}]",
     "container list: an entry has no valid \"Id\""},
    {1, "[{\"Labels\": {\"Id\": \"0123456789ab\"}}]",
     "container list: an entry has no valid \"Id\""},
    {1, "[{}]", "container list: an entry has no valid \"Id\""},
    {1, "[{\"Id\": \"0123456789ab\"} {}]",
     "container list: no ',' or ']' after an element"},
    {1, "[{\"Id\": \"0123456789ab\"}", "container list: the array ended early"},
    {2, "garbage", "network list: not a JSON array"},
    {3, "{\"Type\": \"container\"}", "event: no \"Type\" or \"Action\""},
    {3, "{\"Type\": \"contain", "event: not a JSON object"},
};

START_TEST(test_bad_bodies)
{
    const struct bad *b = &bads[_i];
    char err[200] = "";
    size_t len = strlen(b->body);
    int rc;
    if (b->kind == 0) {
        struct docker_inspect in;
        rc = docker_parse_inspect(b->body, len, &in, err, sizeof err);
    } else if (b->kind == 1) {
        char(*ids)[REG_ID_MAX];
        size_t n;
        rc = docker_parse_list(b->body, len, &ids, &n, err, sizeof err);
    } else if (b->kind == 2) {
        struct registry *r = registry_new();
        rc = docker_parse_networks(b->body, len, r, err, sizeof err);
        registry_free(r);
    } else {
        struct docker_event ev;
        rc = docker_parse_event(b->body, len, &ev, err, sizeof err);
    }
    ck_assert_int_eq(rc, -1);
    ck_assert_str_eq(err, b->error);
}
END_TEST

/* The list as it streams in: the same ids, in order, wherever the pieces
 * are cut; repeats once; the bounds on entries and on their size. */
START_TEST(test_list_streamed)
{
    size_t len;
    char *body = slurp("containers_list.json", &len);
    char(*whole)[REG_ID_MAX];
    size_t n;
    char err[200];
    ck_assert_int_eq(docker_parse_list(body, len, &whole, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 5);
    for (size_t piece = 1; piece < len; piece += piece < 64 ? 1 : 97) {
        struct docker_list *l = docker_list_new(100);
        for (size_t at = 0; at < len; at += piece) {
            size_t k = len - at < piece ? len - at : piece;
            ck_assert_int_eq(docker_list_feed(l, body + at, k, err, sizeof err), 0);
        }
        ck_assert_int_eq(docker_list_end(l, err, sizeof err), 0);
        ck_assert_uint_eq(docker_list_count(l), n);
        for (size_t i = 0; i < n; i++) {
            ck_assert_str_eq(docker_list_id(l, i), whole[i]);
            ck_assert(docker_list_has(l, whole[i]));
        }
        ck_assert(!docker_list_has(l, "0123456789ab"));
        docker_list_free(l);
    }
    free(whole);
    docker_list_free(NULL);
}
END_TEST

/* Only the entry's own top-level "Id" counts, wherever it stands. */
START_TEST(test_list_id_at_top_level)
{
    const char *body = "[{\"Labels\": {\"Id\": \"ffffffffffff\"}, \"Names\": [\"/x\","
                       " \"{\\\"Id\\\": 1\"], \"Size\": -1.5e3, \"Ok\": true,"
                       " \"Id\" : \"0123456789ab\", \"Id\": \"aaaaaaaaaaaa\"}]";
    char(*ids)[REG_ID_MAX];
    size_t n;
    char err[200];
    ck_assert_int_eq(docker_parse_list(body, strlen(body), &ids, &n, err, sizeof err),
                     0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(ids[0], "0123456789ab");
    free(ids);
}
END_TEST

START_TEST(test_list_repeats_and_bounds)
{
    const char *twice = "[{\"Id\": \"0123456789ab\"}, {\"Id\": \"abcdef012345\"},"
                        " {\"Id\": \"0123456789ab\"}]";
    char err[200];
    struct docker_list *l = docker_list_new(2);
    ck_assert_int_eq(docker_list_feed(l, twice, strlen(twice), err, sizeof err), 0);
    ck_assert_int_eq(docker_list_end(l, err, sizeof err), 0);
    ck_assert_uint_eq(docker_list_count(l), 2);
    docker_list_free(l);

    const char *three = "[{\"Id\": \"0123456789ab\"}, {\"Id\": \"abcdef012345\"},"
                        " {\"Id\": \"aaaaaaaaaaaa\"}]";
    l = docker_list_new(2);
    ck_assert_int_eq(docker_list_feed(l, three, strlen(three), err, sizeof err), -1);
    ck_assert_str_eq(err, "container list: more than 2 containers");
    docker_list_free(l);

    /* An entry that never ends: refused at 1 MiB, nothing more kept. */
    l = docker_list_new(2);
    const char *head = "[{\"Id\": \"0123456789ab\", \"Junk\": \"";
    ck_assert_int_eq(docker_list_feed(l, head, strlen(head), err, sizeof err), 0);
    static char junk[64 << 10];
    memset(junk, 'x', sizeof junk);
    int rc = 0, pieces = 0;
    while (rc == 0 && pieces < 100) {
        rc = docker_list_feed(l, junk, sizeof junk, err, sizeof err);
        pieces++;
    }
    ck_assert_int_eq(pieces, 16);
    ck_assert_str_eq(err, "container list: an element longer than 1048576 bytes");
    docker_list_free(l);
}
END_TEST

START_TEST(test_inspect_without_networks_is_a_name_without_address)
{
    const char *body =
        "{\"Id\": \"0123456789abcdef\", \"Name\": \"/solo\","
        " \"State\": {\"Running\": true}, \"Config\": {\"Labels\": null}}";
    struct docker_inspect in;
    char err[200];
    ck_assert_int_eq(docker_parse_inspect(body, strlen(body), &in, err, sizeof err),
                     0);
    ck_assert(in.running);
    ck_assert_uint_eq(in.c.neps, 0);
    docker_inspect_release(&in);
}
END_TEST

START_TEST(test_answer_failed)
{
    char out[100] = "untouched";
    ck_assert(!docker_answer_failed(200, "", 0, NULL, out, sizeof out));
    ck_assert_str_eq(out, "untouched");
    ck_assert(docker_answer_failed(0, "", 0, "cannot connect to /x", out, sizeof out));
    ck_assert_str_eq(out, "cannot connect to /x");
    const char *json = "{\"message\":\"no such thing\"}";
    ck_assert(docker_answer_failed(404, json, strlen(json), NULL, out, sizeof out));
    ck_assert_str_eq(out, "HTTP 404: no such thing");
    /* A body cut after its first few KB is no JSON: its first line. */
    const char *cut = "{\"message\": \"endless endless";
    ck_assert(docker_answer_failed(500, cut, strlen(cut), NULL, out, sizeof out));
    ck_assert_str_eq(out, "HTTP 500: {\"message\": \"endless endless");
}
END_TEST

START_TEST(test_error_text)
{
    char out[100];
    const char *json = "{\"message\":\"page not found\"}";
    docker_error_text(json, strlen(json), out, sizeof out);
    ck_assert_str_eq(out, "page not found");
    const char *plain = "Internal Server Error\r\nmore";
    docker_error_text(plain, strlen(plain), out, sizeof out);
    ck_assert_str_eq(out, "Internal Server Error");
    docker_error_text("", 0, out, sizeof out);
    ck_assert_str_eq(out, "(empty answer)");
}
END_TEST

START_TEST(test_label_specs)
{
    char out[200], err[100];
    ck_assert_int_eq(labels_to_spec("8080:80", "abc", out, sizeof out, err,
                                    sizeof err),
                     0);
    ck_assert_str_eq(out, "8080:abc:80");
    ck_assert_int_eq(labels_to_spec("127.0.0.1:53:5353/udp", "abc", out, sizeof out,
                                    err, sizeof err),
                     0);
    ck_assert_str_eq(out, "127.0.0.1:53:abc:5353/udp");
    ck_assert_int_eq(labels_to_spec("[::1]:9000-9001:90-91", "abc", out, sizeof out,
                                    err, sizeof err),
                     0);
    ck_assert_str_eq(out, "[::1]:9000-9001:abc:90-91");
    ck_assert_int_eq(labels_to_spec("8080", "abc", out, sizeof out, err, sizeof err),
                     -1);
    ck_assert_str_eq(err, "want [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp|/sctp]");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("docker_parse");
    TCase *tc = tcase_create("docker_parse");
    tcase_add_test(tc, test_inspect_replica);
    tcase_add_test(tc, test_inspect_two_networks_and_alias);
    tcase_add_test(tc, test_list_and_networks);
    tcase_add_test(tc, test_networks_compose_keys);
    tcase_add_test(tc, test_events);
    tcase_add_loop_test(tc, test_bad_bodies, 0, sizeof bads / sizeof bads[0]);
    tcase_add_test(tc, test_list_streamed);
    tcase_add_test(tc, test_list_id_at_top_level);
    tcase_add_test(tc, test_list_repeats_and_bounds);
    tcase_add_test(tc, test_inspect_without_networks_is_a_name_without_address);
    tcase_add_test(tc, test_answer_failed);
    tcase_add_test(tc, test_error_text);
    tcase_add_test(tc, test_label_specs);
    suite_add_tcase(s, tc);
    return check_run(s);
}
