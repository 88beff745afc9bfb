//! `memcmp` and `bcmp` for the kernel: the string instructions `repe cmpsq` over whole
//! words, then `repe cmpsb` over the rest (or over the word that differs).
//!
//! `compiler_builtins` provides weak generic versions whose setup dominates the short compares
//! the kernel makes (hash-map keys, file names: about 60 instructions for a 5-byte name,
//! measured on `stat`); these take about 15 for it, and one per eight bytes beyond. Being
//! strong symbols, they replace the weak ones at link time. The C side of posix-shim has its
//! own (musl's, renamed by its build script). `memcpy`, `memmove` and `memset` stay
//! `compiler_builtins'`, which already use `rep movs`/`rep stos`.
//!
//! The direction flag is clear at every function boundary (the ABI), so the string
//! instructions walk upwards.

core::arch::global_asm!(
    r#"
    .section .text.libos_memcmp, "ax"
    .balign 16

    /* memcmp(a rdi, b rsi, n rdx) -> eax: < 0, 0, > 0 as the first differing byte (unsigned)
     * of a is below, equal to or above b's. bcmp(a, b, n) -> 0 iff equal: the same code. */
    .global memcmp
    .global bcmp
memcmp:
bcmp:
    mov     rcx, rdx
    shr     rcx, 3                  /* whole words; ZF set if none */
    repe cmpsq
    jne     2f                      /* a word differs: compare its bytes */
    mov     rcx, rdx
    and     rcx, 7                  /* the 0..7 bytes after the words */
    jmp     3f
2:  sub     rdi, 8
    sub     rsi, 8
    mov     ecx, 8
3:  xor     eax, eax                /* ZF set: no bytes (rcx = 0) compare equal */
    repe cmpsb
    je      4f
    movzx   eax, byte ptr [rdi - 1]
    movzx   ecx, byte ptr [rsi - 1]
    sub     eax, ecx
4:  ret
"#
);
