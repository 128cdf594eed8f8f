/*
 * Fork-join: the injection queue's batches under concurrent pushes and
 * pops, and joins that run their unstarted children inline (task.h,
 * "Inline joins"; worker.c, "Order of work"): identity, failures,
 * suspension, cancellation, stack room, exactly-once under stealing,
 * sharing with idle workers, and turns for other tasks. White-box: the
 * injection queue is driven directly (runtime/inject.h), and a child
 * tells whether it runs inline from its state.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "helpers.h"
#include "runtime/inject.h"
#include "runtime/task.h"

/* ---- the injection queue ------------------------------------------------- */

#define INJ_PRODUCERS 3
#define INJ_CONSUMERS 3
#define INJ_PER_PRODUCER 200000

/* Producer p's i-th value, as the pointer the queue carries: the queue
 * never dereferences it. */
#define INJ_VALUE(p, i) ((struct weft_task *)(uintptr_t)(((uintptr_t)(p) << 32) | ((uintptr_t)(i) + 1)))

struct inj {
    struct weft__inject q;
    atomic_int producers_left;
    atomic_long taken;
    unsigned char seen[INJ_PRODUCERS][INJ_PER_PRODUCER];
    atomic_bool error;
};

struct inj_thread {
    struct inj *s;
    unsigned id;
};

