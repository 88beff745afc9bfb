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

/// A function symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// Start address.
    pub address: u64,
    /// Size in bytes.
    pub size: u64,
    /// Demangled name.
    pub name: String,
}

/// The function symbols of an ELF64 image's `.symtab`, sorted by address (empty when stripped).
pub fn function_symbols(image: &[u8]) -> Vec<Symbol> {
    let u16_at = |o: usize| image.get(o..o + 2).map_or(0, |b| u16::from_le_bytes([b[0], b[1]])) as usize;
    let u32_at = |o: usize| image.get(o..o + 4).map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])));
    let u64_at = |o: usize| image.get(o..o + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    if image.len() < 64 || &image[..4] != b"\x7fELF" || image[4] != 2 {
        return Vec::new();
    }
    let (shoff, shentsize, shnum) = (u64_at(40) as usize, u16_at(58), u16_at(60));
    let section = |i: usize| shoff + i * shentsize;
    let Some(symtab) = (0..shnum).map(section).find(|&s| u32_at(s + 4) == 2) else { return Vec::new() };
    let strtab = section(u32_at(symtab + 40) as usize);
    let (strings, entries, count) =
        (u64_at(strtab + 24) as usize, u64_at(symtab + 24) as usize, u64_at(symtab + 32) as usize / 24);
    let mut symbols: Vec<Symbol> = (0..count)
        .map(|i| entries + 24 * i)
        .filter(|&e| image.get(e + 4).is_some_and(|info| info & 0xf == 2)) // STT_FUNC
        .filter_map(|e| {
            let name_start = strings + u32_at(e) as usize;
            let name_len = image.get(name_start..)?.iter().position(|&b| b == 0)?;
            let raw = std::str::from_utf8(&image[name_start..name_start + name_len]).ok()?;
            let name = format!("{:#}", rustc_demangle::demangle(raw));
            Some(Symbol { address: u64_at(e + 8), size: u64_at(e + 16), name })
        })
        .collect();
    symbols.sort_by_key(|s| s.address);
    symbols
}

/// `name+0xoffset` for `address`, if a function symbol covers it.
pub fn symbolize(symbols: &[Symbol], address: u64) -> Option<String> {
    let index = symbols.partition_point(|s| s.address <= address).checked_sub(1)?;
    let symbol = &symbols[index];
    (address < symbol.address + symbol.size.max(1)).then(|| format!("{}+{:#x}", symbol.name, address - symbol.address))
}

/// Adds symbol names to the `#N 0xADDRESS` lines of a crash report's backtrace.
pub fn symbolize_backtrace(console: &str, symbols: &[Symbol]) -> Vec<String> {
    symbolize_backtrace_at(console, symbols, 0)
}

/// [`symbolize_backtrace`] for an image that ran `load_offset` bytes above its link address
/// (the aarch64 image is linked at 0 and relocates itself to where the loader put it).
pub fn symbolize_backtrace_at(console: &str, symbols: &[Symbol], load_offset: u64) -> Vec<String> {
    console
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix('#')?;
            let (depth, address) = rest.split_once(char::is_whitespace)?;
            let address = u64::from_str_radix(address.trim().strip_prefix("0x")?, 16).ok()?;
            let depth: u32 = depth.parse().ok()?;
            // Return addresses point after the call; look up the call instruction itself.
            let lookup = if depth == 0 { address } else { address.saturating_sub(1) };
            let name = lookup.checked_sub(load_offset).and_then(|link| symbolize(symbols, link));
            Some(format!("    #{depth:<2} {address:#018x} {}", name.unwrap_or_else(|| "?".into())))
        })
        .collect()
}

/// The load address an aarch64 crash report states (`  image loaded at 0x...`), if any.
pub fn reported_load_address(console: &str) -> Option<u64> {
    console.lines().find_map(|line| {
        let hex = line.trim_start().strip_prefix("image loaded at 0x")?;
        u64::from_str_radix(hex.split_whitespace().next()?, 16).ok()
    })
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

    #[test]
    fn symbolizes_addresses_inside_functions() {
        let symbols = vec![
            Symbol { address: 0x1000, size: 0x20, name: "a".into() },
            Symbol { address: 0x1020, size: 0x10, name: "b".into() },
        ];
        assert_eq!(symbolize(&symbols, 0x1000).as_deref(), Some("a+0x0"));
        assert_eq!(symbolize(&symbols, 0x1025).as_deref(), Some("b+0x5"));
        assert_eq!(symbolize(&symbols, 0x1030), None);
        assert_eq!(symbolize(&symbols, 0xfff), None);
        let report = "  backtrace:\n    #0  0x0000000000001004\n    #1  0x0000000000001021\n";
        assert_eq!(symbolize_backtrace(report, &symbols), ["    #0  0x0000000000001004 a+0x4", "    #1  0x0000000000001021 b+0x0"]);
        // The same report from an image relocated by 0x4020_0000.
        let moved = "  backtrace:\n    #0  0x0000000040201004\n  image loaded at 0x40200000 (linked at 0)\n";
        assert_eq!(reported_load_address(moved), Some(0x4020_0000));
        assert_eq!(symbolize_backtrace_at(moved, &symbols, 0x4020_0000), ["    #0  0x0000000040201004 a+0x4"]);
    }
}
