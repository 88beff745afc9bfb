//! Blocking synchronisation built on the scheduler hook ([`crate::sched`]): what drivers, file
//! systems and apps wait with. With a scheduler a waiting thread gives up the CPU; without one
//! the CPU halts until an interrupt, so the same code works in both images.
//!
//! - [`WaitQueue`]: the building block: wait until a condition holds, wake one or all waiters.
//! - [`Mutex`] (a `lock_api` mutex over [`RawMutex`]), [`Condvar`], [`Semaphore`], [`Once`].
//! - [`Event`]: "block until an interrupt wakes me": a driver's interrupt handler calls
//!   [`Event::signal`], a thread waits in [`Event::wait`].
//!
//! All waits re-check their condition after every wake-up, so spurious wake-ups (a stale wake
//! token, a barging thread) are harmless. Interrupt handlers may call the waking methods
//! ([`WaitQueue::wake_one`], [`Event::signal`], [`Semaphore::release`]) but never wait.
//!
//! Wait queues are intrusive lists ([`intrusive_collections`]): each waiter's node lives in the
//! stack frame of its own [`WaitQueue::wait_until`] call and is linked into the queue under an
//! [`IrqSpinLock`]. Neither waiting nor waking allocates, so a thread can always block, even
//! with the heap exhausted, and waking from an interrupt handler is fine.

use crate::sched::{self, ThreadId};
use crate::sync::IrqSpinLock;
use crate::time::Instant;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use intrusive_collections::{LinkedList, LinkedListAtomicLink, UnsafeRef, intrusive_adapter};

/// One waiting thread: a node on the waiter's own stack, linked into [`WaitQueue`]'s list
/// while the thread may sleep. (An atomic link rather than a `Cell` one only so that the node
/// is `Sync` and the list may sit in a shared lock; every access is under that lock.)
struct Waiter {
    link: LinkedListAtomicLink,
    thread: ThreadId,
    /// Set (under the queue's lock) by the `wake_*` call that unlinked this waiter.
    woken: AtomicBool,
}

intrusive_adapter!(WaiterAdapter = UnsafeRef<Waiter>: Waiter { link => LinkedListAtomicLink });

/// The list and its length, under one lock.
struct Waiters {
    list: LinkedList<WaiterAdapter>,
    len: usize,
}

/// Threads waiting for a condition.
pub struct WaitQueue {
    waiters: IrqSpinLock<Waiters>,
}

impl Default for WaitQueue {
    fn default() -> WaitQueue {
        WaitQueue::new()
    }
}

/// Unlinks a waiter's node if it is still linked when its `wait_inner` frame is unwound (a
/// panicking condition, in host tests): the list must never point into a dead stack frame. The
/// normal returns unlink under the lock they already hold and forget the guard.
struct Linked<'a> {
    queue: &'a WaitQueue,
    waiter: &'a Waiter,
}

impl Drop for Linked<'_> {
    fn drop(&mut self) {
        let mut waiters = self.queue.waiters.lock();
        waiters.unlink(self.waiter);
    }
}

impl Waiters {
    /// Removes `waiter` if it is linked (into this list: a node is only ever linked into the
    /// queue whose `wait_inner` owns it).
    fn unlink(&mut self, waiter: &Waiter) {
        if waiter.link.is_linked() {
            // SAFETY: `waiter` is linked, and only into this list (see above), so it is a valid
            // element of `self.list`; we hold the list's lock.
            let mut cursor = unsafe { self.list.cursor_mut_from_ptr(waiter) };
            cursor.remove();
            self.len -= 1;
        }
    }
}

impl WaitQueue {
    /// An empty queue.
    pub const fn new() -> WaitQueue {
        WaitQueue { waiters: IrqSpinLock::new(Waiters { list: LinkedList::new(WaiterAdapter::NEW), len: 0 }) }
    }

    /// Blocks until `condition()` returns true. The condition is evaluated with the queue's lock
    /// held (interrupts masked), so a waker that changes the state and then calls `wake_*` can
    /// never slip in between the check and the wait. It must be short and must not block.
    /// Never allocates.
    pub fn wait_until(&self, mut condition: impl FnMut() -> bool) {
        self.wait_inner(&mut condition, None);
    }