static uint32_t inj_rand(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static void *inj_producer(void *arg)
{
    struct inj_thread *th = arg;
    struct weft_task *batch[INJECT_SEG_CAP * 2 + 7];
    uint32_t x = 0x9e3779b9u * (th->id + 1), i = 0;

    while (i < INJ_PER_PRODUCER) {
        /* From one task to batches that straddle two segments. */
        uint32_t n = inj_rand(&x) % (sizeof(batch) / sizeof(*batch)) + 1;

        if (n > INJ_PER_PRODUCER - i)
            n = INJ_PER_PRODUCER - i;
        for (uint32_t k = 0; k < n; k++)
            batch[k] = INJ_VALUE(th->id, i + k);
        weft__inject_push(&th->s->q, batch, n);
        i += n;
    }
    atomic_fetch_sub(&th->s->producers_left, 1);
    return NULL;
}

static void *inj_consumer(void *arg)
{
    struct inj_thread *th = arg;
    struct inj *s = th->s;
    struct weft_task *out[700];
    /* Per producer, the last index this consumer saw: a FIFO hands each
     * consumer a producer's tasks in the order they were pushed. */
    long last[INJ_PRODUCERS];
    uint32_t x = 0x85ebca6bu * (th->id + 1);

    for (int p = 0; p < INJ_PRODUCERS; p++)
        last[p] = -1;
    for (;;) {
        bool done = atomic_load(&s->producers_left) == 0;
        uint32_t n = weft__inject_pop(&s->q, inj_rand(&x) % 700 + 1, out);

        for (uint32_t k = 0; k < n; k++) {
            uintptr_t v = (uintptr_t)out[k];
            unsigned p = (unsigned)(v >> 32);
            long i = (long)(v & 0xffffffffu) - 1;

            if (p >= INJ_PRODUCERS || i < 0 || i >= INJ_PER_PRODUCER ||
                i <= last[p] || s->seen[p][i]++) {
                atomic_store(&s->error, true);
                return NULL;
            }
            last[p] = i;
        }
        atomic_fetch_add(&s->taken, n);
        if (n == 0 && done)
            return NULL;
    }
}

/* Batches of 1 to 1027 tasks pushed by 3 threads and popped by 3 others,
 * up to 700 at a time: every task comes out exactly once, each producer's
 * in order, and the length ends at zero. */
Test(forkjoin, inject_batches_concurrent, .timeout = 120)
{
    struct inj *s = calloc(1, sizeof(*s));
    pthread_t pt[INJ_PRODUCERS], ct[INJ_CONSUMERS];
    struct inj_thread pa[INJ_PRODUCERS], ca[INJ_CONSUMERS];

    cr_assert_not_null(s);
    cr_assert_eq(weft__inject_init(&s->q), 0);
    atomic_init(&s->producers_left, INJ_PRODUCERS);
    for (unsigned i = 0; i < INJ_CONSUMERS; i++) {
        ca[i] = (struct inj_thread){ s, i };
        cr_assert_eq(pthread_create(&ct[i], NULL, inj_consumer, &ca[i]), 0);
    }
    for (unsigned i = 0; i < INJ_PRODUCERS; i++) {
        pa[i] = (struct inj_thread){ s, i };
        cr_assert_eq(pthread_create(&pt[i], NULL, inj_producer, &pa[i]), 0);
    }
    for (unsigned i = 0; i < INJ_PRODUCERS; i++)
        pthread_join(pt[i], NULL);
    for (unsigned i = 0; i < INJ_CONSUMERS; i++)
        pthread_join(ct[i], NULL);
    cr_assert(!atomic_load(&s->error), "a task came out twice, out of "
              "order, or was never pushed");
    cr_assert_eq(atomic_load(&s->taken), (long)INJ_PRODUCERS * INJ_PER_PRODUCER);
    for (int p = 0; p < INJ_PRODUCERS; p++)
        for (long i = 0; i < INJ_PER_PRODUCER; i++)
            cr_assert_eq(s->seen[p][i], 1, "task %d/%ld lost", p, i);
    cr_assert_eq(weft__inject_len(&s->q), 0);
    weft__inject_fini(&s->q);
    free(s);
}

/* One thread: pops return what was pushed, oldest first, across segment
 * boundaries, and a pop of an empty queue returns 0. */
Test(forkjoin, inject_fifo_across_segments, .timeout = 10)
{
    struct weft__inject q;
    static struct weft_task *in[3 * INJECT_SEG_CAP], *out[3 * INJECT_SEG_CAP];
    uint32_t got = 0, n;

    cr_assert_eq(weft__inject_init(&q), 0);
    for (uint32_t i = 0; i < 3 * INJECT_SEG_CAP; i++)
        in[i] = INJ_VALUE(0, i);
    weft__inject_push(&q, in, 7);
    weft__inject_push(&q, in + 7, 2 * INJECT_SEG_CAP);
    weft__inject_push(&q, in + 7 + 2 * INJECT_SEG_CAP, INJECT_SEG_CAP - 7);
    cr_assert_eq(weft__inject_len(&q), 3 * INJECT_SEG_CAP);
    while ((n = weft__inject_pop(&q, 333, out + got)) > 0)
        got += n;
    cr_assert_eq(got, 3 * INJECT_SEG_CAP);
    for (uint32_t i = 0; i < got; i++)
        cr_assert_eq(out[i], in[i], "slot %u", i);
    cr_assert_eq(weft__inject_len(&q), 0);
    /* Emptied, it fills again from its spare segments. */
    weft__inject_push(&q, in, 5);
    cr_assert_eq(weft__inject_pop(&q, 10, out), 5);
    cr_assert_eq(weft__inject_pop(&q, 10, out), 0);
    weft__inject_fini(&q);
}

/* ---- inline joins -------------------------------------------------------- */

/* Whether the running task runs inline, on its joiner's stack. */
static bool runs_inline(void)
{
    struct weft_task *t = weft__task_current();

    return atomic_load(&t->state) == TASK_INLINE &&
           atomic_load(&t->host) != NULL;
}

struct identity {
    weft_task_t *handle; /* what the spawner got */
    weft_task_t *self;   /* what the child saw */
    bool was_inline;
    char name[16];
};

static int note_identity(void *arg)
{
    struct identity *id = arg;

    id->self = weft_self();
    id->was_inline = runs_inline();
    snprintf(id->name, sizeof(id->name), "%s", weft_task_name(NULL));
    return 42;
}

static int join_runs_unstarted_child_inline(void *arg)
{
    weft_spawn_opts_t o = { .name = "kid" };
    struct identity id = { 0 };

    const char *mine = weft_task_name(NULL);

    (void)arg;
    cr_assert_eq(weft_spawn_ex(&id.handle, note_identity, &id, &o), 0);
    cr_assert_eq(weft_join(id.handle), 42);
    cr_assert(id.was_inline, "an unstarted child was not run inline");
    cr_assert_eq(id.self, id.handle, "weft_self is not the child's handle");
    cr_assert_str_eq(id.name, "kid");
    /* The joiner is itself again. */
    cr_assert_str_eq(weft_task_name(NULL), mine);
    cr_assert(!runs_inline());
    return 0;
}

Test(forkjoin, a_join_runs_its_unstarted_child_inline_as_itself, .timeout = 30)
{
    t_run_one_worker(join_runs_unstarted_child_inline, NULL);
}

/* ---- a join takes its child from a queue ---------------------------------- */

struct queued {
    weft_event_t wake_waker, wake_joiner;
    atomic_int runs;
    struct identity id;
};

static int queued_child(void *arg)
{
    struct queued *q = arg;

    atomic_fetch_add(&q->runs, 1);
    return note_identity(&q->id);
}

/* Parked until the joiner has published its child behind it (the waker
 * holds the LIFO slot), then wakes the joiner, which takes the slot and
 * so runs before the queued child. */
static int queued_waker(void *arg)
{
    struct queued *q = arg;

    cr_assert_eq(weft_event_wait(&q->wake_waker, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_event_set(&q->wake_joiner), 0);
    return 0;
}

static int join_queued_child(void *arg)
{
    struct queued q = { 0 };
    unsigned before = t_structs_in_use();
    weft_task_t *waker;

    (void)arg;
    cr_assert_eq(weft_event_init(&q.wake_waker), 0);
    cr_assert_eq(weft_event_init(&q.wake_joiner), 0);
    cr_assert_eq(weft_spawn(&waker, queued_waker, &q), 0);
    cr_assert_eq(weft_yield(), 0); /* the waker runs and parks */
    cr_assert_eq(weft_spawn(&q.id.handle, queued_child, &q), 0);
    /* The waker takes the LIFO slot; our wait publishes the child to the
     * queue behind it. */
    cr_assert_eq(weft_event_set(&q.wake_waker), 0);
    cr_assert_eq(weft_event_wait(&q.wake_joiner, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(atomic_load(&q.runs), 0, "the child started first");
    cr_assert_eq(weft_join(q.id.handle), 42);
    cr_assert(q.id.was_inline, "a queued, unstarted child was not run "
                               "inline by its join");
    cr_assert_eq(q.id.self, q.id.handle);
    /* Its queue entry, now stale, is popped and passed over. */
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(atomic_load(&q.runs), 1);
    cr_assert_eq(weft_join(waker), 0);
    /* The entry let the child's struct go. */
    cr_assert_eq(t_structs_in_use(), before);
    weft_event_destroy(&q.wake_waker);
    weft_event_destroy(&q.wake_joiner);
    return 0;
}

Test(forkjoin, a_join_takes_its_queued_unstarted_child_and_runs_it_inline,
     .timeout = 30)
{
    t_run_one_worker(join_queued_child, NULL);
}

static int fails(void *arg)
{
    (void)arg;
    cr_assert(runs_inline());
    return -EIO;
}

static int inline_failure_surfaces(void *arg)
{
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_spawn(&t, fails, NULL), 0);
    cr_assert_eq(weft_join(t), -EIO);
    return 0;
}

Test(forkjoin, an_inline_childs_failure_surfaces_in_the_join, .timeout = 30)
{
    t_run_one_worker(inline_failure_surfaces, NULL);
}

/* ---- an inline child that suspends --------------------------------------- */

/* Set for one worker, where nothing takes a child before its join. With
 * more, an idle worker may, and a child that suspended may go on on
 * another worker, its joiner's stack with it. */
static bool expect_inline;

static int sleep_inline(void *arg)
{
    (void)arg;
    cr_assert(runs_inline() || !expect_inline);
    cr_assert_eq(weft_sleep_ms(2), 0);
    cr_assert(runs_inline() || !expect_inline);
    return 7;
}

static int grandchild(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_sleep_ms(1), 0);
    return 5;
}

/* Joins a child of its own (inline again, nested) after reading a pipe
 * that a published task writes to once we wait on it. */
static int io_and_join_inline(void *arg)
{
    int *fds = arg;
    char c = 0;
    weft_task_t *g;

    cr_assert(runs_inline() || !expect_inline);
    cr_assert_eq(weft_read(fds[0], &c, 1, -1, WEFT_NO_DEADLINE), 1);
    cr_assert_eq(c, 'x');
    cr_assert_eq(weft_spawn(&g, grandchild, NULL), 0);
    cr_assert_eq(weft_join(g), 5);
    return 9;
}

static int write_x(void *arg)
{
    int *fds = arg;

    return weft_write(fds[1], "x", 1, -1, WEFT_NO_DEADLINE) == 1 ? 0 : -EIO;
}

static int inline_child_suspends(void *arg)
{
    weft_task_t *t, *w;
    int fds[2];

    (void)arg;
    cr_assert_eq(weft_spawn(&t, sleep_inline, NULL), 0);
    cr_assert_eq(weft_join(t), 7);
    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(weft_spawn(&w, write_x, fds), 0);
    /* Published: the writer runs once the reader below waits. */
    cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(weft_spawn(&t, io_and_join_inline, fds), 0);
    cr_assert_eq(weft_join(t), 9);
    cr_assert_eq(weft_join(w), 0);
    close(fds[0]);
    close(fds[1]);
    return 0;
}

Test(forkjoin, an_inline_child_may_sleep_do_io_and_join_its_own, .timeout = 30)
{
    expect_inline = true;
    t_run_one_worker(inline_child_suspends, NULL);
    expect_inline = false;
    t_run(inline_child_suspends, NULL);
}

/* ---- cancellation --------------------------------------------------------- */

struct cancel_case {
    weft_event_t never;
    weft_task_t *parent, *child;
    atomic_bool child_waits;
    bool was_inline;
    int child_saw;
};

static int wait_forever_inline(void *arg)
{
    struct cancel_case *c = arg;

    c->child = weft_self();
    c->was_inline = runs_inline();
    atomic_store(&c->child_waits, true);
    c->child_saw = weft_event_wait(&c->never, WEFT_NO_DEADLINE);
    return c->child_saw;
}

static int parent_joins(void *arg)
{
    struct cancel_case *c = arg;
    weft_task_t *t;

    cr_assert_eq(weft_spawn(&t, wait_forever_inline, c), 0);
    return weft_join(t);
}

static bool child_waits(void *arg)
{
    return atomic_load(&((struct cancel_case *)arg)->child_waits);
}

/* Cancels the parent (through_parent) or the child while the child waits
 * inline, on the parent's stack. */
static int cancel_inline(void *arg)
{
    bool through_parent = arg != NULL;
    struct cancel_case c = { 0 };

    cr_assert_eq(weft_event_init(&c.never), 0);
    cr_assert_eq(weft_spawn(&c.parent, parent_joins, &c), 0);
    while (!child_waits(&c))
        cr_assert_eq(weft_yield(), 0);
    /* The child runs inline: its wait parks the parent's fiber. */
    t_until_parked_in(c.parent, WHY_JOIN);
    cr_assert(c.was_inline);
    cr_assert_eq(weft_cancel(through_parent ? c.parent : c.child), 0);
    cr_assert_eq(weft_join(c.parent), -ECANCELED);
    cr_assert_eq(c.child_saw, -ECANCELED);
    cr_assert_eq(weft_event_destroy(&c.never), 0);
    return 0;
}

/* One worker: nothing steals the child before its parent joins it. */
Test(forkjoin, an_inline_child_is_cancelled_through_its_parents_join,
     .timeout = 30)
{
    t_run_one_worker(cancel_inline, (void *)1);
}

Test(forkjoin, an_inline_child_is_cancelled_through_its_own_handle,
     .timeout = 30)
{
    t_run_one_worker(cancel_inline, NULL);
}

static int never_runs(void *arg)
{
    atomic_store((atomic_bool *)arg, true);
    return 0;
}

static int cancelled_before_start(void *arg)
{
    atomic_bool ran = false;
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_spawn(&t, never_runs, &ran), 0);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t), -ECANCELED);
    cr_assert(!atomic_load(&ran));
    return 0;
}

