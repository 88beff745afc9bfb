//! # libos-core: the primitives every libos crate shares
//!
//! This crate sits below everything else in libos. It holds what would otherwise be defined twice
//! or would force a lower crate to depend on a higher one:
//!
//! - [`Errno`] and [`Result`]: the one error type of the system, with Linux numbers, so the C shim
//!   can hand errors to C code unchanged.
//! - [`hal`]: the platform boundary. A platform crate (`platform/x86_64`, ...) implements
//!   [`hal::Platform`] and registers it at boot; everything above calls [`hal::platform()`].
//!   It also carries the [`hal::BootInfo`] a platform hands to the kernel, and the interrupt hooks.
//! - [`time`]: [`time::Instant`], the monotonic clock since boot, in nanoseconds;
//!   [`time::SystemTime`], the wall clock, carried forward from one real-time clock reading.
//! - [`interrupts`]: masking interrupts on the running CPU (inline; the lock and switch paths).
//! - [`sync`]: spin locks, and [`sync::IrqSpinLock`] that also masks interrupts while held.
//! - [`logger`]: the `log` backend, writing to the platform console.
//! - [`heap`]: the kernel heap (`talc`), installed as the global allocator on bare-metal targets.
//! - [`exit`]: the exit codes the kernel itself uses (panic, fatal exception, boot error).
//! - [`sched`]: the scheduler hook (park/unpark/yield) a scheduler registers at boot, with a
//!   halt-until-interrupt fallback; [`blocking`]: wait queues, `Mutex`, `Condvar`, `Semaphore`,
//!   `Once` and `Event` built on it, for every crate (drivers never depend on `libos-sched`).
//! - [`random`]: the kernel's CSPRNG (ChaCha20) and its entropy sources (CPU instruction,
//!   virtio-rng); what `getrandom`, `/dev/urandom` and TCP sequence numbers take bytes from.
//! - [`cpus`]: the machine's CPUs, which are online, and the bring-up sequence the platforms
//!   share (start each, wait with a timeout, go on without one that never answers).
//! - [`device`]: the devices the platform discovered (virtio-mmio windows, PCIe hosts) and the
//!   hook that routes device interrupts to driver handlers.
//!
//! Users: every other libos crate. Apps use it through `libos`, which re-exports what they need.
#![cfg_attr(not(any(test, feature = "testing")), no_std)]

extern crate alloc;

pub mod blocking;
pub mod backtrace;
pub mod console;
pub mod cpus;
pub mod device;
pub mod errno;
pub mod exit;
pub mod fault;
pub mod hal;
pub mod heap;
pub mod idle;
pub mod interrupts;
pub mod layout;
pub mod logger;
pub mod memory;
pub mod random;
pub mod regcheck;
pub mod sched;
pub mod sync;
pub mod syscall;
pub mod time;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use errno::{Errno, Result};
