//! Just enough ACPI to power off when there is no `isa-debug-exit` device: find the FADT from
//! the RSDP, read the S5 sleep type from the DSDT's `\_S5_` package, and say which register to
//! write (the hardware-reduced sleep control register on microvm and cloud-hypervisor, PM1a
//! control on q35/pc). The FADT also says whether there is a CMOS real-time clock and where it
//! keeps the century ([`cmos_rtc`], for [`crate::rtc`]); the other tables are found by
//! signature for device discovery ([`find_table`]).
//!
//! Pure: firmware memory is read through a caller-supplied function, and every length, checksum
//! and pointer is checked, so a broken table gives `None`, never a crash. Checksums: the RSDP's
//! (and for ACPI 2.0+ its extended one, as Linux's `acpi_tb_validate_rsdp`), and every table's
//! before it is used, read in chunks so that tables of any size need no buffer (up to
//! [`MAX_TABLE_LEN`]: a length beyond it is damage, not a table). Addresses computed from table
//! values use checked arithmetic: a table near the top of the address space is refused rather
//! than wrapped to a wild address.

/// Reads firmware memory: `true` when `buf` was filled from physical address `addr`.
pub type ReadPhys<'a> = &'a dyn Fn(u64, &mut [u8]) -> bool;

/// How to enter S5 (soft off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerOff {
    /// Write `value` (one byte) to the sleep control register, in memory space.
    SleepControlMemory {
        /// Physical address of the register.
        address: u64,
        /// SLP_TYP and SLP_EN.
        value: u8,
    },
    /// Write `value` (one byte) to the sleep control register, in I/O space.
    SleepControlPort {
        /// I/O port of the register.
        port: u16,
        /// SLP_TYP and SLP_EN.
        value: u8,
    },
    /// Write `value` (16 bits) to the PM1a control I/O port.
    Pm1aControl {
        /// I/O port of PM1a_CNT.
        port: u16,
        /// SLP_TYP and SLP_EN.
        value: u16,
    },
}

const SLP_EN_PM1: u16 = 1 << 13;
const SLP_EN_SLEEP_CONTROL: u8 = 1 << 5;
const HW_REDUCED_ACPI: u32 = 1 << 20;

/// The largest table we accept (real DSDTs are up to a few hundred KiB).
pub const MAX_TABLE_LEN: usize = 4 << 20;

fn checksum_ok(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |sum, b| sum.wrapping_add(*b)) == 0
}

/// True when the `len` bytes at `addr` are readable and sum to zero (read in chunks).
fn table_checksum_ok(read: ReadPhys<'_>, addr: u64, len: usize) -> bool {
    if !(36..=MAX_TABLE_LEN).contains(&len) || addr.checked_add(len as u64).is_none() {
        return false;
    }
    let mut chunk = [0u8; 256];
    let mut sum = 0u8;
    let mut done = 0;
    while done < len {
        let n = chunk.len().min(len - done);
        // No overflow: `addr + len` fits (checked above) and `done < len`.
        if !read(addr + done as u64, &mut chunk[..n]) {
            return false;
        }
        sum = chunk[..n].iter().fold(sum, |s, b| s.wrapping_add(*b));
        done += n;
    }
    sum == 0
}

/// The length of the table at `addr` if it has `signature` and a correct checksum.
fn checked_table(read: ReadPhys<'_>, addr: u64, signature: &[u8; 4]) -> Option<usize> {
    let mut header = [0u8; 36];
    if addr == 0 || !read(addr, &mut header) || &header[..4] != signature {
        return None;
    }
    let len = u32_at(&header, 4) as usize;
    table_checksum_ok(read, addr, len).then_some(len)
}

