/*
 * baseline_uring: a hand-written io_uring echo and HTTP server on one
 * thread, the ceiling that weft's io_uring backend is measured against in
 * the network benches (N1-N3 in benches/README.md). It does not use weft; it
 * needs liburing 2.3 or later.
 *
 * Usage: baseline_uring echo|http PORT
 *   Serves 127.0.0.1:PORT until SIGTERM or SIGINT, then exits 0. The
 *   pinned benches run it as `taskset -c 0 baseline_uring echo 9000`.
 *   BASELINE_RECV=plain replaces multishot recv with one recv per read, to
 *   compare the two.
 *
 * Design:
 * - One ring, one thread. A loop turn is one io_uring_submit_and_wait(),
 *   which submits every SQE queued during the previous turn and waits for
 *   a completion; completions are then reaped in bulk and acknowledged with
 *   one io_uring_cq_advance().
 * - The ring asks for SINGLE_ISSUER | DEFER_TASKRUN, so completion work
 *   runs in this thread only when it waits, instead of interrupting it;
 *   older kernels get COOP_TASKRUN, then no flags.
 * - One multishot accept serves the listener for its whole life.
 * - Reads are multishot recvs into a ring of provided buffers: one SQE per
 *   connection instead of one per read, and in the benches at least as
 *   fast as plain recv. echo sends straight from the provided buffer and
 *   returns it to the ring when the send completes, so a byte is never
 *   copied; a connection has at most one send in flight, because two sends
 *   on one socket may complete out of order. When the ring runs dry the
 *   kernel ends the recv with -ENOBUFS and the connection waits until a
 *   buffer comes back. Kernels without provided-buffer rings or multishot
 *   recv get plain recvs into a per-connection buffer; echo then alternates
 *   recv and send on that buffer.
 * - http answers every complete header block at once. The response is
 *   constant, so what a connection is owed is a byte count into a periodic
 *   stream of responses kept in one static buffer: pipelined requests get
 *   all their responses in one send, and a short send needs no copy.
 * - SIGINT and SIGTERM are blocked and polled through a signalfd in the
 *   ring, so the loop ends between two turns and closes everything.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

#define LISTEN_BACKLOG 4096
#define SQ_ENTRIES 2048
#define CQ_ENTRIES 16384
#define BUF_GROUP 0
#define BUF_COUNT 2048 /* a power of two, as the buffer ring requires */
/* 64 KiB buffers echo 16 KiB messages no faster, for four times the memory. */
#define BUF_SIZE (16 * 1024)
#define ECHO_BUF_SIZE (64 * 1024) /* plain recv only */
#define HTTP_IN_INIT 4096
#define HTTP_IN_MAX (1024 * 1024)




/* What an SQE was for, in the low bits of its user_data. */
enum op { OP_RECV, OP_SEND, OP_ACCEPT, OP_SIGNAL };
#define OP_MASK 3ULL

struct conn {
    int fd;
    int refs; /* SQEs in flight; freed when closing and this drops to 0 */
    bool recv_armed, sending, closing, starved;
    struct conn *prev, *next; /* all connections, to close them at exit */
    struct conn *next_starved;
    /* echo, provided buffers: buffer ids to send back, oldest first */
    int q_head, q_tail;
    unsigned q_off; /* bytes of q_head already sent */
    /* plain recv, or http: input; echo sends in[in_off, in_len) back */
    char *in;
    size_t in_len, in_cap, in_off;
    /* http: response bytes owed, and sent so far */
    uint64_t owed, sent;
};

struct server {
    struct io_uring ring;
    enum mode mode;
    bool multishot; /* recv into provided buffers */
    bool stop;
    int err; /* why the loop stopped, if not for a signal */
    int lfd, sfd;
    struct conn conns;    /* list head */
    struct conn *starved; /* recvs ended by -ENOBUFS, to re-arm */
    /* provided buffers; the queue of a connection links through next_buf */
    struct io_uring_buf_ring *br;
    char *bufs;
    unsigned buf_len[BUF_COUNT];
    int next_buf[BUF_COUNT];
    int bufs_returned; /* added to br since the last advance */
};

static struct io_uring_sqe *get_sqe(struct server *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);

    if (!sqe) {
        /* The SQ is full: submit early rather than lose the request. */
        io_uring_submit(&s->ring);
        sqe = io_uring_get_sqe(&s->ring);
    }
    if (!sqe) {
        fprintf(stderr, "baseline_uring: no SQE after submit\n");
        exit(1);
    }
    return sqe;
}

static void set_op(struct io_uring_sqe *sqe, struct conn *c, enum op op)
{
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | op);
}

static void arm_accept(struct server *s)
{
    struct io_uring_sqe *sqe = get_sqe(s);

    io_uring_prep_multishot_accept(sqe, s->lfd, NULL, NULL, 0);
    set_op(sqe, NULL, OP_ACCEPT);
}

