//! Pipes, event counters and readiness: `pipe2`, `eventfd2`, `poll`/`ppoll`.
//!
//! A pipe is a 64 KiB ring buffer shared by its two ends; an event counter is a `u64`. Both
//! block their callers on a wait queue (or answer `EAGAIN` with `O_NONBLOCK`). Every change of
//! any such object wakes [`READINESS`], the one queue `poll` waits on with its deadline, so a
//! poller re-checks its descriptors after each change (simple and correct; a poller is woken by
//! changes of objects it does not watch too).
//!
//! A write to a pipe whose read end is closed sends `SIGPIPE` to the program (default action:
//! terminate) and fails with `EPIPE`, as on Linux.
//!
//! On the same readiness: `select`/`pselect6` (fd_set bitmaps), `epoll_*` (level-triggered;
//! `EPOLLET`/`EPOLLONESHOT` are `EINVAL`), and `timerfd_*` (CLOCK_MONOTONIC/BOOTTIME, and
//! CLOCK_REALTIME, whose absolute times are on the wall clock; a waiter's deadline includes the
//! earliest armed timer among its descriptors).

use crate::fd::{self, Object};
use crate::user;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicUsize, Ordering};
use libos::sync::{Mutex, WaitQueue};
use libos::time::{Duration, Instant};
use libos::{Errno, Result};

/// Bytes a pipe holds (Linux's default capacity).
pub const PIPE_CAPACITY: usize = 64 * 1024;
const O_NONBLOCK: u64 = 0o4000;
const O_CLOEXEC: u64 = 0o2000000;
const EFD_SEMAPHORE: u64 = 1;

/// Woken whenever a pipe or event counter changes state.
static READINESS: WaitQueue = WaitQueue::new();
/// Bumped on every change, so a poller can tell whether anything happened since it looked.
static GENERATION: AtomicUsize = AtomicUsize::new(0);

fn changed() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
    READINESS.wake_all();
}

/// The shared state of a pipe.
pub struct Pipe {
    buffer: Mutex<VecDeque<u8>>,
    readers: AtomicUsize,
    writers: AtomicUsize,
    queue: WaitQueue,
}

/// One end of a pipe (the descriptor's object); dropping the last end of a side closes it.
pub struct PipeEnd {
    pipe: Arc<Pipe>,
    write: bool,
    nonblocking: bool,
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let side = if self.write { &self.pipe.writers } else { &self.pipe.readers };
        side.fetch_sub(1, Ordering::AcqRel);
        self.pipe.queue.wake_all();
        changed();
    }
}

impl PipeEnd {
    /// Reads up to `buf.len()` bytes; 0 at end of file (no writers left).
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        if self.write {
            return Err(Errno::EBADF);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            {
                let mut data = self.pipe.buffer.lock();
                if !data.is_empty() {
                    let n = buf.len().min(data.len());
                    for (slot, byte) in buf.iter_mut().zip(data.drain(..n)) {
                        *slot = byte;
                    }
                    drop(data);
                    self.pipe.queue.wake_all();
                    changed();
                    return Ok(n);
                }
                if self.pipe.writers.load(Ordering::Acquire) == 0 {
                    return Ok(0);
                }
            }
            if self.nonblocking {
                return Err(Errno::EAGAIN);
            }
            let pipe = &self.pipe;
            crate::signal::wait_interruptible(
                &pipe.queue,
                || pipe.buffer.try_lock().is_none_or(|d| !d.is_empty()) || pipe.writers.load(Ordering::Acquire) == 0,
                None,
            )?;
        }
    }

    /// Writes all of `buf` (blocking while full), or what fits with `O_NONBLOCK`.
    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        if !self.write {
            return Err(Errno::EBADF);
        }
        let mut done = 0;
        while done < buf.len() {
            if self.pipe.readers.load(Ordering::Acquire) == 0 {
                crate::signal::raise_pipe();
                return if done > 0 { Ok(done) } else { Err(Errno::EPIPE) };
            }
            {
                let mut data = self.pipe.buffer.lock();
                let room = PIPE_CAPACITY - data.len();
                if room > 0 {
                    let n = room.min(buf.len() - done);
                    data.extend(&buf[done..done + n]);
                    done += n;
                    drop(data);
                    self.pipe.queue.wake_all();
                    changed();
                    continue;
                }
            }
            if self.nonblocking {
                return if done > 0 { Ok(done) } else { Err(Errno::EAGAIN) };
            }
            let pipe = &self.pipe;
            let waited = crate::signal::wait_interruptible(
                &pipe.queue,
                || pipe.buffer.try_lock().is_none_or(|d| d.len() < PIPE_CAPACITY) || pipe.readers.load(Ordering::Acquire) == 0,
                None,
            );
            if let Err(e) = waited {
                return if done > 0 { Ok(done) } else { Err(e) }; // a partial write is not lost
            }
        }
        Ok(done)
    }

    fn ready(&self) -> i16 {
        let len = self.pipe.buffer.lock().len();
        if self.write {
            if self.pipe.readers.load(Ordering::Acquire) == 0 { POLLERR } else if len < PIPE_CAPACITY { POLLOUT } else { 0 }
        } else if len > 0 {
            POLLIN
        } else if self.pipe.writers.load(Ordering::Acquire) == 0 {
            POLLHUP
        } else {
            0
        }
    }
}

