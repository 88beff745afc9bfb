//! TinyFs: the smallest writable file system that passes the whole conformance suite, as a
//! worked example of implementing [`FileSystem`] and [`Node`]. It favours brevity over speed:
//! linear directory scans, file data in one `Vec`, one lock per node, and one lock per file
//! system around namespace changes, and dropping a very deep tree recurses once per level.
//! `libos-fs-ramfs` is the same design made efficient and robust.

use crate::{DirEntry, FileSystem, FileType, Metadata, NewNode, Node, Owner, SetAttr, StatFs, Timestamp, XattrMap, XattrSet};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicU64, Ordering};
use libos_core::sync::SpinLock;
use libos_core::{Errno, Result};

/// What all nodes of one TinyFs share: inode numbers, a clock, the namespace lock.
struct Shared {
    next_ino: AtomicU64,
    clock: AtomicU64,
    namespace: SpinLock<()>,
}

impl Shared {
    fn now(&self) -> Timestamp {
        Timestamp(self.clock.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

/// A TinyFs instance.
pub struct TinyFs {
    root: Arc<TinyNode>,
}

impl TinyFs {
    /// An empty file system.
    pub fn new() -> TinyFs {
        let shared =
            Arc::new(Shared { next_ino: AtomicU64::new(2), clock: AtomicU64::new(0), namespace: SpinLock::new(()) });
        let root = TinyNode::new(&shared, 1, FileType::Directory, 0o755, Owner::default(), Weak::new(), String::new());
        root.state.lock().parent = Arc::downgrade(&root);
        TinyFs { root }
    }
}

impl Default for TinyFs {
    fn default() -> Self {
        TinyFs::new()
    }
}

impl FileSystem for TinyFs {
    fn name(&self) -> &str {
        "tinyfs"
    }

    fn root(&self) -> Arc<dyn Node> {
        self.root.clone()
    }

    fn statfs(&self) -> Result<StatFs> {
        Ok(StatFs { block_size: 4096, name_max: 255, ..StatFs::default() })
    }
}

struct State {
    perm: u32,
    owner: Owner,
    /// A device node's number.
    rdev: u64,
    nlink: u64,
    atime: Timestamp,
    mtime: Timestamp,
    ctime: Timestamp,
    /// File data, or a symlink's target.
    data: Vec<u8>,
    /// Directory entries by cookie (cookies only grow, so listings are stable).
    entries: BTreeMap<u64, (String, Arc<TinyNode>)>,
    next_cookie: u64,
    parent: Weak<TinyNode>,
    xattrs: XattrMap,
    /// An unnamed file (`O_TMPFILE`) that `link` may still name.
    linkable: bool,
}

struct TinyNode {
    ino: u64,
    kind: FileType,
    me: Weak<TinyNode>,
    shared: Arc<Shared>,
    state: SpinLock<State>,
}

impl TinyNode {
    /// `rename` (`replace`) and `rename_noreplace`, under the namespace lock.
    fn move_entry(&self, old_name: &str, new_dir: &dyn Node, new_name: &str, replace: bool) -> Result<()> {
        let new_dir = self.own(new_dir)?;
        let _ns = self.shared.namespace.lock();
        let (_, source) = self.find(old_name).ok_or(Errno::ENOENT)?;
        if !new_dir.is_live() {
            return Err(Errno::ENOENT);
        }
        let replaced = new_dir.find(new_name).map(|(_, node)| node);
        if replaced.is_some() && !replace {
            return Err(Errno::EEXIST);
        }
        if let Some(target) = &replaced {
            if Arc::ptr_eq(target, &source) {
                return Ok(());
            }
            if target.kind.is_dir() && !target.state.lock().entries.is_empty() {
                return Err(Errno::ENOTEMPTY);
            }
            new_dir.remove(new_name);
            target.drop_link();
        }
        self.remove(old_name);
        new_dir.insert(new_name, source.clone());
        let now = self.shared.now();
        let mut state = source.state.lock();
        state.parent = new_dir.me.clone();
        state.ctime = now;
        Ok(())
    }

    fn new(
        shared: &Arc<Shared>,
        ino: u64,
        kind: FileType,
        perm: u32,
        owner: Owner,
        parent: Weak<TinyNode>,
        data: String,
    ) -> Arc<TinyNode> {
        let now = shared.now();
        Arc::new_cyclic(|me| TinyNode {
            ino,
            kind,
            me: me.clone(),
            shared: shared.clone(),
            state: SpinLock::new(State {
                perm,
                owner,
                rdev: 0,
                nlink: 1,
                atime: now,
                mtime: now,
                ctime: now,
                data: data.into_bytes(),
                entries: BTreeMap::new(),
                next_cookie: 0,
                parent,
                xattrs: XattrMap::new(),
                linkable: false,
            }),
        })
    }

    fn find(&self, name: &str) -> Option<(u64, Arc<TinyNode>)> {
        let state = self.state.lock();
        state.entries.iter().find(|(_, (n, _))| n == name).map(|(&cookie, (_, node))| (cookie, node.clone()))
    }

    fn insert(&self, name: &str, node: Arc<TinyNode>) {
        let now = self.shared.now();
        let mut state = self.state.lock();
        let cookie = state.next_cookie;
        state.next_cookie += 1;
        state.entries.insert(cookie, (String::from(name), node));
        state.mtime = now;
        state.ctime = now;
    }

    fn remove(&self, name: &str) -> Option<Arc<TinyNode>> {
        let (cookie, _) = self.find(name)?;
        let now = self.shared.now();
        let mut state = self.state.lock();
        state.mtime = now;
        state.ctime = now;
        state.entries.remove(&cookie).map(|(_, node)| node)
    }

    fn drop_link(&self) {
        let now = self.shared.now();
        let mut state = self.state.lock();
        state.nlink = if self.kind.is_dir() { 0 } else { state.nlink.saturating_sub(1) };
        state.ctime = now;
    }

    fn own<'a>(&self, node: &'a dyn Node) -> Result<&'a TinyNode> {
        match node.as_any().downcast_ref::<TinyNode>() {
            Some(node) if Arc::ptr_eq(&node.shared, &self.shared) => Ok(node),
            _ => Err(Errno::EXDEV),
        }
    }

    fn is_live(&self) -> bool {
        self.state.lock().nlink > 0
    }
}

impl Node for TinyNode {
    fn ino(&self) -> u64 {
        self.ino
    }

