/*
 * The runtime's life: weft_run starts the workers, runs the main task, then
 * cancels and waits for whatever is still alive, stops the workers and frees
 * everything. Also the shared pieces workers use: the idle-set wake
 * (notify_work; the protocol is argued in worker.c) and the task registry.
 */
#include "runtime.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../io/backend.h"
#include "mem.h"
#include "overflow.h"
#include "sanitizer.h"
#include "task.h"
#include "worker.h"

int64_t weft__now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * WEFT_NS_PER_SEC + ts.tv_nsec;
}

int64_t weft_now_ns(void)
{
    return weft__now();
}

_Noreturn void weft__panic(const char *fmt, ...)
{
    va_list ap;

    fputs("weft: internal error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

int weft_worker_id(void)
{
    struct worker *w = weft__worker_current();

    return w ? (int)w->index : -1;
}

struct weft__io *weft__io_current(const struct weft__io_ops **ops)
{
    struct worker *w = weft__worker_current();

    if (!w)
        return NULL;
    *ops = w->rt->io_ops;
    return w->io;
}

void weft__runtime_notify_work(struct runtime *rt)
{
    struct idle *idle = &rt->idle;
    struct worker *w;

    /* seq_cst: pairs with the fence in idle() (worker.c). */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&idle->nsearching, memory_order_relaxed) ||
        !atomic_load_explicit(&idle->nidle, memory_order_relaxed))
        return;
    pthread_mutex_lock(&idle->lock);
    if (idle->nsleepers == 0) {
        pthread_mutex_unlock(&idle->lock);
        return;
    }
    w = rt->workers[idle->sleepers[--idle->nsleepers]];
    atomic_store_explicit(&idle->nidle, idle->nsleepers, memory_order_seq_cst);
    atomic_fetch_add_explicit(&idle->nsearching, 1, memory_order_seq_cst);
    w->woken_as_searcher = true;
    pthread_mutex_unlock(&idle->lock);
    rt->io_ops->wake(w->io);
}

void weft__runtime_register(struct runtime *rt, struct weft_task *t)
{
    pthread_mutex_lock(&rt->reg_lock);
    t->all_next = rt->registry;
    rt->registry = t;
    pthread_mutex_unlock(&rt->reg_lock);
}

static bool is_live(struct weft_task *t)
{
    uint32_t s = atomic_load_explicit(&t->state, memory_order_acquire);

    return s != TASK_FREE && s != TASK_DONE;
}

unsigned weft__runtime_cancel_all(struct runtime *rt, struct weft_task *self)
{
    unsigned live = 0;

    pthread_mutex_lock(&rt->reg_lock);
    for (struct weft_task *t = rt->registry; t; t = t->all_next) {
        if (t == self || !is_live(t))
            continue;
        live++;
        if (!atomic_exchange_explicit(&t->shutdown_seen, true,
                                      memory_order_relaxed))
            weft_cancel(t);
    }
    pthread_mutex_unlock(&rt->reg_lock);
    return live;
}

static const char *why_name(uint8_t why)
{
    static const char *const names[] = {
        "running", "yield", "sleep", "join", "io", "sync", "queue",
        "future", "blocking", "signal",
    };

    return why < sizeof(names) / sizeof(names[0]) ? names[why] : "?";
}

void weft__runtime_dump(struct runtime *rt, const char *why)
{
    pthread_mutex_lock(&rt->reg_lock);
    fprintf(stderr, "weft: task dump (%s)\n", why);
    for (struct weft_task *t = rt->registry; t; t = t->all_next) {
        if (!is_live(t))
            continue;
        fprintf(stderr, "  task '%s' %p: state %u, waiting in %s at %p\n",
                t->name, (void *)t, (unsigned)atomic_load(&t->state),
                why_name(t->why), t->where);
    }
    pthread_mutex_unlock(&rt->reg_lock);
}

/* ---- the main task ------------------------------------------------------- */

struct main_ctx {
    struct runtime *rt;
    weft_fn_t fn;
    void *arg;
};

