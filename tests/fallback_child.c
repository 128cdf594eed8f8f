/*
 * The program tests/test_fallback.c runs in a child process: it refuses
 * some of the kernel's calls to itself with a seccomp filter, then runs
 * weft, and reports through its exit status and output. A program of its
 * own (rather than code run after fork) so that it starts as a fresh,
 * single-threaded process, which the sanitizers' runtimes need.
 *
 *   fallback_child FILTER SCENARIO
 *
 * FILTER, installed before weft starts: none; enter (io_uring_enter fails
 * with EPERM); setup (io_uring_setup fails with EPERM).
 * SCENARIO:
 *   io      weft_run with a task that does real I/O (a socket pair round
 *           trip, a sleep); prints "backend=NAME"; exits with 0 or the
 *           negated error weft_run returned.
 *   broken  starts a runtime, then refuses the backend's wait calls in
 *           every thread (io_uring_enter, or epoll_wait and friends), runs
 *           a task that sleeps 200 ms and shuts down; prints
 *           "failures=N wall_ms=M" (failed waits, and the time since the
 *           filter went in).
 * WEFT_IO and WEFT_WORKERS come from the environment.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <weft.h>

#include "runtime/driver/backend.h"
#include "runtime/runtime.h"
#include "runtime/worker.h"

#if defined(__x86_64__)
#define T_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define T_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "fallback_child: no seccomp audit arch for this machine"
#endif

#define T_MAX_NRS 4

/*
 * Installs a filter that fails the n system calls nrs with EPERM and allows
 * everything else; a call made under another ABI than ours kills the
 * process (its numbers mean other calls). tsync: in every thread of the
 * process, not only the calling one.
 */
static void refuse(const int *nrs, unsigned n, bool tsync)
{
    struct sock_filter f[5 + T_MAX_NRS] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                 offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, T_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    };
    struct sock_fprog prog = { .filter = f };
    unsigned len = 4;

    for (unsigned i = 0; i < n; i++, len++)
        f[len] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                              (unsigned)nrs[i], n - i, 0);
    f[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
                                            SECCOMP_RET_ALLOW);
    f[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
                                            SECCOMP_RET_ERRNO | EPERM);
    prog.len = (unsigned short)len;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        perror("fallback_child: PR_SET_NO_NEW_PRIVS");
        exit(120);
    }
    if (tsync ? syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                        SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0
              : prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        perror("fallback_child: installing the filter");
        exit(121);
    }
}

/* ---- io: real I/O on whichever backend weft picked ----------------------- */

static int echo_once(void *arg)
{
    int fd = *(int *)arg;
    char buf[4];
    ssize_t n = weft_recv(fd, buf, sizeof(buf), 0, WEFT_NO_DEADLINE);

    if (n != 4)
        return n < 0 ? (int)n : -EIO;
    n = weft_send(fd, "pong", 4, 0, WEFT_NO_DEADLINE);
    return n == 4 ? 0 : n < 0 ? (int)n : -EIO;
}

static int round_trip(int fd[2])
{
    weft_task_t *peer;
    char buf[4];
    ssize_t n;
    int ret = weft_spawn(&peer, echo_once, &fd[1]);

    if (ret)
        return ret;
    n = weft_send(fd[0], "ping", 4, 0, WEFT_NO_DEADLINE);
    if (n == 4)
        n = weft_recv(fd[0], buf, sizeof(buf), 0, WEFT_NO_DEADLINE);
    ret = weft_join(peer);
    if (n != 4)
        return n < 0 ? (int)n : -EIO;
    return ret ? ret : memcmp(buf, "pong", 4) ? -EIO : 0;
}

static int io_task(void *arg)
{
    weft_runtime_t *h = weft_runtime_current();
    int fd[2], ret;

    (void)arg;
    printf("backend=%s\n", weft__runtime_of(h)->io_ops->name);
    fflush(stdout);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   fd) != 0)
        return -errno;
    ret = round_trip(fd);
    ret = ret ?: weft_sleep_ms(20);
    close(fd[0]);
    close(fd[1]);
    return ret;
}

/* ---- broken: the backend's wait fails after start ------------------------ */

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

static int sleep_200ms(void *arg)
{
    (void)arg;
    return weft_sleep_ms(200);
}

static int broken_wait(void)
{
    static const int uring[] = { __NR_io_uring_enter };
    static const int epoll[] = { __NR_epoll_pwait, __NR_epoll_pwait2,
#ifdef __NR_epoll_wait
                                 __NR_epoll_wait,
#endif
    };
    weft_runtime_t *rt;
    bool is_uring;
    int64_t start;
    int ret = weft_runtime_new(NULL, &rt);

    if (ret)
        return ret;
    /* Started and serving; from here on its waits fail. */
    ret = weft_runtime_block_on(rt, nothing, NULL);
    is_uring = rt->rt.io_ops == &weft__io_uring_ops;
    start = weft_now_ns();
    if (is_uring)
        refuse(uring, 1, true);
    else
        refuse(epoll, sizeof(epoll) / sizeof(epoll[0]), true);
    ret = ret ?: weft_runtime_block_on(rt, sleep_200ms, NULL);
    weft_runtime_free(rt);
    printf("failures=%llu wall_ms=%lld\n",
           (unsigned long long)atomic_load(&weft__worker_wait_failures),
           (long long)((weft_now_ns() - start) / 1000000));
    return ret;
}

int main(int argc, char **argv)
{
    static const int enter[] = { __NR_io_uring_enter };
    static const int setup[] = { __NR_io_uring_setup };
    int ret;

    if (argc != 3) {
        fprintf(stderr, "usage: fallback_child none|enter|setup io|broken\n");
        return 2;
    }
    if (!strcmp(argv[1], "enter"))
        refuse(enter, 1, false);
    else if (!strcmp(argv[1], "setup"))
        refuse(setup, 1, false);
    else if (strcmp(argv[1], "none"))
        return 2;
    if (!strcmp(argv[2], "io"))
        ret = weft_run(io_task, NULL);
    else if (!strcmp(argv[2], "broken"))
        ret = broken_wait();
    else
        return 2;
    fflush(stdout);
    return ret < 0 ? -ret : ret;
}