Test(forkjoin, a_child_cancelled_before_its_inline_join_never_runs,
     .timeout = 30)
{
    t_run(cancelled_before_start, NULL);
}

/* ---- stacks --------------------------------------------------------------- */

/* Uses about `bytes` of stack: a recursion the compiler cannot flatten. */
static volatile int sink;

static __attribute__((noinline)) int burn(size_t bytes)
{
    volatile char pad[1024];

    pad[0] = (char)bytes;
    if (bytes <= sizeof(pad))
        return pad[0];
    sink = burn(bytes - sizeof(pad)) + pad[0];
    return sink;
}

struct level {
    int depth;
    size_t child_stack; /* 0: the default */
};

/* A tree of joins down to `depth`: every task checks that the stack it
 * runs on has the room it was promised, then uses most of it. */
static int deep_level(void *arg)
{
    struct level *l = arg, next = { l->depth - 1, l->child_stack };
    weft_spawn_opts_t o = { .stack_size = l->child_stack };
    weft_task_t *t;

    cr_assert_geq(t_stack_room() + 4096, t_stack_promised(),
                  "room %zu, promised %zu", t_stack_room(),
                  t_stack_promised());
    if (l->depth == 0) {
        burn(t_stack_promised() / 2);
        return 0;
    }
    cr_assert_eq(weft_spawn_ex(&t, deep_level, &next, &o), 0);
    cr_assert_eq(weft_join(t), 0);
    return 0;
}