static void arm_signal(struct server *s)
{
    struct io_uring_sqe *sqe = get_sqe(s);

    io_uring_prep_poll_add(sqe, s->sfd, POLLIN);
    set_op(sqe, NULL, OP_SIGNAL);
}

static int make_room(struct conn *c, size_t need)
{
    size_t cap = c->in_cap;
    char *in;

    while (cap - c->in_len < need)
        cap *= 2;
    if (cap == c->in_cap)
        return 0;
    if (cap > HTTP_IN_MAX)
        return -EMSGSIZE; /* a header block this big is an attack */
    in = realloc(c->in, cap);
    if (!in)
        return -ENOMEM;
    c->in = in;
    c->in_cap = cap;
    return 0;
}

static void arm_recv(struct server *s, struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe(s);

    if (s->multishot) {
        io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BUF_GROUP;
    } else {
        io_uring_prep_recv(sqe, c->fd, c->in + c->in_len, c->in_cap - c->in_len,
                           0);
        /* We rearm right after answering, so a first try would fail. */
        sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    }
    set_op(sqe, c, OP_RECV);
    c->recv_armed = true;
    c->refs++;
}

static char *buf_addr(struct server *s, int bid)
{
    return s->bufs + (size_t)bid * BUF_SIZE;
}

/* The kernel sees returned buffers at the end of the turn (flush_bufs). */
static void return_buf(struct server *s, int bid)
{
    io_uring_buf_ring_add(s->br, buf_addr(s, bid), BUF_SIZE, bid,
                          io_uring_buf_ring_mask(BUF_COUNT),
                          s->bufs_returned++);
}

/* Points at the next bytes to send; returns how many there are. */
static size_t pending_output(struct server *s, struct conn *c, const char **p)
{
    size_t off, len;

    if (s->mode == MODE_HTTP) {
        off = c->sent % RESPONSE_LEN;
        len = sizeof(responses) - off;
        *p = responses + off;
        return len < c->owed ? len : c->owed;
    }
    if (s->multishot) {
        if (c->q_head < 0)
            return 0;
        *p = buf_addr(s, c->q_head) + c->q_off;
        return s->buf_len[c->q_head] - c->q_off;
    }
    *p = c->in + c->in_off;
    return c->in_len - c->in_off;
}

static void start_send(struct server *s, struct conn *c)
{
    struct io_uring_sqe *sqe;
    const char *p;
    size_t len;

    if (c->sending || c->closing)
        return;
    len = pending_output(s, c, &p);
    if (!len)
        return;
    sqe = get_sqe(s);
    io_uring_prep_send(sqe, c->fd, p, len, MSG_NOSIGNAL);
    set_op(sqe, c, OP_SEND);
    c->sending = true;
    c->refs++;
}

/* Marks the data from the front of the output as sent. */
static void consume_output(struct server *s, struct conn *c, size_t n)
{
    int bid = c->q_head;

    if (s->mode == MODE_HTTP) {
        c->owed -= n;
        c->sent += n;
    } else if (s->multishot) {
        c->q_off += n;
        if (c->q_off < s->buf_len[bid])
            return;
        c->q_head = s->next_buf[bid];
        c->q_off = 0;
        return_buf(s, bid);
    } else {
        c->in_off += n;
        if (c->in_off == c->in_len)
            c->in_off = c->in_len = 0;
    }
}

static void queue_buf(struct server *s, struct conn *c, int bid, size_t n)
{
    s->buf_len[bid] = n;
    s->next_buf[bid] = -1;
    if (c->q_head < 0)
        c->q_head = bid;
    else
        s->next_buf[c->q_tail] = bid;
    c->q_tail = bid;
}

static void mark_closing(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    /* Makes whatever is still in flight complete now, with an error. */
    if (c->refs)
        shutdown(c->fd, SHUT_RDWR);
}

/* Takes in n received bytes, from provided buffer bid if multishot. */
static void take_input(struct server *s, struct conn *c, int bid, size_t n)
{
    int ret;

    if (s->mode == MODE_ECHO && s->multishot) {
        queue_buf(s, c, bid, n);
    } else if (s->multishot) {
        ret = make_room(c, n);
        if (ret == 0) {
            memcpy(c->in + c->in_len, buf_addr(s, bid), n);
            c->in_len += n;
        }
        return_buf(s, bid);
        if (ret) {
            mark_closing(c);
            return;
        }
    } else {
        c->in_len += n;
    }
    if (s->mode == MODE_HTTP && !c->closing)
        c->owed += take_requests(c->in, &c->in_len) * RESPONSE_LEN;
    start_send(s, c);
}

