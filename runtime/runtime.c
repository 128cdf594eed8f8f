/*
 * The runtime's life: weft_runtime_new starts the workers; block_on runs a
 * function as a task and waits for it; weft_runtime_free cancels and waits
 * for whatever is still alive, stops the signal thread, the blocking pool
 * and the workers, and frees everything. weft_run is the three in a row.
 * Also the shared pieces workers use: the idle-set wake (notify_work; the
 * protocol is argued in worker.c) and the task registry.
 *
 * Threads outside the runtime (the caller of block_on, a callback thread of
 * another library calling weft_spawn_from) hand it tasks through the
 * injection queue, like any wake from outside a worker. Their task structs
 * come from the shared pool of task.c, under reg_lock; they never touch a
 * worker's caches.
 */
#include "runtime.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "driver/backend.h"
#include "dump.h"
#include "mem.h"
#include "metrics.h"
#include "overflow.h"
#include "sanitizer.h"
#include "signal.h"
#include "task.h"
#include "worker.h"

int64_t weft__now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * WEFT__NS_PER_SEC + ts.tv_nsec;
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

/* The backend is a duty a rescuer may hold: a task enters the runtime to
 * use it (see "Stalls" in worker.c). */
int weft__io_submit(struct weft__io_op *op)
{
    struct worker *w = weft__worker_current();
    int ret;

    weft__worker_enter(w);
    ret = w->rt->io_ops->submit(w->io, op);
    if (likely(ret == 0))
        weft__count(&w->stats.io_submitted);
    weft__worker_leave(w);
    return ret;
}

void weft__io_cancel(struct weft__io_op *op)
{
    struct worker *w = weft__worker_current();

    weft__worker_enter(w);
    w->rt->io_ops->cancel(w->io, op);
    weft__worker_leave(w);
}

struct weft__io *weft__io_of(unsigned index)
{
    struct worker *w = weft__worker_current();

    if (!w || index >= w->rt->nworkers)
        return NULL;
    return w->rt->workers[index]->io;
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

/*
 * The registry is a list of task structs through all_next, a block at a
 * time, first struct first; each block also records the block before it
 * (reg_prev), so that one leaves in constant time. Walkers hold reg_lock: a
 * block taken out is out of their sight before task.c hands its pages back.
 */
static struct weft_task *last_of(const struct weft__task_block *b)
{
    return b->first + weft__task_block_len() - 1;
}

void weft__runtime_register(struct runtime *rt, uint32_t i)
{
    struct weft__task_block *b = &rt->tasks.blocks[i];

    last_of(b)->all_next = rt->registry;
    if (rt->registry)
        rt->tasks.blocks[rt->registry->block].reg_prev = i + 1;
    b->reg_prev = 0;
    rt->registry = b->first;
}

void weft__runtime_unregister(struct runtime *rt, uint32_t i)
{
    struct weft__task_block *blocks = rt->tasks.blocks, *b = &blocks[i];
    struct weft_task *next = last_of(b)->all_next;

    if (b->reg_prev)
        last_of(&blocks[b->reg_prev - 1])->all_next = next;
    else
        rt->registry = next;
    if (next)
        blocks[next->block].reg_prev = b->reg_prev;
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
            weft__task_cancel(t);
    }
    pthread_mutex_unlock(&rt->reg_lock);
    return live;
}

/* ---- tasks spawned from outside a worker --------------------------------- */

/* A task struct for a spawn from outside any worker. */
static struct weft_task *alloc_outside(struct runtime *rt)
{
    return weft__task_struct_new(rt);
}

/* Makes t (from alloc_outside) runnable through the injection queue. */
/* on_finish: see struct weft_task; NULL unless a thread waits for t. */
static void start_outside(struct runtime *rt, struct weft_task *t,
                          weft_task_t **out, weft_fn_t fn, void *arg,
                          const char *name,
                          void (*on_finish)(struct weft_task *))
{
    weft_spawn_opts_t opts = { .name = name };

    /* A runtime task whose name could not be copied runs unnamed. */
    (void)weft__task_init(t, rt, fn, arg, &opts, out);
    t->on_finish = on_finish;
    if (out)
        *out = weft__task_handle(t);
    atomic_fetch_add_explicit(&rt->shared.spawned, 1, memory_order_relaxed);
    /* The injection queue's lock publishes t's fields to the worker. */
    weft__worker_enqueue(NULL, t, false);
}

/* ---- runtime handles ----------------------------------------------------- */

