/*
 * The epoll backend: readiness instead of completion, for kernels or
 * sandboxes without io_uring, and as the baseline io_uring is measured
 * against. One epoll instance per worker, touched only by it.
 *
 * Waking: the worker's eventfd is registered level-triggered; wake() writes
 * it from any thread and the worker drains it when epoll reports it. A write
 * before the worker blocks keeps the fd readable, so no wake is lost.
 */
#include "backend.h"

#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "../runtime/mem.h"

#define MAX_EVENTS 128

struct weft__io {
    int epfd;
    int wake_fd;
};

static int epoll_init(struct weft__io **out, const struct weft__config *cfg)
{
    struct weft__io *io = weft__zalloc(sizeof(*io));
    struct epoll_event ev = { .events = EPOLLIN };
    int ret;

    (void)cfg;
    if (!io)
        return -ENOMEM;
    io->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (io->epfd < 0) {
        ret = -errno;
        goto out_free;
    }
    io->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (io->wake_fd < 0) {
        ret = -errno;
        goto out_close_ep;
    }
    ev.data.ptr = NULL;
    if (epoll_ctl(io->epfd, EPOLL_CTL_ADD, io->wake_fd, &ev) < 0) {
        ret = -errno;
        goto out_close_wake;
    }
    *out = io;
    return 0;
out_close_wake:
    close(io->wake_fd);
out_close_ep:
    close(io->epfd);
out_free:
    weft__free(io, sizeof(*io));
    return ret;
}

static void epoll_fini(struct weft__io *io)
{
    close(io->wake_fd);
    close(io->epfd);
    weft__free(io, sizeof(*io));
}

static void drain_wake(struct weft__io *io)
{
    uint64_t v;

    while (read(io->wake_fd, &v, sizeof(v)) < 0 && errno == EINTR)
        ;
}

static int epoll_wait_ns(struct weft__io *io, int64_t timeout_ns)
{
    struct epoll_event evs[MAX_EVENTS];
    struct timespec ts, *tsp = NULL;
    int n;

    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    if (timeout_ns == 0)
        return 0; /* nothing but the wake fd is registered yet */
    n = epoll_pwait2(io->epfd, evs, MAX_EVENTS, tsp, NULL);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++)
        if (!evs[i].data.ptr)
            drain_wake(io);
    return n;
}

static void epoll_wake(struct weft__io *io)
{
    uint64_t one = 1;

    while (write(io->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

const struct weft__io_ops weft__io_epoll_ops = {
    .name = "epoll",
    .init = epoll_init,
    .fini = epoll_fini,
    .wait = epoll_wait_ns,
    .wake = epoll_wake,
};
