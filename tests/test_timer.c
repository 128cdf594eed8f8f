/*
 * Timers and sleeping: deadline order, never waking early, past deadlines,
 * bad durations, cancelling a sleeper whose timer lives in another worker's
 * heap, many concurrent sleeps, and a timer that fires on the worker it was
 * armed on after its task moved to another one. Registered for both I/O
 * backends, since a parked worker's wait timeout is its next timer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers.h"
#include "runtime/runtime.h"
#include "runtime/task.h"
#include "runtime/worker.h"

#define MS (1000 * 1000LL)

/* At least two workers, whatever WEFT_WORKERS says. */
/* Spins until t is parked (IDLE), without suspending the caller. */
static void t_until_parked(weft_task_t *h)
{
    struct weft_task *t = weft__task_of(h);

    while (atomic_load_explicit(&t->state, memory_order_acquire) != TASK_IDLE)
        weft__cpu_relax();
}

/* ---- order --------------------------------------------------------------- */

struct ordered {
    int64_t deadline;
    int64_t offset_ms;
    atomic_int *next;
    int *order;
};

static int sleep_and_record(void *arg)
{
    struct ordered *o = arg;

    cr_assert_eq(weft_sleep_until(o->deadline), 0);
    o->order[atomic_fetch_add(o->next, 1)] = (int)o->offset_ms;
    return 0;
}

static int sleep_order(void *arg)
{
    static const int offsets[] = { 50, 10, 30, 20, 40 };
    enum { N = sizeof(offsets) / sizeof(offsets[0]) };
    struct ordered o[N];
    weft_task_t *t[N];
    atomic_int next = 0;
    int order[N];
    int64_t base = weft_now_ns();

    (void)arg;
    /* One base for every deadline: the tasks may start at different times
     * on different workers, the deadlines do not move with them. */
    for (int i = 0; i < N; i++) {
        o[i] = (struct ordered){ base + offsets[i] * MS, offsets[i], &next,
                                 order };
        cr_assert_eq(weft_spawn(&t[i], sleep_and_record, &o[i]), 0);
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(order[i], 10 * (i + 1), "woke %d-th: the %d ms sleeper",
                     i + 1, order[i]);
    return 0;
}

/*
 * On one worker, so that every timer is in one heap: then the order is the
 * runtime's promise however late the worker wakes. Across workers it would
 * also depend on how the OS schedules their threads.
 */
Test(timer, sleepers_wake_in_deadline_order, .timeout = 10)
{
    t_run_one_worker(sleep_order, NULL);
}

/* ---- accuracy ------------------------------------------------------------ */

static int sleep_never_early(void *arg)
{
    enum { ROUNDS = 20, SLEEP_MS = 20 };
    int64_t min = INT64_MAX, max = 0, sum = 0;

    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        int64_t start = weft_now_ns();
        int64_t late;

        /* The three entry points, in turn. */
        if (i % 3 == 0)
            cr_assert_eq(weft_sleep_ms(SLEEP_MS), 0);
        else if (i % 3 == 1)
            cr_assert_eq(weft_sleep_ns(SLEEP_MS * MS), 0);
        else
            cr_assert_eq(weft_sleep_until(start + SLEEP_MS * MS), 0);
        late = weft_now_ns() - start - SLEEP_MS * MS;
        cr_assert_geq(late, 0, "woke %lld ns early", (long long)-late);
        min = late < min ? late : min;
        max = late > max ? late : max;
        sum += late;
    }
    printf("timer: %d ms sleep lateness over %d sleeps: min %lld us, "
           "mean %lld us, max %lld us (%u workers, WEFT_IO=%s)\n",
           SLEEP_MS, ROUNDS, (long long)min / 1000,
           (long long)sum / ROUNDS / 1000, (long long)max / 1000,
           t_workers(), getenv("WEFT_IO") ? getenv("WEFT_IO") : "default");
    return 0;
}

Test(timer, sleep_never_returns_early, .timeout = 10)
{
    t_run(sleep_never_early, NULL);
}

/* ---- past deadlines and bad durations ------------------------------------ */

static int set_flag(void *arg)
{
    atomic_store((atomic_bool *)arg, true);
    return 0;
}

