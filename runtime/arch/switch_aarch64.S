/*
 * Fiber context switch for AArch64 (AAPCS64).
 *
 * void weft__fiber_switch(void **save_sp, void *load_sp);
 *   Saves x19-x30, d8-d15 and FPCR in a 176-byte frame on the current
 *   stack, stores sp in *save_sp, switches to load_sp and restores the same
 *   frame from there. Frame layout (offsets from sp):
 *     0 x19 x20 | 16 x21 x22 | 32 x23 x24 | 48 x25 x26 | 64 x27 x28
 *     80 x29 x30 | 96 d8 d9 | 112 d10 d11 | 128 d12 d13 | 144 d14 d15
 *     160 fpcr
 *
 * weft__fiber_start: where a new fiber's first switch lands (its x30 slot).
 *   fiber.c puts the entry function in the x19 slot and its argument in the
 *   x20 slot; the entry function never returns.
 */
    .text
    .globl weft__fiber_switch
    .hidden weft__fiber_switch
    .type weft__fiber_switch, %function
weft__fiber_switch:
    sub sp, sp, #176
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mrs x9, fpcr
    str x9, [sp, #160]
    mov x10, sp
    str x10, [x0]
    mov sp, x1
    ldr x10, [sp, #160]
    cmp x9, x10
    b.eq 1f
    msr fpcr, x10
1:  ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    add sp, sp, #176
    ret
    .size weft__fiber_switch, .-weft__fiber_switch

    .globl weft__fiber_start
    .hidden weft__fiber_start
    .type weft__fiber_start, %function
weft__fiber_start:
    mov x29, #0
    mov x30, #0
    mov x0, x20
    blr x19
    brk #0
    .size weft__fiber_start, .-weft__fiber_start

    .section .note.GNU-stack,"",%progbits
