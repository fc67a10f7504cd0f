/* The registry: every kind of name, the rank that wins a clash, case,
 * PTR, subnets, and updates that repeat (events do). */
#include "check_run.h"
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "berth/registry.h"

static struct reg_endpoint ep(const char *net, const char *v4, const char *v6,
                              const char *const *aliases, size_t naliases)
{
    struct reg_endpoint e = {.network = net, .aliases = aliases, .naliases = naliases};
    if (v4) {
        e.has_v4 = true;
        inet_pton(AF_INET, v4, &e.v4);
    }
    if (v6) {
        e.has_v6 = true;
        inet_pton(AF_INET6, v6, &e.v6);
    }
    return e;
}

static void put(struct registry *r, const char *id, const char *name,
                const char *project, const char *service, int number,
                const struct reg_endpoint *eps, size_t neps)
{
    struct reg_container c = {.id = id,
                              .name = name,
                              .project = project,
                              .service = service,
                              .number = number,
                              .eps = eps,
                              .neps = neps};
    ck_assert_int_eq(registry_put(r, &c), 0);
}

/* Resolves and formats the answers as "a,b,c" (or "NX"). */
static const char *resolve(struct registry *r, const char *name, int family)
{
    static char out[512];
    struct addr a[8];
    int n = registry_resolve(r, name, strlen(name), family, a, 8);
    if (n < 0)
        return "NX";
    out[0] = '\0';
    for (int i = 0; i < n && i < 8; i++) {
        char ip[64];
        addr_format_ip(&a[i], ip, sizeof ip);
        if (i)
            strcat(out, ",");
        strcat(out, ip);
    }
    return out;
}

#define ID(c) c "00000000000000000000000000000000000000000000000000000000000"

static struct registry *lab(void)
{
    struct registry *r = registry_new();
    const char *api_alias[] = {"api", "lab_api_1"};
    struct reg_endpoint web[] = {ep("bridge", "172.17.0.2", "fd00::2", NULL, 0),
                                 ep("backend", "10.5.0.2", NULL, NULL, 0)};
    put(r, ID("aaaaaaaaaaaaa"), "web", NULL, NULL, 0, web, 2);
    /* Replicas registered out of order: answers come by number. */
    struct reg_endpoint a3[] = {ep("lab_default", "10.9.0.13", NULL, api_alias, 2)};
    struct reg_endpoint a1[] = {ep("lab_default", "10.9.0.11", NULL, api_alias, 2)};
    struct reg_endpoint a2[] = {ep("lab_default", "10.9.0.12", NULL, api_alias, 2)};
    put(r, ID("3333333333333"), "lab_api_3", "lab", "api", 3, a3, 1);
    put(r, ID("1111111111111"), "lab_api_1", "lab", "api", 1, a1, 1);
    put(r, ID("2222222222222"), "lab_api_2", "lab", "api", 2, a2, 1);
    const char *db_alias[] = {"db"};
    struct reg_endpoint db[] = {ep("backend", "10.5.0.9", NULL, db_alias, 1)};
    put(r, ID("ddddddddddddd"), "postgres", NULL, NULL, 0, db, 1);
    return r;
}

