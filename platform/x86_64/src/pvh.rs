//! The PVH boot information (`struct hvm_start_info`, Xen's `arch-x86/hvm/start_info.h`):
//! where the loader put the command line, the memory map and the ACPI RSDP.
//!
//! Parsing is pure: it reads guest-physical memory through a caller-supplied function, so the
//! host tests feed it fabricated structures, including broken ones.

use core::fmt;

/// `hvm_start_info.magic`.
pub const START_INFO_MAGIC: u32 = 0x336e_c578;
/// Longest kernel command line we accept (bytes, without the terminating NUL).
pub const MAX_CMDLINE: usize = 4096;
/// Most memory-map entries we accept.
pub const MAX_MEMMAP_ENTRIES: usize = 64;

/// `hvm_memmap_table_entry.type` of usable RAM.
pub const MEMMAP_RAM: u32 = 1;

/// One entry of the PVH memory map (an e820 entry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemmapEntry {
    /// First byte.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// 1 RAM, 2 reserved, 3 ACPI reclaimable, 4 ACPI NVS, 5 unusable, 7 persistent memory.
    pub kind: u32,
}

/// Why the boot information could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PvhError {
    /// `start_info` does not start with [`START_INFO_MAGIC`] (not a PVH boot).
    BadMagic(u32),
    /// The loader passed no memory map (start_info version 0, or zero entries).
    NoMemoryMap,
    /// More memory-map entries than [`MAX_MEMMAP_ENTRIES`].
    TooManyMemmapEntries(u32),
    /// The command line has no NUL within [`MAX_CMDLINE`] bytes.
    CmdlineTooLong,
    /// The command line is not UTF-8.
    CmdlineNotUtf8,
    /// A pointer in start_info leads outside the memory we can read this early.
    Unreadable(u64),
}

impl fmt::Display for PvhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PvhError::BadMagic(m) => write!(f, "PVH start_info has magic {m:#x}, expected {START_INFO_MAGIC:#x} (was the kernel started by a PVH loader?)"),
            PvhError::NoMemoryMap => write!(f, "PVH start_info carries no memory map (start_info version 1 with memmap entries is required)"),
            PvhError::TooManyMemmapEntries(n) => write!(f, "PVH memory map has {n} entries, at most {MAX_MEMMAP_ENTRIES} are supported"),
            PvhError::CmdlineTooLong => write!(f, "kernel command line is longer than {MAX_CMDLINE} bytes"),
            PvhError::CmdlineNotUtf8 => write!(f, "kernel command line is not valid UTF-8"),
            PvhError::Unreadable(addr) => write!(f, "PVH start_info points at {addr:#x}, outside readable boot memory"),
        }
    }
}

/// The parts of `hvm_start_info` libos uses, copied out of loader memory.
#[derive(Clone, Debug)]
pub struct StartInfo {
    /// The command line (without NUL), in the caller's buffer.
    pub cmdline_len: usize,
    /// The memory map.
    pub memmap: [MemmapEntry; MAX_MEMMAP_ENTRIES],
    /// Valid entries of `memmap`.
    pub memmap_len: usize,
    /// Physical address of the ACPI RSDP, if the loader provided one.
    pub rsdp: Option<u64>,
    /// The first module the loader placed in memory (QEMU's `-initrd`): physical start and
    /// length in bytes; `None` without one, or when it is empty or runs past 2^64.
    pub initrd: Option<(u64, u64)>,
}

impl StartInfo {
    /// The memory map entries.
    pub fn memmap(&self) -> &[MemmapEntry] {
        &self.memmap[..self.memmap_len]
    }
}

/// Reads guest-physical memory: fills the buffer from `addr`, or fails when unreadable.
pub type ReadPhys<'a> = &'a dyn Fn(u64, &mut [u8]) -> Result<(), PvhError>;

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().expect("8 bytes"))
}

