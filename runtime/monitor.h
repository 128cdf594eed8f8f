/*
 * The stall monitor: a thread per runtime that notices a worker stuck in
 * one task for WEFT_STALL_MS and has its ready work served elsewhere (the
 * protocol is "Stalls" in worker.c). It ticks only while some worker is
 * out of its park; when every worker is parked it sleeps until one wakes.
 */
#ifndef WEFT__MONITOR_H
#define WEFT__MONITOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct runtime;
struct worker;

/* What the monitor knows of one worker; its own thread only. */
struct weft__monitor_seen {
    uint64_t beat;
    int64_t since;   /* when beat last moved */
    bool frozen;     /* this stall was reported */
};

struct weft__monitor {
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop, poked;            /* under lock */
    atomic_bool sleeping;        /* waits for a worker to unpark */
    int64_t stall_ns, tick_ns;   /* read-only after start */
    struct weft__monitor_seen *seen;
    _Atomic uint64_t stalls;     /* stalls detected, for metrics */
};

/* Starts rt's monitor (none if stall detection is off). 0 or -errno. */
int weft__monitor_start(struct runtime *rt);

/* Stops and joins it; before the workers stop. */
void weft__monitor_stop(struct runtime *rt);

/* Frees what start set up; once the workers are joined (they may still
 * call weft__monitor_unparked until then). */
void weft__monitor_fini(struct runtime *rt);

/* A worker left its park: wakes the monitor if it waits for that. */
void weft__monitor_unparked(struct worker *w);

/* Has the monitor look at once (a worker handed its duties over). */
void weft__monitor_poke(struct runtime *rt);

#endif
