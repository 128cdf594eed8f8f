/*
 * bench_https PORT CERT KEY: the N3t HTTPS server of benches/README.md,
 * written as a user would, on streams: weft_start_server with TLS on
 * 127.0.0.1:PORT (CERT and KEY in PEM), a task per connection that reads
 * each request's header block with read_until and writes the fixed 13-byte
 * "Hello, World!" response, flushing once no pipelined request is left
 * buffered; it never closes first. Until SIGINT or SIGTERM, then stops
 * (open connections are cancelled) and exits 0. Workers: WEFT_WORKERS;
 * backend: WEFT_IO.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 13\r\n\r\nHello, World!";

static int serve(weft_stream_t *s, void *arg)
{
    char req[8192];
    ssize_t n;

    (void)arg;
    while ((n = weft_stream_read_until(s, "\r\n\r\n", 4, req, sizeof(req),
                                       WEFT_NO_DEADLINE)) > 0) {
        if (weft_stream_write(s, reply, sizeof(reply) - 1,
                              WEFT_NO_DEADLINE) < 0)
            break;
        if (weft_stream_buffered(s) == 0 &&
            weft_stream_flush(s, WEFT_NO_DEADLINE) < 0)
            break;
    }
    return 0;
}

static char **args;
static weft_event_t stop;

static int wait_signal(void *arg)
{
    if (weft_signal_wait((int)(intptr_t)arg, WEFT_NO_DEADLINE) == 0)
        weft_event_set(&stop);
    return 0;
}

static int main_task(void *arg)
{
    weft_task_t *sig[2];
    weft_server_t *srv;
    weft_tls_t *tls;
    int ret;

    (void)arg;
    if ((ret = weft_tls_new(&tls, WEFT_TLS_SERVER)) < 0)
        return ret;
    if ((ret = weft_tls_set_cert(tls, args[2], args[3])) < 0) {
        fprintf(stderr, "bench_https: %s\n", weft_tls_error(tls));
        goto out;
    }
    ret = weft_start_server(&srv, "127.0.0.1", (uint16_t)atoi(args[1]), tls,
                            serve, NULL);
    if (ret < 0) {
        fprintf(stderr, "bench_https: port %s: %s\n", args[1],
                strerror(-ret));
        goto out;
    }
    weft_spawn(&sig[0], wait_signal, (void *)(intptr_t)SIGINT);
    weft_spawn(&sig[1], wait_signal, (void *)(intptr_t)SIGTERM);
    weft_event_wait(&stop, WEFT_NO_DEADLINE);
    for (int i = 0; i < 2; i++) {
        weft_cancel(sig[i]);
        weft_join(sig[i]);
    }
    ret = weft_server_stop(srv, weft_now_ns());
out:
    weft_tls_free(tls);
    return ret < 0 ? ret : 0;
}

int main(int argc, char **argv)
{
    int port = argc == 4 ? atoi(argv[1]) : 0;

    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: bench_https PORT CERT KEY\n");
        return 2;
    }
    args = argv;
    weft_event_init(&stop);
    return weft_run(main_task, NULL) < 0 ? 1 : 0;
}
