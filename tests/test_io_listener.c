/*
 * Listeners (weft_listener_*): every connection accepted exactly once by
 * concurrent accepters on any worker, connections accepted ahead of the
 * calls kept (beyond the multishot's stop point), peer addresses, a
 * cancelled or timed-out accept losing no connection, and closing a
 * listener under waiting accepts.
 */
#include <poll.h>

#include "io_helpers.h"

static weft_listener_t *t_listener(int backlog)
{
    weft_listener_t *l;

    cr_assert_eq(weft_listener_new(&l, t_listen_tcp(backlog), SOCK_CLOEXEC),
                 0);
    return l;
}

static int t_connect_port(uint16_t port)
{
    struct sockaddr_in sa = t_loopback(port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ret;

    cr_assert_geq(fd, 0);
    ret = weft_connect(fd, (struct sockaddr *)&sa, sizeof(sa), T_SECS(20));
    cr_assert_eq(ret, 0, "connect: %s", strerror(-ret));
    return fd;
}

/* ---- many clients, several accepters ------------------------------------ */

#define MANY 300

struct many {
    weft_listener_t *l;
    uint16_t port;
    atomic_int seen[MANY];
    atomic_int accepted;
};

static int many_client(void *arg)
{
    struct many *m = (struct many *)((intptr_t)arg & ~(intptr_t)1023);
    int idx = (int)((intptr_t)arg & 1023), fd = t_connect_port(m->port);
    char c;

    cr_assert_eq(weft_write_all(fd, &idx, sizeof(idx), T_SECS(20)),
                 (ssize_t)sizeof(idx));
    cr_assert_eq(weft_read_exact(fd, &c, 1, T_SECS(20)), 1);
    weft_close(fd);
    return 0;
}

static int many_accepter(void *arg)
{
    struct many *m = arg;

    for (;;) {
        int fd = weft_listener_accept(m->l, NULL, NULL, WEFT_NO_DEADLINE);
        int idx;

        if (fd == -ECANCELED)
            return 0;
        cr_assert_geq(fd, 0, "accept: %s", strerror(-fd));
        cr_assert_eq(weft_read_exact(fd, &idx, sizeof(idx), T_SECS(20)),
                     (ssize_t)sizeof(idx));
        cr_assert(idx >= 0 && idx < MANY);
        cr_assert_eq(atomic_fetch_add(&m->seen[idx], 1), 0, "twice: %d",
                     idx);
        atomic_fetch_add(&m->accepted, 1);
        cr_assert_eq(weft_send(fd, "k", 1, 0, T_SECS(20)), 1);
        weft_close(fd);
    }
}

static int many_main(void *arg)
{
    static _Alignas(1024) struct many m;
    weft_task_t *acc[4], *cl[MANY];

    (void)arg;
    m.l = t_listener(1024);
    m.port = t_port(weft_listener_fd(m.l));
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_spawn(&acc[i], many_accepter, &m), 0);
    for (int i = 0; i < MANY; i++)
        cr_assert_eq(weft_spawn(&cl[i], many_client,
                                (void *)((intptr_t)&m | i)), 0);
    for (int i = 0; i < MANY; i++)
        cr_assert_eq(weft_join(cl[i]), 0);
    cr_assert_eq(atomic_load(&m.accepted), MANY);
    /* Close only once no accept call can start (weft.h): an accepter
     * between two calls would otherwise call into a freed listener. */
    for (int i = 0; i < 4; i++)
        weft_cancel(acc[i]);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_join(acc[i]), 0);
    cr_assert_eq(weft_listener_close(m.l), 0);
    return 0;
}

Test(io_listener, every_connection_accepted_once_by_concurrent_accepters,
     .timeout = 60)
{
    t_raise_nofile();
    t_run(many_main, NULL);
}

/* ---- accepted ahead ------------------------------------------------------ */

#define AHEAD 200

static int ahead_main(void *arg)
{
    weft_listener_t *l = t_listener(1024);
    uint16_t port = t_port(weft_listener_fd(l)), local[AHEAD];
    int cfd[AHEAD], afd;
    bool seen[AHEAD] = { 0 };

    (void)arg;
    /* One accept arms the multishot; the rest arrive with nobody asking. */
    cfd[0] = t_connect_port(port);
    afd = weft_listener_accept(l, NULL, NULL, T_SECS(20));
    cr_assert_geq(afd, 0);
    close(afd);
    for (int i = 0; i < AHEAD; i++) {
        if (i)
            cfd[i] = t_connect_port(port);
        local[i] = t_port(cfd[i]);
    }
    cr_assert_eq(weft_sleep_ms(20), 0);
    for (int i = 1; i < AHEAD; i++) {
        struct sockaddr_in sa;
        socklen_t len = sizeof(sa);
        int j;

        afd = weft_listener_accept(l, (struct sockaddr *)&sa, &len,
                                   T_SECS(20));
        cr_assert_geq(afd, 0, "accept %d: %s", i, strerror(-afd));
        cr_assert_eq(len, sizeof(sa));
        cr_assert_eq(sa.sin_family, AF_INET);
        for (j = 0; j < AHEAD && local[j] != ntohs(sa.sin_port); j++)
            ;
        cr_assert(j < AHEAD && !seen[j], "unknown or repeated peer");
        seen[j] = true;
        close(afd);
    }
    for (int i = 0; i < AHEAD; i++)
        close(cfd[i]);
    cr_assert_eq(weft_listener_accept(l, NULL, NULL, T_MS(30)), -ETIMEDOUT);
    cr_assert_eq(weft_listener_close(l), 0);
    return 0;
}

