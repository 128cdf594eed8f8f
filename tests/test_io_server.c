/*
 * start_server and open_connection: line echo between many clients and a
 * server, TCP_NODELAY on both ends, a graceful stop that lets running
 * connections finish and cancels the rest at its deadline, and the errors
 * of connecting and of bad arguments.
 */
#include <netinet/tcp.h>

#include "io_helpers.h"

struct srv_state {
    atomic_int started, finished, cancelled, nodelay;
    weft_event_t go; /* lets the slow handlers answer */
    bool slow;
};

/* Echoes lines until the end of the stream. */
static int echo_lines(weft_stream_t *s, void *arg)
{
    struct srv_state *st = arg;
    int one = 0;
    socklen_t len = sizeof(one);
    char line[256];
    ssize_t n;

    getsockopt(weft_stream_fd(s), IPPROTO_TCP, TCP_NODELAY, &one, &len);
    atomic_fetch_add(&st->nodelay, one);
    atomic_fetch_add(&st->started, 1);
    while ((n = weft_stream_read_line(s, line, sizeof(line),
                                      WEFT_NO_DEADLINE)) > 0) {
        if (st->slow && weft_event_wait(&st->go, WEFT_NO_DEADLINE) < 0) {
            n = -ECANCELED;
            break;
        }
        if (weft_stream_write(s, line, (size_t)n, T_SECS(20)) < 0 ||
            weft_stream_flush(s, T_SECS(20)) < 0)
            break;
    }
    if (n == -ECANCELED)
        atomic_fetch_add(&st->cancelled, 1);
    atomic_fetch_add(&st->finished, 1);
    return 0;
}

struct client {
    uint16_t port;
    int id;
};

static int client(void *arg)
{
    struct client *c = arg;
    weft_stream_t *s;
    char out[64], in[64];
    int one = 0, n;
    socklen_t len = sizeof(one);

    cr_assert_eq(weft_open_connection(&s, "localhost", c->port, NULL,
                                      T_SECS(20)), 0);
    getsockopt(weft_stream_fd(s), IPPROTO_TCP, TCP_NODELAY, &one, &len);
    cr_assert_eq(one, 1, "open_connection: no TCP_NODELAY");
    for (int r = 0; r < 20; r++) {
        n = snprintf(out, sizeof(out), "client %d round %d\n", c->id, r);
        cr_assert_eq(weft_stream_write(s, out, (size_t)n, T_SECS(20)), n);
        cr_assert_eq(weft_stream_flush(s, T_SECS(20)), 0);
        cr_assert_eq(weft_stream_read_line(s, in, sizeof(in), T_SECS(20)), n);
        cr_assert_eq(memcmp(in, out, (size_t)n), 0);
    }
    cr_assert_eq(weft_stream_close(s), 0);
    return 0;
}

#define CLIENTS 16

