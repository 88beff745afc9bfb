//! The kernel's translation tables: one identity map of physical memory with permissions, the
//! same policy as on x86_64.
//!
//! - page 0 unmapped (null pointers fault), and each stack's guard page unmapped;
//! - kernel text read-only and executable, rodata read-only, data/bss/stacks read-write;
//! - RAM read-write Normal write-back memory; everything else below the highest device address
//!   the DTB names (GIC, UART, virtio-mmio, PCIe windows) read-write Device-nGnRE;
//! - nothing executable but the kernel text (PXN and UXN everywhere else).
//!
//! 4 KiB granule, 48-bit addresses, four levels (0-3). [`Layout`] says what each address should
//! be (pure). [`build`] turns it into tables with the largest blocks that fit: 1 GiB blocks at
//! level 1, 2 MiB blocks at level 2, 4 KiB pages at level 3. It walks intervals between layout
//! boundaries, so mapping a terabyte of PCIe window costs a few thousand instructions. Table
//! memory is abstracted by [`TableMemory`] so host tests build and inspect real tables in a
//! plain buffer. MAIR_EL1 is set by src/boot.s: index 0 Normal WB, index 1 Device-nGnRE.

pub use libos_core::layout::{ADDRESS_LIMIT, Layout, MAX_BOUNDARIES, Mapping};

const ENTRIES: usize = 512;

/// Descriptor bits.
pub mod bits {
    /// Valid.
    pub const VALID: u64 = 1;
    /// Table (levels 0-2) or page (level 3) descriptor; clear in a block descriptor.
    pub const TABLE_OR_PAGE: u64 = 1 << 1;
    /// MAIR index 1: Device-nGnRE.
    pub const ATTR_DEVICE: u64 = 1 << 2;
    /// AP\[2\]: read-only.
    pub const READ_ONLY: u64 = 1 << 7;
    /// Inner shareable.
    pub const INNER_SHAREABLE: u64 = 3 << 8;
    /// Access flag (set, so no access-flag faults).
    pub const ACCESSED: u64 = 1 << 10;
    /// Privileged execute-never.
    pub const PXN: u64 = 1 << 53;
    /// Unprivileged execute-never.
    pub const UXN: u64 = 1 << 54;
    /// The output address bits of a descriptor.
    pub const ADDRESS: u64 = 0x0000_ffff_ffff_f000;
    /// Software bit (ignored by the MMU): a page made invalid as a stack guard page by
    /// [`super::set_guard`], so fault reports can tell a stack overflow.
    pub const GUARD: u64 = 1 << 55;
    /// Software bit: a 4 KiB page with a frame of its own (a loaded program's page, see
    /// [`super::program_slot`]), not part of the identity map.
    pub const PROGRAM: u64 = 1 << 56;
}

/// Descriptor attribute bits (without the address and the type bits).
pub const fn attributes(mapping: Mapping) -> u64 {
    use bits::*;
    const NORMAL: u64 = ACCESSED | INNER_SHAREABLE;
    match mapping {
        Mapping::Unmapped => 0,
        Mapping::Text => NORMAL | READ_ONLY | UXN,
        Mapping::ReadOnly => NORMAL | READ_ONLY | PXN | UXN,
        Mapping::ReadWrite => NORMAL | PXN | UXN,
        Mapping::Device => ACCESSED | ATTR_DEVICE | PXN | UXN,
    }
}

/// An upper bound on the tables [`build`] needs for `layout`: the level-0 table, one level-1
/// table per 512 GiB, and per boundary at most one level-2 and one level-3 table (a boundary
/// splits at most one 1 GiB block and one 2 MiB block).
pub fn max_tables(layout: &Layout<'_>) -> u64 {
    let end = layout.end();
    let mut bounds = [0u64; MAX_BOUNDARIES];
    1 + end.div_ceil(1 << 39) + 2 * layout.boundaries(&mut bounds) as u64
}

