/*
 * Sockets: echo over TCP and Unix sockets at several concurrencies, a long
 * checksummed stream, short reads and writes, resets, half-close, refused
 * and timed-out connects, accept at the fd limit, deadlines on each kind of
 * op, tasks migrating between ops, and a blocked worker not stalling others.
 */
#include <netinet/tcp.h>
#include <poll.h>

#include "io_helpers.h"

/* ---- echo ---------------------------------------------------------------- */

struct echo_cfg {
    int conns, rounds;
    bool unix_sock;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    atomic_int ok;
};

static int connect_to(struct echo_cfg *c)
{
    int fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ret;

    cr_assert_geq(fd, 0);
    ret = weft_connect(fd, (struct sockaddr *)&c->addr, c->addrlen,
                       T_SECS(20));
    cr_assert_eq(ret, 0, "connect: %s", strerror(-ret));
    return fd;
}

static int echo_client(void *arg)
{
    struct echo_cfg *c = arg;
    int fd = connect_to(c);
    char out[256], in[256];

    for (int r = 0; r < c->rounds; r++) {
        size_t len = 1 + (size_t)(r * 37 + fd) % sizeof(out);

        for (size_t i = 0; i < len; i++)
            out[i] = (char)(r + i + fd);
        cr_assert_eq(weft_write_all(fd, out, len, T_SECS(20)), (ssize_t)len);
        cr_assert_eq(weft_read_exact(fd, in, len, T_SECS(20)), (ssize_t)len);
        cr_assert_eq(memcmp(in, out, len), 0);
    }
    cr_assert_eq(weft_close(fd), 0);
    atomic_fetch_add(&c->ok, 1);
    return 0;
}

static int echo_main(void *arg)
{
    struct echo_cfg *c = arg;
    weft_task_t *server, **clients = calloc(c->conns, sizeof(*clients));
    int lfd;

    if (c->unix_sock) {
        lfd = t_listen_unix(1024, (struct sockaddr_un *)&c->addr,
                            &c->addrlen);
    } else {
        struct sockaddr_in sa;

        lfd = t_listen_tcp(1024);
        sa = t_loopback(t_port(lfd));
        memcpy(&c->addr, &sa, sizeof(sa));
        c->addrlen = sizeof(sa);
    }
    cr_assert_eq(weft_spawn(&server, t_echo_server, (void *)(intptr_t)lfd), 0);
    for (int i = 0; i < c->conns; i++)
        cr_assert_eq(weft_spawn(&clients[i], echo_client, c), 0);
    for (int i = 0; i < c->conns; i++)
        cr_assert_eq(weft_join(clients[i]), 0);
    cr_assert_eq(atomic_load(&c->ok), c->conns);
    weft_cancel(server);
    cr_assert_eq(weft_join(server), 0);
    close(lfd);
    free(clients);
    return 0;
}

static void run_echo(int conns, int rounds, bool unix_sock)
{
    struct echo_cfg c = { .conns = conns, .rounds = rounds,
                          .unix_sock = unix_sock };

    t_raise_nofile();
    t_run(echo_main, &c);
}

Test(io_net, echo_tcp_1_connection, .timeout = 30) { run_echo(1, 1000, false); }
Test(io_net, echo_tcp_100_connections, .timeout = 60) { run_echo(100, 50, false); }
Test(io_net, echo_tcp_1000_connections, .timeout = 120) { run_echo(1000, 10, false); }
Test(io_net, echo_unix_1_connection, .timeout = 30) { run_echo(1, 1000, true); }
Test(io_net, echo_unix_100_connections, .timeout = 60) { run_echo(100, 50, true); }
Test(io_net, echo_unix_1000_connections, .timeout = 120) { run_echo(1000, 10, true); }

/* ---- one long stream ----------------------------------------------------- */

