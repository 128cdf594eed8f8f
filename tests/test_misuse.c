/*
 * Misuse of the non-I/O API: every call given what a caller gets wrong
 * (NULL, negative, huge, out of order, twice, after free, outside a task)
 * returns its documented negative errno, changes nothing, and touches no
 * other task, runtime or memory.
 *
 * Task structs are recycled and a handle names one task, not its struct:
 * the tests of stale handles run on one worker, where the struct a join
 * frees is the next one a spawn takes, and check that it really was reused
 * before they rely on it.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>

#include "helpers.h"
#include "runtime/future.h"
#include "runtime/group.h"
#include "runtime/queue.h"
#include "runtime/sync.h"
#include "runtime/task.h"

#define GIB (UINT64_C(1) << 30)

static int ret_zero(void *arg)
{
    (void)arg;
    return 0;
}

static int wait_event(void *arg)
{
    return weft_event_wait(arg, WEFT_NO_DEADLINE);
}

/* Yields until q (under lock) holds n waiters. */
static void t_until_waiting(struct weft__spin *lock, struct weft__waitq *q,
                            size_t n)
{
    for (;;) {
        size_t have;

        weft__spin_lock(lock);
        have = q->n;
        weft__spin_unlock(lock);
        if (have >= n)
            return;
        cr_assert_eq(weft_yield(), 0);
    }
}

/* A handle that was joined: its struct is free now. */
static weft_task_t *t_joined(void)
{
    weft_task_t *t;

    cr_assert_eq(weft_spawn(&t, ret_zero, NULL), 0);
    cr_assert_eq(weft_join(t), 0);
    return t;
}

/* Spawns fn(arg) with a handle and asserts it took old's struct (one
 * worker: the struct freed last is the next one spawned), so that old is
 * a stale handle of a live task. */
static weft_task_t *t_spawn_reusing(weft_task_t *old, weft_fn_t fn, void *arg)
{
    weft_task_t *t;

    cr_assert_eq(weft_spawn(&t, fn, arg), 0);
    cr_assert_eq(weft__task_of(t), weft__task_of(old),
                 "the struct was not reused: inconclusive");
    cr_assert_neq(t, old, "a new task got its struct's old handle value");
    return t;
}

static int count_run(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

/* ---- size arithmetic from caller input ----------------------------------- */

static int huge_stack_sizes(void *arg)
{
    static const uint64_t bad[] = {
        1024, 16 * 1024 - 1, GIB + 1, UINT64_C(1) << 62,
        SIZE_MAX - 4095, SIZE_MAX - 1, SIZE_MAX,
    };
    atomic_int ran = 0;
    weft_spawn_opts_t opts = { 0 };
    weft_task_t *t;

    (void)arg;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        opts.stack_size = (size_t)bad[i];
        cr_assert_eq(weft_spawn_ex(&t, count_run, &ran, &opts), -EINVAL,
                     "stack_size %llu", (unsigned long long)bad[i]);
        cr_assert_eq(weft_spawn_ex(NULL, count_run, &ran, &opts), -EINVAL,
                     "stack_size %llu", (unsigned long long)bad[i]);
    }
    opts.stack_size = 16 * 1024;
    cr_assert_eq(weft_spawn_ex(&t, count_run, &ran, &opts), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(atomic_load(&ran), 1, "a refused spawn ran");
    return 0;
}

Test(misuse, spawn_stack_size_near_size_max_is_einval_before_rounding,
     .timeout = 30)
{
    t_run(huge_stack_sizes, NULL);
}

/* weft_run_with(cfg) refuses to start: -EINVAL, main never runs. */
static void t_config_rejected(const weft_config_t *cfg, const char *what)
{
    atomic_int ran = 0;

    cr_assert_eq(weft_run_with(cfg, count_run, &ran), -EINVAL, "%s", what);
    cr_assert_eq(atomic_load(&ran), 0, "%s: the main task ran", what);
}

Test(misuse, config_stack_size_near_size_max_is_einval, .timeout = 30)
{
    static const uint64_t bad[] = { 4096, GIB + 1, UINT64_C(1) << 62,
                                    SIZE_MAX - 4095, SIZE_MAX };
    weft_config_t cfg;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        weft_config_init(&cfg);
        cfg.stack_size = (size_t)bad[i];
        t_config_rejected(&cfg, "config.stack_size");
    }
}

Test(misuse, env_stack_size_near_size_max_is_einval, .timeout = 30)
{
    static const char *const bad[] = {
        "18446744073709551615", "18446744073709551616", "17179869184G",
        "16777216M", "4294967296K", " -16K",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(setenv("WEFT_STACK_SIZE", bad[i], 1), 0);
        t_config_rejected(NULL, bad[i]);
    }
    unsetenv("WEFT_STACK_SIZE");
}

Test(misuse, env_number_with_a_leading_blank_or_sign_is_einval,
     .timeout = 30)
{
    static const char *const bad[] = { " -0", " 0", "+0", "\t5" };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(setenv("WEFT_BLOCKING_KEEPALIVE_MS", bad[i], 1), 0);
        t_config_rejected(NULL, bad[i]);
    }
    unsetenv("WEFT_BLOCKING_KEEPALIVE_MS");
}

Test(misuse, config_fields_out_of_range_are_einval, .timeout = 30)
{
    weft_config_t cfg;

    weft_config_init(&cfg);
    cfg.workers = 1025;
    t_config_rejected(&cfg, "workers");
    weft_config_init(&cfg);
    cfg.ring_entries = 3;
    t_config_rejected(&cfg, "ring_entries 3");
    cfg.ring_entries = 65536;
    t_config_rejected(&cfg, "ring_entries 65536");
    weft_config_init(&cfg);
    cfg.io = "kqueue";
    t_config_rejected(&cfg, "io");
    weft_config_init(&cfg);
    cfg.pin = (enum weft_flag)3;
    t_config_rejected(&cfg, "pin");
    weft_config_init(&cfg);
    cfg.debug = (enum weft_flag)-1;
    t_config_rejected(&cfg, "debug");
    weft_config_init(&cfg);
    cfg.blocking_threads = 65537;
    t_config_rejected(&cfg, "blocking_threads");
    weft_config_init(&cfg);
    cfg.blocking_keepalive_ms = UINT_MAX;
    t_config_rejected(&cfg, "blocking_keepalive_ms");
    weft_config_init(NULL); /* nothing to do, and no crash */
}

Test(misuse, queue_capacity_whose_ring_size_wraps_is_enomem, .timeout = 10)
{
    weft_queue_t q;

    /* capacity * sizeof(void *) wraps to 0, to 8, and to almost nothing. */
    cr_assert_eq(weft_queue_init(&q, SIZE_MAX / sizeof(void *) + 1, 0),
                 -ENOMEM);
    cr_assert_eq(weft_queue_init(&q, SIZE_MAX / sizeof(void *) + 2, 0),
                 -ENOMEM);
    cr_assert_eq(weft_queue_init(&q, SIZE_MAX, WEFT_QUEUE_LIFO), -ENOMEM);
    /* No wrap, but more than an address space: refused untried. */
    cr_assert_eq(weft_queue_init(&q, SIZE_MAX / sizeof(void *), 0), -ENOMEM);
    cr_assert_eq(weft_queue_init(&q, (UINT64_C(1) << 44) + 1, 0), -ENOMEM);
    cr_assert_eq(weft_queue_init(&q, 1, 0), 0);
    cr_assert_eq(weft_queue_try_put(&q, &q), 0);
    cr_assert_eq(weft_queue_try_put(&q, &q), -EAGAIN);
    cr_assert_eq(weft_queue_destroy(&q), 0);
}

