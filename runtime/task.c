/*
 * Tasks: spawning, the state machine of task.h, joining, detaching and
 * cancelling.
 *
 * Lifetime: a task struct is released when both its run has finished and its
 * handle (if one was given out) has been joined or detached. HANDLE_HELD and
 * HANDLE_DONE in t->handle record the two; whoever sets the second bit frees
 * the struct. A task spawned without a handle skips that RMW entirely.
 * Handles carry the struct's generation (task.h): a handle that was
 * released, or whose struct now holds another task, is refused with
 * -EINVAL by every call that takes one.
 *
 * Cancellation is edge-triggered, as in asyncio: weft_cancel() sets
 * t->cancel and wakes t; the first suspension point that takes the request
 * returns -ECANCELED. A task that never started finishes with -ECANCELED
 * without running.
 */
#include "task.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "config.h"
#include "local.h"
#include "mem.h"
#include "metrics.h"
#include "runtime.h"
#include "stack.h"
#include "worker.h"

/* weft__task_park, inlined into the waits of this file. */
static inline __attribute__((always_inline)) void park(
    struct weft_task *t, enum weft__why why, const void *where)
{
    /* An inline task parks its host: the protocol runs on the state of
     * the task whose fiber switches (task.h, "Inline joins"). */
    struct weft_task *f = weft__task_fiber_owner(t);
    uint32_t s;

    WEFT__CHECK(t == weft__task_current() && why != WHY_NONE);
    weft__task_note_wait(t, why, where);
    /* Already woken since it last ran (or since the wake that resumed it,
     * task.h): consume the wake without a switch. acquire: pairs with the
     * release in weft__task_wake(). The plain load first keeps the usual
     * case free of a locked RMW: a wake that lands after it fails the
     * worker's CAS to IDLE, which requeues the task. */
    s = atomic_load_explicit(&f->state, memory_order_relaxed);
    WEFT__CHECK(weft__task_runnable(s & ~TASK_NOTIFIED));
    if (!(s & TASK_NOTIFIED) ||
        !atomic_compare_exchange_strong_explicit(&f->state, &s,
                                                 s & ~TASK_NOTIFIED,
                                                 memory_order_acquire,
                                                 memory_order_relaxed))
        weft__worker_switch_out(weft__worker_current(), SWITCH_PARK);
    weft__task_note_wait(t, WHY_NONE, NULL);
}

void weft__task_park(struct weft_task *t, enum weft__why why,
                     const void *where)
{
    park(t, why, where);
}

void weft__task_wake(struct weft_task *t)
{
    uint32_t s = atomic_load_explicit(&t->state, memory_order_relaxed);
    unsigned spins = 0;

    for (;;) {
        if (s == TASK_DONE || s == TASK_FREE)
            return;
        if (s == TASK_IDLE) {
            /* acq_rel: acquire pairs with the release CAS to IDLE in the
             * worker (the fiber is fully switched out); release publishes
             * our writes to whoever runs the task. */
            if (atomic_compare_exchange_weak_explicit(
                    &t->state, &s, TASK_SCHED, memory_order_acq_rel,
                    memory_order_relaxed)) {
                struct worker *w = weft__worker_current();

                w = weft__metrics_wake(w, t);
                weft__worker_enqueue(w, t, true);
                return;
            }
            continue;
        }
        if (unlikely(s == TASK_INLINE)) {
            /* Its host parks and runs for it. acquire: pairs with the
             * joiner's store of host. */
            struct weft_task *h =
                atomic_load_explicit(&t->host, memory_order_acquire);

            if (unlikely(!h)) {
                /* Just claimed (task.h, "Inline joins"): its joiner
                 * stores the host next. */
                weft__backoff(&spins);
                s = atomic_load_explicit(&t->state, memory_order_relaxed);
                continue;
            }
            t = h;
            s = atomic_load_explicit(&t->state, memory_order_relaxed);
            continue;
        }
        /* Queued or running: mark it notified with an RMW even if the bit
         * is already set. A plain load would let our condition store sit in
         * the store buffer while the task's worker moves it to RUNNING,
         * checks the condition, sees it false and parks: the RMW orders our
         * store before the worker's exchange to RUNNING (or we see RUNNING
         * and its CAS to IDLE fails on the bit). release: pairs with the
         * acquire RMWs on state in the worker and in weft__task_park(). */
        if (atomic_compare_exchange_weak_explicit(
                &t->state, &s, s | TASK_NOTIFIED, memory_order_release,
                memory_order_relaxed))
            return;
    }
}

/* A request to a task that waits for t inline, on the same stack: a join
 * passes its cancellation on to the task it awaits (weft__task_wait_done),
 * so the innermost inline task takes it. */
static bool take_joiners_cancel(struct weft_task *t)
{
    for (struct weft_task *p = t->inline_parent; p; p = p->inline_parent)
        if (weft__task_take_own_cancel(p))
            return true;
    return false;
}

bool weft__task_take_cancel_slow(struct weft_task *t)
{
    return weft__task_take_own_cancel(t) || take_joiners_cancel(t);
}