Test(io_listener, connections_accepted_ahead_are_kept_with_their_peers,
     .timeout = 60)
{
    t_raise_nofile();
    t_run(ahead_main, NULL);
}

/* ---- cancel -------------------------------------------------------------- */

#define CANCEL_ROUNDS 100

struct cancel_cfg {
    weft_listener_t *l;
};

static int cancel_accepter(void *arg)
{
    struct cancel_cfg *c = arg;

    return weft_listener_accept(c->l, NULL, NULL, WEFT_NO_DEADLINE);
}

static int cancel_main(void *arg)
{
    struct cancel_cfg c = { .l = t_listener(1024) };
    uint16_t port = t_port(weft_listener_fd(c.l));
    int cfd[CANCEL_ROUNDS], got = 0, fd;
    weft_task_t *t;

    (void)arg;
    for (int i = 0; i < CANCEL_ROUNDS; i++) {
        cr_assert_eq(weft_spawn(&t, cancel_accepter, &c), 0);
        for (int k = 0; k < i % 4; k++)
            weft_yield();
        cfd[i] = t_connect_port(port);
        weft_cancel(t);
        fd = weft_join(t);
        cr_assert(fd >= 0 || fd == -ECANCELED, "accept: %s", strerror(-fd));
        if (fd >= 0) {
            got++;
            close(fd);
        }
        /* A short deadline now and then: expiring loses nothing either. */
        fd = weft_listener_accept(c.l, NULL, NULL, T_MS(i % 3));
        cr_assert(fd >= 0 || fd == -ETIMEDOUT, "accept: %s", strerror(-fd));
        if (fd >= 0) {
            got++;
            close(fd);
        }
    }
    while (got < CANCEL_ROUNDS) {
        fd = weft_listener_accept(c.l, NULL, NULL, T_SECS(10));
        cr_assert_geq(fd, 0, "lost %d connections", CANCEL_ROUNDS - got);
        got++;
        close(fd);
    }
    for (int i = 0; i < CANCEL_ROUNDS; i++)
        close(cfd[i]);
    cr_assert_eq(weft_listener_close(c.l), 0);
    return 0;
}

Test(io_listener, cancelled_or_expired_accept_loses_no_connection,
     .timeout = 60)
{
    t_raise_nofile();
    t_run(cancel_main, NULL);
}

/* ---- close --------------------------------------------------------------- */

struct close_cfg {
    weft_listener_t *l;
    atomic_int started;
};

static int close_accepter(void *arg)
{
    struct close_cfg *c = arg;

    atomic_fetch_add(&c->started, 1);
    return weft_listener_accept(c->l, NULL, NULL, T_SECS(20));
}

static int close_main(void *arg)
{
    struct close_cfg c = { .l = t_listener(16) };
    weft_task_t *t[3];
    int fd;

    (void)arg;
    /* Armed once, so that both a waiting list and a multishot exist. */
    cr_assert_eq(weft_listener_accept(c.l, NULL, NULL, T_MS(1)), -ETIMEDOUT);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_spawn(&t[i], close_accepter, &c), 0);
    while (atomic_load(&c.started) < 3)
        weft_yield();
    cr_assert_eq(weft_sleep_ms(50), 0); /* let them reach their wait */
    fd = weft_listener_fd(c.l);
    cr_assert_eq(weft_listener_close(c.l), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_join(t[i]), -EBADF);
    cr_assert_eq(fcntl(fd, F_GETFD), -1); /* the listener closed it */
    return 0;
}

Test(io_listener, close_ends_waiting_accepts_with_ebadf, .timeout = 30)
{
    t_run(close_main, NULL);
}

static int args_main(void *arg)
{
    weft_listener_t *l;
    socklen_t len;

    (void)arg;
    cr_assert_eq(weft_listener_new(NULL, 3, 0), -EINVAL);
    cr_assert_eq(weft_listener_new(&l, -1, 0), -EBADF);
    cr_assert_eq(weft_listener_new(&l, 3, 0x4000000), -EINVAL);
    l = t_listener(4);
    cr_assert_eq(weft_listener_accept(NULL, NULL, NULL, 0), -EINVAL);
    cr_assert_eq(weft_listener_accept(l, (struct sockaddr *)&len, NULL, 0),
                 -EINVAL);
    cr_assert_eq(weft_listener_close(NULL), -EINVAL);
    cr_assert_eq(weft_listener_close(l), 0);
    return 0;
}

Test(io_listener, bad_arguments_are_einval, .timeout = 30)
{
    t_run(args_main, NULL);
}
