//! The modern virtio-pci transport (virtio 1.2 §4.1) over a PCIe ECAM window: enumeration,
//! BAR sizing and assignment where the firmware left BARs empty, the vendor capabilities
//! (common, notify, ISR, device configuration and **shared memory**, type 8, whose 64-bit offset
//! and length continue in the `cap64` fields).
//!
//! Interrupts: MSI-X, one vector (table entry 0) for every queue, where the platform can deliver
//! message-signalled interrupts ([`libos_core::hal::Platform::msi_message`]: x86's local APIC).
//! Where it cannot (aarch64 `virt` would need GICv2m or an ITS driver) drivers poll; INTx is not
//! used (its routing needs the ACPI `_PRT` or the DTB `interrupt-map`).
//!
//! Limits (documented rather than hidden): only the functions on the host's first bus are
//! enumerated (QEMU's `q35`, `microvm,pcie=on` and aarch64 `virt` put plugged devices there).

use crate::{QueueAddresses, Transport};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use libos_core::device::PciHost;
use libos_core::hal::{self, MemoryRegion};
use libos_core::{Errno, Result};

const VIRTIO_VENDOR: u16 = 0x1af4;
/// Modern-only device ids are 0x1040 + the virtio device id.
const MODERN_BASE: u16 = 0x1040;

const COMMAND: usize = 0x04;
const STATUS: usize = 0x06;
const HEADER_TYPE: usize = 0x0e;
const BAR0: usize = 0x10;
const CAPABILITIES: usize = 0x34;
const CAP_VENDOR: u8 = 0x09;
const CAP_MSIX: u8 = 0x11;
const MSIX_ENABLE: u16 = 1 << 15;
const MSIX_FUNCTION_MASK: u16 = 1 << 14;
const COMMAND_MEMORY: u16 = 1 << 1;
const COMMAND_BUS_MASTER: u16 = 1 << 2;
const STATUS_CAPABILITIES: u16 = 1 << 4;

const CFG_COMMON: u8 = 1;
const CFG_NOTIFY: u8 = 2;
const CFG_ISR: u8 = 3;
const CFG_DEVICE: u8 = 4;
const CFG_SHARED_MEMORY: u8 = 8;

// virtio_pci_common_cfg
const DEVICE_FEATURE_SELECT: usize = 0x00;
const DEVICE_FEATURE: usize = 0x04;
const DRIVER_FEATURE_SELECT: usize = 0x08;
const DRIVER_FEATURE: usize = 0x0c;
const MSIX_CONFIG: usize = 0x10;
const DEVICE_STATUS: usize = 0x14;
const CONFIG_GENERATION: usize = 0x15;
const QUEUE_SELECT: usize = 0x16;
const QUEUE_SIZE: usize = 0x18;
const QUEUE_MSIX_VECTOR: usize = 0x1a;
const QUEUE_ENABLE: usize = 0x1c;
const QUEUE_NOTIFY_OFF: usize = 0x1e;
const QUEUE_DESC: usize = 0x20;
const QUEUE_DRIVER: usize = 0x28;
const QUEUE_DEVICE: usize = 0x30;
const NUM_QUEUES: usize = 0x12;
const NO_VECTOR: u16 = 0xffff;
/// The size of `virtio_pci_common_cfg` up to the last field used (`queue_device`).
const COMMON_CFG_LEN: u64 = 0x38;
/// Most queues whose notify offsets a transport keeps (more than any device of ours uses).
const MAX_QUEUES: usize = 64;

/// Where the next unassigned BAR goes in the 32-bit window (a bump allocator: BARs are never
/// freed).
static NEXT_BAR: AtomicU64 = AtomicU64::new(0);
/// Where the next unassigned prefetchable 64-bit BAR goes in the 64-bit window.
static NEXT_BAR64: AtomicU64 = AtomicU64::new(0);

/// The windows a host offers for BARs the firmware left unassigned.
#[derive(Clone, Copy, Debug, Default)]
struct BarWindows {
    /// For every BAR (below 4 GiB when it is a 32-bit one).
    mem32: Option<MemoryRegion>,
    /// For the prefetchable 64-bit BARs of virtio shared-memory regions (such as a DAX
    /// window: memory without side effects, which the platform maps as normal memory there).
    /// Register BARs never go there, prefetchable or not (QEMU marks virtio's register BAR
    /// prefetchable): normal memory would let the CPU cache and merge register accesses.
    mem64: Option<MemoryRegion>,
}

