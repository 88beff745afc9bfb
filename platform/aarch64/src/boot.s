/* libos aarch64 entry, included by src/boot.rs with global_asm!.
 *
 * The image is a Linux arm64 `Image`: a 64-byte header, then code. Loaders (QEMU `-kernel`,
 * Firecracker, cloud-hypervisor, U-Boot `booti`) place it at a 2 MiB-aligned address plus
 * text_offset (0) anywhere in RAM (flags bit 3) and enter at the first byte with the MMU off,
 * x0 = physical address of the DTB, at EL2 or EL1.
 *
 * The ELF is linked position-independent at address 0 (`-pie`), so the code below uses only
 * PC-relative addressing until it has applied the R_AARCH64_RELATIVE relocations for the address
 * it actually runs at. Order:
 *   1. read CNTVCT_EL0 (boot statistics) and keep x0 (the DTB) in callee-saved registers;
 *   2. at EL2: configure EL1 (AArch64, timer and counter access, GICv3 system registers, no FP
 *      traps) and `eret` to EL1;
 *   3. enable FP/SIMD (CPACR_EL1.FPEN), mask interrupts;
 *   4. early identity map (4 KiB granule, 48-bit VA): one level-0 entry for the first 512 GiB,
 *      1 GiB blocks, Device-nGnRE everywhere except Normal write-back for the GiB holding the
 *      image and the GiB holding the DTB; MMU and caches on (Rust may then do unaligned
 *      accesses, which fault with the MMU off);
 *   5. apply relocations, zero .bss, set up the stacks, the boot CPU's per-CPU block
 *      (TPIDR_EL1) and VBAR_EL1;
 *   6. call `libos_aarch64_start(dtb, entry_counter)`, which `entry_point!` defines.
 * The other CPUs enter at `libos_aarch64_secondary_entry` (below; src/smp.rs starts them). 
 * The kernel then runs in EL1t (on SP_EL0); exceptions switch to SP_EL1, a separate stack, so
 * a kernel stack overflow can still be reported. The Rust side replaces the early tables with
 * the final ones (src/paging.rs). */

/* The kernel is soft-float (compiled code never touches FP/SIMD registers), but the exception
 * entry below saves and restores them for the interrupted program. */
    .arch_extension fp
    .arch_extension simd


    .equ R_AARCH64_RELATIVE, 1027
    /* Offsets in the per-CPU block `PerCpu` (src/smp.rs checks them at compile time). */
    .equ PERCPU_INDEX, 0
    .equ PERCPU_NESTED_STACK, 8
    .equ PERCPU_TTBR0, 16
    .equ PERCPU_TCR, 24
    .equ PERCPU_MAIR, 32
    .equ PERCPU_SCTLR, 40
    .equ PERCPU_STACK, 48
    .equ PERCPU_EXCEPTION_STACK, 56
    .equ PERCPU_SIZE, 128
    /* 1 GiB block: AF | AttrIndx 1 (Device-nGnRE) | PXN | UXN | block */
    .equ EARLY_DEVICE_BLOCK, (1 << 10) | (1 << 2) | (1 << 53) | (1 << 54) | 1
    /* 1 GiB block: AF | inner shareable | AttrIndx 0 (Normal WB) | block */
    .equ EARLY_NORMAL_BLOCK, (1 << 10) | (3 << 8) | 1
    /* MAIR_EL1: attr0 Normal inner/outer write-back RW-allocate, attr1 Device-nGnRE. */
    .equ MAIR_VALUE, 0x04ff
    /* TCR_EL1: T0SZ 16 (48-bit), walks inner/outer WB WA, inner shareable, 4 KiB granule,
     * EPD1 (no TTBR1 walks); IPS is filled in from ID_AA64MMFR0_EL1. */
    .equ TCR_VALUE, 16 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23)
    /* SCTLR_EL1 RES1 bits (ARMv8.0) with the MMU, caches and alignment checks off. */
    .equ SCTLR_EL1_RES1, 0x30d00800
    /* SCTLR_EL1: M | C | I */
    .equ SCTLR_MMU_CACHES, (1 << 0) | (1 << 2) | (1 << 12)

