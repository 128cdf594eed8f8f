/*
 * Futures: set once from any thread, awaited by many tasks, with deadlines,
 * cancellation, and the set/give-up race.
 */
#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include "helpers.h"

enum { FUTURES = 8, WAITERS = 64 };

struct setter {
    weft_future_t *f;
    int value;
    pthread_barrier_t *start;
};

static void *set_from_thread(void *arg)
{
    struct setter *s = arg;

    pthread_barrier_wait(s->start);
    cr_assert_eq(weft_future_set(s->f, s->value), 0);
    return NULL;
}

/* Pool jobs may block: join foreign threads there, not on a worker. */
static int join_thread(void *arg)
{
    return -pthread_join(*(pthread_t *)arg, NULL);
}

struct waiter {
    weft_future_t *f;
    int expect;
};

static int await_value(void *arg)
{
    struct waiter *w = arg;

    cr_assert_eq(weft_future_wait(w->f, WEFT_NO_DEADLINE), w->expect);
    return 0;
}

static int eight_foreign_setters(void *arg)
{
    static struct setter s[FUTURES];
    static struct waiter w[WAITERS];
    static pthread_t th[FUTURES];
    static weft_future_t fs[FUTURES];
    weft_future_t *f[FUTURES];
    weft_task_t *t[WAITERS];
    pthread_barrier_t start;

    (void)arg;
    pthread_barrier_init(&start, NULL, FUTURES);
    for (int i = 0; i < FUTURES; i++) {
        f[i] = &fs[i];
        cr_assert_eq(weft_future_init(f[i]), 0);
    }
    for (int i = 0; i < WAITERS; i++) {
        w[i] = (struct waiter){ .f = f[i % FUTURES], .expect = i % FUTURES };
        cr_assert_eq(weft_spawn(&t[i], await_value, &w[i]), 0);
    }
    weft_sleep_ms(2); /* most waiters park; the rest take the fast path */
    for (int i = 0; i < FUTURES; i++) {
        s[i] = (struct setter){ .f = f[i], .value = i, .start = &start };
        cr_assert_eq(pthread_create(&th[i], NULL, set_from_thread, &s[i]), 0);
    }
    for (int i = 0; i < WAITERS; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    for (int i = 0; i < FUTURES; i++) {
        cr_assert_eq(weft_blocking(join_thread, &th[i]), 0);
        cr_assert_eq(weft_future_destroy(f[i]), 0);
    }
    pthread_barrier_destroy(&start);
    return 0;
}

Test(future, set_from_8_foreign_threads_awaited_by_many_tasks, .timeout = 20)
{
    t_run(eight_foreign_setters, NULL);
}

Test(future, second_set_fails_and_the_first_value_stays, .timeout = 10)
{
    weft_future_t fut, *f = &fut;
    int v = 0;

    cr_assert_eq(weft_future_init(f), 0);
    cr_assert_eq(weft_future_try_get(f, &v), -EAGAIN);
    cr_assert_eq(weft_future_set(f, -EIO), 0);
    cr_assert_eq(weft_future_set(f, 5), -EALREADY);
    cr_assert_eq(weft_future_try_get(f, &v), 0);
    cr_assert_eq(v, -EIO);
    cr_assert_eq(weft_future_try_get(f, NULL), 0);
    cr_assert_eq(weft_future_destroy(f), 0);
    cr_assert_eq(weft_future_init(NULL), -EINVAL);
    cr_assert_eq(weft_future_set(NULL, 1), -EINVAL);
    cr_assert_eq(weft_future_try_get(NULL, &v), -EINVAL);
    cr_assert_eq(weft_future_destroy(NULL), -EINVAL);
}

static int deadlines(void *arg)
{
    weft_future_t fut, *f = &fut;

    (void)arg;
    weft_future_init(f);
    cr_assert_eq(weft_future_wait(f, weft_now_ns() + 2000000), -ETIMEDOUT);
    cr_assert_eq(weft_future_wait(f, 0), -ETIMEDOUT);
    cr_assert_eq(weft_future_set(f, 3), 0);
    cr_assert_eq(weft_future_wait(f, 0), 3); /* set wins over a past one */
    cr_assert_eq(weft_future_wait(NULL, 0), -EINVAL);
    cr_assert_eq(weft_future_destroy(f), 0);
    return 0;
}

Test(future, wait_times_out_unless_already_set, .timeout = 10)
{
    weft_future_t f;

    weft_future_init(&f);
    cr_assert_eq(weft_future_wait(&f, WEFT_NO_DEADLINE), -EPERM);
    weft_future_destroy(&f);
    t_run(deadlines, NULL);
}

static int await_forever(void *arg)
{
    return weft_future_wait(arg, WEFT_NO_DEADLINE);
}

static int cancel_and_busy(void *arg)
{
    weft_future_t fut, *f = &fut;
    weft_task_t *a, *b;

    (void)arg;
    weft_future_init(f);
    cr_assert_eq(weft_spawn(&a, await_forever, f), 0);
    cr_assert_eq(weft_spawn(&b, await_forever, f), 0);
    weft_sleep_ms(2);
    cr_assert_eq(weft_future_destroy(f), -EBUSY);
    weft_cancel(a);
    cr_assert_eq(weft_join(a), -ECANCELED);
    cr_assert_eq(weft_future_set(f, 11), 0);
    cr_assert_eq(weft_join(b), 11);
    cr_assert_eq(weft_future_destroy(f), 0);
    return 0;
}

Test(future, cancel_a_waiter_and_destroy_only_when_nobody_waits, .timeout = 10)
{
    t_run(cancel_and_busy, NULL);
}

/* A deadline that expires while a foreign thread sets the future: the wait
 * reports either the value or -ETIMEDOUT, never loses a set value, and the
 * future can be destroyed right after. */
struct race {
    weft_future_t f;
};

static void *set_soon(void *arg)
{
    struct race *r = arg;

    usleep(50);
    weft_future_set(&r->f, 1);
    return NULL;
}

static int race_round(void *arg)
{
    struct race r;
    pthread_t th;
    int ret, v;

    (void)arg;
    weft_future_init(&r.f);
    cr_assert_eq(pthread_create(&th, NULL, set_soon, &r), 0);
    ret = weft_future_wait(&r.f, weft_now_ns() + 50000);
    cr_assert(ret == 1 || ret == -ETIMEDOUT, "wait returned %d", ret);
    cr_assert_eq(weft_blocking(join_thread, &th), 0);
    cr_assert_eq(weft_future_try_get(&r.f, &v), 0);
    cr_assert_eq(v, 1);
    cr_assert_eq(weft_future_destroy(&r.f), 0);
    return 0;
}

static int set_versus_deadline(void *arg)
{
    weft_task_t *t[8];

    (void)arg;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 8; i++)
            cr_assert_eq(weft_spawn(&t[i], race_round, NULL), 0);
        for (int i = 0; i < 8; i++)
            cr_assert_eq(weft_join(t[i]), 0);
    }
    return 0;
}

Test(future, set_racing_a_deadline_is_never_lost, .timeout = 60)
{
    t_run(set_versus_deadline, NULL);
}
