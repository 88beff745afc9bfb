//! Process credentials and the permission checks made with them, as Linux makes them.
//!
//! [`Credentials`] holds what Linux keeps in `struct cred`: real, effective, saved and
//! file-system user and group ids, supplementary groups and capability sets. The VFS checks
//! every path component and operation against the file-system ids (`fsuid`/`fsgid`) and the
//! capabilities ([`Credentials::permits`], `generic_permission` in Linux); the `set*id` calls
//! change them with Linux's rules, including the capability changes of `cap_emulate_setxuid`
//! (a process that leaves uid 0 loses its capabilities, one that regains euid 0 gets its
//! permitted set back).
//!
//! An image starts as root with every capability ([`Credentials::root`]), which is what a
//! unikernel's only program expects; a program that drops privileges (a server calling
//! `setuid`) is then checked like an unprivileged Linux process.

use crate::types::{FileType, Metadata};
use alloc::vec::Vec;
use bitflags::bitflags;
use libos_core::{Errno, Result};

bitflags! {
    /// What an access check asks for: `MAY_READ`, `MAY_WRITE`, `MAY_EXEC` (the `R_OK`,
    /// `W_OK`, `X_OK` bit values).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Access: u32 {
        /// Search a directory or execute a file.
        const EXEC = 1;
        /// Write (directories: add or remove entries).
        const WRITE = 2;
        /// Read (directories: list).
        const READ = 4;
    }
}

/// A Linux capability number (`CAP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Cap {
    /// Change any file's owner and group.
    Chown = 0,
    /// Read, write and (where some execute bit is set) execute any file; search any directory.
    DacOverride = 1,
    /// Read any file, read and search any directory.
    DacReadSearch = 2,
    /// Act as the owner of any file (chmod, utimes, sticky directories).
    Fowner = 3,
    /// Keep set-id bits on write and chown; set the set-group-id bit of any file.
    Fsetid = 4,
    /// Send signals to anyone.
    Kill = 5,
    /// Change group ids freely.
    Setgid = 6,
    /// Change user ids freely.
    Setuid = 7,
    /// Administer the system; here: the `trusted.*` and `security.*` extended attributes.
    SysAdmin = 21,
    /// Make device nodes.
    Mknod = 27,
    /// Set file capabilities (the `security.capability` extended attribute).
    Setfcap = 31,
}

/// Every capability Linux 6 knows (`CAP_LAST_CAP` is 40).
pub const ALL_CAPS: u64 = (1 << 41) - 1;

/// The capabilities that follow the file-system uid (dropped when `fsuid` leaves 0, restored
/// when it returns: Linux's `CAP_FS_MASK`).
const FS_CAPS: u64 = (1 << Cap::Chown as u8)
    | (1 << Cap::DacOverride as u8)
    | (1 << Cap::DacReadSearch as u8)
    | (1 << Cap::Fowner as u8)
    | (1 << Cap::Fsetid as u8)
    | (1 << 9) // CAP_LINUX_IMMUTABLE
    | (1 << 32) // CAP_MAC_OVERRIDE
    | (1 << Cap::Mknod as u8);

/// The set-user-id, set-group-id and sticky bits of a mode.
pub const S_ISUID: u32 = 0o4000;
/// See [`S_ISUID`].
pub const S_ISGID: u32 = 0o2000;
/// See [`S_ISUID`].
pub const S_ISVTX: u32 = 0o1000;
/// Group execute.
const S_IXGRP: u32 = 0o010;

/// "Leave this id unchanged" in the `set*id` calls (`(uid_t)-1`).
pub const KEEP_ID: u32 = u32::MAX;

/// Most supplementary groups a process may have (Linux's `NGROUPS_MAX`).
pub const NGROUPS_MAX: usize = 65536;

