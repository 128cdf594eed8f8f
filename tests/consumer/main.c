/*
 * A program built against an installed weft: the consumer test compiles it
 * once through find_package(weft) and once through pkg-config. It runs a
 * task that spawns two tasks and joins them, then prints "ok".
 */
#include <stdio.h>

#include <weft.h>

static int child(void *arg)
{
    return (int)(long)arg;
}

static int main_task(void *arg)
{
    weft_task_t *a, *b;

    (void)arg;
    if (weft_spawn(&a, child, (void *)1L) < 0)
        return -1;
    if (weft_spawn(&b, child, (void *)2L) < 0)
        return -1;
    return weft_join(a) + weft_join(b) == 3 ? 0 : -1;
}

int main(void)
{
    if (weft_run(main_task, NULL) != 0)
        return 1;
    printf("ok\n");
    return 0;
}
