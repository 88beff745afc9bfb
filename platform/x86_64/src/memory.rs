//! The usable RAM of the PVH memory map (e820 entries of type RAM), as a
//! [`libos_core::memory::RegionList`]; the rest of the boot-time memory planning is shared with
//! the other platforms in `libos_core::memory`.

use crate::pvh::{MEMMAP_RAM, MemmapEntry};
use libos_core::hal::MemoryRegion;
use libos_core::memory::{PAGE, RegionList};

/// The usable RAM of a memory map, shrunk to whole pages.
pub fn usable_ram<const N: usize>(memmap: &[MemmapEntry]) -> RegionList<N> {
    let mut ram = RegionList::default();
    for e in memmap.iter().filter(|e| e.kind == MEMMAP_RAM) {
        let start = e.addr.next_multiple_of(PAGE);
        let end = e.addr.saturating_add(e.size) & !(PAGE - 1);
        ram.add(MemoryRegion { start, end });
    }
    ram
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> MemoryRegion {
        MemoryRegion { start, end }
    }

    #[test]
    fn usable_ram_keeps_whole_pages_of_ram_only() {
        let map = [
            MemmapEntry { addr: 0, size: 0x9fc00, kind: 1 },
            MemmapEntry { addr: 0x9fc00, size: 0x400, kind: 2 },
            MemmapEntry { addr: 0x100000, size: 0x7f00000, kind: 1 },
            MemmapEntry { addr: 0xfeffc000, size: 0x4000, kind: 2 },
        ];
        let ram = usable_ram::<8>(&map);
        assert_eq!(ram.as_slice(), &[r(0, 0x9f000), r(0x100000, 0x8000000)]);
    }
}
