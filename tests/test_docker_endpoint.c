/* Finding the Docker Engine API from a URL and the docker CLI's TLS
 * environment. */
#include "check_run.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "berth/docker_endpoint.h"

START_TEST(test_unix)
{
    struct docker_endpoint ep;
    char err[200];
    ck_assert_int_eq(docker_endpoint_parse(&ep, "unix:///run/docker.sock", err,
                                           sizeof err),
                     0);
    ck_assert_str_eq(ep.target.unix_path, "/run/docker.sock");
    ck_assert_str_eq(ep.target.base_url, "http://docker");
    ck_assert_ptr_null(ep.target.ca);
}
END_TEST

START_TEST(test_tcp_plain_and_tls)
{
    struct docker_endpoint ep;
    char err[200];
    unsetenv("DOCKER_TLS_VERIFY");
    unsetenv("DOCKER_CERT_PATH");
    ck_assert_int_eq(docker_endpoint_parse(&ep, "tcp://10.0.0.1:2375", err,
                                           sizeof err),
                     0);
    ck_assert_str_eq(ep.target.base_url, "http://10.0.0.1:2375");
    ck_assert_ptr_null(ep.target.unix_path);

    setenv("DOCKER_TLS_VERIFY", "1", 1);
    setenv("DOCKER_CERT_PATH", "/etc/docker-certs", 1);
    ck_assert_int_eq(docker_endpoint_parse(&ep, "tcp://10.0.0.1:2376", err,
                                           sizeof err),
                     0);
    ck_assert_str_eq(ep.target.base_url, "https://10.0.0.1:2376");
    ck_assert_str_eq(ep.target.ca, "/etc/docker-certs/ca.pem");
    ck_assert_str_eq(ep.target.cert, "/etc/docker-certs/cert.pem");
    ck_assert_str_eq(ep.target.key, "/etc/docker-certs/key.pem");
    ck_assert(ep.target.verify);

    unsetenv("DOCKER_TLS_VERIFY"); /* certs without verification */
    ck_assert_int_eq(docker_endpoint_parse(&ep, "tcp://h:2376", err, sizeof err), 0);
    ck_assert_str_eq(ep.target.base_url, "https://h:2376");
    ck_assert(!ep.target.verify);
    unsetenv("DOCKER_CERT_PATH");
}
END_TEST

START_TEST(test_bad)
{
    struct docker_endpoint ep;
    char err[200];
    ck_assert_int_eq(docker_endpoint_parse(&ep, "npipe:////./pipe/docker", err,
                                           sizeof err),
                     -1);
    ck_assert_str_eq(
        err,
        "--docker 'npipe:////./pipe/docker': want unix:///path or tcp://host:port");
    ck_assert_int_eq(docker_endpoint_parse(&ep, "unix://relative", err, sizeof err),
                     -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("docker_endpoint");
    TCase *tc = tcase_create("docker_endpoint");
    tcase_add_test(tc, test_unix);
    tcase_add_test(tc, test_tcp_plain_and_tls);
    tcase_add_test(tc, test_bad);
    suite_add_tcase(s, tc);
    return check_run(s);
}
