//! Locks for a kernel with interrupts.
//!
//! - [`SpinLock`]: a plain spin lock (`spin::Mutex`), for data never touched by interrupt handlers.
//! - [`IrqSpinLock`]: masks interrupts on this CPU while held, so an interrupt handler that takes
//!   the same lock cannot deadlock against the code it interrupted. The console, the heap and
//!   anything shared with an interrupt handler use it.
//!
//! Both are `lock_api` mutexes, so blocking locks from the scheduler can share the same guard
//! types later.

use crate::hal::InterruptState;
use crate::interrupts;
use core::cell::Cell;
use core::sync::atomic::{AtomicBool, Ordering};

/// One-time initialisation (a spinning `Once`).
pub use spin::Once;

/// A spin lock for data that interrupt handlers never touch.
pub type SpinLock<T> = spin::Mutex<T>;

/// A spin lock that masks interrupts while held.
pub type IrqSpinLock<T> = lock_api::Mutex<IrqRawSpinLock, T>;

/// Guard of an [`IrqSpinLock`].
pub type IrqSpinLockGuard<'a, T> = lock_api::MutexGuard<'a, IrqRawSpinLock, T>;

/// The raw lock behind [`IrqSpinLock`]: a test-and-test-and-set spin lock that saves the
/// interrupt state of the CPU that takes it and restores it on unlock.
pub struct IrqRawSpinLock {
    locked: AtomicBool,
    /// The interrupt state before `lock`; only the holder reads or writes it.
    saved: Cell<InterruptState>,
}

// SAFETY: `saved` is only accessed by the CPU holding the lock (written after acquiring `locked`,
// read before releasing it), so the `Cell` is never accessed concurrently.
unsafe impl Sync for IrqRawSpinLock {}

#[inline(always)]
fn mask_interrupts() -> InterruptState {
    interrupts::disable()
}

#[inline(always)]
fn restore_interrupts(state: InterruptState) {
    interrupts::restore(state);
}

// SAFETY: `lock` returns only after this caller swapped `locked` from false to true with Acquire
// ordering, and `unlock` releases it with Release ordering, so at most one holder exists and its
// writes are visible to the next one.
unsafe impl lock_api::RawMutex for IrqRawSpinLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = IrqRawSpinLock { locked: AtomicBool::new(false), saved: Cell::new(InterruptState(false)) };

    type GuardMarker = lock_api::GuardNoSend;

    #[inline]
    fn lock(&self) {
        // The uncontended case inline (the scheduler takes this lock on every switch).
        if !self.try_lock() {
            self.lock_contended();
        }
    }

    #[inline]
    fn try_lock(&self) -> bool {
        let state = mask_interrupts();
        if self.locked.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            self.saved.set(state);
            true
        } else {
            restore_interrupts(state);
            false
        }
    }

    unsafe fn unlock(&self) {
        let state = self.saved.get();
        self.locked.store(false, Ordering::Release);
        restore_interrupts(state);
    }

    fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }
}

impl IrqRawSpinLock {
    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        loop {
            // Interrupts are enabled again here (if they were): pending ones run while we wait
            // on a plain load.
            while self.locked.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
            if lock_api::RawMutex::try_lock(self) {
                return;
            }
        }
    }
}

/// Releases `guard`'s lock but leaves interrupts masked, and returns the interrupt state saved
/// when it was locked, for the caller to restore later. The scheduler needs this: it releases
/// its lock before switching threads, which must happen with interrupts still masked.
pub fn unlock_keeping_interrupts_masked<T>(guard: IrqSpinLockGuard<'_, T>) -> InterruptState {
    let mutex = IrqSpinLockGuard::mutex(&guard);
    // SAFETY: we hold the lock through `guard`, so reading the raw lock is sound; `raw` stays
    // borrowed from the mutex, which outlives this function.
    let raw = unsafe { mutex.raw() };
    let saved = raw.saved.get();
    core::mem::forget(guard);
    raw.locked.store(false, Ordering::Release);
    saved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn irq_lock_excludes_and_releases() {
        let lock = IrqSpinLock::new(5);
        {
            let mut guard = lock.lock();
            *guard += 1;
            assert!(lock.try_lock().is_none());
        }
        assert_eq!(*lock.try_lock().expect("unlocked after drop"), 6);
        let guard = lock.lock();
        assert_eq!(unlock_keeping_interrupts_masked(guard), InterruptState(false));
        assert!(!lock.is_locked());
    }
}
