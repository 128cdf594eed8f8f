/*
 * Files and other fds: write, fsync, read back, statx, vectored I/O, open
 * and close errors, weft_wait_fd on a pipe, file ops with deadlines.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "io_helpers.h"

static void tmp_path(char *buf, size_t n)
{
    snprintf(buf, n, "/tmp/weft-io-file-%d-XXXXXX", (int)getpid());
    close(mkstemp(buf));
}

static int rw_main(void *arg)
{
    char path[64], buf[8192], back[8192];
    struct statx stx;
    int fd;

    (void)arg;
    tmp_path(path, sizeof(path));
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (char)(i * 7);
    fd = weft_openat(AT_FDCWD, path, O_RDWR | O_TRUNC | O_CLOEXEC, 0600,
                     T_SECS(5));
    cr_assert_geq(fd, 0, "openat: %s", strerror(-fd));
    cr_assert_eq(weft_write(fd, buf, sizeof(buf), 0, T_SECS(5)),
                 (ssize_t)sizeof(buf));
    cr_assert_eq(weft_fsync(fd, 0, T_SECS(5)), 0);
    cr_assert_eq(weft_fsync(fd, WEFT_FSYNC_DATASYNC, T_SECS(5)), 0);
    cr_assert_eq(weft_fsync(fd, 8, T_SECS(5)), -EINVAL);
    cr_assert_eq(weft_read(fd, back, sizeof(back), 0, T_SECS(5)),
                 (ssize_t)sizeof(back));
    cr_assert_eq(memcmp(buf, back, sizeof(buf)), 0);
    /* Reading at the end of the file is 0, a short read before it. */
    cr_assert_eq(weft_read(fd, back, sizeof(back), sizeof(buf), T_SECS(5)), 0);
    cr_assert_eq(weft_read(fd, back, sizeof(back), 8000, T_SECS(5)), 192);
    cr_assert_eq(weft_statx(AT_FDCWD, path, 0, STATX_SIZE, &stx, T_SECS(5)),
                 0);
    cr_assert_eq(stx.stx_size, sizeof(buf));
    cr_assert_eq(weft_statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &stx,
                            T_SECS(5)), 0);
    cr_assert_eq(stx.stx_size, sizeof(buf));
    cr_assert_eq(weft_close(fd), 0);
    cr_assert_eq(weft_close(fd), -EBADF);
    unlink(path);
    return 0;
}

Test(io_file, write_fsync_read_back_and_statx, .timeout = 30) { t_run(rw_main, NULL); }

static int vec_main(void *arg)
{
    char path[64], a[100], b[300], c[100], d[300];
    struct iovec out[2] = { { a, sizeof(a) }, { b, sizeof(b) } };
    struct iovec in[2] = { { c, sizeof(c) }, { d, sizeof(d) } };
    int fd;

    (void)arg;
    tmp_path(path, sizeof(path));
    memset(a, 'a', sizeof(a));
    memset(b, 'b', sizeof(b));
    fd = weft_openat(AT_FDCWD, path, O_RDWR | O_TRUNC, 0600, T_SECS(5));
    cr_assert_geq(fd, 0);
    /* File position (-1) for the write, explicit offset for the read. */
    cr_assert_eq(weft_writev(fd, out, 2, -1, T_SECS(5)), 400);
    cr_assert_eq(weft_readv(fd, in, 2, 0, T_SECS(5)), 400);
    cr_assert_eq(memcmp(a, c, sizeof(a)), 0);
    cr_assert_eq(memcmp(b, d, sizeof(b)), 0);
    cr_assert_eq(weft_readv(fd, in, -1, 0, T_SECS(5)), -EINVAL);
    cr_assert_eq(weft_read(fd, c, 1, -2, T_SECS(5)), -EINVAL);
    weft_close(fd);
    unlink(path);
    return 0;
}

Test(io_file, readv_and_writev, .timeout = 30) { t_run(vec_main, NULL); }

static int errors_main(void *arg)
{
    char path[64];
    struct statx stx;

    (void)arg;
    cr_assert_eq(weft_openat(AT_FDCWD, "/nonexistent/weft/x", O_RDONLY, 0,
                             T_SECS(5)), -ENOENT);
    tmp_path(path, sizeof(path));
    cr_assert_eq(weft_openat(AT_FDCWD, path, O_RDWR | O_CREAT | O_EXCL, 0600,
                             T_SECS(5)), -EEXIST);
    cr_assert_eq(weft_openat(AT_FDCWD, "/tmp", O_WRONLY, 0, T_SECS(5)),
                 -EISDIR);
    cr_assert_eq(weft_openat(AT_FDCWD, NULL, O_RDONLY, 0, T_SECS(5)),
                 -EINVAL);
    cr_assert_eq(weft_statx(AT_FDCWD, "/nonexistent/weft", 0, STATX_SIZE,
                            &stx, T_SECS(5)), -ENOENT);
    cr_assert_eq(weft_read(-1, path, 1, -1, T_SECS(5)), -EBADF);
    cr_assert_eq(weft_fsync(-1, 0, T_SECS(5)), -EBADF);
    /* A deadline already past issues nothing. */
    cr_assert_eq(weft_openat(AT_FDCWD, path, O_RDONLY, 0, weft_now_ns() - 1),
                 -ETIMEDOUT);
    unlink(path);
    return 0;
}

