//! The block map: which disk block holds a file's logical block `n`.
//!
//! An inode has 15 pointers: 12 to data blocks, then one to a single-indirect block (a block
//! of `p = block_size / 4` pointers to data blocks), one to a double-indirect block (pointers
//! to single-indirect blocks) and one to a triple-indirect block. A zero pointer is a hole
//! (reads as zeros, takes no space). The tree is at most four levels deep, so walking it never
//! loops, whatever a corrupt disk says; every pointer is range-checked before it is followed.
//!
//! `i_blocks` counts every block of the tree (data and indirect) in 512-byte sectors; the
//! functions here keep it exact, which e2fsck checks.

use crate::fs::{Inner, State};
use crate::inode::{IND_BLOCK, Inode};
use alloc::vec::Vec;
use hashbrown::HashMap;
use libos_core::{Errno, Result};

/// Logical blocks `first..first + len` of a file on disk blocks `disk..disk + len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    first: u64,
    disk: u32,
    len: u32,
}

impl Run {
    /// The disk block of logical block `lblock`, if the run holds it.
    pub fn block(&self, lblock: u64) -> Option<u32> {
        // No overflow: `disk + len` was range-checked as a block number when the run was made.
        let within = lblock.checked_sub(self.first).filter(|&i| i < u64::from(self.len))?;
        Some(self.disk + within as u32)
    }
}

/// Runs of files' blocks that reads have mapped ([`Inner::bmap_cached`]), so that a read of
/// a cached file's block costs a lookup here instead of a walk through its indirect blocks
/// (measured: the walk was a quarter of a cached 4 KiB read). A run is found in one leaf of
/// the tree (the direct pointers, or one block of pointers), so each covers at most one leaf.
///
/// Runs only ever describe mapped blocks, and ext2 never moves a mapped block: filling a hole
/// leaves every run true. What can make one false is a block leaving its file, which always
/// goes through [`Inner::free_block`] (every run is forgotten then), and a change of the
/// inode's own pointers, which is always written through `store_inode` (its runs are
/// forgotten then). Guarded by the volume lock, as the rest of [`State`].
///
/// Every forgetting counts in [`Runs::generation`], so that a run copied elsewhere (a node's
/// memo of its last read, `read`) is known to be still true while the count is unchanged.
/// As every change of an inode forgets its runs, an unchanged count also means that no inode
/// changed.
#[derive(Default)]
pub struct Runs {
    by_inode: HashMap<u32, RunList>,
    generation: u64,
}

/// One file's runs, sorted by first logical block: the per-inode lists of [`Runs`] and a
/// node's memo (`read`). Runs of one leaf never overlap; a run found after a hole was filled
/// may overlap an older one, and both are true: a look-up that picks the one not holding the
/// block just misses.
#[derive(Default)]
pub struct RunList {
    runs: Vec<Run>,
}

impl RunList {
    /// The run holding logical block `lblock`.
    pub fn find(&self, lblock: u64) -> Option<Run> {
        self.locate(lblock).map(|(at, _)| self.runs[at])
    }

    /// The disk block of logical block `lblock`, looking first at the run at index `*hint`
    /// (the one a sequential reader used last), which becomes the run that held it.
    #[inline]
    pub fn block(&self, lblock: u64, hint: &mut usize) -> Option<u32> {
        if let Some(block) = self.runs.get(*hint).and_then(|run| run.block(lblock)) {
            return Some(block);
        }
        let (at, block) = self.locate(lblock)?;
        *hint = at;
        Some(block)
    }

    /// The index of the run holding `lblock`, and the disk block.
    fn locate(&self, lblock: u64) -> Option<(usize, u32)> {
        let at = self.runs.partition_point(|r| r.first <= lblock).checked_sub(1)?;
        self.runs[at].block(lblock).map(|block| (at, block))
    }

    /// Adds `run` (in place of one starting at the same block), after forgetting all when
    /// `max` runs are kept already; returns its index.
    pub fn insert(&mut self, run: Run, max: usize) -> usize {
        if self.runs.len() >= max {
            self.runs.clear();
        }
        let at = self.runs.partition_point(|r| r.first < run.first);
        match self.runs.get_mut(at) {
            Some(same) if same.first == run.first => *same = run,
            _ => self.runs.insert(at, run),
        }
        at
    }

