//! DAX: file reads served from the device's window ([`DaxWindow`]) instead of READ requests.
//!
//! The window is cut into [`CHUNK`]-sized slots (2 MiB, as Linux's `FUSE_DAX_SZ`). A slot
//! holds one 2 MiB-aligned range of one file, mapped there by one `FUSE_SETUPMAPPING`; the
//! [`MappingCache`] remembers which range each slot holds, keyed by the node's nodeid and
//! session (a nodeid of an older session, or of a forgotten node, may name another file on the
//! host now). A read of a mapped range is a copy from the window: no request, no notification,
//! no exit. A read of an unmapped range maps it first, into a free slot or, when every slot is
//! taken, into the least recently used one (a new mapping replaces the old one on the host, so
//! reclaiming costs no REMOVEMAPPING).
//!
//! Slots being read are pinned (`users`), so a slot is never remapped under a copy from it. A
//! reader that finds its range being mapped by another thread, or every slot pinned, reads
//! that piece with a READ request instead of waiting: the window is a cache, never the only
//! way to the data.
//!
//! A program's `mmap(MAP_SHARED)` of a file gets the window itself ([`FuseNode::map_through_window`]):
//! the chunks its range touches are mapped into a run of consecutive slots claimed for it
//! (writable mappings when the program may write), which leave the table of mapped chunks and
//! stay pinned until the program unmaps them ([`WindowRun`]). Loads and stores then reach the
//! host file's pages with no request and no copy; `write` and `read` see the same pages.
//!
//! Writes stay WRITE requests. The host maps files for reading with a private mapping of its
//! page cache, which a WRITE changes in place, so mapped ranges see every write through this
//! mount and every write on the host as soon as it lands (no chunk needs invalidating). Reads
//! never go past the file's size as the attribute cache knows it: the host's mapping of a file
//! ends at its last page, and touching a page past it faults the host (see the crate docs for
//! what a file shrunk on the host does).
#![forbid(unsafe_code)]

use super::node::Access;
use super::{FuseNode, Target, bump};
use crate::channel::{DaxWindow, FuseChannel};
use crate::protocol::{self as proto, Negotiated, op};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use hashbrown::HashMap;
use libos_core::sync::SpinLock;
use libos_core::{Errno, Result};
use libos_vfs::Node;
use zerocopy::IntoBytes;

/// The size of one window slot and of one mapping: 2 MiB.
pub const CHUNK: u64 = 2 << 20;

/// What a slot holds: chunk `index` (file offset `index * CHUNK`) of node `nodeid` of the
/// session in channel epoch `epoch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct ChunkKey {
    pub(super) epoch: u64,
    pub(super) nodeid: u64,
    pub(super) index: u64,
}

#[derive(Default)]
struct Slot {
    key: Option<ChunkKey>,
    /// The host confirmed the mapping (SETUPMAPPING answered).
    ready: bool,
    /// Readers copying from the slot, or the one thread mapping it.
    users: u32,
    /// When it was last used (a tick of [`Table::tick`]), for choosing what to reclaim.
    last_use: u64,
}

struct Table {
    slots: Vec<Slot>,
    by_key: HashMap<ChunkKey, usize>,
    tick: u64,
}

/// The answer of [`MappingCache::pin`].
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Pinned {
    /// The chunk is mapped at this slot, pinned until [`MappingCache::unpin`].
    Mapped(usize),
    /// The chunk is not mapped; this slot is claimed for it (pinned): map it, then call
    /// [`MappingCache::mapped`], or [`MappingCache::abandon`] if that failed.
    Claimed(usize),
    /// Nothing to use now (the chunk is being mapped by another thread, or every slot is
    /// pinned): read without the window.
    Busy,
}

/// Which file ranges the window holds, and where.
pub(super) struct MappingCache {
    window: Arc<dyn DaxWindow>,
    table: SpinLock<Table>,
    /// Cleared when the server turned out not to map (no DAX support after all).
    enabled: AtomicBool,
}

