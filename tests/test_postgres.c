/*
 * libpq driven from tasks, against a real PostgreSQL server that
 * scripts/pg-test-server starts around this program (PGHOST, PGPORT,
 * PGUSER and PGDATABASE name it): connecting by host name without
 * blocking a worker, queries sharing a pool of connections, a query that
 * runs on while another task of the same worker works, and queries cut
 * short by a deadline or a cancel, cancelled on the server, their
 * connections reused.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "io_helpers.h"

/* The server; fails the test if the script did not set it up. */
static const char *t_env(const char *name)
{
    const char *v = getenv(name);

    cr_assert(v && *v, "%s unset: run under scripts/pg-test-server", name);
    return v;
}

static int t_connect_step(void *arg, int *fd)
{
    PostgresPollingStatusType st = PQconnectPoll(arg);

    *fd = PQsocket(arg);
    switch (st) {
    case PGRES_POLLING_OK:
        return 0;
    case PGRES_POLLING_READING:
        return POLLIN;
    case PGRES_POLLING_WRITING:
        return POLLOUT;
    default:
        return -ECONNREFUSED;
    }
}

static int t_result_step(void *arg, int *fd)
{
    int unsent = PQflush(arg);

    *fd = PQsocket(arg);
    if (unsent < 0 || !PQconsumeInput(arg))
        return -EIO;
    return unsent ? POLLIN | POLLOUT : PQisBusy(arg) ? POLLIN : 0;
}

/* Connects to addr (numeric) for host without any lookup by libpq.
 * Returns 0 with *out set, or the error of the connect's steps. */
static int t_connect_addr(const char *host, const char *addr,
                          const char *port, PGconn **out)
{
    const char *keys[] = { "host", "hostaddr", "port", NULL };
    const char *values[] = { host, addr, port, NULL };
    PGconn *c = PQconnectStartParams(keys, values, 0);
    int ret;

    cr_assert_not_null(c);
    /* A connect that failed at once (a refusal on loopback may). */
    if (PQstatus(c) == CONNECTION_BAD) {
        PQfinish(c);
        return -ECONNREFUSED;
    }
    cr_assert_eq(PQsetnonblocking(c, 1), 0);
    /* libpq: wait for writability before the first poll. */
    ret = weft_wait_fd(PQsocket(c), POLLOUT, T_SECS(20));
    if (ret > 0)
        ret = weft_drive_fd(t_connect_step, c, T_SECS(20));
    if (ret < 0) {
        PQfinish(c);
        return ret;
    }
    cr_assert_eq(PQstatus(c), CONNECTION_OK);
    *out = c;
    return 0;
}

/* Resolves PGHOST with weft_resolve and connects to the first address
 * that takes the connection. */
static PGconn *t_connect(void)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_ADDRCONFIG },
                    *res;
    const char *host = t_env("PGHOST"), *port = t_env("PGPORT");
    PGconn *c = NULL;
    int ret = weft_resolve(host, port, &hints, &res);

    cr_assert_eq(ret, 0, "resolve %s: %s", host, strerror(-ret));
    for (struct addrinfo *ai = res; ai && !c; ai = ai->ai_next) {
        char addr[NI_MAXHOST];

        cr_assert_eq(getnameinfo(ai->ai_addr, ai->ai_addrlen, addr,
                                 sizeof(addr), NULL, 0, NI_NUMERICHOST),
                     0);
        ret = t_connect_addr(host, addr, port, &c);
    }
    weft_resolve_free(res);
    cr_assert_not_null(c, "connect %s:%s: %s", host, port, strerror(-ret));
    return c;
}

static int send_cancel(void *cancel)
{
    char err[256];

    return PQcancel(cancel, err, sizeof(err)) ? 0 : -EIO;
}

/*
 * Runs sql and stores the first value of its result in out. Past the
 * deadline (or on a cancel) the query is cancelled on the server and its
 * results drained, so the connection is ready for the next query; the
 * deadline's or the cancel's error is returned. A query error is -EIO.
 */
