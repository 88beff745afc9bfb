//! The machine's CPUs: which the firmware reported, which came online, and the bring-up
//! sequence both platforms share.
//!
//! A platform finds its CPUs in the firmware tables (x86_64: the ACPI MADT; aarch64: the device
//! tree's `/cpus`) and starts each with its own mechanism (INIT-SIPI-SIPI; PSCI `CPU_ON`). What
//! is the same on both lives here, in [`start_all`]: at most `limit` CPUs in all (the `smp=`
//! option), one at a time, each given [`START_TIMEOUT`] to say it is up ([`mark_online`]). A CPU
//! that never answers, or that the firmware refuses to start, is left out with a log line and
//! the boot goes on with the others.
//!
//! CPU indexes are dense: 0 is the boot CPU, 1.. the others in firmware order, up to
//! [`MAX_CPUS`]. [`crate::hal::Platform::cpu_id`] answers the index of the running CPU.
//!
//! [`run_on`] runs a function on another CPU and waits for it: the caller posts it in the
//! target's mailbox and sends an inter-processor interrupt ([`crate::hal::Platform::send_ipi`]),
//! whose handler calls [`handle_ipi`]. The building block of TLB shootdowns and remote wake-ups.

use crate::time::Instant;
use crate::{Errno, hal};
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use core::time::Duration;

/// The most CPUs libos runs on (one bit each in the online set).
pub const MAX_CPUS: usize = 64;

/// How long a started CPU has to come online. Generous: under TCG a new vCPU thread may wait
/// for the host's scheduler.
pub const START_TIMEOUT: Duration = Duration::from_secs(2);

/// Bit `i`: CPU `i` is online. The boot CPU is online from the start.
static ONLINE: AtomicU64 = AtomicU64::new(1);

/// Called by CPU `index` once it runs on its own stacks with its per-CPU state set up.
pub fn mark_online(index: usize) {
    if index < MAX_CPUS {
        ONLINE.fetch_or(1 << index, Ordering::Release);
    }
}

/// True once CPU `index` has called [`mark_online`].
pub fn is_online(index: usize) -> bool {
    index < MAX_CPUS && ONLINE.load(Ordering::Acquire) & (1 << index) != 0
}

/// The index of the running CPU: 0 without asking the platform while no other CPU is online
/// (a call through `dyn Platform` on every wake-up and interrupt would cost a machine of one
/// CPU for nothing).
#[inline]
pub fn current() -> usize {
    if ONLINE.load(Ordering::Relaxed) == 1 { 0 } else { hal::try_platform().map_or(0, |p| p.cpu_id()) }
}

/// The online CPUs, one bit each (bit `i`: CPU `i`).
pub fn online() -> u64 {
    ONLINE.load(Ordering::Acquire)
}

/// How many CPUs are online (the boot CPU included).
pub fn online_count() -> usize {
    ONLINE.load(Ordering::Acquire).count_ones() as usize
}

/// Why a CPU was left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError {
    /// The firmware or hypervisor refused the start request (PSCI's error number).
    Refused(i64),
    /// The CPU was started but did not come online within [`START_TIMEOUT`].
    TimedOut,
    /// The platform could not prepare the CPU (memory for its stacks, a trampoline page).
    NoResources(&'static str),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Refused(code) => write!(f, "the firmware refused to start it (error {code})"),
            StartError::TimedOut => write!(f, "it did not come online within {} ms", START_TIMEOUT.as_millis()),
            StartError::NoResources(what) => write!(f, "no {what} for it"),
        }
    }
}

/// What a platform does to start one CPU.
pub trait CpuStarter {
    /// How many CPUs the firmware reported as usable (the boot CPU included).
    fn reported(&self) -> usize;
    /// The firmware's name for CPU `index` (an APIC id, an MPIDR), for log lines.
    fn hardware_id(&self, index: usize) -> u64;
    /// Starts CPU `index` (`1..reported()`); it calls [`mark_online`] with `index` once up.
    /// Returns once the start was requested, not when the CPU is up.
    fn start(&mut self, index: usize) -> Result<(), StartError>;
    /// Called while waiting for a CPU (a pause instruction, a short delay).
    fn relax(&self) {
        core::hint::spin_loop();
    }
}

