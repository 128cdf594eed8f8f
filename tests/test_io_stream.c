/*
 * Streams: buffered reads (read, read_exact, read_line, read_until with its
 * limit, peek), buffered and gather writes, half-close, a peer that sends
 * one byte at a time, deadlines and cancellation that lose no byte, a long
 * checksummed transfer, and the errors of bad arguments.
 */
#include <limits.h>
#include <sys/ioctl.h>

#include "io_helpers.h"
#include "io/stream.h"

/* A connected stream pair over a Unix socketpair: s for the test, fd the
 * raw peer. */
struct pair {
    weft_stream_t *s;
    int fd;
};

static struct pair t_pair(void)
{
    int sv[2];
    struct pair p;

    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(weft_stream_new(&p.s, sv[0]), 0);
    p.fd = sv[1];
    return p;
}

static void t_pair_close(struct pair *p)
{
    cr_assert_eq(weft_stream_close(p->s), 0);
    cr_assert_eq(weft_close(p->fd), 0);
}

static void t_send_str(int fd, const char *str)
{
    size_t len = strlen(str);

    cr_assert_eq(weft_write_all(fd, str, len, T_SECS(20)), (ssize_t)len);
}

/* Reads a line and asserts it is want. */
static void t_expect_line(weft_stream_t *s, const char *want)
{
    char buf[256];
    ssize_t n = weft_stream_read_line(s, buf, sizeof(buf), T_SECS(20));

    cr_assert_eq(n, (ssize_t)strlen(want), "read_line: %zd, want '%s'", n,
                 want);
    cr_assert_eq(memcmp(buf, want, (size_t)n), 0);
}

/* ---- reading ------------------------------------------------------------- */

static int lines_main(void *arg)
{
    struct pair p = t_pair();
    char buf[16];

    (void)arg;
    t_send_str(p.fd, "ab\ncd\n\nef");
    cr_assert_eq(shutdown(p.fd, SHUT_WR), 0);
    t_expect_line(p.s, "ab\n");
    t_expect_line(p.s, "cd\n");
    t_expect_line(p.s, "\n");
    /* The last line has no newline: it comes as it is, then end. */
    t_expect_line(p.s, "ef");
    cr_assert_eq(weft_stream_read_line(p.s, buf, sizeof(buf), T_SECS(20)), 0);
    cr_assert_eq(weft_stream_read(p.s, buf, sizeof(buf), T_SECS(20)), 0);
    t_pair_close(&p);
    return 0;
}

Test(stream, read_line_splits_lines_and_returns_the_last_unterminated,
     .timeout = 30)
{
    t_run(lines_main, NULL);
}

static int limit_main(void *arg)
{
    struct pair p = t_pair();
    char line[101], buf[128];

    (void)arg;
    memset(line, 'x', 100);
    line[100] = '\n';
    cr_assert_eq(weft_write_all(p.fd, line, 101, T_SECS(20)), 101);
    /* 100 bytes and the newline do not fit in 100: nothing consumed. */
    cr_assert_eq(weft_stream_read_line(p.s, buf, 100, T_SECS(20)), -EMSGSIZE);
    cr_assert_eq(weft_stream_buffered(p.s), 101);
    /* Exactly at the limit, it fits. */
    cr_assert_eq(weft_stream_read_line(p.s, buf, 101, T_SECS(20)), 101);
    cr_assert_eq(memcmp(buf, line, 101), 0);

    /* A peer that never sends a newline cannot make the stream buffer more
     * than the limit and one read: the call fails once the limit is
     * passed, without waiting for more. */
    cr_assert_eq(weft_write_all(p.fd, line, 100, T_SECS(20)), 100);
    cr_assert_eq(weft_stream_read_line(p.s, buf, 50, T_SECS(20)), -EMSGSIZE);
    cr_assert_geq(weft_stream_buffered(p.s), 50);
    cr_assert_eq(weft_stream_read_exact(p.s, buf, 100, T_SECS(20)), 100);
    cr_assert_eq(memcmp(buf, line, 100), 0);
    t_pair_close(&p);
    return 0;
}

