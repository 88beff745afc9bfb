//! [`Vfs`]: the mount table, the path walk and the namespace operations (`open`, `mkdir`,
//! `rename`, ...), relative to a current directory.
//!
//! A position in the namespace is a [`Loc`]: a mount and a node of its file system. The walk
//! crosses into a mounted file system after every lookup of a covered directory and back out on
//! `..` at a mount's root; `..` at the root of the whole namespace stays there.
//!
//! Who may do what is checked in [`checks`]: the namespace's credentials and Linux's rules for
//! creating, removing and accessing nodes.

mod at;
mod checks;
mod cwd;
mod file_systems;
mod mounts;
mod walk;
mod walk_cache;

pub use at::PathAt;
pub use mounts::MountInfo;
use mounts::summary_bit;
pub(crate) use walk_cache::names_changed;
pub(crate) use cwd::path_of;

use crate::cred::{Access, Cap, CredCell, Credentials};
use crate::file::OpenFile;
use crate::text::{FileKey, TextBusy, WriteCounts};
use crate::node::{FileSystem, NewNode, Node};
use crate::path::{self, Last};
use crate::types::{DirEntry, FileType, MAX_SYMLINKS, Metadata, MountFlags, OpenFlags, TimeUpdate};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use hashbrown::HashMap;
use libos_core::sync::SpinLock;
use libos_core::{Errno, Result};

/// One mounted file system.
pub(crate) struct Mount {
    /// This mount's own id: what tells mounts apart (`EXDEV` across two of them, even two of
    /// one file system, as on Linux).
    pub id: u64,
    /// The file system instance's id ([`Metadata::dev`] of its files): the mount's own id for
    /// a new file system, the source mount's for a bind mount, so `st_dev` names the file
    /// system whichever mount a file is reached through.
    pub dev: u64,
    /// Declared (so dropped) before `fs`: a file system dropping its last reference frees
    /// its tree without recursion only if nothing else holds the root by then (ramfs), and an
    /// open directory can hold the last `Mount` after an unmount.
    pub root: Arc<dyn Node>,
    pub fs: Arc<dyn FileSystem>,
    pub root_ino: u64,
    /// The directory this mount covers; `None` for the root mount.
    pub parent: Option<Loc>,
    /// The path it was mounted at, for listings.
    pub path: String,
    /// [`FileSystem::local_names`] of `fs`: walks through it may be cached.
    pub local_names: bool,
    /// Its [`MountFlags`] bits (`mount -o remount` changes them).
    pub flags: AtomicU32,
}

impl Mount {
    /// Its options now.
    pub fn flags(&self) -> MountFlags {
        MountFlags::from_bits_truncate(self.flags.load(Ordering::Relaxed))
    }

    /// Whether nothing may change through it: mounted read-only, or a read-only file system.
    pub fn read_only(&self) -> bool {
        self.flags().contains(MountFlags::READ_ONLY) || self.fs.read_only()
    }
}

/// A position in the namespace: a node and the mount it was reached through.
#[derive(Clone)]
pub(crate) struct Loc {
    pub mount: Arc<Mount>,
    pub node: Arc<dyn Node>,
}

impl Loc {
    fn is_dir(&self) -> bool {
        self.node.file_type().is_dir()
    }

    fn is_symlink(&self) -> bool {
        self.node.file_type() == FileType::Symlink
    }

    fn is_mount_root(&self) -> bool {
        self.node.ino() == self.mount.root_ino
    }
}

struct MountTable {
    next_id: u64,
    /// `(mount id, inode)` of a covered directory -> the mount on top of it.
    covers: HashMap<(u64, u64), Arc<Mount>>,
}

/// A file-system namespace: a root file system, the file systems mounted on it, and a current
/// directory.
pub struct Vfs {
    root: Arc<Mount>,
    /// The root of the namespace as a [`Loc`] (where absolute paths start).
    root_loc: Loc,
    mounts: SpinLock<MountTable>,
    /// One bit per covered directory ([`summary_bit`](mounts::summary_bit); set under the `mounts` lock, cleared by
    /// rebuilding it on unmount): a clear bit means "not covered" without taking the lock or
    /// hashing, which is the answer for nearly every directory a walk passes.
    covered_summary: AtomicU64,
    cwd: SpinLock<Loc>,
    /// Held across a directory rename's subtree check and the rename itself, so two concurrent
    /// renames cannot together move a directory into its own subtree (Linux's
    /// `s_vfs_rename_mutex`). Taken before any file-system lock.
    dir_rename: SpinLock<()>,
    /// Whose permissions every operation is checked with (shared with the open files).
    creds: Arc<CredCell>,
    /// The last walk to a directory of an absolute path ([`walk_cache`]).
    walk_cache: walk_cache::WalkCache,
    /// Who holds each file open for writing, and which files programs run from (`ETXTBSY`).
    writers: Arc<WriteCounts>,
}

