/*
 * Signals delivered to tasks (weft_signal_wait), and the signal mask of
 * weft's own threads.
 *
 * Dispositions are process-wide, so this module's state is too: one handler
 * per watched signal, one signal thread and one eventfd, shared by every
 * runtime that has waited for a signal and reference-counted by them. The
 * first wait for a signal installs weft's handler (saving the previous
 * disposition); the last runtime to shut down restores every saved one.
 *
 * Delivery. The kernel gives a process-directed signal to any thread that
 * does not block it. Every weft thread (workers, pool, the signal thread)
 * blocks all asynchronous signals (weft__signal_create_thread), so the
 * handler runs on a user thread, typically the one waiting in weft_run. It
 * is async-signal-safe: it bumps the signal's count and writes the eventfd.
 * The signal thread reads the eventfd and wakes the tasks waiting for a
 * signal whose count moved, through the shared wait list (wait.h);
 * weft__task_wake takes locks, so it cannot run in the handler itself.
 * One list holds every waiting task, each node's payload the set of
 * signals it waits for (weft_signal_wait is the set of one): a delivery
 * walks it and hands each node whose set holds a signal that came the
 * lowest such signal. Signals are rare and so are their waiters, so the
 * walk costs nothing that matters, and a task waiting for a set sits in
 * one list, so it has one fate under one lock (wait.h's hand-off).
 *
 * Rejected: sigwaitinfo or signalfd in the signal thread. Both see only a
 * signal that every thread of the process blocks, and weft cannot block
 * signals in threads it does not own: an unblocking user thread would take
 * the default action instead (for SIGINT, the process dies).
 *
 * Children. A process forked from a weft thread would inherit that
 * thread's mask, every asynchronous signal blocked, and keep it across exec:
 * a server's child would ignore SIGTERM. A fork handler (child side, run
 * by fork() in the child before it returns) gives such a child the mask
 * its thread would have had without weft: the mask of the thread that
 * created the weft thread, or, for a weft thread made by another weft
 * thread (a pool thread started from a worker), the one that thread got in
 * turn: in the end the mask of the thread that created the runtime. Each
 * weft thread keeps it in tls_child_mask. A child of any other thread keeps
 * its mask. In every child the dispositions weft replaced go back to the
 * saved ones: weft's handler would write to the parent's eventfd, and the
 * child has no runtime to deliver to (its signal would be swallowed).
 * posix_spawn, vfork (and system and popen, built on posix_spawn in glibc)
 * run no fork handlers; weft_child_sigmask gives the mask to pass to
 * posix_spawnattr_setsigmask. glibc's posix_spawn resets handled signals
 * to their default action in the child by itself.
 *
 * Teardown race: a handler already running on some thread when the last
 * runtime restores the dispositions could write to the eventfd after it was
 * closed, or to a descriptor that reused its number. The handler counts
 * itself in `in_handler` before it loads the descriptor; teardown clears the
 * descriptor, then waits for in_handler to drop to zero. With seq_cst on
 * both sides (Dekker) either the handler sees -1 or teardown sees it.
 */
#include "signal.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dump.h"
#include "mem.h"
#include "runtime.h"
#include "spin.h"
#include "task.h"
#include "wait.h"

#ifdef WEFT_FAULT_HOOKS
atomic_int weft__fault_thread_create;
#endif

/* Start and stop; also rt->uses_signals of every runtime. */
static pthread_mutex_t life = PTHREAD_MUTEX_INITIALIZER;
static unsigned users;                 /* under life */
static pthread_t thread;               /* under life */
static int efd = -1;                   /* under life */
static struct sigaction saved[NSIG];   /* under life */

/* The waiting tasks; each node's item is its uint64_t set of signals
 * (bit signo-1). Zeroed: empty. */
static struct weft__spin lock;
static struct weft__waitq waiters; /* under lock */

/* Runtimes that dump on a signal (WEFT_DUMP_SIGNAL). The signal thread
 * dumps under dumps_lock; a runtime leaves the list under it before it is
 * freed. */
struct dumper {
    struct runtime *rt;
    int signo;
    struct dumper *next;
};
static pthread_mutex_t dumps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dumper *dumpers;         /* under dumps_lock */
static _Atomic uint64_t dump_mask;     /* their signals; a hint */

/* The signal thread only (set before it starts). */
static uint64_t seen[NSIG];