/// An `eventfd` counter.
pub struct EventCounter {
    value: Mutex<u64>,
    semaphore: bool,
    nonblocking: bool,
    queue: WaitQueue,
}

impl EventCounter {
    /// Reads (8 bytes): the counter, reset to 0 (or 1 with `EFD_SEMAPHORE`, decremented).
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < 8 {
            return Err(Errno::EINVAL);
        }
        loop {
            {
                let mut value = self.value.lock();
                if *value > 0 {
                    let out = if self.semaphore { 1 } else { *value };
                    *value -= out;
                    drop(value);
                    buf[..8].copy_from_slice(&out.to_ne_bytes());
                    self.queue.wake_all();
                    changed();
                    return Ok(8);
                }
            }
            if self.nonblocking {
                return Err(Errno::EAGAIN);
            }
            crate::signal::wait_interruptible(&self.queue, || self.value.try_lock().is_none_or(|v| *v > 0), None)?;
        }
    }

    /// Writes (8 bytes): adds to the counter; `EINVAL` for `u64::MAX`.
    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        let add = u64::from_ne_bytes(buf.get(..8).ok_or(Errno::EINVAL)?.try_into().map_err(|_| Errno::EINVAL)?);
        if add == u64::MAX {
            return Err(Errno::EINVAL);
        }
        loop {
            {
                let mut value = self.value.lock();
                if u64::MAX - 1 - *value >= add {
                    *value += add;
                    drop(value);
                    self.queue.wake_all();
                    changed();
                    return Ok(8);
                }
            }
            if self.nonblocking {
                return Err(Errno::EAGAIN);
            }
            crate::signal::wait_interruptible(&self.queue, || self.value.try_lock().is_none_or(|v| u64::MAX - 1 - *v >= add), None)?;
        }
    }

    fn ready(&self) -> i16 {
        let value = *self.value.lock();
        (if value > 0 { POLLIN } else { 0 }) | (if value < u64::MAX - 1 { POLLOUT } else { 0 })
    }
}