START_TEST(test_names)
{
    struct registry *r = lab();
    ck_assert_str_eq(resolve(r, "web", AF_INET), "172.17.0.2,10.5.0.2");
    ck_assert_str_eq(resolve(r, "web", AF_INET6), "fd00::2");
    ck_assert_str_eq(resolve(r, "WeB", AF_INET), "172.17.0.2,10.5.0.2");
    ck_assert_str_eq(resolve(r, "aaaaaaaaaaaa", AF_INET), "172.17.0.2,10.5.0.2");
    ck_assert_str_eq(resolve(r, "aaaaaaaaaaa", AF_INET), "NX"); /* 11 digits */
    ck_assert_str_eq(resolve(r, "api.lab", AF_INET), "10.9.0.11,10.9.0.12,10.9.0.13");
    ck_assert_str_eq(resolve(r, "api.lab", AF_INET6), ""); /* exists, no v6 */
    ck_assert_str_eq(resolve(r, "2.api.lab", AF_INET), "10.9.0.12");
    ck_assert_str_eq(resolve(r, "4.api.lab", AF_INET), "NX");
    ck_assert_str_eq(resolve(r, "db.backend", AF_INET), "10.5.0.9");
    ck_assert_str_eq(resolve(r, "postgres.backend", AF_INET), "10.5.0.9");
    ck_assert_str_eq(resolve(r, "web.backend", AF_INET), "10.5.0.2");
    ck_assert_str_eq(resolve(r, "web.bridge", AF_INET6), "fd00::2");
    ck_assert_str_eq(resolve(r, "api.lab_default", AF_INET),
                     "10.9.0.11,10.9.0.12,10.9.0.13");
    ck_assert_str_eq(resolve(r, "nope", AF_INET), "NX");
    ck_assert_str_eq(resolve(r, "db", AF_INET), "NX");
    ck_assert_str_eq(resolve(r, "lab", AF_INET), "");     /* a project */
    ck_assert_str_eq(resolve(r, "backend", AF_INET), ""); /* a network */
    registry_free(r);
}
END_TEST

/* A container named like a service wins over the service reading. */
START_TEST(test_rank_on_clash)
{
    struct registry *r = lab();
    struct reg_endpoint e[] = {ep("bridge", "172.17.0.50", NULL, NULL, 0)};
    put(r, ID("eeeeeeeeeeeee"), "api.lab", NULL, NULL, 0, e, 1);
    ck_assert_str_eq(resolve(r, "api.lab", AF_INET), "172.17.0.50");
    registry_drop(r, ID("eeeeeeeeeeeee"));
    ck_assert_str_eq(resolve(r, "api.lab", AF_INET), "10.9.0.11,10.9.0.12,10.9.0.13");
    registry_free(r);
}
END_TEST

START_TEST(test_updates_repeat_and_drop)
{
    struct registry *r = lab();
    uint64_t v = registry_version(r);
    struct reg_endpoint moved[] = {ep("bridge", "172.17.0.7", NULL, NULL, 0)};
    put(r, ID("aaaaaaaaaaaaa"), "web", NULL, NULL, 0, moved, 1);
    put(r, ID("aaaaaaaaaaaaa"), "web", NULL, NULL, 0, moved, 1); /* repeated */
    ck_assert_uint_gt(registry_version(r), v);
    ck_assert_uint_eq(registry_count(r), 5);
    ck_assert_str_eq(resolve(r, "web", AF_INET), "172.17.0.7");
    registry_drop(r, ID("2222222222222"));
    registry_drop(r, ID("2222222222222")); /* repeated */
    ck_assert_str_eq(resolve(r, "api.lab", AF_INET), "10.9.0.11,10.9.0.13");
    ck_assert_str_eq(resolve(r, "2.api.lab", AF_INET), "NX");
    registry_clear(r);
    ck_assert_str_eq(resolve(r, "web", AF_INET), "NX");
    registry_free(r);
}
END_TEST

START_TEST(test_oneoff_not_in_service)
{
    struct registry *r = lab();
    struct reg_endpoint e[] = {ep("lab_default", "10.9.0.99", NULL, NULL, 0)};
    struct reg_container c = {.id = ID("fffffffffffff"),
                              .name = "lab_api_run_1",
                              .project = "lab",
                              .service = "api",
                              .number = 1,
                              .oneoff = true,
                              .eps = e,
                              .neps = 1};
    ck_assert_int_eq(registry_put(r, &c), 0);
    ck_assert_str_eq(resolve(r, "api.lab", AF_INET), "10.9.0.11,10.9.0.12,10.9.0.13");
    ck_assert_str_eq(resolve(r, "lab_api_run_1", AF_INET), "10.9.0.99");
    registry_free(r);
}
END_TEST

