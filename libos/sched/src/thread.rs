//! The thread API (mirrors `std::thread`): [`spawn`], [`Builder`], [`JoinHandle::join`],
//! [`yield_now`], [`sleep`], [`current`].

use crate::policy::Priority;
use crate::sched;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use libos_core::sched::ThreadId;
use libos_core::sync::SpinLock;
use libos_core::time::Instant;
use libos_core::{Errno, Result};

/// The default stack size of spawned threads (plus one guard page below it).
pub const DEFAULT_STACK_SIZE: usize = crate::raw::POOLED_SIZE;
/// The smallest stack [`Builder::stack_size`] accepts.
pub const MIN_STACK_SIZE: usize = 8 * 1024;
/// The largest stack [`Builder::stack_size`] accepts.
pub const MAX_STACK_SIZE: usize = 64 * 1024 * 1024;

/// A thread's identity.
#[derive(Clone, Debug)]
pub struct Thread {
    id: ThreadId,
    name: Option<String>,
    serial: u64,
    priority: Priority,
}

impl Thread {
    /// The thread's id (never reused).
    pub fn id(&self) -> ThreadId {
        self.id
    }

    /// The thread's name: `"main"`, or the [`Builder::name`] it was spawned with (`None` for an
    /// unnamed thread, which reports show as `thread-N`, see [`Thread::serial`]).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The thread's serial number: `main` is 1, spawned threads count up from 2.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// The thread's priority.
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// Wakes the thread if it is parked (see [`libos_core::sched::unpark`]).
    pub fn unpark(&self) {
        libos_core::sched::unpark(self.id);
    }
}

/// The running thread.
pub fn current() -> Thread {
    let (id, name, serial, priority) = sched::current_info();
    Thread { id, name, serial, priority }
}

/// Lets other runnable threads run first.
pub fn yield_now() {
    libos_core::sched::yield_now();
}

/// Blocks the running thread for at least `duration`. A duration too large to represent
/// (e.g. `Duration::MAX`) sleeps forever.
pub fn sleep(duration: Duration) {
    sleep_until(Instant::now() + duration);
}

/// Blocks the running thread until `deadline` has passed.
pub fn sleep_until(deadline: Instant) {
    while Instant::now() < deadline {
        libos_core::sched::park_until(deadline);
    }
}

/// Blocks until another thread calls [`Thread::unpark`] (may return spuriously).
pub fn park() {
    libos_core::sched::park();
}

/// Where a thread's result goes. One joiner at most (`join` consumes the handle), so a parked
/// thread id replaces a wait queue: the finishing thread unparks it.
struct Packet<T> {
    done: AtomicBool,
    /// The joining thread's id, or [`NO_JOINER`].
    joiner: AtomicU64,
    result: SpinLock<Option<T>>,
}

const NO_JOINER: u64 = u64::MAX;

impl<T> Packet<T> {
    fn finish(&self, value: T) {
        *self.result.lock() = Some(value);
        // SeqCst on both sides: either the joiner sees `done`, or we see its id and unpark it
        // (a token if it has not parked yet), so the wake-up cannot be lost.
        self.done.store(true, Ordering::SeqCst);
        let joiner = self.joiner.load(Ordering::SeqCst);
        if joiner != NO_JOINER {
            libos_core::sched::unpark(ThreadId(joiner));
        }
    }
}

/// Owns a spawned thread's result. Dropping it detaches the thread (it keeps running, its
/// result is dropped). [`JoinHandle::join`] consumes the handle, so joining twice or joining a
/// detached thread cannot be written.
pub struct JoinHandle<T> {
    thread: Thread,
    packet: Arc<Packet<T>>,
}

impl<T> JoinHandle<T> {
    /// The thread.
    pub fn thread(&self) -> &Thread {
        &self.thread
    }

    /// True once the thread's closure has returned.
    pub fn is_finished(&self) -> bool {
        self.packet.done.load(Ordering::Acquire)
    }

    /// Waits for the thread to finish and returns its closure's value (at once if it already
    /// finished).
    ///
    /// # Panics
    /// When the thread joins itself (it would wait forever). (A panicking thread stops the
    /// whole kernel, as `panic = "abort"` does, so there is no "panicked" result.)
    pub fn join(self) -> T {
        let me = sched::current_id();
        assert!(self.thread.id != me, "thread '{}' tried to join itself", sched::DisplayName(self.thread.name(), self.thread.serial));
        self.packet.joiner.store(me.0, Ordering::SeqCst);
        while !self.packet.done.load(Ordering::SeqCst) {
            libos_core::sched::park();
        }
        self.packet.result.lock().take().expect("libos-sched: a finished thread left no result")
    }