static int echo_main(void *arg)
{
    struct srv_state st = { 0 };
    struct client cl[CLIENTS];
    weft_task_t *t[CLIENTS];
    weft_server_t *srv;
    int fds = t_fds();

    (void)arg;
    cr_assert_eq(weft_start_server(&srv, "127.0.0.1", 0, NULL, echo_lines,
                                   &st), 0);
    cr_assert_gt(weft_server_port(srv), 0);
    for (int i = 0; i < CLIENTS; i++) {
        cl[i] = (struct client){ (uint16_t)weft_server_port(srv), i };
        cr_assert_eq(weft_spawn(&t[i], client, &cl[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    /* Every client closed: the handlers end by themselves. */
    while (atomic_load(&st.finished) < CLIENTS)
        cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(weft_server_stop(srv, T_SECS(20)), 0);
    cr_assert_eq(atomic_load(&st.nodelay), CLIENTS);
    cr_assert_eq(atomic_load(&st.cancelled), 0);
    cr_assert_eq(t_fds(), fds);
    return 0;
}

Test(server, echo_many_clients_with_nodelay_on_both_ends, .timeout = 60)
{
    t_run(echo_main, NULL);
}

struct stopper {
    weft_server_t *srv;
    int64_t deadline;
};

static int stopper(void *arg)
{
    struct stopper *st = arg;

    return weft_server_stop(st->srv, st->deadline);
}

/* A connection in the middle of a request when the stop begins finishes
 * it; the stop waits for it. */
static int graceful_main(void *arg)
{
    struct srv_state st = { .slow = true };
    struct stopper sp;
    weft_server_t *srv;
    weft_stream_t *s;
    weft_task_t *t;
    char buf[16];

    (void)arg;
    cr_assert_eq(weft_event_init(&st.go), 0);
    cr_assert_eq(weft_start_server(&srv, "127.0.0.1", 0, NULL, echo_lines,
                                   &st), 0);
    cr_assert_eq(weft_open_connection(&s, "127.0.0.1",
                                      (uint16_t)weft_server_port(srv), NULL,
                                      T_SECS(20)), 0);
    cr_assert_eq(weft_stream_write(s, "req\n", 4, T_SECS(20)), 4);
    cr_assert_eq(weft_stream_flush(s, T_SECS(20)), 0);
    while (atomic_load(&st.started) < 1)
        cr_assert_eq(weft_yield(), 0);
    sp = (struct stopper){ srv, WEFT_NO_DEADLINE };
    cr_assert_eq(weft_spawn(&t, stopper, &sp), 0);
    t_until_parked_in(t, WHY_SYNC);
    /* Stopped accepting already. */
    cr_assert_eq(weft_connect_tcp("127.0.0.1",
                                  (uint16_t)weft_server_port(srv),
                                  T_SECS(20)), -ECONNREFUSED);
    cr_assert_eq(weft_event_set(&st.go), 0);
    cr_assert_eq(weft_stream_read_line(s, buf, sizeof(buf), T_SECS(20)), 4);
    cr_assert_eq(weft_stream_shutdown(s, T_SECS(20)), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(atomic_load(&st.finished), 1);
    cr_assert_eq(atomic_load(&st.cancelled), 0);
    cr_assert_eq(weft_stream_close(s), 0);
    cr_assert_eq(weft_event_destroy(&st.go), 0);
    return 0;
}

Test(server, stop_waits_for_running_connections, .timeout = 60)
{
    t_run(graceful_main, NULL);
}

/* Connections that do not end by the deadline are cancelled. */
static int cancel_main(void *arg)
{
    struct srv_state st = { 0 };
    weft_stream_t *s[4];
    weft_server_t *srv;
    int fds = t_fds();
    char buf[4];

    (void)arg;
    cr_assert_eq(weft_start_server(&srv, "127.0.0.1", 0, NULL, echo_lines,
                                   &st), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_open_connection(&s[i], "127.0.0.1",
                                          (uint16_t)weft_server_port(srv),
                                          NULL, T_SECS(20)), 0);
    while (atomic_load(&st.started) < 4)
        cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(weft_server_stop(srv, T_MS(20)), 4);
    cr_assert_eq(atomic_load(&st.cancelled), 4);
    /* The server closed each stream. */
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(weft_stream_read(s[i], buf, sizeof(buf), T_SECS(20)), 0);
        cr_assert_eq(weft_stream_close(s[i]), 0);
    }
    cr_assert_eq(t_fds(), fds);
    return 0;
}

Test(server, stop_cancels_connections_at_its_deadline, .timeout = 60)
{
    t_run(cancel_main, NULL);
}

static int errors_main(void *arg)
{
    weft_server_t *srv;
    weft_stream_t *s;
    int lfd = t_listen_tcp(1);
    uint16_t port = t_port(lfd);

    (void)arg;
    cr_assert_eq(close(lfd), 0);
    cr_assert_eq(weft_open_connection(&s, "127.0.0.1", port, NULL, T_SECS(20)),
                 -ECONNREFUSED);
    cr_assert_eq(weft_open_connection(&s, "127.0.0.1", port, NULL, T_MS(-1)),
                 -ETIMEDOUT);
    cr_assert_eq(weft_open_connection(NULL, "127.0.0.1", port, NULL, T_SECS(1)),
                 -EINVAL);
    cr_assert_eq(weft_open_connection(&s, NULL, port, NULL, T_SECS(1)),
                 -EINVAL);
    cr_assert_eq(weft_start_server(NULL, NULL, 0, NULL, echo_lines, NULL),
                 -EINVAL);
    cr_assert_eq(weft_start_server(&srv, NULL, 0, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_server_port(NULL), -EINVAL);
    cr_assert_eq(weft_server_stop(NULL, T_SECS(1)), -EINVAL);
    /* The port is taken. */
    cr_assert_eq(weft_start_server(&srv, "127.0.0.1", 0, NULL, echo_lines,
                                   NULL), 0);
    lfd = weft_listen("127.0.0.1", (uint16_t)weft_server_port(srv), 1, 0);
    cr_assert_eq(lfd, -EADDRINUSE);
    cr_assert_eq(weft_server_stop(srv, T_SECS(1)), 0);
    return 0;
}

Test(server, errors_of_connecting_and_bad_arguments, .timeout = 60)
{
    t_run(errors_main, NULL);
}

/* Clients that keep connecting while the server stops at once: whatever
 * phase each connection is in (queued in the listener, spawned and not
 * started, running), the stop ends it and leaves no fd open. */
struct churn {
    uint16_t port;
    atomic_bool stopped;
};

static int churn_client(void *arg)
{
    struct churn *ch = arg;
    char line[32];

    while (!atomic_load(&ch->stopped)) {
        weft_stream_t *s;
        ssize_t n;

        if (weft_open_connection(&s, "127.0.0.1", ch->port, NULL,
                                 T_SECS(20)) < 0)
            continue;
        n = weft_stream_write(s, "ping\n", 5, T_SECS(20));
        if (n == 5)
            n = weft_stream_flush(s, T_SECS(20));
        if (n >= 0)
            n = weft_stream_read_line(s, line, sizeof(line), T_SECS(20));
        cr_assert(n >= 0 || n == -ECONNRESET || n == -EPIPE,
                  "client: %s", strerror((int)-n));
        cr_assert_eq(weft_stream_close(s), 0);
    }
    return 0;
}

static int churn_main(void *arg)
{
    struct srv_state st = { 0 };
    struct churn ch = { 0 };
    weft_task_t *t[8];
    weft_server_t *srv;
    int fds = t_fds();

    (void)arg;
    cr_assert_eq(weft_start_server(&srv, "127.0.0.1", 0, NULL, echo_lines,
                                   &st), 0);
    ch.port = (uint16_t)weft_server_port(srv);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(weft_spawn(&t[i], churn_client, &ch), 0);
    while (atomic_load(&st.started) < 20)
        cr_assert_eq(weft_yield(), 0);
    cr_assert_geq(weft_server_stop(srv, weft_now_ns()), 0);
    atomic_store(&ch.stopped, true);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    cr_assert_eq(atomic_load(&st.started), atomic_load(&st.finished));
    cr_assert_eq(t_fds(), fds);
    return 0;
}

Test(server, stop_while_clients_keep_connecting_leaks_nothing,
     .timeout = 60)
{
    t_run(churn_main, NULL);
}
