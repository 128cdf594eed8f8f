/*
 * Allocation for the runtime's own objects. jemalloc backs them in normal
 * builds; sanitizer builds use the libc allocator the sanitizer intercepts
 * (the two cannot both own malloc). Any thread may call these.
 */
#ifndef WEFT__MEM_H
#define WEFT__MEM_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(WEFT_USE_JEMALLOC)
#include <jemalloc/jemalloc.h>
static inline void *weft__alloc(size_t n) { return mallocx(n, 0); }
static inline void *weft__zalloc(size_t n) { return mallocx(n, MALLOCX_ZERO); }
static inline void weft__free(void *p, size_t n)
{
    if (p)
        sdallocx(p, n, 0);
}

#define WEFT__STR_(x) #x
#define WEFT__STR(x) WEFT__STR_(x)

/*
 * Hands the allocator's free pages back to the kernel now. jemalloc returns
 * them only as its decay (10 s by default) runs, and that runs inside
 * allocator calls, which an idle runtime does not make. The calling
 * thread's cache goes first, so that its objects are free to purge.
 */
static inline void weft__mem_purge(void)
{
    mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
    mallctl("arena." WEFT__STR(MALLCTL_ARENAS_ALL) ".purge", NULL, NULL, NULL,
            0);
}
#else
static inline void *weft__alloc(size_t n) { return malloc(n); }
static inline void *weft__zalloc(size_t n) { return calloc(1, n); }
static inline void weft__free(void *p, size_t n)
{
    (void)n;
    free(p);
}

/* The libc allocator (sanitizer builds) is left to its own devices. */
static inline void weft__mem_purge(void) {}
#endif

/*
 * Grows the zero-filled array *arr of *len elements of elem bytes (starting
 * at first, doubling) until index fits, keeping its contents: the tables the
 * I/O backends index by fd. 0, or -ENOMEM with the array unchanged (also
 * when the length would pass UINT32_MAX or the size overflow). The length
 * doubles in 64 bits: in 32 it wraps to 0 for an index past 2^31 and the
 * loop never ends.
 */
static inline int weft__grow_table(void **arr, uint32_t *len, size_t elem,
                                   uint32_t first, uint32_t index)
{
    uint64_t n = *len ? *len : first;
    void *a;

    if (!n)
        n = 1;
    while (n <= index)
        n *= 2;
    if (n > UINT32_MAX || n > SIZE_MAX / elem)
        return -ENOMEM;
    a = weft__zalloc((size_t)n * elem);
    if (!a)
        return -ENOMEM;
    if (*arr)
        memcpy(a, *arr, *len * elem);
    weft__free(*arr, *len * elem);
    *arr = a;
    *len = (uint32_t)n;
    return 0;
}

#endif
