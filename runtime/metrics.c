/*
 * weft_metrics: sums the workers' own counters (see metrics.h) and reads
 * the gauges of the shared structures; weft_metrics_format writes them in
 * Prometheus' text format.
 */
#include "metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "runq.h"
#include "runtime.h"
#include "task.h"
#include "worker.h"

/* ---- counting ------------------------------------------------------------ */

__thread struct worker *weft__metrics_worker
    __attribute__((tls_model("initial-exec")));

__attribute__((cold, noinline)) struct worker *weft__metrics_wake_remote(
    struct worker *w, struct weft_task *t)
{
    /* Beside the injection queue's lock that follows, one more RMW is
     * noise. */
    uint64_t n = atomic_fetch_add_explicit(&t->rt->shared.wakes, 1,
                                           memory_order_relaxed) + 1;

    if (n % WEFT__WAKE_SAMPLE == 0)
        weft__metrics_time_wake(w, t);
    return w;
}

__attribute__((cold, noinline)) struct worker *weft__metrics_time_wake(
    struct worker *w, struct weft_task *t)
{
    /* 0 means "not sampled": a clock that reads 0 loses one sample. */
    t->woke_at = weft__now();
    return w;
}

__attribute__((cold, noinline)) void weft__metrics_woken(struct worker *w,
                                                         struct weft_task *t)
{
    int64_t delay = weft__now() - t->woke_at;

    t->woke_at = 0;
    weft__count(&w->stats.delay_hist[weft__hist_bucket(delay)]);
}

void weft__metrics_ran(struct worker *w, int64_t ran)
{
    weft__count(&w->stats.run_hist[weft__hist_bucket(ran)]);
    w->timed = w->rt->cfg.debug;
}


/* ---- reading ------------------------------------------------------------- */

