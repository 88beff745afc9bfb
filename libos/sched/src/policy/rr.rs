//! `rr`: preemptive round-robin with priorities. The highest priority level with runnable
//! threads runs; threads of one level take turns, each for at most one time slice while others
//! of its level wait. A woken thread of higher priority than the running one preempts it at the
//! next interrupt return. (Lower levels can starve while higher ones stay busy: that is what
//! strict priorities mean.)

use super::{Policy, Priority, Reason};
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::time::Duration;
use libos_core::sched::ThreadId;

/// The round-robin run queue.
pub struct RoundRobin {
    /// One FIFO per priority in use, highest priority first (a short list: a linear scan beats
    /// a tree here). Levels are kept when empty, so `pick_next` never frees memory.
    levels: Vec<(Priority, VecDeque<ThreadId>)>,
    queued: usize,
    slice: Duration,
}

impl RoundRobin {
    /// An empty run queue with time slice `slice`.
    pub fn new(slice: Duration) -> RoundRobin {
        RoundRobin { levels: Vec::new(), queued: 0, slice }
    }
}

impl Policy for RoundRobin {
    fn name(&self) -> &'static str {
        "rr"
    }

    fn enqueue(&mut self, thread: ThreadId, priority: Priority, _reason: Reason) {
        let at = match self.levels.iter().position(|(p, _)| *p <= priority) {
            Some(i) if self.levels[i].0 == priority => i,
            Some(i) => {
                self.levels.insert(i, (priority, VecDeque::new()));
                i
            }
            None => {
                self.levels.push((priority, VecDeque::new()));
                self.levels.len() - 1
            }
        };
        self.levels[at].1.push_back(thread);
        self.queued += 1;
    }

    fn pick_next(&mut self) -> Option<ThreadId> {
        let thread = self.levels.iter_mut().find_map(|(_, queue)| queue.pop_front())?;
        self.queued -= 1;
        Some(thread)
    }

    fn is_empty(&self) -> bool {
        self.queued == 0
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
    fn only_more_urgent_threads_preempt() {
        let rr = RoundRobin::new(Duration::from_millis(1));
        assert!(rr.preempts(Priority(1), Priority(2)));
        assert!(!rr.preempts(Priority(2), Priority(2)));
        assert!(!rr.preempts(Priority(3), Priority(2)));
    }
}
