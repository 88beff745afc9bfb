//! The GIC (v2 or v3, from the DTB): just enough to route the virtual timer's PPI and the
//! inter-processor interrupt to every CPU, send that interrupt, acknowledge interrupts and
//! signal their end.
//!
//! - GICv2: distributor (GICD) and memory-mapped CPU interface (GICC). The distributor's
//!   registers for SGIs and PPIs and the whole CPU interface are banked: each CPU sets up its
//!   own copy at the same addresses.
//! - GICv3: distributor with affinity routing, each CPU's own redistributor (found by matching
//!   GICR_TYPER's affinity with MPIDR_EL1) and the system-register CPU interface (ICC_*_EL1).
//!
//! [`init`] runs once on the boot CPU (the distributor, then the boot CPU's own part);
//! [`init_cpu`] is that per-CPU part, run by every started CPU on itself. Each records how to
//! reach it ([`send_ipi`]): its CPU-interface bit (GICv2) or its affinity (GICv3).
//!
//! Written here rather than taken from a crate because we need a few dozen register writes for
//! two private interrupts, for both versions, with addresses from the DTB.

use crate::cpu::{self, read_sysreg};
use crate::dtb::Gic;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use libos_core::cpus::MAX_CPUS;
use libos_core::{Errno, Result};

const GICD_CTLR: u64 = 0x000;
const GICD_ISENABLER: u64 = 0x100;
const GICD_IPRIORITYR: u64 = 0x400;
const GICD_SGIR: u64 = 0xf00;
const GICC_CTLR: u64 = 0x00;
const GICC_PMR: u64 = 0x04;
const GICC_IAR: u64 = 0x0c;
const GICC_EOIR: u64 = 0x10;
const GICR_WAKER: u64 = 0x14;
const GICR_TYPER: u64 = 0x08;
const GICR_SGI_FRAME: u64 = 0x1_0000;
const GICR_IGROUPR0: u64 = 0x080;
const GICR_ISENABLER0: u64 = 0x100;
const GICR_IPRIORITYR: u64 = 0x400;
const PRIORITY: u32 = 0x80;

/// An interrupt ID meaning "nothing pending".
pub const SPURIOUS: u32 = 1023;

/// The software-generated interrupt libos uses between CPUs ([`send_ipi`]). Nothing else here
/// sends SGIs; 1 rather than 0 leaves SGI 0 to whatever firmware convention may expect it.
pub const IPI: u32 = 1;

static VERSION: AtomicU8 = AtomicU8::new(0);
/// The distributor base (for enabling device interrupts after boot).
static GICD: AtomicU64 = AtomicU64::new(0);
/// GICv2: the CPU interface base (the same address on every CPU: the interface is banked).
static GICC: AtomicU64 = AtomicU64::new(0);
/// GICv3: the first redistributor frame, where each CPU looks for its own.
static GICR: AtomicU64 = AtomicU64::new(0);
/// The private interrupt (the timer's) every CPU enables besides [`IPI`].
static PPI: AtomicU32 = AtomicU32::new(0);

/// Bit 63 of a [`TARGETS`] entry: the CPU has set up its GIC part and can be sent IPIs.
const READY: u64 = 1 << 63;
/// How to reach CPU `i` (by index), with [`READY`]: GICv2 its CPU-interface bit (the low byte
/// of its banked GICD_ITARGETSR0), GICv3 its affinity in ICC_SGI1R_EL1's layout (Aff3 at 48,
/// Aff2 at 32, Aff1 at 16, Aff0 in the low byte). Written once by the CPU itself in [`init_cpu`].
static TARGETS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

fn read(address: u64) -> u32 {
    // SAFETY: every address passed here is a GIC register from the DTB, mapped as device
    // memory; 32-bit aligned accesses are valid for all GIC registers we use.
    unsafe { core::ptr::read_volatile(address as *const u32) }
}

fn write(address: u64, value: u32) {
    // SAFETY: as in `read`; the writes below follow the GIC architecture's setup sequence.
    unsafe { core::ptr::write_volatile(address as *mut u32, value) };
}

