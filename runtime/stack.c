/*
 * Stack allocation. See stack.h for the model.
 *
 * Guards: on Linux >= 6.13 MADV_GUARD_INSTALL marks the guard pages in the
 * page tables without splitting the mapping, so a slab of 64 stacks stays one
 * VMA. A new slab gets all its guards from one process_madvise() call, much
 * cheaper than a madvise() per stack. It names the calling thread with
 * PIDFD_SELF_THREAD (Linux >= 6.15) rather than a pidfd: no syscall to open
 * one per slab, and no descriptor held for the runtime's life, which a fork
 * would also hand to the child still naming the parent. Older kernels fall
 * back to one madvise() per stack, then to mprotect(PROT_NONE), which splits
 * the mapping at every guard; vm.max_map_count (65530 by default) then caps
 * live fibers near 32k. The first install that fails for want of support
 * moves the process to the next way down, for good.
 */
#include "stack.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common.h"
#include "mem.h"
#include "sanitizer.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef PIDFD_SELF_THREAD
#define PIDFD_SELF_THREAD -10000
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif

#define SLAB_STACKS 64

/* How guards are installed, best first. Only ever moves down. */
enum guard_mode {
    GUARD_BATCH,    /* one process_madvise() per slab */
    GUARD_MADVISE,  /* one madvise() per stack */
    GUARD_MPROTECT, /* one mprotect() per stack, splitting the mapping */
};

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

/* Errors that mean the kernel (or a seccomp filter) lacks a way to guard. */
static bool is_unsupported(int err)
{
    return err == EINVAL || err == ENOSYS || err == EBADF || err == EPERM;
}

/* Moves below `from`, the way that failed, unless the mode is lower already
 * (a single stack tries madvise() while slabs would still batch). */
static void give_up(int from)
{
    int mode = atomic_load_explicit(&guard_mode, memory_order_relaxed);

    while (mode <= from && !atomic_compare_exchange_weak_explicit(
                               &guard_mode, &mode, from + 1,
                               memory_order_relaxed, memory_order_relaxed))
        ;
}

/* Guards the stack whose lowest byte is base. */
static int guard_one(void *base)
{
    if (atomic_load_explicit(&guard_mode, memory_order_relaxed) !=
        GUARD_MPROTECT) {
        if (madvise(base, guard_size(), MADV_GUARD_INSTALL) == 0)
            return 0;
        if (!is_unsupported(errno))
            return -errno;
        give_up(GUARD_MADVISE);
    }
    return mprotect(base, guard_size(), PROT_NONE) == 0 ? 0 : -errno;
}

/* Advises every range in iov with one call; 0 if all of them took it. */
static int advise_ranges(const struct iovec *iov, unsigned n, int advice)
{
    size_t total = 0;
    long ret;

    for (unsigned i = 0; i < n; i++)
        total += iov[i].iov_len;
    ret = syscall(SYS_process_madvise, PIDFD_SELF_THREAD, iov, n, advice, 0);
    if (ret < 0)
        return -errno;
    /* Short: the caller redoes them one by one; advising twice is
     * harmless. */
    return (size_t)ret == total ? 0 : -EAGAIN;
}

/* Guards the n stacks of a slab with one call. */
static int guard_batch(char *slab, size_t span, unsigned n)
{
    struct iovec iov[SLAB_STACKS];

    if (WEFT_FAULT(guard_batch))
        return -ENOSYS;
    for (unsigned i = 0; i < n; i++)
        iov[i] = (struct iovec){ slab + i * span, guard_size() };
    return advise_ranges(iov, n, MADV_GUARD_INSTALL);
}

/* Guards the stacks of a slab; returns how many, from the first, have one. */
static unsigned guard_slab(char *slab, size_t span, unsigned n)
{
    unsigned i;

    if (atomic_load_explicit(&guard_mode, memory_order_relaxed) ==
        GUARD_BATCH) {
        int ret = guard_batch(slab, span, n);

        if (ret == 0)
            return n;
        if (is_unsupported(-ret))
            give_up(GUARD_BATCH);
    }
    for (i = 0; i < n; i++)
        if (guard_one(slab + i * span) < 0)
            break;
    return i;
}

/* Lays out a guarded stack in [base, base + span): guard, body, header. */
static struct stack *carve(void *base, size_t span, bool from_slab)
{
    struct stack *st;

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

static void cache_push(struct weft__stack_cache *c, struct stack *st)
{
    st->next = c->head;
    c->head = st;
    c->n++;
}

/* Moves up to a slab's worth of released stacks from the pool into c. */
static void take_released(struct weft__stack_pool *p,
                          struct weft__stack_cache *c)
{
    pthread_mutex_lock(&p->lock);
    for (unsigned i = 0; i < SLAB_STACKS && p->free; i++) {
        struct stack *st = p->free;

        p->free = st->next;
        cache_push(c, st);
    }
    pthread_mutex_unlock(&p->lock);
}

/* Maps a new slab and carves it into c. The syscalls (the mmap, the guards)
 * run outside the pool's lock, so workers starting many tasks at once do not
 * queue behind each other. */
static void add_slab(struct weft__stack_pool *p, struct weft__stack_cache *c)
{
    size_t span = span_of(p->size);
    char *slab = map_region(span * SLAB_STACKS);
    unsigned guarded;
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
    guarded = guard_slab(slab, span, SLAB_STACKS);
    for (unsigned i = 0; i < guarded; i++) {
        cache_push(c, carve(slab + i * span, span, true));
    }
}

static struct stack *get_own_mapping(size_t size)
{
    size_t span = span_of(size);
    void *base = map_region(span);

    if (!base)
        return NULL;
    if (guard_one(base) < 0) {
        munmap(base, span);
        return NULL;
    }
    return carve(base, span, false);
}

#ifdef WEFT_FAULT_HOOKS
atomic_int weft__fault_stack_alloc;
atomic_int weft__fault_guard_batch;
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
    cache_push(c, st);
}

/*
 * Returns the pages of the stacks' bodies in iov to the kernel. Where guards
 * go in by the batch, so can this: process_madvise() on the caller works.
 */
static void discard(const struct iovec *iov, unsigned n)
{
    if (atomic_load_explicit(&guard_mode, memory_order_relaxed) ==
            GUARD_BATCH &&
        advise_ranges(iov, n, MADV_DONTNEED) == 0)
        return;
    for (unsigned i = 0; i < n; i++)
        madvise(iov[i].iov_base, iov[i].iov_len, MADV_DONTNEED);
}

void weft__stack_cache_trim(struct weft__stack_pool *p,
                            struct weft__stack_cache *c, unsigned keep)
{
    struct stack *spill = NULL, *last = NULL;
    struct iovec body[SLAB_STACKS];
    unsigned n = 0;

    while (c->n > keep) {
        struct stack *st = c->head;

        c->head = st->next;
        c->n--;
        /* Keep the header's page: it holds the free-list link. */
        body[n++] = (struct iovec){
            st->lo, weft__page_round(st->size) - weft__page_size()
        };
        if (n == SLAB_STACKS) {
            discard(body, n);
            n = 0;
        }
        st->next = spill;
        spill = st;
        if (!last)
            last = st;
    }
    if (n)
        discard(body, n);
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
