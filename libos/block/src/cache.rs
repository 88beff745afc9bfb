//! [`BufferCache`]: the bounded, write-back cache of file-system blocks that disk file systems
//! share over one [`BlockDevice`].
//!
//! A file system reads and changes its metadata and data a block at a time (its own block size,
//! 1 to 64 KiB, a multiple of the device's logical block size). The cache keeps recently used
//! blocks in memory so that the bitmap, inode-table and directory blocks a file system touches
//! over and over cost one device request, not one per use:
//!
//! - **Bounded.** At most `limit_bytes / block_size` blocks are cached (at least
//!   [`MIN_BLOCKS`]). Making room evicts the least recently used block (the tail of an
//!   index-linked LRU list, so a hit costs one hash lookup and an O(1) relink, and eviction is
//!   O(1); the victim's buffer is reused for the block coming in); a dirty victim is
//!   written back first. A victim whose write-back fails stays cached and dirty (the cache then
//!   holds more than its limit until a later write-back succeeds): data is never dropped
//!   silently.
//! - **Write-back.** [`BufferCache::with_block_mut`], [`BufferCache::write`] and
//!   [`BufferCache::zero`] change the cached copy and mark it dirty; nothing reaches the device
//!   until eviction or a sync. [`BufferCache::sync`] writes every dirty block in ascending
//!   order, adjacent blocks batched into one scatter-gather request (up to the device's
//!   [`BlockDevice::max_transfer`]), then flushes the device. [`BufferCache::sync_range`] and
//!   [`BufferCache::sync_ranges`] do the same for chosen blocks (`fsync` of one file).
//! - **Read-ahead.** [`BufferCache::read_ahead`] fetches a run of uncached blocks in one
//!   multi-block request, so a sequential reader pays one request per run, not per block.
//! - **Invalidation.** [`BufferCache::invalidate`] drops cached copies of a range (after
//!   writing back dirty ones), for writes that bypass the cache (`O_DIRECT` on the raw disk).
//! - **Errors** are the device's `Errno`s unchanged (`EIO` stays `EIO`); a block that failed to
//!   write stays dirty and is retried by the next sync.
//!
//! Locking: one [`Mutex`] (the blocking kind from `libos_core::blocking`) guards the cache and
//! is held across device requests. A spin lock would not do: the thread doing I/O may sleep
//! until the device interrupts, and a cooperative scheduler would then spin forever in the
//! thread wanting the lock. The closures given to [`BufferCache::with_block`] and
//! [`BufferCache::with_block_mut`] run with the lock held, so they must not call the cache.

use crate::{BlockDevice, SECTOR_SIZE};
use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;
use hashbrown::HashMap;
use libos_core::blocking::Mutex;
use libos_core::{Errno, Result};

/// The fewest blocks a cache holds, whatever its byte limit: enough for a file system to have
/// an inode-table block, a bitmap block and a data block of one operation cached together.
pub const MIN_BLOCKS: usize = 8;

/// Counters of a [`BufferCache`] since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Accesses that found their block cached.
    pub hits: u64,
    /// Accesses that had to read their block from the device (read-ahead not counted).
    pub misses: u64,
    /// Blocks fetched by [`BufferCache::read_ahead`].
    pub read_ahead: u64,
    /// Dirty blocks written to the device (by syncs and evictions).
    pub writebacks: u64,
    /// Blocks dropped to stay within the limit.
    pub evictions: u64,
}

/// "No slot" in the LRU links.
const NIL: u32 = u32::MAX;

/// A cached block: one slot of [`State::slots`], linked into the LRU list.
struct Entry {
    block: u64,
    data: Box<[u8]>,
    dirty: bool,
    /// The next more recently used slot ([`NIL`] at the head).
    newer: u32,
    /// The next less recently used slot ([`NIL`] at the tail).
    older: u32,
    /// [`State::promotions`] when it last went to the head.
    stamp: u64,
}

