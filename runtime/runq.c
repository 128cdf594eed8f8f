/*
 * Local run queue; see runq.h for who may touch what.
 *
 * Indexes are free-running uint32 counters; slot = index % CAP. tail - head
 * is the length as long as it never exceeds CAP, which push guarantees by
 * reading head with acquire before writing a slot: a slot is reused only after
 * the CAS that moved head past it, so no stealer still needs its old value
 * (one that does will fail its CAS and retry).
 */
#include "runq.h"

#include "task.h"

#define MASK (WEFT_RUNQ_CAP - 1)

_Static_assert((WEFT_RUNQ_CAP & MASK) == 0, "WEFT_RUNQ_CAP: power of two");

void weft__runq_init(struct weft__runq *q)
{
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    atomic_init(&q->iclaimed, 0);
    atomic_init(&q->nclaimed, 0);
    for (uint32_t i = 0; i < WEFT_RUNQ_CAP; i++)
        atomic_init(&q->buf[i], NULL);
}

int weft__runq_push(struct weft__runq *q, struct weft_task *t)
{
    /* acquire: pairs with the head CAS in pop/steal, so the slot is free. */
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t tl = atomic_load_explicit(&q->tail, memory_order_relaxed);

    if (tl - h >= WEFT_RUNQ_CAP)
        return -1;
    atomic_store_explicit(&q->buf[tl & MASK], t, memory_order_relaxed);
    /* release: publishes the slot to stealers' acquire load of tail. */
    atomic_store_explicit(&q->tail, tl + 1, memory_order_release);
    return tl == h;
}

uint32_t weft__runq_spill(struct weft__runq *q, struct weft_task *t,
                          struct weft_task **out)
{
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t tl = atomic_load_explicit(&q->tail, memory_order_relaxed);
    uint32_t n = (tl - h) / 2;

    if (n == 0)
        return 0;
    /* The CAS claims slots [h, h + n) against racing stealers. Only the
     * owner (us) writes slots, and not before its next push, so they can be
     * read after the claim, in place. */
    if (!atomic_compare_exchange_strong_explicit(&q->head, &h, h + n,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire))
        return 0;
    for (uint32_t i = 0; i < n; i++)
        out[i] = atomic_load_explicit(&q->buf[(h + i) & MASK],
                                      memory_order_relaxed);
    out[n] = t;
    return n + 1;
}

/* Owner only (or its duties' holder): relaxed loads of its own writes. */
static uint32_t iclaimed(const struct weft__runq *q)
{
    return atomic_load_explicit(&q->iclaimed, memory_order_relaxed);
}

static uint32_t nclaimed(const struct weft__runq *q)
{
    return atomic_load_explicit(&q->nclaimed, memory_order_relaxed);
}

/* The next claimed task; there is one. */
static struct weft_task *next_claimed(struct weft__runq *q)
{
    uint32_t i = iclaimed(q);

    atomic_store_explicit(&q->iclaimed, i + 1, memory_order_relaxed);
    return q->claimed[i];
}

/* Claims up to WEFT_RUNQ_CLAIM_MAX of the oldest tasks, at most half of
 * them (at least one), and returns the first; NULL if empty. */
static __attribute__((noinline)) struct weft_task *claim(struct weft__runq *q)
{
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);

    for (;;) {
        uint32_t tl = atomic_load_explicit(&q->tail, memory_order_relaxed);
        uint32_t n = (tl - h) / 2;

        if (h == tl)
            return NULL;
        if (n == 0)
            n = 1;
        else if (n > WEFT_RUNQ_CLAIM_MAX)
            n = WEFT_RUNQ_CLAIM_MAX;
        for (uint32_t i = 0; i < n; i++)
            q->claimed[i] = atomic_load_explicit(&q->buf[(h + i) & MASK],
                                                 memory_order_relaxed);
        /* acq_rel: the owner races stealers for slots [h, h + n); its
         * reads of them are valid if it wins. */
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, h + n,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire)) {
            atomic_store_explicit(&q->iclaimed, 1, memory_order_relaxed);
            atomic_store_explicit(&q->nclaimed, n, memory_order_relaxed);
            return q->claimed[0];
        }
    }
}

