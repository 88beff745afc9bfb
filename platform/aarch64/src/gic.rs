//! The GIC (v2 or v3, from the DTB): just enough to route the virtual timer's PPI to this CPU,
//! acknowledge interrupts and signal their end.
//!
//! - GICv2: distributor (GICD) and memory-mapped CPU interface (GICC).
//! - GICv3: distributor with affinity routing, this CPU's redistributor (found by matching
//!   GICR_TYPER's affinity with MPIDR_EL1) and the system-register CPU interface (ICC_*_EL1).
//!
//! Written here rather than taken from a crate because we need a dozen register writes for one
//! PPI on one CPU, for both versions, with addresses from the DTB.

use crate::cpu::{self, read_sysreg};
use crate::dtb::Gic;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

const GICD_CTLR: u64 = 0x000;
const GICD_ISENABLER: u64 = 0x100;
const GICD_IPRIORITYR: u64 = 0x400;
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

static VERSION: AtomicU8 = AtomicU8::new(0);
/// The distributor base (for enabling device interrupts after boot).
static GICD: AtomicU64 = AtomicU64::new(0);
/// GICv2: the CPU interface base.
static GICC: AtomicU64 = AtomicU64::new(0);

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

/// Enables the GIC and the private interrupt `ppi` (the timer) on this CPU.
pub fn init(gic: Gic, ppi: u32) -> Result<(), NoRedistributor> {
    match gic {
        Gic::V2 { distributor, cpu_interface } => {
            GICD.store(distributor, Ordering::Relaxed);
            write(distributor + GICD_CTLR, 0);
            set_priority(distributor + GICD_IPRIORITYR, ppi);
            write(distributor + GICD_ISENABLER + u64::from(ppi / 32) * 4, 1 << (ppi % 32));
            write(distributor + GICD_CTLR, 1);
            write(cpu_interface + GICC_PMR, 0xff);
            write(cpu_interface + GICC_CTLR, 1);
            GICC.store(cpu_interface, Ordering::Relaxed);
            VERSION.store(2, Ordering::Relaxed);
        }
        Gic::V3 { distributor, redistributors } => {
            GICD.store(distributor, Ordering::Relaxed);
            // Affinity routing, group 1 enabled (bit 4 ARE, bits 1:0 the group enables in both
            // the single-security and the non-secure view).
            write(distributor + GICD_CTLR, (1 << 4) | 0b11);
            wait_rwp(distributor);
            let frame = find_redistributor(redistributors).ok_or(NoRedistributor)?;
            write(frame + GICR_WAKER, read(frame + GICR_WAKER) & !(1 << 1));
            for _ in 0..1_000_000 {
                if read(frame + GICR_WAKER) & (1 << 2) == 0 {
                    break;
                }
            }
            let sgi = frame + GICR_SGI_FRAME;
            write(sgi + GICR_IGROUPR0, read(sgi + GICR_IGROUPR0) | (1 << ppi));
            set_priority(sgi + GICR_IPRIORITYR, ppi);
            write(sgi + GICR_ISENABLER0, 1 << ppi);
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
            VERSION.store(3, Ordering::Relaxed);
        }
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

/// Routes shared peripheral interrupt `intid` (a device's, from the DTB) to this CPU and enables
/// it, with the trigger mode the distributor was reset to (QEMU: level; virtio-mmio lines stay
/// up until the driver acknowledges at the device, so level works for them). Errors: `EINVAL`
/// for an ID that is not an SPI or before [`init`].
pub fn enable_spi(intid: u32) -> libos_core::Result<()> {
    let distributor = GICD.load(Ordering::Relaxed);
    if !SPI_RANGE.contains(&intid) || distributor == 0 {
        return Err(libos_core::Errno::EINVAL);
    }
    let word = u64::from(intid / 32) * 4;
    let bit = 1u32 << (intid % 32);
    match VERSION.load(Ordering::Relaxed) {
        2 => {
            // ITARGETSR0..7 read back this CPU's own target bit.
            let me = read(distributor + GICD_ITARGETSR) & 0xff;
            let address = distributor + GICD_ITARGETSR + u64::from(intid & !3);
            let shift = (intid & 3) * 8;
            write(address, (read(address) & !(0xff << shift)) | (me << shift));
        }
        3 => {
            // Group 1 (what ICC_IGRPEN1_EL1 enabled), routed to this CPU's affinity.
            write(distributor + GICD_IGROUPR + word, read(distributor + GICD_IGROUPR + word) | bit);
            let affinity = cpu::affinity();
            let router = distributor + GICD_IROUTER + 8 * u64::from(intid);
            write(router, affinity & 0x00ff_ffff);
            write(router + 4, affinity >> 24);
        }
        _ => return Err(libos_core::Errno::EINVAL),
    }
    set_priority(distributor + GICD_IPRIORITYR, intid);
    write(distributor + GICD_ISENABLER + word, bit);
    Ok(())
}

/// Acknowledges the highest-priority pending interrupt and returns its ID.
pub fn acknowledge() -> u32 {
    match VERSION.load(Ordering::Relaxed) {
        2 => read(GICC.load(Ordering::Relaxed) + GICC_IAR) & 0x3ff,
        3 => (read_sysreg!("s3_0_c12_c12_0") & 0xff_ffff) as u32, // ICC_IAR1_EL1
        _ => SPURIOUS,
    }
}

/// Signals the end of interrupt `intid`.
pub fn end(intid: u32) {
    match VERSION.load(Ordering::Relaxed) {
        2 => write(GICC.load(Ordering::Relaxed) + GICC_EOIR, intid),
        // SAFETY: writing ICC_EOIR1_EL1 with an acknowledged ID ends that interrupt.
        3 => unsafe { core::arch::asm!("msr s3_0_c12_c12_1, {}", in(reg) u64::from(intid), options(nostack)) },
        _ => {}
    }
}