/// The cache's contents. A hit costs a hash lookup and relinking one list node (none when the
/// block went to the head only recently: see [`State::touch`]); making room takes the list's
/// tail, so both are O(1) (a failed write-back aside).
struct State {
    /// Block number -> its slot in `slots`.
    map: HashMap<u64, u32>,
    /// Entries by slot; the slots in `free` are unused.
    slots: Vec<Entry>,
    free: Vec<u32>,
    /// Most and least recently used slots ([`NIL`] when empty).
    head: u32,
    tail: u32,
    /// The dirty blocks, in order (for syncs of ranges).
    dirty: BTreeSet<u64>,
    stats: CacheStats,
    /// How many times a slot went to the head so far.
    promotions: u64,
    /// A hit on a slot that went to the head fewer than this many promotions ago leaves it
    /// where it is: at most that many slots are ahead of it, so it is in the most recently
    /// used eighth of the cache, nowhere near eviction, and relinking it would change nothing
    /// that matters (the indirect block every read of a file passes, for instance). 1 (exact
    /// LRU) for caches of fewer than 16 blocks.
    recent: u64,
}

impl State {
    fn len(&self) -> usize {
        self.map.len()
    }

    fn slot_of(&self, block: u64) -> Option<u32> {
        self.map.get(&block).copied()
    }

    fn entry(&mut self, slot: u32) -> &mut Entry {
        &mut self.slots[slot as usize]
    }

    /// Takes `slot` out of the LRU list.
    fn unlink(&mut self, slot: u32) {
        let (newer, older) = {
            let entry = &self.slots[slot as usize];
            (entry.newer, entry.older)
        };
        match newer {
            NIL => self.head = older,
            n => self.slots[n as usize].older = older,
        }
        match older {
            NIL => self.tail = newer,
            o => self.slots[o as usize].newer = newer,
        }
    }

    /// Puts `slot` at the head of the LRU list (most recently used).
    fn push_head(&mut self, slot: u32) {
        let old_head = self.head;
        self.promotions += 1;
        {
            let entry = &mut self.slots[slot as usize];
            entry.newer = NIL;
            entry.older = old_head;
            entry.stamp = self.promotions;
        }
        match old_head {
            NIL => self.tail = slot,
            h => self.slots[h as usize].newer = slot,
        }
        self.head = slot;
    }

    /// Marks `slot` as just used. Inlined: on a hit it is one comparison, cheaper than a call.
    #[inline(always)]
    fn touch(&mut self, slot: u32) {
        if self.head != slot && self.promotions - self.slots[slot as usize].stamp >= self.recent {
            self.unlink(slot);
            self.push_head(slot);
        }
    }

    /// Marks `slot` dirty.
    fn set_dirty(&mut self, slot: u32) {
        let entry = &mut self.slots[slot as usize];
        if !entry.dirty {
            entry.dirty = true;
            let block = entry.block;
            self.dirty.insert(block);
        }
    }

    /// Caches `block` (not cached yet) as the most recently used block.
    fn insert(&mut self, block: u64, data: Box<[u8]>, dirty: bool) -> u32 {
        let entry = Entry { block, data, dirty, newer: NIL, older: NIL, stamp: 0 };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = entry;
                slot
            }
            None => {
                self.slots.push(entry);
                (self.slots.len() - 1) as u32
            }
        };
        self.map.insert(block, slot);
        if dirty {
            self.dirty.insert(block);
        }
        self.push_head(slot);
        slot
    }

    /// Drops `slot`'s block from the cache; returns its buffer for reuse.
    fn remove(&mut self, slot: u32) -> Box<[u8]> {
        self.unlink(slot);
        let entry = &mut self.slots[slot as usize];
        let data = core::mem::take(&mut entry.data);
        let (block, dirty) = (entry.block, entry.dirty);
        entry.dirty = false;
        self.map.remove(&block);
        if dirty {
            self.dirty.remove(&block);
        }
        self.free.push(slot);
        data
    }
}

/// A write-back cache of fixed-size blocks over a [`BlockDevice`]. See the module docs.
pub struct BufferCache {
    device: Arc<dyn BlockDevice>,
    block_size: usize,
    /// Device sectors per cache block.
    sectors_per_block: u64,
    /// Capacity of the device in cache blocks.
    block_count: u64,
    capacity: usize,
    state: Mutex<State>,
}

