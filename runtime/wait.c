/*
 * Wait lists: queueing, hand-off and withdrawal; see wait.h for the
 * protocol.
 */
#include "wait.h"

#include <errno.h>

void weft__waiter_init(struct weft__waiter *w, struct weft_task *t,
                       void *item)
{
    w->next = w->prev = NULL;
    w->queued = false;
    w->task = t;
    w->item = item;
    w->status = 0;
    atomic_init(&w->done, false);
}

void weft__waitq_push(struct weft__waitq *q, struct weft__waiter *w)
{
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    q->n++;
    w->queued = true;
}

static void unlink_waiter(struct weft__waitq *q, struct weft__waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    q->n--;
    w->queued = false;
}

void weft__waitq_remove(struct weft__waitq *q, struct weft__waiter *w)
{
    unlink_waiter(q, w);
}

struct weft__waiter *weft__waitq_pop(struct weft__waitq *q)
{
    struct weft__waiter *w = q->head;

    if (w)
        unlink_waiter(q, w);
    return w;
}

struct weft__waiter *weft__waitq_pop_all(struct weft__waitq *q)
{
    struct weft__waiter *chain = q->head;

    for (struct weft__waiter *w = chain; w; w = w->next)
        w->queued = false;
    q->head = q->tail = NULL;
    q->n = 0;
    return chain;
}

void weft__waiter_release(struct weft__waiter *w, int status)
{
    struct weft_task *t = w->task;

    w->status = status;
    /* release: pairs with the acquire in waiter_done(); publishes status
     * and item. After this store the node may be gone. */
    atomic_store_explicit(&w->done, true, memory_order_release);
    weft__task_wake(t);
}

void weft__waiter_release_all(struct weft__waiter *chain, int status)
{
    while (chain) {
        struct weft__waiter *next = chain->next;

        weft__waiter_release(chain, status);
        chain = next;
    }
}

static bool waiter_done(void *arg)
{
    struct weft__waiter *w = arg;

    /* acquire: pairs with the release in weft__waiter_release(). */
    return atomic_load_explicit(&w->done, memory_order_acquire);
}

int weft__waitq_block(struct weft__spin *lock, struct weft__waitq *q,
                      struct weft__waiter *w, int64_t deadline,
                      enum weft__why why, const void *where)
{
    int ret = weft__task_block(w->task, waiter_done, w, deadline, why, where);

    if (ret == 0)
        return w->status;
    weft__spin_lock(lock);
    if (w->queued) {
        unlink_waiter(q, w);
        weft__spin_unlock(lock);
        return ret;
    }
    weft__spin_unlock(lock);
    /* Handed over while we gave up: the wait succeeded after all, and the
     * cancellation we consumed belongs to the next suspension point. */
    /* The hander popped w and is about to set `done`: wait for that. */
    weft__spin_until(&w->done);
    if (ret == -ECANCELED)
        weft__task_restore_cancel(w->task);
    return w->status;
}

int weft__wait(struct weft__spin *lock, struct weft__waitq *q,
               struct weft__waiter *w, int64_t deadline, enum weft__why why,
               const void *where)
{
    weft__waitq_push(q, w);
    weft__spin_unlock(lock);
    return weft__waitq_block(lock, q, w, deadline, why, where);
}