/// One function's configuration space in the ECAM window.
#[derive(Clone, Copy, Debug)]
struct Function {
    /// Virtual address of its 4 KiB configuration space.
    base: usize,
    bus: u8,
    device: u8,
    function: u8,
}

impl Function {
    fn read32(&self, offset: usize) -> u32 {
        // SAFETY: `base` is a function's 4 KiB configuration space inside the ECAM window the
        // platform reported and maps as device memory; `offset` is 4-byte aligned below 4096.
        unsafe { core::ptr::read_volatile((self.base + (offset & !3)) as *const u32) }
    }

    fn write32(&self, offset: usize, value: u32) {
        // SAFETY: as in `read32`; configuration writes only change this function's settings.
        unsafe { core::ptr::write_volatile((self.base + (offset & !3)) as *mut u32, value) }
    }

    fn read16(&self, offset: usize) -> u16 {
        (self.read32(offset) >> ((offset & 2) * 8)) as u16
    }

    fn read8(&self, offset: usize) -> u8 {
        (self.read32(offset) >> ((offset & 3) * 8)) as u8
    }

    fn write16(&self, offset: usize, value: u16) {
        let shift = (offset & 2) * 8;
        let old = self.read32(offset);
        // Avoid writing back write-1-to-clear status bits next to the command register.
        let keep = if offset & !3 == COMMAND { old & 0xffff } else { old };
        self.write32(offset, (keep & !(0xffff << shift)) | (u32::from(value) << shift));
    }

    /// The physical address and size of memory BAR `bar`, assigning an address from one of
    /// `windows` if the firmware did not (a prefetchable 64-bit BAR holding `shared_memory`
    /// from the 64-bit window when there is one, every other BAR from the 32-bit window).
    /// Returns `None` for I/O BARs and BARs that cannot be sized or placed. The size is what
    /// bounds every capability inside the BAR.
    fn memory_bar(&self, bar: u8, windows: BarWindows, shared_memory: bool) -> Option<(u64, u64)> {
        if bar > 5 {
            return None;
        }
        let offset = BAR0 + 4 * usize::from(bar);
        let low = self.read32(offset);
        if low & 1 != 0 {
            return None; // I/O space
        }
        let is64 = (low >> 1) & 3 == 2;
        if is64 && bar == 5 {
            return None; // its upper half would be past the last BAR
        }
        let high = if is64 { self.read32(offset + 4) } else { 0 };
        let address = (u64::from(high) << 32) | u64::from(low & !0xf);
        // Size it: write all ones, read the mask back, restore; with memory decoding off, so
        // that the BAR never decodes the all-ones address meanwhile.
        let command = self.read16(COMMAND);
        self.write16(COMMAND, command & !COMMAND_MEMORY);
        self.write32(offset, u32::MAX);
        let mask_low = self.read32(offset) & !0xf;
        let mask_high = if is64 {
            self.write32(offset + 4, u32::MAX);
            let m = self.read32(offset + 4);
            self.write32(offset + 4, high);
            m
        } else {
            u32::MAX
        };
        self.write32(offset, low);
        self.write16(COMMAND, command);
        let mask = (u64::from(mask_high) << 32) | u64::from(mask_low);
        let size = (!mask).wrapping_add(1);
        if mask_low == 0 || size == 0 {
            return None;
        }
        if address != 0 {
            return Some((address, size));
        }
        let prefetchable = low & 0x8 != 0;
        let (window, next_bar) = match windows.mem64 {
            Some(mem64) if is64 && prefetchable && shared_memory => (Some(mem64), &NEXT_BAR64),
            _ => (windows.mem32, &NEXT_BAR),
        };
        let Some(window) = window else {
            log::warn!(
                "pci {:02x}:{:02x}.{}: BAR{bar} ({size:#x} bytes) is unassigned and the platform knows no window for it",
                self.bus,
                self.device,
                self.function
            );
            return None;
        };
        // Bump-allocate, naturally aligned, inside the window.
        let mut placed = None;
        let _ = next_bar.fetch_update(Ordering::AcqRel, Ordering::Acquire, |next| {
            let next = next.max(window.start);
            let start = next.next_multiple_of(size);
            let end = start.checked_add(size)?;
            if end > window.end || (!is64 && end > 1 << 32) {
                return None;
            }
            placed = Some(start);
            Some(end)
        });
        let Some(start) = placed else {
            log::warn!(
                "pci {:02x}:{:02x}.{}: BAR{bar} ({size:#x} bytes) does not fit in what is left of the window {:#x}..{:#x}",
                self.bus,
                self.device,
                self.function,
                window.start,
                window.end
            );
            return None;
        };
        self.write32(offset, start as u32 | (low & 0xf));
        if is64 {
            self.write32(offset + 4, (start >> 32) as u32);
        }
        log::debug!("pci {:02x}:{:02x}.{}: BAR{bar} assigned {start:#x} ({size:#x} bytes)", self.bus, self.device, self.function);
        Some((start, size))
    }
}

