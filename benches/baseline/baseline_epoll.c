/*
 * baseline_epoll: a hand-written epoll echo and HTTP server, the reference
 * that the network benches (N1-N3 in benches/README.md) take every ratio
 * against. It does not use weft.
 *
 * Usage: baseline_epoll echo|http PORT
 *   Serves 127.0.0.1:PORT until SIGTERM or SIGINT, then exits 0. The
 *   number of threads is WEFT_WORKERS (default 1); the pinned benches run
 *   it as `taskset -c 0 baseline_epoll echo 9000`.
 *
 * Design:
 * - One epoll loop per thread, each with its own SO_REUSEPORT listener, so
 *   the threads share nothing and the kernel spreads connections.
 * - Edge-triggered, registered once for EPOLLIN | EPOLLOUT at accept time,
 *   so the loop never calls epoll_ctl() again. Level-triggered mode would
 *   need it to turn EPOLLOUT on and off around partial writes, and its
 *   epoll_wait() re-polls every socket it reported the turn before. A read
 *   shorter than its buffer proves the socket drained (epoll(7)), which
 *   spares edge triggering the usual extra read that ends in EAGAIN. Next
 *   to a level-triggered build the gain stays within run-to-run noise:
 *   the kernel's TCP path dominates the cost of a round trip.
 * - echo reads into one buffer per thread and writes it straight back. Only
 *   the unwritten tail of a partial write is copied into the connection,
 *   which then stops reading until that tail is flushed: back-pressure
 *   instead of unbounded buffering.
 * - http accumulates each connection's input and answers every complete
 *   header block at once. The response is constant, so what a connection is
 *   owed is a byte count into a periodic stream of responses kept in one
 *   static buffer: pipelined requests get all their responses in one write,
 *   and a partial write needs no copy.
 * - Shutdown: the main thread blocks SIGINT and SIGTERM (the loops inherit
 *   the mask), waits in sigwait() and then writes an eventfd that every loop
 *   watches level-triggered, so each one sees it, closes its fds and ends.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

#define LISTEN_BACKLOG 4096
#define MAX_EVENTS 256
#define READ_BUF_SIZE (64 * 1024)
#define HTTP_IN_INIT 4096
#define HTTP_IN_MAX (1024 * 1024)




/* Owned by the one loop that accepted it. */
struct conn {
    int fd;
    struct conn *prev, *next; /* the loop's list, to close all at exit */
    /* echo: the unwritten tail of a partial write */
    char *out;
    size_t out_len, out_off;
    /* http: unanswered input, and response bytes owed and already sent */
    char *in;
    size_t in_len, in_cap;
    uint64_t owed, sent;
};

struct loop {
    int epfd, lfd, stop_fd;
    enum mode mode;
    char *buf;         /* echo read buffer */
    struct conn conns; /* list head */
    pthread_t thread;
};

/* Addresses that tag the two non-connection fds in epoll_event.data.ptr. */
static char listen_tag, stop_tag;

static int read_end(ssize_t n)
{
    if (n == 0)
        return -ECONNRESET; /* the peer closed: so do we */
    return errno == EAGAIN || errno == EINTR ? 0 : -errno;
}

