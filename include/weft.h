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
 * Tasks run in parallel: unlike asyncio's, two tasks on two workers run at
 * the same instant, so data they share needs a weft_mutex_t, a weft_queue_t
 * or atomics, even where neither task ever suspends. WEFT_WORKERS=1 gives
 * asyncio's one-thread interleaving back.
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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/select.h> /* sigset_t, whatever the feature macros */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

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
typedef struct weft_runtime weft_runtime_t;

struct addrinfo; /* <netdb.h> */

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
                              K/M/G suffixes); default 256 KiB, from 16 KiB
                              to 1 GiB */
    enum weft_flag pin;    /* WEFT_PIN: pin worker i to the i-th allowed CPU */
    enum weft_flag debug;  /* WEFT_DEBUG: slow-task warnings, errors of
                              detached tasks, leftover-task reports */
    const char *io;        /* WEFT_IO: "uring" or "epoll". Unset: io_uring
                              if it works here end to end (a ring set up
                              and a request taken through it; a seccomp
                              filter or security module may refuse either
                              step), else epoll. "uring" asked for where it
                              does not work is an error (-EOPNOTSUPP), never
                              a silent fallback. Under Valgrind: epoll */
    unsigned ring_entries; /* WEFT_RING_ENTRIES: SQ entries per worker ring;
                              default 256, a power of two up to 32768 */
    enum weft_flag sqpoll; /* WEFT_SQPOLL: a kernel SQ polling thread per ring */
    unsigned blocking_threads;      /* WEFT_BLOCKING_THREADS: most threads
                                       of the blocking pool; default 64, at
                                       most 65536 */
    unsigned blocking_keepalive_ms; /* WEFT_BLOCKING_KEEPALIVE_MS: idle time
                                       before a pool thread exits; default
                                       10000, at most INT32_MAX (the
                                       variable also accepts 0: exit as
                                       soon as idle) */
    int stall_ms;          /* WEFT_STALL_MS: a worker that runs one task
                              this long without a suspension point is
                              stuck: other workers take over its ready work
                              (its LIFO task, due timers, completed I/O)
                              until it comes back, and debug mode reports
                              the task and its function. Default 10, at
                              most 60000; WEFT_STALL_OFF (or the variable
                              set to 0) turns detection off. Uses SIGURG on
                              worker threads (see weft_block_in_place) */
} weft_config_t;

/* weft_config_t.stall_ms: no stall detection. */
#define WEFT_STALL_OFF (-1)

/* Marks every field of cfg unset. */
WEFT_API void weft_config_init(weft_config_t *cfg);

/*
 * asyncio.run(): starts the runtime (configured from the environment), runs
 * fn(arg) as the main task, and when it returns cancels and waits for the
 * tasks still alive (blocking-pool jobs already running finish first),
 * stops the signal thread, the blocking pool and the workers, restores any
 * signal disposition weft_signal_wait replaced, and frees everything: no
 * thread or descriptor of weft's outlives the call (with WEFT_SQPOLL, the
 * kernel ends its polling threads a few milliseconds after their rings are
 * gone). It is
 * weft_runtime_new + weft_runtime_block_on + weft_runtime_free.
 * Called from a thread that is not a weft worker; does not return early.
 * Returns fn's status, or:
 *   -EINVAL      a WEFT_* variable has a bad value (named on stderr), or fn
 *                NULL
 *   -ENOMEM      out of memory while starting
 *   -EPERM       called from inside a task (or from a process forked by
 *                one)
 *   -EOPNOTSUPP  io_uring was asked for (WEFT_IO=uring or config.io) and
 *                cannot be used here (the failing call and its error are
 *                named on stderr)
 *   other        negative errno from creating threads or the I/O backend
 */
WEFT_API int weft_run(weft_fn_t fn, void *arg);

/* weft_run with a configuration; cfg may be NULL. Same returns. */
WEFT_API int weft_run_with(const weft_config_t *cfg, weft_fn_t fn, void *arg);

/* Options for weft_spawn_ex. Zero-initialise and set what you need. */
typedef struct weft_spawn_opts {
    const char *name;  /* copied (up to 31 bytes); shown in reports */
    size_t stack_size; /* 0: the runtime's WEFT_STACK_SIZE; else from 16 KiB
                          to 1 GiB */
} weft_spawn_opts_t;

/*
 * asyncio.create_task(): makes fn(arg) a new runnable task. If out is not
 * NULL it receives a handle that must be released with exactly one of
 * weft_join or weft_detach; with out NULL the task starts detached.
 *
 * Handles: task memory is reused once a task has ended and its handle is
 * released, and a handle value names one task, not its memory. Every call
 * that takes a handle refuses one that was already released (joined,
 * detached, consumed by weft_gather, weft_wait_for or weft_shield) with
 * -EINVAL, without touching whatever task runs there now; so does a value
 * that never was a handle of a live task. (The check is a 16-bit
 * generation: a handle kept while its memory was reused a multiple of
 * 65536 times passes it.) A handle's value is opaque: it compares equal
 * only to itself and to the task's weft_self(), and is not an address.
 * As in asyncio, the new task does not run before its spawner suspends
 * or joins a task (see weft_join) as long as it is the spawner's latest;
 * an idle worker may take earlier ones sooner.
 * Does not suspend. Called from a task.
 * Returns 0, or:
 *   -EPERM   not called from a task
 *   -EINVAL  fn is NULL, or a stack size below 16 KiB or above 1 GiB
 *   -ENOMEM  no memory for the task (or for the task-local values it
 *            inherits, see weft_local_key_create)
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
 * A child that has not started yet, whether its spawner's worker still
 * holds it or it waits in any worker's queue, is run by the join itself,
 * on the joiner's stack, as a function call (of the same runtime's): no
 * switch, no stack of its own, and a tree of tasks that spawn and join
 * their children runs depth first, holding stacks in proportion to its
 * depth, not its width. The child is still itself throughout (weft_self,
 * its name, its task-local values, its cancellation and status); it may
 * suspend (its joiner's stack waits with it). It runs so only on a stack
 * with room left for the whole stack it was promised (its stack_size);
 * otherwise the join waits as above. Such a join does not give other
 * tasks a turn first, though a chain of them yields to ready tasks: to
 * woken ones within about a thousand runs, to new ones (mostly the
 * chain's own children) within some sixteen thousand.
 * Called from a task. Returns t's status, or:
 *   -EPERM    not called from a task (the handle is not released)
 *   -EINVAL   t is NULL, or not a held handle: already joined or detached
 *             (see weft_spawn), or weft_self() of a task spawned without
 *             a handle; also the loser of two tasks joining t at once
 *   -EDEADLK  t is the calling task
 */
WEFT_API int weft_join(weft_task_t *t);

/*
 * Releases a handle without waiting: t runs on, and is freed when it ends.
 * In debug mode a detached task that fails is reported on stderr.
 * Does not suspend; callable from any thread. Returns 0, or -EINVAL (t
 * NULL or not a held handle: already joined or detached).
 */
WEFT_API int weft_detach(weft_task_t *t);

/*
 * Requests cancellation: t's next suspension point (or the one it is parked
 * in now) returns -ECANCELED; a task that has not started yet never runs
 * and finishes with -ECANCELED. One request is delivered once; t may clean up
 * and even suspend again. Cancelling a finished task does nothing.
 * Does not suspend; callable from any thread while the handle is held (or
 * by a task on its own weft_self()). Returns 0, or -EINVAL (t NULL or not a
 * held handle: nothing is cancelled).
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

/* The running task, or NULL outside a task: the same value as the handle
 * weft_spawn gave out for it, so the two compare equal. Never suspends. */
WEFT_API weft_task_t *weft_self(void);

/* t's name ("" if it has none, or if t is not a held handle or the
 * caller's own); t NULL means the running task. */
WEFT_API const char *weft_task_name(const weft_task_t *t);

/* CLOCK_MONOTONIC now, in nanoseconds. */
WEFT_API int64_t weft_now_ns(void);

/* Index of the worker running the caller, or -1 outside a worker. */
WEFT_API int weft_worker_id(void);

/* ---- task-local values --------------------------------------------------- */

/*
 * Task-local values (Python's contextvars, Tokio's task_local!, a
 * pthread_key_t per task): a key names a slot that every task has, and each
 * task sees only the value it set itself, whichever worker runs it and
 * across every suspension. A value is a pointer weft never dereferences.
 * get and set take no lock and never suspend.
 *
 * Keys are process-wide, like pthread keys: make one once (from any thread,
 * before or inside weft_run) and use it in every task and runtime. At most
 * WEFT_LOCAL_KEYS_MAX exist at once. A key value is not reused: once
 * deleted, it is refused with -EINVAL even after another key took its slot
 * (the check is a 25-bit generation of the slot). 0 is never a key, so a
 * zeroed weft_local_key_t is refused too.
 *
 * Destructors. When a task ends - its function returned (success or
 * failure), or it was cancelled - the destructor of each key for which it
 * holds a non-NULL value is called with that value, before anyone joining
 * the task learns its status. The value is cleared first, so weft_local_get
 * gives NULL for it inside the destructor. A destructor that sets values
 * again gets further rounds, up to WEFT_LOCAL_DESTRUCTOR_ROUNDS in all
 * (pthread's PTHREAD_DESTRUCTOR_ITERATIONS); values still set after that
 * are dropped without a call. Where destructors run:
 *   - a task that ran: in the task itself, as its last step after its
 *     function returned, so they may use any weft call (weft_self() is the
 *     ending task; a cancellation not yet delivered reaches their first
 *     suspension point);
 *   - a task that ended without running (cancelled before it started, or
 *     no memory for its stack), which holds only inherited values: on its
 *     worker, outside any task (weft_self() is NULL and suspending calls
 *     return -EPERM there).
 * Values of a deleted key are dropped without a call, as pthread keys do.
 * weft_local_set does not destroy the value it replaces: the caller owns
 * it.
 *
 * Inheritance, only when asked: a key made with an `inherit` function is
 * passed on to tasks the holder spawns (weft_spawn, weft_spawn_ex, and the
 * calls built on them, such as weft_group_spawn). For each non-NULL value
 * of such a key, the spawning call runs inherit(value) in the spawning task
 * and the new task starts with what it returns as its own value: the new
 * task's destructor runs on it at the new task's end, exactly as for a
 * value it set itself (a NULL return: the new task starts without a value).
 * inherit must not suspend. The usual choices:
 *   - a reference count: inherit takes a reference and returns value, the
 *     destructor drops one (the child may outlive the parent);
 *   - a deep copy, and the destructor frees it;
 *   - a value that outlives every task (a literal, a global): inherit
 *     returns value and the key has no destructor.
 * Keys made with inherit NULL are not passed on. Tasks started from
 * outside a task (weft_run, weft_spawn_from, ...) inherit nothing.
 */
#define WEFT_LOCAL_KEYS_MAX 128
#define WEFT_LOCAL_DESTRUCTOR_ROUNDS 4

typedef uint32_t weft_local_key_t;

/* Destroys a value at its task's end. */
typedef void (*weft_local_dtor_t)(void *value);

/* Makes a spawned task's value from its spawner's (see Inheritance). */
typedef void *(*weft_local_copy_t)(void *value);

/*
 * Makes a new key, stored in *key. dtor (may be NULL) destroys its values
 * at their tasks' end; inherit (may be NULL: not inherited) makes a spawned
 * task's value. Does not suspend; any thread, also outside a runtime.
 * Returns 0, or:
 *   -EINVAL  key is NULL
 *   -EAGAIN  WEFT_LOCAL_KEYS_MAX keys exist already
 */
WEFT_API int weft_local_key_create(weft_local_key_t *key,
                                   weft_local_dtor_t dtor,
                                   weft_local_copy_t inherit);

/*
 * Deletes a key: its slot may then go to a new key. Tasks' values under it
 * are forgotten, not destroyed (no destructor runs for them; free them
 * first if they own memory), and every call refuses the key from then on.
 * A destructor already running when this is called may still be running
 * when it returns. Does not suspend; any thread.
 * Returns 0, or -EINVAL (key does not exist: never made, or deleted).
 */
WEFT_API int weft_local_key_delete(weft_local_key_t key);

/*
 * Stores in *value the calling task's value under key: what the task last
 * set (or inherited), NULL if nothing. Does not suspend. Called from a task.
 * Returns 0, or:
 *   -EPERM   not called from a task
 *   -EINVAL  value is NULL, or key does not exist (never made, or deleted)
 */
WEFT_API int weft_local_get(weft_local_key_t key, void **value);