Test(stream, read_line_limit_fails_with_emsgsize_and_keeps_the_bytes,
     .timeout = 30)
{
    t_run(limit_main, NULL);
}

/* Sends arg's string one byte per send, yielding between them. */
struct trickle {
    int fd;
    const char *str;
};

static int trickle(void *arg)
{
    struct trickle *t = arg;

    for (const char *c = t->str; *c; c++) {
        cr_assert_eq(weft_send(t->fd, c, 1, 0, T_SECS(20)), 1);
        cr_assert_eq(weft_yield(), 0);
    }
    return 0;
}

static int trickle_main(void *arg)
{
    struct pair p = t_pair();
    struct trickle t = { p.fd, "hello\nGET / HTTP/1.1\r\nHost: x\r\n\r\nbody" };
    weft_task_t *peer;
    char buf[64];

    (void)arg;
    cr_assert_eq(weft_spawn(&peer, trickle, &t), 0);
    t_expect_line(p.s, "hello\n");
    /* A two-byte delimiter arrives split over two reads. */
    cr_assert_eq(weft_stream_read_until(p.s, "\r\n", 2, buf, sizeof(buf),
                                        T_SECS(20)), 16);
    cr_assert_eq(memcmp(buf, "GET / HTTP/1.1\r\n", 16), 0);
    cr_assert_eq(weft_stream_read_until(p.s, "\r\n\r\n", 4, buf, sizeof(buf),
                                        T_SECS(20)), 11);
    cr_assert_eq(memcmp(buf, "Host: x\r\n\r\n", 11), 0);
    cr_assert_eq(weft_stream_read_exact(p.s, buf, 4, T_SECS(20)), 4);
    cr_assert_eq(memcmp(buf, "body", 4), 0);
    cr_assert_eq(weft_join(peer), 0);
    t_pair_close(&p);
    return 0;
}

Test(stream, peer_sending_one_byte_at_a_time, .timeout = 30)
{
    t_run(trickle_main, NULL);
}

static int peek_main(void *arg)
{
    struct pair p = t_pair();
    char buf[16];

    (void)arg;
    t_send_str(p.fd, "abcdef");
    cr_assert_eq(weft_stream_peek(p.s, buf, 3, T_SECS(20)), 3);
    cr_assert_eq(memcmp(buf, "abc", 3), 0);
    cr_assert_eq(weft_stream_buffered(p.s), 6);
    cr_assert_eq(weft_stream_read(p.s, buf, 2, T_SECS(20)), 2);
    cr_assert_eq(memcmp(buf, "ab", 2), 0);
    /* read returns what is buffered without waiting for more. */
    cr_assert_eq(weft_stream_read(p.s, buf, sizeof(buf), T_SECS(20)), 4);
    cr_assert_eq(memcmp(buf, "cdef", 4), 0);
    cr_assert_eq(shutdown(p.fd, SHUT_WR), 0);
    cr_assert_eq(weft_stream_peek(p.s, buf, 3, T_SECS(20)), 0);
    t_pair_close(&p);
    return 0;
}

Test(stream, peek_does_not_consume, .timeout = 30)
{
    t_run(peek_main, NULL);
}

/* ---- deadlines and cancellation ------------------------------------------ */

static int deadline_main(void *arg)
{
    struct pair p = t_pair();
    char buf[16];

    (void)arg;
    t_send_str(p.fd, "abc");
    cr_assert_eq(weft_stream_read_line(p.s, buf, sizeof(buf), T_MS(50)),
                 -ETIMEDOUT);
    cr_assert_eq(weft_stream_read_exact(p.s, buf, 5, T_MS(50)), -ETIMEDOUT);
    cr_assert_eq(weft_stream_read(p.s, buf, 0, T_MS(0)), 0);
    t_send_str(p.fd, "d\n");
    t_expect_line(p.s, "abcd\n");
    /* A deadline already past still returns what is buffered. */
    t_send_str(p.fd, "xy\n");
    cr_assert_eq(weft_stream_peek(p.s, buf, 1, T_SECS(20)), 1);
    cr_assert_eq(weft_stream_read_line(p.s, buf, sizeof(buf), T_MS(-1000)), 3);
    t_pair_close(&p);
    return 0;
}

