//! Timers that send signals: `alarm`, `setitimer`/`getitimer` (`ITIMER_REAL`), and the POSIX
//! timers `timer_create`/`timer_settime`/`timer_gettime`/`timer_getoverrun`/`timer_delete`.
//!
//! **Firing.** libos has no timer callbacks for code above the scheduler (the one-shot timer
//! belongs to it), so a kernel thread, `posix-timers`, started when the first timer is armed,
//! parks until the earliest expiry of the armed timers and sends their signals. Arming an
//! earlier timer moves its wake-up earlier (`wake_by`, or a wake token when it is not parked),
//! so nothing polls and nothing ticks: with no timer armed it stays parked. It runs above the
//! program's priority, so under the preemptive scheduler it preempts a busy program thread at
//! the timer interrupt that wakes it; the signal then wakes a thread blocked in a system call
//! (`EINTR` or a restart, see [`super::restart`]), or reaches a busy thread as it resumes
//! from that preemption (see the delivery notes in [`super`]).
//!
//! **Signals.** `ITIMER_REAL` and `alarm` send `SIGALRM` to the process with `si_code`
//! `SI_KERNEL`, as Linux does. A POSIX timer sends `sigev_signo` with `SI_TIMER`, its id in
//! `si_timerid` and `sigev_value` in `si_value`: to the process (`SIGEV_SIGNAL`) or to one
//! thread (`SIGEV_THREAD_ID`, which musl's `SIGEV_THREAD` is built on: its helper thread waits
//! for signal 32 in `sigwaitinfo` and calls the function). `SIGEV_NONE` timers send nothing;
//! `timer_gettime` reads them. While a timer's signal is still pending, further expirations
//! are counted, not sent: the count is the `si_overrun` of the delivery and what
//! `timer_getoverrun` reports after it.
//!
//! **Clocks.** `CLOCK_REALTIME`, `CLOCK_MONOTONIC`, `CLOCK_BOOTTIME` (and their `_ALARM`
//! forms: nothing suspends here); `TIMER_ABSTIME` expiries of a real-time timer are converted
//! through the wall clock as it is set at arming (stepping the clock later does not move
//! them, unlike Linux). Not supported, `EINVAL` with one log line: CPU-time clocks for POSIX
//! timers, and arming `ITIMER_VIRTUAL`/`ITIMER_PROF` (libos keeps no per-process CPU time);
//! reading them, or disarming them, works (they are never armed).
//!
//! Needs a scheduler (feature `threads`); without it these calls are unknown (`ENOSYS`).

use super::Origin;
use crate::abi::Timespec;
use crate::user;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use libos::sync::{IrqSpinLock, Mutex, ThreadId};
use libos::time::{Duration, Instant};
use libos::{Errno, Result};

const SIGALRM: u64 = 14;
const CLOCK_REALTIME: u64 = 0;
const CLOCK_MONOTONIC: u64 = 1;
const CLOCK_PROCESS_CPUTIME_ID: u64 = 2;
const CLOCK_THREAD_CPUTIME_ID: u64 = 3;
const CLOCK_BOOTTIME: u64 = 7;
const CLOCK_REALTIME_ALARM: u64 = 8;
const CLOCK_BOOTTIME_ALARM: u64 = 9;
const TIMER_ABSTIME: u64 = 1;
const SIGEV_SIGNAL: i32 = 0;
const SIGEV_NONE: i32 = 1;
const SIGEV_THREAD_ID: i32 = 4;
const ITIMER_REAL: u64 = 0;
const ITIMER_VIRTUAL: u64 = 1;
const ITIMER_PROF: u64 = 2;
/// Linux's `DELAYTIMER_MAX`: the largest overrun count reported.
const DELAYTIMER_MAX: u32 = i32::MAX as u32;
/// POSIX timers one program may have (Linux bounds them by `RLIMIT_SIGPENDING`).
const MAX_TIMERS: usize = 4096;
/// The key of the `ITIMER_REAL` timer among the POSIX timers' ids (which start at 0).
const REAL: i32 = -1;

/// What a timer does when it expires.
#[derive(Clone, Copy, Debug)]
enum Notify {
    /// `SIGEV_NONE`.
    Nothing,
    /// Sends `sig` to thread `to`, or to the process.
    Signal { sig: u64, to: Option<u64>, origin: Origin },
}