/* asyncio.run's epilogue: cancel what is left and wait for it to end. */
static void drain(struct runtime *rt, struct weft_task *self)
{
    int64_t start = weft__now();
    bool dumped = false;

    while (weft__runtime_cancel_all(rt, self)) {
        if (rt->cfg.debug && !dumped &&
            weft__now() - start > WEFT_NS_PER_SEC) {
            weft__runtime_dump(rt, "still alive 1 s after shutdown began");
            dumped = true;
        }
        /* Polling only while shutting down; a cancelled task may need a few
         * turns to clean up. */
        weft_sleep_ms(1);
    }
}

static int main_task(void *arg)
{
    struct main_ctx *m = arg;
    struct runtime *rt = m->rt;
    int ret = m->fn(m->arg);

    drain(rt, weft__task_current());
    pthread_mutex_lock(&rt->main_lock);
    rt->main_done = true;
    rt->main_result = ret;
    pthread_cond_signal(&rt->main_cond);
    pthread_mutex_unlock(&rt->main_lock);
    return ret;
}

static int spawn_main(struct runtime *rt, struct main_ctx *m)
{
    struct weft_task *t = weft__zalloc(sizeof(*t));

    if (!t)
        return -ENOMEM;
    weft__spin_init(&t->join_lock);
    t->timer.index = TIMER_UNQUEUED;
    weft__runtime_register(rt, t);
    t->fn = main_task;
    t->arg = m;
    t->rt = rt;
    t->scope_deadline = WEFT_NEVER;
    t->detached_at_spawn = true;
    snprintf(t->name, sizeof(t->name), "main");
    atomic_store(&t->state, TASK_SCHED);
    weft__worker_enqueue(NULL, t, false);
    return 0;
}

/* ---- start and stop ------------------------------------------------------ */

static const struct weft__io_ops *pick_backend(const struct weft__config *c)
{
    const char *why;

    if (c->io == IO_EPOLL)
        return &weft__io_epoll_ops;
    /* Valgrind follows neither io_uring's shared rings nor the kernel's
     * writes into buffers; readiness keeps every byte visible to it. */
    if (san_on_valgrind())
        why = "under Valgrind";
    else if (weft__io_uring_probe())
        return &weft__io_uring_ops;
    else
        why = "io_uring is not available here";
    if (c->debug)
        fprintf(stderr, "weft: %s; using the epoll backend\n", why);
    return &weft__io_epoll_ops;
}

/* asyncio's "Task exception was never retrieved", for handles never joined. */
static void report_unjoined(struct runtime *rt)
{
    for (struct weft_task *t = rt->registry; t; t = t->all_next) {
        uint32_t h = atomic_load(&t->handle);

        if (atomic_load(&t->state) == TASK_DONE && (h & HANDLE_HELD) &&
            t->result < 0 && t->result != -ECANCELED)
            fprintf(stderr, "weft: task '%s' (%p) failed with %d (%s) and "
                            "was never joined\n", t->name, (void *)t,
                    t->result, strerror(-t->result));
    }
}

static void free_runtime(struct runtime *rt)
{
    struct weft_task *t = rt->registry;

    while (t) {
        struct weft_task *next = t->all_next;

        weft__free(t, sizeof(*t));
        t = next;
    }
    for (unsigned i = 0; rt->workers && i < rt->nworkers; i++) {
        struct worker *w = rt->workers[i];

        if (!w)
            continue;
        weft__timers_fini(&w->timers);
        weft__free(w, sizeof(*w));
    }
    weft__free(rt->workers, rt->nworkers * sizeof(*rt->workers));
    weft__free(rt->idle.sleepers, rt->nworkers * sizeof(unsigned));
    weft__stack_pool_fini(&rt->stacks);
    weft__inject_fini(&rt->inject);
    pthread_mutex_destroy(&rt->idle.lock);
    pthread_mutex_destroy(&rt->reg_lock);
    pthread_mutex_destroy(&rt->main_lock);
    pthread_cond_destroy(&rt->main_cond);
    weft__free(rt, sizeof(*rt));
}

