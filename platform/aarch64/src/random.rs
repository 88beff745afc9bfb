//! The CPU's random-number instruction (FEAT_RNG, Armv8.5), for [`libos_core::random`]'s seed.
//!
//! `ID_AA64ISAR0_EL1.RNDR` (bits 63:60) is non-zero when the CPU has `RNDR` (a DRBG output)
//! and `RNDRRS` (the same, reseeded from the entropy source first). We seed from `RNDRRS`.
//! Either may fail (NZCV.Z set) when no entropy is ready, so reads are retried a bounded
//! number of times. QEMU's `cortex-a72` (the default here) has no FEAT_RNG; TCG's `-cpu max`
//! has it.

use crate::cpu::read_sysreg;
use core::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const NONE: u8 = 1;
const RNDR: u8 = 2;

static KIND: AtomicU8 = AtomicU8::new(UNKNOWN);

fn kind() -> u8 {
    let known = KIND.load(Ordering::Relaxed);
    if known != UNKNOWN {
        return known;
    }
    let isar0 = read_sysreg!("id_aa64isar0_el1");
    let kind = if (isar0 >> 60) & 0xf != 0 { RNDR } else { NONE };
    KIND.store(kind, Ordering::Relaxed);
    kind
}

/// The instruction's name, when the CPU has one.
pub fn name() -> Option<&'static str> {
    (kind() == RNDR).then_some("rndr")
}

/// 64 random bits, or `None` (no FEAT_RNG, or it kept failing).
pub fn random_u64() -> Option<u64> {
    if kind() != RNDR {
        return None;
    }
    (0..64).find_map(|_| rndrrs())
}

fn rndrrs() -> Option<u64> {
    let value: u64;
    let ok: u64;
    // SAFETY: only called when ID_AA64ISAR0_EL1 reports FEAT_RNG; reading RNDRRS
    // (s3_3_c2_c4_1) writes one register and the flags, nothing else.
    unsafe { core::arch::asm!("mrs {v}, s3_3_c2_c4_1", "cset {ok}, ne", v = out(reg) value, ok = out(reg) ok, options(nomem, nostack)) };
    (ok != 0).then_some(value)
}
