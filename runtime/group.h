/*
 * Task groups (asyncio.TaskGroup, a Trio nursery): children spawned into a
 * group are waited for together; the first to fail cancels the rest. The
 * public weft_group_t is opaque storage of this layout (checked in group.c).
 */
#ifndef WEFT__GROUP_H
#define WEFT__GROUP_H

#include <stdbool.h>
#include <stddef.h>

#include "spin.h"
#include "task.h"

/* One live child: allocated by spawn, freed when the child ends. */
struct group_child {
    struct group_child *next, *prev;  /* under g->lock */
    struct weft_task *task;           /* read-only once listed */
    struct group *g;                  /* read-only once spawned */
    weft_fn_t fn;
    void *arg;
    int *status;                      /* where the child's end stores its
                                       * status, or NULL */
};

struct group {
    struct weft__spin lock;
    /* Under lock. */
    struct group_child *head;         /* children that have not ended */
    struct weft_task *waiter;         /* the task in weft_group_wait, or
                                       * NULL */
    int error;                        /* the first child failure, or 0 */
    bool cancelled;                   /* no new children; all cancelled */
};

/* Children of g that have not ended: what g holds (tests). */
size_t weft__group_live(weft_group_t *g);

#endif
