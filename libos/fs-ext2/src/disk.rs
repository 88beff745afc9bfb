//! The fixed on-disk layout: the superblock, the group descriptor table and the feature
//! flags, and the checks a superblock must pass before anything else is read.
//!
//! An ext2 volume is an array of blocks (1 to 64 KiB) cut into *block groups*. The superblock
//! sits at byte 1024 whatever the block size; the group descriptor table follows in the next
//! block. Each group descriptor names the group's block bitmap, inode bitmap and inode table.
//! With `sparse_super`, groups 0, 1 and the powers of 3, 5 and 7 carry backup copies of both;
//! mke2fs marks those blocks used, so the allocator never sees them (this driver, like Linux's,
//! updates only the primary copies).
//!
//! [`Geometry`] is the validated, constant part of the superblock. Everything read here comes
//! from a disk that may be corrupt, so each field is range-checked and later arithmetic can
//! rely on the invariants listed on [`Geometry`].

use libos_core::{Errno, Result};
use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `s_magic`.
pub const MAGIC: u16 = 0xef53;
/// Byte offset of the superblock on the device.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// The root directory's inode.
pub const ROOT_INO: u32 = 2;
/// A group descriptor's size without the `64bit` feature.
pub const GROUP_DESC_SIZE: usize = 32;
/// `s_state`: cleanly unmounted.
pub const STATE_VALID: u16 = 1;

// `s_feature_compat` bits never stop a mount: a driver that ignores them still reads and
// writes the volume correctly (`dir_index` directories are read linearly, see `dir`).

/// `s_feature_incompat` bits: a driver that does not understand one must not mount at all.
pub mod incompat {
    /// Directory entries carry the file type.
    pub const FILETYPE: u32 = 0x0002;
    /// Every bit this driver supports.
    pub const SUPPORTED: u32 = FILETYPE;
    /// Names of the bits, for the refusal message.
    pub const NAMES: &[(u32, &str)] = &[
        (0x0001, "compression"),
        (0x0004, "needs_recovery (journal not replayed)"),
        (0x0008, "journal_dev"),
        (0x0010, "meta_bg"),
        (0x0040, "extents"),
        (0x0080, "64bit"),
        (0x0100, "mmp"),
        (0x0200, "flex_bg"),
        (0x0400, "ea_inode"),
        (0x1000, "dirdata"),
        (0x2000, "metadata_csum_seed"),
        (0x4000, "large_dir"),
        (0x8000, "inline_data"),
        (0x10000, "encrypt"),
        (0x20000, "casefold"),
    ];
}

/// `s_feature_ro_compat` bits: a driver that does not understand one may mount read-only.
pub mod ro_compat {
    /// Superblock backups only in groups 0, 1 and powers of 3, 5, 7.
    pub const SPARSE_SUPER: u32 = 0x0001;
    /// Files may be 2 GiB or larger (`i_size_high` is used).
    pub const LARGE_FILE: u32 = 0x0002;
    /// Unused by everyone (the old "btree dir" bit).
    pub const BTREE_DIR: u32 = 0x0004;
    /// Every bit this driver writes correctly.
    pub const SUPPORTED: u32 = SPARSE_SUPER | LARGE_FILE | BTREE_DIR;
    /// Names of the bits, for the read-only message.
    pub const NAMES: &[(u32, &str)] = &[
        (0x0008, "huge_file"),
        (0x0010, "gdt_csum"),
        (0x0020, "dir_nlink"),
        (0x0040, "extra_isize"),
        (0x0100, "quota"),
        (0x0200, "bigalloc"),
        (0x0400, "metadata_csum"),
        (0x1000, "readonly"),
        (0x2000, "project"),
    ];
}

