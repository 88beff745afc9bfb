//! The per-process part of procfs: `/proc/self` (a symlink to `/proc/PID`) and `/proc/PID`,
//! generated from a [`ProcessView`] that the C runtime (posix-shim) registers. Each VM runs one
//! process, so `/proc` shows that one; other processes' numbers are not there (`ENOENT`).
//!
//! | entry | what it shows (Linux's format) |
//! |---|---|
//! | `fd/N` | a magic link per descriptor: its text is the file's path now (`pipe:[ID]`, `socket:[ID]`, `anon_inode:[eventfd]`, `/dev/console` for the others), and following it leads to the open file itself, even renamed or removed ([`Node::follow_magic`]) |
//! | `exe`, `cwd`, `root` | symlinks to the program's file, the current directory, `/` |
//! | `cmdline`, `environ` | the arguments and environment the program started with, each string NUL-terminated |
//! | `comm` | the program's name (15 bytes at most) |
//! | `status`, `stat`, `statm` | ids, credentials, signal sets, threads, memory, CPU time |
//! | `maps` | the program's memory areas with their permissions |
//! | `mounts` | as `/proc/mounts` |
//!
//! `/dev/fd`, `/dev/stdin`, `/dev/stdout` and `/dev/stderr` (devfs) are symlinks into
//! `/proc/self/fd`, as on Linux, so `echo oops > /dev/stderr` writes to descriptor 2's file.

use super::{Figures, metadata, mounts};
use crate::file::FileRef;
use crate::node::{LinkTarget, Node};
use crate::types::{DirEntry, FileType, Metadata};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::fmt::Write;
use libos_core::{Errno, Result};

/// What procfs shows of the running process (implemented by the C runtime).
pub trait ProcessView: Send + Sync {
    /// The process id.
    fn pid(&self) -> u32;
    /// The open descriptors' numbers, ascending.
    fn descriptors(&self) -> Vec<u32>;
    /// What descriptor `fd` holds (`None`: not open).
    fn descriptor(&self, fd: u32) -> Option<Descriptor>;
    /// The path of the program's file.
    fn executable(&self) -> String;
    /// The current directory's path (`getcwd`).
    fn current_dir(&self) -> Result<String>;
    /// The arguments, each followed by a NUL byte.
    fn command_line(&self) -> Vec<u8>;
    /// The environment the program started with, each string followed by a NUL byte.
    fn environment(&self) -> Vec<u8>;
    /// Ids, credentials, signals, threads, memory and time.
    fn status(&self) -> Status;
    /// The effective user and group ids, which own the process's files (a `stat` of them
    /// needs only these, not the whole [`Status`]).
    fn owner(&self) -> (u32, u32);
    /// The program's memory areas, ascending.
    fn mappings(&self) -> Vec<Mapping>;
}

/// The object behind a descriptor.
#[derive(Clone)]
pub enum Descriptor {
    /// A file or directory of the namespace.
    File(FileRef),
    /// A pipe (or a FIFO's pipe), by an id shared by its ends.
    Pipe(u64),
    /// A socket, by an id.
    Socket(u64),
    /// An object of Linux's anonymous-inode file system: `eventfd`, `timerfd`, `[eventpoll]`.
    Anonymous(&'static str),
    /// The platform console (Linux's `/dev/console`).
    Console,
}

/// Signal sets, one bit per signal (bit `N - 1` for signal `N`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SignalSets {
    /// Pending for the calling thread.
    pub pending: u64,
    /// Pending for the process.
    pub shared_pending: u64,
    /// Blocked by the calling thread.
    pub blocked: u64,
    /// Ignored.
    pub ignored: u64,
    /// Caught by a handler.
    pub caught: u64,
}

/// The figures of `status` and `stat`.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// The program's name (`comm`: the file name of the program, 15 bytes at most).
    pub name: String,
    /// Parent, process group and session ids.
    pub ppid: u32,
    /// The process group.
    pub pgid: u32,
    /// The session.
    pub sid: u32,
    /// Real, effective, saved and file-system user ids.
    pub uids: [u32; 4],
    /// Real, effective, saved and file-system group ids.
    pub gids: [u32; 4],
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Inheritable, permitted and effective capabilities (bit `N` for capability `N`).
    pub capabilities: [u64; 3],
    /// The file-creation mask.
    pub umask: u32,
    /// The program's threads.
    pub threads: u32,
    /// The signal sets.
    pub signals: SignalSets,
    /// Bytes of the program's memory areas (mapped), and of those in use (resident: libos
    /// maps memory when it is asked for, so the same here).
    pub vm_bytes: u64,
    /// Bytes resident.
    pub rss_bytes: u64,
    /// CPU time the program used, in nanoseconds (libos does not split user from system
    /// time: all of it is user time).
    pub cpu_ns: u64,
    /// When the process started, in nanoseconds since boot.
    pub start_ns: u64,
    /// The CPUs its threads may run on, one bit each.
    pub cpus: u64,
}

