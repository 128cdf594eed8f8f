/*
 * Queues: order, try variants, bounded/unbounded, close, join/task_done,
 * deadlines, cancellation racing a hand-off, and sum conservation through
 * many producers and consumers across workers.
 */
#include <errno.h>

#include "helpers.h"
#include "runtime/queue.h"

static struct queue *t_q(weft_queue_t *q)
{
    return (struct queue *)(void *)q;
}

/* Yields until n tasks wait in one of q's lists. */
static void t_until_waiting(weft_queue_t *q, struct weft__waitq *list,
                            size_t n)
{
    for (;;) {
        size_t have;

        weft__spin_lock(&t_q(q)->lock);
        have = list->n;
        weft__spin_unlock(&t_q(q)->lock);
        if (have >= n)
            return;
        cr_assert_eq(weft_yield(), 0);
    }
}

#define ITEM(i) ((void *)(intptr_t)(i))

static int fifo_lifo_and_try(void *arg)
{
    weft_queue_t q;
    void *item;

    (void)arg;
    cr_assert_eq(weft_queue_init(&q, 3, 0), 0);
    cr_assert_eq(weft_queue_try_get(&q, &item), -EAGAIN);
    for (int i = 1; i <= 3; i++)
        cr_assert_eq(weft_queue_try_put(&q, ITEM(i)), 0);
    cr_assert_eq(weft_queue_try_put(&q, ITEM(4)), -EAGAIN);
    cr_assert_eq(weft_queue_put(&q, ITEM(4), weft_deadline_in_ms(2)),
                 -ETIMEDOUT);
    cr_assert_eq(weft_queue_size(&q), 3);
    for (int i = 1; i <= 3; i++) {
        cr_assert_eq(weft_queue_get(&q, &item, WEFT_NO_DEADLINE), 0);
        cr_assert_eq(item, ITEM(i));
    }
    cr_assert_eq(weft_queue_get(&q, &item, weft_deadline_in_ms(2)),
                 -ETIMEDOUT);
    cr_assert_eq(weft_queue_destroy(&q), 0);
    cr_assert_eq(weft_queue_init(&q, 0, WEFT_QUEUE_LIFO), 0);
    for (int i = 1; i <= 3; i++)
        cr_assert_eq(weft_queue_put(&q, ITEM(i), WEFT_NO_DEADLINE), 0);
    for (int i = 3; i >= 1; i--) {
        cr_assert_eq(weft_queue_try_get(&q, &item), 0);
        cr_assert_eq(item, ITEM(i));
    }
    cr_assert_eq(weft_queue_destroy(&q), 0);
    cr_assert_eq(weft_queue_init(&q, 1, 0x80), -EINVAL);
    return 0;
}

Test(queue, fifo_lifo_try_and_deadlines, .timeout = 10)
{
    t_run(fifo_lifo_and_try, NULL);
}

