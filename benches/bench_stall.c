/*
 * T1 (../shared workloads): what one stuck worker costs the rest. Two
 * workers; after a warm-up, one task spins for 2 s without a suspension
 * point, spawning one task as it starts. Meanwhile 50 tasks loop on 10 ms
 * sleeps and 50 connections do back-to-back 64-byte echo round trips
 * (clients and server in the same runtime). Prints the worst lateness of
 * a sleep, the worst round trip and the spawned task's start delay over
 * the measured window, in milliseconds:
 *
 *   RESULT workload=T1 workers=2 io=uring stall_ms=10 timer_late_max_ms=..
 *          rtt_max_ms=.. spawn_delay_ms=.. rtt_count=..
 *
 * Run it with WEFT_STALL_MS=0 for the figures without the stall monitor.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <weft.h>

#define NSLEEPERS 50
#define NCLIENTS 50
#define SPIN_NS (2 * (int64_t)1000000000)
#define WARMUP_MS 300
#define MSG 64

struct bench {
    uint16_t port;
    atomic_bool stop, measuring;
    _Atomic int64_t timer_late_max, rtt_max, spawn_delay, spawned_at;
    _Atomic uint64_t rtts;
};

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void note_max(_Atomic int64_t *m, int64_t v)
{
    int64_t cur = atomic_load(m);

    while (v > cur && !atomic_compare_exchange_weak(m, &cur, v))
        ;
}

static int sleeper(void *arg)
{
    struct bench *b = arg;

    while (!atomic_load(&b->stop)) {
        int64_t due = weft_now_ns() + 10 * 1000000;

        if (weft_sleep_until(due) < 0)
            return -1;
        if (atomic_load(&b->measuring))
            note_max(&b->timer_late_max, weft_now_ns() - due);
    }
    return 0;
}

static int echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[MSG];
    ssize_t n;

    while ((n = weft_read_exact(fd, buf, sizeof(buf), WEFT_NO_DEADLINE)) ==
           MSG)
        if (weft_write_all(fd, buf, MSG, WEFT_NO_DEADLINE) != MSG)
            break;
    weft_close(fd);
    return 0;
}

static int server(void *arg)
{
    int lfd = (int)(intptr_t)arg, one = 1;

    for (;;) {
        int fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, WEFT_NO_DEADLINE);

        if (fd < 0)
            return fd == -ECANCELED ? 0 : fd;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (weft_spawn(NULL, echo_conn, (void *)(intptr_t)fd) < 0)
            weft_close(fd);
    }
}

static int client(void *arg)
{
    struct bench *b = arg;
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons(b->port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    char buf[MSG] = { 0 };

    if (fd < 0 || weft_connect(fd, (struct sockaddr *)&sa, sizeof(sa),
                               weft_deadline_in_ms(5000)) < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    while (!atomic_load(&b->stop)) {
        int64_t t0 = weft_now_ns();

        if (weft_write_all(fd, buf, MSG, WEFT_NO_DEADLINE) != MSG ||
            weft_read_exact(fd, buf, MSG, WEFT_NO_DEADLINE) != MSG)
            return -1;
        if (atomic_load(&b->measuring)) {
            note_max(&b->rtt_max, weft_now_ns() - t0);
            atomic_fetch_add(&b->rtts, 1);
        }
    }
    weft_close(fd);
    return 0;
}

static int spawned(void *arg)
{
    struct bench *b = arg;

    atomic_store(&b->spawn_delay, weft_now_ns() - atomic_load(&b->spawned_at));
    return 0;
}

static int spinner(void *arg)
{
    struct bench *b = arg;
    int64_t end;

    atomic_store(&b->spawned_at, weft_now_ns());
    if (weft_spawn(NULL, spawned, b) < 0)
        return -1;
    end = mono_ns() + SPIN_NS;
    while (mono_ns() < end)
        ;
    return 0;
}

static int bench_main(void *arg)
{
    struct bench *b = arg;
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    weft_task_t *srv, *spin;
    weft_group_t g;
    int ret;

    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(lfd, 1024) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) < 0)
        return -errno;
    b->port = ntohs(sa.sin_port);
    if ((ret = weft_spawn(&srv, server, (void *)(intptr_t)lfd)) < 0 ||
        (ret = weft_group_init(&g)) < 0)
        return ret;
    for (int i = 0; i < NSLEEPERS; i++)
        weft_group_spawn(&g, sleeper, b, NULL);
    for (int i = 0; i < NCLIENTS; i++)
        weft_group_spawn(&g, client, b, NULL);
    weft_sleep_ms(WARMUP_MS);
    atomic_store(&b->measuring, true);
    if ((ret = weft_spawn(&spin, spinner, b)) < 0)
        return ret;
    weft_join(spin);
    weft_sleep_ms(50);
    atomic_store(&b->stop, true);
    ret = weft_group_wait(&g);
    weft_group_destroy(&g);
    weft_cancel(srv);
    weft_join(srv);
    weft_close(lfd);
    return ret;
}

int main(void)
{
    struct bench b = { 0 };
    const char *io = getenv("WEFT_IO"), *stall = getenv("WEFT_STALL_MS");
    weft_config_t cfg;
    int ret;

    weft_config_init(&cfg);
    cfg.workers = 2;
    ret = weft_run_with(&cfg, bench_main, &b);
    if (ret < 0) {
        fprintf(stderr, "bench_stall: %s\n", strerror(-ret));
        return 1;
    }
    printf("RESULT workload=T1 workers=2 io=%s stall_ms=%s "
           "timer_late_max_ms=%.2f rtt_max_ms=%.2f spawn_delay_ms=%.2f "
           "rtt_count=%llu\n",
           io ? io : "auto", stall ? stall : "10",
           atomic_load(&b.timer_late_max) / 1e6, atomic_load(&b.rtt_max) / 1e6,
           atomic_load(&b.spawn_delay) / 1e6,
           (unsigned long long)atomic_load(&b.rtts));
    return 0;
}
