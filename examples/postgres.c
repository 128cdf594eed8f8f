/*
 * The asyncio documents' database example (aiopg) on libpq: a small pool
 * of connections shared through a weft_queue_t, twenty queries at once,
 * each with a deadline; a query past its deadline is cancelled on the
 * server (PQcancel blocks, so it runs on the blocking pool) and its
 * connection goes back to the pool. No worker ever blocks: the host name
 * goes through weft_resolve, libpq's socket through weft_drive_fd.
 * Run: postgres [host [port]] (default localhost 5432; PGUSER, PGDATABASE
 * and libpq's other variables apply). scripts/pg-test-server starts a
 * throwaway server: scripts/pg-test-server sh -c '"$0" $PGHOST $PGPORT'
 * build/examples/postgres
 */
#include <errno.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

#define CONNS 4
#define QUERIES 20

static const char *host, *port;
static char addr[NI_MAXHOST]; /* host, resolved: libpq looks up nothing */
static weft_queue_t pool;

static int connect_step(void *arg, int *fd)
{
    PostgresPollingStatusType st = PQconnectPoll(arg);

    *fd = PQsocket(arg);
    return st == PGRES_POLLING_OK        ? 0
           : st == PGRES_POLLING_READING ? POLLIN
           : st == PGRES_POLLING_WRITING ? POLLOUT
                                         : -ECONNREFUSED;
}

static int result_step(void *arg, int *fd)
{
    int unsent = PQflush(arg);

    *fd = PQsocket(arg);
    if (unsent < 0 || !PQconsumeInput(arg))
        return -EIO;
    return unsent ? POLLIN | POLLOUT : PQisBusy(arg) ? POLLIN : 0;
}

static int open_conn(void *arg)
{
    const char *keys[] = { "host", "hostaddr", "port", NULL };
    const char *values[] = { host, addr, port, NULL };
    PGconn *c = PQconnectStartParams(keys, values, 0);
    int ret;

    (void)arg;
    if (!c || PQstatus(c) == CONNECTION_BAD || PQsetnonblocking(c, 1))
        ret = -ECONNREFUSED;
    else /* libpq: the first step waits until the socket is writable */
        ret = weft_wait_fd(PQsocket(c), POLLOUT, weft_deadline_in_ms(10000));
    if (ret > 0)
        ret = weft_drive_fd(connect_step, c, weft_deadline_in_ms(10000));
    if (ret < 0) {
        fprintf(stderr, "connect: %s", c ? PQerrorMessage(c) : "no memory\n");
        PQfinish(c);
        return ret;
    }
    return weft_queue_put(&pool, c, WEFT_NO_DEADLINE);
}

static int send_cancel(void *cancel)
{
    char err[256];

    return PQcancel(cancel, err, sizeof(err)) ? 0 : -EIO;
}

/* Runs sql on a connection of the pool; past the deadline, cancels it on
 * the server and waits for the query to end, so the connection is clean. */
static int query(const char *sql, int64_t deadline, char *out, size_t size)
{
    PGresult *r;
    PGconn *c;
    int ret = weft_queue_get(&pool, (void **)&c, deadline);

    if (ret < 0)
        return ret;
    ret = PQsendQuery(c, sql) ? weft_drive_fd(result_step, c, deadline) : -EIO;
    if (ret == -ETIMEDOUT || ret == -ECANCELED) {
        PGcancel *cancel = PQgetCancel(c);

        weft_blocking(send_cancel, cancel);
        PQfreeCancel(cancel);
    }
    while (weft_drive_fd(result_step, c, WEFT_NO_DEADLINE) == 0 &&
           (r = PQgetResult(c))) {
        if (ret == 0 && PQresultStatus(r) == PGRES_TUPLES_OK)
            snprintf(out, size, "%s", PQgetvalue(r, 0, 0));
        else if (ret == 0)
            ret = -EIO;
        PQclear(r);
    }
    weft_queue_put(&pool, c, WEFT_NO_DEADLINE);
    return ret;
}

static int one_query(void *arg)
{
    char out[32];

    (void)arg;
    return query("SELECT pg_sleep(0.1)", weft_deadline_in_ms(5000), out,
                 sizeof(out));
}

/* n tasks running fn, as a group: the first failure cancels the rest. */
static int run_group(weft_fn_t fn, int n)
{
    weft_group_t g;
    int ret;

    weft_group_init(&g);
    while (n--)
        weft_group_spawn(&g, fn, NULL, NULL);
    ret = weft_group_wait(&g);
    weft_group_destroy(&g);
    return ret;
}

static int main_task(void *arg)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
    int64_t start = weft_now_ns();
    int ret;
    char out[32];
    void *c;

    (void)arg;
    if ((ret = weft_resolve(host, port, &hints, &res)) < 0)
        return ret;
    getnameinfo(res->ai_addr, res->ai_addrlen, addr, sizeof(addr), NULL, 0,
                NI_NUMERICHOST);
    weft_resolve_free(res);
    weft_queue_init(&pool, CONNS, 0);
    ret = run_group(open_conn, CONNS) ?: run_group(one_query, QUERIES);
    if (ret == 0) {
        printf("%d connections, %d queries of 0.1 s: %.2f s\n", CONNS, QUERIES,
               (weft_now_ns() - start) / 1e9);
        ret = query("SELECT pg_sleep(10)", weft_deadline_in_ms(200), out,
                    sizeof(out));
        printf("a 10 s query given 0.2 s: %s\n", strerror(-ret));
        ret = ret != -ETIMEDOUT ? -EIO
                                : query("SELECT 'its connection is back'",
                                        weft_deadline_in_ms(5000), out,
                                        sizeof(out));
        printf("%s\n", ret ? strerror(-ret) : out);
    }
    while (weft_queue_try_get(&pool, &c) == 0)
        PQfinish(c);
    weft_queue_destroy(&pool);
    return ret;
}

int main(int argc, char **argv)
{
    int ret;

    host = argc > 1 ? argv[1] : "localhost";
    port = argc > 2 ? argv[2] : "5432";
    if ((ret = weft_run(main_task, NULL)) < 0)
        fprintf(stderr, "postgres: %s\n", strerror(-ret));
    return ret != 0;
}
