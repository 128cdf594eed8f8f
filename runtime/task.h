/*
 * Tasks: a fiber plus the state machine that decides who may run it.
 *
 * This header is also the whole interface io/ and the sync primitives use to
 * suspend and resume tasks: weft__task_park(), weft__task_wake() and the
 * weft__task_block() loop built on them.
 *
 * The suspend/wake protocol (the race it prevents: a waker pushing a task
 * into a run queue while its fiber is still executing on the old worker's
 * stack, so that two threads run on one stack):
 *
 *   state   meaning                                  who moves it on
 *   NEW     spawned, not started: held by its        the worker that starts
 *           spawner's worker, or in a run queue      it, or its joiner
 *   SCHED   in a run queue (or being handed to one)  the task, its worker
 *           after a wake, and running since (below)
 *   RUNNING on a worker's CPU, its stack in use, or  the task, its worker
 *           yielded and back in a run queue
 *   IDLE    parked, switched off its stack           weft__task_wake()
 *   DONE    finished                                 nobody
 *   INLINE  run by the task that joins it, on that   its joiner
 *           task's stack (see "Inline joins" below)
 *   NOTIFIED (or'ed onto NEW, SCHED or RUNNING): woken meanwhile; the
 *           worker that runs it clears it, or its worker's CAS to IDLE
 *           fails on it
 *
 * A yielded task keeps RUNNING: it is runnable, not parked, so a waker only
 * marks it NOTIFIED, exactly as for a queued one, and its yield needs no RMW.
 * Likewise a resumed task (one that ran before) is run without a write to
 * its state: SCHED and RUNNING both mean "runnable, not parked", and what
 * a worker's exchange to RUNNING would do there is left to the task's next
 * park, which consumes a NOTIFIED set meanwhile with an acquire RMW (one
 * spurious return of a wait loop) or, failing to park on it, is requeued.
 * Only a new task's start is an RMW, a CAS from NEW to RUNNING (acquire),
 * so that a cancellation that marked it queued is seen before its function
 * runs, and so that of a worker and a joiner (below) exactly one starts it.
 * So yielding, waking and resuming take no locked instruction of the
 * worker's beyond the waker's CAS and the park's CAS to IDLE.
 *
 * A task parks by switching away from its stack; only then, on the next
 * fiber of its worker, does the worker CAS RUNNING -> IDLE (release). A waker
 * that sees IDLE wins the CAS IDLE -> SCHED (acquire) and alone enqueues the
 * task; a waker that sees it queued or running sets NOTIFIED instead, and the
 * worker's CAS to IDLE then fails and it requeues the task itself. So a wake
 * is never lost and a task is in at most one run queue. Wakes may be
 * spurious (a stale waker, a recycled task struct): every wait loops on its
 * condition.
 *
 * Every write to `state` while wakers may be about is an atomic RMW (the
 * worker's exchange to RUNNING included; DONE and FREE are plain stores
 * because a waker only reads them and gives up). A plain store would
 * break the chain that carries a waker's condition store to the task's next
 * check of it: "waker stores condition, sees SCHED; worker stores RUNNING,
 * task reads the stale condition and parks" is a lost wakeup on any CPU with
 * a store buffer.
 *
 * Task structs are never unmapped while their runtime lives (they are kept
 * in a registry and recycled through per-worker caches), which is what makes
 * a stale wake harmless. The pages of a block none of whose structs is in
 * use may be handed back to the kernel (task.c); they then read as zeros,
 * TASK_FREE, where a wake stops.
 *
 * Inline joins. A task that joins a child which has not started yet runs
 * the child itself: the child's function is called on the joiner's stack,
 * as Java's ForkJoinPool runs an unstarted child inside its join. The
 * joiner takes the child with the CAS a worker's start makes
 * (weft__task_claim_new, NEW to INLINE), so of the two exactly one runs
 * it. The child keeps its identity (weft_self, its name, its task-locals,
 * its cancellation and result are its own), but it has no stack and no
 * fiber of its own: while it runs, the task whose stack it is on, its
 * host (the joiner, or the joiner's own host), stands for it in the
 * suspend/wake protocol above. The child's state is INLINE; a wake of it
 * is a wake of its host (read from `host` after the state), a park of it
 * parks the host, and the host's fiber carries the switch. The joiner
 * stores host (release) right after its CAS, and it stays until the
 * struct is laid out for another task: a wake that finds INLINE and no
 * host yet waits out those few instructions, and one that comes as the
 * child ends wakes the joiner spuriously. A cancellation of the joiner
 * reaches the child, as an awaited task's does (weft__task_take_cancel
 * walks `inline_parent`).
 *
 * Mostly the child is one its worker still holds privately (the spawned
 * tasks not yet published, worker.c): the join takes it out, and no queue
 * ever sees it. But a child may have been published meanwhile (its
 * spawner suspended; a hungry worker was given it) and still wait in a
 * queue, any worker's, unstarted: without this its join would park, and
 * the child start on a stack of its own, a cost that a tree whose subtrees
 * were shared pays at every such join. The join takes it all the same,
 * and leaves its queue entry stale. The entry pins the struct
 * (HANDLE_ENTRY, set by the joiner before its claim): whichever worker
 * pops the entry fails the CAS from NEW, lets the pin go
 * (weft__task_unpin_entry) and moves on, and the struct is freed only once
 * its run, its handle and its entry are all done with, so no entry ever
 * names a recycled struct.
 */
