/*
 * The runtime: its workers, the queues they share, the idle-worker set, the
 * task registry, and the start/stop sequence behind weft_run.
 */
#ifndef WEFT_RUNTIME_H
#define WEFT_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "config.h"
#include "inject.h"
#include "stack.h"

struct worker;
struct weft_task;
struct weft__io_ops;

/* The idle set; see the park/wake essay in worker.c. */
struct idle {
    pthread_mutex_t lock;
    unsigned *sleepers;              /* under lock: parked worker indexes */
    unsigned nsleepers;              /* under lock */
    _Atomic uint32_t nidle;          /* == nsleepers, readable lock-free */
    _Atomic uint32_t nsearching;     /* workers looking for work */
};

struct runtime {
    /* Read-only after start. */
    struct weft__config cfg;
    const struct weft__io_ops *io_ops;
    unsigned nworkers;
    struct worker **workers;

    /* Any thread. */
    struct weft__inject inject;
    struct idle idle;
    struct weft__stack_pool stacks;
    atomic_bool stopping;            /* workers exit their loop */
    pthread_barrier_t start_barrier; /* workers' backends are ready */
    pthread_barrier_t stop_barrier;  /* no more wake() calls */

    /* Every task struct ever allocated; under reg_lock. */
    pthread_mutex_t reg_lock;
    struct weft_task *registry;

    /* Task structs released outside any worker; under reg_lock. */
    struct weft_task *orphans;

    /* The main task's completion, for the thread in weft_run. */
    pthread_mutex_t main_lock;
    pthread_cond_t main_cond;
    bool main_done;                  /* under main_lock */
    int main_result;
};

/* Wakes a parked worker if work was just queued and nobody is searching;
 * see the essay in worker.c. Any thread. */
void weft__runtime_notify_work(struct runtime *rt);

/* Adds a fresh task struct to the registry. */
void weft__runtime_register(struct runtime *rt, struct weft_task *t);

/* Cancels every live task except self; returns how many were live. */
unsigned weft__runtime_cancel_all(struct runtime *rt, struct weft_task *self);

/* Prints a line per live task (debug reports). */
void weft__runtime_dump(struct runtime *rt, const char *why);

#endif
