//! What the device tree tells us about the machine (pure: host-tested on QEMU's own DTBs and on
//! trees built by the tests).
//!
//! The loader passes a flattened device tree (DTB) in `x0`. One [`scan`] walks the tree once;
//! [`Scan::console`] finds the UART first, so that every later error can be printed;
//! [`Machine::from_scan`] then judges the rest: RAM,
//! command line, GIC version and addresses, the virtual timer's interrupt, virtio-mmio slots,
//! the PCIe ECAM window, the PL031 real-time clock, the CPU count, the PSCI conduit, reserved
//! memory and how far device memory reaches. Missing essentials are [`DtbError`]s with a message for the user.
//! [`cpus`] lists the CPUs that can be started (their MPIDRs, the boot CPU first).
//!
//! Parsing uses our own reader of the flattened format ([`flat`]; why not the `fdt` crate is
//! explained there). Addresses in `reg` are taken as CPU physical addresses: that is
//! right for nodes under the root and under `simple-bus` nodes with identity `ranges`, which is
//! what QEMU `virt`, Firecracker and cloud-hypervisor generate.

use libos_core::cpus::MAX_CPUS;
use libos_core::memory::{RegionList, page_aligned, page_widened};
use core::fmt;
pub use flat::Fdt;
use flat::{FlatError, Node};

pub mod flat;
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

/// A console UART.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uart {
    /// An Arm PL011 (QEMU virt, cloud-hypervisor) at this register base.
    Pl011(u64),
    /// A 16550-compatible UART (Firecracker): register base and `reg-shift` (register stride
    /// as a power of two), byte-wide access.
    Ns16550 {
        /// Register base.
        base: u64,
        /// `reg-shift`.
        shift: u32,
    },
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
    /// The initial RAM archive the loader placed (`/chosen/linux,initrd-start` and `-end`), when
    /// it lies in RAM; it is also in `reserved`.
    pub initrd: Option<MemoryRegion>,
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
    /// The bridge's 32-bit memory window where PCI and CPU addresses agree (for BARs the
    /// firmware left unassigned: there is no firmware on `virt` with `-kernel`).
    pub pcie_mem32: Option<MemoryRegion>,
    /// The bridge's 64-bit memory window where PCI and CPU addresses agree: where prefetchable
    /// 64-bit BARs go (shared-memory regions such as virtio-fs's DAX window), mapped as normal
    /// memory.
    pub pcie_mem64: Option<MemoryRegion>,
    /// The register base of the first `arm,pl031` real-time clock with a page-aligned 4 KiB
    /// window outside RAM, if any.
    pub rtc: Option<u64>,
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
            FlatError::BadMagic => "bad magic number",
            FlatError::Truncated => "truncated",
        })
    })
}

/// The size the header claims, or `None` when `header` (at least 8 bytes) has no DTB magic.
pub fn total_size(header: &[u8; 8]) -> Option<u32> {
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    (magic == 0xd00d_feed).then(|| u32::from_be_bytes([header[4], header[5], header[6], header[7]]))
}

/// The affinity fields of MPIDR_EL1 (Aff3 in bits 39:32, Aff2..Aff0 in bits 23:0): what a CPU
/// node's `reg` holds, and what PSCI `CPU_ON` takes to name a CPU.
pub const MPIDR_AFFINITY: u64 = 0xff_00ff_ffff;

/// Why a `/cpus` child is not among the CPUs to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuSkip {
    /// Its `status` is neither "okay" nor "ok".
    Disabled,
    /// Its `reg` is not one MPIDR of `#address-cells` (1 or 2) cells with only affinity bits set.
    BadReg,
    /// Its MPIDR is that of an earlier node.
    Duplicate,
    /// Its `enable-method` is not "psci" (e.g. "spin-table"), the only start method we have.
    NotPsci,
    /// There are already [`MAX_CPUS`] CPUs.
    TooMany,
}

impl fmt::Display for CpuSkip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CpuSkip::Disabled => "its status is not \"okay\"",
            CpuSkip::BadReg => "its reg is not an MPIDR affinity value",
            CpuSkip::Duplicate => "its MPIDR repeats an earlier CPU's",
            CpuSkip::NotPsci => "its enable-method is not psci",
            CpuSkip::TooMany => return write!(f, "libos runs on at most {MAX_CPUS} CPUs"),
        })
    }
}

