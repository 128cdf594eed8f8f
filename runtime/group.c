/*
 * Task groups. A group lists its live children only, and nothing of a
 * child outlives it: a child is listed before it can run, and when it ends
 * (run or not) its finish hook, called by the worker, unlists it and frees
 * its record, and the worker frees its task struct right after. So a group
 * costs one record per live child, however many have come and gone: a
 * server may keep one group for its whole life.
 *
 * Children are spawned without a handle, since nobody joins them. What the
 * wait's join of each child gave, the hook gives, under the group's lock:
 * it stores the child's status, applies the error rule, unlists the child
 * and, if that empties the list, wakes the waiter.
 *
 * Failure: the first child to end with a negative status other than
 * -ECANCELED (asyncio does not count a cancelled child as failed) sets the
 * group's error and cancels every listed child. Cancelling a listed child
 * under the lock is safe: its hook unlists it under the same lock before
 * the worker frees its struct, so a listed child's struct is its own.
 *
 * Spawning readies the child (weft__task_prepare), sets its hook and lists
 * it under the lock, and only then makes it runnable: no child ends
 * unlisted. A child listed after the group was cancelled is cancelled
 * there (it ends without running).
 *
 * Waiting: the waiter blocks until the list is empty. The hook that empties
 * it wakes the waiter under the lock, so the waiter is still in
 * weft_group_wait (it leaves only through the lock), and the group's
 * memory is still there; after unlocking, the hook touches only the record
 * it frees. One task waits: a second is refused, and so is a child of the
 * group (it would wait for itself).
 */
#include "group.h"

#include <errno.h>

#include "mem.h"
#include "wait.h"

_Static_assert(sizeof(weft_group_t) >= sizeof(struct group) &&
                   _Alignof(weft_group_t) >= _Alignof(struct group),
               "struct group outgrew weft_group_t");

static struct group *to_group(weft_group_t *pg)
{
    return (struct group *)(void *)pg;
}

int weft_group_init(weft_group_t *pg)
{
    struct group *g = to_group(pg);

    if (!pg)
        return -EINVAL;
    weft__spin_init(&g->lock);
    g->head = NULL;
    g->waiter = NULL;
    g->error = 0;
    g->cancelled = false;
    return 0;
}

int weft_group_destroy(weft_group_t *pg)
{
    struct group *g = to_group(pg);
    bool busy;

    if (!pg)
        return -EINVAL;
    weft__spin_lock(&g->lock);
    busy = g->head || g->waiter;
    weft__spin_unlock(&g->lock);
    return busy ? -EBUSY : 0;
}

size_t weft__group_live(weft_group_t *pg)
{
    struct group *g = to_group(pg);
    size_t n = 0;

    weft__spin_lock(&g->lock);
    for (struct group_child *c = g->head; c; c = c->next)
        n++;
    weft__spin_unlock(&g->lock);
    return n;
}

/* Under g->lock: cancels every listed child but skip (may be NULL). */
static void cancel_children(struct group *g, const struct weft_task *skip)
{
    g->cancelled = true;
    for (struct group_child *c = g->head; c; c = c->next)
        if (c->task != skip)
            weft__task_cancel(c->task);
}

static int child_main(void *arg)
{
    struct group_child *c = arg;

    return c->fn(c->arg);
}

/* The finish hook of a child (see the top of the file). */
static void child_ended(struct weft_task *t)
{
    struct group_child *c = t->arg;
    struct group *g = c->g;
    int ret = t->result;

    weft__spin_lock(&g->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        g->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->status)
        *c->status = ret;
    if (ret < 0 && ret != -ECANCELED && !g->error) {
        g->error = ret;
        cancel_children(g, NULL);
    }
    if (!g->head && g->waiter)
        weft__task_wake(g->waiter);
    weft__spin_unlock(&g->lock);
    weft__free(c, sizeof(*c));
}

