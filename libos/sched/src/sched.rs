//! The scheduler core: thread control blocks, per-CPU run queues (one [`Policy`] each), the
//! switch, the deadline queue and the idle thread. It implements libos-core's
//! [`Scheduler`] hook, so every crate blocks through it without depending on this one.
//!
//! # Locking and interrupts
//! All state lives in one [`IrqSpinLock`]. Every path that may switch first masks interrupts,
//! then takes the lock, decides, *drops the lock* and switches with interrupts still masked; the
//! thread that resumes restores its own saved interrupt state.
//!
//! # Several CPUs
//! Each CPU has its own run queue (one [`Policy`]) and idle thread; the boot CPU's idle thread
//! has a stack of its own, the others' run on the stack their CPU started on ([`join_cpu`]).
//! Between dropping the lock and the end of the switch another CPU may already pick the thread
//! being switched out (woken, stolen): it must not load the thread's registers before they are
//! saved. So every control block has a `switched_out` flag: the CPU that switches a thread out
//! sets it once the switch is complete (the next thread's first act, [`finish_switch`]); a CPU
//! about to switch to a thread waits for it and clears it. Exited threads are freed only once
//! switched out.
//!
//! Where a thread runs: a woken or new thread goes to an idle CPU it may run on (its own CPU
//! first), else back to its own CPU; a CPU sent work it is not running gets an inter-processor
//! interrupt ([`irq::request_preemption_on`]). An idle CPU steals a queued thread from the CPU
//! with the most queued before it halts, and a thread preempted or yielding while another CPU
//! idles moves there. Threads may be pinned to a set of CPUs (`Builder::affinity`).
//! That placement, stealing, a CPU's joining and CPU sets live in the child module `cpus`;
//! what the scheduler tells about the running thread (id, name, stack) in `info`.
//!
//! # Timers
//! The deadline queue ([`Deadlines`]) is an ordered set of `(deadline, thread)`, with room for one
//! entry per thread reserved at spawn, so parking with a deadline never allocates. The one-shot timer is armed
//! for the earliest of: the first deadline, and (preemptive policy, other threads runnable) the
//! end of the current slice. A slice is not restarted at every switch (that would cost a clock
//! read per switch); when it ends, the running thread is preempted only if it ran the whole
//! slice, else a new slice starts (see `on_timer`): every thread gets between one and two
//! slices. Nothing else arms it, so an idle system with one sleeping
//! thread takes exactly the interrupts its sleep needs (tickless).
//!
//! # Unsafe
//! This module is allowed `unsafe` for the call of [`raw::switch`] in `switch_to_next` and for
//! reading the `switched_out` flags through pointers into boxed control blocks (the next
//! thread's before the switch, the previous one's in `finish_switch`): their safety rests on
//! this module's bookkeeping (a control block outlives its thread's last switch; exited threads
//! are freed only once switched out, by another thread).

#![allow(unsafe_code)]

use crate::policy::{Config, Policy, Priority, Reason};
use crate::raw::{self, Stack};
use alloc::boxed::Box;
use crate::table::Table;
use crate::deadlines::Deadlines;
use alloc::string::String;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;
use libos_core::cpus::MAX_CPUS;
use libos_core::hal::{self, irq};
use libos_core::sched::{Scheduler, ThreadId};
use libos_core::sync::{IrqSpinLock, IrqSpinLockGuard, Once, unlock_keeping_interrupts_masked};
use libos_core::time::Instant;
use libos_core::{Errno, Result};

mod cpus;
mod info;
use cpus::requeue_elsewhere;
use info::NameBuffer;
pub(crate) use info::{DisplayName, current_info};
pub use info::{current_id, current_stack_bounds, current_stack_guarded, policy_name, switch_count};
pub use cpus::{affinity_of, running_cpus, set_affinity};
use cpus::join_cpu;

/// A thread's scheduling state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Running,
    Ready,
    Blocked,
    Exited,
}

/// Per-thread storage slots of [`crate::tls::Key`]s, indexed by key.
pub(crate) type TlsSlots = Vec<Option<Box<dyn Any + Send>>>;

