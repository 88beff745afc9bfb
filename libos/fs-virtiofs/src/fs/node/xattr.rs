//! Extended attributes through the server: `FUSE_GETXATTR`, `FUSE_SETXATTR`,
//! `FUSE_LISTXATTR`, `FUSE_REMOVEXATTR`. The host file system stores them (virtiofsd needs
//! `--xattr`, which `./x` passes). A server without them answers `ENOSYS`, which becomes
//! `EOPNOTSUPP`, as Linux's FUSE client reports it.
//!
//! Values and lists are fetched in one request into a small buffer; only when the server
//! says it is too small (`ERANGE`) is the size asked for, and the request repeated with a
//! buffer of that size (at most [`XATTR_SIZE_MAX`] or [`XATTR_LIST_MAX`]).

use super::{FuseNode, name_parts};
use super::super::{ReplyData, Target};
use crate::protocol::{self as proto, op};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use libos_core::{Errno, Result};
use libos_vfs::XattrSet;
use libos_vfs::xattr::{XATTR_LIST_MAX, XATTR_SIZE_MAX};
use zerocopy::IntoBytes;

/// The first buffer for a value or a list: most values (labels, small user attributes) fit.
const FIRST_TRY: usize = 256;

/// `ENOSYS` (the server has no such request) as Linux's FUSE client answers it.
fn supported<T>(result: Result<T>) -> Result<T> {
    result.map_err(|e| if e == Errno::ENOSYS { Errno::EOPNOTSUPP } else { e })
}

impl FuseNode {
    /// GETXATTR `name` or LISTXATTR (`name` empty) into a buffer of the right size: the
    /// reply's bytes. `limit` bounds what the server may claim (`EIO` beyond it).
    fn fetch(&self, opcode: u32, target: Target, name: &str, limit: usize) -> Result<Vec<u8>> {
        let [name_bytes, nul] = name_parts(name);
        let ask = |size: usize, reply: ReplyData<'_>| {
            let request = proto::fuse_getxattr_in { size: size as u32, padding: 0 };
            let with_name = [request.as_bytes(), name_bytes, nul];
            let body = if name.is_empty() { &with_name[..1] } else { &with_name[..] };
            self.session.call(opcode, target, body, reply)
        };
        let mut buf = vec![0u8; FIRST_TRY];
        let n = match ask(FIRST_TRY, ReplyData::Upto(&mut buf)) {
            Err(Errno::ERANGE) => {
                let mut out = proto::fuse_getxattr_out::default();
                ask(0, ReplyData::Fixed(out.as_mut_bytes()))?;
                let size = out.size as usize;
                if size > limit {
                    log::warn!("virtio-fs: the server claims a {size}-byte attribute or list");
                    return Err(Errno::EIO);
                }
                buf = vec![0u8; size];
                // ERANGE again: the value grew in between (as Linux, the caller sees it).
                ask(size, ReplyData::Upto(&mut buf))?
            }
            other => other?,
        };
        buf.truncate(n);
        Ok(buf)
    }

    /// GETXATTR `name`.
    pub(super) fn xattr(&self, name: &str) -> Result<Vec<u8>> {
        supported(self.fetch(op::GETXATTR, self.target()?, name, XATTR_SIZE_MAX))
    }

    /// SETXATTR `name` = `value` with `how`'s flag.
    pub(super) fn set_xattr_request(&self, name: &str, value: &[u8], how: XattrSet) -> Result<()> {
        const XATTR_CREATE: u32 = 1;
        const XATTR_REPLACE: u32 = 2;
        let flags = match how {
            XattrSet::Either => 0,
            XattrSet::Create => XATTR_CREATE,
            XattrSet::Replace => XATTR_REPLACE,
        };
        // Without FUSE_SETXATTR_EXT (not negotiated) the request has the 8-byte compat form.
        let [size, flags] = [value.len() as u32, flags].map(u32::to_le_bytes);
        let [n, nul] = name_parts(name);
        let result = self.session.call_empty(op::SETXATTR, self.target()?, &[&size, &flags, n, nul, value]);
        self.stale();
        supported(result)
    }

    /// LISTXATTR: the names, split at their NULs.
    pub(super) fn xattr_names(&self) -> Result<Vec<String>> {
        let list = supported(self.fetch(op::LISTXATTR, self.target()?, "", XATTR_LIST_MAX))?;
        list.split(|&b| b == 0)
            .filter(|name| !name.is_empty())
            .map(|name| {
                String::from_utf8(name.to_vec()).map_err(|_| {
                    log::warn!("virtio-fs: node {} has an attribute name that is not UTF-8", self.nodeid());
                    Errno::EIO
                })
            })
            .collect()
    }

    /// REMOVEXATTR `name`.
    pub(super) fn remove_xattr_request(&self, name: &str) -> Result<()> {
        let result = self.session.call_empty(op::REMOVEXATTR, self.target()?, &name_parts(name));
        self.stale();
        supported(result)
    }
}
