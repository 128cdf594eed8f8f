/*
 * Task-local values.
 *
 * Keys. A process-wide table of WEFT_LOCAL_KEYS_MAX slots, as pthread keys
 * are: a key may be made before any runtime exists and used in all of
 * them. A key value is its slot in the low SLOT_BITS bits and the slot's
 * generation above them, bumped by every create, so that a deleted key is
 * refused instead of naming the key that took its slot over (a 25-bit
 * generation: a deleted key passes again only after 2^25 creates in its
 * slot). Generations start at 1, so 0 (a zeroed weft_local_key_t) is never
 * a key. Create and delete take keys_lock; get, set and a task's end only
 * load a slot's atomics.
 *
 * Values. A task's table (struct weft__locals) is indexed by slot and grows
 * to the highest slot the task sets; each entry keeps the key it was set
 * under, so that a value set under a deleted key is not seen under the key
 * that reuses its slot. Only the task touches its table, from whichever
 * worker runs it (the hand-off through a run queue orders one worker's
 * accesses before the next one's), and its spawner before the task is
 * runnable: plain loads and stores, no lock.
 *
 * A delete racing a task's end: the end reads a slot's hooks between two
 * loads of its key (a seqlock read), so it never calls the destructor of a
 * key that reused the slot with a value of the deleted one. A destructor
 * already called may still be running when delete returns; as with
 * pthread_key_delete, a key is deleted once nothing uses it.
 */
#include "local.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "common.h"
#include "mem.h"
#include "task.h"

#define SLOT_BITS 7
#define SLOT_MASK ((uint32_t)WEFT_LOCAL_KEYS_MAX - 1)
#define GEN_MAX (UINT32_MAX >> SLOT_BITS)
#define TABLE_MIN 4u /* entries of a task's first table */

_Static_assert(WEFT_LOCAL_KEYS_MAX == 1u << SLOT_BITS,
               "a key's slot takes SLOT_BITS bits");

struct key_slot {
    /* Any thread, atomic; written under keys_lock. */
    _Atomic uint32_t key;             /* the key living here, 0 if none */
    _Atomic(weft_local_dtor_t) dtor;  /* its hooks, read between two */
    _Atomic(weft_local_copy_t) copy;  /* loads of key (hooks_of) */
    /* Under keys_lock. */
    uint32_t gen;                     /* of the last key made here */
};

static struct key_slot slots[WEFT_LOCAL_KEYS_MAX];
static pthread_mutex_t keys_lock = PTHREAD_MUTEX_INITIALIZER;

static uint32_t slot_of(weft_local_key_t key)
{
    return key & SLOT_MASK;
}

/* Whether key is a key that exists now. Relaxed: get and set read no
 * other field of the slot. */
static bool is_live(weft_local_key_t key)
{
    return key > SLOT_MASK &&
           atomic_load_explicit(&slots[slot_of(key)].key,
                                memory_order_relaxed) == key;
}

/* The hooks of key in *dtor and *copy, or NULLs if key is deleted. */
static void hooks_of(weft_local_key_t key, weft_local_dtor_t *dtor,
                     weft_local_copy_t *copy)
{
    struct key_slot *s = &slots[slot_of(key)];
    weft_local_dtor_t d;
    weft_local_copy_t c;

    *dtor = NULL;
    *copy = NULL;
    /* acquire: pairs with the release store of the key in create, so the
     * hooks read next are this key's or a later key's. */
    if (atomic_load_explicit(&s->key, memory_order_acquire) != key)
        return;
    d = atomic_load_explicit(&s->dtor, memory_order_relaxed);
    c = atomic_load_explicit(&s->copy, memory_order_relaxed);
    /* Pairs with the release fence in create: hooks written by a later
     * create (after the delete's store of 0) make the reload miss. */
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&s->key, memory_order_relaxed) != key)
        return;
    *dtor = d;
    *copy = c;
}

static weft_local_copy_t copy_of(weft_local_key_t key)
{
    weft_local_dtor_t d;
    weft_local_copy_t c;

    hooks_of(key, &d, &c);
    return c;
}

int weft_local_key_create(weft_local_key_t *key, weft_local_dtor_t dtor,
                          weft_local_copy_t inherit)
{
    struct key_slot *s = NULL;
    uint32_t k;

    if (!key)
        return -EINVAL;
    pthread_mutex_lock(&keys_lock);
    /* The lowest free slot: tasks' tables stay as short as can be. */
    for (uint32_t i = 0; i < WEFT_LOCAL_KEYS_MAX && !s; i++)
        if (!atomic_load_explicit(&slots[i].key, memory_order_relaxed))
            s = &slots[i];
    if (!s) {
        pthread_mutex_unlock(&keys_lock);
        return -EAGAIN;
    }
    s->gen = s->gen == GEN_MAX ? 1 : s->gen + 1;
    k = s->gen << SLOT_BITS | (uint32_t)(s - slots);
    /* release: pairs with the acquire fence in hooks_of(). */
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&s->dtor, dtor, memory_order_relaxed);
    atomic_store_explicit(&s->copy, inherit, memory_order_relaxed);
    /* release: pairs with the acquire load in hooks_of(). */
    atomic_store_explicit(&s->key, k, memory_order_release);
    pthread_mutex_unlock(&keys_lock);
    *key = k;
    return 0;
}