static int sleep_until_past(void *arg)
{
    atomic_bool ran = false;
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_sleep_until(0), 0);
    cr_assert_eq(weft_sleep_until(-5), 0);
    cr_assert_eq(weft_sleep_until(weft_now_ns()), 0);
    /* It acts as a yield: on one worker, a runnable task gets to run. */
    cr_assert_eq(weft_spawn(&t, set_flag, &ran), 0);
    cr_assert_eq(weft_sleep_until(weft_now_ns() - 1000 * MS), 0);
    cr_assert(atomic_load(&ran));
    cr_assert_eq(weft_join(t), 0);
    /* No timer was left behind. */
    cr_assert_eq(weft__worker_current()->timers.n, 0);
    return 0;
}

Test(timer, sleep_until_past_deadline_yields_and_returns_0, .timeout = 10)
{
    t_run_one_worker(sleep_until_past, NULL);
}

static int negative_sleeps(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_sleep_ms(-1), -EINVAL);
    cr_assert_eq(weft_sleep_ns(-1), -EINVAL);
    cr_assert_eq(weft_sleep_ms(INT64_MIN), -EINVAL);
    cr_assert_eq(weft_sleep_ns(INT64_MIN), -EINVAL);
    cr_assert_eq(weft_sleep_ms(0), 0);
    cr_assert_eq(weft_sleep_ns(0), 0);
    return 0;
}

Test(timer, negative_duration_is_einval, .timeout = 10)
{
    t_run(negative_sleeps, NULL);
}

/* ---- cancelling a sleeper on another worker ------------------------------ */

struct remote_sleeper {
    _Atomic int worker;  /* where the sleeper armed its timer */
    int ret;
};

static int sleep_long(void *arg)
{
    struct remote_sleeper *r = arg;

    atomic_store(&r->worker, weft_worker_id());
    r->ret = weft_sleep_ms(60 * 1000);
    return 0;
}

static int noop(void *arg)
{
    (void)arg;
    return 0;
}

/*
 * Spawns fn(arg) so that another worker runs it: a second spawn pushes it
 * out of our LIFO slot into the stealable run queue, and we do not suspend,
 * so only another worker can take it. Returns the handle; the second task
 * (a no-op) is detached.
 */
static weft_task_t *t_spawn_elsewhere(weft_fn_t fn, void *arg)
{
    weft_task_t *t;

    cr_assert_eq(weft_spawn(&t, fn, arg), 0);
    cr_assert_eq(weft_spawn(NULL, noop, NULL), 0);
    return t;
}

static int cancel_remote(void *arg)
{
    struct remote_sleeper r = { .worker = -1 };
    struct runtime *rt = weft__worker_current()->rt;
    int me = weft_worker_id();
    weft_task_t *t;
    int home;

    (void)arg;
    t = t_spawn_elsewhere(sleep_long, &r);
    t_until_parked(t);
    home = atomic_load(&r.worker);
    cr_assert_neq(home, me);
    /* acquire (t_until_parked): the timer fields are the sleeper's. */
    cr_assert_eq(weft__task_of(t)->timer.home, &rt->workers[home]->timers);
    cr_assert_neq(weft__task_of(t)->timer.index, TIMER_UNQUEUED);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(r.ret, -ECANCELED);
    /* The sleeper took its timer out of the other worker's heap. */
    weft__spin_lock(&rt->workers[home]->timers.lock);
    cr_assert_eq(rt->workers[home]->timers.n, 0);
    weft__spin_unlock(&rt->workers[home]->timers.lock);
    return 0;
}

Test(timer, cancel_sleeper_whose_timer_is_in_another_workers_heap,
     .timeout = 10)
{
    t_run_two_or_more(cancel_remote, NULL);
}

/* ---- many sleepers ------------------------------------------------------- */

#define MANY_SLEEPERS 10000

struct many {
    int64_t ms;
    int ret;
    int64_t slept_ns;
};

static int sleep_some(void *arg)
{
    struct many *m = arg;
    int64_t start = weft_now_ns();

    m->ret = weft_sleep_ms(m->ms);
    m->slept_ns = weft_now_ns() - start;
    return 0;
}

