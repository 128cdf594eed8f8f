/*
 * pipeline: a producer feeds numbers into a bounded queue, N worker tasks
 * take them out and sum their squares, and the main task gathers the
 * workers' partial sums. A timeout scope bounds the whole run: if it takes
 * too long, every wait inside fails with -ETIMEDOUT and gather cancels the
 * rest. The bounded queue makes the producer wait for slow workers
 * (backpressure); closing it lets the workers drain it and stop.
 *
 *   ./pipeline [items] [timeout_ms]      e.g. ./pipeline 100000 5000
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

enum { WORKERS = 4, CAPACITY = 16 };

struct pipeline {
    weft_queue_t q;
    long items;
    int64_t timeout_ms;
};

static int producer(void *arg)
{
    struct pipeline *p = arg;
    int ret = 0;

    for (long i = 1; i <= p->items && ret == 0; i++)
        ret = weft_queue_put(&p->q, (void *)(intptr_t)i, WEFT_NO_DEADLINE);
    weft_queue_close(&p->q); /* workers drain what is left, then stop */
    return ret;
}

static int worker(void *arg)
{
    struct pipeline *p = arg;
    long sum = 0;
    void *item;
    int ret;

    while ((ret = weft_queue_get(&p->q, &item, WEFT_NO_DEADLINE)) == 0) {
        long x = (intptr_t)item % 1000;
        sum += x * x % 997;
    }
    return ret == -EPIPE ? (int)sum : ret; /* -EPIPE: closed and drained */
}

static int run(void *arg)
{
    struct pipeline *p = arg;
    weft_task_t *tasks[WORKERS + 1];
    int results[WORKERS + 1], ret, expired;
    weft_scope_t scope;
    long total = 0;

    ret = weft_queue_init(&p->q, CAPACITY, 0);
    if (ret < 0)
        return ret;
    for (int i = 0; i <= WORKERS && ret == 0; i++)
        ret = weft_spawn(&tasks[i], i == 0 ? producer : worker, p);
    if (ret < 0)
        return ret; /* a real program would cancel and join what started */
    weft_scope_enter(&scope, weft_deadline_in_ms(p->timeout_ms));
    ret = weft_gather(tasks, WORKERS + 1, results, 0);
    expired = weft_scope_exit(&scope);
    for (int i = 1; i <= WORKERS; i++) {
        printf("worker %d: %d\n", i, results[i]);
        total += results[i] > 0 ? results[i] : 0;
    }
    printf("%s: total %ld (%s)\n", expired ? "timed out" : "done", total,
           ret < 0 ? strerror(-ret) : "ok");
    weft_queue_destroy(&p->q);
    return ret;
}

int main(int argc, char **argv)
{
    struct pipeline p = {
        .items = argc > 1 ? atol(argv[1]) : 100000,
        .timeout_ms = argc > 2 ? atol(argv[2]) : 5000,
    };

    return weft_run(run, &p) < 0 ? 1 : 0;
}
