/*
 * Combinators: gather, wait, wait_for, shield, as_completed, and timeout
 * scopes (nesting, reaching nested calls, expiry reported by exit).
 */
#include <errno.h>

#include "helpers.h"

static int returns_arg(void *arg)
{
    return (int)(intptr_t)arg;
}

static int sleep_forever(void *arg)
{
    int ret = weft_sleep_ms(3600 * 1000);

    if (arg)
        atomic_store((atomic_int *)arg, ret);
    return ret;
}

static int wait_event_then(void *arg)
{
    return weft_event_wait(arg, WEFT_NO_DEADLINE);
}

/* ---- gather -------------------------------------------------------------- */

static int gather_10k(void *arg)
{
    enum { N = 10000 };
    static weft_task_t *t[N];
    static int results[N];

    (void)arg;
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_spawn(&t[i], returns_arg, (void *)(intptr_t)i), 0);
    cr_assert_eq(weft_gather(t, N, results, 0), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(results[i], i);
    return 0;
}

Test(combine, gather_10000_tasks, .timeout = 60)
{
    t_run(gather_10k, NULL);
}

static int sleep_then(void *arg)
{
    cr_assert_eq(weft_sleep_ms(5), 0);
    return (int)(intptr_t)arg;
}

static int gather_failures(void *arg)
{
    weft_task_t *t[4];
    int results[4];

    (void)arg;
    cr_assert_eq(weft_spawn(&t[0], returns_arg, (void *)1), 0);
    cr_assert_eq(weft_spawn(&t[1], sleep_then, (void *)(intptr_t)-EIO), 0);
    cr_assert_eq(weft_spawn(&t[2], returns_arg, (void *)(intptr_t)-EPIPE), 0);
    cr_assert_eq(weft_spawn(&t[3], sleep_then, (void *)4), 0);
    /* First failure in argument order; the others were not cancelled. */
    cr_assert_eq(weft_gather(t, 4, results, 0), -EIO);
    cr_assert_eq(results[0], 1);
    cr_assert_eq(results[1], -EIO);
    cr_assert_eq(results[2], -EPIPE);
    cr_assert_eq(results[3], 4);
    cr_assert_eq(weft_spawn(&t[0], returns_arg, (void *)(intptr_t)-EIO), 0);
    cr_assert_eq(weft_spawn(&t[1], returns_arg, (void *)2), 0);
    cr_assert_eq(weft_gather(t, 2, results, WEFT_GATHER_RETURN_ALL), 0);
    cr_assert_eq(results[0], -EIO);
    cr_assert_eq(results[1], 2);
    cr_assert_eq(weft_gather(NULL, 0, NULL, 0), 0);
    return 0;
}

Test(combine, gather_reports_first_failure_after_all_finish, .timeout = 10)
{
    t_run(gather_failures, NULL);
}

/* Gathers two tasks that are asleep (seen[i] gets their sleep's result). */
static int gather_two_sleepers(void *arg)
{
    atomic_int *seen = arg;
    weft_task_t *t[2];
    int results[2];

    for (int i = 0; i < 2; i++) {
        cr_assert_eq(weft_spawn(&t[i], sleep_forever, &seen[i]), 0);
        t_until_parked_in(t[i], WHY_SLEEP);
    }
    int ret = weft_gather(t, 2, results, 0);
    cr_assert_eq(results[0], -ECANCELED);
    cr_assert_eq(results[1], -ECANCELED);
    return ret;
}

static int gather_cancelled(void *arg)
{
    atomic_int seen[2] = { 0, 0 };
    weft_task_t *g;

    (void)arg;
    cr_assert_eq(weft_spawn(&g, gather_two_sleepers, seen), 0);
    t_until_parked_in(g, WHY_JOIN);
    cr_assert_eq(weft_cancel(g), 0);
    cr_assert_eq(weft_join(g), -ECANCELED);
    /* Cancelled in their sleep, not before they started. */
    cr_assert_eq(atomic_load(&seen[0]), -ECANCELED);
    cr_assert_eq(atomic_load(&seen[1]), -ECANCELED);
    return 0;
}

