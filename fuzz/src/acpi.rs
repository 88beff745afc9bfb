//! ACPI tables: the x86_64 platform's table walk ([`acpi`]) and device discovery from the tables
//! ([`devices`]), on any firmware memory. Broken tables must give `None`, never a panic, an
//! overflow or a read at a wild address.
//!
//! The input's first byte holds flags; the rest is physical memory from address 0, with the
//! RSDP at address 0. With flag bit 0 the harness first repairs the checksums of the RSDP, the
//! root table and every table it lists (and the FADT's DSDT), so mutations reach past the
//! checksum checks; without it they test the checks themselves.

use libos_platform_x86_64::{acpi, devices};

/// Largest table the harness reads whole for [`devices`] (as the kernel caps them).
const MAX_TABLE: usize = 64 * 1024;

/// Walks the tables in `data` as the boot does.
pub fn run(data: &[u8]) {
    let Some((&flags, memory)) = data.split_first() else { return };
    let mut memory = memory.to_vec();
    if flags & 1 != 0 {
        repair_checksums(&mut memory);
    }
    let memory = &memory[..];
    let read = |addr: u64, buf: &mut [u8]| -> bool {
        let Ok(start) = usize::try_from(addr) else { return false };
        match start.checked_add(buf.len()).and_then(|end| memory.get(start..end)) {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    };
    let _ = acpi::find_power_off(0, &read);
    let _ = acpi::cmos_rtc(0, &read);
    if let Some(dsdt) = acpi::find_dsdt(0, &read) {
        let mut header = [0u8; 8];
        if read(dsdt, &mut header) {
            let len = (u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize).min(MAX_TABLE);
            let mut aml = vec![0u8; len];
            if read(dsdt, &mut aml) {
                devices::virtio_mmio_in_dsdt(&aml, |slot| assert!(slot.base != 0 && slot.size != 0));
                if let Some((start, end)) = devices::pci_window_in_dsdt(&aml) {
                    assert!(start < end);
                }
                let _ = devices::pci_host_in_dsdt(&aml);
            }
        }
    }
    for signature in [b"MCFG", b"APIC"] {
        if let Some((addr, len)) = acpi::find_table(0, &read, signature) {
            let mut table = vec![0u8; len.min(MAX_TABLE)];
            if read(addr, &mut table) {
                devices::pci_hosts_in_mcfg(&table, |host| assert!(host.first_bus <= host.last_bus));
                devices::ioapics_in_madt(&table, |_| {});
            }
        }
    }
}

fn u32_at(memory: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(memory.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(memory: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(memory.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// Sets the byte at `fix` so that `memory[range]` sums to zero.
fn repair(memory: &mut [u8], start: usize, len: usize, fix: usize) {
    let Some(end) = start.checked_add(len).filter(|&end| end <= memory.len() && fix < end && fix >= start) else {
        return;
    };
    memory[fix] = 0;
    let sum = memory[start..end].iter().fold(0u8, |s, b| s.wrapping_add(*b));
    memory[fix] = 0u8.wrapping_sub(sum);
}

/// Repairs the checksum of the table at `addr` (length from its header).
fn repair_table(memory: &mut [u8], addr: u64) {
    let Ok(addr) = usize::try_from(addr) else { return };
    if let Some(len) = u32_at(memory, addr.saturating_add(4)) {
        repair(memory, addr, len as usize, addr.saturating_add(9));
    }
}

fn repair_checksums(memory: &mut [u8]) {
    if memory.len() < 36 {
        return;
    }
    repair(memory, 0, 20, 8);
    let xsdt = memory[15] >= 2 && u64_at(memory, 24).is_some_and(|a| a != 0);
    if xsdt {
        let len = u32_at(memory, 20).map_or(36, |l| l as usize).clamp(33, 36);
        repair(memory, 0, len, 32);
    }
    let (root, entry) = if xsdt { (u64_at(memory, 24), 8) } else { (u32_at(memory, 16).map(u64::from), 4) };
    let Some(root) = root.and_then(|r| usize::try_from(r).ok()) else { return };
    let Some(root_len) = u32_at(memory, root.saturating_add(4)) else { return };
    let end = root.saturating_add(root_len as usize).min(memory.len());
    let mut at = root.saturating_add(36);
    let mut tables = Vec::new();
    while at.saturating_add(entry) <= end && tables.len() < 32 {
        let addr = if entry == 8 { u64_at(memory, at) } else { u32_at(memory, at).map(u64::from) };
        tables.extend(addr);
        at += entry;
    }
    for &table in &tables {
        // The FADT's DSDT (32-bit field at 40, 64-bit X_DSDT at 140).
        let Ok(t) = usize::try_from(table) else { continue };
        if memory.get(t..t.saturating_add(4)) == Some(b"FACP") {
            if let Some(dsdt) = u32_at(memory, t + 40) {
                repair_table(memory, u64::from(dsdt));
            }
            if let Some(x_dsdt) = u64_at(memory, t + 140) {
                repair_table(memory, x_dsdt);
            }
        }
        repair_table(memory, table);
    }
    repair_table(memory, root as u64);
}
