/*
 * bench_loadgen: the load generator of the network benches (N1-N3 in
 * benches/README.md), for weft's servers and the baselines alike. It does not
 * use weft.
 *
 * Usage: bench_loadgen -p PORT [-c CONNS] [-s SIZE] [-d SECS] [-w WARMUP]
 *                      [-m echo|http]
 *   e.g. taskset -c 1 bench_loadgen -p 9000 -c 50 -s 64 -d 10 -w 2
 *   It prints one line:
 *   RESULT rtt_per_s=.. mbps=.. p50_us=.. p99_us=.. p999_us=.. errors=..
 *   and, when errors is not 0, their breakdown on stderr. Bad arguments exit
 *   2; no connection at all exits 1.
 *
 * Design:
 * - One thread, epoll, non-blocking sockets to 127.0.0.1, closed loop: a
 *   connection sends a message, waits for the whole reply, records the
 *   round trip and sends the next. Only round trips that complete between
 *   the end of the warm-up and the end count.
 * - echo sends SIZE bytes and checks every byte that comes back. Message k
 *   of connection i is a window into one pattern at an offset that changes
 *   with i and k, so a stale, misrouted or corrupted echo never matches.
 *   mbps is echoed payload in one direction (10^6 bytes per second).
 * - http sends "GET / HTTP/1.1" with a Host header and waits for one whole
 *   response framed by its Content-Length; mbps counts response bytes.
 * - Sockets are edge-triggered for EPOLLIN | EPOLLOUT, registered once: a
 *   read shorter than its buffer proves the socket drained (epoll(7)), so
 *   a round trip costs one write and one read.
 * - Latencies go into a log-linear histogram: 64 sub-buckets per power of
 *   two, so a bucket is under 1.6 % wide, and its midpoint is reported.
 * - Errors are resets, replies cut short by a close, corrupt replies,
 *   failed connects and round trips older than 5 s. Each one closes its
 *   connection, whose byte stream can no longer be trusted; the run goes
 *   on with the others and ends early if none is left.
 * - Time is bounded: connects are retried for 2 s while the server starts
 *   and abandoned after 3 s, then the run lasts WARMUP + SECS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_SEC 1000000000LL
#define NS_PER_MS 1000000LL
#define CONNECT_RETRY_NS (2 * NS_PER_SEC)
#define CONNECT_GIVE_UP_NS (3 * NS_PER_SEC)
#define RTT_TIMEOUT_NS (5 * NS_PER_SEC)
#define CHECK_EVERY_NS (100 * NS_PER_MS)
#define MAX_EVENTS 256
#define SCRATCH_SIZE (256 * 1024)
#define PATTERN_SPAN 251 /* offsets into the pattern; prime, see fill */
#define HEAD_MAX 1024    /* longest http response head we accept */
#define MAX_CONNS 100000
#define MAX_SIZE (64 * 1024 * 1024)

/* Log-linear histogram: values below 2 * SUB_COUNT are exact. */
#define SUB_BITS 6
#define SUB_COUNT (1 << SUB_BITS)
#define HIST_BUCKETS ((64 - SUB_BITS + 1) * SUB_COUNT)

static const char http_request[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

enum mode { MODE_ECHO, MODE_HTTP };

enum err_kind { ERR_CONNECT, ERR_RESET, ERR_SHORT, ERR_CORRUPT, ERR_TIMEOUT };
#define ERR_KINDS 5
static const char *const err_names[ERR_KINDS] = {
    "connect", "reset", "short", "corrupt", "timeout",
};

struct opts {
    int port, conns;
    size_t size;
    double secs, warmup;
    enum mode mode;
};

struct conn {
    int fd; /* -1 once closed */
    unsigned id;
    uint64_t seq;  /* round trips started */
    int64_t start; /* when the current one started */
    size_t sent;   /* request bytes written */
    size_t got;    /* reply bytes received */
    size_t expect; /* reply length: SIZE, or from the http head; 0 unknown */
    char *head;    /* http: the response head, HEAD_MAX + 1 bytes */
};

struct gen {
    struct opts o;
    int epfd;
    int live; /* connections still open */
    struct conn *conns;
    char *pattern; /* SIZE + PATTERN_SPAN bytes */
    char *scratch;
    int64_t warm_end, end;
    uint64_t counted, counted_bytes;
    uint64_t errors[ERR_KINDS];
    uint64_t hist[HIST_BUCKETS];
};

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static unsigned bucket_of(uint64_t v)
{
    int e;

    if (v < 2 * SUB_COUNT)
        return v;
    e = 63 - __builtin_clzll(v);
    return (e - SUB_BITS) * SUB_COUNT + (v >> (e - SUB_BITS));
}

/* The middle of bucket i, in the unit the values were recorded in. */
static double bucket_value(unsigned i)
{
    int e = i / SUB_COUNT + SUB_BITS - 1;
    uint64_t low, width;

    if (i < 2 * SUB_COUNT)
        return i;
    width = 1ULL << (e - SUB_BITS);
    low = (uint64_t)(i % SUB_COUNT + SUB_COUNT) * width;
    return low + (width - 1) / 2.0;
}

static double percentile(const uint64_t *hist, uint64_t total, double q)
{
    uint64_t rank = (uint64_t)ceil(q * total), seen = 0;

    if (total == 0)
        return 0;
    if (rank == 0)
        rank = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen >= rank)
            return bucket_value(i);
    }
    return bucket_value(HIST_BUCKETS - 1);
}

