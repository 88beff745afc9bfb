//! The attribute changes a path and an open file share (`chmod`/`fchmod`, `chown`/`fchown`,
//! `utimensat`/`futimens`, and truncation), with Linux's permission rules and side effects:
//! who may change what (`EPERM`/`EACCES`), the set-group-id bit a chmod drops, the set-id bits
//! a chown drops, the change time every successful change sets.

use crate::cred::{Access, Cap, CredCell, S_ISGID, S_ISUID};
use crate::node::Node;
use crate::types::{FileType, SetAttr, TimeUpdate};
use crate::vfs::names_changed;
use libos_core::{Errno, Result};

/// Group execute.
const S_IXGRP: u32 = 0o010;

/// `chmod`: the owner or `CAP_FOWNER` (`EPERM`); the set-group-id bit is dropped when the
/// caller is outside the file's group without `CAP_FSETID`.
pub(crate) fn chmod(creds: &CredCell, node: &dyn Node, perm: u32) -> Result<()> {
    let perm = perm & 0o7777;
    let perm = if creds.privileged() {
        perm
    } else {
        let (creds, meta) = (creds.get(), node.metadata()?);
        if !creds.owns_or_capable(meta.uid) {
            return Err(Errno::EPERM);
        }
        creds.chmod_bits(meta.gid, perm)
    };
    set_access_attr(node, &SetAttr::perm(perm))
}

/// `chown` (`None`: keep that id). Changing the owner needs `CAP_CHOWN` (the owner may "change"
/// it to itself); changing the group needs ownership and membership of the new group, or
/// `CAP_CHOWN` (`EPERM`). A non-directory loses set-user-id, and set-group-id where group
/// execute is set or the caller is outside the group without `CAP_FSETID` (even root: Linux
/// does the same, so a chowned binary does not keep privileges meant for the old owner).
pub(crate) fn chown(creds: &CredCell, node: &dyn Node, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
    let (creds, meta) = (creds.get(), node.metadata()?);
    let may_chown = creds.capable(Cap::Chown);
    if let Some(uid) = uid
        && !(may_chown || (creds.fsuid == meta.uid && uid == meta.uid))
    {
        return Err(Errno::EPERM);
    }
    if let Some(gid) = gid
        && !(may_chown || (creds.fsuid == meta.uid && (gid == meta.gid || creds.in_group(gid))))
    {
        return Err(Errno::EPERM);
    }
    let mut attr = SetAttr { uid, gid, ..SetAttr::NONE };
    if meta.file_type != FileType::Directory {
        let mut perm = meta.perm & !S_ISUID;
        let drop_sgid = perm & S_IXGRP != 0 || !(creds.in_group(meta.gid) || creds.capable(Cap::Fsetid));
        if perm & S_ISGID != 0 && drop_sgid {
            perm &= !S_ISGID;
        }
        if perm != meta.perm {
            attr.perm = Some(perm);
        }
    }
    set_access_attr(node, &attr)
}

/// Sets a mode or owner: for a directory, that decides who may search it, so walks cached
/// through it are forgotten ([`names_changed`], counted even after an error).
fn set_access_attr(node: &dyn Node, attr: &SetAttr) -> Result<()> {
    let set = node.set_attr(attr);
    if node.file_type().is_dir() {
        names_changed();
    }
    set
}

/// `utimensat`: setting both times to now needs ownership, write permission or
/// `CAP_FOWNER`/`CAP_DAC_OVERRIDE` (`EACCES`); setting a given time needs ownership or
/// `CAP_FOWNER` (`EPERM`). Both [`TimeUpdate::Keep`]: nothing changes.
pub(crate) fn set_times(creds: &CredCell, node: &dyn Node, atime: TimeUpdate, mtime: TimeUpdate) -> Result<()> {
    if atime == TimeUpdate::Keep && mtime == TimeUpdate::Keep {
        return Ok(());
    }
    if !creds.privileged() {
        let (creds, meta) = (creds.get(), node.metadata()?);
        let explicit = matches!(atime, TimeUpdate::To(_)) || matches!(mtime, TimeUpdate::To(_));
        if explicit && !creds.owns_or_capable(meta.uid) {
            return Err(Errno::EPERM);
        }
        if !explicit && !creds.owns_or_capable(meta.uid) && !creds.permits(&meta, Access::WRITE) {
            return Err(Errno::EACCES);
        }
    }
    node.set_attr(&SetAttr::times(atime, mtime))
}

/// Truncation of a regular file (the caller checked write access), then the set-id bits a
/// write drops.
pub(crate) fn truncate(creds: &CredCell, node: &dyn Node, size: u64) -> Result<()> {
    node.truncate(size)?;
    creds.after_write(node)
}