    /// Forgets every run.
    pub fn clear(&mut self) {
        self.runs.clear();
    }

    /// How many runs it holds.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.runs.len()
    }
}

impl Runs {
    /// Files with runs kept at most (then all are forgotten: cheap, and the files in use map
    /// their runs again in one walk per leaf).
    const MAX_FILES: usize = 1024;
    /// Runs kept per file at most (a 64 MiB file written in one go has 16 leaves).
    const MAX_PER_FILE: usize = 256;

    /// The run of inode `ino` that holds logical block `lblock`, if one is remembered.
    fn find(&self, ino: u32, lblock: u64) -> Option<Run> {
        self.by_inode.get(&ino)?.find(lblock)
    }

    /// The runs remembered for inode `ino`.
    #[cfg(test)]
    pub fn count(&self, ino: u32) -> usize {
        self.by_inode.get(&ino).map_or(0, RunList::len)
    }

    /// Counts every forgetting (see [`Runs`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn insert(&mut self, ino: u32, run: Run) {
        if self.by_inode.len() >= Self::MAX_FILES && !self.by_inode.contains_key(&ino) {
            self.by_inode.clear();
        }
        self.by_inode.entry(ino).or_default().insert(run, Self::MAX_PER_FILE);
    }

    /// Forgets the runs of inode `ino` (its pointers changed).
    pub fn forget(&mut self, ino: u32) {
        self.generation += 1;
        // Most inode writes come with nothing remembered: skip the hashing then.
        if !self.by_inode.is_empty() {
            self.by_inode.remove(&ino);
        }
    }

    /// Forgets every run (a block left its file).
    pub fn forget_all(&mut self) {
        self.generation += 1;
        if !self.by_inode.is_empty() {
            self.by_inode.clear();
        }
    }
}

/// The longest run of pointers around pointer `index` of `pointers` (little-endian 32-bit
/// words, as on disk) that are not holes and each one more than the one before: (the index
/// of its first, that pointer, its length); `None` if pointer `index` is a hole.
fn run_around(pointers: &[u8], index: usize) -> Option<(usize, u32, u32)> {
    let count = pointers.len() / 4;
    let pointer = |i: usize| pointers.get(4 * i..4 * i + 4).and_then(|b| b.try_into().ok()).map_or(0, u32::from_le_bytes);
    if index >= count || pointer(index) == 0 {
        return None;
    }
    // Pointer `i` continues pointer `i - 1` (a hole is 0, and 0 + 1 is a block: check both).
    let follows = |i: usize| {
        let before = pointer(i - 1);
        before != 0 && before.checked_add(1) == Some(pointer(i))
    };
    let mut start = index;
    while start > 0 && follows(start) {
        start -= 1;
    }
    let mut end = index + 1;
    while end < count && follows(end) {
        end += 1;
    }
    Some((start, pointer(start), (end - start) as u32))
}

/// Where logical block `n` sits in the tree: the index into `i_block`, then one index per
/// indirect level (`depth` of them).
struct Path {
    indices: [u64; 4],
    depth: usize,
}

impl Inner {
    fn path(&self, lblock: u64) -> Result<Path> {
        let p = self.geo.ptrs_per_block();
        let direct = IND_BLOCK as u64;
        if lblock < direct {
            return Ok(Path { indices: [lblock, 0, 0, 0], depth: 0 });
        }
        let mut rest = lblock - direct;
        if rest < p {
            return Ok(Path { indices: [direct, rest, 0, 0], depth: 1 });
        }
        rest -= p;
        if rest < p * p {
            return Ok(Path { indices: [direct + 1, rest / p, rest % p, 0], depth: 2 });
        }
        rest -= p * p;
        if rest < p * p * p {
            return Ok(Path { indices: [direct + 2, rest / (p * p), rest / p % p, rest % p], depth: 3 });
        }
        Err(Errno::EFBIG)
    }

