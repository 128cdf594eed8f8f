/*
 * Workers are interchangeable: while one worker is stuck in a task (a loop
 * without a suspension point, a blocking syscall), what is ready on it
 * (its LIFO slot, its run queue, its due timers, the I/O it issued) is
 * served by the others. Each test makes a worker stuck until the work that
 * only that worker could serve has finished: if the hand-off failed, the
 * stuck worker never lets go and the test runs into its bound or timeout.
 * No test measures time.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "io_helpers.h"
#include "runtime/runtime.h"

/* How long a stuck task waits for the others before giving up: far past
 * any delay a working hand-off has, reached only when it is broken. */
#define SPIN_MAX_NS (30 * (int64_t)1000000000)

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Keeps the worker without a suspension point until cond(arg) holds;
 * false if SPIN_MAX_NS passed first. */
static bool spin_until(bool (*cond)(void *), void *arg)
{
    int64_t end = mono_ns() + SPIN_MAX_NS;

    while (!cond(arg))
        if (mono_ns() > end)
            return false;
    return true;
}

static uint64_t stalls_detected(void)
{
    struct runtime *rt = weft__runtime_of(weft_runtime_current());

    return atomic_load(&rt->monitor.stalls);
}

/* ---- timers -------------------------------------------------------------- */

#define NSLEEPERS 16
#define SLEEPS 40

struct sleepers {
    atomic_int where[NSLEEPERS]; /* worker of the last timer armed */
    atomic_int started, done;
    int index;                   /* next sleeper's index, main task only */
};

static int sleeper(void *arg)
{
    struct sleepers *s = arg;
    int i = atomic_fetch_add(&s->started, 1);

    for (int k = 0; k < SLEEPS; k++) {
        atomic_store(&s->where[i], weft_worker_id());
        cr_assert_eq(weft_sleep_ms(10), 0);
    }
    atomic_store(&s->where[i], -1);
    atomic_fetch_add(&s->done, 1);
    return 0;
}

static bool all_slept(void *arg)
{
    struct sleepers *s = arg;

    return atomic_load(&s->done) == NSLEEPERS;
}

/* A sleeper whose timer waits in the calling worker's heap. */
static bool sleeper_here(struct sleepers *s)
{
    int self = weft_worker_id();

    if (atomic_load(&s->started) < NSLEEPERS)
        return false;
    for (int i = 0; i < NSLEEPERS; i++)
        if (atomic_load(&s->where[i]) == self)
            return true;
    return false;
}

static int stuck_over_timers(void *arg)
{
    struct sleepers *s = arg;

    while (!sleeper_here(s))
        cr_assert_eq(weft_sleep_ms(1), 0);
    cr_assert(spin_until(all_slept, s),
              "sleepers on the stuck worker never woke");
    return 0;
}

static int timers_main(void *arg)
{
    struct sleepers s = { 0 };
    weft_group_t g;

    (void)arg;
    for (int i = 0; i < NSLEEPERS; i++)
        atomic_init(&s.where[i], -1);
    cr_assert_eq(weft_group_init(&g), 0);
    for (int i = 0; i < NSLEEPERS; i++)
        cr_assert_eq(weft_group_spawn(&g, sleeper, &s, NULL), 0);
    cr_assert_eq(weft_group_spawn(&g, stuck_over_timers, &s, NULL), 0);
    cr_assert_eq(weft_group_wait(&g), 0);
    cr_assert_eq(weft_group_destroy(&g), 0);
    cr_assert_geq(stalls_detected(), 1);
    return 0;
}

Test(stall, due_timers_of_a_stuck_worker_fire, .timeout = 120)
{
    t_run_two_or_more(timers_main, NULL);
}

/* ---- the LIFO slot and the run queue -------------------------------------- */

#define NCHILDREN 4

struct queued {
    atomic_int ran;
    atomic_bool woken;
    weft_event_t ev;
};

static int note_child(void *arg)
{
    atomic_fetch_add(&((struct queued *)arg)->ran, 1);
    return 0;
}

static int waiter(void *arg)
{
    struct queued *q = arg;

    cr_assert_eq(weft_event_wait(&q->ev, WEFT_NO_DEADLINE), 0);
    atomic_store(&q->woken, true);
    return 0;
}

