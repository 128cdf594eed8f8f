/*
 * Child processes (weft_process_*): posix_spawn, a pidfd to wait on, and
 * the guarantee that no child outlives its handle as a zombie.
 *
 * Start. glibc's posix_spawn clones with CLONE_VM | CLONE_VFORK on a stack
 * of its own, so the worker waits only until the child has exec'd (or
 * failed to, and the error comes back as posix_spawn's result). The child
 * gets an empty mask and every signal at SIG_DFL (POSIX_SPAWN_SETSIGMASK,
 * POSIX_SPAWN_SETSIGDEF): weft's threads block every asynchronous signal,
 * and a mask survives exec, so without this a child spawned from a worker
 * could not be stopped with SIGTERM. Pipes are made with O_CLOEXEC on both
 * ends, so that a child spawned at the same moment by another thread
 * inherits neither; the file actions dup2 the child's ends onto 0, 1 and 2,
 * which clears the flag there. The parent's ends are O_NONBLOCK, as the
 * epoll backend's readiness model needs; the child's stay blocking, as
 * programs expect of their standard streams.
 *
 * Waiting. pidfd_open right after the spawn names the child for good: the
 * process cannot be reaped by anyone but us in between (the documented
 * rules: SIGCHLD not ignored, no waitpid(-1) elsewhere), so its id cannot
 * have been reused. A pidfd polls readable once the child has exited, so a
 * wait is weft_wait_fd on it, then waitid(P_PIDFD, WNOHANG), which reaps
 * without blocking. IORING_OP_WAITID (Linux 6.7) would save that one
 * syscall, but it needs an opcode of its own in both drivers, for a call
 * that happens once per process; poll + waitid works on both backends and
 * on every kernel with pidfds (5.3).
 *
 * Reaping exactly once. The reaped flag and the status are under p->lock,
 * and so is the waitid that reaps, so of two tasks waking from the same
 * exit one reaps and the other reads the status it stored; neither sees
 * ECHILD from a child its sibling reaped.
 *
 * No zombie, no leak. A wait that is cancelled or times out changes
 * nothing: the child is still ours, its pidfd open, and weft_process_close
 * is the one way out of a handle. close kills a child not yet reaped with
 * SIGKILL through the pidfd (never another process: the id stays ours
 * until we reap), tries to reap it at once, and otherwise hands the pidfd
 * to a blocking-pool job that waits for the exit SIGKILL makes certain,
 * reaps, closes the pidfd and frees the handle. The pool runs every queued
 * job before the runtime stops (blocking.h), so by the time weft_run
 * returns the child is reaped and the pidfd closed, even when close ran in
 * a task being cancelled by the shutdown. Outside a task (or when the pool
 * cannot take the job) close waits on the spot; SIGKILL cannot be caught,
 * so the wait lasts as long as the kernel takes to tear the process down.
 * The pidfd is closed with close(2), not weft_close: close's contract says
 * no call on p is in progress, so no task waits on it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../runtime/blocking.h"
#include "../runtime/common.h"
#include "../runtime/mem.h"
#include "../runtime/runtime.h"
#include "../runtime/task.h"
#include "weft.h"

extern char **environ;

struct weft_process {
    pid_t pid;
    int pidfd;
    int fds[3];                  /* the parent's pipe ends, -1 if none */
    /* reaped and status, and the waitid that sets them. */
    pthread_mutex_t lock;
    bool reaped;
    int status;
    /* close's reaper on the blocking pool (see the file comment). */
    struct weft__blocking_job reaper;
};

/* ---- spawning ------------------------------------------------------------ */

/* The two ends of one standard stream: ours, and the child's, which the
 * file actions put on the stream's number. */
struct stdio_pipe {
    int parent, child;
};

static void close_pipe(struct stdio_pipe *sp)
{
    if (sp->parent >= 0)
        close(sp->parent);
    if (sp->child >= 0)
        close(sp->child);
    sp->parent = sp->child = -1;
}