#ifndef WEFT__TASK_H
#define WEFT__TASK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "fiber.h"
#include "spin.h"
#include "timer.h"
#include "weft.h"

struct worker;
struct runtime;
struct stack;
struct weft__locals;

enum task_state {
    TASK_FREE = 0,
    TASK_SCHED = 1,
    TASK_RUNNING = 2,
    TASK_IDLE = 3,
    TASK_DONE = 4,
    TASK_INLINE = 5,
    TASK_NEW = 6,
    TASK_NOTIFIED = 8, /* or'ed onto NEW, SCHED or RUNNING */
};

/* Whether s (NOTIFIED masked off) is a runnable task's: queued, running
 * or yielded (SCHED and RUNNING alike, see the protocol above). */
static inline bool weft__task_runnable(uint32_t s)
{
    return s == TASK_SCHED || s == TASK_RUNNING;
}

/* Whether s (NOTIFIED masked off) may be the state of a task a queue
 * names: runnable, new, or taken by its joiner (a stale entry). */
static inline bool weft__task_queueable(uint32_t s)
{
    return weft__task_runnable(s) || s == TASK_NEW || s == TASK_INLINE ||
           s == TASK_DONE;
}

/* Why a task is suspended: shown in task dumps. */
enum weft__why {
    WHY_NONE = 0,
    WHY_YIELD,
    WHY_SLEEP,
    WHY_JOIN,
    WHY_IO,
    WHY_SYNC,
    WHY_QUEUE,
    WHY_FUTURE,
    WHY_BLOCKING,
    WHY_SIGNAL,
};

/*
 * Handles, and why they carry a generation.
 *
 * Task structs are recycled: a finished task's struct goes back to a
 * worker's cache and the next spawn reuses it. A bare pointer therefore
 * cannot tell a task from the one that later lives in its struct: a second
 * join of a released handle would wait on a stranger (forever, if that one
 * waits for the joiner), and a mutex that recorded a bare pointer as its
 * owner would take an unlock from any later task in the same struct.
 *
 * So each struct has a generation, bumped by weft__task_init() every time
 * it is readied for a new task, and the handle value weft gives out
 * (weft_spawn's *out, weft_self(), weft_as_completed_next) is the struct's
 * address with the generation in its top 16 bits. User-space addresses on
 * x86-64 and aarch64 leave those bits zero (allocators never map above
 * 2^47, or 2^48, without being asked), so the tag costs no memory, and a
 * tagged value dereferenced by mistake faults at once instead of reading a
 * task. Every public entry that takes a weft_task_t * checks the tag
 * against the struct (weft__task_check) and strips it (a mask): a stale
 * handle gets -EINVAL and never touches the task now in the struct.
 * Owners recorded by the toolkit (mutex, scope, as_completed, group wait)
 * are handle values too, for the same reason.
 *
 * The generation sits in the upper half of the handle word, above the
 * HANDLE_* bits, so that:
 *   - a spawn writes both with the one plain store it always made: no RMW
 *     is added on the spawn path (a counter shared by all spawns would
 *     have been an RMW on a contended line);
 *   - releasing a handle is one CAS that checks generation and HELD
 *     together, so of two tasks racing to join the same handle exactly one
 *     releases it, and neither can release the handle of a later task.
 * Rejected: a reference count (an RMW on every spawn, join and use) and an
 * index into a table of structs (a lookup on every use, and a table the
 * allocator would have to maintain).
 *
 * Sixteen bits wrap: a stale handle passes the check again only if its
 * struct was reused a multiple of 65536 times while it was kept, which
 * turns a certain hang or wrong unlock into a one-in-65536 one.
 */
