/*
 * Fiber stacks: mmap'd, lazily committed, never THP-backed, each with a
 * guard of 16 pages (64 KiB of address space with 4 KiB pages) below it.
 * Default-size stacks are carved from slabs (one mmap for many stacks) so
 * that starting 100k tasks costs a few hundred syscalls, not hundreds of
 * thousands; they are recycled through per-worker caches and a shared pool.
 * Stacks of any other size are mapped one by one. A slab stack has twice
 * the default size of address space, room for joins that run their
 * children inline (stack.c, slab_stack_size).
 *
 * A struct stack sits at the top of its own stack; the fiber uses what lies
 * below it. A stack in a worker's cache keeps its pages; one in the shared
 * pool has had all of them discarded, its header too (the pool knows it by
 * a bit of its slab's record), and a slab all of whose stacks are pooled is
 * unmapped. So idle stacks cost no memory beyond the workers' caches.
 */
#ifndef WEFT__STACK_H
#define WEFT__STACK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct stack {
    struct stack *next;  /* worker cache free list */
    void *lo;            /* lowest usable byte; the guard is just below */
    size_t size;         /* usable bytes, header excluded */
    unsigned vg_id;      /* Valgrind stack registration */
    unsigned slab;       /* its slab's record in the pool's table */
    unsigned char slot;  /* its place in the slab */
    bool from_slab;      /* false: its own mapping, unmapped on release */
};

/* The pool's record of one slab. */
struct weft__slab {
    char *base;          /* NULL: a free record */
    uint64_t pooled;     /* bit i: stack i is in the pool */
    uint64_t all;        /* the bits of the slab's stacks */
    unsigned next_free;  /* free records: the next one + 1 (0: none) */
};

/* Shared by all workers of a runtime; every field under `lock`. */
struct weft__stack_pool {
    pthread_mutex_t lock;
    size_t size;              /* the default stack size (WEFT_STACK_SIZE) */
    struct weft__slab *slabs; /* indexed by struct stack.slab */
    uint32_t nrecords, cap_records;
    unsigned free_record;     /* first free record + 1 (0: none) */
    unsigned cursor;          /* where the search for pooled stacks resumes */
    unsigned nslabs;          /* slabs mapped */
    unsigned nstacks;         /* stacks in them */
    unsigned npooled;         /* of which in the pool */
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

/* Idle time: keeps `keep` of c's stacks and moves the rest to the pool,
 * discarding their pages and unmapping slabs all of whose stacks are then
 * pooled. */
void weft__stack_cache_release(struct weft__stack_pool *p,
                               struct weft__stack_cache *c, unsigned keep);

/* Idle time: discards the pages of c's stacks below their top `resident`
 * bytes. */
void weft__stack_cache_shrink(struct weft__stack_cache *c, size_t resident);

/* A snapshot of what the pool holds (tests, benches); any thread. */
struct weft__stack_stats {
    unsigned slabs;      /* slabs mapped */
    unsigned stacks;     /* stacks in them */
    unsigned pooled;     /* of which in the pool: the rest are cached or in
                            use */
    unsigned full_slabs; /* mapped slabs all of whose stacks are pooled */
};
void weft__stack_pool_stats(struct weft__stack_pool *p,
                            struct weft__stack_stats *s);

/* True if addr lies in the guard below st. */
bool weft__stack_is_guard(const struct stack *st, const void *addr);

/* The page size, and `n` rounded up to whole pages. */
size_t weft__page_size(void);
size_t weft__page_round(size_t n);

/* n bytes of fresh, lazily committed memory that no transparent huge page
 * backs; NULL on ENOMEM. */
void *weft__pages_map(size_t n);

/* Returns the pages of the n page-aligned ranges in iov to the kernel (they
 * read as zeros afterwards), in as few syscalls as the kernel allows. */
void weft__pages_discard(const struct iovec *iov, unsigned n);

/* Faults in the n bytes of fresh pages at p, about to be written, in one
 * syscall instead of a fault each (Linux 5.14; elsewhere they fault in as
 * they are written, as without the call). */
void weft__pages_populate(void *p, size_t n);

#endif
