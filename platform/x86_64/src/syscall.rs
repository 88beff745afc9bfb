//! The `syscall` trap for Linux code running in ring 0, entering Linux code, and the FS base.
//!
//! **Entry** (`libos_x86_64_syscall_entry`, LSTAR): `syscall` in ring 0 leaves the stack pointer
//! alone, puts the return address in `rcx` and the flags in `r11`, and clears the flags in
//! FMASK (TF, DF, AC, NT; not IF: the caller's interrupt state carries into the handler, so a
//! long system call stays preemptible). Code compiled for Linux may keep live data in the
//! 128-byte red zone below `rsp` across the inline `syscall` (it is not a call), so the entry
//! first steps over the red zone, then pushes a [`Frame`] on the calling thread's own stack
//! (not a separate kernel stack: the handler may block and switch threads, and each thread's
//! frame must stay with it). The callee-saved registers (`rbx`, `r12`-`r15`) are not pushed:
//! the handler preserves them. Only a return with outstanding work (libos-core's `syscall`
//! docs) writes them into the frame (with `rcx`/`r11` as `sysret` leaves them), calls the
//! return hook and restores every register from the frame (`libos_x86_64_restore_all`, which
//! entering Linux code shares): through `iretq`, so that `rcx` and `r11` come back too (a
//! signal handler may have interrupted Linux code anywhere, not only at a `syscall`).
//!
//! **Linux code or kernel**: the entry clears the running CPU's "in Linux code" flag (in its
//! per-CPU block, `%gs:8`, see `smp`) and both exits set it, and [`switch_saving_user_state`]
//! keeps it per thread, so the preemption path knows whether an interrupted thread was running
//! Linux code ([`interrupted_linux_code`]; `syscall` leaves interrupts enabled, so the entry and
//! exit code itself, where the flag may not match yet, is recognised by its address).
//!
//! **Vector registers**: Linux preserves them across system calls, and compiled code keeps
//! values in them across the inline `syscall`. The kernel is built without SSE, so the handler
//! itself never touches them; the only way they change is a switch to another thread's C code
//! while the call blocks. So they are not saved on entry (a null system call stays cheap) but by
//! the context switch of images with this trap ([`switch_saving_user_state`], which saves the
//! x87/SSE/AVX state with XSAVE or FXSAVE, and the FS base, on the thread's own stack).
//!
//! **Return**: not `sysret` (that would drop to ring 3). The fast exit pops the registers, `popfq`
//! restores the caller's flags from the frame (the stack is still below the red zone, so an
//! interrupt taken right after is harmless), `pop %rsp` restores the caller's stack pointer
//! and `jmp *%rcx` resumes. `rcx` and `r11` hold the return address and flags afterwards, as
//! after a Linux `sysret`.
//!
//! **FS base**: Linux code's thread pointer, kept per thread by the same switch routine.

use core::arch::global_asm;
use core::sync::atomic::{AtomicPtr, Ordering};
use libos_core::syscall::{Frame, Handler, ReturnHook};
use x86_64::registers::model_specific::{Efer, EferFlags, Msr};

/// Read by the entry code: the registered handler (null until installed).
#[unsafe(no_mangle)]
static LIBOS_X86_64_SYSCALL_HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
/// Read by the entry code: the registered return hook (see libos-core's `syscall` docs).
#[unsafe(no_mangle)]
static LIBOS_X86_64_SYSCALL_RETURN_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_FMASK: u32 = 0xc000_0084;
const MSR_FS_BASE: u32 = 0xc000_0100;

/// Flags `syscall` clears: TF (0x100), DF (0x400), NT (0x4000), AC (0x40000).
const FMASK: u64 = 0x100 | 0x400 | 0x4000 | 0x40000;

