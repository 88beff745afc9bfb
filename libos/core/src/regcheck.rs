//! Register probes for the preemption tests (the `threads` app's `simd` and `red-zone` checks):
//! code that keeps values where compiled C code keeps them (every FP/SIMD register and its
//! control register; the 128 bytes below the stack pointer, the System V red zone) while it
//! spins with interrupts enabled, then reports whether they survived. When several threads run
//! them at once under a preemptive policy, every interrupt and every preemption in between must
//! leave them intact.
//!
//! They live here, where `unsafe` (inline assembly) is allowed, so apps keep
//! `#![forbid(unsafe_code)]`; like [`crate::fault`], they exist for tests.

/// Values derived from `seed` (distinct per word, so a register swapped with another or with
/// another thread's is noticed).
fn pattern<const N: usize>(seed: u64) -> [u64; N] {
    let mut state = seed | 1;
    core::array::from_fn(|i| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state.wrapping_add(i as u64)
    })
}

fn count_changed(expected: &[u64], got: &[u64]) -> usize {
    expected.iter().zip(got).filter(|(e, g)| e != g).count()
}

/// Loads every vector register (x86_64: `xmm0`-`xmm15`; aarch64: `v0`-`v31`) with values
/// derived from `seed` and the FP control register with a non-default rounding mode (MXCSR,
/// FPCR), spins `spins` iterations, and reads them back. `Err(n)`: `n` of the registers (the
/// control register counts as one) changed. The previous register contents are restored.
pub fn vector_registers_survive(seed: u64, spins: u64) -> Result<(), usize> {
    arch::vector_registers_survive(seed, spins)
}

/// Writes 16 words derived from `seed` into the 128 bytes below the stack pointer, spins `spins`
/// iterations without touching the stack, and reads them back. `Err(n)`: `n` words changed.
pub fn red_zone_survives(seed: u64, spins: u64) -> Result<(), usize> {
    arch::red_zone_survives(seed, spins)
}

#[cfg(target_arch = "x86_64")]
mod arch {
    use super::{count_changed, pattern};

    /// MXCSR with round-toward-zero (RC = 11) and all exceptions masked.
    const MXCSR_PROBE: u32 = 0x7f80;