    /// As [`WaitQueue::wait_until`], giving up at `deadline`. Returns whether the condition held.
    pub fn wait_until_deadline(&self, mut condition: impl FnMut() -> bool, deadline: Instant) -> bool {
        self.wait_inner(&mut condition, Some(deadline))
    }

    fn wait_inner(&self, condition: &mut dyn FnMut() -> bool, deadline: Option<Instant>) -> bool {
        // The node is built whether or not the thread will wait (a few stores; linking it is
        // what costs, and that happens only once the condition was false).
        let waiter = Waiter { link: LinkedListAtomicLink::new(), thread: sched::current(), woken: AtomicBool::new(false) };
        // Declared after `waiter`, so it is dropped (and unlinks) first.
        let linked = Linked { queue: self, waiter: &waiter };
        loop {
            {
                let mut waiters = self.waiters.lock();
                if condition() {
                    waiters.unlink(&waiter);
                    core::mem::forget(linked);
                    return true;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    waiters.unlink(&waiter);
                    core::mem::forget(linked);
                    drop(waiters);
                    if waiter.woken.load(Ordering::Relaxed) {
                        // A `wake_one` chose us, but we give up: pass the wake-up on so that
                        // another waiter does not sleep through it.
                        self.wake_one();
                    }
                    return false;
                }
                if !waiter.link.is_linked() {
                    waiter.woken.store(false, Ordering::Relaxed);
                    // SAFETY: the node outlives its membership: every path out of this frame
                    // unlinks it under this lock first (the returns above, or `linked`'s drop
                    // when unwinding), before `waiter` goes out of scope.
                    waiters.list.push_back(unsafe { UnsafeRef::from_raw(&waiter) });
                    waiters.len += 1;
                }
            }
            match deadline {
                Some(d) => sched::park_until(d),
                None => sched::park(),
            }
            // Woken by `wake_*` (which unlinked us), by a stale token or by the deadline: a
            // node still linked keeps its place in the queue; re-check.
        }
    }

    /// Wakes the longest-waiting thread; returns whether there was one. Never allocates.
    pub fn wake_one(&self) -> bool {
        let thread = {
            let mut waiters = self.waiters.lock();
            let Some(waiter) = waiters.list.pop_front() else { return false };
            waiters.len -= 1;
            waiter.woken.store(true, Ordering::Relaxed);
            // Read the id while the lock keeps the waiter's frame alive: once it is released
            // the waiter may return.
            waiter.thread
        };
        sched::unpark(thread);
        true
    }

    /// Wakes every waiting thread; returns how many.
    pub fn wake_all(&self) -> usize {
        let mut count = 0;
        while self.wake_one() {
            count += 1;
        }
        count
    }

    /// How many threads are waiting (a snapshot).
    pub fn len(&self) -> usize {
        self.waiters.lock().len
    }

    /// True when no thread waits (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A mutex that blocks (parks) a thread while another holds it. Not for interrupt handlers.
///
/// The guard is not `Send`: a guard cannot be moved to (and dropped on) another thread, so
/// "unlocking another thread's lock" is a compile error rather than a runtime hazard.
pub type Mutex<T> = lock_api::Mutex<RawMutex, T>;

/// Guard of a [`Mutex`].
pub type MutexGuard<'a, T> = lock_api::MutexGuard<'a, RawMutex, T>;

/// The raw lock behind [`Mutex`]: a state word plus a wait queue (no fairness: a running thread
/// may take the lock before a woken waiter gets to run).
///
/// The state is [`UNLOCKED`], [`LOCKED`] (no thread waits) or [`CONTENDED`] (a thread may be
/// queued), so an unlock touches the wait queue, whose lock masks interrupts, only after
/// contention: the common uncontended lock/unlock pair is two atomic operations.
pub struct RawMutex {
    state: AtomicU8,
    queue: WaitQueue,
}

const UNLOCKED: u8 = 0;
const LOCKED: u8 = 1;
const CONTENDED: u8 = 2;

// SAFETY: `lock` returns only after this thread moved `state` from UNLOCKED to LOCKED or
// CONTENDED (Acquire), `unlock` stores UNLOCKED (Release), so there is at most one holder and
// its writes are visible to the next one. No wake-up is lost: a waiter sleeps only after it
// set CONTENDED and then saw CONTENDED still there (checked under the queue's lock), so the
// holder's later unlock sees CONTENDED and wakes the queue.
unsafe impl lock_api::RawMutex for RawMutex {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: RawMutex = RawMutex { state: AtomicU8::new(UNLOCKED), queue: WaitQueue::new() };