impl MappingCache {
    /// A cache over `window`, or `None` when it holds not even one slot.
    pub(super) fn new(window: Arc<dyn DaxWindow>) -> Option<MappingCache> {
        let slots = usize::try_from(window.size() / CHUNK).ok().filter(|&n| n > 0)?;
        let table = Table { slots: (0..slots).map(|_| Slot::default()).collect(), by_key: HashMap::new(), tick: 0 };
        Some(MappingCache { window, table: SpinLock::new(table), enabled: AtomicBool::new(true) })
    }

    pub(super) fn window(&self) -> &dyn DaxWindow {
        &*self.window
    }

    pub(super) fn slots(&self) -> usize {
        self.table.lock().slots.len()
    }

    pub(super) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Stops using the window (the server does not map).
    pub(super) fn disable(&self) {
        self.enabled.store(false, Ordering::Relaxed);
    }

    /// The window offset of slot `slot`.
    pub(super) fn offset(slot: usize) -> u64 {
        slot as u64 * CHUNK
    }

    /// Pins the slot holding `key`, or claims one for it.
    pub(super) fn pin(&self, key: ChunkKey) -> Pinned {
        let mut table = self.table.lock();
        table.tick += 1;
        let tick = table.tick;
        if let Some(&at) = table.by_key.get(&key) {
            let slot = &mut table.slots[at];
            if !slot.ready {
                return Pinned::Busy;
            }
            slot.users += 1;
            slot.last_use = tick;
            return Pinned::Mapped(at);
        }
        // A free slot first, else the least recently used one nobody is using.
        let victim = table
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.users == 0)
            .min_by_key(|(_, s)| (s.key.is_some(), s.last_use))
            .map(|(at, _)| at);
        let Some(at) = victim else { return Pinned::Busy };
        if let Some(old) = table.slots[at].key.take() {
            table.by_key.remove(&old);
        }
        table.slots[at] = Slot { key: Some(key), ready: false, users: 1, last_use: tick };
        table.by_key.insert(key, at);
        Pinned::Claimed(at)
    }

    /// The host mapped the chunk claimed at `slot`; it stays pinned.
    pub(super) fn mapped(&self, slot: usize) {
        self.table.lock().slots[slot].ready = true;
    }

    /// Mapping the chunk claimed at `slot` failed: the slot is free again.
    pub(super) fn abandon(&self, slot: usize) {
        let mut table = self.table.lock();
        if let Some(key) = table.slots[slot].key.take() {
            table.by_key.remove(&key);
        }
        table.slots[slot] = Slot::default();
    }

    pub(super) fn unpin(&self, slot: usize) {
        let mut table = self.table.lock();
        let slot = &mut table.slots[slot];
        slot.users = slot.users.saturating_sub(1);
    }

    /// Claims `n` consecutive slots for a program's mapping: none of them in use, free ones
    /// first, else the run whose newest use is oldest. They leave the table of mapped chunks
    /// (reads never use them) and stay pinned until [`MappingCache::release_run`]. Returns the
    /// first slot, or `None` when no such run exists now.
    pub(super) fn claim_run(&self, n: usize) -> Option<usize> {
        let mut table = self.table.lock();
        let count = table.slots.len();
        if n == 0 || n > count {
            return None;
        }
        let mut best: Option<(u64, usize)> = None;
        let mut start = 0;
        while start + n <= count {
            let run = &table.slots[start..start + n];
            if let Some(busy) = run.iter().rposition(|s| s.users > 0) {
                start += busy + 1; // no run through a pinned slot
                continue;
            }
            let newest = run.iter().map(|s| if s.key.is_some() { s.last_use + 1 } else { 0 }).max().unwrap_or(0);
            if best.is_none_or(|(cost, _)| newest < cost) {
                best = Some((newest, start));
            }
            start += 1;
        }
        let (_, first) = best?;
        for at in first..first + n {
            if let Some(old) = table.slots[at].key.take() {
                table.by_key.remove(&old);
            }
            table.slots[at] = Slot { key: None, ready: false, users: 1, last_use: 0 };
        }
        Some(first)
    }

    /// The program's mapping at slots `first..first + n` ended: the slots are free again (the
    /// host keeps their mappings until the slots are mapped anew).
    pub(super) fn release_run(&self, first: usize, n: usize) {
        let mut table = self.table.lock();
        for slot in table.slots.iter_mut().skip(first).take(n) {
            *slot = Slot::default();
        }
    }

    /// Node `nodeid` of epoch `epoch` is gone (forgotten, so its nodeid may be reused): its
    /// slots hold nothing usable any more. Their host mappings stay until the slots are
    /// reused (which keeps the host file referenced until then).
    pub(super) fn forget_node(&self, epoch: u64, nodeid: u64) {
        let mut table = self.table.lock();
        let Table { slots, by_key, .. } = &mut *table;
        by_key.retain(|key, &mut at| {
            let keep = key.epoch != epoch || key.nodeid != nodeid;
            if !keep {
                slots[at].key = None;
                slots[at].ready = false;
                slots[at].last_use = 0;
            }
            keep
        });
    }

    /// How many slots hold a mapping (for tests and statistics).
    pub(super) fn mapped_slots(&self) -> usize {
        self.table.lock().slots.iter().filter(|s| s.key.is_some() && s.ready).count()
    }
}

