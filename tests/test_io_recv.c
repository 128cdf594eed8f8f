/*
 * weft_recv on TCP sockets, where io_uring reads ahead with a multishot recv
 * into each worker's provided buffers: bytes that arrive before the recv,
 * a recv smaller than what is kept, cancels and timeouts of a waiting recv
 * (nothing received is lost), the buffers running dry, end of stream and
 * resets, and a socket read from tasks on several workers. Every test runs
 * on both backends (epoll reads plainly, and must give the same answers);
 * the white-box waits use the driver's probe and are skipped on epoll.
 */
#include <criterion/criterion.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "../runtime/driver/backend.h"
#include "../runtime/runtime.h"
#include "../runtime/worker.h"
#include "../runtime/task.h"
#include "io_helpers.h"

struct pair {
    int s, c; /* the accepted end (read here) and the connecting end */
};

static struct pair t_tcp_pair(void)
{
    int lfd = t_listen_tcp(64);
    struct pair p;

    p.c = weft_connect_tcp("127.0.0.1", t_port(lfd), T_SECS(10));
    cr_assert_geq(p.c, 0, "connect: %s", strerror(-p.c));
    p.s = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, T_SECS(10));
    cr_assert_geq(p.s, 0, "accept: %s", strerror(-p.s));
    cr_assert_eq(weft_close(lfd), 0);
    return p;
}

static void t_close_pair(struct pair p)
{
    cr_assert_eq(weft_close(p.s), 0);
    cr_assert_eq(weft_close(p.c), 0);
}

static bool t_uring(void)
{
    return weft__task_current()->rt->io_ops == &weft__io_uring_ops;
}

/* The driver's probe, inside the worker's runtime section as every use of
 * its instance is (a rescuer never drives it meanwhile). */
static int t_probe(int fd, struct weft__io_rx_probe *pr)
{
    struct worker *w = weft__worker_current();
    int ret;

    weft__worker_enter(w);
    ret = weft__io_rx_probe(fd, pr);
    weft__worker_leave(w);
    return ret;
}

/* Bytes kept for fd on this worker (0 on epoll, -1 if another worker
 * holds them). */
static long t_queued(int fd)
{
    struct weft__io_rx_probe pr;

    if (t_probe(fd, &pr) < 0)
        return 0;
    return pr.owned ? pr.queued : -1;
}

/* Yields until n bytes are kept for fd on io_uring (the multishot took
 * them from the socket); on epoll, until fd is readable. */
static void t_until_queued(int fd, long n)
{
    if (!t_uring()) {
        cr_assert_eq(weft_wait_fd(fd, POLLIN, T_SECS(10)), POLLIN);
        return;
    }
    for (unsigned polls = 1; t_queued(fd) < n; polls++)
        cr_assert_eq(polls % 64 ? weft_yield() : weft_sleep_ms(1), 0);
}

static uint64_t t_inline_hits(void)
{
    struct weft__io_rx_probe pr;

    t_probe(-1, &pr);
    return pr.inline_hits;
}

static char pattern(size_t i)
{
    return (char)(i * 7 + i / 251);
}

/* ---- bytes that arrive before the recv ----------------------------------- */

static int before_main(void *arg)
{
    struct pair p = t_tcp_pair();
    char buf[64];
    uint64_t hits;

    (void)arg;
    /* The first recv waits; on io_uring it leaves a multishot behind. */
    cr_assert_eq(weft_write_all(p.c, "x", 1, T_SECS(10)), 1);
    cr_assert_eq(weft_recv(p.s, buf, sizeof(buf), 0, T_SECS(10)), 1);
    cr_assert_eq(buf[0], 'x');
    cr_assert_eq(weft_write_all(p.c, "hello world", 11, T_SECS(10)), 11);
    t_until_queued(p.s, 11);
    hits = t_inline_hits();
    cr_assert_eq(weft_recv(p.s, buf, sizeof(buf), 0, T_SECS(10)), 11);
    cr_assert_eq(memcmp(buf, "hello world", 11), 0);
    if (t_uring()) /* it found them kept and did not wait */
        cr_assert_eq(t_inline_hits(), hits + 1);
    cr_assert_eq(t_queued(p.s), 0);
    t_close_pair(p);
    return 0;
}

Test(io_recv, bytes_that_arrive_before_the_recv_are_returned_at_once,
     .timeout = 30)
{
    t_run_one_worker(before_main, NULL);
}

/* ---- a recv smaller than what is kept ----------------------------------- */

#define SMALL_TOTAL 10000

