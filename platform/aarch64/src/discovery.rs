//! The devices the device tree described, kept from boot for [`libos_core::hal::Platform::devices`]
//! (and the real-time clock, for [`crate::rtc`]).

use crate::dtb::{MAX_VIRTIO_MMIO, Machine, VirtioMmio};
use libos_core::device::{Devices, PciHost, VirtioMmioSlot};
use libos_core::hal::MemoryRegion;
use spin::Once;

struct Found {
    virtio_mmio: [VirtioMmio; MAX_VIRTIO_MMIO],
    virtio_mmio_count: usize,
    pcie_ecam: Option<MemoryRegion>,
    pcie_mem32: Option<MemoryRegion>,
    pcie_mem64: Option<MemoryRegion>,
    rtc: Option<u64>,
}

static FOUND: Once<Found> = Once::new();

/// Remembers the devices of `machine` (called once by the boot path).
pub fn record(machine: &Machine<'_>) {
    FOUND.call_once(|| Found {
        virtio_mmio: machine.virtio_mmio,
        virtio_mmio_count: machine.virtio_mmio_count,
        pcie_ecam: machine.pcie_ecam,
        pcie_mem32: machine.pcie_mem32,
        pcie_mem64: machine.pcie_mem64,
        rtc: machine.rtc,
    });
}

/// The PL031 real-time clock's register base, if the device tree has one.
pub fn rtc() -> Option<u64> {
    FOUND.get().and_then(|found| found.rtc)
}

/// What [`record`] kept, in the platform-independent form.
pub fn devices() -> Devices {
    let mut devices = Devices::default();
    let Some(found) = FOUND.get() else { return devices };
    for slot in &found.virtio_mmio[..found.virtio_mmio_count] {
        devices.virtio_mmio.push(VirtioMmioSlot { base: slot.base, size: slot.size, interrupt: Some(slot.intid) });
    }
    if let Some(ecam) = found.pcie_ecam {
        // 1 MiB of ECAM per bus.
        let buses = (ecam.len() >> 20).clamp(1, 256);
        devices.pci.push(PciHost { ecam: ecam.start, first_bus: 0, last_bus: (buses - 1) as u8, mem32: found.pcie_mem32, mem64: found.pcie_mem64, intx: None });
    }
    devices
}
