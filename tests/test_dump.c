/*
 * weft_dump: taken from a thread outside the runtime while its workers run
 * and tasks come and go, and parsed: it names the test's tasks, their
 * states and the (static) test functions they wait in. Identical waits
 * collapse into one line; WEFT_DUMP_SIGNAL writes the dump on a signal and
 * the program goes on.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "helpers.h"
#include "runtime/config.h"

/* The dump of rt as text (a memfd read back); weft_dump's result in *ret. */
static char *t_dump(weft_runtime_t *rt, int *ret)
{
    int fd = memfd_create("dump", MFD_CLOEXEC);
    off_t len;
    char *text;

    cr_assert_geq(fd, 0);
    *ret = weft_dump(rt, fd);
    len = lseek(fd, 0, SEEK_END);
    text = calloc(1, (size_t)len + 1);
    cr_assert_eq(pread(fd, text, (size_t)len, 0), len);
    close(fd);
    return text;
}

/* The line of text that holds needle, as a new string (NULL if none). */
static char *t_line(const char *text, const char *needle)
{
    const char *p = strstr(text, needle), *a, *b;

    if (!p)
        return NULL;
    for (a = p; a > text && a[-1] != '\n'; a--)
        ;
    b = strchr(p, '\n');
    return strndup(a, b ? (size_t)(b - a) : strlen(a));
}

/* Asserts text has a line holding each of the strings (NULL-terminated). */
static void t_has_line(const char *text, const char *first, ...)
{
    char *line = t_line(text, first);
    const char *s;
    va_list ap;

    cr_assert_not_null(line, "no line with '%s' in:\n%s", first, text);
    va_start(ap, first);
    while ((s = va_arg(ap, const char *)))
        cr_assert_not_null(strstr(line, s), "'%s' not in line '%s'", s,
                           line);
    va_end(ap);
    free(line);
}

/* ---- the tasks a dump shows ---------------------------------------------- */

static weft_queue_t queue;
static weft_task_t *sleeper, *getter, *spinner;
static atomic_bool stop_spinning;

/* A wait site is a return address: a wait in tail position would show
 * the caller's caller, so each waits in the middle of its function. */
#define NOT_A_TAIL_CALL() __asm__ volatile("" ::: "memory")

static __attribute__((noinline)) int dump_sleeper(void *arg)
{
    int ret;

    (void)arg;
    ret = weft_sleep_ms(600000);
    NOT_A_TAIL_CALL();
    return ret;
}

static __attribute__((noinline)) int dump_getter(void *arg)
{
    void *item;
    int ret;

    (void)arg;
    ret = weft_queue_get(&queue, &item, WEFT_NO_DEADLINE);
    NOT_A_TAIL_CALL();
    return ret;
}

static __attribute__((noinline)) int dump_spinner(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_spinning))
        if (weft_yield() < 0)
            break;
    return 0;
}

static int spawn_named(weft_task_t **h, weft_fn_t fn, const char *name)
{
    weft_spawn_opts_t opts = { .name = name };

    return weft_spawn_ex(h, fn, NULL, &opts);
}

static int setup(void *arg)
{
    (void)arg;
    cr_assert_eq(weft_queue_init(&queue, 1, 0), 0);
    cr_assert_eq(spawn_named(&sleeper, dump_sleeper, "dump-sleeper"), 0);
    cr_assert_eq(spawn_named(&getter, dump_getter, "dump-getter"), 0);
    cr_assert_eq(spawn_named(&spinner, dump_spinner, "dump-spinner"), 0);
    return 0;
}

static int teardown(void *arg)
{
    (void)arg;
    atomic_store(&stop_spinning, true);
    cr_assert_eq(weft_cancel(sleeper), 0);
    cr_assert_eq(weft_cancel(getter), 0);
    cr_assert_eq(weft_join(sleeper), -ECANCELED);
    cr_assert_eq(weft_join(getter), -ECANCELED);
    cr_assert_eq(weft_join(spinner), 0);
    cr_assert_eq(weft_queue_destroy(&queue), 0);
    return 0;
}

