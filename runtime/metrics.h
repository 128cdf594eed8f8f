/*
 * Runtime metrics (weft_metrics, weft_metrics_format): per-worker counters
 * each written only by its worker with a relaxed load and store (no RMW,
 * no lock), summed by the reader; what happens off the workers (spawns and
 * wakes from other threads, completions on the blocking pool) is counted
 * in struct weft__metrics_shared, on paths that already take a lock.
 *
 * Histograms are sampled, because a clock read costs as much as a whole
 * run of a short task. The last run before each of a worker's polls (one
 * in WEFT__POLL_INTERVAL, a countdown the worker keeps anyway) has its
 * length measured, a clock read where it begins and one where it ends;
 * one wake in WEFT__SAMPLE_EVERY on each worker is timed: the waker notes
 * the time and the task on its worker and marks the task's state before
 * queueing it (TASK_SAMPLED, task.h; an RMW on that one wake only, since
 * other wakers may set NOTIFIED meanwhile), and the run that claims the
 * task reads the mark
 * from the value its claim returns anyway and measures the delay (that run
 * is then measured too, the clock being read already). Runs are not
 * counted one by one either: the poll countdown tells them (metrics.c).
 */
#ifndef WEFT__METRICS_H
#define WEFT__METRICS_H

#include <stdatomic.h>
#include <stdint.h>

struct runtime;
struct worker;
struct weft_task;

#define WEFT__SAMPLE_EVERY 64

/* Counts from threads that are not the runtime's workers; relaxed RMWs. */
struct weft__metrics_shared {
    _Atomic uint64_t spawned;        /* weft_spawn_from, block_on, drain */
    _Atomic uint64_t finished;       /* tasks ended off a worker (none yet:
                                        kept for symmetry of the sums) */
    _Atomic uint64_t wakes;          /* tasks woken from other threads */
    _Atomic uint64_t io_completed;   /* ops completed off a worker */
};

/* Adds one to an owner-written counter: a load and a store, no RMW. */
static inline void weft__count(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* The log2 bucket of a duration in ns: bucket 0 below 1024 ns, bucket i
 * below 2^(10+i) ns, the last one everything from 2^32 ns on. */
static inline unsigned weft__hist_bucket(int64_t ns)
{
    unsigned bits = ns > 0 ? 64 - (unsigned)__builtin_clzll((uint64_t)ns) : 0;

    if (bits <= 10)
        return 0;
    return bits - 10 < 23 ? bits - 10 : 23;
}

/* An I/O op of task t (NULL for a multishot's end) completed on this
 * thread. */
void weft__metrics_io_done(struct weft_task *t);

/* The calling thread entered the kernel for its backend (a submit or a
 * wait); counted when it is a worker's. */
void weft__metrics_kernel_entry(void);

#endif