/// What the capability walk needs from a function: its configuration space and its BARs
/// (a trait so that the walk, where a malformed device could send the driver astray, is
/// host-tested against a fake configuration space).
trait ConfigSpace {
    fn read32(&self, offset: usize) -> u32;
    fn read8(&self, offset: usize) -> u8 {
        (self.read32(offset) >> ((offset & 3) * 8)) as u8
    }
    /// Physical address and size of memory BAR `bar` (assigned if it was not; where, depends
    /// on whether it holds registers or a `shared_memory` region, see `Function::memory_bar`).
    fn bar(&self, bar: u8, shared_memory: bool) -> Option<(u64, u64)>;
}

/// A BAR once sized: its address and size, or `None` when it is unusable.
type KnownBar = Option<(u64, u64)>;

/// A real function with the host's BAR window.
struct LiveSpace {
    function: Function,
    windows: BarWindows,
    /// BARs sized so far (sizing takes config writes; several capabilities share a BAR).
    bars: core::cell::Cell<[Option<KnownBar>; 6]>,
}

impl ConfigSpace for LiveSpace {
    fn read32(&self, offset: usize) -> u32 {
        self.function.read32(offset)
    }
    fn bar(&self, bar: u8, shared_memory: bool) -> Option<(u64, u64)> {
        let mut bars = self.bars.get();
        let index = usize::from(bar);
        if let Some(known) = *bars.get(index)? {
            return known;
        }
        let found = self.function.memory_bar(bar, self.windows, shared_memory);
        bars[index] = Some(found);
        self.bars.set(bars);
        found
    }
}

/// A capability's window, physical, checked to lie inside its BAR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct PhysRegion {
    start: u64,
    len: u64,
}

/// What the vendor and MSI-X capabilities of a function say, every window bounded by its BAR.
#[derive(Debug, Default, PartialEq, Eq)]
struct Capabilities {
    common: PhysRegion,
    notify: PhysRegion,
    notify_multiplier: u32,
    isr: PhysRegion,
    device_config: PhysRegion,
    shared_memory: Vec<(u8, MemoryRegion)>,
    /// The MSI-X capability's offset and its table (physical; entry 0 inside the BAR).
    msix: Option<(usize, u64)>,
}

/// Capabilities followed at most (a well-formed list has a handful; a looping one must end).
const MAX_CAPABILITIES: usize = 48;

