/*
 * Listeners: an accept loop's handle on a listening socket.
 *
 * On io_uring a listener keeps one multishot accept in flight (armed by the
 * first accept, on that task's worker): the kernel accepts each connection
 * as it arrives and posts it, with no SQE and no syscall per connection.
 * The ring that armed it owns it until its last completion, even if the
 * accepting tasks move to other workers; its completions (run by the owner,
 * weft__io_accept_event) queue the new fds in the listener and wake a
 * waiting accept, from any worker to any other. When the multishot ends (an
 * error such as -EMFILE, which the next accept returns, or a stop) the next
 * accept that finds the queue empty arms it again, on its own worker.
 *
 * Connections accepted ahead of the accept calls stay queued here; past
 * AHEAD_MAX the owner stops the multishot, and the kernel's backlog holds
 * the rest until the queue drains (the queue may still exceed AHEAD_MAX by
 * the completions already on their way).
 *
 * On epoll (no multishot: submit() says -EOPNOTSUPP) each accept is one
 * weft_accept, i.e. accept4 and a readiness wait; the calls behave the
 * same.
 *
 * Locking: lock guards the queue, the waiters and the flags; it is taken
 * once per accept and once per posted connection, never around a
 * suspension, and never while the owner may reap this listener's
 * completions (cancel() runs outside it; arming under it is safe because
 * an unarmed listener has no completion to reap).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../runtime/mem.h"
#include "../runtime/spin.h"
#include "../runtime/task.h"
#include "op.h"
#include "weft.h"

#define AHEAD_MAX 64

/* One accept call waiting; on its task's stack. */
struct lwait {
    struct lwait *next;
    struct weft_task *task;
    atomic_bool woken; /* taken off the list by a waker */
};

struct weft_listener {
    int fd;
    int flags; /* SOCK_* for accepted fds */
    struct weft__spin lock;

    /* Under lock. */
    int *q;                  /* accepted fds, a ring of qcap */
    uint32_t qcap, qhead, qlen;
    int err;                 /* an error for the next accept, or 0 */
    bool armed;              /* the multishot is in flight (op owned) */
    bool stopping;           /* its owner was asked to stop it */
    bool closing;
    bool single;             /* the backend has no multishot */
    unsigned users;          /* accept calls inside */
    struct lwait *head, *tail;
    struct weft_task *closer;

    struct weft__io_op op;   /* the multishot; its owner's while armed */
};

#define listener_of(o) \
    ((struct weft_listener *)((char *)(o) - offsetof(struct weft_listener, op)))

int weft_listener_new(weft_listener_t **out, int fd, int flags)
{
    struct weft_listener *l;

    if (!out || (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)))
        return -EINVAL;
    /* Once here (not per accept): an fd that is not open never gets as far
     * as a backend's fd-indexed tables. */
    if (fd < 0 || fcntl(fd, F_GETFD) < 0)
        return -EBADF;
    l = weft__zalloc(sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->fd = fd;
    l->flags = flags;
    weft__spin_init(&l->lock);
    *out = l;
    return 0;
}

int weft_listener_fd(const weft_listener_t *l)
{
    return l ? l->fd : -EINVAL;
}

/* ---- the queue (under lock) --------------------------------------------- */

static bool push_fd(struct weft_listener *l, int fd)
{
    if (l->qlen == l->qcap) {
        uint32_t n = l->qcap ? l->qcap * 2 : AHEAD_MAX;
        int *q = weft__alloc(n * sizeof(*q));

        if (!q)
            return false;
        for (uint32_t i = 0; i < l->qlen; i++)
            q[i] = l->q[(l->qhead + i) % l->qcap];
        weft__free(l->q, l->qcap * sizeof(*q));
        l->q = q;
        l->qcap = n;
        l->qhead = 0;
    }
    l->q[(l->qhead + l->qlen++) % l->qcap] = fd;
    return true;
}

static int pop_fd(struct weft_listener *l)
{
    int fd = l->q[l->qhead];

    l->qhead = (l->qhead + 1) % l->qcap;
    l->qlen--;
    return fd;
}

/* Wakes the longest waiting accept, if any. */
static void wake_one(struct weft_listener *l)
{
    struct lwait *w = l->head;

    if (!w)
        return;
    l->head = w->next;
    if (!l->head)
        l->tail = NULL;
    /* release: pairs with the acquire in lwait_woken(); w stays valid
     * until its task has taken the lock, which we hold. */
    atomic_store_explicit(&w->woken, true, memory_order_release);
    weft__task_wake(w->task);
}

static void unlist(struct weft_listener *l, struct lwait *w)
{
    struct lwait **p, *prev = NULL;

    for (p = &l->head; *p != w; prev = *p, p = &(*p)->next)
        ;
    *p = w->next;
    if (l->tail == w)
        l->tail = prev;
}

/* ---- the owner's side ---------------------------------------------------- */

bool weft__io_accept_event(struct weft__io_op *op, int res, bool more)
{
    struct weft_listener *l = listener_of(op);
    struct weft_task *closer = NULL;
    bool stop = false;

    weft__spin_lock(&l->lock);
    if (res >= 0) {
        if (l->closing || !push_fd(l, res)) {
            close(res); /* nobody will take it; or no memory to keep it */
            if (!l->closing)
                l->err = -ENOMEM;
        }
    } else if (res == -EINVAL && !more) {
        l->single = true; /* a kernel without multishot accept */
    } else if (res != -ECANCELED) {
        l->err = res;
    }
    if (!more) {
        l->armed = false;
        l->stopping = false;
        closer = l->closer;
    } else if (l->qlen >= AHEAD_MAX && !l->stopping && !l->closing) {
        l->stopping = stop = true;
    }
    wake_one(l);
    /* From here on l may be freed by its closer, once we unlock. */
    weft__spin_unlock(&l->lock);
    if (closer)
        weft__task_wake(closer);
    return stop;
}