/// Sets `intid`'s priority byte (within a 32-bit register: byte writes are not allowed on all
/// implementations' redistributors).
fn set_priority(priority_base: u64, intid: u32) {
    let address = priority_base + u64::from(intid & !3);
    let shift = (intid & 3) * 8;
    write(address, (read(address) & !(0xff << shift)) | (PRIORITY << shift));
}

/// Error: no redistributor for this CPU.
#[derive(Clone, Copy, Debug)]
pub struct NoRedistributor;

/// The distributor's and (GICv2) CPU interface's register windows (64 KiB each, as
/// architected), for the regions programs must not be placed over; empty before `init`.
pub fn windows() -> impl Iterator<Item = libos_core::hal::MemoryRegion> {
    [GICD.load(Ordering::Relaxed), GICC.load(Ordering::Relaxed)]
        .into_iter()
        .filter(|&base| base != 0)
        .map(|base| libos_core::hal::MemoryRegion { start: base, end: base.saturating_add(0x1_0000) })
}

/// On the boot CPU: enables the distributor, then this CPU's part ([`init_cpu`]) with the
/// private interrupt `ppi` (the timer) and [`IPI`]. The other CPUs call [`init_cpu`] later.
pub fn init(gic: Gic, ppi: u32) -> core::result::Result<(), NoRedistributor> {
    PPI.store(ppi, Ordering::Relaxed);
    match gic {
        Gic::V2 { distributor, cpu_interface } => {
            GICD.store(distributor, Ordering::Relaxed);
            GICC.store(cpu_interface, Ordering::Relaxed);
            write(distributor + GICD_CTLR, 0);
            VERSION.store(2, Ordering::Relaxed);
            init_cpu()?;
            write(distributor + GICD_CTLR, 1);
        }
        Gic::V3 { distributor, redistributors } => {
            GICD.store(distributor, Ordering::Relaxed);
            GICR.store(redistributors, Ordering::Relaxed);
            // Affinity routing, group 1 enabled (bit 4 ARE, bits 1:0 the group enables in both
            // the single-security and the non-secure view).
            write(distributor + GICD_CTLR, (1 << 4) | 0b11);
            wait_rwp(distributor);
            VERSION.store(3, Ordering::Relaxed);
            init_cpu()?;
        }
    }
    Ok(())
}

/// The running CPU's own part of the GIC: its timer PPI and [`IPI`] enabled at priority
/// [`PRIORITY`] (GICv2: in the banked distributor registers; GICv3: in its redistributor,
/// woken first, as group 1), its CPU interface enabled with every priority unmasked, and its
/// entry of [`TARGETS`] recorded. Interrupts still stop at PSTATE.I, which the caller holds
/// set. Called once per CPU, after [`init`] ran on the boot CPU.
pub fn init_cpu() -> core::result::Result<(), NoRedistributor> {
    let ppi = PPI.load(Ordering::Relaxed);
    let target = match VERSION.load(Ordering::Relaxed) {
        2 => {
            let distributor = GICD.load(Ordering::Relaxed);
            let cpu_interface = GICC.load(Ordering::Relaxed);
            for intid in [IPI, ppi] {
                set_priority(distributor + GICD_IPRIORITYR, intid);
            }
            // ISENABLER0 (SGIs and PPIs) is banked; SGIs may be enabled for good already
            // (implementation defined), setting their bits is harmless then.
            write(distributor + GICD_ISENABLER, (1 << IPI) | (1 << ppi));
            write(cpu_interface + GICC_PMR, 0xff);
            write(cpu_interface + GICC_CTLR, 1);
            // ITARGETSR0..7 read back this CPU's own interface bit in every byte.
            u64::from(read(distributor + GICD_ITARGETSR) & 0xff)
        }
        3 => {
            let frame = find_redistributor(GICR.load(Ordering::Relaxed)).ok_or(NoRedistributor)?;
            write(frame + GICR_WAKER, read(frame + GICR_WAKER) & !(1 << 1));
            for _ in 0..1_000_000 {
                if read(frame + GICR_WAKER) & (1 << 2) == 0 {
                    break;
                }
            }
            let sgi = frame + GICR_SGI_FRAME;
            let bits = (1 << IPI) | (1 << ppi);
            write(sgi + GICR_IGROUPR0, read(sgi + GICR_IGROUPR0) | bits);
            for intid in [IPI, ppi] {
                set_priority(sgi + GICR_IPRIORITYR, intid);
            }
            write(sgi + GICR_ISENABLER0, bits);
            // SAFETY: the GIC has a system-register CPU interface (gic-v3 in the DTB; at EL2 the
            // entry code allowed EL1 to use it). Enabling SRE, unmasking all priorities and
            // enabling group 1 only let interrupts reach PSTATE.I, which is still set.
            unsafe {
                core::arch::asm!(
                    "mrs {t}, s3_0_c12_c12_5",   // ICC_SRE_EL1
                    "orr {t}, {t}, #1",
                    "msr s3_0_c12_c12_5, {t}",
                    "isb",
                    "mov {t}, #0xff",
                    "msr s3_0_c4_c6_0, {t}",     // ICC_PMR_EL1
                    "mov {t}, #1",
                    "msr s3_0_c12_c12_7, {t}",   // ICC_IGRPEN1_EL1
                    "isb",
                    t = out(reg) _,
                    options(nostack),
                );
            }
            let mpidr = read_sysreg!("mpidr_el1");
            ((mpidr >> 32) & 0xff) << 48 | ((mpidr >> 16) & 0xff) << 32 | ((mpidr >> 8) & 0xff) << 16 | (mpidr & 0xff)
        }
        _ => return Ok(()),
    };
    if let Some(entry) = TARGETS.get(crate::smp::cpu_id()) {
        entry.store(READY | target, Ordering::Release);
    }
    Ok(())
}