/// One memory area (a line of `maps`).
#[derive(Clone, Debug, Default)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// The address past the end.
    pub end: u64,
    /// `r`, `w`, `x`.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
    /// `s` (shared) instead of `p`.
    pub shared: bool,
    /// Offset in the mapped file.
    pub offset: u64,
    /// The file's path, or `[heap]`, `[stack]`; empty for anonymous memory.
    pub name: String,
}

/// Inode numbers of the per-process nodes: above the static tree's (see `TreeNode`).
const SELF_INO: u64 = 1 << 32;
const PROCESS_INO: u64 = SELF_INO + 1;
const FD_DIR_INO: u64 = SELF_INO + 2;
/// Files and links of `/proc/PID`: this plus their place in [`ENTRIES`].
const ENTRY_INO: u64 = SELF_INO + 16;
/// `fd/N`: this plus `N`; the objects behind non-file descriptors: [`OBJECT_INO`] plus `N`.
const FD_INO: u64 = 2 << 32;
const OBJECT_INO: u64 = 3 << 32;

/// What an entry of `/proc/PID` is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    CommandLine,
    Name,
    CurrentDir,
    Environment,
    Executable,
    Descriptors,
    Maps,
    Mounts,
    Root,
    Stat,
    Statm,
    Status,
}

const ENTRIES: [(&str, Kind); 12] = [
    ("cmdline", Kind::CommandLine),
    ("comm", Kind::Name),
    ("cwd", Kind::CurrentDir),
    ("environ", Kind::Environment),
    ("exe", Kind::Executable),
    ("fd", Kind::Descriptors),
    ("maps", Kind::Maps),
    ("mounts", Kind::Mounts),
    ("root", Kind::Root),
    ("stat", Kind::Stat),
    ("statm", Kind::Statm),
    ("status", Kind::Status),
];

/// The names `/proc` adds to its fixed files for the process: `self`, then its id.
pub(super) fn root_entry(view: &dyn ProcessView, index: usize) -> Option<DirEntry> {
    let (name, ino, file_type) = match index {
        0 => (String::from("self"), SELF_INO, FileType::Symlink),
        1 => (view.pid().to_string(), PROCESS_INO, FileType::Directory),
        _ => return None,
    };
    Some(DirEntry { name, ino, file_type, next_cookie: 0 })
}

/// `/proc/self` and `/proc/PID` (`root`: `/proc`, their `..`).
pub(super) fn root_lookup(view: Arc<dyn ProcessView>, figures: Arc<dyn Figures>, root: Arc<dyn Node>, name: &str) -> Result<Arc<dyn Node>> {
    if name == "self" {
        return Ok(Arc::new(SelfLink { view }));
    }
    if name == view.pid().to_string() {
        return Ok(Arc::new(ProcessDir { view, figures, root }));
    }
    Err(Errno::ENOENT)
}

/// Metadata of a node owned by the process's effective ids, as Linux shows `/proc/PID`.
fn owned(view: &dyn ProcessView, ino: u64, file_type: FileType, perm: u32, nlink: u64) -> Metadata {
    let (uid, gid) = view.owner();
    Metadata { uid, gid, ..metadata(ino, file_type, perm, nlink) }
}

/// `/proc/self`: a symlink to the process's directory.
struct SelfLink {
    view: Arc<dyn ProcessView>,
}

impl Node for SelfLink {
    fn ino(&self) -> u64 {
        SELF_INO
    }

    fn file_type(&self) -> FileType {
        FileType::Symlink
    }

    fn metadata(&self) -> Result<Metadata> {
        Ok(metadata(SELF_INO, FileType::Symlink, 0o777, 1))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn read_link(&self) -> Result<String> {
        Ok(self.view.pid().to_string())
    }
}

/// `/proc/PID`.
struct ProcessDir {
    view: Arc<dyn ProcessView>,
    figures: Arc<dyn Figures>,
    /// `/proc`.
    root: Arc<dyn Node>,
}

impl Node for ProcessDir {
    fn ino(&self) -> u64 {
        PROCESS_INO
    }