/// The superblock fields this driver reads or writes (the first 104 bytes; the rest is kept
/// as it is on disk).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
pub struct RawSuperblock {
    pub inodes_count: U32,
    pub blocks_count: U32,
    pub r_blocks_count: U32,
    pub free_blocks_count: U32,
    pub free_inodes_count: U32,
    pub first_data_block: U32,
    pub log_block_size: U32,
    pub log_frag_size: U32,
    pub blocks_per_group: U32,
    pub frags_per_group: U32,
    pub inodes_per_group: U32,
    pub mtime: U32,
    pub wtime: U32,
    pub mnt_count: U16,
    pub max_mnt_count: U16,
    pub magic: U16,
    pub state: U16,
    pub errors: U16,
    pub minor_rev_level: U16,
    pub lastcheck: U32,
    pub checkinterval: U32,
    pub creator_os: U32,
    pub rev_level: U32,
    pub def_resuid: U16,
    pub def_resgid: U16,
    pub first_ino: U32,
    pub inode_size: U16,
    pub block_group_nr: U16,
    pub feature_compat: U32,
    pub feature_incompat: U32,
    pub feature_ro_compat: U32,
}

/// A group descriptor as stored (32 bytes).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy)]
#[repr(C)]
pub struct RawGroupDesc {
    pub block_bitmap: U32,
    pub inode_bitmap: U32,
    pub inode_table: U32,
    pub free_blocks_count: U16,
    pub free_inodes_count: U16,
    pub used_dirs_count: U16,
    pub flags: U16,
    pub reserved: [u8; 12],
}

/// One block group's descriptor, in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupDesc {
    pub block_bitmap: u32,
    pub inode_bitmap: u32,
    pub inode_table: u32,
    pub free_blocks: u32,
    pub free_inodes: u32,
    pub used_dirs: u32,
}

/// How the volume may be mounted, as its features allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Every feature is understood.
    ReadWrite,
    /// A read-only-compatible feature is not understood (named for the log).
    ReadOnly(&'static str),
}

/// The validated, constant geometry of a volume.
///
/// Invariants (checked by [`Geometry::parse`]): `block_size` is a power of two from 1 KiB to
/// 64 KiB; `blocks_per_group` and `inodes_per_group` are in `1..=8 * block_size` (one bitmap
/// block each); `inodes_count == groups * inodes_per_group`; `first_data_block <
/// blocks_count`; the volume fits the device; `inode_size` is a power of two in
/// `128..=block_size`; `first_ino` is in `3..=inodes_count`.
#[derive(Clone, Debug)]
pub struct Geometry {
    pub block_size: u32,
    pub blocks_count: u32,
    pub first_data_block: u32,
    pub blocks_per_group: u32,
    pub inodes_per_group: u32,
    pub inodes_count: u32,
    pub groups: u32,
    pub inode_size: u32,
    pub first_ino: u32,
    /// Blocks of one group's inode table.
    pub itable_blocks: u32,
    /// Blocks of the group descriptor table.
    pub gdt_blocks: u32,
    /// Directory entries carry file types (`filetype`).
    pub filetype: bool,
    /// The largest file size the block map and `i_blocks` can describe.
    pub max_file_size: u64,
}