static int t_query(PGconn *c, const char *sql, int64_t deadline, char *out,
                   size_t size)
{
    PGresult *r;
    int ret;

    cr_assert_eq(PQsendQuery(c, sql), 1, "%s", PQerrorMessage(c));
    ret = weft_drive_fd(t_result_step, c, deadline);
    if (ret == -ETIMEDOUT || ret == -ECANCELED) {
        PGcancel *cancel = PQgetCancel(c);

        cr_assert_not_null(cancel);
        cr_assert_eq(weft_blocking(send_cancel, cancel), 0);
        PQfreeCancel(cancel);
    }
    for (;;) {
        cr_assert_eq(weft_drive_fd(t_result_step, c, T_SECS(20)), 0);
        if (!(r = PQgetResult(c)))
            break;
        if (ret == 0 && PQresultStatus(r) == PGRES_TUPLES_OK) {
            if (out)
                snprintf(out, size, "%s", PQgetvalue(r, 0, 0));
        } else if (ret == 0 && PQresultStatus(r) != PGRES_COMMAND_OK) {
            ret = -EIO;
        }
        PQclear(r);
    }
    return ret;
}

/* The state of backend pid, as another connection sees it. */
static void t_backend_state(PGconn *c, int pid, char *state, size_t size)
{
    char sql[128];

    snprintf(sql, sizeof(sql),
             "SELECT state || ':' || query FROM pg_stat_activity "
             "WHERE pid = %d",
             pid);
    cr_assert_eq(t_query(c, sql, T_SECS(20), state, size), 0);
}

/* ---- connecting and querying --------------------------------------------- */

static int host_name(void *arg)
{
    char out[32];
    PGconn *c;

    (void)arg;
    c = t_connect();
    cr_assert_eq(PQisnonblocking(c), 1);
    cr_assert_eq(t_query(c, "SELECT 1 + 1", T_SECS(20), out, sizeof(out)), 0);
    cr_assert_str_eq(out, "2");
    PQfinish(c);
    return 0;
}

Test(postgres, connects_by_host_name_and_queries, .timeout = 60)
{
    t_run(host_name, NULL);
}

#define CONNS 4
#define QUERIES 24

static weft_queue_t pool;

/* A query on a connection taken from the pool, given back afterwards. */
static int pooled_query(void *arg)
{
    int i = (int)(intptr_t)arg;
    char sql[64], out[32];
    void *c;

    cr_assert_eq(weft_queue_get(&pool, &c, T_SECS(30)), 0);
    snprintf(sql, sizeof(sql), "SELECT %d * 3 FROM pg_sleep(0.02)", i);
    cr_assert_eq(t_query(c, sql, T_SECS(30), out, sizeof(out)), 0);
    cr_assert_eq(weft_queue_put(&pool, c, T_SECS(30)), 0);
    return atoi(out);
}

static int connect_into_pool(void *arg)
{
    (void)arg;
    return weft_queue_put(&pool, t_connect(), T_SECS(30));
}

static int pool_of_connections(void *arg)
{
    int status[QUERIES];
    weft_group_t g;
    void *c;

    (void)arg;
    cr_assert_eq(weft_queue_init(&pool, CONNS, 0), 0);
    cr_assert_eq(weft_group_init(&g), 0);
    for (int i = 0; i < CONNS; i++)
        cr_assert_eq(weft_group_spawn(&g, connect_into_pool, NULL, NULL), 0);
    cr_assert_eq(weft_group_wait(&g), 0);
    cr_assert_eq(weft_group_destroy(&g), 0);
    cr_assert_eq(weft_queue_size(&pool), CONNS);

    cr_assert_eq(weft_group_init(&g), 0);
    for (int i = 0; i < QUERIES; i++)
        cr_assert_eq(weft_group_spawn(&g, pooled_query, (void *)(intptr_t)i,
                                      &status[i]),
                     0);
    cr_assert_eq(weft_group_wait(&g), 0);
    cr_assert_eq(weft_group_destroy(&g), 0);
    for (int i = 0; i < QUERIES; i++)
        cr_assert_eq(status[i], i * 3);

    cr_assert_eq(weft_queue_size(&pool), CONNS);
    while (weft_queue_try_get(&pool, &c) == 0)
        PQfinish(c);
    cr_assert_eq(weft_queue_destroy(&pool), 0);
    return 0;
}

