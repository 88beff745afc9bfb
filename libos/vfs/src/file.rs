//! [`OpenFile`]: an open file or directory with its offset and flags.
//!
//! It holds the node itself, so a file removed while open keeps its data until the last
//! `OpenFile` for it is dropped.

use crate::cred::{CredCell, Credentials};
use crate::text::Writer;
use crate::node::Node;
use crate::vfs::{Loc, Mount};
use crate::types::{DirEntry, FileType, Metadata, OpenFlags, SeekFrom, TimeUpdate};
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use libos_core::sync::SpinLock;
use libos_core::{Errno, Result};

/// The largest offset a file may reach (Linux's `MAX_LFS_FILESIZE`).
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// A node claiming to have moved more bytes than the buffer holds is broken: `EIO`, so callers
/// can slice with the count safely.
fn checked(n: usize, len: usize) -> Result<usize> {
    if n <= len { Ok(n) } else { Err(Errno::EIO) }
}

/// The directory offset after the VFS's own `.` entry (offset 0 is before it). The top of the
/// `u64` range, which no file system's cookies reach: ramfs counts from 1, and FUSE servers
/// pass `telldir` values, which are non-negative `off_t`s (ext4's end marker is `i64::MAX`).
/// (As a signed `off_t` it reads -1; the C shim passes directory offsets bit for bit.)
pub const COOKIE_AFTER_DOT: u64 = u64::MAX;
/// The directory offset after the VFS's own `..` entry: the file system's listing starts here
/// (its cookie 0). File systems' cookies stay below these two values.
pub const COOKIE_AFTER_DOTDOT: u64 = u64::MAX - 1;

/// An open file or directory: the node, the flags it was opened with, and the offset (for a
/// directory: the [`DirEntry::next_cookie`] to continue from).
pub struct OpenFile {
    node: Arc<dyn Node>,
    /// Whether the node is a directory, asked once at open (a node's type never changes):
    /// every read asks, and the node's answer is a dynamic call.
    is_dir: bool,
    dev: u64,
    /// The [`OpenFlags`] bits: the access mode and creation flags fixed at `open`, and the
    /// status flags [`OpenFile::update_flags`] may change later (`fcntl(F_SETFL)`).
    flags: AtomicU32,
    offset: SpinLock<u64>,
    /// For a directory: the inode of its parent when it was opened (what `..` lists; itself
    /// for a root, as on Linux).
    parent_ino: u64,
    /// The credentials of the namespace it was opened in: attribute changes through the
    /// file are checked with them, and writes drop set-id bits by them.
    creds: Arc<CredCell>,
    /// For a directory of a namespace: the mount it was reached through, so that walks can
    /// start at it ([`crate::PathAt`]: the `*at` calls).
    mount: Option<Arc<Mount>>,
    /// For another file of a namespace: the mount it was reached through, where
    /// `/proc/self/fd` finds its path. Weak: an open file does not keep an unmounted file
    /// system (its other nodes, its host session) alive; it keeps only its own node.
    file_mount: Weak<Mount>,
    /// For a file that is not a directory: the directory it was found in, where
    /// `/proc/self/fd` looks for its name (a directory finds its own through `..`).
    parent: Option<Arc<dyn Node>>,
    /// For a regular file open for writing: its write access, which keeps programs from
    /// running from it (`ETXTBSY`) until the description closes.
    _writer: Option<Writer>,
}

/// Where an open file is in its namespace ([`OpenFile::file_ref`]): what a `/proc/self/fd`
/// link leads to, whatever became of the name the file was opened by (as Linux's magic
/// links).
#[derive(Clone)]
pub struct FileRef {
    pub(crate) loc: Loc,
    pub(crate) parent: Option<Arc<dyn Node>>,
}

impl FileRef {
    /// The file's absolute path now, as `/proc/self/fd` shows it.
    pub fn path(&self) -> Result<String> {
        crate::vfs::path_of(self)
    }
}

impl core::fmt::Debug for OpenFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpenFile").field("ino", &self.node.ino()).field("flags", &self.flags()).finish_non_exhaustive()
    }
}

impl OpenFile {
    pub(crate) fn new(node: Arc<dyn Node>, dev: u64, flags: OpenFlags, parent_ino: u64, creds: Arc<CredCell>) -> OpenFile {
        let is_dir = node.file_type().is_dir();
        OpenFile {
            node,
            is_dir,
            dev,
            flags: AtomicU32::new(flags.bits()),
            offset: SpinLock::new(0),
            parent_ino,
            creds,
            mount: None,
            file_mount: Weak::new(),
            parent: None,
            _writer: None,
        }
    }

