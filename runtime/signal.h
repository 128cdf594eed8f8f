/*
 * Signals: weft_signal_wait(), the rule that weft's own threads never run
 * signal handlers, and the mask their forked children get. See signal.c
 * for the design.
 */
#ifndef WEFT__SIGNAL_H
#define WEFT__SIGNAL_H

#include <pthread.h>

struct runtime;

/*
 * pthread_create with every asynchronous signal blocked in the new thread
 * (the caller's mask is left as it was). A process the new thread forks
 * gets the mask of the thread that started the runtime back (signal.c,
 * "Children"). Every weft thread is made with it. Returns 0 or a negative
 * errno (-ENOMEM, or pthread_create's and pthread_atfork's errors).
 */
int weft__signal_create_thread(pthread_t *thread, void *(*fn)(void *),
                               void *arg);

/*
 * Drops rt's use of the signal machinery at shutdown (after its tasks are
 * drained). The last runtime out stops the signal thread, restores the
 * dispositions weft replaced and closes its descriptor.
 */
void weft__signal_release(struct runtime *rt);

/* Has signo write rt's task dump to stderr (WEFT_DUMP_SIGNAL) until
 * weft__signal_release(rt). 0 or -errno. */
int weft__signal_dump_on(struct runtime *rt, int signo);

/* Tasks of any runtime waiting for signo right now (tests). */
unsigned weft__signal_waiters(int signo);

#endif
