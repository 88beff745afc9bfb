//! File systems, `std::fs`-style: [`File`], [`OpenOptions`], [`read_dir`], [`create_dir_all`],
//! [`metadata`], [`rename`], [`remove_file`], ... over one global namespace ([`vfs()`]), plus
//! `no_std` [`Read`] and [`Write`] traits.
//!
//! At boot libos mounts the root file system (`root=`, default `ramfs` when the image has the
//! `fs-ramfs` feature; a ramfs root starts with `/etc`, `/tmp` and `/root`, see [`crate::etc`]),
//! a devfs at `/dev`, the generated `/proc` and `/sys` files (`libos_vfs::procfs`), and every
//! `mount=FS:/PATH` of the kernel command line, then unpacks the app's initial files
//! (`libos::main!(main, initial_files = ...)`).
//! Errors are [`Errno`]s, as everywhere in libos.
//!
//! ```ignore
//! use libos::fs::{self, File, Read, Write};
//! fs::create_dir_all("/data/logs")?;
//! let mut file = File::create("/data/logs/today")?;
//! writeln!(file, "{} entries", 3)?;
//! let text = fs::read_to_string("/data/logs/today")?;
//! ```
//!
//! The VFS itself (traits to write a file system, mounts) is [`vfs`](mod@vfs); [`vfs()`] is the
//! global namespace. Apps rarely need either.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use libos_core::sync::Once;
use libos_core::{Errno, Result};
pub use libos_vfs::{DirEntry, FileType, Metadata, OpenFlags, SeekFrom, StatFs, TimeUpdate, Timestamp};
use libos_vfs::{FileSystem, OpenFile, Vfs};

/// The VFS crate: traits for writing a file system, [`vfs::Vfs`], devfs, the conformance
/// suite (feature `fs-conformance`).
pub use libos_vfs as vfs;

/// ramfs, the in-memory file system.
#[cfg(feature = "fs-ramfs")]
pub use libos_fs_ramfs as ramfs;

static VFS: Once<Vfs> = Once::new();

/// The global namespace, or `None` before boot mounted it.
pub fn try_vfs() -> Option<&'static Vfs> {
    VFS.get()
}

/// The global namespace (`ENODEV` before boot mounted it).
pub fn vfs() -> Result<&'static Vfs> {
    try_vfs().ok_or(Errno::ENODEV)
}

/// Installs the global namespace (boot does this; host tests too). Later calls are ignored.
pub fn init(vfs: Vfs) -> &'static Vfs {
    VFS.call_once(|| vfs)
}

/// The file systems this image can mount, by name (`virtiofs` takes the share's tag:
/// `virtiofs:TAG`).
pub fn known_file_systems() -> &'static [&'static str] {
    &[
        #[cfg(feature = "fs-ramfs")]
        "ramfs",
        "devfs",
        "proc",
        "sysfs",
        #[cfg(feature = "fs-virtiofs")]
        "virtiofs:TAG",
        #[cfg(feature = "fs-ext2")]
        "ext2:DISK",
    ]
}

/// A new instance of the file system called `name` (see [`known_file_systems`]).
pub fn new_file_system(name: &str) -> core::result::Result<Arc<dyn FileSystem>, String> {
    match name {
        #[cfg(feature = "fs-ramfs")]
        "ramfs" => Ok(Arc::new(libos_fs_ramfs::RamFs::new())),
        "devfs" => Ok(Arc::new(libos_vfs::devfs::DevFs::with_nodes(&libos_vfs::devfs::PlatformEntropy, device_nodes()))),
        "proc" => Ok(Arc::new(libos_vfs::procfs::ProcFs::new(Arc::new(SystemFigures)))),
        "sysfs" => Ok(Arc::new(libos_vfs::procfs::ProcFs::sys(Arc::new(SystemFigures)))),
        #[cfg(feature = "fs-virtiofs")]
        _ if name.starts_with("virtiofs:") => {
            let tag = &name["virtiofs:".len()..];
            let device = crate::virtiofs::device(tag)?;
            let fs = libos_fs_virtiofs::VirtioFs::mount(device, libos_fs_virtiofs::MountOptions::default())
                .map_err(|e| alloc::format!("cannot mount virtio-fs share `{tag}`: {e}"))?;
            Ok(fs)
        }
        #[cfg(feature = "fs-ext2")]
        _ if name.starts_with("ext2:") => {
            let disk = &name["ext2:".len()..];
            let device = crate::block::device(disk)?;
            let options = libos_fs_ext2::MountOptions { cache_bytes: crate::block::cache_bytes(), ..Default::default() };
            let fs = libos_fs_ext2::Ext2Fs::mount(device, options).map_err(|e| alloc::format!("cannot mount ext2 on {disk}: {e}"))?;
            Ok(fs)
        }
        _ => Err(alloc::format!("unknown file system `{name}` (this image has: {})", known_file_systems().join(", "))),
    }
}

