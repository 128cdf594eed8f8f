/*
 * The local run queue (runtime/runq.h), driven directly: the owner's
 * claims (a batch of the oldest tasks taken with one CAS, never more than
 * half of the queue), the order it runs them in, what a thief or a
 * stuck worker's rescuer can still take, and every task taken exactly once
 * while thieves steal from an owner that pushes and pops (stress, TSan).
 * Test builds shrink the ring to WEFT_RUNQ_CAP = 8 slots.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "helpers.h"
#include "runtime/runq.h"
#include "runtime/task.h"

/* Task structs the queue carries; a thief's check reads their state. */
static struct weft_task *fake_tasks(size_t n)
{
    struct weft_task *t = calloc(n, sizeof(*t));

    cr_assert_not_null(t);
    for (size_t i = 0; i < n; i++)
        atomic_init(&t[i].state, TASK_SCHED);
    return t;
}

static struct weft__runq *new_runq(void)
{
    struct weft__runq *q = malloc(sizeof(*q));

    cr_assert_not_null(q);
    weft__runq_init(q);
    return q;
}

Test(runq, a_pop_claims_at_most_half_and_runs_oldest_first, .timeout = 10)
{
    struct weft__runq *q = new_runq(), *thief = new_runq();
    struct weft_task *t = fake_tasks(WEFT_RUNQ_CAP), *s;
    uint32_t n = WEFT_RUNQ_CAP, claimed = n / 2;

    for (uint32_t i = 0; i < n; i++)
        cr_assert_eq(weft__runq_push(q, &t[i]), i == 0, "push %u", i);
    cr_assert_eq(weft__runq_push(q, &t[0]), -1, "a full ring takes no more");
    cr_assert_eq(weft__runq_pop(q), &t[0]);
    /* Half went to the owner's claim (one of them returned), half stays
     * for thieves. */
    cr_assert_eq(weft__runq_len(q), n - 1);
    cr_assert_eq(weft__runq_stealable(q), n - claimed);
    /* A thief takes half of what is stealable, never a claimed task. */
    s = weft__runq_steal(q, thief);
    cr_assert(s >= &t[claimed] && s < &t[n], "stole a claimed task");
    /* The owner runs its claim, then the rest, in queue order. */
    for (uint32_t i = 1; i < claimed; i++)
        cr_assert_eq(weft__runq_pop(q), &t[i]);
    for (uint32_t i = claimed + (n - claimed) / 2; i < n; i++)
        cr_assert_eq(weft__runq_pop(q), &t[i]);
    cr_assert_null(weft__runq_pop(q));
    cr_assert_eq(weft__runq_len(q), 0);
    free(t);
    free(thief);
    free(q);
}

Test(runq, a_peek_shows_what_the_next_pop_returns, .timeout = 10)
{
    struct weft__runq *q = new_runq(), *thief = new_runq();
    struct weft_task *t = fake_tasks(WEFT_RUNQ_CAP), *p;
    int pops = 0;

    cr_assert_null(weft__runq_peek(q));
    for (uint32_t i = 0; i < WEFT_RUNQ_CAP; i++)
        cr_assert_geq(weft__runq_push(q, &t[i]), 0);
    /* From the ring, from the owner's claim, and after a steal. */
    while ((p = weft__runq_peek(q))) {
        cr_assert_eq(weft__runq_pop(q), p, "pop %d", pops);
        if (pops++ == 0)
            cr_assert_not_null(weft__runq_steal(q, thief));
    }
    cr_assert_null(weft__runq_pop(q));
    cr_assert_lt(pops, WEFT_RUNQ_CAP);
    free(t);
    free(thief);
    free(q);
}

Test(runq, one_or_two_tasks_leave_a_thief_all_but_one, .timeout = 10)
{
    struct weft__runq *q = new_runq();
    struct weft_task *t = fake_tasks(2);

    cr_assert_eq(weft__runq_push(q, &t[0]), 1);
    cr_assert_eq(weft__runq_push(q, &t[1]), 0);
    cr_assert_eq(weft__runq_pop(q), &t[0]);
    cr_assert_eq(weft__runq_stealable(q), 1);
    cr_assert_eq(weft__runq_pop(q), &t[1]);
    cr_assert_null(weft__runq_pop(q));
    free(t);
    free(q);
}