Test(io_file, open_and_fd_errors, .timeout = 30) { t_run(errors_main, NULL); }

static int late_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;

    weft_sleep_ms(20);
    cr_assert_eq(weft_write(fd, "x", 1, -1, T_SECS(5)), 1);
    return 0;
}

static int wait_fd_main(void *arg)
{
    weft_task_t *w;
    int p[2];
    char c;

    (void)arg;
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    cr_assert_eq(weft_wait_fd(p[1], POLLOUT, T_SECS(5)), POLLOUT);
    cr_assert_eq(weft_wait_fd(p[0], POLLIN, T_MS(20)), -ETIMEDOUT);
    cr_assert_eq(weft_spawn(&w, late_writer, (void *)(intptr_t)p[1]), 0);
    cr_assert_eq(weft_wait_fd(p[0], POLLIN, T_SECS(5)), POLLIN);
    /* The fd is someone else's: read it with a plain syscall. */
    cr_assert_eq(read(p[0], &c, 1), 1);
    cr_assert_eq(weft_join(w), 0);
    close(p[1]);
    cr_assert_neq(weft_wait_fd(p[0], POLLIN, T_SECS(5)) & POLLHUP, 0);
    cr_assert_eq(weft_wait_fd(p[0], 0, T_SECS(5)), -EINVAL);
    close(p[0]);
    return 0;
}

Test(io_file, wait_fd_on_a_pipe, .timeout = 30) { t_run(wait_fd_main, NULL); }

static int exact_main(void *arg)
{
    char buf[16];
    int p[2];

    (void)arg;
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    cr_assert_eq(weft_write_all(p[1], "hello", 5, T_SECS(5)), 5);
    cr_assert_eq(weft_read_exact(p[0], buf, 5, T_SECS(5)), 5);
    cr_assert_eq(weft_write_all(p[1], "ab", 2, T_SECS(5)), 2);
    close(p[1]);
    /* End of stream first: fewer bytes than asked. */
    cr_assert_eq(weft_read_exact(p[0], buf, 5, T_SECS(5)), 2);
    close(p[0]);
    return 0;
}

Test(io_file, read_exact_and_write_all_on_a_pipe, .timeout = 30) { t_run(exact_main, NULL); }

static int outside(void *arg)
{
    (void)arg;
    return 0;
}

Test(io_file, calls_outside_a_task_are_eperm, .timeout = 10)
{
    char c;

    cr_assert_eq(weft_read(0, &c, 1, -1, WEFT_NO_DEADLINE), -EPERM);
    cr_assert_eq(weft_close(0), -EPERM);
    cr_assert_eq(weft_listen("127.0.0.1", 0, 1, 0), -EPERM);
    t_run(outside, NULL);
}

/* ---- a kernel submission-polling thread per ring ------------------------- */

#include "runtime/driver/backend.h"
#include "runtime/runtime.h"
#include "runtime/task.h"

/* Threads of this process whose name starts with prefix. */
static int t_threads_named(const char *prefix)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    cr_assert_not_null(d);
    while ((e = readdir(d))) {
        char path[300], comm[32] = "";
        FILE *f;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        f = fopen(path, "r");
        if (!f)
            continue; /* it exited meanwhile */
        if (fgets(comm, sizeof(comm), f))
            n += !strncmp(comm, prefix, strlen(prefix));
        fclose(f);
    }
    closedir(d);
    return n;
}

/* A socket round trip and a file written and read back; on io_uring, each
 * worker's ring has its own SQ polling thread (iou-sqp-<pid>). */
