//! Masking interrupts on the running CPU, inline.
//!
//! [`disable`] / [`restore`] / [`enable`] are what [`crate::sync::IrqSpinLock`] and the scheduler
//! do around every critical section, several times per thread switch. Through the
//! `dyn Platform` object each one is an indirect call plus a call to find the platform (about
//! 20 instructions per lock and unlock); here it is the CPU instruction itself
//! (`pushfq; pop; cli` / `sti` on x86_64, `mrs daif; msr daifset` / `msr daifclr` on aarch64).
//!
//! This is the one place where libos-core names an architecture: masking interrupts is a
//! property of the CPU (like `core::arch`), not a service of the machine, so it needs nothing
//! from a platform crate and is the same on every x86_64 or aarch64 machine. On other targets
//! (host tests) the functions forward to the registered [`crate::hal::Platform`] (the fake one
//! tracks the state), and do nothing before one is registered. The platforms implement their
//! `Platform` methods with these functions, so both paths agree.

use crate::hal::InterruptState;

/// Masks interrupts on this CPU and returns the previous state.
#[inline(always)]
pub fn disable() -> InterruptState {
    arch::disable()
}

/// Restores the state returned by [`disable`] (unmasks only if they were enabled then).
#[inline(always)]
pub fn restore(state: InterruptState) {
    if state.0 {
        enable();
    }
}

/// Unmasks interrupts on this CPU.
#[inline(always)]
pub fn enable() {
    arch::enable()
}

#[cfg(all(target_os = "none", target_arch = "x86_64"))]
mod arch {
    use super::InterruptState;

    /// RFLAGS.IF.
    const INTERRUPT_FLAG: u64 = 1 << 9;

    #[inline(always)]
    pub fn disable() -> InterruptState {
        let flags: u64;
        // SAFETY: reads RFLAGS through the stack (push/pop, balanced) and clears IF; masking
        // interrupts only delays them. No `nomem`: the asm is a compiler barrier, so memory
        // accesses of the critical section cannot move above it.
        unsafe { core::arch::asm!("pushfq", "pop {}", "cli", out(reg) flags, options(preserves_flags)) };
        InterruptState(flags & INTERRUPT_FLAG != 0)
    }

    #[inline(always)]
    pub fn enable() {
        // SAFETY: the IDT is loaded before any code unmasks interrupts (platform boot); the
        // memory clobber keeps the critical section's accesses before it.
        unsafe { core::arch::asm!("sti", options(nostack, preserves_flags)) };
    }
}

#[cfg(all(target_os = "none", target_arch = "aarch64"))]
mod arch {
    use super::InterruptState;

    /// PSTATE.I in DAIF.
    const IRQ_MASKED: u64 = 1 << 7;

    #[inline(always)]
    pub fn disable() -> InterruptState {
        let daif: u64;
        // SAFETY: reads DAIF and masks IRQs; masking only delays them. No `nomem`: a compiler
        // barrier, so the critical section's memory accesses stay after it.
        unsafe { core::arch::asm!("mrs {}, daif", "msr daifset, #2", out(reg) daif, options(nostack, preserves_flags)) };
        InterruptState(daif & IRQ_MASKED == 0)
    }

    #[inline(always)]
    pub fn enable() {
        // SAFETY: the vectors are installed before any code unmasks IRQs (platform boot); the
        // memory clobber keeps the critical section's accesses before it.
        unsafe { core::arch::asm!("msr daifclr, #2", options(nostack, preserves_flags)) };
    }
}

#[cfg(not(all(target_os = "none", any(target_arch = "x86_64", target_arch = "aarch64"))))]
mod arch {
    use super::InterruptState;
    use crate::hal;

    pub fn disable() -> InterruptState {
        hal::try_platform().map_or(InterruptState(false), |p| p.disable_interrupts())
    }

    pub fn enable() {
        if let Some(platform) = hal::try_platform() {
            platform.enable_interrupts();
        }
    }
}
