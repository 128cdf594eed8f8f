/*
 * weft_close on an fd other tasks wait on: their calls end with -EBADF
 * (never hang, never -ETIMEDOUT), whichever worker they wait on and
 * whatever they wait in (recv, send, accept, wait_fd, with or without a
 * deadline), and the fd is closed.
 */
#include <poll.h>

#include "io_helpers.h"

#define PAIRS 16

enum wait_kind { W_RECV, W_RECV_DEADLINE, W_WAIT_FD, W_SEND, W_ACCEPT };

struct waiter {
    int fd;
    enum wait_kind kind;
    atomic_int worker;      /* where the wait was issued */
    atomic_int closed_from; /* where weft_close was called */
};

static int wait_on(void *arg)
{
    struct waiter *w = arg;
    static char big[1 << 16];
    char c;
    ssize_t n;

    /* No suspension from here to the wait: it is issued on this worker. */
    atomic_store(&w->worker, weft_worker_id());
    switch (w->kind) {
    case W_RECV:
        return (int)weft_recv(w->fd, &c, 1, 0, WEFT_NO_DEADLINE);
    case W_RECV_DEADLINE:
        return (int)weft_recv(w->fd, &c, 1, 0, T_SECS(20));
    case W_WAIT_FD:
        return weft_wait_fd(w->fd, POLLIN, WEFT_NO_DEADLINE);
    case W_SEND:
        /* The socket buffer is full already: waits for room. */
        while ((n = weft_send(w->fd, big, sizeof(big), 0, T_SECS(20))) > 0)
            ;
        return (int)n;
    case W_ACCEPT:
        return weft_accept(w->fd, NULL, NULL, 0, WEFT_NO_DEADLINE);
    }
    return -EINVAL;
}

/* Fills fd's socket buffer, so that the next send must wait for room. */
static void t_fill(int fd)
{
    static char junk[1 << 16];

    while (send(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
        ;
    cr_assert_eq(errno, EAGAIN);
}

/* Closes the fds of the n waiters not closed yet whose wait was issued on
 * a worker other than the caller's at the time; returns how many are
 * left. No suspension between the check and the start of the close. */
static int t_close_others(struct waiter *w, int n)
{
    int left = 0;

    for (int i = 0; i < n; i++) {
        int self = weft_worker_id();

        if (atomic_load(&w[i].closed_from) >= 0)
            continue;
        if (self == atomic_load(&w[i].worker)) {
            left++;
            continue;
        }
        atomic_store(&w[i].closed_from, self);
        cr_assert_eq(weft_close(w[i].fd), 0);
    }
    return left;
}

struct closer {
    struct waiter *w;
    int n;
    atomic_int started;
};

static int close_others(void *arg)
{
    struct closer *c = arg;

    atomic_store(&c->started, 1);
    t_close_others(c->w, c->n);
    return 0;
}

/*
 * Closes the fds of the n waiters, each from a worker other than the one
 * its wait was issued on: those it can from here, then the rest from a task
 * handed to the runtime through the injection queue (weft_spawn_from)
 * while this worker spins without a scheduling point until that task has
 * started, which it can then only do on another worker.
 */
static void t_close_from_other_workers(struct waiter *w, int n)
{
    while (t_close_others(w, n) > 0) {
        struct closer c = { .w = w, .n = n, .started = 0 };
        weft_task_t *t;

        cr_assert_eq(weft_spawn_from(weft_runtime_current(), &t,
                                     close_others, &c), 0);
        while (!atomic_load(&c.started))
            ;
        cr_assert_eq(weft_join(t), 0);
    }
}

/* Set by the hog's owner: while true, the hog leaves its worker idle. */
static atomic_bool spin_pause;

/* Sets up PAIRS waiters, closes their fds (each from a worker other than
 * the waiter's if arg is not NULL, with the hog paused so that the workers
 * answer quickly) and checks that every wait ended with -EBADF. */
static int close_main(void *arg)
{
    struct waiter w[PAIRS];
    weft_task_t *t[PAIRS];
    int peer[PAIRS], sv[2];

    for (int i = 0; i < PAIRS; i++) {
        w[i].kind = (enum wait_kind)(i % 5);
        atomic_init(&w[i].worker, -1);
        atomic_init(&w[i].closed_from, -1);
        if (w[i].kind == W_ACCEPT) {
            w[i].fd = t_listen_tcp(4);
            peer[i] = -1;
        } else {
            cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
                                    sv), 0);
            w[i].fd = sv[0];
            peer[i] = sv[1];
            if (w[i].kind == W_SEND)
                t_fill(w[i].fd);
        }
        cr_assert_eq(weft_spawn(&t[i], wait_on, &w[i]), 0);
    }
    /* Every waiter waits in its call: nothing it waits for can come. */
    for (int i = 0; i < PAIRS; i++)
        t_until_parked_in(t[i], WHY_IO);
    if (arg) {
        atomic_store(&spin_pause, true);
        t_close_from_other_workers(w, PAIRS);
        atomic_store(&spin_pause, false);
    } else
        for (int i = 0; i < PAIRS; i++)
            cr_assert_eq(weft_close(w[i].fd), 0);
    for (int i = 0; i < PAIRS; i++) {
        int ret = weft_join(t[i]);

        cr_assert_eq(ret, -EBADF, "waiter %d (kind %d): %d (%s)", i,
                     (int)w[i].kind, ret, strerror(-ret));
        if (arg)
            cr_assert_neq(atomic_load(&w[i].closed_from),
                          atomic_load(&w[i].worker),
                          "waiter %d was closed from its own worker", i);
        if (peer[i] >= 0)
            close(peer[i]);
    }
    return 0;
}

