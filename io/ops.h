/*
 * Running one I/O operation from a task, for the files that implement the
 * public calls (ops.c, file.c, net.c). Task context only.
 */
#ifndef WEFT_IO_OPS_H
#define WEFT_IO_OPS_H

#include <stdint.h>

#include "backend.h"

/* The caller's return address: where a suspended task waits (dumps). */
#define WEFT_WHERE __builtin_return_address(0)

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

#endif