Test(stream, deadline_loses_no_byte, .timeout = 30)
{
    t_run(deadline_main, NULL);
}

struct reader {
    weft_stream_t *s;
    int mode; /* 0 read_exact, 1 read_line */
    char buf[64];
};

static int reader(void *arg)
{
    struct reader *r = arg;

    if (r->mode == 0)
        return (int)weft_stream_read_exact(r->s, r->buf, 10, WEFT_NO_DEADLINE);
    return (int)weft_stream_read_line(r->s, r->buf, sizeof(r->buf),
                                      WEFT_NO_DEADLINE);
}

/* Bytes in fd's receive queue. */
static int t_unread(int fd)
{
    int n;

    cr_assert_eq(ioctl(fd, FIONREAD, &n), 0);
    return n;
}

static int cancel_main(void *arg)
{
    int mode = (int)(intptr_t)arg;
    struct pair p = t_pair();
    struct reader r = { .s = p.s, .mode = mode };
    weft_task_t *t;
    char buf[16];

    cr_assert_eq(weft_spawn(&t, reader, &r), 0);
    t_send_str(p.fd, "abcd");
    /* Once the kernel's queue is empty the stream holds the four bytes (in
     * the reader's hands, or buffered). */
    while (t_unread(weft_stream_fd(p.s)) != 0)
        cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(weft_cancel(t), 0);
    cr_assert_eq(weft_join(t), -ECANCELED);
    cr_assert_eq(weft_stream_buffered(p.s), 4);
    t_send_str(p.fd, "efghij\n");
    if (mode == 0) {
        cr_assert_eq(weft_stream_read_exact(p.s, buf, 10, T_SECS(20)), 10);
        cr_assert_eq(memcmp(buf, "abcdefghij", 10), 0);
    } else {
        t_expect_line(p.s, "abcdefghij\n");
    }
    t_pair_close(&p);
    return 0;
}

Test(stream, cancel_mid_read_exact_keeps_the_bytes, .timeout = 30)
{
    t_run(cancel_main, (void *)0);
}

Test(stream, cancel_mid_read_line_keeps_the_bytes, .timeout = 30)
{
    t_run(cancel_main, (void *)1);
}

/* ---- writing ------------------------------------------------------------- */

static int write_main(void *arg)
{
    struct pair p = t_pair();
    struct iovec iov[3] = { { "GET ", 4 }, { "/x", 2 }, { " HTTP/1.1\n", 10 } };
    char buf[64];

    (void)arg;
    cr_assert_eq(weft_stream_write(p.s, "hello ", 6, T_SECS(20)), 6);
    cr_assert_eq(weft_stream_writev(p.s, iov, 3, T_SECS(20)), 16);
    /* Buffered, not sent: the peer has nothing yet. */
    cr_assert_eq(t_unread(p.fd), 0);
    cr_assert_eq(weft_stream_flush(p.s, T_SECS(20)), 0);
    cr_assert_eq(t_unread(p.fd), 22);
    cr_assert_eq(weft_read_exact(p.fd, buf, 22, T_SECS(20)), 22);
    cr_assert_eq(memcmp(buf, "hello GET /x HTTP/1.1\n", 22), 0);
    /* Half-close: the peer sees the end, the stream still reads. */
    cr_assert_eq(weft_stream_write(p.s, "bye", 3, T_SECS(20)), 3);
    cr_assert_eq(weft_stream_shutdown(p.s, T_SECS(20)), 0);
    cr_assert_eq(weft_stream_shutdown(p.s, T_SECS(20)), 0);
    cr_assert_eq(weft_stream_write(p.s, "x", 1, T_SECS(20)), -EPIPE);
    cr_assert_eq(weft_read_exact(p.fd, buf, sizeof(buf), T_SECS(20)), 3);
    t_send_str(p.fd, "still\n");
    t_expect_line(p.s, "still\n");
    t_pair_close(&p);
    return 0;
}

Test(stream, writes_are_buffered_until_flush_and_shutdown_half_closes,
     .timeout = 30)
{
    t_run(write_main, NULL);
}

