//! The few system-register accesses the platform needs, as small functions over inline
//! assembly. (We touch about a dozen registers, most of them once; a register-description
//! crate would add more code than it saves here.)

/// Reads a system register (by name or `s3_..` encoding) that has no read side effects.
macro_rules! read_sysreg {
    ($name:literal) => {{
        let value: u64;
        // SAFETY: reading this system register has no side effects and touches no memory.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) value, options(nomem, nostack, preserves_flags)) };
        value
    }};
}
pub(crate) use read_sysreg;

/// The virtual counter (CNTVCT_EL0), ordered after earlier instructions.
pub fn counter() -> u64 {
    // SAFETY: an instruction barrier has no memory effects.
    unsafe { core::arch::asm!("isb", options(nomem, nostack, preserves_flags)) };
    read_sysreg!("cntvct_el0")
}

/// Masks IRQs (for the shutdown path; everything else uses `libos_core::interrupts`).
pub fn disable_irqs() {
    // SAFETY: masking interrupts only delays their delivery. The memory clobber (no `nomem`)
    // keeps the compiler from moving memory accesses out of the masked region.
    unsafe { core::arch::asm!("msr daifset, #2", options(nostack, preserves_flags)) };
}

/// Waits for an interrupt with IRQs masked (a pending IRQ still ends WFI), then unmasks them so
/// it is taken: no wake-up can be lost between the caller's check and the wait.
pub fn wait_for_interrupt() {
    // SAFETY: as in `disable_irqs` and `enable_irqs`; WFI only waits.
    unsafe { core::arch::asm!("msr daifset, #2", "dsb sy", "wfi", "msr daifclr, #2", "isb", options(nostack, preserves_flags)) };
}

/// The affinity fields of MPIDR_EL1 (Aff3 in bits 31:24, Aff2..Aff0 below), as GICR_TYPER
/// reports them.
pub fn affinity() -> u32 {
    let mpidr = read_sysreg!("mpidr_el1");
    ((((mpidr >> 32) & 0xff) << 24) | (mpidr & 0x00ff_ffff)) as u32
}

/// True while handling an exception (on SP_EL1: the kernel itself runs on SP_EL0).
pub fn in_exception_handler() -> bool {
    read_sysreg!("spsel") & 1 == 1
}
