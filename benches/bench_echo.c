/*
 * bench_echo PORT: the N1/N2 echo server of benches/README.md. Listens on
 * 127.0.0.1:PORT (backlog 4096), sets TCP_NODELAY on accepted sockets and
 * serves each connection in its own task (read, then write all of it back)
 * until SIGINT or SIGTERM, then exits 0. Workers: WEFT_WORKERS; backend:
 * WEFT_IO.
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#include <weft.h>

#include "server.h"

/* Reads go to a small buffer on the task's stack, inside the page its
 * frames use, so that an idle connection holds one stack page (the
 * runtime keeps bytes that arrive in its shared buffers, not in ours). A
 * read that fills it means a stream is flowing: from then on reads go to a
 * heap buffer, given back once reads are small again. */
#define SMALL 1024
#define BIG 65536

static int serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char small[SMALL], *buf = small, *big;
    size_t cap = sizeof(small);
    ssize_t n;

    while ((n = weft_recv(fd, buf, cap, 0, WEFT_NO_DEADLINE)) > 0) {
        if (weft_write_all(fd, buf, (size_t)n, WEFT_NO_DEADLINE) < 0)
            break;
        if (buf == small && (size_t)n == cap && (big = malloc(BIG))) {
            buf = big;
            cap = BIG;
        } else if (buf != small && (size_t)n < SMALL) {
            free(buf);
            buf = small;
            cap = sizeof(small);
        }
    }
    if (buf != small)
        free(buf);
    weft_close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    return bench_server_main(argc, argv, "bench_echo", serve);
}