/// The CPUs to run on, by MPIDR affinity value: index 0 is the boot CPU, 1.. the others that
/// PSCI can start, in tree order (the indexes `libos_core::cpus` uses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList {
    mpidrs: [u64; MAX_CPUS],
    count: usize,
}

impl CpuList {
    /// The MPIDR affinity values, the boot CPU's first.
    pub fn as_slice(&self) -> &[u64] {
        &self.mpidrs[..self.count]
    }
}

/// The CPUs of `/cpus` (children with `device_type = "cpu"`): the boot CPU (`boot_mpidr`,
/// masked with [`MPIDR_AFFINITY`]) first, whatever its node says (it runs already; it is
/// first also when the tree lacks it), then the others in tree order. `skipped` hears of every
/// CPU node left out (its name and why).
pub fn cpus(fdt: &Fdt<'_>, boot_mpidr: u64, skipped: &mut dyn FnMut(&str, CpuSkip)) -> CpuList {
    let boot = boot_mpidr & MPIDR_AFFINITY;
    let mut list = CpuList { mpidrs: [0; MAX_CPUS], count: 1 };
    list.mpidrs[0] = boot;
    let Some(parent) = fdt.find_node("/cpus") else { return list };
    let address_cells = Props::of(parent).child_cells().address;
    let mut boot_seen = false;
    for node in parent.children() {
        let (mut device_type, mut reg, mut status, mut method) = (&[][..], None, None, &[][..]);
        for prop in node.properties() {
            match prop.name {
                "device_type" => device_type = prop.value,
                "reg" => reg = Some(prop.value),
                "status" => status = Some(prop.value),
                "enable-method" => method = prop.value,
                _ => {}
            }
        }
        if device_type != b"cpu\0" {
            continue;
        }
        let mpidr = match (address_cells, reg) {
            (1, Some(&[a, b, c, d])) => Some(u64::from(u32::from_be_bytes([a, b, c, d]))),
            (2, Some(value)) => value.try_into().ok().map(u64::from_be_bytes),
            _ => None,
        };
        let Some(mpidr) = mpidr.filter(|m| m & !MPIDR_AFFINITY == 0) else {
            skipped(node.name, CpuSkip::BadReg);
            continue;
        };
        if mpidr == boot && !boot_seen {
            boot_seen = true;
            continue;
        }
        let why = if list.as_slice()[1..].contains(&mpidr) || mpidr == boot {
            Some(CpuSkip::Duplicate)
        } else if status.is_some_and(|s| text(s) != "okay" && text(s) != "ok") {
            Some(CpuSkip::Disabled)
        } else if !compatible_with(method, &["psci"]) {
            Some(CpuSkip::NotPsci)
        } else if list.count == MAX_CPUS {
            Some(CpuSkip::TooMany)
        } else {
            None
        };
        match why {
            Some(why) => skipped(node.name, why),
            None => {
                list.mpidrs[list.count] = mpidr;
                list.count += 1;
            }
        }
    }
    list
}

/// `#address-cells` and `#size-cells` of a parent node.
#[derive(Clone, Copy, Debug)]
struct Cells {
    address: usize,
    size: usize,
}

/// Decodes a `reg` value (1- or 2-cell addresses and sizes; others yield nothing).
fn regs(value: Option<&[u8]>, cells: Cells) -> impl Iterator<Item = MemoryRegion> + '_ {
    let number = |c: &[u8], n: usize| -> Option<u64> {
        match n {
            0 => Some(0),
            1 => Some(u64::from(u32::from_be_bytes(c.get(..4)?.try_into().ok()?))),
            2 => Some(u64::from_be_bytes(c.get(..8)?.try_into().ok()?)),
            _ => None,
        }
    };
    let entry = 4 * (cells.address + cells.size);
    value.unwrap_or(&[]).chunks_exact(entry.max(4)).map_while(move |c| {
        let start = number(c, cells.address)?;
        let size = number(&c[4 * cells.address..], cells.size)?;
        Some(MemoryRegion { start, end: start.saturating_add(size) })
    })
}

/// True when a `compatible` value (NUL-separated strings) lists one of `any_of`.
fn compatible_with(compatible: &[u8], any_of: &[&str]) -> bool {
    compatible.split(|&b| b == 0).any(|s| any_of.iter().any(|want| want.as_bytes() == s))
}

