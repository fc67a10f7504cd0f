/* The datagram techniques on their own: a wildcard socket answers from the
 * address each client wrote to, batches are received whole with their
 * peers, and a batch send drops (and counts) what the kernel refuses while
 * the rest still goes. */
#include "check_run.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>

#include "berth/dgram.h"
#include "looptest.h"

/* A UDP socket connected to a. */
static int connected_to(const struct addr *a)
{
    int fd = t_udp_client(a);
    ck_assert_int_eq(connect(fd, (const struct sockaddr *)&a->ss, a->len), 0);
    return fd;
}

START_TEST(test_reply_from_the_address_written_to)
{
    struct addr any;
    int s = t_bind("0.0.0.0", SOCK_DGRAM, &any);
    bool track = false;
    ck_assert_int_eq(dgram_track_local(s, &any, &track), 0);
    ck_assert(track);
    struct dgram_batch *b = dgram_batch_new();
    ck_assert_ptr_nonnull(b);
    const char *dst[] = {"127.0.0.2", "127.0.0.3"};
    int c[2];
    for (int i = 0; i < 2; i++) {
        struct addr to = t_addr(dst[i], addr_port(&any));
        c[i] = connected_to(&to);
        ck_assert_int_eq(send(c[i], dst[i], strlen(dst[i]), 0),
                         (ssize_t)strlen(dst[i]));
    }
    /* Both datagrams, received in batches as the relays receive them. */
    int n = 0;
    for (int tries = 0; n < 2 && tries < 300; tries++) {
        struct dgram_recv r = {b->msgs + n, b->iov + n,         b->peer + n,
                               b->ctrl + n, (char *)b->data[n], DGRAM_MAX};
        n += dgram_recv_batch(s, &r, DGRAM_BATCH - n, true, "test");
        if (n < 2)
            usleep(10000);
    }
    ck_assert_int_eq(n, 2);
    for (int i = 0; i < 2; i++) {
        struct reply_src src;
        reply_src_read(&b->msgs[i].msg_hdr, &src);
        ck_assert(src.set);
        b->iov[i].iov_len = b->msgs[i].msg_len; /* echo it back */
        b->msgs[i].msg_hdr.msg_namelen = b->peer[i].len;
        reply_src_write(&src, AF_INET, &b->msgs[i].msg_hdr, b->ctrl[i]);
    }
    ck_assert_int_eq(dgram_send_batch(s, b->msgs, 2, "test"), 0);
    for (int i = 0; i < 2; i++) {
        char buf[32];
        struct addr from;
        from.len = sizeof from.ss;
        struct pollfd pfd = {.fd = c[i], .events = POLLIN};
        ck_assert_int_eq(poll(&pfd, 1, 3000), 1);
        ssize_t len = recvfrom(c[i], buf, sizeof buf, 0, (struct sockaddr *)&from.ss,
                               &from.len);
        ck_assert_int_eq(len, (ssize_t)strlen(dst[i]));
        /* The reply comes from the address this client wrote to. */
        char ip[64];
        ck_assert_str_eq(addr_format_ip(&from, ip, sizeof ip), dst[i]);
        ck_assert_uint_eq(addr_port(&from), addr_port(&any));
        close(c[i]);
    }
    dgram_batch_free(b);
    close(s);
}
END_TEST

START_TEST(test_send_batch_drops_what_is_refused)
{
    struct addr at;
    int sink = t_bind("127.0.0.1", SOCK_DGRAM, &at);
    int s = connected_to(&at);
    static char big[70000], small[3] = "ok";
    struct iovec iov[3] = {{small, 2}, {big, sizeof big}, {small, 2}};
    struct mmsghdr m[3];
    memset(m, 0, sizeof m);
    for (int i = 0; i < 3; i++) {
        m[i].msg_hdr.msg_iov = &iov[i];
        m[i].msg_hdr.msg_iovlen = 1;
    }
    /* The middle one is larger than any UDP datagram: refused, dropped,
     * and the third still goes. */
    ck_assert_int_eq(dgram_send_batch(s, m, 3, "test"), 1);
    char buf[8];
    for (int i = 0; i < 2; i++) {
        struct pollfd pfd = {.fd = sink, .events = POLLIN};
        ck_assert_int_eq(poll(&pfd, 1, 3000), 1);
        ck_assert_int_eq(recv(sink, buf, sizeof buf, 0), 2);
    }
    ck_assert_int_eq(recv(sink, buf, sizeof buf, MSG_DONTWAIT), -1);
    close(s);
    close(sink);
}
END_TEST

