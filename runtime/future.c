/*
 * Futures; see future.h for the state word and why the setter may race
 * with a waiter freeing the future.
 *
 * A waiter that gives up (deadline, cancellation) must withdraw its record
 * before returning. If the future was set meanwhile, the setter has already
 * taken the record off the list and will mark it done shortly: the waiter
 * spins for that, then reports the value instead (a completed wait wins,
 * and a cancellation it swallowed is put back).
 */
#include "future.h"

#include <errno.h>
#include <sched.h>

#include "mem.h"
#include "spin.h"
#include "task.h"

/* Takes the lock, unless the future is set: then it is immutable and needs
 * none, and this returns false. */
static bool lock_unset(struct weft_future *f)
{
    unsigned spins = 0;
    /* acquire: pairs with the release stores in unlock() and set. */
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);

    for (;;) {
        if (s & FUTURE_SET)
            return false;
        if (!(s & FUTURE_LOCKED)) {
            if (atomic_compare_exchange_weak_explicit(
                    &f->state, &s, FUTURE_LOCKED, memory_order_acquire,
                    memory_order_acquire))
                return true;
            continue;
        }
        if (++spins < 64)
            weft__cpu_relax();
        else
            sched_yield();
        s = atomic_load_explicit(&f->state, memory_order_acquire);
    }
}

static void unlock(struct weft_future *f)
{
    /* release: pairs with the acquire in lock_unset(). */
    atomic_store_explicit(&f->state, 0, memory_order_release);
}

weft_future_t *weft_future_new(void)
{
    struct weft_future *f = weft__zalloc(sizeof(*f));

    if (f)
        atomic_init(&f->state, 0);
    return f;
}

int weft_future_free(weft_future_t *f)
{
    if (!f)
        return -EINVAL;
    if (lock_unset(f)) {
        bool busy = f->waiters != NULL;

        unlock(f);
        if (busy)
            return -EBUSY;
    }
    weft__free(f, sizeof(*f));
    return 0;
}

int weft_future_set(weft_future_t *f, int value)
{
    struct future_waiter *w;

    if (!f)
        return -EINVAL;
    if (!lock_unset(f))
        return -EALREADY;
    f->value = value;
    w = f->waiters;
    f->waiters = NULL;
    /* release: publishes value and unlocks in one store; pairs with the
     * acquire in lock_unset() and try_get. f is not touched after it. */
    atomic_store_explicit(&f->state, FUTURE_SET, memory_order_release);
    while (w) {
        struct future_waiter *next = w->next;
        struct weft_task *t = w->task;

        w->value = value;
        /* release: pairs with the acquire in waiter_done(); the waiter's
         * frame may be gone after it, hence next and t first. */
        atomic_store_explicit(&w->done, true, memory_order_release);
        weft__task_wake(t);
        w = next;
    }
    return 0;
}

int weft_future_try_get(const weft_future_t *f, int *value)
{
    struct weft_future *mf = (struct weft_future *)f;

    if (!f)
        return -EINVAL;
    /* acquire: pairs with the release in weft_future_set(). */
    if (!(atomic_load_explicit(&mf->state, memory_order_acquire) & FUTURE_SET))
        return -EAGAIN;
    if (value)
        *value = f->value;
    return 0;
}

static bool waiter_done(void *arg)
{
    struct future_waiter *w = arg;

    /* acquire: pairs with the release in weft_future_set(). */
    return atomic_load_explicit(&w->done, memory_order_acquire);
}

/* False if the future was set first (w has fired, or is about to). */
static bool withdraw(struct weft_future *f, struct future_waiter *w)
{
    struct future_waiter **p;

    if (lock_unset(f)) {
        for (p = &f->waiters; *p != w; p = &(*p)->next)
            ;
        *p = w->next;
        unlock(f);
        return true;
    }
    while (!waiter_done(w))
        weft__cpu_relax();
    return false;
}

int weft_future_wait(weft_future_t *f, int64_t deadline)
{
    struct weft_task *t = weft__task_current();
    struct future_waiter w = { .task = t };
    int ret;

    if (!t)
        return -EPERM;
    if (!f)
        return -EINVAL;
    if (!lock_unset(f))
        return f->value;
    atomic_init(&w.done, false);
    w.next = f->waiters;
    f->waiters = &w;
    unlock(f);
    if (t->scope_deadline < deadline)
        deadline = t->scope_deadline;
    ret = weft__task_block(t, waiter_done, &w, deadline, WHY_FUTURE,
                           __builtin_return_address(0));
    if (ret == 0 || !withdraw(f, &w)) {
        if (ret == -ECANCELED)
            weft__task_restore_cancel(t);
        /* Not f->value: another task that saw the future set may have
         * freed it already. */
        return w.value;
    }
    return ret;
}