static bool queued_ran(void *arg)
{
    struct queued *q = arg;

    return atomic_load(&q->ran) == NCHILDREN && atomic_load(&q->woken);
}

/* Spawns children (the last one in the LIFO slot, the others in the run
 * queue) and wakes a waiter (into the LIFO slot), then keeps the worker. */
static int stuck_after_spawning(void *arg)
{
    struct queued *q = arg;

    for (int i = 0; i < NCHILDREN; i++)
        cr_assert_eq(weft_spawn(NULL, note_child, q), 0);
    cr_assert_eq(weft_event_set(&q->ev), 0);
    cr_assert(spin_until(queued_ran, q),
              "tasks queued on the stuck worker never ran");
    return 0;
}

static int queued_main(void *arg)
{
    struct queued q = { 0 };
    weft_task_t *w, *s;

    (void)arg;
    cr_assert_eq(weft_event_init(&q.ev), 0);
    cr_assert_eq(weft_spawn(&w, waiter, &q), 0);
    t_until_parked_in(w, WHY_SYNC);
    cr_assert_eq(weft_spawn(&s, stuck_after_spawning, &q), 0);
    cr_assert_eq(weft_join(s), 0);
    cr_assert_eq(weft_join(w), 0);
    cr_assert_eq(weft_event_destroy(&q.ev), 0);
    return 0;
}

Test(stall, tasks_a_stuck_task_spawned_or_woke_run_elsewhere, .timeout = 120)
{
    t_run_two_or_more(queued_main, NULL);
}

/* ---- connections ---------------------------------------------------------- */

#define NCLIENTS 8
#define MIN_ROUNDS 20

struct echo {
    uint16_t port;
    atomic_int where[NCLIENTS]; /* worker that issued the last recv */
    atomic_int rounds[NCLIENTS];
    int floor[NCLIENTS];        /* rounds when the worker got stuck */
    atomic_bool stop;
    atomic_int next;
};