/// `pipe2(fds, flags)`.
pub fn pipe2(fds: u64, flags: u64) -> Result<u64> {
    if flags & !(O_NONBLOCK | O_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    user::check_range(fds, 8)?;
    let pipe = Arc::new(Pipe { buffer: Mutex::new(VecDeque::new()), readers: AtomicUsize::new(1), writers: AtomicUsize::new(1), queue: WaitQueue::new() });
    let nonblocking = flags & O_NONBLOCK != 0;
    let cloexec = flags & O_CLOEXEC != 0;
    let read = fd::insert(Object::Pipe(PipeEnd { pipe: pipe.clone(), write: false, nonblocking }), cloexec)?;
    let write = match fd::insert(Object::Pipe(PipeEnd { pipe, write: true, nonblocking }), cloexec) {
        Ok(w) => w,
        Err(e) => {
            let _ = fd::close(read);
            return Err(e);
        }
    };
    // SAFETY: checked above; the C program passed `int fds[2]`.
    unsafe { user::write(fds, [read as i32, write as i32])? };
    Ok(0)
}

/// `eventfd2(initval, flags)`.
pub fn eventfd2(initial: u64, flags: u64) -> Result<u64> {
    if flags & !(O_NONBLOCK | O_CLOEXEC | EFD_SEMAPHORE) != 0 {
        return Err(Errno::EINVAL);
    }
    let counter = EventCounter {
        value: Mutex::new(initial & 0xffff_ffff),
        semaphore: flags & EFD_SEMAPHORE != 0,
        nonblocking: flags & O_NONBLOCK != 0,
        queue: WaitQueue::new(),
    };
    fd::insert(Object::Event(counter), flags & O_CLOEXEC != 0)
}

const POLLIN: i16 = 0x1;
const POLLOUT: i16 = 0x4;
const POLLERR: i16 = 0x8;
const POLLHUP: i16 = 0x10;
const POLLNVAL: i16 = 0x20;

/// `struct pollfd`.
#[repr(C)]
#[derive(Clone, Copy)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

fn readiness(object: &Object) -> i16 {
    match object {
        Object::Pipe(end) => end.ready(),
        Object::Event(counter) => counter.ready(),
        Object::Timer(timer) => timer.ready(),
        Object::Epoll(epoll) => {
            if epoll.ready_count() > 0 {
                POLLIN
            } else {
                0
            }
        }
        // The console takes output at once and has no input (reads see end of file); files are
        // always ready, as on Linux.
        _ => POLLIN | POLLOUT,
    }
}

/// The readiness of every entry; returns how many have events.
fn scan(fds: &mut [PollFd]) -> u64 {
    let mut ready = 0;
    for p in fds.iter_mut() {
        p.revents = if p.fd < 0 {
            0
        } else {
            match fd::get(p.fd as u64) {
                Ok(object) => readiness(&object) & (p.events | POLLERR | POLLHUP),
                Err(_) => POLLNVAL,
            }
        };
        if p.revents != 0 {
            ready += 1;
        }
    }
    ready
}

/// `poll(fds, nfds, timeout_ms)` / `ppoll(fds, nfds, timeout, sigmask)` (the signal mask of
/// `ppoll` is applied for the call's duration by the caller's thread state: not supported, a
/// non-null mask is `EINVAL`... see `ppoll`).
pub fn poll(fds: u64, count: u64, timeout: Option<Duration>) -> Result<u64> {
    if count > fd::MAX_FDS as u64 {
        return Err(Errno::EINVAL);
    }
    let size = count * size_of::<PollFd>() as u64;
    // SAFETY: checked by `slice_mut`; `PollFd` is plain data and the buffer is the caller's.
    let bytes = unsafe { user::slice_mut(fds, size)? };
    let mut entries: alloc::vec::Vec<PollFd> =
        // SAFETY: `bytes` holds `count` `struct pollfd`s (read unaligned).
        (0..count as usize).map(|i| unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<PollFd>().add(i)) }).collect();
    let deadline = timeout.map(|t| Instant::now() + t);
    let ready = wait_ready(deadline, entries.iter().map(|e| e.fd as u64).collect(), || scan(&mut entries))?;
    for (i, entry) in entries.iter().enumerate() {
        // SAFETY: as above, in bounds.
        unsafe { core::ptr::write_unaligned(bytes.as_mut_ptr().cast::<PollFd>().add(i), *entry) };
    }
    Ok(ready)
}

