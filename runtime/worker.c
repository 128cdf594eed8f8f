/*
 * The worker: a scheduler loop that finds a runnable task, switches into it,
 * and when there is none steals or parks in its I/O backend.
 *
 * One turn of the loop (find_task) reads as phases, in this order:
 *   1. every POLL_INTERVAL task runs: due timers, I/O completions and the
 *      injection queue first, so neither starves behind a busy local queue;
 *   2. the LIFO slot (the task most recently woken or spawned by the running
 *      one: message-passing locality), at most LIFO_MAX times in a row;
 *   3. the local run queue, then the injection queue;
 *   4. due timers and ready I/O, without blocking;
 *   5. stealing half of a random victim's queue (a bounded number of
 *      workers search at once);
 *   6. parking (idle()).
 *
 * Hand-off. A task that suspends does not always go back to the scheduler
 * fiber: if the LIFO slot or the local queue has a task and no poll is due,
 * it switches straight to that task (one switch instead of two). What the
 * suspending task asked for (requeue, park, finish) needs it off its stack,
 * so it is left in w->prev and done by whichever fiber runs next on this
 * worker, first thing after its switch returns (weft__worker_settle()):
 * the scheduler, a resumed task, or a new task in its entry. A task whose function
 * returned goes further when the next task is new: that task takes over its
 * stack and fiber and runs from the same frame, with no switch at all
 * (adopt()). Starting a task that needs a stack mapped (the cache is empty,
 * or it asked for its own size) is left to the scheduler, so that what runs
 * on a suspending task's stack stays small. Wakes issued while settling on
 * a task's fiber go to the LIFO slot, like any wake from a running task.
 *
 * Parking without lost wakeups. The race: worker P finds every queue empty
 * and decides to sleep; meanwhile waker W pushes a task and looks for a
 * sleeper to wake. If W looks before P announces itself and P checks the
 * queues before W's push is visible, both move on and the task sits in a
 * queue while every worker sleeps. The protocol is Dekker's:
 *
 *   W: push task (atomic store) ; seq_cst fence ; load nsearching, nidle
 *   P: nidle++ (and join sleepers) ; seq_cst fence ; load every queue
 *
 * With a fence between each side's store and load, at least one side sees
 * the other: either W sees P idle and wakes a sleeper (through its backend:
 * an eventfd write that the sleeper's wait() returns on, even if it has not
 * blocked yet), or P sees the task and does not sleep. A searching worker
 * that gives up decrements nsearching before the same fence and re-check, so
 * "a searcher exists, it will find the task" (W skipping the wake) is safe
 * too. A woken worker is counted as searching by its waker; when the last
 * searcher finds work it wakes another if work remains, so a burst spreads
 * across workers one wake at a time (Go's spinning-M rule).
 *
 * Parks never use a periodic timeout: the wait's timeout is the worker's
 * next timer, or once after a burst the time its idle memory is due to go
 * back (see "Idle memory"), so a lost wakeup shows up as a hang, not as
 * latency.
 */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "driver/backend.h"
#include "mem.h"
#include "overflow.h"
#include "runtime.h"
#include "task.h"

#define POLL_INTERVAL 61 /* task runs between two looks outside */
/* LIFO runs in a row before the queue's head gets a turn. Each turn of a
 * ping-pong pair that hands itself the slot ends with its stacks and tasks
 * going cold while the rest of the queue runs, so long turns pay, as in Go,
 * where the next task inherits the time slice. The cap bounds what the
 * queue's head waits behind such a pair to LIFO_MAX short runs (a fraction
 * of a millisecond); timers, I/O and the injection queue get their look
 * every POLL_INTERVAL runs whatever the cap. benches/results/lifo-max.md
 * has the measurements behind the value. */
#define LIFO_MAX 256
/* Two pages of each stack a worker keeps through an idle period stay
 * resident: its header and the first frames of a task. */
