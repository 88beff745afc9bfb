//! In-memory directory indexes: for each recently used directory, its names (name -> where the
//! entry is and which inode it names) and, per directory block, the largest entry that would
//! still fit in it. With them, lookup, create, link, unlink and rename cost a hash lookup and
//! work within one directory block, not a scan of the whole directory (10 000 files in one
//! directory would otherwise cost O(n) per operation, O(n^2) to fill it).
//!
//! The index lives only in memory; the disk format stays linear (`dir`), so e2fsck and
//! other drivers see an ordinary ext2 directory. An index is built by one linear pass the
//! first time a directory is used, kept in step by every change `dir` makes, dropped when its
//! directory is freed or an operation on it fails halfway (the next use reads the disk
//! again), and evicted least recently used first when the indexes together would exceed
//! their budget ([`MountOptions::dir_index_bytes`](crate::MountOptions::dir_index_bytes)). A
//! directory too big for the budget, or one whose blocks name something twice (corrupt), is
//! not indexed: `dir` then scans it linearly as before.
//!
//! Everything here is guarded by the volume lock (it is part of [`State`](crate::fs::State)).

use alloc::boxed::Box;
use alloc::vec::Vec;
use hashbrown::HashMap;

/// What an index is charged per byte of its directory: an entry takes 12 bytes on disk at
/// the least and about 50 in the index (the name, its box and the hash slot), so four bytes
/// per directory byte bounds the real use for all but one-letter names.
const BYTES_PER_DIR_BYTE: u64 = 4;

/// Where a name's entry is.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    /// The directory block (logical) holding it.
    pub index: u32,
    /// Its byte offset in that block.
    pub offset: u32,
    /// The inode it names.
    pub ino: u32,
}

/// One directory block as the index knows it.
#[derive(Clone, Copy, Debug)]
pub struct BlockInfo {
    /// Its disk block.
    pub disk: u64,
    /// At least this large an entry (header and name, aligned) fits in it: the entry at
    /// `best` has that much room.
    pub room: u32,
    /// The offset of an entry with `room` bytes free after it (meaningless while `room` is 0).
    pub best: u32,
    /// `room` is the largest free space of the block, not only a lower bound: false once an
    /// entry went into `best` (another entry may then have more room, found by a rescan
    /// before the directory grows).
    pub exact: bool,
}
/// The index of one directory.
pub struct DirIndex {
    pub names: HashMap<Box<[u8]>, Slot>,
    pub blocks: Vec<BlockInfo>,
    /// The directory's size when charged against the budget.
    charged: u64,
    /// When it was last used (for eviction).
    used: u64,
}

impl DirIndex {
    pub fn new(names: HashMap<Box<[u8]>, Slot>, blocks: Vec<BlockInfo>) -> DirIndex {
        DirIndex { names, blocks, charged: 0, used: 0 }
    }

    /// The first block known to have room for an entry of `needed` bytes.
    pub fn block_with_room(&self, needed: usize) -> Option<(u64, BlockInfo)> {
        let needed = needed as u32;
        self.blocks.iter().position(|b| b.room >= needed).map(|i| (i as u64, self.blocks[i]))
    }

    /// An entry went into block `index` at `offset`, which has `room` bytes free after it.
    pub fn filled(&mut self, index: u64, offset: usize, room: usize) {
        if let Some(info) = self.blocks.get_mut(index as usize) {
            *info = BlockInfo { room: room as u32, best: offset as u32, exact: false, ..*info };
        }
    }

    /// An entry of block `index` was removed, leaving `room` bytes free after the entry at
    /// `offset`: removal only adds room.
    pub fn emptied(&mut self, index: u64, offset: usize, room: usize) {
        if let Some(info) = self.blocks.get_mut(index as usize) {
            if room as u32 >= info.room {
                info.room = room as u32;
                info.best = offset as u32;
            }
        }
    }

    /// True if the directory holds nothing but `.` and `..`.
    pub fn is_empty(&self) -> bool {
        let dots = [&b"."[..], &b".."[..]].iter().filter(|n| self.names.contains_key(**n)).count();
        self.names.len() == dots
    }
}

/// The indexes of a volume's directories, within a memory budget.
pub struct DirIndexes {
    dirs: HashMap<u32, DirIndex>,
    /// The budget in bytes, and what the indexes are charged now.
    budget: u64,
    charged: u64,
    clock: u64,
}

impl DirIndexes {
    pub fn new(budget: usize) -> DirIndexes {
        DirIndexes { dirs: HashMap::new(), budget: budget as u64, charged: 0, clock: 0 }
    }

    fn cost(dir_size: u64) -> u64 {
        dir_size.saturating_mul(BYTES_PER_DIR_BYTE)
    }

    /// Directory `ino`'s index if it is loaded (counts as a use).
    pub fn get(&mut self, ino: u32) -> Option<&mut DirIndex> {
        self.clock += 1;
        let clock = self.clock;
        let index = self.dirs.get_mut(&ino)?;
        index.used = clock;
        Some(index)
    }

    /// Directory `ino`'s index if loaded, without counting a use.
    pub fn peek(&mut self, ino: u32) -> Option<&mut DirIndex> {
        self.dirs.get_mut(&ino)
    }

    /// True if a directory of `dir_size` bytes may be indexed at all.
    pub fn admits(&self, dir_size: u64) -> bool {
        Self::cost(dir_size) <= self.budget
    }

    /// Adds the index of directory `ino` (of `dir_size` bytes), evicting the least recently
    /// used others until it fits the budget.
    pub fn insert(&mut self, ino: u32, dir_size: u64, mut index: DirIndex) -> &mut DirIndex {
        self.forget(ino);
        let cost = Self::cost(dir_size);
        while self.charged + cost > self.budget {
            let Some(victim) = self.dirs.iter().min_by_key(|(_, d)| d.used).map(|(&ino, _)| ino) else { break };
            self.forget(victim);
        }
        self.clock += 1;
        index.used = self.clock;
        index.charged = cost;
        self.charged += cost;
        self.dirs.entry(ino).or_insert(index)
    }

    /// Directory `ino` grew to `dir_size` bytes: charge its index for it.
    pub fn grew(&mut self, ino: u32, dir_size: u64) {
        if let Some(index) = self.dirs.get_mut(&ino) {
            let cost = Self::cost(dir_size);
            self.charged = self.charged - index.charged + cost;
            index.charged = cost;
        }
    }

    /// Drops directory `ino`'s index (freed, or changed in a way the index did not follow).
    pub fn forget(&mut self, ino: u32) {
        if let Some(index) = self.dirs.remove(&ino) {
            self.charged -= index.charged;
        }
    }
}
