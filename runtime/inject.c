/*
 * Global injection queue; see inject.h.
 */
#include "inject.h"

#include <stdbool.h>
#include <string.h>

#include "mem.h"
#include "task.h"

#define INJECT_SPARE_MAX 4 /* empty segments kept for the next pushes */

_Static_assert(sizeof(struct weft__inject_seg) == 4096,
               "a segment fills a page");

int weft__inject_init(struct weft__inject *q)
{
    q->head = q->tail = q->spare = NULL;
    q->nspare = 0;
    q->fallback = q->fallback_tail = NULL;
    atomic_init(&q->len, 0);
    return -pthread_mutex_init(&q->lock, NULL);
}

static void free_segs(struct weft__inject_seg *s)
{
    while (s) {
        struct weft__inject_seg *next = s->next;

        weft__free(s, sizeof(*s));
        s = next;
    }
}

void weft__inject_fini(struct weft__inject *q)
{
    free_segs(q->head);
    free_segs(q->spare);
    q->head = q->tail = q->spare = NULL;
    pthread_mutex_destroy(&q->lock);
}

/* Under lock. */
static void add_len(struct weft__inject *q, int64_t d)
{
    atomic_store_explicit(&q->len, (uint32_t)(atomic_load_explicit(
                              &q->len, memory_order_relaxed) + d),
                          memory_order_relaxed);
}

/* Under lock: an empty segment appended to the queue, or NULL if there is
 * no memory for one. A new one is allocated with the lock dropped (the
 * caller holds it again on return). */
static struct weft__inject_seg *new_tail(struct weft__inject *q)
{
    struct weft__inject_seg *s = q->spare;

    if (s) {
        q->spare = s->next;
        q->nspare--;
    } else {
        pthread_mutex_unlock(&q->lock);
        s = weft__alloc(sizeof(*s));
        pthread_mutex_lock(&q->lock);
        if (!s)
            return NULL;
    }
    s->next = NULL;
    s->head = s->tail = 0;
    if (q->tail)
        q->tail->next = s;
    else
        q->head = s;
    q->tail = s;
    return s;
}

/* Under lock: links tasks onto the fallback list (no memory for a
 * segment). */
static void push_fallback(struct weft__inject *q,
                          struct weft_task *const *tasks, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        tasks[i]->next = NULL;
        if (q->fallback_tail)
            q->fallback_tail->next = tasks[i];
        else
            q->fallback = tasks[i];
        q->fallback_tail = tasks[i];
    }
    add_len(q, n);
}

void weft__inject_push(struct weft__inject *q, struct weft_task *const *tasks,
                       uint32_t n)
{
    pthread_mutex_lock(&q->lock);
    while (n) {
        struct weft__inject_seg *s = q->tail;
        uint32_t k;

        if (!s || s->tail == INJECT_SEG_CAP) {
            s = new_tail(q);
            if (!s) {
                push_fallback(q, tasks, n);
                break;
            }
        }
        k = INJECT_SEG_CAP - s->tail;
        if (k > n)
            k = n;
        memcpy(&s->slot[s->tail], tasks, k * sizeof(*tasks));
        s->tail += k;
        tasks += k;
        n -= k;
        /* Piece by piece: a pop may take them while new_tail() has the
         * lock dropped. */
        add_len(q, k);
    }
    pthread_mutex_unlock(&q->lock);
}

uint32_t weft__inject_pop(struct weft__inject *q, uint32_t max,
                          struct weft_task **out)
{
    struct weft__inject_seg *dead = NULL;
    uint32_t n = 0;

    if (weft__inject_len(q) == 0)
        return 0;
    pthread_mutex_lock(&q->lock);
    while (n < max && q->head) {
        struct weft__inject_seg *s = q->head;
        uint32_t k = s->tail - s->head;

        if (k > max - n)
            k = max - n;
        memcpy(out + n, &s->slot[s->head], k * sizeof(*out));
        s->head += k;
        n += k;
        if (s->head < s->tail)
            break; /* max reached */
        if (s == q->tail && s->tail < INJECT_SEG_CAP) {
            s->head = s->tail = 0; /* empty, and still the one pushed to */
            break;
        }
        q->head = s->next;
        if (!q->head)
            q->tail = NULL;
        if (q->nspare < INJECT_SPARE_MAX) {
            s->next = q->spare;
            q->spare = s;
            q->nspare++;
        } else {
            s->next = dead;
            dead = s;
        }
    }
    while (n < max && q->fallback) {
        out[n++] = q->fallback;
        q->fallback = q->fallback->next;
        if (!q->fallback)
            q->fallback_tail = NULL;
    }
    add_len(q, -(int64_t)n);
    pthread_mutex_unlock(&q->lock);
    free_segs(dead);
    return n;
}