impl BufferCache {
    /// A cache of `block_size`-byte blocks over `device`, holding at most `limit_bytes` of
    /// blocks (but at least [`MIN_BLOCKS`]).
    ///
    /// Errors: `EINVAL` unless `block_size` is a power of two from 1 KiB to 64 KiB and a
    /// multiple of the device's logical block size.
    pub fn new(device: Arc<dyn BlockDevice>, block_size: usize, limit_bytes: usize) -> Result<BufferCache> {
        if !block_size.is_power_of_two()
            || !(1024..=65536).contains(&block_size)
            || block_size % device.block_size() as usize != 0
        {
            return Err(Errno::EINVAL);
        }
        let sectors_per_block = block_size as u64 / SECTOR_SIZE;
        let capacity = (limit_bytes / block_size).max(MIN_BLOCKS);
        Ok(BufferCache {
            block_count: device.sectors() / sectors_per_block,
            sectors_per_block,
            capacity,
            block_size,
            device,
            state: Mutex::new(State {
                map: HashMap::new(),
                slots: Vec::new(),
                free: Vec::new(),
                head: NIL,
                tail: NIL,
                dirty: BTreeSet::new(),
                stats: CacheStats::default(),
                promotions: 0,
                recent: (capacity as u64 / 8).max(1),
            }),
        })
    }

    /// The device below.
    pub fn device(&self) -> &Arc<dyn BlockDevice> {
        &self.device
    }

    /// The size of a block in bytes.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// The device's capacity in blocks: valid block numbers are `0..block_count()`.
    pub fn block_count(&self) -> u64 {
        self.block_count
    }

    /// The most blocks the cache keeps (while write-backs succeed).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Counters since creation.
    pub fn stats(&self) -> CacheStats {
        self.state.lock().stats
    }

    /// Blocks cached now.
    pub fn cached_blocks(&self) -> usize {
        self.state.lock().len()
    }

    /// True if `block` is cached now (without counting a use of it): for a caller deciding
    /// whether to read ahead.
    pub fn contains(&self, block: u64) -> bool {
        self.state.lock().map.contains_key(&block)
    }

    /// Dirty blocks cached now.
    pub fn dirty_blocks(&self) -> usize {
        self.state.lock().dirty.len()
    }

    /// Copies `buf.len()` bytes at `offset` within `block` into `buf`. Errors: `EINVAL` for a
    /// block past the device or a range past the block, the device's errors.
    pub fn read(&self, block: u64, offset: usize, buf: &mut [u8]) -> Result<()> {
        let end = self.check_span(offset, buf.len())?;
        self.with_block(block, |data| buf.copy_from_slice(&data[offset..end]))
    }

    /// Copies `data` into `block` at `offset` and marks the block dirty. Overwriting a whole
    /// block does not read it first. Errors as [`BufferCache::read`].
    pub fn write(&self, block: u64, offset: usize, data: &[u8]) -> Result<()> {
        let end = self.check_span(offset, data.len())?;
        if data.len() == self.block_size {
            return self.replace(block, |cached| cached.copy_from_slice(data));
        }
        self.with_block_mut(block, |cached| cached[offset..end].copy_from_slice(data))
    }

    /// Makes `block` all zeros (dirty) without reading it: for a block just allocated.
    pub fn zero(&self, block: u64) -> Result<()> {
        self.replace(block, |cached| cached.fill(0))
    }

    /// Calls `f` with the contents of `block`, reading it on a miss. `f` runs with the cache
    /// locked and must not call the cache.
    pub fn with_block<R>(&self, block: u64, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let mut state = self.state.lock();
        let slot = self.load(&mut state, block)?;
        Ok(f(&state.entry(slot).data))
    }

    /// Calls `f` to change `block` in place (reading it on a miss) and marks it dirty. `f` runs
    /// with the cache locked and must not call the cache.
    pub fn with_block_mut<R>(&self, block: u64, f: impl FnOnce(&mut [u8]) -> R) -> Result<R> {
        let mut state = self.state.lock();
        let slot = self.load(&mut state, block)?;
        state.set_dirty(slot);
        Ok(f(&mut state.entry(slot).data))
    }

