/*
 * Task groups (asyncio.TaskGroup, a Trio nursery): children spawned into a
 * group are waited for together; the first to fail cancels the rest. The
 * public weft_group_t is opaque storage of this layout (checked in group.c).
 */
#ifndef WEFT__GROUP_H
#define WEFT__GROUP_H

#include <stdbool.h>

#include "spin.h"
#include "task.h"

/* One child; allocated by spawn, freed by the group's wait once joined. */
struct group_child {
    struct group_child *next, *prev;  /* under g->lock */
    weft_task_t *task;                /* the held handle; under g->lock */
    struct group *g;                  /* read-only once spawned */
    weft_fn_t fn;
    void *arg;
    int *status;                      /* where wait stores the result */
};

struct group {
    struct weft__spin lock;
    /* Under lock. */
    struct group_child *head, *tail;  /* children not yet joined */
    weft_task_t *waiter;              /* handle value of the task in
                                       * weft_group_wait, or NULL */
    int error;                        /* the first child failure, or 0 */
    bool cancelled;                   /* no new children; all cancelled */
};

#endif
