/*
 * gather, wait, wait_for, shield, as_completed and timeout scopes.
 *
 * A timeout scope is nothing but t->scope_deadline: every wait in the
 * runtime blocks until min(its own deadline, scope_deadline) and reports
 * -ETIMEDOUT when that passes, so a scope reaches every suspension point
 * under it without knowing about them. Entering saves the old value and
 * lowers it; exiting restores it; so nested scopes form a stack and the
 * innermost (earliest) deadline wins.
 *
 * Calls that consume handles (gather, wait_for) always wait for the tasks
 * to finish, even when interrupted: they cancel what is left and then wait
 * without a deadline, because a released handle must belong to a finished
 * or detached task.
 *
 * Calls on several tasks check every handle (not NULL, not stale, not the
 * caller's, not twice in the list) before they touch any: a duplicate
 * would be joined twice, and its second join would wait on whatever task
 * reused the struct.
 */
#include "combine.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "mem.h"
#include "wait.h"

_Static_assert(sizeof(weft_as_completed_t) >= sizeof(struct as_completed) &&
                   _Alignof(weft_as_completed_t) >=
                       _Alignof(struct as_completed),
               "struct as_completed outgrew weft_as_completed_t");
_Static_assert(sizeof(weft_scope_t) >= sizeof(struct scope) &&
                   _Alignof(weft_scope_t) >= _Alignof(struct scope),
               "struct scope outgrew weft_scope_t");

#define WAIT_LOCAL_NODES 8
#define PAIRWISE_MAX 32 /* handles compared pairwise; more are sorted */

static int cmp_addr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

    return (x > y) - (x < y);
}

/* -EINVAL if a task appears twice in tasks (all checked: one struct, one
 * handle value), -ENOMEM if a long list could not be copied to be sorted,
 * else 0. Short lists need no memory. */
static int find_duplicate(weft_task_t **tasks, size_t n)
{
    uintptr_t *sorted;
    int ret = 0;

    if (n <= PAIRWISE_MAX) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (tasks[i] == tasks[j])
                    return -EINVAL;
        return 0;
    }
    sorted = weft__alloc(n * sizeof(*sorted));
    if (!sorted)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        sorted[i] = (uintptr_t)tasks[i];
    qsort(sorted, n, sizeof(*sorted), cmp_addr);
    for (size_t i = 1; i < n && !ret; i++)
        if (sorted[i] == sorted[i - 1])
            ret = -EINVAL;
    weft__free(sorted, n * sizeof(*sorted));
    return ret;
}

/* The checks of a call on n tasks from self, before it does anything:
 * -EINVAL (tasks NULL, n larger than any array, a handle NULL, stale or
 * repeated), -EDEADLK (the caller's own), -ENOMEM (see find_duplicate). */
static int check_handles(struct weft_task *self, weft_task_t **tasks,
                         size_t n)
{
    struct weft_task *t;
    int ret;

    if ((n && !tasks) || n > SIZE_MAX / sizeof(*tasks))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        ret = weft__task_await_check(self, tasks[i], &t);
        if (ret)
            return ret;
    }
    return find_duplicate(tasks, n);
}

/* ---- joiner nodes on several tasks -------------------------------------- */

static bool node_fired(struct weft__join_waiter *j)
{
    /* acquire: pairs with the release in task.c's wake_joiners(). */
    return atomic_load_explicit(&j->done, memory_order_acquire);
}

static void watch_one(struct weft__join_waiter *j, struct weft_task *t,
                      struct weft_task *self)
{
    j->next = NULL;
    j->task = self;
    atomic_init(&j->done, false);
    if (weft__task_is_done(t) || !weft__task_add_joiner(t, j))
        atomic_store_explicit(&j->done, true, memory_order_relaxed);
}

/* Deregisters j; if t is finishing, waits for its last touch of j. */
static void unwatch_one(struct weft__join_waiter *j, struct weft_task *t)
{
    if (node_fired(j) || weft__task_remove_joiner(t, j))
        return;
    weft__spin_until(&j->done);
}

/* ---- wait ---------------------------------------------------------------- */

struct wait_ctx {
    weft_task_t **tasks;
    size_t n;
    int mode;
};

static bool wait_satisfied(void *arg)
{
    struct wait_ctx *c = arg;
    size_t done = 0;

    for (size_t i = 0; i < c->n; i++) {
        struct weft_task *t = weft__task_of(c->tasks[i]);

        if (!weft__task_is_done(t))
            continue;
        done++;
        if (c->mode == WEFT_FIRST_COMPLETED ||
            (c->mode == WEFT_FIRST_EXCEPTION && t->result < 0))
            return true;
    }
    return done == c->n;
}

static size_t report_done(weft_task_t **tasks, size_t n, bool *done)
{
    size_t count = 0;

    for (size_t i = 0; i < n; i++) {
        bool d = weft__task_is_done(weft__task_of(tasks[i]));

        count += d;
        if (done)
            done[i] = d;
    }
    return count;
}

