/*
 * The blocking pool: weft_blocking results, an event loop that keeps ticking
 * beside a CPU-bound job, growth to the limit and retirement after the
 * keepalive, FIFO order, cancellation before and during a job, and DNS.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "runtime/blocking.h"
#include "runtime/task.h"
#include "runtime/runtime.h"

static void t_pool_stats(struct weft__blocking_stats *st)
{
    weft__blocking_stats(&weft__task_current()->rt->pool, st);
}

/* A gate that pool jobs wait at (pool threads may block; tasks may not). */
static void t_gate_wait(atomic_bool *gate)
{
    while (!atomic_load(gate))
        usleep(500);
}

static int return_arg(void *arg)
{
    return (int)(intptr_t)arg;
}

static int results(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_blocking(return_arg, (void *)(intptr_t)42), 42);
    cr_assert_eq(weft_blocking(return_arg, (void *)(intptr_t)-EIO), -EIO);
    cr_assert_eq(weft_blocking(NULL, NULL), -EINVAL);
    return 0;
}

Test(blocking, returns_the_functions_status, .timeout = 10)
{
    cr_assert_eq(weft_blocking(return_arg, NULL), -EPERM);
    t_run(results, NULL);
}

/* ---- the event loop keeps ticking ---------------------------------------- */

/* How late timers fire while the pool is busy is a figure, not a pass or
 * fail: benches/bench_toolkit.c measures it (workload B1). */

struct ticker {
    atomic_bool stop;
    atomic_uint ticks;
};

static int tick(void *arg)
{
    struct ticker *tk = arg;

    while (!atomic_load(&tk->stop)) {
        cr_assert_eq(weft_sleep_ms(1), 0);
        atomic_fetch_add(&tk->ticks, 1);
    }
    return 0;
}

/* A CPU-bound job that ends only after the ticker, a task on the caller's
 * worker, has ticked 20 times while it ran: if the job held that worker,
 * the ticker could not tick and the test would time out. */
static int spin_until_20_ticks(void *arg)
{
    struct ticker *tk = arg;
    unsigned start = atomic_load(&tk->ticks);
    volatile uint64_t x = 0;

    while (atomic_load(&tk->ticks) < start + 20)
        x++;
    return weft_self() ? -EPROTO : 0; /* it ran outside any task */
}

static int cpu_job_beside_ticker(void *arg)
{
    struct ticker tk = { .stop = false };
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_spawn(&t, tick, &tk), 0);
    t_until_parked_in(t, WHY_SLEEP);
    cr_assert_eq(weft_blocking(spin_until_20_ticks, &tk), 0);
    atomic_store(&tk.stop, true);
    cr_assert_eq(weft_join(t), 0);
    return 0;
}

Test(blocking, cpu_bound_job_does_not_stall_the_worker, .timeout = 20)
{
    /* One worker: the ticker can only tick where the caller runs. */
    t_run_one_worker(cpu_job_beside_ticker, NULL);
}

/* ---- growth and retirement ------------------------------------------------ */

struct gated {
    atomic_bool gate;
    atomic_int running, ran;
};

static int gated_job(void *arg)
{
    struct gated *g = arg;

    atomic_fetch_add(&g->running, 1);
    t_gate_wait(&g->gate);
    atomic_fetch_sub(&g->running, 1);
    atomic_fetch_add(&g->ran, 1);
    return 0;
}

static int submit_gated(void *arg)
{
    return weft_blocking(gated_job, arg);
}