    type GuardMarker = lock_api::GuardNoSend;

    fn lock(&self) {
        if self.try_lock() {
            return;
        }
        // Taking it as CONTENDED is conservative: its unlock wakes a waiter that may not exist.
        // Sleep only while the state says CONTENDED (as a futex mutex does): if another thread
        // took the lock as plain LOCKED meanwhile, go round and mark it CONTENDED first, or its
        // unlock would not wake anyone.
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            self.queue.wait_until(|| self.state.load(Ordering::Relaxed) != CONTENDED);
        }
    }

    fn try_lock(&self) -> bool {
        self.state.compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    unsafe fn unlock(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            self.queue.wake_one();
        }
    }

    fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != UNLOCKED
    }
}

/// A condition variable for [`Mutex`].
#[derive(Default)]
pub struct Condvar {
    /// Bumped by every notification, so a notification between unlocking the mutex and
    /// queuing is not lost.
    generation: AtomicU64,
    queue: WaitQueue,
}

impl Condvar {
    /// A condition variable nobody waits on.
    pub const fn new() -> Condvar {
        Condvar { generation: AtomicU64::new(0), queue: WaitQueue::new() }
    }

    /// Unlocks `guard`'s mutex, waits for a notification, relocks. May wake spuriously: call it
    /// in a loop that checks the predicate (or use [`Condvar::wait_while`]).
    pub fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let seen = self.generation.load(Ordering::Acquire);
        MutexGuard::unlocked(&mut guard, || {
            self.queue.wait_until(|| self.generation.load(Ordering::Acquire) != seen);
        });
        guard
    }

    /// [`Condvar::wait`] with a deadline: returns at a notification or once `deadline` has
    /// passed, with `true` for the latter (timed out, no notification seen).
    pub fn wait_until<'a, T>(&self, mut guard: MutexGuard<'a, T>, deadline: Instant) -> (MutexGuard<'a, T>, bool) {
        let seen = self.generation.load(Ordering::Acquire);
        let mut notified = true;
        MutexGuard::unlocked(&mut guard, || {
            notified = self.queue.wait_until_deadline(|| self.generation.load(Ordering::Acquire) != seen, deadline);
        });
        (guard, !notified)
    }

    /// Waits while `condition` holds on the protected data.
    pub fn wait_while<'a, T>(&self, mut guard: MutexGuard<'a, T>, mut condition: impl FnMut(&mut T) -> bool) -> MutexGuard<'a, T> {
        while condition(&mut guard) {
            guard = self.wait(guard);
        }
        guard
    }

    /// Wakes one waiter.
    pub fn notify_one(&self) {
        self.generation.fetch_add(1, Ordering::Release);
        self.queue.wake_one();
    }

    /// Wakes all waiters.
    pub fn notify_all(&self) {
        self.generation.fetch_add(1, Ordering::Release);
        self.queue.wake_all();
    }
}

/// A counting semaphore. [`Semaphore::release`] is safe in interrupt handlers.
#[derive(Default)]
pub struct Semaphore {
    permits: AtomicUsize,
    queue: WaitQueue,
}

impl Semaphore {
    /// A semaphore with `permits` permits.
    pub const fn new(permits: usize) -> Semaphore {
        Semaphore { permits: AtomicUsize::new(permits), queue: WaitQueue::new() }
    }

    /// Takes a permit if one is available.
    pub fn try_acquire(&self) -> bool {
        self.permits.fetch_update(Ordering::Acquire, Ordering::Relaxed, |p| p.checked_sub(1)).is_ok()
    }

    /// Takes a permit, blocking until one is available.
    pub fn acquire(&self) {
        self.queue.wait_until(|| self.try_acquire());
    }

