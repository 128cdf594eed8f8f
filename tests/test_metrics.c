/*
 * weft_metrics and weft_metrics_format: exact counts after deterministic
 * workloads (tasks spawned, finished and alive; timers armed; I/O
 * submitted, completed and in flight), the sampled histograms, the stall
 * counter, the sized struct's contract, and the Prometheus text.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"
#include "runtime/metrics.h"

static weft_metrics_t t_metrics(void)
{
    weft_metrics_t m = { .size = sizeof(m) };

    cr_assert_eq(weft_metrics(NULL, &m), 0);
    return m;
}

static uint64_t t_hist_sum(const uint64_t *h)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < WEFT_METRICS_BUCKETS; i++)
        n += h[i];
    return n;
}

/* ---- tasks --------------------------------------------------------------- */

#define NTASKS 100

static int ret_zero(void *arg)
{
    (void)arg;
    return 0;
}

static int spawned_finished_alive(void *arg)
{
    weft_task_t *h[NTASKS];
    weft_metrics_t a, b;

    (void)arg;
    a = t_metrics();
    /* The main task alone: spawned from the caller's thread. */
    cr_assert_eq(a.tasks_alive, 1);
    cr_assert_eq(a.tasks_spawned, 1);
    cr_assert_eq(a.tasks_finished, 0);
    for (int i = 0; i < NTASKS; i++)
        cr_assert_eq(weft_spawn(&h[i], ret_zero, NULL), 0);
    for (int i = 0; i < NTASKS; i++)
        cr_assert_eq(weft_join(h[i]), 0);
    b = t_metrics();
    cr_assert_eq(b.tasks_spawned - a.tasks_spawned, NTASKS);
    cr_assert_eq(b.tasks_finished - a.tasks_finished, NTASKS);
    cr_assert_eq(b.tasks_alive, 1);
    cr_assert_geq(b.runs - a.runs, NTASKS);
    cr_assert_eq(b.workers, t_workers());
    return 0;
}

Test(metrics, spawned_finished_alive, .timeout = 60)
{
    t_run(spawned_finished_alive, NULL);
}

/* A task that spawns two children of depth - 1 and joins them: most joins
 * run their child inline, on the joiner's stack. */
static int tree(void *arg)
{
    intptr_t depth = (intptr_t)arg;
    weft_task_t *h[2];

    if (depth == 0)
        return 0;
    for (int i = 0; i < 2; i++)
        if (weft_spawn(&h[i], tree, (void *)(depth - 1)) < 0)
            return -EIO;
    for (int i = 0; i < 2; i++)
        if (weft_join(h[i]) < 0)
            return -EIO;
    return 0;
}

#define TREE_DEPTH 10 /* 2^11 - 2 tasks below the root */

static int joined_tree(void *arg)
{
    weft_metrics_t a, b;

    (void)arg;
    a = t_metrics();
    cr_assert_eq(tree((void *)(intptr_t)TREE_DEPTH), 0);
    b = t_metrics();
    cr_assert_eq(b.tasks_spawned - a.tasks_spawned, (2u << TREE_DEPTH) - 2);
    cr_assert_eq(b.tasks_finished - a.tasks_finished,
                 (2u << TREE_DEPTH) - 2);
    cr_assert_eq(b.tasks_alive, 1);
    /* Inline runs are runs: every task ran at least once. */
    cr_assert_geq(b.runs - a.runs, (2u << TREE_DEPTH) - 2);
    return 0;
}

Test(metrics, joined_tree_counts_inline_runs, .timeout = 60)
{
    t_run(joined_tree, NULL);
}

/* ---- timers -------------------------------------------------------------- */

#define NSLEEPERS 10

static int sleep_long(void *arg)
{
    (void)arg;
    return weft_sleep_ms(600000);
}

