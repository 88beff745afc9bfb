//! The mounted volume: [`Ext2Fs`] (the [`FileSystem`]), its shared core [`Inner`] with the
//! mutable [`State`], mounting, and reading and writing inodes, group descriptors and the
//! superblock.
//!
//! Locking: one blocking mutex ([`Inner::state`]) serialises every operation on the volume,
//! metadata and data alike, and is held across device I/O. That makes each operation atomic
//! with respect to the others (no half-done rename is ever visible) at the price of
//! parallelism, which an ext2 volume on one virtqueue has little of anyway. The buffer cache
//! below has its own lock, always taken after this one.
//!
//! Unmounting: the volume is written back and marked clean when the last reference to it (the
//! [`Ext2Fs`] and every node handed out) is gone, or at [`FileSystem::shut_down`] (program
//! exit), after which it takes no more changes.

use crate::dir_index::DirIndexes;
use crate::disk::{Access, GROUP_DESC_SIZE, Geometry, GroupDesc, ROOT_INO, RawGroupDesc, RawSuperblock, STATE_VALID};
use crate::inode::Inode;
use crate::node::Ext2Node;
use crate::node_cache::NodeCache;
use core::cell::RefCell;
use hashbrown::HashMap;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use libos_block::BlockDevice;
use libos_block::cache::BufferCache;
use libos_core::blocking::Mutex;
use libos_core::sync::SpinLock;
use libos_core::{Errno, Result};
use libos_vfs::{Clock, FileSystem, FileType, NAME_MAX, Node, PlatformClock, StatFs, Timestamp};
use zerocopy::{FromBytes, IntoBytes};

/// ext2's magic number, as `statfs` reports it (`EXT2_SUPER_MAGIC`).
pub const EXT2_MAGIC: u64 = 0xef53;

/// How to mount a volume.
#[derive(Clone)]
pub struct MountOptions {
    /// Mount read-only: every change fails with `EROFS`. A read-only device is always mounted
    /// read-only.
    pub read_only: bool,
    /// The buffer cache's size limit in bytes.
    pub cache_bytes: usize,
    /// Where file times come from.
    pub clock: Arc<dyn Clock>,
    /// Memory for the in-memory directory indexes, in bytes (an index is charged four bytes
    /// per byte of its directory; see `dir_index`). Least recently used indexes are dropped
    /// to stay within it; a directory too big for it is scanned instead. 0: no indexes.
    pub dir_index_bytes: usize,
}

impl Default for MountOptions {
    /// Read-write, a 4 MiB cache, the platform's wall clock, 8 MiB of directory indexes.
    fn default() -> MountOptions {
        MountOptions { read_only: false, cache_bytes: 4 << 20, clock: Arc::new(PlatformClock), dir_index_bytes: 8 << 20 }
    }
}

/// A mounted ext2 volume.
pub struct Ext2Fs {
    inner: Arc<Inner>,
}

/// What changes while the volume is mounted; guarded by [`Inner::state`].
pub(crate) struct State {
    pub groups: Vec<GroupDesc>,
    /// The superblock's free counts (the sums of the groups').
    pub free_blocks: u64,
    pub free_inodes: u64,
    pub ro_compat: u32,
    /// `s_state` as found at mount, written back at unmount.
    pub mount_state: u16,
    /// Per group: the inode bitmap's bits below this were set when last looked at (where the
    /// next inode search starts).
    pub inode_hints: Vec<u32>,
    /// The in-memory directory indexes.
    pub dirs: DirIndexes,
    /// Decoded inodes, written through (see [`Inner::read_inode`]).
    inodes: RefCell<HashMap<u32, Inode>>,
    /// Runs of files' blocks that reads mapped ([`crate::bmap::Runs`]).
    pub runs: RefCell<crate::bmap::Runs>,
    /// How many decoded inodes `inodes` keeps ([`inode_cache_entries`]).
    inode_limit: usize,
    /// Nodes of recently looked-up names ([`crate::node_cache`]).
    pub nodes: NodeCache,
}

