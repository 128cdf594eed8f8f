/*
 * Allocation for the runtime's own objects. jemalloc backs them in normal
 * builds; sanitizer builds use the libc allocator the sanitizer intercepts
 * (the two cannot both own malloc). Any thread may call these.
 */
#ifndef WEFT_MEM_H
#define WEFT_MEM_H

#include <stddef.h>
#include <stdlib.h>

#if defined(WEFT_USE_JEMALLOC)
#include <jemalloc/jemalloc.h>
static inline void *weft__alloc(size_t n) { return mallocx(n, 0); }
static inline void *weft__zalloc(size_t n) { return mallocx(n, MALLOCX_ZERO); }
static inline void weft__free(void *p, size_t n)
{
    if (p)
        sdallocx(p, n, 0);
}
#else
static inline void *weft__alloc(size_t n) { return malloc(n); }
static inline void *weft__zalloc(size_t n) { return calloc(1, n); }
static inline void weft__free(void *p, size_t n)
{
    (void)n;
    free(p);
}
#endif

#endif