/* Any thread, signal handlers included. */
static _Atomic uint64_t caught;        /* bit signo-1: our handler is in */
static _Atomic uint64_t hits[NSIG];
static atomic_int handler_fd = -1;
static atomic_int in_handler;
static atomic_bool stopping;

static uint64_t bit(int signo)
{
    return UINT64_C(1) << (signo - 1);
}

static void on_signal(int signo)
{
    int saved_errno = errno;
    uint64_t one = 1;
    int fd;

    /* seq_cst: pairs with teardown() (see the file comment). */
    atomic_fetch_add(&in_handler, 1);
    /* release: pairs with the acquire in deliver(). */
    atomic_fetch_add_explicit(&hits[signo], 1, memory_order_release);
    fd = atomic_load(&handler_fd);
    if (fd >= 0)
        (void)!write(fd, &one, sizeof(one)); /* fails only if one is due */
    atomic_fetch_sub(&in_handler, 1);
    errno = saved_errno;
}

/* Every weft thread: the mask its forked children get (see "Children"). */
static __thread const sigset_t *tls_child_mask
    __attribute__((tls_model("initial-exec")));

/* What a new weft thread runs first. Lives as long as the thread. */
struct thread_start {
    void *(*fn)(void *);
    void *arg;
    sigset_t child_mask;
};

/* Synchronous signals stay deliverable: blocking them is undefined. */
static void async_signals(sigset_t *set)
{
    static const int sync[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE,
                                SIGTRAP, SIGSYS };

    sigfillset(set);
    for (unsigned i = 0; i < sizeof(sync) / sizeof(sync[0]); i++)
        sigdelset(set, sync[i]);
}

/*
 * The fork handler: runs in the child only, which has a single thread (the
 * one that called fork), so only async-signal-safe calls, and no lock.
 */
static void after_fork_in_child(void)
{
    uint64_t mask;

    /* The parent's descriptor: not ours to write from here. */
    atomic_store(&handler_fd, -1);
    /* acquire: pairs with the release in catch_signal(), so saved[] holds
     * the disposition each bit stands for. */
    mask = atomic_load_explicit(&caught, memory_order_acquire);
    for (int signo = 1; signo < NSIG && signo <= 64; signo++)
        if (mask & bit(signo))
            sigaction(signo, &saved[signo], NULL);
    if (tls_child_mask)
        pthread_sigmask(SIG_SETMASK, tls_child_mask, NULL);
}

static int atfork_error;

static void register_atfork(void)
{
    atfork_error = pthread_atfork(NULL, NULL, after_fork_in_child);
}

static void *thread_main(void *arg)
{
    struct thread_start *start = arg;
    void *ret;

    tls_child_mask = &start->child_mask;
    ret = start->fn(start->arg);
    tls_child_mask = NULL;
    weft__free(start, sizeof(*start));
    return ret;
}

int weft__signal_create_thread(pthread_t *th, void *(*fn)(void *), void *arg)
{
    static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
    struct thread_start *start;
    sigset_t all, old;
    int ret;

    pthread_once(&atfork_once, register_atfork);
    if (atfork_error)
        return -atfork_error;
    if (WEFT__FAULT_NTH(thread_create))
        return -EAGAIN;
    start = weft__alloc(sizeof(*start));
    if (!start)
        return -ENOMEM;
    start->fn = fn;
    start->arg = arg;
    async_signals(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    start->child_mask = tls_child_mask ? *tls_child_mask : old;
    ret = -pthread_create(th, NULL, thread_main, start);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ret)
        weft__free(start, sizeof(*start));
    return ret;
}

int weft_child_sigmask(sigset_t *mask)
{
    if (!mask)
        return -EINVAL;
    if (tls_child_mask) {
        *mask = *tls_child_mask;
        return 0;
    }
    return -pthread_sigmask(SIG_SETMASK, NULL, mask);
}

static bool is_waitable(int signo)
{
    if (signo <= 0 || signo >= NSIG || signo > 64)
        return false;
    /* 32 .. SIGRTMIN-1 belong to the C library's threads implementation. */
    if (signo >= 32 && signo < SIGRTMIN)
        return false;
    switch (signo) {
    case SIGKILL: case SIGSTOP: case SIGSEGV: case SIGBUS: case SIGILL:
    case SIGFPE: case SIGTRAP: case SIGSYS:
    case SIGURG: /* the runtime's kick of a stuck worker (worker.c) */
        return false;
    }
    return true;
}

/* ---- the signal thread --------------------------------------------------- */