/// The fewest decoded inodes [`State`] keeps; when full it starts over (cheap, and the inodes
/// in use are back after one decode each).
const INODE_CACHE_ENTRIES: usize = 4096;

/// How many decoded inodes to keep for a buffer cache of `cache_bytes`: one per 16 KiB of it
/// (about 1% of its size), at least [`INODE_CACHE_ENTRIES`], so that a big cache, which holds
/// the inode tables of many files, does not decode them again on every `stat` once the
/// files outnumber the fixed minimum.
fn inode_cache_entries(cache_bytes: usize) -> usize {
    (cache_bytes / (16 << 10)).max(INODE_CACHE_ENTRIES)
}

/// The core shared by the file system and its nodes.
pub(crate) struct Inner {
    pub cache: BufferCache,
    pub geo: Geometry,
    pub read_only: bool,
    pub clock: Arc<dyn Clock>,
    pub state: Mutex<State>,
    /// Set once a read-write mount has marked the volume "not clean": only then does the
    /// unmount write (a mount that fails halfway must leave the disk untouched).
    marked: AtomicBool,
    /// Set by [`FileSystem::shut_down`]: the volume is marked clean on disk, and every change
    /// from then on fails with `EROFS` ([`Inner::writable`]).
    shut: AtomicBool,
    /// Inode number -> live [`Ext2Node`]s of it. An inode whose last name is removed while
    /// some are alive is marked an orphan, and freed when its count drops to zero (a removed
    /// file stays usable while open); the last node of any other inode goes without a look at
    /// the inode. Nodes in the node cache count too, until their name changes
    /// ([`Inner::uncache`]).
    live: SpinLock<HashMap<u32, Live>>,
}

/// The live nodes of one inode (see [`Inner::live`]).
#[derive(Clone, Copy, Default)]
struct Live {
    count: usize,
    /// The inode lost its last name while these nodes were alive: free it after the last.
    orphan: bool,
    /// An unnamed file (`O_TMPFILE`, an orphan from the start) that `link` may still name.
    linkable: bool,
}

impl Ext2Fs {
    /// Mounts the ext2 volume on `device`.
    ///
    /// Errors: `EINVAL` (not ext2, or a block size the device cannot address), `EOPNOTSUPP`
    /// (an incompatible feature this driver lacks: extents, 64bit, meta_bg, flex_bg, a journal
    /// needing recovery, ... named in the log), `EROFS` (a read-write mount of a volume with
    /// a read-only-compatible feature this driver cannot keep up to date, e.g. metadata_csum,
    /// gdt_csum, huge_file, dir_nlink: mount it read-only instead), `EUCLEAN` (a corrupt
    /// superblock, group descriptor or root inode), `EIO` from the device.
    pub fn mount(device: Arc<dyn BlockDevice>, options: MountOptions) -> Result<Arc<Ext2Fs>> {
        let device_bytes = device.sectors().saturating_mul(libos_block::SECTOR_SIZE);
        let raw = read_superblock(&*device)?;
        let (geo, access) = Geometry::parse(&raw, device_bytes)?;
        let read_only = options.read_only || device.read_only();
        if let Access::ReadOnly(feature) = access {
            if !read_only {
                log::warn!("ext2: {}: feature {feature} is not supported for writing; mount read-only", device.name());
                return Err(Errno::EROFS);
            }
        }
        let cache = BufferCache::new(device, geo.block_size as usize, options.cache_bytes)?;
        let mut groups = Vec::new();
        for group in 0..geo.groups {
            let (block, offset) = geo.group_desc_location(group);
            let mut bytes = [0u8; GROUP_DESC_SIZE];
            cache.read(block, offset, &mut bytes)?;
            let desc = GroupDesc::from(RawGroupDesc::read_from_bytes(&bytes).map_err(|_| Errno::EUCLEAN)?);
            geo.check_group(group, &desc)?;
            groups.push(desc);
        }
        // Like Linux, trust the groups' counts over the superblock's (which are only a summary
        // written at sync).
        let free_blocks = groups.iter().map(|g| u64::from(g.free_blocks)).sum();
        let free_inodes = groups.iter().map(|g| u64::from(g.free_inodes)).sum();
        let inner = Arc::new(Inner {
            cache,
            read_only,
            clock: options.clock,
            state: Mutex::new(State {
                groups,
                free_blocks,
                free_inodes,
                ro_compat: raw.feature_ro_compat.get(),
                mount_state: raw.state.get(),
                inode_hints: vec![0; geo.groups as usize],
                dirs: DirIndexes::new(options.dir_index_bytes),
                inodes: RefCell::new(HashMap::new()),
                runs: RefCell::new(crate::bmap::Runs::default()),
                inode_limit: inode_cache_entries(options.cache_bytes),
                nodes: NodeCache::new(options.cache_bytes),
            }),
            live: SpinLock::new(HashMap::new()),
            marked: AtomicBool::new(false),
            shut: AtomicBool::new(false),
            geo,
        });
        {
            let st = inner.state.lock();
            let root = inner.read_inode(&st, ROOT_INO)?;
            if root.file_type()? != FileType::Directory || root.links == 0 {
                log::warn!("ext2: the root inode is not a directory");
                return Err(Errno::EUCLEAN);
            }
            if !read_only {
                if st.mount_state & STATE_VALID == 0 {
                    log::warn!("ext2: mounting a volume that was not cleanly unmounted; run e2fsck");
                }
                // Marked "not clean" on disk until unmount, as Linux does, so that a crash
                // leaves a volume e2fsck checks.
                inner.marked.store(true, Ordering::Relaxed);
                inner.write_superblock(&st, false, true)?;
                inner.cache.sync()?;
            }
        }
        Ok(Arc::new(Ext2Fs { inner }))
    }