Test(runq, a_rescuer_takes_the_claimed_tasks_in_order, .timeout = 10)
{
    struct weft__runq *q = new_runq();
    struct weft_task *t = fake_tasks(WEFT_RUNQ_CAP);
    struct weft_task *out[WEFT_RUNQ_CLAIM_MAX];
    uint32_t n = WEFT_RUNQ_CAP, claimed = n / 2;

    for (uint32_t i = 0; i < n; i++)
        cr_assert_geq(weft__runq_push(q, &t[i]), 0);
    cr_assert_eq(weft__runq_pop(q), &t[0]);
    cr_assert_eq(weft__runq_take_claimed(q, out), claimed - 1);
    for (uint32_t i = 1; i < claimed; i++)
        cr_assert_eq(out[i - 1], &t[i]);
    cr_assert_eq(weft__runq_take_claimed(q, out), 0);
    cr_assert_eq(weft__runq_len(q), n - claimed);
    /* The owner goes on from the ring. */
    cr_assert_eq(weft__runq_pop(q), &t[claimed]);
    free(t);
    free(q);
}

/* ---- stress: owner and thieves ------------------------------------------ */

#define STRESS_TASKS 300000
#define STRESS_THIEVES 2

struct stress {
    struct weft__runq *owner;
    struct weft_task *tasks;
    atomic_uchar seen[STRESS_TASKS];
    atomic_long taken;
    atomic_bool error; /* a task taken twice, or not one of ours */
};

/* Any thread (Criterion asserts only on the test's own). */
static void take(struct stress *s, struct weft_task *t)
{
    ptrdiff_t i = t - s->tasks;

    if (i < 0 || i >= STRESS_TASKS || atomic_fetch_add(&s->seen[i], 1))
        atomic_store(&s->error, true);
    atomic_fetch_add(&s->taken, 1);
}

static uint32_t xorshift(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static void *thief_main(void *arg)
{
    struct stress *s = arg;
    struct weft__runq *mine = new_runq();

    while (atomic_load(&s->taken) < STRESS_TASKS && !atomic_load(&s->error)) {
        struct weft_task *t = weft__runq_steal(s->owner, mine);

        if (!t)
            continue;
        take(s, t);
        while ((t = weft__runq_pop(mine)))
            take(s, t);
    }
    free(mine);
    return NULL;
}

Test(runq, every_task_is_taken_once_under_stealing, .timeout = 120)
{
    struct stress *s = calloc(1, sizeof(*s));
    pthread_t thieves[STRESS_THIEVES];
    uint32_t x = 0x9e3779b9u, pushed = 0;

    cr_assert_not_null(s);
    s->owner = new_runq();
    s->tasks = fake_tasks(STRESS_TASKS);
    for (int i = 0; i < STRESS_THIEVES; i++)
        cr_assert_eq(pthread_create(&thieves[i], NULL, thief_main, s), 0);
    /* The owner pushes bursts and pops between them, so that its claims
     * and the thieves' steals meet on a ring that wraps. */
    while (pushed < STRESS_TASKS || weft__runq_len(s->owner)) {
        uint32_t burst = xorshift(&x) % (WEFT_RUNQ_CAP + 2);
        uint32_t pops = xorshift(&x) % 4;
        struct weft_task *t;

        while (burst-- && pushed < STRESS_TASKS &&
               weft__runq_push(s->owner, &s->tasks[pushed]) >= 0)
            pushed++;
        while (pops-- && (t = weft__runq_pop(s->owner)))
            take(s, t);
    }
    for (int i = 0; i < STRESS_THIEVES; i++)
        pthread_join(thieves[i], NULL);
    cr_assert_not(atomic_load(&s->error), "a task was taken twice");
    cr_assert_eq(atomic_load(&s->taken), STRESS_TASKS);
    for (long i = 0; i < STRESS_TASKS; i++)
        cr_assert_eq(atomic_load(&s->seen[i]), 1, "task %ld lost", i);
    free(s->tasks);
    free(s->owner);
    free(s);
}
