//! `timerfd_*`: CLOCK_MONOTONIC/BOOTTIME, and CLOCK_REALTIME, whose absolute times are on the
//! wall clock. A timer wakes nobody itself: a waiter's deadline includes the earliest armed
//! timer among its descriptors (`super::wait_ready`).

use super::*;
use core::sync::atomic::{AtomicBool, AtomicU64};

/// A `timerfd`: the next expiry and the interval (0: one-shot).
pub struct Timer {
    state: Mutex<(Option<Instant>, Duration)>,
    nonblocking: AtomicBool,
    /// Bumped when the timer is set or read (edge-triggered epoll).
    changes: AtomicU64,
    /// A CLOCK_REALTIME timer: absolute expiry times are wall-clock times.
    realtime: bool,
}

impl Timer {
    /// `O_NONBLOCK`.
    pub fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
    }

    /// Whether `O_NONBLOCK` is set.
    pub fn is_nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }

    /// How many times the timer was set or read; an expiry since the last read counts too, so
    /// each new expiry after a read is a new edge.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire) + u64::from(self.ready() != 0)
    }

    /// Expirations since the last read (and re-arms periodic timers past them).
    fn take_expirations(&self) -> u64 {
        let mut state = self.state.lock();
        let now = Instant::now();
        let (Some(next), interval) = *state else { return 0 };
        if now < next {
            return 0;
        }
        if interval.is_zero() {
            state.0 = None;
            return 1;
        }
        let periods = ((now - next).as_nanos() / interval.as_nanos()) as u64 + 1;
        state.0 = Some(next + interval * periods as u32);
        periods
    }

    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.state.lock().0
    }

    pub(super) fn ready(&self) -> i16 {
        if self.next_expiry().is_some_and(|n| Instant::now() >= n) { POLLIN } else { 0 }
    }

    /// Reads (8 bytes): the expirations, blocking until there is one.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < 8 {
            return Err(Errno::EINVAL);
        }
        loop {
            let n = self.take_expirations();
            if n > 0 {
                self.changes.fetch_add(2, Ordering::AcqRel);
                buf[..8].copy_from_slice(&n.to_ne_bytes());
                return Ok(8);
            }
            if self.is_nonblocking() {
                return Err(Errno::EAGAIN);
            }
            // Until the next expiry, or, disarmed, until another thread re-arms it.
            let seen = GENERATION.load(Ordering::Acquire);
            crate::signal::wait_interruptible(&READINESS, || GENERATION.load(Ordering::Acquire) != seen, self.next_expiry())?;
        }
    }
}

const TFD_TIMER_ABSTIME: u64 = 1;

/// `timerfd_create(clock, flags)`.
pub fn timerfd_create(clock: u64, flags: u64) -> Result<u64> {
    const CLOCK_REALTIME: u64 = 0;
    const CLOCK_MONOTONIC: u64 = 1;
    const CLOCK_BOOTTIME: u64 = 7;
    if !matches!(clock, CLOCK_REALTIME | CLOCK_MONOTONIC | CLOCK_BOOTTIME) || flags & !(O_NONBLOCK | O_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let timer = Timer { state: Mutex::new((None, Duration::ZERO)), nonblocking: AtomicBool::new(flags & O_NONBLOCK != 0), changes: AtomicU64::new(0), realtime: clock == CLOCK_REALTIME };
    fd::insert(Object::Timer(timer), flags & O_CLOEXEC != 0)
}

/// A `struct itimerspec`: (`it_interval`, `it_value`).
fn read_itimerspec(addr: u64) -> Result<(Duration, Duration)> {
    let interval = crate::clocks::duration_of(addr)?;
    Ok((interval, crate::clocks::duration_of(addr + size_of::<crate::abi::Timespec>() as u64)?))
}

/// Writes the time left until `next` (at least 1 ns while armed) and the period.
fn write_itimerspec(addr: u64, next: Option<Instant>, interval: Duration) -> Result<()> {
    let left = next.map_or(Duration::ZERO, |n| n.saturating_duration_since(Instant::now()).max(Duration::from_nanos(1)));
    crate::clocks::write_itimerspec(addr, left, interval)
}

fn timer_of(fd_number: u64) -> Result<Arc<Object>> {
    let object = fd::get(fd_number)?;
    if matches!(&*object, Object::Timer(_)) { Ok(object) } else { Err(Errno::EINVAL) }
}

/// `timerfd_settime(fd, flags, new, old)`.
pub fn timerfd_settime(fd_number: u64, flags: u64, new: u64, old: u64) -> Result<u64> {
    if flags & !(TFD_TIMER_ABSTIME | 2) != 0 {
        return Err(Errno::EINVAL);
    }
    let object = timer_of(fd_number)?;
    let Object::Timer(timer) = &*object else { return Err(Errno::EINVAL) };
    let (interval, value) = read_itimerspec(new)?;
    {
        let mut state = timer.state.lock();
        if old != 0 {
            write_itimerspec(old, state.0, state.1)?;
        }
        let next = if value.is_zero() {
            None
        } else if flags & TFD_TIMER_ABSTIME != 0 {
            Some(crate::clocks::instant_of_clock(timer.realtime, value))
        } else {
            Some(Instant::now() + value)
        };
        *state = (next, interval);
    }
    timer.changes.fetch_add(2, Ordering::AcqRel);
    changed();
    Ok(0)
}

/// `timerfd_gettime(fd, cur)`.
pub fn timerfd_gettime(fd_number: u64, current: u64) -> Result<u64> {
    let object = timer_of(fd_number)?;
    let Object::Timer(timer) = &*object else { return Err(Errno::EINVAL) };
    let (next, interval) = *timer.state.lock();
    write_itimerspec(current, next, interval)?;
    Ok(0)
}