global_asm!(
    r#"
    .section .text.syscall, "ax"
    .global libos_x86_64_syscall_text_start
libos_x86_64_syscall_text_start:
    .global libos_x86_64_syscall_entry
libos_x86_64_syscall_entry:
    movl $0, %gs:{in_linux_code}
    movq %rsp, -136(%rsp)           /* frame.rsp, in its slot below the caller's red zone */
    leaq -136(%rsp), %rsp           /* (interrupts use IST stacks: nothing lands below rsp) */
    pushq %rcx                      /* frame.rip */
    pushq %r11                      /* frame.rflags */
    subq $56, %rsp                  /* frame.rbx, r12-r15, rcx, r11: only for the return hook */
    pushq %rbp
    pushq %r9
    pushq %r8
    pushq %r10
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rax                      /* frame.rax: the number */
    movq %rsp, %rbp                 /* rbp: the frame (callee-saved in the handler) */
    andq $-16, %rsp
    movq %rbp, %rdi
    callq *LIBOS_X86_64_SYSCALL_HANDLER(%rip)
    cmpl $0, LIBOS_SYSCALL_RETURN_WORK(%rip)
    jne 2f
    leaq 8(%rbp), %rsp              /* drop the number; rax is the result */
    popq %rdi
    popq %rsi
    popq %rdx
    popq %r10
    popq %r8
    popq %r9
    popq %rbp
    addq $56, %rsp                  /* rbx, r12-r15: the handler preserved them; rcx, r11 */
    movl $1, %gs:{in_linux_code}
    popfq
    popq %rcx
    popq %rsp
    jmpq *%rcx

    /* Return work: the handler preserved rbx and r12-r15, so they still hold the caller's
     * values; complete the frame with them, the result, and rcx/r11 as `sysret` would leave
     * them (the return address and flags), call the hook, restore it all. */
2:  movq %rax, 0(%rbp)
    movq %rbx, 64(%rbp)
    movq %r12, 72(%rbp)
    movq %r13, 80(%rbp)
    movq %r14, 88(%rbp)
    movq %r15, 96(%rbp)
    movq 128(%rbp), %rax
    movq %rax, 104(%rbp)
    movq 120(%rbp), %rax
    movq %rax, 112(%rbp)
    movq %rbp, %rdi
    callq *LIBOS_X86_64_SYSCALL_RETURN_HOOK(%rip)
    movq %rbp, %rsp

    /* libos_x86_64_restore_all: rsp points at a complete frame; load every register of it,
     * rcx and r11 included, then `iretq` through a frame built from its rflags, rip and rsp
     * below them (still below the target's red zone; `push` of a memory operand addresses it
     * before moving rsp): every register comes back, and rsp and the flags atomically. */
libos_x86_64_restore_all:
    popq %rax
    popq %rdi
    popq %rsi
    popq %rdx
    popq %r10
    popq %r8
    popq %r9
    popq %rbp
    popq %rbx
    popq %r12
    popq %r13
    popq %r14
    popq %r15
    popq %rcx
    popq %r11                       /* rsp: the frame's rflags, rip, rsp above */
    pushq ${data}                   /* ss */
    pushq 24(%rsp)                  /* rsp */
    pushq 16(%rsp)                  /* rflags */
    pushq ${code}                   /* cs */
    pushq 40(%rsp)                  /* rip */
    movl $1, %gs:{in_linux_code}
    iretq

    /* libos_x86_64_enter(frame): load every register of a Frame and jump to its rip. The
     * frame is popped where it lies (the caller's stack below it is free: it never returns). */
    .global libos_x86_64_enter
libos_x86_64_enter:
    movq %rdi, %rsp
    jmp libos_x86_64_restore_all
    .global libos_x86_64_syscall_text_end
libos_x86_64_syscall_text_end:
"#,
    code = const crate::gdt::KERNEL_CODE,
    data = const crate::gdt::KERNEL_DATA,
    in_linux_code = const crate::smp::IN_LINUX_CODE,
    options(att_syntax)
);

unsafe extern "C" {
    fn libos_x86_64_syscall_entry();
    fn libos_x86_64_enter(frame: *const Frame) -> !;
    static libos_x86_64_syscall_text_start: u8;
    static libos_x86_64_syscall_text_end: u8;
}

/// Whether `pc` lies in the trap's own entry and exit code, where the registers are half
/// saved or half restored and the CPU's "in Linux code" flag may not match yet (`syscall`
/// leaves interrupts enabled, so an interrupt can arrive there).
pub fn in_trap_code(pc: u64) -> bool {
    let start = (&raw const libos_x86_64_syscall_text_start) as u64;
    let end = (&raw const libos_x86_64_syscall_text_end) as u64;
    (start..end).contains(&pc)
}

