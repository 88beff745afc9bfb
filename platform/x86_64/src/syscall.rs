//! The `syscall` trap for Linux code running in ring 0, entering Linux code, and the FS base.
//!
//! **Entry** (`libos_x86_64_syscall_entry`, LSTAR): `syscall` in ring 0 leaves the stack pointer
//! alone, puts the return address in `rcx` and the flags in `r11`, and clears the flags in
//! FMASK (TF, DF, AC, NT; not IF: the caller's interrupt state carries into the handler, so a
//! long system call stays preemptible). Code compiled for Linux may keep live data in the
//! 128-byte red zone below `rsp` across the inline `syscall` (it is not a call), so the entry
//! first steps over the red zone, then pushes a [`Frame`] on the calling thread's own stack
//! (not a separate kernel stack: the handler may block and switch threads, and each thread's
//! frame must stay with it). It saves the SSE state (`fxsave64`, 512 bytes, 16-aligned) because
//! Linux preserves `xmm` registers across system calls and a blocking call may run another
//! thread's C code; the kernel itself is built without SSE, so nothing else touches them.
//!
//! **Return**: not `sysret` (that would drop to ring 3). The exit pops the registers, `popfq`
//! restores the caller's flags from the frame (the stack is still below the red zone, so an
//! interrupt taken right after is harmless), `pop %rsp` restores the caller's stack pointer
//! and `jmp *%rcx` resumes. `rcx` and `r11` hold the return address and flags afterwards, as
//! after a Linux `sysret`.
//!
//! **FS base**: Linux code's thread pointer. Images with the trap use the context switch that
//! saves and restores it per thread (`context.rs`, `SWITCH_WITH_THREAD_POINTER`).

use core::arch::global_asm;
use core::sync::atomic::{AtomicPtr, Ordering};
use libos_core::syscall::{Frame, Handler};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags, Msr};

/// Read by the entry code: the registered handler (null until installed).
#[unsafe(no_mangle)]
static LIBOS_X86_64_SYSCALL_HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_FMASK: u32 = 0xc000_0084;
const MSR_FS_BASE: u32 = 0xc000_0100;

/// Flags `syscall` clears: TF (0x100), DF (0x400), NT (0x4000), AC (0x40000).
const FMASK: u64 = 0x100 | 0x400 | 0x4000 | 0x40000;

global_asm!(
    r#"
    .section .text.syscall, "ax"
    .global libos_x86_64_syscall_entry
libos_x86_64_syscall_entry:
    leaq -128(%rsp), %rsp           /* step over the caller's red zone */
    pushq %rsp
    addq $128, (%rsp)               /* frame.rsp: the caller's stack pointer */
    pushq %rcx                      /* frame.rip */
    pushq %r11                      /* frame.rflags */
    pushq %r15
    pushq %r14
    pushq %r13
    pushq %r12
    pushq %rbp
    pushq %rbx
    pushq %r9
    pushq %r8
    pushq %r10
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rax                      /* frame.rax: the number */
    movq %rsp, %rbp                 /* rbp: the frame (callee-saved in the handler) */
    andq $-16, %rsp
    subq $512, %rsp
    fxsave64 (%rsp)
    movq %rbp, %rdi
    callq *LIBOS_X86_64_SYSCALL_HANDLER(%rip)
    fxrstor64 (%rsp)
    leaq 8(%rbp), %rsp              /* drop the number; rax is the result */
    .global libos_x86_64_syscall_exit
libos_x86_64_syscall_exit:
    popq %rdi
    popq %rsi
    popq %rdx
    popq %r10
    popq %r8
    popq %r9
    popq %rbx
    popq %rbp
    popq %r12
    popq %r13
    popq %r14
    popq %r15
    popfq
    popq %rcx
    popq %rsp
    jmpq *%rcx

    /* libos_x86_64_enter(frame): load every register of a Frame and jump to its rip. The
     * frame is popped where it lies (the caller's stack below it is free: it never returns). */
    .global libos_x86_64_enter
libos_x86_64_enter:
    movq %rdi, %rsp
    popq %rax
    jmp libos_x86_64_syscall_exit
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn libos_x86_64_syscall_entry();
    fn libos_x86_64_enter(frame: *const Frame) -> !;
}

/// Turns on SSE for Linux code (CR0.EM off, CR0.MP on, CR4.OSFXSR and OSXMMEXCPT on), then the
/// `syscall` instruction (EFER.SCE) with our entry.
pub fn install(handler: Handler) {
    LIBOS_X86_64_SYSCALL_HANDLER.store(handler as *mut (), Ordering::Release);
    // SAFETY: enabling SSE changes no state the kernel relies on (it is built without SSE);
    // the MSRs written are the architectural syscall MSRs, pointing at our entry code with
    // the kernel code selector (0x08; SS = 0x10, the kernel data selector, as in gdt.rs).
    unsafe {
        Cr0::update(|f| {
            f.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
            f.insert(Cr0Flags::MONITOR_COPROCESSOR);
        });
        Cr4::update(|f| f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
        Msr::new(MSR_STAR).write(0x08 << 32);
        Msr::new(MSR_LSTAR).write(libos_x86_64_syscall_entry as *const () as u64);
        Msr::new(MSR_FMASK).write(FMASK);
        Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS));
    }
}

/// Enters Linux code with `frame`'s registers.
///
/// # Safety
/// As [`libos_core::syscall::UserEntry::enter`].
pub unsafe fn enter(frame: &Frame) -> ! {
    // A copy on this thread's stack: the entry code pops it in place, and everything below it
    // is free because this call never returns.
    let copy = frame.clone();
    // SAFETY: the caller vouches for the frame's rip and rsp; `copy` stays valid while it is
    // popped (nothing else runs on this stack).
    unsafe { libos_x86_64_enter(&copy) }
}

/// Reads the FS base.
pub fn fs_base() -> u64 {
    // SAFETY: reading IA32_FS_BASE has no side effects.
    unsafe { Msr::new(MSR_FS_BASE).read() }
}

/// Writes the FS base.
pub fn set_fs_base(value: u64) {
    // SAFETY: the kernel does not use FS (kernel TLS uses explicit keys), so only Linux code
    // sees the change.
    unsafe { Msr::new(MSR_FS_BASE).write(value) };
}
