/*
 * tls_echo_server: a TLS line-echo server in a few lines. start_server
 * runs a task per connection, each already through its TLS handshake;
 * the handler reads lines and writes them back. Ctrl-C stops it
 * gracefully: no new connections, 5 seconds for the open ones to end,
 * then the rest are cancelled.
 *
 *   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
 *       -nodes -keyout key.pem -out cert.pem -days 30 -subj /CN=localhost \
 *       -addext subjectAltName=DNS:localhost
 *   ./tls_echo_server cert.pem key.pem [port]        (default 8443)
 *   openssl s_client -connect localhost:8443 -CAfile cert.pem
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

static char **args;

static int echo(weft_stream_t *s, void *arg)
{
    char line[4096];
    ssize_t n;

    (void)arg;
    printf("connection (SNI %s)\n", weft_stream_tls_server_name(s)
                                        ? weft_stream_tls_server_name(s)
                                        : "none");
    /* An idle client is dropped after a minute. */
    while ((n = weft_stream_read_line(s, line, sizeof(line),
                                      weft_deadline_in_ms(60000))) > 0) {
        if (weft_stream_write(s, line, (size_t)n,
                              weft_deadline_in_ms(5000)) < 0 ||
            weft_stream_flush(s, weft_deadline_in_ms(5000)) < 0)
            break;
    }
    if (n == -EMSGSIZE)
        weft_stream_write(s, "line too long\n", 14, weft_deadline_in_ms(5000));
    return weft_stream_shutdown(s, weft_deadline_in_ms(5000));
}

static int main_task(void *arg)
{
    int port = args[3] ? atoi(args[3]) : 8443, ret;
    weft_server_t *srv;
    weft_tls_t *tls;

    (void)arg;
    if ((ret = weft_tls_new(&tls, WEFT_TLS_SERVER)) < 0)
        return ret;
    if ((ret = weft_tls_set_cert(tls, args[1], args[2])) < 0) {
        fprintf(stderr, "certificate: %s\n", weft_tls_error(tls));
        goto out;
    }
    ret = weft_start_server(&srv, NULL, (uint16_t)port, tls, echo, NULL);
    if (ret < 0) {
        fprintf(stderr, "port %d: %s\n", port, strerror(-ret));
        goto out;
    }
    printf("echoing over TLS on port %d; Ctrl-C stops\n", port);
    weft_signal_wait(SIGINT, WEFT_NO_DEADLINE);
    ret = weft_server_stop(srv, weft_deadline_in_ms(5000));
    printf("stopped (%d connections cancelled)\n", ret);
out:
    weft_tls_free(tls);
    return ret < 0 ? ret : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s cert.pem key.pem [port]\n", argv[0]);
        return 2;
    }
    args = argv;
    return weft_run(main_task, NULL) < 0 ? 1 : 0;
}
