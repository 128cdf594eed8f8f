/*
 * Global injection queue; see inject.h.
 */
#include "inject.h"

#include "task.h"

int weft__inject_init(struct weft__inject *q)
{
    q->head = q->tail = NULL;
    atomic_init(&q->len, 0);
    return -pthread_mutex_init(&q->lock, NULL);
}

void weft__inject_fini(struct weft__inject *q)
{
    pthread_mutex_destroy(&q->lock);
}

void weft__inject_push(struct weft__inject *q, struct weft_task *first,
                       struct weft_task *last, uint32_t n)
{
    last->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = first;
    else
        q->head = first;
    q->tail = last;
    atomic_store_explicit(&q->len, atomic_load_explicit(&q->len,
                          memory_order_relaxed) + n, memory_order_relaxed);
    pthread_mutex_unlock(&q->lock);
}

uint32_t weft__inject_pop(struct weft__inject *q, uint32_t max,
                          struct weft_task **first)
{
    struct weft_task *t;
    uint32_t n = 0;

    if (weft__inject_len(q) == 0)
        return 0;
    pthread_mutex_lock(&q->lock);
    t = *first = q->head;
    while (t && n < max) {
        n++;
        if (n == max || !t->next)
            break;
        t = t->next;
    }
    if (n) {
        q->head = t->next;
        if (!q->head)
            q->tail = NULL;
        t->next = NULL;
        atomic_store_explicit(&q->len, atomic_load_explicit(&q->len,
                              memory_order_relaxed) - n, memory_order_relaxed);
    }
    pthread_mutex_unlock(&q->lock);
    return n;
}
