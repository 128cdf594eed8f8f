/*
 * Tasks: spawning, the state machine of task.h, joining, detaching and
 * cancelling.
 *
 * Lifetime: a task struct is released when both its run has finished and its
 * handle (if one was given out) has been joined or detached. HANDLE_HELD and
 * HANDLE_DONE in t->handle record the two; whoever sets the second bit frees
 * the struct. A task spawned without a handle skips that RMW entirely.
 * Handles carry the struct's generation (task.h): a handle that was
 * released, or whose struct now holds another task, is refused with
 * -EINVAL by every call that takes one.
 *
 * Cancellation is edge-triggered, as in asyncio: weft_cancel() sets
 * t->cancel and wakes t; the first suspension point that takes the request
 * returns -ECANCELED. A task that never started finishes with -ECANCELED
 * without running.
 */
#include "task.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "mem.h"
#include "runtime.h"
#include "stack.h"
#include "worker.h"

void weft__task_park(struct weft_task *t, enum weft__why why,
                     const void *where)
{
    uint32_t s = TASK_RUNNING | TASK_NOTIFIED;

    WEFT__CHECK(t == weft__task_current() && why != WHY_NONE);
    WEFT__CHECK((atomic_load_explicit(&t->state, memory_order_relaxed) &
                 ~TASK_NOTIFIED) == TASK_RUNNING);
    weft__task_note_wait(t, why, where);
    /* Already woken since it last ran: consume the wake without a switch.
     * acquire: pairs with the release in weft__task_wake(). The plain load
     * first keeps the usual case free of a locked RMW: a wake that lands
     * after it fails the worker's CAS to IDLE, which requeues the task. */
    if (atomic_load_explicit(&t->state, memory_order_relaxed) != s ||
        !atomic_compare_exchange_strong_explicit(&t->state, &s, TASK_RUNNING,
                                                 memory_order_acquire,
                                                 memory_order_relaxed))
        weft__worker_switch_out(weft__worker_current(), SWITCH_PARK);
    weft__task_note_wait(t, WHY_NONE, NULL);
}

void weft__task_wake(struct weft_task *t)
{
    uint32_t s = atomic_load_explicit(&t->state, memory_order_relaxed);

    for (;;) {
        if (s == TASK_DONE || s == TASK_FREE)
            return;
        if (s == TASK_IDLE) {
            /* acq_rel: acquire pairs with the release CAS to IDLE in the
             * worker (the fiber is fully switched out); release publishes
             * our writes to whoever runs the task. */
            if (atomic_compare_exchange_weak_explicit(
                    &t->state, &s, TASK_SCHED, memory_order_acq_rel,
                    memory_order_relaxed)) {
                weft__worker_enqueue(weft__worker_current(), t, true);
                return;
            }
            continue;
        }
        /* Queued or running: mark it notified with an RMW even if the bit
         * is already set. A plain load would let our condition store sit in
         * the store buffer while the task's worker moves it to RUNNING,
         * checks the condition, sees it false and parks: the RMW orders our
         * store before the worker's exchange to RUNNING (or we see RUNNING
         * and its CAS to IDLE fails on the bit). release: pairs with the
         * acquire RMWs on state in the worker and in weft__task_park(). */
        if (atomic_compare_exchange_weak_explicit(
                &t->state, &s, s | TASK_NOTIFIED, memory_order_release,
                memory_order_relaxed))
            return;
    }
}

bool weft__task_take_cancel(struct weft_task *t)
{
    if (likely(!atomic_load_explicit(&t->cancel, memory_order_relaxed)))
        return false;
    /* acquire: pairs with the release in weft_cancel(). */
    return atomic_exchange_explicit(&t->cancel, false, memory_order_acquire);
}

void weft__task_restore_cancel(struct weft_task *t)
{
    atomic_store_explicit(&t->cancel, true, memory_order_relaxed);
}

