/* Per-fd slots; see fdtable.h. */
#include "fdtable.h"

#include "mem.h"

weft__fd_slot_t *weft__fdtable_slot(struct weft__fdtable *t, int fd,
                                    bool create)
{
    _Atomic(weft__fd_slot_t *) *dir;
    weft__fd_slot_t *page, *fresh;

    if ((unsigned)fd >= WEFT__FDTABLE_FDS)
        return NULL;
    dir = &t->dir[fd / WEFT__FDTABLE_PAGE];
    /* acquire: pairs with the release CAS below (the page's zeroes). */
    page = atomic_load_explicit(dir, memory_order_acquire);
    if (page || !create)
        return page ? &page[fd % WEFT__FDTABLE_PAGE] : NULL;
    fresh = weft__zalloc(WEFT__FDTABLE_PAGE * sizeof(*fresh));
    if (!fresh)
        return NULL;
    if (!atomic_compare_exchange_strong_explicit(
            dir, &page, fresh, memory_order_acq_rel, memory_order_acquire)) {
        weft__free(fresh, WEFT__FDTABLE_PAGE * sizeof(*fresh));
        return &page[fd % WEFT__FDTABLE_PAGE];
    }
    return &fresh[fd % WEFT__FDTABLE_PAGE];
}
