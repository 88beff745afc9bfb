//! What the device tree tells us about the machine (pure: host-tested on QEMU's own DTBs and on
//! trees built by the tests).
//!
//! The loader passes a flattened device tree (DTB) in `x0`. [`console`] finds the UART first,
//! so that every later error can be printed; [`Machine::parse`] then collects the rest: RAM,
//! command line, GIC version and addresses, the virtual timer's interrupt, virtio-mmio slots,
//! the PCIe ECAM window, the CPU count, the PSCI conduit, reserved memory and how far device
//! memory reaches. Missing essentials are [`DtbError`]s with a message for the user.
//!
//! Parsing uses the `fdt` crate. Addresses in `reg` are taken as CPU physical addresses: that is
//! right for nodes under the root and under `simple-bus` nodes with identity `ranges`, which is
//! what QEMU `virt`, Firecracker and cloud-hypervisor generate.

use crate::memory::{RegionList, page_aligned};
use core::fmt;
use fdt::Fdt;
use fdt::node::FdtNode;
use libos_core::hal::MemoryRegion;

/// Most virtio-mmio slots we record.
pub const MAX_VIRTIO_MMIO: usize = 32;
/// Most RAM or reserved regions we record.
pub const MAX_REGIONS: usize = 16;

/// The interrupt controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gic {
    /// GICv2: distributor and CPU interface (memory-mapped).
    V2 {
        /// GICD base.
        distributor: u64,
        /// GICC base.
        cpu_interface: u64,
    },
    /// GICv3: distributor and redistributors (the CPU interface is system registers).
    V3 {
        /// GICD base.
        distributor: u64,
        /// First redistributor frame (GICR).
        redistributors: u64,
    },
}

impl Gic {
    /// 2 or 3.
    pub fn version(&self) -> u8 {
        match self {
            Gic::V2 { .. } => 2,
            Gic::V3 { .. } => 3,
        }
    }
}

/// How PSCI calls reach the firmware or hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciMethod {
    /// `hvc #0`.
    Hvc,
    /// `smc #0`.
    Smc,
}

/// One virtio-mmio device slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VirtioMmio {
    /// Register window base.
    pub base: u64,
    /// Register window size.
    pub size: u64,
    /// GIC interrupt ID (SPI number + 32).
    pub intid: u32,
}

/// Why the device tree cannot boot us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtbError {
    /// Not a device tree (bad magic, truncated).
    Invalid(&'static str),
    /// No `memory` node with a usable `reg`.
    NoMemory,
    /// No interrupt controller at all.
    NoGic,
    /// An interrupt controller we have no driver for (its `compatible`).
    UnsupportedGic(&'static str),
    /// No `arm,armv8-timer` node, or one without the virtual timer's interrupt.
    NoTimer,
}

impl fmt::Display for DtbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtbError::Invalid(why) => write!(f, "the boot loader's device tree is invalid: {why}"),
            DtbError::NoMemory => write!(f, "the device tree has no memory node"),
            DtbError::NoGic => write!(f, "the device tree has no interrupt controller (GICv2 or GICv3 needed)"),
            DtbError::UnsupportedGic(compatible) => {
                write!(f, "unsupported interrupt controller `{compatible}` (GICv2 or GICv3 needed)")
            }
            DtbError::NoTimer => {
                write!(f, "the device tree has no arm,armv8-timer node with the virtual timer interrupt")
            }
        }
    }
}

/// The machine, as the device tree describes it.
#[derive(Clone, Debug)]
pub struct Machine<'a> {
    /// RAM, page aligned.
    pub ram: RegionList<MAX_REGIONS>,
    /// Memory the firmware reserved (`/memreserve/`, `/reserved-memory`).
    pub reserved: RegionList<MAX_REGIONS>,
    /// `/chosen/bootargs` (empty without).
    pub bootargs: &'a str,
    /// The interrupt controller.
    pub gic: Gic,
    /// Interrupt ID of the virtual timer (a PPI: number + 16).
    pub timer_intid: u32,
    /// The timer's `clock-frequency`, for firmware that leaves CNTFRQ_EL0 unset.
    pub timer_frequency: Option<u64>,
    /// virtio-mmio slots (the first [`MAX_VIRTIO_MMIO`]).
    pub virtio_mmio: [VirtioMmio; MAX_VIRTIO_MMIO],
    /// How many of `virtio_mmio` are valid.
    pub virtio_mmio_count: usize,
    /// The PCIe configuration space window (ECAM), if there is a PCIe host bridge.
    pub pcie_ecam: Option<MemoryRegion>,
    /// CPUs in `/cpus`.
    pub cpus: usize,
    /// The PSCI conduit, if PSCI is described.
    pub psci: Option<PsciMethod>,
    /// One past the highest device address any node (or PCIe window) uses.
    pub device_limit: u64,
}