int weft__task_block(struct weft_task *t, bool (*done)(void *), void *arg,
                     int64_t deadline, enum weft__why why, const void *where)
{
    bool armed = false;
    int ret = 0;

    for (;;) {
        if (done(arg))
            break;
        if (weft__task_take_cancel(t)) {
            ret = -ECANCELED;
            break;
        }
        if (deadline != WEFT_NEVER && !armed) {
            if (weft__now() >= deadline) {
                ret = -ETIMEDOUT;
                break;
            }
            ret = weft__timer_arm(&weft__worker_current()->timers, t,
                                  deadline);
            if (ret < 0)
                break;
            armed = true;
        } else if (armed && atomic_load_explicit(&t->timer.fired,
                                                 memory_order_acquire)) {
            ret = -ETIMEDOUT;
            break;
        }
        weft__task_park(t, why, where);
    }
    if (armed)
        weft__timer_disarm(t);
    return ret;
}

/* ---- allocation ---------------------------------------------------------- */

#define TASK_ALLOC_BATCH 32

/*
 * n zeroed task structs in one allocation, chained through next and
 * all_next in address order (so the registry holds each block contiguously,
 * first struct first); NULL on ENOMEM. The first records n: the runtime
 * frees whole blocks when it ends.
 */
static struct weft_task *alloc_block(unsigned n)
{
    struct weft_task *b = weft__zalloc(n * sizeof(*b));

    if (!b)
        return NULL;
    for (unsigned i = 0; i < n; i++) {
        weft__spin_init(&b[i].join_lock);
        b[i].timer.index = TIMER_UNQUEUED;
        b[i].next = b[i].all_next = i + 1 < n ? &b[i + 1] : NULL;
    }
    b->block_len = n;
    return b;
}

struct weft_task *weft__task_struct_new(struct runtime *rt)
{
    struct weft_task *t = alloc_block(1);

    if (t)
        weft__runtime_register(rt, t, t);
    return t;
}

/* Refills w's cache with a block of fresh structs (one if memory is short),
 * registered under one lock. Returns false if not even one could be had. */
static bool refill(struct worker *w)
{
    unsigned n = TASK_ALLOC_BATCH;
    struct weft_task *b = alloc_block(n);

    if (!b)
        b = alloc_block(n = 1);
    if (!b)
        return false;
    weft__runtime_register(w->rt, b, &b[n - 1]);
    w->free_tasks = b;
    return true;
}

static struct weft_task *task_alloc(struct worker *w)
{
    struct weft_task *t;

    if (unlikely(!w->free_tasks) && !refill(w))
        return NULL;
    t = w->free_tasks;
    w->free_tasks = t->next;
    return t;
}

/* A heap copy of name, cut to TASK_NAME_MAX - 1 bytes; NULL if memory is
 * short. Kept out of the struct: most tasks have no name, and every byte of
 * a task struct is new memory in a burst of spawns. */
static char *copy_name(const char *name)
{
    size_t n = strnlen(name, TASK_NAME_MAX - 1);
    char *c = weft__alloc(n + 1);

    if (c) {
        memcpy(c, name, n);
        c[n] = '\0';
    }
    return c;
}

void weft__task_drop_name(struct weft_task *t)
{
    if (t->name)
        weft__free(t->name, strlen(t->name) + 1);
    t->name = NULL;
}

void weft__task_free(struct weft_task *t)
{
    struct worker *w = weft__worker_current();

    weft__task_drop_name(t);
    atomic_store_explicit(&t->state, TASK_FREE, memory_order_relaxed);
    if (w && w->rt == t->rt) {
        t->next = w->free_tasks;
        w->free_tasks = t;
        return;
    }
    pthread_mutex_lock(&t->rt->reg_lock);
    t->next = t->rt->orphans;
    t->rt->orphans = t;
    pthread_mutex_unlock(&t->rt->reg_lock);
}

