//! The file system the server serves: fuse-backend-rs's `PassthroughFs` with one correction.
//!
//! Its FUSE_READDIR reports each entry's *FUSE node id* as the inode number, while LOOKUP,
//! GETATTR and READDIRPLUS report the host's `st_ino` (fuse-backend-rs's own `DirEntry` docs
//! require the latter). A client that matches directory entries against `stat` (libos's
//! `getcwd` walks `..` that way) then finds nothing. [`ShareFs::readdir`] serves READDIR from
//! READDIRPLUS, whose entries carry `st_ino`, and gives back the lookup count READDIRPLUS takes
//! for each entry (a READDIR client never FORGETs them). Extended attributes are served by
//! [`Xattrs`] (the passthrough's need a `/proc` the sandbox does not have). Every other
//! operation is the passthrough's.

use fuse_backend_rs::abi::fuse_abi::{CreateIn, stat64, statvfs64};
use fuse_backend_rs::abi::virtio_fs::RemovemappingOne;
use fuse_backend_rs::api::filesystem::{
    Context, DirEntry, Entry, FileSystem, FsOptions, GetxattrReply, ListxattrReply, OpenOptions, SetattrValid,
    ZeroCopyReader, ZeroCopyWriter,
};
use fuse_backend_rs::passthrough::PassthroughFs;
use fuse_backend_rs::transport::FsCacheReqHandler;
use crate::xattr::Xattrs;
use std::ffi::CStr;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// The passthrough file system with READDIR's inode numbers corrected and extended attributes
/// of its own (`None`: not served, `ENOSYS`, which guests report as `EOPNOTSUPP`).
pub struct ShareFs(pub PassthroughFs, pub Option<Xattrs>);

impl ShareFs {
    /// The attribute server, the host path of `inode` and its `stat`, for [`Xattrs`].
    fn xattr_target(&self, ctx: &Context, inode: Inode) -> io::Result<(&Xattrs, PathBuf, stat64)> {
        let xattrs = self.1.as_ref().ok_or_else(|| io::Error::from_raw_os_error(nix::libc::ENOSYS))?;
        let path = self.0.readlinkat_proc_file(inode)?;
        let (stat, _) = self.0.getattr(ctx, inode, None)?;
        Ok((xattrs, path, stat))
    }
}

type Inode = u64;
type Handle = u64;

impl FileSystem for ShareFs {
    type Inode = Inode;
    type Handle = Handle;

