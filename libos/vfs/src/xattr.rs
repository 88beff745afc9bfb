//! Extended attributes (`getxattr`, `setxattr`, `listxattr`, `removexattr` and their `l` and
//! `f` forms), with Linux's rules above the file systems:
//!
//! - **Names** carry a namespace prefix: `user.`, `trusted.`, `security.` or `system.`.
//!   Another prefix is `EOPNOTSUPP`; a prefix with nothing after it is `EINVAL`; a name is 1
//!   to [`XATTR_NAME_MAX`] bytes (`ERANGE`), a value at most [`XATTR_SIZE_MAX`] (`E2BIG`).
//! - **Who may** (Linux's `xattr_permission` and the capability module's checks):
//!   `user.*` lives only on regular files and directories (elsewhere: reading is `ENODATA`,
//!   writing `EPERM`), needs read or write permission on the file (`EACCES`), and in a
//!   sticky directory only its owner (or `CAP_FOWNER`) may write one (`EPERM`); `trusted.*`
//!   needs `CAP_SYS_ADMIN` (without it: reading is `ENODATA`, writing `EPERM`, listing hides
//!   them); `security.*` is readable by anyone and written with `CAP_SYS_ADMIN`
//!   (`security.capability`: `CAP_SETFCAP` and a well-formed capability set, else `EINVAL`);
//!   `system.*` holds POSIX ACLs, which no libos file system stores (`EOPNOTSUPP`).
//! - **Changes** (set, remove) need a writable file system (`EROFS`) and set the file's
//!   change time (the file system does that, see [`crate::Node::set_xattr`]).
//!
//! File systems keep the attributes: [`XattrMap`] is a small in-memory store for those that
//! hold them in RAM (ramfs, TinyFs); ext2 keeps them in an attribute block on disk, virtio-fs
//! asks its server.

use crate::cred::{Access, Cap, CredCell, S_ISVTX};
use crate::node::Node;
use crate::types::FileType;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use libos_core::{Errno, Result};

/// The longest attribute name, prefix included (Linux's `XATTR_NAME_MAX`).
pub const XATTR_NAME_MAX: usize = 255;
/// The largest attribute value (Linux's `XATTR_SIZE_MAX`).
pub const XATTR_SIZE_MAX: usize = 65536;
/// The largest name list `listxattr` returns (Linux's `XATTR_LIST_MAX`): longer is `E2BIG`.
pub const XATTR_LIST_MAX: usize = 65536;

/// How `setxattr` treats an existing attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XattrSet {
    /// Create it or replace it (flags 0).
    Either,
    /// Create it; `EEXIST` if it exists (`XATTR_CREATE`).
    Create,
    /// Replace it; `ENODATA` if it does not exist (`XATTR_REPLACE`).
    Replace,
}

/// The namespace an attribute name belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    /// `user.`: for programs, on regular files and directories.
    User,
    /// `trusted.`: for privileged programs only.
    Trusted,
    /// `security.`: security labels and file capabilities.
    Security,
    /// `system.`: POSIX ACLs.
    System,
}

impl Namespace {
    const ALL: [(Namespace, &'static str); 4] = [
        (Namespace::User, "user."),
        (Namespace::Trusted, "trusted."),
        (Namespace::Security, "security."),
        (Namespace::System, "system."),
    ];

    /// The namespace of `name` and the part after its prefix: `ERANGE` for an empty or too
    /// long name, `EOPNOTSUPP` for an unknown prefix, `EINVAL` for a bare prefix.
    pub fn of(name: &str) -> Result<(Namespace, &str)> {
        if name.is_empty() || name.len() > XATTR_NAME_MAX {
            return Err(Errno::ERANGE);
        }
        let (namespace, rest) = Namespace::ALL
            .iter()
            .find_map(|&(namespace, prefix)| name.strip_prefix(prefix).map(|rest| (namespace, rest)))
            .ok_or(Errno::EOPNOTSUPP)?;
        if rest.is_empty() {
            return Err(Errno::EINVAL);
        }
        Ok((namespace, rest))
    }

    /// The prefix names of this namespace start with (`user.`, ...).
    pub fn prefix(self) -> &'static str {
        Namespace::ALL.iter().find(|(namespace, _)| *namespace == self).map_or("", |(_, prefix)| prefix)
    }
}

