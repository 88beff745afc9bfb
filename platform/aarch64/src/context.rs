//! Thread context switch and preemption support for the scheduler.
//!
//! - **Cooperative switch** ([`SWITCH`]): saves the AAPCS64 callee-saved general registers on
//!   the current stack (SP_EL0: threads run in EL1t): `x19`-`x30`; stores `sp`, loads the other
//!   thread's and restores. The kernel is built soft-float, so compiled code keeps nothing in
//!   FP/SIMD registers and this is all a cooperative switch of kernel code needs. Interrupts
//!   stay masked across it (the caller's contract).
//! - **Images with the system-call trap** ([`SWITCH_WITH_USER_STATE`]): a thread may be
//!   switched out inside a system call of Linux code, whose FP/SIMD registers the trap does not
//!   save (the kernel never changes them, `syscall.rs`), so this routine also saves all 32
//!   `v` registers, FPCR, FPSR and TPIDR_EL0 (Linux code's thread pointer) on the thread's
//!   stack: 640 bytes, through [`save_fp`]/[`restore_fp`] (one definition of that layout).
//! - **Preemption**: exceptions run on SP_EL1 with the full register frame (all `x`, all 32
//!   `q`, FPCR, FPSR) on that shared exception stack, so we cannot switch threads inside the
//!   handler. Instead, when the scheduler asked for preemption, [`redirect_to_preempt`] copies
//!   the interrupted thread's frame onto *its own* stack (below its SP_EL0 and a 128-byte red
//!   zone) and makes the
//!   `eret` land in `libos_aarch64_preempt_trampoline` in EL1t with IRQs masked. The trampoline
//!   calls [`libos_core::hal::irq::preempt`] (the scheduler switches away cooperatively from
//!   there); when the thread is resumed, it reloads every saved register (including all vector
//!   registers, FPCR and FPSR, so FP/SIMD state is exact) from the copy, including ELR/SPSR
//!   and SP_EL0, and `eret`s to the interrupted instruction. If the thread was running Linux
//!   code and system-call return work is outstanding, the return hook first runs on the copy
//!   (libos-core's `syscall` docs: posix-shim delivers a signal there, so the `eret` may
//!   enter a signal handler on another stack instead). [`SWITCH_WITH_USER_STATE`] also keeps
//!   the CPU's "in Linux code" flag per thread (saved from the CPU switching the thread out,
//!   restored into the CPU that resumes it).
//! - **New threads** ([`init`]): a switch frame whose `x30` is `libos_aarch64_thread_start`,
//!   which calls `entry(arg)` with a zero frame pointer.

use crate::exceptions::TrapFrame;
use core::arch::global_asm;

/// Bytes [`SWITCH`] keeps on the stack: x19-x30.
pub const SWITCH_FRAME: usize = 96;
/// Bytes [`SWITCH_WITH_USER_STATE`] keeps: x19-x30 (96), padding (16), TPIDR_EL0 (8), the
/// [`save_fp`] area (520).
pub const USER_STATE_SWITCH_FRAME: usize = 640;

