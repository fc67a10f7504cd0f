/* /status and / of a made-up berth: each port's fields (where it came
 * from, bound address, target as written, replicas and which are passed
 * over, sessions and flows, switches), the engine's state, and every
 * string of the page escaped. */
#include "check_run.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <unistd.h>

#include "berth/berth.h"
#include "berth/docker.h"
#include "berth/registry.h"
#include "berth/status.h"
#include "looptest.h"

/* Container names come from whoever runs containers: markup in one must
 * reach the page as text. */
#define EVIL_NAME "<img src=x onerror=\"alert('x')\">&"
#define EVIL_NAME_HTML "&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;&amp;"

struct fx {
    struct event_base *base;
    struct registry *reg;
    struct plan plan;
    struct mapping maps[3];
    struct mapping label; /* published later, as labels does */
    struct berth *b;
    struct docker *docker;
    struct status *st;
    int backend; /* the IP target's listener */
    struct addr backend_addr;
};

/* web.lab: a Compose service of two replicas, 10.9.0.5 and 10.9.0.6. */
static void put_web(struct registry *reg)
{
    for (int i = 0; i < 2; i++) {
        char id[65];
        snprintf(id, sizeof id, "%064d", i + 1);
        struct reg_endpoint ep = {.network = "lab", .has_v4 = true};
        ck_assert_int_eq(inet_pton(AF_INET, i ? "10.9.0.6" : "10.9.0.5", &ep.v4), 1);
        struct reg_container c = {.id = id,
                                  .name = i ? "lab-web-2" : "lab-web-1",
                                  .project = "lab",
                                  .service = "web",
                                  .number = i + 1,
                                  .eps = &ep,
                                  .neps = 1};
        ck_assert_int_eq(registry_put(reg, &c), 0);
    }
}

static void ignore_change(void *arg) { (void)arg; }

static void fx_start(struct fx *f, const char *docker_url)
{
    memset(f, 0, sizeof *f);
    f->base = berth_event_base_new();
    f->reg = registry_new();
    ck_assert_ptr_nonnull(f->base);
    ck_assert_ptr_nonnull(f->reg);
    f->backend = t_bind("127.0.0.1", SOCK_STREAM, &f->backend_addr);
    ck_assert_int_eq(listen(f->backend, 8), 0);

    struct mapping *m = f->maps;
    m[0] = (struct mapping){.proto = PROTO_TCP,
                            .listen = t_addr("127.0.0.1", 0),
                            .target = f->backend_addr,
                            .origin = MAPPING_CLI};
    m[1] = (struct mapping){.proto = PROTO_UDP,
                            .listen = t_addr("127.0.0.1", 0),
                            .target = t_addr("127.0.0.1", 9),
                            .origin = MAPPING_CONFIG,
                            .source = 1};
    m[2] = (struct mapping){.proto = PROTO_TCP,
                            .listen = t_addr("127.0.0.1", 0),
                            .target_port = 80,
                            .transparent = false,
                            .proxy_proto = PROXY_PROTO_V2,
                            .origin = MAPPING_CONFIG,
                            .source = 2};
    strcpy(m[2].target_name, "web.lab");
    for (int i = 0; i < 3; i++)
        mapping_label(&m[i]);
    f->plan = (struct plan)PLAN_INIT;
    f->plan.maps = m;
    f->plan.n = 3;
    f->plan.names = true;

    put_web(f->reg);
    f->b = berth_new(f->base, &f->plan, f->reg);
    ck_assert_ptr_nonnull(f->b);
    char err[256];
    ck_assert_msg(berth_start(f->b, NULL, err, sizeof err) == 0, "%s", err);

    /* A label's port: its target is the container's short id. */
    f->label = (struct mapping){.proto = PROTO_TCP,
                                .listen = t_addr("127.0.0.1", 0),
                                .target_port = 8080,
                                .transparent = true,
                                .origin = MAPPING_LABEL,
                                .owner = EVIL_NAME};
    strcpy(f->label.target_name, "0123456789ab");
    mapping_label(&f->label);
    ck_assert_ptr_nonnull(berth_publish(f->b, &f->label, err, sizeof err));

    if (docker_url) {
        f->docker = docker_new(f->base, f->reg, docker_url, ignore_change, NULL, err,
                               sizeof err);
        ck_assert_msg(f->docker != NULL, "%s", err);
    }
    f->st = status_new(f->b, f->docker);
    ck_assert_ptr_nonnull(f->st);
}

static void fx_stop(struct fx *f)
{
    status_free(f->st);
    docker_free(f->docker);
    berth_free(f->b);
    registry_free(f->reg);
    close(f->backend);
    event_base_free(f->base);
}