Test(combine, cancelling_gather_cancels_its_tasks, .timeout = 10)
{
    t_run(gather_cancelled, NULL);
}

/* ---- wait ---------------------------------------------------------------- */

static int wait_modes(void *arg)
{
    weft_event_t e;
    weft_task_t *t[3];
    bool done[3];

    (void)arg;
    cr_assert_eq(weft_event_init(&e), 0);
    cr_assert_eq(weft_spawn(&t[0], wait_event_then, &e), 0);
    cr_assert_eq(weft_spawn(&t[1], returns_arg, (void *)(intptr_t)-EIO), 0);
    cr_assert_eq(weft_spawn(&t[2], sleep_forever, NULL), 0);
    cr_assert_eq(weft_wait(t, 3, WEFT_FIRST_EXCEPTION, WEFT_NO_DEADLINE,
                           done), 1);
    cr_assert(!done[0] && done[1] && !done[2]);
    /* Our own deadline passing is not an error. */
    cr_assert_eq(weft_wait(t, 3, WEFT_ALL_COMPLETED, weft_deadline_in_ms(2),
                           done), 1);
    cr_assert_eq(weft_event_set(&e), 0);
    cr_assert_geq(weft_wait(t, 1, WEFT_FIRST_COMPLETED, WEFT_NO_DEADLINE,
                            NULL), 1);
    weft_cancel(t[2]);
    cr_assert_eq(weft_wait(t, 3, WEFT_ALL_COMPLETED, WEFT_NO_DEADLINE, done),
                 3);
    cr_assert_eq(weft_join(t[0]), 0);
    cr_assert_eq(weft_join(t[1]), -EIO);
    cr_assert_eq(weft_join(t[2]), -ECANCELED);
    cr_assert_eq(weft_wait(t, 1, 42, WEFT_NO_DEADLINE, NULL), -EINVAL);
    return 0;
}

Test(combine, wait_modes_report_done_tasks, .timeout = 10)
{
    t_run(wait_modes, NULL);
}

static int wait_many_first(void *arg)
{
    enum { N = 100 };
    weft_task_t *t[N];
    bool done[N];

    (void)arg;
    for (int i = 0; i < N - 1; i++)
        cr_assert_eq(weft_spawn(&t[i], sleep_forever, NULL), 0);
    cr_assert_eq(weft_spawn(&t[N - 1], sleep_then, (void *)3), 0);
    cr_assert_eq(weft_wait(t, N, WEFT_FIRST_COMPLETED, WEFT_NO_DEADLINE,
                           done), 1);
    cr_assert(done[N - 1]);
    for (int i = 0; i < N - 1; i++)
        weft_cancel(t[i]);
    for (int i = 0; i < N - 1; i++)
        cr_assert_eq(weft_join(t[i]), -ECANCELED, "task %d", i);
    cr_assert_eq(weft_join(t[N - 1]), 3);
    return 0;
}

Test(combine, wait_first_completed_among_many, .timeout = 10)
{
    t_run(wait_many_first, NULL);
}

/* ---- wait_for and shield ------------------------------------------------- */

static int wait_for_cases(void *arg)
{
    atomic_int seen = 0;
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_spawn(&t, sleep_forever, &seen), 0);
    t_until_parked_in(t, WHY_SLEEP);
    cr_assert_eq(weft_wait_for(t, weft_deadline_in_ms(5)), -ETIMEDOUT);
    /* It returned only once the task had finished, cancelled. */
    cr_assert_eq(atomic_load(&seen), -ECANCELED);
    cr_assert_eq(weft_spawn(&t, returns_arg, (void *)9), 0);
    cr_assert_eq(weft_wait_for(t, WEFT_NO_DEADLINE), 9);
    return 0;
}

Test(combine, wait_for_cancels_on_timeout_and_waits, .timeout = 10)
{
    t_run(wait_for_cases, NULL);
}

