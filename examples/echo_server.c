/*
 * echo_server: a TCP echo server, one task per connection, that stops
 * cleanly on Ctrl-C or SIGTERM: the main task waits for the signal with
 * weft_signal_wait while an accept loop serves; then it cancels the accept
 * loop, and weft_run cancels the connections still open and returns.
 *
 *   ./echo_server [PORT]        (default 7000; try: nc 127.0.0.1 7000)
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

static int port = 7000;

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
    weft_listener_t *l = arg;

    for (;;) {
        int fd = weft_listener_accept(l, NULL, NULL, WEFT_NO_DEADLINE);

        if (fd == -ECANCELED)
            return 0;
        if (fd < 0) {
            fprintf(stderr, "accept: %s\n", strerror(-fd));
            weft_sleep_ms(10); /* e.g. out of fds: let some close */
            continue;
        }
        if (weft_spawn(NULL, serve, (void *)(intptr_t)fd) < 0)
            weft_close(fd);
    }
}

/* Returns when SIGINT or SIGTERM arrives (whichever comes first). */
static int wait_signal(void *arg)
{
    return weft_signal_wait((int)(intptr_t)arg, WEFT_NO_DEADLINE);
}

static int main_task(void *arg)
{
    weft_task_t *server, *sig[2];
    weft_listener_t *l;
    int lfd, ret;

    (void)arg;
    lfd = weft_listen("127.0.0.1", (uint16_t)port, 1024, 0);
    if (lfd < 0) {
        fprintf(stderr, "listen: %s\n", strerror(-lfd));
        return lfd;
    }
    ret = weft_listener_new(&l, lfd, SOCK_CLOEXEC);
    if (ret < 0) {
        weft_close(lfd);
        return ret;
    }
    printf("echo server on 127.0.0.1:%d, Ctrl-C stops it\n", port);
    weft_spawn(&server, accept_loop, l);
    weft_spawn(&sig[0], wait_signal, (void *)(intptr_t)SIGINT);
    weft_spawn(&sig[1], wait_signal, (void *)(intptr_t)SIGTERM);
    weft_wait(sig, 2, WEFT_FIRST_COMPLETED, WEFT_NO_DEADLINE, NULL);
    printf("\nstopping\n");
    for (int i = 0; i < 2; i++) {
        weft_cancel(sig[i]);
        weft_join(sig[i]);
    }
    weft_cancel(server);
    weft_join(server);
    return weft_listener_close(l);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        port = atoi(argv[1]);
    return weft_run(main_task, NULL) < 0 ? 1 : 0;
}
