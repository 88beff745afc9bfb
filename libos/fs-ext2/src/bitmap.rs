//! Allocation: blocks and inodes from the groups' bitmaps, with the group descriptors' and the
//! superblock's free counts (and the groups' directory counts) kept in step, so that e2fsck
//! finds every summary equal to what the bitmaps say.
//!
//! Placement follows ext2's simple rules: a block goes as close after a goal (the file's
//! previous block) as possible, else into the next group with room; a file's inode goes into
//! its directory's group; a new directory into the group with the most free inodes, which
//! spreads the tree over the disk.

use crate::fs::{Inner, State};
use libos_core::{Errno, Result};

/// The first clear bit of `bits` in `from..to`.
fn find_clear(bits: &[u8], from: u32, to: u32) -> Option<u32> {
    let mut bit = from;
    while bit < to {
        let byte = *bits.get((bit / 8) as usize)?;
        if byte == 0xff && bit % 8 == 0 {
            bit += 8;
            continue;
        }
        if byte & (1 << (bit % 8)) == 0 {
            return Some(bit);
        }
        bit += 1;
    }
    None
}

/// Sets (`value`) or clears bit `bit`; returns its old value, `None` if out of the block.
fn flip(bits: &mut [u8], bit: u32, value: bool) -> Option<bool> {
    let byte = bits.get_mut((bit / 8) as usize)?;
    let mask = 1u8 << (bit % 8);
    let old = *byte & mask != 0;
    if value {
        *byte |= mask;
    } else {
        *byte &= !mask;
    }
    Some(old)
}

fn corrupt(what: core::fmt::Arguments<'_>) -> Errno {
    log::warn!("ext2: {what}");
    Errno::EUCLEAN
}

impl Inner {
    /// Allocates a block, as near after `goal` as possible. Errors: `ENOSPC`, `EUCLEAN`.
    pub fn alloc_block(&self, st: &mut State, goal: u32) -> Result<u32> {
        self.writable()?;
        if st.free_blocks == 0 {
            return Err(Errno::ENOSPC);
        }
        let geo = &self.geo;
        let goal = if geo.valid_block(goal) { goal } else { geo.first_data_block };
        let start_group = (goal - geo.first_data_block) / geo.blocks_per_group;
        for step in 0..geo.groups {
            let group = (start_group + step) % geo.groups;
            let desc = st.groups[group as usize];
            if desc.free_blocks == 0 {
                continue;
            }
            let count = geo.blocks_in_group(group);
            // In the goal's group, search from the goal first, then wrap around.
            let from = if step == 0 { (goal - geo.first_data_block) % geo.blocks_per_group } else { 0 };
            let found = self.cache.with_block(u64::from(desc.block_bitmap), |bits| {
                find_clear(bits, from, count).or_else(|| find_clear(bits, 0, from.min(count)))
            })?;
            let Some(bit) = found else {
                log::warn!("ext2: group {group} counts {} free blocks but its bitmap is full", desc.free_blocks);
                continue;
            };
            let block = geo.group_first_block(group) + bit;
            let table = desc.inode_table..desc.inode_table.saturating_add(geo.itable_blocks);
            if block == desc.block_bitmap || block == desc.inode_bitmap || table.contains(&block) {
                return Err(corrupt(format_args!("block bitmap of group {group} marks metadata block {block} free")));
            }
            self.cache.with_block_mut(u64::from(desc.block_bitmap), |bits| flip(bits, bit, true))?;
            let desc = &mut st.groups[group as usize];
            desc.free_blocks -= 1;
            st.free_blocks -= 1;
            self.write_group(st, group)?;
            return Ok(block);
        }
        Err(Errno::ENOSPC)
    }

    /// Returns `block` to its group. `EUCLEAN` if it is not a data block or already free.
    pub fn free_block(&self, st: &mut State, block: u32) -> Result<()> {
        self.writable()?;
        // A block leaves its file: no remembered run may lead to it any more.
        st.runs.get_mut().forget_all();
        self.check_block(block)?;
        let geo = &self.geo;
        let group = (block - geo.first_data_block) / geo.blocks_per_group;
        let bit = (block - geo.first_data_block) % geo.blocks_per_group;
        let bitmap = st.groups.get(group as usize).ok_or(Errno::EUCLEAN)?.block_bitmap;
        let was_set = self.cache.with_block_mut(u64::from(bitmap), |bits| flip(bits, bit, false))?;
        if was_set != Some(true) {
            if was_set == Some(false) {
                // Undo nothing: the bit was already clear. Someone freed it twice.
                return Err(corrupt(format_args!("freeing block {block}, which is already free")));
            }
            return Err(Errno::EUCLEAN);
        }
        let limit = geo.blocks_in_group(group);
        let desc = &mut st.groups[group as usize];
        if desc.free_blocks >= limit {
            return Err(corrupt(format_args!("group {group} free block count overflows")));
        }
        desc.free_blocks += 1;
        st.free_blocks += 1;
        self.write_group(st, group)
    }