static cJSON *doc_of(struct fx *f)
{
    struct evbuffer *buf = evbuffer_new();
    ck_assert_int_eq(status_json(f->st, buf), 0);
    size_t n = evbuffer_get_length(buf);
    cJSON *doc = cJSON_ParseWithLength((const char *)evbuffer_pullup(buf, -1), n);
    ck_assert_msg(doc != NULL, "not JSON: %.*s", (int)n, evbuffer_pullup(buf, -1));
    evbuffer_free(buf);
    return doc;
}

/* The page as a NUL-terminated string (caller frees). */
static char *page_of(struct fx *f)
{
    struct evbuffer *buf = evbuffer_new();
    ck_assert_int_eq(status_page(f->st, buf), 0);
    size_t n = evbuffer_get_length(buf);
    char *s = malloc(n + 1);
    evbuffer_remove(buf, s, n);
    s[n] = '\0';
    evbuffer_free(buf);
    return s;
}

static const char *str(const cJSON *o, const char *k)
{
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
    ck_assert_msg(v != NULL, "no string %s", k);
    return v;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(cJSON_IsNumber(v), "no number %s", k);
    return v->valuedouble;
}

static bool flag(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(cJSON_IsBool(v), "no bool %s", k);
    return cJSON_IsTrue(v);
}

START_TEST(test_json_lists_every_port)
{
    struct fx f;
    fx_start(&f, NULL);
    registry_set_engine(f.reg, true, ""); /* synced once, following */
    /* A live session on the CLI port, a passed-over replica of web. */
    struct addr front;
    ck_assert_int_eq(berth_port_addr(berth_port_next(f.b, NULL), &front), 0);
    int client = t_connect(&front);
    ck_assert(PUMP_UNTIL(f.base, 2000, berth_tcp_sessions(f.b) == 1));
    struct addr bad = t_addr("10.9.0.6", 80);
    relay_pass_over(berth_ctx(f.b), &bad);

    cJSON *doc = doc_of(&f);
    ck_assert_str_eq(str(doc, "version"), BERTH_VERSION);
    ck_assert(num(doc, "uptime_seconds") >= 0);
    ck_assert_int_eq((int)num(doc, "tcp_sessions"), 1);
    ck_assert_int_eq((int)num(doc, "udp_flows"), 0);
    ck_assert(!flag(cJSON_GetObjectItem(doc, "docker"), "followed"));
    const cJSON *maps = cJSON_GetObjectItem(doc, "mappings");
    ck_assert_int_eq(cJSON_GetArraySize(maps), 4);

    const cJSON *m = cJSON_GetArrayItem(maps, 0);
    char a[ADDR_STRLEN];
    ck_assert_str_eq(str(m, "listen"), addr_format(&front, a, sizeof a));
    ck_assert_str_eq(str(m, "proto"), "tcp");
    ck_assert_str_eq(str(m, "target"), addr_format(&f.backend_addr, a, sizeof a));
    ck_assert_str_eq(str(m, "source"), "cli");
    ck_assert_ptr_null(cJSON_GetObjectItem(m, "container"));
    ck_assert_int_eq((int)num(m, "sessions"), 1);
    ck_assert(!flag(m, "transparent"));
    ck_assert_str_eq(str(m, "proxy_protocol"), "off");
    const cJSON *r = cJSON_GetObjectItem(m, "resolves_to");
    ck_assert_int_eq(cJSON_GetArraySize(r), 1);
    ck_assert_str_eq(str(cJSON_GetArrayItem(r, 0), "address"), str(m, "target"));

    m = cJSON_GetArrayItem(maps, 1);
    ck_assert_str_eq(str(m, "proto"), "udp");
    ck_assert_str_eq(str(m, "source"), "config");
    ck_assert_str_eq(str(m, "target"), "127.0.0.1:9");
    ck_assert_int_eq((int)num(m, "flows"), 0);
    ck_assert_ptr_null(cJSON_GetObjectItem(m, "sessions"));
    ck_assert(strcmp(str(m, "listen"), "127.0.0.1:0") != 0);

    /* The name target: both replicas, 10.9.0.6 passed over (last). */
    m = cJSON_GetArrayItem(maps, 2);
    ck_assert_str_eq(str(m, "target"), "web.lab:80");
    ck_assert_str_eq(str(m, "proxy_protocol"), "v2");
    r = cJSON_GetObjectItem(m, "resolves_to");
    ck_assert_int_eq(cJSON_GetArraySize(r), 2);
    ck_assert_str_eq(str(cJSON_GetArrayItem(r, 0), "address"), "10.9.0.5:80");
    ck_assert(!flag(cJSON_GetArrayItem(r, 0), "passed_over"));
    ck_assert_str_eq(str(cJSON_GetArrayItem(r, 1), "address"), "10.9.0.6:80");
    ck_assert(flag(cJSON_GetArrayItem(r, 1), "passed_over"));
    ck_assert_ptr_null(cJSON_GetObjectItem(m, "unresolved"));

    /* The label's port: its container, and why its id finds nothing. */
    m = cJSON_GetArrayItem(maps, 3);
    ck_assert_str_eq(str(m, "source"), "label");
    ck_assert_str_eq(str(m, "container"), EVIL_NAME);
    ck_assert_str_eq(str(m, "target"), "0123456789ab:8080");
    ck_assert(flag(m, "transparent"));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(m, "resolves_to")), 0);
    ck_assert_str_eq(str(m, "unresolved"), "no running container '0123456789ab'");
    cJSON_Delete(doc);

    /* The session ends (both sides close): the count follows. */
    int server = t_accept(f.base, f.backend);
    close(client);
    close(server);
    ck_assert(PUMP_UNTIL(f.base, 2000, berth_tcp_sessions(f.b) == 0));
    doc = doc_of(&f);
    m = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "mappings"), 0);
    ck_assert_int_eq((int)num(m, "sessions"), 0);
    cJSON_Delete(doc);
    fx_stop(&f);
}
END_TEST