/// The credentials of the running program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Real user id.
    pub ruid: u32,
    /// Effective user id.
    pub euid: u32,
    /// Saved set-user-id.
    pub suid: u32,
    /// File-system user id: what permission checks and new files' owners use.
    pub fsuid: u32,
    /// Real group id.
    pub rgid: u32,
    /// Effective group id.
    pub egid: u32,
    /// Saved set-group-id.
    pub sgid: u32,
    /// File-system group id.
    pub fsgid: u32,
    /// Supplementary groups, sorted, without duplicates.
    groups: Vec<u32>,
    /// Effective capabilities (bit `n` is capability `n`).
    pub cap_effective: u64,
    /// Permitted capabilities.
    pub cap_permitted: u64,
    /// Inheritable capabilities (kept and reported; there is no `execve` to pass them on).
    pub cap_inheritable: u64,
}

impl Default for Credentials {
    fn default() -> Credentials {
        Credentials::root()
    }
}

impl Credentials {
    /// uid 0, gid 0, no supplementary groups, every capability.
    pub const fn root() -> Credentials {
        Credentials {
            ruid: 0,
            euid: 0,
            suid: 0,
            fsuid: 0,
            rgid: 0,
            egid: 0,
            sgid: 0,
            fsgid: 0,
            groups: Vec::new(),
            cap_effective: ALL_CAPS,
            cap_permitted: ALL_CAPS,
            cap_inheritable: 0,
        }
    }

    /// An unprivileged user: every uid `uid`, every gid `gid`, no capabilities.
    pub fn user(uid: u32, gid: u32) -> Credentials {
        Credentials {
            ruid: uid,
            euid: uid,
            suid: uid,
            fsuid: uid,
            rgid: gid,
            egid: gid,
            sgid: gid,
            fsgid: gid,
            groups: Vec::new(),
            cap_effective: 0,
            cap_permitted: 0,
            cap_inheritable: 0,
        }
    }

    /// Whether the effective set holds `cap`.
    pub const fn capable(&self, cap: Cap) -> bool {
        self.cap_effective & (1 << cap as u8) != 0
    }

    /// Whether every data-access check passes without looking at the file (the effective set
    /// holds `CAP_DAC_OVERRIDE` and `CAP_DAC_READ_SEARCH`): the VFS then skips reading each
    /// directory's metadata on a walk, which is what keeps root's path walks as cheap as
    /// they were before permissions were checked. (Executing still needs an execute bit.)
    pub const fn bypasses_data_checks(&self) -> bool {
        self.capable(Cap::DacOverride) && self.capable(Cap::DacReadSearch)
    }

    /// The supplementary groups.
    pub fn groups(&self) -> &[u32] {
        &self.groups
    }

    /// Whether `gid` is the file-system group or a supplementary group (`in_group_p`).
    pub fn in_group(&self, gid: u32) -> bool {
        self.fsgid == gid || self.groups.binary_search(&gid).is_ok()
    }

    /// Whether the caller owns a file owned by `uid`, or has `CAP_FOWNER`
    /// (`inode_owner_or_capable`).
    pub const fn owns_or_capable(&self, uid: u32) -> bool {
        self.fsuid == uid || self.capable(Cap::Fowner)
    }

    /// Linux's `generic_permission`: the owner's, the group's or the others' bits, then the
    /// capability overrides. `access` may combine bits; all must be granted.
    pub fn permits(&self, meta: &Metadata, access: Access) -> bool {
        let mode = meta.perm;
        let bits = if self.fsuid == meta.uid {
            mode >> 6
        } else if self.in_group(meta.gid) {
            mode >> 3
        } else {
            mode
        } & 7;
        if Access::from_bits_truncate(bits).contains(access) {
            return true;
        }
        let is_dir = meta.file_type == FileType::Directory;
        // CAP_DAC_OVERRIDE: anything but executing a file with no execute bit at all.
        if self.capable(Cap::DacOverride) && (!access.contains(Access::EXEC) || is_dir || mode & 0o111 != 0) {
            return true;
        }
        // CAP_DAC_READ_SEARCH: reading anything, searching directories.
        let read_search = if is_dir { Access::READ | Access::EXEC } else { Access::READ };
        self.capable(Cap::DacReadSearch) && read_search.contains(access)
    }

