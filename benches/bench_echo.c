/*
 * bench_echo PORT: the N1/N2 echo server of WORKLOADS.md. Listens on
 * 127.0.0.1:PORT (backlog 4096), sets TCP_NODELAY on accepted sockets and
 * serves each connection in its own task (read, then write all of it back)
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
        fprintf(stderr, "bench_echo: listen: %s\n", strerror(-lfd));
        return lfd;
    }
    if (weft_listener_new(&l, lfd, SOCK_CLOEXEC) < 0) {
        close(lfd);
        return -ENOMEM;
    }
    weft_spawn(&acc, accept_loop, l);
    if (weft_wait_fd(sig_fd, POLLIN, WEFT_NO_DEADLINE) > 0 &&
        read(sig_fd, &si, sizeof(si)) < 0)
        perror("bench_echo: signalfd");
    weft_cancel(acc);
    weft_join(acc);
    weft_listener_close(l);
    return 0; /* weft_run cancels the connections */
}

int main(int argc, char **argv)
{
    sigset_t set;

    if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
        fprintf(stderr, "usage: bench_echo PORT\n");
        return 2;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sig_fd = signalfd(-1, &set, SFD_CLOEXEC);
    return weft_run(main_task, (void *)(intptr_t)atoi(argv[1])) < 0;
}
