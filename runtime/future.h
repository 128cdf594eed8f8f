/*
 * Futures: a one-shot int result that any thread may set once and any
 * number of tasks may await (asyncio.Future, minus callbacks).
 *
 * The state word is also the lock. Until the future is set, LOCKED guards
 * the waiter list; set() unlocks and publishes SET in a single store, after
 * which it never touches the future again and the future is immutable.
 * That is what lets a task that saw SET free the future at once, even while
 * the setter is still waking the other waiters (it only touches their
 * records, each on its own waiter's stack, under the done-flag protocol of
 * task.c's joiners).
 */
#ifndef WEFT_FUTURE_H
#define WEFT_FUTURE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct weft_task;

#define FUTURE_LOCKED 1u
#define FUTURE_SET 2u

/* One awaiting task; on its stack. */
struct future_waiter {
    struct future_waiter *next;
    struct weft_task *task;
    int value;                       /* the future's, copied before done */
    atomic_bool done;
};

struct weft_future {
    _Atomic uint32_t state;          /* FUTURE_* bits */
    int value;                       /* written once, before SET */
    struct future_waiter *waiters;   /* under FUTURE_LOCKED */
};

#endif
