/*
 * Workers: one thread each, running the scheduler loop on its own stack
 * (the scheduler fiber) and switching into tasks.
 */
#ifndef WEFT__WORKER_H
#define WEFT__WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "fiber.h"
#include "runq.h"
#include "stack.h"
#include "timer.h"

struct runtime;
struct weft_task;
struct weft__io;

/* What a worker keeps cached through an idle period (see "Idle memory" in
 * worker.c): a slab's worth of stacks, so that a refill takes the pool's
 * lock once, and as many task structs. A burst of that many short tasks
 * then starts without a lock, a syscall or a page fault; with two pages of
 * each stack resident, that is about half a MiB per worker. */
#define WEFT__STACK_CACHE_KEEP 64
#define WEFT__TASK_CACHE_KEEP 64

/* Unpublished spawns a worker holds at most (see "Order of work" in
 * worker.c): a tree of that many pending siblings across its levels. */
#define WEFT__SPAWNED_MAX 256

/* Why a task switched away from its stack. */
enum switch_reason { SWITCH_PARK, SWITCH_YIELD, SWITCH_EXIT };

/* Plain per-worker counters: owner writes, anyone reads (relaxed). Only
 * what something reads is counted: every counter is a store per event
 * (weft_metrics sums them; metrics.h says what each counts). */
#define WEFT__HIST_BUCKETS 24
#define WEFT__POLL_INTERVAL 61 /* task runs between two looks outside */
struct worker_stats {
    _Atomic uint64_t steals;
    _Atomic uint64_t spawned, finished, parks, wakes;
    _Atomic uint64_t polls;       /* until_poll reloads: runs are polls *
                                     WEFT__POLL_INTERVAL - until_poll */
    _Atomic uint64_t io_submitted, io_completed, kernel_entries;
    /* Sampled runs (metrics.h): wake-to-run delay, run time; log2 ns. */
    _Atomic uint64_t delay_hist[WEFT__HIST_BUCKETS];
    _Atomic uint64_t run_hist[WEFT__HIST_BUCKETS];
    _Atomic uint64_t runs_read;   /* readers': the most runs one saw */
};

struct worker {
    /* Any thread. */
    struct weft__runq runq;       /* stealers take from it */
    struct weft__timers timers;   /* under timers.lock */
    struct worker_stats stats;
    bool woken_as_searcher;       /* under rt->idle.lock */

    /* Progress and hand-off: see "Stalls" in worker.c. */
    _Atomic uint64_t beat WEFT__ALIGNED; /* owner stores; odd: in the
                                           runtime, even: in a task */
    atomic_bool stalled;          /* a rescuer holds its duties (set under
                                     handoff); the owner takes them back */
    atomic_bool parked;           /* blocked in the backend's wait() */
    struct weft__spin handoff;    /* held by a rescuer for a pass, and by
                                     the owner to take its duties back */
    _Atomic uint32_t kick_req, kick_ack; /* driver kicks (monitor.c) */
    _Atomic(struct weft_task *) running; /* the task on its CPU, for
                                           the stall report */

    /* Owner thread only. */
    struct runtime *rt WEFT__ALIGNED;
    unsigned index;
    struct fiber sched;            /* the scheduler's own context */
    struct weft_task *current;     /* the task on this worker's CPU (set
                                    * just before switching to it), NULL
                                    * when the scheduler fiber is next */
    struct weft_task *lifo;        /* the task to run next */
    /* Tasks spawned by the running task and not yet published to a queue,
     * oldest first: its joins may run them inline (see "Order of work" in
     * worker.c). A duty, like the LIFO slot. */
    uint32_t nspawned;
    uint32_t inline_polls;         /* polls in a row inline runs went on
                                    * past while other tasks were ready */
    struct weft_task *spawned[WEFT__SPAWNED_MAX];
    unsigned lifo_streak;          /* LIFO runs in a row, capped */
    struct weft_task *prev;        /* switched away, not yet settled */
    enum switch_reason reason;     /* what prev asked for */
    _Atomic uint32_t until_poll;   /* task runs until the next poll; a
                                      relaxed load and store (metrics
                                      read it) */
    bool timed;                    /* runs are timed: debug mode, or the
                                      next run is sampled (metrics.h) */
    int64_t run_start;             /* timed: when current's run began */
    uint32_t rng;
    bool searching;                /* counted in rt->idle.nsearching */
    struct weft__stack_cache stacks;
    struct weft_task *free_tasks;  /* task struct cache */
    /* Batches between the local queue and the injection queue (a spill,
     * a take): on the worker, not on the stack of the task that spills. */
    struct weft_task *batch[WEFT_RUNQ_SPILL_MAX];
    int64_t release_at;            /* when idle memory goes back (idle()
                                    * in worker.c), 0: nothing to give */
    struct weft__io *io;
    bool light_fence;              /* enter's barrier may be a compiler
                                    * barrier (no rescuer, or membarrier) */
    pthread_t thread;
    int start_error;               /* set before the start barrier */
    bool io_failed;                /* a wait() failed; reported once */
    int64_t io_backoff_ns;         /* next sleep while wait() fails */
};

