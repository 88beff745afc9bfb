//! Physical memory bookkeeping before the heap exists, shared by the platform crates:
//! [`RegionList`] (a fixed-capacity sorted list of regions), and [`plan_free`], which checks that
//! the image and its page tables sit in RAM and computes the free RAM handed to the heap.

use crate::hal::MemoryRegion;

/// Page size.
pub const PAGE: u64 = 4096;

/// The heap must get at least this much, or booting is pointless.
pub const MIN_HEAP: u64 = 256 * 1024;

/// A sorted list of disjoint regions, at most `N`, without allocation.
#[derive(Clone, Copy, Debug)]
pub struct RegionList<const N: usize> {
    regions: [MemoryRegion; N],
    len: usize,
}

impl<const N: usize> Default for RegionList<N> {
    fn default() -> Self {
        RegionList { regions: [MemoryRegion { start: 0, end: 0 }; N], len: 0 }
    }
}

impl<const N: usize> RegionList<N> {
    /// The regions, sorted by address.
    pub fn as_slice(&self) -> &[MemoryRegion] {
        &self.regions[..self.len]
    }

    /// Total bytes.
    pub fn total(&self) -> u64 {
        self.as_slice().iter().map(MemoryRegion::len).sum()
    }

    /// Adds a region, merging with overlapping or touching neighbours. Regions that do not fit
    /// are dropped (and reported by the `false` return).
    pub fn add(&mut self, region: MemoryRegion) -> bool {
        if region.is_empty() {
            return true;
        }
        let mut merged = region;
        // Remove every region that overlaps or touches `merged`, growing it.
        let mut i = 0;
        while i < self.len {
            let r = self.regions[i];
            if r.start <= merged.end && merged.start <= r.end {
                merged.start = merged.start.min(r.start);
                merged.end = merged.end.max(r.end);
                self.regions.copy_within(i + 1..self.len, i);
                self.len -= 1;
            } else {
                i += 1;
            }
        }
        if self.len == N {
            return false;
        }
        let at = self.as_slice().iter().position(|r| r.start > merged.start).unwrap_or(self.len);
        self.regions.copy_within(at..self.len, at + 1);
        self.regions[at] = merged;
        self.len += 1;
        true
    }

    /// Removes `hole` from every region (splitting where needed).
    pub fn remove(&mut self, hole: MemoryRegion) {
        if hole.is_empty() {
            return;
        }
        let mut result = RegionList::<N>::default();
        for r in self.as_slice() {
            let below = MemoryRegion { start: r.start, end: r.end.min(hole.start) };
            let above = MemoryRegion { start: r.start.max(hole.end), end: r.end };
            result.add(below);
            result.add(above);
        }
        *self = result;
    }

    /// True when `[start, end)` lies inside one region.
    pub fn contains(&self, start: u64, end: u64) -> bool {
        self.as_slice().iter().any(|r| r.start <= start && end <= r.end)
    }
}

/// Shrinks a region to whole pages. A start in the last partial page of the address space
/// (a firmware table's bad value) leaves no whole page: an empty region at `end`, not a
/// start wrapped round to 0 (found by the dtb fuzz target).
pub fn page_aligned(region: MemoryRegion) -> MemoryRegion {
    let end = region.end & !(PAGE - 1);
    match region.start.checked_next_multiple_of(PAGE) {
        Some(start) => MemoryRegion { start, end },
        None => MemoryRegion { start: end, end },
    }
}

/// Widens a region to whole pages (an end in the last partial page stops at the last whole
/// page boundary rather than wrapping round).
pub fn page_widened(region: MemoryRegion) -> MemoryRegion {
    let end = region.end.checked_next_multiple_of(PAGE).unwrap_or(!(PAGE - 1));
    MemoryRegion { start: region.start & !(PAGE - 1), end }
}

/// Not enough RAM: it must reach `need_end` (contiguously from the image start) and leave
/// [`MIN_HEAP`] free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLittleMemory {
    /// Bytes of RAM the firmware reported.
    pub have: u64,
    /// RAM must reach up to this address.
    pub need_end: u64,
}