/// Calls `check` until it reports something ready or `deadline` passes, sleeping on
/// [`READINESS`] in between (until the next change, the deadline, or the earliest armed timer
/// among `fds`). `EINTR` when a signal arrives for the thread before anything is ready.
fn wait_ready(deadline: Option<Instant>, fds: alloc::vec::Vec<u64>, mut check: impl FnMut() -> u64) -> Result<u64> {
    loop {
        let seen = GENERATION.load(Ordering::Acquire);
        let ready = check();
        let now = Instant::now();
        if ready > 0 || deadline.is_some_and(|d| now >= d) {
            return Ok(ready);
        }
        let timer = fds.iter().filter_map(|&f| fd::get(f).ok()).filter_map(|o| next_timer(&o)).min();
        let wake_at = match (deadline, timer) {
            (Some(d), Some(t)) => Some(d.min(t)),
            (d, t) => d.or(t),
        };
        crate::signal::wait_interruptible(&READINESS, || GENERATION.load(Ordering::Acquire) != seen, wake_at)?;
    }
}

fn next_timer(object: &Object) -> Option<Instant> {
    match object {
        Object::Timer(timer) => timer.next_expiry(),
        Object::Epoll(epoll) => epoll.watched().iter().filter_map(|&f| fd::get(f).ok()).filter_map(|o| match &*o {
            Object::Timer(t) => t.next_expiry(),
            _ => None,
        }).min(),
        _ => None,
    }
}

/// `poll(fds, nfds, timeout_ms)`: a negative timeout waits forever.
pub fn poll_ms(fds: u64, count: u64, timeout_ms: u64) -> Result<u64> {
    let ms = timeout_ms as i32;
    poll(fds, count, (ms >= 0).then(|| Duration::from_millis(ms as u64)))
}

/// `ppoll(fds, nfds, timeout, sigmask, sigsetsize)`: a temporary signal mask is applied for the
/// wait, as Linux does.
pub fn ppoll(fds: u64, count: u64, timeout: u64, sigmask: u64, sigsetsize: u64) -> Result<u64> {
    let timeout = if timeout == 0 {
        None
    } else {
        // SAFETY: checked by `user::read`.
        let t: crate::abi::Timespec = unsafe { user::read(timeout)? };
        if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) {
            return Err(Errno::EINVAL);
        }
        Some(Duration::new(t.tv_sec as u64, t.tv_nsec as u32))
    };
    if sigmask == 0 {
        return poll(fds, count, timeout);
    }
    if sigsetsize != 8 {
        return Err(Errno::EINVAL);
    }
    // SAFETY: checked by `user::read`.
    let mask: u64 = unsafe { user::read(sigmask)? };
    crate::signal::set_temporary_mask(mask);
    poll(fds, count, timeout)
}

