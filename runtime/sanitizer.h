/*
 * Sanitizer and Valgrind hooks, and the per-architecture first frame of a
 * fiber. Every conditional on the build's instrumentation lives here so that
 * function bodies elsewhere carry no #ifdef.
 */
#ifndef WEFT_SANITIZER_H
#define WEFT_SANITIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define WEFT_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define WEFT_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT_TSAN 1
#endif

#ifdef WEFT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
static inline void san_asan_start(void **fake, const void *lo, size_t n)
{
    __sanitizer_start_switch_fiber(fake, lo, n);
}
static inline void san_asan_finish(void *fake)
{
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
}
/* A reused stack may still carry poison from its previous fiber's frames. */
static inline void san_stack_reset(void *lo, size_t n)
{
    ASAN_UNPOISON_MEMORY_REGION(lo, n);
}
#else
static inline void san_asan_start(void **fake, const void *lo, size_t n)
{
    (void)fake, (void)lo, (void)n;
}
static inline void san_asan_finish(void *fake) { (void)fake; }
static inline void san_stack_reset(void *lo, size_t n) { (void)lo, (void)n; }
#endif

#ifdef WEFT_TSAN
#include <sanitizer/tsan_interface.h>
static inline void *san_tsan_current(void) { return __tsan_get_current_fiber(); }
static inline void *san_tsan_create(void) { return __tsan_create_fiber(0); }
__attribute__((always_inline)) static inline void san_tsan_switch(void *f)
{
    /* Inlined: an instrumented wrapper would pop the new fiber's shadow
     * stack on return. */
    __tsan_switch_to_fiber(f, 0);
}
static inline void san_tsan_destroy(void *f)
{
    if (f)
        __tsan_destroy_fiber(f);
}
#else
static inline void *san_tsan_current(void) { return NULL; }
static inline void *san_tsan_create(void) { return NULL; }
static inline void san_tsan_switch(void *f) { (void)f; }
static inline void san_tsan_destroy(void *f) { (void)f; }
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#include <valgrind/memcheck.h>
#define WEFT_VALGRIND 1
#endif
#endif

#ifdef WEFT_VALGRIND
static inline unsigned san_vg_stack_register(void *lo, size_t n)
{
    return VALGRIND_STACK_REGISTER(lo, (char *)lo + n);
}
static inline void san_vg_stack_deregister(unsigned id)
{
    VALGRIND_STACK_DEREGISTER(id);
}
static inline bool san_on_valgrind(void) { return RUNNING_ON_VALGRIND; }
/* The kernel filled [p, p + n); Valgrind cannot see it do so. */
static inline void san_vg_defined(const void *p, size_t n)
{
    VALGRIND_MAKE_MEM_DEFINED(p, n);
}
#else
static inline unsigned san_vg_stack_register(void *lo, size_t n)
{
    (void)lo, (void)n;
    return 0;
}
static inline void san_vg_stack_deregister(unsigned id) { (void)id; }
static inline bool san_on_valgrind(void) { return false; }
static inline void san_vg_defined(const void *p, size_t n) { (void)p, (void)n; }
#endif

/*
 * The first frame of a fiber, as weft__fiber_switch pops it: the entry
 * function and its argument sit in callee-saved slots that
 * weft__fiber_start reads, and the return slot points at weft__fiber_start.
 */
void weft__fiber_start(void);

#if defined(__x86_64__)
/* MXCSR+FPUCW, r15, r14, r13, r12, rbx, rbp, return address, pad. */
#define SWITCH_FRAME_WORDS 10
static inline void arch_frame_init(void **frame, void *entry, void *arg)
{
    frame[0] = (void *)(uintptr_t)(0x1F80 | ((uint64_t)0x037F << 32));
    frame[1] = NULL;  /* r15 */
    frame[2] = NULL;  /* r14 */
    frame[3] = arg;   /* r13 */
    frame[4] = entry; /* r12 */
    frame[5] = NULL;  /* rbx */
    frame[6] = NULL;  /* rbp */
    frame[7] = (void *)weft__fiber_start;
    frame[8] = NULL;
    frame[9] = NULL;
}
#elif defined(__aarch64__)
/* 176-byte frame, see switch_aarch64.S. */
#define SWITCH_FRAME_WORDS 22
static inline void arch_frame_init(void **frame, void *entry, void *arg)
{
    for (int i = 0; i < SWITCH_FRAME_WORDS; i++)
        frame[i] = NULL;
    frame[0] = entry;                       /* x19 */
    frame[1] = arg;                         /* x20 */
    frame[11] = (void *)weft__fiber_start;  /* x30 */
}
#else
#error "weft: no fiber switch for this architecture"
#endif

#endif