static int unbounded_grows(void *arg)
{
    enum { N = 10000 };
    weft_queue_t q;
    void *item;

    (void)arg;
    cr_assert_eq(weft_queue_init(&q, 0, 0), 0);
    /* Interleave so the ring wraps before it grows. */
    for (int i = 0; i < 5; i++)
        cr_assert_eq(weft_queue_put(&q, ITEM(i), WEFT_NO_DEADLINE), 0);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(weft_queue_try_get(&q, &item), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_queue_put(&q, ITEM(i), WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_queue_size(&q), N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(weft_queue_try_get(&q, &item), 0);
        cr_assert_eq(item, ITEM(i));
    }
    cr_assert_eq(weft_queue_destroy(&q), 0);
    return 0;
}

Test(queue, unbounded_grows_and_keeps_order, .timeout = 10)
{
    t_run(unbounded_grows, NULL);
}

/* ---- sum conservation ---------------------------------------------------- */

struct flow {
    weft_queue_t q;
    int per_producer;
    atomic_long sum_in, sum_out, got;
};

static int produce(void *arg)
{
    struct flow *f = arg;

    for (int i = 1; i <= f->per_producer; i++) {
        cr_assert_eq(weft_queue_put(&f->q, ITEM(i), WEFT_NO_DEADLINE), 0);
        atomic_fetch_add(&f->sum_in, i);
    }
    return 0;
}

static int consume(void *arg)
{
    struct flow *f = arg;
    void *item;
    int ret;

    while ((ret = weft_queue_get(&f->q, &item, WEFT_NO_DEADLINE)) == 0) {
        atomic_fetch_add(&f->sum_out, (intptr_t)item);
        atomic_fetch_add(&f->got, 1);
    }
    cr_assert_eq(ret, -EPIPE);
    return 0;
}

static void t_flow(size_t capacity, int producers, int consumers)
{
    static struct flow f;
    weft_task_t *p[8], *c[8];

    f.per_producer = 100000 / producers;
    atomic_store(&f.sum_in, 0);
    atomic_store(&f.sum_out, 0);
    atomic_store(&f.got, 0);
    cr_assert_eq(weft_queue_init(&f.q, capacity, 0), 0);
    for (int i = 0; i < consumers; i++)
        cr_assert_eq(weft_spawn(&c[i], consume, &f), 0);
    for (int i = 0; i < producers; i++)
        cr_assert_eq(weft_spawn(&p[i], produce, &f), 0);
    for (int i = 0; i < producers; i++)
        cr_assert_eq(weft_join(p[i]), 0);
    cr_assert_eq(weft_queue_close(&f.q), 0);
    for (int i = 0; i < consumers; i++)
        cr_assert_eq(weft_join(c[i]), 0);
    cr_assert_eq(atomic_load(&f.got), (long)producers * f.per_producer);
    cr_assert_eq(atomic_load(&f.sum_out), atomic_load(&f.sum_in));
    cr_assert_eq(weft_queue_destroy(&f.q), 0);
}

static int flow_bounded(void *arg)
{
    (void)arg;
    t_flow(16, 4, 4);
    t_flow(1, 1, 1);
    return 0;
}

Test(queue, sum_conserved_bounded_many_to_many, .timeout = 120)
{
    t_run(flow_bounded, NULL);
}

static int flow_unbounded(void *arg)
{
    (void)arg;
    t_flow(0, 4, 2);
    return 0;
}

Test(queue, sum_conserved_unbounded, .timeout = 120)
{
    t_run(flow_unbounded, NULL);
}

/* ---- close --------------------------------------------------------------- */

static int get_one(void *arg)
{
    void *item;
    int ret = weft_queue_get(arg, &item, WEFT_NO_DEADLINE);

    return ret < 0 ? ret : (int)(intptr_t)item;
}

static int put_one(void *arg)
{
    return weft_queue_put(arg, ITEM(99), WEFT_NO_DEADLINE);
}

static int close_wakes_everyone(void *arg)
{
    weft_queue_t q;
    weft_task_t *g[4], *p[4];
    void *item;

    (void)arg;
    cr_assert_eq(weft_queue_init(&q, 2, 0), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_spawn(&g[i], get_one, &q), 0);
    t_until_waiting(&q, &t_q(&q)->getters, 4);
    cr_assert_eq(weft_queue_close(&q), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_join(g[i]), -EPIPE);
    cr_assert_eq(weft_queue_destroy(&q), 0);

    cr_assert_eq(weft_queue_init(&q, 2, 0), 0);
    cr_assert_eq(weft_queue_put(&q, ITEM(1), WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_queue_put(&q, ITEM(2), WEFT_NO_DEADLINE), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_spawn(&p[i], put_one, &q), 0);
    t_until_waiting(&q, &t_q(&q)->putters, 4);
    cr_assert_eq(weft_queue_close(&q), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_join(p[i]), -EPIPE);
    /* Getters drain what is left, then see -EPIPE. */
    cr_assert_eq(weft_queue_get(&q, &item, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(item, ITEM(1));
    cr_assert_eq(weft_queue_try_get(&q, &item), 0);
    cr_assert_eq(item, ITEM(2));
    cr_assert_eq(weft_queue_get(&q, &item, WEFT_NO_DEADLINE), -EPIPE);
    cr_assert_eq(weft_queue_try_put(&q, ITEM(3)), -EPIPE);
    cr_assert_eq(weft_queue_destroy(&q), 0);
    return 0;
}

Test(queue, close_wakes_getters_and_putters_then_drains, .timeout = 10)
{
    t_run(close_wakes_everyone, NULL);
}

/* ---- cancellation -------------------------------------------------------- */

static int cancel_race(void *arg)
{
    enum { ROUNDS = 2000 };
    weft_queue_t q;
    weft_task_t *t;
    void *item;
    int received = 0, left = 0;

    (void)arg;
    cr_assert_eq(weft_queue_init(&q, 4, 0), 0);
    for (int i = 0; i < ROUNDS; i++) {
        cr_assert_eq(weft_spawn(&t, get_one, &q), 0);
        t_until_waiting(&q, &t_q(&q)->getters, 1);
        weft_cancel(t);
        cr_assert_eq(weft_queue_put(&q, ITEM(7), WEFT_NO_DEADLINE), 0);
        int ret = weft_join(t);
        if (ret == 7)
            received++; /* it was handed the item and kept it */
        else
            cr_assert_eq(ret, -ECANCELED);
        while (weft_queue_try_get(&q, &item) == 0)
            left++;
    }
    /* No item lost, none duplicated. */
    cr_assert_eq(received + left, ROUNDS);
    cr_assert_eq(weft_queue_destroy(&q), 0);
    return 0;
}

Test(queue, cancel_racing_put_loses_no_item, .timeout = 60)
{
    t_run(cancel_race, NULL);
}

static int cancel_putter(void *arg)
{
    weft_queue_t q;
    weft_task_t *t;
    void *item;

    (void)arg;
    cr_assert_eq(weft_queue_init(&q, 1, 0), 0);
    cr_assert_eq(weft_queue_put(&q, ITEM(1), WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_spawn(&t, put_one, &q), 0);
    t_until_waiting(&q, &t_q(&q)->putters, 1);
    weft_cancel(t);
    cr_assert_eq(weft_join(t), -ECANCELED);
    cr_assert_eq(weft_queue_try_get(&q, &item), 0);
    cr_assert_eq(item, ITEM(1));
    cr_assert_eq(weft_queue_try_get(&q, &item), -EAGAIN);
    cr_assert_eq(weft_queue_destroy(&q), 0);
    return 0;
}

Test(queue, cancelled_putter_leaves_without_its_item, .timeout = 10)
{
    t_run(cancel_putter, NULL);
}

/* ---- join / task_done ---------------------------------------------------- */

struct marked {
    weft_queue_t *q;
    atomic_int done; /* task_done calls made */
};

/* Takes items and marks each done after a yield: an item is out of the
 * queue well before it counts as processed. */
static int worker_marks_done(void *arg)
{
    struct marked *m = arg;
    void *item;

    while (weft_queue_get(m->q, &item, WEFT_NO_DEADLINE) == 0) {
        cr_assert_eq(weft_yield(), 0);
        atomic_fetch_add(&m->done, 1);
        cr_assert_eq(weft_queue_task_done(m->q), 0);
    }
    return 0;
}

static int join_task_done(void *arg)
{
    weft_queue_t q;
    struct marked m = { .q = &q, .done = 0 };
    weft_task_t *w[3];
    void *item;

    (void)arg;
    cr_assert_eq(weft_queue_init(&q, 8, 0), 0);
    cr_assert_eq(weft_queue_task_done(&q), -EINVAL);
    cr_assert_eq(weft_queue_join(&q, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_queue_put(&q, ITEM(1), WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_queue_join(&q, weft_deadline_in_ms(2)), -ETIMEDOUT);
    /* Taken out but not marked done: join still waits. */
    cr_assert_eq(weft_queue_try_get(&q, &item), 0);
    cr_assert_eq(weft_queue_join(&q, weft_deadline_in_ms(2)), -ETIMEDOUT);
    cr_assert_eq(weft_queue_task_done(&q), 0);
    cr_assert_eq(weft_queue_join(&q, WEFT_NO_DEADLINE), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_spawn(&w[i], worker_marks_done, &m), 0);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(weft_queue_put(&q, ITEM(i), WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_queue_join(&q, WEFT_NO_DEADLINE), 0);
    /* Every item put was marked done before join returned. */
    cr_assert_eq(atomic_load(&m.done), 1000);
    cr_assert_eq(weft_queue_size(&q), 0);
    cr_assert_eq(weft_queue_close(&q), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_join(w[i]), 0);
    cr_assert_eq(weft_queue_destroy(&q), 0);
    return 0;
}

Test(queue, join_waits_for_every_task_done, .timeout = 30)
{
    t_run(join_task_done, NULL);
}

/* ---- destroy while awaited ----------------------------------------------- */

static int join_queue(void *arg)
{
    return weft_queue_join(arg, WEFT_NO_DEADLINE);
}

/* A getter, a putter and a joiner each keep the queue from being destroyed
 * while they really wait on it; once they left, destroy succeeds. */
static int destroy_while_awaited(void *arg)
{
    weft_queue_t q;
    weft_task_t *t;
    void *item;

    (void)arg;
    cr_assert_eq(weft_queue_init(&q, 1, 0), 0);
    cr_assert_eq(weft_spawn(&t, get_one, &q), 0);
    t_until_waiting(&q, &t_q(&q)->getters, 1);
    cr_assert_eq(weft_queue_destroy(&q), -EBUSY);
    cr_assert_eq(weft_queue_put(&q, ITEM(5), WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_join(t), 5);

    cr_assert_eq(weft_queue_put(&q, ITEM(1), WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_spawn(&t, put_one, &q), 0);
    t_until_waiting(&q, &t_q(&q)->putters, 1);
    cr_assert_eq(weft_queue_destroy(&q), -EBUSY);
    cr_assert_eq(weft_queue_get(&q, &item, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(weft_queue_get(&q, &item, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(item, ITEM(99));

    /* Three items were taken, none marked done yet. */
    cr_assert_eq(weft_spawn(&t, join_queue, &q), 0);
    t_until_waiting(&q, &t_q(&q)->joiners, 1);
    cr_assert_eq(weft_queue_destroy(&q), -EBUSY);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_queue_task_done(&q), 0);
    cr_assert_eq(weft_join(t), 0);
    cr_assert_eq(weft_queue_destroy(&q), 0);
    return 0;
}

Test(queue, destroy_is_ebusy_while_a_task_waits_then_succeeds, .timeout = 10)
{
    t_run(destroy_while_awaited, NULL);
}
