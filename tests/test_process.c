/*
 * Subprocesses: exit codes and deaths by signal, pipes both ways with
 * 64 MiB through them, a child that ignores its stdin, environment and
 * working directory, the child's clean signal state, killing on cancel,
 * and no zombie or descriptor left behind.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "io_helpers.h"

#define BIG (64u << 20)

/* Whether pid is no child of ours any more, zombie or alive. */
static bool t_reaped(pid_t pid)
{
    siginfo_t si;

    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 &&
           errno == ECHILD;
}

/* Waits until pid is reaped (a closed handle's child is reaped by a
 * blocking-pool job); a child that is never reaped runs into the test's
 * timeout. */
static void t_until_reaped(pid_t pid)
{
    while (!t_reaped(pid))
        cr_assert_eq(weft_sleep_ms(1), 0);
}

/* No child of the process at all, zombie or alive. */
static bool t_no_children(void)
{
    siginfo_t si;

    return waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 &&
           errno == ECHILD;
}

static weft_process_t *t_spawn(char *const argv[], int in, int out, int err)
{
    weft_process_opts_t opts = { .stdio = { in, out, err } };
    weft_process_t *p;
    int ret = weft_process_spawn(&p, argv[0], argv, &opts);

    cr_assert_eq(ret, 0, "spawn %s: %s", argv[0], strerror(-ret));
    return p;
}

/* Runs sh -c script with nothing piped and returns its wait status. */
static int t_sh_status(const char *script)
{
    char *argv[] = { "sh", "-c", (char *)script, NULL };
    weft_process_t *p = t_spawn(argv, WEFT_STDIO_NULL, WEFT_STDIO_NULL,
                                WEFT_STDIO_INHERIT);
    int status = weft_process_wait(p, T_SECS(20));

    cr_assert_geq(status, 0, "wait: %s", strerror(-status));
    cr_assert_eq(weft_process_close(p), 0);
    return status;
}

/* Reads fd to its end into buf (NUL-terminated) and closes it. */
static size_t t_read_all(int fd, char *buf, size_t size)
{
    size_t got = 0;
    ssize_t n;

    while ((n = weft_read(fd, buf + got, size - 1 - got, -1, T_SECS(20))) > 0)
        got += (size_t)n;
    cr_assert_eq(n, 0, "read: %s", strerror((int)-n));
    buf[got] = '\0';
    cr_assert_eq(weft_close(fd), 0);
    return got;
}

/* ---- exit codes and signals ---------------------------------------------- */

static int exit_codes(void *arg)
{
    int st;

    (void)arg;
    st = t_sh_status("exit 0");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    st = t_sh_status("exit 3");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 3, "status %#x", st);
    st = t_sh_status("exit 255");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 255, "status %#x", st);
    return 0;
}

Test(process, exit_codes, .timeout = 30)
{
    t_run(exit_codes, NULL);
    cr_assert(t_no_children());
}

static int deaths_by_signal(void *arg)
{
    char *sleeper[] = { "sleep", "1000", NULL };
    weft_process_t *p;
    int st;

    (void)arg;
    /* A child that signals itself: SIGTERM is not blocked in it although
     * every weft thread blocks it. */
    st = t_sh_status("kill -TERM $$");
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "status %#x", st);

    p = t_spawn(sleeper, WEFT_STDIO_NULL, WEFT_STDIO_NULL, WEFT_STDIO_NULL);
    cr_assert_eq(weft_process_wait(p, T_MS(20)), -ETIMEDOUT);
    cr_assert_eq(weft_process_kill(p, 0), 0);
    cr_assert_eq(weft_process_kill(p, SIGINT), 0);
    st = weft_process_wait(p, T_SECS(20));
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT, "status %#x", st);
    /* Reaped: the status stays, the child cannot be signalled. */
    cr_assert_eq(weft_process_wait(p, 0), st);
    cr_assert_eq(weft_process_kill(p, SIGKILL), -ESRCH);
    cr_assert_eq(weft_process_close(p), 0);
    return 0;
}