/* ---- accept -------------------------------------------------------------- */

static bool lwait_woken(void *arg)
{
    struct lwait *w = arg;

    return atomic_load_explicit(&w->woken, memory_order_acquire);
}

/* Under lock: starts the multishot on the calling worker. */
static int arm(struct weft_listener *l)
{
    int ret;

    l->op = (struct weft__io_op){ .opcode = IOP_ACCEPT_MULTI, .fd = l->fd,
                                  .flags = l->flags,
                                  .deadline = WEFT_NO_DEADLINE };
    weft__io_fd_mark(l->fd, weft_worker_id());
    ret = weft__io_submit(&l->op);
    if (ret == 0)
        l->armed = true;
    return ret;
}

int weft_listener_accept(weft_listener_t *l, struct sockaddr *addr,
                         socklen_t *addrlen, int64_t deadline)
{
    struct weft_task *t = weft__task_current();
    struct lwait w = { 0 };
    int ret;

    if (!t)
        return -EPERM;
    if (!l || (addr && !addrlen))
        return -EINVAL;
    if (weft__task_take_cancel(t))
        return -ECANCELED;
    deadline = weft__wait_deadline(t, deadline);
    weft__spin_lock(&l->lock);
    l->users++;
    for (;;) {
        if (l->closing) {
            ret = -EBADF;
            break;
        }
        if (l->qlen) {
            ret = pop_fd(l);
            break;
        }
        if (l->err) {
            ret = l->err;
            l->err = 0;
            break;
        }
        if (l->single) {
            /* Marked before the closer can take the marks (it sets closing
             * under the lock first), so its weft_close ends this accept:
             * nothing suspends between here and the submit. */
            weft__io_fd_mark(l->fd, weft_worker_id());
            weft__spin_unlock(&l->lock);
            ret = weft_accept(l->fd, addr, addrlen, l->flags, deadline);
            addr = NULL; /* filled in */
            weft__spin_lock(&l->lock);
            break;
        }
        if (!l->armed) {
            ret = arm(l);
            if (ret == -EOPNOTSUPP || ret == -EINVAL)
                l->single = true; /* accept one at a time */
            else if (ret < 0)
                break;
            continue;
        }
        w = (struct lwait){ .task = t };
        if (l->tail)
            l->tail->next = &w;
        else
            l->head = &w;
        l->tail = &w;
        weft__spin_unlock(&l->lock);
        ret = weft__task_block(t, lwait_woken, &w, deadline, WHY_IO,
                               WEFT__WHERE);
        weft__spin_lock(&l->lock);
        if (ret == 0)
            continue;
        if (!atomic_load_explicit(&w.woken, memory_order_relaxed))
            unlist(l, &w);
        else if (l->qlen || l->err || l->closing || !l->armed)
            wake_one(l); /* the wake we got, passed on */
        break;
    }
    if (--l->users == 0 && l->closer)
        weft__task_wake(l->closer);
    weft__spin_unlock(&l->lock);
    if (ret >= 0 && addr && getpeername(ret, addr, addrlen) < 0)
        *addrlen = 0; /* the peer already left; the fd still reports it */
    return ret;
}

/* ---- close --------------------------------------------------------------- */

static bool users_gone(void *arg)
{
    struct weft_listener *l = arg;
    bool gone;

    weft__spin_lock(&l->lock);
    gone = !l->users;
    weft__spin_unlock(&l->lock);
    return gone;
}

static bool multishot_gone(void *arg)
{
    struct weft_listener *l = arg;
    bool gone;

    weft__spin_lock(&l->lock);
    gone = !l->armed;
    weft__spin_unlock(&l->lock);
    return gone && !atomic_load_explicit(&l->op.cancel_queued,
                                         memory_order_acquire);
}

int weft_listener_close(weft_listener_t *l)
{
    struct weft_task *t = weft__task_current();
    const struct weft__io_ops *ops;
    struct weft__io *io = weft__io_current(&ops);
    bool armed, cancelled = false;
    int ret;

    if (!t || !io)
        return -EPERM;
    if (!l)
        return -EINVAL;
    weft__spin_lock(&l->lock);
    l->closing = true;
    while (l->head)
        wake_one(l);
    armed = l->armed;
    l->closer = t;
    l->op.task = t; /* a remote cancel's ack wakes us */
    weft__spin_unlock(&l->lock);
    if (armed) {
        weft__io_cancel(&l->op);
        while (weft__task_block(t, multishot_gone, l, WEFT_NO_DEADLINE, WHY_IO,
                                WEFT__WHERE) == -ECANCELED)
            cancelled = true;
    }
    /* Accepts in progress on epoll end with -EBADF (weft_close). */
    ret = weft_close(l->fd);
    while (weft__task_block(t, users_gone, l, WEFT_NO_DEADLINE, WHY_IO,
                            WEFT__WHERE) == -ECANCELED)
        cancelled = true;
    while (l->qlen)
        close(pop_fd(l));
    weft__free(l->q, l->qcap * sizeof(*l->q));
    weft__free(l, sizeof(*l));
    if (cancelled)
        weft__task_restore_cancel(t);
    return ret;
}