/*
 * The owner's side of the hand-off protocol ("Stalls" in worker.c): enter
 * before touching what a rescuer may take over (the LIFO slot, the
 * backend), leave before returning to a task's code. No RMW and no fence:
 * a store, a compiler barrier and a load, the rescuer paying for the rest.
 */
void weft__worker_reclaim(struct worker *w);

static inline bool weft__worker_in_runtime(const struct worker *w)
{
    return atomic_load_explicit(&w->beat, memory_order_relaxed) & 1;
}

static inline void weft__worker_enter(struct worker *w)
{
    uint64_t b = atomic_load_explicit(&w->beat, memory_order_relaxed);

    atomic_store_explicit(&w->beat, b + 1, memory_order_relaxed);
    if (w->light_fence)
        atomic_signal_fence(memory_order_seq_cst);
    else
        atomic_thread_fence(memory_order_seq_cst);
    if (unlikely(atomic_load_explicit(&w->stalled, memory_order_relaxed)))
        weft__worker_reclaim(w);
}

static inline void weft__worker_leave(struct worker *w)
{
    uint64_t b = atomic_load_explicit(&w->beat, memory_order_relaxed);

    /* release: what the owner did in the runtime happens before a
     * rescuer's acquire load of this value (TSan sees the edge too). */
    atomic_store_explicit(&w->beat, b + 1, memory_order_release);
}

/* The worker running the calling thread, or NULL. Not inlined: a fiber may
 * resume on another thread, so a cached TLS address would be stale. */
struct worker *weft__worker_current(void);

/* Hands t (SCHED) to a run queue: w's LIFO slot or queue, or the injection
 * queue if w is NULL or belongs to another runtime. */
void weft__worker_enqueue(struct worker *w, struct weft_task *t, bool lifo);

/* Hands t, just spawned by w's running task, to w: held unpublished until
 * the spawner suspends, a worker goes hungry or too many are held. */
void weft__worker_spawned(struct worker *w, struct weft_task *t);

/*
 * Runs t, joined by self (w's running task), right here on self's stack
 * (task.h, "Inline joins"), if t has not started (whether w still holds
 * it unpublished or a queue names it) and self's stack has room for the
 * stack t was promised.
 * True once t has ended and the handle of generation gen that self joins
 * it through is released, *result then being the join's result; false,
 * touching nothing, if it cannot.
 */
bool weft__worker_join_inline(struct weft_task *self, struct weft_task *t,
                              uint32_t gen, int *result, const void *where);

/* Suspends the running task (to the next local task or to w's
 * scheduler); returns when the task is resumed. */
void weft__worker_switch_out(struct worker *w, enum switch_reason why);

/*
 * The running task's function has returned. Either returns a new task that
 * took over its stack and fiber (the caller runs its function next, in the
 * same frame), or switches away for good.
 */
struct weft_task *weft__worker_task_done(struct worker *w);

/* Completes the switch that brought the caller onto this worker; the first
 * call of a new task. */
void weft__worker_settle(struct worker *w);

/* weft__worker_settle, then back to the task's code (leave). */
void weft__worker_resume(struct worker *w);

/*
 * The rescuer's pass over w, which has run one task since its beat was b
 * (even): freezes w if it is not yet (see "Stalls" in worker.c) and, if
 * serve, serves what is ready there: the LIFO slot's task and the run
 * queue go to the injection queue, due timers fire, the backend is reaped
 * (a kick makes w's thread enter the kernel where the backend needs it).
 * report(w, task) runs, still under the freeze, when this pass froze w.
 * Without serve, w stays frozen but unserved until it takes its duties
 * back. Returns false if w was not frozen
 * (it moved on, or is taking its duties back).
 */
bool weft__worker_rescue(struct worker *w, uint64_t b, bool serve,
                         void (*report)(struct worker *w,
                                        struct weft_task *t));

/* Once per process, before a runtime with a monitor starts its workers:
 * registers membarrier and installs the kick signal's handler. Returns
 * whether the owner's barrier may be a compiler barrier. */
bool weft__worker_stalls_init(void);

/* The calling task's worker hands its duties over before a blocking call
 * (weft_block_in_place); the next enter takes them back. */
void weft__worker_hand_off(struct worker *w);

/* Backend wait() calls that failed, all workers (tests: a failing backend
 * must not turn into a busy loop). */
extern _Atomic uint64_t weft__worker_wait_failures;

/* Thread body of a worker. */
void *weft__worker_main(void *arg);

/* Makes every worker re-check for work (shutdown). */
void weft__worker_wake_all(struct runtime *rt);

#endif