static uint64_t set_of(const struct weft__waiter *w)
{
    return *(const uint64_t *)w->item;
}

/* Hands every waiter whose set meets fired the lowest signal of the two.
 * The chain goes through `next`, which the removal leaves free. */
static void fire(uint64_t fired)
{
    struct weft__waiter *chain = NULL, *w, *next;

    weft__spin_lock(&lock);
    for (w = waiters.head; w; w = next) {
        next = w->next;
        if (set_of(w) & fired) {
            weft__waitq_remove(&waiters, w);
            w->next = chain;
            chain = w;
        }
    }
    weft__spin_unlock(&lock);
    for (w = chain; w; w = next) {
        next = w->next;
        /* The set lives on the waiter's stack until the release. */
        weft__waiter_release(w, __builtin_ctzll(set_of(w) & fired) + 1);
    }
}

/* Writes the dump of every runtime that asked for one on a signal of
 * fired. On the signal thread, not in a handler: stdio and locks are fine
 * here. */
static void dump(uint64_t fired)
{
    char why[32];

    pthread_mutex_lock(&dumps_lock);
    for (struct dumper *d = dumpers; d; d = d->next) {
        if (!(fired & bit(d->signo)))
            continue;
        snprintf(why, sizeof(why), "signal %d", d->signo);
        (void)weft__dump(d->rt, STDERR_FILENO, why);
    }
    pthread_mutex_unlock(&dumps_lock);
}

static void deliver(void)
{
    uint64_t mask = atomic_load_explicit(&caught, memory_order_relaxed);
    uint64_t fired = 0;

    for (int signo = 1; signo < NSIG && signo <= 64; signo++) {
        uint64_t h;

        if (!(mask & bit(signo)))
            continue;
        /* acquire: pairs with the release in on_signal(). */
        h = atomic_load_explicit(&hits[signo], memory_order_acquire);
        if (h != seen[signo]) {
            seen[signo] = h;
            fired |= bit(signo);
        }
    }
    if (fired & atomic_load_explicit(&dump_mask, memory_order_relaxed))
        dump(fired);
    if (fired)
        fire(fired);
}

static void *signal_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    uint64_t n;

    pthread_setname_np(pthread_self(), "weft-signal");
    for (;;) {
        ssize_t r = read(fd, &n, sizeof(n));

        /* acquire: pairs with the release in stop(). */
        if (atomic_load_explicit(&stopping, memory_order_acquire))
            break;
        if (r == sizeof(n))
            deliver();
    }
    return NULL;
}

/* ---- start and stop (under life) ----------------------------------------- */

static int start(void)
{
    int fd = eventfd(0, EFD_CLOEXEC);
    int ret;

    if (fd < 0)
        return -errno;
    for (int signo = 1; signo < NSIG; signo++)
        seen[signo] = atomic_load_explicit(&hits[signo], memory_order_relaxed);
    atomic_store_explicit(&stopping, false, memory_order_relaxed);
    /* seq_cst: pairs with the load in on_signal(); no handler of ours is
     * installed yet (catch_signal comes after, under life). */
    atomic_store(&handler_fd, fd);
    ret = weft__signal_create_thread(&thread, signal_main,
                                     (void *)(intptr_t)fd);
    if (ret) {
        atomic_store(&handler_fd, -1); /* seq_cst: as above */
        close(fd);
        return ret;
    }
    efd = fd;
    return 0;
}

static void restore_dispositions(void)
{
    /* Relaxed: caught changes only under life; the signal thread reads
     * it for a hint of which counters to look at. */
    uint64_t mask = atomic_exchange_explicit(&caught, 0, memory_order_relaxed);

    for (int signo = 1; signo < NSIG && signo <= 64; signo++)
        if (mask & bit(signo))
            sigaction(signo, &saved[signo], NULL);
}

static void stop(void)
{
    uint64_t one = 1;

    restore_dispositions();
    /* release: pairs with the acquire in signal_main(). */
    atomic_store_explicit(&stopping, true, memory_order_release);
    if (write(efd, &one, sizeof(one)) < 0)
        weft__panic("signal stop: eventfd write failed (%d)", errno);
    pthread_join(thread, NULL);
    /* seq_cst: pairs with on_signal(); see "Teardown race". */
    atomic_store(&handler_fd, -1);
    while (atomic_load(&in_handler))
        sched_yield();
    close(efd);
    efd = -1;
}

