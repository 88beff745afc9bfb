//! [`FuseNode`]: one FUSE nodeid as a `libos_vfs` node — its cached attributes, its lazily
//! opened file handles, the READDIR page it lists from, and every `Node` operation as FUSE
//! requests through the [`Session`].

use super::*;
use alloc::boxed::Box;

mod xattr;

pub(super) struct AttrCache {
    pub(super) meta: Metadata,
    pub(super) valid_until: u64,
}

/// What a file handle may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Access {
    Read,
    Write,
    ReadWrite,
    Dir,
}

impl Access {
    pub(super) fn serves(self, need: Access) -> bool {
        self == need || (self == Access::ReadWrite && matches!(need, Access::Read | Access::Write))
    }
}

pub(super) struct Handle {
    pub(super) fh: u64,
    /// The session it was opened in (only the root outlives sessions, and its handles with it).
    pub(super) epoch: u64,
    pub(super) access: Access,
    /// Written through: FLUSH before RELEASE.
    pub(super) dirty: bool,
}

/// Directory entries of one READDIR reply, each with the cookie it starts at.
pub(super) struct DirBuf {
    pub(super) entries: Vec<(u64, DirEntry)>,
}

/// A file, directory or symlink of a [`VirtioFs`]: one FUSE nodeid.
pub struct FuseNode {
    pub(super) session: Arc<Session>,
    pub(super) nodeid: u64,
    /// The session (channel epoch) the nodeid belongs to; the root's is its first.
    pub(super) epoch: u64,
    pub(super) ino: u64,
    pub(super) file_type: FileType,
    /// Lookup references this object holds on the host.
    pub(super) nlookup: AtomicU64,
    /// A directory's parent (`None` for the root and for non-directories).
    pub(super) parent: SpinLock<Option<Arc<FuseNode>>>,
    pub(super) attr: SpinLock<AttrCache>,
    pub(super) handles: SpinLock<Vec<Handle>>,
    pub(super) dir_buf: SpinLock<Option<DirBuf>>,
    pub(super) link_target: SpinLock<Option<String>>,
    /// Some DAX window slot was claimed for this node (so its drop must clear them; most
    /// nodes never are, and their drop then skips the mapping table).
    pub(super) used_window: AtomicBool,
}

impl core::fmt::Debug for FuseNode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FuseNode").field("nodeid", &self.nodeid).field("ino", &self.ino).finish_non_exhaustive()
    }
}

impl Drop for FuseNode {
    fn drop(&mut self) {
        let handles = core::mem::take(self.handles.get_mut());
        for handle in handles {
            self.release(&handle);
        }
        {
            let mut nodes = self.session.nodes.lock();
            if nodes.get(&self.nodeid).is_some_and(|w| core::ptr::eq(w.as_ptr(), self)) {
                nodes.remove(&self.nodeid);
            }
        }
        if let Some(dax) = self.session.dax.as_ref().filter(|_| *self.used_window.get_mut()) {
            dax.forget_node(self.epoch, self.nodeid);
        }
        let nlookup = *self.nlookup.get_mut();
        if nlookup > 0 {
            self.session.queue_forget(self.epoch, self.nodeid, nlookup);
        }
    }
}

pub(super) fn name_parts(name: &str) -> [&[u8]; 2] {
    [name.as_bytes(), b"\0"]
}

impl FuseNode {
    /// The FUSE nodeid.
    pub fn nodeid(&self) -> u64 {
        self.nodeid
    }

    /// Lookup references this object holds on the host.
    pub fn lookup_count(&self) -> u64 {
        self.nlookup.load(Ordering::Relaxed)
    }

    /// What requests about this node name: its nodeid in its session. The root belongs to
    /// every session, so its requests go to the current one, which is started anew first if
    /// the device failed ([`Session::ready`]); every other node stays in its own.
    pub(super) fn target(&self) -> Result<Target> {
        let epoch = if self.nodeid == abi::FUSE_ROOT_ID { self.session.ready()? } else { self.epoch };
        Ok(Target { nodeid: self.nodeid, epoch })
    }

