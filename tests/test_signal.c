/*
 * Signals: tasks woken by SIGINT and SIGTERM sent to the process, deadlines,
 * cancellation, bad signal numbers, and the process's dispositions and mask
 * left as they were.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "runtime/signal.h"

static int wait_signal(void *arg)
{
    return weft_signal_wait((int)(intptr_t)arg, WEFT_NO_DEADLINE);
}

/* Sends signo once n tasks wait for it (before, its default action would
 * still be in place), then joins them. */
static void t_kill_when_waiting(int signo, weft_task_t **t, unsigned n)
{
    while (weft__signal_waiters(signo) < n)
        weft_sleep_ms(1);
    cr_assert_eq(kill(getpid(), signo), 0);
    for (unsigned i = 0; i < n; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    cr_assert_eq(weft__signal_waiters(signo), 0);
}

static int sigint_once(void *arg)
{
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_spawn(&t, wait_signal, (void *)(intptr_t)SIGINT), 0);
    t_kill_when_waiting(SIGINT, &t, 1);
    return 0;
}

Test(signal, sigint_wakes_the_waiting_task, .timeout = 10)
{
    t_run(sigint_once, NULL);
}

static int sigterm_many(void *arg)
{
    weft_task_t *t[6];

    (void)arg;
    for (int i = 0; i < 6; i++)
        cr_assert_eq(weft_spawn(&t[i], wait_signal,
                                (void *)(intptr_t)SIGTERM), 0);
    t_kill_when_waiting(SIGTERM, t, 6);
    /* Again: the handler stays in place between waits. */
    cr_assert_eq(weft_spawn(&t[0], wait_signal, (void *)(intptr_t)SIGTERM),
                 0);
    t_kill_when_waiting(SIGTERM, t, 1);
    return 0;
}

Test(signal, sigterm_wakes_every_waiter_each_time, .timeout = 10)
{
    t_run(sigterm_many, NULL);
}

static int timeouts_and_bad_numbers(void *arg)
{
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_signal_wait(SIGUSR1, weft_now_ns() + 2000000),
                 -ETIMEDOUT);
    cr_assert_eq(weft_signal_wait(SIGUSR1, 0), -ETIMEDOUT);
    cr_assert_eq(weft_spawn(&t, wait_signal, (void *)(intptr_t)SIGUSR2), 0);
    while (weft__signal_waiters(SIGUSR2) < 1)
        weft_sleep_ms(1);
    weft_cancel(t);
    cr_assert_eq(weft_join(t), -ECANCELED);
    cr_assert_eq(weft__signal_waiters(SIGUSR2), 0);
    cr_assert_eq(weft_signal_wait(SIGKILL, 0), -EINVAL);
    cr_assert_eq(weft_signal_wait(SIGSEGV, 0), -EINVAL);
    cr_assert_eq(weft_signal_wait(SIGURG, 0), -EINVAL);
    cr_assert_eq(weft_signal_wait(0, 0), -EINVAL);
    cr_assert_eq(weft_signal_wait(1000, 0), -EINVAL);
    return 0;
}

Test(signal, deadline_cancel_and_bad_signal_numbers, .timeout = 10)
{
    cr_assert_eq(weft_signal_wait(SIGINT, 0), -EPERM);
    t_run(timeouts_and_bad_numbers, NULL);
}

static int ignored;

static void user_handler(int signo)
{
    (void)signo;
    ignored++;
}

static int wait_briefly(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_signal_wait(SIGINT, weft_now_ns() + 1000000),
                 -ETIMEDOUT);
    cr_assert_eq(weft_signal_wait(SIGHUP, weft_now_ns() + 1000000),
                 -ETIMEDOUT);
    return 0;
}

Test(signal, dispositions_mask_fds_and_threads_are_restored, .timeout = 10)
{
    struct sigaction mine = { .sa_handler = user_handler }, before, after;
    sigset_t mask_before, mask_after;
    int fds = t_fds(), threads = t_threads();

    /* The kernel fills only the first 64 bits of a sigset_t. */
    memset(&mask_before, 0, sizeof(mask_before));
    memset(&mask_after, 0, sizeof(mask_after));
    sigemptyset(&mine.sa_mask);
    cr_assert_eq(sigaction(SIGHUP, &mine, NULL), 0);
    cr_assert_eq(sigaction(SIGINT, NULL, &before), 0);
    pthread_sigmask(SIG_BLOCK, NULL, &mask_before);
    t_run(wait_briefly, NULL);
    cr_assert_eq(sigaction(SIGINT, NULL, &after), 0);
    cr_assert_eq(after.sa_handler, before.sa_handler);
    cr_assert_eq(sigaction(SIGHUP, NULL, &after), 0);
    cr_assert_eq(after.sa_handler, user_handler);
    pthread_sigmask(SIG_BLOCK, NULL, &mask_after);
    cr_assert_eq(memcmp(&mask_before, &mask_after, sizeof(sigset_t)), 0);
    cr_assert_eq(t_fds(), fds);
    t_assert_threads(threads);
}