#define HANDLE_HELD 1u  /* a weft_task_t handle is outstanding */
#define HANDLE_DONE 2u  /* the task has finished */
#define HANDLE_JOINED 4u /* the handle was released by a join: result seen */
/* Some task listed itself as a joiner (weft__task_add_joiner): the run's
 * end must take join_lock and wake the list. Set by the joiner under the
 * lock, before it reads the state, so that the end's one RMW of the word
 * either sees it or comes first, and the joiner then sees DONE and does
 * not list itself. A join that finds its task done, or runs it inline,
 * never sets it: the common end is one RMW and no lock. */
#define HANDLE_WAITED 8u
/* A stale queue entry names the task: its joiner took it from a queue
 * (see "Inline joins"); the worker that pops the entry clears it. */
#define HANDLE_ENTRY 16u
#define HANDLE_GEN_SHIFT 16 /* the generation: bits 16-31 of the word */
#define HANDLE_TAG_SHIFT 48 /* the generation in a handle value */
#define HANDLE_ADDR_MASK ((UINT64_C(1) << HANDLE_TAG_SHIFT) - 1)

/* One joiner; lives on the joiner's stack while it waits. */
struct weft__join_waiter {
    struct weft__join_waiter *next;
    struct weft_task *task;
    atomic_bool done;
};

#define TASK_NAME_MAX 32 /* bytes kept of a name, its NUL included */

/* Fields are ordered to leave little padding: 168 bytes on 64-bit targets
 * in plain builds (a fresh task's struct is most of the new memory a burst
 * of spawns touches). */
struct weft_task {
    /* Whoever runs the task (the worker that moved it to RUNNING). */
    struct fiber fiber;
    struct stack *stack;
    /* While the task runs inline (see "Inline joins"): the task whose
     * stack it runs on, read at every switch and by wakers (relaxed:
     * ordered by the state), and the task that joined it, for
     * cancellations. NULL otherwise. Beside the fiber: one cache line. */
    _Atomic(struct weft_task *) host;
    struct weft_task *inline_parent;
    int result;
    bool started;
    /* Why and where the task last suspended, for task dumps: relaxed
     * atomics, since a dump reads them from another thread. */
    _Atomic uint8_t why;     /* enum weft__why of the current suspension */
    /* Timeout scopes the task is in: weft_scope_exit checks that a scope
     * is the innermost with it. 16 bits fill a hole of the layout; the
     * 65536th nested scope is refused. */
    uint16_t scope_depth;
    const void *_Atomic where; /* return address of the suspending call */
    int64_t scope_deadline;  /* innermost timeout scope, WEFT_NO_DEADLINE if none */

    /* Set at spawn, read-only while the task lives. */
    weft_fn_t fn;
    void *arg;
    struct runtime *rt;
    size_t stack_size;       /* 0: the runtime default */
    /* Called by the worker when the task ends, run or not (cancelled
     * before it started, no stack): how a thread outside the runtime
     * learns the result of a task it waits for. NULL for most tasks. */
    void (*on_finish)(struct weft_task *t);
    char *name;              /* a heap copy of the spawn option, or NULL */
    /* Task-local values (local.c): the task's own, and its spawner's
     * before it is runnable. NULL in a struct not in use. */
    struct weft__locals *locals;