/// Walks the capability list. Every window must lie inside its BAR (offset and length checked
/// without overflow), vendor capabilities must be long enough for their fields, and the
/// common, notify and ISR windows must exist and be large enough.
///
/// Errors: `ENODEV` (logged with the reason) for anything else: a malformed device is refused
/// at probe instead of sending later register accesses outside what it decodes.
fn parse_capabilities(space: &dyn ConfigSpace) -> Result<Capabilities> {
    let bad = |why: core::fmt::Arguments<'_>| {
        log::warn!("virtio-pci: malformed capability: {why}");
        Errno::ENODEV
    };
    let mut caps = Capabilities::default();
    let mut pointer = usize::from(space.read8(CAPABILITIES) & !3);
    let mut seen = 0;
    while pointer != 0 {
        if !(0x40..=0xfc).contains(&pointer) {
            return Err(bad(format_args!("capability pointer {pointer:#x} outside the capability area")));
        }
        seen += 1;
        if seen > MAX_CAPABILITIES {
            return Err(bad(format_args!("more than {MAX_CAPABILITIES} capabilities (a loop?)")));
        }
        let id = space.read8(pointer);
        let next = usize::from(space.read8(pointer + 1) & !3);
        let cap_len = usize::from(space.read8(pointer + 2));
        if id == CAP_MSIX {
            let table = space.read32(pointer + 4);
            let bar = (table & 7) as u8;
            let offset = u64::from(table & !7);
            // A BAR that cannot be placed leaves the function without MSI-X (it polls).
            if let Some((address, size)) = space.bar(bar, false) {
                if offset.checked_add(16).is_none_or(|end| end > size) {
                    return Err(bad(format_args!("MSI-X table at {offset:#x} outside BAR{bar} ({size:#x} bytes)")));
                }
                caps.msix = Some((pointer, address + offset));
            }
        }
        if id == CAP_VENDOR {
            let kind = space.read8(pointer + 3);
            let needed = match kind {
                CFG_SHARED_MEMORY => 24,
                CFG_NOTIFY => 20,
                _ => 16,
            };
            if cap_len < needed || pointer + needed > 0x100 {
                return Err(bad(format_args!("vendor capability {kind} at {pointer:#x} of {cap_len} bytes")));
            }
            let bar = space.read8(pointer + 4);
            let shm_id = space.read8(pointer + 5);
            let mut offset = u64::from(space.read32(pointer + 8));
            let mut length = u64::from(space.read32(pointer + 12));
            if kind == CFG_SHARED_MEMORY {
                offset |= u64::from(space.read32(pointer + 16)) << 32;
                length |= u64::from(space.read32(pointer + 20)) << 32;
            }
            // A BAR that cannot be placed (or an I/O BAR) leaves the capability unused; the
            // required ones are checked below.
            let placed = if matches!(kind, CFG_COMMON | CFG_NOTIFY | CFG_ISR | CFG_DEVICE | CFG_SHARED_MEMORY) { space.bar(bar, kind == CFG_SHARED_MEMORY) } else { None };
            if let Some((address, size)) = placed {
                if offset.checked_add(length).is_none_or(|end| end > size) {
                    return Err(bad(format_args!("capability {kind}: {length:#x} bytes at {offset:#x} outside BAR{bar} ({size:#x} bytes)")));
                }
                let region = PhysRegion { start: address + offset, len: length };
                match kind {
                    CFG_SHARED_MEMORY => caps.shared_memory.push((shm_id, MemoryRegion { start: region.start, end: region.start + length })),
                    // The first capability of each kind is the one to use (virtio 1.2 §4.1.4).
                    CFG_COMMON if caps.common.len == 0 => caps.common = region,
                    CFG_NOTIFY if caps.notify.len == 0 => {
                        caps.notify = region;
                        caps.notify_multiplier = space.read32(pointer + 16);
                    }
                    CFG_ISR if caps.isr.len == 0 => caps.isr = region,
                    CFG_DEVICE if caps.device_config.len == 0 => caps.device_config = region,
                    _ => {}
                }
            }
        }
        pointer = next;
    }
    if caps.common.len < COMMON_CFG_LEN || caps.notify.len < 2 || caps.isr.len == 0 {
        return Err(bad(format_args!("common {:#x}, notify {:#x} or ISR {:#x} bytes missing or too short", caps.common.len, caps.notify.len, caps.isr.len)));
    }
    Ok(caps)
}

/// A capability's window inside a BAR.
#[derive(Clone, Copy, Debug, Default)]
struct Region {
    /// Virtual address.
    base: usize,
    len: usize,
}

/// One modern virtio-pci function.
#[derive(Debug)]
pub struct PciTransport {
    function: Function,
    device_id: u32,
    common: Region,
    notify: Region,
    notify_multiplier: u32,
    isr: Region,
    device_config: Region,
    shared_memory: Vec<(u8, MemoryRegion)>,
    /// The MSI-X capability's offset and its table (virtual address), if the function has one.
    msix: Option<(usize, usize)>,
    /// Set once MSI-X is programmed: queues then use vector 0.
    msix_enabled: core::sync::atomic::AtomicBool,
    /// Each queue's offset in the notify region, learnt and checked against the region at
    /// `setup_queue`: a notification is one register write instead of three (select, read
    /// offset, write; every register access is a VM exit), and never goes where a device
    /// answering differently later would send it. One entry per queue the device has.
    notify_offsets: Vec<core::sync::atomic::AtomicU32>,
}

