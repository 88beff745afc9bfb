//! What the kernel's identity map should look like, independent of the page-table format: each
//! platform's `paging` module turns a [`Layout`] into its own descriptors.
//!
//! The policy, on every architecture: page 0 and every stack guard page unmapped; kernel text
//! read + execute; rodata read-only; data, bss and stacks read-write; RAM and the window of
//! prefetchable PCI BARs ([`Layout::prefetchable`]) read-write normal memory; everything else
//! below [`Layout::device_limit`] read-write device memory; nothing executable but the text.
//! [`Layout::boundaries`] lists the addresses where that answer may change, so a table builder
//! walks intervals (a few per region) instead of pages.

use crate::hal::MemoryRegion;
use crate::memory::PAGE;
use core::ops::Range;

/// Addresses at or above this are never mapped (48-bit virtual addresses on both architectures).
pub const ADDRESS_LIMIT: u64 = 1 << 48;

/// Most boundaries a layout may have (image sections, guard pages, RAM regions).
pub const MAX_BOUNDARIES: usize = 256;

/// What an address is mapped as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// Not mapped: any access faults.
    Unmapped,
    /// Kernel text: read + execute.
    Text,
    /// Read-only data.
    ReadOnly,
    /// Read-write RAM.
    ReadWrite,
    /// Read-write, uncached device memory.
    Device,
}

/// The physical memory layout to identity-map.
#[derive(Clone, Debug)]
pub struct Layout<'a> {
    /// Kernel text (page aligned).
    pub text: Range<u64>,
    /// Read-only data (page aligned).
    pub rodata: Range<u64>,
    /// Data, bss and stacks (page aligned).
    pub data: Range<u64>,
    /// Guard pages (4 KiB each) to leave unmapped.
    pub guards: &'a [u64],
    /// Usable RAM.
    pub ram: &'a [MemoryRegion],
    /// A device window that holds memory rather than registers: where the platform places
    /// prefetchable 64-bit PCI BARs (virtio shared-memory regions, e.g. virtio-fs's DAX window).
    /// Mapped as normal read-write memory, so plain unaligned and wide accesses work there
    /// (Device memory faults on them on aarch64).
    pub prefetchable: Option<MemoryRegion>,
    /// Non-RAM addresses below this are mapped as devices; above it, left unmapped.
    pub device_limit: u64,
}

impl Layout<'_> {
    /// How `addr` should be mapped.
    pub fn mapping_at(&self, addr: u64) -> Mapping {
        if addr < PAGE || self.guards.iter().any(|&g| (g..g + PAGE).contains(&addr)) {
            Mapping::Unmapped
        } else if self.text.contains(&addr) {
            Mapping::Text
        } else if self.rodata.contains(&addr) {
            Mapping::ReadOnly
        } else if self.data.contains(&addr)
            || self.ram.iter().chain(&self.prefetchable).any(|r| (r.start..r.end).contains(&addr))
        {
            Mapping::ReadWrite
        } else if addr < self.device_limit {
            Mapping::Device
        } else {
            Mapping::Unmapped
        }
    }

    /// One past the highest address to map (page aligned, below [`ADDRESS_LIMIT`]).
    pub fn end(&self) -> u64 {
        let ram_end = self.ram.iter().chain(&self.prefetchable).map(|r| r.end).max().unwrap_or(0);
        self.device_limit.max(ram_end).max(self.data.end).min(ADDRESS_LIMIT).next_multiple_of(PAGE)
    }

    /// Every address where the mapping may change, sorted and unique, starting at 0 and ending
    /// at [`Layout::end`]. Returns how many were written to `out`.
    pub fn boundaries(&self, out: &mut [u64; MAX_BOUNDARIES]) -> usize {
        let end = self.end();
        let mut n = 0;
        let mut push = |addr: u64| {
            if n < MAX_BOUNDARIES && addr <= end {
                out[n] = addr;
                n += 1;
            }
        };
        push(0);
        push(PAGE);
        push(end);
        push(self.device_limit.min(ADDRESS_LIMIT).next_multiple_of(PAGE));
        for range in [&self.text, &self.rodata, &self.data] {
            push(range.start);
            push(range.end);
        }
        for &g in self.guards {
            push(g);
            push(g + PAGE);
        }
        for r in self.ram.iter().chain(&self.prefetchable) {
            push(r.start);
            push(r.end);
        }
        // Insertion sort: a few dozen entries, and far less code on the boot path than the
        // generic slice sort (which QEMU's TCG would have to translate at every boot).
        for i in 1..n {
            let mut j = i;
            while j > 0 && out[j - 1] > out[j] {
                out.swap(j - 1, j);
                j -= 1;
            }
        }
        let mut unique = 0;
        for i in 0..n {
            if unique == 0 || out[i] != out[unique - 1] {
                out[unique] = out[i];
                unique += 1;
            }
        }
        unique
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn each_kind_of_address_gets_its_mapping() {
        let l = layout();
        assert_eq!(l.mapping_at(0), Mapping::Unmapped);
        assert_eq!(l.mapping_at(0x120800), Mapping::Unmapped);
        assert_eq!(l.mapping_at(0x100000), Mapping::Text);
        assert_eq!(l.mapping_at(0x110000), Mapping::ReadOnly);
        assert_eq!(l.mapping_at(0x121000), Mapping::ReadWrite);
        assert_eq!(l.mapping_at(0x400000), Mapping::ReadWrite);
        assert_eq!(l.mapping_at(0xa0000), Mapping::Device);
        assert_eq!(l.mapping_at(0xfee0_0000), Mapping::Device);
        assert_eq!(l.mapping_at(1 << 32), Mapping::Unmapped);
    }

    #[test]
    fn boundaries_are_sorted_unique_and_span_the_layout() {
        let mut bounds = [0u64; MAX_BOUNDARIES];
        let n = layout().boundaries(&mut bounds);
        assert!(bounds[..n].windows(2).all(|w| w[0] < w[1]), "{:x?}", &bounds[..n]);
        assert_eq!((bounds[0], bounds[n - 1]), (0, layout().end()));
        // The mapping is constant between two boundaries.
        for pair in bounds[..n].windows(2) {
            let first = layout().mapping_at(pair[0]);
            for addr in (pair[0]..pair[1]).step_by(PAGE as usize).take(1024) {
                assert_eq!(layout().mapping_at(addr), first, "at {addr:#x}");
            }
        }
    }

    #[test]
    fn end_is_clamped_to_the_address_limit() {
        let l = Layout { device_limit: u64::MAX, ..layout() };
        assert_eq!(l.end(), ADDRESS_LIMIT);
    }
}