static int sqpoll_main(void *arg)
{
    struct runtime *rt = weft__task_current()->rt;
    char path[64], buf[4096], back[4096];
    int sv[2], fd;

    (void)arg;
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(weft_spawn(NULL, t_echo_conn, (void *)(intptr_t)sv[1]), 0);
    cr_assert_eq(weft_write_all(sv[0], "ping", 4, T_SECS(20)), 4);
    cr_assert_eq(weft_read_exact(sv[0], back, 4, T_SECS(20)), 4);
    cr_assert_eq(memcmp(back, "ping", 4), 0);
    weft_close(sv[0]);

    tmp_path(path, sizeof(path));
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (char)(i * 13);
    fd = weft_openat(AT_FDCWD, path, O_RDWR | O_TRUNC | O_CLOEXEC, 0600,
                     T_SECS(20));
    cr_assert_geq(fd, 0, "openat: %s", strerror(-fd));
    cr_assert_eq(weft_write(fd, buf, sizeof(buf), 0, T_SECS(20)),
                 (ssize_t)sizeof(buf));
    cr_assert_eq(weft_fsync(fd, 0, T_SECS(20)), 0);
    cr_assert_eq(weft_read(fd, back, sizeof(back), 0, T_SECS(20)),
                 (ssize_t)sizeof(back));
    cr_assert_eq(memcmp(buf, back, sizeof(buf)), 0);
    cr_assert_eq(weft_close(fd), 0);
    unlink(path);

    /* The start-up probe's ring had a polling thread of its own, which
     * the kernel ends a little after the ring is gone: wait for it. */
    if (rt->io_ops == &weft__io_uring_ops)
        while (t_threads_named("iou-sqp-") != (int)rt->nworkers)
            cr_assert_eq(weft_sleep_ms(1), 0);
    else
        cr_assert_eq(t_threads_named("iou-sqp-"), 0);
    return 0;
}

Test(io_file, sqpoll_on_by_config_field_polls_every_ring_and_moves_data,
     .timeout = 30)
{
    weft_config_t cfg;

    weft_config_init(&cfg);
    cfg.sqpoll = WEFT_FLAG_ON;
    t_run_with(&cfg, sqpoll_main, NULL);
}

Test(io_file, sqpoll_on_by_variable_polls_every_ring_and_moves_data,
     .timeout = 30)
{
    cr_assert_eq(setenv("WEFT_SQPOLL", "1", 1), 0);
    t_run(sqpoll_main, NULL);
}

/* ---- slow pool jobs cannot starve file operations ------------------------ */

#include "runtime/blocking.h"

struct slow_gate {
    atomic_bool open;
    atomic_int running;
};

/* A lookup that hangs on its DNS server until the test opens the gate. */
static int hung_lookup(void *arg)
{
    struct slow_gate *g = arg;

    atomic_fetch_add(&g->running, 1);
    while (!atomic_load(&g->open))
        usleep(500);
    return 0;
}

static int slow_job_main(void *arg)
{
    return weft__blocking_call(hung_lookup, arg, WEFT__JOB_SLOW, NULL);
}

static int return_5(void *arg)
{
    (void)arg;
    return 5;
}

/* Two hung lookups on a pool of two threads: one runs, the other waits for
 * it rather than take the second thread, which stays free for the file
 * operations (on the epoll driver they run on the pool) and other jobs. */
static int slow_half_main(void *arg)
{
    struct slow_gate g = { .open = false };
    struct weft__blocking *pool = &weft__task_current()->rt->pool;
    struct weft__blocking_stats st;
    weft_task_t *slow[2];
    char path[64];
    int fd;

    (void)arg;
    tmp_path(path, sizeof(path));
    for (int i = 0; i < 2; i++)
        cr_assert_eq(weft_spawn(&slow[i], slow_job_main, &g), 0);
    /* Until both lookups run, or one runs and the other is queued while
     * the second thread, idle, passed it over. */
    do {
        cr_assert_eq(weft_yield(), 0);
        weft__blocking_stats(pool, &st);
    } while (atomic_load(&g.running) < 2 &&
             !(atomic_load(&g.running) == 1 && st.queued == 1 &&
               st.idle == 1));
    cr_assert_eq(atomic_load(&g.running), 1,
                 "slow jobs took more than half the pool: %d running, %u "
                 "queued", atomic_load(&g.running), st.queued);
    fd = weft_openat(AT_FDCWD, path, O_RDWR | O_CLOEXEC, 0, WEFT_NO_DEADLINE);
    cr_assert_geq(fd, 0, "openat: %s", strerror(-fd));
    cr_assert_eq(weft_fsync(fd, 0, WEFT_NO_DEADLINE), 0);
    cr_assert_eq(weft_blocking(return_5, NULL), 5);
    cr_assert_eq(atomic_load(&g.running), 1);
    cr_assert_eq(weft_close(fd), 0);
    unlink(path);
    atomic_store(&g.open, true);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(weft_join(slow[i]), 0);
    cr_assert_eq(atomic_load(&g.running), 2);
    return 0;
}

Test(io_file, slow_jobs_hold_at_most_half_the_blocking_pool, .timeout = 30)
{
    cr_assert_eq(setenv("WEFT_BLOCKING_THREADS", "2", 1), 0);
    t_run(slow_half_main, NULL);
}
