//! The CPU's random-number instructions, for [`libos_core::random`]'s seed.
//!
//! `RDSEED` (CPUID.7.0:EBX bit 18) returns conditioned entropy straight from the hardware source,
//! which is what seeding wants; `RDRAND` (CPUID.1:ECX bit 30) returns the output of a DRBG
//! the hardware reseeds, the next best. Either may fail transiently (carry clear) when the
//! source is drained, so each is retried a bounded number of times; `None` then. QEMU's default
//! CPU model (`qemu64`) has neither; TCG's `-cpu max` has both.

use crate::cpu::cpuid;
use core::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const NONE: u8 = 1;
const RDRAND: u8 = 2;
const RDSEED: u8 = 3;

static KIND: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Which instruction this CPU has (CPUID, read once).
fn kind() -> u8 {
    let known = KIND.load(Ordering::Relaxed);
    if known != UNKNOWN {
        return known;
    }
    let max_leaf = cpuid(0, 0).eax;
    let rdseed = max_leaf >= 7 && cpuid(7, 0).ebx & (1 << 18) != 0;
    let rdrand = cpuid(1, 0).ecx & (1 << 30) != 0;
    let kind = if rdseed {
        RDSEED
    } else if rdrand {
        RDRAND
    } else {
        NONE
    };
    KIND.store(kind, Ordering::Relaxed);
    kind
}

/// The instruction's name, when the CPU has one.
pub fn name() -> Option<&'static str> {
    match kind() {
        RDSEED => Some("rdseed"),
        RDRAND => Some("rdrand"),
        _ => None,
    }
}

/// 64 random bits, or `None` (no instruction, or it kept failing).
pub fn random_u64() -> Option<u64> {
    match kind() {
        // RDSEED fails more often under load than RDRAND (it waits for fresh entropy), so it
        // gets more tries; then RDRAND, which every RDSEED CPU also has.
        RDSEED => (0..64).find_map(|_| rdseed()).or_else(|| (0..10).find_map(|_| rdrand())),
        RDRAND => (0..10).find_map(|_| rdrand()),
        _ => None,
    }
}

fn rdseed() -> Option<u64> {
    let value: u64;
    let ok: u8;
    // SAFETY: only called when CPUID reports RDSEED; it writes one register and the flags.
    unsafe { core::arch::asm!("rdseed {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok, options(nomem, nostack)) };
    (ok != 0).then_some(value)
}

fn rdrand() -> Option<u64> {
    let value: u64;
    let ok: u8;
    // SAFETY: only called when CPUID reports RDRAND; it writes one register and the flags.
    unsafe { core::arch::asm!("rdrand {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok, options(nomem, nostack)) };
    (ok != 0).then_some(value)
}