void weft__task_restore_cancel(struct weft_task *t)
{
    atomic_store_explicit(&t->cancel, true, memory_order_relaxed);
}

int weft__task_block(struct weft_task *t, bool (*done)(void *), void *arg,
                     int64_t deadline, enum weft__why why, const void *where)
{
    bool armed = false;
    int ret = 0;

    for (;;) {
        if (done(arg))
            break;
        if (weft__task_take_cancel(t)) {
            ret = -ECANCELED;
            break;
        }
        if (deadline != WEFT_NO_DEADLINE && !armed) {
            if (weft__now() >= deadline) {
                ret = -ETIMEDOUT;
                break;
            }
            ret = weft__timer_arm(&weft__worker_current()->timers, t,
                                  deadline);
            if (ret < 0)
                break;
            armed = true;
        } else if (armed && atomic_load_explicit(&t->timer.fired,
                                                 memory_order_acquire)) {
            ret = -ETIMEDOUT;
            break;
        }
        park(t, why, where);
    }
    if (armed)
        weft__timer_disarm(t);
    return ret;
}

/* ---- allocation ---------------------------------------------------------- */

/*
 * Task structs come in blocks of whole pages, laid out in chunks that stay
 * mapped until the runtime ends: a wake may reach a struct after its task
 * ended (see the top of task.h), so its memory must stay readable. What goes
 * back to the kernel is the pages of a block none of whose structs is in
 * use: they read as zeros from then on, TASK_FREE, where a wake stops.
 *
 * A worker takes structs from its own cache and puts them back there,
 * whatever block they came from: no lock. Under reg_lock:
 * - the shared pool keeps, per block, the structs that idle workers gave
 *   back (weft__task_cache_release) and those freed outside any worker;
 * - a block whose structs are all in the pool leaves the pool and the
 *   registry, its pages are discarded without the lock, and it goes on the
 *   released list, to be laid out afresh when needed;
 * - a worker whose cache is empty takes one block's pooled structs, else a
 *   released block, else a fresh one, mapping a chunk when needed.
 * Pooled structs pin their block's pages, but only until the rest of the
 * block is given back too.
 */

#define BLOCK_MIN 16     /* task structs in a block, at least */
#define CHUNK_BLOCKS 256 /* blocks mapped at once */
/* Fresh blocks faulted in at once: a burst of spawns lays out one block
 * after another, and a fault per page costs more than its share of one
 * populating call. */
#define POPULATE_BLOCKS 16
#define RELEASE_SLICE 256 /* structs pooled per hold of reg_lock */

_Static_assert(TASK_FREE == 0, "a discarded page must read as free tasks");

static size_t block_bytes(void)
{
    return weft__page_round(BLOCK_MIN * sizeof(struct weft_task));
}

uint32_t weft__task_block_len(void)
{
    return (uint32_t)(block_bytes() / sizeof(struct weft_task));
}

/* Under reg_lock: maps a chunk of fresh blocks. */
static int add_chunk(struct weft__task_arena *a)
{
    size_t len = CHUNK_BLOCKS * block_bytes();
    void *c;

    if (a->nchunks == a->cap_chunks &&
        weft__grow_table((void **)&a->chunks, &a->cap_chunks, sizeof(void *),
                         16, a->nchunks) < 0)
        return -ENOMEM;
    c = weft__pages_map(len);
    if (!c)
        return -ENOMEM;
    a->chunks[a->nchunks++] = c;
    a->fresh = c;
    a->fresh_end = (char *)c + len;
    return 0;
}

/* Under reg_lock: a block with no struct laid out (a released one, else a
 * fresh one); its index, or -ENOMEM. *populate is set to the bytes of
 * fresh blocks the caller is to fault in from the block's start (0 for
 * none): the next POPULATE_BLOCKS when it starts such a run. */
static int64_t take_block(struct weft__task_arena *a, size_t *populate)
{
    size_t run = POPULATE_BLOCKS * block_bytes();
    uint32_t i;

    if (a->released) {
        i = a->released - 1;
        a->released = a->blocks[i].next;
        a->nreleased--;
        return i;
    }
    if (a->fresh == a->fresh_end && add_chunk(a) < 0)
        return -ENOMEM;
    if (a->nblocks == a->cap_blocks &&
        weft__grow_table((void **)&a->blocks, &a->cap_blocks,
                         sizeof(*a->blocks), 64, a->nblocks) < 0)
        return -ENOMEM;
    i = a->nblocks++;
    a->blocks[i] = (struct weft__task_block){
        .first = (struct weft_task *)a->fresh
    };
    /* Chunks hold whole runs: CHUNK_BLOCKS is a multiple of the run. */
    if ((size_t)(a->fresh - (char *)a->chunks[a->nchunks - 1]) % run == 0)
        *populate = run;
    a->fresh += block_bytes();
    return i;
}
_Static_assert(CHUNK_BLOCKS % POPULATE_BLOCKS == 0,
               "a chunk holds whole runs");

