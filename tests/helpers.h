/*
 * Shared test helpers (t_ prefix). Tests run the runtime through weft_run
 * with whatever WEFT_WORKERS / WEFT_IO ctest set.
 */
#ifndef WEFT_TEST_HELPERS_H
#define WEFT_TEST_HELPERS_H

#include <criterion/criterion.h>
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

#endif
