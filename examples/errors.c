/*
 * errors: a task's failure surfaces where the task is awaited. In asyncio
 * an exception raised in a task is raised again by `await task`; in weft a
 * task returns a negative errno and weft_join hands it to the joiner.
 * Run with WEFT_DEBUG=1 to also see the report for the failing task that
 * nobody joins (asyncio's "Task exception was never retrieved").
 *
 *   ./errors
 *   WEFT_DEBUG=1 ./errors
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <weft.h>

/* Pretends to fetch a resource that is not there. */
static int fetch_missing(void *arg)
{
    int ret = weft_sleep_ms(50);

    (void)arg;
    return ret < 0 ? ret : -ENOENT;
}

static int fetch_ok(void *arg)
{
    (void)arg;
    return weft_sleep_ms(10) < 0 ? -ECANCELED : 200;
}

static int main_task(void *arg)
{
    weft_spawn_opts_t opts = { .name = "fetch-missing" };
    weft_task_t *good, *bad;
    int status;

    (void)arg;
    if (weft_spawn(&good, fetch_ok, NULL) < 0 ||
        weft_spawn_ex(&bad, fetch_missing, NULL, &opts) < 0)
        return -ENOMEM;
    printf("fetch_ok returned %d\n", weft_join(good));
    status = weft_join(bad);
    if (status < 0)
        printf("task '%s' failed: %s (caught at join)\n", opts.name,
               strerror(-status));
    /* A failure nobody awaits: reported on stderr in debug mode. */
    opts.name = "forgotten";
    if (weft_spawn_ex(NULL, fetch_missing, NULL, &opts) == 0)
        weft_sleep_ms(100);
    return 0;
}

int main(void)
{
    return weft_run(main_task, NULL) < 0 ? 1 : 0;
}
