//! Thread context switch and preemption support for the scheduler.
//!
//! - **Cooperative switch** ([`SWITCH`]): saves the AAPCS64 callee-saved state on the current
//!   stack (SP_EL0: threads run in EL1t): `x19`-`x30`, `d8`-`d15` (the callee-saved low halves
//!   of `v8`-`v15`) and FPCR; stores `sp`, loads the other thread's and restores. The
//!   caller-saved FP/SIMD registers are dead at a call, so this is all a cooperative switch
//!   needs. Interrupts stay masked across it (the caller's contract).
//! - **Preemption**: exceptions run on SP_EL1 with the full register frame (all `x`, all 32
//!   `q`, FPCR, FPSR) on that shared exception stack, so we cannot switch threads inside the
//!   handler. Instead, when the scheduler asked for preemption, [`redirect_to_preempt`] copies
//!   the interrupted thread's frame onto *its own* stack (below its SP_EL0 and a 128-byte red
//!   zone) and makes the
//!   `eret` land in `libos_aarch64_preempt_trampoline` in EL1t with IRQs masked. The trampoline
//!   calls [`libos_core::hal::irq::preempt`] (the scheduler switches away cooperatively from
//!   there); when the thread is resumed, it reloads every saved register (including all vector
//!   registers, FPCR and FPSR, so FP/SIMD state is exact) from the copy, including ELR/SPSR,
//!   and `eret`s to the interrupted instruction.
//! - **New threads** ([`init`]): a switch frame whose `x30` is `libos_aarch64_thread_start`,
//!   which calls `entry(arg)` with a zero frame pointer.

use crate::exceptions::TrapFrame;
use core::arch::global_asm;

/// Bytes [`switch`] keeps on the stack: x19-x30 (96), d8-d15 (64), FPCR + padding (16).
const SWITCH_FRAME: usize = 176;

global_asm!(
    r#"
    .section .text.context, "ax"
    .balign 4
    .global libos_aarch64_switch_context
libos_aarch64_switch_context:
    mrs     x9, spsel
    cbnz    x9, 9f                  /* on the exception stack: never switch from there */
    sub     sp, sp, #176
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     d8, d9, [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mrs     x9, fpcr
    str     x9, [sp, #160]
    mov     x9, sp
    str     x9, [x0]
    mov     sp, x1
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8, d9, [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    ldr     x9, [sp, #160]
    msr     fpcr, x9
    add     sp, sp, #176
    ret
9:  bl      libos_aarch64_switch_from_exception

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
    ldr     x30, [sp, #240]
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
    add     sp, sp, #{frame_and_red_zone}   /* back to the interrupted SP_EL0 */
    eret
"#,
    frame_and_red_zone = const size_of::<TrapFrame>() + RED_ZONE as usize,
);

unsafe extern "C" {
    fn libos_aarch64_switch_context(save_sp: *mut usize, load_sp: usize);
    fn libos_aarch64_thread_start();
    fn libos_aarch64_preempt_trampoline();
}

/// Called by the preempt trampoline, on the preempted thread's stack with IRQs masked.
#[unsafe(no_mangle)]
extern "C" fn libos_aarch64_preempted() {
    libos_core::hal::irq::preempt();
}

/// Writes a new thread's first switch frame below `stack_top`; returns its stack pointer.
///
/// # Safety
/// `stack_top` is 16-byte aligned and the top of writable memory of at least 176 bytes that no
/// one else uses.
pub unsafe fn init(stack_top: usize, entry: extern "C" fn(usize) -> !, arg: usize) -> usize {
    let sp = stack_top - SWITCH_FRAME;
    let mut frame = [0usize; SWITCH_FRAME / 8];
    frame[0] = entry as usize; // x19
    frame[1] = arg; // x20
    frame[11] = libos_aarch64_thread_start as *const () as usize; // x30; x29 = 0; d8-d15 = 0; FPCR = 0
    // SAFETY: the caller guarantees the bytes below `stack_top` are writable and unused.
    unsafe { core::ptr::write(sp as *mut [usize; SWITCH_FRAME / 8], frame) };
    sp
}

/// The switch routine ([`libos_core::hal::SwitchRoutine`]): the assembly saves and restores
/// exactly the AAPCS64 callee-saved state plus FPCR, and refuses to run on the exception stack.
pub const SWITCH: libos_core::hal::SwitchRoutine = libos_aarch64_switch_context;

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