/* ---- The Image header (Documentation/arch/arm64/booting.rst) ---- */
    .section .text.head, "ax"
    .global _head
_head:
    b       primary_entry           /* code0 */
    .long   0                       /* code1 */
    .quad   0                       /* text_offset: load at a 2 MiB boundary */
    .quad   __image_size            /* image_size: the whole image including .bss and stacks */
    .quad   0xa                     /* flags: little endian, 4 KiB pages, anywhere in RAM */
    .quad   0                       /* res2 */
    .quad   0                       /* res3 */
    .quad   0                       /* res4 */
    .ascii  "ARM\x64"               /* magic */
    .long   0                       /* res5 (no PE/COFF header) */

/* At EL2 (a VMM or firmware that enters there): configure EL1 (AArch64, timer and counter
 * access, GICv3 system registers, no FP traps) and `eret` to `at_el1`, in EL1h with D A I F
 * masked. At EL1: nothing. Uses x0 only. Shared by the boot CPU and the others. */
.macro DROP_TO_EL1 at_el1
    mrs     x0, CurrentEL
    cmp     x0, #(2 << 2)
    b.ne    \at_el1
    mov     x0, #(1 << 31)          /* HCR_EL2.RW: EL1 is AArch64; no stage 2, no traps */
    orr     x0, x0, #(1 << 29)      /* HCD: nothing serves hvc at EL2 now, make it undefined */
    msr     hcr_el2, x0
    mov     x0, #3                  /* CNTHCTL_EL2: EL1PCTEN | EL1PCEN */
    msr     cnthctl_el2, x0
    msr     cntvoff_el2, xzr        /* virtual counter = physical counter */
    mov     x0, #0x33ff             /* CPTR_EL2: RES1 bits, TFP clear (no FP/SIMD traps) */
    msr     cptr_el2, x0
    msr     hstr_el2, xzr
    mrs     x0, midr_el1
    msr     vpidr_el2, x0
    mrs     x0, mpidr_el1
    msr     vmpidr_el2, x0
    mrs     x0, id_aa64pfr0_el1
    ubfx    x0, x0, #24, #4         /* GIC system register interface implemented? */
    cbz     x0, 1f
    mrs     x0, s3_4_c12_c9_5       /* ICC_SRE_EL2 */
    orr     x0, x0, #0xf            /* SRE | DFB | DIB | Enable (EL1 may use ICC_SRE_EL1) */
    msr     s3_4_c12_c9_5, x0
    isb
1:  ldr     x0, =SCTLR_EL1_RES1
    msr     sctlr_el1, x0
    mov     x0, #0x3c5              /* SPSR: EL1h, D A I F masked */
    msr     spsr_el2, x0
    adr     x0, \at_el1
    msr     elr_el2, x0
    eret
.endm

/* What every CPU does first at EL1: mask interrupts, no FP/SIMD traps (CPACR_EL1.FPEN). */
.macro CPU_AT_EL1
    msr     daifset, #0xf
    mov     x0, #(3 << 20)
    msr     cpacr_el1, x0
    isb
.endm

primary_entry:
    mrs     x19, cntvct_el0         /* boot statistics: the first thing we do */
    mov     x20, x0                 /* DTB physical address */

    DROP_TO_EL1 at_el1

at_el1:
    CPU_AT_EL1

    /* ---- Early identity map ---- */
    adrp    x1, libos_aarch64_early_l0
    adrp    x2, libos_aarch64_early_l1
    orr     x3, x2, #3              /* table descriptor */
    str     x3, [x1]
    mov     x4, #1
