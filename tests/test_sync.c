/*
 * Synchronisation primitives: mutex, semaphore, event, condition, barrier,
 * wait group. Stress tests run many tasks across every worker; cancellation
 * tests race a cancel against a hand-off and check nothing is lost.
 */
#include <errno.h>

#include "helpers.h"
#include "runtime/sync.h"

/* Yields until n tasks wait in q (white-box: the list's length). */
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

/* Yields until q has a waiter or t has finished. */
static void t_until_waiting_or_done(struct weft__spin *lock,
                                    struct weft__waitq *q, weft_task_t *t)
{
    for (;;) {
        size_t have;

        weft__spin_lock(lock);
        have = q->n;
        weft__spin_unlock(lock);
        if (have || weft__task_is_done(weft__task_of(t)))
            return;
        cr_assert_eq(weft_yield(), 0);
    }
}

static struct mutex *t_mutex(weft_mutex_t *m)
{
    return (struct mutex *)(void *)m;
}

static void t_join_all(weft_task_t **t, int n, int want)
{
    for (int i = 0; i < n; i++)
        cr_assert_eq(weft_join(t[i]), want, "task %d", i);
}

/* ---- mutex --------------------------------------------------------------- */

struct counted {
    weft_mutex_t m;
    long counter; /* deliberately not atomic: the mutex must protect it */
    int iters;
};

static int increment_locked(void *arg)
{
    struct counted *c = arg;

    for (int i = 0; i < c->iters; i++) {
        cr_assert_eq(weft_mutex_lock(&c->m, WEFT_NO_DEADLINE), 0);
        long v = c->counter;
        if (i % 7 == 0)
            cr_assert_eq(weft_yield(), 0); /* hold it across a switch */
        c->counter = v + 1;
        cr_assert_eq(weft_mutex_unlock(&c->m), 0);
    }
    return 0;
}

static int mutex_stress(void *arg)
{
    enum { TASKS = 64 };
    static struct counted c;
    weft_task_t *t[TASKS];

    (void)arg;
    cr_assert_eq(weft_mutex_init(&c.m), 0);
    c.counter = 0;
    c.iters = 100000 / TASKS;
    for (int i = 0; i < TASKS; i++)
        cr_assert_eq(weft_spawn(&t[i], increment_locked, &c), 0);
    t_join_all(t, TASKS, 0);
    cr_assert_eq(c.counter, (long)TASKS * c.iters);
    cr_assert_eq(weft_mutex_destroy(&c.m), 0);
    return 0;
}

Test(sync, mutex_excludes_under_stress_across_workers, .timeout = 120)
{
    t_run(mutex_stress, NULL);
}

struct order {
    weft_mutex_t m;
    int next;
    int seen[8];
};

struct order_arg {
    struct order *o;
    int id;
};

static int lock_and_record(void *arg)
{
    struct order_arg *a = arg;

    cr_assert_eq(weft_mutex_lock(&a->o->m, WEFT_NO_DEADLINE), 0);
    a->o->seen[a->o->next++] = a->id;
    cr_assert_eq(weft_mutex_unlock(&a->o->m), 0);
    return 0;
}

