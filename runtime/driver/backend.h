/*
 * The I/O driver: what a worker needs from its event loop, the one
 * description of an I/O operation both drivers execute, and the table of
 * what each opcode is (op.c). The driver sits below the worker loop: it
 * reaches the scheduler only through the task wake (runtime/task.h) and
 * the layer above (io/) only through one event hook for the multishot
 * listener (weft__io_accept_event), whose op lives in heap memory.
 *
 * Each worker owns one driver instance, created on the worker's thread and
 * used only by it, except wake() (any thread), cancel() (the task that
 * issued the operation, on whichever worker it now runs) and rescue() (a
 * rescuer's thread while the owner is stuck in a task and frozen, see
 * "Stalls" in worker.c: then the rescuer alone drives the instance). A driver keeps
 * its state private to its own file (uring.c, epoll.c); the runtime picks
 * one at start (probing io_uring, honouring WEFT_IO) and reaches I/O only
 * through struct weft__io_ops.
 *
 * An operation's life (io/op.c drives it, once for every driver):
 *   1. the task fills a struct weft__io_op on its own stack and calls
 *      submit() on the instance of the worker it runs on; that instance owns
 *      the op until it completes, even if the task is later stolen;
 *   2. the task parks until op->done; the owner completes the op from its
 *      wait() (or a blocking-pool thread, for epoll file operations) with
 *      weft__io_complete, which stores the result, sets done (release) and
 *      wakes the task; nobody touches the op again;
 *   3. a task that is cancelled or times out first calls cancel(), which
 *      asks the owner to finish the op early, and then still waits for done:
 *      the op (and the caller's buffer) is never abandoned while the kernel
 *      may write to it.
 * When the task runs on another worker than the owner, cancel() queues the
 * op on the owner's cancel queue and wakes it; the owner clears
 * cancel_queued once it no longer reads the op, and the task waits for that
 * too (op_is_done in io/op.c), so the queue never holds a dead stack frame.
 *
 * Closing an fd others wait on (the marks that say who may wait are kept
 * above, in io/op.c): a driver's IOP_CLOSE first ends the calling worker's
 * own ops on the fd. A close notice is an IOP_CLOSE op given to cancel(),
 * which always queues it on the target's cancel queue (waking the target
 * unless it is the caller's); the target ends its ops on the fd with -EBADF
 * (epoll) or -ECANCELED (uring, mapped to -EBADF in io/op.c) and then acks.
 */
#ifndef WEFT__DRIVER_BACKEND_H
#define WEFT__DRIVER_BACKEND_H

#include <linux/time_types.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../blocking.h"

struct weft__config;
struct weft__io; /* a driver's private per-worker state */
struct weft_task;

/* The table in op.c is indexed by these; nothing depends on their order. */
enum weft__io_opcode {
    IOP_ACCEPT,   /* buf: sockaddr out, aux: socklen_t *, flags: SOCK_* */
    IOP_CONNECT,  /* buf: sockaddr, len: its length */
    IOP_RECV,     /* buf, len, flags: MSG_* */
    IOP_SEND,     /* buf, len, flags: MSG_* */
    IOP_RECVMSG,  /* buf: struct msghdr *, flags: MSG_* */
    IOP_SENDMSG,  /* buf: struct msghdr *, flags: MSG_* */
    IOP_READ,     /* buf, len, off (-1: the file position) */
    IOP_WRITE,    /* buf, len, off */
    IOP_READV,    /* buf: struct iovec *, len: count, off */
    IOP_WRITEV,   /* buf: struct iovec *, len: count, off */
    IOP_OPENAT,   /* fd: dirfd, buf: path, flags: O_*, off: mode */
    IOP_CLOSE,    /* fd */
    IOP_FSYNC,    /* fd, flags: WEFT_FSYNC_DATASYNC */
    IOP_STATX,    /* fd: dirfd, buf: path, aux: struct statx *, flags: AT_*,
                     off: mask */
    IOP_SHUTDOWN, /* fd, flags: SHUT_* */
    IOP_POLL,     /* fd, flags: POLL* events; result: revents */
    IOP_ACCEPT_MULTI, /* fd, flags: SOCK_*; multishot: every completion
                         goes to weft__io_accept_event, not to op->task */
    IOP_RECV_MULTI, /* fd; a driver's own multishot recv into its provided
                       buffers (uring.c), never submitted from above */
    IOP__COUNT
};

