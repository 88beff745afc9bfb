//! # posix-shim: unmodified static Linux C programs on libos
//!
//! A C app is a Cargo package whose build script compiles unmodified C sources with musl's gcc
//! wrapper and links musl's static `libc.a` into the image (see `apps/c-hello`). At boot the
//! app's `main` ([`c_main!`]) calls [`run_c_program`], which
//!
//! 1. installs [`dispatch::dispatch`] as the system-call handler: the platform traps `syscall`
//!    (x86_64) and `svc #0` (aarch64), the instructions musl emits inline, and calls it with
//!    the caller's registers ([`libos::syscall::Frame`]); and [`dispatch::on_return`] as the
//!    return hook for the calls that need the whole register set (`clone`, `rt_sigreturn`, a
//!    signal to deliver: see `libos::syscall`);
//! 2. builds a Linux initial stack ([`start`]: argc, argv, envp, auxv with `AT_PHDR` pointing
//!    at a program header table that describes the image's TLS template, `AT_RANDOM`, ...)
//!    and enters musl's own `_start`, so TLS, stdio, `atexit` and exit codes behave as on Linux.
//!
//! The table ([`dispatch`]) speaks the Linux ABI of the image's architecture ([`abi`]): file
//! descriptors ([`fd`]; 0/1/2 are the console; one table shared by all threads; `ioctl`,
//! `fcntl` and `dup` in `control`), files over the VFS (feature `fs`/`ramfs`; disks as
//! `/dev/vda` with `blk`, ext2 mounts with `ext2`), memory ([`mem`]), time, process facts, signals delivered
//! as Linux delivers them, with real signal frames, `EINTR` or a restart (`SA_RESTART`) for
//! blocking calls, and timers that send them (`alarm`, `setitimer`, `timer_create`)
//! ([`signal`]), pipes, `eventfd`, `timerfd`, `poll`, `select` and `epoll` ([`events`]),
//! sockets ([`net`]: `AF_UNIX` always; TCP and UDP over `libos::net` with feature `net`), and
//! threads ([`thread`], feature `threads`: `clone`, `futex`).
//! Unknown numbers return `-ENOSYS` and log one line per number, never crash. Errors are
//! [`libos::Errno`]s until one helper ([`dispatch::to_return`]) turns them into `-errno`.
//!
//! The static ELF loader (feature `elf`, `run_elf_program`, used by `apps/elf-runner`) runs
//! an unmodified static Linux ELF file from the file system instead of a linked program:
//! [`elf`] checks it and plans the mapping (pure), `load` maps its segments at their linked
//! addresses (non-PIE) or at [`elf::PIE_BASE`] (static-PIE) with the platform's program pages
//! (`hal::Platform::map_pages`, W^X), and the same start-up as above enters its `_start` with
//! `AT_PHDR`/`AT_PHNUM`/`AT_ENTRY` of the loaded file. musl and glibc programs, both kinds, run
//! on both architectures. Devices reach the program's pages through the platform's
//! `virt_to_phys` (a `read` into its buffers is DMA). Not done: dynamically linked programs
//! (refused); faults in the program are the kernel's fatal-exception report rather than
//! `SIGSEGV`.
//!
//! Pointers from C code are checked where it is cheap ([`user`]): null, the unmapped first
//! page, overflow, and the end of the address space give `EFAULT`; a pointer into other mapped
//! kernel memory cannot be told apart and is used as given (one address space, no protection
//! between the program and the kernel: the unikernel trade-off).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

/// The libos crate this shim is built on (apps reach `libos::main!` through it).
pub use libos;

pub mod abi;
pub mod elf;
pub mod inflight;
pub mod ranges;
pub mod sockaddr;
pub mod start;
pub mod user;

#[cfg(all(target_os = "none", feature = "fs"))]
mod attrs;
#[cfg(target_os = "none")]
mod clocks;
#[cfg(target_os = "none")]
mod control;
#[cfg(target_os = "none")]
mod resources;
#[cfg(all(target_os = "none", feature = "fs"))]
mod creds;
#[cfg(target_os = "none")]
pub mod dispatch;
#[cfg(target_os = "none")]
pub mod events;
#[cfg(target_os = "none")]
pub mod fd;
#[cfg(target_os = "none")]
mod files;
#[cfg(all(target_os = "none", feature = "fs"))]
mod locks;
#[cfg(target_os = "none")]
pub mod mem;
#[cfg(all(target_os = "none", feature = "fs"))]
mod mounts;
#[cfg(target_os = "none")]
pub mod net;
#[cfg(target_os = "none")]
mod prctl;
#[cfg(all(target_os = "none", feature = "fs"))]
mod procview;
#[cfg(target_os = "none")]
pub mod process;
#[cfg(target_os = "none")]
mod shared_offset;
#[cfg(target_os = "none")]
pub mod signal;
#[cfg(target_os = "none")]
pub mod thread;
#[cfg(target_os = "none")]
mod run;
#[cfg(all(target_os = "none", feature = "elf"))]
pub mod load;
#[cfg(all(target_os = "none", feature = "elf"))]
mod exec;

// The restart rules of interrupted calls are pure: their unit tests run on the host too
// (the `signal` module itself is guest-only).
#[cfg(test)]
#[path = "signal/restart.rs"]
mod signal_restart;

#[cfg(target_os = "none")]
pub use run::run_c_program;
#[cfg(all(target_os = "none", feature = "elf"))]
pub use load::run_elf_program;

/// Declares a C app: its `main` is the C program's (linked from the app's build script), started
/// through musl's `_start` with the kernel command line's app arguments.
///
/// ```ignore
/// #![no_std]
/// #![no_main]
/// posix_shim::c_main!();
/// ```
///
/// `c_main!(initial_files = include_bytes!(...))` also unpacks a cpio archive into `/` at boot.
#[macro_export]
macro_rules! c_main {
    () => {
        $crate::c_main!(initial_files = &[]);
    };
    (initial_files = $files:expr) => {
        fn __posix_shim_main() -> i32 {
            $crate::run_c_program()
        }
        $crate::libos::main!(__posix_shim_main, initial_files = $files);
    };
}
