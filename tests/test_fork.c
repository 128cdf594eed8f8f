/*
 * Child processes: a child forked from a task, a pool job or a thread of
 * the program gets the signal mask a thread outside weft would have given
 * it (SIGTERM ends it, before or after exec), the dispositions weft
 * replaced are the previous ones in the child, weft_run in a task's child
 * returns -EPERM, and what posix_spawn does with and without a mask.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "runtime/signal.h"

extern char **environ;

/* How long a child may take to end once it should (it fails the test). */
#define T_REAP_LIMIT_MS 20000

/* The first signal whose blocked state differs between the calling
 * thread's mask and want, or 0. Async-signal-safe: children call it. */
static int t_mask_differs(const sigset_t *want)
{
    sigset_t now;

    pthread_sigmask(SIG_SETMASK, NULL, &now);
    for (int signo = 1; signo <= 64; signo++) {
        /* 32 .. SIGRTMIN-1 are the C library's own; it never blocks them. */
        if (signo >= 32 && signo < SIGRTMIN)
            continue;
        if (sigismember(&now, signo) != sigismember(want, signo))
            return signo;
    }
    return 0;
}

/* Waits for pid to end, polling between sleeps of the task; after
 * T_REAP_LIMIT_MS it kills the child and fails. Returns waitpid's status. */
static int t_reap(pid_t pid)
{
    int status;

    for (int ms = 0; ms < T_REAP_LIMIT_MS; ms += 5) {
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == pid)
            return status;
        cr_assert_eq(r, 0, "waitpid: %s", strerror(errno));
        cr_assert_eq(weft_sleep_ms(5), 0);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    cr_assert_fail("child %d still alive %d ms after it should have ended",
                   (int)pid, T_REAP_LIMIT_MS);
    return -1;
}

/* Asserts status says the child died of signo. */
static void t_assert_killed_by(int status, int signo)
{
    cr_assert(WIFSIGNALED(status), "child exited with %d, not killed by %s",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1, strsignal(signo));
    cr_assert_eq(WTERMSIG(status), signo, "child killed by %s, not %s",
                 strsignal(WTERMSIG(status)), strsignal(signo));
}

/* ---- fork then exec from a task ------------------------------------------ */

/*
 * Forks a child that execs `sleep 30` and returns once the exec happened:
 * the child's end of a close-on-exec pipe closes then (or carries errno if
 * the exec failed).
 */
static pid_t t_fork_sleeper(void)
{
    char *argv[] = { "sleep", "30", NULL };
    const char *path = access("/bin/sleep", X_OK) == 0 ? "/bin/sleep"
                                                       : "/usr/bin/sleep";
    int p[2], err = 0;
    pid_t pid;
    ssize_t n;

    cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        execve(path, argv, environ);
        err = errno;
        (void)!write(p[1], &err, sizeof(err));
        _exit(127);
    }
    close(p[1]);
    n = weft_read(p[0], &err, sizeof(err), -1, WEFT_NO_DEADLINE);
    close(p[0]);
    cr_assert_eq(n, 0, "exec %s failed: %s", path,
                 n > 0 ? strerror(err) : strerror((int)-n));
    return pid;
}

static int fork_exec_sigterm(void *arg)
{
    pid_t pid = t_fork_sleeper();

    (void)arg;
    cr_assert_eq(kill(pid, SIGTERM), 0);
    t_assert_killed_by(t_reap(pid), SIGTERM);
    return 0;
}

Test(fork, child_of_a_task_that_execs_dies_of_sigterm, .timeout = 60)
{
    t_run(fork_exec_sigterm, NULL);
}

/* ---- the child's mask ---------------------------------------------------- */

/* The mask of the thread that called weft_run. */
static sigset_t t_creator_mask;

/* Forks a child that exits with t_mask_differs(&t_creator_mask). */
static pid_t t_fork_mask_checker(void)
{
    pid_t pid = fork();

    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0)
        _exit(t_mask_differs(&t_creator_mask));
    return pid;
}

