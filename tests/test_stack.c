/*
 * Fiber stacks: an overflow dies with a message naming the task (checked in
 * a child process), deep legal recursion works, per-task stack sizes work,
 * and a parked task that touched little stack costs only a few pages of
 * resident memory.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "runtime/stack.h"
#include "runtime/task.h"

/* Sanitizer builds: see the resident-cost test. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define T_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define T_TSAN 1
#endif

#define KIB 1024
#define MIB (1024 * 1024)

/* ---- recursion ----------------------------------------------------------- */

/* The lowest frame address a recursion reached. */
static __thread char *t_lowest;

/*
 * Recurses max levels with a 1 KiB frame, writing every byte of it, so that
 * the first access below the stack is in the guard page just under it (a
 * frame that skipped over the guard would land in another stack's memory
 * instead). The volatile bound keeps the compiler from seeing an infinite
 * recursion when max is INT_MAX.
 */
__attribute__((noinline)) static int t_recurse(int depth, int max)
{
    volatile char buf[KIB];

    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (char)depth;
    if ((char *)buf < t_lowest)
        t_lowest = (char *)buf;
    if (depth >= max)
        return 1;
    return t_recurse(depth + 1, max) + (buf[depth % KIB] == (char)depth);
}

/* Stack bytes one level of t_recurse takes in this build. */
static size_t t_frame_bytes(void)
{
    char *top;

    t_lowest = (char *)UINTPTR_MAX;
    t_recurse(0, 0);
    top = t_lowest;
    t_lowest = (char *)UINTPTR_MAX;
    t_recurse(0, 1);
    return (size_t)(top - t_lowest);
}

/* Uses about `use` bytes of stack, checks the result, returns bytes used. */
static size_t t_use_stack(size_t use)
{
    char here;
    int levels = (int)(use / t_frame_bytes());

    t_lowest = (char *)UINTPTR_MAX;
    cr_assert_eq(t_recurse(0, levels), levels + 1);
    return (size_t)(&here - t_lowest);
}

/* ---- overflow ------------------------------------------------------------ */

static volatile int t_no_limit = INT_MAX;

static int overflow_forever(void *arg)
{
    (void)arg;
    return t_recurse(0, t_no_limit);
}

static int spawn_deep(void *arg)
{
    weft_spawn_opts_t opts = { .name = "deep" };
    weft_task_t *t;

    (void)arg;
    if (weft_spawn_ex(&t, overflow_forever, NULL, &opts) < 0)
        return 1;
    weft_join(t);
    return 2; /* not reached: the overflow kills the process */
}

static int returns_zero(void *arg)
{
    (void)arg;
    return 0;
}

/* 'deep' waits in the queue behind a short task and, on one worker, starts
 * on the stack that task finished on (no switch): the report must still
 * name it. */
static int spawn_deep_after_short(void *arg)
{
    weft_spawn_opts_t opts = { .name = "deep" };
    weft_task_t *t;

    (void)arg;
    if (weft_spawn_ex(&t, overflow_forever, NULL, &opts) < 0 ||
        weft_spawn(NULL, returns_zero, NULL) < 0)
        return 1;
    weft_join(t);
    return 2; /* not reached */
}

/*
 * The child is this test program again, run with T_CHILD_ENV set: the
 * constructor below runs the scenario before Criterion starts. A plain fork
 * would not do: under TSan the test process has threads, and a forked child
 * of a threaded process may not start new ones.
 */
#define T_CHILD_ENV "WEFT_TEST_STACK_CHILD"

__attribute__((constructor)) static void t_child_main(void)
{
    const char *scenario = getenv(T_CHILD_ENV);
    weft_config_t cfg;

    if (!scenario)
        return;
    weft_config_init(&cfg);
    if (!strcmp(scenario, "overflow_adopted")) {
        cfg.workers = 1; /* nobody steals 'deep' away */
        _exit(weft_run_with(&cfg, spawn_deep_after_short, NULL) == 0 ? 0 : 3);
    }
    /* As on a kernel without process_madvise() guards: one call per stack. */
    if (!strcmp(scenario, "overflow_guarded_one_by_one"))
        atomic_store(&weft__fault_guard_batch, 1);
    _exit(weft_run(spawn_deep, NULL) == 0 ? 0 : 3);
}

