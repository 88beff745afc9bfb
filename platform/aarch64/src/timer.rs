//! The generic timer: the virtual counter is the monotonic clock, the virtual timer
//! (CNTV_*_EL0, a PPI routed through the GIC) is the one-shot timer.

use crate::cpu::read_sysreg;
use core::sync::atomic::{AtomicU64, Ordering};

static FREQUENCY: AtomicU64 = AtomicU64::new(0);

/// Records the counter frequency: CNTFRQ_EL0, or the DTB's `clock-frequency` when firmware left
/// the register unset. Returns it (0: unknown).
pub fn init(dtb_frequency: Option<u64>) -> u64 {
    let register = read_sysreg!("cntfrq_el0") & 0xffff_ffff;
    let hz = dtb_frequency.filter(|&f| f != 0).unwrap_or(register);
    FREQUENCY.store(hz, Ordering::Relaxed);
    disarm();
    hz
}

/// Ticks per second.
pub fn frequency() -> u64 {
    FREQUENCY.load(Ordering::Relaxed)
}

/// Interrupts when the virtual counter reaches `ticks`.
pub fn arm(ticks: u64) {
    // SAFETY: programming the EL1 virtual timer only affects when its interrupt fires.
    unsafe {
        core::arch::asm!("msr cntv_cval_el0, {}", "mov {t}, #1", "msr cntv_ctl_el0, {t}", "isb", in(reg) ticks, t = out(reg) _, options(nomem, nostack));
    }
}

/// Stops the timer (its interrupt line goes low).
pub fn disarm() {
    // SAFETY: disabling the EL1 virtual timer has no other effect.
    unsafe { core::arch::asm!("msr cntv_ctl_el0, xzr", "isb", options(nomem, nostack)) };
}