/// The device nodes of drivers for devfs: the disks (feature `blk`).
fn device_nodes() -> Vec<(String, Arc<dyn libos_vfs::Node>)> {
    #[cfg(feature = "blk")]
    return crate::block::device_nodes();
    #[cfg(not(feature = "blk"))]
    Vec::new()
}

/// Mounts what the kernel command line asks for: the root, devfs at `/dev`, procfs at `/proc`,
/// its `/sys` at `/sys`, then every `mount=` in order (creating missing mount-point
/// directories).
pub fn mount_at_boot(root: Option<&str>, mounts: &[(String, String)]) -> core::result::Result<(), String> {
    let default_root = if cfg!(feature = "fs-ramfs") { "ramfs" } else { "devfs" };
    let root_name = root.unwrap_or(default_root);
    let vfs = init(Vfs::new(new_file_system(root_name)?));
    if root_name == "ramfs" {
        crate::etc::populate_memory_root();
    }
    // A host share or a disk as root gets devfs only where it has a /dev: the boot never
    // creates directories on the host or on the user's disk.
    let on_host = root_name.starts_with("virtiofs:") || root_name.starts_with("ext2:");
    for (fs_name, path) in [("devfs", "/dev"), ("proc", "/proc"), ("sysfs", "/sys")] {
        if root_name == "devfs" || on_host && metadata(path).is_err() {
            continue;
        }
        let fs = new_file_system(fs_name)?;
        if let Err(e) = create_dir_all(path).and_then(|()| vfs.mount(path, fs)) {
            log::warn!("no {path}: {e}");
        }
    }
    for (name, path) in mounts {
        let fs = new_file_system(name)?;
        create_dir_all(path)
            .and_then(|()| vfs.mount(path, fs))
            .map_err(|e| alloc::format!("cannot mount {name} at {path}: {e}"))?;
    }
    Ok(())
}

/// procfs's figures from the running system: the monotonic clock, the halted-time
/// accounting, the heap and the wall clock.
struct SystemFigures;

impl libos_vfs::procfs::Figures for SystemFigures {
    fn uptime_ns(&self) -> u64 {
        crate::time::Instant::now().as_nanos()
    }

    fn idle_ns(&self) -> u64 {
        crate::time::Instant::from_counter(libos_core::idle::ticks()).as_nanos()
    }

    fn memory(&self) -> (u64, u64) {
        let heap = libos_core::heap::stats();
        (heap.claimed, heap.claimed.saturating_sub(heap.in_use))
    }

