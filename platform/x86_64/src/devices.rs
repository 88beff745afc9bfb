//! Device discovery from ACPI tables (pure: the tables come in as bytes, so it is host-tested).
//!
//! - virtio-mmio: QEMU `microvm` (and Firecracker-style VMMs) describe each virtio-mmio slot in
//!   the DSDT as a device with `_HID "LNRO0005"` whose `_CRS` holds a `Memory32Fixed` window and
//!   an extended interrupt (the GSI). We scan the AML for those names and read the two resource
//!   descriptors that follow, instead of interpreting AML: the layout is what QEMU's
//!   `virtio_acpi_dsdt_add` emits and what Linux's ACPI resource parser reads.
//! - PCIe: the MCFG table lists ECAM windows (q35 and `microvm,pcie=on`).

use libos_core::device::{PciHost, VirtioMmioSlot};

/// The ACPI hardware id of a virtio-mmio device.
const VIRTIO_MMIO_HID: &[u8] = b"LNRO0005";
/// Small resource descriptor "Memory32Fixed" (tag 0x86, 9 bytes of data follow).
const MEMORY32_FIXED: [u8; 3] = [0x86, 0x09, 0x00];
/// Large resource descriptor "Extended Interrupt".
const EXTENDED_INTERRUPT: u8 = 0x89;

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Calls `found` for each virtio-mmio device described in the DSDT's AML (`aml`: the whole
/// table, header included). Entries without a readable window are skipped.
pub fn virtio_mmio_in_dsdt(aml: &[u8], mut found: impl FnMut(VirtioMmioSlot)) {
    let mut rest = aml;
    while let Some(at) = find(rest, VIRTIO_MMIO_HID) {
        let after = &rest[at + VIRTIO_MMIO_HID.len()..];
        // This device's resources end where the next virtio-mmio device starts.
        let scope = &after[..find(after, VIRTIO_MMIO_HID).unwrap_or(after.len())];
        if let Some(window) = find(scope, &MEMORY32_FIXED) {
            let base = u32_at(scope, window + 4);
            let size = u32_at(scope, window + 8);
            let resources = scope.get(window + 12..).unwrap_or_default();
            let interrupt = resources.iter().position(|&b| b == EXTENDED_INTERRUPT).and_then(|i| {
                let descriptor = &resources[i..];
                // tag, length (u16), flags, count, then `count` u32 interrupt numbers.
                (descriptor.get(4).copied()? >= 1).then(|| u32_at(descriptor, 5)).flatten()
            });
            if let (Some(base), Some(size)) = (base, size)
                && base != 0
                && size != 0
            {
                found(VirtioMmioSlot { base: u64::from(base), size: u64::from(size), interrupt });
            }
        }
        rest = after;
    }
}

/// Calls `found` for each ECAM window of the MCFG table `mcfg` (the whole table).
pub fn pci_hosts_in_mcfg(mcfg: &[u8], mut found: impl FnMut(PciHost)) {
    // Header (36) + 8 reserved bytes, then 16-byte entries.
    let Some(entries) = mcfg.get(44..) else { return };
    for entry in entries.chunks_exact(16) {
        let (Some(base), segment) = (u64_at(entry, 0), u16::from_le_bytes([entry[8], entry[9]])) else { continue };
        if base == 0 || segment != 0 || entry[11] < entry[10] {
            continue; // only segment 0 is reachable through the legacy bus numbering
        }
        found(PciHost { ecam: base, first_bus: entry[10], last_bus: entry[11], mem32: None, mem64: None, intx: None });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What QEMU's `virtio_acpi_dsdt_add` emits for one slot (name, _HID, _UID, _CCA, _CRS).
    fn slot(index: u8, base: u32, gsi: u32) -> Vec<u8> {
        let mut aml = vec![0x5b, 0x82, 0x3a, b'V', b'R', b'0', b'0' + index];
        aml.extend_from_slice(&[0x08, b'_', b'H', b'I', b'D', 0x0d]);
        aml.extend_from_slice(b"LNRO0005\0");
        aml.extend_from_slice(&[0x08, b'_', b'U', b'I', b'D', 0x0a, index]);
        aml.extend_from_slice(&[0x08, b'_', b'C', b'C', b'A', 0x01]);
        aml.extend_from_slice(&[0x08, b'_', b'C', b'R', b'S', 0x11, 0x1a, 0x0a, 0x17]);
        aml.extend_from_slice(&[0x86, 0x09, 0x00, 0x01]);
        aml.extend_from_slice(&base.to_le_bytes());
        aml.extend_from_slice(&0x200u32.to_le_bytes());
        aml.extend_from_slice(&[0x89, 0x06, 0x00, 0x01, 0x01]);
        aml.extend_from_slice(&gsi.to_le_bytes());
        aml.extend_from_slice(&[0x79, 0x00]);
        aml
    }

    #[test]
    fn finds_every_virtio_mmio_slot_with_its_interrupt() {
        let mut dsdt = vec![0u8; 36];
        dsdt.extend(slot(0, 0xfeb0_0000, 16));
        dsdt.extend(slot(1, 0xfeb0_0200, 17));
        let mut found = Vec::new();
        virtio_mmio_in_dsdt(&dsdt, |s| found.push(s));
        assert_eq!(
            found,
            vec![
                VirtioMmioSlot { base: 0xfeb0_0000, size: 0x200, interrupt: Some(16) },
                VirtioMmioSlot { base: 0xfeb0_0200, size: 0x200, interrupt: Some(17) },
            ]
        );
    }

    #[test]
    fn truncated_or_garbage_aml_never_panics() {
        let whole = slot(0, 0xfeb0_0000, 16);
        for cut in 0..whole.len() {
            virtio_mmio_in_dsdt(&whole[..cut], |_| {});
        }
        let mut found = 0;
        virtio_mmio_in_dsdt(b"LNRO0005LNRO0005\x86\x09\x00", |_| found += 1);
        assert_eq!(found, 0);
    }

    #[test]
    fn mcfg_entries_become_pci_hosts() {
        let mut mcfg = vec![0u8; 44];
        mcfg.extend_from_slice(&0xb000_0000u64.to_le_bytes());
        mcfg.extend_from_slice(&[0, 0, 0, 0xff, 0, 0, 0, 0]);
        mcfg.extend_from_slice(&[1, 2, 3]); // a truncated entry is ignored
        let mut found = Vec::new();
        pci_hosts_in_mcfg(&mcfg, |h| found.push(h));
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].ecam, found[0].first_bus, found[0].last_bus), (0xb000_0000, 0, 0xff));
    }
}
