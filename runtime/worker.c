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
 * the scheduler, a resumed task, or a new task in its entry. A task whose
 * function returned goes further when the next task is new: that task takes
 * over its stack and fiber and runs from the same frame, with no switch at
 * all (adopt()). Starting a task that needs a stack mapped (the cache is empty,
 * or it asked for its own size) is left to the scheduler, so that what runs
 * on a suspending task's stack stays small. Wakes issued while settling on
 * a task's fiber go to the LIFO slot, like any wake from a running task.
 *
 * Order of work, and the bound on live stacks. A spawn does not go to a
 * queue at once: the worker holds it (w->spawned, unpublished, a duty
 * like the LIFO slot) until its spawner suspends or ends, when the held
 * tasks are queued in spawn order, the newest to run next (in the LIFO
 * slot, unless a task woken meanwhile holds it); asyncio's order, where
 * a new task runs once its spawner awaits. Until then the spawner's
 * join of one of them runs it inline (task.h, "Inline joins"): a function
 * call on the joiner's stack, which itself may spawn and join the same
 * way. So a tree of tasks that spawn
 * and join their children runs depth first, as in Cilk's work-first
 * order: a join takes the child it names out of the held ones (or, if
 * it was published meanwhile and has not started, from under its queue
 * entry: task.h), the siblings after it wait their turn held, and a
 * worker's inline chain
 * uses one stack, as deep as the tree (a child runs inline only with room
 * for its whole promised stack below the join, else the join parks as
 * any other and the child gets a stack of its own when it runs). Held
 * tasks are shared with thieves on demand: when a spawn or an inline
 * join sees another worker idle or searching (hungry()), the older half
 * of the held tasks, the biggest subtrees of a tree, go to the local
 * queue, where that worker steals them (a spawn keeps the newest, so the
 * latest spawn never starts before its spawner suspends or joins, as
 * with the LIFO slot before); at most WEFT__SPAWNED_MAX are
 * held, the older half going to the queue when full. Live stacks are
 * therefore about one per worker per level of the tree, plus those of
 * joiners whose children were stolen, instead of one per started task.
 * Every inline run counts towards the next poll, and a chain of them
 * makes way for ready tasks that have waited a while (others_can_wait).
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
 * A push to a worker's own queue runs W's side only when it makes the
 * queue non-empty (as its owner sees it), or spills to the injection
 * queue: the fence is most of the cost of a yield or a local wake on a
 * busy runtime, and the pushes behind the first add nothing to tell. The
 * first one's fence made the queue visible to every worker that announces
 * itself afterwards, and the queue stays non-empty until its owner or a
 * thief empties it; then the owner's next push is a first one again. The
 * one gap: a thief that empties the queue just before the owner pushes,
 * unseen by the owner's read of head. That thief is awake and running
 * what it took, and the owner never parks over its own queue, so the task
 * is not lost: at worst it waits for one of the two to look for work (or
 * for the stall monitor's rescue) instead of for a parked worker.
 *
 * Parks never use a periodic timeout: the wait's timeout is the worker's
 * next timer, or once after a burst the time its idle memory is due to go
 * back (see "Idle memory"), so a lost wakeup shows up as a hang, not as
 * latency.
 *
 * Stalls: workers are interchangeable. A task that keeps its worker for
 * long (a loop without a suspension point, a blocking syscall) must not
 * strand what only that worker would otherwise serve: its LIFO slot, its
 * due timers, its backend's completions. (Its run queue is stealable
 * anyway.) The monitor (monitor.c) notices a worker whose beat has not
 * moved for WEFT_STALL_MS while it runs a task, and a rescuer (the
 * monitor's thread) takes those duties over until the owner comes back.
 * The two must never drive the LIFO slot or the backend at once, and the
 * owner's side must stay as cheap as a store and a load:
 *
 *   owner, entering the runtime from a task (weft__worker_enter):
 *       beat = odd ; compiler barrier ; if (stalled) reclaim
 *   owner, returning to a task (weft__worker_leave):
 *       beat = even (release)
 *   rescuer, under handoff, having seen beat == b (even) for a while:
 *       stalled = true ; heavy fence ; if (beat != b) undo, give up
 *
 * The heavy fence is membarrier(PRIVATE_EXPEDITED): it runs a full barrier
 * on every thread of the process that is on a CPU, which puts one between
 * the owner's store and load wherever they are, so the pair is Dekker's:
 * either the rescuer sees the owner's new beat and gives up, or the
 * owner's next enter sees stalled and waits for handoff (reclaim) before it
 * touches anything, then clears stalled. Between its last leave and that
 * enter the owner runs task code only, which touches neither the LIFO slot
 * nor the backend (puts and I/O enter first), so while stalled is set the
 * rescuer alone drives them. Where membarrier is refused (an old kernel, a
 * seccomp filter), the owner's barrier is a real fence instead
 * (w->light_fence false). What the owner did before its last leave
 * is visible to the rescuer through the release/acquire pair on beat; what
 * the rescuer did, to the owner through handoff.
 *
 * A task that is about to block on purpose says so (weft_block_in_place):
 * its worker hands its duties over at once, setting stalled itself, and
 * takes them back through the same enter when the call returns.
 */
#include "worker.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "driver/backend.h"
#include "local.h"
#include "mem.h"
#include "metrics.h"
#include "monitor.h"
#include "overflow.h"
#include "runtime.h"
#include "task.h"

#define POLL_INTERVAL WEFT__POLL_INTERVAL
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
    weft__count(c);
}

