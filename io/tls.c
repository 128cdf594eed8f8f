/*
 * TLS over OpenSSL, as a transport of a stream (stream.h).
 *
 * Never blocking a worker. OpenSSL talks to the socket through a BIO of
 * ours that never waits: it reads from `cin`, the ciphertext received and
 * not yet consumed, and sends with MSG_DONTWAIT (and MSG_NOSIGNAL: a
 * closed peer is EPIPE, never SIGPIPE), whatever O_NONBLOCK says, so no
 * SSL call can block its thread. When OpenSSL wants more input, the task
 * receives into cin with weft_recv (one io_uring recv, rather than a
 * failed recv, a poll and a recv again) and calls again; when the socket
 * cannot take more output, it waits with weft_wait_fd. The worker runs
 * other tasks meanwhile. A weft_recv that is cancelled returns bytes or an
 * error, never both, so no ciphertext is lost to a cancellation.
 *
 * The error queue. OpenSSL reports failures in a queue per thread, and a
 * task may resume on another worker after any suspension. So each SSL call
 * runs in one step that never suspends (tls_step): clear the queue, make
 * the call, read SSL_get_error and the queue into the connection, and
 * after a failure clear the queue again. A task therefore only ever reads
 * errors its own call left, on the thread where it made it, and leaves
 * nothing behind for the next task on that thread.
 *
 * Sharing. One SSL object serves both directions, and OpenSSL does not
 * allow two threads in it at once, while a stream may have a reader and a
 * writer on two workers. lock is held for each step only, never while
 * waiting for the socket. It is a spin lock: a step is CPU work that never
 * suspends, the two directions rarely meet, and taking it cannot fail, so
 * no cancellation can leave a received buffer unpublished. rlock lets one
 * task at a time receive into cin (a writer may need input too, in a
 * handshake or a key update); the receive runs outside lock, into cin
 * while it is empty, and its result is published under lock.
 *
 * Writes. With SSL_MODE_ENABLE_PARTIAL_WRITE an SSL_write may send part of
 * its buffer, and a write that must be retried must be retried with the
 * same bytes: the stream sends TLS only from its own write buffer (never
 * straight from the caller's, see stream.c), whose unsent bytes stay in
 * place until sent, even across a cancellation.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "../runtime/mem.h"
#include "../runtime/spin.h"
#include "stream.h"
#include "weft.h"

/* The ciphertext one receive may take: a whole record of the largest size
 * (16 KiB of plaintext and its overhead), so that one read of the socket
 * usually gives OpenSSL a record to decrypt. */
#define CIN_CAP (16384 + 2048)

struct weft_tls {
    SSL_CTX *ctx;
    bool server;
    atomic_int refs;         /* the owner's, and one per stream using it */
    unsigned char alpn[256]; /* the protocols, in ALPN's wire format */
    unsigned alpn_len;
    char reason[256];        /* why the last setup call failed */
};

struct tls_conn {
    SSL *ssl;
    struct weft_tls *tls;
    struct weft__spin lock; /* held around each tls_step */
    weft_mutex_t rlock; /* held by the task receiving into cin */
    int fd;
    int sys_err;        /* errno of the BIO's last failed send */
    /* Ciphertext received, cin[cin_pos, cin_len), under lock; the
     * receiving task (rlock) fills it when empty. */
    char *cin;
    size_t cin_pos, cin_len;
    bool cin_eof;       /* the peer ended the stream */
    int broken;         /* once the handshake failed: what every call gets */
    char alpn[256];     /* the negotiated protocol, "" if none */
    char reason[256];   /* why the last call failed, "" if none did */
};

/* ---- the BIO ------------------------------------------------------------ */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *buf, int len)
{
    struct tls_conn *c = BIO_get_data(b);
    ssize_t n = send(c->fd, buf, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL);

    BIO_clear_retry_flags(b);
    if (n >= 0)
        return (int)n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        BIO_set_retry_write(b);
    else
        c->sys_err = errno;
    return -1;
}

