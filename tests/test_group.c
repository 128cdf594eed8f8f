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

/* Yields until a task joins g's first child (white-box: its joiners). */
static void t_until_child_joined(weft_group_t *g)
{
    struct group *gi = (struct group *)(void *)g;

    for (;;) {
        struct weft_task *child;
        bool joined;

        weft__spin_lock(&gi->lock);
        child = gi->head ? weft__task_of(gi->head->task) : NULL;
        weft__spin_unlock(&gi->lock);
        cr_assert_not_null(child);
        weft__spin_lock(&child->join_lock);
        joined = child->joiners != NULL;
        weft__spin_unlock(&child->join_lock);
        if (joined)
            return;
        cr_assert_eq(weft_yield(), 0);
    }
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
    t_until_child_joined(&g);
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
