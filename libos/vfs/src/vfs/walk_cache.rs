//! The walk cache: where the directory part of the last absolute path a [`Vfs`] walked led,
//! so that the next path in the same directory skips that walk. Programs mostly name many
//! files of a few directories in a row (`stat` of every file of a directory, a build opening
//! its sources, `/bench/file-N` in the file-system benchmark); the walk to the directory is
//! then the same each time: on `stat("/bench/file-42")` with ext2 mounted on `/bench`, the
//! lookup of `bench` in the root, the crossing into the mount and the walk's own bookkeeping
//! cost about 300 of 1970 guest instructions (measured).
//!
//! Like Linux's dcache, the cache trusts only what cannot change behind the VFS's back. An
//! entry is kept only for a walk that
//! - passed only mounts of file systems whose names and attributes change only through the
//!   VFS ([`FileSystem::local_names`]: ramfs, ext2; not virtio-fs, whose host may rename
//!   anything, nor the synthetic `/proc` and `/dev`),
//! - followed no symlink and had no `..` (so the mounts it passed are exactly the chain from
//!   where it ended up to the root),
//! - ended at a directory (so it passed directories only),
//!
//! and it is valid while a count of changes to names ([`names_changed`]) is unchanged. The
//! VFS counts, where it calls the file systems, every change that could make such a walk end
//! elsewhere or be refused: removing a directory, every rename, a directory's new mode or
//! owner (they decide who may search it), mounts, unmounts and new credentials. Creating a
//! name does not count (it cannot change where a walk that succeeded ends), nor does removing
//! a file (a cached walk passed directories only, and a name that was a file cannot have been
//! one of them). A walker reads the count before it walks, so a change that races with the
//! walk leaves the entry stored under the old count, never used.
//!
//! The entry holds its directory weakly: a directory removed meanwhile is freed at once (ext2
//! frees an unlinked directory's inode when its last reference goes), and an unmounted file
//! system is not kept alive.
//!
//! [`Vfs`]: super::Vfs
//! [`FileSystem::local_names`]: crate::FileSystem::local_names

use super::{Loc, Mount};
use crate::node::Node;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use core::sync::atomic::{AtomicU64, Ordering};
use libos_core::sync::SpinLock;

/// Changes to names and permissions so far, in every namespace (see the module docs).
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Counts a change that may make a cached walk end elsewhere or be refused (see the module
/// docs); called after the change. Every [`crate::Vfs`]'s walk cache forgets what it knew.
pub(crate) fn names_changed() {
    GENERATION.fetch_add(1, Ordering::Release);
}

/// The current count of [`names_changed`].
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// The directory part of an absolute path (`/a/b/` of `/a/b/c`) and where it led, as of a
/// [`generation`].
struct Entry {
    generation: u64,
    dirs: String,
    mount: Weak<Mount>,
    node: Weak<dyn Node>,
}

/// One namespace's walk cache: the last walk it may trust (see the module docs).
#[derive(Default)]
pub(crate) struct WalkCache {
    last: SpinLock<Option<Entry>>,
}

impl WalkCache {
    /// Where walking `dirs` from the root led, if it was cached as of `generation` (and the
    /// directory still exists).
    pub fn get(&self, dirs: &str, generation: u64) -> Option<Loc> {
        match &*self.last.lock() {
            Some(entry) if entry.generation == generation && entry.dirs == dirs => {
                Some(Loc { mount: entry.mount.upgrade()?, node: entry.node.upgrade()? })
            }
            _ => None,
        }
    }

    /// Remembers that walking `dirs` from the root led to `loc`, when the count was
    /// `generation` before the walk began, if such a walk may be trusted later.
    pub fn put(&self, dirs: &str, generation: u64, loc: &Loc) {
        if !trustworthy(dirs, loc) {
            return;
        }
        let (mount, node) = (Arc::downgrade(&loc.mount), Arc::downgrade(&loc.node));
        let mut last = self.last.lock();
        match &mut *last {
            // Reuses the string's memory: a program going from directory to directory would
            // otherwise allocate on every new one.
            Some(entry) => {
                entry.generation = generation;
                // The same directory again after a change (a loop of renames in it): no copy.
                if entry.dirs != dirs {
                    entry.dirs.clear();
                    entry.dirs.push_str(dirs);
                }
                entry.mount = mount;
                entry.node = node;
            }
            None => *last = Some(Entry { generation, dirs: String::from(dirs), mount, node }),
        }
    }

    /// Forgets the entry.
    pub fn clear(&self) {
        self.last.lock().take();
    }
}

/// Whether a walk of `dirs` from the root that followed no symlink and ended at `loc` may be
/// trusted while nothing counts in [`names_changed`] (see the module docs). Cheapest test
/// first: a walk through a share fails it at the first field.
fn trustworthy(dirs: &str, loc: &Loc) -> bool {
    let mut mount = &loc.mount;
    loop {
        if !mount.local_names {
            return false;
        }
        match &mount.parent {
            Some(covered) => mount = &covered.mount,
            None => break,
        }
    }
    // Any `..` at all, even inside a name (`a..b`): a byte scan, as `split` costs about 35
    // instructions per component (measured), and such names are rare enough to go uncached.
    !dirs.as_bytes().windows(2).any(|pair| pair == b"..") && loc.is_dir()
}
