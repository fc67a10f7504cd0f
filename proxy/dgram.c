#include "berth/dgram.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "berth/log.h"

struct dgram_batch *dgram_batch_new(void)
{
    return malloc(sizeof(struct dgram_batch));
}

void dgram_batch_free(struct dgram_batch *b) { free(b); }

int dgram_track_local(int fd, const struct addr *bound, bool *track)
{
    *track = false;
    if (!addr_is_any(bound))
        return 0;
    int one = 1;
    int r = bound->ss.ss_family == AF_INET
                ? setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one)
                : setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
    if (r < 0)
        return -1;
    *track = true;
    return 0;
}

void reply_src_read(const struct msghdr *h, struct reply_src *src)
{
    src->set = false;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(h); cm;
         cm = CMSG_NXTHDR((struct msghdr *)h, cm)) {
        if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(cm), sizeof pi);
            /* Answer from the destination the client used, on whichever
             * interface routing picks. */
            src->v4 = (struct in_pktinfo){.ipi_spec_dst = pi.ipi_addr};
            src->set = true;
        } else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
            memcpy(&src->v6, CMSG_DATA(cm), sizeof src->v6);
            src->set = true;
        }
    }
}

void reply_src_write(const struct reply_src *src, int family, struct msghdr *h,
                     char *ctrl)
{
    h->msg_control = NULL;
    h->msg_controllen = 0;
    if (!src->set)
        return;
    memset(ctrl, 0, DGRAM_CTRL_LEN);
    h->msg_control = ctrl;
    struct cmsghdr *cm = (struct cmsghdr *)(void *)ctrl;
    if (family == AF_INET) {
        h->msg_controllen = CMSG_SPACE(sizeof src->v4);
        *cm = (struct cmsghdr){.cmsg_len = CMSG_LEN(sizeof src->v4),
                               .cmsg_level = IPPROTO_IP,
                               .cmsg_type = IP_PKTINFO};
        memcpy(CMSG_DATA(cm), &src->v4, sizeof src->v4);
    } else {
        h->msg_controllen = CMSG_SPACE(sizeof src->v6);
        *cm = (struct cmsghdr){.cmsg_len = CMSG_LEN(sizeof src->v6),
                               .cmsg_level = IPPROTO_IPV6,
                               .cmsg_type = IPV6_PKTINFO};
        memcpy(CMSG_DATA(cm), &src->v6, sizeof src->v6);
    }
}

int dgram_recv_batch(int fd, const struct dgram_recv *r, int n, bool track,
                     const char *label)
{
    for (int i = 0; i < n; i++) {
        r->iov[i] = (struct iovec){r->data + (size_t)i * r->cap, r->cap};
        r->msgs[i].msg_hdr = (struct msghdr){.msg_name = &r->peer[i].ss,
                                             .msg_namelen = sizeof r->peer[i].ss,
                                             .msg_iov = &r->iov[i],
                                             .msg_iovlen = 1,
                                             .msg_control = track ? r->ctrl[i] : NULL,
                                             .msg_controllen = track ? DGRAM_CTRL_LEN
                                                                     : 0};
    }
    int got = recvmmsg(fd, r->msgs, (unsigned)n, MSG_DONTWAIT, NULL);
    if (got < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            log_debug("%s: recv: %s", label, strerror(errno));
        return 0;
    }
    for (int i = 0; i < got; i++)
        r->peer[i].len = r->msgs[i].msg_hdr.msg_namelen;
    return got;
}

int dgram_send_batch(int fd, struct mmsghdr *msgs, int n, const char *label)
{
    int done = 0, dropped = 0;
    while (done < n) {
        int r = sendmmsg(fd, msgs + done, (unsigned)(n - done), MSG_DONTWAIT);
        if (r > 0) {
            done += r;
            continue;
        }
        log_debug("%s: send: %s; datagram dropped", label, strerror(errno));
        done++;
        dropped++;
    }
    return dropped;
}

struct dgram_out *dgram_out_new(void)
{
    struct dgram_out *o = malloc(sizeof *o);
    if (o)
        o->n = 0;
    return o;
}

void dgram_out_free(struct dgram_out *o) { free(o); }

void dgram_out_queued(struct dgram_out *o, int k, int fd, const char *label)
{
    for (int i = o->n; i < o->n + k; i++) {
        o->fd[i] = fd;
        o->label[i] = label;
    }
    o->n += k;
}

int dgram_out_flush(struct dgram_out *o)
{
    int dropped = 0;
    for (int start = 0, i = 1; start < o->n; i++) {
        if (i == o->n || o->fd[i] != o->fd[start]) {
            dropped += dgram_send_batch(o->fd[start], o->b.msgs + start, i - start,
                                        o->label[start]);
            start = i;
        }
    }
    o->n = 0;
    return dropped;
}

/* Moves slot from to slot to: the header points into its own slot's
 * buffers, so those move with it. */
static void out_move(struct dgram_out *o, int to, int from)
{
    struct dgram_batch *b = &o->b;
    struct msghdr *h = &b->msgs[from].msg_hdr;
    size_t len = b->iov[from].iov_len;
    memcpy(b->data[to], b->data[from], len);
    memcpy(&b->peer[to], &b->peer[from], sizeof b->peer[to]);
    memcpy(b->ctrl[to], b->ctrl[from], DGRAM_CTRL_LEN);
    b->iov[to] = (struct iovec){b->data[to], len};
    b->msgs[to].msg_hdr =
        (struct msghdr){.msg_name = h->msg_name ? &b->peer[to].ss : NULL,
                        .msg_namelen = h->msg_namelen,
                        .msg_iov = &b->iov[to],
                        .msg_iovlen = 1,
                        .msg_control = h->msg_control ? b->ctrl[to] : NULL,
                        .msg_controllen = h->msg_controllen};
    o->fd[to] = o->fd[from];
    o->label[to] = o->label[from];
}

void dgram_out_forget(struct dgram_out *o, int fd)
{
    int kept = 0;
    for (int i = 0; i < o->n; i++) {
        if (o->fd[i] == fd)
            continue;
        if (kept != i)
            out_move(o, kept, i);
        kept++;
    }
    o->n = kept;
}