static int wait_block(struct weft_task *self, struct wait_ctx *c,
                      int64_t deadline, const void *where)
{
    struct weft__join_waiter local[WAIT_LOCAL_NODES], *nodes = local;
    int ret;

    if (c->n > WAIT_LOCAL_NODES) {
        nodes = weft__alloc(c->n * sizeof(*nodes));
        if (!nodes)
            return -ENOMEM;
    }
    for (size_t i = 0; i < c->n; i++)
        watch_one(&nodes[i], weft__task_of(c->tasks[i]), self);
    ret = weft__task_block(self, wait_satisfied, c, deadline, WHY_JOIN,
                           where);
    for (size_t i = 0; i < c->n; i++)
        unwatch_one(&nodes[i], weft__task_of(c->tasks[i]));
    if (nodes != local)
        weft__free(nodes, c->n * sizeof(*nodes));
    return ret;
}

int weft_wait(weft_task_t **tasks, size_t n, int mode, int64_t deadline,
              bool *done)
{
    struct weft_task *self = weft__task_current();
    struct wait_ctx c = { tasks, n, mode };
    int ret;

    if (!self)
        return -EPERM;
    /* At most INT_MAX tasks: the count returned must fit. */
    if (n > INT_MAX || mode < WEFT_ALL_COMPLETED ||
        mode > WEFT_FIRST_EXCEPTION)
        return -EINVAL;
    ret = check_handles(self, tasks, n);
    if (ret)
        return ret;
    ret = wait_block(self, &c, weft__wait_deadline(self, deadline), WEFT__WHERE);
    /* Our own deadline passing is not an error (asyncio.wait returns the
     * done and pending sets); an enclosing scope's is. */
    if (ret == -ETIMEDOUT && deadline <= self->scope_deadline)
        ret = 0;
    if (ret < 0)
        return ret;
    return (int)report_done(tasks, n, done);
}

/* ---- gather and wait_for ------------------------------------------------- */

/* Waits for t to end whatever happens; keeps a cancellation taken meanwhile
 * for the caller's next suspension point. */
static void wait_out(struct weft_task *self, struct weft_task *t,
                     const void *where)
{
    bool cancelled = false;

    while (weft__task_wait_done(self, t, WEFT_NO_DEADLINE, false, where) < 0)
        cancelled = true;
    if (cancelled)
        weft__task_restore_cancel(self);
}

int weft_gather(weft_task_t **tasks, size_t n, int *results, unsigned flags)
{
    struct weft_task *self = weft__task_current();
    int ret, first_err = 0, interrupted = 0;

    if (!self)
        return -EPERM;
    if (flags & ~(unsigned)WEFT_GATHER_RETURN_ALL)
        return -EINVAL;
    ret = check_handles(self, tasks, n);
    if (ret)
        return ret;
    for (size_t i = 0; i < n; i++) {
        struct weft_task *t = weft__task_of(tasks[i]);

        if (!interrupted) {
            ret = weft__task_wait_done(self, t, self->scope_deadline, false,
                                       WEFT__WHERE);
            if (ret < 0) {
                /* Cancelled, or a scope expired: asyncio cancels what the
                 * gather still waits for. */
                interrupted = ret;
                for (size_t j = i; j < n; j++)
                    weft__task_cancel(weft__task_of(tasks[j]));
            }
        }
        if (interrupted)
            wait_out(self, t, WEFT__WHERE);
        ret = weft_join(tasks[i]);
        if (results)
            results[i] = ret;
        if (ret < 0 && !first_err)
            first_err = ret;
    }
    if (interrupted)
        return interrupted;
    return flags & WEFT_GATHER_RETURN_ALL ? 0 : first_err;
}

int weft_wait_for(weft_task_t *h, int64_t deadline)
{
    struct weft_task *self = weft__task_current(), *t;
    int ret = weft__task_await_check(self, h, &t);

    if (ret)
        return ret;
    ret = weft__task_wait_done(self, t, weft__wait_deadline(self, deadline),
                               false, WEFT__WHERE);
    if (ret < 0) {
        weft__task_cancel(t);
        wait_out(self, t, WEFT__WHERE);
        weft_join(h);
        return ret;
    }
    return weft_join(h);
}

int weft_shield(weft_task_t *h, int *status)
{
    struct weft_task *self = weft__task_current(), *t;
    int ret = weft__task_await_check(self, h, &t);

    if (ret)
        return ret;
    if (!status)
        return -EINVAL;
    ret = weft__task_wait_done(self, t, self->scope_deadline, false, WEFT__WHERE);
    if (ret < 0)
        return ret;
    *status = weft_join(h);
    return 0;
}

/* ---- as_completed -------------------------------------------------------- */

static struct as_completed *to_iter(weft_as_completed_t *it)
{
    return (struct as_completed *)(void *)it;
}

