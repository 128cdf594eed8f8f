/*
 * Configuration parsing. Env var WEFT_FOO maps to weft_config_t field .foo;
 * a set field wins over the variable. A bad value is an error naming it,
 * never a silent default.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The ranges shared by a variable and its field. */
#define MAX_BLOCKING_THREADS 65536u
#define MAX_KEEPALIVE_MS INT32_MAX

static int bad(const char *name, const char *value, const char *why)
{
    fprintf(stderr, "weft: invalid %s=\"%s\": %s\n", name, value, why);
    return -EINVAL;
}

/* Parses a decimal unsigned integer with an optional K/M/G suffix. */
static int parse_size(const char *s, bool suffixes, uint64_t *out)
{
    char *end;
    unsigned long long v;

    /* A digit first: strtoull would skip blanks and accept a sign after
     * them, and negate (" -0" would pass as 0). */
    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -EINVAL;
    if (suffixes && *end) {
        unsigned shift = 0;

        switch (*end) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        default: return -EINVAL;
        }
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (v > (UINT64_MAX >> shift))
            return -EINVAL;
        v <<= shift;
    }
    if (*end)
        return -EINVAL;
    *out = v;
    return 0;
}

static int env_uint(const char *name, uint64_t lo, uint64_t hi,
                    bool suffixes, uint64_t *out)
{
    const char *s = getenv(name);
    uint64_t v;

    if (!s)
        return 0;
    if (parse_size(s, suffixes, &v) < 0)
        return bad(name, s, "not a non-negative integer");
    if (v < lo || v > hi) {
        char why[96];

        snprintf(why, sizeof(why), "out of range [%llu, %llu]",
                 (unsigned long long)lo, (unsigned long long)hi);
        return bad(name, s, why);
    }
    *out = v;
    return 0;
}

static int env_bool(const char *name, bool *out)
{
    const char *s = getenv(name);

    if (!s)
        return 0;
    if (!strcmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes") ||
        !strcasecmp(s, "on")) {
        *out = true;
        return 0;
    }
    if (!strcmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no") ||
        !strcasecmp(s, "off") || !*s) {
        *out = false;
        return 0;
    }
    return bad(name, s, "expected 1/0, true/false, yes/no or on/off");
}

static int parse_io(const char *name, const char *s, enum weft__io_kind *out)
{
    if (!strcmp(s, "uring") || !strcmp(s, "io_uring"))
        *out = IO_URING;
    else if (!strcmp(s, "epoll"))
        *out = IO_EPOLL;
    else
        return bad(name, s, "expected \"uring\" or \"epoll\"");
    return 0;
}

/* The signals a dump may be asked on: ones a program can spare, whose
 * default action would end it or do nothing. SIGURG is the runtime's
 * (stall kicks); the synchronous ones mean a crash. */
static const struct {
    const char *name;
    int signo;
} dump_signals[] = {
    { "QUIT", SIGQUIT }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 },
    { "HUP", SIGHUP },   { "PWR", SIGPWR },   { "WINCH", SIGWINCH },
};

int weft__config_dump_signal(const char *s, int *signo)
{
    const char *name = strncmp(s, "SIG", 3) ? s : s + 3;

    *signo = 0;
    if (!*s || !strcmp(s, "0"))
        return 0;
    for (size_t i = 0; i < sizeof(dump_signals) / sizeof(dump_signals[0]);
         i++) {
        if (!strcmp(name, dump_signals[i].name)) {
            *signo = dump_signals[i].signo;
            return 0;
        }
    }
    if (!strcmp(name, "URG"))
        return bad("WEFT_DUMP_SIGNAL", s,
                   "SIGURG is the runtime's own (stall detection)");
    return bad("WEFT_DUMP_SIGNAL", s,
               "expected QUIT, USR1, USR2, HUP, PWR or WINCH");
}

unsigned weft__config_cpus(void)
{
    cpu_set_t set;
    int n;

    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return 1;
    n = CPU_COUNT(&set);
    return n > 0 ? (unsigned)n : 1;
}

static void set_defaults(struct weft__config *c)
{
    *c = (struct weft__config){
        .workers = weft__config_cpus(),
        .stack_size = 256 * 1024,
        .io = IO_AUTO,
        .ring_entries = 256,
        .blocking_threads = 64,
        .blocking_keepalive_ms = 10000,
        .stall_ms = 10,
    };
}

