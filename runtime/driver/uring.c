/*
 * The io_uring driver: one ring per worker, created on that worker and
 * touched only by it (cancel() from another worker goes through the
 * owner's cancel queue, see backend.h), or by a rescuer while the owner is
 * stuck and frozen (uring_rescue).
 *
 * Set-up probes the strongest flags first: SINGLE_ISSUER | DEFER_TASKRUN
 * (completions are processed only when this worker enters the kernel, in a
 * batch), then COOP_TASKRUN, then none, so older kernels still work, each
 * first with TASKRUN_FLAG (the kernel flags pending task work, which tells
 * a rescuer whether to kick). With WEFT_SQPOLL a kernel thread polls the SQ
 * (DEFER_TASKRUN cannot be combined with it).
 *
 * Submission: submit() only prepares SQEs; they reach the kernel in the
 * worker's next wait(), one io_uring_enter per scheduler turn (with SQPOLL,
 * none while the kernel thread is awake). A full SQ is
 * flushed to the kernel on the spot rather than failing the op.
 *
 * Reaping: under DEFER_TASKRUN nothing completes until this worker enters
 * the kernel with GETEVENTS, so wait(0) enters whenever ops are in flight
 * (io->inflight); it only peeks at the CQ when nothing could complete.
 *
 * user_data: 0 for CQEs nobody waits for (linked timeouts, cancels), 1 for
 * the wake read, otherwise gen << 32 | (slot + SLOT_BASE). The slot table
 * maps a slot to its op; a slot's generation changes each time it is freed,
 * so a completion for an op that is no longer there is recognised (counted
 * in stale) and dropped instead of written into someone else's stack.
 *
 * Waking: each ring keeps a read of its worker's eventfd in flight while it
 * blocks. wake() writes the eventfd from any thread; the read completes and
 * the worker's wait returns. A write that arrives before the worker blocks
 * leaves the counter non-zero, so the read completes at once: no wake is
 * lost.
 */
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <liburing.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../common.h"
#include "../config.h"
#include "../fdtable.h"
#include "../sanitizer.h"
#include "../mem.h"
#include "../metrics.h"

#define TAG_IGNORE 0ull
#define TAG_WAKE 1ull
#define SLOT_BASE 2u
#define SLOT_NONE UINT32_MAX
#define STOPS_MAX 16
/* fdops flag: the last recv on the fd left nothing to read (no
 * IORING_CQE_F_SOCK_NONEMPTY), so the next one most likely finds nothing
 * and is issued IORING_RECVSEND_POLL_FIRST: it waits for data instead of
 * first trying (and failing) a receive. */
#define FD_DRAINED (1u << 31)

struct slot {
    struct weft__io_op *op; /* NULL when free */
    uint32_t gen;
    uint32_t next_free;
};

#define RX_GROUP 0
#define RX_NBUF 1024u             /* a power of two, as the ring requires */
#define RX_BUFSZ 4096u
#define RX_REARM (RX_NBUF / 4)    /* free buffers before a starved fd rearms */
#define BID_NONE UINT16_MAX
/* The table's mark for an fd that is not a TCP socket: recv goes plain. */
#define RX_PLAIN_FD ((struct rx *)1)

struct rxbuf {
    uint16_t next, off, len; /* the queue's link; bytes at off, len left */
};

struct rx {
    struct weft__io_op op;        /* the multishot, while armed */
    _Atomic(struct weft__io *) owner; /* NULL: free to adopt */
    struct rx *prev, *next;       /* the owner's rxs */
    int fd;
    uint16_t head, tail;          /* queued buffers, oldest first */
    bool armed;                   /* the multishot is in the kernel */
    bool dead;                    /* fd closed: freed at its last CQE */
    bool starved;                 /* ended by -ENOBUFS */
    bool has_end;                 /* end (EOF or error) follows the queue */
    bool stopping;                /* the worker ends: cancelled */
    int end;
    struct weft__io_op *waiters, *wait_last;
    char *spill;                  /* bytes carried over from a former owner */
    uint32_t spill_off, spill_len;
};

struct weft__io {
    /* Owner worker only. */
    struct io_uring ring;
    int wake_fd;
    bool wake_armed;       /* the eventfd read is in flight */
    uint64_t wake_buf;     /* the eventfd read's target */
    bool sqpoll;           /* a kernel thread submits and completes */
    unsigned inflight;     /* ops whose final CQE has not been reaped */
    struct slot *slots;
    uint32_t nslots, free_head;
    uint32_t *fdops;       /* per fd: ops in flight that wait on it, and
                              FD_DRAINED */
    uint32_t nfdops;
    uint64_t stale;        /* completions whose op was gone */
    struct weft__io_op *close_acks; /* close notices to ack after enter */
    uint64_t stops[STOPS_MAX];      /* multishots to cancel after reaping */
    unsigned nstops;
    /* Multishot recv (see below); rx_ok once the buffers are registered. */
    bool rx_ok;
    struct io_uring_buf_ring *br;
    char *bufs;
    struct rxbuf *meta;
    unsigned bufs_free;
    struct rx *rxs;
#ifdef WEFT_FAULT_HOOKS
    uint64_t rx_inline, rx_starved;
#endif

    /* Any thread. */
    struct weft__io_cancelq remote;
    atomic_bool blocking;           /* the owner is (about to be) asleep in
                                       the kernel: a remote recv wakes it */
    _Atomic unsigned kick_submit;   /* SQEs a kick hands to the kernel */
};

static int setup_ring(struct io_uring *ring, unsigned entries, bool sqpoll)
{
    /* TASKRUN_FLAG: the kernel says in the SQ flags when completions wait
     * for this thread to enter, so a rescuer kicks only then. */
    static const unsigned fast[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
            IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    static const unsigned polled[] = {
        IORING_SETUP_SQPOLL | IORING_SETUP_SINGLE_ISSUER,
        IORING_SETUP_SQPOLL,
        0,
    };
    /* ThreadSanitizer runs a signal handler only once a blocking syscall
     * returns, so a kick (uring_rescue) cannot reach a worker blocked in
     * read(2). Under it, rings post completions through the kernel's own
     * task-work signal and take submissions from any thread: the rescuer
     * then needs no kick. */
    const unsigned owner_only = WEFT__UNDER_TSAN ?
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
            IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG : 0;
    const unsigned *tries = sqpoll ? polled : fast;
    unsigned ntries = sqpoll ? 3 : 5;
    int ret = -EINVAL;

    for (unsigned i = 0; i < ntries; i++) {
        /* A deep CQ: linked timeouts and cancels add CQEs beyond the SQ. */
        struct io_uring_params p = {
            .flags = (tries[i] & ~owner_only) | IORING_SETUP_CQSIZE |
                     IORING_SETUP_CLAMP,
            .cq_entries = entries * 4,
            .sq_thread_idle = 50,
        };

        ret = io_uring_queue_init_params(entries, ring, &p);
        if (ret != -EINVAL)
            break;
    }
    return ret;
}

/* One NOP through the ring and back: io_uring_enter both submits it and,
 * with DEFER_TASKRUN, is what posts its completion. On failure *step names
 * what failed. */
static int probe_nop(struct io_uring *ring, const char **step)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    struct io_uring_cqe *cqe;
    int ret;

    io_uring_prep_nop(sqe);
    do
        ret = io_uring_submit_and_wait(ring, 1);
    while (ret == -EINTR);
    if (ret < 0)
        goto out_enter;
    do
        ret = io_uring_wait_cqe(ring, &cqe);
    while (ret == -EINTR);
    if (ret < 0)
        goto out_enter;
    ret = cqe->res;
    io_uring_cqe_seen(ring, cqe);
    if (ret < 0)
        *step = "IORING_OP_NOP";
    return ret < 0 ? ret : 0;
out_enter:
    *step = "io_uring_enter";
    return ret;
}