/*
 * Sets the calling task's value under key (NULL clears it); the value it
 * replaces is not destroyed. Does not suspend. Called from a task.
 * Returns 0, or:
 *   -EPERM   not called from a task
 *   -EINVAL  key does not exist (never made, or deleted)
 *   -ENOMEM  no memory for the task's values (the value is not set)
 */
WEFT_API int weft_local_set(weft_local_key_t key, void *value);

/* ==== the asyncio toolkit ================================================
 *
 * Combinators, timeout scopes, task groups, queues and synchronisation
 * primitives. All of them work across workers (a task waiting on one worker
 * is woken by a task on another), every wait is cancellable (-ECANCELED)
 * and takes an absolute deadline (weft_now_ns() clock; WEFT_NO_DEADLINE for
 * none) where asyncio takes a timeout, and every wait also ends with
 * -ETIMEDOUT when an enclosing timeout scope (weft_scope_enter) expires.
 * Waiting suspends the task, never its worker thread.
 *
 * A wait that is cancelled or times out at the very moment it is satisfied
 * counts as satisfied: the item, permit or lock it was handed is not lost,
 * and the cancellation stays pending for the next suspension point.
 *
 * Types: the primitives are fixed-size opaque storage, like pthread_mutex_t,
 * so they can be embedded in structs or live on a task's stack; set them up
 * with _init and tear them down with _destroy (which fails with -EBUSY while
 * anyone waits). Never copy one after init. Their fields are private.
 */

/* Private storage of the toolkit's types; the layouts are internal. */
#define WEFT_OPAQUE(bytes)                                                    \
    union {                                                                   \
        unsigned char _bytes[bytes];                                          \
        int64_t _align;                                                       \
        void *_ptr;                                                           \
    } _private

/* A deadline ms milliseconds from now (saturating; <= 0 means now). */
WEFT_API int64_t weft_deadline_in_ms(int64_t ms);

/* ---- combinators --------------------------------------------------------- */

/* weft_gather flags. */
#define WEFT_GATHER_RETURN_ALL 1u /* asyncio's return_exceptions=True */

/*
 * asyncio.gather(): waits for all n tasks and consumes (joins) every handle,
 * storing task i's status in results[i] (results may be NULL).
 * By default it returns 0 if every status is >= 0, else the first negative
 * status in argument order (asyncio raises the first in completion order;
 * argument order makes the report deterministic). As in asyncio, a failure
 * does not cancel the other tasks: gather still waits for them, since it
 * releases their handles (use a weft_group_t to cancel on failure). With
 * WEFT_GATHER_RETURN_ALL it returns 0 and every status is only in results.
 * If the caller is cancelled or an enclosing scope expires, the tasks not
 * yet finished are cancelled, gather waits for them, fills results and
 * returns -ECANCELED / -ETIMEDOUT.
 * Suspends. Called from a task. Returns as above, or, with no handle
 * released:
 *   -EPERM    not called from a task
 *   -EINVAL   unknown flags; tasks NULL (n > 0); n larger than an array
 *             of handles can be; or a handle NULL, not held (see
 *             weft_spawn) or given twice
 *   -EDEADLK  one of tasks is the caller
 *   -ENOMEM   no memory to check more than 32 handles for duplicates
 */
WEFT_API int weft_gather(weft_task_t **tasks, size_t n, int *results,
                         unsigned flags);

/* weft_wait modes (asyncio.wait's return_when). */
enum weft_wait_mode {
    WEFT_ALL_COMPLETED = 0,  /* every task has finished */
    WEFT_FIRST_COMPLETED,    /* at least one has finished */
    WEFT_FIRST_EXCEPTION,    /* one finished with a negative status, or all
                                finished */
};

/*
 * asyncio.wait(): waits until the condition of mode holds or the deadline
 * passes, then reports in done[i] (done may be NULL) whether task i has
 * finished. Does not consume handles or cancel anything; join the tasks
 * afterwards (a finished one joins without suspending).
 * Suspends. Called from a task. Returns the number of finished tasks (the
 * deadline passing is not an error, as in asyncio), or:
 *   -ECANCELED  the caller was cancelled
 *   -ETIMEDOUT  an enclosing timeout scope expired
 *   -ENOMEM     no memory to watch more than a few tasks, or to check more
 *               than 32 handles for duplicates
 *   -EINVAL     a bad mode; n > INT_MAX; tasks NULL (n > 0); or a handle
 *               NULL, not held (see weft_spawn) or given twice
 *   -EDEADLK    one of tasks is the caller
 *   -EPERM      not called from a task
 */
WEFT_API int weft_wait(weft_task_t **tasks, size_t n, int mode,
                       int64_t deadline, bool *done);

/*
 * asyncio.wait_for(): waits for t until the deadline. On time it consumes
 * the handle and returns t's status. Otherwise it cancels t, waits until t
 * has finished, consumes the handle and returns -ETIMEDOUT (the deadline or
 * an enclosing scope passed) or -ECANCELED (the caller was cancelled).
 * Suspends. Called from a task. Returns as above, or:
 *   -EINVAL   t NULL or not a held handle (see weft_spawn)
 *   -EDEADLK  t is the caller;  -EPERM  not in a task
 *   (the handle is not released on these three)
 */
WEFT_API int weft_wait_for(weft_task_t *t, int64_t deadline);

/*
 * asyncio.shield(): waits for t without passing the caller's cancellation
 * on to it (weft_join would). On 0, t has finished, *status holds its
 * status and the handle is released. If the caller is cancelled or its
 * scope expires first, t is left running and the caller still holds the
 * handle (join or detach it later).
 * Suspends. Called from a task. Returns 0, or:
 *   -ECANCELED  the caller was cancelled (t untouched)
 *   -ETIMEDOUT  an enclosing scope expired (t untouched)
 *   -EINVAL     t or status NULL, or t not a held handle (see weft_spawn)
 *   -EDEADLK    t is the caller;  -EPERM  not called from a task
 */
WEFT_API int weft_shield(weft_task_t *t, int *status);

/*
 * asyncio.as_completed(): an iterator over tasks yielding them in the order
 * they finish. Used by the task that initialised it, which keeps the tasks
 * array and the handles alive until weft_as_completed_destroy. Handles are
 * not consumed: join each yielded task (it does not suspend).
 */
typedef struct weft_as_completed {
    WEFT_OPAQUE(64);
} weft_as_completed_t;

/* Starts watching the n tasks. Does not suspend. Called from a task.
 * Returns 0, or:
 *   -ENOMEM   no memory for n watches (or to check over 32 for duplicates)
 *   -EINVAL   it NULL; tasks NULL (n > 0); or a handle NULL, not held (see
 *             weft_spawn) or given twice
 *   -EDEADLK  one of tasks is the caller
 *   -EPERM    not called from a task */
WEFT_API int weft_as_completed_init(weft_as_completed_t *it,
                                    weft_task_t **tasks, size_t n);

/*
 * Suspends until a task not yet yielded has finished and stores it in
 * *task. Called from the task that called init. Returns 0, or:
 *   -ENOENT     every task has been yielded
 *   -ETIMEDOUT  the deadline or an enclosing scope passed
 *   -ECANCELED  the caller was cancelled
 *   -EINVAL     a NULL argument, not the initialising task, or it was
 *               destroyed
 *   -EPERM      not called from a task
 */
WEFT_API int weft_as_completed_next(weft_as_completed_t *it, int64_t deadline,
                                    weft_task_t **task);

/* Stops watching and frees the iterator's memory; the tasks are untouched.
 * Does not suspend. Called from the initialising task. Returns 0, or
 * -EINVAL (it NULL, not called from the initialising task, or destroyed
 * already). */
WEFT_API int weft_as_completed_destroy(weft_as_completed_t *it);

/*
 * Timeout scope (asyncio.timeout(), a Trio cancel scope): between
 * weft_scope_enter(&s, deadline) and weft_scope_exit(&s), every suspending
 * weft call of the task (however deeply nested, joins excepted: see below)
 * fails with -ETIMEDOUT once the deadline has passed. Scopes nest, strictly
 * last-in first-out, within one task; the earliest deadline wins. A scope
 * does not reach other tasks: the combinators and groups that wait for
 * tasks cancel them when the scope expires. weft_join is not cut short by a
 * scope (it always waits for the task); use weft_wait_for under a scope.
 */
typedef struct weft_scope {
    WEFT_OPAQUE(32);
} weft_scope_t;

/* Enters a scope. Does not suspend. Called from a task. Returns 0, or:
 *   -EINVAL     s NULL, or s is entered already (and not exited)
 *   -EOVERFLOW  the task is in 65535 scopes already
 *   -EPERM      not called from a task */
WEFT_API int weft_scope_enter(weft_scope_t *s, int64_t deadline);

/*
 * Leaves the innermost scope, restoring the enclosing deadline. Does not
 * suspend. Called from the task that entered s. Returns 1 if this scope's
 * own deadline has passed (the code inside may have been cut short), 0 if
 * not, -EPERM outside a task, or -EINVAL, changing nothing, if s is NULL,
 * was not entered by the caller, was exited already, or is not the
 * innermost scope the caller is in (exit the inner ones first).
 */
WEFT_API int weft_scope_exit(weft_scope_t *s);

/* ---- task groups --------------------------------------------------------- */

/*
 * asyncio.TaskGroup: children spawned into a group are waited for together
 * by weft_group_wait. The first child to fail (a negative status other than
 * -ECANCELED) cancels every sibling; the group then refuses new children.
 * A child may spawn into its own group. Init, spawn, then wait exactly once
 * from one task; destroy after the wait.
 *
 * A group holds memory for its live children only: a child's task and
 * record are freed as soon as it ends (its status still counts for the
 * first-failure rule and for the wait), so a group may supervise any
 * number of children over its life, e.g. one per connection of a server,
 * in memory proportional to those alive at once.
 */
typedef struct weft_group {
    WEFT_OPAQUE(64);
} weft_group_t;

/* Sets up an empty group. Does not suspend; any thread. 0 or -EINVAL. */
WEFT_API int weft_group_init(weft_group_t *g);

/* Returns 0, or -EBUSY if a child has not ended yet (or a task is waiting
 * on g now), -EINVAL (NULL). A failure of a child that ended is lost if g
 * is destroyed without a wait. */
WEFT_API int weft_group_destroy(weft_group_t *g);

/*
 * Spawns fn(arg) as a child of g. When the child ends, its status (fn's
 * return value, or -ECANCELED if it was cancelled before it started) is
 * stored in *status (status may be NULL), which must stay valid until
 * then; read it once weft_group_wait has returned. The child inherits
 * task-local values as weft_spawn's children do.
 * Does not suspend. Called from a task (the group's owner or a child).
 * Returns 0, or:
 *   -ECANCELED  the group was cancelled or a child failed (nothing spawned)
 *   -ENOMEM     no memory for the child
 *   -EINVAL     g or fn NULL;  -EPERM  not called from a task
 */
WEFT_API int weft_group_spawn(weft_group_t *g, weft_fn_t fn, void *arg,
                              int *status);

/* Cancels every child and refuses new ones; the wait then returns
 * -ECANCELED unless a child failed. Does not suspend; any thread while the
 * group lives. 0 or -EINVAL. */
WEFT_API int weft_group_cancel(weft_group_t *g);

/*
 * Leaves the group: suspends until every child (including children spawned
 * meanwhile) has finished, and stores their statuses. If the caller is
 * cancelled or an enclosing scope expires, it cancels the group and still
 * waits for every child. Called from a task. Returns:
 *   0            every child succeeded (or was cancelled by nobody's fault)
 *   < 0          the first child failure, in completion order; else
 *   -ECANCELED   the caller was cancelled, or the group was cancelled
 *   -ETIMEDOUT   an enclosing scope expired
 *   -EBUSY       another task is waiting on g (this call does nothing)
 *   -EDEADLK     the caller is a child of g: it would wait for itself
 *   -EINVAL      g NULL;  -EPERM  not called from a task
 */
WEFT_API int weft_group_wait(weft_group_t *g);

/* ---- queues -------------------------------------------------------------- */

/* weft_queue_init flags. */
#define WEFT_QUEUE_LIFO 1u /* get takes the newest item (asyncio.LifoQueue) */

/*
 * asyncio.Queue: a multi-producer multi-consumer queue of void * items,
 * FIFO by default. Waiting putters and getters are served first come, first
 * served. Closing (asyncio's shutdown) wakes every waiter: getters drain
 * what is left and then get -EPIPE, putters get -EPIPE and keep their item.
 */
