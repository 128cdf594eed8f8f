/*
 * Futures: a one-shot int result that any thread may set once and any
 * number of tasks may await (asyncio.Future, minus callbacks). The public
 * weft_future_t is opaque storage of the size checked in future.c, like the
 * toolkit's primitives (sync.h); this is its layout.
 *
 * Setting hands the value to every waiter through the shared wait lists
 * (wait.h): a waiter that times out or is cancelled at the moment the value
 * arrives still gets it. Once set, a future never changes.
 */
#ifndef WEFT__FUTURE_H
#define WEFT__FUTURE_H

#include <stdbool.h>

#include "spin.h"
#include "wait.h"

struct future {
    struct weft__spin lock;
    /* Under lock. */
    bool set;
    int value;                   /* meaningful once set */
    struct weft__waitq waiters;
};

#endif