impl Geometry {
    /// Checks `sb` against the device (`device_bytes`) and returns the geometry and how the
    /// volume may be mounted.
    ///
    /// Errors: `EINVAL` when it is not ext2 at all (bad magic), `EOPNOTSUPP` for incompatible
    /// features this driver does not support (logged by name), `EUCLEAN` for values that
    /// cannot be right.
    pub fn parse(sb: &RawSuperblock, device_bytes: u64) -> Result<(Geometry, Access)> {
        if sb.magic.get() != MAGIC {
            return Err(Errno::EINVAL);
        }
        let rev = sb.rev_level.get();
        if rev > 1 {
            log::warn!("ext2: revision {rev} is not supported");
            return Err(Errno::EOPNOTSUPP);
        }
        // Revision 0 has no feature fields (they read as zero) and fixed inode parameters.
        let (incompat, ro_compat) =
            if rev == 0 { (0, 0) } else { (sb.feature_incompat.get(), sb.feature_ro_compat.get()) };
        let unsupported = incompat & !incompat::SUPPORTED;
        if unsupported != 0 {
            for &(bit, name) in incompat::NAMES {
                if unsupported & bit != 0 {
                    log::warn!("ext2: cannot mount: unsupported incompatible feature {name}");
                }
            }
            log::warn!("ext2: incompatible feature bits {unsupported:#x} not supported");
            return Err(Errno::EOPNOTSUPP);
        }
        let access = match ro_compat & !ro_compat::SUPPORTED {
            0 => Access::ReadWrite,
            bits => Access::ReadOnly(
                ro_compat::NAMES.iter().find(|(bit, _)| bits & bit != 0).map_or("unknown ro_compat feature", |n| n.1),
            ),
        };

        let bad = |what: &str| {
            log::warn!("ext2: corrupt superblock: {what}");
            Errno::EUCLEAN
        };
        let log_block_size = sb.log_block_size.get();
        if log_block_size > 6 {
            return Err(bad("block size"));
        }
        let block_size = 1024u32 << log_block_size;
        let blocks_count = sb.blocks_count.get();
        let first_data_block = sb.first_data_block.get();
        let blocks_per_group = sb.blocks_per_group.get();
        let inodes_per_group = sb.inodes_per_group.get();
        let inodes_count = sb.inodes_count.get();
        let bits_per_block = block_size * 8;
        if blocks_per_group == 0 || blocks_per_group > bits_per_block {
            return Err(bad("blocks per group"));
        }
        if inodes_per_group == 0 || inodes_per_group > bits_per_block {
            return Err(bad("inodes per group"));
        }
        if first_data_block >= blocks_count || first_data_block > 1 {
            return Err(bad("first data block"));
        }
        let groups = (blocks_count - first_data_block).div_ceil(blocks_per_group);
        if u64::from(groups) * u64::from(inodes_per_group) != u64::from(inodes_count) {
            return Err(bad("inode count does not match the groups"));
        }
        if u64::from(blocks_count) * u64::from(block_size) > device_bytes {
            log::warn!("ext2: the volume ({blocks_count} blocks of {block_size}) is larger than the device");
            return Err(Errno::EUCLEAN);
        }
        let (inode_size, first_ino) =
            if rev == 0 { (128, 11) } else { (u32::from(sb.inode_size.get()), sb.first_ino.get()) };
        if !inode_size.is_power_of_two() || inode_size < 128 || inode_size > block_size {
            return Err(bad("inode size"));
        }
        if first_ino < 3 || first_ino > inodes_count || inodes_count < ROOT_INO {
            return Err(bad("first inode"));
        }
        let itable_blocks = (inodes_per_group * inode_size).div_ceil(block_size);
        let gdt_blocks = (groups * GROUP_DESC_SIZE as u32).div_ceil(block_size);
        if u64::from(first_data_block) + 1 + u64::from(gdt_blocks) > u64::from(blocks_count) {
            return Err(bad("group descriptor table past the end"));
        }
        Ok((
            Geometry {
                block_size,
                blocks_count,
                first_data_block,
                blocks_per_group,
                inodes_per_group,
                inodes_count,
                groups,
                inode_size,
                first_ino,
                itable_blocks,
                gdt_blocks,
                filetype: incompat & incompat::FILETYPE != 0,
                max_file_size: max_file_size(block_size),
            },
            access,
        ))
    }

    /// Block pointers per indirect block.
    pub fn ptrs_per_block(&self) -> u64 {
        u64::from(self.block_size / 4)
    }

    /// 512-byte sectors per block (`i_blocks` counts in those).
    pub fn sectors_per_block(&self) -> u32 {
        self.block_size / 512
    }

    /// The first block of the group descriptor table.
    pub fn gdt_start(&self) -> u32 {
        self.first_data_block + 1
    }

    /// Where group `group`'s descriptor lives: (block, byte offset).
    pub fn group_desc_location(&self, group: u32) -> (u64, usize) {
        let byte = group as usize * GROUP_DESC_SIZE;
        let block_size = self.block_size as usize;
        (u64::from(self.gdt_start()) + (byte / block_size) as u64, byte % block_size)
    }

