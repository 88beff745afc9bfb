//! The DAX window: FUSE_SETUPMAPPING and FUSE_REMOVEMAPPING checked against the window and
//! turned into vhost-user `SHMEM_MAP` / `SHMEM_UNMAP` requests to the frontend (QEMU), which
//! maps the file into (or out of) shared-memory region 0 of the device.
//!
//! [`DaxMapper`] is fuse-backend-rs's [`FsCacheReqHandler`]: the passthrough file system opens
//! the file (read-only, or read-write for a writable mapping) and hands its fd here. Every
//! request is validated before anything goes to QEMU ([`Window::check_map`],
//! [`Window::check_unmap`]); the sending itself is behind [`MapSender`] so the validation and
//! the translation into [`VhostUserMMap`] are tested with a fake frontend.

use fuse_backend_rs::abi::virtio_fs::{RemovemappingOne, SetupmappingFlags};
use fuse_backend_rs::transport::FsCacheReqHandler;
use nix::libc;
use std::io;
use std::os::fd::RawFd;
use vhost::vhost_user::message::{VhostUserMMap, VhostUserMMapFlags};
use vhost::vhost_user::{Backend, VhostUserFrontendReqHandler};

/// The shared-memory region id of the virtio-fs DAX window (`VIRTIO_FS_SHMCAP_ID_CACHE`).
pub const DAX_SHMID: u8 = 0;

/// `len` of a FUSE_REMOVEMAPPING entry that means "the whole window" (with `moffset` 0), as
/// Linux guests send it.
pub const WHOLE_WINDOW: u64 = u64::MAX;

/// The DAX window as the daemon knows it: its size (what QEMU's `cache-size` is) and the host
/// page size every mapping must be aligned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Size in bytes.
    pub size: u64,
    /// The host page size in bytes (a power of two).
    pub page_size: u64,
}

/// One mapping request as it goes to the frontend (`VhostUserMMap` without the padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Offset in the file.
    pub file_offset: u64,
    /// Offset in the window.
    pub window_offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Whether the guest may write through the mapping.
    pub writable: bool,
}

impl Mapping {
    /// The vhost-user message body for this mapping (`shmid` 0: the DAX window).
    pub fn message(&self) -> VhostUserMMap {
        VhostUserMMap {
            shmid: DAX_SHMID,
            padding: [0; 7],
            fd_offset: self.file_offset,
            shm_offset: self.window_offset,
            len: self.len,
            flags: if self.writable { VhostUserMMapFlags::WRITABLE.bits() } else { 0 },
        }
    }
}

fn einval() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

impl Window {
    /// A window of `size` bytes with the host's page size.
    pub fn new(size: u64) -> Window {
        Window { size, page_size: host_page_size() }
    }

    /// log2 of the page size: FUSE_INIT's `map_alignment`.
    pub fn map_alignment(&self) -> u16 {
        self.page_size.trailing_zeros() as u16
    }

    fn aligned(&self, value: u64) -> bool {
        value & (self.page_size - 1) == 0
    }

    /// Checks a window range: not empty, page-aligned, inside the window, no overflow.
    fn check_range(&self, window_offset: u64, len: u64) -> io::Result<()> {
        let end = window_offset.checked_add(len).ok_or_else(einval)?;
        if len == 0 || !self.aligned(window_offset) || !self.aligned(len) || end > self.size {
            return Err(einval());
        }
        Ok(())
    }

    /// Checks a FUSE_SETUPMAPPING (`flags` are `FUSE_SETUPMAPPING_FLAG_*`) and gives the
    /// mapping to send. `EINVAL` for anything outside the window, unaligned, overflowing, or
    /// with unknown flags.
    pub fn check_map(&self, file_offset: u64, window_offset: u64, len: u64, flags: u64) -> io::Result<Mapping> {
        let flags = SetupmappingFlags::from_bits(flags).ok_or_else(einval)?;
        self.check_range(window_offset, len)?;
        // The file range must be expressible as an off_t and aligned like the window range
        // (mmap's offset must be a multiple of the page size).
        let file_end = file_offset.checked_add(len).ok_or_else(einval)?;
        if !self.aligned(file_offset) || file_end > i64::MAX as u64 {
            return Err(einval());
        }
        Ok(Mapping { file_offset, window_offset, len, writable: flags.contains(SetupmappingFlags::WRITE) })
    }