static int deep_default(void *arg)
{
    /* Deeper than one stack's room for inline runs: some levels start
     * on stacks of their own. */
    struct level root = { 3000, 0 };

    (void)arg;
    return deep_level(&root);
}

static int deep_custom(void *arg)
{
    /* Bigger than any room a default stack leaves: never inline. */
    struct level big = { 3, 4u << 20 };
    /* The minimum: inline while there is room, on its own stack after. */
    struct level small = { 40, 16u << 10 };

    (void)arg;
    cr_assert_eq(deep_level(&big), 0);
    return deep_level(&small);
}

Test(forkjoin, deep_joins_run_only_on_stacks_with_the_promised_room,
     .timeout = 60)
{
    t_run(deep_default, NULL);
    t_run(deep_custom, NULL);
}

/* ---- exactly once, under stealing ---------------------------------------- */

#define ONCE_K 4
#define ONCE_DEPTH 7 /* 21845 tasks per tree */

struct once_node {
    int depth;
    atomic_int runs;
    struct once_node *kids;
};

static int once_tree(void *arg)
{
    struct once_node *n = arg;
    weft_task_t *h[ONCE_K];
    int sum = 1;

    cr_assert_eq(atomic_fetch_add(&n->runs, 1), 0, "a task ran twice");
    if (n->depth == 0)
        return 1;
    for (int i = 0; i < ONCE_K; i++)
        cr_assert_eq(weft_spawn(&h[i], once_tree, &n->kids[i]), 0);
    for (int i = 0; i < ONCE_K; i++) {
        int r = weft_join(h[i]);

        cr_assert_gt(r, 0);
        sum += r;
    }
    return sum;
}

