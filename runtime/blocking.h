/*
 * The blocking pool: threads apart from the workers that run functions which
 * would stall an event loop (CPU-bound work, blocking syscalls, getaddrinfo).
 *
 * A task submits a job (which lives on its own stack) and suspends; a pool
 * thread runs it and wakes the task through weft__task_wake(), the same path
 * as every cross-thread wake. Threads are created on demand up to
 * cfg.blocking_threads and retire after cfg.blocking_keepalive_ms idle. Jobs
 * beyond the threads wait in a FIFO that never drops one. It is the one pool
 * of the runtime: weft_blocking, name resolution and the epoll driver's
 * file operations all run here.
 *
 * Slow jobs (WEFT__JOB_SLOW: getaddrinfo, which may wait seconds on a DNS
 * server) may hold at most half the threads, rounded up, as libuv limits
 * its slow I/O: a queued slow job is passed over while that many run, so a
 * burst of lookups cannot starve the file operations queued behind it.
 *
 * Who may call what: submit and withdraw from tasks (weft_blocking), stats
 * from anywhere, init/stop/fini from the thread that starts and stops the
 * runtime. Everything in struct weft__blocking is under its lock.
 */
#ifndef WEFT__BLOCKING_H
#define WEFT__BLOCKING_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct weft_task;

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

/* A job of the slow class (see above). */
#define WEFT__JOB_SLOW 1u

/* One job; on the waiting task's stack (or in its I/O op). */
struct weft__blocking_job {
    struct weft__blocking_job *next; /* under the pool lock while queued */
    int (*fn)(void *);
    void *arg;
    struct weft_task *task;          /* the task to wake when fn returns */
    /*
     * If set, called with fn's status instead of storing it in result,
     * setting DONE and waking task: it publishes the result its own way
     * and wakes the task. The job must not be touched after the call.
     */
    void (*finish)(struct weft__blocking_job *job, int result);
    unsigned flags;                  /* WEFT__JOB_* */
    int result;                      /* fn's status, written before DONE */
    _Atomic uint32_t state;          /* enum job_state */
};

struct weft__blocking {
    pthread_mutex_t lock;
    pthread_cond_t work;             /* idle threads wait here for jobs */
    pthread_cond_t gone;             /* stop() waits here for threads */

    /* Under lock. */
    struct weft__blocking_job *head, *tail;
    unsigned nqueued;
    unsigned nthreads;               /* alive (or being created) */
    unsigned nidle;                  /* waiting on work */
    unsigned peak;                   /* most threads alive at once */
    unsigned nslow;                  /* slow jobs running */
    bool stopping;
    bool has_zombie;                 /* zombie holds an unjoined thread */
    pthread_t zombie;                /* the last thread that retired */

    /* Read-only after init. */
    unsigned max_threads;
    unsigned slow_max;               /* slow jobs that may run at once */
    int64_t keepalive_ns;
};

/* A snapshot for tests and reports. */
struct weft__blocking_stats {
    unsigned threads, idle, queued, peak;
};

int weft__blocking_init(struct weft__blocking *p, unsigned max_threads,
                        unsigned keepalive_ms);

/*
 * Lets every thread finish the jobs still queued, then joins them all. The
 * runtime calls it after its tasks are drained, so the queue is empty by
 * then and no thread is left running a job.
 */
void weft__blocking_stop(struct weft__blocking *p);
void weft__blocking_fini(struct weft__blocking *p);

/* Queues job (state QUEUED, fn/arg/task set). 0, or -EAGAIN when the pool
 * has no thread and cannot create one. */
int weft__blocking_submit(struct weft__blocking *p,
                          struct weft__blocking_job *job);

/*
 * Runs fn(arg) on the pool from the calling task (flags: WEFT__JOB_*) and
 * returns its status, as weft_blocking does (weft.h), which it implements.
 */
int weft__blocking_call(int (*fn)(void *), void *arg, unsigned flags,
                        const void *where);

/* Takes job out of the queue: true if it had not started (it never will). */
bool weft__blocking_withdraw(struct weft__blocking *p,
                             struct weft__blocking_job *job);

void weft__blocking_stats(struct weft__blocking *p,
                          struct weft__blocking_stats *out);

#endif
