/*
 * Configuration: every WEFT_* variable's bad values make weft_run fail with
 * -EINVAL and a message on stderr naming the variable and the value, before
 * anything runs; good values take effect; a set weft_config_t field wins
 * over its variable, and a bad field is rejected the same way. Each test
 * sets the environment it needs (Criterion runs each test in its own
 * process).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "runtime/runtime.h"
#include "runtime/stack.h"
#include "runtime/task.h"
#include "runtime/worker.h"

#define KIB 1024
#define MIB (1024 * 1024)

struct t_outcome {
    int ret;
    bool ran;
    char err[4096];
};

static int mark_ran(void *arg)
{
    ((struct t_outcome *)arg)->ran = true;
    return 0;
}

/* weft_run_with(cfg, fn, o) with stderr captured into o->err. */
static void t_run_capturing(const weft_config_t *cfg, weft_fn_t fn,
                            struct t_outcome *o)
{
    int p[2], saved;
    ssize_t n;

    o->ran = false;
    fflush(stderr);
    cr_assert_eq(pipe(p), 0);
    saved = dup(STDERR_FILENO);
    cr_assert_geq(saved, 0);
    dup2(p[1], STDERR_FILENO);
    close(p[1]);
    o->ret = weft_run_with(cfg, fn, o);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    n = read(p[0], o->err, sizeof(o->err) - 1);
    o->err[n > 0 ? n : 0] = '\0';
    close(p[0]);
}

/* Sets name=value and checks weft_run refuses it and says why. */
static void t_rejects(const char *name, const char *value)
{
    struct t_outcome o;

    cr_assert_eq(setenv(name, value, 1), 0);
    t_run_capturing(NULL, mark_ran, &o);
    unsetenv(name);
    cr_assert_eq(o.ret, -EINVAL, "%s=%s: weft_run returned %d", name, value,
                 o.ret);
    cr_assert_not(o.ran, "%s=%s: the main task ran", name, value);
    cr_assert(strstr(o.err, name), "%s=%s: stderr does not name it: %s",
              name, value, o.err);
    cr_assert(strstr(o.err, value), "%s=%s: stderr lacks the value: %s",
              name, value, o.err);
}

/* ---- bad values ---------------------------------------------------------- */

Test(config, bad_workers_rejected_naming_variable_and_value, .timeout = 10)
{
    t_rejects("WEFT_WORKERS", "0");
    t_rejects("WEFT_WORKERS", "abc");
    t_rejects("WEFT_WORKERS", "-1");
    t_rejects("WEFT_WORKERS", "99999");
    t_rejects("WEFT_WORKERS", "2x");
    t_rejects("WEFT_WORKERS", "99999999999999999999999");
}

Test(config, bad_stack_size_rejected_naming_variable_and_value,
     .timeout = 10)
{
    t_rejects("WEFT_STACK_SIZE", "1");
    t_rejects("WEFT_STACK_SIZE", "12Q");
    t_rejects("WEFT_STACK_SIZE", "4K");     /* below the 16 KiB minimum */
    t_rejects("WEFT_STACK_SIZE", "2G");     /* above the 1 GiB maximum */
    t_rejects("WEFT_STACK_SIZE", "K");
    t_rejects("WEFT_STACK_SIZE", "-64K");
}

Test(config, bad_switches_rejected_naming_variable_and_value, .timeout = 10)
{
    t_rejects("WEFT_PIN", "maybe");
    t_rejects("WEFT_DEBUG", "2");
    t_rejects("WEFT_SQPOLL", "x");
}

Test(config, bad_io_backend_rejected_naming_variable_and_value,
     .timeout = 10)
{
    t_rejects("WEFT_IO", "kqueue");
    t_rejects("WEFT_IO", "");
}

Test(config, bad_ring_entries_rejected_naming_variable_and_value,
     .timeout = 10)
{
    t_rejects("WEFT_RING_ENTRIES", "3");     /* not a power of two */
    t_rejects("WEFT_RING_ENTRIES", "0");
    t_rejects("WEFT_RING_ENTRIES", "65536"); /* above 32768 */
}