#define STACK_KEEP_RESIDENT (2 * weft__page_size())
#define RELEASE_DELAY_NS WEFT__NS_PER_SEC
#define RELEASE_STEP 1024 /* stacks given back between looks for work */

static __thread struct worker *tls_worker
    __attribute__((tls_model("initial-exec")));

__attribute__((noinline)) struct worker *weft__worker_current(void)
{
    /* The empty asm keeps the compiler from treating this as a pure
     * function whose result could be reused across a fiber switch. */
    __asm__ volatile("" ::: "memory");
    return tls_worker;
}

/* task.h's; defined here, beside tls_worker, to read it directly instead of
 * calling weft__worker_current(): every wait asks for the running task. */
__attribute__((noinline)) struct weft_task *weft__task_current(void)
{
    struct worker *w;

    __asm__ volatile("" ::: "memory");
    w = tls_worker;
    return w ? w->current : NULL;
}

static void count(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static uint32_t next_random(struct worker *w)
{
    /* xorshift32: victim selection only needs to be cheap and spread. */
    uint32_t x = w->rng;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return w->rng = x;
}

/* ---- a failing backend --------------------------------------------------- */

/*
 * A backend's wait() fails for a reason of its own (a seccomp filter
 * installed after start that refuses io_uring_enter or epoll_wait, a
 * descriptor of the backend closed behind its back). Retrying at once
 * would spin: the call fails without blocking, every time. Nor can the
 * worker fail what the backend holds: the operations in flight are the
 * backend's, and only it could complete them. So the worker says so once
 * and carries on with what does not need the backend (queued tasks, timers,
 * work stolen from others), sleeping between retries instead of parking in
 * the backend: backing off from IO_BACKOFF_MIN_NS to IO_BACKOFF_MAX_NS, and
 * never past its next timer. A wake() from another thread is not seen until
 * the sleep ends, so the cap bounds how late such a worker hears of new
 * work; a retry that succeeds (a transient failure, such as ENOMEM) brings
 * back normal parking.
 */
#define IO_BACKOFF_MIN_NS WEFT__NS_PER_MS
#define IO_BACKOFF_MAX_NS (64 * WEFT__NS_PER_MS)

_Atomic uint64_t weft__worker_wait_failures;

static void wait_failed(struct worker *w, int err)
{
    atomic_fetch_add_explicit(&weft__worker_wait_failures, 1,
                              memory_order_relaxed);
    if (w->io_failed)
        return;
    w->io_failed = true;
    fprintf(stderr,
            "weft: worker %u: the %s backend's wait failed: %s; until it "
            "works again, the worker's I/O does not complete and it polls "
            "for work instead of sleeping\n",
            w->index, w->rt->io_ops->name, strerror(-err));
}

/* Sleeps instead of parking in a failing backend; see above. */
static void back_off(struct worker *w, int64_t timeout)
{
    int64_t ns = w->io_backoff_ns ? w->io_backoff_ns : IO_BACKOFF_MIN_NS;
    struct timespec ts;

    w->io_backoff_ns = ns * 2 < IO_BACKOFF_MAX_NS ? ns * 2 : IO_BACKOFF_MAX_NS;
    if (timeout >= 0 && timeout < ns)
        ns = timeout;
    ts.tv_sec = ns / WEFT__NS_PER_SEC;
    ts.tv_nsec = ns % WEFT__NS_PER_SEC;
    nanosleep(&ts, NULL); /* workers block signals: no EINTR to retry */
}

/* ---- queues -------------------------------------------------------------- */

static void push_local(struct worker *w, struct weft_task *t)
{
    uint32_t n;

    while (!weft__runq_push(&w->runq, t)) {
        n = weft__runq_spill(&w->runq, t, w->batch);
        if (n) {
            weft__inject_push(&w->rt->inject, w->batch, n);
            break;
        }
    }
    /* Alone, the worker that pushed is the one that will run it. */
    if (w->rt->nworkers > 1)
        weft__runtime_notify_work(w->rt);
}

void weft__worker_enqueue(struct worker *w, struct weft_task *t, bool lifo)
{
    struct weft_task *prev;

    if (!w || w->rt != t->rt) {
        struct runtime *rt = t->rt;

        /* Not t->rt after the push: t may run, finish and be recycled
         * before we get to notify. */
        weft__inject_push(&rt->inject, &t, 1);
        weft__runtime_notify_work(rt);
        return;
    }
    if (!lifo || !w->current) {
        push_local(w, t);
        return;
    }
    prev = w->lifo;
    w->lifo = t;
    if (prev)
        push_local(w, prev);
}

static struct weft_task *take_lifo(struct worker *w)
{
    struct weft_task *t = w->lifo;

    if (!t)
        return NULL;
    w->lifo = NULL;
    if (w->lifo_streak++ < LIFO_MAX)
        return t;
    /* Two tasks waking each other would starve the queue: go to its tail. */
    w->lifo_streak = 0;
    push_local(w, t);
    return NULL;
}

/* Takes a fair share of the injection queue: runs one, queues the rest. */
static struct weft_task *take_injected(struct worker *w)
{
    struct runtime *rt = w->rt;
    uint32_t len = weft__inject_len(&rt->inject);
    uint32_t max = len / rt->nworkers + 1;
    uint32_t n, room;

    if (len == 0)
        return NULL;
    room = WEFT_RUNQ_CAP - weft__runq_len(&w->runq);
    /* Take no more than the local queue can hold besides the one we run,
     * so nothing has to go back under the lock. */
    if (max > WEFT_RUNQ_CAP / 2)
        max = WEFT_RUNQ_CAP / 2;
    if (max > room + 1)
        max = room + 1;
    n = weft__inject_pop(&rt->inject, max, w->batch);
    if (n == 0)
        return NULL;
    for (uint32_t i = 1; i < n; i++)
        /* Only stealers change the length meanwhile, and only down. */
        if (!weft__runq_push(&w->runq, w->batch[i]))
            weft__panic("take_injected: local queue overflow");
    if (n > 1)
        weft__runtime_notify_work(rt);
    return w->batch[0];
}

/* Due timers and ready I/O, without blocking. */
static void poll_events(struct worker *w)
{
    int ret;

    if (weft__timers_next(&w->timers) != WEFT_NO_DEADLINE)
        weft__timers_fire(&w->timers, weft__now());
    ret = w->rt->io_ops->wait(w->io, 0);
    if (unlikely(ret < 0))
        wait_failed(w, ret);
}

/* ---- searching ----------------------------------------------------------- */

static bool begin_search(struct worker *w)
{
    struct idle *idle = &w->rt->idle;
    uint32_t searching, busy;

    if (w->searching)
        return true;
    searching = atomic_load_explicit(&idle->nsearching, memory_order_relaxed);
    busy = w->rt->nworkers -
           atomic_load_explicit(&idle->nidle, memory_order_relaxed);
    /* Bound the searchers so that idle workers do not all hammer the busy
     * ones' queues (Tokio's rule). */
    if (2 * searching >= busy)
        return false;
    atomic_fetch_add_explicit(&idle->nsearching, 1, memory_order_seq_cst);
    w->searching = true;
    return true;
}

static void end_search(struct worker *w)
{
    struct runtime *rt = w->rt;

    w->searching = false;
    if (atomic_fetch_sub_explicit(&rt->idle.nsearching, 1,
                                  memory_order_seq_cst) == 1)
        weft__runtime_notify_work(rt);
}

static struct weft_task *steal(struct worker *w)
{
    struct runtime *rt = w->rt;
    uint32_t start;

    if (rt->nworkers == 1 || !begin_search(w))
        return NULL;
    start = next_random(w) % rt->nworkers;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct worker *v = rt->workers[(start + i) % rt->nworkers];
        struct weft_task *t;

        if (v == w)
            continue;
        t = weft__runq_steal(&v->runq, &w->runq);
        if (t) {
            count(&w->stats.steals);
            return t;
        }
    }
    return take_injected(w);
}