START_TEST(test_ptr_and_subnets)
{
    struct registry *r = lab();
    char name[REG_NAME_MAX];
    struct addr a;
    addr_from_ip(&a, "10.9.0.12", 53);
    ck_assert_int_eq(registry_ptr(r, &a, name, sizeof name), 0);
    ck_assert_str_eq(name, "lab_api_2");
    addr_from_ip(&a, "fd00::2", 0);
    ck_assert_int_eq(registry_ptr(r, &a, name, sizeof name), 0);
    ck_assert_str_eq(name, "web");
    addr_from_ip(&a, "10.9.0.200", 0);
    ck_assert_int_eq(registry_ptr(r, &a, name, sizeof name), -1);

    ck_assert(!registry_knows_client(r, &a));
    struct reg_subnet s = {.prefix = 16};
    addr_from_ip(&s.net, "10.9.0.0", 0);
    ck_assert_int_eq(registry_put_network(r, "lab_default", NULL, NULL, &s, 1), 0);
    ck_assert(registry_knows_client(r, &a));
    addr_from_ip(&a, "10.10.0.1", 0);
    ck_assert(!registry_knows_client(r, &a));
    registry_drop_network(r, "lab_default");
    addr_from_ip(&a, "10.9.0.200", 0);
    ck_assert(!registry_knows_client(r, &a));
    registry_free(r);
}
END_TEST

static void count_visit(const struct reg_container *c, void *arg)
{
    int *n = arg;
    if (c->service && strcmp(c->service, "api") == 0)
        *n += (int)c->neps;
}

START_TEST(test_foreach)
{
    struct registry *r = lab();
    int n = 0;
    registry_foreach(r, count_visit, &n);
    ck_assert_int_eq(n, 3);
    registry_free(r);
    registry_free(NULL);
}
END_TEST

/* The index follows each change by itself: a rename, a move, parents
 * that go with their last container, PTR passed on to the next owner. */
START_TEST(test_index_follows_changes)
{
    struct registry *r = lab();
    char name[64];
    struct addr a;
    /* web renamed: the old names go, the new ones come. */
    struct reg_endpoint web[] = {ep("bridge", "172.17.0.2", NULL, NULL, 0)};
    put(r, ID("aaaaaaaaaaaaa"), "www", NULL, NULL, 0, web, 1);
    ck_assert_str_eq(resolve(r, "web", AF_INET), "NX");
    ck_assert_str_eq(resolve(r, "web.backend", AF_INET), "NX");
    ck_assert_str_eq(resolve(r, "www", AF_INET), "172.17.0.2");
    ck_assert_str_eq(resolve(r, "aaaaaaaaaaaa", AF_INET), "172.17.0.2");
    addr_from_ip(&a, "172.17.0.2", 0);
    ck_assert_int_eq(registry_ptr(r, &a, name, sizeof name), 0);
    ck_assert_str_eq(name, "www");
    /* "backend" still has postgres; "lab" still has its replicas. */
    ck_assert_str_eq(resolve(r, "backend", AF_INET), "");
    registry_drop(r, ID("ddddddddddddd"));
    ck_assert_str_eq(resolve(r, "backend", AF_INET), "NX");
    ck_assert_str_eq(resolve(r, "db.backend", AF_INET), "NX");
    /* Two containers with one address: the lower number owns the PTR,
     * the other one after it leaves. */
    struct reg_endpoint same[] = {ep("lab_default", "10.9.0.11", NULL, NULL, 0)};
    put(r, ID("fffffffffffff"), "lab_api_9", "lab", "api", 9, same, 1);
    addr_from_ip(&a, "10.9.0.11", 0);
    ck_assert_int_eq(registry_ptr(r, &a, name, sizeof name), 0);
    ck_assert_str_eq(name, "lab_api_1");
    ck_assert_str_eq(resolve(r, "api.lab", AF_INET), "10.9.0.11,10.9.0.12,10.9.0.13");
    registry_drop(r, ID("1111111111111"));
    ck_assert_int_eq(registry_ptr(r, &a, name, sizeof name), 0);
    ck_assert_str_eq(name, "lab_api_9");
    ck_assert_str_eq(resolve(r, "api.lab", AF_INET), "10.9.0.12,10.9.0.13,10.9.0.11");
    registry_drop(r, ID("2222222222222"));
    registry_drop(r, ID("3333333333333"));
    registry_drop(r, ID("fffffffffffff"));
    ck_assert_str_eq(resolve(r, "lab", AF_INET), "NX");
    ck_assert_str_eq(resolve(r, "api.lab", AF_INET), "NX");
    ck_assert_str_eq(resolve(r, "lab_default", AF_INET), "NX");
    ck_assert_int_eq(registry_ptr(r, &a, name, sizeof name), -1);
    registry_free(r);
}
END_TEST

