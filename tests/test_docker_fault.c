/* Every failure class berth explains when it cannot follow the engine:
 * from libcurl's code, errno and text (as OpenSSL words them) to one line
 * naming the file or address and a hint. */
#include "check_run.h"
#include <check.h>
#include <errno.h>
#include <string.h>

#include "berth/curl_api.h"
#include "berth/docker_fault.h"

static const struct http_target sock = {.unix_path = "/run/x/docker.sock",
                                        .base_url = "http://localhost"};
static const struct http_target plain = {.base_url = "http://10.0.0.5:2375"};
static const struct http_target tls = {.base_url = "https://10.0.0.5:2376",
                                       .ca = "/c/ca.pem",
                                       .cert = "/c/cert.pem",
                                       .key = "/c/key.pem",
                                       .verify = true};
static const struct http_target tls_nocert = {.base_url = "https://10.0.0.5:2376",
                                              .ca = "/c/ca.pem",
                                              .verify = true};

static char out[600];

static const char *explain(const struct http_target *t, int code, int err,
                           const char *text)
{
    struct http_error e = {.code = code, .os_errno = err, .text = text};
    docker_fault_explain(t, &e, 0, "", 0, out, sizeof out);
    return out;
}

static void has(const char *got, const char *want)
{
    ck_assert_msg(strstr(got, want) != NULL, "\"%s\" lacks \"%s\"", got, want);
}

START_TEST(test_unix_socket)
{
    const char *t = "cannot connect to /run/x/docker.sock";
    ck_assert_str_eq(explain(&sock, CURLE_COULDNT_CONNECT, ENOENT, t),
                     "cannot connect to /run/x/docker.sock: no such socket (is "
                     "dockerd running? is the path right?)");
    ck_assert_str_eq(explain(&sock, CURLE_COULDNT_CONNECT, EACCES, t),
                     "cannot connect to /run/x/docker.sock: permission denied (add "
                     "yourself to the docker group or run as root)");
    has(explain(&sock, CURLE_COULDNT_CONNECT, ECONNREFUSED, t),
        "/run/x/docker.sock: connection refused");
    has(out, "is dockerd running?");
    has(explain(&sock, CURLE_COULDNT_CONNECT, 0, t), "/run/x/docker.sock");
    has(explain(&sock, CURLE_GOT_NOTHING, 0, "Empty reply from server"),
        "closed the connection without answering");
}
END_TEST

START_TEST(test_tcp)
{
    has(explain(&plain, CURLE_COULDNT_CONNECT, ECONNREFUSED, "x"),
        "cannot connect to http://10.0.0.5:2375: connection refused");
    has(explain(&plain, CURLE_COULDNT_CONNECT, EHOSTUNREACH, "x"), "No route to host");
    has(explain(&plain, CURLE_COULDNT_RESOLVE_HOST, 0,
                "Could not resolve host: nohost"),
        "cannot resolve the host of http://10.0.0.5:2375");
    has(explain(&plain, CURLE_OPERATION_TIMEDOUT, 0,
                "Connection timed out after 5001"),
        "no answer from http://10.0.0.5:2375 in time");
    /* Plain HTTP to a port that speaks TLS and answers garbage or nothing. */
    has(explain(&plain, CURLE_WEIRD_SERVER_REPLY, 0,
                "Received HTTP/0.9 when not allowed"),
        "does not answer plain HTTP (a TLS port? set DOCKER_TLS_VERIFY=1");
    has(explain(&plain, CURLE_GOT_NOTHING, 0, "Empty reply from server"),
        "a TLS port?");
}
END_TEST