typedef struct weft_queue {
    WEFT_OPAQUE(192);
} weft_queue_t;

/* Sets up a queue holding at most capacity items (0: unbounded, growing as
 * needed). Does not suspend; any thread. Returns 0, -ENOMEM (no memory
 * for capacity items; always for more than 2^44, which would not fit the
 * address space), or -EINVAL (q NULL, unknown flags). */
WEFT_API int weft_queue_init(weft_queue_t *q, size_t capacity,
                             unsigned flags);

/* Frees the queue's memory (items still in it are dropped). Returns 0,
 * -EBUSY if a task waits on it, -EINVAL (NULL, or destroyed already). Every
 * later call on q, until the next weft_queue_init, returns -EINVAL. */
WEFT_API int weft_queue_destroy(weft_queue_t *q);

/*
 * Appends item, suspending while the queue is full. Called from a task.
 * Returns 0, or:
 *   -EPIPE      the queue is (or got) closed; item not queued
 *   -ETIMEDOUT  the deadline or an enclosing scope passed; item not queued
 *   -ECANCELED  the caller was cancelled; item not queued
 *   -ENOMEM     an unbounded queue could not grow
 *   -EINVAL     q NULL or destroyed;  -EPERM  not called from a task
 */
WEFT_API int weft_queue_put(weft_queue_t *q, void *item, int64_t deadline);

/* weft_queue_put without waiting: -EAGAIN when full. Does not suspend; any
 * thread. Returns 0, -EAGAIN, -EPIPE, -ENOMEM or -EINVAL. */
WEFT_API int weft_queue_try_put(weft_queue_t *q, void *item);

/*
 * Removes the oldest item (newest with WEFT_QUEUE_LIFO) into *item,
 * suspending while the queue is empty. Called from a task. Returns 0, or:
 *   -EPIPE      the queue is closed and empty
 *   -ETIMEDOUT  the deadline or an enclosing scope passed
 *   -ECANCELED  the caller was cancelled
 *   -EINVAL     q or item NULL, or q destroyed;  -EPERM  not in a task
 */
WEFT_API int weft_queue_get(weft_queue_t *q, void **item, int64_t deadline);

/* weft_queue_get without waiting: -EAGAIN when empty and open. Does not
 * suspend; any thread. Returns 0, -EAGAIN, -EPIPE or -EINVAL. */
WEFT_API int weft_queue_try_get(weft_queue_t *q, void **item);

/* Closes q: later puts fail with -EPIPE, gets drain then fail with -EPIPE,
 * and every waiting putter and getter is woken. Idempotent. Does not
 * suspend; any thread. Returns 0 or -EINVAL. */
WEFT_API int weft_queue_close(weft_queue_t *q);

/* Items in q now. Does not suspend; any thread. Returns >= 0 or -EINVAL. */
WEFT_API long weft_queue_size(weft_queue_t *q);

/* asyncio's task_done(): one item taken out earlier is fully processed.
 * Does not suspend; any thread. Returns 0, or -EINVAL if called more times
 * than items were put (or q NULL). */
WEFT_API int weft_queue_task_done(weft_queue_t *q);

/* asyncio's join(): suspends until every item ever put has been marked
 * with task_done. Called from a task. Returns 0, -ETIMEDOUT, -ECANCELED,
 * -EINVAL (NULL) or -EPERM. */
WEFT_API int weft_queue_join(weft_queue_t *q, int64_t deadline);

/* ---- synchronisation primitives ----------------------------------------- */

/*
 * asyncio.Lock, fair: unlock hands the lock straight to the oldest waiter,
 * so a task that keeps re-locking cannot starve the queue. Owned by the
 * task that locked it (only it may unlock); not recursive.
 */
typedef struct weft_mutex {
    WEFT_OPAQUE(48);
} weft_mutex_t;

/* Init: 0 or -EINVAL. Destroy: 0, -EBUSY (locked or awaited), -EINVAL. */
WEFT_API int weft_mutex_init(weft_mutex_t *m);
WEFT_API int weft_mutex_destroy(weft_mutex_t *m);

/* Locks m, suspending while another task holds it. Called from a task.
 * Returns 0, -ETIMEDOUT, -ECANCELED, -EDEADLK (the caller holds it),
 * -EINVAL (NULL) or -EPERM (not in a task). */
WEFT_API int weft_mutex_lock(weft_mutex_t *m, int64_t deadline);

/* Locks m if free. Does not suspend. Called from a task.
 * Returns 0, -EAGAIN (held), -EINVAL or -EPERM. */
WEFT_API int weft_mutex_try_lock(weft_mutex_t *m);

/* Unlocks m, handing it to the oldest waiter if any. Does not suspend.
 * Returns 0, -EPERM (the caller does not hold it: not even a task that
 * reuses the memory of one that ended holding it) or -EINVAL. */
WEFT_API int weft_mutex_unlock(weft_mutex_t *m);

/*
 * asyncio.Semaphore and BoundedSemaphore: a count of permits. Release hands
 * a permit straight to the oldest waiter if there is one.
 */
typedef struct weft_sem {
    WEFT_OPAQUE(48);
} weft_sem_t;

/* Init with value permits; the bounded variant refuses to be released
 * above its initial value, the other above UINT_MAX permits. Returns 0 or
 * -EINVAL (NULL, bounded at 0). */
WEFT_API int weft_sem_init(weft_sem_t *s, unsigned value);
WEFT_API int weft_sem_init_bounded(weft_sem_t *s, unsigned value);
/* 0, -EBUSY (awaited) or -EINVAL. */
WEFT_API int weft_sem_destroy(weft_sem_t *s);

/* Takes a permit, suspending while there is none. Called from a task.
 * Returns 0, -ETIMEDOUT, -ECANCELED, -EINVAL or -EPERM. */
WEFT_API int weft_sem_acquire(weft_sem_t *s, int64_t deadline);

/* Takes a permit if one is free. Does not suspend; any thread.
 * Returns 0, -EAGAIN or -EINVAL. */
WEFT_API int weft_sem_try_acquire(weft_sem_t *s);

/* Returns a permit. Does not suspend; any thread. Returns 0, -EOVERFLOW (a
 * bounded semaphore already at its initial value, another at UINT_MAX) or
 * -EINVAL. */
WEFT_API int weft_sem_release(weft_sem_t *s);

/* Free permits now (>= 0; INT_MAX if there are more) or -EINVAL. Any
 * thread. */
WEFT_API int weft_sem_value(weft_sem_t *s);

/* asyncio.Event: a flag tasks can wait for. */
typedef struct weft_event {
    WEFT_OPAQUE(48);
} weft_event_t;

/* Init: 0 or -EINVAL. Destroy: 0, -EBUSY (awaited) or -EINVAL. */
WEFT_API int weft_event_init(weft_event_t *e);
WEFT_API int weft_event_destroy(weft_event_t *e);

/* Sets the flag and wakes every waiter. Does not suspend; any thread.
 * Returns 0 or -EINVAL. */
WEFT_API int weft_event_set(weft_event_t *e);

/* Clears the flag. Does not suspend; any thread. Returns 0 or -EINVAL. */
WEFT_API int weft_event_clear(weft_event_t *e);

/* 1 if set, 0 if not, -EINVAL. Any thread. */
WEFT_API int weft_event_is_set(weft_event_t *e);

/* Suspends until the flag is set (returns at once if it is). Called from a
 * task. Returns 0, -ETIMEDOUT, -ECANCELED, -EINVAL or -EPERM. */
WEFT_API int weft_event_wait(weft_event_t *e, int64_t deadline);

/* asyncio.Condition, used with a weft_mutex_t. */
typedef struct weft_cond {
    WEFT_OPAQUE(48);
} weft_cond_t;

/* Init: 0 or -EINVAL. Destroy: 0, -EBUSY (awaited) or -EINVAL. */
WEFT_API int weft_cond_init(weft_cond_t *c);
WEFT_API int weft_cond_destroy(weft_cond_t *c);

/*
 * Unlocks m (which the caller holds), suspends until notified, and locks m
 * again before returning, whatever the result (a cancellation that arrives
 * while re-locking stays pending). Wake-ups are not spurious, but recheck
 * your predicate: another task may have run first. All tasks waiting on c
 * at once use the same m. Called from a task. Returns 0, -ETIMEDOUT,
 * -ECANCELED, -EPERM (not in a task, or m not held by the caller) or
 * -EINVAL (NULL, or other tasks wait on c with another mutex; m stays
 * locked).
 */
WEFT_API int weft_cond_wait(weft_cond_t *c, weft_mutex_t *m,
                            int64_t deadline);

/* Wakes up to n waiters (oldest first); the caller should hold the mutex.
 * Does not suspend; any thread. Returns how many were woken, or -EINVAL. */
WEFT_API int weft_cond_notify(weft_cond_t *c, unsigned n);

/* Wakes every waiter. Same returns. */
WEFT_API int weft_cond_notify_all(weft_cond_t *c);

/* asyncio.Barrier: parties tasks wait until all of them have arrived. */
typedef struct weft_barrier {
    WEFT_OPAQUE(48);
} weft_barrier_t;

/* The return of the one task per cycle whose arrival tripped the barrier. */
#define WEFT_BARRIER_SERIAL 1

/* Init: 0 or -EINVAL (NULL, 0 parties). Destroy: 0, -EBUSY or -EINVAL. */
WEFT_API int weft_barrier_init(weft_barrier_t *b, unsigned parties);
WEFT_API int weft_barrier_destroy(weft_barrier_t *b);

/*
 * Suspends until parties tasks are waiting, then releases them all and
 * starts the next cycle. A waiter that times out or is cancelled no longer
 * counts as arrived (asyncio would break the barrier instead). Called from
 * a task. Returns WEFT_BARRIER_SERIAL to the last arrival and 0 to the
 * others (pthread style rather than asyncio's index, which a withdrawn
 * waiter would make ambiguous), or -ETIMEDOUT, -ECANCELED, -EINVAL, -EPERM.
 */
WEFT_API int weft_barrier_wait(weft_barrier_t *b, int64_t deadline);

/* A wait group (Go's sync.WaitGroup): wait until a counter drops to 0. */
typedef struct weft_waitgroup {
    WEFT_OPAQUE(48);
} weft_waitgroup_t;

/* Init (counter 0): 0 or -EINVAL. Destroy: 0, -EBUSY or -EINVAL. */
WEFT_API int weft_waitgroup_init(weft_waitgroup_t *wg);
WEFT_API int weft_waitgroup_destroy(weft_waitgroup_t *wg);

/* Adds delta (may be negative) to the counter, waking every waiter when it
 * reaches 0. Does not suspend; any thread. Returns 0, or (the counter
 * unchanged):
 *   -EINVAL     the counter would go negative, or wg is NULL
 *   -EOVERFLOW  the counter would pass LONG_MAX */
WEFT_API int weft_waitgroup_add(weft_waitgroup_t *wg, long delta);

/* weft_waitgroup_add(wg, -1). */
WEFT_API int weft_waitgroup_done(weft_waitgroup_t *wg);

/* Suspends until the counter is 0 (at once if it is). Called from a task.
 * Returns 0, -ETIMEDOUT, -ECANCELED, -EINVAL or -EPERM. */
WEFT_API int weft_waitgroup_wait(weft_waitgroup_t *wg, int64_t deadline);

/* ---- I/O ------------------------------------------------------------------
 *
 * Every call below suspends the calling task until the operation completes
 * (on io_uring: one SQE, submitted with others in one batch per scheduler
 * turn; on epoll: tried at once, then retried when the fd is ready; file
 * operations that would block run off the worker). They are called from a
 * task; outside one they return -EPERM. Results and errors are those of the
 * matching system call, as a return value: >= 0 on success, a negative errno
 * on failure. Besides those, every call may return:
 *   -ECANCELED  the task was cancelled while waiting (the operation did not
 *               happen: if it completed meanwhile, its result is returned
 *               instead and the cancellation stays pending)
 *   -ETIMEDOUT  the deadline, or an enclosing timeout scope, passed first
 *               (a deadline already past at the call issues nothing)
 *   -ENOMEM     no memory to track the operation
 *   -EPERM      not called from a task (argument errors are returned first)
 * and every call that takes an fd:
 *   -EBADF      fd is negative (at once, nothing issued) or not open; the
 *               dirfd of weft_openat and weft_statx only with a relative
 *               path, and AT_FDCWD is valid there
 * The call returns only once the kernel has let go of the caller's buffers,
 * including after a cancellation or timeout, so they may be freed at once.
 *
 * deadline is absolute (weft_now_ns() clock); WEFT_NO_DEADLINE waits as long
 * as it takes. offset -1 means the fd's file position (and is required for
 * pipes and sockets). The backends need no O_NONBLOCK on fds, but the epoll
 * backend sets O_NONBLOCK on sockets passed to weft_accept and weft_connect.
 * Sockets made by weft (weft_listen, weft_connect_tcp) are non-blocking and
 * close-on-exec. Data calls that take a size_t length may transfer less than
 * asked (short reads and writes), as the system calls do, and move at most
 * 0x7ffff000 bytes (2 GiB - 4 KiB, what read(2) and write(2) move at most)
 * per call: a longer length, up to SIZE_MAX, is a short count, never an
 * error. A buffer the kernel cannot read or write (NULL with a non-zero
 * length) is -EFAULT. Given the same arguments, both backends return the
 * same errors, except where a call's comment says otherwise.
 */

