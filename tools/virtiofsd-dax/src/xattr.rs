//! Extended attributes of the share's files, served without a `/proc` in the sandbox.
//!
//! fuse-backend-rs's passthrough keeps an `O_PATH` descriptor for every inode the guest knows,
//! and the `f*xattr` calls refuse `O_PATH` descriptors, so it names the inode by the path
//! `/proc/self/fd/N` instead. The `pivot_root` sandbox mounts no `/proc`, so that path does not
//! exist there. We do what virtiofsd does, through a handle on `/proc/self/fd` opened before
//! the confinement: make it the working directory and call the path-taking `*xattr` calls with
//! the bare descriptor number. The magic link `N` leads to the inode itself (a symbolic link's
//! own inode too, as its descriptor was opened with `O_NOFOLLOW`), whatever its name now.
//!
//! The passthrough does not lend its descriptor, only the path the kernel reports for it. We
//! open that path (`O_PATH | O_NOFOLLOW`) and use our descriptor only if it is the same inode
//! (`st_dev` and `st_ino` against the passthrough's own `stat`), so a rename on the host between
//! the two steps gives `ESTALE` rather than another file's attributes. A file that is open but
//! has no name left (`… (deleted)`) has no path to open: its attributes give `ENOENT`.
//!
//! The working directory is process-wide; one lock keeps the swaps apart, and every call puts
//! it back where it was (nothing else in the daemon resolves relative paths: the passthrough
//! works from descriptors).
//! Permission checks are the guest's (libos's VFS applies Linux's rules above FUSE); the daemon
//! acts as root, so `trusted.*` and `security.*` work too.

use fuse_backend_rs::abi::fuse_abi::stat64;
use fuse_backend_rs::api::filesystem::{GetxattrReply, ListxattrReply};
use rustix::fs::{Mode, OFlags, XattrFlags};
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;

/// The largest value Linux stores (`XATTR_SIZE_MAX`) and the largest name list.
const SIZE_MAX: usize = 64 * 1024;

/// The handle on `/proc/self/fd` and the lock on the working directory.
pub struct Xattrs {
    proc_self_fd: OwnedFd,
    working_directory: Mutex<()>,
}

impl Xattrs {
    /// Opens `/proc/self/fd`; call it before the confinement (and after the PID namespace's
    /// fork, so `self` is the daemon).
    pub fn open() -> io::Result<Xattrs> {
        let proc_self_fd = rustix::fs::open("/proc/self/fd", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Xattrs { proc_self_fd, working_directory: Mutex::new(()) })
    }

    /// Runs `call` with the working directory at `/proc/self/fd` and the name of a
    /// descriptor of the inode whose host path is `path` and whose `stat` is `expected`.
    fn on_inode<T>(&self, path: &std::path::Path, expected: &stat64, call: impl FnOnce(&str) -> rustix::io::Result<T>) -> io::Result<T> {
        let fd = rustix::fs::open(path, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
        let found = rustix::fs::fstat(&fd)?;
        if found.st_dev != expected.st_dev || found.st_ino != expected.st_ino {
            return Err(rustix::io::Errno::STALE.into());
        }
        let name = fd.as_raw_fd().to_string();
        let _held = self.working_directory.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = rustix::fs::open(".", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        rustix::process::fchdir(&self.proc_self_fd)?;
        let result = call(&name);
        let back = rustix::process::fchdir(&before);
        let value = result?;
        back?;
        Ok(value)
    }

    pub fn get(&self, path: &std::path::Path, stat: &stat64, name: &CStr, size: u32) -> io::Result<GetxattrReply> {
        if size == 0 {
            let len = self.on_inode(path, stat, |fd| rustix::fs::getxattr_query(fd, name))?;
            return Ok(GetxattrReply::Count(count(len)?));
        }
        let mut value = vec![0u8; (size as usize).min(SIZE_MAX)];
        let len = self.on_inode(path, stat, |fd| rustix::fs::getxattr(fd, name, &mut value[..]))?;
        value.truncate(len);
        Ok(GetxattrReply::Value(value))
    }

    pub fn list(&self, path: &std::path::Path, stat: &stat64, size: u32) -> io::Result<ListxattrReply> {
        if size == 0 {
            let len = self.on_inode(path, stat, |fd| rustix::fs::listxattr_query(fd))?;
            return Ok(ListxattrReply::Count(count(len)?));
        }
        let mut names = vec![0u8; (size as usize).min(SIZE_MAX)];
        let len = self.on_inode(path, stat, |fd| rustix::fs::listxattr(fd, &mut names[..]))?;
        names.truncate(len);
        Ok(ListxattrReply::Names(names))
    }

    pub fn set(&self, path: &std::path::Path, stat: &stat64, name: &CStr, value: &[u8], flags: u32) -> io::Result<()> {
        let flags = XattrFlags::from_bits_retain(flags);
        self.on_inode(path, stat, |fd| rustix::fs::setxattr(fd, name, value, flags))
    }

    pub fn remove(&self, path: &std::path::Path, stat: &stat64, name: &CStr) -> io::Result<()> {
        self.on_inode(path, stat, |fd| rustix::fs::removexattr(fd, name))
    }
}

fn count(len: usize) -> io::Result<u32> {
    u32::try_from(len).map_err(|_| rustix::io::Errno::TOOBIG.into())
}
