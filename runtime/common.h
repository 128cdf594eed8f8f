/*
 * Small shared macros for runtime/ and io/: nothing here owns state.
 */
#ifndef WEFT__COMMON_H
#define WEFT__COMMON_H

#include <stddef.h>
#include <stdint.h>

#define container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define WEFT__CACHELINE 64
#define WEFT__ALIGNED __attribute__((aligned(WEFT__CACHELINE)))

#define WEFT__INTERNAL __attribute__((visibility("hidden")))

/* Reports corrupted internal state (a weft bug, not a caller mistake). */
_Noreturn void weft__panic(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#define WEFT__ASSERT(cond)                                                     \
    do {                                                                      \
        if (unlikely(!(cond)))                                                \
            weft__panic("%s: assertion '%s' failed (%s:%d)", __func__, #cond, \
                        __FILE__, __LINE__);                                  \
    } while (0)

/*
 * Preconditions of the protocol points (task park, settle, steal, I/O
 * completion): checked in Debug and test builds (WEFT__CHECKS), where a
 * broken one panics at the point that broke it rather than as a hang or a
 * corrupted queue later; compiled away, cond unevaluated, in release
 * builds, whose hot paths they would otherwise tax.
 */
#ifdef WEFT__CHECKS
#define WEFT__CHECK(cond) WEFT__ASSERT(cond)
#else
#define WEFT__CHECK(cond) ((void)sizeof(!(cond)))
#endif

/*
 * Fault hooks for error paths too rare to reach otherwise (ENOMEM): test
 * builds (WEFT_FAULT_HOOKS) let a test make the named site fail; other
 * builds compile the check away.
 */
#ifdef WEFT_FAULT_HOOKS
#include <stdatomic.h>
extern atomic_int weft__fault_stack_alloc;
extern atomic_int weft__fault_guard_batch;
extern atomic_int weft__fault_thread_create;
#define WEFT__FAULT(name) \
    unlikely(atomic_load_explicit(&weft__fault_##name, memory_order_relaxed))
/* For a countdown hook: true at the n-th check once the test stored n. */
#define WEFT__FAULT_NTH(name) \
    (WEFT__FAULT(name) && atomic_fetch_sub(&weft__fault_##name, 1) == 1)
#else
#define WEFT__FAULT(name) 0
#define WEFT__FAULT_NTH(name) 0
#endif

#define WEFT__NS_PER_MS INT64_C(1000000)
#define WEFT__NS_PER_SEC INT64_C(1000000000)

/* The caller's return address: where a suspended task waits (dumps). Used
 * in the public call itself, so that it names the caller's code. */
#define WEFT__WHERE __builtin_return_address(0)

/* CLOCK_MONOTONIC in nanoseconds (vDSO, no syscall). */
int64_t weft__now(void);

#endif