/// The mapping cache for a session on `channel`: `None` (every read a READ request) unless the
/// device has a window of at least one chunk and the server announced a mapping alignment that
/// 2 MiB chunks satisfy.
pub(super) fn cache_for(channel: &dyn FuseChannel, negotiated: &Negotiated) -> Option<MappingCache> {
    let window = channel.dax_window()?;
    let mib = window.size() >> 20;
    match negotiated.map_alignment {
        Some(log2) if log2 < 64 && CHUNK % (1u64 << log2) == 0 => {}
        other => {
            log::warn!("virtio-fs: DAX window of {mib} MiB, but the server announced no usable mapping alignment ({other:?}): reads use READ requests");
            return None;
        }
    }
    let Some(cache) = MappingCache::new(window) else {
        log::warn!("virtio-fs: the DAX window ({mib} MiB) is smaller than one 2 MiB chunk: reads use READ requests");
        return None;
    };
    log::info!("virtio-fs: DAX window of {mib} MiB, {} chunks of 2 MiB", cache.slots());
    Some(cache)
}

impl FuseNode {
    /// Reads up to the file's size (from the attribute cache, else one GETATTR) through the
    /// window: each 2 MiB chunk touched is mapped once (one SETUPMAPPING), then copied from.
    /// Pieces the window cannot serve now ([`Pinned::Busy`], a refused mapping) are READ
    /// requests.
    pub(super) fn read_through_window(&self, dax: &MappingCache, target: Target, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let size = self.metadata()?.size;
        if offset >= size {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(size - offset).unwrap_or(usize::MAX));
        let mut done = 0;
        while done < want {
            let at = offset + done as u64;
            let within = at % CHUNK;
            let n = (want - done).min((CHUNK - within) as usize);
            let piece = &mut buf[done..done + n];
            let key = ChunkKey { epoch: target.epoch, nodeid: self.nodeid, index: at / CHUNK };
            let slot = match dax.pin(key) {
                Pinned::Mapped(slot) => Some(slot),
                Pinned::Claimed(slot) => {
                    self.used_window.store(true, Ordering::Relaxed);
                    match self.setup_mapping(target, key.index, slot, false) {
                        Ok(()) => {
                            dax.mapped(slot);
                            Some(slot)
                        }
                        Err(e) => {
                            dax.abandon(slot);
                            if e == Errno::ENOSYS {
                                log::warn!("virtio-fs: the server does not map files (SETUPMAPPING: ENOSYS): reads use READ requests");
                                dax.disable();
                            }
                            None
                        }
                    }
                }
                Pinned::Busy => None,
            };
            let got = match slot {
                Some(slot) => {
                    let copied = dax.window().read(MappingCache::offset(slot) + within, piece);
                    dax.unpin(slot);
                    copied?;
                    bump(&self.session.counters.bytes_read_from_window, n as u64);
                    n
                }
                None => {
                    let fh = self.handle(target, Access::Read)?;
                    match self.read_requests(target, fh, at, piece) {
                        Ok(got) => got,
                        Err(e) if done == 0 => return Err(e),
                        Err(_) => 0,
                    }
                }
            };
            done += got;
            if got < n {
                break; // the file ended earlier on the host than the cached size said
            }
        }
        Ok(done)
    }