/* flags of weft_fsync. */
#define WEFT_FSYNC_DATASYNC 1u /* fdatasync(): data and the size, no times */

/* flags of weft_listen. */
#define WEFT_LISTEN_REUSEPORT 1 /* SO_REUSEPORT: several listeners, one port */

struct statx;

/*
 * accept4(): waits for a connection on listening socket fd. addr/addrlen
 * may be NULL; flags are SOCK_NONBLOCK and SOCK_CLOEXEC.
 * Returns the new fd, -EINVAL (addr without addrlen, other flags; or fd
 * does not listen), -EBADF (fd negative or not open), -ENOTSOCK, or the
 * other errors of accept4 (-EMFILE, -ENFILE, -ECONNABORTED, ...).
 */
WEFT_API int weft_accept(int fd, struct sockaddr *addr, socklen_t *addrlen,
                         int flags, int64_t deadline);

/*
 * Listeners: the handle an accept loop keeps on a listening socket (what
 * asyncio's Server is to its socket). On io_uring one multishot accept
 * stays in flight for the listener: the kernel accepts connections as they
 * arrive, without a submission or a system call per connection, and queues
 * them in the listener until an accept call takes them (at most a few dozen
 * ahead; beyond that the kernel's listen backlog holds them). On epoll each
 * call is an accept4 that waits for readiness. The calls behave the same on
 * both, and any number of tasks on any workers may accept on one listener
 * at once (each connection goes to exactly one of them).
 */
typedef struct weft_listener weft_listener_t;

/*
 * Wraps listening socket fd (from weft_listen, or bound and listening);
 * the listener owns fd from then on. flags (SOCK_NONBLOCK, SOCK_CLOEXEC)
 * apply to every accepted fd. Does not suspend. Returns 0, -EINVAL (out
 * NULL, other flags), -EBADF (fd negative or not open) or -ENOMEM.
 */
WEFT_API int weft_listener_new(weft_listener_t **out, int fd, int flags);

/* The listening fd (for getsockname and socket options; do not close it).
 * -EINVAL if l is NULL. */
WEFT_API int weft_listener_fd(const weft_listener_t *l);

/*
 * Waits for the next connection on l. addr/addrlen (may be NULL) receive
 * the peer's address (getpeername; *addrlen 0 if the peer already left).
 * A connection the runtime accepted is never lost: if the call is
 * cancelled or times out, it stays queued for the next call.
 * Returns the new fd, -EINVAL (l NULL, addr without addrlen), -EBADF (l is
 * being closed), or the errors of accept4 (-EMFILE, -ENFILE, -ENOBUFS,
 * -ENOMEM, ...), each returned once, after which accepting resumes.
 */
WEFT_API int weft_listener_accept(weft_listener_t *l, struct sockaddr *addr,
                                  socklen_t *addrlen, int64_t deadline);

/*
 * Closes l: accept calls in progress return -EBADF, the multishot accept is
 * cancelled (and waited for), connections accepted ahead are closed, then
 * the listening fd, and l is freed. Waits for all that even if the task is
 * cancelled meanwhile (the cancellation stays pending). Called from a task,
 * once, when no new accept call can start. Returns the result of closing
 * the fd (0, or -EIO), -EINVAL (l NULL) or -EPERM outside a task.
 */
WEFT_API int weft_listener_close(weft_listener_t *l);

/*
 * connect(): connects socket fd to addr. Returns 0, -EINVAL (addr NULL, or
 * addrlen wrong for the family or above sizeof(struct sockaddr_storage)),
 * -EBADF (fd negative or not open), or the errors of connect (-ENOTSOCK,
 * -ECONNREFUSED, -ENETUNREACH, -EISCONN, ...).
 */
WEFT_API int weft_connect(int fd, const struct sockaddr *addr,
                          socklen_t addrlen, int64_t deadline);

/*
 * recv() / send(): returns the bytes moved (at most 0x7ffff000; recv: 0 at
 * end of stream), -EBADF (fd negative or not open), -EFAULT (buf not
 * writable / readable, e.g. NULL), -EAGAIN (MSG_DONTWAIT and nothing to
 * move), or the errors of recv/send (-ECONNRESET, -EPIPE, -ENOTCONN,
 * -ENOTSOCK, ...). weft_send and weft_sendmsg add MSG_NOSIGNAL: a closed
 * peer is -EPIPE, never a SIGPIPE.
 */
WEFT_API ssize_t weft_recv(int fd, void *buf, size_t len, int flags,
                           int64_t deadline);
WEFT_API ssize_t weft_send(int fd, const void *buf, size_t len, int flags,
                           int64_t deadline);

/*
 * Read-ahead on TCP sockets (io_uring). The first weft_recv on a TCP
 * socket leaves a receive armed in the kernel that takes bytes as they
 * arrive into buffers its worker shares among all its sockets; weft_recv
 * (flags 0 or MSG_DONTWAIT) and weft_read then return those bytes first,
 * in order, at once if there are any, and otherwise wait for more. The
 * results are those of recv(2): the bytes (up to len), 0 at end of stream
 * (every time), an error such as -ECONNRESET once, after the bytes that
 * came before it. A call cancelled or timed out loses nothing: bytes it
 * did not return stay for the next call. MSG_DONTWAIT returns what is
 * kept, or -EAGAIN. Bytes still unread when the runtime ends stay with
 * the fd for a later weft_recv. While the shared buffers are used up, a
 * socket with nothing kept reads straight into the caller's buffer.
 * What this asks of the caller:
 *   - close such a socket with weft_close: close(2) leaves the armed
 *     receive holding the connection open (the peer sees no end) until the
 *     runtime ends;
 *   - read it with those calls only: recv(2), weft_recvmsg, or weft_recv
 *     with other flags (MSG_PEEK, MSG_WAITALL, ...) do not see the bytes
 *     kept and may return later ones first;
 *   - pass a writable buffer: kept bytes are copied by the calling thread,
 *     so a non-NULL buffer that is not writable faults there, where the
 *     system call would have returned -EFAULT (NULL is still -EFAULT).
 * Other sockets, and the epoll backend, read plainly.
 */

/*
 * recvmsg() / sendmsg(): as weft_recv / weft_send; also -EINVAL (msg NULL,
 * or flags with MSG_CMSG_COMPAT, 0x80000000, which belongs to the kernel's
 * 32-bit compat layer), -EMSGSIZE (msg_iovlen above IOV_MAX) and -EFAULT
 * (msg_iov, msg_name or msg_control not accessible).
 */
WEFT_API ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags,
                              int64_t deadline);
WEFT_API ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags,
                              int64_t deadline);

/*
 * pread()/read() and pwrite()/write() at offset (-1: the file position).
 * Returns the bytes moved (at most 0x7ffff000; 0: end of file), -EINVAL
 * (offset < -1; from the kernel: offset + len past the largest file
 * offset), -EBADF (fd negative, not open, or not open for reading /
 * writing), -EFAULT (buf not accessible), or the errors of read/write
 * (-EISDIR, -EIO, -ENOSPC, -EFBIG, -EPIPE, ...). A write to a pipe or
 * socket whose reader is gone raises SIGPIPE as write() does (use
 * weft_send on sockets, or ignore SIGPIPE). On pipes and sockets pass -1:
 * another offset is -ESPIPE on epoll, while on io_uring the kernel decides
 * (it may ignore the offset), so the backends differ there.
 */
WEFT_API ssize_t weft_read(int fd, void *buf, size_t len, int64_t offset,
                           int64_t deadline);
WEFT_API ssize_t weft_write(int fd, const void *buf, size_t len,
                            int64_t offset, int64_t deadline);

/*
 * preadv() / pwritev(): as weft_read / weft_write; also -EINVAL (iovcnt
 * negative or above IOV_MAX), -EFAULT (iov NULL with iovcnt > 0, or an
 * iovec not accessible). iovcnt 0 moves nothing and returns 0. The total
 * moved is at most 0x7ffff000, whatever the iovecs add up to.
 */
WEFT_API ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt,
                            int64_t offset, int64_t deadline);
WEFT_API ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt,
                             int64_t offset, int64_t deadline);

/*
 * openat(): opens path relative to dirfd (AT_FDCWD: the working
 * directory; an absolute path ignores dirfd). Returns the fd, -EINVAL
 * (path NULL), -EBADF (a relative path and dirfd neither AT_FDCWD nor
 * open), -ENOTDIR (dirfd not a directory), or the errors of openat
 * (-ENOENT, also for "", -EACCES, -EEXIST, -EMFILE, ...).
 */
WEFT_API int weft_openat(int dirfd, const char *path, int flags, mode_t mode,
                         int64_t deadline);

/*
 * close(): returns 0, or -EBADF (fd negative or not open), -EIO. The fd is
 * gone either way, even if the task was cancelled (the cancellation stays
 * pending); outside a task it is -EPERM and the fd stays open. Calls of other
 * tasks still waiting on fd (weft_recv, weft_send, weft_accept,
 * weft_wait_fd, ... on any worker) end first, returning -EBADF; the fd is
 * closed only after they let go of it. An fd closed with close(2) instead,
 * under waiting calls, is a mistake weft cannot see: those calls may wait
 * on (io_uring holds the file) or end with an error such as -EBADF (on
 * epoll, once the file reports an event), but nothing aborts.
 */
WEFT_API int weft_close(int fd);

/* fsync() (flags 0) or fdatasync() (WEFT_FSYNC_DATASYNC). Returns 0,
 * -EINVAL (other flags; or fd cannot be synced, e.g. a socket), -EBADF (fd
 * negative or not open), -EIO, -ENOSPC or -EROFS. */
WEFT_API int weft_fsync(int fd, unsigned flags, int64_t deadline);

/*
 * statx() (include <sys/stat.h> with _GNU_SOURCE for struct statx): fills
 * *out. Returns 0, -EINVAL (path or out NULL, bad flags or mask), -EBADF
 * (dirfd as for weft_openat), or the errors of statx (-ENOENT, -EACCES,
 * -ENOTDIR, ...).
 */
WEFT_API int weft_statx(int dirfd, const char *path, int flags, unsigned mask,
                        struct statx *out, int64_t deadline);

/* shutdown(): returns 0, -EINVAL (how not SHUT_RD, SHUT_WR or SHUT_RDWR),
 * -EBADF (fd negative or not open), -ENOTCONN or -ENOTSOCK. Never times
 * out. */
WEFT_API int weft_shutdown(int fd, int how);

/*
 * Waits until fd (owned by anything: libpq, libcurl, a pipe) is ready for
 * events (POLLIN, POLLOUT, POLLPRI, POLLRDHUP from <poll.h>; POLLERR and
 * POLLHUP may be added and are reported anyway), as one poll(). Returns the
 * ready events (> 0, may include POLLERR, POLLHUP), -EINVAL (none of the
 * four events asked for, or any other bit, such as POLLNVAL or epoll's
 * EPOLLET), or -EBADF (fd negative or not open, where poll() would report
 * POLLNVAL).
 */
WEFT_API int weft_wait_fd(int fd, unsigned events, int64_t deadline);

/*
 * Listens on host:port (host NULL: every local address; a name is resolved
 * with weft_resolve, on the blocking pool, so this may suspend).
 * SO_REUSEADDR is always set; flags may add WEFT_LISTEN_REUSEPORT. Returns
 * the listening fd, or -EINVAL (bad flags or negative backlog), -ENOENT (no
 * such host), -EAGAIN (name service busy) or another error of
 * weft_resolve, or the errors of socket/bind/listen (-EADDRINUSE, ...).
 * -EPERM outside a task, even for a numeric host.
 */
WEFT_API int weft_listen(const char *host, uint16_t port, int backlog,
                         int flags);

