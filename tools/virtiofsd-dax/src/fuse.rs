//! What the daemon decides about a FUSE request before fuse-backend-rs's server sees it, and
//! what it changes in the server's FUSE_INIT reply.
//!
//! [`Request::peek`] reads the header (and the few bodies a decision needs) from a copy of the
//! request's reader; [`Policy::verdict`] then serves it, or answers an error itself:
//! - opcodes the FUSE ABI does not define: `ENOSYS` (fuse-backend-rs turns an opcode into its
//!   enum with a transmute when it traces, which is undefined for the gaps 7 and 19);
//! - FUSE_SETUPMAPPING / FUSE_REMOVEMAPPING without a DAX window: `ENOSYS`, as virtiofsd;
//! - with `--readonly`, everything that would change the share: `EROFS`.
//!
//! [`amend_init`] completes the INIT reply: the server only offers what the passthrough file
//! system wants, which leaves out `MAX_PAGES` (so writes would be cut to 4 KiB) and never sets
//! `map_alignment`; with a DAX window the reply carries `MAP_ALIGNMENT` = log2(page size).

use crate::dax::Window;
use fuse_backend_rs::abi::fuse_abi::{FsOptions, InHeader, InitIn, InitIn2, InitOut, OpenIn, Opcode, OutHeader};
use fuse_backend_rs::abi::virtio_fs::{SetupmappingFlags, SetupmappingIn};
use fuse_backend_rs::api::server::MAX_REQ_PAGES;
use fuse_backend_rs::transport::Reader;
use nix::libc;
use std::mem::size_of;
use vm_memory::ByteValued;
use vm_memory::bitmap::BitmapSlice;

/// What the daemon knows of a request before serving it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// The request header.
    pub opcode: u32,
    /// The id the reply must carry.
    pub unique: u64,
    /// FUSE_INIT: the client's flags (`flags | flags2 << 32`).
    pub init_flags: Option<u64>,
    /// FUSE_OPEN: the open flags.
    pub open_flags: Option<u32>,
    /// FUSE_SETUPMAPPING: the mapping flags.
    pub mapping_flags: Option<u64>,
}

/// Reads a `T` from `reader`, `None` if the request is too short.
fn read<T: ByteValued, S: BitmapSlice>(reader: &mut Reader<'_, S>) -> Option<T> {
    reader.read_obj().ok()
}

impl Request {
    /// Peeks at the request in `reader` (a copy: the server reads the original). `None` when
    /// not even the header is there (nothing to answer: no `unique`).
    pub fn peek<S: BitmapSlice>(mut reader: Reader<'_, S>) -> Option<Request> {
        let header: InHeader = read(&mut reader)?;
        let mut request = Request { opcode: header.opcode, unique: header.unique, ..Request::default() };
        match header.opcode {
            op if op == Opcode::Init as u32 => {
                if let Some(init) = read::<InitIn, S>(&mut reader) {
                    let mut flags = u64::from(init.flags);
                    if flags & FsOptions::INIT_EXT.bits() != 0 {
                        flags |= read::<InitIn2, S>(&mut reader).map_or(0, |ext| u64::from(ext.flags2) << 32);
                    }
                    request.init_flags = Some(flags);
                }
            }
            op if op == Opcode::Open as u32 => request.open_flags = read::<OpenIn, S>(&mut reader).map(|o| o.flags),
            op if op == Opcode::SetupMapping as u32 => {
                request.mapping_flags = read::<SetupmappingIn, S>(&mut reader).map(|m| m.flags);
            }
            _ => {}
        }
        Some(request)
    }

    /// Whether the client waits for a reply (FORGET and BATCH_FORGET have none; fuse-backend-rs
    /// answers nothing to INTERRUPT either).
    pub fn expects_reply(&self) -> bool {
        ![Opcode::Forget as u32, Opcode::BatchForget as u32, Opcode::Interrupt as u32].contains(&self.opcode)
    }
}

/// What happens to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// fuse-backend-rs serves it.
    Serve,
    /// Answered here with this errno (positive).
    Refuse(i32),
}

/// The share's rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// `--readonly`: nothing may change the share.
    pub readonly: bool,
    /// `--dax-window`.
    pub window: Option<Window>,
}

/// Opcodes that change the share (refused with `EROFS` on a read-only share); OPEN and
/// SETUPMAPPING depend on their flags.
const WRITING: [Opcode; 14] = [
    Opcode::Setattr,
    Opcode::Symlink,
    Opcode::Mknod,
    Opcode::Mkdir,
    Opcode::Unlink,
    Opcode::Rmdir,
    Opcode::Rename,
    Opcode::Link,
    Opcode::Write,
    Opcode::Setxattr,
    Opcode::Removexattr,
    Opcode::Create,
    Opcode::Fallocate,
    Opcode::Rename2,
];