int weft__task_init(struct weft_task *t, struct runtime *rt, weft_fn_t fn,
                    void *arg, const weft_spawn_opts_t *opts, bool held)
{
    const char *name = opts ? opts->name : NULL;
    uint32_t gen = weft__task_gen(t) + 1;

    /* The tag of a handle takes the address's top bits (task.h). */
    WEFT_ASSERT(((uintptr_t)t & ~HANDLE_ADDR_MASK) == 0);
    t->fn = fn;
    t->arg = arg;
    t->rt = rt;
    t->stack = NULL;
    t->result = 0;
    t->started = false;
    weft__task_note_wait(t, WHY_NONE, NULL);
    t->scope_deadline = WEFT_NEVER;
    t->scope_depth = 0;
    /* 0 for the default size, however asked for: such a task may start
     * on a cached or adopted stack. */
    t->stack_size = opts && opts->stack_size != rt->stacks.size ?
                    opts->stack_size : 0;
    t->name = name ? copy_name(name) : NULL;
    t->joiners = NULL;
    t->on_finish = NULL;
    atomic_store_explicit(&t->cancel, false, memory_order_relaxed);
    atomic_store_explicit(&t->shutdown_seen, false, memory_order_relaxed);
    atomic_store_explicit(&t->state, TASK_SCHED, memory_order_relaxed);
    /* A plain store, no RMW: the struct is free, and a stale handle only
     * reads the word or CASes on it expecting its own (older) generation. */
    t->detached_at_spawn = !held;
    atomic_store_explicit(&t->handle,
                          gen << HANDLE_GEN_SHIFT | (held ? HANDLE_HELD : 0),
                          memory_order_relaxed);
    return name && !t->name ? -ENOMEM : 0;
}

/* ---- the task body and its end ------------------------------------------- */

void weft__task_entry(void *arg)
{
    struct weft_task *t = arg;

    weft__fiber_entered(&t->fiber);
    weft__worker_settle(weft__worker_current());
    do
        t->result = t->fn(t->arg);
    while ((t = weft__worker_task_done(weft__worker_current())));
    weft__panic("task_entry: a finished task was resumed");
}

void weft__task_report_failure(const struct weft_task *t, const char *how)
{
    if (!t->rt->cfg.debug || t->result >= 0 || t->result == -ECANCELED)
        return;
    fprintf(stderr,
            "weft: task '%s' (%p) failed with %d (%s) and %s\n",
            weft__task_name_or(t, ""), (const void *)t, t->result,
            strerror(-t->result), how);
}

static void wake_joiners(struct weft_task *t)
{
    struct weft__join_waiter *j;

    weft__spin_lock(&t->join_lock);
    /* release: pairs with the acquire load of state in join. */
    atomic_store_explicit(&t->state, TASK_DONE, memory_order_release);
    j = t->joiners;
    t->joiners = NULL;
    weft__spin_unlock(&t->join_lock);
    while (j) {
        struct weft__join_waiter *next = j->next;
        struct weft_task *jt = j->task;

        /* After this store the waiter's stack frame may be gone. */
        atomic_store_explicit(&j->done, true, memory_order_release);
        weft__task_wake(jt);
        j = next;
    }
}

void weft__task_finish(struct worker *w, struct weft_task *t)
{
    uint32_t prev;

    if (t->stack) {
        weft__fiber_destroy(&t->fiber);
        weft__stack_put(&w->rt->stacks, &w->stacks, t->stack);
        t->stack = NULL;
    }
    if (t->on_finish)
        t->on_finish(t);
    if (t->detached_at_spawn) {
        weft__task_report_failure(t, "was detached");
        weft__task_free(t);
        return;
    }
    wake_joiners(t);
    /* acq_rel: pairs with the RMW in release_handle(). */
    prev = atomic_fetch_or_explicit(&t->handle, HANDLE_DONE,
                                    memory_order_acq_rel);
    if (!(prev & HANDLE_HELD)) {
        /* A joiner may release the handle before we get here. */
        if (!(prev & HANDLE_JOINED))
            weft__task_report_failure(t, "was detached");
        weft__task_free(t);
    }
}