/// A thread control block. Boxed, so `sp` never moves while the thread is switched out.
pub(crate) struct Tcb {
    /// The name given at spawn (`None`: shown as `thread-SERIAL`).
    name: Option<String>,
    serial: u64,
    priority: Priority,
    state: State,
    wake_token: bool,
    /// While parked with a deadline: the deadline, whose `(deadline, id)` entry is in the
    /// deadline queue (moved earlier by `wake_by`); cleared when it is woken.
    parked_until: Option<Instant>,
    /// The saved stack pointer while not running.
    sp: AtomicUsize,
    /// `None` for `main` and the idle threads of secondary CPUs, which run on their CPU's boot
    /// stack.
    stack: Option<Stack>,
    /// Set once the thread's registers are saved and no CPU runs it (see the module docs).
    switched_out: AtomicBool,
    /// The CPU it runs or last ran on (whose run queue it joins when requeued).
    cpu: usize,
    /// The CPUs it may run on, one bit each.
    affinity: u64,
    entry: Option<Box<dyn FnOnce() + Send>>,
    pub(crate) tls: TlsSlots,
    /// Run once the thread has ended and no CPU runs on its stacks any more ([`when_gone`]).
    when_gone: Vec<Box<dyn FnOnce() + Send>>,
}

struct Cpu {
    /// Whether the CPU runs threads (its entry exists from the start; it joins later).
    joined: bool,
    policy: Box<dyn Policy>,
    /// Threads in `policy`'s queue (for stealing).
    queued: usize,
    current: ThreadId,
    idle: ThreadId,
    /// The policy's time slice (`None`: cooperative).
    slice: Option<Duration>,
    /// When the running slice's timer fires; `None` while no slice timer is needed.
    slice_end: Option<Instant>,
    /// Switches on this CPU so far, and their number when `slice_end` was set: if still equal
    /// when it passes, the running thread has had the CPU for a whole slice.
    switches: u64,
    switches_at_slice_start: u64,
}

impl Cpu {
    /// Queues `id` (of `priority`; `running` is the priority of this CPU's running thread) and
    /// says whether the CPU should look at its queue now: it idles, or the policy says the new
    /// thread preempts the running one. `count`: keep `queued` (several CPUs).
    #[inline]
    fn enqueue(&mut self, id: ThreadId, priority: Priority, running: Priority, reason: Reason, count: bool) -> bool {
        self.policy.enqueue(id, priority, reason);
        if count {
            self.queued += 1;
        }
        self.current == self.idle || self.policy.preempts(running, priority)
    }
}

pub(crate) struct Sched {
    threads: Table<Tcb>,
    /// Indexed by CPU index: every CPU online when the scheduler started, joined or not yet.
    cpus: Vec<Cpu>,
    /// Parked threads' deadlines (room for one per thread is reserved at spawn).
    timers: Deadlines,
    armed: Option<Instant>,
    /// Exited threads whose stacks are freed by the next thread to run. Boxed on purpose: the
    /// exiting thread's last switch saves into its control block, so it must not move.
    #[allow(clippy::vec_box)]
    dead: Vec<Box<Tcb>>,
    /// The platform's switch routine (looked up once).
    switch: hal::SwitchRoutine,
}

static SCHED: Once<IrqSpinLock<Sched>> = Once::new();
#[allow(clippy::declare_interior_mutable_const)]
const MAIN_RUNS: AtomicU64 = AtomicU64::new(ThreadId::MAIN.0);
/// Each CPU's running thread, readable without the lock.
static CURRENT: [AtomicU64; MAX_CPUS] = [MAIN_RUNS; MAX_CPUS];
#[allow(clippy::declare_interior_mutable_const)]
const NOTHING: AtomicPtr<AtomicBool> = AtomicPtr::new(core::ptr::null_mut());
/// Per CPU: the `switched_out` flag of the thread it is switching away from, set by the next
/// thread once it runs ([`finish_switch`]).
static PREVIOUS: [AtomicPtr<AtomicBool>; MAX_CPUS] = [NOTHING; MAX_CPUS];
static HAVE_DEAD: AtomicBool = AtomicBool::new(false);
/// The CPUs that joined the scheduler, one bit each (see [`running_cpus`]).
static RUNNING_CPUS: AtomicU64 = AtomicU64::new(1);
static SPAWNED: AtomicU64 = AtomicU64::new(0);

/// The idle thread of CPU 0.
const IDLE: ThreadId = ThreadId(0);
const IDLE_STACK: usize = 16 * 1024;

#[inline]
pub(crate) fn lock() -> IrqSpinLockGuard<'static, Sched> {
    SCHED.get().expect("libos-sched: no scheduler (libos_sched::init was not called)").lock()
}

