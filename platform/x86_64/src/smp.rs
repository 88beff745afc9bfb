//! Per-CPU state on x86_64, and (feature `smp`) starting the other CPUs.
//!
//! **Per-CPU block.** Every CPU's GS base points at its [`PerCpu`]; the first field is the CPU's
//! index, so [`cpu_id`] is one load (`%gs:0`), and the `syscall` trap keeps its "in Linux code"
//! flag at `%gs:8`. The boot CPU's block is a static set before anything else runs
//! ([`init_boot_cpu`]). Nothing else writes the GS base: posix-shim refuses `ARCH_SET_GS`, and the
//! kernel never uses `swapgs` (everything runs in ring 0).
//!
//! **The other CPUs** (`bringup`, with the platform's feature `smp`, which libos's `smp`
//! feature turns on): found in the ACPI MADT, started with INIT-SIPI-SIPI, each with stacks, a GDT
//! and TSS of its own. Without the feature the image carries none of that code (the boot
//! image-size target), and the machine runs on its boot CPU alone.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use x86_64::registers::model_specific::Msr;

#[cfg(feature = "smp")]
mod bringup;
#[cfg(feature = "smp")]
pub use bringup::{send_ipi, start_cpus};

/// The page the start-up trampoline is copied to (the STARTUP vector is its page number).
pub const TRAMPOLINE: u64 = 0x8000;
/// Set at boot when [`TRAMPOLINE`] lies in RAM the memory map reports as usable.
static TRAMPOLINE_USABLE: AtomicBool = AtomicBool::new(false);

const IA32_GS_BASE: u32 = 0xc000_0101;

/// One CPU's block, reached through its GS base (a secondary CPU's is the first field of a
/// larger block, see `bringup`).
#[repr(C)]
pub struct PerCpu {
    /// The CPU's index (`%gs:0`, [`cpu_id`]).
    index: usize,
    /// Non-zero while the thread this CPU runs is in Linux code (`%gs:8`, written by the
    /// `syscall` trap's entry and exits: see [`crate::syscall`]).
    in_linux_code: AtomicU32,
}

/// Where the `syscall` trap finds [`PerCpu::in_linux_code`].
pub const IN_LINUX_CODE: usize = 8;
const _: () = assert!(core::mem::offset_of!(PerCpu, index) == 0 && core::mem::offset_of!(PerCpu, in_linux_code) == IN_LINUX_CODE);

static BOOT_CPU: PerCpu = PerCpu { index: 0, in_linux_code: AtomicU32::new(0) };

fn set_gs_base(block: &'static PerCpu) {
    // SAFETY: IA32_GS_BASE exists on every x86_64 CPU; the block lives forever, and nothing
    // but this module's accessors reads through GS.
    unsafe { Msr::new(IA32_GS_BASE).write(block as *const PerCpu as u64) };
}

/// Points the boot CPU's GS base at its block. Called first thing at boot.
pub fn init_boot_cpu() {
    set_gs_base(&BOOT_CPU);
}

/// Records whether [`TRAMPOLINE`] is usable RAM (from the boot memory map).
pub fn set_trampoline_usable(usable: bool) {
    TRAMPOLINE_USABLE.store(usable, Ordering::Relaxed);
}

/// The running CPU's index.
#[inline]
pub fn cpu_id() -> usize {
    let index: usize;
    // SAFETY: every CPU's GS base points at its `PerCpu` from its first Rust instruction on
    // (`init_boot_cpu`, `bringup`'s secondary entry), whose first field is the index.
    unsafe { core::arch::asm!("mov {}, gs:[0]", out(reg) index, options(nostack, readonly, preserves_flags)) };
    index
}

/// This CPU's "in Linux code" flag ([`PerCpu::in_linux_code`]).
#[inline]
pub fn in_linux_code() -> u32 {
    let value: u32;
    // SAFETY: as in `cpu_id`: GS points at this CPU's block, whose field at IN_LINUX_CODE is a u32.
    unsafe { core::arch::asm!("mov {:e}, gs:[8]", out(reg) value, options(nostack, readonly, preserves_flags)) };
    value
}

/// Sets this CPU's "in Linux code" flag.
#[inline]
pub fn set_in_linux_code(value: u32) {
    // SAFETY: as in `in_linux_code`; the field is an atomic, written only by its own CPU (here,
    // with interrupts masked by the caller or in one instruction).
    unsafe { core::arch::asm!("mov dword ptr gs:[8], {:e}", in(reg) value, options(nostack, preserves_flags)) };
}

/// Without the feature `smp`: the boot CPU alone (the others stay in their firmware's wait).
#[cfg(not(feature = "smp"))]
pub fn start_cpus(_limit: Option<usize>) -> libos_core::cpus::StartReport {
    libos_core::cpus::StartReport::SINGLE
}

/// Without the feature `smp` there is no other CPU to interrupt.
#[cfg(not(feature = "smp"))]
pub fn send_ipi(_cpu: usize) -> libos_core::Result<()> {
    Err(libos_core::Errno::ENOSYS)
}
