//! Attribute, node and space calls over the VFS (feature `fs`): `chmod`/`fchmod`/
//! `fchmodat`/`fchmodat2`, `chown`/`fchown`/`lchown`/`fchownat`, `mknod`/`mknodat` (and so
//! `mkfifo`), `access`/`faccessat`/`faccessat2`, `fallocate`, `copy_file_range`, and the
//! extended-attribute calls (`getxattr` ... `fremovexattr`). The VFS checks permissions with
//! the process's credentials ([`crate::creds`]) and attribute names and rights
//! ([`libos::fs::vfs::xattr`]); this module only decodes arguments as Linux does.

use crate::fd::{self, Object};
use crate::files::{AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW, PathArg, vfs};
use crate::user;
use alloc::string::String;
use alloc::vec::Vec;
use libos::fs::vfs::xattr::{XATTR_LIST_MAX, XATTR_NAME_MAX, XATTR_SIZE_MAX};
use libos::fs::vfs::{Access, FileType, NewNode, OpenFile, PathAt, XattrSet};
use libos::{Errno, Result};

/// Runs `f` on the VFS file behind descriptor `fd_number`; `EBADF` for a bad descriptor and
/// `not_file` for another kind of object (a pipe, a socket).
fn with_file<T>(fd_number: u64, not_file: Errno, f: impl FnOnce(&OpenFile) -> Result<T>) -> Result<T> {
    match &*fd::get(fd_number)? {
        Object::File(file) => f(file),
        _ => Err(not_file),
    }
}

/// The descriptor itself when `path` is empty and `AT_EMPTY_PATH` is given.
fn is_empty_path(path: u64, flags: u64) -> Result<bool> {
    if flags & AT_EMPTY_PATH == 0 {
        return Ok(false);
    }
    // SAFETY: checked by `user::read`; the program passed a string.
    Ok(unsafe { user::read::<u8>(path)? } == 0)
}

/// `fchmodat2(dirfd, path, mode, flags)` (and `fchmodat`, `chmod` with flags 0).
/// `AT_SYMLINK_NOFOLLOW` on a symlink is `EOPNOTSUPP`, as Linux answers.
pub fn fchmodat(dirfd: u64, path: u64, mode: u64, flags: u64) -> Result<u64> {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    if is_empty_path(path, flags)? {
        return fchmod(dirfd, mode);
    }
    let mut arg = PathArg::new();
    let path = arg.read(dirfd, path)?;
    vfs()?.set_permissions(path, mode as u32 & 0o7777, flags & AT_SYMLINK_NOFOLLOW == 0)?;
    Ok(0)
}

/// `fchmod(fd, mode)`.
pub fn fchmod(fd_number: u64, mode: u64) -> Result<u64> {
    with_file(fd_number, Errno::EINVAL, |file| file.set_permissions(mode as u32 & 0o7777)).map(|()| 0)
}

/// A `uid_t`/`gid_t` argument: -1 keeps the id.
fn id_arg(arg: u64) -> Option<u32> {
    let id = arg as u32;
    (id != u32::MAX).then_some(id)
}

/// `fchownat(dirfd, path, uid, gid, flags)` (and `chown`, `lchown`).
pub fn fchownat(dirfd: u64, path: u64, uid: u64, gid: u64, flags: u64) -> Result<u64> {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    if is_empty_path(path, flags)? {
        return fchown(dirfd, uid, gid);
    }
    let mut arg = PathArg::new();
    let path = arg.read(dirfd, path)?;
    vfs()?.set_owner(path, id_arg(uid), id_arg(gid), flags & AT_SYMLINK_NOFOLLOW == 0)?;
    Ok(0)
}

/// `fchown(fd, uid, gid)`.
pub fn fchown(fd_number: u64, uid: u64, gid: u64) -> Result<u64> {
    with_file(fd_number, Errno::EINVAL, |file| file.set_owner(id_arg(uid), id_arg(gid))).map(|()| 0)
}

/// `mknodat(dirfd, path, mode, dev)`: a regular file (type 0 too), FIFO, socket name, or
/// character/block device node (`CAP_MKNOD`); `EINVAL` for a directory or unknown type.
/// The umask applies.
pub fn mknodat(dirfd: u64, path: u64, mode: u64, dev: u64) -> Result<u64> {
    let mode = mode as u32;
    let kind = match mode & 0o170_000 {
        0 => NewNode::File,
        bits => match FileType::from_mode(bits) {
            Some(FileType::Regular) => NewNode::File,
            Some(FileType::Fifo) => NewNode::Fifo,
            Some(FileType::Socket) => NewNode::Socket,
            Some(FileType::CharDevice) => NewNode::CharDevice(dev),
            Some(FileType::BlockDevice) => NewNode::BlockDevice(dev),
            _ => return Err(Errno::EINVAL),
        },
    };
    let mut arg = PathArg::new();
    let path = arg.read(dirfd, path)?;
    let perm = mode & 0o7777 & !crate::dispatch::umask_value();
    vfs()?.mknod(path, kind, perm)?;
    Ok(0)
}

