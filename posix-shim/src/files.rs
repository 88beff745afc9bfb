//! File system calls over the VFS (feature `fs`): `openat` and the other path-based calls,
//! `fstat`/`newfstatat`/`statx`, `getdents64`, `lseek`, `ftruncate`, `statfs`/`fstatfs`,
//! `sync`/`syncfs`, `fadvise64`, `getcwd`, `chdir`/`fchdir`. Without the feature these answer
//! `ENOSYS` (the image has no file system).
//!
//! A path relative to a directory descriptor starts at that open directory itself
//! ([`PathArg`], the VFS's `PathAt`), as on Linux: renaming the directory while it is open
//! changes nothing for later `*at` calls through it.

#[cfg(feature = "fs")]
pub use with_fs::*;

#[cfg(feature = "fs")]
mod with_fs {
    use crate::abi::{Stat, open_flags as o};
    use crate::fd::{self, Object};
    use crate::user::{self, StrBuffer};
    use alloc::sync::Arc;
    use libos::fs::vfs::PathAt;
    use libos::fs::vfs::{FileType, Metadata, OpenFlags, SeekFrom};
    use libos::fs::vfs as vfs_crate;
    use libos::{Errno, Result};

    /// `AT_FDCWD`.
    pub const AT_FDCWD: i64 = -100;

    /// Whether directory argument `dirfd` is `AT_FDCWD`. Linux reads it as an `int`: only the
    /// low 32 bits count, and a program may leave anything above them (glibc's busybox passes
    /// `AT_FDCWD` zero-extended, 0xffff_ff9c).
    pub fn is_cwd(dirfd: u64) -> bool {
        i64::from(dirfd as u32 as i32) == AT_FDCWD
    }

    pub(crate) const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
    const AT_REMOVEDIR: u64 = 0x200;
    const AT_SYMLINK_FOLLOW: u64 = 0x400;
    pub(crate) const AT_EMPTY_PATH: u64 = 0x1000;
    const PATH_MAX: usize = 4096;