/// `select`/`pselect6`: `nfds` bits of up to three `fd_set`s (1024 bits each).
pub fn select(nfds: u64, read: u64, write: u64, except: u64, timeout: Option<Duration>) -> Result<u64> {
    if nfds > fd::MAX_FDS as u64 {
        return Err(Errno::EINVAL);
    }
    let words = nfds.div_ceil(64) as usize;
    let load = |addr: u64| -> Result<[u64; 16]> {
        let mut set = [0u64; 16];
        if addr != 0 {
            for (i, word) in set.iter_mut().enumerate().take(words) {
                // SAFETY: checked by `user::read`.
                *word = unsafe { user::read::<u64>(addr + 8 * i as u64)? };
            }
        }
        Ok(set)
    };
    let (want_r, want_w, want_e) = (load(read)?, load(write)?, load(except)?);
    for f in 0..nfds {
        let bit = |set: &[u64; 16]| set[(f / 64) as usize] & (1 << (f % 64)) != 0;
        if (bit(&want_r) || bit(&want_w) || bit(&want_e)) && fd::get(f).is_err() {
            return Err(Errno::EBADF);
        }
    }
    let (mut got_r, mut got_w) = ([0u64; 16], [0u64; 16]);
    let deadline = timeout.map(|t| Instant::now() + t);
    let fds: alloc::vec::Vec<u64> = (0..nfds).collect();
    let count = wait_ready(deadline, fds, || {
        let mut count = 0;
        got_r = [0; 16];
        got_w = [0; 16];
        for f in 0..nfds {
            let (w, b) = ((f / 64) as usize, 1u64 << (f % 64));
            if (want_r[w] | want_w[w]) & b == 0 {
                continue;
            }
            let Ok(object) = fd::get(f) else { continue };
            let ready = readiness(&object);
            if want_r[w] & b != 0 && ready & (POLLIN | POLLHUP | POLLERR) != 0 {
                got_r[w] |= b;
                count += 1;
            }
            if want_w[w] & b != 0 && ready & (POLLOUT | POLLERR) != 0 {
                got_w[w] |= b;
                count += 1;
            }
        }
        count
    })?;
    let store = |addr: u64, set: &[u64; 16]| -> Result<()> {
        if addr != 0 {
            for (i, word) in set.iter().enumerate().take(words) {
                // SAFETY: checked by `user::write`.
                unsafe { user::write(addr + 8 * i as u64, *word)? };
            }
        }
        Ok(())
    };
    store(read, &got_r)?;
    store(write, &got_w)?;
    store(except, &[0; 16])?;
    Ok(count)
}

/// `select(nfds, r, w, e, struct timeval *)`.
pub fn select_timeval(nfds: u64, read: u64, write: u64, except: u64, timeout: u64) -> Result<u64> {
    let timeout = if timeout == 0 {
        None
    } else {
        // SAFETY: checked by `user::read`.
        let [sec, usec]: [i64; 2] = unsafe { user::read(timeout)? };
        if sec < 0 || !(0..1_000_000).contains(&usec) {
            return Err(Errno::EINVAL);
        }
        Some(Duration::new(sec as u64, usec as u32 * 1000))
    };
    select(nfds, read, write, except, timeout)
}

/// `pselect6(nfds, r, w, e, struct timespec *, {sigset *, size})`.
pub fn pselect6(nfds: u64, read: u64, write: u64, except: u64, timeout: u64, sigmask: u64) -> Result<u64> {
    let timeout = if timeout == 0 {
        None
    } else {
        // SAFETY: checked by `user::read`.
        let t: crate::abi::Timespec = unsafe { user::read(timeout)? };
        if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) {
            return Err(Errno::EINVAL);
        }
        Some(Duration::new(t.tv_sec as u64, t.tv_nsec as u32))
    };
    // SAFETY: checked by `user::read`.
    let mask = if sigmask == 0 { None } else { Some(unsafe { user::read::<[u64; 2]>(sigmask)? }) };
    match mask {
        Some([set, size]) if set != 0 => {
            if size != 8 {
                return Err(Errno::EINVAL);
            }
            // SAFETY: checked by `user::read`.
            let mask: u64 = unsafe { user::read(set)? };
            crate::signal::set_temporary_mask(mask);
            select(nfds, read, write, except, timeout)
        }
        _ => select(nfds, read, write, except, timeout),
    }
}

/// A `timerfd`: the next expiry and the interval (0: one-shot).
pub struct Timer {
    state: Mutex<(Option<Instant>, Duration)>,
    nonblocking: bool,
    /// A CLOCK_REALTIME timer: absolute expiry times are wall-clock times.
    realtime: bool,
}

impl Timer {
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

    fn next_expiry(&self) -> Option<Instant> {
        self.state.lock().0
    }

    fn ready(&self) -> i16 {
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
                buf[..8].copy_from_slice(&n.to_ne_bytes());
                return Ok(8);
            }
            if self.nonblocking {
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
    let timer = Timer { state: Mutex::new((None, Duration::ZERO)), nonblocking: flags & O_NONBLOCK != 0, realtime: clock == CLOCK_REALTIME };
    fd::insert(Object::Timer(timer), flags & O_CLOEXEC != 0)
}

fn read_itimerspec(addr: u64) -> Result<(Duration, Duration)> {
    // SAFETY: checked by `user::read`.
    let [interval, value]: [crate::abi::Timespec; 2] = unsafe { user::read(addr)? };
    let d = |t: crate::abi::Timespec| {
        if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) { Err(Errno::EINVAL) } else { Ok(Duration::new(t.tv_sec as u64, t.tv_nsec as u32)) }
    };
    Ok((d(interval)?, d(value)?))
}

