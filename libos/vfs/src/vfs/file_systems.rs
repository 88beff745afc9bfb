//! Operations on whole file systems through the namespace: `statfs` (with the mount's
//! flags), `sync`, `syncfs`, and the shut-down before power-off, once per file system however
//! many mounts show it.

use super::{Mount, Vfs};
use crate::file::OpenFile;
use crate::node::FileSystem;
use crate::types::{MountFlags, STATFS_FLAGS_VALID, StatFs};
use alloc::sync::Arc;
use alloc::vec::Vec;
use libos_core::{Errno, Result};

impl Vfs {
    /// `statfs` of the file system holding `path`.
    pub fn statfs(&self, path: &str) -> Result<StatFs> {
        statfs_through(&self.resolve(path.into(), true)?.mount)
    }

    /// Syncs every mounted file system.
    pub fn sync(&self) -> Result<()> {
        self.each_file_system(|fs| fs.sync())
    }

    /// Shuts every mounted file system down before power-off ([`FileSystem::shut_down`]):
    /// written back, disk volumes marked clean. Each is tried; the first error is returned.
    pub fn shut_down(&self) -> Result<()> {
        let mut first_error = Ok(());
        self.each_file_system(|fs| {
            if let Err(e) = fs.shut_down() {
                first_error = first_error.and(Err(e));
            }
            Ok(())
        })?;
        first_error
    }

    /// Calls `f` with the root file system, then every mounted one (once each, however many
    /// bind mounts show it); stops at the first error.
    fn each_file_system(&self, mut f: impl FnMut(&dyn FileSystem) -> Result<()>) -> Result<()> {
        let mut mounted: Vec<Arc<Mount>> = self.mounts.lock().covers.values().cloned().collect();
        mounted.sort_by_key(|m| m.id);
        let mut seen = alloc::collections::BTreeSet::from([self.root.dev]);
        mounted.retain(|m| seen.insert(m.dev));
        f(&*self.root.fs)?;
        mounted.iter().try_for_each(|m| f(&*m.fs))
    }

    /// The file system `file` was opened on (`EINVAL` for a file outside this namespace or
    /// one whose file system was unmounted since).
    fn file_system_of(&self, file: &OpenFile) -> Result<Arc<dyn FileSystem>> {
        let dev = file.dev();
        if dev == self.root.dev {
            return Ok(self.root.fs.clone());
        }
        let mounts = self.mounts.lock();
        mounts.covers.values().find(|m| m.dev == dev).map(|m| m.fs.clone()).ok_or(Errno::EINVAL)
    }

    /// `fstatfs`: the file system `file` was opened on.
    pub fn statfs_of(&self, file: &OpenFile) -> Result<StatFs> {
        match file.file_ref() {
            Some(at) => statfs_through(&at.loc.mount),
            None => self.file_system_of(file)?.statfs(),
        }
    }

    /// `syncfs`: syncs the file system `file` was opened on.
    pub fn sync_of(&self, file: &OpenFile) -> Result<()> {
        self.file_system_of(file)?.sync()
    }
}

/// `statfs` of `mount`'s file system, with the mount's flags.
fn statfs_through(mount: &Mount) -> Result<StatFs> {
    let mut stat = mount.fs.statfs()?;
    let read_only = if mount.fs.read_only() { MountFlags::READ_ONLY } else { MountFlags::empty() };
    stat.flags = u64::from((mount.flags() | read_only).bits()) | STATFS_FLAGS_VALID;
    Ok(stat)
}