/// `notify_offsets` entry of a queue not set up yet.
const NO_OFFSET: u32 = u32::MAX;

/// Every modern virtio function with device id `device_id` on the first bus of `host`.
///
/// # Safety
/// `host` must describe an ECAM window the platform maps as device memory (as must the memory
/// window, for BARs placed there), and no other driver may use the functions found.
pub unsafe fn probe(host: &PciHost, device_id: u32) -> Vec<PciTransport> {
    let platform = hal::platform();
    let mut found = Vec::new();
    let bus = host.first_bus;
    for device in 0..32u8 {
        for function in 0..8u8 {
            let offset = (u64::from(bus - host.first_bus) << 20) | (u64::from(device) << 15) | (u64::from(function) << 12);
            let f = Function { base: platform.phys_to_virt(host.ecam + offset), bus, device, function };
            let id = f.read32(0);
            if id & 0xffff == 0xffff {
                if function == 0 {
                    break; // no device in this slot
                }
                continue;
            }
            let (vendor, pci_device) = (id as u16, (id >> 16) as u16);
            if vendor == VIRTIO_VENDOR && u32::from(pci_device) == u32::from(MODERN_BASE) + device_id {
                match PciTransport::new(f, device_id, BarWindows { mem32: host.mem32, mem64: host.mem64 }) {
                    Ok(t) => found.push(t),
                    Err(e) => log::warn!("pci {bus:02x}:{device:02x}.{function}: virtio device {device_id} refused ({e}): no usable capabilities"),
                }
            }
            if function == 0 && f.read8(HEADER_TYPE) & 0x80 == 0 {
                break; // single-function device
            }
        }
    }
    found
}

impl PciTransport {
    fn new(function: Function, device_id: u32, windows: BarWindows) -> Result<PciTransport> {
        if function.read16(STATUS) & STATUS_CAPABILITIES == 0 {
            return Err(Errno::ENODEV);
        }
        let space = LiveSpace { function, windows, bars: core::cell::Cell::new([None; 6]) };
        let caps = parse_capabilities(&space)?;
        let platform = hal::platform();
        let region = |r: PhysRegion| Region { base: platform.phys_to_virt(r.start), len: r.len as usize };
        let mut transport = PciTransport {
            function,
            device_id,
            common: region(caps.common),
            notify: region(caps.notify),
            notify_multiplier: caps.notify_multiplier,
            isr: region(caps.isr),
            device_config: region(caps.device_config),
            shared_memory: caps.shared_memory,
            msix: caps.msix.map(|(cap, table)| (cap, platform.phys_to_virt(table))),
            msix_enabled: core::sync::atomic::AtomicBool::new(false),
            notify_offsets: Vec::new(),
        };
        let command = function.read16(COMMAND);
        function.write16(COMMAND, command | COMMAND_MEMORY | COMMAND_BUS_MASTER);
        let queues = usize::from(transport.common_read::<u16>(NUM_QUEUES)).min(MAX_QUEUES);
        transport.notify_offsets = (0..queues).map(|_| core::sync::atomic::AtomicU32::new(NO_OFFSET)).collect();
        Ok(transport)
    }

    /// The device interrupt number its MSI-X messages are delivered as, if it has MSI-X.
    pub fn msi_interrupt(&self) -> Option<u32> {
        self.msix.map(|_| libos_core::device::msi_interrupt(self.function.bus, self.function.device, self.function.function))
    }

    /// Writes MSI-X table entry 0: message address, data, and the mask bit.
    fn write_msix_entry(&self, address: u64, data: u32, masked: bool) {
        let Some((_, table)) = self.msix else { return };
        let words = [address as u32, (address >> 32) as u32, data, u32::from(masked)];
        for (i, word) in words.into_iter().enumerate() {
            // SAFETY: entry 0 of the MSI-X table (16 bytes) lies in a BAR mapped as device
            // memory; the table is accessed with 32-bit writes as PCI requires.
            unsafe { core::ptr::write_volatile((table + 4 * i) as *mut u32, word) }
        }
    }