/// The root table of the RSDP at `rsdp`: its address, entry size and signature. The RSDP's
/// checksum is verified, and for ACPI 2.0 and later (which is when its XSDT is used) the
/// extended checksum over its whole length too.
fn root_table(rsdp: u64, read: ReadPhys<'_>) -> Option<(u64, usize, &'static [u8; 4])> {
    let mut root = [0u8; 36];
    if !read(rsdp, &mut root) || &root[..8] != b"RSD PTR " || !checksum_ok(&root[..20]) {
        return None;
    }
    if root[15] >= 2 && u64_at(&root, 24) != 0 {
        let len = u32_at(&root, 20) as usize;
        let mut full = [0u8; 64];
        if !(36..=full.len()).contains(&len) || !read(rsdp, &mut full[..len]) || !checksum_ok(&full[..len]) {
            return None;
        }
        Some((u64_at(&root, 24), 8, b"XSDT"))
    } else {
        Some((u64::from(u32_at(&root, 16)), 4, b"RSDT"))
    }
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from(u32_at(b, o)) | (u64::from(u32_at(b, o + 4)) << 32)
}

/// Reads a whole table at `addr` with the expected signature into `buf`; returns its length.
fn read_table(read: ReadPhys<'_>, addr: u64, signature: &[u8; 4], buf: &mut [u8]) -> Option<usize> {
    let mut header = [0u8; 36];
    if addr == 0 || !read(addr, &mut header) || &header[..4] != signature {
        return None;
    }
    let len = u32_at(&header, 4) as usize;
    if len < 36 || len > buf.len() || !read(addr, &mut buf[..len]) || !checksum_ok(&buf[..len]) {
        return None;
    }
    Some(len)
}

/// The physical address of the table with `signature` (e.g. `b"MCFG"`), found through the
/// RSDT/XSDT of the RSDP at `rsdp`, and its length. The table's checksum is verified (a table
/// that fails it is skipped, as if absent).
pub fn find_table(rsdp: u64, read: ReadPhys<'_>, signature: &[u8; 4]) -> Option<(u64, usize)> {
    let (table_addr, entry_size, root_signature) = root_table(rsdp, read)?;
    let mut table = [0u8; 1024];
    let len = read_table(read, table_addr, root_signature, &mut table)?;
    table[36..len].chunks_exact(entry_size).find_map(|entry| {
        let addr = if entry_size == 8 { u64_at(entry, 0) } else { u64::from(u32_at(entry, 0)) };
        checked_table(read, addr, signature).map(|len| (addr, len))
    })
}

/// The physical address of the DSDT (from the FADT), found from the RSDP at `rsdp`.
pub fn find_dsdt(rsdp: u64, read: ReadPhys<'_>) -> Option<u64> {
    let (fadt_addr, _) = find_table(rsdp, read, b"FACP")?;
    let mut fadt = [0u8; 512];
    let fadt_len = read_table(read, fadt_addr, b"FACP", &mut fadt)?;
    if fadt_len < 44 {
        return None;
    }
    let dsdt = if fadt_len >= 148 && u64_at(&fadt, 140) != 0 { u64_at(&fadt, 140) } else { u64::from(u32_at(&fadt, 40)) };
    checked_table(read, dsdt, b"DSDT").map(|_| dsdt)
}

/// What the FADT says about the CMOS real-time clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmosRtc {
    /// The CMOS register holding the century (the FADT's `CENTURY` field), if it names one.
    pub century_register: Option<u8>,
    /// `IAPC_BOOT_ARCH` bit 5 (ACPI 5.0 and later): "CMOS RTC not present".
    pub absent: bool,
}

/// The FADT's `CENTURY` byte and `IAPC_BOOT_ARCH` flags (both zero in an ACPI 1.0 FADT, which
/// reserved them: a clock with no century register, present).
const FADT_CENTURY: usize = 108;
const FADT_IAPC_BOOT_ARCH: usize = 109;
const IAPC_CMOS_RTC_NOT_PRESENT: u16 = 1 << 5;