    fn boot_time_secs(&self) -> u64 {
        let now = crate::time::SystemTime::now().duration_since(crate::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        now.saturating_sub(crate::time::Instant::now().as_nanos() / 1_000_000_000)
    }

    fn mounts(&self) -> Vec<libos_vfs::MountInfo> {
        try_vfs().map(|vfs| vfs.mounts()).unwrap_or_default()
    }

    fn process(&self) -> Option<Arc<dyn libos_vfs::procfs::ProcessView>> {
        PROCESS.get().cloned()
    }
}

/// The running process as `/proc/self` shows it, once the C runtime registered it.
static PROCESS: Once<Arc<dyn libos_vfs::procfs::ProcessView>> = Once::new();

/// Registers what `/proc/self` and `/proc/PID` show (the C runtime does, as its program starts;
/// later calls are ignored: one process per VM).
pub fn set_process_view(view: Arc<dyn libos_vfs::procfs::ProcessView>) {
    PROCESS.call_once(|| view);
}

/// Unpacks the app's initial files (a `newc` cpio archive, see [`crate::main!`]) into `/`.
pub fn unpack_initial_files(archive: &[u8]) -> core::result::Result<(), String> {
    unpack_into_root("initial files", archive)
}

/// Unpacks the initial RAM archive the loader put beside the image (QEMU `-initrd`, a `newc`
/// cpio archive: `hal::Platform::initrd`) into `/`, after the app's own initial files: `./x run
/// --elf PATH` hands elf-runner its program this way, with no rebuild of the image.
pub fn unpack_initrd(archive: &[u8]) -> core::result::Result<(), String> {
    unpack_into_root("initial RAM archive", archive)
}

fn unpack_into_root(what: &str, archive: &[u8]) -> core::result::Result<(), String> {
    if archive.is_empty() {
        return Ok(());
    }
    let vfs = vfs().map_err(|e| alloc::format!("{what}: {e}"))?;
    let done = libos_vfs::cpio::unpack(vfs, archive, "/").map_err(|e| alloc::format!("{what}: {e}"))?;
    log::info!("{what}: {} directories, {} files ({} bytes), {} symlinks", done.dirs, done.files, done.bytes, done.symlinks);
    Ok(())
}

/// Mounts `fs` at the directory `path`.
pub fn mount(path: &str, fs: Arc<dyn FileSystem>) -> Result<()> {
    vfs()?.mount(path, fs)
}

/// Unmounts the file system mounted at `path`.
pub fn unmount(path: &str) -> Result<()> {
    vfs()?.unmount(path)
}

/// Reading bytes, like `std::io::Read`.
pub trait Read {
    /// Reads into `buf`; returns the bytes read, 0 at the end.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize>;

    /// Fills `buf` completely (`EIO` if the data ends first, like `UnexpectedEof`).
    fn read_exact(&mut self, mut buf: &mut [u8]) -> Result<()> {
        while !buf.is_empty() {
            match self.read(buf)? {
                0 => return Err(Errno::EIO),
                n => buf = &mut buf[n..],
            }
        }
        Ok(())
    }

    /// Reads to the end, appending to `out`; returns the bytes read.
    fn read_to_end(&mut self, out: &mut Vec<u8>) -> Result<usize> {
        let start = out.len();
        let mut chunk = [0u8; 4096];
        loop {
            match self.read(&mut chunk)? {
                0 => return Ok(out.len() - start),
                n => out.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads to the end as UTF-8 (`EILSEQ` if it is not).
    fn read_to_string(&mut self, out: &mut String) -> Result<usize> {
        let mut bytes = Vec::new();
        let n = self.read_to_end(&mut bytes)?;
        out.push_str(core::str::from_utf8(&bytes).map_err(|_| Errno::EILSEQ)?);
        Ok(n)
    }
}

/// Writing bytes, like `std::io::Write`.
pub trait Write {
    /// Writes from `buf`; returns the bytes written.
    fn write(&mut self, buf: &[u8]) -> Result<usize>;

    /// Writes pending data through to the file (a no-op for unbuffered files).
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    /// Writes all of `buf` (`EIO` if a write makes no progress).
    fn write_all(&mut self, mut buf: &[u8]) -> Result<()> {
        while !buf.is_empty() {
            match self.write(buf)? {
                0 => return Err(Errno::EIO),
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    /// Writes formatted text, so `write!`/`writeln!` work.
    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> Result<()> {
        struct Adapter<'a, W: Write + ?Sized> {
            inner: &'a mut W,
            error: Option<Errno>,
        }
        impl<W: Write + ?Sized> fmt::Write for Adapter<'_, W> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.inner.write_all(s.as_bytes()).map_err(|e| {
                    self.error = Some(e);
                    fmt::Error
                })
            }
        }
        let mut adapter = Adapter { inner: self, error: None };
        match fmt::write(&mut adapter, args) {
            Ok(()) => Ok(()),
            Err(_) => Err(adapter.error.unwrap_or(Errno::EIO)),
        }
    }
}

/// Options for opening a file, like `std::fs::OpenOptions`.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    perm: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// Nothing set (opening needs at least `read` or `write`).
    pub fn new() -> OpenOptions {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            perm: 0o644,
        }
    }

