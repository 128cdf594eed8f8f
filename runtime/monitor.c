/*
 * The stall monitor; see monitor.h, and "Stalls" in worker.c for the
 * hand-off it drives.
 *
 * Detection: each worker's beat moves whenever it enters or leaves the
 * runtime. The monitor samples every beat once a tick (a quarter of
 * WEFT_STALL_MS); a worker whose beat is even (in a task) and has not moved
 * for WEFT_STALL_MS is stuck, and the monitor's thread becomes its rescuer:
 * one pass per millisecond serves what is ready there until the beat moves
 * again.
 * A beat that is odd and still is a worker in the runtime (parked, or
 * releasing memory): nothing to take over.
 *
 * Cost: workers only store their beat (worker.h). The monitor wakes once a
 * tick while some worker is out of its park, and not at all while every
 * worker is parked: it then sleeps until a worker unparks, which checks
 * one flag on its way out (Dekker's pattern again: the worker stores
 * parked = false and loads sleeping; the monitor stores sleeping and loads
 * every parked, seq_cst on both sides).
 */
#include "monitor.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "mem.h"
#include "runtime.h"
#include "signal.h"
#include "symbol.h"
#include "task.h"
#include "worker.h"

#define TICK_MIN_NS WEFT__NS_PER_MS
/* Between passes over a frozen worker: what is ready there waits at most
 * this long once the stall is known. */
#define FROZEN_TICK_NS WEFT__NS_PER_MS

static bool any_unparked(struct runtime *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (!atomic_load(&rt->workers[i]->parked))
            return true;
    return false;
}

/* A stall was detected: counted, and in debug mode reported while it
 * lasts, naming the task and its function (the task cannot end meanwhile:
 * its worker is frozen). */
static void report(struct worker *w, struct weft_task *t)
{
    struct weft__monitor *m = &w->rt->monitor;
    char where[320];

    atomic_fetch_add_explicit(&m->stalls, 1, memory_order_relaxed);
    if (!w->rt->cfg.debug || !t)
        return;
    weft__symbolize((const void *)t->fn, where, sizeof(where));
    fprintf(stderr,
            "weft: worker %u stuck: task '%s' (%p), running %s, has not "
            "reached a suspension point for %lld ms; other workers take "
            "over its ready work\n",
            w->index, weft__task_name_or(t, ""), (void *)t, where,
            (long long)(w->rt->cfg.stall_ms));
}

/* Returns whether some worker is frozen: its ready work is served a pass
 * at a time, so passes then come every FROZEN_TICK_NS. */
static bool check(struct runtime *rt)
{
    struct weft__monitor *m = &rt->monitor;
    int64_t now = weft__now();
    bool frozen = false;

    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct worker *w = rt->workers[i];
        struct weft__monitor_seen *s = &m->seen[i];
        /* acquire: pairs with the owner's release in leave, for the pass
         * that may follow. */
        uint64_t b = atomic_load_explicit(&w->beat, memory_order_acquire);

        if (b != s->beat) {
            *s = (struct weft__monitor_seen){ .beat = b, .since = now };
            continue;
        }
        if (b & 1)
            continue;
        if (!atomic_load_explicit(&w->stalled, memory_order_relaxed) &&
            now - s->since < m->stall_ns)
            continue;
        /* Alone, a worker has nobody to hand its work to: a stall is
         * reported once, and its queues keep their order. */
        if (rt->nworkers == 1 && s->frozen)
            continue;
        s->frozen = weft__worker_rescue(w, b, rt->nworkers > 1,
                                        s->frozen ? NULL : report) ||
                    s->frozen;
        frozen |= s->frozen && rt->nworkers > 1;
    }
    return frozen;
}

static void restart_clocks(struct runtime *rt)
{
    int64_t now = weft__now();

    for (unsigned i = 0; i < rt->nworkers; i++)
        rt->monitor.seen[i].since = now;
}

static void tick_wait(struct weft__monitor *m, bool frozen)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += frozen && FROZEN_TICK_NS < m->tick_ns ? FROZEN_TICK_NS
                                                        : m->tick_ns;
    ts.tv_sec += ts.tv_nsec / WEFT__NS_PER_SEC;
    ts.tv_nsec %= WEFT__NS_PER_SEC;
    pthread_cond_timedwait(&m->cond, &m->lock, &ts);
}

static void *monitor_main(void *arg)
{
    struct runtime *rt = arg;
    struct weft__monitor *m = &rt->monitor;
    bool frozen = false;

    pthread_mutex_lock(&m->lock);
    while (!m->stop) {
        if (!any_unparked(rt)) {
            atomic_store(&m->sleeping, true);
            while (!m->stop && atomic_load(&m->sleeping) &&
                   !any_unparked(rt))
                pthread_cond_wait(&m->cond, &m->lock);
            atomic_store(&m->sleeping, false);
            restart_clocks(rt);
            continue;
        }
        if (!m->poked)
            tick_wait(m, frozen);
        m->poked = false;
        if (m->stop)
            break;
        pthread_mutex_unlock(&m->lock);
        frozen = check(rt);
        pthread_mutex_lock(&m->lock);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

int weft__monitor_start(struct runtime *rt)
{
    struct weft__monitor *m = &rt->monitor;
    pthread_condattr_t ca;
    int ret;

    if (!rt->cfg.stall_ms)
        return 0;
    m->stall_ns = (int64_t)rt->cfg.stall_ms * WEFT__NS_PER_MS;
    m->tick_ns = m->stall_ns / 4 > TICK_MIN_NS ? m->stall_ns / 4 : TICK_MIN_NS;
    m->seen = weft__zalloc(rt->nworkers * sizeof(*m->seen));
    if (!m->seen)
        return -ENOMEM;
    pthread_mutex_init(&m->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cond, &ca);
    pthread_condattr_destroy(&ca);
    ret = weft__signal_create_thread(&m->thread, monitor_main, rt);
    if (ret)
        return ret; /* weft__monitor_fini frees the rest */
    m->started = true;
    return 0;
}

void weft__monitor_stop(struct runtime *rt)
{
    struct weft__monitor *m = &rt->monitor;

    if (!m->started)
        return;
    pthread_mutex_lock(&m->lock);
    m->stop = true;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    m->started = false;
    /* Workers still park and unpark until they stop: none may wait on the
     * lock for a monitor that is gone, and the lock stays until fini. */
    atomic_store(&m->sleeping, false);
}

void weft__monitor_fini(struct runtime *rt)
{
    struct weft__monitor *m = &rt->monitor;

    if (!m->seen)
        return;
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->lock);
    weft__free(m->seen, rt->nworkers * sizeof(*m->seen));
    m->seen = NULL;
}

void weft__monitor_unparked(struct worker *w)
{
    struct weft__monitor *m = &w->rt->monitor;

    atomic_store(&w->parked, false);
    if (!atomic_load(&m->sleeping))
        return;
    pthread_mutex_lock(&m->lock);
    atomic_store(&m->sleeping, false);
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

void weft__monitor_poke(struct runtime *rt)
{
    struct weft__monitor *m = &rt->monitor;

    if (!m->started)
        return;
    pthread_mutex_lock(&m->lock);
    m->poked = true;
    atomic_store(&m->sleeping, false);
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
}
