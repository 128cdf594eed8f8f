/*
 * Per-worker timers: a 4-ary min-heap of deadlines under a small lock.
 *
 * Each task owns one timer node (embedded in the task) armed with the
 * effective deadline of its current suspension. A task arms its timer on the
 * worker it runs on; the owner worker fires due timers; the task disarms its
 * own timer when it resumes, from whichever worker it then runs on (hence the
 * lock). Firing marks the node and wakes the task while holding the heap's
 * lock, so once disarm has returned no worker touches the node any more.
 *
 * The heap holds each deadline next to its node, so that sifting compares
 * within the array instead of loading a cold task per comparison; with four
 * children a node, a sift moves half as many nodes as a binary heap would
 * (Go's runtime keeps its timers the same way).
 */
#ifndef WEFT__TIMER_H
#define WEFT__TIMER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "spin.h"

struct weft_task;
struct weft__timers;

#define TIMER_UNQUEUED UINT32_MAX

struct weft__timer {
    uint32_t index;             /* heap slot or TIMER_UNQUEUED; home->lock */
    atomic_bool fired;          /* set by the firing worker */
    struct weft__timers *home;  /* heap it was last armed in; task only */
};

/* A heap entry. */
struct weft__timer_slot {
    int64_t deadline;
    struct weft__timer *tm;
};

struct weft__timers {
    struct weft__spin lock;
    struct weft__timer_slot *heap; /* under lock */
    uint32_t n, cap;            /* under lock */
    _Atomic int64_t earliest;   /* heap[0]'s deadline or WEFT_NO_DEADLINE; written
                                   under lock, read racily by the owner */
};

int weft__timers_init(struct weft__timers *h);
void weft__timers_fini(struct weft__timers *h);

/* Arms t's timer in h (the current worker's). Returns 0 or -ENOMEM. */
int weft__timer_arm(struct weft__timers *h, struct weft_task *t,
                    int64_t deadline);

/* Takes t's timer out of whatever heap holds it. Task context only. */
void weft__timer_disarm(struct weft_task *t);

/* Owner worker, or a rescuer serving it while it is stuck (see "Stalls" in
 * worker.c): wakes the tasks whose deadline is <= now. */
void weft__timers_fire(struct weft__timers *h, int64_t now);

/* Owner worker: the earliest deadline, or WEFT_NO_DEADLINE. */
static inline int64_t weft__timers_next(struct weft__timers *h)
{
    return atomic_load_explicit(&h->earliest, memory_order_relaxed);
}

#endif