/* A resync's sweep: what was kept or stored since it began stays. */
START_TEST(test_sweep)
{
    struct registry *r = lab();
    registry_sweep_begin(r);
    registry_keep(r, ID("aaaaaaaaaaaaa"));
    registry_keep(r, ID("0000000000000")); /* unknown: fine */
    struct reg_endpoint e[] = {ep("lab_default", "10.9.0.12", NULL, NULL, 0)};
    put(r, ID("2222222222222"), "lab_api_2", "lab", "api", 2, e, 1);
    uint64_t v = registry_version(r);
    ck_assert_uint_eq(registry_sweep(r), 3);
    ck_assert_uint_gt(registry_version(r), v);
    ck_assert_uint_eq(registry_count(r), 2);
    ck_assert_str_eq(resolve(r, "web", AF_INET), "172.17.0.2,10.5.0.2");
    ck_assert_str_eq(resolve(r, "api.lab", AF_INET), "10.9.0.12");
    ck_assert_str_eq(resolve(r, "postgres", AF_INET), "NX");
    /* A sweep with nothing kept forgets everything. */
    registry_sweep_begin(r);
    ck_assert_uint_eq(registry_sweep(r), 2);
    ck_assert_uint_eq(registry_count(r), 0);
    ck_assert_str_eq(resolve(r, "lab", AF_INET), "NX");
    registry_free(r);
}
END_TEST

/* Runs the lookup with stderr in a file; returns its answer and puts what
 * was logged into text. */
static const char *resolve_logged(struct registry *r, const char *name, char *text,
                                  size_t len)
{
    FILE *log = tmpfile();
    ck_assert_ptr_nonnull(log);
    int saved = dup(2);
    fflush(stderr);
    dup2(fileno(log), 2);
    const char *got = resolve(r, name, AF_INET);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(log);
    size_t n = fread(text, 1, len - 1, log);
    text[n] = '\0';
    fclose(log);
    return got;
}

/* docker-compose names networks <project>_<key>: the key names them too
 * (README, "Names and labels"); a Docker name wins; a key that two
 * projects use resolves where the name is, and is ambiguous where both
 * have it: nothing, one warning naming the full names. */