    /* Link of the free caches (and of the injection queue's fallback). */
    struct weft_task *next;

    /* Any thread, atomic. */
    _Atomic uint32_t state;  /* enum task_state, see the protocol above */
    _Atomic uint32_t handle; /* HANDLE_* bits and the generation */
    /* When a sampled wake made the task runnable, 0 if the last one was
     * not sampled (metrics.h): written by that waker before it queues the
     * task, read and cleared by the worker that claims it. */
    int64_t woke_at;
    atomic_bool cancel;      /* a cancellation request not yet delivered */
    atomic_bool shutdown_seen; /* cancelled once by the runtime's shutdown */

    /* Joiners, under join_lock. */
    struct weft__spin join_lock;

    bool detached_at_spawn;  /* set at spawn: no handle was ever given out */

    /* Its block in the runtime's task arena (task.c); set when the block
     * is laid out. */
    uint32_t block;
    struct weft__join_waiter *joiners;

    struct weft__timer timer;

    /* Registry of every task struct of the runtime; under its lock. */
    struct weft_task *all_next;

};

/* Moves new task t from NEW (a wake's NOTIFIED with it) to `to`: the one
 * CAS by which a worker's start (RUNNING) and a joiner's inline run
 * (INLINE) claim it, so exactly one of them runs it. False, writing
 * nothing, if t is not NEW. acquire: pairs with the release CAS of a
 * waker (a cancellation) that found it queued, and, failing, with the
 * claim that took it (its pin, "Inline joins"); release: publishes that
 * pin to the worker whose claim then fails. */
static inline bool weft__task_claim_new(struct weft_task *t, uint32_t to)
{
    uint32_t s = atomic_load_explicit(&t->state, memory_order_acquire);

    do {
        if ((s & ~TASK_NOTIFIED) != TASK_NEW)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(
        &t->state, &s, to, memory_order_acq_rel, memory_order_acquire));
    return true;
}

/* The task whose fiber carries t's switches: t, or its host while t runs
 * inline. Owner only (the running task or its worker). */
static inline struct weft_task *weft__task_fiber_owner(struct weft_task *t)
{
    struct weft_task *h = atomic_load_explicit(&t->host, memory_order_relaxed);

    return h ? h : t;
}

/* Records why and from where t suspends (WHY_NONE: it runs again). */
static inline void weft__task_note_wait(struct weft_task *t,
                                        enum weft__why why, const void *where)
{
    atomic_store_explicit(&t->why, (uint8_t)why, memory_order_relaxed);
    atomic_store_explicit(&t->where, where, memory_order_relaxed);
}

/* The running task, or NULL outside a task. */
struct weft_task *weft__task_current(void);

/*
 * Suspends the running task until someone calls weft__task_wake() on it.
 * May return spuriously: callers loop on their own condition.
 */
void weft__task_park(struct weft_task *t, enum weft__why why,
                     const void *where);

/* Makes t runnable if it is parked; any thread, any time. */
void weft__task_wake(struct weft_task *t);

/* Consumes t's pending cancellation request, if any: its own, or while t
 * runs inline one of its joiners' (passed on, as a join does). Every wait
 * and every start asks: the usual answer is two loads, inline. */
bool weft__task_take_cancel_slow(struct weft_task *t);

/* t's own request only, not its joiners': a relaxed load, and the RMW
 * only when one is pending. acquire: pairs with the release in
 * weft__task_cancel(). */
static inline bool weft__task_take_own_cancel(struct weft_task *t)
{
    return atomic_load_explicit(&t->cancel, memory_order_relaxed) &&
           atomic_exchange_explicit(&t->cancel, false, memory_order_acquire);
}

static inline bool weft__task_take_cancel(struct weft_task *t)
{
    if (likely(!atomic_load_explicit(&t->cancel, memory_order_relaxed) &&
               !t->inline_parent))
        return false;
    return weft__task_take_cancel_slow(t);
}

/* Puts back a request taken by a wait that completed anyway. */
void weft__task_restore_cancel(struct weft_task *t);

