/*
 * The global injection queue: tasks from foreign threads and the overflow of
 * full local run queues. A mutex-protected intrusive FIFO (linked through
 * task->next) with an atomic length so that workers can skip the lock when it
 * is empty. Any thread.
 */
#ifndef WEFT__INJECT_H
#define WEFT__INJECT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct weft_task;

struct weft__inject {
    pthread_mutex_t lock;
    struct weft_task *head, *tail; /* under lock */
    _Atomic uint32_t len;          /* written under lock, read anywhere */
};

int weft__inject_init(struct weft__inject *q);
void weft__inject_fini(struct weft__inject *q);

/* Appends the chain first..last of n tasks. */
void weft__inject_push(struct weft__inject *q, struct weft_task *first,
                       struct weft_task *last, uint32_t n);

/* Removes up to max tasks as a chain; returns the count. */
uint32_t weft__inject_pop(struct weft__inject *q, uint32_t max,
                          struct weft_task **first);

static inline uint32_t weft__inject_len(struct weft__inject *q)
{
    return atomic_load_explicit(&q->len, memory_order_relaxed);
}

#endif
