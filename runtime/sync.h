/*
 * Fiber-aware synchronisation primitives: mutex, semaphore, event,
 * condition, barrier and wait group. The public types in weft.h are opaque
 * storage of the sizes checked in sync.c; these are their layouts.
 *
 * Every primitive is one spinlock, a little state and a FIFO wait list
 * (wait.h). The uncontended path takes the spinlock and nothing else; a
 * waiter suspends its task, never its worker thread. Whoever changes the
 * state so that a waiter may proceed hands the permit (lock, count, signal)
 * directly to the oldest waiter instead of publishing it for anyone to
 * grab: a newcomer cannot barge past a queued task, and a permit handed to
 * a waiter that is cancelled at the same moment stays with it (wait.h).
 */
#ifndef WEFT__SYNC_H
#define WEFT__SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "spin.h"
#include "wait.h"

struct mutex {
    struct weft__spin lock;
    /* Under lock. */
    weft_task_t *owner;        /* the holder's handle value (NULL:
                                * unlocked), handed on with the lock; not
                                * its struct, which a later task may reuse
                                * (task.h) */
    struct weft__waitq waiters;
};

struct sem {
    struct weft__spin lock;
    /* Under lock. count > 0 implies no waiters (release hands on). */
    long count;
    long max;                  /* most permits: the initial value if
                                * bounded, else UINT_MAX */
    struct weft__waitq waiters;
};

struct event {
    struct weft__spin lock;
    bool set;                  /* under lock */
    struct weft__waitq waiters;
};

struct cond {
    struct weft__spin lock;
    /* Under lock. */
    struct mutex *m;           /* the mutex of the waiters, if any */
    struct weft__waitq waiters;
};

struct barrier {
    struct weft__spin lock;
    unsigned parties;          /* set at init */
    struct weft__waitq waiters; /* the parties waiting in this cycle */
};

struct waitgroup {
    struct weft__spin lock;
    long count;                /* under lock */
    struct weft__waitq waiters;
};

/* The mutex lock behind weft_mutex_lock and the condition's re-lock:
 * deadline is already combined with any scope. */
int weft__mutex_lock(struct mutex *m, struct weft_task *t, int64_t deadline,
                     const void *where);

#endif