/// The file-capability attribute (`XATTR_NAME_CAPS`).
const CAPABILITY: &str = "security.capability";

/// Whether `value` is a capability set Linux accepts for `security.capability`
/// (`struct vfs_cap_data`, revision 1, 2 or 3, with the size of its revision).
fn is_capability_set(value: &[u8]) -> bool {
    let Some(magic) = value.get(..4).map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]])) else {
        return false;
    };
    matches!((magic & 0xff00_0000, value.len()), (0x0100_0000, 12) | (0x0200_0000, 20) | (0x0300_0000, 24))
}

/// `xattr_permission` with the capability module's checks, for reading (`write` false) or
/// changing attribute `name` of `node`.
fn check_access(creds: &CredCell, node: &dyn Node, name: &str, write: bool) -> Result<()> {
    let namespace = Namespace::of(name).map(|(namespace, _)| namespace);
    let caller = creds.get();
    match namespace {
        Ok(Namespace::System) => return Err(Errno::EOPNOTSUPP),
        Ok(Namespace::Security) if !write => return Ok(()),
        Ok(Namespace::Security) if name == CAPABILITY => {
            return if caller.capable(Cap::Setfcap) { Ok(()) } else { Err(Errno::EPERM) };
        }
        Ok(Namespace::Security) => {
            return if caller.capable(Cap::SysAdmin) { Ok(()) } else { Err(Errno::EPERM) };
        }
        Ok(Namespace::Trusted) if !caller.capable(Cap::SysAdmin) => {
            return Err(if write { Errno::EPERM } else { Errno::ENODATA });
        }
        Ok(Namespace::Trusted) => return Ok(()),
        Ok(Namespace::User) => match node.file_type() {
            FileType::Regular => {}
            FileType::Directory if write => {
                let meta = node.metadata()?;
                if meta.perm & S_ISVTX != 0 && !caller.owns_or_capable(meta.uid) {
                    return Err(Errno::EPERM);
                }
            }
            FileType::Directory => {}
            _ => return Err(if write { Errno::EPERM } else { Errno::ENODATA }),
        },
        // An unknown prefix: the file's permission first, as Linux, then EOPNOTSUPP.
        Err(_) => {}
    }
    creds.check(node, if write { Access::WRITE } else { Access::READ })?;
    namespace.map(drop)
}

/// `getxattr`: the value of `name`.
pub(crate) fn get(creds: &CredCell, node: &dyn Node, name: &str) -> Result<Vec<u8>> {
    check_access(creds, node, name, false)?;
    node.get_xattr(name)
}

/// `setxattr`: sets `name` to `value` as `how` says; `read_only`: the file system is.
pub(crate) fn set(creds: &CredCell, node: &dyn Node, read_only: bool, name: &str, value: &[u8], how: XattrSet) -> Result<()> {
    if value.len() > XATTR_SIZE_MAX {
        return Err(Errno::E2BIG);
    }
    if read_only {
        return Err(Errno::EROFS);
    }
    check_access(creds, node, name, true)?;
    if name == CAPABILITY && !is_capability_set(value) {
        return Err(Errno::EINVAL);
    }
    node.set_xattr(name, value, how)
}

/// `removexattr`: removes `name`.
pub(crate) fn remove(creds: &CredCell, node: &dyn Node, read_only: bool, name: &str) -> Result<()> {
    if read_only {
        return Err(Errno::EROFS);
    }
    check_access(creds, node, name, true)?;
    node.remove_xattr(name)
}

/// `listxattr`: the names the caller may see (`trusted.*` only with `CAP_SYS_ADMIN`), in the
/// file system's order.
pub(crate) fn list(creds: &CredCell, node: &dyn Node) -> Result<Vec<String>> {
    let mut names = node.list_xattr()?;
    if !creds.get().capable(Cap::SysAdmin) {
        names.retain(|name| !name.starts_with(Namespace::Trusted.prefix()));
    }
    Ok(names)
}

/// Extended attributes kept in memory: what a RAM file system stores per node. The names'
/// list stays within [`XATTR_LIST_MAX`] (a set that would pass it is `ENOSPC`), so
/// `listxattr` can always return it.
#[derive(Default)]
pub struct XattrMap {
    entries: BTreeMap<String, Vec<u8>>,
    /// Bytes of the `listxattr` answer: every name and its NUL.
    list_len: usize,
}