static int smaller_main(void *arg)
{
    struct pair p = t_tcp_pair();
    static char out[SMALL_TOTAL], in[SMALL_TOTAL];
    size_t got = 0;
    char c;

    (void)arg;
    for (size_t i = 0; i < sizeof(out); i++)
        out[i] = pattern(i);
    cr_assert_eq(weft_write_all(p.c, "x", 1, T_SECS(10)), 1);
    cr_assert_eq(weft_recv(p.s, &c, 1, 0, T_SECS(10)), 1);
    /* More than one provided buffer holds: the rest of each read stays. */
    cr_assert_eq(weft_write_all(p.c, out, sizeof(out), T_SECS(10)),
                 (ssize_t)sizeof(out));
    t_until_queued(p.s, SMALL_TOTAL);
    while (got < sizeof(in)) {
        size_t want = 1 + got % 997;
        ssize_t n;

        if (want > sizeof(in) - got)
            want = sizeof(in) - got;
        n = weft_recv(p.s, in + got, want, 0, T_SECS(10));
        cr_assert_gt(n, 0, "recv: %zd", n);
        cr_assert_leq((size_t)n, want);
        got += (size_t)n;
        if (t_uring()) /* all of it was kept: each read is full */
            cr_assert_eq((size_t)n, want);
    }
    cr_assert_eq(memcmp(in, out, sizeof(in)), 0);
    /* A read of the wrong kind (weft_read on the socket) reads in order
     * too. */
    cr_assert_eq(weft_write_all(p.c, "abc", 3, T_SECS(10)), 3);
    cr_assert_eq(weft_read_exact(p.s, in, 3, T_SECS(10)), 3);
    cr_assert_eq(memcmp(in, "abc", 3), 0);
    t_close_pair(p);
    return 0;
}

Test(io_recv, a_recv_smaller_than_what_is_kept_leaves_the_rest_in_order,
     .timeout = 30)
{
    t_run_one_worker(smaller_main, NULL);
}

/* ---- cancel and timeout of a waiting recv ------------------------------- */

/* Bad input where bytes are kept gets recv(2)'s answers and loses
 * nothing: a NULL buffer is -EFAULT whether bytes are kept or not, a
 * zero length returns 0, a huge one is clamped and returns what there
 * is, and the bytes then come in order to the next good recv. */
static int misuse_main(void *arg)
{
    struct pair p = t_tcp_pair();
    char c[8];

    (void)arg;
    cr_assert_eq(weft_recv(p.s, NULL, sizeof(c), MSG_DONTWAIT, T_SECS(5)),
                 -EAGAIN);
    /* A recv that waits leaves the multishot armed on io_uring. */
    cr_assert_eq(weft_send(p.c, "x", 1, 0, T_SECS(5)), 1);
    cr_assert_eq(weft_recv(p.s, c, sizeof(c), 0, T_SECS(5)), 1);
    cr_assert_eq(weft_send(p.c, "abcd", 4, 0, T_SECS(5)), 4);
    t_until_queued(p.s, 4);
    cr_assert_eq(weft_recv(p.s, NULL, sizeof(c), 0, T_SECS(5)), -EFAULT);
    cr_assert_eq(weft_recv(p.s, NULL, SIZE_MAX, 0, T_SECS(5)), -EFAULT);
    cr_assert_eq(weft_recv(p.s, c, 0, 0, T_SECS(5)), 0);
    cr_assert_eq(weft_recv(p.s, c, 2, 0, T_SECS(5)), 2);
    cr_assert_eq(memcmp(c, "ab", 2), 0);
    /* Two bytes are left: a huge length reads those, never past them. */
    cr_assert_eq(weft_recv(p.s, c, SIZE_MAX, 0, T_SECS(5)), 2);
    cr_assert_eq(memcmp(c, "cd", 2), 0);
    cr_assert_eq(weft_recv(p.s, c, sizeof(c), MSG_DONTWAIT, T_SECS(5)),
                 -EAGAIN);
    cr_assert_eq(weft_recv(-1, c, sizeof(c), 0, T_SECS(5)), -EBADF);
    t_close_pair(p);
    return 0;
}

Test(io_recv, bad_buffers_and_lengths_lose_no_kept_bytes, .timeout = 30)
{
    t_run(misuse_main, NULL);
}

static int recv_one(void *arg)
{
    char buf[64];

    return (int)weft_recv((int)(intptr_t)arg, buf, sizeof(buf), 0,
                          WEFT_NO_DEADLINE);
}