START_TEST(test_compose_network_keys)
{
    struct registry *r = registry_new();
    const char *db_alias[] = {"db", "lab_db_1"};
    struct reg_endpoint db[] = {ep("lab_backend", "10.6.0.2", NULL, db_alias, 2),
                                ep("lab_default", "10.9.0.2", NULL, NULL, 0)};
    put(r, ID("ddddddddddddd"), "lab_db_1", "lab", "db", 1, db, 2);
    /* Before the network list says what lab_backend is: its Docker name. */
    ck_assert_str_eq(resolve(r, "db.backend", AF_INET), "NX");
    ck_assert_str_eq(resolve(r, "db.lab_backend", AF_INET), "10.6.0.2");
    ck_assert_int_eq(registry_put_network(r, "lab_backend", "lab", "backend", NULL, 0),
                     0);
    ck_assert_int_eq(registry_put_network(r, "lab_default", "lab", "default", NULL, 0),
                     0);
    ck_assert_str_eq(resolve(r, "db.backend", AF_INET), "10.6.0.2");
    ck_assert_str_eq(resolve(r, "DB.Backend", AF_INET), "10.6.0.2");
    ck_assert_str_eq(resolve(r, "lab_db_1.backend", AF_INET), "10.6.0.2");
    ck_assert_str_eq(resolve(r, "lab_db_1.default", AF_INET), "10.9.0.2");
    ck_assert_str_eq(resolve(r, "backend", AF_INET), ""); /* exists, no address */
    ck_assert_str_eq(resolve(r, "db.backend", AF_INET6), "");
    ck_assert_str_eq(resolve(r, "web.backend", AF_INET), "NX");
    ck_assert_str_eq(resolve(r, "x.db.backend", AF_INET), "NX");

    /* Names below a name read through a key exist there too (DNS's empty
     * non-terminals): the alias pg.internal on lab_backend. */
    const char *pg_alias[] = {"pg.internal"};
    struct reg_endpoint pg[] = {ep("lab_backend", "10.6.0.3", NULL, pg_alias, 1)};
    put(r, ID("bbbbbbbbbbbbb"), "lab_pg_1", "lab", "pg", 1, pg, 1);
    ck_assert(registry_has_below(r, "internal.lab_backend", 20));
    ck_assert(registry_has_below(r, "internal.backend", 16));
    ck_assert(registry_has_below(r, "Internal.BACKEND", 16));
    ck_assert(!registry_has_below(r, "other.backend", 13));
    ck_assert(!registry_has_below(r, "internal.default", 16));
    ck_assert_str_eq(resolve(r, "pg.internal.backend", AF_INET), "10.6.0.3");
    registry_drop(r, ID("bbbbbbbbbbbbb"));
    ck_assert(!registry_has_below(r, "internal.backend", 16));

    /* A second project with a "backend" key but no db there: still lab's. */
    const char *cache_alias[] = {"cache"};
    struct reg_endpoint cache[] = {
        ep("shop_backend", "10.7.0.5", NULL, cache_alias, 1)};
    put(r, ID("ccccccccccccc"), "shop_cache_1", "shop", "cache", 1, cache, 1);
    ck_assert_int_eq(registry_put_network(r, "shop_backend", "shop", "backend", NULL,
                                          0),
                     0);
    ck_assert_str_eq(resolve(r, "db.backend", AF_INET), "10.6.0.2");
    ck_assert_str_eq(resolve(r, "cache.backend", AF_INET), "10.7.0.5");
    ck_assert_str_eq(resolve(r, "backend", AF_INET), "");

    /* shop gets a db on its backend too: ambiguous, said once. */
    struct reg_endpoint db2[] = {ep("shop_backend", "10.7.0.9", NULL, db_alias, 1)};
    put(r, ID("eeeeeeeeeeeee"), "shop_db_1", "shop", "db", 1, db2, 1);
    char text[2048];
    ck_assert_str_eq(resolve_logged(r, "db.backend", text, sizeof text), "NX");
    ck_assert_msg(strstr(text, "'db.backend' is ambiguous") &&
                      strstr(text, "db.lab_backend (project lab)") &&
                      strstr(text, "db.shop_backend (project shop)"),
                  "log: %s", text);
    ck_assert_str_eq(resolve_logged(r, "db.backend", text, sizeof text), "NX");
    ck_assert_str_eq(text, "");
    ck_assert_str_eq(resolve(r, "db.lab_backend", AF_INET), "10.6.0.2");
    ck_assert_str_eq(resolve(r, "db.shop_backend", AF_INET), "10.7.0.9");
    ck_assert_str_eq(resolve(r, "cache.backend", AF_INET), "10.7.0.5");

    /* A network whose Docker name is "backend" wins over both keys. */
    struct reg_endpoint plain[] = {ep("backend", "10.5.0.9", NULL, db_alias, 1)};
    put(r, ID("fffffffffffff"), "postgres", NULL, NULL, 0, plain, 1);
    ck_assert_str_eq(resolve_logged(r, "db.backend", text, sizeof text), "10.5.0.9");
    ck_assert_str_eq(text, "");
    registry_drop(r, ID("fffffffffffff"));

    /* shop's db stops: db.backend is lab's again. */
    registry_drop(r, ID("eeeeeeeeeeeee"));
    ck_assert_str_eq(resolve(r, "db.backend", AF_INET), "10.6.0.2");
    /* lab's network goes from the list: the key with it. */
    registry_drop_network(r, "lab_backend");
    ck_assert_str_eq(resolve(r, "db.backend", AF_INET), "NX");
    ck_assert_str_eq(resolve(r, "cache.backend", AF_INET), "10.7.0.5");
    registry_clear_networks(r);
    ck_assert_str_eq(resolve(r, "cache.backend", AF_INET), "NX");
    ck_assert_str_eq(resolve(r, "cache.shop_backend", AF_INET), "10.7.0.5");
    /* A replaced network keeps one key entry, not two. */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(registry_put_network(r, "shop_backend", "shop", "backend",
                                              NULL, 0),
                         0);
    ck_assert_str_eq(resolve_logged(r, "cache.backend", text, sizeof text),
                     "10.7.0.5");
    ck_assert_str_eq(text, "");
    registry_free(r);
}
END_TEST