    /// The buffer cache (for its counters).
    pub fn cache(&self) -> &BufferCache {
        &self.inner.cache
    }

    /// True when mounted read-only.
    pub fn read_only(&self) -> bool {
        self.inner.read_only
    }
}

#[cfg(test)]
impl Ext2Fs {
    /// The volume's core, for tests that look inside.
    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Every metadata block (superblock, descriptors, bitmaps, inode tables, and the blocks of
    /// directories, slow symlinks and indirect blocks of files in use), for the fuzz test.
    pub(crate) fn metadata_blocks(&self) -> Result<Vec<u64>> {
        let inner = &self.inner;
        let st = inner.state.lock();
        let mut blocks: Vec<u64> = inner.allocation_metadata(&st).into_iter().flatten().collect();
        for group in &st.groups {
            blocks.extend((0..inner.geo.itable_blocks).map(|i| u64::from(group.inode_table + i)));
        }
        for ino in 1..=inner.geo.inodes_count {
            let inode = inner.read_inode(&st, ino)?;
            if inode.links == 0 || !inode.has_block_map(inner.geo.sectors_per_block()) {
                continue;
            }
            let data = inode.file_type()? != FileType::Regular;
            blocks.extend(inner.tree_blocks(&inode, data)?.into_iter().map(u64::from));
        }
        blocks.sort_unstable();
        blocks.dedup();
        Ok(blocks)
    }
}

/// Reads the superblock straight from the device (the cache needs the block size first).
fn read_superblock(device: &dyn BlockDevice) -> Result<RawSuperblock> {
    let unit = device.block_size() as usize;
    let len = 2048usize.div_ceil(unit) * unit;
    if device.sectors().saturating_mul(libos_block::SECTOR_SIZE) < len as u64 {
        return Err(Errno::EINVAL);
    }
    let mut bytes = vec![0u8; len];
    libos_block::read_all(device, 0, &mut bytes)?;
    let (raw, _) = RawSuperblock::read_from_prefix(&bytes[1024..]).map_err(|_| Errno::EINVAL)?;
    Ok(raw)
}

impl FileSystem for Ext2Fs {
    fn name(&self) -> &str {
        "ext2"
    }

    /// The disk is the mount's alone.
    fn local_names(&self) -> bool {
        true
    }

    fn root(&self) -> Arc<dyn Node> {
        Arc::new(Ext2Node::new(self.inner.clone(), ROOT_INO, FileType::Directory))
    }

