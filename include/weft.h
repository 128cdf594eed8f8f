/*
 * weft: Python's asyncio model in C, on a multi-threaded work-stealing
 * runtime with one io_uring event loop per worker thread.
 *
 * A task is a function `int fn(void *arg)` running on its own fiber. Calls
 * that may suspend (weft_join, weft_sleep_ms, weft_yield, ...) park the task
 * and let its worker run others; idle workers steal runnable tasks from busy
 * ones, so a task may resume on another thread after any suspension point
 * (do not cache thread-local addresses, errno included, across one).
 *
 * Errors: a call that can fail returns 0 (or a non-negative value) on
 * success and a negative errno on failure. A suspending call made outside a
 * task returns -EPERM. A task that is cancelled sees -ECANCELED at its next
 * suspension point, once per weft_cancel().
 *
 * Time is CLOCK_MONOTONIC; deadlines are absolute nanoseconds as returned by
 * weft_now_ns().
 */
#ifndef WEFT_H
#define WEFT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(WEFT_BUILDING)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0

/* A deadline that never passes. */
#define WEFT_NO_DEADLINE INT64_MAX

typedef struct weft_task weft_task_t;

/* The body of a task: its return value is the task's status (see weft_join). */
typedef int (*weft_fn_t)(void *arg);

/* Three-valued switches in weft_config_t: unset fields fall back. */
enum weft_flag {
    WEFT_FLAG_UNSET = 0, /* the environment variable, else the default */
    WEFT_FLAG_ON = 1,
    WEFT_FLAG_OFF = 2,
};

/*
 * Runtime configuration. Every field has an environment variable, read when
 * the runtime starts; a field that is set (non-zero) overrides it. Zero the
 * struct (or call weft_config_init) and set what you need.
 */
typedef struct weft_config {
    unsigned workers;      /* WEFT_WORKERS: worker threads; default: the CPUs
                              in the process's affinity mask */
    size_t stack_size;     /* WEFT_STACK_SIZE: fiber stack bytes (env accepts
                              K/M suffixes); default 256 KiB, minimum 16 KiB */
    enum weft_flag pin;    /* WEFT_PIN: pin worker i to the i-th allowed CPU */
    enum weft_flag debug;  /* WEFT_DEBUG: slow-task warnings, errors of
                              detached tasks, leftover-task reports */
    const char *io;        /* WEFT_IO: "uring" (default) or "epoll" */
    unsigned ring_entries; /* WEFT_RING_ENTRIES: SQ entries per worker ring;
                              default 256, a power of two up to 32768 */
    enum weft_flag sqpoll; /* WEFT_SQPOLL: a kernel SQ polling thread per ring */
    unsigned blocking_threads;      /* WEFT_BLOCKING_THREADS; default 64 */
    unsigned blocking_keepalive_ms; /* WEFT_BLOCKING_KEEPALIVE_MS; default
                                       10000 */
} weft_config_t;

/* Marks every field of cfg unset. */
WEFT_API void weft_config_init(weft_config_t *cfg);

/*
 * asyncio.run(): starts the runtime (configured from the environment), runs
 * fn(arg) as the main task, and when it returns cancels and waits for the
 * tasks still alive, stops the workers and frees everything.
 * Called from a thread that is not a weft worker; does not return early.
 * Returns fn's status, or:
 *   -EINVAL  a WEFT_* variable has a bad value (named on stderr), or fn NULL
 *   -ENOMEM  out of memory while starting
 *   -EPERM   called from inside a task
 *   other    negative errno from creating threads or the I/O backend
 */
WEFT_API int weft_run(weft_fn_t fn, void *arg);

/* weft_run with a configuration; cfg may be NULL. Same returns. */
WEFT_API int weft_run_with(const weft_config_t *cfg, weft_fn_t fn, void *arg);

/* Options for weft_spawn_ex. Zero-initialise and set what you need. */
typedef struct weft_spawn_opts {
    const char *name;  /* copied (up to 31 bytes); shown in reports */
    size_t stack_size; /* 0: the runtime's WEFT_STACK_SIZE */
} weft_spawn_opts_t;

/*
 * asyncio.create_task(): makes fn(arg) a new runnable task. If out is not
 * NULL it receives a handle that must be released with exactly one of
 * weft_join or weft_detach; with out NULL the task starts detached.
 * Does not suspend. Called from a task.
 * Returns 0, or:
 *   -EPERM   not called from a task
 *   -EINVAL  fn is NULL, or a stack size below 16 KiB
 *   -ENOMEM  no memory for the task
 */
WEFT_API int weft_spawn(weft_task_t **out, weft_fn_t fn, void *arg);

/* weft_spawn with options (opts may be NULL). Same returns. */
WEFT_API int weft_spawn_ex(weft_task_t **out, weft_fn_t fn, void *arg,
                           const weft_spawn_opts_t *opts);

/*
 * Awaiting a task: suspends until t finishes, releases the handle and
 * returns t's status: fn's return value (>= 0 or a negative errno), or
 * -ECANCELED if t was cancelled before it started. If the joining task is
 * cancelled while it waits, the cancellation is passed on to t (as awaiting
 * a task does in asyncio) and the join still waits for t to finish, so the
 * handle is always released.
 * Called from a task. Returns t's status, or:
 *   -EPERM    not called from a task (the handle is not released)
 *   -EINVAL   t is NULL
 *   -EDEADLK  t is the calling task
 */
WEFT_API int weft_join(weft_task_t *t);

/*
 * Releases a handle without waiting: t runs on, and is freed when it ends.
 * In debug mode a detached task that fails is reported on stderr.
 * Does not suspend; callable from any thread. Returns 0 or -EINVAL (NULL).
 */
WEFT_API int weft_detach(weft_task_t *t);

/*
 * Requests cancellation: t's next suspension point (or the one it is parked
 * in now) returns -ECANCELED; a task that has not started yet never runs
 * and finishes with -ECANCELED. One request is delivered once; t may clean up
 * and even suspend again. Cancelling a finished task does nothing.
 * Does not suspend; callable from any thread while the handle is held.
 * Returns 0 or -EINVAL (NULL).
 */
WEFT_API int weft_cancel(weft_task_t *t);

/*
 * Lets other runnable tasks run, then continues (asyncio.sleep(0)).
 * Returns 0, -ECANCELED, or -EPERM outside a task.
 */
WEFT_API int weft_yield(void);

/*
 * Suspends the task for a duration, or until an absolute deadline
 * (weft_now_ns() clock). Timers are per worker, accurate to about a
 * millisecond. Returns 0 when the time has passed, or:
 *   -ECANCELED  the task was cancelled while sleeping
 *   -ETIMEDOUT  an enclosing timeout scope expired first
 *   -EINVAL     a negative duration
 *   -EPERM      not called from a task
 */
WEFT_API int weft_sleep_ms(int64_t ms);
WEFT_API int weft_sleep_ns(int64_t ns);
WEFT_API int weft_sleep_until(int64_t deadline_ns);

/* The running task, or NULL outside a task. Never suspends. */
WEFT_API weft_task_t *weft_self(void);

/* t's name ("" if it has none); t NULL means the running task. */
WEFT_API const char *weft_task_name(const weft_task_t *t);

/* CLOCK_MONOTONIC now, in nanoseconds. */
WEFT_API int64_t weft_now_ns(void);

/* Index of the worker running the caller, or -1 outside a worker. */
WEFT_API int weft_worker_id(void);

#ifdef __cplusplus
}
#endif

#endif