struct weft_task *weft__runq_pop(struct weft__runq *q)
{
    if (iclaimed(q) != nclaimed(q))
        return next_claimed(q);
    return claim(q);
}

uint32_t weft__runq_take_claimed(struct weft__runq *q, struct weft_task **out)
{
    uint32_t n = 0;

    while (iclaimed(q) != nclaimed(q))
        out[n++] = next_claimed(q);
    return n;
}

/* Copies half of src into dst's free slots; returns the count claimed. */
static uint32_t grab_half(struct weft__runq *src, struct weft__runq *dst,
                          uint32_t dst_tail)
{
    for (;;) {
        uint32_t h = atomic_load_explicit(&src->head, memory_order_acquire);
        /* acquire: pairs with the release store of tail in push. */
        uint32_t tl = atomic_load_explicit(&src->tail, memory_order_acquire);
        uint32_t n = tl - h;

        n -= n / 2;
        if (n == 0)
            return 0;
        if (n > WEFT_RUNQ_CAP / 2 + 1)
            continue; /* h and tl read at different times; retry */
        for (uint32_t i = 0; i < n; i++) {
            struct weft_task *t = atomic_load_explicit(
                &src->buf[(h + i) & MASK], memory_order_relaxed);

            atomic_store_explicit(&dst->buf[(dst_tail + i) & MASK], t,
                                  memory_order_relaxed);
        }
        if (atomic_compare_exchange_strong_explicit(&src->head, &h, h + n,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire))
            return n;
    }
}

struct weft_task *weft__runq_steal(struct weft__runq *src,
                                   struct weft__runq *dst)
{
    uint32_t tl = atomic_load_explicit(&dst->tail, memory_order_relaxed);
    uint32_t n = grab_half(src, dst, tl);
    struct weft_task *t;

    if (n == 0)
        return NULL;
    n--;
    t = atomic_load_explicit(&dst->buf[(tl + n) & MASK], memory_order_relaxed);
    /* Queued tasks are NEW, SCHED, or RUNNING if they yielded, or taken
     * by their joiners (task.h). */
    WEFT__CHECK(t && weft__task_queueable(atomic_load_explicit(
                         &t->state, memory_order_relaxed) & ~TASK_NOTIFIED));
    if (n)
        /* release: publishes the copied slots, as in push. */
        atomic_store_explicit(&dst->tail, tl + n, memory_order_release);
    return t;
}

uint32_t weft__runq_take(struct weft__runq *src, struct weft_task **out,
                         uint32_t max)
{
    for (;;) {
        uint32_t h = atomic_load_explicit(&src->head, memory_order_acquire);
        /* acquire: pairs with the release store of tail in push. */
        uint32_t tl = atomic_load_explicit(&src->tail, memory_order_acquire);
        uint32_t n = tl - h;

        if (n > WEFT_RUNQ_CAP)
            continue; /* h and tl read at different times; retry */
        if (n > max)
            n = max;
        if (n == 0)
            return 0;
        for (uint32_t i = 0; i < n; i++)
            out[i] = atomic_load_explicit(&src->buf[(h + i) & MASK],
                                          memory_order_relaxed);
        if (atomic_compare_exchange_strong_explicit(&src->head, &h, h + n,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire))
            return n;
    }
}

uint32_t weft__runq_stealable(const struct weft__runq *q)
{
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t tl = atomic_load_explicit(&q->tail, memory_order_acquire);

    return tl - h;
}

uint32_t weft__runq_len(const struct weft__runq *q)
{
    return weft__runq_stealable(q) + (nclaimed(q) - iclaimed(q));
}

struct weft_task *weft__runq_peek(const struct weft__runq *q)
{
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t tl = atomic_load_explicit(&q->tail, memory_order_relaxed);

    if (iclaimed(q) != nclaimed(q))
        return q->claimed[iclaimed(q)];
    return h != tl ? atomic_load_explicit(&q->buf[h & MASK],
                                          memory_order_relaxed)
                   : NULL;
}