    /// A hint that `count` blocks from `block` will be read soon: the uncached ones among them
    /// are fetched, each run of adjacent uncached blocks in one request (split only at the
    /// device's transfer limit). Blocks past the device are ignored; so is a device error (the
    /// later read reports it).
    pub fn read_ahead(&self, block: u64, count: u64) {
        let end = block.saturating_add(count).min(self.block_count);
        // Never fetch more than the cache holds: the first blocks would be evicted again.
        let end = end.min(block.saturating_add(self.capacity as u64));
        let per_request = (self.device.max_transfer() / self.block_size).max(1) as u64;
        let mut state = self.state.lock();
        let mut at = block;
        while at < end {
            if state.map.contains_key(&at) {
                at += 1;
                continue;
            }
            let mut run_end = at + 1;
            while run_end < end && run_end - at < per_request && !state.map.contains_key(&run_end) {
                run_end += 1;
            }
            // Room first, so that the victims' buffers are reused for the new blocks.
            let mut buffers: Vec<Box<[u8]>> = Vec::with_capacity((run_end - at) as usize);
            for pending in 0..(run_end - at) as usize {
                let buffer = self.make_room(&mut state, pending).unwrap_or_else(|| vec![0u8; self.block_size].into_boxed_slice());
                buffers.push(buffer);
            }
            let mut slices: Vec<&mut [u8]> = buffers.iter_mut().map(|b| &mut b[..]).collect();
            if self.device.read(at * self.sectors_per_block, &mut slices).is_err() {
                return;
            }
            for (i, data) in buffers.into_iter().enumerate() {
                state.insert(at + i as u64, data, false);
                state.stats.read_ahead += 1;
            }
            at = run_end;
        }
    }

    /// Writes every dirty block to the device (ascending, adjacent blocks batched) and flushes
    /// it. Blocks whose write fails stay dirty; the first error is returned after the others
    /// were tried.
    pub fn sync(&self) -> Result<()> {
        self.sync_range(0..u64::MAX)
    }

    /// Writes `block` back if it is dirty, then flushes the device.
    pub fn sync_block(&self, block: u64) -> Result<()> {
        self.sync_range(block..block.saturating_add(1))
    }

    /// Writes back the dirty blocks in `range`, then flushes the device.
    pub fn sync_range(&self, range: Range<u64>) -> Result<()> {
        self.sync_ranges(core::slice::from_ref(&range))
    }

    /// Writes back the dirty blocks in any of `ranges` (ascending, adjacent blocks batched),
    /// then flushes the device once: `fsync` of a file whose blocks lie in several runs.
    pub fn sync_ranges(&self, ranges: &[Range<u64>]) -> Result<()> {
        let mut state = self.state.lock();
        let mut dirty: Vec<u64> = Vec::new();
        for range in ranges {
            dirty.extend(state.dirty.range(range.clone()).copied());
        }
        dirty.sort_unstable();
        dirty.dedup();
        let written = self.write_back(&mut state, &dirty);
        drop(state);
        let flushed = self.device.flush();
        written.and(flushed)
    }

    /// Drops every cached copy of the blocks in `range`, writing dirty ones back first (a
    /// dirty block whose write fails stays cached, and the error is returned). Call it before
    /// writing the range on the raw device (so cached changes reach the disk first) and again
    /// after (so copies read meanwhile are not served stale).
    pub fn invalidate(&self, range: Range<u64>) -> Result<()> {
        let mut state = self.state.lock();
        let mut cached: Vec<u64> = if range.end.saturating_sub(range.start) <= state.len() as u64 {
            range.filter(|b| state.map.contains_key(b)).collect()
        } else {
            state.map.keys().copied().filter(|b| range.contains(b)).collect()
        };
        cached.sort_unstable();
        let dirty: Vec<u64> = cached.iter().copied().filter(|b| state.dirty.contains(b)).collect();
        let result = self.write_back(&mut state, &dirty);
        for block in cached {
            if let Some(slot) = state.slot_of(block) {
                if !state.entry(slot).dirty {
                    state.remove(slot);
                }
            }
        }
        result
    }

    /// Checks a byte span within one block; returns its end.
    fn check_span(&self, offset: usize, len: usize) -> Result<usize> {
        offset.checked_add(len).filter(|&end| end <= self.block_size).ok_or(Errno::EINVAL)
    }

    fn check_block(&self, block: u64) -> Result<()> {
        if block < self.block_count { Ok(()) } else { Err(Errno::EINVAL) }
    }

    /// Replaces `block`'s contents by what `fill` writes into its buffer (whose old contents
    /// are unspecified), without reading it, and marks it dirty.
    fn replace(&self, block: u64, fill: impl FnOnce(&mut [u8])) -> Result<()> {
        self.check_block(block)?;
        let mut state = self.state.lock();
        match state.slot_of(block) {
            Some(slot) => {
                state.touch(slot);
                state.set_dirty(slot);
                fill(&mut state.entry(slot).data);
            }
            None => {
                let mut data = self.make_room(&mut state, 0).unwrap_or_else(|| vec![0u8; self.block_size].into_boxed_slice());
                fill(&mut data);
                state.insert(block, data, true);
            }
        }
        Ok(())
    }

