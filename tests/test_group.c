/*
 * Task groups: waiting for all, the first failure cancelling siblings,
 * cancelling a whole group, children spawning into their own group, and a
 * cancelled or timed-out waiter.
 */
#include <errno.h>

#include "helpers.h"

static int returns_arg(void *arg)
{
    return (int)(intptr_t)arg;
}

static int sleep_forever(void *arg)
{
    (void)arg;
    return weft_sleep_ms(3600 * 1000);
}

/* A child that publishes its task (a group hands out no handles, and the
 * child cannot end before it is cancelled), then sleeps; slept holds what
 * its sleep returned, 1 until then. */
struct sleeper {
    weft_task_t *_Atomic self;
    atomic_int slept;
};

static int sleep_published(void *arg)
{
    struct sleeper *s = arg;
    int ret;

    atomic_store(&s->self, weft_self());
    ret = weft_sleep_ms(3600 * 1000);
    atomic_store(&s->slept, ret);
    return ret;
}

/* Spawns n sleep_published children into g and waits until each sleeps. */
static void t_spawn_sleepers(weft_group_t *g, struct sleeper *s, int *st,
                             int n)
{
    for (int i = 0; i < n; i++) {
        atomic_init(&s[i].self, NULL);
        atomic_init(&s[i].slept, 1);
        cr_assert_eq(weft_group_spawn(g, sleep_published, &s[i], &st[i]), 0);
    }
    for (int i = 0; i < n; i++) {
        while (!atomic_load(&s[i].self))
            cr_assert_eq(weft_yield(), 0);
        t_until_parked_in(atomic_load(&s[i].self), WHY_SLEEP);
    }
}

static int all_succeed(void *arg)
{
    enum { N = 1000 };
    static int status[N];
    weft_group_t g;

    (void)arg;
    cr_assert_eq(weft_group_init(&g), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_group_spawn(&g, returns_arg, (void *)(intptr_t)i,
                                      &status[i]), 0);
    cr_assert_eq(weft_group_wait(&g), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(status[i], i);
    cr_assert_eq(weft_group_destroy(&g), 0);
    return 0;
}

Test(group, waits_for_every_child, .timeout = 30)
{
    t_run(all_succeed, NULL);
}

static int fail_after_start(void *arg)
{
    cr_assert_eq(weft_event_wait(arg, WEFT_NO_DEADLINE), 0);
    return -EIO;
}

static int one_fails(void *arg)
{
    enum { N = 1000 };
    static int status[N];
    weft_event_t go;
    weft_group_t g;
    int cancelled = 0;

    (void)arg;
    cr_assert_eq(weft_event_init(&go), 0);
    cr_assert_eq(weft_group_init(&g), 0);
    cr_assert_eq(weft_group_spawn(&g, fail_after_start, &go, &status[0]), 0);
    for (int i = 1; i < N; i++)
        cr_assert_eq(weft_group_spawn(&g, sleep_forever, NULL, &status[i]),
                     0);
    cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(weft_event_set(&go), 0);
    /* The siblings sleep for an hour: only the cancel ends them. */
    cr_assert_eq(weft_group_wait(&g), -EIO);
    cr_assert_eq(status[0], -EIO);
    for (int i = 1; i < N; i++)
        cancelled += status[i] == -ECANCELED;
    cr_assert_eq(cancelled, N - 1);
    return 0;
}

Test(group, first_failure_cancels_999_siblings, .timeout = 30)
{
    t_run(one_fails, NULL);
}

static int spawn_after_failure(void *arg)
{
    weft_group_t g;
    int st;

    (void)arg;
    cr_assert_eq(weft_group_init(&g), 0);
    cr_assert_eq(weft_group_spawn(&g, returns_arg, (void *)(intptr_t)-EPIPE,
                                  &st), 0);
    while (weft_group_spawn(&g, sleep_forever, NULL, NULL) == 0)
        cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(weft_group_spawn(&g, returns_arg, NULL, NULL), -ECANCELED);
    cr_assert_eq(weft_group_wait(&g), -EPIPE);
    cr_assert_eq(st, -EPIPE);
    return 0;
}

Test(group, failed_group_refuses_new_children, .timeout = 10)
{
    t_run(spawn_after_failure, NULL);
}

struct tree {
    weft_group_t *g;
    int depth;
};

static struct tree nodes[1 << 9];
static atomic_int nnodes;

static int grow_tree(void *arg)
{
    struct tree *t = arg;

    if (t->depth == 0)
        return 0;
    /* Children spawn into the group they belong to. */
    for (int i = 0; i < 2; i++) {
        struct tree *kid = &nodes[atomic_fetch_add(&nnodes, 1)];

        *kid = (struct tree){ t->g, t->depth - 1 };
        cr_assert_eq(weft_group_spawn(t->g, grow_tree, kid, NULL), 0);
    }
    cr_assert_eq(weft_yield(), 0);
    return 0;
}

static int child_spawns(void *arg)
{
    weft_group_t g;

    (void)arg;
    cr_assert_eq(weft_group_init(&g), 0);
    atomic_store(&nnodes, 1);
    nodes[0] = (struct tree){ &g, 8 };
    cr_assert_eq(weft_group_spawn(&g, grow_tree, &nodes[0], NULL), 0);
    cr_assert_eq(weft_group_wait(&g), 0);
    cr_assert_eq(atomic_load(&nnodes), (1 << 9) - 1);
    return 0;
}

Test(group, children_spawn_into_their_own_group, .timeout = 30)
{
    t_run(child_spawns, NULL);
}

static int cancel_whole(void *arg)
{
    struct sleeper s[10];
    weft_group_t g;
    int st[10];

    (void)arg;
    cr_assert_eq(weft_group_init(&g), 0);
    t_spawn_sleepers(&g, s, st, 10);
    cr_assert_eq(weft_group_cancel(&g), 0);
    cr_assert_eq(weft_group_wait(&g), -ECANCELED);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(st[i], -ECANCELED);
        cr_assert_eq(atomic_load(&s[i].slept), -ECANCELED, "child %d", i);
    }
    cr_assert_eq(weft_group_destroy(&g), 0);
    return 0;
}