    fn common_read<T: Copy>(&self, offset: usize) -> T {
        // SAFETY: `offset` is a field of virtio_pci_common_cfg (checked length >= 0x38) in a
        // BAR mapped as device memory, accessed with the field's own width.
        unsafe { core::ptr::read_volatile((self.common.base + offset) as *const T) }
    }

    fn common_write<T: Copy>(&self, offset: usize, value: T) {
        // SAFETY: as in `common_read`.
        unsafe { core::ptr::write_volatile((self.common.base + offset) as *mut T, value) }
    }
}

impl Transport for PciTransport {
    fn describe(&self) -> String {
        format!("virtio-pci {:02x}:{:02x}.{}", self.function.bus, self.function.device, self.function.function)
    }

    fn device_id(&self) -> u32 {
        self.device_id
    }

    fn is_modern(&self) -> bool {
        true
    }

    fn device_features(&self) -> u64 {
        self.common_write::<u32>(DEVICE_FEATURE_SELECT, 0);
        let low = self.common_read::<u32>(DEVICE_FEATURE);
        self.common_write::<u32>(DEVICE_FEATURE_SELECT, 1);
        u64::from(low) | (u64::from(self.common_read::<u32>(DEVICE_FEATURE)) << 32)
    }

    fn set_driver_features(&self, features: u64) {
        self.common_write::<u32>(DRIVER_FEATURE_SELECT, 0);
        self.common_write::<u32>(DRIVER_FEATURE, features as u32);
        self.common_write::<u32>(DRIVER_FEATURE_SELECT, 1);
        self.common_write::<u32>(DRIVER_FEATURE, (features >> 32) as u32);
        self.common_write::<u16>(MSIX_CONFIG, NO_VECTOR);
    }

    fn status(&self) -> u8 {
        self.common_read(DEVICE_STATUS)
    }

    fn set_status(&self, status: u8) {
        self.common_write(DEVICE_STATUS, status);
    }

    fn max_queue_size(&self, queue: u16) -> u16 {
        if usize::from(queue) >= self.notify_offsets.len() {
            return 0; // the device has no such queue (or more than we keep offsets for)
        }
        self.common_write(QUEUE_SELECT, queue);
        if self.common_read::<u16>(QUEUE_ENABLE) != 0 {
            return 0;
        }
        self.common_read(QUEUE_SIZE)
    }

    fn setup_queue(&self, queue: u16, size: u16, addresses: QueueAddresses) -> Result<()> {
        let Some(slot) = self.notify_offsets.get(usize::from(queue)) else { return Err(Errno::ENOENT) };
        self.common_write(QUEUE_SELECT, queue);
        self.common_write(QUEUE_SIZE, size);
        let vector = if self.msix_enabled.load(Ordering::Acquire) { 0 } else { NO_VECTOR };
        self.common_write(QUEUE_MSIX_VECTOR, vector);
        if self.common_read::<u16>(QUEUE_MSIX_VECTOR) != vector {
            return Err(Errno::ENOSPC); // the device could not allocate the vector
        }
        let notify_offset = u64::from(self.common_read::<u16>(QUEUE_NOTIFY_OFF)) * u64::from(self.notify_multiplier);
        if notify_offset + 2 > self.notify.len as u64 {
            log::warn!("{}: queue {queue}'s notify offset {notify_offset:#x} is outside the notify window", self.describe());
            return Err(Errno::ENODEV);
        }
        slot.store(notify_offset as u32, Ordering::Release);
        self.common_write(QUEUE_DESC, addresses.descriptors);
        self.common_write(QUEUE_DRIVER, addresses.available);
        self.common_write(QUEUE_DEVICE, addresses.used);
        self.common_write::<u16>(QUEUE_ENABLE, 1);
        Ok(())
    }

    fn notify(&self, queue: u16) {
        core::sync::atomic::fence(Ordering::SeqCst);
        let offset = self.notify_offsets.get(usize::from(queue)).map_or(NO_OFFSET, |slot| slot.load(Ordering::Acquire));
        if offset == NO_OFFSET {
            log::warn!("{}: notify of queue {queue}, which was not set up", self.describe());
            return;
        }
        // SAFETY: `setup_queue` checked that this queue's notify address (cached there, never
        // read from the device again) lies in the notify region, whose length `probe` checked
        // against its BAR, mapped as device memory.
        unsafe { core::ptr::write_volatile((self.notify.base + offset as usize) as *mut u16, queue) }
    }