/*
 * Resolves host (with weft_resolve, on the blocking pool) and connects to
 * the first address of host:port that accepts, with TCP_NODELAY set.
 * Returns the connected fd, or -EINVAL (host NULL), -ENOENT (no such host),
 * -EAGAIN (name service busy) or another error of weft_resolve, or the last
 * connect error (-ECONNREFUSED, ...). A cancel stops the resolution only
 * while it waits for a pool thread (as weft_blocking), and the deadline
 * applies to the connect alone.
 */
WEFT_API int weft_connect_tcp(const char *host, uint16_t port,
                              int64_t deadline);

/*
 * Reads until len bytes arrived or the stream ended, looping over short
 * reads (so any len works, 4 GiB and more too). Returns the bytes read
 * (less than len only at end of stream; 0 at once for len 0) or the first
 * error: -EBADF (fd negative or not open), -EFAULT (buf NULL with len > 0),
 * -EINVAL (len above SSIZE_MAX, which the result could not say), or one of
 * weft_read's. Bytes read before an error are lost to the caller.
 */
WEFT_API ssize_t weft_read_exact(int fd, void *buf, size_t len,
                                 int64_t deadline);

/*
 * Writes all of buf (send() on sockets, without SIGPIPE; write()
 * otherwise), looping over short writes (so any len works, 4 GiB and more
 * too). Returns len (0 at once for len 0) or the first error, when part
 * may have been written: -EBADF (fd negative or not open), -EFAULT (buf
 * NULL with len > 0), -EINVAL (len above SSIZE_MAX), or one of weft_send's
 * or weft_write's.
 */
WEFT_API ssize_t weft_write_all(int fd, const void *buf, size_t len,
                                int64_t deadline);

/* ---- streams ---------------------------------------------------------------
 *
 * asyncio's StreamReader and StreamWriter (Tokio's BufReader and BufWriter)
 * over one fd: a socket, a pipe, any fd the I/O calls above take. A stream
 * owns its fd from weft_stream_new to weft_stream_close.
 *
 * Reads come from a buffer the stream fills from the fd; a read that finds
 * its bytes buffered returns them without entering the kernel. Writes are
 * copied into a buffer that is sent when full and by weft_stream_flush, so
 * a reply written in several pieces leaves in one send. TLS (below) is a
 * layer of the same stream.
 *
 * Every call that may wait takes an absolute deadline and is cancel-safe:
 * bytes the stream has received stay buffered when a call is cancelled or
 * times out, and the next call returns them; bytes buffered for writing
 * stay buffered until a flush sends them. One task may read while another
 * writes (on any workers), but two tasks must not read (or write) at once.
 *
 * Every call that may suspend is called from a task and returns the errors
 * of the I/O calls above besides its own: -ECANCELED, -ETIMEDOUT (nothing
 * lost, see above), -EPERM outside a task, and those of recv/send (or
 * read/write on fds that are not sockets): -ECONNRESET, -EPIPE, ...
 * A stream argument that is NULL is -EINVAL in every call.
 */
typedef struct weft_stream weft_stream_t;

/*
 * Wraps fd (a socket, pipe or other fd; weft_connect_tcp's, an accepted
 * one) in a new stream, which owns fd from then on. Allocates nothing
 * else until the first read or write (16 KiB per direction then). Does not
 * suspend. Returns 0, or -EINVAL (out NULL), -EBADF (fd negative or not
 * open), -ENOMEM.
 */
WEFT_API int weft_stream_new(weft_stream_t **out, int fd);

/* The stream's fd, for socket options and getpeername (do not read, write
 * or close it). -EINVAL if s is NULL. */
WEFT_API int weft_stream_fd(const weft_stream_t *s);

/* Bytes received and not yet read: what the next read can return without
 * waiting (on TLS, those decrypted so far). Does not suspend. -EINVAL if s
 * is NULL. */
WEFT_API ssize_t weft_stream_buffered(const weft_stream_t *s);

/*
 * asyncio's read(n): returns up to len bytes, those buffered if any, else
 * waits for one read of the fd (a len of 16 KiB or more into an empty
 * buffer reads into buf directly). Returns the count (> 0; 0 at end of
 * stream, or for len 0), -EFAULT (buf NULL with len > 0), -EINVAL (len
 * above SSIZE_MAX), or an error of the fd.
 */
WEFT_API ssize_t weft_stream_read(weft_stream_t *s, void *buf, size_t len,
                                  int64_t deadline);

/*
 * asyncio's readexactly(n): reads until len bytes arrived or the stream
 * ended. Returns len, fewer only at end of stream (they are all there
 * was), or -EFAULT (buf NULL with len > 0), -EINVAL (len above SSIZE_MAX),
 * or an error of the fd, -ECANCELED or -ETIMEDOUT: then the bytes this
 * call read stay buffered for the next call, and buf's content is
 * unspecified; -ENOMEM if they could not be kept (they are lost).
 */
WEFT_API ssize_t weft_stream_read_exact(weft_stream_t *s, void *buf,
                                        size_t len, int64_t deadline);

/*
 * asyncio's readuntil(separator) with a limit: reads up to and including
 * the first occurrence of the dlen bytes at delim, at most len bytes in
 * all, into buf (not NUL-terminated). The stream buffers at most about
 * twice len bytes while it looks, whatever the peer sends. Returns:
 *   > 0          the count, delimiter included, or at end of stream the
 *                bytes that came before it without a delimiter
 *   0            end of stream, nothing buffered
 *   -EMSGSIZE    the delimiter does not end within len bytes; nothing is
 *                consumed (read what is buffered with weft_stream_read,
 *                or give up on the peer)
 *   -EINVAL      delim NULL, dlen 0, len below dlen or above SSIZE_MAX
 *   -EFAULT      buf NULL
 *   -ENOMEM      no memory to grow the buffer
 *   or an error of the fd, -ECANCELED, -ETIMEDOUT (nothing consumed)
 */
WEFT_API ssize_t weft_stream_read_until(weft_stream_t *s, const void *delim,
                                        size_t dlen, void *buf, size_t len,
                                        int64_t deadline);

/* asyncio's readline(): weft_stream_read_until with delimiter "\n".
 * Same returns. */
WEFT_API ssize_t weft_stream_read_line(weft_stream_t *s, void *buf,
                                       size_t len, int64_t deadline);

/*
 * Copies up to len buffered bytes into buf without consuming them; with
 * nothing buffered, first waits for one read of the fd. Returns the count
 * (0 at end of stream, or for len 0), -EFAULT (buf NULL with len > 0),
 * -EINVAL (len above SSIZE_MAX), -ENOMEM, or an error of the fd.
 */
WEFT_API ssize_t weft_stream_peek(weft_stream_t *s, void *buf, size_t len,
                                  int64_t deadline);

/*
 * asyncio's write(): copies len bytes of buf into the write buffer (which
 * is sent when full; 16 KiB or more with an empty buffer go out from buf
 * directly, except on TLS), so buf may be reused at once. Suspends only
 * while the buffer is sent. Returns len, or -EFAULT (buf NULL with len >
 * 0), -EINVAL (len above SSIZE_MAX), -EPIPE (after weft_stream_shutdown),
 * -ENOMEM, or an error of the fd, -ECANCELED, -ETIMEDOUT: then a prefix of
 * buf may have been sent or buffered, while bytes of earlier writes not
 * sent stay buffered.
 */
WEFT_API ssize_t weft_stream_write(weft_stream_t *s, const void *buf,
                                   size_t len, int64_t deadline);

/* Gather write: weft_stream_write of each iovec in turn, as one call.
 * Returns the total, or as weft_stream_write, and -EINVAL (iovcnt
 * negative, or a total above SSIZE_MAX), -EFAULT (iov NULL with iovcnt >
 * 0, or an iovec with a NULL base and a length), before writing any. */
WEFT_API ssize_t weft_stream_writev(weft_stream_t *s, const struct iovec *iov,
                                    int iovcnt, int64_t deadline);

/*
 * asyncio's drain(): sends everything buffered for writing. Returns 0, or
 * an error of the fd, -ECANCELED, -ETIMEDOUT: what was not sent stays
 * buffered, and another flush resumes it.
 */
WEFT_API int weft_stream_flush(weft_stream_t *s, int64_t deadline);

/*
 * asyncio's write_eof(): flushes, then ends the sending direction
 * (shutdown(SHUT_WR); on TLS, a close_notify first) while reading goes on.
 * Writes after it return -EPIPE; a second call returns 0. Returns 0, or
 * -ENOTSOCK (not a socket), or as weft_stream_flush.
 */
WEFT_API int weft_stream_shutdown(weft_stream_t *s, int64_t deadline);

/*
 * Closes the fd (as weft_close) and frees s; bytes still buffered for
 * writing are dropped (flush or shut down first). Called from a task once
 * no other call on s is in progress. Returns the result of closing the
 * fd: 0, -EIO; or -EPERM outside a task (nothing done).
 */
WEFT_API int weft_stream_close(weft_stream_t *s);

/*
 * TLS (OpenSSL) as a layer of a stream: after weft_stream_start_tls, the
 * stream's reads and writes carry TLS records, with the same calls,
 * deadlines and cancel safety. The socket is never put in blocking mode
 * and no TLS call blocks a worker. Failures say why twice: an errno that
 * a program can act on, and a sentence for people (weft_stream_tls_error):
 *   -EKEYREJECTED  the peer's certificate did not verify (untrusted issuer,
 *                  wrong host name, expired, ...): the reason names which
 *   -EPROTO        another TLS failure: an alert from the peer (it
 *                  rejected our certificate, no protocol in common), a
 *                  malformed record
 *   -ECONNRESET    the peer closed the connection in a handshake, or
 *                  without a TLS close_notify (the data may be truncated)
 *
 * A weft_tls_t holds the settings many connections share (an SSL_CTX):
 * make one at start-up, set it up, then use it from any number of tasks at
 * once. Its setup calls read files and block for that long; they do not
 * suspend and may be called from any thread.
 */
typedef struct weft_tls weft_tls_t;

/* weft_tls_new modes. */
#define WEFT_TLS_CLIENT 0
#define WEFT_TLS_SERVER 1

/*
 * New TLS settings for clients or servers (TLS 1.2 and later). A client
 * verifies the server's certificate against the system's trusted
 * certificates (Debian: /etc/ssl/certs) and the host name given to
 * weft_stream_start_tls; a server needs weft_tls_set_cert. Returns 0, or
 * -EINVAL (out NULL, mode not one of the two), -ENOMEM, or an error of
 * loading the system's store (weft_tls_error says which).
 */
WEFT_API int weft_tls_new(weft_tls_t **out, int mode);

/*
 * Drops the caller's hold on tls; it is freed once the streams using it
 * are closed as well. Returns 0 or -EINVAL (NULL).
 */
WEFT_API int weft_tls_free(weft_tls_t *tls);

/*
 * The certificate chain (PEM, leaf first) and private key (PEM) to show
 * peers: needed by a server, optional for a client. Returns 0, or -EINVAL
 * (an argument NULL, a file that is not PEM, a key that does not match),
 * -ENOENT (no such file), -EACCES, or another errno of opening the files;
 * weft_tls_error says which.
 */
WEFT_API int weft_tls_set_cert(weft_tls_t *tls, const char *cert_file,
                               const char *key_file);

/*
 * Trusts the certificates in ca_file (PEM) as well as the system's. Returns
 * 0, or -EINVAL (an argument NULL, not PEM), -ENOENT, or another errno of
 * opening the file; weft_tls_error says which.
 */
WEFT_API int weft_tls_set_ca(weft_tls_t *tls, const char *ca_file);

/*
 * Whether to verify the peer's certificate: on by default for clients
 * (false is for tests against self-signed servers: it accepts anyone);
 * on a server, true asks every client for a certificate and refuses those
 * without a valid one. Returns 0 or -EINVAL (tls NULL).
 */
WEFT_API int weft_tls_set_verify(weft_tls_t *tls, bool verify);

/*
 * ALPN: protocols is a comma-separated list in order of preference
 * ("h2,http/1.1"). A client offers them; a server picks the first of its
 * own that the client offers, and fails a handshake with none in common.
 * Returns 0, or -EINVAL (an argument NULL, an empty list or name, a name
 * above 255 bytes, all names above 255 bytes together), -ENOMEM.
 */
WEFT_API int weft_tls_set_alpn(weft_tls_t *tls, const char *protocols);

/* Why the last failed setup call on tls failed ("" if none did). */
WEFT_API const char *weft_tls_error(const weft_tls_t *tls);

