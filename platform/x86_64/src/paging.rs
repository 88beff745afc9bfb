//! The kernel's page tables: one identity map of physical memory with permissions.
//!
//! - page 0 unmapped (null pointers fault), and each stack's guard page unmapped;
//! - kernel text read-only and executable, rodata read-only, data/bss/stacks read-write;
//! - RAM read-write, write-back cached; everything else below 4 GiB (MMIO: local APIC, I/O APIC,
//!   virtio-mmio, PCI windows, firmware tables) read-write and uncached;
//! - nothing executable but the kernel text (NX everywhere else, when the CPU has NX).
//!
//! [`Layout`] says what each address should be (pure). [`build`] turns it into tables, using
//! 2 MiB pages wherever a 2 MiB chunk is uniform and 4 KiB pages elsewhere. It walks intervals
//! between layout boundaries rather than individual chunks, so mapping 4 GiB costs a few
//! thousand instructions at boot. Table memory is abstracted by [`TableMemory`] so host tests
//! build and inspect real tables in a plain buffer.

pub use libos_core::layout::{Layout, MAX_BOUNDARIES, Mapping};
use core::sync::atomic::{Ordering, compiler_fence};
use libos_core::memory::PAGE;

const LARGE_PAGE: u64 = 2 * 1024 * 1024;
const ENTRIES: usize = 512;

/// Entry bits.
pub mod flags {
    /// Present.
    pub const PRESENT: u64 = 1;
    /// Writable.
    pub const WRITABLE: u64 = 1 << 1;
    /// Write-through.
    pub const WRITE_THROUGH: u64 = 1 << 3;
    /// Cache disabled.
    pub const NO_CACHE: u64 = 1 << 4;
    /// 2 MiB page (in a page directory entry).
    pub const HUGE: u64 = 1 << 7;
    /// No execute.
    pub const NO_EXECUTE: u64 = 1 << 63;
    /// Software bit (ignored by the MMU): a 4 KiB entry made non-present as a stack guard page
    /// by [`super::set_guard`], so fault reports can tell a stack overflow.
    pub const GUARD: u64 = 1 << 9;
    /// Software bit: a 4 KiB page mapped to a frame of its own by [`super::program_slot`]'s
    /// caller (a loaded program's page), not part of the identity map.
    pub const PROGRAM: u64 = 1 << 10;
    /// The physical address bits of an entry.
    pub const ADDRESS: u64 = 0x000f_ffff_ffff_f000;
}

/// Leaf entry bits for `mapping` (without the address and the HUGE bit). `nx` is
/// `flags::NO_EXECUTE` when the CPU supports it, else 0.
pub const fn leaf_flags(mapping: Mapping, nx: u64) -> u64 {
    use flags::*;
    match mapping {
        Mapping::Unmapped => 0,
        Mapping::Text => PRESENT,
        Mapping::ReadOnly => PRESENT | nx,
        Mapping::ReadWrite => PRESENT | WRITABLE | nx,
        Mapping::Device => PRESENT | WRITABLE | WRITE_THROUGH | NO_CACHE | nx,
    }
}

/// An upper bound on the tables [`build`] needs for `layout`: the PML4, one PDPT per 512 GiB,
/// one page directory per GiB, and one page table per boundary (only a boundary inside a 2 MiB
/// chunk splits it into small pages).
pub fn max_tables(layout: &Layout<'_>) -> u64 {
    let end = layout.end();
    let mut bounds = [0u64; MAX_BOUNDARIES];
    1 + end.div_ceil(1 << 39) + end.div_ceil(1 << 30) + layout.boundaries(&mut bounds) as u64
}

/// Memory that page tables live in.
pub trait TableMemory {
    /// A zeroed, 4 KiB-aligned frame for a table, or `None` when out of frames.
    fn alloc_table(&mut self) -> Option<u64>;
    /// The table at physical address `table` (a frame from `alloc_table`).
    fn table(&mut self, table: u64) -> &mut [u64; ENTRIES];
}

