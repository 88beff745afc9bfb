//! The scheduler on several CPUs: where a runnable thread queues (an idle CPU it may use, else
//! its own), stealing by idle CPUs, a CPU joining the scheduler, and CPU sets (affinity). The
//! switch itself and the `switched_out` hand-over are in the parent module.

use super::*;

impl Sched {
    /// Whether `cpu` has joined and runs its idle thread with nothing queued.
    pub(super) fn is_idle(&self, cpu: usize) -> bool {
        self.cpus.get(cpu).is_some_and(|c| c.joined && c.current == c.idle && c.queued == 0)
    }

    /// The CPU a thread that becomes runnable should queue on: an idle CPU it may run on (its
    /// own first), else its own CPU, else the first CPU it may run on.
    pub(super) fn choose_cpu(&self, own: usize, affinity: u64) -> usize {
        if self.cpus.len() == 1 {
            return 0;
        }
        let allowed = |cpu: usize| affinity & (1 << cpu) != 0 && self.cpus.get(cpu).is_some_and(|c| c.joined);
        if allowed(own) && self.is_idle(own) {
            return own;
        }
        let mut candidates = (0..self.cpus.len()).filter(|&cpu| allowed(cpu));
        if let Some(idle) = candidates.clone().find(|&cpu| self.is_idle(cpu)) {
            return idle;
        }
        if allowed(own) {
            return own;
        }
        candidates.next().unwrap_or(own)
    }

    /// Where a preempted or yielding thread (last on `own`, now running on `me`) is queued:
    /// here, unless its CPU set excludes this CPU, or another CPU it may use idles while this
    /// one has more work (it then runs there while this CPU runs the next).
    pub(super) fn requeue_target(&self, me: usize, own: usize, affinity: u64) -> usize {
        if self.cpus.len() == 1 {
            return me;
        }
        let allowed_here = affinity & (1 << me) != 0;
        let target = self.choose_cpu(if allowed_here { me } else { own }, affinity);
        let queued_here = self.cpus[me].queued > 0;
        if target != me && (!allowed_here || (self.is_idle(target) && queued_here)) { target } else { me }
    }

    /// Queues `id` on `target`'s run queue and makes that CPU look if it should switch: it
    /// idles, or the policy says the new thread preempts the running one.
    pub(super) fn enqueue_on(&mut self, target: usize, id: ThreadId, priority: Priority, reason: Reason) {
        let Some(cpu) = self.cpus.get(target).filter(|c| c.joined) else { return };
        let running = self.threads.get(cpu.current).map_or(Priority(0), |t| t.priority);
        if self.cpus[target].enqueue(id, priority, running, reason, true) {
            irq::request_preemption_on(target);
        }
    }

    /// Moves one queued thread that may run on `me` from the CPU with the most queued to `me`'s
    /// queue. Nothing when no other CPU has a queue.
    pub(super) fn steal_for(&mut self, me: usize) {
        let victim = (self.cpus.iter().enumerate())
            .filter(|&(cpu, c)| cpu != me && c.joined)
            .map(|(cpu, c)| (c.queued, cpu))
            .max()
            .filter(|&(queued, _)| queued > 0)
            .map(|(_, cpu)| cpu);
        let Some(victim) = victim else { return };
        let cpu = &mut self.cpus[victim];
        let Some(id) = cpu.policy.pick_next() else { return };
        cpu.queued -= 1;
        let Some(tcb) = self.threads.get_mut(id) else { return };
        let priority = tcb.priority;
        if tcb.affinity & (1 << me) == 0 {
            // Not ours to run: back where it was (at the end of its queue).
            let cpu = &mut self.cpus[victim];
            cpu.policy.enqueue(id, priority, Reason::Yielded);
            cpu.queued += 1;
            return;
        }
        tcb.cpu = me;
        let cpu = self.cpu();
        cpu.policy.enqueue(id, priority, Reason::Woken);
        cpu.queued += 1;
    }
}

/// The multi-CPU part of requeueing a preempted or yielding thread: true when it went to
/// another CPU's queue ([`Sched::requeue_target`]).
#[inline(never)]
pub(crate) fn requeue_elsewhere(sched: &mut Sched, me: usize, id: ThreadId, own: usize, affinity: u64, priority: Priority, reason: Reason) -> bool {
    let target = sched.requeue_target(me, own, affinity);
    if target == me {
        return false;
    }
    sched.tcb(id).cpu = target;
    sched.enqueue_on(target, id, priority, reason);
    true
}

/// A started CPU joins the scheduler (from its wait loop, on its own stack, interrupts
/// masked): the code running now becomes its idle thread, with a run queue of its own.
pub(super) fn join_cpu(index: usize) -> ! {
    let mut idle = Box::new(Tcb::new(Some(alloc::format!("idle-{index}")), 0, Priority(0), None, None));
    idle.cpu = index;
    idle.affinity = 1 << index;
    let mut s = lock();
    if s.cpus.get(index).is_none_or(|cpu| cpu.joined) {
        drop(s);
        log::warn!("CPU {index} cannot join the scheduler (it was not online when it started, or joined twice)");
        loop {
            hal::platform().wait_for_interrupt();
        }
    }
    let id = s.threads.insert(idle);
    let cpu = &mut s.cpus[index];
    (cpu.current, cpu.idle, cpu.joined) = (id, id, true);
    CURRENT[index].store(id.0, Ordering::Relaxed);
    RUNNING_CPUS.fetch_or(1 << index, Ordering::Release);
    drop(s);
    log::debug!("libos-sched: CPU {index} runs threads");
    idle_loop()
}

/// The CPUs that run threads (joined the scheduler), one bit each; just the boot CPU before
/// the scheduler starts.
pub fn running_cpus() -> u64 {
    RUNNING_CPUS.load(Ordering::Acquire)
}

/// The CPU set of `thread` (`ESRCH` when unknown).
pub fn affinity_of(thread: ThreadId) -> Result<u64> {
    lock().threads.get(thread).map(|tcb| tcb.affinity).ok_or(Errno::ESRCH)
}

/// Sets the CPU set of `thread` (`EINVAL` when it names no CPU that runs threads, `ESRCH` for
/// an unknown thread). A running thread outside its new set moves at its next switch: the
/// caller changing its own set yields at once.
pub fn set_affinity(thread: ThreadId, affinity: u64) -> Result<()> {
    let moved_self = {
        let mut s = lock();
        let running = running_cpus();
        if affinity & running == 0 {
            return Err(Errno::EINVAL);
        }
        let me = this_cpu();
        let current = s.current();
        let tcb = s.threads.get_mut(thread).ok_or(Errno::ESRCH)?;
        tcb.affinity = affinity;
        let (own, running_elsewhere) = (tcb.cpu, tcb.state == State::Running && thread != current);
        if affinity & (1 << own) == 0 {
            // Its next queueing picks an allowed CPU (`choose_cpu`).
            tcb.cpu = (affinity & running).trailing_zeros() as usize; // not empty: checked above
            if running_elsewhere {
                irq::request_preemption_on(own); // it leaves that CPU at the interrupt
            }
        }
        thread == current && affinity & (1 << me) == 0
    };
    if moved_self {
        HOOK.yield_now();
    }
    Ok(())
}