struct Timer {
    notify: Notify,
    realtime: bool,
    /// The next expiry, while armed.
    next: Option<Instant>,
    /// The period (zero: one-shot).
    interval: Duration,
    /// Expirations not sent since the signal was last taken (its pending instance covered them).
    overrun: u32,
    /// The overrun of the last delivery (`timer_getoverrun`).
    last_overrun: u32,
}

impl Timer {
    fn new(notify: Notify, realtime: bool) -> Timer {
        Timer { notify, realtime, next: None, interval: Duration::ZERO, overrun: 0, last_overrun: 0 }
    }

    /// Counts the expirations up to `now` and moves `next` past them (a one-shot timer
    /// disarms); 0 when it has not expired.
    fn expire(&mut self, now: Instant) -> u32 {
        let Some(next) = self.next.filter(|&next| next <= now) else { return 0 };
        if self.interval.is_zero() {
            self.next = None;
            return 1;
        }
        let late = now.saturating_duration_since(next).as_nanos();
        let periods = late / self.interval.as_nanos() + 1;
        let advance = u32::try_from(periods).map_or(Duration::MAX, |p| self.interval.saturating_mul(p));
        self.next = Some(next + advance); // saturating: centuries away
        u32::try_from(periods).unwrap_or(u32::MAX)
    }

    /// Arms (or with a zero `value`, disarms) the timer: `value` from now, or at clock time
    /// `value` when `absolute`.
    fn arm(&mut self, value: Duration, interval: Duration, absolute: bool) {
        self.interval = interval;
        self.overrun = 0;
        self.next = if value.is_zero() {
            None
        } else if absolute {
            Some(crate::clocks::instant_of_clock(self.realtime, value))
        } else {
            Some(Instant::now() + value)
        };
    }

    /// The time left and the period, as `timer_gettime`/`getitimer` report them: an armed
    /// timer whose expiry has just passed reports 1 ns left, not "disarmed".
    fn remaining(&mut self) -> (Duration, Duration) {
        let now = Instant::now();
        if matches!(self.notify, Notify::Nothing) {
            // Nothing fires these: catch up now.
            let expired = self.expire(now);
            self.overrun = self.overrun.saturating_add(expired);
        }
        let left = self.next.map_or(Duration::ZERO, |next| next.saturating_duration_since(now).max(Duration::from_nanos(1)));
        (left, self.interval)
    }
}

struct Timers {
    /// By id; [`REAL`] is `ITIMER_REAL`.
    all: BTreeMap<i32, Timer>,
}

/// The timers. A spin lock with interrupts masked, never held across a wait: a signal's
/// delivery reads a timer's overrun, and delivery also runs on the preemption path of a busy
/// thread (libos-core's `syscall` docs), which must not block.
static TIMERS: IrqSpinLock<Timers> = IrqSpinLock::new(Timers { all: BTreeMap::new() });

/// Set (under [`TIMERS`]'s lock) while the timer thread sends signals it found due, which it
/// does without that lock: a call that disarms or re-arms a timer waits for the sending to
/// end ([`wait_for_sending`]), so no signal of the old arming arrives after the call returned
/// (Linux's `setitimer` waits for a running expiry the same way). A program that then resets
/// the handler would otherwise get the signal with the default action.
static SENDING: AtomicBool = AtomicBool::new(false);
static SENT: libos::sync::WaitQueue = libos::sync::WaitQueue::new();

/// Waits until the timer thread has sent what it found due (see [`SENDING`]).
fn wait_for_sending() {
    if SENDING.load(Ordering::Acquire) {
        SENT.wait_until(|| !SENDING.load(Ordering::Acquire));
    }
}

/// The `posix-timers` thread, once started (only system calls start it: they may block).
static TIMER_THREAD: Mutex<Option<ThreadId>> = Mutex::new(None);

/// Logs once that something is not supported (the call fails with `EINVAL`).
fn unsupported(what: &str, flag: &AtomicBool) -> Errno {
    if !flag.swap(true, Ordering::Relaxed) {
        log::warn!("posix-shim: {what} is not supported: EINVAL");
    }
    Errno::EINVAL
}

