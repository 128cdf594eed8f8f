/*
 * hello: the first asyncio example in C. Two tasks each sleep one second;
 * they run concurrently, so the program takes about one second, not two.
 *
 *   ./hello
 */
#include <stdio.h>

#include <weft.h>

struct greeting {
    int64_t delay_ms;
    const char *what;
};

static int say_after(void *arg)
{
    struct greeting *g = arg;
    int ret = weft_sleep_ms(g->delay_ms);

    if (ret < 0)
        return ret;
    printf("%s\n", g->what);
    return 0;
}

static int main_task(void *arg)
{
    struct greeting hello = { 1000, "hello" }, world = { 1000, "world" };
    weft_task_t *t1, *t2;
    int64_t start = weft_now_ns();
    int ret;

    (void)arg;
    ret = weft_spawn(&t1, say_after, &hello);
    if (ret < 0)
        return ret;
    ret = weft_spawn(&t2, say_after, &world);
    if (ret < 0) {
        weft_cancel(t1);
        weft_join(t1);
        return ret;
    }
    printf("started\n");
    ret = weft_join(t1);
    if (weft_join(t2) < 0 && ret == 0)
        ret = -1;
    printf("finished in %.2f s\n", (weft_now_ns() - start) / 1e9);
    return ret;
}

int main(void)
{
    int ret = weft_run(main_task, NULL);

    return ret < 0 ? 1 : 0;
}
