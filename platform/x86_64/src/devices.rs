//! Device discovery from ACPI tables (pure: the tables come in as bytes, so it is host-tested).
//!
//! - virtio-mmio: QEMU `microvm` (and Firecracker-style VMMs) describe each virtio-mmio slot in
//!   the DSDT as a device with `_HID "LNRO0005"` whose `_CRS` holds a `Memory32Fixed` window and
//!   an extended interrupt (the GSI). We scan the AML for those names and read the two resource
//!   descriptors that follow, instead of interpreting AML: the layout is what QEMU's
//!   `virtio_acpi_dsdt_add` emits and what Linux's ACPI resource parser reads.
//! - PCIe: the MCFG table lists ECAM windows (q35). `microvm,pcie=on` has no MCFG: its DSDT
//!   describes the host bridge (`PNP0A08`) with a `_CBA` method returning the ECAM base.

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

/// The name of a host bridge's ECAM base object.
const CBA: &[u8] = b"_CBA";
/// AML `ReturnOp`.
const RETURN_OP: u8 = 0xa4;

/// The PCIe host a DSDT describes with `_CBA` (QEMU `microvm,pcie=on`, whose tables have no
/// MCFG): its ECAM base, buses 0..=255 (the ECAM window of a single segment). `_CBA` is either
/// a name (`Name (_CBA, value)`) or, as QEMU emits it, a method that only returns the value
/// (`Method (_CBA, 0) { Return (value) }`: flags byte, `ReturnOp`, value).
pub fn pci_host_in_dsdt(aml: &[u8]) -> Option<PciHost> {
    let mut at = find(aml, CBA)? + CBA.len();
    if aml.get(at + 1) == Some(&RETURN_OP) {
        at += 2;
    }
    // The value is an AML integer: DWordConst (0x0c) or QWordConst (0x0e).
    let ecam = match aml.get(at)? {
        0x0c => u64::from(u32_at(aml, at + 1)?),
        0x0e => u64_at(aml, at + 1)?,
        _ => return None,
    };
    (ecam != 0).then_some(PciHost { ecam, first_bus: 0, last_bus: 0xff, mem32: None, mem64: None, intx: None })
}

/// The largest 32-bit memory window among the DWord address-space descriptors of the DSDT (the
/// PCI host bridge's `_CRS`: where BARs go). QEMU's firmware for `-kernel` boots (qboot) leaves
/// BARs unassigned, so the kernel places them there. A descriptor only counts when its fields
/// agree (`max == min + length - 1`, no translation), so stray bytes in the AML do not.
pub fn pci_window_in_dsdt(aml: &[u8]) -> Option<(u64, u64)> {
    // Large resource 0x87 (DWord Address Space), length 23, resource type 0 (memory).
    let mut best: Option<(u64, u64)> = None;
    for at in 0..aml.len().saturating_sub(26) {
        if aml[at..at + 4] != [0x87, 0x17, 0x00, 0x00] {
            continue;
        }
        let (Some(min), Some(max), Some(translation), Some(length)) =
            (u32_at(aml, at + 10), u32_at(aml, at + 14), u32_at(aml, at + 18), u32_at(aml, at + 22))
        else {
            continue;
        };
        let (min, max, length) = (u64::from(min), u64::from(max), u64::from(length));
        if translation != 0 || length < 0x10_0000 || min + length - 1 != max {
            continue;
        }
        if best.is_none_or(|(start, end)| end - start < length) {
            best = Some((min, min + length));
        }
    }
    best
}

/// An I/O APIC from the MADT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApic {
    /// Physical address of its registers.
    pub address: u32,
    /// The first GSI its pins serve.
    pub gsi_base: u32,
}

/// Calls `entry(kind, bytes)` for each entry of the MADT `madt` (the whole table), in order;
/// `bytes` is the whole entry. Stops at an entry whose length is impossible.
fn madt_entries(madt: &[u8], mut entry: impl FnMut(u8, &[u8])) {
    // Header (36), local APIC address (4), flags (4), then entries {type, length, ...}.
    let mut at = 44;
    while let (Some(&kind), Some(&len)) = (madt.get(at), madt.get(at + 1)) {
        let len = usize::from(len);
        let Some(bytes) = madt.get(at..at + len).filter(|_| len >= 2) else { return };
        entry(kind, bytes);
        at += len;
    }
}

/// Calls `found` for each I/O APIC of the MADT `madt` (the whole table).
pub fn ioapics_in_madt(madt: &[u8], mut found: impl FnMut(IoApic)) {
    madt_entries(madt, |kind, e| {
        if kind == 1 && e.len() >= 12 {
            if let (Some(address), Some(gsi_base)) = (u32_at(e, 4), u32_at(e, 8)) {
                found(IoApic { address, gsi_base });
            }
        }
    });
}

