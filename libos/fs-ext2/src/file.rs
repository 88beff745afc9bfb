//! File contents: reading (with read-ahead), writing (allocating blocks, filling holes),
//! truncation, symlink targets, freeing a removed inode, and `fsync`.
//!
//! All data goes through the buffer cache. A read first maps the blocks it needs (each
//! indirect block read once for all its pointers in the range) and asks the cache to fetch
//! each uncached run of adjacent disk blocks in one request, so reading a file laid out
//! contiguously costs one device request per run rather than per block. A sequential reader
//! also reads ahead ([`ReadAhead`]); a random or cached one does not.

use crate::fs::{Inner, State};
use crate::inode::{FAST_SYMLINK_MAX, Inode};
use crate::disk::ro_compat;
use alloc::vec;
use alloc::vec::Vec;
use libos_core::{Errno, Result};
use libos_vfs::FileType;

/// The first read-ahead window of a sequential reader, in blocks.
const READ_AHEAD_MIN: u64 = 4;
/// The largest window: it doubles on every sequential read up to this.
const READ_AHEAD_MAX: u64 = 64;

/// How many readers of one node [`ReadAhead`] follows at once.
const STREAMS: usize = 4;

/// The read-ahead state of a node's readers. One node may serve several open files (the node
/// cache hands the same node to every lookup of a name), so it follows up to [`STREAMS`]
/// read streams at once, as Linux keeps one per open file: a read continues the stream that
/// ended where it starts, else it starts a new one in place of the least recently used.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadAhead {
    streams: [Stream; STREAMS],
    /// Counts reads, for [`Stream::used`].
    clock: u64,
}

/// One reader's read-ahead: it starts only once reads are sequential (a read starting where
/// the previous one ended, or at the start of the file), and fetches a window of blocks past
/// the read that doubles with every sequential read up to [`READ_AHEAD_MAX`]. The next window
/// is fetched when the reader enters the second half of the current one, so a streaming
/// reader finds its blocks cached; a random reader never reads ahead, and a cached one costs
/// no block map lookups beyond its own blocks.
#[derive(Clone, Copy, Debug, Default)]
struct Stream {
    /// The byte offset where the previous read ended.
    next: u64,
    /// The current window in blocks (0: not sequential).
    window: u64,
    /// Read-ahead has been issued for logical blocks below this.
    ahead_end: u64,
    /// [`ReadAhead::clock`] at its last read (0: never used).
    used: u64,
}

impl ReadAhead {
    /// The stream a read at `offset` belongs to, and whether the read is sequential in it: the
    /// one that ended at `offset`, else a fresh one (sequential at the start of the file).
    fn stream(&mut self, offset: u64) -> (&mut Stream, bool) {
        self.clock += 1;
        let found = self.streams.iter().position(|s| s.used != 0 && s.next == offset);
        let (at, sequential) = match found {
            Some(at) => (at, true),
            None => {
                // `min_by_key` finds one: there are STREAMS > 0 of them.
                let oldest = (0..STREAMS).min_by_key(|&i| self.streams[i].used).unwrap_or(0);
                self.streams[oldest] = Stream::default();
                (oldest, offset == 0)
            }
        };
        let stream = &mut self.streams[at];
        stream.used = self.clock;
        (stream, sequential)
    }
}

impl Inner {
    /// Reads up to `buf.len()` bytes at `offset` of `inode`; returns the count (0 at the end).
    /// `ra` is the reader's read-ahead state.
    pub fn read_data(&self, st: &State, ino: u32, inode: &Inode, offset: u64, buf: &mut [u8], ra: &mut ReadAhead) -> Result<usize> {
        if offset >= inode.size || buf.is_empty() {
            return Ok(0);
        }
        let len = (inode.size - offset).min(buf.len() as u64) as usize;
        let block_size = u64::from(self.geo.block_size);
        let first = offset / block_size;
        let last = (offset + len as u64 - 1) / block_size;
        let file_blocks = inode.size.div_ceil(block_size);
        // A read within one block (the common 4 KiB read) maps it without building a list.
        let mut map = Vec::new();
        let single = if first == last {
            self.bmap_cached(st, ino, inode, first)?
        } else {
            self.bmap_run(inode, first, last + 1 - first, &mut map)?;
            if map.len() as u64 != last + 1 - first {
                return Err(Errno::EFBIG);
            }
            // One request per run of uncached adjacent blocks of the read itself.
            self.prefetch(&map);
            None
        };
        let (ra, sequential) = ra.stream(offset);
        if sequential {
            ra.window = if ra.window == 0 { READ_AHEAD_MIN } else { (ra.window * 2).min(READ_AHEAD_MAX) };
            // Fetch the next window once the reader is in the second half of the last one.
            let from = ra.ahead_end.max(last + 1);
            let to = (last + 1 + ra.window).min(file_blocks);
            if from < to && last + 1 + ra.window / 2 >= ra.ahead_end {
                let mut ahead = Vec::new();
                self.bmap_run(inode, from, to - from, &mut ahead)?;
                self.prefetch_uncached(&ahead);
                ra.ahead_end = to;
            }
        } else {
            ra.window = 0;
            ra.ahead_end = 0;
        }
        ra.next = offset + len as u64;
        let mut done = 0;
        while done < len {
            let at = offset + done as u64;
            let lblock = at / block_size;
            let within = (at % block_size) as usize;
            let n = (block_size as usize - within).min(len - done);
            let piece = &mut buf[done..done + n];
            let block = if first == last { single } else { map.get((lblock - first) as usize).copied().flatten() };
            match block {
                Some(block) => self.cache.read(u64::from(block), within, piece)?,
                None => piece.fill(0),
            }
            done += n;
        }
        Ok(len)
    }

    /// Asks the cache to fetch the mapped blocks of `map`, one request per run of adjacent
    /// disk blocks.
    fn prefetch(&self, map: &[Option<u32>]) {
        let mut i = 0;
        while i < map.len() {
            let Some(start) = map[i] else {
                i += 1;
                continue;
            };
            let mut run = 1;
            while map.get(i + run).copied().flatten() == Some(start.wrapping_add(run as u32)) {
                run += 1;
            }
            if run > 1 {
                self.cache.read_ahead(u64::from(start), run as u64);
            }
            i += run;
        }
    }

    /// [`Inner::prefetch`] unless the window's last block is cached already (then the window
    /// most likely is: it was read ahead before, or written recently).
    fn prefetch_uncached(&self, map: &[Option<u32>]) {
        if let Some(Some(block)) = map.last() {
            if self.cache.contains(u64::from(*block)) {
                return;
            }
        }
        self.prefetch(map);
    }

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
    fn release_xattr_block(&self, st: &mut State, inode: &mut Inode) -> Result<()> {
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