/*
 * A seccomp filter or an LSM may allow io_uring_setup and refuse
 * io_uring_enter, so a ring that can be created proves
 * nothing: the probe sets one up as a worker will (same flags) and takes a
 * NOP through it. Not cached: a filter can be installed at any time, and a
 * forked child would inherit a stale answer; a runtime start affords one
 * more ring.
 */
int weft__io_uring_probe(const struct weft__config *cfg, const char **step)
{
    struct io_uring ring;
    int ret = setup_ring(&ring, cfg->ring_entries, cfg->sqpoll);

    if (ret < 0) {
        *step = "io_uring_setup";
        return ret;
    }
    ret = probe_nop(&ring, step);
    io_uring_queue_exit(&ring);
    return ret;
}

/* ---- slots --------------------------------------------------------------- */

/* Doubles the slot table: allocation only as the in-flight peak grows. */
static int grow_slots(struct weft__io *io)
{
    uint32_t n = io->nslots ? io->nslots * 2 : 256;
    struct slot *s = weft__alloc(n * sizeof(*s));

    if (!s)
        return -ENOMEM;
    for (uint32_t i = 0; i < io->nslots; i++)
        s[i] = io->slots[i];
    for (uint32_t i = io->nslots; i < n; i++)
        s[i] = (struct slot){ .next_free = i + 1 < n ? i + 1 : SLOT_NONE };
    weft__free(io->slots, io->nslots * sizeof(*s));
    io->free_head = io->nslots;
    io->slots = s;
    io->nslots = n;
    return 0;
}

/* Does op wait on op->fd (rather than use it as a directory)? */
static bool on_fd(const struct weft__io_op *op)
{
    return op->fd >= 0 && weft__io_def(op->opcode)->on_fd;
}

/* Ops of this ring in flight on fd: a close cancels them only if any. */
static bool fd_busy(const struct weft__io *io, int fd)
{
    return fd >= 0 && (uint32_t)fd < io->nfdops &&
           (io->fdops[fd] & ~FD_DRAINED);
}

/*
 * Slow path: room for fd in fdops. An fd that is not open gets -EBADF (what
 * its op would complete with) and no entry: its number may be anything up
 * to INT_MAX, and the table, kept for the worker's life, would grow to
 * match.
 */
static int grow_fdops(struct weft__io *io, int fd)
{
    if (fcntl(fd, F_GETFD) < 0)
        return -errno;
    return weft__grow_table((void **)&io->fdops, &io->nfdops,
                            sizeof(*io->fdops), 256, (uint32_t)fd);
}

static int take_slot(struct weft__io *io, struct weft__io_op *op)
{
    bool fd_op = on_fd(op);
    struct slot *s;
    int ret;

    if (fd_op && (uint32_t)op->fd >= io->nfdops &&
        (ret = grow_fdops(io, op->fd)) < 0)
        return ret;
    if (io->free_head == SLOT_NONE && grow_slots(io) < 0)
        return -ENOMEM;
    if (fd_op)
        io->fdops[op->fd]++;
    op->u.uring.slot = io->free_head;
    s = &io->slots[op->u.uring.slot];
    io->free_head = s->next_free;
    s->op = op;
    op->u.uring.gen = s->gen;
    op->io = io;
    io->inflight++;
    return 0;
}

static void free_slot(struct weft__io *io, uint32_t i)
{
    const struct weft__io_op *op = io->slots[i].op;

    if (on_fd(op))
        io->fdops[op->fd]--;
    io->slots[i].op = NULL;
    io->slots[i].gen++;
    io->slots[i].next_free = io->free_head;
    io->free_head = i;
    io->inflight--;
}

static uint64_t op_tag(const struct weft__io_op *op)
{
    return (uint64_t)op->u.uring.gen << 32 | (op->u.uring.slot + SLOT_BASE);
}

/* The op a CQE names, or NULL if it is stale. */
static struct weft__io_op *tag_op(struct weft__io *io, uint64_t tag,
                                  uint32_t *slot)
{
    uint32_t i = (uint32_t)tag - SLOT_BASE;

    if (i >= io->nslots || io->slots[i].gen != (uint32_t)(tag >> 32) ||
        !io->slots[i].op)
        return NULL;
    *slot = i;
    return io->slots[i].op;
}

/* ---- set-up -------------------------------------------------------------- */

static bool rx_setup(struct weft__io *io);
static void rx_fini(struct weft__io *io);

static int uring_init(struct weft__io **out, const struct weft__config *cfg)
{
    struct weft__io *io = weft__zalloc(sizeof(*io));
    int ret;

    if (!io)
        return -ENOMEM;
    io->free_head = SLOT_NONE;
    io->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (io->wake_fd < 0) {
        ret = -errno;
        goto out_free;
    }
    ret = setup_ring(&io->ring, cfg->ring_entries, cfg->sqpoll);
    if (ret < 0)
        goto out_close;
    io->sqpoll = io->ring.flags & IORING_SETUP_SQPOLL;
    ret = grow_slots(io);
    if (ret < 0)
        goto out_exit;
    io->rx_ok = rx_setup(io);
    *out = io;
    return 0;
out_exit:
    io_uring_queue_exit(&io->ring);
out_close:
    close(io->wake_fd);
out_free:
    weft__free(io, sizeof(*io));
    return ret;
}


static void uring_fini(struct weft__io *io)
{
    if (io->rx_ok)
        rx_fini(io);
    io_uring_queue_exit(&io->ring);
    if (io->rx_ok) {
        munmap(io->br, RX_NBUF * sizeof(struct io_uring_buf));
        munmap(io->bufs, (size_t)RX_NBUF * RX_BUFSZ);
        weft__free(io->meta, RX_NBUF * sizeof(*io->meta));
    }
    close(io->wake_fd);
    weft__free(io->slots, io->nslots * sizeof(*io->slots));
    weft__free(io->fdops, io->nfdops * sizeof(*io->fdops));
    weft__free(io, sizeof(*io));
}

/* ---- submission ---------------------------------------------------------- */

static unsigned reap(struct weft__io *io);

/* Hands prepared SQEs to the kernel; busy rings are reaped and retried. */
static void flush(struct weft__io *io)
{
    int ret;

    weft__metrics_kernel_entry();
    ret = io_uring_submit(&io->ring);

    if (ret == -EBUSY || ret == -EAGAIN || ret == -EINTR) {
        /* The kernel wants CQ room (or memory) first: make some. */
        reap(io);
        io_uring_submit_and_get_events(&io->ring);
    }
}

