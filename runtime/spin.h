/*
 * A test-and-test-and-set lock for critical sections of a few stores (wait
 * lists, timer heaps). It yields the CPU after a short spin so that a holder
 * preempted on an oversubscribed machine gets to run.
 */
#ifndef WEFT__SPIN_H
#define WEFT__SPIN_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

#if defined(__x86_64__)
static inline void weft__cpu_relax(void) { __builtin_ia32_pause(); }
#elif defined(__aarch64__)
static inline void weft__cpu_relax(void) { __asm__ volatile("yield"); }
#else
static inline void weft__cpu_relax(void) {}
#endif

struct weft__spin {
    atomic_bool held;
};

static inline void weft__spin_init(struct weft__spin *s)
{
    atomic_init(&s->held, false);
}

/* One step of a busy wait: spin briefly, then give the CPU away so that a
 * preempted thread we wait for (more workers than CPUs) gets to run. */
static inline void weft__backoff(unsigned *spins)
{
    if (++*spins < 64)
        weft__cpu_relax();
    else
        sched_yield();
}

/*
 * Waits for a flag another thread is about to set (it has committed to it,
 * e.g. by taking a waiter off a list under a lock). acquire: pairs with
 * the setter's release store.
 */
static inline void weft__spin_until(const atomic_bool *flag)
{
    unsigned spins = 0;

    while (!atomic_load_explicit(flag, memory_order_acquire))
        weft__backoff(&spins);
}

static inline void weft__spin_lock(struct weft__spin *s)
{
    unsigned spins = 0;

    /* acquire: pairs with the release in weft__spin_unlock(). */
    while (atomic_exchange_explicit(&s->held, true, memory_order_acquire))
        while (atomic_load_explicit(&s->held, memory_order_relaxed))
            weft__backoff(&spins);
}

/* Takes s only if nobody holds it. */
static inline bool weft__spin_trylock(struct weft__spin *s)
{
    return !atomic_load_explicit(&s->held, memory_order_relaxed) &&
           !atomic_exchange_explicit(&s->held, true, memory_order_acquire);
}

static inline void weft__spin_unlock(struct weft__spin *s)
{
    atomic_store_explicit(&s->held, false, memory_order_release);
}

#endif
