/*
 * File and generic fd calls: read, write, readv, writev, openat, close,
 * fsync, statx. Each is one op run through weft__io_run; on the epoll
 * driver the ones that would block a worker go to the blocking pool.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "op.h"
#include "weft.h"

ssize_t weft_read(int fd, void *buf, size_t len, int64_t offset,
                  int64_t deadline)
{
    struct weft__io_op op = { .opcode = IOP_READ, .fd = fd, .buf = buf,
                              .len = weft__io_clamp_len(len),
                              .off = (uint64_t)offset };

    if (offset < -1)
        return -EINVAL;
    return weft__io_run(&op, deadline, WEFT__WHERE);
}

ssize_t weft_write(int fd, const void *buf, size_t len, int64_t offset,
                   int64_t deadline)
{
    struct weft__io_op op = { .opcode = IOP_WRITE, .fd = fd,
                              .buf = (void *)buf,
                              .len = weft__io_clamp_len(len),
                              .off = (uint64_t)offset };

    if (offset < -1)
        return -EINVAL;
    return weft__io_run(&op, deadline, WEFT__WHERE);
}

ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt,
                   int64_t offset, int64_t deadline)
{
    struct weft__io_op op = { .opcode = IOP_READV, .fd = fd,
                              .buf = (void *)iov, .len = (size_t)iovcnt,
                              .off = (uint64_t)offset };

    if (offset < -1 || iovcnt < 0 || iovcnt > IOV_MAX)
        return -EINVAL;
    if (!iov && iovcnt)
        return -EFAULT;
    return weft__io_run(&op, deadline, WEFT__WHERE);
}

ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt,
                    int64_t offset, int64_t deadline)
{
    struct weft__io_op op = { .opcode = IOP_WRITEV, .fd = fd,
                              .buf = (void *)iov, .len = (size_t)iovcnt,
                              .off = (uint64_t)offset };

    if (offset < -1 || iovcnt < 0 || iovcnt > IOV_MAX)
        return -EINVAL;
    if (!iov && iovcnt)
        return -EFAULT;
    return weft__io_run(&op, deadline, WEFT__WHERE);
}

int weft_openat(int dirfd, const char *path, int flags, mode_t mode,
                int64_t deadline)
{
    struct weft__io_op op = { .opcode = IOP_OPENAT, .fd = dirfd,
                              .buf = (void *)path, .flags = flags,
                              .off = mode };

    if (!path)
        return -EINVAL;
    return weft__io_run(&op, deadline, WEFT__WHERE);
}

int weft_close(int fd)
{
    if (fd < 0)
        return -EBADF;
    return weft__io_close(fd, WEFT__WHERE);
}

int weft_fsync(int fd, unsigned flags, int64_t deadline)
{
    struct weft__io_op op = { .opcode = IOP_FSYNC, .fd = fd,
                              .flags = (int)flags };

    if (flags & ~WEFT_FSYNC_DATASYNC)
        return -EINVAL;
    return weft__io_run(&op, deadline, WEFT__WHERE);
}

int weft_statx(int dirfd, const char *path, int flags, unsigned mask,
               struct statx *out, int64_t deadline)
{
    struct weft__io_op op = { .opcode = IOP_STATX, .fd = dirfd,
                              .buf = (void *)path, .aux = out,
                              .flags = flags, .off = mask };

    if (!path || !out)
        return -EINVAL;
    return weft__io_run(&op, deadline, WEFT__WHERE);
}
