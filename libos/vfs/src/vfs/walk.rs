//! Path resolution: how a path becomes a [`Loc`]: where it starts, one step per component
//! (permission to search, `.` and `..` across mount points, the mount on top of a covered
//! directory), symlinks followed within the budget (magic links straight to their target),
//! and the walk cache for absolute paths' directories.

use super::{Loc, Vfs, summary_bit, walk_cache};
use crate::node::{LinkTarget, Node};
use crate::path::{self, Last, Parsed};
use crate::types::MAX_SYMLINKS;
use crate::vfs::PathAt;
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use libos_core::{Errno, Result};

/// Where a walk ended, and the directory node of its last step (`None` for a path that ends
/// where it starts, or at a magic link's target outside the namespace).
pub(super) type Found = (Loc, Option<Arc<dyn Node>>);

impl Vfs {
    /// Calls `f` with where `path` starts: the root for an absolute path (without taking the
    /// current directory's lock and references), else its directory or the current directory.
    pub(super) fn with_start<T>(&self, path: PathAt<'_>, f: impl FnOnce(&Loc) -> Result<T>) -> Result<T> {
        if path.path.starts_with('/') {
            return f(&self.root_loc);
        }
        match path.dir {
            Some(dir) => f(&dir.start()?),
            None => f(&self.cwd()),
        }
    }

    /// The mount on top of `loc`, if it is covered (repeatedly, for stacked mounts).
    pub(super) fn cross(&self, mut loc: Loc) -> Loc {
        let summary = self.covered_summary.load(Ordering::Acquire);
        let covered = |loc: &Loc| summary & summary_bit(loc.mount.id, loc.node.ino()) != 0 && loc.is_dir();
        if !covered(&loc) {
            return loc;
        }
        let mounts = self.mounts.lock();
        // A mount's root is rarely covered in turn: its summary bit says so without a lookup.
        while let Some(top) = mounts.covers.get(&(loc.mount.id, loc.node.ino())) {
            loc = Loc { mount: top.clone(), node: top.root.clone() };
            if !covered(&loc) {
                break;
            }
        }
        loc
    }

    /// One step from directory `dir` to `name` (which may be `.` or `..`), without following a
    /// symlink at the end.
    pub(super) fn step(&self, dir: &Loc, name: &str) -> Result<Loc> {
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        self.creds.check_search(&*dir.node)?;
        self.step_unchecked(dir, name)
    }

    /// [`Vfs::step`] without the search-permission check.
    pub(super) fn step_unchecked(&self, dir: &Loc, name: &str) -> Result<Loc> {
        match name {
            "." => Ok(dir.clone()),
            ".." => {
                let mut cur = dir.clone();
                while cur.is_mount_root() {
                    match &cur.mount.parent {
                        Some(covered) => cur = covered.clone(),
                        None => return Ok(cur),
                    }
                }
                let parent = cur.node.lookup("..")?;
                Ok(self.cross(Loc { mount: cur.mount, node: parent }))
            }
            _ => {
                let node = dir.node.lookup(name)?;
                Ok(self.cross(Loc { mount: dir.mount.clone(), node }))
            }
        }
    }

    /// Follows symlink `link` found in directory `dir`.
    pub(super) fn follow(&self, dir: &Loc, link: &Loc, budget: &mut u32) -> Result<Loc> {
        self.follow_found(dir, link, budget).map(|(loc, _)| loc)
    }

    /// [`Vfs::follow`], also giving the directory the target was found in (see
    /// [`Vfs::find_from`]). A magic link ([`Node::follow_magic`]) leads straight to its
    /// target, without a walk.
    pub(super) fn follow_found(&self, dir: &Loc, link: &Loc, budget: &mut u32) -> Result<Found> {
        if *budget == 0 {
            return Err(Errno::ELOOP);
        }
        *budget -= 1;
        if let Some(target) = link.node.follow_magic() {
            return Ok(match target? {
                LinkTarget::File(file) => (file.loc, file.parent),
                LinkTarget::Node(node) => (Loc { mount: link.mount.clone(), node }, None),
            });
        }
        let target = link.node.read_link()?;
        self.find_from(dir, &target, true, budget)
    }

