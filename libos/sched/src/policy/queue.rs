//! [`ThreadQueue`]: the FIFO of thread ids that policies build on.
//!
//! Why not `VecDeque`: the release profile optimises for size (`opt-level = "s"`), and there
//! `VecDeque::push_back` stays an out-of-line call of about 20 instructions on every switch.
//! This ring keeps a power-of-two buffer and two free-running counters, so the push and pop that
//! run on every switch inline to a handful of instructions; only growing is out of line.

use alloc::vec::Vec;
use libos_core::sched::ThreadId;

/// A FIFO of thread ids (a growable ring buffer; it never shrinks, so popping never frees).
#[derive(Default)]
pub struct ThreadQueue {
    /// The ring; its length is zero or a power of two.
    slots: Vec<ThreadId>,
    /// Counts pops; `head % slots.len()` is the oldest entry.
    head: usize,
    /// Counts pushes; `tail - head` entries are queued.
    tail: usize,
}

impl ThreadQueue {
    /// An empty queue (allocates on the first push).
    pub const fn new() -> ThreadQueue {
        ThreadQueue { slots: Vec::new(), head: 0, tail: 0 }
    }

    /// How many threads are queued.
    #[inline]
    pub fn len(&self) -> usize {
        self.tail.wrapping_sub(self.head)
    }

    /// True when no thread is queued.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    /// Appends `thread`.
    #[inline]
    pub fn push_back(&mut self, thread: ThreadId) {
        if self.len() == self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        self.slots[self.tail & mask] = thread;
        self.tail = self.tail.wrapping_add(1);
    }

    /// Removes and returns the oldest thread.
    #[inline]
    pub fn pop_front(&mut self) -> Option<ThreadId> {
        if self.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let thread = self.slots[self.head & mask];
        self.head = self.head.wrapping_add(1);
        Some(thread)
    }

    /// Grows the ring (if needed) so that `threads` entries fit without growing again, so
    /// [`ThreadQueue::push_back`] up to that length never allocates. `ENOMEM` if the heap
    /// cannot hold it (the queue is unchanged then).
    pub fn reserve(&mut self, threads: usize) -> libos_core::Result<()> {
        if threads <= self.slots.len() {
            return Ok(());
        }
        let capacity = threads.checked_next_power_of_two().ok_or(libos_core::Errno::ENOMEM)?.max(8);
        self.resize(capacity)
    }

    /// Doubles the ring (at least 8 slots), keeping the order. Only reached when more threads
    /// are queued than were reserved for.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(8);
        if self.resize(capacity).is_err() {
            alloc::alloc::handle_alloc_error(core::alloc::Layout::new::<ThreadId>());
        }
    }

    /// Moves the entries into a ring of `capacity` (a power of two, at least `len`) slots.
    fn resize(&mut self, capacity: usize) -> libos_core::Result<()> {
        let len = self.len();
        let mut slots = Vec::new();
        slots.try_reserve_exact(capacity).map_err(|_| libos_core::Errno::ENOMEM)?;
        while let Some(thread) = self.pop_front() {
            slots.push(thread);
        }
        slots.resize(capacity, ThreadId(0));
        self.slots = slots;
        self.head = 0;
        self.tail = len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn behaves_like_a_vecdeque_across_growth_and_wrap_around() {
        let mut queue = ThreadQueue::new();
        let mut model = VecDeque::new();
        assert_eq!(queue.pop_front(), None);
        // A deterministic mix of pushes and pops that wraps the ring and grows it several times.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for id in 0..5_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if state % 3 == 0 {
                assert_eq!(queue.pop_front(), model.pop_front());
            } else {
                queue.push_back(ThreadId(id));
                model.push_back(ThreadId(id));
            }
            assert_eq!((queue.len(), queue.is_empty()), (model.len(), model.is_empty()));
        }
        while let Some(thread) = model.pop_front() {
            assert_eq!(queue.pop_front(), Some(thread));
        }
        assert_eq!(queue.pop_front(), None);
    }

    #[test]
    fn reserved_queue_does_not_grow() {
        let mut queue = ThreadQueue::new();
        queue.reserve(20).unwrap();
        let capacity = queue.slots.len();
        assert!(capacity >= 20);
        for id in 0..20 {
            queue.push_back(ThreadId(id));
        }
        assert_eq!(queue.slots.len(), capacity);
        assert_eq!(queue.pop_front(), Some(ThreadId(0)));
        queue.reserve(usize::MAX).unwrap_err();
        assert_eq!(queue.len(), 19);
    }

    #[test]
    fn counters_may_wrap() {
        let mut queue = ThreadQueue { slots: Vec::new(), head: usize::MAX - 2, tail: usize::MAX - 2 };
        for id in 0..20 {
            queue.push_back(ThreadId(id));
        }
        assert_eq!(core::iter::from_fn(|| queue.pop_front()).map(|t| t.0).collect::<Vec<_>>(), (0..20).collect::<Vec<_>>());
    }
}
