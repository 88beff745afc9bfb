//! The local APIC: end-of-interrupt, the one-shot timer the scheduler drives, and the
//! INIT/STARTUP inter-processor interrupts that start the other CPUs ([`crate::smp`]).
//!
//! x2APIC (MSR access) when the CPU has it, else xAPIC (MMIO at the address in
//! IA32_APIC_BASE, which the page tables map as device memory). The timer runs in one-shot mode
//! with divide-by-16; its frequency is calibrated with the TSC in [`crate::clock`].

use crate::interrupts::{SPURIOUS_VECTOR, TIMER_VECTOR};
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_ENABLE: u64 = 1 << 11;
const X2APIC_ENABLE: u64 = 1 << 10;

// Register offsets in the xAPIC MMIO page (x2APIC MSR = 0x800 + offset / 16).
const EOI: u32 = 0xb0;
const SPURIOUS: u32 = 0xf0;
const LVT_TIMER: u32 = 0x320;
const TIMER_INITIAL: u32 = 0x380;
const TIMER_CURRENT: u32 = 0x390;
const TIMER_DIVIDE: u32 = 0x3e0;

const LVT_MASKED: u32 = 1 << 16;
const DIVIDE_BY_16: u32 = 0x3;
/// The timer counts at the APIC bus frequency divided by this.
pub const TIMER_DIVISOR: u64 = 16;

/// Not enabled yet: register accesses are skipped (the shutdown path may run before `init`).
const UNINITIALIZED: u64 = 0;
/// x2APIC mode: registers are MSRs.
const X2APIC: u64 = 1;

/// [`UNINITIALIZED`], [`X2APIC`], or the (page-aligned) address of the xAPIC registers.
static MODE: AtomicU64 = AtomicU64::new(UNINITIALIZED);

fn write(register: u32, value: u32) {
    let base = MODE.load(Ordering::Relaxed);
    if base == UNINITIALIZED {
        return;
    }
    if base == X2APIC {
        // SAFETY: x2APIC mode is enabled (init), so 0x800 + register/16 is an APIC MSR; writes
        // only affect the local APIC.
        unsafe { Msr::new(0x800 + register / 16).write(u64::from(value)) };
    } else {
        // SAFETY: `base` is the xAPIC page, identity-mapped as device memory (paging.rs maps all
        // non-RAM below 4 GiB uncached); `register` is an aligned register offset within it.
        unsafe { core::ptr::write_volatile((base + u64::from(register)) as *mut u32, value) };
    }
}

fn read(register: u32) -> u32 {
    let base = MODE.load(Ordering::Relaxed);
    if base == UNINITIALIZED {
        return 0;
    }
    if base == X2APIC {
        // SAFETY: as in `write`; reading an APIC register has no side effects here.
        unsafe { Msr::new(0x800 + register / 16).read() as u32 }
    } else {
        // SAFETY: as in `write`.
        unsafe { core::ptr::read_volatile((base + u64::from(register)) as *const u32) }
    }
}

#[cfg(feature = "smp")]
pub use secondary::{init_secondary, local_id, send_fixed, send_init, send_startup};

/// What starting and interrupting the other CPUs needs (feature `smp`).
#[cfg(feature = "smp")]
mod secondary {
    use super::*;

    const ID: u32 = 0x20;
    const ICR_LOW: u32 = 0x300;
    const ICR_HIGH: u32 = 0x310;

    /// ICR delivery mode INIT, level assert.
    const ICR_INIT: u32 = (0b101 << 8) | (1 << 14);
    /// ICR delivery mode STARTUP (the vector is the start page number), level assert.
    const ICR_STARTUP: u32 = (0b110 << 8) | (1 << 14);
    /// ICR delivery status: the xAPIC has not sent the previous IPI yet.
    const ICR_PENDING: u32 = 1 << 12;

    /// This CPU's local APIC id (the full 32-bit id in x2APIC mode).
    pub fn local_id() -> u32 {
        if MODE.load(Ordering::Relaxed) == X2APIC { read(ID) } else { read(ID) >> 24 }
    }