    /// Checks the entries of a FUSE_REMOVEMAPPING and gives the ranges to unmap, `(offset,
    /// len)`; `(0, WHOLE_WINDOW)` is the whole window. All are checked before any is sent.
    pub fn check_unmap(&self, requests: &[RemovemappingOne]) -> io::Result<Vec<(u64, u64)>> {
        requests
            .iter()
            .map(|r| {
                if r.len == WHOLE_WINDOW {
                    return if r.moffset == 0 && self.size != 0 { Ok((0, self.size)) } else { Err(einval()) };
                }
                self.check_range(r.moffset, r.len)?;
                Ok((r.moffset, r.len))
            })
            .collect()
    }
}

/// The host page size.
pub fn host_page_size() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        Ok(Some(size)) if size > 0 && (size as u64).is_power_of_two() => size as u64,
        _ => 4096,
    }
}

/// Where map and unmap requests go: the vhost-user backend channel to QEMU, or a fake in tests.
pub trait MapSender: Send + Sync + 'static {
    /// Sends `SHMEM_MAP` with `fd` (open for the duration of the call); `Ok` once the frontend
    /// acknowledged it.
    fn map(&mut self, request: &VhostUserMMap, fd: RawFd) -> io::Result<()>;
    /// Sends `SHMEM_UNMAP`.
    fn unmap(&mut self, request: &VhostUserMMap) -> io::Result<()>;
}

/// The real sender: the backend request channel QEMU gave with `SET_BACKEND_REQ_FD` (none yet,
/// or the frontend did not negotiate it: `ENOSYS`, as without a window).
impl MapSender for Option<Backend> {
    fn map(&mut self, request: &VhostUserMMap, fd: RawFd) -> io::Result<()> {
        let backend = self.as_ref().ok_or_else(|| io::Error::from_raw_os_error(libc::ENOSYS))?;
        backend.shmem_map(request, &fd).map(drop).map_err(frontend_error)
    }

    fn unmap(&mut self, request: &VhostUserMMap) -> io::Result<()> {
        let backend = self.as_ref().ok_or_else(|| io::Error::from_raw_os_error(libc::ENOSYS))?;
        backend.shmem_unmap(request).map(drop).map_err(frontend_error)
    }
}

/// What the guest gets when QEMU refused or the channel broke: `EIO` (logged here, where the
/// cause is known).
fn frontend_error(e: io::Error) -> io::Error {
    log::warn!("DAX: the frontend refused or did not answer a shared-memory request: {e}");
    io::Error::from_raw_os_error(libc::EIO)
}

/// fuse-backend-rs's handler for SETUPMAPPING/REMOVEMAPPING over a [`Window`].
pub struct DaxMapper<S: MapSender> {
    window: Window,
    sender: S,
}

impl<S: MapSender> DaxMapper<S> {
    /// A mapper for `window` that sends through `sender`.
    pub fn new(window: Window, sender: S) -> DaxMapper<S> {
        DaxMapper { window, sender }
    }

    /// The window.
    pub fn window(&self) -> Window {
        self.window
    }

    /// The sender (the daemon replaces the backend channel when QEMU sends a new one).
    pub fn sender_mut(&mut self) -> &mut S {
        &mut self.sender
    }
}

impl<S: MapSender> FsCacheReqHandler for DaxMapper<S> {
    fn map(&mut self, foffset: u64, moffset: u64, len: u64, flags: u64, fd: RawFd) -> io::Result<()> {
        let mapping = self.window.check_map(foffset, moffset, len, flags).inspect_err(|_| {
            log::debug!("DAX: refused SETUPMAPPING foffset {foffset:#x} moffset {moffset:#x} len {len:#x} flags {flags:#x}");
        })?;
        // fuse-backend-rs passes the fd of a file it opened for this request and keeps open
        // until `map` returns; the frontend gets its own copy through SCM_RIGHTS.
        self.sender.map(&mapping.message(), fd)
    }

