/*
 * The epoll driver: readiness instead of completion, for kernels or
 * sandboxes without io_uring, and as the baseline io_uring is measured
 * against. One epoll instance per worker, touched only by it (cancel() from
 * another worker goes through the owner's cancel queue, see backend.h), or
 * by a rescuer while the owner is stuck and frozen (ep_rescue).
 *
 * An op is first tried at once, non-blocking (MSG_DONTWAIT, RWF_NOWAIT, or
 * O_NONBLOCK set on listeners and connecting sockets, which the readiness
 * model needs). On EAGAIN it joins the fd's waiter list on this worker, and
 * the worker retries it when epoll reports the fd ready, completing it
 * like a completion backend would, so io/op.c cannot tell the difference.
 *
 * Registration: per fd and worker, EPOLLONESHOT, re-armed (EPOLL_CTL_MOD)
 * only while waiters remain. Rejected alternative: a persistent
 * edge-triggered registration saves that epoll_ctl, but with work stealing
 * a connection's waits move between workers, and each worker it ever
 * visited would keep receiving its events; and a stale "registered" mark
 * cannot be told from a closed-and-reused fd number. A disarmed one-shot
 * registration is inert, and MOD failing with ENOENT says the fd number
 * now names another file (ADD it). The cost is one epoll_ctl per wait.
 *
 * Files: regular files are always "ready" and epoll refuses them (EPERM),
 * so their reads and writes that would block, and openat, statx and fsync
 * (the opcodes the table in op.c marks file), run on the runtime's blocking
 * pool. The pool thread completes the op with weft__io_complete, which
 * wakes the task as any completion does. A cancel takes a job the pool has
 * not started out of its queue (-ECANCELED); one that started cannot be
 * cut short, and the cancelled caller waits for the syscall to return.
 *
 * Fairness: an op that succeeds at once never suspends its task, so a
 * connection that always has data could keep its worker forever. After
 * IMMEDIATE_MAX such completions in a row by one task without a wait() in
 * between, the next op
 * that succeeds at once is completed from the next wait() instead (its
 * task parks like any waiter; the syscall already happened, so a cancel
 * cannot undo it and the result stands).
 *
 * Close: weft_close ends the waiters on the fd (-EBADF) before closing it,
 * here directly and on other workers through close notices (backend.h);
 * otherwise they would wait forever, as a closed fd leaves the epoll set
 * without an event.
 *
 * Waking: the worker's eventfd is registered level-triggered; wake() writes
 * it from any thread and the worker drains it when epoll reports it. A
 * write before the worker blocks keeps the fd readable, so no wake is lost.
 */
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "../common.h"
#include "../mem.h"
#include "../metrics.h"
#include "../runtime.h"
#include "../task.h"
#include "weft.h"

#define MAX_EVENTS 128
#define IMMEDIATE_MAX 64 /* ops completed at once before a forced turn */
#define WAKE_KEY 0 /* epoll data of the wake fd; fds are stored as fd + 1 */

/* The waiters on one fd, on this worker. */
struct fdwait {
    struct weft__io_op *head;
    uint32_t armed;  /* events the one-shot registration waits for, or 0 */
    bool in_epoll;   /* believed registered (ADD done, file not closed) */
};

struct weft__io {
    /* Owner worker only. */
    int epfd;
    int wake_fd;
    struct fdwait *fds;  /* indexed by fd */
    uint32_t nfds;
    unsigned nwaiting;   /* ops in waiter lists */
    unsigned immediate;  /* ops completed at once in a row by imm_task */
    struct weft_task *imm_task; /* the task that issued them */
    struct weft__io_op *deferred; /* done, completed by the next wait() */

    /* Any thread. */
    struct weft__io_cancelq remote;
};

static int ep_init(struct weft__io **out, const struct weft__config *cfg)
{
    struct weft__io *io = weft__zalloc(sizeof(*io));
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WAKE_KEY };
    int ret;

    (void)cfg;
    if (!io)
        return -ENOMEM;
    io->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (io->epfd < 0) {
        ret = -errno;
        goto out_free;
    }
    io->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (io->wake_fd < 0) {
        ret = -errno;
        goto out_close_ep;
    }
    if (epoll_ctl(io->epfd, EPOLL_CTL_ADD, io->wake_fd, &ev) < 0) {
        ret = -errno;
        goto out_close_wake;
    }
    *out = io;
    return 0;