    fn file_type(&self) -> FileType {
        FileType::Directory
    }

    fn metadata(&self) -> Result<Metadata> {
        Ok(owned(&*self.view, PROCESS_INO, FileType::Directory, 0o555, 3))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn lookup(&self, name: &str) -> Result<Arc<dyn Node>> {
        if name == ".." {
            return Ok(self.root.clone());
        }
        let index = ENTRIES.iter().position(|(n, _)| *n == name).ok_or(Errno::ENOENT)?;
        let (view, figures) = (self.view.clone(), self.figures.clone());
        Ok(match ENTRIES[index].1 {
            Kind::Descriptors => {
                let parent = Arc::new(ProcessDir { view: view.clone(), figures, root: self.root.clone() });
                Arc::new(DescriptorDir { view, parent })
            }
            kind => Arc::new(ProcessEntry { view, figures, kind, ino: ENTRY_INO + index as u64 }),
        })
    }

    fn read_dir(&self, cookie: u64) -> Result<Option<DirEntry>> {
        let Some(&(name, kind)) = usize::try_from(cookie).ok().and_then(|i| ENTRIES.get(i)) else { return Ok(None) };
        let (file_type, ino) = match kind {
            Kind::Descriptors => (FileType::Directory, FD_DIR_INO),
            Kind::CurrentDir | Kind::Executable | Kind::Root => (FileType::Symlink, ENTRY_INO + cookie),
            _ => (FileType::Regular, ENTRY_INO + cookie),
        };
        Ok(Some(DirEntry { name: String::from(name), ino, file_type, next_cookie: cookie + 1 }))
    }
}

/// A file or symlink of `/proc/PID`, generated at each read.
struct ProcessEntry {
    view: Arc<dyn ProcessView>,
    figures: Arc<dyn Figures>,
    kind: Kind,
    ino: u64,
}

impl ProcessEntry {
    fn is_link(&self) -> bool {
        matches!(self.kind, Kind::CurrentDir | Kind::Executable | Kind::Root)
    }

    fn render(&self) -> Vec<u8> {
        let view = &*self.view;
        match self.kind {
            Kind::CommandLine => view.command_line(),
            Kind::Environment => view.environment(),
            Kind::Name => format!("{}\n", view.status().name).into_bytes(),
            Kind::Maps => maps(&view.mappings()).into_bytes(),
            Kind::Mounts => mounts(&*self.figures).into_bytes(),
            Kind::Stat => stat(view.pid(), &view.status()).into_bytes(),
            Kind::Statm => statm(&view.status()).into_bytes(),
            Kind::Status => status(view.pid(), &view.status(), view.descriptors().last().map_or(0, |&fd| fd + 1)).into_bytes(),
            Kind::CurrentDir | Kind::Executable | Kind::Root | Kind::Descriptors => Vec::new(),
        }
    }
}

impl Node for ProcessEntry {
    fn ino(&self) -> u64 {
        self.ino
    }

    fn file_type(&self) -> FileType {
        if self.is_link() { FileType::Symlink } else { FileType::Regular }
    }

    fn metadata(&self) -> Result<Metadata> {
        let perm = match self.kind {
            _ if self.is_link() => 0o777,
            Kind::Environment => 0o400,
            _ => 0o444,
        };
        Ok(owned(&*self.view, self.ino, self.file_type(), perm, 1))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn read_link(&self) -> Result<String> {
        match self.kind {
            Kind::CurrentDir => self.view.current_dir(),
            Kind::Executable => Ok(self.view.executable()),
            Kind::Root => Ok(String::from("/")),
            _ => Err(Errno::EINVAL),
        }
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if self.is_link() {
            return Err(Errno::EINVAL);
        }
        Ok(super::read_text(&self.render(), offset, buf))
    }

    fn write_at(&self, _offset: u64, _buf: &[u8]) -> Result<usize> {
        Err(Errno::EACCES)
    }
}

/// `/proc/PID/fd`.
struct DescriptorDir {
    view: Arc<dyn ProcessView>,
    /// `/proc/PID`.
    parent: Arc<dyn Node>,
}

impl Node for DescriptorDir {
    fn ino(&self) -> u64 {
        FD_DIR_INO
    }

    fn file_type(&self) -> FileType {
        FileType::Directory
    }

