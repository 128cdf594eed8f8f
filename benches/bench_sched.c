/*
 * bench_sched: the scheduler workloads S1-S7 of benches/README.md.
 *
 *   WEFT_WORKERS=2 ./bench_sched S1
 *   WEFT_WORKERS=2 ./bench_sched S7c-k10 10
 *
 * Runs one workload once, inside the runtime (the driver is a task, so
 * spawns come from a worker), and prints one line (S7a and S7c take a
 * number of rounds, run one after the other in the same runtime, the last
 * one timed: with the process's CPU time, from time(1), that compares
 * what a worker count costs once the runtime is warm):
 *   RESULT workload=S1 workers=W ops=N secs=S rate=R rss_base_kb=B
 *          rss_parked_kb=P bytes_per_task=X
 * The timed interval starts right before the first spawn and ends when the
 * driver sees the completion event, set by the task that brings the shared
 * counter to its target. Start-up and teardown are not timed.
 *
 * S5 goes on after its burst: the driver sleeps IDLE_MS while the runtime
 * is otherwise idle and reads the RSS (rss_idle_kb: what an idle runtime
 * gives back), then runs the same burst again (secs2, its peak rss_peak2_kb,
 * then rss_idle2_kb after the same wait): a second burst should cost what
 * the first did and leave the same RSS behind. rss_parked_kb is S5's peak
 * (VmHWM), rss_base_kb the RSS before the first spawn.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

/* How long S5's driver waits after a burst before reading the RSS: the
 * runtime hands idle memory back about a second after its workers go
 * idle. */
#define IDLE_MS 1500

struct bench {
    atomic_long counter;
    long target;
    weft_event_t done;
    weft_event_t release; /* S6: parked tasks wait on it */
    weft_event_t started; /* S6: set when every task has started */
    atomic_long nstarted;
};

static struct bench B;

static void count_one(void)
{
    if (atomic_fetch_add(&B.counter, 1) + 1 == B.target)
        weft_event_set(&B.done);
}

/* VmRSS or VmHWM of this process, in KiB. */
static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    size_t n = strlen(field);

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, field, n) && line[n] == ':')
            kb = atol(line + n + 1);
    fclose(f);
    return kb;
}

/* Starts a new VmHWM from the current RSS (Linux >= 4.0); false if the
 * kernel refused. */
static bool reset_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    bool ok;

    if (!f)
        return false;
    ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

/* ---- the workloads: each returns the number of operations -------------- */

static int incr(void *arg)
{
    (void)arg;
    count_one();
    return 0;
}

static long s1_spawn_many(void)
{
    B.target = 100000;
    for (long i = 0; i < B.target; i++)
        if (weft_spawn(NULL, incr, NULL) < 0)
            abort();
    return B.target;
}

static int yielder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++)
        weft_yield();
    count_one();
    return 0;
}

static long s2_yield_many(void)
{
    B.target = 200;
    for (long i = 0; i < B.target; i++)
        if (weft_spawn(NULL, yielder, NULL) < 0)
            abort();
    return 200 * 1000;
}

struct pair {
    weft_queue_t ping, pong;
};

static int ponger(void *arg)
{
    struct pair *p = arg;
    void *v;

    while (weft_queue_get(&p->ping, &v, WEFT_NO_DEADLINE) == 0)
        weft_queue_put(&p->pong, v, WEFT_NO_DEADLINE);
    return 0;
}

static int pinger(void *arg)
{
    struct pair *p = arg;
    void *v;

    for (intptr_t i = 0; i < 1000; i++) {
        weft_queue_put(&p->ping, (void *)i, WEFT_NO_DEADLINE);
        weft_queue_get(&p->pong, &v, WEFT_NO_DEADLINE);
        if ((intptr_t)v != i)
            abort();
    }
    weft_queue_close(&p->ping);
    count_one();
    return 0;
}

static struct pair *pairs;

static long s3_ping_pong(void)
{
    B.target = 1000;
    for (long i = 0; i < B.target; i++) {
        if (weft_spawn(NULL, ponger, &pairs[i]) < 0 ||
            weft_spawn(NULL, pinger, &pairs[i]) < 0)
            abort();
    }
    return 1000 * 1000;
}

static int chain(void *arg)
{
    intptr_t n = (intptr_t)arg;

    if (n == 0)
        count_one();
    else if (weft_spawn(NULL, chain, (void *)(n - 1)) < 0)
        abort();
    return 0;
}