/*
 * The suspension loop every wait is built on: parks t until done(arg) is
 * true, the deadline (or an enclosing timeout scope) passes, or t is
 * cancelled. Returns 0, -ETIMEDOUT or -ECANCELED. On -ETIMEDOUT or
 * -ECANCELED the caller must still withdraw from whatever it waited on, and
 * treat a wait that completed meanwhile as a success (restoring the cancel).
 */
int weft__task_block(struct weft_task *t, bool (*done)(void *), void *arg,
                     int64_t deadline, enum weft__why why, const void *where);

/* A fresh task struct, registered with rt; NULL on ENOMEM. Any thread. */
struct weft_task *weft__task_struct_new(struct runtime *rt);

/* The struct a handle value names, tag stripped; NULL for NULL. */
static inline struct weft_task *weft__task_of(const weft_task_t *h)
{
    return (struct weft_task *)((uintptr_t)h & HANDLE_ADDR_MASK);
}

/* t's generation (bits 0-15). A live task's never changes. */
static inline uint32_t weft__task_gen(const struct weft_task *t)
{
    return atomic_load_explicit(&((struct weft_task *)t)->handle,
                                memory_order_relaxed) >> HANDLE_GEN_SHIFT;
}

/* The handle value of t as it is now: what weft_spawn gave out for it and
 * what weft_self returns in it. */
static inline weft_task_t *weft__task_handle(const struct weft_task *t)
{
    return (weft_task_t *)((uintptr_t)t |
                           (uintptr_t)weft__task_gen(t) << HANDLE_TAG_SHIFT);
}

/*
 * Checks a handle from a caller. Returns 0 and the task in *t if h is a
 * handle of the task now in its struct (the generations agree) and is
 * still held, or is self's own (weft_self() of a task spawned without a
 * handle); -EINVAL if h is NULL, stale (released, or its struct reused),
 * or names a task whose handle was never given out. Reads the struct only:
 * task structs are not unmapped while their runtime lives. Any thread;
 * self may be NULL.
 */
int weft__task_check(const weft_task_t *h, const struct weft_task *self,
                     struct weft_task **t);

/* The argument checks of every call that awaits h from self: 0 and the
 * task in *t, or -EPERM (self NULL: not in a task), -EINVAL (h NULL or
 * stale, see weft__task_check) or -EDEADLK (h is self). */
int weft__task_await_check(const struct weft_task *self, const weft_task_t *h,
                           struct weft_task **t);

/* weft_cancel on a struct the caller knows to be live (the runtime's
 * shutdown, the waits that pass a cancellation on). */
void weft__task_cancel(struct weft_task *t);

/* Idle time, on worker w: keeps `keep` structs of its cache and gives the
 * rest to the shared pool, handing back the pages of blocks none of whose
 * structs is then in use. */
void weft__task_cache_release(struct worker *w, unsigned keep);

/* Whether worker w caches more than `keep` structs. Owner only. */
bool weft__task_cache_exceeds(const struct worker *w, unsigned keep);

/* Task structs in a block (the same for every block). */
uint32_t weft__task_block_len(void);

/* A snapshot of a runtime's task struct memory (tests, benches). */
struct weft__task_stats {
    uint32_t blocks;      /* in the registry */
    uint32_t pooled;      /* structs of theirs in the shared pool: the rest
                             are cached by workers or in use */
    uint32_t full_blocks; /* of theirs, with every struct pooled */
    uint32_t released;    /* blocks whose pages went back to the kernel */
    uint32_t chunks;      /* mappings of blocks */
};
void weft__task_arena_stats(struct runtime *rt, struct weft__task_stats *s);

/* Unmaps a runtime's task structs: its end. */
struct weft__task_arena;
void weft__task_arena_fini(struct weft__task_arena *a);

/* True once t has finished. Any thread. */
bool weft__task_is_done(const struct weft_task *t);

/*
 * Joiner lists, for waits on several tasks: add returns false if t already
 * finished (j will not fire); remove returns false if j already fired or is
 * about to (its `done` becomes true shortly).
 */