static int mutex_fifo(void *arg)
{
    struct order o = { .next = 0 };
    struct order_arg a[8];
    weft_task_t *t[8];

    (void)arg;
    cr_assert_eq(weft_mutex_init(&o.m), 0);
    cr_assert_eq(weft_mutex_lock(&o.m, WEFT_NO_DEADLINE), 0);
    for (int i = 0; i < 8; i++) {
        a[i] = (struct order_arg){ &o, i };
        cr_assert_eq(weft_spawn(&t[i], lock_and_record, &a[i]), 0);
        t_until_waiting(&t_mutex(&o.m)->lock, &t_mutex(&o.m)->waiters, i + 1);
    }
    cr_assert_eq(weft_mutex_unlock(&o.m), 0);
    /* Barging: the releasing task tries to take it straight back. */
    cr_assert_eq(weft_mutex_try_lock(&o.m), -EAGAIN);
    t_join_all(t, 8, 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(o.seen[i], i, "hand-off out of order at %d", i);
    return 0;
}

Test(sync, mutex_hands_off_in_fifo_order_without_barging, .timeout = 10)
{
    t_run(mutex_fifo, NULL);
}

static int lock_forever(void *arg)
{
    return weft_mutex_lock(arg, WEFT_NO_DEADLINE);
}

static int mutex_errors(void *arg)
{
    weft_mutex_t m;
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_mutex_init(&m), 0);
    cr_assert_eq(weft_mutex_unlock(&m), -EPERM);
    cr_assert_eq(weft_mutex_lock(&m, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_mutex_lock(&m, WEFT_NO_DEADLINE), -EDEADLK);
    cr_assert_eq(weft_mutex_destroy(&m), -EBUSY);
    /* A waiter whose deadline passes leaves without the lock. */
    cr_assert_eq(weft_spawn(&t, lock_forever, &m), 0);
    t_until_waiting(&t_mutex(&m)->lock, &t_mutex(&m)->waiters, 1);
    weft_cancel(t);
    cr_assert_eq(weft_join(t), -ECANCELED);
    cr_assert_eq(t_mutex(&m)->waiters.n, 0);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(weft_mutex_try_lock(&m), 0);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(weft_mutex_destroy(&m), 0);
    return 0;
}

Test(sync, mutex_errors_and_cancel_while_waiting, .timeout = 10)
{
    t_run(mutex_errors, NULL);
}

static int lock_with_deadline(void *arg)
{
    return weft_mutex_lock(arg, weft_deadline_in_ms(5));
}

static int mutex_deadline(void *arg)
{
    weft_mutex_t m;
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_mutex_init(&m), 0);
    cr_assert_eq(weft_mutex_lock(&m, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_spawn(&t, lock_with_deadline, &m), 0);
    cr_assert_eq(weft_join(t), -ETIMEDOUT);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    return 0;
}

Test(sync, mutex_lock_times_out, .timeout = 10)
{
    t_run(mutex_deadline, NULL);
}

/* The waiter is cancelled at the moment the lock is handed to it: it either
 * got the lock (and the cancel stays pending) or did not; the lock is never
 * lost. */
static int lock_then_report(void *arg)
{
    weft_mutex_t *m = arg;
    int ret = weft_mutex_lock(m, WEFT_NO_DEADLINE);

    if (ret == 0) {
        cr_assert_eq(weft_yield(), -ECANCELED, "pending cancel was lost");
        cr_assert_eq(weft_mutex_unlock(m), 0);
        return 1;
    }
    cr_assert_eq(ret, -ECANCELED);
    return 0;
}

static int mutex_cancel_race(void *arg)
{
    weft_mutex_t m;
    weft_task_t *t;
    int ret;

    (void)arg;
    cr_assert_eq(weft_mutex_init(&m), 0);
    for (int i = 0; i < 2000; i++) {
        cr_assert_eq(weft_mutex_lock(&m, WEFT_NO_DEADLINE), 0);
        cr_assert_eq(weft_spawn(&t, lock_then_report, &m), 0);
        t_until_waiting(&t_mutex(&m)->lock, &t_mutex(&m)->waiters, 1);
        weft_cancel(t);
        cr_assert_eq(weft_mutex_unlock(&m), 0);
        /* Either outcome is fine (1: it got the lock, 0: it did not); the
         * lock must survive both. */
        ret = weft_join(t);
        cr_assert(ret == 0 || ret == 1, "round %d: waiter returned %d", i,
                  ret);
        cr_assert_eq(weft_mutex_try_lock(&m), 0, "lock lost in round %d", i);
        cr_assert_eq(weft_mutex_unlock(&m), 0);
    }
    cr_assert_eq(weft_mutex_destroy(&m), 0);
    return 0;
}

Test(sync, mutex_cancel_racing_hand_off_loses_nothing, .timeout = 60)
{
    t_run(mutex_cancel_race, NULL);
}

/* ---- semaphore ----------------------------------------------------------- */

struct limited {
    weft_sem_t s;
    atomic_int inside;
    atomic_int most;
    int iters;
};

static int use_permit(void *arg)
{
    struct limited *l = arg;

    for (int i = 0; i < l->iters; i++) {
        cr_assert_eq(weft_sem_acquire(&l->s, WEFT_NO_DEADLINE), 0);
        int now = atomic_fetch_add(&l->inside, 1) + 1;
        int most = atomic_load(&l->most);
        while (now > most && !atomic_compare_exchange_weak(&l->most, &most,
                                                           now))
            ;
        if (i % 5 == 0)
            cr_assert_eq(weft_yield(), 0);
        atomic_fetch_sub(&l->inside, 1);
        cr_assert_eq(weft_sem_release(&l->s), 0);
    }
    return 0;
}

static int sem_stress(void *arg)
{
    enum { TASKS = 50, PERMITS = 3 };
    static struct limited l;
    weft_task_t *t[TASKS];

    (void)arg;
    cr_assert_eq(weft_sem_init_bounded(&l.s, PERMITS), 0);
    l.iters = 100000 / TASKS;
    for (int i = 0; i < TASKS; i++)
        cr_assert_eq(weft_spawn(&t[i], use_permit, &l), 0);
    t_join_all(t, TASKS, 0);
    cr_assert_leq(atomic_load(&l.most), PERMITS);
    cr_assert_eq(weft_sem_value(&l.s), PERMITS);
    cr_assert_eq(weft_sem_release(&l.s), -EOVERFLOW);
    cr_assert_eq(weft_sem_destroy(&l.s), 0);
    return 0;
}

Test(sync, sem_limits_holders_under_stress, .timeout = 120)
{
    t_run(sem_stress, NULL);
}

static int acquire_once(void *arg)
{
    return weft_sem_acquire(arg, WEFT_NO_DEADLINE);
}

static int sem_cancel_race(void *arg)
{
    struct sem *si;
    weft_sem_t s;
    weft_task_t *t;
    int held = 0, ret;

    (void)arg;
    si = (struct sem *)(void *)&s;
    cr_assert_eq(weft_sem_init(&s, 0), 0);
    for (int i = 0; i < 2000; i++) {
        cr_assert_eq(weft_spawn(&t, acquire_once, &s), 0);
        /* A permit left by an earlier round (its waiter withdrew before the
         * release) lets t take it without waiting at all. */
        t_until_waiting_or_done(&si->lock, &si->waiters, t);
        weft_cancel(t);
        cr_assert_eq(weft_sem_release(&s), 0);
        ret = weft_join(t);
        cr_assert(ret == 0 || ret == -ECANCELED, "round %d: acquire returned "
                  "%d", i, ret);
        held += ret == 0; /* the waiter kept the permit it was handed */
    }
    /* Permits conserved: handed ones were kept, the rest are still here. */
    cr_assert_eq(weft_sem_value(&s) + held, 2000);
    cr_assert_eq(weft_sem_try_acquire(&s) == 0, held < 2000);
    return 0;
}

Test(sync, sem_cancel_racing_release_conserves_permits, .timeout = 60)
{
    t_run(sem_cancel_race, NULL);
}

static int sem_basics(void *arg)
{
    weft_sem_t s;

    (void)arg;
    cr_assert_eq(weft_sem_init(&s, 1), 0);
    cr_assert_eq(weft_sem_try_acquire(&s), 0);
    cr_assert_eq(weft_sem_try_acquire(&s), -EAGAIN);
    cr_assert_eq(weft_sem_acquire(&s, weft_deadline_in_ms(2)), -ETIMEDOUT);
    cr_assert_eq(weft_sem_release(&s), 0);
    cr_assert_eq(weft_sem_release(&s), 0); /* unbounded: may exceed */
    cr_assert_eq(weft_sem_value(&s), 2);
    cr_assert_eq(weft_sem_init_bounded(&s, 0), -EINVAL);
    return 0;
}

Test(sync, sem_try_and_deadline, .timeout = 10)
{
    t_run(sem_basics, NULL);
}

/* ---- event --------------------------------------------------------------- */

static int wait_event(void *arg)
{
    return weft_event_wait(arg, WEFT_NO_DEADLINE);
}

static int event_broadcast(void *arg)
{
    enum { WAITERS = 1000 };
    static weft_task_t *t[WAITERS];
    struct event *ei;
    weft_event_t e;

    (void)arg;
    ei = (struct event *)(void *)&e;
    cr_assert_eq(weft_event_init(&e), 0);
    cr_assert_eq(weft_event_is_set(&e), 0);
    cr_assert_eq(weft_event_wait(&e, weft_deadline_in_ms(1)), -ETIMEDOUT);
    for (int i = 0; i < WAITERS; i++)
        cr_assert_eq(weft_spawn(&t[i], wait_event, &e), 0);
    t_until_waiting(&ei->lock, &ei->waiters, WAITERS);
    cr_assert_eq(weft_event_set(&e), 0);
    t_join_all(t, WAITERS, 0);
    cr_assert_eq(weft_event_wait(&e, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_event_clear(&e), 0);
    cr_assert_eq(weft_spawn(&t[0], wait_event, &e), 0);
    t_until_waiting(&ei->lock, &ei->waiters, 1);
    weft_cancel(t[0]);
    cr_assert_eq(weft_join(t[0]), -ECANCELED);
    cr_assert_eq(weft_event_destroy(&e), 0);
    return 0;
}

Test(sync, event_wakes_every_waiter_across_workers, .timeout = 30)
{
    t_run(event_broadcast, NULL);
}

/* ---- condition ----------------------------------------------------------- */

struct box {
    weft_mutex_t m;
    weft_cond_t c;
    long items;    /* under m */
    long taken;    /* under m */
    bool finished; /* under m */
};

static int cond_consumer(void *arg)
{
    struct box *b = arg;

    cr_assert_eq(weft_mutex_lock(&b->m, WEFT_NO_DEADLINE), 0);
    for (;;) {
        while (b->items == 0 && !b->finished)
            cr_assert_eq(weft_cond_wait(&b->c, &b->m, WEFT_NO_DEADLINE), 0);
        if (b->items == 0)
            break;
        b->items--;
        b->taken++;
    }
    cr_assert_eq(weft_mutex_unlock(&b->m), 0);
    return 0;
}

static int cond_stress(void *arg)
{
    enum { CONSUMERS = 8, ITEMS = 100000 };
    static struct box b;
    weft_task_t *t[CONSUMERS];

    (void)arg;
    cr_assert_eq(weft_mutex_init(&b.m), 0);
    cr_assert_eq(weft_cond_init(&b.c), 0);
    for (int i = 0; i < CONSUMERS; i++)
        cr_assert_eq(weft_spawn(&t[i], cond_consumer, &b), 0);
    for (int i = 0; i < ITEMS; i++) {
        cr_assert_eq(weft_mutex_lock(&b.m, WEFT_NO_DEADLINE), 0);
        b.items++;
        cr_assert_geq(weft_cond_notify(&b.c, 1), 0);
        cr_assert_eq(weft_mutex_unlock(&b.m), 0);
    }
    cr_assert_eq(weft_mutex_lock(&b.m, WEFT_NO_DEADLINE), 0);
    b.finished = true;
    cr_assert_geq(weft_cond_notify_all(&b.c), 0);
    cr_assert_eq(weft_mutex_unlock(&b.m), 0);
    t_join_all(t, CONSUMERS, 0);
    cr_assert_eq(b.taken, ITEMS);
    return 0;
}

Test(sync, cond_producer_consumer_loses_no_item, .timeout = 120)
{
    t_run(cond_stress, NULL);
}

static int cond_timeout(void *arg)
{
    weft_mutex_t m;
    weft_cond_t c;

    (void)arg;
    cr_assert_eq(weft_mutex_init(&m), 0);
    cr_assert_eq(weft_cond_init(&c), 0);
    cr_assert_eq(weft_cond_wait(&c, &m, WEFT_NO_DEADLINE), -EPERM);
    cr_assert_eq(weft_mutex_lock(&m, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_cond_wait(&c, &m, weft_deadline_in_ms(2)), -ETIMEDOUT);
    /* The mutex is held again after a failed wait. */
    cr_assert_eq(weft_mutex_try_lock(&m), -EAGAIN);
    cr_assert_eq(weft_mutex_unlock(&m), 0);
    cr_assert_eq(weft_cond_notify(&c, 1), 0);
    cr_assert_eq(weft_cond_destroy(&c), 0);
    return 0;
}

Test(sync, cond_wait_times_out_with_mutex_held, .timeout = 10)
{
    t_run(cond_timeout, NULL);
}

/* ---- barrier ------------------------------------------------------------- */

struct phases {
    weft_barrier_t b;
    atomic_int arrived[1000];
    atomic_int serial;
};

static int run_phases(void *arg)
{
    struct phases *p = arg;

    for (int cycle = 0; cycle < 1000; cycle++) {
        atomic_fetch_add(&p->arrived[cycle], 1);
        int ret = weft_barrier_wait(&p->b, WEFT_NO_DEADLINE);
        cr_assert(ret == 0 || ret == WEFT_BARRIER_SERIAL);
        atomic_fetch_add(&p->serial, ret);
        /* Nobody passes before everyone has arrived. */
        cr_assert_eq(atomic_load(&p->arrived[cycle]), 8);
    }
    return 0;
}

static int barrier_cycles(void *arg)
{
    static struct phases p;
    weft_task_t *t[8];

    (void)arg;
    cr_assert_eq(weft_barrier_init(&p.b, 8), 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(weft_spawn(&t[i], run_phases, &p), 0);
    t_join_all(t, 8, 0);
    cr_assert_eq(atomic_load(&p.serial), 1000);
    return 0;
}

Test(sync, barrier_cycles_across_workers, .timeout = 60)
{
    t_run(barrier_cycles, NULL);
}

static int barrier_once(void *arg)
{
    return weft_barrier_wait(arg, WEFT_NO_DEADLINE);
}

static int barrier_withdraw(void *arg)
{
    weft_barrier_t b;
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_barrier_init(&b, 2), 0);
    cr_assert_eq(weft_barrier_init(&b, 0), -EINVAL);
    cr_assert_eq(weft_barrier_init(&b, 2), 0);
    /* A waiter that times out no longer counts as arrived. */
    cr_assert_eq(weft_barrier_wait(&b, weft_deadline_in_ms(2)), -ETIMEDOUT);
    cr_assert_eq(weft_spawn(&t, barrier_once, &b), 0);
    int mine = weft_barrier_wait(&b, WEFT_NO_DEADLINE);
    int theirs = weft_join(t);
    cr_assert_eq(mine + theirs, WEFT_BARRIER_SERIAL);
    cr_assert_eq(weft_barrier_destroy(&b), 0);
    return 0;
}

Test(sync, barrier_waiter_that_times_out_withdraws, .timeout = 10)
{
    t_run(barrier_withdraw, NULL);
}

/* ---- wait group ---------------------------------------------------------- */

static int finish_work(void *arg)
{
    cr_assert_eq(weft_yield(), 0);
    return weft_waitgroup_done(arg);
}

static int waitgroup_many(void *arg)
{
    enum { N = 10000 };
    weft_waitgroup_t wg;

    (void)arg;
    cr_assert_eq(weft_waitgroup_init(&wg), 0);
    cr_assert_eq(weft_waitgroup_wait(&wg, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_waitgroup_add(&wg, N), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_spawn(NULL, finish_work, &wg), 0);
    cr_assert_eq(weft_waitgroup_wait(&wg, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_waitgroup_done(&wg), -EINVAL);
    cr_assert_eq(weft_waitgroup_add(&wg, 1), 0);
    cr_assert_eq(weft_waitgroup_wait(&wg, weft_deadline_in_ms(2)), -ETIMEDOUT);
    cr_assert_eq(weft_waitgroup_done(&wg), 0);
    cr_assert_eq(weft_waitgroup_destroy(&wg), 0);
    return 0;
}

Test(sync, waitgroup_waits_for_every_done, .timeout = 60)
{
    t_run(waitgroup_many, NULL);
}

Test(sync, suspending_outside_a_task_is_eperm, .timeout = 10)
{
    weft_mutex_t m;
    weft_sem_t s;
    weft_event_t e;

    cr_assert_eq(weft_mutex_init(&m), 0);
    cr_assert_eq(weft_mutex_lock(&m, WEFT_NO_DEADLINE), -EPERM);
    cr_assert_eq(weft_sem_init(&s, 0), 0);
    cr_assert_eq(weft_sem_acquire(&s, WEFT_NO_DEADLINE), -EPERM);
    cr_assert_eq(weft_sem_release(&s), 0); /* any thread */
    cr_assert_eq(weft_event_init(&e), 0);
    cr_assert_eq(weft_event_set(&e), 0);
    cr_assert_eq(weft_event_wait(&e, WEFT_NO_DEADLINE), -EPERM);
    cr_assert_eq(weft_mutex_init(NULL), -EINVAL);
}

/* ---- destroy while awaited ----------------------------------------------- */

static int acquire_permit(void *arg)
{
    return weft_sem_acquire(arg, WEFT_NO_DEADLINE);
}

static int wait_for_zero(void *arg)
{
    return weft_waitgroup_wait(arg, WEFT_NO_DEADLINE);
}

struct cond_waiter {
    weft_mutex_t m;
    weft_cond_t c;
};

static int wait_notified(void *arg)
{
    struct cond_waiter *cw = arg;
    int ret;

    cr_assert_eq(weft_mutex_lock(&cw->m, WEFT_NO_DEADLINE), 0);
    ret = weft_cond_wait(&cw->c, &cw->m, WEFT_NO_DEADLINE);
    cr_assert_eq(weft_mutex_unlock(&cw->m), 0);
    return ret;
}

/* Each primitive refuses to be destroyed while a task really waits on it
 * (the task is in its wait list), and is destroyed once the waiter left. */
static int destroy_while_awaited(void *arg)
{
    struct cond_waiter cw;
    weft_waitgroup_t wg;
    weft_barrier_t b;
    weft_event_t e;
    weft_sem_t s;
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_sem_init(&s, 0), 0);
    cr_assert_eq(weft_spawn(&t, acquire_permit, &s), 0);
    t_until_waiting(&((struct sem *)(void *)&s)->lock,
                    &((struct sem *)(void *)&s)->waiters, 1);
    cr_assert_eq(weft_sem_destroy(&s), -EBUSY);
    cr_assert_eq(weft_sem_release(&s), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(weft_sem_destroy(&s), 0);

    cr_assert_eq(weft_event_init(&e), 0);
    cr_assert_eq(weft_spawn(&t, wait_event, &e), 0);
    t_until_waiting(&((struct event *)(void *)&e)->lock,
                    &((struct event *)(void *)&e)->waiters, 1);
    cr_assert_eq(weft_event_destroy(&e), -EBUSY);
    cr_assert_eq(weft_event_set(&e), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(weft_event_destroy(&e), 0);

    cr_assert_eq(weft_mutex_init(&cw.m), 0);
    cr_assert_eq(weft_cond_init(&cw.c), 0);
    cr_assert_eq(weft_spawn(&t, wait_notified, &cw), 0);
    t_until_waiting(&((struct cond *)(void *)&cw.c)->lock,
                    &((struct cond *)(void *)&cw.c)->waiters, 1);
    cr_assert_eq(weft_cond_destroy(&cw.c), -EBUSY);
    cr_assert_eq(weft_cond_notify(&cw.c, 1), 1);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(weft_cond_destroy(&cw.c), 0);
    cr_assert_eq(weft_mutex_destroy(&cw.m), 0);

    cr_assert_eq(weft_barrier_init(&b, 2), 0);
    cr_assert_eq(weft_spawn(&t, barrier_once, &b), 0);
    t_until_waiting(&((struct barrier *)(void *)&b)->lock,
                    &((struct barrier *)(void *)&b)->waiters, 1);
    cr_assert_eq(weft_barrier_destroy(&b), -EBUSY);
    cr_assert_eq(weft_barrier_wait(&b, WEFT_NO_DEADLINE), WEFT_BARRIER_SERIAL);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(weft_barrier_destroy(&b), 0);

    cr_assert_eq(weft_waitgroup_init(&wg), 0);
    cr_assert_eq(weft_waitgroup_add(&wg, 1), 0);
    cr_assert_eq(weft_spawn(&t, wait_for_zero, &wg), 0);
    t_until_waiting(&((struct waitgroup *)(void *)&wg)->lock,
                    &((struct waitgroup *)(void *)&wg)->waiters, 1);
    cr_assert_eq(weft_waitgroup_destroy(&wg), -EBUSY);
    cr_assert_eq(weft_waitgroup_done(&wg), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(weft_waitgroup_destroy(&wg), 0);
    return 0;
}

Test(sync, destroy_is_ebusy_while_a_task_waits_then_succeeds, .timeout = 10)
{
    t_run(destroy_while_awaited, NULL);
}

static int event_is_set_reports_the_flag(void *arg)
{
    weft_event_t e;

    (void)arg;
    cr_assert_eq(weft_event_init(&e), 0);
    cr_assert_eq(weft_event_is_set(&e), 0);
    cr_assert_eq(weft_event_set(&e), 0);
    cr_assert_eq(weft_event_is_set(&e), 1);
    cr_assert_eq(weft_event_set(&e), 0);
    cr_assert_eq(weft_event_is_set(&e), 1);
    cr_assert_eq(weft_event_clear(&e), 0);
    cr_assert_eq(weft_event_is_set(&e), 0);
    cr_assert_eq(weft_event_is_set(NULL), -EINVAL);
    cr_assert_eq(weft_event_destroy(&e), 0);
    return 0;
}

Test(sync, event_is_set_is_1_once_set_and_0_once_cleared, .timeout = 10)
{
    t_run(event_is_set_reports_the_flag, NULL);
}
