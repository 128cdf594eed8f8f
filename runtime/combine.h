/*
 * Combinators over tasks (gather, wait, wait_for, shield, as_completed) and
 * timeout scopes. The public weft_as_completed_t and weft_scope_t are opaque
 * storage of these layouts (checked in combine.c).
 *
 * Waits on several tasks register one joiner node per task (task.h), all
 * waking the waiting task, which then rescans the tasks' states: a
 * completion is never missed because a node is registered before the first
 * scan and deregistered only after the last.
 */
#ifndef WEFT__COMBINE_H
#define WEFT__COMBINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "task.h"

/* One watched task of an as_completed iterator. */
struct watched {
    struct weft__join_waiter j;
    bool yielded;
};

/* Owners are handle values, not struct pointers (task.h): a task that
 * later reuses the owner's struct is not the owner. */
struct as_completed {
    /* Owned by the iterating task. */
    weft_task_t *owner;  /* its handle value; NULL once destroyed */
    weft_task_t **tasks; /* the caller's array of handles */
    struct watched *w;   /* one per task, allocated at init */
    size_t n;
    size_t left;         /* not yet yielded */
};

struct scope {
    /* Owned by the task that entered it. */
    weft_task_t *owner;  /* its handle value; NULL once exited */
    int64_t deadline;    /* this scope's own */
    int64_t saved;       /* the task's scope_deadline at entry */
    uint16_t depth;      /* the task's scope_depth while s is innermost */
};

#endif
