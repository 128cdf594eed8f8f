/*
 * Task groups. The group holds every child's handle in a list, so a child
 * struct stays valid (and cancellable) until the group's wait has joined it.
 *
 * Failure: a child's body runs inside child_main, which on a failure (a
 * negative status other than -ECANCELED, as asyncio does not count a
 * cancelled child as failed) records the first error and cancels every
 * listed child under the group's lock. A child that is cancelled before it
 * starts never runs child_main; nothing depends on it doing so, because
 * the wait finds every child through the list and joins it.
 *
 * Spawning does not hold the lock across weft_spawn: a child that runs and
 * fails before it is listed simply does not cancel itself, and the spawner
 * cancels it on listing if the group was cancelled meanwhile.
 *
 * One task waits: a second waiter would join children the first one joins
 * too (and free their records twice), and a child waiting on its own group
 * would wait for itself. Both are refused before anything is reaped.
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
    g->head = g->tail = NULL;
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

/* Under g->lock. */
static void cancel_children(struct group *g)
{
    struct weft_task *self = weft__task_current();

    g->cancelled = true;
    for (struct group_child *c = g->head; c; c = c->next)
        if (weft__task_of(c->task) != self)
            weft_cancel(c->task);
}

static int child_main(void *arg)
{
    struct group_child *c = arg;
    struct group *g = c->g;
    int ret = c->fn(c->arg);

    if (ret < 0 && ret != -ECANCELED) {
        weft__spin_lock(&g->lock);
        if (!g->error) {
            g->error = ret;
            cancel_children(g);
        }
        weft__spin_unlock(&g->lock);
    }
    return ret;
}

static void list_child(struct group *g, struct group_child *c,
                       weft_task_t *t)
{
    weft__spin_lock(&g->lock);
    c->task = t;
    c->next = NULL;
    c->prev = g->tail;
    if (g->tail)
        g->tail->next = c;
    else
        g->head = c;
    g->tail = c;
    if (g->cancelled)
        weft_cancel(t);
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
    weft_task_t *t;
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
    ret = weft_spawn(&t, child_main, c);
    if (ret < 0) {
        weft__free(c, sizeof(*c));
        return ret;
    }
    list_child(g, c, t);
    return 0;
}

int weft_group_cancel(weft_group_t *pg)
{
    struct group *g = to_group(pg);

    if (!pg)
        return -EINVAL;
    weft__spin_lock(&g->lock);
    cancel_children(g);
    weft__spin_unlock(&g->lock);
    return 0;
}

/* Joins and frees c, which has finished. */
static void reap(struct group *g, struct group_child *c)
{
    int ret;

    weft__spin_lock(&g->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        g->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        g->tail = c->prev;
    weft__spin_unlock(&g->lock);
    ret = weft_join(c->task);
    if (c->status)
        *c->status = ret;
    weft__free(c, sizeof(*c));
}

static struct group_child *first_child(struct group *g)
{
    struct group_child *c;

    weft__spin_lock(&g->lock);
    c = g->head;
    weft__spin_unlock(&g->lock);
    return c;
}

/* Waits for c whatever happens; returns why the wait was interrupted, if
 * it was and nothing interrupted it before. */
static int wait_child(struct group *g, struct weft_task *self,
                      struct group_child *c, int interrupted,
                      const void *where)
{
    int64_t deadline = interrupted ? WEFT_NO_DEADLINE : self->scope_deadline;
    int ret;

    while ((ret = weft__task_wait_done(self, weft__task_of(c->task),
                                       deadline, false, where)) < 0) {
        if (!interrupted) {
            /* The waiter was cancelled or its scope expired: asyncio
             * cancels the whole group and still waits for it. */
            interrupted = ret;
            weft_group_cancel((weft_group_t *)(void *)g);
        } else if (ret == -ECANCELED && interrupted != -ECANCELED) {
            interrupted = -ECANCELED;
        }
        deadline = WEFT_NO_DEADLINE;
    }
    return interrupted;
}

/* Makes self g's one waiter: 0, -EBUSY (another task waits on g) or
 * -EDEADLK (self is a child of g: it would wait for itself). */
static int claim_wait(struct group *g, struct weft_task *self)
{
    weft_task_t *me = weft__task_handle(self);
    int ret = 0;

    weft__spin_lock(&g->lock);
    for (struct group_child *c = g->head; c && !ret; c = c->next)
        if (c->task == me)
            ret = -EDEADLK;
    if (!ret && g->waiter)
        ret = -EBUSY;
    if (!ret)
        g->waiter = me;
    weft__spin_unlock(&g->lock);
    return ret;
}

int weft_group_wait(weft_group_t *pg)
{
    struct weft_task *self = weft__task_current();
    struct group *g = to_group(pg);
    struct group_child *c;
    int interrupted = 0, ret;

    if (!self)
        return -EPERM;
    if (!pg)
        return -EINVAL;
    ret = claim_wait(g, self);
    if (ret)
        return ret;
    /* Children may spawn siblings while we wait: loop until none is left
     * (only a live child can add one, and we join each before rechecking). */
    while ((c = first_child(g))) {
        /* Listed after claim_wait looked: a child waiting on its group. */
        if (weft__task_of(c->task) == self)
            break;
        interrupted = wait_child(g, self, c, interrupted,
                                 WEFT__WHERE);
        reap(g, c);
    }
    weft__spin_lock(&g->lock);
    ret = c ? -EDEADLK : g->error ? g->error : interrupted ? interrupted
                       : g->cancelled ? -ECANCELED : 0;
    g->waiter = NULL;
    weft__spin_unlock(&g->lock);
    return ret;
}
