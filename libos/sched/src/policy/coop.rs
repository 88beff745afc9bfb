//! `coop`: cooperative FIFO. Threads run until they block, sleep, yield or exit; runnable
//! threads take turns in arrival order; priorities are ignored. No time slice, so the timer
//! only fires for sleeping threads.

use super::{Policy, Priority, Reason, ThreadQueue};
use libos_core::sched::ThreadId;

/// The cooperative FIFO run queue.
#[derive(Default)]
pub struct Fifo {
    queue: ThreadQueue,
}

impl Fifo {
    /// An empty run queue.
    pub fn new() -> Fifo {
        Fifo::default()
    }
}

impl Policy for Fifo {
    fn name(&self) -> &'static str {
        "coop"
    }

    fn enqueue(&mut self, thread: ThreadId, _priority: Priority, _reason: Reason) {
        self.queue.push_back(thread);
    }

    fn pick_next(&mut self) -> Option<ThreadId> {
        self.queue.pop_front()
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn reserve(&mut self, _priority: Priority, threads: usize) -> libos_core::Result<()> {
        self.queue.reserve(threads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_in_first_out_whatever_the_priority() {
        let mut fifo = Fifo::new();
        assert!(fifo.is_empty() && fifo.pick_next().is_none());
        fifo.enqueue(ThreadId(3), Priority(1), Reason::Spawned);
        fifo.enqueue(ThreadId(4), Priority(200), Reason::Woken);
        fifo.enqueue(ThreadId(3 + 2), Priority::NORMAL, Reason::Yielded);
        let order: Vec<_> = core::iter::from_fn(|| fifo.pick_next()).collect();
        assert_eq!(order, [ThreadId(3), ThreadId(4), ThreadId(5)]);
        assert_eq!(fifo.time_slice(), None);
        assert!(!fifo.preempts(Priority(0), Priority(255)));
    }
}