/// Sends [`IPI`] to CPU `cpu` (by index). Stores made before are visible to it when it takes
/// the interrupt. Errors: `EINVAL` for a CPU that has not set up its GIC part ([`init_cpu`]).
pub fn send_ipi(cpu: usize) -> Result<()> {
    let target = TARGETS.get(cpu).map_or(0, |entry| entry.load(Ordering::Acquire));
    if target & READY == 0 {
        return Err(Errno::EINVAL);
    }
    let target = target & !READY;
    // The interrupt is a device write (GICv2) or a system-register write (GICv3), neither of
    // which a DMB orders: a DSB makes the caller's stores (the mailbox, a preemption flag)
    // visible in the inner shareable domain before the target can take the interrupt.
    // SAFETY: a barrier only orders memory accesses.
    unsafe { core::arch::asm!("dsb ishst", options(nostack, preserves_flags)) };
    match VERSION.load(Ordering::Relaxed) {
        // TargetListFilter 0 (the list given), CPUTargetList in bits 23:16, the SGI ID below.
        2 => write(GICD.load(Ordering::Relaxed) + GICD_SGIR, ((target as u32 & 0xff) << 16) | IPI),
        3 => {
            // Aff3/Aff2/Aff1 as recorded, the INTID at 24, and one bit of the 16-bit target
            // list for Aff0; Aff0 beyond 15 needs the range selector (RS, bits 47:44).
            let aff0 = target & 0xff;
            let value = (target & !0xffff) | (u64::from(IPI) << 24) | ((aff0 >> 4) << 44) | (1 << (aff0 & 0xf));
            // SAFETY: writing ICC_SGI1R_EL1 only sends a group 1 SGI to the CPU named.
            unsafe { core::arch::asm!("msr s3_0_c12_c11_5, {}", "isb", in(reg) value, options(nostack)) };
        }
        _ => return Err(Errno::EINVAL),
    }
    Ok(())
}

fn wait_rwp(distributor: u64) {
    for _ in 0..1_000_000 {
        if read(distributor + GICD_CTLR) & (1 << 31) == 0 {
            return;
        }
    }
}

/// This CPU's redistributor frame: frames follow each other (128 KiB, or 256 KiB with virtual
/// LPIs) until one has the Last bit.
fn find_redistributor(base: u64) -> Option<u64> {
    let me = cpu::affinity();
    let mut frame = base;
    for _ in 0..512 {
        let typer_low = read(frame + GICR_TYPER);
        let typer_high = read(frame + GICR_TYPER + 4);
        if typer_high == me {
            return Some(frame);
        }
        if typer_low & (1 << 4) != 0 {
            return None;
        }
        frame += if typer_low & (1 << 1) != 0 { 0x4_0000 } else { 0x2_0000 };
    }
    None
}

