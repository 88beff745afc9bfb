//! What loading a static Linux ELF file means, worked out without touching memory (pure,
//! host-tested): [`plan`] checks the file and returns a [`LoadPlan`]: the page runs to map with
//! their protections, the bytes to copy, the entry point and the program header table's
//! address for `AT_PHDR`. `load.rs` carries it out with the platform's program pages.
//!
//! Accepted: 64-bit little-endian `ET_EXEC` (non-PIE, at its linked addresses) and `ET_DYN`
//! without `PT_INTERP` (static-PIE, moved to [`PIE_BASE`]; it relocates itself), for the
//! image's machine. Refused with an [`ElfError`]: anything the `elf` crate cannot parse
//! (corrupt or truncated headers), another machine or class, a `PT_INTERP` (a dynamically
//! linked program needs a dynamic loader libos does not have), segments that reach past the end
//! of the file, overlap in a way that would need a page both writable and executable (W^X), or
//! exceed [`MAX_IMAGE`]. [`check_reserved`] then refuses a plan whose pages would cover the
//! kernel image, low firmware memory or a device window (the platform's
//! `hal::Platform::reserved_regions`): mapping a program page there would replace the
//! kernel's view of a device (or fail half-way), so such a file is not an executable for this
//! machine.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use elf::ElfBytes;
use elf::abi::{ET_DYN, ET_EXEC, PF_R, PF_W, PF_X, PT_INTERP, PT_LOAD, PT_PHDR};
use elf::endian::LittleEndian;
use elf::file::Class;
pub use libos::hal::{MemoryRegion, Protection};

/// Where a static-PIE program's lowest segment is placed: far above RAM and device addresses
/// on both architectures (64 TiB, inside the 47-bit half of x86_64's canonical addresses).
pub const PIE_BASE: u64 = 0x4000_0000_0000;
/// The most memory a program's segments may span (a corrupt `p_memsz` must not exhaust RAM).
pub const MAX_IMAGE: u64 = 1 << 30;
const PAGE: u64 = 4096;

/// The ELF machine of the image's architecture.
#[cfg(target_arch = "aarch64")]
pub const NATIVE_MACHINE: u16 = elf::abi::EM_AARCH64;
/// The ELF machine of the image's architecture.
#[cfg(not(target_arch = "aarch64"))]
pub const NATIVE_MACHINE: u16 = elf::abi::EM_X86_64;

/// A machine's name for messages.
fn machine_name(machine: u16) -> String {
    match machine {
        elf::abi::EM_X86_64 => String::from("x86_64"),
        elf::abi::EM_AARCH64 => String::from("aarch64"),
        elf::abi::EM_386 => String::from("i386"),
        elf::abi::EM_ARM => String::from("arm"),
        elf::abi::EM_RISCV => String::from("riscv"),
        other => alloc::format!("e_machine {other}"),
    }
}

/// Why a file cannot be loaded.
#[derive(Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Not an ELF file, or its headers are corrupt or truncated (the parser's words).
    Malformed(String),
    /// A 32-bit or big-endian file.
    WrongClass,
    /// Built for another machine (`e_machine`).
    WrongMachine(u16),
    /// Not an executable (`e_type`: a relocatable object, a core file...).
    NotExecutable(u16),
    /// Dynamically linked: it names a program interpreter.
    Dynamic,
    /// No `PT_LOAD` segment, or a segment whose numbers do not add up (the reason).
    BadSegment(&'static str),
    /// A page would need to be writable and executable.
    WriteAndExecute(u64),
    /// The segments span more than [`MAX_IMAGE`].
    TooLarge(u64),
    /// A page would lie in memory the platform keeps for itself (the page, what is there).
    Reserved(u64, &'static str),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::Malformed(why) => write!(f, "not a valid ELF file ({why})"),
            ElfError::WrongClass => write!(f, "not a 64-bit little-endian ELF file"),
            ElfError::WrongMachine(m) => {
                write!(f, "built for another machine ({}, this image runs {})", machine_name(*m), machine_name(NATIVE_MACHINE))
            }
            ElfError::NotExecutable(t) => write!(f, "not an executable (e_type {t})"),
            ElfError::Dynamic => write!(f, "dynamically linked (it has PT_INTERP); only static programs can run"),
            ElfError::BadSegment(why) => write!(f, "bad program header: {why}"),
            ElfError::WriteAndExecute(page) => write!(f, "page {page:#x} would be writable and executable"),
            ElfError::TooLarge(span) => write!(f, "segments span {span} bytes (at most {MAX_IMAGE})"),
            ElfError::Reserved(page, what) => write!(f, "page {page:#x} would overlap {what}"),
        }
    }
}