struct got {
    int fd;
    ssize_t n;
    char buf[64];
};

/* One recv; its result and bytes go to the caller, who joins. */
static int recv_into(void *arg)
{
    struct got *g = arg;

    g->n = weft_recv(g->fd, g->buf, sizeof(g->buf), 0, WEFT_NO_DEADLINE);
    return 0;
}

static void t_read_all(int fd, const char *want, size_t len)
{
    char buf[256];
    size_t got = 0;

    cr_assert_leq(len, sizeof(buf));
    while (got < len) {
        ssize_t n = weft_recv(fd, buf + got, sizeof(buf) - got, 0,
                              T_SECS(10));

        cr_assert_gt(n, 0, "recv: %zd", n);
        got += (size_t)n;
    }
    cr_assert_eq(got, len);
    cr_assert_eq(memcmp(buf, want, len), 0);
}

static int cancel_main(void *arg)
{
    struct pair p = t_tcp_pair();
    weft_task_t *h;
    char buf[64];

    (void)arg;
    /* Some bytes first, so that the multishot is in the kernel. */
    cr_assert_eq(weft_write_all(p.c, "a", 1, T_SECS(10)), 1);
    cr_assert_eq(weft_recv(p.s, buf, sizeof(buf), 0, T_SECS(10)), 1);

    /* A recv waiting in another task, cancelled: nothing was there. */
    cr_assert_eq(weft_spawn(&h, recv_one, (void *)(intptr_t)p.s), 0);
    t_until_parked_in(h, WHY_IO);
    cr_assert_eq(weft_cancel(h), 0);
    cr_assert_eq(weft_join(h), -ECANCELED);
    /* Sent after the cancel: the next recv gets every byte, in order. */
    cr_assert_eq(weft_write_all(p.c, "bcd", 3, T_SECS(10)), 3);
    cr_assert_eq(weft_write_all(p.c, "efgh", 4, T_SECS(10)), 4);
    t_until_queued(p.s, 7);
    t_read_all(p.s, "bcdefgh", 7);

    /* A recv that times out loses nothing either. */
    cr_assert_eq(weft_recv(p.s, buf, sizeof(buf), 0, T_MS(20)), -ETIMEDOUT);
    cr_assert_eq(weft_write_all(p.c, "ijk", 3, T_SECS(10)), 3);
    t_read_all(p.s, "ijk", 3);

    /* Cancelled while bytes are kept (a cancel that the task takes at the
     * call's entry): they stay for the next recv. */
    cr_assert_eq(weft_write_all(p.c, "lmn", 3, T_SECS(10)), 3);
    t_until_queued(p.s, 3);
    cr_assert_eq(weft_spawn(&h, recv_one, (void *)(intptr_t)p.s), 0);
    cr_assert_eq(weft_cancel(h), 0);
    cr_assert_eq(weft_join(h), -ECANCELED);
    t_read_all(p.s, "lmn", 3);

    /* Bytes and a cancel arriving together: the waiting recv returns
     * either the bytes (the cancel stays pending) or -ECANCELED, and what
     * it did not return comes next, in order. */
    for (int round = 0; round < 20; round++) {
        struct got g = { .fd = p.s };
        char all[16];
        size_t n = 0;

        cr_assert_eq(weft_spawn(&h, recv_into, &g), 0);
        t_until_parked_in(h, WHY_IO);
        cr_assert_eq(weft_write_all(p.c, "0123456789", 10, T_SECS(10)), 10);
        if (round % 2)
            cr_assert_eq(weft_yield(), 0);
        cr_assert_eq(weft_cancel(h), 0);
        cr_assert_eq(weft_join(h), 0);
        cr_assert(g.n > 0 || g.n == -ECANCELED, "recv: %zd", g.n);
        if (g.n > 0) {
            memcpy(all, g.buf, (size_t)g.n);
            n = (size_t)g.n;
        }
        while (n < 10) {
            ssize_t k = weft_recv(p.s, all + n, sizeof(all) - n, 0,
                                  T_SECS(10));

            cr_assert_gt(k, 0, "recv: %zd", k);
            n += (size_t)k;
        }
        cr_assert_eq(n, 10);
        cr_assert_eq(memcmp(all, "0123456789", 10), 0);
    }

    /* A recv waiting when its fd is closed by another task: -EBADF. */
    cr_assert_eq(weft_spawn(&h, recv_one, (void *)(intptr_t)p.s), 0);
    t_until_parked_in(h, WHY_IO);
    cr_assert_eq(weft_close(p.s), 0);
    cr_assert_eq(weft_join(h), -EBADF);
    cr_assert_eq(weft_close(p.c), 0);
    return 0;
}