bool weft__task_add_joiner(struct weft_task *t, struct weft__join_waiter *j);
bool weft__task_remove_joiner(struct weft_task *t,
                              struct weft__join_waiter *j);

/*
 * Waits until t finishes, the deadline passes (-ETIMEDOUT) or self is
 * cancelled (-ECANCELED). With pass_cancel, a cancellation or expiry is
 * passed on to t with weft_cancel and the wait goes on until t ends (returns
 * 0). Does not release the handle.
 */
int weft__task_wait_done(struct weft_task *self, struct weft_task *t,
                         int64_t deadline, bool pass_cancel,
                         const void *where);

/* Resets a task struct for a new run of fn(arg) (state SCHED), with a new
 * generation and, if held, an outstanding handle (weft__task_handle(t));
 * the caller then enqueues it. -ENOMEM if the name could not be copied (t
 * is left without one). */
int weft__task_init(struct weft_task *t, struct runtime *rt, weft_fn_t fn,
                    void *arg, const weft_spawn_opts_t *opts, bool held);

/*
 * weft_spawn_ex in two steps, for a caller that must record a task before
 * it can run (a group lists its child, sets t->on_finish): prepare readies
 * a task struct for fn(arg), with an outstanding handle if held, and gives
 * it the spawner's inherited task-local values; start makes it runnable.
 * Called from a task; prepare returns weft_spawn_ex's errors.
 */
int weft__task_prepare(struct weft_task **t, weft_fn_t fn, void *arg,
                       const weft_spawn_opts_t *opts, bool held);
void weft__task_start(struct weft_task *t);

/* The effective deadline of a wait of t: its own, or an enclosing scope's
 * if that comes first. */
static inline int64_t weft__wait_deadline(const struct weft_task *t,
                                          int64_t deadline)
{
    return deadline < t->scope_deadline ? deadline : t->scope_deadline;
}

/* t's name for reports: `none` if it has none. */
static inline const char *weft__task_name_or(const struct weft_task *t,
                                             const char *none)
{
    return t->name ? t->name : none;
}

/* Debug mode: reports on stderr that t failed (asyncio's "exception was
 * never retrieved"), `how` saying why nobody will see it; nothing for a
 * success, a cancellation or a task with a finish hook. */
void weft__task_report_failure(const struct weft_task *t, const char *how);

/* Frees t's name, if any (the runtime's end, for structs never freed). */
void weft__task_drop_name(struct weft_task *t);

/* The body of a fiber: runs the task's function, then the functions of the
 * new tasks that start in its place on the same stack (worker.c). */
void weft__task_entry(void *arg);

/* Ends t on worker w: releases its stack if it still has one (nothing runs
 * on it any more), wakes its joiners, frees the struct if its handle is
 * gone. Called by the worker, on whichever fiber runs after t's last
 * switch, or in place of a run for a task that never started. */
void weft__task_finish(struct worker *w, struct weft_task *t);

/* weft__task_finish for a task its joiner ran inline (or ended unstarted
 * in its join): ends the run and releases the joiner's handle, of
 * generation gen, with the same RMW. Returns the join's result: t's, or
 * -EINVAL if another task joined or detached the handle meanwhile. */
int weft__task_finish_joined(struct worker *w, struct weft_task *t,
                             uint32_t gen);

/* Runs the destructors of the task-local values of t, which ended without
 * running and so holds only inherited ones, on worker w outside any task
 * (local.h). Called by the worker before weft__task_finish. */
void weft__task_end_locals_outside(struct worker *w, struct weft_task *t);

/* Releases a task struct whose handle and run have both ended. */
void weft__task_free(struct weft_task *t);

/* Pins t, whose handle of generation gen its caller holds, for the queue
 * entry its claim is about to make stale ("Inline joins"); false if that
 * handle was released meanwhile. */
bool weft__task_pin_entry(struct weft_task *t, uint32_t gen);

/* Lets go of the pin of t's stale queue entry: by the worker that popped
 * it, or by a joiner whose claim failed. Frees t if its run and handle
 * are over; returns whether it did. */
bool weft__task_unpin_entry(struct weft_task *t);

#endif
