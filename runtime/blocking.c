/*
 * The blocking pool and weft_blocking(); see blocking.h for the model.
 *
 * Thread accounting. A submitter that queues a job makes sure some thread
 * will take it: an idle thread is signalled if there are more idle threads
 * than queued jobs, otherwise a new thread is created (below the limit), and
 * at the limit the job waits for a busy thread to come back to the queue.
 * A thread that has been idle for the keepalive retires.
 *
 * Joining retired threads. Nothing may be left behind at shutdown, yet a
 * retiring thread cannot join itself. Each retiring thread records itself as
 * the pool's zombie and joins the previous zombie, which has already left
 * the pool and is only returning from its start function. So at most one
 * thread is unjoined at any time, and stop() joins it after the count of
 * live threads reaches zero; joining it also proves, transitively, that
 * every earlier one is gone.
 *
 * Cancellation. The job record lives on the waiting task's stack, so the
 * task may return only once no pool thread can touch the record: either it
 * withdrew the job while it was still queued (under the pool lock), or the
 * job reached DONE. A job that is running therefore cannot be abandoned:
 * the task waits for it and keeps its cancellation pending for its next
 * suspension point. Unlike a thread, a running C function cannot be
 * interrupted safely.
 */
#include "blocking.h"

#include <errno.h>
#include <time.h>

#include "runtime.h"
#include "signal.h"
#include "task.h"
#include "worker.h"

int weft__blocking_init(struct weft__blocking *p, unsigned max_threads,
                        unsigned keepalive_ms)
{
    pthread_condattr_t attr;
    int ret;

    p->max_threads = max_threads;
    p->slow_max = (max_threads + 1) / 2;
    p->keepalive_ns = (int64_t)keepalive_ms * WEFT__NS_PER_MS;
    ret = -pthread_condattr_init(&attr);
    ret = ret ?: -pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    ret = ret ?: -pthread_cond_init(&p->work, &attr);
    pthread_condattr_destroy(&attr);
    if (ret)
        return ret;
    pthread_cond_init(&p->gone, NULL);
    pthread_mutex_init(&p->lock, NULL);
    return 0;
}

void weft__blocking_fini(struct weft__blocking *p)
{
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->gone);
}

/* ---- the queue (under lock) ---------------------------------------------- */

static void append(struct weft__blocking *p, struct weft__blocking_job *job)
{
    job->next = NULL;
    if (p->tail)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    p->nqueued++;
}

static bool unlink_job(struct weft__blocking *p,
                       struct weft__blocking_job *job);

/* The first queued job that may run: slow ones wait while slow_max run. */
static struct weft__blocking_job *pop(struct weft__blocking *p)
{
    struct weft__blocking_job *job = p->head;
    bool slow_full = p->nslow >= p->slow_max;

    while (job && slow_full && (job->flags & WEFT__JOB_SLOW))
        job = job->next;
    if (!job)
        return NULL;
    unlink_job(p, job);
    if (job->flags & WEFT__JOB_SLOW)
        p->nslow++;
    /* Relaxed: withdraw() reads it under the same lock. */
    atomic_store_explicit(&job->state, JOB_RUNNING, memory_order_relaxed);
    return job;
}

static bool unlink_job(struct weft__blocking *p,
                       struct weft__blocking_job *job)
{
    struct weft__blocking_job *prev = NULL;

    for (struct weft__blocking_job *j = p->head; j; prev = j, j = j->next) {
        if (j != job)
            continue;
        if (prev)
            prev->next = j->next;
        else
            p->head = j->next;
        if (p->tail == j)
            p->tail = prev;
        p->nqueued--;
        return true;
    }
    return false;
}

/* ---- pool threads -------------------------------------------------------- */

static struct timespec keepalive_end(const struct weft__blocking *p)
{
    int64_t end = weft__now() + p->keepalive_ns;

    return (struct timespec){ .tv_sec = end / WEFT__NS_PER_SEC,
                              .tv_nsec = end % WEFT__NS_PER_SEC };
}

/* Under lock: the next job, after waiting up to the keepalive for one;
 * NULL when the thread should exit. */
static struct weft__blocking_job *next_job(struct weft__blocking *p)
{
    struct timespec end = keepalive_end(p);
    int ret = 0;

    struct weft__blocking_job *job;

    while (!(job = pop(p)) && !p->stopping && ret != ETIMEDOUT) {
        p->nidle++;
        ret = pthread_cond_timedwait(&p->work, &p->lock, &end);
        p->nidle--;
    }
    return job;
}

static void run_job(struct weft__blocking_job *job)
{
    struct weft_task *t = job->task;
    int result = job->fn(job->arg);

    if (job->finish) {
        job->finish(job, result);
        return;
    }
    job->result = result;
    /* release: pairs with the acquire in job_done(). After this store the
     * job's frame may be gone, hence t was read before. */
    atomic_store_explicit(&job->state, JOB_DONE, memory_order_release);
    weft__task_wake(t);
}

/* Called with the lock held; releases it. See "Joining retired threads". */
static void retire(struct weft__blocking *p)
{
    pthread_t prev = p->zombie;
    bool had_zombie = p->has_zombie;

    p->zombie = pthread_self();
    p->has_zombie = true;
    if (--p->nthreads == 0)
        pthread_cond_broadcast(&p->gone);
    pthread_mutex_unlock(&p->lock);
    if (had_zombie)
        pthread_join(prev, NULL);
}