static int init_runtime(struct runtime *rt, const weft_config_t *cfg)
{
    int ret = weft__config_resolve(&rt->cfg, cfg);

    if (ret)
        return ret;
    rt->io_ops = pick_backend(&rt->cfg);
    rt->nworkers = rt->cfg.workers;
    pthread_mutex_init(&rt->idle.lock, NULL);
    pthread_mutex_init(&rt->reg_lock, NULL);
    pthread_mutex_init(&rt->main_lock, NULL);
    pthread_cond_init(&rt->main_cond, NULL);
    ret = weft__inject_init(&rt->inject);
    ret = ret ?: weft__stack_pool_init(&rt->stacks, rt->cfg.stack_size);
    if (ret)
        return ret;
    rt->workers = weft__zalloc(rt->nworkers * sizeof(*rt->workers));
    rt->idle.sleepers = weft__zalloc(rt->nworkers * sizeof(unsigned));
    if (!rt->workers || !rt->idle.sleepers)
        return -ENOMEM;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct worker *w = weft__zalloc(sizeof(*w));

        if (!w)
            return -ENOMEM;
        rt->workers[i] = w;
        w->rt = rt;
        w->index = i;
        w->rng = 0x9E3779B9u * (i + 1);
        weft__runq_init(&w->runq);
        ret = weft__timers_init(&w->timers);
        if (ret)
            return ret;
    }
    return 0;
}

/* Starts the threads; on failure the ones started are stopped again. */
static int start_workers(struct runtime *rt)
{
    unsigned started = 0;
    int ret = 0;

    pthread_barrier_init(&rt->start_barrier, NULL, rt->nworkers + 1);
    pthread_barrier_init(&rt->stop_barrier, NULL, rt->nworkers + 1);
    for (; started < rt->nworkers; started++) {
        struct worker *w = rt->workers[started];

        ret = -pthread_create(&w->thread, NULL, weft__worker_main, w);
        if (ret)
            break;
    }
    if (started < rt->nworkers) {
        /* Threads that started wait at the barrier for a full count: they
         * cannot be released; this is fatal for the process. */
        weft__panic("start_workers: pthread_create failed (%d)", ret);
    }
    pthread_barrier_wait(&rt->start_barrier);
    for (unsigned i = 0; i < rt->nworkers; i++)
        ret = ret ?: rt->workers[i]->start_error;
    return ret;
}

static void stop_workers(struct runtime *rt)
{
    atomic_store_explicit(&rt->stopping, true, memory_order_release);
    weft__worker_wake_all(rt);
    pthread_barrier_wait(&rt->stop_barrier);
    for (unsigned i = 0; i < rt->nworkers; i++)
        pthread_join(rt->workers[i]->thread, NULL);
    pthread_barrier_destroy(&rt->start_barrier);
    pthread_barrier_destroy(&rt->stop_barrier);
}

static int wait_main(struct runtime *rt, weft_fn_t fn, void *arg)
{
    struct main_ctx m = { .rt = rt, .fn = fn, .arg = arg };
    int ret = spawn_main(rt, &m);

    if (ret)
        return ret;
    pthread_mutex_lock(&rt->main_lock);
    while (!rt->main_done)
        pthread_cond_wait(&rt->main_cond, &rt->main_lock);
    pthread_mutex_unlock(&rt->main_lock);
    return rt->main_result;
}

int weft_run_with(const weft_config_t *cfg, weft_fn_t fn, void *arg)
{
    struct runtime *rt;
    int ret;

    if (weft__worker_current())
        return -EPERM;
    if (!fn)
        return -EINVAL;
    rt = weft__zalloc(sizeof(*rt));
    if (!rt)
        return -ENOMEM;
    ret = init_runtime(rt, cfg);
    ret = ret ?: weft__overflow_install();
    if (ret) {
        free_runtime(rt);
        return ret;
    }
    ret = start_workers(rt);
    if (!ret)
        ret = wait_main(rt, fn, arg);
    stop_workers(rt);
    if (rt->cfg.debug)
        report_unjoined(rt);
    weft__overflow_uninstall();
    free_runtime(rt);
    return ret;
}

int weft_run(weft_fn_t fn, void *arg)
{
    return weft_run_with(NULL, fn, arg);
}
