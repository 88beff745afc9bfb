//! Time: the monotonic clock [`Instant`], the wall clock [`SystemTime`] ([`system`]) and
//! calendar dates ([`calendar`]).
//!
//! [`Instant`] counts nanoseconds since the platform's counter started (machine reset), read
//! from [`crate::hal::Platform::counter`]. Converting counter ticks to nanoseconds happens on
//! every clock read, so it uses a multiply-and-shift ([`ClockScale`]) computed once from the
//! counter frequency instead of a division. The wall clock is this clock shifted to the time a
//! real-time clock showed at boot.

pub mod calendar;
pub mod system;

pub use system::{SystemTime, SystemTimeError, UNIX_EPOCH};

use crate::hal;
use core::ops::{Add, Sub};
use core::time::Duration;
use spin::Once;

/// A point in time: nanoseconds since the platform counter started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The counter's origin.
    pub const ZERO: Instant = Instant(0);

    /// The current time.
    pub fn now() -> Instant {
        Instant::from_counter(hal::platform().counter())
    }

    /// The time at which the counter read `ticks`.
    pub fn from_counter(ticks: u64) -> Instant {
        Instant(scale().ticks_to_nanos(ticks))
    }

    /// An instant `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant(nanos)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Time elapsed since `self`.
    pub fn elapsed(self) -> Duration {
        Instant::now().saturating_duration_since(self)
    }

    /// The duration since the origin.
    pub const fn since_origin(self) -> Duration {
        Duration::from_nanos(self.0)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        let nanos = u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(nanos))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

/// Converts counter ticks to nanoseconds as `(ticks * mult) >> shift`, exact to within one part
/// in 2^32 for any frequency between 1 kHz and 100 GHz.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockScale {
    mult: u64,
    shift: u32,
}

impl ClockScale {
    const SHIFT: u32 = 32;

    /// The scale for a counter running at `hz` ticks per second (`hz` > 0).
    pub const fn from_frequency(hz: u64) -> ClockScale {
        let hz = if hz == 0 { 1 } else { hz };
        let mult = ((1_000_000_000u128 << Self::SHIFT) / hz as u128) as u64;
        ClockScale { mult, shift: Self::SHIFT }
    }

    /// `ticks` converted to nanoseconds.
    pub const fn ticks_to_nanos(self, ticks: u64) -> u64 {
        let nanos = (ticks as u128 * self.mult as u128) >> self.shift;
        if nanos > u64::MAX as u128 { u64::MAX } else { nanos as u64 }
    }

    /// `nanos` converted to ticks (rounded down).
    pub const fn nanos_to_ticks(self, nanos: u64) -> u64 {
        let ticks = ((nanos as u128) << self.shift) / self.mult as u128;
        if ticks > u64::MAX as u128 { u64::MAX } else { ticks as u64 }
    }
}

static SCALE: Once<ClockScale> = Once::new();

/// The scale of the registered platform's counter (asks the platform once).
pub fn scale() -> ClockScale {
    *SCALE.call_once(|| ClockScale::from_frequency(hal::platform().counter_frequency()))
}

/// True once the clock's frequency is known (so reading the clock costs no calibration).
pub fn is_calibrated() -> bool {
    SCALE.is_completed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_converts_both_ways() {
        for hz in [1_000u64, 62_500_000, 1_000_000_000, 2_593_992_000, 100_000_000_000] {
            let scale = ClockScale::from_frequency(hz);
            // One second of ticks is one second of nanoseconds, within 1 ppm.
            let nanos = scale.ticks_to_nanos(hz);
            assert!(nanos.abs_diff(1_000_000_000) <= 1_000, "{hz} Hz gave {nanos} ns");
            let ticks = scale.nanos_to_ticks(1_000_000_000);
            assert!(ticks.abs_diff(hz) <= hz / 1_000_000 + 1, "{hz} Hz gave {ticks} ticks");
        }
    }

    #[test]
    fn one_gigahertz_is_identity() {
        let scale = ClockScale::from_frequency(1_000_000_000);
        assert_eq!(scale.ticks_to_nanos(123_456_789), 123_456_789);
    }

    #[test]
    fn conversion_saturates_instead_of_wrapping() {
        let scale = ClockScale::from_frequency(1_000);
        assert_eq!(scale.ticks_to_nanos(u64::MAX), u64::MAX);
    }

    #[test]
    fn instant_arithmetic() {
        let a = Instant::from_nanos(1_000);
        let b = a + Duration::from_micros(2);
        assert_eq!(b.as_nanos(), 3_000);
        assert_eq!(b - a, Duration::from_nanos(2_000));
        assert_eq!(a - b, Duration::ZERO);
        assert_eq!(a + Duration::MAX, Instant::from_nanos(u64::MAX));
    }
}
