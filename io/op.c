/*
 * The life of one I/O operation as a task sees it, written once for both
 * drivers (weft__io_run, withdraw), weft_close's protocol, and the fd marks
 * it relies on. The marks live here, above the driver, because only this
 * layer uses them: weft__io_run and the listener set them when a task
 * starts waiting on an fd, weft__io_close takes them to know which workers
 * to notify; a driver only ever sees the notices (backend.h).
 *
 * Cancellation protocol (the race it prevents: a task returning -ECANCELED,
 * and its caller freeing the buffer, while the kernel still owns the
 * operation and writes into that buffer later). weft__io_run never returns
 * before the op is done, i.e. before the backend has seen its final
 * completion. A cancel or a timeout only asks the owner to finish the op
 * early (IORING_OP_ASYNC_CANCEL, or unhooking an epoll waiter), then waits
 * for the completion like any other. The completion decides the result: if
 * the op succeeded (or failed on its own) meanwhile, that result is
 * returned and a taken cancellation is put back, so no data the kernel
 * moved is ever dropped; only a completion of -ECANCELED becomes
 * -ECANCELED or -ETIMEDOUT, whichever caused it.
 */
#include "op.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "../runtime/common.h"
#include "../runtime/fdtable.h"
#include "../runtime/mem.h"
#include "../runtime/sanitizer.h"
#include "../runtime/task.h"
#include "weft.h"

#ifdef WEFT_FAULT_HOOKS
_Atomic size_t weft__io_rw_cap;
#endif

/* ---- fd marks ------------------------------------------------------------ */

/*
 * Which workers may have ops waiting on an fd: one 64-bit mask per fd
 * (worker i is bit i % 64), in the per-fd table of runtime/fdtable.h, so
 * readers need no lock. A mark stays until weft_close takes it; a stale
 * one (an fd closed with close(), a task that moved on) costs only a
 * needless notice. fds beyond the table
 * are never marked, and their close notifies every worker. A page is made
 * only for an fd that is open: a bad fd number allocates nothing.
 */
static struct weft__fdtable fdmarks;

static _Atomic uint64_t *fdmark_slot(int fd, bool create)
{
    weft__fd_slot_t *s = weft__fdtable_slot(&fdmarks, fd, false);

    if (!s && create) {
        if (fcntl(fd, F_GETFD) < 0)
            return NULL; /* not open: its op fails with -EBADF, nothing waits */
        s = weft__fdtable_slot(&fdmarks, fd, true);
    }
    return s ? &s->word : NULL;
}

void weft__io_fd_mark(int fd, int self)
{
    uint64_t bit = 1ull << (self % 64);
    _Atomic uint64_t *m;

    if (fd < 0 || self < 0 || !(m = fdmark_slot(fd, true)))
        return;
    /* A plain load first: an fd used again on the same worker costs no
     * read-modify-write. relaxed: weft_close orders through the notice. */
    if (!(atomic_load_explicit(m, memory_order_relaxed) & bit))
        atomic_fetch_or_explicit(m, bit, memory_order_relaxed);
}

/* Takes fd's marks: the workers to notify before closing it. */
static uint64_t fd_take_marks(int fd)
{
    _Atomic uint64_t *m;

    if ((unsigned)fd >= WEFT__FDTABLE_FDS)
        return UINT64_MAX;
    m = fdmark_slot(fd, false);
    if (!m || !atomic_load_explicit(m, memory_order_relaxed))
        return 0;
    return atomic_exchange_explicit(m, 0, memory_order_relaxed);
}

static bool op_is_done(void *arg)
{
    struct weft__io_op *op = arg;

    return atomic_load_explicit(&op->done, memory_order_acquire) &&
           !atomic_load_explicit(&op->cancel_queued, memory_order_acquire);
}

/* Valgrind cannot see the kernel fill the caller's buffers. */
static void mark_defined(const struct weft__io_op *op)
{
    const struct iovec *iov = op->buf;
    size_t left = (size_t)op->result, n = op->len;

    switch (op->opcode) {
    case IOP_RECV:
    case IOP_READ:
        san_vg_defined(op->buf, left);
        return;
    case IOP_RECVMSG:
        iov = ((const struct msghdr *)op->buf)->msg_iov;
        n = ((const struct msghdr *)op->buf)->msg_iovlen;
        /* fall through */
    case IOP_READV:
        for (size_t i = 0; i < n && left; i++) {
            size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;

            san_vg_defined(iov[i].iov_base, k);
            left -= k;
        }
        return;
    default:
        return;
    }
}

/* After a cancel or timeout: wait until the owner has let go of op. */
static int withdraw(struct weft_task *t, struct weft__io_op *op, int why,
                    const void *where)
{
    if (!atomic_load_explicit(&op->done, memory_order_relaxed))
        weft__io_cancel(op);
    /* Further cancels stay pending: this wait must not be cut short. */
    while (!op_is_done(op))
        weft__task_park(t, WHY_IO, where);
    if (op->result == -ECANCELED)
        return why;
    if (why == -ECANCELED)
        weft__task_restore_cancel(t);
    return op->result;
}