/// The outcome of [`start_all`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartReport {
    /// CPUs the firmware reported as usable.
    pub reported: usize,
    /// CPUs asked for (`smp=`), if any.
    pub limit: Option<usize>,
    /// CPUs online afterwards (the boot CPU included).
    pub online: usize,
}

impl StartReport {
    /// A machine of one CPU (the default of platforms without bring-up, and host tests).
    pub const SINGLE: StartReport = StartReport { reported: 1, limit: None, online: 1 };
}

/// Starts CPUs `1..` of `starter`, at most `limit` CPUs in all (`None`: every reported CPU),
/// one at a time, waiting up to [`START_TIMEOUT`] for each. A CPU that fails is logged and
/// left out; the others still start. `limit` 0 is the caller's error to report (it is treated
/// as 1 here).
pub fn start_all(starter: &mut dyn CpuStarter, limit: Option<usize>) -> StartReport {
    start_all_with(starter, limit, START_TIMEOUT, &|| Instant::now())
}

/// [`start_all`] with the timeout and clock given (host tests).
pub fn start_all_with(
    starter: &mut dyn CpuStarter,
    limit: Option<usize>,
    timeout: Duration,
    now: &dyn Fn() -> Instant,
) -> StartReport {
    let reported = starter.reported().clamp(1, MAX_CPUS);
    if starter.reported() > MAX_CPUS {
        log::warn!("the firmware reports {} CPUs; libos runs on at most {MAX_CPUS}", starter.reported());
    }
    let wanted = match limit {
        Some(limit) if limit > reported => {
            log::warn!("smp={limit} asks for more CPUs than the {reported} the firmware reports: using {reported}");
            reported
        }
        Some(limit) => limit.max(1),
        None => reported,
    };
    for index in 1..wanted {
        let outcome = starter.start(index).and_then(|()| {
            let deadline = now() + timeout;
            while !is_online(index) {
                if now() >= deadline {
                    return Err(StartError::TimedOut);
                }
                starter.relax();
            }
            Ok(())
        });
        if let Err(e) = outcome {
            log::warn!("CPU {index} (firmware id {:#x}) left out: {e}; booting without it", starter.hardware_id(index));
        }
    }
    StartReport { reported, limit, online: online_count() }
}