static int many_sleeps(void *arg)
{
    static struct many m[MANY_SLEEPERS];
    static weft_task_t *t[MANY_SLEEPERS];
    unsigned seed = 12345;

    (void)arg;
    for (int i = 0; i < MANY_SLEEPERS; i++) {
        m[i] = (struct many){ .ms = 1 + rand_r(&seed) % 50, .ret = 1 };
        cr_assert_eq(weft_spawn(&t[i], sleep_some, &m[i]), 0);
    }
    for (int i = 0; i < MANY_SLEEPERS; i++) {
        cr_assert_eq(weft_join(t[i]), 0);
        cr_assert_eq(m[i].ret, 0, "sleeper %d returned %d", i, m[i].ret);
        cr_assert_geq(m[i].slept_ns, m[i].ms * MS, "sleeper %d woke early",
                      i);
    }
    return 0;
}

Test(timer, ten_thousand_concurrent_random_sleeps_complete, .timeout = 60)
{
    t_run(many_sleeps, NULL);
}

/* ---- a timer outliving its task's move ----------------------------------- */

/*
 * The sleeper arms its timer on worker X and parks. A spurious wake from a
 * task on worker M puts it in M's LIFO slot, so it resumes on M, sees its
 * deadline has not passed and parks again without re-arming: its timer
 * stays in X's heap. When the deadline comes, X must fire it and wake the
 * task, which last ran on M.
 */
#define MOVED_CHECKS 8

struct moved {
    int64_t deadline;
    _Atomic int checks;          /* calls of the wait condition */
    int ran_on[MOVED_CHECKS];    /* the worker of each call */
    int ret;
};

static bool moved_never(void *arg)
{
    struct moved *m = arg;
    int n = atomic_load(&m->checks);

    if (n < MOVED_CHECKS)
        m->ran_on[n] = weft_worker_id();
    /* release: publishes ran_on[n] to the main task's acquire load. */
    atomic_store(&m->checks, n + 1);
    return false;
}

static int moved_sleeper(void *arg)
{
    struct moved *m = arg;

    m->ret = weft__task_block(weft__task_current(), moved_never, m,
                              m->deadline, WHY_SLEEP, NULL);
    return 0;
}

/* Yields until t has made n checks and is parked again. */
static void t_until_checked(struct moved *m, weft_task_t *h, int n)
{
    struct weft_task *t = weft__task_of(h);

    while (atomic_load(&m->checks) < n ||
           atomic_load_explicit(&t->state, memory_order_acquire) != TASK_IDLE)
        cr_assert_eq(weft_yield(), 0);
}

static int timer_outlives_move(void *arg)
{
    struct moved m = { .deadline = weft_now_ns() + 300 * MS };
    struct runtime *rt = weft__worker_current()->rt;
    int me = weft_worker_id();
    weft_task_t *t;
    int x;

    (void)arg;
    t = t_spawn_elsewhere(moved_sleeper, &m);
    t_until_parked(t);
    cr_assert_eq(atomic_load(&m.checks), 1);
    x = m.ran_on[0];
    cr_assert_neq(x, me);
    cr_assert_eq(weft__task_of(t)->timer.home, &rt->workers[x]->timers);

    /* Spurious wake from here: the sleeper comes to our LIFO slot. */
    weft__task_wake(weft__task_of(t));
    t_until_checked(&m, t, 2);
    cr_assert_eq(m.ran_on[1], me, "resumed on %d, not on the waker's %d",
                 m.ran_on[1], me);
    cr_assert_neq(m.ran_on[1], x);
    cr_assert_eq(weft__task_of(t)->timer.home, &rt->workers[x]->timers,
                 "the timer moved with the task");
    cr_assert_not(atomic_load(&weft__task_of(t)->timer.fired),
                  "the timer fired before the task moved: inconclusive");

    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(m.ret, -ETIMEDOUT);
    cr_assert_geq(weft_now_ns(), m.deadline);
    cr_assert_eq(atomic_load(&m.checks), 3);
    return 0;
}

Test(timer, timer_fires_on_arming_worker_after_task_moved, .timeout = 10)
{
    t_run_two_or_more(timer_outlives_move, NULL);
}