/*
 * A runtime handle may be used after weft_runtime_free: another library's
 * thread may call weft_spawn_from on it at any time, even while or after
 * the runtime is freed. So the memory a handle points to is never given
 * back to the allocator: a freed runtime's slot goes to a process-wide
 * free list for the next weft_runtime_new, and the handle value carries the
 * slot's generation in its top 16 bits, as task handles do (task.h).
 *
 * What a stale handle may touch lives as long as the process: `gate`, the
 * lock every spawn from outside takes anyway (no lock is added on that
 * path), and under it the generation and whether the runtime takes spawns.
 * A call whose handle's generation is not the slot's, or whose runtime is
 * shutting down, gets -ESHUTDOWN and touches nothing else. Holding gate
 * while enqueueing makes `open` a clean cut: a spawn either lands before
 * shutdown's drain begins, or fails. The runtime proper (h) is zeroed for
 * each runtime.
 */
struct runtime_slot {
    struct weft_runtime h;
    /* Kept for the process's life. */
    pthread_mutex_t gate;
    uint16_t gen;                   /* under gate; bumped by the free */
    bool open;                      /* under gate: takes spawns */
    struct runtime_slot *next_free; /* under slots_lock */
};

#define RT_TAG_SHIFT 48
#define RT_ADDR_MASK ((UINT64_C(1) << RT_TAG_SHIFT) - 1)

static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static struct runtime_slot *free_slots; /* under slots_lock */

static struct runtime_slot *slot_of(const weft_runtime_t *h)
{
    return (struct runtime_slot *)((uintptr_t)h & RT_ADDR_MASK);
}

static uint16_t tag_of(const weft_runtime_t *h)
{
    return (uint16_t)((uintptr_t)h >> RT_TAG_SHIFT);
}

/* The handle value of s's runtime. gen changes only while no worker of s
 * runs (at start and after the workers are joined), so workers read it
 * without the gate. */
static weft_runtime_t *handle_of(struct runtime_slot *s)
{
    return (weft_runtime_t *)((uintptr_t)s | (uintptr_t)s->gen << RT_TAG_SHIFT);
}

/* A slot with h zeroed: a freed one, else a new one; NULL on ENOMEM. */
static struct runtime_slot *slot_get(void)
{
    struct runtime_slot *s;

    pthread_mutex_lock(&slots_lock);
    s = free_slots;
    if (s)
        free_slots = s->next_free;
    pthread_mutex_unlock(&slots_lock);
    if (s) {
        /* No stale handle reaches h: its gen was bumped before s was
         * listed free. */
        memset(&s->h, 0, sizeof(s->h));
        return s;
    }
    s = weft__zalloc(sizeof(*s));
    if (!s)
        return NULL;
    /* The tag takes the address's top bits. */
    WEFT__ASSERT(((uintptr_t)s & ~RT_ADDR_MASK) == 0);
    pthread_mutex_init(&s->gate, NULL);
    return s;
}

/* Retires s's handle and lists s free. */
static void slot_put(struct runtime_slot *s)
{
    pthread_mutex_lock(&s->gate);
    s->open = false;
    s->gen++;
    pthread_mutex_unlock(&s->gate);
    pthread_mutex_lock(&slots_lock);
    s->next_free = free_slots;
    free_slots = s;
    pthread_mutex_unlock(&slots_lock);
}

/* Sets whether s's runtime takes spawns, if h is its live handle: 0, or
 * -ESHUTDOWN (h is stale, or its runtime was already closed). */
static int slot_set_open(struct runtime_slot *s, const weft_runtime_t *h,
                         bool open)
{
    int ret = 0;

    pthread_mutex_lock(&s->gate);
    if (s->gen == tag_of(h) && s->open != open)
        s->open = open;
    else
        ret = -ESHUTDOWN;
    pthread_mutex_unlock(&s->gate);
    return ret;
}

struct runtime *weft__runtime_of(const weft_runtime_t *h)
{
    return &slot_of(h)->h.rt;
}

bool weft__runtime_is_open(const weft_runtime_t *h)
{
    struct runtime_slot *s = slot_of(h);
    bool open;

    pthread_mutex_lock(&s->gate);
    open = s->gen == tag_of(h) && s->open;
    pthread_mutex_unlock(&s->gate);
    return open;
}

