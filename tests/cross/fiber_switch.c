/*
 * The fiber switch of another architecture, run under qemu-user: two
 * fibers switch 100,000 times while each keeps floating-point state live
 * across the switches, the fiber rounding upward and main to nearest (the
 * switch keeps each one's FP control word); the result must match the host
 * build exactly.
 * Built and run by tests/cross/run.sh (a plain program: Criterion is not
 * available for the target).
 */
#include <fenv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include "runtime/fiber.h"
void weft__panic(const char *fmt, ...) { va_list ap; va_start(ap, fmt); vfprintf(stderr, fmt, ap); va_end(ap); abort(); }
static struct fiber main_f, a_f;
static volatile long count, wrong_mode;
static void body(void *arg)
{
    double acc = *(double *)arg;
    weft__fiber_entered(&a_f);
    fesetround(FE_UPWARD);
    for (int i = 0; i < 100000; i++) {
        acc = acc * 1.0000001 + 1.0;   /* keeps FP callee-saved state live */
        count++;
        weft__fiber_switch_to(&a_f, &main_f);
        wrong_mode += fegetround() != FE_UPWARD;
    }
    *(double *)arg = acc;
    weft__fiber_exit_to(&a_f, &main_f);
}
int main(void)
{
    size_t sz = 64 * 1024;
    char *stk = mmap(0, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    double seed = 3.0, mine = 1.5;
    weft__fiber_init_thread(&main_f);
    weft__fiber_init(&a_f, stk, sz, body, &seed);
    for (int i = 0; i <= 100000; i++) {
        mine = mine * 0.9999999 + 0.5;
        weft__fiber_switch_to(&main_f, &a_f);
        wrong_mode += fegetround() != FE_TONEAREST;
    }
    printf("switches %ld, fiber acc %.17g, main acc %.17g, wrong modes %ld\n",
           count, seed, mine, wrong_mode);
    return count == 100000 && wrong_mode == 0 ? 0 : 1;
}
