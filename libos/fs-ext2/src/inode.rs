//! Inodes: the on-disk record ([`RawInode`], plus the "extra" fields of inodes larger than 128
//! bytes), its in-memory form [`Inode`], file types and timestamps.
//!
//! Inodes are read and written through the buffer cache, field by field over the bytes on
//! disk, so what this driver does not understand (the OS-dependent fields, checksums, extended
//! attributes stored in the inode's tail) survives a rewrite unchanged.
//!
//! Timestamps: ext2 stores seconds as a signed 32-bit number. Inodes of 160 bytes or more
//! (mke2fs's default is 256) also hold `*_extra` words with the nanoseconds and two more
//! epoch bits, as ext4 defines them; this driver uses them when present, so times keep
//! nanoseconds and reach past 2038. Times before 1970 read as 1970 (the VFS's times are
//! unsigned).

use libos_core::{Errno, Result};
use libos_vfs::{FileType, Timestamp};
use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Block pointers in an inode: 12 direct, then single, double and triple indirect.
pub const N_BLOCKS: usize = 15;
/// Index of the single-indirect pointer.
pub const IND_BLOCK: usize = 12;
/// The most hard links an inode may have (`EXT2_LINK_MAX`).
pub const LINK_MAX: u16 = 32000;
/// `i_flags`: the directory has a hash-tree index (`EXT2_INDEX_FL`).
pub const INDEX_FL: u32 = 0x1000;
/// A symlink target shorter than this lives in the block pointers ("fast" symlink).
pub const FAST_SYMLINK_MAX: usize = N_BLOCKS * 4;
/// The extra inode bytes this driver writes into inodes that have room (through `crtime_extra`).
pub const EXTRA_ISIZE: u16 = 32;

/// The first 128 bytes of an inode, as stored.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
pub struct RawInode {
    pub mode: U16,
    pub uid: U16,
    pub size: U32,
    pub atime: U32,
    pub ctime: U32,
    pub mtime: U32,
    pub dtime: U32,
    pub gid: U16,
    pub links_count: U16,
    pub blocks: U32,
    pub flags: U32,
    pub osd1: U32,
    pub block: [U32; N_BLOCKS],
    pub generation: U32,
    pub file_acl: U32,
    pub size_high: U32,
    pub faddr: U32,
    pub blocks_high: U16,
    pub file_acl_high: U16,
    pub uid_high: U16,
    pub gid_high: U16,
    pub checksum_lo: U16,
    pub reserved: U16,
}

/// The extra fields after the first 128 bytes (present when `extra_isize` covers them).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
pub struct RawInodeExtra {
    pub extra_isize: U16,
    pub checksum_hi: U16,
    pub ctime_extra: U32,
    pub mtime_extra: U32,
    pub atime_extra: U32,
    pub crtime: U32,
    pub crtime_extra: U32,
}

const BASE_SIZE: usize = 128;
const EXTRA_SIZE: usize = size_of::<RawInodeExtra>();

/// An inode in memory: the fields this driver uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inode {
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: Timestamp,
    pub ctime: Timestamp,
    pub mtime: Timestamp,
    pub crtime: Timestamp,
    pub dtime: u32,
    pub links: u16,
    /// Storage in 512-byte sectors, indirect blocks and the xattr block included.
    pub blocks: u32,
    pub flags: u32,
    pub block: [u32; N_BLOCKS],
    pub file_acl: u32,
    pub generation: u32,
}

impl Inode {
    /// A fresh inode of `file_type` with permission bits `perm`, all times `now`.
    pub fn new(file_type: FileType, perm: u32, owner: libos_vfs::Owner, now: Timestamp) -> Inode {
        Inode {
            mode: (file_type.mode_bits() | (perm & 0o7777)) as u16,
            uid: owner.uid,
            gid: owner.gid,
            size: 0,
            atime: now,
            ctime: now,
            mtime: now,
            crtime: now,
            dtime: 0,
            links: 1,
            blocks: 0,
            flags: 0,
            block: [0; N_BLOCKS],
            file_acl: 0,
            generation: 0,
        }
    }

    /// The node type from the mode; `EUCLEAN` for a type no inode can have.
    pub fn file_type(&self) -> Result<FileType> {
        file_type_of_mode(self.mode).ok_or(Errno::EUCLEAN)
    }

    /// Permission bits.
    pub fn perm(&self) -> u32 {
        u32::from(self.mode) & 0o7777
    }

    /// True if the block pointers address data blocks (regular files, directories, slow
    /// symlinks), false if they hold something else (a fast symlink's target, a device number).
    pub fn has_block_map(&self, sectors_per_block: u32) -> bool {
        match file_type_of_mode(self.mode) {
            Some(FileType::Regular | FileType::Directory) => true,
            Some(FileType::Symlink) => !self.is_fast_symlink(sectors_per_block),
            _ => false,
        }
    }

