//! The `svc #0` trap for Linux code running at EL1, entering Linux code, and `TPIDR_EL0`.
//!
//! **Entry**: `svc` from the kernel's thread mode (EL1t) arrives at the "current EL with SP0"
//! synchronous vector (src/boot.s), which checks ESR's exception class (0x15, SVC from AArch64)
//! and branches to `libos_aarch64_svc_entry` with SP_EL1 restored. The entry switches back to
//! the calling thread's stack (`msr spsel, #0`), because the handler may block and switch
//! threads, which the shared exception stack cannot do (AAPCS64 has no red zone, so the
//! frame goes right below the caller's `sp`). It saves a full [`Frame`]: all `x`, `sp`,
//! ELR/SPSR, all 32 `q` registers, FPCR and FPSR (Linux preserves all but `x0`, and the kernel
//! is hard-float code that may use any vector register). Then it unmasks IRQs if the caller
//! had them unmasked (system calls are preemptible) and calls the handler with the frame.
//!
//! **Return** (`libos_aarch64_syscall_exit`): IRQs masked (ELR/SPSR must not be overwritten
//! by a nested exception), every register reloaded from the frame, the caller's `sp` written
//! to SP_EL0 from SP_EL1, then `eret` back to EL1t at the instruction after `svc`.
//!
//! **TPIDR_EL0**: Linux code's thread pointer; images with the trap use the context switch that
//! keeps it per thread (`context.rs`, `SWITCH_WITH_THREAD_POINTER`).

use core::arch::global_asm;
use core::sync::atomic::{AtomicPtr, Ordering};
use libos_core::syscall::{Frame, Handler};

/// Read by the entry code: the registered handler (null until installed).
#[unsafe(no_mangle)]
static LIBOS_AARCH64_SYSCALL_HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

global_asm!(
    r#"
    .section .text.syscall, "ax"
    .balign 4
    .global libos_aarch64_svc_entry
libos_aarch64_svc_entry:
    ldp     x0, x1, [sp], #16       /* the vector's scratch registers; SP_EL1 back at its top */
    msr     spsel, #0               /* the calling thread's stack */
    sub     sp, sp, #800
    stp     x0, x1, [sp, #0]
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
    add     x1, sp, #800
    stp     x30, x1, [sp, #240]
    mrs     x1, elr_el1
    mrs     x2, spsr_el1
    stp     x1, x2, [sp, #256]
    add     x3, sp, #272
    st1     {{v0.2d, v1.2d, v2.2d, v3.2d}}, [x3], #64
    st1     {{v4.2d, v5.2d, v6.2d, v7.2d}}, [x3], #64
    st1     {{v8.2d, v9.2d, v10.2d, v11.2d}}, [x3], #64
    st1     {{v12.2d, v13.2d, v14.2d, v15.2d}}, [x3], #64
    st1     {{v16.2d, v17.2d, v18.2d, v19.2d}}, [x3], #64
    st1     {{v20.2d, v21.2d, v22.2d, v23.2d}}, [x3], #64
    st1     {{v24.2d, v25.2d, v26.2d, v27.2d}}, [x3], #64
    st1     {{v28.2d, v29.2d, v30.2d, v31.2d}}, [x3], #64
    mrs     x4, fpcr
    mrs     x5, fpsr
    stp     x4, x5, [x3]
    tbnz    x2, #7, 1f              /* the caller had IRQs masked: keep them so */
    msr     daifclr, #2
1:  mov     x0, sp
    adrp    x1, LIBOS_AARCH64_SYSCALL_HANDLER
    ldr     x1, [x1, :lo12:LIBOS_AARCH64_SYSCALL_HANDLER]
    blr     x1
    str     x0, [sp]                /* the result goes to the caller's x0 */

    .global libos_aarch64_syscall_exit
libos_aarch64_syscall_exit:         /* sp: a Frame */
    msr     daifset, #2
    add     x3, sp, #272
    ld1     {{v0.2d, v1.2d, v2.2d, v3.2d}}, [x3], #64
    ld1     {{v4.2d, v5.2d, v6.2d, v7.2d}}, [x3], #64
    ld1     {{v8.2d, v9.2d, v10.2d, v11.2d}}, [x3], #64
    ld1     {{v12.2d, v13.2d, v14.2d, v15.2d}}, [x3], #64
    ld1     {{v16.2d, v17.2d, v18.2d, v19.2d}}, [x3], #64
    ld1     {{v20.2d, v21.2d, v22.2d, v23.2d}}, [x3], #64
    ld1     {{v24.2d, v25.2d, v26.2d, v27.2d}}, [x3], #64
    ld1     {{v28.2d, v29.2d, v30.2d, v31.2d}}, [x3], #64
    ldp     x4, x5, [x3]
    msr     fpcr, x4
    msr     fpsr, x5
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
    ldp     x30, x0, [sp, #240]     /* x0: the caller's sp */
    mov     x1, sp
    msr     spsel, #1               /* SP_EL0 is writable only from SP_EL1 */
    msr     sp_el0, x0
    ldp     x0, x1, [x1]
    eret

    /* libos_aarch64_enter(frame): load every register of a Frame and eret to its pc. */
    .global libos_aarch64_enter
libos_aarch64_enter:
    mov     sp, x0
    b       libos_aarch64_syscall_exit
"#
);

unsafe extern "C" {
    fn libos_aarch64_enter(frame: *const Frame) -> !;
}

/// Routes `svc #0` to `handler`.
pub fn install(handler: Handler) {
    LIBOS_AARCH64_SYSCALL_HANDLER.store(handler as *mut (), Ordering::Release);
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
