/*
 * Stack overflow reporting; see overflow.h.
 *
 * The handler runs on the worker's alternate stack (the faulting stack has
 * no room left) and uses only async-signal-safe calls. It restores the
 * previous disposition when the fault is not ours and returns, so the
 * faulting instruction runs again under that disposition.
 */
#include "overflow.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stack.h"
#include "task.h"
#include "worker.h"

#define ALT_STACK_SIZE (64 * 1024)

static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned installs;           /* under install_lock */
static struct sigaction previous;   /* under install_lock */

static __thread void *alt_stack;

static void put(const char *s)
{
    ssize_t r = write(STDERR_FILENO, s, strlen(s));

    (void)r;
}

static void put_num(unsigned long v)
{
    char buf[24];
    int i = sizeof(buf) - 1;

    buf[i] = '\0';
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i > 0);
    put(buf + i);
}

static void on_segv(int sig, siginfo_t *si, void *uctx)
{
    struct worker *w = weft__worker_current();
    struct weft_task *t = w ? w->current : NULL;
    /* An inline task runs on its host's stack (task.h). */
    struct stack *st = t ? weft__task_fiber_owner(t)->stack : NULL;

    if (st && weft__stack_is_guard(st, si->si_addr)) {
        put("weft: stack overflow in task '");
        put(weft__task_name_or(t, "(unnamed)"));
        put("' (stack size ");
        put_num((unsigned long)st->size);
        put(" bytes); raise WEFT_STACK_SIZE or the task's stack_size\n");
        signal(SIGSEGV, SIG_DFL);
        return;
    }
    if (previous.sa_flags & SA_SIGINFO) {
        previous.sa_sigaction(sig, si, uctx);
        return;
    }
    if (previous.sa_handler == SIG_DFL || previous.sa_handler == SIG_IGN) {
        signal(SIGSEGV, SIG_DFL);
        return;
    }
    previous.sa_handler(sig);
}

int weft__overflow_install(void)
{
    struct sigaction sa;
    int ret = 0;

    pthread_mutex_lock(&install_lock);
    if (installs++ == 0) {
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_segv;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGSEGV, &sa, &previous) != 0) {
            ret = -errno;
            installs--;
        }
    }
    pthread_mutex_unlock(&install_lock);
    return ret;
}

void weft__overflow_uninstall(void)
{
    pthread_mutex_lock(&install_lock);
    if (installs && --installs == 0)
        sigaction(SIGSEGV, &previous, NULL);
    pthread_mutex_unlock(&install_lock);
}

int weft__overflow_thread_init(void)
{
    stack_t ss = { .ss_size = ALT_STACK_SIZE };

    alt_stack = mmap(NULL, ALT_STACK_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (alt_stack == MAP_FAILED) {
        alt_stack = NULL;
        return -ENOMEM;
    }
    ss.ss_sp = alt_stack;
    if (sigaltstack(&ss, NULL) != 0)
        return -errno;
    return 0;
}

void weft__overflow_thread_fini(void)
{
    stack_t ss = { .ss_flags = SS_DISABLE };

    if (!alt_stack)
        return;
    sigaltstack(&ss, NULL);
    munmap(alt_stack, ALT_STACK_SIZE);
    alt_stack = NULL;
}