/// The `posix-timers` thread, started the first time a timer is armed.
fn timer_thread() -> Result<ThreadId> {
    let mut thread = TIMER_THREAD.lock();
    if let Some(id) = *thread {
        return Ok(id);
    }
    let spawned = libos::thread::Builder::new()
        .name("posix-timers")
        .priority(libos::thread::Priority(libos::thread::Priority::NORMAL.0 + 4))
        .spawn(run)
        .map_err(|_| Errno::EAGAIN)?;
    let id = spawned.thread().id();
    *thread = Some(id);
    Ok(id)
}

/// After arming a timer to expire at `at`: makes the timer thread wake by then.
fn wake_timer_thread(thread: ThreadId, at: Option<Instant>) {
    let Some(at) = at else { return };
    // Parked: wake by `at` (an earlier wake-up of its own stays). Not parked (running, or
    // about to park with an older earliest expiry): a wake token makes it look again.
    if !libos::sync::wake_by(thread, at) {
        libos::sync::unpark(thread);
    }
}

/// The `posix-timers` thread: sends the signals of expired timers, then parks until the
/// earliest expiry (or, with none armed, until a timer is armed).
fn run() {
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        let earliest = {
            let mut timers = TIMERS.lock();
            for (&id, timer) in timers.all.iter_mut() {
                if let Notify::Signal { sig, to, origin } = timer.notify {
                    let expired = timer.expire(now);
                    if expired > 0 {
                        timer.overrun = timer.overrun.saturating_add(expired - 1);
                        due.push((id, sig, to, origin));
                    }
                }
            }
            if !due.is_empty() {
                SENDING.store(true, Ordering::Release);
            }
            let signalling = timers.all.values().filter(|t| matches!(t.notify, Notify::Signal { .. }));
            signalling.filter_map(|t| t.next).min()
        };
        let sending = !due.is_empty();
        // Sent without the lock: sending may wake threads, and delivery takes the lock.
        for (id, sig, to, origin) in due {
            if super::send(to, sig, origin) {
                // Still pending from an earlier expiry: one more overrun.
                if let Some(timer) = TIMERS.lock().all.get_mut(&id) {
                    timer.overrun = timer.overrun.saturating_add(1);
                }
            }
        }
        if sending {
            SENDING.store(false, Ordering::Release);
            SENT.wake_all();
        }
        match earliest {
            Some(at) => libos::sync::park_until(at),
            None => libos::sync::park(),
        }
    }
}

/// The overrun count of timer `id` as its signal is taken: reported in `si_overrun`, kept for
/// `timer_getoverrun`, and restarted from 0.
pub(super) fn take_overrun(id: i32) -> i32 {
    let mut timers = TIMERS.lock();
    let Some(timer) = timers.all.get_mut(&id) else { return 0 };
    timer.last_overrun = core::mem::take(&mut timer.overrun).min(DELAYTIMER_MAX);
    timer.last_overrun as i32
}

// ---- alarm and setitimer ----

/// `struct timeval` (`itimerval` holds two: the interval, then the value).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Timeval {
    sec: i64,
    usec: i64,
}

impl Timeval {
    fn duration(self) -> Result<Duration> {
        if self.sec < 0 || !(0..1_000_000).contains(&self.usec) {
            return Err(Errno::EINVAL);
        }
        Ok(Duration::new(self.sec as u64, self.usec as u32 * 1000))
    }

    /// Whole microseconds, as Linux reports a remaining time (at least 1 µs while armed).
    fn of(d: Duration) -> Timeval {
        let micros = if d.is_zero() { 0 } else { d.as_micros().max(1) };
        Timeval { sec: (micros / 1_000_000) as i64, usec: (micros % 1_000_000) as i64 }
    }
}

static VIRTUAL_LOGGED: AtomicBool = AtomicBool::new(false);