/// Ran out of frames for page tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfTableFrames;

const TABLE_FLAGS: u64 = flags::PRESENT | flags::WRITABLE;

/// Builds the tables for `layout`; returns the physical address of the PML4.
pub fn build(layout: &Layout<'_>, memory: &mut dyn TableMemory, nx: u64) -> Result<u64, OutOfTableFrames> {
    let root = memory.alloc_table().ok_or(OutOfTableFrames)?;
    let mut bounds = [0u64; MAX_BOUNDARIES];
    let count = layout.boundaries(&mut bounds);
    for pair in bounds[..count].windows(2) {
        let (start, end) = (pair[0], pair[1]);
        let mapping = layout.mapping_at(start);
        if mapping != Mapping::Unmapped {
            map_interval(memory, root, start, end, leaf_flags(mapping, nx))?;
        }
    }
    Ok(root)
}

/// Maps `[start, end)` (page aligned) with `leaf` flags: whole aligned 2 MiB chunks as large
/// pages, the rest as 4 KiB pages. Each run of entries in one table is written in a tight loop.
fn map_interval(memory: &mut dyn TableMemory, root: u64, start: u64, end: u64, leaf: u64) -> Result<(), OutOfTableFrames> {
    let mut addr = start;
    while addr < end {
        if addr % LARGE_PAGE == 0 && addr + LARGE_PAGE <= end {
            // Large pages up to the end of the interval or of this page directory (1 GiB).
            let stop = (end & !(LARGE_PAGE - 1)).min((addr | ((1 << 30) - 1)) + 1);
            let pd = table_for(memory, root, addr, 2)?;
            let table = memory.table(pd);
            while addr < stop {
                table[index(addr, 1)] = addr | leaf | flags::HUGE;
                addr += LARGE_PAGE;
            }
        } else {
            // Small pages up to the end of the interval or of this 2 MiB chunk.
            let stop = end.min((addr | (LARGE_PAGE - 1)) + 1);
            let pt = table_for(memory, root, addr, 3)?;
            let table = memory.table(pt);
            while addr < stop {
                table[index(addr, 0)] = addr | leaf;
                addr += PAGE;
            }
        }
    }
    Ok(())
}

/// The index into the table at `level` (0 = page table ... 3 = PML4) for `addr`.
const fn index(addr: u64, level: u32) -> usize {
    ((addr >> (12 + 9 * level)) & (ENTRIES as u64 - 1)) as usize
}

/// Walks `depth` levels down from the PML4 towards `addr`, creating tables on the way, and
/// returns the table reached (depth 2: the page directory, 3: the page table).
fn table_for(memory: &mut dyn TableMemory, root: u64, addr: u64, depth: u32) -> Result<u64, OutOfTableFrames> {
    let mut table = root;
    for level in (4 - depth..4).rev() {
        let i = index(addr, level);
        let entry = memory.table(table)[i];
        table = if entry & flags::PRESENT != 0 {
            debug_assert!(entry & flags::HUGE == 0, "splitting a large page is not supported");
            entry & flags::ADDRESS
        } else {
            let next = memory.alloc_table().ok_or(OutOfTableFrames)?;
            memory.table(table)[i] = next | TABLE_FLAGS;
            next
        };
    }
    Ok(table)
}

/// Walks the tables for `addr`: the leaf entry's flags (with the address bits cleared) and
/// the page size, or `None` when unmapped.
pub fn translate<M: TableMemory + ?Sized>(memory: &mut M, root: u64, addr: u64) -> Option<(u64, u64)> {
    translate_by(|table, i| memory.table(table)[i], root, addr)
}