Test(io_recv, a_cancelled_or_timed_out_recv_loses_no_bytes, .timeout = 30)
{
    t_run(cancel_main, NULL);
}

/* ---- the provided buffers run dry --------------------------------------- */

#define DRY_CONNS 96
#define DRY_BYTES (64 * 1024)

static int dry_main(void *arg)
{
    static struct pair p[DRY_CONNS];
    static char out[DRY_BYTES], in[DRY_BYTES];
    struct weft__io_rx_probe pr;
    uint64_t starved0;
    char c;

    (void)arg;
    t_raise_nofile();
    t_probe(-1, &pr);
    starved0 = pr.starved;
    for (size_t i = 0; i < sizeof(out); i++)
        out[i] = pattern(i);
    for (int i = 0; i < DRY_CONNS; i++) {
        p[i] = t_tcp_pair();
        cr_assert_eq(weft_write_all(p[i].c, "x", 1, T_SECS(10)), 1);
        cr_assert_eq(weft_recv(p[i].s, &c, 1, 0, T_SECS(10)), 1);
    }
    /* 6 MiB unread against 4 MiB of buffers: the kernel holds the rest. */
    for (int i = 0; i < DRY_CONNS; i++)
        cr_assert_eq(weft_write_all(p[i].c, out, sizeof(out), T_SECS(20)),
                     (ssize_t)sizeof(out));
    if (t_uring())
        for (unsigned polls = 1;; polls++) {
            t_probe(-1, &pr);
            if (pr.starved > starved0)
                break;
            cr_assert_eq(polls % 64 ? weft_yield() : weft_sleep_ms(1), 0);
        }
    for (int i = 0; i < DRY_CONNS; i++) {
        cr_assert_eq(weft_read_exact(p[i].s, in, sizeof(in), T_SECS(20)),
                     (ssize_t)sizeof(in));
        cr_assert_eq(memcmp(in, out, sizeof(in)), 0, "connection %d", i);
    }
    /* Buffers came back: a connection reads ahead again. */
    cr_assert_eq(weft_write_all(p[0].c, "yz", 2, T_SECS(10)), 2);
    t_read_all(p[0].s, "yz", 2);
    for (int i = 0; i < DRY_CONNS; i++)
        t_close_pair(p[i]);
    return 0;
}

Test(io_recv, buffers_running_dry_lose_no_bytes, .timeout = 60)
{
    t_run_one_worker(dry_main, NULL);
}

/* ---- end of stream and errors ------------------------------------------- */

