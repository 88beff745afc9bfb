//! CPU identification (CPUID) and the few features libos acts on.

use core::arch::x86_64::{CpuidResult, __cpuid_count};

/// CPUID leaf `leaf`, sub-leaf `sub`.
pub fn cpuid(leaf: u32, sub: u32) -> CpuidResult {
    // SAFETY: CPUID exists on every x86_64 CPU and only reads identification registers.
    #[allow(unused_unsafe)]
    unsafe {
        __cpuid_count(leaf, sub)
    }
}

/// Features the platform uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    /// No-execute page protection (EFER.NXE).
    pub nx: bool,
    /// x2APIC mode (MSR-based local APIC).
    pub x2apic: bool,
}

impl Features {
    /// Reads the features of the running CPU.
    pub fn detect() -> Features {
        let basic = cpuid(1, 0);
        let max_extended = cpuid(0x8000_0000, 0).eax;
        let extended = if max_extended >= 0x8000_0001 { cpuid(0x8000_0001, 0).edx } else { 0 };
        Features {
            nx: extended & (1 << 20) != 0,
            x2apic: basic.ecx & (1 << 21) != 0,
        }
    }
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the counter (CR4.TSD is clear: we run at CPL 0 anyway).
    unsafe { core::arch::x86_64::_rdtsc() }
}