Test(misuse, waitgroup_add_past_long_max_is_eoverflow_counter_unchanged,
     .timeout = 10)
{
    weft_waitgroup_t wg;

    cr_assert_eq(weft_waitgroup_init(&wg), 0);
    cr_assert_eq(weft_waitgroup_add(&wg, LONG_MAX), 0);
    cr_assert_eq(weft_waitgroup_add(&wg, 1), -EOVERFLOW);
    cr_assert_eq(weft_waitgroup_add(&wg, LONG_MAX), -EOVERFLOW);
    /* Unchanged: exactly LONG_MAX comes off, and then nothing more. */
    cr_assert_eq(weft_waitgroup_add(&wg, -LONG_MAX), 0);
    cr_assert_eq(weft_waitgroup_add(&wg, -1), -EINVAL);
    cr_assert_eq(weft_waitgroup_add(&wg, LONG_MIN), -EINVAL);
    cr_assert_eq(weft_waitgroup_done(&wg), -EINVAL);
    cr_assert_eq(weft_waitgroup_add(&wg, 2), 0);
    cr_assert_eq(weft_waitgroup_add(&wg, LONG_MIN), -EINVAL);
    cr_assert_eq(weft_waitgroup_add(&wg, -2), 0);
    cr_assert_eq(weft_waitgroup_destroy(&wg), 0);
}

Test(misuse, sem_release_past_uint_max_is_eoverflow, .timeout = 10)
{
    weft_sem_t s;

    cr_assert_eq(weft_sem_init(&s, UINT_MAX), 0);
    cr_assert_eq(weft_sem_release(&s), -EOVERFLOW);
    cr_assert_eq(weft_sem_value(&s), INT_MAX, "the value is clamped");
    cr_assert_eq(weft_sem_try_acquire(&s), 0);
    cr_assert_eq(weft_sem_release(&s), 0);
    cr_assert_eq(weft_sem_release(&s), -EOVERFLOW);
    cr_assert_eq(weft_sem_destroy(&s), 0);
}

static int huge_counts(void *arg)
{
    weft_task_t *t[1];
    weft_as_completed_t it;

    (void)arg;
    cr_assert_eq(weft_spawn(&t[0], ret_zero, NULL), 0);
    /* Rejected before the array is read past its one element. */
    cr_assert_eq(weft_wait(t, (size_t)INT_MAX + 1, WEFT_ALL_COMPLETED,
                           WEFT_NO_DEADLINE, NULL), -EINVAL);
    cr_assert_eq(weft_wait(t, SIZE_MAX, WEFT_ALL_COMPLETED,
                           WEFT_NO_DEADLINE, NULL), -EINVAL);
    cr_assert_eq(weft_gather(t, SIZE_MAX, NULL, 0), -EINVAL);
    cr_assert_eq(weft_gather(t, SIZE_MAX / sizeof(void *) + 1, NULL, 0),
                 -EINVAL);
    cr_assert_eq(weft_as_completed_init(&it, t, SIZE_MAX), -ENOMEM);
    cr_assert_eq(weft_as_completed_init(&it, t, SIZE_MAX / 16), -ENOMEM);
    cr_assert_eq(weft_join(t[0]), 0, "the handle was consumed");
    return 0;
}

Test(misuse, combinator_counts_past_any_array_are_refused_unread,
     .timeout = 10)
{
    t_run(huge_counts, NULL);
}

static int huge_barrier(void *arg)
{
    weft_barrier_t b;

    (void)arg;
    cr_assert_eq(weft_barrier_init(&b, UINT_MAX), 0);
    cr_assert_eq(weft_barrier_wait(&b, weft_now_ns()), -ETIMEDOUT);
    cr_assert_eq(weft_barrier_destroy(&b), 0);
    cr_assert_eq(weft_barrier_init(&b, 1), 0);
    cr_assert_eq(weft_barrier_wait(&b, WEFT_NO_DEADLINE), WEFT_BARRIER_SERIAL);
    cr_assert_eq(weft_barrier_destroy(&b), 0);
    return 0;
}

Test(misuse, barrier_of_uint_max_parties_waits_without_overflow,
     .timeout = 10)
{
    t_run(huge_barrier, NULL);
}

/* ---- stale task handles -------------------------------------------------- */

static int join_twice_free(void *arg)
{
    weft_task_t *t = t_joined();

    (void)arg;
    cr_assert_eq(weft_join(t), -EINVAL);
    cr_assert_eq(weft_detach(t), -EINVAL);
    cr_assert_eq(weft_cancel(t), -EINVAL);
    cr_assert_eq(weft_wait_for(t, WEFT_NO_DEADLINE), -EINVAL);
    return 0;
}

Test(misuse, join_twice_while_the_struct_is_free_is_einval, .timeout = 10)
{
    t_run_one_worker(join_twice_free, NULL);
}

static int join_twice_reused(void *arg)
{
    weft_event_t go;
    weft_task_t *old, *t;

    (void)arg;
    cr_assert_eq(weft_event_init(&go), 0);
    old = t_joined();
    t = t_spawn_reusing(old, wait_event, &go);
    /* Would wait for t, which waits for us. */
    cr_assert_eq(weft_join(old), -EINVAL);
    cr_assert_eq(weft_event_set(&go), 0);
    cr_assert_eq(weft_join(t), 0);
    return 0;
}

Test(misuse, join_twice_after_the_struct_is_reused_is_einval_not_a_hang,
     .timeout = 10)
{
    t_run_one_worker(join_twice_reused, NULL);
}

static int detach_then_join(void *arg)
{
    weft_event_t go;
    weft_task_t *t, *u;

    (void)arg;
    cr_assert_eq(weft_event_init(&go), 0);
    cr_assert_eq(weft_spawn(&t, wait_event, &go), 0);
    cr_assert_eq(weft_detach(t), 0);
    /* Still running: the struct is t's, but the handle is gone. */
    cr_assert_eq(weft_join(t), -EINVAL);
    cr_assert_eq(weft_detach(t), -EINVAL);
    cr_assert_eq(weft_cancel(t), -EINVAL);
    cr_assert_str_eq(weft_task_name(t), "");
    cr_assert_eq(weft_event_set(&go), 0);
    cr_assert_eq(weft_spawn(&u, ret_zero, NULL), 0);
    cr_assert_eq(weft_join(u), 0);
    cr_assert_eq(weft_join(t), -EINVAL);
    /* t waits on our frame's event: let it see the event before we
     * return (the join of u ran u inline, without a turn for t). */
    while (atomic_load_explicit(&weft__task_of(t)->state,
                                memory_order_acquire) != TASK_FREE)
        cr_assert_eq(weft_yield(), 0);
    return 0;
}

Test(misuse, join_or_detach_after_detach_is_einval, .timeout = 10)
{
    t_run(detach_then_join, NULL);
}

/* A stale handle's cancel or detach: refused, and the task that reuses its
 * struct is neither cancelled nor released. */
struct stale_call {
    int (*call)(weft_task_t *t);
};

static int stale_release(void *arg)
{
    const struct stale_call *c = arg;
    weft_event_t go;
    weft_task_t *old, *t;

    cr_assert_eq(weft_event_init(&go), 0);
    old = t_joined();
    t = t_spawn_reusing(old, wait_event, &go);
    cr_assert_eq(c->call(old), -EINVAL);
    cr_assert_eq(weft_event_set(&go), 0);
    cr_assert_eq(weft_join(t), 0, "the stale call reached the new task");
    return 0;
}

Test(misuse, cancel_of_a_stale_handle_spares_the_task_in_its_struct,
     .timeout = 10)
{
    struct stale_call c = { weft_cancel };

    t_run_one_worker(stale_release, &c);
}

Test(misuse, detach_of_a_stale_handle_leaves_the_new_handle_held,
     .timeout = 10)
{
    struct stale_call c = { weft_detach };

    t_run_one_worker(stale_release, &c);
}

