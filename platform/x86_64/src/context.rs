//! Thread context switch and preemption support for the scheduler.
//!
//! - **Cooperative switch** ([`SWITCH`]): pushes the System V callee-saved registers (`rbp`,
//!   `rbx`, `r12`-`r15`) and the callee-saved FP control words (MXCSR, x87 FCW: C code may
//!   change the rounding mode) on the current stack, stores `rsp`, loads the other thread's
//!   `rsp` and pops its state. The return address is the saved `rip`. Vector registers are
//!   caller-saved, so a voluntary switch (a function call) leaves them alone. Interrupts stay
//!   masked across the switch (the caller's contract), so `rflags.IF` needs no saving.
//! - **Preemption**: interrupts run on the shared interrupt stack (IST, src/interrupts.rs), so a
//!   thread cannot be switched out inside the handler. When the scheduler asked for preemption,
//!   [`redirect_to_preempt`] copies the interrupt's [`TrapFrame`] onto the interrupted thread's
//!   own stack, below its 128-byte red zone, saves the whole x87/SSE/AVX state next to it
//!   (src/fpu.rs: XSAVE or FXSAVE), and makes the `iretq` enter
//!   `libos_x86_64_preempt_trampoline` there with interrupts masked. The trampoline calls
//!   [`libos_core::hal::irq::preempt`] (the scheduler switches away cooperatively); when the
//!   thread is resumed it restores the FP state, pops every register from the copy and
//!   `iretq`s to the interrupted instruction (restoring `rsp`, so the red zone is untouched).
//!   If the thread was running Linux code and system-call return work is outstanding, the
//!   return hook first runs on the copy (libos-core's `syscall` docs: posix-shim delivers a
//!   signal there, so the `iretq` may enter a signal handler instead).
//!   The FP save is only on this path: kernel code (soft-float) never touches vector registers.
//! - **New threads** ([`init`]): a fake switch frame whose return address is
//!   `libos_x86_64_thread_start`, which calls `entry(arg)` on a 16-byte aligned stack with a
//!   zero frame pointer (so backtraces end there), with the default MXCSR and FCW.

use crate::fpu;
use crate::interrupts::TrapFrame;
use libos_core::syscall::Frame;
use core::arch::global_asm;

global_asm!(
    r#"
    .section .text.context, "ax"
    .global libos_x86_64_switch_context
libos_x86_64_switch_context:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret

    .global libos_x86_64_thread_start
libos_x86_64_thread_start:
    movq %r12, %rdi
    xorl %ebp, %ebp
    andq $-16, %rsp
    call *%r13
    ud2

    /* Entered by `iretq` from an interrupt handler (redirect_to_preempt) with interrupts
     * masked, on the preempted thread's stack: 0(%rsp) = the FP save area, 8(%rsp) = the copy
     * of the TrapFrame (src/interrupts.rs layout). Every general register still holds the
     * interrupted value (trap_common restored them), and the copy has them all. */
    .global libos_x86_64_preempt_trampoline
libos_x86_64_preempt_trampoline:
    movq (%rsp), %rdi
    movq 8(%rsp), %rsi
    call libos_x86_64_preempted
    movq 8(%rsp), %rsp
    popq %rax
    popq %rbx
    popq %rcx
    popq %rdx
    popq %rsi
    popq %rdi
    popq %rbp
    popq %r8
    popq %r9
    popq %r10
    popq %r11
    popq %r12
    popq %r13
    popq %r14
    popq %r15
    addq $16, %rsp                      /* vector and error code */
    iretq
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn libos_x86_64_switch_context(save_sp: *mut usize, load_sp: usize);
    fn libos_x86_64_thread_start();
    fn libos_x86_64_preempt_trampoline();
}

/// The switch routine ([`libos_core::hal::SwitchRoutine`]): the assembly saves and restores
/// exactly the callee-saved registers and FP control words the System V ABI requires.
pub const SWITCH: libos_core::hal::SwitchRoutine = libos_x86_64_switch_context;

/// Words of the initial frame: MXCSR + FCW, r15, r14, r13 (entry), r12 (arg), rbx, rbp,
/// return address, and a zero "return address" above it that ends backtraces.
const FRAME_WORDS: usize = 9;

/// Writes a new thread's first switch frame below `stack_top`; returns its stack pointer.
///
/// # Safety
/// `stack_top` is 16-byte aligned and the top of writable memory of at least 72 bytes that no
/// one else uses.
pub unsafe fn init(stack_top: usize, entry: extern "C" fn(usize) -> !, arg: usize) -> usize {
    let sp = stack_top - FRAME_WORDS * 8;
    let control = fpu::DEFAULT_MXCSR as usize | (fpu::DEFAULT_FCW as usize) << 32;
    let frame: [usize; FRAME_WORDS] =
        [control, 0, 0, entry as usize, arg, 0, 0, libos_x86_64_thread_start as *const () as usize, 0];
    // SAFETY: the caller guarantees the bytes below `stack_top` are writable and unused.
    unsafe { core::ptr::write(sp as *mut [usize; FRAME_WORDS], frame) };
    sp
}