struct shielded {
    weft_event_t go;
    weft_task_t *inner;
    int status;
};

static int await_shielded(void *arg)
{
    struct shielded *s = arg;

    return weft_shield(s->inner, &s->status);
}

static int shield_cases(void *arg)
{
    struct shielded s = { .status = 1 };
    weft_task_t *outer;

    (void)arg;
    cr_assert_eq(weft_event_init(&s.go), 0);
    cr_assert_eq(weft_spawn(&s.inner, wait_event_then, &s.go), 0);
    t_until_parked_in(s.inner, WHY_SYNC);
    cr_assert_eq(weft_spawn(&outer, await_shielded, &s), 0);
    t_until_parked_in(outer, WHY_JOIN);
    cr_assert_eq(weft_cancel(outer), 0);
    cr_assert_eq(weft_join(outer), -ECANCELED);
    cr_assert_eq(s.status, 1, "shield stored a status it did not have");
    /* The inner task was not cancelled: it still waits for its event, and
     * we still hold its handle. */
    t_until_parked_in(s.inner, WHY_SYNC);
    cr_assert_eq(weft_event_set(&s.go), 0);
    cr_assert_eq(weft_shield(s.inner, &s.status), 0);
    cr_assert_eq(s.status, 0);
    return 0;
}

Test(combine, shield_keeps_inner_task_running, .timeout = 10)
{
    t_run(shield_cases, NULL);
}

/* ---- as_completed -------------------------------------------------------- */

static int as_completed_order(void *arg)
{
    enum { N = 16 };
    weft_event_t ev[N];
    weft_task_t *t[N], *got;
    weft_as_completed_t it;

    (void)arg;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(weft_event_init(&ev[i]), 0);
        cr_assert_eq(weft_spawn(&t[i], wait_event_then, &ev[i]), 0);
    }
    cr_assert_eq(weft_as_completed_init(&it, t, N), 0);
    cr_assert_eq(weft_as_completed_next(&it, weft_deadline_in_ms(2), &got),
                 -ETIMEDOUT);
    /* Release them in a scrambled order; they come back in that order. */
    for (int k = 0; k < N; k++) {
        int i = (k * 7) % N;

        cr_assert_eq(weft_event_set(&ev[i]), 0);
        cr_assert_eq(weft_as_completed_next(&it, WEFT_NO_DEADLINE, &got), 0);
        cr_assert_eq(got, t[i]);
    }
    cr_assert_eq(weft_as_completed_next(&it, WEFT_NO_DEADLINE, &got),
                 -ENOENT);
    cr_assert_eq(weft_as_completed_destroy(&it), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    return 0;
}

Test(combine, as_completed_yields_in_completion_order, .timeout = 10)
{
    t_run(as_completed_order, NULL);
}

/* ---- timeout scopes ------------------------------------------------------ */

static int deep_wait(int depth, weft_queue_t *q)
{
    void *item;

    if (depth > 0)
        return deep_wait(depth - 1, q);
    return weft_queue_get(q, &item, WEFT_NO_DEADLINE);
}

