//! procfs: the few `/proc` files programs read for system figures, generated at each read from
//! a [`Figures`] source (mounted at `/proc` when the image has a file system).
//!
//! | file | content (Linux's format) |
//! |---|---|
//! | `stat` | `cpu` and `cpu0` lines (user, nice, system, idle, ... in `USER_HZ` = 100 ticks: busy time as user time, halted time as idle), `btime` |
//! | `uptime` | seconds since boot and seconds idle, two decimals |
//! | `meminfo` | `MemTotal`, `MemFree`, `MemAvailable` in kB |
//! | `mounts` | a line per mount, root first: source, mount point, type, `rw`, `0 0` (what `df`, `mount` and `getmntent` read) |
//!
//! The same code serves a `/sys` with one file tree: `devices/system/cpu/cpu0/cpuidle/state0/`
//! `name` and `time` (microseconds halted), as Linux's cpuidle driver shows its states.
//!
//! Benchmarks of C programs read idle time from cpuidle's `time` or `/proc/stat` on Linux; here
//! they read the same files, with libos's exact halted-time accounting behind them.
//!
//! `/proc/self` and `/proc/PID` come from the running process ([`Figures::process`]; see
//! [`process`]). Not here: `/proc/sys`, the rest of `/sys`.

use crate::node::{FileSystem, Node};
use crate::types::{DirEntry, FileType, Metadata, StatFs, Timestamp};
use crate::vfs::MountInfo;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use libos_core::{Errno, Result};

mod process;
pub use process::{Descriptor, Mapping, ProcessView, SignalSets, Status, reopened_descriptor};

/// Where procfs's figures come from.
pub trait Figures: Send + Sync {
    /// Nanoseconds since boot.
    fn uptime_ns(&self) -> u64;
    /// Nanoseconds the CPU spent halted since boot.
    fn idle_ns(&self) -> u64;
    /// `(total, free)` bytes of memory.
    fn memory(&self) -> (u64, u64);
    /// The wall-clock time of boot, in seconds since the Unix epoch.
    fn boot_time_secs(&self) -> u64;
    /// The mounts of the namespace, root first ([`crate::Vfs::mounts`]).
    fn mounts(&self) -> Vec<MountInfo>;
    /// The running process, for `/proc/self` (`None`: no process runs, `/proc/self` does
    /// not exist).
    fn process(&self) -> Option<Arc<dyn ProcessView>> {
        None
    }
}

/// A directory tree of generated files.
enum Entry {
    Dir(&'static [(&'static str, Entry)]),
    File(fn(&dyn Figures) -> String),
}

/// `/proc`.
const PROC: Entry = Entry::Dir(&[
    ("stat", Entry::File(stat)),
    ("uptime", Entry::File(uptime)),
    ("meminfo", Entry::File(meminfo)),
    ("mounts", Entry::File(mounts)),
]);

/// `/sys`: one cpuidle state, the halt, as Linux's cpuidle driver shows its states (what C
/// benchmarks read for idle time with microsecond resolution).
const SYS: Entry = Entry::Dir(&[(
    "devices",
    Entry::Dir(&[(
        "system",
        Entry::Dir(&[(
            "cpu",
            Entry::Dir(&[(
                "cpu0",
                Entry::Dir(&[(
                    "cpuidle",
                    Entry::Dir(&[("state0", Entry::Dir(&[("name", Entry::File(|_| String::from("HLT\n"))), ("time", Entry::File(idle_us))]))]),
                )]),
            )]),
        )]),
    )]),
)]);

/// A procfs-like file system of generated files (`/proc` or `/sys`).
pub struct ProcFs {
    name: &'static str,
    root: Arc<TreeNode>,
}

struct TreeNode {
    entry: &'static Entry,
    ino: u64,
    figures: Arc<dyn Figures>,
    /// `/proc` itself, which also holds `self` and the process's directory.
    holds_process: bool,
    /// The directory above (`None` at the root, whose `..` the VFS answers).
    parent: Option<Arc<TreeNode>>,
}

impl ProcFs {
    /// `/proc`, reporting `figures`.
    pub fn new(figures: Arc<dyn Figures>) -> ProcFs {
        ProcFs { name: "proc", root: Arc::new(TreeNode { entry: &PROC, ino: 1, figures, holds_process: true, parent: None }) }
    }

    /// `/sys` (the cpuidle state only), reporting `figures`.
    pub fn sys(figures: Arc<dyn Figures>) -> ProcFs {
        ProcFs { name: "sysfs", root: Arc::new(TreeNode { entry: &SYS, ino: 1, figures, holds_process: false, parent: None }) }
    }
}

impl FileSystem for ProcFs {
    fn name(&self) -> &str {
        self.name
    }

    fn root(&self) -> Arc<dyn Node> {
        self.root.clone()
    }