impl XattrMap {
    /// An empty store.
    pub const fn new() -> XattrMap {
        XattrMap { entries: BTreeMap::new(), list_len: 0 }
    }

    /// The value of `name`, or `ENODATA`.
    pub fn get(&self, name: &str) -> Result<Vec<u8>> {
        self.entries.get(name).cloned().ok_or(Errno::ENODATA)
    }

    /// Sets `name` to `value` as `how` says (`EEXIST`, `ENODATA`), or `ENOSPC` when the name
    /// list would outgrow [`XATTR_LIST_MAX`] or memory runs out.
    pub fn set(&mut self, name: &str, value: &[u8], how: XattrSet) -> Result<()> {
        let exists = self.entries.contains_key(name);
        match how {
            XattrSet::Create if exists => return Err(Errno::EEXIST),
            XattrSet::Replace if !exists => return Err(Errno::ENODATA),
            _ => {}
        }
        let list_len = if exists { self.list_len } else { self.list_len + name.len() + 1 };
        if list_len > XATTR_LIST_MAX {
            return Err(Errno::ENOSPC);
        }
        let mut copy = Vec::new();
        copy.try_reserve_exact(value.len()).map_err(|_| Errno::ENOSPC)?;
        copy.extend_from_slice(value);
        self.entries.insert(String::from(name), copy);
        self.list_len = list_len;
        Ok(())
    }

    /// Removes `name`, or `ENODATA`.
    pub fn remove(&mut self, name: &str) -> Result<()> {
        self.entries.remove(name).ok_or(Errno::ENODATA)?;
        self.list_len -= name.len() + 1;
        Ok(())
    }

    /// Every name, in byte order.
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_linux_does() {
        assert_eq!(Namespace::of("user.a"), Ok((Namespace::User, "a")));
        assert_eq!(Namespace::of("security.selinux"), Ok((Namespace::Security, "selinux")));
        assert_eq!(Namespace::of("user."), Err(Errno::EINVAL));
        assert_eq!(Namespace::of("other.a"), Err(Errno::EOPNOTSUPP));
        assert_eq!(Namespace::of("user"), Err(Errno::EOPNOTSUPP));
        assert_eq!(Namespace::of(""), Err(Errno::ERANGE));
        let long = alloc::format!("user.{}", "x".repeat(XATTR_NAME_MAX - 5));
        assert!(Namespace::of(&long).is_ok());
        assert_eq!(Namespace::of(&alloc::format!("{long}x")), Err(Errno::ERANGE));
    }

    #[test]
    fn capability_sets_have_their_revisions_size() {
        let set = |magic: u32, len: usize| {
            let mut value = alloc::vec![0u8; len];
            value[..4].copy_from_slice(&magic.to_le_bytes());
            is_capability_set(&value)
        };
        assert!(set(0x0200_0001, 20));
        assert!(set(0x0300_0000, 24));
        assert!(set(0x0100_0000, 12));
        assert!(!set(0x0200_0000, 24));
        assert!(!set(0x0400_0000, 20));
        assert!(!is_capability_set(b"ab"));
    }

    #[test]
    fn the_map_keeps_its_list_within_the_limit() {
        let mut map = XattrMap::new();
        assert_eq!(map.set("user.a", b"1", XattrSet::Replace), Err(Errno::ENODATA));
        map.set("user.a", b"1", XattrSet::Create).unwrap();
        assert_eq!(map.set("user.a", b"2", XattrSet::Create), Err(Errno::EEXIST));
        map.set("user.a", b"", XattrSet::Replace).unwrap();
        assert_eq!(map.get("user.a"), Ok(Vec::new()));
        let name = |i: usize| alloc::format!("user.{i:0250}");
        let mut added = 0;
        while map.set(&name(added), b"v", XattrSet::Either).is_ok() {
            added += 1;
        }
        // 7 + 256 * added bytes: the last that fits.
        assert_eq!(added, (XATTR_LIST_MAX - 7) / 256);
        assert_eq!(map.set(&name(added), b"v", XattrSet::Either), Err(Errno::ENOSPC));
        map.remove("user.a").unwrap();
        assert_eq!(map.remove("user.a"), Err(Errno::ENODATA));
        assert_eq!(map.names().len(), added);
    }
}