    /// A file or directory opened at `loc` of a namespace; `parent` is the directory a file
    /// that is not one was found in (see [`FileRef`]).
    pub(crate) fn at(loc: Loc, parent: Option<Arc<dyn Node>>, flags: OpenFlags, parent_ino: u64, creds: Arc<CredCell>) -> OpenFile {
        let mut file = OpenFile::new(loc.node, loc.mount.dev, flags, parent_ino, creds);
        if file.is_dir {
            file.mount = Some(loc.mount);
        } else {
            file.file_mount = Arc::downgrade(&loc.mount);
            file.parent = parent;
        }
        file
    }

    /// The file holding `writer` for as long as it is open.
    pub(crate) fn holding(mut self, writer: Writer) -> OpenFile {
        self._writer = Some(writer);
        self
    }

    /// Where the file is in its namespace (`None` for a node opened outside any,
    /// [`OpenFile::from_node`], or whose file system was unmounted).
    pub fn file_ref(&self) -> Option<FileRef> {
        let mount = self.mount.clone().or_else(|| self.file_mount.upgrade())?;
        Some(FileRef { loc: Loc { mount, node: self.node.clone() }, parent: self.parent.clone() })
    }

    /// Where a walk relative to this directory starts: `ENOTDIR` for anything else (or a
    /// directory outside any namespace).
    pub(crate) fn start(&self) -> Result<Loc> {
        match &self.mount {
            Some(mount) if self.is_dir => Ok(Loc { mount: mount.clone(), node: self.node.clone() }),
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// Wraps a node that is not in any namespace (e.g. a device handed to an app directly),
    /// used with root's credentials; a directory's `..` is itself.
    pub fn from_node(node: Arc<dyn Node>, flags: OpenFlags) -> OpenFile {
        let ino = node.ino();
        OpenFile::new(node, 0, flags, ino, Arc::new(CredCell::new(Credentials::root())))
    }

    /// The flags given to `open`, with the status flags as [`OpenFile::update_flags`] left
    /// them.
    pub fn flags(&self) -> OpenFlags {
        OpenFlags::from_bits_retain(self.flags.load(Ordering::Relaxed))
    }

    /// Sets the bits of `mask` to those of `value`: for the status flags a program may change
    /// after `open` (`O_APPEND`, and bits the VFS keeps for its user, such as `O_NONBLOCK`).
    /// The access mode and the creation flags must not be in `mask`.
    pub fn update_flags(&self, mask: OpenFlags, value: OpenFlags) {
        let (mask, value) = (mask.bits(), value.bits());
        let _ = self.flags.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| Some((f & !mask) | (value & mask)));
    }

    /// The node.
    pub fn node(&self) -> &Arc<dyn Node> {
        &self.node
    }

    /// `EBADF` for an `O_PATH` handle: only walks, `fstat` and the like go through it.
    fn usable(&self) -> Result<()> {
        if self.flags().contains(OpenFlags::PATH) { Err(Errno::EBADF) } else { Ok(()) }
    }

    fn check_read(&self) -> Result<()> {
        if !self.flags().readable() {
            Err(Errno::EBADF)
        } else if self.is_dir {
            Err(Errno::EISDIR)
        } else {
            Ok(())
        }
    }

    fn check_write(&self, offset: u64, len: usize) -> Result<()> {
        if !self.flags().writable() {
            return Err(Errno::EBADF);
        }
        if offset.checked_add(len as u64).is_none_or(|end| end > MAX_FILE_SIZE) {
            return Err(Errno::EFBIG);
        }
        Ok(())
    }

    /// Reads at the offset and advances it.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        self.check_read()?;
        let mut offset = self.offset.lock();
        let n = checked(self.node.read_at(*offset, buf)?, buf.len())?;
        *offset = offset.saturating_add(n as u64);
        Ok(n)
    }

