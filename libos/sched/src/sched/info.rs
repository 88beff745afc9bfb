//! What the scheduler tells about the running thread and itself: its id without the lock,
//! its name and priority, its stack, the switch count and the policy's name; and how a
//! thread's name is shown (`thread-SERIAL` when it has none), also without allocating, for
//! panic and fault reports.

use super::*;

/// Shows a thread's name, or `thread-SERIAL` for an unnamed one.
pub(crate) struct DisplayName<'a>(pub(crate) Option<&'a str>, pub(crate) u64);

impl core::fmt::Display for DisplayName<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(name) => f.write_str(name),
            None => write!(f, "thread-{}", self.1),
        }
    }
}

/// A name formatted without allocating (for panic and fault reports).
pub(super) struct NameBuffer {
    pub(super) bytes: [u8; 32],
    pub(super) len: usize,
}

impl core::fmt::Write for NameBuffer {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        self.bytes.get_mut(self.len..end).ok_or(core::fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The name and priority of the running thread.
pub(crate) fn current_info() -> (ThreadId, Option<String>, u64, Priority) {
    let mut s = lock();
    let current = s.current();
    let tcb = s.tcb(current);
    (current, tcb.name.clone(), tcb.serial, tcb.priority)
}

/// The running thread's id (no lock).
pub fn current_id() -> ThreadId {
    if !SEVERAL_CPUS.load(Ordering::Relaxed) {
        return ThreadId(CURRENT[0].load(Ordering::Relaxed));
    }
    // Which CPU, then that CPU's running thread: with interrupts masked, so that the thread
    // cannot be preempted and moved to another CPU between the two reads.
    let interrupts = libos_core::interrupts::disable();
    let id = CURRENT[hal::platform().cpu_id()].load(Ordering::Relaxed);
    libos_core::interrupts::restore(interrupts);
    ThreadId(id)
}

/// How many context switches happened since boot.
pub fn switch_count() -> u64 {
    SCHED.get().map_or(0, |s| s.lock().cpus.iter().map(|cpu| cpu.switches).sum())
}

/// The name of the policy CPU 0 runs.
pub fn policy_name() -> &'static str {
    lock().cpus[0].policy.name()
}

/// The running thread's usable stack, `[bottom, top)` (`None` for `main` and the idle
/// threads, which run on their CPU's boot stack).
pub fn current_stack_bounds() -> Option<(usize, usize)> {
    let mut s = lock();
    let current = s.current();
    s.tcb(current).stack.as_ref().map(|stack| (stack.bottom(), stack.top()))
}

/// Whether the running thread's stack has a real (unmapped) guard page.
pub fn current_stack_guarded() -> Option<bool> {
    let mut s = lock();
    let current = s.current();
    s.tcb(current).stack.as_ref().map(Stack::is_guarded)
}
