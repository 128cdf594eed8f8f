/*
 * Running one I/O operation from a task, for the files that implement the
 * public calls (op.c, socket.c, file.c, net.c, listener.c). Task context
 * only.
 */
#ifndef WEFT__IO_OP_H
#define WEFT__IO_OP_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/common.h"
#include "../runtime/driver/backend.h"

/*
 * The most one data call moves: read(2) and write(2) cap a transfer at
 * Linux's MAX_RW_COUNT (INT_MAX rounded down to a 4 KiB page) and return a
 * short count, and so does every weft call that takes a length. io_uring
 * carries the length in 32 bits (2^32 would be 0) and results travel as
 * int, so the clamp is applied before either backend sees the length.
 */
#define WEFT__IO_RW_MAX ((size_t)0x7ffff000)

#ifdef WEFT_FAULT_HOOKS
#include <stdatomic.h>
/* Test builds: a test may lower the clamp (0: WEFT__IO_RW_MAX) to see
 * weft_read_exact and weft_write_all loop over it without moving 4 GiB. */
extern _Atomic size_t weft__io_rw_cap;

static inline size_t weft__io_rw_max(void)
{
    size_t cap = atomic_load_explicit(&weft__io_rw_cap, memory_order_relaxed);

    return cap ? cap : WEFT__IO_RW_MAX;
}
#else
static inline size_t weft__io_rw_max(void) { return WEFT__IO_RW_MAX; }
#endif

static inline size_t weft__io_clamp_len(size_t len)
{
    size_t max = weft__io_rw_max();

    return len < max ? len : max;
}


/*
 * Issues op (opcode and arguments filled in, the rest zero) on the calling
 * worker and suspends until it completes, the deadline or an enclosing
 * timeout scope passes (-ETIMEDOUT) or the task is cancelled (-ECANCELED).
 * Either way returns only once the backend has let go of op and its
 * buffers. An op that completed while being cancelled returns its result
 * and leaves the cancellation pending. Returns -EPERM outside a task.
 */
int weft__io_run(struct weft__io_op *op, int64_t deadline, const void *where);

/*
 * Closes fd after every worker that may have ops waiting on it ended them
 * (-EBADF to their callers). Task context only; -EPERM outside a task.
 */
int weft__io_close(int fd, const void *where);

/*
 * Closing an fd others wait on. Every op that may wait on an fd marks the
 * fd with its worker (weft__io_fd_mark, in weft__io_run and the listener);
 * weft__io_close takes the marks. If other workers marked it, each marked
 * worker (the caller's included) first gets a close notice (backend.h) and
 * ends its ops on the fd. The fd is closed only after every ack, so its
 * number cannot be reused meanwhile.
 */
void weft__io_fd_mark(int fd, int self);

#endif