fn cells(value: &[u8]) -> impl Iterator<Item = u32> + '_ {
    value.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

fn text(value: &[u8]) -> &str {
    core::str::from_utf8(value).map(|s| s.trim_end_matches('\0')).unwrap_or("")
}

/// The properties of one node that we look at, read in one pass over its properties (each
/// `property(name)` lookup would be a scan of its own).
#[derive(Default)]
struct Props<'a> {
    compatible: &'a [u8],
    device_type: &'a [u8],
    reg: Option<&'a [u8]>,
    address_cells: Option<u32>,
    size_cells: Option<u32>,
    interrupts: Option<&'a [u8]>,
    interrupt_controller: bool,
    interrupt_cells: Option<u32>,
    method: &'a [u8],
    clock_frequency: Option<u64>,
    bootargs: Option<&'a [u8]>,
    stdout_path: Option<&'a [u8]>,
    initrd_start: Option<u64>,
    initrd_end: Option<u64>,
    reg_shift: Option<u32>,
    reg_io_width: Option<u32>,
}

impl<'a> Props<'a> {
    /// The cell sizes this node gives its children (defaults 2 and 1, as the spec says).
    fn child_cells(&self) -> Cells {
        Cells { address: self.address_cells.unwrap_or(2) as usize, size: self.size_cells.unwrap_or(1) as usize }
    }

    fn of(node: Node<'a>) -> Props<'a> {
        let mut p = Props::default();
        for prop in node.properties() {
            match prop.name {
                "compatible" => p.compatible = prop.value,
                "device_type" => p.device_type = prop.value,
                "reg" => p.reg = Some(prop.value),
                "#address-cells" => p.address_cells = cells(prop.value).next(),
                "#size-cells" => p.size_cells = cells(prop.value).next(),
                "interrupts" => p.interrupts = Some(prop.value),
                "interrupt-controller" => p.interrupt_controller = true,
                "#interrupt-cells" => p.interrupt_cells = cells(prop.value).next(),
                "method" => p.method = prop.value,
                "clock-frequency" => p.clock_frequency = prop.as_u64(),
                "bootargs" => p.bootargs = Some(prop.value),
                "stdout-path" => p.stdout_path = Some(prop.value),
                "linux,initrd-start" => p.initrd_start = prop.as_u64(),
                "linux,initrd-end" => p.initrd_end = prop.as_u64(),
                "reg-shift" => p.reg_shift = cells(prop.value).next(),
                "reg-io-width" => p.reg_io_width = cells(prop.value).next(),
                _ => {}
            }
        }
        p
    }
}

const PL011: &[&str] = &["arm,pl011"];
const PL031: &[&str] = &["arm,pl031"];
const NS16550: &[&str] = &["ns16550a", "ns16550", "ns8250", "ns16450"];
const GICV3: &[&str] = &["arm,gic-v3"];
const GICV2: &[&str] = &[
    "arm,gic-400",
    "arm,cortex-a15-gic",
    "arm,cortex-a9-gic",
    "arm,cortex-a7-gic",
    "arm,arm11mp-gic",
    "arm,gic-v2",
];
const MAX_UARTS: usize = 4;

/// What one pass over the tree found, before any of it is judged (so the console can be set
/// up before a missing timer or GIC is reported).
#[derive(Clone, Debug)]
pub struct Scan<'a> {
    ram: RegionList<MAX_REGIONS>,
    device_limit: u64,
    uarts: [(&'a str, Uart); MAX_UARTS],
    uart_count: usize,
    stdout_path: &'a str,
    bootargs: &'a str,
    initrd: Option<MemoryRegion>,
    gic: Option<(Gic, usize)>,
    unsupported_gic: Option<&'static str>,
    bad_gic: Option<&'static str>,
    timer_interrupts: Option<&'a [u8]>,
    timer_frequency: Option<u64>,
    virtio_mmio: [VirtioMmio; MAX_VIRTIO_MMIO],
    virtio_mmio_count: usize,
    pcie_ecam: Option<MemoryRegion>,
    pcie_mem32: Option<MemoryRegion>,
    pcie_mem64: Option<MemoryRegion>,
    rtc: Option<u64>,
    psci: Option<PsciMethod>,
    cpus: usize,
    has_reserved_memory: bool,
}

/// Walks the tree once (root, its children, and `/cpus` and `simple-bus` children).
pub fn scan<'a>(fdt: &Fdt<'a>) -> Scan<'a> {
    let mut s = Scan {
        ram: RegionList::default(),
        device_limit: 0,
        uarts: [("", Uart::Pl011(0)); MAX_UARTS],
        uart_count: 0,
        stdout_path: "",
        bootargs: "",
        initrd: None,
        gic: None,
        unsupported_gic: None,
        bad_gic: None,
        timer_interrupts: None,
        timer_frequency: None,
        virtio_mmio: [VirtioMmio::default(); MAX_VIRTIO_MMIO],
        virtio_mmio_count: 0,
        pcie_ecam: None,
        pcie_mem32: None,
        pcie_mem64: None,
        rtc: None,
        psci: None,
        cpus: 0,
        has_reserved_memory: false,
    };
    let Some(root) = fdt.root() else { return s };
    let root_props = Props::of(root);
    scan_children(root, root_props.child_cells(), &mut s, 0);
    s
}