/* Returns 0 when nothing is left to write, -EAGAIN while a tail remains. */
static int flush_tail(struct conn *c)
{
    ssize_t n;

    while (c->out_off < c->out_len) {
        n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0)
            return errno == EAGAIN ? -EAGAIN : -errno;
        c->out_off += n;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

static int echo_back(struct conn *c, const char *buf, size_t len)
{
    ssize_t n = write(c->fd, buf, len);

    if (n < 0 && errno != EAGAIN)
        return -errno;
    if (n < 0)
        n = 0;
    if ((size_t)n == len)
        return 0;
    /* out is empty here: we only read once the last tail was flushed. */
    free(c->out);
    c->out = malloc(len - n);
    if (!c->out)
        return -ENOMEM;
    memcpy(c->out, buf + n, len - n);
    c->out_len = len - n;
    return 0;
}

static int serve_echo(struct loop *l, struct conn *c)
{
    bool drained = false;
    ssize_t n;
    int ret;

    while ((ret = flush_tail(c)) == 0 && !drained) {
        n = read(c->fd, l->buf, READ_BUF_SIZE);
        if (n <= 0)
            return read_end(n);
        ret = echo_back(c, l->buf, n);
        if (ret)
            return ret;
        drained = n < READ_BUF_SIZE;
    }
    return ret == -EAGAIN ? 0 : ret;
}

/* Writes the responses owed; 0 when done, -EAGAIN when the socket is full. */
static int flush_owed(struct conn *c)
{
    size_t off, len;
    ssize_t n;

    while (c->owed) {
        off = c->sent % RESPONSE_LEN;
        len = sizeof(responses) - off;
        if (len > c->owed)
            len = c->owed;
        n = write(c->fd, responses + off, len);
        if (n < 0)
            return errno == EAGAIN ? -EAGAIN : -errno;
        c->owed -= n;
        c->sent += n;
    }
    return 0;
}

static int make_room(struct conn *c)
{
    char *in;

    if (c->in_len < c->in_cap)
        return 0;
    if (c->in_cap >= HTTP_IN_MAX)
        return -EMSGSIZE; /* a header block this big is an attack */
    in = realloc(c->in, c->in_cap * 2);
    if (!in)
        return -ENOMEM;
    c->in = in;
    c->in_cap *= 2;
    return 0;
}

static int serve_http(struct conn *c)
{
    bool drained = false;
    size_t room;
    ssize_t n;
    int ret;

    while ((ret = flush_owed(c)) == 0 && !drained) {
        ret = make_room(c);
        if (ret)
            return ret;
        room = c->in_cap - c->in_len;
        n = read(c->fd, c->in + c->in_len, room);
        if (n <= 0)
            return read_end(n);
        c->in_len += n;
        c->owed += take_requests(c->in, &c->in_len) * RESPONSE_LEN;
        drained = (size_t)n < room;
    }
    return ret == -EAGAIN ? 0 : ret;
}

static void drop_conn(struct conn *c)
{
    close(c->fd);
    c->prev->next = c->next;
    c->next->prev = c->prev;
    free(c->out);
    free(c->in);
    free(c);
}

static int add_conn(struct loop *l, int fd)
{
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET };
    struct conn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (!c)
        return -ENOMEM;
    if (l->mode == MODE_HTTP) {
        c->in_cap = HTTP_IN_INIT;
        c->in = malloc(c->in_cap);
        if (!c->in)
            goto out_free_conn;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ev.data.ptr = c;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        goto out_free_conn;
    c->fd = fd;
    c->next = l->conns.next;
    c->prev = &l->conns;
    c->next->prev = c;
    l->conns.next = c;
    return 0;

out_free_conn:
    free(c->in);
    free(c);
    return -ENOMEM;
}

static void accept_all(struct loop *l)
{
    int fd;

    for (;;) {
        fd = accept4(l->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
            continue;
        if (fd < 0) {
            if (errno != EAGAIN)
                perror("baseline_epoll: accept");
            return;
        }
        if (add_conn(l, fd) < 0)
            close(fd);
    }
}

/* Returns false when the loop must stop. */
static bool dispatch(struct loop *l, void *ptr)
{
    struct conn *c = ptr;
    int ret;

    if (ptr == &stop_tag)
        return false;
    if (ptr == &listen_tag) {
        accept_all(l);
        return true;
    }
    ret = l->mode == MODE_ECHO ? serve_echo(l, c) : serve_http(c);
    if (ret < 0)
        drop_conn(c);
    return true;
}

static void *run_loop(void *arg)
{
    struct epoll_event ev[MAX_EVENTS];
    struct loop *l = arg;
    int i, n;

    for (;;) {
        n = epoll_wait(l->epfd, ev, MAX_EVENTS, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            perror("baseline_epoll: epoll_wait");
            return NULL;
        }
        for (i = 0; i < n; i++)
            if (!dispatch(l, ev[i].data.ptr))
                return NULL;
    }
}

static int open_listener(int port, bool reuseport)
{
    struct sockaddr_in sa = {
        .sin_family = AF_INET,
        .sin_port = htons(port),
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
    };
    int fd, one = 1, ret;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (reuseport &&
         setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        (reuseport && listen(fd, LISTEN_BACKLOG) < 0)) {
        ret = -errno;
        close(fd);
        return ret;
    }
    return fd;
}

/*
 * SO_REUSEPORT would let us silently share the port with a stale server of
 * the same user, splitting the load between the two; a plain bind first
 * refuses to start in that case.
 */
static int check_port_free(int port)
{
    int fd = open_listener(port, false);

    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

static int add_watch(int epfd, int fd, uint32_t events, void *tag)
{
    struct epoll_event ev = { .events = events, .data.ptr = tag };

    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int loop_init(struct loop *l, int port, enum mode mode, int stop_fd)
{
    int ret;

    l->mode = mode;
    l->stop_fd = stop_fd;
    l->conns.next = l->conns.prev = &l->conns;
    l->buf = malloc(READ_BUF_SIZE);
    if (!l->buf)
        return -ENOMEM;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        ret = -errno;
        goto out_free_buf;
    }
    l->lfd = open_listener(port, true);
    if (l->lfd < 0) {
        ret = l->lfd;
        goto out_close_epoll;
    }
    /* Both stay level-triggered: the stop event must reach every loop. */
    ret = add_watch(l->epfd, l->lfd, EPOLLIN, &listen_tag);
    if (!ret)
        ret = add_watch(l->epfd, stop_fd, EPOLLIN, &stop_tag);
    if (!ret)
        return 0;
    close(l->lfd);
out_close_epoll:
    close(l->epfd);
out_free_buf:
    free(l->buf);
    return ret;
}

static void loop_fini(struct loop *l)
{
    while (l->conns.next != &l->conns)
        drop_conn(l->conns.next);
    close(l->lfd);
    close(l->epfd);
    free(l->buf);
}

static int worker_count(void)
{
    const char *s = getenv("WEFT_WORKERS");
    int n = s ? atoi(s) : 1;

    return n >= 1 && n <= 1024 ? n : 1;
}

/* Starts the loops, waits for SIGINT or SIGTERM, then stops them. */
static int serve(struct loop *loops, int n, sigset_t *sigs, int stop_fd)
{
    uint64_t one = 1;
    int i, sig, ret = 0;

    for (i = 0; i < n; i++) {
        ret = -pthread_create(&loops[i].thread, NULL, run_loop, &loops[i]);
        if (ret)
            break;
    }
    if (!ret)
        sigwait(sigs, &sig);
    if (write(stop_fd, &one, sizeof(one)) < 0)
        ret = -errno;
    while (i-- > 0)
        pthread_join(loops[i].thread, NULL);
    return ret;
}

/* Sets up n loops, serves until a signal, then tears everything down. */
static int run_loops(int n, int port, enum mode mode, sigset_t *sigs)
{
    struct loop *loops;
    int i, stop_fd, ret = 0;

    stop_fd = eventfd(0, EFD_CLOEXEC);
    if (stop_fd < 0)
        return -errno;
    loops = calloc(n, sizeof(*loops));
    if (!loops) {
        ret = -ENOMEM;
        goto out_close_stop;
    }
    for (i = 0; i < n && ret == 0; i++)
        ret = loop_init(&loops[i], port, mode, stop_fd);
    if (ret == 0)
        ret = serve(loops, n, sigs, stop_fd);
    else
        i--; /* loops[i - 1] failed and cleaned up after itself */
    while (i-- > 0)
        loop_fini(&loops[i]);
    free(loops);
out_close_stop:
    close(stop_fd);
    return ret;
}

int main(int argc, char **argv)
{
    enum mode mode;
    int port, ret;
    sigset_t sigs;

    if (parse_args(argc, argv, &mode, &port) < 0) {
        fprintf(stderr, "usage: baseline_epoll echo|http PORT\n"
                        "  threads: WEFT_WORKERS (default 1)\n");
        return 2;
    }
    /* Blocked before any thread starts, so only sigwait() sees them. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    fill_responses();
    ret = check_port_free(port);
    if (ret == 0)
        ret = run_loops(worker_count(), port, mode, &sigs);
    if (ret < 0) {
        fprintf(stderr, "baseline_epoll: 127.0.0.1:%d: %s\n", port,
                strerror(-ret));
        return 1;
    }
    return 0;
}