static int echo_client(void *arg)
{
    struct echo *e = arg;
    int i = atomic_fetch_add(&e->next, 1);
    struct sockaddr_in sa = t_loopback(e->port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    char out[64], in[64];

    cr_assert_geq(fd, 0);
    cr_assert_eq(weft_connect(fd, (struct sockaddr *)&sa, sizeof(sa),
                              T_SECS(10)), 0);
    memset(out, 'a' + i, sizeof(out));
    while (!atomic_load(&e->stop)) {
        cr_assert_eq(weft_write_all(fd, out, sizeof(out), T_SECS(30)),
                     (ssize_t)sizeof(out));
        atomic_store(&e->where[i], weft_worker_id());
        cr_assert_eq(weft_read_exact(fd, in, sizeof(in), T_SECS(30)),
                     (ssize_t)sizeof(in));
        cr_assert_eq(memcmp(in, out, sizeof(in)), 0);
        atomic_fetch_add(&e->rounds[i], 1);
    }
    cr_assert_eq(weft_close(fd), 0);
    return 0;
}

static bool clients_moved_on(void *arg)
{
    struct echo *e = arg;

    for (int i = 0; i < NCLIENTS; i++)
        if (atomic_load(&e->rounds[i]) < e->floor[i] + MIN_ROUNDS)
            return false;
    return true;
}

/* Whether every client has done MIN_ROUNDS and one's last read was issued
 * from the calling worker. */
static bool client_here(struct echo *e)
{
    bool here = false;

    for (int i = 0; i < NCLIENTS; i++) {
        if (atomic_load(&e->rounds[i]) < MIN_ROUNDS)
            return false;
        here |= atomic_load(&e->where[i]) == weft_worker_id();
    }
    return here;
}

/* Waits until a client reads from this worker's backend, then keeps it. */
static int stuck_over_connections(void *arg)
{
    struct echo *e = arg;

    while (!client_here(e))
        cr_assert_eq(weft_yield(), 0);
    for (int i = 0; i < NCLIENTS; i++)
        e->floor[i] = atomic_load(&e->rounds[i]);
    cr_assert(spin_until(clients_moved_on, e),
              "connections of the stuck worker stalled");
    atomic_store(&e->stop, true);
    return 0;
}

static int echo_main(void *arg)
{
    struct echo e = { 0 };
    int lfd = t_listen_tcp(64);
    weft_task_t *server;
    weft_group_t g;

    (void)arg;
    e.port = t_port(lfd);
    for (int i = 0; i < NCLIENTS; i++)
        atomic_init(&e.where[i], -1);
    cr_assert_eq(weft_spawn(&server, t_echo_server, (void *)(intptr_t)lfd), 0);
    cr_assert_eq(weft_group_init(&g), 0);
    for (int i = 0; i < NCLIENTS; i++)
        cr_assert_eq(weft_group_spawn(&g, echo_client, &e, NULL), 0);
    cr_assert_eq(weft_group_spawn(&g, stuck_over_connections, &e, NULL), 0);
    cr_assert_eq(weft_group_wait(&g), 0);
    cr_assert_eq(weft_group_destroy(&g), 0);
    cr_assert_eq(weft_cancel(server), 0);
    cr_assert_eq(weft_join(server), 0);
    cr_assert_eq(weft_close(lfd), 0);
    return 0;
}

Test(stall, connections_of_a_stuck_worker_are_served, .timeout = 120)
{
    t_run_two_or_more(echo_main, NULL);
}

/* ---- a blocking syscall ----------------------------------------------------- */

/*
 * A task blocks its worker in read(2) on a pipe without O_NONBLOCK. Before
 * it does, a reader on its worker has issued a weft read on another pipe
 * (the op waits in the blocked worker's backend) and a sleep (a timer in
 * its heap), and a helper sits in its LIFO slot. The helper, run
 * elsewhere, feeds the reader; the reader, woken from the blocked
 * worker's backend, sleeps; only then does the helper unblock the worker.
 */
struct blocked {
    int gate[2];      /* the blocking read's pipe */
    int feed[2];      /* the weft read's pipe */
    atomic_int reader_at;
    atomic_bool read_done, slept;
    bool in_place;    /* block through weft_block_in_place */
};

static int blocked_reader(void *arg)
{
    struct blocked *b = arg;
    char c;

    atomic_store(&b->reader_at, weft_worker_id());
    cr_assert_eq(weft_read(b->feed[0], &c, 1, -1, T_SECS(60)), 1);
    atomic_store(&b->read_done, true);
    cr_assert_eq(weft_sleep_ms(5), 0);
    atomic_store(&b->slept, true);
    return 0;
}

static int unblocker(void *arg)
{
    struct blocked *b = arg;
    char c = 'x';

    cr_assert_eq(weft_write(b->feed[1], &c, 1, -1, T_SECS(10)), 1);
    while (!atomic_load(&b->slept))
        cr_assert_eq(weft_sleep_ms(1), 0);
    cr_assert_eq(write(b->gate[1], &c, 1), 1);
    return 0;
}

static int read_gate(void *arg)
{
    struct blocked *b = arg;
    char c;

    return read(b->gate[0], &c, 1) == 1 ? 0 : -EIO;
}

static int blocking_task(void *arg)
{
    struct blocked *b = arg;
    weft_task_t *r;

    /* The reader must issue its read from this worker. */
    for (;;) {
        atomic_store(&b->reader_at, -2);
        cr_assert_eq(weft_spawn(&r, blocked_reader, b), 0);
        cr_assert_eq(weft_yield(), 0);
        if (atomic_load(&b->reader_at) == weft_worker_id())
            break;
        /* It ran elsewhere: wait for it there, then try again. */
        cr_assert_eq(weft_write(b->feed[1], "y", 1, -1, T_SECS(10)), 1);
        cr_assert_eq(weft_join(r), 0);
        atomic_store(&b->read_done, false);
        atomic_store(&b->slept, false);
    }
    cr_assert_eq(weft_spawn(NULL, unblocker, b), 0);
    if (b->in_place)
        cr_assert_eq(weft_block_in_place(read_gate, b), 0);
    else
        cr_assert_eq(read_gate(b), 0);
    cr_assert(atomic_load(&b->read_done) && atomic_load(&b->slept));
    cr_assert_eq(weft_join(r), 0);
    return 0;
}

static int blocked_main(void *arg)
{
    struct blocked b = { .in_place = arg != NULL };
    weft_task_t *t;

    cr_assert_eq(pipe2(b.gate, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(b.feed, O_CLOEXEC), 0);
    cr_assert_eq(weft_spawn(&t, blocking_task, &b), 0);
    cr_assert_eq(weft_join(t), 0);
    for (int i = 0; i < 2; i++) {
        close(b.gate[i]);
        close(b.feed[i]);
    }
    return 0;
}

Test(stall, a_worker_blocked_in_a_syscall_strands_nothing, .timeout = 120)
{
    t_run_two_or_more(blocked_main, NULL);
}

Test(stall, block_in_place_hands_the_worker_over, .timeout = 120)
{
    t_run_two_or_more(blocked_main, (void *)1);
}

/* ---- block_in_place's contract ------------------------------------------------ */

static int returns_seven(void *arg)
{
    (void)arg;
    return 7;
}

static int suspends_inside(void *arg)
{
    (void)arg;
    return weft_sleep_ms(1) == 0 ? 3 : -1;
}

static int in_place_main(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_block_in_place(NULL, NULL), -EINVAL);
    cr_assert_eq(weft_block_in_place(returns_seven, NULL), 7);
    cr_assert_eq(weft_block_in_place(suspends_inside, NULL), 3);
    /* The worker is back in charge: its timers and queue work again. */
    cr_assert_eq(weft_sleep_ms(1), 0);
    cr_assert_eq(weft_yield(), 0);
    return 0;
}

Test(stall, block_in_place_returns_what_fn_returns, .timeout = 60)
{
    cr_assert_eq(weft_block_in_place(returns_seven, NULL), -EPERM);
    t_run(in_place_main, NULL);
}

/* ---- the report ------------------------------------------------------------------ */

static bool stall_reported(void *arg)
{
    return atomic_load(&((struct runtime *)arg)->monitor.stalls) > 0;
}

/* Stuck until the monitor has reported it: the report is printed under
 * the worker's hand-off lock, which its next enter waits for. */
static int stuck_until_reported(void *arg)
{
    (void)arg;
    cr_assert(spin_until(stall_reported,
                         weft__runtime_of(weft_runtime_current())));
    return 0;
}

static int report_main(void *arg)
{
    weft_spawn_opts_t o = { .name = "spinner" };
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_spawn_ex(&t, stuck_until_reported, NULL, &o), 0);
    cr_assert_eq(weft_join(t), 0);
    return 0;
}

