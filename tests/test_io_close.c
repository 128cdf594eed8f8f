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
    atomic_bool started;
};

static int wait_on(void *arg)
{
    struct waiter *w = arg;
    static char big[1 << 16];
    char c;
    ssize_t n;

    atomic_store(&w->started, true);
    switch (w->kind) {
    case W_RECV:
        return (int)weft_recv(w->fd, &c, 1, 0, WEFT_NO_DEADLINE);
    case W_RECV_DEADLINE:
        return (int)weft_recv(w->fd, &c, 1, 0, T_SECS(20));
    case W_WAIT_FD:
        return weft_wait_fd(w->fd, POLLIN, WEFT_NO_DEADLINE);
    case W_SEND:
        /* Fills the socket buffer, then waits for room. */
        while ((n = weft_send(w->fd, big, sizeof(big), 0, T_SECS(20))) > 0)
            ;
        return (int)n;
    case W_ACCEPT:
        return weft_accept(w->fd, NULL, NULL, 0, WEFT_NO_DEADLINE);
    }
    return -EINVAL;
}

static int close_main(void *arg)
{
    struct waiter w[PAIRS];
    weft_task_t *t[PAIRS];
    int peer[PAIRS], sv[2];

    (void)arg;
    for (int i = 0; i < PAIRS; i++) {
        w[i].kind = (enum wait_kind)(i % 5);
        atomic_init(&w[i].started, false);
        if (w[i].kind == W_ACCEPT) {
            w[i].fd = t_listen_tcp(4);
            peer[i] = -1;
        } else {
            cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
                                    sv), 0);
            w[i].fd = sv[0];
            peer[i] = sv[1];
        }
        cr_assert_eq(weft_spawn(&t[i], wait_on, &w[i]), 0);
    }
    for (int i = 0; i < PAIRS; i++)
        while (!atomic_load(&w[i].started))
            weft_yield();
    cr_assert_eq(weft_sleep_ms(50), 0); /* let them reach their wait */
    for (int i = 0; i < PAIRS; i++)
        cr_assert_eq(weft_close(w[i].fd), 0);
    for (int i = 0; i < PAIRS; i++) {
        int ret = weft_join(t[i]);

        cr_assert_eq(ret, -EBADF, "waiter %d (kind %d): %d (%s)", i,
                     (int)w[i].kind, ret, strerror(-ret));
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
        ret = close_main(NULL);
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