global_asm!(
    r#"
    .section .text.context, "ax"
    /* The kernel is soft-float; this code handles Linux code's FP state. */
    .arch_extension fp
    .arch_extension simd
    .balign 4
    .global libos_aarch64_switch_context
libos_aarch64_switch_context:
    mrs     x9, spsel
    cbnz    x9, 9f                  /* on the exception stack: never switch from there */
    sub     sp, sp, #96
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    mov     x9, sp
    str     x9, [x0]
    mov     sp, x1
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    add     sp, sp, #96
    ret
9:  bl      libos_aarch64_switch_from_exception

    /* The same, plus what Linux code keeps in the CPU while its thread is switched out
     * (images with the system-call trap): TPIDR_EL0 at 112, the FP/SIMD state at 120 in
     * libos_aarch64_save_fp's layout (so v0-v31 land 16-byte aligned at 128). x19/x20 are
     * saved first, so they carry save_sp/load_sp across the two calls. */
    .global libos_aarch64_switch_context_tp
libos_aarch64_switch_context_tp:
    sub     sp, sp, #640
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    mrs     x9, tpidr_el0
    str     x9, [sp, #112]
    /* Whether this thread runs Linux code is its own (libos-core's syscall docs): saved at
     * 96, and clear for the next thread (a new one starts with it clear). */
    mrs     x9, tpidr_el1               /* this CPU's block (smp.rs PerCpu) */
    ldr     w10, [x9, #{in_linux_code}]
    str     w10, [sp, #96]
    str     wzr, [x9, #{in_linux_code}]
    mov     x19, x0
    mov     x20, x1
    add     x0, sp, #120
    bl      libos_aarch64_save_fp
    mov     x9, sp
    str     x9, [x19]
    mov     sp, x20
    add     x0, sp, #120
    bl      libos_aarch64_restore_fp
    ldr     x9, [sp, #112]
    msr     tpidr_el0, x9
    ldr     w10, [sp, #96]
    mrs     x9, tpidr_el1               /* the CPU that resumes it (maybe another) */
    str     w10, [x9, #{in_linux_code}]
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    add     sp, sp, #640
    ret

    /* libos_aarch64_save_fp(area) / libos_aarch64_restore_fp(area): the body of Linux's
     * fpsimd_context: fpsr (u32), fpcr (u32), v0-v31. */
    .global libos_aarch64_save_fp
libos_aarch64_save_fp:
    mrs     x9, fpsr
    mrs     x10, fpcr
    stp     w9, w10, [x0], #8
    st1     {{v0.2d, v1.2d, v2.2d, v3.2d}}, [x0], #64
    st1     {{v4.2d, v5.2d, v6.2d, v7.2d}}, [x0], #64
    st1     {{v8.2d, v9.2d, v10.2d, v11.2d}}, [x0], #64
    st1     {{v12.2d, v13.2d, v14.2d, v15.2d}}, [x0], #64
    st1     {{v16.2d, v17.2d, v18.2d, v19.2d}}, [x0], #64
    st1     {{v20.2d, v21.2d, v22.2d, v23.2d}}, [x0], #64
    st1     {{v24.2d, v25.2d, v26.2d, v27.2d}}, [x0], #64
    st1     {{v28.2d, v29.2d, v30.2d, v31.2d}}, [x0]
    ret

    .global libos_aarch64_restore_fp
libos_aarch64_restore_fp:
    ldp     w9, w10, [x0], #8
    msr     fpsr, x9
    msr     fpcr, x10
    ld1     {{v0.2d, v1.2d, v2.2d, v3.2d}}, [x0], #64
    ld1     {{v4.2d, v5.2d, v6.2d, v7.2d}}, [x0], #64
    ld1     {{v8.2d, v9.2d, v10.2d, v11.2d}}, [x0], #64
    ld1     {{v12.2d, v13.2d, v14.2d, v15.2d}}, [x0], #64
    ld1     {{v16.2d, v17.2d, v18.2d, v19.2d}}, [x0], #64
    ld1     {{v20.2d, v21.2d, v22.2d, v23.2d}}, [x0], #64
    ld1     {{v24.2d, v25.2d, v26.2d, v27.2d}}, [x0], #64
    ld1     {{v28.2d, v29.2d, v30.2d, v31.2d}}, [x0]
    ret

    .global libos_aarch64_thread_start
libos_aarch64_thread_start:
    mov     x0, x20
    mov     x29, #0
    blr     x19
    brk     #0x1

    /* Entered by `eret` from an IRQ handler (redirect_to_preempt) in EL1t with IRQs masked;
     * sp points at a full TrapFrame (src/boot.s layout) copied from the exception stack, right
     * below the interrupted thread's red zone (redirect_to_preempt). */
    .global libos_aarch64_preempt_trampoline
libos_aarch64_preempt_trampoline:
    mov     x29, #0
    mov     x0, sp
    bl      libos_aarch64_preempted
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
    /* sp becomes the copy's SP_EL0: the interrupted one, or where a signal handler the
     * return hook entered starts; x0 keeps the copy (IRQs stay masked until the eret). */
    mov     x0, sp
    ldr     x1, [x0, #248]
    mov     sp, x1
    ldr     x30, [x0, #240]
    ldp     x28, x29, [x0, #224]
    ldp     x26, x27, [x0, #208]
    ldp     x24, x25, [x0, #192]
    ldp     x22, x23, [x0, #176]
    ldp     x20, x21, [x0, #160]
    ldp     x18, x19, [x0, #144]
    ldp     x16, x17, [x0, #128]
    ldp     x14, x15, [x0, #112]
    ldp     x12, x13, [x0, #96]
    ldp     x10, x11, [x0, #80]
    ldp     x8, x9, [x0, #64]
    ldp     x6, x7, [x0, #48]
    ldp     x4, x5, [x0, #32]
    ldp     x2, x3, [x0, #16]
    ldp     x0, x1, [x0]
    eret
"#,
    in_linux_code = const crate::smp::IN_LINUX_CODE,
);

unsafe extern "C" {
    fn libos_aarch64_switch_context(save_sp: *mut usize, load_sp: usize);
    fn libos_aarch64_switch_context_tp(save_sp: *mut usize, load_sp: usize);
    fn libos_aarch64_thread_start();
    fn libos_aarch64_preempt_trampoline();
}

// The return hook reads the head of a TrapFrame as a system-call Frame.
const _: () = assert!(
    core::mem::offset_of!(TrapFrame, sp_el0) == core::mem::offset_of!(libos_core::syscall::Frame, sp)
        && core::mem::offset_of!(TrapFrame, elr) == core::mem::offset_of!(libos_core::syscall::Frame, pc)
        && core::mem::offset_of!(TrapFrame, spsr) == core::mem::offset_of!(libos_core::syscall::Frame, pstate)
);

/// Called by the preempt trampoline, on the preempted thread's stack with IRQs masked, with
/// the copy of its interrupted registers: lets the scheduler switch away and, when this thread
/// is resumed after an interrupt in Linux code while return work is outstanding, runs the
/// system-call return hook on the interrupted state (libos-core's `syscall` docs: a signal for
/// a thread that makes no system calls). The FP/SIMD registers hold the interrupted values
/// then (the switch routine restored them; the kernel never changes them).
#[unsafe(no_mangle)]
extern "C" fn libos_aarch64_preempted(interrupted: *mut TrapFrame) {
    libos_core::hal::irq::preempt();
    if !libos_core::syscall::return_work_outstanding() || !crate::syscall::interrupted_linux_code() {
        return;
    }
    if let Some(hook) = crate::syscall::return_hook() {
        // SAFETY: `redirect_to_preempt` copied the frame there, on this thread's stack; the
        // trampoline loads it after this returns and nothing else refers to it. Its first
        // 272 bytes are laid out as a system-call `Frame` (x0-x30, sp, pc, pstate: both
        // layouts are fixed by the assembly, see libos-core's frame_aarch64.rs).
        let frame = unsafe { &mut *interrupted.cast::<libos_core::syscall::Frame>() };
        hook(frame);
    }
}

/// Writes a new thread's first switch frame of `frame_bytes` ([`SWITCH_FRAME`] or
/// [`USER_STATE_SWITCH_FRAME`]) below `stack_top`; returns its stack pointer. Everything but
/// `x19`/`x20`/`x30` starts zero (`x29` = 0 ends backtraces; FPCR 0 = round to nearest;
/// thread pointer 0).
///
/// # Safety
/// `stack_top` is 16-byte aligned and the top of writable memory of at least `frame_bytes`
/// that no one else uses.
pub unsafe fn init(stack_top: usize, entry: extern "C" fn(usize) -> !, arg: usize, frame_bytes: usize) -> usize {
    let sp = stack_top - frame_bytes;
    // SAFETY: the caller guarantees the bytes below `stack_top` are writable and unused.
    unsafe { core::ptr::write_bytes(sp as *mut u8, 0, frame_bytes) };
    let head = [entry as usize, arg]; // x19, x20
    // SAFETY: as above; both writes are inside the frame (at least 96 bytes).
    unsafe {
        core::ptr::write(sp as *mut [usize; 2], head);
        core::ptr::write((sp + 88) as *mut usize, libos_aarch64_thread_start as *const () as usize); // x30
    }
    sp
}

/// The switch routine ([`libos_core::hal::SwitchRoutine`]): the assembly saves and restores
/// exactly the AAPCS64 callee-saved general registers, and refuses to run on the exception
/// stack.
pub const SWITCH: libos_core::hal::SwitchRoutine = libos_aarch64_switch_context;

/// The switch routine that also keeps Linux code's FP/SIMD state and TPIDR_EL0 per thread
/// (images with posix-shim; see the module docs).
pub const SWITCH_WITH_USER_STATE: libos_core::hal::SwitchRoutine = libos_aarch64_switch_context_tp;

unsafe extern "C" {
    fn libos_aarch64_save_fp(area: *mut u8);
    fn libos_aarch64_restore_fp(area: *const u8);
}

/// Bytes of [`save_fp`]'s area: fpsr, fpcr (4 each), v0-v31.
pub const FP_STATE_SIZE: usize = 8 + 32 * 16;

// The user-state switch frame ends with a save_fp area at 120 (see the assembly).
const _: () = assert!(120 + FP_STATE_SIZE == USER_STATE_SWITCH_FRAME);

/// Saves FPSR, FPCR and v0-v31 (the body of Linux's `fpsimd_context`).
///
/// # Safety
/// `area` is valid for writes of [`FP_STATE_SIZE`] bytes and 8-byte aligned.
pub unsafe fn save_fp(area: *mut u8) {
    // SAFETY: the caller's contract; the routine writes exactly FP_STATE_SIZE bytes.
    unsafe { libos_aarch64_save_fp(area) }
}

/// Loads the state [`save_fp`] wrote (or a program edited: every FPSR/FPCR value is accepted,
/// reserved bits are ignored by the CPU).
///
/// # Safety
/// `area` is valid for reads of [`FP_STATE_SIZE`] bytes and 8-byte aligned.
pub unsafe fn restore_fp(area: *const u8) {
    // SAFETY: the caller's contract; the routine reads exactly FP_STATE_SIZE bytes.
    unsafe { libos_aarch64_restore_fp(area) }
}

/// Called by the switch routine when it finds itself on SP_EL1: there the "stack" is the shared
/// exception stack, so this is a scheduler bug, never a switch.
#[unsafe(no_mangle)]
extern "C" fn libos_aarch64_switch_from_exception() -> ! {
    panic!("libos: a thread switch from an exception handler");
}

/// Bytes below SP_EL0 the copy leaves alone. AAPCS64 (Linux) has no red zone, but other
/// aarch64 ABIs do (128 bytes), and skipping it costs nothing; it also keeps the `red-zone`
/// check of the `threads` app meaningful on both architectures.
const RED_ZONE: u64 = 128;

/// SPSR.I: IRQs masked.
const SPSR_IRQ_MASKED: u64 = 1 << 7;

/// Makes the return from this IRQ (taken in EL1t) run the preempt trampoline on the
/// interrupted thread's stack, with `frame` copied there. Returns false (and changes nothing)
/// when the thread's stack pointer is misaligned, which compiled code never leaves it.
pub fn redirect_to_preempt(frame: &mut TrapFrame) -> bool {
    let size = size_of::<TrapFrame>() as u64;
    if frame.sp_el0 % 16 != 0 || frame.sp_el0 < size + RED_ZONE + 4096 {
        return false;
    }
    let copy = frame.sp_el0 - RED_ZONE - size;
    // SAFETY: the interrupted thread's stack extends below its SP_EL0 and the red zone (nothing
    // lives there), `copy` is 16-byte aligned, and `frame` is on the separate exception stack,
    // so the two do not overlap. Running into the guard page faults and is reported as a
    // nested exception, never silent corruption.
    unsafe { core::ptr::copy_nonoverlapping(frame as *const TrapFrame, copy as *mut TrapFrame, 1) };
    frame.sp_el0 = copy;
    frame.elr = libos_aarch64_preempt_trampoline as *const () as u64;
    frame.spsr |= SPSR_IRQ_MASKED;
    true
}