static long s4_chained_spawn(void)
{
    B.target = 1;
    if (weft_spawn(NULL, chain, (void *)(intptr_t)100000) < 0)
        abort();
    return 100000;
}

static int sleeper(void *arg)
{
    (void)arg;
    weft_sleep_ms(100);
    count_one();
    return 0;
}

static long s5_timers(void)
{
    B.target = 100000;
    for (long i = 0; i < B.target; i++)
        if (weft_spawn(NULL, sleeper, NULL) < 0)
            abort();
    return B.target;
}

static int parker(void *arg)
{
    (void)arg;
    if (atomic_fetch_add(&B.nstarted, 1) + 1 == B.target)
        weft_event_set(&B.started);
    weft_event_wait(&B.release, WEFT_NO_DEADLINE);
    count_one();
    return 0;
}

static long rss_parked_kb;

static long s6_parked_memory(void)
{
    B.target = 100000;
    for (long i = 0; i < B.target; i++)
        if (weft_spawn(NULL, parker, NULL) < 0)
            abort();
    weft_event_wait(&B.started, WEFT_NO_DEADLINE);
    weft_sleep_ms(50);
    rss_parked_kb = status_kb("VmRSS");
    weft_event_set(&B.release);
    return B.target;
}

/* ---- S7 fork-join -------------------------------------------------------- */

#define FIB_N 32
#define FIB_CUTOFF 5
#define SORT_N 10000000
#define SORT_CUTOFF 10000

struct fib {
    int n;
    long value;
};

static long fib_serial(int n)
{
    return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

static int fib_task(void *arg)
{
    struct fib *f = arg, a = { f->n - 1, 0 }, b = { f->n - 2, 0 };
    weft_task_t *ha, *hb;

    if (f->n <= FIB_CUTOFF) {
        f->value = fib_serial(f->n);
        return 0;
    }
    if (weft_spawn(&ha, fib_task, &a) < 0 || weft_spawn(&hb, fib_task, &b) < 0)
        abort();
    if (weft_join(ha) != 0 || weft_join(hb) != 0)
        abort();
    f->value = a.value + b.value;
    return 0;
}

/* Tasks in fib_task's tree for n. */
static long fib_tasks(int n)
{
    return n <= FIB_CUTOFF ? 1 : 1 + fib_tasks(n - 1) + fib_tasks(n - 2);
}

static long s7_tasks; /* tasks of the last S7 run */
static long fib_ntasks; /* fib_tasks(FIB_N), counted before the clock runs */
static int64_t s7_end; /* when the root was joined: checks are not timed */

static void s7_check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "bench_sched: %s: wrong result\n", what);
        exit(1);
    }
}

/* Joins the root task h and signals the driver. */
static void s7_finish(weft_task_t *h)
{
    if (weft_join(h) != 0)
        abort();
    s7_end = weft_now_ns();
    weft_event_set(&B.done);
}

static long s7a_fib(void)
{
    struct fib f = { FIB_N, 0 };
    weft_task_t *h;

    s7_tasks = fib_ntasks;
    if (weft_spawn(&h, fib_task, &f) < 0)
        abort();
    s7_finish(h);
    s7_check(f.value == fib_serial(FIB_N), "S7a fib");
    return s7_tasks;
}

struct sort {
    int *a;
    long n;
};

static atomic_long sort_ntasks;

static void insertion_sort(int *a, long n)
{
    for (long i = 1; i < n; i++) {
        int v = a[i];
        long j = i;

        for (; j > 0 && a[j - 1] > v; j--)
            a[j] = a[j - 1];
        a[j] = v;
    }
}

static int cmp_int(const void *x, const void *y)
{
    int a = *(const int *)x, b = *(const int *)y;

    return (a > b) - (a < b);
}

static int sort_task(void *arg)
{
    struct sort *s = arg, l, r;
    weft_task_t *hl, *hr;
    int *a = s->a, pivot, tmp;
    long i, j;

    atomic_fetch_add_explicit(&sort_ntasks, 1, memory_order_relaxed);
    if (s->n <= SORT_CUTOFF) {
        if (s->n < 32)
            insertion_sort(a, s->n);
        else
            qsort(a, s->n, sizeof(int), cmp_int);
        return 0;
    }
    /* Hoare partition around the median of three. */
    {
        int x = a[0], y = a[s->n / 2], z = a[s->n - 1];

        pivot = x < y ? (y < z ? y : (x < z ? z : x)) :
                        (x < z ? x : (y < z ? z : y));
    }
    for (i = -1, j = s->n;;) {
        do
            i++;
        while (a[i] < pivot);
        do
            j--;
        while (a[j] > pivot);
        if (i >= j)
            break;
        tmp = a[i];
        a[i] = a[j];
        a[j] = tmp;
    }
    l = (struct sort){ a, j + 1 };
    r = (struct sort){ a + j + 1, s->n - j - 1 };
    if (weft_spawn(&hl, sort_task, &l) < 0 ||
        weft_spawn(&hr, sort_task, &r) < 0)
        abort();
    if (weft_join(hl) != 0 || weft_join(hr) != 0)
        abort();
    return 0;
}