/// True once [`init`] ran.
pub fn is_initialized() -> bool {
    SCHED.is_completed()
}

impl Sched {
    #[inline]
    fn cpu(&mut self) -> &mut Cpu {
        &mut self.cpus[this_cpu()]
    }

    #[inline]
    pub(crate) fn current(&mut self) -> ThreadId {
        self.cpu().current
    }

    #[inline]
    pub(crate) fn tcb(&mut self, id: ThreadId) -> &mut Tcb {
        self.threads.get_mut(id).expect("libos-sched: the running thread has no control block")
    }

    /// Queues `id` (not running, not queued) and asks for preemption where the policy wants.
    fn make_ready(&mut self, id: ThreadId, reason: Reason) {
        let Some(tcb) = self.threads.get_mut(id) else { return };
        tcb.state = State::Ready;
        let (own, affinity, priority) = (tcb.cpu, tcb.affinity, tcb.priority);
        if self.cpus.len() == 1 {
            // One CPU: no placement, no count of queued threads (only stealing reads it).
            let running = self.threads.get(self.cpus[0].current).map_or(Priority(0), |t| t.priority);
            if self.cpus[0].enqueue(id, priority, running, reason, false) {
                irq::request_preemption();
            }
            return;
        }
        let target = self.choose_cpu(own, affinity);
        if target != own {
            self.tcb(id).cpu = target;
        }
        self.enqueue_on(target, id, priority, reason);
    }

    fn unpark(&mut self, id: ThreadId) {
        match self.threads.get_mut(id) {
            Some(tcb) if tcb.state == State::Blocked => {
                // Its park's deadline (if any) is moot now, however it was woken.
                self.forget_deadline(id);
                self.make_ready(id, Reason::Woken);
            }
            Some(tcb) if tcb.state != State::Exited => tcb.wake_token = true,
            _ => {}
        }
        self.rearm();
    }

    /// Drops the deadline-queue entry of `id`'s park as it is woken (when the timer woke it,
    /// the entry is gone already).
    fn forget_deadline(&mut self, id: ThreadId) {
        if let Some(deadline) = self.threads.get_mut(id).and_then(|tcb| tcb.parked_until.take()) {
            self.timers.remove(&(deadline, id));
        }
    }

    /// Arms the one-shot timer if something needs it earlier than it is armed for.
    fn rearm(&mut self) {
        let mut next = self.timers.first().map(|&(deadline, _)| deadline);
        for cpu in self.cpus.iter_mut().filter(|c| c.joined) {
            if let Some(slice) = cpu.slice
                && cpu.current != cpu.idle
                && !cpu.policy.is_empty()
            {
                let end = match cpu.slice_end {
                    Some(end) => end,
                    None => {
                        let end = Instant::now() + slice;
                        cpu.slice_end = Some(end);
                        cpu.switches_at_slice_start = cpu.switches;
                        end
                    }
                };
                next = Some(next.map_or(end, |n| n.min(end)));
            }
        }
        if let Some(next) = next
            && self.armed.is_none_or(|armed| next < armed)
        {
            self.armed = Some(next);
            hal::platform().set_timer(Some(next));
        }
    }
}

/// Switches the running thread out, leaving it in `state` (`Ready`: requeued for `reason`;
/// `Blocked`; `Exited`: reaped by the next thread). Interrupts are masked while `s` is held; the
/// lock is released with them still masked, and when the thread runs again (never for
/// `Exited`) the interrupt state saved by `lock()` is restored.
fn switch_away(s: IrqSpinLockGuard<'static, Sched>, state: State, reason: Reason) {
    // Two copies of the switch: with one CPU, everything about other CPUs folds away (a yield
    // stays as cheap as before SMP).
    if SEVERAL_CPUS.load(Ordering::Relaxed) { switch_away_on::<true>(s, state, reason) } else { switch_away_on::<false>(s, state, reason) }
}

