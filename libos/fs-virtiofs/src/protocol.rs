//! The FUSE wire protocol as virtio-fs speaks it: opcodes, message layouts, `FUSE_INIT`
//! negotiation, reply verification and directory-entry parsing. Pure functions over byte
//! slices, no I/O: [`crate::fs`] sends what this module builds through a
//! [`crate::FuseChannel`].
//!
//! The message structs are `fuse-abi` 0.2's bindings of the Linux UAPI header (FUSE 7.40),
//! with its `zerocopy` 0.8 derives, so building a request is `as_bytes()` and reading a reply
//! is `read_from_bytes()`, without `unsafe`. The sizes the virtio-fs device and virtiofsd 1.14
//! use are asserted below at compile time. FUSE over virtio uses the guest's byte order
//! (taken from `FUSE_INIT`); both libos targets are little-endian, like the structs.
#![forbid(unsafe_code)]

pub use fuse_abi::linux::{
    FATTR_ATIME, FATTR_ATIME_NOW, FATTR_FH, FATTR_GID, FATTR_MODE, FATTR_MTIME, FATTR_MTIME_NOW, FATTR_SIZE, FATTR_UID,
    FUSE_ROOT_ID,
    fuse_attr, fuse_attr_out, fuse_batch_forget_in, fuse_create_in, fuse_entry_out, fuse_flush_in, fuse_forget_in,
    fuse_forget_one, fuse_fsync_in, fuse_getattr_in, fuse_in_header, fuse_init_in, fuse_init_out, fuse_kstatfs,
    fuse_link_in, fuse_mkdir_in, fuse_mknod_in, fuse_open_in, fuse_open_out, fuse_out_header, fuse_read_in,
    fuse_fallocate_in, fuse_getxattr_in, fuse_getxattr_out, fuse_release_in, fuse_removemapping_in, fuse_removemapping_one, fuse_setupmapping_in, fuse_rename_in, fuse_rename2_in, fuse_setattr_in, fuse_write_in, fuse_write_out,
};
pub use fuse_abi::linux::{FUSE_SETUPMAPPING_FLAG_READ, FUSE_SETUPMAPPING_FLAG_WRITE};
use fuse_abi::linux as abi;
use alloc::vec::Vec;
use libos_core::{Errno, Result};
use libos_vfs::{FileType, Metadata, Timestamp};
use zerocopy::FromBytes;