    /// The credentials `access(2)` checks with: the real ids in place of the file-system
    /// ids, and no capabilities unless the real uid is 0 (then the permitted set), as
    /// Linux's `faccessat` does.
    pub fn for_access_check(&self) -> Credentials {
        let mut real = self.clone();
        real.fsuid = self.ruid;
        real.fsgid = self.rgid;
        real.cap_effective = if self.ruid == 0 { self.cap_permitted } else { 0 };
        real
    }

    /// The mode bits a chmod by these credentials gives a file owned by group `gid`: the
    /// set-group-id bit is dropped unless the caller is in that group or has `CAP_FSETID`.
    pub fn chmod_bits(&self, gid: u32, perm: u32) -> u32 {
        if perm & S_ISGID != 0 && !self.in_group(gid) && !self.capable(Cap::Fsetid) { perm & !S_ISGID } else { perm }
    }

    /// The mode bits that survive a write or truncation by these credentials (Linux's
    /// `file_remove_privs`): set-user-id goes, and set-group-id when group execute is set,
    /// unless the caller has `CAP_FSETID`. `None`: nothing to change.
    pub fn bits_after_write(&self, meta: &Metadata) -> Option<u32> {
        if meta.file_type != FileType::Regular || self.capable(Cap::Fsetid) {
            return None;
        }
        let mut perm = meta.perm;
        perm &= !S_ISUID;
        if perm & (S_ISGID | S_IXGRP) == S_ISGID | S_IXGRP {
            perm &= !S_ISGID;
        }
        (perm != meta.perm).then_some(perm)
    }

    /// The owner and mode a new node in a directory described by `dir` gets (Linux's
    /// `inode_init_owner`): the caller's fsuid; the directory's group if it is set-group-id
    /// (and a new directory inherits that bit), else the caller's fsgid; a new non-directory
    /// in such a directory loses its own set-group-id bit unless the caller is in the group
    /// or has `CAP_FSETID`.
    pub fn new_node_owner(&self, dir: &Metadata, is_dir: bool, perm: u32) -> (u32, u32, u32) {
        if dir.perm & S_ISGID == 0 {
            return (self.fsuid, self.fsgid, perm);
        }
        let perm = if is_dir {
            perm | S_ISGID
        } else if perm & (S_ISGID | S_IXGRP) == S_ISGID | S_IXGRP && !self.in_group(dir.gid) && !self.capable(Cap::Fsetid) {
            perm & !S_ISGID
        } else {
            perm
        };
        (self.fsuid, dir.gid, perm)
    }

    // ---- the set*id calls ----

    /// Applies Linux's capability changes after the uids changed from `old` (`cap_emulate_setxuid`
    /// and `cap_emulate_setfsuid`).
    fn fix_caps(&mut self, old: &Credentials) {
        let was_root = old.ruid == 0 || old.euid == 0 || old.suid == 0;
        let is_root = self.ruid == 0 || self.euid == 0 || self.suid == 0;
        if was_root && !is_root {
            self.cap_permitted = 0;
            self.cap_effective = 0;
        }
        if old.euid == 0 && self.euid != 0 {
            self.cap_effective = 0;
        }
        if old.euid != 0 && self.euid == 0 {
            self.cap_effective = self.cap_permitted;
        }
        if old.fsuid == 0 && self.fsuid != 0 {
            self.cap_effective &= !FS_CAPS;
        }
        if old.fsuid != 0 && self.fsuid == 0 {
            self.cap_effective |= self.cap_permitted & FS_CAPS;
        }
    }

    /// `setresuid(ruid, euid, suid)` ([`KEEP_ID`] keeps one): without `CAP_SETUID`, each new
    /// id must be one of the current real, effective or saved uids (`EPERM`). The fsuid
    /// follows the euid.
    pub fn setresuid(&mut self, ruid: u32, euid: u32, suid: u32) -> Result<()> {
        let allowed = |id: u32| id == KEEP_ID || id == self.ruid || id == self.euid || id == self.suid;
        if !(self.capable(Cap::Setuid) || allowed(ruid) && allowed(euid) && allowed(suid)) {
            return Err(Errno::EPERM);
        }
        let old = self.clone();
        let pick = |new: u32, old: u32| if new == KEEP_ID { old } else { new };
        self.ruid = pick(ruid, self.ruid);
        self.euid = pick(euid, self.euid);
        self.suid = pick(suid, self.suid);
        self.fsuid = self.euid;
        self.fix_caps(&old);
        Ok(())
    }