/* n consecutive SQEs (a linked pair must not straddle a flush). */
static struct io_uring_sqe *get_sqes(struct weft__io *io, unsigned n)
{
    while (io_uring_sq_space_left(&io->ring) < n)
        flush(io);
    return io_uring_get_sqe(&io->ring);
}

static void prep_data(struct weft__io *io, struct io_uring_sqe *sqe,
                      struct weft__io_op *op)
{
    switch (op->opcode) {
    case IOP_RECV:
        io_uring_prep_recv(sqe, op->fd, op->buf, op->len, op->flags);
        if ((io->fdops[op->fd] & FD_DRAINED) && !(op->flags & MSG_DONTWAIT))
            sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
        break;
    case IOP_SEND:
        io_uring_prep_send(sqe, op->fd, op->buf, op->len, op->flags);
        break;
    case IOP_RECVMSG:
        io_uring_prep_recvmsg(sqe, op->fd, op->buf, (unsigned)op->flags);
        break;
    case IOP_SENDMSG:
        io_uring_prep_sendmsg(sqe, op->fd, op->buf, (unsigned)op->flags);
        break;
    case IOP_READ:
        io_uring_prep_read(sqe, op->fd, op->buf, (unsigned)op->len, op->off);
        break;
    case IOP_WRITE:
        io_uring_prep_write(sqe, op->fd, op->buf, (unsigned)op->len,
                            op->off);
        break;
    case IOP_READV:
        io_uring_prep_readv(sqe, op->fd, op->buf, (unsigned)op->len,
                            op->off);
        break;
    case IOP_WRITEV:
        io_uring_prep_writev(sqe, op->fd, op->buf, (unsigned)op->len,
                             op->off);
        break;
    }
}

static void prep(struct weft__io *io, struct io_uring_sqe *sqe,
                 struct weft__io_op *op)
{
    switch (op->opcode) {
    case IOP_ACCEPT:
        io_uring_prep_accept(sqe, op->fd, op->buf, op->aux, op->flags);
        break;
    case IOP_ACCEPT_MULTI:
        io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL, op->flags);
        break;
    case IOP_CONNECT:
        io_uring_prep_connect(sqe, op->fd, op->buf, (socklen_t)op->len);
        break;
    case IOP_OPENAT:
        io_uring_prep_openat(sqe, op->fd, op->buf, op->flags,
                             (mode_t)op->off);
        break;
    case IOP_CLOSE:
        io_uring_prep_close(sqe, op->fd);
        break;
    case IOP_FSYNC:
        io_uring_prep_fsync(sqe, op->fd, (unsigned)op->flags);
        break;
    case IOP_STATX:
        io_uring_prep_statx(sqe, op->fd, op->buf, op->flags,
                            (unsigned)op->off, op->aux);
        break;
    case IOP_SHUTDOWN:
        io_uring_prep_shutdown(sqe, op->fd, op->flags);
        break;
    case IOP_POLL:
        io_uring_prep_poll_add(sqe, op->fd, (unsigned)op->flags);
        break;
    default:
        prep_data(io, sqe, op);
        break;
    }
}

static int rx_recv(struct weft__io *io, struct weft__io_op *op);
static void rx_close(struct weft__io *io, int fd);
static void rx_forget(struct weft__io *io, int fd);

/* Not for the rx path: the kernel's own recv. */
#define RX_NONE 3

