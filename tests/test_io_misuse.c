/*
 * The I/O calls given what a caller should not pass: fds that are negative,
 * huge or not open, lengths past what one system call moves, NULL pointers,
 * bad flags, an fd closed with close(2) under waiting tasks. Each call
 * answers with the negative errno weft.h documents (or, for a length past
 * 2 GiB, a short count), the same on both backends; nothing aborts, hangs,
 * spins or grows a table for an fd that is not open.
 *
 * Large buffers are address space, not memory: t_alias_map maps one small
 * memfd again and again, so the kernel may read or write every byte of a
 * 4 GiB buffer that costs a few MiB.
 */
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "runtime/driver/backend.h"
#include "io/op.h"
#include "runtime/mem.h"
#include "runtime/task.h"
#include "io_helpers.h"

#define GIB4 (1ull << 32)
#define ALIAS_PERIOD ((size_t)2 << 20)
#define RW_MAX ((size_t)0x7ffff000) /* weft.h: the most one call moves */

/* ---- helpers ------------------------------------------------------------- */

/* The byte at offset i of every aliased buffer the tests fill. */
static unsigned char t_pattern(size_t i)
{
    return (unsigned char)(i % ALIAS_PERIOD * 7 / 3 % 251 + 1);
}

/*
 * len bytes of address space (rounded up to ALIAS_PERIOD) whose every
 * ALIAS_PERIOD bytes are the same memory: one memfd mapped again and again.
 * Filled with t_pattern if fill, else zeros. Shared file mappings commit
 * nothing, so this works under strict overcommit too.
 */
static unsigned char *t_alias_map(size_t len, bool fill)
{
    size_t span = (len + ALIAS_PERIOD - 1) / ALIAS_PERIOD * ALIAS_PERIOD;
    int mfd = memfd_create("weft-test", MFD_CLOEXEC);
    unsigned char *base;

    cr_assert_geq(mfd, 0, "memfd_create: %s", strerror(errno));
    cr_assert_eq(ftruncate(mfd, (off_t)ALIAS_PERIOD), 0);
    base = mmap(NULL, span, PROT_NONE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    cr_assert_neq(base, MAP_FAILED, "reserving %zu bytes: %s", span,
                  strerror(errno));
    for (size_t off = 0; off < span; off += ALIAS_PERIOD)
        cr_assert_neq(mmap(base + off, ALIAS_PERIOD, PROT_READ | PROT_WRITE,
                           MAP_SHARED | MAP_FIXED, mfd, 0),
                      MAP_FAILED, "aliasing: %s", strerror(errno));
    close(mfd);
    if (fill)
        for (size_t i = 0; i < ALIAS_PERIOD; i++)
            base[i] = t_pattern(i);
    return base;
}

static void t_alias_unmap(unsigned char *base, size_t len)
{
    size_t span = (len + ALIAS_PERIOD - 1) / ALIAS_PERIOD * ALIAS_PERIOD;

    cr_assert_eq(munmap(base, span), 0);
}

/* Does buf[0..n) hold what a stream from t_alias_map's offset 0 carries? */
static bool t_is_pattern(const unsigned char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (buf[i] != t_pattern(i))
            return false;
    return true;
}

static void t_socketpair(int sv[2])
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* Reads what fd holds right now (a plain syscall), up to cap bytes. */
static size_t t_drain(int fd, unsigned char *buf, size_t cap)
{
    size_t got = 0;
    ssize_t n;

    while (got < cap &&
           (n = recv(fd, buf + got, cap - got, MSG_DONTWAIT)) > 0)
        got += (size_t)n;
    return got;
}

#define EXPECT(call, err)                                                   \
    do {                                                                    \
        long r_ = (long)(call);                                             \
        cr_assert_eq(r_, (long)(err), "%s: %ld (%s), expected %s", #call,   \
                     r_, r_ < 0 ? strerror((int)-r_) : "", #err);           \
    } while (0)

/* ---- lengths past what one system call moves ----------------------------- */

static int recv_huge_main(void *arg)
{
    size_t lens[] = { GIB4, SIZE_MAX };
    unsigned char *buf = t_alias_map(GIB4, false);
    int sv[2];

    (void)arg;
    t_socketpair(sv);
    for (int i = 0; i < 2; i++) {
        unsigned char msg[100];

        for (size_t k = 0; k < sizeof(msg); k++)
            msg[k] = (unsigned char)(k + i);
        cr_assert_eq(send(sv[1], msg, sizeof(msg), 0), 100);
        /* The buffer covers every byte the call may write: GIB4 for the
         * first, and for SIZE_MAX the clamp's 2 GiB. */
        EXPECT(weft_recv(sv[0], buf, lens[i], 0, T_SECS(30)), 100);
        cr_assert_eq(memcmp(buf, msg, sizeof(msg)), 0);
        cr_assert_eq(send(sv[1], msg, sizeof(msg), 0), 100);
        EXPECT(weft_read(sv[0], buf, lens[i], -1, T_SECS(30)), 100);
        cr_assert_eq(memcmp(buf, msg, sizeof(msg)), 0);
    }
    close(sv[0]);
    close(sv[1]);
    t_alias_unmap(buf, GIB4);
    return 0;
}

Test(io_misuse, recv_and_read_of_4gib_or_size_max_return_what_arrived,
     .timeout = 60)
{
    t_run(recv_huge_main, NULL);
}

/* A send or write of len from a 4 GiB buffer: a short count, and the peer
 * holds exactly that many bytes, the buffer's first. */
static void t_short_write(int sv[2], unsigned char *src, unsigned char *sink,
                          size_t len, bool send_call)
{
    ssize_t n = send_call ? weft_send(sv[0], src, len, 0, T_SECS(30))
                          : weft_write(sv[0], src, len, -1, T_SECS(30));

    cr_assert_gt(n, 0, "%s of %zu: %zd", send_call ? "send" : "write", len,
                 n);
    cr_assert_leq((size_t)n, RW_MAX);
    cr_assert_eq(t_drain(sv[1], sink, ALIAS_PERIOD), (size_t)n);
    cr_assert(t_is_pattern(sink, (size_t)n));
}

static int send_huge_main(void *arg)
{
    unsigned char *src = t_alias_map(GIB4, true);
    unsigned char *sink = malloc(ALIAS_PERIOD);
    int sv[2];

    (void)arg;
    cr_assert_not_null(sink);
    t_socketpair(sv);
    /* Less than the sink holds: a socket buffer's worth. */
    cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &(int){ 1 << 16 },
                            sizeof(int)), 0);
    t_short_write(sv, src, sink, GIB4, true);
    t_short_write(sv, src, sink, GIB4 + 1, true);
    t_short_write(sv, src, sink, GIB4, false);
    t_short_write(sv, src, sink, GIB4 + 1, false);
    close(sv[0]);
    close(sv[1]);
    free(sink);
    t_alias_unmap(src, GIB4);
    return 0;
}