Test(process, exit_by_signal_and_kill, .timeout = 30)
{
    t_run(deaths_by_signal, NULL);
    cr_assert(t_no_children());
}

/* ---- pipes --------------------------------------------------------------- */

/* A checksum of the byte stream, the same whatever the chunking. */
struct sum {
    uint64_t a, b;
    size_t n;
};

static void sum_add(struct sum *s, const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        s->a = (s->a + p[i] + 1) % 4294967291u;
        s->b = (s->b + s->a) % 4294967291u;
    }
    s->n += len;
}

struct pipe_job {
    int fd;
    struct sum sum;
};

/* Writes BIG pseudo-random bytes in uneven chunks, then closes the pipe. */
static int feed(void *arg)
{
    struct pipe_job *j = arg;
    size_t size = 100003;
    unsigned char *chunk = malloc(size);
    uint64_t x = 88172645463325252ull;

    cr_assert_not_null(chunk);
    while (j->sum.n < BIG) {
        size_t len = BIG - j->sum.n < size ? BIG - j->sum.n : size;
        ssize_t n;

        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            chunk[i] = (unsigned char)x;
        }
        n = weft_write_all(j->fd, chunk, len, T_SECS(60));
        cr_assert_eq(n, (ssize_t)len, "write: %s", strerror((int)-n));
        sum_add(&j->sum, chunk, len);
    }
    free(chunk);
    cr_assert_eq(weft_close(j->fd), 0);
    return 0;
}

static int drain(void *arg)
{
    struct pipe_job *j = arg;
    size_t size = 65536;
    unsigned char *buf = malloc(size);
    ssize_t n;

    cr_assert_not_null(buf);
    while ((n = weft_read(j->fd, buf, size, -1, T_SECS(60))) > 0)
        sum_add(&j->sum, buf, (size_t)n);
    cr_assert_eq(n, 0, "read: %s", strerror((int)-n));
    free(buf);
    cr_assert_eq(weft_close(j->fd), 0);
    return 0;
}

static int cat_64mib(void *arg)
{
    char *argv[] = { "cat", NULL };
    struct pipe_job in = { 0 }, out = { 0 };
    weft_task_t *w, *r;
    weft_process_t *p;
    int st;

    (void)arg;
    p = t_spawn(argv, WEFT_STDIO_PIPE, WEFT_STDIO_PIPE, WEFT_STDIO_INHERIT);
    in.fd = weft_process_fd(p, 0);
    out.fd = weft_process_fd(p, 1);
    cr_assert_geq(in.fd, 0);
    cr_assert_geq(out.fd, 0);
    cr_assert_eq(weft_process_fd(p, 2), -EBADF);
    cr_assert(fcntl(in.fd, F_GETFL) & O_NONBLOCK);
    cr_assert(fcntl(out.fd, F_GETFD) & FD_CLOEXEC);
    cr_assert_eq(weft_spawn(&w, feed, &in), 0);
    cr_assert_eq(weft_spawn(&r, drain, &out), 0);
    cr_assert_eq(weft_join(w), 0);
    cr_assert_eq(weft_join(r), 0);
    st = weft_process_wait(p, T_SECS(20));
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    cr_assert_eq(weft_process_close(p), 0);
    cr_assert_eq(out.sum.n, (size_t)BIG);
    cr_assert_eq(out.sum.a, in.sum.a);
    cr_assert_eq(out.sum.b, in.sum.b);
    return 0;
}

Test(process, pipes_both_ways_64mib_checksummed, .timeout = 120)
{
    int fds = t_fds();

    t_run(cat_64mib, NULL);
    cr_assert_eq(t_fds(), fds);
    cr_assert(t_no_children());
}