int weft_local_key_delete(weft_local_key_t key)
{
    int ret = -EINVAL;

    pthread_mutex_lock(&keys_lock);
    if (is_live(key)) {
        atomic_store_explicit(&slots[slot_of(key)].key, 0,
                              memory_order_relaxed);
        ret = 0;
    }
    pthread_mutex_unlock(&keys_lock);
    return ret;
}

/* ---- a task's table ------------------------------------------------------ */

static size_t table_bytes(uint32_t cap)
{
    return sizeof(struct weft__locals) +
           cap * sizeof(struct weft__local_entry);
}

/* The capacity of a table that holds slot i. */
static uint32_t cap_for(uint32_t i)
{
    uint32_t cap = TABLE_MIN;

    while (cap <= i)
        cap *= 2;
    return cap;
}

/* A table of cap entries, empty or holding old's; NULL on ENOMEM. */
static struct weft__locals *table_new(uint32_t cap,
                                      const struct weft__locals *old)
{
    struct weft__locals *l = weft__zalloc(table_bytes(cap));

    if (!l)
        return NULL;
    l->cap = cap;
    for (uint32_t i = 0; old && i < old->cap; i++)
        l->e[i] = old->e[i];
    return l;
}

/* t's entry for slot i, its table grown to hold it; NULL on ENOMEM. */
static struct weft__local_entry *entry_for(struct weft_task *t, uint32_t i)
{
    struct weft__locals *l = t->locals, *n;

    if (likely(l && i < l->cap))
        return &l->e[i];
    n = table_new(cap_for(i), l);
    if (!n)
        return NULL;
    if (l)
        weft__free(l, table_bytes(l->cap));
    t->locals = n;
    return &n->e[i];
}

int weft_local_get(weft_local_key_t key, void **value)
{
    struct weft_task *t = weft__task_current();
    const struct weft__locals *l;
    uint32_t i = slot_of(key);

    if (!t)
        return -EPERM;
    if (!value || !is_live(key))
        return -EINVAL;
    l = t->locals;
    *value = l && i < l->cap && l->e[i].key == key ? l->e[i].value : NULL;
    return 0;
}

int weft_local_set(weft_local_key_t key, void *value)
{
    struct weft_task *t = weft__task_current();
    struct weft__local_entry *e;
    uint32_t i = slot_of(key);

    if (!t)
        return -EPERM;
    if (!is_live(key))
        return -EINVAL;
    /* Clearing a value the task never had takes no table. */
    if (!value && (!t->locals || i >= t->locals->cap))
        return 0;
    e = entry_for(t, i);
    if (!e)
        return -ENOMEM;
    e->key = key;
    e->value = value;
    return 0;
}

/* ---- spawn and end ------------------------------------------------------- */

int weft__local_inherit(struct weft_task *child, struct weft_task *parent)
{
    const struct weft__locals *l = parent->locals;
    struct weft__locals *c;
    uint32_t top = 0;

    for (uint32_t i = 0; i < l->cap; i++)
        if (l->e[i].value && copy_of(l->e[i].key))
            top = i + 1;
    if (!top)
        return 0;
    c = table_new(cap_for(top - 1), NULL);
    if (!c)
        return -ENOMEM;
    /* A copy function may set values of the parent (and so move its
     * table): the entry is read afresh for each slot, before the call. */
    for (uint32_t i = 0; i < top && i < parent->locals->cap; i++) {
        const struct weft__local_entry *e = &parent->locals->e[i];
        weft_local_copy_t copy = copy_of(e->key);
        uint32_t key = e->key;
        void *value = e->value;

        if (value && copy) {
            c->e[i].key = key;
            c->e[i].value = copy(value);
        }
    }
    child->locals = c;
    return 0;
}

/* One round of t's destructors; whether any ran (it may have set values
 * anew). Each value is cleared before its destructor sees it, as pthread
 * keys do: weft_local_get returns NULL for it from then on. */
static bool destroy_round(struct weft_task *t)
{
    bool ran = false;

    /* t->locals is read afresh: a destructor may grow the table. */
    for (uint32_t i = 0; i < t->locals->cap; i++) {
        struct weft__local_entry *e = &t->locals->e[i];
        void *value = e->value;
        weft_local_dtor_t dtor;
        weft_local_copy_t copy;

        if (!value)
            continue;
        e->value = NULL;
        hooks_of(e->key, &dtor, &copy);
        if (dtor) {
            dtor(value);
            ran = true;
        }
    }
    return ran;
}

void weft__local_end(struct weft_task *t)
{
    for (unsigned round = 0; round < WEFT_LOCAL_DESTRUCTOR_ROUNDS; round++)
        if (!destroy_round(t))
            break;
    weft__free(t->locals, table_bytes(t->locals->cap));
    t->locals = NULL;
}
