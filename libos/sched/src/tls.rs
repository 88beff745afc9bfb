//! Thread-local storage for Rust code: an explicit key API ([`Key`]). (`#[thread_local]` would
//! need a per-thread TLS register block set up by the switch; C TLS comes with posix-shim.)
//!
//! ```ignore
//! static COUNTER: Key<u64> = Key::new();
//! COUNTER.set(5);
//! assert_eq!(COUNTER.with(|v| v.copied()), Some(5)); // other threads see None
//! ```
//!
//! Each thread has its own slot per key; values are dropped when the thread exits. [`Key::with`]
//! lends the value out of the slot while `f` runs, so a nested `with` of the *same* key inside
//! `f` sees `None` (never a second mutable reference).

use crate::sched;
use alloc::boxed::Box;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicUsize, Ordering};

static NEXT_KEY: AtomicUsize = AtomicUsize::new(0);

/// A thread-local slot holding a `T` per thread.
pub struct Key<T> {
    /// Key index + 1 (0: not assigned yet).
    index: AtomicUsize,
    _marker: PhantomData<fn() -> T>,
}

impl<T: Send + 'static> Default for Key<T> {
    fn default() -> Self {
        Key::new()
    }
}

impl<T: Send + 'static> Key<T> {
    /// A key (usable in a `static`); its index is assigned on first use.
    pub const fn new() -> Key<T> {
        Key { index: AtomicUsize::new(0), _marker: PhantomData }
    }

    fn index(&self) -> usize {
        let index = self.index.load(Ordering::Acquire);
        if index != 0 {
            return index - 1;
        }
        let fresh = NEXT_KEY.fetch_add(1, Ordering::Relaxed) + 1;
        match self.index.compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => fresh - 1,
            Err(other) => other - 1,
        }
    }

    fn take_slot(&self) -> Option<Box<T>> {
        let index = self.index();
        let mut s = sched::lock();
        let current = s.current();
        let slots = &mut s.tcb(current).tls;
        let value = slots.get_mut(index).and_then(Option::take)?;
        Some(value.downcast::<T>().expect("a TLS slot holds its key's type"))
    }

    fn put_slot(&self, value: Option<Box<T>>) -> Option<Box<T>> {
        let index = self.index();
        let mut s = sched::lock();
        let current = s.current();
        let slots = &mut s.tcb(current).tls;
        if slots.len() <= index {
            slots.resize_with(index + 1, || None);
        }
        let old = core::mem::replace(&mut slots[index], value.map(|v| v as Box<dyn core::any::Any + Send>));
        old.map(|v| v.downcast::<T>().expect("a TLS slot holds its key's type"))
    }

    /// Sets this thread's value, returning the previous one.
    pub fn set(&self, value: T) -> Option<T> {
        self.put_slot(Some(Box::new(value))).map(|b| *b)
    }

    /// Removes and returns this thread's value.
    pub fn take(&self) -> Option<T> {
        self.take_slot().map(|b| *b)
    }

    /// Calls `f` with this thread's value (`None` if unset).
    pub fn with<R>(&self, f: impl FnOnce(Option<&mut T>) -> R) -> R {
        let mut value = self.take_slot();
        let result = f(value.as_deref_mut());
        if value.is_some() {
            // Drops whatever `f` may have set meanwhile through a nested `set`; ours wins.
            drop(self.put_slot(value));
        }
        result
    }
}