static int uring_submit(struct weft__io *io, struct weft__io_op *op)
{
    bool timed = op->deadline != WEFT_NO_DEADLINE, closing;
    struct io_uring_sqe *sqe;
    int ret;

    if ((op->opcode == IOP_RECV ||
         (op->opcode == IOP_READ && op->off == UINT64_MAX)) &&
        !(op->flags & ~MSG_DONTWAIT) && io->rx_ok &&
        (ret = rx_recv(io, op)) != RX_NONE)
        return ret;
    if (unlikely(op->opcode == IOP_CLOSE || op->opcode == IOP_CONNECT) &&
        io->rx_ok)
        (op->opcode == IOP_CLOSE ? rx_close : rx_forget)(io, op->fd);
    if ((ret = take_slot(io, op)) < 0)
        return ret;
    if (op->opcode == IOP_CLOSE && op->fd >= 0 &&
        (uint32_t)op->fd < io->nfdops)
        io->fdops[op->fd] &= ~FD_DRAINED; /* the next file starts afresh */
    closing = op->opcode == IOP_CLOSE && fd_busy(io, op->fd);
    sqe = get_sqes(io, timed || closing ? 2 : 1);
    if (closing) {
        /* Ops of this worker still waiting on fd end first (-ECANCELED,
         * -EBADF to their callers): the cancel takes the file before the
         * close that follows it in the same batch drops the fd. */
        io_uring_prep_cancel_fd(sqe, op->fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, TAG_IGNORE);
        sqe = io_uring_get_sqe(&io->ring);
    }
    prep(io, sqe, op);
    io_uring_sqe_set_data64(sqe, op_tag(op));
    if (!timed)
        return 0;
    /* The kernel reads ts when it takes the SQE; op (on the parked task's
     * stack) outlives that. */
    sqe->flags |= IOSQE_IO_LINK;
    op->u.uring.ts.tv_sec = op->deadline / WEFT__NS_PER_SEC;
    op->u.uring.ts.tv_nsec = op->deadline % WEFT__NS_PER_SEC;
    sqe = io_uring_get_sqe(&io->ring);
    io_uring_prep_link_timeout(sqe, &op->u.uring.ts, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data64(sqe, TAG_IGNORE);
    return 0;
}

static void prep_cancel(struct weft__io *io, struct weft__io_op *op)
{
    struct io_uring_sqe *sqe = get_sqes(io, 1);

    io_uring_prep_cancel64(sqe, op_tag(op), 0);
    io_uring_sqe_set_data64(sqe, TAG_IGNORE);
}

/* A recv that waited on buffered data goes to the kernel after all (its
 * deadline stays the task's timer). */
static void submit_plain(struct weft__io *io, struct weft__io_op *op)
{
    struct io_uring_sqe *sqe;
    int ret = take_slot(io, op);

    if (ret < 0) {
        weft__io_complete(op, ret);
        return;
    }
    sqe = get_sqes(io, 1);
    prep(io, sqe, op);
    io_uring_sqe_set_data64(sqe, op_tag(op));
}

static void uring_wake(struct weft__io *io);

/* ---- multishot recv into provided buffers -------------------------------- */

/*
 * A TCP socket that weft_recv reads gets one multishot recv (IOP_RECV_MULTI)
 * on the ring of the worker that first reads it, into a ring of provided
 * buffers that worker shares among all its sockets: bytes that arrive while
 * the reading task is busy land in those buffers, in order, and the next
 * recv copies them out without suspending. A connection holds buffers only
 * while it has unread bytes; an idle one costs its struct rx.
 *
 * The receive state of an fd (struct rx) is in a process-wide per-fd
 * table (runtime/fdtable.h), so that a task that moved to another worker finds it. Its
 * owner (the worker whose ring holds the multishot and whose buffers hold
 * the bytes) alone touches it. A recv from another worker is handed to the
 * owner through its remote queue (rx_remote, the path remote cancels take)
 * and completes there, and the completion's wake queues the task on the
 * owner: a connection's task goes back to its ring rather than its bytes
 * following the task. (Handing the bytes over instead, by cancelling the
 * multishot, copying them out and arming on the new worker, cost about
 * twice the kernel entries and context switches per round trip with 2
 * workers.) A recv handed over and cancelled before the owner took it is
 * ended by the owner when it does (RQ_CANCELLED). When a worker ends, its
 * unread bytes go to a heap spill kept with the fd, and the next worker to
 * read the fd, in this runtime or a later one, takes it over.
 *
 * Recvs that find nothing wait on the rx (rx_wait, FIFO), not in the
 * kernel, so cancel() of one unhooks it at once; its deadline is the
 * task's timer (WEFT__IO_SUB_TIMED). A recv never loses bytes to a cancel:
 * they stay queued for the next one.
 *
 * When the buffers run dry the kernel ends the multishot with -ENOBUFS;
 * until a quarter of them are back, the fd's recvs that find nothing
 * queued go to the kernel as plain recvs into the caller's buffer (the
 * path every other socket takes). EOF and errors end it too: they are
 * returned, in order, after the bytes queued before them (an error once,
 * end of stream every time).
 *
 * Only TCP sockets get an rx (SO_PROTOCOL, asked once per fd): a Unix
 * socket may carry descriptors that a recv without control data would
 * drop, and a datagram longer than a buffer would be cut.
 */
static struct weft__fdtable rx_table;

#ifdef WEFT_FAULT_HOOKS
/* Test builds: a test may turn multishot recv off (plain recvs only). */
_Atomic bool weft__io_no_rx;
_Atomic uint64_t weft__io_rx_handovers;
#endif

/* fd's slot: its struct rx, RX_PLAIN_FD, or NULL (see above). */
static _Atomic(void *) *rx_slot(int fd, bool create)
{
    weft__fd_slot_t *s = weft__fdtable_slot(&rx_table, fd, create);

    return s ? &s->ptr : NULL;
}

static char *buf_at(struct weft__io *io, uint16_t bid)
{
    return io->bufs + (size_t)bid * RX_BUFSZ;
}

/* Gives buffer bid back to the kernel. */
static void buf_put(struct weft__io *io, uint16_t bid)
{
    io_uring_buf_ring_add(io->br, buf_at(io, bid), RX_BUFSZ, bid,
                          io_uring_buf_ring_mask(RX_NBUF), 0);
    io_uring_buf_ring_advance(io->br, 1);
    io->bufs_free++;
}

/* Slow path, once per worker: the provided buffers, or false. */
static bool rx_setup(struct weft__io *io)
{
    struct io_uring_buf_reg reg = { 0 };
    size_t rlen = RX_NBUF * sizeof(struct io_uring_buf);
    void *r;

    r = mmap(NULL, rlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    if (r == MAP_FAILED)
        return false;
    io->bufs = mmap(NULL, (size_t)RX_NBUF * RX_BUFSZ, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    io->meta = weft__zalloc(RX_NBUF * sizeof(*io->meta));
    if (io->bufs == MAP_FAILED || !io->meta)
        goto fail;
    reg.ring_addr = (uint64_t)(uintptr_t)r;
    reg.ring_entries = RX_NBUF;
    reg.bgid = RX_GROUP;
    if (io_uring_register_buf_ring(&io->ring, &reg, 0) < 0)
        goto fail;
    io->br = r;
    io_uring_buf_ring_init(io->br);
    for (unsigned i = 0; i < RX_NBUF; i++)
        buf_put(io, (uint16_t)i);
    return true;
fail:
    if (io->bufs != MAP_FAILED && io->bufs)
        munmap(io->bufs, (size_t)RX_NBUF * RX_BUFSZ);
    io->bufs = NULL;
    weft__free(io->meta, RX_NBUF * sizeof(*io->meta));
    io->meta = NULL;
    munmap(r, rlen);
    return false;
}

static void rx_link(struct weft__io *io, struct rx *rx)
{
    rx->prev = NULL;
    rx->next = io->rxs;
    if (io->rxs)
        io->rxs->prev = rx;
    io->rxs = rx;
}

static void rx_unlink(struct weft__io *io, struct rx *rx)
{
    if (rx->prev)
        rx->prev->next = rx->next;
    else
        io->rxs = rx->next;
    if (rx->next)
        rx->next->prev = rx->prev;
    rx->prev = rx->next = NULL;
}

static bool rx_has_data(const struct rx *rx)
{
    return rx->spill_off < rx->spill_len || rx->head != BID_NONE;
}

/* Copies up to len queued bytes to dst (consuming them unless peek). */
static size_t rx_copy(struct weft__io *io, struct rx *rx, char *dst,
                      size_t len)
{
    size_t got = 0;

    if (rx->spill_off < rx->spill_len) {
        size_t k = rx->spill_len - rx->spill_off;

        k = k < len ? k : len;
        memcpy(dst, rx->spill + rx->spill_off, k);
        got = k;
        rx->spill_off += (uint32_t)k;
        if (rx->spill_off == rx->spill_len) {
            weft__free(rx->spill, rx->spill_len);
            rx->spill = NULL;
            rx->spill_off = rx->spill_len = 0;
        }
    }
    while (got < len && rx->head != BID_NONE) {
        struct rxbuf *b = &io->meta[rx->head];
        size_t k = b->len < len - got ? b->len : len - got;

        memcpy(dst + got, buf_at(io, rx->head) + b->off, k);
        got += k;
        b->off += (uint16_t)k;
        b->len -= (uint16_t)k;
        if (b->len == 0) {
            uint16_t bid = rx->head;

            rx->head = b->next;
            if (rx->head == BID_NONE)
                rx->tail = BID_NONE;
            buf_put(io, bid);
        }
    }
    return got;
}

static void rx_queue(struct weft__io *io, struct rx *rx, uint16_t bid,
                     uint32_t len)
{
    io->meta[bid] = (struct rxbuf){ .next = BID_NONE, .len = (uint16_t)len };
    io->bufs_free--;
    if (rx->tail != BID_NONE)
        io->meta[rx->tail].next = bid;
    else
        rx->head = bid;
    rx->tail = bid;
}

/* Drops what is queued (the fd is gone). */
static void rx_drop(struct weft__io *io, struct rx *rx)
{
    while (rx->head != BID_NONE) {
        uint16_t bid = rx->head;

        rx->head = io->meta[bid].next;
        buf_put(io, bid);
    }
    rx->tail = BID_NONE;
    if (rx->spill)
        weft__free(rx->spill, rx->spill_len);
    rx->spill = NULL;
    rx->spill_off = rx->spill_len = 0;
}

/* What a recv op gets from rx now: bytes, the end, or nothing (false). */
static bool rx_take(struct weft__io *io, struct rx *rx,
                    struct weft__io_op *op, int *res)
{
    size_t n;

    if (rx_has_data(rx)) {
        n = rx_copy(io, rx, op->buf, op->len);
        *res = (int)n;
        return true;
    }
    if (!rx->has_end)
        return false;
    *res = rx->end;
    if (rx->end < 0)
        rx->has_end = false; /* an error is said once, as recv(2) does */
    return true;
}

static void rx_unwait(struct rx *rx, struct weft__io_op *op)
{
    struct weft__io_op **pp = &rx->waiters, *prev = NULL;

    for (; *pp; prev = *pp, pp = &(*pp)->u.uring.rx_next)
        if (*pp == op) {
            *pp = op->u.uring.rx_next;
            if (rx->wait_last == op)
                rx->wait_last = prev;
            break;
        }
    op->u.uring.rx_wait = false;
}

static void rx_wait_add(struct rx *rx, struct weft__io_op *op)
{
    op->u.uring.slot = SLOT_NONE; /* no tag of it names a slot */
    op->u.uring.rx_wait = true;
    op->u.uring.rx_next = NULL;
    if (rx->wait_last)
        rx->wait_last->u.uring.rx_next = op;
    else
        rx->waiters = op;
    rx->wait_last = op;
}

static void submit_plain(struct weft__io *io, struct weft__io_op *op);
static bool rx_arm(struct weft__io *io, struct rx *rx);

/* Hands waiting recvs what is queued; arms again if some still wait. */
static void rx_serve(struct weft__io *io, struct rx *rx)
{
    struct weft__io_op *op;
    int res;

    while ((op = rx->waiters) && rx_take(io, rx, op, &res)) {
        rx_unwait(rx, op);
        weft__io_complete(op, res);
    }
    if (!rx->waiters || rx->armed || rx->dead)
        return;
    if (!rx_arm(io, rx))
        /* Starved: the waiters go to the kernel one by one, in order. */
        while ((op = rx->waiters)) {
            rx_unwait(rx, op);
            submit_plain(io, op);
        }
}

/* Lets go of rx as its worker ends (its multishot ended, no recv waits):
 * unread bytes move to a heap spill that stays with the fd, and the owner
 * is cleared, so that a later runtime's worker takes it. */
static void rx_release(struct weft__io *io, struct rx *rx)
{
    size_t n = 0;

    for (uint16_t b = rx->head; b != BID_NONE; b = io->meta[b].next)
        n += io->meta[b].len;
    n += rx->spill_len - rx->spill_off;
    if (n) {
        char *s = weft__alloc(n);

        if (!s)
            weft__panic("uring: no memory to keep %zu received bytes", n);
        n = rx_copy(io, rx, s, n);
        rx->spill = s;
        rx->spill_off = 0;
        rx->spill_len = (uint32_t)n;
    }
    rx_unlink(io, rx);
    /* release: the spill and fields above go to whoever adopts rx. */
    atomic_store_explicit(&rx->owner, NULL, memory_order_release);
}

static void rx_free(struct weft__io *io, struct rx *rx)
{
    rx_drop(io, rx);
    rx_unlink(io, rx);
    weft__free(rx, sizeof(*rx));
}

/* The fd is being closed (weft_close): its receive state goes. Waiters end
 * with -ECANCELED (-EBADF to them); the multishot ends through the close's
 * cancel of every op on the fd. */
static void rx_close(struct weft__io *io, int fd)
{
    _Atomic(void *) *slot = rx_slot(fd, false);
    struct rx *rx;
    struct weft__io_op *op;

    if (!slot || !(rx = atomic_load_explicit(slot, memory_order_acquire)))
        return;
    if (rx == RX_PLAIN_FD) {
        atomic_store_explicit(slot, NULL, memory_order_relaxed);
        return;
    }
    if (atomic_load_explicit(&rx->owner, memory_order_acquire) != io) {
        if (atomic_load_explicit(&rx->owner, memory_order_acquire))
            return; /* its owner gets its own notice */
        atomic_store_explicit(slot, NULL, memory_order_relaxed);
        rx_drop(io, rx);
        weft__free(rx, sizeof(*rx));
        return;
    }
    atomic_store_explicit(slot, NULL, memory_order_relaxed);
    while ((op = rx->waiters)) {
        rx_unwait(rx, op);
        weft__io_complete(op, -ECANCELED);
    }
    rx_drop(io, rx);
    rx->dead = true;
    if (!rx->armed)
        rx_free(io, rx);
}

/*
 * A new file took fd's number (an accept or a connect on it): receive
 * state left by a file closed with close(2) is not its. Ours is ended;
 * another worker's is only unhooked (its owner frees it at its end).
 */
static void rx_forget(struct weft__io *io, int fd)
{
    _Atomic(void *) *slot = rx_slot(fd, false);
    struct rx *rx;

    if (!slot || !(rx = atomic_load_explicit(slot, memory_order_acquire)))
        return;
    if (rx != RX_PLAIN_FD &&
        atomic_load_explicit(&rx->owner, memory_order_acquire) == io) {
        rx_close(io, fd);
        if (rx->armed) /* not closed through weft_close: cancel it here */
            prep_cancel(io, &rx->op);
        return;
    }
    atomic_store_explicit(slot, NULL, memory_order_relaxed);
}

/* Puts rx's multishot on the ring; false if the buffers are short. */
static bool rx_arm(struct weft__io *io, struct rx *rx)
{
    struct io_uring_sqe *sqe;

    if (rx->starved && io->bufs_free < RX_REARM)
        return false;
    rx->op = (struct weft__io_op){ .opcode = IOP_RECV_MULTI, .fd = rx->fd,
                                   .deadline = WEFT_NO_DEADLINE };
    if (take_slot(io, &rx->op) < 0)
        return false;
    rx->starved = false;
    rx->armed = true;
    sqe = get_sqes(io, 1);
    io_uring_prep_recv_multishot(sqe, rx->fd, NULL, 0, 0);
    /* Armed when the last bytes were taken: wait for more first. */
    sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = RX_GROUP;
    io_uring_sqe_set_data64(sqe, op_tag(&rx->op));
    return true;
}

/* One completion of rx's multishot. */
static void rx_event(struct weft__io *io, struct rx *rx, uint32_t slot,
                     const struct io_uring_cqe *cqe)
{
    bool more = cqe->flags & IORING_CQE_F_MORE;
    int res = cqe->res;

    if (cqe->flags & IORING_CQE_F_BUFFER) {
        uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);

        if (res > 0 && !rx->dead) {
            rx_queue(io, rx, bid, (uint32_t)res);
        } else {
            io->bufs_free--;
            buf_put(io, bid);
        }
    }
    if (more)
        goto serve;
    free_slot(io, slot);
    rx->armed = false;
    if (rx->dead) {
        rx_free(io, rx);
        return;
    }
    if (res == -ENOBUFS) {
        rx->starved = true;
#ifdef WEFT_FAULT_HOOKS
        io->rx_starved++;
#endif
    }
    else if (res <= 0 && res != -ECANCELED) {
        rx->has_end = true;
        rx->end = res;
    }
serve:
    if (rx->waiters)
        rx_serve(io, rx);
}

/* Slow path: the fd's rx, made (TCP sockets) or adopted; RX_PLAIN_FD for
 * other fds; NULL without memory. */
static struct rx *rx_find(struct weft__io *io, int fd,
                          _Atomic(void *) *slot)
{
    struct rx *rx = atomic_load_explicit(slot, memory_order_acquire);
    struct weft__io *none = NULL;
    int proto = 0;
    socklen_t len = sizeof(proto);

    if (rx == RX_PLAIN_FD)
        return rx;
    if (rx) {
        /* A former owner let go (release): the state is ours to take. */
        if (atomic_compare_exchange_strong_explicit(
                &rx->owner, &none, io, memory_order_acquire,
                memory_order_relaxed))
            rx_link(io, rx);
        return rx;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0 ||
        proto != IPPROTO_TCP) {
        atomic_store_explicit(slot, RX_PLAIN_FD, memory_order_relaxed);
        return RX_PLAIN_FD;
    }
    rx = weft__zalloc(sizeof(*rx));
    if (!rx)
        return NULL;
    rx->fd = fd;
    rx->head = rx->tail = BID_NONE;
    atomic_store_explicit(&rx->owner, io, memory_order_relaxed);
    rx_link(io, rx);
    /* release: rx's fields before its pointer. */
    atomic_store_explicit(slot, rx, memory_order_release);
    return rx;
}

/* States of op->u.uring.remote. */
enum { RQ_NONE, RQ_QUEUED, RQ_TAKEN, RQ_CANCELLED };

static void uring_wake(struct weft__io *io);

/*
 * A recv whose fd's bytes another worker (op->io) holds goes to that
 * worker, through its remote queue: it completes there, and the task's wake
 * queues it there, beside its ring. Its deadline is the task's timer.
 */
static int rx_remote(struct weft__io_op *op)
{
#ifdef WEFT_FAULT_HOOKS
    atomic_fetch_add_explicit(&weft__io_rx_handovers, 1, memory_order_relaxed);
#endif
    atomic_store_explicit(&op->u.uring.remote, RQ_QUEUED,
                          memory_order_relaxed);
    weft__io_cancelq_push(&op->io->remote, op);
    /* A busy owner takes it at its next turn; only a sleeping one needs
     * the eventfd. seq_cst: pairs with the fence in uring_wait(), so that
     * either it sees our push or we see it blocking. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&op->io->blocking, memory_order_relaxed))
        uring_wake(op->io);
    return WEFT__IO_SUB_TIMED;
}

/* Owner: a recv another worker handed over (rx_remote). */
static void rx_remote_run(struct weft__io *io, struct weft__io_op *op)
{
    _Atomic(void *) *slot = rx_slot(op->fd, false);
    struct rx *rx = slot ? atomic_load_explicit(slot, memory_order_acquire)
                         : NULL;
    struct weft__io *owner;
    int res;

    if (!rx || rx == RX_PLAIN_FD) {
        /* Closed meanwhile: -EBADF to the caller. */
        weft__io_complete(op, -ECANCELED);
        return;
    }
    owner = atomic_load_explicit(&rx->owner, memory_order_acquire);
    if (owner != io) {
        if (!owner) { /* let go meanwhile: take it, unless another did */
            rx_find(io, op->fd, slot);
            owner = atomic_load_explicit(&rx->owner, memory_order_acquire);
        }
        if (owner != io) { /* it moved on: follow it */
            op->io = owner;
            rx_remote(op);
            return;
        }
    }
    if (!rx->waiters && rx_take(io, rx, op, &res)) {
        weft__io_complete(op, res);
        return;
    }
    if (op->flags & MSG_DONTWAIT) {
        weft__io_complete(op, -EAGAIN);
        return;
    }
    if (!rx->armed && !rx->waiters && !rx_arm(io, rx)) {
        submit_plain(io, op);
        return;
    }
    rx_wait_add(rx, op);
}

/* Ends op at once with res, without the kernel. */
static int rx_done(struct weft__io_op *op, int res)
{
    op->result = res;
    atomic_store_explicit(&op->done, true, memory_order_relaxed);
    return WEFT__IO_SUB_DONE;
}

/*
 * A recv (or a read, on an fd that has an rx) through the fd's receive
 * state: done at once from queued bytes, or waiting for them (here or, by
 * rx_remote, on the worker that holds them), or RX_NONE (the plain
 * path).
 */
static int rx_recv(struct weft__io *io, struct weft__io_op *op)
{
    _Atomic(void *) *slot;
    struct rx *rx;
    int res;

#ifdef WEFT_FAULT_HOOKS
    if (atomic_load_explicit(&weft__io_no_rx, memory_order_relaxed))
        return RX_NONE;
#endif
    if (!(slot = rx_slot(op->fd, op->opcode == IOP_RECV)))
        return RX_NONE;
    rx = atomic_load_explicit(slot, memory_order_acquire);
    if (rx == RX_PLAIN_FD || (!rx && op->opcode != IOP_RECV))
        return RX_NONE;
    /* No bytes asked for (0) or a NULL buffer (-EFAULT): recv(2)'s answers
     * at once, given here once the fd has a receive state. A plain recv
     * would wait for readiness behind the armed multishot, which takes
     * the bytes, and never return. */
    if (unlikely(!op->buf || !op->len))
        return rx ? rx_done(op, op->len ? -EFAULT : 0) : RX_NONE;
    if (unlikely(!rx || atomic_load_explicit(&rx->owner,
                                             memory_order_relaxed) != io)) {
        if (rx &&
            (op->io = atomic_load_explicit(&rx->owner, memory_order_acquire)))
            return rx_remote(op);
        rx = rx_find(io, op->fd, slot);
        if (!rx)
            return -ENOMEM;
        if (rx == RX_PLAIN_FD)
            return RX_NONE;
    }
    op->io = io;
    if (!rx->waiters && rx_take(io, rx, op, &res)) {
#ifdef WEFT_FAULT_HOOKS
        io->rx_inline++;
#endif
        return rx_done(op, res);
    }
    if (op->flags & MSG_DONTWAIT) {
        if (rx->armed || rx->waiters)
            return -EAGAIN;
        return RX_NONE;
    }
    if (!rx->armed && !rx->waiters && !rx_arm(io, rx))
        return RX_NONE; /* starved: a plain recv */
    rx_wait_add(rx, op);
    return WEFT__IO_SUB_TIMED;
}

/* A cancel of a recv waiting on buffered data (owner only). */
static void rx_cancel_wait(struct weft__io_op *op)
{
    _Atomic(void *) *slot = rx_slot(op->fd, false);
    struct rx *rx = slot ? atomic_load_explicit(slot, memory_order_relaxed)
                         : NULL;

    if (!op->u.uring.rx_wait)
        return;
    if (rx && rx != RX_PLAIN_FD)
        rx_unwait(rx, op);
    op->u.uring.rx_wait = false;
    weft__io_complete(op, -ECANCELED);
}

#ifdef WEFT_FAULT_HOOKS
int weft__io_rx_probe(int fd, struct weft__io_rx_probe *out)
{
    const struct weft__io_ops *ops;
    struct weft__io *io = weft__io_current(&ops);
    _Atomic(void *) *slot = rx_slot(fd, false);
    struct rx *rx = slot ? atomic_load_explicit(slot, memory_order_acquire)
                         : NULL;

    *out = (struct weft__io_rx_probe){ 0 };
    if (!io || ops != &weft__io_uring_ops)
        return -ENOENT;
    out->uring = io->rx_ok;
    out->bufs_free = io->bufs_free;
    out->inline_hits = io->rx_inline;
    out->starved = io->rx_starved;
    if (!rx || rx == RX_PLAIN_FD)
        return -ENOENT;
    out->owned = atomic_load_explicit(&rx->owner, memory_order_acquire) == io;
    if (!out->owned)
        return 0;
    out->armed = rx->armed;
    out->queued = (long)(rx->spill_len - rx->spill_off);
    for (uint16_t b = rx->head; b != BID_NONE; b = io->meta[b].next)
        out->queued += io->meta[b].len;
    for (struct weft__io_op *op = rx->waiters; op; op = op->u.uring.rx_next)
        out->waiters++;
    return 0;
}
#endif

/*
 * The worker ends: every multishot is cancelled and its last completion
 * reaped, so that nothing received is lost with the ring; unread bytes stay
 * with the fd (a spill) for a later runtime, the rest is freed.
 */
static void rx_fini(struct weft__io *io)
{
    struct rx *rx, *next;

    for (int tries = 0; tries < 1000; tries++) {
        bool armed = false;

        for (rx = io->rxs; rx; rx = rx->next)
            if (rx->armed) {
                armed = true;
                if (!rx->stopping) {
                    rx->stopping = true; /* cancelled once */
                    prep_cancel(io, &rx->op);
                }
            }
        if (!armed)
            break;
        io_uring_submit_and_wait(&io->ring, 1);
        reap(io);
    }
    for (rx = io->rxs; rx; rx = next) {
        _Atomic(void *) *slot = rx_slot(rx->fd, false);

        next = rx->next;
        if (!rx->dead && rx_has_data(rx) && !rx->armed) {
            rx_release(io, rx);
            continue;
        }
        if (slot && atomic_load_explicit(slot, memory_order_relaxed) == rx)
            atomic_store_explicit(slot, NULL, memory_order_relaxed);
        rx_free(io, rx);
    }
}

static void uring_cancel(struct weft__io *io, struct weft__io_op *op)
{
    uint8_t queued = RQ_QUEUED;

    /* Still on the holder's queue: the holder ends it when it takes it.
     * acquire (the load, and the CAS when it fails): pairs with the
     * holder's release CAS to RQ_TAKEN, after which it no longer reads
     * op->cancel_next, which the push below writes. */
    if (unlikely(atomic_load_explicit(&op->u.uring.remote,
                                      memory_order_acquire) == RQ_QUEUED) &&
        atomic_compare_exchange_strong_explicit(
            &op->u.uring.remote, &queued, RQ_CANCELLED,
            memory_order_acquire, memory_order_acquire))
        return;
    if (op->io == io && op->opcode != IOP_CLOSE) {
        if (op->u.uring.rx_wait)
            rx_cancel_wait(op);
        else
            prep_cancel(io, op);
        return;
    }
    weft__io_cancelq_push(&op->io->remote, op);
    if (op->io != io)
        uring_wake(op->io);
}

/*
 * Cancels requested by tasks that moved to other workers, and close
 * notices (IOP_CLOSE, see backend.h): those cancel every op on the fd and
 * are acked only once the cancel went into the kernel (ack_closes), which
 * then holds the file, so the closer may drop the fd.
 */
static void take_remote_cancels(struct weft__io *io, bool may_flush)
{
    struct weft__io_op *op = weft__io_cancelq_take(&io->remote);

    while (op) {
        struct weft__io_op *next = op->cancel_next;
        uint32_t slot;

        if (!may_flush && io_uring_sq_space_left(&io->ring) == 0) {
            /* A rescuer cannot make room: the rest waits its next turn. */
            for (; op; op = next) {
                next = op->cancel_next;
                weft__io_cancelq_push(&io->remote, op);
            }
            return;
        }

        if (op->opcode != IOP_CLOSE &&
            atomic_load_explicit(&op->u.uring.remote, memory_order_relaxed)
                != RQ_NONE &&
            atomic_load_explicit(&op->u.uring.remote, memory_order_relaxed)
                != RQ_TAKEN) {
            uint8_t queued = RQ_QUEUED;
            /* release: our read of op->cancel_next (next, above) comes
             * before a later cancel's push rewrites it. */
            bool cancelled = !atomic_compare_exchange_strong_explicit(
                &op->u.uring.remote, &queued, RQ_TAKEN, memory_order_release,
                memory_order_relaxed);

            /* Taken: the task waits for done alone from here, so no wake
             * (release: pairs with the acquire in op_is_done()). */
            atomic_store_explicit(&op->cancel_queued, false,
                                  memory_order_release);
            if (cancelled)
                weft__io_complete(op, -ECANCELED);
            else
                rx_remote_run(io, op);
            op = next;
            continue;
        }
        if (op->opcode == IOP_CLOSE && io->rx_ok)
            rx_close(io, op->fd);
        if (op->opcode == IOP_CLOSE && !fd_busy(io, op->fd)) {
            weft__io_cancelq_ack(op); /* nothing of ours on it */
            op = next;
            continue;
        }
        if (op->opcode == IOP_CLOSE) {
            struct io_uring_sqe *sqe = get_sqes(io, 1);

            io_uring_prep_cancel_fd(sqe, op->fd, IORING_ASYNC_CANCEL_ALL);
            io_uring_sqe_set_data64(sqe, TAG_IGNORE);
            op->u.uring.ack_next = io->close_acks;
            io->close_acks = op;
            op = next;
            continue;
        }
        if (op->u.uring.rx_wait)
            rx_cancel_wait(op);
        else if (tag_op(io, op_tag(op), &slot) == op)
            prep_cancel(io, op);
        weft__io_cancelq_ack(op);
        op = next;
    }
}

/* After the enter that submitted their cancels: close notices are done. */
static void ack_closes(struct weft__io *io)
{
    struct weft__io_op *op = io->close_acks, *next;

    io->close_acks = NULL;
    for (; op; op = next) {
        next = op->u.uring.ack_next;
        weft__io_cancelq_ack(op);
    }
}

/* ---- completion ---------------------------------------------------------- */

static void complete(struct weft__io *io, const struct io_uring_cqe *cqe)
{
    uint64_t tag = io_uring_cqe_get_data64(cqe);
    struct weft__io_op *op;
    uint32_t slot;

    if (tag == TAG_IGNORE)
        return;
    if (tag == TAG_WAKE) {
        io->wake_armed = false;
        return;
    }
    op = tag_op(io, tag, &slot);
    if (!op) {
        io->stale++;
        return;
    }
    if (op->opcode == IOP_RECV && cqe->res > 0) {
        if (cqe->flags & IORING_CQE_F_SOCK_NONEMPTY)
            io->fdops[op->fd] &= ~FD_DRAINED;
        else
            io->fdops[op->fd] |= FD_DRAINED;
    }
    if (op->opcode == IOP_RECV_MULTI) {
        rx_event(io, container_of(op, struct rx, op), slot, cqe);
        return;
    }
    if (unlikely(op->opcode == IOP_ACCEPT || op->opcode == IOP_ACCEPT_MULTI) &&
        cqe->res >= 0 && io->rx_ok)
        rx_forget(io, cqe->res);
    if (op->opcode == IOP_ACCEPT_MULTI) {
        bool more = cqe->flags & IORING_CQE_F_MORE;

        if (!more) {
            free_slot(io, slot);
            weft__metrics_io_done(NULL); /* the op submitted ends */
        }
        /* After the event the op may be gone: keep its tag, not op. */
        if (weft__io_accept_event(op, cqe->res, more) && more &&
            io->nstops < STOPS_MAX)
            io->stops[io->nstops++] = tag;
        return;
    }
    free_slot(io, slot);
    weft__io_complete(op, cqe->res);
}

/* Handles the CQEs posted so far. */
static unsigned reap_posted(struct weft__io *io)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;

    io_uring_for_each_cqe(&io->ring, head, cqe) {
        complete(io, cqe);
        n++;
    }
    io_uring_cq_advance(&io->ring, n);
    return n;
}

static unsigned reap(struct weft__io *io)
{
    unsigned n, total = 0;

    do {
        n = reap_posted(io);
        total += n;
        /* CQEs the kernel kept back while the CQ was full (NODROP). */
        if (n == 0 && io_uring_cq_has_overflow(&io->ring))
            n = io_uring_get_events(&io->ring) == 0;
    } while (n);
    return total;
}

static void arm_wake(struct weft__io *io)
{
    struct io_uring_sqe *sqe;

    if (io->wake_armed)
        return;
    sqe = get_sqes(io, 1);
    io_uring_prep_read(sqe, io->wake_fd, &io->wake_buf, sizeof(io->wake_buf),
                       0);
    io_uring_sqe_set_data64(sqe, TAG_WAKE);
    io->wake_armed = true;
}

static int enter(struct weft__io *io, int64_t timeout_ns)
{
    struct __kernel_timespec ts;
    struct io_uring_cqe *cqe;

    weft__metrics_kernel_entry();
    if (timeout_ns == 0 && io->sqpoll)
        return io_uring_submit(&io->ring);
    if (timeout_ns == 0)
        return io_uring_submit_and_get_events(&io->ring);
    arm_wake(io);
    if (timeout_ns < 0)
        return io_uring_submit_and_wait(&io->ring, 1);
    ts.tv_sec = timeout_ns / WEFT__NS_PER_SEC;
    ts.tv_nsec = timeout_ns % WEFT__NS_PER_SEC;
    return io_uring_submit_and_wait_timeout(&io->ring, &cqe, 1, &ts, NULL);
}

/* Multishots whose owner asked to stop them (cancelled by tag: a stale
 * one finds nothing). */
static void issue_stops(struct weft__io *io)
{
    while (io->nstops) {
        struct io_uring_sqe *sqe = get_sqes(io, 1);

        io_uring_prep_cancel64(sqe, io->stops[--io->nstops], 0);
        io_uring_sqe_set_data64(sqe, TAG_IGNORE);
    }
}

static int uring_wait(struct weft__io *io, int64_t timeout_ns)
{
    int ret, n;

    take_remote_cancels(io, true);
    if (timeout_ns == 0 && !io->inflight && !io_uring_sq_ready(&io->ring)) {
        n = (int)reap(io);
        goto out;
    }
    if (timeout_ns != 0) {
        atomic_store_explicit(&io->blocking, true, memory_order_relaxed);
        /* seq_cst: pairs with the fence in rx_remote(). */
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load_explicit(&io->remote.head, memory_order_relaxed))
            timeout_ns = 0; /* a recv came meanwhile: take it first */
    }
    ret = enter(io, timeout_ns);
    atomic_store_explicit(&io->blocking, false, memory_order_relaxed);
    if (io->close_acks) {
        /* The cancels must be in the kernel before the acks (with SQPOLL:
         * taken by its thread). Rare: a close while others wait. */
        while (io_uring_sq_ready(&io->ring)) {
            flush(io);
            if (io->sqpoll && io_uring_sq_ready(&io->ring))
                sched_yield();
        }
        ack_closes(io);
    }
    /* Interrupted, timed out or short of CQ room: not a failure of the
     * backend; what completed is reaped and the worker comes back. */
    if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN &&
        ret != -EBUSY)
        return ret;
    n = (int)reap(io);
out:
    if (unlikely(io->nstops))
        issue_stops(io);
    return n;
}

