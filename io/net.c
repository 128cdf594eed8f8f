/*
 * Stream conveniences on top of the single operations: listening and
 * connecting by name, reading exactly n bytes, writing all of a buffer.
 *
 * Name resolution blocks (getaddrinfo may talk to DNS), so it never runs on
 * a worker: resolve() hands names to the blocking pool (weft_resolve).
 * Numeric addresses are parsed inline without a thread.
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../runtime/task.h"
#include "dns.h"
#include "op.h"
#include "weft.h"

/* host:port to addresses (freeaddrinfo them). Suspends for names. */
static int resolve(const char *host, uint16_t port, bool passive,
                   struct addrinfo **out)
{
    struct addrinfo hints = {
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_NUMERICSERV | AI_NUMERICHOST |
                    (passive ? AI_PASSIVE : AI_ADDRCONFIG),
    };
    char service[8];
    int ret;

    if (!weft__task_current())
        return -EPERM;
    snprintf(service, sizeof(service), "%u", (unsigned)port);
    ret = getaddrinfo(host, service, &hints, out);
    if (ret == EAI_NONAME && host) {
        hints.ai_flags &= ~AI_NUMERICHOST;
        return weft_resolve(host, service, &hints, out);
    }
    return weft__dns_errno(ret, errno);
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

/* The argument checks of weft_read_exact and weft_write_all. Past SSIZE_MAX
 * the result could not say len; a NULL buffer is refused here, as the
 * kernel would, because buf + done on NULL is undefined. */
static int stream_check(int fd, const void *buf, size_t len)
{
    if (fd < 0)
        return -EBADF;
    if (len > SSIZE_MAX)
        return -EINVAL;
    if (!buf && len)
        return -EFAULT;
    return 0;
}

/* Both loop over the short counts of single calls, each at most
 * WEFT__IO_RW_MAX bytes (weft_read and weft_send clamp), so a total past
 * 4 GiB takes a few calls more, never a truncated length. */
ssize_t weft_read_exact(int fd, void *buf, size_t len, int64_t deadline)
{
    char *p = buf;
    size_t got = 0;
    ssize_t n;

    if ((n = stream_check(fd, buf, len)) < 0)
        return n;
    while (got < len) {
        n = weft_read(fd, p + got, len - got, -1, deadline);
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

    if ((n = stream_check(fd, buf, len)) < 0)
        return n;
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
