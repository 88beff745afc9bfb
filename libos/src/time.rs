//! Time: [`Instant`] (monotonic, nanoseconds since the machine started), [`SystemTime`] (the
//! wall clock, UTC) and [`Duration`], as in `std::time`.
//!
//! The wall clock starts from the machine's real-time clock, read once at boot (x86_64: the
//! CMOS clock; aarch64: the PL031 the device tree names), or from the kernel option
//! `walltime=SECONDS`, which wins (for VMMs without a clock, such as Firecracker on x86_64).
//! With neither it counts from 1970-01-01 at machine reset, as the monotonic clock does, and
//! the boot logs that once (info level). Afterwards it advances with the monotonic clock, to
//! the nanosecond, and [`set_system_time`] steps it (C `clock_settime`). Real-time clocks
//! count whole seconds, so the wall clock starts up to a second behind. How it works:
//! `libos_core::time::system`.
//!
//! ```ignore
//! let since_1970 = libos::time::SystemTime::now().duration_since(libos::time::UNIX_EPOCH).unwrap();
//! libos::println!("{}", libos::time::DateTime::from_unix_seconds(since_1970.as_secs()));
//! ```

pub use core::time::Duration;
pub use libos_core::time::calendar::DateTime;
pub use libos_core::time::system::Source as WallClockSource;
pub use libos_core::time::{Instant, SystemTime, SystemTimeError, UNIX_EPOCH};
use libos_core::hal::{self, WallClockReading};
use libos_core::time::system;

/// Time since the machine started (the platform counter's origin).
pub fn since_boot() -> Duration {
    Instant::now().since_origin()
}

/// The moment the kernel image started executing (its first instruction).
pub fn kernel_entry() -> Instant {
    crate::boot_stats::entry()
}

/// Where the wall clock's time came from: the real-time clock, `walltime=`, or nowhere (it
/// counts from 1970 then).
pub fn wall_clock_source() -> WallClockSource {
    system::source()
}

/// Steps the wall clock so that it reads `now` from this moment on. Deadlines already set in
/// wall-clock time (a sleeping `clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME)`) keep the
/// instant they were converted to.
pub fn set_system_time(now: SystemTime) {
    system::set_now(now);
}

/// Starts the wall clock at boot: from `walltime=` when given, else from the platform's
/// real-time clock; logs when there is neither.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn start_wall_clock(wall_time_secs: Option<u64>) {
    let platform = hal::platform();
    if let Some(secs) = wall_time_secs {
        let reading = WallClockReading { unix_nanos: secs * 1_000_000_000, counter: platform.counter() };
        system::set_boot_reading(reading, WallClockSource::CommandLine);
        log::debug!("wall clock: {} UTC (walltime=)", DateTime::from_unix_seconds(secs));
        return;
    }
    match platform.read_wall_clock() {
        Some(reading) => system::set_boot_reading(reading, WallClockSource::RealTimeClock),
        None => log::info!(
            "no real-time clock: the wall clock counts from 1970-01-01 00:00:00 UTC at machine reset \
             (the kernel option walltime=SECONDS sets it)"
        ),
    }
}