/// [`translate`] reading entry `i` of a table through `entry(table, i)`: what a walk that
/// takes no lock uses (volatile reads of the live tables; see `pages::access_end`).
pub fn translate_by(mut entry: impl FnMut(u64, usize) -> u64, root: u64, addr: u64) -> Option<(u64, u64)> {
    let mut table = root;
    for level in (0..4).rev() {
        let entry = entry(table, index(addr, level));
        if entry & flags::PRESENT == 0 {
            return None;
        }
        if level == 0 || entry & flags::HUGE != 0 {
            let size = 1u64 << (12 + 9 * level);
            return Some((entry & !flags::ADDRESS & !flags::HUGE, size));
        }
        table = entry & flags::ADDRESS;
    }
    None
}

/// Makes the page (4 KiB or large) holding `addr` normal, write-back cached memory, keeping
/// its access rights, if it is device memory of the identity map (uncached, not a program
/// page); returns the page's `[start, end)`. Anything else (RAM, a program page, a hole) is
/// [`PageError::Busy`] and stays as it was. The caller flushes the TLB.
pub fn make_normal(memory: &mut dyn TableMemory, root: u64, addr: u64) -> Result<(u64, u64), PageError> {
    let mut table = root;
    for level in (0..4).rev() {
        let i = index(addr, level);
        let entry = memory.table(table)[i];
        if entry & flags::PRESENT == 0 {
            return Err(PageError::Busy);
        }
        if level == 0 || entry & flags::HUGE != 0 {
            if entry & flags::NO_CACHE == 0 || entry & flags::PROGRAM != 0 {
                return Err(PageError::Busy);
            }
            memory.table(table)[i] = entry & !(flags::NO_CACHE | flags::WRITE_THROUGH);
            let size = 1u64 << (12 + 9 * level);
            let start = addr & !(size - 1);
            return Ok((start, start + size));
        }
        table = entry & flags::ADDRESS;
    }
    Err(PageError::Busy)
}

/// Why [`set_guard`] could not change a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardError {
    /// The page is not mapped (or is already a guard page, when guarding).
    NotMapped,
    /// The page is not a guard page (when unguarding).
    NotGuarded,
    /// No frame for the page table that splitting a 2 MiB page needs.
    OutOfTableFrames,
}

/// Makes the 4 KiB page at `addr` a guard page (non-present, marked [`flags::GUARD`]) or maps
/// it again with its old permissions. A 2 MiB page around it is first split into 4 KiB pages
/// with the same permissions. Returns true when it split (the caller must then flush the whole
/// TLB; otherwise invalidating `addr` suffices).
pub fn set_guard(memory: &mut dyn TableMemory, root: u64, addr: u64, guarded: bool) -> Result<bool, GuardError> {
    let mut table = root;
    for level in [3, 2] {
        let entry = memory.table(table)[index(addr, level)];
        if entry & flags::PRESENT == 0 || entry & flags::HUGE != 0 {
            return Err(GuardError::NotMapped);
        }
        table = entry & flags::ADDRESS;
    }
    let pd = table;
    let pd_entry = memory.table(pd)[index(addr, 1)];
    if pd_entry & flags::PRESENT == 0 {
        return Err(GuardError::NotMapped);
    }
    let mut split = false;
    let pt = if pd_entry & flags::HUGE != 0 {
        let base = pd_entry & flags::ADDRESS & !(LARGE_PAGE - 1);
        let leaf = pd_entry & !flags::ADDRESS & !flags::HUGE;
        let pt = memory.alloc_table().ok_or(GuardError::OutOfTableFrames)?;
        let table = memory.table(pt);
        for (i, entry) in table.iter_mut().enumerate() {
            *entry = (base + i as u64 * PAGE) | leaf;
        }
        // The new table is complete before it is linked: walks without the lock see the
        // large page or the whole table (x86 keeps stores in order; this keeps the compiler so).
        compiler_fence(Ordering::Release);
        memory.table(pd)[index(addr, 1)] = pt | TABLE_FLAGS;
        split = true;
        pt
    } else {
        pd_entry & flags::ADDRESS
    };
    let entry = &mut memory.table(pt)[index(addr, 0)];
    if guarded {
        if *entry & flags::PRESENT == 0 {
            return Err(GuardError::NotMapped);
        }
        *entry = (*entry & !flags::PRESENT) | flags::GUARD;
    } else {
        if *entry & flags::GUARD == 0 {
            return Err(GuardError::NotGuarded);
        }
        *entry = (*entry | flags::PRESENT) & !flags::GUARD;
    }
    Ok(split)
}

