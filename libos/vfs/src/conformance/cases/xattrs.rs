//! Extended attributes (issue 18): what a file system stores (values of any size up to a few
//! KiB, empty values, `XATTR_CREATE`/`XATTR_REPLACE`, removal, the change time) and the
//! rules the VFS applies above it ([`crate::xattr`]), for root and an unprivileged caller.
//!
//! Storing `trusted.*` and `security.*` attributes is a case of its own
//! ([`privileged_attribute_namespaces`]): a virtio-fs host daemon without `CAP_SYS_ADMIN`
//! (virtiofsd keeps none by default) refuses them for every guest, Linux's too, so a suite run
//! on such a share leaves that case out and says why (`apps/vfs-conformance`).

use super::*;
use crate::xattr::XattrSet;
use crate::NewNode;

/// The names `list` gives for `path`, sorted (file systems list in their own order).
fn listed(vfs: &Vfs, path: &str, follow: bool) -> Result<Vec<String>, Errno> {
    let mut names = vfs.list_xattr(path, follow)?;
    names.sort();
    Ok(names)
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

/// Values stored, replaced, listed and removed; `EEXIST`/`ENODATA` from the flags; the
/// change time moves with every change; names and sizes checked before the file system.
pub(super) fn extended_attributes(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(write_file(&vfs, "/f", b"data"));
    eq!(ok!(listed(&vfs, "/f", true)), Vec::<String>::new());
    err!(vfs.get_xattr("/f", true, "user.none"), ENODATA);
    let before = ok!(vfs.metadata("/f"));
    ok!(vfs.set_xattr("/f", true, "user.colour", b"blue", XattrSet::Either));
    let after = ok!(vfs.metadata("/f"));
    check!(after.ctime > before.ctime, "setxattr moves the ctime");
    eq!(after.mtime, before.mtime);
    eq!(ok!(vfs.get_xattr("/f", true, "user.colour")), b"blue".to_vec());
    err!(vfs.set_xattr("/f", true, "user.colour", b"red", XattrSet::Create), EEXIST);
    err!(vfs.set_xattr("/f", true, "user.shape", b"round", XattrSet::Replace), ENODATA);
    ok!(vfs.set_xattr("/f", true, "user.colour", b"a longer value than before", XattrSet::Replace));
    eq!(ok!(vfs.get_xattr("/f", true, "user.colour")), b"a longer value than before".to_vec());
    ok!(vfs.set_xattr("/f", true, "user.colour", b"red", XattrSet::Either));
    ok!(vfs.set_xattr("/f", true, "user.empty", b"", XattrSet::Create));
    eq!(ok!(vfs.get_xattr("/f", true, "user.empty")), Vec::<u8>::new());
    // 600 bytes: room for it and the others in one 1 KiB ext2 attribute block.
    let big = pattern(600, 7);
    ok!(vfs.set_xattr("/f", true, "user.big", &big, XattrSet::Either));
    eq!(ok!(listed(&vfs, "/f", true)), strings(&["user.big", "user.colour", "user.empty"]));
    eq!(ok!(vfs.get_xattr("/f", true, "user.big")), big);
    eq!(ok!(vfs.get_xattr("/f", true, "user.colour")), b"red".to_vec());
    eq!(ok!(read_file(&vfs, "/f")), b"data".to_vec());
    let before = ok!(vfs.metadata("/f"));
    ok!(vfs.remove_xattr("/f", true, "user.colour"));
    check!(ok!(vfs.metadata("/f")).ctime > before.ctime, "removexattr moves the ctime");
    err!(vfs.remove_xattr("/f", true, "user.colour"), ENODATA);
    err!(vfs.get_xattr("/f", true, "user.colour"), ENODATA);
    eq!(ok!(listed(&vfs, "/f", true)), strings(&["user.big", "user.empty"]));
    // Checked before the file system: names, sizes, namespaces, capability sets.
    err!(vfs.set_xattr("/f", true, "colour", b"x", XattrSet::Either), EOPNOTSUPP);
    err!(vfs.get_xattr("/f", true, "os2.colour"), EOPNOTSUPP);
    err!(vfs.set_xattr("/f", true, "user.", b"x", XattrSet::Either), EINVAL);
    err!(vfs.get_xattr("/f", true, ""), ERANGE);
    err!(vfs.get_xattr("/f", true, &format!("user.{}", "n".repeat(251))), ERANGE);
    err!(vfs.set_xattr("/f", true, "user.huge", &vec![0u8; 65537], XattrSet::Either), E2BIG);
    err!(vfs.set_xattr("/f", true, "system.posix_acl_access", b"x", XattrSet::Either), EOPNOTSUPP);
    err!(vfs.set_xattr("/f", true, "security.capability", b"not a capability set", XattrSet::Either), EINVAL);
    err!(vfs.get_xattr("/missing", true, "user.a"), ENOENT);
    // Directories hold them; a new file of an old name starts with none.
    ok!(vfs.mkdir("/d", 0o755));
    ok!(vfs.set_xattr("/d", true, "user.dir", b"D", XattrSet::Either));
    eq!(ok!(vfs.get_xattr("/d", true, "user.dir")), b"D".to_vec());
    ok!(vfs.unlink("/f"));
    ok!(write_file(&vfs, "/f", b"new"));
    eq!(ok!(listed(&vfs, "/f", true)), Vec::<String>::new());
    Ok(())
}

/// Through descriptors and symlinks: an open file's attributes whatever its access mode,
/// `O_PATH` handles refused (`EBADF`); `user.*` never on a symlink or special file (setting
/// is `EPERM`, reading `ENODATA`), but following the link reaches its target.
pub(super) fn extended_attributes_of_links_and_descriptors(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(write_file(&vfs, "/f", b"data"));
    let reader = ok!(vfs.open("/f", OpenFlags::RDONLY, 0));
    ok!(reader.set_xattr("user.fd", b"via fd", XattrSet::Create));
    eq!(ok!(reader.get_xattr("user.fd")), b"via fd".to_vec());
    eq!(ok!(reader.list_xattr()), strings(&["user.fd"]));
    eq!(ok!(vfs.get_xattr("/f", true, "user.fd")), b"via fd".to_vec());
    ok!(reader.remove_xattr("user.fd"));
    err!(reader.get_xattr("user.fd"), ENODATA);
    let handle = ok!(vfs.open("/f", OpenFlags::PATH, 0));
    err!(handle.get_xattr("user.fd"), EBADF);
    err!(handle.set_xattr("user.fd", b"x", XattrSet::Either), EBADF);
    err!(handle.list_xattr(), EBADF);
    ok!(vfs.symlink("f", "/link"));
    err!(vfs.set_xattr("/link", false, "user.l", b"x", XattrSet::Either), EPERM);
    err!(vfs.get_xattr("/link", false, "user.l"), ENODATA);
    ok!(vfs.set_xattr("/link", true, "user.l", b"target", XattrSet::Either));
    eq!(ok!(vfs.get_xattr("/f", true, "user.l")), b"target".to_vec());
    eq!(ok!(listed(&vfs, "/link", true)), strings(&["user.l"]));
    eq!(ok!(listed(&vfs, "/link", false)), Vec::<String>::new());
    ok!(vfs.mknod("/fifo", NewNode::Fifo, 0o666));
    err!(vfs.set_xattr("/fifo", true, "user.p", b"x", XattrSet::Either), EPERM);
    err!(vfs.get_xattr("/fifo", true, "user.p"), ENODATA);
    Ok(())
}

/// An unprivileged caller: `user.*` by the file's read and write permissions (`EACCES`),
/// only the owner in a sticky directory (`EPERM`); `trusted.*` invisible (`ENODATA`) and
/// unwritable (`EPERM`), `security.*` unwritable (`EPERM`), decided before the file system.
pub(super) fn extended_attribute_permissions(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(vfs.mkdir("/w", 0o777));
    ok!(vfs.set_permissions("/w", 0o777, true));
    ok!(write_file(&vfs, "/w/public", b"p"));
    ok!(vfs.set_permissions("/w/public", 0o644, true));
    ok!(write_file(&vfs, "/w/private", b"s"));
    ok!(vfs.set_permissions("/w/private", 0o600, true));
    for path in ["/w/public", "/w/private"] {
        ok!(vfs.set_xattr(path, true, "user.a", b"A", XattrSet::Either));
    }
    ok!(vfs.mkdir("/sticky", 0o777));
    ok!(vfs.set_permissions("/sticky", 0o1777, true));
    vfs.set_credentials(posix::user());
    eq!(ok!(vfs.get_xattr("/w/public", true, "user.a")), b"A".to_vec());
    err!(vfs.set_xattr("/w/public", true, "user.a", b"mine", XattrSet::Either), EACCES);
    err!(vfs.remove_xattr("/w/public", true, "user.a"), EACCES);
    err!(vfs.get_xattr("/w/private", true, "user.a"), EACCES);
    eq!(ok!(listed(&vfs, "/w/private", true)), strings(&["user.a"]));
    err!(vfs.get_xattr("/w/public", true, "trusted.t"), ENODATA);
    err!(vfs.set_xattr("/w/public", true, "trusted.t", b"x", XattrSet::Either), EPERM);
    err!(vfs.set_xattr("/w/public", true, "security.s", b"x", XattrSet::Either), EPERM);
    err!(vfs.set_xattr("/sticky", true, "user.a", b"x", XattrSet::Either), EPERM);
    ok!(write_file(&vfs, "/w/mine", b"m"));
    ok!(vfs.set_xattr("/w/mine", true, "user.mine", b"M", XattrSet::Create));
    eq!(ok!(vfs.get_xattr("/w/mine", true, "user.mine")), b"M".to_vec());
    Ok(())
}

/// `trusted.*` and `security.*` stored by root (on symlinks too); an unprivileged caller
/// reads `security.*`, and neither sees nor reads `trusted.*` (left out of lists).
pub(super) fn privileged_attribute_namespaces(f: &dyn FileSystemFactory) -> Outcome {
    let vfs = fresh(f)?;
    ok!(write_file(&vfs, "/f", b"data"));
    ok!(vfs.set_permissions("/f", 0o644, true));
    ok!(vfs.set_xattr("/f", true, "user.u", b"U", XattrSet::Either));
    ok!(vfs.set_xattr("/f", true, "trusted.t", b"T", XattrSet::Create));
    ok!(vfs.set_xattr("/f", true, "security.s", b"S", XattrSet::Create));
    eq!(ok!(listed(&vfs, "/f", true)), strings(&["security.s", "trusted.t", "user.u"]));
    eq!(ok!(vfs.get_xattr("/f", true, "trusted.t")), b"T".to_vec());
    ok!(vfs.symlink("f", "/link"));
    ok!(vfs.set_xattr("/link", false, "security.label", b"L", XattrSet::Create));
    eq!(ok!(vfs.get_xattr("/link", false, "security.label")), b"L".to_vec());
    err!(vfs.get_xattr("/f", true, "security.label"), ENODATA);
    vfs.set_credentials(posix::user());
    eq!(ok!(listed(&vfs, "/f", true)), strings(&["security.s", "user.u"]));
    eq!(ok!(vfs.get_xattr("/f", true, "security.s")), b"S".to_vec());
    err!(vfs.get_xattr("/f", true, "trusted.t"), ENODATA);
    err!(vfs.remove_xattr("/f", true, "security.s"), EPERM);
    vfs.set_credentials(crate::Credentials::root());
    ok!(vfs.remove_xattr("/f", true, "trusted.t"));
    eq!(ok!(listed(&vfs, "/f", true)), strings(&["security.s", "user.u"]));
    Ok(())
}