#define STREAM_BYTES (64u << 20)

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static int stream_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    static unsigned char buf[1 << 16];
    uint64_t h = 0xcbf29ce484222325ull;
    size_t sent = 0, chunk;

    while (sent < STREAM_BYTES) {
        chunk = 1 + (sent * 7919) % sizeof(buf);
        if (chunk > STREAM_BYTES - sent)
            chunk = STREAM_BYTES - sent;
        for (size_t i = 0; i < chunk; i++)
            buf[i] = (unsigned char)((sent + i) * 31 + ((sent + i) >> 12));
        h = fnv(h, buf, chunk);
        cr_assert_eq(weft_write_all(fd, buf, chunk, T_SECS(60)),
                     (ssize_t)chunk);
        sent += chunk;
    }
    cr_assert_eq(weft_shutdown(fd, SHUT_WR), 0);
    return (int)(h & 0x7fffffff);
}

/*
 * Streams STREAM_BYTES from a writer task over sv[0] and checks, on sv[1],
 * that all of it arrived intact: received with weft_recv, or with
 * weft_read when by_read.
 */
static void t_check_stream(int sv[2], bool by_read)
{
    static unsigned char buf[100000];
    uint64_t h = 0xcbf29ce484222325ull;
    size_t got = 0;
    weft_task_t *w;
    ssize_t n;

    cr_assert_eq(weft_spawn(&w, stream_writer, (void *)(intptr_t)sv[0]), 0);
    for (;;) {
        if (by_read)
            n = weft_read(sv[1], buf, sizeof(buf), -1, T_SECS(60));
        else
            n = weft_recv(sv[1], buf, sizeof(buf), 0, T_SECS(60));
        if (n <= 0)
            break;
        h = fnv(h, buf, (size_t)n);
        got += (size_t)n;
    }
    cr_assert_eq(n, 0, "receive: %s", strerror((int)-n));
    cr_assert_eq(got, STREAM_BYTES);
    cr_assert_eq(weft_join(w), (int)(h & 0x7fffffff), "checksum differs");
    close(sv[0]);
    close(sv[1]);
}

static int stream_main(void *arg)
{
    int sv[2];

    (void)arg;
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    t_check_stream(sv, false);
    return 0;
}

Test(io_net, stream_64mib_checksummed, .timeout = 120) { t_run(stream_main, NULL); }

static int tcp_pair(int sv[2])
{
    int lfd = t_listen_tcp(16);
    struct sockaddr_in sa = t_loopback(t_port(lfd));

    sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(weft_connect(sv[0], (struct sockaddr *)&sa, sizeof(sa),
                              T_SECS(10)), 0);
    sv[1] = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, T_SECS(10));
    cr_assert_geq(sv[1], 0);
    close(lfd);
    return 0;
}

static int stream_tcp_main(void *arg)
{
    int sv[2];

    (void)arg;
    tcp_pair(sv);
    t_check_stream(sv, true);
    return 0;
}

Test(io_net, stream_64mib_over_tcp_checksummed, .timeout = 120) { t_run(stream_tcp_main, NULL); }

/* ---- short reads and writes ---------------------------------------------- */

