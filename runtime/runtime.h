/*
 * The runtime: its workers, the queues they share, the idle-worker set, the
 * task registry, the blocking pool, and the start/stop sequence behind
 * weft_runtime_new / weft_runtime_free (and weft_run, built on them).
 */
#ifndef WEFT__RUNTIME_H
#define WEFT__RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "blocking.h"
#include "common.h"
#include "config.h"
#include "inject.h"
#include "monitor.h"
#include "stack.h"

struct worker;
struct weft_task;
struct weft__io_ops;

/* A block of task structs (task.c): whole pages, handed back to the kernel
 * when none of its structs is in use. Under reg_lock. */
struct weft__task_block {
    struct weft_task *first;
    struct weft_task *free;  /* its structs in the shared pool, via next */
    uint32_t nfree;          /* how many */
    uint32_t next;           /* released or being released: the next such
                                block + 1 (0: none) */
    uint32_t reg_prev;       /* in the registry: the block before it + 1
                                (0: it is the first) */
    uint16_t gen_floor;      /* released: the generation its structs start
                                from when laid out again (task.h) */
};

/* The memory of a runtime's task structs (task.c); under reg_lock. */
struct weft__task_arena {
    struct weft__task_block *blocks; /* indexed by weft_task.block */
    uint32_t nblocks, cap_blocks;
    void **chunks;                   /* mapped until the runtime ends */
    uint32_t nchunks, cap_chunks;
    char *fresh, *fresh_end;         /* the last chunk's unused blocks */
    uint32_t released;               /* first released block + 1 */
    uint32_t nreleased;
    uint32_t nlive;                  /* blocks in the registry */
    uint32_t npooled;                /* structs in the shared pool */
    uint32_t cursor;                 /* where the search for pooled
                                        structs resumes */
};

/* The idle set; see the park/wake essay in worker.c. */
struct idle {
    pthread_mutex_t lock;
    unsigned *sleepers;              /* under lock: parked worker indexes */
    unsigned nsleepers;              /* under lock */
    /* Read at every spawn and inline join (worker.c, hungry()): on a
     * line of their own, which only a worker that starts or stops
     * searching or sleeping writes. */
    _Atomic uint32_t nidle WEFT__ALIGNED; /* == nsleepers, lock-free */
    _Atomic uint32_t nsearching;     /* workers looking for work */
};

/* Counts from threads that are not the runtime's workers (metrics.h);
 * relaxed RMWs. */
struct weft__metrics_shared {
    _Atomic uint64_t spawned;        /* weft_spawn_from, block_on, drain */
    _Atomic uint64_t finished;       /* tasks ended off a worker (none yet:
                                        kept for symmetry of the sums) */
    _Atomic uint64_t wakes;          /* tasks woken from other threads */
    _Atomic uint64_t io_completed;   /* ops completed off a worker */
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
    /* On lines of its own: its lock is taken by workers whose stack
     * caches run dry or over, and the lines around are read per spawn. */
    struct weft__stack_pool stacks WEFT__ALIGNED;
    atomic_bool stopping WEFT__ALIGNED; /* workers exit their loop */
    pthread_mutex_t launch_lock;     /* held while the threads are created */
    unsigned nstarted;               /* worker threads created; set under
                                        launch_lock */
    pthread_barrier_t start_barrier; /* workers' backends are ready */
    pthread_barrier_t stop_barrier;  /* no more wake() calls */

    /* Every block of task structs that may hold a task, whole, first
     * struct first; under reg_lock. */
    pthread_mutex_t reg_lock;
    struct weft_task *registry;

    /* Where task structs come from, and the shared pool of free ones
     * (structs given back by idle workers or freed outside any worker);
     * under reg_lock. */
    struct weft__task_arena tasks;

    /* Completions of block_on calls: each waits for its own flag. */
    pthread_mutex_t done_lock;
    pthread_cond_t done_cond;

    /* Spawns from outside a worker are gated in runtime.c, by the part of
     * a runtime's memory that outlives it. */
    struct weft_task *drainer;       /* allocated at start: shutdown cannot
                                        fail for want of memory */

    struct weft__blocking pool;
    struct weft__monitor monitor;
    struct weft__metrics_shared shared; /* counts from other threads */
    bool uses_signals;               /* under signal.c's lock */
};

/* What a public handle names; runtime.c keeps it in a slot that outlives
 * it, and handle values carry the slot's generation (as task handles do). */
struct weft_runtime {
    struct runtime rt;
};

/* The runtime a handle value names (its generation stripped; not
 * checked). Any thread; for tests. */
struct runtime *weft__runtime_of(const weft_runtime_t *h);

/* Whether h's runtime still takes spawns from outside (weft_runtime_free
 * has not begun). Any thread; for tests. */
bool weft__runtime_is_open(const weft_runtime_t *h);

/* Wakes a parked worker if work was just queued and nobody is searching;
 * see the essay in worker.c. Any thread. */
void weft__runtime_notify_work(struct runtime *rt);

/* Under reg_lock: adds block i of the task arena, its structs chained
 * through all_next, to the registry, or takes it out. */
void weft__runtime_register(struct runtime *rt, uint32_t i);
void weft__runtime_unregister(struct runtime *rt, uint32_t i);

/* Cancels every live task except self; returns how many were live. */
unsigned weft__runtime_cancel_all(struct runtime *rt, struct weft_task *self);

/* fn(rt, arg) for the runtime h names (NULL: the calling task's), while
 * it cannot be freed (its gate held: spawns from other threads wait).
 * fn's result, or -EPERM (h NULL outside a task) or -ESHUTDOWN (h stale or
 * its free begun). Any thread. */
int weft__runtime_call(const weft_runtime_t *h,
                       int (*fn)(struct runtime *rt, void *arg), void *arg);

#endif