/*
 * Sets the child's ASAN_OPTIONS (kept in *saved, to restore with
 * t_restore_asan_options) so that an ASan build leaves SIGSEGV to weft's
 * handler: ASan's own would report the guard-page fault first, as a
 * "stack-overflow" without the task's name. Other builds ignore it.
 */
static void t_child_asan_options(char **saved)
{
    const char *cur = getenv("ASAN_OPTIONS");
    char opts[1024];

    *saved = cur ? strdup(cur) : NULL;
    snprintf(opts, sizeof(opts), "%s%shandle_segv=0", cur ? cur : "",
             cur && *cur ? ":" : "");
    cr_assert_eq(setenv("ASAN_OPTIONS", opts, 1), 0);
}

static void t_restore_asan_options(char *saved)
{
    if (saved)
        setenv("ASAN_OPTIONS", saved, 1);
    else
        unsetenv("ASAN_OPTIONS");
    free(saved);
}

/* Runs scenario in a child with stderr into err; returns its wait status. */
static int t_run_in_child(const char *scenario, char *err, size_t cap)
{
    posix_spawn_file_actions_t fa;
    char *argv[] = { "test_stack", NULL };
    char *asan_saved;
    int p[2], status;
    size_t len = 0;
    ssize_t n;
    pid_t pid;

    cr_assert_eq(pipe(p), 0);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    posix_spawn_file_actions_addclose(&fa, p[1]);
    cr_assert_eq(setenv(T_CHILD_ENV, scenario, 1), 0);
    t_child_asan_options(&asan_saved);
    cr_assert_eq(posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv,
                             environ), 0);
    unsetenv(T_CHILD_ENV);
    t_restore_asan_options(asan_saved);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    while (len < cap - 1 && (n = read(p[0], err + len, cap - 1 - len)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        cr_assert_gt(n, 0);
        len += (size_t)n;
    }
    err[len] = '\0';
    close(p[0]);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return status;
}

/* Runs an overflow scenario and checks that the guard caught it. */
static void t_check_overflow(const char *scenario)
{
    static char err[64 * KIB];
    int status = t_run_in_child(scenario, err, sizeof(err));

    cr_assert(WIFSIGNALED(status) || WIFEXITED(status));
    cr_assert(WIFSIGNALED(status), "the child exited (%d); stderr:\n%s",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1, err);
    cr_assert_eq(WTERMSIG(status), SIGSEGV, "signal %d; stderr:\n%s",
                 WTERMSIG(status), err);
    cr_assert(strstr(err, "stack overflow in task 'deep'"), "stderr:\n%s",
              err);
}

Test(stack, overflow_dies_with_message_naming_the_task, .timeout = 30)
{
    t_check_overflow("overflow");
}

Test(stack, overflow_is_caught_when_guards_go_in_one_by_one, .timeout = 30)
{
    t_check_overflow("overflow_guarded_one_by_one");
}

Test(stack, overflow_names_a_task_that_started_on_a_finished_ones_stack,
     .timeout = 30)
{
    t_check_overflow("overflow_adopted");
}

/* ---- legal depth and sizes ----------------------------------------------- */

static int use_three_quarters(void *arg)
{
    size_t size = t_stack_promised();
    size_t used;

    (void)arg;
    /* Run inline or not, the room is at least what was promised. */
    cr_assert_geq(t_stack_room() + weft__page_size(), size);
    used = t_use_stack(size / 4 * 3);
    cr_assert_geq(used, size / 2, "used %zu of %zu bytes", used, size);
    return 0;
}

static int deep_legal(void *arg)
{
    weft_task_t *t;

    (void)arg;
    cr_assert_eq(weft_spawn(&t, use_three_quarters, NULL), 0);
    cr_assert_eq(weft_join(t), 0);
    return 0;
}

Test(stack, deep_recursion_within_the_stack_size_works, .timeout = 10)
{
    t_run(deep_legal, NULL);
}

struct sized {
    size_t stack_size;
    size_t use;
};

static int check_size_and_use(void *arg)
{
    struct sized *s = arg;
    size_t size = t_stack_room();

    /* Frames above this one take a few bytes of the last page. */
    cr_assert_eq(t_stack_promised(), s->stack_size);
    cr_assert_geq(size + weft__page_size(), s->stack_size, "got %zu", size);
    cr_assert_geq(t_use_stack(s->use), s->use / 2);
    return 0;
}

