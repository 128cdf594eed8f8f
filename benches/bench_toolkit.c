/*
 * bench_toolkit: throughput of the asyncio toolkit's hot paths.
 *   Q1  queue messages per second, 1 producer -> 1 consumer
 *   Q4  queue messages per second, 4 producers -> 4 consumers
 *   M1  contended mutex hand-offs per second (8 tasks; each holds the lock
 *       across a yield, so every unlock hands it to a waiter)
 *   B1  timer lateness while the blocking pool is busy: a task sleeps 1 ms
 *       at a time while CPU-bound 50 ms jobs run on the pool back to back
 *       for 1 s; the worst and the mean lateness of its wake-ups
 * Prints one line per workload:
 *   RESULT workload=Q1 workers=W ops=N secs=S rate=R
 *   RESULT workload=B1 workers=W ticks=N late_max_ms=X late_avg_ms=Y
 * Runs with whatever WEFT_WORKERS is set: WEFT_WORKERS=2 ./bench_toolkit
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <weft.h>

#define QUEUE_OPS 1000000L
#define MUTEX_OPS 200000L
#define POOL_JOBS 20 /* of 50 ms each: 1 s of a busy pool */

struct bench {
    weft_queue_t q;
    weft_mutex_t m;
    long per_task;
    long counter;
};

static int produce(void *arg)
{
    struct bench *b = arg;

    for (long i = 0; i < b->per_task; i++)
        if (weft_queue_put(&b->q, (void *)(intptr_t)(i + 1),
                           WEFT_NO_DEADLINE) < 0)
            return -1;
    return 0;
}

static int consume(void *arg)
{
    struct bench *b = arg;
    void *item;

    for (long i = 0; i < b->per_task; i++)
        if (weft_queue_get(&b->q, &item, WEFT_NO_DEADLINE) < 0)
            return -1;
    return 0;
}

static int contend(void *arg)
{
    struct bench *b = arg;

    for (long i = 0; i < b->per_task; i++) {
        if (weft_mutex_lock(&b->m, WEFT_NO_DEADLINE) < 0)
            return -1;
        b->counter++;
        weft_yield();
        weft_mutex_unlock(&b->m);
    }
    return 0;
}

static const char *workers(void)
{
    const char *w = getenv("WEFT_WORKERS");

    return w ? w : "default";
}

static void report(const char *name, long ops, int64_t start)
{
    double secs = (weft_now_ns() - start) / 1e9;

    printf("RESULT workload=%s workers=%s ops=%ld secs=%.3f rate=%.0f\n",
           name, workers(), ops, secs, ops / secs);
}

/* ---- B1: timers beside a busy blocking pool ------------------------------ */

struct ticker {
    atomic_bool stop;
    long ticks;
    int64_t worst_ns, sum_ns;
};

static int tick(void *arg)
{
    struct ticker *tk = arg;

    while (!atomic_load(&tk->stop)) {
        int64_t deadline = weft_now_ns() + 1000000;
        int64_t late;

        if (weft_sleep_until(deadline) < 0)
            return -1;
        late = weft_now_ns() - deadline;
        if (late > tk->worst_ns)
            tk->worst_ns = late;
        tk->sum_ns += late;
        tk->ticks++;
    }
    return 0;
}

static int spin_50ms(void *arg)
{
    int64_t end = weft_now_ns() + 50 * 1000000;
    volatile uint64_t x = 0;

    (void)arg;
    while (weft_now_ns() < end)
        x++;
    return 0;
}

static int timers_beside_pool(void)
{
    struct ticker tk = { .stop = false };
    weft_task_t *t;

    if (weft_spawn(&t, tick, &tk) < 0)
        return -1;
    for (int i = 0; i < POOL_JOBS; i++)
        if (weft_blocking(spin_50ms, NULL) < 0)
            return -1;
    atomic_store(&tk.stop, true);
    if (weft_join(t) < 0 || tk.ticks == 0)
        return -1;
    printf("RESULT workload=B1 workers=%s ticks=%ld late_max_ms=%.3f "
           "late_avg_ms=%.3f\n", workers(), tk.ticks, tk.worst_ns / 1e6,
           tk.sum_ns / 1e6 / tk.ticks);
    return 0;
}

/* Runs pairs producer/consumer pairs (or tasks mutex contenders). */
static int run_tasks(struct bench *b, weft_fn_t a, weft_fn_t c, int n)
{
    weft_task_t *t[16];
    int spawned = 0;

    for (int i = 0; i < n; i++) {
        if (weft_spawn(&t[spawned++], a, b) < 0)
            return -1;
        if (c && weft_spawn(&t[spawned++], c, b) < 0)
            return -1;
    }
    return weft_gather(t, spawned, NULL, 0);
}

static int bench_main(void *arg)
{
    static struct bench b;
    int64_t start;

    (void)arg;
    for (int pairs = 1; pairs <= 4; pairs *= 4) {
        weft_queue_init(&b.q, 1024, 0);
        b.per_task = QUEUE_OPS / pairs;
        start = weft_now_ns();
        if (run_tasks(&b, produce, consume, pairs) < 0)
            return 1;
        report(pairs == 1 ? "Q1" : "Q4", QUEUE_OPS, start);
        weft_queue_destroy(&b.q);
    }
    weft_mutex_init(&b.m);
    b.per_task = MUTEX_OPS / 8;
    start = weft_now_ns();
    if (run_tasks(&b, contend, NULL, 8) < 0 || b.counter != MUTEX_OPS)
        return 1;
    report("M1", MUTEX_OPS, start);
    return timers_beside_pool() < 0 ? 1 : 0;
}

int main(void)
{
    return weft_run(bench_main, NULL) == 0 ? 0 : 1;
}