/// What the FADT of the RSDP at `rsdp` says about the CMOS clock; `None` without a usable FADT.
pub fn cmos_rtc(rsdp: u64, read: ReadPhys<'_>) -> Option<CmosRtc> {
    let (fadt_addr, _) = find_table(rsdp, read, b"FACP")?;
    let mut fadt = [0u8; 512];
    let fadt_len = read_table(read, fadt_addr, b"FACP", &mut fadt)?;
    if fadt_len < FADT_IAPC_BOOT_ARCH + 2 {
        return None;
    }
    let boot_arch = u16::from_le_bytes([fadt[FADT_IAPC_BOOT_ARCH], fadt[FADT_IAPC_BOOT_ARCH + 1]]);
    Some(CmosRtc {
        century_register: Some(fadt[FADT_CENTURY]).filter(|&r| r != 0),
        absent: boot_arch & IAPC_CMOS_RTC_NOT_PRESENT != 0,
    })
}

/// Finds how to power off, starting from the RSDP at `rsdp`.
pub fn find_power_off(rsdp: u64, read: ReadPhys<'_>) -> Option<PowerOff> {
    let (table_addr, entry_size, signature) = root_table(rsdp, read)?;
    let mut table = [0u8; 1024];
    let len = read_table(read, table_addr, signature, &mut table)?;
    let mut fadt = [0u8; 512];
    let fadt_len = table[36..len].chunks_exact(entry_size).find_map(|entry| {
        let addr = if entry_size == 8 { u64_at(entry, 0) } else { u64::from(u32_at(entry, 0)) };
        read_table(read, addr, b"FACP", &mut fadt)
    })?;
    // Every FADT since ACPI 1.0 has at least 116 bytes (up to and including the flags).
    const FADT_V1_LEN: usize = 116;
    if fadt_len < FADT_V1_LEN {
        return None;
    }
    let fadt = &fadt[..fadt_len];

    let dsdt = if fadt_len >= 148 && u64_at(fadt, 140) != 0 { u64_at(fadt, 140) } else { u64::from(u32_at(fadt, 40)) };
    let slp_typ = s5_sleep_type(read, dsdt)?;

    let flags = u32_at(fadt, 112);
    if flags & HW_REDUCED_ACPI != 0 && fadt_len >= 256 {
        // SLEEP_CONTROL_REG: a generic address structure at offset 244.
        let space = fadt[244];
        let address = u64_at(fadt, 248);
        let value = ((slp_typ & 0x7) << 2) | SLP_EN_SLEEP_CONTROL;
        return match space {
            0 if address != 0 => Some(PowerOff::SleepControlMemory { address, value }),
            1 if address != 0 && address <= 0xffff => Some(PowerOff::SleepControlPort { port: address as u16, value }),
            _ => None,
        };
    }
    let port = u32_at(fadt, 64);
    if port == 0 || port > 0xffff {
        return None;
    }
    Some(PowerOff::Pm1aControl { port: port as u16, value: (u16::from(slp_typ & 0x7) << 10) | SLP_EN_PM1 })
}

/// SLP_TYPa of `\_S5_` in the DSDT at `dsdt`: `Name(_S5_, Package() { typ_a, ... })`.
fn s5_sleep_type(read: ReadPhys<'_>, dsdt: u64) -> Option<u8> {
    let len = checked_table(read, dsdt, b"DSDT")?.min(64 * 1024);
    // Scan the AML in chunks (with an overlap) for "_S5_" followed by PackageOp.
    const CHUNK: usize = 512;
    let mut chunk = [0u8; CHUNK + 16];
    let mut offset = 36;
    while offset < len {
        let n = (CHUNK + 16).min(len - offset);
        // No overflow: the checksum walk above read the whole table.
        if !read(dsdt + offset as u64, &mut chunk[..n]) {
            return None;
        }
        if let Some(typ) = find_s5_in(&chunk[..n]) {
            return Some(typ);
        }
        offset += CHUNK;
    }
    None
}

