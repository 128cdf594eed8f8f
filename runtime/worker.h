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

/* Why a task switched away from its stack. */
enum switch_reason { SWITCH_PARK, SWITCH_YIELD, SWITCH_EXIT };

/* Plain per-worker counters: owner writes, anyone reads (relaxed). Only
 * what something reads is counted: every counter is a store per event. */
struct worker_stats {
    _Atomic uint64_t steals;
};

struct worker {
    /* Any thread. */
    struct weft__runq runq;       /* stealers take from it */
    struct weft__timers timers;   /* under timers.lock */
    struct worker_stats stats;
    bool woken_as_searcher;       /* under rt->idle.lock */

    /* Owner thread only. */
    struct runtime *rt WEFT__ALIGNED;
    unsigned index;
    struct fiber sched;            /* the scheduler's own context */
    struct weft_task *current;     /* the task on this worker's CPU (set
                                    * just before switching to it), NULL
                                    * when the scheduler fiber is next */
    struct weft_task *lifo;        /* the task to run next */
    unsigned lifo_streak;          /* LIFO runs in a row, capped */
    struct weft_task *prev;        /* switched away, not yet settled */
    enum switch_reason reason;     /* what prev asked for */
    uint32_t until_poll;           /* task runs until the next poll */
    int64_t run_start;             /* debug mode: when current's run began */
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
    pthread_t thread;
    int start_error;               /* set before the start barrier */
    bool io_failed;                /* a wait() failed; reported once */
    int64_t io_backoff_ns;         /* next sleep while wait() fails */
};

/* The worker running the calling thread, or NULL. Not inlined: a fiber may
 * resume on another thread, so a cached TLS address would be stale. */
struct worker *weft__worker_current(void);

/* Hands t (SCHED) to a run queue: w's LIFO slot or queue, or the injection
 * queue if w is NULL or belongs to another runtime. */
void weft__worker_enqueue(struct worker *w, struct weft_task *t, bool lifo);

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

/* Backend wait() calls that failed, all workers (tests: a failing backend
 * must not turn into a busy loop). */
extern _Atomic uint64_t weft__worker_wait_failures;

/* Thread body of a worker. */
void *weft__worker_main(void *arg);

/* Makes every worker re-check for work (shutdown). */
void weft__worker_wake_all(struct runtime *rt);

#endif
