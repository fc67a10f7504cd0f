/* The --admin HTTP listener on a real event loop and loopback socket: a
 * registered path answers GET and HEAD (HEAD: the GET's headers, no body),
 * an unknown path 404, another method 405 naming the allowed ones, one
 * connection carries a HEAD then a GET, and an address in use is refused
 * naming it. */
#include "check_run.h"

#include <event2/buffer.h>
#include <event2/http.h>

#include "berth/admin.h"
#include "berth/metrics.h"
#include "looptest.h"

static void hello(struct evhttp_request *req, void *arg)
{
    int *calls = arg;
    (*calls)++;
    struct evbuffer *body = evbuffer_new();
    ck_assert_ptr_nonnull(body);
    evbuffer_add_printf(body, "hello\n");
    metrics_http_reply(req, 200, "OK", "text/plain", body);
    evbuffer_free(body);
}

struct fx {
    struct event_base *base;
    struct admin *a;
    struct addr at;
    int calls;
};

/* A free loopback port: bound, read back, closed, then taken by admin. */
static void fx_start(struct fx *f)
{
    f->base = event_base_new();
    ck_assert_ptr_nonnull(f->base);
    int probe = t_bind("127.0.0.1", SOCK_STREAM, &f->at);
    close(probe);
    char err[256] = "";
    f->a = admin_new(f->base, &f->at, err, sizeof err);
    ck_assert_msg(f->a != NULL, "admin_new: %s", err);
    f->calls = 0;
    ck_assert_int_eq(admin_route(f->a, "/hello", hello, &f->calls), 0);
}

static void fx_stop(struct fx *f)
{
    admin_free(f->a);
    event_base_free(f->base);
}

/* Sends req on fd and reads until want bytes came or the peer closed;
 * returns what came (static buffer). */
static const char *ask(struct fx *f, int fd, const char *req, size_t want)
{
    static char got[4096];
    size_t n = 0;
    t_send_all(f->base, fd, req, strlen(req));
    while (n < want && n < sizeof got - 1) {
        ssize_t r = t_recv(f->base, fd, got + n, sizeof got - 1 - n, t_patience(3000));
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    got[n] = '\0';
    return got;
}

START_TEST(test_get_head_404_405)
{
    struct fx f;
    fx_start(&f);
    int fd = t_connect(&f.at);
    const char *r = ask(&f, fd, "GET /hello HTTP/1.0\r\n\r\n", 4000);
    ck_assert_msg(strncmp(r, "HTTP/1.1 200", 12) == 0 ||
                      strncmp(r, "HTTP/1.0 200", 12) == 0,
                  "%s", r);
    ck_assert_ptr_nonnull(strstr(r, "\r\n\r\nhello\n"));
    close(fd);

    fd = t_connect(&f.at);
    r = ask(&f, fd, "GET /nope HTTP/1.0\r\n\r\n", 4000);
    ck_assert_ptr_nonnull(strstr(r, " 404 "));
    close(fd);

    fd = t_connect(&f.at);
    r = ask(&f, fd, "POST /hello HTTP/1.0\r\nContent-Length: 0\r\n\r\n", 4000);
    ck_assert_msg(strstr(r, " 405 ") != NULL, "%s", r);
    ck_assert_ptr_nonnull(strstr(r, "Allow: GET, HEAD"));
    close(fd);
    ck_assert_int_eq(f.calls, 1); /* 404 and 405 never reached the handler */
    fx_stop(&f);
}
END_TEST

/* One keep-alive connection: HEAD carries Content-Length and nothing after
 * its headers, so the GET that follows is read as its own reply. */
START_TEST(test_head_then_get)
{
    struct fx f;
    fx_start(&f);
    int fd = t_connect(&f.at);
    const char *r = ask(&f, fd, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n", 1);
    /* Whatever else comes within a moment belongs to the HEAD. */
    char head[4096];
    snprintf(head, sizeof head, "%s", r);
    t_pump_for(f.base, 100);
    ssize_t more = recv(fd, head + strlen(head), sizeof head - strlen(head) - 1,
                        MSG_DONTWAIT);
    if (more > 0)
        head[strlen(head) + (size_t)more] = '\0';
    ck_assert_msg(strstr(head, " 200 ") != NULL, "%s", head);
    ck_assert_ptr_nonnull(strstr(head, "Content-Length: 6\r\n"));
    const char *end = strstr(head, "\r\n\r\n");
    ck_assert_ptr_nonnull(end);
    ck_assert_str_eq(end + 4, ""); /* no body after a HEAD's headers */
    r = ask(&f, fd, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            4000);
    ck_assert_msg(strncmp(r, "HTTP/1.1 200", 12) == 0, "%s", r);
    ck_assert_ptr_nonnull(strstr(r, "\r\n\r\nhello\n"));
    close(fd);
    fx_stop(&f);
}
END_TEST

START_TEST(test_address_in_use_named)
{
    struct fx f;
    fx_start(&f);
    char err[256] = "", want[128];
    struct admin *again = admin_new(f.base, &f.at, err, sizeof err);
    ck_assert_ptr_null(again);
    addr_format(&f.at, want, sizeof want);
    ck_assert_msg(strstr(err, want) != NULL, "'%s' does not name %s", err, want);
    fx_stop(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("core");
    t_tcase_timeout(tc, 30);
    tcase_add_test(tc, test_get_head_404_405);
    tcase_add_test(tc, test_head_then_get);
    tcase_add_test(tc, test_address_in_use_named);
    suite_add_tcase(s, tc);
    return check_run(s);
}
