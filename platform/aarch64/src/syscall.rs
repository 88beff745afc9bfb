//! The `svc #0` trap for Linux code running at EL1, entering Linux code, and `TPIDR_EL0`.
//!
//! **Entry**: `svc` from the kernel's thread mode (EL1t) arrives at the "current EL with SP0"
//! synchronous vector (src/boot.s), which checks ESR's exception class (0x15, SVC from AArch64)
//! and branches to `libos_aarch64_svc_entry` with SP_EL1 restored. The entry switches back to
//! the calling thread's stack (`msr spsel, #0`), because the handler may block and switch
//! threads, which the shared exception stack cannot do (AAPCS64 has no red zone, so the
//! frame goes right below the caller's `sp`). It saves what the handler may change: `x0`-`x18`,
//! `x30`, `sp`, ELR/SPSR. Not `x19`-`x29` (AAPCS64 callee-saved: the handler preserves them)
//! and no FP/SIMD register: the kernel is built soft-float (`aarch64-unknown-none-softfloat`),
//! so it never touches them; the context switch of images with the trap keeps them per
//! thread (`context.rs`). Then it unmasks IRQs if the caller had them unmasked (system calls
//! are preemptible) and calls the handler with the frame.
//!
//! **Return**: IRQs masked (ELR/SPSR must not be overwritten by a nested exception), the
//! saved registers reloaded (`x0` is the result), the caller's `sp` written to SP_EL0 from
//! SP_EL1, then `eret` back to EL1t at the instruction after `svc`. With outstanding return
//! work (libos-core's `syscall` docs) it first completes the frame with `x19`-`x29`, calls the
//! return hook, and reloads every register from the frame (`libos_aarch64_restore_all`, which
//! entering Linux code shares).
//!
//! **Linux code or kernel**: the entry clears the running CPU's "in Linux code" flag (in its
//! per-CPU block, found through TPIDR_EL1: see `smp`) and both exits set it, all with IRQs
//! masked, so at any IRQ it tells whether the thread was
//! running Linux code ([`interrupted_linux_code`]; the context switch keeps it per thread).
//!
//! **TPIDR_EL0**: Linux code's thread pointer; images with the trap use the context switch that
//! keeps it per thread (`context.rs`, `SWITCH_WITH_THREAD_POINTER`).

use core::arch::global_asm;
use core::sync::atomic::{AtomicPtr, Ordering};
use libos_core::syscall::{Frame, Handler, ReturnHook};

/// Read by the entry code: the registered handler (null until installed).
#[unsafe(no_mangle)]
static LIBOS_AARCH64_SYSCALL_HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
/// Read by the entry code: the registered return hook (see libos-core's `syscall` docs).
#[unsafe(no_mangle)]
static LIBOS_AARCH64_SYSCALL_RETURN_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