/* What an opcode is, for every layer that must tell them apart. */
struct weft__io_opdef {
    const char *name;
    /* Waits on op->fd (rather than using it as a directory, or closing
     * it): the fd must be valid, and a close of it must end the op. */
    bool on_fd;
    /* Reads or writes a buffer (vec: an iovec array, len entries) at off:
     * on a regular file, epoll runs it on the blocking pool when it would
     * block. */
    bool rw, vec;
    /* A file operation epoll always runs on the blocking pool. */
    bool file;
    /* A socket transfer that honours MSG_DONTWAIT in flags. */
    bool msg;
    /* The EPOLL* events epoll waits for (IOP_POLL: its flags). */
    uint32_t events;
};

extern const struct weft__io_opdef weft__io_opdefs[IOP__COUNT];

static inline const struct weft__io_opdef *weft__io_def(unsigned opcode)
{
    return &weft__io_opdefs[opcode];
}

struct weft__io_op;

/* A lock-free stack of ops whose cancellation another thread asked for. */
struct weft__io_cancelq {
    _Atomic(struct weft__io_op *) head;
};

struct weft__io_op {
    /* Set by the issuing task before submit(); read-only afterwards. */
    uint8_t opcode;           /* enum weft__io_opcode */
    int fd;
    int flags;
    void *buf;
    size_t len;
    void *aux;
    uint64_t off;
    int64_t deadline;         /* absolute; WEFT_NO_DEADLINE: none */
    struct weft_task *task;

    /* Owner worker (the instance that took the op in submit()). */
    struct weft__io *io;      /* the owner instance */
    int result;               /* valid once done */
    union {                   /* the owner driver's own fields */
        struct {
            uint32_t slot, gen;          /* user_data names both */
            struct __kernel_timespec ts; /* the linked timeout's deadline */
            struct weft__io_op *ack_next; /* close notices to ack */
            struct weft__io_op *rx_next;  /* the fd's waiting recvs */
            bool rx_wait;                 /* waits on buffered data, not
                                             in the kernel */
            _Atomic uint8_t remote;       /* a recv handed to the worker
                                             that holds its fd's bytes */
        } uring;
        struct {
            struct weft__io_op *wait_next; /* the fd's waiter list */
            uint32_t want;               /* EPOLL* events it waits for */
            bool started;                /* a connect already in progress */
            bool pooled;                 /* job is on the blocking pool */
            struct weft__blocking_job job; /* a file op run off the worker */
        } epoll;
    } u;

    /* Any thread. */
    atomic_bool done;         /* release by the completer */
    atomic_bool cancel_queued;/* on the owner's cancel queue, not yet seen */
    struct weft__io_op *cancel_next; /* cancel queue link */
};

struct weft__io_ops {
    const char *name;

    /*
     * True if submit() enforces op->deadline itself (a linked timeout:
     * the op then completes with -ECANCELED when it expires); otherwise the
     * caller arms the task's timer and cancels the op when it fires.
     */
    bool op_deadlines;

    /* Creates this worker's instance. Returns 0 or -errno. */
    int (*init)(struct weft__io **io, const struct weft__config *cfg);
    void (*fini)(struct weft__io *io);

    /*
     * Starts op on io (the calling worker's instance). The op may complete
     * before submit() returns. Returns 0 (op will complete), or -errno (it
     * was not started and will not complete), or one of the WEFT__IO_SUB_*
     * values below.
     */
    int (*submit)(struct weft__io *io, struct weft__io_op *op);

    /*
     * Asks op's owner to complete op early (-ECANCELED unless it finished
     * first). io is the calling worker's instance, which may differ from
     * op->io. The op still completes through the normal path.
     */
    void (*cancel)(struct weft__io *io, struct weft__io_op *op);

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

    /*
     * A rescuer's turn for a worker stuck in a task (see "Stalls" in
     * worker.c), from another thread while the owner is frozen: takes
     * remote cancels, hands what the owner prepared to the kernel and
     * reaps what completed, never blocking. Where only the owner's thread
     * can enter the kernel for this ring, kick(arg) has it call kicked()
     * and returns whether it did. Returns the completions handled.
     */
    int (*rescue)(struct weft__io *io, bool (*kick)(void *arg), void *arg);