/// [`switch_away`] on a machine of several CPUs (`SEVERAL`) or one.
#[inline(always)]
fn switch_away_on<const SEVERAL: bool>(mut s: IrqSpinLockGuard<'static, Sched>, state: State, reason: Reason) {
    let me = if SEVERAL { hal::platform().cpu_id() } else { 0 };
    let sched = &mut *s;
    let cpu = &sched.cpus[me];
    let (current, idle) = (cpu.current, cpu.idle);
    let tcb = sched.threads.get_mut(current).expect("libos-sched: the running thread has no control block");
    if tcb.stack.as_ref().is_some_and(|stack| !stack.canary_intact()) {
        let serial = tcb.serial;
        let name = tcb.name.take();
        drop(s);
        let name = DisplayName(name.as_deref(), serial);
        panic!("thread '{name}' overflowed its stack (the canary at its bottom was overwritten)");
    }
    // The running thread's saved stack pointer and flag: its control block is boxed, so they
    // stay put whatever happens to the table below.
    let save: *const AtomicUsize = &tcb.sp;
    let switched_out: *const AtomicBool = &tcb.switched_out;
    if current != idle {
        tcb.state = state;
        if state == State::Ready {
            let (affinity, priority, own) = (tcb.affinity, tcb.priority, tcb.cpu);
            if !SEVERAL || !requeue_elsewhere(sched, me, current, own, affinity, priority, reason) {
                let cpu = &mut sched.cpus[me];
                cpu.policy.enqueue(current, priority, reason);
                if SEVERAL {
                    cpu.queued += 1;
                }
            }
        }
    }
    switch_to_next::<SEVERAL>(s, me, state, save, switched_out);
}

/// The thread this CPU runs next: the policy's pick, skipping (and requeueing where they may
/// run) threads whose CPU set no longer has this CPU; the idle thread when none.
#[inline(always)]
fn pick_next<const SEVERAL: bool>(sched: &mut Sched, me: usize) -> ThreadId {
    loop {
        let cpu = &mut sched.cpus[me];
        let Some(next) = cpu.policy.pick_next() else { return cpu.idle };
        if !SEVERAL {
            return next; // every CPU set has the only CPU (`spawn`, `set_affinity` check)
        }
        cpu.queued -= 1;
        let Some(tcb) = sched.threads.get(next) else { continue };
        if tcb.affinity & (1 << me) != 0 {
            return next;
        }
        // Its CPU set changed while it waited here: queue it where it may run.
        let (affinity, priority, own) = (tcb.affinity, tcb.priority, tcb.cpu);
        let target = sched.choose_cpu(own, affinity);
        if target == me {
            return next; // nowhere else (cannot happen: sets always name a running CPU)
        }
        sched.tcb(next).cpu = target;
        sched.enqueue_on(target, next, priority, Reason::Yielded);
    }
}

/// The second half of [`switch_away`]: the running thread (whose saved stack pointer and
/// `switched_out` flag are `save` and `switched_out`) is accounted for (queued somewhere,
/// blocked or exiting with `state`); pick this CPU's next thread and switch to it.
#[inline(always)]
fn switch_to_next<const SEVERAL: bool>(
    mut s: IrqSpinLockGuard<'static, Sched>,
    me: usize,
    state: State,
    save: *const AtomicUsize,
    switched_out: *const AtomicBool,
) {
    let sched = &mut *s;
    let next = pick_next::<SEVERAL>(sched, me);
    let cpu = &mut sched.cpus[me];
    let (current, idle) = (cpu.current, cpu.idle);
    if next == current {
        if let Some(tcb) = sched.threads.get_mut(current) {
            tcb.state = State::Running;
        }
        return; // dropping the guard restores the interrupt state
    }
    let next_tcb = sched.threads.get_mut(next).expect("libos-sched: a queued thread has no control block");
    next_tcb.state = State::Running;
    if SEVERAL {
        next_tcb.cpu = me;
    }
    let load: *const AtomicUsize = &next_tcb.sp;
    let next_switched_out: *const AtomicBool = &next_tcb.switched_out;
    cpu.current = next;
    cpu.switches += 1;
    // A slice timer is needed if the new thread has competitors and none is running yet (an
    // armed one stays: see `on_timer`); sleepers may need an earlier timer.
    let need_slice_timer = cpu.slice.is_some() && cpu.slice_end.is_none() && !cpu.policy.is_empty();
    if state == State::Exited && current != idle {
        let tcb = sched.threads.remove(current).expect("the exiting thread is registered");
        sched.dead.push(tcb); // moves the Box, not the control block: `save` stays valid
        HAVE_DEAD.store(true, Ordering::Relaxed);
    }
    CURRENT[me].store(next.0, Ordering::Relaxed);
    if SEVERAL {
        PREVIOUS[me].store(switched_out.cast_mut(), Ordering::Relaxed);
    }
    if need_slice_timer || !sched.timers.is_empty() {
        sched.rearm();
    }
    let routine = sched.switch;
    let interrupts = unlock_keeping_interrupts_masked(s);
    if SEVERAL {
        // SAFETY: `next` is Running now, so it is neither queued nor reaped: its boxed control
        // block, and the flag in it, stay.
        let next_switched_out = unsafe { &*next_switched_out };
        while !next_switched_out.load(Ordering::Acquire) {
            core::hint::spin_loop(); // it is still being switched out on another CPU
        }
        next_switched_out.store(false, Ordering::Relaxed);
    }
    // SAFETY: interrupts are masked (the caller's contract); `save` points into the running
    // thread's boxed control block, which is only freed once it exited and is switched out
    // (`reap`, after `finish_switch` on this CPU); `load` is the saved stack pointer of `next`,
    // whose registers are saved (waited for above) and whose stack lives as long as its control
    // block (boxed: moving the Box into `dead` does not move it); the lock is released.
    unsafe { raw::switch(routine, save, load) };
    if SEVERAL {
        finish_switch();
    }
    reap();
    libos_core::interrupts::restore(interrupts);
}