    /// Returns a permit and wakes a waiter.
    pub fn release(&self) {
        self.permits.fetch_add(1, Ordering::Release);
        self.queue.wake_one();
    }

    /// Available permits (a snapshot).
    pub fn available(&self) -> usize {
        self.permits.load(Ordering::Relaxed)
    }
}

/// One-time initialisation where the initialiser may block (other callers wait, parked).
#[derive(Default)]
pub struct Once {
    state: AtomicU8,
    queue: WaitQueue,
}

const INCOMPLETE: u8 = 0;
const RUNNING: u8 = 1;
const COMPLETE: u8 = 2;

impl Once {
    /// Not yet run.
    pub const fn new() -> Once {
        Once { state: AtomicU8::new(INCOMPLETE), queue: WaitQueue::new() }
    }

    /// Runs `f` if no call ran it yet; every call returns after it has completed.
    ///
    /// # Panics
    /// When `f` calls `call_once` on the same `Once` (it would wait for itself forever).
    pub fn call_once(&self, f: impl FnOnce()) {
        if self.state.compare_exchange(INCOMPLETE, RUNNING, Ordering::Acquire, Ordering::Acquire).is_ok() {
            f();
            self.state.store(COMPLETE, Ordering::Release);
            self.queue.wake_all();
            return;
        }
        self.queue.wait_until(|| self.state.load(Ordering::Acquire) == COMPLETE);
    }

    /// True once the initialiser has completed.
    pub fn is_completed(&self) -> bool {
        self.state.load(Ordering::Acquire) == COMPLETE
    }
}

/// "Block until an interrupt wakes me": a flag set by [`Event::signal`] (from an interrupt
/// handler or a thread) and consumed by [`Event::wait`].
#[derive(Default)]
pub struct Event {
    signalled: AtomicBool,
    queue: WaitQueue,
}

impl Event {
    /// Not signalled.
    pub const fn new() -> Event {
        Event { signalled: AtomicBool::new(false), queue: WaitQueue::new() }
    }

    /// Sets the event and wakes all waiters (one of them consumes it). Never blocks or
    /// allocates, so interrupt handlers may call it.
    pub fn signal(&self) {
        self.signalled.store(true, Ordering::Release);
        self.queue.wake_all();
    }

    /// Blocks until the event is signalled, and clears it.
    pub fn wait(&self) {
        self.queue.wait_until(|| self.signalled.swap(false, Ordering::Acquire));
    }

    /// As [`Event::wait`], giving up at `deadline`; returns whether the event was signalled.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        self.queue.wait_until_deadline(|| self.signalled.swap(false, Ordering::Acquire), deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncontended_primitives_never_block() {
        let mutex = Mutex::new(1);
        *mutex.lock() += 1;
        assert_eq!(*mutex.lock(), 2);
        assert!(mutex.try_lock().is_some());

        let semaphore = Semaphore::new(1);
        semaphore.acquire();
        assert!(!semaphore.try_acquire());
        semaphore.release();
        assert_eq!(semaphore.available(), 1);

        let once = Once::new();
        let mut runs = 0;
        once.call_once(|| runs += 1);
        once.call_once(|| runs += 1);
        assert_eq!(runs, 1);
        assert!(once.is_completed());

        let event = Event::new();
        event.signal();
        event.wait(); // already signalled: returns at once
        let queue = WaitQueue::new();
        assert!(!queue.wake_one());
        queue.wait_until(|| true);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_panicking_condition_leaves_no_node_behind() {
        // The node lives in `wait_until`'s frame: if the condition panics while the node is
        // linked, unwinding must unlink it, or the queue would point into a dead frame.
        let queue = WaitQueue::new();
        let mut calls = 0;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            queue.wait_until(|| {
                calls += 1;
                // Leave a wake token, so the park between the calls returns at once (no
                // scheduler here: the fallback's token).
                sched::unpark(ThreadId::MAIN);
                if calls == 3 {
                    panic!("condition fails");
                }
                false
            });
        }));
        assert!(result.is_err());
        assert_eq!(calls, 3);
        assert!(queue.is_empty());
        assert!(!queue.wake_one());
    }
}
