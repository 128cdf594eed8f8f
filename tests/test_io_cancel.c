/*
 * Cancellation is safe by construction: a cancelled I/O call returns only
 * after the kernel let go of its buffer, and an op that completed while it
 * was being cancelled keeps its result (no bytes, no connection lost).
 *
 * Buffers come from a guard allocator: one mapping per buffer, made
 * PROT_NONE when freed and never reused (quarantine). A kernel write into
 * a buffer after the call returned would fail with -EFAULT, which the
 * backends count in weft__io_efaults, instead of silently corrupting
 * reused memory; and a completion dropped by a cancel would show up as a
 * gap in the byte stream.
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "runtime/driver/backend.h"
#include "io_helpers.h"

static void *g_alloc(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    cr_assert_neq(p, MAP_FAILED);
    return p;
}

static void g_free(void *p, size_t n)
{
    cr_assert_eq(mprotect(p, n, PROT_NONE), 0);
}

static unsigned char stream_byte(uint64_t pos)
{
    return (unsigned char)(pos % 251);
}

struct stream {
    int fd[2];
    uint64_t received;        /* the receiver's position; one at a time */
    atomic_bool stop;
    atomic_uint rng;
};

static unsigned rnd(struct stream *s)
{
    unsigned x = atomic_fetch_add(&s->rng, 0x9E3779B9u);

    x ^= x >> 15;
    x *= 0x2c1b3c6du;
    return x ^ (x >> 12);
}

static int sender(void *arg)
{
    struct stream *s = arg;
    unsigned char buf[512];
    uint64_t pos = 0;
    ssize_t n;

    while (!atomic_load(&s->stop)) {
        size_t len = 1 + rnd(s) % sizeof(buf);

        for (size_t i = 0; i < len; i++)
            buf[i] = stream_byte(pos + i);
        n = weft_write_all(s->fd[0], buf, len, WEFT_NO_DEADLINE);
        if (n == -ECANCELED)
            break;
        cr_assert_eq(n, (ssize_t)len, "send: %zd", n);
        pos += len;
    }
    return 0;
}

/* Receives into fresh guard buffers until cancelled; checks every byte. */
static int receiver(void *arg)
{
    struct stream *s = arg;

    for (;;) {
        size_t len = 4096 * (1 + rnd(s) % 2);
        unsigned char *buf = g_alloc(len);
        ssize_t n = weft_recv(s->fd[1], buf, len, 0, WEFT_NO_DEADLINE);

        cr_assert(n > 0 || n == -ECANCELED, "recv: %zd", n);
        for (ssize_t i = 0; i < n; i++)
            cr_assert_eq(buf[i], stream_byte(s->received + (uint64_t)i),
                         "byte %llu lost or corrupted",
                         (unsigned long long)(s->received + (uint64_t)i));
        if (n > 0)
            s->received += (uint64_t)n;
        g_free(buf, len);
        if (n == -ECANCELED)
            return 0;
    }
}