/*
 * Lays out block i, whose structs read as zeros (fresh or discarded pages):
 * chained through next and all_next in address order, so that the registry
 * holds the block whole, first struct first. Their generations start from
 * gen_floor: past every generation a handle of the block's released
 * structs could carry, which the discarded pages forgot. Returns the first.
 */
static struct weft_task *lay_out(struct weft_task *b, uint32_t i,
                                 uint16_t gen_floor)
{
    uint32_t n = weft__task_block_len();

    /* The tag of a handle takes the address's top bits (task.h): checked
     * once per block, where the address is decided, not per spawn. */
    WEFT__ASSERT(((uintptr_t)(b + n) & ~HANDLE_ADDR_MASK) == 0);
    for (uint32_t k = 0; k < n; k++) {
        atomic_store_explicit(&b[k].handle,
                              (uint32_t)gen_floor << HANDLE_GEN_SHIFT,
                              memory_order_relaxed);
        weft__spin_init(&b[k].join_lock);
        b[k].timer.index = TIMER_UNQUEUED;
        b[k].block = i;
        b[k].next = b[k].all_next = k + 1 < n ? &b[k + 1] : NULL;
    }
    return b;
}

/* Under reg_lock: up to max pooled structs of one block, chained through
 * next, their count in *n; NULL if the pool is empty. */
static struct weft_task *take_pooled(struct weft__task_arena *a, uint32_t max,
                                     uint32_t *n)
{
    struct weft__task_block *b;
    struct weft_task *first, *t;

    *n = 0;
    if (!a->npooled)
        return NULL;
    while (!a->blocks[a->cursor].nfree)
        a->cursor = (a->cursor + 1) % a->nblocks;
    b = &a->blocks[a->cursor];
    first = t = b->free;
    for (*n = 1; *n < max && t->next; ++*n)
        t = t->next;
    b->free = t->next;
    t->next = NULL;
    b->nfree -= *n;
    a->npooled -= *n;
    return first;
}

/* Under reg_lock: puts t in the shared pool. If that completes its block,
 * the block leaves the pool, chained onto *dying (through next). */
static void pool_put(struct weft__task_arena *a, struct weft_task *t,
                     uint32_t *dying)
{
    struct weft__task_block *b = &a->blocks[t->block];

    t->next = b->free;
    b->free = t;
    a->npooled++;
    if (++b->nfree < weft__task_block_len())
        return;
    a->npooled -= b->nfree;
    b->nfree = 0;
    b->free = NULL;
    b->next = *dying;
    *dying = t->block + 1;
}

/* One past the highest generation of the block starting at b (wrapping):
 * where its structs start again once its pages are discarded. */
static uint16_t next_gen_floor(const struct weft_task *b)
{
    uint16_t top = (uint16_t)weft__task_gen(b);

    for (uint32_t k = 1; k < weft__task_block_len(); k++) {
        uint16_t g = (uint16_t)weft__task_gen(&b[k]);

        /* Generations only grow (mod 2^16), and those of one block stay
         * within half the circle of each other: compare by distance. */
        if ((uint16_t)(g - top) < 0x8000)
            top = g;
    }
    return (uint16_t)(top + 1);
}

/*
 * Called with reg_lock held, for the blocks chained from `dying`: takes
 * them out of the registry, discards their pages (dropping the lock: nobody
 * else reaches them now) and puts them on the released list.
 */
static void release_blocks(struct runtime *rt, uint32_t dying)
{
    struct weft__task_arena *a = &rt->tasks;
    struct iovec iov[64];
    uint32_t idx[64];

    while (dying) {
        unsigned n = 0;

        for (; dying && n < 64; n++) {
            idx[n] = dying - 1;
            a->blocks[idx[n]].gen_floor =
                next_gen_floor(a->blocks[idx[n]].first);
            iov[n] = (struct iovec){ a->blocks[idx[n]].first, block_bytes() };
            dying = a->blocks[idx[n]].next;
            weft__runtime_unregister(rt, idx[n]);
        }
        a->nlive -= n;
        pthread_mutex_unlock(&rt->reg_lock);
        weft__pages_discard(iov, n);
        pthread_mutex_lock(&rt->reg_lock);
        for (unsigned k = 0; k < n; k++) {
            a->blocks[idx[k]].next = a->released;
            a->released = idx[k] + 1;
        }
        a->nreleased += n;
    }
}

/* A block laid out and registered, for the caller alone; NULL on ENOMEM. */
static struct weft_task *new_block(struct runtime *rt)
{
    struct weft_task *b;
    uint16_t gen_floor = 0;
    size_t populate = 0;
    int64_t i;

    pthread_mutex_lock(&rt->reg_lock);
    i = take_block(&rt->tasks, &populate);
    if (i >= 0)
        gen_floor = rt->tasks.blocks[i].gen_floor;
    b = i < 0 ? NULL : rt->tasks.blocks[i].first;
    pthread_mutex_unlock(&rt->reg_lock);
    if (!b)
        return NULL;
    /* Outside the lock: the writes fault the block's pages in. The other
     * blocks of the run may be laid out meanwhile by other workers: the
     * call only makes present what is not. */
    if (populate)
        weft__pages_populate(b, populate);
    lay_out(b, (uint32_t)i, gen_floor);
    pthread_mutex_lock(&rt->reg_lock);
    weft__runtime_register(rt, (uint32_t)i);
    rt->tasks.nlive++;
    pthread_mutex_unlock(&rt->reg_lock);
    return b;
}