impl Vfs {
    /// A namespace whose root is `root_fs`; the current directory is `/`.
    pub fn new(root_fs: Arc<dyn FileSystem>) -> Vfs {
        let node = root_fs.root();
        let root = Arc::new(Mount {
            id: 1,
            dev: 1,
            root_ino: node.ino(),
            root: node.clone(),
            local_names: root_fs.local_names(),
            fs: root_fs,
            parent: None,
            path: String::from("/"),
            flags: AtomicU32::new(0),
        });
        let cwd = Loc { mount: root.clone(), node };
        Vfs {
            root_loc: cwd.clone(),
            root,
            mounts: SpinLock::new(MountTable { next_id: 2, covers: HashMap::new() }),
            covered_summary: AtomicU64::new(0),
            cwd: SpinLock::new(cwd),
            dir_rename: SpinLock::new(()),
            creds: Arc::new(CredCell::new(Credentials::root())),
            walk_cache: walk_cache::WalkCache::default(),
            writers: Arc::default(),
        }
    }


    fn root_loc(&self) -> Loc {
        self.root_loc.clone()
    }

    fn cwd(&self) -> Loc {
        self.cwd.lock().clone()
    }


    // ---- namespace operations ----

    /// Opens (and with [`OpenFlags::CREAT`] creates, with permission bits `perm`) a file or
    /// directory. With `O_CREAT`, a symlink at the end is followed (unless `O_NOFOLLOW`) and a
    /// dangling one creates its target, as on Linux.
    pub fn open<'p>(&self, path: impl Into<PathAt<'p>>, flags: OpenFlags, perm: u32) -> Result<OpenFile> {
        let path = path.into();
        self.with_start(path, |start| self.open_from(start, path.path, flags, perm, &mut MAX_SYMLINKS.clone()))
    }

    fn open_from(&self, start: &Loc, path: &str, flags: OpenFlags, perm: u32, budget: &mut u32) -> Result<OpenFile> {
        let follow = !flags.contains(OpenFlags::NOFOLLOW);
        if flags.contains(OpenFlags::TMPFILE) {
            return self.open_unnamed(start, path, flags, perm, budget);
        }
        if flags.contains(OpenFlags::PATH) {
            // Only the walk is checked: no access to the node, no creation or truncation, no
            // device behind it; with `NOFOLLOW` a final symlink is the handle's node.
            let (loc, parent) = self.find_from(start, path, follow, budget)?;
            let flags = flags & (OpenFlags::PATH | OpenFlags::DIRECTORY | OpenFlags::NOFOLLOW);
            if flags.contains(OpenFlags::DIRECTORY) && !loc.is_dir() {
                return Err(Errno::ENOTDIR);
            }
            let ino = loc.node.ino();
            return Ok(OpenFile::at(loc, parent, flags, ino, self.creds.clone()));
        }
        if !flags.contains(OpenFlags::CREAT) {
            let (loc, parent) = self.find_from(start, path, follow, budget)?;
            return self.open_loc(loc, parent, flags);
        }
        let (parent, last, trailing_slash) = self.resolve_parent_from(start, path, budget)?;
        let Last::Name(name) = last else {
            return Err(Errno::EISDIR);
        };
        if trailing_slash {
            return Err(Errno::EISDIR);
        }
        match self.probe(&parent, name)? {
            Some(_) if flags.contains(OpenFlags::EXCL) => Err(Errno::EEXIST),
            Some(link) if link.is_symlink() && follow && link.node.follow_magic().is_some() => {
                // `/proc/self/fd/N` (`> /dev/stderr`): the open file, never a new one.
                let (loc, dir) = self.follow_found(&parent, &link, budget)?;
                self.open_loc(loc, dir, flags)
            }
            Some(loc) if loc.is_symlink() && follow => {
                // Open (or create) the target, relative to the link's directory.
                if *budget == 0 {
                    return Err(Errno::ELOOP);
                }
                *budget -= 1;
                let target = loc.node.read_link()?;
                self.open_from(&parent, &target, flags, perm, budget)
            }
            Some(loc) => self.open_loc(loc, Some(parent.node.clone()), flags),
            None => {
                self.may_change_entries(&parent)?;
                let (owner, perm) = self.new_owner(&parent, false, perm)?;
                let node = parent.node.create(name, NewNode::File, perm, owner)?;
                // A file this call created opens with the requested access whatever its
                // permission bits say (`open("f", O_CREAT | O_WRONLY, 0444)` works), as on Linux.
                self.open_node(Loc { mount: parent.mount.clone(), node }, Some(parent.node.clone()), flags - OpenFlags::TRUNC, false)
            }
        }
    }

    /// `O_TMPFILE` (`TMPFILE | DIRECTORY`, without `CREAT`, for writing, else `EINVAL`): a new
    /// unnamed file of the directory `path` names (`ENOTDIR`), which the caller must be able
    /// to add names to (`EACCES`), on a writable file system (`EROFS`); `EXCL` makes it
    /// unlinkable for good.
    fn open_unnamed(&self, start: &Loc, path: &str, flags: OpenFlags, perm: u32, budget: &mut u32) -> Result<OpenFile> {
        if !flags.contains(OpenFlags::DIRECTORY) || flags.contains(OpenFlags::CREAT) || !flags.writable() {
            return Err(Errno::EINVAL);
        }
        let (dir, _) = self.find_from(start, path, !flags.contains(OpenFlags::NOFOLLOW), budget)?;
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        self.check_writable_fs(&dir)?;
        self.creds.check(&*dir.node, Access::WRITE | Access::EXEC)?;
        let (owner, perm) = self.new_owner(&dir, false, perm)?;
        let node = dir.node.create_unnamed(perm, owner, !flags.contains(OpenFlags::EXCL))?;
        let flags = flags - (OpenFlags::TMPFILE | OpenFlags::DIRECTORY | OpenFlags::EXCL | OpenFlags::TRUNC);
        self.open_node(Loc { mount: dir.mount.clone(), node }, Some(dir.node.clone()), flags, false)
    }

    /// Opens an existing node: the access the flags ask for (`O_TRUNC` counts as writing) is
    /// checked against its permission bits.
    fn open_loc(&self, loc: Loc, parent: Option<Arc<dyn Node>>, flags: OpenFlags) -> Result<OpenFile> {
        self.open_node(loc, parent, flags, true)
    }

    /// Opens `loc` with Linux's order of checks: the node's type against the flags
    /// (`ELOOP`, `ENOTDIR`, `EISDIR`), a read-only file system (`EROFS`), then permissions
    /// when `check_access` (not for a file the same `open` just created).
    fn open_node(&self, loc: Loc, parent: Option<Arc<dyn Node>>, flags: OpenFlags, check_access: bool) -> Result<OpenFile> {
        let file_type = loc.node.file_type();
        if file_type == FileType::Symlink {
            return Err(Errno::ELOOP);
        }
        if flags.contains(OpenFlags::DIRECTORY) && !file_type.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let changes_data = flags.writable() || flags.contains(OpenFlags::TRUNC);
        if file_type.is_dir() && changes_data {
            return Err(Errno::EISDIR);
        }
        // Device nodes and FIFOs on a read-only file system may still be opened for writing.
        if changes_data && file_type == FileType::Regular && loc.mount.read_only() {
            return Err(Errno::EROFS);
        }
        if check_access {
            let mut access = if changes_data { Access::WRITE } else { Access::empty() };
            if flags.readable() {
                access |= Access::READ;
            }
            self.creds.check(&*loc.node, access)?;
        }
        if file_type == FileType::Socket {
            return Err(Errno::ENXIO);
        }
        if matches!(file_type, FileType::CharDevice | FileType::BlockDevice) && loc.mount.flags().contains(MountFlags::NO_DEV) {
            return Err(Errno::EACCES);
        }
        // A device node of a disk's file system opens devfs's device (found in devfs's root).
        let (loc, parent) = match file_type {
            FileType::CharDevice | FileType::BlockDevice if !loc.mount.fs.provides_devices() => (self.device_for(&loc)?, None),
            _ => (loc, parent),
        };
        // Writing a running program's file: `ETXTBSY` (a truncation alone holds write access
        // only while it runs).
        let writer = if changes_data && file_type == FileType::Regular { Some(self.writers.writer(file_key(&loc))?) } else { None };
        if flags.contains(OpenFlags::TRUNC) && file_type == FileType::Regular {
            crate::attr::truncate(&self.creds, &*loc.node, 0)?;
        }
        // What `..` lists: the parent across mounts, as the path walk finds it (listing a
        // directory needs no search permission on it, so neither does finding `..`).
        let parent_ino = if file_type.is_dir() { self.step_unchecked(&loc, "..").map_or(loc.node.ino(), |p| p.node.ino()) } else { 0 };
        let file = OpenFile::at(loc, parent, flags, parent_ino, self.creds.clone());
        Ok(match writer {
            Some(writer) if flags.writable() => file.holding(writer),
            _ => file,
        })
    }

    /// The device a device node names: the node of the same type and number at the top of a
    /// mount that provides devices (devfs). `ENXIO` when no such device exists, as Linux
    /// answers for a device number without a driver.
    fn device_for(&self, loc: &Loc) -> Result<Loc> {
        let meta = loc.node.metadata()?;
        let mut providers: Vec<Arc<Mount>> = self.mounts.lock().covers.values().filter(|m| m.fs.provides_devices()).cloned().collect();
        if self.root.fs.provides_devices() {
            providers.push(self.root.clone());
        }
        for mount in providers {
            let mut cookie = 0;
            while let Some(entry) = mount.root.read_dir(cookie)? {
                cookie = entry.next_cookie;
                if entry.file_type != meta.file_type {
                    continue;
                }
                let node = mount.root.lookup(&entry.name)?;
                if node.metadata()?.rdev == meta.rdev {
                    return Ok(Loc { mount, node });
                }
            }
        }
        Err(Errno::ENXIO)
    }

    /// Creates a directory.
    pub fn mkdir<'p>(&self, path: impl Into<PathAt<'p>>, perm: u32) -> Result<()> {
        let path = path.into();
        let (parent, last, _) = self.resolve_parent(path)?;
        match last {
            Last::Name(name) => self.create_in(&parent, name, NewNode::Directory, perm).map(drop),
            _ => Err(Errno::EEXIST),
        }
    }

    /// `mknod`: makes a regular file, FIFO, socket name or device node (`kind` must not be
    /// a directory or symlink: `EINVAL`). Device nodes need `CAP_MKNOD` (`EPERM`).
    pub fn mknod<'p>(&self, path: impl Into<PathAt<'p>>, kind: NewNode<'_>, perm: u32) -> Result<()> {
        let path = path.into();
        if matches!(kind, NewNode::Directory | NewNode::Symlink(_)) {
            return Err(Errno::EINVAL);
        }
        if matches!(kind, NewNode::CharDevice(_) | NewNode::BlockDevice(_)) && !self.creds.get().capable(Cap::Mknod) {
            return Err(Errno::EPERM);
        }
        let (parent, last, trailing_slash) = self.resolve_parent(path)?;
        match last {
            Last::Name(name) if trailing_slash => match self.probe(&parent, name)? {
                Some(_) => Err(Errno::EEXIST),
                None => Err(Errno::ENOENT),
            },
            Last::Name(name) => self.create_in(&parent, name, kind, perm).map(drop),
            _ => Err(Errno::EEXIST),
        }
    }

    /// Creates a symbolic link at `link_path` pointing to `target` (stored as given).
    pub fn symlink<'p>(&self, target: &str, link_path: impl Into<PathAt<'p>>) -> Result<()> {
        path::check_target(target)?;
        let (parent, last, trailing_slash) = self.resolve_parent(link_path.into())?;
        match last {
            Last::Name(_) if trailing_slash => Err(Errno::ENOENT),
            Last::Name(name) => self.create_in(&parent, name, NewNode::Symlink(target), 0o777).map(drop),
            _ => Err(Errno::EEXIST),
        }
    }

    /// Adds the name `new` for the non-directory `old` (a symlink itself, not its target).
    pub fn link<'p, 'q>(&self, old: impl Into<PathAt<'p>>, new: impl Into<PathAt<'q>>) -> Result<()> {
        self.link_to(self.resolve(old.into(), false)?, new.into())
    }

    /// [`Vfs::link`] that follows a final symlink of `old` (`linkat` with
    /// `AT_SYMLINK_FOLLOW`): through `/proc/self/fd/N` it reaches the open file itself, which
    /// gets a name again unless it was removed (`ENOENT`).
    pub fn link_following<'p, 'q>(&self, old: impl Into<PathAt<'p>>, new: impl Into<PathAt<'q>>) -> Result<()> {
        self.link_to(self.resolve(old.into(), true)?, new.into())
    }

    /// A new name `new` for the open file `file` (`linkat` with `AT_EMPTY_PATH` and an empty
    /// path; `O_PATH` handles too): `ENOENT` for a removed file or one outside the namespace,
    /// `EPERM` for a directory.
    pub fn link_open_file<'q>(&self, file: &OpenFile, new: impl Into<PathAt<'q>>) -> Result<()> {
        self.link_to(file.file_ref().ok_or(Errno::ENOENT)?.loc, new.into())
    }

    /// `link` of the node at `source`, found by the caller.
    fn link_to(&self, source: Loc, new: PathAt<'_>) -> Result<()> {
        if source.is_dir() {
            return Err(Errno::EPERM);
        }
        let (parent, last, trailing_slash) = self.resolve_parent(new)?;
        let Last::Name(name) = last else {
            return Err(Errno::EEXIST);
        };
        if trailing_slash {
            return Err(Errno::ENOENT);
        }
        if parent.mount.id != source.mount.id {
            return Err(Errno::EXDEV);
        }
        if self.checks_entry_changes(&parent) {
            if self.probe(&parent, name)?.is_some() {
                return Err(Errno::EEXIST);
            }
            self.may_change_entries(&parent)?;
        }
        parent.node.link(name, &*source.node)
    }

    /// Removes a non-directory name.
    pub fn unlink<'p>(&self, path: impl Into<PathAt<'p>>) -> Result<()> {
        let path = path.into();
        let (parent, last, trailing_slash) = self.resolve_parent(path)?;
        let Last::Name(name) = last else {
            return Err(Errno::EISDIR);
        };
        // Only its type is needed: the node is let go before the removal, so that a file
        // nobody has open is freed at once instead of when this walk's node is dropped.
        let is_dir = {
            let victim = self.step(&parent, name)?;
            self.may_delete(&parent, &victim)?;
            victim.is_dir()
        };
        if is_dir {
            return Err(Errno::EISDIR);
        }
        if trailing_slash {
            return Err(Errno::ENOTDIR);
        }
        parent.node.unlink(name)
    }

    /// Removes an empty directory.
    pub fn rmdir<'p>(&self, path: impl Into<PathAt<'p>>) -> Result<()> {
        let path = path.into();
        let (parent, last, _) = self.resolve_parent(path)?;
        let name = match last {
            Last::Name(name) => name,
            Last::Dot => return Err(Errno::EINVAL),
            Last::DotDot => return Err(Errno::ENOTEMPTY),
            Last::Root => return Err(Errno::EBUSY),
        };
        let (is_dir, mount_id) = {
            let loc = self.step(&parent, name)?;
            self.may_delete(&parent, &loc)?;
            (loc.is_dir(), loc.mount.id)
        };
        if !is_dir {
            return Err(Errno::ENOTDIR);
        }
        if mount_id != parent.mount.id {
            return Err(Errno::EBUSY);
        }
        let removed = parent.node.rmdir(name);
        // Counted even after an error: a file system may have changed something first.
        names_changed();
        removed
    }

    /// Renames `old` to `new`, replacing `new` if it exists (a file by a file, an empty
    /// directory by a directory). `EXDEV` across mounts, `EINVAL` moving a directory into its
    /// own subtree, `EBUSY` for mount points.
    pub fn rename<'p, 'q>(&self, old: impl Into<PathAt<'p>>, new: impl Into<PathAt<'q>>) -> Result<()> {
        self.move_entry(old.into(), new.into(), true)
    }

    /// [`Vfs::rename`] that fails with `EEXIST` when `new` exists (`renameat2` with
    /// `RENAME_NOREPLACE`), decided by the file system in the same step as the move; `EINVAL`
    /// from a file system without the flag.
    pub fn rename_noreplace<'p, 'q>(&self, old: impl Into<PathAt<'p>>, new: impl Into<PathAt<'q>>) -> Result<()> {
        self.move_entry(old.into(), new.into(), false)
    }

    /// Swaps `old` and `new` (`renameat2` with `RENAME_EXCHANGE`): both must exist
    /// (`ENOENT`), and may be of different types. `EXDEV` across mounts, `EBUSY` for mount
    /// points, `EINVAL` when one is inside the other; `EINVAL` from a file system without the
    /// flag. Both parents change as in two renames (the same permission checks).
    pub fn rename_exchange<'p, 'q>(&self, old: impl Into<PathAt<'p>>, new: impl Into<PathAt<'q>>) -> Result<()> {
        let (old_parent, old_last, old_slash) = self.resolve_parent(old.into())?;
        let (new_parent, new_last, new_slash) = self.resolve_parent(new.into())?;
        let (Last::Name(old_name), Last::Name(new_name)) = (old_last, new_last) else {
            return Err(Errno::EBUSY);
        };
        let source = self.step(&old_parent, old_name)?;
        let target = self.step(&new_parent, new_name)?;
        if old_parent.mount.id != new_parent.mount.id {
            return Err(Errno::EXDEV);
        }
        if source.mount.id != old_parent.mount.id || target.mount.id != new_parent.mount.id {
            return Err(Errno::EBUSY);
        }
        if (!source.is_dir() && old_slash) || (!target.is_dir() && new_slash) {
            return Err(Errno::ENOTDIR);
        }
        self.may_delete(&old_parent, &source)?;
        self.may_delete(&new_parent, &target)?;
        if old_parent.node.ino() != new_parent.node.ino() {
            for moved in [&source, &target] {
                if moved.is_dir() {
                    self.creds.check(&*moved.node, Access::WRITE)?;
                }
            }
        }
        if source.node.ino() == target.node.ino() {
            return Ok(());
        }
        let _serial = (source.is_dir() || target.is_dir()).then(|| self.dir_rename.lock());
        if source.is_dir() {
            self.check_not_inside(&source, &new_parent)?;
        }
        if target.is_dir() {
            self.check_not_inside(&target, &old_parent)?;
        }
        let swapped = old_parent.node.rename_exchange(old_name, &*new_parent.node, new_name);
        // Counted even after an error: a file system may have changed something first.
        names_changed();
        swapped
    }

    /// `EINVAL` if directory `parent` is `dir` or inside it (a directory cannot move into its
    /// own subtree); `ELOOP` for a tree deeper than any walk.
    fn check_not_inside(&self, dir: &Loc, parent: &Loc) -> Result<()> {
        let mut cur = parent.node.clone();
        let mut steps = 0;
        loop {
            steps += 1;
            if steps > MAX_ANCESTORS {
                return Err(Errno::ELOOP);
            }
            if cur.ino() == dir.node.ino() {
                return Err(Errno::EINVAL);
            }
            if cur.ino() == parent.mount.root_ino {
                return Ok(());
            }
            let up = cur.lookup("..")?;
            if up.ino() == cur.ino() {
                return Ok(());
            }
            cur = up;
        }
    }

    fn move_entry(&self, old: PathAt<'_>, new: PathAt<'_>, replace: bool) -> Result<()> {
        let (old_parent, old_last, old_slash) = self.resolve_parent(old)?;
        let (new_parent, new_last, new_slash) = self.resolve_parent(new)?;
        let (Last::Name(old_name), Last::Name(new_name)) = (old_last, new_last) else {
            return Err(Errno::EBUSY);
        };
        let source = self.step(&old_parent, old_name)?;
        if old_parent.mount.id != new_parent.mount.id {
            return Err(Errno::EXDEV);
        }
        let target = self.probe(&new_parent, new_name)?;
        if target.is_some() && !replace {
            return Err(Errno::EEXIST);
        }
        if source.mount.id != old_parent.mount.id {
            return Err(Errno::EBUSY);
        }
        if !source.is_dir() && (old_slash || new_slash) {
            return Err(Errno::ENOTDIR);
        }
        self.may_delete(&old_parent, &source)?;
        match &target {
            Some(target) => self.may_delete(&new_parent, target)?,
            None => self.may_change_entries(&new_parent)?,
        }
        // A directory that changes parent rewrites its `..`: it must be writable itself.
        if source.is_dir() && old_parent.node.ino() != new_parent.node.ino() {
            self.creds.check(&*source.node, Access::WRITE)?;
        }
        if let Some(target) = target {
            if target.mount.id != new_parent.mount.id {
                return Err(Errno::EBUSY);
            }
            if target.node.ino() == source.node.ino() {
                return Ok(());
            }
            match (source.is_dir(), target.is_dir()) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                _ => {}
            }
        }
        let _serial = source.is_dir().then(|| self.dir_rename.lock());
        if source.is_dir() {
            self.check_not_inside(&source, &new_parent)?;
        }
        let moved = if replace {
            old_parent.node.rename(old_name, &*new_parent.node, new_name)
        } else {
            old_parent.node.rename_noreplace(old_name, &*new_parent.node, new_name)
        };
        // Counted even after an error: a file system may have changed something first.
        names_changed();
        moved
    }

    /// `stat`, following a symlink at the end.
    pub fn metadata<'p>(&self, path: impl Into<PathAt<'p>>) -> Result<Metadata> {
        let path = path.into();
        metadata_of(&self.resolve(path, true)?)
    }

    /// `lstat`: a symlink at the end is described itself.
    pub fn symlink_metadata<'p>(&self, path: impl Into<PathAt<'p>>) -> Result<Metadata> {
        let path = path.into();
        metadata_of(&self.resolve(path, false)?)
    }

    /// The target of the symlink `path`.
    pub fn read_link<'p>(&self, path: impl Into<PathAt<'p>>) -> Result<String> {
        let path = path.into();
        self.resolve(path, false)?.node.read_link()
    }

    /// `truncate`: sets the size of the regular file `path` (write permission needed:
    /// `EACCES`; `EISDIR` for a directory, `EROFS` on a read-only file system).
    pub fn truncate(&self, path: &str, size: u64) -> Result<()> {
        let loc = self.resolve(path.into(), true)?;
        match loc.node.file_type() {
            FileType::Directory => Err(Errno::EISDIR),
            FileType::Regular if loc.mount.read_only() => Err(Errno::EROFS),
            FileType::Regular => {
                self.creds.check(&*loc.node, Access::WRITE)?;
                let _writer = self.writers.writer(file_key(&loc))?;
                crate::attr::truncate(&self.creds, &*loc.node, size)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// `chmod` (`fchmodat`; `follow` false changes a symlink itself, which Linux refuses
    /// with `EOPNOTSUPP`): see [`OpenFile::set_permissions`] for the rules.
    pub fn set_permissions<'p>(&self, path: impl Into<PathAt<'p>>, perm: u32, follow: bool) -> Result<()> {
        let path = path.into();
        let loc = self.resolve(path, follow)?;
        if loc.is_symlink() {
            return Err(Errno::EOPNOTSUPP);
        }
        self.check_writable_fs(&loc)?;
        crate::attr::chmod(&self.creds, &*loc.node, perm)
    }

    /// `chown`/`lchown`/`fchownat` (`None` keeps an id): see [`OpenFile::set_owner`].
    pub fn set_owner<'p>(&self, path: impl Into<PathAt<'p>>, uid: Option<u32>, gid: Option<u32>, follow: bool) -> Result<()> {
        let path = path.into();
        let loc = self.resolve(path, follow)?;
        self.check_writable_fs(&loc)?;
        crate::attr::chown(&self.creds, &*loc.node, uid, gid)
    }


    /// `getxattr` (`lgetxattr` with `follow` false): the value of extended attribute `name`
    /// of `path` (see [`crate::xattr`] for the rules).
    pub fn get_xattr<'p>(&self, path: impl Into<PathAt<'p>>, follow: bool, name: &str) -> Result<Vec<u8>> {
        let loc = self.resolve(path.into(), follow)?;
        crate::xattr::get(&self.creds, &*loc.node, name)
    }

    /// `setxattr` (`lsetxattr`): sets extended attribute `name` of `path` to `value` as `how`
    /// says.
    pub fn set_xattr<'p>(&self, path: impl Into<PathAt<'p>>, follow: bool, name: &str, value: &[u8], how: crate::XattrSet) -> Result<()> {
        let loc = self.resolve(path.into(), follow)?;
        crate::xattr::set(&self.creds, &*loc.node, loc.mount.read_only(), name, value, how)
    }

    /// `removexattr` (`lremovexattr`): removes extended attribute `name` of `path`.
    pub fn remove_xattr<'p>(&self, path: impl Into<PathAt<'p>>, follow: bool, name: &str) -> Result<()> {
        let loc = self.resolve(path.into(), follow)?;
        crate::xattr::remove(&self.creds, &*loc.node, loc.mount.read_only(), name)
    }

    /// `listxattr` (`llistxattr`): the names of `path`'s extended attributes the caller may
    /// see.
    pub fn list_xattr<'p>(&self, path: impl Into<PathAt<'p>>, follow: bool) -> Result<Vec<String>> {
        let loc = self.resolve(path.into(), follow)?;
        crate::xattr::list(&self.creds, &*loc.node)
    }

    /// All entries of directory `path` without `.` and `..` (as `std::fs::read_dir`), in the
    /// file system's order. ([`OpenFile::read_dir_next`] lists `.` and `..` too, as POSIX
    /// `readdir` does.)
    pub fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>> {
        let dir = self.open(path, OpenFlags::DIRECTORY, 0)?;
        let mut entries = Vec::new();
        while let Some(entry) = dir.read_dir_next()? {
            if entry.name != "." && entry.name != ".." {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    /// `utimensat`: sets the access and modification times of `path` (of a symlink itself
    /// when `follow` is false). Both [`TimeUpdate::Keep`]: nothing changes. Errors: as the
    /// path walk; `EPERM` where the file system cannot set times.
    pub fn set_times<'p>(&self, path: impl Into<PathAt<'p>>, accessed: TimeUpdate, modified: TimeUpdate, follow: bool) -> Result<()> {
        let path = path.into();
        let loc = self.resolve(path, follow)?;
        if accessed == TimeUpdate::Keep && modified == TimeUpdate::Keep {
            return Ok(());
        }
        self.check_writable_fs(&loc)?;
        crate::attr::set_times(&self.creds, &*loc.node, accessed, modified)
    }

    /// Opens `path` for reading as a program to run (`execve`), with Linux's checks: a
    /// regular file (`EACCES`), execute permission (`EACCES`; root needs one execute bit), not
    /// on a `noexec` mount (`EACCES`), not open for writing (`ETXTBSY`). Until the
    /// [`TextBusy`] is dropped, opening the file for writing or truncating it fails with
    /// `ETXTBSY`.
    pub fn open_executable(&self, path: &str) -> Result<(OpenFile, TextBusy)> {
        let loc = self.resolve(path.into(), true)?;
        if loc.node.file_type() != FileType::Regular || loc.mount.flags().contains(MountFlags::NO_EXEC) {
            return Err(Errno::EACCES);
        }
        // Execute permission only: Linux runs a program its caller may not read.
        self.creds.check(&*loc.node, Access::EXEC)?;
        let busy = self.writers.deny_writers(file_key(&loc))?;
        let file = self.open_node(loc, None, OpenFlags::RDONLY, false)?;
        Ok((file, busy))
    }

    /// One more (`running`) or one fewer program of another VM runs from the file with
    /// device number `dev` and inode `ino` (the process host says so): while any does,
    /// opening the file for writing or truncating it fails with `ETXTBSY` here too.
    pub fn set_running_elsewhere(&self, dev: u64, ino: u64, running: bool) {
        self.writers.set_running_elsewhere(FileKey { dev, ino }, running);
    }
}

/// The file at `loc` as [`WriteCounts`] knows it.
fn file_key(loc: &Loc) -> FileKey {
    FileKey { dev: loc.mount.dev, ino: loc.node.ino() }
}

/// How many `..` steps the rename subtree check takes at most before deciding the file system's
/// parent links form a cycle (`ELOOP`); far deeper than any real tree.
const MAX_ANCESTORS: usize = 1 << 20;

fn metadata_of(loc: &Loc) -> Result<Metadata> {
    let mut metadata = loc.node.metadata()?;
    metadata.dev = loc.mount.dev;
    Ok(metadata)
}
