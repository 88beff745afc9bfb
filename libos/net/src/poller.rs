//! Readiness: wait on many sockets at once, `epoll`-style and level-triggered, in time
//! proportional to the sockets that are ready, not to those registered.
//!
//! Every socket has a [`Shared`] block: its wait queue (threads blocked in a call on it) and
//! at most one poller registration. When the stack changes a socket it calls [`Shared::wake`],
//! which wakes the blocked threads and, the first time, appends the socket to its poller's
//! ready list. [`Poller::wait`] looks only at that list: a socket still ready stays on it
//! (level-triggered, as `epoll` without `EPOLLET`), one that is not leaves it.

use crate::socket::{Handle, readiness};
use crate::stack::Stack;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use libos_core::blocking::WaitQueue;
use libos_core::sync::IrqSpinLock;
use libos_core::time::Instant;
use libos_core::{Errno, Result};

/// What a poller waits for on a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest {
    /// Data (or a connection, or end of stream) to read.
    pub readable: bool,
    /// Room to write.
    pub writable: bool,
}

impl Interest {
    /// Readable only.
    pub const READABLE: Interest = Interest { readable: true, writable: false };
    /// Writable only.
    pub const WRITABLE: Interest = Interest { readable: false, writable: true };
    /// Both.
    pub const BOTH: Interest = Interest { readable: true, writable: true };
}

/// One ready source, as [`Poller::wait`] reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// The token given at registration.
    pub token: usize,
    /// Reading will not block (data, a pending connection, end of stream, or an error).
    pub readable: bool,
    /// Writing will not block.
    pub writable: bool,
    /// The peer closed or the connection is gone.
    pub hangup: bool,
    /// The connection failed (reset, refused); the next call returns the error.
    pub error: bool,
}

/// A socket's readiness right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// See [`Event::readable`].
    pub readable: bool,
    /// See [`Event::writable`].
    pub writable: bool,
    /// See [`Event::hangup`].
    pub hangup: bool,
    /// See [`Event::error`].
    pub error: bool,
    /// The peer shut its writing down: reads see end of stream (`POLLRDHUP`).
    pub peer_closed: bool,
}

struct Registration {
    poller: Arc<PollerState>,
    token: usize,
    interest: Interest,
    /// On the poller's ready list.
    queued: bool,
    /// Where the socket lives (for the readiness check).
    stack: &'static Stack,
    slot: usize,
    generation: u64,
}

/// A socket's waiters and poller registration.
#[derive(Default)]
pub struct Shared {
    /// Threads blocked in a call on this socket.
    pub waiters: WaitQueue,
    registration: IrqSpinLock<Option<Registration>>,
    /// Bumped by every [`Shared::wake`]: an edge-triggered watcher reports a socket again
    /// only when this moved since it last did (as `EPOLLET` reports each new arrival).
    changes: AtomicU64,
}

impl Shared {
    /// See [`Shared`]'s `changes`.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// The socket changed: wake its waiters and queue it on its poller.
    pub fn wake(self: &Arc<Self>) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        crate::hooks::changed();
        self.waiters.wake_all();
        let poller = {
            let mut registration = self.registration.lock();
            match registration.as_mut() {
                Some(r) if !r.queued => {
                    r.queued = true;
                    Some(r.poller.clone())
                }
                _ => None,
            }
        };
        if let Some(poller) = poller {
            poller.ready.lock().push_back(self.clone());
            poller.waiters.wake_all();
        }
    }
}

struct PollerState {
    ready: IrqSpinLock<VecDeque<Arc<Shared>>>,
    waiters: WaitQueue,
}

/// Something a [`Poller`] can watch: TCP listeners and streams, UDP sockets.
pub trait Source {
    /// The socket behind it.
    fn handle(&self) -> &Handle;
}

/// A set of watched sockets (like an `epoll` instance).
pub struct Poller {
    state: Arc<PollerState>,
    /// The stack of the sockets registered (its timers run while we wait, if no thread does).
    stack: IrqSpinLock<Option<&'static Stack>>,
    /// The ready list's spare twin, swapped in by [`Poller::wait`].
    spare: IrqSpinLock<VecDeque<Arc<Shared>>>,
}

impl Default for Poller {
    fn default() -> Self {
        Poller::new()
    }
}

