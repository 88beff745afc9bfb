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
const NO_VECTOR: u16 = 0xffff;

/// Where the next unassigned BAR goes, per host window (a bump allocator: BARs are never freed).
static NEXT_BAR: AtomicU64 = AtomicU64::new(0);

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

    /// The physical address BAR `bar` decodes, assigning one from `window` if the firmware did
    /// not. Returns `None` for I/O BARs and BARs that cannot be placed.
    fn memory_bar(&self, bar: u8, window: Option<MemoryRegion>) -> Option<u64> {
        if bar > 5 {
            return None;
        }
        let offset = BAR0 + 4 * usize::from(bar);
        let low = self.read32(offset);
        if low & 1 != 0 {
            return None; // I/O space
        }
        let is64 = (low >> 1) & 3 == 2;
        let high = if is64 { self.read32(offset + 4) } else { 0 };
        let address = (u64::from(high) << 32) | u64::from(low & !0xf);
        if address != 0 {
            return Some(address);
        }
        // Size it: write all ones, read the mask back, restore.
        self.write32(offset, u32::MAX);
        let mask_low = self.read32(offset) & !0xf;
        let mask_high = if is64 {
            self.write32(offset + 4, u32::MAX);
            let m = self.read32(offset + 4);
            self.write32(offset + 4, 0);
            m
        } else {
            u32::MAX
        };
        self.write32(offset, low);
        let mask = (u64::from(mask_high) << 32) | u64::from(mask_low);
        let size = (!mask).wrapping_add(1);
        if mask_low == 0 || size == 0 {
            return None;
        }
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
        let _ = NEXT_BAR.fetch_update(Ordering::AcqRel, Ordering::Acquire, |next| {
            let next = next.max(window.start);
            let start = next.next_multiple_of(size);
            let end = start.checked_add(size)?;
            if end > window.end || (!is64 && end > 1 << 32) {
                return None;
            }
            placed = Some(start);
            Some(end)
        });
        let start = placed?;
        self.write32(offset, start as u32 | (low & 0xf));
        if is64 {
            self.write32(offset + 4, (start >> 32) as u32);
        }
        log::debug!("pci {:02x}:{:02x}.{}: BAR{bar} assigned {start:#x} ({size:#x} bytes)", self.bus, self.device, self.function);
        Some(start)
    }
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
    /// Each queue's offset in the notify region, learnt at `setup_queue`, so that a
    /// notification is one register write instead of three (select, read offset, write):
    /// every register access is a VM exit.
    notify_offsets: [core::sync::atomic::AtomicU32; CACHED_NOTIFY_QUEUES],
}