static int short_main(void *arg)
{
    static char big[8 << 20];
    char buf[4096];
    int sv[2], size = 4096;
    ssize_t n, total;

    (void)arg;
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    /* A short read: less is there than asked for. */
    cr_assert_eq(weft_send(sv[0], "abc", 3, 0, T_SECS(5)), 3);
    cr_assert_eq(weft_recv(sv[1], buf, sizeof(buf), 0, T_SECS(5)), 3);
    cr_assert_eq(memcmp(buf, "abc", 3), 0);
    /* A short write: a small send buffer takes only part of 8 MiB. */
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    n = weft_send(sv[0], big, sizeof(big), MSG_DONTWAIT, T_SECS(5));
    cr_assert(n > 0 && n < (ssize_t)sizeof(big), "send returned %zd", n);
    total = n;
    n = weft_send(sv[0], big, sizeof(big), MSG_DONTWAIT, T_SECS(5));
    cr_assert_eq(n, -EAGAIN);
    while (total > 0) {
        n = weft_recv(sv[1], buf, sizeof(buf), 0, T_SECS(5));
        cr_assert_gt(n, 0);
        total -= n;
    }
    cr_assert_eq(total, 0);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

Test(io_net, short_reads_and_writes, .timeout = 30) { t_run(short_main, NULL); }

/* ---- reset and half-close ------------------------------------------------ */

static int reset_main(void *arg)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    char buf[16];
    int sv[2];
    ssize_t n;

    (void)arg;
    tcp_pair(sv);
    cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(sv[0]); /* RST */
    cr_assert_eq(weft_recv(sv[1], buf, sizeof(buf), 0, T_SECS(5)),
                 -ECONNRESET);
    n = weft_send(sv[1], "x", 1, 0, T_SECS(5));
    cr_assert(n == -EPIPE || n == -ECONNRESET, "send after reset: %zd", n);
    close(sv[1]);
    return 0;
}

Test(io_net, peer_reset_is_econnreset_without_sigpipe, .timeout = 30) { t_run(reset_main, NULL); }

static int half_close_main(void *arg)
{
    char buf[16];
    int sv[2];

    (void)arg;
    tcp_pair(sv);
    cr_assert_eq(weft_write_all(sv[0], "req", 3, T_SECS(5)), 3);
    cr_assert_eq(weft_shutdown(sv[0], SHUT_WR), 0);
    cr_assert_eq(weft_read_exact(sv[1], buf, sizeof(buf), T_SECS(5)), 3);
    cr_assert_eq(weft_recv(sv[1], buf, sizeof(buf), 0, T_SECS(5)), 0);
    /* The other direction still works. */
    cr_assert_eq(weft_write_all(sv[1], "reply", 5, T_SECS(5)), 5);
    cr_assert_eq(weft_read_exact(sv[0], buf, 5, T_SECS(5)), 5);
    cr_assert_eq(memcmp(buf, "reply", 5), 0);
    cr_assert_eq(weft_shutdown(sv[0], 42), -EINVAL);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

Test(io_net, half_close_keeps_the_other_direction, .timeout = 30) { t_run(half_close_main, NULL); }

/* ---- connect ------------------------------------------------------------- */

static int refused_main(void *arg)
{
    int lfd = t_listen_tcp(1);
    uint16_t port = t_port(lfd);
    struct sockaddr_in sa = t_loopback(port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    (void)arg;
    close(lfd);
    cr_assert_eq(weft_connect(fd, (struct sockaddr *)&sa, sizeof(sa),
                              T_SECS(5)), -ECONNREFUSED);
    close(fd);
    cr_assert_eq(weft_connect_tcp("127.0.0.1", port, T_SECS(5)),
                 -ECONNREFUSED);
    cr_assert_eq(weft_connect_tcp(NULL, port, T_SECS(5)), -EINVAL);
    return 0;
}

Test(io_net, connect_refused, .timeout = 30) { t_run(refused_main, NULL); }

/* Fills lfd's accept queue; returns the connected fds' count. */
static int fill_backlog(int lfd, int *fds, int max)
{
    struct sockaddr_in sa = t_loopback(t_port(lfd));
    int n = 0, ret;

    for (; n < max; n++) {
        fds[n] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ret = weft_connect(fds[n], (struct sockaddr *)&sa, sizeof(sa),
                           T_MS(200));
        if (ret == -ETIMEDOUT)
            return n + 1;
        cr_assert_eq(ret, 0, "connect %d: %s", n, strerror(-ret));
    }
    cr_assert_fail("the backlog never filled");
    return n;
}

static int connect_timeout_main(void *arg)
{
    int lfd = t_listen_tcp(0), fds[64], n;
    struct sockaddr_in sa = t_loopback(t_port(lfd));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int64_t t0 = weft_now_ns();

    (void)arg;
    /* A deadline already past issues nothing. */
    cr_assert_eq(weft_connect(fd, (struct sockaddr *)&sa, sizeof(sa), t0 - 1),
                 -ETIMEDOUT);
    cr_assert_eq(weft_connect_tcp("127.0.0.1", t_port(lfd), t0 - 1),
                 -ETIMEDOUT);
    n = fill_backlog(lfd, fds, 64);
    cr_assert_geq(weft_now_ns() - t0, 200 * 1000000);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    close(fd);
    close(lfd);
    return 0;
}

Test(io_net, connect_times_out_on_a_full_backlog, .timeout = 60) { t_run(connect_timeout_main, NULL); }

/* ---- accept at the fd limit ---------------------------------------------- */

static int emfile_main(void *arg)
{
    int lfd = t_listen_tcp(16), base, c, s, ret;
    struct sockaddr_in sa = t_loopback(t_port(lfd));
    struct rlimit rl;
    int fillers[64], nf = 0;
    char buf[8];

    (void)arg;
    c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(weft_connect(c, (struct sockaddr *)&sa, sizeof(sa),
                              T_SECS(5)), 0);
    base = t_fds();
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = 4096;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    while (nf < 64 && (fillers[nf] = dup(0)) >= 0 && fillers[nf] < 4095)
        nf++;
    /* Whatever the last dup got, the table is now full below 4096. */
    rl.rlim_cur = (rlim_t)(fillers[nf > 0 ? nf - 1 : 0] + 1);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    ret = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, T_SECS(5));
    cr_assert_eq(ret, -EMFILE, "accept at the limit: %d", ret);
    close(fillers[--nf]);
    s = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, T_SECS(5));
    cr_assert_geq(s, 0, "accept after freeing an fd: %d", s);
    cr_assert_eq(weft_write_all(c, "ping", 4, T_SECS(5)), 4);
    cr_assert_eq(weft_read_exact(s, buf, 4, T_SECS(5)), 4);
    while (nf > 0)
        close(fillers[--nf]);
    cr_assert_eq(weft_close(s), 0);
    cr_assert_eq(t_fds(), base, "an fd leaked");
    close(c);
    close(lfd);
    return 0;
}