/// Opens the device tree in `bytes` (which may extend past its end).
pub fn open(bytes: &[u8]) -> Result<Fdt<'_>, DtbError> {
    Fdt::new(bytes).map_err(|e| {
        DtbError::Invalid(match e {
            fdt::FdtError::BadMagic => "bad magic number",
            fdt::FdtError::BadPtr => "null pointer",
            fdt::FdtError::BufferTooSmall => "truncated",
        })
    })
}

/// The size the header claims, or `None` when `header` (at least 8 bytes) has no DTB magic.
pub fn total_size(header: &[u8; 8]) -> Option<u32> {
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    (magic == 0xd00d_feed).then(|| u32::from_be_bytes([header[4], header[5], header[6], header[7]]))
}

fn first_reg(node: FdtNode<'_, '_>) -> Option<MemoryRegion> {
    let r = node.reg()?.next()?;
    let start = r.starting_address as u64;
    Some(MemoryRegion { start, end: start.saturating_add(r.size.unwrap_or(0) as u64) })
}

fn nth_reg(node: FdtNode<'_, '_>, n: usize) -> Option<u64> {
    Some(node.reg()?.nth(n)?.starting_address as u64)
}

fn is_compatible(node: FdtNode<'_, '_>, any_of: &[&str]) -> bool {
    node.compatible().is_some_and(|c| c.all().any(|s| any_of.contains(&s)))
}

fn cells(value: &[u8]) -> impl Iterator<Item = u32> + '_ {
    value.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

/// The console UART (PL011): the `/chosen/stdout-path` node when it is a PL011, else the first
/// PL011. Returns its register base.
pub fn console(fdt: &Fdt<'_>) -> Option<u64> {
    const PL011: &[&str] = &["arm,pl011"];
    let chosen = fdt.find_node("/chosen");
    let stdout = chosen
        .and_then(|c| c.property("stdout-path"))
        .and_then(|p| p.as_str())
        .map(|path| path.split(':').next().unwrap_or(path))
        .and_then(|path| fdt.find_node(path))
        .filter(|node| is_compatible(*node, PL011));
    let node = stdout.or_else(|| fdt.all_nodes().find(|n| is_compatible(*n, PL011)))?;
    first_reg(node).map(|r| r.start)
}

const GICV3: &[&str] = &["arm,gic-v3"];
const GICV2: &[&str] = &[
    "arm,gic-400",
    "arm,cortex-a15-gic",
    "arm,cortex-a9-gic",
    "arm,cortex-a7-gic",
    "arm,arm11mp-gic",
    "arm,gic-v2",
];

fn gic(fdt: &Fdt<'_>) -> Result<(Gic, usize), DtbError> {
    for node in fdt.all_nodes() {
        if node.property("interrupt-controller").is_none() {
            continue;
        }
        let interrupt_cells = node.interrupt_cells().unwrap_or(3);
        if is_compatible(node, GICV3) {
            let (Some(distributor), Some(redistributors)) = (nth_reg(node, 0), nth_reg(node, 1)) else {
                return Err(DtbError::UnsupportedGic("arm,gic-v3 without GICD and GICR registers"));
            };
            return Ok((Gic::V3 { distributor, redistributors }, interrupt_cells));
        }
        if is_compatible(node, GICV2) {
            let (Some(distributor), Some(cpu_interface)) = (nth_reg(node, 0), nth_reg(node, 1)) else {
                return Err(DtbError::UnsupportedGic("GICv2 without GICD and GICC registers"));
            };
            return Ok((Gic::V2 { distributor, cpu_interface }, interrupt_cells));
        }
    }
    // An interrupt controller, but none we know (v2m frames and ITSs are children of a GIC and
    // were matched above through their parent).
    match fdt.all_nodes().find(|n| n.property("interrupt-controller").is_some()) {
        Some(other) => Err(DtbError::UnsupportedGic(leak_compatible(other))),
        None => Err(DtbError::NoGic),
    }
}

/// A `'static` name for an unknown controller: its compatible string if it is one of a few we
/// recognise, else a generic description (the DTB itself is not `'static`).
fn leak_compatible(node: FdtNode<'_, '_>) -> &'static str {
    const KNOWN: &[&str] = &["arm,gic-v4", "arm,gic-v5", "apple,aic", "brcm,bcm2836-l1-intc", "riscv,plic0"];
    let first = node.compatible().map(|c| c.first()).unwrap_or("");
    KNOWN.iter().copied().find(|k| *k == first).unwrap_or("a controller without a GICv2/GICv3 compatible")
}

/// The GIC interrupt ID of a `type, number, flags` triple (type 0: SPI, 1: PPI).
pub fn intid(kind: u32, number: u32) -> u32 {
    if kind == 1 { number + 16 } else { number + 32 }
}