    fn metadata(&self) -> Result<Metadata> {
        Ok(owned(&*self.view, FD_DIR_INO, FileType::Directory, 0o500, 2))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn lookup(&self, name: &str) -> Result<Arc<dyn Node>> {
        if name == ".." {
            return Ok(self.parent.clone());
        }
        let fd = name.parse::<u32>().map_err(|_| Errno::ENOENT)?;
        if fd.to_string() != name || self.view.descriptor(fd).is_none() {
            return Err(Errno::ENOENT);
        }
        Ok(Arc::new(DescriptorLink { view: self.view.clone(), fd }))
    }

    /// Cookies are descriptor numbers plus one: a listing goes on from the next open
    /// descriptor, whatever was opened or closed meanwhile.
    fn read_dir(&self, cookie: u64) -> Result<Option<DirEntry>> {
        let next = self.view.descriptors().into_iter().find(|&fd| u64::from(fd) >= cookie);
        Ok(next.map(|fd| DirEntry { name: fd.to_string(), ino: FD_INO + u64::from(fd), file_type: FileType::Symlink, next_cookie: u64::from(fd) + 1 }))
    }
}

/// `/proc/PID/fd/N`: a magic link to what descriptor `N` holds.
struct DescriptorLink {
    view: Arc<dyn ProcessView>,
    fd: u32,
}

impl Node for DescriptorLink {
    fn ino(&self) -> u64 {
        FD_INO + u64::from(self.fd)
    }

    fn file_type(&self) -> FileType {
        FileType::Symlink
    }

    fn metadata(&self) -> Result<Metadata> {
        let mut meta = owned(&*self.view, self.ino(), FileType::Symlink, 0o700, 1);
        meta.size = 64; // as Linux reports for these links
        Ok(meta)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn read_link(&self) -> Result<String> {
        Ok(match self.view.descriptor(self.fd).ok_or(Errno::ENOENT)? {
            Descriptor::File(file) => crate::vfs::path_of(&file)?,
            Descriptor::Pipe(id) => format!("pipe:[{id}]"),
            Descriptor::Socket(id) => format!("socket:[{id}]"),
            Descriptor::Anonymous(name) => format!("anon_inode:{name}"),
            Descriptor::Console => String::from("/dev/console"),
        })
    }

    fn follow_magic(&self) -> Option<Result<LinkTarget>> {
        let Some(descriptor) = self.view.descriptor(self.fd) else { return Some(Err(Errno::ENOENT)) };
        let (uid, gid) = self.view.owner();
        let object = |file_type, perm, rdev| {
            let meta = Metadata { uid, gid, rdev, ..metadata(OBJECT_INO + u64::from(self.fd), file_type, perm, 1) };
            Some(Ok(LinkTarget::Node(Arc::new(DescriptorObject { fd: self.fd, meta }))))
        };
        match descriptor {
            Descriptor::File(file) => Some(Ok(LinkTarget::File(file))),
            Descriptor::Pipe(_) => object(FileType::Fifo, 0o600, 0),
            Descriptor::Socket(_) => object(FileType::Socket, 0o777, 0),
            Descriptor::Anonymous(_) => object(FileType::Regular, 0o600, 0),
            // Opening it opens devfs's console (5, 1).
            Descriptor::Console => object(FileType::CharDevice, 0o620, (5 << 8) | 1),
        }
    }
}

/// What following `fd/N` gives for an object outside the namespace: its type and owner for
/// `stat`; the C runtime recognises it at `open` ([`reopened_descriptor`]).
struct DescriptorObject {
    fd: u32,
    meta: Metadata,
}

impl Node for DescriptorObject {
    fn ino(&self) -> u64 {
        self.meta.ino
    }

    fn file_type(&self) -> FileType {
        self.meta.file_type
    }