    fn unmap(&mut self, requests: Vec<RemovemappingOne>) -> io::Result<()> {
        let ranges = self.window.check_unmap(&requests).inspect_err(|_| {
            log::debug!("DAX: refused REMOVEMAPPING of {} entries", requests.len());
        })?;
        for (window_offset, len) in ranges {
            let mapping = Mapping { file_offset: 0, window_offset, len, writable: false };
            self.sender.unmap(&mapping.message())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// A frontend that records what it was sent, and can refuse.
    #[derive(Default)]
    struct FakeFrontend {
        maps: Vec<(VhostUserMMap, RawFd)>,
        unmaps: Vec<VhostUserMMap>,
        refuse: bool,
    }

    impl MapSender for FakeFrontend {
        fn map(&mut self, request: &VhostUserMMap, fd: RawFd) -> io::Result<()> {
            if self.refuse {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            self.maps.push((*request, fd));
            Ok(())
        }

        fn unmap(&mut self, request: &VhostUserMMap) -> io::Result<()> {
            self.unmaps.push(*request);
            Ok(())
        }
    }

    const MIB: u64 = 1 << 20;
    const WINDOW: Window = Window { size: 256 * MIB, page_size: 4096 };
    const WRITE: u64 = 1;
    const READ: u64 = 2;

    fn errno(r: io::Result<impl std::fmt::Debug>) -> i32 {
        r.expect_err("must be refused").raw_os_error().expect("an errno")
    }

    #[test]
    fn mappings_inside_the_window_pass() {
        let m = WINDOW.check_map(2 * MIB, 254 * MIB, 2 * MIB, READ).unwrap();
        assert_eq!(m, Mapping { file_offset: 2 * MIB, window_offset: 254 * MIB, len: 2 * MIB, writable: false });
        // The last page, one page.
        assert!(WINDOW.check_map(0, 256 * MIB - 4096, 4096, 0).is_ok());
        assert!(WINDOW.check_map(0, 0, 256 * MIB, READ | WRITE).is_ok());
    }

    #[test]
    fn mappings_past_the_window_are_refused() {
        assert_eq!(errno(WINDOW.check_map(0, 256 * MIB, 4096, READ)), libc::EINVAL);
        assert_eq!(errno(WINDOW.check_map(0, 255 * MIB, 2 * MIB, READ)), libc::EINVAL);
        assert_eq!(errno(WINDOW.check_map(0, 0, 256 * MIB + 4096, READ)), libc::EINVAL);
        let none = Window { size: 0, page_size: 4096 };
        assert_eq!(errno(none.check_map(0, 0, 4096, READ)), libc::EINVAL);
    }

    #[test]
    fn unaligned_and_empty_mappings_are_refused() {
        assert_eq!(errno(WINDOW.check_map(0, 512, 4096, READ)), libc::EINVAL, "window offset");
        assert_eq!(errno(WINDOW.check_map(100, 0, 4096, READ)), libc::EINVAL, "file offset");
        assert_eq!(errno(WINDOW.check_map(0, 0, 4097, READ)), libc::EINVAL, "length");
        assert_eq!(errno(WINDOW.check_map(0, 0, 0, READ)), libc::EINVAL, "empty");
    }

    #[test]
    fn overflowing_mappings_are_refused() {
        let top = u64::MAX - 4095; // page-aligned
        assert_eq!(errno(WINDOW.check_map(0, top, 8192, READ)), libc::EINVAL);
        assert_eq!(errno(WINDOW.check_map(top, 0, 8192, READ)), libc::EINVAL);
        // Past off_t's range without wrapping u64.
        assert_eq!(errno(WINDOW.check_map(i64::MAX as u64 + 1, 0, 4096, READ)), libc::EINVAL);
        let huge = Window { size: u64::MAX, page_size: 4096 };
        assert_eq!(errno(huge.check_map(0, top, 8192, READ)), libc::EINVAL);
    }

    #[test]
    fn flags_become_writable_or_not() {
        assert!(WINDOW.check_map(0, 0, 4096, WRITE).unwrap().writable);
        assert!(WINDOW.check_map(0, 0, 4096, READ | WRITE).unwrap().writable);
        assert!(!WINDOW.check_map(0, 0, 4096, READ).unwrap().writable);
        assert!(!WINDOW.check_map(0, 0, 4096, 0).unwrap().writable, "OSv's read-only flags 0");
        assert_eq!(errno(WINDOW.check_map(0, 0, 4096, 4)), libc::EINVAL, "unknown flag");
        let m = WINDOW.check_map(8192, 4096, 4096, WRITE).unwrap().message();
        let (shmid, fd_offset, shm_offset, len, flags) = (m.shmid, m.fd_offset, m.shm_offset, m.len, m.flags);
        assert_eq!((shmid, fd_offset, shm_offset, len, flags), (0, 8192, 4096, 4096, VhostUserMMapFlags::WRITABLE.bits()));
    }

    #[test]
    fn map_alignment_is_log2_of_the_page_size() {
        assert_eq!(WINDOW.map_alignment(), 12);
        assert_eq!(Window { size: 0, page_size: 65536 }.map_alignment(), 16);
        assert!(host_page_size().is_power_of_two());
    }

    #[test]
    fn the_mapper_sends_valid_mappings_with_the_fd_and_nothing_else() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let fd = file.as_raw_fd();
        let mut mapper = DaxMapper::new(WINDOW, FakeFrontend::default());
        mapper.map(4096, 2 * MIB, 2 * MIB, READ, fd).unwrap();
        assert_eq!(errno(mapper.map(0, 255 * MIB, 2 * MIB, READ, fd)), libc::EINVAL);
        assert_eq!(errno(mapper.map(0, 4095, 4096, READ, fd)), libc::EINVAL);
        let frontend = mapper.sender_mut();
        assert_eq!(frontend.maps.len(), 1, "refused requests never reach the frontend");
        let (m, sent_fd) = frontend.maps[0];
        let (fd_offset, shm_offset, len, flags) = (m.fd_offset, m.shm_offset, m.len, m.flags);
        assert_eq!((fd_offset, shm_offset, len, flags, sent_fd), (4096, 2 * MIB, 2 * MIB, 0, fd));
        frontend.refuse = true;
        assert_eq!(errno(mapper.map(0, 0, 4096, WRITE, fd)), libc::EIO);
    }

    #[test]
    fn unmaps_are_checked_whole_before_any_is_sent() {
        let mut mapper = DaxMapper::new(WINDOW, FakeFrontend::default());
        let one = |moffset, len| RemovemappingOne { moffset, len };
        mapper.unmap(vec![one(0, 2 * MIB), one(254 * MIB, 2 * MIB)]).unwrap();
        assert_eq!(mapper.sender_mut().unmaps.len(), 2);
        // The second entry is bad: nothing of this request is sent.
        assert_eq!(errno(mapper.unmap(vec![one(0, 4096), one(256 * MIB, 4096)])), libc::EINVAL);
        assert_eq!(errno(mapper.unmap(vec![one(u64::MAX - 4095, 8192)])), libc::EINVAL);
        assert_eq!(errno(mapper.unmap(vec![one(4096, WHOLE_WINDOW)])), libc::EINVAL);
        assert_eq!(mapper.sender_mut().unmaps.len(), 2);
        // Linux's "everything".
        mapper.unmap(vec![one(0, WHOLE_WINDOW)]).unwrap();
        let last = *mapper.sender_mut().unmaps.last().unwrap();
        let (shmid, shm_offset, len, flags) = (last.shmid, last.shm_offset, last.len, last.flags);
        assert_eq!((shmid, shm_offset, len, flags), (0, 0, 256 * MIB, 0));
    }

    #[test]
    fn no_backend_channel_means_enosys() {
        let mut sender: Option<Backend> = None;
        let file = std::fs::File::open("/dev/null").unwrap();
        let m = WINDOW.check_map(0, 0, 4096, READ).unwrap().message();
        assert_eq!(errno(MapSender::map(&mut sender, &m, file.as_raw_fd())), libc::ENOSYS);
        assert_eq!(errno(MapSender::unmap(&mut sender, &m)), libc::ENOSYS);
    }
}
