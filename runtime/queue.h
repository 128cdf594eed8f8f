/*
 * Queues (asyncio.Queue): bounded or unbounded MPMC queues of pointers with
 * suspending put/get, close and join/task_done. The public weft_queue_t is
 * opaque storage of this layout (checked in queue.c).
 *
 * Invariants, all under lock:
 *   - getters waiting  => the ring is empty (a put hands its item straight
 *     to the oldest getter instead of storing it);
 *   - putters waiting  => the queue is bounded and full (a get refills the
 *     ring from the oldest putter, whose item thereby counts as put);
 *   - closed           => nobody waits in getters or putters.
 * Each item is either in the ring, handed to exactly one getter, or still
 * owned by its putter: a waiter that gives up at the moment it is handed an
 * item keeps it (wait.h), so none is lost or duplicated.
 */
#ifndef WEFT__QUEUE_H
#define WEFT__QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include "spin.h"
#include "wait.h"

struct queue {
    struct weft__spin lock;
    /* Under lock. */
    void **items;       /* ring of cap slots */
    size_t cap;
    size_t head;        /* slot of the oldest item */
    size_t count;       /* items in the ring */
    size_t limit;       /* most items; 0: unbounded (the ring grows) */
    size_t unfinished;  /* put but not yet task_done */
    bool closed;
    bool lifo;          /* get takes the newest item */
    struct weft__waitq getters, putters, joiners;
};

#endif