/// How deep [`scan_children`] descends (through `simple-bus` and `cpus` nodes): real trees need
/// two or three levels; a bound keeps a hostile tree from exhausting the boot stack.
const MAX_SCAN_DEPTH: usize = 4;

/// Scans the children of `parent`, whose `reg` values use `cells`; descends into `simple-bus`
/// nodes (assuming identity `ranges`), `/cpus` and `/chosen`, at most [`MAX_SCAN_DEPTH`] deep.
fn scan_children<'a>(parent: Node<'a>, reg_cells: Cells, s: &mut Scan<'a>, depth: usize) {
    if depth > MAX_SCAN_DEPTH {
        return;
    }
    for node in parent.children() {
        let p = Props::of(node);
        if let Some(bootargs) = p.bootargs {
            s.bootargs = text(bootargs);
        }
        if let Some(path) = p.stdout_path {
            s.stdout_path = text(path);
        }
        if let (Some(start), Some(end)) = (p.initrd_start, p.initrd_end)
            && start < end
        {
            s.initrd = Some(MemoryRegion { start, end });
        }
        if p.device_type == b"memory\0" {
            for r in regs(p.reg, reg_cells) {
                s.ram.add(page_aligned(r));
            }
            continue;
        }
        if p.device_type == b"cpu\0" {
            s.cpus += 1;
            continue;
        }
        if node.name == "cpus" || node.name == "reserved-memory" {
            if node.name == "reserved-memory" {
                s.has_reserved_memory = true;
            } else {
                scan_children(node, p.child_cells(), s, depth + 1);
            }
            continue;
        }
        for r in regs(p.reg, reg_cells) {
            s.device_limit = s.device_limit.max(r.end);
        }
        let c = p.compatible;
        if c.is_empty() {
            continue;
        }
        let mut reg = regs(p.reg, reg_cells);
        let (first, second) = (reg.next(), reg.next());
        if compatible_with(c, &["simple-bus"]) {
            scan_children(node, p.child_cells(), s, depth + 1);
        } else if p.interrupt_controller && s.gic.is_none() {
            let interrupt_cells = p.interrupt_cells.unwrap_or(3) as usize;
            if compatible_with(c, GICV3) {
                match (first, second) {
                    (Some(d), Some(r)) => {
                        s.gic = Some((Gic::V3 { distributor: d.start, redistributors: r.start }, interrupt_cells));
                    }
                    _ => s.bad_gic = Some("arm,gic-v3 without GICD and GICR registers"),
                }
            } else if compatible_with(c, GICV2) {
                match (first, second) {
                    (Some(d), Some(c)) => {
                        s.gic = Some((Gic::V2 { distributor: d.start, cpu_interface: c.start }, interrupt_cells));
                    }
                    _ => s.bad_gic = Some("GICv2 without GICD and GICC registers"),
                }
            } else if s.unsupported_gic.is_none() {
                s.unsupported_gic = Some(unknown_controller(c));
            }
        } else if compatible_with(c, PL011) || compatible_with(c, NS16550) {
            let uart = match first {
                Some(r) if compatible_with(c, PL011) => Some(Uart::Pl011(r.start)),
                // Byte-wide registers only (reg-io-width 1, Firecracker's); others are skipped.
                Some(r) if p.reg_io_width.unwrap_or(1) == 1 => {
                    Some(Uart::Ns16550 { base: r.start, shift: p.reg_shift.unwrap_or(0) })
                }
                _ => None,
            };
            if let (Some(uart), true) = (uart, s.uart_count < MAX_UARTS) {
                s.uarts[s.uart_count] = (node.name, uart);
                s.uart_count += 1;
            }
        } else if compatible_with(c, &["virtio,mmio"]) {
            let irq = p.interrupts.and_then(|v| {
                let mut c = cells(v);
                Some((c.next()?, c.next()?))
            });
            if let (Some(region), Some(intid)) = (first, irq.and_then(|(kind, number)| intid(kind, number))) {
                if s.virtio_mmio_count < MAX_VIRTIO_MMIO {
                    s.virtio_mmio[s.virtio_mmio_count] = VirtioMmio { base: region.start, size: region.len(), intid };
                    s.virtio_mmio_count += 1;
                }
            }
        } else if compatible_with(c, &["pci-host-ecam-generic"]) {
            s.pcie_ecam = first;
            s.pcie_mem32 = pci_memory_window(node, SPACE_MEM32);
            s.pcie_mem64 = pci_memory_window(node, SPACE_MEM64);
            s.device_limit = s.device_limit.max(pci_ranges_end(node));
        } else if compatible_with(c, PL031) {
            // The first one (a machine has one clock; a second would be a spare), if its
            // window is a whole page: the identification registers sit at its end.
            let whole_page = |r: &MemoryRegion| r.start != 0 && r.start % 0x1000 == 0 && r.len() >= 0x1000;
            s.rtc = s.rtc.or(first.filter(whole_page).map(|r| r.start));
        } else if compatible_with(c, &["arm,armv8-timer", "arm,armv7-timer"]) {
            s.timer_interrupts = p.interrupts;
            s.timer_frequency = p.clock_frequency;
        } else if compatible_with(c, &["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]) {
            s.psci = match p.method {
                b"hvc\0" => Some(PsciMethod::Hvc),
                b"smc\0" => Some(PsciMethod::Smc),
                _ => None,
            };
        }
    }
}

