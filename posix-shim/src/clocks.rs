//! The clock and sleep calls: `clock_gettime`/`clock_getres`/`clock_settime`,
//! `gettimeofday`, `time`, `nanosleep`, `clock_nanosleep`, and the conversions between C's
//! time structures and [`Duration`]/[`Instant`] the other calls share.

use crate::abi::Timespec;
use crate::{signal, user};
use libos::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use libos::{Errno, Result};

const CLOCK_REALTIME: u64 = 0;
const CLOCK_MONOTONIC: u64 = 1;
const CLOCK_PROCESS_CPUTIME_ID: u64 = 2;
const CLOCK_THREAD_CPUTIME_ID: u64 = 3;
const CLOCK_MONOTONIC_RAW: u64 = 4;
const CLOCK_REALTIME_COARSE: u64 = 5;
const CLOCK_MONOTONIC_COARSE: u64 = 6;
const CLOCK_BOOTTIME: u64 = 7;

/// The time of `clock`. The real-time clocks read libos's wall clock ([`SystemTime`]: the
/// machine's real-time clock read at boot, or `walltime=`, carried forward by the monotonic
/// counter; 1970 plus the uptime on a machine with neither, see `libos::time`). The monotonic
/// clocks count from machine reset; the CPU-time clocks count the time the CPU was not idle
/// (one program, so the process's and, without per-thread accounting, each thread's:
/// [`crate::resources::cpu_time`]). The coarse clocks are the precise ones (no cheaper reading
/// exists).
fn clock_now(clock: u64) -> Result<Duration> {
    match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE => Ok(Duration::from_nanos(SystemTime::now().unix_nanos())),
        CLOCK_MONOTONIC | CLOCK_MONOTONIC_RAW | CLOCK_MONOTONIC_COARSE | CLOCK_BOOTTIME => Ok(Instant::now().since_origin()),
        CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => Ok(crate::resources::cpu_time()),
        _ => Err(Errno::EINVAL),
    }
}

/// The [`Instant`] at which a clock reads `at`: a real-time deadline (`clock_nanosleep` with
/// `TIMER_ABSTIME`, `FUTEX_CLOCK_REALTIME`) through the wall clock as it is set now, a monotonic
/// one as it is. Unlike Linux, stepping the wall clock later does not move a deadline already
/// waited for.
pub fn instant_of_clock(realtime: bool, at: Duration) -> Instant {
    if realtime { (UNIX_EPOCH + at).instant() } else { Instant::ZERO + at }
}

pub(crate) fn timespec_of(d: Duration) -> Timespec {
    Timespec { tv_sec: d.as_secs() as i64, tv_nsec: i64::from(d.subsec_nanos()) }
}

/// Writes a `struct itimerspec` (`it_interval`, then `it_value`: the time left) to C memory.
pub(crate) fn write_itimerspec(addr: u64, left: Duration, interval: Duration) -> Result<()> {
    // SAFETY: checked by `user::write`.
    unsafe { user::write(addr, [timespec_of(interval), timespec_of(left)]) }
}

/// Reads a `struct timespec` duration from C memory: `EINVAL` when negative or its nanoseconds
/// are out of range.
pub(crate) fn duration_of(addr: u64) -> Result<Duration> {
    // SAFETY: checked by `user::read`.
    let t: Timespec = unsafe { user::read(addr)? };
    if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    Ok(Duration::new(t.tv_sec as u64, t.tv_nsec as u32))
}

pub(crate) fn clock_gettime(clock: u64, out: u64) -> Result<u64> {
    let now = clock_now(clock)?;
    // SAFETY: checked by `user::write`.
    unsafe { user::write(out, timespec_of(now))? };
    Ok(0)
}