static int finished(struct weft__io_op *op)
{
    /* Only our own cancel, the linked timeout or a weft_close of the fd
     * end an op with -ECANCELED, and our cancel goes through withdraw().
     * A timeout fires at the deadline, not before. */
    if (op->result == -ECANCELED)
        return op->deadline != WEFT_NO_DEADLINE && weft__now() >= op->deadline
                   ? -ETIMEDOUT
                   : -EBADF;
    if (op->result > 0)
        mark_defined(op);
    return op->result;
}

int weft__io_run(struct weft__io_op *op, int64_t deadline, const void *where)
{
    const struct weft__io_ops *ops;
    struct weft__io *io = weft__io_current(&ops);
    struct weft_task *t = io ? weft__task_current() : NULL;
    int ret;

    /* The caller's mistake, refused before a backend indexes a table with
     * it (a dirfd may be AT_FDCWD: openat and statx leave it to the
     * kernel). */
    if (unlikely(op->fd < 0) && weft__io_def(op->opcode)->on_fd)
        return -EBADF;
    if (!t)
        return -EPERM;
    if (weft__task_take_cancel(t))
        return -ECANCELED;
    deadline = weft__wait_deadline(t, deadline);
    if (deadline != WEFT_NO_DEADLINE && deadline <= weft__now())
        return -ETIMEDOUT;
    op->task = t;
    op->deadline = deadline;
    if (weft__io_def(op->opcode)->on_fd)
        weft__io_fd_mark(op->fd, weft_worker_id());
    ret = weft__io_submit(op);
    if (ret < 0)
        return ret;
    if (ret == WEFT__IO_SUB_DONE)
        return finished(op);
    ret = weft__task_block(t, op_is_done, op,
                           ops->op_deadlines && ret != WEFT__IO_SUB_TIMED ?
                               WEFT_NO_DEADLINE : deadline,
                           WHY_IO, where);
    if (ret < 0)
        return withdraw(t, op, ret, where);
    return finished(op);
}

/* ---- close --------------------------------------------------------------- */

static bool notice_acked(void *arg)
{
    struct weft__io_op *note = arg;

    return !atomic_load_explicit(&note->cancel_queued, memory_order_acquire);
}

/* Waits until done(arg), whatever cancels arrive meanwhile; returns
 * whether one did. It is taken: the caller puts it back once done. */
static bool wait_uncut(struct weft_task *t, bool (*done)(void *), void *arg,
                       const void *where)
{
    bool cancelled = false;

    while (weft__task_block(t, done, arg, WEFT_NO_DEADLINE, WHY_IO, where) ==
           -ECANCELED)
        cancelled = true;
    return cancelled;
}

/* Has worker i end its ops on fd, and waits until it has, whatever cancels
 * arrive (the notice lives on this stack); returns whether one did. The
 * task may come back on another worker. */
static bool notify_close(struct weft_task *t, unsigned i, int fd,
                         const void *where)
{
    struct weft__io_op note = { .opcode = IOP_CLOSE, .fd = fd, .task = t };

    note.io = weft__io_of(i);
    if (!note.io)
        return false;
    weft__io_cancel(&note);
    return wait_uncut(t, notice_acked, &note, where);
}

/*
 * If only this worker marked fd, its backend ends its ops on fd as part of
 * the close (nothing suspends in between, so the task cannot move). Else
 * every marked worker gets a notice, this one included: the closer may
 * move while it waits for the acks, so "this worker" is not fixed.
 *
 * Nothing cuts a close short, neither a cancel nor an expired scope: the
 * fd is gone either way, so a close that gave up half-way would leak it.
 * A cancel that arrives meanwhile stays pending for the next call.
 */
int weft__io_close(int fd, const void *where)
{
    struct weft__io_op op = { .opcode = IOP_CLOSE, .fd = fd };
    const struct weft__io_ops *ops;
    struct weft__io *io = weft__io_current(&ops);
    struct weft_task *t = io ? weft__task_current() : NULL;
    int self = weft_worker_id(), ret;
    bool cancelled;
    uint64_t marks;

    if (unlikely(fd < 0))
        return -EBADF;
    if (!t)
        return -EPERM;
    cancelled = weft__task_take_cancel(t);
    marks = fd_take_marks(fd);
    /* Workers past 64 share bits: a set bit notifies each of them. */
    if (marks & ~(1ull << (self % 64)))
        for (unsigned i = 0; weft__io_of(i); i++)
            if (marks & (1ull << (i % 64)))
                cancelled |= notify_close(t, i, fd, where);
    /* The notices may have moved us: submit on the worker we are on. */
    op.task = t;
    op.deadline = WEFT_NO_DEADLINE;
    ret = weft__io_submit(&op);
    if (ret == 0) {
        cancelled |= wait_uncut(t, op_is_done, &op, where);
        ret = finished(&op);
    }
    if (cancelled)
        weft__task_restore_cancel(t);
    return ret;
}