    fn statfs(&self) -> Result<StatFs> {
        let fs_type = if self.name == "proc" { 0x9fa0 } else { 0x6265_6572 };
        Ok(StatFs { fs_type, block_size: 4096, name_max: crate::NAME_MAX as u64, ..StatFs::default() })
    }
}

fn metadata(ino: u64, file_type: FileType, perm: u32, nlink: u64) -> Metadata {
    Metadata { dev: 0, ino, file_type, perm, uid: 0, gid: 0, nlink, size: 0, blocks: 0, block_size: 4096, rdev: 0, atime: Timestamp(0), mtime: Timestamp(0), ctime: Timestamp(0) }
}

/// `ns` in `USER_HZ` (100 per second) ticks.
fn user_hz(ns: u64) -> u64 {
    ns / 10_000_000
}

fn stat(figures: &dyn Figures) -> String {
    let (uptime, idle) = (figures.uptime_ns(), figures.idle_ns());
    let (busy, idle) = (user_hz(uptime.saturating_sub(idle)), user_hz(idle));
    let cpu = format!("{busy} 0 0 {idle} 0 0 0 0 0 0");
    format!("cpu  {cpu}\ncpu0 {cpu}\nintr 0\nctxt 0\nbtime {}\nprocesses 1\nprocs_running 1\nprocs_blocked 0\n", figures.boot_time_secs())
}

fn uptime(figures: &dyn Figures) -> String {
    let (uptime, idle) = (figures.uptime_ns(), figures.idle_ns());
    format!("{}.{:02} {}.{:02}\n", uptime / 1_000_000_000, uptime / 10_000_000 % 100, idle / 1_000_000_000, idle / 10_000_000 % 100)
}

fn meminfo(figures: &dyn Figures) -> String {
    let (total, free) = figures.memory();
    format!("MemTotal: {:8} kB\nMemFree: {:9} kB\nMemAvailable: {:4} kB\n", total / 1024, free / 1024, free / 1024)
}

/// `/proc/mounts` in Linux's format. The source is the file system's name, as Linux shows it
/// for file systems without a device; libos's devfs is Linux's `devtmpfs`. Every mount is
/// listed `rw`: the VFS does not know whether a file system refuses writes (an ext2 volume
/// on a read-only disk answers `EROFS` when written).
fn mounts(figures: &dyn Figures) -> String {
    let mut text = String::new();
    for mount in figures.mounts() {
        let fs_type = if mount.fs_name == "devfs" { "devtmpfs" } else { mount.fs_name.as_str() };
        text.push_str(&format!("{fs_type} {} {fs_type} rw 0 0\n", escape_mount_path(&mount.path)));
    }
    text
}

/// A mount point as `/proc/mounts` writes it: space, tab, newline and backslash as octal
/// escapes (`\040`, ...), so that the fields stay separable.
fn escape_mount_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Copies what of generated `text` lies at `offset` into `buf`.
fn read_text(text: &[u8], offset: u64, buf: &mut [u8]) -> usize {
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(text.len());
    let n = buf.len().min(text.len() - start);
    buf[..n].copy_from_slice(&text[start..start + n]);
    n
}

fn idle_us(figures: &dyn Figures) -> String {
    format!("{}\n", figures.idle_ns() / 1000)
}

impl TreeNode {
    fn children(&self) -> &'static [(&'static str, Entry)] {
        match self.entry {
            Entry::Dir(children) => children,
            Entry::File(_) => &[],
        }
    }

    /// This node again, as a new reference (the parent of the nodes looked up in it).
    fn copy(&self) -> Arc<TreeNode> {
        let figures = self.figures.clone();
        Arc::new(TreeNode { entry: self.entry, ino: self.ino, figures, holds_process: self.holds_process, parent: self.parent.clone() })
    }

    /// Inode numbers: the parent's times 16 plus the child's place (trees here are shallow and
    /// narrow, so they stay unique).
    fn child_ino(&self, index: usize) -> u64 {
        self.ino * 16 + index as u64 + 1
    }
}

impl Node for TreeNode {
    fn ino(&self) -> u64 {
        self.ino
    }

    fn file_type(&self) -> FileType {
        match self.entry {
            Entry::Dir(_) => FileType::Directory,
            Entry::File(_) => FileType::Regular,
        }
    }