    /// Pointer `index` of indirect block `block`.
    fn read_ptr(&self, block: u32, index: u64) -> Result<u32> {
        let block = self.check_block(block)?;
        let mut bytes = [0u8; 4];
        self.cache.read(block, (index * 4) as usize, &mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn write_ptr(&self, block: u32, index: u64, value: u32) -> Result<()> {
        let block = self.check_block(block)?;
        self.cache.write(block, (index * 4) as usize, &value.to_le_bytes())
    }

    /// All pointers of indirect block `block`.
    fn read_ptrs(&self, block: u32) -> Result<Vec<u32>> {
        let block = self.check_block(block)?;
        self.cache.with_block(block, |data| {
            data.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        })
    }

    /// The disk block of logical block `lblock`, `None` in a hole. Errors: `EUCLEAN` for a
    /// pointer out of range, `EFBIG` past what the tree can address.
    pub fn bmap(&self, inode: &Inode, lblock: u64) -> Result<Option<u32>> {
        let path = self.path(lblock)?;
        let mut ptr = inode.block[path.indices[0] as usize];
        for level in 1..=path.depth {
            if ptr == 0 {
                return Ok(None);
            }
            ptr = self.read_ptr(ptr, path.indices[level])?;
        }
        if ptr == 0 {
            return Ok(None);
        }
        self.check_block(ptr)?;
        Ok(Some(ptr))
    }

    /// [`Inner::bmap`] for a read of inode `ino`: from a remembered run when one holds
    /// `lblock`, else by one walk that also remembers the run of consecutive disk blocks from
    /// `lblock` to the end of its leaf (see [`Runs`]).
    pub fn bmap_cached(&self, st: &State, ino: u32, inode: &Inode, lblock: u64) -> Result<Option<u32>> {
        Ok(self.run_cached(st, ino, inode, lblock)?.and_then(|run| run.block(lblock)))
    }

    /// The run that holds logical block `lblock` of inode `ino` (as [`Inner::bmap_cached`]
    /// finds it), `None` in a hole.
    pub fn run_cached(&self, st: &State, ino: u32, inode: &Inode, lblock: u64) -> Result<Option<Run>> {
        if let Some(run) = st.runs.borrow().find(ino, lblock) {
            return Ok(Some(run));
        }
        let Some(run) = self.run_from(inode, lblock)? else { return Ok(None) };
        st.runs.borrow_mut().insert(ino, run);
        Ok(Some(run))
    }

    /// The run of consecutive disk blocks that holds logical block `lblock`, as long as its
    /// leaf allows both ways (up to a gap, a hole or the leaf's ends); `None` in a hole.
    ///
    /// Both ways, so that the runs of a leaf never overlap and every block of a contiguous
    /// leaf finds the same run: runs made from where a random read happened to land overlapped
    /// and missed each other, and each miss scanned to the end of the leaf (measured: random
    /// 4 KiB reads of a 64 MiB file spent 590 instructions each here).
    fn run_from(&self, inode: &Inode, lblock: u64) -> Result<Option<Run>> {
        let path = self.path(lblock)?;
        let index = path.indices[path.depth] as usize;
        let found = if path.depth == 0 {
            let mut direct = [0u8; 4 * IND_BLOCK];
            for (bytes, pointer) in direct.chunks_exact_mut(4).zip(&inode.block[..IND_BLOCK]) {
                bytes.copy_from_slice(&pointer.to_le_bytes());
            }
            run_around(&direct, index)
        } else {
            let Some(leaf) = self.leaf(inode, &path)? else { return Ok(None) };
            self.cache.with_block(leaf, |data| run_around(data, index))?
        };
        let Some((start, disk, len)) = found else { return Ok(None) };
        // Both ends in range: so is every block between them.
        self.check_block(disk)?;
        self.check_block(disk + (len - 1))?;
        Ok(Some(Run { first: lblock - (index - start) as u64, disk, len }))
    }

    /// The disk blocks of logical blocks `first..first + count` (`None` for holes) appended
    /// to `out`: like [`Inner::bmap`] for each, but each indirect block is read once for all
    /// the pointers it holds in the range. Stops early (without error) at the end of what the
    /// tree can address.
    pub fn bmap_run(&self, inode: &Inode, first: u64, count: u64, out: &mut Vec<Option<u32>>) -> Result<()> {
        let end = first.saturating_add(count);
        let mut lblock = first;
        let p = self.geo.ptrs_per_block();
        while lblock < end {
            let Ok(path) = self.path(lblock) else { return Ok(()) };
            if path.depth == 0 {
                let ptr = inode.block[path.indices[0] as usize];
                out.push(self.checked_ptr(ptr)?);
                lblock += 1;
                continue;
            }
            // Walk to the leaf indirect block, then take its pointers for the rest of the run.
            let leaf_index = path.indices[path.depth];
            let n = (p - leaf_index).min(end - lblock);
            if let Some(leaf) = self.leaf(inode, &path)? {
                let start = out.len();
                self.cache.with_block(leaf, |data| {
                    let words = &data[(leaf_index * 4) as usize..((leaf_index + n) * 4) as usize];
                    out.extend(words.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).map(|b| (b != 0).then_some(b)));
                })?;
                for &block in out[start..].iter().flatten() {
                    self.check_block(block)?;
                }
            } else {
                out.extend((0..n).map(|_| None));
            }
            lblock += n;
        }
        Ok(())
    }

    /// The indirect block that holds the last pointer of `path` (depth 1 or more), checked
    /// as a block number; `None` when a hole lies on the way.
    fn leaf(&self, inode: &Inode, path: &Path) -> Result<Option<u64>> {
        let mut ptr = inode.block[path.indices[0] as usize];
        for level in 1..path.depth {
            if ptr == 0 {
                return Ok(None);
            }
            ptr = self.read_ptr(ptr, path.indices[level])?;
        }
        if ptr == 0 { Ok(None) } else { self.check_block(ptr).map(Some) }
    }

    /// A pointer read from the tree as a block number (`None` for a hole), range-checked.
    fn checked_ptr(&self, ptr: u32) -> Result<Option<u32>> {
        if ptr == 0 {
            return Ok(None);
        }
        self.check_block(ptr)?;
        Ok(Some(ptr))
    }

    /// The disk block of logical block `lblock`, allocated (with any missing indirect block)
    /// near `goal` if it is a hole. Returns the block and whether it is new (its contents are
    /// garbage: the caller writes or zeroes it). Updates `inode.blocks`; the caller writes the
    /// inode. On `ENOSPC` halfway, indirect blocks already added stay (empty, counted): the
    /// volume stays consistent.
    pub fn bmap_alloc(&self, st: &mut State, inode: &mut Inode, lblock: u64, goal: u32) -> Result<(u32, bool)> {
        let path = self.path(lblock)?;
        let top = path.indices[0] as usize;
        let mut fresh = false;
        if inode.block[top] == 0 {
            inode.block[top] = self.alloc_counted(st, inode, goal, path.depth > 0)?;
            fresh = true;
        }
        let mut ptr = inode.block[top];
        for level in 1..=path.depth {
            let index = path.indices[level];
            let mut next = self.read_ptr(ptr, index)?;
            fresh = false;
            if next == 0 {
                next = self.alloc_counted(st, inode, goal, level < path.depth)?;
                self.write_ptr(ptr, index, next)?;
                fresh = true;
            }
            ptr = next;
        }
        self.check_block(ptr)?;
        Ok((ptr, fresh))
    }

    /// Allocates one block for `inode` and counts it in `i_blocks`; an indirect block is
    /// zeroed (all holes).
    fn alloc_counted(&self, st: &mut State, inode: &mut Inode, goal: u32, indirect: bool) -> Result<u32> {
        let blocks = inode.blocks.checked_add(self.geo.sectors_per_block()).ok_or(Errno::EFBIG)?;
        let block = self.alloc_block(st, goal)?;
        inode.blocks = blocks;
        if indirect {
            self.cache.zero(u64::from(block))?;
        }
        Ok(block)
    }

    /// Frees every block holding logical blocks `first..` and every indirect block left
    /// without pointers. Updates `inode` (pointers, `i_blocks`); the caller writes it, also
    /// after an error (what was freed is then recorded).
    pub fn free_blocks_from(&self, st: &mut State, inode: &mut Inode, first: u64) -> Result<()> {
        let p = self.geo.ptrs_per_block();
        for index in (first.min(IND_BLOCK as u64) as usize)..IND_BLOCK {
            if inode.block[index] != 0 {
                self.free_counted(st, inode, inode.block[index])?;
                inode.block[index] = 0;
            }
        }
        let mut base = IND_BLOCK as u64;
        let mut span = p;
        for depth in 1..=3 {
            let index = IND_BLOCK + depth - 1;
            let root = inode.block[index];
            if root != 0 && first < base + span && self.free_tree(st, inode, root, depth as u32, base, first)? {
                inode.block[index] = 0;
            }
            base += span;
            span *= p;
        }
        Ok(())
    }

    /// Frees what subtree `block` (at `depth`, 0 = a data block; covering logical blocks from
    /// `base`) holds at `first` and beyond. Returns true if `block` itself was freed.
    fn free_tree(&self, st: &mut State, inode: &mut Inode, block: u32, depth: u32, base: u64, first: u64) -> Result<bool> {
        if depth == 0 {
            if first <= base {
                self.free_counted(st, inode, block)?;
                return Ok(true);
            }
            return Ok(false);
        }
        let p = self.geo.ptrs_per_block();
        let child_span = p.pow(depth - 1);
        let ptrs = self.read_ptrs(block)?;
        let whole = first <= base;
        for (i, &child) in ptrs.iter().enumerate() {
            let child_base = base + i as u64 * child_span;
            if child == 0 || child_base + child_span <= first {
                continue;
            }
            if self.free_tree(st, inode, child, depth - 1, child_base, first)? && !whole {
                self.write_ptr(block, i as u64, 0)?;
            }
        }
        if whole {
            self.free_counted(st, inode, block)?;
        }
        Ok(whole)
    }

    fn free_counted(&self, st: &mut State, inode: &mut Inode, block: u32) -> Result<()> {
        self.free_block(st, block)?;
        inode.blocks = inode.blocks.saturating_sub(self.geo.sectors_per_block());
        Ok(())
    }

    /// Every block of `inode`'s tree: indirect blocks, and data blocks too if `data` (fsync
    /// wants both; the fuzz test only the metadata).
    pub fn tree_blocks(&self, inode: &Inode, data: bool) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        for (index, &ptr) in inode.block.iter().enumerate() {
            if ptr != 0 {
                let depth = index.saturating_sub(IND_BLOCK - 1) as u32;
                self.collect_tree(ptr, depth, data, &mut out)?;
            }
        }
        Ok(out)
    }

    fn collect_tree(&self, block: u32, depth: u32, data: bool, out: &mut Vec<u32>) -> Result<()> {
        self.check_block(block)?;
        if depth > 0 || data {
            out.push(block);
        }
        if depth > 0 {
            for child in self.read_ptrs(block)? {
                if child != 0 {
                    self.collect_tree(child, depth - 1, data, out)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod run_tests {
    use super::run_around;

    #[test]
    fn runs_extend_both_ways_and_stop_at_gaps_and_holes() {
        let pointers: Vec<u8> = [0u32, 1, 2, 3, 7, 8, 0, 9, 10, 11].iter().flat_map(|p| p.to_le_bytes()).collect();
        let around = |i| run_around(&pointers, i);
        assert_eq!(around(0), None, "a hole");
        assert_eq!(around(2), Some((1, 1, 3)), "a hole before block 1 is not part of the run");
        assert_eq!(around(3), Some((1, 1, 3)), "the same run from its last block");
        assert_eq!(around(4), Some((4, 7, 2)), "a gap starts a new run");
        assert_eq!(around(6), None);
        assert_eq!(around(9), Some((7, 9, 3)), "the leaf's end ends it");
        assert_eq!(around(10), None, "past the leaf");
    }
}