out_close_wake:
    close(io->wake_fd);
out_close_ep:
    close(io->epfd);
out_free:
    weft__free(io, sizeof(*io));
    return ret;
}

static void ep_fini(struct weft__io *io)
{
    weft__free(io->fds, io->nfds * sizeof(*io->fds));
    close(io->wake_fd);
    close(io->epfd);
    weft__free(io, sizeof(*io));
}

/* ---- file operations on the blocking pool ------------------------------- */

/* The blocking form of op; a pool thread runs it. */
static int run_blocking(void *arg)
{
    struct weft__io_op *op = arg;
    struct iovec one = { op->buf, op->len };
    bool vec = weft__io_def(op->opcode)->vec;
    const struct iovec *iov = vec ? op->buf : &one;
    int n = vec ? (int)op->len : 1;
    ssize_t ret;

    switch (op->opcode) {
    case IOP_READ:
    case IOP_READV:
        ret = preadv2(op->fd, iov, n, (off_t)op->off, 0);
        break;
    case IOP_WRITE:
    case IOP_WRITEV:
        ret = pwritev2(op->fd, iov, n, (off_t)op->off, 0);
        break;
    case IOP_OPENAT:
        ret = openat(op->fd, op->buf, op->flags, (mode_t)op->off);
        break;
    case IOP_STATX:
        ret = statx(op->fd, op->buf, op->flags, (unsigned)op->off, op->aux);
        break;
    case IOP_FSYNC:
        ret = op->flags & WEFT_FSYNC_DATASYNC ? fdatasync(op->fd)
                                              : fsync(op->fd);
        break;
    default:
        return -EINVAL;
    }
    return ret < 0 ? -errno : (int)ret;
}

/* The pool thread's end of the job: the op completes as any other. */
static void pool_finish(struct weft__blocking_job *job, int result)
{
    struct weft__io_op *op = (struct weft__io_op *)(
        (char *)job - offsetof(struct weft__io_op, u.epoll.job));

    weft__io_complete(op, result);
}

static struct weft__blocking *pool_of(const struct weft__io_op *op)
{
    return &op->task->rt->pool;
}

/* Hands op to the blocking pool; it completes from a pool thread. */
static int pool_push(struct weft__io_op *op)
{
    struct weft__blocking_job *job = &op->u.epoll.job;

    op->u.epoll.want = 0;
    op->u.epoll.pooled = true;
    *job = (struct weft__blocking_job){ .fn = run_blocking, .arg = op,
                                        .task = op->task,
                                        .finish = pool_finish };
    atomic_init(&job->state, JOB_QUEUED);
    return weft__blocking_submit(pool_of(op), job);
}

/* A cancel of a pooled op: only one the pool has not started ends early. */
static bool pool_withdraw(struct weft__io_op *op)
{
    return op->u.epoll.pooled &&
           weft__blocking_withdraw(pool_of(op), &op->u.epoll.job);
}

/* ---- trying an op -------------------------------------------------------- */

static int rw_nowait(struct weft__io_op *op, bool write)
{
    struct iovec one = { op->buf, op->len };
    bool vec = weft__io_def(op->opcode)->vec;
    const struct iovec *iov = vec ? op->buf : &one;
    int n = vec ? (int)op->len : 1;
    ssize_t ret;

    if (write)
        ret = pwritev2(op->fd, iov, n, (off_t)op->off, RWF_NOWAIT);
    else
        ret = preadv2(op->fd, iov, n, (off_t)op->off, RWF_NOWAIT);
    return ret < 0 ? -errno : (int)ret;
}

/* POLLNVAL is -EBADF, as io_uring's poll answers for an fd not open. */
static int poll_now(const struct weft__io_op *op)
{
    struct pollfd pfd = { .fd = op->fd, .events = (short)op->flags };
    int ret = poll(&pfd, 1, 0);

    if (ret < 0)
        return -errno;
    if (ret && (pfd.revents & POLLNVAL))
        return -EBADF;
    return ret ? pfd.revents : -EAGAIN;
}

