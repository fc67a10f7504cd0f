/* Finding the Docker Engine API as the docker CLI does: the URL grammar of
 * its opts/hosts.go, its TLS flags and environment (cli/flags/options.go),
 * and its context store, in --docker, DOCKER_HOST, DOCKER_CONTEXT, config
 * order. Each test starts from an environment without any DOCKER_ variable
 * and a DOCKER_CONFIG of its own. */
#include "check_run.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "berth/docker_endpoint.h"
#include "berth/sha256.h"

static char cfg[256];

static void clean_env(void)
{
    const char *vars[] = {"DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY",
                          "DOCKER_TLS", "DOCKER_CERT_PATH"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        unsetenv(vars[i]);
    snprintf(cfg, sizeof cfg, "/tmp/berth-ep-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(cfg));
    setenv("DOCKER_CONFIG", cfg, 1);
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cfg);
    ck_assert_int_eq(system(cmd), 0);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char cmd[600], path[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* A context as `docker context create NAME --docker host=HOST` stores it;
 * tls: the files of its TLS folder, space-separated, or NULL. */
static void make_context(const char *name, const char *host, bool skip,
                         const char *tls)
{
    char id[65], dir[400], meta[600];
    sha256_hex(name, strlen(name), id);
    snprintf(dir, sizeof dir, "%s/contexts/meta/%s", cfg, id);
    snprintf(meta, sizeof meta,
             "{\"Name\":\"%s\",\"Metadata\":{},\"Endpoints\":{\"docker\":"
             "{\"Host\":\"%s\",\"SkipTLSVerify\":%s}}}",
             name, host, skip ? "true" : "false");
    write_file(dir, "meta.json", meta);
    snprintf(dir, sizeof dir, "%s/contexts/tls/%s/docker", cfg, id);
    char files[100];
    snprintf(files, sizeof files, "%s", tls ? tls : "");
    for (char *f = strtok(files, " "); f; f = strtok(NULL, " "))
        write_file(dir, f, "pem");
}

static void ok(struct docker_endpoint *ep, const char *flag)
{
    char err[300] = "";
    ck_assert_msg(docker_endpoint_resolve(ep, flag, err, sizeof err) == 0, "%s", err);
}

static void bad(const char *flag, const char *want)
{
    struct docker_endpoint ep;
    char err[600] = "";
    ck_assert_int_eq(docker_endpoint_resolve(&ep, flag, err, sizeof err), -1);
    ck_assert_str_eq(err, want);
}

START_TEST(test_unix)
{
    struct docker_endpoint ep;
    ok(&ep, "unix:///run/docker.sock");
    ck_assert_str_eq(ep.target.unix_path, "/run/docker.sock");
    ck_assert_str_eq(ep.target.base_url, "http://docker");
    ck_assert_str_eq(ep.source, "--docker");
    ck_assert_ptr_null(ep.target.ca);
    ok(&ep, "unix://"); /* the CLI's default socket */
    ck_assert_str_eq(ep.target.unix_path, "/var/run/docker.sock");
    /* TLS variables do nothing to a socket, as in the CLI. */
    setenv("DOCKER_TLS_VERIFY", "1", 1);
    ok(&ep, "unix:///run/docker.sock");
    ck_assert(!ep.tls && !ep.target.ca);
}
END_TEST

START_TEST(test_tcp_forms)
{
    struct docker_endpoint ep;
    ok(&ep, "tcp://10.0.0.1:2375");
    ck_assert_str_eq(ep.target.base_url, "http://10.0.0.1:2375");
    ck_assert_ptr_null(ep.target.unix_path);
    ok(&ep, "tcp://h"); /* 2375 even with TLS: opts.ParseTCPAddr */
    ck_assert_str_eq(ep.url, "tcp://h:2375");
    ok(&ep, "tcp://h:2376///");
    ck_assert_str_eq(ep.target.base_url, "http://h:2376");
    ok(&ep, "tcp://h:2376/base/");
    ck_assert_str_eq(ep.target.base_url, "http://h:2376/base");
    ok(&ep, "h.example:1234"); /* no scheme: tcp */
    ck_assert_str_eq(ep.url, "tcp://h.example:1234");
    ok(&ep, "tcp://[::1]:2376");
    ck_assert_str_eq(ep.target.base_url, "http://[::1]:2376");
    ok(&ep, "tcp://");
    ck_assert_str_eq(ep.url, "tcp://localhost:2375");
    ok(&ep, " tcp://h:1 \n"); /* trimmed, as the CLI does */
    ck_assert_str_eq(ep.url, "tcp://h:1");
}
END_TEST

START_TEST(test_tls_rules)
{
    struct docker_endpoint ep;
    char certs[300];
    snprintf(certs, sizeof certs, "%s/certs", cfg);
    write_file(certs, "ca.pem", "pem");
    /* DOCKER_CERT_PATH alone says where, never whether. */
    setenv("DOCKER_CERT_PATH", certs, 1);
    ok(&ep, "tcp://h:2376");
    ck_assert_str_eq(ep.target.base_url, "http://h:2376");
    ck_assert(!ep.tls && !ep.target.ca);

    /* Verifying, with only a CA: the missing client files are skipped. */
    setenv("DOCKER_TLS_VERIFY", "1", 1);
    ok(&ep, "tcp://h:2376");
    ck_assert_str_eq(ep.target.base_url, "https://h:2376");
    ck_assert(ep.tls && ep.verify && ep.target.verify);
    ck_assert_str_eq(ep.target.ca, ep.ca);
    ck_assert_str_eq(strrchr(ep.ca, '/'), "/ca.pem");
    ck_assert_ptr_null(ep.target.cert);
    ck_assert_ptr_null(ep.target.key);
    write_file(certs, "cert.pem", "pem"); /* a certificate needs its key */
    ok(&ep, "tcp://h:2376");
    ck_assert_ptr_null(ep.target.cert);
    write_file(certs, "key.pem", "pem");
    ok(&ep, "tcp://h:2376");
    ck_assert_str_eq(strrchr(ep.target.cert, '/'), "/cert.pem");
    ck_assert_str_eq(strrchr(ep.target.key, '/'), "/key.pem");

    /* DOCKER_TLS: TLS without verification. */
    unsetenv("DOCKER_TLS_VERIFY");
    setenv("DOCKER_TLS", "1", 1);
    ok(&ep, "tcp://h:2376");
    ck_assert(ep.tls && !ep.verify && !ep.target.verify);
    ck_assert_str_eq(ep.target.base_url, "https://h:2376");

    /* Without DOCKER_CERT_PATH the files are in DOCKER_CONFIG. */
    unsetenv("DOCKER_CERT_PATH");
    setenv("DOCKER_TLS_VERIFY", "1", 1);
    ok(&ep, "tcp://h:2376");
    char want[400];
    snprintf(want, sizeof want, "%s/ca.pem", cfg);
    ck_assert_str_eq(ep.target.ca, want);
}
END_TEST

START_TEST(test_ssh)
{
    struct docker_endpoint ep;
    ok(&ep, "ssh://me@host.example:2222");
    ck_assert(ep.ssh);
    ck_assert_str_eq(ep.ssh_user, "me");
    ck_assert_str_eq(ep.ssh_host, "host.example");
    ck_assert_uint_eq(ep.ssh_port, 2222);
    ok(&ep, "ssh://host");
    ck_assert_str_eq(ep.ssh_user, "");
    ck_assert_str_eq(ep.ssh_host, "host");
    ck_assert_uint_eq(ep.ssh_port, 0);
    ck_assert(!ep.tls);
}
END_TEST

START_TEST(test_bad)
{
    bad("npipe:////./pipe/docker", "--docker 'npipe:////./pipe/docker': named pipes "
                                   "are Windows only");
    bad("http://h:2375",
        "--docker 'http://h:2375': unknown scheme (want unix:///path, "
        "tcp://host[:port] or ssh://[user@]host[:port])");
    bad("unix://relative", "--docker 'unix://relative': want an absolute path");
    bad("tcp://h:0", "--docker 'tcp://h:0': bad port");
    bad("tcp://h:99999", "--docker 'tcp://h:99999': bad port");
    bad("tcp://h:x", "--docker 'tcp://h:x': bad port");
    bad("tcp://[::1", "--docker 'tcp://[::1': unclosed '['");
    bad("ssh://", "--docker 'ssh://': no host");
    bad("ssh://me@", "--docker 'ssh://me@': no host");
    bad("ssh://h/path", "--docker 'ssh://h/path': no path, query or fragment allowed "
                        "after the host");
    setenv("DOCKER_HOST", "tcp://tcp://h", 1);
    bad(NULL, "DOCKER_HOST 'tcp://tcp://h': more than one scheme");
}
END_TEST

START_TEST(test_order)
{
    struct docker_endpoint ep;
    char err[600], cfgfile[400], want[600];
    make_context("remote", "tcp://10.1.1.1:2376", false, NULL);
    make_context("other", "tcp://10.2.2.2:2375", false, NULL);
    snprintf(cfgfile, sizeof cfgfile, "%s/config.json", cfg);
    write_file(cfg, "config.json", "{\"currentContext\": \"remote\"}");

    ok(&ep, NULL);
    ck_assert_str_eq(ep.url, "tcp://10.1.1.1:2376");
    snprintf(want, sizeof want, "context 'remote' (%s)", cfgfile);
    ck_assert_str_eq(ep.source, want);
    ck_assert(!ep.tls);

    setenv("DOCKER_CONTEXT", "other", 1);
    ok(&ep, NULL);
    ck_assert_str_eq(ep.url, "tcp://10.2.2.2:2375");
    ck_assert_str_eq(ep.source, "DOCKER_CONTEXT=other");

    setenv("DOCKER_HOST", "tcp://10.3.3.3:2375", 1);
    ok(&ep, NULL);
    ck_assert_str_eq(ep.url, "tcp://10.3.3.3:2375");
    ck_assert_str_eq(ep.source, "DOCKER_HOST");

    ok(&ep, "unix:///x.sock");
    ck_assert_str_eq(ep.source, "--docker");

    char line[9000];
    docker_endpoint_describe(&ep, line, sizeof line);
    ck_assert_str_eq(line, "unix:///x.sock (from --docker; unix socket)");

    unsetenv("DOCKER_HOST");
    setenv("DOCKER_CONTEXT", "default", 1);
    ok(&ep, NULL);
    ck_assert_str_eq(ep.url, "unix:///var/run/docker.sock");
    ck_assert_str_eq(ep.source, "DOCKER_CONTEXT=default");

    setenv("DOCKER_CONTEXT", "nope", 1);
    ck_assert_int_eq(docker_endpoint_resolve(&ep, NULL, err, sizeof err), -1);
    ck_assert_msg(strncmp(err, "context 'nope' (DOCKER_CONTEXT): no such context (no ",
                          53) == 0,
                  "%s", err);
}
END_TEST

START_TEST(test_default)
{
    struct docker_endpoint ep;
    ok(&ep, NULL); /* no config.json at all */
    ck_assert_str_eq(ep.url, "unix:///var/run/docker.sock");
    ck_assert_str_eq(ep.source, "default");
    ck_assert_str_eq(ep.warning, "");
    /* TLS asked for and no host: the CLI's tcp://localhost:2376. */
    setenv("DOCKER_TLS_VERIFY", "1", 1);
    ok(&ep, NULL);
    ck_assert_str_eq(ep.target.base_url, "https://localhost:2376");
    unsetenv("DOCKER_TLS_VERIFY");
    /* A broken config.json: the CLI warns and goes on without it. */
    write_file(cfg, "config.json", "{\"currentContext\": ");
    ok(&ep, NULL);
    ck_assert_str_eq(ep.url, "unix:///var/run/docker.sock");
    ck_assert_msg(strstr(ep.warning, "config.json: not JSON"), "%s", ep.warning);
    write_file(cfg, "config.json", "{\"currentContext\": \"default\"}");
    ok(&ep, NULL);
    ck_assert_str_eq(ep.url, "unix:///var/run/docker.sock");
}
END_TEST

START_TEST(test_context_tls)
{
    struct docker_endpoint ep;
    char line[9000];
    setenv("DOCKER_CONTEXT", "sec", 1);
    make_context("sec", "tcp://10.1.1.1:2376/", false, "ca.pem cert.pem key.pem");
    /* The environment's TLS has no say over a context's. */
    setenv("DOCKER_TLS", "1", 1);
    ok(&ep, NULL);
    ck_assert(ep.tls && ep.verify);
    ck_assert_str_eq(ep.target.base_url, "https://10.1.1.1:2376");
    ck_assert_str_eq(strrchr(ep.target.cert, '/'), "/cert.pem");
    ck_assert_msg(strstr(ep.target.ca, "/contexts/tls/"), "%s", ep.target.ca);
    docker_endpoint_describe(&ep, line, sizeof line);
    ck_assert_str_eq(
        line, "tcp://10.1.1.1:2376 (from DOCKER_CONTEXT=sec; TLS, server verified)");

    make_context("skip", "tcp://10.1.1.1:2376", true, NULL);
    setenv("DOCKER_CONTEXT", "skip", 1);
    ok(&ep, NULL);
    ck_assert(ep.tls && !ep.verify);
    ck_assert_ptr_null(ep.target.ca);
    docker_endpoint_describe(&ep, line, sizeof line);
    ck_assert_str_eq(
        line,
        "tcp://10.1.1.1:2376 (from DOCKER_CONTEXT=skip; TLS, server NOT verified)");

    make_context("plain", "tcp://10.1.1.1:2375", false, NULL);
    setenv("DOCKER_CONTEXT", "plain", 1);
    ok(&ep, NULL);
    ck_assert(!ep.tls);
}
END_TEST

START_TEST(test_bad_context)
{
    char id[65], dir[400], err[900];
    struct docker_endpoint ep;
    setenv("DOCKER_CONTEXT", "broken", 1);
    sha256_hex("broken", 6, id);
    snprintf(dir, sizeof dir, "%s/contexts/meta/%s", cfg, id);
    write_file(dir, "meta.json", "{\"Endpoints\":");
    ck_assert_int_eq(docker_endpoint_resolve(&ep, NULL, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "context 'broken' (DOCKER_CONTEXT): ") &&
                      strstr(err, dir) && strstr(err, "not JSON"),
                  "%s", err);
    write_file(dir, "meta.json", "{\"Endpoints\":{}}");
    ck_assert_int_eq(docker_endpoint_resolve(&ep, NULL, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "has no Endpoints.docker.Host"), "%s", err);
    make_context("broken", "ftp://x", false, NULL);
    ck_assert_int_eq(docker_endpoint_resolve(&ep, NULL, err, sizeof err), -1);
    ck_assert_msg(strncmp(err,
                          "context 'broken' (DOCKER_CONTEXT) host 'ftp://x': unknown "
                          "scheme",
                          59) == 0,
                  "%s", err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("docker_endpoint");
    TCase *tc = tcase_create("docker_endpoint");
    tcase_add_checked_fixture(tc, clean_env, teardown);
    tcase_add_test(tc, test_unix);
    tcase_add_test(tc, test_tcp_forms);
    tcase_add_test(tc, test_tls_rules);
    tcase_add_test(tc, test_ssh);
    tcase_add_test(tc, test_bad);
    tcase_add_test(tc, test_order);
    tcase_add_test(tc, test_default);
    tcase_add_test(tc, test_context_tls);
    tcase_add_test(tc, test_bad_context);
    suite_add_tcase(s, tc);
    return check_run(s);
}