Test(io_misuse, send_and_write_of_4gib_are_short_counts_the_peer_receives,
     .timeout = 60)
{
    t_run(send_huge_main, NULL);
}

/*
 * Past 4 GiB, weft_read_exact and weft_write_all go round their loops once
 * per clamped call. Moving 4 GiB through a socket takes seconds of kernel
 * copying (far more under the sanitizers), so this lowers the clamp
 * instead (test builds have the seam) and runs the same loops over a MiB,
 * through send/recv on a socket and write/read on a pipe.
 */
#define SMALL_CAP 3000 /* not a page multiple: calls straddle pages */
#define STREAM_LEN (((size_t)1 << 20) + 123)

struct stream_job {
    int fd;
    const unsigned char *src;
};

static int write_all_task(void *arg)
{
    struct stream_job *j = arg;
    ssize_t n = weft_write_all(j->fd, j->src, STREAM_LEN, T_SECS(60));

    return n == (ssize_t)STREAM_LEN ? 0 : (int)(n < 0 ? n : -EIO);
}

/* One writer task, and this task reading, over fds[1] -> fds[0]. */
static void t_stream_through(int fds[2], const unsigned char *src,
                             unsigned char *dst)
{
    struct stream_job j = { .fd = fds[1], .src = src };
    weft_task_t *w;

    memset(dst, 0, STREAM_LEN);
    cr_assert_eq(weft_spawn(&w, write_all_task, &j), 0);
    EXPECT(weft_read_exact(fds[0], dst, STREAM_LEN, T_SECS(60)),
           (ssize_t)STREAM_LEN);
    EXPECT(weft_join(w), 0);
    cr_assert(t_is_pattern(dst, STREAM_LEN));
}

static int chunked_main(void *arg)
{
    unsigned char *src = malloc(STREAM_LEN), *dst = malloc(STREAM_LEN);
    int sv[2], p[2];

    (void)arg;
    cr_assert(src && dst);
    for (size_t i = 0; i < STREAM_LEN; i++)
        src[i] = t_pattern(i);
    t_socketpair(sv);
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    /* One call moves at most the clamp, though more is there or fits. */
    cr_assert_eq(send(sv[1], src, 10000, 0), 10000);
    EXPECT(weft_recv(sv[0], dst, STREAM_LEN, 0, T_SECS(5)), SMALL_CAP);
    EXPECT(weft_read(sv[0], dst + SMALL_CAP, STREAM_LEN - SMALL_CAP, -1,
                     T_SECS(5)), SMALL_CAP);
    cr_assert(t_is_pattern(dst, 2 * SMALL_CAP));
    cr_assert_eq(t_drain(sv[0], dst, STREAM_LEN), 10000 - 2 * SMALL_CAP);
    EXPECT(weft_send(sv[1], src, STREAM_LEN, 0, T_SECS(5)), SMALL_CAP);
    cr_assert_eq(t_drain(sv[0], dst, STREAM_LEN), SMALL_CAP);
    EXPECT(weft_write(p[1], src, STREAM_LEN, -1, T_SECS(5)), SMALL_CAP);
    cr_assert_eq(write(p[1], src, 5000), 5000);
    EXPECT(weft_read(p[0], dst, STREAM_LEN, -1, T_SECS(5)), SMALL_CAP);
    cr_assert(t_is_pattern(dst, SMALL_CAP));
    cr_assert_eq(read(p[0], dst, STREAM_LEN), 5000);
    t_stream_through(sv, src, dst);
    t_stream_through(p, src, dst);
    close(sv[0]);
    close(sv[1]);
    close(p[0]);
    close(p[1]);
    free(src);
    free(dst);
    return 0;
}

Test(io_misuse, write_all_and_read_exact_loop_over_the_length_clamp,
     .timeout = 60)
{
    atomic_store(&weft__io_rw_cap, SMALL_CAP);
    t_run(chunked_main, NULL);
}

/* ---- bad fd numbers ------------------------------------------------------ */

/*
 * fd numbers no call may accept: negative, the largest, one just closed
 * (inside the backends' fd tables) and a large one never opened (past
 * them, inside the close marks' table).
 */
#define BAD_FDS 4

static void t_bad_fds(int fds[BAD_FDS])
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    cr_assert_geq(fd, 0);
    close(fd);
    fds[0] = -1;
    fds[1] = INT_MAX;
    fds[2] = fd;
    fds[3] = (1 << 21) + 3;
    cr_assert_lt(fcntl(fds[3], F_GETFD), 0);
}

/* The deadlines each bad-fd case runs with: none, and one far away. */
static int64_t t_deadline(int i)
{
    return i ? T_SECS(60) : WEFT_NO_DEADLINE;
}

/* A message of n iovecs over buf. */
static struct msghdr t_msg(struct iovec *iov, size_t n, char *buf)
{
    for (size_t i = 0; i < n; i++)
        iov[i] = (struct iovec){ buf, 1 };
    return (struct msghdr){ .msg_iov = iov, .msg_iovlen = n };
}

/* The process's address space, in bytes (VmSize). */
static size_t t_vm_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kb = 0;

    cr_assert_not_null(f);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmSize: %zu kB", &kb) == 1)
            break;
    fclose(f);
    cr_assert_gt(kb, 0);
    return kb << 10;
}

