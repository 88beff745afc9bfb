//! Plain data the VFS and file systems exchange: file types, metadata, timestamps, directory
//! entries, `statfs` results, open flags, and the [`Clock`] file systems take their times from.

use alloc::string::String;
use bitflags::bitflags;

/// Longest file name (one path component) in bytes, as on Linux (`NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// Longest path in bytes including its terminating NUL, as on Linux (`PATH_MAX`): a path of
/// 4096 bytes or more is `ENAMETOOLONG`.
pub const PATH_MAX: usize = 4096;
/// How many symbolic links one path resolution may follow before failing with `ELOOP`
/// (Linux's `MAXSYMLINKS`).
pub const MAX_SYMLINKS: u32 = 40;

/// A device number from its major and minor numbers, in the encoding of glibc's and musl's
/// `makedev` (what `st_rdev` and `mknod` carry).
pub const fn makedev(major: u32, minor: u32) -> u64 {
    let (major, minor) = (major as u64, minor as u64);
    ((major & 0xffff_f000) << 32) | ((major & 0xfff) << 8) | ((minor & 0xffff_ff00) << 12) | (minor & 0xff)
}

/// The major number of a [`makedev`] device number.
pub const fn dev_major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)) as u32
}

/// The minor number of a [`makedev`] device number.
pub const fn dev_minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0xff)) as u32
}

/// The type of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A character device (`/dev/null`, ...).
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A Unix domain socket.
    Socket,
}

impl FileType {
    /// The `S_IFMT` bits of `st_mode` for this type (Linux values).
    pub const fn mode_bits(self) -> u32 {
        match self {
            FileType::Regular => 0o100_000,
            FileType::Directory => 0o040_000,
            FileType::Symlink => 0o120_000,
            FileType::CharDevice => 0o020_000,
            FileType::BlockDevice => 0o060_000,
            FileType::Fifo => 0o010_000,
            FileType::Socket => 0o140_000,
        }
    }

    /// The type whose `S_IFMT` bits `mode` holds (other bits ignored); `None` for bits that
    /// name no type.
    pub const fn from_mode(mode: u32) -> Option<FileType> {
        Some(match mode & 0o170_000 {
            0o100_000 => FileType::Regular,
            0o040_000 => FileType::Directory,
            0o120_000 => FileType::Symlink,
            0o020_000 => FileType::CharDevice,
            0o060_000 => FileType::BlockDevice,
            0o010_000 => FileType::Fifo,
            0o140_000 => FileType::Socket,
            _ => return None,
        })
    }

    /// True for [`FileType::Directory`].
    pub const fn is_dir(self) -> bool {
        matches!(self, FileType::Directory)
    }
}

/// A point in time with nanosecond resolution: nanoseconds since the Unix epoch (1970-01-01
/// 00:00:00 UTC), as `st_mtim` counts.
///
/// Images take times from [`PlatformClock`], the wall clock; a file system that gets times from
/// elsewhere (virtio-fs: the host) stores them unchanged, on the same scale.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Whole seconds.
    pub const fn secs(self) -> u64 {
        self.0 / 1_000_000_000
    }

    /// The nanoseconds within the second.
    pub const fn subsec_nanos(self) -> u32 {
        (self.0 % 1_000_000_000) as u32
    }
}

/// How `set_times` changes one timestamp: `utimensat`'s `UTIME_OMIT`, `UTIME_NOW`, or a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUpdate {
    /// Leave it as it is.
    Keep,
    /// The file system's current time.
    Now,
    /// This time.
    To(Timestamp),
}

/// Where a file system gets the current time. Host tests use [`TickClock`] so times are
/// deterministic; images use [`PlatformClock`] for file times and [`MonotonicClock`] to
/// measure intervals (cache lifetimes), which must not jump when the wall clock is set.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The wall clock ([`libos_core::time::SystemTime`]): the real-time clock's time when the
/// machine has one, else 1970 plus the time since machine reset. Reads zero before a platform
/// is registered.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlatformClock;

impl Clock for PlatformClock {
    fn now(&self) -> Timestamp {
        match libos_core::hal::try_platform() {
            Some(_) => Timestamp::from(libos_core::time::SystemTime::now()),
            None => Timestamp(0),
        }
    }
}

impl From<libos_core::time::SystemTime> for Timestamp {
    fn from(time: libos_core::time::SystemTime) -> Timestamp {
        Timestamp(time.unix_nanos())
    }
}

/// The same moment on the wall clock (times past [`libos_core::time::SystemTime::MAX`], which
/// only a foreign file system can hold, saturate there).
impl From<Timestamp> for libos_core::time::SystemTime {
    fn from(time: Timestamp) -> libos_core::time::SystemTime {
        libos_core::time::SystemTime::from_unix_nanos(time.0).unwrap_or(libos_core::time::SystemTime::MAX)
    }
}

