/*
 * Tasks: spawn, join, detach, cancel, yield, errors surfacing at join.
 */
#include <errno.h>
#include <fenv.h>
#include <unistd.h>

#include "helpers.h"

static int add_one(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

static int spawn_join_100k(void *arg)
{
    enum { N = 100000, BATCH = 1000 };
    static weft_task_t *t[BATCH];
    atomic_int count = 0;

    (void)arg;
    for (int done = 0; done < N; done += BATCH) {
        for (int i = 0; i < BATCH; i++)
            cr_assert_eq(weft_spawn(&t[i], add_one, &count), 0);
        for (int i = 0; i < BATCH; i++)
            cr_assert_eq(weft_join(t[i]), 0);
    }
    cr_assert_eq(atomic_load(&count), N);
    return 0;
}

Test(task, spawn_join_100k, .timeout = 60)
{
    t_run(spawn_join_100k, NULL);
}

static int fail_with_eio(void *arg)
{
    (void)arg;
    return -EIO;
}

static int join_failed(void *arg)
{
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_spawn(&t, fail_with_eio, NULL), 0);
    cr_assert_eq(weft_join(t), -EIO);
    return 0;
}

Test(task, join_returns_the_failure, .timeout = 10)
{
    t_run(join_failed, NULL);
}

static int returns_arg(void *arg)
{
    return (int)(intptr_t)arg;
}

static int join_value(void *arg)
{
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_spawn(&t, returns_arg, (void *)(intptr_t)4242), 0);
    cr_assert_eq(weft_join(t), 4242);
    return 0;
}

Test(task, join_returns_the_value, .timeout = 10)
{
    t_run(join_value, NULL);
}

static int main_returns_7(void *arg)
{
    (void)arg;
    return 7;
}

Test(task, run_returns_main_status, .timeout = 10)
{
    cr_assert_eq(weft_run(main_returns_7, NULL), 7);
}

static int sleeper(void *arg)
{
    int ret = weft_sleep_ms(60 * 1000);

    if (arg)
        *(int *)arg = ret;
    return ret;
}

static int cancel_sleeping(void *arg)
{
    weft_task_t *t;
    int seen = 1;

    (void)arg;
    cr_assert_eq(weft_spawn(&t, sleeper, &seen), 0);
    t_until_parked_in(t, WHY_SLEEP);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t), -ECANCELED);
    cr_assert_eq(seen, -ECANCELED);
    return 0;
}

Test(task, cancel_sleeping, .timeout = 10)
{
    t_run(cancel_sleeping, NULL);
}

static int yielder(void *arg)
{
    atomic_int *started = arg;
    int ret;

    atomic_store(started, 1);
    while ((ret = weft_yield()) == 0)
        ;
    return ret;
}

static int cancel_yielding(void *arg)
{
    weft_task_t *t;
    atomic_int started = 0;

    (void)arg;
    cr_assert_eq(weft_spawn(&t, yielder, &started), 0);
    while (!atomic_load(&started))
        cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t), -ECANCELED);
    return 0;
}

Test(task, cancel_yielding, .timeout = 10)
{
    t_run(cancel_yielding, NULL);
}

/* Each task's FP rounding mode is its own: the fiber switch keeps the
 * control words of the task it leaves and restores those of the one it
 * resumes, whichever worker that happens on. */
static int keep_rounding_mode(void *arg)
{
    int mode = *(int *)arg, wrong = 0;

    cr_assert_eq(fesetround(mode), 0);
    for (int i = 0; i < 2000; i++) {
        cr_assert_eq(weft_yield(), 0);
        wrong += fegetround() != mode;
    }
    fesetround(FE_TONEAREST);
    return wrong;
}

static int rounding_modes(void *arg)
{
    static int modes[] = { FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO,
                           FE_TONEAREST };
    enum { PER_MODE = 8, N = PER_MODE * 4 };
    weft_task_t *t[N];

    (void)arg;
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_spawn(&t[i], keep_rounding_mode, &modes[i % 4]), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_join(t[i]), 0, "task %d saw another's mode", i);
    cr_assert_eq(fegetround(), FE_TONEAREST);
    return 0;
}

