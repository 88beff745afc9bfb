//! Powering off with an exit code.
//!
//! With QEMU semihosting (`./x` enables it) `SYS_EXIT_EXTENDED` ends QEMU with the code as its
//! status. Without it (Firecracker, cloud-hypervisor, a plain QEMU command line) the code cannot
//! reach the host through the machine, so we print `libos: exit code N; ...` (runners read it)
//! and call PSCI `SYSTEM_OFF` through the conduit the DTB names (both, one after the other, when
//! the DTB names none or could not be read: the absent one traps and is skipped).

use crate::dtb::PsciMethod;
use crate::{cpu, semihosting};
use core::sync::atomic::{AtomicU8, Ordering};
use libos_core::console::emergency_print;

const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;

unsafe extern "C" {
    fn libos_aarch64_psci_hvc(function: u64) -> u64;
    fn libos_aarch64_psci_smc(function: u64) -> u64;
}

/// 0: no PSCI, 1: hvc, 2: smc.
static PSCI: AtomicU8 = AtomicU8::new(0);

/// Remembers the PSCI conduit from the DTB.
pub fn set_psci(method: Option<PsciMethod>) {
    let value = match method {
        None => 0,
        Some(PsciMethod::Hvc) => 1,
        Some(PsciMethod::Smc) => 2,
    };
    PSCI.store(value, Ordering::Relaxed);
}

/// Stops the machine, reporting `code` to the host when it can.
pub fn power_off(code: i32) -> ! {
    cpu::disable_irqs();
    let code = code.clamp(0, libos_core::exit::MAX_CODE);
    semihosting::exit(code);
    emergency_print(format_args!("libos: exit code {code}; no semihosting, powering off\n"));
    match PSCI.load(Ordering::Relaxed) {
        // SAFETY: PSCI SYSTEM_OFF through the conduit the DTB names does not return.
        1 => unsafe { core::arch::asm!("hvc #0", inout("x0") PSCI_SYSTEM_OFF => _, options(nostack), clobber_abi("C")) },
        // SAFETY: as above, through the secure monitor.
        2 => unsafe { core::arch::asm!("smc #0", inout("x0") PSCI_SYSTEM_OFF => _, options(nostack), clobber_abi("C")) },
        _ => {
            // No conduit from the DTB (or no DTB): try both; the one that does not exist traps
            // as an undefined instruction, which the trap handler skips.
            // SAFETY: both are PSCI calls that do not return when they work; otherwise the
            // trap handler returns from them with x0 = u64::MAX.
            unsafe { libos_aarch64_psci_hvc(PSCI_SYSTEM_OFF) };
            // SAFETY: as above, through the secure monitor.
            unsafe { libos_aarch64_psci_smc(PSCI_SYSTEM_OFF) };
            emergency_print(format_args!("libos: PSCI SYSTEM_OFF failed; halting\n"));
        }
    }
    loop {
        // SAFETY: waiting for an interrupt that never comes (IRQs are masked) stops the CPU.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
}