/// Parses `hvm_start_info` at `addr`, copying the command line into `cmdline` (which must hold
/// [`MAX_CMDLINE`] bytes).
pub fn parse(addr: u64, read: ReadPhys<'_>, cmdline: &mut [u8]) -> Result<StartInfo, PvhError> {
    let mut header = [0u8; 56];
    read(addr, &mut header)?;
    let magic = u32_at(&header, 0);
    if magic != START_INFO_MAGIC {
        return Err(PvhError::BadMagic(magic));
    }
    let version = u32_at(&header, 4);
    let nr_modules = u32_at(&header, 12);
    let modlist_paddr = u64_at(&header, 16);
    let cmdline_paddr = u64_at(&header, 24);
    let rsdp_paddr = u64_at(&header, 32);
    let (memmap_paddr, memmap_entries) =
        if version >= 1 { (u64_at(&header, 40), u32_at(&header, 48)) } else { (0, 0) };

    if memmap_paddr == 0 || memmap_entries == 0 {
        return Err(PvhError::NoMemoryMap);
    }
    if memmap_entries as usize > MAX_MEMMAP_ENTRIES {
        return Err(PvhError::TooManyMemmapEntries(memmap_entries));
    }
    let mut info = StartInfo {
        cmdline_len: 0,
        memmap: [MemmapEntry::default(); MAX_MEMMAP_ENTRIES],
        memmap_len: memmap_entries as usize,
        rsdp: (rsdp_paddr != 0).then_some(rsdp_paddr),
        initrd: None,
    };
    if nr_modules > 0 && modlist_paddr != 0 {
        // hvm_modlist_entry: paddr, size, cmdline_paddr, reserved.
        let mut entry = [0u8; 32];
        read(modlist_paddr, &mut entry)?;
        let (start, len) = (u64_at(&entry, 0), u64_at(&entry, 8));
        info.initrd = (len > 0 && start.checked_add(len).is_some()).then_some((start, len));
    }
    for (i, entry) in info.memmap[..memmap_entries as usize].iter_mut().enumerate() {
        let mut raw = [0u8; 24];
        // The loader's pointer is not trusted to leave room for its entries.
        let at = memmap_paddr.checked_add(24 * i as u64).ok_or(PvhError::Unreadable(memmap_paddr))?;
        read(at, &mut raw)?;
        *entry = MemmapEntry { addr: u64_at(&raw, 0), size: u64_at(&raw, 8), kind: u32_at(&raw, 16) };
    }
    if cmdline_paddr != 0 {
        info.cmdline_len = read_c_string(cmdline_paddr, read, &mut cmdline[..MAX_CMDLINE])?;
        core::str::from_utf8(&cmdline[..info.cmdline_len]).map_err(|_| PvhError::CmdlineNotUtf8)?;
    }
    Ok(info)
}