    fn read_config(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let generation = || u32::from(self.common_read::<u8>(CONFIG_GENERATION));
        crate::read_consistent(generation, || {
            for (i, byte) in buf.iter_mut().enumerate() {
                *byte = if offset.saturating_add(i) < self.device_config.len {
                    // SAFETY: inside the device configuration region (its length checked
                    // against the BAR at probe), a mapped BAR.
                    unsafe { core::ptr::read_volatile((self.device_config.base + offset + i) as *const u8) }
                } else {
                    0
                };
            }
        })
    }

    fn acknowledge_interrupt(&self) -> u32 {
        if self.msix_enabled.load(Ordering::Acquire) {
            // Only queues raise vector 0 (the configuration change has none): used buffers,
            // and nothing to acknowledge (sparing a register read, i.e. a VM exit).
            return 1;
        }
        // SAFETY: the ISR status byte of a mapped BAR; reading it acknowledges.
        u32::from(unsafe { core::ptr::read_volatile(self.isr.base as *const u8) })
    }

    fn prepare_interrupt(&self, interrupt: u32) -> Result<()> {
        let Some((cap, _)) = self.msix else { return Err(Errno::ENOSYS) };
        let (address, data) = hal::platform().msi_message(interrupt)?;
        self.write_msix_entry(address, data, true);
        let control = self.function.read16(cap + 2);
        self.function.write16(cap + 2, (control | MSIX_ENABLE) & !MSIX_FUNCTION_MASK);
        self.msix_enabled.store(true, Ordering::Release);
        Ok(())
    }

    fn enable_interrupt(&self, interrupt: u32) -> Result<()> {
        if !self.msix_enabled.load(Ordering::Acquire) {
            return Err(Errno::ENOSYS);
        }
        let (address, data) = hal::platform().msi_message(interrupt)?;
        self.write_msix_entry(address, data, false);
        Ok(())
    }

