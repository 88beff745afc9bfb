//! # libos-fs-ext2: the ext2 file system, read-write
//!
//! [`Ext2Fs`] mounts an ext2 volume (revision 0 or 1, as `mke2fs -t ext2` makes it: block
//! sizes 1 to 64 KiB, sparse superblocks, `large_file`, `filetype` directory entries, hashed
//! directories) from any [`libos_block::BlockDevice`] and implements the [`libos_vfs`]
//! traits over it, passing the VFS conformance suite. Everything a program can do is written
//! back in the on-disk format, so the host's `e2fsck -fn` finds the volume clean after any
//! sequence of operations and `debugfs` reads the same files.
//!
//! ```ignore
//! let fs = Ext2Fs::mount(device, MountOptions::default())?;   // Arc<Ext2Fs>
//! vfs.mount("/data", fs)?;
//! ```
//!
//! ## Layout of the crate
//!
//! - `disk`: superblock, group descriptors, features, the validated geometry.
//! - `inode`: the on-disk inode, timestamps (with nanoseconds in large inodes), file types.
//! - `bmap`: the block map (direct, single, double and triple indirect blocks).
//! - `bitmap`: block and inode allocation from the bitmaps with the free counts kept in step.
//! - `dir`: directory blocks (linear on disk; hash-indexed directories read linearly too).
//! - `dir_index`: in-memory indexes of directories (name -> entry, free room per block), so
//!   operations on big directories do not scan them.
//! - `read`: reading file contents, read-ahead, and what a node keeps between reads.
//! - `file`: writing file contents, truncation, symlinks, freeing inodes, fsync.
//! - `namespace`: create, link, unlink, rmdir, rename with ext2's link counts.
//! - `xattr`: extended attributes in an attribute block (read from large inodes' tails too).
//! - `fs` and `node`: [`Ext2Fs`] and [`Ext2Node`], the glue to the VFS.
//! - `node_cache`: the nodes of recently looked-up names, so a hot name's lookup costs a
//!   hash lookup (kept true by every operation that removes or retargets a name).
//!
//! ## Features
//!
//! | kind | supported | otherwise |
//! |---|---|---|
//! | incompat | `filetype` | `EOPNOTSUPP` (extents, 64bit, meta_bg, flex_bg, journal_dev, needs_recovery, inline_data, ...; named in the log) |
//! | ro_compat | `sparse_super`, `large_file` | read-only mounts only (`EROFS` for read-write): metadata_csum, gdt_csum, huge_file, dir_nlink, extra_isize, ... |
//! | compat | all (`dir_index`, `resize_inode`, `ext_attr`, `has_journal` with a clean journal) | — |
//!
//! Writing into a hashed directory clears its index flag (as a kernel without `dir_index`
//! support does), after which it is an ordinary linear directory. The resize inode's reserved
//! blocks are left alone. Extended attributes live in one attribute block per inode, as
//! Linux's ext2 keeps them (a block shared by several inodes is copied before a change; its
//! reference is dropped when its inode is freed); attributes a host left in an inode's tail
//! are read and moved into the block by the first change.
//!
//! ## Storage and durability
//!
//! All I/O goes through a [`libos_block::cache::BufferCache`] (write-back, bounded by
//! [`MountOptions::cache_bytes`]). [`FileSystem::sync`](libos_vfs::FileSystem::sync) writes everything back and flushes the
//! device; `fsync` of a node ([`Node::sync`](libos_vfs::Node::sync)) writes that file's blocks, its inode and the
//! allocation metadata (bitmaps, group descriptors, superblock), then flushes. There is no
//! journal: after a crash, files synced before it are intact, and e2fsck may find what an
//! unjournaled file system leaves (blocks or inodes marked used but unreferenced). The
//! superblock says "not clean" while mounted read-write, and "clean" again once the volume is
//! unmounted (the last reference to the file system and its nodes dropped).
//!
//! Access times are not updated by reads (like `noatime`); uid and gid of new nodes are 0.
//!
//! ## Corrupt volumes
//!
//! Nothing read from disk is trusted: superblock and group descriptors are checked at mount,
//! every block number before use, every directory entry as it is parsed, and arithmetic on
//! disk values is checked. A corrupt volume yields `EUCLEAN` (or `EIO` from the device), never
//! a panic; the host tests flip random bytes in a volume's metadata many times over to keep it
//! so.
//!
//! Users: `libos` (disk mounts), its host tests.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod bitmap;
mod bmap;
mod dir;
mod dir_index;
mod disk;
mod file;
mod fs;
mod inode;
mod namespace;
mod read;
mod xattr;
mod node;
mod node_cache;

#[cfg(test)]
mod tests;

pub use fs::{EXT2_MAGIC, Ext2Fs, MountOptions};
pub use node::Ext2Node;