int weft_as_completed_init(weft_as_completed_t *pit, weft_task_t **tasks,
                           size_t n)
{
    struct weft_task *self = weft__task_current();
    struct as_completed *it = to_iter(pit);
    int ret;

    if (!self)
        return -EPERM;
    if (!pit)
        return -EINVAL;
    if (n > SIZE_MAX / sizeof(*it->w))
        return -ENOMEM;
    ret = check_handles(self, tasks, n);
    if (ret)
        return ret;
    it->w = NULL;
    if (n) {
        it->w = weft__alloc(n * sizeof(*it->w));
        if (!it->w)
            return -ENOMEM;
    }
    it->owner = weft__task_handle(self);
    it->tasks = tasks;
    it->n = it->left = n;
    for (size_t i = 0; i < n; i++) {
        it->w[i].yielded = false;
        watch_one(&it->w[i].j, weft__task_of(tasks[i]), self);
    }
    return 0;
}

/* The first finished task not yet yielded, or n. A task has finished once
 * its node fired; unlike its state, that stays true if the caller joins the
 * task behind the iterator's back and its struct goes to another task. */
static size_t next_done(const struct as_completed *it)
{
    for (size_t i = 0; i < it->n; i++)
        if (!it->w[i].yielded && node_fired(&it->w[i].j))
            return i;
    return it->n;
}

static bool any_done(void *arg)
{
    return next_done(arg) < ((struct as_completed *)arg)->n;
}

/* Whether self may use it: it is live and self initialised it. */
static bool is_owner(const struct as_completed *it,
                     const struct weft_task *self)
{
    return self && it->owner && it->owner == weft__task_handle(self);
}

int weft_as_completed_next(weft_as_completed_t *pit, int64_t deadline,
                           weft_task_t **task)
{
    struct as_completed *it = to_iter(pit);
    struct weft_task *self = weft__task_current();
    size_t i;
    int ret;

    if (!self)
        return -EPERM;
    if (!pit || !task || !is_owner(it, self))
        return -EINVAL;
    if (it->left == 0)
        return -ENOENT;
    ret = weft__task_block(self, any_done, it,
                           weft__wait_deadline(self, deadline), WHY_JOIN,
                           WEFT__WHERE);
    if (ret < 0)
        return ret;
    i = next_done(it);
    it->w[i].yielded = true;
    it->left--;
    *task = it->tasks[i];
    return 0;
}

int weft_as_completed_destroy(weft_as_completed_t *pit)
{
    struct as_completed *it = to_iter(pit);

    if (!pit || !is_owner(it, weft__task_current()))
        return -EINVAL;
    for (size_t i = 0; i < it->n; i++)
        unwatch_one(&it->w[i].j, weft__task_of(it->tasks[i]));
    weft__free(it->w, it->n * sizeof(*it->w));
    it->w = NULL;
    it->n = it->left = 0;
    it->owner = NULL;
    return 0;
}

/* ---- timeout scopes ------------------------------------------------------ */

static struct scope *to_scope(weft_scope_t *ps)
{
    return (struct scope *)(void *)ps;
}

/*
 * A task's scopes form a stack: t->scope_depth counts its levels and each
 * scope records its own, so that exit tells the innermost scope from an
 * outer one (restoring an outer scope's saved deadline would drop the
 * inner one's, and the inner exit would then restore the outer deadline
 * for good) and from one already exited. Either is refused, untouched.
 */
int weft_scope_enter(weft_scope_t *ps, int64_t deadline)
{
    struct weft_task *t = weft__task_current();
    struct scope *s = to_scope(ps);
    weft_task_t *me;

    if (!t)
        return -EPERM;
    if (!ps)
        return -EINVAL;
    me = weft__task_handle(t);
    /* Still entered: entering again would lose its saved deadline. */
    if (s->owner == me && s->depth && s->depth <= t->scope_depth)
        return -EINVAL;
    if (t->scope_depth == UINT16_MAX)
        return -EOVERFLOW;
    s->owner = me;
    s->deadline = deadline;
    s->saved = t->scope_deadline;
    s->depth = ++t->scope_depth;
    t->scope_deadline = weft__wait_deadline(t, deadline);
    return 0;
}

int weft_scope_exit(weft_scope_t *ps)
{
    struct weft_task *t = weft__task_current();
    struct scope *s = to_scope(ps);

    if (!t)
        return -EPERM;
    if (!ps || s->owner != weft__task_handle(t) ||
        s->depth != t->scope_depth)
        return -EINVAL;
    t->scope_deadline = s->saved;
    t->scope_depth--;
    s->owner = NULL;
    return weft__now() >= s->deadline;
}

int64_t weft_deadline_in_ms(int64_t ms)
{
    int64_t now = weft__now();

    if (ms <= 0)
        return now;
    if (ms >= (WEFT_NO_DEADLINE - now) / WEFT__NS_PER_MS)
        return WEFT_NO_DEADLINE;
    return now + ms * WEFT__NS_PER_MS;
}