/* Every call that takes an fd, with fd. */
static void t_every_fd_call(int fd, int64_t dl)
{
    struct sockaddr_in sa = t_loopback(1);
    weft_listener_t *l;
    struct msghdr msg;
    struct iovec iov;
    char c = 0;

    msg = t_msg(&iov, 1, &c);
    EXPECT(weft_recv(fd, &c, 1, 0, dl), -EBADF);
    EXPECT(weft_send(fd, &c, 1, 0, dl), -EBADF);
    EXPECT(weft_recvmsg(fd, &msg, 0, dl), -EBADF);
    EXPECT(weft_sendmsg(fd, &msg, 0, dl), -EBADF);
    EXPECT(weft_read(fd, &c, 1, -1, dl), -EBADF);
    EXPECT(weft_write(fd, &c, 1, -1, dl), -EBADF);
    EXPECT(weft_readv(fd, &iov, 1, -1, dl), -EBADF);
    EXPECT(weft_writev(fd, &iov, 1, -1, dl), -EBADF);
    EXPECT(weft_accept(fd, NULL, NULL, 0, dl), -EBADF);
    EXPECT(weft_connect(fd, (struct sockaddr *)&sa, sizeof(sa), dl), -EBADF);
    EXPECT(weft_fsync(fd, 0, dl), -EBADF);
    EXPECT(weft_wait_fd(fd, POLLIN, dl), -EBADF);
    EXPECT(weft_read_exact(fd, &c, 1, dl), -EBADF);
    EXPECT(weft_write_all(fd, &c, 1, dl), -EBADF);
    EXPECT(weft_shutdown(fd, SHUT_RDWR), -EBADF);
    EXPECT(weft_listener_new(&l, fd, 0), -EBADF);
    EXPECT(weft_close(fd), -EBADF);
}

static int every_call_main(void *arg)
{
    int fds[BAD_FDS];

    (void)arg;
    t_bad_fds(fds);
    for (int i = 0; i < BAD_FDS * 2; i++)
        t_every_fd_call(fds[i / 2], t_deadline(i % 2));
    return 0;
}

/* -1 once made the epoll backend's fd-table growth loop spin for ever. */
Test(io_misuse, every_fd_taking_call_with_a_bad_fd_is_ebadf, .timeout = 30)
{
    t_run(every_call_main, NULL);
}

static int close_main(void *arg)
{
    int fds[BAD_FDS];

    (void)arg;
    t_bad_fds(fds);
    for (int i = 0; i < BAD_FDS; i++)
        EXPECT(weft_close(fds[i]), -EBADF);
    /* Past the close marks' table (its index was once computed first). */
    EXPECT(weft_close(1 << 30), -EBADF);
    return 0;
}

Test(io_misuse, close_bad_fd_is_ebadf, .timeout = 30)
{
    t_run(close_main, NULL);
}

static int no_growth_main(void *arg)
{
    int fds[BAD_FDS], huge[] = { INT_MAX, INT_MAX - 4096, 1 << 30,
                                  (1 << 21) + 3 };
    size_t before, after;

    (void)arg;
    /* First with a small fd number, so that whatever the calls set up
     * once (the blocking pool's one thread, which runs the epoll driver's
     * file operations) is there before measuring. */
    t_bad_fds(fds);
    t_every_fd_call(fds[2], t_deadline(0));
    t_every_fd_call(fds[2], t_deadline(1));
    before = t_vm_size();
    for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]) * 2; i++)
        t_every_fd_call(huge[i / 2], t_deadline(i % 2));
    after = t_vm_size();
    cr_assert_lt(after - before, (size_t)4 << 20,
                 "address space grew by %zu MiB", (after - before) >> 20);
    return 0;
}

Test(io_misuse, huge_fd_numbers_grow_no_table, .timeout = 60)
{
    weft_config_t cfg;

    /* One pool thread: a second one's stack would count as growth. */
    weft_config_init(&cfg);
    cfg.workers = 1;
    cfg.blocking_threads = 1;
    t_run_with(&cfg, no_growth_main, NULL);
}

/* The table growth itself, for the indexes no open fd reaches: it once
 * doubled a 32-bit length, which wraps to 0 past 2^31 and never ends. */
Test(io_misuse, fd_table_growth_refuses_lengths_past_uint32, .timeout = 30)
{
    uint32_t *arr = NULL, len = 0;

    cr_assert_eq(weft__grow_table((void **)&arr, &len, sizeof(*arr), 64, 100),
                 0);
    cr_assert_eq(len, 128);
    arr[100] = 7;
    cr_assert_eq(weft__grow_table((void **)&arr, &len, sizeof(*arr), 64,
                                  UINT32_MAX), -ENOMEM);
    cr_assert_eq(weft__grow_table((void **)&arr, &len, sizeof(*arr), 64,
                                  1u << 31), -ENOMEM);
    cr_assert_eq(len, 128);
    cr_assert_eq(arr[100], 7);
    weft__free(arr, len * sizeof(*arr));
}

/* ---- close(2) under waiters ---------------------------------------------- */

static bool t_is_epoll(void)
{
    const struct weft__io_ops *ops;

    cr_assert_not_null(weft__io_current(&ops));
    return strcmp(ops->name, "epoll") == 0;
}

struct pc_waiter {
    int fd;
    bool pri;          /* weft_wait_fd(POLLPRI), else weft_recv */
    atomic_int worker; /* where it issued its call; -2 until then */
};

static int pc_wait(void *arg)
{
    struct pc_waiter *w = arg;
    char c;

    /* Nothing suspends between here and the call's submission. */
    atomic_store(&w->worker, weft_worker_id());
    if (w->pri)
        return weft_wait_fd(w->fd, POLLPRI, WEFT_NO_DEADLINE);
    return (int)weft_recv(w->fd, &c, 1, 0, WEFT_NO_DEADLINE);
}

static int t_noop(void *arg)
{
    (void)arg;
    return 0;
}

/*
 * Does waiter i share its worker with a recv waiter? On epoll the byte sent
 * after the close then fires that worker's registration, which ends i.
 */
static bool t_beside_recv(const struct pc_waiter *w, int n, int i)
{
    for (int j = 0; j < n; j++)
        if (!w[j].pri && atomic_load(&w[j].worker) ==
                             atomic_load(&w[i].worker))
            return true;
    return false;
}

/*
 * Four tasks wait on one socket, two in recv and two for POLLPRI (which
 * never comes); the program closes the socket with close(2) while a dup
 * keeps the file open, and the peer sends a byte. On epoll a worker's
 * registration still fires: its recvs find the fd gone, and its POLLPRI
 * waiters' registration cannot be re-armed under a number that no longer
 * names the file. That once aborted the process; now they end with
 * -EBADF. A POLLPRI waiter alone on its worker (no recv beside it) is never
 * woken, as any wait on an fd closed with close(2) may not be, and on
 * io_uring the kernel holds the file for the operations it took, so a recv
 * may get the byte: the test cancels those. spread puts the first recv and
 * POLLPRI waiter on the worker the main task is not on.
 */