/// A `'static` name for an unknown controller: its compatible string if it is one of a few we
/// recognise, else a generic description (the DTB itself is not `'static`).
fn unknown_controller(compatible: &[u8]) -> &'static str {
    const KNOWN: &[&str] = &["arm,gic-v4", "arm,gic-v5", "apple,aic", "brcm,bcm2836-l1-intc", "riscv,plic0"];
    let first = compatible.split(|&b| b == 0).next().unwrap_or(&[]);
    KNOWN.iter().copied().find(|k| k.as_bytes() == first).unwrap_or("a controller without a GICv2/GICv3 compatible")
}

impl<'a> Scan<'a> {
    /// The PSCI conduit, if the tree describes PSCI (needed to power off after any error).
    pub fn psci(&self) -> Option<PsciMethod> {
        self.psci
    }

    /// The console UART (PL011 or 16550): the one `/chosen/stdout-path` names (matched by node
    /// name), else the first one.
    pub fn console(&self) -> Option<Uart> {
        let uarts = &self.uarts[..self.uart_count];
        let wanted = self.stdout_path.split(':').next().unwrap_or("").rsplit('/').next().unwrap_or("");
        uarts.iter().find(|(name, _)| !wanted.is_empty() && *name == wanted).or(uarts.first()).map(|&(_, uart)| uart)
    }
}

/// The GIC interrupt ID of a `type, number, flags` triple (type 0: SPI 0..=987, 1: PPI 0..=15);
/// `None` for other types and out-of-range numbers (a tree's value, never trusted to fit).
pub fn intid(kind: u32, number: u32) -> Option<u32> {
    match kind {
        0 if number < 988 => Some(number + 32),
        1 if number < 16 => Some(number + 16),
        _ => None,
    }
}

