/*
 * fetch: several HTTP GETs in parallel. It starts its own little HTTP
 * server in a task (on an ephemeral loopback port), then fetches N paths
 * concurrently, each in its own task, and prints each body's size and the
 * total time. Shows weft_connect_tcp, deadlines and weft_join's results.
 *
 *   ./fetch [N]        (default 8)
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

static uint16_t port;

/* Serves one request: a body of 1000 * (path number) bytes, then closes. */
static int serve(void *arg)
{
    int fd = (int)(intptr_t)arg, k = 0;
    char req[1024], head[128], body[4096];
    ssize_t n = weft_recv(fd, req, sizeof(req) - 1, 0, weft_now_ns() + 5e9);

    if (n > 0) {
        req[n] = '\0';
        sscanf(req, "GET /%d", &k);
        n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length:"
                     " %d\r\nConnection: close\r\n\r\n", 1000 * k);
        weft_write_all(fd, head, (size_t)n, WEFT_NO_DEADLINE);
        memset(body, 'x', sizeof(body));
        for (int left = 1000 * k; left > 0; left -= (int)sizeof(body))
            weft_write_all(fd, body, left < 4096 ? (size_t)left : 4096,
                           WEFT_NO_DEADLINE);
    }
    weft_close(fd);
    return 0;
}

static int server(void *arg)
{
    int lfd = (int)(intptr_t)arg, fd;

    while ((fd = weft_accept(lfd, NULL, NULL, 0, WEFT_NO_DEADLINE)) >= 0)
        weft_spawn(NULL, serve, (void *)(intptr_t)fd);
    return fd == -ECANCELED ? 0 : fd;
}

/* GET /k; returns the response's size in bytes or a negative errno. */
static int get(void *arg)
{
    int k = (int)(intptr_t)arg, total = 0;
    int64_t deadline = weft_now_ns() + 5 * (int64_t)1000000000;
    char buf[8192];
    ssize_t n;
    int fd = weft_connect_tcp("localhost", port, deadline);

    if (fd < 0)
        return fd;
    n = snprintf(buf, sizeof(buf), "GET /%d HTTP/1.1\r\nHost: localhost\r\n"
                 "\r\n", k);
    n = weft_write_all(fd, buf, (size_t)n, deadline);
    while (n >= 0 && (n = weft_recv(fd, buf, sizeof(buf), 0, deadline)) > 0)
        total += (int)n;
    weft_close(fd);
    return n < 0 ? (int)n : total;
}

static int main_task(void *arg)
{
    int n = (int)(intptr_t)arg, lfd = weft_listen("127.0.0.1", 0, 128, 0);
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    weft_task_t *srv, *t[64];
    int64_t t0;

    if (lfd < 0)
        return lfd;
    getsockname(lfd, (struct sockaddr *)&sa, &len);
    port = ntohs(sa.sin_port);
    weft_spawn(&srv, server, (void *)(intptr_t)lfd);
    t0 = weft_now_ns();
    for (int i = 0; i < n; i++)
        weft_spawn(&t[i], get, (void *)(intptr_t)(i + 1));
    for (int i = 0; i < n; i++) {
        int ret = weft_join(t[i]);

        if (ret < 0)
            printf("GET /%d: %s\n", i + 1, strerror(-ret));
        else
            printf("GET /%d: %d bytes\n", i + 1, ret);
    }
    printf("%d fetches in %.1f ms\n", n, (weft_now_ns() - t0) / 1e6);
    weft_cancel(srv);
    weft_join(srv);
    weft_close(lfd);
    return 0;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 8;

    if (n < 1 || n > 64)
        n = 8;
    return weft_run(main_task, (void *)(intptr_t)n) < 0 ? 1 : 0;
}