struct weft_task *weft__task_struct_new(struct runtime *rt)
{
    struct weft_task *t;
    uint32_t n, dying = 0;

    pthread_mutex_lock(&rt->reg_lock);
    t = take_pooled(&rt->tasks, 1, &n);
    pthread_mutex_unlock(&rt->reg_lock);
    if (t || !(t = new_block(rt)))
        return t;
    /* The rest of the block waits in the pool (it cannot complete it: t is
     * out). */
    pthread_mutex_lock(&rt->reg_lock);
    for (struct weft_task *u = t->next, *next; u; u = next) {
        next = u->next;
        pool_put(&rt->tasks, u, &dying);
    }
    pthread_mutex_unlock(&rt->reg_lock);
    t->next = NULL;
    return t;
}

/* Refills w's empty cache: one block's pooled structs, else a block laid
 * out for it. Returns false if there was no memory for either. */
static bool refill(struct worker *w)
{
    struct runtime *rt = w->rt;
    uint32_t n;

    pthread_mutex_lock(&rt->reg_lock);
    w->free_tasks = take_pooled(&rt->tasks, UINT32_MAX, &n);
    pthread_mutex_unlock(&rt->reg_lock);
    if (!w->free_tasks)
        w->free_tasks = new_block(rt);
    return w->free_tasks != NULL;
}

static struct weft_task *task_alloc(struct worker *w)
{
    struct weft_task *t;

    if (unlikely(!w->free_tasks) && !refill(w))
        return NULL;
    t = w->free_tasks;
    w->free_tasks = t->next;
    return t;
}

bool weft__task_cache_exceeds(const struct worker *w, unsigned keep)
{
    const struct weft_task *t = w->free_tasks;

    for (unsigned n = 0; t && n < keep; n++)
        t = t->next;
    return t != NULL;
}

/*
 * Under reg_lock: `keep` structs for a worker's cache, taken where they
 * pin no page that could go: the pooled structs of blocks that something
 * else holds, then the structs of blocks about to go (taken off *dying).
 */
static struct weft_task *take_back(struct weft__task_arena *a, uint32_t keep,
                                   uint32_t *dying)
{
    struct weft_task *head = NULL, **tail = &head;
    uint32_t n, len = weft__task_block_len();

    for (; keep && (*tail = take_pooled(a, keep, &n)); keep -= n)
        while (*tail)
            tail = &(*tail)->next;
    for (; keep && *dying; keep -= n) {
        struct weft__task_block *b = &a->blocks[*dying - 1];

        *dying = b->next;
        n = keep < len ? keep : len;
        for (uint32_t k = 0; k < len; k++) {
            struct weft_task *t = &b->first[k];

            if (k < n) {
                *tail = t;
                tail = &t->next;
            } else {
                t->next = b->free;
                b->free = t;
            }
        }
        b->nfree = len - n;
        a->npooled += len - n;
    }
    *tail = NULL;
    return head;
}

void weft__task_cache_release(struct worker *w, unsigned keep)
{
    struct runtime *rt = w->rt;
    struct weft_task *t = w->free_tasks;
    uint32_t dying = 0;

    /* All of them go to the pool and `keep` come back (take_back), so that
     * what the worker keeps pins as few pages as can be. In slices, so that
     * a worker starting tasks meanwhile waits little. */
    while (t) {
        pthread_mutex_lock(&rt->reg_lock);
        for (unsigned n = 0; t && n < RELEASE_SLICE; n++) {
            struct weft_task *next = t->next;

            pool_put(&rt->tasks, t, &dying);
            t = next;
        }
        pthread_mutex_unlock(&rt->reg_lock);
    }
    pthread_mutex_lock(&rt->reg_lock);
    w->free_tasks = take_back(&rt->tasks, keep, &dying);
    if (dying)
        release_blocks(rt, dying);
    pthread_mutex_unlock(&rt->reg_lock);
}

void weft__task_arena_stats(struct runtime *rt, struct weft__task_stats *s)
{
    struct weft__task_arena *a = &rt->tasks;

    pthread_mutex_lock(&rt->reg_lock);
    *s = (struct weft__task_stats){
        .blocks = a->nlive, .pooled = a->npooled,
        .released = a->nreleased, .chunks = a->nchunks,
    };
    for (uint32_t i = 0; i < a->nblocks; i++)
        s->full_blocks += a->blocks[i].nfree == weft__task_block_len();
    pthread_mutex_unlock(&rt->reg_lock);
}

void weft__task_arena_fini(struct weft__task_arena *a)
{
    for (uint32_t i = 0; i < a->nchunks; i++)
        munmap(a->chunks[i], CHUNK_BLOCKS * block_bytes());
    weft__free(a->chunks, a->cap_chunks * sizeof(void *));
    weft__free(a->blocks, a->cap_blocks * sizeof(*a->blocks));
}

