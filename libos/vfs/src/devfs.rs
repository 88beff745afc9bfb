//! devfs: the device nodes every image has, as a [`FileSystem`] to mount at `/dev`.
//!
//! | node | read | write |
//! |---|---|---|
//! | `null` | end of file | discards |
//! | `zero` | zeros | discards |
//! | `full` | zeros | `ENOSPC` |
//! | `console` | end of file (no console input yet) | the platform console ([`libos_core::hal::Platform::console_write`]) |
//! | `urandom`, `random` | pseudo-random bytes | accepted and mixed into the generator |
//!
//! And Linux's symlinks into `/proc/self/fd`: `fd`, `stdin`, `stdout`, `stderr` (so
//! `echo oops > /dev/stderr` writes wherever descriptor 2 goes; see [`crate::procfs`]).
//!
//! **`urandom`** (and `random`, which Linux 5.6 and later makes the same once seeded). Bytes come from an [`EntropySource`]: in the kernel [`PlatformEntropy`], the
//! kernel's one generator ([`libos_core::random`]: ChaCha20 seeded by virtio-rng or the CPU's
//! random instruction). As Linux's `/dev/urandom`, reading never blocks: before a source seeded
//! the generator the bytes are only as unpredictable as the cycle counter (the boot says so
//! once), and [`DevFs::urandom_is_seeded`] tells which. What programs write is mixed in without
//! being credited.
//!
//! Other device nodes (disks: `/dev/vda`, ...) are added when the devfs is made
//! ([`DevFs::with_nodes`]); they are nodes of their own drivers, with inode numbers from
//! [`FIRST_EXTRA_INO`] up. The directory is fixed: creating or removing nodes fails with
//! `EPERM`.

use crate::node::{FileSystem, Node};
use crate::types::{DirEntry, FileType, Metadata, StatFs, Timestamp};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use libos_core::{Errno, Result};

/// Where `/dev/urandom`'s bytes come from.
pub trait EntropySource: Send + Sync {
    /// Fills `buf` without blocking.
    fn fill(&self, buf: &mut [u8]);
    /// Mixes in bytes a program wrote (without crediting them as entropy).
    fn mix(&self, data: &[u8]);
    /// True when a real entropy source seeded the bytes.
    fn is_seeded(&self) -> bool;
}

/// The kernel's generator ([`libos_core::random`]), seeded by the platform's entropy sources.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlatformEntropy;

impl EntropySource for PlatformEntropy {
    fn fill(&self, buf: &mut [u8]) {
        libos_core::random::fill_insecure(buf);
    }

    fn mix(&self, data: &[u8]) {
        libos_core::random::add_randomness(data);
    }

    fn is_seeded(&self) -> bool {
        libos_core::random::is_seeded()
    }
}

/// The kinds of device node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Null,
    Zero,
    Full,
    Console,
    Urandom,
}

/// `(name, kind, Linux device number major:minor)`.
const DEVICES: [(&str, Kind, (u64, u64)); 6] = [
    ("null", Kind::Null, (1, 3)),
    ("zero", Kind::Zero, (1, 5)),
    ("full", Kind::Full, (1, 7)),
    ("urandom", Kind::Urandom, (1, 9)),
    ("console", Kind::Console, (5, 1)),
    ("random", Kind::Urandom, (1, 8)),
];

