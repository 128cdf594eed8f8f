/*
 * A worker's local run queue: a bounded ring that only its owner pushes to
 * and that any worker may steal half of (the design of Go's runq and Tokio's
 * local queue).
 *
 * Who touches what:
 *   tail: written by the owner only (release), read by stealers (acquire).
 *   head: advanced by CAS by the owner (pop) and by stealers (steal).
 *   buf:  slot i is written by the owner only while i is outside
 *         [head, tail); stealers read [head, tail) before their CAS on head
 *         validates the read. Slots are relaxed atomics because a stealer
 *         whose CAS is about to fail may read a slot the owner is reusing.
 *   claimed, iclaimed, nclaimed: the owner's. Its pop moves a batch of
 *         the oldest tasks out of the ring with one CAS on head and runs
 *         them from there, one by one, without another. Whoever holds the
 *         owner's duties while it is stuck may take them (see "Stalls" in
 *         worker.c). The counts are relaxed atomics only so that a snapshot
 *         of the length may read them.
 *
 * The claim keeps the owner's pop free of a locked instruction most of the
 * time, as a yield or a hand-off pops at every switch. A claim takes up to
 * WEFT_RUNQ_CLAIM_MAX tasks and never more than half of the queue (one
 * when there are one or two), so a thief always finds the other half.
 * Order is unchanged: the claimed tasks are the oldest, and run first.
 */
#ifndef WEFT__RUNQ_H
#define WEFT__RUNQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"

#ifndef WEFT_RUNQ_CAP
#define WEFT_RUNQ_CAP 1024 /* a power of two; test builds shrink it */
#endif

struct weft_task;

#define WEFT_RUNQ_CLAIM_MAX 16 /* the most tasks one claim takes */

struct weft__runq {
    _Atomic uint32_t head WEFT__ALIGNED;
    /* Stealers read tail; the rest of this line is the owner's. */
    _Atomic uint32_t tail WEFT__ALIGNED;
    _Atomic uint32_t iclaimed, nclaimed;
    struct weft_task *claimed[WEFT_RUNQ_CLAIM_MAX];
    _Atomic(struct weft_task *) buf[WEFT_RUNQ_CAP];
};

void weft__runq_init(struct weft__runq *q);

/* Owner only. Returns 1 if nothing was stealable before t (the owner's
 * view of head: a thief may have emptied the queue unseen), 0 if t joined
 * stealable tasks, or -1 when full: the caller spills with
 * weft__runq_spill. */
int weft__runq_push(struct weft__runq *q, struct weft_task *t);

/* The most weft__runq_spill() writes to its array. */
#define WEFT_RUNQ_SPILL_MAX (WEFT_RUNQ_CAP / 2 + 1)

/*
 * Owner only, when push failed: takes the older half of the queue plus t,
 * oldest first, into out[] (room for WEFT_RUNQ_SPILL_MAX), a batch for the
 * injection queue. Reads no task struct. Returns the count, or 0 if a
 * stealer emptied the queue meanwhile (then push again).
 */
uint32_t weft__runq_spill(struct weft__runq *q, struct weft_task *t,
                          struct weft_task **out);

/* Owner only: the oldest task (claimed, see above), or NULL if empty. */
struct weft_task *weft__runq_pop(struct weft__runq *q);

/*
 * By whoever holds the owner's duties while the owner runs no runtime
 * code (a stuck worker's rescuer, or the owner itself): takes the tasks
 * the owner claimed and has not run into out[] (room for
 * WEFT_RUNQ_CLAIM_MAX), oldest first, for other workers. Returns the
 * count.
 */
uint32_t weft__runq_take_claimed(struct weft__runq *q, struct weft_task **out);

/*
 * Called by `dst`'s owner with dst empty: moves half of src (rounded up)
 * into dst and returns one of the moved tasks to run now, or NULL.
 */
struct weft_task *weft__runq_steal(struct weft__runq *src,
                                   struct weft__runq *dst);

/*
 * Any thread, as a stealer: takes up to max tasks from src's head into
 * out[], oldest first. For a worker that cannot run its own queue (a
 * stuck one, see "Stalls" in worker.c): a busy thief would reach it only
 * when its own queue runs dry. Returns the count.
 */
uint32_t weft__runq_take(struct weft__runq *src, struct weft_task **out,
                         uint32_t max);

/* Any thread; a snapshot: the tasks a thief could take. */
uint32_t weft__runq_stealable(const struct weft__runq *q);

/* Any thread; a snapshot: the tasks queued, claimed ones included. */
uint32_t weft__runq_len(const struct weft__runq *q);

/* Owner only: the task its next pop would return, NULL if empty; a
 * glance, since a thief may take it meanwhile (so the task may be gone
 * by the time its fields are read: atomic ones only). */
struct weft_task *weft__runq_peek(const struct weft__runq *q);

#endif