    fn statfs(&self) -> Result<StatFs> {
        let st = self.inner.state.lock();
        let geo = &self.inner.geo;
        Ok(StatFs {
            fs_type: EXT2_MAGIC,
            block_size: u64::from(geo.block_size),
            blocks: u64::from(geo.blocks_count),
            blocks_free: st.free_blocks,
            files: u64::from(geo.inodes_count),
            files_free: st.free_inodes,
            name_max: NAME_MAX as u64,
            flags: 0,
        })
    }

    fn sync(&self) -> Result<()> {
        let st = self.inner.state.lock();
        self.inner.sync_all(&st)
    }

    fn shut_down(&self) -> Result<()> {
        let st = self.inner.state.lock();
        if self.inner.read_only || self.inner.shut.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        // Under the lock: no operation runs between the clean mark and the refusal of the
        // next change.
        self.inner.write_superblock(&st, true, false)?;
        self.inner.cache.sync()
    }

    fn read_only(&self) -> bool {
        self.inner.read_only
    }
}

impl Drop for Ext2Fs {
    /// The cached nodes hold the volume: let them go, so that it is unmounted once the nodes
    /// handed out are gone too (dropped after the lock: a node's drop may take it).
    fn drop(&mut self) {
        let evicted = self.inner.state.lock().nodes.close();
        drop(evicted);
    }
}

impl Drop for Inner {
    /// Unmount: write everything back and mark the volume clean.
    fn drop(&mut self) {
        if self.read_only || !*self.marked.get_mut() || *self.shut.get_mut() {
            return;
        }
        let st = self.state.lock();
        let result = self.write_superblock(&st, true, false).and_then(|()| self.cache.sync());
        if let Err(errno) = result {
            log::error!("ext2: {}: writing back at unmount failed: {errno}", self.cache.device().name());
        }
    }
}

impl Inner {
    /// The current time for file times.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// `EROFS` on a read-only mount, and after [`FileSystem::shut_down`].
    pub fn writable(&self) -> Result<()> {
        if self.read_only || self.shut.load(Ordering::Relaxed) { Err(Errno::EROFS) } else { Ok(()) }
    }

    /// `block` as a cache block number, `EUCLEAN` unless it lies inside the volume.
    pub fn check_block(&self, block: u32) -> Result<u64> {
        if self.geo.valid_block(block) {
            Ok(u64::from(block))
        } else {
            log::warn!("ext2: block number {block} out of range");
            Err(Errno::EUCLEAN)
        }
    }

    /// Where inode `ino` lives: (block, byte offset). `EUCLEAN` for a number out of range.
    pub(crate) fn inode_location(&self, st: &State, ino: u32) -> Result<(u64, usize)> {
        if ino == 0 || ino > self.geo.inodes_count {
            log::warn!("ext2: inode number {ino} out of range");
            return Err(Errno::EUCLEAN);
        }
        let index = ino - 1;
        let group = st.groups.get((index / self.geo.inodes_per_group) as usize).ok_or(Errno::EUCLEAN)?;
        let byte = u64::from(index % self.geo.inodes_per_group) * u64::from(self.geo.inode_size);
        let block_size = u64::from(self.geo.block_size);
        // The group's table was checked at mount to lie inside the volume.
        Ok((u64::from(group.inode_table) + byte / block_size, (byte % block_size) as usize))
    }

    /// Reads inode `ino`. Decoded inodes are kept in `st` (and replaced by what is decoded
    /// from the bytes each write leaves), so reading one again costs a hash lookup.
    pub fn read_inode(&self, st: &State, ino: u32) -> Result<Inode> {
        if let Some(inode) = st.inodes.borrow().get(&ino) {
            return Ok(inode.clone());
        }
        let (block, offset) = self.inode_location(st, ino)?;
        let size = self.geo.inode_size as usize;
        let inode = self.cache.with_block(block, |data| Inode::decode(&data[offset..offset + size]))??;
        Self::remember_inode(st, ino, &inode);
        Ok(inode)
    }

