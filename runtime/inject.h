/*
 * The global injection queue: tasks from foreign threads and the overflow of
 * full local run queues. Any thread.
 *
 * A FIFO of task pointers kept in segments (arrays of a page each) under a
 * mutex, with an atomic length so that workers skip the lock when it is
 * empty. Tasks go in and come out as batches: a push copies an array of
 * pointers in, a pop copies up to `max` out. Neither reads or writes a
 * task struct: a spilled batch of cold tasks costs a copy of pointers under
 * the lock, not a walk over the tasks' cache lines (a list linked through
 * the tasks made every pop walk them, one miss per task, lock held).
 *
 * A segment emptied by a pop is kept as a spare for the next push (up to
 * INJECT_SPARE_MAX of them), so a steady spill-and-take cycle allocates
 * nothing. If a segment cannot be allocated, the push links its tasks
 * through task->next onto a fallback list that pops drain after the
 * segments: no task is lost to a failed allocation.
 */
#ifndef WEFT__INJECT_H
#define WEFT__INJECT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct weft_task;

/* Task pointers per segment: a segment, header included, fills 4 KiB. */
#define INJECT_SEG_CAP 510

struct weft__inject_seg {
    struct weft__inject_seg *next;
    uint32_t head, tail; /* slots [head, tail) hold queued tasks */
    struct weft_task *slot[INJECT_SEG_CAP];
};

struct weft__inject {
    pthread_mutex_t lock;
    /* Under lock. */
    struct weft__inject_seg *head, *tail; /* queued segments, oldest first */
    struct weft__inject_seg *spare;       /* empty segments kept */
    unsigned nspare;
    struct weft_task *fallback, *fallback_tail; /* see above */
    _Atomic uint32_t len;          /* written under lock, read anywhere */
};

int weft__inject_init(struct weft__inject *q);
void weft__inject_fini(struct weft__inject *q);

/* Appends tasks[0..n-1], in that order. */
void weft__inject_push(struct weft__inject *q, struct weft_task *const *tasks,
                       uint32_t n);

/* Removes up to max tasks, oldest first, into out; returns the count. */
uint32_t weft__inject_pop(struct weft__inject *q, uint32_t max,
                          struct weft_task **out);

static inline uint32_t weft__inject_len(struct weft__inject *q)
{
    return atomic_load_explicit(&q->len, memory_order_relaxed);
}

#endif