/// Memory that translation tables live in.
pub trait TableMemory {
    /// A zeroed, 4 KiB-aligned frame for a table, or `None` when out of frames.
    fn alloc_table(&mut self) -> Option<u64>;
    /// The table at physical address `table` (a frame from `alloc_table`).
    fn table(&mut self, table: u64) -> &mut [u64; ENTRIES];
    /// Replaces the valid block descriptor `table[index]`, which maps `[start, start + size)`,
    /// with the table descriptor `descriptor` that maps the same addresses the same way. Live
    /// tables must do this break-before-make; returns false when they cannot (the caller then
    /// leaves the block alone). The default is a plain write (tables not yet in use).
    fn replace_block(&mut self, table: u64, index: usize, descriptor: u64, start: u64, size: u64) -> bool {
        let _ = (start, size);
        self.table(table)[index] = descriptor;
        true
    }
}

/// Ran out of frames for tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfTableFrames;

/// The size one entry maps at `level` (0: 512 GiB ... 3: 4 KiB).
const fn entry_size(level: u32) -> u64 {
    1 << (12 + 9 * (3 - level))
}

const fn index(addr: u64, level: u32) -> usize {
    ((addr >> (12 + 9 * (3 - level))) & (ENTRIES as u64 - 1)) as usize
}

/// Builds the tables for `layout`; returns the physical address of the level-0 table.
pub fn build(layout: &Layout<'_>, memory: &mut dyn TableMemory) -> Result<u64, OutOfTableFrames> {
    let root = memory.alloc_table().ok_or(OutOfTableFrames)?;
    let mut bounds = [0u64; MAX_BOUNDARIES];
    let count = layout.boundaries(&mut bounds);
    for pair in bounds[..count].windows(2) {
        let (start, end) = (pair[0], pair[1]);
        let mapping = layout.mapping_at(start);
        if mapping != Mapping::Unmapped {
            map(memory, root, 0, start, end, attributes(mapping))?;
        }
    }
    Ok(root)
}

/// Maps `[start, end)` (page aligned, inside the range of `table` at `level`) with `attributes`,
/// using blocks where they fit (levels 1 and 2) and descending into next-level tables elsewhere.
/// Runs of leaf entries in one table are written in a tight loop.
fn map(memory: &mut dyn TableMemory, table: u64, level: u32, start: u64, end: u64, attributes: u64) -> Result<(), OutOfTableFrames> {
    let size = entry_size(level);
    let leaf = |addr: u64| level == 3 || ((level == 1 || level == 2) && addr % size == 0 && addr + size <= end);
    let leaf_type = if level == 3 { bits::VALID | bits::TABLE_OR_PAGE } else { bits::VALID };
    let mut addr = start;
    while addr < end {
        if leaf(addr) {
            let entries = memory.table(table);
            loop {
                entries[index(addr, level)] = addr | attributes | leaf_type;
                addr += size;
                // Stop at the end, at the end of this table, or where an entry no longer fits.
                if addr >= end || index(addr, level) == 0 || !leaf(addr) {
                    break;
                }
            }
            continue;
        }
        let stop = end.min((addr | (size - 1)).saturating_add(1));
        let i = index(addr, level);
        let entry = memory.table(table)[i];
        let next = if entry & bits::VALID != 0 {
            debug_assert!(entry & bits::TABLE_OR_PAGE != 0, "splitting a block is not supported");
            entry & bits::ADDRESS
        } else {
            let next = memory.alloc_table().ok_or(OutOfTableFrames)?;
            memory.table(table)[i] = next | bits::VALID | bits::TABLE_OR_PAGE;
            next
        };
        map(memory, next, level + 1, addr, stop, attributes)?;
        addr = stop;
    }
    Ok(())
}

/// Walks the tables for `addr`: the leaf descriptor's attributes (address and type bits
/// cleared) and the size it maps, or `None` when unmapped.
pub fn translate<M: TableMemory + ?Sized>(memory: &mut M, root: u64, addr: u64) -> Option<(u64, u64)> {
    let mut table = root;
    for level in 0..4 {
        let entry = memory.table(table)[index(addr, level)];
        if entry & bits::VALID == 0 {
            return None;
        }
        if level == 3 || entry & bits::TABLE_OR_PAGE == 0 {
            return Some((entry & !bits::ADDRESS & !(bits::VALID | bits::TABLE_OR_PAGE), entry_size(level)));
        }
        table = entry & bits::ADDRESS;
    }
    None
}