static struct once_node *once_build(int depth)
{
    struct once_node *n = calloc(1, sizeof(*n));

    cr_assert_not_null(n);
    n->depth = depth;
    if (depth > 0) {
        n->kids = calloc(ONCE_K, sizeof(*n->kids));
        cr_assert_not_null(n->kids);
        for (int i = 0; i < ONCE_K; i++) {
            struct once_node *k = once_build(depth - 1);

            n->kids[i] = *k;
            free(k);
        }
    }
    return n;
}

static void once_free_kids(struct once_node *n)
{
    for (int i = 0; n->depth > 0 && i < ONCE_K; i++)
        once_free_kids(&n->kids[i]);
    free(n->kids);
}

static long once_check(struct once_node *n)
{
    long total = 1;

    cr_assert_eq(atomic_load(&n->runs), 1);
    atomic_store(&n->runs, 0);
    for (int i = 0; n->depth > 0 && i < ONCE_K; i++)
        total += once_check(&n->kids[i]);
    return total;
}

static int once_main(void *arg)
{
    struct once_node *root = arg;
    unsigned before = t_structs_in_use();
    long tasks = 0;

    for (int round = 0; round < 20; round++) {
        weft_task_t *t;
        int got;

        cr_assert_eq(weft_spawn(&t, once_tree, root), 0);
        got = weft_join(t);
        tasks = once_check(root);
        cr_assert_eq(got, tasks);
    }
    /* Every struct is freed, those whose stale queue entries (children
     * their joins took from a queue) the workers still had to pop too. */
    while (t_structs_in_use() > before)
        cr_assert_eq(weft_sleep_ms(1), 0);
    return 0;
}

Test(forkjoin, every_task_of_a_tree_runs_exactly_once_while_workers_steal,
     .timeout = 120)
{
    struct once_node *root = once_build(ONCE_DEPTH);

    t_run_two_or_more(once_main, root);
    once_free_kids(root);
    free(root);
}

/* ---- a spinning spawner still shares ------------------------------------- */

static int mark(void *arg)
{
    atomic_store((atomic_bool *)arg, true);
    return 0;
}

static bool marked(void *arg)
{
    return atomic_load((atomic_bool *)arg);
}

/* Spawns two and spins, without suspending, until the first ran: another
 * worker, idle, is hungry, so the second spawn publishes the first (the
 * latest spawn stays with its spawner until it suspends). */
static int spawn_and_spin(void *arg)
{
    struct runtime *rt = weft__runtime_of(weft_runtime_current());
    atomic_bool ran = false, latest_ran = false;
    weft_task_t *t, *u;

    (void)arg;
    while (!atomic_load(&rt->idle.nidle))
        cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(weft_spawn(&t, mark, &ran), 0);
    cr_assert_eq(weft_spawn(&u, mark, &latest_ran), 0);
    while (!marked(&ran))
        ;
    cr_assert(!marked(&latest_ran));
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(weft_join(u), 0);
    return 0;
}