    pub(super) fn set_attr(&self, meta: Metadata, valid_until: u64) {
        *self.attr.lock() = AttrCache { meta, valid_until };
    }

    /// Forgets the cached attributes (after a change that moves size, times or links).
    pub(super) fn stale(&self) {
        self.attr.lock().valid_until = 0;
    }

    /// After a change of this directory's entries.
    pub(super) fn dir_changed(&self) {
        self.stale();
        let old = self.dir_buf.lock().take();
        drop(old);
    }

    pub(super) fn attr_from_reply(&self, out: &proto::fuse_attr_out) -> Result<Metadata> {
        let meta = proto::metadata_from_attr(&out.attr)?;
        if meta.file_type != self.file_type {
            log::warn!("virtio-fs: node {} changed its type", self.nodeid);
            return Err(Errno::EIO);
        }
        let valid = proto::timeout_nanos(out.attr_valid, out.attr_valid_nsec).max(MIN_VALIDITY_NS);
        self.set_attr(meta, self.session.now().saturating_add(valid));
        Ok(meta)
    }

    pub(super) fn getattr(&self) -> Result<Metadata> {
        let getattr = proto::fuse_getattr_in::default();
        let out: proto::fuse_attr_out = self.session.call_fixed(op::GETATTR, self.target()?, &[getattr.as_bytes()])?;
        self.attr_from_reply(&out)
    }