    /// The slot of `block`, read from the device on a miss. The hit is inlined into the
    /// callers (it is a hash lookup and a comparison: a call costs a good part of that).
    #[inline]
    fn load(&self, state: &mut State, block: u64) -> Result<u32> {
        if let Some(slot) = state.slot_of(block) {
            state.stats.hits += 1;
            state.touch(slot);
            return Ok(slot);
        }
        self.load_miss(state, block)
    }

    /// [`BufferCache::load`] of a block that is not cached.
    #[inline(never)]
    fn load_miss(&self, state: &mut State, block: u64) -> Result<u32> {
        self.check_block(block)?;
        let mut data = self.make_room(state, 0).unwrap_or_else(|| vec![0u8; self.block_size].into_boxed_slice());
        self.device.read(block * self.sectors_per_block, &mut [&mut data[..]])?;
        state.stats.misses += 1;
        Ok(state.insert(block, data, false))
    }

    /// Evicts least recently used blocks until one more fits besides `pending` blocks about to
    /// be inserted; returns a victim's buffer for reuse. A dirty victim is written back first;
    /// one that cannot be written is kept (and the cache overshoots its limit).
    fn make_room(&self, state: &mut State, pending: usize) -> Option<Box<[u8]>> {
        let mut recycled = None;
        let mut candidate = state.tail;
        while state.len() + pending >= self.capacity && candidate != NIL {
            let slot = candidate;
            let (block, dirty, newer) = {
                let entry = state.entry(slot);
                (entry.block, entry.dirty, entry.newer)
            };
            candidate = newer;
            if dirty && self.write_back(state, &[block]).is_err() {
                log::warn!("{}: block {block} cannot be written back; kept in the cache", self.device.name());
                continue;
            }
            let data = state.remove(slot);
            state.stats.evictions += 1;
            if recycled.is_none() && data.len() == self.block_size {
                recycled = Some(data);
            }
        }
        recycled
    }

    /// Writes the dirty blocks `blocks` (ascending) to the device, adjacent ones in one
    /// request, and marks them clean. A failed batch is retried block by block, so one bad
    /// block does not keep its neighbours dirty. Returns the first error.
    fn write_back(&self, state: &mut State, blocks: &[u64]) -> Result<()> {
        let per_request = (self.device.max_transfer() / self.block_size).max(1);
        let mut result = Ok(());
        let mut start = 0;
        while start < blocks.len() {
            let mut end = start + 1;
            while end < blocks.len() && blocks[end] == blocks[end - 1] + 1 && end - start < per_request {
                end += 1;
            }
            let run = &blocks[start..end];
            if self.write_run(state, run).is_err() {
                for &block in run {
                    if let Err(errno) = self.write_run(state, &[block]) {
                        result = result.and(Err(errno));
                    }
                }
            }
            start = end;
        }
        result
    }

    /// One device request for the adjacent blocks `run`; marks them clean on success.
    fn write_run(&self, state: &mut State, run: &[u64]) -> Result<()> {
        let buffers: Vec<&[u8]> =
            run.iter().filter_map(|b| state.map.get(b)).map(|&slot| &state.slots[slot as usize].data[..]).collect();
        if buffers.len() != run.len() {
            return Err(Errno::EIO);
        }
        self.device.write(run[0] * self.sectors_per_block, &buffers, false)?;
        for block in run {
            if let Some(slot) = state.slot_of(*block) {
                state.entry(slot).dirty = false;
                state.dirty.remove(block);
            }
        }
        state.stats.writebacks += run.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemDisk;

    const BS: usize = 1024;

    fn disk(blocks: usize) -> Arc<MemDisk> {
        let image: Vec<u8> = (0..blocks * BS).map(|i| (i / BS) as u8).collect();
        Arc::new(MemDisk::from_image(image))
    }

    fn cache(disk: &Arc<MemDisk>, blocks: usize) -> BufferCache {
        BufferCache::new(disk.clone(), BS, blocks * BS).unwrap()
    }

    #[test]
    fn reads_hit_after_the_first_miss() {
        let disk = disk(64);
        let cache = cache(&disk, 16);
        let mut buf = [0u8; 4];
        cache.read(5, 10, &mut buf).unwrap();
        assert_eq!(buf, [5; 4]);
        cache.read(5, 0, &mut buf).unwrap();
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (1, 1));
        assert_eq!(disk.stats().reads, 1);
        assert_eq!(cache.read(64, 0, &mut buf), Err(Errno::EINVAL), "past the device");
        assert_eq!(cache.read(0, BS - 2, &mut buf), Err(Errno::EINVAL), "past the block");
    }