/* ---- one turn ------------------------------------------------------------ */

/* The LIFO slot, else the head of the local queue. */
static struct weft_task *take_local(struct worker *w)
{
    struct weft_task *t = take_lifo(w);

    if (t)
        return t;
    w->lifo_streak = 0;
    return weft__runq_pop(&w->runq);
}

static struct weft_task *find_task(struct worker *w)
{
    struct weft_task *t;

    if (w->until_poll == 0) {
        w->until_poll = POLL_INTERVAL;
        poll_events(w);
        if ((t = take_injected(w)))
            return t;
    }
    if ((t = take_local(w)) || (t = take_injected(w)))
        return t;
    poll_events(w);
    if ((t = take_local(w)))
        return t;
    return steal(w);
}

/* Ends t, which never ran, with err; returns false for the callers'
 * "ended without running". */
static bool end_unstarted(struct worker *w, struct weft_task *t, int err)
{
    t->result = err;
    if (unlikely(t->locals))
        weft__task_end_locals_outside(w, t);
    weft__task_finish(w, t);
    return false;
}

/* Gives t its stack on first run; false if it ended without running. */
static bool start_task(struct worker *w, struct weft_task *t)
{
    if (weft__task_take_cancel(t))
        return end_unstarted(w, t, -ECANCELED);
    t->stack = weft__stack_get(&w->rt->stacks, &w->stacks, t->stack_size);
    if (!t->stack)
        return end_unstarted(w, t, -ENOMEM);
    weft__fiber_init(&t->fiber, t->stack->lo, t->stack->size,
                     weft__task_entry, t);
    t->started = true;
    return true;
}