    fn file_type(&self) -> FileType {
        self.kind
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn metadata(&self) -> Result<Metadata> {
        let state = self.state.lock();
        let subdirs = state.entries.values().filter(|(_, n)| n.kind.is_dir()).count() as u64;
        let nlink = if self.kind.is_dir() && state.nlink > 0 { 2 + subdirs } else { state.nlink };
        let size = if self.kind.is_dir() { state.entries.len() as u64 } else { state.data.len() as u64 };
        Ok(Metadata {
            dev: 0,
            ino: self.ino,
            file_type: self.kind,
            perm: state.perm,
            uid: state.owner.uid,
            gid: state.owner.gid,
            nlink,
            size,
            blocks: size.div_ceil(512),
            block_size: 4096,
            rdev: state.rdev,
            atime: state.atime,
            mtime: state.mtime,
            ctime: state.ctime,
        })
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let state = self.state.lock();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(state.data.len());
        let n = buf.len().min(state.data.len() - start);
        buf[..n].copy_from_slice(&state.data[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // A Vec cannot be sparse: refuse offsets this tiny file system would need gigabytes for.
        let start = usize::try_from(offset).ok().filter(|&o| o <= 1 << 30).ok_or(Errno::EFBIG)?;
        let now = self.shared.now();
        let mut state = self.state.lock();
        let end = start + buf.len();
        if state.data.len() < end {
            // Out of memory is ENOSPC, never a panic.
            let more = end - state.data.len();
            state.data.try_reserve(more).map_err(|_| Errno::ENOSPC)?;
            state.data.resize(end, 0);
        }
        state.data[start..start + buf.len()].copy_from_slice(buf);
        state.mtime = now;
        state.ctime = now;
        Ok(buf.len())
    }

    fn truncate(&self, size: u64) -> Result<()> {
        let size = usize::try_from(size).ok().filter(|&s| s <= 1 << 30).ok_or(Errno::EFBIG)?;
        let now = self.shared.now();
        let mut state = self.state.lock();
        let more = size.saturating_sub(state.data.len());
        state.data.try_reserve(more).map_err(|_| Errno::ENOSPC)?;
        state.data.resize(size, 0);
        state.mtime = now;
        state.ctime = now;
        Ok(())
    }

    fn read_link(&self) -> Result<String> {
        match self.kind {
            FileType::Symlink => String::from_utf8(self.state.lock().data.clone()).map_err(|_| Errno::EIO),
            _ => Err(Errno::EINVAL),
        }
    }

    fn lookup(&self, name: &str) -> Result<Arc<dyn Node>> {
        if name == ".." {
            return self.state.lock().parent.upgrade().map(|p| p as Arc<dyn Node>).ok_or(Errno::ENOENT);
        }
        self.find(name).map(|(_, node)| node as Arc<dyn Node>).ok_or(Errno::ENOENT)
    }

    fn create(&self, name: &str, kind: NewNode<'_>, perm: u32, owner: Owner) -> Result<Arc<dyn Node>> {
        let _ns = self.shared.namespace.lock();
        if !self.is_live() {
            return Err(Errno::ENOENT);
        }
        if self.find(name).is_some() {
            return Err(Errno::EEXIST);
        }
        let data = match kind {
            NewNode::Symlink(target) => String::from(target),
            _ => String::new(),
        };
        let ino = self.shared.next_ino.fetch_add(1, Ordering::Relaxed);
        let node = TinyNode::new(&self.shared, ino, kind.file_type(), perm & 0o7777, owner, self.me.clone(), data);
        node.state.lock().rdev = kind.rdev();
        self.insert(name, node.clone());
        Ok(node)
    }

    fn create_unnamed(&self, perm: u32, owner: Owner, linkable: bool) -> Result<Arc<dyn Node>> {
        let ino = self.shared.next_ino.fetch_add(1, Ordering::Relaxed);
        let node = TinyNode::new(&self.shared, ino, FileType::Regular, perm, owner, Weak::new(), String::new());
        let mut state = node.state.lock();
        state.nlink = 0;
        state.linkable = linkable;
        drop(state);
        Ok(node)
    }

    fn link(&self, name: &str, target: &dyn Node) -> Result<()> {
        let target = self.own(target)?.me.upgrade().ok_or(Errno::ENOENT)?;
        let _ns = self.shared.namespace.lock();
        if !target.is_live() && !core::mem::take(&mut target.state.lock().linkable) {
            return Err(Errno::ENOENT); // removed: it cannot get a name again
        }
        if self.find(name).is_some() {
            return Err(Errno::EEXIST);
        }
        self.insert(name, target.clone());
        let now = self.shared.now();
        let mut state = target.state.lock();
        state.nlink += 1;
        state.ctime = now;
        Ok(())
    }

    fn unlink(&self, name: &str) -> Result<()> {
        let _ns = self.shared.namespace.lock();
        let (_, node) = self.find(name).ok_or(Errno::ENOENT)?;
        if node.kind.is_dir() {
            return Err(Errno::EISDIR);
        }
        self.remove(name);
        node.drop_link();
        Ok(())
    }

    fn rmdir(&self, name: &str) -> Result<()> {
        let _ns = self.shared.namespace.lock();
        let (_, node) = self.find(name).ok_or(Errno::ENOENT)?;
        if !node.kind.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if !node.state.lock().entries.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        self.remove(name);
        node.drop_link();
        Ok(())
    }

    fn rename(&self, old_name: &str, new_dir: &dyn Node, new_name: &str) -> Result<()> {
        self.move_entry(old_name, new_dir, new_name, true)
    }

    fn rename_noreplace(&self, old_name: &str, new_dir: &dyn Node, new_name: &str) -> Result<()> {
        self.move_entry(old_name, new_dir, new_name, false)
    }

    fn rename_exchange(&self, old_name: &str, new_dir: &dyn Node, new_name: &str) -> Result<()> {
        let new_dir = self.own(new_dir)?;
        let _ns = self.shared.namespace.lock();
        let (_, source) = self.find(old_name).ok_or(Errno::ENOENT)?;
        let (_, target) = new_dir.find(new_name).ok_or(Errno::ENOENT)?;
        if Arc::ptr_eq(&source, &target) {
            return Ok(());
        }
        self.remove(old_name);
        new_dir.remove(new_name);
        self.insert(old_name, target.clone());
        new_dir.insert(new_name, source.clone());
        let now = self.shared.now();
        for (node, parent) in [(&source, &new_dir.me), (&target, &self.me)] {
            let mut state = node.state.lock();
            state.parent = parent.clone();
            state.ctime = now;
        }
        Ok(())
    }

    fn read_dir(&self, cookie: u64) -> Result<Option<DirEntry>> {
        let state = self.state.lock();
        Ok(state.entries.range(cookie..).next().map(|(&at, (name, node))| DirEntry {
            name: name.clone(),
            ino: node.ino,
            file_type: node.kind,
            next_cookie: at + 1,
        }))
    }

    fn set_attr(&self, attr: &SetAttr) -> Result<()> {
        let now = self.shared.now();
        let mut state = self.state.lock();
        let state = &mut *state;
        state.perm = attr.perm.unwrap_or(state.perm);
        state.owner.uid = attr.uid.unwrap_or(state.owner.uid);
        state.owner.gid = attr.gid.unwrap_or(state.owner.gid);
        attr.apply_times(now, &mut state.atime, &mut state.mtime);
        state.ctime = now;
        Ok(())
    }

    fn get_xattr(&self, name: &str) -> Result<Vec<u8>> {
        self.state.lock().xattrs.get(name)
    }

    fn set_xattr(&self, name: &str, value: &[u8], how: XattrSet) -> Result<()> {
        let now = self.shared.now();
        let mut state = self.state.lock();
        state.xattrs.set(name, value, how)?;
        state.ctime = now;
        Ok(())
    }

    fn remove_xattr(&self, name: &str) -> Result<()> {
        let now = self.shared.now();
        let mut state = self.state.lock();
        state.xattrs.remove(name)?;
        state.ctime = now;
        Ok(())
    }

    fn list_xattr(&self) -> Result<Vec<String>> {
        Ok(self.state.lock().xattrs.names())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{self, FileSystemFactory};

    struct Factory;

    impl FileSystemFactory for Factory {
        fn name(&self) -> &str {
            "tinyfs"
        }

        fn create(&self) -> core::result::Result<Arc<dyn FileSystem>, String> {
            Ok(Arc::new(TinyFs::new()))
        }
    }

    #[test]
    fn tiny_fs_passes_the_whole_suite() {
        let mut failures = Vec::new();
        let report = conformance::run_all(&Factory, &mut |name, result| {
            if let Err(why) = result {
                failures.push(alloc::format!("{name}: {why}"));
            }
        });
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert_eq!(report.passed, conformance::CASES.len());
    }
}