    /// Open for reading.
    pub fn read(&mut self, on: bool) -> &mut Self {
        self.read = on;
        self
    }

    /// Open for writing.
    pub fn write(&mut self, on: bool) -> &mut Self {
        self.write = on;
        self
    }

    /// Every write appends (implies `write`).
    pub fn append(&mut self, on: bool) -> &mut Self {
        self.append = on;
        self
    }

    /// Truncate to zero length on open.
    pub fn truncate(&mut self, on: bool) -> &mut Self {
        self.truncate = on;
        self
    }

    /// Create the file if missing.
    pub fn create(&mut self, on: bool) -> &mut Self {
        self.create = on;
        self
    }

    /// Create the file, failing with `EEXIST` if it exists.
    pub fn create_new(&mut self, on: bool) -> &mut Self {
        self.create_new = on;
        self
    }

    /// Permission bits for a created file (default `0o644`).
    pub fn mode(&mut self, perm: u32) -> &mut Self {
        self.perm = perm;
        self
    }

    /// The `open` flags these options stand for (`EINVAL` for impossible combinations, as
    /// `std` does).
    pub fn flags(&self) -> Result<OpenFlags> {
        let write = self.write || self.append;
        let mut flags = match (self.read, write) {
            (true, true) => OpenFlags::RDWR,
            (false, true) => OpenFlags::WRONLY,
            (true, false) => OpenFlags::RDONLY,
            (false, false) => return Err(Errno::EINVAL),
        };
        if (self.create || self.create_new || self.truncate) && !write {
            return Err(Errno::EINVAL);
        }
        if self.truncate && self.append {
            return Err(Errno::EINVAL);
        }
        if self.append {
            flags |= OpenFlags::APPEND;
        }
        if self.truncate {
            flags |= OpenFlags::TRUNC;
        }
        if self.create || self.create_new {
            flags |= OpenFlags::CREAT;
        }
        if self.create_new {
            flags |= OpenFlags::EXCL;
        }
        Ok(flags)
    }

    /// Opens `path` with these options.
    pub fn open(&self, path: &str) -> Result<File> {
        Ok(File { inner: vfs()?.open(path, self.flags()?, self.perm)? })
    }
}

/// An open file, like `std::fs::File`. Closed when dropped.
#[derive(Debug)]
pub struct File {
    inner: OpenFile,
}

impl File {
    /// Opens `path` read-only.
    pub fn open(path: &str) -> Result<File> {
        OpenOptions::new().read(true).open(path)
    }

    /// Creates `path` (or truncates it) for writing.
    pub fn create(path: &str) -> Result<File> {
        OpenOptions::new().write(true).create(true).truncate(true).open(path)
    }

    /// Creates `path` for reading and writing, failing with `EEXIST` if it exists.
    pub fn create_new(path: &str) -> Result<File> {
        OpenOptions::new().read(true).write(true).create_new(true).open(path)
    }

    /// Options to open a file with.
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// The file's metadata.
    pub fn metadata(&self) -> Result<Metadata> {
        self.inner.metadata()
    }

    /// Sets the size (shrinking or growing with zeros).
    pub fn set_len(&self, size: u64) -> Result<()> {
        self.inner.set_len(size)
    }

    /// Sets the access and modification times (`futimens`; [`TimeUpdate::Keep`] leaves one).
    pub fn set_times(&self, accessed: TimeUpdate, modified: TimeUpdate) -> Result<()> {
        self.inner.set_times(accessed, modified)
    }