START_TEST(test_specific_address_needs_no_tracking)
{
    struct addr at;
    int s = t_bind("127.0.0.1", SOCK_DGRAM, &at);
    bool track = true;
    ck_assert_int_eq(dgram_track_local(s, &at, &track), 0);
    ck_assert(!track);
    struct reply_src none = {.set = false};
    struct msghdr h = {0};
    char ctrl[DGRAM_CTRL_LEN];
    reply_src_write(&none, AF_INET, &h, ctrl);
    ck_assert_ptr_null(h.msg_control);
    ck_assert_uint_eq(h.msg_controllen, 0);
    close(s);
}
END_TEST

/* Queues one datagram on o for fd, to to, from src when set. */
static void queue(struct dgram_out *o, int fd, const struct addr *to,
                  const struct reply_src *src, const char *text)
{
    struct dgram_batch *b = &o->b;
    int i = o->n;
    size_t len = strlen(text);
    memcpy(b->data[i], text, len);
    b->iov[i] = (struct iovec){b->data[i], len};
    b->peer[i] = *to;
    b->msgs[i].msg_hdr = (struct msghdr){.msg_name = &b->peer[i].ss,
                                         .msg_namelen = to->len,
                                         .msg_iov = &b->iov[i],
                                         .msg_iovlen = 1};
    reply_src_write(src, AF_INET, &b->msgs[i].msg_hdr, b->ctrl[i]);
    dgram_out_queued(o, 1, fd, "test");
}

static void expect(int sink, const char *text, const char *from_ip, uint16_t port)
{
    char buf[32], ip[64];
    struct addr from;
    from.len = sizeof from.ss;
    struct pollfd pfd = {.fd = sink, .events = POLLIN};
    ck_assert_int_eq(poll(&pfd, 1, 3000), 1);
    ssize_t len = recvfrom(sink, buf, sizeof buf, 0, (struct sockaddr *)&from.ss,
                           &from.len);
    ck_assert_int_eq(len, (ssize_t)strlen(text));
    ck_assert(memcmp(buf, text, (size_t)len) == 0);
    ck_assert_str_eq(addr_format_ip(&from, ip, sizeof ip), from_ip);
    ck_assert_uint_eq(addr_port(&from), port);
}

/* The outgoing queue: datagrams for two sockets, each with its own
 * destination and source; those of a socket that closes are dropped and
 * the others, moved up, still leave whole, in order, from their source. */
START_TEST(test_out_queue_forgets_a_socket)
{
    struct addr a_at, b_at, ka_at, kb_at;
    int a = t_bind("127.0.0.1", SOCK_DGRAM, &a_at);
    int b = t_bind("0.0.0.0", SOCK_DGRAM, &b_at);
    int ka = t_bind("127.0.0.1", SOCK_DGRAM, &ka_at);
    int kb = t_bind("127.0.0.1", SOCK_DGRAM, &kb_at);
    struct reply_src none = {.set = false}, from2 = {.set = true};
    inet_pton(AF_INET, "127.0.0.2", &from2.v4.ipi_spec_dst);
    struct dgram_out *o = dgram_out_new();
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(o->n, 0);
    queue(o, a, &ka_at, &none, "a1");
    queue(o, b, &kb_at, &from2, "b1");
    queue(o, a, &ka_at, &none, "a2");
    queue(o, b, &kb_at, &from2, "b2");
    queue(o, a, &ka_at, &none, "a3");
    dgram_out_forget(o, a);
    ck_assert_int_eq(o->n, 2);
    queue(o, a, &ka_at, &none, "a4");
    ck_assert_int_eq(dgram_out_flush(o), 0);
    ck_assert_int_eq(o->n, 0);
    expect(kb, "b1", "127.0.0.2", addr_port(&b_at));
    expect(kb, "b2", "127.0.0.2", addr_port(&b_at));
    expect(ka, "a4", "127.0.0.1", addr_port(&a_at));
    char buf[8];
    ck_assert_int_eq(recv(ka, buf, sizeof buf, MSG_DONTWAIT), -1);
    ck_assert_int_eq(recv(kb, buf, sizeof buf, MSG_DONTWAIT), -1);
    ck_assert_int_eq(dgram_out_flush(o), 0); /* empty: nothing more */
    ck_assert_int_eq(recv(ka, buf, sizeof buf, MSG_DONTWAIT), -1);
    dgram_out_free(o);
    dgram_out_free(NULL);
    close(a);
    close(b);
    close(ka);
    close(kb);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dgram");
    TCase *tc = tcase_create("dgram");
    tcase_add_test(tc, test_reply_from_the_address_written_to);
    tcase_add_test(tc, test_send_batch_drops_what_is_refused);
    tcase_add_test(tc, test_specific_address_needs_no_tracking);
    tcase_add_test(tc, test_out_queue_forgets_a_socket);
    suite_add_tcase(s, tc);
    return check_run(s);
}
