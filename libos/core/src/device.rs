//! Devices the platform discovered at boot, and the hook that routes their interrupts.
//!
//! A platform finds devices in its firmware tables (x86: ACPI DSDT `LNRO0005` entries for
//! virtio-mmio, ACPI MCFG for PCIe ECAM; aarch64: the device tree's `virtio,mmio` and
//! `pci-host-ecam-generic` nodes) and reports them through [`crate::hal::Platform::devices`].
//! Drivers (the virtio transports) probe what is there; no address is hard-coded anywhere.
//!
//! Interrupts: a driver registers a handler for the platform interrupt number of its device
//! with [`set_interrupt_handler`] and then asks the platform to unmask it
//! ([`crate::hal::Platform::enable_device_interrupt`]). The platform's interrupt entry calls
//! [`device_interrupt`], which runs the handler with interrupts masked; handlers must not block
//! or allocate (they typically signal a [`crate::blocking::Event`]).

use crate::hal::MemoryRegion;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// A virtio-mmio register window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioMmioSlot {
    /// Physical address of the registers.
    pub base: u64,
    /// Size of the window in bytes (0x200 on QEMU).
    pub size: u64,
    /// The platform interrupt number of the device (x86 GSI, aarch64 GIC INTID), if known.
    pub interrupt: Option<u32>,
}

/// A PCIe host bridge with an ECAM configuration window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciHost {
    /// Physical address of the ECAM window (bus `first_bus`, device 0, function 0).
    pub ecam: u64,
    /// First bus number the window covers.
    pub first_bus: u8,
    /// Last bus number the window covers.
    pub last_bus: u8,
    /// 32-bit memory window for BARs the firmware left unassigned, if the platform knows one.
    pub mem32: Option<MemoryRegion>,
    /// 64-bit memory window for BARs, if the platform knows one (and maps it).
    pub mem64: Option<MemoryRegion>,
    /// How legacy INTx interrupts of this host are routed; `None`: unknown (drivers use MSI-X
    /// or poll).
    pub intx: Option<IntxRouting>,
}

/// How a PCI function's INTx pin reaches the interrupt controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntxRouting {
    /// The classic swizzle onto four consecutive platform interrupts: pin `p` (0..4, INTA..INTD)
    /// of device `d` raises `base + (d + p) % 4` (QEMU `virt`'s interrupt-map).
    Swizzle {
        /// The platform interrupt of INTA of device 0.
        base: u32,
    },
}

/// Everything the platform found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Devices {
    /// virtio-mmio windows (the transport probes each for its magic value and device id).
    pub virtio_mmio: Vec<VirtioMmioSlot>,
    /// PCIe hosts.
    pub pci: Vec<PciHost>,
}

impl Devices {
    /// The physical address windows of these devices, each with a short name: virtio-mmio
    /// register windows, PCIe configuration (ECAM) windows and BAR windows. What a program's
    /// pages must not be placed over ([`crate::hal::Platform::reserved_regions`]).
    pub fn windows(&self) -> Vec<(MemoryRegion, &'static str)> {
        let mut windows = Vec::new();
        for slot in &self.virtio_mmio {
            windows.push((MemoryRegion { start: slot.base, end: slot.base.saturating_add(slot.size) }, "a virtio-mmio window"));
        }
        for host in &self.pci {
            // 1 MiB of configuration space per bus.
            let buses = u64::from(host.last_bus.saturating_sub(host.first_bus)) + 1;
            windows.push((MemoryRegion { start: host.ecam, end: host.ecam.saturating_add(buses << 20) }, "a PCIe configuration window"));
            windows.extend(host.mem32.into_iter().chain(host.mem64).map(|w| (w, "a PCI BAR window")));
        }
        windows
    }
}

/// The device interrupt number of MSI/MSI-X messages of PCI function `bus:device.function`
/// (outside every platform's wired interrupt numbers: x86 GSIs, GIC INTIDs are below 2^16).
pub fn msi_interrupt(bus: u8, device: u8, function: u8) -> u32 {
    0x1_0000 | (u32::from(bus) << 8) | (u32::from(device & 0x1f) << 3) | u32::from(function & 7)
}

/// Most distinct device interrupts that can have a handler at once.
pub const MAX_HANDLERS: usize = 16;

const FREE: u32 = u32::MAX;

struct Slot {
    interrupt: AtomicU32,
    handler: AtomicUsize,
    data: AtomicUsize,
    count: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot =
    Slot { interrupt: AtomicU32::new(FREE), handler: AtomicUsize::new(0), data: AtomicUsize::new(0), count: AtomicU64::new(0) };

static HANDLERS: [Slot; MAX_HANDLERS] = [EMPTY; MAX_HANDLERS];

/// Registers `handler(data)` for platform interrupt `interrupt` (replacing an earlier handler
/// for it). Errors: `ENOSPC` when [`MAX_HANDLERS`] interrupts already have handlers.
pub fn set_interrupt_handler(interrupt: u32, handler: fn(usize), data: usize) -> crate::Result<()> {
    let slot = HANDLERS
        .iter()
        .find(|s| s.interrupt.load(Ordering::Acquire) == interrupt)
        .or_else(|| {
            HANDLERS.iter().find(|s| s.interrupt.compare_exchange(FREE, interrupt, Ordering::AcqRel, Ordering::Acquire).is_ok())
        })
        .ok_or(crate::Errno::ENOSPC)?;
    slot.data.store(data, Ordering::Release);
    slot.handler.store(handler as usize, Ordering::Release);
    Ok(())
}

/// Called by the platform's interrupt entry for device interrupt `interrupt` (interrupts
/// masked). Returns whether a handler ran.
pub fn device_interrupt(interrupt: u32) -> bool {
    crate::idle::leave();
    let Some(slot) = HANDLERS.iter().find(|s| s.interrupt.load(Ordering::Acquire) == interrupt) else {
        return false;
    };
    let handler = slot.handler.load(Ordering::Acquire);
    if handler == 0 {
        return false;
    }
    slot.count.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the only non-zero value ever stored in `handler` is a `fn(usize)` cast to usize
    // (`set_interrupt_handler`), so this yields that same function pointer.
    let handler: fn(usize) = unsafe { core::mem::transmute::<usize, fn(usize)>(handler) };
    handler(slot.data.load(Ordering::Acquire));
    true
}

/// How many times interrupt `interrupt` ran its handler since boot.
pub fn interrupt_count(interrupt: u32) -> u64 {
    HANDLERS.iter().find(|s| s.interrupt.load(Ordering::Acquire) == interrupt).map_or(0, |s| s.count.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicUsize;

    static SEEN: AtomicUsize = AtomicUsize::new(0);

    fn record(data: usize) {
        SEEN.store(data, Ordering::SeqCst);
    }

    #[test]
    fn handlers_run_for_their_interrupt_only() {
        assert!(!device_interrupt(4000));
        set_interrupt_handler(4001, record, 7).unwrap();
        assert!(device_interrupt(4001));
        assert_eq!(SEEN.load(Ordering::SeqCst), 7);
        assert!(!device_interrupt(4002));
        set_interrupt_handler(4001, record, 9).unwrap(); // replaces, same slot
        device_interrupt(4001);
        assert_eq!(SEEN.load(Ordering::SeqCst), 9);
        assert_eq!(interrupt_count(4001), 2);
        assert_eq!(interrupt_count(4002), 0);
    }
}
