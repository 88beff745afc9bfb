//! # libos: a library operating system you link into your app
//!
//! An app is a `no_std` binary that depends on this crate and names its entry function with
//! [`main!`]:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use libos::println;
//!
//! libos::main!(main);
//!
//! fn main() -> i32 {
//!     println!("hello from {}", libos::platform_name());
//!     0
//! }
//! ```
//!
//! `./x run APP` builds it with the platform crate for the target architecture into one bootable
//! image. At boot this crate runs the sequence it owns ([`boot`]): platform init, heap, kernel
//! command line, then the app's `main`, whose return value becomes the VM's exit code.
//!
//! Components (file systems, network, schedulers) are Cargo features of this crate, one
//! optional dependency each, so an image holds only what its app asked for:
//!
//! | feature | component |
//! |---|---|
//! | `sched-coop` | `libos-sched` with the cooperative FIFO policy (`sched=coop`) |
//! | `sched-preempt` | `libos-sched` with the preemptive round-robin policy (`sched=rr`) |
//! | `net` | `libos-net`: virtio-net, TCP/IP, `libos::net` sockets (`ip=`, `ip6=`, `tcp_buffer=`) |
//!
//! With both scheduler features the kernel command line picks (`sched=coop|rr`, default `rr`).
//!
//! The API mirrors `std` where it can: [`println!`], [`env::args`], [`time::Instant`],
//! [`time::SystemTime`] (the wall clock, from the machine's real-time clock),
//! [`process::exit`], `libos::fs` (features `vfs`, `fs-ramfs`: `File`, `OpenOptions`,
//! `read_dir`, ...), and `alloc` collections through the kernel heap.
#![cfg_attr(not(test), no_std)]

#[cfg(all(feature = "processes", not(any(feature = "sched-coop", feature = "sched-preempt"))))]
compile_error!("feature `processes` needs a scheduler (`sched-coop` or `sched-preempt`): the control channel's reader is a thread");

extern crate alloc;

#[cfg(feature = "blk")]
pub mod block;
mod boot_stats;
pub mod cmdline;
#[cfg(feature = "processes")]
pub mod control;
pub mod env;
#[cfg(feature = "vfs")]
pub mod etc;
#[cfg(feature = "vfs")]
pub mod fs;
#[cfg(feature = "net")]
pub mod net;
pub mod process;
pub mod rt;
pub mod time;
#[cfg(feature = "fs-virtiofs")]
pub mod virtiofs;

/// Threads (features `sched-coop` / `sched-preempt`): `spawn`, `join`, `sleep`, `yield_now`,
/// `current`, [`thread::Builder`], thread-local [`thread::tls::Key`]s. See `libos-sched`.
#[cfg(any(feature = "sched-coop", feature = "sched-preempt"))]
pub mod thread {
    pub use libos_sched::thread::*;
    pub use libos_sched::{Priority, current_stack_bounds, policy_name, switch_count};
    /// Thread-local storage keys.
    pub mod tls {
        pub use libos_sched::tls::Key;
    }
}

/// Blocking synchronisation: `Mutex`, `Condvar`, `Semaphore`, `Once`, `Event`, `WaitQueue`.
/// With a scheduler feature a waiting thread yields the CPU; without one the CPU halts until an
/// interrupt (the same code works in both images).
pub mod sync {
    pub use libos_core::blocking::{Condvar, Event, Mutex, MutexGuard, Once, Semaphore, WaitQueue};
    /// Parking: the running thread's id, parking it (until `unpark`, or a deadline; both may
    /// return early), waking a parked thread (a [`WaitQueue`] waiter re-checks its condition
    /// when woken this way), and `wake_by`: moving a parked thread's wake-up earlier without
    /// waking it now; `kick`: interrupting a thread that runs on another CPU, so that it sees
    /// work posted for it.
    pub use libos_core::sched::{ThreadId, current as current_thread, kick, park, park_until, unpark, wake_by};
    /// A spin lock that masks interrupts while held: for state read inside wait conditions
    /// and interrupt handlers.
    pub use libos_core::sync::{IrqSpinLock, IrqSpinLockGuard};
}

#[cfg(target_os = "none")]
mod boot;
pub mod random;

pub use libos_core::errno::{Errno, Result};
/// Low-level access to the platform boundary (timers, interrupts); most apps never need it.
pub use libos_core::hal;
pub use libos_core::heap::{HeapStats, stats as heap_stats};
pub use libos_core::{console, cpus, exit, fault, idle, regcheck};

/// The Linux system-call boundary (feature `syscalls`, for posix-shim): the trap's register
/// [`syscall::Frame`], the handler type, and the platform's [`syscall::UserEntry`].
#[cfg(feature = "syscalls")]
pub use libos_core::syscall;

/// The name of the platform the image runs on, e.g. `"x86_64 PVH"`.
pub fn platform_name() -> &'static str {
    hal::try_platform().map_or("host", |p| p.name())
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

/// Prints to the console, with a newline.
#[macro_export]
macro_rules! println {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Declares the app's entry function: `fn main() -> T` where `T` is `()`, an `i32` exit code,
/// or a `Result<(), E: Debug>`.
///
/// With `initial_files = BYTES`, boot unpacks that `newc` cpio archive into `/` before `main`
/// (needs a file system feature, e.g. `fs-ramfs`). An app's build script typically makes the
/// archive from a directory with `libos_vfs::cpio::Builder` and the app embeds it:
///
/// ```ignore
/// libos::main!(main, initial_files = include_bytes!(concat!(env!("OUT_DIR"), "/rootfs.cpio")));
/// ```
///
/// This defines the one symbol libos finds the app by; use it once per app.
#[macro_export]
macro_rules! main {
    ($main:path) => {
        $crate::main!($main, initial_files = &[]);
    };
    ($main:path, initial_files = $files:expr) => {
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        static __LIBOS_APP: $crate::rt::App = $crate::rt::App {
            name: env!("CARGO_PKG_NAME"),
            main: || $crate::rt::Termination::report($main()),
            initial_files: $files,
        };
    };
}
