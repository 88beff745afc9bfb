//! The Linux system-call boundary: how unmodified Linux code (static musl or glibc programs)
//! reaches the kernel in the same address space and privilege level.
//!
//! The platform traps the instruction Linux code uses to enter the kernel (`syscall` on x86_64,
//! `svc #0` on aarch64), saves the caller's registers as a [`Frame`] on the calling thread's
//! own stack, and calls the one registered [`Handler`] (posix-shim's dispatch table). The
//! handler's return value becomes the syscall's result register (`rax` / `x0`); every other
//! register comes back as Linux leaves it. Because the frame lives on the thread's stack, the
//! handler may block and switch threads.
//!
//! **Two ways back.** A system call is mostly a short trip, so the trap saves only what the
//! handler (compiled code following the platform ABI) may change: the argument and scratch
//! registers, the return address, flags and stack pointer. The callee-saved registers (x86_64
//! `rbx`, `r12`-`r15`; aarch64 `x19`-`x29`) stay in the CPU, preserved by the handler, and
//! their slots in the [`Frame`] the handler sees hold garbage. The FP/SIMD registers are not
//! saved at all: the kernel is built soft-float on both architectures, so it never touches
//! them (the context switch of images with the trap keeps them per thread).
//! Some returns need the whole caller state: `clone` (the child starts with the parent's
//! registers), `rt_sigreturn` (every register comes back from a signal frame), a signal to
//! deliver (the handler starts with a signal frame describing the interrupted state). For
//! those the handler calls [`request_return_work`]: while any request is outstanding, every
//! return first completes the frame (the callee-saved registers still hold the caller's
//! values there), calls the registered [`ReturnHook`] with it, and then restores **every**
//! register from the frame, so the hook may redirect the return anywhere. The hook calls
//! [`return_work_done`] for each request it settles. The fast path pays one load and branch
//! for this.
//!
//! **Interrupted Linux code.** The same hook also runs, while requests are outstanding, when
//! a thread that an interrupt preempted in Linux code (not inside a system call) resumes:
//! the platform passes the complete interrupted state as a [`Frame`] and resumes from it, so
//! a signal reaches a thread that never makes a system call. The platform knows a thread runs
//! Linux code by a flag of the running CPU (in its per-CPU block), which its trap clears on
//! entry and sets on the way back (and entering Linux code sets), and which its context switch
//! keeps per thread (a new thread starts with it clear).
//!
//! [`UserEntry`] is the platform's side: install the trap, enter Linux code with a prepared
//! frame (program start, a new thread from `clone`), and the per-thread thread pointer that
//! Linux code uses for its TLS (x86_64 FS base, aarch64 `TPIDR_EL0`), which the platform's
//! context switch saves and restores (the composition root registers the platform's
//! thread-pointer-switching context switch in images with the trap).
//!
//! Users: the platforms implement [`UserEntry`]; `libos` registers it (feature `syscalls`);
//! posix-shim installs its handler and starts programs.

use core::sync::atomic::{AtomicU32, Ordering};
use spin::Once;

#[cfg(target_arch = "aarch64")]
mod frame_aarch64;
#[cfg(target_arch = "aarch64")]
pub use frame_aarch64::Frame;
#[cfg(not(target_arch = "aarch64"))]
mod frame_x86_64;
#[cfg(not(target_arch = "aarch64"))]
pub use frame_x86_64::Frame;

/// The dispatch function the trap calls: returns the value of the result register (a negative
/// `-errno` on failure, as Linux does). It may modify the frame (e.g. `rt_sigreturn`).
pub type Handler = extern "C" fn(&mut Frame) -> isize;

/// Called at the return of a system call while return work is outstanding (see the module
/// docs) with the complete frame, the handler's result already in its result register. Every
/// register is restored from the frame afterwards.
pub type ReturnHook = extern "C" fn(&mut Frame);

/// Outstanding return-work requests; the platform's trap reads it after every handler.
#[unsafe(no_mangle)]
static LIBOS_SYSCALL_RETURN_WORK: AtomicU32 = AtomicU32::new(0);

/// Whether any [`request_return_work`] is outstanding.
pub fn return_work_outstanding() -> bool {
    LIBOS_SYSCALL_RETURN_WORK.load(Ordering::SeqCst) != 0
}

/// Asks for the [`ReturnHook`] at system-call returns, until [`return_work_done`] is called
/// as many times. Any thread's return may run the hook meanwhile, so the hook checks what the
/// returning thread itself has to do.
pub fn request_return_work() {
    LIBOS_SYSCALL_RETURN_WORK.fetch_add(1, Ordering::SeqCst);
}

/// Settles one [`request_return_work`].
pub fn return_work_done() {
    let previous = LIBOS_SYSCALL_RETURN_WORK.fetch_sub(1, Ordering::SeqCst);
    debug_assert!(previous > 0, "return_work_done without a request");
}

/// The platform's system-call trap and entry into Linux code.
pub trait UserEntry: Sync {
    /// Routes `syscall`/`svc #0` to `handler` from now on, with `on_return` for returns with
    /// outstanding work (and turns on what Linux code needs: SSE on x86_64).
    fn install(&self, handler: Handler, on_return: ReturnHook);

    /// Runs Linux code with the registers of `frame` (program counter, stack pointer,
    /// arguments); the thread never comes back here.
    ///
    /// # Safety
    /// `frame`'s program counter and stack pointer must point at code to run and a stack that
    /// stays alive as long as the code runs.
    unsafe fn enter(&self, frame: &Frame) -> !;

    /// Sets the calling thread's thread pointer (x86_64 FS base, aarch64 `TPIDR_EL0`).
    fn set_thread_pointer(&self, value: usize);

    /// The calling thread's thread pointer.
    fn thread_pointer(&self) -> usize;

    /// Bytes [`UserEntry::save_fp_state`] writes (at most [`FP_STATE_MAX`]).
    fn fp_state_size(&self) -> usize;

    /// Saves the FP/SIMD state of the Linux code running on this thread (which the kernel
    /// never changes, see the module docs), in the layout Linux signal frames carry:
    /// x86_64: the `XSAVE` image (its first 512 bytes are the `FXSAVE` legacy area, Linux's
    /// `struct _fpstate`); aarch64: the body of Linux's `fpsimd_context` after its 8-byte
    /// header: `fpsr` (u32), `fpcr` (u32), `v0`-`v31` (16 bytes each).
    ///
    /// # Safety
    /// `area` is valid for [`UserEntry::fp_state_size`] bytes and 64-byte aligned.
    unsafe fn save_fp_state(&self, area: *mut u8);

    /// Loads the FP/SIMD state from an area in [`UserEntry::save_fp_state`]'s layout. A state
    /// the CPU rejects (reserved bits set by a program that edited its signal frame) is
    /// sanitized, not faulted on.
    ///
    /// # Safety
    /// As for [`UserEntry::save_fp_state`].
    unsafe fn restore_fp_state(&self, area: *const u8);
}

/// The largest [`UserEntry::fp_state_size`] of any platform.
pub const FP_STATE_MAX: usize = 3072;

static USER_ENTRY: Once<&'static dyn UserEntry> = Once::new();

/// Registers the platform's [`UserEntry`] (the composition root does, with feature `syscalls`).
pub fn set_user_entry(entry: &'static dyn UserEntry) {
    USER_ENTRY.call_once(|| entry);
}

/// The registered [`UserEntry`], if the image has one.
pub fn user_entry() -> Option<&'static dyn UserEntry> {
    USER_ENTRY.get().copied()
}