global_asm!(
    r#"
    .section .text.syscall, "ax"
    .balign 4
    .global libos_aarch64_svc_entry
libos_aarch64_svc_entry:
    ldp     x0, x1, [sp], #16       /* the vector's scratch registers; SP_EL1 back at its top */
    msr     spsel, #0               /* the calling thread's stack */
    sub     sp, sp, #272
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    str     x18, [sp, #144]         /* x19-x29: filled only for the return hook */
    add     x1, sp, #272
    stp     x30, x1, [sp, #240]
    mrs     x1, elr_el1
    mrs     x2, spsr_el1
    stp     x1, x2, [sp, #256]
    mrs     x3, tpidr_el1               /* in the kernel now (IRQs still masked): */
    str     wzr, [x3, #{in_linux_code}]  /* this CPU's flag (smp.rs PerCpu) */
    tbnz    x2, #7, 1f              /* the caller had IRQs masked: keep them so */
    msr     daifclr, #2
1:  mov     x0, sp
    adrp    x1, LIBOS_AARCH64_SYSCALL_HANDLER
    ldr     x1, [x1, :lo12:LIBOS_AARCH64_SYSCALL_HANDLER]
    blr     x1                      /* x0: the result; sp: the frame again */
    adrp    x1, LIBOS_SYSCALL_RETURN_WORK
    ldr     w1, [x1, :lo12:LIBOS_SYSCALL_RETURN_WORK]
    cbnz    w1, 2f
    msr     daifset, #2             /* ELR/SPSR must not be overwritten by a nested exception */
    mrs     x1, tpidr_el1               /* Linux code again from the eret on */
    mov     w2, #1
    str     w2, [x1, #{in_linux_code}]
    ldp     x1, x2, [sp, #256]
    msr     elr_el1, x1
    msr     spsr_el1, x2
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldr     x18, [sp, #144]
    ldp     x30, x3, [sp, #240]     /* x3: the caller's sp */
    mov     x2, sp
    msr     spsel, #1               /* SP_EL0 is writable only from SP_EL1 */
    msr     sp_el0, x3
    ldr     x3, [x2, #24]
    ldp     x1, x2, [x2, #8]
    eret

    /* Return work: the handler preserved x19-x29, so they still hold the caller's values;
     * complete the frame with them and the result, call the hook, restore it all. */
2:  str     x0, [sp, #0]
    stp     x19, x20, [sp, #152]
    stp     x21, x22, [sp, #168]
    stp     x23, x24, [sp, #184]
    stp     x25, x26, [sp, #200]
    stp     x27, x28, [sp, #216]
    str     x29, [sp, #232]
    mov     x0, sp
    adrp    x1, LIBOS_AARCH64_SYSCALL_RETURN_HOOK
    ldr     x1, [x1, :lo12:LIBOS_AARCH64_SYSCALL_RETURN_HOOK]
    blr     x1

    /* libos_aarch64_restore_all: sp (SP_EL0) points at a complete Frame; IRQs masked, every
     * register reloaded, the frame's sp written to SP_EL0 from SP_EL1, `eret` to its pc. */
libos_aarch64_restore_all:
    msr     daifset, #2
    mrs     x1, tpidr_el1
    mov     w2, #1
    str     w2, [x1, #{in_linux_code}]
    ldp     x1, x2, [sp, #256]
    msr     elr_el1, x1
    msr     spsr_el1, x2
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldp     x30, x0, [sp, #240]     /* x0: the frame's sp */
    mov     x1, sp
    msr     spsel, #1
    msr     sp_el0, x0
    ldp     x0, x1, [x1]
    eret

    /* libos_aarch64_enter(frame): load every register of a Frame and eret to its pc. */
    .global libos_aarch64_enter
libos_aarch64_enter:
    mov     sp, x0
    b       libos_aarch64_restore_all
"#,
    in_linux_code = const crate::smp::IN_LINUX_CODE,
);

unsafe extern "C" {
    fn libos_aarch64_enter(frame: *const Frame) -> !;
}

/// Whether the running thread was in Linux code when it was interrupted (the trap's entry and
/// exit run with IRQs masked, so the flag is exact at any IRQ).
pub fn interrupted_linux_code() -> bool {
    crate::smp::in_linux_code() != 0
}

/// The registered return hook, if any.
pub fn return_hook() -> Option<ReturnHook> {
    let hook = LIBOS_AARCH64_SYSCALL_RETURN_HOOK.load(Ordering::Acquire);
    // SAFETY: the only non-null value ever stored is a `ReturnHook` (`install`).
    (!hook.is_null()).then(|| unsafe { core::mem::transmute::<*mut (), ReturnHook>(hook) })
}

/// Routes `svc #0` to `handler`, returns with outstanding work to `on_return`.
pub fn install(handler: Handler, on_return: ReturnHook) {
    LIBOS_AARCH64_SYSCALL_HANDLER.store(handler as *mut (), Ordering::Release);
    LIBOS_AARCH64_SYSCALL_RETURN_HOOK.store(on_return as *mut (), Ordering::Release);
}

/// Enters Linux code with `frame`'s registers.
///
/// # Safety
/// As [`libos_core::syscall::UserEntry::enter`]; runs in thread mode (EL1t).
pub unsafe fn enter(frame: &Frame) -> ! {
    // A copy on this thread's stack: the exit code reloads it in place, and everything below
    // it is free because this call never returns.
    let copy = frame.clone();
    // SAFETY: the caller vouches for the frame's pc and sp; `copy` stays valid while it is
    // reloaded (IRQs are masked from the first instruction of the exit path).
    unsafe { libos_aarch64_enter(&copy) }
}

/// Reads TPIDR_EL0.
pub fn thread_pointer() -> u64 {
    crate::cpu::read_sysreg!("tpidr_el0")
}

/// Writes TPIDR_EL0.
pub fn set_thread_pointer(value: u64) {
    // SAFETY: the kernel does not use TPIDR_EL0 (kernel TLS uses explicit keys), so only Linux
    // code sees the change.
    unsafe { core::arch::asm!("msr tpidr_el0, {}", in(reg) value, options(nomem, nostack, preserves_flags)) };
}