    pub fn vector_registers_survive(seed: u64, spins: u64) -> Result<(), usize> {
        let load: [u64; 32] = pattern(seed);
        let mut got = [0u64; 32];
        let mut saved = [0u64; 32];
        let (mut mxcsr_saved, mut mxcsr_got) = (0u32, 0u32);
        // The kernel target is soft-float, so `xmm` registers cannot be declared as clobbers;
        // instead the asm saves them first and restores them last, changing nothing visible.
        // SAFETY: every pointer is to a local buffer of the size used (32 words = 16 registers,
        // 4 bytes for MXCSR); SSE is enabled at boot (platform); the registers and MXCSR are
        // restored before the block ends; `spins` is counted down in a declared register.
        unsafe {
            core::arch::asm!(
                "stmxcsr [{mxs}]",
                "movdqu [{sav} + 0x00], xmm0", "movdqu [{sav} + 0x10], xmm1",
                "movdqu [{sav} + 0x20], xmm2", "movdqu [{sav} + 0x30], xmm3",
                "movdqu [{sav} + 0x40], xmm4", "movdqu [{sav} + 0x50], xmm5",
                "movdqu [{sav} + 0x60], xmm6", "movdqu [{sav} + 0x70], xmm7",
                "movdqu [{sav} + 0x80], xmm8", "movdqu [{sav} + 0x90], xmm9",
                "movdqu [{sav} + 0xa0], xmm10", "movdqu [{sav} + 0xb0], xmm11",
                "movdqu [{sav} + 0xc0], xmm12", "movdqu [{sav} + 0xd0], xmm13",
                "movdqu [{sav} + 0xe0], xmm14", "movdqu [{sav} + 0xf0], xmm15",
                "movdqu xmm0, [{ld} + 0x00]", "movdqu xmm1, [{ld} + 0x10]",
                "movdqu xmm2, [{ld} + 0x20]", "movdqu xmm3, [{ld} + 0x30]",
                "movdqu xmm4, [{ld} + 0x40]", "movdqu xmm5, [{ld} + 0x50]",
                "movdqu xmm6, [{ld} + 0x60]", "movdqu xmm7, [{ld} + 0x70]",
                "movdqu xmm8, [{ld} + 0x80]", "movdqu xmm9, [{ld} + 0x90]",
                "movdqu xmm10, [{ld} + 0xa0]", "movdqu xmm11, [{ld} + 0xb0]",
                "movdqu xmm12, [{ld} + 0xc0]", "movdqu xmm13, [{ld} + 0xd0]",
                "movdqu xmm14, [{ld} + 0xe0]", "movdqu xmm15, [{ld} + 0xf0]",
                "ldmxcsr [{mxp}]",
                "2:",
                "dec {n}",
                "jnz 2b",
                "stmxcsr [{mxg}]",
                "movdqu [{got} + 0x00], xmm0", "movdqu [{got} + 0x10], xmm1",
                "movdqu [{got} + 0x20], xmm2", "movdqu [{got} + 0x30], xmm3",
                "movdqu [{got} + 0x40], xmm4", "movdqu [{got} + 0x50], xmm5",
                "movdqu [{got} + 0x60], xmm6", "movdqu [{got} + 0x70], xmm7",
                "movdqu [{got} + 0x80], xmm8", "movdqu [{got} + 0x90], xmm9",
                "movdqu [{got} + 0xa0], xmm10", "movdqu [{got} + 0xb0], xmm11",
                "movdqu [{got} + 0xc0], xmm12", "movdqu [{got} + 0xd0], xmm13",
                "movdqu [{got} + 0xe0], xmm14", "movdqu [{got} + 0xf0], xmm15",
                "movdqu xmm0, [{sav} + 0x00]", "movdqu xmm1, [{sav} + 0x10]",
                "movdqu xmm2, [{sav} + 0x20]", "movdqu xmm3, [{sav} + 0x30]",
                "movdqu xmm4, [{sav} + 0x40]", "movdqu xmm5, [{sav} + 0x50]",
                "movdqu xmm6, [{sav} + 0x60]", "movdqu xmm7, [{sav} + 0x70]",
                "movdqu xmm8, [{sav} + 0x80]", "movdqu xmm9, [{sav} + 0x90]",
                "movdqu xmm10, [{sav} + 0xa0]", "movdqu xmm11, [{sav} + 0xb0]",
                "movdqu xmm12, [{sav} + 0xc0]", "movdqu xmm13, [{sav} + 0xd0]",
                "movdqu xmm14, [{sav} + 0xe0]", "movdqu xmm15, [{sav} + 0xf0]",
                "ldmxcsr [{mxs}]",
                ld = in(reg) load.as_ptr(),
                got = in(reg) got.as_mut_ptr(),
                sav = in(reg) saved.as_mut_ptr(),
                mxs = in(reg) &mut mxcsr_saved,
                mxg = in(reg) &mut mxcsr_got,
                mxp = in(reg) &MXCSR_PROBE,
                n = inout(reg) spins.max(1) => _,
                options(nostack),
            );
        }
        let changed = count_changed(&load, &got) + usize::from(mxcsr_got != MXCSR_PROBE);
        if changed == 0 { Ok(()) } else { Err(changed) }
    }

