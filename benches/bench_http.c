/*
 * bench_http PORT: the N3 HTTP server of WORKLOADS.md. Listens on
 * 127.0.0.1:PORT (backlog 4096), sets TCP_NODELAY on accepted sockets and
 * serves each connection in its own task: reads are appended to a buffer,
 * each complete header block gets the fixed 13-byte "Hello, World!"
 * response, pipelined requests in one write; it never closes first;
 * until SIGINT or SIGTERM, then exits 0. Workers: WEFT_WORKERS; backend:
 * WEFT_IO.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <weft.h>

static int sig_fd;

static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 13\r\n\r\nHello, World!";
#define REPLY_LEN (sizeof(reply) - 1)

/* Answers every complete header block in buf[0, *len) with one write. */
static int answer(int fd, char *buf, size_t *len, char *out, size_t cap)
{
    size_t used = 0, n = 0;
    char *end;

    while (n + REPLY_LEN <= cap &&
           (end = memmem(buf + used, *len - used, "\r\n\r\n", 4))) {
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

static int accept_loop(void *arg)
{
    weft_listener_t *l = arg;
    int one = 1, fd;

    for (;;) {
        fd = weft_listener_accept(l, NULL, NULL, WEFT_NO_DEADLINE);
        if (fd == -ECANCELED)
            return 0;
        if (fd < 0) {
            weft_sleep_ms(1);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (weft_spawn(NULL, serve, (void *)(intptr_t)fd) < 0)
            close(fd);
    }
}

static int main_task(void *arg)
{
    int lfd = weft_listen("127.0.0.1", (uint16_t)(intptr_t)arg, 4096, 0);
    struct signalfd_siginfo si;
    weft_listener_t *l;
    weft_task_t *acc;

    if (lfd < 0) {
        fprintf(stderr, "bench_http: listen: %s\n", strerror(-lfd));
        return lfd;
    }
    if (weft_listener_new(&l, lfd, SOCK_CLOEXEC) < 0) {
        close(lfd);
        return -ENOMEM;
    }
    weft_spawn(&acc, accept_loop, l);
    if (weft_wait_fd(sig_fd, POLLIN, WEFT_NO_DEADLINE) > 0 &&
        read(sig_fd, &si, sizeof(si)) < 0)
        perror("bench_http: signalfd");
    weft_cancel(acc);
    weft_join(acc);
    weft_listener_close(l);
    return 0; /* weft_run cancels the connections */
}

int main(int argc, char **argv)
{
    sigset_t set;

    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: bench_http PORT\n");
        return 2;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sig_fd = signalfd(-1, &set, SFD_CLOEXEC);
    return weft_run(main_task, (void *)(intptr_t)atoi(argv[1])) < 0;
}
