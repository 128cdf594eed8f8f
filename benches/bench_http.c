/*
 * bench_http PORT: the N3 HTTP server of benches/README.md. Listens on
 * 127.0.0.1:PORT (backlog 4096), sets TCP_NODELAY on accepted sockets and
 * serves each connection in its own task: reads are appended to a buffer,
 * each complete header block gets the fixed 13-byte "Hello, World!"
 * response, pipelined requests in one write; it never closes first;
 * until SIGINT or SIGTERM, then exits 0. Workers: WEFT_WORKERS; backend:
 * WEFT_IO.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include <weft.h>

#include "server.h"

static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 13\r\n\r\nHello, World!";
#define REPLY_LEN (sizeof(reply) - 1)

/* Answers every complete header block in buf[0, *len), in one write when
 * the replies fit in out, else in as few as it takes: a request left
 * unanswered would wait for the client's next one, which may never come. */
static int answer(int fd, char *buf, size_t *len, char *out, size_t cap)
{
    size_t used = 0, n = 0;
    char *end;

    while ((end = memmem(buf + used, *len - used, "\r\n\r\n", 4))) {
        if (n + REPLY_LEN > cap) {
            if (weft_write_all(fd, out, n, WEFT_NO_DEADLINE) < 0)
                return -1;
            n = 0;
        }
        used = (size_t)(end - buf) + 4;
        memcpy(out + n, reply, REPLY_LEN);
        n += REPLY_LEN;
    }
    memmove(buf, buf + used, *len - used);
    *len -= used;
    return n ? (int)weft_write_all(fd, out, n, WEFT_NO_DEADLINE) : 0;
}

static int serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[16384], out[32768];
    size_t len = 0;
    ssize_t n;

    while (len < sizeof(buf)) {
        n = weft_recv(fd, buf + len, sizeof(buf) - len, 0, WEFT_NO_DEADLINE);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (answer(fd, buf, &len, out, sizeof(out)) < 0)
            break;
    }
    weft_close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    return bench_server_main(argc, argv, "bench_http", serve);
}