static int nested_scopes(void *arg)
{
    weft_scope_t outer, inner;
    weft_queue_t q;

    (void)arg;
    cr_assert_eq(weft_queue_init(&q, 1, 0), 0);
    /* The inner (earlier) deadline wins and reaches nested calls. */
    cr_assert_eq(weft_scope_enter(&outer, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_scope_enter(&inner, weft_deadline_in_ms(5)), 0);
    cr_assert_eq(deep_wait(20, &q), -ETIMEDOUT);
    cr_assert_eq(weft_sleep_ms(3600 * 1000), -ETIMEDOUT);
    cr_assert_eq(weft_scope_exit(&inner), 1);
    cr_assert_eq(weft_sleep_ms(1), 0);
    cr_assert_eq(weft_scope_exit(&outer), 0);
    /* An earlier outer deadline beats a later inner one. */
    cr_assert_eq(weft_scope_enter(&outer, weft_deadline_in_ms(5)), 0);
    cr_assert_eq(weft_scope_enter(&inner, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(deep_wait(3, &q), -ETIMEDOUT);
    cr_assert_eq(weft_scope_exit(&inner), 0);
    cr_assert_eq(weft_scope_exit(&outer), 1);
    /* After the scopes, waits are unbounded again. */
    cr_assert_eq(weft_queue_put(&q, (void *)1, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(deep_wait(0, &q), 0);
    cr_assert_eq(weft_scope_exit(&outer), -EINVAL);
    cr_assert_eq(weft_queue_destroy(&q), 0);
    return 0;
}

Test(combine, nested_timeout_scopes_innermost_deadline_wins, .timeout = 10)
{
    t_run(nested_scopes, NULL);
}

static int scope_around_gather(void *arg)
{
    atomic_int seen = 0;
    weft_task_t *t[2];
    weft_scope_t s;
    int results[2];

    (void)arg;
    cr_assert_eq(weft_spawn(&t[0], returns_arg, (void *)5), 0);
    cr_assert_eq(weft_spawn(&t[1], sleep_forever, &seen), 0);
    t_until_parked_in(t[1], WHY_SLEEP);
    cr_assert_eq(weft_scope_enter(&s, weft_deadline_in_ms(5)), 0);
    cr_assert_eq(weft_gather(t, 2, results, 0), -ETIMEDOUT);
    cr_assert_eq(weft_scope_exit(&s), 1);
    cr_assert_eq(results[0], 5);
    cr_assert_eq(results[1], -ECANCELED);
    cr_assert_eq(atomic_load(&seen), -ECANCELED);
    return 0;
}

Test(combine, scope_expiry_cancels_gathered_tasks, .timeout = 10)
{
    t_run(scope_around_gather, NULL);
}

/* ---- awaiting oneself, shielding under an expiring scope ----------------- */

#include "runtime/task.h"

static int await_self(void *arg)
{
    int status = 7;

    (void)arg;
    cr_assert_eq(weft_wait_for(weft_self(), WEFT_NO_DEADLINE), -EDEADLK);
    cr_assert_eq(weft_wait_for(weft_self(), weft_deadline_in_ms(1)),
                 -EDEADLK);
    cr_assert_eq(weft_shield(weft_self(), &status), -EDEADLK);
    cr_assert_eq(status, 7);
    /* Nothing was cancelled: the task goes on suspending normally. */
    cr_assert_eq(weft_sleep_ms(1), 0);
    return 0;
}

Test(combine, wait_for_or_shield_on_the_caller_is_edeadlk, .timeout = 10)
{
    t_run(await_self, NULL);
}

static int shield_scope_expires(void *arg)
{
    weft_task_t *inner;
    weft_event_t go;
    weft_scope_t s;
    int status = 1;

    (void)arg;
    cr_assert_eq(weft_event_init(&go), 0);
    cr_assert_eq(weft_spawn(&inner, wait_event_then, &go), 0);
    cr_assert_eq(weft_scope_enter(&s, weft_deadline_in_ms(5)), 0);
    cr_assert_eq(weft_shield(inner, &status), -ETIMEDOUT);
    cr_assert_eq(weft_scope_exit(&s), 1);
    /* The inner task was neither cancelled nor released: it still waits
     * for the event, and its handle is ours to join. */
    cr_assert_eq(status, 1);
    cr_assert_not(weft__task_is_done(weft__task_of(inner)));
    cr_assert_not(atomic_load(&weft__task_of(inner)->cancel));
    cr_assert_eq(weft_event_set(&go), 0);
    cr_assert_eq(weft_join(inner), 0);
    cr_assert_eq(weft_event_destroy(&go), 0);
    return 0;
}

Test(combine, shield_under_an_expiring_scope_is_etimedout_and_leaves_the_task,
     .timeout = 10)
{
    t_run(shield_scope_expires, NULL);
}