/* A heap copy of name, cut to TASK_NAME_MAX - 1 bytes; NULL if memory is
 * short. Kept out of the struct: most tasks have no name, and every byte of
 * a task struct is new memory in a burst of spawns. */
static char *copy_name(const char *name)
{
    size_t n = strnlen(name, TASK_NAME_MAX - 1);
    char *c = weft__alloc(n + 1);

    if (c) {
        memcpy(c, name, n);
        c[n] = '\0';
    }
    return c;
}

/* A dump reads the name of a live task from another thread (dump.c): it
 * loads the pointer with acquire, under reg_lock, and a name is freed only
 * under that lock. Named tasks alone pay for it; their spawn already
 * allocated. */
void weft__task_drop_name(struct weft_task *t)
{
    char *name = t->name;

    if (!name)
        return;
    pthread_mutex_lock(&t->rt->reg_lock);
    __atomic_store_n(&t->name, NULL, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&t->rt->reg_lock);
    weft__free(name, strlen(name) + 1);
}

void weft__task_free(struct weft_task *t)
{
    struct worker *w = weft__worker_current();
    struct runtime *rt = t->rt;
    uint32_t dying = 0;

    WEFT__CHECK(!t->locals);
    if (unlikely(t->name))
        weft__task_drop_name(t);
    atomic_store_explicit(&t->state, TASK_FREE, memory_order_relaxed);
    if (w && w->rt == rt) {
        t->next = w->free_tasks;
        w->free_tasks = t;
        return;
    }
    pthread_mutex_lock(&rt->reg_lock);
    pool_put(&rt->tasks, t, &dying);
    if (dying)
        release_blocks(rt, dying);
    pthread_mutex_unlock(&rt->reg_lock);
}

int weft__task_init(struct weft_task *t, struct runtime *rt, weft_fn_t fn,
                    void *arg, const weft_spawn_opts_t *opts, bool held)
{
    const char *name = opts ? opts->name : NULL;
    uint32_t gen = weft__task_gen(t) + 1;

    /* fn and name: atomic, since a dump reads them (dump.c). */
    __atomic_store_n(&t->fn, fn, __ATOMIC_RELAXED);
    t->arg = arg;
    t->rt = rt;
    t->stack = NULL;
    t->result = 0;
    t->started = false;
    weft__task_note_wait(t, WHY_NONE, NULL);
    t->scope_deadline = WEFT_NO_DEADLINE;
    t->scope_depth = 0;
    /* 0 for the default size, however asked for: such a task may start
     * on a cached or adopted stack. */
    t->stack_size = opts && opts->stack_size != rt->cfg.stack_size ?
                    opts->stack_size : 0;
    /* release: a dump that loads it with acquire reads the copy. */
    __atomic_store_n(&t->name, name ? copy_name(name) : NULL,
                     __ATOMIC_RELEASE);
    t->joiners = NULL;
    t->woke_at = 0; /* no sampled wake pending (metrics.h) */
    t->on_finish = NULL;
    t->inline_parent = NULL;
    atomic_store_explicit(&t->host, NULL, memory_order_relaxed);
    atomic_store_explicit(&t->cancel, false, memory_order_relaxed);
    atomic_store_explicit(&t->shutdown_seen, false, memory_order_relaxed);
    atomic_store_explicit(&t->state, TASK_NEW, memory_order_relaxed);
    /* A plain store, no RMW: the struct is free, and a stale handle only
     * reads the word or CASes on it expecting its own (older) generation. */
    t->detached_at_spawn = !held;
    atomic_store_explicit(&t->handle,
                          gen << HANDLE_GEN_SHIFT | (held ? HANDLE_HELD : 0),
                          memory_order_relaxed);
    return name && !t->name ? -ENOMEM : 0;
}

/* ---- the task body and its end ------------------------------------------- */

void weft__task_entry(void *arg)
{
    struct weft_task *t = arg;

    weft__fiber_entered(&t->fiber);
    weft__worker_resume(weft__worker_current());
    do {
        t->result = t->fn(t->arg);
        /* The task's last step: its destructors run in it (local.h). */
        if (unlikely(t->locals))
            weft__local_end(t);
    } while ((t = weft__worker_task_done(weft__worker_current())));
    weft__panic("task_entry: a finished task was resumed");
}

void weft__task_report_failure(const struct weft_task *t, const char *how)
{
    /* A task with a finish hook is heard of through it (a group child, a
     * runtime call): nobody is left without its result. */
    if (!t->rt->cfg.debug || t->result >= 0 || t->result == -ECANCELED ||
        t->on_finish)
        return;
    fprintf(stderr,
            "weft: task '%s' (%p) failed with %d (%s) and %s\n",
            weft__task_name_or(t, ""), (const void *)t, t->result,
            strerror(-t->result), how);
}

/* Wakes the joiners listed on t, whose state is already DONE: a joiner
 * that takes the lock after us sees that and does not list itself. */
