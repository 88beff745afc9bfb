//! Wall-clock time: [`SystemTime`], nanoseconds since the Unix epoch (1970-01-01 00:00:00 UTC),
//! shaped like `std::time::SystemTime`.
//!
//! The wall clock is the monotonic clock shifted by a constant. At boot libos records one reading
//! of the real-time clock ([`crate::hal::Platform::read_wall_clock`], or the `walltime=` kernel
//! option) with [`set_boot_reading`]; from then on
//!
//! ```text
//! SystemTime::now() = reading.time + (Instant::now() - the instant of the reading) + adjustment
//! ```
//!
//! so the wall clock advances exactly with the monotonic clock and costs what reading
//! [`Instant`] costs: a slow device (two port accesses per CMOS register, a VM exit each under
//! KVM) is read once. There is no drift correction (no NTP); a program may step the clock with
//! [`set_now`] (C `clock_settime`), which changes the adjustment. Without a reading the wall clock
//! takes the counter's origin (machine reset) for the epoch: dates in January 1970.
//!
//! The reading is kept as raw counter ticks, so recording it at boot does not calibrate the
//! counter (x86_64 calibrates its TSC lazily, against a 1 ms PIT window): the conversion happens
//! at the first wall-clock read.
//!
//! Times before 1970 do not exist here (nor in the VFS's timestamps); the latest time is
//! [`SystemTime::MAX`], where 64-bit signed nanoseconds end (2262, as Linux's `ktime_t`).

use super::Instant;
use crate::hal::WallClockReading;
use core::fmt;
use core::ops::{Add, AddAssign, Sub, SubAssign};
use core::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use core::time::Duration;
use spin::Once;

/// A moment on the wall clock: nanoseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SystemTime(u64);

/// The Unix epoch, 1970-01-01 00:00:00 UTC (as `std::time::UNIX_EPOCH`).
pub const UNIX_EPOCH: SystemTime = SystemTime::UNIX_EPOCH;

impl SystemTime {
    /// The Unix epoch, 1970-01-01 00:00:00 UTC.
    pub const UNIX_EPOCH: SystemTime = SystemTime(0);
    /// The latest representable time, 2262-04-11 23:47:16.854775807 UTC (`i64::MAX`
    /// nanoseconds, so every time converts to a C `timespec` and back).
    pub const MAX: SystemTime = SystemTime(i64::MAX as u64);

    /// The current wall-clock time.
    pub fn now() -> SystemTime {
        SystemTime::at(Instant::now())
    }

    /// What the wall clock reads (read, or will read) at monotonic time `instant`.
    pub fn at(instant: Instant) -> SystemTime {
        current_anchor().wall_at(instant)
    }

    /// The monotonic instant at which the wall clock reads `self`, given the clock as it is set
    /// now: how an absolute `CLOCK_REALTIME` deadline becomes a timer deadline. A time before
    /// the counter's origin gives [`Instant::ZERO`] (long past).
    pub fn instant(self) -> Instant {
        current_anchor().instant_of(self)
    }

    /// `nanos` nanoseconds after the epoch, or `None` past [`SystemTime::MAX`].
    pub const fn from_unix_nanos(nanos: u64) -> Option<SystemTime> {
        if nanos <= SystemTime::MAX.0 { Some(SystemTime(nanos)) } else { None }
    }

    /// Nanoseconds since the epoch.
    pub const fn unix_nanos(self) -> u64 {
        self.0
    }

    /// How much later `self` is than `earlier`; an error carrying the difference the other
    /// way when `earlier` is later.
    pub fn duration_since(&self, earlier: SystemTime) -> Result<Duration, SystemTimeError> {
        match self.0.checked_sub(earlier.0) {
            Some(nanos) => Ok(Duration::from_nanos(nanos)),
            None => Err(SystemTimeError(Duration::from_nanos(earlier.0 - self.0))),
        }
    }

    /// Time elapsed since `self` (an error when the clock now reads earlier, e.g. after it was
    /// set back).
    pub fn elapsed(&self) -> Result<Duration, SystemTimeError> {
        SystemTime::now().duration_since(*self)
    }

    /// `self + duration`, or `None` past [`SystemTime::MAX`].
    pub fn checked_add(&self, duration: Duration) -> Option<SystemTime> {
        let nanos = u64::try_from(duration.as_nanos()).ok()?;
        SystemTime::from_unix_nanos(self.0.checked_add(nanos)?)
    }

    /// `self - duration`, or `None` before the epoch.
    pub fn checked_sub(&self, duration: Duration) -> Option<SystemTime> {
        let nanos = u64::try_from(duration.as_nanos()).ok()?;
        self.0.checked_sub(nanos).map(SystemTime)
    }
}

/// Saturates at [`SystemTime::MAX`] (like [`Instant`]'s addition; `std` panics instead).
impl Add<Duration> for SystemTime {
    type Output = SystemTime;
    fn add(self, rhs: Duration) -> SystemTime {
        self.checked_add(rhs).unwrap_or(SystemTime::MAX)
    }
}