/* ---- churn: tasks start and end while dumps run -------------------------- */

static atomic_bool stop_churn;

static int short_task(void *arg)
{
    (void)arg;
    return weft_yield();
}

static int churn(void *arg)
{
    weft_spawn_opts_t opts = { .name = "churn-child" };

    (void)arg;
    while (!atomic_load(&stop_churn)) {
        weft_task_t *h;

        if (weft_spawn_ex(&h, short_task, NULL, &opts) == 0)
            weft_join(h);
    }
    return 0;
}

static void *dump_loop(void *arg)
{
    weft_runtime_t *rt = arg;
    int fd = memfd_create("churn", MFD_CLOEXEC);

    for (int i = 0; i < 200; i++) {
        cr_assert_geq(weft_dump(rt, fd), 3);
        ftruncate(fd, 0);
        lseek(fd, 0, SEEK_SET);
    }
    close(fd);
    return NULL;
}

Test(dump, from_a_foreign_thread_while_workers_run, .timeout = 120)
{
    weft_runtime_t *rt;
    weft_task_t *ch;
    pthread_t th[2];
    char *text;
    int ret;

    cr_assert_eq(weft_runtime_new(NULL, &rt), 0);
    cr_assert_eq(weft_runtime_block_on(rt, setup, NULL), 0);
    t_until_parked_in(sleeper, WHY_SLEEP);
    t_until_parked_in(getter, WHY_QUEUE);
    cr_assert_eq(weft_spawn_from(rt, &ch, churn, NULL), 0);

    text = t_dump(rt, &ret);
    cr_assert_geq(ret, 3, "%d", ret);
    cr_assert_not_null(strstr(text, "weft: task dump (weft_dump): "));
    t_has_line(text, "'dump-sleeper'", "parked, waiting in sleep at "
               "dump_sleeper+0x", "task function dump_sleeper+0x0 (",
               (char *)NULL);
    t_has_line(text, "'dump-getter'", "parked, waiting in queue at "
               "dump_getter+0x", "task function dump_getter+0x0 (",
               (char *)NULL);
    /* Running, queued or yielded: never parked, it never waits. */
    t_has_line(text, "'dump-spinner'", "task function dump_spinner+0x0 (",
               (char *)NULL);
    cr_assert_null(strstr(t_line(text, "'dump-spinner'"), "parked"));
    t_has_line(text, "  worker 0: ", "run queue ", (char *)NULL);
    t_has_line(text, "  injection queue: ", (char *)NULL);
    free(text);

    /* Two threads dumping at once while tasks start and end. */
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, dump_loop, rt), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    atomic_store(&stop_churn, true);
    cr_assert_eq(weft_runtime_block_on(rt, teardown, NULL), 0);
    cr_assert_eq(weft_runtime_free(rt), 0);
    (void)ch; /* spawned from outside: the shutdown's drain ends it */
}

/* ---- collapsing ---------------------------------------------------------- */

#define NSAME 10

static __attribute__((noinline)) int same_sleeper(void *arg)
{
    int ret;

    (void)arg;
    ret = weft_sleep_ms(600000);
    NOT_A_TAIL_CALL();
    return ret;
}

static int collapsed(void *arg)
{
    weft_task_t *h[NSAME];
    char *text, *line;
    int ret;

    (void)arg;
    for (int i = 0; i < NSAME; i++)
        cr_assert_eq(weft_spawn(&h[i], same_sleeper, NULL), 0);
    for (int i = 0; i < NSAME; i++)
        t_until_parked_in(h[i], WHY_SLEEP);
    /* From a task: the caller is left out. */
    text = t_dump(NULL, &ret);
    cr_assert_eq(ret, NSAME);
    line = t_line(text, "same_sleeper+0x0");
    cr_assert_not_null(line, "%s", text);
    cr_assert_not_null(strstr(line, "10 tasks: parked, waiting in sleep at "
                                    "same_sleeper+0x"), "%s", line);
    free(line);
    free(text);
    for (int i = 0; i < NSAME; i++)
        cr_assert_eq(weft_cancel(h[i]), 0);
    for (int i = 0; i < NSAME; i++)
        cr_assert_eq(weft_join(h[i]), -ECANCELED);
    return 0;
}