/* Does what w->prev asked for when it switched away, now that nothing runs
 * on its stack. */
void weft__worker_settle(struct worker *w)
{
    struct weft_task *t = w->prev;
    uint32_t s = TASK_RUNNING;

    if (!t)
        return;
    WEFT__CHECK(w == weft__worker_current() && t != w->current);
    WEFT__CHECK((atomic_load_explicit(&t->state, memory_order_relaxed) &
                 ~TASK_NOTIFIED) == TASK_RUNNING);
    w->prev = NULL;
    switch (w->reason) {
    case SWITCH_YIELD:
        /* Still RUNNING (task.h): whoever runs it next exchanges that. */
        push_local(w, t);
        break;
    case SWITCH_PARK:
        /* release: the fiber is off its stack; pairs with the acquire CAS
         * in weft__task_wake(). Failing means NOTIFIED: run it again. */
        if (!atomic_compare_exchange_strong_explicit(
                &t->state, &s, TASK_IDLE, memory_order_release,
                memory_order_relaxed)) {
            atomic_exchange_explicit(&t->state, TASK_SCHED,
                                     memory_order_acq_rel);
            push_local(w, t);
        }
        break;
    case SWITCH_EXIT:
        weft__task_finish(w, t);
        break;
    }
}

/* Starts the clock of t's run, in debug mode. */
static void start_run_clock(struct worker *w)
{
    if (unlikely(w->rt->cfg.debug))
        w->run_start = weft__now();
}

/* Debug mode: warns about a run of the running task that went on for over
 * 100 ms without suspending (it held up every other task of its worker). */
static void check_run_length(struct worker *w)
{
    struct weft_task *t = w->current;
    int64_t ran;

    if (likely(!w->rt->cfg.debug))
        return;
    ran = weft__now() - w->run_start;
    if (ran > 100 * WEFT__NS_PER_MS)
        fprintf(stderr,
                "weft: task '%s' (%p) ran %lld ms without suspending\n",
                weft__task_name_or(t, ""), (void *)t,
                (long long)(ran / WEFT__NS_PER_MS));
}

/* Moves t, taken from a queue, to RUNNING. acquire RMW: pairs with the
 * release CAS of any waker that found the task queued, so the task's first
 * check sees what that waker wrote. */
