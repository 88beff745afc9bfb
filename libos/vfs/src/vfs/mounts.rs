//! Mounting and unmounting file systems on directories of a namespace, and listing them.

use super::{Mount, Vfs, walk_cache};
use crate::node::FileSystem;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use libos_core::{Errno, Result};

/// The bit of a `(mount id, inode)` key in [`Vfs::covered_summary`]: the top 6 bits of a
/// multiplicative hash (Fibonacci hashing), so nearby inode numbers spread over all 64 bits.
pub(super) fn summary_bit(mount: u64, ino: u64) -> u64 {
    let hash = (ino ^ mount.rotate_right(17)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    1 << (hash >> 58)
}

#[cfg(test)]
#[test]
fn summary_bits_spread_over_neighbouring_inodes() {
    let bits: alloc::collections::BTreeSet<u64> = (1..=16).map(|ino| summary_bit(1, ino)).collect();
    assert!(bits.len() >= 10, "16 neighbouring inodes share too few bits: {}", bits.len());
}

/// A mount, as [`Vfs::mounts`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountInfo {
    /// The mount's id (also [`Metadata::dev`](crate::Metadata::dev) of its files).
    pub id: u64,
    /// The path it was mounted at.
    pub path: String,
    /// The file system's name.
    pub fs_name: String,
}

impl Vfs {
    /// Mounts `fs` on the directory `path` (on top of whatever is mounted there already).
    pub fn mount(&self, path: &str, fs: Arc<dyn FileSystem>) -> Result<()> {
        let loc = self.resolve(path.into(), true)?;
        if !loc.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let root = fs.root();
        if !root.file_type().is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let mut mounts = self.mounts.lock();
        let key = (loc.mount.id, loc.node.ino());
        if mounts.covers.contains_key(&key) {
            return Err(Errno::EBUSY);
        }
        let id = mounts.next_id;
        mounts.next_id += 1;
        let local_names = fs.local_names();
        let mount = Arc::new(Mount { id, root_ino: root.ino(), root, fs, parent: Some(loc), path: String::from(path), local_names });
        mounts.covers.insert(key, mount);
        self.covered_summary.fetch_or(summary_bit(key.0, key.1), Ordering::Release);
        walk_cache::names_changed();
        Ok(())
    }

    /// Unmounts the file system whose root `path` names. `EINVAL` if `path` is not a mount's
    /// root, `EBUSY` for the root file system or a mount with mounts inside it. Open files of
    /// the unmounted file system keep working.
    pub fn unmount(&self, path: &str) -> Result<()> {
        let loc = self.resolve(path.into(), true)?;
        if !loc.is_mount_root() {
            return Err(Errno::EINVAL);
        }
        let Some(covered) = &loc.mount.parent else {
            return Err(Errno::EBUSY);
        };
        let mut mounts = self.mounts.lock();
        if mounts.covers.keys().any(|&(id, _)| id == loc.mount.id) {
            return Err(Errno::EBUSY);
        }
        mounts.covers.remove(&(covered.mount.id, covered.node.ino()));
        let summary = mounts.covers.keys().fold(0, |bits, &(id, ino)| bits | summary_bit(id, ino));
        self.covered_summary.store(summary, Ordering::Release);
        drop(mounts);
        walk_cache::names_changed();
        self.walk_cache.clear();
        Ok(())
    }

    /// The mounts, root first, then in mount order.
    pub fn mounts(&self) -> Vec<MountInfo> {
        let info = |m: &Mount| MountInfo { id: m.id, path: m.path.clone(), fs_name: String::from(m.fs.name()) };
        let mut list: Vec<MountInfo> = self.mounts.lock().covers.values().map(|m| info(m)).collect();
        list.sort_by_key(|m| m.id);
        list.insert(0, info(&self.root));
        list
    }
}
