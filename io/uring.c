/*
 * The io_uring backend: one ring per worker, created on that worker and
 * touched only by it.
 *
 * Set-up probes the strongest flags first: SINGLE_ISSUER | DEFER_TASKRUN
 * (completions are processed only when this worker enters the kernel, in a
 * batch), then COOP_TASKRUN, then none, so older kernels still work.
 *
 * Waking: each ring keeps a read of its worker's eventfd in flight. wake()
 * writes the eventfd from any thread; the read completes and the worker's
 * wait returns. A write that arrives before the worker blocks leaves the
 * counter non-zero, so the read completes at once: no wake is lost.
 */
#include "backend.h"

#include <errno.h>
#include <liburing.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../runtime/common.h"
#include "../runtime/config.h"
#include "../runtime/mem.h"

#define WAKE_TAG 1ull

struct weft__io {
    struct io_uring ring;
    int wake_fd;
    bool wake_armed;      /* the eventfd read is in flight */
    uint64_t wake_buf;    /* the eventfd read's target */
    unsigned pending;     /* SQEs prepared since the last submit */
};

static int setup_ring(struct io_uring *ring, unsigned entries)
{
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int ret = -EINVAL;

    for (unsigned i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        struct io_uring_params p = { .flags = tries[i] };

        ret = io_uring_queue_init_params(entries, ring, &p);
        if (ret != -EINVAL)
            break;
    }
    return ret;
}

int weft__io_uring_probe(void)
{
    static atomic_int probed; /* 0 unknown, 1 usable, 2 not */
    int v = atomic_load_explicit(&probed, memory_order_relaxed);
    struct io_uring ring;

    if (v)
        return v == 1;
    v = io_uring_queue_init(2, &ring, 0) == 0 ? 1 : 2;
    if (v == 1)
        io_uring_queue_exit(&ring);
    atomic_store_explicit(&probed, v, memory_order_relaxed);
    return v == 1;
}

static int uring_init(struct weft__io **out, const struct weft__config *cfg)
{
    struct weft__io *io = weft__zalloc(sizeof(*io));
    int ret;

    if (!io)
        return -ENOMEM;
    io->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (io->wake_fd < 0) {
        ret = -errno;
        goto out_free;
    }
    ret = setup_ring(&io->ring, cfg->ring_entries);
    if (ret < 0)
        goto out_close;
    *out = io;
    return 0;
out_close:
    close(io->wake_fd);
out_free:
    weft__free(io, sizeof(*io));
    return ret;
}

static void uring_fini(struct weft__io *io)
{
    io_uring_queue_exit(&io->ring);
    close(io->wake_fd);
    weft__free(io, sizeof(*io));
}

/* An SQE, flushing the SQ to the kernel if it is full. */
static struct io_uring_sqe *get_sqe(struct weft__io *io)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);

    while (!sqe) {
        io_uring_submit(&io->ring);
        io->pending = 0;
        sqe = io_uring_get_sqe(&io->ring);
    }
    io->pending++;
    return sqe;
}

static void arm_wake(struct weft__io *io)
{
    struct io_uring_sqe *sqe;

    if (io->wake_armed)
        return;
    sqe = get_sqe(io);
    io_uring_prep_read(sqe, io->wake_fd, &io->wake_buf, sizeof(io->wake_buf),
                       0);
    io_uring_sqe_set_data64(sqe, WAKE_TAG);
    io->wake_armed = true;
}

static unsigned reap(struct weft__io *io)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;

    io_uring_for_each_cqe(&io->ring, head, cqe) {
        if (io_uring_cqe_get_data64(cqe) == WAKE_TAG)
            io->wake_armed = false;
        n++;
    }
    io_uring_cq_advance(&io->ring, n);
    return n;
}

static int uring_wait(struct weft__io *io, int64_t timeout_ns)
{
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts;
    int ret;

    if (timeout_ns == 0 && !io->pending)
        return (int)reap(io);
    arm_wake(io);
    if (timeout_ns == 0) {
        ret = io_uring_submit(&io->ring);
    } else if (timeout_ns < 0) {
        ret = io_uring_submit_and_wait(&io->ring, 1);
    } else {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        ret = io_uring_submit_and_wait_timeout(&io->ring, &cqe, 1, &ts,
                                               NULL);
    }
    io->pending = 0;
    if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN &&
        ret != -EBUSY)
        return ret;
    return (int)reap(io);
}

static void uring_wake(struct weft__io *io)
{
    uint64_t one = 1;

    /* EAGAIN means the counter is saturated: a wake is pending anyway. */
    while (write(io->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

const struct weft__io_ops weft__io_uring_ops = {
    .name = "uring",
    .init = uring_init,
    .fini = uring_fini,
    .wait = uring_wait,
    .wake = uring_wake,
};
