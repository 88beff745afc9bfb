//! File contents apart from reading (`read`): writing (allocating blocks, filling holes),
//! truncation, symlink targets, freeing a removed inode, and `fsync`. All data goes through
//! the buffer cache.

use crate::fs::{Inner, State};
use crate::inode::{FAST_SYMLINK_MAX, Inode};
use crate::disk::ro_compat;
use alloc::vec;
use alloc::vec::Vec;
use libos_core::{Errno, Result};
use libos_vfs::FileType;

impl Inner {
    /// Writes `data` at `offset` of `inode` (inode number `ino`), allocating blocks. Returns
    /// the bytes written: short if the disk fills up after some were written, `ENOSPC` if
    /// none could be; `EFBIG` past the largest file. Updates and writes the inode.
    pub fn write_data(&self, st: &mut State, ino: u32, inode: &mut Inode, offset: u64, data: &[u8]) -> Result<usize> {
        self.writable()?;
        if data.is_empty() {
            return Ok(0);
        }
        let max = self.geo.max_file_size;
        if offset >= max {
            return Err(Errno::EFBIG);
        }
        let len = (max - offset).min(data.len() as u64) as usize;
        let block_size = u64::from(self.geo.block_size);
        let mut done = 0;
        let mut failure = None;
        while done < len {
            let at = offset + done as u64;
            let lblock = at / block_size;
            let within = (at % block_size) as usize;
            let n = (block_size as usize - within).min(len - done);
            let goal = self.goal_for(ino, inode, lblock);
            let (block, fresh) = match self.bmap_alloc(st, inode, lblock, goal) {
                Ok(found) => found,
                Err(errno) => {
                    failure = Some(errno);
                    break;
                }
            };
            let block = u64::from(block);
            if fresh && n < block_size as usize {
                // A new block's old contents must not show through around the write.
                self.cache.zero(block)?;
            }
            self.cache.write(block, within, &data[done..done + n])?;
            done += n;
        }
        if done > 0 {
            let end = offset + done as u64;
            if end > inode.size {
                inode.size = end;
                self.note_large_file(st, end);
            }
            let now = self.now();
            inode.mtime = now;
            inode.ctime = now;
        }
        self.write_inode(st, ino, inode)?;
        match failure {
            Some(errno) if done == 0 => Err(errno),
            _ => Ok(done),
        }
    }

    /// Where to allocate logical block `lblock`: after the previous block of the file, else
    /// at the start of the inode's group.
    fn goal_for(&self, ino: u32, inode: &Inode, lblock: u64) -> u32 {
        if let Some(prev) = lblock.checked_sub(1) {
            if let Ok(Some(block)) = self.bmap(inode, prev) {
                return block.saturating_add(1);
            }
        }
        let group = ino.saturating_sub(1) / self.geo.inodes_per_group % self.geo.groups;
        self.geo.group_first_block(group)
    }

    /// Files of 2 GiB and more need the `large_file` feature; set it the first time.
    fn note_large_file(&self, st: &mut State, size: u64) {
        if size > i32::MAX as u64 {
            st.ro_compat |= ro_compat::LARGE_FILE;
        }
    }

    /// Sets `inode`'s size: shrinking frees the blocks past the end and zeroes the rest of the
    /// last block (so a later growth reads zeros); growing leaves a hole. Writes the inode.
    pub fn truncate_data(&self, st: &mut State, ino: u32, inode: &mut Inode, size: u64) -> Result<()> {
        self.writable()?;
        if size > self.geo.max_file_size {
            return Err(Errno::EFBIG);
        }
        let block_size = u64::from(self.geo.block_size);
        let mut result = Ok(());
        if size < inode.size {
            let within = (size % block_size) as usize;
            if within != 0 {
                if let Some(block) = self.bmap(inode, size / block_size)? {
                    self.cache.with_block_mut(u64::from(block), |data| data[within..].fill(0))?;
                }
            }
            result = self.free_blocks_from(st, inode, size.div_ceil(block_size));
        }
        inode.size = size;
        self.note_large_file(st, size);
        let now = self.now();
        inode.mtime = now;
        inode.ctime = now;
        self.write_inode(st, ino, inode)?;
        result
    }