/* ---- sets of signals ----------------------------------------------------- */

static int wait_int_or_term(void *arg)
{
    sigset_t set;

    (void)arg;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return weft_signal_wait_set(&set, WEFT_NO_DEADLINE);
}

static int wait_usr1_or_usr2(void *arg)
{
    sigset_t set;

    (void)arg;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    return weft_signal_wait_set(&set, WEFT_NO_DEADLINE);
}

static int sets_of_two(void *arg)
{
    weft_task_t *either, *term, *usr;

    (void)arg;
    cr_assert_eq(weft_spawn(&either, wait_int_or_term, NULL), 0);
    cr_assert_eq(weft_spawn(&term, wait_signal, (void *)(intptr_t)SIGTERM),
                 0);
    cr_assert_eq(weft_spawn(&usr, wait_usr1_or_usr2, NULL), 0);
    while (weft__signal_waiters(SIGTERM) < 2 ||
           weft__signal_waiters(SIGUSR2) < 1)
        weft_sleep_ms(1);
    cr_assert_eq(weft__signal_waiters(SIGINT), 1);
    /* SIGTERM wakes the set that holds it and the single wait for it... */
    cr_assert_eq(kill(getpid(), SIGTERM), 0);
    cr_assert_eq(weft_join(either), SIGTERM);
    cr_assert_eq(weft_join(term), 0);
    cr_assert_eq(weft__signal_waiters(SIGINT), 0);
    cr_assert_eq(weft__signal_waiters(SIGTERM), 0);
    /* ...and not the set without it, which the second of its signals
     * wakes. */
    cr_assert_eq(weft__signal_waiters(SIGUSR1), 1);
    cr_assert_eq(kill(getpid(), SIGUSR2), 0);
    cr_assert_eq(weft_join(usr), SIGUSR2);
    cr_assert_eq(weft__signal_waiters(SIGUSR1), 0);
    /* The first signal of the set works too. */
    cr_assert_eq(weft_spawn(&either, wait_int_or_term, NULL), 0);
    while (weft__signal_waiters(SIGINT) < 1)
        weft_sleep_ms(1);
    cr_assert_eq(kill(getpid(), SIGINT), 0);
    cr_assert_eq(weft_join(either), SIGINT);
    return 0;
}

Test(signal, a_set_of_two_returns_the_one_that_came, .timeout = 10)
{
    t_run(sets_of_two, NULL);
}

static int set_errors(void *arg)
{
    sigset_t set;
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_signal_wait_set(NULL, 0), -EINVAL);
    sigemptyset(&set);
    cr_assert_eq(weft_signal_wait_set(&set, 0), -EINVAL);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGKILL);
    cr_assert_eq(weft_signal_wait_set(&set, 0), -EINVAL);
    sigfillset(&set);
    cr_assert_eq(weft_signal_wait_set(&set, 0), -EINVAL);
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    cr_assert_eq(weft_signal_wait_set(&set, weft_now_ns() + 2000000),
                 -ETIMEDOUT);
    cr_assert_eq(weft__signal_waiters(SIGHUP), 0);
    /* A cancelled set wait leaves no waiter behind for either signal. */
    cr_assert_eq(weft_spawn(&t, wait_usr1_or_usr2, NULL), 0);
    while (weft__signal_waiters(SIGUSR2) < 1)
        weft_sleep_ms(1);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t), -ECANCELED);
    cr_assert_eq(weft__signal_waiters(SIGUSR1), 0);
    cr_assert_eq(weft__signal_waiters(SIGUSR2), 0);
    return 0;
}

Test(signal, set_deadline_cancel_and_bad_sets, .timeout = 10)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    cr_assert_eq(weft_signal_wait_set(&set, 0), -EPERM);
    t_run(set_errors, NULL);
}