/// Queues whose notify offset is cached (more queues take the three-access path).
const CACHED_NOTIFY_QUEUES: usize = 8;
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
                match PciTransport::new(f, device_id, host.mem32.or(host.mem64)) {
                    Some(t) => found.push(t),
                    None => log::warn!("pci {bus:02x}:{device:02x}.{function}: virtio device {device_id} without usable capabilities"),
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
    fn new(function: Function, device_id: u32, window: Option<MemoryRegion>) -> Option<PciTransport> {
        if function.read16(STATUS) & STATUS_CAPABILITIES == 0 {
            return None;
        }
        let platform = hal::platform();
        let mut transport = PciTransport {
            function,
            device_id,
            common: Region::default(),
            notify: Region::default(),
            notify_multiplier: 0,
            isr: Region::default(),
            device_config: Region::default(),
            shared_memory: Vec::new(),
            msix: None,
            msix_enabled: core::sync::atomic::AtomicBool::new(false),
            notify_offsets: [const { core::sync::atomic::AtomicU32::new(NO_OFFSET) }; CACHED_NOTIFY_QUEUES],
        };
        let mut pointer = usize::from(function.read8(CAPABILITIES) & !3);
        let mut guard = 0;
        while pointer >= 0x40 && guard < 48 {
            guard += 1;
            let id = function.read8(pointer);
            let next = usize::from(function.read8(pointer + 1) & !3);
            if id == CAP_MSIX {
                let table = function.read32(pointer + 4);
                if let Some(bar_address) = function.memory_bar((table & 7) as u8, window) {
                    transport.msix = Some((pointer, platform.phys_to_virt(bar_address + u64::from(table & !7))));
                }
            }
            if id == CAP_VENDOR {
                let kind = function.read8(pointer + 3);
                let bar = function.read8(pointer + 4);
                let shm_id = function.read8(pointer + 5);
                let offset = u64::from(function.read32(pointer + 8));
                let length = u64::from(function.read32(pointer + 12));
                if kind == CFG_SHARED_MEMORY {
                    let offset = offset | (u64::from(function.read32(pointer + 16)) << 32);
                    let length = length | (u64::from(function.read32(pointer + 20)) << 32);
                    if let Some(bar_address) = function.memory_bar(bar, window) {
                        let start = bar_address + offset;
                        transport.shared_memory.push((shm_id, MemoryRegion { start, end: start + length }));
                    }
                } else if let Some(bar_address) = function.memory_bar(bar, window) {
                    let region = Region { base: platform.phys_to_virt(bar_address + offset), len: length as usize };
                    match kind {
                        CFG_COMMON => transport.common = region,
                        CFG_NOTIFY => {
                            transport.notify = region;
                            transport.notify_multiplier = function.read32(pointer + 16);
                        }
                        CFG_ISR => transport.isr = region,
                        CFG_DEVICE => transport.device_config = region,
                        _ => {}
                    }
                }
            }
            pointer = next;
        }
        if transport.common.len < 0x38 || transport.notify.len == 0 || transport.isr.len == 0 {
            return None;
        }
        let command = function.read16(COMMAND);
        function.write16(COMMAND, command | COMMAND_MEMORY | COMMAND_BUS_MASTER);
        Some(transport)
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
        self.common_write(QUEUE_SELECT, queue);
        if self.common_read::<u16>(QUEUE_ENABLE) != 0 {
            return 0;
        }
        self.common_read(QUEUE_SIZE)
    }

    fn setup_queue(&self, queue: u16, size: u16, addresses: QueueAddresses) -> Result<()> {
        self.common_write(QUEUE_SELECT, queue);
        self.common_write(QUEUE_SIZE, size);
        let vector = if self.msix_enabled.load(Ordering::Acquire) { 0 } else { NO_VECTOR };
        self.common_write(QUEUE_MSIX_VECTOR, vector);
        if self.common_read::<u16>(QUEUE_MSIX_VECTOR) != vector {
            return Err(Errno::ENOSPC); // the device could not allocate the vector
        }
        let notify_offset = u64::from(self.common_read::<u16>(QUEUE_NOTIFY_OFF)) * u64::from(self.notify_multiplier);
        if notify_offset + 2 > self.notify.len as u64 {
            return Err(Errno::ENODEV);
        }
        if let Some(slot) = self.notify_offsets.get(usize::from(queue)) {
            slot.store(notify_offset as u32, Ordering::Release);
        }
        self.common_write(QUEUE_DESC, addresses.descriptors);
        self.common_write(QUEUE_DRIVER, addresses.available);
        self.common_write(QUEUE_DEVICE, addresses.used);
        self.common_write::<u16>(QUEUE_ENABLE, 1);
        Ok(())
    }

    fn notify(&self, queue: u16) {
        core::sync::atomic::fence(Ordering::SeqCst);
        let cached = self.notify_offsets.get(usize::from(queue)).map_or(NO_OFFSET, |slot| slot.load(Ordering::Acquire));
        let offset = if cached != NO_OFFSET {
            cached as usize
        } else {
            self.common_write(QUEUE_SELECT, queue);
            usize::from(self.common_read::<u16>(QUEUE_NOTIFY_OFF)) * self.notify_multiplier as usize
        };
        // SAFETY: `setup_queue` checked that this queue's notify address lies in the notify
        // region, a BAR mapped as device memory.
        unsafe { core::ptr::write_volatile((self.notify.base + offset) as *mut u16, queue) }
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
