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
 *
 * Giving stacks back: an idle worker moves the stacks it does not keep into
 * the pool (weft__stack_cache_release). Their pages are discarded first,
 * and only then do their bits appear in their slab's record, so no worker
 * can take a stack whose pages are still being discarded. A slab whose
 * stacks would all be pooled is unmapped instead, taken out of the table
 * under the lock first; the check counts only stacks already pooled and the
 * caller's own, so a slab is never unmapped while another worker still
 * discards one of its stacks. The pool takes the lock twice per batch of up
 * to a slab's worth of stacks and makes its syscalls outside it.
 */
#include "stack.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
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
#define ALL_STACKS UINT64_MAX /* a slab's bits when all are guarded */

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

static void *map_pages(size_t len, int flags)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | flags, -1, 0);

    if (p == MAP_FAILED)
        return NULL;
    /* A THP-backed stack would commit 2 MiB for one parked task, and a
     * huge page would have to be split to hand back a few small ones. */
    madvise(p, len, MADV_NOHUGEPAGE);
    return p;
}

void *weft__pages_map(size_t len)
{
    return map_pages(len, 0);
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

    if (WEFT__FAULT(guard_batch))
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
    st->slab = 0;
    st->slot = 0;
    st->vg_id = san_vg_stack_register(st->lo, st->size);
    return st;
}

/*
 * The usable bytes of a slab stack: twice the default size. A task that
 * joins a child not started yet may run it on its own stack (task.h,
 * "Inline joins"), but only while the room left below the join is the
 * whole stack the child was promised; the extra half gives a tree of
 * joins that room for as deep as its parents' frames fit in the first
 * half. It is address space only: pages are committed when touched.
 */
static size_t slab_stack_size(const struct weft__stack_pool *p)
{
    return 2 * p->size;
}

static size_t span_of(size_t size)
{
    return guard_size() + weft__page_round(size);
}

/* Bytes of a slab record's stacks. */
static size_t slab_len(const struct weft__stack_pool *p,
                       const struct weft__slab *s)
{
    return span_of(slab_stack_size(p)) * (unsigned)__builtin_popcountll(s->all);
}

int weft__stack_pool_init(struct weft__stack_pool *p, size_t size)
{
    *p = (struct weft__stack_pool){ .size = size };
    return -pthread_mutex_init(&p->lock, NULL);
}

void weft__stack_pool_fini(struct weft__stack_pool *p)
{
    for (unsigned i = 0; i < p->nrecords; i++)
        if (p->slabs[i].base)
            munmap(p->slabs[i].base, slab_len(p, &p->slabs[i]));
    weft__free(p->slabs, p->cap_records * sizeof(*p->slabs));
    pthread_mutex_destroy(&p->lock);
}

/* Under the lock: a record for a new slab whose stacks have the bits
 * `all`, none pooled; its index, or -ENOMEM. */
static int add_record(struct weft__stack_pool *p, char *base, uint64_t all)
{
    unsigned i;

    if (p->free_record) {
        i = p->free_record - 1;
        p->free_record = p->slabs[i].next_free;
    } else {
        if (p->nrecords == p->cap_records &&
            weft__grow_table((void **)&p->slabs, &p->cap_records,
                             sizeof(*p->slabs), 16, p->nrecords) < 0)
            return -ENOMEM;
        i = p->nrecords++;
    }
    p->slabs[i] = (struct weft__slab){ .base = base, .all = all };
    p->nslabs++;
    p->nstacks += (unsigned)__builtin_popcountll(all);
    return (int)i;
}

/* Under the lock: takes slab i out of the table (its pooled stacks with
 * it) and returns its base and length for the caller to unmap. */
static struct iovec retire_slab(struct weft__stack_pool *p, unsigned i)
{
    struct weft__slab *s = &p->slabs[i];
    struct iovec dead = { s->base, slab_len(p, s) };

    p->npooled -= (unsigned)__builtin_popcountll(s->pooled);
    p->nstacks -= (unsigned)__builtin_popcountll(s->all);
    p->nslabs--;
    *s = (struct weft__slab){ .next_free = p->free_record };
    p->free_record = i + 1;
    return dead;
}

static void cache_push(struct weft__stack_cache *c, struct stack *st)
{
    st->next = c->head;
    c->head = st;
    c->n++;
}