/// Calls `found` with the local APIC id of each processor the MADT `madt` lists as enabled
/// (Processor Local APIC entries, type 0, and Processor Local x2APIC entries, type 9), in table
/// order. Processors the firmware marks disabled (hot-pluggable slots, `-smp N,maxcpus=M`) are
/// skipped, and so is an id listed twice.
pub fn local_apics_in_madt(madt: &[u8], mut found: impl FnMut(u32)) {
    const ENABLED: u32 = 1;
    let mut seen: [u32; 64] = [0; 64];
    let mut seen_count = 0;
    madt_entries(madt, |kind, e| {
        let (id, flags) = match kind {
            0 if e.len() >= 8 => (u32::from(e[3]), u32_at(e, 4)),
            9 if e.len() >= 16 => (u32_at(e, 4).unwrap_or(u32::MAX), u32_at(e, 8)),
            _ => return,
        };
        if flags.is_none_or(|f| f & ENABLED == 0) || id == u32::MAX || seen[..seen_count].contains(&id) {
            return;
        }
        if seen_count < seen.len() {
            seen[seen_count] = id;
            seen_count += 1;
        }
        found(id);
    });
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
    fn the_largest_consistent_memory_window_is_the_pci_window() {
        fn dword_memory(min: u32, len: u32) -> Vec<u8> {
            let mut d = vec![0x87, 0x17, 0x00, 0x00, 0x0c, 0x01];
            for v in [0, min, min + len - 1, 0, len] {
                d.extend_from_slice(&v.to_le_bytes());
            }
            d
        }
        let mut aml = vec![0u8; 36];
        aml.extend(dword_memory(0x000a_0000, 0x2_0000)); // VGA: too small
        aml.extend(dword_memory(0x8000_0000, 0x3000_0000));
        aml.extend(dword_memory(0xc000_0000, 0x1000_0000));
        let mut broken = dword_memory(0x1000_0000, 0x4000_0000);
        broken[14] ^= 1; // max no longer matches
        aml.extend(broken);
        assert_eq!(pci_window_in_dsdt(&aml), Some((0x8000_0000, 0xb000_0000)));
        assert_eq!(pci_window_in_dsdt(&aml[..40]), None);
    }

    #[test]
    fn madt_lists_io_apics() {
        let mut madt = vec![0u8; 44];
        madt.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]); // a local APIC
        madt.extend_from_slice(&[1, 12, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]);
        madt.extend_from_slice(&[1, 12, 1, 0, 0, 0, 0xc1, 0xfe, 24, 0, 0, 0]);
        madt.extend_from_slice(&[1, 0]); // a zero length stops the walk
        let mut found = Vec::new();
        ioapics_in_madt(&madt, |a| found.push(a));
        assert_eq!(found, vec![IoApic { address: 0xfec0_0000, gsi_base: 0 }, IoApic { address: 0xfec1_0000, gsi_base: 24 }]);
    }

    #[test]
    fn madt_lists_enabled_processors_in_order() {
        let mut madt = vec![0u8; 44];
        madt.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]); // CPU 0, APIC id 0, enabled
        madt.extend_from_slice(&[1, 12, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]); // an I/O APIC
        madt.extend_from_slice(&[0, 8, 1, 2, 1, 0, 0, 0]); // APIC id 2, enabled
        madt.extend_from_slice(&[0, 8, 2, 3, 2, 0, 0, 0]); // APIC id 3, online capable only
        madt.extend_from_slice(&[0, 8, 3, 2, 1, 0, 0, 0]); // APIC id 2 again
        madt.extend_from_slice(&[9, 16, 0, 0, 0x00, 0x01, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0]); // x2APIC id 256
        madt.extend_from_slice(&[0, 7, 4, 5, 1, 0, 0]); // too short for its type: skipped
        madt.extend_from_slice(&[0, 8, 5, 6, 1, 0, 0, 0]); // APIC id 6
        let mut found = Vec::new();
        local_apics_in_madt(&madt, |id| found.push(id));
        assert_eq!(found, vec![0, 2, 256, 6]);

        // A length past the table's end stops the walk without reading beyond it.
        let mut truncated = madt[..44 + 8].to_vec();
        truncated.extend_from_slice(&[0, 8, 1, 9, 1]);
        let mut found = Vec::new();
        local_apics_in_madt(&truncated, |id| found.push(id));
        assert_eq!(found, vec![0]);
        // Random bytes never panic.
        let mut seed = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut junk = vec![0u8; 44];
            for _ in 0..(seed % 64) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                junk.push((seed >> 16) as u8);
            }
            local_apics_in_madt(&junk, |_| {});
            ioapics_in_madt(&junk, |_| {});
        }
    }

    #[test]
    fn a_cba_object_names_the_ecam_window() {
        // QEMU's form: MethodOp, PkgLength, "_CBA", flags, ReturnOp, DWordConst.
        let mut aml = b"....PCI0\x14\x0b".to_vec();
        aml.extend_from_slice(CBA);
        aml.extend_from_slice(&[0x00, RETURN_OP, 0x0c]);
        aml.extend_from_slice(&0xe000_0000u32.to_le_bytes());
        let host = pci_host_in_dsdt(&aml).expect("a host");
        assert_eq!((host.ecam, host.first_bus, host.last_bus), (0xe000_0000, 0, 0xff));
        // Name (_CBA, QWordConst).
        let mut qword = vec![0x08];
        qword.extend_from_slice(CBA);
        qword.push(0x0e);
        qword.extend_from_slice(&0x40_1000_0000u64.to_le_bytes());
        assert_eq!(pci_host_in_dsdt(&qword).map(|h| h.ecam), Some(0x40_1000_0000));
        for bad in [&b"_CBA"[..], &[b'_', b'C', b'B', b'A', 0x0c, 1, 2][..], &[b'_', b'C', b'B', b'A', 0x0a, 0][..]] {
            assert_eq!(pci_host_in_dsdt(bad), None, "{bad:?}");
        }
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