/// True when `addr` lies in a page made a guard page by [`set_guard`].
pub fn is_guard(memory: &mut dyn TableMemory, root: u64, addr: u64) -> bool {
    let mut table = root;
    for level in [3, 2, 1] {
        let entry = memory.table(table)[index(addr, level)];
        if entry & flags::PRESENT == 0 || entry & flags::HUGE != 0 {
            return false;
        }
        table = entry & flags::ADDRESS;
    }
    let entry = memory.table(table)[index(addr, 0)];
    entry & flags::PRESENT == 0 && entry & flags::GUARD != 0
}

/// Why a program page could not be mapped or changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageError {
    /// The address is identity-mapped kernel memory (RAM, image, a guard page).
    Busy,
    /// The address is already a program page.
    Exists,
    /// The address is not a program page (protect, unmap).
    NotProgram,
    /// No frame for a page table.
    OutOfTableFrames,
}

/// The leaf entry of a program page at physical `frame` with `protection`.
pub fn program_entry(frame: u64, protection: libos_core::hal::Protection, nx: u64) -> u64 {
    use libos_core::hal::Protection;
    let access = match protection {
        Protection::Read => flags::PRESENT | nx,
        Protection::ReadWrite => flags::PRESENT | flags::WRITABLE | nx,
        Protection::ReadExecute => flags::PRESENT,
    };
    (frame & flags::ADDRESS) | access | flags::PROGRAM
}

/// Finds (creating page tables, splitting a 2 MiB page into 4 KiB pages with the same flags)
/// the page-table slot for a new program page at `addr`: returns the table, the index and
/// whether a large page was split (the caller then flushes the whole TLB). Refuses program
/// pages ([`PageError::Exists`]), guard pages and kernel memory ([`PageError::Busy`]); RAM of
/// the identity map is only taken when `allow_ram` (a range the platform keeps for programs).
/// Device mappings and holes are replaced: the caller refuses the image's range and low memory,
/// whose holes (page 0, boot stacks' guard pages) are plain non-present entries.
pub fn program_slot(memory: &mut dyn TableMemory, root: u64, addr: u64, allow_ram: bool) -> Result<(u64, usize, bool), PageError> {
    let mut table = root;
    let mut split = false;
    for level in [3, 2, 1] {
        let i = index(addr, level);
        let entry = memory.table(table)[i];
        table = if entry & flags::PRESENT == 0 {
            let next = memory.alloc_table().ok_or(PageError::OutOfTableFrames)?;
            memory.table(table)[i] = next | TABLE_FLAGS;
            next
        } else if entry & flags::HUGE != 0 {
            if level != 1 {
                return Err(PageError::Busy);
            }
            let base = entry & flags::ADDRESS & !(LARGE_PAGE - 1);
            let leaf = entry & !flags::ADDRESS & !flags::HUGE;
            let pt = memory.alloc_table().ok_or(PageError::OutOfTableFrames)?;
            for (j, e) in memory.table(pt).iter_mut().enumerate() {
                *e = (base + j as u64 * PAGE) | leaf;
            }
            compiler_fence(Ordering::Release); // complete before linked, as in `set_guard`
            memory.table(table)[i] = pt | TABLE_FLAGS;
            split = true;
            pt
        } else {
            entry & flags::ADDRESS
        };
    }
    let i = index(addr, 0);
    let entry = memory.table(table)[i];
    if entry & flags::PROGRAM != 0 {
        return Err(PageError::Exists);
    }
    let device = entry & flags::NO_CACHE != 0;
    let ram = entry & flags::PRESENT != 0 && !device;
    if entry & flags::GUARD != 0 || (ram && (!allow_ram || entry & flags::WRITABLE == 0)) {
        return Err(PageError::Busy);
    }
    Ok((table, i, split))
}

