/*
 * Mutex, semaphore, event, condition, barrier and wait group on top of the
 * shared wait lists (wait.h); see sync.h for the hand-off rule they share.
 *
 * Why opaque storage rather than _new/_free: users embed these in their own
 * structs and on task stacks, as they do pthread_mutex_t, so the public
 * types are fixed-size storage and init/destroy never allocate. The layouts
 * stay private, and the size checks below keep them from outgrowing it.
 *
 * A mutex's owner is the holder's handle value, which carries the
 * generation of its task struct (task.h): a task that reuses the struct of
 * one that ended holding the mutex is a different owner, and its unlock is
 * -EPERM like anyone else's. Destroy reads the state under the lock, so a
 * call racing with a waiter that is queueing sees it (and says -EBUSY).
 */
#include "sync.h"

#include <errno.h>
#include <limits.h>

#include "task.h"

#define CHECK_FITS(pub, priv)                                         \
    _Static_assert(sizeof(pub) >= sizeof(priv) &&                     \
                       _Alignof(pub) >= _Alignof(priv),               \
                   #priv " outgrew " #pub)

CHECK_FITS(weft_mutex_t, struct mutex);
CHECK_FITS(weft_sem_t, struct sem);
CHECK_FITS(weft_event_t, struct event);
CHECK_FITS(weft_cond_t, struct cond);
CHECK_FITS(weft_barrier_t, struct barrier);
CHECK_FITS(weft_waitgroup_t, struct waitgroup);


/* ---- mutex --------------------------------------------------------------- */

static struct mutex *to_mutex(weft_mutex_t *pm)
{
    return (struct mutex *)(void *)pm;
}

int weft_mutex_init(weft_mutex_t *pm)
{
    struct mutex *m = to_mutex(pm);

    if (!pm)
        return -EINVAL;
    weft__spin_init(&m->lock);
    m->owner = NULL;
    weft__waitq_init(&m->waiters);
    return 0;
}

/* Whether q has waiters, read under lock: a destroy's check. */
static bool has_waiters(struct weft__spin *lock, struct weft__waitq *q)
{
    bool busy;

    weft__spin_lock(lock);
    busy = !weft__waitq_empty(q);
    weft__spin_unlock(lock);
    return busy;
}

int weft_mutex_destroy(weft_mutex_t *pm)
{
    struct mutex *m = to_mutex(pm);
    bool busy;

    if (!pm)
        return -EINVAL;
    weft__spin_lock(&m->lock);
    busy = m->owner || !weft__waitq_empty(&m->waiters);
    weft__spin_unlock(&m->lock);
    return busy ? -EBUSY : 0;
}

int weft__mutex_lock(struct mutex *m, struct weft_task *t, int64_t deadline,
                     const void *where)
{
    weft_task_t *me = weft__task_handle(t);
    struct weft__waiter w;

    weft__spin_lock(&m->lock);
    if (likely(!m->owner)) {
        m->owner = me;
        weft__spin_unlock(&m->lock);
        return 0;
    }
    if (m->owner == me) {
        weft__spin_unlock(&m->lock);
        return -EDEADLK;
    }
    /* On success the unlocker made us the owner before handing over. */
    weft__waiter_init(&w, t, NULL);
    return weft__wait(&m->lock, &m->waiters, &w, deadline, WHY_SYNC, where);
}

int weft_mutex_lock(weft_mutex_t *pm, int64_t deadline)
{
    struct weft_task *t = weft__task_current();

    if (!t)
        return -EPERM;
    if (!pm)
        return -EINVAL;
    return weft__mutex_lock(to_mutex(pm), t, weft__wait_deadline(t, deadline),
                            WEFT__WHERE);
}

int weft_mutex_try_lock(weft_mutex_t *pm)
{
    struct weft_task *t = weft__task_current();
    struct mutex *m = to_mutex(pm);
    int ret = -EAGAIN;

    if (!t)
        return -EPERM;
    if (!pm)
        return -EINVAL;
    weft__spin_lock(&m->lock);
    if (!m->owner) {
        m->owner = weft__task_handle(t);
        ret = 0;
    }
    weft__spin_unlock(&m->lock);
    return ret;
}

int weft_mutex_unlock(weft_mutex_t *pm)
{
    struct weft_task *t = weft__task_current();
    struct mutex *m = to_mutex(pm);
    struct weft__waiter *w;

    if (!pm)
        return -EINVAL;
    weft__spin_lock(&m->lock);
    if (!t || m->owner != weft__task_handle(t)) {
        weft__spin_unlock(&m->lock);
        return -EPERM;
    }
    /* Fair hand-off: the lock passes to the oldest waiter while still
     * held, so a task that was not waiting cannot take it in between. The
     * waiter is parked, so its generation is its own. */
    w = weft__waitq_pop(&m->waiters);
    m->owner = w ? weft__task_handle(w->task) : NULL;
    weft__spin_unlock(&m->lock);
    if (w)
        weft__waiter_release(w, 0);
    return 0;
}

/* ---- semaphore ----------------------------------------------------------- */

static struct sem *to_sem(weft_sem_t *ps)
{
    return (struct sem *)(void *)ps;
}

static int sem_setup(weft_sem_t *ps, unsigned value, long max)
{
    struct sem *s = to_sem(ps);

    if (!ps)
        return -EINVAL;
    weft__spin_init(&s->lock);
    s->count = value;
    s->max = max;
    weft__waitq_init(&s->waiters);
    return 0;
}

int weft_sem_init(weft_sem_t *ps, unsigned value)
{
    return sem_setup(ps, value, UINT_MAX);
}

int weft_sem_init_bounded(weft_sem_t *ps, unsigned value)
{
    if (value == 0)
        return -EINVAL;
    return sem_setup(ps, value, value);
}

int weft_sem_destroy(weft_sem_t *ps)
{
    if (!ps)
        return -EINVAL;
    return has_waiters(&to_sem(ps)->lock, &to_sem(ps)->waiters) ? -EBUSY : 0;
}

int weft_sem_acquire(weft_sem_t *ps, int64_t deadline)
{
    struct weft_task *t = weft__task_current();
    struct sem *s = to_sem(ps);
    struct weft__waiter w;

    if (!t)
        return -EPERM;
    if (!ps)
        return -EINVAL;
    weft__spin_lock(&s->lock);
    if (likely(s->count > 0)) {
        s->count--;
        weft__spin_unlock(&s->lock);
        return 0;
    }
    weft__waiter_init(&w, t, NULL);
    return weft__wait(&s->lock, &s->waiters, &w,
                      weft__wait_deadline(t, deadline), WHY_SYNC, WEFT__WHERE);
}

int weft_sem_try_acquire(weft_sem_t *ps)
{
    struct sem *s = to_sem(ps);
    int ret = -EAGAIN;

    if (!ps)
        return -EINVAL;
    weft__spin_lock(&s->lock);
    if (s->count > 0) {
        s->count--;
        ret = 0;
    }
    weft__spin_unlock(&s->lock);
    return ret;
}

int weft_sem_release(weft_sem_t *ps)
{
    struct sem *s = to_sem(ps);
    struct weft__waiter *w;
    int ret = 0;

    if (!ps)
        return -EINVAL;
    weft__spin_lock(&s->lock);
    w = weft__waitq_pop(&s->waiters);
    if (!w) {
        if (s->count >= s->max)
            ret = -EOVERFLOW;
        else
            s->count++;
    }
    weft__spin_unlock(&s->lock);
    if (w)
        weft__waiter_release(w, 0);
    return ret;
}

int weft_sem_value(weft_sem_t *ps)
{
    struct sem *s = to_sem(ps);
    long n;

    if (!ps)
        return -EINVAL;
    weft__spin_lock(&s->lock);
    n = s->count;
    weft__spin_unlock(&s->lock);
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

/* ---- event --------------------------------------------------------------- */

static struct event *to_event(weft_event_t *pe)
{
    return (struct event *)(void *)pe;
}

int weft_event_init(weft_event_t *pe)
{
    struct event *e = to_event(pe);

    if (!pe)
        return -EINVAL;
    weft__spin_init(&e->lock);
    e->set = false;
    weft__waitq_init(&e->waiters);
    return 0;
}

int weft_event_destroy(weft_event_t *pe)
{
    if (!pe)
        return -EINVAL;
    return has_waiters(&to_event(pe)->lock, &to_event(pe)->waiters) ? -EBUSY
                                                                    : 0;
}

int weft_event_set(weft_event_t *pe)
{
    struct event *e = to_event(pe);
    struct weft__waiter *chain;

    if (!pe)
        return -EINVAL;
    weft__spin_lock(&e->lock);
    e->set = true;
    chain = weft__waitq_pop_all(&e->waiters);
    weft__spin_unlock(&e->lock);
    weft__waiter_release_all(chain, 0);
    return 0;
}

int weft_event_clear(weft_event_t *pe)
{
    struct event *e = to_event(pe);

    if (!pe)
        return -EINVAL;
    weft__spin_lock(&e->lock);
    e->set = false;
    weft__spin_unlock(&e->lock);
    return 0;
}

int weft_event_is_set(weft_event_t *pe)
{
    struct event *e = to_event(pe);
    bool set;

    if (!pe)
        return -EINVAL;
    weft__spin_lock(&e->lock);
    set = e->set;
    weft__spin_unlock(&e->lock);
    return set;
}

int weft_event_wait(weft_event_t *pe, int64_t deadline)
{
    struct weft_task *t = weft__task_current();
    struct event *e = to_event(pe);
    struct weft__waiter w;

    if (!t)
        return -EPERM;
    if (!pe)
        return -EINVAL;
    weft__spin_lock(&e->lock);
    if (e->set) {
        weft__spin_unlock(&e->lock);
        return 0;
    }
    weft__waiter_init(&w, t, NULL);
    return weft__wait(&e->lock, &e->waiters, &w,
                      weft__wait_deadline(t, deadline), WHY_SYNC, WEFT__WHERE);
}

/* ---- condition ----------------------------------------------------------- */

static struct cond *to_cond(weft_cond_t *pc)
{
    return (struct cond *)(void *)pc;
}

int weft_cond_init(weft_cond_t *pc)
{
    struct cond *c = to_cond(pc);

    if (!pc)
        return -EINVAL;
    weft__spin_init(&c->lock);
    c->m = NULL;
    weft__waitq_init(&c->waiters);
    return 0;
}

int weft_cond_destroy(weft_cond_t *pc)
{
    if (!pc)
        return -EINVAL;
    return has_waiters(&to_cond(pc)->lock, &to_cond(pc)->waiters) ? -EBUSY
                                                                  : 0;
}

/* Takes m back after a condition wait whatever happens, as asyncio does:
 * the caller's cleanup expects to hold it. A cancellation that arrives
 * meanwhile is kept for the caller's next suspension point. */
static void relock(struct mutex *m, struct weft_task *t, const void *where)
{
    bool cancelled = false;

    while (weft__mutex_lock(m, t, WEFT_NO_DEADLINE, where) == -ECANCELED)
        cancelled = true;
    if (cancelled)
        weft__task_restore_cancel(t);
}

static bool is_owner(struct mutex *m, struct weft_task *t)
{
    bool owner;

    weft__spin_lock(&m->lock);
    owner = t && m->owner == weft__task_handle(t);
    weft__spin_unlock(&m->lock);
    return owner;
}

int weft_cond_wait(weft_cond_t *pc, weft_mutex_t *pm, int64_t deadline)
{
    struct weft_task *t = weft__task_current();
    struct cond *c = to_cond(pc);
    struct weft__waiter w;
    int ret;

    if (!t)
        return -EPERM;
    if (!pc || !pm)
        return -EINVAL;
    if (!is_owner(to_mutex(pm), t))
        return -EPERM;
    /* Queue before unlocking m: a notify made under m after our unlock
     * finds us in the list, so it cannot be lost. Waiters share one mutex
     * (asyncio binds a Condition to its lock): a notifier holding one
     * mutex would not be ordered with a waiter under another. */
    weft__waiter_init(&w, t, NULL);
    weft__spin_lock(&c->lock);
    if (!weft__waitq_empty(&c->waiters) && c->m != to_mutex(pm)) {
        weft__spin_unlock(&c->lock);
        return -EINVAL;
    }
    c->m = to_mutex(pm);
    weft__waitq_push(&c->waiters, &w);
    weft__spin_unlock(&c->lock);
    weft_mutex_unlock(pm);
    ret = weft__waitq_block(&c->lock, &c->waiters, &w,
                            weft__wait_deadline(t, deadline), WHY_SYNC,
                            WEFT__WHERE);
    relock(to_mutex(pm), t, WEFT__WHERE);
    return ret;
}

int weft_cond_notify(weft_cond_t *pc, unsigned n)
{
    struct cond *c = to_cond(pc);
    struct weft__waiter *chain = NULL, **tail = &chain, *w;
    unsigned woken = 0;

    if (!pc)
        return -EINVAL;
    weft__spin_lock(&c->lock);
    while (woken < n && (w = weft__waitq_pop(&c->waiters))) {
        *tail = w;
        tail = &w->next;
        woken++;
    }
    *tail = NULL;
    weft__spin_unlock(&c->lock);
    weft__waiter_release_all(chain, 0);
    return woken > INT32_MAX ? INT32_MAX : (int)woken;
}

int weft_cond_notify_all(weft_cond_t *pc)
{
    return weft_cond_notify(pc, UINT32_MAX);
}

/* ---- barrier ------------------------------------------------------------- */

static struct barrier *to_barrier(weft_barrier_t *pb)
{
    return (struct barrier *)(void *)pb;
}

int weft_barrier_init(weft_barrier_t *pb, unsigned parties)
{
    struct barrier *b = to_barrier(pb);

    if (!pb || parties == 0)
        return -EINVAL;
    weft__spin_init(&b->lock);
    b->parties = parties;
    weft__waitq_init(&b->waiters);
    return 0;
}

int weft_barrier_destroy(weft_barrier_t *pb)
{
    if (!pb)
        return -EINVAL;
    return has_waiters(&to_barrier(pb)->lock, &to_barrier(pb)->waiters) ?
           -EBUSY : 0;
}

int weft_barrier_wait(weft_barrier_t *pb, int64_t deadline)
{
    struct weft_task *t = weft__task_current();
    struct barrier *b = to_barrier(pb);
    struct weft__waiter w, *chain;

    if (!t)
        return -EPERM;
    if (!pb)
        return -EINVAL;
    weft__spin_lock(&b->lock);
    /* The parties that arrived are exactly the queued waiters: one that
     * times out or is cancelled leaves the list, and with it the count,
     * in the same critical section. */
    if (b->waiters.n + 1 >= b->parties) {
        chain = weft__waitq_pop_all(&b->waiters);
        weft__spin_unlock(&b->lock);
        weft__waiter_release_all(chain, 0);
        return WEFT_BARRIER_SERIAL;
    }
    weft__waiter_init(&w, t, NULL);
    return weft__wait(&b->lock, &b->waiters, &w,
                      weft__wait_deadline(t, deadline), WHY_SYNC, WEFT__WHERE);
}

/* ---- wait group ---------------------------------------------------------- */

static struct waitgroup *to_waitgroup(weft_waitgroup_t *pw)
{
    return (struct waitgroup *)(void *)pw;
}

int weft_waitgroup_init(weft_waitgroup_t *pw)
{
    struct waitgroup *wg = to_waitgroup(pw);

    if (!pw)
        return -EINVAL;
    weft__spin_init(&wg->lock);
    wg->count = 0;
    weft__waitq_init(&wg->waiters);
    return 0;
}

int weft_waitgroup_destroy(weft_waitgroup_t *pw)
{
    if (!pw)
        return -EINVAL;
    return has_waiters(&to_waitgroup(pw)->lock, &to_waitgroup(pw)->waiters) ?
           -EBUSY : 0;
}

int weft_waitgroup_add(weft_waitgroup_t *pw, long delta)
{
    struct waitgroup *wg = to_waitgroup(pw);
    struct weft__waiter *chain = NULL;

    if (!pw)
        return -EINVAL;
    weft__spin_lock(&wg->lock);
    /* count >= 0, so only a positive delta can overflow count + delta. */
    if (delta > 0 ? wg->count > LONG_MAX - delta : wg->count + delta < 0) {
        weft__spin_unlock(&wg->lock);
        return delta > 0 ? -EOVERFLOW : -EINVAL;
    }
    wg->count += delta;
    if (wg->count == 0)
        chain = weft__waitq_pop_all(&wg->waiters);
    weft__spin_unlock(&wg->lock);
    weft__waiter_release_all(chain, 0);
    return 0;
}

int weft_waitgroup_done(weft_waitgroup_t *pw)
{
    return weft_waitgroup_add(pw, -1);
}

int weft_waitgroup_wait(weft_waitgroup_t *pw, int64_t deadline)
{
    struct weft_task *t = weft__task_current();
    struct waitgroup *wg = to_waitgroup(pw);
    struct weft__waiter w;

    if (!t)
        return -EPERM;
    if (!pw)
        return -EINVAL;
    weft__spin_lock(&wg->lock);
    if (wg->count == 0) {
        weft__spin_unlock(&wg->lock);
        return 0;
    }
    weft__waiter_init(&w, t, NULL);
    return weft__wait(&wg->lock, &wg->waiters, &w,
                      weft__wait_deadline(t, deadline), WHY_SYNC, WEFT__WHERE);
}