START_TEST(test_json_says_the_engine_state)
{
    struct fx f;
    fx_start(&f, "unix:///nonexistent/berth-test.sock");
    registry_set_engine(f.reg, false,
                        "cannot connect to /nonexistent: no such socket");
    cJSON *doc = doc_of(&f);
    const cJSON *d = cJSON_GetObjectItem(doc, "docker");
    ck_assert(flag(d, "followed"));
    ck_assert_msg(strstr(str(d, "endpoint"), "unix:///nonexistent/berth-test.sock"),
                  "%s", str(d, "endpoint"));
    ck_assert(!flag(d, "synced"));
    ck_assert(!flag(d, "known"));
    ck_assert(!flag(d, "stale"));
    ck_assert_int_eq((int)num(d, "containers"), 2);
    ck_assert_str_eq(str(d, "error"),
                     "cannot connect to /nonexistent: no such socket");
    ck_assert(strcmp(str(d, "phase"), "synced") != 0);
    /* Unknown engine: the name target says so, as relay tells clients. */
    registry_set_stale(f.reg, true);
    cJSON_Delete(doc);
    doc = doc_of(&f);
    d = cJSON_GetObjectItem(doc, "docker");
    ck_assert(flag(d, "stale"));
    const cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "mappings"), 2);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(m, "resolves_to")), 0);
    ck_assert_msg(strstr(str(m, "unresolved"), "stale"), "%s", str(m, "unresolved"));
    cJSON_Delete(doc);
    fx_stop(&f);
}
END_TEST

START_TEST(test_page_escapes_every_string)
{
    struct fx f;
    fx_start(&f, "unix:///nonexistent/<b>&.sock");
    registry_set_engine(f.reg, false, "<script>alert(1)</script> & \"'");
    char *page = page_of(&f);
    /* Self-contained: nothing fetched but /status. */
    ck_assert_ptr_nonnull(strstr(page, "<title>berth</title>"));
    ck_assert_ptr_null(strstr(page, "src=\"http"));
    ck_assert_ptr_null(strstr(page, "href="));
    ck_assert_ptr_nonnull(strstr(page, "fetch('/status'"));
    /* User data only escaped. */
    ck_assert_ptr_nonnull(strstr(page, "label: " EVIL_NAME_HTML "</td>"));
    ck_assert_ptr_null(strstr(page, "<img"));
    ck_assert_ptr_nonnull(
        strstr(page, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;&#39;"));
    ck_assert_ptr_null(strstr(page, "<script>alert"));
    ck_assert_ptr_nonnull(strstr(page, "unix:///nonexistent/&lt;b&gt;&amp;.sock"));
    /* Each port a row, first cell its bound address; the switches. */
    for (const struct berth_port *p = berth_port_next(f.b, NULL); p;
         p = berth_port_next(f.b, p)) {
        struct addr a;
        char text[ADDR_STRLEN], cell[ADDR_STRLEN + 40];
        ck_assert_int_eq(berth_port_addr(p, &a), 0);
        snprintf(cell, sizeof cell, "<tr><td class=\"listen\">%s</td>",
                 addr_format(&a, text, sizeof text));
        ck_assert_msg(strstr(page, cell), "no row %s", cell);
    }
    ck_assert_ptr_nonnull(strstr(page, "10.9.0.5:80, 10.9.0.6:80</td>"));
    ck_assert_ptr_nonnull(strstr(page, "<td>proxy-protocol v2</td>"));
    ck_assert_ptr_nonnull(strstr(page, "<td>transparent</td>"));
    free(page);
    fx_stop(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("status");
    tcase_add_test(tc, test_json_lists_every_port);
    tcase_add_test(tc, test_json_says_the_engine_state);
    tcase_add_test(tc, test_page_escapes_every_string);
    suite_add_tcase(s, tc);
    return check_run(s);
}