static void wake_joiners(struct weft_task *t)
{
    struct weft__join_waiter *j;

    weft__spin_lock(&t->join_lock);
    j = t->joiners;
    t->joiners = NULL;
    weft__spin_unlock(&t->join_lock);
    while (j) {
        struct weft__join_waiter *next = j->next;
        struct weft_task *jt = j->task;

        /* After this store the waiter's stack frame may be gone. */
        atomic_store_explicit(&j->done, true, memory_order_release);
        weft__task_wake(jt);
        j = next;
    }
}

/* Run on w outside any task, since none is t's: the task w runs (if any)
 * is hidden meanwhile, so that a destructor's weft calls neither act for
 * nor suspend a task that is not theirs. */
void weft__task_end_locals_outside(struct worker *w, struct weft_task *t)
{
    struct weft_task *current = w->current;

    w->current = NULL;
    weft__local_end(t);
    w->current = current;
}

/* The end of t's run up to its handle: false if t had no handle and is
 * freed. */
static bool finish_run(struct worker *w, struct weft_task *t)
{
    /* A task that ran ended its task-local values in weft__task_entry,
     * one that did not in weft__task_end_locals_outside. */
    WEFT__CHECK(!t->locals);
    weft__count(&w->stats.finished);
    if (t->stack) {
        weft__fiber_destroy(&t->fiber);
        weft__stack_put(&w->rt->stacks, &w->stacks, t->stack);
        t->stack = NULL;
    }
    if (t->on_finish)
        t->on_finish(t);
    if (t->detached_at_spawn) {
        weft__task_report_failure(t, "was detached");
        weft__task_free(t);
        return false;
    }
    return true;
}

#define NO_RELEASE UINT32_MAX /* end_run: no handle to release (gens < 2^16) */

/*
 * Records the end of t's run: DONE in its state, for wakers and joins, then
 * HANDLE_DONE in its handle word, with the CAS that also releases the
 * handle of generation gen if that is still held (an inline join ends its
 * child and itself at once). Listed joiners are woken before HANDLE_DONE is
 * set, so nobody frees t while we read the list. acq_rel: pairs with the
 * RMWs in release_handle() and weft__task_unpin_entry(), so whichever
 * side comes last sees the others' writes and frees, and with a joiner's
 * RMW of HANDLE_WAITED. Frees t if its handle and any stale queue entry
 * are gone; returns whether the handle of gen was released here.
 */
static bool end_run(struct weft_task *t, uint32_t gen)
{
    uint32_t prev = atomic_load_explicit(&t->handle, memory_order_relaxed);
    uint32_t next;
    bool woken = false, released;

    /* release: pairs with the acquire load of state in joins. */
    atomic_store_explicit(&t->state, TASK_DONE, memory_order_release);
    do {
        if ((prev & HANDLE_WAITED) && !woken) {
            wake_joiners(t);
            woken = true;
        }
        released = prev >> HANDLE_GEN_SHIFT == gen && (prev & HANDLE_HELD);
        next = prev | HANDLE_DONE;
        if (released)
            next ^= HANDLE_HELD | HANDLE_JOINED;
    } while (!atomic_compare_exchange_weak_explicit(
        &t->handle, &prev, next, memory_order_acq_rel, memory_order_relaxed));
    if (released || !(prev & HANDLE_HELD)) {
        /* A joiner may have released the handle before we got here. */
        if (!released && !(prev & HANDLE_JOINED))
            weft__task_report_failure(t, "was detached");
        if (!(prev & HANDLE_ENTRY))
            weft__task_free(t);
    }
    return released;
}

void weft__task_finish(struct worker *w, struct weft_task *t)
{
    if (finish_run(w, t))
        end_run(t, NO_RELEASE);
}

int weft__task_finish_joined(struct worker *w, struct weft_task *t,
                             uint32_t gen)
{
    int result = t->result;

    return finish_run(w, t) && end_run(t, gen) ? result : -EINVAL;
}

/*
 * Drops the handle of generation gen if it is still held (HELD set, JOINED
 * clear: flipping both is one CAS) and frees t if its run has also ended.
 * Returns false, touching nothing, if that handle was already released:
 * the CAS compares generation and HELD together, so a stale handle cannot
 * release the handle of the task now in the struct, and of two racing
 * releases of one handle exactly one succeeds. acq_rel: pairs with the RMW
 * in end_run(), so whichever side comes second sees the other's
 * writes and frees.
 */
static bool release_handle(struct weft_task *t, uint32_t gen, bool joined)
{
    uint32_t flip = HANDLE_HELD | (joined ? HANDLE_JOINED : 0);
    uint32_t prev = atomic_load_explicit(&t->handle, memory_order_relaxed);

    do {
        if (prev >> HANDLE_GEN_SHIFT != gen || !(prev & HANDLE_HELD))
            return false;
    } while (!atomic_compare_exchange_weak_explicit(
        &t->handle, &prev, prev ^ flip, memory_order_acq_rel,
        memory_order_relaxed));
    if (prev & HANDLE_DONE) {
        if (!joined)
            weft__task_report_failure(t, "was detached");
        if (!(prev & HANDLE_ENTRY))
            weft__task_free(t);
    }
    return true;
}