impl AddAssign<Duration> for SystemTime {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

/// Saturates at the epoch.
impl Sub<Duration> for SystemTime {
    type Output = SystemTime;
    fn sub(self, rhs: Duration) -> SystemTime {
        self.checked_sub(rhs).unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

impl SubAssign<Duration> for SystemTime {
    fn sub_assign(&mut self, rhs: Duration) {
        *self = *self - rhs;
    }
}

/// From [`SystemTime::duration_since`]: the second time was later than the first, by
/// [`SystemTimeError::duration`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemTimeError(Duration);

impl SystemTimeError {
    /// How much later the second time was.
    pub fn duration(&self) -> Duration {
        self.0
    }
}

impl fmt::Display for SystemTimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "second time provided was later than self by {:?}", self.0)
    }
}

/// Where the wall clock's time came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// No reading: the wall clock counts from the epoch at the counter's origin (1970 + uptime).
    None,
    /// The machine's real-time clock, read at boot.
    RealTimeClock,
    /// The `walltime=` kernel option.
    CommandLine,
}

/// The reading the wall clock counts from, and where it came from.
static BOOT_READING: Once<(WallClockReading, Source)> = Once::new();
/// Nanoseconds [`set_now`] moved the clock by, in total.
static ADJUSTMENT: AtomicI64 = AtomicI64::new(0);
/// Whether [`set_now`] was called (for [`was_set`]).
static WAS_SET: AtomicBool = AtomicBool::new(false);

/// Makes the wall clock count from `reading` (what the clock showed at a counter value). Called
/// once, at boot; later calls are ignored (a running clock is stepped with [`set_now`]).
pub fn set_boot_reading(reading: WallClockReading, source: Source) {
    BOOT_READING.call_once(|| (reading, source));
}

/// Where the wall clock's time came from (unchanged by [`set_now`]; see [`was_set`]).
pub fn source() -> Source {
    BOOT_READING.get().map_or(Source::None, |&(_, source)| source)
}

/// True once a program stepped the clock with [`set_now`].
pub fn was_set() -> bool {
    WAS_SET.load(Ordering::Relaxed)
}

/// Steps the wall clock so that it reads `now` at this moment (C `clock_settime`). Deadlines
/// already converted to instants ([`SystemTime::instant`]) do not move.
pub fn set_now(now: SystemTime) {
    let anchor = current_anchor();
    let step = i128::from(now.0) - anchor.wall_nanos_at(Instant::now());
    let adjustment = i128::from(ADJUSTMENT.load(Ordering::Relaxed)) + step;
    ADJUSTMENT.store(adjustment.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64, Ordering::Relaxed);
    WAS_SET.store(true, Ordering::Relaxed);
}

/// The boot reading's `wall - instant`, once the clock is calibrated (then it never changes:
/// the reading is taken once and the counter's scale is fixed). Converting the reading's
/// counter value costs a scaled multiplication; every file access stamps a time, so it is
/// done once.
static BOOT_OFFSET: AtomicI64 = AtomicI64::new(0);
static BOOT_OFFSET_READY: AtomicBool = AtomicBool::new(false);

/// The wall clock as it is set now.
fn current_anchor() -> Anchor {
    let adjustment = i128::from(ADJUSTMENT.load(Ordering::Relaxed));
    if BOOT_OFFSET_READY.load(Ordering::Acquire) {
        return Anchor { offset: i128::from(BOOT_OFFSET.load(Ordering::Relaxed)) + adjustment };
    }
    match BOOT_READING.get() {
        Some((reading, _)) => {
            let anchor = Anchor::new(reading.unix_nanos, Instant::from_counter(reading.counter), 0);
            if let (true, Ok(offset)) = (crate::time::is_calibrated(), i64::try_from(anchor.offset)) {
                BOOT_OFFSET.store(offset, Ordering::Relaxed);
                BOOT_OFFSET_READY.store(true, Ordering::Release);
            }
            Anchor { offset: anchor.offset + adjustment }
        }
        None => Anchor::new(0, Instant::ZERO, adjustment),
    }
}

/// How the wall clock relates to the monotonic clock: it read `wall` nanoseconds at `instant`
/// nanoseconds, shifted by `adjustment`. Signed and wide, so no order of readings, instants or
/// adjustments can overflow; results are clamped into range at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Anchor {
    /// `wall - instant + adjustment`: the wall clock's reading at the counter's origin.
    offset: i128,
}

impl Anchor {
    fn new(wall: u64, instant: Instant, adjustment: i128) -> Anchor {
        Anchor { offset: i128::from(wall) - i128::from(instant.as_nanos()) + adjustment }
    }

    fn wall_nanos_at(self, instant: Instant) -> i128 {
        i128::from(instant.as_nanos()) + self.offset
    }

    fn wall_at(self, instant: Instant) -> SystemTime {
        SystemTime(self.wall_nanos_at(instant).clamp(0, i128::from(SystemTime::MAX.0)) as u64)
    }