/// Swaps the `ITIMER_REAL` setting: arms it with `value`/`interval` and returns what it had
/// left and its period.
fn swap_real(value: Duration, interval: Duration) -> Result<(Duration, Duration)> {
    let thread = timer_thread()?;
    let (old, next) = {
        let mut timers = TIMERS.lock();
        let notify = Notify::Signal { sig: SIGALRM, to: None, origin: Origin::Kernel };
        let timer = timers.all.entry(REAL).or_insert_with(|| Timer::new(notify, false));
        let old = timer.remaining();
        timer.arm(value, interval, false);
        (old, timer.next)
    };
    wait_for_sending();
    wake_timer_thread(thread, next);
    Ok(old)
}

/// In a fresh child: no timer (Linux resets `ITIMER_REAL` and does not inherit POSIX timers).
#[cfg(feature = "processes")]
pub fn forget_for_child() {
    TIMERS.lock().all.clear();
}

/// `alarm(seconds)`: `SIGALRM` after `seconds` (0 cancels); returns the seconds the previous
/// alarm had left, rounded to the nearest and at least 1 if one was armed (as Linux does).
pub fn alarm(seconds: u64) -> Result<u64> {
    let seconds = seconds as u32; // an unsigned int
    let (left, _) = swap_real(Duration::from_secs(u64::from(seconds)), Duration::ZERO)?;
    let left = Timeval::of(left);
    Ok(left.sec as u64 + u64::from((left.sec == 0 && left.usec > 0) || left.usec >= 500_000))
}

/// `setitimer(which, new, old)`: a null `new` disarms (Linux's reading).
pub fn setitimer(which: u64, new: u64, old: u64) -> Result<u64> {
    let [interval, value] = if new == 0 {
        [Timeval::default(); 2]
    } else {
        // SAFETY: checked by `user::read`.
        unsafe { user::read::<[Timeval; 2]>(new)? }
    };
    let (interval, value) = (interval.duration()?, value.duration()?);
    let previous = match which {
        ITIMER_REAL => swap_real(value, interval)?,
        ITIMER_VIRTUAL | ITIMER_PROF if value.is_zero() => (Duration::ZERO, Duration::ZERO),
        ITIMER_VIRTUAL | ITIMER_PROF => return Err(unsupported("setitimer(ITIMER_VIRTUAL/ITIMER_PROF) (no CPU-time accounting)", &VIRTUAL_LOGGED)),
        _ => return Err(Errno::EINVAL),
    };
    if old != 0 {
        // SAFETY: checked by `user::write`.
        unsafe { user::write(old, [Timeval::of(previous.1), Timeval::of(previous.0)])? };
    }
    Ok(0)
}

/// `getitimer(which, current)`.
pub fn getitimer(which: u64, current: u64) -> Result<u64> {
    let (left, interval) = match which {
        ITIMER_REAL => TIMERS.lock().all.get_mut(&REAL).map_or((Duration::ZERO, Duration::ZERO), Timer::remaining),
        ITIMER_VIRTUAL | ITIMER_PROF => (Duration::ZERO, Duration::ZERO), // never armed
        _ => return Err(Errno::EINVAL),
    };
    // SAFETY: checked by `user::write`.
    unsafe { user::write(current, [Timeval::of(interval), Timeval::of(left)])? };
    Ok(0)
}

// ---- POSIX timers ----

/// The part of the kernel's `struct sigevent` that the calls use (musl passes just these).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct SigEvent {
    value: u64,
    signo: i32,
    notify: i32,
    tid: i32,
    _pad: i32,
}

static CPU_CLOCK_LOGGED: AtomicBool = AtomicBool::new(false);