    /// Calls `f` with inode `ino`, as [`Inner::read_inode`] reads it but without copying a
    /// cached one. `f` must not read or write inodes (the cache is borrowed while it runs).
    pub fn with_inode<R>(&self, st: &State, ino: u32, f: impl FnOnce(&Inode) -> R) -> Result<R> {
        if let Some(inode) = st.inodes.borrow().get(&ino) {
            return Ok(f(inode));
        }
        let inode = self.read_inode(st, ino)?;
        Ok(f(&inode))
    }

    fn remember_inode(st: &State, ino: u32, inode: &Inode) {
        let mut inodes = st.inodes.borrow_mut();
        if inodes.len() >= st.inode_limit {
            inodes.clear();
        }
        inodes.insert(ino, inode.clone());
    }

    /// Writes inode `ino` (keeping the on-disk bytes it does not own).
    pub fn write_inode(&self, st: &State, ino: u32, inode: &Inode) -> Result<()> {
        self.store_inode(st, ino, inode, false)
    }

    /// Writes a just-allocated inode: all other bytes zeroed, extra fields set up.
    pub fn write_new_inode(&self, st: &State, ino: u32, inode: &Inode) -> Result<()> {
        self.store_inode(st, ino, inode, true)
    }

    fn store_inode(&self, st: &State, ino: u32, inode: &Inode, fresh: bool) -> Result<()> {
        self.writable()?;
        // Its pointers may have changed (even if writing fails below).
        st.runs.borrow_mut().forget(ino);
        let (block, offset) = self.inode_location(st, ino)?;
        let size = self.geo.inode_size as usize;
        // What a later read would decode (the disk format may not keep every bit of `inode`).
        let stored = self.cache.with_block_mut(block, |data| {
            let bytes = &mut data[offset..offset + size];
            inode.encode(bytes, fresh).and_then(|()| Inode::decode(bytes))
        })?;
        match stored {
            Ok(stored) => {
                Self::remember_inode(st, ino, &stored);
                Ok(())
            }
            Err(errno) => {
                st.inodes.borrow_mut().remove(&ino);
                Err(errno)
            }
        }
    }

    /// The block holding inode `ino` (for fsync).
    pub fn inode_block(&self, st: &State, ino: u32) -> Result<u64> {
        Ok(self.inode_location(st, ino)?.0)
    }

    /// Writes group `group`'s descriptor from `st`.
    pub fn write_group(&self, st: &State, group: u32) -> Result<()> {
        let desc = st.groups.get(group as usize).ok_or(Errno::EUCLEAN)?;
        let (block, offset) = self.geo.group_desc_location(group);
        self.cache.with_block_mut(block, |data| {
            let bytes = &mut data[offset..offset + GROUP_DESC_SIZE];
            let mut raw = RawGroupDesc::read_from_bytes(bytes).map_err(|_| Errno::EUCLEAN)?;
            desc.store_counts(&mut raw);
            raw.write_to(bytes).map_err(|_| Errno::EUCLEAN)
        })?
    }

    /// Writes the superblock's changing fields into the cache: free counts, features, write
    /// time, and the state (`clean`: as found at mount; else marked not clean). `mounting`
    /// also counts the mount and sets the mount time.
    pub fn write_superblock(&self, st: &State, clean: bool, mounting: bool) -> Result<()> {
        let (block, offset) = self.geo.superblock_location();
        let now = (self.now().secs().min(u64::from(u32::MAX))) as u32;
        let size = size_of::<RawSuperblock>();
        self.cache.with_block_mut(block, |data| {
            let bytes = &mut data[offset..offset + size];
            let mut raw = RawSuperblock::read_from_bytes(bytes).map_err(|_| Errno::EUCLEAN)?;
            // Both counts fit: they are at most blocks_count and inodes_count (u32).
            raw.free_blocks_count.set(st.free_blocks as u32);
            raw.free_inodes_count.set(st.free_inodes as u32);
            raw.feature_ro_compat.set(st.ro_compat);
            raw.wtime.set(now);
            raw.state.set(if clean { st.mount_state } else { st.mount_state & !STATE_VALID });
            if mounting {
                raw.mtime.set(now);
                raw.mnt_count.set(raw.mnt_count.get().wrapping_add(1));
            }
            raw.write_to(bytes).map_err(|_| Errno::EUCLEAN)
        })?
    }