impl Policy {
    /// The verdict on `request`.
    pub fn verdict(&self, request: &Request) -> Verdict {
        let op = request.opcode;
        if opcode_name(op).is_none() {
            return Verdict::Refuse(libc::ENOSYS);
        }
        let is = |o: Opcode| op == o as u32;
        if (is(Opcode::SetupMapping) || is(Opcode::RemoveMapping)) && self.window.is_none() {
            return Verdict::Refuse(libc::ENOSYS);
        }
        if self.readonly {
            let writes = WRITING.iter().any(|&o| is(o))
                || request.open_flags.is_some_and(|f| {
                    let f = f as libc::c_int;
                    f & libc::O_ACCMODE != libc::O_RDONLY || f & libc::O_TRUNC != 0
                })
                || request.mapping_flags.is_some_and(|f| f & SetupmappingFlags::WRITE.bits() != 0);
            if writes {
                return Verdict::Refuse(libc::EROFS);
            }
        }
        Verdict::Serve
    }
}

/// The error reply to `request` (an out header alone).
pub fn error_reply(request: &Request, errno: i32) -> OutHeader {
    OutHeader { len: size_of::<OutHeader>() as u32, error: -errno, unique: request.unique }
}

/// The size of a complete FUSE_INIT reply (protocol 7.23 and later; older clients get a
/// shorter one, left as the server wrote it).
pub const INIT_REPLY_LEN: usize = size_of::<OutHeader>() + size_of::<InitOut>();

/// Completes the server's successful INIT reply `out` to a client that offered `offered`:
/// `MAX_PAGES` (requests up to fuse-backend-rs's 1 MiB buffer) when offered, and with a DAX
/// `window` `MAP_ALIGNMENT` with `map_alignment` = log2 of the page size when offered.
pub fn amend_init(out: &mut InitOut, offered: u64, window: Option<Window>) {
    let offered = FsOptions::from_bits_truncate(offered);
    let mut flags = u64::from(out.flags) | (u64::from(out.flags2) << 32);
    if offered.contains(FsOptions::MAX_PAGES) {
        flags |= FsOptions::MAX_PAGES.bits();
        if offered.contains(FsOptions::BIG_WRITES) {
            flags |= FsOptions::BIG_WRITES.bits();
        }
        out.max_pages = MAX_REQ_PAGES;
        out.max_write = u32::from(MAX_REQ_PAGES) * crate::dax::host_page_size() as u32;
    }
    match window {
        Some(window) if offered.contains(FsOptions::MAP_ALIGNMENT) => {
            flags |= FsOptions::MAP_ALIGNMENT.bits();
            out.map_alignment = window.map_alignment();
        }
        _ => {}
    }
    out.flags = flags as u32;
    out.flags2 = (flags >> 32) as u32;
}