/*
 * A rescuer's turn (backend.h): the owner is frozen, so its ring is ours,
 * except that only its thread may enter the kernel for it (SINGLE_ISSUER;
 * with deferred task work, also the only one whose entry posts
 * completions). So the rescuer prepares (remote cancels), publishes the SQ
 * tail as io_uring_submit would, and kicks the owner's thread into
 * kicked(), which submits and runs the task work; then it reaps the CQ.
 * It kicks only when that entry has work: SQEs to submit, or completions
 * waiting for it (the TASKRUN flag; without the flag, while ops are in
 * flight on a ring whose task work waits for its thread). A ring without
 * deferred or cooperative task work posts completions by itself.
 */
static int uring_rescue(struct weft__io *io, bool (*kick)(void *), void *arg)
{
    struct io_uring_sq *sq = &io->ring.sq;
    unsigned flags = io->ring.flags, pending;
    bool waits_for_owner, need;

    take_remote_cancels(io, false);
    if (sq->sqe_tail != sq->sqe_head) {
        sq->sqe_head = sq->sqe_tail;
        io_uring_smp_store_release(sq->ktail, sq->sqe_tail);
    }
    pending = *sq->ktail - io_uring_smp_load_acquire(sq->khead);
    waits_for_owner =
        flags & (IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN);
    if (flags & IORING_SETUP_TASKRUN_FLAG)
        need = IO_URING_READ_ONCE(*sq->kflags) & IORING_SQ_TASKRUN;
    else
        need = waits_for_owner && io->inflight;
    if (pending && !(flags & IORING_SETUP_SINGLE_ISSUER)) {
        /* Any thread may submit to this ring: no kick for that. */
        io_uring_submit(&io->ring);
        if (io->close_acks)
            ack_closes(io);
        pending = 0;
    }
    need = (need || pending) && !io->sqpoll;
    if (need) {
        atomic_store_explicit(&io->kick_submit, pending, memory_order_relaxed);
        if (kick(arg) && io->close_acks)
            ack_closes(io);
    }
    return (int)reap_posted(io);
}

static void uring_kicked(struct weft__io *io)
{
    unsigned n = atomic_load_explicit(&io->kick_submit, memory_order_relaxed);

    syscall(__NR_io_uring_enter, io->ring.ring_fd, n, 0,
            IORING_ENTER_GETEVENTS, NULL, (size_t)0);
}

static void uring_wake(struct weft__io *io)
{
    weft__io_eventfd_wake(io->wake_fd);
}

const struct weft__io_ops weft__io_uring_ops = {
    .name = "uring",
    .op_deadlines = true,
    .init = uring_init,
    .fini = uring_fini,
    .submit = uring_submit,
    .cancel = uring_cancel,
    .wait = uring_wait,
    .wake = uring_wake,
    .rescue = uring_rescue,
    .kicked = uring_kicked,
};
