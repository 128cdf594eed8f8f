/*
 * Streams: asyncio's StreamReader and StreamWriter over one fd, as a read
 * buffer and a write buffer on a transport (stream.h: plain, or TLS).
 *
 * Reading. A call first serves what rbuf holds, so a read that finds its
 * bytes buffered never enters the kernel. It fills rbuf only when it must,
 * and a read of at least a buffer's worth into an empty buffer goes to the
 * caller's memory directly (as Tokio's BufReader does), so bulk transfers
 * are not copied twice. The buffer grows only as far as a read_until's
 * limit asks: a peer cannot make it hold more than the largest limit plus
 * one fill.
 *
 * Cancel safety. Every transport read either returns bytes or an error,
 * never both (weft_recv returns a completed read's bytes even when the task
 * was cancelled meanwhile, leaving the cancellation pending), and a call
 * consumes buffered bytes only when it succeeds. read_until leaves its
 * bytes in rbuf until it returns them; read_exact, which may read straight
 * into the caller's buffer, puts what it got back into rbuf (unread) when a
 * later read fails. So bytes the stream took from the kernel are returned
 * to a caller exactly once, whatever call is cut short.
 *
 * Writing. write copies into wbuf and sends only when wbuf is full; flush
 * sends the rest. A flush cut short keeps what was not sent, so a later
 * flush resumes it. A write of at least a buffer's worth with an empty
 * buffer is sent from the caller's memory.
 *
 * One task reads and one task writes at a time (they may be different tasks
 * on different workers: the two sides share no field).
 */
#include "stream.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "../runtime/mem.h"
#include "op.h"
#include "weft.h"

/* The size of each buffer when first needed: a few TCP segments, and a TLS
 * record (16 KiB of plaintext) in one read. */
#define STREAM_BUF 16384

static ssize_t plain_recv(struct weft_stream *s, void *buf, size_t len,
                          int64_t deadline)
{
    if (s->is_sock)
        return weft_recv(s->fd, buf, len, 0, deadline);
    return weft_read(s->fd, buf, len, -1, deadline);
}

static ssize_t plain_send(struct weft_stream *s, const void *buf, size_t len,
                          int64_t deadline)
{
    if (s->is_sock)
        return weft_send(s->fd, buf, len, 0, deadline);
    return weft_write(s->fd, buf, len, -1, deadline);
}

static int plain_shutdown(struct weft_stream *s, int64_t deadline)
{
    (void)deadline;
    return s->is_sock ? weft_shutdown(s->fd, SHUT_WR) : -ENOTSOCK;
}

static void plain_release(struct weft_stream *s) { (void)s; }

const struct weft__stream_transport weft__stream_plain = {
    .recv = plain_recv,
    .send = plain_send,
    .shutdown = plain_shutdown,
    .release = plain_release,
};

