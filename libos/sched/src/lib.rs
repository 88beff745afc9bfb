//! # libos-sched: threads and schedulers
//!
//! Kernel threads with their own stacks (a guard page below each where the platform can unmap
//! one, and a canary at the bottom everywhere), and a scheduler with pluggable policies.
//! `libos` enables it with the features `sched-coop` / `sched-preempt`, calls [`init`] during
//! boot with the policy the kernel command line picked (`sched=coop|rr`), and re-exports
//! [`thread`], [`sync`] and [`tls`] as `libos::thread`, `libos::sync`, `libos::thread::tls`.
//!
//! - [`thread`]: `spawn`, [`thread::Builder`] (name, stack size, priority),
//!   [`thread::JoinHandle::join`] returning the closure's value, `yield_now`, `sleep`, `current`.
//! - [`sync`]: `Mutex`, `Condvar`, `Semaphore`, `Once`, `Event` ("block until an interrupt wakes
//!   me") and `WaitQueue`. They live in libos-core ([`libos_core::blocking`]) on the core's
//!   scheduler hook, so drivers use them without depending on this crate; this crate makes them
//!   block by registering the hook.
//! - [`tls`]: thread-local storage keys.
//! - [`policy`]: the [`Policy`] trait and the compiled-in policies: `coop` (feature `coop`,
//!   cooperative FIFO) and `rr` (feature `rr`, preemptive round-robin with priorities and a
//!   time slice). When both are compiled in, `rr` is the default.
//! - `sched` (internal): control blocks, per-CPU run queues, switching, the deadline queue
//!   driving the one-shot timers (tickless: no periodic tick, idle threads halt their CPU).
//!
//! ## How a switch happens
//! - Cooperative (block, sleep, yield, exit): mask interrupts, take the scheduler lock, let the
//!   policy pick, release the lock with interrupts still masked, and call the platform's
//!   switch routine ([`libos_core::hal::SwitchRoutine`], callee-saved registers only). The
//!   resumed thread restores its own interrupt state.
//! - What a yield switch costs (`./x bench sched`, about 190-235 guest instructions): the lock
//!   masks interrupts inline (`libos_core::interrupts`, no `dyn Platform` call), the policy's
//!   queue operations are a few instructions ([`policy::ThreadQueue`]; `rr` finds its highest
//!   level with two leading-zero counts), the switch routine is called directly, and nothing
//!   allocates or reads the clock.
//! - Preemptive: the timer interrupt (or a wake-up from any interrupt) asks for preemption via
//!   `hal::irq::request_preemption`; when the interrupt returns to thread mode the platform
//!   calls the scheduler on the interrupted thread's stack with all its registers saved:
//!   interrupts run on a separate stack on both architectures (nothing is written below the
//!   interrupted stack pointer, so C code's red zone survives), and the trap frame plus the
//!   complete FP/SIMD state (x86_64: XSAVE/FXSAVE; aarch64: all `q` registers, FPCR, FPSR) is
//!   copied to the thread's stack below a 128-byte red zone, where the interrupt return enters
//!   a trampoline that calls the scheduler and, once the thread resumes, restores everything.
//!   A voluntary switch saves only callee-saved state (plus the FP control registers), so
//!   the FP cost stays on the preemption path. `coop` only lets the idle thread be preempted; `rr` preempts a thread that ran
//!   a whole slice while others wait (a slice is not restarted on every switch, so each thread
//!   gets between one and two slices) and a thread woken with a higher priority.
//! - `main` is the boot code's own context; every other thread has a heap stack (default
//!   64 KiB) with an unmapped guard page below and a canary at the bottom. Default-size stacks of
//!   exited threads are recycled (up to 8) with their guard page in place.
//!
//! ## Several CPUs
//! Every CPU the platform started (`libos_core::cpus`) joins at [`init_named`] with a run queue of
//! its own (a policy object per CPU) and an idle thread on the stack it started on. One lock
//! guards the whole scheduler; a `switched_out` flag per thread hands threads safely between
//! CPUs (a CPU never loads a thread whose registers another CPU is still saving). Placement: a
//! woken or new thread goes to an idle CPU it may run on (an IPI wakes it), an idle CPU steals
//! from the busiest queue before it halts, a preempted thread moves to an idle CPU; threads may
//! be pinned ([`thread::Builder::affinity`], [`thread::set_affinity`]). The switch and wake-up
//! paths come in a one-CPU form that skips all of this (a machine of one CPU pays a few
//! instructions per switch). Details: the `sched` module docs.
//!
//! ## Adding a policy
//! A policy is one file implementing [`Policy`]; it only orders runnable threads. For example a
//! LIFO policy, `src/policy/lifo.rs`:
//!
//! ```
//! use libos_core::sched::ThreadId;
//! use libos_sched::policy::{Policy, Priority, Reason};
//!
//! #[derive(Default)]
//! pub struct Lifo(Vec<ThreadId>);
//!
//! impl Policy for Lifo {
//!     fn name(&self) -> &'static str { "lifo" }
//!     fn enqueue(&mut self, thread: ThreadId, _: Priority, _: Reason) { self.0.push(thread) }
//!     fn pick_next(&mut self) -> Option<ThreadId> { self.0.pop() }
//!     fn is_empty(&self) -> bool { self.0.is_empty() }
//!     // Room for `threads` queued threads, so that waking one never allocates.
//!     fn reserve(&mut self, _: Priority, threads: usize) -> libos_core::Result<()> {
//!         self.0.try_reserve(threads.saturating_sub(self.0.len())).map_err(|_| libos_core::Errno::ENOMEM)
//!     }
//!     // Optional: `time_slice` (Some makes it preemptive), `preempts` (priority wake-ups).
//! }
//! # let mut p = Lifo::default();
//! # p.enqueue(ThreadId(2), Priority::NORMAL, Reason::Spawned);
//! # p.enqueue(ThreadId(3), Priority::NORMAL, Reason::Spawned);
//! # assert_eq!(p.pick_next(), Some(ThreadId(3)));
//! ```
//!
//! then one line in [`policy::AVAILABLE`] (behind its own feature) makes `sched=lifo` pick it.
//! [`policy::ThreadQueue`] is the FIFO the built-in policies use (cheaper on every switch than
//! `VecDeque` in the size-optimised release build).
//!
//! ## Blocking never allocates
//! A thread can always block, even with the heap exhausted: wait-queue nodes live on the waiting
//! thread's stack (`libos_core::blocking`), and the run queue and the deadline queue
//! (`deadlines`) get room for every thread at spawn ([`Policy::reserve`]), so parking, parking
//! with a deadline and waking allocate nothing (checks: `libos/core/tests/wait_no_alloc.rs`, and
//! the reservation tests of `policy::ThreadQueue` and `deadlines`).
//!
//! ## Errors, not corruption
//! Joining twice or joining a detached thread cannot be written ([`thread::JoinHandle`] is
//! consumed by `join`, dropped by detaching); joining oneself panics with a message; a bad stack
//! size is `EINVAL`, no memory for a stack `ENOMEM`; `sleep(Duration::MAX)` sleeps forever; a
//! `Mutex` guard is `!Send`, so it cannot be dropped on another thread; a stack overflow hits
//! the guard page (a fault report) or, where the platform cannot unmap pages, the canary check
//! at the next switch panics naming the thread. A panic in any thread prints the thread's name
//! and stops the kernel (`panic = "abort"`).
//!
//! `unsafe` is confined to the modules `raw` (stack memory, the switch call) and `sched` (one
//! call to the switch); everything else is safe code.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod policy;
mod deadlines;
mod raw;
mod sched;
mod table;
#[cfg(test)]
mod tests;
pub mod thread;
pub mod tls;

pub use policy::{Policy, Priority};
pub use sched::{current_stack_bounds, current_stack_guarded, init, is_initialized, policy_name, switch_count};

/// Blocking synchronisation (from libos-core, made blocking by this crate's scheduler).
pub mod sync {
    pub use libos_core::blocking::{Condvar, Event, Mutex, MutexGuard, Once, Semaphore, WaitQueue};
}

/// Chooses a compiled-in policy by name (`None`: the default) and starts the scheduler with it.
/// Returns the policy's name. Errors: `EINVAL` when no compiled-in policy has that name (or
/// none is compiled in), else as [`init`].
pub fn init_named(name: Option<&str>, config: policy::Config) -> libos_core::Result<&'static str> {
    let available = policy::by_name(name).ok_or(libos_core::Errno::EINVAL)?;
    sched::init_cpus((available.new)(config), Some((available.new, config)))?;
    Ok(available.name)
}