/// Bytes below the stack pointer that System V code may use without moving it.
const RED_ZONE: u64 = 128;
/// RFLAGS.IF.
const INTERRUPT_FLAG: u64 = 1 << 9;

/// Called by the preempt trampoline, on the preempted thread's stack with interrupts masked:
/// lets the scheduler switch away, then (when this thread is resumed) restores its FP state
/// and, if it was interrupted in Linux code while return work is outstanding, runs the
/// system-call return hook on its interrupted state (libos-core's `syscall` docs: a signal
/// for a thread that makes no system calls).
#[unsafe(no_mangle)]
extern "C" fn libos_x86_64_preempted(fp_area: *const u8, interrupted: *mut TrapFrame) {
    libos_core::hal::irq::preempt();
    // SAFETY: `redirect_to_preempt` saved the state at `fp_area` on this thread's stack, below
    // everything the scheduler's switch pushed, and nothing else writes there.
    unsafe { fpu::restore(fp_area) };
    // SAFETY: `redirect_to_preempt` copied the frame there, on this thread's stack; the
    // trampoline loads it after this returns, and nothing else refers to it.
    let interrupted = unsafe { &mut *interrupted };
    if libos_core::syscall::return_work_outstanding() && crate::syscall::interrupted_linux_code(interrupted.rip) {
        if let Some(hook) = crate::syscall::return_hook() {
            let mut frame = frame_of(interrupted);
            hook(&mut frame);
            resume_from(interrupted, &frame);
        }
    }
}

/// The interrupted registers as the system-call [`Frame`] the return hook takes.
fn frame_of(t: &TrapFrame) -> Frame {
    Frame {
        rax: t.rax,
        rdi: t.rdi,
        rsi: t.rsi,
        rdx: t.rdx,
        r10: t.r10,
        r8: t.r8,
        r9: t.r9,
        rbp: t.rbp,
        rbx: t.rbx,
        r12: t.r12,
        r13: t.r13,
        r14: t.r14,
        r15: t.r15,
        rcx: t.rcx,
        r11: t.r11,
        rflags: t.rflags,
        rip: t.rip,
        rsp: t.rsp,
    }
}

/// Makes the trampoline resume with the registers of `f`.
fn resume_from(t: &mut TrapFrame, f: &Frame) {
    (t.rax, t.rdi, t.rsi, t.rdx, t.r10, t.r8, t.r9, t.rbp) = (f.rax, f.rdi, f.rsi, f.rdx, f.r10, f.r8, f.r9, f.rbp);
    (t.rbx, t.r12, t.r13, t.r14, t.r15, t.rcx, t.r11) = (f.rbx, f.r12, f.r13, f.r14, f.r15, f.rcx, f.r11);
    (t.rflags, t.rip, t.rsp) = (f.rflags, f.rip, f.rsp);
}

/// Makes the return from this interrupt (taken in kernel mode, on the interrupt stack) run the
/// preempt trampoline on the interrupted thread's stack: the frame is copied below the red zone,
/// the FP/SIMD state saved below it. Returns false (and changes nothing) when the frame cannot
/// be moved (a stack pointer too low to be real).
pub fn redirect_to_preempt(frame: &mut TrapFrame) -> bool {
    let frame_size = size_of::<TrapFrame>() as u64;
    let fp_size = fpu::area_size() as u64;
    let needed = RED_ZONE + frame_size + fp_size + fpu::AREA_ALIGN as u64 + 16;
    if frame.rsp < needed + 4096 {
        return false;
    }
    let copy = (frame.rsp - RED_ZONE - frame_size) & !15;
    let fp_area = (copy - fp_size) & !(fpu::AREA_ALIGN as u64 - 1);
    let sp = fp_area - 16;
    // SAFETY: all three writes go to the interrupted thread's stack below its red zone, where
    // nothing lives (the thread is stopped; the frame itself is on the separate interrupt
    // stack, so the copy does not overlap it); `fp_area` is aligned and `fp_size` long. Running
    // into the guard page faults (a report on the fault stack), never silent corruption.
    unsafe {
        core::ptr::copy_nonoverlapping(frame as *const TrapFrame, copy as *mut TrapFrame, 1);
        fpu::save(fp_area as *mut u8);
        core::ptr::write(sp as *mut [u64; 2], [fp_area, copy]);
    }
    frame.rsp = sp;
    frame.rip = libos_x86_64_preempt_trampoline as *const () as u64;
    frame.rflags &= !INTERRUPT_FLAG;
    true
}
