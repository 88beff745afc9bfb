//! # libos-vfs: the virtual file system of libos
//!
//! This crate turns file systems into one namespace with POSIX semantics:
//!
//! - [`FileSystem`] and [`Node`]: the object-safe traits a file system implements. Only what
//!   every node has is required; every other operation defaults to the errno Linux returns when
//!   a file system lacks it.
//! - [`Vfs`]: a namespace. It owns the mount table (mount and unmount at any directory, stacked
//!   and nested mounts), walks paths from its current directory (`.`, `..` — which stays at
//!   `/` above the root — symlinks, relative and absolute, with `ELOOP` after
//!   [`MAX_SYMLINKS`], trailing slashes, `ENAMETOOLONG`, `EINVAL` for NUL bytes, `ENOENT` for
//!   empty paths) and does the namespace operations with their generic checks (`open` flags,
//!   `rename` rules, `EXDEV` across mounts, `EBUSY` for mount points).
//! - [`OpenFile`]: an open file or directory with its offset and flags (`O_APPEND`, access
//!   modes giving `EBADF`, `readdir` with stable cookies).
//! - [`devfs`]: `/dev/null`, `/dev/zero`, `/dev/full`, `/dev/console`, `/dev/urandom`.
//! - [`cpio`]: initial files, unpacked from a `newc` cpio archive at boot.
//! - [`conformance`] (feature `testing`): named test cases and a randomized model test that any
//!   file system runs, on the host with `cargo test` and in a guest with the `vfs-conformance`
//!   app.
//!
//! Users: `libos` (the global namespace behind `libos::fs`), file systems (`libos-fs-ramfs`,
//! later virtio-fs), the C shim.
//!
//! ## What it does not do (yet)
//!
//! - Permissions are Linux's: every node has an owner, a group and mode bits, and the VFS
//!   checks each path component and operation against the [`Credentials`] of the namespace
//!   (set by the C shim's `set*id` calls; an image starts as root with every capability,
//!   which takes a single flag test per check). See [`cred`].
//! - `mknod` makes FIFOs, socket names and device nodes; a device node outside devfs opens
//!   the devfs device with the same number. The FIFO rendezvous itself (readers meeting
//!   writers) belongs to the C shim, which owns pipes.
//! - Extended attributes: the VFS checks names and rights as Linux does ([`xattr`]); each
//!   file system stores them (or answers `EOPNOTSUPP`, the trait's default).
//! - `O_TMPFILE` ([`OpenFlags::TMPFILE`]) where the file system makes unnamed files
//!   ([`Node::create_unnamed`]: ramfs, ext2); no file locks in the VFS (the C shim keeps
//!   them).
//! - `readdir` on an [`OpenFile`] lists `.` and `..` first (the VFS adds them, so file systems
//!   never do); [`Vfs::read_dir`] and `libos::fs::read_dir` leave them out, as `std` does.
//! - One namespace: [`Vfs`] carries a single current directory; per-process state belongs to
//!   the C shim.
//! - Bind mounts ([`Vfs::bind`], recursive or not) of directories; file bind mounts are not
//!   offered (`ENOTDIR`).
//! - A file a program runs from refuses writers (`ETXTBSY`) while its [`TextBusy`] lives
//!   ([`Vfs::open_executable`], which the C shim's loader opens programs with), and a file open for writing
//!   cannot be marked so.
//!
//! ## How to write a file system
//!
//! Implement [`FileSystem`] (its name and root node) and [`Node`] for your nodes. The VFS has
//! already validated names and checked types before it calls you, so a node only does what its
//! storage must. Here is a complete (if tiny) read-only file system: one directory holding
//! fixed files. Everything it does not implement fails with the default errno (`EPERM` for
//! creating, `EINVAL` for writing, ...).
//!
//! ```
//! use libos_vfs::*;
//! use libos_core::{Errno, Result};
//! use std::{any::Any, sync::{Arc, Weak}};
//!
//! struct Fixed { files: Vec<(&'static str, &'static [u8])>, me: Weak<Fixed> }
//! struct FixedFile { ino: u64, data: &'static [u8] }
//!
//! impl FileSystem for Fixed {
//!     fn name(&self) -> &str { "fixed" }
//!     fn root(&self) -> Arc<dyn Node> { self.me.upgrade().unwrap() }
//! }
//!
//! impl Node for Fixed {
//!     fn ino(&self) -> u64 { 1 }
//!     fn file_type(&self) -> FileType { FileType::Directory }
//!     fn as_any(&self) -> &dyn Any { self }
//!     fn metadata(&self) -> Result<Metadata> { Ok(meta(1, FileType::Directory, 0)) }
//!     fn lookup(&self, name: &str) -> Result<Arc<dyn Node>> {
//!         if name == ".." { return Ok(self.root_node()); }
//!         let i = self.files.iter().position(|f| f.0 == name).ok_or(Errno::ENOENT)?;
//!         Ok(Arc::new(FixedFile { ino: i as u64 + 2, data: self.files[i].1 }))
//!     }
//!     fn read_dir(&self, cookie: u64) -> Result<Option<DirEntry>> {
//!         Ok(self.files.get(cookie as usize).map(|(name, _)| DirEntry {
//!             name: name.to_string(), ino: cookie + 2, file_type: FileType::Regular,
//!             next_cookie: cookie + 1,
//!         }))
//!     }
//! }
//!
//! impl Fixed {
//!     fn root_node(&self) -> Arc<dyn Node> { self.me.upgrade().unwrap() }
//! }
//!
//! impl Node for FixedFile {
//!     fn ino(&self) -> u64 { self.ino }
//!     fn file_type(&self) -> FileType { FileType::Regular }
//!     fn as_any(&self) -> &dyn Any { self }
//!     fn metadata(&self) -> Result<Metadata> {
//!         Ok(meta(self.ino, FileType::Regular, self.data.len() as u64))
//!     }
//!     fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
//!         let rest = self.data.get(offset as usize..).unwrap_or(&[]);
//!         let n = rest.len().min(buf.len());
//!         buf[..n].copy_from_slice(&rest[..n]);
//!         Ok(n)
//!     }
//! }
//!
//! fn meta(ino: u64, file_type: FileType, size: u64) -> Metadata {
//!     Metadata { dev: 0, ino, file_type, perm: 0o444, uid: 0, gid: 0, nlink: 1, size, blocks: 0,
//!         block_size: 512, rdev: 0, atime: Timestamp(0), mtime: Timestamp(0),
//!         ctime: Timestamp(0) }
//! }
//!
//! let fs = Arc::new_cyclic(|me| Fixed { files: vec![("motd", b"hi\n")], me: me.clone() });
//! let vfs = Vfs::new(fs);
//! let file = vfs.open("/motd", OpenFlags::RDONLY, 0).unwrap();
//! let mut buf = [0; 8];
//! assert_eq!(file.read(&mut buf), Ok(3));
//! assert_eq!(vfs.open("/new", OpenFlags::CREAT, 0o644).unwrap_err(), Errno::EPERM);
//! assert_eq!(vfs.open("/motd/", OpenFlags::RDONLY, 0).unwrap_err(), Errno::ENOTDIR);
//! assert_eq!(vfs.read_dir("/").unwrap()[0].name, "motd");
//! ```
//!
//! A writable file system implements the namespace operations too (`create`, `link`, `unlink`,
//! `rmdir`, `rename`, `read_dir` with stable cookies, `lookup("..")`). The smallest one that
//! passes the **whole** conformance suite is `conformance::TinyFs` (feature `testing`), about
//! 300 lines, shown in full at the end of this page; `libos-fs-ramfs` is the same design made
//! efficient (sparse pages, hashed directories).
//!
//! A file system whose names change only through the VFS (nobody else writes its storage)
//! may say so with [`FileSystem::local_names`]: the VFS then remembers where the directory
//! part of the last absolute path led (the walk cache, about 440 guest instructions of a
//! 2-component `stat` on ext2), as for ramfs and ext2. A shared or synthetic
//! file system keeps the default (no caching).
//!
//! To check a file system, run the conformance suite on it (see [`conformance`]): implement
//! `conformance::FileSystemFactory` (a fresh, empty instance per call) and call
//! `conformance::run_all`, as `TinyFs`'s own test and the `libos-fs-ramfs` tests do; the guest
//! app `apps/vfs-conformance` runs the same cases in QEMU. A read-only file system like the one
//! above runs the subset of its choice with `conformance::run_cases`.
//!
//! ### `TinyFs`, the complete example
//!
#![doc = concat!("```ignore\n", include_str!("conformance/tiny.rs"), "```")]
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod attr;
pub mod cpio;
pub mod cred;
pub mod devfs;
pub mod procfs;
mod file;
mod node;
mod path;
mod text;
mod types;
mod vfs;
pub mod xattr;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;

pub use file::{COOKIE_AFTER_DOT, COOKIE_AFTER_DOTDOT, FileRef, MAX_FILE_SIZE, OpenFile};
pub use cred::{Access, Credentials};
pub use node::{DirectMapping, FileSystem, LinkTarget, NewNode, Node};
pub use types::{
    Clock, DirEntry, FileType, MAX_SYMLINKS, dev_major, dev_minor, makedev, Metadata, MonotonicClock, MountFlags, NAME_MAX, OpenFlags, Owner, PATH_MAX,
    PlatformClock, STATFS_FLAGS_VALID, SeekFrom, SetAttr, StatFs, TickClock, TimeUpdate, Timestamp,
};
pub use text::TextBusy;
pub use vfs::{MountInfo, PathAt, Vfs};
pub use xattr::{XattrMap, XattrSet};
