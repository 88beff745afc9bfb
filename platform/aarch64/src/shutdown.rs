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

/// 0: not known yet, 1: hvc, 2: smc, 3: none.
static PSCI: AtomicU8 = AtomicU8::new(0);

const PSCI_VERSION: u64 = 0x8400_0000;
/// What a probe call returns when its instruction trapped.
const TRAPPED: u64 = u64::MAX;

/// Remembers the PSCI conduit from the DTB; without one, finds out which of `hvc` and `smc`
/// answers a PSCI_VERSION call (the absent one traps and is skipped). Call in thread mode: a
/// probe from an exception handler would land on the nested-exception vector.
pub fn set_psci(method: Option<PsciMethod>) {
    let value = match method {
        Some(PsciMethod::Hvc) => 1,
        Some(PsciMethod::Smc) => 2,
        // SAFETY: PSCI_VERSION only reports the version; where the conduit does not exist the
        // instruction traps and the trap handler returns TRAPPED.
        None if unsafe { libos_aarch64_psci_hvc(PSCI_VERSION) } != TRAPPED => 1,
        // SAFETY: as above, through the secure monitor.
        None if unsafe { libos_aarch64_psci_smc(PSCI_VERSION) } != TRAPPED => 2,
        None => 3,
    };
    PSCI.store(value, Ordering::Relaxed);
}

/// Stops the machine, reporting `code` to the host when it can.
pub fn power_off(code: i32) -> ! {
    cpu::disable_irqs();
    let code = code.clamp(0, libos_core::exit::MAX_CODE);
    semihosting::exit(code);
    emergency_print(format_args!("libos: exit code {code}; no semihosting, powering off\n"));
    power_off_psci();
    loop {
        // SAFETY: waiting for an interrupt that never comes (IRQs are masked) stops the CPU.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
}

/// Calls PSCI `function` with three arguments through the conduit the DTB named (or the probe
/// found); its return value (negative: a PSCI error), or `None` when there is no PSCI.
///
/// # Safety
/// The function and its arguments must be safe to call from here: e.g. `CPU_ON` must name an
/// entry point and context that are ready for the CPU it starts.
pub unsafe fn psci_call(function: u64, a1: u64, a2: u64, a3: u64) -> Option<i64> {
    let result: u64;
    match PSCI.load(Ordering::Relaxed) {
        // SAFETY: forwarded contract; an SMCCC call clobbers at most the caller-saved registers.
        1 => unsafe {
            core::arch::asm!("hvc #0", inout("x0") function => result, inout("x1") a1 => _, inout("x2") a2 => _,
                inout("x3") a3 => _, options(nostack), clobber_abi("C"))
        },
        // SAFETY: as above, through the secure monitor.
        2 => unsafe {
            core::arch::asm!("smc #0", inout("x0") function => result, inout("x1") a1 => _, inout("x2") a2 => _,
                inout("x3") a3 => _, options(nostack), clobber_abi("C"))
        },
        _ => return None,
    }
    Some(result as i64)
}

/// PSCI SYSTEM_OFF through the known conduit (returns if there is none or it failed).
fn power_off_psci() {
    match PSCI.load(Ordering::Relaxed) {
        // SAFETY: PSCI SYSTEM_OFF through the conduit the DTB names does not return.
        1 => unsafe { core::arch::asm!("hvc #0", inout("x0") PSCI_SYSTEM_OFF => _, options(nostack), clobber_abi("C")) },
        // SAFETY: as above, through the secure monitor.
        2 => unsafe { core::arch::asm!("smc #0", inout("x0") PSCI_SYSTEM_OFF => _, options(nostack), clobber_abi("C")) },
        // Not known (the boot failed before reading the DTB): probing is safe in thread mode.
        0 if !cpu::in_exception_handler() => {
            set_psci(None);
            if PSCI.load(Ordering::Relaxed) != 3 {
                power_off_psci();
            }
            emergency_print(format_args!("libos: no PSCI; halting\n"));
        }
        _ => emergency_print(format_args!("libos: no PSCI; halting\n")),
    }
}
