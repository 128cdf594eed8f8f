/*
 * Helpers shared by the I/O tests (t_ prefix): loopback listeners, socket
 * pairs, and an echo server run as tasks.
 */
#ifndef WEFT_TEST_IO_HELPERS_H
#define WEFT_TEST_IO_HELPERS_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "helpers.h"

#define T_SECS(n) (weft_now_ns() + (int64_t)(n) * 1000000000)
#define T_MS(n) (weft_now_ns() + (int64_t)(n) * 1000000)

/* The port a bound socket got. */
static inline uint16_t t_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);

    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    return ntohs(sa.sin_port);
}

/* A loopback TCP listener on an ephemeral port. */
static inline int t_listen_tcp(int backlog)
{
    int fd = weft_listen("127.0.0.1", 0, backlog, 0);

    cr_assert_geq(fd, 0, "weft_listen: %s", strerror(-fd));
    return fd;
}

/* An abstract-namespace Unix listener (nothing to clean up on disk). */
static inline int t_listen_unix(int backlog, struct sockaddr_un *sa,
                                socklen_t *len)
{
    static atomic_int seq;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0);
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "weft-test-%d-%d",
             (int)getpid(), atomic_fetch_add(&seq, 1));
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
                       strlen(sa->sun_path + 1));
    cr_assert_eq(bind(fd, (struct sockaddr *)sa, *len), 0);
    cr_assert_eq(listen(fd, backlog), 0);
    return fd;
}

static inline struct sockaddr_in t_loopback(uint16_t port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons(port) };

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

/* Raises RLIMIT_NOFILE's soft limit to the hard one. */
static inline void t_raise_nofile(void)
{
    struct rlimit rl;

    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* Whether err is how an echo may end without a fault: the peer left, or
 * the runtime's shutdown cancelled the task. */
static inline bool t_echo_may_end_with(ssize_t err)
{
    return err == -ECONNRESET || err == -EPIPE || err == -ECANCELED;
}

/* Echoes one connection until EOF, then closes it. Runs detached, so it
 * asserts its own outcome. */
static inline int t_echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n, w = 0;

    while ((n = weft_recv(fd, buf, sizeof(buf), 0, WEFT_NO_DEADLINE)) > 0)
        if ((w = weft_write_all(fd, buf, (size_t)n, WEFT_NO_DEADLINE)) < 0)
            break;
    cr_assert_eq(weft_close(fd), 0);
    cr_assert(n >= 0 || t_echo_may_end_with(n), "echo recv: %s",
              strerror((int)-n));
    cr_assert(w >= 0 || t_echo_may_end_with(w), "echo write: %s",
              strerror((int)-w));
    return 0;
}

/* Accepts and spawns t_echo_conn until cancelled. */
static inline int t_echo_server(void *arg)
{
    int lfd = (int)(intptr_t)arg;

    for (;;) {
        int fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, WEFT_NO_DEADLINE);

        if (fd == -ECANCELED)
            return 0;
        cr_assert_geq(fd, 0, "accept: %s", strerror(-fd));
        cr_assert_eq(weft_spawn(NULL, t_echo_conn, (void *)(intptr_t)fd), 0);
    }
}

#endif