Test(io_close, close_ends_every_kind_of_wait_with_ebadf, .timeout = 60)
{
    t_run(close_main, NULL);
}

/* Waiters spread over the workers by a hog that keeps stealing going. */
static atomic_bool spin_stop;

static int spinner(void *arg)
{
    (void)arg;
    while (!atomic_load(&spin_stop)) {
        int64_t end = weft_now_ns() + 1000000;

        if (atomic_load(&spin_pause)) {
            cr_assert_eq(weft_sleep_ms(1), 0);
            continue;
        }
        while (weft_now_ns() < end)
            ;
        weft_yield();
    }
    return 0;
}

static int spread_main(void *arg)
{
    weft_task_t *hog;
    int ret;

    (void)arg;
    cr_assert_eq(weft_spawn(&hog, spinner, NULL), 0);
    for (int round = 0; round < 5; round++) {
        ret = close_main(&hog);
        cr_assert_eq(ret, 0);
    }
    atomic_store(&spin_stop, true);
    cr_assert_eq(weft_join(hog), 0);
    return 0;
}

Test(io_close, close_from_another_worker_ends_the_wait, .timeout = 60)
{
    t_run_two_or_more(spread_main, NULL);
}

static int reuse_main(void *arg)
{
    int sv[2];
    char c = 'x';

    (void)arg;
    /* No waiter: closing costs nothing special, and the fd number is
     * usable again at once. */
    for (int i = 0; i < 200; i++) {
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                     0);
        cr_assert_eq(weft_send(sv[1], &c, 1, 0, T_SECS(5)), 1);
        cr_assert_eq(weft_recv(sv[0], &c, 1, 0, T_SECS(5)), 1);
        cr_assert_eq(weft_close(sv[0]), 0);
        cr_assert_eq(weft_close(sv[1]), 0);
    }
    cr_assert_eq(weft_close(sv[0]), -EBADF);
    return 0;
}

Test(io_close, fds_closed_after_use_are_reusable, .timeout = 30)
{
    t_run(reuse_main, NULL);
}

/* Nothing cuts a close short: under an expired scope, or with a cancel
 * pending, the fd is closed and the cancel stays for the next call. */
static int uncut_main(void *arg)
{
    weft_scope_t s;
    int sv[2];

    (void)arg;
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(weft_scope_enter(&s, weft_now_ns() - 1), 0);
    cr_assert_eq(weft_close(sv[0]), 0);
    cr_assert_eq(fcntl(sv[0], F_GETFD), -1);
    cr_assert_eq(errno, EBADF);
    cr_assert_eq(weft_scope_exit(&s), 1);

    cr_assert_eq(weft_cancel(weft_self()), 0);
    cr_assert_eq(weft_close(sv[1]), 0);
    cr_assert_eq(fcntl(sv[1], F_GETFD), -1);
    cr_assert_eq(weft_yield(), -ECANCELED);
    return 0;
}

Test(io_close, close_is_cut_short_by_neither_a_scope_nor_a_cancel,
     .timeout = 30)
{
    t_run(uncut_main, NULL);
}
