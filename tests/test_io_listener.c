/*
 * Listeners (weft_listener_*): every connection accepted exactly once by
 * concurrent accepters on any worker, connections accepted ahead of the
 * calls kept (beyond the multishot's stop point), peer addresses, a
 * cancelled or timed-out accept losing no connection, and closing a
 * listener under waiting accepts.
 */
#include <netinet/tcp.h>
#include <poll.h>

#include "runtime/driver/backend.h"
#include "io_helpers.h"
#include "runtime/runtime.h"

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
    cr_assert_eq(weft_close(fd), 0);
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
        cr_assert_eq(weft_close(fd), 0);
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

/* Connections waiting in listening socket fd's kernel backlog. */
static unsigned t_backlog(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
    return ti.tcpi_unacked; /* of a listening socket: its accept queue */
}

static bool t_backend_is(const char *name)
{
    return !strcmp(weft__task_current()->rt->io_ops->name, name);
}

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
    /* On io_uring the multishot takes connections out of the kernel's
     * backlog with nobody asking, a few dozen ahead (then it stops): wait
     * until it holds a quarter of them. On epoll they stay in the backlog
     * until the accept calls. */
    if (t_backend_is("uring"))
        while (t_backlog(weft_listener_fd(l)) > (AHEAD - 1) - AHEAD / 4)
            cr_assert_eq(weft_sleep_ms(1), 0);
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
};

static int close_accepter(void *arg)
{
    struct close_cfg *c = arg;

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
    /* Every accept call is in its wait: none can start once closing has
     * begun (weft.h). */
    for (int i = 0; i < 3; i++)
        t_until_parked_in(t[i], WHY_IO);
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

/* ---- weft_listen --------------------------------------------------------- */

/* Connects to 127.0.0.1:port and checks one byte crosses from the accepted
 * end of lfd to the client. */
static void t_check_reachable(int lfd, uint16_t port)
{
    int c = t_connect_port(port), s;
    char b = 0;

    s = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, T_SECS(20));
    cr_assert_geq(s, 0, "accept: %s", strerror(-s));
    cr_assert_eq(weft_send(s, "x", 1, 0, T_SECS(20)), 1);
    cr_assert_eq(weft_recv(c, &b, 1, 0, T_SECS(20)), 1);
    cr_assert_eq(b, 'x');
    weft_close(s);
    weft_close(c);
}

struct shared_port {
    int lfd[2];
    atomic_int accepted[2];
};

struct port_accepter {
    struct shared_port *sp;
    int i;
};

static int accept_and_count(void *arg)
{
    struct port_accepter *a = arg;

    for (;;) {
        int fd = weft_accept(a->sp->lfd[a->i], NULL, NULL, SOCK_CLOEXEC,
                             WEFT_NO_DEADLINE);

        if (fd == -ECANCELED)
            return 0;
        cr_assert_geq(fd, 0, "accept: %s", strerror(-fd));
        weft_close(fd);
        atomic_fetch_add(&a->sp->accepted[a->i], 1);
    }
}

static int reuseport_main(void *arg)
{
    struct shared_port sp = { .lfd = { -1, -1 } };
    struct port_accepter a[2];
    weft_task_t *t[2];
    uint16_t port;
    int n;

    (void)arg;
    sp.lfd[0] = weft_listen("127.0.0.1", 0, 64, WEFT_LISTEN_REUSEPORT);
    cr_assert_geq(sp.lfd[0], 0, "listen: %s", strerror(-sp.lfd[0]));
    port = t_port(sp.lfd[0]);
    sp.lfd[1] = weft_listen("127.0.0.1", port, 64, WEFT_LISTEN_REUSEPORT);
    cr_assert_geq(sp.lfd[1], 0, "second listen: %s", strerror(-sp.lfd[1]));
    cr_assert_eq(t_port(sp.lfd[1]), port);
    for (int i = 0; i < 2; i++) {
        a[i] = (struct port_accepter){ &sp, i };
        cr_assert_eq(weft_spawn(&t[i], accept_and_count, &a[i]), 0);
    }
    /* The kernel spreads connections over the two by a hash of the
     * client's address and port; connect until each listener has had one
     * (the test's timeout bounds this, each round being a new port). */
    for (n = 0; atomic_load(&sp.accepted[0]) == 0 ||
                atomic_load(&sp.accepted[1]) == 0;
         n++) {
        int fd = t_connect_port(port);

        while (atomic_load(&sp.accepted[0]) + atomic_load(&sp.accepted[1]) <
               n + 1)
            cr_assert_eq(weft_yield(), 0);
        weft_close(fd);
    }
    for (int i = 0; i < 2; i++)
        weft_cancel(t[i]);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    cr_assert_eq(atomic_load(&sp.accepted[0]) + atomic_load(&sp.accepted[1]),
                 n);
    weft_close(sp.lfd[0]);
    weft_close(sp.lfd[1]);
    return 0;
}