    /// Everything to stable storage (`sync`).
    pub fn sync_all(&self, st: &State) -> Result<()> {
        if self.read_only || self.shut.load(Ordering::Relaxed) {
            // After the shut-down everything is on disk, and the superblock says clean.
            return Ok(());
        }
        self.write_superblock(st, false, false)?;
        self.cache.sync()
    }

    /// The metadata every allocation touches, as block ranges: superblock, group descriptor
    /// table and all bitmaps. A file's fsync writes these too, so that the blocks and inode it
    /// allocated are recorded as used after a crash.
    pub fn allocation_metadata(&self, st: &State) -> Vec<core::ops::Range<u64>> {
        let (super_block, _) = self.geo.superblock_location();
        let gdt = u64::from(self.geo.gdt_start());
        let mut ranges = vec![super_block..super_block + 1, gdt..gdt + u64::from(self.geo.gdt_blocks)];
        for group in &st.groups {
            for bitmap in [group.block_bitmap, group.inode_bitmap] {
                ranges.push(u64::from(bitmap)..u64::from(bitmap) + 1);
            }
        }
        ranges
    }

    /// Counts a new live node of `ino`.
    pub fn node_opened(&self, ino: u32) {
        self.live.lock().entry(ino).or_default().count += 1;
    }

    /// Counts a live node of `ino` gone; returns true if it was the last one of an orphan
    /// (an inode whose last name went while it was open: it is to be freed now).
    pub fn node_closed(&self, ino: u32) -> bool {
        let mut live = self.live.lock();
        match live.get_mut(&ino) {
            Some(entry) if entry.count > 1 => {
                entry.count -= 1;
                false
            }
            Some(_) => live.remove(&ino).is_some_and(|entry| entry.orphan),
            None => false,
        }
    }

    /// For an inode that just lost its last name: if some node of it is alive, marks it an
    /// orphan (freed when the last node goes) and returns true; else returns false (the
    /// caller frees it now).
    pub fn keep_if_open(&self, ino: u32) -> bool {
        match self.live.lock().get_mut(&ino) {
            Some(entry) => {
                entry.orphan = true;
                true
            }
            None => false,
        }
    }

    /// Marks the unnamed inode `ino`, whose node is alive, an orphan (freed with its last
    /// node) that `link` may name if `linkable`.
    pub fn adopt_unnamed(&self, ino: u32, linkable: bool) {
        let mut live = self.live.lock();
        let entry = live.entry(ino).or_default();
        entry.orphan = true;
        entry.linkable = linkable;
    }

    /// For `link` of an inode without links: true (and it stops being an orphan) if it is a
    /// linkable unnamed file, which gets its first name now.
    pub fn take_linkable(&self, ino: u32) -> bool {
        match self.live.lock().get_mut(&ino) {
            Some(entry) if entry.linkable => {
                entry.linkable = false;
                entry.orphan = false;
                true
            }
            _ => false,
        }
    }

    /// Frees inode `ino` if it has no links left and no live node: called when its last
    /// node goes away.
    pub fn reclaim(&self, ino: u32) {
        if self.read_only {
            return;
        }
        self.reclaim_locked(&mut self.state.lock(), ino);
    }

    /// [`Inner::reclaim`] with the volume lock held.
    pub fn reclaim_locked(&self, st: &mut State, ino: u32) {
        if self.read_only || self.keep_if_open(ino) {
            return;
        }
        let result = self.read_inode(st, ino).and_then(|inode| {
            if inode.links == 0 && inode.dtime == 0 && inode.mode != 0 {
                self.release_inode(st, ino, inode)
            } else {
                Ok(())
            }
        });
        if let Err(errno) = result {
            log::error!("ext2: freeing removed inode {ino} failed: {errno}");
        }
    }
}
