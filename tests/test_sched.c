/*
 * The scheduler: work stealing, the park/wake protocol under stress (lost
 * wakeups hang, so the stress tests run under a watchdog), LIFO-slot
 * fairness and run queue overflow. White-box: the tests drive the internal
 * park/wake API of runtime/task.h and read worker and runtime state.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "helpers.h"
#include "runtime/runtime.h"
#include "runtime/task.h"
#include "runtime/worker.h"

/* ---- helpers ------------------------------------------------------------- */

/* Spins for ns without suspending, so that the worker stays busy. */
static void t_busy_ns(int64_t ns)
{
    int64_t end = weft_now_ns() + ns;

    while (weft_now_ns() < end)
        ;
}

static struct runtime *t_runtime(void)
{
    return weft__worker_current()->rt;
}

/*
 * A thread that aborts the test process with a message when a progress
 * counter stops moving for WATCHDOG_S seconds: a lost wakeup then fails with
 * a diagnosis instead of only Criterion's timeout.
 */
#define WATCHDOG_S 10

struct t_watchdog {
    pthread_t thread;
    const char *what;
    _Atomic long *progress;
    atomic_bool stop;
};

static void *t_watchdog_main(void *arg)
{
    struct t_watchdog *wd = arg;
    long last = atomic_load(wd->progress);
    int still = 0;

    while (!atomic_load(&wd->stop)) {
        struct timespec tick = { 0, 100 * 1000 * 1000 };
        long now;

        nanosleep(&tick, NULL);
        now = atomic_load(wd->progress);
        still = now == last ? still + 1 : 0;
        last = now;
        if (still >= WATCHDOG_S * 10) {
            fprintf(stderr, "%s: no progress for %d s (stuck at %ld): "
                    "lost wakeup\n", wd->what, WATCHDOG_S, now);
            abort();
        }
    }
    return NULL;
}

static void t_watchdog_start(struct t_watchdog *wd, const char *what,
                             _Atomic long *progress)
{
    wd->what = what;
    wd->progress = progress;
    atomic_init(&wd->stop, false);
    cr_assert_eq(pthread_create(&wd->thread, NULL, t_watchdog_main, wd), 0);
}

static void t_watchdog_stop(struct t_watchdog *wd)
{
    atomic_store(&wd->stop, true);
    pthread_join(wd->thread, NULL);
}

/* ---- stealing ------------------------------------------------------------ */

/* Fits the local queue (WEFT_RUNQ_CAP 8 in test builds) with the LIFO slot,
 * so no task reaches the injection queue: another worker only gets one by
 * stealing it. */
#define STEAL_TASKS 7
/* Rounds until another worker has stolen one: the first few usually do, but
 * on a loaded machine the idle worker's thread may not get a CPU in time. */
#define STEAL_MAX_ROUNDS 500

static int record_worker(void *arg)
{
    t_busy_ns(200 * 1000);
    *(int *)arg = weft_worker_id();
    return 0;
}

static uint64_t t_total_steals(struct runtime *rt)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < rt->nworkers; i++)
        n += atomic_load(&rt->workers[i]->stats.steals);
    return n;
}

static int spawn_and_record(void *arg)
{
    bool seen[WEFT__MAX_WORKERS] = { false };
    unsigned distinct = 0, want = t_workers() > 1 ? 2 : 1;
    int r;

    (void)arg;
    for (r = 0; r < STEAL_MAX_ROUNDS && distinct < want; r++) {
        weft_task_t *t[STEAL_TASKS];
        int ran_on[STEAL_TASKS];

        /* No suspension while spawning: every task starts in our queue. */
        for (int i = 0; i < STEAL_TASKS; i++)
            cr_assert_eq(weft_spawn(&t[i], record_worker, &ran_on[i]), 0);
        for (int i = 0; i < STEAL_TASKS; i++)
            cr_assert_eq(weft_join(t[i]), 0);
        for (int i = 0; i < STEAL_TASKS; i++) {
            int id = ran_on[i];

            cr_assert(id >= 0 && (unsigned)id < t_workers(), "id %d", id);
            if (!seen[id])
                distinct++;
            seen[id] = true;
        }
    }
    if (t_workers() == 1) {
        cr_assert(seen[0] && distinct == 1);
        return 0;
    }
    cr_assert_gt(distinct, 1, "every task of %d rounds ran on one worker", r);
    cr_assert_gt(t_total_steals(t_runtime()), 0);
    return 0;
}