/// The name of a FUSE opcode (as in the kernel's `enum fuse_opcode`, CamelCase), `None` for a
/// number the ABI does not define.
pub fn opcode_name(opcode: u32) -> Option<&'static str> {
    const NAMES: [&str; 50] = [
        "", "Lookup", "Forget", "Getattr", "Setattr", "Readlink", "Symlink", "", "Mknod", "Mkdir", "Unlink", "Rmdir",
        "Rename", "Link", "Open", "Read", "Write", "Statfs", "Release", "", "Fsync", "Setxattr", "Getxattr",
        "Listxattr", "Removexattr", "Flush", "Init", "Opendir", "Readdir", "Releasedir", "Fsyncdir", "Getlk",
        "Setlk", "Setlkw", "Access", "Create", "Interrupt", "Bmap", "Destroy", "Ioctl", "Poll", "NotifyReply",
        "BatchForget", "Fallocate", "Readdirplus", "Rename2", "Lseek", "CopyFileRange", "SetupMapping",
        "RemoveMapping",
    ];
    NAMES.get(opcode as usize).copied().filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(opcode: Opcode) -> Request {
        Request { opcode: opcode as u32, unique: 7, ..Request::default() }
    }

    const WINDOW: Window = Window { size: 1 << 28, page_size: 4096 };

    #[test]
    fn opcode_names_match_fuse_backend_rs() {
        assert_eq!(opcode_name(Opcode::Fsync as u32), Some("Fsync"));
        assert_eq!(opcode_name(Opcode::Write as u32), Some("Write"));
        assert_eq!(opcode_name(Opcode::RemoveMapping as u32), Some("RemoveMapping"));
        assert_eq!(opcode_name(Opcode::Readdirplus as u32), Some(format!("{:?}", Opcode::Readdirplus).as_str()));
        for gap in [0, 7, 19, 50, 4096, u32::MAX] {
            assert_eq!(opcode_name(gap), None, "{gap}");
        }
    }

    #[test]
    fn unknown_opcodes_and_mappings_without_a_window_are_enosys() {
        let policy = Policy::default();
        let unknown = Request { opcode: 7, ..Request::default() };
        assert_eq!(policy.verdict(&unknown), Verdict::Refuse(libc::ENOSYS));
        assert_eq!(policy.verdict(&request(Opcode::SetupMapping)), Verdict::Refuse(libc::ENOSYS));
        assert_eq!(policy.verdict(&request(Opcode::RemoveMapping)), Verdict::Refuse(libc::ENOSYS));
        assert_eq!(policy.verdict(&request(Opcode::Read)), Verdict::Serve);
        let dax = Policy { window: Some(WINDOW), ..Policy::default() };
        assert_eq!(dax.verdict(&request(Opcode::SetupMapping)), Verdict::Serve);
        assert_eq!(dax.verdict(&request(Opcode::RemoveMapping)), Verdict::Serve);
    }

    #[test]
    fn a_readonly_share_refuses_changes_with_erofs() {
        let ro = Policy { readonly: true, window: Some(WINDOW) };
        for op in [Opcode::Write, Opcode::Create, Opcode::Mkdir, Opcode::Unlink, Opcode::Rename, Opcode::Setattr, Opcode::Symlink] {
            assert_eq!(ro.verdict(&request(op)), Verdict::Refuse(libc::EROFS), "{op:?}");
        }
        for op in [Opcode::Lookup, Opcode::Read, Opcode::Getattr, Opcode::Readdir, Opcode::Statfs, Opcode::Forget] {
            assert_eq!(ro.verdict(&request(op)), Verdict::Serve, "{op:?}");
        }
        let open = |flags: libc::c_int| Request { open_flags: Some(flags as u32), ..request(Opcode::Open) };
        assert_eq!(ro.verdict(&open(libc::O_RDONLY)), Verdict::Serve);
        assert_eq!(ro.verdict(&open(libc::O_RDWR)), Verdict::Refuse(libc::EROFS));
        assert_eq!(ro.verdict(&open(libc::O_WRONLY)), Verdict::Refuse(libc::EROFS));
        assert_eq!(ro.verdict(&open(libc::O_RDONLY | libc::O_TRUNC)), Verdict::Refuse(libc::EROFS));
        let map = |flags| Request { mapping_flags: Some(flags), ..request(Opcode::SetupMapping) };
        assert_eq!(ro.verdict(&map(2)), Verdict::Serve);
        assert_eq!(ro.verdict(&map(3)), Verdict::Refuse(libc::EROFS));
        let rw = Policy { readonly: false, window: Some(WINDOW) };
        assert_eq!(rw.verdict(&open(libc::O_RDWR)), Verdict::Serve);
        assert_eq!(rw.verdict(&map(3)), Verdict::Serve);
    }

    #[test]
    fn forgets_get_no_reply() {
        assert!(!request(Opcode::Forget).expects_reply());
        assert!(!request(Opcode::BatchForget).expects_reply());
        assert!(request(Opcode::Lookup).expects_reply());
        let reply = error_reply(&request(Opcode::Lookup), libc::ENOSYS);
        assert_eq!((reply.len, reply.error, reply.unique), (16, -libc::ENOSYS, 7));
    }

    #[test]
    fn init_gets_max_pages_and_with_dax_the_map_alignment() {
        let offered = (FsOptions::MAX_PAGES | FsOptions::BIG_WRITES | FsOptions::MAP_ALIGNMENT | FsOptions::DO_READDIRPLUS).bits();
        let server = InitOut { flags: FsOptions::DO_READDIRPLUS.bits() as u32, max_write: 4096, ..InitOut::default() };

        let mut plain = server;
        amend_init(&mut plain, offered, None);
        let flags = FsOptions::from_bits_truncate(u64::from(plain.flags));
        assert!(flags.contains(FsOptions::MAX_PAGES | FsOptions::BIG_WRITES | FsOptions::DO_READDIRPLUS));
        assert!(!flags.contains(FsOptions::MAP_ALIGNMENT), "no window, no alignment");
        assert_eq!((plain.max_pages, plain.map_alignment), (256, 0));
        assert_eq!(plain.max_write, 256 * crate::dax::host_page_size() as u32);

        let mut dax = server;
        amend_init(&mut dax, offered, Some(WINDOW));
        assert!(FsOptions::from_bits_truncate(u64::from(dax.flags)).contains(FsOptions::MAP_ALIGNMENT));
        assert_eq!(dax.map_alignment, 12);

        // Nothing the client did not offer.
        let mut shy = server;
        amend_init(&mut shy, FsOptions::DO_READDIRPLUS.bits(), Some(WINDOW));
        assert_eq!((shy.flags, shy.max_write, shy.max_pages, shy.map_alignment), (server.flags, 4096, 0, 0));
    }
}