static int plain_close_main(void *arg)
{
    bool spread = arg != NULL, epoll = t_is_epoll();
    struct pc_waiter w[4];
    weft_task_t *t[4], *filler = NULL;
    int sv[2], keep, got = 0;
    char c;

    t_socketpair(sv);
    keep = dup(sv[0]);
    cr_assert_geq(keep, 0);
    for (int i = 0; i < 4; i++) {
        w[i] = (struct pc_waiter){ .fd = sv[0], .pri = i % 2 };
        atomic_init(&w[i].worker, -2);
        cr_assert_eq(weft_spawn(&t[i], pc_wait, &w[i]), 0);
    }
    if (spread) {
        /* A spawn goes to the spawner's LIFO slot, which others cannot
         * steal; the filler pushes the last waiter out of it. While this
         * task spins, its worker runs nothing else. */
        int self = weft_worker_id();

        cr_assert_eq(weft_spawn(&filler, t_noop, NULL), 0);
        while (atomic_load(&w[0].worker) == -2 ||
               atomic_load(&w[1].worker) == -2)
            ;
        cr_assert_neq(atomic_load(&w[0].worker), self);
        cr_assert_eq(atomic_load(&w[1].worker), atomic_load(&w[0].worker));
    }
    for (int i = 0; i < 4; i++)
        t_until_parked_in(t[i], WHY_IO);
    cr_assert_eq(close(sv[0]), 0);
    cr_assert_eq(send(sv[1], "x", 1, 0), 1);
    /* First those that must end by themselves, then the rest, cancelled. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 4; i++) {
            bool ends = epoll && t_beside_recv(w, 4, i);
            int ret;

            if (ends != (pass == 0))
                continue;
            if (!ends)
                cr_assert_eq(weft_cancel(t[i]), 0);
            ret = weft_join(t[i]);
            if (ends)
                cr_assert_eq(ret, -EBADF, "waiter %d: %d", i, ret);
            else
                cr_assert(ret == -EBADF || ret == -ECANCELED ||
                              (ret == 1 && !w[i].pri && !epoll && !got++),
                          "waiter %d: %d", i, ret);
        }
    }
    if (!spread && epoll)
        cr_assert(t_beside_recv(w, 4, 1) && t_beside_recv(w, 4, 3));
    if (filler)
        cr_assert_eq(weft_join(filler), 0);
    close(keep);

    /* The process runs on: a wait on a new socket (likely under the same
     * number) is woken by its data. */
    t_socketpair(sv);
    w[0] = (struct pc_waiter){ .fd = sv[0] };
    cr_assert_eq(weft_spawn(&t[0], pc_wait, &w[0]), 0);
    t_until_parked_in(t[0], WHY_IO);
    cr_assert_eq(send(sv[1], "y", 1, 0), 1);
    cr_assert_eq(weft_join(t[0]), 1);
    cr_assert_eq(weft_recv(sv[0], &c, 1, MSG_DONTWAIT, T_SECS(5)), -EAGAIN);
    EXPECT(weft_close(sv[0]), 0);
    EXPECT(weft_close(sv[1]), 0);
    return 0;
}

Test(io_misuse, plain_close_under_waiters_on_one_worker_ends_them,
     .timeout = 30)
{
    t_run_one_worker(plain_close_main, NULL);
}

Test(io_misuse, plain_close_under_waiters_on_two_workers_ends_them,
     .timeout = 30)
{
    weft_config_t cfg;

    weft_config_init(&cfg);
    cfg.workers = 2; /* the first two waiters share the other worker */
    t_run_with(&cfg, plain_close_main, (void *)1);
}

/* ---- each call, bad arguments -------------------------------------------- */

/* Runs the statement after it once per bad fd and deadline. */
#define FOR_BAD_FDS(fd, dl)                                                 \
    for (int fds_[BAD_FDS], i_ = (t_bad_fds(fds_), 0); i_ < BAD_FDS * 2;    \
         i_++)                                                              \
        for (int fd = fds_[i_ / 2], once_ = 1; once_; once_ = 0)            \
            for (int64_t dl = t_deadline(i_ % 2); once_; once_ = 0)

static int accept_main(void *arg)
{
    struct sockaddr_in sa;
    int lfd = t_listen_tcp(4), s;

    (void)arg;
    FOR_BAD_FDS(fd, dl)
        EXPECT(weft_accept(fd, NULL, NULL, 0, dl), -EBADF);
    EXPECT(weft_accept(lfd, NULL, NULL, 0x4000000, T_SECS(5)), -EINVAL);
    EXPECT(weft_accept(lfd, (struct sockaddr *)&sa, NULL, 0, T_SECS(5)),
           -EINVAL);
    /* A socket that does not listen: the kernel's answer, on both. */
    s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s, 0);
    EXPECT(weft_accept(s, NULL, NULL, 0, T_SECS(5)), -EINVAL);
    close(s);
    close(lfd);
    return 0;
}

Test(io_misuse, accept_bad_fd_is_ebadf_bad_flags_or_addr_alone_are_einval,
     .timeout = 30)
{
    t_run(accept_main, NULL);
}

static int listener_new_main(void *arg)
{
    weft_listener_t *l = NULL;
    int fds[BAD_FDS], lfd = t_listen_tcp(4);

    (void)arg;
    t_bad_fds(fds);
    for (int i = 0; i < BAD_FDS; i++)
        EXPECT(weft_listener_new(&l, fds[i], 0), -EBADF);
    cr_assert_null(l);
    EXPECT(weft_listener_new(NULL, lfd, 0), -EINVAL);
    EXPECT(weft_listener_new(&l, lfd, 0x4000000), -EINVAL);
    EXPECT(weft_listener_new(&l, lfd, SOCK_CLOEXEC), 0);
    EXPECT(weft_listener_fd(l), lfd);
    EXPECT(weft_listener_close(l), 0);
    return 0;
}

Test(io_misuse, listener_new_bad_fd_is_ebadf_null_out_or_bad_flags_einval,
     .timeout = 30)
{
    t_run(listener_new_main, NULL);
}

static int listener_null_main(void *arg)
{
    struct sockaddr_in sa;
    weft_listener_t *l;

    (void)arg;
    EXPECT(weft_listener_fd(NULL), -EINVAL);
    EXPECT(weft_listener_accept(NULL, NULL, NULL, T_SECS(5)), -EINVAL);
    EXPECT(weft_listener_close(NULL), -EINVAL);
    EXPECT(weft_listener_new(&l, t_listen_tcp(4), 0), 0);
    EXPECT(weft_listener_accept(l, (struct sockaddr *)&sa, NULL, T_SECS(5)),
           -EINVAL);
    EXPECT(weft_listener_close(l), 0);
    return 0;
}