    /// FUSE_SETUPMAPPING of chunk `index` of this file at window slot `slot`: read-only, or
    /// read-write when `writable` (the host then shares its pages with the file instead of
    /// giving the guest private copies of them).
    fn setup_mapping(&self, target: Target, index: u64, slot: usize, writable: bool) -> Result<()> {
        let fh = self.handle(target, if writable { Access::Write } else { Access::Read })?;
        let mut flags = proto::FUSE_SETUPMAPPING_FLAG_READ;
        if writable {
            flags |= proto::FUSE_SETUPMAPPING_FLAG_WRITE;
        }
        let request = proto::fuse_setupmapping_in {
            fh,
            foffset: index * CHUNK,
            len: CHUNK,
            flags: u64::from(flags),
            moffset: MappingCache::offset(slot),
        };
        self.session.call_empty(op::SETUPMAPPING, target, &[request.as_bytes()])
    }

    /// `len` bytes of this file from `offset` mapped straight into the window for a program
    /// (see the module docs): every chunk the range touches into a run of slots claimed for
    /// it. `None` (the caller copies) when the window is not memory programs may use, has no
    /// run of free slots that long, or the host refused a mapping.
    pub(super) fn map_through_window(&self, dax: &MappingCache, offset: u64, len: u64, writable: bool) -> Option<WindowRun> {
        let base = dax.window().program_address()?;
        let end = offset.checked_add(len).filter(|_| len > 0)?;
        let first_chunk = offset / CHUNK;
        let chunks = usize::try_from((end - 1) / CHUNK - first_chunk + 1).ok()?;
        let target = self.target().ok()?;
        let first = dax.claim_run(chunks)?;
        let run = WindowRun { session: self.session.clone(), first, chunks, address: base + MappingCache::offset(first) + offset % CHUNK };
        self.used_window.store(true, Ordering::Relaxed);
        for i in 0..chunks {
            if let Err(e) = self.setup_mapping(target, first_chunk + i as u64, first + i, writable) {
                log::info!("virtio-fs: mapping node {} into the DAX window for a program failed ({e}): the program gets a copy", self.nodeid);
                if e == Errno::ENOSYS {
                    dax.disable();
                }
                return None; // the run is released with `run`
            }
        }
        Some(run)
    }
}

/// A program's mapping of a file in the window: slots `first..first + chunks`, pinned until it
/// is dropped (the program unmapped the range, or exited).
pub(super) struct WindowRun {
    session: Arc<super::Session>,
    first: usize,
    chunks: usize,
    address: u64,
}

impl libos_vfs::DirectMapping for WindowRun {
    fn address(&self) -> u64 {
        self.address
    }
}