    /// A symlink whose target lives in the block pointers: it owns no data block (Linux's
    /// test: `i_blocks` minus the xattr block is zero).
    pub fn is_fast_symlink(&self, sectors_per_block: u32) -> bool {
        let xattr_sectors = if self.file_acl != 0 { sectors_per_block } else { 0 };
        self.blocks == xattr_sectors
    }

    /// The block pointers as the 60 bytes they occupy (a fast symlink's target).
    pub fn block_bytes(&self) -> [u8; FAST_SYMLINK_MAX] {
        let mut bytes = [0u8; FAST_SYMLINK_MAX];
        for (chunk, word) in bytes.chunks_exact_mut(4).zip(self.block) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        bytes
    }

    /// Stores `bytes` (at most 60) into the block pointers (a fast symlink's target).
    pub fn set_block_bytes(&mut self, bytes: &[u8]) {
        let mut padded = [0u8; FAST_SYMLINK_MAX];
        let len = bytes.len().min(FAST_SYMLINK_MAX);
        padded[..len].copy_from_slice(&bytes[..len]);
        for (word, chunk) in self.block.iter_mut().zip(padded.chunks_exact(4)) {
            *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
    }

    /// The device number of a character or block device inode (old and new encodings), as
    /// `makedev` encodes it.
    pub fn rdev(&self) -> u64 {
        let (old, new) = (self.block[0], self.block[1]);
        if old != 0 {
            libos_vfs::makedev((old >> 8) & 0xff, old & 0xff)
        } else {
            libos_vfs::makedev((new >> 8) & 0xfff, (new & 0xff) | ((new >> 12) & 0xfff00))
        }
    }

    /// Stores device number `rdev` as Linux's ext2 does: the old 16-bit encoding in the first
    /// block word when major and minor fit in a byte each, else the new 32-bit one in the
    /// second.
    pub fn set_rdev(&mut self, rdev: u64) {
        let (major, minor) = (libos_vfs::dev_major(rdev), libos_vfs::dev_minor(rdev));
        self.block = [0; 15];
        if major < 256 && minor < 256 {
            self.block[0] = (major << 8) | minor;
        } else {
            self.block[1] = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
        }
    }

    /// Decodes the inode stored in `bytes` (the whole on-disk inode).
    pub fn decode(bytes: &[u8]) -> Result<Inode> {
        let (raw, rest) = RawInode::read_from_prefix(bytes).map_err(|_| Errno::EUCLEAN)?;
        let extra = RawInodeExtra::read_from_prefix(rest).ok().map(|(extra, _)| extra);
        let extra_isize = extra.map_or(0, |e| usize::from(e.extra_isize.get()));
        // Each extra field counts only if `extra_isize` covers it.
        let covered = |end: usize| extra.filter(|_| extra_isize >= end);
        let time = |secs: U32, extra_end: usize, pick: fn(&RawInodeExtra) -> u32| {
            decode_time(secs.get(), covered(extra_end).map(|e| pick(&e)))
        };
        let mode = raw.mode.get();
        let is_regular = file_type_of_mode(mode) == Some(FileType::Regular);
        // Revision 0 reused `i_size_high` as `i_dir_acl`; only regular files have a high size.
        let size_high = if is_regular { raw.size_high.get() } else { 0 };
        Ok(Inode {
            mode,
            uid: u32::from(raw.uid.get()) | u32::from(raw.uid_high.get()) << 16,
            gid: u32::from(raw.gid.get()) | u32::from(raw.gid_high.get()) << 16,
            size: u64::from(raw.size.get()) | u64::from(size_high) << 32,
            atime: time(raw.atime, 20, |e| e.atime_extra.get()),
            ctime: time(raw.ctime, 8, |e| e.ctime_extra.get()),
            mtime: time(raw.mtime, 12, |e| e.mtime_extra.get()),
            crtime: covered(28).map_or(Timestamp(0), |e| decode_time(e.crtime.get(), Some(e.crtime_extra.get()))),
            dtime: raw.dtime.get(),
            links: raw.links_count.get(),
            blocks: raw.blocks.get(),
            flags: raw.flags.get(),
            block: raw.block.map(|b| b.get()),
            file_acl: raw.file_acl.get(),
            generation: raw.generation.get(),
        })
    }

    /// Writes the fields into the on-disk inode `bytes`, keeping the bytes it does not own.
    /// With `fresh`, the whole inode is zeroed first and the extra fields are set up.
    pub fn encode(&self, bytes: &mut [u8], fresh: bool) -> Result<()> {
        if bytes.len() < BASE_SIZE {
            return Err(Errno::EUCLEAN);
        }
        if fresh {
            bytes.fill(0);
            if bytes.len() >= BASE_SIZE + EXTRA_SIZE {
                bytes[BASE_SIZE..BASE_SIZE + 2].copy_from_slice(&EXTRA_ISIZE.to_le_bytes());
            }
        }
        let (mut raw, _) = RawInode::read_from_prefix(bytes).map_err(|_| Errno::EUCLEAN)?;
        raw.mode.set(self.mode);
        raw.uid.set(self.uid as u16);
        raw.uid_high.set((self.uid >> 16) as u16);
        raw.gid.set(self.gid as u16);
        raw.gid_high.set((self.gid >> 16) as u16);
        raw.size.set(self.size as u32);
        raw.size_high.set((self.size >> 32) as u32);
        let (atime, atime_extra) = encode_time(self.atime);
        let (ctime, ctime_extra) = encode_time(self.ctime);
        let (mtime, mtime_extra) = encode_time(self.mtime);
        raw.atime.set(atime);
        raw.ctime.set(ctime);
        raw.mtime.set(mtime);
        raw.dtime.set(self.dtime);
        raw.links_count.set(self.links);
        raw.blocks.set(self.blocks);
        raw.flags.set(self.flags);
        raw.block = self.block.map(U32::new);
        raw.file_acl.set(self.file_acl);
        raw.generation.set(self.generation);
        raw.write_to_prefix(bytes).map_err(|_| Errno::EUCLEAN)?;
        let extra_bytes = &mut bytes[BASE_SIZE..];
        if let Ok((mut extra, _)) = RawInodeExtra::read_from_prefix(extra_bytes) {
            let isize = usize::from(extra.extra_isize.get());
            if isize >= 8 {
                extra.ctime_extra.set(ctime_extra);
            }
            if isize >= 12 {
                extra.mtime_extra.set(mtime_extra);
            }
            if isize >= 16 {
                extra.atime_extra.set(atime_extra);
            }
            if isize >= 24 && fresh {
                let (crtime, crtime_extra) = encode_time(self.crtime);
                extra.crtime.set(crtime);
                extra.crtime_extra.set(crtime_extra);
            }
            extra.write_to_prefix(extra_bytes).map_err(|_| Errno::EUCLEAN)?;
        }
        Ok(())
    }
}

/// The node type of an inode mode, `None` for an invalid one.
pub fn file_type_of_mode(mode: u16) -> Option<FileType> {
    FileType::from_mode(u32::from(mode))
}

/// The file type byte of a directory entry (`filetype` feature).
pub fn dirent_type(file_type: FileType) -> u8 {
    match file_type {
        FileType::Regular => 1,
        FileType::Directory => 2,
        FileType::CharDevice => 3,
        FileType::BlockDevice => 4,
        FileType::Fifo => 5,
        FileType::Socket => 6,
        FileType::Symlink => 7,
    }
}

/// The node type a directory entry's type byte names, `None` for "unknown".
pub fn file_type_of_dirent(byte: u8) -> Option<FileType> {
    Some(match byte {
        1 => FileType::Regular,
        2 => FileType::Directory,
        3 => FileType::CharDevice,
        4 => FileType::BlockDevice,
        5 => FileType::Fifo,
        6 => FileType::Socket,
        7 => FileType::Symlink,
        _ => return None,
    })
}

const NANOS: u64 = 1_000_000_000;
const EPOCH_MASK: u32 = 3;

/// Seconds (signed 32 bits) plus the optional extra word (`nanoseconds << 2 | epoch`).
fn decode_time(secs: u32, extra: Option<u32>) -> Timestamp {
    let mut seconds = i64::from(secs as i32);
    let mut nanos = 0;
    if let Some(extra) = extra {
        seconds += i64::from(extra & EPOCH_MASK) << 32;
        nanos = u64::from(extra >> 2).min(NANOS - 1);
    }
    match u64::try_from(seconds) {
        Ok(seconds) => Timestamp(seconds * NANOS + nanos),
        Err(_) => Timestamp(0),
    }
}

/// The inverse of [`decode_time`]: (seconds word, extra word). Times past the year 2446 (the
/// end of the 34-bit range) are stored as that end.
fn encode_time(time: Timestamp) -> (u32, u32) {
    let seconds = time.secs().min((1 << 34) - 1 - (1 << 31));
    let low = seconds as u32;
    // The epoch bits say how many times 2^32 to add to the sign-extended low word.
    let epoch = ((seconds as i64 - i64::from(low as i32)) >> 32) as u32 & EPOCH_MASK;
    (low, (time.subsec_nanos() << 2) | epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_with_nanoseconds_and_past_2038() {
        for t in [0, 1_000_000_007, 1_750_000_000_123_456_789, 3_000_000_000 * NANOS + 5] {
            let (secs, extra) = encode_time(Timestamp(t));
            assert_eq!(decode_time(secs, Some(extra)), Timestamp(t));
        }
        // Without extra fields: whole seconds, and a negative time reads as 1970.
        assert_eq!(decode_time(5, None), Timestamp(5 * NANOS));
        assert_eq!(decode_time(u32::MAX, None), Timestamp(0));
    }

    #[test]
    fn fast_symlink_bytes_round_trip() {
        let mut inode = Inode::new(FileType::Symlink, 0o777, libos_vfs::Owner::default(), Timestamp(0));
        inode.set_block_bytes(b"/some/target");
        assert_eq!(&inode.block_bytes()[..12], b"/some/target");
        assert!(inode.is_fast_symlink(2));
    }
}