static void fail(struct gen *g, struct conn *c, enum err_kind kind)
{
    g->errors[kind]++;
    close(c->fd);
    c->fd = -1;
    g->live--;
}

/* The request of c's current round trip. */
static const char *request_of(struct gen *g, struct conn *c, size_t *len)
{
    if (g->o.mode == MODE_HTTP) {
        *len = sizeof(http_request) - 1;
        return http_request;
    }
    *len = g->o.size;
    return g->pattern + (c->id + c->seq) % PATTERN_SPAN;
}

static enum err_kind kind_of(int err)
{
    return err == EPIPE || err == ECONNRESET ? ERR_RESET : ERR_CORRUPT;
}

/* Writes what the socket takes; the rest waits for EPOLLOUT. */
static int send_more(struct gen *g, struct conn *c)
{
    size_t len;
    const char *req = request_of(g, c, &len);
    ssize_t n;

    while (c->sent < len) {
        n = write(c->fd, req + c->sent, len - c->sent);
        if (n < 0)
            return errno == EAGAIN ? 0 : -errno;
        c->sent += n;
    }
    return 0;
}

static int start_round(struct gen *g, struct conn *c)
{
    c->seq++;
    c->start = now_ns();
    c->sent = c->got = 0;
    c->expect = g->o.mode == MODE_ECHO ? g->o.size : 0;
    return send_more(g, c);
}

static void finish_round(struct gen *g, struct conn *c)
{
    int64_t t = now_ns();

    if (t < g->warm_end || t >= g->end)
        return;
    g->counted++;
    g->counted_bytes += c->got;
    g->hist[bucket_of(t - c->start)]++;
}

/* Parses the head in c->head[0, len): sets c->expect, or fails. */
static int parse_head(struct conn *c, size_t len)
{
    const char *cl;
    char *end;
    unsigned long body;

    c->head[len] = '\0';
    if (strncmp(c->head, "HTTP/1.1 200 ", 13) != 0)
        return -EPROTO;
    cl = strcasestr(c->head, "\r\nContent-Length:");
    if (!cl)
        return -EPROTO;
    body = strtoul(cl + 17, &end, 10);
    if (end == cl + 17 || body > MAX_SIZE)
        return -EPROTO;
    c->expect = len + body;
    return 0;
}

/* Copies reply bytes into the head until it is complete, then parses it. */
static int take_head(struct conn *c, const char *p, size_t n)
{
    size_t have = c->got < HEAD_MAX ? c->got : HEAD_MAX;
    size_t copy = n < HEAD_MAX - have ? n : HEAD_MAX - have;
    char *hit;

    memcpy(c->head + have, p, copy);
    hit = memmem(c->head, have + copy, "\r\n\r\n", 4);
    if (hit)
        return parse_head(c, hit + 4 - c->head);
    return have + copy == HEAD_MAX ? -EPROTO : 0;
}

/* Takes n reply bytes: 1 when the reply is complete, 0 for more, or -errno. */
static int take_reply(struct gen *g, struct conn *c, const char *p, size_t n)
{
    size_t len;
    const char *req;
    int ret;

    if (g->o.mode == MODE_HTTP && c->expect == 0) {
        ret = take_head(c, p, n);
        if (ret < 0)
            return ret;
    } else if (g->o.mode == MODE_ECHO) {
        req = request_of(g, c, &len);
        if (c->got + n > len || memcmp(p, req + c->got, n) != 0)
            return -EPROTO;
    }
    c->got += n;
    if (c->expect && c->got > c->expect)
        return -EPROTO;
    return c->expect && c->got == c->expect;
}

static void read_replies(struct gen *g, struct conn *c)
{
    ssize_t n;
    int ret;

    do {
        n = read(c->fd, g->scratch, SCRATCH_SIZE);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            fail(g, c, n == 0 ? ERR_SHORT : kind_of(errno));
            return;
        }
        ret = take_reply(g, c, g->scratch, n);
        if (ret == 1) {
            finish_round(g, c);
            ret = start_round(g, c);
        }
        if (ret < 0) {
            fail(g, c, kind_of(-ret));
            return;
        }
    } while (n == SCRATCH_SIZE);
}

