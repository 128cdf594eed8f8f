/*
 * The resolved configuration of a runtime: defaults, then WEFT_* environment
 * variables, then the fields a caller set in weft_config_t. Read once at
 * start; read-only afterwards.
 */
#ifndef WEFT__CONFIG_H
#define WEFT__CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "weft.h"

/* IO_AUTO: io_uring if it works here, else epoll; the others were asked
 * for by name. */
enum weft__io_kind { IO_AUTO, IO_URING, IO_EPOLL };

struct weft__config {
    unsigned workers;
    size_t stack_size;
    bool pin;
    bool debug;
    enum weft__io_kind io;
    unsigned ring_entries;
    bool sqpoll;
    unsigned blocking_threads;
    unsigned blocking_keepalive_ms;
    unsigned stall_ms;             /* 0: no stall detection */
    int dump_signal;               /* WEFT_DUMP_SIGNAL; 0: none */
};

#define WEFT__MAX_STALL_MS 60000u

#define WEFT__MIN_STACK (16u * 1024)
#define WEFT__MAX_STACK (UINT64_C(1) << 30)
#define WEFT__MAX_WORKERS 1024u

/*
 * Fills out from the environment and user (which may be NULL). An invalid
 * value prints a message naming the variable (or field) and the value, and
 * returns -EINVAL.
 */
int weft__config_resolve(struct weft__config *out, const weft_config_t *user);

/* The signal WEFT_DUMP_SIGNAL names s: its number in *signo (0 for "" or
 * "0"), or -EINVAL, saying why on stderr. Public for tests. */
int weft__config_dump_signal(const char *s, int *signo);

/* The CPUs in the calling thread's affinity mask (at least 1). */
unsigned weft__config_cpus(void);

#endif