static int ignores_stdin(void *arg)
{
    char *quits[] = { "sh", "-c", "echo bye", NULL };
    char *sleeps[] = { "sleep", "1000", NULL };
    static char big[1 << 20];
    char buf[64];
    weft_process_t *p;
    ssize_t n;
    int st;

    (void)arg;
    /* A child that never reads and keeps running: the pipe fills and the
     * write waits (the task, not its worker) until its deadline. */
    p = t_spawn(sleeps, WEFT_STDIO_PIPE, WEFT_STDIO_NULL, WEFT_STDIO_NULL);
    n = weft_write_all(weft_process_fd(p, 0), big, sizeof(big), T_MS(50));
    cr_assert_eq(n, -ETIMEDOUT, "write: %zd", n);
    cr_assert_eq(weft_close(weft_process_fd(p, 0)), 0);
    cr_assert_eq(weft_process_kill(p, SIGTERM), 0);
    st = weft_process_wait(p, T_SECS(20));
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "status %#x", st);
    cr_assert_eq(weft_process_close(p), 0);

    /* A child that exits without reading: the write ends with -EPIPE, and
     * the process is not killed by SIGPIPE. */
    p = t_spawn(quits, WEFT_STDIO_PIPE, WEFT_STDIO_PIPE, WEFT_STDIO_NULL);
    t_read_all(weft_process_fd(p, 1), buf, sizeof(buf));
    cr_assert_str_eq(buf, "bye\n");
    st = weft_process_wait(p, T_SECS(20));
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    n = weft_write_all(weft_process_fd(p, 0), big, sizeof(big), T_SECS(20));
    cr_assert_eq(n, -EPIPE, "write: %zd", n);
    cr_assert_eq(weft_close(weft_process_fd(p, 0)), 0);
    cr_assert_eq(weft_process_close(p), 0);
    return 0;
}

Test(process, child_that_ignores_its_stdin, .timeout = 30)
{
    int fds = t_fds();

    t_run(ignores_stdin, NULL);
    cr_assert_eq(t_fds(), fds);
    cr_assert(t_no_children());
}

/* ---- the child's environment --------------------------------------------- */

static int env_cwd_and_null(void *arg)
{
    char *argv[] = { "sh", "-c",
                     "echo \"$WEFT_X\"; pwd; readlink /proc/self/fd/0 "
                     "/proc/self/fd/2", NULL };
    char *env[] = { "WEFT_X=forty two", "PATH=/usr/bin:/bin", NULL };
    weft_process_opts_t opts = {
        .env = env, .cwd = "/tmp",
        .stdio = { WEFT_STDIO_NULL, WEFT_STDIO_PIPE, WEFT_STDIO_NULL } };
    weft_process_t *p;
    char buf[256];

    (void)arg;
    cr_assert_eq(weft_process_spawn(&p, "sh", argv, &opts), 0);
    cr_assert_gt(weft_process_pid(p), 0);
    t_read_all(weft_process_fd(p, 1), buf, sizeof(buf));
    cr_assert_str_eq(buf, "forty two\n/tmp\n/dev/null\n/dev/null\n");
    cr_assert_eq(weft_process_wait(p, T_SECS(20)), 0);
    cr_assert_eq(weft_process_close(p), 0);
    return 0;
}

Test(process, environment_directory_and_dev_null, .timeout = 30)
{
    t_run(env_cwd_and_null, NULL);
}

/* The hex mask of a "Sig...:" line of /proc/<pid>/status in text. */
static unsigned long long t_status_mask(const char *text, const char *key)
{
    const char *line = strstr(text, key);

    cr_assert_not_null(line, "no %s in %s", key, text);
    return strtoull(line + strlen(key), NULL, 16);
}

