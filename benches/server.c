/*
 * The bench servers' common part; see server.h. A listener with multishot
 * accept feeds connection tasks; two tasks wait for SIGINT and SIGTERM, and
 * whichever signal comes first stops accepting. weft_run then cancels the
 * connections still open.
 */
#include "server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct server {
    const char *name;
    uint16_t port;
    weft_fn_t serve;
    weft_listener_t *listener;
    weft_event_t stop;
};

static int accept_loop(void *arg)
{
    struct server *s = arg;
    int one = 1, fd;

    for (;;) {
        fd = weft_listener_accept(s->listener, NULL, NULL, WEFT_NO_DEADLINE);
        if (fd == -ECANCELED)
            return 0;
        if (fd < 0) { /* EMFILE and friends: let connections drain */
            weft_sleep_ms(1);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (weft_spawn(NULL, s->serve, (void *)(intptr_t)fd) < 0)
            close(fd);
    }
}

struct signal_watch {
    struct server *s;
    int signo;
};

static int wait_signal(void *arg)
{
    struct signal_watch *sw = arg;

    if (weft_signal_wait(sw->signo, WEFT_NO_DEADLINE) == 0)
        weft_event_set(&sw->s->stop);
    return 0;
}

static int serve_until_signal(void *arg)
{
    struct server *s = arg;
    struct signal_watch on[2] = { { s, SIGINT }, { s, SIGTERM } };
    weft_task_t *acc, *sig[2];
    int lfd = weft_listen("127.0.0.1", s->port, 4096, 0);

    if (lfd < 0) {
        fprintf(stderr, "%s: listen on port %u: %s\n", s->name, s->port,
                strerror(-lfd));
        return lfd;
    }
    if (weft_listener_new(&s->listener, lfd, SOCK_CLOEXEC) < 0) {
        close(lfd);
        return -ENOMEM;
    }
    for (int i = 0; i < 2; i++)
        weft_spawn(&sig[i], wait_signal, &on[i]);
    weft_spawn(&acc, accept_loop, s);
    weft_event_wait(&s->stop, WEFT_NO_DEADLINE);
    for (int i = 0; i < 2; i++) {
        weft_cancel(sig[i]);
        weft_join(sig[i]);
    }
    weft_cancel(acc);
    weft_join(acc);
    weft_listener_close(s->listener);
    return 0;
}

int bench_server_main(int argc, char **argv, const char *name,
                      weft_fn_t serve)
{
    struct server s = { .name = name, .serve = serve };
    int port = argc == 2 ? atoi(argv[1]) : 0;

    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: %s PORT\n", name);
        return 2;
    }
    s.port = (uint16_t)port;
    weft_event_init(&s.stop);
    return weft_run(serve_until_signal, &s) < 0 ? 1 : 0;
}