/// `faccessat2(dirfd, path, mode, flags)` (and `faccessat`, `access` with flags 0): checks
/// with the real ids unless `AT_EACCESS`.
pub fn faccessat(dirfd: u64, path: u64, mode: u64, flags: u64) -> Result<u64> {
    const AT_EACCESS: u64 = 0x200;
    if mode & !7 != 0 || flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_EACCESS) != 0 {
        return Err(Errno::EINVAL);
    }
    let access = Access::from_bits_truncate(mode as u32);
    if is_empty_path(path, flags)? {
        // The descriptor's node: existence is given; permissions by its metadata.
        let meta = with_file(dirfd, Errno::EBADF, OpenFile::metadata)?;
        let creds = vfs()?.credentials();
        let creds = if flags & AT_EACCESS != 0 { (*creds).clone() } else { creds.for_access_check() };
        return if access.is_empty() || creds.permits(&meta, access) { Ok(0) } else { Err(Errno::EACCES) };
    }
    let mut arg = PathArg::new();
    let path = arg.read(dirfd, path)?;
    vfs()?.access(path, access, flags & AT_SYMLINK_NOFOLLOW == 0, flags & AT_EACCESS != 0)?;
    Ok(0)
}

/// `fallocate(fd, mode, offset, len)`: mode 0, `FALLOC_FL_KEEP_SIZE`, and
/// `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`; other modes `EOPNOTSUPP`. Pipes are
/// `ESPIPE`, other non-files `ENODEV`, as on Linux.
pub fn fallocate(fd_number: u64, mode: u64, offset: u64, len: u64) -> Result<u64> {
    const KEEP_SIZE: u64 = 1;
    const PUNCH_HOLE: u64 = 2;
    let (offset, len) = (offset as i64, len as i64);
    if offset < 0 || len <= 0 {
        return Err(Errno::EINVAL);
    }
    let object = fd::get(fd_number)?;
    let file = match &*object {
        Object::File(file) => file,
        Object::Pipe(_) => return Err(Errno::ESPIPE),
        _ => return Err(Errno::ENODEV),
    };
    match mode {
        0 | KEEP_SIZE => file.allocate(offset as u64, len as u64, mode == KEEP_SIZE)?,
        m if m == PUNCH_HOLE | KEEP_SIZE => file.punch_hole(offset as u64, len as u64)?,
        PUNCH_HOLE => return Err(Errno::EINVAL),
        _ => return Err(Errno::EOPNOTSUPP),
    }
    Ok(0)
}

/// `copy_file_range(fd_in, off_in, fd_out, off_out, len, flags)`: copies through a kernel
/// buffer (Linux falls back to the same between file systems). Offsets given by pointer are
/// used and advanced there, else the files' own offsets move. `EINVAL` for flags, a
/// non-regular file or overlapping ranges of one file; `EBADF` for wrong access modes.
pub fn copy_file_range(fd_in: u64, off_in: u64, fd_out: u64, off_out: u64, len: u64, flags: u64) -> Result<u64> {
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let (input, output) = (fd::get(fd_in)?, fd::get(fd_out)?);
    let (Object::File(src), Object::File(dst)) = (&*input, &*output) else { return Err(Errno::EINVAL) };
    // The files' own offsets (a null pointer) may be shared with other processes by a fork.
    use crate::shared_offset::around;
    let copy = || copy_range(src, dst, off_in, off_out, len);
    match (off_in == 0, off_out == 0) {
        (true, true) => around(&input, src, || around(&output, dst, copy)),
        (true, false) => around(&input, src, copy),
        (false, true) => around(&output, dst, copy),
        (false, false) => copy(),
    }
}