impl Drop for WindowRun {
    fn drop(&mut self) {
        if let Some(dax) = self.session.dax.as_ref() {
            dax.release_run(self.first, self.chunks);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Window(u64);

    impl DaxWindow for Window {
        fn size(&self) -> u64 {
            self.0
        }
        fn read(&self, _: u64, _: &mut [u8]) -> Result<()> {
            Err(Errno::EINVAL)
        }
    }

    fn key(nodeid: u64, index: u64) -> ChunkKey {
        ChunkKey { epoch: 1, nodeid, index }
    }

    fn claim(cache: &MappingCache, k: ChunkKey) -> usize {
        match cache.pin(k) {
            Pinned::Claimed(at) => {
                cache.mapped(at);
                cache.unpin(at);
                at
            }
            other => panic!("expected a claim, got {other:?}"),
        }
    }

    #[test]
    fn a_window_smaller_than_a_chunk_has_no_cache() {
        assert!(MappingCache::new(Arc::new(Window(CHUNK - 4096))).is_none());
        assert_eq!(MappingCache::new(Arc::new(Window(3 * CHUNK + 5))).unwrap().slots(), 3);
    }

    #[test]
    fn mapped_chunks_are_found_and_the_least_recently_used_is_reclaimed() {
        let cache = MappingCache::new(Arc::new(Window(2 * CHUNK))).unwrap();
        let a = claim(&cache, key(7, 0));
        let b = claim(&cache, key(7, 1));
        assert_ne!(a, b);
        // Touch chunk 0, so chunk 1 is the least recently used.
        assert_eq!(cache.pin(key(7, 0)), Pinned::Mapped(a));
        cache.unpin(a);
        assert_eq!(cache.pin(key(8, 0)), Pinned::Claimed(b));
        cache.mapped(b);
        cache.unpin(b);
        assert_eq!(cache.pin(key(7, 1)), Pinned::Claimed(a), "chunk 1 was reclaimed, chunk 0 is now the oldest");
    }

    #[test]
    fn pinned_slots_are_never_reclaimed_and_a_chunk_being_mapped_is_busy() {
        let cache = MappingCache::new(Arc::new(Window(CHUNK))).unwrap();
        let Pinned::Claimed(at) = cache.pin(key(1, 0)) else { panic!() };
        assert_eq!(cache.pin(key(1, 0)), Pinned::Busy, "another reader while it is being mapped");
        assert_eq!(cache.pin(key(2, 0)), Pinned::Busy, "the only slot is pinned");
        cache.mapped(at);
        assert_eq!(cache.pin(key(1, 0)), Pinned::Mapped(at));
        cache.unpin(at);
        assert_eq!(cache.pin(key(2, 0)), Pinned::Busy, "still pinned by the mapper");
        cache.unpin(at);
        assert_eq!(cache.pin(key(2, 0)), Pinned::Claimed(at));
    }

    #[test]
    fn program_runs_take_consecutive_unpinned_slots_and_leave_the_read_table() {
        let cache = MappingCache::new(Arc::new(Window(5 * CHUNK))).unwrap();
        let a = claim(&cache, key(1, 0)); // slot 0, oldest
        let b = claim(&cache, key(1, 1)); // slot 1
        let Pinned::Claimed(pinned) = cache.pin(key(1, 2)) else { panic!() }; // slot 2, pinned
        assert_eq!((a, b, pinned), (0, 1, 2));
        assert_eq!(cache.claim_run(2), Some(3), "the two free slots after the pinned one");
        assert_eq!(cache.claim_run(1), Some(0), "then the least recently used slot");
        assert_eq!(cache.pin(key(1, 0)), Pinned::Claimed(1), "chunk 0 left the table with its slot; slot 1 is the only one unpinned");
        assert_eq!(cache.claim_run(1), None, "every slot is pinned now");
        assert_eq!(cache.claim_run(6), None, "longer than the window");
        cache.release_run(3, 2);
        assert_eq!(cache.claim_run(2), Some(3), "released slots are free again");
    }

    #[test]
    fn a_failed_mapping_frees_its_slot() {
        let cache = MappingCache::new(Arc::new(Window(CHUNK))).unwrap();
        let Pinned::Claimed(at) = cache.pin(key(1, 0)) else { panic!() };
        cache.abandon(at);
        assert_eq!(cache.mapped_slots(), 0);
        assert_eq!(cache.pin(key(1, 0)), Pinned::Claimed(at));
    }

    #[test]
    fn forgotten_nodes_and_older_sessions_never_match() {
        let cache = MappingCache::new(Arc::new(Window(4 * CHUNK))).unwrap();
        claim(&cache, key(5, 0));
        claim(&cache, key(6, 0));
        cache.forget_node(1, 5);
        assert_eq!(cache.mapped_slots(), 1);
        assert!(matches!(cache.pin(key(5, 0)), Pinned::Claimed(_)), "a reused nodeid maps anew");
        let newer = ChunkKey { epoch: 2, nodeid: 6, index: 0 };
        assert!(matches!(cache.pin(newer), Pinned::Claimed(_)), "the same nodeid in a later session is another file");
    }
}
