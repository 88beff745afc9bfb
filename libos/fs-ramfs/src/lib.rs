//! # libos-fs-ramfs: an in-memory file system
//!
//! [`RamFs`] implements the [`libos_vfs`] traits entirely in RAM. It is the default root file
//! system of a libos image (`root=ramfs`) and the reference implementation the VFS conformance
//! suite is checked against.
//!
//! - **Files** store their data in page-sized (4 KiB) chunks in a `BTreeMap` keyed by page
//!   index. Pages never written are holes: they read as zeros and take no memory, so a sparse
//!   file of any size (up to `i64::MAX`) is cheap.
//! - **Directories** are hash maps (`hashbrown`) from name to node, so lookup stays O(1) in
//!   large directories; a second ordered map from a per-directory sequence number to name gives
//!   `readdir` stable cookies (an entry keeps its cookie until removed or renamed).
//! - **Memory** belongs to the inode (an `Arc`): removing the last name of a file that is still
//!   open keeps its data until the last [`libos_vfs::OpenFile`] is dropped, then frees it.
//! - **Limit**: [`RamFs::with_limit`] caps the bytes of file data; a write that needs a page
//!   beyond the cap fails with `ENOSPC` (or writes short if it already wrote something). Running
//!   out of heap for a data page is `ENOSPC` too, not an allocation panic (small metadata
//!   allocations, such as directory entries, still use the infallible allocator).
//! - **Times** come from a [`libos_vfs::Clock`]: in images the wall clock
//!   ([`libos_vfs::PlatformClock`], nanoseconds since 1970 UTC), in host tests a deterministic
//!   tick.
//!
//! Namespace changes (create, link, unlink, rename) are serialised by one lock per file
//! system; each inode has its own lock and at most one inode lock is held at a time, so there
//! is no lock-order deadlock.
//!
//! Users: `libos` (feature `fs-ramfs`), the conformance suite's host tests.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicU64, Ordering};
use hashbrown::HashMap;
use libos_core::sync::SpinLock;
use libos_core::{Errno, Result};
use libos_vfs::{Clock, DirEntry, FileSystem, FileType, Metadata, NewNode, Node, Owner, PlatformClock, SetAttr, StatFs, Timestamp, XattrMap, XattrSet};

/// The size of a data chunk.
pub const PAGE_SIZE: usize = 4096;
const PAGE: u64 = PAGE_SIZE as u64;
/// Linux's ramfs magic number (`RAMFS_MAGIC`), reported by `statfs`.
pub const RAMFS_MAGIC: u64 = 0x8584_58f6;

/// State shared by all inodes of one file system.
struct Shared {
    clock: Arc<dyn Clock>,
    next_ino: AtomicU64,
    /// Bytes of file data allocated (whole pages).
    used: AtomicU64,
    /// Live inodes.
    nodes: AtomicU64,
    limit: Option<u64>,
    /// Serialises namespace changes.
    namespace: SpinLock<()>,
}

impl Shared {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Reserves one page of the size limit.
    fn reserve_page(&self) -> Result<()> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let new = used + PAGE;
            if self.limit.is_some_and(|limit| new > limit) {
                return Err(Errno::ENOSPC);
            }
            match self.used.compare_exchange_weak(used, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(actual) => used = actual,
            }
        }
    }

    fn release_pages(&self, pages: usize) {
        self.used.fetch_sub(pages as u64 * PAGE, Ordering::Relaxed);
    }
}

/// An in-memory file system. Cheap to create; dropping the last reference to it and to its
/// open files frees everything.
pub struct RamFs {
    shared: Arc<Shared>,
    root: Arc<Inode>,
}

impl RamFs {
    /// An empty file system without a size limit, timed by the platform clock.
    pub fn new() -> RamFs {
        RamFs::with_options(None, Arc::new(PlatformClock))
    }

    /// An empty file system holding at most `limit` bytes of file data (rounded to pages).
    pub fn with_limit(limit: u64) -> RamFs {
        RamFs::with_options(Some(limit), Arc::new(PlatformClock))
    }

