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
 */
#include "combine.h"

#include <errno.h>

#include "mem.h"
#include "wait.h"

_Static_assert(sizeof(weft_as_completed_t) >= sizeof(struct as_completed) &&
                   _Alignof(weft_as_completed_t) >=
                       _Alignof(struct as_completed),
               "struct as_completed outgrew weft_as_completed_t");
_Static_assert(sizeof(weft_scope_t) >= sizeof(struct scope) &&
                   _Alignof(weft_scope_t) >= _Alignof(struct scope),
               "struct scope outgrew weft_scope_t");

#define CALLER __builtin_return_address(0)
#define WAIT_LOCAL_NODES 8

static bool has_null(weft_task_t **tasks, size_t n)
{
    if (n && !tasks)
        return true;
    for (size_t i = 0; i < n; i++)
        if (!tasks[i])
            return true;
    return false;
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
        if (!weft__task_is_done(c->tasks[i]))
            continue;
        done++;
        if (c->mode == WEFT_FIRST_COMPLETED ||
            (c->mode == WEFT_FIRST_EXCEPTION && c->tasks[i]->result < 0))
            return true;
    }
    return done == c->n;
}

static size_t report_done(weft_task_t **tasks, size_t n, bool *done)
{
    size_t count = 0;

    for (size_t i = 0; i < n; i++) {
        bool d = weft__task_is_done(tasks[i]);

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
        watch_one(&nodes[i], c->tasks[i], self);
    ret = weft__task_block(self, wait_satisfied, c, deadline, WHY_JOIN,
                           where);
    for (size_t i = 0; i < c->n; i++)
        unwatch_one(&nodes[i], c->tasks[i]);
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
    if (has_null(tasks, n) || mode < WEFT_ALL_COMPLETED ||
        mode > WEFT_FIRST_EXCEPTION)
        return -EINVAL;
    ret = wait_block(self, &c, weft__wait_deadline(self, deadline), CALLER);
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

    while (weft__task_wait_done(self, t, WEFT_NEVER, false, where) < 0)
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
    if (has_null(tasks, n) || (flags & ~(unsigned)WEFT_GATHER_RETURN_ALL))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!interrupted) {
            ret = weft__task_wait_done(self, tasks[i], self->scope_deadline,
                                       false, CALLER);
            if (ret < 0) {
                /* Cancelled, or a scope expired: asyncio cancels what the
                 * gather still waits for. */
                interrupted = ret;
                for (size_t j = i; j < n; j++)
                    weft_cancel(tasks[j]);
            }
        }
        if (interrupted)
            wait_out(self, tasks[i], CALLER);
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

int weft_wait_for(weft_task_t *t, int64_t deadline)
{
    struct weft_task *self = weft__task_current();
    int ret = weft__task_await_check(self, t);

    if (ret)
        return ret;
    ret = weft__task_wait_done(self, t, weft__wait_deadline(self, deadline),
                               false, CALLER);
    if (ret < 0) {
        weft_cancel(t);
        wait_out(self, t, CALLER);
        weft_join(t);
        return ret;
    }
    return weft_join(t);
}

int weft_shield(weft_task_t *t, int *status)
{
    struct weft_task *self = weft__task_current();
    int ret = weft__task_await_check(self, t);

    if (ret)
        return ret;
    if (!status)
        return -EINVAL;
    ret = weft__task_wait_done(self, t, self->scope_deadline, false, CALLER);
    if (ret < 0)
        return ret;
    *status = weft_join(t);
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

    if (!self)
        return -EPERM;
    if (!pit || has_null(tasks, n))
        return -EINVAL;
    it->w = NULL;
    if (n) {
        it->w = weft__alloc(n * sizeof(*it->w));
        if (!it->w)
            return -ENOMEM;
    }
    it->self = self;
    it->tasks = tasks;
    it->n = it->left = n;
    for (size_t i = 0; i < n; i++) {
        it->w[i].yielded = false;
        watch_one(&it->w[i].j, tasks[i], self);
    }
    return 0;
}

/* The first finished task not yet yielded, or n. */
static size_t next_done(const struct as_completed *it)
{
    for (size_t i = 0; i < it->n; i++)
        if (!it->w[i].yielded && weft__task_is_done(it->tasks[i]))
            return i;
    return it->n;
}

static bool any_done(void *arg)
{
    return next_done(arg) < ((struct as_completed *)arg)->n;
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
    if (!pit || !task || it->self != self)
        return -EINVAL;
    if (it->left == 0)
        return -ENOENT;
    ret = weft__task_block(self, any_done, it,
                           weft__wait_deadline(self, deadline), WHY_JOIN,
                           CALLER);
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

    if (!pit)
        return -EINVAL;
    for (size_t i = 0; i < it->n; i++)
        unwatch_one(&it->w[i].j, it->tasks[i]);
    weft__free(it->w, it->n * sizeof(*it->w));
    it->w = NULL;
    it->n = it->left = 0;
    return 0;
}

/* ---- timeout scopes ------------------------------------------------------ */

static struct scope *to_scope(weft_scope_t *ps)
{
    return (struct scope *)(void *)ps;
}

int weft_scope_enter(weft_scope_t *ps, int64_t deadline)
{
    struct weft_task *t = weft__task_current();
    struct scope *s = to_scope(ps);

    if (!t)
        return -EPERM;
    if (!ps)
        return -EINVAL;
    s->task = t;
    s->deadline = deadline;
    s->saved = t->scope_deadline;
    t->scope_deadline = weft__wait_deadline(t, deadline);
    return 0;
}

int weft_scope_exit(weft_scope_t *ps)
{
    struct weft_task *t = weft__task_current();
    struct scope *s = to_scope(ps);

    if (!t)
        return -EPERM;
    if (!ps || s->task != t)
        return -EINVAL;
    t->scope_deadline = s->saved;
    s->task = NULL;
    return weft__now() >= s->deadline;
}

int64_t weft_deadline_in_ms(int64_t ms)
{
    int64_t now = weft__now();

    if (ms <= 0)
        return now;
    if (ms >= (WEFT_NEVER - now) / WEFT_NS_PER_MS)
        return WEFT_NEVER;
    return now + ms * WEFT_NS_PER_MS;
}