    /// Reads at `offset` without moving the file offset (`pread`).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.check_read()?;
        if offset > MAX_FILE_SIZE {
            return Err(Errno::EINVAL);
        }
        checked(self.node.read_at(offset, buf)?, buf.len())
    }

    /// Writes at the offset (at the end with `O_APPEND`) and advances it.
    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        let mut offset = self.offset.lock();
        if self.flags().contains(OpenFlags::APPEND) {
            self.check_write(0, buf.len())?;
            let (at, n) = self.node.append(buf)?;
            let n = checked(n, buf.len())?;
            *offset = at.saturating_add(n as u64);
            self.after_write(n)
        } else {
            self.check_write(*offset, buf.len())?;
            let n = checked(self.node.write_at(*offset, buf)?, buf.len())?;
            *offset += n as u64;
            self.after_write(n)
        }
    }

    /// After `n` bytes were written: drops set-id bits as Linux does (a write by someone
    /// without `CAP_FSETID` must not leave a modified set-user-id program behind).
    fn after_write(&self, n: usize) -> Result<usize> {
        if n > 0 {
            self.creds.after_write(&*self.node)?;
        }
        Ok(n)
    }

    /// Writes at `offset` without moving the file offset (`pwrite`).
    pub fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize> {
        self.check_write(offset, buf.len())?;
        let n = checked(self.node.write_at(offset, buf)?, buf.len())?;
        self.after_write(n)
    }

    /// Moves the offset; returns the new one. `EINVAL` if it would be negative or overflow.
    /// On a directory `Start(cookie)` takes any cookie a listing returned (see
    /// [`DirEntry::next_cookie`]).
    pub fn seek(&self, pos: SeekFrom) -> Result<u64> {
        self.usable()?;
        let mut offset = self.offset.lock();
        // A directory's offset is a cookie, not a byte position: any saved one may come back.
        if let SeekFrom::Start(cookie) = pos
            && self.is_dir
        {
            *offset = cookie;
            return Ok(cookie);
        }
        let new = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(delta) => offset.checked_add_signed(delta),
            SeekFrom::End(delta) => self.node.metadata()?.size.checked_add_signed(delta),
        };
        match new {
            Some(new) if new <= MAX_FILE_SIZE => {
                *offset = new;
                Ok(new)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// The current offset.
    pub fn position(&self) -> u64 {
        *self.offset.lock()
    }

    /// The id of the file system it was opened on ([`Metadata::dev`]; 0 outside a namespace).
    pub fn dev(&self) -> u64 {
        self.dev
    }

    /// `fstat`.
    pub fn metadata(&self) -> Result<Metadata> {
        let mut metadata = self.node.metadata()?;
        metadata.dev = self.dev;
        Ok(metadata)
    }

    /// `ftruncate`: needs write access (`EINVAL` otherwise, as on Linux) and a regular file.
    pub fn set_len(&self, size: u64) -> Result<()> {
        self.usable()?;
        if !self.flags().writable() || self.node.file_type() != FileType::Regular || size > MAX_FILE_SIZE {
            return Err(Errno::EINVAL);
        }
        crate::attr::truncate(&self.creds, &*self.node, size)
    }

    /// `fallocate` modes 0 and `FALLOC_FL_KEEP_SIZE` (`keep_size`): reserves storage (see
    /// [`Node::allocate`]). Needs write access (`EBADF`) and a regular file (`ENODEV` for
    /// pipes and devices, `EISDIR` for directories, as Linux answers); `EFBIG` past the
    /// largest file size, `EINVAL` for an empty range.
    pub fn allocate(&self, offset: u64, len: u64, keep_size: bool) -> Result<()> {
        self.check_allocate(offset, len)?;
        self.node.allocate(offset, len, keep_size)
    }

    /// `fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`: the range reads as zeros and
    /// its storage is freed (see [`Node::punch_hole`]); checks as [`OpenFile::allocate`].
    pub fn punch_hole(&self, offset: u64, len: u64) -> Result<()> {
        self.check_allocate(offset, len)?;
        self.node.punch_hole(offset, len)
    }

    fn check_allocate(&self, offset: u64, len: u64) -> Result<()> {
        if len == 0 || offset > MAX_FILE_SIZE || len > MAX_FILE_SIZE {
            return Err(Errno::EINVAL);
        }
        if !self.flags().writable() {
            return Err(Errno::EBADF);
        }
        match self.node.file_type() {
            FileType::Regular => {}
            FileType::Directory => return Err(Errno::EISDIR),
            _ => return Err(Errno::ENODEV),
        }
        if offset + len > MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        Ok(())
    }

    /// `fchmod`: the owner or `CAP_FOWNER` may change the permission bits (`EPERM`); the
    /// set-group-id bit is dropped when the caller is outside the file's group without
    /// `CAP_FSETID`.
    pub fn set_permissions(&self, perm: u32) -> Result<()> {
        self.usable()?;
        self.check_writable_mount()?;
        crate::attr::chmod(&self.creds, &*self.node, perm)
    }

    /// `fchown` (`None` keeps an id): see [`crate::Vfs::set_owner`] and Linux's rules —
    /// changing the owner needs `CAP_CHOWN`, changing the group ownership plus membership of
    /// the new group; a non-directory loses its set-id bits.
    pub fn set_owner(&self, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
        self.usable()?;
        self.check_writable_mount()?;
        crate::attr::chown(&self.creds, &*self.node, uid, gid)
    }

    /// `fsync`.
    pub fn sync(&self) -> Result<()> {
        self.usable()?;
        self.node.sync()
    }

    /// The next directory entry, or `None` at the end: `.` and `..` first (as POSIX
    /// `readdir` lists them), then the file system's entries. Seeking to `Start(0)` rewinds;
    /// seeking to an entry's [`DirEntry::next_cookie`] continues after it.
    pub fn read_dir_next(&self) -> Result<Option<DirEntry>> {
        self.usable()?;
        if !self.is_dir {
            return Err(Errno::ENOTDIR);
        }
        let mut offset = self.offset.lock();
        let dot = |name: &str, ino: u64, next_cookie: u64| DirEntry { name: String::from(name), ino, file_type: FileType::Directory, next_cookie };
        let entry = match *offset {
            // A removed directory (no links left) lists nothing, not even `.` and `..`.
            0 if self.node.metadata()?.nlink == 0 => None,
            0 => Some(dot(".", self.node.ino(), COOKIE_AFTER_DOT)),
            COOKIE_AFTER_DOT => Some(dot("..", self.parent_ino, COOKIE_AFTER_DOTDOT)),
            cookie => {
                let from = if cookie == COOKIE_AFTER_DOTDOT { 0 } else { cookie };
                match self.node.read_dir(from)? {
                    // A cookie the VFS reserved (or 0, which would restart the listing) would
                    // loop or skip: a broken file system, not a silent error.
                    Some(entry) if entry.next_cookie == 0 || entry.next_cookie >= COOKIE_AFTER_DOTDOT => return Err(Errno::EIO),
                    entry => entry,
                }
            }
        };
        if let Some(entry) = &entry {
            *offset = entry.next_cookie;
        }
        Ok(entry)
    }

    /// `futimens`: sets the access and modification times (now: the owner or a writer;
    /// given times: the owner or `CAP_FOWNER`).
    pub fn set_times(&self, accessed: TimeUpdate, modified: TimeUpdate) -> Result<()> {
        self.usable()?;
        if accessed != TimeUpdate::Keep || modified != TimeUpdate::Keep {
            self.check_writable_mount()?;
        }
        crate::attr::set_times(&self.creds, &*self.node, accessed, modified)
    }

    /// `EROFS` when the file was opened through a mount made read-only (a read-only file
    /// system answers attribute changes itself).
    fn check_writable_mount(&self) -> Result<()> {
        let mount = self.mount.clone().or_else(|| self.file_mount.upgrade());
        if mount.is_some_and(|m| m.flags().contains(crate::MountFlags::READ_ONLY)) { Err(Errno::EROFS) } else { Ok(()) }
    }

    /// Whether the file's file system is mounted read-only (false for a file outside any
    /// namespace or whose file system was unmounted).
    fn on_read_only_fs(&self) -> bool {
        self.mount.clone().or_else(|| self.file_mount.upgrade()).is_some_and(|mount| mount.read_only())
    }

    /// `fgetxattr`: the value of extended attribute `name` (see [`crate::xattr`] for the
    /// rules; the descriptor's access mode does not matter, the file's permissions do).
    pub fn get_xattr(&self, name: &str) -> Result<Vec<u8>> {
        self.usable()?;
        crate::xattr::get(&self.creds, &*self.node, name)
    }

    /// `fsetxattr`: sets extended attribute `name` to `value` as `how` says.
    pub fn set_xattr(&self, name: &str, value: &[u8], how: crate::XattrSet) -> Result<()> {
        self.usable()?;
        crate::xattr::set(&self.creds, &*self.node, self.on_read_only_fs(), name, value, how)
    }

    /// `fremovexattr`: removes extended attribute `name`.
    pub fn remove_xattr(&self, name: &str) -> Result<()> {
        self.usable()?;
        crate::xattr::remove(&self.creds, &*self.node, self.on_read_only_fs(), name)
    }

    /// `flistxattr`: the names of the file's extended attributes the caller may see.
    pub fn list_xattr(&self) -> Result<Vec<String>> {
        self.usable()?;
        crate::xattr::list(&self.creds, &*self.node)
    }
}