Test(stall, debug_mode_names_the_stuck_task_and_its_function, .timeout = 60)
{
    const char *out;
    weft_config_t cfg;

    weft_config_init(&cfg);
    cfg.workers = t_workers() < 2 ? 2 : t_workers();
    out = t_run_debug_with(&cfg, report_main, NULL);
    cr_assert_not_null(strstr(out, "stuck: task 'spinner'"), "stderr:\n%s", out);
    cr_assert_not_null(strstr(out, "stuck_until_reported+0x"), "stderr:\n%s",
                       out);
}

/* ---- turned off ------------------------------------------------------------------- */

static int off_main(void *arg)
{
    struct runtime *rt = weft__runtime_of(weft_runtime_current());

    (void)arg;
    cr_assert_not(rt->monitor.started);
    return 0;
}

Test(stall, detection_off_starts_no_monitor, .timeout = 60)
{
    weft_config_t cfg;

    weft_config_init(&cfg);
    cfg.stall_ms = WEFT_STALL_OFF;
    t_run_with(&cfg, off_main, NULL);
    cfg.stall_ms = -5;
    cr_assert_eq(weft_run_with(&cfg, off_main, NULL), -EINVAL);
    cfg.stall_ms = 60001;
    cr_assert_eq(weft_run_with(&cfg, off_main, NULL), -EINVAL);
}

/* ---- an idle runtime --------------------------------------------------------------- */

Test(stall, the_monitor_sleeps_while_every_worker_is_parked, .timeout = 60)
{
    weft_runtime_t *h;
    struct runtime *rt;

    cr_assert_eq(weft_runtime_new(NULL, &h), 0);
    rt = weft__runtime_of(h);
    cr_assert(rt->monitor.started);
    /* No task: the workers park, and the monitor stops ticking until one
     * of them wakes. */
    while (!atomic_load(&rt->monitor.sleeping))
        usleep(1000);
    cr_assert_eq(weft_runtime_block_on(h, returns_seven, NULL), 7);
    cr_assert_eq(weft_runtime_free(h), 0);
}