/* ---- a long transfer ----------------------------------------------------- */

#define BULK (8u << 20)

static uint8_t pattern(size_t i) { return (uint8_t)(i * 2654435761u >> 13); }

struct bulk {
    weft_stream_t *s;
};

/* Writes BULK bytes in pieces of varying sizes (some above the buffer). */
static int bulk_writer(void *arg)
{
    struct bulk *b = arg;
    uint8_t *chunk = malloc(70000);
    size_t done = 0, k = 0;

    while (done < BULK) {
        size_t len = (k++ * 7919) % 70000 + 1;

        if (len > BULK - done)
            len = BULK - done;
        for (size_t i = 0; i < len; i++)
            chunk[i] = pattern(done + i);
        cr_assert_eq(weft_stream_write(b->s, chunk, len, T_SECS(60)),
                     (ssize_t)len);
        done += len;
    }
    cr_assert_eq(weft_stream_shutdown(b->s, T_SECS(60)), 0);
    free(chunk);
    return 0;
}

static int bulk_main(void *arg)
{
    int sv[2];
    weft_stream_t *a, *b;
    weft_task_t *w;
    uint8_t *buf = malloc(70000);
    size_t got = 0, k = 0;
    ssize_t n;

    (void)arg;
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(weft_stream_new(&a, sv[0]), 0);
    cr_assert_eq(weft_stream_new(&b, sv[1]), 0);
    cr_assert_eq(weft_spawn(&w, bulk_writer, &(struct bulk){ a }), 0);
    for (;;) {
        size_t len = (k * 104729) % 70000 + 1;

        /* Every kind of read, in turn. */
        switch (k++ % 3) {
        case 0: n = weft_stream_read(b, buf, len, T_SECS(60)); break;
        case 1: n = weft_stream_read_exact(b, buf, len, T_SECS(60)); break;
        default:
            n = weft_stream_read_until(b, "\x42", 1, buf, 70000, T_SECS(60));
            n = n == -EMSGSIZE ? weft_stream_read(b, buf, 70000, T_SECS(60))
                               : n;
        }
        cr_assert_geq(n, 0, "read: %s", strerror((int)-n));
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            cr_assert_eq(buf[i], pattern(got + (size_t)i), "byte %zu",
                         got + (size_t)i);
        got += (size_t)n;
    }
    cr_assert_eq(got, BULK);
    cr_assert_eq(weft_join(w), 0);
    cr_assert_eq(weft_stream_close(a), 0);
    cr_assert_eq(weft_stream_close(b), 0);
    free(buf);
    return 0;
}

Test(stream, eight_mib_in_mixed_reads_and_writes_checksummed, .timeout = 120)
{
    t_run(bulk_main, NULL);
}

/* A pipe: read and write instead of recv and send. */
static int pipe_main(void *arg)
{
    int fds[2];
    weft_stream_t *r, *w;
    char buf[16];

    (void)arg;
    cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
    cr_assert_eq(weft_stream_new(&r, fds[0]), 0);
    cr_assert_eq(weft_stream_new(&w, fds[1]), 0);
    cr_assert_eq(weft_stream_write(w, "one\ntwo\n", 8, T_SECS(20)), 8);
    cr_assert_eq(weft_stream_flush(w, T_SECS(20)), 0);
    t_expect_line(r, "one\n");
    t_expect_line(r, "two\n");
    cr_assert_eq(weft_stream_shutdown(w, T_SECS(20)), -ENOTSOCK);
    cr_assert_eq(weft_stream_close(w), 0);
    cr_assert_eq(weft_stream_read(r, buf, sizeof(buf), T_SECS(20)), 0);
    cr_assert_eq(weft_stream_close(r), 0);
    return 0;
}

Test(stream, works_on_a_pipe, .timeout = 30)
{
    t_run(pipe_main, NULL);
}

/* ---- bad arguments ------------------------------------------------------- */