    /// `setreuid(ruid, euid)`: the real uid may become the effective or real one, the
    /// effective uid any of the three; the saved uid becomes the new euid when the real uid is
    /// set or the euid differs from the old real uid.
    pub fn setreuid(&mut self, ruid: u32, euid: u32) -> Result<()> {
        let privileged = self.capable(Cap::Setuid);
        if ruid != KEEP_ID && !privileged && ruid != self.ruid && ruid != self.euid {
            return Err(Errno::EPERM);
        }
        if euid != KEEP_ID && !privileged && euid != self.ruid && euid != self.euid && euid != self.suid {
            return Err(Errno::EPERM);
        }
        let old = self.clone();
        if ruid != KEEP_ID {
            self.ruid = ruid;
        }
        if euid != KEEP_ID {
            self.euid = euid;
        }
        if ruid != KEEP_ID || (euid != KEEP_ID && euid != old.ruid) {
            self.suid = self.euid;
        }
        self.fsuid = self.euid;
        self.fix_caps(&old);
        Ok(())
    }

    /// `setuid(uid)`: with `CAP_SETUID` all three uids, else only the euid, and only to the
    /// real or saved uid.
    pub fn setuid(&mut self, uid: u32) -> Result<()> {
        if uid == KEEP_ID {
            return Err(Errno::EINVAL);
        }
        let old = self.clone();
        if self.capable(Cap::Setuid) {
            self.ruid = uid;
            self.suid = uid;
        } else if uid != self.ruid && uid != self.suid {
            return Err(Errno::EPERM);
        }
        self.euid = uid;
        self.fsuid = uid;
        self.fix_caps(&old);
        Ok(())
    }

    /// `setfsuid(uid)`: returns the previous fsuid whether or not the change was allowed
    /// (allowed: any of the four uids, or anything with `CAP_SETUID`).
    pub fn setfsuid(&mut self, uid: u32) -> u32 {
        let previous = self.fsuid;
        if uid == self.ruid || uid == self.euid || uid == self.suid || uid == self.fsuid || self.capable(Cap::Setuid) {
            let old = self.clone();
            self.fsuid = uid;
            self.fix_caps(&old);
        }
        previous
    }

    /// `setresgid`, as [`Credentials::setresuid`] with `CAP_SETGID`.
    pub fn setresgid(&mut self, rgid: u32, egid: u32, sgid: u32) -> Result<()> {
        let allowed = |id: u32| id == KEEP_ID || id == self.rgid || id == self.egid || id == self.sgid;
        if !(self.capable(Cap::Setgid) || allowed(rgid) && allowed(egid) && allowed(sgid)) {
            return Err(Errno::EPERM);
        }
        let pick = |new: u32, old: u32| if new == KEEP_ID { old } else { new };
        self.rgid = pick(rgid, self.rgid);
        self.egid = pick(egid, self.egid);
        self.sgid = pick(sgid, self.sgid);
        self.fsgid = self.egid;
        Ok(())
    }

    /// `setregid`, as [`Credentials::setreuid`].
    pub fn setregid(&mut self, rgid: u32, egid: u32) -> Result<()> {
        let privileged = self.capable(Cap::Setgid);
        if rgid != KEEP_ID && !privileged && rgid != self.rgid && rgid != self.egid {
            return Err(Errno::EPERM);
        }
        if egid != KEEP_ID && !privileged && egid != self.rgid && egid != self.egid && egid != self.sgid {
            return Err(Errno::EPERM);
        }
        let old_rgid = self.rgid;
        if rgid != KEEP_ID {
            self.rgid = rgid;
        }
        if egid != KEEP_ID {
            self.egid = egid;
        }
        if rgid != KEEP_ID || (egid != KEEP_ID && egid != old_rgid) {
            self.sgid = self.egid;
        }
        self.fsgid = self.egid;
        Ok(())
    }

