//! The devices of this machine, from the ACPI tables the loader pointed at (see [`crate::devices`]):
//! virtio-mmio slots and the PCI memory window from the DSDT, ECAM windows from the MCFG (or,
//! without one, from the DSDT's `_CBA`: `microvm,pcie=on`).

use crate::{acpi, devices, shutdown};
use alloc::vec;
use libos_core::device::{Devices, PciHost};
use libos_core::hal::MemoryRegion;

/// Largest DSDT we read (QEMU's microvm DSDT is a few KiB).
const MAX_DSDT: usize = 256 * 1024;

/// Scans the DSDT for virtio-mmio devices and the MCFG for PCIe hosts.
pub fn devices() -> Devices {
    let mut found = Devices::default();
    let Some(rsdp) = shutdown::rsdp() else { return found };
    let mut pci_window = None;
    let mut dsdt_host = None;
    let read = |addr: u64, buf: &mut [u8]| shutdown::read_firmware(addr, buf);
    if let Some(dsdt) = acpi::find_dsdt(rsdp, &read) {
        let mut header = [0u8; 8];
        if read(dsdt, &mut header) {
            let len = (u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize).min(MAX_DSDT);
            let mut aml = vec![0u8; len];
            if read(dsdt, &mut aml) {
                devices::virtio_mmio_in_dsdt(&aml, |slot| found.virtio_mmio.push(slot));
                pci_window = devices::pci_window_in_dsdt(&aml).map(|(start, end)| MemoryRegion { start, end });
                dsdt_host = devices::pci_host_in_dsdt(&aml);
            }
        }
    }
    if let Some((mcfg, len)) = acpi::find_table(rsdp, &read, b"MCFG") {
        let mut table = vec![0u8; len.min(4096)];
        if read(mcfg, &mut table) {
            devices::pci_hosts_in_mcfg(&table, |host| found.pci.push(PciHost { mem32: pci_window, ..host }));
        }
    }
    if found.pci.is_empty() {
        found.pci.extend(dsdt_host.map(|host| PciHost { mem32: pci_window, ..host }));
    }
    found
}