    #[test]
    fn bad_block_sizes_are_einval() {
        let disk = disk(8);
        assert!(BufferCache::new(disk.clone(), 512, 1 << 20).is_err());
        assert!(BufferCache::new(disk.clone(), 3000, 1 << 20).is_err());
        assert!(BufferCache::new(disk.clone(), 128 * 1024, 1 << 20).is_err());
        let big_sectors = Arc::new(MemDisk::new(65536).with_block_size(4096));
        assert!(BufferCache::new(big_sectors.clone(), 2048, 1 << 20).is_err());
        assert!(BufferCache::new(big_sectors, 4096, 1 << 20).is_ok());
    }

    #[test]
    fn eviction_keeps_the_limit_and_writes_dirty_victims_back() {
        let disk = disk(64);
        let cache = cache(&disk, 8);
        for block in 0..8 {
            cache.with_block_mut(block, |data| data[0] = 0xa0 + block as u8).unwrap();
        }
        assert_eq!(cache.dirty_blocks(), 8);
        assert_eq!(disk.stats().writes, 0, "write-back, not write-through");
        // Touch block 0 so that block 1 is the least recently used.
        cache.read(0, 0, &mut [0u8; 1]).unwrap();
        for block in 20..24 {
            cache.read(block, 0, &mut [0u8; 1]).unwrap();
        }
        assert_eq!(cache.cached_blocks(), 8);
        let stats = cache.stats();
        assert_eq!((stats.evictions, stats.writebacks), (4, 4));
        let image = disk.image();
        for block in 1..5 {
            assert_eq!(image[block * BS], 0xa0 + block as u8, "evicted block {block} reached the disk");
        }
        assert_eq!(image[0], 0, "block 0 was used recently and is still only cached");
        assert_eq!(cache.dirty_blocks(), 4);
    }

    #[test]
    fn sync_writes_in_ascending_order_batching_neighbours_then_flushes() {
        let disk = disk(64);
        let cache = cache(&disk, 32);
        for block in [9u64, 3, 4, 5, 20, 10] {
            cache.write(block, 0, &[block as u8 + 100; BS]).unwrap();
        }
        assert_eq!(disk.stats().reads, 0, "whole-block writes need no read");
        cache.sync().unwrap();
        // Runs 3..6, 9..11 and 20: three requests.
        let stats = disk.stats();
        assert_eq!((stats.writes, stats.flushes), (3, 1));
        assert_eq!(cache.stats().writebacks, 6);
        assert_eq!(cache.dirty_blocks(), 0);
        let image = disk.crash();
        for block in [9usize, 3, 4, 5, 20, 10] {
            assert!(image[block * BS..(block + 1) * BS].iter().all(|&b| b == block as u8 + 100));
        }
        cache.sync().unwrap();
        assert_eq!(disk.stats().writes, 3, "nothing dirty, nothing written");
    }

    #[test]
    fn a_crash_after_sync_keeps_data_and_loses_only_later_changes() {
        let disk = disk(64);
        let cache = cache(&disk, 32);
        cache.write(7, 0, b"durable").unwrap();
        cache.sync().unwrap();
        cache.write(8, 0, b"volatile").unwrap();
        cache.sync_block(7).unwrap();
        let image = disk.crash();
        assert_eq!(&image[7 * BS..7 * BS + 7], b"durable");
        assert_eq!(image[8 * BS], 8, "block 8 was never synced");
    }

    #[test]
    fn sync_range_writes_only_that_range() {
        let disk = disk(64);
        let cache = cache(&disk, 32);
        for block in 0..10 {
            cache.zero(block).unwrap();
        }
        cache.sync_ranges(&[2..4, 6..7]).unwrap();
        assert_eq!(cache.dirty_blocks(), 7);
        assert_eq!(disk.stats().writes, 2);
        let image = disk.crash();
        assert_eq!((image[2 * BS], image[3 * BS], image[4 * BS], image[6 * BS]), (0, 0, 4, 0));
    }

