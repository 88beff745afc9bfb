//! The two traits a file system implements: [`FileSystem`] (one mounted instance) and [`Node`]
//! (a file, directory, symlink or device inside it).
//!
//! Both are object safe: the VFS holds `Arc<dyn FileSystem>` and `Arc<dyn Node>`. Only the
//! operations every node has are required; every other operation has a default that returns the
//! errno Linux gives when a file system lacks it, so a read-only or tiny file system implements
//! just what it supports.
//!
//! The VFS does the generic checks before calling a node (path syntax, name length, the node is
//! a directory before `lookup`/`create`, source and target types in `rename`, mount points,
//! access modes), so implementations only do what is specific to their storage.

use crate::types::{DirEntry, FileType, Metadata, Owner, SetAttr, StatFs};
use crate::xattr::XattrSet;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use libos_core::{Errno, Result};

/// Where a magic link leads ([`Node::follow_magic`]).
pub enum LinkTarget {
    /// A file or directory of the namespace.
    File(crate::file::FileRef),
    /// An object outside the namespace (a pipe, a socket, the console), shown as a node of
    /// the link's own file system.
    Node(Arc<dyn Node>),
}

/// One mounted file system instance.
pub trait FileSystem: Send + Sync {
    /// A short type name for messages and `mount` listings, e.g. `"ramfs"`.
    fn name(&self) -> &str;

    /// The root directory.
    fn root(&self) -> Arc<dyn Node>;

    /// Capacity and usage. Default: `ENOSYS`.
    fn statfs(&self) -> Result<StatFs> {
        Err(Errno::ENOSYS)
    }

    /// Writes everything to stable storage. Default: nothing to do.
    fn sync(&self) -> Result<()> {
        Ok(())
    }

    /// The last write-back before the machine powers off (program exit): everything to
    /// stable storage, as [`FileSystem::sync`], and a disk file system's volume marked as
    /// cleanly unmounted, since nothing may change it afterwards (changes then fail with
    /// `EROFS`). Default: [`FileSystem::sync`].
    fn shut_down(&self) -> Result<()> {
        self.sync()
    }

    /// Whether the instance refuses every change (a read-only mount or device): the VFS then
    /// refuses to open its regular files for writing with `EROFS`, as Linux does at `open`.
    /// Default: false.
    fn read_only(&self) -> bool {
        false
    }

    /// Whether names and attributes in this file system change only through the VFS's calls
    /// of its nodes (nobody else writes its storage, and nobody calls its nodes' `rmdir`,
    /// `rename` or `set_attr` directly): the VFS then caches walks to directories through it
    /// (see `Vfs`'s walk cache), and forgets them at every change it makes. Default: false, which is
    /// the answer for a file system shared with someone else (virtio-fs: the host may rename
    /// anything) or whose names come and go by themselves (`/proc`).
    fn local_names(&self) -> bool {
        false
    }

    /// Whether the device nodes at this file system's root are the devices themselves
    /// (devfs). A device node anywhere else only names a device by type and number; opening
    /// it opens the device of that number here (or fails with `ENXIO`). Default: false.
    fn provides_devices(&self) -> bool {
        false
    }
}

/// What [`Node::create`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewNode<'a> {
    /// An empty regular file.
    File,
    /// An empty directory.
    Directory,
    /// A symbolic link with this target.
    Symlink(&'a str),
    /// A named pipe (`mkfifo`): the node only names it; the VFS's user connects the openers.
    Fifo,
    /// A Unix socket's name (`mknod S_IFSOCK`, `bind`): opening it is `ENXIO`.
    Socket,
    /// A character device node with this device number (`makedev` encoding).
    CharDevice(u64),
    /// A block device node with this device number.
    BlockDevice(u64),
}

impl NewNode<'_> {
    /// The type of the node it makes.
    pub const fn file_type(&self) -> FileType {
        match self {
            NewNode::File => FileType::Regular,
            NewNode::Directory => FileType::Directory,
            NewNode::Symlink(_) => FileType::Symlink,
            NewNode::Fifo => FileType::Fifo,
            NewNode::Socket => FileType::Socket,
            NewNode::CharDevice(_) => FileType::CharDevice,
            NewNode::BlockDevice(_) => FileType::BlockDevice,
        }
    }

    /// The device number a device node gets (0 for other types).
    pub const fn rdev(&self) -> u64 {
        match self {
            NewNode::CharDevice(rdev) | NewNode::BlockDevice(rdev) => *rdev,
            _ => 0,
        }
    }
}

/// A range of a file that its file system mapped straight into memory (a virtio-fs DAX
/// window): loads and stores there reach the file's pages on the host, with no copy and no
/// request. Dropping it ends the mapping (the memory may then hold another file).
pub trait DirectMapping: Send + Sync {
    /// The address of the first byte of the range asked for, in the kernel's (and so the
    /// program's) address space.
    fn address(&self) -> u64;
}

/// A node of a file system: file, directory, symlink or device.
///
/// Names passed in are single components: never empty, never `.` or `..`, without `/` or NUL,
/// at most [`crate::NAME_MAX`] bytes (except `lookup("..")`, see there).
pub trait Node: Send + Sync + Any {
    /// The inode number (stable while the node exists, unique in its file system).
    fn ino(&self) -> u64;