static int clean_signals(void *arg)
{
    char *argv[] = { "cat", "/proc/self/status", NULL };
    weft_process_t *p;
    static char buf[8192];

    (void)arg;
    p = t_spawn(argv, WEFT_STDIO_NULL, WEFT_STDIO_PIPE, WEFT_STDIO_INHERIT);
    t_read_all(weft_process_fd(p, 1), buf, sizeof(buf));
    cr_assert_eq(weft_process_wait(p, T_SECS(20)), 0);
    cr_assert_eq(weft_process_close(p), 0);
    cr_assert_eq(t_status_mask(buf, "SigBlk:"), 0);
    /* Signals 32 and 33 are glibc's own (below SIGRTMIN): its posix_spawn
     * leaves them ignored in every child, and weft documents that. */
    cr_assert_eq(t_status_mask(buf, "SigIgn:") & ~0x180000000ull, 0,
                 "ignored: %#llx", t_status_mask(buf, "SigIgn:"));
    return 0;
}

Test(process, child_starts_with_clean_mask_and_dispositions, .timeout = 30)
{
    struct sigaction ign = { .sa_handler = SIG_IGN }, old;
    sigset_t usr1, oldmask;

    /* What the child must not inherit: an ignored signal, a blocked one
     * (and the workers' mask, every asynchronous signal blocked). */
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    cr_assert_eq(sigaction(SIGPIPE, &ign, &old), 0);
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, &usr1, &oldmask), 0);
    t_run(clean_signals, NULL);
    pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
    sigaction(SIGPIPE, &old, NULL);
}

/* ---- cancellation and leaks ---------------------------------------------- */

struct waiter {
    weft_process_t *p;
    int ret;
};

/* Waits for the child; on every way out, closes the handle. */
static int wait_then_close(void *arg)
{
    struct waiter *wt = arg;

    wt->ret = weft_process_wait(wt->p, WEFT_NO_DEADLINE);
    cr_assert_eq(weft_process_close(wt->p), 0);
    return wt->ret < 0 ? wt->ret : 0;
}

static int kill_on_cancel(void *arg)
{
    char *argv[] = { "sleep", "1000", NULL };
    struct waiter wt;
    weft_task_t *t;
    pid_t pid;

    (void)arg;
    wt.p = t_spawn(argv, WEFT_STDIO_NULL, WEFT_STDIO_NULL, WEFT_STDIO_NULL);
    pid = weft_process_pid(wt.p);
    cr_assert_eq(weft_spawn(&t, wait_then_close, &wt), 0);
    t_until_parked_in(t, WHY_IO);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t), -ECANCELED);
    t_until_reaped(pid);
    return 0;
}

Test(process, cancelled_wait_then_close_kills_and_reaps, .timeout = 30)
{
    int fds = t_fds();

    t_run(kill_on_cancel, NULL);
    cr_assert_eq(t_fds(), fds);
    cr_assert(t_no_children());
}

/* Handles of running children closed just before the runtime ends: their
 * reapers run before weft_run returns. */
static int close_at_shutdown(void *arg)
{
    char *argv[] = { "sleep", "1000", NULL };
    pid_t *pids = arg;
    weft_process_t *p[8];

    for (int i = 0; i < 8; i++) {
        p[i] = t_spawn(argv, WEFT_STDIO_PIPE, WEFT_STDIO_PIPE,
                       WEFT_STDIO_PIPE);
        pids[i] = weft_process_pid(p[i]);
        for (int n = 0; n < 3; n++)
            cr_assert_eq(weft_close(weft_process_fd(p[i], n)), 0);
    }
    for (int i = 0; i < 8; i++)
        cr_assert_eq(weft_process_close(p[i]), 0);
    return 0;
}

Test(process, no_zombie_and_no_fd_left_after_the_runtime, .timeout = 30)
{
    int fds = t_fds();
    pid_t pids[8];

    t_run(close_at_shutdown, pids);
    for (int i = 0; i < 8; i++)
        cr_assert(t_reaped(pids[i]), "child %d left", (int)pids[i]);
    cr_assert_eq(t_fds(), fds);
    cr_assert(t_no_children());
}

