/*
 * Queues on top of the shared wait lists; see queue.h for the invariants.
 *
 * Items live in a ring buffer allocated at init. An unbounded queue doubles
 * its ring when full, allocating with the lock dropped (then starting the
 * operation over, since anything may have changed); a bounded one never
 * allocates after init. try_put, try_get, close and task_done never suspend
 * and may be called from any thread, which lets foreign threads feed tasks.
 *
 * Sizes come from the caller (capacity) or double (an unbounded ring):
 * each is checked against the largest ring there can be (MAX_SLOTS) before
 * it is multiplied, since a wrapped product allocates a few bytes that the
 * first puts then overrun. A destroyed queue has no ring (items NULL): every
 * call after weft_queue_destroy sees that and says -EINVAL.
 */
#include "queue.h"

#include <errno.h>
#include <string.h>

#include "mem.h"
#include "task.h"

_Static_assert(sizeof(weft_queue_t) >= sizeof(struct queue) &&
                   _Alignof(weft_queue_t) >= _Alignof(struct queue),
               "struct queue outgrew weft_queue_t");

#define UNBOUNDED_START 16
/* The largest ring: 2^47 bytes, the user address space of x86-64 and of
 * aarch64 with 4-level tables. A larger one cannot be had, and asking for
 * it is refused without a try (some allocators abort instead). */
#define MAX_SLOTS (((SIZE_MAX >> 17) + 1) / sizeof(void *))

static struct queue *to_queue(weft_queue_t *pq)
{
    return (struct queue *)(void *)pq;
}

int weft_queue_init(weft_queue_t *pq, size_t capacity, unsigned flags)
{
    struct queue *q = to_queue(pq);

    if (!pq || (flags & ~(unsigned)WEFT_QUEUE_LIFO))
        return -EINVAL;
    if (capacity > MAX_SLOTS)
        return -ENOMEM;
    memset(q, 0, sizeof(*q));
    q->limit = capacity;
    q->cap = capacity ? capacity : UNBOUNDED_START;
    q->items = weft__alloc(q->cap * sizeof(*q->items));
    if (!q->items)
        return -ENOMEM;
    weft__spin_init(&q->lock);
    q->lifo = flags & WEFT_QUEUE_LIFO;
    weft__waitq_init(&q->getters);
    weft__waitq_init(&q->putters);
    weft__waitq_init(&q->joiners);
    return 0;
}

int weft_queue_destroy(weft_queue_t *pq)
{
    struct queue *q = to_queue(pq);

    void **items;
    size_t cap;

    if (!pq)
        return -EINVAL;
    weft__spin_lock(&q->lock);
    if (!q->items || !weft__waitq_empty(&q->getters) ||
        !weft__waitq_empty(&q->putters) || !weft__waitq_empty(&q->joiners)) {
        weft__spin_unlock(&q->lock);
        return q->items ? -EBUSY : -EINVAL;
    }
    items = q->items;
    cap = q->cap;
    q->items = NULL;
    weft__spin_unlock(&q->lock);
    weft__free(items, cap * sizeof(*items));
    return 0;
}

/* ---- the ring, under lock ------------------------------------------------ */

static size_t slot(const struct queue *q, size_t i)
{
    size_t s = q->head + i;

    return s >= q->cap ? s - q->cap : s;
}

static void ring_push(struct queue *q, void *item)
{
    q->items[slot(q, q->count)] = item;
    q->count++;
    q->unfinished++;
}

static void *ring_take(struct queue *q)
{
    void *item;

    q->count--;
    if (q->lifo)
        return q->items[slot(q, q->count)];
    item = q->items[q->head];
    q->head = slot(q, 1);
    return item;
}

static bool is_full(const struct queue *q)
{
    return q->limit ? q->count >= q->limit : false;
}

/* Unbounded and out of slots: doubles the ring. Called and returns with the
 * lock held, but drops it to allocate. */
static int grow(struct queue *q)
{
    size_t cap = q->cap * 2;
    void **items;

    if (q->cap > MAX_SLOTS / 2)
        return -ENOMEM;
    weft__spin_unlock(&q->lock);
    items = weft__alloc(cap * sizeof(*items));
    weft__spin_lock(&q->lock);
    if (!items)
        return -ENOMEM;
    if (!q->items) { /* destroyed meanwhile, by a caller's mistake */
        weft__free(items, cap * sizeof(*items));
        return -EINVAL;
    }
    /* While the lock was dropped, other puts may have grown the ring (even
     * past cap) and filled it: ours is only of use if it is still larger. */
    if (q->count < q->cap || cap <= q->cap) {
        weft__free(items, cap * sizeof(*items));
        return 0;
    }
    for (size_t i = 0; i < q->count; i++)
        items[i] = q->items[slot(q, i)];
    weft__free(q->items, q->cap * sizeof(*q->items));
    q->items = items;
    q->cap = cap;
    q->head = 0;
    return 0;
}

/* ---- put ----------------------------------------------------------------- */

/*
 * Puts without waiting if it can. Returns with the lock held: 0 (and *g set
 * to a getter to release after unlocking, or NULL) or -EPIPE / -ENOMEM /
 * -EINVAL (destroyed), or -EAGAIN if the queue is full.
 */
static int put_locked(struct queue *q, void *item, struct weft__waiter **g)
{
    int ret;

    *g = NULL;
    for (;;) {
        if (!q->items)
            return -EINVAL;
        if (q->closed)
            return -EPIPE;
        *g = weft__waitq_pop(&q->getters);
        if (*g) {
            (*g)->item = item;
            q->unfinished++;
            return 0;
        }
        if (is_full(q))
            return -EAGAIN;
        if (q->count < q->cap) {
            ring_push(q, item);
            return 0;
        }
        ret = grow(q);
        if (ret < 0)
            return ret;
    }
}