static void free_conn(struct server *s, struct conn *c)
{
    int bid;

    for (bid = c->q_head; bid >= 0; bid = s->next_buf[bid])
        return_buf(s, bid);
    close(c->fd);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    free(c->in);
    free(c);
}

/*
 * Re-arms the recv of a live connection when it has ended: always for
 * multishot, and with plain recv once echo has sent everything back (both
 * use the same buffer) or once http has room to read into.
 */
static void rearm_recv(struct server *s, struct conn *c)
{
    if (c->closing || c->recv_armed || c->starved)
        return;
    if (!s->multishot && s->mode == MODE_ECHO && c->in_len)
        return;
    if (!s->multishot && s->mode == MODE_HTTP && make_room(c, 1) < 0) {
        mark_closing(c);
        return;
    }
    arm_recv(s, c);
}

/*
 * Called after every completion for c: frees it or keeps it reading. A
 * starved connection is still on the starved list, so flush_bufs() settles
 * it instead.
 */
static void settle(struct server *s, struct conn *c)
{
    if (c->starved)
        return;
    if (c->closing && c->refs == 0)
        free_conn(s, c);
    else
        rearm_recv(s, c);
}

static void starve(struct server *s, struct conn *c)
{
    c->starved = true;
    c->next_starved = s->starved;
    s->starved = c;
}

static void on_recv(struct server *s, struct conn *c, struct io_uring_cqe *cqe)
{
    int bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        c->recv_armed = false;
        c->refs--;
    }
    if (cqe->res > 0 && c->closing && s->multishot)
        return_buf(s, bid);
    else if (cqe->res > 0)
        take_input(s, c, bid, cqe->res);
    else if (cqe->res == -ENOBUFS)
        starve(s, c);
    if (cqe->res <= 0 && cqe->res != -ENOBUFS)
        mark_closing(c); /* 0: the peer closed, so do we */
    settle(s, c);
}

static void on_send(struct server *s, struct conn *c, struct io_uring_cqe *cqe)
{
    c->refs--;
    c->sending = false;
    if (cqe->res <= 0)
        mark_closing(c);
    else
        consume_output(s, c, cqe->res);
    start_send(s, c);
    settle(s, c);
}