    /// Allocates an inode for a new node in directory `parent`. Errors: `ENOSPC`, `EUCLEAN`.
    pub fn alloc_inode(&self, st: &mut State, parent: u32, is_dir: bool) -> Result<u32> {
        self.writable()?;
        if st.free_inodes == 0 {
            return Err(Errno::ENOSPC);
        }
        let geo = &self.geo;
        let parent_group = parent.saturating_sub(1) / geo.inodes_per_group % geo.groups;
        let start_group = if is_dir {
            (0..geo.groups).max_by_key(|&g| (st.groups[g as usize].free_inodes, st.groups[g as usize].free_blocks)).unwrap_or(0)
        } else {
            parent_group
        };
        for step in 0..geo.groups {
            let group = (start_group + step) % geo.groups;
            let desc = st.groups[group as usize];
            if desc.free_inodes == 0 {
                continue;
            }
            // Inodes below `first_ino` are reserved (root, journal, resize, ...). Bits below
            // the group's hint were found set before; search from the start only if the hint
            // finds nothing (a corrupt bitmap may break that rule).
            let first = if group == 0 { geo.first_ino - 1 } else { 0 }.min(geo.inodes_per_group);
            let hint = st.inode_hints.get(group as usize).copied().unwrap_or(0).max(first);
            let found = self.cache.with_block(u64::from(desc.inode_bitmap), |bits| {
                find_clear(bits, hint, geo.inodes_per_group).or_else(|| find_clear(bits, first, hint.min(geo.inodes_per_group)))
            })?;
            let Some(bit) = found else {
                log::warn!("ext2: group {group} counts {} free inodes but its bitmap is full", desc.free_inodes);
                continue;
            };
            self.cache.with_block_mut(u64::from(desc.inode_bitmap), |bits| flip(bits, bit, true))?;
            if let Some(hint) = st.inode_hints.get_mut(group as usize) {
                *hint = bit + 1;
            }
            st.dirs.forget(group * geo.inodes_per_group + bit + 1);
            let desc = &mut st.groups[group as usize];
            desc.free_inodes -= 1;
            if is_dir {
                desc.used_dirs += 1;
            }
            st.free_inodes -= 1;
            self.write_group(st, group)?;
            return Ok(group * geo.inodes_per_group + bit + 1);
        }
        Err(Errno::ENOSPC)
    }

    /// Clears inode `ino`'s bitmap bit and counts it free. `EUCLEAN` if it was free.
    pub fn free_inode_bit(&self, st: &mut State, ino: u32, is_dir: bool) -> Result<()> {
        self.writable()?;
        let geo = &self.geo;
        if ino < geo.first_ino || ino > geo.inodes_count {
            return Err(corrupt(format_args!("freeing reserved or invalid inode {ino}")));
        }
        let group = (ino - 1) / geo.inodes_per_group;
        let bit = (ino - 1) % geo.inodes_per_group;
        let bitmap = st.groups[group as usize].inode_bitmap;
        let was_set = self.cache.with_block_mut(u64::from(bitmap), |bits| flip(bits, bit, false))?;
        if was_set != Some(true) {
            return Err(corrupt(format_args!("freeing inode {ino}, which is already free")));
        }
        if let Some(hint) = st.inode_hints.get_mut(group as usize) {
            *hint = (*hint).min(bit);
        }
        let desc = &mut st.groups[group as usize];
        if desc.free_inodes >= geo.inodes_per_group || (is_dir && desc.used_dirs == 0) {
            return Err(corrupt(format_args!("group {group} inode counts are wrong")));
        }
        desc.free_inodes += 1;
        if is_dir {
            desc.used_dirs -= 1;
        }
        st.free_inodes += 1;
        self.write_group(st, group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_search_skips_full_bytes_and_stops_at_the_limit() {
        let bits = [0xff, 0xff, 0b1110_1111, 0x00];
        assert_eq!(find_clear(&bits, 0, 32), Some(20));
        assert_eq!(find_clear(&bits, 21, 32), Some(24));
        assert_eq!(find_clear(&bits, 0, 20), None);
        assert_eq!(find_clear(&bits, 0, 1000), Some(20));
        assert_eq!(find_clear(&[0xff], 0, 1000), None, "past the block is not free");
        let mut bits = [0u8; 2];
        assert_eq!(flip(&mut bits, 9, true), Some(false));
        assert_eq!(bits, [0, 2]);
        assert_eq!(flip(&mut bits, 16, true), None);
    }
}