Test(task, each_task_keeps_its_rounding_mode, .timeout = 30)
{
    t_run(rounding_modes, NULL);
}

static int must_not_run(void *arg)
{
    atomic_store((atomic_int *)arg, 1);
    return 0;
}

static int cancel_unstarted(void *arg)
{
    weft_task_t *t;
    atomic_int ran = 0;

    (void)arg;
    /* No suspension between spawn and cancel: t cannot have started. */
    cr_assert_eq(weft_spawn(&t, must_not_run, &ran), 0);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t), -ECANCELED);
    cr_assert_eq(atomic_load(&ran), 0);
    return 0;
}

Test(task, cancel_not_yet_started, .timeout = 10)
{
    t_run(cancel_unstarted, NULL);
}

/* A task that cancels another (not started yet) and returns. */
static int cancel_arg_and_return(void *arg)
{
    return weft_cancel(arg);
}

/* Recursion with a 1 KiB frame, depth levels deep. */
__attribute__((noinline)) static int dig(int depth)
{
    volatile char buf[1024];

    buf[0] = (char)depth;
    buf[sizeof(buf) - 1] = (char)depth;
    return depth ? dig(depth - 1) + (buf[0] == buf[sizeof(buf) - 1]) : 0;
}

/* Uses 384 KiB of stack: more than the default 256 KiB holds. */
static int needs_big_stack(void *arg)
{
    (void)arg;
    return dig(384) == 384 ? 9 : -EPROTO;
}

/*
 * On one worker a task whose predecessor just returned starts on that
 * task's stack, from the same frame: the queue here is (LIFO) canceller,
 * then victim, then big. The victim must end cancelled without running,
 * and big, which asked for a larger stack, must not inherit a default one
 * (it would overflow it).
 */
static int start_in_place(void *arg)
{
    weft_spawn_opts_t big = { .stack_size = 512 * 1024 };
    weft_task_t *victim, *custom, *canceller;
    atomic_int ran = 0;

    (void)arg;
    cr_assert_eq(weft_spawn(&victim, must_not_run, &ran), 0);
    cr_assert_eq(weft_spawn_ex(&custom, needs_big_stack, NULL, &big), 0);
    cr_assert_eq(weft_spawn(&canceller, cancel_arg_and_return, victim), 0);
    cr_assert_eq(weft_join(canceller), 0);
    cr_assert_eq(weft_join(victim), -ECANCELED);
    cr_assert_eq(atomic_load(&ran), 0);
    cr_assert_eq(weft_join(custom), 9);
    return 0;
}

Test(task, a_new_task_starts_in_place_of_a_finished_one, .timeout = 10)
{
    t_run_one_worker(start_in_place, NULL); /* the order holds without stealing */
}

static int cleanup_after_cancel(void *arg)
{
    (void)arg;
    if (weft_sleep_ms(60 * 1000) != -ECANCELED)
        return -EPROTO;
    /* The request was delivered once: the task may suspend again. */
    if (weft_sleep_ms(1) != 0)
        return -EPROTO;
    return 5;
}

static int cancel_then_cleanup(void *arg)
{
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_spawn(&t, cleanup_after_cancel, NULL), 0);
    t_until_parked_in(t, WHY_SLEEP);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t), 5);
    return 0;
}

Test(task, cancelled_task_may_clean_up_and_choose_its_result, .timeout = 10)
{
    t_run(cancel_then_cleanup, NULL);
}

/* Joins a sleeper that is asleep, so that the cancel can only reach it
 * through the join. */
static int join_forever(void *arg)
{
    weft_task_t *inner;

    cr_assert_eq(weft_spawn(&inner, sleeper, arg), 0);
    t_until_parked_in(inner, WHY_SLEEP);
    return weft_join(inner);
}