    /// The target of symlink `inode`.
    pub fn read_symlink(&self, inode: &Inode) -> Result<Vec<u8>> {
        let len = usize::try_from(inode.size).map_err(|_| Errno::EUCLEAN)?;
        if inode.is_fast_symlink(self.geo.sectors_per_block()) {
            if len >= FAST_SYMLINK_MAX {
                return Err(Errno::EUCLEAN);
            }
            return Ok(inode.block_bytes()[..len].to_vec());
        }
        if len >= self.geo.block_size as usize {
            return Err(Errno::EUCLEAN);
        }
        let mut target = vec![0u8; len];
        let block = self.bmap(inode, 0)?.ok_or(Errno::EUCLEAN)?;
        self.cache.read(u64::from(block), 0, &mut target)?;
        Ok(target)
    }

    /// Stores `target` into the new symlink `inode`: in the inode if short ("fast"), else in
    /// one data block. The caller writes the inode.
    pub fn write_symlink(&self, st: &mut State, ino: u32, inode: &mut Inode, target: &[u8]) -> Result<()> {
        if target.len() >= self.geo.block_size as usize {
            return Err(Errno::ENAMETOOLONG);
        }
        if target.len() < FAST_SYMLINK_MAX {
            inode.set_block_bytes(target);
        } else {
            let goal = self.goal_for(ino, inode, 0);
            let (block, _) = self.bmap_alloc(st, inode, 0, goal)?;
            self.cache.zero(u64::from(block))?;
            self.cache.write(u64::from(block), 0, target)?;
        }
        inode.size = target.len() as u64;
        Ok(())
    }

    /// Frees inode `ino` (no links, no live node): its blocks, its extended-attribute block,
    /// and the inode itself, which is stamped with a deletion time as e2fsck expects.
    pub fn release_inode(&self, st: &mut State, ino: u32, mut inode: Inode) -> Result<()> {
        st.dirs.forget(ino);
        let is_dir = inode.file_type() == Ok(FileType::Directory);
        let mut result = Ok(());
        if inode.has_block_map(self.geo.sectors_per_block()) {
            result = self.free_blocks_from(st, &mut inode, 0);
        }
        if inode.file_acl != 0 && result.is_ok() {
            result = self.release_xattr_block(st, &mut inode);
        }
        inode.block = [0; crate::inode::N_BLOCKS];
        inode.size = 0;
        inode.links = 0;
        // A zero dtime on a free inode is an error to e2fsck; the clock may read 0 in tests.
        inode.dtime = (self.now().secs().min(u64::from(u32::MAX)) as u32).max(1);
        self.write_inode(st, ino, &inode)?;
        result?;
        self.free_inode_bit(st, ino, is_dir)
    }

    /// Drops the inode's reference to its shared extended-attribute block, freeing the block
    /// with its last reference (`h_refcount`, the second word of the block).
    pub(crate) fn release_xattr_block(&self, st: &mut State, inode: &mut Inode) -> Result<()> {
        let block = self.check_block(inode.file_acl)?;
        let refs = self.cache.with_block_mut(block, |data| {
            let mut word = [0u8; 4];
            word.copy_from_slice(&data[4..8]);
            let refs = u32::from_le_bytes(word).saturating_sub(1);
            data[4..8].copy_from_slice(&refs.to_le_bytes());
            refs
        })?;
        if refs == 0 {
            self.free_block(st, inode.file_acl)?;
        }
        inode.blocks = inode.blocks.saturating_sub(self.geo.sectors_per_block());
        inode.file_acl = 0;
        Ok(())
    }

    /// `fsync` of inode `ino`: its blocks, its inode-table block and the allocation metadata
    /// (bitmaps, descriptors, superblock) reach the disk, then the device is flushed.
    pub fn sync_inode(&self, st: &State, ino: u32) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        let inode = self.read_inode(st, ino)?;
        let mut ranges = self.allocation_metadata(st);
        let block = self.inode_block(st, ino)?;
        ranges.push(block..block + 1);
        if inode.file_acl != 0 {
            let xattrs = self.check_block(inode.file_acl)?;
            ranges.push(xattrs..xattrs + 1);
        }
        if inode.has_block_map(self.geo.sectors_per_block()) {
            let mut blocks = self.tree_blocks(&inode, true)?;
            blocks.sort_unstable();
            for block in blocks {
                let block = u64::from(block);
                match ranges.last_mut() {
                    Some(last) if last.end == block => last.end += 1,
                    _ => ranges.push(block..block + 1),
                }
            }
        }
        self.write_superblock(st, false, false)?;
        self.cache.sync_ranges(&ranges)
    }
}