/// `(name, target)` of the symlinks, with inode numbers from [`FIRST_LINK_INO`].
const LINKS: [(&str, &str); 4] =
    [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")];
const FIRST_LINK_INO: u64 = 100;

/// One of [`LINKS`].
struct Link {
    ino: u64,
    target: &'static str,
}

impl Node for Link {
    fn ino(&self) -> u64 {
        self.ino
    }

    fn file_type(&self) -> FileType {
        FileType::Symlink
    }

    fn metadata(&self) -> Result<Metadata> {
        Ok(Metadata { size: self.target.len() as u64, ..metadata(self.ino, FileType::Symlink, 0o777, 1, 0) })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn read_link(&self) -> Result<String> {
        Ok(String::from(self.target))
    }
}

/// The lowest inode number of a node added with [`DevFs::with_nodes`] (the fixed devices take
/// the numbers below).
pub const FIRST_EXTRA_INO: u64 = 1000;

/// The device file system.
pub struct DevFs {
    root: Arc<Root>,
}

struct Root {
    devices: Vec<Arc<Device>>,
    /// Nodes of other drivers, by name.
    extra: Vec<(String, Arc<dyn Node>)>,
    entropy: &'static dyn EntropySource,
}

struct Device {
    ino: u64,
    name: &'static str,
    kind: Kind,
    rdev: u64,
    entropy: &'static dyn EntropySource,
}

impl DevFs {
    /// A devfs whose `urandom` reads from `entropy` (see the module docs).
    pub fn new(entropy: &'static dyn EntropySource) -> DevFs {
        DevFs::with_nodes(entropy, Vec::new())
    }

    /// A devfs with the fixed devices and `extra` nodes (`(name, node)`; the nodes' inode
    /// numbers must be distinct and at least [`FIRST_EXTRA_INO`]).
    pub fn with_nodes(entropy: &'static dyn EntropySource, extra: Vec<(String, Arc<dyn Node>)>) -> DevFs {
        let devices = DEVICES
            .iter()
            .zip(2u64..)
            .map(|(&(name, kind, (major, minor)), ino)| {
                Arc::new(Device { ino, name, kind, rdev: (major << 8) | minor, entropy })
            })
            .collect();
        DevFs { root: Arc::new(Root { devices, extra, entropy }) }
    }

    /// True if `urandom`'s bytes come from a generator a real entropy source seeded.
    pub fn urandom_is_seeded(&self) -> bool {
        self.root.entropy.is_seeded()
    }
}

impl FileSystem for DevFs {
    fn name(&self) -> &str {
        "devfs"
    }

    fn provides_devices(&self) -> bool {
        true
    }

    fn root(&self) -> Arc<dyn Node> {
        self.root.clone()
    }

    fn statfs(&self) -> Result<StatFs> {
        Ok(StatFs { fs_type: 0x1373, block_size: 4096, name_max: crate::NAME_MAX as u64, ..StatFs::default() })
    }
}

fn metadata(ino: u64, file_type: FileType, perm: u32, nlink: u64, rdev: u64) -> Metadata {
    Metadata {
        dev: 0,
        ino,
        file_type,
        perm,
        uid: 0,
        gid: 0,
        nlink,
        size: 0,
        blocks: 0,
        block_size: 4096,
        rdev,
        atime: Timestamp(0),
        mtime: Timestamp(0),
        ctime: Timestamp(0),
    }
}

impl Node for Root {
    fn ino(&self) -> u64 {
        1
    }

    fn file_type(&self) -> FileType {
        FileType::Directory
    }

    fn metadata(&self) -> Result<Metadata> {
        Ok(metadata(1, FileType::Directory, 0o755, 2, 0))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn lookup(&self, name: &str) -> Result<Arc<dyn Node>> {
        if name == ".." {
            return Err(Errno::ENOENT); // the VFS answers `..` at a mount root itself
        }
        if let Some(device) = self.devices.iter().find(|d| d.name == name) {
            return Ok(device.clone());
        }
        if let Some((index, &(_, target))) = LINKS.iter().enumerate().find(|(_, (n, _))| *n == name) {
            return Ok(Arc::new(Link { ino: FIRST_LINK_INO + index as u64, target }));
        }
        self.extra.iter().find(|(n, _)| n == name).map(|(_, node)| node.clone()).ok_or(Errno::ENOENT)
    }

    fn read_dir(&self, cookie: u64) -> Result<Option<DirEntry>> {
        let Ok(index) = usize::try_from(cookie) else { return Ok(None) };
        let next_cookie = cookie + 1;
        if let Some(device) = self.devices.get(index) {
            let name = String::from(device.name);
            return Ok(Some(DirEntry { name, ino: device.ino, file_type: FileType::CharDevice, next_cookie }));
        }
        let index = index - self.devices.len();
        if let Some((name, _)) = LINKS.get(index) {
            let (name, ino) = (String::from(*name), FIRST_LINK_INO + index as u64);
            return Ok(Some(DirEntry { name, ino, file_type: FileType::Symlink, next_cookie }));
        }
        let Some((name, node)) = self.extra.get(index - LINKS.len()) else { return Ok(None) };
        Ok(Some(DirEntry { name: name.clone(), ino: node.ino(), file_type: node.file_type(), next_cookie }))
    }
}

impl Node for Device {
    fn ino(&self) -> u64 {
        self.ino
    }

    fn file_type(&self) -> FileType {
        FileType::CharDevice
    }

    fn metadata(&self) -> Result<Metadata> {
        let perm = if self.kind == Kind::Console { 0o600 } else { 0o666 };
        Ok(metadata(self.ino, FileType::CharDevice, perm, 1, self.rdev))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn read_at(&self, _offset: u64, buf: &mut [u8]) -> Result<usize> {
        match self.kind {
            Kind::Null | Kind::Console => Ok(0),
            Kind::Zero | Kind::Full => {
                buf.fill(0);
                Ok(buf.len())
            }
            Kind::Urandom => {
                self.entropy.fill(buf);
                Ok(buf.len())
            }
        }
    }

    fn write_at(&self, _offset: u64, buf: &[u8]) -> Result<usize> {
        match self.kind {
            Kind::Null | Kind::Zero => Ok(buf.len()),
            Kind::Full => Err(Errno::ENOSPC),
            Kind::Console => {
                if let Some(platform) = libos_core::hal::try_platform() {
                    platform.console_write(buf);
                }
                Ok(buf.len())
            }
            Kind::Urandom => {
                self.entropy.mix(buf);
                Ok(buf.len())
            }
        }
    }

    fn append(&self, buf: &[u8]) -> Result<(u64, usize)> {
        Ok((0, self.write_at(0, buf)?))
    }

    fn truncate(&self, _size: u64) -> Result<()> {
        Ok(()) // `O_TRUNC` on a device is ignored, as on Linux
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::OpenFlags;
    use crate::vfs::Vfs;
    use libos_core::sync::SpinLock;
    use libos_core::testing::FakePlatform;

    /// A source with its own generator (not the process-wide kernel one), seeded or not.
    struct Fixed(SpinLock<libos_core::random::Pool>);

    impl EntropySource for Fixed {
        fn fill(&self, buf: &mut [u8]) {
            self.0.lock().fill_insecure(buf);
        }

        fn mix(&self, data: &[u8]) {
            self.0.lock().mix(data, None);
        }

        fn is_seeded(&self) -> bool {
            self.0.lock().is_seeded()
        }
    }

    /// A leaked source: seeded with `seed` when given, else unseeded.
    fn fixed(seed: Option<u8>) -> &'static Fixed {
        let mut pool = libos_core::random::Pool::new([0; 32]);
        if let Some(seed) = seed {
            pool.mix(&[seed; 32], Some("test"));
        }
        Box::leak(Box::new(Fixed(SpinLock::new(pool))))
    }

    fn platform() -> &'static FakePlatform {
        static PLATFORM: std::sync::OnceLock<&'static FakePlatform> = std::sync::OnceLock::new();
        PLATFORM.get_or_init(|| {
            let platform: &'static FakePlatform = Box::leak(Box::new(FakePlatform::new()));
            libos_core::hal::set_platform(platform);
            platform
        })
    }

    fn dev_vfs(entropy: Option<u8>) -> Vfs {
        Vfs::new(Arc::new(DevFs::new(fixed(entropy))))
    }

    #[test]
    fn null_zero_full() {
        let vfs = dev_vfs(Some(1));
        let mut buf = [7u8; 16];
        let null = vfs.open("/null", OpenFlags::RDWR, 0).unwrap();
        assert_eq!(null.read(&mut buf), Ok(0));
        assert_eq!(null.write(b"gone"), Ok(4));
        let zero = vfs.open("/zero", OpenFlags::RDWR, 0).unwrap();
        assert_eq!(zero.read(&mut buf), Ok(16));
        assert_eq!(buf, [0; 16]);
        assert_eq!(zero.write(b"gone"), Ok(4));
        let full = vfs.open("/full", OpenFlags::RDWR | OpenFlags::TRUNC, 0).unwrap();
        buf.fill(9);
        assert_eq!(full.read(&mut buf), Ok(16));
        assert_eq!(buf, [0; 16]);
        assert_eq!(full.write(b"x"), Err(Errno::ENOSPC));
        let meta = vfs.metadata("/null").unwrap();
        assert_eq!((meta.file_type, meta.rdev, meta.mode()), (FileType::CharDevice, 0x103, 0o020_666));
    }

    #[test]
    fn console_writes_reach_the_platform() {
        let platform = platform();
        let vfs = dev_vfs(None);
        let console = vfs.open("/console", OpenFlags::WRONLY | OpenFlags::APPEND, 0).unwrap();
        assert_eq!(console.write(b"through devfs\n"), Ok(14));
        assert!(platform.console_output().contains("through devfs\n"));
    }

    #[test]
    fn urandom_is_seeded_and_varies() {
        let hw = DevFs::new(fixed(Some(42)));
        assert!(hw.urandom_is_seeded());
        let vfs = Vfs::new(Arc::new(hw));
        let file = vfs.open("/urandom", OpenFlags::RDONLY, 0).unwrap();
        let (mut a, mut b) = ([0u8; 61], [0u8; 61]);
        file.read(&mut a).unwrap();
        file.read(&mut b).unwrap();
        assert_ne!(a, b);
        assert!(a.iter().filter(|&&x| x == 0).count() < 10);
        // Same seed, same stream; another seed, another stream.
        let again = dev_vfs(Some(42)).open("/urandom", OpenFlags::RDONLY, 0).unwrap();
        let mut c = [0u8; 61];
        again.read(&mut c).unwrap();
        assert_eq!(a, c);
        let other = dev_vfs(Some(43)).open("/urandom", OpenFlags::RDONLY, 0).unwrap();
        other.read(&mut c).unwrap();
        assert_ne!(a, c);
        assert!(!DevFs::new(fixed(None)).urandom_is_seeded());
    }

    #[test]
    fn the_directory_is_fixed() {
        let vfs = dev_vfs(Some(1));
        let mut names: Vec<String> = vfs.read_dir("/").unwrap().into_iter().map(|e| e.name).collect();
        names.sort();
        assert_eq!(names, ["console", "fd", "full", "null", "random", "stderr", "stdin", "stdout", "urandom", "zero"]);
        assert_eq!(vfs.read_link("/stderr").unwrap(), "/proc/self/fd/2");
        assert_eq!(vfs.open("/new", OpenFlags::CREAT | OpenFlags::RDWR, 0o644).unwrap_err(), Errno::EPERM);
        assert_eq!(vfs.unlink("/null").unwrap_err(), Errno::EPERM);
        assert_eq!(vfs.mkdir("/d", 0o755).unwrap_err(), Errno::EPERM);
        assert_eq!(vfs.open("/null/", OpenFlags::RDONLY, 0).unwrap_err(), Errno::ENOTDIR);
        assert_eq!(vfs.metadata("/missing").unwrap_err(), Errno::ENOENT);
    }

    #[test]
    fn mounting_on_a_device_is_enotdir() {
        let vfs = dev_vfs(Some(1));
        // A devfs on a devfs is enough to exercise mount crossing with fixed directories.
        assert_eq!(vfs.mount("/null", Arc::new(DevFs::new(fixed(None)))).unwrap_err(), Errno::ENOTDIR);
    }
}