/// Whether the running thread was in Linux code, outside the trap, when it was interrupted at
/// `pc`: the return hook may then act on its interrupted state (libos-core's `syscall` docs).
pub fn interrupted_linux_code(pc: u64) -> bool {
    crate::smp::in_linux_code() != 0 && !in_trap_code(pc)
}

/// The registered return hook, if any.
pub fn return_hook() -> Option<ReturnHook> {
    let hook = LIBOS_X86_64_SYSCALL_RETURN_HOOK.load(Ordering::Acquire);
    // SAFETY: the only non-null value ever stored is a `ReturnHook` (`install`).
    (!hook.is_null()).then(|| unsafe { core::mem::transmute::<*mut (), ReturnHook>(hook) })
}

/// Turns on the `syscall` instruction (EFER.SCE) with our entry (SSE is on since boot,
/// `fpu::init`).
pub fn install(handler: Handler, on_return: ReturnHook) {
    assert!(crate::fpu::area_size() <= MAX_FP_AREA, "the CPU's XSAVE area exceeds {MAX_FP_AREA} bytes");
    LIBOS_X86_64_SYSCALL_HANDLER.store(handler as *mut (), Ordering::Release);
    LIBOS_X86_64_SYSCALL_RETURN_HOOK.store(on_return as *mut (), Ordering::Release);
    // The MSRs are per CPU, and Linux code's threads may run on any CPU.
    let online = libos_core::cpus::online();
    if let Err(e) = libos_core::cpus::run_on_each(online, &enable_on_this_cpu) {
        log::warn!("the system-call trap is not enabled on every CPU of {online:#b}: {e}");
    }
}

/// Points this CPU's `syscall` MSRs at the trap, once [`install`] has registered a handler
/// (secondary CPUs that start later call this too).
pub fn enable_on_this_cpu() {
    if LIBOS_X86_64_SYSCALL_HANDLER.load(Ordering::Acquire).is_null() {
        return;
    }
    // SAFETY: the MSRs written are the architectural syscall MSRs, pointing at our entry code
    // with the kernel code selector (0x08; SS = 0x10, the kernel data selector, as in gdt.rs).
    unsafe {
        Msr::new(MSR_STAR).write(0x08 << 32);
        Msr::new(MSR_LSTAR).write(libos_x86_64_syscall_entry as *const () as u64);
        Msr::new(MSR_FMASK).write(FMASK);
        Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS));
    }
}

/// The largest XSAVE area [`switch_saving_user_state`] keeps on a stack (x87, SSE, AVX and
/// AVX-512 state take 2696 bytes).
const MAX_FP_AREA: usize = libos_core::syscall::FP_STATE_MAX;

#[repr(C, align(64))]
struct FpArea([u8; MAX_FP_AREA]);

/// The switch routine of images with the `syscall` trap (see the module docs): around the
/// platform's routine it saves the FS base and the whole x87/SSE/AVX state on the stack of the
/// thread being switched out, and restores them when that thread runs again. A thread's first
/// run starts with the previous thread's values (posix-shim sets a new C thread's FS base
/// before entering its code; its vector registers hold nothing yet).
///
/// # Safety
/// As [`libos_core::hal::SwitchRoutine`].
pub unsafe extern "C" fn switch_saving_user_state(save_sp: *mut usize, load_sp: usize) {
    let fs_base = fs_base();
    // Whether this thread runs Linux code is its own: kept across the switch, and clear for a
    // thread that starts (it does not return here).
    let in_linux_code = crate::smp::in_linux_code();
    crate::smp::set_in_linux_code(0);
    let mut area = core::mem::MaybeUninit::<FpArea>::uninit();
    let area = area.as_mut_ptr().cast::<u8>();
    // SAFETY: `area` is 64-byte aligned and MAX_FP_AREA long, at least `fpu::area_size()`
    // (checked in `install`); the FPU was set up at boot.
    unsafe { crate::fpu::save(area) };
    // SAFETY: the caller upholds the switch routine's contract.
    unsafe { (crate::context::SWITCH)(save_sp, load_sp) };
    // SAFETY: this thread's state, saved above, on its own stack that nothing else touched.
    unsafe { crate::fpu::restore(area) };
    set_fs_base(fs_base);
    crate::smp::set_in_linux_code(in_linux_code);
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