static struct stack *cache_pop(struct weft__stack_cache *c)
{
    struct stack *st = c->head;

    c->head = st->next;
    c->n--;
    return st;
}

/* Lays out the stacks of the slab at `base` (record i) whose bits are set
 * in `bits`, into c. */
static void carve_into(struct weft__stack_pool *p, struct weft__stack_cache *c,
                       char *base, unsigned i, uint64_t bits)
{
    size_t span = span_of(slab_stack_size(p));

    for (; bits; bits &= bits - 1) {
        unsigned slot = (unsigned)__builtin_ctzll(bits);
        struct stack *st = carve(base + slot * span, span, true);

        st->slab = i;
        st->slot = (unsigned char)slot;
        cache_push(c, st);
    }
}

/* Moves the pooled stacks of one slab into c. Their headers went with
 * their pages: they are laid out again, outside the lock (they are c's). */
static void take_pooled(struct weft__stack_pool *p,
                        struct weft__stack_cache *c)
{
    uint64_t bits = 0;
    char *base = NULL;
    unsigned i = 0;

    pthread_mutex_lock(&p->lock);
    if (p->npooled) {
        while (!p->slabs[p->cursor].pooled)
            p->cursor = (p->cursor + 1) % p->nrecords;
        i = p->cursor;
        bits = p->slabs[i].pooled;
        base = p->slabs[i].base;
        p->slabs[i].pooled = 0;
        p->npooled -= (unsigned)__builtin_popcountll(bits);
    }
    pthread_mutex_unlock(&p->lock);
    carve_into(p, c, base, i, bits);
}

/* Maps a new slab and carves it into c. The syscalls (the mmap, the guards)
 * run outside the pool's lock, so workers starting many tasks at once do not
 * queue behind each other. */
static void add_slab(struct weft__stack_pool *p, struct weft__stack_cache *c)
{
    size_t span = span_of(slab_stack_size(p));
    char *slab = map_pages(span * SLAB_STACKS, MAP_STACK);
    unsigned guarded;
    uint64_t all;
    int i;

    if (!slab)
        return;
    guarded = guard_slab(slab, span, SLAB_STACKS);
    if (guarded < SLAB_STACKS)
        munmap(slab + guarded * span, (SLAB_STACKS - guarded) * span);
    if (!guarded)
        return;
    all = guarded == SLAB_STACKS ? ALL_STACKS : (UINT64_C(1) << guarded) - 1;
    pthread_mutex_lock(&p->lock);
    i = add_record(p, slab, all);
    pthread_mutex_unlock(&p->lock);
    if (i < 0) {
        munmap(slab, guarded * span);
        return;
    }
    carve_into(p, c, slab, (unsigned)i, all);
}

static struct stack *get_own_mapping(size_t size)
{
    size_t span = span_of(size);
    void *base = map_pages(span, MAP_STACK);

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

    if (WEFT__FAULT(stack_alloc))
        return NULL;

    if (size && size != p->size)
        return get_own_mapping(size);
    if (unlikely(!c->head)) {
        take_pooled(p, c);
        if (!c->head)
            add_slab(p, c);
        if (!c->head)
            return NULL;
    }
    st = cache_pop(c);
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
 * Discards the pages of the ranges in iov. Where guards go in by the batch,
 * so can this: process_madvise() on the caller works.
 */
void weft__pages_discard(const struct iovec *iov, unsigned n)
{
    if (n && atomic_load_explicit(&guard_mode, memory_order_relaxed) ==
                 GUARD_BATCH &&
        advise_ranges(iov, n, MADV_DONTNEED) == 0)
        return;
    for (unsigned i = 0; i < n; i++)
        madvise(iov[i].iov_base, iov[i].iov_len, MADV_DONTNEED);
}

void weft__pages_populate(void *p, size_t n)
{
    madvise(p, n, MADV_POPULATE_WRITE);
}

/* The stacks of one slab in a batch being pooled: batch[from, to). */
struct run {
    unsigned slab, from, to;
    uint64_t bits;
};

/* Sorts batch by slab (insertion sort: at most a slab's worth) and cuts it
 * into runs; returns how many. */
static unsigned group_by_slab(struct stack **batch, unsigned n,
                              struct run *runs)
{
    unsigned nruns = 0;

    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j && batch[j - 1]->slab > batch[j]->slab; j--) {
            struct stack *t = batch[j];

            batch[j] = batch[j - 1];
            batch[j - 1] = t;
        }
    for (unsigned i = 0; i < n; i++) {
        if (!nruns || runs[nruns - 1].slab != batch[i]->slab)
            runs[nruns++] = (struct run){ batch[i]->slab, i, i, 0 };
        runs[nruns - 1].bits |= UINT64_C(1) << batch[i]->slot;
        runs[nruns - 1].to = i + 1;
    }
    return nruns;
}