    fn metadata(&self) -> Result<Metadata> {
        Ok(match self.entry {
            Entry::Dir(_) => metadata(self.ino, FileType::Directory, 0o555, 2),
            Entry::File(_) => metadata(self.ino, FileType::Regular, 0o444, 1),
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn lookup(&self, name: &str) -> Result<Arc<dyn Node>> {
        if !matches!(self.entry, Entry::Dir(_)) {
            return Err(Errno::ENOTDIR);
        }
        if name == ".." {
            return Ok(self.parent.clone().unwrap_or_else(|| self.copy()));
        }
        let Some(index) = self.children().iter().position(|(n, _)| *n == name) else {
            return match self.figures.process() {
                Some(view) if self.holds_process => process::root_lookup(view, self.figures.clone(), self.copy(), name),
                _ => Err(Errno::ENOENT),
            };
        };
        let entry = &self.children()[index].1;
        let (ino, figures) = (self.child_ino(index), self.figures.clone());
        Ok(Arc::new(TreeNode { entry, ino, figures, holds_process: false, parent: Some(self.copy()) }))
    }

    fn read_dir(&self, cookie: u64) -> Result<Option<DirEntry>> {
        let index = usize::try_from(cookie).unwrap_or(usize::MAX);
        let Some((name, entry)) = self.children().get(index) else {
            // After the fixed files: `self` and the process's directory.
            let view = self.figures.process().filter(|_| self.holds_process);
            let extra = index.checked_sub(self.children().len());
            return Ok(view
                .zip(extra)
                .and_then(|(view, extra)| process::root_entry(&*view, extra))
                .map(|entry| DirEntry { next_cookie: cookie + 1, ..entry }));
        };
        let file_type = if matches!(entry, Entry::Dir(_)) { FileType::Directory } else { FileType::Regular };
        Ok(Some(DirEntry { name: String::from(*name), ino: self.child_ino(cookie as usize), file_type, next_cookie: cookie + 1 }))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let Entry::File(render) = self.entry else { return Err(Errno::EISDIR) };
        Ok(read_text(render(&*self.figures).as_bytes(), offset, buf))
    }

    fn write_at(&self, _offset: u64, _buf: &[u8]) -> Result<usize> {
        Err(Errno::EACCES)
    }

    fn truncate(&self, _size: u64) -> Result<()> {
        Err(Errno::EACCES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl Figures for Fixed {
        fn uptime_ns(&self) -> u64 {
            12_345_000_000
        }
        fn idle_ns(&self) -> u64 {
            10_000_000_000
        }
        fn memory(&self) -> (u64, u64) {
            (64 << 20, 48 << 20)
        }
        fn boot_time_secs(&self) -> u64 {
            1_700_000_000
        }
        fn mounts(&self) -> Vec<MountInfo> {
            let mount = |id, path: &str, fs_name: &str| MountInfo { id, path: String::from(path), fs_name: String::from(fs_name) };
            alloc::vec![mount(1, "/", "virtiofs"), mount(2, "/dev", "devfs"), mount(3, "/mnt/a b\\c", "ext2")]
        }
    }

    fn read(fs: &ProcFs, name: &str) -> String {
        let node = fs.root().lookup(name).unwrap();
        let mut buf = [0u8; 512];
        let n = node.read_at(0, &mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn files_have_linux_formats() {
        let fs = ProcFs::new(Arc::new(Fixed));
        let stat = read(&fs, "stat");
        assert!(stat.starts_with("cpu  234 0 0 1000 0 0 0 0 0 0\ncpu0 234 0 0 1000"), "{stat}");
        assert!(stat.contains("btime 1700000000\n"));
        assert_eq!(read(&fs, "uptime"), "12.34 10.00\n");
        assert!(read(&fs, "meminfo").starts_with("MemTotal:    65536 kB\nMemFree:     49152 kB\n"));
        assert_eq!(read(&fs, "mounts"), "virtiofs / virtiofs rw 0 0\ndevtmpfs /dev devtmpfs rw 0 0\next2 /mnt/a\\040b\\134c ext2 rw 0 0\n");
        assert_eq!(fs.root().lookup("self").err(), Some(Errno::ENOENT));
        // A read past the start continues the same text.
        let node = fs.root().lookup("uptime").unwrap();
        let mut tail = [0u8; 8];
        assert_eq!(node.read_at(6, &mut tail).unwrap(), 6);
        assert_eq!(&tail[..6], b"10.00\n");
        assert_eq!(node.write_at(0, b"x"), Err(Errno::EACCES));
    }

    #[test]
    fn sys_has_the_cpuidle_time_in_microseconds() {
        let fs = ProcFs::sys(Arc::new(Fixed));
        let mut node = fs.root();
        for name in ["devices", "system", "cpu", "cpu0", "cpuidle"] {
            node = node.lookup(name).unwrap();
        }
        assert_eq!(node.read_dir(0).unwrap().unwrap().name, "state0");
        let up = node.lookup("..").unwrap();
        assert_eq!((up.ino(), up.lookup("cpuidle").unwrap().ino()), (fs.root().lookup("devices").unwrap().lookup("system").unwrap().lookup("cpu").unwrap().lookup("cpu0").unwrap().ino(), node.ino()));
        assert!(node.read_dir(1).unwrap().is_none());
        let time = node.lookup("state0").unwrap().lookup("time").unwrap();
        let mut buf = [0u8; 32];
        let n = time.read_at(0, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"10000000\n");
        assert_eq!(time.lookup("x").err(), Some(Errno::ENOTDIR));
    }
}