/// The monotonic clock ([`libos_core::time::Instant`], nanoseconds since machine reset), for
/// measuring intervals: unlike [`PlatformClock`] it never jumps (`clock_settime` does not move
/// it). Not for file times. Reads zero before a platform is registered.
#[derive(Clone, Copy, Debug, Default)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    fn now(&self) -> Timestamp {
        match libos_core::hal::try_platform() {
            Some(_) => Timestamp(libos_core::time::Instant::now().as_nanos()),
            None => Timestamp(0),
        }
    }
}

/// A deterministic clock for tests: every reading is one nanosecond later than the previous.
#[derive(Debug, Default)]
pub struct TickClock(core::sync::atomic::AtomicU64);

impl TickClock {
    /// A clock whose first reading is `start + 1`.
    pub const fn new(start: u64) -> TickClock {
        TickClock(core::sync::atomic::AtomicU64::new(start))
    }
}

impl Clock for TickClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.fetch_add(1, core::sync::atomic::Ordering::Relaxed) + 1)
    }
}

/// What `stat` reports about a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// The device: the VFS fills in the mount's id, so `(dev, ino)` identifies a file.
    pub dev: u64,
    /// The inode number, unique within the file system while the node exists.
    pub ino: u64,
    /// The node's type.
    pub file_type: FileType,
    /// Permission bits (`0o7777`), enforced by the VFS (see [`crate::Credentials`]).
    pub perm: u32,
    /// The owner's user id.
    pub uid: u32,
    /// The owner's group id.
    pub gid: u32,
    /// Hard links: for a directory 2 plus its subdirectories, as on Linux.
    pub nlink: u64,
    /// Size in bytes (a symlink: its target's length; a directory: file-system defined).
    pub size: u64,
    /// Storage used, in 512-byte units (holes in sparse files take none).
    pub blocks: u64,
    /// Preferred I/O size.
    pub block_size: u32,
    /// Device number for device nodes, 0 otherwise.
    pub rdev: u64,
    /// Last access (ramfs updates it on read; file systems may be lazier, like `relatime`).
    pub atime: Timestamp,
    /// Last data modification.
    pub mtime: Timestamp,
    /// Last status change (metadata, links, data).
    pub ctime: Timestamp,
}

impl Metadata {
    /// `st_mode`: type bits and permission bits.
    pub const fn mode(&self) -> u32 {
        self.file_type.mode_bits() | (self.perm & 0o7777)
    }

    /// True for a directory.
    pub const fn is_dir(&self) -> bool {
        self.file_type.is_dir()
    }

    /// True for a regular file.
    pub const fn is_file(&self) -> bool {
        matches!(self.file_type, FileType::Regular)
    }

    /// True for a symbolic link.
    pub const fn is_symlink(&self) -> bool {
        matches!(self.file_type, FileType::Symlink)
    }
}

/// Who owns a new node: the VFS decides (the caller's file-system ids, or the group of a
/// set-group-id directory) and the file system stores it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// A change of a node's attributes ([`crate::Node::set_attr`]): what `chmod`, `chown` and
/// `utimensat` change, in one call so a file system can write its inode once. Fields left at
/// `None`/[`TimeUpdate::Keep`] stay; the change time always becomes now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetAttr {
    /// New permission bits (`0o7777`).
    pub perm: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// Access time.
    pub atime: TimeUpdate,
    /// Modification time.
    pub mtime: TimeUpdate,
}

impl SetAttr {
    /// Changes nothing but the change time.
    pub const NONE: SetAttr = SetAttr { perm: None, uid: None, gid: None, atime: TimeUpdate::Keep, mtime: TimeUpdate::Keep };

    /// Sets the permission bits only.
    pub const fn perm(perm: u32) -> SetAttr {
        SetAttr { perm: Some(perm & 0o7777), ..SetAttr::NONE }
    }

    /// Sets the access and modification times only.
    pub const fn times(atime: TimeUpdate, mtime: TimeUpdate) -> SetAttr {
        SetAttr { atime, mtime, ..SetAttr::NONE }
    }

    /// Applies the time updates to `atime`/`mtime`, with `now` for [`TimeUpdate::Now`]: a
    /// helper for file systems.
    pub fn apply_times(&self, now: Timestamp, atime: &mut Timestamp, mtime: &mut Timestamp) {
        let pick = |update: TimeUpdate, old: Timestamp| match update {
            TimeUpdate::Keep => old,
            TimeUpdate::Now => now,
            TimeUpdate::To(time) => time,
        };
        *atime = pick(self.atime, *atime);
        *mtime = pick(self.mtime, *mtime);
    }
}

/// One directory entry from [`crate::Node::read_dir`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name (never `.` or `..`).
    pub name: String,
    /// Its inode number.
    pub ino: u64,
    /// Its type.
    pub file_type: FileType,
    /// The cookie that continues the listing after this entry. Cookies are stable: reading
    /// from a cookie later returns the entries that still exist after it, even if other
    /// entries were added or removed meanwhile.
    pub next_cookie: u64,
}