Test(config, bad_blocking_pool_settings_rejected_naming_variable_and_value,
     .timeout = 10)
{
    t_rejects("WEFT_BLOCKING_THREADS", "0");
    t_rejects("WEFT_BLOCKING_THREADS", "many");
    t_rejects("WEFT_BLOCKING_KEEPALIVE_MS", "soon");
    t_rejects("WEFT_BLOCKING_KEEPALIVE_MS", "99999999999");
    t_rejects("WEFT_STALL_MS", "60001");
    t_rejects("WEFT_STALL_MS", "-1");
}

/* ---- good values --------------------------------------------------------- */

static struct weft__config t_seen; /* the resolved config, from inside */

static int record_config(void *arg)
{
    ((struct t_outcome *)arg)->ran = true;
    t_seen = weft__worker_current()->rt->cfg;
    return 0;
}

/* Sets name=value and checks weft_run accepts it; t_seen holds the result. */
static void t_accepts(const char *name, const char *value)
{
    struct t_outcome o;

    cr_assert_eq(setenv(name, value, 1), 0);
    t_run_capturing(NULL, record_config, &o);
    unsetenv(name);
    cr_assert_eq(o.ret, 0, "%s=%s: weft_run returned %d: %s", name, value,
                 o.ret, o.err);
    cr_assert(o.ran);
}

static int stack_of_a_task(void *arg)
{
    size_t want = (size_t)(intptr_t)arg;

    cr_assert_eq(t_stack_promised(), want);
    /* At least what was promised (frames above take a few bytes of the
     * last page), at most a default stack's mapping, twice that (room for
     * inline joins, stack.c). */
    cr_assert_geq(t_stack_room() + 4 * KIB, want);
    cr_assert_leq(t_stack_room(), 2 * want);
    return 0;
}

static int check_task_stack(void *arg)
{
    weft_task_t *t;

    cr_assert_eq(weft_spawn(&t, stack_of_a_task, arg), 0);
    cr_assert_eq(weft_join(t), 0);
    return 0;
}

Test(config, stack_size_with_suffixes_is_used_for_tasks, .timeout = 10)
{
    static const struct {
        const char *value;
        size_t bytes;
    } sizes[] = {
        { "64K", 64 * KIB }, { "1M", MIB }, { "64KiB", 64 * KIB },
        { "1m", MIB }, { "131072", 128 * KIB }, { "16k", 16 * KIB },
    };

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        t_accepts("WEFT_STACK_SIZE", sizes[i].value);
        cr_assert_eq(t_seen.stack_size, sizes[i].bytes, "%s",
                     sizes[i].value);
        cr_assert_eq(setenv("WEFT_STACK_SIZE", sizes[i].value, 1), 0);
        cr_assert_eq(weft_run(check_task_stack,
                              (void *)(intptr_t)sizes[i].bytes), 0,
                     "%s", sizes[i].value);
        unsetenv("WEFT_STACK_SIZE");
    }
}

#define SPREAD_TASKS 64

static int busy_then_record(void *arg)
{
    int64_t end = weft_now_ns() + 100 * 1000;

    while (weft_now_ns() < end)
        ;
    *(int *)arg = weft_worker_id();
    return 0;
}

/* Runs busy tasks; returns the highest worker id any of them saw. */
static int spread_tasks(void *arg)
{
    int ids[SPREAD_TASKS];
    weft_task_t *t[SPREAD_TASKS];
    int max = 0;

    (void)arg;
    for (int i = 0; i < SPREAD_TASKS; i++)
        cr_assert_eq(weft_spawn(&t[i], busy_then_record, &ids[i]), 0);
    for (int i = 0; i < SPREAD_TASKS; i++) {
        cr_assert_eq(weft_join(t[i]), 0);
        cr_assert_geq(ids[i], 0);
        max = ids[i] > max ? ids[i] : max;
    }
    cr_assert_eq(weft__worker_current()->rt->nworkers,
                 t_seen.workers);
    return max;
}

Test(config, workers_sets_the_number_of_worker_threads, .timeout = 10)
{
    int max;

    t_accepts("WEFT_WORKERS", "3");
    cr_assert_eq(t_seen.workers, 3);
    cr_assert_eq(setenv("WEFT_WORKERS", "3", 1), 0);
    max = weft_run(spread_tasks, NULL);
    cr_assert(max >= 0 && max < 3, "worker id %d", max);
}

