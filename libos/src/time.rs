//! Time: [`Instant`] (monotonic, nanoseconds since the machine started) and [`Duration`].

pub use core::time::Duration;
pub use libos_core::time::Instant;

/// Time since the machine started (the platform counter's origin).
pub fn since_boot() -> Duration {
    Instant::now().since_origin()
}

/// The moment the kernel image started executing (its first instruction).
pub fn kernel_entry() -> Instant {
    crate::boot_stats::entry()
}
