//! The deadline queue: `(deadline, thread)` pairs of parked threads, earliest first, stored
//! without allocating when a thread parks.
//!
//! Why not a `BTreeSet` (what it was): inserting into a B-tree allocates nodes, so a thread
//! that parked with a timeout needed the heap, and with the heap exhausted could not block.
//! Here the entries sit in one `Vec` sorted latest-first (the earliest is popped from the end
//! in O(1)), whose capacity [`Deadlines::reserve`] keeps at one entry per thread at spawn (a
//! thread has at most one entry: its park's deadline), so [`Deadlines::insert`] never grows it.
//! Insertion and removal move the entries after the position (a `memmove` of 16 bytes per
//! later deadline), cheap for the few hundred sleepers a library OS has.

use alloc::vec::Vec;
use libos_core::sched::ThreadId;
use libos_core::time::Instant;
use libos_core::{Errno, Result};

/// Parked threads' deadlines, earliest first.
pub(crate) struct Deadlines {
    /// Sorted by `(deadline, thread)`, descending: the earliest entry is the last.
    entries: Vec<(Instant, ThreadId)>,
}

impl Deadlines {
    pub(crate) const fn new() -> Deadlines {
        Deadlines { entries: Vec::new() }
    }

    /// Makes room for `threads` entries, so inserts up to that many never allocate.
    pub(crate) fn reserve(&mut self, threads: usize) -> Result<()> {
        let additional = threads.saturating_sub(self.entries.len());
        self.entries.try_reserve(additional).map_err(|_| Errno::ENOMEM)
    }

    /// Where `entry` is or would go (descending order).
    fn position(&self, entry: &(Instant, ThreadId)) -> core::result::Result<usize, usize> {
        self.entries.binary_search_by(|probe| entry.cmp(probe))
    }

    /// Adds `entry` (a thread has at most one, so it is not there yet).
    pub(crate) fn insert(&mut self, entry: (Instant, ThreadId)) {
        if let Err(at) = self.position(&entry) {
            self.entries.insert(at, entry);
        }
    }

    /// Removes `entry` if present.
    pub(crate) fn remove(&mut self, entry: &(Instant, ThreadId)) {
        if let Ok(at) = self.position(entry) {
            self.entries.remove(at);
        }
    }

    /// The earliest entry.
    pub(crate) fn first(&self) -> Option<&(Instant, ThreadId)> {
        self.entries.last()
    }

    /// Removes the earliest entry.
    pub(crate) fn pop_first(&mut self) -> Option<(Instant, ThreadId)> {
        self.entries.pop()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn orders_like_a_btreeset_and_never_grows_once_reserved() {
        let mut deadlines = Deadlines::new();
        deadlines.reserve(64).unwrap();
        let capacity = deadlines.entries.capacity();
        let mut model = BTreeSet::new();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for step in 0..2_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let thread = ThreadId(state % 64);
            let deadline = Instant::from_nanos(state % 1000);
            match state % 4 {
                // A thread has at most one entry: replace any it had.
                0 | 1 => {
                    if let Some(&old) = model.iter().find(|(_, t)| *t == thread) {
                        model.remove(&old);
                        deadlines.remove(&old);
                    }
                    model.insert((deadline, thread));
                    deadlines.insert((deadline, thread));
                }
                2 => assert_eq!(deadlines.pop_first(), model.pop_first()),
                _ => {
                    if let Some(&entry) = model.iter().nth((step % 7) as usize) {
                        model.remove(&entry);
                        deadlines.remove(&entry);
                    }
                }
            }
            assert_eq!(deadlines.first(), model.first());
            assert_eq!(deadlines.is_empty(), model.is_empty());
        }
        assert_eq!(deadlines.entries.capacity(), capacity);
    }
}