static void on_event(struct gen *g, struct conn *c, uint32_t events)
{
    int ret;

    if (events & EPOLLOUT) {
        ret = send_more(g, c);
        if (ret < 0) {
            fail(g, c, kind_of(-ret));
            return;
        }
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        read_replies(g, c);
}

static void check_timeouts(struct gen *g, int64_t now)
{
    for (int i = 0; i < g->o.conns; i++) {
        struct conn *c = &g->conns[i];

        if (c->fd >= 0 && now - c->start > RTT_TIMEOUT_NS)
            fail(g, c, ERR_TIMEOUT);
    }
}

static int wait_ms(int64_t now, int64_t end)
{
    int64_t ms = (end - now + NS_PER_MS - 1) / NS_PER_MS;

    return ms < 100 ? (int)ms : 100;
}

static void run(struct gen *g)
{
    struct epoll_event ev[MAX_EVENTS];
    int64_t now = now_ns(), next_check = now + CHECK_EVERY_NS;
    int i, n;

    while (g->live > 0 && now < g->end) {
        n = epoll_wait(g->epfd, ev, MAX_EVENTS, wait_ms(now, g->end));
        for (i = 0; i < n; i++)
            on_event(g, ev[i].data.ptr, ev[i].events);
        now = now_ns();
        if (now >= next_check) {
            check_timeouts(g, now);
            next_check = now + CHECK_EVERY_NS;
        }
    }
}

/* Waits until a non-blocking connect ends or the deadline passes. */
static int wait_connected(int fd, int64_t deadline)
{
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    int64_t left_ms = (deadline - now_ns()) / NS_PER_MS;
    socklen_t len = sizeof(int);
    int err, n;

    n = poll(&p, 1, left_ms > 0 ? (int)left_ms : 0);
    if (n == 0)
        return -ETIMEDOUT;
    if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    return -err;
}

static int try_connect(int port, int64_t deadline)
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
    ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    if (ret < 0 && errno != EINPROGRESS) {
        ret = -errno;
        goto out_close;
    }
    ret = ret < 0 ? wait_connected(fd, deadline) : 0;
    if (ret < 0)
        goto out_close;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;

out_close:
    close(fd);
    return ret;
}

/* Retries refused connects until retry_until: the server may be starting. */
static int connect_one(int port, int64_t retry_until, int64_t give_up)
{
    struct timespec pause = { 0, 10 * NS_PER_MS };
    int ret;

    for (;;) {
        ret = try_connect(port, give_up);
        if (ret != -ECONNREFUSED || now_ns() >= retry_until)
            return ret;
        nanosleep(&pause, NULL);
    }
}