impl<'a> Machine<'a> {
    /// Interprets the device tree.
    pub fn parse(fdt: &Fdt<'a>) -> Result<Machine<'a>, DtbError> {
        let mut ram = RegionList::default();
        let mut device_limit = 0u64;
        let mut virtio_mmio = [VirtioMmio::default(); MAX_VIRTIO_MMIO];
        let mut virtio_mmio_count = 0;
        let mut pcie_ecam = None;
        let mut timer = None;
        let mut psci = None;
        let mut reserved = RegionList::default();
        let (gic, interrupt_cells) = gic(fdt)?;

        for node in fdt.all_nodes() {
            let is_memory = node.property("device_type").and_then(|p| p.as_str()) == Some("memory");
            if is_memory {
                for r in node.reg().into_iter().flatten() {
                    let start = r.starting_address as u64;
                    let end = start.saturating_add(r.size.unwrap_or(0) as u64);
                    ram.add(page_aligned(MemoryRegion { start, end }));
                }
                continue;
            }
            if let Some(regs) = node.reg() {
                for r in regs {
                    let end = (r.starting_address as u64).saturating_add(r.size.unwrap_or(0) as u64);
                    device_limit = device_limit.max(end);
                }
            }
            if is_compatible(node, &["virtio,mmio"]) {
                let region = first_reg(node);
                let irq: Option<[u32; 2]> = node.property("interrupts").and_then(|p| {
                    let mut c = cells(p.value);
                    Some([c.next()?, c.next()?])
                });
                if let (Some(region), Some([kind, number])) = (region, irq) {
                    if virtio_mmio_count < MAX_VIRTIO_MMIO {
                        virtio_mmio[virtio_mmio_count] =
                            VirtioMmio { base: region.start, size: region.len(), intid: intid(kind, number) };
                        virtio_mmio_count += 1;
                    }
                }
            } else if is_compatible(node, &["pci-host-ecam-generic"]) {
                pcie_ecam = first_reg(node);
                device_limit = device_limit.max(pci_ranges_end(node));
            } else if is_compatible(node, &["arm,armv8-timer", "arm,armv7-timer"]) {
                // Secure physical, non-secure physical, virtual, hypervisor: the third entry.
                let intids = node.property("interrupts").map(|p| p.value);
                let virtual_timer = intids.and_then(|v| {
                    let mut c = cells(v).skip(2 * interrupt_cells);
                    Some(intid(c.next()?, c.next()?))
                });
                let frequency = node.property("clock-frequency").and_then(|p| p.as_usize()).map(|f| f as u64);
                timer = virtual_timer.map(|i| (i, frequency));
            } else if is_compatible(node, &["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]) {
                psci = match node.property("method").and_then(|p| p.as_str()) {
                    Some("hvc") => Some(PsciMethod::Hvc),
                    Some("smc") => Some(PsciMethod::Smc),
                    _ => None,
                };
            }
        }
        if ram.total() == 0 {
            return Err(DtbError::NoMemory);
        }
        let (timer_intid, timer_frequency) = timer.ok_or(DtbError::NoTimer)?;

        for r in fdt.memory_reservations() {
            let start = r.address() as u64;
            reserved.add(MemoryRegion { start, end: start.saturating_add(r.size() as u64) });
        }
        if let Some(node) = fdt.find_node("/reserved-memory") {
            for child in node.children() {
                for r in child.reg().into_iter().flatten() {
                    let start = r.starting_address as u64;
                    reserved.add(MemoryRegion { start, end: start.saturating_add(r.size.unwrap_or(0) as u64) });
                }
            }
        }

        let bootargs = fdt
            .find_node("/chosen")
            .and_then(|c| c.property("bootargs"))
            .and_then(|p| p.as_str())
            .unwrap_or("");
        let cpus = fdt.find_node("/cpus").map_or(1, |cpus| {
            cpus.children()
                .filter(|c| c.property("device_type").and_then(|p| p.as_str()) == Some("cpu"))
                .count()
                .max(1)
        });

        Ok(Machine {
            ram,
            reserved,
            bootargs,
            gic,
            timer_intid,
            timer_frequency,
            virtio_mmio,
            virtio_mmio_count,
            pcie_ecam,
            cpus,
            psci,
            device_limit,
        })
    }

    /// The virtio-mmio slots.
    pub fn virtio_mmio(&self) -> &[VirtioMmio] {
        &self.virtio_mmio[..self.virtio_mmio_count]
    }
}

/// One past the highest CPU address of a PCI host bridge's `ranges` (entries of 3 child address
/// cells, the root's 2 parent address cells and the bridge's 2 size cells).
fn pci_ranges_end(node: FdtNode<'_, '_>) -> u64 {
    let Some(ranges) = node.property("ranges") else { return 0 };
    let mut end = 0u64;
    for entry in ranges.value.chunks_exact(28) {
        let c: [u64; 7] = core::array::from_fn(|i| {
            u64::from(u32::from_be_bytes([entry[4 * i], entry[4 * i + 1], entry[4 * i + 2], entry[4 * i + 3]]))
        });
        let cpu = (c[3] << 32) | c[4];
        let size = (c[5] << 32) | c[6];
        end = end.max(cpu.saturating_add(size));
    }
    end
}

#[cfg(test)]
mod tests;