/// FUSE opcodes (values of the Linux UAPI `enum fuse_opcode`).
pub mod op {
    use fuse_abi::linux::fuse_opcode as o;
    /// `FUSE_LOOKUP`
    pub const LOOKUP: u32 = o::FUSE_LOOKUP as u32;
    /// `FUSE_FORGET` (hiprio queue, no reply)
    pub const FORGET: u32 = o::FUSE_FORGET as u32;
    /// `FUSE_GETATTR`
    pub const GETATTR: u32 = o::FUSE_GETATTR as u32;
    /// `FUSE_SETATTR`
    pub const SETATTR: u32 = o::FUSE_SETATTR as u32;
    /// `FUSE_READLINK`
    pub const READLINK: u32 = o::FUSE_READLINK as u32;
    /// `FUSE_SYMLINK`
    pub const SYMLINK: u32 = o::FUSE_SYMLINK as u32;
    /// `FUSE_MKNOD`
    pub const MKNOD: u32 = o::FUSE_MKNOD as u32;
    /// `FUSE_MKDIR`
    pub const MKDIR: u32 = o::FUSE_MKDIR as u32;
    /// `FUSE_UNLINK`
    pub const UNLINK: u32 = o::FUSE_UNLINK as u32;
    /// `FUSE_RMDIR`
    pub const RMDIR: u32 = o::FUSE_RMDIR as u32;
    /// `FUSE_RENAME`
    pub const RENAME: u32 = o::FUSE_RENAME as u32;
    /// `FUSE_LINK`
    pub const LINK: u32 = o::FUSE_LINK as u32;
    /// `FUSE_OPEN`
    pub const OPEN: u32 = o::FUSE_OPEN as u32;
    /// `FUSE_READ`
    pub const READ: u32 = o::FUSE_READ as u32;
    /// `FUSE_WRITE`
    pub const WRITE: u32 = o::FUSE_WRITE as u32;
    /// `FUSE_STATFS`
    pub const STATFS: u32 = o::FUSE_STATFS as u32;
    /// `FUSE_RELEASE`
    pub const RELEASE: u32 = o::FUSE_RELEASE as u32;
    /// `FUSE_FSYNC`
    pub const FSYNC: u32 = o::FUSE_FSYNC as u32;
    /// `FUSE_FLUSH`
    pub const FLUSH: u32 = o::FUSE_FLUSH as u32;
    /// `FUSE_INIT`
    pub const INIT: u32 = o::FUSE_INIT as u32;
    /// `FUSE_OPENDIR`
    pub const OPENDIR: u32 = o::FUSE_OPENDIR as u32;
    /// `FUSE_READDIR`
    pub const READDIR: u32 = o::FUSE_READDIR as u32;
    /// `FUSE_RELEASEDIR`
    pub const RELEASEDIR: u32 = o::FUSE_RELEASEDIR as u32;
    /// `FUSE_FSYNCDIR`
    pub const FSYNCDIR: u32 = o::FUSE_FSYNCDIR as u32;
    /// `FUSE_CREATE`
    pub const CREATE: u32 = o::FUSE_CREATE as u32;
    /// `FUSE_DESTROY`
    pub const DESTROY: u32 = o::FUSE_DESTROY as u32;
    /// `FUSE_BATCH_FORGET` (hiprio queue, no reply)
    pub const BATCH_FORGET: u32 = o::FUSE_BATCH_FORGET as u32;
    /// `FUSE_READDIRPLUS`
    pub const READDIRPLUS: u32 = o::FUSE_READDIRPLUS as u32;
    /// `FUSE_RENAME2`
    pub const RENAME2: u32 = o::FUSE_RENAME2 as u32;
    /// `FUSE_SYNCFS`
    pub const SYNCFS: u32 = o::FUSE_SYNCFS as u32;
    /// `FUSE_FALLOCATE`
    pub const FALLOCATE: u32 = o::FUSE_FALLOCATE as u32;
    /// `FUSE_SETUPMAPPING` (DAX: map a file range into the window)
    pub const SETUPMAPPING: u32 = o::FUSE_SETUPMAPPING as u32;
    /// `FUSE_REMOVEMAPPING` (DAX: unmap window ranges)
    pub const REMOVEMAPPING: u32 = o::FUSE_REMOVEMAPPING as u32;
    /// `FUSE_SETXATTR`
    pub const SETXATTR: u32 = o::FUSE_SETXATTR as u32;
    /// `FUSE_GETXATTR`
    pub const GETXATTR: u32 = o::FUSE_GETXATTR as u32;
    /// `FUSE_LISTXATTR`
    pub const LISTXATTR: u32 = o::FUSE_LISTXATTR as u32;
    /// `FUSE_REMOVEXATTR`
    pub const REMOVEXATTR: u32 = o::FUSE_REMOVEXATTR as u32;
    /// One past the largest opcode the per-opcode counters track.
    pub const COUNT: usize = 64;

