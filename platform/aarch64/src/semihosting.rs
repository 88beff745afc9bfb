//! Arm semihosting: how the exit code reaches QEMU's process status, and a console of last
//! resort when the DTB names no UART.
//!
//! QEMU implements semihosting only when started with `-semihosting-config enable=on` (`./x`
//! does that by default). Otherwise the `hlt #0xf000` is an undefined instruction: instead of
//! asking the runner to tell us (through the command line, say), we just try. The trap handler
//! recognises an undefined-instruction exception at our one `hlt` (src/boot.s,
//! `libos_aarch64_semihosting_hlt`), skips it and makes the call return `u64::MAX`; from then on
//! we know semihosting is absent and do not try again.
//!
//! The probe runs at boot ([`probe`]), in thread mode. A trap taken while already handling an
//! exception would land on the nested-exception vector, which abandons the interrupted stack,
//! so an exception handler never probes: while the answer is unknown it treats semihosting as
//! absent.

use crate::exceptions::TrapFrame;
use crate::esr;
use core::sync::atomic::{AtomicBool, Ordering};

const SYS_WRITEC: u64 = 0x03;
const SYS_EXIT_EXTENDED: u64 = 0x20;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x2_0026;

unsafe extern "C" {
    fn libos_aarch64_semihosting_call(operation: u64, parameter: u64) -> u64;
    static libos_aarch64_semihosting_hlt: u8;
    static libos_aarch64_psci_hvc: u8;
    static libos_aarch64_psci_smc: u8;
}

const SYS_ERRNO: u64 = 0x13;

static ABSENT: AtomicBool = AtomicBool::new(false);
static PROBED: AtomicBool = AtomicBool::new(false);

/// Finds out whether semihosting is there (a harmless `SYS_ERRNO` call). Call in thread mode.
pub fn probe() {
    let _ = call(SYS_ERRNO, 0);
    PROBED.store(true, Ordering::Relaxed);
}

fn call(operation: u64, parameter: u64) -> Option<u64> {
    if ABSENT.load(Ordering::Relaxed) || (!PROBED.load(Ordering::Relaxed) && crate::cpu::in_exception_handler()) {
        return None;
    }
    // SAFETY: the call takes an operation number and a pointer to a parameter block that the
    // callers keep alive across it; without semihosting the trap handler skips the `hlt`.
    let result = unsafe { libos_aarch64_semihosting_call(operation, parameter) };
    (!ABSENT.load(Ordering::Relaxed)).then_some(result)
}

/// Ends QEMU with `code` as its exit status. Returns when semihosting is not available.
pub fn exit(code: i32) {
    let block = [ADP_STOPPED_APPLICATION_EXIT, code as u64];
    let _ = call(SYS_EXIT_EXTENDED, block.as_ptr() as u64);
}

/// Writes bytes to the semihosting console (QEMU's standard output). Does nothing without it.
pub fn write_bytes(bytes: &[u8]) {
    for byte in bytes {
        if call(SYS_WRITEC, byte as *const u8 as u64).is_none() {
            return;
        }
    }
}

/// Handles the trap of a probing instruction (our semihosting `hlt`, or the `hvc`/`smc` of a
/// PSCI call without a conduit from the DTB) on a machine where it is undefined: skips it and
/// returns `u64::MAX` in x0. True if the trap was one of these.
pub fn handle_missing(esr_value: u64, frame: &mut TrapFrame) -> bool {
    let hlt = (&raw const libos_aarch64_semihosting_hlt) as u64;
    let hvc = (&raw const libos_aarch64_psci_hvc) as u64;
    let smc = (&raw const libos_aarch64_psci_smc) as u64;
    if esr::class(esr_value) != esr::ec::UNKNOWN || ![hlt, hvc, smc].contains(&frame.elr) {
        return false;
    }
    if frame.elr == hlt {
        ABSENT.store(true, Ordering::Relaxed);
    }
    frame.elr += 4;
    frame.x[0] = u64::MAX;
    true
}
