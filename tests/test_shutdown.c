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

/* Runs until the jobs queued behind it are gone: the shutdown must
 * withdraw them, so that none can start once a thread is free. */
static int slow_job(void *arg)
{
    struct parked *p = arg;
    struct weft__blocking_stats st;

    atomic_fetch_add(&p->jobs_started, 1);
    do {
        usleep(1000);
        weft__blocking_stats(p->pool, &st);
    } while (st.queued > 0);
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
    cr_assert_eq(t_threads(), threads);
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
    cr_assert_eq(t_threads(), threads);
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
