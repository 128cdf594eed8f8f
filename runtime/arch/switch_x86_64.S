/*
 * Fiber context switch for x86-64 System V.
 *
 * void weft__fiber_switch(void **save_sp, void *load_sp);
 *   Pushes the callee-saved registers and the FP control words (MXCSR,
 *   x87 control word) on the current stack, stores the stack pointer in
 *   *save_sp, switches to load_sp and pops the same frame from there.
 *   Caller-saved registers are the compiler's business: it assumes a call
 *   clobbers them. A control word is loaded only if its control bits
 *   differ from those in force: ldmxcsr and fldcw stall the pipeline, and
 *   the fibers of a program almost always share one rounding mode, so the
 *   usual switch only stores and compares them. MXCSR's status flags are
 *   caller-saved (the ABI's word): they carry over, as across any call.
 *
 * weft__fiber_start: the first "return address" of a new fiber. fiber.c
 *   lays out a frame whose r12 slot holds the entry function and r13 slot
 *   its argument; the entry function never returns.
 */
    .text
    .globl weft__fiber_switch
    .hidden weft__fiber_switch
    .type weft__fiber_switch, @function
weft__fiber_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movl (%rsp), %eax
    movzwl 4(%rsp), %ecx
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    xorl (%rsp), %eax
    testl $0xffc0, %eax /* MXCSR's control bits; 0-5 are status flags */
    jnz 1f
2:  cmpw 4(%rsp), %cx
    jne 3f
4:  addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
1:  ldmxcsr (%rsp)
    jmp 2b
3:  fldcw 4(%rsp)
    jmp 4b
    .cfi_endproc
    .size weft__fiber_switch, .-weft__fiber_switch

    .globl weft__fiber_start
    .hidden weft__fiber_start
    .type weft__fiber_start, @function
weft__fiber_start:
    .cfi_startproc
    .cfi_undefined rip
    xorl %ebp, %ebp
    movq %r13, %rdi
    andq $-16, %rsp
    callq *%r12
    ud2
    .cfi_endproc
    .size weft__fiber_start, .-weft__fiber_start

    .section .note.GNU-stack,"",@progbits