/* The poll countdown: relaxed, since weft_metrics reads it (metrics.c). */
static uint32_t until_poll(const struct worker *w)
{
    return atomic_load_explicit(&w->until_poll, memory_order_relaxed);
}

static void set_until_poll(struct worker *w, uint32_t n)
{
    atomic_store_explicit(&w->until_poll, n, memory_order_relaxed);
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

/* Pushes t to w's queue, spilling its older half to the injection queue
 * when it is full. Returns whether idle workers are to be told (see
 * "Parking without lost wakeups"): t is the first stealable task, or
 * tasks went to the injection queue. */
static inline bool push_one(struct worker *w, struct weft_task *t)
{
    int first;
    uint32_t n;

    while ((first = weft__runq_push(&w->runq, t)) < 0) {
        n = weft__runq_spill(&w->runq, t, w->batch);
        if (n) {
            weft__inject_push(&w->rt->inject, w->batch, n);
            return true;
        }
    }
    return first;
}

static void push_local(struct worker *w, struct weft_task *t)
{
    /* Alone, the worker that pushed is the one that will run it. */
    if (push_one(w, t) && w->rt->nworkers > 1)
        weft__runtime_notify_work(w->rt);
}

/* push_local for n tasks, oldest first, telling the idle workers once. */
static void push_local_batch(struct worker *w, struct weft_task *const *tasks,
                             uint32_t n)
{
    bool tell = false;

    for (uint32_t i = 0; i < n; i++)
        tell |= push_one(w, tasks[i]);
    if (tell && w->rt->nworkers > 1)
        weft__runtime_notify_work(w->rt);
}

void weft__worker_enqueue(struct worker *w, struct weft_task *t, bool lifo)
{
    struct weft_task *prev;
    bool outer;

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
    /* A put from task code enters the runtime: the slot is a duty a
     * rescuer may hold. */
    outer = !weft__worker_in_runtime(w);
    if (outer)
        weft__worker_enter(w);
    prev = w->lifo;
    w->lifo = t;
    if (prev)
        push_local(w, prev);
    if (outer)
        weft__worker_leave(w);
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

/* ---- spawned tasks: the order of work ------------------------------------ */

/*
 * Whether another worker looks for work, so that what w holds unpublished
 * is worth handing out. Two relaxed loads of the idle set's counters,
 * which change only when a worker parks, wakes or starts searching: on a
 * busy runtime the line stays shared in every worker's cache, and no
 * spawn writes to it. A stale "no" costs only parallelism until the next
 * spawn or join looks again (or the spawner suspends, or the stall
 * monitor moves its duties), never a task.
 */
static bool hungry(const struct runtime *rt)
{
    return rt->nworkers > 1 &&
           (atomic_load_explicit(&rt->idle.nsearching, memory_order_relaxed) ||
            atomic_load_explicit(&rt->idle.nidle, memory_order_relaxed));
}

/* Publishes the n oldest of the tasks w holds to its queue, where thieves
 * find them: in a tree of joins those are the biggest subtrees. */
static void publish_oldest(struct worker *w, uint32_t n)
{
    push_local_batch(w, w->spawned, n);
    w->nspawned -= n;
    memmove(w->spawned, w->spawned + n, w->nspawned * sizeof(*w->spawned));
}

/* The running task suspends or ends: what it spawned becomes runnable, the
 * newest in the LIFO slot to run next unless a task woken meanwhile holds
 * it (the one the spawner talked to last: it keeps the slot). */
static __attribute__((noinline)) void publish_held(struct worker *w)
{
    uint32_t n = w->nspawned;

    w->nspawned = 0;
    if (!w->lifo)
        w->lifo = w->spawned[--n];
    push_local_batch(w, w->spawned, n);
}

/* At every switch: most switches have nothing held. */
static inline void publish_spawned(struct worker *w)
{
    if (unlikely(w->nspawned))
        publish_held(w);
}

void weft__worker_spawned(struct worker *w, struct weft_task *t)
{
    /* The held tasks are a duty, like the LIFO slot: a rescuer may hold
     * them while the spawner is stuck. */
    bool outer = !weft__worker_in_runtime(w);

    if (outer)
        weft__worker_enter(w);
    if (unlikely(w->nspawned == WEFT__SPAWNED_MAX))
        publish_oldest(w, WEFT__SPAWNED_MAX / 2);
    w->spawned[w->nspawned++] = t;
    /* The newest stays: a task does not start before its spawner
     * suspends or joins, as long as it is the spawner's latest. */
    if (unlikely(hungry(w->rt)) && w->nspawned > 1)
        publish_oldest(w, w->nspawned / 2);
    if (outer)
        weft__worker_leave(w);
}

/* Takes t out of the tasks w holds unpublished; false if it is not one. A
 * join usually names one of the latest spawns: the scan starts there. */
static bool take_spawned(struct worker *w, const struct weft_task *t)
{
    for (uint32_t i = w->nspawned; i-- > 0;) {
        if (w->spawned[i] == t) {
            w->nspawned--;
            memmove(w->spawned + i, w->spawned + i + 1,
                    (w->nspawned - i) * sizeof(*w->spawned));
            return true;
        }
    }
    return false;
}

/* Room the inline run's own frames take below the join's, besides the
 * stack the child was promised. */
#define INLINE_FRAMES_ROOM 2048

/* Whether the stack self runs on has room, below this frame, for the
 * whole stack t was promised: a child is never run inline on a stack that
 * could not hold it (stack.c maps the default stacks with room for it). */
static bool room_for(const struct worker *w, struct weft_task *self,
                     const struct weft_task *t)
{
    const struct stack *st = weft__task_fiber_owner(self)->stack;
    size_t need = (t->stack_size ? t->stack_size : w->rt->cfg.stack_size) +
                  INLINE_FRAMES_ROOM;
    const char *sp = __builtin_frame_address(0);

    return st && sp > (const char *)st->lo &&
           (size_t)(sp - (const char *)st->lo) >= need;
}

/* Makes t w's running task as far as anyone looking at w can tell. */
static void show_running(struct worker *w, struct weft_task *t)
{
    w->current = t;
    atomic_store_explicit(&w->running, t, memory_order_relaxed);
}

static void poll_events(struct worker *w);

/*
 * An inline run counts as a run, so a chain of joins that keep finding
 * their children unstarted reaches the poll due every POLL_INTERVAL runs
 * like any other run: timers and I/O are looked at here. Tasks that are
 * then ready elsewhere (the LIFO slot, the local queue, the injection
 * queue) get their turn when they have waited some polls in a row: the
 * join parks instead of running its child. Not at the first poll: in a
 * tree of joins those tasks are mostly the chain's own relatives
 * (siblings a hungry worker did not steal, which the chain will join
 * later, or run inline from under their queue entries; a joiner woken by
 * a stolen child's end), and parking for them would start their subtrees
 * breadth-first, each on a stack of its own, and publish every task the
 * chain holds, whose joins then park in turn. So a task that ran before
 * (woken, yielded) or came from outside waits behind at most about
 * POLL_INTERVAL * INLINE_POLLS_MAX inline runs (some 100 us), and a new
 * one published here, the chain's relative more often than not, behind
 * at most POLL_INTERVAL * INLINE_POLLS_NEW_MAX (a millisecond or two):
 * with two workers, where the first bound held for both, 2 of 3 joins
 * that parked in S7c-k16 did so for it.
 */
#define INLINE_POLLS_MAX 16
#define INLINE_POLLS_NEW_MAX 256

/* Whether ready task t (NULL: none) ran before, as opposed to a new one
 * or one its joiner took (a stale entry). A glance at a task a thief may
 * take meanwhile: the state alone is read. */
static bool ran_before(const struct weft_task *t)
{
    return t && weft__task_runnable(atomic_load_explicit(
                    &((struct weft_task *)t)->state, memory_order_relaxed) &
                ~TASK_NOTIFIED);
}

static bool others_can_wait(struct worker *w)
{
    unsigned max;

    set_until_poll(w, POLL_INTERVAL);
    weft__metrics_poll(w);
    poll_events(w);
    if (weft__inject_len(&w->rt->inject) || ran_before(w->lifo) ||
        ran_before(weft__runq_peek(&w->runq))) {
        max = INLINE_POLLS_MAX;
    } else if (w->lifo || weft__runq_len(&w->runq)) {
        max = INLINE_POLLS_NEW_MAX;
    } else {
        w->inline_polls = 0;
        return true;
    }
    if (++w->inline_polls < max)
        return true;
    w->inline_polls = 0;
    return false;
}

static void end_unstarted_as(struct worker *w, struct weft_task *t, int err);
static void start_run_clock(struct worker *w);
static void check_run_length(struct worker *w);

/* Moves t, which self joins through the handle of generation gen, from
 * NEW to INLINE, self's fiber owner its host: taken out of what w holds,
 * or else from under the queue entry that names it (task.h, "Inline
 * joins"). False if it started elsewhere or cannot be run here; true
 * also, with *result -EINVAL, if another task released the handle
 * meanwhile and t is gone. */
static bool claim_inline(struct worker *w, struct weft_task *self,
                         struct weft_task *t, uint32_t gen, int *result)
{
    bool held = take_spawned(w, t);

    if (!held && ((atomic_load_explicit(&t->state, memory_order_relaxed) &
                   ~TASK_NOTIFIED) != TASK_NEW ||
                  t->rt != w->rt || !weft__task_pin_entry(t, gen)))
        return false;
    if (!weft__task_claim_new(t, TASK_INLINE)) {
        WEFT__CHECK(!held);
        if (!weft__task_unpin_entry(t))
            return false;
        *result = -EINVAL;
        return true;
    }
    /* release: pairs with the acquire load of wakers that saw INLINE. */
    atomic_store_explicit(&t->host, weft__task_fiber_owner(self),
                          memory_order_release);
    *result = 0;
    return true;
}

bool weft__worker_join_inline(struct weft_task *self, struct weft_task *t,
                              uint32_t gen, int *result, const void *where)
{
    struct worker *w = weft__worker_current();

    weft__worker_enter(w);
    if (!room_for(w, self, t) ||
        (until_poll(w) == 0 && !others_can_wait(w)) ||
        !claim_inline(w, self, t, gen, result)) {
        weft__worker_leave(w);
        return false;
    }
    if (*result < 0) { /* t is gone */
        weft__worker_leave(w);
        return true;
    }
    set_until_poll(w, until_poll(w) - 1);
    /* t may run long: a hungry worker gets its share of the rest first. */
    if (unlikely(hungry(w->rt)) && w->nspawned)
        publish_oldest(w, (w->nspawned + 1) / 2);
    /* Cancelled before it started, or its joiner was (a join passes that
     * on): it ends unstarted, as in a worker's start. Requests to tasks
     * further up the chain reach t at its first wait, which looks for
     * them (weft__task_take_cancel); not here, at every inline start. */
    if (weft__task_take_cancel(t) || weft__task_take_own_cancel(self)) {
        end_unstarted_as(w, t, -ECANCELED);
        *result = weft__task_finish_joined(w, t, gen);
        weft__worker_leave(w);
        return true;
    }
    t->inline_parent = self;
    weft__task_note_wait(self, WHY_JOIN, where);
    show_running(w, t);
    start_run_clock(w);
    weft__worker_leave(w);

    t->result = t->fn(t->arg);
    /* Its last step, as in weft__task_entry: destructors run in it. */
    if (unlikely(t->locals))
        weft__local_end(t);

    w = weft__worker_current(); /* t may have moved, with self's fiber */
    weft__worker_enter(w);
    check_run_length(w);
    show_running(w, self);
    start_run_clock(w);
    weft__task_note_wait(self, WHY_NONE, NULL);
    t->inline_parent = NULL;
    *result = weft__task_finish_joined(w, t, gen);
    weft__worker_leave(w);
    return true;
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
    room = WEFT_RUNQ_CAP - weft__runq_stealable(&w->runq);
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
        if (weft__runq_push(&w->runq, w->batch[i]) < 0)
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

    if (until_poll(w) == 0) {
        set_until_poll(w, POLL_INTERVAL);
        weft__metrics_poll(w);
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

/* Gives t, which never ran, the result err and ends its inherited
 * task-local values: all of a run it gets before its finish. */
static void end_unstarted_as(struct worker *w, struct weft_task *t, int err)
{
    t->result = err;
    if (unlikely(t->locals))
        weft__task_end_locals_outside(w, t);
}

/* Ends t, which never ran, with err; returns false for the callers'
 * "ended without running". */
static bool end_unstarted(struct worker *w, struct weft_task *t, int err)
{
    end_unstarted_as(w, t, err);
    weft__task_finish(w, t);
    return false;
}

/* Moves new task t, taken from a queue, from NEW to RUNNING; false if
 * its joiner took it meanwhile (task.h, "Inline joins"): our entry was
 * stale, and its pin is let go. A resumed task is not claimed (task.h:
 * its next park consumes a wake instead). */
static bool claim_new(struct weft_task *t)
{
    if (weft__task_claim_new(t, TASK_RUNNING))
        return true;
    weft__task_unpin_entry(t);
    return false;
}

/* Gives t its stack on first run; false if it ended without running, or
 * its joiner runs it. */
static bool start_task(struct worker *w, struct weft_task *t)
{
    if (!claim_new(t))
        return false;
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
 * on its stack. Inlined where a switch returns. */
static inline __attribute__((always_inline)) void settle(struct worker *w)
{
    struct weft_task *t = w->prev;
    uint32_t s;

    if (!t)
        return;
    WEFT__CHECK(w == weft__worker_current() && t != w->current);
    WEFT__CHECK(weft__task_runnable(
        atomic_load_explicit(&t->state, memory_order_relaxed) &
        ~TASK_NOTIFIED));
    w->prev = NULL;
    switch (w->reason) {
    case SWITCH_YIELD:
        /* Still RUNNING (task.h): whoever runs it next exchanges that. */
        push_local(w, t);
        break;
    case SWITCH_PARK:
        /* release: the fiber is off its stack; pairs with the acquire CAS
         * in weft__task_wake(). Failing means NOTIFIED: run it again. s is
         * SCHED or RUNNING (task.h: a resumed task keeps its state). */
        s = atomic_load_explicit(&t->state, memory_order_relaxed) &
            ~TASK_NOTIFIED;
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

void weft__worker_settle(struct worker *w)
{
    settle(w);
}

/* Starts the clock of t's run, in debug mode or when weft_metrics samples
 * it (w->timed). */
static void start_run_clock(struct worker *w)
{
    if (unlikely(w->timed))
        w->run_start = weft__now();
}

/* A timed run ends: its length goes to the metrics, and debug mode warns
 * about one that went on for over 100 ms without suspending (it held up
 * every other task of its worker). */
static void check_run_length(struct worker *w)
{
    struct weft_task *t = w->current;
    int64_t ran;

    if (likely(!w->timed))
        return;
    ran = weft__now() - w->run_start;
    weft__metrics_ran(w, ran);
    if (w->rt->cfg.debug && ran > 100 * WEFT__NS_PER_MS)
        fprintf(stderr,
                "weft: task '%s' (%p) ran %lld ms without suspending\n",
                weft__task_name_or(t, ""), (void *)t,
                (long long)(ran / WEFT__NS_PER_MS));
}

/* Makes t w's running task, counting it towards the next poll. */
static void begin_run(struct worker *w, struct weft_task *t)
{
    if (until_poll(w))
        set_until_poll(w, until_poll(w) - 1);
    show_running(w, t);
    start_run_clock(w);
}

/* Makes t w's running task, about to be switched to; false if it ended
 * without running (cancelled before it started, or no stack) or its
 * joiner runs it. */
static bool prepare(struct worker *w, struct weft_task *t)
{
    weft__metrics_claimed(w, t);
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
    return until_poll(w) ? take_local(w) : NULL;
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

/* Records t, the running task's fiber owner (task.h), for
 * weft__worker_settle() and picks the fiber to switch to: the next local
 * task or the scheduler. */
static inline __attribute__((always_inline)) struct fiber *
switch_target(struct worker *w, struct weft_task *t, enum switch_reason why)
{
    struct weft_task *next;

    check_run_length(w);
    publish_spawned(w);
    w->prev = t;
    w->reason = why;
    while ((next = take_direct(w)) && !leave_to_scheduler(w, next))
        if (prepare(w, next))
            return &next->fiber;
    w->current = NULL;
    return &w->sched;
}

/* weft__worker_switch_out for self running inline: its host's fiber
 * switches (task.h, "Inline joins"), the host is what parks, yields and
 * is resumed, and self is shown as running again once it is. */
static __attribute__((noinline)) void switch_out_inline(
    struct worker *w, struct weft_task *self, enum switch_reason why)
{
    struct weft_task *t = weft__task_fiber_owner(self);

    weft__worker_enter(w);
    weft__fiber_switch_to(&t->fiber, switch_target(w, t, why));
    w = weft__worker_current();
    show_running(w, self);
    weft__worker_resume(w);
}

void weft__worker_switch_out(struct worker *w, enum switch_reason why)
{
    struct weft_task *t = w->current;

    if (unlikely(atomic_load_explicit(&t->host, memory_order_relaxed))) {
        switch_out_inline(w, t, why);
        return;
    }
    weft__worker_enter(w);
    weft__fiber_switch_to(&t->fiber, switch_target(w, t, why));
    /* Resumed, maybe on another worker. */
    w = weft__worker_current();
    settle(w);
    weft__worker_leave(w);
}

void weft__worker_resume(struct worker *w)
{
    settle(w);
    weft__worker_leave(w);
}

/*
 * Starts new task t in place of `donor`, whose function has returned: t
 * takes over donor's stack and fiber and its function is called from the
 * same frame, so a burst of short new tasks costs no switch and no stack
 * hand-back. False if t ended without running (cancelled before it
 * started) or its joiner runs it; donor then keeps its stack.
 */
static bool adopt(struct worker *w, struct weft_task *t,
                  struct weft_task *donor)
{
    if (!claim_new(t))
        return false;
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

    weft__worker_enter(w);
    check_run_length(w);
    publish_spawned(w);
    while ((next = take_direct(w))) {
        if (can_adopt(next, t)) {
            if (adopt(w, next, t)) {
                weft__worker_leave(w);
                return next;
            }
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

/* ---- stalls: the hand-off protocol (see "Stalls" above) ------------------ */

/* membarrier(PRIVATE_EXPEDITED) is registered: the rescuer's barrier
 * reaches the owners'. Written once, in weft__worker_stalls_init. */
static bool membarrier_ok;

/* The rescuer's half of the pair of barriers. */
static void heavy_fence(void)
{
    if (!membarrier_ok ||
        syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
        atomic_thread_fence(memory_order_seq_cst);
}

/* The owner found stalled set on entering: it waits for a pass in progress
 * to end, then takes its duties back. */
void weft__worker_reclaim(struct worker *w)
{
    weft__spin_lock(&w->handoff);
    atomic_store_explicit(&w->stalled, false, memory_order_relaxed);
    weft__spin_unlock(&w->handoff);
}

/* The signal handler of a kick (kick() below): on the owner's thread,
 * whatever it runs, it only has the backend enter the kernel; it reads no
 * state but the worker's fixed fields and the request counter. */
static void on_kick(int signo)
{
    struct worker *w = tls_worker;
    int saved_errno = errno;
    uint32_t req;

    (void)signo;
    if (w) {
        /* acquire: pairs with the release in kick(), so what the rescuer
         * prepared for this entry (SQEs) is visible to it. */
        req = atomic_load_explicit(&w->kick_req, memory_order_acquire);
        if (req != atomic_load_explicit(&w->kick_ack, memory_order_relaxed)) {
            w->rt->io_ops->kicked(w->io);
            atomic_store_explicit(&w->kick_ack, req, memory_order_release);
        }
    }
    errno = saved_errno;
}

/*
 * The kick signal is SIGURG, as in Go: ignored by default and rarely used.
 * It is taken only if its disposition is still the default (the runtime
 * does not replace a program's handler; weft_signal_wait refuses it), and
 * only worker threads unblock it. Without it, the backends that need the
 * owner's thread to post completions (io_uring with deferred or
 * cooperative task work) are reaped only when their owner comes back.
 */
#define KICK_SIGNAL SIGURG
static atomic_bool kick_installed;

static void install_kick(void)
{
    struct sigaction sa = { .sa_handler = on_kick, .sa_flags = SA_RESTART };
    struct sigaction old;

    if (sigaction(KICK_SIGNAL, NULL, &old) != 0 || old.sa_handler != SIG_DFL ||
        (old.sa_flags & SA_SIGINFO))
        return;
    sigemptyset(&sa.sa_mask);
    if (sigaction(KICK_SIGNAL, &sa, NULL) == 0)
        atomic_store(&kick_installed, true);
}

static void stalls_init_once(void)
{
    membarrier_ok = syscall(__NR_membarrier,
                            MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0,
                            0) == 0;
    install_kick();
}

bool weft__worker_stalls_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, stalls_init_once);
    return membarrier_ok;
}

/* Makes w's thread enter its backend (the driver's kicked()) and waits for
 * it, up to KICK_WAIT_NS: a thread that has not run the handler by then is
 * served at the next pass. A request left outstanding may still be run
 * later, once the owner is back: an extra kernel entry for its own ring,
 * which submits only SQEs it had published and posts only completions it
 * would reap anyway. */
#define KICK_WAIT_NS (2 * WEFT__NS_PER_MS)

static bool kick(void *arg)
{
    struct worker *w = arg;
    uint32_t req = atomic_load_explicit(&w->kick_req, memory_order_relaxed) + 1;
    int64_t until;
    unsigned spins = 0;

    if (!atomic_load(&kick_installed))
        return false;
    atomic_store_explicit(&w->kick_req, req, memory_order_release);
    if (pthread_kill(w->thread, KICK_SIGNAL) != 0)
        return false;
    until = weft__now() + KICK_WAIT_NS;
    /* acquire: pairs with the handler's release; the entry is done. */
    while (atomic_load_explicit(&w->kick_ack, memory_order_acquire) != req) {
        if (weft__now() > until)
            return false;
        weft__backoff(&spins);
    }
    return true;
}

/* Moves what only w's owner would run, its LIFO slot, the tasks its
 * queue claimed and those it holds unpublished, to the injection queue,
 * where every worker looks. By whoever holds w's duties. Returns whether
 * there was any. */
static bool inject_private(struct worker *w)
{
    struct weft__inject *q = &w->rt->inject;
    struct weft_task *claimed[WEFT_RUNQ_CLAIM_MAX];
    uint32_t n = weft__runq_take_claimed(&w->runq, claimed);
    bool any = w->lifo || w->nspawned || n;

    if (w->lifo) {
        weft__inject_push(q, &w->lifo, 1);
        w->lifo = NULL;
    }
    if (n)
        weft__inject_push(q, claimed, n);
    if (w->nspawned) {
        weft__inject_push(q, w->spawned, w->nspawned);
        w->nspawned = 0;
    }
    return any;
}

#define RESCUE_BATCH 64

bool weft__worker_rescue(struct worker *w, uint64_t b, bool serve,
                         void (*report)(struct worker *w,
                                        struct weft_task *t))
{
    struct runtime *rt = w->rt;
    struct weft_task *batch[RESCUE_BATCH];
    bool froze = false;
    uint32_t n;

    if (!weft__spin_trylock(&w->handoff))
        return false; /* the owner is taking its duties back */
    if (!atomic_load_explicit(&w->stalled, memory_order_relaxed)) {
        atomic_store_explicit(&w->stalled, true, memory_order_relaxed);
        heavy_fence();
        /* acquire: pairs with the owner's release in leave. */
        if (atomic_load_explicit(&w->beat, memory_order_acquire) != b) {
            atomic_store_explicit(&w->stalled, false, memory_order_relaxed);
            weft__spin_unlock(&w->handoff);
            return false;
        }
        froze = true;
    }
    if (froze && report)
        report(w, atomic_load_explicit(&w->running, memory_order_relaxed));
    if (!serve) {
        /* Still frozen: the owner takes its duties back through handoff,
         * which orders what report() read before what the owner does
         * next (the end of the task it named, say). */
        weft__spin_unlock(&w->handoff);
        return true;
    }
    inject_private(w);
    /* Its queue too: other workers steal only once their own runs dry,
     * which busy ones may not do for as long as w is stuck; the injection
     * queue they look at every POLL_INTERVAL runs. */
    while ((n = weft__runq_take(&w->runq, batch, RESCUE_BATCH)))
        weft__inject_push(&rt->inject, batch, n);
    weft__timers_fire(&w->timers, weft__now());
    if (w->io)
        rt->io_ops->rescue(w->io, kick, w);
    weft__spin_unlock(&w->handoff);
    weft__runtime_notify_work(rt);
    return true;
}

void weft__worker_hand_off(struct worker *w)
{
    bool moved;

    weft__worker_enter(w);
    moved = inject_private(w);
    weft__spin_lock(&w->handoff);
    atomic_store_explicit(&w->stalled, true, memory_order_relaxed);
    weft__spin_unlock(&w->handoff);
    if (moved || weft__runq_len(&w->runq))
        weft__runtime_notify_work(w->rt);
    weft__monitor_poke(w->rt);
    /* Back to the task, whose call may block: the rescuer serves w from
     * here on, stalled being set, until the next enter takes it back. */
    weft__worker_leave(w);
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
        if (weft__runq_stealable(&rt->workers[i]->runq))
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
    int ret;

    atomic_store_explicit(&w->parked, true, memory_order_relaxed);
    count(&w->stats.parks);
    ret = w->rt->io_ops->wait(w->io, timeout);
    if (likely(ret >= 0)) {
        w->io_backoff_ns = 0;
    } else {
        wait_failed(w, ret);
        back_off(w, timeout);
    }
    weft__monitor_unparked(w);
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
    sigset_t kick_set;

    tls_worker = w;
    weft__metrics_worker = w;
    sigemptyset(&kick_set);
    sigaddset(&kick_set, KICK_SIGNAL);
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
    if (!w->start_error) {
        if (atomic_load(&kick_installed))
            pthread_sigmask(SIG_UNBLOCK, &kick_set, NULL);
        run_loop(w);
    }
    /* The stopping thread may still be calling wake() on our backend. */
    pthread_barrier_wait(&rt->stop_barrier);
    if (w->io)
        rt->io_ops->fini(w->io);
    weft__overflow_thread_fini();
    tls_worker = NULL;
    return NULL;
}