static int connect_step(struct weft__io_op *op)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (op->u.epoll.started) {
        if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            return -errno;
        return -err;
    }
    if (connect(op->fd, op->buf, (socklen_t)op->len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return -errno;
    op->u.epoll.started = true;
    return -EAGAIN;
}

/* One non-blocking attempt: the result, or -EAGAIN to wait for readiness. */
static int perform(struct weft__io_op *op)
{
    ssize_t ret;

    switch (op->opcode) {
    case IOP_ACCEPT:
        ret = accept4(op->fd, op->buf, op->aux, op->flags);
        break;
    case IOP_CONNECT:
        return connect_step(op);
    case IOP_RECV:
        ret = recv(op->fd, op->buf, op->len, op->flags | MSG_DONTWAIT);
        break;
    case IOP_SEND:
        ret = send(op->fd, op->buf, op->len, op->flags | MSG_DONTWAIT);
        break;
    case IOP_RECVMSG:
        ret = recvmsg(op->fd, op->buf, op->flags | MSG_DONTWAIT);
        break;
    case IOP_SENDMSG:
        ret = sendmsg(op->fd, op->buf, op->flags | MSG_DONTWAIT);
        break;
    case IOP_READ:
    case IOP_READV:
        return rw_nowait(op, false);
    case IOP_WRITE:
    case IOP_WRITEV:
        return rw_nowait(op, true);
    case IOP_POLL:
        return poll_now(op);
    case IOP_CLOSE:
        ret = close(op->fd);
        break;
    case IOP_SHUTDOWN:
        ret = shutdown(op->fd, op->flags);
        break;
    default:
        return -EINVAL;
    }
    return ret < 0 ? (errno == EWOULDBLOCK ? -EAGAIN : -errno) : (int)ret;
}

/* The events op waits for: its opcode's, or IOP_POLL's own. */
static uint32_t wanted_events(const struct weft__io_op *op)
{
    uint32_t events = weft__io_def(op->opcode)->events;

    return events ? events : (uint32_t)op->flags;
}

/* ---- waiter lists -------------------------------------------------------- */

/* (Re-)arms fd's one-shot registration for the events its waiters want. */
static int arm(struct weft__io *io, int fd, uint32_t events)
{
    struct fdwait *fw = &io->fds[fd];
    struct epoll_event ev = { .events = events | EPOLLONESHOT,
                              .data.u64 = (uint64_t)fd + 1 };
    int how = fw->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

    if (epoll_ctl(io->epfd, how, fd, &ev) < 0) {
        if (errno != (how == EPOLL_CTL_MOD ? ENOENT : EEXIST))
            return -errno;
        how = how == EPOLL_CTL_MOD ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
        if (epoll_ctl(io->epfd, how, fd, &ev) < 0)
            return -errno;
    }
    fw->in_epoll = true;
    fw->armed = events;
    return 0;
}

/* Slow path: room for fd in the table. An fd that is not open (closed
 * meanwhile by another thread) gets none: its number could be anything up
 * to INT_MAX. */
static int grow_fds(struct weft__io *io, int fd)
{
    if (fcntl(fd, F_GETFD) < 0)
        return -errno;
    return weft__grow_table((void **)&io->fds, &io->nfds, sizeof(*io->fds),
                            64, (uint32_t)fd);
}

static int add_waiter(struct weft__io *io, struct weft__io_op *op)
{
    struct fdwait *fw;
    uint32_t want = wanted_events(op);
    int ret;

    if ((uint32_t)op->fd >= io->nfds && (ret = grow_fds(io, op->fd)) < 0)
        return ret;
    fw = &io->fds[op->fd];
    /* Armed even when the registration already covers want: it may be a
     * stale one, left on a file that the caller closed with close(2) while
     * a dup kept it open, and the number may name a new file by now. MOD
     * finds no registration for the new file (ENOENT) and arm() adds one;
     * skipping it would leave this op waiting on the old file for ever. */
    ret = arm(io, op->fd, fw->armed | want);
    if (ret < 0)
        return ret;
    op->u.epoll.want = want;
    op->u.epoll.wait_next = fw->head;
    fw->head = op;
    io->nwaiting++;
    return 0;
}

/* Takes op out of its fd's waiter list; false if it is not in one. */
static bool unhook(struct weft__io *io, struct weft__io_op *op)
{
    struct weft__io_op **p;

    if (!op->u.epoll.want)
        return false;
    for (p = &io->fds[op->fd].head; *p != op; p = &(*p)->u.epoll.wait_next)
        ;
    *p = op->u.epoll.wait_next;
    op->u.epoll.want = 0;
    io->nwaiting--;
    return true;
}

/* Ends every waiter on fd with result and drops its registration: fd is
 * about to be closed, or cannot be registered again. */
static void end_waiters(struct weft__io *io, int fd, int result)
{
    struct fdwait *fw;
    struct weft__io_op *op;

    if ((uint32_t)fd >= io->nfds)
        return;
    fw = &io->fds[fd];
    if (fw->in_epoll)
        epoll_ctl(io->epfd, EPOLL_CTL_DEL, fd, NULL);
    fw->in_epoll = false;
    fw->armed = 0;
    while ((op = fw->head)) {
        fw->head = op->u.epoll.wait_next;
        op->u.epoll.want = 0;
        io->nwaiting--;
        weft__io_complete(op, result);
    }
}

/*
 * Retries fd's waiters after epoll reported revents on it. If the ones
 * still waiting cannot be re-armed, they end with the error of epoll_ctl:
 * a caller that closed fd with close(2) while a dup kept the file open
 * (its registration still fires, under a number that no longer names it)
 * gets -EBADF, and a lack of memory -ENOMEM, rather than a wait that never
 * ends.
 */
static void dispatch(struct weft__io *io, int fd, uint32_t revents)
{
    struct fdwait *fw = &io->fds[fd];
    struct weft__io_op **p = &fw->head, *op;
    uint32_t rest = 0, bad = EPOLLERR | EPOLLHUP;
    int ret;

    fw->armed = 0;
    while ((op = *p)) {
        ret = -EAGAIN;
        if (op->opcode == IOP_POLL && (revents & (op->u.epoll.want | bad)))
            ret = (int)(revents & (op->u.epoll.want | bad));
        else if (revents & (op->u.epoll.want | bad))
            ret = perform(op);
        if (ret == -EAGAIN) {
            rest |= op->u.epoll.want;
            p = &op->u.epoll.wait_next;
            continue;
        }
        *p = op->u.epoll.wait_next;
        op->u.epoll.want = 0;
        io->nwaiting--;
        weft__io_complete(op, ret);
    }
    if (rest && (ret = arm(io, fd, rest)) < 0)
        end_waiters(io, fd, ret);
}

/* Completes the ops finished at once but held back for fairness. */
static int run_deferred(struct weft__io *io)
{
    struct weft__io_op *op = io->deferred, *next;
    int n = 0;

    io->deferred = NULL;
    io->immediate = 0;
    io->imm_task = NULL;
    for (; op; op = next, n++) {
        next = op->u.epoll.wait_next;
        weft__io_complete(op, op->result);
    }
    return n;
}

/* ---- the table ----------------------------------------------------------- */

/* Completes op on the issuing task itself (nobody to wake), unless the
 * worker has not had a turn for IMMEDIATE_MAX of those: then the task parks
 * and the next wait() completes op. */
static int finish_now(struct weft__io *io, struct weft__io_op *op, int result)
{
    op->result = result;
    if (op->task != io->imm_task) {
        io->imm_task = op->task;
        io->immediate = 0;
    }
    if (unlikely(++io->immediate > IMMEDIATE_MAX)) {
        op->u.epoll.want = 0;
        op->u.epoll.wait_next = io->deferred;
        io->deferred = op;
        return 0;
    }
    weft__metrics_io_done(op->task);
    atomic_store_explicit(&op->done, true, memory_order_relaxed);
    return 0;
}

static int ensure_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0)
        return -errno;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