/* Two projects of 20 services each, all on their "default": every name
 * below the key is ambiguous, each said once however many there are and
 * however often clients ask (a ring of a few remembered names let a
 * client cycling through 9 of them log on every lookup). */
START_TEST(test_ambiguous_said_once)
{
    enum { SERVICES = 20 };
    struct registry *r = registry_new();
    const char *projects[] = {"lab", "shop"};
    for (int p = 0; p < 2; p++) {
        char net[32];
        snprintf(net, sizeof net, "%s_default", projects[p]);
        ck_assert_int_eq(registry_put_network(r, net, projects[p], "default", NULL, 0),
                         0);
        for (int i = 0; i < SERVICES; i++) {
            char id[REG_ID_MAX], name[32], svc[16], ip[32];
            snprintf(id, sizeof id, "%d%02d%061d", p, i, 0);
            snprintf(svc, sizeof svc, "s%d", i);
            snprintf(name, sizeof name, "%s_s%d_1", projects[p], i);
            snprintf(ip, sizeof ip, "10.%d.0.%d", p, i + 2);
            const char *alias[] = {svc};
            struct reg_endpoint e = ep(net, ip, NULL, alias, 1);
            put(r, id, name, projects[p], svc, 1, &e, 1);
        }
    }
    int said[SERVICES] = {0};
    char text[2048], name[32], want[64];
    for (int pass = 0; pass < 3; pass++) {
        for (int i = 0; i < SERVICES; i++) {
            snprintf(name, sizeof name, "s%d.default", i);
            ck_assert_str_eq(resolve_logged(r, name, text, sizeof text), "NX");
            snprintf(want, sizeof want, "'%s' is ambiguous", name);
            said[i] += strstr(text, want) != NULL;
            ck_assert_msg(!text[0] || strstr(text, want), "log: %s", text);
        }
    }
    for (int i = 0; i < SERVICES; i++)
        ck_assert_msg(said[i] == 1, "s%d.default said %d times", i, said[i]);
    /* The set of networks holding one changes: said again, once. */
    registry_drop(r, "100000000000000000000000000000000000000000000000000000000000000"
                     "0");
    ck_assert_str_eq(resolve(r, "s0.default", AF_INET), "10.0.0.2");
    struct reg_endpoint e = ep("shop_default", "10.1.0.99", NULL,
                               (const char *[]){"s0"}, 1);
    put(r, ID("9999999999999"), "shop_s0_2", "shop", "s0", 2, &e, 1);
    ck_assert_str_eq(resolve_logged(r, "s0.default", text, sizeof text), "NX");
    ck_assert_msg(strstr(text, "'s0.default' is ambiguous"), "log: %s", text);
    ck_assert_str_eq(resolve_logged(r, "s0.default", text, sizeof text), "NX");
    ck_assert_str_eq(text, "");
    registry_free(r);
}
END_TEST

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Every project has a "default": a name read through that key costs one
 * hash lookup, not one per project (2000 projects took 300 us a miss). */