/*
 * Drops the handle of generation gen if it is still held (HELD set, JOINED
 * clear: flipping both is one CAS) and frees t if its run has also ended.
 * Returns false, touching nothing, if that handle was already released:
 * the CAS compares generation and HELD together, so a stale handle cannot
 * release the handle of the task now in the struct, and of two racing
 * releases of one handle exactly one succeeds. acq_rel: pairs with the RMW
 * in weft__task_finish(), so whichever side comes second sees the other's
 * writes and frees.
 */
static bool release_handle(struct weft_task *t, uint32_t gen, bool joined)
{
    uint32_t flip = HANDLE_HELD | (joined ? HANDLE_JOINED : 0);
    uint32_t prev = atomic_load_explicit(&t->handle, memory_order_relaxed);

    do {
        if (prev >> HANDLE_GEN_SHIFT != gen || !(prev & HANDLE_HELD))
            return false;
    } while (!atomic_compare_exchange_weak_explicit(
        &t->handle, &prev, prev ^ flip, memory_order_acq_rel,
        memory_order_relaxed));
    if (prev & HANDLE_DONE) {
        if (!joined)
            weft__task_report_failure(t, "was detached");
        weft__task_free(t);
    }
    return true;
}

/* The generation a handle value carries. */
static uint32_t tag_of(const weft_task_t *h)
{
    return (uint32_t)((uintptr_t)h >> HANDLE_TAG_SHIFT);
}

int weft__task_check(const weft_task_t *h, const struct weft_task *self,
                     struct weft_task **t)
{
    struct weft_task *u = weft__task_of(h);
    uint32_t word;

    if (!u)
        return -EINVAL;
    word = atomic_load_explicit(&u->handle, memory_order_relaxed);
    if (word >> HANDLE_GEN_SHIFT != tag_of(h) ||
        (!(word & HANDLE_HELD) && u != self))
        return -EINVAL;
    *t = u;
    return 0;
}

/* ---- public API ---------------------------------------------------------- */

int weft_spawn_ex(weft_task_t **out, weft_fn_t fn, void *arg,
                  const weft_spawn_opts_t *opts)
{
    struct worker *w = weft__worker_current();
    struct weft_task *t;

    if (!w || !w->current)
        return -EPERM;
    /* Bounded before anything rounds it to pages: a size near SIZE_MAX
     * would wrap there. */
    if (!fn || (opts && opts->stack_size &&
                (opts->stack_size < WEFT_MIN_STACK ||
                 opts->stack_size > WEFT_MAX_STACK)))
        return -EINVAL;
    t = task_alloc(w);
    if (!t)
        return -ENOMEM;
    if (weft__task_init(t, w->rt, fn, arg, opts, out) < 0) {
        weft__task_free(t);
        return -ENOMEM;
    }
    if (out)
        *out = weft__task_handle(t);
    weft__worker_enqueue(w, t, true);
    return 0;
}

int weft_spawn(weft_task_t **out, weft_fn_t fn, void *arg)
{
    return weft_spawn_ex(out, fn, arg, NULL);
}

bool weft__task_add_joiner(struct weft_task *t, struct weft__join_waiter *j)
{
    bool added = false;
    uint32_t s;

    weft__spin_lock(&t->join_lock);
    /* FREE counts as finished: a task that joins a handle another task is
     * releasing must not wait on a struct that nobody will wake (its join
     * then fails, see weft_join). */
    s = atomic_load_explicit(&t->state, memory_order_relaxed);
    if (s != TASK_DONE && s != TASK_FREE) {
        j->next = t->joiners;
        t->joiners = j;
        added = true;
    }
    weft__spin_unlock(&t->join_lock);
    return added;
}

bool weft__task_remove_joiner(struct weft_task *t, struct weft__join_waiter *j)
{
    struct weft__join_waiter **p;
    bool removed = false;

    weft__spin_lock(&t->join_lock);
    for (p = &t->joiners; *p; p = &(*p)->next) {
        if (*p == j) {
            *p = j->next;
            removed = true;
            break;
        }
    }
    weft__spin_unlock(&t->join_lock);
    return removed;
}