static int put(struct queue *q, void *item, struct weft_task *t,
               int64_t deadline, const void *where)
{
    struct weft__waiter *g, w;
    int ret;

    weft__spin_lock(&q->lock);
    ret = put_locked(q, item, &g);
    if (ret != -EAGAIN || !t) {
        weft__spin_unlock(&q->lock);
        if (g)
            weft__waiter_release(g, 0);
        return ret;
    }
    weft__waiter_init(&w, t, item);
    return weft__wait(&q->lock, &q->putters, &w, deadline, WHY_QUEUE, where);
}

int weft_queue_put(weft_queue_t *pq, void *item, int64_t deadline)
{
    struct weft_task *t = weft__task_current();

    if (!t)
        return -EPERM;
    if (!pq)
        return -EINVAL;
    return put(to_queue(pq), item, t, weft__wait_deadline(t, deadline),
               WEFT__WHERE);
}

int weft_queue_try_put(weft_queue_t *pq, void *item)
{
    if (!pq)
        return -EINVAL;
    return put(to_queue(pq), item, NULL, WEFT_NO_DEADLINE, NULL);
}

/* ---- get ----------------------------------------------------------------- */

/*
 * Gets without waiting if it can. Returns with the lock held: 0 (and *p set
 * to a putter to release after unlocking, or NULL), -EPIPE when closed and
 * drained, -EINVAL when destroyed, or -EAGAIN when empty.
 */
static int get_locked(struct queue *q, void **item, struct weft__waiter **p)
{
    *p = NULL;
    if (!q->items)
        return -EINVAL;
    if (q->count == 0)
        return q->closed ? -EPIPE : -EAGAIN;
    *item = ring_take(q);
    /* A slot just opened: it goes to the oldest waiting putter. */
    *p = weft__waitq_pop(&q->putters);
    if (*p)
        ring_push(q, (*p)->item);
    return 0;
}

static int get(struct queue *q, void **item, struct weft_task *t,
               int64_t deadline, const void *where)
{
    struct weft__waiter *p, w;
    int ret;

    weft__spin_lock(&q->lock);
    ret = get_locked(q, item, &p);
    if (ret != -EAGAIN || !t) {
        weft__spin_unlock(&q->lock);
        if (p)
            weft__waiter_release(p, 0);
        return ret;
    }
    weft__waiter_init(&w, t, NULL);
    ret = weft__wait(&q->lock, &q->getters, &w, deadline, WHY_QUEUE, where);
    if (ret == 0)
        *item = w.item;
    return ret;
}

int weft_queue_get(weft_queue_t *pq, void **item, int64_t deadline)
{
    struct weft_task *t = weft__task_current();

    if (!t)
        return -EPERM;
    if (!pq || !item)
        return -EINVAL;
    return get(to_queue(pq), item, t, weft__wait_deadline(t, deadline),
               WEFT__WHERE);
}

int weft_queue_try_get(weft_queue_t *pq, void **item)
{
    if (!pq || !item)
        return -EINVAL;
    return get(to_queue(pq), item, NULL, WEFT_NO_DEADLINE, NULL);
}

/* ---- close, size, join --------------------------------------------------- */

int weft_queue_close(weft_queue_t *pq)
{
    struct queue *q = to_queue(pq);
    struct weft__waiter *getters, *putters;

    if (!pq)
        return -EINVAL;
    weft__spin_lock(&q->lock);
    if (!q->items) {
        weft__spin_unlock(&q->lock);
        return -EINVAL;
    }
    q->closed = true;
    getters = weft__waitq_pop_all(&q->getters);
    putters = weft__waitq_pop_all(&q->putters);
    weft__spin_unlock(&q->lock);
    /* Getters wait only on an empty ring, so nothing is left for them;
     * putters keep their items. */
    weft__waiter_release_all(getters, -EPIPE);
    weft__waiter_release_all(putters, -EPIPE);
    return 0;
}

long weft_queue_size(weft_queue_t *pq)
{
    struct queue *q = to_queue(pq);
    long n;

    if (!pq)
        return -EINVAL;
    weft__spin_lock(&q->lock);
    /* A ring holds at most MAX_SLOTS items, so the count fits a long. */
    n = q->items ? (long)q->count : -EINVAL;
    weft__spin_unlock(&q->lock);
    return n;
}

int weft_queue_task_done(weft_queue_t *pq)
{
    struct queue *q = to_queue(pq);
    struct weft__waiter *joiners = NULL;

    if (!pq)
        return -EINVAL;
    weft__spin_lock(&q->lock);
    if (!q->items || q->unfinished == 0) {
        weft__spin_unlock(&q->lock);
        return -EINVAL;
    }
    if (--q->unfinished == 0)
        joiners = weft__waitq_pop_all(&q->joiners);
    weft__spin_unlock(&q->lock);
    weft__waiter_release_all(joiners, 0);
    return 0;
}

int weft_queue_join(weft_queue_t *pq, int64_t deadline)
{
    struct weft_task *t = weft__task_current();
    struct queue *q = to_queue(pq);
    struct weft__waiter w;

    if (!t)
        return -EPERM;
    if (!pq)
        return -EINVAL;
    weft__spin_lock(&q->lock);
    if (!q->items || q->unfinished == 0) {
        weft__spin_unlock(&q->lock);
        return q->items ? 0 : -EINVAL;
    }
    weft__waiter_init(&w, t, NULL);
    return weft__wait(&q->lock, &q->joiners, &w,
                      weft__wait_deadline(t, deadline), WHY_QUEUE,
                      WEFT__WHERE);
}
