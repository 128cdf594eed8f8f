/*
 * bench_toolkit: throughput of the asyncio toolkit's hot paths.
 *   Q1  queue messages per second, 1 producer -> 1 consumer
 *   Q4  queue messages per second, 4 producers -> 4 consumers
 *   M1  contended mutex hand-offs per second (8 tasks; each holds the lock
 *       across a yield, so every unlock hands it to a waiter)
 * Prints one line per workload:
 *   RESULT workload=Q1 workers=W ops=N secs=S rate=R
 * Runs with whatever WEFT_WORKERS is set: WEFT_WORKERS=2 ./bench_toolkit
 */
#include <stdio.h>
#include <stdlib.h>

#include <weft.h>

#define QUEUE_OPS 1000000L
#define MUTEX_OPS 200000L

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

static void report(const char *name, long ops, int64_t start)
{
    double secs = (weft_now_ns() - start) / 1e9;
    const char *w = getenv("WEFT_WORKERS");

    printf("RESULT workload=%s workers=%s ops=%ld secs=%.3f rate=%.0f\n",
           name, w ? w : "default", ops, secs, ops / secs);
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
    return 0;
}

int main(void)
{
    return weft_run(bench_main, NULL) == 0 ? 0 : 1;
}
