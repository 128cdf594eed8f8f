/*
 * Fibers: a saved stack pointer, plus what the sanitizers need to follow a
 * switch (nothing in plain builds). fiber.c makes the sanitizer calls so
 * the switch itself stays a few instructions.
 *
 * A fiber is switched to only by the thread that owns it at that moment
 * (the worker running it); nothing here is thread-safe by itself.
 */
#ifndef WEFT__FIBER_H
#define WEFT__FIBER_H

#include <stddef.h>

#include "sanitizer.h"

struct fiber {
    void *sp;             /* saved stack pointer while switched out */
    struct san_fiber san; /* empty in plain builds */
};

/* Assembly, runtime/arch/switch_<arch>.S. */
void weft__fiber_switch(void **save_sp, void *load_sp);

/* Adopts the calling thread's own stack as a fiber (a worker's scheduler). */
void weft__fiber_init_thread(struct fiber *f);

/* Prepares f to run entry(arg) on [stack_lo, stack_lo + size). */
void weft__fiber_init(struct fiber *f, void *stack_lo, size_t size,
                      void (*entry)(void *), void *arg);

/* Switches from the running fiber `from` to `to`. */
void weft__fiber_switch_to(struct fiber *from, struct fiber *to);

/* The last switch of a fiber whose stack is about to be reused. */
_Noreturn void weft__fiber_exit_to(struct fiber *from, struct fiber *to);

/* The first call a new fiber makes, completing the switch that started it. */
void weft__fiber_entered(struct fiber *f);

/* Releases sanitizer state of a fiber that has exited. */
void weft__fiber_destroy(struct fiber *f);

#endif