    /// Sends an inter-processor interrupt with `command` (the ICR's low half) to `apic_id`.
    fn send_ipi(apic_id: u32, command: u32) {
        let base = MODE.load(Ordering::Relaxed);
        // The IPI must not overtake the stores the target will read (its start-up variables): the
        // x2APIC's ICR write is a WRMSR, which does not order earlier stores.
        core::sync::atomic::fence(Ordering::SeqCst);
        if base == X2APIC {
            // SAFETY: x2APIC mode is on; 0x830 is the 64-bit ICR (destination in the high half).
            unsafe { Msr::new(0x830).write((u64::from(apic_id) << 32) | u64::from(command)) };
        } else if base != UNINITIALIZED {
            write(ICR_HIGH, apic_id << 24);
            write(ICR_LOW, command);
            while read(ICR_LOW) & ICR_PENDING != 0 {
                core::hint::spin_loop();
            }
        }
    }

    /// Sends `vector` to `apic_id` (fixed delivery).
    pub fn send_fixed(apic_id: u32, vector: u8) {
        send_ipi(apic_id, (1 << 14) | u32::from(vector));
    }

    /// Sends INIT to `apic_id`: the CPU resets and waits for a STARTUP.
    pub fn send_init(apic_id: u32) {
        send_ipi(apic_id, ICR_INIT);
    }

    /// Sends STARTUP to `apic_id`: it begins in real mode at physical address `page` (4 KiB
    /// aligned, below 1 MiB).
    pub fn send_startup(apic_id: u32, page: u64) {
        debug_assert!(page % 4096 == 0 && page < 0x10_0000);
        send_ipi(apic_id, ICR_STARTUP | (page >> 12) as u32);
    }

    /// Enables this (secondary) CPU's local APIC in the mode the boot CPU chose, timer masked.
    pub fn init_secondary() {
        let mode = MODE.load(Ordering::Relaxed);
        if mode == UNINITIALIZED {
            return;
        }
        let mut base_msr = Msr::new(IA32_APIC_BASE);
        // SAFETY: as in `init`: the enable bits of this CPU's own APIC, base address kept.
        unsafe {
            let value = base_msr.read();
            base_msr.write(value | APIC_ENABLE | if mode == X2APIC { X2APIC_ENABLE } else { 0 });
        }
        write(SPURIOUS, 0x100 | u32::from(SPURIOUS_VECTOR));
        write(TIMER_DIVIDE, DIVIDE_BY_16);
        write(LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
        write(TIMER_INITIAL, 0);
    }
}

/// Enables the local APIC with the timer masked, and masks the legacy PICs.
pub fn init(x2apic: bool) {
    // SAFETY: writing 0xff to both PICs' data ports masks every legacy IRQ line; on machines
    // without PICs the writes go nowhere.
    unsafe {
        Port::<u8>::new(0x21).write(0xff);
        Port::<u8>::new(0xa1).write(0xff);
    }
    let mut base_msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; setting the enable bits (and keeping
    // the base address) turns the local APIC on in the chosen mode.
    unsafe {
        let value = base_msr.read();
        if x2apic {
            base_msr.write(value | APIC_ENABLE | X2APIC_ENABLE);
            MODE.store(X2APIC, Ordering::Relaxed);
        } else {
            base_msr.write(value | APIC_ENABLE);
            MODE.store(value & 0x000f_ffff_ffff_f000, Ordering::Relaxed);
        }
    }
    write(SPURIOUS, 0x100 | u32::from(SPURIOUS_VECTOR));
    write(TIMER_DIVIDE, DIVIDE_BY_16);
    write(LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    write(TIMER_INITIAL, 0);
}

/// Acknowledges the interrupt being handled.
pub fn end_of_interrupt() {
    write(EOI, 0);
}

/// Starts the timer counting down from `ticks` with its interrupt masked (for calibration).
pub fn start_counting(ticks: u32) {
    write(LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    write(TIMER_INITIAL, ticks);
}

/// The timer's current count.
pub fn current_count() -> u32 {
    read(TIMER_CURRENT)
}

/// How the local APIC is accessed, for log messages.
pub fn mode() -> impl core::fmt::Display {
    struct Mode(u64);
    impl core::fmt::Display for Mode {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self.0 {
                UNINITIALIZED => f.write_str("not enabled"),
                X2APIC => f.write_str("x2APIC mode"),
                base => write!(f, "xAPIC mode at {base:#x}"),
            }
        }
    }
    Mode(MODE.load(Ordering::Relaxed))
}

/// True once [`init`] has enabled the local APIC.
pub fn is_enabled() -> bool {
    MODE.load(Ordering::Relaxed) != UNINITIALIZED
}

/// Interrupts once after `ticks` timer ticks (0 stops the timer).
pub fn one_shot(ticks: u32) {
    write(LVT_TIMER, u32::from(TIMER_VECTOR));
    write(TIMER_INITIAL, ticks);
}