static void claim(struct weft_task *t)
{
    atomic_exchange_explicit(&t->state, TASK_RUNNING, memory_order_acquire);
}

/* Makes t w's running task, counting it towards the next poll. */
static void begin_run(struct worker *w, struct weft_task *t)
{
    if (w->until_poll)
        w->until_poll--;
    w->current = t;
    start_run_clock(w);
}

/* Makes t w's running task, about to be switched to; false if it ended
 * without running (cancelled before it started, or no stack). */
static bool prepare(struct worker *w, struct weft_task *t)
{
    claim(t);
    if (unlikely(!t->started) && !start_task(w, t))
        return false;
    begin_run(w, t);
    return true;
}

static void run_task(struct worker *w, struct weft_task *t)
{
    if (w->searching)
        end_search(w);
    if (!prepare(w, t))
        return;
    weft__fiber_switch_to(&w->sched, &t->fiber);
    weft__worker_settle(w);
}

/* The next local task to run straight from a suspending or finishing one,
 * or NULL to go through the scheduler: none at hand, or a poll is due. */
static struct weft_task *take_direct(struct worker *w)
{
    return w->until_poll ? take_local(w) : NULL;
}

/*
 * Whether starting t would map memory (the stack cache is empty, or t wants
 * a stack of its own size). That is left to the scheduler, on the worker's
 * own stack: what runs on a suspending task's stack stays small (settling,
 * a cached stack), so a task needs little room at its suspension points.
 * t goes back to the LIFO slot, which take_local() just emptied, to run
 * next.
 */
static bool leave_to_scheduler(struct worker *w, struct weft_task *t)
{
    if (t->started || (!t->stack_size && w->stacks.head))
        return false;
    w->lifo = t;
    return true;
}

/* Records the running task for weft__worker_settle() and picks the fiber
 * to switch to: the next local task or the scheduler. */
static struct fiber *switch_target(struct worker *w, enum switch_reason why)
{
    struct weft_task *next;

    check_run_length(w);
    w->prev = w->current;
    w->reason = why;
    while ((next = take_direct(w)) && !leave_to_scheduler(w, next))
        if (prepare(w, next))
            return &next->fiber;
    w->current = NULL;
    return &w->sched;
}

void weft__worker_switch_out(struct worker *w, enum switch_reason why)
{
    struct weft_task *t = w->current;

    weft__fiber_switch_to(&t->fiber, switch_target(w, why));
    /* Resumed, maybe on another worker. */
    weft__worker_settle(weft__worker_current());
}

/*
 * Starts new task t in place of `donor`, whose function has returned: t
 * takes over donor's stack and fiber and its function is called from the
 * same frame, so a burst of short new tasks costs no switch and no stack
 * hand-back. False if t ended without running (cancelled before it
 * started); donor then keeps its stack.
 */
static bool adopt(struct worker *w, struct weft_task *t,
                  struct weft_task *donor)
{
    claim(t);
    if (weft__task_take_cancel(t))
        return end_unstarted(w, t, -ECANCELED);
    t->stack = donor->stack;
    t->fiber = donor->fiber;
    t->started = true;
    /* t owns the stack from here: an overflow report names it. */
    begin_run(w, t);
    donor->stack = NULL; /* its fiber lives on as t's */
    weft__task_finish(w, donor);
    return true;
}

/* Whether a new task can run on the stack of the one that just ended. */
static bool can_adopt(const struct weft_task *t, const struct weft_task *donor)
{
    return !t->started && !t->stack_size && donor->stack->from_slab;
}

struct weft_task *weft__worker_task_done(struct worker *w)
{
    struct weft_task *t = w->current, *next;