fn write_itimerspec(addr: u64, next: Option<Instant>, interval: Duration) -> Result<()> {
    let ts = |d: Duration| crate::abi::Timespec { tv_sec: d.as_secs() as i64, tv_nsec: i64::from(d.subsec_nanos()) };
    let remaining = next.map_or(Duration::ZERO, |n| n.saturating_duration_since(Instant::now()).max(Duration::from_nanos(1)));
    // SAFETY: checked by `user::write`.
    unsafe { user::write(addr, [ts(interval), ts(remaining)]) }
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
            Some(crate::dispatch::instant_of_clock(timer.realtime, value))
        } else {
            Some(Instant::now() + value)
        };
        *state = (next, interval);
    }
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

/// An epoll instance: the watched descriptors with their event masks and user data.
pub struct Epoll {
    interest: Mutex<alloc::collections::BTreeMap<u64, Interest>>,
}

/// One watched descriptor: its event mask, user data, and the open object it referred to when
/// added. Closing the descriptor ends the registration (the object is gone, or the number now
/// names another object), as on Linux once the file is closed.
struct Interest {
    events: u32,
    data: u64,
    object: alloc::sync::Weak<Object>,
}

impl Interest {
    fn live(&self, fd_number: u64) -> Option<Arc<Object>> {
        let object = self.object.upgrade()?;
        fd::get(fd_number).ok().filter(|current| Arc::ptr_eq(current, &object))
    }
}

const EPOLLIN: u32 = 0x1;
const EPOLLOUT: u32 = 0x4;
const EPOLLERR: u32 = 0x8;
const EPOLLHUP: u32 = 0x10;
const EPOLLRDHUP: u32 = 0x2000;
const EPOLLEXCLUSIVE: u32 = 1 << 28;
const EPOLLWAKEUP: u32 = 1 << 29;
const EPOLLONESHOT: u32 = 1 << 30;
const EPOLLET: u32 = 1 << 31;

impl Epoll {
    fn watched(&self) -> alloc::vec::Vec<u64> {
        self.interest.lock().keys().copied().collect()
    }

    /// The ready events: `(events, data)` per ready descriptor, at most `max`.
    fn collect(&self, max: usize) -> alloc::vec::Vec<(u32, u64)> {
        let live: alloc::vec::Vec<(Arc<Object>, u32, u64)> = {
            let mut interest = self.interest.lock();
            interest.retain(|f, i| i.live(*f).is_some());
            interest.iter().filter_map(|(f, i)| Some((i.live(*f)?, i.events, i.data))).collect()
        };
        let mut out = alloc::vec::Vec::new();
        for (object, mask, data) in live {
            if out.len() >= max {
                break;
            }
            let ready = readiness(&object) as u32 & (mask | EPOLLERR | EPOLLHUP);
            if ready != 0 {
                out.push((ready, data));
            }
        }
        out
    }

    fn ready_count(&self) -> usize {
        self.collect(usize::MAX).len()
    }
}

/// `epoll_create1(flags)` (and `epoll_create(size)` with flags 0).
pub fn epoll_create1(flags: u64) -> Result<u64> {
    if flags & !O_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    fd::insert(Object::Epoll(Epoll { interest: Mutex::new(alloc::collections::BTreeMap::new()) }), flags & O_CLOEXEC != 0)
}

