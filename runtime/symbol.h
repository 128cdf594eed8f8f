/*
 * Names for code addresses in reports (the stall report; task dumps): the
 * function and offset, and the file it is in.
 */
#ifndef WEFT__SYMBOL_H
#define WEFT__SYMBOL_H

#include <stddef.h>

/*
 * Writes "function+0xoffset (file)" for addr into buf (always terminated).
 * The name comes from the dynamic symbols (dladdr) or, for functions a
 * program does not export (static ones, a program linked without
 * -rdynamic), from the file's own symbol table; without either, it is
 * "file+0xoffset", which addr2line resolves. Opens and maps the file: for
 * reports, not for hot paths. Any thread.
 */
void weft__symbolize(const void *addr, char *buf, size_t len);

#endif