/* Criterion runs every test in a process of its own, forked from the
 * runner: the lowered RLIMIT_NOFILE dies with it. (A second fork here would
 * start threads after a multi-threaded fork, which TSan refuses.) */
Test(io_net, accept_at_fd_limit_recovers_without_leaks, .timeout = 30) { t_run(emfile_main, NULL); }

/* ---- deadlines on each kind of op ---------------------------------------- */

static int deadlines_main(void *arg)
{
    static char big[1 << 20];
    int lfd = t_listen_tcp(16), sv[2], size = 4096, p[2];
    struct msghdr msg = { 0 };
    struct iovec iov = { big, 16 };
    char buf[16];

    (void)arg;
    cr_assert_eq(weft_accept(lfd, NULL, NULL, 0, T_MS(50)), -ETIMEDOUT);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(weft_recv(sv[0], buf, sizeof(buf), 0, T_MS(50)), -ETIMEDOUT);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    cr_assert_eq(weft_recvmsg(sv[0], &msg, 0, T_MS(50)), -ETIMEDOUT);
    cr_assert_eq(weft_read(sv[0], buf, sizeof(buf), -1, T_MS(50)), -ETIMEDOUT);
    cr_assert_eq(weft_readv(sv[0], &iov, 1, -1, T_MS(50)), -ETIMEDOUT);
    cr_assert_eq(weft_wait_fd(sv[0], POLLIN, T_MS(50)), -ETIMEDOUT);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    while (weft_send(sv[0], big, sizeof(big), MSG_DONTWAIT, T_SECS(5)) > 0)
        ;
    cr_assert_eq(weft_send(sv[0], big, sizeof(big), 0, T_MS(50)), -ETIMEDOUT);
    iov.iov_len = sizeof(big);
    cr_assert_eq(weft_sendmsg(sv[0], &msg, 0, T_MS(50)), -ETIMEDOUT);
    cr_assert_eq(weft_write(sv[0], big, sizeof(big), -1, T_MS(50)),
                 -ETIMEDOUT);
    cr_assert_eq(weft_writev(sv[0], &iov, 1, -1, T_MS(50)), -ETIMEDOUT);
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(weft_read(p[0], buf, sizeof(buf), -1, T_MS(50)), -ETIMEDOUT);
    /* Data that is there wins over a deadline not yet passed. */
    cr_assert_eq(weft_write(p[1], "hi", 2, -1, T_MS(500)), 2);
    cr_assert_eq(weft_read(p[0], buf, sizeof(buf), -1, T_MS(500)), 2);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
    close(lfd);
    return 0;
}