START_TEST(test_keys_cost_per_lookup)
{
    enum { PROJECTS = 2000, LOOKUPS = 100000 };
    struct registry *r = registry_new();
    for (int p = 0; p < PROJECTS; p++) {
        char proj[16], def[32], back[32], id[REG_ID_MAX], name[32], v4[2][32];
        snprintf(proj, sizeof proj, "p%d", p);
        snprintf(def, sizeof def, "p%d_default", p);
        snprintf(back, sizeof back, "p%d_backend", p);
        ck_assert_int_eq(registry_put_network(r, def, proj, "default", NULL, 0), 0);
        ck_assert_int_eq(registry_put_network(r, back, proj, "backend", NULL, 0), 0);
        snprintf(id, sizeof id, "%064d", p);
        snprintf(name, sizeof name, "p%d_web_1", p);
        snprintf(v4[0], sizeof v4[0], "10.1.%d.%d", p >> 8, p & 255);
        snprintf(v4[1], sizeof v4[1], "10.2.%d.%d", p >> 8, p & 255);
        const char *alias[] = {"web", "pg.internal"};
        struct reg_endpoint e[] = {ep(def, v4[0], NULL, alias, 1),
                                   ep(back, v4[1], NULL, alias, 2)};
        put(r, id, name, proj, "web", 1, e, 2);
    }
    ck_assert_str_eq(resolve(r, "p1234_web_1.default", AF_INET), "10.1.4.210");
    ck_assert(registry_has_below(r, "internal.backend", 16));
    struct addr a[4];
    double t0 = seconds();
    for (int i = 0; i < LOOKUPS; i++)
        ck_assert_int_eq(registry_resolve(r, "nothere.default", 15, AF_INET, a, 4),
                         -1);
    double t1 = seconds();
    for (int i = 0; i < LOOKUPS; i++)
        ck_assert(!registry_has_below(r, "nothere.backend", 15));
    double t2 = seconds();
    printf("keys: %d projects: %.3f us a miss, %.3f us a has_below\n", PROJECTS,
           (t1 - t0) / LOOKUPS * 1e6, (t2 - t1) / LOOKUPS * 1e6);
    ck_assert_msg(t2 - t0 < 2.0, "%d keyed lookups took %.2f s", 2 * LOOKUPS, t2 - t0);
    registry_free(r);
}
END_TEST

/* The key table follows every change, whatever came first: a key after
 * its containers, a key gone, a network keyed anew, a container dropped,
 * a network list loaded again without one of them. */
START_TEST(test_keys_follow_changes)
{
    struct registry *r = registry_new();
    const char *alias[] = {"db", "pg.internal"};
    struct reg_endpoint e = ep("lab_backend", "10.6.0.2", NULL, alias, 2);
    put(r, ID("ddddddddddddd"), "lab_db_1", "lab", "db", 1, &e, 1);
    struct reg_endpoint w = ep("lab_front", "10.8.0.2", NULL, (const char *[]){"web"},
                               1);
    put(r, ID("wwwwwwwwwwwww"), "lab_web_1", "lab", "web", 1, &w, 1);
    ck_assert_str_eq(resolve(r, "db.backend", AF_INET), "NX");
    ck_assert(!registry_has_below(r, "internal.backend", 16));
    /* The key comes after the container. */
    ck_assert_int_eq(registry_put_network(r, "lab_backend", "lab", "backend", NULL, 0),
                     0);
    ck_assert_int_eq(registry_put_network(r, "lab_front", "lab", "front", NULL, 0), 0);
    ck_assert_str_eq(resolve(r, "db.backend", AF_INET), "10.6.0.2");
    ck_assert_str_eq(resolve(r, "pg.internal.backend", AF_INET), "10.6.0.2");
    ck_assert_str_eq(resolve(r, "backend", AF_INET), "");
    ck_assert(registry_has_below(r, "internal.backend", 16));
    ck_assert(registry_has_below(r, "backend", 7));
    /* The key goes (the network stays). */
    ck_assert_int_eq(registry_put_network(r, "lab_backend", NULL, NULL, NULL, 0), 0);
    ck_assert_str_eq(resolve(r, "db.backend", AF_INET), "NX");
    ck_assert_str_eq(resolve(r, "backend", AF_INET), "NX");
    ck_assert(!registry_has_below(r, "internal.backend", 16));
    ck_assert_str_eq(resolve(r, "db.lab_backend", AF_INET), "10.6.0.2");
    /* Put again with another key: that one names it, the old one not. */
    ck_assert_int_eq(registry_put_network(r, "lab_backend", "lab", "data", NULL, 0),
                     0);
    ck_assert_str_eq(resolve(r, "db.data", AF_INET), "10.6.0.2");
    ck_assert(registry_has_below(r, "internal.data", 13));
    ck_assert_str_eq(resolve(r, "db.backend", AF_INET), "NX");
    /* A full list again, lab_front missing from it: its key goes, lab_backend's
     * stays. */
    registry_clear_networks(r);
    ck_assert_int_eq(registry_put_network(r, "lab_backend", "lab", "data", NULL, 0),
                     0);
    ck_assert_str_eq(resolve(r, "web.front", AF_INET), "NX");
    ck_assert_str_eq(resolve(r, "db.data", AF_INET), "10.6.0.2");
    ck_assert_int_eq(registry_put_network(r, "lab_front", "lab", "front", NULL, 0), 0);
    ck_assert_str_eq(resolve(r, "web.front", AF_INET), "10.8.0.2");
    /* The container replaced with other aliases, then dropped. */
    const char *alias2[] = {"sql"};
    e = ep("lab_backend", "10.6.0.3", NULL, alias2, 1);
    put(r, ID("ddddddddddddd"), "lab_db_1", "lab", "db", 1, &e, 1);
    ck_assert_str_eq(resolve(r, "db.data", AF_INET), "NX");
    ck_assert_str_eq(resolve(r, "sql.data", AF_INET), "10.6.0.3");
    ck_assert(!registry_has_below(r, "internal.data", 13));
    registry_drop(r, ID("ddddddddddddd"));
    ck_assert_str_eq(resolve(r, "sql.data", AF_INET), "NX");
    ck_assert_str_eq(resolve(r, "lab_db_1.data", AF_INET), "NX");
    ck_assert_str_eq(resolve(r, "data", AF_INET), "NX");
    ck_assert(!registry_has_below(r, "data", 4));
    ck_assert_str_eq(resolve(r, "web.front", AF_INET), "10.8.0.2");
    registry_free(r);
}
END_TEST

