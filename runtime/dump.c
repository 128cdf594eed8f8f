/*
 * The task dump. It runs on any thread while the workers go on, so it
 * reads only what may be read concurrently: a task's state, wait reason,
 * wait site, handle word, function and name pointer are atomics (task.h,
 * task.c), and the registry is walked under reg_lock, which also keeps a
 * name from being freed while it is copied. Task structs stay mapped while
 * the runtime lives, so a task that ends meanwhile is read as whatever its
 * struct holds then: its line may be stale, never a fault.
 *
 * The registry is copied first (a snapshot, under the lock) and printed
 * after, because symbolizing maps the program's files: that must not hold
 * up spawns from other threads and name frees, which take the same lock.
 */
#include "dump.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runq.h"
#include "runtime.h"
#include "symbol.h"
#include "task.h"
#include "worker.h"

/* One live task as read. */
struct entry {
    const void *handle;      /* what weft_self returns in it */
    weft_fn_t fn;
    const void *where;
    uint32_t state;
    uint8_t why;
    int worker;              /* the worker it runs on, or -1 */
    char name[TASK_NAME_MAX];
    unsigned count;          /* identical lines collapsed into it */
};

struct snapshot {
    struct entry *e;
    size_t n, cap;
};

static bool is_live(uint32_t s)
{
    return s != TASK_FREE && s != TASK_DONE;
}

/* The worker t is on the CPU of, or -1. */
static int worker_of(struct runtime *rt, const struct weft_task *t)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct worker *w = rt->workers[i];

        if (!weft__worker_in_runtime(w) &&
            atomic_load_explicit(&w->running, memory_order_relaxed) == t)
            return (int)i;
    }
    return -1;
}

static void read_task(struct runtime *rt, struct weft_task *t,
                      struct entry *e)
{
    const char *name;

    e->handle = weft__task_handle(t);
    e->fn = __atomic_load_n(&t->fn, __ATOMIC_RELAXED);
    e->where = atomic_load_explicit(&t->where, memory_order_relaxed);
    e->why = atomic_load_explicit(&t->why, memory_order_relaxed);
    e->worker = worker_of(rt, t);
    e->count = 1;
    /* acquire: pairs with the release store in weft__task_init; the name
     * cannot be freed while reg_lock is held (weft__task_drop_name). */
    name = __atomic_load_n(&t->name, __ATOMIC_ACQUIRE);
    snprintf(e->name, sizeof(e->name), "%s", name ? name : "");
}

/* Copies up to s->cap live tasks, skipping the caller's own; returns how
 * many were live in all. */
static size_t take(struct runtime *rt, struct snapshot *s)
{
    struct weft_task *self = weft__task_current();
    size_t live = 0;

    pthread_mutex_lock(&rt->reg_lock);
    for (struct weft_task *t = rt->registry; t; t = t->all_next) {
        uint32_t st = atomic_load_explicit(&t->state, memory_order_acquire);

        if (!is_live(st) || t == self)
            continue;
        if (live++ < s->cap) {
            s->e[s->n].state = st;
            read_task(rt, t, &s->e[s->n++]);
        }
    }
    pthread_mutex_unlock(&rt->reg_lock);
    return live;
}

/* A snapshot with room for all live tasks, however many came meanwhile:
 * counted first, then copied, growing while it does not fit. */
static int snapshot(struct runtime *rt, struct snapshot *s)
{
    size_t live = 64;

    for (;;) {
        struct entry *e = realloc(s->e, (live + 16) * sizeof(*e));

        if (!e)
            return -ENOMEM;
        s->e = e;
        s->cap = live + 16;
        s->n = 0;
        live = take(rt, s);
        if (live <= s->cap)
            return 0;
    }
}

static const char *why_name(uint8_t why)
{
    static const char *const names[] = {
        "running", "yield", "sleep", "join", "io", "sync", "queue",
        "future", "blocking", "signal",
    };

    return why < sizeof(names) / sizeof(names[0]) ? names[why] : "?";
}

/* A task's state in words; a yielded task is RUNNING, a resumed one keeps
 * SCHED while it runs and switches (task.h). */
static void state_text(const struct entry *e, char *buf, size_t len)
{
    uint32_t s = e->state & ~(uint32_t)TASK_NOTIFIED;

    if (e->worker >= 0)
        snprintf(buf, len, "running on worker %d", e->worker);
    else if (s == TASK_SCHED)
        snprintf(buf, len, "queued");
    else if (s == TASK_NEW)
        snprintf(buf, len, "not started");
    else if (s == TASK_RUNNING && e->why == WHY_YIELD)
        snprintf(buf, len, "yielded");
    else if (s == TASK_RUNNING)
        snprintf(buf, len, "switching");
    else if (s == TASK_IDLE)
        snprintf(buf, len, "parked");
    else if (s == TASK_INLINE)
        snprintf(buf, len, "running inline in its joiner");
    else
        snprintf(buf, len, "?");
    if (e->state & TASK_NOTIFIED && len > strlen(buf) + 8)
        strcat(buf, " (woken)");
}

