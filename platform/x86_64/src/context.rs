//! Thread context switch and preemption support for the scheduler.
//!
//! - **Cooperative switch** ([`SWITCH`]): pushes the System V callee-saved registers (`rbp`,
//!   `rbx`, `r12`-`r15`) on the current stack, stores `rsp`, loads the other thread's `rsp` and
//!   pops its registers. The return address is the saved `rip`. Interrupts stay masked across
//!   the switch (the caller's contract), so `rflags.IF` needs no saving.
//! - **Preemption**: the timer vector runs on the interrupted thread's own stack (IST 0), so
//!   the interrupt's full register frame (`TrapFrame`) is already on that stack. When the
//!   scheduler asked for preemption, `interrupts::libos_x86_64_trap` calls
//!   [`libos_core::hal::irq::preempt`] *before* returning: the scheduler does a cooperative
//!   switch from inside the handler, and when the thread is resumed the handler returns and
//!   `iretq` restores every register and `rflags`.
//! - **FP state**: the kernel target (`x86_64-unknown-none`) is soft-float: kernel and app code
//!   never touch x87/SSE/AVX registers, so there is no FP state to switch. Once C code compiled
//!   with SSE runs in threads (posix-shim), the preemption path must add `fxsave`/`xsave`.
//! - **New threads** ([`init`]): a fake switch frame whose return address is
//!   `libos_x86_64_thread_start`, which calls `entry(arg)` on a 16-byte aligned stack with a
//!   zero frame pointer (so backtraces end there).

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
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret

    /* The same, plus the FS base (Linux code's thread pointer, posix-shim) below the
     * callee-saved registers: for images with the system-call trap. */
    .global libos_x86_64_switch_context_tp
libos_x86_64_switch_context_tp:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movl $0xc0000100, %ecx
    rdmsr
    pushq %rdx
    pushq %rax
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    movl $0xc0000100, %ecx
    popq %rax
    popq %rdx
    wrmsr
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
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn libos_x86_64_switch_context(save_sp: *mut usize, load_sp: usize);
    fn libos_x86_64_switch_context_tp(save_sp: *mut usize, load_sp: usize);
    fn libos_x86_64_thread_start();
}

/// Words of the initial frame: r15, r14, r13 (entry), r12 (arg), rbx, rbp, return address,
/// and a zero "return address" above it that ends backtraces.
const FRAME_WORDS: usize = 8;

/// Writes a new thread's first switch frame below `stack_top`; returns its stack pointer.
///
/// # Safety
/// `stack_top` is 16-byte aligned and the top of writable memory of at least 64 bytes that no
/// one else uses.
pub unsafe fn init(stack_top: usize, entry: extern "C" fn(usize) -> !, arg: usize) -> usize {
    let sp = stack_top - FRAME_WORDS * 8;
    let frame: [usize; FRAME_WORDS] =
        [0, 0, entry as usize, arg, 0, 0, libos_x86_64_thread_start as *const () as usize, 0];
    // SAFETY: the caller guarantees the 64 bytes below `stack_top` are writable and unused.
    unsafe { core::ptr::write(sp as *mut [usize; FRAME_WORDS], frame) };
    sp
}

/// The switch routine ([`libos_core::hal::SwitchRoutine`]): the assembly saves and restores
/// exactly the callee-saved registers the System V ABI requires.
pub const SWITCH: libos_core::hal::SwitchRoutine = libos_x86_64_switch_context;

/// The switch routine that also keeps the FS base per thread (images with posix-shim).
pub const SWITCH_WITH_THREAD_POINTER: libos_core::hal::SwitchRoutine = libos_x86_64_switch_context_tp;

/// As [`init`], for [`SWITCH_WITH_THREAD_POINTER`]: the frame also holds an FS base of 0.
///
/// # Safety
/// As [`init`], with 80 bytes.
pub unsafe fn init_with_thread_pointer(stack_top: usize, entry: extern "C" fn(usize) -> !, arg: usize) -> usize {
    // SAFETY: forwarded contract; the two extra words below are the FS base (low, high).
    let sp = unsafe { init(stack_top, entry, arg) } - 16;
    // SAFETY: as above: still within the 80 bytes below `stack_top`.
    unsafe { core::ptr::write(sp as *mut [usize; 2], [0, 0]) };
    sp
}
