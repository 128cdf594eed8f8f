/*
 * Sanitizer and Valgrind hooks, and the per-architecture first frame of a
 * fiber. Every conditional on the build's instrumentation lives here so that
 * function bodies elsewhere carry no #ifdef.
 */
#ifndef WEFT__SANITIZER_H
#define WEFT__SANITIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT__ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define WEFT__TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define WEFT__ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT__TSAN 1
#endif

/* For plain `if`s in code that must differ under ThreadSanitizer. */
#ifdef WEFT__TSAN
#define WEFT__UNDER_TSAN 1
#else
#define WEFT__UNDER_TSAN 0
#endif

/*
 * What a fiber keeps for the sanitizers, and the hooks around a switch.
 * ASan keeps per-stack shadow and fake stacks: every switch is bracketed by
 * __sanitizer_start_switch_fiber (before, naming the destination stack) and
 * __sanitizer_finish_switch_fiber (after, on the destination); a fiber that
 * exits passes NULL as its fake-stack slot so ASan frees it. TSan models
 * each fiber as a logical thread; a switch is announced with
 * __tsan_switch_to_fiber. In plain builds the struct is empty (a GNU C
 * extension: size 0) and the hooks compile to nothing.
 */
struct san_fiber {
#ifdef WEFT__ASAN
    const void *stack_lo; /* lowest usable address (above the guard) */
    size_t stack_size;    /* usable bytes */
    void *asan_fake;      /* fake-stack handle across a switch */
#endif
#ifdef WEFT__TSAN
    void *tsan;           /* TSan fiber handle */
#endif
};

#ifdef WEFT__ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
static inline void san_asan_init(struct san_fiber *f, const void *lo,
                                 size_t n)
{
    f->stack_lo = lo;
    f->stack_size = n;
    f->asan_fake = NULL;
}
static inline void san_asan_start(struct san_fiber *from,
                                  const struct san_fiber *to)
{
    __sanitizer_start_switch_fiber(from ? &from->asan_fake : NULL,
                                   to->stack_lo, to->stack_size);
}
static inline void san_asan_finish(struct san_fiber *f)
{
    __sanitizer_finish_switch_fiber(f ? f->asan_fake : NULL, NULL, NULL);
}
/* A reused stack may still carry poison from its previous fiber's frames. */
static inline void san_stack_reset(void *lo, size_t n)
{
    ASAN_UNPOISON_MEMORY_REGION(lo, n);
}
#else
static inline void san_asan_init(struct san_fiber *f, const void *lo,
                                 size_t n)
{
    (void)f, (void)lo, (void)n;
}
static inline void san_asan_start(struct san_fiber *from,
                                  const struct san_fiber *to)
{
    (void)from, (void)to;
}
static inline void san_asan_finish(struct san_fiber *f) { (void)f; }
static inline void san_stack_reset(void *lo, size_t n) { (void)lo, (void)n; }
#endif

#ifdef WEFT__TSAN
#include <sanitizer/tsan_interface.h>
static inline void san_tsan_adopt_thread(struct san_fiber *f)
{
    f->tsan = __tsan_get_current_fiber();
}
static inline void san_tsan_create(struct san_fiber *f)
{
    f->tsan = __tsan_create_fiber(0);
}
__attribute__((always_inline)) static inline void
san_tsan_switch(const struct san_fiber *to)
{
    /* Inlined: an instrumented wrapper would pop the new fiber's shadow
     * stack on return. */
    __tsan_switch_to_fiber(to->tsan, 0);
}
static inline void san_tsan_destroy(struct san_fiber *f)
{
    if (f->tsan)
        __tsan_destroy_fiber(f->tsan);
    f->tsan = NULL;
}
#else
static inline void san_tsan_adopt_thread(struct san_fiber *f) { (void)f; }
static inline void san_tsan_create(struct san_fiber *f) { (void)f; }
static inline void san_tsan_switch(const struct san_fiber *to) { (void)to; }
static inline void san_tsan_destroy(struct san_fiber *f) { (void)f; }
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#include <valgrind/memcheck.h>
#define WEFT__VALGRIND 1
#endif
#endif

#ifdef WEFT__VALGRIND
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