    /// An empty file system with an optional limit and the given clock.
    pub fn with_options(limit: Option<u64>, clock: Arc<dyn Clock>) -> RamFs {
        let shared = Arc::new(Shared {
            clock,
            next_ino: AtomicU64::new(2),
            used: AtomicU64::new(0),
            nodes: AtomicU64::new(0),
            limit,
            namespace: SpinLock::new(()),
        });
        let root = Inode::new(&shared, 1, Content::empty_dir(Weak::new()), 0o755, Owner::default(), 0);
        if let Content::Dir(dir) = &mut root.data.lock().content {
            dir.parent = Arc::downgrade(&root);
        }
        RamFs { shared, root }
    }

    /// Bytes of file data in use (whole pages).
    pub fn used_bytes(&self) -> u64 {
        self.shared.used.load(Ordering::Relaxed)
    }

    /// Live inodes (including removed ones still open).
    pub fn node_count(&self) -> u64 {
        self.shared.nodes.load(Ordering::Relaxed)
    }
}

impl Default for RamFs {
    fn default() -> Self {
        RamFs::new()
    }
}

impl Drop for RamFs {
    /// Frees the tree iteratively: dropping a deep chain of directories recursively could
    /// overflow the kernel stack. Directories still referenced elsewhere (open, or the root of
    /// an open handle) keep their entries.
    fn drop(&mut self) {
        let mut stack = Vec::new();
        if Arc::strong_count(&self.root) == 1 {
            take_children(&self.root, &mut stack);
        }
        while let Some(node) = stack.pop() {
            if Arc::strong_count(&node) == 1 {
                take_children(&node, &mut stack);
            }
        }
    }
}

fn take_children(node: &Inode, out: &mut Vec<Arc<Inode>>) {
    if let Content::Dir(dir) = &mut node.data.lock().content {
        dir.order.clear();
        out.extend(dir.entries.drain().map(|(_, slot)| slot.node));
    }
}

impl FileSystem for RamFs {
    fn name(&self) -> &str {
        "ramfs"
    }

    /// Memory nobody else sees.
    fn local_names(&self) -> bool {
        true
    }

    fn root(&self) -> Arc<dyn Node> {
        self.root.clone()
    }

    fn statfs(&self) -> Result<StatFs> {
        let total = self.shared.limit.map_or(u64::MAX / PAGE, |limit| limit / PAGE);
        let used = self.used_bytes() / PAGE;
        Ok(StatFs {
            fs_type: RAMFS_MAGIC,
            block_size: PAGE,
            blocks: total,
            blocks_free: total.saturating_sub(used),
            files: self.node_count(),
            files_free: u64::MAX - self.node_count(),
            name_max: libos_vfs::NAME_MAX as u64,
            flags: 0,
        })
    }
}

struct Slot {
    node: Arc<Inode>,
    cookie: u64,
}

struct Dir {
    entries: HashMap<String, Slot>,
    /// Cookie -> name, for `readdir` in a stable order.
    order: BTreeMap<u64, String>,
    next_cookie: u64,
    subdirs: u64,
    parent: Weak<Inode>,
}

impl Dir {
    fn insert(&mut self, name: &str, node: Arc<Inode>) -> Option<Arc<Inode>> {
        let cookie = self.next_cookie;
        self.next_cookie += 1;
        let old = self.remove(name);
        self.order.insert(cookie, String::from(name));
        self.entries.insert(String::from(name), Slot { node, cookie });
        old
    }

    fn remove(&mut self, name: &str) -> Option<Arc<Inode>> {
        let slot = self.entries.remove(name)?;
        self.order.remove(&slot.cookie);
        Some(slot.node)
    }

    fn get(&self, name: &str) -> Option<Arc<Inode>> {
        self.entries.get(name).map(|slot| slot.node.clone())
    }
}

enum Content {
    File { size: u64, pages: BTreeMap<u64, Box<[u8]>> },
    Dir(Dir),
    Symlink(String),
    /// A FIFO, socket name or device node: no data of its own.
    Special(FileType),
}

impl Content {
    fn empty_dir(parent: Weak<Inode>) -> Content {
        Content::Dir(Dir { entries: HashMap::new(), order: BTreeMap::new(), next_cookie: 0, subdirs: 0, parent })
    }
}

