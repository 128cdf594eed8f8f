/*
 * The I/O backend interface: what a worker needs from its event loop.
 *
 * Each worker owns one backend instance, created on the worker's thread and
 * used only by it, except wake(), which any thread may call. A backend keeps
 * its state private to its own file (io/uring.c, io/epoll.c); the runtime
 * picks one at start (probing io_uring, honouring WEFT_IO) and reaches I/O
 * only through this table. Backends reach the scheduler only through
 * runtime/task.h (weft__task_wake).
 */
#ifndef WEFT_IO_BACKEND_H
#define WEFT_IO_BACKEND_H

#include <stdint.h>

struct weft__config;
struct weft__io; /* a backend's private per-worker state */

struct weft__io_ops {
    const char *name;

    /* Creates this worker's instance. Returns 0 or -errno. */
    int (*init)(struct weft__io **io, const struct weft__config *cfg);
    void (*fini)(struct weft__io *io);

    /*
     * One event-loop turn: flushes pending submissions, blocks until a
     * completion, a wake() or timeout_ns passes (0: do not block; -1: no
     * timeout), reaps what completed and wakes the tasks waiting on it.
     * Returns the number of completions handled, or -errno on a failure of
     * the backend itself.
     */
    int (*wait)(struct weft__io *io, int64_t timeout_ns);

    /* Makes a concurrent or later wait() return. Any thread. */
    void (*wake)(struct weft__io *io);
};

extern const struct weft__io_ops weft__io_uring_ops;
extern const struct weft__io_ops weft__io_epoll_ops;

/* True if io_uring can be set up here (probed once per process). */
int weft__io_uring_probe(void);

#endif