static int spawn_outside(struct runtime_slot *s, const weft_runtime_t *h,
                         weft_task_t **out, weft_fn_t fn, void *arg,
                         const char *name,
                         void (*on_finish)(struct weft_task *))
{
    struct weft_task *t = NULL;
    int ret = 0;

    pthread_mutex_lock(&s->gate);
    if (s->gen != tag_of(h) || !s->open)
        ret = -ESHUTDOWN;
    else if (!(t = alloc_outside(&s->h.rt)))
        ret = -ENOMEM;
    else
        start_outside(&s->h.rt, t, out, fn, arg, name, on_finish);
    pthread_mutex_unlock(&s->gate);
    return ret;
}

int weft_spawn_from(weft_runtime_t *h, weft_task_t **out, weft_fn_t fn,
                    void *arg)
{
    if (!h || !fn)
        return -EINVAL;
    return spawn_outside(slot_of(h), h, out, fn, arg, NULL, NULL);
}

int weft__runtime_call(const weft_runtime_t *h,
                       int (*fn)(struct runtime *rt, void *arg), void *arg)
{
    struct worker *w = weft__worker_current();
    struct runtime_slot *s = slot_of(h);
    int ret;

    if (!h)
        return w ? fn(w->rt, arg) : -EPERM;
    pthread_mutex_lock(&s->gate);
    ret = s->gen == tag_of(h) && s->open ? fn(&s->h.rt, arg) : -ESHUTDOWN;
    pthread_mutex_unlock(&s->gate);
    return ret;
}

weft_runtime_t *weft_runtime_current(void)
{
    struct worker *w = weft__worker_current();

    return w ? handle_of(container_of(w->rt, struct runtime_slot, h.rt))
             : NULL;
}

/* ---- calls from outside: block_on and the shutdown drain ----------------- */

/* A function run as a task for a thread outside the runtime that waits for
 * it. Lives on the waiting thread's stack. */
struct call {
    struct runtime *rt;
    weft_fn_t fn;
    void *arg;
    int result;
    bool done;   /* under rt->done_lock */
};

static int call_task(void *arg)
{
    struct call *c = arg;

    return c->fn(c->arg);
}

/* The call task's finish hook: it runs even if the task never started (no
 * stack to be had, say), so the waiting thread always hears back. */
static void call_finished(struct weft_task *t)
{
    struct call *c = t->arg;
    struct runtime *rt = c->rt;

    /* The lock and condition belong to the runtime, not to c: the waiter
     * may return and pop c's frame as soon as the lock is released. */
    pthread_mutex_lock(&rt->done_lock);
    c->result = t->result;
    c->done = true;
    pthread_cond_broadcast(&rt->done_cond);
    pthread_mutex_unlock(&rt->done_lock);
}

static int wait_call(struct call *c)
{
    pthread_mutex_lock(&c->rt->done_lock);
    while (!c->done)
        pthread_cond_wait(&c->rt->done_cond, &c->rt->done_lock);
    pthread_mutex_unlock(&c->rt->done_lock);
    return c->result;
}

int weft_runtime_block_on(weft_runtime_t *h, weft_fn_t fn, void *arg)
{
    struct runtime_slot *s = slot_of(h);
    struct call c = { .fn = fn, .arg = arg };
    int ret;

    if (weft__worker_current())
        return -EPERM;
    if (!h || !fn)
        return -EINVAL;
    c.rt = &s->h.rt;
    ret = spawn_outside(s, h, NULL, call_task, &c, "main", call_finished);
    return ret ? ret : wait_call(&c);
}

/* asyncio.run's epilogue: cancel what is left and wait for it to end. */
static void drain(struct runtime *rt, struct weft_task *self)
{
    int64_t start = weft__now();
    bool dumped = false;

    while (weft__runtime_cancel_all(rt, self)) {
        if (rt->cfg.debug && !dumped &&
            weft__now() - start > WEFT__NS_PER_SEC) {
            weft__dump(rt, STDERR_FILENO,
                       "still alive 1 s after shutdown began");
            dumped = true;
        }
        /* Polling only while shutting down; a cancelled task may need a few
         * turns to clean up. */
        weft_sleep_ms(1);
    }
}

static int drain_task(void *arg)
{
    drain(arg, weft__task_current());
    return 0;
}

/* Drains on the preallocated drainer task, so that shutdown cannot fail;
 * the door to spawns from outside is closed already. */
static void drain_outside(struct runtime *rt)
{
    struct call c = { .rt = rt, .fn = drain_task, .arg = rt };

    start_outside(rt, rt->drainer, NULL, call_task, &c, "shutdown",
                  call_finished);
    wait_call(&c);
}

/* ---- start and stop ------------------------------------------------------ */