/// What started CPUs run once the kernel has work for them (the scheduler's per-CPU loop).
static SECONDARY_ENTRY: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Sends every started CPU into `entry` (called with the CPU's index, in thread context on the
/// CPU's own stack, with interrupts masked; it never returns): the scheduler calls this once
/// it can run threads there. The CPUs leave their wait at the interrupt sent here.
pub fn enter_secondaries(entry: fn(usize) -> !) {
    SECONDARY_ENTRY.store(entry as *mut (), Ordering::Release);
    let platform = hal::platform();
    let others = online() & !(1 << platform.cpu_id());
    for cpu in (0..MAX_CPUS).filter(|&cpu| others & (1 << cpu) != 0) {
        let _ = platform.send_ipi(cpu);
    }
}

/// The function [`enter_secondaries`] gave, if any: a started CPU's wait loop checks it (with
/// interrupts masked) before each wait.
pub fn secondary_entry() -> Option<fn(usize) -> !> {
    let entry = SECONDARY_ENTRY.load(Ordering::Acquire);
    // SAFETY: the only non-null value ever stored is a `fn(usize) -> !` (enter_secondaries).
    (!entry.is_null()).then(|| unsafe { core::mem::transmute::<*mut (), fn(usize) -> !>(entry) })
}

/// A function posted to another CPU; it lives on the caller's stack until `done` is set.
struct Call<'a> {
    function: &'a (dyn Fn() + Sync),
    done: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
/// Each CPU's mailbox: the [`Call`] waiting for it, or null.
static MAILBOX: [AtomicPtr<()>; MAX_CPUS] = [EMPTY; MAX_CPUS];

/// Runs `function` on CPU `index` and returns once it has finished there (at once on the
/// running CPU). Calls to one CPU are served one at a time. Errors: `EINVAL` for a CPU that is
/// not online, the platform's error when it cannot send the interrupt (`ENOSYS`: no IPIs).
///
/// Call it with interrupts enabled and no spin lock held: the target may be waiting for that
/// lock, or be sending a call of its own to this CPU, with interrupts masked.
pub fn run_on(index: usize, function: &(dyn Fn() + Sync)) -> crate::Result<()> {
    if index >= MAX_CPUS {
        return Err(Errno::EINVAL);
    }
    run_on_each(1 << index, function)
}

/// [`run_on`] for every CPU in `cpus` (one bit each) at once: the calls are posted and the
/// interrupts sent to all of them before waiting for any, so the waits overlap (a TLB shootdown
/// costs one round trip, not one per CPU). The running CPU, if in the set, runs `function`
/// itself meanwhile. `EINVAL` when a CPU of the set is not online (nothing is run then); a
/// platform error sending an interrupt is returned after the other calls finished.
pub fn run_on_each(cpus: u64, function: &(dyn Fn() + Sync)) -> crate::Result<()> {
    let platform = hal::try_platform();
    // Masked while this CPU is chosen, the calls posted and the local one run: the calling
    // thread must not move to another CPU in between (it would run the local call elsewhere).
    let interrupts = crate::interrupts::disable();
    let me = current();
    if cpus & !ONLINE.load(Ordering::Acquire) != 0 {
        crate::interrupts::restore(interrupts);
        return Err(Errno::EINVAL);
    }
    let others = cpus & !(1 << me);
    let calls: [Call<'_>; MAX_CPUS] = core::array::from_fn(|cpu| Call { function, done: AtomicBool::new(others & (1 << cpu) == 0) });
    let mut result = Ok(());
    for cpu in (0..MAX_CPUS).filter(|&cpu| others & (1 << cpu) != 0) {
        let posted = &calls[cpu] as *const Call<'_> as *mut ();
        while MAILBOX[cpu].compare_exchange(core::ptr::null_mut(), posted, Ordering::AcqRel, Ordering::Acquire).is_err() {
            // Another CPU's call waits there, maybe from a CPU that waits for this one's
            // mailbox in turn: serve our own meanwhile (interrupts are masked here).
            handle_ipi();
            core::hint::spin_loop();
        }
        if let Err(e) = platform.ok_or(Errno::ENOSYS).and_then(|p| p.send_ipi(cpu)) {
            MAILBOX[cpu].store(core::ptr::null_mut(), Ordering::Release);
            calls[cpu].done.store(true, Ordering::Relaxed);
            result = Err(e);
        }
    }
    if cpus & (1 << me) != 0 {
        function();
    }
    crate::interrupts::restore(interrupts);
    for call in &calls {
        while !call.done.load(Ordering::Acquire) {
            handle_ipi(); // a caller with interrupts masked still answers calls to its CPU
            core::hint::spin_loop();
        }
    }
    result
}

/// Serves the running CPU's mailbox: the platform's handler of [`run_on`]'s interrupt (and of
/// wake-up interrupts, which find it empty) calls it.
pub fn handle_ipi() {
    // Masked: the call is served on the CPU whose mailbox it was posted to (a poller in
    // `run_on_each` could otherwise be moved away in the middle).
    let interrupts = crate::interrupts::disable();
    // A CPU woken from its idle halt by this interrupt is busy from here on (the woken thread
    // may run before the idle loop gets to say so).
    crate::idle::leave();
    let me = current();
    // Taken out of the mailbox in one step, so that it runs once even when the interrupt and a
    // poller (`run_on_each`) look at the same time.
    let posted = MAILBOX.get(me).map_or(core::ptr::null_mut(), |mailbox| mailbox.swap(core::ptr::null_mut(), Ordering::AcqRel));
    if !posted.is_null() {
        // SAFETY: only `run_on_each` stores non-null pointers here, to a `Call` on its stack that
        // it keeps alive until `done` is set below.
        let call = unsafe { &*(posted as *const Call<'_>) };
        (call.function)();
        call.done.store(true, Ordering::Release); // the call may be gone from here on
    }
    crate::interrupts::restore(interrupts);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use core::cell::Cell;

    /// CPUs that come online at once when started, except those in `silent` (never) and
    /// `refused` (the firmware says no).
    struct FakeCpus {
        reported: usize,
        silent: &'static [usize],
        refused: &'static [usize],
        started: Vec<usize>,
    }

    impl CpuStarter for FakeCpus {
        fn reported(&self) -> usize {
            self.reported
        }
        fn hardware_id(&self, index: usize) -> u64 {
            index as u64 * 2
        }
        fn start(&mut self, index: usize) -> Result<(), StartError> {
            self.started.push(index);
            if self.refused.contains(&index) {
                return Err(StartError::Refused(-2));
            }
            if !self.silent.contains(&index) {
                mark_online(index);
            }
            Ok(())
        }
    }

    // The online set is global: the tests run one after another inside one test function.
    #[test]
    fn bring_up_honours_the_limit_and_goes_on_without_cpus_that_fail() {
        let reset = || ONLINE.store(1, Ordering::SeqCst);
        let ticks = Cell::new(0u64);
        let clock = || {
            ticks.set(ticks.get() + 1_000_000); // each look at the clock: 1 ms later
            Instant::from_nanos(ticks.get())
        };
        let timeout = Duration::from_millis(50);

        // Every CPU starts.
        reset();
        let mut cpus = FakeCpus { reported: 4, silent: &[], refused: &[], started: alloc::vec![] };
        let report = start_all_with(&mut cpus, None, timeout, &clock);
        assert_eq!(report, StartReport { reported: 4, limit: None, online: 4 });
        assert_eq!(cpus.started, [1, 2, 3]);

        // smp=2 starts one more than the boot CPU; smp=9 is capped to what exists.
        reset();
        let mut cpus = FakeCpus { reported: 4, silent: &[], refused: &[], started: alloc::vec![] };
        assert_eq!(start_all_with(&mut cpus, Some(2), timeout, &clock).online, 2);
        assert_eq!(cpus.started, [1]);
        reset();
        let mut cpus = FakeCpus { reported: 2, silent: &[], refused: &[], started: alloc::vec![] };
        assert_eq!(start_all_with(&mut cpus, Some(9), timeout, &clock), StartReport { reported: 2, limit: Some(9), online: 2 });

        // A CPU that never answers times out, one the firmware refuses is skipped at once;
        // the CPUs after them still start.
        reset();
        let mut cpus = FakeCpus { reported: 5, silent: &[1], refused: &[3], started: alloc::vec![] };
        let before = ticks.get();
        let report = start_all_with(&mut cpus, None, timeout, &clock);
        assert_eq!(report.online, 3);
        assert!(is_online(2) && is_online(4) && !is_online(1) && !is_online(3));
        assert_eq!(cpus.started, [1, 2, 3, 4]);
        let waited = Duration::from_nanos(ticks.get() - before);
        assert!(waited >= timeout && waited < timeout * 2, "waited {waited:?} for the silent CPU");

        // A machine reporting no CPU at all still has the boot CPU; indexes past the set are
        // never online.
        reset();
        let mut cpus = FakeCpus { reported: 0, silent: &[], refused: &[], started: alloc::vec![] };
        assert_eq!(start_all_with(&mut cpus, None, timeout, &clock).online, 1);
        assert!(cpus.started.is_empty());
        mark_online(MAX_CPUS);
        assert!(!is_online(MAX_CPUS));
        assert_eq!(online_count(), 1);

        // run_on: the running CPU (0, whether or not a test registered a fake platform) runs the
        // function itself; a CPU that is not online is refused; without IPIs the error comes
        // back and the mailbox is free.
        let ran = core::sync::atomic::AtomicUsize::new(0);
        let count = || {
            ran.fetch_add(1, Ordering::Relaxed);
        };
        assert_eq!(run_on(0, &count), Ok(()));
        assert_eq!(ran.load(Ordering::Relaxed), 1);
        assert_eq!(run_on(3, &count), Err(Errno::EINVAL));
        mark_online(3);
        assert_eq!(run_on(3, &count), Err(Errno::ENOSYS));
        assert_eq!(run_on(3, &count), Err(Errno::ENOSYS), "the failed call left the mailbox free");
        assert_eq!(ran.load(Ordering::Relaxed), 1);
        handle_ipi(); // an interrupt with an empty mailbox does nothing
        assert_eq!(ran.load(Ordering::Relaxed), 1);
        reset();
    }
}
