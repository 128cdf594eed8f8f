/*
 * Runtime metrics (weft_metrics, weft_metrics_format): per-worker counters
 * each written only by its worker (weft__count: no atomic RMW, no lock),
 * loaded relaxed and summed by the reader; what happens off the workers
 * (spawns and wakes from other threads, completions on the blocking pool)
 * is counted in struct weft__metrics_shared (runtime.h), on paths that
 * already take a lock.
 *
 * Runs are not counted one by one: the worker's poll countdown, reloaded
 * every WEFT__POLL_INTERVAL runs, tells them (metrics.c).
 *
 * Histograms are sampled, because a clock read costs as much as a whole
 * run of a short task, and neither sample touches the task's state word:
 *
 * - Run time: one poll in WEFT__RUN_SAMPLE_POLLS marks the worker timed
 *   (weft__metrics_poll), so the run after it is clocked where debug mode
 *   clocks every run (start_run_clock and check_run_length, worker.c).
 * - Scheduling delay: one wake in WEFT__WAKE_SAMPLE on each worker (its
 *   wake counter is the countdown), and one in WEFT__WAKE_SAMPLE of those
 *   from other threads, stores the time in the task's woke_at, a plain
 *   field, after the CAS that made the task SCHED and before the task is
 *   queued. Only that waker may write it then (the task is in no queue and
 *   no one else can make it SCHED), and the worker that claims the task
 *   reads it: the queue that hands the task over publishes it, as it
 *   publishes everything the waker wrote before the push (a release push
 *   or the injection queue's lock, an acquire pop or steal). The claim's
 *   acquire alone would not: it pairs with the waker's CAS, which comes
 *   before the store. The runner clears the field before the task runs,
 *   and no waker can write it again before the task parks: a wake of a
 *   queued or running task only sets NOTIFIED.
 */
#ifndef WEFT__METRICS_H
#define WEFT__METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "common.h"
#include "runtime.h"
#include "sanitizer.h"
#include "task.h"
#include "worker.h"

/* One wake in WEFT__WAKE_SAMPLE, and the run after one poll in
 * WEFT__RUN_SAMPLE_POLLS (one run in 976), are timed: at millions of runs
 * a second that is still thousands of samples a second per worker, while
 * a clock read costs from some 20 ns to over 200 ns in a virtual machine
 * that traps the TSC, as much as a short task's whole run. Powers of two:
 * a mask, not a division. */
#define WEFT__WAKE_SAMPLE 1024
#define WEFT__RUN_SAMPLE_POLLS 16

/*
 * Adds one to an owner-written counter that other threads load relaxed.
 * Never an atomic RMW: only the owner writes it, so an update cannot be
 * lost, and a reader sees the old value or the new one. On x86-64 that is
 * one add to memory without a lock prefix (an aligned 8-byte store is
 * single-copy atomic there); elsewhere, and under ThreadSanitizer (which
 * does not see inside an asm), a relaxed load and store: C has no plain
 * increment of an atomic, and the compiler does not fuse the two.
 */
#if defined(__x86_64__) && !defined(WEFT__TSAN)
static inline void weft__count(_Atomic uint64_t *c)
{
    __asm__("addq $1, %0" : "+m"(*(uint64_t *)c));
}
#else
static inline void weft__count(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}
#endif

/* The log2 bucket of a duration in ns: bucket 0 below 1024 ns, bucket i
 * below 2^(10+i) ns, the last one everything from 2^32 ns on. */
static inline unsigned weft__hist_bucket(int64_t ns)
{
    unsigned bits = ns > 0 ? 64 - (unsigned)__builtin_clzll((uint64_t)ns) : 0;

    if (bits <= 10)
        return 0;
    return bits - 10 < 23 ? bits - 10 : 23;
}



/* Cold halves of the hooks below (metrics.c); each returns its w. */
struct worker *weft__metrics_wake_remote(struct worker *w,
                                         struct weft_task *t);
struct worker *weft__metrics_time_wake(struct worker *w,
                                       struct weft_task *t);
void weft__metrics_woken(struct worker *w, struct weft_task *t);

/* Worker w (NULL: a thread that is not one of the runtime's workers) made
 * t SCHED with its CAS and is about to queue it: counts the wake, and on a
 * sampled one notes its time in t->woke_at (see the top of this file).
 * Returns w, so that the caller need not keep it across the cold calls. */
static inline struct worker *weft__metrics_wake(struct worker *w,
                                                struct weft_task *t)
{
    if (unlikely(!w))
        return weft__metrics_wake_remote(w, t);
    weft__count(&w->stats.wakes);
    if (unlikely(atomic_load_explicit(&w->stats.wakes, memory_order_relaxed) %
                     WEFT__WAKE_SAMPLE ==
                 0))
        return weft__metrics_time_wake(w, t);
    return w;
}

/*
 * The calling thread's worker for the hooks of the drivers, which do not
 * know their worker: set when a worker thread starts (worker.c), NULL on
 * other threads. A thread is one worker's for its whole life. Read inline,
 * not through weft__worker_current(): safe where no fiber switch comes
 * between the read and the use (a fiber may resume on another thread).
 */
extern __thread struct worker *weft__metrics_worker
    __attribute__((tls_model("initial-exec")));

/* An I/O op of task t (NULL for a multishot's end) completed on this
 * thread. Inline and without a call, even on the cold branch, so that the
 * driver's completion path needs no stack frame for it. */
static inline void weft__metrics_io_done(struct weft_task *t)
{
    struct worker *w = weft__metrics_worker;

    if (likely(w))
        weft__count(&w->stats.io_completed);
    else if (t)
        /* A blocking-pool thread: beside its job, an RMW is noise. */
        atomic_fetch_add_explicit(&t->rt->shared.io_completed, 1,
                                  memory_order_relaxed);
}

/* The calling thread entered the kernel for its backend (a submit or a
 * wait); counted when it is a worker's. */
static inline void weft__metrics_kernel_entry(void)
{
    struct worker *w = weft__metrics_worker;

    if (likely(w))
        weft__count(&w->stats.kernel_entries);
}

/* Worker w claimed t from a queue: a sampled wake's delay ends here. One
 * load of a field of the line the claim just wrote, and a test. */
static inline void weft__metrics_claimed(struct worker *w,
                                         struct weft_task *t)
{
    if (unlikely(t->woke_at))
        weft__metrics_woken(w, t);
}

/* Worker w looks outside (every WEFT__POLL_INTERVAL runs): counted, and
 * one in WEFT__RUN_SAMPLE_POLLS marks the next run timed. */
static inline void weft__metrics_poll(struct worker *w)
{
    uint64_t n = atomic_load_explicit(&w->stats.polls,
                                      memory_order_relaxed) + 1;

    /* release: after the countdown's reload (find_task, worker.c), for
     * runs_of() in metrics.c. */
    atomic_store_explicit(&w->stats.polls, n, memory_order_release);
    if (n % WEFT__RUN_SAMPLE_POLLS == 0)
        w->timed = true;
}

/* A timed run of worker w lasted ran ns: into the histogram, and the next
 * run is timed again only in debug mode (or after the next sampled poll). */
void weft__metrics_ran(struct worker *w, int64_t ran);

#endif