/// Checks that the image and its page-table frames (`image_and_tables`) lie in one RAM region,
/// and returns the free RAM: all of it except page 0, the image and tables, and the `reserved`
/// regions (firmware data, the device tree...), each widened to whole pages.
pub fn plan_free<const N: usize>(
    ram: &[MemoryRegion],
    image_and_tables: MemoryRegion,
    reserved: &[MemoryRegion],
) -> Result<RegionList<N>, TooLittleMemory> {
    let mut free = RegionList::<N>::default();
    for r in ram {
        free.add(*r);
    }
    let too_little = TooLittleMemory { have: free.total(), need_end: image_and_tables.end + MIN_HEAP };
    if !free.contains(image_and_tables.start, image_and_tables.end) {
        return Err(too_little);
    }
    free.remove(MemoryRegion { start: 0, end: PAGE });
    free.remove(page_widened(image_and_tables));
    for r in reserved {
        free.remove(page_widened(*r));
    }
    if free.total() < MIN_HEAP {
        return Err(too_little);
    }
    Ok(free)
}

#[cfg(test)]
mod tests {
    #[test]
    fn regions_at_the_top_of_the_address_space_do_not_wrap() {
        let top = MemoryRegion { start: u64::MAX - 100, end: u64::MAX };
        let aligned = page_aligned(top);
        assert!(aligned.start >= aligned.end && aligned.start != 0, "{aligned:?}");
        assert_eq!(page_widened(top).end, !(PAGE - 1));
    }

    use super::*;

    fn r(start: u64, end: u64) -> MemoryRegion {
        MemoryRegion { start, end }
    }

    #[test]
    fn add_sorts_and_merges() {
        let mut list = RegionList::<8>::default();
        list.add(r(0x5000, 0x6000));
        list.add(r(0x1000, 0x2000));
        list.add(r(0x2000, 0x3000));
        assert_eq!(list.as_slice(), &[r(0x1000, 0x3000), r(0x5000, 0x6000)]);
        list.add(r(0x2800, 0x5800));
        assert_eq!(list.as_slice(), &[r(0x1000, 0x6000)]);
        assert_eq!(list.total(), 0x5000);
    }

    #[test]
    fn remove_splits() {
        let mut list = RegionList::<8>::default();
        list.add(r(0, 0x10000));
        list.remove(r(0x4000, 0x8000));
        assert_eq!(list.as_slice(), &[r(0, 0x4000), r(0x8000, 0x10000)]);
        list.remove(r(0, 0x5000));
        assert_eq!(list.as_slice(), &[r(0x8000, 0x10000)]);
        list.remove(r(0x7000, 0x20000));
        assert!(list.as_slice().is_empty());
    }

    #[test]
    fn full_list_reports_dropped_regions() {
        let mut list = RegionList::<2>::default();
        assert!(list.add(r(0x1000, 0x2000)));
        assert!(list.add(r(0x3000, 0x4000)));
        assert!(!list.add(r(0x5000, 0x6000)));
        assert_eq!(list.as_slice().len(), 2);
    }

    #[test]
    fn page_aligned_keeps_whole_pages() {
        assert_eq!(page_aligned(r(0x1001, 0x5fff)), r(0x2000, 0x5000));
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn free_ram_leaves_out_image_dtb_and_reservations() {
        let ram = [r(0x4000_0000, 0x4000_0000 + 8 * MIB)];
        let image = r(0x4020_0000, 0x4023_0000);
        let dtb = r(0x4040_0000, 0x4040_1dcc);
        let free = plan_free::<8>(&ram, image, &[dtb, r(0x4050_0000, 0x4050_0800)]).unwrap();
        assert_eq!(
            free.as_slice(),
            &[r(0x4000_0000, 0x4020_0000), r(0x4023_0000, 0x4040_0000), r(0x4040_2000, 0x4050_0000), r(0x4050_1000, 0x4080_0000)]
        );
    }

    #[test]
    fn too_little_memory_is_an_error() {
        // The page tables would run past the end of RAM.
        let ram = [r(0x4000_0000, 0x4022_0000)];
        let e = plan_free::<8>(&ram, r(0x4020_0000, 0x4023_0000), &[]).unwrap_err();
        assert_eq!(e, TooLittleMemory { have: 0x22_0000, need_end: 0x4023_0000 + MIN_HEAP });
        // Everything fits but the heap would be tiny.
        let ram = [r(0x4020_0000, 0x4024_0000)];
        assert!(plan_free::<8>(&ram, r(0x4020_0000, 0x4023_0000), &[]).is_err());
        // Reservations can take the heap away too.
        let ram = [r(0x4000_0000, 0x4080_0000)];
        let reserved = [r(0x4000_0000, 0x4020_0000), r(0x4023_0000, 0x4080_0000)];
        assert!(plan_free::<8>(&ram, r(0x4020_0000, 0x4023_0000), &reserved).is_err());
    }
}
