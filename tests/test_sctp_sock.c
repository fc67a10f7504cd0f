/* SCTP's message metadata without an SCTP kernel: the SCTP_RCVINFO of a
 * received msghdr read wherever it sits among the control messages, the
 * unordered flag kept and the rest of rcv_flags dropped, a message without
 * one left alone, a truncated one ignored; and on a kernel with no SCTP the
 * listener's one-line reason. What needs a real association (pieces, EOR,
 * stream and PPID end to end) runs in the QEMU guest (tests/sctp/). */
#include "check_run.h"
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/sctp.h> /* after <sys/socket.h>, whose types it uses */

#include "berth/sctp_sock.h"
#include "berth/sockaddr.h"

/* Control data holding an unrelated message, then an SCTP_RCVINFO. */
struct two {
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct sctp_rcvinfo))];
    } u;
};

static struct msghdr with_rcvinfo(struct two *c, const struct sctp_rcvinfo *ri,
                                  size_t ri_len)
{
    memset(c, 0, sizeof *c);
    struct msghdr mh = {.msg_control = c->u.buf, .msg_controllen = sizeof c->u.buf};
    struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SO_TIMESTAMP;
    h->cmsg_len = CMSG_LEN(sizeof(int));
    h = CMSG_NXTHDR(&mh, h);
    h->cmsg_level = IPPROTO_SCTP;
    h->cmsg_type = SCTP_RCVINFO;
    h->cmsg_len = CMSG_LEN(ri_len);
    memcpy(CMSG_DATA(h), ri, sizeof *ri);
    return mh;
}

START_TEST(test_read_info)
{
    struct sctp_rcvinfo ri = {.rcv_sid = 7,
                              .rcv_ssn = 99,
                              .rcv_flags = SCTP_UNORDERED | 0x100,
                              .rcv_ppid = htonl(46), /* Diameter */
                              .rcv_tsn = 1234};
    struct two c;
    struct msghdr mh = with_rcvinfo(&c, &ri, sizeof ri);
    struct sctp_msg_info info = {0};
    ck_assert(sctp_sock_read_info(&mh, &info));
    ck_assert_uint_eq(info.stream, 7);
    ck_assert_uint_eq(info.ppid, htonl(46));
    /* Only the flag a send can carry on. */
    ck_assert_uint_eq(info.flags, SCTP_UNORDERED);

    ri.rcv_flags = 0;
    mh = with_rcvinfo(&c, &ri, sizeof ri);
    ck_assert(sctp_sock_read_info(&mh, &info));
    ck_assert_uint_eq(info.flags, 0);
}
END_TEST

START_TEST(test_no_info)
{
    struct sctp_msg_info info = {.stream = 3, .flags = 0, .ppid = 5};
    struct msghdr none = {0};
    ck_assert(!sctp_sock_read_info(&none, &info));
    /* Cut short: not read as one. */
    struct sctp_rcvinfo ri = {.rcv_sid = 9};
    struct two c;
    struct msghdr mh = with_rcvinfo(&c, &ri, sizeof ri - 4);
    ck_assert(!sctp_sock_read_info(&mh, &info));
    ck_assert_uint_eq(info.stream, 3);
    ck_assert_uint_eq(info.ppid, 5);
}
END_TEST

static struct sctp_assoc_change change(uint16_t state)
{
    return (struct sctp_assoc_change){.sac_type = SCTP_ASSOC_CHANGE,
                                      .sac_length = sizeof(struct sctp_assoc_change),
                                      .sac_state = state};
}

/* The association's end shows only as a notification once berth passed
 * the other side's shutdown on: read as the end of the stream; a lost
 * association as a reset; anything else passed over. */
START_TEST(test_notices)
{
    struct sctp_assoc_change c = change(SCTP_SHUTDOWN_COMP);
    ck_assert_int_eq(sctp_sock_notice(&c, sizeof c), SCTP_NOTICE_ENDED);
    c = change(SCTP_COMM_LOST);
    ck_assert_int_eq(sctp_sock_notice(&c, sizeof c), SCTP_NOTICE_LOST);
    c = change(SCTP_CANT_STR_ASSOC);
    ck_assert_int_eq(sctp_sock_notice(&c, sizeof c), SCTP_NOTICE_LOST);
    c = change(SCTP_COMM_UP);
    ck_assert_int_eq(sctp_sock_notice(&c, sizeof c), SCTP_NOTICE_NONE);
    c = change(SCTP_SHUTDOWN_COMP);
    ck_assert_int_eq(sctp_sock_notice(&c, sizeof c - 1), SCTP_NOTICE_NONE);
    c.sac_type = SCTP_SHUTDOWN_EVENT;
    ck_assert_int_eq(sctp_sock_notice(&c, sizeof c), SCTP_NOTICE_NONE);
}
END_TEST

/* A socket of another protocol refuses SCTP's options: the error reaches
 * the caller (a listener names it) instead of a socket half set up. */
START_TEST(test_setup_wrong_socket)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(sctp_sock_setup(fd), -1);
    ck_assert_int_ne(errno, 0);
    close(fd);
}
END_TEST

/* Where the kernel has SCTP this says nothing; where it has not (as on the
 * machines that build berth), the listener says so in one line. */
START_TEST(test_listener_without_sctp)
{
    int probe = socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
    if (probe >= 0) {
        close(probe);
        return;
    }
    struct addr a;
    ck_assert_int_eq(addr_from_ip(&a, "127.0.0.1", 0), 0);
    char err[256];
    ck_assert_int_eq(sock_listener(&a, SOCK_STREAM, IPPROTO_SCTP, -1, false, err,
                                   sizeof err),
                     -1);
    ck_assert_msg(strstr(err, "listen sctp 127.0.0.1:0: this kernel has no SCTP (") ==
                      err,
                  "%s", err);
    ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sctp_sock");
    TCase *tc = tcase_create("sctp_sock");
    tcase_add_test(tc, test_read_info);
    tcase_add_test(tc, test_no_info);
    tcase_add_test(tc, test_notices);
    tcase_add_test(tc, test_setup_wrong_socket);
    tcase_add_test(tc, test_listener_without_sctp);
    suite_add_tcase(s, tc);
    return check_run(s);
}
