/*
 * Debug mode (WEFT_DEBUG): what it reports on stderr. A detached task that
 * fails and a failed task whose handle is never joined (asyncio's "exception
 * was never retrieved"), a run that goes on for over 100 ms without
 * suspending, and the tasks still alive 1 s into shutdown. Cancellation is
 * not a failure and is never reported.
 */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

/* Whether a whole line of text matches the extended regular expression
 * line (anchored at both ends). */
static bool t_has_line(const char *text, const char *line)
{
    char pattern[512];
    regex_t re;
    bool found;

    snprintf(pattern, sizeof(pattern), "^%s$", line);
    cr_assert_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE | REG_NOSUB),
                 0, "bad pattern %s", pattern);
    found = regexec(&re, text, 0, NULL, 0) == 0;
    regfree(&re);
    return found;
}

/* A task's address as reports print it (%p). */
#define T_PTR "0x[0-9a-f]+"

static int fails_with_eio(void *arg)
{
    (void)arg;
    return -EIO;
}

/* Fails once it has said it ran: a detached task nobody can wait for. */
static int says_it_ran_then_fails(void *arg)
{
    atomic_store((atomic_bool *)arg, true);
    return -EIO;
}

static int waits_to_be_cancelled(void *arg)
{
    (void)arg;
    return weft_sleep_ms(60 * 1000);
}

/* ---- failures nobody retrieves ------------------------------------------- */

static int lose_failures(void *arg)
{
    weft_spawn_opts_t lost = { .name = "lost" };
    weft_spawn_opts_t forgotten = { .name = "forgotten" };
    weft_spawn_opts_t joined = { .name = "joined" };
    weft_spawn_opts_t cancelled = { .name = "cancelled" };
    weft_task_t *f, *j, *c;
    atomic_bool lost_ran = false;

    (void)arg;
    cr_assert_eq(weft_spawn_ex(NULL, says_it_ran_then_fails, &lost_ran,
                               &lost), 0);
    cr_assert_eq(weft_spawn_ex(&f, fails_with_eio, NULL, &forgotten), 0);
    cr_assert_eq(weft_spawn_ex(&j, fails_with_eio, NULL, &joined), 0);
    cr_assert_eq(weft_spawn_ex(&c, waits_to_be_cancelled, NULL, &cancelled),
                 0);
    cr_assert_eq(weft_join(j), -EIO);
    t_until_parked_in(c, WHY_SLEEP); /* cancelled while it runs */
    cr_assert_eq(weft_cancel(c), 0);
    cr_assert_eq(weft_join(c), -ECANCELED);
    /* f ends failed; its handle is never joined nor detached. 'lost' ran,
     * so it ends failed too (not cancelled by the shutdown). */
    while (!weft__task_is_done(weft__task_of(f)) ||
           !atomic_load(&lost_ran))
        cr_assert_eq(weft_yield(), 0);
    return 0;
}

Test(debug, failures_nobody_retrieves_are_reported, .timeout = 30)
{
    const char *err = t_run_debug(lose_failures, NULL);

    cr_assert(t_has_line(err, "weft: task 'lost' \\(" T_PTR "\\) failed "
                              "with -5 \\(Input/output error\\) and was "
                              "detached"), "stderr:\n%s", err);
    cr_assert(t_has_line(err, "weft: task 'forgotten' \\(" T_PTR "\\) "
                              "failed with -5 \\(Input/output error\\) "
                              "and was never joined"), "stderr:\n%s", err);
    cr_assert_null(strstr(err, "'joined'"), "stderr:\n%s", err);
    cr_assert_null(strstr(err, "'cancelled'"), "stderr:\n%s", err);
}

/* ---- runs that do not suspend -------------------------------------------- */

static void t_spin_ms(int64_t ms)
{
    int64_t until = weft_now_ns() + ms * 1000 * 1000;

    while (weft_now_ns() < until)
        ;
}

/* Hogs its worker, then suspends (the run ends at a switch). */
static int hog_then_yield(void *arg)
{
    (void)arg;
    t_spin_ms(150);
    return weft_yield();
}

/* Hogs its worker, then returns (the run ends with the task). */
static int hog_then_return(void *arg)
{
    (void)arg;
    t_spin_ms(150);
    return 0;
}

static int hog(void *arg)
{
    weft_spawn_opts_t a = { .name = "hog-yields" };
    weft_spawn_opts_t b = { .name = "hog-returns" };
    weft_spawn_opts_t c = { .name = "polite" };
    weft_task_t *t[3];

    (void)arg;
    cr_assert_eq(weft_spawn_ex(&t[0], hog_then_yield, NULL, &a), 0);
    cr_assert_eq(weft_spawn_ex(&t[1], hog_then_return, NULL, &b), 0);
    cr_assert_eq(weft_spawn_ex(&t[2], waits_to_be_cancelled, NULL, &c), 0);
    cr_assert_eq(weft_join(t[0]), 0);
    cr_assert_eq(weft_join(t[1]), 0);
    weft_cancel(t[2]);
    cr_assert_eq(weft_join(t[2]), -ECANCELED);
    return 0;
}

Test(debug, runs_that_do_not_suspend_are_reported, .timeout = 30)
{
    const char *err = t_run_debug(hog, NULL);

    cr_assert(t_has_line(err, "weft: task 'hog-yields' \\(" T_PTR "\\) ran "
                              "[0-9]+ ms without suspending"),
              "stderr:\n%s", err);
    cr_assert(t_has_line(err, "weft: task 'hog-returns' \\(" T_PTR "\\) ran "
                              "[0-9]+ ms without suspending"),
              "stderr:\n%s", err);
    /* Only as a run that went on too long: descheduled for a while on a
     * loaded machine, it may still be named by the stall monitor. */
    cr_assert_not(t_has_line(err, "weft: task 'polite' \\(" T_PTR "\\) ran "
                                  "[0-9]+ ms without suspending"),
                  "stderr:\n%s", err);
}

/* ---- tasks that outlive the main task ------------------------------------ */

/* Takes its cancellation, then sleeps on for 1.5 s: parked in a sleep
 * when the dump comes, 1 s into shutdown. */
static int stubborn(void *arg)
{
    (void)arg;
    if (weft_sleep_ms(60 * 1000) == -ECANCELED)
        weft_sleep_ms(1500);
    return 0;
}

static int leave_stubborn(void *arg)
{
    weft_spawn_opts_t opts = { .name = "stubborn" };
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_spawn_ex(&t, stubborn, NULL, &opts), 0);
    t_until_parked_in(t, WHY_SLEEP);
    cr_assert_eq(weft_detach(t), 0);
    return 0;
}

Test(debug, tasks_alive_1s_into_shutdown_are_dumped, .timeout = 30)
{
    const char *err = t_run_debug(leave_stubborn, NULL);

    cr_assert(t_has_line(err, "weft: task dump \\(still alive 1 s after "
                              "shutdown began\\): 1 live tasks, [0-9]+ "
                              "workers"), "stderr:\n%s", err);
    cr_assert(t_has_line(err, "  task " T_PTR " 'stubborn': parked, waiting "
                              "in sleep at stubborn\\+0x[0-9a-f]+ \\(.*\\), "
                              "task function stubborn\\+0x0 \\(.*\\)"),
              "stderr:\n%s", err);
}