/*
 * asyncio's start_tls: runs a TLS handshake on s (a connected socket; a
 * client with tls of WEFT_TLS_CLIENT, a server with WEFT_TLS_SERVER),
 * after flushing what was written before, and makes every later read and
 * write on s go through TLS. server_name (clients only; NULL on servers)
 * is sent as SNI and is the name, or IP address, the certificate must be
 * valid for; NULL only when verification is off.
 * Suspends for the handshake. Called from a task. Returns 0, or:
 *   -EINVAL        s or tls NULL, or a client that verifies without a
 *                  server_name
 *   -EBUSY         s is TLS already, or bytes received before the call are
 *                  still unread (the protocol above is out of step)
 *   -ENOTSOCK      s is not on a socket
 *   -EKEYREJECTED, -EPROTO, -ECONNRESET  as above (weft_stream_tls_error
 *                  says why)
 *   -ETIMEDOUT, -ECANCELED, -ENOMEM, or an error of the socket
 * After a failure s can only be closed: its reads, and its writes once
 * they reach the socket (flush), return -ENOTCONN.
 */
WEFT_API int weft_stream_start_tls(weft_stream_t *s, weft_tls_t *tls,
                                   const char *server_name, int64_t deadline);

/* Why the last failed call on TLS stream s failed, as a sentence ("" if
 * none did, or s is not TLS), such as "certificate verify failed:
 * Hostname mismatch". Read it from the task that saw the failure, before
 * its next call on s. */
WEFT_API const char *weft_stream_tls_error(const weft_stream_t *s);

/* The protocol ALPN chose on s ("h2"), or NULL (none, not TLS). */
WEFT_API const char *weft_stream_tls_alpn(const weft_stream_t *s);

/* On a server's TLS stream, the host name the client asked for (SNI), or
 * NULL (none sent, not TLS). */
WEFT_API const char *weft_stream_tls_server_name(const weft_stream_t *s);

/*
 * asyncio's open_connection: resolves host (a name on the blocking pool,
 * as weft_connect_tcp), connects to the first of its addresses that
 * accepts, with TCP_NODELAY set, and wraps the socket in a new stream;
 * with tls (a WEFT_TLS_CLIENT; NULL: plain TCP), then runs a TLS handshake
 * with host as the server name (weft_stream_start_tls). The deadline
 * bounds the whole call, the name lookup included (a lookup already
 * running on a pool thread is left to finish there).
 * Called from a task. Returns 0, or -EINVAL (out or host NULL, tls a
 * server's), or the errors of weft_connect_tcp (-ENOENT no such host,
 * -ECONNREFUSED, -ETIMEDOUT, -ECANCELED, ...) and of weft_stream_start_tls
 * (-EKEYREJECTED, -EPROTO, ...: nothing is left open, so the reason is
 * lost; connect and start TLS in two calls to read it), -ENOMEM.
 */
WEFT_API int weft_open_connection(weft_stream_t **out, const char *host,
                                  uint16_t port, weft_tls_t *tls,
                                  int64_t deadline);

/*
 * asyncio's start_server: a listening socket and a task per connection.
 * Each connection's task runs fn(stream, arg) on the accepted connection
 * (TCP_NODELAY set), and closes the stream when fn returns (fn must not
 * close it; its return value is ignored). fn runs in parallel with other
 * connections, on any worker.
 */
typedef struct weft_server weft_server_t;
typedef int (*weft_conn_fn_t)(weft_stream_t *s, void *arg);

/*
 * Listens on host:port as weft_listen does (host NULL: every address; port
 * 0: an ephemeral one, see weft_server_port) and starts accepting. With
 * tls (a WEFT_TLS_SERVER; NULL: plain TCP) each connection's task first
 * runs the TLS handshake, within 10 seconds, and closes connections whose
 * handshake fails without calling fn. The server holds tls until stopped.
 * Suspends only to resolve a name. Called from a task. Returns 0, or
 * -EINVAL (out or fn NULL, tls a client's), -ENOMEM, or an error of
 * weft_listen (-EADDRINUSE, -ENOENT, ...).
 */
WEFT_API int weft_start_server(weft_server_t **out, const char *host,
                               uint16_t port, weft_tls_t *tls,
                               weft_conn_fn_t fn, void *arg);

/* The port the server listens on. Does not suspend. -EINVAL if srv is
 * NULL. */
WEFT_API int weft_server_port(const weft_server_t *srv);

/*
 * Stops srv gracefully and frees it: stops accepting (the listening socket
 * is closed), waits until deadline for the connections' tasks to return,
 * then cancels those still running and waits for them to end. A
 * cancellation of the caller meanwhile cancels the connections at once,
 * and the stop still completes. Called from a task, once. Returns the
 * number of connections that were cancelled (0: all ended by themselves),
 * or -EINVAL (srv NULL), -EPERM (outside a task; nothing done).
 */
WEFT_API int weft_server_stop(weft_server_t *srv, int64_t deadline);

/* ---- runtime handle and foreign threads --------------------------------- */

/*
 * A runtime that outlives one call, for programs whose main thread is not
 * weft's (a GUI loop, another library's callbacks). weft_run is
 * weft_runtime_new + weft_runtime_block_on + weft_runtime_free.
 *
 * weft_runtime_new starts a runtime configured from the environment and cfg
 * (cfg may be NULL) and stores its handle in *out. Its workers and other
 * threads block every asynchronous signal (see weft_signal_wait).
 * Should the I/O backend start failing later (say, a seccomp filter
 * installed afterwards refuses io_uring_enter), each worker says so once on
 * stderr and polls for work instead of sleeping in the backend; its I/O
 * already submitted never completes.
 * Called from a thread that is not a weft worker. Returns 0, or:
 *   -EINVAL      out is NULL, or a WEFT_* variable or cfg field is bad
 *                (named on stderr)
 *   -ENOMEM      out of memory while starting
 *   -EPERM       called from a worker thread (inside a task), or from a
 *                process forked by one
 *   -EOPNOTSUPP  io_uring was asked for and cannot be used here (as for
 *                weft_run)
 *   other        negative errno from creating threads or the I/O backend
 */
WEFT_API int weft_runtime_new(const weft_config_t *cfg, weft_runtime_t **out);

/*
 * Runs fn(arg) as a task of rt (named "main") and blocks the calling thread
 * until it returns; returns its status. Tasks it spawned keep running after
 * it returns, until weft_runtime_free. Several threads may block_on the
 * same runtime at once. Called from any thread that is not a weft worker.
 * A call in progress must return before weft_runtime_free is called; one
 * made once the free has begun, or after it, touches nothing and returns
 * -ESHUTDOWN. Returns fn's status, or:
 *   -EINVAL     rt or fn is NULL
 *   -EPERM      called from a worker thread (it would stall that worker)
 *   -ENOMEM     no memory for the task
 *   -ESHUTDOWN  weft_runtime_free has begun, or rt was freed
 */
WEFT_API int weft_runtime_block_on(weft_runtime_t *rt, weft_fn_t fn,
                                   void *arg);

/*
 * Shuts rt down as weft_run does when its main task returns: refuses new
 * weft_spawn_from calls, cancels every task still alive and waits for each
 * to finish (tasks waiting on a blocking-pool job that is running wait for
 * it), stops the signal thread, the blocking pool and the workers, restores
 * the signal dispositions weft replaced, and frees everything. Task handles
 * of rt must have been joined or detached before. rt stays safe to pass
 * afterwards (the memory a runtime handle names is kept for reuse, and the
 * handle carries a generation): weft_spawn_from, weft_runtime_block_on and
 * weft_runtime_free with it return -ESHUTDOWN, even once a later runtime
 * reuses that memory.
 * Blocks. Called from a thread outside rt (not a worker, not a pool job).
 * Returns 0, or:
 *   -EINVAL     rt is NULL
 *   -EPERM      called from a worker thread
 *   -ESHUTDOWN  rt was freed, or another weft_runtime_free of it has begun
 */
WEFT_API int weft_runtime_free(weft_runtime_t *rt);

/*
 * asyncio's call_soon_threadsafe: makes fn(arg) a new task of rt from any
 * thread, typically one weft does not own (a callback thread of another
 * library, a blocking-pool job). out works as in weft_spawn; a thread that
 * is not a task cannot join, so such a caller usually passes NULL or
 * detaches, and reports results through a weft_future_t. Never blocks for
 * long (takes a lock). Returns 0, or:
 *   -EINVAL     rt or fn is NULL
 *   -ENOMEM     no memory for the task
 *   -ESHUTDOWN  weft_runtime_free has begun, or rt was freed (fn will not
 *               run)
 */
WEFT_API int weft_spawn_from(weft_runtime_t *rt, weft_task_t **out,
                             weft_fn_t fn, void *arg);

/* The runtime of the calling task (for handing to foreign threads), or NULL
 * outside a worker. Never suspends. */
WEFT_API weft_runtime_t *weft_runtime_current(void);

/* ---- metrics and task dumps ---------------------------------------------- */

/*
 * What a runtime has done and holds, for dashboards and for finding out why
 * a program is slow or stuck. The counters are always on: each worker keeps
 * its own (a plain store per event), and weft_metrics sums them.
 */

/* Buckets of the histograms in weft_metrics_t: bucket 0 counts durations
 * below 1024 ns, bucket i (0 < i < 23) those in [2^(9+i), 2^(10+i)) ns,
 * bucket 23 those of 2^32 ns (4.3 s) and more. */
#define WEFT_METRICS_BUCKETS 24

/* Upper bound of histogram bucket i in ns (INT64_MAX for the last). */
#define WEFT_METRICS_BUCKET_NS(i) \
    ((i) + 1 < WEFT_METRICS_BUCKETS ? (int64_t)1 << (10 + (i)) : INT64_MAX)

/* One worker's share (see weft_metrics_t for what each counts). */
typedef struct weft_worker_metrics {
    uint64_t spawned;          /* tasks spawned by tasks on this worker */
    uint64_t finished;         /* tasks that ended on this worker */
    uint64_t runs;             /* resumptions of a task on this worker */
    uint64_t steals;           /* batches stolen from other workers */
    uint64_t parks;            /* times it went to sleep for want of work */
    uint64_t wakes;            /* tasks woken by tasks on this worker */
    uint64_t io_submitted;     /* I/O operations submitted here */
    uint64_t io_completed;     /* I/O operations completed here */
    uint64_t kernel_entries;   /* system calls of its I/O backend */
    uint32_t run_queue_depth;  /* tasks in its run queue now */
    uint32_t timers_armed;     /* timers in its heap now */
    uint32_t in_task;          /* 1 if a task is on its CPU now */
    uint32_t parked;           /* 1 if it sleeps in its backend now */
} weft_worker_metrics_t;

/*
 * A snapshot of a runtime's metrics. Sized: the caller sets .size to
 * sizeof(weft_metrics_t) (and .per_worker_size to
 * sizeof(weft_worker_metrics_t)); a later weft adds fields at the end only,
 * and fills no more than the caller's sizes, so a program built against
 * an older weft.h keeps working. Counters count from the runtime's start;
 * the gauges (depths, in flight, alive, threads) are the state at the call.
 * Each is read without stopping the workers, so the sums are a moment's
 * view, not an atomic one: tasks_alive may be off by the tasks spawned or
 * ending during the call.
 */
typedef struct weft_metrics {
    size_t size;                   /* in: sizeof(weft_metrics_t) */
    unsigned workers;              /* the runtime's worker threads */
    uint64_t tasks_spawned;        /* tasks made runnable: weft_spawn*,
                                      block_on's main, the shutdown drain */
    uint64_t tasks_finished;       /* tasks that ended (run or cancelled
                                      before they started) */
    uint64_t tasks_alive;          /* spawned - finished */
    uint64_t runs;                 /* task resumptions */
    uint64_t steals;               /* batches stolen between workers */
    uint64_t parks;                /* workers going to sleep */
    uint64_t wakes_local;          /* tasks woken from a worker */
    uint64_t wakes_remote;         /* tasks woken from other threads (the
                                      blocking pool, signals, foreign) */
    uint64_t run_queue_depth;      /* tasks in workers' run queues */
    uint64_t injection_queue_depth;/* tasks in the shared queue */
    uint64_t timers_armed;         /* deadlines being waited for */
    uint64_t io_submitted;         /* I/O operations handed to a backend */
    uint64_t io_completed;         /* of which completed */
    uint64_t io_in_flight;         /* submitted - completed */
    uint64_t kernel_entries;       /* waits and submits the workers'
                                      backends made (io_uring_enter,
                                      epoll_wait); an operation's own
                                      system call under epoll is not one */
    uint64_t blocking_busy;        /* blocking-pool threads running a job */
    uint64_t blocking_idle;        /* blocking-pool threads waiting */
    uint64_t blocking_queued;      /* jobs waiting for a thread */
    uint64_t stacks_mapped;        /* task stacks mapped */
    uint64_t stacks_pooled;        /* of which free in the shared pool (the
                                      rest are in use or cached by workers) */
    uint64_t stalls;               /* workers found stuck in one task for
                                      WEFT_STALL_MS */
    /* Sampled (per worker, about one run in 976 and one wake in 1024):
     * the delay from a wake to the run it caused, and how long runs last
     * until they suspend or end. */
    uint64_t sched_delay_hist[WEFT_METRICS_BUCKETS];
    uint64_t run_time_hist[WEFT_METRICS_BUCKETS];
    weft_worker_metrics_t *per_worker; /* in: NULL, or room for
                                          per_worker_len entries */
    unsigned per_worker_len;       /* in: entries of per_worker; out: how
                                      many were filled */
    size_t per_worker_size;        /* in: sizeof(weft_worker_metrics_t) */
} weft_metrics_t;