static int grow_and_shrink(void *arg)
{
    enum { LIMIT = 4, TASKS = 8 };
    struct gated g = { .gate = false };
    struct weft__blocking_stats st;
    weft_task_t *t[TASKS];

    (void)arg;
    for (int i = 0; i < TASKS; i++)
        cr_assert_eq(weft_spawn(&t[i], submit_gated, &g), 0);
    do {
        cr_assert_eq(weft_sleep_ms(1), 0);
        t_pool_stats(&st);
    } while (atomic_load(&g.running) < LIMIT || st.queued < TASKS - LIMIT);
    cr_assert_eq(st.threads, LIMIT);
    cr_assert_eq(st.peak, LIMIT);
    atomic_store(&g.gate, true);
    for (int i = 0; i < TASKS; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    cr_assert_eq(atomic_load(&g.ran), TASKS);
    do { /* the keepalive is 20 ms; the test's timeout bounds this */
        cr_assert_eq(weft_sleep_ms(5), 0);
        t_pool_stats(&st);
    } while (st.threads > 0);
    cr_assert_eq(st.peak, LIMIT);
    return 0;
}

Test(blocking, pool_grows_to_the_limit_and_shrinks_after_keepalive,
     .timeout = 20)
{
    weft_config_t cfg = { .blocking_threads = 4,
                          .blocking_keepalive_ms = 20 };

    t_run_with(&cfg, grow_and_shrink, NULL);
}

/* ---- many jobs, few threads ------------------------------------------------ */

enum { SUBMITTERS = 16, JOBS_EACH = 25 };

struct submitter {
    atomic_int runs[JOBS_EACH]; /* times job j ran */
    atomic_bool in_job;
};

struct job {
    struct submitter *s;
    int j;
};

static int run_job_once(void *arg)
{
    struct job *job = arg;

    cr_assert(!atomic_exchange(&job->s->in_job, true),
              "a submitter's jobs overlapped");
    atomic_fetch_add(&job->s->runs[job->j], 1);
    atomic_store(&job->s->in_job, false);
    return job->j;
}

/* Each call returns only once its job has run, and with its status. */
static int submit_many(void *arg)
{
    struct submitter *s = arg;

    for (int j = 0; j < JOBS_EACH; j++) {
        struct job job = { .s = s, .j = j };

        cr_assert_eq(weft_blocking(run_job_once, &job), j);
        cr_assert_eq(atomic_load(&s->runs[j]), 1, "job %d", j);
        cr_assert(!atomic_load(&s->in_job), "returned while its job ran");
    }
    return 0;
}

static int many_jobs(void *arg)
{
    static struct submitter s[SUBMITTERS];
    weft_task_t *t[SUBMITTERS];
    struct weft__blocking_stats st;

    (void)arg;
    memset(s, 0, sizeof(s));
    for (int i = 0; i < SUBMITTERS; i++)
        cr_assert_eq(weft_spawn(&t[i], submit_many, &s[i]), 0);
    for (int i = 0; i < SUBMITTERS; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    /* Every job ran exactly once. */
    for (int i = 0; i < SUBMITTERS; i++)
        for (int j = 0; j < JOBS_EACH; j++)
            cr_assert_eq(atomic_load(&s[i].runs[j]), 1, "submitter %d job %d",
                         i, j);
    t_pool_stats(&st);
    cr_assert_leq(st.peak, 2);
    return 0;
}

Test(blocking, more_jobs_than_threads_each_run_once, .timeout = 30)
{
    weft_config_t cfg = { .blocking_threads = 2 };

    t_run_with(&cfg, many_jobs, NULL);
}

struct fifo {
    struct gated g;
    atomic_int order[10];
    atomic_int next;
};

struct fifo_job {
    struct fifo *f;
    int id;
};

static int log_order(void *arg)
{
    struct fifo_job *j = arg;

    atomic_store(&j->f->order[atomic_fetch_add(&j->f->next, 1)], j->id);
    return 0;
}

static int submit_logged(void *arg)
{
    return weft_blocking(log_order, arg);
}

static int fifo_order(void *arg)
{
    static struct fifo f;
    static struct fifo_job jobs[10];
    struct weft__blocking_stats st;
    weft_task_t *blocker, *t[10];

    (void)arg;
    memset(&f, 0, sizeof(f));
    cr_assert_eq(weft_spawn(&blocker, submit_gated, &f.g), 0);
    while (atomic_load(&f.g.running) == 0)
        cr_assert_eq(weft_sleep_ms(1), 0);
    for (int i = 0; i < 10; i++) {
        jobs[i] = (struct fifo_job){ .f = &f, .id = i };
        cr_assert_eq(weft_spawn(&t[i], submit_logged, &jobs[i]), 0);
        do {
            cr_assert_eq(weft_sleep_ms(1), 0);
            t_pool_stats(&st);
        } while (st.queued < (unsigned)i + 1);
    }
    atomic_store(&f.g.gate, true);
    cr_assert_eq(weft_join(blocker), 0);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(atomic_load(&f.order[i]), i);
    return 0;
}

Test(blocking, queued_jobs_run_in_fifo_order, .timeout = 20)
{
    weft_config_t cfg = { .blocking_threads = 1 };

    t_run_with(&cfg, fifo_order, NULL);
}

/* ---- cancellation ---------------------------------------------------------- */

static int set_flag(void *arg)
{
    atomic_store((atomic_bool *)arg, true);
    return 0;
}

static int submit_flag(void *arg)
{
    return weft_blocking(set_flag, arg);
}

static int cancel_queued(void *arg)
{
    struct gated g = { .gate = false };
    struct weft__blocking_stats st;
    atomic_bool ran = false;
    weft_task_t *blocker, *t;

    (void)arg;
    cr_assert_eq(weft_spawn(&blocker, submit_gated, &g), 0);
    while (atomic_load(&g.running) == 0)
        cr_assert_eq(weft_sleep_ms(1), 0);
    cr_assert_eq(weft_spawn(&t, submit_flag, &ran), 0);
    do {
        cr_assert_eq(weft_sleep_ms(1), 0);
        t_pool_stats(&st);
    } while (st.queued == 0);
    weft_cancel(t);
    cr_assert_eq(weft_join(t), -ECANCELED);
    t_pool_stats(&st);
    cr_assert_eq(st.queued, 0);
    atomic_store(&g.gate, true);
    cr_assert_eq(weft_join(blocker), 0);
    cr_assert_eq(weft_blocking(return_arg, NULL), 0); /* the pool drained */
    cr_assert(!atomic_load(&ran), "a withdrawn job ran");
    return 0;
}

Test(blocking, cancel_while_queued_never_runs_the_job, .timeout = 20)
{
    weft_config_t cfg = { .blocking_threads = 1 };

    t_run_with(&cfg, cancel_queued, NULL);
}

static int gated_7(void *arg)
{
    gated_job(arg);
    return 7;
}

/* The job's status comes back; the cancellation waits for the next
 * suspension point. */
static int submit_then_yield(void *arg)
{
    int ret = weft_blocking(gated_7, arg);

    cr_assert_eq(ret, 7);
    cr_assert_eq(weft_yield(), -ECANCELED);
    return 0;
}

static int cancel_running(void *arg)
{
    struct gated g = { .gate = false };
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_spawn(&t, submit_then_yield, &g), 0);
    while (atomic_load(&g.running) == 0)
        cr_assert_eq(weft_sleep_ms(1), 0);
    t_until_parked_in(t, WHY_BLOCKING);
    cr_assert_eq(weft_cancel(t), 0);
    /* The cancel woke it (it is no longer IDLE); it takes the request and,
     * the job being under way, waits on for it. */
    t_until_parked_in(t, WHY_BLOCKING);
    atomic_store(&g.gate, true);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(atomic_load(&g.ran), 1);
    return 0;
}

Test(blocking, cancel_while_running_waits_for_the_job, .timeout = 20)
{
    t_run(cancel_running, NULL);
}

/* ---- DNS ------------------------------------------------------------------- */

static bool is_loopback(const struct addrinfo *ai)
{
    if (ai->ai_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)ai->ai_addr;

        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (ai->ai_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)ai->ai_addr;

        return IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
    }
    return false;
}