    pub(super) fn own<'a>(&self, node: &'a dyn Node) -> Result<&'a FuseNode> {
        match node.as_any().downcast_ref::<FuseNode>() {
            Some(other) if Arc::ptr_eq(&other.session, &self.session) => Ok(other),
            _ => Err(Errno::EXDEV),
        }
    }

    pub(super) fn me(&self) -> Result<Arc<FuseNode>> {
        // The guard ends with this statement: a reference that turns out to be the last one is
        // dropped (and forgotten) without the table's lock held.
        let found = self.session.nodes.lock().get(&self.nodeid).and_then(Weak::upgrade);
        match found {
            Some(node) if core::ptr::eq(&*node, self) => Ok(node),
            _ => Err(Errno::ESTALE),
        }
    }

    /// Turns an entry reply to a request about `target` (this node) into a node and caches
    /// its dentry under `name`.
    pub(super) fn adopt(&self, target: Target, name: &str, entry: &proto::fuse_entry_out) -> Result<Arc<FuseNode>> {
        let me = self.me()?;
        let node = self.session.node_from_entry(entry, &me, target.epoch)?;
        self.session.add_dentry(self.nodeid, name, node.clone(), proto::timeout_nanos(entry.entry_valid, entry.entry_valid_nsec));
        Ok(node)
    }

    /// `name` in this directory, from the dentry cache or by LOOKUP.
    pub(super) fn child(&self, name: &str) -> Result<Arc<FuseNode>> {
        if let Some(node) = self.session.cached_dentry(self.nodeid, name) {
            return Ok(node);
        }
        let target = self.target()?;
        let entry: proto::fuse_entry_out = self.session.call_fixed(op::LOOKUP, target, &name_parts(name))?;
        self.adopt(target, name, &entry)
    }

    // ---- file handles ----

    /// FALLOCATE with `mode` (the host's file system decides what it supports: `EOPNOTSUPP`
    /// otherwise); the cached attributes are dropped, the size may have changed.
    pub(super) fn fallocate(&self, offset: u64, length: u64, mode: u32) -> Result<()> {
        self.regular()?;
        let target = self.target()?;
        let fh = self.handle(target, Access::Write)?;
        let request = proto::fuse_fallocate_in { fh, offset, length, mode, padding: 0 };
        let result = self.session.call_empty(op::FALLOCATE, target, &[request.as_bytes()]);
        self.stale();
        result
    }

    pub(super) fn find_handle(&self, target: Target, need: Access) -> Option<u64> {
        self.handles.lock().iter().find(|h| h.epoch == target.epoch && h.access.serves(need)).map(|h| h.fh)
    }

    pub(super) fn open(&self, target: Target, access: Access) -> Result<u64> {
        let opcode = if access == Access::Dir { op::OPENDIR } else { op::OPEN };
        let flags = match access {
            Access::Read | Access::Dir => O_RDONLY,
            Access::Write => O_WRONLY,
            Access::ReadWrite => O_RDWR,
        };
        let open_in = proto::fuse_open_in { flags, open_flags: 0 };
        let out: proto::fuse_open_out = self.session.call_fixed(opcode, target, &[open_in.as_bytes()])?;
        Ok(out.fh)
    }

    /// A handle that allows `need`, opening one if there is none yet. Reads and writes first
    /// try a read-write handle (one handle serves both), and fall back to the exact mode when
    /// the host refuses it (a read-only file or share). The handle belongs to `target`'s
    /// session: use it only in requests about `target`.
    pub(super) fn handle(&self, target: Target, need: Access) -> Result<u64> {
        if let Some(fh) = self.find_handle(target, need) {
            return Ok(fh);
        }
        let (fh, access) = match need {
            Access::Read | Access::Write => match self.open(target, Access::ReadWrite) {
                Ok(fh) => (fh, Access::ReadWrite),
                Err(Errno::EACCES | Errno::EPERM | Errno::EROFS | Errno::ETXTBSY) => (self.open(target, need)?, need),
                Err(e) => return Err(e),
            },
            _ => (self.open(target, need)?, need),
        };
        let epoch = target.epoch;
        let mut handles = self.handles.lock();
        if let Some(existing) = handles.iter().find(|h| h.epoch == epoch && h.access.serves(need)).map(|h| h.fh) {
            // Another thread opened one meanwhile: keep theirs.
            drop(handles);
            self.release(&Handle { fh, epoch, access, dirty: false });
            return Ok(existing);
        }
        handles.push(Handle { fh, epoch, access, dirty: false });
        Ok(fh)
    }

    pub(super) fn mark_dirty(&self, fh: u64) {
        if let Some(h) = self.handles.lock().iter_mut().find(|h| h.fh == fh) {
            h.dirty = true;
        }
    }

    pub(super) fn release(&self, handle: &Handle) {
        let dir = handle.access == Access::Dir;
        let target = Target { nodeid: self.nodeid, epoch: handle.epoch };
        if handle.epoch != self.session.epoch.load(Ordering::Acquire) {
            return; // its session's server is gone, and the handle with it
        }
        if handle.dirty {
            let flush = proto::fuse_flush_in { fh: handle.fh, ..Default::default() };
            if let Err(e) = self.session.call_empty(op::FLUSH, target, &[flush.as_bytes()]) {
                log::warn!("virtio-fs: FLUSH of node {} failed: {e}", self.nodeid);
            }
        }
        let release = proto::fuse_release_in { fh: handle.fh, ..Default::default() };
        let opcode = if dir { op::RELEASEDIR } else { op::RELEASE };
        if let Err(e) = self.session.call_empty(opcode, target, &[release.as_bytes()]) {
            log::warn!("virtio-fs: {} of node {} failed: {e}", op::name(opcode), self.nodeid);
        }
    }

    pub(super) fn regular(&self) -> Result<()> {
        match self.file_type {
            FileType::Regular => Ok(()),
            FileType::Directory => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    /// One WRITE of `data` (at most `max_write` bytes) through `fh`. `flags` are the file's
    /// flags as the server sees them per write (`O_APPEND`: write at the end).
    pub(super) fn write_once(&self, target: Target, fh: u64, offset: u64, data: &[u8], flags: u32) -> Result<usize> {
        let write_in = proto::fuse_write_in { fh, offset, size: data.len() as u32, flags, ..Default::default() };
        let out: proto::fuse_write_out = self.session.call_fixed(op::WRITE, target, &[write_in.as_bytes(), data])?;
        let n = out.size as usize;
        if n > data.len() {
            log::warn!("virtio-fs: WRITE reply claims {n} of {} bytes: EIO", data.len());
            return Err(Errno::EIO);
        }
        bump(&self.session.counters.bytes_written, n as u64);
        Ok(n)
    }

    /// Writes `buf` in `max_write` pieces through `fh`; `at` gives each piece's offset.
    pub(super) fn write_all_pieces(&self, target: Target, fh: u64, buf: &[u8], flags: u32, mut at: impl FnMut(usize) -> u64) -> Result<usize> {
        let max = self.session.negotiated.max_write;
        let mut done = 0;
        while done < buf.len() {
            let piece = &buf[done..buf.len().min(done + max)];
            match self.write_once(target, fh, at(done), piece, flags) {
                Ok(n) => {
                    done += n;
                    if n < piece.len() {
                        break;
                    }
                }
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(done)
    }

    /// READs of up to `max_read` bytes through `fh` straight into `buf`, until it is full or
    /// the file ends.
    pub(super) fn read_requests(&self, target: Target, fh: u64, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let max = self.session.negotiated.max_read;
        let mut done = 0;
        while done < buf.len() {
            let end = buf.len().min(done + max);
            let piece = &mut buf[done..end];
            let want = piece.len();
            let read_in =
                proto::fuse_read_in { fh, offset: offset + done as u64, size: want as u32, ..Default::default() };
            match self.session.call(op::READ, target, &[read_in.as_bytes()], ReplyData::Upto(piece)) {
                Ok(n) => {
                    bump(&self.session.counters.bytes_read, n as u64);
                    done += n;
                    if n < want {
                        break;
                    }
                }
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(done)
    }

    pub(super) fn setattr(&self, mut setattr: proto::fuse_setattr_in) -> Result<()> {
        let target = self.target()?;
        if let Some(fh) = self.find_handle(target, Access::Write) {
            setattr.valid |= proto::FATTR_FH;
            setattr.fh = fh;
        }
        let out: proto::fuse_attr_out = self.session.call_fixed(op::SETATTR, target, &[setattr.as_bytes()])?;
        self.attr_from_reply(&out).map(drop)
    }

    /// `renameat2`: moves `old_name` of this directory to `new_name` in `new_dir` with
    /// [`rename_flags`] (`RENAME2`; plain `RENAME` when `flags` is 0).
    pub fn rename_with_flags(&self, old_name: &str, new_dir: &dyn Node, new_name: &str, flags: u32) -> Result<()> {
        if flags & !(rename_flags::NOREPLACE | rename_flags::EXCHANGE) != 0
            || flags == rename_flags::NOREPLACE | rename_flags::EXCHANGE
        {
            return Err(Errno::EINVAL);
        }
        let new_dir = self.own(new_dir)?;
        let source = self.child(old_name)?;
        let target = self.target()?;
        // The other directory's nodeid travels in the body: it must be of the same session.
        if new_dir.target()?.epoch != target.epoch {
            return Err(Errno::ESTALE);
        }
        let [old, nul] = name_parts(old_name);
        let [new, _] = name_parts(new_name);
        if flags == 0 {
            let rename = proto::fuse_rename_in { newdir: new_dir.nodeid };
            self.session.call_empty(op::RENAME, target, &[rename.as_bytes(), old, nul, new, nul])?;
        } else {
            let rename = proto::fuse_rename2_in { newdir: new_dir.nodeid, flags, padding: 0 };
            self.session.call_empty(op::RENAME2, target, &[rename.as_bytes(), old, nul, new, nul])?;
        }
        let me = self.me()?;
        let new_dir_arc = new_dir.me()?;
        let moved = self.session.remove_dentry(self.nodeid, old_name);
        let replaced = self.session.remove_dentry(new_dir.nodeid, new_name);
        if let Some(replaced) = &replaced {
            replaced.stale();
        }
        source.stale();
        if source.file_type.is_dir() {
            let old_parent = source.parent.lock().replace(new_dir_arc.clone());
            drop(old_parent);
        }
        if flags == rename_flags::EXCHANGE {
            // The target now lives under the old name; re-learn it by LOOKUP when needed.
            if let Some(replaced) = &replaced {
                if replaced.file_type.is_dir() {
                    let old_parent = replaced.parent.lock().replace(me.clone());
                    drop(old_parent);
                }
            }
        }
        self.session.add_dentry(new_dir.nodeid, new_name, source, 0);
        self.dir_changed();
        new_dir.dir_changed();
        drop((moved, replaced, me, new_dir_arc));
        Ok(())
    }

    /// Fetches the READDIR page starting at `cookie` (skipping `.` and `..`, and names that
    /// are not UTF-8, which the VFS cannot represent).
    pub(super) fn fill_dir_buf(&self, cookie: u64) -> Result<Vec<(u64, DirEntry)>> {
        let target = self.target()?;
        let fh = match self.handle(target, Access::Dir) {
            Ok(fh) => fh,
            Err(Errno::ENOENT) => return Ok(Vec::new()), // removed meanwhile, as above
            Err(e) => return Err(e),
        };
        let mut offset = cookie;
        let size = READDIR_SIZE.min(self.session.negotiated.max_read);
        let mut buf = vec![0u8; size];
        loop {
            let read_in = proto::fuse_read_in { fh, offset, size: size as u32, ..Default::default() };
            let n = match self.session.call(op::READDIR, target, &[read_in.as_bytes()], ReplyData::Upto(&mut buf)) {
                Ok(n) => n,
                // Linux (so virtiofsd) lists a removed directory with ENOENT; the VFS's
                // contract is that an open, removed directory lists nothing.
                Err(Errno::ENOENT) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let mut entries = Vec::new();
            let mut start = offset;
            let mut last_off = offset;
            for dirent in proto::Dirents::new(&buf[..n]) {
                let dirent = dirent?;
                // The first entry listed starts at the cookie asked for (skipped `.` and `..`
                // included), so a rewind to it is served from this page.
                let entry_start = if entries.is_empty() { cookie } else { start };
                start = dirent.off;
                last_off = dirent.off;
                if dirent.name == b"." || dirent.name == b".." {
                    continue;
                }
                let Ok(name) = core::str::from_utf8(dirent.name) else {
                    log::warn!("virtio-fs: skipping a directory entry whose name is not UTF-8");
                    continue;
                };
                let file_type = match proto::file_type_from_dtype(dirent.dtype) {
                    Some(t) => t,
                    None => self.child(name)?.file_type,
                };
                entries.push((entry_start, DirEntry { name: String::from(name), ino: dirent.ino, file_type, next_cookie: dirent.off }));
            }
            if n == 0 || !entries.is_empty() {
                return Ok(entries);
            }
            if last_off == offset {
                log::warn!("virtio-fs: READDIR did not advance: EIO");
                return Err(Errno::EIO);
            }
            offset = last_off;
        }
    }
}

impl Node for FuseNode {
    fn ino(&self) -> u64 {
        self.ino
    }

    fn file_type(&self) -> FileType {
        self.file_type
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    /// From the attribute cache while the host's `attr_valid` holds, else one GETATTR.
    fn metadata(&self) -> Result<Metadata> {
        let now = self.session.now();
        {
            let attr = self.attr.lock();
            if now < attr.valid_until {
                return Ok(attr.meta);
            }
        }
        self.getattr()
    }

    /// From the DAX window where the mount has one (see [`super::dax`]), else READs of up to
    /// `max_read` bytes straight into `buf`, until it is full or the file ends.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.regular()?;
        if buf.is_empty() {
            return Ok(0);
        }
        let target = self.target()?;
        if let Some(dax) = self.session.dax.as_ref().filter(|d| d.enabled()) {
            return self.read_through_window(dax, target, offset, buf);
        }
        let fh = self.handle(target, Access::Read)?;
        self.read_requests(target, fh, offset, buf)
    }

    /// WRITEs of up to `max_write` bytes straight from `buf`.
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize> {
        self.regular()?;
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > libos_vfs::MAX_FILE_SIZE) {
            return Err(Errno::EFBIG);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let target = self.target()?;
        let fh = self.handle(target, Access::Write)?;
        self.mark_dirty(fh);
        let result = self.write_all_pieces(target, fh, buf, 0, |done| offset + done as u64);
        self.stale();
        result
    }

    /// WRITEs flagged `O_APPEND` (virtiofsd then writes with `RWF_APPEND`), so the host appends
    /// atomically even against its own writers; the offset written at is the new size (from
    /// GETATTR) minus what was written.
    fn append(&self, buf: &[u8]) -> Result<(u64, usize)> {
        self.regular()?;
        let target = self.target()?;
        let fh = self.handle(target, Access::Write)?;
        self.mark_dirty(fh);
        let n = self.write_all_pieces(target, fh, buf, O_APPEND, |_| 0);
        self.stale();
        let n = n?;
        let size = self.getattr()?.size;
        Ok((size.saturating_sub(n as u64), n))
    }

    fn truncate(&self, size: u64) -> Result<()> {
        self.regular()?;
        if size > libos_vfs::MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        self.setattr(proto::fuse_setattr_in { valid: proto::FATTR_SIZE, size, ..Default::default() })
    }

    /// FALLOCATE mode 0 or `FALLOC_FL_KEEP_SIZE` through a writable handle.
    fn allocate(&self, offset: u64, len: u64, keep_size: bool) -> Result<()> {
        const FALLOC_FL_KEEP_SIZE: u32 = 1;
        self.fallocate(offset, len, if keep_size { FALLOC_FL_KEEP_SIZE } else { 0 })
    }

    /// FALLOCATE `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`.
    fn punch_hole(&self, offset: u64, len: u64) -> Result<()> {
        self.fallocate(offset, len, 0x2 | 0x1)
    }

    fn rename_exchange(&self, old_name: &str, new_dir: &dyn Node, new_name: &str) -> Result<()> {
        self.rename_with_flags(old_name, new_dir, new_name, rename_flags::EXCHANGE)
    }

    fn get_xattr(&self, name: &str) -> Result<Vec<u8>> {
        self.xattr(name)
    }

    fn set_xattr(&self, name: &str, value: &[u8], how: libos_vfs::XattrSet) -> Result<()> {
        self.set_xattr_request(name, value, how)
    }

    fn remove_xattr(&self, name: &str) -> Result<()> {
        self.remove_xattr_request(name)
    }

    /// Through the DAX window, where the mount has one that programs may use (see
    /// [`super::dax`]).
    fn map_direct(&self, offset: u64, len: u64, writable: bool) -> Option<Box<dyn libos_vfs::DirectMapping>> {
        self.regular().ok()?;
        let dax = self.session.dax.as_ref().filter(|d| d.enabled())?;
        let run = self.map_through_window(dax, offset, len, writable)?;
        Some(Box::new(run))
    }

    fn list_xattr(&self) -> Result<Vec<String>> {
        self.xattr_names()
    }

    /// FSYNC (FSYNCDIR for a directory) through a handle of this node.
    fn sync(&self) -> Result<()> {
        let target = self.target()?;
        let (opcode, fh) = match self.file_type {
            FileType::Directory => (op::FSYNCDIR, self.handle(target, Access::Dir)?),
            FileType::Regular => {
                let any = self.handles.lock().iter().find(|h| h.epoch == target.epoch && h.access != Access::Dir).map(|h| h.fh);
                (op::FSYNC, match any {
                    Some(fh) => fh,
                    None => self.handle(target, Access::Read)?,
                })
            }
            _ => return Ok(()),
        };
        let fsync = proto::fuse_fsync_in { fh, fsync_flags: 0, padding: 0 };
        self.session.call_empty(opcode, target, &[fsync.as_bytes()])
    }

    fn read_link(&self) -> Result<String> {
        if self.file_type != FileType::Symlink {
            return Err(Errno::EINVAL);
        }
        if let Some(target) = self.link_target.lock().clone() {
            return Ok(target);
        }
        let mut buf = vec![0u8; READLINK_SIZE];
        let n = self.session.call(op::READLINK, self.target()?, &[], ReplyData::Upto(&mut buf))?;
        buf.truncate(n);
        let target = String::from_utf8(buf).map_err(|_| {
            log::warn!("virtio-fs: symlink target of node {} is not UTF-8", self.nodeid);
            Errno::EIO
        })?;
        // A symlink's target never changes.
        *self.link_target.lock() = Some(target.clone());
        Ok(target)
    }

    fn lookup(&self, name: &str) -> Result<Arc<dyn Node>> {
        if !self.file_type.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if name == ".." {
            if self.nodeid == abi::FUSE_ROOT_ID {
                return Ok(self.me()?);
            }
            return match self.parent.lock().clone() {
                Some(parent) => Ok(parent),
                None => Err(Errno::ENOENT),
            };
        }
        Ok(self.child(name)?)
    }

    fn create(&self, name: &str, kind: NewNode<'_>, perm: u32, owner: Owner) -> Result<Arc<dyn Node>> {
        let [n, nul] = name_parts(name);
        let perm = perm & 0o7777;
        let node = match kind {
            NewNode::File => {
                let create = proto::fuse_create_in {
                    flags: O_RDWR | O_CREAT | O_EXCL,
                    mode: FileType::Regular.mode_bits() | perm,
                    umask: 0,
                    open_flags: 0,
                };
                let mut out = [0u8; 128 + 16];
                let target = self.target()?;
                self.session.call(op::CREATE, target, &[create.as_bytes(), n, nul], ReplyData::Fixed(&mut out))?;
                let entry = proto::fuse_entry_out::read_from_bytes(&out[..128]).map_err(|_| Errno::EIO)?;
                let open = proto::fuse_open_out::read_from_bytes(&out[128..]).map_err(|_| Errno::EIO)?;
                let handle = Handle { fh: open.fh, epoch: target.epoch, access: Access::ReadWrite, dirty: false };
                let node = match self.adopt(target, name, &entry) {
                    Ok(node) => node,
                    Err(e) => {
                        self.release(&handle);
                        return Err(e);
                    }
                };
                node.handles.lock().push(handle);
                node
            }
            NewNode::Directory => {
                let mkdir = proto::fuse_mkdir_in { mode: perm, umask: 0 };
                let target = self.target()?;
                let entry: proto::fuse_entry_out = self.session.call_fixed(op::MKDIR, target, &[mkdir.as_bytes(), n, nul])?;
                self.adopt(target, name, &entry)?
            }
            NewNode::Symlink(target) => {
                let at = self.target()?;
                let entry: proto::fuse_entry_out = self.session.call_fixed(op::SYMLINK, at, &[n, nul, target.as_bytes(), b"\0"])?;
                let node = self.adopt(at, name, &entry)?;
                *node.link_target.lock() = Some(String::from(target));
                node
            }
            NewNode::Fifo | NewNode::Socket | NewNode::CharDevice(_) | NewNode::BlockDevice(_) => {
                let mknod =
                    proto::fuse_mknod_in { mode: kind.file_type().mode_bits() | perm, rdev: proto::rdev_to_wire(kind.rdev()), umask: 0, padding: 0 };
                let target = self.target()?;
                let entry: proto::fuse_entry_out = self.session.call_fixed(op::MKNOD, target, &[mknod.as_bytes(), n, nul])?;
                self.adopt(target, name, &entry)?
            }
        };
        self.dir_changed();
        // The server made the node as the uid and gid of the request (root): hand it to the
        // owner the VFS chose. A failure leaves a node the caller cannot see as created, so
        // it is removed again.
        let made = node.metadata()?;
        if (made.uid, made.gid) != (owner.uid, owner.gid) {
            let chown = SetAttr { uid: Some(owner.uid), gid: Some(owner.gid), ..SetAttr::NONE };
            if let Err(e) = Node::set_attr(&*node, &chown) {
                let _ = if kind == NewNode::Directory { self.rmdir(name) } else { self.unlink(name) };
                return Err(e);
            }
        }
        Ok(node)
    }

    fn link(&self, name: &str, target: &dyn Node) -> Result<()> {
        let target = self.own(target)?;
        if target.file_type.is_dir() {
            return Err(Errno::EPERM);
        }
        let at = self.target()?;
        // The linked node's nodeid travels in the body: it must be of the same session.
        if target.target()?.epoch != at.epoch {
            return Err(Errno::ESTALE);
        }
        let link = proto::fuse_link_in { oldnodeid: target.nodeid };
        let [n, nul] = name_parts(name);
        let entry: proto::fuse_entry_out = self.session.call_fixed(op::LINK, at, &[link.as_bytes(), n, nul])?;
        let node = self.adopt(at, name, &entry)?;
        node.stale();
        target.stale();
        self.dir_changed();
        Ok(())
    }

    fn unlink(&self, name: &str) -> Result<()> {
        self.session.call_empty(op::UNLINK, self.target()?, &name_parts(name))?;
        if let Some(node) = self.session.remove_dentry(self.nodeid, name) {
            node.stale();
        }
        self.dir_changed();
        Ok(())
    }

    fn rmdir(&self, name: &str) -> Result<()> {
        self.session.call_empty(op::RMDIR, self.target()?, &name_parts(name))?;
        if let Some(node) = self.session.remove_dentry(self.nodeid, name) {
            node.dir_changed();
        }
        self.dir_changed();
        Ok(())
    }

    fn rename(&self, old_name: &str, new_dir: &dyn Node, new_name: &str) -> Result<()> {
        self.rename_with_flags(old_name, new_dir, new_name, 0)
    }

    fn rename_noreplace(&self, old_name: &str, new_dir: &dyn Node, new_name: &str) -> Result<()> {
        self.rename_with_flags(old_name, new_dir, new_name, rename_flags::NOREPLACE)
    }

    /// Served from the last READDIR page while its cookies match; a page is fetched when the
    /// cookie is not in it, and dropped when this mount changes the directory.
    fn read_dir(&self, cookie: u64) -> Result<Option<DirEntry>> {
        if !self.file_type.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        {
            let buf = self.dir_buf.lock();
            if let Some(found) = buf.as_ref().and_then(|b| b.entries.iter().find(|(start, _)| *start == cookie)) {
                return Ok(Some(found.1.clone()));
            }
        }
        let entries = self.fill_dir_buf(cookie)?;
        let first = entries.first().map(|(_, e)| e.clone());
        let old = self.dir_buf.lock().replace(DirBuf { entries });
        drop(old);
        Ok(first)
    }

    /// One SETATTR: `FATTR_MODE`, `FATTR_UID`, `FATTR_GID`, `FATTR_ATIME`/`FATTR_MTIME`
    /// (plus `_NOW` for the host's current time).
    fn set_attr(&self, attr: &SetAttr) -> Result<()> {
        let mut setattr = proto::fuse_setattr_in::default();
        if let Some(perm) = attr.perm {
            setattr.valid |= proto::FATTR_MODE;
            setattr.mode = perm & 0o7777;
        }
        if let Some(uid) = attr.uid {
            setattr.valid |= proto::FATTR_UID;
            setattr.uid = uid;
        }
        if let Some(gid) = attr.gid {
            setattr.valid |= proto::FATTR_GID;
            setattr.gid = gid;
        }
        match attr.atime {
            TimeUpdate::Keep => {}
            TimeUpdate::Now => setattr.valid |= proto::FATTR_ATIME | proto::FATTR_ATIME_NOW,
            TimeUpdate::To(t) => {
                setattr.valid |= proto::FATTR_ATIME;
                setattr.atime = t.secs();
                setattr.atimensec = t.subsec_nanos();
            }
        }
        match attr.mtime {
            TimeUpdate::Keep => {}
            TimeUpdate::Now => setattr.valid |= proto::FATTR_MTIME | proto::FATTR_MTIME_NOW,
            TimeUpdate::To(t) => {
                setattr.valid |= proto::FATTR_MTIME;
                setattr.mtime = t.secs();
                setattr.mtimensec = t.subsec_nanos();
            }
        }
        self.setattr(setattr)
    }
}