/*
 * Fills m with rt's metrics (rt NULL: the calling task's runtime), and the
 * first per_worker_len entries of per_worker, if given. Never blocks for
 * long (takes the locks of the pool, the stacks and each timer heap
 * briefly); any thread. Returns 0, or:
 *   -EINVAL     m is NULL, m->size is smaller than the fields up to
 *               .stalls, or per_worker is given with a per_worker_size
 *               of 0
 *   -EPERM      rt is NULL and the caller is not a task
 *   -ESHUTDOWN  rt was freed, or its weft_runtime_free has begun
 */
WEFT_API int weft_metrics(weft_runtime_t *rt, weft_metrics_t *m);

/*
 * Writes m in Prometheus' text exposition format (version 0.0.4) into buf,
 * NUL-terminated: counters and gauges named weft_*, the histograms in
 * seconds, and per-worker series labelled worker="i" for the entries of
 * m->per_worker. Returns the length written (without the NUL), or:
 *   -EINVAL   m or buf is NULL, or len is 0
 *   -ENOBUFS  the text does not fit in len bytes (buf then holds as many
 *             whole lines as fit)
 */
WEFT_API int weft_metrics_format(const weft_metrics_t *m, char *buf,
                                 size_t len);

/*
 * Writes a dump of rt (rt NULL: the calling task's runtime) to fd, as Go's
 * SIGQUIT dump does for goroutines: per worker, whether it runs a task
 * (which one), sleeps or schedules, and its run queue depth; then every
 * live task: its id (the value weft_self returns in it), name, state
 * (queued, running on worker i, runnable after a yield, parked), why it
 * waits (sleep, join, io, sync, queue, future, blocking, signal) and where:
 * the return address of the call it waits in, as function+0xoffset (file),
 * which addr2line turns into file:line (a wait made in tail position, as
 * in `return weft_sleep_ms(n);`, shows the function that called the
 * waiting one), and its task function likewise.
 * Identical unnamed waits (same state, function and place) are collapsed
 * into one line with a count. Does not stop the workers: a task that moves
 * on while the dump runs shows as it was when it was read. Any thread, any
 * time (symbolizing opens the program's files: not for hot paths).
 * WEFT_DUMP_SIGNAL writes the same dump to stderr on a signal.
 * Returns how many live tasks it listed, or:
 *   -EBADF      fd is negative
 *   -EPERM      rt is NULL and the caller is not a task
 *   -ESHUTDOWN  rt was freed, or its weft_runtime_free has begun
 *   -ENOMEM     no memory for the snapshot
 *   other       negative errno of write(2) to fd
 */
WEFT_API int weft_dump(weft_runtime_t *rt, int fd);

/* ---- blocking pool -------------------------------------------------------- */

/*
 * asyncio.to_thread: runs fn(arg) on a thread of the blocking pool, apart
 * from the workers, and suspends the calling task until it returns, so a
 * CPU-bound or blocking call does not stall the task's event loop. Pool
 * threads are created on demand up to WEFT_BLOCKING_THREADS and exit after
 * WEFT_BLOCKING_KEEPALIVE_MS idle; when all are busy, calls queue in FIFO
 * order (never dropped). fn runs outside any task: it must not call
 * suspending weft functions (they return -EPERM), but may use
 * weft_spawn_from and weft_future_set.
 * Cancellation: while the call is still queued, cancelling the task (or an
 * enclosing timeout scope expiring) removes it: fn never runs and this
 * returns -ECANCELED (-ETIMEDOUT). Once fn has started it cannot be
 * interrupted: the task waits for it and gets fn's status; the cancellation
 * stays pending and is delivered at the task's next suspension point.
 * Suspends. Called from a task. Returns fn's status, or:
 *   -ECANCELED  cancelled before fn started
 *   -ETIMEDOUT  an enclosing timeout scope expired before fn started
 *   -EINVAL     fn is NULL
 *   -EPERM      not called from a task
 *   -EAGAIN     the pool has no thread and could not create one
 */
WEFT_API int weft_blocking(int (*fn)(void *arg), void *arg);

/*
 * Tokio's block_in_place: runs fn(arg) right here, on the calling task's
 * worker thread, after handing that worker's duties to the others: the
 * task it was to run next and its queue go to other workers at once, and
 * the stall monitor serves its timers and completed I/O while fn runs
 * (within a tick, a quarter of WEFT_STALL_MS). When fn returns, the worker
 * takes its duties back. For code that must run on this thread (a legacy
 * library keeping thread-local state, a call holding a lock taken here);
 * otherwise prefer weft_blocking, which keeps the worker free. fn may call
 * weft functions, suspending ones included (its task is then a task like
 * any other until it returns). Cancellation is not delivered during fn.
 * With stall detection off (WEFT_STALL_MS=0) only the queued tasks move.
 * The runtime interrupts the worker thread with SIGURG (SA_RESTART) to
 * have the kernel post its completions: a blocking call in fn that is not
 * restarted after a signal (nanosleep, poll, ...) may return early with
 * EINTR, as under Go's preemption.
 * Called from a task. Returns fn's status, or:
 *   -EINVAL  fn is NULL
 *   -EPERM   not called from a task
 */
WEFT_API int weft_block_in_place(int (*fn)(void *arg), void *arg);

/* ---- futures -------------------------------------------------------------- */

/*
 * asyncio.Future for an int: a one-shot result that any thread may set once
 * and any number of tasks may await. The value is a status, as a task's
 * (>= 0 a value, < 0 a negative errno), so that a failure can travel too.
 * Storage is embedded, like the toolkit's primitives: put a weft_future_t
 * in your own struct (typically the one the completing thread holds) and
 * set it up with weft_future_init. Futures are not tied to a runtime; init,
 * set, try_get and destroy work from any thread.
 */
typedef struct weft_future {
    WEFT_OPAQUE(48);
} weft_future_t;

/* Makes f unset. Returns 0 or -EINVAL (NULL). Any thread. */
WEFT_API int weft_future_init(weft_future_t *f);

/*
 * Tears f down (the storage is yours). A task may destroy f as soon as its
 * wait returned, even while the setter is still waking other waiters.
 * Never suspends; any thread. Returns 0, -EINVAL (NULL), or -EBUSY while
 * tasks wait on f.
 */
WEFT_API int weft_future_destroy(weft_future_t *f);

/*
 * Sets f's value and wakes every task waiting on it; a waiter whose
 * deadline or cancellation comes at the same moment still gets the value.
 * Never suspends; any thread, workers and foreign threads alike. Returns 0,
 * or:
 *   -EINVAL    f is NULL
 *   -EALREADY  f was already set (the first value stays)
 */
WEFT_API int weft_future_set(weft_future_t *f, int value);

/*
 * Awaits f until it is set or deadline (weft_now_ns() clock; or
 * WEFT_NO_DEADLINE) passes. Suspends. Called from a task. Returns f's value
 * once set (at once if it already is), or:
 *   -ETIMEDOUT  the deadline (or an enclosing timeout scope) passed first
 *   -ECANCELED  the task was cancelled while waiting
 *   -EINVAL     f is NULL
 *   -EPERM      not called from a task
 * A value that is itself one of these errnos is indistinguishable from the
 * failure; weft_future_try_get tells them apart.
 */
WEFT_API int weft_future_wait(weft_future_t *f, int64_t deadline);

/*
 * Never suspends; any thread. Returns 0 and stores f's value in *value (if
 * value is not NULL) when f is set, or -EAGAIN if not yet, -EINVAL if f is
 * NULL.
 */
WEFT_API int weft_future_try_get(weft_future_t *f, int *value);

/* ---- DNS ------------------------------------------------------------------ */

/*
 * getaddrinfo(host, service, hints) on the blocking pool (include
 * <netdb.h>); on success *out holds the list, to release with
 * weft_resolve_free. Cancellation works as in weft_blocking.
 * Suspends. Called from a task. Returns 0, or (EAI_* code it stands for):
 *   -ENOENT           host or service unknown (EAI_NONAME)
 *   -ENODATA          the host has no address (EAI_NODATA)
 *   -EADDRNOTAVAIL    the host has no address in the family (EAI_ADDRFAMILY)
 *   -EAGAIN           temporary failure in name resolution (EAI_AGAIN)
 *   -EIO              permanent name-server failure (EAI_FAIL), or an
 *                     unknown EAI code
 *   -ENOMEM           out of memory (EAI_MEMORY)
 *   -EAFNOSUPPORT     hints->ai_family not supported (EAI_FAMILY)
 *   -ESOCKTNOSUPPORT  hints->ai_socktype not supported (EAI_SOCKTYPE)
 *   -EPROTONOSUPPORT  service not available for the socket type
 *                     (EAI_SERVICE)
 *   -EINVAL           bad hints->ai_flags (EAI_BADFLAGS), out NULL, or host
 *                     and service both NULL
 *   -ENAMETOOLONG     a buffer was too small (EAI_OVERFLOW)
 *   -errno            a system error (EAI_SYSTEM)
 *   -ECANCELED, -ETIMEDOUT, -EPERM, -EAGAIN  as for weft_blocking
 */
WEFT_API int weft_resolve(const char *host, const char *service,
                          const struct addrinfo *hints, struct addrinfo **out);

/* Frees a list from weft_resolve; NULL is fine. Any thread. */
WEFT_API void weft_resolve_free(struct addrinfo *res);

/* ---- signals -------------------------------------------------------------- */

/*
 * Waits until signo (SIGINT, SIGTERM, SIGHUP, SIGUSR1, ...) is delivered to
 * the process, or deadline passes, so that a server can shut down cleanly.
 * Every task waiting for signo when it arrives wakes; a delivery while no
 * task waits is swallowed.
 * How: the first wait for signo installs weft's handler for it, replacing
 * the disposition (kept until the runtime shuts down, when the previous one
 * is restored; a forked child gets the previous one at once). The handler
 * runs on any thread that does not block signo; weft's own threads block
 * every asynchronous signal, so it runs on one of yours (the one in
 * weft_run will do). If your program blocks signo in every one of its
 * threads (say, to sigwait for it), the signal stays pending and the task
 * never sees it: do not mix the two. Conversely, a thread of yours that
 * must not be interrupted should block signo itself.
 * Suspends. Called from a task. Returns 0 when signo arrived, or:
 *   -ETIMEDOUT  the deadline (or an enclosing timeout scope) passed first
 *   -ECANCELED  the task was cancelled while waiting
 *   -EINVAL     signo cannot be waited for: SIGKILL, SIGSTOP, the
 *               synchronous SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP and
 *               SIGSYS, the C library's reserved real-time signals, and
 *               SIGURG (the runtime's, see weft_config_t.stall_ms)
 *   -EPERM      not called from a task
 *   other       negative errno from sigaction, eventfd or pthread_create
 */
WEFT_API int weft_signal_wait(int signo, int64_t deadline);

/*
 * weft_signal_wait for any signal of set (sigemptyset, sigaddset), "SIGINT
 * or SIGTERM" in one call: returns the signal that came. If several of the
 * set come at once (before the task is woken), the lowest-numbered is
 * returned and the others are swallowed, as deliveries while no task waits
 * are. Suspends. Called from a task. Returns the signal number (> 0), or:
 *   -ETIMEDOUT  the deadline (or an enclosing timeout scope) passed first
 *   -ECANCELED  the task was cancelled while waiting
 *   -EINVAL     set NULL or empty, or it holds a signal weft_signal_wait
 *               refuses (so sigfillset's set is refused: it holds SIGKILL)
 *   -EPERM      not called from a task
 *   other       negative errno from sigaction, eventfd or pthread_create
 */
