/*
 * bench_echo PORT: the N1/N2 echo server of benches/README.md. Listens on
 * 127.0.0.1:PORT (backlog 4096), sets TCP_NODELAY on accepted sockets and
 * serves each connection in its own task (read, then write all of it back)
 * until SIGINT or SIGTERM, then exits 0. Workers: WEFT_WORKERS; backend:
 * WEFT_IO.
 */
#include <stdint.h>
#include <sys/types.h>

#include <weft.h>

#include "server.h"

static int serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[65536];
    ssize_t n;

    while ((n = weft_recv(fd, buf, sizeof(buf), 0, WEFT_NO_DEADLINE)) > 0)
        if (weft_write_all(fd, buf, (size_t)n, WEFT_NO_DEADLINE) < 0)
            break;
    weft_close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    return bench_server_main(argc, argv, "bench_echo", serve);
}