/// `timer_create(clock, sevp, created)`: writes the new timer's id (the lowest free one).
pub fn timer_create(clock: u64, sevp: u64, created: u64) -> Result<u64> {
    let realtime = match clock {
        CLOCK_REALTIME | CLOCK_REALTIME_ALARM => true,
        CLOCK_MONOTONIC | CLOCK_BOOTTIME | CLOCK_BOOTTIME_ALARM => false,
        CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => {
            return Err(unsupported("timer_create on a CPU-time clock", &CPU_CLOCK_LOGGED));
        }
        _ => return Err(Errno::EINVAL),
    };
    let event = if sevp == 0 {
        None
    } else {
        // SAFETY: checked by `user::read`.
        Some(unsafe { user::read::<SigEvent>(sevp)? })
    };
    let mut timers = TIMERS.lock();
    let id = (0..MAX_TIMERS as i32).find(|id| !timers.all.contains_key(id)).ok_or(Errno::EAGAIN)?;
    let notify = match event {
        // The default: SIGALRM to the process, the timer's id as its value.
        None => Notify::Signal { sig: SIGALRM, to: None, origin: Origin::Timer { id, value: id as u64 } },
        Some(e) => {
            let sig = u64::try_from(e.signo).ok().filter(|s| super::check_signal(*s).is_ok());
            let origin = Origin::Timer { id, value: e.value };
            match (e.notify, sig) {
                (SIGEV_NONE, _) => Notify::Nothing,
                (SIGEV_SIGNAL, Some(sig)) => Notify::Signal { sig, to: None, origin },
                // A thread exists from its clone on, before it first runs (musl arms the
                // timer of a SIGEV_THREAD right after creating its helper thread).
                (SIGEV_THREAD_ID, Some(sig)) if e.tid > 0 && crate::thread::tid_exists(e.tid as u64) => {
                    Notify::Signal { sig, to: Some(e.tid as u64), origin }
                }
                // A bad signal or thread; SIGEV_THREAD is the C library's, never the kernel's.
                _ => return Err(Errno::EINVAL),
            }
        }
    };
    // SAFETY: checked by `user::write`.
    unsafe { user::write(created, id)? };
    timers.all.insert(id, Timer::new(notify, realtime));
    Ok(0)
}

/// The id of a POSIX timer from a system-call argument (`EINVAL` when no such timer exists).
fn timer_id(timers: &Timers, id: u64) -> Result<i32> {
    let id = i32::try_from(id as i64).map_err(|_| Errno::EINVAL)?;
    if id < 0 || !timers.all.contains_key(&id) { Err(Errno::EINVAL) } else { Ok(id) }
}

fn write_itimerspec(addr: u64, (left, interval): (Duration, Duration)) -> Result<()> {
    crate::clocks::write_itimerspec(addr, left, interval)
}

/// `timer_settime(id, flags, new, old)`: a zero `it_value` disarms; `TIMER_ABSTIME` makes it
/// a time of the timer's clock (one already passed expires at once).
pub fn timer_settime(id: u64, flags: u64, new: u64, old: u64) -> Result<u64> {
    if flags & !TIMER_ABSTIME != 0 {
        return Err(Errno::EINVAL);
    }
    let interval = crate::clocks::duration_of(new)?;
    let value = crate::clocks::duration_of(new + size_of::<Timespec>() as u64)?;
    let thread = timer_thread()?;
    let (previous, next) = {
        let mut timers = TIMERS.lock();
        let id = timer_id(&timers, id)?;
        let timer = timers.all.get_mut(&id).ok_or(Errno::EINVAL)?;
        let previous = timer.remaining();
        timer.arm(value, interval, flags & TIMER_ABSTIME != 0);
        (previous, timer.next.filter(|_| matches!(timer.notify, Notify::Signal { .. })))
    };
    wait_for_sending();
    wake_timer_thread(thread, next);
    if old != 0 {
        write_itimerspec(old, previous)?;
    }
    Ok(0)
}

/// `timer_gettime(id, current)`.
pub fn timer_gettime(id: u64, current: u64) -> Result<u64> {
    let remaining = {
        let mut timers = TIMERS.lock();
        let id = timer_id(&timers, id)?;
        timers.all.get_mut(&id).ok_or(Errno::EINVAL)?.remaining()
    };
    write_itimerspec(current, remaining)?;
    Ok(0)
}

/// `timer_getoverrun(id)`: the overrun count of the timer's last delivered signal.
pub fn timer_getoverrun(id: u64) -> Result<u64> {
    let timers = TIMERS.lock();
    let id = timer_id(&timers, id)?;
    Ok(u64::from(timers.all[&id].last_overrun))
}

/// `timer_delete(id)`: the timer stops; a signal of it already pending stays pending.
pub fn timer_delete(id: u64) -> Result<u64> {
    {
        let mut timers = TIMERS.lock();
        let id = timer_id(&timers, id)?;
        timers.all.remove(&id);
    }
    wait_for_sending();
    Ok(0)
}
