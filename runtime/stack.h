/*
 * Fiber stacks: mmap'd, lazily committed, never THP-backed, each with a
 * guard of 16 pages (64 KiB of address space with 4 KiB pages) below it.
 * Default-size stacks are carved from slabs (one mmap for many stacks) so
 * that starting 100k tasks costs a few hundred syscalls, not hundreds of
 * thousands; they are recycled through per-worker caches and a shared pool.
 * Stacks of any other size are mapped one by one.
 *
 * A struct stack sits at the top of its own stack; the fiber uses what lies
 * below it.
 */
#ifndef WEFT_STACK_H
#define WEFT_STACK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct stack {
    struct stack *next; /* cache or pool free list */
    void *lo;           /* lowest usable byte; the guard is just below */
    size_t size;        /* usable bytes, header excluded */
    unsigned vg_id;     /* Valgrind stack registration */
    bool from_slab;     /* false: its own mapping, unmapped on release */
};

/* Shared by all workers of a runtime; every field under `lock`. */
struct weft__stack_pool {
    pthread_mutex_t lock;
    size_t size;          /* the default stack size (WEFT_STACK_SIZE) */
    void **slabs;         /* every slab, unmapped at fini */
    size_t nslabs, cap_slabs;
    struct stack *free;   /* released by trimmed worker caches */
};

/* Owner worker only. */
struct weft__stack_cache {
    struct stack *head;
    unsigned n;
};

int weft__stack_pool_init(struct weft__stack_pool *p, size_t size);
void weft__stack_pool_fini(struct weft__stack_pool *p);

/* A stack of `size` bytes (0: the pool's default); NULL on ENOMEM. */
struct stack *weft__stack_get(struct weft__stack_pool *p,
                              struct weft__stack_cache *c, size_t size);
void weft__stack_put(struct weft__stack_pool *p, struct weft__stack_cache *c,
                     struct stack *st);

/* Returns all but `keep` cached stacks' pages to the kernel (idle time). */
void weft__stack_cache_trim(struct weft__stack_pool *p,
                            struct weft__stack_cache *c, unsigned keep);

/* True if addr lies in the guard below st. */
bool weft__stack_is_guard(const struct stack *st, const void *addr);

/* The page size, and `n` rounded up to whole pages. */
size_t weft__page_size(void);
size_t weft__page_round(size_t n);

#endif