struct Data {
    perm: u32,
    owner: Owner,
    /// A device node's number (0 otherwise).
    rdev: u64,
    nlink: u64,
    atime: Timestamp,
    mtime: Timestamp,
    ctime: Timestamp,
    content: Content,
    xattrs: XattrMap,
    /// An unnamed file (`O_TMPFILE`) that `link` may still name.
    linkable: bool,
}

/// A ramfs node.
struct Inode {
    ino: u64,
    file_type: FileType,
    me: Weak<Inode>,
    shared: Arc<Shared>,
    data: SpinLock<Data>,
}

impl Drop for Inode {
    fn drop(&mut self) {
        self.shared.nodes.fetch_sub(1, Ordering::Relaxed);
        if let Content::File { pages, .. } = &self.data.get_mut().content {
            self.shared.release_pages(pages.len());
        }
    }
}

impl Inode {
    fn new(shared: &Arc<Shared>, ino: u64, content: Content, perm: u32, owner: Owner, rdev: u64) -> Arc<Inode> {
        let file_type = match content {
            Content::File { .. } => FileType::Regular,
            Content::Dir(_) => FileType::Directory,
            Content::Symlink(_) => FileType::Symlink,
            Content::Special(file_type) => file_type,
        };
        let now = shared.now();
        shared.nodes.fetch_add(1, Ordering::Relaxed);
        Arc::new_cyclic(|me| Inode {
            ino,
            file_type,
            me: me.clone(),
            shared: shared.clone(),
            data: SpinLock::new(Data { perm: perm & 0o7777, owner, rdev, nlink: 1, atime: now, mtime: now, ctime: now, content, xattrs: XattrMap::new(), linkable: false }),
        })
    }

    /// Runs `f` on the directory contents (`ENOTDIR` if this is not a directory).
    fn with_dir<T>(&self, f: impl FnOnce(&mut Dir, &mut Data) -> Result<T>) -> Result<T> {
        let mut guard = self.data.lock();
        let data = &mut *guard;
        let mut content = core::mem::replace(&mut data.content, Content::Symlink(String::new()));
        let result = match &mut content {
            Content::Dir(dir) => f(dir, data),
            _ => Err(Errno::ENOTDIR),
        };
        data.content = content;
        result
    }

    fn get(&self, name: &str) -> Result<Arc<Inode>> {
        match &self.data.lock().content {
            Content::Dir(dir) => dir.get(name).ok_or(Errno::ENOENT),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn is_empty_dir(&self) -> bool {
        matches!(&self.data.lock().content, Content::Dir(dir) if dir.entries.is_empty())
    }

    fn touch_changed(&self) {
        let now = self.shared.now();
        let mut data = self.data.lock();
        data.mtime = now;
        data.ctime = now;
    }

    fn own<'a>(&self, node: &'a dyn Node) -> Result<&'a Inode> {
        match node.as_any().downcast_ref::<Inode>() {
            Some(inode) if Arc::ptr_eq(&inode.shared, &self.shared) => Ok(inode),
            _ => Err(Errno::EXDEV),
        }
    }

    /// Frees the pages wholly past `size` and zeroes the tail of the page `size` falls in.
    fn shrink(&self, pages: &mut BTreeMap<u64, Box<[u8]>>, size: u64) {
        let first_gone = size.div_ceil(PAGE);
        let gone = pages.split_off(&first_gone);
        self.shared.release_pages(gone.len());
        let within = (size % PAGE) as usize;
        if within != 0
            && let Some(page) = pages.get_mut(&(size / PAGE))
        {
            page[within..].fill(0);
        }
    }
}

/// A zeroed page, or `ENOSPC` when the heap is exhausted (never an allocation panic).
fn new_page() -> Result<Box<[u8]>> {
    let mut page = Vec::new();
    page.try_reserve_exact(PAGE_SIZE).map_err(|_| Errno::ENOSPC)?;
    page.resize(PAGE_SIZE, 0);
    Ok(page.into_boxed_slice())
}

impl Node for Inode {
    fn ino(&self) -> u64 {
        self.ino
    }