static uint64_t load(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static uint32_t timers_armed(struct worker *w)
{
    uint32_t n;

    weft__spin_lock(&w->timers.lock);
    n = w->timers.n;
    weft__spin_unlock(&w->timers.lock);
    return n;
}

/* Runs are not counted one by one: the worker's countdown to its next
 * poll, reloaded every WEFT__POLL_INTERVAL runs, tells them (worker.c).
 * The reload count is stored after the reload, with release, and loaded
 * first, with acquire: a reader between the two stores sees the new
 * countdown with the old count, a whole interval short, never more than
 * the truth. The most any reader saw is kept, so that the counter never
 * goes back (Prometheus would take that for a restart). */
static uint64_t runs_of(struct worker *w)
{
    /* acquire: pairs with the release in weft__metrics_poll(). */
    uint64_t polls = atomic_load_explicit(&w->stats.polls,
                                          memory_order_acquire);
    uint32_t left = atomic_load_explicit(&w->until_poll,
                                         memory_order_relaxed);
    uint64_t runs = polls * WEFT__POLL_INTERVAL;
    uint64_t seen = load(&w->stats.runs_read);

    runs = runs > left ? runs - left : 0;
    while (runs > seen &&
           !atomic_compare_exchange_weak_explicit(&w->stats.runs_read, &seen,
                                                  runs, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
    return runs > seen ? runs : seen;
}

static void read_worker(struct worker *w, weft_worker_metrics_t *out)
{
    struct worker_stats *st = &w->stats;
    uint32_t depth = weft__runq_len(&w->runq);

    *out = (weft_worker_metrics_t){
        .spawned = load(&st->spawned),
        .finished = load(&st->finished),
        .runs = runs_of(w),
        .steals = load(&st->steals),
        .parks = load(&st->parks),
        .wakes = load(&st->wakes),
        .io_submitted = load(&st->io_submitted),
        .io_completed = load(&st->io_completed),
        .kernel_entries = load(&st->kernel_entries),
        /* The two ends are read apart: never more than the queue holds. */
        .run_queue_depth = depth > WEFT_RUNQ_CAP ? WEFT_RUNQ_CAP : depth,
        .timers_armed = timers_armed(w),
        .in_task = !weft__worker_in_runtime(w),
        .parked = atomic_load_explicit(&w->parked, memory_order_relaxed),
    };
}

static void add_worker(weft_metrics_t *m, const weft_worker_metrics_t *x)
{
    m->tasks_spawned += x->spawned;
    m->tasks_finished += x->finished;
    m->runs += x->runs;
    m->steals += x->steals;
    m->parks += x->parks;
    m->wakes_local += x->wakes;
    m->io_submitted += x->io_submitted;
    m->io_completed += x->io_completed;
    m->kernel_entries += x->kernel_entries;
    m->run_queue_depth += x->run_queue_depth;
    m->timers_armed += x->timers_armed;
}

static void add_hists(weft_metrics_t *m, struct worker_stats *st)
{
    for (unsigned i = 0; i < WEFT_METRICS_BUCKETS; i++) {
        m->sched_delay_hist[i] += load(&st->delay_hist[i]);
        m->run_time_hist[i] += load(&st->run_hist[i]);
    }
}

/* Copies worker i's share into the caller's array, whose entries may be
 * of an older (smaller) or newer (larger) layout. */
static void put_worker(weft_metrics_t *m, unsigned i,
                       const weft_worker_metrics_t *x)
{
    size_t n = m->per_worker_size < sizeof(*x) ? m->per_worker_size
                                                : sizeof(*x);

    memcpy((char *)m->per_worker + (size_t)i * m->per_worker_size, x, n);
}

static void read_shared(struct runtime *rt, weft_metrics_t *m)
{
    struct weft__blocking_stats bs;
    struct weft__stack_stats ss;

    m->tasks_spawned += load(&rt->shared.spawned);
    m->tasks_finished += load(&rt->shared.finished);
    m->wakes_remote = load(&rt->shared.wakes);
    m->io_completed += load(&rt->shared.io_completed);
    m->injection_queue_depth = weft__inject_len(&rt->inject);
    weft__blocking_stats(&rt->pool, &bs);
    m->blocking_idle = bs.idle;
    m->blocking_busy = bs.threads - bs.idle;
    m->blocking_queued = bs.queued;
    weft__stack_pool_stats(&rt->stacks, &ss);
    m->stacks_mapped = ss.stacks;
    m->stacks_pooled = ss.pooled;
    m->stalls = load(&rt->monitor.stalls);
}

/* Reads the workers' counters before the shared ones: a task spawned from
 * another thread and finished on a worker is then never counted finished
 * and not spawned (alive never wraps below zero, save for the moment's
 * view the comment in weft.h admits). */
static int read_metrics(struct runtime *rt, void *arg)
{
    weft_metrics_t *m = arg;
    weft_worker_metrics_t x;
    unsigned filled = 0;

    m->workers = rt->nworkers;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        read_worker(rt->workers[i], &x);
        add_worker(m, &x);
        add_hists(m, &rt->workers[i]->stats);
        if (m->per_worker && i < m->per_worker_len) {
            put_worker(m, i, &x);
            filled++;
        }
    }
    m->per_worker_len = filled;
    read_shared(rt, m);
    m->tasks_alive = m->tasks_spawned > m->tasks_finished
                         ? m->tasks_spawned - m->tasks_finished : 0;
    m->io_in_flight = m->io_submitted > m->io_completed
                          ? m->io_submitted - m->io_completed : 0;
    return 0;
}

int weft_metrics(weft_runtime_t *h, weft_metrics_t *out)
{
    weft_metrics_t m = { 0 };
    size_t n;
    int ret;

    if (!out || out->size < offsetof(weft_metrics_t, sched_delay_hist))
        return -EINVAL;
    n = out->size < sizeof(m) ? out->size : sizeof(m);
    /* The inputs count only if the caller's layout has them. */
    if (n >= offsetof(weft_metrics_t, per_worker_size) + sizeof(size_t)) {
        m.per_worker = out->per_worker;
        m.per_worker_len = out->per_worker_len;
        m.per_worker_size = out->per_worker_size;
        if (m.per_worker && !m.per_worker_size)
            return -EINVAL;
    }
    ret = weft__runtime_call(h, read_metrics, &m);
    if (ret < 0)
        return ret;
    m.size = out->size;
    memcpy(out, &m, n);
    return 0;
}

/* ---- Prometheus text ----------------------------------------------------- */

struct text {
    char *buf;
    size_t len, used;
    bool full;
};

/* Appends a line, or nothing if it does not fit whole. */
static void line(struct text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->full)
        return;
    va_start(ap, fmt);
    n = vsnprintf(t->buf + t->used, t->len - t->used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= t->len - t->used) {
        t->buf[t->used] = '\0';
        t->full = true;
        return;
    }
    t->used += (size_t)n;
}

static void metric(struct text *t, const char *name, const char *type,
                   const char *help, uint64_t v)
{
    line(t, "# HELP weft_%s %s\n# TYPE weft_%s %s\nweft_%s %llu\n", name,
         help, name, type, name, (unsigned long long)v);
}

static void histogram(struct text *t, const char *name, const char *help,
                      const uint64_t *b)
{
    uint64_t sum = 0;

    line(t, "# HELP weft_%s %s\n# TYPE weft_%s histogram\n", name, help,
         name);
    for (unsigned i = 0; i + 1 < WEFT_METRICS_BUCKETS; i++) {
        sum += b[i];
        line(t, "weft_%s_bucket{le=\"%.9f\"} %llu\n", name,
             (double)WEFT_METRICS_BUCKET_NS(i) / 1e9, (unsigned long long)sum);
    }
    sum += b[WEFT_METRICS_BUCKETS - 1];
    /* Only the buckets are known, not the durations: no _sum. */
    line(t, "weft_%s_bucket{le=\"+Inf\"} %llu\nweft_%s_count %llu\n", name,
         (unsigned long long)sum, name, (unsigned long long)sum);
}

/* The entry i of m's per-worker array, in the caller's layout. */
static const weft_worker_metrics_t *worker_at(const weft_metrics_t *m,
                                              unsigned i,
                                              weft_worker_metrics_t *tmp)
{
    size_t n = m->per_worker_size < sizeof(*tmp) ? m->per_worker_size
                                                  : sizeof(*tmp);

    memset(tmp, 0, sizeof(*tmp));
    memcpy(tmp, (const char *)m->per_worker + (size_t)i * m->per_worker_size,
           n);
    return tmp;
}

#define PER_WORKER(field, name, type, help)                                 \
    do {                                                                    \
        line(t, "# HELP weft_worker_%s %s\n# TYPE weft_worker_%s %s\n",     \
             name, help, name, type);                                       \
        for (unsigned i = 0; i < m->per_worker_len; i++)                    \
            line(t, "weft_worker_%s{worker=\"%u\"} %llu\n", name, i,        \
                 (unsigned long long)worker_at(m, i, &x)->field);           \
    } while (0)

static void per_worker(struct text *t, const weft_metrics_t *m)
{
    weft_worker_metrics_t x;

    if (!m->per_worker || !m->per_worker_len || !m->per_worker_size)
        return;
    PER_WORKER(runs, "runs_total", "counter", "Task resumptions.");
    PER_WORKER(steals, "steals_total", "counter", "Batches stolen.");
    PER_WORKER(parks, "parks_total", "counter", "Times it went to sleep.");
    PER_WORKER(io_submitted, "io_submitted_total", "counter",
               "I/O operations submitted.");
    PER_WORKER(kernel_entries, "kernel_entries_total", "counter",
               "System calls of its I/O backend.");
    PER_WORKER(run_queue_depth, "run_queue_depth", "gauge",
               "Tasks in its run queue.");
    PER_WORKER(timers_armed, "timers_armed", "gauge", "Timers in its heap.");
}

int weft_metrics_format(const weft_metrics_t *m, char *buf, size_t len)
{
    struct text t = { .buf = buf, .len = len };

    if (!m || !buf || !len ||
        m->size < offsetof(weft_metrics_t, per_worker_size) + sizeof(size_t))
        return -EINVAL;
    buf[0] = '\0';
    metric(&t, "workers", "gauge", "Worker threads.", m->workers);
    metric(&t, "tasks_spawned_total", "counter", "Tasks spawned.",
           m->tasks_spawned);
    metric(&t, "tasks_finished_total", "counter", "Tasks that ended.",
           m->tasks_finished);
    metric(&t, "tasks_alive", "gauge", "Tasks spawned and not ended.",
           m->tasks_alive);
    metric(&t, "runs_total", "counter", "Task resumptions.", m->runs);
    metric(&t, "steals_total", "counter", "Batches stolen between workers.",
           m->steals);
    metric(&t, "parks_total", "counter", "Workers going to sleep.", m->parks);
    metric(&t, "wakes_local_total", "counter", "Tasks woken from a worker.",
           m->wakes_local);
    metric(&t, "wakes_remote_total", "counter",
           "Tasks woken from other threads.", m->wakes_remote);
    metric(&t, "run_queue_depth", "gauge", "Tasks in workers' run queues.",
           m->run_queue_depth);
    metric(&t, "injection_queue_depth", "gauge",
           "Tasks in the shared queue.", m->injection_queue_depth);
    metric(&t, "timers_armed", "gauge", "Deadlines being waited for.",
           m->timers_armed);
    metric(&t, "io_submitted_total", "counter", "I/O operations submitted.",
           m->io_submitted);
    metric(&t, "io_completed_total", "counter", "I/O operations completed.",
           m->io_completed);
    metric(&t, "io_in_flight", "gauge", "I/O operations in flight.",
           m->io_in_flight);
    metric(&t, "kernel_entries_total", "counter",
           "Waits and submits of the I/O backends.", m->kernel_entries);
    metric(&t, "blocking_threads_busy", "gauge",
           "Blocking-pool threads running a job.", m->blocking_busy);
    metric(&t, "blocking_threads_idle", "gauge",
           "Blocking-pool threads waiting.", m->blocking_idle);
    metric(&t, "blocking_jobs_queued", "gauge",
           "Jobs waiting for a blocking-pool thread.", m->blocking_queued);
    metric(&t, "stacks_mapped", "gauge", "Task stacks mapped.",
           m->stacks_mapped);
    metric(&t, "stacks_pooled", "gauge", "Task stacks free in the pool.",
           m->stacks_pooled);
    metric(&t, "stalls_total", "counter", "Workers found stuck in a task.",
           m->stalls);
    histogram(&t, "sched_delay_seconds",
              "Delay from a wake to the run it caused (sampled).",
              m->sched_delay_hist);
    histogram(&t, "run_time_seconds",
              "Length of a run until the task suspends (sampled).",
              m->run_time_hist);
    per_worker(&t, m);
    return t.full ? -ENOBUFS : (int)t.used;
}