Test(config, good_switches_backend_and_pool_values_accepted, .timeout = 10)
{
    t_accepts("WEFT_PIN", "1");
    cr_assert(t_seen.pin);
    t_accepts("WEFT_PIN", "off");
    cr_assert_not(t_seen.pin);
    t_accepts("WEFT_DEBUG", "yes");
    cr_assert(t_seen.debug);
    t_accepts("WEFT_DEBUG", "0");
    cr_assert_not(t_seen.debug);
    t_accepts("WEFT_SQPOLL", "false");
    cr_assert_not(t_seen.sqpoll);
    t_accepts("WEFT_IO", "epoll");
    cr_assert_eq(t_seen.io, IO_EPOLL);
    t_accepts("WEFT_IO", "uring");
    cr_assert_eq(t_seen.io, IO_URING);
    t_accepts("WEFT_RING_ENTRIES", "64");
    cr_assert_eq(t_seen.ring_entries, 64);
    t_accepts("WEFT_BLOCKING_THREADS", "4");
    cr_assert_eq(t_seen.blocking_threads, 4);
    t_accepts("WEFT_BLOCKING_KEEPALIVE_MS", "250");
    cr_assert_eq(t_seen.blocking_keepalive_ms, 250);
    t_accepts("WEFT_STALL_MS", "0");
    cr_assert_eq(t_seen.stall_ms, 0);
    t_accepts("WEFT_STALL_MS", "60000");
    cr_assert_eq(t_seen.stall_ms, 60000);
}

/* ---- the config struct --------------------------------------------------- */

Test(config, config_fields_override_environment, .timeout = 10)
{
    struct t_outcome o;
    weft_config_t cfg;
    int max;

    cr_assert_eq(setenv("WEFT_WORKERS", "1", 1), 0);
    cr_assert_eq(setenv("WEFT_STACK_SIZE", "64K", 1), 0);
    cr_assert_eq(setenv("WEFT_IO", "uring", 1), 0);
    cr_assert_eq(setenv("WEFT_PIN", "1", 1), 0);
    weft_config_init(&cfg);
    cfg.workers = 2;
    cfg.stack_size = 128 * KIB;
    cfg.io = "epoll";
    cfg.pin = WEFT_FLAG_OFF;
    t_run_capturing(&cfg, record_config, &o);
    cr_assert_eq(o.ret, 0, "%s", o.err);
    cr_assert_eq(t_seen.workers, 2);
    cr_assert_eq(t_seen.stack_size, 128 * KIB);
    cr_assert_eq(t_seen.io, IO_EPOLL);
    cr_assert_not(t_seen.pin);
    max = weft_run_with(&cfg, spread_tasks, NULL);
    cr_assert(max >= 0 && max <= 1, "worker id %d", max);
    /* Unset fields fall back to the variables. */
    weft_config_init(&cfg);
    t_run_capturing(&cfg, record_config, &o);
    cr_assert_eq(o.ret, 0, "%s", o.err);
    cr_assert_eq(t_seen.workers, 1);
    cr_assert_eq(t_seen.stack_size, 64 * KIB);
    cr_assert_eq(t_seen.io, IO_URING);
    cr_assert(t_seen.pin);
}

/* Runs with cfg and checks the refusal names field and value. */
static void t_rejects_field(const weft_config_t *cfg, const char *field,
                            const char *value)
{
    struct t_outcome o;

    t_run_capturing(cfg, mark_ran, &o);
    cr_assert_eq(o.ret, -EINVAL, "%s: weft_run_with returned %d", field,
                 o.ret);
    cr_assert_not(o.ran);
    cr_assert(strstr(o.err, field), "stderr does not name %s: %s", field,
              o.err);
    cr_assert(strstr(o.err, value), "stderr lacks %s's value %s: %s", field,
              value, o.err);
}