    #[test]
    fn eio_propagates_and_failed_blocks_stay_dirty() {
        let disk = disk(64);
        let cache = cache(&disk, 32);
        let per_block = (BS as u64) / SECTOR_SIZE;
        disk.fail_sectors(Some(5 * per_block..5 * per_block + 1));
        assert_eq!(cache.read(5, 0, &mut [0u8; 1]), Err(Errno::EIO));
        for block in 4..7 {
            cache.write(block, 0, &[0xee; BS]).unwrap();
        }
        assert_eq!(cache.sync(), Err(Errno::EIO));
        assert_eq!(cache.dirty_blocks(), 1, "neighbours of the bad block were written singly");
        disk.fail_sectors(None);
        cache.sync().unwrap();
        assert_eq!(cache.dirty_blocks(), 0);
        assert!(disk.crash()[5 * BS..6 * BS].iter().all(|&b| b == 0xee), "the retried block was not lost");
    }

    #[test]
    fn a_victim_that_cannot_be_written_is_kept() {
        let disk = disk(64);
        let cache = cache(&disk, 8);
        cache.write(0, 0, &[1; BS]).unwrap();
        disk.fail_sectors(Some(0..2));
        for block in 10..20 {
            cache.read(block, 0, &mut [0u8; 1]).unwrap();
        }
        assert_eq!(cache.dirty_blocks(), 1);
        let mut buf = [0u8; 1];
        cache.read(0, 0, &mut buf).unwrap();
        assert_eq!(buf, [1]);
        disk.fail_sectors(None);
        cache.sync().unwrap();
        assert_eq!(disk.image()[0], 1);
    }

    #[test]
    fn read_ahead_fetches_a_run_in_one_request() {
        let disk = disk(64);
        let cache = cache(&disk, 32);
        cache.read(12, 0, &mut [0u8; 1]).unwrap();
        cache.read_ahead(10, 8);
        // 10..12 and 13..18: two requests besides the first read.
        assert_eq!(disk.stats().reads, 3);
        assert_eq!(cache.stats().read_ahead, 7);
        let before = cache.stats().misses;
        for block in 10..18 {
            let mut buf = [0u8; 1];
            cache.read(block, 0, &mut buf).unwrap();
            assert_eq!(buf[0], block as u8);
        }
        assert_eq!(cache.stats().misses, before);
        cache.read_ahead(60, 100);
        assert_eq!(cache.stats().read_ahead, 11, "clamped to the device");
    }

    #[test]
    fn read_ahead_keeps_the_limit_and_contains_does_not_count() {
        let disk = disk(64);
        let cache = cache(&disk, 8);
        cache.read(0, 0, &mut [0u8; 1]).unwrap();
        cache.read_ahead(10, 8);
        assert_eq!(cache.cached_blocks(), 8);
        assert!(cache.contains(17) && cache.contains(10) && !cache.contains(0));
        let before = cache.stats();
        assert!(!cache.contains(40));
        assert_eq!(cache.stats(), before, "contains is no access");
        // Recycled buffers carry the new block's contents.
        for block in 30..40 {
            let mut buf = [0u8; 1];
            cache.read(block, 0, &mut buf).unwrap();
            assert_eq!(buf[0], block as u8);
        }
        cache.zero(50).unwrap();
        cache.write(51, 0, &[7; BS]).unwrap();
        let mut buf = [9u8; BS];
        cache.read(50, 0, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
        cache.read(51, 0, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 7));
        assert_eq!(cache.cached_blocks(), 8);
    }

    #[test]
    fn invalidate_drops_copies_after_writing_changes_back() {
        let disk = disk(64);
        let cache = cache(&disk, 32);
        cache.read(3, 0, &mut [0u8; 1]).unwrap();
        cache.write(4, 0, b"changed").unwrap();
        cache.invalidate(3..5).unwrap();
        assert_eq!(cache.cached_blocks(), 0);
        assert_eq!(&disk.image()[4 * BS..4 * BS + 7], b"changed");
        // A raw write to the device is seen afterwards.
        disk.write(3 * 2, &[&[0x55; BS]], false).unwrap();
        let mut buf = [0u8; 1];
        cache.read(3, 0, &mut buf).unwrap();
        assert_eq!(buf, [0x55]);
    }
}