/// The first thing a thread does when it runs after a switch (at its first run too): the
/// thread this CPU switched away from is now switched out, so another CPU may run it.
#[inline(always)]
fn finish_switch() {
    if !SEVERAL_CPUS.load(Ordering::Relaxed) {
        return; // one CPU: nobody else could pick a thread before its switch is done
    }
    let previous = PREVIOUS[this_cpu()].swap(core::ptr::null_mut(), Ordering::Relaxed);
    if !previous.is_null() {
        // SAFETY: the flag belongs to the boxed control block of the thread this CPU switched
        // away from, which is not freed before the flag is set (`reap_dead`).
        unsafe { (*previous).store(true, Ordering::Release) };
    }
}

/// Set at [`init`] when other CPUs will join: only then does [`this_cpu`] ask the platform
/// (a call through `dyn Platform` on every scheduler operation would cost a machine of one
/// CPU a tenth of its yield).
static SEVERAL_CPUS: AtomicBool = AtomicBool::new(false);

/// The index of the running CPU (its run queue).
#[inline(always)]
fn this_cpu() -> usize {
    if SEVERAL_CPUS.load(Ordering::Relaxed) { hal::platform().cpu_id() } else { 0 }
}

/// Frees the stacks of threads that exited (never the running one: it is not in the list).
/// Inline: every switch checks the flag; the work is out of line.
#[inline(always)]
fn reap() {
    if HAVE_DEAD.load(Ordering::Relaxed) {
        reap_dead();
    }
}

#[inline(never)]
fn reap_dead() {
    let dead = {
        let mut s = lock();
        // A thread still being switched out on another CPU stays until that switch is done.
        // (With one CPU the flags are not kept: a dead thread is switched out once another runs.)
        if !SEVERAL_CPUS.load(Ordering::Relaxed) || s.dead.iter().all(|tcb| tcb.switched_out.load(Ordering::Acquire)) {
            HAVE_DEAD.store(false, Ordering::Relaxed);
            core::mem::take(&mut s.dead)
        } else {
            let (done, pending): (Vec<Box<Tcb>>, Vec<Box<Tcb>>) =
                core::mem::take(&mut s.dead).into_iter().partition(|tcb| tcb.switched_out.load(Ordering::Acquire));
            s.dead = pending;
            done
        }
    };
    for mut tcb in dead {
        if let Some(stack) = tcb.stack.take() {
            raw::recycle(stack);
        }
        for gone in tcb.when_gone.drain(..) {
            gone();
        }
    }
}

/// Has `f` run once the calling thread has ended and is switched out for good: no CPU runs on
/// any stack it used any more (posix-shim's C threads end on stacks their program frees as
/// soon as it learns of the end). `f` runs on whichever thread reaps it, possibly with
/// interrupts masked: it must not block (waking a thread is fine). `ENOMEM` when there is no
/// room to record it.
pub fn when_gone(f: Box<dyn FnOnce() + Send>) -> Result<()> {
    let mut s = lock();
    let current = s.current();
    let tcb = s.tcb(current);
    tcb.when_gone.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
    tcb.when_gone.push(f);
    Ok(())
}

extern "C" fn thread_entry(_: usize) -> ! {
    finish_switch();
    reap();
    let entry = {
        let mut s = lock();
        let current = s.current();
        s.tcb(current).entry.take()
    };
    hal::platform().enable_interrupts();
    if let Some(entry) = entry {
        entry();
    }
    exit_current()
}

