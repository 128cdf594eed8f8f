/*
 * Per-worker timer heaps and the sleep calls; see timer.h for the protocol.
 */
#include "timer.h"

#include <errno.h>

#include "common.h"
#include "mem.h"
#include "task.h"
#include "worker.h"

int weft__timers_init(struct weft__timers *h)
{
    weft__spin_init(&h->lock);
    h->n = 0;
    h->cap = 64;
    h->heap = weft__alloc(h->cap * sizeof(*h->heap));
    atomic_init(&h->earliest, WEFT_NO_DEADLINE);
    return h->heap ? 0 : -ENOMEM;
}

void weft__timers_fini(struct weft__timers *h)
{
    weft__free(h->heap, h->cap * sizeof(*h->heap));
    h->heap = NULL;
}

#define HEAP_ARITY 4

static void place(struct weft__timers *h, uint32_t i,
                  struct weft__timer_slot s)
{
    h->heap[i] = s;
    s.tm->index = i;
}

static void sift_up(struct weft__timers *h, uint32_t i)
{
    struct weft__timer_slot s = h->heap[i];

    while (i > 0) {
        uint32_t parent = (i - 1) / HEAP_ARITY;

        if (h->heap[parent].deadline <= s.deadline)
            break;
        place(h, i, h->heap[parent]);
        i = parent;
    }
    place(h, i, s);
}

/* The child of i with the earliest deadline; i has at least one child. */
static uint32_t earliest_child(struct weft__timers *h, uint32_t i)
{
    uint32_t first = HEAP_ARITY * i + 1, best = first;
    uint32_t end = first + HEAP_ARITY < h->n ? first + HEAP_ARITY : h->n;

    for (uint32_t c = first + 1; c < end; c++)
        if (h->heap[c].deadline < h->heap[best].deadline)
            best = c;
    return best;
}

static void sift_down(struct weft__timers *h, uint32_t i)
{
    struct weft__timer_slot s = h->heap[i];

    while (HEAP_ARITY * i + 1 < h->n) {
        uint32_t c = earliest_child(h, i);

        if (s.deadline <= h->heap[c].deadline)
            break;
        place(h, i, h->heap[c]);
        i = c;
    }
    place(h, i, s);
}

static void update_earliest(struct weft__timers *h)
{
    atomic_store_explicit(&h->earliest, h->n ? h->heap[0].deadline :
                          WEFT_NO_DEADLINE, memory_order_relaxed);
}

static int grow(struct weft__timers *h)
{
    uint32_t cap = h->cap * 2;
    struct weft__timer_slot *heap = weft__alloc(cap * sizeof(*heap));

    if (!heap)
        return -ENOMEM;
    for (uint32_t i = 0; i < h->n; i++)
        heap[i] = h->heap[i];
    weft__free(h->heap, h->cap * sizeof(*h->heap));
    h->heap = heap;
    h->cap = cap;
    return 0;
}

/* Removes heap slot i; under h->lock. */
static void remove_at(struct weft__timers *h, uint32_t i)
{
    struct weft__timer_slot last = h->heap[--h->n];

    h->heap[i].tm->index = TIMER_UNQUEUED;
    if (i < h->n) {
        place(h, i, last);
        sift_down(h, i);
        if (h->heap[i].tm == last.tm)
            sift_up(h, i);
    }
}

int weft__timer_arm(struct weft__timers *h, struct weft_task *t,
                    int64_t deadline)
{
    struct weft__timer *tm = &t->timer;
    int ret = 0;

    atomic_store_explicit(&tm->fired, false, memory_order_relaxed);
    tm->home = h;
    weft__spin_lock(&h->lock);
    if (h->n == h->cap)
        ret = grow(h);
    if (ret == 0) {
        h->heap[h->n] = (struct weft__timer_slot){ deadline, tm };
        sift_up(h, h->n++);
        update_earliest(h);
    }
    weft__spin_unlock(&h->lock);
    return ret;
}

void weft__timer_disarm(struct weft_task *t)
{
    struct weft__timer *tm = &t->timer;
    struct weft__timers *h = tm->home;

    if (!h)
        return;
    weft__spin_lock(&h->lock);
    if (tm->index != TIMER_UNQUEUED) {
        remove_at(h, tm->index);
        update_earliest(h);
    }
    weft__spin_unlock(&h->lock);
    tm->home = NULL;
}

void weft__timers_fire(struct weft__timers *h, int64_t now)
{
    if (weft__timers_next(h) > now)
        return;
    weft__spin_lock(&h->lock);
    while (h->n && h->heap[0].deadline <= now) {
        struct weft__timer *tm = h->heap[0].tm;

        remove_at(h, 0);
        /* release: pairs with the acquire in weft__task_block(). The wake
         * happens under the lock: once disarm() has taken it, the node is
         * no longer ours to touch. */
        atomic_store_explicit(&tm->fired, true, memory_order_release);
        weft__task_wake(container_of(tm, struct weft_task, timer));
    }
    update_earliest(h);
    weft__spin_unlock(&h->lock);
}

/* ---- sleeping ------------------------------------------------------------ */

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static int sleep_until(int64_t deadline, const void *where)
{
    struct weft_task *t = weft__task_current();
    int ret;

    if (!t)
        return -EPERM;
    if (deadline <= weft__now())
        return weft_yield();
    ret = weft__task_block(t, never, NULL, weft__wait_deadline(t, deadline),
                           WHY_SLEEP, where);
    if (ret == -ETIMEDOUT && deadline <= t->scope_deadline)
        return 0;
    return ret;
}

int weft_sleep_until(int64_t deadline_ns)
{
    return sleep_until(deadline_ns, WEFT__WHERE);
}

/* now + ns, saturating at WEFT_NO_DEADLINE. */
static int64_t deadline_after(int64_t ns)
{
    int64_t now = weft__now();

    return ns >= WEFT_NO_DEADLINE - now ? WEFT_NO_DEADLINE : now + ns;
}

int weft_sleep_ns(int64_t ns)
{
    if (ns < 0)
        return -EINVAL;
    return sleep_until(deadline_after(ns), WEFT__WHERE);
}

int weft_sleep_ms(int64_t ms)
{
    if (ms < 0)
        return -EINVAL;
    return sleep_until(weft_deadline_in_ms(ms), WEFT__WHERE);
}