/*
 * The backend: epoll if asked for; otherwise io_uring if it works here end
 * to end. When it does not, a runtime that left the choice to weft falls
 * back to epoll, and one that asked for io_uring fails: a silent fallback
 * would pass an epoll run off as an io_uring one (a benchmark, a test of
 * the io_uring path).
 */
static int pick_backend(struct runtime *rt)
{
    const struct weft__config *c = &rt->cfg;
    const char *step = "?";
    int ret;

    rt->io_ops = &weft__io_epoll_ops;
    if (c->io == IO_EPOLL)
        return 0;
    /* Valgrind follows neither io_uring's shared rings nor the kernel's
     * writes into buffers; readiness keeps every byte visible to it. */
    if (san_on_valgrind()) {
        if (c->debug)
            fprintf(stderr, "weft: under Valgrind; using the epoll backend\n");
        return 0;
    }
    ret = weft__io_uring_probe(c, &step);
    if (ret == 0) {
        rt->io_ops = &weft__io_uring_ops;
        return 0;
    }
    if (c->io == IO_URING) {
        fprintf(stderr, "weft: io_uring was asked for (WEFT_IO or config.io) "
                        "but cannot be used here: %s failed: %s\n",
                step, strerror(-ret));
        return -EOPNOTSUPP;
    }
    if (c->debug)
        fprintf(stderr, "weft: io_uring cannot be used here (%s failed: %s); "
                        "using the epoll backend\n", step, strerror(-ret));
    return 0;
}

/* asyncio's "Task exception was never retrieved", for handles never joined. */
static void report_unjoined(struct runtime *rt)
{
    for (struct weft_task *t = rt->registry; t; t = t->all_next) {
        uint32_t h = atomic_load(&t->handle);

        if (atomic_load(&t->state) == TASK_DONE && (h & HANDLE_HELD))
            weft__task_report_failure(t, "was never joined");
    }
}

static void free_workers(struct runtime *rt)
{
    for (unsigned i = 0; rt->workers && i < rt->nworkers; i++) {
        struct worker *w = rt->workers[i];

        if (!w)
            continue;
        weft__timers_fini(&w->timers);
        weft__free(w, sizeof(*w));
    }
    weft__free(rt->workers, rt->nworkers * sizeof(*rt->workers));
    weft__free(rt->idle.sleepers, rt->nworkers * sizeof(unsigned));
}

static void free_runtime(struct runtime *rt)
{
    for (struct weft_task *t = rt->registry; t; t = t->all_next)
        weft__task_drop_name(t);
    weft__task_arena_fini(&rt->tasks);
    free_workers(rt);
    weft__stack_pool_fini(&rt->stacks);
    weft__inject_fini(&rt->inject);
    weft__blocking_fini(&rt->pool);
    pthread_mutex_destroy(&rt->idle.lock);
    pthread_mutex_destroy(&rt->reg_lock);
    pthread_mutex_destroy(&rt->done_lock);
    pthread_mutex_destroy(&rt->launch_lock);
    pthread_cond_destroy(&rt->done_cond);
}

static int init_workers(struct runtime *rt)
{
    /* Without a monitor there is no rescuer to fence against. */
    bool light = !rt->cfg.stall_ms || weft__worker_stalls_init();
    int ret;

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
        w->timed = rt->cfg.debug;
        w->light_fence = light;
        /* Born in the runtime (odd): a thread slow to start is not a
         * worker stuck in a task. */
        atomic_init(&w->beat, 1);
        weft__spin_init(&w->handoff);
        weft__runq_init(&w->runq);
        ret = weft__timers_init(&w->timers);
        if (ret)
            return ret;
    }
    return 0;
}

static int init_runtime(struct runtime *rt, const weft_config_t *cfg)
{
    int ret = weft__config_resolve(&rt->cfg, cfg);

    ret = ret ?: pick_backend(rt);
    if (ret)
        return ret;
    rt->nworkers = rt->cfg.workers;
    pthread_mutex_init(&rt->idle.lock, NULL);
    pthread_mutex_init(&rt->reg_lock, NULL);
    pthread_mutex_init(&rt->done_lock, NULL);
    pthread_mutex_init(&rt->launch_lock, NULL);
    pthread_cond_init(&rt->done_cond, NULL);
    ret = weft__inject_init(&rt->inject);
    ret = ret ?: weft__stack_pool_init(&rt->stacks, rt->cfg.stack_size);
    ret = ret ?: weft__blocking_init(&rt->pool, rt->cfg.blocking_threads,
                                     rt->cfg.blocking_keepalive_ms);
    if (ret)
        return ret;
    rt->drainer = alloc_outside(rt);
    if (!rt->drainer)
        return -ENOMEM;
    return init_workers(rt);
}