Test(forkjoin, a_spawn_is_published_at_once_when_a_worker_is_idle,
     .timeout = 30)
{
    weft_config_t cfg;

    weft_config_init(&cfg);
    cfg.workers = 2;
    /* Without the stall monitor, which would also hand it over. */
    cfg.stall_ms = WEFT_STALL_OFF;
    t_run_with(&cfg, spawn_and_spin, NULL);
}

/* ---- others get their turn ------------------------------------------------ */

#define FAIR_K 10
#define FAIR_DEPTH 5 /* 111111 tasks */

struct fair {
    atomic_bool tree_done;
    atomic_long turns_during_tree;
};

static int fair_node(void *arg)
{
    int depth = (int)(intptr_t)arg;
    weft_task_t *h[FAIR_K];

    if (depth == 0)
        return 0;
    for (int i = 0; i < FAIR_K; i++)
        cr_assert_eq(weft_spawn(&h[i], fair_node,
                                (void *)(intptr_t)(depth - 1)), 0);
    for (int i = 0; i < FAIR_K; i++)
        cr_assert_eq(weft_join(h[i]), 0);
    return 0;
}

static int yielder(void *arg)
{
    struct fair *f = arg;

    while (!atomic_load(&f->tree_done)) {
        atomic_fetch_add(&f->turns_during_tree, 1);
        cr_assert_eq(weft_yield(), 0);
    }
    return 0;
}

static int fair_main(void *arg)
{
    struct fair f = { 0 };
    weft_task_t *y, *t;

    (void)arg;
    cr_assert_eq(weft_spawn(&y, yielder, &f), 0);
    cr_assert_eq(weft_yield(), 0); /* the yielder is in the queue */
    cr_assert_eq(weft_spawn(&t, fair_node, (void *)(intptr_t)FAIR_DEPTH), 0);
    cr_assert_eq(weft_join(t), 0);
    atomic_store(&f.tree_done, true);
    /* A chain of inline joins gave the yielding task turns. */
    cr_assert_gt(atomic_load(&f.turns_during_tree), 2);
    cr_assert_eq(weft_join(y), 0);
    return 0;
}

Test(forkjoin, a_ready_task_gets_turns_during_a_chain_of_inline_joins,
     .timeout = 60)
{
    t_run_one_worker(fair_main, NULL);
}

/* A new task published to the queue (not the chain's: its spawner waits
 * for the tree) also starts before a long chain of inline joins ends,
 * if later than a woken one. */
struct fair_new {
    atomic_bool tree_done;
    atomic_bool started_during_tree;
    weft_event_t done;
};

static int note_start(void *arg)
{
    struct fair_new *f = arg;

    atomic_store(&f->started_during_tree, !atomic_load(&f->tree_done));
    return 0;
}

static int tree_then_done(void *arg)
{
    struct fair_new *f = arg;
    weft_task_t *t;

    cr_assert_eq(weft_spawn(&t, fair_node, (void *)(intptr_t)FAIR_DEPTH), 0);
    cr_assert_eq(weft_join(t), 0);
    atomic_store(&f->tree_done, true);
    cr_assert_eq(weft_event_set(&f->done), 0);
    return 0;
}

static int fair_new_main(void *arg)
{
    struct fair_new f = { 0 };
    weft_task_t *n, *r;

    (void)arg;
    cr_assert_eq(weft_event_init(&f.done), 0);
    cr_assert_eq(weft_spawn(&n, note_start, &f), 0);
    cr_assert_eq(weft_spawn(&r, tree_then_done, &f), 0);
    /* Our wait publishes both: the tree's root to the LIFO slot, to run
     * first, the other to the queue behind it. */
    cr_assert_eq(weft_event_wait(&f.done, WEFT_NO_DEADLINE), 0);
    cr_assert(atomic_load(&f.started_during_tree),
              "a queued new task waited for the whole chain");
    cr_assert_eq(weft_join(n), 0);
    cr_assert_eq(weft_join(r), 0);
    weft_event_destroy(&f.done);
    return 0;
}

Test(forkjoin, a_queued_new_task_starts_during_a_chain_of_inline_joins,
     .timeout = 60)
{
    t_run_one_worker(fair_new_main, NULL);
}