impl<'a> Machine<'a> {
    /// Interprets the device tree (one [`scan`], then [`Machine::from_scan`]).
    pub fn parse(fdt: &Fdt<'a>) -> Result<Machine<'a>, DtbError> {
        Machine::from_scan(&scan(fdt), fdt)
    }

    /// Judges what [`scan`] found: RAM, a GIC and the timer are required.
    pub fn from_scan(s: &Scan<'a>, fdt: &Fdt<'a>) -> Result<Machine<'a>, DtbError> {
        let (gic, interrupt_cells) = match (s.gic, s.bad_gic, s.unsupported_gic) {
            (Some(gic), _, _) => gic,
            (None, Some(bad), _) | (None, None, Some(bad)) => return Err(DtbError::UnsupportedGic(bad)),
            (None, None, None) => return Err(DtbError::NoGic),
        };
        if s.ram.total() == 0 {
            return Err(DtbError::NoMemory);
        }
        // Secure physical, non-secure physical, virtual, hypervisor: the third entry.
        let timer_intid = s
            .timer_interrupts
            .and_then(|v| {
                let mut c = cells(v).skip(interrupt_cells.checked_mul(2)?);
                intid(c.next()?, c.next()?)
            })
            .ok_or(DtbError::NoTimer)?;

        let mut reserved = RegionList::default();
        for (start, size) in fdt.memory_reservations() {
            reserved.add(MemoryRegion { start, end: start.saturating_add(size) });
        }
        // A second walk only when the first saw the node.
        if let Some(node) = s.has_reserved_memory.then(|| fdt.find_node("/reserved-memory")).flatten() {
            let cells = Props::of(node).child_cells();
            for child in node.children() {
                for region in regs(child.property("reg").map(|p| p.value), cells) {
                    reserved.add(region);
                }
            }
        }

        // An archive outside RAM is not read (it could be anything); one inside stays reserved.
        let initrd = s.initrd.filter(|i| s.ram.as_slice().iter().any(|r| r.start <= i.start && i.end <= r.end));
        if let Some(archive) = initrd {
            reserved.add(page_widened(archive));
        }

        Ok(Machine {
            ram: s.ram,
            reserved,
            initrd,
            bootargs: s.bootargs,
            gic,
            timer_intid,
            timer_frequency: s.timer_frequency,
            virtio_mmio: s.virtio_mmio,
            virtio_mmio_count: s.virtio_mmio_count,
            pcie_ecam: s.pcie_ecam,
            pcie_mem32: s.pcie_mem32,
            pcie_mem64: s.pcie_mem64,
            // Never RAM (where a stack's guard page could be): read there, it would fault.
            rtc: s.rtc.filter(|&base| !s.ram.as_slice().iter().any(|r| (r.start..r.end).contains(&base))),
            cpus: s.cpus.max(1),
            psci: s.psci,
            device_limit: s.device_limit,
        })
    }

    /// The virtio-mmio slots.
    pub fn virtio_mmio(&self) -> &[VirtioMmio] {
        &self.virtio_mmio[..self.virtio_mmio_count]
    }
}

/// The space code (in the child address's high cell) of 32-bit memory in a PCI `ranges` entry.
const SPACE_MEM32: u64 = 2;
/// The space code of 64-bit memory.
const SPACE_MEM64: u64 = 3;

/// The first memory window of space code `code` ([`SPACE_MEM32`], [`SPACE_MEM64`]) in a PCI host
/// bridge's `ranges` whose PCI address equals its CPU address.
fn pci_memory_window(node: Node<'_>, code: u64) -> Option<MemoryRegion> {
    let ranges = node.property("ranges")?;
    ranges.value.chunks_exact(28).find_map(|entry| {
        let c: [u64; 7] = core::array::from_fn(|i| {
            u64::from(u32::from_be_bytes([entry[4 * i], entry[4 * i + 1], entry[4 * i + 2], entry[4 * i + 3]]))
        });
        let space = (c[0] >> 24) & 3;
        let pci = (c[1] << 32) | c[2];
        let cpu = (c[3] << 32) | c[4];
        let size = (c[5] << 32) | c[6];
        (space == code && pci == cpu && size > 0).then(|| MemoryRegion { start: cpu, end: cpu.saturating_add(size) })
    })
}

/// One past the highest CPU address of a PCI host bridge's `ranges` (entries of 3 child address
/// cells, the root's 2 parent address cells and the bridge's 2 size cells).
fn pci_ranges_end(node: Node<'_>) -> u64 {
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