Test(sched, spawned_tasks_are_stolen_by_idle_workers, .timeout = 30)
{
    t_run(spawn_and_record, NULL);
}

/* ---- ping-pong across workers -------------------------------------------- */

/*
 * Two tasks hand a token back and forth: side i waits until token % 2 == i,
 * bumps it and wakes the other. Every hand-off is a weft__task_wake() that
 * must not be lost, whether the peer is parked (IDLE), on its way to park
 * (RUNNING: the wake sets NOTIFIED and the worker's CAS to IDLE fails) or
 * queued.
 *
 * Waking a parked task puts it in the waker's LIFO slot, so left alone the
 * two sides settle on one worker and never race each other. In the stress
 * game ("spread") a side whose wake pulled the peer into its own LIFO slot
 * yields: the yield puts it in the stealable run queue, and while the peer
 * spins for its turn on this worker an idle one steals it, so the two sides
 * mostly run on different workers at once. Each side spins for its turn
 * before parking, usually long, sometimes briefly or not at all, so wakes
 * land at every point of a park: before it, during the switch to the
 * scheduler, and once the task is IDLE.
 */
#define PINGPONG_HANDOFFS 1000000L

struct pingpong {
    _Atomic long token;
    _Atomic(struct weft_task *) side[2];
    _Atomic long cross_worker; /* hand-offs to a peer last on another worker */
    _Atomic int where[2];      /* worker each side last ran on */
    long limit;
    bool spread;               /* spin and yield as described above */
    atomic_bool stop;          /* for the LIFO test: ends a limitless game */
};

struct pp_side {
    struct pingpong *pp;
    int me;
    uint32_t rng;
};

static bool t_game_over(struct pingpong *pp)
{
    return atomic_load(&pp->token) >= pp->limit || atomic_load(&pp->stop);
}

static bool my_turn(void *arg)
{
    struct pp_side *s = arg;

    return atomic_load(&s->pp->token) % 2 == s->me || t_game_over(s->pp);
}

static uint32_t t_next_random(struct pp_side *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 17;
    s->rng ^= s->rng << 5;
    return s->rng;
}

/* How long to spin before parking: not at all or briefly now and then,
 * else up to SPIN_NS (bounded in time, not iterations, so that a peer
 * preempted by the OS costs the same on any machine). */
#define SPIN_NS (20 * 1000)

static int64_t t_spin_ns(struct pp_side *s)
{
    if (!s->pp->spread)
        return 0;
    switch (t_next_random(s) & 15) {
    case 0: return 0;
    case 1: return 200;
    default: return SPIN_NS;
    }
}

/* Whether t is in the calling worker's LIFO slot. The slot is a duty a
 * rescuer may hold (see "Stalls" in runtime/worker.c): read inside the
 * runtime, as the worker's own code does. */
static bool t_lifo_holds(struct weft_task *t)
{
    struct worker *w = weft__worker_current();
    bool held;

    weft__worker_enter(w);
    held = w->lifo == t;
    weft__worker_leave(w);
    return held;
}

static void t_wait_turn(struct pp_side *s, struct weft_task *self)
{
    int64_t spin_ns = t_spin_ns(s);

    /* A peer in our LIFO slot runs only once we park: spinning is futile. */
    if (t_lifo_holds(atomic_load(&s->pp->side[!s->me])))
        spin_ns = 0;
    if (spin_ns) {
        int64_t end = weft_now_ns() + spin_ns;

        do {
            for (int i = 0; i < 16; i++) {
                if (my_turn(s))
                    return;
                weft__cpu_relax();
            }
        } while (weft_now_ns() < end);
    }
    cr_assert_eq(weft__task_block(self, my_turn, s, WEFT_NO_DEADLINE, WHY_SYNC,
                                  NULL), 0);
}