/// Ends the running thread: drops its thread-local values, then switches away for good.
pub(crate) fn exit_current() -> ! {
    let tls = {
        let mut s = lock();
        let current = s.current();
        core::mem::take(&mut s.tcb(current).tls)
    };
    drop(tls);
    switch_away(lock(), State::Exited, Reason::Yielded);
    unreachable!("libos-sched: an exited thread was resumed");
}

extern "C" fn idle_entry(_: usize) -> ! {
    finish_switch();
    reap();
    idle_loop()
}

/// A CPU's idle thread: run what is queued here or can be stolen, else halt until an interrupt.
fn idle_loop() -> ! {
    let platform = hal::platform();
    loop {
        platform.disable_interrupts();
        let mut s = lock();
        if s.cpu().queued == 0 && s.cpus.len() > 1 {
            s.steal_for(this_cpu());
        }
        if s.cpu().policy.is_empty() {
            drop(s);
            // Enables interrupts atomically with the halt: a wake-up that raced with the check
            // above is an interrupt that ends the halt at once.
            libos_core::idle::enter();
            platform.wait_for_interrupt();
            libos_core::idle::leave();
        } else {
            switch_away(s, State::Ready, Reason::Yielded);
        }
    }
}

/// The timer interrupt: wakes sleepers whose deadline passed, ends time slices, re-arms.
fn on_timer() {
    let Some(sched) = SCHED.get() else { return };
    let mut s = sched.lock();
    s.armed = None;
    let now = Instant::now();
    while let Some(&(deadline, id)) = s.timers.first() {
        if deadline > now {
            break;
        }
        s.timers.pop_first();
        s.unpark(id);
    }
    let me = this_cpu();
    for (index, cpu) in s.cpus.iter_mut().enumerate().filter(|(_, c)| c.joined) {
        // A slice ends: if no switch happened since it began, the running thread has used a
        // whole slice and others are waiting: preempt it. Otherwise a later thread started
        // within this slice and gets a fresh one (re-armed below). So a thread runs at least one
        // slice and at most two before it is preempted, and switches cost no clock reads.
        if cpu.slice_end.is_some_and(|end| now >= end) {
            cpu.slice_end = None;
            if cpu.switches == cpu.switches_at_slice_start && cpu.current != cpu.idle && !cpu.policy.is_empty() {
                if index == me {
                    irq::request_preemption();
                } else {
                    irq::request_preemption_on(index);
                }
            }
        }
    }
    s.rearm();
}

/// Called by the platform on the interrupted thread's stack when preemption was requested.
fn on_preempt() {
    let Some(sched) = SCHED.get() else { return };
    let mut s = sched.lock();
    if s.cpus.get(this_cpu()).is_none_or(|c| !c.joined) {
        return; // a CPU that has not joined yet runs no threads
    }
    let me = this_cpu();
    let current = s.current();
    // A thread whose CPU set no longer has this CPU leaves it now (`set_affinity` asked).
    let must_leave = s.threads.get(current).is_some_and(|tcb| tcb.affinity & (1 << me) == 0);
    let cpu = s.cpu();
    let preemptible = cpu.slice.is_some() || cpu.current == cpu.idle;
    if !must_leave && (!preemptible || cpu.policy.is_empty()) {
        return;
    }
    switch_away(s, State::Ready, Reason::Preempted);
}

struct Hook;

impl Scheduler for Hook {
    fn current(&self) -> ThreadId {
        current_id()
    }

    fn with_current_name(&self, f: &mut dyn FnMut(&str)) {
        match SCHED.get().and_then(|s| s.try_lock()) {
            Some(mut s) => {
                let current = s.current();
                let tcb = s.tcb(current);
                match &tcb.name {
                    Some(name) => f(name),
                    None => {
                        let mut buffer = NameBuffer { bytes: [0; 32], len: 0 };
                        let _ = core::fmt::write(&mut buffer, format_args!("{}", DisplayName(None, tcb.serial)));
                        f(core::str::from_utf8(&buffer.bytes[..buffer.len]).unwrap_or("?"));
                    }
                }
            }
            None => f("<unknown: scheduler busy>"),
        }
    }

    fn park(&self) {
        let mut s = lock();
        let current = s.current();
        let tcb = s.tcb(current);
        if tcb.wake_token {
            tcb.wake_token = false;
        } else {
            switch_away(s, State::Blocked, Reason::Woken);
        }
    }

