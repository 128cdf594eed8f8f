/*
 * Unix-domain stream sockets by path: weft_listen_unix and
 * weft_connect_unix. A leading '@' names an abstract socket (Linux): the
 * address holds a NUL and then the name, and its length counts exactly the
 * name's bytes, since abstract names are not NUL-terminated and trailing
 * zeroes would be part of the name.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "weft.h"

/* Fills *sa from path; returns the address length, or -EINVAL /
 * -ENAMETOOLONG. */
static int unix_addr(const char *path, struct sockaddr_un *sa)
{
    bool abstract;
    size_t len;

    if (!path || !path[0] || (path[0] == '@' && !path[1]))
        return -EINVAL;
    abstract = path[0] == '@';
    len = strlen(path);
    /* A file path needs its NUL in sun_path; an abstract name takes the
     * place of the '@' by its leading NUL and needs no terminator. */
    if (len >= sizeof(sa->sun_path) + abstract)
        return -ENAMETOOLONG;
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (abstract) {
        memcpy(sa->sun_path + 1, path + 1, len - 1);
        return (int)(offsetof(struct sockaddr_un, sun_path) + len);
    }
    memcpy(sa->sun_path, path, len + 1);
    return (int)(offsetof(struct sockaddr_un, sun_path) + len + 1);
}

/* A socket file left by a server that is gone goes, as in asyncio; any
 * other file stays, and bind reports it. */
static int remove_stale(const char *path)
{
    struct stat st;

    if (path[0] == '@' || lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return 0;
    return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

int weft_listen_unix(const char *path, int backlog, int flags)
{
    struct sockaddr_un sa;
    int len = unix_addr(path, &sa), fd, ret;

    if (len < 0)
        return len;
    if (flags || backlog < 0)
        return -EINVAL;
    if ((ret = remove_stale(path)) < 0)
        return ret;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sa, (socklen_t)len) < 0 ||
        listen(fd, backlog) < 0) {
        ret = -errno;
        close(fd);
        return ret;
    }
    return fd;
}

int weft_connect_unix(const char *path, int64_t deadline)
{
    struct sockaddr_un sa;
    int len = unix_addr(path, &sa), fd, ret;

    if (len < 0)
        return len;
    if (!weft_self())
        return -EPERM;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    ret = weft_connect(fd, (struct sockaddr *)&sa, (socklen_t)len, deadline);
    if (ret < 0) {
        close(fd);
        return ret;
    }
    return fd;
}