Test(io_net, deadline_on_every_kind_of_op, .timeout = 30) { t_run(deadlines_main, NULL); }

/* ---- work stealing ------------------------------------------------------- */

static atomic_bool hog_stop;

/* Keeps its worker busy for 2 ms at a time, then sleeps 1 ms: a task woken
 * on that worker meanwhile waits in its queue while the other worker idles
 * and steals it. */
static int hog(void *arg)
{
    (void)arg;
    while (!atomic_load(&hog_stop)) {
        int64_t end = weft_now_ns() + 2000000;

        while (weft_now_ns() < end)
            ;
        if (weft_sleep_ms(1) == -ECANCELED)
            break;
    }
    return 0;
}

static int migrate_main(void *arg)
{
    int64_t end = T_SECS(20);
    bool seen[64] = { 0 };
    int distinct = 0, sv[2], id;
    weft_task_t *h;
    char c = 0;

    (void)arg;
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(weft_spawn(&h, hog, NULL), 0);
    /* An echo peer, so that each recv really waits (even on epoll). */
    cr_assert_eq(weft_spawn(NULL, t_echo_conn, (void *)(intptr_t)sv[1]), 0);
    while (distinct < 2 && weft_now_ns() < end) {
        cr_assert_eq(weft_send(sv[0], &c, 1, 0, T_SECS(5)), 1);
        cr_assert_eq(weft_wait_fd(sv[0], POLLIN, T_SECS(5)), POLLIN);
        cr_assert_eq(weft_recv(sv[0], &c, 1, 0, T_SECS(5)), 1);
        id = weft_worker_id();
        distinct += !seen[id];
        seen[id] = true;
    }
    atomic_store(&hog_stop, true);
    cr_assert_eq(weft_join(h), 0);
    cr_assert_geq(distinct, 2, "the task never changed workers");
    close(sv[0]);
    return 0;
}

Test(io_net, task_migrates_between_workers_between_ops, .timeout = 60)
{
    t_run_two_or_more(migrate_main, NULL);
}

struct blocker {
    atomic_bool started, stop;
    atomic_int worker;
};

/* Holds its worker until told to stop: no suspension point, and no end of
 * its own (a blocker that gave up would let a stalled echo finish). */
static int block_worker(void *arg)
{
    struct blocker *b = arg;

    atomic_store(&b->worker, weft_worker_id());
    atomic_store(&b->started, true);
    while (!atomic_load(&b->stop))
        weft__cpu_relax();
    return 0;
}

/*
 * The echo is spawned from the free worker after the other is stuck: every
 * task and operation of it starts there, and it must finish with the
 * blocker still spinning (its task not done). A
 * free worker that waited on the stuck one in any way would hang here.
 * Work already bound to the stuck worker when it got stuck is another
 * matter, which the stall tests cover.
 */