    fn instant_of(self, time: SystemTime) -> Instant {
        Instant::from_nanos((i128::from(time.0) - self.offset).clamp(0, i128::from(u64::MAX)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn wall_clock_advances_with_the_monotonic_clock() {
        // The RTC read 2025-01-01 00:00:00 (1 735 689 600 s) 2 s after the counter's origin.
        let anchor = Anchor::new(1_735_689_600 * SECOND, Instant::from_nanos(2 * SECOND), 0);
        let at = |nanos| anchor.wall_at(Instant::from_nanos(nanos)).unix_nanos();
        assert_eq!(at(2 * SECOND), 1_735_689_600 * SECOND);
        assert_eq!(at(2 * SECOND + 100_000_000), 1_735_689_600 * SECOND + 100_000_000);
        assert_eq!(at(0), 1_735_689_598 * SECOND, "before the reading, the clock counts back");
        let deadline = SystemTime::from_unix_nanos(1_735_689_601 * SECOND).unwrap();
        assert_eq!(anchor.instant_of(deadline), Instant::from_nanos(3 * SECOND));
    }

    #[test]
    fn without_a_reading_the_epoch_is_the_counters_origin() {
        let anchor = Anchor::new(0, Instant::ZERO, 0);
        assert_eq!(anchor.wall_at(Instant::from_nanos(5 * SECOND)).unix_nanos(), 5 * SECOND);
        assert_eq!(anchor.instant_of(SystemTime(7)), Instant::from_nanos(7));
    }

    #[test]
    fn out_of_range_results_are_clamped() {
        // A clock set back before the epoch reads the epoch; deadlines before the origin are
        // the origin; a reading near the end of time saturates at MAX.
        let back = Anchor::new(SECOND, Instant::from_nanos(10 * SECOND), 0);
        assert_eq!(back.wall_at(Instant::ZERO), SystemTime::UNIX_EPOCH);
        let forward = Anchor::new(SystemTime::MAX.0, Instant::ZERO, i128::from(i64::MAX));
        assert_eq!(forward.wall_at(Instant::from_nanos(u64::MAX)), SystemTime::MAX);
        assert_eq!(forward.instant_of(SystemTime::UNIX_EPOCH), Instant::ZERO);
        let adjusted = Anchor::new(0, Instant::ZERO, -5);
        assert_eq!(adjusted.wall_at(Instant::from_nanos(3)), SystemTime::UNIX_EPOCH);
        assert_eq!(adjusted.wall_at(Instant::from_nanos(8)), SystemTime(3));
    }

    #[test]
    fn arithmetic_and_comparisons_like_std() {
        let t = UNIX_EPOCH + Duration::from_secs(10);
        assert_eq!(t.duration_since(UNIX_EPOCH), Ok(Duration::from_secs(10)));
        let error = UNIX_EPOCH.duration_since(t).unwrap_err();
        assert_eq!(error.duration(), Duration::from_secs(10));
        assert!(error.to_string().contains("later than self"));
        assert_eq!(t.checked_sub(Duration::from_secs(11)), None);
        assert_eq!(t - Duration::from_secs(11), UNIX_EPOCH);
        assert_eq!(SystemTime::MAX.checked_add(Duration::from_nanos(1)), None);
        assert_eq!(SystemTime::MAX + Duration::MAX, SystemTime::MAX);
        assert_eq!(SystemTime::from_unix_nanos(u64::MAX), None);
        let mut u = t;
        u += Duration::from_nanos(5);
        u -= Duration::from_nanos(2);
        assert_eq!(u.unix_nanos(), 10 * SECOND + 3);
        assert!(UNIX_EPOCH < t);
    }

    /// The only test touching the global clock (the platform and the boot reading are set once
    /// per test binary).
    #[test]
    fn boot_reading_and_set_now_move_the_global_clock() {
        let platform: &'static crate::testing::FakePlatform = Box::leak(Box::default());
        crate::hal::set_platform(platform);
        assert_eq!(source(), Source::None);
        platform.advance(SECOND);
        assert_eq!(SystemTime::now().unix_nanos(), SECOND, "1970 + uptime without a reading");

        // The fake counter runs at 1 GHz: the reading was taken at counter 1 s.
        set_boot_reading(WallClockReading { unix_nanos: 1_700_000_000 * SECOND, counter: SECOND }, Source::RealTimeClock);
        assert_eq!(source(), Source::RealTimeClock);
        platform.advance(250_000_000);
        assert_eq!(SystemTime::now().unix_nanos(), 1_700_000_000 * SECOND + 250_000_000);
        set_boot_reading(WallClockReading { unix_nanos: 0, counter: 0 }, Source::CommandLine);
        assert_eq!(source(), Source::RealTimeClock, "the boot reading is taken once");

        assert!(!was_set());
        set_now(SystemTime(2_000_000_000 * SECOND));
        assert!(was_set());
        assert_eq!(SystemTime::now().unix_nanos(), 2_000_000_000 * SECOND);
        platform.advance(SECOND);
        assert_eq!(SystemTime::now().unix_nanos(), 2_000_000_001 * SECOND);
        let deadline = SystemTime(2_000_000_003 * SECOND);
        assert_eq!(deadline.instant(), Instant::now() + Duration::from_secs(2));
        assert_eq!(SystemTime::at(Instant::now() + Duration::from_secs(2)), deadline);
    }
}
