//! Readiness and the descriptors that exist for it: pipes and `eventfd` ([`pipe`]),
//! `timerfd` ([`timerfd`]), `poll`/`ppoll`, `select`/`pselect6`, and `epoll` ([`epoll`]).
//!
//! Every object that can become ready (pipes, event counters, sockets: the network stack
//! calls [`changed`] through its hook) wakes [`READINESS`] when it changes, the one queue
//! `poll`, `select` and `epoll_wait` sleep on with their deadline; a waiter re-checks its
//! descriptors after each change (simple and correct; a waiter is also woken by changes of
//! objects it does not watch, and a check costs one look per watched descriptor: Linux's
//! `poll` does the same; its `epoll` keeps a ready list instead, which this one does not yet).
//!
//! Every object also counts its changes ([`changes`]): `EPOLLET` reports a descriptor again
//! only when its count moved, which is what Linux's wake-up callbacks amount to.
//! `O_NONBLOCK` is a flag of each open object, changed by `fcntl(F_SETFL)` and `FIONBIO`.

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

/// Woken whenever a pipe, event counter or socket changes state.
static READINESS: WaitQueue = WaitQueue::new();
/// Bumped on every change, so a poller can tell whether anything happened since it looked.
static GENERATION: AtomicUsize = AtomicUsize::new(0);

/// Some object changed: wake every `poll`/`select`/`epoll_wait` to re-check. Safe in
/// interrupt handlers (the NIC's calls it through libos-net's hook).
pub fn changed() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
    READINESS.wake_all();
}


mod epoll;
#[cfg(feature = "fs")]
pub mod fifo;
#[cfg(feature = "processes")]
pub mod host_pipe;
mod pipe;
mod timerfd;

pub use epoll::{Epoll, epoll_create1, epoll_ctl, epoll_pwait};
pub use pipe::{EventCounter, Pipe, PipeEnd, eventfd2, pipe2};
pub use timerfd::{Timer, timerfd_create, timerfd_gettime, timerfd_settime};

/// `poll` bits (`<poll.h>`; `EPOLL*` has the same values).
pub const POLLIN: i16 = 0x1;
/// Priority data (TCP urgent data: never here).
pub const POLLPRI: i16 = 0x2;
/// Writable.
pub const POLLOUT: i16 = 0x4;
/// An error (a pipe without readers, a failed connection).
pub const POLLERR: i16 = 0x8;
/// Hung up.
pub const POLLHUP: i16 = 0x10;
/// Not an open descriptor.
pub const POLLNVAL: i16 = 0x20;
/// The peer shut down its writing (reads will see end of stream).
pub const POLLRDHUP: i16 = 0x2000;

/// `struct pollfd`.
#[repr(C)]
#[derive(Clone, Copy)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

/// The `poll` bits of `object` now (the `EPOLL*` bits have the same values).
fn readiness(object: &Object) -> i16 {
    match object {
        Object::Pipe(end) => end.ready(),
        Object::Event(counter) => counter.ready(),
        Object::Timer(timer) => timer.ready(),
        Object::Epoll(epoll) => {
            if epoll.has_ready() {
                POLLIN
            } else {
                0
            }
        }
        Object::Socket(socket) => socket.ready(),
        // The console takes output at once and has no input (reads see end of file); files are
        // always ready, as on Linux.
        _ => POLLIN | POLLOUT,
    }
}

/// How many times `object` has changed (for `EPOLLET`); objects that never change readiness
/// count 0.
fn changes(object: &Object) -> u64 {
    match object {
        Object::Pipe(end) => end.changes(),
        Object::Event(counter) => counter.changes(),
        Object::Timer(timer) => timer.changes(),
        Object::Socket(socket) => socket.changes(),
        _ => 0,
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

/// The `struct timespec` timeout at `addr` (`None` for a null pointer: no timeout); `EINVAL`
/// for a negative or malformed one.
pub fn read_timeout(addr: u64) -> Result<Option<Duration>> {
    (addr != 0).then(|| crate::clocks::duration_of(addr)).transpose()
}

/// `poll(fds, nfds, timeout_ms)`: a negative timeout waits forever.
pub fn poll_ms(fds: u64, count: u64, timeout_ms: u64) -> Result<u64> {
    let ms = timeout_ms as i32;
    poll(fds, count, (ms >= 0).then(|| Duration::from_millis(ms as u64)))
}

/// `ppoll(fds, nfds, timeout, sigmask, sigsetsize)`: a temporary signal mask is applied for the
/// wait, as Linux does.
pub fn ppoll(fds: u64, count: u64, timeout: u64, sigmask: u64, sigsetsize: u64) -> Result<u64> {
    let timeout = read_timeout(timeout)?;
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
    let timeout = read_timeout(timeout)?;
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

