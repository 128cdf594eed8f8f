/*
 * What each opcode is, in one table (in the manner of the kernel's
 * io_uring/opdef.c), and the parts of an operation's life every driver
 * shares: its completion and the cancel queue (backend.h).
 *
 * The table is indexed by opcode with designated initialisers, so nothing
 * depends on the enum's order, and its size is checked against IOP__COUNT:
 * an opcode added to the enum without a row fails the build.
 */
#include "backend.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "../common.h"
#include "../metrics.h"
#include "../task.h"

const struct weft__io_opdef weft__io_opdefs[] = {
    [IOP_ACCEPT] = { .name = "accept", .on_fd = true, .events = EPOLLIN },
    [IOP_CONNECT] = { .name = "connect", .on_fd = true, .events = EPOLLOUT },
    [IOP_RECV] = { .name = "recv", .on_fd = true, .msg = true,
                   .events = EPOLLIN },
    [IOP_SEND] = { .name = "send", .on_fd = true, .msg = true,
                   .events = EPOLLOUT },
    [IOP_RECVMSG] = { .name = "recvmsg", .on_fd = true, .msg = true,
                      .events = EPOLLIN },
    [IOP_SENDMSG] = { .name = "sendmsg", .on_fd = true, .msg = true,
                      .events = EPOLLOUT },
    [IOP_READ] = { .name = "read", .on_fd = true, .rw = true,
                   .events = EPOLLIN },
    [IOP_WRITE] = { .name = "write", .on_fd = true, .rw = true,
                    .events = EPOLLOUT },
    [IOP_READV] = { .name = "readv", .on_fd = true, .rw = true, .vec = true,
                    .events = EPOLLIN },
    [IOP_WRITEV] = { .name = "writev", .on_fd = true, .rw = true,
                     .vec = true, .events = EPOLLOUT },
    /* openat and statx use fd as a directory (AT_FDCWD is negative). */
    [IOP_OPENAT] = { .name = "openat", .file = true },
    [IOP_CLOSE] = { .name = "close" },
    [IOP_FSYNC] = { .name = "fsync", .on_fd = true, .file = true },
    [IOP_STATX] = { .name = "statx", .file = true },
    [IOP_SHUTDOWN] = { .name = "shutdown", .on_fd = true,
                       .events = EPOLLIN },
    /* The events are the op's flags (POLL* and EPOLL* agree). */
    [IOP_POLL] = { .name = "poll", .on_fd = true },
    [IOP_ACCEPT_MULTI] = { .name = "accept_multi", .on_fd = true,
                           .events = EPOLLIN },
    [IOP_RECV_MULTI] = { .name = "recv_multi", .on_fd = true,
                         .events = EPOLLIN },
};

_Static_assert(sizeof(weft__io_opdefs) / sizeof(weft__io_opdefs[0]) ==
                   IOP__COUNT,
               "every opcode has a row in weft__io_opdefs");

_Atomic uint64_t weft__io_efaults;

void weft__io_complete(struct weft__io_op *op, int result)
{
    struct weft_task *t = op->task;

    /* Completed once, by its owner, for a task that waits on it. */
    WEFT__CHECK(t && op->io &&
                !atomic_load_explicit(&op->done, memory_order_relaxed));
    if (unlikely(result == -EFAULT))
        atomic_fetch_add_explicit(&weft__io_efaults, 1, memory_order_relaxed);
    weft__metrics_io_done(t);
    op->result = result;
    /* release: pairs with the acquire in op_is_done() (io/op.c); from here
     * on the task may return and its stack frame (op) be gone. */
    atomic_store_explicit(&op->done, true, memory_order_release);
    weft__task_wake(t);
}

void weft__io_cancelq_push(struct weft__io_cancelq *q, struct weft__io_op *op)
{
    struct weft__io_op *head = atomic_load_explicit(&q->head,
                                                    memory_order_relaxed);

    atomic_store_explicit(&op->cancel_queued, true, memory_order_relaxed);
    do {
        op->cancel_next = head;
        /* release: publishes op's fields; pairs with the acquire exchange
         * in weft__io_cancelq_take(). */
    } while (!atomic_compare_exchange_weak_explicit(
        &q->head, &head, op, memory_order_release, memory_order_relaxed));
}

struct weft__io_op *weft__io_cancelq_take(struct weft__io_cancelq *q)
{
    if (!atomic_load_explicit(&q->head, memory_order_relaxed))
        return NULL;
    /* acquire: pairs with the release CAS in weft__io_cancelq_push(). */
    return atomic_exchange_explicit(&q->head, NULL, memory_order_acquire);
}

void weft__io_cancelq_ack(struct weft__io_op *op)
{
    struct weft_task *t = op->task;

    /* release: pairs with the acquire in op_is_done(); op may vanish. */
    atomic_store_explicit(&op->cancel_queued, false, memory_order_release);
    weft__task_wake(t);
}

void weft__io_eventfd_wake(int fd)
{
    uint64_t one = 1;

    /* EAGAIN means the counter is saturated: a wake is pending anyway. */
    while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}
