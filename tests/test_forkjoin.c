/*
 * Fork-join: the injection queue's batches under concurrent pushes and
 * pops, and the fork-join workloads' shapes (trees of tasks that spawn
 * their children and join them). White-box: the injection queue is driven
 * directly (runtime/inject.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

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
