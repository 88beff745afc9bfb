//! The fake server's wire helpers: times, names, READDIR records, and the extended-attribute
//! requests, answered as virtiofsd answers them.

use crate::protocol::{self as proto, op};
use alloc::sync::Arc;
use alloc::vec::Vec;
use libos_core::{Errno, Result};
use libos_vfs::{FileType, Node, Timestamp, XattrSet};
use zerocopy::{FromBytes, IntoBytes};

pub(super) fn split(nanos: u64) -> (u64, u32) {
    (nanos / 1_000_000_000, (nanos % 1_000_000_000) as u32)
}

pub(super) fn time(secs: u64, nanos: u32) -> Timestamp {
    Timestamp(secs * 1_000_000_000 + u64::from(nanos))
}

/// The NUL-terminated UTF-8 name at the start of `bytes`.
pub(super) fn cstr(bytes: &[u8]) -> Result<&str> {
    let end = bytes.iter().position(|&b| b == 0).ok_or(Errno::EINVAL)?;
    core::str::from_utf8(&bytes[..end]).map_err(|_| Errno::EINVAL)
}

/// READDIR the way virtiofsd answers it: `.` (off 1) and `..` (off 2) first, then the
/// directory's entries, each with the cookie after it (ramfs cookie + 2); whole records only.
pub(super) fn readdir(dir: &Arc<dyn Node>, offset: u64, size: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut push = |ino: u64, off: u64, dtype: u32, name: &[u8]| {
        if out.len() + proto::dirent_size(name.len()) > size {
            return false;
        }
        proto::push_dirent(&mut out, ino, off, dtype, name);
        true
    };
    let dir_dtype = proto::dtype_of(FileType::Directory);
    if offset == 0 && !push(dir.ino(), 1, dir_dtype, b".") {
        return Ok(out);
    }
    if offset <= 1 && !push(dir.ino(), 2, dir_dtype, b"..") {
        return Ok(out);
    }
    let mut cookie = offset.saturating_sub(2);
    while let Some(entry) = dir.read_dir(cookie)? {
        if !push(entry.ino, entry.next_cookie + 2, proto::dtype_of(entry.file_type), entry.name.as_bytes()) {
            break;
        }
        cookie = entry.next_cookie;
    }
    Ok(out)
}

/// GETXATTR, LISTXATTR (a `fuse_getxattr_in`: size 0 asks for the size, a smaller buffer
/// than the answer is `ERANGE`), SETXATTR (the 8-byte compat header: size, flags; then the
/// name and the value) and REMOVEXATTR of `node`.
pub(super) fn xattr(opcode: u32, node: &Arc<dyn Node>, body: &[u8]) -> Result<Vec<u8>> {
    let sized = |answer: Vec<u8>, size: u32| {
        if size == 0 {
            Ok(proto::fuse_getxattr_out { size: answer.len() as u32, padding: 0 }.as_bytes().to_vec())
        } else if answer.len() > size as usize {
            Err(Errno::ERANGE)
        } else {
            Ok(answer)
        }
    };
    match opcode {
        op::GETXATTR => {
            let (request, name) = proto::fuse_getxattr_in::read_from_prefix(body).map_err(|_| Errno::EINVAL)?;
            sized(node.get_xattr(cstr(name)?)?, request.size)
        }
        op::LISTXATTR => {
            let request = proto::fuse_getxattr_in::read_from_bytes(body).map_err(|_| Errno::EINVAL)?;
            let mut list = Vec::new();
            for name in node.list_xattr()? {
                list.extend_from_slice(name.as_bytes());
                list.push(0);
            }
            sized(list, request.size)
        }
        op::SETXATTR => {
            let (header, rest) = <[u32; 2]>::read_from_prefix(body).map_err(|_| Errno::EINVAL)?;
            let [size, flags] = header;
            let name = cstr(rest)?;
            let value = &rest[name.len() + 1..];
            if value.len() != size as usize {
                return Err(Errno::EINVAL);
            }
            let how = match flags {
                0 => XattrSet::Either,
                1 => XattrSet::Create,
                2 => XattrSet::Replace,
                _ => return Err(Errno::EINVAL),
            };
            node.set_xattr(name, value, how).map(|()| Vec::new())
        }
        op::REMOVEXATTR => node.remove_xattr(cstr(body)?).map(|()| Vec::new()),
        _ => Err(Errno::ENOSYS),
    }
}
