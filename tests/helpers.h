/*
 * Shared test helpers (t_ prefix). Tests run the runtime through weft_run
 * with whatever WEFT_WORKERS / WEFT_IO ctest set.
 */
#ifndef WEFT_TEST_HELPERS_H
#define WEFT_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdatomic.h>

#include <weft.h>

/* Runs fn(arg) as the main task and asserts it returned 0. */
static inline void t_run(weft_fn_t fn, void *arg)
{
    int ret = weft_run(fn, arg);

    cr_assert_eq(ret, 0, "weft_run returned %d", ret);
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

/* Runs fn(arg) as the main task with cfg and asserts it returned 0. */
static inline void t_run_with(const weft_config_t *cfg, weft_fn_t fn,
                              void *arg)
{
    int ret = weft_run_with(cfg, fn, arg);

    cr_assert_eq(ret, 0, "weft_run_with returned %d", ret);
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