fn find_s5_in(aml: &[u8]) -> Option<u8> {
    let at = aml.windows(4).position(|w| w == b"_S5_")?;
    let rest = &aml[at + 4..];
    if rest.first() != Some(&0x12) {
        return None; // not PackageOp
    }
    // PkgLength: the top two bits of the lead byte count the extra bytes.
    let lead = *rest.get(1)?;
    let pkg_len_bytes = 1 + usize::from(lead >> 6);
    let elements = rest.get(1 + pkg_len_bytes + 1..)?; // skip NumElements
    match *elements.first()? {
        0x0a => elements.get(1).copied(), // BytePrefix
        0x00 => Some(0),                  // ZeroOp
        0x01 => Some(1),                  // OneOp
        other if other <= 0x07 => Some(other),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn finish(mut table: Vec<u8>) -> Vec<u8> {
        let len = table.len() as u32;
        table[4..8].copy_from_slice(&len.to_le_bytes());
        let sum = table.iter().fold(0u8, |s, b| s.wrapping_add(*b));
        table[9] = table[9].wrapping_sub(sum);
        table
    }

    fn header(signature: &[u8; 4], len: usize) -> Vec<u8> {
        let mut t = vec![0u8; len];
        t[..4].copy_from_slice(signature);
        t[8] = 2;
        t
    }

    struct Firmware(BTreeMap<u64, Vec<u8>>);

    impl Firmware {
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            for (&base, bytes) in &self.0 {
                if addr >= base && addr + buf.len() as u64 <= base + bytes.len() as u64 {
                    let o = (addr - base) as usize;
                    buf.copy_from_slice(&bytes[o..o + buf.len()]);
                    return true;
                }
            }
            false
        }
    }

    fn firmware(hw_reduced: bool, s5: &[u8]) -> Firmware {
        let mut rsdp = vec![0u8; 36];
        rsdp[..8].copy_from_slice(b"RSD PTR ");
        rsdp[15] = 0; // ACPI 1.0: RSDT
        rsdp[16..20].copy_from_slice(&0x2000u32.to_le_bytes());
        let sum = rsdp[..20].iter().fold(0u8, |s, b| s.wrapping_add(*b));
        rsdp[8] = rsdp[8].wrapping_sub(sum);

        let mut rsdt = header(b"RSDT", 36);
        rsdt.extend_from_slice(&0x3000u32.to_le_bytes());
        let mut fadt = header(b"FACP", 276);
        fadt[40..44].copy_from_slice(&0x4000u32.to_le_bytes());
        fadt[64..68].copy_from_slice(&0x604u32.to_le_bytes());
        if hw_reduced {
            fadt[112..116].copy_from_slice(&HW_REDUCED_ACPI.to_le_bytes());
            fadt[244] = 1; // I/O space
            fadt[248..256].copy_from_slice(&0x404u64.to_le_bytes());
        }
        let mut dsdt = header(b"DSDT", 36);
        dsdt.extend_from_slice(&[0x10, 0x20, b'\\', b'_', b'S', b'B']);
        dsdt.extend_from_slice(&[0x08]);
        dsdt.extend_from_slice(b"_S5_");
        dsdt.extend_from_slice(s5);
        Firmware(BTreeMap::from([(0xf0000, rsdp), (0x2000, finish(rsdt)), (0x3000, finish(fadt)), (0x4000, finish(dsdt))]))
    }

    #[test]
    fn legacy_fadt_uses_pm1a_with_s5_type() {
        let fw = firmware(false, &[0x12, 0x06, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00]);
        let off = find_power_off(0xf0000, &|a, b| fw.read(a, b));
        assert_eq!(off, Some(PowerOff::Pm1aControl { port: 0x604, value: (5 << 10) | SLP_EN_PM1 }));
    }

    #[test]
    fn zero_op_sleep_type() {
        let fw = firmware(false, &[0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00]);
        let off = find_power_off(0xf0000, &|a, b| fw.read(a, b));
        assert_eq!(off, Some(PowerOff::Pm1aControl { port: 0x604, value: SLP_EN_PM1 }));
    }

    #[test]
    fn hardware_reduced_fadt_uses_sleep_control() {
        let fw = firmware(true, &[0x12, 0x06, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00]);
        let off = find_power_off(0xf0000, &|a, b| fw.read(a, b));
        assert_eq!(off, Some(PowerOff::SleepControlPort { port: 0x404, value: (5 << 2) | SLP_EN_SLEEP_CONTROL }));
    }

    #[test]
    fn broken_tables_give_none() {
        let mut fw = firmware(false, &[0x12, 0x06, 0x04, 0x0a, 0x05]);
        assert_eq!(find_power_off(0x1234, &|a, b| fw.read(a, b)), None);
        fw.0.get_mut(&0x3000).unwrap()[20] ^= 0xff; // FADT checksum
        assert_eq!(find_power_off(0xf0000, &|a, b| fw.read(a, b)), None);
        let fw = firmware(false, &[0x13]); // no package after _S5_
        assert_eq!(find_power_off(0xf0000, &|a, b| fw.read(a, b)), None);
    }

    #[test]
    fn corrupted_tables_never_panic() {
        let mut state = 0x1234_5678_9abc_def1u64;
        for _ in 0..3_000 {
            let mut fw = firmware(state % 2 == 0, &[0x12, 0x06, 0x04, 0x0a, 0x05, 0x00]);
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let tables: Vec<u64> = fw.0.keys().copied().collect();
                let table = fw.0.get_mut(&tables[(state % tables.len() as u64) as usize]).unwrap();
                let at = (state >> 8) as usize % table.len();
                table[at] = (state >> 32) as u8;
                if table[..4] != *b"RSD " && state % 4 != 0 {
                    // Usually keep the checksum right, so parsing goes past the check.
                    table[9] = 0;
                    let sum = table.iter().fold(0u8, |s, b| s.wrapping_add(*b));
                    table[9] = 0u8.wrapping_sub(sum);
                }
            }
            let _ = find_power_off(0xf0000, &|a, b| fw.read(a, b));
            let _ = cmos_rtc(0xf0000, &|a, b| fw.read(a, b));
        }
    }

    #[test]
    fn cmos_clock_facts_from_the_fadt() {
        // As QEMU q35: century in CMOS register 0x32, clock present.
        let mut fw = firmware(false, &[0x12, 0x06, 0x04, 0x0a, 0x05]);
        let mut fadt = fw.0[&0x3000].clone();
        fadt[FADT_CENTURY] = 0x32;
        fw.0.insert(0x3000, finish(fadt.clone()));
        let read = |a: u64, b: &mut [u8]| fw.read(a, b);
        assert_eq!(cmos_rtc(0xf0000, &read), Some(CmosRtc { century_register: Some(0x32), absent: false }));
        // As microvm: no century field; a VMM without the clock sets IAPC_BOOT_ARCH bit 5.
        fadt[FADT_CENTURY] = 0;
        fadt[FADT_IAPC_BOOT_ARCH] = 0x20;
        let mut fw = firmware(false, &[0x12, 0x06, 0x04, 0x0a, 0x05]);
        fw.0.insert(0x3000, finish(fadt));
        let read = |a: u64, b: &mut [u8]| fw.read(a, b);
        assert_eq!(cmos_rtc(0xf0000, &read), Some(CmosRtc { century_register: None, absent: true }));
        // No FADT (or a truncated one): nothing is known.
        fw.0.insert(0x3000, finish(header(b"FACP", 100)));
        let read = |a: u64, b: &mut [u8]| fw.read(a, b);
        assert_eq!(cmos_rtc(0xf0000, &read), None);
        assert_eq!(cmos_rtc(0x1234, &read), None);
    }

    /// Recomputes the checksum of the table at `addr` (after a test changed it).
    fn refresh(fw: &mut Firmware, addr: u64) {
        let mut table = fw.0[&addr].clone();
        table[9] = 0;
        fw.0.insert(addr, finish(table));
    }

    #[test]
    fn tables_with_wrong_checksums_are_not_used() {
        let legacy = [0x12, 0x06, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00];
        // A table found by signature (the FADT here, an MCFG or MADT at boot).
        let mut fw = firmware(false, &legacy);
        assert_eq!(find_table(0xf0000, &|a, b| fw.read(a, b), b"FACP"), Some((0x3000, 276)));
        fw.0.get_mut(&0x3000).unwrap()[200] ^= 0x55;
        assert_eq!(find_table(0xf0000, &|a, b| fw.read(a, b), b"FACP"), None);
        // The DSDT: neither device discovery nor power-off reads a damaged one.
        let mut fw = firmware(false, &legacy);
        assert_eq!(find_dsdt(0xf0000, &|a, b| fw.read(a, b)), Some(0x4000));
        fw.0.get_mut(&0x4000).unwrap()[20] ^= 0x55;
        assert_eq!(find_dsdt(0xf0000, &|a, b| fw.read(a, b)), None);
        assert_eq!(find_power_off(0xf0000, &|a, b| fw.read(a, b)), None);
    }

    #[test]
    fn acpi_2_rsdp_extended_checksum_is_verified() {
        let legacy = [0x12, 0x06, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00];
        let mut fw = firmware(false, &legacy);
        // An XSDT listing the same FADT, and an ACPI 2.0 RSDP pointing at it.
        let mut xsdt = header(b"XSDT", 36);
        xsdt.extend_from_slice(&0x3000u64.to_le_bytes());
        fw.0.insert(0x5000, finish(xsdt));
        let rsdp = fw.0.get_mut(&0xf0000).unwrap();
        rsdp[15] = 2;
        rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
        rsdp[24..32].copy_from_slice(&0x5000u64.to_le_bytes());
        rsdp[8] = 0;
        let sum = rsdp[..20].iter().fold(0u8, |s, b| s.wrapping_add(*b));
        rsdp[8] = 0u8.wrapping_sub(sum);
        let sum = rsdp[..36].iter().fold(0u8, |s, b| s.wrapping_add(*b));
        rsdp[32] = rsdp[32].wrapping_sub(sum);
        assert_eq!(find_table(0xf0000, &|a, b| fw.read(a, b), b"FACP"), Some((0x3000, 276)));
        fw.0.get_mut(&0xf0000).unwrap()[33] ^= 1; // only the extended checksum breaks
        assert_eq!(find_table(0xf0000, &|a, b| fw.read(a, b), b"FACP"), None);
        assert_eq!(find_power_off(0xf0000, &|a, b| fw.read(a, b)), None);
    }

    #[test]
    fn a_dsdt_at_the_top_of_the_address_space_is_refused_not_wrapped() {
        // Firmware whose "memory" reads everywhere (as a VMM's might): the DSDT pointer in the
        // FADT names an address where the table would wrap past 2^64.
        let mut fw = firmware(false, &[0x12, 0x06, 0x04, 0x0a, 0x05]);
        let top = u64::MAX - 0x100;
        let mut fadt = fw.0[&0x3000].clone();
        fadt[140..148].copy_from_slice(&top.to_le_bytes());
        fw.0.insert(0x3000, fadt);
        refresh(&mut fw, 0x3000);
        let dsdt = finish(header(b"DSDT", 0x1000));
        let read = |addr: u64, buf: &mut [u8]| {
            if addr == top {
                buf.copy_from_slice(&dsdt[..buf.len()]);
                return true;
            }
            if addr > top {
                buf.fill(0);
                return true;
            }
            fw.read(addr, buf)
        };
        assert_eq!(find_dsdt(0xf0000, &read), None);
        assert_eq!(find_power_off(0xf0000, &read), None);
    }

    #[test]
    fn truncated_fadt_gives_none_not_a_panic() {
        let mut fw = firmware(false, &[0x12, 0x06, 0x04, 0x0a, 0x05]);
        let short = finish(header(b"FACP", 40));
        fw.0.insert(0x3000, short);
        assert_eq!(find_power_off(0xf0000, &|a, b| fw.read(a, b)), None);
    }
}
