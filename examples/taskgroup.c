/*
 * taskgroup: structured concurrency with a weft_group_t (asyncio's
 * TaskGroup). Six children start; child 3 fails after a short while, which
 * cancels its siblings; leaving the group reports the first failure, and
 * every child's status is there to inspect. Each child prints what it saw.
 *
 *   ./taskgroup
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <weft.h>

enum { CHILDREN = 6, FAILING = 3 };

static int child(void *arg)
{
    int id = (int)(intptr_t)arg;
    int ret;

    if (id == FAILING) {
        weft_sleep_ms(50);
        printf("child %d: giving up with EIO\n", id);
        return -EIO;
    }
    /* Sleeps far longer than the run: only a cancellation ends it. */
    ret = weft_sleep_ms(10000);
    printf("child %d: sleep returned %s\n", id,
           ret == 0 ? "0" : strerror(-ret));
    return ret < 0 ? ret : id;
}

static int run(void *arg)
{
    int status[CHILDREN];
    weft_group_t g;
    int ret;

    (void)arg;
    weft_group_init(&g);
    for (int i = 0; i < CHILDREN; i++) {
        ret = weft_group_spawn(&g, child, (void *)(intptr_t)i, &status[i]);
        if (ret < 0) {
            weft_group_cancel(&g);
            break;
        }
    }
    ret = weft_group_wait(&g);
    printf("group: %s\n", ret == 0 ? "all succeeded" : strerror(-ret));
    for (int i = 0; i < CHILDREN; i++)
        printf("  child %d status %d%s%s\n", i, status[i],
               status[i] < 0 ? " " : "",
               status[i] < 0 ? strerror(-status[i]) : "");
    weft_group_destroy(&g);
    return 0;
}

int main(void)
{
    return weft_run(run, NULL) < 0 ? 1 : 0;
}