    /// Walks `components` from `base`, following every symlink.
    pub(super) fn walk<'p>(&self, base: Loc, components: impl Iterator<Item = &'p str>, budget: &mut u32) -> Result<Loc> {
        let mut cur = base;
        for name in components {
            let mut next = self.step(&cur, name)?;
            if next.is_symlink() {
                next = self.follow(&cur, &next, budget)?;
            }
            cur = next;
        }
        Ok(cur)
    }

    /// Walks the directories of `parsed` (all components but the last) from `base`: the walk
    /// of an absolute path through the [`walk_cache`].
    pub(super) fn walk_dirs(&self, base: Loc, parsed: &Parsed<'_>, budget: &mut u32) -> Result<Loc> {
        let dirs = parsed.dirs_text();
        // `/x` has nothing to walk; a relative path starts somewhere the cache does not know.
        if !parsed.absolute || dirs.len() <= 1 {
            return self.walk(base, parsed.dirs(), budget);
        }
        // Read before the walk: a change racing with it leaves the entry stale and unused.
        let generation = walk_cache::generation();
        if let Some(loc) = self.walk_cache.get(dirs, generation) {
            return Ok(loc);
        }
        let symlinks_left = *budget;
        let loc = self.walk(base, parsed.dirs(), budget)?;
        if *budget == symlinks_left {
            self.walk_cache.put(dirs, generation, &loc);
        }
        Ok(loc)
    }

    pub(super) fn base(&self, start: &Loc, parsed: &Parsed<'_>) -> Loc {
        if parsed.absolute { self.root_loc() } else { start.clone() }
    }

    pub(super) fn resolve_from(&self, start: &Loc, path: &str, follow_last: bool, budget: &mut u32) -> Result<Loc> {
        self.find_from(start, path, follow_last, budget).map(|(loc, _)| loc)
    }

    /// [`Vfs::resolve_from`], also giving the directory node the last step was taken in
    /// (what an [`OpenFile`] keeps to find its name again; `None` for a path that ends where
    /// it starts).
    pub(super) fn find_from(&self, start: &Loc, path: &str, follow_last: bool, budget: &mut u32) -> Result<Found> {
        let parsed = path::parse(path)?;
        let base = self.base(start, &parsed);
        let Some(last) = parsed.last_name() else {
            return Ok((base, None));
        };
        let parent = self.walk_dirs(base, &parsed, budget)?;
        let mut found = (self.step(&parent, last)?, None);
        if found.0.is_symlink() && (follow_last || parsed.trailing_slash) {
            found = self.follow_found(&parent, &found.0, budget)?;
        } else {
            found.1 = Some(parent.node);
        }
        if parsed.trailing_slash && !found.0.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(found)
    }

    pub(super) fn resolve(&self, path: PathAt<'_>, follow_last: bool) -> Result<Loc> {
        self.with_start(path, |start| self.resolve_from(start, path.path, follow_last, &mut MAX_SYMLINKS.clone()))
    }

    /// The directory that holds the last component of `path`, and that component.
    pub(super) fn resolve_parent<'p>(&self, path: PathAt<'p>) -> Result<(Loc, Last<'p>, bool)> {
        self.with_start(path, |start| self.resolve_parent_from(start, path.path, &mut MAX_SYMLINKS.clone()))
    }

    pub(super) fn resolve_parent_from<'p>(&self, start: &Loc, path: &'p str, budget: &mut u32) -> Result<(Loc, Last<'p>, bool)> {
        let parsed = path::parse(path)?;
        let base = self.base(start, &parsed);
        let parent = self.walk_dirs(base, &parsed, budget)?;
        if !parent.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok((parent, parsed.last(), parsed.trailing_slash))
    }

    /// Looks `name` up in `dir`: `Ok(None)` if it does not exist.
    pub(super) fn probe(&self, dir: &Loc, name: &str) -> Result<Option<Loc>> {
        match self.step(dir, name) {
            Ok(loc) => Ok(Some(loc)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