/* A host of many containers: each put, replace and drop touches only its
 * own names, and the table ends empty. */
START_TEST(test_many_containers)
{
    enum { MANY = 20000 };
    struct registry *r = registry_new();
    static char ids[MANY][REG_ID_MAX], names[MANY][16];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < MANY; i++) {
            snprintf(ids[i], sizeof ids[i], "%012x%052d", (unsigned)i * 2654435761u,
                     i);
            snprintf(names[i], sizeof names[i], "c%d", i);
            char ip[32];
            snprintf(ip, sizeof ip, "10.%d.%d.%d", round, i >> 8, i & 255);
            struct reg_endpoint e = ep("bridge", ip, NULL, NULL, 0);
            struct reg_container c = {.id = ids[i],
                                      .name = names[i],
                                      .eps = &e,
                                      .neps = 1};
            if (registry_put(r, &c) < 0)
                ck_abort_msg("put %d", i);
        }
    }
    ck_assert_uint_eq(registry_count(r), MANY);
    ck_assert_str_eq(resolve(r, "c12345", AF_INET), "10.1.48.57");
    ck_assert_str_eq(resolve(r, "c12345.bridge", AF_INET), "10.1.48.57");
    ck_assert_str_eq(resolve(r, "bridge", AF_INET), "");
    for (int i = 0; i < MANY; i++)
        registry_drop(r, ids[(i * 7919) % MANY]);
    ck_assert_uint_eq(registry_count(r), 0);
    ck_assert_str_eq(resolve(r, "c12345", AF_INET), "NX");
    ck_assert_str_eq(resolve(r, "bridge", AF_INET), "NX");
    registry_free(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("registry");
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_rank_on_clash);
    tcase_add_test(tc, test_updates_repeat_and_drop);
    tcase_add_test(tc, test_oneoff_not_in_service);
    tcase_add_test(tc, test_ptr_and_subnets);
    tcase_add_test(tc, test_foreach);
    tcase_add_test(tc, test_index_follows_changes);
    tcase_add_test(tc, test_sweep);
    tcase_add_test(tc, test_many_containers);
    tcase_add_test(tc, test_compose_network_keys);
    tcase_add_test(tc, test_ambiguous_said_once);
    tcase_add_test(tc, test_keys_cost_per_lookup);
    tcase_add_test(tc, test_keys_follow_changes);
    suite_add_tcase(s, tc);
    return check_run(s);
}