/// What `statfs` reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatFs {
    /// The file system's magic number (Linux values where one exists, e.g. ramfs `0x858458f6`).
    pub fs_type: u64,
    /// Block size in bytes.
    pub block_size: u64,
    /// Total blocks (`u64::MAX / block_size` when unlimited).
    pub blocks: u64,
    /// Free blocks.
    pub blocks_free: u64,
    /// Nodes in use plus free nodes (0 when not counted).
    pub files: u64,
    /// Free nodes.
    pub files_free: u64,
    /// Longest name.
    pub name_max: u64,
    /// `statfs`'s `f_flags`: the [`MountFlags`] of the mount asked about, with Linux's
    /// `ST_VALID`. File systems leave it 0: the VFS fills it in.
    pub flags: u64,
}

bitflags! {
    /// A mount's options, with the bit values of `statfs`'s `f_flags` (`ST_*`), which the
    /// `MS_*` flags of `mount(2)` share below `MS_REMOUNT`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct MountFlags: u32 {
        /// No changes (`EROFS`), whatever the file system allows.
        const READ_ONLY = 1;
        /// Set-id bits are ignored by `execve` (libos never switches ids on `execve`, so this
        /// changes nothing but what `statfs` reports).
        const NO_SUID = 2;
        /// Device nodes do not open (`EACCES`).
        const NO_DEV = 4;
        /// Programs do not run from it (`EACCES`).
        const NO_EXEC = 8;
    }
}

/// `statfs`'s `ST_VALID`: `f_flags` is filled in (Linux always sets it).
pub const STATFS_FLAGS_VALID: u64 = 0x20;

bitflags! {
    /// Flags of [`crate::Vfs::open`], with the bit values of Linux on x86_64 (the C shim maps
    /// aarch64's different `O_DIRECTORY`/`O_NOFOLLOW` bits). The access mode is the low two
    /// bits: `O_RDONLY` (0), [`OpenFlags::WRONLY`], [`OpenFlags::RDWR`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct OpenFlags: u32 {
        /// Write only.
        const WRONLY = 0o1;
        /// Read and write.
        const RDWR = 0o2;
        /// Create the file if it does not exist.
        const CREAT = 0o100;
        /// With `CREAT`: fail with `EEXIST` if the name exists (even as a dangling symlink).
        const EXCL = 0o200;
        /// Truncate a regular file to zero length on open.
        const TRUNC = 0o1000;
        /// Every write goes to the end of the file.
        const APPEND = 0o2000;
        /// Fail with `ENOTDIR` unless the path names a directory.
        const DIRECTORY = 0o200_000;
        /// Fail with `ELOOP` if the last component is a symbolic link (with `PATH`: open the
        /// link itself).
        const NOFOLLOW = 0o400_000;
        /// `O_PATH`: a handle on the node for path walks, `fstat`, `fchdir` and the like, not
        /// for its contents: no permission on the node itself is needed, and reading, writing,
        /// listing, seeking and changing attributes through it are `EBADF`.
        const PATH = 0o10_000_000;
        /// With [`OpenFlags::DIRECTORY`] (Linux's `O_TMPFILE` is both bits): an unnamed
        /// regular file in the directory the path names, for writing, freed when its last
        /// descriptor closes unless a `linkat` names it first (never, with `EXCL`).
        const TMPFILE = 0o20_000_000;
    }
}

impl OpenFlags {
    /// Read only (no bits): the default access mode.
    pub const RDONLY: OpenFlags = OpenFlags::empty();

    /// True when the access mode allows reading.
    pub const fn readable(self) -> bool {
        !self.contains(OpenFlags::PATH) && (!self.contains(OpenFlags::WRONLY) || self.contains(OpenFlags::RDWR))
    }

    /// True when the access mode allows writing.
    pub const fn writable(self) -> bool {
        !self.contains(OpenFlags::PATH) && self.intersects(OpenFlags::WRONLY.union(OpenFlags::RDWR))
    }
}

/// Where [`crate::OpenFile::seek`] measures from, like `std::io::SeekFrom`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeekFrom {
    /// From the start.
    Start(u64),
    /// From the end of the file.
    End(i64),
    /// From the current offset.
    Current(i64),
}

#[cfg(test)]
mod tests {
    use super::*;
    use libos_core::time::SystemTime;

    #[test]
    fn timestamps_are_wall_clock_nanoseconds() {
        let time = SystemTime::from_unix_nanos(1_750_000_000_123_456_789).unwrap();
        let stamp = Timestamp::from(time);
        assert_eq!((stamp.secs(), stamp.subsec_nanos()), (1_750_000_000, 123_456_789));
        assert_eq!(SystemTime::from(stamp), time);
        // A host's time past 2262 (virtio-fs) saturates instead of wrapping.
        assert_eq!(SystemTime::from(Timestamp(u64::MAX)), SystemTime::MAX);
    }
}
