/*
 * The runtime: its workers, the queues they share, the idle-worker set, the
 * task registry, the blocking pool, and the start/stop sequence behind
 * weft_runtime_new / weft_runtime_free (and weft_run, built on them).
 */
#ifndef WEFT_RUNTIME_H
#define WEFT_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "blocking.h"
#include "config.h"
#include "inject.h"
#include "stack.h"

struct worker;
struct weft_task;
struct weft__io_ops;

/* The idle set; see the park/wake essay in worker.c. */
struct idle {
    pthread_mutex_t lock;
    unsigned *sleepers;              /* under lock: parked worker indexes */
    unsigned nsleepers;              /* under lock */
    _Atomic uint32_t nidle;          /* == nsleepers, readable lock-free */
    _Atomic uint32_t nsearching;     /* workers looking for work */
};

struct runtime {
    /* Read-only after start. */
    struct weft__config cfg;
    const struct weft__io_ops *io_ops;
    unsigned nworkers;
    struct worker **workers;

    /* Any thread. */
    struct weft__inject inject;
    struct idle idle;
    struct weft__stack_pool stacks;
    atomic_bool stopping;            /* workers exit their loop */
    pthread_barrier_t start_barrier; /* workers' backends are ready */
    pthread_barrier_t stop_barrier;  /* no more wake() calls */

    /* Every task struct ever allocated; under reg_lock. */
    pthread_mutex_t reg_lock;
    struct weft_task *registry;

    /* Task structs released outside any worker, reused by spawns from
     * outside (weft_spawn_from, block_on); under reg_lock. */
    struct weft_task *orphans;

    /* Completions of block_on calls: each waits for its own flag. */
    pthread_mutex_t done_lock;
    pthread_cond_t done_cond;

    /* Spawns from outside a worker are gated in runtime.c, by the part of
     * a runtime's memory that outlives it. */
    struct weft_task *drainer;       /* allocated at start: shutdown cannot
                                        fail for want of memory */

    struct weft__blocking pool;
    bool uses_signals;               /* under signal.c's lock */
};

/* What a public handle names; runtime.c keeps it in a slot that outlives
 * it, and handle values carry the slot's generation (as task handles do). */
struct weft_runtime {
    struct runtime rt;
};

/* Whether h's runtime still takes spawns from outside (weft_runtime_free
 * has not begun). Any thread; for tests. */
bool weft__runtime_is_open(const weft_runtime_t *h);

/* Wakes a parked worker if work was just queued and nobody is searching;
 * see the essay in worker.c. Any thread. */
void weft__runtime_notify_work(struct runtime *rt);

/* Adds fresh task structs, chained through all_next, to the registry. */
void weft__runtime_register(struct runtime *rt, struct weft_task *first,
                            struct weft_task *last);

/* Cancels every live task except self; returns how many were live. */
unsigned weft__runtime_cancel_all(struct runtime *rt, struct weft_task *self);

/* Prints a line per live task (debug reports). */
void weft__runtime_dump(struct runtime *rt, const char *why);

#endif