static void list_child(struct group *g, struct group_child *c)
{
    weft__spin_lock(&g->lock);
    c->prev = NULL;
    c->next = g->head;
    if (g->head)
        g->head->prev = c;
    g->head = c;
    if (g->cancelled)
        weft__task_cancel(c->task);
    weft__spin_unlock(&g->lock);
}

static bool is_cancelled(struct group *g)
{
    bool cancelled;

    weft__spin_lock(&g->lock);
    cancelled = g->cancelled;
    weft__spin_unlock(&g->lock);
    return cancelled;
}

int weft_group_spawn(weft_group_t *pg, weft_fn_t fn, void *arg, int *status)
{
    struct group *g = to_group(pg);
    struct group_child *c;
    struct weft_task *t;
    int ret;

    if (!weft__task_current())
        return -EPERM;
    if (!pg || !fn)
        return -EINVAL;
    if (is_cancelled(g))
        return -ECANCELED; /* list_child() settles a race with a cancel */
    c = weft__alloc(sizeof(*c));
    if (!c)
        return -ENOMEM;
    *c = (struct group_child){ .g = g, .fn = fn, .arg = arg,
                               .status = status };
    ret = weft__task_prepare(&t, child_main, c, NULL, false);
    if (ret < 0) {
        weft__free(c, sizeof(*c));
        return ret;
    }
    c->task = t;
    t->on_finish = child_ended;
    list_child(g, c);
    weft__task_start(t);
    return 0;
}

int weft_group_cancel(weft_group_t *pg)
{
    struct group *g = to_group(pg);

    if (!pg)
        return -EINVAL;
    weft__spin_lock(&g->lock);
    /* A child cancelling its own group goes on to its end. */
    cancel_children(g, weft__task_current());
    weft__spin_unlock(&g->lock);
    return 0;
}

static bool no_children(void *arg)
{
    struct group *g = arg;
    bool empty;

    weft__spin_lock(&g->lock);
    empty = !g->head;
    weft__spin_unlock(&g->lock);
    return empty;
}

/* Makes self g's one waiter: 0, -EBUSY (another task waits on g) or
 * -EDEADLK (self is a child of g: it would wait for itself). */
static int claim_wait(struct group *g, struct weft_task *self)
{
    int ret = 0;

    weft__spin_lock(&g->lock);
    for (struct group_child *c = g->head; c && !ret; c = c->next)
        if (c->task == self)
            ret = -EDEADLK;
    if (!ret && g->waiter)
        ret = -EBUSY;
    if (!ret)
        g->waiter = self;
    weft__spin_unlock(&g->lock);
    return ret;
}

int weft_group_wait(weft_group_t *pg)
{
    struct weft_task *self = weft__task_current();
    struct group *g = to_group(pg);
    int64_t deadline;
    int interrupted = 0, ret;

    if (!self)
        return -EPERM;
    if (!pg)
        return -EINVAL;
    ret = claim_wait(g, self);
    if (ret)
        return ret;
    /* Children may spawn siblings while we wait: only a live child can,
     * so the list empties once, when the last child ends. */
    deadline = self->scope_deadline;
    while ((ret = weft__task_block(self, no_children, g, deadline, WHY_JOIN,
                                   WEFT__WHERE)) < 0) {
        if (!interrupted) {
            /* The waiter was cancelled or its scope expired: asyncio
             * cancels the whole group and still waits for it. */
            interrupted = ret;
            weft_group_cancel(pg);
        } else if (ret == -ECANCELED && interrupted != -ECANCELED) {
            interrupted = -ECANCELED;
        }
        deadline = WEFT_NO_DEADLINE;
    }
    weft__spin_lock(&g->lock);
    ret = g->error ? g->error : interrupted ? interrupted
                   : g->cancelled ? -ECANCELED : 0;
    g->waiter = NULL;
    weft__spin_unlock(&g->lock);
    return ret;
}