/*
 * Moves the n stacks of batch (the caller's, out of its cache) to the pool;
 * see the top of the file for the order of steps. A run of stacks that
 * completes its slab unmaps the slab without discarding anything.
 */
static void pool_batch(struct weft__stack_pool *p, struct stack **batch,
                       unsigned n)
{
    struct run runs[SLAB_STACKS];
    struct iovec body[SLAB_STACKS], dead[SLAB_STACKS];
    unsigned nruns, nbody = 0, ndead = 0;

    for (unsigned i = 0; i < n; i++)
        san_vg_stack_deregister(batch[i]->vg_id);
    nruns = group_by_slab(batch, n, runs);
    pthread_mutex_lock(&p->lock);
    for (unsigned r = 0; r < nruns; r++) {
        struct weft__slab *s = &p->slabs[runs[r].slab];

        if ((s->pooled | runs[r].bits) == s->all) {
            dead[ndead++] = retire_slab(p, runs[r].slab);
            runs[r].bits = 0;
        }
    }
    pthread_mutex_unlock(&p->lock);
    for (unsigned r = 0; r < nruns; r++)
        for (unsigned i = runs[r].from; runs[r].bits && i < runs[r].to; i++)
            body[nbody++] = (struct iovec){
                batch[i]->lo, (size_t)((char *)(batch[i] + 1) -
                                       (char *)batch[i]->lo)
            };
    weft__pages_discard(body, nbody);
    pthread_mutex_lock(&p->lock);
    for (unsigned r = 0; r < nruns; r++) {
        struct weft__slab *s = &p->slabs[runs[r].slab];

        if (!runs[r].bits)
            continue;
        s->pooled |= runs[r].bits;
        p->npooled += (unsigned)__builtin_popcountll(runs[r].bits);
        /* Another worker pooled the rest meanwhile. */
        if (s->pooled == s->all)
            dead[ndead++] = retire_slab(p, runs[r].slab);
    }
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < ndead; i++)
        munmap(dead[i].iov_base, dead[i].iov_len);
}

void weft__stack_cache_shrink(struct weft__stack_cache *c, size_t resident)
{
    struct iovec deep[SLAB_STACKS];
    size_t keep = weft__page_round(resident);
    unsigned n = 0;

    for (struct stack *st = c->head; st; st = st->next) {
        char *top = (char *)(st + 1); /* the end of its span: page-aligned */

        if ((size_t)(top - (char *)st->lo) <= keep)
            continue;
        deep[n++] = (struct iovec){ st->lo,
                                    (size_t)(top - keep - (char *)st->lo) };
        if (n == SLAB_STACKS) {
            weft__pages_discard(deep, n);
            n = 0;
        }
    }
    weft__pages_discard(deep, n);
}

void weft__stack_cache_release(struct weft__stack_pool *p,
                               struct weft__stack_cache *c, unsigned keep)
{
    struct stack *batch[SLAB_STACKS];

    while (c->n > keep) {
        unsigned n = 0;

        while (n < SLAB_STACKS && c->n > keep)
            batch[n++] = cache_pop(c);
        pool_batch(p, batch, n);
    }
}

void weft__stack_pool_stats(struct weft__stack_pool *p,
                            struct weft__stack_stats *s)
{
    pthread_mutex_lock(&p->lock);
    *s = (struct weft__stack_stats){ p->nslabs, p->nstacks, p->npooled, 0 };
    for (unsigned i = 0; i < p->nrecords; i++)
        if (p->slabs[i].base && p->slabs[i].pooled == p->slabs[i].all)
            s->full_slabs++;
    pthread_mutex_unlock(&p->lock);
}

bool weft__stack_is_guard(const struct stack *st, const void *addr)
{
    const char *lo = st->lo;

    return (const char *)addr < lo &&
           (const char *)addr >= lo - guard_size();
}
