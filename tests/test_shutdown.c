/*
 * The runtime's life: shutdown with tasks parked everywhere leaks no thread
 * or descriptor and does not hang; the runtime handle (new, block_on, free)
 * and spawns from threads weft does not own.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "helpers.h"
#include "runtime/blocking.h"
#include "runtime/runtime.h"
#include "runtime/signal.h"
#include "runtime/task.h"

struct parked {
    weft_future_t never_set;
    struct weft__blocking *pool;
    atomic_int jobs_started, jobs_finished;
    atomic_bool queued_seen; /* the main task saw the jobs queue up */
};

static int sleep_long(void *arg)
{
    (void)arg;
    return weft_sleep_ms(3600 * 1000);
}

static int await_never(void *arg)
{
    struct parked *p = arg;

    return weft_future_wait(&p->never_set, WEFT_NO_DEADLINE);
}

static int wait_sigusr2(void *arg)
{
    (void)arg;
    return weft_signal_wait(SIGUSR2, WEFT_NO_DEADLINE);
}

/* Runs until jobs were queued behind it and are gone: the shutdown must
 * withdraw them, so that none can start once a thread is free. (Not just
 * "until none is queued": the tasks that queue them may not have run yet;
 * nor "until it saw some queued": they may be gone before it looks.) */
static int slow_job(void *arg)
{
    struct parked *p = arg;
    struct weft__blocking_stats st;

    atomic_fetch_add(&p->jobs_started, 1);
    do {
        usleep(1000);
        weft__blocking_stats(p->pool, &st);
    } while (!atomic_load(&p->queued_seen) || st.queued > 0);
    atomic_fetch_add(&p->jobs_finished, 1);
    return 0;
}

static int submit_slow(void *arg)
{
    return weft_blocking(slow_job, arg);
}

/* Spawns n tasks running fn(arg), waits until each is parked in a wait of
 * kind why, and detaches them. */
static void t_spawn_parked(weft_fn_t fn, void *arg, int n, enum weft__why why)
{
    weft_task_t *t[8];

    for (int i = 0; i < n; i++)
        cr_assert_eq(weft_spawn(&t[i], fn, arg), 0);
    for (int i = 0; i < n; i++) {
        t_until_parked_in(t[i], why);
        cr_assert_eq(weft_detach(t[i]), 0);
    }
}

/* Returns with tasks asleep, awaiting a future and a signal, running pool
 * jobs and queued ones: weft_run must cancel and join them all. */
static int park_everywhere(void *arg)
{
    struct parked *p = arg;
    struct weft__blocking_stats st;

    p->pool = &weft__task_current()->rt->pool;
    t_spawn_parked(sleep_long, p, 3, WHY_SLEEP);
    t_spawn_parked(await_never, p, 3, WHY_FUTURE);
    t_spawn_parked(wait_sigusr2, p, 2, WHY_SIGNAL);
    t_spawn_parked(submit_slow, p, 5, WHY_BLOCKING);
    do {
        cr_assert_eq(weft_sleep_ms(1), 0);
        weft__blocking_stats(p->pool, &st);
    } while (atomic_load(&p->jobs_started) < 2 || st.queued < 3);
    atomic_store(&p->queued_seen, true);
    cr_assert_eq(weft__signal_waiters(SIGUSR2), 2);
    return 0;
}

Test(shutdown, tasks_parked_everywhere_leak_nothing, .timeout = 20)
{
    weft_config_t cfg = { .blocking_threads = 2 };
    struct parked p = { .jobs_started = 0 };
    int fds = t_fds(), threads = t_threads();

    weft_future_init(&p.never_set);
    t_run_with(&cfg, park_everywhere, &p);
    cr_assert_eq(t_fds(), fds);
    t_assert_threads(threads);
    /* The two jobs running on the two threads finished before weft_run
     * returned; the three queued ones never ran (weft_blocking: a call
     * still queued when its task is cancelled is removed). */
    cr_assert_eq(atomic_load(&p.jobs_started), 2);
    cr_assert_eq(atomic_load(&p.jobs_finished), 2);
    cr_assert_eq(weft__signal_waiters(SIGUSR2), 0);
    cr_assert_eq(weft_future_destroy(&p.never_set), 0);
}

/* ---- the runtime handle ---------------------------------------------------- */

static int return_arg(void *arg)
{
    return (int)(intptr_t)arg;
}

static int misuse_from_a_task(void *arg)
{
    weft_runtime_t *rt;

    (void)arg;
    cr_assert_not_null(weft_runtime_current());
    cr_assert_eq(weft_runtime_new(NULL, &rt), -EPERM);
    cr_assert_eq(weft_runtime_block_on(weft_runtime_current(), return_arg,
                                       NULL), -EPERM);
    cr_assert_eq(weft_runtime_free(weft_runtime_current()), -EPERM);
    return 0;
}