static int add_conn(struct gen *g, struct conn *c, int fd)
{
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLET,
        .data.ptr = c,
    };

    if (epoll_ctl(g->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    c->fd = fd;
    g->live++;
    return 0;
}

/* Opens every connection; returns the last failure when none opened. */
static int open_conns(struct gen *g)
{
    int64_t t0 = now_ns();
    int i, fd, ret = 0;

    for (i = 0; i < g->o.conns; i++) {
        fd = connect_one(g->o.port, t0 + CONNECT_RETRY_NS,
                         t0 + CONNECT_GIVE_UP_NS);
        if (fd >= 0 && (ret = add_conn(g, &g->conns[i], fd)) < 0)
            close(fd);
        if (fd < 0)
            ret = fd;
        if (fd < 0 || ret < 0)
            g->errors[ERR_CONNECT]++;
    }
    return g->live > 0 ? 0 : ret;
}

static void start_all(struct gen *g)
{
    int64_t t0 = now_ns();
    int ret;

    g->warm_end = t0 + (int64_t)(g->o.warmup * NS_PER_SEC);
    g->end = g->warm_end + (int64_t)(g->o.secs * NS_PER_SEC);
    for (int i = 0; i < g->o.conns; i++) {
        struct conn *c = &g->conns[i];

        if (c->fd < 0)
            continue;
        ret = start_round(g, c);
        if (ret < 0)
            fail(g, c, kind_of(-ret));
    }
}

static uint64_t error_count(const struct gen *g)
{
    uint64_t n = 0;

    for (int k = 0; k < ERR_KINDS; k++)
        n += g->errors[k];
    return n;
}

static void report(const struct gen *g)
{
    double secs = g->o.secs;
    uint64_t errors = error_count(g);

    printf("RESULT rtt_per_s=%.1f mbps=%.3f p50_us=%.2f p99_us=%.2f "
           "p999_us=%.2f errors=%llu\n",
           g->counted / secs, g->counted_bytes / secs / 1e6,
           percentile(g->hist, g->counted, 0.50) / 1e3,
           percentile(g->hist, g->counted, 0.99) / 1e3,
           percentile(g->hist, g->counted, 0.999) / 1e3,
           (unsigned long long)errors);
    if (!errors)
        return;
    fprintf(stderr, "bench_loadgen: errors:");
    for (int k = 0; k < ERR_KINDS; k++)
        fprintf(stderr, " %s=%llu", err_names[k],
                (unsigned long long)g->errors[k]);
    fprintf(stderr, "\n");
}

static bool parse_long(const char *s, long min, long max, long *v)
{
    char *end;

    errno = 0;
    *v = strtol(s, &end, 10);
    return *s && !*end && !errno && *v >= min && *v <= max;
}

static bool parse_secs(const char *s, double min, double *v)
{
    char *end;

    *v = strtod(s, &end);
    return *s && !*end && isfinite(*v) && *v >= min && *v <= 1e6;
}

static bool parse_opt(struct opts *o, int opt, const char *arg)
{
    long v = 0;
    bool ok;

    switch (opt) {
    case 'p':
        ok = parse_long(arg, 1, 65535, &v);
        o->port = v;
        return ok;
    case 'c':
        ok = parse_long(arg, 1, MAX_CONNS, &v);
        o->conns = v;
        return ok;
    case 's':
        ok = parse_long(arg, 1, MAX_SIZE, &v);
        o->size = v;
        return ok;
    case 'd':
        return parse_secs(arg, 0.001, &o->secs);
    case 'w':
        return parse_secs(arg, 0, &o->warmup);
    case 'm':
        o->mode = strcmp(arg, "http") == 0 ? MODE_HTTP : MODE_ECHO;
        return strcmp(arg, "http") == 0 || strcmp(arg, "echo") == 0;
    }
    return false;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    int opt;

    *o = (struct opts){ .conns = 50, .size = 64, .secs = 10, .warmup = 2 };
    while ((opt = getopt(argc, argv, "p:c:s:d:w:m:")) != -1)
        if (!parse_opt(o, opt, optarg))
            return -EINVAL;
    return optind == argc && o->port ? 0 : -EINVAL;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_loadgen -p PORT [-c CONNS] [-s SIZE] [-d SECS]\n"
            "                     [-w WARMUP] [-m echo|http]\n"
            "  -p PORT    server port on 127.0.0.1 (required)\n"
            "  -c CONNS   connections, 1..%d (default 50)\n"
            "  -s SIZE    echo message bytes, 1..%d (default 64)\n"
            "  -d SECS    measured seconds (default 10)\n"
            "  -w WARMUP  warm-up seconds, not measured (default 2)\n"
            "  -m MODE    echo (default) or http\n",
            MAX_CONNS, MAX_SIZE);
}

/* Many connections and one fd each: lift the soft limit to the hard one. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Bytes 0..250 repeating: a window's content depends on its offset. */
static int gen_init(struct gen *g)
{
    size_t len = g->o.size + PATTERN_SPAN;

    g->epfd = epoll_create1(EPOLL_CLOEXEC);
    g->conns = calloc(g->o.conns, sizeof(*g->conns));
    g->pattern = malloc(len);
    g->scratch = malloc(SCRATCH_SIZE);
    if (g->epfd < 0 || !g->conns || !g->pattern || !g->scratch)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++)
        g->pattern[i] = (char)(i % PATTERN_SPAN);
    for (int i = 0; i < g->o.conns; i++) {
        g->conns[i].fd = -1;
        g->conns[i].id = i;
        if (g->o.mode == MODE_HTTP) {
            g->conns[i].head = malloc(HEAD_MAX + 1);
            if (!g->conns[i].head)
                return -ENOMEM;
        }
    }
    return 0;
}

static void gen_fini(struct gen *g)
{
    for (int i = 0; i < g->o.conns; i++) {
        if (g->conns[i].fd >= 0)
            close(g->conns[i].fd);
        free(g->conns[i].head);
    }
    free(g->conns);
    free(g->pattern);
    free(g->scratch);
    close(g->epfd);
}

int main(int argc, char **argv)
{
    static struct gen g;
    int ret;

    if (parse_opts(argc, argv, &g.o) < 0) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    if (gen_init(&g) < 0) {
        fprintf(stderr, "bench_loadgen: out of memory\n");
        return 1;
    }
    ret = open_conns(&g);
    if (ret < 0) {
        fprintf(stderr, "bench_loadgen: cannot connect to 127.0.0.1:%d: %s\n",
                g.o.port, strerror(-ret));
        gen_fini(&g);
        return 1;
    }
    start_all(&g);
    run(&g);
    report(&g);
    gen_fini(&g);
    return 0;
}
