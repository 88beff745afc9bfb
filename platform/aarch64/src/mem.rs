//! `memcpy`, `memmove` and `memset` for the kernel, in general registers only.
//!
//! The kernel is soft-float, so the FP/SIMD registers belong to Linux code and system calls
//! do not save them (`syscall.rs`); its string routines must not touch them either. Rust's
//! `compiler_builtins` provides weak generic versions that move one word per loop (about 2 500
//! instructions per 4 KiB copy); these move 64 bytes per loop with `ldp`/`stp` of `x`
//! registers and post-indexed addressing (10 instructions per block, about 650 per 4 KiB), as
//! Linux's own arm64 kernel routines do. Being strong symbols, they
//! replace the weak ones at link time. Unaligned accesses are fine: the kernel maps RAM as
//! normal memory with alignment checks off (device memory is never copied with these).

core::arch::global_asm!(
    r#"
    .section .text.libos_mem, "ax"
    .balign 16

    /* memcpy(dst x0, src x1, n x2) -> dst. Forward, in 64-byte blocks (all loads of a block
     * before its stores), then 16, 8, 4, 2, 1 bytes. memmove uses it when forward is safe. */
    .global memcpy
memcpy:
    mov     x3, x0
    subs    x2, x2, #64             /* x2: bytes beyond the next block */
    b.lo    2f
1:  ldp     x4, x5, [x1], #64
    ldp     x6, x7, [x1, #-48]
    ldp     x8, x9, [x1, #-32]
    ldp     x10, x11, [x1, #-16]
    subs    x2, x2, #64
    stp     x4, x5, [x3], #64
    stp     x6, x7, [x3, #-48]
    stp     x8, x9, [x3, #-32]
    stp     x10, x11, [x3, #-16]
    b.hs    1b
2:  add     x2, x2, #64             /* 0..63 left */
8:  cmp     x2, #16
    b.lo    3f
    ldp     x4, x5, [x1], #16
    stp     x4, x5, [x3], #16
    sub     x2, x2, #16
    b       8b
3:  tbz     x2, #3, 4f
    ldr     x4, [x1], #8
    str     x4, [x3], #8
4:  tbz     x2, #2, 5f
    ldr     w4, [x1], #4
    str     w4, [x3], #4
5:  tbz     x2, #1, 6f
    ldrh    w4, [x1], #2
    strh    w4, [x3], #2
6:  tbz     x2, #0, 7f
    ldrb    w4, [x1]
    strb    w4, [x3]
7:  ret

    /* memmove(dst x0, src x1, n x2) -> dst: forward unless dst lies inside (src, src + n),
     * then backward from the end in the same blocks. */
    .global memmove
memmove:
    sub     x3, x0, x1
    cmp     x3, x2
    b.hs    memcpy                  /* dst - src >= n (unsigned): no harmful overlap */
    add     x1, x1, x2
    add     x3, x0, x2
    subs    x2, x2, #64
    b.lo    2f
1:  ldp     x4, x5, [x1, #-16]
    ldp     x6, x7, [x1, #-32]
    ldp     x8, x9, [x1, #-48]
    ldp     x10, x11, [x1, #-64]!
    subs    x2, x2, #64
    stp     x4, x5, [x3, #-16]
    stp     x6, x7, [x3, #-32]
    stp     x8, x9, [x3, #-48]
    stp     x10, x11, [x3, #-64]!
    b.hs    1b
2:  add     x2, x2, #64
8:  cmp     x2, #16
    b.lo    3f
    ldp     x4, x5, [x1, #-16]!
    stp     x4, x5, [x3, #-16]!
    sub     x2, x2, #16
    b       8b
3:  tbz     x2, #3, 4f
    ldr     x4, [x1, #-8]!
    str     x4, [x3, #-8]!
4:  tbz     x2, #2, 5f
    ldr     w4, [x1, #-4]!
    str     w4, [x3, #-4]!
5:  tbz     x2, #1, 6f
    ldrh    w4, [x1, #-2]!
    strh    w4, [x3, #-2]!
6:  tbz     x2, #0, 7f
    ldrb    w4, [x1, #-1]
    strb    w4, [x3, #-1]
7:  ret

    /* memset(dst x0, c w1, n x2) -> dst: the byte spread over a word, then as memcpy. */
    .global memset
memset:
    and     x1, x1, #0xff
    orr     x1, x1, x1, lsl #8
    orr     x1, x1, x1, lsl #16
    orr     x1, x1, x1, lsl #32
    mov     x3, x0
    subs    x2, x2, #64
    b.lo    2f
1:  stp     x1, x1, [x3], #64
    stp     x1, x1, [x3, #-48]
    stp     x1, x1, [x3, #-32]
    stp     x1, x1, [x3, #-16]
    subs    x2, x2, #64
    b.hs    1b
2:  add     x2, x2, #64
8:  cmp     x2, #16
    b.lo    3f
    stp     x1, x1, [x3], #16
    sub     x2, x2, #16
    b       8b
3:  tbz     x2, #3, 4f
    str     x1, [x3], #8
4:  tbz     x2, #2, 5f
    str     w1, [x3], #4
5:  tbz     x2, #1, 6f
    strh    w1, [x3], #2
6:  tbz     x2, #0, 7f
    strb    w1, [x3]
7:  ret
"#
);