static int timers_armed(void *arg)
{
    weft_task_t *h[NSLEEPERS];
    weft_metrics_t m;

    (void)arg;
    cr_assert_eq(t_metrics().timers_armed, 0);
    for (int i = 0; i < NSLEEPERS; i++)
        cr_assert_eq(weft_spawn(&h[i], sleep_long, NULL), 0);
    for (int i = 0; i < NSLEEPERS; i++)
        t_until_parked_in(h[i], WHY_SLEEP);
    m = t_metrics();
    cr_assert_eq(m.timers_armed, NSLEEPERS);
    cr_assert_eq(m.tasks_alive, NSLEEPERS + 1);
    for (int i = 0; i < NSLEEPERS; i++)
        cr_assert_eq(weft_cancel(h[i]), 0);
    for (int i = 0; i < NSLEEPERS; i++)
        cr_assert_eq(weft_join(h[i]), -ECANCELED);
    m = t_metrics();
    cr_assert_eq(m.timers_armed, 0);
    cr_assert_eq(m.tasks_alive, 1);
    return 0;
}

Test(metrics, timers_armed, .timeout = 60)
{
    t_run(timers_armed, NULL);
}

/* ---- I/O ----------------------------------------------------------------- */

#define ROUNDS 50

struct pair {
    int fd[2];
};

static int recv_one(void *arg)
{
    struct pair *p = arg;
    char c;

    return weft_recv(p->fd[1], &c, 1, 0, WEFT_NO_DEADLINE) == 1 ? 0 : -EIO;
}

static int io_counts(void *arg)
{
    struct pair p;
    weft_task_t *h;
    weft_metrics_t a, b;
    char c = 'x';

    (void)arg;
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p.fd), 0);
    a = t_metrics();
    cr_assert_eq(a.io_in_flight, 0);
    for (int i = 0; i < ROUNDS; i++) {
        cr_assert_eq(weft_send(p.fd[0], &c, 1, 0, WEFT_NO_DEADLINE), 1);
        cr_assert_eq(weft_recv(p.fd[1], &c, 1, 0, WEFT_NO_DEADLINE), 1);
    }
    b = t_metrics();
    cr_assert_eq(b.io_submitted - a.io_submitted, 2 * ROUNDS);
    cr_assert_eq(b.io_completed - a.io_completed, 2 * ROUNDS);
    cr_assert_eq(b.io_in_flight, 0);

    /* A receive that waits is in flight until the byte comes. */
    cr_assert_eq(weft_spawn(&h, recv_one, &p), 0);
    t_until_parked_in(h, WHY_IO);
    b = t_metrics();
    cr_assert_eq(b.io_in_flight, 1);
    cr_assert_eq(weft_send(p.fd[0], &c, 1, 0, WEFT_NO_DEADLINE), 1);
    cr_assert_eq(weft_join(h), 0);
    b = t_metrics();
    cr_assert_eq(b.io_in_flight, 0);
    cr_assert_eq(b.io_submitted - a.io_submitted, 2 * ROUNDS + 2);
    /* The wait for the byte entered the kernel (a submit and a wait). */
    cr_assert_gt(b.kernel_entries, a.kernel_entries);
    close(p.fd[0]);
    close(p.fd[1]);
    return 0;
}

Test(metrics, io_submitted_completed_in_flight, .timeout = 60)
{
    t_run(io_counts, NULL);
}

/* ---- per worker and histograms ------------------------------------------- */

#define PINGS 30000

static int ponger(void *arg)
{
    weft_queue_t *q = arg;
    void *item;

    for (int i = 0; i < PINGS; i++)
        if (weft_queue_get(&q[0], &item, WEFT_NO_DEADLINE) < 0 ||
            weft_queue_put(&q[1], item, WEFT_NO_DEADLINE) < 0)
            return -EIO;
    return 0;
}