    /* On the owner's thread, in a signal handler: the kernel entry a
     * rescuer asked for. Async-signal-safe; touches no state but io's
     * fixed fields and its request. NULL if rescue() never kicks. */
    void (*kicked)(struct weft__io *io);
};

/* submit() results besides 0 and -errno. */
enum {
    /* Done already, on the caller's thread: op->result is set and done is
     * set; nothing wakes the task. */
    WEFT__IO_SUB_DONE = 1,
    /* Started, but op->deadline is the caller's to enforce (the task's
     * timer, then cancel()), even where op_deadlines is true. */
    WEFT__IO_SUB_TIMED = 2,
};

extern const struct weft__io_ops weft__io_uring_ops;
extern const struct weft__io_ops weft__io_epoll_ops;

/*
 * Whether io_uring works here end to end, with the flags cfg's workers
 * would use: 0, or -errno with *step naming the call that failed (for the
 * message). Probed afresh on each call.
 */
int weft__io_uring_probe(const struct weft__config *cfg, const char **step);

/*
 * Provided by the runtime (runtime.c): the calling worker's instance and
 * the runtime's table, or NULL (ops untouched) outside a worker.
 */
struct weft__io *weft__io_current(const struct weft__io_ops **ops);

/*
 * Provided by the runtime: submit() and cancel() on the calling worker's
 * instance (a task on a worker only), inside the worker's runtime section,
 * so that a rescuer never drives the instance at the same time.
 */
int weft__io_submit(struct weft__io_op *op);
void weft__io_cancel(struct weft__io_op *op);

/*
 * Provided by the runtime: worker i's instance (NULL if there is no such
 * worker). The calling worker's index is weft_worker_id().
 */
struct weft__io *weft__io_of(unsigned index);

/* ---- shared by the drivers (op.c) ---------------------------------------- */

/* Completes op: stores the result, publishes done, wakes its task. The op
 * must not be touched afterwards. Any thread that owns op. */
void weft__io_complete(struct weft__io_op *op, int result);

/* Queues op on its owner's cancel queue (another worker's). Any thread. */
void weft__io_cancelq_push(struct weft__io_cancelq *q, struct weft__io_op *op);

/* Owner: takes every queued op, newest first (linked by cancel_next). */
struct weft__io_op *weft__io_cancelq_take(struct weft__io_cancelq *q);

/* Makes a worker's wake eventfd readable (both drivers' wake()). Any
 * thread. */
void weft__io_eventfd_wake(int fd);

/* Owner: done with a queued request; op must not be touched afterwards. */
void weft__io_cancelq_ack(struct weft__io_op *op);

/*
 * Provided above the driver (io/listener.c): one completion of an
 * IOP_ACCEPT_MULTI op. more is false on the last one; the op must not be
 * touched after that call. Returns true if the owner should cancel the op
 * (enough accepted ahead); the owner does so after its reaping, by
 * user_data, never touching op.
 */
bool weft__io_accept_event(struct weft__io_op *op, int res, bool more);

#ifdef WEFT_FAULT_HOOKS
/* Test builds: what the calling worker's io_uring instance holds for fd's
 * receive state (uring.c). Returns 0, or -ENOENT (no uring instance here,
 * or no receive state for fd). */
struct weft__io_rx_probe {
    bool uring;            /* the calling worker's instance is io_uring's */
    long queued;           /* bytes received and not yet read */
    unsigned waiters;      /* recvs waiting on it */
    bool owned, armed;     /* by this worker; its multishot in the kernel */
    unsigned bufs_free;    /* this worker's buffers in the kernel's ring */
    uint64_t inline_hits;  /* this worker's recvs done without waiting */
    uint64_t starved;      /* this worker's multishots ended by -ENOBUFS */
};
int weft__io_rx_probe(int fd, struct weft__io_rx_probe *out);
/* Test builds: true turns multishot recv off (plain recvs only). */
extern _Atomic bool weft__io_no_rx;
/* Test builds: recvs handed to the worker that holds their fd's bytes. */
extern _Atomic uint64_t weft__io_rx_handovers;
#endif

/* Completions that reported -EFAULT (a buffer the kernel could not write);
 * tests assert it stays 0 under their guard allocator. */
extern _Atomic uint64_t weft__io_efaults;

#endif