Test(group, cancel_cancels_every_child, .timeout = 10)
{
    t_run(cancel_whole, NULL);
}

/* Waits on a group of five children that are asleep (within a 5 ms scope
 * if arg is not NULL); only a cancellation of the group ends them. */
static int wait_on_sleepers(void *arg)
{
    struct sleeper s[5];
    weft_scope_t scope;
    weft_group_t g;
    int st[5];

    cr_assert_eq(weft_group_init(&g), 0);
    t_spawn_sleepers(&g, s, st, 5);
    if (arg)
        cr_assert_eq(weft_scope_enter(&scope, weft_deadline_in_ms(5)), 0);
    int ret = weft_group_wait(&g);
    if (arg)
        cr_assert_eq(weft_scope_exit(&scope), 1);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(st[i], -ECANCELED);
        cr_assert_eq(atomic_load(&s[i].slept), -ECANCELED, "child %d", i);
    }
    cr_assert_eq(weft_group_destroy(&g), 0);
    return ret;
}

static int waiter_interrupted(void *arg)
{
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_spawn(&t, wait_on_sleepers, NULL), 0);
    t_until_parked_in(t, WHY_JOIN);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t), -ECANCELED);
    cr_assert_eq(wait_on_sleepers(&t), -ETIMEDOUT);
    return 0;
}

Test(group, cancelled_or_timed_out_waiter_cancels_children, .timeout = 10)
{
    t_run(waiter_interrupted, NULL);
}

/* ---- destroy while awaited ----------------------------------------------- */

#include "runtime/group.h"

static int wait_event_set(void *arg)
{
    return weft_event_wait(arg, WEFT_NO_DEADLINE);
}

static int wait_group(void *arg)
{
    return weft_group_wait(arg);
}