Test(io_listener, listen_reuseport_lets_two_listeners_share_a_port,
     .timeout = 60)
{
    t_run(reuseport_main, NULL);
}

static int in_use_main(void *arg)
{
    int lfd = weft_listen("127.0.0.1", 0, 16, 0), fds, ret;
    uint16_t port;

    (void)arg;
    cr_assert_geq(lfd, 0, "listen: %s", strerror(-lfd));
    port = t_port(lfd);
    fds = t_fds();
    ret = weft_listen("127.0.0.1", port, 16, 0);
    cr_assert_eq(ret, -EADDRINUSE, "second listen: %d", ret);
    /* Asking for REUSEPORT does not share a port its holder did not. */
    ret = weft_listen("127.0.0.1", port, 16, WEFT_LISTEN_REUSEPORT);
    cr_assert_eq(ret, -EADDRINUSE, "second listen, reuseport: %d", ret);
    cr_assert_eq(t_fds(), fds, "a failed listen leaked its socket");
    /* The first listener is unharmed. */
    t_check_reachable(lfd, port);
    weft_close(lfd);
    return 0;
}

Test(io_listener, listen_on_a_port_in_use_is_eaddrinuse, .timeout = 30)
{
    t_run(in_use_main, NULL);
}

static int any_address_main(void *arg)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int lfd = weft_listen(NULL, 0, 16, 0);

    (void)arg;
    cr_assert_geq(lfd, 0, "listen: %s", strerror(-lfd));
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

        cr_assert_eq(sin->sin_addr.s_addr, htonl(INADDR_ANY));
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

        cr_assert_eq(ss.ss_family, AF_INET6);
        cr_assert(IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr));
    }
    t_check_reachable(lfd, t_port(lfd));
    weft_close(lfd);
    return 0;
}

Test(io_listener, listen_without_a_host_takes_every_local_address,
     .timeout = 30)
{
    t_run(any_address_main, NULL);
}

static int host_name_main(void *arg)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int lfd = weft_listen("localhost", 0, 16, 0), c, s;
    char b = 0;

    (void)arg;
    cr_assert_geq(lfd, 0, "listen: %s", strerror(-lfd));
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET)
        cr_assert_eq(((struct sockaddr_in *)&ss)->sin_addr.s_addr,
                     htonl(INADDR_LOOPBACK));
    else
        cr_assert(IN6_IS_ADDR_LOOPBACK(
            &((struct sockaddr_in6 *)&ss)->sin6_addr));
    c = weft_connect_tcp("localhost", t_port(lfd), T_SECS(20));
    cr_assert_geq(c, 0, "connect: %s", strerror(-c));
    s = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, T_SECS(20));
    cr_assert_geq(s, 0, "accept: %s", strerror(-s));
    cr_assert_eq(weft_send(c, "y", 1, 0, T_SECS(20)), 1);
    cr_assert_eq(weft_recv(s, &b, 1, 0, T_SECS(20)), 1);
    cr_assert_eq(b, 'y');
    weft_close(s);
    weft_close(c);
    weft_close(lfd);
    return 0;
}

Test(io_listener, listen_on_a_host_name_binds_its_address, .timeout = 30)
{
    t_run(host_name_main, NULL);
}
