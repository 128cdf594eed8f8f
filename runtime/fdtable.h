/*
 * Per-fd slots: a process-wide table of one 8-byte word per fd number, in
 * pages of WEFT__FDTABLE_PAGE fds allocated on first use and kept for the
 * process's life, so that readers need no lock and a slot's address never
 * changes. A page appears by one CAS; the loser of a race frees its own.
 * What a slot holds, and its atomics, are the user's (io/op.c's worker
 * marks, the io_uring driver's receive states).
 */
#ifndef WEFT__FDTABLE_H
#define WEFT__FDTABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define WEFT__FDTABLE_PAGE 4096
#define WEFT__FDTABLE_PAGES 1024
/* fds from here on have no slot. */
#define WEFT__FDTABLE_FDS (WEFT__FDTABLE_PAGE * WEFT__FDTABLE_PAGES)

/* A slot, a word or a pointer as its user has it: zero until written. */
typedef union {
    _Atomic uint64_t word;
    _Atomic(void *) ptr;
} weft__fd_slot_t;

struct weft__fdtable {
    _Atomic(weft__fd_slot_t *) dir[WEFT__FDTABLE_PAGES];
};

/*
 * fd's slot in t, or NULL: fd outside the table, or its page not made yet
 * and create false, or no memory for it. Any thread.
 */
weft__fd_slot_t *weft__fdtable_slot(struct weft__fdtable *t, int fd,
                                    bool create);

#endif
