/*
 * Stream conveniences on top of the single operations: listening and
 * connecting by name, reading exactly n bytes, writing all of a buffer.
 *
 * Name resolution blocks (getaddrinfo may talk to DNS), so it never runs on
 * a worker: resolve() hands it to a short-lived thread of its own and parks
 * the task until that thread is done. That is the one place to swap for the
 * blocking pool. Numeric addresses are parsed inline without a thread.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../runtime/task.h"
#include "ops.h"
#include "weft.h"

struct lookup {
    const char *host;
    char port[8];
    struct addrinfo hints;
    struct addrinfo *res;
    int ret;                /* getaddrinfo's EAI_* code */
    int err;                /* errno after EAI_SYSTEM */
    struct weft_task *task;
    atomic_bool done;
};

static int eai_errno(int eai, int err)
{
    switch (eai) {
    case 0:
        return 0;
    case EAI_NONAME:
    case EAI_NODATA:
        return -ENOENT;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return err ? -err : -EIO;
    case EAI_FAMILY:
    case EAI_SERVICE:
    case EAI_BADFLAGS:
        return -EINVAL;
    default:
        return -EIO;
    }
}

static void *lookup_main(void *arg)
{
    struct lookup *l = arg;
    struct weft_task *t = l->task;

    l->ret = getaddrinfo(l->host, l->port, &l->hints, &l->res);
    l->err = errno;
    /* release: pairs with the acquire in lookup_done(); l may vanish. */
    atomic_store_explicit(&l->done, true, memory_order_release);
    weft__task_wake(t);
    return NULL;
}

static bool lookup_done(void *arg)
{
    struct lookup *l = arg;

    return atomic_load_explicit(&l->done, memory_order_acquire);
}

/* Runs getaddrinfo off the event loop; the task waits, not cancellable
 * (the thread writes into l), and a cancel taken meanwhile is put back. */
static int resolve_blocking(struct lookup *l)
{
    struct weft_task *t = weft__task_current();
    pthread_attr_t attr;
    pthread_t thread;
    bool cancelled = false;
    int ret;

    l->task = t;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    ret = -pthread_create(&thread, &attr, lookup_main, l);
    pthread_attr_destroy(&attr);
    if (ret)
        return ret;
    while (weft__task_block(t, lookup_done, l, WEFT_NEVER, WHY_BLOCKING,
                            WEFT_WHERE) == -ECANCELED)
        cancelled = true;
    if (cancelled)
        weft__task_restore_cancel(t);
    return eai_errno(l->ret, l->err);
}

/* host:port to addresses (freeaddrinfo them). Suspends for names. */
static int resolve(const char *host, uint16_t port, bool passive,
                   struct addrinfo **out)
{
    struct lookup l = { .host = host };
    int ret;

    if (!weft__task_current())
        return -EPERM;
    snprintf(l.port, sizeof(l.port), "%u", (unsigned)port);
    l.hints.ai_socktype = SOCK_STREAM;
    l.hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST |
                       (passive ? AI_PASSIVE : AI_ADDRCONFIG);
    ret = getaddrinfo(host, l.port, &l.hints, &l.res);
    if (ret == EAI_NONAME && host) {
        l.hints.ai_flags &= ~AI_NUMERICHOST;
        ret = resolve_blocking(&l);
    } else {
        ret = eai_errno(ret, errno);
    }
    if (ret == 0)
        *out = l.res;
    return ret;
}

static int listen_on(const struct addrinfo *ai, int backlog, int flags)
{
    int one = 1, fd, ret;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                ai->ai_protocol);
    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        ((flags & WEFT_LISTEN_REUSEPORT) &&
         setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
        ret = -errno;
        close(fd);
        return ret;
    }
    return fd;
}

int weft_listen(const char *host, uint16_t port, int backlog, int flags)
{
    struct addrinfo *res, *ai;
    int ret;

    if (backlog < 0 || (flags & ~WEFT_LISTEN_REUSEPORT))
        return -EINVAL;
    ret = resolve(host, port, true, &res);
    if (ret < 0)
        return ret;
    for (ai = res; ai; ai = ai->ai_next) {
        ret = listen_on(ai, backlog, flags);
        if (ret >= 0)
            break;
    }
    freeaddrinfo(res);
    return ret;
}

static int connect_to(const struct addrinfo *ai, int64_t deadline)
{
    int one = 1, fd, ret;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                ai->ai_protocol);
    if (fd < 0)
        return -errno;
    ret = weft_connect(fd, ai->ai_addr, ai->ai_addrlen, deadline);
    if (ret < 0) {
        close(fd);
        return ret;
    }
    /* As asyncio does: request/response traffic wants no Nagle delay. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int weft_connect_tcp(const char *host, uint16_t port, int64_t deadline)
{
    struct addrinfo *res, *ai;
    int ret;

    if (!host)
        return -EINVAL;
    ret = resolve(host, port, false, &res);
    if (ret < 0)
        return ret;
    for (ai = res; ai; ai = ai->ai_next) {
        ret = connect_to(ai, deadline);
        if (ret >= 0 || ret == -ECANCELED || ret == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    return ret;
}

ssize_t weft_read_exact(int fd, void *buf, size_t len, int64_t deadline)
{
    size_t got = 0;
    ssize_t n;

    while (got < len) {
        n = weft_read(fd, (char *)buf + got, len - got, -1, deadline);
        if (n < 0)
            return n;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

ssize_t weft_write_all(int fd, const void *buf, size_t len, int64_t deadline)
{
    const char *p = buf;
    bool sock = true;
    size_t put = 0;
    ssize_t n;

    while (put < len) {
        /* send() on sockets: a reset peer is -EPIPE, not a SIGPIPE. */
        n = sock ? weft_send(fd, p + put, len - put, 0, deadline) : -ENOTSOCK;
        if (n == -ENOTSOCK) {
            sock = false;
            n = weft_write(fd, p + put, len - put, -1, deadline);
        }
        if (n < 0)
            return n;
        put += (size_t)n;
    }
    return (ssize_t)len;
}
