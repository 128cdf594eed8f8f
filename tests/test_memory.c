/*
 * Idle memory: once a burst of tasks has ended and the runtime is idle, its
 * workers give back what they cache beyond a small bound (stacks to the
 * shared pool, slabs all of whose stacks are pooled unmapped; task struct
 * blocks none of whose structs is in use handed back to the kernel), with
 * no task or timer of anyone's to wake them. A second burst works the same
 * way and leaves no more behind. The tests wait for the release to happen
 * (the test timeout bounds the wait) and check the pools' counters.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "helpers.h"
#include "runtime/runtime.h"
#include "runtime/stack.h"
#include "runtime/task.h"
#include "runtime/worker.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define T_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define T_SANITIZED 1
#endif

#define KIB 1024
#define MIB (1024 * 1024)

/* Tasks alive at once in a burst: 16 slabs of stacks, dozens of blocks of
 * task structs; far above what the workers keep. */
#define BURST 1024
/* Stack each of them touches. */
#define TOUCH (8 * KIB)

/* What the runtime holds outside its shared pools: stacks and task structs
 * that workers cache or tasks use. */
struct t_held {
    struct weft__stack_stats stacks;
    struct weft__task_stats tasks;
    unsigned held_stacks, held_structs;
};

static void t_held(struct runtime *rt, struct t_held *h)
{
    weft__stack_pool_stats(&rt->stacks, &h->stacks);
    weft__task_arena_stats(rt, &h->tasks);
    h->held_stacks = h->stacks.stacks - h->stacks.pooled;
    h->held_structs = h->tasks.blocks * weft__task_block_len() -
                      h->tasks.pooled;
}

static struct runtime *t_rt(weft_runtime_t *h)
{
    return weft__runtime_of(h);
}

/* The most an idle runtime may hold, besides `live` tasks' own: what its
 * workers keep, and the struct of its shutdown task, allocated at start. */
static unsigned t_stack_bound(unsigned live)
{
    return t_workers() * WEFT__STACK_CACHE_KEEP + live;
}

static unsigned t_struct_bound(unsigned live)
{
    return t_workers() * WEFT__TASK_CACHE_KEEP + 1 + live;
}

/*
 * Walks the registry as a task dump does, under its lock, while blocks may
 * be leaving it, and checks that it holds exactly the registered blocks,
 * each whole: a block whose pages went back while still listed would end
 * the walk early (its links read as zeros).
 */
static void t_assert_registry_whole(struct runtime *rt)
{
    uint32_t structs = 0, blocks;

    pthread_mutex_lock(&rt->reg_lock);
    for (struct weft_task *t = rt->registry; t; t = t->all_next)
        structs++;
    blocks = rt->tasks.nlive;
    pthread_mutex_unlock(&rt->reg_lock);
    cr_assert_eq(structs, blocks * weft__task_block_len());
}

static bool t_is_released(struct runtime *rt, unsigned live, struct t_held *h)
{
    t_assert_registry_whole(rt);
    t_held(rt, h);
    return h->held_stacks <= t_stack_bound(live) &&
           h->held_structs <= t_struct_bound(live);
}

/* Asserts what must hold once an idle runtime has given memory back. */
static void t_assert_released(const struct t_held *h, unsigned live)
{
    cr_assert_leq(h->held_stacks, t_stack_bound(live));
    cr_assert_leq(h->held_structs, t_struct_bound(live));
    /* A slab or block with nothing in use went back whole. */
    cr_assert_eq(h->stacks.full_slabs, 0);
    cr_assert_eq(h->tasks.full_blocks, 0);
    cr_assert_leq(h->stacks.slabs, h->held_stacks);
    /* Alone, the worker kept structs from as few blocks as can be: the
     * shutdown task's, and as many more as its cache fills. */
    if (t_workers() == 1)
        cr_assert_leq(h->tasks.blocks,
                      1 + (WEFT__TASK_CACHE_KEEP + live) /
                              weft__task_block_len() + 1);
}

/* ---- a burst ------------------------------------------------------------- */

struct burst {
    weft_event_t go;
    atomic_int waiting;
    struct t_held peak; /* with every task of the burst alive */
    struct runtime *rt;
    weft_task_t *handles[BURST]; /* the burst's, released by now */
};