static int blocked_worker_main(void *arg)
{
    struct blocker b = { 0 };
    struct echo_cfg c = { .conns = 20, .rounds = 50 };
    weft_task_t *bt;

    (void)arg;
    cr_assert_eq(weft_spawn(&bt, block_worker, &b), 0);
    while (!atomic_load(&b.started))
        cr_assert_eq(weft_yield(), 0);
    cr_assert_neq(weft_worker_id(), atomic_load(&b.worker));
    cr_assert_eq(echo_main(&c), 0);
    cr_assert_not(weft__task_is_done(weft__task_of(bt)));
    atomic_store(&b.stop, true);
    cr_assert_eq(weft_join(bt), 0);
    return 0;
}

Test(io_net, blocked_worker_does_not_stop_the_others, .timeout = 60)
{
    t_run_two_or_more(blocked_worker_main, NULL);
}

/* ---- fairness ------------------------------------------------------------ */

#define HOG_BYTES 60000

struct busy {
    int fd;
    atomic_bool other_ran;
    size_t read_when_seen;
};

static int note_ran(void *arg)
{
    atomic_store(&((struct busy *)arg)->other_ran, true);
    return 0;
}

/* Reads a socket that always has data, one byte per call: every call
 * completes at once, so only the runtime can make it give way. */
static int busy_reader(void *arg)
{
    struct busy *b = arg;
    size_t got = 0;
    char c;

    cr_assert_eq(weft_recv(b->fd, &c, 1, 0, T_SECS(5)), 1);
    got++;
    cr_assert_eq(weft_spawn(NULL, note_ran, b), 0);
    while (!atomic_load(&b->other_ran) && got < HOG_BYTES) {
        cr_assert_eq(weft_recv(b->fd, &c, 1, 0, T_SECS(5)), 1);
        got++;
    }
    b->read_when_seen = got;
    return 0;
}

static int busy_main(void *arg)
{
    static char data[HOG_BYTES];
    struct busy b = { 0 };
    int sv[2], size = 1 << 20;
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    cr_assert_eq(weft_write_all(sv[1], data, sizeof(data), T_SECS(5)),
                 (ssize_t)sizeof(data));
    b.fd = sv[0];
    cr_assert_eq(weft_spawn(&t, busy_reader, &b), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert(atomic_load(&b.other_ran));
    /* The other task ran while data was still waiting. */
    cr_assert_lt(b.read_when_seen, HOG_BYTES);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

Test(io_net, connection_that_always_has_data_lets_other_tasks_run,
     .timeout = 30)
{
    t_run(busy_main, NULL);
}

/* ---- recvmsg and sendmsg ------------------------------------------------- */

#include "runtime/task.h"

struct scatter {
    int fd;
    char a[5], b[7], c[20];
    int flags;
};

static int recv_scattered(void *arg)
{
    struct scatter *s = arg;
    struct iovec iov[3] = { { s->a, sizeof(s->a) }, { s->b, sizeof(s->b) },
                            { s->c, sizeof(s->c) } };
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 3 };
    ssize_t n = weft_recvmsg(s->fd, &msg, 0, T_SECS(20));

    s->flags = msg.msg_flags;
    return (int)n;
}

static int scatter_gather_main(void *arg)
{
    struct iovec out[3] = { { "hello ", 6 }, { "scatter", 7 },
                            { "/gather", 7 } };
    struct msghdr msg = { .msg_iov = out, .msg_iovlen = 3 };
    struct scatter s = { .flags = -1 };
    char small[4];
    struct iovec in = { small, sizeof(small) };
    weft_task_t *t;
    int sv[2];

    (void)arg;
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv),
                 0);
    /* The receiver waits before anything is sent. */
    s.fd = sv[1];
    cr_assert_eq(weft_spawn(&t, recv_scattered, &s), 0);
    t_until_parked_in(t, WHY_IO);
    cr_assert_eq(weft_sendmsg(sv[0], &msg, 0, T_SECS(20)), 20);
    cr_assert_eq(weft_join(t), 20);
    cr_assert_eq(memcmp(s.a, "hello", 5), 0);
    cr_assert_eq(memcmp(s.b, " scatte", 7), 0);
    cr_assert_eq(memcmp(s.c, "r/gather", 8), 0);
    cr_assert_eq(s.flags, 0);
    /* With the data already there, and a message larger than the buffer:
     * the kernel's msg_flags come back to the caller. */
    cr_assert_eq(weft_sendmsg(sv[0], &msg, 0, T_SECS(20)), 20);
    msg = (struct msghdr){ .msg_iov = &in, .msg_iovlen = 1 };
    cr_assert_eq(weft_recvmsg(sv[1], &msg, 0, T_SECS(20)), 4);
    cr_assert_eq(memcmp(small, "hell", 4), 0);
    cr_assert(msg.msg_flags & MSG_TRUNC, "msg_flags %#x", msg.msg_flags);
    cr_assert_eq(weft_recvmsg(sv[1], NULL, 0, T_SECS(20)), -EINVAL);
    cr_assert_eq(weft_sendmsg(sv[0], NULL, 0, T_SECS(20)), -EINVAL);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