static int sums_and_histograms(void *arg)
{
    weft_worker_metrics_t w[64];
    weft_metrics_t m = { .size = sizeof(m), .per_worker = w,
                         .per_worker_len = 64,
                         .per_worker_size = sizeof(w[0]) };
    weft_queue_t q[2];
    weft_task_t *h;
    uint64_t runs = 0, spawned = 0, wakes = 0;
    void *item;

    (void)arg;
    cr_assert_eq(weft_queue_init(&q[0], 1, 0), 0);
    cr_assert_eq(weft_queue_init(&q[1], 1, 0), 0);
    cr_assert_eq(weft_spawn(&h, ponger, q), 0);
    for (int i = 0; i < PINGS; i++) {
        cr_assert_eq(weft_queue_put(&q[0], &q, WEFT_NO_DEADLINE), 0);
        cr_assert_eq(weft_queue_get(&q[1], &item, WEFT_NO_DEADLINE), 0);
    }
    cr_assert_eq(weft_join(h), 0);
    cr_assert_eq(weft_metrics(NULL, &m), 0);
    cr_assert_eq(m.per_worker_len, t_workers());
    for (unsigned i = 0; i < m.per_worker_len; i++) {
        runs += w[i].runs;
        spawned += w[i].spawned;
        wakes += w[i].wakes;
    }
    /* No task ran or spawned meanwhile: the shares add up to the totals. */
    cr_assert_eq(runs, m.runs);
    cr_assert_eq(spawned + 1, m.tasks_spawned); /* + main, from outside */
    cr_assert_eq(wakes, m.wakes_local);
    cr_assert_geq(m.wakes_local, PINGS);
    /* Each worker times the run after one poll in RUN_SAMPLE_POLLS (it
     * polls every POLL_INTERVAL runs; the last marked run may be yet to
     * come) and one of its wakes in WAKE_SAMPLE, whose runs all came. */
    cr_assert_geq(t_hist_sum(m.run_time_hist) + 2 * m.workers,
                  m.runs / (WEFT__POLL_INTERVAL * WEFT__RUN_SAMPLE_POLLS));
    cr_assert_leq(t_hist_sum(m.run_time_hist), m.runs);
    cr_assert_geq(t_hist_sum(m.sched_delay_hist) + m.workers,
                  m.wakes_local / WEFT__WAKE_SAMPLE);
    cr_assert_leq(t_hist_sum(m.sched_delay_hist),
                  m.wakes_local + m.wakes_remote);
    cr_assert_eq(weft_queue_destroy(&q[0]), 0);
    cr_assert_eq(weft_queue_destroy(&q[1]), 0);
    return 0;
}

Test(metrics, per_worker_sums_and_sampled_histograms, .timeout = 60)
{
    t_run(sums_and_histograms, NULL);
}

/* ---- stalls, from another thread ----------------------------------------- */

static atomic_bool release_spinner;

static int spin(void *arg)
{
    (void)arg;
    while (!atomic_load(&release_spinner))
        ;
    return 0;
}

Test(metrics, stalls_seen_from_another_thread, .timeout = 120)
{
    weft_config_t cfg;
    weft_runtime_t *rt;
    weft_metrics_t m = { .size = sizeof(m) };

    weft_config_init(&cfg);
    cfg.stall_ms = 10;
    cr_assert_eq(weft_runtime_new(&cfg, &rt), 0);
    cr_assert_eq(weft_spawn_from(rt, NULL, spin, NULL), 0);
    do {
        cr_assert_eq(weft_metrics(rt, &m), 0);
        if (!m.stalls)
            usleep(1000);
    } while (!m.stalls);
    atomic_store(&release_spinner, true);
    cr_assert_eq(m.stalls, 1);
    cr_assert_eq(weft_runtime_free(rt), 0);
}

/* ---- the call's contract ------------------------------------------------- */