static bool joiner_done(void *arg)
{
    struct weft__join_waiter *j = arg;

    /* acquire: pairs with the release in wake_joiners(). */
    return atomic_load_explicit(&j->done, memory_order_acquire);
}

bool weft__task_is_done(const struct weft_task *t)
{
    return atomic_load_explicit(&((struct weft_task *)t)->state,
                                memory_order_acquire) == TASK_DONE;
}

int weft__task_wait_done(struct weft_task *self, struct weft_task *t,
                         int64_t deadline, bool pass_cancel,
                         const void *where)
{
    struct weft__join_waiter j = { .task = self };
    int ret;

    atomic_init(&j.done, false);
    if (weft__task_is_done(t) || !weft__task_add_joiner(t, &j))
        return 0;
    for (;;) {
        ret = weft__task_block(self, joiner_done, &j, deadline, WHY_JOIN,
                               where);
        if (ret == 0 || !pass_cancel)
            break;
        /* Awaiting a task passes our cancellation (or an expired scope)
         * on to it, and still waits for it to end. */
        weft__task_cancel(t);
        deadline = WEFT_NEVER;
    }
    if (ret < 0 && !weft__task_remove_joiner(t, &j)) {
        /* t finished while we gave up: the wait succeeded after all. */
        weft__spin_until(&j.done);
        if (ret == -ECANCELED)
            weft__task_restore_cancel(self);
        ret = 0;
    }
    return ret;
}

int weft__task_await_check(const struct weft_task *self, const weft_task_t *h,
                           struct weft_task **t)
{
    if (!self)
        return -EPERM;
    /* self is checked before HELD: weft_self() of a task spawned without
     * a handle is its own, not a stale one. */
    if (weft__task_check(h, self, t) < 0)
        return -EINVAL;
    if (*t == self)
        return -EDEADLK;
    return atomic_load_explicit(&(*t)->handle, memory_order_relaxed) &
                   HANDLE_HELD ? 0 : -EINVAL;
}

int weft_join(weft_task_t *h)
{
    struct weft_task *self = weft__task_current(), *t;
    int result = weft__task_await_check(self, h, &t);

    if (result)
        return result;
    /* An enclosing timeout scope expiring is passed on like a cancel. */
    weft__task_wait_done(self, t, self->scope_deadline, true,
                         __builtin_return_address(0));
    result = t->result;
    /* Fails only if another task joined or detached h meanwhile. */
    return release_handle(t, tag_of(h), true) ? result : -EINVAL;
}

int weft_detach(weft_task_t *h)
{
    struct weft_task *t = weft__task_of(h);

    if (!t || !release_handle(t, tag_of(h), false))
        return -EINVAL;
    return 0;
}

void weft__task_cancel(struct weft_task *t)
{
    /* release: pairs with the acquire in weft__task_take_cancel(). */
    atomic_store_explicit(&t->cancel, true, memory_order_release);
    weft__task_wake(t);
}

int weft_cancel(weft_task_t *h)
{
    struct weft_task *t;

    if (weft__task_check(h, weft__task_current(), &t) < 0)
        return -EINVAL;
    weft__task_cancel(t);
    return 0;
}

int weft_yield(void)
{
    struct worker *w = weft__worker_current();
    struct weft_task *t = w ? w->current : NULL;

    if (!t)
        return -EPERM;
    weft__task_note_wait(t, WHY_YIELD, __builtin_return_address(0));
    weft__worker_switch_out(w, SWITCH_YIELD);
    weft__task_note_wait(t, WHY_NONE, NULL);
    return weft__task_take_cancel(t) ? -ECANCELED : 0;
}

weft_task_t *weft_self(void)
{
    struct weft_task *t = weft__task_current();

    return t ? weft__task_handle(t) : NULL;
}

const char *weft_task_name(const weft_task_t *h)
{
    struct weft_task *self = weft__task_current(), *t = self;

    if (h && weft__task_check(h, self, &t) < 0)
        return "";
    return t ? weft__task_name_or(t, "") : "";
}