    fn park_until(&self, deadline: Instant) {
        let mut s = lock();
        let current = s.current();
        let tcb = s.tcb(current);
        if tcb.wake_token {
            tcb.wake_token = false;
        } else if Instant::now() < deadline {
            tcb.parked_until = Some(deadline);
            s.timers.insert((deadline, current));
            s.rearm();
            switch_away(s, State::Blocked, Reason::Woken);
        }
    }

    fn wake_by(&self, thread: ThreadId, deadline: Instant) -> bool {
        let mut s = lock();
        let Some(tcb) = s.threads.get_mut(thread) else { return false };
        if tcb.state != State::Blocked {
            return false;
        }
        if tcb.parked_until.is_some_and(|own| own <= deadline) {
            return true;
        }
        if let Some(old) = tcb.parked_until.replace(deadline) {
            s.timers.remove(&(old, thread));
        }
        s.timers.insert((deadline, thread));
        s.rearm();
        true
    }

    fn unpark(&self, thread: ThreadId) {
        lock().unpark(thread);
    }

    fn yield_now(&self) {
        // With nobody else runnable the policy hands the CPU straight back (no switch).
        switch_away(lock(), State::Ready, Reason::Yielded);
    }

    fn kick(&self, thread: ThreadId) {
        let cpu = {
            let s = lock();
            match s.threads.get(thread) {
                Some(tcb) if tcb.state == State::Running && tcb.cpu != this_cpu() => tcb.cpu,
                _ => return,
            }
        };
        // A preemption request, not a bare interrupt: the platform runs the system-call return
        // work (a signal's delivery) on the way back through the preemption path.
        irq::request_preemption_on(cpu);
    }
}

static HOOK: Hook = Hook;

/// Starts the scheduler with `policy` as CPU 0's run queue; the calling code becomes the
/// thread `main` ([`ThreadId::MAIN`]), with interrupts enabled. Registers the core hook and the timer and preempt
/// handlers. Fails with `ENOSYS` when no [`hal::ContextSwitch`] is registered, `ENOMEM` when the
/// idle thread's stack cannot be allocated, `EBUSY` when called twice.
pub fn init(policy: Box<dyn Policy>) -> Result<()> {
    init_cpus(policy, None)
}

/// Builds one CPU's run queue (a compiled-in policy's constructor).
pub(crate) type PolicyMaker = fn(Config) -> Box<dyn Policy>;

/// [`init`] with a way to build more run queues: the other CPUs the platform started join with
/// a queue of their own ([`join_cpu`]).
pub(crate) fn init_cpus(policy: Box<dyn Policy>, more_cpus: Option<(PolicyMaker, Config)>) -> Result<()> {
    let Some(context) = hal::context_switch() else {
        return Err(Errno::ENOSYS);
    };
    if SCHED.is_completed() {
        return Err(Errno::EBUSY);
    }
    let idle_stack = Stack::new(IDLE_STACK)?;
    let idle_sp = idle_stack.init_context(idle_entry, 0);
    let mut threads = Table::new();
    let mut idle = Box::new(Tcb::new(Some("idle".into()), 0, Priority(0), Some(idle_stack), None));
    idle.state = State::Ready;
    idle.sp = AtomicUsize::new(idle_sp);
    idle.switched_out = AtomicBool::new(true);
    idle.affinity = 1; // the boot CPU's
    let idle_id = threads.insert(idle);
    let main = threads.insert(Box::new(Tcb::new(Some("main".into()), 1, Priority::NORMAL, None, None)));
    debug_assert_eq!((idle_id, main), (IDLE, ThreadId::MAIN));
    let mut policy = policy;
    let mut timers = Deadlines::new();
    // `main` may be queued and may park with a deadline: room for it (see `spawn`).
    policy.reserve(Priority::NORMAL, 2)?;
    timers.reserve(2)?;
    let slice = policy.time_slice();
    log::debug!("libos-sched: policy {}, time slice {slice:?}", policy.name());
    let cpu = |policy, current, idle| Cpu { joined: true, policy, queued: 0, current, idle, slice, slice_end: None, switches: 0, switches_at_slice_start: 0 };
    let mut cpus = alloc::vec![cpu(policy, ThreadId::MAIN, IDLE)];
    // A run queue for every other online CPU, indexed by CPU (a CPU that timed out at start
    // leaves a gap, and a place should it come online late), made here so that joining needs
    // no policy of its own.
    let online = libos_core::cpus::online();
    if let Some((new_policy, config)) = more_cpus {
        for _ in 1..MAX_CPUS - online.leading_zeros() as usize {
            let mut policy = new_policy(config);
            policy.reserve(Priority::NORMAL, 2)?;
            let mut waiting = cpu(policy, ThreadId(u64::MAX), ThreadId(u64::MAX));
            waiting.joined = false;
            cpus.push(waiting);
        }
    }
    let cpu_count = cpus.len();
    SCHED.call_once(|| IrqSpinLock::new(Sched { threads, cpus, timers, armed: None, dead: Vec::new(), switch: context.switch_routine() }));
    libos_core::sched::set_scheduler(&HOOK);
    irq::set_timer_handler(on_timer);
    irq::set_preempt_handler(on_preempt);
    if cpu_count > 1 {
        SEVERAL_CPUS.store(true, Ordering::Relaxed);
        libos_core::cpus::enter_secondaries(join_cpu);
        // Wait for them, so that threads spawned from now on find every CPU (a CPU that does
        // not join in time keeps its place and joins late).
        let deadline = Instant::now() + libos_core::cpus::START_TIMEOUT;
        while running_cpus() != online && Instant::now() < deadline {
            core::hint::spin_loop();
        }
        if running_cpus() != online {
            log::warn!("libos-sched: only CPUs {:#b} joined within {:?}", running_cpus(), libos_core::cpus::START_TIMEOUT);
        }
    }
    // The boot code runs with interrupts masked; as thread `main` it must be preemptible (a
    // `main` that never blocks would otherwise never see a timer interrupt).
    hal::platform().enable_interrupts();
    Ok(())
}