static void add_conn(struct server *s, int fd)
{
    struct conn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (!c)
        goto out_close;
    c->fd = fd;
    c->q_head = c->q_tail = -1;
    if (s->mode == MODE_HTTP || !s->multishot) {
        c->in_cap = s->mode == MODE_HTTP ? HTTP_IN_INIT : ECHO_BUF_SIZE;
        c->in = malloc(c->in_cap);
        if (!c->in)
            goto out_free_conn;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->next = s->conns.next;
    c->prev = &s->conns;
    c->next->prev = c;
    s->conns.next = c;
    arm_recv(s, c);
    return;

out_free_conn:
    free(c);
out_close:
    close(fd);
}

static void on_accept(struct server *s, struct io_uring_cqe *cqe)
{
    if (cqe->res >= 0)
        add_conn(s, cqe->res);
    else
        fprintf(stderr, "baseline_uring: accept: %s\n", strerror(-cqe->res));
    if (cqe->res == -EINVAL) {
        s->err = -EINVAL; /* no multishot accept: the kernel is too old */
        return;
    }
    if (!(cqe->flags & IORING_CQE_F_MORE))
        arm_accept(s);
}

static void on_cqe(struct server *s, struct io_uring_cqe *cqe)
{
    uint64_t data = io_uring_cqe_get_data64(cqe);
    struct conn *c = (struct conn *)(uintptr_t)(data & ~OP_MASK);

    switch (data & OP_MASK) {
    case OP_RECV:
        on_recv(s, c, cqe);
        break;
    case OP_SEND:
        on_send(s, c, cqe);
        break;
    case OP_ACCEPT:
        on_accept(s, cqe);
        break;
    case OP_SIGNAL:
        s->stop = true;
        break;
    }
}

/* Hands returned buffers to the kernel and restarts the recvs they feed. */
static void flush_bufs(struct server *s)
{
    struct conn *c;

    if (!s->bufs_returned)
        return;
    io_uring_buf_ring_advance(s->br, s->bufs_returned);
    s->bufs_returned = 0;
    while ((c = s->starved)) {
        s->starved = c->next_starved;
        c->starved = false;
        settle(s, c);
    }
}

static int run(struct server *s)
{
    struct io_uring_cqe *cqe;
    unsigned head, n;
    int ret;

    while (!s->stop && !s->err) {
        ret = io_uring_submit_and_wait(&s->ring, 1);
        if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
            return ret;
        n = 0;
        io_uring_for_each_cqe(&s->ring, head, cqe) {
            on_cqe(s, cqe);
            n++;
        }
        io_uring_cq_advance(&s->ring, n);
        flush_bufs(s);
    }
    return s->err;
}

static int setup_ring(struct io_uring *ring)
{
    static const unsigned flags[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    struct io_uring_params p;
    int ret = -EINVAL;

    for (size_t i = 0; i < 3 && ret == -EINVAL; i++) {
        memset(&p, 0, sizeof(p));
        p.flags = flags[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = CQ_ENTRIES;
        ret = io_uring_queue_init_params(SQ_ENTRIES, ring, &p);
    }
    return ret;
}

/* liburing 2.3 has no io_uring_setup_buf_ring(): map and register by hand. */
static int setup_bufs(struct server *s)
{
    size_t ring_size = BUF_COUNT * sizeof(struct io_uring_buf);
    struct io_uring_buf_reg reg = { 0 };
    void *br;
    int ret;

    br = mmap(NULL, ring_size, PROT_READ | PROT_WRITE,
              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (br == MAP_FAILED)
        return -errno;
    s->bufs = mmap(NULL, (size_t)BUF_COUNT * BUF_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s->bufs == MAP_FAILED) {
        ret = -errno;
        goto out_unmap_ring;
    }
    reg.ring_addr = (uintptr_t)br;
    reg.ring_entries = BUF_COUNT;
    reg.bgid = BUF_GROUP;
    ret = io_uring_register_buf_ring(&s->ring, &reg, 0);
    if (ret < 0)
        goto out_unmap_bufs;
    s->br = br;
    io_uring_buf_ring_init(s->br);
    for (int bid = 0; bid < BUF_COUNT; bid++)
        return_buf(s, bid);
    return 0;

out_unmap_bufs:
    munmap(s->bufs, (size_t)BUF_COUNT * BUF_SIZE);
out_unmap_ring:
    munmap(br, ring_size);
    return ret;
}

static int open_listener(int port)
{
    struct sockaddr_in sa = {
        .sin_family = AF_INET,
        .sin_port = htons(port),
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
    };
    int fd, one = 1, ret;

    /* Blocking: io_uring polls for us, and -EAGAIN never reaches a CQE. */
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(fd, LISTEN_BACKLOG) < 0) {
        ret = -errno;
        close(fd);
        return ret;
    }
    return fd;
}

static int open_signalfd(void)
{
    sigset_t sigs;
    int fd;

    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &sigs, NULL) < 0)
        return -errno;
    fd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/*
 * Multishot recv came with kernel 6.0 and DEFER_TASKRUN with 6.1, so a ring
 * that accepted DEFER_TASKRUN can take it; an older kernel would fail every
 * recv with -EINVAL. setup_bufs() then asks for the provided-buffer ring.
 */
static bool has_multishot_recv(struct server *s)
{
    const char *v = getenv("BASELINE_RECV");

    if (v && strcmp(v, "plain") == 0)
        return false;
    return s->ring.flags & IORING_SETUP_DEFER_TASKRUN;
}

static int server_init(struct server *s, int port)
{
    int ret;

    s->conns.next = s->conns.prev = &s->conns;
    s->sfd = open_signalfd();
    if (s->sfd < 0)
        return s->sfd;
    s->lfd = open_listener(port);
    if (s->lfd < 0) {
        ret = s->lfd;
        goto out_close_sfd;
    }
    ret = setup_ring(&s->ring);
    if (ret < 0)
        goto out_close_lfd;
    s->multishot = has_multishot_recv(s) && setup_bufs(s) == 0;
    arm_signal(s);
    arm_accept(s);
    return 0;

out_close_lfd:
    close(s->lfd);
out_close_sfd:
    close(s->sfd);
    return ret;
}

static void server_fini(struct server *s)
{
    /* Exiting the ring first cancels every request that points at memory. */
    io_uring_queue_exit(&s->ring);
    while (s->conns.next != &s->conns)
        free_conn(s, s->conns.next);
    if (s->multishot) {
        munmap(s->bufs, (size_t)BUF_COUNT * BUF_SIZE);
        munmap(s->br, BUF_COUNT * sizeof(struct io_uring_buf));
    }
    close(s->lfd);
    close(s->sfd);
}

int main(int argc, char **argv)
{
    static struct server s;
    int port, ret;

    if (parse_args(argc, argv, &s.mode, &port) < 0) {
        fprintf(stderr, "usage: baseline_uring echo|http PORT\n"
                        "  BASELINE_RECV=plain: no multishot recv\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    fill_responses();
    ret = server_init(&s, port);
    if (ret < 0) {
        fprintf(stderr, "baseline_uring: 127.0.0.1:%d: %s\n", port,
                strerror(-ret));
        return 1;
    }
    ret = run(&s);
    server_fini(&s);
    if (ret < 0) {
        fprintf(stderr, "baseline_uring: %s\n", strerror(-ret));
        return 1;
    }
    return 0;
}
