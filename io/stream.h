/*
 * Streams (weft_stream_t) seen from inside: the layout, and the transport a
 * stream's buffers sit on. A transport moves bytes between the buffers and
 * the fd: the plain one with weft_recv / weft_send (weft_read / weft_write
 * on fds that are not sockets), TLS (tls.c) through OpenSSL. Task context
 * only, like the stream calls.
 */
#ifndef WEFT__IO_STREAM_H
#define WEFT__IO_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct weft_stream;

struct weft__stream_transport {
    /* Reads at most len (> 0) bytes into buf: the count, 0 at end of
     * stream, or a negative errno. */
    ssize_t (*recv)(struct weft_stream *s, void *buf, size_t len,
                    int64_t deadline);
    /* Sends at most len (> 0) bytes of buf: the count (> 0) or a negative
     * errno. */
    ssize_t (*send)(struct weft_stream *s, const void *buf, size_t len,
                    int64_t deadline);
    /* Ends the sending direction once the buffer has been flushed. */
    int (*shutdown)(struct weft_stream *s, int64_t deadline);
    /* Frees the transport's state; the stream closes the fd itself. */
    void (*release)(struct weft_stream *s);
};

struct weft_stream {
    const struct weft__stream_transport *tp;
    void *tls; /* the TLS layer's state (tls.c); NULL on a plain stream */
    int fd;
    bool is_sock; /* recv/send, or read/write for pipes and files */

    /* The reading side, used by one task at a time: unread bytes are
     * rbuf[rpos, rend). */
    char *rbuf;
    size_t rcap, rpos, rend;
    bool eof; /* the transport reported end of stream */

    /* The writing side, used by one task at a time: bytes written and not
     * yet sent are wbuf[wpos, wlen). */
    char *wbuf;
    size_t wcap, wpos, wlen;
    bool wshut; /* weft_stream_shutdown ended the sending direction */
};

/* tls.c: a hold on tls that keeps it alive until weft_tls_free drops it
 * (a server's, while it runs), and whether it is a server's. */
struct weft_tls;
void weft__tls_hold(struct weft_tls *tls);
bool weft__tls_is_server(const struct weft_tls *tls);

/* The transport of plain streams (stream.c). */
extern const struct weft__stream_transport weft__stream_plain;

#endif