static int custom_sizes(void *arg)
{
    static struct sized sizes[] = {
        { 4 * MIB, 2 * MIB },   /* far beyond the 256 KiB default */
        { 16 * KIB, 8 * KIB },  /* the minimum */
        { 100000, 64 * KIB },   /* not a multiple of the page size */
    };
    weft_spawn_opts_t opts = { .name = "sized" };
    weft_task_t *t;

    (void)arg;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        opts.stack_size = sizes[i].stack_size;
        cr_assert_eq(weft_spawn_ex(&t, check_size_and_use, &sizes[i], &opts),
                     0);
        cr_assert_eq(weft_join(t), 0, "stack_size %zu",
                     sizes[i].stack_size);
    }
    return 0;
}

Test(stack, spawn_ex_stack_size_gives_that_much_stack, .timeout = 10)
{
    t_run(custom_sizes, NULL);
}

/* ---- resident cost of a parked task -------------------------------------- */

#define PARKED_TASKS 10000

/*
 * A loose bound: a parked task should cost its struct and the one or two
 * stack pages it touched. Sanitizers add shadow memory that the process is
 * charged for: ASan unpoisons (and so commits the shadow of) the whole
 * stack when it is handed out, 1/8 of its 512 KiB mapping (twice the
 * default size, stack.c), and TSan's shadow is a multiple of the memory
 * touched. Their bound is eight times looser, which still catches a
 * stack committed in full.
 */
#if defined(T_ASAN) || defined(T_TSAN)
#define PARKED_MAX_BYTES (128 * KIB)
#else
#define PARKED_MAX_BYTES (16 * KIB)
#endif

static int wait_event(void *arg)
{
    return weft_event_wait(arg, WEFT_NO_DEADLINE);
}

static int parked_cost(void *arg)
{
    static weft_task_t *t[PARKED_TASKS];
    weft_event_t go;
    long before, after, per_task;

    (void)arg;
    cr_assert_eq(weft_event_init(&go), 0);
    before = t_rss_bytes();
    for (int i = 0; i < PARKED_TASKS; i++)
        cr_assert_eq(weft_spawn(&t[i], wait_event, &go), 0);
    for (int i = 0; i < PARKED_TASKS; i++)
        while (atomic_load_explicit(&weft__task_of(t[i])->state,
                                    memory_order_acquire) !=
               TASK_IDLE)
            cr_assert_eq(weft_yield(), 0);
    after = t_rss_bytes();
    per_task = (after - before) / PARKED_TASKS;
    printf("stack: %ld bytes resident per parked task (%d tasks, "
           "%u workers)\n", per_task, PARKED_TASKS, t_workers());
    fflush(stdout);
    cr_assert_lt(per_task, PARKED_MAX_BYTES);
    cr_assert_eq(weft_event_set(&go), 0);
    for (int i = 0; i < PARKED_TASKS; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    cr_assert_eq(weft_event_destroy(&go), 0);
    return 0;
}

Test(stack, parked_task_costs_a_few_pages, .timeout = 60)
{
    t_run(parked_cost, NULL);
}

/* ---- no stack to be had ----------------------------------------------- */

static int never_runs(void *arg)
{
    atomic_store((atomic_int *)arg, 1);
    return 0;
}

static int spawn_without_stacks(void *arg)
{
    atomic_int ran = 0;
    weft_task_t *t;

    (void)arg;
    atomic_store(&weft__fault_stack_alloc, 1);
    cr_assert_eq(weft_spawn(&t, never_runs, &ran), 0);
    /* Published by the yield: a join would run it inline, on our stack. */
    cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(weft_join(t), -ENOMEM);
    atomic_store(&weft__fault_stack_alloc, 0);
    cr_assert_eq(atomic_load(&ran), 0);
    return 0;
}

Test(stack, task_without_a_stack_fails_with_enomem_at_join, .timeout = 30)
{
    t_run(spawn_without_stacks, NULL);
}

Test(stack, main_task_without_a_stack_fails_weft_run, .timeout = 30)
{
    atomic_int ran = 0;

    /* The main task ends without running; weft_run must hear of it. */
    atomic_store(&weft__fault_stack_alloc, 1);
    cr_assert_eq(weft_run(never_runs, &ran), -ENOMEM);
    cr_assert_eq(atomic_load(&ran), 0);
}