static int recv_cancel_main(void *arg)
{
    struct stream s = { .rng = 12345 };
    weft_task_t *snd, *rcv;
    bool tcp = arg != NULL;
    int small = 16384;

    if (tcp) {
        int lfd = t_listen_tcp(4);

        s.fd[0] = weft_connect_tcp("127.0.0.1", t_port(lfd), T_SECS(5));
        cr_assert_geq(s.fd[0], 0, "connect: %s", strerror(-s.fd[0]));
        s.fd[1] = weft_accept(lfd, NULL, NULL, 0, T_SECS(5));
        cr_assert_geq(s.fd[1], 0, "accept: %s", strerror(-s.fd[1]));
        close(lfd);
        /* Small buffers: each receiver sees a few chunks, not megabytes. */
        setsockopt(s.fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
        setsockopt(s.fd[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    } else {
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s.fd), 0);
    }
    cr_assert_eq(weft_spawn(&snd, sender, &s), 0);
    for (int i = 0; i < 3000; i++) {
        unsigned spins = rnd(&s) % 4;
        int ret;

        cr_assert_eq(weft_spawn(&rcv, receiver, &s), 0);
        /* Cancel at a random point: before it runs, while it waits, or
         * while its completion is in flight. */
        for (unsigned k = 0; k < spins; k++)
            weft_yield();
        weft_cancel(rcv);
        ret = weft_join(rcv);
        /* -ECANCELED: it never started. */
        cr_assert(ret == 0 || ret == -ECANCELED, "receiver: %d", ret);
    }
    atomic_store(&s.stop, true);
    weft_cancel(snd);
    cr_assert_eq(weft_join(snd), 0);
    cr_assert_gt(s.received, 0);
    cr_assert_eq(atomic_load(&weft__io_efaults), 0,
                 "the kernel wrote into a freed buffer");
    close(s.fd[0]);
    close(s.fd[1]);
    return 0;
}

Test(io_cancel, recv_cancelled_at_random_points_loses_nothing, .timeout = 120)
{
    t_run(recv_cancel_main, NULL);
}

Test(io_cancel, tcp_recv_cancelled_at_random_points_loses_nothing,
     .timeout = 120)
{
    t_run(recv_cancel_main, (void *)1);
}

/* ---- accept -------------------------------------------------------------- */

static int accept_one(void *arg)
{
    int fd = weft_accept((int)(intptr_t)arg, NULL, NULL, SOCK_CLOEXEC,
                         WEFT_NO_DEADLINE);

    return fd;
}

static int connector(void *arg)
{
    int fd = weft_connect_tcp("127.0.0.1", (uint16_t)(intptr_t)arg, T_SECS(5));

    return fd;
}

static int accept_cancel_main(void *arg)
{
    int lfd = t_listen_tcp(1024), base = t_fds(), got = 0, accepted = 0;
    uint16_t port = t_port(lfd);
    int conns[600];
    int nconns = 0;

    (void)arg;
    for (int i = 0; i < 500; i++) {
        weft_task_t *a, *c = NULL;
        int ret;

        cr_assert_eq(weft_spawn(&a, accept_one, (void *)(intptr_t)lfd), 0);
        if (i % 2)
            cr_assert_eq(weft_spawn(&c, connector, (void *)(intptr_t)port),
                         0);
        for (int k = 0; k < i % 3; k++)
            weft_yield();
        weft_cancel(a);
        ret = weft_join(a);
        cr_assert(ret >= 0 || ret == -ECANCELED, "accept: %d", ret);
        if (ret >= 0) {
            accepted++;
            close(ret);
        }
        if (c) {
            ret = weft_join(c);
            cr_assert_geq(ret, 0, "connect: %d", ret);
            conns[nconns++] = ret;
            got++;
        }
    }
    /* Connections no cancelled accept took are still in the queue. */
    while (accepted < got) {
        int fd = weft_accept(lfd, NULL, NULL, 0, T_SECS(5));

        cr_assert_geq(fd, 0, "a connection was lost: %d", fd);
        close(fd);
        accepted++;
    }
    cr_assert_eq(weft_accept(lfd, NULL, NULL, 0, T_MS(20)), -ETIMEDOUT);
    for (int i = 0; i < nconns; i++)
        close(conns[i]);
    cr_assert_eq(t_fds(), base, "an fd leaked");
    close(lfd);
    return 0;
}

Test(io_cancel, accept_cancelled_loses_no_connection, .timeout = 120)
{
    t_run(accept_cancel_main, NULL);
}

/* ---- connect ------------------------------------------------------------- */

static int connect_blocked(void *arg)
{
    struct sockaddr_in sa = t_loopback((uint16_t)(intptr_t)arg);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ret = weft_connect(fd, (struct sockaddr *)&sa, sizeof(sa),
                           WEFT_NO_DEADLINE);

    close(fd);
    return ret;
}

static int connect_cancel_main(void *arg)
{
    int lfd = t_listen_tcp(0), fds[64], n = 0, ret;
    uint16_t port = t_port(lfd);
    struct sockaddr_in sa = t_loopback(port);

    (void)arg;
    /* Fill the accept queue so that the next connect hangs. */
    for (; n < 64; n++) {
        fds[n] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ret = weft_connect(fds[n], (struct sockaddr *)&sa, sizeof(sa),
                           T_MS(100));
        if (ret == -ETIMEDOUT)
            break;
        cr_assert_eq(ret, 0);
    }
    cr_assert_lt(n, 64, "the accept queue never filled: no connect hangs");
    for (int i = 0; i < 50; i++) {
        weft_task_t *c;

        cr_assert_eq(weft_spawn(&c, connect_blocked, (void *)(intptr_t)port),
                     0);
        /* At a random point, and every fifth time surely while the connect
         * is pending. */
        if (i % 5 == 0)
            t_until_parked_in(c, WHY_IO);
        else
            for (int k = 0; k < 1 + i % 4; k++)
                cr_assert_eq(weft_yield(), 0);
        weft_cancel(c);
        ret = weft_join(c);
        cr_assert_eq(ret, -ECANCELED, "connect: %d", ret);
    }
    for (int i = 0; i <= n && i < 64; i++)
        close(fds[i]);
    close(lfd);
    return 0;
}

Test(io_cancel, connect_cancelled_while_pending, .timeout = 60)
{
    t_run(connect_cancel_main, NULL);
}

/* A cancel pending before a call ends it with -ECANCELED before anything is
 * issued: the data waiting on the socket stays for the next call. */
static int pending_cancel_main(void *arg)
{
    weft_task_t *self = weft_self();
    char buf[8];
    int sv[2];

    (void)arg;
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(weft_send(sv[0], "data", 4, 0, T_SECS(5)), 4);
    weft_cancel(self);
    cr_assert_eq(weft_recv(sv[1], buf, sizeof(buf), 0, T_SECS(5)), -ECANCELED);
    cr_assert_eq(weft_recv(sv[1], buf, sizeof(buf), 0, T_SECS(5)), 4);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

Test(io_cancel, pending_cancel_issues_nothing, .timeout = 30)
{
    t_run(pending_cancel_main, NULL);
}