    check_run_length(w);
    while ((next = take_direct(w))) {
        if (can_adopt(next, t)) {
            if (adopt(w, next, t))
                return next;
        } else if (leave_to_scheduler(w, next)) {
            break;
        } else if (prepare(w, next)) {
            w->prev = t;
            w->reason = SWITCH_EXIT;
            weft__fiber_exit_to(&t->fiber, &next->fiber);
        }
    }
    w->prev = t;
    w->reason = SWITCH_EXIT;
    w->current = NULL;
    weft__fiber_exit_to(&t->fiber, &w->sched);
}

/* ---- parking ------------------------------------------------------------- */

static bool remove_sleeper(struct idle *idle, unsigned index)
{
    for (unsigned i = 0; i < idle->nsleepers; i++) {
        if (idle->sleepers[i] == index) {
            idle->sleepers[i] = idle->sleepers[--idle->nsleepers];
            atomic_store_explicit(&idle->nidle, idle->nsleepers,
                                  memory_order_seq_cst);
            return true;
        }
    }
    return false;
}

static bool has_work(struct runtime *rt)
{
    if (weft__inject_len(&rt->inject))
        return true;
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (weft__runq_len(&rt->workers[i]->runq))
            return true;
    return false;
}

/*
 * Idle memory. Stacks and task structs of finished tasks stay in their
 * worker's caches, so that the next burst of spawns costs no syscall and no
 * page fault. Beyond what it keeps (WEFT__STACK_CACHE_KEEP and
 * WEFT__TASK_CACHE_KEEP) a worker gives them back once it has had them for
 * RELEASE_DELAY_NS: the first park that finds more than that cached sets
 * release_at and sleeps no later than that; the first park past it
 * releases. The surplus goes to the shared pools, which hand whole slabs
 * and blocks back to the kernel, the kept stacks lose their deeper pages,
 * and the allocator purges. The next park has no deadline of its own. So
 * an idle runtime wakes once after a burst and never polls, and is back
 * near its starting RSS about a second after the burst; a second burst
 * costs what the first did. A worker that keeps running past release_at
 * releases at its next park: a cache that stays large through a busy
 * period goes back at most about once a second. The release is done after
 * the worker stopped searching and before it joins the idle set: work
 * queued meanwhile wakes another worker, or is seen by the re-check that
 * follows the announcement.
 */
static bool has_surplus(const struct worker *w)
{
    return w->stacks.n > WEFT__STACK_CACHE_KEEP ||
           weft__task_cache_exceeds(w, WEFT__TASK_CACHE_KEEP);
}

/*
 * Gives back what is beyond the caches' bounds, RELEASE_STEP stacks at a
 * time: a burst's stacks take tens of milliseconds to go (the kernel frees
 * their pages), and work that arrives meanwhile, or a shutdown, waits for
 * one step. The rest then goes at the first idle park past a new deadline.
 */
static void release_memory(struct worker *w)
{
    struct runtime *rt = w->rt;

    while (w->stacks.n > WEFT__STACK_CACHE_KEEP) {
        unsigned keep = w->stacks.n - WEFT__STACK_CACHE_KEEP > RELEASE_STEP ?
                            w->stacks.n - RELEASE_STEP :
                            WEFT__STACK_CACHE_KEEP;

        if (has_work(rt) ||
            atomic_load_explicit(&rt->stopping, memory_order_relaxed))
            return;
        weft__stack_cache_release(&rt->stacks, &w->stacks, keep);
    }
    weft__stack_cache_shrink(&w->stacks, STACK_KEEP_RESIDENT);
    weft__task_cache_release(w, WEFT__TASK_CACHE_KEEP);
    weft__mem_purge();
}

/* Nanoseconds the coming park may last before memory is due to go back
 * (-1: no limit); releases first if it is due now. */
static int64_t until_release(struct worker *w)
{
    int64_t now;

    if (!w->release_at && !has_surplus(w))
        return -1;
    now = weft__now();
    if (!w->release_at)
        w->release_at = now + RELEASE_DELAY_NS;
    if (now < w->release_at)
        return w->release_at - now;
    release_memory(w);
    w->release_at = 0;
    return -1;
}