static int destroy_while_awaited(void *arg)
{
    weft_event_t go;
    weft_group_t g;
    weft_task_t *t;
    int status = 1;

    (void)arg;
    cr_assert_eq(weft_event_init(&go), 0);
    cr_assert_eq(weft_group_init(&g), 0);
    cr_assert_eq(weft_group_spawn(&g, wait_event_set, &go, &status), 0);
    cr_assert_eq(weft_group_destroy(&g), -EBUSY);
    cr_assert_eq(weft_spawn(&t, wait_group, &g), 0);
    t_until_parked_in(t, WHY_JOIN);
    cr_assert_eq(weft_group_destroy(&g), -EBUSY);
    cr_assert_eq(weft_event_set(&go), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(status, 0);
    cr_assert_eq(weft_group_destroy(&g), 0);
    cr_assert_eq(weft_event_destroy(&go), 0);
    return 0;
}

Test(group, destroy_is_ebusy_while_a_task_waits_then_succeeds, .timeout = 10)
{
    t_run(destroy_while_awaited, NULL);
}


/* ---- what a group holds: its live children only --------------------------- */

/* Spawns fn(arg) into g n times, statuses in st, and waits until each has
 * ended: the group then holds none of them. */
static void t_spawn_ended(weft_group_t *g, weft_fn_t fn, int *st, int n)
{
    for (int i = 0; i < n; i++)
        cr_assert_eq(weft_group_spawn(g, fn, (void *)(intptr_t)i, &st[i]),
                     0);
    while (weft__group_live(g))
        cr_assert_eq(weft_yield(), 0);
}

enum { CHURN = 1000000, ALIVE = 64 };

static int give_back_slot(void *arg)
{
    return weft_sem_release(arg);
}

/* A supervisor's life: a million short children, at most ALIVE at once
 * (each holds a slot of a semaphore until it ends). */
static int churn(void *arg)
{
    weft_sem_t slots;
    weft_group_t g;

    (void)arg;
    cr_assert_eq(weft_sem_init(&slots, ALIVE), 0);
    cr_assert_eq(weft_group_init(&g), 0);
    for (int i = 1; i <= CHURN; i++) {
        cr_assert_eq(weft_sem_acquire(&slots, WEFT_NO_DEADLINE), 0);
        cr_assert_eq(weft_group_spawn(&g, give_back_slot, &slots, NULL), 0);
        if (i % (CHURN / 8))
            continue;
        /* ALIVE children hold a slot, and at most one more per worker
         * gave its slot back and has yet to end. In use besides them:
         * this task and the runtime's shutdown task. */
        cr_assert_leq(weft__group_live(&g), 2 * ALIVE, "after %d", i);
        cr_assert_leq(t_structs_in_use(), 2 * ALIVE + 2, "after %d", i);
    }
    cr_assert_eq(weft_group_wait(&g), 0);
    cr_assert_eq(weft__group_live(&g), 0);
    cr_assert_eq(weft_group_destroy(&g), 0);
    cr_assert_eq(weft_sem_destroy(&slots), 0);
    return 0;
}

Test(group, a_million_short_children_hold_memory_for_the_live_ones_only,
     .timeout = 300)
{
    t_run(churn, NULL);
}

/* A child of a failed group that goes on after its cancellation: it waits
 * for `go`, then returns `ret`. cancelled holds what its sleep returned. */
struct late {
    weft_task_t *_Atomic self;
    atomic_int cancelled;
    weft_event_t *go;
    int ret;
};

static int end_late(void *arg)
{
    struct late *l = arg;

    atomic_store(&l->self, weft_self());
    atomic_store(&l->cancelled, weft_sleep_ms(3600 * 1000));
    cr_assert_eq(weft_event_wait(l->go, WEFT_NO_DEADLINE), 0);
    return l->ret;
}

static int failure_among_ended_and_later_children(void *arg)
{
    enum { EARLY = 100, SLEEPERS = 10 };
    int early[EARLY], st[SLEEPERS], late_st[2] = { 1, 1 }, fail_st = 1;
    struct late late[2] = { { .ret = -EPIPE }, { .ret = 7 } };
    struct sleeper s[SLEEPERS];
    weft_event_t go, fail;
    weft_group_t g;

    (void)arg;
    cr_assert_eq(weft_event_init(&go), 0);
    cr_assert_eq(weft_event_init(&fail), 0);
    cr_assert_eq(weft_group_init(&g), 0);
    /* Ended and forgotten before the failure; their statuses are stored
     * as they end, not by the wait. */
    t_spawn_ended(&g, returns_arg, early, EARLY);
    for (int i = 0; i < EARLY; i++)
        cr_assert_eq(early[i], i);
    t_spawn_sleepers(&g, s, st, SLEEPERS);
    for (int i = 0; i < 2; i++) {
        late[i].go = &go;
        atomic_init(&late[i].self, NULL);
        atomic_init(&late[i].cancelled, 1);
        cr_assert_eq(weft_group_spawn(&g, end_late, &late[i], &late_st[i]),
                     0);
        while (!atomic_load(&late[i].self))
            cr_assert_eq(weft_yield(), 0);
        t_until_parked_in(atomic_load(&late[i].self), WHY_SLEEP);
    }
    cr_assert_eq(weft_group_spawn(&g, fail_after_start, &fail, &fail_st), 0);
    cr_assert_eq(weft_event_set(&fail), 0);
    /* The failure cancels every live child; two of them end later, one
     * with a failure of its own that must not replace the first. */
    for (int i = 0; i < 2; i++)
        while (atomic_load(&late[i].cancelled) == 1)
            cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(weft_event_set(&go), 0);
    cr_assert_eq(weft_group_wait(&g), -EIO);
    cr_assert_eq(fail_st, -EIO);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(atomic_load(&late[i].cancelled), -ECANCELED);
    cr_assert_eq(late_st[0], -EPIPE);
    cr_assert_eq(late_st[1], 7);
    for (int i = 0; i < SLEEPERS; i++)
        cr_assert_eq(st[i], -ECANCELED, "sleeper %d", i);
    cr_assert_eq(weft_group_spawn(&g, returns_arg, NULL, NULL), -ECANCELED);
    cr_assert_eq(weft_group_destroy(&g), 0);
    return 0;
}

Test(group, first_failure_wins_among_children_ended_before_and_after_it,
     .timeout = 30)
{
    t_run(failure_among_ended_and_later_children, NULL);
}

static int cancel_ended_and_live(void *arg)
{
    enum { EARLY = 50, SLEEPERS = 10 };
    int early[EARLY], st[SLEEPERS];
    struct sleeper s[SLEEPERS];
    weft_group_t g;

    (void)arg;
    cr_assert_eq(weft_group_init(&g), 0);
    t_spawn_ended(&g, returns_arg, early, EARLY);
    t_spawn_sleepers(&g, s, st, SLEEPERS);
    cr_assert_eq(weft__group_live(&g), SLEEPERS);
    cr_assert_eq(weft_group_destroy(&g), -EBUSY);
    cr_assert_eq(weft_group_cancel(&g), 0);
    cr_assert_eq(weft_group_wait(&g), -ECANCELED);
    /* The ended children keep the statuses they ended with. */
    for (int i = 0; i < EARLY; i++)
        cr_assert_eq(early[i], i);
    for (int i = 0; i < SLEEPERS; i++) {
        cr_assert_eq(st[i], -ECANCELED);
        cr_assert_eq(atomic_load(&s[i].slept), -ECANCELED, "child %d", i);
    }
    cr_assert_eq(weft__group_live(&g), 0);
    cr_assert_eq(weft_group_destroy(&g), 0);
    return 0;
}

Test(group, cancel_of_a_group_with_ended_and_live_children, .timeout = 30)
{
    t_run(cancel_ended_and_live, NULL);
}

/* A group whose children all ended holds nothing: it may be destroyed
 * without a wait. */
static int destroy_once_ended(void *arg)
{
    int st[10];
    weft_group_t g;

    (void)arg;
    cr_assert_eq(weft_group_init(&g), 0);
    t_spawn_ended(&g, returns_arg, st, 10);
    cr_assert_eq(weft_group_destroy(&g), 0);
    return 0;
}

Test(group, destroy_without_a_wait_once_every_child_ended, .timeout = 10)
{
    t_run(destroy_once_ended, NULL);
}

/* ---- debug mode ----------------------------------------------------------- */

#include <stdlib.h>
#include <unistd.h>

static int child_fails(void *arg)
{
    weft_group_t g;
    int st = 1;

    (void)arg;
    cr_assert_eq(weft_group_init(&g), 0);
    cr_assert_eq(weft_group_spawn(&g, returns_arg, (void *)(intptr_t)-EIO,
                                  &st), 0);
    cr_assert_eq(weft_group_wait(&g), -EIO);
    cr_assert_eq(st, -EIO);
    return 0;
}

/* Debug mode reports a failure nobody hears of (a detached task's); the
 * failure of a group child reaches the group, handle or not. */
Test(group, failed_child_is_not_reported_as_unheard_in_debug_mode,
     .timeout = 10)
{
    const char *out = t_run_debug(child_fails, NULL);

    cr_assert_null(strstr(out, "failed with"), "stderr:\n%s", out);
}
