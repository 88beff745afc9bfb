//! Mounting and unmounting file systems on directories of a namespace, and listing them.

use super::{Loc, Mount, Vfs, walk_cache};
use crate::node::FileSystem;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use crate::MountFlags;
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
        let local_names = fs.local_names();
        self.cover(&loc, path, |id| Mount { id, dev: id, root_ino: root.ino(), root, fs, parent: None, path: String::new(), local_names, flags: AtomicU32::new(0) })
    }

    /// [`Vfs::mount`] with options.
    pub fn mount_with(&self, path: &str, fs: Arc<dyn FileSystem>, flags: MountFlags) -> Result<()> {
        self.mount(path, fs)?;
        self.remount(path, flags)
    }

    /// The absolute path of the directory `path` names, symlinks and `..` resolved
    /// (`ENOTDIR` for anything else).
    pub fn directory_path(&self, path: &str) -> Result<String> {
        let loc = self.resolve(path.into(), true)?;
        if !loc.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        super::cwd::path_of_dir(loc)
    }

    /// Whether `path` names a mount's root (the namespace's root included).
    pub fn is_mount_point(&self, path: &str) -> Result<bool> {
        Ok(self.resolve(path.into(), true)?.is_mount_root())
    }

    /// Sets the options of the mount whose root `path` names (`mount -o remount`): `EINVAL`
    /// if `path` is not a mount's root. Files already open for writing stay writable (Linux
    /// would refuse a read-only remount while any are: `EBUSY`).
    pub fn remount(&self, path: &str, flags: MountFlags) -> Result<()> {
        let loc = self.resolve(path.into(), true)?;
        if !loc.is_mount_root() {
            return Err(Errno::EINVAL);
        }
        loc.mount.flags.store(flags.bits(), Ordering::Relaxed);
        walk_cache::names_changed();
        Ok(())
    }

    /// A bind mount (`mount --bind SOURCE TARGET`): the directory `source` names appears
    /// again at the directory `target`, the same files (the same [`Metadata::dev`](crate::Metadata::dev)
    /// and inodes) through a mount of its own. With `recursive` (`--rbind`) the mounts below
    /// `source` come along, each bound at the same place below `target`; without it they do
    /// not show through the new mount, as on Linux. `ENOTDIR` unless both are directories.
    pub fn bind(&self, source: &str, target: &str, recursive: bool) -> Result<()> {
        let from = self.resolve(source.into(), true)?;
        let onto = self.resolve(target.into(), true)?;
        if !from.is_dir() || !onto.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        // The mounts below `source`, found before the new one exists (a bind of a directory
        // into its own subtree must not find itself), by their place in the namespace.
        let below: Vec<(String, Arc<Mount>)> = if recursive {
            let base = super::cwd::path_of_dir(from.clone())?;
            let mut list: Vec<Arc<Mount>> = self.mounts.lock().covers.values().cloned().collect();
            list.sort_by_key(|m| m.id);
            list.into_iter().filter_map(|m| Some((String::from(relative_to(&base, &m.path)?), m))).collect()
        } else {
            Vec::new()
        };
        self.cover(&onto, target, |id| Mount {
            id,
            dev: from.mount.dev,
            root_ino: from.node.ino(),
            root: from.node.clone(),
            fs: from.mount.fs.clone(),
            parent: None,
            path: String::new(),
            local_names: from.mount.local_names,
            flags: AtomicU32::new(from.mount.flags.load(Ordering::Relaxed)),
        })?;
        let target_path = super::cwd::path_of_dir(self.resolve(target.into(), true)?)?;
        for (rest, mount) in below {
            let at = alloc::format!("{}/{rest}", target_path.trim_end_matches('/'));
            let place = self.resolve(at.as_str().into(), true)?;
            self.cover(&place, &at, |id| Mount {
                id,
                dev: mount.dev,
                root_ino: mount.root_ino,
                root: mount.root.clone(),
                fs: mount.fs.clone(),
                parent: None,
                path: String::new(),
                local_names: mount.local_names,
                flags: AtomicU32::new(mount.flags.load(Ordering::Relaxed)),
            })?;
        }
        Ok(())
    }

    /// Puts the mount `make` builds (given its new id) on top of the directory `loc`, which
    /// `path` named; `EBUSY` if a mount is already exactly there.
    fn cover(&self, loc: &Loc, path: &str, make: impl FnOnce(u64) -> Mount) -> Result<()> {
        // Listed by where it is in the namespace, whatever relative path named the place
        // (found before the table's spin lock: the walk up asks the file system).
        let path = super::cwd::path_of_dir(loc.clone()).unwrap_or_else(|_| String::from(path));
        let mut mounts = self.mounts.lock();
        let key = (loc.mount.id, loc.node.ino());
        if mounts.covers.contains_key(&key) {
            return Err(Errno::EBUSY);
        }
        let id = mounts.next_id;
        mounts.next_id += 1;
        let mount = Mount { parent: Some(loc.clone()), path, ..make(id) };
        mounts.covers.insert(key, Arc::new(mount));
        self.covered_summary.fetch_or(summary_bit(key.0, key.1), Ordering::Release);
        walk_cache::names_changed();
        Ok(())
    }

    /// Unmounts the file system whose root `path` names. `EINVAL` if `path` is not a mount's
    /// root, `EBUSY` for the root file system or a mount with mounts inside it. Open files of
    /// the unmounted file system keep working.
    pub fn unmount(&self, path: &str) -> Result<()> {
        self.unmount_at(path, true)
    }

    /// [`Vfs::unmount`]; without `follow`, a symlink at the end of `path` is not followed
    /// (`UMOUNT_NOFOLLOW`: it names no mount, so `EINVAL`).
    pub fn unmount_at(&self, path: &str, follow: bool) -> Result<()> {
        let loc = self.resolve(path.into(), follow)?;
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

/// `path` below the directory `base` (both absolute): what follows `base/`, if anything.
fn relative_to<'a>(base: &str, path: &'a str) -> Option<&'a str> {
    let base = base.trim_end_matches('/');
    path.strip_prefix(base)?.strip_prefix('/').filter(|rest| !rest.is_empty())
}