bool weft__task_pin_entry(struct weft_task *t, uint32_t gen)
{
    uint32_t prev = atomic_load_explicit(&t->handle, memory_order_relaxed);

    /* relaxed: the claim's release CAS on state publishes the pin to the
     * worker whose CAS from NEW then fails. */
    do {
        if (prev >> HANDLE_GEN_SHIFT != gen || !(prev & HANDLE_HELD))
            return false;
    } while (!atomic_compare_exchange_weak_explicit(
        &t->handle, &prev, prev | HANDLE_ENTRY, memory_order_relaxed,
        memory_order_relaxed));
    return true;
}

bool weft__task_unpin_entry(struct weft_task *t)
{
    /* acq_rel: as the RMWs of end_run() and release_handle(). */
    uint32_t prev = atomic_fetch_and_explicit(&t->handle, ~HANDLE_ENTRY,
                                              memory_order_acq_rel);

    WEFT__CHECK(prev & HANDLE_ENTRY);
    if (!(prev & HANDLE_DONE) || (prev & HANDLE_HELD))
        return false;
    weft__task_free(t);
    return true;
}

/* The generation a handle value carries. */
static uint32_t tag_of(const weft_task_t *h)
{
    return (uint32_t)((uintptr_t)h >> HANDLE_TAG_SHIFT);
}

int weft__task_check(const weft_task_t *h, const struct weft_task *self,
                     struct weft_task **t)
{
    struct weft_task *u = weft__task_of(h);
    uint32_t word;

    if (!u)
        return -EINVAL;
    word = atomic_load_explicit(&u->handle, memory_order_relaxed);
    if (word >> HANDLE_GEN_SHIFT != tag_of(h) ||
        (!(word & HANDLE_HELD) && u != self))
        return -EINVAL;
    *t = u;
    return 0;
}

/* ---- public API ---------------------------------------------------------- */

/* weft__task_prepare on worker w (NULL outside a worker). */
static int prepare(struct worker *w, struct weft_task **out, weft_fn_t fn,
                   void *arg, const weft_spawn_opts_t *opts, bool held)
{
    struct weft_task *self = w ? w->current : NULL, *t;

    if (!self)
        return -EPERM;
    /* Bounded before anything rounds it to pages: a size near SIZE_MAX
     * would wrap there. */
    if (!fn || (opts && opts->stack_size &&
                (opts->stack_size < WEFT__MIN_STACK ||
                 opts->stack_size > WEFT__MAX_STACK)))
        return -EINVAL;
    t = task_alloc(w);
    if (!t)
        return -ENOMEM;
    if (weft__task_init(t, w->rt, fn, arg, opts, held) < 0)
        goto out_free_task;
    /* A spawner without task-local values pays this one test. */
    if (unlikely(self->locals) && weft__local_inherit(t, self) < 0)
        goto out_free_task;
    *out = t;
    return 0;

out_free_task:
    weft__task_free(t);
    return -ENOMEM;
}

int weft__task_prepare(struct weft_task **out, weft_fn_t fn, void *arg,
                       const weft_spawn_opts_t *opts, bool held)
{
    return prepare(weft__worker_current(), out, fn, arg, opts, held);
}

void weft__task_start(struct weft_task *t)
{
    struct worker *w = weft__worker_current();

    weft__count(&w->stats.spawned);
    weft__worker_spawned(w, t);
}

int weft_spawn_ex(weft_task_t **out, weft_fn_t fn, void *arg,
                  const weft_spawn_opts_t *opts)
{
    struct worker *w = weft__worker_current();
    struct weft_task *t;
    int ret = prepare(w, &t, fn, arg, opts, out != NULL);

    if (ret < 0)
        return ret;
    if (out)
        *out = weft__task_handle(t);
    weft__count(&w->stats.spawned);
    weft__worker_spawned(w, t);
    return 0;
}

int weft_spawn(weft_task_t **out, weft_fn_t fn, void *arg)
{
    return weft_spawn_ex(out, fn, arg, NULL);
}

bool weft__task_add_joiner(struct weft_task *t, struct weft__join_waiter *j)
{
    bool added = false;
    uint32_t s;

    weft__spin_lock(&t->join_lock);
    /* Before the state is read (task.h, HANDLE_WAITED). acq_rel: pairs
     * with the end's CAS of the word. */
    atomic_fetch_or_explicit(&t->handle, HANDLE_WAITED, memory_order_acq_rel);
    /* FREE counts as finished: a task that joins a handle another task is
     * releasing must not wait on a struct that nobody will wake (its join
     * then fails, see weft_join). acquire: pairs with the end's store of
     * DONE, which may come before our RMW of the handle word and then
     * without the lock: the caller reads t's result next. */
    s = atomic_load_explicit(&t->state, memory_order_acquire);
    if (s != TASK_DONE && s != TASK_FREE) {
        j->next = t->joiners;
        t->joiners = j;
        added = true;
    }
    weft__spin_unlock(&t->join_lock);
    return added;
}