    pub(crate) fn vfs() -> Result<&'static vfs_crate::Vfs> {
        libos::fs::vfs()
    }

    /// A path argument: the string copied from the program (in place, on the caller's stack)
    /// and the directory `dirfd` names when the path is relative to it, held for the call.
    pub(crate) struct PathArg {
        text: StrBuffer,
        dir: Option<Arc<Object>>,
    }

    impl PathArg {
        pub(crate) const fn new() -> PathArg {
            PathArg { text: StrBuffer::new(), dir: None }
        }

        /// Copies the path at `addr` in and returns it with where it starts: the root for an
        /// absolute path, the current directory with `AT_FDCWD`, else the open directory
        /// `dirfd` itself (not a path it was opened by, so renaming it changes nothing, as on
        /// Linux). `ENOENT` for an empty path, `EBADF` for a closed `dirfd`, `ENOTDIR` for one
        /// that is not a directory.
        pub(crate) fn read(&mut self, dirfd: u64, addr: u64) -> Result<PathAt<'_>> {
            self.copy_in(dirfd, addr)?;
            self.at()
        }

        /// [`PathArg::read`] without the result.
        fn copy_in(&mut self, dirfd: u64, addr: u64) -> Result<()> {
            // SAFETY: checked by `c_string`; the C program vouches for the rest (syscall
            // contract).
            let path = unsafe { user::c_string(addr, PATH_MAX, &mut self.text)? };
            if path.is_empty() {
                return Err(Errno::ENOENT);
            }
            if !path.starts_with('/') && !is_cwd(dirfd) {
                self.dir = Some(fd::get(dirfd)?);
            }
            Ok(())
        }

        /// The path read last, with its start.
        fn at(&self) -> Result<PathAt<'_>> {
            let dir = match self.dir.as_deref() {
                None => None,
                Some(Object::File(directory)) => Some(directory),
                Some(_) => return Err(Errno::ENOTDIR),
            };
            Ok(PathAt { dir, path: self.text.as_str() })
        }
    }

    // The VFS keeps Linux's value of `__O_TMPFILE` (the same on both architectures).
    const _: () = assert!(o::TMPFILE == OpenFlags::TMPFILE.bits());

    fn open_flags(flags: u32) -> Result<OpenFlags> {
        if flags & !o::KNOWN != 0 {
            return Err(Errno::EINVAL);
        }
        let mut out = OpenFlags::from_bits_truncate(flags & (o::ACCMODE | o::CREAT | o::EXCL | o::TRUNC | o::APPEND));
        if flags & o::ACCMODE == 3 {
            return Err(Errno::EINVAL);
        }
        if flags & o::DIRECTORY != 0 {
            out |= OpenFlags::DIRECTORY;
        }
        if flags & o::NOFOLLOW != 0 {
            out |= OpenFlags::NOFOLLOW;
        }
        if flags & o::TMPFILE != 0 {
            // O_TMPFILE: the VFS checks the rest of the combination (EINVAL).
            out |= OpenFlags::TMPFILE;
        }
        if flags & o::PATH != 0 {
            // Linux uses only these with O_PATH (and O_CLOEXEC, kept by the descriptor).
            out = OpenFlags::PATH | (out & (OpenFlags::DIRECTORY | OpenFlags::NOFOLLOW));
        }
        Ok(out)
    }

    /// `openat(dirfd, path, flags, mode)`.
    pub fn openat(dirfd: u64, path: u64, flags: u64, mode: u64) -> Result<u64> {
        let mut arg = PathArg::new();
        let path = arg.read(dirfd, path)?;
        let flags = flags as u32;
        let vfs_flags = open_flags(flags)?;
        let perm = (mode as u32) & 0o7777 & !crate::dispatch::umask_value();
        let file = vfs()?.open(path, vfs_flags, perm)?;
        if let Some(fd_number) = libos::fs::vfs::procfs::reopened_descriptor(&**file.node())
            && !vfs_flags.contains(OpenFlags::PATH)
        {
            // `/proc/self/fd/N` (`/dev/stdin`, ...) of a pipe: a new end of the same pipe;
            // the anonymous objects (eventfd, ...) cannot be opened, as on Linux.
            let object = match &*fd::get(u64::from(fd_number))? {
                Object::Pipe(end) => crate::events::fifo::reopen(end.pipe().clone(), u64::from(flags)),
                _ => return Err(Errno::ENXIO),
            };
            return fd::insert(object, flags & o::CLOEXEC != 0);
        }
        if file.node().file_type() == FileType::Fifo && !vfs_flags.contains(OpenFlags::PATH) {
            let pipe = crate::events::fifo::open(&file, u64::from(flags))?;
            return fd::insert(pipe, flags & o::CLOEXEC != 0);
        }
        fd::insert(Object::File(file), flags & o::CLOEXEC != 0)
    }

    fn stat_of(meta: &Metadata) -> Stat {
        let mut st = Stat {
            st_dev: meta.dev,
            st_ino: meta.ino,
            st_mode: meta.mode(),
            st_uid: meta.uid,
            st_gid: meta.gid,
            st_rdev: meta.rdev,
            ..Stat::default()
        };
        st.st_nlink = meta.nlink as _;
        st.st_size = meta.size as i64;
        st.st_blksize = meta.block_size as _;
        st.st_blocks = meta.blocks as i64;
        st.st_atime = meta.atime.secs() as i64;
        st.st_atime_nsec = i64::from(meta.atime.subsec_nanos());
        st.st_mtime = meta.mtime.secs() as i64;
        st.st_mtime_nsec = i64::from(meta.mtime.subsec_nanos());
        st.st_ctime = meta.ctime.secs() as i64;
        st.st_ctime_nsec = i64::from(meta.ctime.subsec_nanos());
        st
    }

    fn console_stat() -> Stat {
        // A character device like /dev/console (5, 1).
        Stat { st_mode: 0o020620, st_rdev: (5 << 8) | 1, st_blksize: 1024 as _, ..Stat::default() }
    }

    pub(crate) fn metadata_of_fd(fd_number: u64) -> Result<Option<Metadata>> {
        match &*fd::get(fd_number)? {
            Object::File(file) => file.metadata().map(Some),
            _ => Ok(None),
        }
    }

    /// `fstat(fd, buf)`.
    pub fn fstat(fd_number: u64, buf: u64) -> Result<u64> {
        let st = match metadata_of_fd(fd_number)? {
            Some(meta) => stat_of(&meta),
            // A pipe (anonymous or a FIFO's): what Linux's pipefs reports.
            None if matches!(&*fd::get(fd_number)?, Object::Pipe(_)) => Stat { st_mode: 0o010_600, st_blksize: 4096, ..Stat::default() },
            None => console_stat(),
        };
        // SAFETY: checked by `user::write`; the C program vouches for the buffer.
        unsafe { user::write(buf, st)? };
        Ok(0)
    }

    pub(crate) fn metadata_at(dirfd: u64, path: u64, flags: u64) -> Result<Option<Metadata>> {
        let mut arg = PathArg::new();
        match arg.copy_in(dirfd, path) {
            Err(Errno::ENOENT) if flags & AT_EMPTY_PATH != 0 && arg.text.as_str().is_empty() => {
                return if is_cwd(dirfd) { vfs()?.metadata(".").map(Some) } else { metadata_of_fd(dirfd) };
            }
            other => other?,
        }
        let path = arg.at()?;
        if flags & AT_SYMLINK_NOFOLLOW != 0 { vfs()?.symlink_metadata(path) } else { vfs()?.metadata(path) }.map(Some)
    }

    /// `newfstatat(dirfd, path, buf, flags)`.
    pub fn newfstatat(dirfd: u64, path: u64, buf: u64, flags: u64) -> Result<u64> {
        if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800) != 0 {
            return Err(Errno::EINVAL);
        }
        let st = metadata_at(dirfd, path, flags)?.as_ref().map_or_else(console_stat, stat_of);
        // SAFETY: as in `fstat`.
        unsafe { user::write(buf, st)? };
        Ok(0)
    }

    /// `statx(dirfd, path, flags, mask, buf)`: the basic fields (`STATX_BASIC_STATS`).
    pub fn statx(dirfd: u64, path: u64, flags: u64, _mask: u64, buf: u64) -> Result<u64> {
        if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800 | 0x6000) != 0 {
            return Err(Errno::EINVAL);
        }
        let st = metadata_at(dirfd, path, flags)?.as_ref().map_or_else(console_stat, stat_of);
        let mut out = [0u8; 256];
        let put = |out: &mut [u8; 256], at: usize, bytes: &[u8]| out[at..at + bytes.len()].copy_from_slice(bytes);
        const STATX_BASIC_STATS: u32 = 0x7ff;
        put(&mut out, 0, &STATX_BASIC_STATS.to_ne_bytes());
        put(&mut out, 4, &(st.st_blksize as u32).to_ne_bytes());
        put(&mut out, 16, &(st.st_nlink as u32).to_ne_bytes());
        put(&mut out, 20, &st.st_uid.to_ne_bytes());
        put(&mut out, 24, &st.st_gid.to_ne_bytes());
        put(&mut out, 28, &(st.st_mode as u16).to_ne_bytes());
        put(&mut out, 32, &st.st_ino.to_ne_bytes());
        put(&mut out, 40, &(st.st_size as u64).to_ne_bytes());
        put(&mut out, 48, &(st.st_blocks as u64).to_ne_bytes());
        for (at, (secs, nanos)) in [(64, (st.st_atime, st.st_atime_nsec)), (96, (st.st_ctime, st.st_ctime_nsec)), (112, (st.st_mtime, st.st_mtime_nsec))] {
            put(&mut out, at, &secs.to_ne_bytes());
            put(&mut out, at + 8, &(nanos as u32).to_ne_bytes());
        }
        put(&mut out, 128, &vfs_crate::dev_major(st.st_rdev as u64).to_ne_bytes());
        put(&mut out, 132, &vfs_crate::dev_minor(st.st_rdev as u64).to_ne_bytes());
        put(&mut out, 136, &((st.st_dev >> 8) as u32).to_ne_bytes());
        put(&mut out, 140, &((st.st_dev & 0xff) as u32).to_ne_bytes());
        // SAFETY: as in `fstat`.
        unsafe { user::write(buf, out)? };
        Ok(0)
    }

    /// `lseek(fd, offset, whence)`.
    pub fn lseek(fd_number: u64, offset: u64, whence: u64) -> Result<u64> {
        let object = fd::get(fd_number)?;
        let Object::File(file) = &*object else { return Err(Errno::ESPIPE) };
        let offset = offset as i64;
        let from = match whence {
            0 => SeekFrom::Start(u64::try_from(offset).map_err(|_| Errno::EINVAL)?),
            1 => SeekFrom::Current(offset),
            2 => SeekFrom::End(offset),
            _ => return Err(Errno::EINVAL),
        };
        crate::shared_offset::around(&object, file, || file.seek(from))
    }

    /// `getdents64(fd, buf, len)`: `struct linux_dirent64` records, with `.` and `..` first.
    pub fn getdents64(fd_number: u64, buf: u64, len: u64) -> Result<u64> {
        let object = fd::get(fd_number)?;
        let Object::File(file) = &*object else { return Err(Errno::ENOTDIR) };
        // SAFETY: checked by `slice_mut`; the C program vouches for the buffer.
        let out = unsafe { user::slice_mut(buf, len)? };
        let mut used = 0usize;
        loop {
            let before = file.position();
            let Some(entry) = file.read_dir_next()? else { break };
            let name = entry.name.as_bytes();
            let record = (19 + name.len() + 1).next_multiple_of(8);
            if used + record > out.len() {
                file.seek(SeekFrom::Start(before))?;
                if used == 0 {
                    return Err(Errno::EINVAL);
                }
                break;
            }
            let r = &mut out[used..used + record];
            r.fill(0);
            r[0..8].copy_from_slice(&entry.ino.to_ne_bytes());
            r[8..16].copy_from_slice(&entry.next_cookie.to_ne_bytes());
            r[16..18].copy_from_slice(&(record as u16).to_ne_bytes());
            r[18] = dirent_type(entry.file_type);
            r[19..19 + name.len()].copy_from_slice(name);
            used += record;
        }
        Ok(used as u64)
    }

    fn dirent_type(t: FileType) -> u8 {
        (t.mode_bits() >> 12) as u8
    }

    /// `mkdirat(dirfd, path, mode)`.
    pub fn mkdirat(dirfd: u64, path: u64, mode: u64) -> Result<u64> {
        let mut arg = PathArg::new();
        let path = arg.read(dirfd, path)?;
        vfs()?.mkdir(path, (mode as u32) & 0o7777 & !crate::dispatch::umask_value())?;
        Ok(0)
    }

    /// `unlinkat(dirfd, path, flags)`.
    pub fn unlinkat(dirfd: u64, path: u64, flags: u64) -> Result<u64> {
        if flags & !AT_REMOVEDIR != 0 {
            return Err(Errno::EINVAL);
        }
        let mut arg = PathArg::new();
        let path = arg.read(dirfd, path)?;
        if flags & AT_REMOVEDIR != 0 { vfs()?.rmdir(path)? } else { vfs()?.unlink(path)? }
        Ok(0)
    }

    /// `renameat2(olddirfd, old, newdirfd, new, flags)`: `RENAME_NOREPLACE` (`EEXIST` when
    /// `new` exists), `RENAME_EXCHANGE` (the two names swap); both together, and
    /// `RENAME_WHITEOUT` (for overlay file systems, which libos has none of), are `EINVAL`.
    pub fn renameat2(olddirfd: u64, old: u64, newdirfd: u64, new: u64, flags: u64) -> Result<u64> {
        const RENAME_NOREPLACE: u64 = 1;
        const RENAME_EXCHANGE: u64 = 2;
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0 || flags == RENAME_NOREPLACE | RENAME_EXCHANGE {
            return Err(Errno::EINVAL);
        }
        let mut old_arg = PathArg::new();
        let old = old_arg.read(olddirfd, old)?;
        let mut new_arg = PathArg::new();
        let new = new_arg.read(newdirfd, new)?;
        match flags {
            RENAME_NOREPLACE => vfs()?.rename_noreplace(old, new)?,
            RENAME_EXCHANGE => vfs()?.rename_exchange(old, new)?,
            _ => vfs()?.rename(old, new)?,
        }
        Ok(0)
    }

    /// `linkat(olddirfd, old, newdirfd, new, flags)`.
    /// `AT_SYMLINK_FOLLOW` follows a final symlink of `old` (through `/proc/self/fd/N`, the
    /// open file itself); `AT_EMPTY_PATH` with an empty `old` names `olddirfd`'s file (any
    /// descriptor of a file, `O_PATH` ones too, as Linux 6.10 allows without
    /// `CAP_DAC_READ_SEARCH`; a removed file is `ENOENT`, a pipe or socket `EXDEV`).
    pub fn linkat(olddirfd: u64, old: u64, newdirfd: u64, new: u64, flags: u64) -> Result<u64> {
        if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
            return Err(Errno::EINVAL);
        }
        // SAFETY: checked by `user::read`; the program passed a string.
        if flags & AT_EMPTY_PATH != 0 && unsafe { user::read::<u8>(old)? } == 0 {
            let mut new_arg = PathArg::new();
            let new = new_arg.read(newdirfd, new)?;
            if is_cwd(olddirfd) {
                vfs()?.link(".", new)?; // the current directory: EPERM
            } else {
                match &*fd::get(olddirfd)? {
                    Object::File(file) => vfs()?.link_open_file(file, new)?,
                    _ => return Err(Errno::EXDEV),
                }
            }
            return Ok(0);
        }
        let mut old_arg = PathArg::new();
        let old = old_arg.read(olddirfd, old)?;
        let mut new_arg = PathArg::new();
        let new = new_arg.read(newdirfd, new)?;
        if flags & AT_SYMLINK_FOLLOW != 0 { vfs()?.link_following(old, new)? } else { vfs()?.link(old, new)? }
        Ok(0)
    }

    /// `symlinkat(target, newdirfd, linkpath)`.
    pub fn symlinkat(target: u64, newdirfd: u64, link: u64) -> Result<u64> {
        let mut target_buffer = StrBuffer::new();
        // SAFETY: checked by `c_string`; the C program vouches for the rest.
        let target = unsafe { user::c_string(target, PATH_MAX, &mut target_buffer)? };
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        let mut link_arg = PathArg::new();
        let link = link_arg.read(newdirfd, link)?;
        vfs()?.symlink(target, link)?;
        Ok(0)
    }

    /// `readlinkat(dirfd, path, buf, size)`.
    pub fn readlinkat(dirfd: u64, path: u64, buf: u64, size: u64) -> Result<u64> {
        if size as i64 <= 0 {
            return Err(Errno::EINVAL);
        }
        let mut arg = PathArg::new();
        let path = arg.read(dirfd, path)?;
        let target = vfs()?.read_link(path)?;
        let n = target.len().min(size as usize);
        // SAFETY: as in `getdents64`.
        let out = unsafe { user::slice_mut(buf, n as u64)? };
        out.copy_from_slice(&target.as_bytes()[..n]);
        Ok(n as u64)
    }

    /// `ftruncate(fd, length)`.
    pub fn ftruncate(fd_number: u64, length: u64) -> Result<u64> {
        if (length as i64) < 0 {
            return Err(Errno::EINVAL);
        }
        let object = fd::get(fd_number)?;
        let Object::File(file) = &*object else { return Err(Errno::EINVAL) };
        if !file.flags().writable() {
            return Err(Errno::EINVAL);
        }
        file.set_len(length)?;
        Ok(0)
    }

    /// `truncate(path, length)`: as `ftruncate` on the file the path names (following
    /// symlinks); `EISDIR` for a directory, `EROFS` on a read-only file system.
    pub fn truncate(path: u64, length: u64) -> Result<u64> {
        if (length as i64) < 0 {
            return Err(Errno::EINVAL);
        }
        let mut arg = PathArg::new();
        let path = arg.read(AT_FDCWD as u64, path)?;
        let file = vfs()?.open(path, OpenFlags::WRONLY, 0)?;
        file.set_len(length)?;
        Ok(0)
    }

    /// `fsync(fd)` / `fdatasync(fd)`.
    pub fn fsync(fd_number: u64) -> Result<u64> {
        match &*fd::get(fd_number)? {
            Object::File(file) => file.sync().map(|()| 0),
            _ => Err(Errno::EINVAL),
        }
    }

    /// `utimensat(dirfd, path, times, flags)`: sets access and modification times
    /// (`UTIME_NOW`, `UTIME_OMIT`, or a time); `times == NULL` sets both to now; a null `path`
    /// means the descriptor `dirfd` itself (what `futimens` passes).
    pub fn utimensat(dirfd: u64, path: u64, times: u64, flags: u64) -> Result<u64> {
        use vfs_crate::{TimeUpdate, Timestamp};
        const UTIME_NOW: i64 = (1 << 30) - 1;
        const UTIME_OMIT: i64 = (1 << 30) - 2;
        if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
            return Err(Errno::EINVAL);
        }
        let (accessed, modified) = if times == 0 {
            (TimeUpdate::Now, TimeUpdate::Now)
        } else {
            // SAFETY: checked by `user::read`.
            let spec: [crate::abi::Timespec; 2] = unsafe { user::read(times)? };
            let update = |t: crate::abi::Timespec| match t.tv_nsec {
                UTIME_NOW => Ok(TimeUpdate::Now),
                UTIME_OMIT => Ok(TimeUpdate::Keep),
                n if (0..1_000_000_000).contains(&n) && t.tv_sec >= 0 => {
                    Ok(TimeUpdate::To(Timestamp(t.tv_sec as u64 * 1_000_000_000 + n as u64)))
                }
                _ => Err(Errno::EINVAL),
            };
            (update(spec[0])?, update(spec[1])?)
        };
        if path == 0 {
            return match &*fd::get(dirfd)? {
                Object::File(file) => file.set_times(accessed, modified).map(|()| 0),
                _ => Err(Errno::EPERM),
            };
        }
        let mut arg = PathArg::new();
        let path = arg.read(dirfd, path)?;
        vfs()?.set_times(path, accessed, modified, flags & AT_SYMLINK_NOFOLLOW == 0)?;
        Ok(0)
    }

    /// `statfs(path, buf)`: `struct statfs` (same layout on both architectures).
    pub fn statfs(path: u64, buf: u64) -> Result<u64> {
        let mut arg = PathArg::new();
        let path = arg.read(AT_FDCWD as u64, path)?;
        write_statfs(buf, &vfs()?.statfs(path.path)?)
    }

    /// `fstatfs(fd, buf)`: the file system of an open file; for pipes, sockets and the other
    /// kernel objects, the pseudo file systems Linux reports for them (`PIPEFS_MAGIC`,
    /// `SOCKFS_MAGIC`, `ANON_INODE_FS_MAGIC`).
    pub fn fstatfs(fd_number: u64, buf: u64) -> Result<u64> {
        let pseudo = |fs_type| vfs_crate::StatFs { fs_type, block_size: 4096, name_max: 255, flags: vfs_crate::STATFS_FLAGS_VALID, ..vfs_crate::StatFs::default() };
        let s = match &*fd::get(fd_number)? {
            Object::File(file) => vfs()?.statfs_of(file)?,
            Object::Pipe(_) => pseudo(0x5049_5045),
            Object::Socket(_) => pseudo(0x534f_434b),
            _ => pseudo(0x0904_1934),
        };
        write_statfs(buf, &s)
    }

    fn write_statfs(buf: u64, s: &vfs_crate::StatFs) -> Result<u64> {
        let words: [u64; 15] =
            [s.fs_type, s.block_size, s.blocks, s.blocks_free, s.blocks_free, s.files, s.files_free, 0, s.name_max, s.block_size, s.flags, 0, 0, 0, 0];
        // SAFETY: checked by `user::write`; the C program vouches for the buffer.
        unsafe { user::write(buf, words)? };
        Ok(0)
    }

    /// `sync()`: every mounted file system (errors are not reported: `sync` returns nothing).
    pub fn sync() -> Result<u64> {
        if let Ok(vfs) = vfs() {
            if let Err(e) = vfs.sync() {
                log::warn!("posix-shim: sync: {e:?}");
            }
        }
        Ok(0)
    }

    /// `syncfs(fd)`: the file system of an open file (other descriptors: nothing to write).
    pub fn syncfs(fd_number: u64) -> Result<u64> {
        match &*fd::get(fd_number)? {
            Object::File(file) => vfs()?.sync_of(file).map(|()| 0),
            _ => Ok(0),
        }
    }

    /// `fadvise64(fd, offset, len, advice)`: advice only, so nothing changes; the checks are
    /// Linux's (`EBADF`, `ESPIPE` for a pipe, `EINVAL` for an unknown advice or a negative
    /// length).
    pub fn fadvise64(fd_number: u64, _offset: u64, len: u64, advice: u64) -> Result<u64> {
        const POSIX_FADV_NOREUSE: u64 = 5;
        let object = fd::get(fd_number)?;
        if matches!(&*object, Object::Pipe(_)) {
            return Err(Errno::ESPIPE);
        }
        if advice > POSIX_FADV_NOREUSE || (len as i64) < 0 {
            return Err(Errno::EINVAL);
        }
        Ok(0)
    }

    /// `getcwd(buf, size)`: returns the length including the NUL, as the raw call does.
    pub fn getcwd(buf: u64, size: u64) -> Result<u64> {
        let cwd = vfs()?.current_dir()?;
        let needed = cwd.len() as u64 + 1;
        if size < needed {
            return Err(Errno::ERANGE);
        }
        // SAFETY: as in `getdents64`.
        let out = unsafe { user::slice_mut(buf, needed)? };
        out[..cwd.len()].copy_from_slice(cwd.as_bytes());
        out[cwd.len()] = 0;
        Ok(needed)
    }

    /// `chdir(path)`.
    pub fn chdir(path: u64) -> Result<u64> {
        let mut arg = PathArg::new();
        let path = arg.read(AT_FDCWD as u64, path)?;
        vfs()?.chdir(path.path)?;
        Ok(0)
    }

    /// `fchdir(fd)`: the open directory `fd` becomes the current directory (`ENOTDIR` for
    /// other descriptors).
    pub fn fchdir(fd_number: u64) -> Result<u64> {
        match &*fd::get(fd_number)? {
            Object::File(dir) => vfs()?.chdir_to(dir).map(|()| 0),
            _ => Err(Errno::ENOTDIR),
        }
    }
}