/* The earlier of two park timeouts (-1: none). */
static int64_t earlier(int64_t a, int64_t b)
{
    return a < 0 || (b >= 0 && b < a) ? b : a;
}

/* Leaves the sleepers (if a waker has not taken us out already). */
static void unannounce(struct worker *w)
{
    struct idle *idle = &w->rt->idle;

    pthread_mutex_lock(&idle->lock);
    if (!remove_sleeper(idle, w->index))
        w->searching = w->woken_as_searcher; /* counted by the waker */
    w->woken_as_searcher = false;
    pthread_mutex_unlock(&idle->lock);
}

static int64_t park_timeout(struct worker *w)
{
    int64_t next = weft__timers_next(&w->timers);
    int64_t now;

    if (next == WEFT_NO_DEADLINE)
        return -1;
    now = weft__now();
    return next > now ? next - now : 0;
}

/* Blocks in the backend until a wake, a completion or timeout (-1: none);
 * sleeps instead if the backend fails. */
static void park(struct worker *w, int64_t timeout)
{
    int ret = w->rt->io_ops->wait(w->io, timeout);

    if (likely(ret >= 0)) {
        w->io_backoff_ns = 0;
        return;
    }
    wait_failed(w, ret);
    back_off(w, timeout);
}

static void idle(struct worker *w)
{
    struct runtime *rt = w->rt;
    struct idle *idlers = &rt->idle;
    int64_t release;

    if (w->searching) {
        w->searching = false;
        atomic_fetch_sub_explicit(&idlers->nsearching, 1, memory_order_seq_cst);
    }
    /* No longer searching, so that work queued meanwhile wakes a sleeper. */
    release = until_release(w);
    pthread_mutex_lock(&idlers->lock);
    idlers->sleepers[idlers->nsleepers++] = w->index;
    atomic_store_explicit(&idlers->nidle, idlers->nsleepers, memory_order_seq_cst);
    pthread_mutex_unlock(&idlers->lock);
    /* seq_cst: pairs with the fence in weft__runtime_notify_work(). */
    atomic_thread_fence(memory_order_seq_cst);
    if (has_work(rt) || atomic_load_explicit(&rt->stopping,
                                             memory_order_acquire)) {
        unannounce(w);
        return;
    }
    park(w, earlier(park_timeout(w), release));
    unannounce(w);
}

static void run_loop(struct worker *w)
{
    while (!atomic_load_explicit(&w->rt->stopping, memory_order_acquire)) {
        struct weft_task *t = find_task(w);

        if (t)
            run_task(w, t);
        else
            idle(w);
    }
}

void weft__worker_wake_all(struct runtime *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (rt->workers[i]->io)
            rt->io_ops->wake(rt->workers[i]->io);
}

static void pin(struct worker *w)
{
    cpu_set_t allowed, one;
    unsigned seen = 0;

    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
        return;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed))
            continue;
        if (seen++ % CPU_COUNT(&allowed) == w->index % CPU_COUNT(&allowed)) {
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
            return;
        }
    }
}

void *weft__worker_main(void *arg)
{
    struct worker *w = arg;
    struct runtime *rt = w->rt;

    tls_worker = w;
    if (rt->cfg.pin)
        pin(w);
    weft__fiber_init_thread(&w->sched);
    w->start_error = weft__overflow_thread_init();
    if (!w->start_error)
        w->start_error = rt->io_ops->init(&w->io, &rt->cfg);
    /* The barriers are set up once every thread was tried (runtime.c). */
    pthread_mutex_lock(&rt->launch_lock);
    pthread_mutex_unlock(&rt->launch_lock);
    pthread_barrier_wait(&rt->start_barrier);
    if (!w->start_error)
        run_loop(w);
    /* The stopping thread may still be calling wake() on our backend. */
    pthread_barrier_wait(&rt->stop_barrier);
    if (w->io)
        rt->io_ops->fini(w->io);
    weft__overflow_thread_fini();
    tls_worker = NULL;
    return NULL;
}