    /// The node's type (never changes).
    fn file_type(&self) -> FileType;

    /// `stat` of this node. The VFS overwrites [`Metadata::dev`].
    fn metadata(&self) -> Result<Metadata>;

    /// `self` as `Any`, so a file system can recognise its own nodes (in `link` and `rename`).
    /// Implement as `fn as_any(&self) -> &dyn Any { self }`.
    fn as_any(&self) -> &dyn Any;

    /// Reads at `offset` into `buf`; returns the bytes read, 0 at or past the end.
    /// Default: `EINVAL` (the object cannot be read).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let _ = (offset, buf);
        Err(Errno::EINVAL)
    }

    /// Writes `buf` at `offset`, extending the file (a gap reads as zeros); returns the bytes
    /// written. Default: `EINVAL` (the object cannot be written).
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize> {
        let _ = (offset, buf);
        Err(Errno::EINVAL)
    }

    /// Appends `buf` at the end of the file as one step (`O_APPEND`); returns the offset it was
    /// written at and the bytes written. Default: `write_at` at the current size, which is
    /// atomic only if nothing else writes concurrently.
    fn append(&self, buf: &[u8]) -> Result<(u64, usize)> {
        let offset = self.metadata()?.size;
        Ok((offset, self.write_at(offset, buf)?))
    }

    /// Sets the size (shrinking discards data, growing adds zeros). Default: `EINVAL`.
    fn truncate(&self, size: u64) -> Result<()> {
        let _ = size;
        Err(Errno::EINVAL)
    }

    /// Writes the node's data and metadata to stable storage. Default: nothing to do.
    fn sync(&self) -> Result<()> {
        Ok(())
    }

    /// The target of a symbolic link. Default: `EINVAL` (not a symlink).
    fn read_link(&self) -> Result<String> {
        Err(Errno::EINVAL)
    }

    /// For a magic link (procfs's `/proc/self/fd/N`, a symlink whose `read_link` text only
    /// describes the target): what following it leads to, with no walk of that text: the open
    /// file itself, wherever it is now, even removed (as Linux's magic links). Default: `None`,
    /// an ordinary symlink.
    fn follow_magic(&self) -> Option<Result<LinkTarget>> {
        None
    }

    /// The entry `name` of this directory. `..` must return the parent (the root: itself);
    /// the VFS handles `.` and `..` across mount points itself. Default: `ENOTDIR`.
    fn lookup(&self, name: &str) -> Result<Arc<dyn Node>> {
        let _ = name;
        Err(Errno::ENOTDIR)
    }

    /// Creates `name` in this directory with permission bits `perm` (`0o7777`) owned by
    /// `owner` (the VFS has applied the umask and the set-group-id rules); `EEXIST` if the
    /// name exists. A file system that cannot hold a kind (e.g. device nodes) returns
    /// `EPERM`. Default: `EPERM` (the file system cannot create nodes).
    fn create(&self, name: &str, kind: NewNode<'_>, perm: u32, owner: Owner) -> Result<Arc<dyn Node>> {
        let _ = (name, kind, perm, owner);
        Err(Errno::EPERM)
    }

    /// A new regular file with no name in this directory's file system (`O_TMPFILE`), with
    /// permission bits `perm` owned by `owner`: its link count is 0 and it lives while it is
    /// open. With `linkable`, a later [`Node::link`] may give it a name (which ends its
    /// linkability); without, `link` refuses it with `ENOENT` like any removed file. Default:
    /// `EOPNOTSUPP`, what Linux answers for a file system without unnamed files.
    fn create_unnamed(&self, perm: u32, owner: Owner, linkable: bool) -> Result<Arc<dyn Node>> {
        let _ = (perm, owner, linkable);
        Err(Errno::EOPNOTSUPP)
    }

    /// Adds the name `name` for `target` (a non-directory of the same file system, or `EXDEV`).
    /// `EEXIST` if the name exists; `ENOENT` if `target` has no name left (removed), unless it
    /// is a linkable unnamed file ([`Node::create_unnamed`]). Default: `EPERM`.
    fn link(&self, name: &str, target: &dyn Node) -> Result<()> {
        let _ = (name, target);
        Err(Errno::EPERM)
    }

    /// Removes the non-directory entry `name` (`EISDIR` for a directory). The node's data
    /// lives on while it is open. Default: `EPERM`.
    fn unlink(&self, name: &str) -> Result<()> {
        let _ = name;
        Err(Errno::EPERM)
    }

    /// Removes the empty directory `name` (`ENOTDIR` if it is not one, `ENOTEMPTY` if it has
    /// entries). Default: `EPERM`.
    fn rmdir(&self, name: &str) -> Result<()> {
        let _ = name;
        Err(Errno::EPERM)
    }

    /// Moves entry `old_name` of this directory to `new_name` in `new_dir` (a directory of the
    /// same file system, else `EXDEV`), replacing what is there. The VFS has checked that the
    /// source and a replaced target have compatible types, that they are different nodes, and
    /// that a directory does not move into its own subtree; the file system reports
    /// `ENOTEMPTY` for a non-empty replaced directory. Default: `EPERM`.
    fn rename(&self, old_name: &str, new_dir: &dyn Node, new_name: &str) -> Result<()> {
        let _ = (old_name, new_dir, new_name);
        Err(Errno::EPERM)
    }

    /// [`Node::rename`] that fails with `EEXIST` when `new_name` exists, decided in the same
    /// step as the move (`renameat2` with `RENAME_NOREPLACE`). Default: `EINVAL`, what Linux
    /// answers for a file system without the flag.
    fn rename_noreplace(&self, old_name: &str, new_dir: &dyn Node, new_name: &str) -> Result<()> {
        let _ = (old_name, new_dir, new_name);
        Err(Errno::EINVAL)
    }

    /// Swaps entry `old_name` of this directory and entry `new_name` of `new_dir` (a directory
    /// of the same file system, else `EXDEV`) in one step (`renameat2` with
    /// `RENAME_EXCHANGE`): each name then leads to the other's node; a directory that changes
    /// parent gets its new `..`. Both exist (`ENOENT`), may be of different types, and are
    /// different nodes; the VFS has checked that neither directory moves into its own
    /// subtree. Default: `EINVAL`, what Linux answers for a file system without the flag.
    fn rename_exchange(&self, old_name: &str, new_dir: &dyn Node, new_name: &str) -> Result<()> {
        let _ = (old_name, new_dir, new_name);
        Err(Errno::EINVAL)
    }

    /// The first entry at or after `cookie` (0 starts the listing), or `None` at the end. `.`
    /// and `..` are not listed (the VFS lists them itself, see [`crate::OpenFile`]); every
    /// `next_cookie` is above 0 and below [`crate::COOKIE_AFTER_DOTDOT`] (the VFS
    /// reserves the top two values). Default: `ENOTDIR`.
    fn read_dir(&self, cookie: u64) -> Result<Option<DirEntry>> {
        let _ = cookie;
        Err(Errno::ENOTDIR)
    }

    /// Changes permission bits, owner, group and times as `attr` says (`chmod`, `chown`,
    /// `utimensat`); the change time becomes now even when nothing else changes. The VFS has
    /// checked the caller's right to make the change. Default: `EPERM`.
    fn set_attr(&self, attr: &SetAttr) -> Result<()> {
        let _ = attr;
        Err(Errno::EPERM)
    }

    /// Reserves storage for `len` bytes at `offset` (`fallocate` mode 0, or with `keep_size`
    /// `FALLOC_FL_KEEP_SIZE`): later writes there do not fail with `ENOSPC`, and without
    /// `keep_size` the file grows to `offset + len` if it is shorter. Default: `EOPNOTSUPP`.
    fn allocate(&self, offset: u64, len: u64, keep_size: bool) -> Result<()> {
        let _ = (offset, len, keep_size);
        Err(Errno::EOPNOTSUPP)
    }

    /// Frees the storage of `len` bytes at `offset`, which then read as zeros; the size stays
    /// (`FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`). Default: `EOPNOTSUPP`.
    fn punch_hole(&self, offset: u64, len: u64) -> Result<()> {
        let _ = (offset, len);
        Err(Errno::EOPNOTSUPP)
    }

    /// The value of extended attribute `name` (the whole name, `user.x`), or `ENODATA`. The
    /// VFS has checked the name and the caller's right to read it ([`crate::xattr`]).
    /// Default: `EOPNOTSUPP` (the file system stores no attributes).
    fn get_xattr(&self, name: &str) -> Result<Vec<u8>> {
        let _ = name;
        Err(Errno::EOPNOTSUPP)
    }

    /// Sets extended attribute `name` to `value` as `how` says (`EEXIST`, `ENODATA`), or
    /// `ENOSPC` when the file system has no room for it; the change time becomes now. The VFS
    /// has checked the name, the size and the caller's right. Default: `EOPNOTSUPP`.
    fn set_xattr(&self, name: &str, value: &[u8], how: XattrSet) -> Result<()> {
        let _ = (name, value, how);
        Err(Errno::EOPNOTSUPP)
    }

    /// Removes extended attribute `name` (`ENODATA` if there is none); the change time
    /// becomes now. Default: `EOPNOTSUPP`.
    fn remove_xattr(&self, name: &str) -> Result<()> {
        let _ = name;
        Err(Errno::EOPNOTSUPP)
    }

    /// The names of the node's extended attributes. Default: none.
    fn list_xattr(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Maps `len` bytes of this regular file from `offset` (both multiples of 4096) straight
    /// into memory, for a program's `mmap(MAP_SHARED)`: writable (stores reach the file) when
    /// `writable`. `None` when the file system cannot (no window, no room in it, the server
    /// refused): the caller then maps a copy, as it does for every other file system. Default:
    /// `None`.
    fn map_direct(&self, offset: u64, len: u64, writable: bool) -> Option<Box<dyn DirectMapping>> {
        let _ = (offset, len, writable);
        None
    }
}