    fn file_type(&self) -> FileType {
        self.file_type
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn metadata(&self) -> Result<Metadata> {
        let data = self.data.lock();
        let (size, blocks, nlink) = match &data.content {
            Content::File { size, pages } => (*size, pages.len() as u64 * (PAGE / 512), data.nlink),
            Content::Dir(dir) => (dir.entries.len() as u64, 0, if data.nlink == 0 { 0 } else { 2 + dir.subdirs }),
            Content::Symlink(target) => (target.len() as u64, 0, data.nlink),
            Content::Special(_) => (0, 0, data.nlink),
        };
        Ok(Metadata {
            dev: 0,
            ino: self.ino,
            file_type: self.file_type,
            perm: data.perm,
            uid: data.owner.uid,
            gid: data.owner.gid,
            nlink,
            size,
            blocks,
            block_size: PAGE_SIZE as u32,
            rdev: data.rdev,
            atime: data.atime,
            mtime: data.mtime,
            ctime: data.ctime,
        })
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let now = self.shared.now();
        let mut data = self.data.lock();
        data.atime = now;
        let Content::File { size, pages } = &data.content else {
            return Err(if self.file_type.is_dir() { Errno::EISDIR } else { Errno::EINVAL });
        };
        if offset >= *size {
            return Ok(0);
        }
        let len = buf.len().min(usize::try_from(*size - offset).unwrap_or(usize::MAX));
        let mut done = 0;
        while done < len {
            let pos = offset + done as u64;
            let within = (pos % PAGE) as usize;
            let n = (PAGE_SIZE - within).min(len - done);
            let out = &mut buf[done..done + n];
            match pages.get(&(pos / PAGE)) {
                Some(page) => out.copy_from_slice(&page[within..within + n]),
                None => out.fill(0),
            }
            done += n;
        }
        Ok(len)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize> {
        let end = offset.checked_add(buf.len() as u64).filter(|&end| end <= libos_vfs::MAX_FILE_SIZE);
        if end.is_none() {
            return Err(Errno::EFBIG);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let now = self.shared.now();
        let mut data = self.data.lock();
        let data = &mut *data;
        let Content::File { size, pages } = &mut data.content else {
            return Err(if self.file_type.is_dir() { Errno::EISDIR } else { Errno::EINVAL });
        };
        let mut done = 0;
        while done < buf.len() {
            let pos = offset + done as u64;
            let within = (pos % PAGE) as usize;
            let n = (PAGE_SIZE - within).min(buf.len() - done);
            let page = match pages.entry(pos / PAGE) {
                alloc::collections::btree_map::Entry::Occupied(page) => page.into_mut(),
                alloc::collections::btree_map::Entry::Vacant(slot) => {
                    let page = self
                        .shared
                        .reserve_page()
                        .and_then(|()| new_page().inspect_err(|_| self.shared.release_pages(1)));
                    match page {
                        Ok(page) => slot.insert(page),
                        Err(e) if done == 0 => return Err(e),
                        Err(_) => break,
                    }
                }
            };
            page[within..within + n].copy_from_slice(&buf[done..done + n]);
            done += n;
        }
        *size = (*size).max(offset + done as u64);
        data.mtime = now;
        data.ctime = now;
        Ok(done)
    }

    fn append(&self, buf: &[u8]) -> Result<(u64, usize)> {
        // Reading the size and writing must not interleave with another append. The data lock
        // is not re-entrant, so appends serialise on the file system's namespace lock.
        let _serial = self.shared.namespace.lock();
        let offset = self.metadata()?.size;
        Ok((offset, self.write_at(offset, buf)?))
    }

    fn truncate(&self, new_size: u64) -> Result<()> {
        if new_size > libos_vfs::MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        let now = self.shared.now();
        let mut data = self.data.lock();
        let data = &mut *data;
        let Content::File { size, pages } = &mut data.content else {
            return Err(if self.file_type.is_dir() { Errno::EISDIR } else { Errno::EINVAL });
        };
        if new_size < *size {
            self.shrink(pages, new_size);
        }
        *size = new_size;
        data.mtime = now;
        data.ctime = now;
        Ok(())
    }

    fn read_link(&self) -> Result<String> {
        match &self.data.lock().content {
            Content::Symlink(target) => Ok(target.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    fn lookup(&self, name: &str) -> Result<Arc<dyn Node>> {
        // Read-only: a plain borrow of the directory (no `with_dir` round trip of the content).
        let data = self.data.lock();
        let Content::Dir(dir) = &data.content else { return Err(Errno::ENOTDIR) };
        if name == ".." {
            return match dir.parent.upgrade() {
                Some(parent) => Ok(parent as Arc<dyn Node>),
                None => Err(Errno::ENOENT),
            };
        }
        dir.get(name).map(|n| n as Arc<dyn Node>).ok_or(Errno::ENOENT)
    }

    fn create(&self, name: &str, kind: NewNode<'_>, perm: u32, owner: Owner) -> Result<Arc<dyn Node>> {
        let _ns = self.shared.namespace.lock();
        if self.data.lock().nlink == 0 {
            return Err(Errno::ENOENT); // a removed directory takes no new entries
        }
        if self.get(name).is_ok() {
            return Err(Errno::EEXIST);
        }
        let ino = self.shared.next_ino.fetch_add(1, Ordering::Relaxed);
        let content = match kind {
            NewNode::File => Content::File { size: 0, pages: BTreeMap::new() },
            NewNode::Directory => Content::empty_dir(self.me.clone()),
            NewNode::Symlink(target) => Content::Symlink(String::from(target)),
            NewNode::Fifo | NewNode::Socket | NewNode::CharDevice(_) | NewNode::BlockDevice(_) => Content::Special(kind.file_type()),
        };
        let node = Inode::new(&self.shared, ino, content, perm, owner, kind.rdev());
        let now = self.shared.now();
        self.with_dir(|dir, data| {
            dir.insert(name, node.clone());
            if kind == NewNode::Directory {
                dir.subdirs += 1;
            }
            data.mtime = now;
            data.ctime = now;
            Ok(())
        })?;
        Ok(node)
    }

    fn create_unnamed(&self, perm: u32, owner: Owner, linkable: bool) -> Result<Arc<dyn Node>> {
        let ino = self.shared.next_ino.fetch_add(1, Ordering::Relaxed);
        let node = Inode::new(&self.shared, ino, Content::File { size: 0, pages: BTreeMap::new() }, perm, owner, 0);
        {
            let mut data = node.data.lock();
            data.nlink = 0;
            data.linkable = linkable;
        }
        Ok(node)
    }

    fn link(&self, name: &str, target: &dyn Node) -> Result<()> {
        let target = self.own(target)?;
        if target.file_type.is_dir() {
            return Err(Errno::EPERM);
        }
        let target = target.me.upgrade().ok_or(Errno::ENOENT)?;
        let _ns = self.shared.namespace.lock();
        {
            let data = target.data.lock();
            if data.nlink == 0 && !data.linkable {
                return Err(Errno::ENOENT);
            }
        }
        if self.get(name).is_ok() {
            return Err(Errno::EEXIST);
        }
        self.with_dir(|dir, _| {
            dir.insert(name, target.clone());
            Ok(())
        })?;
        self.touch_changed();
        let now = self.shared.now();
        let mut data = target.data.lock();
        data.nlink += 1;
        data.linkable = false;
        data.ctime = now;
        Ok(())
    }

    fn unlink(&self, name: &str) -> Result<()> {
        let _ns = self.shared.namespace.lock();
        let node = self.get(name)?;
        if node.file_type.is_dir() {
            return Err(Errno::EISDIR);
        }
        self.with_dir(|dir, _| Ok(dir.remove(name)))?;
        self.touch_changed();
        let now = self.shared.now();
        let mut data = node.data.lock();
        data.nlink = data.nlink.saturating_sub(1);
        data.ctime = now;
        Ok(())
    }

    fn rmdir(&self, name: &str) -> Result<()> {
        let _ns = self.shared.namespace.lock();
        let node = self.get(name)?;
        if !node.file_type.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if !node.is_empty_dir() {
            return Err(Errno::ENOTEMPTY);
        }
        self.with_dir(|dir, _| {
            dir.remove(name);
            dir.subdirs = dir.subdirs.saturating_sub(1);
            Ok(())
        })?;
        self.touch_changed();
        node.data.lock().nlink = 0;
        Ok(())
    }

    fn rename(&self, old_name: &str, new_dir: &dyn Node, new_name: &str) -> Result<()> {
        self.move_entry(old_name, new_dir, new_name, true)
    }

    fn rename_noreplace(&self, old_name: &str, new_dir: &dyn Node, new_name: &str) -> Result<()> {
        self.move_entry(old_name, new_dir, new_name, false)
    }

    fn rename_exchange(&self, old_name: &str, new_dir: &dyn Node, new_name: &str) -> Result<()> {
        self.exchange_entries(old_name, new_dir, new_name)
    }

    fn read_dir(&self, cookie: u64) -> Result<Option<DirEntry>> {
        self.with_dir(|dir, _| {
            let Some((&at, name)) = dir.order.range(cookie..).next() else {
                return Ok(None);
            };
            let Some(slot) = dir.entries.get(name) else {
                return Ok(None);
            };
            Ok(Some(DirEntry {
                name: name.clone(),
                ino: slot.node.ino,
                file_type: slot.node.file_type,
                next_cookie: at + 1,
            }))
        })
    }

    fn set_attr(&self, attr: &SetAttr) -> Result<()> {
        let now = self.shared.now();
        let mut data = self.data.lock();
        let data = &mut *data;
        data.perm = attr.perm.map_or(data.perm, |perm| perm & 0o7777);
        data.owner.uid = attr.uid.unwrap_or(data.owner.uid);
        data.owner.gid = attr.gid.unwrap_or(data.owner.gid);
        attr.apply_times(now, &mut data.atime, &mut data.mtime);
        data.ctime = now;
        Ok(())
    }

    fn get_xattr(&self, name: &str) -> Result<Vec<u8>> {
        self.data.lock().xattrs.get(name)
    }

    fn set_xattr(&self, name: &str, value: &[u8], how: XattrSet) -> Result<()> {
        let now = self.shared.now();
        let mut data = self.data.lock();
        data.xattrs.set(name, value, how)?;
        data.ctime = now;
        Ok(())
    }

    fn remove_xattr(&self, name: &str) -> Result<()> {
        let now = self.shared.now();
        let mut data = self.data.lock();
        data.xattrs.remove(name)?;
        data.ctime = now;
        Ok(())
    }

    fn list_xattr(&self) -> Result<Vec<String>> {
        Ok(self.data.lock().xattrs.names())
    }

    fn allocate(&self, offset: u64, len: u64, keep_size: bool) -> Result<()> {
        let end = offset.checked_add(len).filter(|&end| end <= libos_vfs::MAX_FILE_SIZE).ok_or(Errno::EFBIG)?;
        let now = self.shared.now();
        let mut data = self.data.lock();
        let data = &mut *data;
        let Content::File { size, pages } = &mut data.content else {
            return Err(if self.file_type.is_dir() { Errno::EISDIR } else { Errno::ENODEV });
        };
        // Every page of the range gets its memory now, so a later write there cannot fail
        // with ENOSPC. On failure the pages already added stay (zeros, as before): Linux
        // also keeps what a failed fallocate allocated.
        for index in offset / PAGE..end.div_ceil(PAGE) {
            if let alloc::collections::btree_map::Entry::Vacant(slot) = pages.entry(index) {
                self.shared.reserve_page()?;
                slot.insert(new_page().inspect_err(|_| self.shared.release_pages(1))?);
            }
        }
        if !keep_size && end > *size {
            *size = end;
            data.mtime = now;
        }
        data.ctime = now;
        Ok(())
    }

    fn punch_hole(&self, offset: u64, len: u64) -> Result<()> {
        let now = self.shared.now();
        let mut data = self.data.lock();
        let data = &mut *data;
        let Content::File { size, pages } = &mut data.content else {
            return Err(if self.file_type.is_dir() { Errno::EISDIR } else { Errno::ENODEV });
        };
        let end = offset.saturating_add(len).min(*size);
        let mut pos = offset;
        while pos < end {
            let index = pos / PAGE;
            let within = (pos % PAGE) as usize;
            let n = (PAGE - pos % PAGE).min(end - pos) as usize;
            if n == PAGE_SIZE {
                if pages.remove(&index).is_some() {
                    self.shared.release_pages(1);
                }
            } else if let Some(page) = pages.get_mut(&index) {
                page[within..within + n].fill(0);
            }
            pos += n as u64;
        }
        data.mtime = now;
        data.ctime = now;
        Ok(())
    }
}

mod rename;
#[cfg(test)]
mod tests;
