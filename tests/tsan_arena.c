/*
 * Linked into test executables in ThreadSanitizer builds only.
 *
 * Criterion maps its inheritable arena at a random fixed address drawn with
 * rand_r() from [0x2000_0000_0000, 0x6000_0000_0000). Under TSan almost all
 * of that range is shadow or reserved, so every draw is taken and Criterion
 * aborts ("Could not initialize inheritable arena"). This rand_r steers the
 * draw into 0x5600_0000_0000 and up, the application range where TSan keeps
 * position-independent executables, trying the next 16 MiB slot on every
 * call; Criterion still checks each slot with mincore() before mapping it.
 */
#include <stdlib.h>

__attribute__((visibility("default"))) int rand_r(unsigned int *seed)
{
    /* (0x5600_0000_0000 - 0x2000_0000_0000) / 16 MiB */
    static unsigned next = 0x360000;

    (void)seed;
    return (int)next++;
}