static int end_main(void *arg)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    struct pair p = t_tcp_pair();
    char buf[64];

    (void)arg;
    cr_assert_eq(weft_write_all(p.c, "a", 1, T_SECS(10)), 1);
    cr_assert_eq(weft_recv(p.s, buf, sizeof(buf), 0, T_SECS(10)), 1);
    /* Bytes, then the end: the bytes first, then 0, and 0 again. */
    cr_assert_eq(weft_write_all(p.c, "bye", 3, T_SECS(10)), 3);
    cr_assert_eq(weft_shutdown(p.c, SHUT_WR), 0);
    t_until_queued(p.s, 3);
    t_read_all(p.s, "bye", 3);
    cr_assert_eq(weft_recv(p.s, buf, sizeof(buf), 0, T_SECS(10)), 0);
    cr_assert_eq(weft_recv(p.s, buf, sizeof(buf), 0, T_SECS(10)), 0);
    /* The other way still works. */
    cr_assert_eq(weft_write_all(p.s, "ok", 2, T_SECS(10)), 2);
    t_read_all(p.c, "ok", 2);
    t_close_pair(p);

    /* A reset while a recv waits: -ECONNRESET once, then the end. */
    p = t_tcp_pair();
    cr_assert_eq(weft_write_all(p.c, "a", 1, T_SECS(10)), 1);
    cr_assert_eq(weft_recv(p.s, buf, sizeof(buf), 0, T_SECS(10)), 1);
    cr_assert_eq(setsockopt(p.c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    cr_assert_eq(weft_close(p.c), 0);
    cr_assert_eq(weft_recv(p.s, buf, sizeof(buf), 0, T_SECS(10)),
                 -ECONNRESET);
    cr_assert_eq(weft_recv(p.s, buf, sizeof(buf), 0, T_SECS(10)), 0);
    cr_assert_eq(weft_close(p.s), 0);
    return 0;
}

Test(io_recv, end_of_stream_and_reset_come_after_the_bytes_kept,
     .timeout = 30)
{
    t_run(end_main, NULL);
}

/* ---- a socket read from tasks on several workers ------------------------- */

/* A recv on another worker than the one holding the socket's bytes is
 * handed to that one, so bytes stay in order whatever the reader does. */

#define MOVE_CHUNK 4096

static atomic_bool write_stop;

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

/* Writes the pattern, a chunk at a time, until told to stop. */
static int write_pattern(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char chunk[MOVE_CHUNK];
    size_t at = 0;

    while (!atomic_load(&write_stop)) {
        for (size_t i = 0; i < sizeof(chunk); i++)
            chunk[i] = pattern(at + i);
        cr_assert_eq(weft_write_all(fd, chunk, sizeof(chunk), T_SECS(30)),
                     (ssize_t)sizeof(chunk));
        at += sizeof(chunk);
        cr_assert_eq(weft_yield(), 0);
    }
    cr_assert_eq(weft_shutdown(fd, SHUT_WR), 0);
    return 0;
}

static int move_main(void *arg)
{
    struct pair p = t_tcp_pair();
    uint64_t handovers = atomic_load(&weft__io_rx_handovers);
    int64_t end = T_SECS(20);
    bool seen[64] = { 0 };
    int distinct = 0, id;
    weft_task_t *wh;
    char in[331];
    size_t got = 0;

    (void)arg;
    atomic_store(&write_stop, false);
    cr_assert_eq(weft_spawn(&wh, write_pattern, (void *)(intptr_t)p.c), 0);
    /* Small reads, so that bytes are often kept on one worker when the
     * reader moves to another; every byte is checked against its place. */
    for (;;) {
        size_t want = 1 + got % sizeof(in);
        ssize_t n;

        if ((distinct >= 2 && (!t_uring() || atomic_load(
                &weft__io_rx_handovers) > handovers)) ||
            weft_now_ns() >= end)
            atomic_store(&write_stop, true);
        /* The worker that issues the recv (its answer may wake the task
         * on the worker holding the bytes). */
        id = weft_worker_id();
        distinct += !seen[id];
        seen[id] = true;
        n = weft_recv(p.s, in, want, 0, T_SECS(30));
        if (n == 0 && atomic_load(&write_stop))
            break; /* the writer stopped and said so */
        cr_assert_gt(n, 0, "recv: %zd", n);
        for (ssize_t i = 0; i < n; i++)
            cr_assert_eq(in[i], pattern(got + (size_t)i),
                         "byte %zu out of order", got + (size_t)i);
        got += (size_t)n;
        /* A job on the blocking pool: its end wakes the reader from
         * outside the workers, and whichever worker is free takes it. */
        cr_assert_eq(weft_blocking(nothing, NULL), 0);
    }
    cr_assert_eq(weft_join(wh), 0);
    cr_assert_geq(distinct, 2, "the reader never changed workers");
    if (t_uring())
        cr_assert_gt(atomic_load(&weft__io_rx_handovers), handovers,
                     "no recv was handed to the worker holding its bytes");
    t_close_pair(p);
    return 0;
}

Test(io_recv, a_socket_read_from_a_task_that_moves_keeps_its_bytes_in_order,
     .timeout = 60)
{
    t_run_two_or_more(move_main, NULL);
}

/* ---- bytes kept when the runtime ends ------------------------------------ */

static struct pair kept;

static int keep_main(void *arg)
{
    char c;

    (void)arg;
    kept = t_tcp_pair();
    cr_assert_eq(weft_write_all(kept.c, "x", 1, T_SECS(10)), 1);
    cr_assert_eq(weft_recv(kept.s, &c, 1, 0, T_SECS(10)), 1);
    cr_assert_eq(weft_write_all(kept.c, "left over", 9, T_SECS(10)), 9);
    t_until_queued(kept.s, 9);
    return 0; /* ends with the bytes unread and both fds open */
}

static int read_kept_main(void *arg)
{
    (void)arg;
    t_read_all(kept.s, "left over", 9);
    cr_assert_eq(weft_write_all(kept.c, "more", 4, T_SECS(10)), 4);
    t_read_all(kept.s, "more", 4);
    t_close_pair(kept);
    return 0;
}

Test(io_recv, bytes_unread_when_a_runtime_ends_go_to_the_next_reader,
     .timeout = 30)
{
    t_run(keep_main, NULL);
    t_run(read_kept_main, NULL);
}