    /// As [`JoinHandle::join`], giving up at `deadline`: `Err((ETIMEDOUT, self))` to retry.
    pub fn join_until(self, deadline: Instant) -> core::result::Result<T, (Errno, JoinHandle<T>)> {
        self.packet.joiner.store(sched::current_id().0, Ordering::SeqCst);
        while !self.packet.done.load(Ordering::SeqCst) {
            if Instant::now() >= deadline {
                self.packet.joiner.store(NO_JOINER, Ordering::SeqCst);
                return Err((Errno::ETIMEDOUT, self));
            }
            libos_core::sched::park_until(deadline);
        }
        Ok(self.join())
    }
}

/// Thread settings: name, stack size, priority, CPUs.
#[derive(Clone, Debug, Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
    priority: Option<Priority>,
    affinity: Option<u64>,
}

impl Builder {
    /// Default settings.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the thread (shown in panic messages).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Sets the usable stack size in bytes ([`MIN_STACK_SIZE`]..=[`MAX_STACK_SIZE`]).
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Sets the priority (honoured by policies with priorities, such as `rr`).
    pub fn priority(mut self, priority: Priority) -> Builder {
        self.priority = Some(priority);
        self
    }

    /// Limits the thread to the CPUs in `cpus` (bit `i`: CPU `i`, see [`cpus`]); default: every
    /// CPU. CPUs that do not run threads are ignored; a set with none that does fails the spawn
    /// with `EINVAL`.
    pub fn affinity(mut self, cpus: u64) -> Builder {
        self.affinity = Some(cpus);
        self
    }

    /// Starts a thread running `f`. Errors: `EINVAL` for a stack size out of range or an
    /// affinity without a CPU that runs threads, `ENOMEM` when the stack cannot be allocated.
    pub fn spawn<F, T>(self, f: F) -> Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let stack_size = self.stack_size.unwrap_or(DEFAULT_STACK_SIZE);
        if !(MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&stack_size) {
            return Err(Errno::EINVAL);
        }
        let priority = self.priority.unwrap_or(Priority::NORMAL);
        let packet = Arc::new(Packet { done: AtomicBool::new(false), joiner: AtomicU64::new(NO_JOINER), result: SpinLock::new(None) });
        let theirs = packet.clone();
        let entry = Box::new(move || theirs.finish(f()));
        let name = self.name;
        let (id, serial) = sched::spawn(name.clone(), priority, stack_size, self.affinity.unwrap_or(u64::MAX), entry)?;
        Ok(JoinHandle { thread: Thread { id, name, serial, priority }, packet })
    }
}

/// Starts a thread with default settings.
///
/// # Panics
/// When the thread cannot be created (out of memory), like `std::thread::spawn`.
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().spawn(f).unwrap_or_else(|e| panic!("spawning a thread failed: {e}"))
}

/// The CPUs that run threads, one bit each (bit `i`: CPU `i`): the boot CPU, and the CPUs the
/// platform started once the scheduler runs (`./x run --cpus N`, kernel option `smp=`).
pub fn cpus() -> u64 {
    sched::running_cpus()
}

/// The CPU the calling thread runs on now (it may move at its next switch).
pub fn current_cpu() -> usize {
    libos_core::hal::platform().cpu_id()
}

/// The CPUs the calling thread may run on.
pub fn affinity() -> u64 {
    sched::affinity_of(sched::current_id()).unwrap_or(u64::MAX)
}

/// The CPUs `thread` may run on (`ESRCH` for a thread that has exited).
pub fn affinity_of(thread: ThreadId) -> Result<u64> {
    sched::affinity_of(thread)
}

/// Limits `thread` (the caller too) to the CPUs in `cpus`; a thread running outside the new
/// set moves at its next switch (the caller at once). Errors: `EINVAL` when `cpus` has no CPU
/// that runs threads, `ESRCH` for a thread that has exited.
pub fn set_affinity(thread: ThreadId, cpus: u64) -> Result<()> {
    sched::set_affinity(thread, cpus)
}

/// Has `f` run once the calling thread has ended and no CPU runs on its stacks any more (on
/// the thread that reaps it, maybe with interrupts masked: `f` must not block). For threads
/// that end on memory someone frees when they end (posix-shim's C threads).
pub fn when_gone(f: impl FnOnce() + Send + 'static) -> Result<()> {
    sched::when_gone(Box::new(f))
}

/// Ends the calling thread now, without returning from its closure: for threads that run
/// foreign code (posix-shim's C threads, which end with the `exit` system call from deep inside
/// that code). A [`JoinHandle`] of such a thread never reports it finished, so only call this
/// on threads nobody joins; whatever the thread's stack still owns is not dropped.
pub fn exit() -> ! {
    sched::exit_current()
}