/// Why [`set_guard`] could not change a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardError {
    /// The page is not mapped (or is already a guard page, when guarding).
    NotMapped,
    /// The page is not a guard page (when unguarding).
    NotGuarded,
    /// No frame for a table that splitting a block needs.
    OutOfTableFrames,
    /// A block could not be split safely (see [`TableMemory::replace_block`]).
    CannotSplit,
}

/// Makes the 4 KiB page at `addr` a guard page (invalid, marked [`bits::GUARD`]) or maps it
/// again with its old attributes. Blocks around it (1 GiB, 2 MiB) are first split into
/// next-level tables with the same attributes. The caller invalidates the TLB entry for `addr`.
pub fn set_guard(memory: &mut dyn TableMemory, root: u64, addr: u64, guarded: bool) -> Result<(), GuardError> {
    if addr >= ADDRESS_LIMIT {
        return Err(GuardError::NotMapped);
    }
    let mut table = root;
    for level in 0..3 {
        let i = index(addr, level);
        let entry = memory.table(table)[i];
        if entry & bits::VALID == 0 || (level == 0 && entry & bits::TABLE_OR_PAGE == 0) {
            return Err(GuardError::NotMapped);
        }
        if entry & bits::TABLE_OR_PAGE != 0 {
            table = entry & bits::ADDRESS;
            continue;
        }
        table = split_block(memory, table, i, level, entry)?;
    }
    let entry = &mut memory.table(table)[index(addr, 3)];
    if guarded {
        if *entry & bits::VALID == 0 {
            return Err(GuardError::NotMapped);
        }
        *entry = (*entry & !bits::VALID) | bits::GUARD;
    } else {
        if *entry & bits::GUARD == 0 {
            return Err(GuardError::NotGuarded);
        }
        *entry = (*entry | bits::VALID) & !bits::GUARD;
    }
    Ok(())
}

/// Splits the valid block descriptor `entry` = `table[i]` at `level` (1 or 2) into a new
/// next-level table with the same attributes; returns that table.
fn split_block(memory: &mut dyn TableMemory, table: u64, i: usize, level: u32, entry: u64) -> Result<u64, GuardError> {
    let size = entry_size(level);
    let base = entry & bits::ADDRESS & !(size - 1);
    let attributes = entry & !bits::ADDRESS & !(bits::VALID | bits::TABLE_OR_PAGE);
    let kind = if level + 1 == 3 { bits::VALID | bits::TABLE_OR_PAGE } else { bits::VALID };
    let next = memory.alloc_table().ok_or(GuardError::OutOfTableFrames)?;
    let step = entry_size(level + 1);
    for (j, e) in memory.table(next).iter_mut().enumerate() {
        *e = (base + j as u64 * step) | attributes | kind;
    }
    if !memory.replace_block(table, i, next | bits::VALID | bits::TABLE_OR_PAGE, base, size) {
        return Err(GuardError::CannotSplit);
    }
    Ok(next)
}

/// Maps the mapped parts of `[start, end)` with 4 KiB pages: every 1 GiB / 2 MiB block that
/// overlaps it is split (same attributes), so that a later [`set_guard`] there changes one
/// page entry and never replaces a block. Holes are skipped. Stops at the first block that
/// cannot be split (out of frames, or [`TableMemory::replace_block`] refused).
pub fn split_to_pages(memory: &mut dyn TableMemory, root: u64, start: u64, end: u64) -> Result<(), GuardError> {
    let end = end.min(ADDRESS_LIMIT);
    let mut addr = start & !(entry_size(3) - 1);
    'next: while addr < end {
        let mut table = root;
        for level in 0..3 {
            let i = index(addr, level);
            let entry = memory.table(table)[i];
            if entry & bits::VALID == 0 || (level == 0 && entry & bits::TABLE_OR_PAGE == 0) {
                // A hole: go on after what this entry covers.
                addr = (addr | (entry_size(level) - 1)).saturating_add(1);
                continue 'next;
            }
            table = if entry & bits::TABLE_OR_PAGE != 0 { entry & bits::ADDRESS } else { split_block(memory, table, i, level, entry)? };
        }
        // This level-3 table covers up to the next 2 MiB boundary.
        addr = (addr | (entry_size(2) - 1)).saturating_add(1);
    }
    Ok(())
}