impl Poller {
    /// An empty poller.
    pub fn new() -> Poller {
        Poller { state: Arc::new(PollerState { ready: IrqSpinLock::new(VecDeque::new()), waiters: WaitQueue::new() }), stack: IrqSpinLock::new(None), spare: IrqSpinLock::new(VecDeque::new()) }
    }

    /// Watches `source` for `interest`, reporting it as `token`. Errors: `EEXIST` when it is
    /// already registered (with this or another poller), `EBADF` for a closed socket.
    pub fn add(&self, source: &dyn Source, token: usize, interest: Interest) -> Result<()> {
        let handle = source.handle();
        handle.check()?;
        {
            let mut registration = handle.shared.registration.lock();
            if registration.is_some() {
                return Err(Errno::EEXIST);
            }
            *registration = Some(Registration {
                poller: self.state.clone(),
                token,
                interest,
                queued: false,
                stack: handle.stack,
                slot: handle.slot,
                generation: handle.generation,
            });
        }
        self.stack.lock().get_or_insert(handle.stack);
        handle.shared.wake(); // queue it once: it may be ready already
        Ok(())
    }

    /// Changes the token and interest of a registered source. Errors: `ENOENT` when it is not
    /// registered with this poller.
    pub fn modify(&self, source: &dyn Source, token: usize, interest: Interest) -> Result<()> {
        let handle = source.handle();
        {
            let mut registration = handle.shared.registration.lock();
            match registration.as_mut() {
                Some(r) if Arc::ptr_eq(&r.poller, &self.state) => {
                    r.token = token;
                    r.interest = interest;
                }
                _ => return Err(Errno::ENOENT),
            }
        }
        handle.shared.wake();
        Ok(())
    }

    /// Stops watching `source`. Errors: `ENOENT` when it is not registered with this poller.
    pub fn delete(&self, source: &dyn Source) -> Result<()> {
        let handle = source.handle();
        let mut registration = handle.shared.registration.lock();
        match registration.as_ref() {
            Some(r) if Arc::ptr_eq(&r.poller, &self.state) => *registration = None,
            _ => return Err(Errno::ENOENT),
        }
        Ok(())
    }

    /// Fills `events` (cleared first) with the ready sources, waiting up to `timeout` (`None`:
    /// for ever) for at least one. Returns how many; 0 when the timeout passed.
    pub fn wait(&self, events: &mut Vec<Event>, timeout: Option<Duration>) -> Result<usize> {
        events.clear();
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            self.collect(events);
            if !events.is_empty() {
                return Ok(events.len());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(0);
            }
            let ready = || !self.state.ready.lock().is_empty();
            // The network thread (or, without a scheduler, the stack we watch) runs timers.
            let stack = *self.stack.lock();
            match stack {
                Some(stack) => stack.wait_for(&self.state.waiters, deadline, ready),
                None => match deadline {
                    Some(d) => {
                        self.state.waiters.wait_until_deadline(ready, d);
                    }
                    None => self.state.waiters.wait_until(ready),
                },
            }
        }
    }

    /// Moves the ready list's still-ready sources into `events`.
    fn collect(&self, events: &mut Vec<Event>) {
        // Swap the ready list with a spare one (no allocation per wait once both have grown).
        let mut queued = core::mem::take(&mut *self.spare.lock());
        core::mem::swap(&mut queued, &mut *self.state.ready.lock());
        for shared in queued.drain(..) {
            let mut registration = shared.registration.lock();
            let Some(r) = registration.as_mut().filter(|r| Arc::ptr_eq(&r.poller, &self.state)) else { continue };
            let now = {
                let mut inner = r.stack.lock();
                readiness(&mut inner, r.slot, r.generation)
            };
            let wanted = (r.interest.readable && now.readable) || (r.interest.writable && now.writable) || now.hangup || now.error;
            if wanted {
                events.push(Event {
                    token: r.token,
                    readable: r.interest.readable && now.readable,
                    writable: r.interest.writable && now.writable,
                    hangup: now.hangup,
                    error: now.error,
                });
                // Level-triggered: still ready, so it stays queued for the next wait.
                drop(registration);
                self.state.ready.lock().push_back(shared);
            } else {
                r.queued = false;
            }
        }
        *self.spare.lock() = queued;
    }
}
