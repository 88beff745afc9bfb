//! `rr`: preemptive round-robin with priorities. The highest priority level with runnable
//! threads runs; threads of one level take turns, each for at most one time slice while others
//! of its level wait. A woken thread of higher priority than the running one preempts it at the
//! next interrupt return. (Lower levels can starve while higher ones stay busy: that is what
//! strict priorities mean.)

use super::{Policy, Priority, Reason, ThreadQueue};
use alloc::boxed::Box;
use core::time::Duration;
use libos_core::sched::ThreadId;

/// Priority levels: one per value of [`Priority`]'s `u8`.
const LEVELS: usize = 256;
const WORDS: usize = LEVELS / 64;

/// The round-robin run queue.
pub struct RoundRobin {
    /// One FIFO per priority level, indexed by the priority (6 KiB of empty queues, which
    /// allocate only when a level is first used, and keep their buffer when emptied, so
    /// `pick_next` never frees memory).
    levels: Box<[ThreadQueue; LEVELS]>,
    /// Bit `p % 64` of word `p / 64` is set while level `p` holds threads, and bit `w` of
    /// `words` while word `w` is non-zero: `enqueue` and `pick_next` find the highest level
    /// with two leading-zero counts, no scan (they run on every switch).
    occupied: [u64; WORDS],
    words: u8,
    slice: Duration,
}

impl RoundRobin {
    /// An empty run queue with time slice `slice`.
    pub fn new(slice: Duration) -> RoundRobin {
        RoundRobin { levels: Box::new(core::array::from_fn(|_| ThreadQueue::new())), occupied: [0; WORDS], words: 0, slice }
    }
}

impl Policy for RoundRobin {
    fn name(&self) -> &'static str {
        "rr"
    }

    fn enqueue(&mut self, thread: ThreadId, priority: Priority, _reason: Reason) {
        let level = usize::from(priority.0);
        let queue = &mut self.levels[level];
        if queue.is_empty() {
            self.occupied[level / 64] |= 1 << (level % 64);
            self.words |= 1 << (level / 64);
        }
        queue.push_back(thread);
    }

    fn pick_next(&mut self) -> Option<ThreadId> {
        if self.words == 0 {
            return None;
        }
        // The highest occupied level: the highest non-zero word, then its highest bit.
        let word = (u8::BITS - 1 - self.words.leading_zeros()) as usize % WORDS;
        let bit = 63 - self.occupied[word].leading_zeros() as usize;
        let queue = &mut self.levels[(word * 64 + bit) % LEVELS];
        let thread = queue.pop_front();
        if queue.is_empty() {
            self.occupied[word] &= !(1 << bit);
            if self.occupied[word] == 0 {
                self.words &= !(1 << word);
            }
        }
        thread
    }

    fn is_empty(&self) -> bool {
        self.words == 0
    }

    fn reserve(&mut self, priority: Priority, threads: usize) -> libos_core::Result<()> {
        // Only levels that threads were spawned at are ever used (priorities are fixed at spawn).
        self.levels[usize::from(priority.0)].reserve(threads)
    }

    fn time_slice(&self) -> Option<Duration> {
        Some(self.slice)
    }

    fn preempts(&self, running: Priority, woken: Priority) -> bool {
        woken > running
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn drain(rr: &mut RoundRobin) -> Vec<u64> {
        core::iter::from_fn(|| rr.pick_next()).map(|t| t.0).collect()
    }

    #[test]
    fn higher_priority_first_then_round_robin() {
        let mut rr = RoundRobin::new(Duration::from_millis(5));
        rr.enqueue(ThreadId(10), Priority(1), Reason::Spawned);
        rr.enqueue(ThreadId(11), Priority(9), Reason::Spawned);
        rr.enqueue(ThreadId(12), Priority(1), Reason::Woken);
        rr.enqueue(ThreadId(13), Priority(9), Reason::Preempted);
        rr.enqueue(ThreadId(14), Priority(5), Reason::Woken);
        rr.enqueue(ThreadId(15), Priority(0), Reason::Woken);
        assert_eq!(drain(&mut rr), [11, 13, 14, 10, 12, 15]);
        assert!(rr.is_empty());
        assert_eq!(rr.time_slice(), Some(Duration::from_millis(5)));
    }

    #[test]
    fn a_preempted_thread_goes_behind_its_peers() {
        let mut rr = RoundRobin::new(Duration::from_millis(1));
        for id in 1..=3 {
            rr.enqueue(ThreadId(id), Priority::NORMAL, Reason::Spawned);
        }
        // Simulate three slices: run the head, preempt it, requeue.
        let mut ran = Vec::new();
        for _ in 0..6 {
            let t = rr.pick_next().unwrap();
            ran.push(t.0);
            rr.enqueue(t, Priority::NORMAL, Reason::Preempted);
        }
        assert_eq!(ran, [1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn extreme_priorities_and_refilling_levels() {
        let mut rr = RoundRobin::new(Duration::from_millis(1));
        rr.enqueue(ThreadId(1), Priority(0), Reason::Spawned);
        rr.enqueue(ThreadId(2), Priority(255), Reason::Spawned);
        rr.enqueue(ThreadId(3), Priority(64), Reason::Spawned);
        rr.enqueue(ThreadId(4), Priority(63), Reason::Spawned);
        assert_eq!(rr.pick_next(), Some(ThreadId(2)));
        rr.enqueue(ThreadId(5), Priority(255), Reason::Woken); // the emptied level fills again
        assert_eq!(drain(&mut rr), [5, 3, 4, 1]);
        assert!(rr.is_empty() && rr.pick_next().is_none());
    }

    #[test]
    fn only_more_urgent_threads_preempt() {
        let rr = RoundRobin::new(Duration::from_millis(1));
        assert!(rr.preempts(Priority(1), Priority(2)));
        assert!(!rr.preempts(Priority(2), Priority(2)));
        assert!(!rr.preempts(Priority(3), Priority(2)));
    }
}