impl Tcb {
    fn new(name: Option<String>, serial: u64, priority: Priority, stack: Option<Stack>, entry: Option<Box<dyn FnOnce() + Send>>) -> Tcb {
        Tcb {
            name,
            serial,
            priority,
            state: State::Running,
            wake_token: false,
            parked_until: None,
            sp: AtomicUsize::new(0),
            stack,
            switched_out: AtomicBool::new(false),
            cpu: 0,
            affinity: u64::MAX,
            entry,
            tls: Vec::new(),
            when_gone: Vec::new(),
        }
    }
}

/// Creates a runnable thread running `entry` on a new stack of `stack_size` bytes, on the CPUs
/// of `affinity` (one bit each; `EINVAL` when it names no CPU that runs threads). Returns its
/// id and serial number (unnamed threads are shown as `thread-SERIAL`; `main` is 1).
pub(crate) fn spawn(
    name: Option<String>,
    priority: Priority,
    stack_size: usize,
    affinity: u64,
    entry: Box<dyn FnOnce() + Send>,
) -> Result<(ThreadId, u64)> {
    if affinity & running_cpus() == 0 {
        return Err(Errno::EINVAL);
    }
    let stack = Stack::new(stack_size)?;
    let sp = stack.init_context(thread_entry, 0);
    let serial = SPAWNED.fetch_add(1, Ordering::Relaxed) + 2;
    let mut tcb = Box::new(Tcb::new(name, serial, priority, Some(stack), Some(entry)));
    tcb.sp = AtomicUsize::new(sp);
    tcb.switched_out = AtomicBool::new(true);
    tcb.cpu = this_cpu();
    tcb.affinity = affinity;
    let mut s = lock();
    // Room for every thread in every run queue and the deadline queue, so that parking and
    // waking never allocate (a thread must be able to block with the heap exhausted).
    let threads = s.threads.slots() + 1;
    let reserved = s
        .timers
        .reserve(threads)
        .and_then(|()| s.cpus.iter_mut().try_for_each(|cpu| cpu.policy.reserve(priority, threads)));
    if let Err(error) = reserved {
        drop(s); // the new thread's stack is freed outside the scheduler lock
        return Err(error);
    }
    let id = s.threads.insert(tcb);
    s.make_ready(id, Reason::Spawned);
    s.rearm();
    let current = s.current();
    let running = s.tcb(current).priority;
    let more_urgent = s.cpu().policy.preempts(running, priority);
    drop(s);
    if more_urgent {
        // Spawning runs in thread context, so a more urgent new thread can run at once.
        HOOK.yield_now();
    }
    Ok((id, serial))
}