static int *sort_data;
static uint64_t sort_sum; /* of the unsorted elements */

static long s7b_sort(void)
{
    struct sort s = { sort_data, SORT_N };
    weft_task_t *h;
    uint64_t sum1 = 0;

    atomic_store(&sort_ntasks, 0);
    if (weft_spawn(&h, sort_task, &s) < 0)
        abort();
    s7_finish(h);
    for (long i = 0; i < SORT_N; i++) {
        sum1 += (uint32_t)sort_data[i];
        s7_check(i == 0 || sort_data[i - 1] <= sort_data[i], "S7b sort");
    }
    s7_check(sort_sum == sum1, "S7b sort (elements lost)");
    s7_tasks = atomic_load(&sort_ntasks);
    return SORT_N;
}

/* A node of S7c's tree: the leaves numbered first..first + k^depth - 1. */
struct node {
    long first;
    long sum;
    int depth;
};

static int tree_k;

static int tree_task(void *arg)
{
    struct node *nd = arg, kids[16];
    weft_task_t *h[16];
    long span = 1;

    if (nd->depth == 0) {
        nd->sum = nd->first;
        return 0;
    }
    for (int d = 1; d < nd->depth; d++)
        span *= tree_k;
    for (int i = 0; i < tree_k; i++) {
        kids[i] = (struct node){ nd->first + i * span, 0, nd->depth - 1 };
        if (weft_spawn(&h[i], tree_task, &kids[i]) < 0)
            abort();
    }
    nd->sum = 0;
    for (int i = 0; i < tree_k; i++) {
        if (weft_join(h[i]) != 0)
            abort();
        nd->sum += kids[i].sum;
    }
    return 0;
}

static long s7c_tree(int k, int depth)
{
    struct node root = { 0, 0, depth };
    weft_task_t *h;
    long leaves = 1, tasks = 1;

    tree_k = k;
    for (int d = 0; d < depth; d++) {
        leaves *= k;
        tasks += leaves;
    }
    s7_tasks = tasks;
    if (weft_spawn(&h, tree_task, &root) < 0)
        abort();
    s7_finish(h);
    s7_check(root.sum == leaves * (leaves - 1) / 2, "S7c tree");
    return tasks;
}

static long s7c_k2(void) { return s7c_tree(2, 19); }     /* 1,048,575 */
static long s7c_k10(void) { return s7c_tree(10, 6); }    /* 1,111,111 */
static long s7c_k16(void) { return s7c_tree(16, 5); }    /* 1,118,481 */
static long s7c_k10_11m(void) { return s7c_tree(10, 7); } /* 11,111,111 */

/* ---- driver -------------------------------------------------------------- */

struct workload {
    const char *id;
    long (*run)(void);
};

static const struct workload workloads[] = {
    { "S1", s1_spawn_many },  { "S2", s2_yield_many },
    { "S3", s3_ping_pong },   { "S4", s4_chained_spawn },
    { "S5", s5_timers },      { "S6", s6_parked_memory },
    { "S7a", s7a_fib },       { "S7b", s7b_sort },
    { "S7c-k2", s7c_k2 },     { "S7c-k10", s7c_k10 },
    { "S7c-k16", s7c_k16 },   { "S7c-k10-11M", s7c_k10_11m },
};

static bool is_s7(const struct workload *w)
{
    return !strncmp(w->id, "S7", 2);
}

/* Rounds of the workload in one run (S7a and S7c; see the top). S7b's
 * data is sorted after its first round. */
static int rounds = 1;

static bool repeatable(const struct workload *w)
{
    return is_s7(w) && w->run != s7b_sort && w->run != s7c_k10_11m;
}

static int setup_sort(void)
{
    uint32_t x = 2463534242u;

    sort_data = malloc(SORT_N * sizeof(int));
    if (!sort_data)
        return -1;
    for (long i = 0; i < SORT_N; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        sort_data[i] = (int)(x >> 1);
        sort_sum += (uint32_t)sort_data[i];
    }
    return 0;
}