/// True when `addr` lies in a page made a guard page by [`set_guard`].
pub fn is_guard(memory: &mut dyn TableMemory, root: u64, addr: u64) -> bool {
    if addr >= ADDRESS_LIMIT {
        return false;
    }
    let mut table = root;
    for level in 0..3 {
        let entry = memory.table(table)[index(addr, level)];
        if entry & bits::VALID == 0 || entry & bits::TABLE_OR_PAGE == 0 {
            return false;
        }
        table = entry & bits::ADDRESS;
    }
    let entry = memory.table(table)[index(addr, 3)];
    entry & bits::VALID == 0 && entry & bits::GUARD != 0
}

/// Why a program page could not be mapped or changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageError {
    /// The address is kernel memory (RAM of the identity map, a guard page).
    Busy,
    /// The address is already a program page.
    Exists,
    /// The address is not a program page (protect, unmap).
    NotProgram,
    /// No frame for a table.
    OutOfTableFrames,
    /// A block could not be split safely (see [`TableMemory::replace_block`]).
    CannotSplit,
}

/// The page descriptor of a program page at physical `frame` with `protection`: Normal
/// write-back memory, never writable and executable.
pub fn program_entry(frame: u64, protection: libos_core::hal::Protection) -> u64 {
    use bits::*;
    use libos_core::hal::Protection;
    let access = match protection {
        Protection::Read => READ_ONLY | PXN | UXN,
        Protection::ReadWrite => PXN | UXN,
        Protection::ReadExecute => READ_ONLY | UXN,
    };
    (frame & ADDRESS) | access | ACCESSED | INNER_SHAREABLE | VALID | TABLE_OR_PAGE | PROGRAM
}

/// Finds (creating tables, splitting 1 GiB / 2 MiB blocks into the next level with the same
/// attributes) the level-3 slot for a new program page at `addr`: returns the table and the
/// index. Refuses program pages ([`PageError::Exists`]), guard pages and Normal memory of the
/// identity map ([`PageError::Busy`]); device mappings and holes are replaced (the caller
/// refuses page 0 and the image's range).
pub fn program_slot(memory: &mut dyn TableMemory, root: u64, addr: u64) -> Result<(u64, usize), PageError> {
    if addr >= ADDRESS_LIMIT {
        return Err(PageError::Busy);
    }
    let mut table = root;
    for level in 0..3 {
        let i = index(addr, level);
        let entry = memory.table(table)[i];
        table = if entry & bits::VALID == 0 {
            let next = memory.alloc_table().ok_or(PageError::OutOfTableFrames)?;
            memory.table(table)[i] = next | bits::VALID | bits::TABLE_OR_PAGE;
            next
        } else if entry & bits::TABLE_OR_PAGE != 0 {
            entry & bits::ADDRESS
        } else {
            if entry & bits::ATTR_DEVICE == 0 {
                return Err(PageError::Busy);
            }
            let size = entry_size(level);
            let base = entry & bits::ADDRESS & !(size - 1);
            let attributes = entry & !bits::ADDRESS & !(bits::VALID | bits::TABLE_OR_PAGE);
            let kind = if level + 1 == 3 { bits::VALID | bits::TABLE_OR_PAGE } else { bits::VALID };
            let next = memory.alloc_table().ok_or(PageError::OutOfTableFrames)?;
            let step = entry_size(level + 1);
            for (j, e) in memory.table(next).iter_mut().enumerate() {
                *e = (base + j as u64 * step) | attributes | kind;
            }
            if !memory.replace_block(table, i, next | bits::VALID | bits::TABLE_OR_PAGE, base, size) {
                return Err(PageError::CannotSplit);
            }
            next
        };
    }
    let i = index(addr, 3);
    let entry = memory.table(table)[i];
    if entry & bits::PROGRAM != 0 {
        return Err(PageError::Exists);
    }
    if entry & bits::GUARD != 0 || (entry & bits::VALID != 0 && entry & bits::ATTR_DEVICE == 0) {
        return Err(PageError::Busy);
    }
    Ok((table, i))
}

