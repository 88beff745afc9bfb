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
//! [`UserEntry`] is the platform's side: install the trap, enter Linux code with a prepared
//! frame (program start, a new thread from `clone`), and the per-thread thread pointer that
//! Linux code uses for its TLS (x86_64 FS base, aarch64 `TPIDR_EL0`), which the platform's
//! context switch saves and restores (the composition root registers the platform's
//! thread-pointer-switching context switch in images with the trap).
//!
//! Users: the platforms implement [`UserEntry`]; `libos` registers it (feature `syscalls`);
//! posix-shim installs its handler and starts programs.

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

/// The platform's system-call trap and entry into Linux code.
pub trait UserEntry: Sync {
    /// Routes `syscall`/`svc #0` to `handler` from now on (and turns on what Linux code needs:
    /// SSE on x86_64).
    fn install(&self, handler: Handler);

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
}

static USER_ENTRY: Once<&'static dyn UserEntry> = Once::new();

/// Registers the platform's [`UserEntry`] (the composition root does, with feature `syscalls`).
pub fn set_user_entry(entry: &'static dyn UserEntry) {
    USER_ENTRY.call_once(|| entry);
}

/// The registered [`UserEntry`], if the image has one.
pub fn user_entry() -> Option<&'static dyn UserEntry> {
    USER_ENTRY.get().copied()
}