Test(shutdown, runtime_handle_block_on_twice_then_free, .timeout = 10)
{
    int fds = t_fds(), threads = t_threads();
    weft_runtime_t *rt;

    cr_assert_eq(weft_runtime_new(NULL, NULL), -EINVAL);
    cr_assert_eq(weft_runtime_new(NULL, &rt), 0);
    cr_assert_eq(weft_runtime_block_on(rt, return_arg, (void *)5), 5);
    cr_assert_eq(weft_runtime_block_on(rt, return_arg, (void *)-EIO), -EIO);
    cr_assert_eq(weft_runtime_block_on(rt, misuse_from_a_task, NULL), 0);
    cr_assert_eq(weft_runtime_block_on(rt, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_runtime_block_on(NULL, return_arg, NULL), -EINVAL);
    cr_assert_eq(weft_runtime_free(rt), 0);
    cr_assert_eq(weft_runtime_free(NULL), -EINVAL);
    cr_assert_null(weft_runtime_current());
    cr_assert_eq(t_fds(), fds);
    t_assert_threads(threads);
}

/* ---- spawns from foreign threads ------------------------------------------- */

enum { FOREIGN_SPAWNS = 100 };

struct foreign {
    weft_runtime_t *rt;
    weft_future_t done[FOREIGN_SPAWNS];
};

struct slot {
    struct foreign *fr;
    int i;
};

static int report(void *arg)
{
    struct slot *s = arg;

    weft_yield(); /* a real task: it may suspend */
    return weft_future_set(&s->fr->done[s->i], s->i);
}

/* A callback thread of "another library". */
static void *foreign_main(void *arg)
{
    static struct slot slots[FOREIGN_SPAWNS];
    struct foreign *fr = arg;

    for (int i = 0; i < FOREIGN_SPAWNS; i++) {
        weft_task_t *t = NULL;

        slots[i] = (struct slot){ .fr = fr, .i = i };
        if (i % 2) {
            cr_assert_eq(weft_spawn_from(fr->rt, &t, report, &slots[i]), 0);
            cr_assert_eq(weft_detach(t), 0);
        } else {
            cr_assert_eq(weft_spawn_from(fr->rt, NULL, report, &slots[i]), 0);
        }
    }
    return NULL;
}

static int join_thread(void *arg)
{
    return -pthread_join(*(pthread_t *)arg, NULL);
}

static int await_foreign_spawns(void *arg)
{
    struct foreign *fr = arg;
    pthread_t th;

    fr->rt = weft_runtime_current();
    cr_assert_eq(pthread_create(&th, NULL, foreign_main, fr), 0);
    for (int i = 0; i < FOREIGN_SPAWNS; i++)
        cr_assert_eq(weft_future_wait(&fr->done[i], WEFT_NO_DEADLINE), i);
    return weft_blocking(join_thread, &th);
}

Test(shutdown, spawn_from_a_foreign_thread_into_a_running_runtime,
     .timeout = 20)
{
    static struct foreign fr;

    for (int i = 0; i < FOREIGN_SPAWNS; i++)
        weft_future_init(&fr.done[i]);
    cr_assert_eq(weft_spawn_from(NULL, NULL, report, NULL), -EINVAL);
    t_run(await_foreign_spawns, &fr);
    for (int i = 0; i < FOREIGN_SPAWNS; i++)
        cr_assert_eq(weft_future_destroy(&fr.done[i]), 0);
}

/* Spawned from outside while no block_on runs: the runtime still runs it. */
Test(shutdown, spawn_from_outside_between_block_ons, .timeout = 10)
{
    static struct foreign fr;
    weft_runtime_t *rt;
    int v = -1;

    static struct slot s = { .fr = &fr, .i = 0 };

    weft_future_init(&fr.done[0]);
    cr_assert_eq(weft_runtime_new(NULL, &rt), 0);
    fr.rt = rt;
    cr_assert_eq(weft_spawn_from(rt, NULL, report, &s), 0);
    while (weft_future_try_get(&fr.done[0], &v) == -EAGAIN)
        usleep(1000);
    cr_assert_eq(v, 0);
    cr_assert_eq(weft_runtime_free(rt), 0);
    cr_assert_eq(weft_future_destroy(&fr.done[0]), 0);
}

/* ---- calls into a runtime that is shutting down ---------------------------- */

struct closing {
    weft_runtime_t *rt;
    atomic_bool job_started, release;
    atomic_int ran;
    int free_ret;
};

/* A running pool job: weft_runtime_free waits for it (and for the task
 * waiting on it) until the test releases it. */
static int held_job(void *arg)
{
    struct closing *c = arg;

    atomic_store(&c->job_started, true);
    while (!atomic_load(&c->release))
        usleep(500);
    return 0;
}

static int hold_shutdown(void *arg)
{
    return weft_blocking(held_job, arg);
}

static int count_run(void *arg)
{
    atomic_fetch_add(&((struct closing *)arg)->ran, 1);
    return 0;
}

static void *free_runtime_thread(void *arg)
{
    struct closing *c = arg;

    c->free_ret = weft_runtime_free(c->rt);
    return NULL;
}

Test(shutdown, spawn_from_and_block_on_are_eshutdown_once_free_has_begun,
     .timeout = 20)
{
    static struct closing c;
    weft_task_t *t = NULL;
    pthread_t th;

    cr_assert_eq(weft_runtime_new(NULL, &c.rt), 0);
    cr_assert_eq(weft_spawn_from(c.rt, NULL, hold_shutdown, &c), 0);
    while (!atomic_load(&c.job_started))
        usleep(500);
    cr_assert_eq(pthread_create(&th, NULL, free_runtime_thread, &c), 0);
    /* free is now stuck draining the task that waits for the held job. */
    while (weft__runtime_is_open(c.rt))
        usleep(500);
    cr_assert_eq(weft_spawn_from(c.rt, &t, count_run, &c), -ESHUTDOWN);
    cr_assert_null(t);
    cr_assert_eq(weft_spawn_from(c.rt, NULL, count_run, &c), -ESHUTDOWN);
    cr_assert_eq(weft_runtime_block_on(c.rt, count_run, &c), -ESHUTDOWN);
    atomic_store(&c.release, true);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(c.free_ret, 0);
    cr_assert_eq(atomic_load(&c.ran), 0, "a refused function ran");
}

/* ---- several threads in block_on at once ----------------------------------- */

enum { BLOCK_ON_CALLERS = 4 };

struct caller {
    weft_runtime_t *rt;
    weft_barrier_t *all_in;
    int i, ret;
};

/* Returns only once every caller's task runs: the block_on calls overlap. */
static int meet_then_return(void *arg)
{
    struct caller *c = arg;
    int ret = weft_barrier_wait(c->all_in, WEFT_NO_DEADLINE);

    return ret < 0 ? ret : 100 + c->i;
}

static void *call_block_on(void *arg)
{
    struct caller *c = arg;

    c->ret = weft_runtime_block_on(c->rt, meet_then_return, c);
    return NULL;
}

Test(shutdown, threads_blocking_on_one_runtime_at_once_get_their_own_status,
     .timeout = 20)
{
    struct caller c[BLOCK_ON_CALLERS];
    pthread_t th[BLOCK_ON_CALLERS];
    weft_barrier_t all_in;
    weft_runtime_t *rt;

    cr_assert_eq(weft_runtime_new(NULL, &rt), 0);
    cr_assert_eq(weft_barrier_init(&all_in, BLOCK_ON_CALLERS), 0);
    for (int i = 0; i < BLOCK_ON_CALLERS; i++) {
        c[i] = (struct caller){ .rt = rt, .all_in = &all_in, .i = i,
                                .ret = -1 };
        cr_assert_eq(pthread_create(&th[i], NULL, call_block_on, &c[i]), 0);
    }
    for (int i = 0; i < BLOCK_ON_CALLERS; i++) {
        cr_assert_eq(pthread_join(th[i], NULL), 0);
        cr_assert_eq(c[i].ret, 100 + i, "caller %d got %d", i, c[i].ret);
    }
    cr_assert_eq(weft_barrier_destroy(&all_in), 0);
    cr_assert_eq(weft_runtime_free(rt), 0);
}

/* ---- a worker thread that cannot be created ------------------------------ */

static int return_7(void *arg)
{
    (void)arg;
    return 7;
}

/* The second worker's thread fails to start (as pthread_create does at
 * RLIMIT_NPROC): the runtime is not started, the first worker's thread is
 * stopped and joined, and nothing is left behind; the next start works. */
Test(shutdown, worker_thread_that_cannot_start_fails_the_start_cleanly,
     .timeout = 30)
{
    weft_config_t cfg;
    weft_runtime_t *rt = NULL;
    int threads = t_threads(), fds = t_fds();

    weft_config_init(&cfg);
    cfg.workers = 3;
    atomic_store(&weft__fault_thread_create, 2);
    cr_assert_eq(weft_runtime_new(&cfg, &rt), -EAGAIN);
    cr_assert_null(rt);
    cr_assert_eq(atomic_load(&weft__fault_thread_create), 0);
    t_assert_threads(threads);
    cr_assert_eq(t_fds(), fds);
    cr_assert_eq(weft_run_with(&cfg, return_7, NULL), 7);
}
