/*
 * Task dumps (weft_dump, WEFT_DUMP_SIGNAL, debug mode's report of tasks
 * left at shutdown): every live task and what each worker does, read
 * without stopping anything.
 */
#ifndef WEFT__DUMP_H
#define WEFT__DUMP_H

struct runtime;

/* Writes rt's dump to fd under a first line naming why. Returns the live
 * tasks listed, or -ENOMEM, or a write(2) error. Any thread, while rt
 * lives (its workers may run). */
int weft__dump(struct runtime *rt, int fd, const char *why);

#endif
