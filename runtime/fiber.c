/*
 * Fiber set-up and switching with sanitizer annotations.
 *
 * ASan keeps per-stack shadow and fake stacks: every switch is bracketed by
 * __sanitizer_start_switch_fiber (before, naming the destination stack) and
 * __sanitizer_finish_switch_fiber (after, on the destination). A fiber that
 * exits passes NULL as its fake-stack slot so ASan frees it. TSan models each
 * fiber as a separate logical thread; the switch must be announced with
 * __tsan_switch_to_fiber. Without sanitizers the hooks compile to nothing.
 */
#include "fiber.h"

#include <stdint.h>

#include "common.h"
#include "sanitizer.h"

void weft__fiber_init_thread(struct fiber *f)
{
    f->sp = NULL;
    f->stack_lo = NULL;
    f->stack_size = 0;
    f->asan_fake = NULL;
    f->tsan = san_tsan_current();
}

void weft__fiber_init(struct fiber *f, void *stack_lo, size_t size,
                      void (*entry)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
    void **frame;

    f->stack_lo = stack_lo;
    f->stack_size = size;
    f->asan_fake = NULL;
    f->tsan = san_tsan_create();
    frame = (void **)top - SWITCH_FRAME_WORDS;
    arch_frame_init(frame, (void *)entry, arg);
    f->sp = frame;
}

void weft__fiber_switch_to(struct fiber *from, struct fiber *to)
{
    san_tsan_switch(to->tsan);
    san_asan_start(&from->asan_fake, to->stack_lo, to->stack_size);
    weft__fiber_switch(&from->sp, to->sp);
    /* Keeps the switch out of tail position: TSan's function-exit hook
     * must run after we are back on `from`, or it pops the shadow stack
     * of the fiber we switched to. */
    __asm__ volatile("" ::: "memory");
    san_asan_finish(from->asan_fake);
}

_Noreturn void weft__fiber_exit_to(struct fiber *from, struct fiber *to)
{
    san_tsan_switch(to->tsan);
    san_asan_start(NULL, to->stack_lo, to->stack_size);
    weft__fiber_switch(&from->sp, to->sp);
    weft__panic("fiber_exit_to: a dead fiber was resumed");
}

void weft__fiber_entered(struct fiber *f)
{
    (void)f;
    san_asan_finish(NULL);
}

void weft__fiber_destroy(struct fiber *f)
{
    san_tsan_destroy(f->tsan);
    f->tsan = NULL;
}