static int sizes(void *arg)
{
    size_t old = offsetof(weft_metrics_t, sched_delay_hist);
    union {
        weft_metrics_t m;
        unsigned char b[sizeof(weft_metrics_t)];
    } u;

    (void)arg;
    /* A caller that knows the fields up to .stalls only: nothing past them
     * is written. */
    memset(&u, 0xa5, sizeof(u));
    u.m.size = old;
    cr_assert_eq(weft_metrics(NULL, &u.m), 0);
    cr_assert_eq(u.m.tasks_alive, 1);
    for (size_t i = old; i < sizeof(u); i++)
        cr_assert_eq(u.b[i], 0xa5, "byte %zu written", i);
    u.m.size = old - 1;
    cr_assert_eq(weft_metrics(NULL, &u.m), -EINVAL);
    cr_assert_eq(weft_metrics(NULL, NULL), -EINVAL);
    u.m = (weft_metrics_t){ .size = sizeof(u.m), .per_worker = (void *)&u,
                            .per_worker_len = 1 };
    cr_assert_eq(weft_metrics(NULL, &u.m), -EINVAL); /* no entry size */
    return 0;
}

Test(metrics, sized_struct_and_errors, .timeout = 60)
{
    weft_metrics_t m = { .size = sizeof(m) };
    weft_runtime_t *rt;

    t_run(sizes, NULL);
    cr_assert_eq(weft_metrics(NULL, &m), -EPERM);
    cr_assert_eq(weft_runtime_new(NULL, &rt), 0);
    cr_assert_eq(weft_metrics(rt, &m), 0);
    cr_assert_eq(m.workers, t_workers());
    cr_assert_eq(weft_runtime_free(rt), 0);
    cr_assert_eq(weft_metrics(rt, &m), -ESHUTDOWN);
}

/* ---- Prometheus text ----------------------------------------------------- */

/* The value of the sample line `name value` in text, or -1. */
static long long sample(const char *text, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = text; (p = strstr(p, name)); p += n)
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return atoll(p + n + 1);
    return -1;
}

static int exposition(void *arg)
{
    weft_worker_metrics_t w[64];
    weft_metrics_t m = { .size = sizeof(m), .per_worker = w,
                         .per_worker_len = 64,
                         .per_worker_size = sizeof(w[0]) };
    char *buf = malloc(1 << 16), small[300];
    weft_task_t *h;
    int len;

    (void)arg;
    cr_assert_eq(weft_spawn(&h, sleep_long, NULL), 0);
    t_until_parked_in(h, WHY_SLEEP);
    cr_assert_eq(weft_metrics(NULL, &m), 0);
    len = weft_metrics_format(&m, buf, 1 << 16);
    cr_assert_gt(len, 0);
    cr_assert_eq((size_t)len, strlen(buf));
    cr_assert_eq(sample(buf, "weft_tasks_alive"), 2);
    cr_assert_eq(sample(buf, "weft_tasks_spawned_total"),
                 (long long)m.tasks_spawned);
    cr_assert_eq(sample(buf, "weft_timers_armed"), 1);
    cr_assert_eq(sample(buf, "weft_stalls_total"), (long long)m.stalls);
    cr_assert_not_null(strstr(buf, "# TYPE weft_run_time_seconds histogram\n"));
    cr_assert_eq(sample(buf, "weft_run_time_seconds_count"),
                 (long long)t_hist_sum(m.run_time_hist));
    cr_assert_eq(sample(buf, "weft_run_time_seconds_bucket{le=\"+Inf\"}"),
                 (long long)t_hist_sum(m.run_time_hist));
    cr_assert_eq(sample(buf, "weft_worker_runs_total{worker=\"0\"}"),
                 (long long)w[0].runs);
    /* Too small: whole lines only, and an error. */
    cr_assert_eq(weft_metrics_format(&m, small, sizeof(small)), -ENOBUFS);
    cr_assert_lt(strlen(small), sizeof(small));
    cr_assert(strlen(small) == 0 || small[strlen(small) - 1] == '\n');
    cr_assert_eq(weft_metrics_format(NULL, small, sizeof(small)), -EINVAL);
    cr_assert_eq(weft_metrics_format(&m, small, 0), -EINVAL);
    cr_assert_eq(weft_cancel(h), 0);
    cr_assert_eq(weft_join(h), -ECANCELED);
    free(buf);
    return 0;
}

Test(metrics, prometheus_text, .timeout = 60)
{
    t_run(exposition, NULL);
}