    /// `setgid`, as [`Credentials::setuid`].
    pub fn setgid(&mut self, gid: u32) -> Result<()> {
        if gid == KEEP_ID {
            return Err(Errno::EINVAL);
        }
        if self.capable(Cap::Setgid) {
            self.rgid = gid;
            self.sgid = gid;
        } else if gid != self.rgid && gid != self.sgid {
            return Err(Errno::EPERM);
        }
        self.egid = gid;
        self.fsgid = gid;
        Ok(())
    }

    /// `setfsgid`, as [`Credentials::setfsuid`].
    pub fn setfsgid(&mut self, gid: u32) -> u32 {
        let previous = self.fsgid;
        if gid == self.rgid || gid == self.egid || gid == self.sgid || gid == self.fsgid || self.capable(Cap::Setgid) {
            self.fsgid = gid;
        }
        previous
    }

    /// `setgroups`: needs `CAP_SETGID` (`EPERM`); more than [`NGROUPS_MAX`] is `EINVAL`.
    pub fn setgroups(&mut self, groups: &[u32]) -> Result<()> {
        if groups.len() > NGROUPS_MAX {
            return Err(Errno::EINVAL);
        }
        if !self.capable(Cap::Setgid) {
            return Err(Errno::EPERM);
        }
        let mut sorted = Vec::new();
        sorted.try_reserve_exact(groups.len()).map_err(|_| Errno::ENOMEM)?;
        sorted.extend_from_slice(groups);
        sorted.sort_unstable();
        sorted.dedup();
        self.groups = sorted;
        Ok(())
    }

    /// `capset`: the new sets must stay within the permitted set (which can only shrink)
    /// and the effective set within the new permitted set (`EPERM`).
    pub fn capset(&mut self, effective: u64, permitted: u64, inheritable: u64) -> Result<()> {
        if permitted & !self.cap_permitted != 0 || effective & !permitted != 0 {
            return Err(Errno::EPERM);
        }
        if inheritable & !(self.cap_inheritable | self.cap_permitted) != 0 {
            return Err(Errno::EPERM);
        }
        self.cap_effective = effective & ALL_CAPS;
        self.cap_permitted = permitted & ALL_CAPS;
        self.cap_inheritable = inheritable & ALL_CAPS;
        Ok(())
    }
}

/// The capabilities whose presence lets the VFS skip reading metadata for a check: with all
/// of them (and fsuid 0 not needed: capabilities decide), every check but "execute a file
/// with no execute bit" passes.
const BYPASS_CAPS: u64 = (1 << Cap::Chown as u8)
    | (1 << Cap::DacOverride as u8)
    | (1 << Cap::DacReadSearch as u8)
    | (1 << Cap::Fowner as u8)
    | (1 << Cap::Fsetid as u8)
    | (1 << Cap::Mknod as u8);

/// The credentials one namespace checks against, shared with the files it opens (a write
/// through an open file drops set-id bits by the writer's credentials).
pub(crate) struct CredCell {
    /// The credentials hold every capability in [`BYPASS_CAPS`]: the common case (an image
    /// runs as root) answers every check from this flag alone.
    privileged: core::sync::atomic::AtomicBool,
    creds: libos_core::sync::SpinLock<alloc::sync::Arc<Credentials>>,
}

impl CredCell {
    pub fn new(creds: Credentials) -> CredCell {
        let cell = CredCell { privileged: core::sync::atomic::AtomicBool::new(false), creds: libos_core::sync::SpinLock::new(alloc::sync::Arc::new(Credentials::root())) };
        cell.set(creds);
        cell
    }

    /// The current credentials.
    pub fn get(&self) -> alloc::sync::Arc<Credentials> {
        self.creds.lock().clone()
    }

    /// Replaces the credentials.
    pub fn set(&self, creds: Credentials) {
        let _ = self.update(|current| {
            *current = creds;
            Ok(())
        });
    }