/* Wakes the peer; true if that put it in our own LIFO slot. */
static bool t_wake_peer(struct pp_side *s)
{
    struct weft_task *peer = atomic_load(&s->pp->side[!s->me]);

    if (!peer)
        return false;
    weft__task_wake(peer);
    return t_lifo_holds(peer);
}

static int play(void *arg)
{
    struct pp_side *s = arg;
    struct pingpong *pp = s->pp;
    struct weft_task *self = weft__task_current();

    /* seq_cst store then load, against the peer's token store then side
     * load: either the peer sees us and wakes us, or we see its token. */
    atomic_store(&pp->side[s->me], self);
    for (;;) {
        int id;

        t_wait_turn(s, self);
        if (t_game_over(pp))
            break;
        id = weft_worker_id();
        atomic_store(&pp->where[s->me], id);
        if (atomic_load(&pp->where[!s->me]) != id)
            atomic_fetch_add(&pp->cross_worker, 1);
        atomic_fetch_add(&pp->token, 1);
        /* Try to spread out again one time in four: a failed try costs a
         * spin, and the tasks sharing a worker are a case worth keeping. */
        if (t_wake_peer(s) && pp->spread && t_next_random(s) % 4 == 0)
            cr_assert_eq(weft_yield(), 0);
    }
    /* The last hand-off (or stop) must reach the peer too. */
    t_wake_peer(s);
    return 0;
}

static void t_pingpong_init(struct pingpong *pp, long limit)
{
    pp->spread = false;
    atomic_init(&pp->token, 0);
    atomic_init(&pp->side[0], NULL);
    atomic_init(&pp->side[1], NULL);
    atomic_init(&pp->cross_worker, 0);
    atomic_init(&pp->where[0], -1);
    atomic_init(&pp->where[1], -1);
    atomic_init(&pp->stop, false);
    pp->limit = limit;
}

static int pingpong_main(void *arg)
{
    struct pingpong *pp = arg;
    struct pp_side s[2] = { { pp, 0, 0x9E3779B9u }, { pp, 1, 0x7F4A7C15u } };
    weft_task_t *t[2];

    /* On one worker there is nobody to spread to. */
    pp->spread = t_runtime()->nworkers > 1;

    for (int i = 0; i < 2; i++)
        cr_assert_eq(weft_spawn(&t[i], play, &s[i]), 0);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    return 0;
}

Test(sched, pingpong_million_wakes_none_lost, .timeout = 300)
{
    static struct pingpong pp;
    struct t_watchdog wd;

    t_pingpong_init(&pp, PINGPONG_HANDOFFS);
    t_watchdog_start(&wd, "sched.pingpong", &pp.token);
    t_run(pingpong_main, &pp);
    t_watchdog_stop(&wd);
    cr_assert_eq(atomic_load(&pp.token), PINGPONG_HANDOFFS);
    printf("pingpong: %ld of %ld hand-offs crossed workers (%u workers)\n",
           atomic_load(&pp.cross_worker), PINGPONG_HANDOFFS, t_workers());
    if (t_workers() > 1)
        cr_assert_gt(atomic_load(&pp.cross_worker), 0,
                     "the two sides never ran on different workers");
}

/* ---- wakes from a foreign thread ----------------------------------------- */

/*
 * A plain thread (not a worker) wakes a parked task: the wake goes through
 * the injection queue and must get a worker out of its backend wait. Each
 * round the thread waits for the task's acknowledgement, so that the task
 * is parked again and the workers run out of work, and then posts the next
 * round either at once, after a short random spin, or only once every worker
 * has announced itself idle. The first two race the wake against workers
 * that are on their way to park (the window the idle re-check in worker.c
 * closes); the last starts from "everyone parked".
 */