int weft_stream_new(weft_stream_t **out, int fd)
{
    struct weft_stream *s;
    struct stat st;

    if (!out)
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    if (fstat(fd, &st) < 0)
        return -errno;
    s = weft__zalloc(sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->tp = &weft__stream_plain;
    s->fd = fd;
    s->is_sock = S_ISSOCK(st.st_mode);
    *out = s;
    return 0;
}

int weft_stream_fd(const weft_stream_t *s) { return s ? s->fd : -EINVAL; }

ssize_t weft_stream_buffered(const weft_stream_t *s)
{
    return s ? (ssize_t)(s->rend - s->rpos) : -EINVAL;
}

/* ---- reading ------------------------------------------------------------ */

/* Makes room at the end of rbuf for at least one byte: reuses the space of
 * consumed bytes, else doubles the buffer. 0 or -ENOMEM. */
static int make_room(struct weft_stream *s)
{
    size_t avail = s->rend - s->rpos, cap;
    char *b;

    if (s->rpos && (s->rend == s->rcap || avail == 0)) {
        memmove(s->rbuf, s->rbuf + s->rpos, avail);
        s->rpos = 0;
        s->rend = avail;
    }
    if (s->rend < s->rcap)
        return 0;
    cap = s->rcap ? s->rcap * 2 : STREAM_BUF;
    if (cap < s->rcap || !(b = weft__alloc(cap)))
        return -ENOMEM;
    if (avail)
        memcpy(b, s->rbuf + s->rpos, avail);
    weft__free(s->rbuf, s->rcap);
    s->rbuf = b;
    s->rcap = cap;
    s->rpos = 0;
    s->rend = avail;
    return 0;
}

/* One transport read appended to rbuf: the bytes read, 0 at end of stream
 * (then and later), or a negative errno (rbuf unchanged). */
static ssize_t fill(struct weft_stream *s, int64_t deadline)
{
    ssize_t n;

    if (s->eof)
        return 0;
    if ((n = make_room(s)) < 0)
        return n;
    n = s->tp->recv(s, s->rbuf + s->rend, s->rcap - s->rend, deadline);
    if (n > 0)
        s->rend += (size_t)n;
    else if (n == 0)
        s->eof = true;
    return n;
}

/* Copies and consumes up to len buffered bytes. */
static size_t take(struct weft_stream *s, void *buf, size_t len)
{
    size_t n = s->rend - s->rpos;

    if (n > len)
        n = len;
    if (n)
        memcpy(buf, s->rbuf + s->rpos, n);
    s->rpos += n;
    return n;
}

/* The checks every read makes: the result must fit ssize_t, and buf + n on
 * a NULL buf would be undefined. */
static int read_check(const struct weft_stream *s, const void *buf,
                      size_t len)
{
    if (!s || len > SSIZE_MAX)
        return -EINVAL;
    if (!buf && len)
        return -EFAULT;
    return 0;
}

ssize_t weft_stream_read(weft_stream_t *s, void *buf, size_t len,
                         int64_t deadline)
{
    ssize_t n;

    if ((n = read_check(s, buf, len)) < 0)
        return n;
    if (len == 0 || s->rend > s->rpos)
        return (ssize_t)take(s, buf, len);
    if (s->eof)
        return 0;
    if (len >= STREAM_BUF && len >= s->rcap) {
        n = s->tp->recv(s, buf, len, deadline);
        s->eof = n == 0;
        return n;
    }
    if ((n = fill(s, deadline)) <= 0)
        return n;
    return (ssize_t)take(s, buf, len);
}

ssize_t weft_stream_peek(weft_stream_t *s, void *buf, size_t len,
                         int64_t deadline)
{
    size_t n;
    ssize_t ret;

    if ((ret = read_check(s, buf, len)) < 0)
        return ret;
    if (len && s->rend == s->rpos && (ret = fill(s, deadline)) <= 0)
        return ret;
    n = s->rend - s->rpos;
    if (n > len)
        n = len;
    if (n)
        memcpy(buf, s->rbuf + s->rpos, n);
    return (ssize_t)n;
}

/* Puts the len bytes a failed read_exact took back in front of rbuf, which
 * is empty then (the call consumed it first). 0 or -ENOMEM. */
static int unread(struct weft_stream *s, const void *buf, size_t len)
{
    char *b;

    if (len > s->rcap) {
        if (!(b = weft__alloc(len)))
            return -ENOMEM;
        weft__free(s->rbuf, s->rcap);
        s->rbuf = b;
        s->rcap = len;
    }
    if (len)
        memcpy(s->rbuf, buf, len);
    s->rpos = 0;
    s->rend = len;
    return 0;
}

ssize_t weft_stream_read_exact(weft_stream_t *s, void *buf, size_t len,
                               int64_t deadline)
{
    char *p = buf;
    size_t got;
    ssize_t n;

    if ((n = read_check(s, buf, len)) < 0)
        return n;
    got = take(s, p, len);
    while (got < len) {
        if (len - got >= STREAM_BUF && len - got >= s->rcap) {
            n = s->tp->recv(s, p + got, len - got, deadline);
            s->eof = n == 0;
        } else if ((n = fill(s, deadline)) > 0) {
            n = (ssize_t)take(s, p + got, len - got);
        }
        if (n == 0)
            break;
        if (n < 0) {
            int ret = unread(s, p, got);

            return ret < 0 ? ret : n;
        }
        got += (size_t)n;
    }
    return (ssize_t)got;
}

ssize_t weft_stream_read_until(weft_stream_t *s, const void *delim,
                               size_t dlen, void *buf, size_t len,
                               int64_t deadline)
{
    size_t from = 0, avail;
    const char *at, *hit;
    ssize_t n;

    if ((n = read_check(s, buf, len)) < 0)
        return n;
    if (!delim || !dlen || len < dlen)
        return -EINVAL;
    for (;;) {
        avail = s->rend - s->rpos;
        at = avail ? s->rbuf + s->rpos : NULL;
        hit = avail >= dlen ? memmem(at + from, avail - from, delim, dlen)
                            : NULL;
        if (hit) {
            if ((size_t)(hit - at) + dlen > len)
                return -EMSGSIZE;
            return (ssize_t)take(s, buf, (size_t)(hit - at) + dlen);
        }
        /* Any later match would end past avail: the limit is passed. */
        if (avail >= len)
            return -EMSGSIZE;
        if (s->eof)
            return (ssize_t)take(s, buf, avail);
        /* A delimiter may straddle what is here and what comes next. */
        from = avail >= dlen ? avail - dlen + 1 : 0;
        if ((n = fill(s, deadline)) < 0)
            return n;
    }
}

ssize_t weft_stream_read_line(weft_stream_t *s, void *buf, size_t len,
                              int64_t deadline)
{
    return weft_stream_read_until(s, "\n", 1, buf, len, deadline);
}

/* ---- writing ------------------------------------------------------------ */

int weft_stream_flush(weft_stream_t *s, int64_t deadline)
{
    ssize_t n;

    if (!s)
        return -EINVAL;
    while (s->wpos < s->wlen) {
        n = s->tp->send(s, s->wbuf + s->wpos, s->wlen - s->wpos, deadline);
        if (n < 0)
            return (int)n;
        s->wpos += (size_t)n;
    }
    s->wpos = s->wlen = 0;
    return 0;
}

/* Takes len bytes of p: into wbuf while they fit, sending wbuf when full,
 * or straight from p when wbuf is empty and p holds a buffer's worth. */
static int put(struct weft_stream *s, const char *p, size_t len,
               int64_t deadline)
{
    ssize_t n;
    size_t c;

    while (len) {
        /* Not on TLS: a write OpenSSL must retry needs the same bytes,
         * which the caller's buffer may no longer hold after a cancel. */
        if (s->wlen == 0 && len >= STREAM_BUF && !s->tls) {
            if ((n = s->tp->send(s, p, len, deadline)) < 0)
                return (int)n;
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (!s->wbuf) {
            if (!(s->wbuf = weft__alloc(STREAM_BUF)))
                return -ENOMEM;
            s->wcap = STREAM_BUF;
        }
        if (s->wlen == s->wcap && (n = weft_stream_flush(s, deadline)) < 0)
            return (int)n;
        c = s->wcap - s->wlen < len ? s->wcap - s->wlen : len;
        memcpy(s->wbuf + s->wlen, p, c);
        s->wlen += c;
        p += c;
        len -= c;
    }
    return 0;
}

ssize_t weft_stream_writev(weft_stream_t *s, const struct iovec *iov,
                           int iovcnt, int64_t deadline)
{
    size_t total = 0;
    int ret;

    if (!s || iovcnt < 0)
        return -EINVAL;
    if (!iov && iovcnt)
        return -EFAULT;
    for (int i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_base && iov[i].iov_len)
            return -EFAULT;
        if (iov[i].iov_len > SSIZE_MAX - total)
            return -EINVAL;
        total += iov[i].iov_len;
    }
    if (s->wshut)
        return -EPIPE;
    for (int i = 0; i < iovcnt; i++)
        if ((ret = put(s, iov[i].iov_base, iov[i].iov_len, deadline)) < 0)
            return ret;
    return (ssize_t)total;
}

ssize_t weft_stream_write(weft_stream_t *s, const void *buf, size_t len,
                          int64_t deadline)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

    return weft_stream_writev(s, &iov, 1, deadline);
}

int weft_stream_shutdown(weft_stream_t *s, int64_t deadline)
{
    int ret;

    if (!s)
        return -EINVAL;
    if (s->wshut)
        return 0;
    if ((ret = weft_stream_flush(s, deadline)) < 0)
        return ret;
    if ((ret = s->tp->shutdown(s, deadline)) < 0)
        return ret;
    s->wshut = true;
    return 0;
}

int weft_stream_close(weft_stream_t *s)
{
    int ret;

    if (!s)
        return -EINVAL;
    ret = weft_close(s->fd);
    if (ret == -EPERM)
        return ret;
    s->tp->release(s);
    weft__free(s->rbuf, s->rcap);
    weft__free(s->wbuf, s->wcap);
    weft__free(s, sizeof(*s));
    return ret;
}