    /// The opcode's name for log lines (`"READ"`), or `"?"`.
    pub fn name(opcode: u32) -> &'static str {
        match opcode {
            LOOKUP => "LOOKUP",
            FORGET => "FORGET",
            GETATTR => "GETATTR",
            SETATTR => "SETATTR",
            READLINK => "READLINK",
            SYMLINK => "SYMLINK",
            MKNOD => "MKNOD",
            MKDIR => "MKDIR",
            UNLINK => "UNLINK",
            RMDIR => "RMDIR",
            RENAME => "RENAME",
            LINK => "LINK",
            OPEN => "OPEN",
            READ => "READ",
            WRITE => "WRITE",
            STATFS => "STATFS",
            RELEASE => "RELEASE",
            FSYNC => "FSYNC",
            FLUSH => "FLUSH",
            INIT => "INIT",
            OPENDIR => "OPENDIR",
            READDIR => "READDIR",
            RELEASEDIR => "RELEASEDIR",
            FSYNCDIR => "FSYNCDIR",
            CREATE => "CREATE",
            FALLOCATE => "FALLOCATE",
            DESTROY => "DESTROY",
            BATCH_FORGET => "BATCH_FORGET",
            READDIRPLUS => "READDIRPLUS",
            RENAME2 => "RENAME2",
            SYNCFS => "SYNCFS",
            SETUPMAPPING => "SETUPMAPPING",
            REMOVEMAPPING => "REMOVEMAPPING",
            SETXATTR => "SETXATTR",
            GETXATTR => "GETXATTR",
            LISTXATTR => "LISTXATTR",
            REMOVEXATTR => "REMOVEXATTR",
            _ => "?",
        }
    }
}

/// Size of `fuse_in_header`, the start of every request.
pub const IN_HEADER_SIZE: usize = 40;
/// Size of `fuse_out_header`, the start of every reply.
pub const OUT_HEADER_SIZE: usize = 16;
/// Size of a `fuse_dirent` header (the name follows, padded to 8 bytes).
pub const DIRENT_HEADER_SIZE: usize = 24;

// The sizes virtio-fs and virtiofsd 1.14 use on the wire (notes/virtio-fs.md §1.4).
const _: () = {
    use core::mem::size_of;
    assert!(size_of::<fuse_in_header>() == IN_HEADER_SIZE);
    assert!(size_of::<fuse_out_header>() == OUT_HEADER_SIZE);
    assert!(size_of::<fuse_attr>() == 88);
    assert!(size_of::<fuse_entry_out>() == 128);
    assert!(size_of::<fuse_attr_out>() == 104);
    assert!(size_of::<fuse_open_out>() == 16);
    assert!(size_of::<fuse_init_in>() == 64);
    assert!(size_of::<fuse_init_out>() == 64);
    assert!(size_of::<fuse_forget_in>() == 8);
    assert!(size_of::<fuse_batch_forget_in>() == 8);
    assert!(size_of::<fuse_forget_one>() == 16);
    assert!(size_of::<fuse_getattr_in>() == 16);
    assert!(size_of::<fuse_setattr_in>() == 88);
    assert!(size_of::<fuse_mknod_in>() == 16);
    assert!(size_of::<fuse_mkdir_in>() == 8);
    assert!(size_of::<fuse_rename_in>() == 8);
    assert!(size_of::<fuse_rename2_in>() == 16);
    assert!(size_of::<fuse_link_in>() == 8);
    assert!(size_of::<fuse_open_in>() == 8);
    assert!(size_of::<fuse_create_in>() == 16);
    assert!(size_of::<fuse_read_in>() == 40);
    assert!(size_of::<fuse_write_in>() == 40);
    assert!(size_of::<fuse_write_out>() == 8);
    assert!(size_of::<fuse_kstatfs>() == 80);
    assert!(size_of::<fuse_release_in>() == 24);
    assert!(size_of::<fuse_flush_in>() == 24);
    assert!(size_of::<fuse_fsync_in>() == 16);
    assert!(size_of::<fuse_getxattr_in>() == 8);
    assert!(size_of::<fuse_getxattr_out>() == 8);
    assert!(size_of::<abi::fuse_dirent>() == DIRENT_HEADER_SIZE);
};

/// The protocol version libos speaks: 7.38, virtiofsd 1.14's own (7.31 added the DAX mapping
/// messages and `map_alignment`; nothing libos uses needs more than 7.31).
pub const KERNEL_VERSION: u32 = 7;
/// See [`KERNEL_VERSION`].
pub const KERNEL_MINOR_VERSION: u32 = 38;
/// The oldest server minor version accepted.
pub const MIN_MINOR_VERSION: u32 = 31;