START_TEST(test_tls_server_side)
{
    has(explain(&tls, CURLE_PEER_FAILED_VERIFICATION, 0,
                "SSL certificate problem: unable to get local issuer certificate"),
        "the daemon at https://10.0.0.5:2376 is not trusted: its certificate is not "
        "signed by /c/ca.pem");
    has(explain(
            &tls, CURLE_PEER_FAILED_VERIFICATION, 0,
            "SSL certificate problem: self-signed certificate in certificate chain"),
        "not signed by /c/ca.pem");
    has(explain(&tls, CURLE_PEER_FAILED_VERIFICATION, 0,
                "SSL certificate problem: certificate has expired"),
        "has expired or is not yet valid");
    has(explain(
            &tls, CURLE_PEER_FAILED_VERIFICATION, 0,
            "SSL: no alternative certificate subject name matches target host name "
            "'10.0.0.5'"),
        "is not for that host name");
    has(explain(&tls, CURLE_SSL_CACERT_BADFILE, 0, "error setting certificate file"),
        "cannot use the CA file /c/ca.pem");
    has(explain(&tls, CURLE_SSL_CONNECT_ERROR, 0,
                "error:0A00010B:SSL routines::wrong version number"),
        "does not speak TLS there (a plain HTTP port?");
}
END_TEST

START_TEST(test_tls_client_side)
{
    has(explain(&tls, CURLE_SSL_CERTPROBLEM, 0,
                "could not load PEM client certificate"),
        "cannot use the client certificate /c/cert.pem (key /c/key.pem)");
    has(explain(
            &tls, CURLE_SSL_CONNECT_ERROR, 0,
            "OpenSSL/3.0.11: error:0A000412:SSL routines::sslv3 alert bad certificate"),
        "rejected the client certificate /c/cert.pem");
    /* TLS 1.3 says it after the handshake, on the first read. */
    has(explain(&tls, CURLE_RECV_ERROR, 0,
                "OpenSSL SSL_read: error:0A000412:SSL routines::sslv3 alert bad "
                "certificate, errno 0"),
        "rejected the client certificate");
    has(explain(&tls_nocert, CURLE_RECV_ERROR, 0,
                "OpenSSL SSL_read: error:0A00045C:SSL routines::tlsv13 alert "
                "certificate required, errno 0"),
        "wants a client certificate (set DOCKER_CERT_PATH");
    has(explain(&tls, CURLE_SSL_CONNECT_ERROR, 0,
                "error:0A000415:SSL routines::sslv3 alert certificate expired"),
        "rejected the client certificate /c/cert.pem: expired");
    has(explain(&tls, CURLE_SSL_CONNECT_ERROR, 0, "some other TLS thing"),
        "TLS with https://10.0.0.5:2376 failed: some other TLS thing");
}
END_TEST

START_TEST(test_http_answers)
{
    const char *body = "{\"message\":\"boom: the daemon is sad\"}";
    docker_fault_explain(&sock, NULL, 500, body, strlen(body), out, sizeof out);
    ck_assert_str_eq(out, "HTTP 500 from /run/x/docker.sock: boom: the daemon is sad "
                          "(the daemon's own failure: see its log)");
    const char *go = "Client sent an HTTP request to an HTTPS server.\n";
    docker_fault_explain(&plain, NULL, 400, go, strlen(go), out, sizeof out);
    has(out, "the daemon at http://10.0.0.5:2375 speaks TLS (set DOCKER_TLS_VERIFY=1");
    docker_fault_explain(&plain, NULL, 404, "page not found", 14, out, sizeof out);
    has(out, "HTTP 404 from http://10.0.0.5:2375: page not found (is this a Docker");
    /* berth's own reason, no code: said as is. */
    ck_assert_str_eq(explain(&sock, 0, 0, "answer larger than 64 KiB"),
                     "answer larger than 64 KiB");
}
END_TEST

START_TEST(test_duration)
{
    char b[32];
    ck_assert_str_eq(docker_duration(0, b, sizeof b), "0s");
    ck_assert_str_eq(docker_duration(45400, b, sizeof b), "45s");
    ck_assert_str_eq(docker_duration(133000, b, sizeof b), "2m13s");
    ck_assert_str_eq(docker_duration(3600000 + 5 * 60000, b, sizeof b), "1h05m");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("docker_fault");
    TCase *tc = tcase_create("docker_fault");
    tcase_add_test(tc, test_unix_socket);
    tcase_add_test(tc, test_tcp);
    tcase_add_test(tc, test_tls_server_side);
    tcase_add_test(tc, test_tls_client_side);
    tcase_add_test(tc, test_http_answers);
    tcase_add_test(tc, test_duration);
    suite_add_tcase(s, tc);
    return check_run(s);
}
