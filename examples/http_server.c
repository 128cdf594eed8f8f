/*
 * http_server: a minimal HTTP/1.1 keep-alive server answering every request
 * with "Hello, World!". Each connection is a task that appends what it reads
 * to a buffer and answers every complete request in it with one write, so
 * pipelined requests cost one send. Load it with wrk:
 *
 *   ./http_server [PORT]        (default 8080)
 *   wrk -t1 -c100 -d10s http://127.0.0.1:8080/
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 13\r\n\r\nHello, World!";

/* Answers the complete requests in buf[0, *len) and keeps the rest. */
static ssize_t answer(int fd, char *buf, size_t *len, char *out, size_t cap)
{
    size_t used = 0, n = 0;
    char *end;

    while ((end = memmem(buf + used, *len - used, "\r\n\r\n", 4))) {
        used = (size_t)(end - buf) + 4;
        if (n + sizeof(reply) - 1 > cap)
            break;
        memcpy(out + n, reply, sizeof(reply) - 1);
        n += sizeof(reply) - 1;
    }
    memmove(buf, buf + used, *len - used);
    *len -= used;
    return n ? weft_write_all(fd, out, n, WEFT_NO_DEADLINE) : 0;
}

static int serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[8192], out[16384];
    size_t len = 0;
    ssize_t n;

    for (;;) {
        if (len == sizeof(buf))
            break; /* a header block larger than we accept */
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

static int main_task(void *arg)
{
    int port = (int)(intptr_t)arg, one = 1;
    int lfd = weft_listen("127.0.0.1", (uint16_t)port, 1024, 0);

    if (lfd < 0) {
        fprintf(stderr, "listen: %s\n", strerror(-lfd));
        return lfd;
    }
    printf("http://127.0.0.1:%d/\n", port);
    for (;;) {
        int fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, WEFT_NO_DEADLINE);

        if (fd == -ECANCELED)
            break;
        if (fd < 0) {
            weft_sleep_ms(10);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (weft_spawn(NULL, serve, (void *)(intptr_t)fd) < 0)
            weft_close(fd);
    }
    weft_close(lfd);
    return 0;
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8080;

    return weft_run(main_task, (void *)(intptr_t)port) < 0 ? 1 : 0;
}
