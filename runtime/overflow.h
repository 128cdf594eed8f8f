/*
 * Stack overflow reporting: a SIGSEGV handler, on an alternate signal stack
 * per worker, that recognises a fault in the running task's guard page and
 * dies with a message naming the task. Other faults go to the handler that
 * was installed before weft (or the default action).
 */
#ifndef WEFT__OVERFLOW_H
#define WEFT__OVERFLOW_H

/* Process-wide, reference-counted: one install per running runtime. */
int weft__overflow_install(void);
void weft__overflow_uninstall(void);

/* Per worker thread: its alternate signal stack. */
int weft__overflow_thread_init(void);
void weft__overflow_thread_fini(void);

#endif