Test(config, bad_config_fields_rejected_naming_field_and_value,
     .timeout = 10)
{
    weft_config_t cfg;

    weft_config_init(&cfg);
    cfg.stack_size = 100;
    t_rejects_field(&cfg, "stack_size", "100");
    weft_config_init(&cfg);
    cfg.workers = 99999;
    t_rejects_field(&cfg, "workers", "99999");
    weft_config_init(&cfg);
    cfg.ring_entries = 3;
    t_rejects_field(&cfg, "ring_entries", "3");
    weft_config_init(&cfg);
    cfg.io = "kqueue";
    t_rejects_field(&cfg, "io", "kqueue");
    weft_config_init(&cfg);
    cfg.pin = (enum weft_flag)7;
    t_rejects_field(&cfg, "pin", "7");
    weft_config_init(&cfg);
    cfg.debug = (enum weft_flag)9;
    t_rejects_field(&cfg, "debug", "9");
    weft_config_init(&cfg);
    cfg.sqpoll = (enum weft_flag)5;
    t_rejects_field(&cfg, "sqpoll", "5");
    weft_config_init(&cfg);
    cfg.pin = (enum weft_flag)-1;
    t_rejects_field(&cfg, "pin", "-1");
}

/* ---- pinning ------------------------------------------------------------- */

#include <sched.h>
#include <sys/syscall.h>

#define PIN_MAX_WORKERS 8

struct pinned {
    unsigned workers;
    int allowed[PIN_MAX_WORKERS]; /* the first allowed CPUs, in order */
    atomic_uint started;
    atomic_int seen[PIN_MAX_WORKERS];
    atomic_int cpu[PIN_MAX_WORKERS]; /* worker i's only CPU; -1: not one */
};

/* Fills p->allowed from the process's affinity mask; returns the workers
 * to run (each gets a CPU of its own). */
static unsigned t_allowed_cpus(struct pinned *p)
{
    cpu_set_t set;
    unsigned n = 0;

    cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    for (int cpu = 0; cpu < CPU_SETSIZE && n < PIN_MAX_WORKERS; cpu++)
        if (CPU_ISSET(cpu, &set))
            p->allowed[n++] = cpu;
    return n;
}

/* Records the affinity of its own thread, then holds its worker (never
 * suspending) until every holder has started: so the holders run on as
 * many distinct workers. */
static int hold_and_record(void *arg)
{
    struct pinned *p = arg;
    int id = weft_worker_id(), only = -1;
    cpu_set_t set;

    cr_assert(id >= 0 && id < (int)p->workers, "worker %d", id);
    cr_assert_eq(sched_getaffinity((pid_t)syscall(SYS_gettid), sizeof(set),
                                   &set), 0);
    if (CPU_COUNT(&set) == 1)
        for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
            if (CPU_ISSET(cpu, &set))
                only = cpu;
    atomic_store(&p->cpu[id], only);
    atomic_fetch_add(&p->seen[id], 1);
    atomic_fetch_add(&p->started, 1);
    while (atomic_load(&p->started) < p->workers)
        sched_yield();
    return 0;
}

static int pinned_main(void *arg)
{
    struct pinned *p = arg;
    weft_task_t *t[PIN_MAX_WORKERS];

    for (unsigned i = 0; i < p->workers; i++)
        cr_assert_eq(weft_spawn(&t[i], hold_and_record, p), 0);
    for (unsigned i = 0; i < p->workers; i++)
        cr_assert_eq(weft_join(t[i]), 0);
    for (unsigned i = 0; i < p->workers; i++) {
        cr_assert_eq(atomic_load(&p->seen[i]), 1, "worker %u", i);
        cr_assert_eq(atomic_load(&p->cpu[i]), p->allowed[i],
                     "worker %u runs on %d, not on allowed CPU %d", i,
                     atomic_load(&p->cpu[i]), p->allowed[i]);
    }
    return 0;
}

static void t_run_pinned(enum weft_flag pin)
{
    static struct pinned p;
    weft_config_t cfg;

    weft_config_init(&cfg);
    cfg.workers = t_allowed_cpus(&p);
    cfg.pin = pin;
    p.workers = cfg.workers;
    t_run_with(&cfg, pinned_main, &p);
}

Test(config, pin_field_pins_worker_i_to_the_ith_allowed_cpu, .timeout = 30)
{
    t_run_pinned(WEFT_FLAG_ON);
}

Test(config, pin_variable_pins_worker_i_to_the_ith_allowed_cpu,
     .timeout = 30)
{
    cr_assert_eq(setenv("WEFT_PIN", "1", 1), 0);
    t_run_pinned(WEFT_FLAG_UNSET);
}