    /// Writes data and metadata to stable storage.
    pub fn sync_all(&self) -> Result<()> {
        self.inner.sync()
    }

    /// Moves the offset.
    pub fn seek(&mut self, pos: SeekFrom) -> Result<u64> {
        self.inner.seek(pos)
    }

    /// Reads at `offset` without moving the offset.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.inner.read_at(offset, buf)
    }

    /// Writes at `offset` without moving the offset.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<usize> {
        self.inner.write_at(offset, buf)
    }

    /// The VFS's open file (for the C shim and tests).
    pub fn as_open_file(&self) -> &OpenFile {
        &self.inner
    }
}

impl Read for File {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.inner.read(buf)
    }
}

impl Write for File {
    fn write(&mut self, buf: &[u8]) -> Result<usize> {
        self.inner.write(buf)
    }
}

/// The whole contents of `path`.
pub fn read(path: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    File::open(path)?.read_to_end(&mut out)?;
    Ok(out)
}

/// The whole contents of `path` as UTF-8 (`EILSEQ` if it is not).
pub fn read_to_string(path: &str) -> Result<String> {
    let mut out = String::new();
    File::open(path)?.read_to_string(&mut out)?;
    Ok(out)
}

/// Creates or replaces `path` with `data`.
pub fn write(path: &str, data: impl AsRef<[u8]>) -> Result<()> {
    File::create(path)?.write_all(data.as_ref())
}

/// The metadata of `path`, following symlinks.
pub fn metadata(path: &str) -> Result<Metadata> {
    vfs()?.metadata(path)
}

/// Sets the access and modification times of `path`, following symlinks (`utimensat`;
/// [`TimeUpdate::Keep`] leaves one as it is).
pub fn set_times(path: &str, accessed: TimeUpdate, modified: TimeUpdate) -> Result<()> {
    vfs()?.set_times(path, accessed, modified, true)
}

/// The metadata of `path` itself, not following a symlink.
pub fn symlink_metadata(path: &str) -> Result<Metadata> {
    vfs()?.symlink_metadata(path)
}

/// True if `path` exists (errors other than `ENOENT` count as existing).
pub fn exists(path: &str) -> bool {
    !matches!(metadata(path), Err(Errno::ENOENT) | Err(Errno::ENODEV))
}

/// The entries of directory `path` (without `.` and `..`).
pub fn read_dir(path: &str) -> Result<ReadDir> {
    Ok(ReadDir { entries: vfs()?.read_dir(path)?.into_iter() })
}

/// Iterator over directory entries, from [`read_dir`].
#[derive(Debug)]
pub struct ReadDir {
    entries: alloc::vec::IntoIter<DirEntry>,
}

impl Iterator for ReadDir {
    type Item = Result<DirEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        self.entries.next().map(Ok)
    }
}

/// Creates the directory `path`.
pub fn create_dir(path: &str) -> Result<()> {
    vfs()?.mkdir(path, 0o755)
}