    fn shared_memory(&self, id: u8) -> Option<MemoryRegion> {
        self.shared_memory.iter().find(|(i, _)| *i == id).map(|(_, r)| *r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration space in memory, with BARs of known address and size.
    struct FakeSpace {
        bytes: [u8; 256],
        bars: [Option<(u64, u64)>; 6],
    }

    impl ConfigSpace for FakeSpace {
        fn read32(&self, offset: usize) -> u32 {
            let at = offset & !3;
            self.bytes.get(at..at + 4).map_or(u32::MAX, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        fn bar(&self, bar: u8, _: bool) -> Option<(u64, u64)> {
            *self.bars.get(usize::from(bar))?
        }
    }

    const BAR4: u64 = 0x8000_0000;

    impl FakeSpace {
        /// QEMU's layout: common, ISR, device, notify in a 16 KiB BAR4, MSI-X in BAR1.
        fn qemu_like() -> FakeSpace {
            let mut space = FakeSpace { bytes: [0; 256], bars: [None; 6] };
            space.bars[1] = Some((0x9000_0000, 0x1000));
            space.bars[4] = Some((BAR4, 0x4000));
            space.bytes[CAPABILITIES] = 0x40;
            space.cap(0x40, 0x50, CFG_COMMON, 4, 0x0000, 0x1000, None);
            space.cap(0x50, 0x60, CFG_ISR, 4, 0x1000, 0x1000, None);
            space.cap(0x60, 0x70, CFG_DEVICE, 4, 0x2000, 0x1000, None);
            space.cap(0x70, 0x88, CFG_NOTIFY, 4, 0x3000, 0x1000, Some(4));
            space.bytes[0x88] = CAP_MSIX;
            space.bytes[0x89] = 0;
            space.put32(0x8c, 1); // table at offset 0 of BAR1
            space
        }

        fn put32(&mut self, at: usize, value: u32) {
            self.bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }

        #[allow(clippy::too_many_arguments)]
        fn cap(&mut self, at: usize, next: u8, kind: u8, bar: u8, offset: u32, length: u32, multiplier: Option<u32>) {
            self.bytes[at] = CAP_VENDOR;
            self.bytes[at + 1] = next;
            self.bytes[at + 2] = if multiplier.is_some() { 20 } else { 16 };
            self.bytes[at + 3] = kind;
            self.bytes[at + 4] = bar;
            self.put32(at + 8, offset);
            self.put32(at + 12, length);
            if let Some(m) = multiplier {
                self.put32(at + 16, m);
            }
        }
    }

    #[test]
    fn well_formed_capabilities_give_their_windows() {
        let caps = parse_capabilities(&FakeSpace::qemu_like()).unwrap();
        assert_eq!(caps.common, PhysRegion { start: BAR4, len: 0x1000 });
        assert_eq!(caps.notify, PhysRegion { start: BAR4 + 0x3000, len: 0x1000 });
        assert_eq!(caps.notify_multiplier, 4);
        assert_eq!(caps.device_config, PhysRegion { start: BAR4 + 0x2000, len: 0x1000 });
        assert_eq!(caps.msix, Some((0x88, 0x9000_0000)));
    }

    #[test]
    fn a_window_past_the_end_of_its_bar_is_refused_at_probe() {
        let mut space = FakeSpace::qemu_like();
        space.cap(0x70, 0x88, CFG_NOTIFY, 4, 0x3000, 0x2000, Some(4)); // ends 4 KiB past the BAR
        assert_eq!(parse_capabilities(&space), Err(Errno::ENODEV));
        let mut space = FakeSpace::qemu_like();
        space.cap(0x60, 0x70, CFG_DEVICE, 4, 0xffff_f000, 0x2000, None); // offset + length wraps in 32 bits
        assert_eq!(parse_capabilities(&space), Err(Errno::ENODEV));
        let mut space = FakeSpace::qemu_like();
        space.cap(0x40, 0x50, CFG_COMMON, 4, 0x3ff0, 0x1000, None);
        assert_eq!(parse_capabilities(&space), Err(Errno::ENODEV));
    }

    #[test]
    fn a_shared_memory_window_past_its_bar_is_refused() {
        let mut space = FakeSpace::qemu_like();
        space.bars[2] = Some((0x1_0000_0000, 0x1000_0000));
        space.bytes[0x89] = 0xa0;
        space.cap(0xa0, 0, CFG_SHARED_MEMORY, 2, 0, 0x1000, None);
        space.bytes[0xa2] = 24;
        space.put32(0xa0 + 16, 0);
        space.put32(0xa0 + 20, 1); // length 4 GiB + 4 KiB in a 256 MiB BAR
        assert_eq!(parse_capabilities(&space), Err(Errno::ENODEV));
        space.put32(0xa0 + 20, 0);
        assert_eq!(parse_capabilities(&space).unwrap().shared_memory, vec![(0, MemoryRegion { start: 0x1_0000_0000, end: 0x1_0000_1000 })]);
    }

    #[test]
    fn an_msix_table_past_its_bar_is_refused() {
        let mut space = FakeSpace::qemu_like();
        space.put32(0x8c, 0x1000 | 1); // entry 0 would start at the BAR's end
        assert_eq!(parse_capabilities(&space), Err(Errno::ENODEV));
    }

    #[test]
    fn short_or_looping_capability_lists_are_refused() {
        let mut space = FakeSpace::qemu_like();
        space.bytes[0x72] = 16; // a notify capability without its multiplier
        assert_eq!(parse_capabilities(&space), Err(Errno::ENODEV));
        let mut space = FakeSpace::qemu_like();
        space.bytes[0x89] = 0x40; // back to the first one
        assert_eq!(parse_capabilities(&space), Err(Errno::ENODEV));
        let mut space = FakeSpace::qemu_like();
        space.bytes[0x41] = 0x10; // into the standard header
        assert_eq!(parse_capabilities(&space), Err(Errno::ENODEV));
        let mut space = FakeSpace::qemu_like();
        space.cap(0x50, 0x60, CFG_ISR, 3, 0x1000, 0x1000, None); // BAR3 does not exist
        assert_eq!(parse_capabilities(&space), Err(Errno::ENODEV), "no usable ISR window");
    }
}
