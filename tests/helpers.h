/*
 * Shared test helpers (t_ prefix). Tests run the runtime through weft_run
 * with whatever WEFT_WORKERS / WEFT_IO ctest set.
 */
#ifndef WEFT_TEST_HELPERS_H
#define WEFT_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <weft.h>

#include "runtime/runtime.h"
#include "runtime/stack.h"
#include "runtime/task.h"
#include "runtime/worker.h"

/* Task structs of the running task's runtime in use, not free
 * (white-box: a walk of the registry, as a task dump makes). */
static inline unsigned t_structs_in_use(void)
{
    struct runtime *rt = weft__worker_current()->rt;
    unsigned n = 0;

    pthread_mutex_lock(&rt->reg_lock);
    for (struct weft_task *t = rt->registry; t; t = t->all_next)
        n += atomic_load_explicit(&t->state, memory_order_relaxed) !=
             TASK_FREE;
    pthread_mutex_unlock(&rt->reg_lock);
    return n;
}

/* Runs fn(arg) as the main task and asserts it returned 0. */
static inline void t_run(weft_fn_t fn, void *arg)
{
    int ret = weft_run(fn, arg);

    cr_assert_eq(ret, 0, "weft_run returned %d", ret);
}

/* The stack the running task was promised: its spawn's stack_size, or
 * the runtime's default. */
static inline size_t t_stack_promised(void)
{
    struct weft_task *t = weft__task_current();

    return t->stack_size ? t->stack_size : t->rt->stacks.size;
}

/* Bytes below the caller's frame on the stack the running task runs on:
 * its own, or its joiner's while it runs inline (task.h). */
static inline size_t t_stack_room(void)
{
    const struct stack *st =
        weft__task_fiber_owner(weft__task_current())->stack;

    return (size_t)((char *)__builtin_frame_address(0) - (char *)st->lo);
}

/* Workers configured for this run (WEFT_WORKERS, default 2). */
static inline unsigned t_workers(void)
{
    const char *s = getenv("WEFT_WORKERS");

    return s ? (unsigned)atoi(s) : 2;
}

/* Entries of a /proc/self directory (fds, threads), for leak checks. */
static inline int t_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    cr_assert_not_null(d, "opendir %s", dir);
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static inline int t_fds(void) { return t_count_entries("/proc/self/fd"); }
static inline int t_threads(void) { return t_count_entries("/proc/self/task"); }

/* Asserts the process has `threads` threads again once weft's are joined.
 * The kernel wakes a thread's joiner before it takes the thread off
 * /proc/self/task, so one past its join may be listed a moment longer;
 * a thread that leaked would stay. */
static inline void t_assert_threads(int threads)
{
    for (int i = 0; i < 200 && t_threads() != threads; i++)
        usleep(10000);
    cr_assert_eq(t_threads(), threads);
}

/*
 * Polls until t is parked in a wait of kind why (white-box: the state and
 * why fields of runtime/task.h): its fiber has switched out (IDLE) and no
 * wake has come since, so whatever the test does next reaches a task that
 * really waits, not one that has yet to start. A task that finishes first
 * fails the test; one that never parks runs into the test's timeout. From
 * a task it yields between polls, sleeping now and then so that its worker
 * also polls timers and I/O; from a thread outside the runtime it sleeps.
 * t must be a handle still held (or a task that cannot end meanwhile).
 */
static inline void t_until_parked_in(weft_task_t *h, enum weft__why why)
{
    struct weft_task *t = weft__task_of(h);

    for (unsigned polls = 1;; polls++) {
        /* acquire: pairs with the worker's release CAS to IDLE, which comes
         * after the task noted why it parks. */
        uint32_t s = atomic_load_explicit(&t->state, memory_order_acquire);

        if (s == TASK_IDLE &&
            atomic_load_explicit(&t->why, memory_order_relaxed) == why)
            return;
        cr_assert_neq(s, TASK_DONE, "task '%s' finished before it waited",
                      weft_task_name(h));
        if (!weft_self())
            usleep(100);
        else if (polls % 64)
            cr_assert_eq(weft_yield(), 0);
        else
            cr_assert_eq(weft_sleep_ms(1), 0);
    }
}

/* VmRSS of the process in bytes. */
static inline long t_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;

    cr_assert_not_null(f);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    cr_assert_gt(kib, 0);
    return kib * 1024;
}

/* Runs fn(arg) as the main task with cfg and asserts it returned 0. */
static inline void t_run_with(const weft_config_t *cfg, weft_fn_t fn,
                              void *arg)
{
    int ret = weft_run_with(cfg, fn, arg);

    cr_assert_eq(ret, 0, "weft_run_with returned %d", ret);
}

/* t_run on a single worker whatever WEFT_WORKERS says, for tests whose
 * order of events holds only without stealing. */
/*
 * Runs fn(arg) as the main task of a debug-mode runtime configured by cfg
 * (NULL: the environment's) with stderr going to a file, asserts it
 * returned 0, and returns what was written there (valid until the next
 * call).
 */
static inline const char *t_run_debug_with(const weft_config_t *cfg,
                                           weft_fn_t fn, void *arg)
{
    static char out[64 * 1024];
    char path[] = "/tmp/weft-debug-XXXXXX";
    weft_config_t c;
    int fd = mkstemp(path), saved, ret;
    ssize_t n;

    if (cfg)
        c = *cfg;
    else
        weft_config_init(&c);
    c.debug = WEFT_FLAG_ON;
    cr_assert_geq(fd, 0);
    unlink(path);
    fflush(stderr);
    saved = dup(STDERR_FILENO);
    cr_assert_geq(saved, 0);
    cr_assert_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    ret = weft_run_with(&c, fn, arg);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    n = pread(fd, out, sizeof(out) - 1, 0);
    close(fd);
    cr_assert_eq(ret, 0, "weft_run_with returned %d", ret);
    cr_assert_geq(n, 0);
    out[n] = '\0';
    return out;
}

static inline const char *t_run_debug(weft_fn_t fn, void *arg)
{
    return t_run_debug_with(NULL, fn, arg);
}

/* t_run on a single worker whatever WEFT_WORKERS says, for tests whose
 * order of events holds only without stealing. */
static inline void t_run_one_worker(weft_fn_t fn, void *arg)
{
    weft_config_t cfg;

    weft_config_init(&cfg);
    cfg.workers = 1;
    t_run_with(&cfg, fn, arg);
}

/* t_run with at least two workers, for tests about crossing workers: the
 * configured count if larger (oversubscribed runs stay oversubscribed). */
static inline void t_run_two_or_more(weft_fn_t fn, void *arg)
{
    weft_config_t cfg;

    weft_config_init(&cfg);
    cfg.workers = t_workers() < 2 ? 2 : t_workers();
    t_run_with(&cfg, fn, arg);
}

#endif
