/*
 * blocking: CPU-bound work belongs on the blocking pool, not in a task.
 *
 * One task hashes a 200 MB buffer (FNV-1a) while another prints a heartbeat
 * every 100 ms with how late it woke up. With weft_blocking the hash runs on
 * a pool thread and the heartbeat stays on time; with --inline the hash runs
 * inside the task and, on a single worker, the heartbeat stalls until the
 * hash is done (asyncio's to_thread versus calling the function directly).
 *
 *   WEFT_WORKERS=1 ./blocking
 *   WEFT_WORKERS=1 ./blocking --inline
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

#define SIZE (200u << 20)

struct job {
    unsigned char *buf;
    uint64_t hash;
    atomic_bool done;
};

static int fnv1a(void *arg)
{
    struct job *j = arg;
    uint64_t h = 0xcbf29ce484222325u;

    for (size_t i = 0; i < SIZE; i++)
        h = (h ^ j->buf[i]) * 0x100000001b3u;
    j->hash = h;
    return 0;
}

static int heartbeat(void *arg)
{
    struct job *j = arg;
    int64_t start = weft_now_ns(), next = start;

    while (!atomic_load(&j->done)) {
        next += 100 * 1000000;
        if (weft_sleep_until(next) < 0)
            return 0;
        printf("  heartbeat at %5.0f ms, %4.1f ms late\n",
               (weft_now_ns() - start) / 1e6, (weft_now_ns() - next) / 1e6);
    }
    return 0;
}

static int main_task(void *arg)
{
    bool on_pool = !arg;
    struct job j = { .buf = malloc(SIZE) };
    int64_t start;
    weft_task_t *beat;
    int ret;

    if (!j.buf)
        return -1;
    memset(j.buf, 0x5a, SIZE);
    ret = weft_spawn(&beat, heartbeat, &j);
    if (ret < 0)
        goto out;
    weft_sleep_ms(1); /* let the heartbeat start */
    printf("hashing %u MB %s\n", SIZE >> 20,
           on_pool ? "on the blocking pool" : "inline, in the task");
    start = weft_now_ns();
    ret = on_pool ? weft_blocking(fnv1a, &j) : fnv1a(&j);
    atomic_store(&j.done, true);
    printf("hash %016llx in %.0f ms\n", (unsigned long long)j.hash,
           (weft_now_ns() - start) / 1e6);
    weft_join(beat);
out:
    free(j.buf);
    return ret;
}

int main(int argc, char **argv)
{
    bool inline_hash = argc > 1 && !strcmp(argv[1], "--inline");

    return weft_run(main_task, inline_hash ? "inline" : NULL) < 0;
}