/// The largest READ/WRITE payload libos asks for: 1 MiB, virtiofsd's own limit.
pub const MAX_IO_SIZE: usize = 1 << 20;

/// `FUSE_INIT` flags libos offers (the server enables the subset it supports):
/// - `BIG_WRITES`: writes larger than 4 KiB (virtiofsd always allows them; older servers need
///   the flag);
/// - `MAX_PAGES`: the server announces `max_pages`, the bound of one READ (without it Linux
///   assumes 32 pages);
/// - `PARALLEL_DIROPS`: several lookups/readdirs of one directory may be in flight;
/// - `DONT_MASK`: create modes are applied as given (libos has no umask);
/// - `MAP_ALIGNMENT`: the server reports the DAX mapping alignment for the DAX work.
///
/// Not offered, on purpose: `DO_READDIRPLUS` (every entry would count as a LOOKUP that must be
/// forgotten, while the VFS's `read_dir` only needs names, inode numbers and types),
/// `WRITEBACK_CACHE` (libos has no page cache: every write goes to the host),
/// `ATOMIC_O_TRUNC` (the VFS truncates with its own call, never through `OPEN`),
/// `ASYNC_READ`/`SPLICE_*`/locks/ioctl (not used).
pub const INIT_FLAGS: u32 =
    abi::FUSE_BIG_WRITES | abi::FUSE_MAX_PAGES | abi::FUSE_PARALLEL_DIROPS | abi::FUSE_DONT_MASK | abi::FUSE_MAP_ALIGNMENT;

/// The `FUSE_INIT` request body.
pub fn init_in() -> fuse_init_in {
    fuse_init_in {
        major: KERNEL_VERSION,
        minor: KERNEL_MINOR_VERSION,
        max_readahead: MAX_IO_SIZE as u32,
        flags: INIT_FLAGS,
        ..Default::default()
    }
}

/// What `FUSE_INIT` settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The server's minor version.
    pub minor: u32,
    /// Flags both sides agreed on (a subset of [`INIT_FLAGS`]).
    pub flags: u32,
    /// The largest WRITE payload.
    pub max_write: usize,
    /// The largest READ (and READDIR) payload.
    pub max_read: usize,
    /// `map_alignment` (log2 bytes) when the server announced it.
    pub map_alignment: Option<u16>,
    /// Timestamp granularity in nanoseconds (0 or 1: nanoseconds).
    pub time_gran: u32,
}

/// Checks the server's `FUSE_INIT` answer and settles the I/O sizes, capped by what one
/// channel call can carry (`max_transfer`: request plus reply bytes).
///
/// `EPROTO` for a major version other than 7 or a minor below [`MIN_MINOR_VERSION`]; `EIO`
/// when the channel cannot carry even a page of data.
pub fn negotiate(out: &fuse_init_out, max_transfer: usize) -> Result<Negotiated> {
    if out.major != KERNEL_VERSION || out.minor < MIN_MINOR_VERSION {
        log::error!("virtio-fs: server speaks FUSE {}.{}, libos needs 7.{}+", out.major, out.minor, MIN_MINOR_VERSION);
        return Err(Errno::EPROTO);
    }
    let flags = out.flags & INIT_FLAGS;
    // Room for the largest header plus arguments next to the payload.
    let room = max_transfer.saturating_sub(IN_HEADER_SIZE + 64 + OUT_HEADER_SIZE + 64);
    let page = 4096;
    if room < page {
        log::error!("virtio-fs: the channel carries only {max_transfer} bytes per request");
        return Err(Errno::EIO);
    }
    let cap = room.min(MAX_IO_SIZE) / page * page;
    let max_write = (out.max_write as usize).min(cap);
    if max_write == 0 {
        log::error!("virtio-fs: server announced max_write 0");
        return Err(Errno::EPROTO);
    }
    let pages_limit = if flags & abi::FUSE_MAX_PAGES != 0 && out.max_pages != 0 {
        usize::from(out.max_pages) * page
    } else {
        32 * page
    };
    Ok(Negotiated {
        minor: out.minor,
        flags,
        max_write,
        max_read: cap.min(pages_limit),
        map_alignment: (flags & abi::FUSE_MAP_ALIGNMENT != 0).then_some(out.map_alignment),
        time_gran: out.time_gran,
    })
}

