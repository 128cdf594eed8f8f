/*
 * Unix-domain sockets by path: echo through a file socket and an abstract
 * one, names that do not fit, a stale socket file replaced, and the errors
 * of connecting where nothing listens.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "helpers.h"
#include "io_helpers.h"

/* A fresh directory for socket files; removed by t_rmdir. */
static void t_tmpdir(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/weft-unix-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

/* Connects to path, echoes a message through the server, and checks it. */
static void t_echo_through(const char *path)
{
    static const char msg[] = "a message through a unix socket";
    char buf[sizeof(msg)];
    int fd = weft_connect_unix(path, T_SECS(10));

    cr_assert_geq(fd, 0, "connect %s: %s", path, strerror(-fd));
    cr_assert_eq(weft_write_all(fd, msg, sizeof(msg), T_SECS(10)),
                 (ssize_t)sizeof(msg));
    cr_assert_eq(weft_read_exact(fd, buf, sizeof(buf), T_SECS(10)),
                 (ssize_t)sizeof(buf));
    cr_assert_str_eq(buf, msg);
    cr_assert_eq(weft_shutdown(fd, SHUT_WR), 0);
    cr_assert_eq(weft_read(fd, buf, sizeof(buf), -1, T_SECS(10)), 0);
    cr_assert_eq(weft_close(fd), 0);
}

/* Serves path with an echo server and runs n echoes at once through it. */
static int t_echo_at(const char *path, int n)
{
    int lfd = weft_listen_unix(path, 64, 0);
    weft_task_t *server;

    cr_assert_geq(lfd, 0, "listen %s: %s", path, strerror(-lfd));
    cr_assert_eq(weft_spawn(&server, t_echo_server, (void *)(intptr_t)lfd),
                 0);
    for (int i = 0; i < n; i++)
        t_echo_through(path);
    cr_assert_eq(weft_cancel(server), 0);
    cr_assert_eq(weft_join(server), 0);
    return weft_close(lfd);
}

static int echo_file(void *arg)
{
    char dir[64], path[128];
    struct stat st;

    (void)arg;
    t_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/echo.sock", dir);
    cr_assert_eq(t_echo_at(path, 4), 0);
    /* The file stays after the listener: the next server replaces it. */
    cr_assert_eq(lstat(path, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    cr_assert_eq(weft_connect_unix(path, T_SECS(10)), -ECONNREFUSED);
    cr_assert_eq(t_echo_at(path, 4), 0);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(rmdir(dir), 0);
    return 0;
}

Test(unix_socket, echo_through_a_socket_file, .timeout = 30)
{
    int fds = t_fds();

    t_run(echo_file, NULL);
    cr_assert_eq(t_fds(), fds);
}

static int echo_abstract(void *arg)
{
    char name[64];
    int fd;

    (void)arg;
    snprintf(name, sizeof(name), "@weft-unix-test-%d", (int)getpid());
    cr_assert_eq(t_echo_at(name, 4), 0);
    /* Gone with its listener: nothing to refuse from. */
    cr_assert_eq(weft_connect_unix(name, T_SECS(10)), -ECONNREFUSED);
    /* The name is taken while a listener has it. */
    fd = weft_listen_unix(name, 1, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(weft_listen_unix(name, 1, 0), -EADDRINUSE);
    cr_assert_eq(weft_close(fd), 0);
    return 0;
}

Test(unix_socket, echo_through_an_abstract_socket, .timeout = 30)
{
    int fds = t_fds();

    t_run(echo_abstract, NULL);
    cr_assert_eq(t_fds(), fds);
}

/* A path of len bytes: prefix, then 'x's. */
static char *t_long_path(const char *prefix, size_t len)
{
    char *p = malloc(len + 1);

    cr_assert_not_null(p);
    memset(p, 'x', len);
    memcpy(p, prefix, strlen(prefix));
    p[len] = '\0';
    return p;
}

/* Listens on path, connects to it and accepts the connection. */
static void t_connects(const char *path)
{
    int lfd = weft_listen_unix(path, 4, 0), fd, afd;

    cr_assert_geq(lfd, 0, "listen %s: %s", path, strerror(-lfd));
    fd = weft_connect_unix(path, T_SECS(10));
    cr_assert_geq(fd, 0, "connect %s: %s", path, strerror(-fd));
    afd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, T_SECS(10));
    cr_assert_geq(afd, 0);
    cr_assert_eq(weft_close(afd), 0);
    cr_assert_eq(weft_close(fd), 0);
    cr_assert_eq(weft_close(lfd), 0);
}

static int names_that_do_not_fit(void *arg)
{
    size_t size = sizeof(((struct sockaddr_un *)0)->sun_path);
    char file_prefix[32], abstract_prefix[32];
    char *file, *abstract, *longest_file, *longest_abstract;

    /* This process's own names: ctest runs the worker counts and
     * backends of this file at once, and a listener on another's name
     * would take the connection (a stale file is replaced). */
    snprintf(file_prefix, sizeof(file_prefix), "/tmp/weft-%d-",
             (int)getpid());
    snprintf(abstract_prefix, sizeof(abstract_prefix), "@weft-%d-",
             (int)getpid());
    file = t_long_path(file_prefix, size);
    abstract = t_long_path(abstract_prefix, size + 1);
    longest_file = t_long_path(file_prefix, size - 1);
    longest_abstract = t_long_path(abstract_prefix, size);

    (void)arg;
    cr_assert_eq(weft_listen_unix(file, 1, 0), -ENAMETOOLONG);
    cr_assert_eq(weft_connect_unix(file, T_SECS(1)), -ENAMETOOLONG);
    cr_assert_eq(weft_listen_unix(abstract, 1, 0), -ENAMETOOLONG);
    cr_assert_eq(weft_connect_unix(abstract, T_SECS(1)), -ENAMETOOLONG);
    /* One byte less fits: a file path with its NUL, an abstract name
     * after its leading NUL. */
    t_connects(longest_file);
    cr_assert_eq(unlink(longest_file), 0);
    t_connects(longest_abstract);
    free(file);
    free(abstract);
    free(longest_file);
    free(longest_abstract);
    return 0;
}

Test(unix_socket, names_that_do_not_fit, .timeout = 30)
{
    t_run(names_that_do_not_fit, NULL);
}

static int errors(void *arg)
{
    char dir[64], path[128], missing[160];
    int fd;

    (void)arg;
    t_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/file", dir);
    snprintf(missing, sizeof(missing), "%s/none/x.sock", dir);
    cr_assert_eq(weft_listen_unix(NULL, 1, 0), -EINVAL);
    cr_assert_eq(weft_listen_unix("", 1, 0), -EINVAL);
    cr_assert_eq(weft_listen_unix("@", 1, 0), -EINVAL);
    cr_assert_eq(weft_listen_unix("@weft-x", -1, 0), -EINVAL);
    cr_assert_eq(weft_listen_unix("@weft-x", 1, 1), -EINVAL);
    cr_assert_eq(weft_connect_unix(NULL, 0), -EINVAL);
    cr_assert_eq(weft_connect_unix("", 0), -EINVAL);
    cr_assert_eq(weft_connect_unix("@", 0), -EINVAL);
    /* Nothing there, or no such directory. */
    cr_assert_eq(weft_connect_unix(path, T_SECS(1)), -ENOENT);
    cr_assert_eq(weft_listen_unix(missing, 1, 0), -ENOENT);
    /* A file that is not a socket is never removed. */
    fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(weft_listen_unix(path, 1, 0), -EADDRINUSE);
    cr_assert_eq(weft_connect_unix(path, T_SECS(1)), -ECONNREFUSED);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(rmdir(dir), 0);
    return 0;
}

Test(unix_socket, bad_names_and_nothing_listening, .timeout = 30)
{
    int fds = t_fds();
    char name[64];
    int fd;

    snprintf(name, sizeof(name), "@weft-unix-outside-%d", (int)getpid());
    fd = weft_listen_unix(name, 1, 0);
    /* Listening needs no task; connecting suspends, so it does. */
    cr_assert_geq(fd, 0);
    cr_assert_eq(close(fd), 0);
    cr_assert_eq(weft_connect_unix(name, 0), -EPERM);
    t_run(errors, NULL);
    cr_assert_eq(t_fds(), fds);
}