    /// Changes the credentials with `f` as one step (the `set*id` calls); an error from `f`
    /// changes nothing.
    pub fn update<T>(&self, f: impl FnOnce(&mut Credentials) -> Result<T>) -> Result<T> {
        let mut guard = self.creds.lock();
        let mut creds = (**guard).clone();
        let value = f(&mut creds)?;
        let privileged = creds.cap_effective & BYPASS_CAPS == BYPASS_CAPS;
        *guard = alloc::sync::Arc::new(creds);
        self.privileged.store(privileged, core::sync::atomic::Ordering::Release);
        drop(guard);
        // Walks cached under the old credentials may pass directories the new ones cannot.
        crate::vfs::names_changed();
        Ok(value)
    }

    /// Whether every check but executing a file passes without looking (see [`BYPASS_CAPS`]).
    pub fn privileged(&self) -> bool {
        self.privileged.load(core::sync::atomic::Ordering::Acquire)
    }

    /// `EACCES` unless the caller may search directory `dir` (every step of a path walk: root
    /// may search any directory, so it skips even the node's type).
    pub fn check_search(&self, dir: &dyn crate::Node) -> Result<()> {
        if self.privileged() {
            return Ok(());
        }
        self.check(dir, Access::EXEC)
    }

    /// `EACCES` unless the caller may access `node` as `access` asks.
    pub fn check(&self, node: &dyn crate::Node, access: Access) -> Result<()> {
        if self.privileged() && (!access.contains(Access::EXEC) || node.file_type().is_dir()) {
            return Ok(());
        }
        if self.get().permits(&node.metadata()?, access) { Ok(()) } else { Err(Errno::EACCES) }
    }