/// Pages `[start, end)` mapped with one protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRun {
    /// First page (relocated).
    pub start: u64,
    /// End (page aligned).
    pub end: u64,
    /// Access rights.
    pub protection: Protection,
}

/// File bytes `[offset, offset + len)` copied to `addr` (relocated); the rest of each segment
/// stays zero (`.bss`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Copy {
    /// Destination address.
    pub addr: u64,
    /// File offset.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
}

/// How to load one file.
#[derive(Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// Added to every address of the file (0 for non-PIE).
    pub bias: u64,
    /// The entry point (relocated): `AT_ENTRY` and the first instruction.
    pub entry: u64,
    /// The loaded program header table (relocated): `AT_PHDR`.
    pub phdr: u64,
    /// `AT_PHNUM`.
    pub phnum: u64,
    /// `AT_PHENT`.
    pub phent: u64,
    /// Pages to map, sorted, not overlapping.
    pub runs: Vec<PageRun>,
    /// Bytes to copy into them.
    pub copies: Vec<Copy>,
    /// True for a static-PIE file (`ET_DYN`).
    pub pie: bool,
}

/// The page ranges the segments `spans` (`[start, end)` page-aligned, flags) cover, cut where
/// any segment starts or ends, each with the union of the flags of the segments over it:
/// sorted, disjoint, empty pieces left out. A sweep over the segment ends, so the work grows
/// with the number of segments, not with the pages they span (a file of many overlapping
/// 1 GiB segments would otherwise keep the kernel busy for minutes).
fn pieces(spans: &[(u64, u64, u32)]) -> Vec<(u64, u64, u32)> {
    let mut bounds: Vec<u64> = spans.iter().flat_map(|&(start, end, _)| [start, end]).collect();
    bounds.sort_unstable();
    bounds.dedup();
    // Per bound: how many segments with each flag (R, W, X) and in all start (+) or end (-) there.
    let mut delta = alloc::vec![[0i64; 4]; bounds.len()];
    for &(start, end, flags) in spans {
        let (a, b) = (bounds.partition_point(|&x| x < start), bounds.partition_point(|&x| x < end));
        for (bit, flag) in [PF_R, PF_W, PF_X].into_iter().enumerate() {
            if flags & flag != 0 {
                delta[a][bit] += 1;
                delta[b][bit] -= 1;
            }
        }
        delta[a][3] += 1;
        delta[b][3] -= 1;
    }
    let mut live = [0i64; 4];
    let mut pieces = Vec::new();
    for (i, window) in bounds.windows(2).enumerate() {
        for (count, d) in live.iter_mut().zip(delta[i]) {
            *count += d;
        }
        if live[3] > 0 {
            let flags = [PF_R, PF_W, PF_X].into_iter().zip(live).filter(|&(_, n)| n > 0).fold(0, |f, (flag, _)| f | flag);
            pieces.push((window[0], window[1], flags));
        }
    }
    pieces
}

