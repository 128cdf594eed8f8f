/*
 * metrics_server: a weft HTTP endpoint that serves the runtime's metrics
 * in Prometheus' text format at /metrics and a task dump at /dump, with a
 * little work of its own going on (tickers that sleep, a pair of tasks
 * passing a message back and forth) so that the numbers move.
 *
 *   ./metrics_server [PORT]     (default 9090; 0: any free port)
 *   curl http://127.0.0.1:9090/metrics
 *   curl http://127.0.0.1:9090/dump
 *
 * Prometheus scrapes it with a job whose target is 127.0.0.1:9090.
 */
#define _GNU_SOURCE /* memmem, memfd_create */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft.h>

#define TEXT_MAX (256 * 1024)

/* ---- what the server answers --------------------------------------------- */

/* The metrics, with a line per worker, as Prometheus text in buf. */
static int metrics_text(char *buf, size_t len)
{
    weft_worker_metrics_t workers[64];
    weft_metrics_t m = { .size = sizeof(m), .per_worker = workers,
                         .per_worker_len = 64,
                         .per_worker_size = sizeof(workers[0]) };
    int ret = weft_metrics(NULL, &m);

    return ret < 0 ? ret : weft_metrics_format(&m, buf, len);
}

/* The task dump, read back from a memory file (weft_dump writes to an fd
 * with plain write(2), which a non-blocking socket would cut short). */
static int dump_text(char *buf, size_t len)
{
    int fd = memfd_create("weft-dump", MFD_CLOEXEC);
    ssize_t n;
    int ret;

    if (fd < 0)
        return -errno;
    ret = weft_dump(NULL, fd);
    n = ret < 0 ? ret : pread(fd, buf, len - 1, 0);
    close(fd);
    if (n < 0)
        return ret < 0 ? ret : -errno;
    buf[n] = '\0';
    return (int)n;
}

static int reply(int fd, const char *status, const char *type,
                 const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, type, len);
    ssize_t ret = weft_write_all(fd, head, (size_t)n, WEFT_NO_DEADLINE);

    if (ret >= 0)
        ret = weft_write_all(fd, body, len, WEFT_NO_DEADLINE);
    return ret < 0 ? (int)ret : 0;
}

/* Reads one request's head and answers it; one request per connection. */
static int serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char req[4096], *text = malloc(TEXT_MAX);
    size_t len = 0;
    ssize_t n;
    int ret = -EPROTO;

    while (text && len < sizeof(req) - 1 &&
           !memmem(req, len, "\r\n\r\n", 4)) {
        n = weft_recv(fd, req + len, sizeof(req) - 1 - len, 0,
                      weft_now_ns() + 10 * (int64_t)1000000000);
        if (n <= 0)
            goto out;
        len += (size_t)n;
    }
    req[len] = '\0';
    if (!text)
        ret = -ENOMEM;
    else if (!strncmp(req, "GET /metrics ", 13))
        ret = metrics_text(text, TEXT_MAX);
    else if (!strncmp(req, "GET /dump ", 10))
        ret = dump_text(text, TEXT_MAX);
    if (ret >= 0)
        reply(fd, "200 OK",
              req[5] == 'm' ? "text/plain; version=0.0.4" : "text/plain",
              text, (size_t)ret);
    else
        reply(fd, "404 Not Found", "text/plain", "not found\n", 10);
out:
    free(text);
    weft_close(fd);
    return 0;
}

/* ---- something for the metrics to count ---------------------------------- */

static int ticker(void *arg)
{
    int64_t period_ms = (int64_t)(intptr_t)arg;

    while (weft_sleep_ms(period_ms) == 0)
        ;
    return 0;
}

static int echo_back(void *arg)
{
    weft_queue_t *q = arg;
    void *item;

    while (weft_queue_get(&q[0], &item, WEFT_NO_DEADLINE) == 0)
        if (weft_queue_put(&q[1], item, WEFT_NO_DEADLINE) < 0)
            break;
    return 0;
}

static int ping(void *arg)
{
    static weft_queue_t q[2];
    void *item;

    (void)arg;
    if (weft_queue_init(&q[0], 1, 0) < 0 || weft_queue_init(&q[1], 1, 0) < 0)
        return -ENOMEM;
    if (weft_spawn(NULL, echo_back, q) < 0)
        return -ENOMEM;
    while (weft_queue_put(&q[0], q, WEFT_NO_DEADLINE) == 0 &&
           weft_queue_get(&q[1], &item, WEFT_NO_DEADLINE) == 0)
        weft_sleep_ms(1);
    return 0;
}

static void start_work(void)
{
    weft_spawn_opts_t opts = { .name = "ping" };

    for (int i = 1; i <= 3; i++) {
        opts.name = "ticker";
        weft_spawn_ex(NULL, ticker, (void *)(intptr_t)(100 * i), &opts);
    }
    opts.name = "ping";
    weft_spawn_ex(NULL, ping, NULL, &opts);
}

/* ---- the server ---------------------------------------------------------- */

static int main_task(void *arg)
{
    int lfd = weft_listen("127.0.0.1", (uint16_t)(intptr_t)arg, 128, 0);
    struct sockaddr_in sa;
    socklen_t salen = sizeof(sa);

    if (lfd < 0) {
        fprintf(stderr, "listen: %s\n", strerror(-lfd));
        return lfd;
    }
    getsockname(lfd, (struct sockaddr *)&sa, &salen);
    printf("http://127.0.0.1:%d/metrics\n", ntohs(sa.sin_port));
    fflush(stdout);
    start_work();
    for (;;) {
        int fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, WEFT_NO_DEADLINE);

        if (fd == -ECANCELED)
            break;
        if (fd < 0) {
            weft_sleep_ms(10);
            continue;
        }
        if (weft_spawn(NULL, serve, (void *)(intptr_t)fd) < 0)
            weft_close(fd);
    }
    weft_close(lfd);
    return 0;
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 9090;

    return weft_run(main_task, (void *)(intptr_t)port) < 0 ? 1 : 0;
}
