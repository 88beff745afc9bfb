//! # libos-fs-virtiofs: virtio-fs (FUSE over virtio)
//!
//! The crate has two halves that meet at one small trait, [`channel::FuseChannel`]:
//!
//! - the **FUSE protocol** ([`protocol`]: message layouts, `FUSE_INIT` negotiation, reply
//!   verification, directory-entry parsing) and the **file system** on top of it ([`fs`]:
//!   [`VirtioFs`], implementing the `libos_vfs` traits): pure code, no `unsafe`, host-tested
//!   against an in-memory fake FUSE server (`testing::FakeServer`, feature `testing`);
//! - the **virtio device** ([`device`]: [`device::VirtioFsDevice`], on the transports and
//!   virtqueues of `libos-virtio`) that carries FUSE requests over virtqueues (the only module
//!   here allowed to use `unsafe`).
//!
//! Users: `libos` (feature `fs-virtiofs`: `root=virtiofs:TAG`, `mount=virtiofs:TAG:/PATH`).
//!
//! ## Mounting
//!
//! ```ignore
//! let fs = VirtioFs::mount(channel, MountOptions::default())?; // FUSE_INIT + GETATTR of the root
//! vfs.mount("/mnt", fs.clone())?;
//! let stats = fs.stats(); // requests per opcode, bytes, forgets
//! ```
//!
//! ## Protocol
//!
//! FUSE 7.38 (servers from 7.31 on are accepted). `FUSE_INIT` offers `BIG_WRITES`,
//! `MAX_PAGES`, `PARALLEL_DIROPS`, `DONT_MASK` and `MAP_ALIGNMENT` (see
//! [`protocol::INIT_FLAGS`] for why not more); READ and WRITE carry up to 1 MiB each, capped
//! by the server's `max_write`/`max_pages` and by [`FuseChannel::max_transfer`]. Every request
//! gets a unique id from an atomic counter; every reply is checked (length at least a header,
//! no more than the buffers, equal to `out.len`; matching `unique`; an error reply has no
//! payload; a fixed-size reply has exactly its size; READDIR records are well-formed) and any
//! violation is `EIO`, logged with the opcode. Errno numbers libos does not know become `EIO`.
//!
//! ## Caching
//!
//! - **Entries** (name -> node) are cached per directory until the host's `entry_valid`;
//!   **attributes** until `attr_valid` (`--cache=auto`: 1 s; `--cache=always`: a day;
//!   `--cache=never`: 0, where attributes that just arrived still serve the path walk that
//!   fetched them, for [`fs::MIN_VALIDITY_NS`]). So a warm `stat` sends nothing while the
//!   timeouts hold, and a cold one exactly one LOOKUP per uncached path component.
//! - Changes made through this mount update or drop the cached entries and attributes they
//!   affect. Changes made on the host are seen when the timeouts expire.
//! - No data is cached: every read and write goes to the host, straight between the caller's
//!   buffer and the channel (the buffer is its own part of the request or reply).
//! - A READDIR page is kept per directory and served while the asked cookie is in it; changes
//!   through this mount drop it.
//!
//! ## Lookup counts and FORGET
//!
//! Each FUSE nodeid is one [`fs::FuseNode`] object while anything holds it (the dentry cache,
//! open files, a current directory, a child directory). It counts the lookup references the
//! host gave for it; when it is dropped the count is queued and sent with `FUSE_BATCH_FORGET`
//! on the high-priority queue (per [`fs::MountOptions::forget_batch`], on `sync`, and at
//! unmount), so the host does not leak inodes.
//!
//! ## Device failure
//!
//! A reply that does not come within the device's timeout resets the device (its callers get
//! `EIO` once the reset shows). The next operation that starts at the root brings the device
//! back and starts a new FUSE session (`fs::recovery`); nodes and open files of the old
//! session give `ESTALE` and never reach the new server, where their nodeids name other
//! files. The host test `recovery_tests` runs the real device over the fake transport and the
//! fake server through such a failure.
//!
//! ## DAX window
//!
//! Where the device has a window (shared-memory region 0) and the server maps files, reads of
//! mapped chunks are copies from the window, and a program's `mmap(MAP_SHARED)` of a file is
//! the window's own pages (`fs::dax`). Request buffers a program passes from inside such a
//! mapping travel through bounce copies (`bounce`): the daemon cannot reach the window.
//!
//! ## Conformance
//!
//! The whole VFS conformance suite (every case and the randomized model test) passes over the
//! fake server on the host (with 1 s timeouts, with `--cache=never`'s zero timeouts, and with
//! small transfers) and over virtiofsd 1.14 in QEMU on both architectures. Two Linux behaviours
//! the VFS contract differs from are translated: a removed, still open directory lists nothing
//! (Linux's `getdents`, so virtiofsd, answers `ENOENT`), and appends are WRITEs flagged
//! `O_APPEND` (virtiofsd drops `O_APPEND` at open and appends per write).
//!
//! ## Not supported
//!
//! - Locks, `FUSE_INTERRUPT`, `O_TMPFILE` (virtiofsd 1.14 answers FUSE_TMPFILE with
//!   `ENOSYS`). (Extended attributes are the host's: GETXATTR, SETXATTR, LISTXATTR,
//!   REMOVEXATTR, `EOPNOTSUPP` from a server without them;
//!   `RENAME_EXCHANGE` is RENAME2, see [`FuseNode::rename_with_flags`].)
//! - At most [`MountOptions::dentry_capacity`] dentries (default 4096) stay cached; each holds
//!   its node, so the host keeps that many inodes (and, for files written or read through this
//!   mount, an open file) for us. Beyond that the oldest-expired are evicted and forgotten.
//! - READDIRPLUS (see [`protocol::INIT_FLAGS`]).
//! - Inode numbers are the host's `st_ino`: a share spanning several host file systems may
//!   show two files with the same number.
//! - Names that are not UTF-8 are skipped when listing a directory; such symlink targets read
//!   as `EIO`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod bounce;
pub mod channel;
pub mod device;
pub mod fs;
pub mod protocol;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod dax_tests;
#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
mod tests;

pub use channel::{DaxWindow, FuseChannel};
pub use fs::{FuseNode, FuseStats, MountOptions, VirtioFs};