/* A pipe for stream n: the child reads stdin and writes the others. */
static int open_pipe(int n, struct stdio_pipe *sp)
{
    int ends[2];

    if (pipe2(ends, O_CLOEXEC) < 0)
        return -errno;
    sp->parent = n == 0 ? ends[1] : ends[0];
    sp->child = n == 0 ? ends[0] : ends[1];
    if (fcntl(sp->parent, F_SETFL, O_NONBLOCK) < 0) {
        int ret = -errno;

        close_pipe(sp);
        return ret;
    }
    return 0;
}

/* The file actions of stream n; opens its pipe if it has one. */
static int add_stdio(posix_spawn_file_actions_t *fa, int n, int mode,
                     struct stdio_pipe *sp)
{
    int ret;

    switch (mode) {
    case WEFT_STDIO_INHERIT:
        return 0;
    case WEFT_STDIO_NULL:
        return -posix_spawn_file_actions_addopen(
            fa, n, "/dev/null", n == 0 ? O_RDONLY : O_WRONLY, 0);
    case WEFT_STDIO_PIPE:
        ret = open_pipe(n, sp);
        /* glibc clears FD_CLOEXEC even when the pipe already has number
         * n (a parent that closed its own stream n). */
        return ret ?: -posix_spawn_file_actions_adddup2(fa, sp->child, n);
    }
    return -EINVAL;
}

/* Empty mask, every signal at its default action (see the file comment). */
static int clean_signals(posix_spawnattr_t *attr)
{
    sigset_t none, all;

    sigemptyset(&none);
    sigfillset(&all);
    return -(posix_spawnattr_setsigmask(attr, &none) ?:
             posix_spawnattr_setsigdefault(attr, &all) ?:
             posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK |
                                                POSIX_SPAWN_SETSIGDEF));
}

/* posix_spawnp with the options; the pipes in sp, pid in *pid. */
static int start_child(pid_t *pid, const char *file, char *const argv[],
                       const weft_process_opts_t *opts,
                       struct stdio_pipe sp[3])
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int ret;

    if ((ret = -posix_spawn_file_actions_init(&fa)))
        return ret;
    if ((ret = -posix_spawnattr_init(&attr)))
        goto out_actions;
    ret = clean_signals(&attr);
    for (int n = 0; n < 3 && !ret; n++)
        ret = add_stdio(&fa, n, opts->stdio[n], &sp[n]);
    if (!ret && opts->cwd)
        ret = -posix_spawn_file_actions_addchdir_np(&fa, opts->cwd);
    if (!ret)
        ret = -posix_spawnp(pid, file, &fa, &attr, argv,
                            opts->env ? opts->env : environ);
    posix_spawnattr_destroy(&attr);
out_actions:
    posix_spawn_file_actions_destroy(&fa);
    return ret;
}

/* A child we cannot watch (no pidfd): kill it and reap it here. */
static void kill_and_reap(pid_t pid)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

static bool valid_opts(const weft_process_opts_t *opts)
{
    for (int n = 0; n < 3; n++)
        if (opts->stdio[n] != WEFT_STDIO_INHERIT &&
            opts->stdio[n] != WEFT_STDIO_PIPE &&
            opts->stdio[n] != WEFT_STDIO_NULL)
            return false;
    return true;
}

int weft_process_spawn(weft_process_t **out, const char *file,
                       char *const argv[], const weft_process_opts_t *opts)
{
    static const weft_process_opts_t defaults;
    struct stdio_pipe sp[3] = { { -1, -1 }, { -1, -1 }, { -1, -1 } };
    struct weft_process *p;
    int ret;

    opts = opts ? opts : &defaults;
    if (!out || !file || !argv || !argv[0] || !valid_opts(opts))
        return -EINVAL;
    if (!weft__task_current())
        return -EPERM;
    p = weft__zalloc(sizeof(*p));
    if (!p)
        return -ENOMEM;
    ret = start_child(&p->pid, file, argv, opts, sp);
    if (ret)
        goto out_pipes;
    p->pidfd = pidfd_open(p->pid, 0);
    if (p->pidfd < 0) {
        ret = -errno;
        kill_and_reap(p->pid);
        goto out_pipes;
    }
    for (int n = 0; n < 3; n++) {
        p->fds[n] = sp[n].parent;
        if (sp[n].child >= 0)
            close(sp[n].child);
    }
    pthread_mutex_init(&p->lock, NULL);
    *out = p;
    return 0;

out_pipes:
    for (int n = 0; n < 3; n++)
        close_pipe(&sp[n]);
    weft__free(p, sizeof(*p));
    return ret;
}

