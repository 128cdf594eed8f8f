/*
 * fetch: concurrent HTTP/1.1 GETs on streams. Each URL is fetched in its
 * own task: open_connection, the request written and flushed, the status
 * line and headers read with read_line, the body by Content-Length or in
 * chunks. With no URL it starts a little server of its own (start_server)
 * that answers /k with 1000*k bytes, odd k by Content-Length and even k
 * chunked, and fetches /1 to /8 from it. https:// URLs go through TLS,
 * verified against the system's certificates (and the CA file named by
 * FETCH_CA, if set).
 *
 *   ./fetch [http[s]://host[:port]/path ...]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <weft.h>

#define SECS(n) (weft_now_ns() + (int64_t)(n) * 1000000000)

static int serve(weft_stream_t *s, void *arg)
{
    char req[2048], body[1000], head[128];
    int k = 0, n;

    (void)arg;
    if (weft_stream_read_until(s, "\r\n\r\n", 4, req, sizeof(req) - 1,
                               SECS(5)) <= 0)
        return 0;
    sscanf(req, "GET /%d", &k);
    memset(body, 'x', sizeof(body));
    if (k % 2) {
        n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\n"
                     "Content-Length: %d\r\n\r\n", 1000 * k);
        weft_stream_write(s, head, (size_t)n, SECS(5));
        for (int i = 0; i < k; i++)
            weft_stream_write(s, body, sizeof(body), SECS(5));
    } else {
        const char *h = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        weft_stream_write(s, h, strlen(h), SECS(5));
        for (int i = 0; i < k; i++) {
            weft_stream_write(s, "3e8\r\n", 5, SECS(5));
            weft_stream_write(s, body, sizeof(body), SECS(5));
            weft_stream_write(s, "\r\n", 2, SECS(5));
        }
        weft_stream_write(s, "0\r\n\r\n", 5, SECS(5));
    }
    return weft_stream_flush(s, SECS(5));
}

/* Reads a body of len bytes (-1: until the end), counting them. */
static long skip(weft_stream_t *s, long len, int64_t deadline)
{
    char buf[16384];
    long total = 0;
    ssize_t n = 1;

    while ((len < 0 || total < len) && n > 0) {
        size_t want = len < 0 || len - total > (long)sizeof(buf)
                          ? sizeof(buf) : (size_t)(len - total);
        if ((n = weft_stream_read(s, buf, want, deadline)) > 0)
            total += n;
    }
    return n < 0 ? n : total;
}

static weft_tls_t *tls; /* for https:// URLs, shared by every fetch */

/* GETs url (a char *); returns the body's size or a negative errno. */
static int get(void *arg)
{
    char host[256], path[1024] = "/", line[1024];
    int64_t deadline = SECS(10);
    long clen = -1, total = 0, n;
    int https = strncmp(arg, "https://", 8) == 0, chunked = 0, ret;
    const char *rest = (char *)arg + (https ? 8 : 7);
    int port = https ? 443 : 80;
    weft_stream_t *s;

    if ((!https && strncmp(arg, "http://", 7)) ||
        (sscanf(rest, "%255[^:/]:%d%1023s", host, &port, path) < 2 &&
         sscanf(rest, "%255[^/]%1023s", host, path) < 1))
        return -EINVAL;
    if ((ret = weft_open_connection(&s, host, (uint16_t)port, NULL,
                                    deadline)) < 0)
        return ret;
    /* TLS in a second step, to print why it failed if it does. */
    if (https && (ret = weft_stream_start_tls(s, tls, host, deadline)) < 0) {
        fprintf(stderr, "%s: %s\n", (char *)arg, weft_stream_tls_error(s));
        weft_stream_close(s);
        return ret;
    }
    n = snprintf(line, sizeof(line), "GET %s HTTP/1.1\r\nHost: %s\r\n"
                 "Connection: close\r\n\r\n", path, host);
    weft_stream_write(s, line, (size_t)n, deadline);
    n = weft_stream_flush(s, deadline);
    /* The status line and the headers, one line each, up to a blank one. */
    while (n >= 0 && (n = weft_stream_read_line(s, line, sizeof(line) - 1,
                                                deadline)) > 2) {
        line[n] = '\0';
        if (!strncasecmp(line, "Content-Length:", 15))
            clen = atol(line + 15);
        else if (!strncasecmp(line, "Transfer-Encoding: chunked", 26))
            chunked = 1;
    }
    while (n >= 0 && chunked) {
        if ((n = weft_stream_read_line(s, line, sizeof(line) - 1,
                                       deadline)) <= 0)
            break;
        line[n] = '\0';
        if ((clen = strtol(line, NULL, 16)) == 0)
            break;
        if ((n = skip(s, clen, deadline)) >= 0)
            total += n;
        n = n < 0 ? n : skip(s, 2, deadline); /* the chunk's CRLF */
    }
    if (n >= 0 && !chunked)
        total = n = skip(s, clen, deadline);
    weft_stream_close(s);
    return n < 0 ? (int)n : (int)total;
}

static int main_task(void *arg)
{
    char **urls = arg, own[8][64];
    const char *list[64];
    weft_server_t *srv = NULL;
    weft_task_t *t[64];
    int n = 0;

    for (; urls[n] && n < 64; n++)
        list[n] = urls[n];
    if (weft_tls_new(&tls, WEFT_TLS_CLIENT) < 0 ||
        (getenv("FETCH_CA") && weft_tls_set_ca(tls, getenv("FETCH_CA")) < 0))
        return -EINVAL;
    if (n == 0) {
        int ret = weft_start_server(&srv, "127.0.0.1", 0, NULL, serve, NULL);

        if (ret < 0)
            return ret;
        for (; n < 8; n++) {
            snprintf(own[n], sizeof(own[n]), "http://127.0.0.1:%d/%d",
                     weft_server_port(srv), n + 1);
            list[n] = own[n];
        }
    }
    for (int i = 0; i < n; i++)
        weft_spawn(&t[i], get, (void *)list[i]);
    for (int i = 0; i < n; i++) {
        int ret = weft_join(t[i]);

        if (ret < 0)
            printf("%s: %s\n", list[i], strerror(-ret));
        else
            printf("%s: %d bytes\n", list[i], ret);
    }
    weft_tls_free(tls);
    return srv ? weft_server_stop(srv, SECS(1)) : 0;
}

int main(int argc, char **argv)
{
    (void)argc;
    return weft_run(main_task, argv + 1) < 0 ? 1 : 0;
}