/* Orders entries so that identical unnamed ones are neighbours. */
static int cmp_entries(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    if (c)
        return c;
    if (x->fn != y->fn)
        return (uintptr_t)x->fn < (uintptr_t)y->fn ? -1 : 1;
    if (x->where != y->where)
        return (uintptr_t)x->where < (uintptr_t)y->where ? -1 : 1;
    if (x->why != y->why)
        return x->why < y->why ? -1 : 1;
    if (x->state != y->state)
        return x->state < y->state ? -1 : 1;
    return x->worker - y->worker;
}

/* Folds runs of identical unnamed waits into their first entry (Go does
 * the same for goroutines): a server's thousand idle connections read as
 * one line. Named tasks and running ones stay one per line. */
static void collapse(struct snapshot *s)
{
    size_t out = 0;

    qsort(s->e, s->n, sizeof(*s->e), cmp_entries);
    for (size_t i = 0; i < s->n; i++) {
        struct entry *p = out ? &s->e[out - 1] : NULL, *e = &s->e[i];

        if (p && !e->name[0] && !p->name[0] && e->worker < 0 &&
            p->worker < 0 && p->fn == e->fn && p->where == e->where &&
            p->why == e->why && p->state == e->state) {
            p->count++;
            continue;
        }
        s->e[out++] = *e;
    }
    s->n = out;
}

static int put(int fd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int put(int fd, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    size_t n, off = 0;
    int len;

    va_start(ap, fmt);
    len = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    n = len < 0 ? 0 : (size_t)len < sizeof(line) ? (size_t)len
                                                  : sizeof(line) - 1;
    while (off < n) {
        ssize_t r = write(fd, line + off, n - off);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        off += (size_t)r;
    }
    return 0;
}

static int put_workers(struct runtime *rt, int fd)
{
    int ret = put(fd, "  injection queue: %u tasks\n",
                  weft__inject_len(&rt->inject));

    for (unsigned i = 0; !ret && i < rt->nworkers; i++) {
        struct worker *w = rt->workers[i];
        const char *doing = !weft__worker_in_runtime(w) ? "runs a task"
            : atomic_load_explicit(&w->parked, memory_order_relaxed)
                ? "sleeps" : "schedules";
        uint32_t depth = weft__runq_len(&w->runq);

        ret = put(fd, "  worker %u: %s, run queue %u%s\n", i, doing,
                  depth > WEFT_RUNQ_CAP ? WEFT_RUNQ_CAP : depth,
                  atomic_load_explicit(&w->stalled, memory_order_relaxed)
                      ? ", stalled (others serve its work)" : "");
    }
    return ret;
}

static int put_task(int fd, const struct entry *e)
{
    char state[48], fn[320], where[320] = "";

    state_text(e, state, sizeof(state));
    weft__symbolize((const void *)e->fn, fn, sizeof(fn));
    if (e->where && e->worker < 0)
        weft__symbolize(e->where, where, sizeof(where));
    if (e->count > 1)
        return put(fd, "  %u tasks: %s%s%s%s%s, task function %s\n",
                   e->count, state, *where ? ", waiting in " : "",
                   *where ? why_name(e->why) : "", *where ? " at " : "",
                   where, fn);
    return put(fd, "  task %p%s%s%s: %s%s%s%s%s, task function %s\n",
               e->handle, *e->name ? " '" : "", e->name,
               *e->name ? "'" : "", state, *where ? ", waiting in " : "",
               *where ? why_name(e->why) : "", *where ? " at " : "", where,
               fn);
}

int weft__dump(struct runtime *rt, int fd, const char *why)
{
    struct snapshot s = { 0 };
    int ret = snapshot(rt, &s);

    if (ret)
        goto out;
    ret = put(fd, "weft: task dump (%s): %zu live tasks, %u workers\n", why,
              s.n, rt->nworkers);
    ret = ret ?: put_workers(rt, fd);
    if (ret)
        goto out;
    ret = (int)s.n;
    collapse(&s);
    for (size_t i = 0; i < s.n; i++) {
        int err = put_task(fd, &s.e[i]);

        if (err) {
            ret = err;
            break;
        }
    }
out:
    free(s.e);
    return ret;
}

static int dump_fd(struct runtime *rt, void *arg)
{
    return weft__dump(rt, *(int *)arg, "weft_dump");
}

int weft_dump(weft_runtime_t *h, int fd)
{
    if (fd < 0)
        return -EBADF;
    return weft__runtime_call(h, dump_fd, &fd);
}