    /// Where the superblock lives: (block, byte offset).
    pub fn superblock_location(&self) -> (u64, usize) {
        let block_size = u64::from(self.block_size);
        (SUPERBLOCK_OFFSET / block_size, (SUPERBLOCK_OFFSET % block_size) as usize)
    }

    /// The first block of group `group`.
    pub fn group_first_block(&self, group: u32) -> u32 {
        self.first_data_block + group * self.blocks_per_group
    }

    /// Blocks in group `group` (the last one may be short).
    pub fn blocks_in_group(&self, group: u32) -> u32 {
        (self.blocks_count - self.group_first_block(group)).min(self.blocks_per_group)
    }

    /// True for a block number that lies inside the volume's data area.
    pub fn valid_block(&self, block: u32) -> bool {
        block >= self.first_data_block && block < self.blocks_count
    }

    /// Checks a group descriptor read from disk: its bitmaps and inode table lie inside the
    /// volume and its counts inside the group.
    pub fn check_group(&self, group: u32, desc: &GroupDesc) -> Result<()> {
        let table_end = u64::from(desc.inode_table) + u64::from(self.itable_blocks);
        let ok = self.valid_block(desc.block_bitmap)
            && self.valid_block(desc.inode_bitmap)
            && self.valid_block(desc.inode_table)
            && table_end <= u64::from(self.blocks_count)
            && desc.free_blocks <= self.blocks_in_group(group)
            && desc.free_inodes <= self.inodes_per_group
            && desc.used_dirs <= self.inodes_per_group;
        if ok {
            Ok(())
        } else {
            log::warn!("ext2: corrupt descriptor of group {group}: {desc:?}");
            Err(Errno::EUCLEAN)
        }
    }
}

impl From<RawGroupDesc> for GroupDesc {
    fn from(raw: RawGroupDesc) -> GroupDesc {
        GroupDesc {
            block_bitmap: raw.block_bitmap.get(),
            inode_bitmap: raw.inode_bitmap.get(),
            inode_table: raw.inode_table.get(),
            free_blocks: u32::from(raw.free_blocks_count.get()),
            free_inodes: u32::from(raw.free_inodes_count.get()),
            used_dirs: u32::from(raw.used_dirs_count.get()),
        }
    }
}

impl GroupDesc {
    /// Stores the counts into `raw` (the locations never change).
    pub fn store_counts(&self, raw: &mut RawGroupDesc) {
        // Counts are at most 8 * 65536 per group; the on-disk fields are 16 bits, which is
        // why mke2fs never makes a group with more than 65535 of either.
        raw.free_blocks_count.set(self.free_blocks as u16);
        raw.free_inodes_count.set(self.free_inodes as u16);
        raw.used_dirs_count.set(self.used_dirs as u16);
    }
}

/// The largest file the block map can address with `block_size` blocks, limited (as Linux
/// does) so that `i_blocks`, a 32-bit count of 512-byte sectors, cannot overflow for a fully
/// written file with all its indirect blocks.
fn max_file_size(block_size: u32) -> u64 {
    let ptrs = u64::from(block_size / 4);
    let addressable = 12 + ptrs + ptrs * ptrs + ptrs * ptrs * ptrs;
    let meta = 1 + (1 + ptrs) + (1 + ptrs + ptrs * ptrs);
    let sectors_per_block = u64::from(block_size / 512);
    let by_i_blocks = (u64::from(u32::MAX) / sectors_per_block).saturating_sub(meta);
    addressable.min(by_i_blocks) * u64::from(block_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_file_sizes_match_linux() {
        // Linux ext2 with 1 KiB blocks: 16 GiB and a bit; with 4 KiB blocks: about 2 TiB.
        assert_eq!(max_file_size(1024) / (1 << 30), 16);
        assert_eq!(max_file_size(4096) / (1 << 40), 1);
    }
}