    fn readdir(
        &self,
        ctx: &Context,
        inode: Inode,
        handle: Handle,
        size: u32,
        offset: u64,
        add_entry: &mut dyn FnMut(DirEntry<'_>) -> io::Result<usize>,
    ) -> io::Result<()> {
        self.0.readdirplus(ctx, inode, handle, size, offset, &mut |dir_entry, entry| {
            let added = add_entry(dir_entry);
            // READDIRPLUS itself drops the count of an entry that did not fit (0).
            if matches!(added, Ok(n) if n > 0) {
                self.0.forget(ctx, entry.inode, 1);
            }
            added
        })
    }

    fn init(&self, capable: FsOptions) -> io::Result<FsOptions> {
        self.0.init(capable)
    }

    fn destroy(&self) {
        self.0.destroy();
    }

    fn statfs(&self, ctx: &Context, inode: Inode) -> io::Result<statvfs64> {
        self.0.statfs(ctx, inode)
    }

    fn lookup(&self, ctx: &Context, parent: Inode, name: &CStr) -> io::Result<Entry> {
        self.0.lookup(ctx, parent, name)
    }

    fn forget(&self, ctx: &Context, inode: Inode, count: u64) {
        self.0.forget(ctx, inode, count);
    }

    fn batch_forget(&self, ctx: &Context, requests: Vec<(Inode, u64)>) {
        self.0.batch_forget(ctx, requests);
    }

    fn opendir(&self, ctx: &Context, inode: Inode, flags: u32) -> io::Result<(Option<Handle>, OpenOptions)> {
        self.0.opendir(ctx, inode, flags)
    }

    fn releasedir(&self, ctx: &Context, inode: Inode, flags: u32, handle: Handle) -> io::Result<()> {
        self.0.releasedir(ctx, inode, flags, handle)
    }

    fn mkdir(&self, ctx: &Context, parent: Inode, name: &CStr, mode: u32, umask: u32) -> io::Result<Entry> {
        self.0.mkdir(ctx, parent, name, mode, umask)
    }

    fn rmdir(&self, ctx: &Context, parent: Inode, name: &CStr) -> io::Result<()> {
        self.0.rmdir(ctx, parent, name)
    }

    fn readdirplus(
        &self,
        ctx: &Context,
        inode: Inode,
        handle: Handle,
        size: u32,
        offset: u64,
        add_entry: &mut dyn FnMut(DirEntry<'_>, Entry) -> io::Result<usize>,
    ) -> io::Result<()> {
        self.0.readdirplus(ctx, inode, handle, size, offset, add_entry)
    }

    fn open(&self, ctx: &Context, inode: Inode, flags: u32, fuse_flags: u32) -> io::Result<(Option<Handle>, OpenOptions, Option<u32>)> {
        self.0.open(ctx, inode, flags, fuse_flags)
    }

    #[allow(clippy::too_many_arguments)]
    fn release(
        &self,
        ctx: &Context,
        inode: Inode,
        flags: u32,
        handle: Handle,
        flush: bool,
        flock_release: bool,
        lock_owner: Option<u64>,
    ) -> io::Result<()> {
        self.0.release(ctx, inode, flags, handle, flush, flock_release, lock_owner)
    }

    fn create(&self, ctx: &Context, parent: Inode, name: &CStr, args: CreateIn) -> io::Result<(Entry, Option<Handle>, OpenOptions, Option<u32>)> {
        self.0.create(ctx, parent, name, args)
    }

    fn unlink(&self, ctx: &Context, parent: Inode, name: &CStr) -> io::Result<()> {
        self.0.unlink(ctx, parent, name)
    }

    #[allow(clippy::too_many_arguments)]
    fn setupmapping(
        &self,
        ctx: &Context,
        inode: Inode,
        handle: Handle,
        foffset: u64,
        len: u64,
        flags: u64,
        moffset: u64,
        vu_req: &mut dyn FsCacheReqHandler,
    ) -> io::Result<()> {
        self.0.setupmapping(ctx, inode, handle, foffset, len, flags, moffset, vu_req)
    }

    fn removemapping(&self, ctx: &Context, inode: Inode, requests: Vec<RemovemappingOne>, vu_req: &mut dyn FsCacheReqHandler) -> io::Result<()> {
        self.0.removemapping(ctx, inode, requests, vu_req)
    }

    #[allow(clippy::too_many_arguments)]
    fn read(
        &self,
        ctx: &Context,
        inode: Inode,
        handle: Handle,
        w: &mut dyn ZeroCopyWriter,
        size: u32,
        offset: u64,
        lock_owner: Option<u64>,
        flags: u32,
    ) -> io::Result<usize> {
        self.0.read(ctx, inode, handle, w, size, offset, lock_owner, flags)
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        ctx: &Context,
        inode: Inode,
        handle: Handle,
        r: &mut dyn ZeroCopyReader,
        size: u32,
        offset: u64,
        lock_owner: Option<u64>,
        delayed_write: bool,
        flags: u32,
        fuse_flags: u32,
    ) -> io::Result<usize> {
        self.0.write(ctx, inode, handle, r, size, offset, lock_owner, delayed_write, flags, fuse_flags)
    }

    fn getattr(&self, ctx: &Context, inode: Inode, handle: Option<Handle>) -> io::Result<(stat64, Duration)> {
        self.0.getattr(ctx, inode, handle)
    }

    fn setattr(&self, ctx: &Context, inode: Inode, attr: stat64, handle: Option<Handle>, valid: SetattrValid) -> io::Result<(stat64, Duration)> {
        self.0.setattr(ctx, inode, attr, handle, valid)
    }

    fn rename(&self, ctx: &Context, olddir: Inode, oldname: &CStr, newdir: Inode, newname: &CStr, flags: u32) -> io::Result<()> {
        self.0.rename(ctx, olddir, oldname, newdir, newname, flags)
    }

    fn mknod(&self, ctx: &Context, parent: Inode, name: &CStr, mode: u32, rdev: u32, umask: u32) -> io::Result<Entry> {
        self.0.mknod(ctx, parent, name, mode, rdev, umask)
    }

    fn link(&self, ctx: &Context, inode: Inode, newparent: Inode, newname: &CStr) -> io::Result<Entry> {
        self.0.link(ctx, inode, newparent, newname)
    }

    fn symlink(&self, ctx: &Context, linkname: &CStr, parent: Inode, name: &CStr) -> io::Result<Entry> {
        self.0.symlink(ctx, linkname, parent, name)
    }

    fn readlink(&self, ctx: &Context, inode: Inode) -> io::Result<Vec<u8>> {
        self.0.readlink(ctx, inode)
    }

    fn flush(&self, ctx: &Context, inode: Inode, handle: Handle, lock_owner: u64) -> io::Result<()> {
        self.0.flush(ctx, inode, handle, lock_owner)
    }

    fn fsync(&self, ctx: &Context, inode: Inode, datasync: bool, handle: Handle) -> io::Result<()> {
        self.0.fsync(ctx, inode, datasync, handle)
    }

    fn fsyncdir(&self, ctx: &Context, inode: Inode, datasync: bool, handle: Handle) -> io::Result<()> {
        self.0.fsyncdir(ctx, inode, datasync, handle)
    }

    fn access(&self, ctx: &Context, inode: Inode, mask: u32) -> io::Result<()> {
        self.0.access(ctx, inode, mask)
    }

    fn setxattr(&self, ctx: &Context, inode: Inode, name: &CStr, value: &[u8], flags: u32) -> io::Result<()> {
        let (xattrs, path, stat) = self.xattr_target(ctx, inode)?;
        xattrs.set(&path, &stat, name, value, flags)
    }

    fn getxattr(&self, ctx: &Context, inode: Inode, name: &CStr, size: u32) -> io::Result<GetxattrReply> {
        let (xattrs, path, stat) = self.xattr_target(ctx, inode)?;
        xattrs.get(&path, &stat, name, size)
    }

    fn listxattr(&self, ctx: &Context, inode: Inode, size: u32) -> io::Result<ListxattrReply> {
        let (xattrs, path, stat) = self.xattr_target(ctx, inode)?;
        xattrs.list(&path, &stat, size)
    }

    fn removexattr(&self, ctx: &Context, inode: Inode, name: &CStr) -> io::Result<()> {
        let (xattrs, path, stat) = self.xattr_target(ctx, inode)?;
        xattrs.remove(&path, &stat, name)
    }

    fn fallocate(&self, ctx: &Context, inode: Inode, handle: Handle, mode: u32, offset: u64, length: u64) -> io::Result<()> {
        self.0.fallocate(ctx, inode, handle, mode, offset, length)
    }

    fn lseek(&self, ctx: &Context, inode: Inode, handle: Handle, offset: u64, whence: u32) -> io::Result<u64> {
        self.0.lseek(ctx, inode, handle, offset, whence)
    }
}
