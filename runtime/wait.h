/*
 * Wait lists: the one place where a task waits for a primitive (mutex,
 * semaphore, event, condition, barrier, wait group, queue, task group) and
 * where another task hands it what it waited for.
 *
 * A waiter node lives on the waiting task's stack. The primitive's own
 * spinlock guards its list; the node's `queued` flag, read and written only
 * under that lock, says whether the node is still in the list.
 *
 * Hand-off protocol (the race it prevents: a waiter that times out or is
 * cancelled at the same moment as it is handed an item or a permit, so that
 * the item is lost, or the hander writes into a stack frame that is gone):
 *
 *   hander, under the lock:   pop the node (queued = false), fill in
 *                             status/item, read node->task
 *   hander, after unlocking:  done = true (release), then wake the task
 *   waiter, on timeout/cancel: take the lock; if still queued, unlink and
 *                             fail; otherwise it was handed the item: wait
 *                             for `done` (a few instructions away), keep
 *                             the item, and put a taken cancel back
 *
 * So exactly one side decides each node's fate, under the lock: a node that
 * left the list by a pop always gets its item, and a node unlinked by its
 * waiter never does. The hander touches the node for the last time in the
 * `done` store; the waiter's frame outlives that store because the waiter
 * cannot return before it sees `done`. Waking a task struct after that is
 * safe even if the task already moved on: task structs are never unmapped
 * and wakes may be spurious (task.h).
 *
 * The list is FIFO: primitives pop the oldest waiter, which is what makes
 * mutex hand-off fair and queues first-come first-served.
 */
#ifndef WEFT__WAIT_H
#define WEFT__WAIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spin.h"
#include "task.h"

struct weft__waiter {
    /* Under the owning primitive's lock. */
    struct weft__waiter *next, *prev;
    bool queued;
    /* Set before the node is queued; read-only afterwards. */
    struct weft_task *task;
    /* Written by the hander before `done`, or by the waiter before it
     * queues (a putter's item): the payload and the result of the wait. */
    void *item;
    int status;
    /* release: set by weft__waiter_release(), pairs with the acquire in
     * waiter_done(). */
    atomic_bool done;
};

struct weft__waitq {
    /* Under the owning lock. */
    struct weft__waiter *head, *tail;
    size_t n;                        /* nodes in the list */
};

static inline void weft__waitq_init(struct weft__waitq *q)
{
    q->head = q->tail = NULL;
    q->n = 0;
}

static inline bool weft__waitq_empty(const struct weft__waitq *q)
{
    return q->head == NULL;
}

/* Prepares w (on the caller's stack) for task t; item is its payload. */
void weft__waiter_init(struct weft__waiter *w, struct weft_task *t,
                       void *item);

/* Under the lock: appends w. */
void weft__waitq_push(struct weft__waitq *q, struct weft__waiter *w);

/* Under the lock: removes and returns the oldest waiter, or NULL. The
 * caller must weft__waiter_release() it after unlocking. */
struct weft__waiter *weft__waitq_pop(struct weft__waitq *q);

/* Under the lock: takes w, which is queued in q, out of it, for a hander
 * that picks its waiters by their payload rather than by age. The caller
 * must weft__waiter_release() it after unlocking. */
void weft__waitq_remove(struct weft__waitq *q, struct weft__waiter *w);

/* Under the lock: empties q and returns its nodes as a chain through
 * `next`, for weft__waiter_release_all() after unlocking. */
struct weft__waiter *weft__waitq_pop_all(struct weft__waitq *q);

/* After unlocking: completes a popped wait with status. */
void weft__waiter_release(struct weft__waiter *w, int status);

/* After unlocking: completes every node of a chain from pop_all. */
void weft__waiter_release_all(struct weft__waiter *chain, int status);

/*
 * Called without the lock, after pushing w and unlocking: suspends until w
 * is released or the deadline (already combined with the scope, see
 * weft__wait_deadline) passes or the task is cancelled. Returns the status
 * the hander gave (w->item holds any payload), or -ETIMEDOUT / -ECANCELED
 * with w unlinked and nothing handed over.
 */
int weft__waitq_block(struct weft__spin *lock, struct weft__waitq *q,
                      struct weft__waiter *w, int64_t deadline,
                      enum weft__why why, const void *where);

/*
 * The common case of the two above: called with the lock held, queues w and
 * unlocks, then blocks. Returns as weft__waitq_block().
 */
int weft__wait(struct weft__spin *lock, struct weft__waitq *q,
               struct weft__waiter *w, int64_t deadline, enum weft__why why,
               const void *where);

#endif