WEFT_API int weft_signal_wait_set(const sigset_t *set, int64_t deadline);

/* ---- child processes ------------------------------------------------------ */

/*
 * fork() works from a task, a blocking-pool job or any thread of yours
 * while a runtime runs. The child has one thread, the one that called
 * fork, and none of weft's. As in any multi-threaded program, until it
 * calls exec or _exit the child may only make async-signal-safe calls
 * (no malloc, no stdio, no locks another thread may have held): in
 * particular no weft call, since the workers and threads they rely on
 * are not in the child. weft_run and weft_runtime_new called in a child
 * forked from a task return -EPERM (the thread still counts as a worker);
 * anything else of weft's there is undefined. To start a runtime in a
 * child, fork before the parent starts its own or after it has ended.
 *
 * Signals in the child. weft's threads block every asynchronous signal; a
 * fork handler (pthread_atfork) gives the child of one of them the mask
 * that the thread which created the runtime had when it did, as if weft's
 * thread had been that thread, so that a child (and whatever it execs)
 * can be stopped with SIGTERM. A child of a thread of yours keeps that
 * thread's mask. In every child, the dispositions weft_signal_wait
 * replaced are the previous ones again.
 *
 * posix_spawn and vfork run no fork handlers (nor do system and popen,
 * which glibc builds on posix_spawn): their child starts with the calling
 * thread's mask, every asynchronous signal blocked if that is a weft
 * thread, and keeps it across exec. Pass posix_spawn the mask from
 * weft_child_sigmask (posix_spawnattr_setsigmask with
 * POSIX_SPAWN_SETSIGMASK). system and popen take no mask: set the calling
 * thread's mask to that one around the call (in a weft_blocking job, say;
 * a signal may then be handled on that pool thread meanwhile).
 */

/*
 * Stores in *mask the signal mask a child process started from the calling
 * thread should begin with: on a weft thread (a task's worker, a pool
 * job's thread), the mask its forked children get (see above); on any
 * other thread, that thread's own mask. Never suspends; any thread.
 * Returns 0, or -EINVAL (mask NULL).
 */
WEFT_API int weft_child_sigmask(sigset_t *mask);

/* ---- subprocesses --------------------------------------------------------- */

/*
 * asyncio's create_subprocess_exec: a child process started from a task,
 * its standard streams each a pipe, the parent's, or /dev/null, waited for
 * by a task without a thread (the kernel's pidfd, polled as any fd).
 */
typedef struct weft_process weft_process_t;

/* What each of the child's standard streams is (weft_process_opts.stdio). */
enum weft_stdio {
    WEFT_STDIO_INHERIT = 0, /* the parent's descriptor of the same number */
    WEFT_STDIO_PIPE = 1,    /* a pipe to the parent: weft_process_fd */
    WEFT_STDIO_NULL = 2,    /* /dev/null */
};

/* Options of weft_process_spawn. Zero-initialise and set what you need. */
typedef struct weft_process_opts {
    char *const *env; /* the child's environment ("NAME=value" strings, NULL
                         terminated); NULL: the caller's (environ) */
    const char *cwd;  /* the child's working directory; NULL: the caller's */
    int stdio[3];     /* stdin, stdout, stderr: an enum weft_stdio each */
} weft_process_opts_t;

/*
 * Starts file with argv (argv[0] first, NULL terminated) and stores the
 * handle in *out, to release with weft_process_close. A file without a
 * '/' is searched for in the caller's PATH, as execvp does. opts may be
 * NULL (every stream inherited, the caller's environment and directory).
 * The child starts with no signal blocked and every signal at its default
 * action, whatever the calling thread's mask (weft's threads block every
 * asynchronous signal) and whatever the process ignores (except signals 32
 * and 33, below SIGRTMIN, which glibc keeps for itself and its posix_spawn
 * leaves ignored in every child); it inherits only its standard streams
 * from weft (every descriptor weft makes is close-on-exec; yours follow
 * their own flags).
 * The parent's ends of the pipes are non-blocking and close-on-exec, for
 * the ordinary calls (weft_read, weft_write, weft_write_all, ...; the
 * stdin pipe's reader gone, a write there is -EPIPE, and raises SIGPIPE on
 * the thread as write() does, which weft's threads block). They are the
 * caller's from here on: weft_process_fd gives them, and the caller
 * closes each (weft_close) when done; weft_process_close does not touch
 * them. Closing the stdin pipe is how the child sees the end of its input.
 * The child is a child of the process: SIGCHLD must not be ignored
 * (SIG_IGN makes the kernel reap children itself), and nothing else may
 * reap it (waitpid(-1, ...) in another thread would steal its status).
 * Does not suspend (the calling worker waits while the child is cloned
 * and execs, as vfork does). Called from a task. Returns 0, or:
 *   -EINVAL   out, file or argv NULL, argv[0] NULL, or a stdio value not
 *             in enum weft_stdio
 *   -EPERM    not called from a task
 *   -ENOMEM   no memory for the handle
 *   -EMFILE, -ENFILE  no descriptor for a pipe or the pidfd
 *   -ENOSYS   the kernel has no pidfd_open (before Linux 5.3)
 *   other     the errors of posix_spawn, so of execve and of opening
 *             /dev/null or changing to cwd: -ENOENT (no such file, or no
 *             such cwd), -EACCES, -ENOEXEC, -E2BIG, -ENOTDIR, ...
 */
WEFT_API int weft_process_spawn(weft_process_t **out, const char *file,
                                char *const argv[],
                                const weft_process_opts_t *opts);

/* The child's process id, or -EINVAL (p NULL). Never suspends. */
WEFT_API int weft_process_pid(const weft_process_t *p);

/*
 * The parent's end of the pipe to the child's stream (0: stdin, for
 * writing; 1: stdout, 2: stderr, for reading). Never suspends. Returns
 * the fd, or -EINVAL (p NULL, stream not 0, 1 or 2), -EBADF (that stream
 * is not a pipe).
 */
WEFT_API int weft_process_fd(const weft_process_t *p, int stream);

/*
 * Waits until the child has ended or the deadline passes, and reaps it.
 * Returns its wait status (>= 0), which the macros of <sys/wait.h> read:
 * WIFEXITED and WEXITSTATUS, or WIFSIGNALED and WTERMSIG (and WCOREDUMP).
 * Once the child is reaped every later call returns that status at once;
 * several tasks may wait at the same time. A wait that is cancelled or
 * times out leaves the child running and the handle as it was: wait again,
 * kill it, or close the handle (which kills it).
 * Suspends. Called from a task. Returns the status, or:
 *   -ETIMEDOUT  the deadline (or an enclosing timeout scope) passed first
 *   -ECANCELED  the task was cancelled while waiting
 *   -EINVAL     p NULL
 *   -EPERM      not called from a task
 *   -ECHILD     the child was reaped by someone else (SIGCHLD ignored,
 *               or a waitpid(-1, ...) elsewhere)
 */
WEFT_API int weft_process_wait(weft_process_t *p, int64_t deadline);

/*
 * Sends signo to the child (through its pidfd, so never to another
 * process that reused its id); signo 0 only checks that it can be
 * signalled. Never suspends; any thread. Returns 0, or:
 *   -EINVAL  p NULL, or signo not a signal number
 *   -ESRCH   the child was reaped (by weft_process_wait, or elsewhere);
 *            one that has ended but is not reaped yet takes the signal
 *            to no effect, and this returns 0
 *   -EPERM   the kernel refused (the child changed its credentials)
 */
WEFT_API int weft_process_kill(weft_process_t *p, int signo);

/*
 * Releases the handle. A child still running is killed (SIGKILL): no
 * child outlives its handle, and none stays a zombie. A child not yet
 * reaped is reaped: at once if it has ended; else, called from a task, by
 * a blocking-pool job that waits the short while SIGKILL takes (the pool
 * runs it before the runtime ends, so no zombie and no descriptor of
 * weft's outlives weft_run); called from any other thread, on the spot.
 * This is what to call on every path out, a cancelled wait included:
 *     ret = weft_process_wait(p, deadline);
 *     weft_process_close(p);
 * No other call on p may be in progress or follow, and the pipes stay
 * open (they are the caller's). Does not suspend. Returns 0, or -EINVAL
 * (p NULL).
 */
WEFT_API int weft_process_close(weft_process_t *p);

/* ---- Unix sockets --------------------------------------------------------- */

/*
 * Unix-domain stream sockets by path, as asyncio's create_unix_server and
 * open_unix_connection. A path starting with '@' names a socket in Linux's
 * abstract namespace (the rest of the string is the name; nothing on disk,
 * gone with its last descriptor); any other path is a file. The sockets
 * are non-blocking and close-on-exec, and work with every socket call
 * (weft_accept, weft_listener_new, weft_recv, ...).
 */

/*
 * Binds a stream socket to path and listens on it. As asyncio does, a
 * socket file left at path (by a server that is gone) is removed first;
 * any other kind of file there is -EADDRINUSE. flags must be 0. Does not
 * suspend (bind creates the file on the calling thread); any thread.
 * Returns the listening fd, or:
 *   -EINVAL        path NULL, "" or "@", flags not 0, or backlog negative
 *   -ENAMETOOLONG  path does not fit a sockaddr_un: a file path of 108
 *                  bytes or more, an abstract one of 109 with the '@'
 *   -EADDRINUSE    a file that is not a socket is at path, or the abstract
 *                  name is taken
 *   other          the errors of socket, unlink, bind and listen (-EACCES,
 *                  -ENOENT for a missing directory, -EMFILE, ...)
 */
WEFT_API int weft_listen_unix(const char *path, int backlog, int flags);

/*
 * Connects a stream socket to the listener at path (see weft_listen_unix
 * for '@'). Suspends until connected, the deadline passes or the task is
 * cancelled. Called from a task. Returns the connected fd, or:
 *   -EINVAL        path NULL, "" or "@"
 *   -ENAMETOOLONG  path does not fit (as for weft_listen_unix)
 *   -ENOENT        no file at path
 *   -ECONNREFUSED  nothing listens there (a stale file, an unbound name)
 *   -ETIMEDOUT, -ECANCELED, -EPERM  as for every I/O call
 *   other          the errors of socket and connect (-EACCES,
 *                  -ENOTDIR, -EMFILE, ...)
 */
WEFT_API int weft_connect_unix(const char *path, int64_t deadline);

/* ---- driving another library's descriptor ------------------------------- */

/*
 * One step of another library's non-blocking state machine (libpq's
 * PQconnectPoll or PQconsumeInput, libcurl's multi interface, a TLS
 * handshake): it does what it can without blocking, stores in *fd the
 * descriptor it waits on, and returns the events to wait for (POLLIN,
 * POLLOUT, POLLPRI, POLLRDHUP, as weft_wait_fd takes them), 0 when the
 * work is done, or a negative errno when it failed.
 */
typedef int (*weft_step_fn)(void *arg, int *fd);

/*
 * Calls step(arg, &fd) until it returns 0 or a negative errno, waiting
 * after each positive return for fd to be ready for those events, as
 * weft_wait_fd does (readiness is a hint: the next step may find nothing
 * to do and ask again). The fd may change between steps (a library that
 * tries another address). A wait that ends early (deadline, cancel)
 * leaves the library mid-way; what to do with it is the caller's call
 * (libpq: PQcancel, or PQfinish). For libpq's query results:
 *     static int result_step(void *arg, int *fd)
 *     {
 *         PGconn *c = arg;
 *         int unsent = PQflush(c);
 *
 *         *fd = PQsocket(c);
 *         if (unsent < 0 || !PQconsumeInput(c))
 *             return -EIO;
 *         return unsent ? POLLIN | POLLOUT : PQisBusy(c) ? POLLIN : 0;
 *     }
 *     ret = PQsendQuery(c, sql) ? weft_drive_fd(result_step, c, deadline)
 *                               : -EIO;
 * Suspends when step asks to wait. Called from a task. Returns 0, step's
 * negative errno, or one of weft_wait_fd's: -EINVAL (step NULL, or events
 * weft_wait_fd refuses), -EBADF (fd negative or not open), -ETIMEDOUT,
 * -ECANCELED, -EPERM.
 */
WEFT_API int weft_drive_fd(weft_step_fn step, void *arg, int64_t deadline);

#ifdef __cplusplus
}
#endif

#endif