/// Creates `path` and every missing parent; existing directories are fine.
pub fn create_dir_all(path: &str) -> Result<()> {
    let vfs = vfs()?;
    // Every prefix ending before a `/`, then the whole path.
    let ends = path.match_indices('/').map(|(i, _)| i).chain(core::iter::once(path.len()));
    for end in ends {
        let prefix = &path[..end];
        if prefix.trim_matches('/').is_empty() {
            continue;
        }
        match vfs.mkdir(prefix, 0o755) {
            Ok(()) => {}
            Err(Errno::EEXIST) if vfs.metadata(prefix)?.is_dir() => {}
            // A file in the way: walking through it is ENOTDIR, being it is EEXIST.
            Err(Errno::EEXIST) if !path[end..].trim_matches('/').is_empty() => return Err(Errno::ENOTDIR),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Removes the empty directory `path`.
pub fn remove_dir(path: &str) -> Result<()> {
    vfs()?.rmdir(path)
}

/// Removes the file (or symlink) `path`.
pub fn remove_file(path: &str) -> Result<()> {
    vfs()?.unlink(path)
}

/// Renames `from` to `to`, replacing `to` if it exists.
pub fn rename(from: &str, to: &str) -> Result<()> {
    vfs()?.rename(from, to)
}

/// Adds the name `link` for `original`.
pub fn hard_link(original: &str, link: &str) -> Result<()> {
    vfs()?.link(original, link)
}

/// Creates the symlink `link` pointing to `target`.
pub fn symlink(target: &str, link: &str) -> Result<()> {
    vfs()?.symlink(target, link)
}

/// The target of symlink `path`.
pub fn read_link(path: &str) -> Result<String> {
    vfs()?.read_link(path)
}

/// The current directory's absolute path.
pub fn current_dir() -> Result<String> {
    vfs()?.current_dir()
}

/// Changes the current directory.
pub fn set_current_dir(path: &str) -> Result<()> {
    vfs()?.chdir(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() {
        VFS.call_once(|| Vfs::new(new_file_system(known_file_systems()[0]).unwrap()));
    }

    #[test]
    fn open_options_map_to_flags() {
        let flags = |o: &OpenOptions| o.flags();
        assert_eq!(flags(OpenOptions::new().read(true)), Ok(OpenFlags::RDONLY));
        assert_eq!(flags(OpenOptions::new().append(true)), Ok(OpenFlags::WRONLY | OpenFlags::APPEND));
        assert_eq!(
            flags(OpenOptions::new().read(true).write(true).create_new(true)),
            Ok(OpenFlags::RDWR | OpenFlags::CREAT | OpenFlags::EXCL)
        );
        assert_eq!(flags(&OpenOptions::new()), Err(Errno::EINVAL));
        assert_eq!(flags(OpenOptions::new().read(true).create(true)), Err(Errno::EINVAL));
        assert_eq!(flags(OpenOptions::new().append(true).truncate(true)), Err(Errno::EINVAL));
    }

    #[cfg(feature = "fs-ramfs")]
    #[test]
    fn std_like_api_on_ramfs() {
        setup();
        create_dir_all("/t/a/b/").unwrap();
        create_dir_all("é/ü//x").unwrap();
        assert!(metadata("/é/ü/x").unwrap().is_dir());
        create_dir_all("/t/a/b").unwrap();
        assert!(metadata("/t/a/b").unwrap().is_dir());
        write("/t/a/b/f", "hello").unwrap();
        assert_eq!(create_dir_all("/t/a/b/f/g"), Err(Errno::ENOTDIR));
        let mut file = OpenOptions::new().append(true).open("/t/a/b/f").unwrap();
        let who = "world";
        writeln!(file, ", {who}!").unwrap();
        assert_eq!(read_to_string("/t/a/b/f").unwrap(), "hello, world!\n");
        rename("/t/a/b/f", "/t/g").unwrap();
        let names: Vec<String> = read_dir("/t").unwrap().map(|e| e.unwrap().name).collect();
        assert_eq!(names.len(), 2);
        assert!(exists("/t/g") && !exists("/t/a/b/f"));
        let mut buf = [0u8; 5];
        File::open("/t/g").unwrap().read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        assert_eq!(File::open("/t/g").unwrap().read_exact(&mut [0u8; 50]), Err(Errno::EIO));
        assert_eq!(File::create_new("/t/g").unwrap_err(), Errno::EEXIST);
        remove_file("/t/g").unwrap();
        assert_eq!(remove_dir("/t/a"), Err(Errno::ENOTEMPTY));
        assert_eq!(read("/t/g"), Err(Errno::ENOENT));
    }

    #[cfg(feature = "fs-ramfs")]
    #[test]
    fn unknown_file_systems_are_named() {
        let error = new_file_system("ext9").err().unwrap();
        let expected = if cfg!(feature = "fs-ext2") { "ramfs, devfs, proc, sysfs, ext2:DISK" } else { "ramfs, devfs, proc, sysfs" };
        assert_eq!(error, alloc::format!("unknown file system `ext9` (this image has: {expected})"));
    }
}
