/*
 * count: three count() tasks run together, as in the asyncio seed. Each
 * prints "One", sleeps a second, prints "Two"; all three sleep at once, so
 * the whole program takes about one second.
 *
 *   ./count
 */
#include <stdio.h>

#include <weft.h>

static int count(void *arg)
{
    int ret;

    (void)arg;
    printf("One\n");
    ret = weft_sleep_ms(1000);
    if (ret < 0)
        return ret;
    printf("Two\n");
    return 0;
}

static int main_task(void *arg)
{
    weft_task_t *t[3];
    int64_t start = weft_now_ns();
    int ret = 0, n;

    (void)arg;
    for (n = 0; n < 3; n++)
        if ((ret = weft_spawn(&t[n], count, NULL)) < 0)
            break;
    for (int i = 0; i < n; i++) {
        int status = weft_join(t[i]);

        if (status < 0 && ret == 0)
            ret = status;
    }
    printf("count executed in %.2f seconds.\n",
           (weft_now_ns() - start) / 1e9);
    return ret;
}

int main(void)
{
    return weft_run(main_task, NULL) < 0 ? 1 : 0;
}