/// [`copy_file_range`] from `src` to `dst`.
fn copy_range(src: &OpenFile, dst: &OpenFile, off_in: u64, off_out: u64, len: u64) -> Result<u64> {
    const CHUNK: usize = 64 * 1024;
    if !src.flags().readable() || !dst.flags().writable() || dst.flags().contains(libos::fs::vfs::OpenFlags::APPEND) {
        return Err(Errno::EBADF);
    }
    let (src_meta, dst_meta) = (src.metadata()?, dst.metadata()?);
    if src_meta.is_dir() || dst_meta.is_dir() {
        return Err(Errno::EISDIR);
    }
    if !src_meta.is_file() || !dst_meta.is_file() {
        return Err(Errno::EINVAL);
    }
    let read_offset = |ptr: u64, file: &OpenFile| -> Result<u64> {
        if ptr == 0 {
            return Ok(file.position());
        }
        // SAFETY: checked by `user::read`; the program passed `loff_t *`.
        let value: i64 = unsafe { user::read(ptr)? };
        u64::try_from(value).map_err(|_| Errno::EINVAL)
    };
    let (mut from, mut to) = (read_offset(off_in, src)?, read_offset(off_out, dst)?);
    let len = len.min(i64::MAX as u64);
    if (src_meta.dev, src_meta.ino) == (dst_meta.dev, dst_meta.ino) && from < to.saturating_add(len) && to < from.saturating_add(len) {
        return Err(Errno::EINVAL);
    }
    let mut buffer = Vec::new();
    buffer.try_reserve_exact(CHUNK.min(len as usize)).map_err(|_| Errno::ENOMEM)?;
    buffer.resize(CHUNK.min(len as usize), 0);
    let mut done = 0u64;
    while done < len {
        let want = buffer.len().min((len - done) as usize);
        let n = match src.read_at(from, &mut buffer[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        let written = match dst.write_at(to, &buffer[..n]) {
            Ok(w) => w,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        done += written as u64;
        from += written as u64;
        to += written as u64;
        if written < n {
            break;
        }
    }
    for (ptr, file, offset) in [(off_in, src, from), (off_out, dst, to)] {
        if ptr == 0 {
            file.seek(libos::fs::vfs::SeekFrom::Start(offset))?;
        } else {
            // SAFETY: as above.
            unsafe { user::write(ptr, offset as i64)? };
        }
    }
    Ok(done)
}

/// What an extended-attribute call names: a path (followed unless `l*xattr`) or a descriptor.
#[derive(Clone, Copy)]
pub enum XattrTarget {
    /// `getxattr`/`lgetxattr` and the other path forms.
    Path { path: u64, follow: bool },
    /// `fgetxattr` and the other descriptor forms.
    Fd(u64),
}

/// The file an extended-attribute call works on, once found.
enum XattrFile<'a> {
    /// A path and whether a final symlink is followed.
    Path(PathAt<'a>, bool),
    /// An open file.
    Open(&'a OpenFile),
    /// A descriptor of something else (a pipe, a socket): no attributes.
    Other,
}

impl XattrFile<'_> {
    fn get(&self, name: &str) -> Result<Vec<u8>> {
        match self {
            XattrFile::Path(path, follow) => vfs()?.get_xattr(*path, *follow, name),
            XattrFile::Open(file) => file.get_xattr(name),
            XattrFile::Other => Err(Errno::EOPNOTSUPP),
        }
    }

    fn set(&self, name: &str, value: &[u8], how: XattrSet) -> Result<()> {
        match self {
            XattrFile::Path(path, follow) => vfs()?.set_xattr(*path, *follow, name, value, how),
            XattrFile::Open(file) => file.set_xattr(name, value, how),
            XattrFile::Other => Err(Errno::EOPNOTSUPP),
        }
    }

    fn remove(&self, name: &str) -> Result<()> {
        match self {
            XattrFile::Path(path, follow) => vfs()?.remove_xattr(*path, *follow, name),
            XattrFile::Open(file) => file.remove_xattr(name),
            XattrFile::Other => Err(Errno::EOPNOTSUPP),
        }
    }

    fn list(&self) -> Result<Vec<String>> {
        match self {
            XattrFile::Path(path, follow) => vfs()?.list_xattr(*path, *follow),
            XattrFile::Open(file) => file.list_xattr(),
            XattrFile::Other => Ok(Vec::new()),
        }
    }

}

/// Runs `f` on the file `target` names: the path copied in, or the open file (`EBADF` for a
/// bad descriptor or an `O_PATH` handle, which has no attributes to give, as on Linux).
fn with_xattr_file<T>(target: XattrTarget, f: impl FnOnce(XattrFile<'_>) -> Result<T>) -> Result<T> {
    match target {
        XattrTarget::Path { path, follow } => {
            let mut arg = PathArg::new();
            f(XattrFile::Path(arg.read(AT_FDCWD as u64, path)?, follow))
        }
        XattrTarget::Fd(fd_number) => match &*fd::get(fd_number)? {
            Object::File(file) if file.flags().contains(libos::fs::vfs::OpenFlags::PATH) => Err(Errno::EBADF),
            Object::File(file) => f(XattrFile::Open(file)),
            _ => f(XattrFile::Other),
        },
    }
}

/// The attribute name at `name`, copied into `buffer`: 1 to 255 bytes (`ERANGE`). Read
/// before the path is walked, as Linux 6.13 and later do (a bad name on a missing file is
/// `ERANGE`).
fn xattr_name(name: u64, buffer: &mut user::StrBuffer) -> Result<&str> {
    // SAFETY: checked by `c_string`; the C program vouches for the rest.
    match unsafe { user::c_string(name, XATTR_NAME_MAX, buffer) } {
        Ok("") | Err(Errno::ENAMETOOLONG) => Err(Errno::ERANGE),
        other => other,
    }
}

/// Copies `answer` (a value or a name list) to the program's `size`-byte buffer at `out`:
/// with `size` 0 only its length is returned; a smaller buffer is `ERANGE`.
fn copy_answer(answer: &[u8], out: u64, size: u64) -> Result<u64> {
    let len = answer.len() as u64;
    if size == 0 {
        return Ok(len);
    }
    if len > size {
        return Err(Errno::ERANGE);
    }
    // SAFETY: checked by `slice_mut` (EFAULT); the program gave the buffer for this.
    unsafe { user::slice_mut(out, len)? }.copy_from_slice(answer);
    Ok(len)
}

/// `getxattr` and its forms: the value's length, the value copied to `value` (see
/// [`copy_answer`]).
pub fn getxattr(target: XattrTarget, name: u64, value: u64, size: u64) -> Result<u64> {
    let mut buffer = user::StrBuffer::new();
    let name = xattr_name(name, &mut buffer)?;
    with_xattr_file(target, |file| copy_answer(&file.get(name)?, value, size))
}

/// `setxattr` and its forms, checked in Linux's order: flags (`EINVAL`), the name, the size
/// (`E2BIG`), the value copied in (`EFAULT`), then the path. `XATTR_CREATE` and
/// `XATTR_REPLACE` together fail either way (`EEXIST` if the attribute exists, else
/// `ENODATA`), as on Linux.
pub fn setxattr(target: XattrTarget, name: u64, value: u64, size: u64, flags: u64) -> Result<u64> {
    const XATTR_CREATE: u64 = 1;
    const XATTR_REPLACE: u64 = 2;
    if flags & !(XATTR_CREATE | XATTR_REPLACE) != 0 {
        return Err(Errno::EINVAL);
    }
    let mut buffer = user::StrBuffer::new();
    let name = xattr_name(name, &mut buffer)?;
    if size > XATTR_SIZE_MAX as u64 {
        return Err(Errno::E2BIG);
    }
    // SAFETY: checked by `slice` (EFAULT); copied before use, so a thread changing the bytes
    // meanwhile changes only what is stored.
    let value = if size == 0 { Vec::new() } else { unsafe { user::slice(value, size)? }.to_vec() };
    with_xattr_file(target, |file| {
        let how = match flags {
            0 => XattrSet::Either,
            XATTR_CREATE => XattrSet::Create,
            XATTR_REPLACE => XattrSet::Replace,
            _ => return Err(file.get(name).map_or_else(|e| e, |_| Errno::EEXIST)),
        };
        file.set(name, &value, how).map(|()| 0)
    })
}

/// `listxattr` and its forms: the names, each ended by a NUL, copied to `list` (see
/// [`copy_answer`]); `E2BIG` for a list longer than Linux returns.
pub fn listxattr(target: XattrTarget, list: u64, size: u64) -> Result<u64> {
    with_xattr_file(target, |file| {
        let mut names = Vec::new();
        for name in file.list()? {
            names.extend_from_slice(name.as_bytes());
            names.push(0);
        }
        if names.len() > XATTR_LIST_MAX {
            return Err(Errno::E2BIG);
        }
        copy_answer(&names, list, size)
    })
}

/// `removexattr` and its forms.
pub fn removexattr(target: XattrTarget, name: u64) -> Result<u64> {
    let mut buffer = user::StrBuffer::new();
    let name = xattr_name(name, &mut buffer)?;
    with_xattr_file(target, |file| file.remove(name).map(|()| 0))
}