/// A request header for `opcode` on `nodeid` with `body_len` argument bytes after it.
pub fn in_header(opcode: u32, unique: u64, nodeid: u64, body_len: usize) -> fuse_in_header {
    fuse_in_header {
        len: (IN_HEADER_SIZE + body_len) as u32,
        opcode,
        unique,
        nodeid,
        uid: 0,
        gid: 0,
        pid: 0,
        total_extlen: 0,
        padding: 0,
    }
}

/// The errno of a FUSE reply's `error` field (a negated Linux errno). Numbers libos does not
/// know (and positive values, which are malformed) become `EIO`, with a log line naming the
/// opcode and the number.
pub fn errno_from_reply(error: i32, opcode: u32) -> Errno {
    match error.checked_neg().filter(|&n| n > 0).and_then(Errno::from_raw) {
        Some(errno) => errno,
        None => {
            log::warn!("virtio-fs: {} reply carries unknown error {error}: EIO", op::name(opcode));
            Errno::EIO
        }
    }
}

/// What a verified reply holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Success with this many payload bytes after the header.
    Ok(usize),
    /// The server's error.
    Err(Errno),
}

/// Verifies a reply as Linux's `virtio_fs_verify_response` does, and more: `written` (what the
/// channel reports the server wrote) must be at least a header, at most `capacity` (the reply
/// buffers' total), and equal to `out.len`; `out.unique` must be the request's; an error reply
/// carries no payload and a negative errno. Any violation is `EIO`, logged with the opcode.
pub fn verify_reply(header: &[u8], written: usize, capacity: usize, unique: u64, opcode: u32) -> Result<Reply> {
    let bad = |why: &str| {
        log::warn!("virtio-fs: malformed {} reply ({why}): EIO", op::name(opcode));
        Err(Errno::EIO)
    };
    if written < OUT_HEADER_SIZE {
        return bad("shorter than its header");
    }
    if written > capacity {
        return bad("longer than the reply buffers");
    }
    let Ok((out, _)) = fuse_out_header::read_from_prefix(header) else {
        return bad("header buffer too small");
    };
    if out.len as usize != written {
        return bad("out.len differs from the bytes written");
    }
    if out.unique != unique {
        return bad("unique does not match the request");
    }
    if out.error != 0 {
        if written != OUT_HEADER_SIZE {
            return bad("error reply with a payload");
        }
        return Ok(Reply::Err(errno_from_reply(out.error, opcode)));
    }
    Ok(Reply::Ok(written - OUT_HEADER_SIZE))
}

/// The type of a node from `st_mode`'s `S_IFMT` bits; `EIO` for an invalid type.
pub fn file_type_from_mode(mode: u32) -> Result<FileType> {
    FileType::from_mode(mode).ok_or(Errno::EIO)
}

/// The type of a directory entry from its `d_type` (`DT_*`); `None` for `DT_UNKNOWN` or
/// anything else.
pub fn file_type_from_dtype(dtype: u32) -> Option<FileType> {
    file_type_from_mode(dtype << 12).ok()
}

/// `st_mode`'s type bits as a `d_type`.
pub fn dtype_of(file_type: FileType) -> u32 {
    file_type.mode_bits() >> 12
}

fn timestamp(secs: u64, nanos: u32) -> Timestamp {
    Timestamp(secs.saturating_mul(1_000_000_000).saturating_add(u64::from(nanos.min(999_999_999))))
}