/// Copies a NUL-terminated string into `buf`, returning its length without the NUL.
fn read_c_string(addr: u64, read: ReadPhys<'_>, buf: &mut [u8]) -> Result<usize, PvhError> {
    const CHUNK: usize = 64;
    let mut len = 0;
    loop {
        let mut chunk = [0u8; CHUNK];
        read(addr.checked_add(len as u64).ok_or(PvhError::Unreadable(addr))?, &mut chunk)?;
        for &byte in &chunk {
            if byte == 0 {
                return Ok(len);
            }
            if len == buf.len() {
                return Err(PvhError::CmdlineTooLong);
            }
            buf[len] = byte;
            len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Guest memory for tests: a byte vector at physical address 0.
    struct Memory(Vec<u8>);

    impl Memory {
        fn new() -> Memory {
            Memory(vec![0; 0x20000])
        }
        fn put(&mut self, addr: u64, bytes: &[u8]) {
            self.0[addr as usize..addr as usize + bytes.len()].copy_from_slice(bytes);
        }
        fn start_info(&mut self, magic: u32, version: u32, cmdline: u64, memmap: u64, entries: u32) {
            self.start_info_with_modules(magic, version, cmdline, memmap, entries, 0, 0);
        }
        #[allow(clippy::too_many_arguments)]
        fn start_info_with_modules(&mut self, magic: u32, version: u32, cmdline: u64, memmap: u64, entries: u32, modules: u32, modlist: u64) {
            let mut s = Vec::new();
            s.extend_from_slice(&magic.to_le_bytes());
            s.extend_from_slice(&version.to_le_bytes());
            s.extend_from_slice(&0u32.to_le_bytes()); // flags
            s.extend_from_slice(&modules.to_le_bytes());
            s.extend_from_slice(&modlist.to_le_bytes());
            s.extend_from_slice(&cmdline.to_le_bytes());
            s.extend_from_slice(&0xf0000u64.to_le_bytes()); // rsdp
            s.extend_from_slice(&memmap.to_le_bytes());
            s.extend_from_slice(&entries.to_le_bytes());
            s.extend_from_slice(&0u32.to_le_bytes());
            self.put(0x1000, &s);
        }
        fn memmap(&mut self, addr: u64, entries: &[(u64, u64, u32)]) {
            for (i, &(a, len, kind)) in entries.iter().enumerate() {
                let mut e = Vec::new();
                e.extend_from_slice(&a.to_le_bytes());
                e.extend_from_slice(&len.to_le_bytes());
                e.extend_from_slice(&kind.to_le_bytes());
                e.extend_from_slice(&0u32.to_le_bytes());
                self.put(addr + 24 * i as u64, &e);
            }
        }
        fn parse(&self) -> Result<(StartInfo, String), PvhError> {
            let read = |addr: u64, buf: &mut [u8]| {
                let end = addr as usize + buf.len();
                let src = self.0.get(addr as usize..end).ok_or(PvhError::Unreadable(addr))?;
                buf.copy_from_slice(src);
                Ok(())
            };
            let mut cmdline = [0u8; MAX_CMDLINE];
            let info = parse(0x1000, &read, &mut cmdline)?;
            let text = String::from_utf8(cmdline[..info.cmdline_len].to_vec()).unwrap();
            Ok((info, text))
        }
    }

    #[test]
    fn parses_cmdline_memmap_and_rsdp() {
        let mut m = Memory::new();
        m.start_info(START_INFO_MAGIC, 1, 0x2000, 0x3000, 2);
        m.put(0x2000, b"loglevel=debug -- --exit 3\0");
        m.memmap(0x3000, &[(0, 0x9fc00, 1), (0x100000, 0x700000, 1)]);
        let (info, cmdline) = m.parse().unwrap();
        assert_eq!(cmdline, "loglevel=debug -- --exit 3");
        assert_eq!(info.memmap().len(), 2);
        assert_eq!(info.memmap()[1], MemmapEntry { addr: 0x100000, size: 0x700000, kind: 1 });
        assert_eq!(info.rsdp, Some(0xf0000));
    }

    #[test]
    fn the_first_module_is_the_initrd() {
        let mut m = Memory::new();
        m.start_info(START_INFO_MAGIC, 1, 0, 0x3000, 1);
        m.memmap(0x3000, &[(0x100000, 0x700000, 1)]);
        assert_eq!(m.parse().unwrap().0.initrd, None, "no modules");
        m.start_info_with_modules(START_INFO_MAGIC, 1, 0, 0x3000, 1, 1, 0x5000);
        let mut entry = Vec::new();
        for word in [0x60_0000u64, 12345, 0, 0] {
            entry.extend_from_slice(&word.to_le_bytes());
        }
        m.put(0x5000, &entry);
        assert_eq!(m.parse().unwrap().0.initrd, Some((0x60_0000, 12345)));
        m.put(0x5008, &0u64.to_le_bytes());
        assert_eq!(m.parse().unwrap().0.initrd, None, "an empty module");
        m.put(0x5000, &(u64::MAX - 4).to_le_bytes());
        m.put(0x5008, &16u64.to_le_bytes());
        assert_eq!(m.parse().unwrap().0.initrd, None, "a module past 2^64");
        m.start_info_with_modules(START_INFO_MAGIC, 1, 0, 0x3000, 1, 1, 0x7_0000);
        assert_eq!(m.parse().unwrap_err(), PvhError::Unreadable(0x7_0000), "a module list outside memory");
    }

    #[test]
    fn missing_cmdline_is_empty() {
        let mut m = Memory::new();
        m.start_info(START_INFO_MAGIC, 1, 0, 0x3000, 1);
        m.memmap(0x3000, &[(0x100000, 0x700000, 1)]);
        assert_eq!(m.parse().unwrap().1, "");
    }

    #[test]
    fn rejects_bad_magic_and_missing_memmap() {
        let mut m = Memory::new();
        m.start_info(0x1234, 1, 0, 0x3000, 1);
        assert_eq!(m.parse().unwrap_err(), PvhError::BadMagic(0x1234));
        m.start_info(START_INFO_MAGIC, 0, 0, 0x3000, 1);
        assert_eq!(m.parse().unwrap_err(), PvhError::NoMemoryMap);
        m.start_info(START_INFO_MAGIC, 1, 0, 0x3000, 0);
        assert_eq!(m.parse().unwrap_err(), PvhError::NoMemoryMap);
        m.start_info(START_INFO_MAGIC, 1, 0, 0x3000, 1000);
        assert_eq!(m.parse().unwrap_err(), PvhError::TooManyMemmapEntries(1000));
    }

    #[test]
    fn rejects_overlong_and_non_utf8_cmdline() {
        let mut m = Memory::new();
        m.start_info(START_INFO_MAGIC, 1, 0x4000, 0x3000, 1);
        m.memmap(0x3000, &[(0x100000, 0x700000, 1)]);
        m.put(0x4000, &[b'a'; MAX_CMDLINE + 10]);
        assert_eq!(m.parse().unwrap_err(), PvhError::CmdlineTooLong);
        m.put(0x4000, &[b'a'; MAX_CMDLINE]);
        m.put(0x4000 + MAX_CMDLINE as u64, &[0]);
        assert_eq!(m.parse().unwrap().1.len(), MAX_CMDLINE);
        m.put(0x4000, &[0xff, 0xfe, 0]);
        assert_eq!(m.parse().unwrap_err(), PvhError::CmdlineNotUtf8);
    }

    #[test]
    fn random_start_info_never_panics() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2_000 {
            let mut m = Memory::new();
            let magic = if next() % 2 == 0 { START_INFO_MAGIC } else { next() as u32 };
            m.start_info(magic, (next() % 3) as u32, next() % 0x20000, next() % 0x20000, (next() % 80) as u32);
            for _ in 0..64 {
                let at = next() % 0x1ff00;
                m.put(at, &next().to_le_bytes());
            }
            let _ = m.parse();
        }
    }

    #[test]
    fn pointers_at_the_top_of_the_address_space_are_refused_not_wrapped() {
        // A loader whose memory reads everywhere: a memory map or command line that would run
        // past 2^64 must be an error, not an overflow (a wrap to address 0 in release builds).
        let mut m = Memory::new();
        m.start_info(START_INFO_MAGIC, 1, 0, u64::MAX - 30, 3);
        let header = m.0[0x1000..0x1038].to_vec();
        let everywhere = |addr: u64, buf: &mut [u8]| {
            if addr == 0x1000 {
                buf.copy_from_slice(&header[..buf.len()]);
            } else {
                // RAM entries / command-line bytes without a NUL.
                buf.fill(1);
            }
            Ok(())
        };
        let mut cmdline = [0u8; MAX_CMDLINE];
        assert_eq!(parse(0x1000, &everywhere, &mut cmdline).unwrap_err(), PvhError::Unreadable(u64::MAX - 30));
        let mut m = Memory::new();
        m.start_info(START_INFO_MAGIC, 1, u64::MAX - 10, 0x3000, 1);
        let header = m.0[0x1000..0x1038].to_vec();
        let everywhere = |addr: u64, buf: &mut [u8]| {
            if addr == 0x1000 {
                buf.copy_from_slice(&header[..buf.len()]);
            } else {
                buf.fill(1);
            }
            Ok(())
        };
        assert_eq!(parse(0x1000, &everywhere, &mut cmdline).unwrap_err(), PvhError::Unreadable(u64::MAX - 10));
    }

    #[test]
    fn unreadable_pointer_is_an_error_not_a_crash() {
        let mut m = Memory::new();
        m.start_info(START_INFO_MAGIC, 1, 0x4000_0000, 0x3000, 1);
        m.memmap(0x3000, &[(0x100000, 0x700000, 1)]);
        assert_eq!(m.parse().unwrap_err(), PvhError::Unreadable(0x4000_0000));
    }
}