bool weft__task_remove_joiner(struct weft_task *t, struct weft__join_waiter *j)
{
    struct weft__join_waiter **p;
    bool removed = false;

    weft__spin_lock(&t->join_lock);
    for (p = &t->joiners; *p; p = &(*p)->next) {
        if (*p == j) {
            *p = j->next;
            removed = true;
            break;
        }
    }
    weft__spin_unlock(&t->join_lock);
    return removed;
}

static bool joiner_done(void *arg)
{
    struct weft__join_waiter *j = arg;

    /* acquire: pairs with the release in wake_joiners(). */
    return atomic_load_explicit(&j->done, memory_order_acquire);
}

bool weft__task_is_done(const struct weft_task *t)
{
    return atomic_load_explicit(&((struct weft_task *)t)->state,
                                memory_order_acquire) == TASK_DONE;
}

int weft__task_wait_done(struct weft_task *self, struct weft_task *t,
                         int64_t deadline, bool pass_cancel,
                         const void *where)
{
    struct weft__join_waiter j = { .task = self };
    int ret;

    atomic_init(&j.done, false);
    if (weft__task_is_done(t))
        return 0;
    if (!weft__task_add_joiner(t, &j))
        return 0;
    for (;;) {
        ret = weft__task_block(self, joiner_done, &j, deadline, WHY_JOIN,
                               where);
        if (ret == 0 || !pass_cancel)
            break;
        /* Awaiting a task passes our cancellation (or an expired scope)
         * on to it, and still waits for it to end. */
        weft__task_cancel(t);
        deadline = WEFT_NO_DEADLINE;
    }
    if (ret < 0 && !weft__task_remove_joiner(t, &j)) {
        /* t finished while we gave up: the wait succeeded after all. */
        weft__spin_until(&j.done);
        if (ret == -ECANCELED)
            weft__task_restore_cancel(self);
        ret = 0;
    }
    return ret;
}

int weft__task_await_check(const struct weft_task *self, const weft_task_t *h,
                           struct weft_task **t)
{
    if (!self)
        return -EPERM;
    /* self is checked before HELD: weft_self() of a task spawned without
     * a handle is its own, not a stale one. */
    if (weft__task_check(h, self, t) < 0)
        return -EINVAL;
    if (*t == self)
        return -EDEADLK;
    return atomic_load_explicit(&(*t)->handle, memory_order_relaxed) &
                   HANDLE_HELD ? 0 : -EINVAL;
}

int weft_join(weft_task_t *h)
{
    struct weft_task *self = weft__task_current(), *t;
    int result = weft__task_await_check(self, h, &t);

    if (result)
        return result;
    /* A child not started yet runs here, on our stack (task.h, "Inline
     * joins"), when nothing could end the wait before it does: no
     * deadline, and a cancellation is passed on to it anyway. Its end
     * releases the handle too. */
    if (self->scope_deadline == WEFT_NO_DEADLINE && !weft__task_is_done(t) &&
        weft__worker_join_inline(self, t, tag_of(h), &result, WEFT__WHERE))
        return result;
    /* An enclosing timeout scope expiring is passed on like a cancel. */
    weft__task_wait_done(self, t, self->scope_deadline, true,
                         WEFT__WHERE);
    result = t->result;
    /* Fails only if another task joined or detached h meanwhile. */
    return release_handle(t, tag_of(h), true) ? result : -EINVAL;
}

int weft_detach(weft_task_t *h)
{
    struct weft_task *t = weft__task_of(h);

    if (!t || !release_handle(t, tag_of(h), false))
        return -EINVAL;
    return 0;
}

void weft__task_cancel(struct weft_task *t)
{
    /* release: pairs with the acquire in weft__task_take_cancel(). */
    atomic_store_explicit(&t->cancel, true, memory_order_release);
    weft__task_wake(t);
}

int weft_cancel(weft_task_t *h)
{
    struct weft_task *t;

    if (weft__task_check(h, weft__task_current(), &t) < 0)
        return -EINVAL;
    weft__task_cancel(t);
    return 0;
}

int weft_yield(void)
{
    struct worker *w = weft__worker_current();
    struct weft_task *t = w ? w->current : NULL;

    if (!t)
        return -EPERM;
    weft__task_note_wait(t, WHY_YIELD, WEFT__WHERE);
    weft__worker_switch_out(w, SWITCH_YIELD);
    weft__task_note_wait(t, WHY_NONE, NULL);
    return weft__task_take_cancel(t) ? -ECANCELED : 0;
}

weft_task_t *weft_self(void)
{
    struct weft_task *t = weft__task_current();

    return t ? weft__task_handle(t) : NULL;
}

const char *weft_task_name(const weft_task_t *h)
{
    struct weft_task *self = weft__task_current(), *t = self;

    if (h && weft__task_check(h, self, &t) < 0)
        return "";
    return t ? weft__task_name_or(t, "") : "";
}