Test(postgres, concurrent_queries_share_a_pool_of_connections, .timeout = 60)
{
    int fds = t_fds();

    t_run(pool_of_connections, NULL);
    cr_assert_eq(t_fds(), fds);
}

/* ---- deadlines and cancellation ------------------------------------------ */

struct slow {
    PGconn *c;
    int ret;
};

/* A query that would take 60 s, unless cut short. */
static int slow_query(void *arg)
{
    struct slow *s = arg;

    s->ret = t_query(s->c, "SELECT pg_sleep(60)", WEFT_NO_DEADLINE, NULL, 0);
    return s->ret;
}

/*
 * One worker: while a task waits for a slow query, another task of the
 * same worker queries the server on a second connection and sees the slow
 * one running (so the wait did not hold the worker). Cancelling the task
 * cancels the query on the server, and the connection serves again.
 */
static int cancel_while_running(void *arg)
{
    struct slow s;
    char state[256], out[32];
    PGconn *watcher;
    weft_task_t *t;
    int pid;

    (void)arg;
    s.c = t_connect();
    watcher = t_connect();
    pid = PQbackendPID(s.c);
    cr_assert_eq(weft_spawn(&t, slow_query, &s), 0);
    t_until_parked_in(t, WHY_IO);
    do
        t_backend_state(watcher, pid, state, sizeof(state));
    while (strcmp(state, "active:SELECT pg_sleep(60)") != 0);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t), -ECANCELED);
    cr_assert_eq(s.ret, -ECANCELED);
    t_backend_state(watcher, pid, state, sizeof(state));
    cr_assert_str_eq(state, "idle:SELECT pg_sleep(60)");
    cr_assert_eq(t_query(s.c, "SELECT 'again'", T_SECS(20), out, sizeof(out)),
                 0);
    cr_assert_str_eq(out, "again");
    PQfinish(watcher);
    PQfinish(s.c);
    return 0;
}

Test(postgres, cancelling_a_task_cancels_its_query_on_the_server,
     .timeout = 60)
{
    t_run_one_worker(cancel_while_running, NULL);
}

static int deadline(void *arg)
{
    char state[256], out[32];
    PGconn *c, *watcher;
    int ret;

    (void)arg;
    c = t_connect();
    watcher = t_connect();
    ret = t_query(c, "SELECT pg_sleep(60)", T_MS(100), out, sizeof(out));
    cr_assert_eq(ret, -ETIMEDOUT);
    t_backend_state(watcher, PQbackendPID(c), state, sizeof(state));
    cr_assert_str_eq(state, "idle:SELECT pg_sleep(60)");
    cr_assert_eq(t_query(c, "SELECT 42", T_SECS(20), out, sizeof(out)), 0);
    cr_assert_str_eq(out, "42");
    PQfinish(watcher);
    PQfinish(c);
    return 0;
}

Test(postgres, a_deadline_cancels_the_query_and_keeps_the_connection,
     .timeout = 60)
{
    t_run(deadline, NULL);
}

static int refused(void *arg)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = t_loopback(0);
    char port[16];
    PGconn *c = NULL;

    (void)arg;
    /* A port that is bound but not listening refuses connections. */
    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    snprintf(port, sizeof(port), "%u", t_port(fd));
    cr_assert_eq(t_connect_addr("localhost", "127.0.0.1", port, &c),
                 -ECONNREFUSED);
    cr_assert_null(c);
    close(fd);
    return 0;
}

Test(postgres, a_refused_connection_fails_at_once, .timeout = 60)
{
    t_run(refused, NULL);
}