Test(io_misuse, listener_calls_on_null_or_addr_alone_are_einval,
     .timeout = 30)
{
    t_run(listener_null_main, NULL);
}

static int connect_main(void *arg)
{
    int lfd = t_listen_tcp(4), s;
    struct sockaddr_in sa = t_loopback(t_port(lfd));

    (void)arg;
    FOR_BAD_FDS(fd, dl)
        EXPECT(weft_connect(fd, (struct sockaddr *)&sa, sizeof(sa), dl),
               -EBADF);
    s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s, 0);
    EXPECT(weft_connect(s, NULL, sizeof(sa), T_SECS(5)), -EINVAL);
    EXPECT(weft_connect(s, (struct sockaddr *)&sa, 0, T_SECS(5)), -EINVAL);
    EXPECT(weft_connect(s, (struct sockaddr *)&sa, 1u << 20, T_SECS(5)),
           -EINVAL);
    EXPECT(weft_connect(s, (struct sockaddr *)&sa, sizeof(sa), T_SECS(5)), 0);
    close(s);
    close(lfd);
    return 0;
}

Test(io_misuse, connect_bad_fd_is_ebadf_null_or_bad_address_length_einval,
     .timeout = 30)
{
    t_run(connect_main, NULL);
}

static int recv_main(void *arg)
{
    char c[4];
    int sv[2];

    (void)arg;
    FOR_BAD_FDS(fd, dl)
        EXPECT(weft_recv(fd, c, sizeof(c), 0, dl), -EBADF);
    t_socketpair(sv);
    cr_assert_eq(send(sv[1], "abcd", 4, 0), 4);
    EXPECT(weft_recv(sv[0], NULL, sizeof(c), 0, T_SECS(5)), -EFAULT);
    EXPECT(weft_recv(sv[0], c, sizeof(c), 0, T_SECS(5)), 4);
    EXPECT(weft_recv(sv[0], c, sizeof(c), MSG_DONTWAIT, T_SECS(5)), -EAGAIN);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

Test(io_misuse, recv_bad_fd_is_ebadf_null_buffer_efault, .timeout = 30)
{
    t_run(recv_main, NULL);
}

static int send_main(void *arg)
{
    char c[4] = "abcd";
    int sv[2];

    (void)arg;
    FOR_BAD_FDS(fd, dl)
        EXPECT(weft_send(fd, c, sizeof(c), 0, dl), -EBADF);
    t_socketpair(sv);
    EXPECT(weft_send(sv[0], NULL, sizeof(c), 0, T_SECS(5)), -EFAULT);
    close(sv[1]);
    EXPECT(weft_send(sv[0], c, sizeof(c), 0, T_SECS(5)), -EPIPE);
    close(sv[0]);
    return 0;
}

Test(io_misuse, send_bad_fd_is_ebadf_null_buffer_efault_closed_peer_epipe,
     .timeout = 30)
{
    t_run(send_main, NULL);
}

static int recvmsg_main(void *arg)
{
    static struct iovec iov[IOV_MAX + 1];
    struct msghdr msg;
    char c;
    int sv[2];

    (void)arg;
    msg = t_msg(iov, 1, &c);
    FOR_BAD_FDS(fd, dl)
        EXPECT(weft_recvmsg(fd, &msg, 0, dl), -EBADF);
    t_socketpair(sv);
    cr_assert_eq(send(sv[1], "a", 1, 0), 1);
    EXPECT(weft_recvmsg(sv[0], NULL, 0, T_SECS(5)), -EINVAL);
    /* MSG_CMSG_COMPAT, the 32-bit compat layer's flag: recvmsg(2) refuses
     * it, and so does the call on io_uring, leaving the byte queued. */
    EXPECT(weft_recvmsg(sv[0], &msg, (int)0x80000000, T_SECS(5)), -EINVAL);
    msg = t_msg(iov, IOV_MAX + 1, &c);
    EXPECT(weft_recvmsg(sv[0], &msg, 0, T_SECS(5)), -EMSGSIZE);
    msg = t_msg(iov, 1, &c);
    EXPECT(weft_recvmsg(sv[0], &msg, 0, T_SECS(5)), 1);
    cr_assert_eq(c, 'a');
    close(sv[0]);
    close(sv[1]);
    return 0;
}

Test(io_misuse, recvmsg_bad_fd_is_ebadf_null_msg_or_compat_flag_einval,
     .timeout = 30)
{
    t_run(recvmsg_main, NULL);
}

static int sendmsg_main(void *arg)
{
    static struct iovec iov[IOV_MAX + 1];
    struct msghdr msg;
    char c = 'a';
    int sv[2];

    (void)arg;
    msg = t_msg(iov, 1, &c);
    FOR_BAD_FDS(fd, dl)
        EXPECT(weft_sendmsg(fd, &msg, 0, dl), -EBADF);
    t_socketpair(sv);
    EXPECT(weft_sendmsg(sv[0], NULL, 0, T_SECS(5)), -EINVAL);
    EXPECT(weft_sendmsg(sv[0], &msg, (int)0x80000000, T_SECS(5)), -EINVAL);
    msg = t_msg(iov, IOV_MAX + 1, &c);
    EXPECT(weft_sendmsg(sv[0], &msg, 0, T_SECS(5)), -EMSGSIZE);
    /* Nothing of the refused calls arrived. */
    cr_assert_eq(recv(sv[1], &c, 1, MSG_DONTWAIT), -1);
    cr_assert_eq(errno, EAGAIN);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

Test(io_misuse, sendmsg_bad_fd_is_ebadf_null_msg_or_compat_flag_einval,
     .timeout = 30)
{
    t_run(sendmsg_main, NULL);
}

static int read_write_main(void *arg)
{
    char c[4] = "abcd";
    int sv[2], mfd;

    (void)arg;
    FOR_BAD_FDS(fd, dl) {
        EXPECT(weft_read(fd, c, sizeof(c), -1, dl), -EBADF);
        EXPECT(weft_write(fd, c, sizeof(c), -1, dl), -EBADF);
    }
    t_socketpair(sv);
    EXPECT(weft_read(sv[0], c, sizeof(c), -2, T_SECS(5)), -EINVAL);
    EXPECT(weft_write(sv[0], c, sizeof(c), INT64_MIN, T_SECS(5)), -EINVAL);
    EXPECT(weft_write(sv[0], NULL, sizeof(c), -1, T_SECS(5)), -EFAULT);
    close(sv[0]);
    close(sv[1]);
    /* Offsets a file cannot have: the kernel's answers, on both. */
    mfd = memfd_create("weft-test", MFD_CLOEXEC);
    cr_assert_geq(mfd, 0);
    EXPECT(weft_write(mfd, c, sizeof(c), INT64_MAX, T_SECS(5)), -EINVAL);
    EXPECT(weft_read(mfd, c, sizeof(c), INT64_MAX - 1, T_SECS(5)), -EINVAL);
    close(mfd);
    return 0;
}

Test(io_misuse, read_and_write_bad_fd_is_ebadf_offset_below_minus_1_einval,
     .timeout = 30)
{
    t_run(read_write_main, NULL);
}

static int readv_writev_main(void *arg)
{
    char c[4] = "abcd";
    struct iovec iov = { c, sizeof(c) };
    int sv[2];

    (void)arg;
    FOR_BAD_FDS(fd, dl) {
        EXPECT(weft_readv(fd, &iov, 1, -1, dl), -EBADF);
        EXPECT(weft_writev(fd, &iov, 1, -1, dl), -EBADF);
    }
    t_socketpair(sv);
    EXPECT(weft_readv(sv[0], &iov, -1, -1, T_SECS(5)), -EINVAL);
    EXPECT(weft_writev(sv[0], &iov, INT_MIN, -1, T_SECS(5)), -EINVAL);
    EXPECT(weft_readv(sv[0], &iov, IOV_MAX + 1, -1, T_SECS(5)), -EINVAL);
    EXPECT(weft_writev(sv[0], &iov, INT_MAX, -1, T_SECS(5)), -EINVAL);
    EXPECT(weft_readv(sv[0], NULL, 1, -1, T_SECS(5)), -EFAULT);
    EXPECT(weft_writev(sv[0], NULL, 1, -1, T_SECS(5)), -EFAULT);
    EXPECT(weft_readv(sv[0], &iov, 1, -2, T_SECS(5)), -EINVAL);
    EXPECT(weft_writev(sv[0], NULL, 0, -1, T_SECS(5)), 0);
    EXPECT(weft_writev(sv[0], &iov, 1, -1, T_SECS(5)), 4);
    EXPECT(weft_readv(sv[1], &iov, 1, -1, T_SECS(5)), 4);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

Test(io_misuse, readv_writev_bad_fd_ebadf_iovcnt_outside_0_to_iov_max_einval,
     .timeout = 30)
{
    t_run(readv_writev_main, NULL);
}

static int openat_main(void *arg)
{
    int fd;

    (void)arg;
    /* A bad dirfd matters to a relative path only: the kernel decides. */
    FOR_BAD_FDS(dirfd, dl)
        EXPECT(weft_openat(dirfd, "x", O_RDONLY, 0, dl), -EBADF);
    fd = weft_openat(-1, "/dev/null", O_RDONLY | O_CLOEXEC, 0, T_SECS(5));
    cr_assert_geq(fd, 0, "absolute path with dirfd -1: %d", fd);
    EXPECT(weft_close(fd), 0);
    EXPECT(weft_openat(AT_FDCWD, NULL, O_RDONLY, 0, T_SECS(5)), -EINVAL);
    EXPECT(weft_openat(AT_FDCWD, "", O_RDONLY, 0, T_SECS(5)), -ENOENT);
    return 0;
}

Test(io_misuse, openat_bad_dirfd_with_relative_path_ebadf_null_path_einval,
     .timeout = 30)
{
    t_run(openat_main, NULL);
}

static int fsync_main(void *arg)
{
    int sv[2], fd;

    (void)arg;
    FOR_BAD_FDS(fd, dl)
        EXPECT(weft_fsync(fd, 0, dl), -EBADF);
    fd = weft_openat(AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC, 0,
                     T_SECS(5));
    cr_assert_geq(fd, 0);
    EXPECT(weft_fsync(fd, 2, T_SECS(5)), -EINVAL);
    EXPECT(weft_fsync(fd, ~0u, T_SECS(5)), -EINVAL);
    EXPECT(weft_close(fd), 0);
    t_socketpair(sv);
    EXPECT(weft_fsync(sv[0], 0, T_SECS(5)), -EINVAL); /* the kernel's */
    close(sv[0]);
    close(sv[1]);
    return 0;
}

Test(io_misuse, fsync_bad_fd_is_ebadf_bad_flags_einval, .timeout = 30)
{
    t_run(fsync_main, NULL);
}

static int statx_main(void *arg)
{
    struct statx stx;

    (void)arg;
    FOR_BAD_FDS(dirfd, dl)
        EXPECT(weft_statx(dirfd, "x", 0, STATX_SIZE, &stx, dl), -EBADF);
    EXPECT(weft_statx(-1, "/dev/null", 0, STATX_SIZE, &stx, T_SECS(5)), 0);
    EXPECT(weft_statx(AT_FDCWD, NULL, 0, STATX_SIZE, &stx, T_SECS(5)),
           -EINVAL);
    EXPECT(weft_statx(AT_FDCWD, "/dev/null", 0, STATX_SIZE, NULL, T_SECS(5)),
           -EINVAL);
    EXPECT(weft_statx(AT_FDCWD, "/dev/null", 0x7fffffff, STATX_SIZE, &stx,
                      T_SECS(5)), -EINVAL);
    EXPECT(weft_statx(AT_FDCWD, "/dev/null", 0, 0x80000000u, &stx,
                      T_SECS(5)), -EINVAL);
    return 0;
}

Test(io_misuse, statx_bad_dirfd_ebadf_null_path_or_out_or_bad_flags_einval,
     .timeout = 30)
{
    t_run(statx_main, NULL);
}

static int shutdown_main(void *arg)
{
    int fds[BAD_FDS], sv[2];

    (void)arg;
    t_bad_fds(fds);
    for (int i = 0; i < BAD_FDS; i++)
        EXPECT(weft_shutdown(fds[i], SHUT_RDWR), -EBADF);
    t_socketpair(sv);
    EXPECT(weft_shutdown(sv[0], -1), -EINVAL);
    EXPECT(weft_shutdown(sv[0], 3), -EINVAL);
    EXPECT(weft_shutdown(sv[0], SHUT_WR), 0);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

Test(io_misuse, shutdown_bad_fd_is_ebadf_bad_how_einval, .timeout = 30)
{
    t_run(shutdown_main, NULL);
}

static int wait_fd_main(void *arg)
{
    int sv[2];

    (void)arg;
    /* On epoll, -1 once made the fd table's growth loop spin for ever. */
    FOR_BAD_FDS(fd, dl)
        EXPECT(weft_wait_fd(fd, POLLIN, dl), -EBADF);
    t_socketpair(sv);
    EXPECT(weft_wait_fd(sv[0], 0, T_SECS(5)), -EINVAL);
    EXPECT(weft_wait_fd(sv[0], POLLERR | POLLHUP, T_SECS(5)), -EINVAL);
    EXPECT(weft_wait_fd(sv[0], POLLOUT | POLLNVAL, T_SECS(5)), -EINVAL);
    /* epoll's flags (EPOLLET, EPOLLEXCLUSIVE) are not events. */
    EXPECT(weft_wait_fd(sv[0], POLLOUT | (1u << 31), T_SECS(5)), -EINVAL);
    EXPECT(weft_wait_fd(sv[0], POLLOUT | (1u << 28), T_SECS(5)), -EINVAL);
    EXPECT(weft_wait_fd(sv[0], POLLOUT | POLLERR, T_SECS(5)), POLLOUT);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

Test(io_misuse, wait_fd_bad_fd_is_ebadf_no_or_unknown_events_einval,
     .timeout = 30)
{
    t_run(wait_fd_main, NULL);
}

static int listen_main(void *arg)
{
    int lfd = t_listen_tcp(4);

    (void)arg;
    EXPECT(weft_listen("127.0.0.1", 0, -1, 0), -EINVAL);
    EXPECT(weft_listen("127.0.0.1", 0, 4, 2), -EINVAL);
    EXPECT(weft_listen("127.0.0.1", 0, 4, -1), -EINVAL);
    EXPECT(weft_listen("127.0.0.1", t_port(lfd), 4, 0), -EADDRINUSE);
    close(lfd);
    return 0;
}

Test(io_misuse, listen_negative_backlog_or_bad_flags_einval, .timeout = 30)
{
    t_run(listen_main, NULL);
}

static int connect_tcp_main(void *arg)
{
    /* Bound, never listening: a connect to it is refused. */
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = t_loopback(0);

    (void)arg;
    cr_assert_geq(s, 0);
    cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    EXPECT(weft_connect_tcp(NULL, t_port(s), T_SECS(5)), -EINVAL);
    EXPECT(weft_connect_tcp("127.0.0.1", t_port(s), T_SECS(5)),
           -ECONNREFUSED);
    close(s);
    return 0;
}

Test(io_misuse, connect_tcp_null_host_einval, .timeout = 30)
{
    t_run(connect_tcp_main, NULL);
}

static int stream_args_main(void *arg)
{
    char c[4] = "abcd";
    int sv[2];

    (void)arg;
    FOR_BAD_FDS(fd, dl) {
        EXPECT(weft_read_exact(fd, c, sizeof(c), dl), -EBADF);
        EXPECT(weft_write_all(fd, c, sizeof(c), dl), -EBADF);
    }
    t_socketpair(sv);
    EXPECT(weft_write_all(sv[0], NULL, 1, T_SECS(5)), -EFAULT);
    EXPECT(weft_read_exact(sv[0], NULL, 1, T_SECS(5)), -EFAULT);
    EXPECT(weft_write_all(sv[0], NULL, 0, T_SECS(5)), 0);
    EXPECT(weft_read_exact(sv[0], NULL, 0, T_SECS(5)), 0);
    /* The result could not say the length. */
    EXPECT(weft_write_all(sv[0], c, (size_t)SSIZE_MAX + 1, T_SECS(5)),
           -EINVAL);
    EXPECT(weft_read_exact(sv[0], c, SIZE_MAX, T_SECS(5)), -EINVAL);
    /* Nothing was sent by the refused calls. */
    EXPECT(weft_write_all(sv[0], c, sizeof(c), T_SECS(5)), 4);
    EXPECT(weft_read_exact(sv[1], c, sizeof(c), T_SECS(5)), 4);
    cr_assert_eq(recv(sv[1], c, 1, MSG_DONTWAIT), -1);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

Test(io_misuse, read_exact_write_all_bad_fd_ebadf_null_efault_huge_einval,
     .timeout = 30)
{
    t_run(stream_args_main, NULL);
}

static int resolve_main(void *arg)
{
    struct addrinfo *res = (struct addrinfo *)&res, hints;

    (void)arg;
    EXPECT(weft_resolve("127.0.0.1", "80", NULL, NULL), -EINVAL);
    EXPECT(weft_resolve(NULL, NULL, NULL, &res), -EINVAL);
    cr_assert_null(res);
    /* Numeric hosts only: no name service is asked. */
    hints = (struct addrinfo){ .ai_flags = AI_CANONNAME };
    EXPECT(weft_resolve(NULL, "80", &hints, &res), -EINVAL);
    hints = (struct addrinfo){ .ai_family = 12345 };
    EXPECT(weft_resolve("127.0.0.1", "80", &hints, &res), -EAFNOSUPPORT);
    hints = (struct addrinfo){ .ai_socktype = 12345 };
    EXPECT(weft_resolve("127.0.0.1", "80", &hints, &res), -ESOCKTNOSUPPORT);
    hints = (struct addrinfo){ .ai_flags = AI_NUMERICHOST };
    EXPECT(weft_resolve("not a number", "80", &hints, &res), -ENOENT);
    cr_assert_null(res);
    weft_resolve_free(NULL);
    return 0;
}

Test(io_misuse, resolve_null_out_or_nothing_to_resolve_or_bad_hints_fail,
     .timeout = 30)
{
    t_run(resolve_main, NULL);
}

/* From the test's own thread: no runtime, no task. */
Test(io_misuse, suspending_calls_outside_a_task_are_eperm, .timeout = 30)
{
    struct msghdr msg = { 0 };
    struct addrinfo *res;
    struct statx stx;
    char c = 'a';
    int sv[2];

    t_socketpair(sv);
    EXPECT(weft_recv(sv[0], &c, 1, 0, WEFT_NO_DEADLINE), -EPERM);
    EXPECT(weft_send(sv[0], &c, 1, 0, WEFT_NO_DEADLINE), -EPERM);
    EXPECT(weft_recvmsg(sv[0], &msg, 0, WEFT_NO_DEADLINE), -EPERM);
    EXPECT(weft_sendmsg(sv[0], &msg, 0, WEFT_NO_DEADLINE), -EPERM);
    EXPECT(weft_read(sv[0], &c, 1, -1, WEFT_NO_DEADLINE), -EPERM);
    EXPECT(weft_write(sv[0], &c, 1, -1, WEFT_NO_DEADLINE), -EPERM);
    EXPECT(weft_accept(sv[0], NULL, NULL, 0, WEFT_NO_DEADLINE), -EPERM);
    EXPECT(weft_wait_fd(sv[0], POLLIN, WEFT_NO_DEADLINE), -EPERM);
    EXPECT(weft_shutdown(sv[0], SHUT_RDWR), -EPERM);
    EXPECT(weft_fsync(sv[0], 0, WEFT_NO_DEADLINE), -EPERM);
    EXPECT(weft_openat(AT_FDCWD, "/dev/null", O_RDONLY, 0, WEFT_NO_DEADLINE),
           -EPERM);
    EXPECT(weft_statx(AT_FDCWD, "/", 0, STATX_SIZE, &stx, WEFT_NO_DEADLINE),
           -EPERM);
    EXPECT(weft_read_exact(sv[0], &c, 1, WEFT_NO_DEADLINE), -EPERM);
    EXPECT(weft_write_all(sv[0], &c, 1, WEFT_NO_DEADLINE), -EPERM);
    EXPECT(weft_listen("127.0.0.1", 0, 4, 0), -EPERM);
    EXPECT(weft_connect_tcp("127.0.0.1", 1, WEFT_NO_DEADLINE), -EPERM);
    EXPECT(weft_resolve("127.0.0.1", "80", NULL, &res), -EPERM);
    EXPECT(weft_close(sv[0]), -EPERM);
    /* Argument errors come first, task or not. */
    EXPECT(weft_recv(-1, &c, 1, 0, WEFT_NO_DEADLINE), -EBADF);
    EXPECT(weft_read_exact(sv[0], NULL, 1, WEFT_NO_DEADLINE), -EFAULT);
    /* Still open: the refused close left it alone. */
    cr_assert_geq(fcntl(sv[0], F_GETFD), 0);
    close(sv[0]);
    close(sv[1]);
}

/* ---- an fd number reused after close(2) under a waiter ------------------- */

static int recv_one(void *arg)
{
    char c;

    return (int)weft_recv((int)(intptr_t)arg, &c, 1, 0, T_SECS(20));
}

/*
 * A task waits on a socket that the program then closes with close(2)
 * while a dup keeps the file open; the fd number goes to a new socket. A
 * wait on the new socket gets its data: on epoll, the old registration
 * still covered the events it wanted, and a wait that trusted it waited on
 * the old file until its deadline.
 */
static int reused_number_main(void *arg)
{
    int a[2], b[2], keep, num, peer;
    weft_task_t *old, *fresh;

    (void)arg;
    t_socketpair(a);
    keep = dup(a[0]);
    cr_assert_geq(keep, 0);
    cr_assert_eq(weft_spawn(&old, recv_one, (void *)(intptr_t)a[0]), 0);
    t_until_parked_in(old, WHY_IO);
    /* On io_uring the recv reaches the kernel, which resolves the number,
     * at the worker's next enter: one worker, idle while this sleeps,
     * makes that now. */
    cr_assert_eq(weft_sleep_ms(1), 0);
    num = a[0];
    cr_assert_eq(close(a[0]), 0);
    t_socketpair(b); /* the lowest free numbers: num among them */
    cr_assert(b[0] == num || b[1] == num, "%d not reused (%d, %d)", num,
              b[0], b[1]);
    peer = b[0] == num ? b[1] : b[0];
    cr_assert_eq(weft_spawn(&fresh, recv_one, (void *)(intptr_t)num), 0);
    t_until_parked_in(fresh, WHY_IO);
    cr_assert_eq(send(peer, "y", 1, 0), 1);
    cr_assert_eq(weft_join(fresh), 1);
    cr_assert_eq(weft_cancel(old), 0);
    cr_assert_eq(weft_join(old), -ECANCELED);
    cr_assert_eq(close(keep), 0);
    cr_assert_eq(close(a[1]), 0);
    cr_assert_eq(weft_close(b[0]), 0);
    cr_assert_eq(weft_close(b[1]), 0);
    return 0;
}

Test(io_misuse, fd_number_reused_after_close_under_a_waiter_serves_the_new_file,
     .timeout = 60)
{
    t_run_one_worker(reused_number_main, NULL);
}

/* ---- weft_drive_fd ----------------------------------------------------------- */

struct t_step {
    int fd, events, calls;
};

/* Asks once to wait for events on fd, then says it is done. */
static int t_step_once(void *arg, int *fd)
{
    struct t_step *s = arg;

    *fd = s->fd;
    return s->calls++ ? 0 : s->events;
}

static int drive_misuse_main(void *arg)
{
    struct t_step s = { .fd = -1, .events = POLLIN };
    int p[2];

    (void)arg;
    cr_assert_eq(weft_drive_fd(NULL, NULL, WEFT_NO_DEADLINE), -EINVAL);
    cr_assert_eq(weft_drive_fd(t_step_once, &s, WEFT_NO_DEADLINE), -EBADF);
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    s = (struct t_step){ .fd = p[0], .events = 1 << 30 };
    cr_assert_eq(weft_drive_fd(t_step_once, &s, WEFT_NO_DEADLINE), -EINVAL);
    s = (struct t_step){ .fd = p[0], .events = POLLIN };
    cr_assert_eq(weft_drive_fd(t_step_once, &s, weft_deadline_in_ms(10)),
                 -ETIMEDOUT);
    cr_assert_eq(write(p[1], "x", 1), 1);
    s = (struct t_step){ .fd = p[0], .events = POLLIN };
    cr_assert_eq(weft_drive_fd(t_step_once, &s, weft_deadline_in_ms(10000)), 0);
    cr_assert_eq(s.calls, 2);
    cr_assert_eq(close(p[0]), 0);
    cr_assert_eq(close(p[1]), 0);
    return 0;
}

Test(io_misuse, drive_fd_bad_step_fd_events_and_deadline, .timeout = 30)
{
    struct t_step s = { .fd = 0, .events = POLLIN };

    cr_assert_eq(weft_drive_fd(t_step_once, &s, WEFT_NO_DEADLINE), -EPERM);
    t_run(drive_misuse_main, NULL);
}