/*
 * Starts the threads; on failure (a thread that could not be created, a
 * backend that could not be set up) returns the error, and stop_workers()
 * stops the ones that started. The barriers count the threads that really
 * started, which is known only once every creation was tried: launch_lock,
 * held meanwhile, keeps the new threads from reaching them before.
 */
static int start_workers(struct runtime *rt)
{
    int ret = 0;

    pthread_mutex_lock(&rt->launch_lock);
    for (rt->nstarted = 0; rt->nstarted < rt->nworkers; rt->nstarted++) {
        struct worker *w = rt->workers[rt->nstarted];

        ret = weft__signal_create_thread(&w->thread, weft__worker_main, w);
        if (ret)
            break;
    }
    pthread_barrier_init(&rt->start_barrier, NULL, rt->nstarted + 1);
    pthread_barrier_init(&rt->stop_barrier, NULL, rt->nstarted + 1);
    pthread_mutex_unlock(&rt->launch_lock);
    pthread_barrier_wait(&rt->start_barrier);
    for (unsigned i = 0; i < rt->nstarted; i++)
        ret = ret ?: rt->workers[i]->start_error;
    return ret;
}

static void stop_workers(struct runtime *rt)
{
    /* The monitor drives workers' backends: it goes first. */
    weft__monitor_stop(rt);
    atomic_store_explicit(&rt->stopping, true, memory_order_release);
    weft__worker_wake_all(rt);
    pthread_barrier_wait(&rt->stop_barrier);
    for (unsigned i = 0; i < rt->nstarted; i++)
        pthread_join(rt->workers[i]->thread, NULL);
    weft__monitor_fini(rt);
    pthread_barrier_destroy(&rt->start_barrier);
    pthread_barrier_destroy(&rt->stop_barrier);
}

int weft_runtime_new(const weft_config_t *cfg, weft_runtime_t **out)
{
    struct runtime_slot *s;
    int ret;

    if (weft__worker_current())
        return -EPERM;
    if (!out)
        return -EINVAL;
    s = slot_get();
    if (!s)
        return -ENOMEM;
    ret = init_runtime(&s->h.rt, cfg);
    ret = ret ?: weft__overflow_install();
    if (ret)
        goto out_free;
    ret = start_workers(&s->h.rt);
    ret = ret ?: weft__monitor_start(&s->h.rt);
    if (!ret && s->h.rt.cfg.dump_signal)
        ret = weft__signal_dump_on(&s->h.rt, s->h.rt.cfg.dump_signal);
    if (ret)
        goto out_stop;
    *out = handle_of(s);
    slot_set_open(s, *out, true);
    return 0;
out_stop:
    weft__signal_release(&s->h.rt);
    stop_workers(&s->h.rt);
    weft__overflow_uninstall();
out_free:
    free_runtime(&s->h.rt);
    slot_put(s);
    return ret;
}

/*
 * The stop sequence. Order matters: the drain ends every task, which also
 * withdraws queued pool jobs and waits for running ones, so the signal
 * thread and the pool have nobody left to wake when they stop; and they
 * stop before the workers, whose backends their wakes go through.
 */
int weft_runtime_free(weft_runtime_t *h)
{
    struct runtime_slot *s = slot_of(h);
    struct runtime *rt;

    if (weft__worker_current())
        return -EPERM;
    if (!h)
        return -EINVAL;
    rt = &s->h.rt;
    /* Closes the door to spawns from outside, so that the drain sees every
     * task; a second free of h finds it closed. */
    if (slot_set_open(s, h, false) < 0)
        return -ESHUTDOWN;
    drain_outside(rt);
    weft__signal_release(rt);
    weft__blocking_stop(&rt->pool);
    stop_workers(rt);
    if (rt->cfg.debug)
        report_unjoined(rt);
    weft__overflow_uninstall();
    free_runtime(rt);
    slot_put(s);
    return 0;
}

int weft_run_with(const weft_config_t *cfg, weft_fn_t fn, void *arg)
{
    weft_runtime_t *rt;
    int ret;

    if (weft__worker_current())
        return -EPERM;
    if (!fn)
        return -EINVAL;
    ret = weft_runtime_new(cfg, &rt);
    if (ret)
        return ret;
    ret = weft_runtime_block_on(rt, fn, arg);
    weft_runtime_free(rt);
    return ret;
}

int weft_run(weft_fn_t fn, void *arg)
{
    return weft_run_with(NULL, fn, arg);
}