    pub fn red_zone_survives(seed: u64, spins: u64) -> Result<(), usize> {
        let load: [u64; 16] = pattern(seed);
        let mut got = [0u64; 16];
        // SAFETY: the asm writes and reads only the 128 bytes below `rsp` (allowed: the block is
        // not `nostack`, and the kernel target has no red zone of its own, so the compiler keeps
        // nothing there) and the two local buffers; `rsp` itself never moves.
        unsafe {
            core::arch::asm!(
                "mov {i:e}, 16",
                "2:",
                "mov {t}, [{ld} + {i} * 8 - 8]",
                "mov [rsp + {i} * 8 - 136], {t}",
                "dec {i:e}",
                "jnz 2b",
                "3:",
                "dec {n}",
                "jnz 3b",
                "mov {i:e}, 16",
                "4:",
                "mov {t}, [rsp + {i} * 8 - 136]",
                "mov [{got} + {i} * 8 - 8], {t}",
                "dec {i:e}",
                "jnz 4b",
                ld = in(reg) load.as_ptr(),
                got = in(reg) got.as_mut_ptr(),
                i = out(reg) _,
                t = out(reg) _,
                n = inout(reg) spins.max(1) => _,
            );
        }
        let changed = count_changed(&load, &got);
        if changed == 0 { Ok(()) } else { Err(changed) }
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    use super::{count_changed, pattern};

    /// FPCR.RMode = 0b11 (round toward zero).
    const FPCR_PROBE: u64 = 0b11 << 22;

    pub fn vector_registers_survive(seed: u64, spins: u64) -> Result<(), usize> {
        let load: [u64; 64] = pattern(seed);
        let mut got = [0u64; 64];
        let mut saved = [0u64; 64];
        let mut fpcr_got = 0u64;
        // The kernel target is soft-float, so `v` registers cannot be declared as clobbers;
        // instead the asm saves them first and restores them last, changing nothing visible.
        // SAFETY: the pointers are to local buffers of 64 words (32 q registers); the vector
        // registers and FPCR are restored before the block ends; FP/SIMD is enabled at boot.
        unsafe {
            core::arch::asm!(
                ".arch_extension fp",
                ".arch_extension simd",
                "mrs {saved}, fpcr",
                "stp q0, q1, [{sav}, #0]", "stp q2, q3, [{sav}, #32]",
                "stp q4, q5, [{sav}, #64]", "stp q6, q7, [{sav}, #96]",
                "stp q8, q9, [{sav}, #128]", "stp q10, q11, [{sav}, #160]",
                "stp q12, q13, [{sav}, #192]", "stp q14, q15, [{sav}, #224]",
                "stp q16, q17, [{sav}, #256]", "stp q18, q19, [{sav}, #288]",
                "stp q20, q21, [{sav}, #320]", "stp q22, q23, [{sav}, #352]",
                "stp q24, q25, [{sav}, #384]", "stp q26, q27, [{sav}, #416]",
                "stp q28, q29, [{sav}, #448]", "stp q30, q31, [{sav}, #480]",
                "msr fpcr, {probe}",
                "ldp q0, q1, [{ld}, #0]", "ldp q2, q3, [{ld}, #32]",
                "ldp q4, q5, [{ld}, #64]", "ldp q6, q7, [{ld}, #96]",
                "ldp q8, q9, [{ld}, #128]", "ldp q10, q11, [{ld}, #160]",
                "ldp q12, q13, [{ld}, #192]", "ldp q14, q15, [{ld}, #224]",
                "ldp q16, q17, [{ld}, #256]", "ldp q18, q19, [{ld}, #288]",
                "ldp q20, q21, [{ld}, #320]", "ldp q22, q23, [{ld}, #352]",
                "ldp q24, q25, [{ld}, #384]", "ldp q26, q27, [{ld}, #416]",
                "ldp q28, q29, [{ld}, #448]", "ldp q30, q31, [{ld}, #480]",
                "2:",
                "subs {n}, {n}, #1",
                "b.ne 2b",
                "mrs {fg}, fpcr",
                "stp q0, q1, [{got}, #0]", "stp q2, q3, [{got}, #32]",
                "stp q4, q5, [{got}, #64]", "stp q6, q7, [{got}, #96]",
                "stp q8, q9, [{got}, #128]", "stp q10, q11, [{got}, #160]",
                "stp q12, q13, [{got}, #192]", "stp q14, q15, [{got}, #224]",
                "stp q16, q17, [{got}, #256]", "stp q18, q19, [{got}, #288]",
                "stp q20, q21, [{got}, #320]", "stp q22, q23, [{got}, #352]",
                "stp q24, q25, [{got}, #384]", "stp q26, q27, [{got}, #416]",
                "stp q28, q29, [{got}, #448]", "stp q30, q31, [{got}, #480]",
                "ldp q0, q1, [{sav}, #0]", "ldp q2, q3, [{sav}, #32]",
                "ldp q4, q5, [{sav}, #64]", "ldp q6, q7, [{sav}, #96]",
                "ldp q8, q9, [{sav}, #128]", "ldp q10, q11, [{sav}, #160]",
                "ldp q12, q13, [{sav}, #192]", "ldp q14, q15, [{sav}, #224]",
                "ldp q16, q17, [{sav}, #256]", "ldp q18, q19, [{sav}, #288]",
                "ldp q20, q21, [{sav}, #320]", "ldp q22, q23, [{sav}, #352]",
                "ldp q24, q25, [{sav}, #384]", "ldp q26, q27, [{sav}, #416]",
                "ldp q28, q29, [{sav}, #448]", "ldp q30, q31, [{sav}, #480]",
                "msr fpcr, {saved}",
                ld = in(reg) load.as_ptr(),
                got = in(reg) got.as_mut_ptr(),
                sav = in(reg) saved.as_mut_ptr(),
                probe = in(reg) FPCR_PROBE,
                saved = out(reg) _,
                fg = out(reg) fpcr_got,
                n = inout(reg) spins.max(1) => _,
                options(nostack),
            );
        }
        let registers = load.chunks(2).zip(got.chunks(2)).filter(|(l, g)| l != g).count();
        let changed = registers + usize::from(fpcr_got & FPCR_PROBE != FPCR_PROBE);
        if changed == 0 { Ok(()) } else { Err(changed) }
    }

    pub fn red_zone_survives(seed: u64, spins: u64) -> Result<(), usize> {
        let load: [u64; 16] = pattern(seed);
        let mut got = [0u64; 16];
        // SAFETY: the asm writes and reads only the 128 bytes below `sp` (allowed: the block is
        // not `nostack`) and the two local buffers; `sp` itself never moves.
        unsafe {
            core::arch::asm!(
                "mov {i}, #0",
                "2:",
                "ldr {t}, [{ld}, {i}, lsl #3]",
                "sub {a}, sp, #128",
                "str {t}, [{a}, {i}, lsl #3]",
                "add {i}, {i}, #1",
                "cmp {i}, #16",
                "b.ne 2b",
                "3:",
                "subs {n}, {n}, #1",
                "b.ne 3b",
                "mov {i}, #0",
                "4:",
                "sub {a}, sp, #128",
                "ldr {t}, [{a}, {i}, lsl #3]",
                "str {t}, [{got}, {i}, lsl #3]",
                "add {i}, {i}, #1",
                "cmp {i}, #16",
                "b.ne 4b",
                ld = in(reg) load.as_ptr(),
                got = in(reg) got.as_mut_ptr(),
                i = out(reg) _,
                t = out(reg) _,
                a = out(reg) _,
                n = inout(reg) spins.max(1) => _,
            );
        }
        let changed = count_changed(&load, &got);
        if changed == 0 { Ok(()) } else { Err(changed) }
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod arch {
    pub fn vector_registers_survive(_seed: u64, _spins: u64) -> Result<(), usize> {
        Ok(())
    }

    pub fn red_zone_survives(_seed: u64, _spins: u64) -> Result<(), usize> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probes_pass_when_nothing_interferes() {
        // On the host (x86_64 or aarch64) the same assembly runs as a plain function.
        for seed in [1, 2, 0xdead_beef] {
            assert_eq!(vector_registers_survive(seed, 1000), Ok(()));
            assert_eq!(red_zone_survives(seed, 1000), Ok(()));
        }
        assert_ne!(pattern::<4>(1), pattern::<4>(2));
        assert_eq!(count_changed(&[1, 2, 3], &[1, 0, 0]), 2);
    }
}