/// Checks `file` for `machine` and plans its loading.
pub fn plan(file: &[u8], machine: u16) -> Result<LoadPlan, ElfError> {
    let parsed = ElfBytes::<LittleEndian>::minimal_parse(file).map_err(|e| ElfError::Malformed(alloc::format!("{e}")))?;
    let header = &parsed.ehdr;
    if header.class != Class::ELF64 {
        return Err(ElfError::WrongClass);
    }
    if header.e_machine != machine {
        return Err(ElfError::WrongMachine(header.e_machine));
    }
    let pie = match header.e_type {
        ET_EXEC => false,
        ET_DYN => true,
        other => return Err(ElfError::NotExecutable(other)),
    };
    let segments: Vec<_> = parsed.segments().map(|table| table.iter().collect()).unwrap_or_default();
    if segments.iter().any(|s| s.p_type == PT_INTERP) {
        return Err(ElfError::Dynamic);
    }
    let loads: Vec<_> = segments.iter().filter(|s| s.p_type == PT_LOAD && s.p_memsz > 0).collect();
    let first = loads.iter().map(|s| s.p_vaddr).min().ok_or(ElfError::BadSegment("no loadable segment"))? & !(PAGE - 1);
    let bias = if pie { PIE_BASE.wrapping_sub(first) } else { 0 };

    let mut spans: Vec<(u64, u64, u32)> = Vec::with_capacity(loads.len());
    let mut copies = Vec::new();
    let mut last = first;
    for s in &loads {
        if s.p_filesz > s.p_memsz {
            return Err(ElfError::BadSegment("p_filesz exceeds p_memsz"));
        }
        if s.p_offset.checked_add(s.p_filesz).is_none_or(|end| end > file.len() as u64) {
            return Err(ElfError::BadSegment("a segment reaches past the end of the file"));
        }
        let end = s.p_vaddr.checked_add(s.p_memsz).ok_or(ElfError::BadSegment("a segment wraps around"))?;
        let end_page = end.checked_add(PAGE - 1).ok_or(ElfError::BadSegment("a segment wraps around"))? & !(PAGE - 1);
        last = last.max(end_page);
        if last - first > MAX_IMAGE {
            return Err(ElfError::TooLarge(last - first));
        }
        spans.push((s.p_vaddr & !(PAGE - 1), end_page, s.p_flags));
        if s.p_filesz > 0 {
            copies.push(Copy { addr: s.p_vaddr.wrapping_add(bias), offset: s.p_offset, len: s.p_filesz });
        }
    }
    let pieces = pieces(&spans);
    if let Some(&(start, ..)) = pieces.iter().find(|(.., flags)| flags & PF_W != 0 && flags & PF_X != 0) {
        return Err(ElfError::WriteAndExecute(start.wrapping_add(bias)));
    }
    let mut runs: Vec<PageRun> = Vec::new();
    for &(page, end, flags) in &pieces {
        let protection = if flags & PF_X != 0 {
            Protection::ReadExecute
        } else if flags & PF_W != 0 {
            Protection::ReadWrite
        } else {
            Protection::Read
        };
        let start = page.wrapping_add(bias);
        // No overflow: the image spans at most MAX_IMAGE from `first`, which the bias moves
        // to PIE_BASE (or leaves where its page-rounded end fit in 64 bits).
        let end = start + (end - page);
        match runs.last_mut() {
            Some(run) if run.end == start && run.protection == protection => run.end = end,
            _ => runs.push(PageRun { start, end, protection }),
        }
    }

    let phnum = u64::from(header.e_phnum);
    let phent = u64::from(header.e_phentsize);
    // AT_PHDR: PT_PHDR when there is one, else the loaded bytes holding the file's table.
    let phdr = match segments.iter().find(|s| s.p_type == PT_PHDR) {
        Some(s) => s.p_vaddr,
        None => loads
            .iter()
            .find(|s| {
                let table_end = header.e_phoff.checked_add(phnum * phent);
                s.p_offset <= header.e_phoff && table_end.is_some_and(|end| end <= s.p_offset + s.p_filesz)
            })
            .map(|s| s.p_vaddr + (header.e_phoff - s.p_offset))
            .ok_or(ElfError::BadSegment("the program header table is not in a loaded segment"))?,
    };
    let entry_piece = pieces.iter().find(|(start, end, _)| (*start..*end).contains(&header.e_entry));
    match entry_piece {
        None => return Err(ElfError::BadSegment("the entry point is not in a loaded segment")),
        Some((.., flags)) if flags & PF_X == 0 => {
            return Err(ElfError::BadSegment("the entry point is not in an executable segment"));
        }
        Some(_) => {}
    }
    Ok(LoadPlan {
        bias,
        entry: header.e_entry.wrapping_add(bias),
        phdr: phdr.wrapping_add(bias),
        phnum,
        phent,
        runs,
        copies,
        pie,
    })
}