static int stale_name_wait_for_shield(void *arg)
{
    weft_spawn_opts_t first = { .name = "first" };
    weft_spawn_opts_t second = { .name = "second" };
    weft_event_t go;
    weft_task_t *old, *t;
    int status = 7;

    (void)arg;
    cr_assert_eq(weft_event_init(&go), 0);
    cr_assert_eq(weft_spawn_ex(&old, ret_zero, NULL, &first), 0);
    cr_assert_str_eq(weft_task_name(old), "first");
    cr_assert_eq(weft_join(old), 0);
    cr_assert_eq(weft_spawn_ex(&t, wait_event, &go, &second), 0);
    cr_assert_eq(weft__task_of(t), weft__task_of(old),
                 "the struct was not reused: inconclusive");
    cr_assert_str_eq(weft_task_name(t), "second");
    cr_assert_str_eq(weft_task_name(old), "");
    cr_assert_eq(weft_wait_for(old, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_shield(old, &status), -EINVAL);
    cr_assert_eq(status, 7);
    cr_assert_eq(weft_event_set(&go), 0);
    cr_assert_eq(weft_join(t), 0);
    return 0;
}

Test(misuse, name_wait_for_and_shield_of_a_stale_handle_touch_nothing,
     .timeout = 10)
{
    t_run_one_worker(stale_name_wait_for_shield, NULL);
}

struct published {
    _Atomic(weft_task_t *) self;
    weft_event_t go;
};

static int publish_self(void *arg)
{
    struct published *p = arg;

    atomic_store(&p->self, weft_self());
    return weft_event_wait(&p->go, WEFT_NO_DEADLINE);
}

static int self_of_detached(void *arg)
{
    struct published p = { .self = NULL };
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_event_init(&p.go), 0);
    cr_assert_eq(weft_spawn(NULL, publish_self, &p), 0);
    while (!(t = atomic_load(&p.self)))
        cr_assert_eq(weft_yield(), 0);
    /* Nobody holds a handle of a task spawned without one. */
    cr_assert_eq(weft_join(t), -EINVAL);
    cr_assert_eq(weft_detach(t), -EINVAL);
    cr_assert_eq(weft_cancel(t), -EINVAL);
    cr_assert_eq(weft_gather(&t, 1, NULL, 0), -EINVAL);
    cr_assert_eq(weft_event_set(&p.go), 0);
    return 0;
}

Test(misuse, weft_self_of_a_task_spawned_without_handle_is_not_a_handle,
     .timeout = 10)
{
    t_run(self_of_detached, NULL);
}

static int compare_self(void *arg)
{
    weft_task_t **spawned = arg;

    return weft_self() == *spawned ? 0 : -EINVAL;
}

static int self_is_own(void *arg)
{
    weft_task_t *t, *me = weft_self();

    (void)arg;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(weft_spawn(&t, compare_self, &t), 0);
        cr_assert_eq(weft_join(t), 0, "weft_self differs from the handle");
    }
    /* The main task has no handle, but its own weft_self works on it. */
    cr_assert_eq(weft_self(), me);
    cr_assert_str_eq(weft_task_name(me), "main");
    cr_assert_eq(weft_join(me), -EDEADLK);
    cr_assert_eq(weft_cancel(me), 0);
    cr_assert_eq(weft_yield(), -ECANCELED);
    return 0;
}

Test(misuse, weft_self_equals_the_handle_and_is_the_callers_own,
     .timeout = 10)
{
    t_run(self_is_own, NULL);
}

static int join_each(void *arg)
{
    return weft_join(*(weft_task_t **)arg);
}

static int racing_joins(void *arg)
{
    weft_event_t go;
    weft_task_t *t, *j[2];
    int r0, r1;

    (void)arg;
    for (int round = 0; round < 200; round++) {
        cr_assert_eq(weft_event_init(&go), 0);
        cr_assert_eq(weft_spawn(&t, wait_event, &go), 0);
        cr_assert_eq(weft_spawn(&j[0], join_each, &t), 0);
        cr_assert_eq(weft_spawn(&j[1], join_each, &t), 0);
        cr_assert_eq(weft_event_set(&go), 0);
        r0 = weft_join(j[0]);
        r1 = weft_join(j[1]);
        /* One join releases t; the other sees the handle gone, whether
         * before it waited or after. */
        cr_assert((r0 == 0 && r1 == -EINVAL) || (r0 == -EINVAL && r1 == 0),
                  "joins returned %d and %d", r0, r1);
    }
    return 0;
}

Test(misuse, two_tasks_joining_one_handle_release_it_once, .timeout = 30)
{
    t_run(racing_joins, NULL);
}

static int handle_misuse_outside(void *arg)
{
    (void)arg;
    return 0;
}

Test(misuse, task_calls_outside_a_task, .timeout = 10)
{
    weft_task_t *t = (weft_task_t *)&t; /* never looked at */
    weft_spawn_opts_t opts = { 0 };

    cr_assert_eq(weft_spawn(&t, handle_misuse_outside, NULL), -EPERM);
    cr_assert_eq(weft_spawn_ex(NULL, handle_misuse_outside, NULL, &opts),
                 -EPERM);
    cr_assert_eq(weft_join(t), -EPERM);
    cr_assert_eq(weft_wait_for(t, WEFT_NO_DEADLINE), -EPERM);
    cr_assert_eq(weft_shield(t, NULL), -EPERM);
    cr_assert_eq(weft_gather(&t, 1, NULL, 0), -EPERM);
    cr_assert_eq(weft_wait(&t, 1, WEFT_ALL_COMPLETED, 0, NULL), -EPERM);
    cr_assert_eq(weft_yield(), -EPERM);
    cr_assert_eq(weft_sleep_ms(1), -EPERM);
    cr_assert_eq(weft_sleep_ns(1), -EPERM);
    cr_assert_eq(weft_sleep_until(0), -EPERM);
    cr_assert_eq(weft_blocking(ret_zero, NULL), -EPERM);
    cr_assert_eq(weft_signal_wait(SIGUSR1, 0), -EPERM);
    cr_assert_null(weft_self());
    cr_assert_str_eq(weft_task_name(NULL), "");
    cr_assert_eq(weft_worker_id(), -1);
    cr_assert_null(weft_runtime_current());
    /* Callable from any thread; a NULL handle is refused. */
    cr_assert_eq(weft_detach(NULL), -EINVAL);
    cr_assert_eq(weft_cancel(NULL), -EINVAL);
}