static int setup_pairs(void)
{
    pairs = calloc(1000, sizeof(*pairs));
    if (!pairs)
        return -1;
    for (int i = 0; i < 1000; i++)
        if (weft_queue_init(&pairs[i].ping, 1, 0) < 0 ||
            weft_queue_init(&pairs[i].pong, 1, 0) < 0)
            return -1;
    return 0;
}

/* Runs w and waits for its completion event; returns the seconds taken
 * and sets *ops. */
static double timed_run(const struct workload *w, long *ops)
{
    int64_t t0, t1;

    atomic_store(&B.counter, 0);
    if (weft_event_clear(&B.done) < 0)
        abort();
    t0 = weft_now_ns();
    *ops = w->run();
    weft_event_wait(&B.done, WEFT_NO_DEADLINE);
    t1 = s7_end ? s7_end : weft_now_ns();
    return (t1 - t0) / 1e9;
}

/* S5's second act: the RSS once idle, then a second burst (see the top of
 * the file). */
static void s5_after(const struct workload *w)
{
    long idle_kb, peak2_kb = 0, idle2_kb, ops;
    double secs2;
    bool peak_reset;

    weft_sleep_ms(IDLE_MS);
    idle_kb = status_kb("VmRSS");
    peak_reset = reset_peak();
    secs2 = timed_run(w, &ops);
    if (peak_reset)
        peak2_kb = status_kb("VmHWM");
    weft_sleep_ms(IDLE_MS);
    idle2_kb = status_kb("VmRSS");
    printf(" rss_idle_kb=%ld secs2=%.6f rss_peak2_kb=%ld rss_idle2_kb=%ld",
           idle_kb, secs2, peak2_kb, idle2_kb);
}

static int driver(void *arg)
{
    const struct workload *w = arg;
    long base_kb = status_kb("VmRSS"), ops, parked_kb = 0, per_task = 0;
    double secs;

    for (int r = 1; r < rounds; r++)
        timed_run(w, &ops);
    secs = timed_run(w, &ops);
    if (w->run == s6_parked_memory) {
        parked_kb = rss_parked_kb;
        per_task = (parked_kb - base_kb) * 1024 / B.target;
    } else if (w->run == s5_timers) {
        parked_kb = status_kb("VmHWM");
    }
    printf("RESULT workload=%s workers=%s ops=%ld secs=%.6f rate=%.0f "
           "rss_base_kb=%ld rss_parked_kb=%ld bytes_per_task=%ld",
           w->id, getenv("WEFT_WORKERS") ? getenv("WEFT_WORKERS") : "auto",
           ops, secs, ops / secs, base_kb, parked_kb, per_task);
    if (w->run == s5_timers)
        s5_after(w);
    if (is_s7(w))
        printf(" tasks=%ld rss_peak_kb=%ld", s7_tasks, status_kb("VmHWM"));
    printf("\n");
    return 0;
}

int main(int argc, char **argv)
{
    const struct workload *w = NULL;

    for (size_t i = 0; (argc == 2 || argc == 3) &&
                       i < sizeof(workloads) / sizeof(*w); i++)
        if (!strcmp(argv[1], workloads[i].id))
            w = &workloads[i];
    if (w && argc == 3) {
        char *end;
        long n = strtol(argv[2], &end, 10);

        if (!repeatable(w) || *end || n < 1 || n > 1000)
            w = NULL;
        else
            rounds = (int)n;
    }
    if (!w) {
        fprintf(stderr, "usage: bench_sched S1|S2|S3|S4|S5|S6|S7a|S7b|"
                        "S7c-k2|S7c-k10|S7c-k16|S7c-k10-11M\n"
                        "       bench_sched S7a|S7c-k2|S7c-k10|S7c-k16 "
                        "ROUNDS (1-1000)\n");
        return 2;
    }
    if (weft_event_init(&B.done) < 0 || weft_event_init(&B.release) < 0 ||
        weft_event_init(&B.started) < 0 ||
        (w->run == s3_ping_pong && setup_pairs() < 0) ||
        (w->run == s7b_sort && setup_sort() < 0)) {
        fprintf(stderr, "bench_sched: set-up failed\n");
        return 1;
    }
    if (w->run == s7a_fib)
        fib_ntasks = fib_tasks(FIB_N);
    return weft_run(driver, (void *)w) == 0 ? 0 : 1;
}