const GICD_IGROUPR: u64 = 0x080;
const GICD_ITARGETSR: u64 = 0x800;
const GICD_IROUTER: u64 = 0x6000;
/// First and one past the last shared peripheral interrupt ID.
const SPI_RANGE: core::ops::Range<u32> = 32..1020;

/// Routes shared peripheral interrupt `intid` (a device's, from the DTB) to the boot CPU and
/// enables it, with the trigger mode the distributor was reset to (QEMU: level; virtio-mmio
/// lines stay up until the driver acknowledges at the device, so level works for them). All
/// device interrupts go to the boot CPU, as on x86_64, whichever CPU the driver's thread runs
/// on when it enables them: one CPU serves every handler. Errors: `EINVAL` for an ID that is
/// not an SPI or before [`init`].
pub fn enable_spi(intid: u32) -> Result<()> {
    let distributor = GICD.load(Ordering::Relaxed);
    let boot = TARGETS[0].load(Ordering::Acquire);
    if !SPI_RANGE.contains(&intid) || distributor == 0 || boot & READY == 0 {
        return Err(Errno::EINVAL);
    }
    let word = u64::from(intid / 32) * 4;
    let bit = 1u32 << (intid % 32);
    match VERSION.load(Ordering::Relaxed) {
        2 => {
            let boot = (boot & 0xff) as u32;
            let address = distributor + GICD_ITARGETSR + u64::from(intid & !3);
            let shift = (intid & 3) * 8;
            write(address, (read(address) & !(0xff << shift)) | (boot << shift));
        }
        3 => {
            // Group 1 (what ICC_IGRPEN1_EL1 enabled), routed to the boot CPU's affinity
            // (GICD_IROUTER: Aff2..Aff0 in the low word, Aff3 in the high one).
            write(distributor + GICD_IGROUPR + word, read(distributor + GICD_IGROUPR + word) | bit);
            let router = distributor + GICD_IROUTER + 8 * u64::from(intid);
            let (aff3, aff2, aff1, aff0) = ((boot >> 48) & 0xff, (boot >> 32) & 0xff, (boot >> 16) & 0xff, boot & 0xff);
            write(router, (aff2 << 16 | aff1 << 8 | aff0) as u32);
            write(router + 4, aff3 as u32);
        }
        _ => return Err(Errno::EINVAL),
    }
    set_priority(distributor + GICD_IPRIORITYR, intid);
    write(distributor + GICD_ISENABLER + word, bit);
    Ok(())
}

/// An acknowledged interrupt: its ID, and what [`end`] must write back (on GICv2 an SGI's
/// acknowledge value also names the CPU that sent it, and its end of interrupt must repeat it).
#[derive(Clone, Copy, Debug)]
pub struct Acknowledged {
    /// The interrupt ID ([`SPURIOUS`]: nothing was pending).
    pub id: u32,
    raw: u32,
}

/// Acknowledges the highest-priority pending interrupt of the running CPU (its own banked
/// GICC, or its ICC system registers).
pub fn acknowledge() -> Acknowledged {
    let raw = match VERSION.load(Ordering::Relaxed) {
        2 => read(GICC.load(Ordering::Relaxed) + GICC_IAR) & 0x1fff,
        3 => (read_sysreg!("s3_0_c12_c12_0") & 0xff_ffff) as u32, // ICC_IAR1_EL1
        _ => SPURIOUS,
    };
    let id = if VERSION.load(Ordering::Relaxed) == 2 { raw & 0x3ff } else { raw };
    Acknowledged { id, raw }
}

/// Signals the end of an acknowledged interrupt.
pub fn end(interrupt: Acknowledged) {
    match VERSION.load(Ordering::Relaxed) {
        2 => write(GICC.load(Ordering::Relaxed) + GICC_EOIR, interrupt.raw),
        // SAFETY: writing ICC_EOIR1_EL1 with an acknowledged ID ends that interrupt.
        3 => unsafe { core::arch::asm!("msr s3_0_c12_c12_1, {}", in(reg) u64::from(interrupt.raw), options(nostack)) },
        _ => {}
    }
}
