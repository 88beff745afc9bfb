//! The little of ELF the host tool reads: the loadable segments of an image.

/// A `PT_LOAD` segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Physical load address.
    pub paddr: u64,
    /// Bytes in the file.
    pub file_size: u64,
    /// Bytes in memory (the rest is zero-filled).
    pub mem_size: u64,
}

/// The loadable segments of an ELF64 little-endian image (empty if it is not one).
pub fn load_segments(image: &[u8]) -> Vec<Segment> {
    let u16_at = |o: usize| image.get(o..o + 2).map_or(0, |b| u16::from_le_bytes([b[0], b[1]])) as usize;
    let u32_at = |o: usize| image.get(o..o + 4).map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])));
    let u64_at = |o: usize| image.get(o..o + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    if image.len() < 64 || &image[..4] != b"\x7fELF" || image[4] != 2 {
        return Vec::new();
    }
    let (phoff, phentsize, phnum) = (u64_at(32) as usize, u16_at(54), u16_at(56));
    (0..phnum)
        .map(|i| phoff + i * phentsize)
        .filter(|&o| o + 56 <= image.len() && u32_at(o) == 1)
        .map(|o| Segment { paddr: u64_at(o + 24), file_size: u64_at(o + 32), mem_size: u64_at(o + 40) })
        .collect()
}

/// One past the highest physical address the image occupies once loaded.
pub fn load_end(image: &[u8]) -> Option<u64> {
    load_segments(image).iter().map(|s| s.paddr + s.mem_size).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_floor_kernels_segment() {
        let elf = crate::floor::pvh_elf(&[0x90; 10]);
        assert_eq!(load_segments(&elf), [Segment { paddr: 0x101000, file_size: 10, mem_size: 10 }]);
        assert_eq!(load_end(&elf), Some(0x10100a));
        assert_eq!(load_segments(b"not an elf at all, but long enough to have a header: 64 bytes!!"), []);
    }
}