static int misuse_main(void *arg)
{
    struct pair p = t_pair();
    weft_stream_t *s;
    struct iovec bad[2] = { { "a", 1 }, { NULL, 1 } };
    char buf[8];

    (void)arg;
    cr_assert_eq(weft_stream_new(NULL, p.fd), -EINVAL);
    cr_assert_eq(weft_stream_new(&s, -1), -EBADF);
    cr_assert_eq(weft_stream_fd(NULL), -EINVAL);
    cr_assert_eq(weft_stream_buffered(NULL), -EINVAL);
    cr_assert_eq(weft_stream_read(NULL, buf, 1, T_MS(0)), -EINVAL);
    cr_assert_eq(weft_stream_read(p.s, NULL, 1, T_MS(0)), -EFAULT);
    cr_assert_eq(weft_stream_read(p.s, buf, (size_t)SSIZE_MAX + 1, T_MS(0)),
                 -EINVAL);
    cr_assert_eq(weft_stream_read_exact(NULL, buf, 1, T_MS(0)), -EINVAL);
    cr_assert_eq(weft_stream_read_exact(p.s, NULL, 1, T_MS(0)), -EFAULT);
    cr_assert_eq(weft_stream_read_line(NULL, buf, 8, T_MS(0)), -EINVAL);
    cr_assert_eq(weft_stream_read_line(p.s, NULL, 8, T_MS(0)), -EFAULT);
    cr_assert_eq(weft_stream_read_line(p.s, buf, 0, T_MS(0)), -EINVAL);
    cr_assert_eq(weft_stream_read_until(p.s, NULL, 1, buf, 8, T_MS(0)),
                 -EINVAL);
    cr_assert_eq(weft_stream_read_until(p.s, "ab", 0, buf, 8, T_MS(0)),
                 -EINVAL);
    cr_assert_eq(weft_stream_read_until(p.s, "abc", 3, buf, 2, T_MS(0)),
                 -EINVAL);
    cr_assert_eq(weft_stream_peek(NULL, buf, 1, T_MS(0)), -EINVAL);
    cr_assert_eq(weft_stream_peek(p.s, NULL, 1, T_MS(0)), -EFAULT);
    cr_assert_eq(weft_stream_write(NULL, buf, 1, T_MS(0)), -EINVAL);
    cr_assert_eq(weft_stream_write(p.s, NULL, 1, T_MS(0)), -EFAULT);
    cr_assert_eq(weft_stream_writev(p.s, bad, -1, T_MS(0)), -EINVAL);
    cr_assert_eq(weft_stream_writev(p.s, NULL, 1, T_MS(0)), -EFAULT);
    cr_assert_eq(weft_stream_writev(p.s, bad, 2, T_MS(0)), -EFAULT);
    cr_assert_eq(weft_stream_flush(NULL, T_MS(0)), -EINVAL);
    cr_assert_eq(weft_stream_shutdown(NULL, T_MS(0)), -EINVAL);
    cr_assert_eq(weft_stream_close(NULL), -EINVAL);
    /* None of them wrote: the bad writev took not even its first iovec. */
    cr_assert_eq(weft_stream_flush(p.s, T_MS(0)), 0);
    cr_assert_eq(t_unread(p.fd), 0);
    t_pair_close(&p);
    return 0;
}

Test(stream, bad_arguments_get_their_documented_errors, .timeout = 30)
{
    t_run(misuse_main, NULL);
}

static int close_main(void *arg)
{
    cr_assert_eq(weft_stream_close(arg), 0);
    return 0;
}

/* Outside a task: a call that must wait says -EPERM, and close keeps s. */
Test(stream, outside_a_task_is_eperm, .timeout = 30)
{
    int sv[2];
    weft_stream_t *s;
    char buf[4];

    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(weft_stream_new(&s, sv[0]), 0);
    cr_assert_eq(weft_stream_read(s, buf, sizeof(buf), WEFT_NO_DEADLINE),
                 -EPERM);
    cr_assert_eq(weft_stream_close(s), -EPERM);
    cr_assert_geq(fcntl(sv[0], F_GETFD), 0);
    t_run(close_main, s);
    cr_assert_eq(fcntl(sv[0], F_GETFD), -1);
    close(sv[1]);
}