    fn metadata(&self) -> Result<Metadata> {
        Ok(self.meta)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn read_at(&self, _offset: u64, _buf: &mut [u8]) -> Result<usize> {
        Err(Errno::ENXIO)
    }

    fn write_at(&self, _offset: u64, _buf: &[u8]) -> Result<usize> {
        Err(Errno::ENXIO)
    }

    fn truncate(&self, _size: u64) -> Result<()> {
        Err(Errno::ENXIO)
    }
}

/// The descriptor whose object `node` stands for, if `node` came from following a
/// `/proc/PID/fd/N` link to a pipe, socket or anonymous object: opening it is the C runtime's
/// to do (a new end of the same pipe; `ENXIO` for the others, as on Linux).
pub fn reopened_descriptor(node: &dyn Node) -> Option<u32> {
    node.as_any().downcast_ref::<DescriptorObject>().map(|object| object.fd)
}

/// `USER_HZ` ticks (100 per second).
fn ticks(ns: u64) -> u64 {
    ns / 10_000_000
}

fn status(pid: u32, s: &Status, fd_size: u32) -> String {
    let mut text = String::new();
    let ids = |ids: &[u32; 4]| format!("{}\t{}\t{}\t{}", ids[0], ids[1], ids[2], ids[3]);
    let groups: Vec<String> = s.groups.iter().map(u32::to_string).collect();
    let cpus = cpu_list(s.cpus);
    let _ = write!(
        text,
        "Name:\t{}\nUmask:\t{:04o}\nState:\tR (running)\nTgid:\t{pid}\nNgid:\t0\nPid:\t{pid}\nPPid:\t{}\nTracerPid:\t0\nUid:\t{}\nGid:\t{}\n\
         FDSize:\t{}\nGroups:\t{}\nVmPeak:\t{:8} kB\nVmSize:\t{:8} kB\nVmHWM:\t{:8} kB\nVmRSS:\t{:8} kB\nThreads:\t{}\n\
         SigQ:\t0/{}\nSigPnd:\t{:016x}\nShdPnd:\t{:016x}\nSigBlk:\t{:016x}\nSigIgn:\t{:016x}\nSigCgt:\t{:016x}\n\
         CapInh:\t{:016x}\nCapPrm:\t{:016x}\nCapEff:\t{:016x}\nCapBnd:\t{:016x}\nCapAmb:\t0000000000000000\n\
         NoNewPrivs:\t0\nCpus_allowed:\t{:x}\nCpus_allowed_list:\t{cpus}\n",
        s.name,
        s.umask,
        s.ppid,
        ids(&s.uids),
        ids(&s.gids),
        fd_size.max(64).next_power_of_two(),
        groups.join(" "),
        s.vm_bytes / 1024,
        s.vm_bytes / 1024,
        s.rss_bytes / 1024,
        s.rss_bytes / 1024,
        s.threads,
        u16::MAX,
        s.signals.pending,
        s.signals.shared_pending,
        s.signals.blocked,
        s.signals.ignored,
        s.signals.caught,
        s.capabilities[0],
        s.capabilities[1],
        s.capabilities[2],
        (1u64 << 41) - 1, // the bounding set: Linux 6's 41 capabilities
        s.cpus,
    );
    text
}

/// CPU numbers as `0-3,5`.
fn cpu_list(mask: u64) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cpu = 0;
    while cpu < 64 {
        if mask & (1 << cpu) == 0 {
            cpu += 1;
            continue;
        }
        let first = cpu;
        while cpu < 64 && mask & (1 << cpu) != 0 {
            cpu += 1;
        }
        parts.push(if cpu - 1 == first { format!("{first}") } else { format!("{first}-{}", cpu - 1) });
    }
    parts.join(",")
}

/// `stat`'s 52 fields, as `ps` and `top` read them.
fn stat(pid: u32, s: &Status) -> String {
    let pages = s.rss_bytes / 4096;
    format!(
        "{pid} ({}) R {} {} {} 0 -1 4194304 0 0 0 0 {} 0 0 0 20 0 {} 0 {} {} {pages} 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
        s.name,
        s.ppid,
        s.pgid,
        s.sid,
        ticks(s.cpu_ns),
        s.threads,
        ticks(s.start_ns),
        s.vm_bytes,
    )
}

/// `statm`: sizes in pages (total, resident, shared, text, library, data, dirty).
fn statm(s: &Status) -> String {
    let (size, resident) = (s.vm_bytes / 4096, s.rss_bytes / 4096);
    format!("{size} {resident} 0 0 0 {resident} 0\n")
}

/// `maps`: `start-end perms offset dev inode` and the name from column 74, as Linux pads it.
fn maps(mappings: &[Mapping]) -> String {
    let mut text = String::new();
    for m in mappings {
        let flag = |on: bool, c: char| if on { c } else { '-' };
        let line = format!(
            "{:08x}-{:08x} {}{}{}{} {:08x} 00:00 0",
            m.start,
            m.end,
            flag(m.read, 'r'),
            flag(m.write, 'w'),
            flag(m.exec, 'x'),
            if m.shared { 's' } else { 'p' },
            m.offset
        );
        text.push_str(&line);
        if !m.name.is_empty() {
            for _ in line.len()..73 {
                text.push(' ');
            }
            text.push(' ');
            text.push_str(&m.name);
        }
        text.push('\n');
    }
    text
}

#[cfg(all(test, feature = "testing"))]
mod tests;
