/*
 * The socket calls (accept, connect, recv, send, recvmsg, sendmsg,
 * shutdown, weft_wait_fd): each checks its arguments and runs one op
 * through weft__io_run (op.c).
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include "../runtime/common.h"
#include "op.h"
#include "weft.h"

int weft_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags,
                int64_t deadline)
{
    struct weft__io_op op = { .opcode = IOP_ACCEPT, .fd = fd, .buf = addr,
                              .aux = addrlen, .flags = flags };

    if ((addr && !addrlen) || (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)))
        return -EINVAL;
    return weft__io_run(&op, deadline, WEFT__WHERE);
}

int weft_connect(int fd, const struct sockaddr *addr, socklen_t addrlen,
                 int64_t deadline)
{
    struct weft__io_op op = { .opcode = IOP_CONNECT, .fd = fd,
                              .buf = (void *)addr, .len = addrlen };

    if (!addr)
        return -EINVAL;
    return weft__io_run(&op, deadline, WEFT__WHERE);
}

ssize_t weft_recv(int fd, void *buf, size_t len, int flags, int64_t deadline)
{
    struct weft__io_op op = { .opcode = IOP_RECV, .fd = fd, .buf = buf,
                              .len = weft__io_clamp_len(len),
                              .flags = flags };

    return weft__io_run(&op, deadline, WEFT__WHERE);
}

ssize_t weft_send(int fd, const void *buf, size_t len, int flags,
                  int64_t deadline)
{
    /* A library must not kill its host with SIGPIPE: -EPIPE says it. */
    struct weft__io_op op = { .opcode = IOP_SEND, .fd = fd,
                              .buf = (void *)buf,
                              .len = weft__io_clamp_len(len),
                              .flags = flags | MSG_NOSIGNAL };

    return weft__io_run(&op, deadline, WEFT__WHERE);
}

/* A flag of the 32-bit compat layer: recvmsg(2) and sendmsg(2) refuse it,
 * io_uring would take it. */
#define MSG_COMPAT_FLAG ((int)0x80000000)

ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags, int64_t deadline)
{
    struct weft__io_op op = { .opcode = IOP_RECVMSG, .fd = fd, .buf = msg,
                              .flags = flags };

    if (!msg || (flags & MSG_COMPAT_FLAG))
        return -EINVAL;
    return weft__io_run(&op, deadline, WEFT__WHERE);
}

ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags,
                     int64_t deadline)
{
    struct weft__io_op op = { .opcode = IOP_SENDMSG, .fd = fd,
                              .buf = (void *)msg,
                              .flags = flags | MSG_NOSIGNAL };

    if (!msg || (flags & MSG_COMPAT_FLAG))
        return -EINVAL;
    return weft__io_run(&op, deadline, WEFT__WHERE);
}

int weft_shutdown(int fd, int how)
{
    struct weft__io_op op = { .opcode = IOP_SHUTDOWN, .fd = fd, .flags = how };

    if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR)
        return -EINVAL;
    return weft__io_run(&op, WEFT_NO_DEADLINE, WEFT__WHERE);
}

/* Events weft_wait_fd waits for; POLLERR and POLLHUP are reported anyway.
 * Other bits mean different things to poll(2), epoll (EPOLLET,
 * EPOLLEXCLUSIVE) and io_uring, so they are refused. */
#define WAIT_EVENTS (POLLIN | POLLOUT | POLLPRI | POLLRDHUP)

int weft_wait_fd(int fd, unsigned events, int64_t deadline)
{
    struct weft__io_op op = { .opcode = IOP_POLL, .fd = fd,
                              .flags = (int)events };

    if (!(events & WAIT_EVENTS) ||
        (events & ~(unsigned)(WAIT_EVENTS | POLLERR | POLLHUP)))
        return -EINVAL;
    return weft__io_run(&op, deadline, WEFT__WHERE);
}

/* The loop every "drive another library's fd" needs, written once: the
 * library's step decides what to wait for, weft_wait_fd waits for it. */
int weft_drive_fd(weft_step_fn step, void *arg, int64_t deadline)
{
    int fd = -1, events, ret;

    if (!step)
        return -EINVAL;
    while ((events = step(arg, &fd)) > 0)
        if ((ret = weft_wait_fd(fd, (unsigned)events, deadline)) < 0)
            return ret;
    return events;
}