/* Touches TOUCH bytes of its stack, then waits for the event. */
static int toucher(void *arg)
{
    struct burst *b = arg;
    volatile char buf[TOUCH];

    memset((char *)buf, 1, sizeof(buf));
    atomic_fetch_add(&b->waiting, 1);
    cr_assert_eq(weft_event_wait(&b->go, WEFT_NO_DEADLINE), 0);
    return buf[TOUCH / 2] == 1 ? 0 : -EIO;
}

/* BURST tasks alive at once, each with its stack touched; then they end. */
static int run_burst(void *arg)
{
    struct burst *b = arg;
    weft_task_t **t = b->handles;

    atomic_store(&b->waiting, 0);
    cr_assert_eq(weft_event_init(&b->go), 0);
    for (int i = 0; i < BURST; i++)
        cr_assert_eq(weft_spawn(&t[i], toucher, b), 0);
    while (atomic_load(&b->waiting) < BURST)
        cr_assert_eq(weft_yield(), 0);
    t_held(b->rt, &b->peak);
    cr_assert_eq(weft_event_set(&b->go), 0);
    for (int i = 0; i < BURST; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    cr_assert_eq(weft_event_destroy(&b->go), 0);
    return 0;
}

/* Waits, from outside the runtime, until its idle workers gave memory back:
 * nothing but the workers' own deferred wake can make that happen. */
static void t_until_released_outside(struct runtime *rt, struct t_held *h)
{
    const struct timespec ms = { 0, 1000 * 1000 };

    while (!t_is_released(rt, 0, h))
        nanosleep(&ms, NULL);
}

Test(memory, idle_runtime_gives_back_a_burst_and_a_second_one_alike,
     .timeout = 60)
{
    struct burst b;
    struct t_held after1, after2;
    weft_runtime_t *h;
    long rss_start, rss_idle1, rss_idle2;

    cr_assert_eq(weft_runtime_new(NULL, &h), 0);
    b.rt = t_rt(h);
    rss_start = t_rss_bytes();

    cr_assert_eq(weft_runtime_block_on(h, run_burst, &b), 0);
    cr_assert_geq(b.peak.held_stacks, BURST);
    cr_assert_geq(b.peak.held_structs, BURST);
    t_until_released_outside(b.rt, &after1);
    t_assert_released(&after1, 0);
    rss_idle1 = t_rss_bytes();

    cr_assert_eq(weft_runtime_block_on(h, run_burst, &b), 0);
    cr_assert_geq(b.peak.held_stacks, BURST);
    t_until_released_outside(b.rt, &after2);
    t_assert_released(&after2, 0);
    rss_idle2 = t_rss_bytes();
    /* The second burst reused the first one's address space. */
    cr_assert_leq(after2.tasks.chunks, after1.tasks.chunks);

    printf("memory: RSS %ld KiB at start, %ld KiB idle after a burst of %d "
           "tasks, %ld KiB after a second (%u workers)\n",
           rss_start / KIB, rss_idle1 / KIB, BURST, rss_idle2 / KIB,
           t_workers());
    fflush(stdout);
#ifndef T_SANITIZED
    /* Each burst touched over 8 MiB of stacks; what stays is the workers'
     * caches. Sanitizers charge shadow memory that these checks would
     * count. */
    cr_assert_lt(rss_idle1 - rss_start, 4 * MIB);
    cr_assert_lt(rss_idle2 - rss_idle1, 1 * MIB);
#endif
    cr_assert_eq(weft_runtime_free(h), 0);
}

/* ---- a release on a worker that keeps waking for a timer ---------------- */

/* The burst, then a wait in short sleeps: the main task's worker never
 * parks for long, and still gives its surplus back. */
static int burst_then_sleep(void *arg)
{
    struct burst *b = arg;
    struct t_held h;

    b->rt = weft__worker_current()->rt;
    cr_assert_eq(run_burst(b), 0);
    while (!t_is_released(b->rt, 1, &h))
        cr_assert_eq(weft_sleep_ms(5), 0);
    t_assert_released(&h, 1);
    cr_assert_eq(run_burst(b), 0);
    while (!t_is_released(b->rt, 1, &h))
        cr_assert_eq(weft_sleep_ms(5), 0);
    t_assert_released(&h, 1);
    return 0;
}

Test(memory, worker_woken_by_timers_still_gives_back, .timeout = 60)
{
    struct burst b;

    t_run(burst_then_sleep, &b);
}

/* ---- a stale wake of a struct whose pages went back ---------------------- */

/* A wake may reach a task struct after its task ended (runtime/task.h); if
 * the struct's block has been handed back since, it reads as free and the
 * wake does nothing. */
Test(memory, wake_of_a_struct_handed_back_does_nothing, .timeout = 60)
{
    struct burst b;
    struct t_held after;
    struct weft_task *t;
    weft_runtime_t *h;

    cr_assert_eq(weft_runtime_new(NULL, &h), 0);
    b.rt = t_rt(h);
    cr_assert_eq(weft_runtime_block_on(h, run_burst, &b), 0);
    t_until_released_outside(b.rt, &after);
    /* A block goes on the released list once its pages are discarded,
     * which the worker does outside reg_lock: wait for the first. */
    for (;;) {
        const struct timespec ms = { 0, 1000 * 1000 };

        pthread_mutex_lock(&b.rt->reg_lock);
        if (b.rt->tasks.released)
            break;
        pthread_mutex_unlock(&b.rt->reg_lock);
        nanosleep(&ms, NULL);
    }
    t = b.rt->tasks.blocks[b.rt->tasks.released - 1].first + 1;
    pthread_mutex_unlock(&b.rt->reg_lock);
    cr_assert_eq(atomic_load(&t->state), TASK_FREE);
    weft__task_wake(t);
    cr_assert_eq(atomic_load(&t->state), TASK_FREE);
    /* The runtime is none the worse for it. */
    cr_assert_eq(weft_runtime_block_on(h, run_burst, &b), 0);
    cr_assert_eq(weft_runtime_free(h), 0);
}

/* ---- handles of structs handed back -------------------------------------- */

/* A struct handed back and laid out again keeps counting generations from
 * past its old ones: a handle released before the pages went back never
 * names the task that reuses the struct (task.h). */
Test(memory, handles_of_structs_handed_back_stay_stale, .timeout = 60)
{
    static struct burst b;
    static weft_task_t *old[BURST];
    struct t_held after;
    weft_runtime_t *h;
    int reused = 0;

    cr_assert_eq(weft_runtime_new(NULL, &h), 0);
    b.rt = t_rt(h);
    cr_assert_eq(weft_runtime_block_on(h, run_burst, &b), 0);
    memcpy(old, b.handles, sizeof(old));
    t_until_released_outside(b.rt, &after);
    cr_assert_eq(weft_runtime_block_on(h, run_burst, &b), 0);
    for (int i = 0; i < BURST; i++) {
        for (int j = 0; j < BURST; j++) {
            if (weft__task_of(old[i]) != weft__task_of(b.handles[j]))
                continue;
            reused++;
            cr_assert_neq(old[i], b.handles[j], "handle %d came back", i);
        }
        cr_assert_eq(weft_cancel(old[i]), -EINVAL);
    }
    cr_assert_gt(reused, 0);
    cr_assert_eq(weft_runtime_free(h), 0);
}

/* ---- task structs freed outside any worker ------------------------------- */

#define OUTSIDE 200

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

/* Tasks spawned and detached from outside the runtime, after their end, so
 * that the detach frees their structs on this thread: the blocks they fill
 * go back from here. */
Test(memory, structs_freed_outside_a_worker_go_back, .timeout = 60)
{
    static weft_task_t *t[OUTSIDE];
    const struct timespec ms = { 0, 1000 * 1000 };
    struct weft__task_stats before, after;
    weft_runtime_t *h;

    cr_assert_eq(weft_runtime_new(NULL, &h), 0);
    weft__task_arena_stats(t_rt(h), &before);
    for (int i = 0; i < OUTSIDE; i++)
        cr_assert_eq(weft_spawn_from(h, &t[i], nothing, NULL), 0);
    for (int i = 0; i < OUTSIDE; i++) {
        /* acquire: pairs with the RMW in weft__task_finish(). */
        while (!(atomic_load_explicit(&weft__task_of(t[i])->handle,
                                      memory_order_acquire) &
                 HANDLE_DONE))
            nanosleep(&ms, NULL);
        cr_assert_eq(weft_detach(t[i]), 0);
    }
    weft__task_arena_stats(t_rt(h), &after);
    cr_assert_eq(after.full_blocks, 0);
    /* All but the block of the shutdown task, allocated at start, and the
     * one the spawns began in. */
    cr_assert_geq(after.released - before.released,
                  OUTSIDE / weft__task_block_len() - 1);
    cr_assert_eq(weft_runtime_free(h), 0);
}