Test(io_net, recvmsg_and_sendmsg_scatter_and_gather, .timeout = 30)
{
    t_run(scatter_gather_main, NULL);
}

union t_fd_cmsg {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
};

static int pass_fd_main(void *arg)
{
    union t_fd_cmsg ctl_out, ctl_in;
    char byte = 'F', got = 0, back[4];
    struct iovec iov_out = { &byte, 1 }, iov_in = { &got, 1 };
    struct msghdr out = { .msg_iov = &iov_out, .msg_iovlen = 1,
                          .msg_control = ctl_out.buf,
                          .msg_controllen = sizeof(ctl_out.buf) };
    struct msghdr in = { .msg_iov = &iov_in, .msg_iovlen = 1,
                         .msg_control = ctl_in.buf,
                         .msg_controllen = sizeof(ctl_in.buf) };
    struct cmsghdr *cm;
    int sv[2], p[2], fd;

    (void)arg;
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    memset(&ctl_out, 0, sizeof(ctl_out));
    cm = CMSG_FIRSTHDR(&out);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &p[1], sizeof(int));
    cr_assert_eq(weft_sendmsg(sv[0], &out, 0, T_SECS(20)), 1);
    cr_assert_eq(weft_recvmsg(sv[1], &in, MSG_CMSG_CLOEXEC, T_SECS(20)), 1);
    cr_assert_eq(got, 'F');
    cr_assert_eq(in.msg_flags & MSG_CTRUNC, 0);
    cm = CMSG_FIRSTHDR(&in);
    cr_assert_not_null(cm, "no control message arrived");
    cr_assert_eq(cm->cmsg_level, SOL_SOCKET);
    cr_assert_eq(cm->cmsg_type, SCM_RIGHTS);
    cr_assert_eq(cm->cmsg_len, CMSG_LEN(sizeof(int)));
    memcpy(&fd, CMSG_DATA(cm), sizeof(int));
    cr_assert(fd >= 0 && fd != p[1], "received fd %d", fd);
    /* recvmsg's flags reached the kernel: the new fd is close-on-exec. */
    cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    /* The received fd is the pipe's write end. */
    close(p[1]);
    cr_assert_eq(weft_write(fd, "fd!", 3, -1, T_SECS(20)), 3);
    cr_assert_eq(weft_read(p[0], back, sizeof(back), -1, T_SECS(20)), 3);
    cr_assert_eq(memcmp(back, "fd!", 3), 0);
    close(fd);
    cr_assert_eq(weft_read(p[0], back, sizeof(back), -1, T_SECS(20)), 0);
    close(p[0]);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

Test(io_net, sendmsg_passes_an_fd_with_scm_rights, .timeout = 30)
{
    t_run(pass_fd_main, NULL);
}
