/*
 * Stack allocation. See stack.h for the model.
 *
 * Guards: on Linux >= 6.13 MADV_GUARD_INSTALL marks the guard pages in the
 * page tables without splitting the mapping, so a slab of 64 stacks stays one
 * VMA. Older kernels fall back to mprotect(PROT_NONE), which splits the
 * mapping at every guard; vm.max_map_count (65530 by default) then caps live
 * fibers near 32k. The probe runs once per process.
 */
#include "stack.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"
#include "mem.h"
#include "sanitizer.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define SLAB_STACKS 64

/* 0 unknown, 1 MADV_GUARD_INSTALL works, 2 use mprotect. */
static atomic_int guard_mode;

size_t weft__page_size(void)
{
    static size_t page;

    if (!page)
        page = (size_t)sysconf(_SC_PAGESIZE);
    return page;
}

size_t weft__page_round(size_t n)
{
    size_t page = weft__page_size();

    return (n + page - 1) & ~(page - 1);
}

static int install_guard(void *lo, size_t len)
{
    int mode = atomic_load_explicit(&guard_mode, memory_order_relaxed);

    if (mode != 2) {
        if (madvise(lo, len, MADV_GUARD_INSTALL) == 0) {
            atomic_store_explicit(&guard_mode, 1, memory_order_relaxed);
            return 0;
        }
        if (mode == 1 || (errno != EINVAL && errno != ENOSYS))
            return -errno;
        atomic_store_explicit(&guard_mode, 2, memory_order_relaxed);
    }
    return mprotect(lo, len, PROT_NONE) == 0 ? 0 : -errno;
}

static void *map_region(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                   -1, 0);

    if (p == MAP_FAILED)
        return NULL;
    /* A THP-backed stack would commit 2 MiB for one parked task. */
    madvise(p, len, MADV_NOHUGEPAGE);
    return p;
}

/*
 * Bytes of guard below each stack. One page could be jumped by a function
 * whose frame is larger than a page and that touches only its far end; 64
 * KiB of guard costs address space only (no memory, and no VMA with
 * MADV_GUARD_INSTALL).
 */
static size_t guard_size(void)
{
    return 16 * weft__page_size();
}

/* Lays out a stack in [base, base + span): guard, body, header. */
static struct stack *carve(void *base, size_t span, bool from_slab)
{
    struct stack *st;

    if (install_guard(base, guard_size()) < 0)
        return NULL;
    st = (struct stack *)((char *)base + span) - 1;
    st->next = NULL;
    st->lo = (char *)base + guard_size();
    st->size = (size_t)((char *)st - (char *)st->lo);
    st->from_slab = from_slab;
    st->vg_id = san_vg_stack_register(st->lo, st->size);
    return st;
}

static size_t span_of(size_t size)
{
    return guard_size() + weft__page_round(size);
}

int weft__stack_pool_init(struct weft__stack_pool *p, size_t size)
{
    *p = (struct weft__stack_pool){ .size = size };
    return -pthread_mutex_init(&p->lock, NULL);
}

void weft__stack_pool_fini(struct weft__stack_pool *p)
{
    size_t span = span_of(p->size);

    for (size_t i = 0; i < p->nslabs; i++)
        munmap(p->slabs[i], span * SLAB_STACKS);
    weft__free(p->slabs, p->cap_slabs * sizeof(void *));
    pthread_mutex_destroy(&p->lock);
}

static bool remember_slab(struct weft__stack_pool *p, void *slab)
{
    if (p->nslabs == p->cap_slabs) {
        size_t cap = p->cap_slabs ? 2 * p->cap_slabs : 16;
        void **s = weft__alloc(cap * sizeof(void *));

        if (!s)
            return false;
        for (size_t i = 0; i < p->nslabs; i++)
            s[i] = p->slabs[i];
        weft__free(p->slabs, p->cap_slabs * sizeof(void *));
        p->slabs = s;
        p->cap_slabs = cap;
    }
    p->slabs[p->nslabs++] = slab;
    return true;
}

/* Moves up to a slab's worth of released stacks from the pool into c. */
static void take_released(struct weft__stack_pool *p,
                          struct weft__stack_cache *c)
{
    pthread_mutex_lock(&p->lock);
    for (unsigned i = 0; i < SLAB_STACKS && p->free; i++) {
        struct stack *st = p->free;

        p->free = st->next;
        st->next = c->head;
        c->head = st;
        c->n++;
    }
    pthread_mutex_unlock(&p->lock);
}

/* Maps a new slab and carves it into c. The syscalls (one mmap, a guard per
 * stack) run outside the pool's lock, so workers starting many tasks at once
 * do not queue behind each other. */
static void add_slab(struct weft__stack_pool *p, struct weft__stack_cache *c)
{
    size_t span = span_of(p->size);
    char *slab = map_region(span * SLAB_STACKS);
    bool kept;

    if (!slab)
        return;
    pthread_mutex_lock(&p->lock);
    kept = remember_slab(p, slab);
    pthread_mutex_unlock(&p->lock);
    if (!kept) {
        munmap(slab, span * SLAB_STACKS);
        return;
    }
    for (unsigned i = 0; i < SLAB_STACKS; i++) {
        struct stack *st = carve(slab + i * span, span, true);

        if (!st)
            break;
        st->next = c->head;
        c->head = st;
        c->n++;
    }
}

static struct stack *get_own_mapping(size_t size)
{
    size_t span = span_of(size);
    void *base = map_region(span);
    struct stack *st;

    if (!base)
        return NULL;
    st = carve(base, span, false);
    if (!st)
        munmap(base, span);
    return st;
}

#ifdef WEFT_FAULT_HOOKS
atomic_int weft__fault_stack_alloc;
#endif

struct stack *weft__stack_get(struct weft__stack_pool *p,
                              struct weft__stack_cache *c, size_t size)
{
    struct stack *st;

    if (WEFT_FAULT(stack_alloc))
        return NULL;

    if (size && size != p->size)
        return get_own_mapping(size);
    if (unlikely(!c->head)) {
        take_released(p, c);
        if (!c->head)
            add_slab(p, c);
        if (!c->head)
            return NULL;
    }
    st = c->head;
    c->head = st->next;
    c->n--;
    san_stack_reset(st->lo, st->size);
    return st;
}

void weft__stack_put(struct weft__stack_pool *p, struct weft__stack_cache *c,
                     struct stack *st)
{
    (void)p;
    if (!st->from_slab) {
        char *base = (char *)st->lo - guard_size();
        size_t span = (size_t)((char *)(st + 1) - base);

        san_vg_stack_deregister(st->vg_id);
        munmap(base, span);
        return;
    }
    st->next = c->head;
    c->head = st;
    c->n++;
}

void weft__stack_cache_trim(struct weft__stack_pool *p,
                            struct weft__stack_cache *c, unsigned keep)
{
    struct stack *spill = NULL, *last = NULL;

    while (c->n > keep) {
        struct stack *st = c->head;

        c->head = st->next;
        c->n--;
        /* Keep the header's page: it holds the free-list link. */
        madvise(st->lo, weft__page_round(st->size) - weft__page_size(),
                MADV_DONTNEED);
        st->next = spill;
        spill = st;
        if (!last)
            last = st;
    }
    if (!spill)
        return;
    pthread_mutex_lock(&p->lock);
    last->next = p->free;
    p->free = spill;
    pthread_mutex_unlock(&p->lock);
}

bool weft__stack_is_guard(const struct stack *st, const void *addr)
{
    const char *lo = st->lo;

    return (const char *)addr < lo &&
           (const char *)addr >= lo - guard_size();
}