Test(dump, identical_waits_collapse, .timeout = 60)
{
    t_run(collapsed, NULL);
}

/* ---- errors -------------------------------------------------------------- */

Test(dump, errors, .timeout = 60)
{
    weft_runtime_t *rt;

    cr_assert_eq(weft_dump(NULL, 2), -EPERM);
    cr_assert_eq(weft_runtime_new(NULL, &rt), 0);
    cr_assert_eq(weft_dump(rt, -1), -EBADF);
    cr_assert_eq(weft_runtime_free(rt), 0);
    cr_assert_eq(weft_dump(rt, 2), -ESHUTDOWN);
}

/* ---- WEFT_DUMP_SIGNAL ---------------------------------------------------- */

static bool file_has(int fd, const char *needle)
{
    off_t len = lseek(fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)len + 1);
    bool has;

    cr_assert_eq(pread(fd, text, (size_t)len, 0), len);
    has = strstr(text, needle) != NULL;
    free(text);
    return has;
}

Test(dump, on_the_dump_signal_and_the_program_goes_on, .timeout = 60)
{
    int out = memfd_create("stderr", MFD_CLOEXEC), saved = dup(2);
    weft_runtime_t *rt;

    cr_assert_eq(setenv("WEFT_DUMP_SIGNAL", "USR1", 1), 0);
    cr_assert_eq(weft_runtime_new(NULL, &rt), 0);
    cr_assert_eq(weft_runtime_block_on(rt, setup, NULL), 0);
    t_until_parked_in(sleeper, WHY_SLEEP);
    t_until_parked_in(getter, WHY_QUEUE);
    cr_assert_geq(dup2(out, 2), 0);
    cr_assert_eq(kill(getpid(), SIGUSR1), 0);
    /* The signal thread writes it: wait until each task is listed (if
     * the dump never comes, the test runs into its timeout). */
    while (!file_has(out, "dump_getter+0x0") ||
           !file_has(out, "dump_sleeper+0x0") ||
           !file_has(out, "dump_spinner+0x0"))
        usleep(1000);
    dup2(saved, 2);
    cr_assert(file_has(out, "weft: task dump (signal 10)"));
    cr_assert(file_has(out, "'dump-sleeper': parked, waiting in sleep at "
                            "dump_sleeper+0x"));
    cr_assert(file_has(out, "'dump-getter': parked, waiting in queue at "
                            "dump_getter+0x"));
    /* Still running: its tasks go on and end as usual. */
    cr_assert_eq(weft_runtime_block_on(rt, teardown, NULL), 0);
    cr_assert_eq(weft_runtime_free(rt), 0);
    close(out);
    close(saved);
}

Test(dump, signal_names, .timeout = 60)
{
    weft_runtime_t *rt;
    int signo;

    cr_assert_eq(weft__config_dump_signal("QUIT", &signo), 0);
    cr_assert_eq(signo, SIGQUIT);
    cr_assert_eq(weft__config_dump_signal("SIGUSR1", &signo), 0);
    cr_assert_eq(signo, SIGUSR1);
    cr_assert_eq(weft__config_dump_signal("", &signo), 0);
    cr_assert_eq(signo, 0);
    cr_assert_eq(weft__config_dump_signal("URG", &signo), -EINVAL);
    cr_assert_eq(weft__config_dump_signal("SIGURG", &signo), -EINVAL);
    cr_assert_eq(weft__config_dump_signal("KILL", &signo), -EINVAL);
    cr_assert_eq(weft__config_dump_signal("bogus", &signo), -EINVAL);
    cr_assert_eq(setenv("WEFT_DUMP_SIGNAL", "URG", 1), 0);
    cr_assert_eq(weft_runtime_new(NULL, &rt), -EINVAL);
}