static int ep_submit(struct weft__io *io, struct weft__io_op *op)
{
    int ret;

    op->io = io;
    if (op->opcode == IOP_ACCEPT_MULTI)
        return -EOPNOTSUPP; /* listeners accept one at a time here */
    if (op->opcode == IOP_CLOSE)
        end_waiters(io, op->fd, -EBADF);
    if (weft__io_def(op->opcode)->file)
        return pool_push(op);
    if ((op->opcode == IOP_ACCEPT || op->opcode == IOP_CONNECT) &&
        (ret = ensure_nonblock(op->fd)) < 0)
        return ret;
    ret = perform(op);
    if (ret == -EOPNOTSUPP && weft__io_def(op->opcode)->rw)
        return pool_push(op); /* no RWF_NOWAIT for this file */
    if (ret != -EAGAIN)
        return finish_now(io, op, ret);
    if (weft__io_def(op->opcode)->msg && (op->flags & MSG_DONTWAIT))
        return finish_now(io, op, -EAGAIN); /* the caller asked not to wait */
    ret = add_waiter(io, op);
    if (ret == -EPERM) /* a regular file: always "ready" */
        return pool_push(op);
    return ret;
}

static void ep_wake(struct weft__io *io);

static void ep_cancel(struct weft__io *io, struct weft__io_op *op)
{
    if (op->io != io || op->opcode == IOP_CLOSE) {
        weft__io_cancelq_push(&op->io->remote, op);
        if (op->io != io)
            ep_wake(op->io);
        return;
    }
    if (unhook(io, op) || pool_withdraw(op))
        weft__io_complete(op, -ECANCELED);
}

