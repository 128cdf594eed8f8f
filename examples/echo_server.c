/*
 * echo_server: a TCP echo server, one task per connection, that stops
 * cleanly on Ctrl-C: SIGINT is read from a signalfd by a task waiting in
 * weft_wait_fd, which cancels the server; weft_run then cancels the
 * connections and returns.
 *
 *   ./echo_server [PORT]        (default 7000; try: nc 127.0.0.1 7000)
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

static int port = 7000;
static int sig_fd;

static int serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[16384];
    ssize_t n;

    while ((n = weft_recv(fd, buf, sizeof(buf), 0, WEFT_NO_DEADLINE)) > 0)
        if (weft_write_all(fd, buf, (size_t)n, WEFT_NO_DEADLINE) < 0)
            break;
    weft_close(fd);
    return 0;
}

static int accept_loop(void *arg)
{
    int lfd = (int)(intptr_t)arg, one = 1;

    for (;;) {
        int fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, WEFT_NO_DEADLINE);

        if (fd == -ECANCELED)
            return 0;
        if (fd < 0) {
            fprintf(stderr, "accept: %s\n", strerror(-fd));
            weft_sleep_ms(10); /* e.g. out of fds: let some close */
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (weft_spawn(NULL, serve, (void *)(intptr_t)fd) < 0)
            weft_close(fd);
    }
}

static int main_task(void *arg)
{
    struct signalfd_siginfo si;
    weft_task_t *server;
    int lfd, ret;

    (void)arg;
    lfd = weft_listen("127.0.0.1", (uint16_t)port, 1024, 0);
    if (lfd < 0) {
        fprintf(stderr, "listen: %s\n", strerror(-lfd));
        return lfd;
    }
    printf("echo server on 127.0.0.1:%d, Ctrl-C stops it\n", port);
    weft_spawn(&server, accept_loop, (void *)(intptr_t)lfd);
    /* Until a signal API exists: the signal arrives as a readable fd. */
    ret = weft_wait_fd(sig_fd, POLLIN, WEFT_NO_DEADLINE);
    if (ret > 0 && read(sig_fd, &si, sizeof(si)) == sizeof(si))
        printf("\nsignal %u: stopping\n", si.ssi_signo);
    weft_cancel(server);
    weft_join(server);
    weft_close(lfd);
    return 0;
}

int main(int argc, char **argv)
{
    sigset_t set;

    if (argc > 1)
        port = atoi(argv[1]);
    /* Blocked before the workers start, so they all inherit the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sig_fd = signalfd(-1, &set, SFD_CLOEXEC);
    return weft_run(main_task, NULL) < 0 ? 1 : 0;
}
