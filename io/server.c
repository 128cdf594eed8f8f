/*
 * asyncio's open_connection and start_server: streams on TCP connections.
 *
 * A server is a listener, one accepting task, and a task per connection
 * that runs the caller's function on the connection's stream and closes it
 * when the function returns. The server keeps each connection task's
 * handle in `live` while it runs, so that a stop can cancel the ones still
 * running at its deadline; a finished task moves itself to `done`, and the
 * accepting task joins (releases) those before each new connection, so a
 * long-running server holds no record of connections that are over.
 *
 * Locking: lock (a spin lock: the sections are a few stores and never
 * suspend, so a cancelled task can always take it) guards live and done.
 * A node's task field is written by the accepting task after the spawn,
 * under the lock; until then the task cannot be cancelled by a stop, which
 * first ends the accepting task.
 *
 * Counting: conns counts the connection tasks not yet finished; a stop
 * waits for it to reach 0, first until its deadline, then, after
 * cancelling the rest, without one.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../runtime/mem.h"
#include "../runtime/spin.h"
#include "stream.h"
#include "weft.h"

/* How long a connection has to complete its TLS handshake. */
#define HANDSHAKE_MS 10000

struct conn {
    struct conn *prev, *next; /* in live (doubly linked) or done (next) */
    struct weft_server *srv;
    weft_task_t *task; /* the held handle; NULL until the spawn returned */
    int fd;
    bool finished;     /* conn_main moved it to done (under lock) */
};

struct weft_server {
    weft_listener_t *l;
    weft_task_t *acceptor;
    weft_tls_t *tls; /* held until the stop; NULL: plain TCP */
    weft_conn_fn_t fn;
    void *arg;
    uint16_t port;
    weft_waitgroup_t conns;
    /* Set by the stop before it cancels the accepting task: a join in
     * reap passes a cancellation on to the joined task instead of keeping
     * it, so the accepting task checks this too. */
    atomic_bool stopping;

    struct weft__spin lock;
    struct conn live; /* sentinel of a circular list */
    struct conn *done;
};

static void set_nodelay(int fd)
{
    int one = 1;

    /* As asyncio does: a reply written in pieces must not wait for the
     * peer's ACK (Nagle). Not a TCP socket (Unix): nothing to do. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int weft_open_connection(weft_stream_t **out, const char *host,
                         uint16_t port, weft_tls_t *tls, int64_t deadline)
{
    weft_scope_t scope;
    int fd, ret;

    if (!out || !host || (tls && weft__tls_is_server(tls)))
        return -EINVAL;
    /* The scope bounds the name lookup by the deadline as well. */
    if ((ret = weft_scope_enter(&scope, deadline)) < 0)
        return ret;
    fd = weft_connect_tcp(host, port, deadline);
    weft_scope_exit(&scope);
    if (fd < 0)
        return fd;
    if ((ret = weft_stream_new(out, fd)) < 0) {
        weft_close(fd);
        return ret;
    }
    if (tls && (ret = weft_stream_start_tls(*out, tls, host, deadline)) < 0) {
        weft_stream_close(*out);
        *out = NULL;
    }
    return ret;
}

/* ---- connections --------------------------------------------------------- */

static int conn_main(void *arg)
{
    struct conn *c = arg;
    struct weft_server *srv = c->srv;
    weft_stream_t *s;

    set_nodelay(c->fd);
    if (weft_stream_new(&s, c->fd) == 0) {
        if (!srv->tls ||
            weft_stream_start_tls(s, srv->tls, NULL,
                                  weft_deadline_in_ms(HANDSHAKE_MS)) == 0)
            srv->fn(s, srv->arg);
        weft_stream_close(s);
    } else {
        weft_close(c->fd);
    }
    weft__spin_lock(&srv->lock);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    c->next = srv->done;
    srv->done = c;
    c->finished = true;
    weft__spin_unlock(&srv->lock);
    weft_waitgroup_done(&srv->conns);
    return 0;
}

/* Joins the connection tasks that have finished, and frees their nodes. */
static void reap(struct weft_server *srv)
{
    struct conn *c, *next;

    weft__spin_lock(&srv->lock);
    c = srv->done;
    srv->done = NULL;
    weft__spin_unlock(&srv->lock);
    for (; c; c = next) {
        next = c->next;
        if (c->task)
            weft_join(c->task);
        weft__free(c, sizeof(*c));
    }
}

static void start_conn(struct weft_server *srv, int fd)
{
    struct conn *c = weft__zalloc(sizeof(*c));
    weft_task_t *t;

    if (!c) {
        weft_close(fd);
        return;
    }
    c->srv = srv;
    c->fd = fd;
    weft__spin_lock(&srv->lock);
    c->next = srv->live.next;
    c->prev = &srv->live;
    c->next->prev = c;
    srv->live.next = c;
    weft__spin_unlock(&srv->lock);
    weft_waitgroup_add(&srv->conns, 1);
    if (weft_spawn(&t, conn_main, c) < 0) {
        weft__spin_lock(&srv->lock);
        c->prev->next = c->next;
        c->next->prev = c->prev;
        weft__spin_unlock(&srv->lock);
        weft_waitgroup_done(&srv->conns);
        weft_close(fd);
        weft__free(c, sizeof(*c));
        return;
    }
    weft__spin_lock(&srv->lock);
    c->task = t;
    weft__spin_unlock(&srv->lock);
}