static int resolve(void *arg)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;

    (void)arg;
    cr_assert_eq(weft_resolve("localhost", "80", &hints, &res), 0);
    cr_assert_not_null(res);
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        cr_assert(is_loopback(ai), "localhost resolved to family %d",
                  ai->ai_family);
    weft_resolve_free(res);
    hints.ai_flags = AI_NUMERICHOST;
    cr_assert_eq(weft_resolve("not an address", NULL, &hints, &res),
                 -ENOENT);
    cr_assert_null(res);
    cr_assert_eq(weft_resolve(NULL, NULL, NULL, &res), -EINVAL);
    cr_assert_eq(weft_resolve("localhost", NULL, NULL, NULL), -EINVAL);
    return 0;
}

Test(blocking, resolve_localhost, .timeout = 20)
{
    struct addrinfo *res;

    cr_assert_eq(weft_resolve("localhost", NULL, NULL, &res), -EPERM);
    t_run(resolve, NULL);
}

/* ---- keepalive 0 ----------------------------------------------------------- */

static int threads_now(void *arg)
{
    (void)arg;
    return t_threads();
}

/* Each job needs a new pool thread, which exits as soon as it is idle: the
 * count drops back (the test's timeout bounds the wait; with any real
 * keepalive the thread would outlive it). */
static int retire_at_once(void *arg)
{
    int before = t_threads();

    (void)arg;
    for (int round = 0; round < 3; round++) {
        cr_assert_eq(weft_blocking(threads_now, NULL), before + 1);
        while (t_threads() > before)
            cr_assert_eq(weft_sleep_ms(1), 0);
        cr_assert_eq(t_threads(), before);
    }
    return 0;
}

Test(blocking, keepalive_0_retires_a_pool_thread_as_soon_as_it_is_idle,
     .timeout = 8)
{
    cr_assert_eq(setenv("WEFT_BLOCKING_KEEPALIVE_MS", "0", 1), 0);
    t_run(retire_at_once, NULL);
}