static int read_env(struct weft__config *c)
{
    uint64_t v;
    const char *io = getenv("WEFT_IO");
    const char *dump = getenv("WEFT_DUMP_SIGNAL");
    int ret = 0;

    v = c->workers;
    ret = ret ?: env_uint("WEFT_WORKERS", 1, WEFT__MAX_WORKERS, false, &v);
    c->workers = (unsigned)v;
    v = c->stack_size;
    ret = ret ?: env_uint("WEFT_STACK_SIZE", WEFT__MIN_STACK, WEFT__MAX_STACK,
                          true, &v);
    c->stack_size = (size_t)v;
    v = c->ring_entries;
    ret = ret ?: env_uint("WEFT_RING_ENTRIES", 1, 32768, false, &v);
    if (!ret && (v & (v - 1)))
        ret = bad("WEFT_RING_ENTRIES", getenv("WEFT_RING_ENTRIES"),
                  "not a power of two");
    c->ring_entries = (unsigned)v;
    v = c->blocking_threads;
    ret = ret ?: env_uint("WEFT_BLOCKING_THREADS", 1, MAX_BLOCKING_THREADS,
                          false, &v);
    c->blocking_threads = (unsigned)v;
    v = c->blocking_keepalive_ms;
    ret = ret ?: env_uint("WEFT_BLOCKING_KEEPALIVE_MS", 0, MAX_KEEPALIVE_MS,
                          false, &v);
    c->blocking_keepalive_ms = (unsigned)v;
    v = c->stall_ms;
    ret = ret ?: env_uint("WEFT_STALL_MS", 0, WEFT__MAX_STALL_MS, false, &v);
    c->stall_ms = (unsigned)v;
    ret = ret ?: env_bool("WEFT_PIN", &c->pin);
    ret = ret ?: env_bool("WEFT_DEBUG", &c->debug);
    ret = ret ?: env_bool("WEFT_SQPOLL", &c->sqpoll);
    if (!ret && io)
        ret = parse_io("WEFT_IO", io, &c->io);
    if (!ret && dump)
        ret = weft__config_dump_signal(dump, &c->dump_signal);
    return ret;
}

static bool flag_of(enum weft_flag f, bool dflt)
{
    return f == WEFT_FLAG_UNSET ? dflt : f == WEFT_FLAG_ON;
}

static int check_field(const char *name, uint64_t v, uint64_t lo, uint64_t hi)
{
    char val[32];

    if (v >= lo && v <= hi)
        return 0;
    snprintf(val, sizeof(val), "%llu", (unsigned long long)v);
    return bad(name, val, "out of range");
}

/* Like every other bad field, a bad flag is named with its value. Compared
 * unsigned so that a negative value is out of range too. */
static int check_flag(const char *name, enum weft_flag f)
{
    char val[16];

    if ((unsigned)f <= WEFT_FLAG_OFF)
        return 0;
    snprintf(val, sizeof(val), "%d", (int)f);
    return bad(name, val, "expected WEFT_FLAG_UNSET, WEFT_FLAG_ON or "
                          "WEFT_FLAG_OFF");
}

static int apply_user(struct weft__config *c, const weft_config_t *u)
{
    int ret = 0;

    if (u->workers)
        ret = ret ?: check_field("config.workers", u->workers, 1,
                                 WEFT__MAX_WORKERS);
    if (u->stack_size)
        ret = ret ?: check_field("config.stack_size", u->stack_size,
                                 WEFT__MIN_STACK, WEFT__MAX_STACK);
    if (u->ring_entries)
        ret = ret ?: check_field("config.ring_entries", u->ring_entries, 1,
                                 32768);
    if (!ret && u->ring_entries & (u->ring_entries - 1))
        ret = check_field("config.ring_entries", u->ring_entries, 1, 0);
    if (u->blocking_threads)
        ret = ret ?: check_field("config.blocking_threads",
                                 u->blocking_threads, 1, MAX_BLOCKING_THREADS);
    if (u->blocking_keepalive_ms)
        ret = ret ?: check_field("config.blocking_keepalive_ms",
                                 u->blocking_keepalive_ms, 0,
                                 MAX_KEEPALIVE_MS);
    if (u->stall_ms && u->stall_ms != WEFT_STALL_OFF)
        ret = ret ?: check_field("config.stall_ms", (uint64_t)u->stall_ms, 1,
                                 WEFT__MAX_STALL_MS);
    if (u->io)
        ret = ret ?: parse_io("config.io", u->io, &c->io);
    ret = ret ?: check_flag("config.pin", u->pin);
    ret = ret ?: check_flag("config.debug", u->debug);
    ret = ret ?: check_flag("config.sqpoll", u->sqpoll);
    if (ret)
        return ret;
    c->workers = u->workers ?: c->workers;
    c->stack_size = u->stack_size ?: c->stack_size;
    c->ring_entries = u->ring_entries ?: c->ring_entries;
    c->blocking_threads = u->blocking_threads ?: c->blocking_threads;
    c->blocking_keepalive_ms = u->blocking_keepalive_ms ?:
                               c->blocking_keepalive_ms;
    if (u->stall_ms)
        c->stall_ms = u->stall_ms == WEFT_STALL_OFF ? 0 : (unsigned)u->stall_ms;
    c->pin = flag_of(u->pin, c->pin);
    c->debug = flag_of(u->debug, c->debug);
    c->sqpoll = flag_of(u->sqpoll, c->sqpoll);
    return 0;
}

int weft__config_resolve(struct weft__config *out, const weft_config_t *user)
{
    int ret;

    set_defaults(out);
    ret = read_env(out);
    if (!ret && user)
        ret = apply_user(out, user);
    return ret;
}

void weft_config_init(weft_config_t *cfg)
{
    if (cfg)
        memset(cfg, 0, sizeof(*cfg));
}
