/*
 * Futures; see future.h.
 *
 * Embedded storage, as for the toolkit's primitives (sync.c says why): a
 * future usually lives in the struct that the foreign thread completing it
 * already holds. Every access takes the lock, including try_get: a setter
 * touches the future for the last time when it unlocks, so a task that has
 * seen the value under the lock may destroy the future at once.
 */
#include "future.h"

#include <errno.h>

#include "task.h"
#include "weft.h"

_Static_assert(sizeof(weft_future_t) >= sizeof(struct future) &&
                   _Alignof(weft_future_t) >= _Alignof(struct future),
               "struct future outgrew weft_future_t");

static struct future *to_future(weft_future_t *pf)
{
    return (struct future *)(void *)pf;
}

int weft_future_init(weft_future_t *pf)
{
    struct future *f = to_future(pf);

    if (!pf)
        return -EINVAL;
    weft__spin_init(&f->lock);
    f->set = false;
    f->value = 0;
    weft__waitq_init(&f->waiters);
    return 0;
}

int weft_future_destroy(weft_future_t *pf)
{
    struct future *f = to_future(pf);
    bool busy;

    if (!pf)
        return -EINVAL;
    weft__spin_lock(&f->lock);
    busy = !weft__waitq_empty(&f->waiters);
    weft__spin_unlock(&f->lock);
    return busy ? -EBUSY : 0;
}

int weft_future_set(weft_future_t *pf, int value)
{
    struct future *f = to_future(pf);
    struct weft__waiter *chain;

    if (!pf)
        return -EINVAL;
    weft__spin_lock(&f->lock);
    if (f->set) {
        weft__spin_unlock(&f->lock);
        return -EALREADY;
    }
    f->set = true;
    f->value = value;
    chain = weft__waitq_pop_all(&f->waiters);
    weft__spin_unlock(&f->lock);
    /* Only the waiters' nodes from here on, never f. */
    weft__waiter_release_all(chain, value);
    return 0;
}

int weft_future_try_get(weft_future_t *pf, int *value)
{
    struct future *f = to_future(pf);
    int ret = -EAGAIN;

    if (!pf)
        return -EINVAL;
    weft__spin_lock(&f->lock);
    if (f->set) {
        if (value)
            *value = f->value;
        ret = 0;
    }
    weft__spin_unlock(&f->lock);
    return ret;
}

int weft_future_wait(weft_future_t *pf, int64_t deadline)
{
    struct weft_task *t = weft__task_current();
    struct future *f = to_future(pf);
    struct weft__waiter w;
    int value;

    if (!t)
        return -EPERM;
    if (!pf)
        return -EINVAL;
    weft__spin_lock(&f->lock);
    if (f->set) {
        value = f->value;
        weft__spin_unlock(&f->lock);
        return value;
    }
    weft__waiter_init(&w, t, NULL);
    return weft__wait(&f->lock, &f->waiters, &w,
                      weft__wait_deadline(t, deadline), WHY_FUTURE,
                      WEFT__WHERE);
}
