//! The scheduling-policy trait. A policy only orders runnable threads of one CPU; the
//! scheduler core (the private `sched` module) owns thread states, stacks, switching and timers.

use alloc::boxed::Box;
use core::time::Duration;
use libos_core::sched::ThreadId;

pub use queue::ThreadQueue;

#[cfg(any(test, feature = "coop"))]
pub mod coop;
mod queue;
#[cfg(any(test, feature = "rr"))]
pub mod rr;

/// A thread's priority: larger runs first, in policies that honour priorities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(pub u8);

impl Priority {
    /// The priority of `main` and of threads spawned without one.
    pub const NORMAL: Priority = Priority(8);
}

/// Why a thread enters the run queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Just spawned.
    Spawned,
    /// Was blocked (parked or sleeping) and was woken.
    Woken,
    /// Called `yield_now`.
    Yielded,
    /// Was running when the scheduler preempted it (time slice over, or a more urgent thread).
    Preempted,
}

/// A scheduling policy: the run queue of one CPU. The scheduler calls it with its lock held and
/// interrupts masked, so methods must be short, must not block, and should not allocate in
/// `pick_next` (it runs on every switch).
pub trait Policy: Send {
    /// The name used on the kernel command line (`sched=NAME`).
    fn name(&self) -> &'static str;

    /// Adds a runnable thread.
    fn enqueue(&mut self, thread: ThreadId, priority: Priority, reason: Reason);

    /// Removes and returns the thread to run next; `None` runs the idle thread.
    fn pick_next(&mut self) -> Option<ThreadId>;

    /// True when no thread is queued.
    fn is_empty(&self) -> bool;

    /// Makes room for `threads` threads of `priority` to be queued at once, so that
    /// [`Policy::enqueue`] never allocates: a thread woken from a wait must not need the heap
    /// (the heap may be exhausted). Called at spawn, which may allocate; `Err(ENOMEM)` fails
    /// the spawn.
    fn reserve(&mut self, priority: Priority, threads: usize) -> libos_core::Result<()>;

    /// The time slice after which a running thread is preempted when others are runnable;
    /// `None` for a cooperative policy (then only blocking and yielding switch threads).
    fn time_slice(&self) -> Option<Duration> {
        None
    }

    /// Whether a thread of `woken` priority that just became runnable should preempt the
    /// running thread of `running` priority: at once when it was spawned, else at the return
    /// from the interrupt that woke it (a wake-up from thread context, such as a mutex unlock,
    /// takes effect at the next interrupt).
    fn preempts(&self, running: Priority, woken: Priority) -> bool {
        let _ = (running, woken);
        false
    }
}

/// Settings the command line gives every policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The time slice of preemptive policies.
    pub time_slice: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config { time_slice: Duration::from_millis(10) }
    }
}

/// A compiled-in policy: its command-line name and constructor.
pub struct Available {
    /// `sched=NAME`.
    pub name: &'static str,
    /// Builds one CPU's run queue.
    pub new: fn(Config) -> Box<dyn Policy>,
}

/// The policies compiled into this image, the default first (`rr` when compiled in, else
/// `coop`).
pub const AVAILABLE: &[Available] = &[
    #[cfg(feature = "rr")]
    Available { name: "rr", new: |config| Box::new(rr::RoundRobin::new(config.time_slice)) },
    #[cfg(feature = "coop")]
    Available { name: "coop", new: |_| Box::new(coop::Fifo::new()) },
];

/// The compiled-in policy called `name` (`None`: the default).
pub fn by_name(name: Option<&str>) -> Option<&'static Available> {
    match name {
        Some(name) => AVAILABLE.iter().find(|a| a.name == name),
        None => AVAILABLE.first(),
    }
}
