//! The scheduler hook: how crates below `libos-sched` (drivers, file systems, the network stack)
//! block and wake threads without depending on it.
//!
//! A scheduler implements [`Scheduler`] and registers it once at boot with [`set_scheduler`].
//! Everything else calls the free functions here ([`current`], [`park`], [`park_until`],
//! [`unpark`], [`yield_now`]); the blocking primitives in [`crate::blocking`] are built on them.
//!
//! The contract is *park/unpark with a wake token* (as `std::thread::park`): [`unpark`] on a
//! thread that is not parked leaves a token, and that thread's next [`park`] consumes it and
//! returns at once. So a wake-up that races with going to sleep is never lost, whatever the
//! interleaving; the price is that `park` may return spuriously, and every caller re-checks its
//! condition in a loop.
//!
//! Without a registered scheduler (an image without a `sched-*` feature) the same functions fall
//! back to one implicit thread ([`ThreadId::MAIN`]) that halts the CPU with interrupts enabled
//! until an interrupt handler calls [`unpark`], so drivers block the same way in both modes.

use crate::hal;
use crate::time::Instant;
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Once;

/// A thread's id. Ids are never reused while the system runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ThreadId(pub u64);

impl ThreadId {
    /// The thread that runs the app's `main` (and the only thread without a scheduler).
    pub const MAIN: ThreadId = ThreadId(1);
}

/// What a scheduler provides to the rest of the system. Every method may be called with
/// interrupts masked or enabled; only [`Scheduler::unpark`] may be called from an interrupt
/// handler.
pub trait Scheduler: Sync {
    /// The running thread.
    fn current(&self) -> ThreadId;

    /// Calls `f` with the running thread's name (for panic messages).
    fn with_current_name(&self, f: &mut dyn FnMut(&str));

    /// Blocks the running thread until [`Scheduler::unpark`] is called for it, or returns at
    /// once if a wake token is pending (consuming it). May return spuriously.
    fn park(&self);

    /// As [`Scheduler::park`], but also returns once `deadline` has passed.
    fn park_until(&self, deadline: Instant);

    /// Makes `thread` runnable if it is parked, else leaves it a wake token. Unknown or exited
    /// threads are ignored. Safe to call from interrupt handlers.
    fn unpark(&self, thread: ThreadId);

    /// Lets other runnable threads run first.
    fn yield_now(&self);

    /// If `thread` runs on another CPU now, interrupts that CPU, so that the thread sees work
    /// posted for it (a signal: libos-core's `syscall` return work) when the interrupt returns;
    /// nothing otherwise. Default: nothing (a scheduler of one CPU).
    fn kick(&self, thread: ThreadId) {
        let _ = thread;
    }

    /// If `thread` is parked, makes it wake by `deadline` at the latest (an earlier deadline of
    /// its own stays) without waking it now, and returns true; returns false when it is not
    /// parked. Lets a thread that sleeps until its next timer learn of an earlier one without a
    /// switch to it and back. The default (a scheduler without it) returns false.
    fn wake_by(&self, thread: ThreadId, deadline: Instant) -> bool {
        let _ = (thread, deadline);
        false
    }
}

static SCHEDULER: Once<&'static dyn Scheduler> = Once::new();

/// Registers the scheduler (once, at boot, before any thread but the main one exists).
pub fn set_scheduler(scheduler: &'static dyn Scheduler) {
    SCHEDULER.call_once(|| scheduler);
}

/// The registered scheduler, if any.
pub fn scheduler() -> Option<&'static dyn Scheduler> {
    SCHEDULER.get().copied()
}

/// The fallback's wake token (one implicit thread).
static FALLBACK_TOKEN: AtomicBool = AtomicBool::new(false);

/// The running thread ([`ThreadId::MAIN`] without a scheduler).
pub fn current() -> ThreadId {
    scheduler().map_or(ThreadId::MAIN, |s| s.current())
}

/// Calls `f` with the running thread's name (`"main"` without a scheduler).
pub fn with_current_name(f: &mut dyn FnMut(&str)) {
    match scheduler() {
        Some(s) => s.with_current_name(f),
        None => f("main"),
    }
}

/// Blocks until [`unpark`] (see [`Scheduler::park`]). Without a scheduler: halts the CPU until
/// an interrupt handler unparks the one thread.
pub fn park() {
    match scheduler() {
        Some(s) => s.park(),
        None => fallback_park(None),
    }
}

/// Blocks until [`unpark`] or `deadline` (see [`Scheduler::park_until`]). Without a scheduler
/// this arms the platform's one-shot timer for `deadline`.
pub fn park_until(deadline: Instant) {
    match scheduler() {
        Some(s) => s.park_until(deadline),
        None => fallback_park(Some(deadline)),
    }
}

/// Wakes `thread` (see [`Scheduler::unpark`]). Safe in interrupt handlers.
pub fn unpark(thread: ThreadId) {
    match scheduler() {
        Some(s) => s.unpark(thread),
        None => FALLBACK_TOKEN.store(true, Ordering::Release),
    }
}

/// See [`Scheduler::kick`].
pub fn kick(thread: ThreadId) {
    if let Some(s) = scheduler() {
        s.kick(thread);
    }
}

/// See [`Scheduler::wake_by`]: true when `thread` is parked and now wakes by `deadline`; false
/// (the caller should [`unpark`] it instead) when it is not parked or there is no scheduler.
/// Safe in interrupt handlers.
pub fn wake_by(thread: ThreadId, deadline: Instant) -> bool {
    scheduler().is_some_and(|s| s.wake_by(thread, deadline))
}

/// Lets other threads run (nothing to do without a scheduler).
pub fn yield_now() {
    if let Some(s) = scheduler() {
        s.yield_now();
    }
}

fn fallback_park(deadline: Option<Instant>) {
    let Some(platform) = hal::try_platform() else {
        // No platform (early boot or a host test without one): nothing can wake us but the
        // token, so just consume it if present.
        FALLBACK_TOKEN.store(false, Ordering::Relaxed);
        return;
    };
    let state = platform.disable_interrupts();
    if let Some(deadline) = deadline {
        platform.set_timer(Some(deadline));
    }
    // Check and halt with interrupts masked: `wait_for_interrupt` enables them atomically with
    // the halt, so an unpark from an interrupt between the check and the halt wakes the halt.
    while !FALLBACK_TOKEN.swap(false, Ordering::Acquire) {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        crate::idle::enter();
        platform.wait_for_interrupt();
        crate::idle::leave();
        platform.disable_interrupts();
    }
    platform.restore_interrupts(state);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_token_makes_park_return() {
        // No scheduler is registered in core's own tests.
        assert_eq!(current(), ThreadId::MAIN);
        unpark(ThreadId::MAIN);
        park(); // consumes the token instead of blocking
        let mut name = String::new();
        with_current_name(&mut |n| name.push_str(n));
        assert_eq!(name, "main");
    }
}