static int accept_loop(void *arg)
{
    struct weft_server *srv = arg;
    int fd;

    for (;;) {
        fd = weft_listener_accept(srv->l, NULL, NULL, WEFT_NO_DEADLINE);
        if (fd == -ECANCELED || fd == -EBADF)
            return 0;
        reap(srv);
        if (atomic_load_explicit(&srv->stopping, memory_order_relaxed)) {
            if (fd >= 0)
                weft_close(fd);
            return 0;
        }
        if (fd >= 0) {
            start_conn(srv, fd);
        } else if (weft_sleep_ms(10) == -ECANCELED) {
            /* Out of fds or memory: the listener reports it once and
             * resumes; a pause lets connections end meanwhile. */
            return 0;
        }
    }
}

/* ---- the server -------------------------------------------------------- */

static int local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int weft_start_server(weft_server_t **out, const char *host, uint16_t port,
                      weft_tls_t *tls, weft_conn_fn_t fn, void *arg)
{
    struct weft_server *srv;
    int fd, ret;

    if (!out || !fn || (tls && !weft__tls_is_server(tls)))
        return -EINVAL;
    if (!(srv = weft__zalloc(sizeof(*srv))))
        return -ENOMEM;
    srv->fn = fn;
    srv->arg = arg;
    srv->live.next = srv->live.prev = &srv->live;
    weft__spin_init(&srv->lock);
    weft_waitgroup_init(&srv->conns);
    if ((fd = ret = weft_listen(host, port, SOMAXCONN, 0)) < 0)
        goto out_free;
    if ((ret = local_port(fd)) < 0) {
        close(fd);
        goto out_free;
    }
    srv->port = (uint16_t)ret;
    if ((ret = weft_listener_new(&srv->l, fd, SOCK_NONBLOCK | SOCK_CLOEXEC))) {
        close(fd);
        goto out_free;
    }
    if ((ret = weft_spawn(&srv->acceptor, accept_loop, srv)) < 0)
        goto out_close;
    if ((srv->tls = tls))
        weft__tls_hold(tls);
    *out = srv;
    return 0;

out_close:
    weft_listener_close(srv->l);
out_free:
    weft_waitgroup_destroy(&srv->conns);
    weft__free(srv, sizeof(*srv));
    return ret;
}

int weft_server_port(const weft_server_t *srv)
{
    return srv ? srv->port : -EINVAL;
}

/* Cancels every connection still running; returns how many. */
static int cancel_live(struct weft_server *srv)
{
    int n = 0;

    weft__spin_lock(&srv->lock);
    for (struct conn *c = srv->live.next; c != &srv->live; c = c->next) {
        weft_cancel(c->task);
        n++;
    }
    weft__spin_unlock(&srv->lock);
    return n;
}

/*
 * Joins the connection tasks still running, one at a time. weft_join, not
 * the wait group: a join is not cut short by an expired timeout scope of
 * the caller, so this cannot spin. A node whose task was joined here keeps
 * a NULL task, which reap skips. A task cancelled before it started never
 * ran conn_main: its node is still live after the join, and its fd open.
 */
static void join_live(struct weft_server *srv)
{
    struct conn *c;
    weft_task_t *t;
    bool ran;

    for (;;) {
        weft__spin_lock(&srv->lock);
        for (c = srv->live.next; c != &srv->live && !c->task; c = c->next)
            ;
        t = c != &srv->live ? c->task : NULL;
        if (t)
            c->task = NULL;
        weft__spin_unlock(&srv->lock);
        if (!t)
            return;
        weft_join(t);
        weft__spin_lock(&srv->lock);
        if (!(ran = c->finished)) {
            c->prev->next = c->next;
            c->next->prev = c->prev;
        }
        weft__spin_unlock(&srv->lock);
        if (!ran) {
            weft_close(c->fd);
            weft_waitgroup_done(&srv->conns);
            weft__free(c, sizeof(*c));
        }
    }
}

int weft_server_stop(weft_server_t *srv, int64_t deadline)
{
    int cancelled = 0, ret;

    if (!srv)
        return -EINVAL;
    if (!weft_self())
        return -EPERM;
    /* relaxed: the cancel below orders it before whatever the accepting
     * task does once it sees the cancel. */
    atomic_store_explicit(&srv->stopping, true, memory_order_relaxed);
    weft_cancel(srv->acceptor);
    weft_join(srv->acceptor);
    weft_listener_close(srv->l);
    ret = weft_waitgroup_wait(&srv->conns, deadline);
    if (ret < 0) {
        cancelled = cancel_live(srv);
        join_live(srv);
    }
    reap(srv);
    if (srv->tls)
        weft_tls_free(srv->tls);
    weft_waitgroup_destroy(&srv->conns);
    weft__free(srv, sizeof(*srv));
    /* The stop is complete; a cancellation of the caller that cut its
     * wait short stays the caller's to see at its next suspension. */
    if (ret == -ECANCELED)
        weft_cancel(weft_self());
    return cancelled;
}
