//! The little of ELF the host tool reads: the loadable segments of an image, and the raw
//! binary (`objcopy -O binary`) made of them, which aarch64 loaders take as a Linux `Image`.

/// A `PT_LOAD` segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Offset of the segment's bytes in the file.
    pub offset: u64,
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
        .map(|o| Segment { offset: u64_at(o + 8), paddr: u64_at(o + 24), file_size: u64_at(o + 32), mem_size: u64_at(o + 40) })
        .collect()
}

/// One past the highest physical address the image occupies once loaded.
pub fn load_end(image: &[u8]) -> Option<u64> {
    load_segments(image).iter().map(|s| s.paddr + s.mem_size).max()
}

/// The flat binary of an ELF image: the file bytes of every `PT_LOAD` segment at its physical
/// address minus the lowest one, gaps zero-filled, ending with the last file byte (zero-filled
/// memory such as .bss is not part of it). `None` when the ELF has no loadable segment or a
/// segment lies outside the file.
pub fn flat_binary(elf: &[u8]) -> Option<Vec<u8>> {
    let segments: Vec<Segment> = load_segments(elf).into_iter().filter(|s| s.file_size > 0).collect();
    let base = segments.iter().map(|s| s.paddr).min()?;
    let end = segments.iter().map(|s| s.paddr + s.file_size).max()?;
    let mut flat = vec![0u8; usize::try_from(end - base).ok()?];
    for s in &segments {
        let from = elf.get(s.offset as usize..(s.offset + s.file_size) as usize)?;
        let at = (s.paddr - base) as usize;
        flat[at..at + from.len()].copy_from_slice(from);
    }
    Some(flat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_floor_kernels_segment() {
        let elf = crate::floor::pvh_elf(&[0x90; 10]);
        assert_eq!(load_segments(&elf), [Segment { offset: 0x1000, paddr: 0x101000, file_size: 10, mem_size: 10 }]);
        assert_eq!(load_end(&elf), Some(0x10100a));
        assert_eq!(load_segments(b"not an elf at all, but long enough to have a header: 64 bytes!!"), []);
    }

    #[test]
    fn flat_binary_places_segments_at_their_addresses() {
        let elf = crate::floor::pvh_elf(&[0x90; 10]);
        assert_eq!(flat_binary(&elf), Some(vec![0x90; 10]));
        assert_eq!(flat_binary(b"not an elf"), None);
    }
}