    /// After a write or truncation of `node`: drops its set-id bits as Linux does (see
    /// [`Credentials::bits_after_write`]).
    pub fn after_write(&self, node: &dyn crate::Node) -> Result<()> {
        if self.privileged() || node.file_type() != FileType::Regular {
            return Ok(());
        }
        let meta = node.metadata()?;
        if meta.perm & (S_ISUID | S_ISGID) == 0 {
            return Ok(());
        }
        match self.get().bits_after_write(&meta) {
            Some(perm) => node.set_attr(&crate::SetAttr::perm(perm)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Timestamp;

    fn meta(file_type: FileType, perm: u32, uid: u32, gid: u32) -> Metadata {
        Metadata {
            dev: 0,
            ino: 1,
            file_type,
            perm,
            uid,
            gid,
            nlink: 1,
            size: 0,
            blocks: 0,
            block_size: 4096,
            rdev: 0,
            atime: Timestamp(0),
            mtime: Timestamp(0),
            ctime: Timestamp(0),
        }
    }

    #[test]
    fn owner_group_and_other_bits_are_chosen_in_that_order() {
        let user = Credentials::user(1000, 100);
        // The owner's bits decide even when the group's would allow more.
        assert!(!user.permits(&meta(FileType::Regular, 0o070, 1000, 100), Access::READ));
        assert!(user.permits(&meta(FileType::Regular, 0o407, 1000, 100), Access::READ));
        assert!(user.permits(&meta(FileType::Regular, 0o040, 1, 100), Access::READ));
        assert!(!user.permits(&meta(FileType::Regular, 0o004, 1, 100), Access::READ));
        assert!(user.permits(&meta(FileType::Regular, 0o004, 1, 1), Access::READ));
        assert!(!user.permits(&meta(FileType::Regular, 0o004, 1, 1), Access::READ | Access::WRITE));
    }

    #[test]
    fn supplementary_groups_count_as_the_group() {
        let mut root = Credentials::root();
        root.setgroups(&[7, 5, 7]).unwrap();
        assert_eq!(root.groups(), [5, 7]);
        root.setresuid(1000, 1000, 1000).unwrap();
        assert!(root.permits(&meta(FileType::Regular, 0o040, 1, 7), Access::READ));
        assert_eq!(root.setgroups(&[1]), Err(Errno::EPERM));
    }

    #[test]
    fn root_reads_and_writes_anything_but_executes_only_with_an_execute_bit() {
        let root = Credentials::root();
        assert!(root.permits(&meta(FileType::Regular, 0, 5, 5), Access::READ | Access::WRITE));
        assert!(!root.permits(&meta(FileType::Regular, 0o600, 5, 5), Access::EXEC));
        assert!(root.permits(&meta(FileType::Regular, 0o001, 5, 5), Access::EXEC));
        assert!(root.permits(&meta(FileType::Directory, 0, 5, 5), Access::EXEC | Access::WRITE));
    }

    #[test]
    fn leaving_uid_0_drops_capabilities_and_regaining_euid_0_restores_them() {
        let mut creds = Credentials::root();
        creds.setresuid(0, 1000, 0).unwrap();
        assert_eq!(creds.cap_effective, 0);
        assert_eq!(creds.cap_permitted, ALL_CAPS);
        creds.setresuid(KEEP_ID, 0, KEEP_ID).unwrap();
        assert!(creds.capable(Cap::Chown));
        creds.setuid(1000).unwrap();
        assert_eq!((creds.ruid, creds.euid, creds.suid, creds.cap_permitted), (1000, 1000, 1000, 0));
        assert_eq!(creds.setuid(0), Err(Errno::EPERM));
    }

    #[test]
    fn unprivileged_setreuid_swaps_only_among_its_own_ids() {
        let mut creds = Credentials::user(1000, 1000);
        creds.ruid = 2000;
        creds.setreuid(1000, 2000).unwrap();
        assert_eq!((creds.ruid, creds.euid, creds.suid), (1000, 2000, 2000));
        assert_eq!(creds.setreuid(3000, KEEP_ID), Err(Errno::EPERM));
    }

    #[test]
    fn fsuid_leaving_0_drops_only_the_file_capabilities() {
        let mut creds = Credentials::root();
        assert_eq!(creds.setfsuid(1000), 0);
        assert!(!creds.capable(Cap::DacOverride));
        assert!(creds.capable(Cap::Setuid));
        assert_eq!(creds.setfsuid(0), 1000);
        assert!(creds.capable(Cap::DacOverride));
    }

    #[test]
    fn writes_drop_set_id_bits_unless_capable() {
        let user = Credentials::user(1, 1);
        let file = meta(FileType::Regular, 0o6755, 1, 1);
        assert_eq!(user.bits_after_write(&file), Some(0o0755));
        // Set-group-id without group execute (a mandatory-locking mark) stays.
        assert_eq!(user.bits_after_write(&meta(FileType::Regular, 0o6745, 1, 1)), Some(0o2745));
        assert_eq!(Credentials::root().bits_after_write(&file), None);
    }

    #[test]
    fn set_group_id_directories_pass_their_group_on() {
        let user = Credentials::user(1, 1);
        let dir = meta(FileType::Directory, 0o2777, 0, 50);
        assert_eq!(user.new_node_owner(&dir, true, 0o755), (1, 50, 0o2755));
        assert_eq!(user.new_node_owner(&dir, false, 0o2755), (1, 50, 0o0755));
        let plain = meta(FileType::Directory, 0o777, 0, 50);
        assert_eq!(user.new_node_owner(&plain, false, 0o644), (1, 1, 0o644));
    }

    #[test]
    fn capset_cannot_grow_the_permitted_set() {
        let mut creds = Credentials::root();
        creds.capset(0, 1, 0).unwrap();
        assert_eq!(creds.capset(3, 3, 0), Err(Errno::EPERM));
        assert_eq!(creds.capset(2, 1, 0), Err(Errno::EPERM));
        creds.capset(1, 1, 0).unwrap();
    }

    #[test]
    fn access_checks_use_the_real_ids() {
        let mut creds = Credentials::root();
        creds.setresuid(1000, 0, 0).unwrap();
        let real = creds.for_access_check();
        assert_eq!(real.fsuid, 1000);
        assert_eq!(real.cap_effective, 0);
    }
}