2:  str     xzr, [x1, x4, lsl #3]   /* L0[1..512]: invalid */
    add     x4, x4, #1
    cmp     x4, #512
    b.ne    2b
    ldr     x5, =EARLY_DEVICE_BLOCK
    mov     x4, #0
3:  orr     x3, x5, x4, lsl #30     /* L1[i]: GiB i as device memory */
    str     x3, [x2, x4, lsl #3]
    add     x4, x4, #1
    cmp     x4, #512
    b.ne    3b
    ldr     x5, =EARLY_NORMAL_BLOCK
    adr     x4, _head
    lsr     x4, x4, #30
    cmp     x4, #512
    b.hs    early_failure           /* image above 512 GiB: not supported */
    orr     x3, x5, x4, lsl #30
    str     x3, [x2, x4, lsl #3]
    lsr     x4, x20, #30
    cmp     x4, #512
    b.hs    4f                      /* the Rust side reports an unreachable DTB */
    orr     x3, x5, x4, lsl #30
    str     x3, [x2, x4, lsl #3]
4:
    /* The tables were written with the MMU off (straight to memory): drop any stale cache
     * lines over them so the table walker, which reads through the caches, sees the writes. */
    dsb     sy
    mrs     x3, ctr_el0
    ubfx    x3, x3, #16, #4         /* DminLine: log2 of words per line */
    mov     x4, #4
    lsl     x4, x4, x3              /* line size in bytes */
    add     x6, x1, #4096
    mov     x3, x1
5:  dc      ivac, x3
    add     x3, x3, x4
    cmp     x3, x6
    b.lo    5b
    mov     x3, x2
    add     x6, x2, #4096
6:  dc      ivac, x3
    add     x3, x3, x4
    cmp     x3, x6
    b.lo    6b
    dsb     sy

    ldr     x0, =MAIR_VALUE
    msr     mair_el1, x0
    ldr     x0, =TCR_VALUE
    mrs     x3, id_aa64mmfr0_el1
    and     x3, x3, #0xf            /* PARange */
    mov     x4, #5                  /* at most 48 bits (52 needs LPA descriptors) */
    cmp     x3, x4
    csel    x3, x3, x4, ls
    bfi     x0, x3, #32, #3         /* TCR_EL1.IPS */
    msr     tcr_el1, x0
    msr     ttbr0_el1, x1
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    mrs     x0, sctlr_el1
    ldr     x3, =SCTLR_MMU_CACHES
    orr     x0, x0, x3
    msr     sctlr_el1, x0
    isb
    ic      iallu
    dsb     nsh
    isb

    /* ---- Relocate: *(base + offset) = base + addend for every R_AARCH64_RELATIVE ---- */
    adr     x0, _head               /* linked at 0: the load address is the displacement */
    adrp    x1, __rela_start
    add     x1, x1, :lo12:__rela_start
    adrp    x2, __rela_end
    add     x2, x2, :lo12:__rela_end
7:  cmp     x1, x2
    b.hs    8f
    ldp     x3, x4, [x1], #16       /* r_offset, r_info */
    ldr     x5, [x1], #8            /* r_addend */
    cmp     w4, #R_AARCH64_RELATIVE
    b.ne    early_failure           /* the linker produced a relocation we cannot apply */
    add     x5, x5, x0
    str     x5, [x0, x3]
    b       7b
8:
    /* ---- Zero .bss ---- */
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
9:  cmp     x1, x2
    b.hs    10f
    stp     xzr, xzr, [x1], #16
    b       9b
10:
    /* ---- Stacks and vectors: exceptions on SP_EL1, the kernel on SP_EL0 ---- */
    adrp    x0, libos_aarch64_exception_stack_top
    add     x0, x0, :lo12:libos_aarch64_exception_stack_top
    mov     sp, x0
    msr     spsel, #0
    adrp    x0, libos_aarch64_boot_stack_top
    add     x0, x0, :lo12:libos_aarch64_boot_stack_top
    mov     sp, x0
    /* The boot CPU's per-CPU block: index 0, its nested-exception stack (the vectors below
     * find it through TPIDR_EL1, so it is set before VBAR_EL1). */
    adrp    x0, libos_aarch64_boot_percpu
    add     x0, x0, :lo12:libos_aarch64_boot_percpu
    mov     x1, #0
11: str     xzr, [x0, x1]
    add     x1, x1, #8
    cmp     x1, #PERCPU_SIZE
    b.ne    11b
    adrp    x1, libos_aarch64_nested_stack_top
    add     x1, x1, :lo12:libos_aarch64_nested_stack_top
    str     x1, [x0, #PERCPU_NESTED_STACK]
    msr     tpidr_el1, x0
    adrp    x0, libos_aarch64_vectors
    add     x0, x0, :lo12:libos_aarch64_vectors
    msr     vbar_el1, x0
    isb

    mov     x29, #0                 /* ends the frame-pointer chain for backtraces */
    mov     x30, #0
    mov     x0, x20                 /* arg 0: DTB physical address */
    mov     x1, x19                 /* arg 1: counter at entry */
    bl      libos_aarch64_start
early_failure:
    wfe
    b       early_failure

    .ltorg

/* ---- The other CPUs' entry (PSCI CPU_ON's entry point; src/smp.rs) ----
 * The CPU arrives at EL2 or EL1 with the MMU and caches off, x0 = the context id: the physical
 * (= virtual: identity map) address of its `PerCpu`, which the boot CPU filled and cleaned to
 * the point of coherency (loads with the MMU off bypass the caches). The image is relocated,
 * .bss zeroed and the final tables live already: this only sets up the CPU itself, loading the
 * boot CPU's current MAIR/TCR/TTBR0/SCTLR values (the final tables) from the block, then its
 * own two stacks (exceptions on SP_EL1, the kernel on SP_EL0), VBAR_EL1 and TPIDR_EL1, and
 * calls `libos_aarch64_secondary_start(percpu)`, which never returns. Until the MMU is on only
 * PC-relative addressing and the block are used. */
    .section .text.secondary, "ax"
    .balign 4
    .global libos_aarch64_secondary_entry
libos_aarch64_secondary_entry:
    mov     x20, x0                 /* PerCpu */
    DROP_TO_EL1 secondary_at_el1
secondary_at_el1:
    CPU_AT_EL1
    ldr     x0, [x20, #PERCPU_MAIR]
    msr     mair_el1, x0
    ldr     x0, [x20, #PERCPU_TCR]
    msr     tcr_el1, x0
    ldr     x0, [x20, #PERCPU_TTBR0]
    msr     ttbr0_el1, x0
    isb
    tlbi    vmalle1                 /* nothing of the firmware's may linger */
    dsb     nsh
    isb
    ldr     x0, [x20, #PERCPU_SCTLR]
    msr     sctlr_el1, x0           /* MMU and caches on, as on the boot CPU */
    isb
    ic      iallu
    dsb     nsh
    isb
    ldr     x0, [x20, #PERCPU_EXCEPTION_STACK]
    mov     sp, x0                  /* SP_EL1 (PSCI enters in EL1h) */
    msr     spsel, #0
    ldr     x0, [x20, #PERCPU_STACK]
    mov     sp, x0                  /* SP_EL0: the kernel runs in EL1t */
    msr     tpidr_el1, x20
    adrp    x0, libos_aarch64_vectors
    add     x0, x0, :lo12:libos_aarch64_vectors
    msr     vbar_el1, x0
    isb
    mov     x29, #0
    mov     x30, #0
    mov     x0, x20
    bl      libos_aarch64_secondary_start
1:  wfe
    b       1b
    .ltorg

/* The boot CPU's per-CPU block (`PerCpu`, written whole by primary_entry). */
    .section .bss.libos_aarch64_boot_percpu, "aw", %nobits
    .balign 64
    .global libos_aarch64_boot_percpu
libos_aarch64_boot_percpu:  .skip PERCPU_SIZE

/* ---- Early page tables (written whole above, so NOLOAD) and stacks, each stack with an
 * unmapped 4 KiB guard page below it (see paging.rs) ---- */
    .section .stacks, "aw", %nobits
    .balign 4096
    .global libos_aarch64_early_l0
libos_aarch64_early_l0:     .skip 4096
    .global libos_aarch64_early_l1
libos_aarch64_early_l1:     .skip 4096
    .global libos_aarch64_stacks_start
libos_aarch64_stacks_start:
    .global libos_aarch64_boot_stack_guard
libos_aarch64_boot_stack_guard:         .skip 4096
                                        .skip 65536
    .global libos_aarch64_boot_stack_top
libos_aarch64_boot_stack_top:
    .global libos_aarch64_exception_stack_guard
libos_aarch64_exception_stack_guard:    .skip 4096
                                        .skip 16384
    .global libos_aarch64_exception_stack_top
libos_aarch64_exception_stack_top:
    .global libos_aarch64_nested_stack_guard
libos_aarch64_nested_stack_guard:       .skip 4096
                                        .skip 8192
    .global libos_aarch64_nested_stack_top
libos_aarch64_nested_stack_top:
    .global libos_aarch64_stacks_end
libos_aarch64_stacks_end:

/* ---- Exception vectors ----
 * 16 entries of 0x80 bytes. The kernel runs on SP_EL0, so its exceptions arrive at the
 * "current EL with SP0" entries (kinds 0-3) and are handled on SP_EL1. An exception while
 * handling one arrives at the "current EL with SPx" entries: those switch to a third stack
 * first (this CPU's, from its per-CPU block at TPIDR_EL1), because SP_EL1 itself may be what
 * overflowed (kinds 4-7). Lower-EL entries (8-15)
 * cannot happen (nothing runs at EL0) and are reported as such. */
    .equ FRAME_SIZE, 800            /* 31 x, sp_el0, elr, spsr, 32 q, fpcr, fpsr (TrapFrame) */

.macro VECTOR kind
    .balign 0x80
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp]
    mov     x0, #\kind
    b       trap_common
.endm

.macro NESTED_VECTOR kind
    .balign 0x80
    msr     tpidrro_el0, x0         /* scratch: nothing runs at EL0 (TPIDR_EL1 is per-CPU) */
    mrs     x0, tpidr_el1
    ldr     x0, [x0, #PERCPU_NESTED_STACK]
    mov     sp, x0
    mrs     x0, tpidrro_el0
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp]
    mov     x0, #\kind
    b       trap_common
.endm

    .section .text.vectors, "ax"
    .balign 2048
    .global libos_aarch64_vectors
libos_aarch64_vectors:
    /* current EL, SP0: synchronous. `svc #0` (ESR class 0x15) from Linux code goes to the
     * system-call entry (src/syscall.rs) with SP_EL1 as it was; anything else to trap_common. */
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    mrs     x0, esr_el1
    lsr     x0, x0, #26
    cmp     x0, #0x15
    b.eq    libos_aarch64_svc_entry
    ldp     x0, x1, [sp], #16
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp]
    mov     x0, #0
    b       trap_common
    VECTOR 1                        /* IRQ */
    VECTOR 2                        /* FIQ */
    VECTOR 3                        /* SError */
    NESTED_VECTOR 4                 /* current EL, SPx: synchronous */
    NESTED_VECTOR 5
    NESTED_VECTOR 6
    NESTED_VECTOR 7
    VECTOR 8                        /* lower EL, AArch64 */
    VECTOR 9
    VECTOR 10
    VECTOR 11
    VECTOR 12                       /* lower EL, AArch32 */
    VECTOR 13
    VECTOR 14
    VECTOR 15

trap_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x1, sp_el0
    stp     x30, x1, [sp, #240]
    mrs     x1, elr_el1
    mrs     x2, spsr_el1
    stp     x1, x2, [sp, #256]
    add     x1, sp, #272
    stp     q0, q1, [x1, #0]
    stp     q2, q3, [x1, #32]
    stp     q4, q5, [x1, #64]
    stp     q6, q7, [x1, #96]
    stp     q8, q9, [x1, #128]
    stp     q10, q11, [x1, #160]
    stp     q12, q13, [x1, #192]
    stp     q14, q15, [x1, #224]
    stp     q16, q17, [x1, #256]
    stp     q18, q19, [x1, #288]
    stp     q20, q21, [x1, #320]
    stp     q22, q23, [x1, #352]
    stp     q24, q25, [x1, #384]
    stp     q26, q27, [x1, #416]
    stp     q28, q29, [x1, #448]
    stp     q30, q31, [x1, #480]
    mrs     x2, fpcr
    mrs     x3, fpsr
    str     x2, [sp, #784]
    str     x3, [sp, #792]
    mov     x1, sp
    mov     x29, #0
    bl      libos_aarch64_trap      /* (kind, &mut TrapFrame) */
    add     x1, sp, #272
    ldr     x2, [sp, #784]
    ldr     x3, [sp, #792]
    msr     fpcr, x2
    msr     fpsr, x3
    ldp     q0, q1, [x1, #0]
    ldp     q2, q3, [x1, #32]
    ldp     q4, q5, [x1, #64]
    ldp     q6, q7, [x1, #96]
    ldp     q8, q9, [x1, #128]
    ldp     q10, q11, [x1, #160]
    ldp     q12, q13, [x1, #192]
    ldp     q14, q15, [x1, #224]
    ldp     q16, q17, [x1, #256]
    ldp     q18, q19, [x1, #288]
    ldp     q20, q21, [x1, #320]
    ldp     q22, q23, [x1, #352]
    ldp     q24, q25, [x1, #384]
    ldp     q26, q27, [x1, #416]
    ldp     q28, q29, [x1, #448]
    ldp     q30, q31, [x1, #480]
    ldp     x1, x2, [sp, #256]
    msr     elr_el1, x1
    msr     spsr_el1, x2
    ldp     x30, x1, [sp, #240]
    msr     sp_el0, x1
    ldp     x28, x29, [sp, #224]
    ldp     x26, x27, [sp, #208]
    ldp     x24, x25, [sp, #192]
    ldp     x22, x23, [sp, #176]
    ldp     x20, x21, [sp, #160]
    ldp     x18, x19, [sp, #144]
    ldp     x16, x17, [sp, #128]
    ldp     x14, x15, [sp, #112]
    ldp     x12, x13, [sp, #96]
    ldp     x10, x11, [sp, #80]
    ldp     x8, x9, [sp, #64]
    ldp     x6, x7, [sp, #48]
    ldp     x4, x5, [sp, #32]
    ldp     x2, x3, [sp, #16]
    ldp     x0, x1, [sp]
    add     sp, sp, #FRAME_SIZE
    eret

/* ---- Semihosting: x0 = operation, x1 = parameter; returns x0. Without semihosting the HLT
 * is an undefined instruction: the trap handler recognises this address, skips the HLT and
 * returns u64::MAX (see src/semihosting.rs). ---- */
    .section .text.semihosting, "ax"
    .balign 4
    .global libos_aarch64_semihosting_call
libos_aarch64_semihosting_call:
    .global libos_aarch64_semihosting_hlt
libos_aarch64_semihosting_hlt:
    hlt     #0xf000
    ret

/* ---- PSCI calls for when the DTB does not say which conduit works: x0 = function id. An
 * `hvc` without EL2 or an `smc` without EL3 is an undefined instruction; the trap handler skips
 * these two instructions the same way and returns u64::MAX (src/shutdown.rs). ---- */
    .global libos_aarch64_psci_hvc
libos_aarch64_psci_hvc:
    hvc     #0
    ret
    .global libos_aarch64_psci_smc
libos_aarch64_psci_smc:
    smc     #0
    ret