static int catch_signal(int signo)
{
    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };

    if (atomic_load_explicit(&caught, memory_order_relaxed) & bit(signo))
        return 0;
    sigemptyset(&sa.sa_mask);
    if (sigaction(signo, &sa, &saved[signo]) != 0)
        return -errno;
    /* release: pairs with the acquire in after_fork_in_child(). */
    atomic_fetch_or_explicit(&caught, bit(signo), memory_order_release);
    return 0;
}

/* Makes sure signo reaches the signal thread: this runtime holds a
 * reference, and weft's handler is installed. */
static int watch(struct runtime *rt, int signo)
{
    int ret = 0;

    pthread_mutex_lock(&life);
    if (!rt->uses_signals) {
        ret = users ? 0 : start();
        if (!ret) {
            users++;
            rt->uses_signals = true;
        }
    }
    ret = ret ?: catch_signal(signo);
    pthread_mutex_unlock(&life);
    return ret;
}

int weft__signal_dump_on(struct runtime *rt, int signo)
{
    struct dumper *d = weft__zalloc(sizeof(*d));
    int ret;

    if (!d)
        return -ENOMEM;
    ret = watch(rt, signo);
    if (ret) {
        weft__free(d, sizeof(*d));
        return ret;
    }
    d->rt = rt;
    d->signo = signo;
    pthread_mutex_lock(&dumps_lock);
    d->next = dumpers;
    dumpers = d;
    atomic_fetch_or_explicit(&dump_mask, bit(signo), memory_order_relaxed);
    pthread_mutex_unlock(&dumps_lock);
    return 0;
}

/* Takes rt off the dump list (before it is freed). */
static void stop_dumps(struct runtime *rt)
{
    struct dumper **p, *d;
    uint64_t mask = 0;

    pthread_mutex_lock(&dumps_lock);
    for (p = &dumpers; (d = *p);) {
        if (d->rt == rt) {
            *p = d->next;
            weft__free(d, sizeof(*d));
            continue;
        }
        mask |= bit(d->signo);
        p = &d->next;
    }
    atomic_store_explicit(&dump_mask, mask, memory_order_relaxed);
    pthread_mutex_unlock(&dumps_lock);
}

void weft__signal_release(struct runtime *rt)
{
    stop_dumps(rt);
    pthread_mutex_lock(&life);
    if (rt->uses_signals) {
        rt->uses_signals = false;
        if (--users == 0)
            stop();
    }
    pthread_mutex_unlock(&life);
}

unsigned weft__signal_waiters(int signo)
{
    unsigned n = 0;

    if (!is_waitable(signo))
        return 0;
    weft__spin_lock(&lock);
    for (struct weft__waiter *w = waiters.head; w; w = w->next)
        n += (set_of(w) & bit(signo)) != 0;
    weft__spin_unlock(&lock);
    return n;
}

/* ---- weft_signal_wait ---------------------------------------------------- */

/* Waits for any signal of set (bits signo-1, every one waitable); returns
 * the one that came, or an error. */
static int wait_set(uint64_t set, int64_t deadline, const void *where)
{
    struct weft_task *t = weft__task_current();
    struct weft__waiter w;
    int ret = 0;

    for (int signo = 1; signo <= 64 && !ret; signo++)
        if (set & bit(signo))
            ret = watch(t->rt, signo);
    if (ret)
        return ret;
    weft__waiter_init(&w, t, &set);
    weft__spin_lock(&lock);
    return weft__wait(&lock, &waiters, &w, weft__wait_deadline(t, deadline),
                      WHY_SIGNAL, where);
}

int weft_signal_wait(int signo, int64_t deadline)
{
    int ret;

    if (!weft__task_current())
        return -EPERM;
    if (!is_waitable(signo))
        return -EINVAL;
    ret = wait_set(bit(signo), deadline, WEFT__WHERE);
    return ret > 0 ? 0 : ret;
}

int weft_signal_wait_set(const sigset_t *set, int64_t deadline)
{
    uint64_t mask = 0;

    if (!weft__task_current())
        return -EPERM;
    if (!set)
        return -EINVAL;
    for (int signo = 1; signo < NSIG; signo++) {
        if (sigismember(set, signo) != 1)
            continue;
        if (!is_waitable(signo))
            return -EINVAL;
        mask |= bit(signo);
    }
    if (!mask)
        return -EINVAL;
    return wait_set(mask, deadline, WEFT__WHERE);
}