/// `stat` from a `fuse_attr`; `EIO` for an invalid file type. `dev` is left 0 (the VFS sets it).
pub fn metadata_from_attr(attr: &fuse_attr) -> Result<Metadata> {
    Ok(Metadata {
        dev: 0,
        ino: attr.ino,
        file_type: file_type_from_mode(attr.mode)?,
        perm: attr.mode & 0o7777,
        uid: attr.uid,
        gid: attr.gid,
        nlink: u64::from(attr.nlink),
        size: attr.size,
        blocks: attr.blocks,
        block_size: if attr.blksize == 0 { 4096 } else { attr.blksize },
        rdev: rdev_from_wire(attr.rdev),
        atime: timestamp(attr.atime, attr.atimensec),
        mtime: timestamp(attr.mtime, attr.mtimensec),
        ctime: timestamp(attr.ctime, attr.ctimensec),
    })
}

/// A `fuse_attr` describing `meta` (the fake server's direction).
pub fn attr_from_metadata(meta: &Metadata) -> fuse_attr {
    fuse_attr {
        ino: meta.ino,
        size: meta.size,
        blocks: meta.blocks,
        atime: meta.atime.secs(),
        mtime: meta.mtime.secs(),
        ctime: meta.ctime.secs(),
        atimensec: meta.atime.subsec_nanos(),
        mtimensec: meta.mtime.subsec_nanos(),
        ctimensec: meta.ctime.subsec_nanos(),
        mode: meta.mode(),
        nlink: u32::try_from(meta.nlink).unwrap_or(u32::MAX),
        uid: meta.uid,
        gid: meta.gid,
        rdev: rdev_to_wire(meta.rdev),
        blksize: meta.block_size,
        flags: 0,
    }
}

/// A device number as FUSE carries it (`fuse_attr.rdev`, `fuse_mknod_in.rdev`): the kernel's
/// 32-bit `new_encode_dev` (12-bit major, 20-bit minor).
pub fn rdev_to_wire(rdev: u64) -> u32 {
    let (major, minor) = (libos_vfs::dev_major(rdev), libos_vfs::dev_minor(rdev));
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

/// The inverse of [`rdev_to_wire`], as `makedev` encodes it.
pub fn rdev_from_wire(wire: u32) -> u64 {
    libos_vfs::makedev((wire & 0xfff00) >> 8, (wire & 0xff) | ((wire >> 12) & 0xfff00))
}

/// A cache timeout from a reply's seconds and nanoseconds, in nanoseconds (saturating).
pub fn timeout_nanos(secs: u64, nanos: u32) -> u64 {
    secs.saturating_mul(1_000_000_000).saturating_add(u64::from(nanos))
}

/// One entry of a `FUSE_READDIR` reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dirent<'a> {
    /// The host's inode number.
    pub ino: u64,
    /// The cookie that continues after this entry.
    pub off: u64,
    /// `d_type`.
    pub dtype: u32,
    /// The name (not NUL-terminated).
    pub name: &'a [u8],
}

/// Iterates over the packed `fuse_dirent` records of a READDIR reply. A malformed record
/// (truncated header or name, empty or over-long name, `/` or NUL in the name, a zero cookie)
/// yields `Err(EIO)` once and ends the iteration.
pub struct Dirents<'a> {
    buf: &'a [u8],
}

