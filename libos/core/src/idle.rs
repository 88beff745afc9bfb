//! Idle-time accounting: how much of the monotonic counter passed with each CPU halted waiting
//! for an interrupt.
//!
//! Benchmarks under QEMU `-icount shift=0,sleep=off` read the counter as an instruction count,
//! except that a halted CPU's clock jumps to its next timer deadline. Subtracting the idle
//! ticks from a window gives the instructions the guest executed in it, whatever timers were
//! pending ([`ticks`]: the boot CPU's, as icount runs use one CPU). The process's CPU time is
//! every CPU's busy time together ([`busy_ticks`]).
//!
//! The idle loops call [`enter`] right before halting; the first interrupt that ends the halt
//! calls [`leave`] (from [`crate::device::device_interrupt`], [`crate::hal::irq::timer_interrupt`]
//! and [`crate::cpus::handle_ipi`]), so the handler's own work counts as busy. Each CPU
//! writes only its own record, with interrupts masked; readers on other CPUs see a halt still
//! going on too (a CPU can stay halted for a long time), and a sequence count per CPU keeps what
//! they read consistent (the sum never goes back).

use crate::cpus::{self, MAX_CPUS};
use crate::hal;
use core::sync::atomic::{AtomicU64, Ordering};

/// One CPU's record.
struct IdleRecord {
    /// Odd while the CPU changes the record.
    sequence: AtomicU64,
    /// Counter value when the CPU went idle; 0 while it runs.
    since: AtomicU64,
    /// Counter ticks spent idle in finished halts.
    ticks: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const RUNNING: IdleRecord = IdleRecord { sequence: AtomicU64::new(0), since: AtomicU64::new(0), ticks: AtomicU64::new(0) };
static RECORDS: [IdleRecord; MAX_CPUS] = [RUNNING; MAX_CPUS];

impl IdleRecord {
    /// Changes the record (only its own CPU does, with interrupts masked).
    fn update(&self, change: impl FnOnce(&IdleRecord)) {
        self.sequence.fetch_add(1, Ordering::AcqRel);
        change(self);
        self.sequence.fetch_add(1, Ordering::Release);
    }

    /// Idle ticks up to the counter value `now`, a halt in progress included.
    fn idle_at(&self, now: u64) -> u64 {
        loop {
            let before = self.sequence.load(Ordering::Acquire);
            let (since, ticks) = (self.since.load(Ordering::Acquire), self.ticks.load(Ordering::Acquire));
            if before % 2 == 0 && self.sequence.load(Ordering::Acquire) == before {
                return ticks + if since != 0 { now.saturating_sub(since) } else { 0 };
            }
            core::hint::spin_loop();
        }
    }
}

/// The CPU is about to halt until an interrupt.
pub fn enter() {
    if let Some(platform) = hal::try_platform() {
        let now = platform.counter().max(1);
        RECORDS[cpus::current()].update(|r| r.since.store(now, Ordering::Relaxed));
    }
}

/// The CPU runs again (an interrupt, or the halt returned). Cheap when it was not idle.
pub fn leave() {
    let record = &RECORDS[cpus::current()];
    if record.since.load(Ordering::Relaxed) == 0 {
        return;
    }
    if let Some(platform) = hal::try_platform() {
        let now = platform.counter();
        record.update(|r| {
            let since = r.since.swap(0, Ordering::Relaxed);
            r.ticks.fetch_add(now.saturating_sub(since), Ordering::Relaxed);
        });
    }
}

/// Counter ticks the boot CPU spent halted since boot (see the module docs).
pub fn ticks() -> u64 {
    hal::try_platform().map_or(0, |p| RECORDS[0].idle_at(p.counter()))
}

/// Counter ticks all online CPUs together spent not halted since boot: the machine's CPU time.
pub fn busy_ticks() -> u64 {
    let Some(platform) = hal::try_platform() else { return 0 };
    let now = platform.counter();
    let online = cpus::online();
    (0..MAX_CPUS).filter(|&cpu| online & (1 << cpu) != 0).map(|cpu| now.saturating_sub(RECORDS[cpu].idle_at(now))).sum()
}
