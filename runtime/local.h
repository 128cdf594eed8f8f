/*
 * Task-local values: the process-wide key table and each task's own values.
 *
 * A task that never set a value has t->locals NULL, and the task paths test
 * only that pointer: a spawn copies the values of inherited keys when the
 * spawning task has a table, and a task's end runs the destructors when it
 * has one. Everything else happens in the public calls.
 */
#ifndef WEFT__LOCAL_H
#define WEFT__LOCAL_H

#include <stdint.h>

struct weft_task;

/* One value of a task: the key it was set under, so that a value set under
 * a key since deleted is not seen under the key that reuses its slot. */
struct weft__local_entry {
    uint32_t key;
    void *value;
};

/* A task's values, indexed by key slot; only the task itself touches it
 * (and its spawner, before the task is runnable). */
struct weft__locals {
    uint32_t cap;
    struct weft__local_entry e[];
};

/*
 * Gives child, readied for its first run but not yet runnable, the values
 * of parent's inherited keys: each key's copy function, called here in
 * parent, makes the child's own value. 0, or -ENOMEM (the child then holds
 * none, and no copy was made).
 */
int weft__local_inherit(struct weft_task *child, struct weft_task *parent);

/*
 * Runs the destructors of t's values and frees its table (t->locals NULL
 * after). Called in t at its end, after its function returned; or, for a
 * task that ended without running, on its worker outside any task.
 */
void weft__local_end(struct weft_task *t);

#endif