/* Cancels from tasks that moved to other workers, and close notices. */
static void take_remote_cancels(struct weft__io *io)
{
    struct weft__io_op *op = weft__io_cancelq_take(&io->remote);

    while (op) {
        struct weft__io_op *next = op->cancel_next;

        if (op->opcode == IOP_CLOSE)
            end_waiters(io, op->fd, -EBADF);
        else if (unhook(io, op) || pool_withdraw(op))
            weft__io_complete(op, -ECANCELED);
        weft__io_cancelq_ack(op);
        op = next;
    }
}

static void drain_wake(struct weft__io *io)
{
    uint64_t v;

    while (read(io->wake_fd, &v, sizeof(v)) < 0 && errno == EINTR)
        ;
}

/*
 * epoll_pwait2 (Linux 5.11) takes a nanosecond timeout; where it is missing
 * (older kernels, Valgrind) epoll_wait's milliseconds are rounded up so that
 * a timer is never fired early.
 */
static int wait_events(int epfd, struct epoll_event *evs,
                       const struct timespec *ts)
{
    static atomic_bool no_pwait2;
    int ms;

    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        int n = epoll_pwait2(epfd, evs, MAX_EVENTS, ts, NULL);

        if (n >= 0 || errno != ENOSYS)
            return n;
        atomic_store_explicit(&no_pwait2, true, memory_order_relaxed);
    }
    if (!ts)
        ms = -1;
    else if (ts->tv_sec >= INT32_MAX / 1000)
        ms = INT32_MAX;
    else
        ms = (int)(ts->tv_sec * 1000 + (ts->tv_nsec + 999999) / 1000000);
    return epoll_wait(epfd, evs, MAX_EVENTS, ms);
}

static int ep_wait(struct weft__io *io, int64_t timeout_ns)
{
    struct epoll_event evs[MAX_EVENTS];
    struct timespec ts, *tsp = NULL;
    int n, done = 0;

    take_remote_cancels(io);
    if (io->deferred || io->immediate) {
        done = run_deferred(io);
        if (done)
            timeout_ns = 0; /* tasks were woken: do not sleep */
    }
    if (timeout_ns == 0 && !io->nwaiting)
        return done; /* nothing here can become ready */
    weft__metrics_kernel_entry();
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / WEFT__NS_PER_SEC;
        ts.tv_nsec = timeout_ns % WEFT__NS_PER_SEC;
        tsp = &ts;
    }
    n = wait_events(io->epfd, evs, tsp);
    if (n < 0)
        return errno == EINTR ? done : -errno;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 == WAKE_KEY)
            drain_wake(io);
        else
            dispatch(io, (int)(evs[i].data.u64 - 1), evs[i].events);
    }
    take_remote_cancels(io);
    return n + done;
}

/* A rescuer's turn (backend.h): an epoll set may be waited on from any
 * thread, so it is one turn of wait() that does not block. */
static int ep_rescue(struct weft__io *io, bool (*kick)(void *), void *arg)
{
    (void)kick;
    (void)arg;
    return ep_wait(io, 0);
}

static void ep_wake(struct weft__io *io)
{
    weft__io_eventfd_wake(io->wake_fd);
}

const struct weft__io_ops weft__io_epoll_ops = {
    .name = "epoll",
    .op_deadlines = false,
    .init = ep_init,
    .fini = ep_fini,
    .submit = ep_submit,
    .cancel = ep_cancel,
    .wait = ep_wait,
    .wake = ep_wake,
    .rescue = ep_rescue,
};