static void t_assert_exit(int status, int code, const char *what)
{
    cr_assert(WIFEXITED(status), "%s: child killed by signal %d", what,
              WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    cr_assert_eq(WEXITSTATUS(status), code, "%s: child exited with %d", what,
                 WEXITSTATUS(status));
}

static int fork_in_pool(void *arg)
{
    (void)arg;
    return t_fork_mask_checker();
}

static int masks_of_children(void *arg)
{
    int pid;

    (void)arg;
    pid = (int)t_fork_mask_checker();
    t_assert_exit(t_reap(pid), 0, "forked from a task: mask differs at");
    pid = weft_blocking(fork_in_pool, NULL);
    cr_assert_gt(pid, 0, "weft_blocking: %s", strerror(-pid));
    t_assert_exit(t_reap(pid), 0, "forked from a pool job: mask differs at");
    return 0;
}

/* On a worker (whose own mask blocks everything) and on a pool thread,
 * weft_child_sigmask gives the creator's mask. */
static int child_sigmask_in_pool(void *arg)
{
    sigset_t mask;

    (void)arg;
    if (weft_child_sigmask(&mask) != 0)
        return -1;
    return sigismember(&mask, SIGUSR2) && !sigismember(&mask, SIGTERM) ? 0
                                                                       : -1;
}

static int child_sigmask_is_creators(void *arg)
{
    sigset_t mask, own;

    (void)arg;
    pthread_sigmask(SIG_SETMASK, NULL, &own);
    cr_assert(sigismember(&own, SIGTERM), "the worker does not block all");
    cr_assert_eq(weft_child_sigmask(&mask), 0);
    cr_assert_not(sigismember(&mask, SIGTERM));
    cr_assert(sigismember(&mask, SIGUSR2));
    cr_assert_eq(weft_blocking(child_sigmask_in_pool, NULL), 0);
    cr_assert_eq(weft_child_sigmask(NULL), -EINVAL);
    return 0;
}

/*
 * The thread that starts the runtime blocks SIGUSR2 and nothing else of
 * note; children forked from a task and from a pool job get exactly its
 * mask, not the workers' (every signal blocked).
 */
Test(fork, children_of_weft_threads_get_the_runtime_creators_mask,
     .timeout = 60)
{
    sigset_t usr2, old;

    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, &usr2, &old), 0);
    pthread_sigmask(SIG_SETMASK, NULL, &t_creator_mask);
    t_run(masks_of_children, NULL);
    t_run(child_sigmask_is_creators, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* A thread of the program (not weft's), started from a task, with a mask
 * of its own: its child keeps that mask. */
static void *foreign_thread(void *arg)
{
    sigset_t *want = arg;
    pid_t pid;
    int status;

    pthread_sigmask(SIG_SETMASK, want, NULL);
    pid = fork();
    if (pid == 0)
        _exit(t_mask_differs(want));
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return (void *)(intptr_t)-1;
    return (void *)(intptr_t)status;
}

static int fork_from_foreign_thread(void *arg)
{
    pthread_t th;
    void *status;

    cr_assert_eq(pthread_create(&th, NULL, foreign_thread, arg), 0);
    cr_assert_eq(pthread_join(th, &status), 0);
    return (int)(intptr_t)status;
}

static int foreign_child(void *arg)
{
    int status = weft_blocking(fork_from_foreign_thread, arg);

    cr_assert_geq(status, 0, "fork or waitpid failed");
    t_assert_exit(status, 0, "forked from a thread of ours: mask differs at");
    return 0;
}

Test(fork, child_of_a_foreign_thread_keeps_its_mask, .timeout = 60)
{
    sigset_t usr1;

    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    t_run(foreign_child, &usr1);
}

/* ---- dispositions -------------------------------------------------------- */

static int wait_usr1(void *arg)
{
    (void)arg;
    return weft_signal_wait(SIGUSR1, WEFT_NO_DEADLINE);
}

/*
 * While a task waits for SIGUSR1, weft's handler is in place for it. A
 * child (of the test's own thread, whose mask lets SIGUSR1 through) that
 * raises SIGUSR1 must die of it as it would have without weft, not run
 * weft's handler and carry on.
 */
Test(fork, child_gets_the_disposition_weft_replaced, .timeout = 60)
{
    struct timespec ms = { 0, 1000000 };
    weft_runtime_t *rt;
    sigset_t none;
    pid_t pid;
    int status;

    sigemptyset(&none);
    cr_assert_eq(pthread_sigmask(SIG_SETMASK, &none, NULL), 0);
    cr_assert_eq(weft_runtime_new(NULL, &rt), 0);
    cr_assert_eq(weft_spawn_from(rt, NULL, wait_usr1, NULL), 0);
    while (weft__signal_waiters(SIGUSR1) < 1)
        nanosleep(&ms, NULL);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        raise(SIGUSR1);
        _exit(0);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    t_assert_killed_by(status, SIGUSR1);
    cr_assert_eq(weft__signal_waiters(SIGUSR1), 1);
    cr_assert_eq(weft_runtime_free(rt), 0);
}

/* ---- weft in the child --------------------------------------------------- */

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

static int weft_in_child(void *arg)
{
    weft_runtime_t *rt;
    pid_t pid;
    int ret;

    (void)arg;
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        ret = weft_run(nothing, NULL);
        _exit(ret < 0 ? -ret : 200);
    }
    t_assert_exit(t_reap(pid), EPERM, "weft_run in a task's child");
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        ret = weft_runtime_new(NULL, &rt);
        _exit(ret < 0 ? -ret : 200);
    }
    t_assert_exit(t_reap(pid), EPERM, "weft_runtime_new in a task's child");
    return 0;
}

