#include "berth/sctp_sock.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/uio.h>

#include <linux/sctp.h> /* after <sys/socket.h> (in the header): it uses its types */

int sctp_sock_setup(int fd)
{
    int one = 1;
    struct sctp_event change = {.se_type = SCTP_ASSOC_CHANGE, .se_on = 1};
    if (setsockopt(fd, IPPROTO_SCTP, SCTP_NODELAY, &one, sizeof one) < 0 ||
        setsockopt(fd, IPPROTO_SCTP, SCTP_RECVRCVINFO, &one, sizeof one) < 0 ||
        setsockopt(fd, IPPROTO_SCTP, SCTP_EVENT, &change, sizeof change) < 0)
        return -1;
    return 0;
}

enum sctp_notice sctp_sock_notice(const void *buf, size_t n)
{
    struct sctp_assoc_change ac;
    if (n < sizeof ac)
        return SCTP_NOTICE_NONE;
    memcpy(&ac, buf, sizeof ac);
    if (ac.sac_type != SCTP_ASSOC_CHANGE)
        return SCTP_NOTICE_NONE;
    switch (ac.sac_state) {
    case SCTP_SHUTDOWN_COMP:
        return SCTP_NOTICE_ENDED;
    case SCTP_COMM_LOST:
    case SCTP_CANT_STR_ASSOC:
        return SCTP_NOTICE_LOST;
    default:
        return SCTP_NOTICE_NONE;
    }
}

int sctp_sock_streams(int fd, struct sctp_streams *out)
{
    struct sctp_status st;
    socklen_t len = sizeof st;
    memset(&st, 0, sizeof st);
    if (getsockopt(fd, IPPROTO_SCTP, SCTP_STATUS, &st, &len) < 0)
        return -1;
    *out = (struct sctp_streams){.in = st.sstat_instrms, .out = st.sstat_outstrms};
    return 0;
}

int sctp_sock_init_streams(int fd, uint16_t out, uint16_t in_max)
{
    /* A zero leaves the kernel's value. */
    struct sctp_initmsg im = {.sinit_num_ostreams = out,
                              .sinit_max_instreams = in_max};
    return setsockopt(fd, IPPROTO_SCTP, SCTP_INITMSG, &im, sizeof im);
}

bool sctp_sock_read_info(const struct msghdr *mh, struct sctp_msg_info *info)
{
    for (const struct cmsghdr *c = CMSG_FIRSTHDR(mh); c;
         c = CMSG_NXTHDR((struct msghdr *)mh, (struct cmsghdr *)c)) {
        if (c->cmsg_level != IPPROTO_SCTP || c->cmsg_type != SCTP_RCVINFO ||
            c->cmsg_len < CMSG_LEN(sizeof(struct sctp_rcvinfo)))
            continue;
        struct sctp_rcvinfo ri;
        memcpy(&ri, CMSG_DATA(c), sizeof ri);
        info->stream = ri.rcv_sid;
        info->flags = ri.rcv_flags & SCTP_UNORDERED;
        info->ppid = ri.rcv_ppid;
        return true;
    }
    return false;
}

ssize_t sctp_sock_recv(int fd, void *buf, size_t len, struct sctp_msg_info *info,
                       bool *eor)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(struct sctp_rcvinfo))];
    } control;
    for (;;) {
        struct iovec iov = {.iov_base = buf, .iov_len = len};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = control.buf,
                            .msg_controllen = sizeof control.buf};
        ssize_t n = recvmsg(fd, &mh, 0);
        if (n <= 0)
            return n;
        /* Never in the middle of a message (partial delivery holds them
         * back), so a whole one fits any buffer berth reads into. */
        if (mh.msg_flags & MSG_NOTIFICATION) {
            enum sctp_notice what = mh.msg_flags & MSG_EOR
                                        ? sctp_sock_notice(buf, (size_t)n)
                                        : SCTP_NOTICE_NONE;
            if (what == SCTP_NOTICE_ENDED)
                return 0;
            if (what == SCTP_NOTICE_LOST) {
                errno = ECONNRESET;
                return -1;
            }
            continue;
        }
        sctp_sock_read_info(&mh, info);
        *eor = mh.msg_flags & MSG_EOR;
        return n;
    }
}

ssize_t sctp_sock_send(int fd, const void *buf, size_t len,
                       const struct sctp_msg_info *info)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(struct sctp_sndinfo))];
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = control.buf,
                        .msg_controllen = sizeof control.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = IPPROTO_SCTP;
    c->cmsg_type = SCTP_SNDINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct sctp_sndinfo));
    struct sctp_sndinfo si = {.snd_sid = info->stream,
                              .snd_flags = info->flags & SCTP_UNORDERED,
                              .snd_ppid = info->ppid};
    memcpy(CMSG_DATA(c), &si, sizeof si);
    return sendmsg(fd, &mh, MSG_NOSIGNAL);
}