int weft_process_pid(const weft_process_t *p)
{
    return p ? p->pid : -EINVAL;
}

int weft_process_fd(const weft_process_t *p, int stream)
{
    if (!p || stream < 0 || stream > 2)
        return -EINVAL;
    return p->fds[stream] >= 0 ? p->fds[stream] : -EBADF;
}

/* ---- waiting and reaping ------------------------------------------------- */

/* A waitid result as the wait status that <sys/wait.h>'s macros read. */
static int wait_status(const siginfo_t *si)
{
    switch (si->si_code) {
    case CLD_EXITED:
        return W_EXITCODE(si->si_status & 0xff, 0);
    case CLD_DUMPED:
        return W_EXITCODE(0, si->si_status) | WCOREFLAG;
    default: /* CLD_KILLED: WEXITED reports nothing else */
        return W_EXITCODE(0, si->si_status);
    }
}

/*
 * Reaps p if its child has ended (blocking until it has, with flags 0).
 * Returns the status, -EAGAIN while the child runs (WNOHANG), or -ECHILD.
 */
static int reap(struct weft_process *p, int flags)
{
    siginfo_t si;
    int ret;

    pthread_mutex_lock(&p->lock);
    if (p->reaped) {
        ret = p->status;
        goto out_unlock;
    }
    memset(&si, 0, sizeof(si));
    while ((ret = waitid(P_PIDFD, (id_t)p->pidfd, &si, WEXITED | flags)) < 0 &&
           errno == EINTR)
        ;
    if (ret < 0) {
        ret = -errno;
    } else if (si.si_pid == 0) {
        ret = -EAGAIN; /* WNOHANG, still running */
    } else {
        p->status = ret = wait_status(&si);
        p->reaped = true;
    }
out_unlock:
    pthread_mutex_unlock(&p->lock);
    return ret;
}

int weft_process_wait(weft_process_t *p, int64_t deadline)
{
    int ret;

    if (!p)
        return -EINVAL;
    if (!weft__task_current())
        return -EPERM;
    while ((ret = reap(p, WNOHANG)) == -EAGAIN) {
        ret = weft_wait_fd(p->pidfd, POLLIN, deadline);
        if (ret < 0)
            return ret;
    }
    return ret;
}

int weft_process_kill(weft_process_t *p, int signo)
{
    bool reaped;

    if (!p || signo < 0 || signo >= NSIG)
        return -EINVAL;
    pthread_mutex_lock(&p->lock);
    reaped = p->reaped;
    pthread_mutex_unlock(&p->lock);
    if (reaped)
        return -ESRCH;
    return pidfd_send_signal(p->pidfd, signo, NULL, 0) < 0 ? -errno : 0;
}

/* ---- close --------------------------------------------------------------- */

static void release(struct weft_process *p)
{
    close(p->pidfd);
    pthread_mutex_destroy(&p->lock);
    weft__free(p, sizeof(*p));
}

static int reaper_wait(void *arg)
{
    return reap(arg, 0);
}

/* The pool thread's end of the reaper: nobody waits for it. */
static void reaper_done(struct weft__blocking_job *job, int result)
{
    (void)result;
    release(container_of(job, struct weft_process, reaper));
}

int weft_process_close(weft_process_t *p)
{
    struct weft_task *t = weft__task_current();

    if (!p)
        return -EINVAL;
    if (reap(p, WNOHANG) == -EAGAIN) {
        pidfd_send_signal(p->pidfd, SIGKILL, NULL, 0);
        p->reaper = (struct weft__blocking_job){ .fn = reaper_wait, .arg = p,
                                                 .finish = reaper_done };
        atomic_init(&p->reaper.state, JOB_QUEUED);
        if (t && weft__blocking_submit(&t->rt->pool, &p->reaper) == 0)
            return 0; /* the job releases p */
        reap(p, 0);
    }
    release(p);
    return 0;
}
