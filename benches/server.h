/*
 * What the bench servers share: argument parsing, the listener on
 * 127.0.0.1:PORT, an accept loop that sets TCP_NODELAY and serves each
 * connection in its own task, and a clean stop on SIGINT or SIGTERM.
 */
#ifndef WEFT_BENCH_SERVER_H
#define WEFT_BENCH_SERVER_H

#include <weft.h>

/*
 * Runs `name PORT` until SIGINT or SIGTERM: each accepted connection's fd is
 * passed (as intptr_t) to serve, in a task of its own, which owns it.
 * Returns the process exit status: 0, 1 on a failure, 2 on bad arguments.
 */
int bench_server_main(int argc, char **argv, const char *name,
                      weft_fn_t serve);

#endif