/// The slot of the existing program page at `addr`.
pub fn program_page(memory: &mut dyn TableMemory, root: u64, addr: u64) -> Result<(u64, usize), PageError> {
    if addr >= ADDRESS_LIMIT {
        return Err(PageError::NotProgram);
    }
    let mut table = root;
    for level in 0..3 {
        let entry = memory.table(table)[index(addr, level)];
        if entry & bits::VALID == 0 || entry & bits::TABLE_OR_PAGE == 0 {
            return Err(PageError::NotProgram);
        }
        table = entry & bits::ADDRESS;
    }
    let i = index(addr, 3);
    if memory.table(table)[i] & bits::PROGRAM == 0 {
        return Err(PageError::NotProgram);
    }
    Ok((table, i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use libos_core::hal::MemoryRegion;
    use libos_core::memory::PAGE;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct FakeTables {
        tables: BTreeMap<u64, [u64; ENTRIES]>,
        next: u64,
    }

    impl TableMemory for FakeTables {
        fn alloc_table(&mut self) -> Option<u64> {
            self.next += PAGE;
            let frame = 0x1000_0000_0000 + self.next;
            self.tables.insert(frame, [0; ENTRIES]);
            Some(frame)
        }
        fn table(&mut self, table: u64) -> &mut [u64; ENTRIES] {
            self.tables.get_mut(&table).expect("a table frame")
        }
    }

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    /// QEMU virt: RAM at 1 GiB, the image 2 MiB into it, devices below, PCIe up to 1 TiB.
    fn virt<'a>(ram: &'a [MemoryRegion], guards: &'a [u64]) -> Layout<'a> {
        let base = GIB + 2 * MIB;
        Layout {
            text: base..base + 0x10000,
            rodata: base + 0x10000..base + 0x14000,
            data: base + 0x14000..base + 0x40000,
            guards,
            ram,
            prefetchable: None,
            device_limit: 1 << 40,
        }
    }

    #[test]
    fn guard_pages_split_gib_and_mib_blocks_and_restore_attributes() {
        let ram = [MemoryRegion { start: GIB, end: 4 * GIB }];
        let layout = virt(&ram, &[]);
        let mut mem = FakeTables::default();
        let root = build(&layout, &mut mem).unwrap();
        let addr = 2 * GIB + 0x40_3000; // inside a 1 GiB block of RAM
        let (attributes, size) = translate(&mut mem, root, addr).unwrap();
        assert_eq!(size, GIB);
        set_guard(&mut mem, root, addr, true).unwrap();
        assert_eq!(translate(&mut mem, root, addr), None);
        assert!(is_guard(&mut mem, root, addr + 0xfff));
        assert_eq!(translate(&mut mem, root, addr + PAGE), Some((attributes, PAGE)));
        assert_eq!(translate(&mut mem, root, addr + 4 * MIB), Some((attributes, 2 * MIB)));
        assert_eq!(translate(&mut mem, root, addr + GIB / 2), Some((attributes, 2 * MIB)));
        assert_eq!(set_guard(&mut mem, root, addr, true), Err(GuardError::NotMapped));
        set_guard(&mut mem, root, addr, false).unwrap();
        assert_eq!(translate(&mut mem, root, addr), Some((attributes, PAGE)));
        assert!(!is_guard(&mut mem, root, addr));
        assert_eq!(set_guard(&mut mem, root, addr, false), Err(GuardError::NotGuarded));
        assert_eq!(set_guard(&mut mem, root, 1 << 47, true), Err(GuardError::NotMapped));
    }

    #[test]
    fn splitting_a_range_to_pages_leaves_guards_nothing_to_split() {
        let ram = [MemoryRegion { start: GIB, end: 4 * GIB }];
        let layout = virt(&ram, &[]);
        let mut mem = FakeTables::default();
        let root = build(&layout, &mut mem).unwrap();
        let (attributes, _) = translate(&mut mem, root, 2 * GIB).unwrap();
        // Across a 1 GiB boundary, not 2 MiB aligned at either end.
        let (start, end) = (2 * GIB - 3 * MIB + 0x5000, 2 * GIB + 5 * MIB - PAGE);
        split_to_pages(&mut mem, root, start, end).unwrap();
        for addr in [start, 2 * GIB - 4 * MIB, 2 * GIB, 2 * GIB + 5 * MIB] {
            assert_eq!(translate(&mut mem, root, addr), Some((attributes, PAGE)), "{addr:#x}");
        }
        assert_eq!(translate(&mut mem, root, 2 * GIB + 6 * MIB), Some((attributes, 2 * MIB)));
        assert_eq!(translate(&mut mem, root, 3 * GIB), Some((attributes, GIB)));
        // Guarding inside the range allocates no table (no block is replaced).
        let tables = mem.tables.len();
        set_guard(&mut mem, root, 2 * GIB + 0x3000, true).unwrap();
        assert_eq!(mem.tables.len(), tables);
        // Holes are skipped; splitting again changes nothing.
        split_to_pages(&mut mem, root, 0x7000_0000_0000, 0x7000_4000_0000).unwrap();
        split_to_pages(&mut mem, root, start, end).unwrap();
        assert_eq!(mem.tables.len(), tables);
    }

    #[test]
    fn permissions_follow_the_layout() {
        let ram = [MemoryRegion { start: GIB, end: GIB + 64 * MIB }];
        let guards = [GIB + 2 * MIB + 0x20000];
        let layout = virt(&ram, &guards);
        let mut tables = FakeTables::default();
        let root = build(&layout, &mut tables).unwrap();
        let at = |t: &mut FakeTables, a: u64| translate(t, root, a).map(|(attributes, _)| attributes);
        use bits::*;
        let text = at(&mut tables, GIB + 2 * MIB).unwrap();
        assert_eq!(text & (READ_ONLY | PXN | UXN | ATTR_DEVICE), READ_ONLY | UXN);
        let rodata = at(&mut tables, GIB + 2 * MIB + 0x10000).unwrap();
        assert_eq!(rodata & (READ_ONLY | PXN), READ_ONLY | PXN);
        let data = at(&mut tables, GIB + 2 * MIB + 0x14000).unwrap();
        assert_eq!(data & (READ_ONLY | PXN | ATTR_DEVICE), PXN);
        assert_eq!(at(&mut tables, guards[0]), None, "guard page");
        assert_eq!(at(&mut tables, guards[0] + PAGE).map(|a| a & READ_ONLY), Some(0));
        assert_eq!(at(&mut tables, 0), None, "page 0");
        let uart = at(&mut tables, 0x0900_0000).unwrap();
        assert_eq!(uart & (ATTR_DEVICE | PXN), ATTR_DEVICE | PXN);
        let heap = at(&mut tables, GIB + 32 * MIB).unwrap();
        assert_eq!(heap & (ATTR_DEVICE | READ_ONLY | PXN), PXN);
        assert_eq!(at(&mut tables, (1 << 40) - PAGE).map(|a| a & ATTR_DEVICE), Some(ATTR_DEVICE));
        assert_eq!(at(&mut tables, 1 << 40), None, "above the device limit");
        assert_eq!(at(&mut tables, 0x7fff_dead_0000), None);
    }

    #[test]
    fn the_prefetchable_window_is_normal_memory_in_gib_blocks() {
        let ram = [MemoryRegion { start: GIB, end: GIB + 64 * MIB }];
        let window = MemoryRegion { start: 512 * GIB, end: 1024 * GIB };
        let layout = Layout { prefetchable: Some(window), ..virt(&ram, &[]) };
        let mut tables = FakeTables::default();
        let root = build(&layout, &mut tables).unwrap();
        use bits::*;
        let (attributes, size) = translate(&mut tables, root, 512 * GIB + 3 * MIB + 17).unwrap();
        assert_eq!(attributes & (ATTR_DEVICE | READ_ONLY | PXN | UXN), PXN | UXN, "normal, writable, never executed");
        assert_eq!(size, GIB);
        let (below, _) = translate(&mut tables, root, 512 * GIB - PAGE).unwrap();
        assert_eq!(below & ATTR_DEVICE, ATTR_DEVICE, "the rest stays device memory");
    }

    #[test]
    fn large_blocks_where_uniform() {
        let ram = [MemoryRegion { start: GIB, end: 3 * GIB }];
        let layout = virt(&ram, &[]);
        let mut tables = FakeTables::default();
        let root = build(&layout, &mut tables).unwrap();
        assert_eq!(translate(&mut tables, root, 2 * GIB).map(|t| t.1), Some(GIB));
        assert_eq!(translate(&mut tables, root, 100 * GIB).map(|t| t.1), Some(GIB));
        assert_eq!(translate(&mut tables, root, GIB + 64 * MIB).map(|t| t.1), Some(2 * MIB));
        assert_eq!(translate(&mut tables, root, GIB + 2 * MIB).map(|t| t.1), Some(PAGE));
        assert!(tables.tables.len() as u64 <= max_tables(&layout), "{} tables", tables.tables.len());
        // A terabyte of mostly 1 GiB blocks takes a handful of tables.
        assert!(tables.tables.len() < 12, "{} tables", tables.tables.len());
    }

    #[test]
    fn bound_holds_with_many_boundaries() {
        let ram = [
            MemoryRegion { start: GIB, end: GIB + 3 * MIB + PAGE },
            MemoryRegion { start: 5 * GIB + PAGE, end: 6 * GIB - PAGE },
        ];
        let guards = [GIB + 2 * MIB + 0x20000, GIB + 2 * MIB + 0x30000, GIB + 2 * MIB + 0x38000];
        let layout = virt(&ram, &guards);
        let mut tables = FakeTables::default();
        build(&layout, &mut tables).unwrap();
        assert!(tables.tables.len() as u64 <= max_tables(&layout));
    }

    #[test]
    fn program_pages_replace_devices_and_holes_but_not_ram() {
        use libos_core::hal::Protection;
        let ram = [MemoryRegion { start: GIB, end: 2 * GIB }];
        let layout = virt(&ram, &[]);
        let mut mem = FakeTables::default();
        let root = build(&layout, &mut mem).unwrap();
        // 4 MiB on virt: device memory (flash) in a 1 GiB block, split down to pages.
        let (table, i) = program_slot(&mut mem, root, 4 * MIB).unwrap();
        mem.table(table)[i] = program_entry(GIB + 0x5000, Protection::ReadExecute);
        let (attributes, size) = translate(&mut mem, root, 4 * MIB).unwrap();
        assert_eq!(size, PAGE);
        assert_eq!(attributes & (bits::READ_ONLY | bits::PXN | bits::ATTR_DEVICE | bits::PROGRAM), bits::READ_ONLY | bits::PROGRAM);
        // The rest of the former block is still device memory.
        assert_eq!(translate(&mut mem, root, 4 * MIB + PAGE).map(|(a, _)| a & bits::ATTR_DEVICE), Some(bits::ATTR_DEVICE));
        assert_eq!(program_slot(&mut mem, root, 4 * MIB), Err(PageError::Exists));
        assert_eq!(program_page(&mut mem, root, 4 * MIB), Ok((table, i)));
        assert_eq!(program_page(&mut mem, root, 4 * MIB + PAGE), Err(PageError::NotProgram));
        // RAM and the image: never. Unmapped high addresses: new tables.
        assert_eq!(program_slot(&mut mem, root, GIB + 64 * MIB), Err(PageError::Busy));
        assert_eq!(program_slot(&mut mem, root, GIB + 2 * MIB), Err(PageError::Busy));
        assert!(program_slot(&mut mem, root, 0x4000_0000_0000).is_ok());
        assert_eq!(program_slot(&mut mem, root, 1 << 48), Err(PageError::Busy));
        let rw = program_entry(0, Protection::ReadWrite);
        assert_eq!(rw & (bits::READ_ONLY | bits::PXN), bits::PXN);
    }
}