static int bad_task_arguments(void *arg)
{
    weft_spawn_opts_t opts = { 0 };
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_spawn(&t, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_spawn_ex(&t, NULL, NULL, &opts), -EINVAL);
    cr_assert_eq(weft_spawn_ex(&t, ret_zero, NULL, NULL), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(weft_join(NULL), -EINVAL);
    cr_assert_eq(weft_wait_for(NULL, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_shield(NULL, NULL), -EINVAL);
    cr_assert_eq(weft_join(weft_self()), -EDEADLK);
    cr_assert_eq(weft_wait_for(weft_self(), WEFT_NO_DEADLINE), -EDEADLK);
    cr_assert_eq(weft_shield(weft_self(), &(int){ 0 }), -EDEADLK);
    cr_assert_eq(weft_spawn(&t, ret_zero, NULL), 0);
    cr_assert_eq(weft_shield(t, NULL), -EINVAL);
    cr_assert_eq(weft_join(t), 0, "shield with no status consumed t");
    cr_assert_eq(weft_sleep_ms(-1), -EINVAL);
    cr_assert_eq(weft_sleep_ns(-1), -EINVAL);
    cr_assert_eq(weft_sleep_ns(INT64_MIN), -EINVAL);
    cr_assert_eq(weft_sleep_until(INT64_MIN), 0, "a past deadline");
    cr_assert_leq(weft_deadline_in_ms(-5), weft_now_ns());
    cr_assert_eq(weft_deadline_in_ms(INT64_MAX), WEFT_NO_DEADLINE);
    cr_assert_eq(weft_blocking(NULL, NULL), -EINVAL);
    return 0;
}

Test(misuse, task_calls_with_bad_arguments, .timeout = 10)
{
    t_run(bad_task_arguments, NULL);
}

static int run_inside(void *arg)
{
    weft_runtime_t *rt;

    (void)arg;
    cr_assert_eq(weft_run(ret_zero, NULL), -EPERM);
    cr_assert_eq(weft_run_with(NULL, ret_zero, NULL), -EPERM);
    cr_assert_eq(weft_runtime_new(NULL, &rt), -EPERM);
    cr_assert_eq(weft_runtime_block_on(weft_runtime_current(), ret_zero,
                                       NULL), -EPERM);
    cr_assert_eq(weft_runtime_free(weft_runtime_current()), -EPERM);
    return 0;
}

Test(misuse, run_and_runtime_calls_from_a_task_are_eperm, .timeout = 10)
{
    cr_assert_eq(weft_run(NULL, NULL), -EINVAL);
    cr_assert_eq(weft_run_with(NULL, NULL, NULL), -EINVAL);
    t_run(run_inside, NULL);
}

/* ---- combinators --------------------------------------------------------- */

static int duplicates(void *arg)
{
    enum { N = 40 }; /* past the pairwise check: the sorted one */
    weft_task_t *t[N], *two[2], *last;
    weft_as_completed_t it;
    int results[N];

    (void)arg;
    cr_assert_eq(weft_spawn(&two[0], ret_zero, NULL), 0);
    two[1] = two[0];
    cr_assert_eq(weft_gather(two, 2, NULL, 0), -EINVAL);
    cr_assert_eq(weft_wait(two, 2, WEFT_ALL_COMPLETED, WEFT_NO_DEADLINE,
                           NULL), -EINVAL);
    cr_assert_eq(weft_as_completed_init(&it, two, 2), -EINVAL);
    cr_assert_eq(weft_join(two[0]), 0, "a refused call consumed the handle");

    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_spawn(&t[i], ret_zero, NULL), 0);
    last = t[N - 1];
    t[N - 1] = t[3];
    cr_assert_eq(weft_gather(t, N, results, 0), -EINVAL);
    cr_assert_eq(weft_wait(t, N, WEFT_ALL_COMPLETED, WEFT_NO_DEADLINE, NULL),
                 -EINVAL);
    cr_assert_eq(weft_as_completed_init(&it, t, N), -EINVAL);
    t[N - 1] = last;
    cr_assert_eq(weft_gather(t, N, results, 0), 0, "handles consumed");
    return 0;
}

Test(misuse, one_handle_twice_in_gather_wait_or_as_completed_is_einval,
     .timeout = 10)
{
    t_run(duplicates, NULL);
}

static int stale_in_lists(void *arg)
{
    weft_event_t go;
    weft_task_t *list[2];
    weft_as_completed_t it;

    (void)arg;
    cr_assert_eq(weft_event_init(&go), 0);
    list[0] = t_joined();
    list[1] = t_spawn_reusing(list[0], wait_event, &go);
    cr_assert_eq(weft_gather(list, 2, NULL, 0), -EINVAL);
    cr_assert_eq(weft_wait(list, 2, WEFT_FIRST_COMPLETED, WEFT_NO_DEADLINE,
                           NULL), -EINVAL);
    cr_assert_eq(weft_as_completed_init(&it, list, 2), -EINVAL);
    cr_assert_eq(weft_event_set(&go), 0);
    cr_assert_eq(weft_gather(&list[1], 1, NULL, 0), 0);
    return 0;
}

Test(misuse, stale_handle_in_a_list_is_einval_and_nothing_is_consumed,
     .timeout = 10)
{
    t_run_one_worker(stale_in_lists, NULL);
}

static int lists_with_bad_entries(void *arg)
{
    weft_task_t *list[2] = { NULL, NULL };
    weft_as_completed_t it;
    bool done[2];

    (void)arg;
    cr_assert_eq(weft_gather(NULL, 1, NULL, 0), -EINVAL);
    cr_assert_eq(weft_gather(NULL, 0, NULL, 0), 0);
    cr_assert_eq(weft_wait(NULL, 1, WEFT_ALL_COMPLETED, 0, NULL), -EINVAL);
    cr_assert_eq(weft_wait(NULL, 0, WEFT_ALL_COMPLETED, 0, NULL), 0);
    cr_assert_eq(weft_as_completed_init(&it, NULL, 1), -EINVAL);
    cr_assert_eq(weft_as_completed_init(NULL, list, 0), -EINVAL);
    cr_assert_eq(weft_spawn(&list[0], ret_zero, NULL), 0);
    cr_assert_eq(weft_gather(list, 2, NULL, 0), -EINVAL);
    cr_assert_eq(weft_wait(list, 2, WEFT_ALL_COMPLETED, 0, done), -EINVAL);
    cr_assert_eq(weft_as_completed_init(&it, list, 2), -EINVAL);
    cr_assert_eq(weft_gather(list, 1, NULL, 2), -EINVAL, "unknown flags");
    cr_assert_eq(weft_wait(list, 1, -1, 0, done), -EINVAL);
    cr_assert_eq(weft_wait(list, 1, WEFT_FIRST_EXCEPTION + 1, 0, done),
                 -EINVAL);
    list[1] = weft_self();
    cr_assert_eq(weft_gather(list, 2, NULL, 0), -EDEADLK);
    cr_assert_eq(weft_wait(list, 2, WEFT_ALL_COMPLETED, 0, done), -EDEADLK);
    cr_assert_eq(weft_as_completed_init(&it, list, 2), -EDEADLK);
    cr_assert_eq(weft_join(list[0]), 0, "a refused call consumed it");
    return 0;
}

Test(misuse, gather_wait_as_completed_with_null_self_or_bad_flags,
     .timeout = 10)
{
    t_run(lists_with_bad_entries, NULL);
}

static int destroy_it(void *arg)
{
    return weft_as_completed_destroy(arg);
}

static int next_it(void *arg)
{
    weft_task_t *t;

    return weft_as_completed_next(arg, WEFT_NO_DEADLINE, &t);
}

static int iterator_misuse(void *arg)
{
    weft_as_completed_t it;
    weft_task_t *t[1], *got, *other;

    (void)arg;
    cr_assert_eq(weft_spawn(&t[0], ret_zero, NULL), 0);
    cr_assert_eq(weft_as_completed_init(&it, t, 1), 0);
    cr_assert_eq(weft_as_completed_next(NULL, 0, &got), -EINVAL);
    cr_assert_eq(weft_as_completed_next(&it, 0, NULL), -EINVAL);
    cr_assert_eq(weft_as_completed_destroy(NULL), -EINVAL);
    /* Only the initialising task uses it. */
    cr_assert_eq(weft_spawn(&other, next_it, &it), 0);
    cr_assert_eq(weft_join(other), -EINVAL);
    cr_assert_eq(weft_spawn(&other, destroy_it, &it), 0);
    cr_assert_eq(weft_join(other), -EINVAL);
    cr_assert_eq(weft_as_completed_next(&it, WEFT_NO_DEADLINE, &got), 0);
    cr_assert_eq(got, t[0]);
    cr_assert_eq(weft_as_completed_next(&it, WEFT_NO_DEADLINE, &got),
                 -ENOENT);
    cr_assert_eq(weft_as_completed_destroy(&it), 0);
    cr_assert_eq(weft_as_completed_destroy(&it), -EINVAL);
    cr_assert_eq(weft_as_completed_next(&it, WEFT_NO_DEADLINE, &got),
                 -EINVAL);
    cr_assert_eq(weft_join(t[0]), 0);
    return 0;
}

Test(misuse, as_completed_from_another_task_or_after_destroy_is_einval,
     .timeout = 10)
{
    weft_as_completed_t it;
    weft_task_t *got;

    cr_assert_eq(weft_as_completed_init(&it, NULL, 0), -EPERM);
    cr_assert_eq(weft_as_completed_next(&it, 0, &got), -EPERM);
    t_run(iterator_misuse, NULL);
}

struct left_behind {
    weft_as_completed_t it;
    weft_scope_t scope;
};

static int init_and_leave(void *arg)
{
    struct left_behind *l = arg;

    cr_assert_eq(weft_as_completed_init(&l->it, NULL, 0), 0);
    cr_assert_eq(weft_scope_enter(&l->scope, WEFT_NO_DEADLINE), 0);
    return 0; /* neither destroyed nor exited */
}

static int use_left_behind(void *arg)
{
    struct left_behind *l = arg;
    weft_scope_t own;
    weft_task_t *got;
    int ret;

    ret = weft_as_completed_next(&l->it, WEFT_NO_DEADLINE, &got);
    if (ret != -EINVAL)
        return ret == 0 ? 1 : ret;
    ret = weft_as_completed_destroy(&l->it);
    if (ret != -EINVAL)
        return ret == 0 ? 2 : ret;
    /* At the old owner's depth, so that only the owner tells them apart. */
    cr_assert_eq(weft_scope_enter(&own, WEFT_NO_DEADLINE), 0);
    ret = weft_scope_exit(&l->scope);
    if (ret != -EINVAL)
        return ret >= 0 ? 3 : ret;
    return weft_scope_exit(&own);
}

static int owners_by_struct(void *arg)
{
    struct left_behind l;
    weft_task_t *old, *t;
    int step;

    (void)arg;
    cr_assert_eq(weft_spawn(&old, init_and_leave, &l), 0);
    cr_assert_eq(weft_join(old), 0);
    t = t_spawn_reusing(old, use_left_behind, &l);
    step = weft_join(t);
    cr_assert_eq(step, 0, "step %d took the old owner's place", step);
    return 0;
}

Test(misuse, iterator_and_scope_owners_are_not_their_structs_next_task,
     .timeout = 10)
{
    t_run_one_worker(owners_by_struct, NULL);
}

/* ---- timeout scopes ------------------------------------------------------ */

static int scopes_out_of_order(void *arg)
{
    weft_scope_t a, b;

    (void)arg;
    /* The case that once left a deadline armed: exit a under b. */
    cr_assert_eq(weft_scope_enter(&a, weft_deadline_in_ms(20)), 0);
    cr_assert_eq(weft_scope_enter(&b, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_scope_exit(&a), -EINVAL);
    cr_assert_eq(weft_scope_exit(&b), 0);
    cr_assert_geq(weft_scope_exit(&a), 0);
    cr_assert_eq(weft_scope_exit(&a), -EINVAL, "exited twice");
    cr_assert_eq(weft_scope_exit(&b), -EINVAL, "exited twice");
    cr_assert_eq(weft_sleep_ms(60), 0, "a deadline was left armed");

    /* A refused exit changes nothing: b's expired deadline still holds. */
    cr_assert_eq(weft_scope_enter(&a, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_scope_enter(&b, weft_now_ns()), 0);
    cr_assert_eq(weft_scope_exit(&a), -EINVAL);
    cr_assert_eq(weft_sleep_ms(1), -ETIMEDOUT);
    cr_assert_eq(weft_scope_exit(&b), 1);
    cr_assert_eq(weft_scope_exit(&a), 0);
    cr_assert_eq(weft_sleep_ms(1), 0);
    return 0;
}

Test(misuse, scope_exit_of_an_outer_scope_is_einval_and_changes_nothing,
     .timeout = 10)
{
    t_run(scopes_out_of_order, NULL);
}

static int exit_other(void *arg)
{
    return weft_scope_exit(arg);
}

static int scope_misuse(void *arg)
{
    weft_scope_t a, b;
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_scope_enter(NULL, 0), -EINVAL);
    cr_assert_eq(weft_scope_exit(NULL), -EINVAL);
    cr_assert_eq(weft_scope_enter(&a, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_scope_enter(&a, weft_now_ns()), -EINVAL,
                 "entered twice");
    cr_assert_eq(weft_sleep_ms(1), 0, "the refused enter took effect");
    cr_assert_eq(weft_scope_enter(&b, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_scope_enter(&a, weft_now_ns()), -EINVAL,
                 "entered twice, under another");
    cr_assert_eq(weft_spawn(&t, exit_other, &b), 0);
    cr_assert_eq(weft_join(t), -EINVAL, "another task exited our scope");
    cr_assert_eq(weft_scope_exit(&b), 0);
    cr_assert_eq(weft_scope_exit(&a), 0);
    return 0;
}

Test(misuse, scope_entered_twice_or_exited_by_another_task_is_einval,
     .timeout = 10)
{
    weft_scope_t s;

    cr_assert_eq(weft_scope_enter(&s, 0), -EPERM);
    cr_assert_eq(weft_scope_exit(&s), -EPERM);
    t_run(scope_misuse, NULL);
}

static int deep_scopes(void *arg)
{
    static weft_scope_t s[UINT16_MAX + 1];
    weft_scope_t extra;

    (void)arg;
    for (unsigned i = 0; i < UINT16_MAX; i++)
        cr_assert_eq(weft_scope_enter(&s[i], WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_scope_enter(&extra, WEFT_NO_DEADLINE), -EOVERFLOW);
    cr_assert_eq(weft_scope_exit(&s[0]), -EINVAL);
    for (unsigned i = UINT16_MAX; i-- > 0;)
        cr_assert_eq(weft_scope_exit(&s[i]), 0);
    return 0;
}

Test(misuse, scope_nesting_past_65535_is_eoverflow, .timeout = 30)
{
    t_run(deep_scopes, NULL);
}

/* ---- groups -------------------------------------------------------------- */

struct gw {
    weft_group_t g;
    weft_event_t go;
};

static int group_waiter(void *arg)
{
    return weft_group_wait(&((struct gw *)arg)->g);
}

static struct group *t_group(weft_group_t *g)
{
    return (struct group *)(void *)g;
}

static int two_group_waiters(void *arg)
{
    struct gw gw;
    weft_task_t *w;
    int status = 1;

    (void)arg;
    cr_assert_eq(weft_group_init(&gw.g), 0);
    cr_assert_eq(weft_event_init(&gw.go), 0);
    cr_assert_eq(weft_group_spawn(&gw.g, wait_event, &gw.go, &status), 0);
    cr_assert_eq(weft_spawn(&w, group_waiter, &gw), 0);
    for (;;) {
        bool waiting;

        weft__spin_lock(&t_group(&gw.g)->lock);
        waiting = t_group(&gw.g)->waiter != NULL;
        weft__spin_unlock(&t_group(&gw.g)->lock);
        if (waiting)
            break;
        cr_assert_eq(weft_yield(), 0);
    }
    cr_assert_eq(weft_group_wait(&gw.g), -EBUSY);
    cr_assert_eq(weft_group_destroy(&gw.g), -EBUSY);
    cr_assert_eq(weft_event_set(&gw.go), 0);
    cr_assert_eq(weft_join(w), 0);
    cr_assert_eq(status, 0);
    cr_assert_eq(weft_group_destroy(&gw.g), 0);
    return 0;
}

Test(misuse, group_wait_from_a_second_task_is_ebusy, .timeout = 10)
{
    t_run(two_group_waiters, NULL);
}

static int child_waits_on_group(void *arg)
{
    struct gw *gw = arg;

    cr_assert_eq(weft_event_wait(&gw->go, WEFT_NO_DEADLINE), 0);
    return weft_group_wait(&gw->g);
}

static int child_group_wait(void *arg)
{
    struct gw gw;
    int status = 1;

    (void)arg;
    cr_assert_eq(weft_group_init(&gw.g), 0);
    cr_assert_eq(weft_event_init(&gw.go), 0);
    cr_assert_eq(weft_group_spawn(&gw.g, child_waits_on_group, &gw, &status),
                 0);
    cr_assert_eq(weft_event_set(&gw.go), 0);
    /* The child's -EDEADLK is a failure like any other. */
    cr_assert_eq(weft_group_wait(&gw.g), -EDEADLK);
    cr_assert_eq(status, -EDEADLK);
    cr_assert_eq(weft_group_destroy(&gw.g), 0);
    return 0;
}

Test(misuse, group_wait_from_a_child_of_the_group_is_edeadlk,
     .timeout = 10)
{
    t_run(child_group_wait, NULL);
}

static int group_bad_arguments(void *arg)
{
    weft_group_t g;

    (void)arg;
    cr_assert_eq(weft_group_init(NULL), -EINVAL);
    cr_assert_eq(weft_group_destroy(NULL), -EINVAL);
    cr_assert_eq(weft_group_spawn(NULL, ret_zero, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_group_cancel(NULL), -EINVAL);
    cr_assert_eq(weft_group_wait(NULL), -EINVAL);
    cr_assert_eq(weft_group_init(&g), 0);
    cr_assert_eq(weft_group_spawn(&g, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_group_spawn(&g, ret_zero, NULL, NULL), 0);
    cr_assert_eq(weft_group_destroy(&g), -EBUSY, "children not waited for");
    cr_assert_eq(weft_group_cancel(&g), 0);
    cr_assert_eq(weft_group_spawn(&g, ret_zero, NULL, NULL), -ECANCELED);
    cr_assert_eq(weft_group_wait(&g), -ECANCELED);
    cr_assert_eq(weft_group_destroy(&g), 0);
    return 0;
}

Test(misuse, group_calls_with_bad_arguments, .timeout = 10)
{
    weft_group_t g;

    cr_assert_eq(weft_group_init(&g), 0);
    cr_assert_eq(weft_group_spawn(&g, ret_zero, NULL, NULL), -EPERM);
    cr_assert_eq(weft_group_wait(&g), -EPERM);
    cr_assert_eq(weft_group_cancel(&g), 0);
    cr_assert_eq(weft_group_destroy(&g), 0);
    t_run(group_bad_arguments, NULL);
}

/* ---- queues -------------------------------------------------------------- */

static int after_destroy(void *arg)
{
    weft_queue_t q;
    void *item;

    (void)arg;
    cr_assert_eq(weft_queue_init(&q, 0, 0), 0);
    cr_assert_eq(weft_queue_put(&q, &q, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_queue_destroy(&q), 0);
    cr_assert_eq(weft_queue_destroy(&q), -EINVAL);
    cr_assert_eq(weft_queue_put(&q, &q, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_queue_try_put(&q, &q), -EINVAL);
    cr_assert_eq(weft_queue_get(&q, &item, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_queue_try_get(&q, &item), -EINVAL);
    cr_assert_eq(weft_queue_close(&q), -EINVAL);
    cr_assert_eq(weft_queue_size(&q), -EINVAL);
    cr_assert_eq(weft_queue_task_done(&q), -EINVAL);
    cr_assert_eq(weft_queue_join(&q, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_queue_init(&q, 2, 0), 0, "init again");
    cr_assert_eq(weft_queue_size(&q), 0);
    cr_assert_eq(weft_queue_destroy(&q), 0);
    return 0;
}

Test(misuse, queue_calls_after_destroy_are_einval, .timeout = 10)
{
    t_run(after_destroy, NULL);
}

static int get_one(void *arg)
{
    void *item;

    return weft_queue_get(arg, &item, WEFT_NO_DEADLINE);
}

static struct queue *t_q(weft_queue_t *q)
{
    return (struct queue *)(void *)q;
}

static int queue_misuse(void *arg)
{
    weft_queue_t q;
    weft_task_t *g;
    void *item;

    (void)arg;
    cr_assert_eq(weft_queue_init(NULL, 1, 0), -EINVAL);
    cr_assert_eq(weft_queue_init(&q, 1, 2), -EINVAL, "unknown flags");
    cr_assert_eq(weft_queue_destroy(NULL), -EINVAL);
    cr_assert_eq(weft_queue_put(NULL, &q, 0), -EINVAL);
    cr_assert_eq(weft_queue_try_put(NULL, &q), -EINVAL);
    cr_assert_eq(weft_queue_get(NULL, &item, 0), -EINVAL);
    cr_assert_eq(weft_queue_try_get(NULL, &item), -EINVAL);
    cr_assert_eq(weft_queue_close(NULL), -EINVAL);
    cr_assert_eq(weft_queue_size(NULL), -EINVAL);
    cr_assert_eq(weft_queue_task_done(NULL), -EINVAL);
    cr_assert_eq(weft_queue_join(NULL, 0), -EINVAL);
    cr_assert_eq(weft_queue_init(&q, 1, 0), 0);
    cr_assert_eq(weft_queue_get(&q, NULL, 0), -EINVAL);
    cr_assert_eq(weft_queue_try_get(&q, NULL), -EINVAL);
    cr_assert_eq(weft_queue_task_done(&q), -EINVAL, "nothing was put");
    cr_assert_eq(weft_spawn(&g, get_one, &q), 0);
    t_until_waiting(&t_q(&q)->lock, &t_q(&q)->getters, 1);
    cr_assert_eq(weft_queue_destroy(&q), -EBUSY);
    cr_assert_eq(weft_queue_try_put(&q, &q), 0);
    cr_assert_eq(weft_join(g), 0);
    cr_assert_eq(weft_queue_task_done(&q), 0);
    cr_assert_eq(weft_queue_task_done(&q), -EINVAL, "more than were put");
    cr_assert_eq(weft_queue_close(&q), 0);
    cr_assert_eq(weft_queue_close(&q), 0, "idempotent");
    cr_assert_eq(weft_queue_destroy(&q), 0);
    return 0;
}

Test(misuse, queue_calls_with_bad_arguments_or_in_use, .timeout = 10)
{
    weft_queue_t q;
    void *item;

    cr_assert_eq(weft_queue_init(&q, 1, 0), 0);
    cr_assert_eq(weft_queue_put(&q, &q, 0), -EPERM);
    cr_assert_eq(weft_queue_get(&q, &item, 0), -EPERM);
    cr_assert_eq(weft_queue_join(&q, 0), -EPERM);
    cr_assert_eq(weft_queue_destroy(&q), 0);
    t_run(queue_misuse, NULL);
}

/* ---- mutex --------------------------------------------------------------- */

static int lock_and_end(void *arg)
{
    return weft_mutex_lock(arg, WEFT_NO_DEADLINE);
}

struct recycled {
    weft_mutex_t *m;
    int unlock, lock;
};

static int unlock_not_mine(void *arg)
{
    struct recycled *r = arg;

    r->unlock = weft_mutex_unlock(r->m);
    r->lock = weft_mutex_lock(r->m, weft_now_ns());
    return 0;
}

static int recycled_unlock(void *arg)
{
    struct recycled r = { 0 };
    weft_mutex_t m;
    weft_task_t *old, *t;

    (void)arg;
    r.m = &m;
    cr_assert_eq(weft_mutex_init(&m), 0);
    cr_assert_eq(weft_spawn(&old, lock_and_end, &m), 0);
    cr_assert_eq(weft_join(old), 0);
    t = t_spawn_reusing(old, unlock_not_mine, &r);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(r.unlock, -EPERM, "a task in the owner's struct unlocked");
    cr_assert_eq(r.lock, -ETIMEDOUT, "it was taken for the owner");
    cr_assert_eq(weft_mutex_unlock(&m), -EPERM);
    cr_assert_eq(weft_mutex_destroy(&m), -EBUSY, "still held by the dead");
    return 0;
}

Test(misuse, mutex_unlock_by_recycled_struct_is_eperm, .timeout = 10)
{
    t_run_one_worker(recycled_unlock, NULL);
}

static int unlock_other(void *arg)
{
    return weft_mutex_unlock(arg);
}

static int mutex_misuse(void *arg)
{
    weft_mutex_t m;
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_mutex_init(NULL), -EINVAL);
    cr_assert_eq(weft_mutex_destroy(NULL), -EINVAL);
    cr_assert_eq(weft_mutex_lock(NULL, 0), -EINVAL);
    cr_assert_eq(weft_mutex_try_lock(NULL), -EINVAL);
    cr_assert_eq(weft_mutex_unlock(NULL), -EINVAL);
    cr_assert_eq(weft_mutex_init(&m), 0);
    cr_assert_eq(weft_mutex_unlock(&m), -EPERM, "not locked");
    cr_assert_eq(weft_mutex_lock(&m, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_mutex_lock(&m, WEFT_NO_DEADLINE), -EDEADLK);
    cr_assert_eq(weft_mutex_try_lock(&m), -EAGAIN);
    cr_assert_eq(weft_mutex_destroy(&m), -EBUSY);
    cr_assert_eq(weft_spawn(&t, unlock_other, &m), 0);
    cr_assert_eq(weft_join(t), -EPERM);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(weft_mutex_unlock(&m), -EPERM, "unlocked twice");
    cr_assert_eq(weft_mutex_destroy(&m), 0);
    return 0;
}

Test(misuse, mutex_calls_with_bad_arguments_or_not_owner, .timeout = 10)
{
    weft_mutex_t m;

    cr_assert_eq(weft_mutex_init(&m), 0);
    cr_assert_eq(weft_mutex_lock(&m, 0), -EPERM);
    cr_assert_eq(weft_mutex_try_lock(&m), -EPERM);
    cr_assert_eq(weft_mutex_unlock(&m), -EPERM);
    cr_assert_eq(weft_mutex_destroy(&m), 0);
    t_run(mutex_misuse, NULL);
}

/* ---- semaphore, event, barrier, wait group ------------------------------- */

static int acquire_one(void *arg)
{
    return weft_sem_acquire(arg, WEFT_NO_DEADLINE);
}

static int sem_misuse(void *arg)
{
    weft_sem_t s;
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_sem_init(NULL, 1), -EINVAL);
    cr_assert_eq(weft_sem_init_bounded(NULL, 1), -EINVAL);
    cr_assert_eq(weft_sem_init_bounded(&s, 0), -EINVAL);
    cr_assert_eq(weft_sem_destroy(NULL), -EINVAL);
    cr_assert_eq(weft_sem_acquire(NULL, 0), -EINVAL);
    cr_assert_eq(weft_sem_try_acquire(NULL), -EINVAL);
    cr_assert_eq(weft_sem_release(NULL), -EINVAL);
    cr_assert_eq(weft_sem_value(NULL), -EINVAL);
    cr_assert_eq(weft_sem_init_bounded(&s, 1), 0);
    cr_assert_eq(weft_sem_release(&s), -EOVERFLOW);
    cr_assert_eq(weft_sem_try_acquire(&s), 0);
    cr_assert_eq(weft_sem_try_acquire(&s), -EAGAIN);
    cr_assert_eq(weft_spawn(&t, acquire_one, &s), 0);
    t_until_waiting(&((struct sem *)(void *)&s)->lock,
                    &((struct sem *)(void *)&s)->waiters, 1);
    cr_assert_eq(weft_sem_destroy(&s), -EBUSY);
    cr_assert_eq(weft_sem_release(&s), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(weft_sem_destroy(&s), 0);
    return 0;
}

Test(misuse, sem_calls_with_bad_arguments_or_in_use, .timeout = 10)
{
    weft_sem_t s;

    cr_assert_eq(weft_sem_init(&s, 0), 0);
    cr_assert_eq(weft_sem_acquire(&s, 0), -EPERM);
    cr_assert_eq(weft_sem_destroy(&s), 0);
    t_run(sem_misuse, NULL);
}

static int event_misuse(void *arg)
{
    weft_event_t e;
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_event_init(NULL), -EINVAL);
    cr_assert_eq(weft_event_destroy(NULL), -EINVAL);
    cr_assert_eq(weft_event_set(NULL), -EINVAL);
    cr_assert_eq(weft_event_clear(NULL), -EINVAL);
    cr_assert_eq(weft_event_is_set(NULL), -EINVAL);
    cr_assert_eq(weft_event_wait(NULL, 0), -EINVAL);
    cr_assert_eq(weft_event_init(&e), 0);
    cr_assert_eq(weft_spawn(&t, wait_event, &e), 0);
    t_until_waiting(&((struct event *)(void *)&e)->lock,
                    &((struct event *)(void *)&e)->waiters, 1);
    cr_assert_eq(weft_event_destroy(&e), -EBUSY);
    cr_assert_eq(weft_event_set(&e), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(weft_event_destroy(&e), 0);
    return 0;
}

Test(misuse, event_calls_with_bad_arguments_or_in_use, .timeout = 10)
{
    weft_event_t e;

    cr_assert_eq(weft_event_init(&e), 0);
    cr_assert_eq(weft_event_wait(&e, 0), -EPERM);
    cr_assert_eq(weft_event_destroy(&e), 0);
    t_run(event_misuse, NULL);
}

static int barrier_wait_one(void *arg)
{
    return weft_barrier_wait(arg, WEFT_NO_DEADLINE);
}

static int barrier_misuse(void *arg)
{
    weft_barrier_t b;
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_barrier_init(NULL, 1), -EINVAL);
    cr_assert_eq(weft_barrier_init(&b, 0), -EINVAL);
    cr_assert_eq(weft_barrier_destroy(NULL), -EINVAL);
    cr_assert_eq(weft_barrier_wait(NULL, 0), -EINVAL);
    cr_assert_eq(weft_barrier_init(&b, 2), 0);
    cr_assert_eq(weft_spawn(&t, barrier_wait_one, &b), 0);
    t_until_waiting(&((struct barrier *)(void *)&b)->lock,
                    &((struct barrier *)(void *)&b)->waiters, 1);
    cr_assert_eq(weft_barrier_destroy(&b), -EBUSY);
    cr_assert_eq(weft_barrier_wait(&b, WEFT_NO_DEADLINE), WEFT_BARRIER_SERIAL);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(weft_barrier_destroy(&b), 0);
    return 0;
}

Test(misuse, barrier_calls_with_bad_arguments_or_in_use, .timeout = 10)
{
    weft_barrier_t b;

    cr_assert_eq(weft_barrier_init(&b, 1), 0);
    cr_assert_eq(weft_barrier_wait(&b, 0), -EPERM);
    cr_assert_eq(weft_barrier_destroy(&b), 0);
    t_run(barrier_misuse, NULL);
}

static int wg_wait(void *arg)
{
    return weft_waitgroup_wait(arg, WEFT_NO_DEADLINE);
}

static int waitgroup_misuse(void *arg)
{
    weft_waitgroup_t wg;
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_waitgroup_init(NULL), -EINVAL);
    cr_assert_eq(weft_waitgroup_destroy(NULL), -EINVAL);
    cr_assert_eq(weft_waitgroup_add(NULL, 1), -EINVAL);
    cr_assert_eq(weft_waitgroup_done(NULL), -EINVAL);
    cr_assert_eq(weft_waitgroup_wait(NULL, 0), -EINVAL);
    cr_assert_eq(weft_waitgroup_init(&wg), 0);
    cr_assert_eq(weft_waitgroup_add(&wg, 1), 0);
    cr_assert_eq(weft_spawn(&t, wg_wait, &wg), 0);
    t_until_waiting(&((struct waitgroup *)(void *)&wg)->lock,
                    &((struct waitgroup *)(void *)&wg)->waiters, 1);
    cr_assert_eq(weft_waitgroup_destroy(&wg), -EBUSY);
    cr_assert_eq(weft_waitgroup_add(&wg, LONG_MAX), -EOVERFLOW);
    cr_assert_eq(weft_waitgroup_add(&wg, -2), -EINVAL);
    cr_assert_eq(weft_waitgroup_done(&wg), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(weft_waitgroup_destroy(&wg), 0);
    return 0;
}

Test(misuse, waitgroup_calls_with_bad_arguments_or_in_use, .timeout = 10)
{
    weft_waitgroup_t wg;

    cr_assert_eq(weft_waitgroup_init(&wg), 0);
    cr_assert_eq(weft_waitgroup_wait(&wg, 0), -EPERM);
    cr_assert_eq(weft_waitgroup_destroy(&wg), 0);
    t_run(waitgroup_misuse, NULL);
}

/* ---- condition ----------------------------------------------------------- */

struct cw {
    weft_cond_t c;
    weft_mutex_t m;
    bool ready;
};

static int cond_waiter(void *arg)
{
    struct cw *cw = arg;
    int ret = 0;

    cr_assert_eq(weft_mutex_lock(&cw->m, WEFT_NO_DEADLINE), 0);
    while (!cw->ready && ret == 0)
        ret = weft_cond_wait(&cw->c, &cw->m, WEFT_NO_DEADLINE);
    cr_assert_eq(weft_mutex_unlock(&cw->m), 0);
    return ret;
}

static struct cond *t_cond(weft_cond_t *c)
{
    return (struct cond *)(void *)c;
}

static int cond_misuse(void *arg)
{
    struct cw cw = { .ready = false };
    weft_mutex_t other;
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_cond_init(NULL), -EINVAL);
    cr_assert_eq(weft_cond_destroy(NULL), -EINVAL);
    cr_assert_eq(weft_cond_notify(NULL, 1), -EINVAL);
    cr_assert_eq(weft_cond_notify_all(NULL), -EINVAL);
    cr_assert_eq(weft_cond_init(&cw.c), 0);
    cr_assert_eq(weft_mutex_init(&cw.m), 0);
    cr_assert_eq(weft_mutex_init(&other), 0);
    cr_assert_eq(weft_cond_wait(NULL, &cw.m, 0), -EINVAL);
    cr_assert_eq(weft_cond_wait(&cw.c, NULL, 0), -EINVAL);
    cr_assert_eq(weft_cond_wait(&cw.c, &cw.m, 0), -EPERM, "m not held");
    cr_assert_eq(weft_spawn(&t, cond_waiter, &cw), 0);
    t_until_waiting(&t_cond(&cw.c)->lock, &t_cond(&cw.c)->waiters, 1);
    cr_assert_eq(weft_cond_destroy(&cw.c), -EBUSY);
    /* Waiters of one condition share its mutex. */
    cr_assert_eq(weft_mutex_lock(&other, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_cond_wait(&cw.c, &other, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_mutex_unlock(&other), 0, "the mutex was released");
    cr_assert_eq(weft_mutex_lock(&cw.m, WEFT_NO_DEADLINE), 0);
    cw.ready = true;
    cr_assert_eq(weft_cond_notify_all(&cw.c), 1);
    cr_assert_eq(weft_mutex_unlock(&cw.m), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(weft_cond_notify(&cw.c, UINT_MAX), 0);
    cr_assert_eq(weft_cond_destroy(&cw.c), 0);
    cr_assert_eq(weft_mutex_destroy(&cw.m), 0);
    cr_assert_eq(weft_mutex_destroy(&other), 0);
    return 0;
}

Test(misuse, cond_wait_with_another_mutex_than_its_waiters_is_einval,
     .timeout = 10)
{
    weft_cond_t c;
    weft_mutex_t m;

    cr_assert_eq(weft_cond_init(&c), 0);
    cr_assert_eq(weft_mutex_init(&m), 0);
    cr_assert_eq(weft_cond_wait(&c, &m, 0), -EPERM);
    cr_assert_eq(weft_cond_destroy(&c), 0);
    t_run(cond_misuse, NULL);
}

/* ---- futures, blocking, signals ------------------------------------------ */

static int future_wait(void *arg)
{
    return weft_future_wait(arg, WEFT_NO_DEADLINE);
}

static struct future *t_future(weft_future_t *f)
{
    return (struct future *)(void *)f;
}

static int future_misuse(void *arg)
{
    weft_future_t f;
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_future_wait(NULL, 0), -EINVAL);
    cr_assert_eq(weft_future_init(&f), 0);
    cr_assert_eq(weft_spawn(&t, future_wait, &f), 0);
    t_until_waiting(&t_future(&f)->lock, &t_future(&f)->waiters, 1);
    cr_assert_eq(weft_future_destroy(&f), -EBUSY);
    cr_assert_eq(weft_future_set(&f, 42), 0);
    cr_assert_eq(weft_future_set(&f, 43), -EALREADY);
    cr_assert_eq(weft_join(t), 42);
    cr_assert_eq(weft_future_wait(&f, 0), 42, "the first value stays");
    cr_assert_eq(weft_future_destroy(&f), 0);
    return 0;
}

Test(misuse, future_calls_with_bad_arguments_twice_or_in_use, .timeout = 10)
{
    weft_future_t f;
    int v = 7;

    cr_assert_eq(weft_future_init(NULL), -EINVAL);
    cr_assert_eq(weft_future_destroy(NULL), -EINVAL);
    cr_assert_eq(weft_future_set(NULL, 1), -EINVAL);
    cr_assert_eq(weft_future_try_get(NULL, &v), -EINVAL);
    cr_assert_eq(weft_future_init(&f), 0);
    cr_assert_eq(weft_future_wait(&f, 0), -EPERM);
    cr_assert_eq(weft_future_try_get(&f, &v), -EAGAIN);
    cr_assert_eq(v, 7);
    cr_assert_eq(weft_future_set(&f, -EIO), 0);
    cr_assert_eq(weft_future_try_get(&f, NULL), 0);
    cr_assert_eq(weft_future_try_get(&f, &v), 0);
    cr_assert_eq(v, -EIO);
    cr_assert_eq(weft_future_destroy(&f), 0);
    t_run(future_misuse, NULL);
}

static int bad_signals(void *arg)
{
    static const int bad[] = { 0, -1, SIGKILL, SIGSTOP, SIGSEGV, SIGBUS,
                               SIGILL, SIGFPE, SIGTRAP, SIGSYS, 32, 65, 1000,
                               INT_MAX, INT_MIN };

    (void)arg;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(weft_signal_wait(bad[i], 0), -EINVAL, "signo %d",
                     bad[i]);
    return 0;
}

Test(misuse, signal_wait_for_a_signal_that_cannot_be_waited_for_is_einval,
     .timeout = 10)
{
    t_run(bad_signals, NULL);
}

/* ---- runtime handles ----------------------------------------------------- */

static weft_runtime_t *t_runtime_new(void)
{
    weft_runtime_t *rt;

    cr_assert_eq(weft_runtime_new(NULL, &rt), 0);
    return rt;
}

Test(misuse, spawn_from_after_runtime_free_is_eshutdown, .timeout = 20)
{
    weft_runtime_t *rt = t_runtime_new();
    weft_task_t *t = NULL;
    atomic_int ran = 0;

    cr_assert_eq(weft_runtime_block_on(rt, count_run, &ran), 0);
    cr_assert_eq(weft_runtime_free(rt), 0);
    cr_assert_eq(weft_spawn_from(rt, &t, count_run, &ran), -ESHUTDOWN);
    cr_assert_eq(weft_spawn_from(rt, NULL, count_run, &ran), -ESHUTDOWN);
    cr_assert_null(t);
    cr_assert_eq(weft_runtime_block_on(rt, count_run, &ran), -ESHUTDOWN);
    cr_assert_eq(weft_runtime_free(rt), -ESHUTDOWN, "freed twice");
    cr_assert_eq(atomic_load(&ran), 1);
}

Test(misuse, stale_runtime_handle_misses_the_runtime_reusing_its_memory,
     .timeout = 20)
{
    weft_runtime_t *old = t_runtime_new(), *rt;
    atomic_int ran = 0;

    cr_assert_eq(weft_runtime_free(old), 0);
    rt = t_runtime_new();
    cr_assert_eq((uintptr_t)rt & ((UINT64_C(1) << 48) - 1),
                 (uintptr_t)old & ((UINT64_C(1) << 48) - 1),
                 "the memory was not reused: inconclusive");
    cr_assert_neq(rt, old);
    cr_assert_eq(weft_spawn_from(old, NULL, count_run, &ran), -ESHUTDOWN);
    cr_assert_eq(weft_runtime_block_on(old, count_run, &ran), -ESHUTDOWN);
    cr_assert_eq(weft_runtime_free(old), -ESHUTDOWN);
    cr_assert_eq(atomic_load(&ran), 0, "a stale handle reached rt");
    cr_assert_eq(weft_runtime_block_on(rt, count_run, &ran), 0);
    cr_assert_eq(atomic_load(&ran), 1);
    cr_assert_eq(weft_runtime_free(rt), 0);
}

static int current_is_the_handle(void *arg)
{
    return weft_runtime_current() == *(weft_runtime_t **)arg ? 0 : -EINVAL;
}

Test(misuse, runtime_calls_with_null_arguments_are_einval, .timeout = 20)
{
    weft_runtime_t *rt = t_runtime_new();

    cr_assert_eq(weft_runtime_new(NULL, NULL), -EINVAL);
    cr_assert_eq(weft_runtime_block_on(NULL, ret_zero, NULL), -EINVAL);
    cr_assert_eq(weft_runtime_block_on(rt, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_spawn_from(NULL, NULL, ret_zero, NULL), -EINVAL);
    cr_assert_eq(weft_spawn_from(rt, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_runtime_free(NULL), -EINVAL);
    cr_assert_eq(weft_runtime_block_on(rt, current_is_the_handle, &rt), 0);
    cr_assert_eq(weft_runtime_free(rt), 0);
}

/* ---- deadlines ----------------------------------------------------------- */

/* weft_deadline_in_ms saturates: a huge duration is no deadline at all
 * (never a wrapped one in the past), and one of zero or less is now. */
Test(misuse, deadline_in_ms_saturates_at_both_ends, .timeout = 10)
{
    int64_t before = weft_now_ns();

    cr_assert_eq(weft_deadline_in_ms(INT64_MAX), WEFT_NO_DEADLINE);
    cr_assert_eq(weft_deadline_in_ms(INT64_MAX / 1000), WEFT_NO_DEADLINE);
    cr_assert_geq(weft_deadline_in_ms(INT64_MIN), before);
    cr_assert_leq(weft_deadline_in_ms(INT64_MIN), weft_now_ns());
    cr_assert_leq(weft_deadline_in_ms(0), weft_now_ns());
    cr_assert_gt(weft_deadline_in_ms(1), before);
}
