//! Idle-time accounting: how much of the monotonic counter passed with the CPU halted waiting
//! for an interrupt.
//!
//! Benchmarks under QEMU `-icount shift=0,sleep=off` read the counter as an instruction count,
//! except that a halted CPU's clock jumps to its next timer deadline. Subtracting the idle
//! ticks from a window gives the instructions the guest executed in it, whatever timers were
//! pending. The idle loops call [`enter`] right before halting; the first interrupt that ends
//! the halt calls [`leave`] (from [`crate::device::device_interrupt`] and
//! [`crate::hal::irq::timer_interrupt`]), so the handler's own work counts as busy.
//!
//! Only the boot CPU is accounted: icount runs (the only ones that read these ticks) use one
//! CPU, and other CPUs' halts must not end or extend the boot CPU's idle window.

use crate::hal;
use core::sync::atomic::{AtomicU64, Ordering};

/// Counter value when the CPU went idle; 0 while it runs.
static IDLE_SINCE: AtomicU64 = AtomicU64::new(0);
/// Counter ticks spent idle since boot.
static IDLE_TICKS: AtomicU64 = AtomicU64::new(0);

/// The CPU is about to halt until an interrupt.
pub fn enter() {
    if let Some(platform) = hal::try_platform().filter(|_| crate::cpus::current() == 0) {
        IDLE_SINCE.store(platform.counter().max(1), Ordering::Relaxed);
    }
}

/// The CPU runs again (an interrupt, or the halt returned). Cheap when it was not idle.
pub fn leave() {
    if IDLE_SINCE.load(Ordering::Relaxed) == 0 || crate::cpus::current() != 0 {
        return;
    }
    let since = IDLE_SINCE.swap(0, Ordering::Relaxed);
    if since != 0 {
        if let Some(platform) = hal::try_platform() {
            IDLE_TICKS.fetch_add(platform.counter().saturating_sub(since), Ordering::Relaxed);
        }
    }
}

/// Counter ticks spent halted since boot (see the module docs).
pub fn ticks() -> u64 {
    IDLE_TICKS.load(Ordering::Relaxed)
}
