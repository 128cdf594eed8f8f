/*
 * Choosing the I/O backend where io_uring is refused, and a backend that
 * starts failing under a running runtime: each case runs tests/
 * fallback_child.c in a child process behind a seccomp filter, with a time
 * limit, so that a hang fails the test instead of hanging it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define T_CHILD_LIMIT_MS 30000

extern char **environ;

struct t_child {
    int status;     /* waitpid's */
    bool killed;    /* still running at the limit */
    char out[8192]; /* its stdout and stderr */
};

/* The environment with WEFT_IO replaced by io (NULL: unset). */
static char **t_env_with_io(const char *io, char *entry, size_t size)
{
    size_t n = 0, k = 0;
    char **env;

    while (environ[n])
        n++;
    env = calloc(n + 2, sizeof(*env));
    cr_assert_not_null(env);
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "WEFT_IO=", 8))
            env[k++] = environ[i];
    if (io) {
        snprintf(entry, size, "WEFT_IO=%s", io);
        env[k++] = entry;
    }
    return env;
}

/* Reads the child's output until it closes it or the limit passes. */
static bool t_read_until_eof(int fd, char *out, size_t size)
{
    int64_t deadline = weft_now_ns() + T_CHILD_LIMIT_MS * INT64_C(1000000);
    size_t len = 0;

    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int64_t left = (deadline - weft_now_ns()) / 1000000;
        ssize_t n;

        if (left <= 0)
            return false;
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        n = read(fd, out + len, size - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == size - 1)
            break;
    }
    out[len] = '\0';
    return true;
}

/* Runs fallback_child FILTER SCENARIO with WEFT_IO=io (NULL: unset). */
static void t_run_child(const char *filter, const char *scenario,
                        const char *io, struct t_child *c)
{
    char *argv[] = { WEFT_FALLBACK_CHILD, (char *)filter, (char *)scenario,
                     NULL };
    char entry[64];
    char **env = t_env_with_io(io, entry, sizeof(entry));
    int p[2];
    pid_t pid;

    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        execve(argv[0], argv, env);
        _exit(127);
    }
    free(env);
    close(p[1]);
    c->killed = !t_read_until_eof(p[0], c->out, sizeof(c->out));
    close(p[0]);
    if (c->killed)
        kill(pid, SIGKILL);
    cr_assert_eq(waitpid(pid, &c->status, 0), pid);
    cr_assert_not(c->killed, "fallback_child %s %s (WEFT_IO=%s) still ran "
                  "after %d ms; its output: %s", filter, scenario,
                  io ? io : "unset", T_CHILD_LIMIT_MS, c->out);
}

/* Asserts the child exited with code, showing its output if not. */
static void t_assert_exit(const struct t_child *c, int code)
{
    cr_assert(WIFEXITED(c->status), "child died of signal %d; output: %s",
              WIFSIGNALED(c->status) ? WTERMSIG(c->status) : 0, c->out);
    cr_assert_eq(WEXITSTATUS(c->status), code,
                 "child exited with %d (%s), not %d; output: %s",
                 WEXITSTATUS(c->status), strerror(WEXITSTATUS(c->status)),
                 code, c->out);
}

/* ---- choosing a backend -------------------------------------------------- */

Test(fallback, working_io_uring_is_chosen, .timeout = 60)
{
    struct t_child c;

    t_run_child("none", "io", NULL, &c);
    t_assert_exit(&c, 0);
    cr_assert(strstr(c.out, "backend=uring"), "output: %s", c.out);
}

Test(fallback, io_uring_enter_refused_falls_back_to_epoll, .timeout = 60)
{
    struct t_child c;

    t_run_child("enter", "io", NULL, &c);
    t_assert_exit(&c, 0);
    cr_assert(strstr(c.out, "backend=epoll"), "output: %s", c.out);
}

Test(fallback, io_uring_setup_refused_falls_back_to_epoll, .timeout = 60)
{
    struct t_child c;

    t_run_child("setup", "io", NULL, &c);
    t_assert_exit(&c, 0);
    cr_assert(strstr(c.out, "backend=epoll"), "output: %s", c.out);
}

Test(fallback, io_uring_asked_for_but_refused_fails_naming_why,
     .timeout = 60)
{
    struct t_child c;

    t_run_child("enter", "io", "uring", &c);
    t_assert_exit(&c, EOPNOTSUPP);
    cr_assert_null(strstr(c.out, "backend="), "the task ran: %s", c.out);
    cr_assert(strstr(c.out, "io_uring_enter"), "output: %s", c.out);
    cr_assert(strstr(c.out, strerror(EPERM)), "output: %s", c.out);
    t_run_child("setup", "io", "uring", &c);
    t_assert_exit(&c, EOPNOTSUPP);
    cr_assert(strstr(c.out, "io_uring_setup"), "output: %s", c.out);
}

Test(fallback, epoll_asked_for_is_used_where_io_uring_is_refused,
     .timeout = 60)
{
    struct t_child c;

    t_run_child("enter", "io", "epoll", &c);
    t_assert_exit(&c, 0);
    cr_assert(strstr(c.out, "backend=epoll"), "output: %s", c.out);
}

/* ---- a backend failing under a running runtime --------------------------- */

/* Occurrences of s in out. */
static unsigned t_count(const char *out, const char *s)
{
    unsigned n = 0;

    for (const char *p = out; (p = strstr(p, s)); p += strlen(s))
        n++;
    return n;
}

/*
 * Every wait of the running runtime's backend now fails. The workers must
 * say so once each (a worker still blocked in its wait from before the
 * filter may never fail), keep serving timers, shut down, and never spin:
 * each failed park sleeps at least a millisecond or until the worker's next
 * timer, and each worker fails at most two non-blocking polls around each
 * park, so a worker that backs off fails fewer than 3 waits per
 * millisecond of wall time (a few more around the one timer). A worker that
 * retried at once would fail hundreds per millisecond.
 */
static void t_broken_wait(const char *io)
{
    unsigned long long failures;
    unsigned workers = t_workers();
    long long wall_ms;
    struct t_child c;
    const char *line;

    t_run_child("none", "broken", io, &c);
    t_assert_exit(&c, 0);
    line = strstr(c.out, "failures=");
    cr_assert_not_null(line, "output: %s", c.out);
    cr_assert_eq(sscanf(line, "failures=%llu wall_ms=%lld", &failures,
                        &wall_ms), 2, "output: %s", c.out);
    cr_assert_geq(failures, 1, "no wait failed: %s", c.out);
    cr_assert_leq(failures, 3ull * workers * (unsigned long long)(wall_ms + 8),
                  "%llu failed waits in %lld ms: the workers spin",
                  failures, wall_ms);
    cr_assert_geq(t_count(c.out, "backend's wait failed"), 1, "%s", c.out);
    cr_assert_leq(t_count(c.out, "backend's wait failed"), workers, "%s",
                  c.out);
    cr_assert(strstr(c.out, strerror(EPERM)), "output: %s", c.out);
}

Test(fallback, failing_uring_wait_is_reported_once_and_does_not_spin,
     .timeout = 60)
{
    t_broken_wait("uring");
}

Test(fallback, failing_epoll_wait_is_reported_once_and_does_not_spin,
     .timeout = 60)
{
    t_broken_wait("epoll");
}