/// Refuses `plan` when one of its page runs overlaps one of `reserved` (each a region and
/// what it holds, from `hal::Platform::reserved_regions`): [`ElfError::Reserved`] with the
/// first page of the run that overlaps.
pub fn check_reserved(plan: &LoadPlan, reserved: &[(MemoryRegion, &'static str)]) -> Result<(), ElfError> {
    for run in &plan.runs {
        if let Some((region, what)) = reserved.iter().find(|(r, _)| !r.is_empty() && r.start < run.end && run.start < r.end) {
            return Err(ElfError::Reserved(run.start.max(region.start & !(PAGE - 1)), what));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use elf::abi::{EM_AARCH64, EM_X86_64};

    /// A minimal ELF64 file: header, `phdrs` right after it, `size` bytes long.
    fn file(e_type: u16, machine: u16, entry: u64, phdrs: &[[u64; 7]], size: usize) -> Vec<u8> {
        let mut f = vec![0u8; size];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2; // ELFCLASS64
        f[5] = 1; // little endian
        f[6] = 1; // EV_CURRENT
        f[16..18].copy_from_slice(&e_type.to_le_bytes());
        f[18..20].copy_from_slice(&machine.to_le_bytes());
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[24..32].copy_from_slice(&entry.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        f[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        f[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        f[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        f[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
        for (i, [p_type, flags, offset, vaddr, filesz, memsz, align]) in phdrs.iter().enumerate() {
            let at = 64 + i * 56;
            f[at..at + 4].copy_from_slice(&(*p_type as u32).to_le_bytes());
            f[at + 4..at + 8].copy_from_slice(&(*flags as u32).to_le_bytes());
            for (j, v) in [offset, vaddr, vaddr, filesz, memsz, align].iter().enumerate() {
                f[at + 8 + j * 8..at + 16 + j * 8].copy_from_slice(&v.to_le_bytes());
            }
        }
        f
    }

    const R: u64 = 4;
    const RX: u64 = 5;
    const RW: u64 = 6;
    const LOAD: u64 = PT_LOAD as u64;

    /// The usual layout of a static binary: R headers, RX text, RW data + bss.
    fn program(e_type: u16, base: u64) -> Vec<u8> {
        file(
            e_type,
            EM_X86_64,
            base + 0x1010,
            &[
                [LOAD, R, 0, base, 0x200, 0x200, 0x1000],
                [LOAD, RX, 0x1000, base + 0x1000, 0x100, 0x100, 0x1000],
                [LOAD, RW, 0x2000, base + 0x3000, 0x80, 0x2100, 0x1000],
            ],
            0x2080,
        )
    }

    #[test]
    fn non_pie_loads_at_its_addresses_with_segment_permissions() {
        let plan = plan(&program(ET_EXEC, 0x40_0000), EM_X86_64).unwrap();
        assert_eq!(plan.bias, 0);
        assert!(!plan.pie);
        assert_eq!(plan.entry, 0x40_1010);
        assert_eq!(plan.phdr, 0x40_0040);
        assert_eq!((plan.phnum, plan.phent), (3, 56));
        assert_eq!(
            plan.runs,
            vec![
                PageRun { start: 0x40_0000, end: 0x40_1000, protection: Protection::Read },
                PageRun { start: 0x40_1000, end: 0x40_2000, protection: Protection::ReadExecute },
                PageRun { start: 0x40_3000, end: 0x40_6000, protection: Protection::ReadWrite },
            ]
        );
        assert_eq!(plan.copies[2], Copy { addr: 0x40_3000, offset: 0x2000, len: 0x80 });
    }

    #[test]
    fn static_pie_moves_to_the_pie_base() {
        let plan = plan(&program(ET_DYN, 0), EM_X86_64).unwrap();
        assert!(plan.pie);
        assert_eq!(plan.bias, PIE_BASE);
        assert_eq!(plan.entry, PIE_BASE + 0x1010);
        assert_eq!(plan.phdr, PIE_BASE + 0x40);
        assert_eq!(plan.runs[0].start, PIE_BASE);
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let good = program(ET_EXEC, 0x40_0000);
        assert!(matches!(plan(b"#!/bin/sh\n", EM_X86_64), Err(ElfError::Malformed(_))));
        assert!(matches!(plan(&good[..40], EM_X86_64), Err(ElfError::Malformed(_))));
        // Headers intact, segment data cut off.
        assert_eq!(plan(&good[..0x1800], EM_X86_64), Err(ElfError::BadSegment("a segment reaches past the end of the file")));
        assert_eq!(plan(&good, EM_AARCH64), Err(ElfError::WrongMachine(EM_X86_64)));
        let mut class32 = good.clone();
        class32[4] = 1;
        assert!(plan(&class32, EM_X86_64).is_err());
        assert_eq!(plan(&program(1, 0x40_0000), EM_X86_64), Err(ElfError::NotExecutable(1)));
        let interp = file(ET_EXEC, EM_X86_64, 0x40_1000, &[[u64::from(PT_INTERP), R, 0x200, 0x40_0200, 0x1c, 0x1c, 1], [LOAD, RX, 0, 0x40_0000, 0x1000, 0x1000, 0x1000]], 0x1000);
        assert_eq!(plan(&interp, EM_X86_64), Err(ElfError::Dynamic));
        let wx = file(ET_EXEC, EM_X86_64, 0x40_0100, &[[LOAD, RX, 0, 0x40_0000, 0x800, 0x800, 0x1000], [LOAD, RW, 0x800, 0x40_0800, 0x100, 0x100, 0x1000]], 0x1000);
        assert_eq!(plan(&wx, EM_X86_64), Err(ElfError::WriteAndExecute(0x40_0000)));
        let huge = file(ET_EXEC, EM_X86_64, 0x40_0100, &[[LOAD, RX, 0, 0x40_0000, 0x800, 1 << 40, 0x1000]], 0x1000);
        assert!(matches!(plan(&huge, EM_X86_64), Err(ElfError::TooLarge(_))));
        let wrap = file(ET_EXEC, EM_X86_64, 0x40_0100, &[[LOAD, RX, 0, u64::MAX - 0x10, 0x8, 0x100, 0x1000]], 0x1000);
        assert!(matches!(plan(&wrap, EM_X86_64), Err(ElfError::BadSegment(_))));
        let none = file(ET_EXEC, EM_X86_64, 0x40_0100, &[], 0x100);
        assert_eq!(plan(&none, EM_X86_64), Err(ElfError::BadSegment("no loadable segment")));
        let entry_outside = file(ET_EXEC, EM_X86_64, 0x50_0000, &[[LOAD, RX, 0, 0x40_0000, 0x800, 0x800, 0x1000]], 0x1000);
        assert!(matches!(plan(&entry_outside, EM_X86_64), Err(ElfError::BadSegment(_))));
        let filesz = file(ET_EXEC, EM_X86_64, 0x40_0100, &[[LOAD, RX, 0, 0x40_0000, 0x800, 0x400, 0x1000]], 0x1000);
        assert_eq!(plan(&filesz, EM_X86_64), Err(ElfError::BadSegment("p_filesz exceeds p_memsz")));
    }

    /// Found by the `elf` fuzz target (as a few hundred executions per second): planning
    /// walked every page of every segment, so many overlapping segments of almost MAX_IMAGE
    /// each took minutes (a program file stalling the kernel). 2000 such segments must plan
    /// at once.
    #[test]
    fn many_large_overlapping_segments_plan_quickly() {
        let count = 2000;
        let size = 64 + count * 56;
        let mut phdrs = vec![[LOAD, RX, 0, 0x40_0000, 0x100, 0x100, 0x1000]];
        phdrs.extend((1..count).map(|_| [LOAD, R, 0, 0x40_0000, size as u64, MAX_IMAGE - PAGE, 0x1000]));
        let started = std::time::Instant::now();
        let plan = plan(&file(ET_EXEC, EM_X86_64, 0x40_0010, &phdrs, size), EM_X86_64).unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "planning took {:?}", started.elapsed());
        assert_eq!(
            plan.runs,
            [
                PageRun { start: 0x40_0000, end: 0x40_1000, protection: Protection::ReadExecute },
                PageRun { start: 0x40_1000, end: 0x40_0000 + MAX_IMAGE - PAGE, protection: Protection::Read },
            ]
        );
    }

    #[test]
    fn pages_shared_by_segments_take_the_union_of_their_rights() {
        // R headers and RX text sharing page 0x40_0000; RW data sharing nothing.
        let f = file(ET_EXEC, EM_X86_64, 0x40_0900, &[[LOAD, R, 0, 0x40_0000, 0x800, 0x800, 0x1000], [LOAD, RX, 0x800, 0x40_0800, 0x200, 0x1200, 0x1000], [LOAD, RW, 0x800, 0x40_3000, 0x10, 0x10, 0x1000]], 0x1000);
        let plan = plan(&f, EM_X86_64).unwrap();
        assert_eq!(
            plan.runs,
            [
                PageRun { start: 0x40_0000, end: 0x40_2000, protection: Protection::ReadExecute },
                PageRun { start: 0x40_3000, end: 0x40_4000, protection: Protection::ReadWrite },
            ]
        );
    }

    #[test]
    fn segments_over_the_kernel_or_devices_are_refused() {
        let plan = plan(&program(2, 0x40_0000), EM_X86_64).unwrap();
        let region = |start, end| MemoryRegion { start, end };
        // Beside the program: fine; touching its first or last byte: refused.
        let clear = [(region(0, 0x10_0000), "low memory"), (region(0x100_0000, 0x140_0000), "the kernel image")];
        assert_eq!(check_reserved(&plan, &clear), Ok(()));
        let last = plan.runs.last().unwrap().end;
        let device = [(region(last - 1, last + 0x200), "a virtio-mmio window")];
        assert_eq!(check_reserved(&plan, &device), Err(ElfError::Reserved(last - PAGE, "a virtio-mmio window")));
        let kernel = [(region(0x30_0000, 0x40_1000), "the kernel image")];
        assert_eq!(check_reserved(&plan, &kernel), Err(ElfError::Reserved(0x40_0000, "the kernel image")));
        assert_eq!(check_reserved(&plan, &[(region(0x40_0000, 0x40_0000), "empty")]), Ok(()));
        assert!(check_reserved(&plan, &device).unwrap_err().to_string().contains("virtio-mmio"));
    }
}
