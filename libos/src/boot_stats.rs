//! Boot statistics: the counter at the image's first instruction, at the app's `main` and at
//! exit. With the `bootstats` kernel option they are printed as `[boot-stats]` lines, which
//! `./x run --boot-stats` and `./x bench boot` read.
//!
//! Values are raw counter ticks (TSC, generic timer): under QEMU `-icount shift=0` these are
//! deterministic, and on x86_64 they equal guest instructions. Converting them to time needs the
//! counter's frequency, which may calibrate; the entry-to-main line is printed before that.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use libos_core::hal;
use libos_core::time::Instant;

static ENTRY: AtomicU64 = AtomicU64::new(0);
static MAIN: AtomicU64 = AtomicU64::new(0);
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Records the counter at entry (from the platform) and now (at `main`).
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn record_main(entry_counter: u64, print: bool) {
    let now = hal::platform().counter();
    ENTRY.store(entry_counter, Ordering::Relaxed);
    MAIN.store(now, Ordering::Relaxed);
    ENABLED.store(print, Ordering::Relaxed);
    if print {
        crate::println!("[boot-stats] entry-to-main ticks: {}", now.wrapping_sub(entry_counter));
    }
}

/// Prints the entry-to-exit figures when `bootstats` is on.
pub(crate) fn report_exit() {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let platform = hal::platform();
    let exit = platform.counter();
    let entry = ENTRY.load(Ordering::Relaxed);
    let main = MAIN.load(Ordering::Relaxed);
    crate::println!("[boot-stats] entry-to-exit ticks: {}", exit.wrapping_sub(entry));
    let ns = |ticks: u64| Instant::from_counter(ticks).as_nanos();
    crate::println!(
        "[boot-stats] counter: {} Hz; entry at {} ns, main at {} ns, exit at {} ns since counter start",
        platform.counter_frequency(),
        ns(entry),
        ns(main),
        ns(exit)
    );
}

/// The moment the image started.
pub(crate) fn entry() -> Instant {
    Instant::from_counter(ENTRY.load(Ordering::Relaxed))
}