static void *pool_main(void *arg)
{
    struct weft__blocking *p = arg;
    struct weft__blocking_job *job;

    pthread_setname_np(pthread_self(), "weft-blocking");
    pthread_mutex_lock(&p->lock);
    while ((job = next_job(p))) {
        /* Read before the run: the job may be gone after it. */
        bool slow = job->flags & WEFT__JOB_SLOW;

        pthread_mutex_unlock(&p->lock);
        run_job(job);
        pthread_mutex_lock(&p->lock);
        /* A slow job passed over may run now: if this thread takes another
         * job, an idle one must take it. */
        if (slow && p->nslow-- == p->slow_max && p->nidle)
            pthread_cond_signal(&p->work);
    }
    retire(p);
    return NULL;
}

/* Starts the thread counted in nthreads by submit; on failure, takes the
 * job back if no thread is left to run it. */
static int add_thread(struct weft__blocking *p, struct weft__blocking_job *job)
{
    pthread_t thread;
    int ret = weft__signal_create_thread(&thread, pool_main, p);
    bool orphaned = false;

    if (ret == 0)
        return 0;
    pthread_mutex_lock(&p->lock);
    if (--p->nthreads == 0) {
        orphaned = unlink_job(p, job);
        pthread_cond_broadcast(&p->gone);
    }
    pthread_mutex_unlock(&p->lock);
    return orphaned ? -EAGAIN : 0;
}

int weft__blocking_submit(struct weft__blocking *p,
                          struct weft__blocking_job *job)
{
    bool spawn;

    pthread_mutex_lock(&p->lock);
    append(p, job);
    /* Each idle thread is already promised to one queued job. */
    spawn = p->nqueued > p->nidle && p->nthreads < p->max_threads;
    if (spawn && ++p->nthreads > p->peak)
        p->peak = p->nthreads;
    if (!spawn && p->nidle)
        pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
    return spawn ? add_thread(p, job) : 0;
}

bool weft__blocking_withdraw(struct weft__blocking *p,
                             struct weft__blocking_job *job)
{
    bool queued;

    pthread_mutex_lock(&p->lock);
    queued = atomic_load_explicit(&job->state, memory_order_relaxed) ==
             JOB_QUEUED;
    if (queued)
        unlink_job(p, job);
    pthread_mutex_unlock(&p->lock);
    return queued;
}

void weft__blocking_stop(struct weft__blocking *p)
{
    bool had_zombie;

    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->work);
    while (p->nthreads)
        pthread_cond_wait(&p->gone, &p->lock);
    had_zombie = p->has_zombie;
    p->has_zombie = false;
    pthread_mutex_unlock(&p->lock);
    if (had_zombie)
        pthread_join(p->zombie, NULL);
}

void weft__blocking_stats(struct weft__blocking *p,
                          struct weft__blocking_stats *out)
{
    pthread_mutex_lock(&p->lock);
    *out = (struct weft__blocking_stats){ .threads = p->nthreads,
                                          .idle = p->nidle,
                                          .queued = p->nqueued,
                                          .peak = p->peak };
    pthread_mutex_unlock(&p->lock);
}

/* ---- weft_blocking ------------------------------------------------------- */

static bool job_done(void *arg)
{
    struct weft__blocking_job *job = arg;

    /* acquire: pairs with the release in run_job(). */
    return atomic_load_explicit(&job->state, memory_order_acquire) ==
           JOB_DONE;
}

/* The job is running: wait for it whatever happens, and hand a
 * cancellation that arrives meanwhile to the next suspension point. */
static int finish_job(struct weft_task *t, struct weft__blocking_job *job,
                      bool cancelled, const void *where)
{
    while (weft__task_block(t, job_done, job, WEFT_NO_DEADLINE, WHY_BLOCKING,
                            where) == -ECANCELED)
        cancelled = true;
    if (cancelled)
        weft__task_restore_cancel(t);
    return job->result;
}

int weft_blocking(int (*fn)(void *), void *arg)
{
    return weft__blocking_call(fn, arg, 0, WEFT__WHERE);
}

int weft__blocking_call(int (*fn)(void *), void *arg, unsigned flags,
                        const void *where)
{
    struct weft_task *t = weft__task_current();
    struct weft__blocking_job job = { .fn = fn, .arg = arg, .task = t,
                                      .flags = flags };
    struct weft__blocking *p;
    int ret;

    if (!t)
        return -EPERM;
    if (!fn)
        return -EINVAL;
    p = &t->rt->pool;
    atomic_init(&job.state, JOB_QUEUED);
    ret = weft__blocking_submit(p, &job);
    if (ret)
        return ret;
    ret = weft__task_block(t, job_done, &job, t->scope_deadline,
                           WHY_BLOCKING, where);
    if (ret == 0)
        return job.result;
    if (weft__blocking_withdraw(p, &job))
        return ret;
    return finish_job(t, &job, ret == -ECANCELED, where);
}

int weft_block_in_place(int (*fn)(void *), void *arg)
{
    struct worker *w;
    int ret;

    if (!weft__task_current())
        return -EPERM;
    if (!fn)
        return -EINVAL;
    weft__worker_hand_off(weft__worker_current());
    ret = fn(arg);
    /* fn may have suspended and moved the task: the worker it is on now
     * takes its duties back if they were handed over (enter reclaims). */
    w = weft__worker_current();
    weft__worker_enter(w);
    weft__worker_leave(w);
    return ret;
}