pub(crate) fn clock_getres(clock: u64, out: u64) -> Result<u64> {
    clock_now(clock)?;
    if out != 0 {
        // SAFETY: as above. The counter's resolution is finer than 1 ns on every platform
        // here; Linux reports 1 ns for high-resolution clocks.
        unsafe { user::write(out, Timespec { tv_sec: 0, tv_nsec: 1 })? };
    }
    Ok(0)
}

/// `clock_settime`: `CLOCK_REALTIME` steps the wall clock (the program is the only process and
/// runs as root, so it may); the other clocks cannot be set (`EINVAL`, as on Linux).
pub(crate) fn clock_settime(clock: u64, new: u64) -> Result<u64> {
    if clock != CLOCK_REALTIME {
        return Err(Errno::EINVAL);
    }
    let since_epoch = duration_of(new)?;
    libos::time::set_system_time(UNIX_EPOCH.checked_add(since_epoch).ok_or(Errno::EINVAL)?);
    Ok(0)
}

pub(crate) fn gettimeofday(tv: u64, tz: u64) -> Result<u64> {
    if tv != 0 {
        let now = clock_now(CLOCK_REALTIME)?;
        // SAFETY: as above.
        unsafe { user::write(tv, [now.as_secs() as i64, i64::from(now.subsec_micros())])? };
    }
    if tz != 0 {
        // struct timezone: minutes west of Greenwich and the DST kind, both 0 (UTC).
        // SAFETY: as above.
        unsafe { user::write(tz, [0i32; 2])? };
    }
    Ok(0)
}

/// `time` (x86_64 only; static glibc's `time()` calls it): whole seconds of the wall clock,
/// also stored at `tloc` unless it is null.
pub(crate) fn time(tloc: u64) -> Result<u64> {
    let seconds = clock_now(CLOCK_REALTIME)?.as_secs();
    if tloc != 0 {
        // SAFETY: checked by `user::write`.
        unsafe { user::write(tloc, seconds as i64)? };
    }
    Ok(seconds)
}

/// Where `nanosleep` and `clock_nanosleep` wait: nobody wakes the queue, a signal for the
/// sleeping thread unparks it (`signal::send`), the deadline ends the wait.
static SLEEPERS: libos::sync::WaitQueue = libos::sync::WaitQueue::new();

/// Sleeps until `deadline`; `EINTR` when a signal arrives first.
fn sleep_until(deadline: Instant) -> Result<()> {
    while Instant::now() < deadline {
        signal::wait_interruptible(&SLEEPERS, || false, Some(deadline))?;
    }
    Ok(())
}

/// `nanosleep(request, remaining)`: an interrupted sleep writes the time left to `remaining`.
pub(crate) fn nanosleep(request: u64, remaining: u64) -> Result<u64> {
    let d = duration_of(request)?;
    let deadline = Instant::now() + d;
    let slept = sleep_until(deadline);
    if slept.is_err() && remaining != 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        // SAFETY: checked by `user::write`.
        unsafe { user::write(remaining, timespec_of(left))? };
    }
    slept.map(|()| 0)
}

pub(crate) fn clock_nanosleep(clock: u64, flags: u64, request: u64, remaining: u64) -> Result<u64> {
    const TIMER_ABSTIME: u64 = 1;
    if flags & !TIMER_ABSTIME != 0 {
        return Err(Errno::EINVAL);
    }
    if clock == CLOCK_THREAD_CPUTIME_ID {
        return Err(Errno::EINVAL);
    }
    if clock == CLOCK_PROCESS_CPUTIME_ID {
        // Sleeping until the process has used some CPU time: Linux's answer for a clock it
        // cannot sleep on.
        return Err(Errno::ENOTSUP);
    }
    clock_now(clock)?;
    if flags & TIMER_ABSTIME != 0 {
        let realtime = matches!(clock, CLOCK_REALTIME | CLOCK_REALTIME_COARSE);
        sleep_until(instant_of_clock(realtime, duration_of(request)?)).map(|()| 0)
    } else {
        nanosleep(request, remaining)
    }
}