#define FOREIGN_ROUNDS 100000L

struct foreign {
    _Atomic long posted; /* rounds released by the thread */
    _Atomic long acked;  /* rounds the task has seen */
    _Atomic(struct weft_task *) task;
    _Atomic(struct runtime *) rt;
};

static bool round_posted(void *arg)
{
    struct foreign *f = arg;

    return atomic_load(&f->posted) > atomic_load(&f->acked);
}

static int foreign_waiter(void *arg)
{
    struct foreign *f = arg;
    struct weft_task *self = weft__task_current();

    while (atomic_load(&f->acked) < FOREIGN_ROUNDS) {
        cr_assert_eq(weft__task_block(self, round_posted, f, WEFT_NO_DEADLINE,
                                      WHY_SYNC, NULL), 0);
        atomic_fetch_add(&f->acked, 1);
    }
    return 0;
}

static bool t_all_parked(struct runtime *rt)
{
    return atomic_load(&rt->idle.nidle) == rt->nworkers;
}

/* Before posting a round: nothing, a short spin, or all workers parked. */
static void t_foreign_delay(struct runtime *rt, uint32_t r)
{
    switch (r % 3) {
    case 0:
        break;
    case 1:
        for (uint32_t i = r % 4096; i > 0; i--)
            weft__cpu_relax();
        break;
    default:
        while (!t_all_parked(rt))
            sched_yield();
    }
}

static void *foreign_waker(void *arg)
{
    struct foreign *f = arg;
    struct weft_task *t = atomic_load(&f->task);
    struct runtime *rt = atomic_load(&f->rt);
    uint32_t rng = 0x2545F491u;

    for (long r = 1; r <= FOREIGN_ROUNDS; r++) {
        while (atomic_load(&f->acked) < r - 1)
            weft__cpu_relax();
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        t_foreign_delay(rt, rng);
        atomic_store(&f->posted, r);
        weft__task_wake(t);
    }
    return NULL;
}

static int foreign_main(void *arg)
{
    struct foreign *f = arg;
    weft_task_t *t;
    pthread_t waker;

    cr_assert_eq(weft_spawn(&t, foreign_waiter, f), 0);
    atomic_store(&f->task, weft__task_of(t));
    atomic_store(&f->rt, t_runtime());
    cr_assert_eq(pthread_create(&waker, NULL, foreign_waker, f), 0);
    cr_assert_eq(weft_join(t), 0);
    /* The thread has posted its last round: it is about to exit. */
    pthread_join(waker, NULL);
    return 0;
}

Test(sched, wake_from_foreign_thread_reaches_parking_workers,
     .timeout = 300)
{
    static struct foreign f;
    struct t_watchdog wd;

    atomic_init(&f.posted, 0);
    atomic_init(&f.acked, 0);
    atomic_init(&f.task, NULL);
    atomic_init(&f.rt, NULL);
    t_watchdog_start(&wd, "sched.foreign_wake", &f.acked);
    t_run(foreign_main, &f);
    t_watchdog_stop(&wd);
    cr_assert_eq(atomic_load(&f.acked), FOREIGN_ROUNDS);
}

/* ---- wakes spread to idle workers ---------------------------------------- */

/*
 * A task wakes n + 1 parked tasks and keeps its worker (it spins, without
 * a suspension point, with stall detection off): the first n go through
 * its queue, where only the first push tells the idle workers (worker.c,
 * "Parking without lost wakeups"), and the last stays in its LIFO slot.
 * The n queued ones must still reach the n other workers at once, each
 * woken thief waking the next: every one of them waits, spinning, until
 * all n have started, so none can finish before the others run.
 */
struct spread {
    weft_event_t go;
    atomic_uint started;
    unsigned n;
};

static int spread_member(void *arg)
{
    struct spread *s = arg;

    cr_assert_eq(weft_event_wait(&s->go, WEFT_NO_DEADLINE), 0);
    atomic_fetch_add(&s->started, 1);
    while (atomic_load(&s->started) < s->n)
        ;
    return 0;
}