impl<'a> Dirents<'a> {
    /// Parses `buf`, the reply payload.
    pub fn new(buf: &'a [u8]) -> Dirents<'a> {
        Dirents { buf }
    }
}

impl<'a> Iterator for Dirents<'a> {
    type Item = Result<Dirent<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let buf = core::mem::take(&mut self.buf);
        let malformed = |why: &str| {
            log::warn!("virtio-fs: malformed READDIR entry ({why}): EIO");
            Some(Err(Errno::EIO))
        };
        let Ok((header, rest)) = abi::fuse_dirent::read_from_prefix(buf) else {
            return malformed("truncated header");
        };
        let namelen = header.namelen as usize;
        if namelen == 0 || namelen > libos_vfs::NAME_MAX {
            return malformed("bad name length");
        }
        if rest.len() < namelen {
            return malformed("truncated name");
        }
        let name = &rest[..namelen];
        if name.iter().any(|&b| b == b'/' || b == 0) {
            return malformed("'/' or NUL in a name");
        }
        if header.off == 0 {
            return malformed("zero cookie");
        }
        let record = (DIRENT_HEADER_SIZE + namelen).next_multiple_of(8);
        // The last record's padding may be cut off; anything else must be whole.
        self.buf = buf.get(record..).unwrap_or(&[]);
        Some(Ok(Dirent { ino: header.ino, off: header.off, dtype: header.type_, name }))
    }
}

/// Appends one `fuse_dirent` record (with padding) to `out` (the fake server's direction).
pub fn push_dirent(out: &mut Vec<u8>, ino: u64, off: u64, dtype: u32, name: &[u8]) {
    use zerocopy::IntoBytes;
    out.extend_from_slice(ino.as_bytes());
    out.extend_from_slice(off.as_bytes());
    out.extend_from_slice((name.len() as u32).as_bytes());
    out.extend_from_slice(dtype.as_bytes());
    out.extend_from_slice(name);
    let padded = out.len().next_multiple_of(8);
    out.resize(padded, 0);
}