/// The slot of the existing program page at `addr`.
pub fn program_page(memory: &mut dyn TableMemory, root: u64, addr: u64) -> Result<(u64, usize), PageError> {
    let mut table = root;
    for level in [3, 2, 1] {
        let entry = memory.table(table)[index(addr, level)];
        if entry & flags::PRESENT == 0 || entry & flags::HUGE != 0 {
            return Err(PageError::NotProgram);
        }
        table = entry & flags::ADDRESS;
    }
    let i = index(addr, 0);
    if memory.table(table)[i] & flags::PROGRAM == 0 {
        return Err(PageError::NotProgram);
    }
    Ok((table, i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use libos_core::hal::MemoryRegion;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct FakeTables {
        tables: BTreeMap<u64, [u64; ENTRIES]>,
        next: u64,
        limit: usize,
    }

    impl TableMemory for FakeTables {
        fn alloc_table(&mut self) -> Option<u64> {
            if self.tables.len() == self.limit {
                return None;
            }
            self.next += PAGE;
            self.tables.insert(self.next, [0; ENTRIES]);
            Some(self.next)
        }
        fn table(&mut self, table: u64) -> &mut [u64; ENTRIES] {
            self.tables.get_mut(&table).unwrap()
        }
    }

    const NX: u64 = flags::NO_EXECUTE;
    const RAM: [MemoryRegion; 2] =
        [MemoryRegion { start: 0, end: 0x9f000 }, MemoryRegion { start: 0x100000, end: 0x800_0000 }];
    const GUARDS: [u64; 2] = [0x120000, 0x131000];

    fn layout() -> Layout<'static> {
        Layout {
            text: 0x100000..0x110000,
            rodata: 0x110000..0x118000,
            data: 0x118000..0x140000,
            guards: &GUARDS,
            ram: &RAM,
            prefetchable: None,
            device_limit: 1 << 32,
        }
    }

    fn built() -> (FakeTables, u64) {
        let mut mem = FakeTables { limit: 64, ..Default::default() };
        let root = build(&layout(), &mut mem, NX).unwrap();
        (mem, root)
    }

    fn flags_at(mem: &mut FakeTables, root: u64, addr: u64) -> Option<u64> {
        translate(mem, root, addr).map(|(f, _)| f)
    }

    #[test]
    fn null_page_and_guards_are_unmapped() {
        let (mut mem, root) = built();
        assert_eq!(flags_at(&mut mem, root, 0), None);
        assert_eq!(flags_at(&mut mem, root, 0xfff), None);
        assert_eq!(flags_at(&mut mem, root, 0x120000), None);
        assert_eq!(flags_at(&mut mem, root, 0x131fff), None);
        assert!(flags_at(&mut mem, root, 0x121000).is_some());
    }

    #[test]
    fn image_sections_get_their_permissions() {
        use flags::*;
        let (mut mem, root) = built();
        assert_eq!(flags_at(&mut mem, root, 0x100000), Some(PRESENT));
        assert_eq!(flags_at(&mut mem, root, 0x110000), Some(PRESENT | NX));
        assert_eq!(flags_at(&mut mem, root, 0x118000), Some(PRESENT | WRITABLE | NX));
        assert_eq!(flags_at(&mut mem, root, 0x200000), Some(PRESENT | WRITABLE | NX));
    }

    #[test]
    fn devices_are_uncached_and_nothing_past_4gib_but_ram() {
        use flags::*;
        let (mut mem, root) = built();
        let device = PRESENT | WRITABLE | WRITE_THROUGH | NO_CACHE | NX;
        assert_eq!(flags_at(&mut mem, root, 0xfee0_0000), Some(device));
        assert_eq!(flags_at(&mut mem, root, 0xa0000), Some(device));
        assert_eq!(flags_at(&mut mem, root, 1 << 32), None);
        assert_eq!(flags_at(&mut mem, root, 0x7fff_0000_0000), None);
    }

    #[test]
    fn uniform_chunks_use_large_pages() {
        let (mut mem, root) = built();
        assert_eq!(translate(&mut mem, root, 0x400000).unwrap().1, LARGE_PAGE);
        assert_eq!(translate(&mut mem, root, 0xfee0_0000).unwrap().1, LARGE_PAGE);
        assert_eq!(translate(&mut mem, root, 0x100000).unwrap().1, PAGE);
        // 4 GiB mapped in 2 MiB pages needs few tables.
        assert!(mem.tables.len() <= 10, "{} tables", mem.tables.len());
    }

    #[test]
    fn every_page_matches_the_layout() {
        let (mut mem, root) = built();
        let layout = layout();
        for addr in (0..0x400000).step_by(PAGE as usize) {
            let expected = leaf_flags(layout.mapping_at(addr), NX);
            let actual = flags_at(&mut mem, root, addr).unwrap_or(0);
            assert_eq!(actual, expected, "at {addr:#x}");
        }
    }

    #[test]
    fn max_tables_bounds_what_build_uses() {
        for ram_end in [0x20_0000u64, 0x80_0000, 0x1_4000_0000, 0x10_0000_0000] {
            let ram = [MemoryRegion { start: 0x100000, end: ram_end }];
            let layout = Layout { ram: &ram, ..layout() };
            let mut mem = FakeTables { limit: 10_000, ..Default::default() };
            build(&layout, &mut mem, NX).unwrap();
            assert!(mem.tables.len() as u64 <= max_tables(&layout), "RAM to {ram_end:#x}");
        }
    }

    #[test]
    fn running_out_of_frames_is_an_error() {
        let mut mem = FakeTables { limit: 3, ..Default::default() };
        assert_eq!(build(&layout(), &mut mem, NX), Err(OutOfTableFrames));
    }

    #[test]
    fn device_pages_become_normal_memory_and_nothing_else_changes() {
        let (mut mem, root) = built();
        let device = 0xc000_0000;
        let before = flags_at(&mut mem, root, device).unwrap();
        assert_ne!(before & flags::NO_CACHE, 0);
        let (start, end) = make_normal(&mut mem, root, device + PAGE).unwrap();
        assert_eq!((start, end), (device, device + LARGE_PAGE), "the whole 2 MiB page");
        let after = flags_at(&mut mem, root, device).unwrap();
        assert_eq!(after, before & !(flags::NO_CACHE | flags::WRITE_THROUGH), "cached, the rights kept");
        assert_eq!(make_normal(&mut mem, root, device), Err(PageError::Busy), "already normal");
        assert_eq!(make_normal(&mut mem, root, 16 * 1024 * 1024), Err(PageError::Busy), "RAM is refused");
        assert_eq!(make_normal(&mut mem, root, 0), Err(PageError::Busy), "page 0 is a hole");
        let next = flags_at(&mut mem, root, device + LARGE_PAGE).unwrap();
        assert_ne!(next & flags::NO_CACHE, 0, "the next page stays device memory");
    }

    #[test]
    fn guard_pages_split_large_pages_and_restore_permissions() {
        let (mut mem, root) = built();
        let addr = 0x40_3000; // inside a 2 MiB RAM page
        assert_eq!(translate(&mut mem, root, addr).unwrap().1, LARGE_PAGE);
        let before = flags_at(&mut mem, root, addr);
        assert_eq!(set_guard(&mut mem, root, addr, true), Ok(true));
        assert_eq!(flags_at(&mut mem, root, addr), None);
        assert!(is_guard(&mut mem, root, addr + 0xfff));
        // The rest of the former large page keeps its mapping, now in 4 KiB pages.
        assert_eq!(translate(&mut mem, root, addr + PAGE), Some((before.unwrap(), PAGE)));
        assert_eq!(flags_at(&mut mem, root, addr - PAGE), before);
        assert_eq!(set_guard(&mut mem, root, addr, true), Err(GuardError::NotMapped));
        // A second guard in the same 2 MiB needs no split.
        assert_eq!(set_guard(&mut mem, root, addr + 2 * PAGE, true), Ok(false));
        assert_eq!(set_guard(&mut mem, root, addr, false), Ok(false));
        assert_eq!(flags_at(&mut mem, root, addr), before);
        assert!(!is_guard(&mut mem, root, addr));
        assert_eq!(set_guard(&mut mem, root, addr, false), Err(GuardError::NotGuarded));
        assert_eq!(set_guard(&mut mem, root, 1 << 40, true), Err(GuardError::NotMapped));
        assert!(!is_guard(&mut mem, root, 0)); // page 0 is unmapped, but not a guard page
    }

    #[test]
    fn ram_above_4gib_is_mapped() {
        let ram = [MemoryRegion { start: 0x100000, end: 0x1_4000_0000 }];
        let layout = Layout { ram: &ram, ..layout() };
        let mut mem = FakeTables { limit: 64, ..Default::default() };
        let root = build(&layout, &mut mem, NX).unwrap();
        assert!(flags_at(&mut mem, root, 0x1_3fff_f000).is_some());
        assert_eq!(flags_at(&mut mem, root, 0x1_4000_0000), None);
    }

    #[test]
    fn program_pages_replace_devices_and_reserved_ram_but_not_kernel_memory() {
        use libos_core::hal::Protection;
        let (mut mem, root) = built();
        // Unmapped (above 4 GiB): tables are created.
        let (table, i, split) = program_slot(&mut mem, root, 0x4000_0000_0000, false).unwrap();
        assert!(!split);
        mem.table(table)[i] = program_entry(0x55_5000, Protection::ReadExecute, NX);
        assert_eq!(flags_at(&mut mem, root, 0x4000_0000_0000), Some(flags::PRESENT | flags::PROGRAM));
        assert_eq!(program_slot(&mut mem, root, 0x4000_0000_0000, true), Err(PageError::Exists));
        assert_eq!(program_page(&mut mem, root, 0x4000_0000_0000), Ok((table, i)));
        // RAM in a 2 MiB page: only when allowed, then split.
        assert_eq!(program_slot(&mut mem, root, 0x40_0000, false).map(|_| ()), Err(PageError::Busy));
        let (_, _, split) = program_slot(&mut mem, root, 0x60_0000, true).unwrap();
        assert!(split);
        // Kernel text, run-time guard pages: never (boot-time guard pages and page 0 are plain
        // holes: the live caller refuses the image's range and low memory). Devices: yes.
        assert_eq!(program_slot(&mut mem, root, 0x100000, true).map(|_| ()), Err(PageError::Busy));
        set_guard(&mut mem, root, 0x80_0000, true).unwrap();
        assert_eq!(program_slot(&mut mem, root, 0x80_0000, true).map(|_| ()), Err(PageError::Busy));
        assert!(program_slot(&mut mem, root, 0xfee0_0000, false).is_ok());
        assert_eq!(program_page(&mut mem, root, 0x60_0000), Err(PageError::NotProgram));
        // W^X in the entries.
        let rw = program_entry(0x1000, Protection::ReadWrite, NX);
        assert!(rw & flags::WRITABLE != 0 && rw & NX != 0);
        let r = program_entry(0x1000, Protection::Read, NX);
        assert!(r & flags::WRITABLE == 0 && r & NX != 0);
    }
}