/* What was received, or "retry" (tls_run then receives more). */
static int bio_read(BIO *b, char *buf, int len)
{
    struct tls_conn *c = BIO_get_data(b);
    size_t n = c->cin_len - c->cin_pos;

    BIO_clear_retry_flags(b);
    if (n == 0) {
        if (c->cin_eof)
            return 0;
        BIO_set_retry_read(b);
        return -1;
    }
    if (n > (size_t)len)
        n = (size_t)len;
    memcpy(buf, c->cin + c->cin_pos, n);
    c->cin_pos += n;
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    /* Writes go straight to the socket: a flush has nothing to do. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static void bio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                                 "weft");

    if (m && BIO_meth_set_write(m, bio_write) &&
        BIO_meth_set_read(m, bio_read) && BIO_meth_set_ctrl(m, bio_ctrl))
        bio_method = m;
}

/* ---- contexts ------------------------------------------------------------ */

/* The reason of the first error in the calling thread's queue (the call
 * that failed was made in this step), and a negative errno for it:
 * system errors (a missing file) keep theirs, anything else is -EINVAL. */
static int setup_error(struct weft_tls *tls)
{
    unsigned long e = ERR_peek_error();
    int ret = -EINVAL;

    if (e && ERR_GET_LIB(e) == ERR_LIB_SYS && ERR_GET_REASON(e) > 0)
        ret = -ERR_GET_REASON(e);
    if (e)
        ERR_error_string_n(e, tls->reason, sizeof(tls->reason));
    else
        snprintf(tls->reason, sizeof(tls->reason), "unknown TLS error");
    ERR_clear_error();
    return ret;
}

static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg)
{
    struct weft_tls *tls = arg;
    unsigned char *sel;

    (void)ssl;
    /* RFC 7301: no protocol in common is a fatal alert. */
    if (SSL_select_next_proto(&sel, outlen, tls->alpn, tls->alpn_len, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

int weft_tls_new(weft_tls_t **out, int mode)
{
    struct weft_tls *tls;
    int ret = -ENOMEM;

    if (!out || (mode != WEFT_TLS_CLIENT && mode != WEFT_TLS_SERVER))
        return -EINVAL;
    if (!(tls = weft__zalloc(sizeof(*tls))))
        return -ENOMEM;
    ERR_clear_error();
    tls->server = mode == WEFT_TLS_SERVER;
    tls->ctx = SSL_CTX_new(tls->server ? TLS_server_method()
                                       : TLS_client_method());
    if (!tls->ctx)
        goto out_free;
    SSL_CTX_set_min_proto_version(tls->ctx, TLS1_2_VERSION);
    if (!tls->server) {
        /* Verification is on unless turned off: the system's store. */
        SSL_CTX_set_verify(tls->ctx, SSL_VERIFY_PEER, NULL);
        if (!SSL_CTX_set_default_verify_paths(tls->ctx)) {
            ret = setup_error(tls);
            goto out_ctx;
        }
    }
    ERR_clear_error();
    atomic_init(&tls->refs, 1);
    *out = tls;
    return 0;

out_ctx:
    SSL_CTX_free(tls->ctx);
out_free:
    ERR_clear_error();
    weft__free(tls, sizeof(*tls));
    return ret;
}

static void tls_unref(struct weft_tls *tls)
{
    /* acq_rel: the last one sees every other holder's uses end. */
    if (atomic_fetch_sub_explicit(&tls->refs, 1, memory_order_acq_rel) == 1) {
        SSL_CTX_free(tls->ctx);
        weft__free(tls, sizeof(*tls));
    }
}

void weft__tls_hold(struct weft_tls *tls)
{
    atomic_fetch_add_explicit(&tls->refs, 1, memory_order_relaxed);
}

bool weft__tls_is_server(const struct weft_tls *tls) { return tls->server; }

int weft_tls_free(weft_tls_t *tls)
{
    if (!tls)
        return -EINVAL;
    tls_unref(tls);
    return 0;
}

int weft_tls_set_cert(weft_tls_t *tls, const char *cert_file,
                      const char *key_file)
{
    if (!tls || !cert_file || !key_file)
        return -EINVAL;
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(tls->ctx, cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(tls->ctx, key_file,
                                    SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(tls->ctx) != 1)
        return setup_error(tls);
    return 0;
}

int weft_tls_set_ca(weft_tls_t *tls, const char *ca_file)
{
    if (!tls || !ca_file)
        return -EINVAL;
    ERR_clear_error();
    if (SSL_CTX_load_verify_locations(tls->ctx, ca_file, NULL) != 1)
        return setup_error(tls);
    return 0;
}

int weft_tls_set_verify(weft_tls_t *tls, bool verify)
{
    int mode = SSL_VERIFY_NONE;

    if (!tls)
        return -EINVAL;
    if (verify)
        mode = SSL_VERIFY_PEER |
               (tls->server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    SSL_CTX_set_verify(tls->ctx, mode, NULL);
    return 0;
}

int weft_tls_set_alpn(weft_tls_t *tls, const char *protocols)
{
    unsigned len = 0;

    if (!tls || !protocols)
        return -EINVAL;
    /* "h2,http/1.1" to 2 'h' '2' 8 'h' 't' ... */
    for (const char *p = protocols; *p;) {
        size_t n = strcspn(p, ",");

        if (n == 0 || n > 255 || len + 1 + n > sizeof(tls->alpn))
            return -EINVAL;
        tls->alpn[len] = (unsigned char)n;
        memcpy(tls->alpn + len + 1, p, n);
        len += 1 + (unsigned)n;
        p += n + (p[n] == ',');
    }
    if (len == 0)
        return -EINVAL;
    tls->alpn_len = len;
    if (tls->server)
        SSL_CTX_set_alpn_select_cb(tls->ctx, alpn_select, tls);
    else if (SSL_CTX_set_alpn_protos(tls->ctx, tls->alpn, len) != 0)
        return -ENOMEM; /* inverted: 0 is success */
    return 0;
}

const char *weft_tls_error(const weft_tls_t *tls)
{
    return tls ? tls->reason : "";
}

/* ---- one SSL call -------------------------------------------------------- */

enum step { STEP_HANDSHAKE, STEP_READ, STEP_WRITE, STEP_SHUTDOWN };

/*
 * Notes why the call failed: the first error in the queue, or the
 * certificate check's verdict. Returns the errno for it:
 *   -EKEYREJECTED  the peer's certificate did not verify
 *   -ECONNRESET    the peer closed the connection without close_notify
 *   -EPROTO        any other TLS failure (an alert, a protocol mismatch)
 */
static int note_error(struct tls_conn *c)
{
    unsigned long e = ERR_peek_error();
    long v = SSL_get_verify_result(c->ssl);

    if (e && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
        v != X509_V_OK) {
        snprintf(c->reason, sizeof(c->reason),
                 "certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
        return -EKEYREJECTED;
    }
    if (e)
        ERR_error_string_n(e, c->reason, sizeof(c->reason));
    if (e && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
        return -ECONNRESET;
    if (!e)
        snprintf(c->reason, sizeof(c->reason), "TLS failure");
    return -EPROTO;
}

/*
 * One SSL call, made and its errors read without a suspension in between
 * (see the top of the file). Returns > 0 or 0 for the call's success (the
 * bytes moved for reads and writes; 0 at a read's end of stream), -EAGAIN
 * with *events set to what to wait for, or a negative errno.
 */
static ssize_t tls_step(struct tls_conn *c, enum step step, void *buf,
                        size_t len, short *events)
{
    size_t done = 0;
    int r = 0, e;

    ERR_clear_error();
    c->sys_err = 0;
    switch (step) {
    case STEP_HANDSHAKE: r = SSL_do_handshake(c->ssl); break;
    case STEP_READ: r = SSL_read_ex(c->ssl, buf, len, &done); break;
    case STEP_WRITE: r = SSL_write_ex(c->ssl, buf, len, &done); break;
    case STEP_SHUTDOWN: r = SSL_shutdown(c->ssl); break;
    }
    e = r > 0 || (step == STEP_SHUTDOWN && r == 0) ? SSL_ERROR_NONE
                                                   : SSL_get_error(c->ssl, r);
    switch (e) {
    case SSL_ERROR_NONE: r = (int)done; break;
    case SSL_ERROR_WANT_READ: *events = POLLIN; r = -EAGAIN; break;
    case SSL_ERROR_WANT_WRITE: *events = POLLOUT; r = -EAGAIN; break;
    case SSL_ERROR_ZERO_RETURN: r = step == STEP_READ ? 0 : -ECONNRESET; break;
    case SSL_ERROR_SYSCALL:
        if (c->sys_err) {
            r = -c->sys_err;
            snprintf(c->reason, sizeof(c->reason), "%s",
                     strerror(c->sys_err));
            break;
        }
        if (!ERR_peek_error()) {
            r = -ECONNRESET;
            snprintf(c->reason, sizeof(c->reason),
                     "the peer closed the connection during TLS");
            break;
        }
        /* fallthrough */
    default: r = note_error(c);
    }
    /* Success and "want" leave nothing in the queue; a failure's entries
     * are read now and go, so the next task on this thread finds none. */
    if (r < 0 && r != -EAGAIN)
        ERR_clear_error();
    return r;
}

/* Repeats a step until it completes, waiting for the socket in between. */
/* Receives ciphertext into cin, unless another task did since this one
 * found it empty. 0 or a negative errno. */
static int receive(struct tls_conn *c, int64_t deadline)
{
    bool empty;
    ssize_t n;
    int ret;

    if ((ret = weft_mutex_lock(&c->rlock, deadline)) < 0)
        return ret;
    if (!c->cin && !(c->cin = weft__alloc(CIN_CAP))) {
        weft_mutex_unlock(&c->rlock);
        return -ENOMEM;
    }
    /* Only the rlock holder adds to cin, so it stays empty if it is. */
    weft__spin_lock(&c->lock);
    empty = c->cin_pos == c->cin_len && !c->cin_eof;
    weft__spin_unlock(&c->lock);
    if (!empty)
        goto out;
    n = weft_recv(c->fd, c->cin, CIN_CAP, 0, deadline);
    /* lock orders these stores before the BIO's reads of cin. */
    weft__spin_lock(&c->lock);
    if (n >= 0) {
        c->cin_pos = 0;
        c->cin_len = (size_t)n;
        c->cin_eof = n == 0;
    } else if (n != -ECANCELED && n != -ETIMEDOUT) {
        snprintf(c->reason, sizeof(c->reason), "%s", strerror((int)-n));
    }
    weft__spin_unlock(&c->lock);
    ret = n < 0 ? (int)n : 0;
out:
    weft_mutex_unlock(&c->rlock);
    return ret;
}

static ssize_t tls_run(struct tls_conn *c, enum step step, void *buf,
                       size_t len, int64_t deadline)
{
    short events = 0;
    ssize_t n;
    int ret;

    if (c->broken)
        return c->broken;
    for (;;) {
        weft__spin_lock(&c->lock);
        n = tls_step(c, step, buf, len, &events);
        weft__spin_unlock(&c->lock);
        if (n != -EAGAIN)
            return n;
        if (events == POLLIN)
            ret = receive(c, deadline);
        else
            ret = weft_wait_fd(c->fd, POLLOUT, deadline);
        if (ret < 0)
            return ret;
    }
}

/* ---- the transport ------------------------------------------------------ */

static ssize_t tls_recv(struct weft_stream *s, void *buf, size_t len,
                        int64_t deadline)
{
    return tls_run(s->tls, STEP_READ, buf, len, deadline);
}

static ssize_t tls_send(struct weft_stream *s, const void *buf, size_t len,
                        int64_t deadline)
{
    return tls_run(s->tls, STEP_WRITE, (void *)buf, len, deadline);
}

static int tls_shutdown(struct weft_stream *s, int64_t deadline)
{
    struct tls_conn *c = s->tls;
    ssize_t ret;

    /* close_notify, without waiting for the peer's. */
    if ((ret = tls_run(c, STEP_SHUTDOWN, NULL, 0, deadline)) < 0)
        return (int)ret;
    return weft_shutdown(s->fd, SHUT_WR);
}

static void tls_release(struct weft_stream *s)
{
    struct tls_conn *c = s->tls;

    SSL_free(c->ssl); /* and the BIO */
    ERR_clear_error();
    weft__free(c->cin, CIN_CAP);
    weft_mutex_destroy(&c->rlock);
    tls_unref(c->tls);
    weft__free(c, sizeof(*c));
}

static const struct weft__stream_transport tls_transport = {
    .recv = tls_recv,
    .send = tls_send,
    .shutdown = tls_shutdown,
    .release = tls_release,
};

/* ---- starting TLS on a stream ------------------------------------------ */

/* Sets the name the client sends (SNI) and checks the certificate for:
 * an IP address is checked as one and sent as nothing. */
static int set_peer_name(SSL *ssl, const char *name)
{
    unsigned char ip[16];

    if (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
    return SSL_set_tlsext_host_name(ssl, name) && SSL_set1_host(ssl, name);
}

static struct tls_conn *conn_new(struct weft_tls *tls, int fd,
                                 const char *name)
{
    struct tls_conn *c = weft__zalloc(sizeof(*c));
    BIO *bio;

    pthread_once(&bio_once, bio_method_init);
    if (!c || !bio_method)
        goto out_free;
    ERR_clear_error();
    c->fd = fd;
    if (!(c->ssl = SSL_new(tls->ctx)))
        goto out_free;
    if (!(bio = BIO_new(bio_method)))
        goto out_ssl;
    BIO_set_data(bio, c);
    BIO_set_init(bio, 1);
    SSL_set_bio(c->ssl, bio, bio);
    SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
                             SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (tls->server)
        SSL_set_accept_state(c->ssl);
    else
        SSL_set_connect_state(c->ssl);
    if (name && !set_peer_name(c->ssl, name))
        goto out_ssl;
    weft__spin_init(&c->lock);
    weft_mutex_init(&c->rlock);
    weft__tls_hold(tls);
    c->tls = tls;
    ERR_clear_error();
    return c;

out_ssl:
    SSL_free(c->ssl);
out_free:
    ERR_clear_error();
    weft__free(c, sizeof(*c));
    return NULL;
}

int weft_stream_start_tls(weft_stream_t *s, weft_tls_t *tls,
                          const char *server_name, int64_t deadline)
{
    struct tls_conn *c;
    const unsigned char *proto;
    unsigned plen;
    ssize_t ret;

    if (!s || !tls || (!tls->server && !server_name &&
                       SSL_CTX_get_verify_mode(tls->ctx) != SSL_VERIFY_NONE))
        return -EINVAL;
    if (s->tls || s->rend > s->rpos)
        return -EBUSY;
    if (!s->is_sock)
        return -ENOTSOCK;
    /* Plaintext written before must leave as plaintext. */
    if ((ret = weft_stream_flush(s, deadline)) < 0)
        return (int)ret;
    if (!(c = conn_new(tls, s->fd, tls->server ? NULL : server_name)))
        return -ENOMEM;
    s->tls = c;
    s->tp = &tls_transport;
    if ((ret = tls_run(c, STEP_HANDSHAKE, NULL, 0, deadline)) < 0) {
        c->broken = -ENOTCONN;
        return (int)ret;
    }
    SSL_get0_alpn_selected(c->ssl, &proto, &plen);
    if (plen) {
        memcpy(c->alpn, proto, plen);
        c->alpn[plen] = '\0';
    }
    return 0;
}

const char *weft_stream_tls_error(const weft_stream_t *s)
{
    return s && s->tls ? ((struct tls_conn *)s->tls)->reason : "";
}

const char *weft_stream_tls_alpn(const weft_stream_t *s)
{
    struct tls_conn *c = s ? s->tls : NULL;

    return c && c->alpn[0] ? c->alpn : NULL;
}

const char *weft_stream_tls_server_name(const weft_stream_t *s)
{
    struct tls_conn *c = s ? s->tls : NULL;

    return c ? SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}
