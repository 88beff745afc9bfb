//! Pipes, event counters and readiness: `pipe2`, `eventfd2`, `poll`/`ppoll`.
//!
//! A pipe is a 64 KiB ring buffer shared by its two ends; an event counter is a `u64`. Both
//! block their callers on a wait queue (or answer `EAGAIN` with `O_NONBLOCK`). Every change of
//! any such object wakes [`READINESS`], the one queue `poll` waits on with its deadline, so a
//! poller re-checks its descriptors after each change (simple and correct; a poller is woken by
//! changes of objects it does not watch too).
//!
//! A write to a pipe whose read end is closed sends `SIGPIPE` to the program (default action:
//! terminate) and fails with `EPIPE`, as on Linux. Not implemented yet (they answer `ENOSYS`):
//! `select`/`pselect6`, `epoll_*`, `timerfd_*`.

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
            pipe.queue.wait_until(|| pipe.buffer.try_lock().is_none_or(|d| !d.is_empty()) || pipe.writers.load(Ordering::Acquire) == 0);
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
            pipe.queue.wait_until(|| pipe.buffer.try_lock().is_none_or(|d| d.len() < PIPE_CAPACITY) || pipe.readers.load(Ordering::Acquire) == 0);
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
            self.queue.wait_until(|| self.value.try_lock().is_none_or(|v| *v > 0));
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
            self.queue.wait_until(|| self.value.try_lock().is_none_or(|v| u64::MAX - 1 - *v >= add));
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
    let ready = loop {
        let seen = GENERATION.load(Ordering::Acquire);
        let ready = scan(&mut entries);
        if ready > 0 || deadline.is_some_and(|d| Instant::now() >= d) {
            break ready;
        }
        let changed_since = || GENERATION.load(Ordering::Acquire) != seen;
        match deadline {
            Some(d) => {
                READINESS.wait_until_deadline(changed_since, d);
            }
            None => READINESS.wait_until(changed_since),
        }
    };
    for (i, entry) in entries.iter().enumerate() {
        // SAFETY: as above, in bounds.
        unsafe { core::ptr::write_unaligned(bytes.as_mut_ptr().cast::<PollFd>().add(i), *entry) };
    }
    Ok(ready)
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
    let saved = crate::thread::blocked_signals();
    crate::thread::set_blocked_signals(mask);
    let result = poll(fds, count, timeout);
    crate::thread::set_blocked_signals(saved);
    result
}