static int spread_main(void *arg)
{
    struct spread *s = arg;
    weft_task_t *t[WEFT__MAX_WORKERS + 1];

    s->n = t_workers() - 1;
    cr_assert_eq(weft_event_init(&s->go), 0);
    for (unsigned i = 0; i <= s->n; i++) {
        cr_assert_eq(weft_spawn(&t[i], spread_member, s), 0);
        t_until_parked_in(t[i], WHY_SYNC);
    }
    cr_assert_eq(weft_event_set(&s->go), 0);
    while (atomic_load(&s->started) < s->n)
        ;
    for (unsigned i = 0; i <= s->n; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    return 0;
}

Test(sched, woken_tasks_spread_to_every_idle_worker, .timeout = 60)
{
    static struct spread s;
    weft_config_t cfg;

    if (t_workers() < 2)
        return; /* nobody to spread to */
    weft_config_init(&cfg);
    cfg.stall_ms = WEFT_STALL_OFF;
    t_run_with(&cfg, spread_main, &s);
}

/* ---- LIFO slot fairness -------------------------------------------------- */

struct starve {
    struct pingpong pp;
    long token_at_sleep;
    long token_at_wake;
};

static int third_task(void *arg)
{
    struct starve *s = arg;

    /* The timer puts us in the run queue (not the LIFO slot) while the two
     * players keep handing each other the LIFO slot. */
    s->token_at_sleep = atomic_load(&s->pp.token);
    cr_assert_eq(weft_sleep_ms(10), 0);
    s->token_at_wake = atomic_load(&s->pp.token);
    atomic_store(&s->pp.stop, true);
    return 0;
}

static int starve_main(void *arg)
{
    struct starve *s = arg;
    struct pp_side side[2] = { { &s->pp, 0, 1 }, { &s->pp, 1, 1 } };
    weft_task_t *t[3];

    for (int i = 0; i < 2; i++)
        cr_assert_eq(weft_spawn(&t[i], play, &side[i]), 0);
    cr_assert_eq(weft_spawn(&t[2], third_task, s), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    return 0;
}

Test(sched, lifo_ping_pong_does_not_starve_runnable_task, .timeout = 30)
{
    static struct starve s;

    t_pingpong_init(&s.pp, LONG_MAX);
    t_run_one_worker(starve_main, &s);
    /* The game was on while the third task waited to run. */
    cr_assert_gt(s.token_at_wake, s.token_at_sleep);
}

/* ---- run queue overflow -------------------------------------------------- */

#define OVERFLOW_TASKS 10000

static int count_run(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

static int overflow_main(void *arg)
{
    static weft_task_t *t[OVERFLOW_TASKS];
    struct runtime *rt = t_runtime();
    struct worker *w = weft__worker_current();
    atomic_int *ran = arg;

    for (int i = 0; i < OVERFLOW_TASKS; i++)
        cr_assert_eq(weft_spawn(&t[i], count_run, ran), 0);
    if (rt->nworkers == 1) {
        /* Nothing ran yet: the spawns held unpublished, our queue and the
         * injection queue (the spills) hold every task. */
        cr_assert_gt(w->nspawned, 0);
        cr_assert_gt(weft__inject_len(&rt->inject), 0);
        cr_assert_eq(weft__inject_len(&rt->inject) +
                     weft__runq_len(&w->runq) + w->nspawned, OVERFLOW_TASKS);
    }
    for (int i = 0; i < OVERFLOW_TASKS; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    return 0;
}

Test(sched, spawn_10000_without_suspending_spills_and_runs_all,
     .timeout = 60)
{
    atomic_int ran = 0;

    cr_assert_eq(WEFT_RUNQ_CAP, 8, "test builds shrink the run queue");
    t_run(overflow_main, &ran);
    cr_assert_eq(atomic_load(&ran), OVERFLOW_TASKS);
}
