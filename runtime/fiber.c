/*
 * Fiber set-up and switching, with the sanitizer hooks of sanitizer.h around
 * each switch (they compile to nothing in plain builds).
 */
#include "fiber.h"

#include <stdint.h>

#include "common.h"

void weft__fiber_init_thread(struct fiber *f)
{
    f->sp = NULL;
    san_asan_init(&f->san, NULL, 0);
    san_tsan_adopt_thread(&f->san);
}

void weft__fiber_init(struct fiber *f, void *stack_lo, size_t size,
                      void (*entry)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
    void **frame;

    san_asan_init(&f->san, stack_lo, size);
    san_tsan_create(&f->san);
    frame = (void **)top - SWITCH_FRAME_WORDS;
    arch_frame_init(frame, (void *)entry, arg);
    f->sp = frame;
}

void weft__fiber_switch_to(struct fiber *from, struct fiber *to)
{
    san_tsan_switch(&to->san);
    san_asan_start(&from->san, &to->san);
    weft__fiber_switch(&from->sp, to->sp);
    /* Keeps the switch out of tail position: TSan's function-exit hook
     * must run after we are back on `from`, or it pops the shadow stack
     * of the fiber we switched to. */
    __asm__ volatile("" ::: "memory");
    san_asan_finish(&from->san);
}

_Noreturn void weft__fiber_exit_to(struct fiber *from, struct fiber *to)
{
    san_tsan_switch(&to->san);
    san_asan_start(NULL, &to->san);
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
    san_tsan_destroy(&f->san);
}