Test(fork, weft_run_in_the_child_of_a_task_returns_eperm, .timeout = 60)
{
    t_run(weft_in_child, NULL);
}

/* ---- posix_spawn --------------------------------------------------------- */

/* posix_spawn of `sleep 30`, with mask set as the child's if not NULL. */
static pid_t t_spawn_sleeper(const sigset_t *mask)
{
    char *argv[] = { "sleep", "30", NULL };
    posix_spawnattr_t attr;
    pid_t pid;
    int ret;

    cr_assert_eq(posix_spawnattr_init(&attr), 0);
    if (mask) {
        cr_assert_eq(posix_spawnattr_setsigmask(&attr, mask), 0);
        cr_assert_eq(posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK),
                     0);
    }
    ret = posix_spawnp(&pid, "sleep", NULL, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    cr_assert_eq(ret, 0, "posix_spawnp: %s", strerror(ret));
    return pid;
}

static int spawn_with_mask(void *arg)
{
    sigset_t mask;
    pid_t pid;

    (void)arg;
    cr_assert_eq(weft_child_sigmask(&mask), 0);
    /* posix_spawn returns once the child has exec'd (glibc's vfork-like
     * clone), so SIGTERM reaches `sleep` itself. */
    pid = t_spawn_sleeper(&mask);
    cr_assert_eq(kill(pid, SIGTERM), 0);
    t_assert_killed_by(t_reap(pid), SIGTERM);
    return 0;
}

Test(fork, posix_spawn_with_weft_child_sigmask_dies_of_sigterm,
     .timeout = 60)
{
    t_run(spawn_with_mask, NULL);
}

/* The signals blocked in pid, from /proc/PID/status. */
static uint64_t t_blocked_of(pid_t pid)
{
    char path[64], line[256];
    unsigned long long blocked = 0;
    bool found = false;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    while (!found && fgets(line, sizeof(line), f))
        found = sscanf(line, "SigBlk: %llx", &blocked) == 1;
    fclose(f);
    cr_assert(found, "no SigBlk in %s", path);
    return blocked;
}

static int spawn_without_mask(void *arg)
{
    pid_t pid;
    int status;

    (void)arg;
    pid = t_spawn_sleeper(NULL);
    cr_assert(t_blocked_of(pid) & (UINT64_C(1) << (SIGTERM - 1)),
              "posix_spawn's child no longer inherits the worker's mask: "
              "weft.h says it does");
    cr_assert_eq(kill(pid, SIGKILL), 0);
    status = t_reap(pid);
    t_assert_killed_by(status, SIGKILL);
    return 0;
}

/* What weft.h documents: posix_spawn runs no fork handler, so without
 * POSIX_SPAWN_SETSIGMASK its child keeps the worker's mask. */
Test(fork, posix_spawn_without_a_mask_keeps_the_workers_mask, .timeout = 60)
{
    t_run(spawn_without_mask, NULL);
}
