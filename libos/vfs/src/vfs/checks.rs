//! The permission side of [`Vfs`]: its credentials, and Linux's checks for creating,
//! removing and accessing nodes (`may_create`, `may_delete`, `inode_init_owner`, `faccessat`).

use super::{Loc, MountTable, PathAt, Vfs};
use crate::cred::{Access, CredCell, Credentials, S_ISVTX};
use crate::node::{NewNode, Node};
use crate::types::{FileType, Owner};
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use libos_core::sync::SpinLock;
use libos_core::{Errno, Result};

impl Vfs {
    /// The credentials operations are checked with (root with every capability until
    /// changed).
    pub fn credentials(&self) -> Arc<Credentials> {
        self.creds.get()
    }

    /// Replaces the credentials.
    pub fn set_credentials(&self, creds: Credentials) {
        self.creds.set(creds);
    }

    /// Changes the credentials with `f` as one step (the `set*id` calls); an error from `f`
    /// changes nothing.
    pub fn update_credentials<T>(&self, f: impl FnOnce(&mut Credentials) -> Result<T>) -> Result<T> {
        self.creds.update(f)
    }

    /// `EACCES` unless the caller may add or remove entries of directory `dir`.
    pub(super) fn may_change_entries(&self, dir: &Loc) -> Result<()> {
        mount_writable(dir)?;
        self.creds.check(&*dir.node, Access::WRITE | Access::EXEC)
    }

    /// Whether adding a name to `dir` needs [`Vfs::may_change_entries`] (after the `EEXIST`
    /// check): always, except for a caller who passes every permission check, on a mount
    /// that is not read-only.
    pub(super) fn checks_entry_changes(&self, dir: &Loc) -> bool {
        !self.creds.privileged() || dir.mount.flags().contains(crate::MountFlags::READ_ONLY)
    }

    /// Linux's `may_delete`: write and search permission on `dir`, and in a sticky directory
    /// ownership of `victim` or of `dir` (or `CAP_FOWNER`, else `EPERM`).
    pub(super) fn may_delete(&self, dir: &Loc, victim: &Loc) -> Result<()> {
        mount_writable(dir)?;
        if self.creds.privileged() {
            return Ok(());
        }
        self.may_change_entries(dir)?;
        let dir_meta = dir.node.metadata()?;
        if dir_meta.perm & S_ISVTX != 0 {
            let creds = self.creds.get();
            if creds.fsuid != dir_meta.uid && !creds.owns_or_capable(victim.node.metadata()?.uid) {
                return Err(Errno::EPERM);
            }
        }
        Ok(())
    }

    /// The owner and permission bits a new node in `dir` gets (see
    /// [`Credentials::new_node_owner`]).
    pub(super) fn new_owner(&self, dir: &Loc, is_dir: bool, perm: u32) -> Result<(Owner, u32)> {
        let (uid, gid, perm) = self.creds.get().new_node_owner(&dir.node.metadata()?, is_dir, perm & 0o7777);
        Ok((Owner { uid, gid }, perm))
    }

    /// Creates `name` in `parent` after the permission checks (`EEXIST` before `EACCES`, as
    /// Linux orders them).
    pub(super) fn create_in(&self, parent: &Loc, name: &str, kind: NewNode<'_>, perm: u32) -> Result<Arc<dyn Node>> {
        if self.checks_entry_changes(parent) {
            if self.probe(parent, name)?.is_some() {
                return Err(Errno::EEXIST);
            }
            self.may_change_entries(parent)?;
        }
        let (owner, perm) = self.new_owner(parent, kind == NewNode::Directory, perm)?;
        parent.node.create(name, kind, perm, owner)
    }

    /// `faccessat`: whether the caller may access `path` as `access` asks, by the real ids
    /// (or, with `effective`, the effective ones: `AT_EACCESS`). An empty `access` checks
    /// existence only. Writing to a read-only file system is `EROFS`.
    pub fn access<'p>(&self, path: impl Into<PathAt<'p>>, access: Access, follow: bool, effective: bool) -> Result<()> {
        let path = path.into();
        let real = self.credentials().for_access_check();
        let (checker, loc) = if effective || real == *self.credentials() {
            (self.creds.clone(), self.resolve(path, follow)?)
        } else {
            // The walk itself is checked with the real ids too, as Linux's `faccessat` does.
            let checker = Arc::new(CredCell::new(real));
            let walker = Vfs { creds: checker.clone(), ..self.shallow_clone() };
            let loc = walker.resolve(path, follow)?;
            (checker, loc)
        };
        let data_node = matches!(loc.node.file_type(), FileType::Regular | FileType::Directory | FileType::Symlink);
        if access.contains(Access::WRITE) && data_node && loc.mount.read_only() {
            return Err(Errno::EROFS);
        }
        if access.is_empty() { Ok(()) } else { checker.check(&*loc.node, access) }
    }

    /// A namespace sharing this one's mounts and current directory (for [`Vfs::access`],
    /// which walks with other credentials).
    fn shallow_clone(&self) -> Vfs {
        Vfs {
            root: self.root.clone(),
            root_loc: self.root_loc.clone(),
            mounts: SpinLock::new(MountTable { next_id: 0, covers: self.mounts.lock().covers.clone() }),
            covered_summary: AtomicU64::new(self.covered_summary.load(Ordering::Acquire)),
            cwd: SpinLock::new(self.cwd()),
            dir_rename: SpinLock::new(()),
            creds: self.creds.clone(),
            // Its own: its walks are checked with other credentials.
            walk_cache: super::walk_cache::WalkCache::default(),
            writers: self.writers.clone(),
        }
    }

    /// `EROFS` for a change of a node on a read-only file system.
    pub(super) fn check_writable_fs(&self, loc: &Loc) -> Result<()> {
        if loc.mount.read_only() { Err(Errno::EROFS) } else { Ok(()) }
    }
}

/// `EROFS` for a change of the entries of `dir` through a mount made read-only (a read-only
/// file system answers for itself, in its own order of checks).
fn mount_writable(dir: &Loc) -> Result<()> {
    if dir.mount.flags().contains(crate::MountFlags::READ_ONLY) { Err(Errno::EROFS) } else { Ok(()) }
}