static int cancel_passes_through_join(void *arg)
{
    weft_task_t *outer;
    int seen = 1;

    (void)arg;
    cr_assert_eq(weft_spawn(&outer, join_forever, &seen), 0);
    t_until_parked_in(outer, WHY_JOIN);
    cr_assert_eq(weft_cancel(outer), 0);
    cr_assert_eq(weft_join(outer), -ECANCELED);
    cr_assert_eq(seen, -ECANCELED, "the joined task's sleep returned %d",
                 seen);
    return 0;
}

Test(task, cancel_of_a_joiner_cancels_the_joined, .timeout = 10)
{
    t_run(cancel_passes_through_join, NULL);
}

struct nest {
    int depth;
    atomic_int *count;
};

static int nested(void *arg)
{
    struct nest *n = arg;
    struct nest child = { n->depth - 1, n->count };
    weft_task_t *a, *b;

    atomic_fetch_add(n->count, 1);
    if (n->depth == 0)
        return 0;
    cr_assert_eq(weft_spawn(&a, nested, &child), 0);
    cr_assert_eq(weft_spawn(&b, nested, &child), 0);
    cr_assert_eq(weft_join(a), 0);
    cr_assert_eq(weft_join(b), 0);
    return 0;
}

static int nested_spawns(void *arg)
{
    atomic_int count = 0;
    struct nest root = { 10, &count };

    (void)arg;
    cr_assert_eq(nested(&root), 0);
    cr_assert_eq(atomic_load(&count), (1 << 11) - 1);
    return 0;
}

Test(task, nested_spawns_binary_tree, .timeout = 30)
{
    t_run(nested_spawns, NULL);
}

static int detached_many(void *arg)
{
    enum { N = 10000 };
    atomic_int count = 0;
    weft_task_t *t;

    (void)arg;
    for (int i = 0; i < N; i++) {
        if (i % 2)
            cr_assert_eq(weft_spawn(NULL, add_one, &count), 0);
        else {
            cr_assert_eq(weft_spawn(&t, add_one, &count), 0);
            cr_assert_eq(weft_detach(t), 0);
        }
    }
    while (atomic_load(&count) < N)
        cr_assert_eq(weft_sleep_ms(1), 0);
    return 0;
}

Test(task, detached_tasks_run_to_completion, .timeout = 30)
{
    t_run(detached_many, NULL);
}

static int named(void *arg)
{
    (void)arg;
    cr_assert_str_eq(weft_task_name(NULL), "worker-7");
    cr_assert_eq(weft_task_name(weft_self()), weft_task_name(NULL));
    return 0;
}

static int spawn_named(void *arg)
{
    weft_spawn_opts_t opts = { .name = "worker-7", .stack_size = 64 * 1024 };
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_spawn_ex(&t, named, NULL, &opts), 0);
    cr_assert_str_eq(weft_task_name(t), "worker-7");
    cr_assert_eq(weft_join(t), 0);
    opts.stack_size = 1024;
    cr_assert_eq(weft_spawn_ex(&t, named, NULL, &opts), -EINVAL);
    cr_assert_eq(weft_spawn(&t, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_join(NULL), -EINVAL);
    cr_assert_eq(weft_join(weft_self()), -EDEADLK);
    return 0;
}

Test(task, spawn_options_and_bad_arguments, .timeout = 10)
{
    t_run(spawn_named, NULL);
}

Test(task, suspending_outside_a_task_is_eperm, .timeout = 10)
{
    weft_task_t *t;

    cr_assert_eq(weft_sleep_ms(1), -EPERM);
    cr_assert_eq(weft_yield(), -EPERM);
    cr_assert_eq(weft_spawn(&t, add_one, NULL), -EPERM);
    cr_assert_null(weft_self());
    cr_assert_eq(weft_run(NULL, NULL), -EINVAL);
}

static int leaves_children(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        cr_assert_eq(weft_spawn(NULL, sleeper, NULL), 0);
    return 0;
}

Test(task, run_cancels_leftover_tasks_at_exit, .timeout = 10)
{
    t_run(leaves_children, NULL);
}