static int many_children(void *arg)
{
    char *argv[] = { "true", NULL };

    (void)arg;
    for (int i = 0; i < 64; i++) {
        weft_process_t *p = t_spawn(argv, WEFT_STDIO_PIPE, WEFT_STDIO_PIPE,
                                    WEFT_STDIO_PIPE);
        char buf[8];

        t_read_all(weft_process_fd(p, 1), buf, sizeof(buf));
        t_read_all(weft_process_fd(p, 2), buf, sizeof(buf));
        cr_assert_eq(weft_close(weft_process_fd(p, 0)), 0);
        cr_assert_eq(weft_process_wait(p, T_SECS(20)), 0);
        cr_assert_eq(weft_process_close(p), 0);
    }
    return 0;
}

Test(process, waited_children_leave_no_zombie_or_fd, .timeout = 60)
{
    int fds = t_fds();

    t_run(many_children, NULL);
    cr_assert_eq(t_fds(), fds);
    cr_assert(t_no_children());
}

/* ---- misuse -------------------------------------------------------------- */

static int bad_arguments(void *arg)
{
    char *argv[] = { "true", NULL }, *empty[] = { NULL };
    weft_process_opts_t bad = { .stdio = { 0, 3, 0 } };
    weft_process_opts_t neg = { .stdio = { -1, 0, 0 } };
    weft_process_opts_t nodir = { .cwd = "/nonexistent/weft" };
    weft_process_t *p;
    int fds = t_fds();

    (void)arg;
    cr_assert_eq(weft_process_spawn(NULL, "true", argv, NULL), -EINVAL);
    cr_assert_eq(weft_process_spawn(&p, NULL, argv, NULL), -EINVAL);
    cr_assert_eq(weft_process_spawn(&p, "true", NULL, NULL), -EINVAL);
    cr_assert_eq(weft_process_spawn(&p, "true", empty, NULL), -EINVAL);
    cr_assert_eq(weft_process_spawn(&p, "true", argv, &bad), -EINVAL);
    cr_assert_eq(weft_process_spawn(&p, "true", argv, &neg), -EINVAL);
    cr_assert_eq(weft_process_spawn(&p, "/nonexistent/weft", argv, NULL),
                 -ENOENT);
    cr_assert_eq(weft_process_spawn(&p, "weft-no-such-program", argv, NULL),
                 -ENOENT);
    cr_assert_eq(weft_process_spawn(&p, "true", argv, &nodir), -ENOENT);
    cr_assert_eq(weft_process_spawn(&p, "/dev/null", argv, NULL), -EACCES);
    cr_assert_eq(t_fds(), fds);
    cr_assert(t_no_children());

    cr_assert_eq(weft_process_pid(NULL), -EINVAL);
    cr_assert_eq(weft_process_fd(NULL, 0), -EINVAL);
    cr_assert_eq(weft_process_wait(NULL, 0), -EINVAL);
    cr_assert_eq(weft_process_kill(NULL, SIGTERM), -EINVAL);
    cr_assert_eq(weft_process_close(NULL), -EINVAL);
    cr_assert_eq(weft_process_spawn(&p, "true", argv, NULL), 0);
    cr_assert_eq(weft_process_fd(p, -1), -EINVAL);
    cr_assert_eq(weft_process_fd(p, 3), -EINVAL);
    cr_assert_eq(weft_process_fd(p, 0), -EBADF);
    cr_assert_eq(weft_process_kill(p, -1), -EINVAL);
    cr_assert_eq(weft_process_kill(p, NSIG), -EINVAL);
    cr_assert_eq(weft_process_wait(p, T_SECS(20)), 0);
    cr_assert_eq(weft_process_close(p), 0);
    return 0;
}

Test(process, bad_arguments, .timeout = 30)
{
    char *argv[] = { "true", NULL };
    weft_process_t *p;

    cr_assert_eq(weft_process_spawn(&p, "true", argv, NULL), -EPERM);
    t_run(bad_arguments, NULL);
}