/// `epoll_ctl(epfd, op, fd, event)`.
pub fn epoll_ctl(epfd: u64, op: u64, fd_number: u64, event: u64) -> Result<u64> {
    const ADD: u64 = 1;
    const DEL: u64 = 2;
    const MOD: u64 = 3;
    let object = fd::get(epfd)?;
    let target = fd::get(fd_number)?;
    let Object::Epoll(epoll) = &*object else { return Err(Errno::EINVAL) };
    if Arc::ptr_eq(&object, &target) {
        return Err(Errno::EINVAL);
    }
    let read_event = || -> Result<(u32, u64)> {
        // SAFETY: checked by `user::read`; `struct epoll_event` is packed on x86_64 (12 bytes)
        // and 16 bytes with padding on aarch64.
        #[cfg(not(target_arch = "aarch64"))]
        let (events, data) = unsafe { (user::read::<u32>(event)?, user::read::<u64>(event + 4)?) };
        #[cfg(target_arch = "aarch64")]
        let (events, data) = unsafe { (user::read::<u32>(event)?, user::read::<u64>(event + 8)?) };
        if events & (EPOLLET | EPOLLONESHOT) != 0 {
            log::warn!("posix-shim: epoll_ctl with EPOLLET/EPOLLONESHOT is not supported (level-triggered only): EINVAL");
            return Err(Errno::EINVAL);
        }
        Ok((events & !(EPOLLEXCLUSIVE | EPOLLWAKEUP | EPOLLRDHUP), data))
    };
    let mut interest = epoll.interest.lock();
    interest.retain(|f, i| i.live(*f).is_some());
    match op {
        ADD => {
            let (events, data) = read_event()?;
            if interest.contains_key(&fd_number) {
                return Err(Errno::EEXIST);
            }
            interest.insert(fd_number, Interest { events, data, object: Arc::downgrade(&target) });
        }
        MOD => {
            let (events, data) = read_event()?;
            let entry = interest.get_mut(&fd_number).ok_or(Errno::ENOENT)?;
            entry.events = events;
            entry.data = data;
        }
        DEL => {
            interest.remove(&fd_number).ok_or(Errno::ENOENT)?;
        }
        _ => return Err(Errno::EINVAL),
    }
    drop(interest);
    changed();
    Ok(0)
}

/// `epoll_wait(epfd, events, maxevents, timeout_ms)` / `epoll_pwait` (with a signal mask).
pub fn epoll_pwait(epfd: u64, events: u64, max: u64, timeout_ms: u64, sigmask: u64, sigsetsize: u64) -> Result<u64> {
    let object = fd::get(epfd)?;
    let Object::Epoll(epoll) = &*object else { return Err(Errno::EINVAL) };
    if max == 0 || max > i32::MAX as u64 {
        return Err(Errno::EINVAL);
    }
    #[cfg(not(target_arch = "aarch64"))]
    const EVENT_SIZE: u64 = 12;
    #[cfg(target_arch = "aarch64")]
    const EVENT_SIZE: u64 = 16;
    user::check_range(events, max.saturating_mul(EVENT_SIZE))?;
    if sigmask != 0 {
        if sigsetsize != 8 {
            return Err(Errno::EINVAL);
        }
        // SAFETY: checked by `user::read`.
        let mask: u64 = unsafe { user::read(sigmask)? };
        crate::signal::set_temporary_mask(mask);
    }
    let ms = timeout_ms as i32;
    let deadline = (ms >= 0).then(|| Instant::now() + Duration::from_millis(ms as u64));
    let mut ready = alloc::vec::Vec::new();
    wait_ready(deadline, epoll.watched(), || {
        ready = epoll.collect(max as usize);
        ready.len() as u64
    })?;
    for (i, (ev, data)) in ready.iter().enumerate() {
        let at = events + i as u64 * EVENT_SIZE;
        // SAFETY: in the range checked above.
        unsafe {
            user::write(at, *ev)?;
            user::write(at + EVENT_SIZE - 8, *data)?;
        }
    }
    Ok(ready.len() as u64)
}

#[allow(dead_code)]
const _: (u32, u32) = (EPOLLIN, EPOLLOUT);
