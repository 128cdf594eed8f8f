/*
 * A stand-in for <criterion/criterion.h> in ThreadSanitizer builds only.
 *
 * Criterion cannot start under TSan (its shared arena wants fixed addresses
 * that TSan reserves, then it crashes inside libcriterion: upstream issue
 * Snaipe/Criterion#274), so TSan test builds put this directory first on
 * the include path. It supports what the weft tests use: Test() with
 * .timeout, and the cr_assert family (messages are ignored; the condition
 * and location are printed). Each test runs in a forked child, as Criterion
 * does, so a failing assertion on any thread ends only that test.
 */
#ifndef WEFT_TSAN_CRITERION_H
#define WEFT_TSAN_CRITERION_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct t_case {
    const char *suite, *name;
    void (*fn)(void);
    unsigned timeout; /* seconds; set by .timeout = N */
    struct t_case *next;
};

static struct t_case *t_cases;

#define Test(suite, name, ...)                                              \
    static void suite##_##name(void);                                       \
    __attribute__((constructor)) static void t_reg_##suite##_##name(void)   \
    {                                                                       \
        static struct t_case c = { #suite, #name, suite##_##name,           \
                                   __VA_ARGS__ };                           \
        c.next = t_cases;                                                   \
        t_cases = &c;                                                       \
    }                                                                       \
    static void suite##_##name(void)

static inline void t_check(int ok, const char *what, const char *file,
                           int line)
{
    if (ok)
        return;
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, what);
    fflush(stderr);
    _exit(1);
}

#define T_CHECK(cond) t_check(!!(cond), #cond, __FILE__, __LINE__)
#define cr_assert(cond, ...) T_CHECK(cond)
#define cr_assert_not(cond, ...) T_CHECK(!(cond))
#define cr_assert_eq(a, b, ...) T_CHECK((a) == (b))
#define cr_assert_neq(a, b, ...) T_CHECK((a) != (b))
#define cr_assert_lt(a, b, ...) T_CHECK((a) < (b))
#define cr_assert_leq(a, b, ...) T_CHECK((a) <= (b))
#define cr_assert_gt(a, b, ...) T_CHECK((a) > (b))
#define cr_assert_geq(a, b, ...) T_CHECK((a) >= (b))
#define cr_assert_null(p, ...) T_CHECK((p) == NULL)
#define cr_assert_not_null(p, ...) T_CHECK((p) != NULL)
#define cr_assert_str_eq(a, b, ...) T_CHECK(strcmp((a), (b)) == 0)
#define cr_assert_fail(...) T_CHECK(0)

static int t_run_case(const struct t_case *c)
{
    int status;
    pid_t pid = fork();

    if (pid == 0) {
        alarm(c->timeout ? c->timeout : 60);
        c->fn();
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return 1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    fprintf(stderr, "[FAIL] %s::%s (status %#x)\n", c->suite, c->name,
            status);
    return 1;
}

int main(void)
{
    int tested = 0, failed = 0;

    for (struct t_case *c = t_cases; c; c = c->next, tested++)
        failed += t_run_case(c);
    printf("[====] Synthesis: Tested: %d | Passing: %d | Failing: %d\n",
           tested, tested - failed, failed);
    return failed ? 1 : 0;
}

#endif