/// The size of the record [`push_dirent`] writes for a name of `name_len` bytes.
pub const fn dirent_size(name_len: usize) -> usize {
    (DIRENT_HEADER_SIZE + name_len).next_multiple_of(8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    fn header(len: u32, error: i32, unique: u64) -> [u8; 16] {
        let mut b = [0u8; 16];
        b.copy_from_slice(fuse_out_header { len, error, unique }.as_bytes());
        b
    }

    #[test]
    fn replies_are_verified() {
        let ok = header(16 + 8, 0, 7);
        assert_eq!(verify_reply(&ok, 24, 24, 7, op::WRITE), Ok(Reply::Ok(8)));
        assert_eq!(verify_reply(&ok, 24, 24, 8, op::WRITE), Err(Errno::EIO), "wrong unique");
        assert_eq!(verify_reply(&ok, 20, 24, 7, op::WRITE), Err(Errno::EIO), "len != written");
        assert_eq!(verify_reply(&ok, 24, 20, 7, op::WRITE), Err(Errno::EIO), "more than the buffers");
        assert_eq!(verify_reply(&ok, 12, 24, 7, op::WRITE), Err(Errno::EIO), "short");
        let enoent = header(16, -2, 7);
        assert_eq!(verify_reply(&enoent, 16, 64, 7, op::LOOKUP), Ok(Reply::Err(Errno::ENOENT)));
        let payload = header(24, -2, 7);
        assert_eq!(verify_reply(&payload, 24, 64, 7, op::LOOKUP), Err(Errno::EIO), "error with payload");
        let unknown = header(16, -4000, 7);
        assert_eq!(verify_reply(&unknown, 16, 64, 7, op::LOOKUP), Ok(Reply::Err(Errno::EIO)));
        let positive = header(16, 5, 7);
        assert_eq!(verify_reply(&positive, 16, 64, 7, op::LOOKUP), Ok(Reply::Err(Errno::EIO)));
        let min = header(16, i32::MIN, 7);
        assert_eq!(verify_reply(&min, 16, 64, 7, op::LOOKUP), Ok(Reply::Err(Errno::EIO)));
    }

    #[test]
    fn init_negotiation() {
        let mut out = fuse_init_out {
            major: 7,
            minor: 38,
            flags: INIT_FLAGS | abi::FUSE_WRITEBACK_CACHE,
            max_write: 1 << 20,
            max_pages: 256,
            ..Default::default()
        };
        let n = negotiate(&out, 2 << 20).unwrap();
        assert_eq!(n.max_write, 1 << 20);
        assert_eq!(n.max_read, 1 << 20);
        assert_eq!(n.flags & abi::FUSE_WRITEBACK_CACHE, 0, "never more than offered");
        assert_eq!(n.map_alignment, Some(0));
        // The channel's limit caps both.
        let n = negotiate(&out, 256 * 1024).unwrap();
        assert!(n.max_write <= 256 * 1024 - 200 && n.max_write % 4096 == 0);
        // Without MAX_PAGES, reads stay at 32 pages.
        out.flags = abi::FUSE_BIG_WRITES;
        assert_eq!(negotiate(&out, 2 << 20).unwrap().max_read, 128 * 1024);
        out.minor = 30;
        assert_eq!(negotiate(&out, 2 << 20), Err(Errno::EPROTO));
        out.minor = 38;
        out.major = 8;
        assert_eq!(negotiate(&out, 2 << 20), Err(Errno::EPROTO));
        out.major = 7;
        out.max_write = 0;
        assert_eq!(negotiate(&out, 2 << 20), Err(Errno::EPROTO));
        out.max_write = 4096;
        assert_eq!(negotiate(&out, 1000), Err(Errno::EIO));
    }

    #[test]
    fn dirents_round_trip_and_reject_garbage() {
        let mut buf = Vec::new();
        push_dirent(&mut buf, 5, 1, 8, b"file");
        push_dirent(&mut buf, 6, 2, 4, b"a-longer-directory-name");
        assert_eq!(buf.len(), dirent_size(4) + dirent_size(23));
        let all: Vec<_> = Dirents::new(&buf).collect::<Result<_>>().unwrap();
        assert_eq!(all[0], Dirent { ino: 5, off: 1, dtype: 8, name: b"file" });
        assert_eq!(all[1].name, b"a-longer-directory-name");
        assert_eq!(file_type_from_dtype(all[1].dtype), Some(FileType::Directory));
        // The last record's padding may be missing.
        let cut = &buf[..buf.len() - 1];
        assert_eq!(Dirents::new(cut).count(), 2);
        // Truncated names, bad lengths, slashes and zero cookies are rejected.
        for bad in [
            &buf[..DIRENT_HEADER_SIZE + 2],
            &buf[..10],
        ] {
            assert_eq!(Dirents::new(bad).next(), Some(Err(Errno::EIO)));
        }
        for (namelen, name, off) in [(0u32, &b""[..], 1u64), (300, b"x", 1), (3, b"a/b", 1), (3, b"a\0b", 1), (1, b"x", 0)] {
            let mut rec = Vec::new();
            rec.extend_from_slice(9u64.as_bytes());
            rec.extend_from_slice(off.as_bytes());
            rec.extend_from_slice(namelen.as_bytes());
            rec.extend_from_slice(8u32.as_bytes());
            rec.extend_from_slice(name);
            rec.resize(rec.len().next_multiple_of(8) + 300, b'x');
            let mut it = Dirents::new(&rec);
            assert_eq!(it.next(), Some(Err(Errno::EIO)), "namelen {namelen} name {name:?} off {off}");
            assert_eq!(it.next(), None);
        }
    }

    #[test]
    fn attributes_convert_both_ways() {
        let attr = fuse_attr {
            ino: 42,
            size: 10,
            blocks: 8,
            mtime: 3,
            mtimensec: 5,
            mode: 0o100_640,
            nlink: 1,
            blksize: 4096,
            ..Default::default()
        };
        let meta = metadata_from_attr(&attr).unwrap();
        assert_eq!((meta.ino, meta.file_type, meta.perm, meta.size), (42, FileType::Regular, 0o640, 10));
        assert_eq!(meta.mtime, Timestamp(3_000_000_005));
        assert_eq!(attr_from_metadata(&meta).mode, 0o100_640);
        assert_eq!(metadata_from_attr(&fuse_attr { mode: 0o170_000, ..attr }), Err(Errno::EIO));
    }
}
