//! [`FakeServer`]: an in-memory FUSE server behind a [`FuseChannel`], for host tests and test
//! apps (feature `testing`).
//!
//! It decodes every request and answers as virtiofsd 1.14 does (modern struct sizes, `.` and
//! `..` in READDIR, cookies as `off`, a lookup count per nodeid, one nodeid per inode, file
//! handles that keep removed files alive), with the file system semantics of a
//! `libos-fs-ramfs` instance reached through the VFS node traits. Requests it does not know
//! get `ENOSYS`, like virtiofsd.
//!
//! It also checks the client: every request's `len` must match its bytes, `unique` must not
//! repeat among requests, FORGETs must not forget more than was looked up. Violations are
//! counted ([`FakeServer::violations`]) so a test can assert there were none.
//!
//! Faults ([`Fault`]) make it misbehave on chosen requests: short, oversized or inconsistent
//! replies, a wrong `unique`, unknown or malformed errors, error replies with a payload,
//! malformed directory entries, fixed-size replies of the wrong size, and a channel that fails
//! (a device that gave up or a reply that never came, which the real device turns into `EIO`
//! after its timeout).
#![forbid(unsafe_code)]

use crate::channel::FuseChannel;
use crate::protocol::{self as proto, op};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use fuse_abi::linux as abi;
use hashbrown::{HashMap, HashSet};
use libos_core::sync::SpinLock;
use libos_core::{Errno, Result};
use libos_fs_ramfs::RamFs;
use libos_vfs::{Clock, FileSystem, FileType, NewNode, Node, Owner, SetAttr, TickClock, TimeUpdate, Timestamp};
use zerocopy::{FromBytes, IntoBytes};

mod window;
mod wire;
pub use window::FakeWindow;
use wire::{cstr, readdir, split, time};

/// How the fake server answers.
#[derive(Clone, Copy, Debug)]
pub struct FakeOptions {
    /// `entry_valid` in nanoseconds (virtiofsd `--cache=auto`: 1 s, `never`: 0).
    pub entry_valid_ns: u64,
    /// `attr_valid` in nanoseconds.
    pub attr_valid_ns: u64,
    /// `max_write` announced by INIT (virtiofsd: 1 MiB).
    pub max_write: u32,
    /// `max_pages` announced by INIT (virtiofsd: 256).
    pub max_pages: u16,
    /// The minor version INIT answers with (virtiofsd 1.14: 38).
    pub minor: u32,
    /// What [`FuseChannel::max_transfer`] reports.
    pub max_transfer: usize,
    /// A DAX window of this many bytes ([`FakeWindow`]), with SETUPMAPPING and REMOVEMAPPING
    /// served and `map_alignment` 12 announced; `None`: no window, and both answer `ENOSYS`
    /// (virtiofsd 1.14).
    pub dax_window: Option<u64>,
    /// Extended attributes served (virtiofsd `--xattr`); false: the four requests answer
    /// `ENOSYS`, as virtiofsd without the option.
    pub xattrs: bool,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions {
            entry_valid_ns: 1_000_000_000,
            attr_valid_ns: 1_000_000_000,
            max_write: 1 << 20,
            max_pages: 256,
            minor: 38,
            max_transfer: (1 << 20) + 8192,
            dax_window: None,
            xattrs: true,
        }
    }
}

/// A way to misbehave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The channel reports fewer bytes than a reply header.
    ShortReply,
    /// The channel reports more bytes than the reply buffers hold.
    OversizedReply,
    /// `out.len` differs from the bytes written.
    LenMismatch,
    /// `out.unique` is not the request's.
    WrongUnique,
    /// The reply is this raw `error` value (e.g. `-4000`, or a positive one).
    Error(i32),
    /// An error reply (`-ENOENT`) followed by payload bytes.
    ErrorWithPayload,
    /// The payload of a fixed-size reply loses its last 8 bytes (`out.len` consistent).
    Truncated,
    /// READDIR records claim a longer name than they carry.
    BadDirents,
    /// The channel fails with `EIO` (the device died, or the reply never came before its
    /// timeout).
    NoReply,
}

struct Rule {
    fault: Fault,
    opcode: Option<u32>,
    remaining: u64,
}

struct FakeNode {
    node: Arc<dyn Node>,
    nlookup: u64,
}

struct OpenHandle {
    node: Arc<dyn Node>,
    flags: u32,
    dir: bool,
}

struct State {
    fs: Arc<RamFs>,
    /// nodeid -> node and its lookup count.
    nodes: HashMap<u64, FakeNode>,
    /// ramfs inode number -> nodeid (one nodeid per inode, as virtiofsd).
    by_ino: HashMap<u64, u64>,
    next_nodeid: u64,
    handles: HashMap<u64, OpenHandle>,
    next_fh: u64,
    initialized: bool,
    uniques: HashSet<u64>,
}

/// The in-memory FUSE server.
pub struct FakeServer {
    options: FakeOptions,
    state: SpinLock<State>,
    rules: SpinLock<Vec<Rule>>,
    dead: AtomicBool,
    counts: [AtomicU64; op::COUNT],
    forget_messages: AtomicU64,
    violations: SpinLock<Vec<String>>,
    /// Sessions started after the first (a repeated `FUSE_INIT`).
    sessions: AtomicU64,
    window: Option<Arc<FakeWindow>>,
}

const O_ACCMODE: u32 = 0o3;
const O_WRONLY: u32 = 0o1;
const O_RDWR: u32 = 0o2;
const O_APPEND: u32 = 0o2000;
const O_EXCL: u32 = 0o200;

impl FakeServer {
    /// A server with an empty file system and default (virtiofsd-like) options.
    pub fn new() -> Arc<FakeServer> {
        FakeServer::with_options(FakeOptions::default())
    }

    /// A server with an empty file system.
    pub fn with_options(options: FakeOptions) -> Arc<FakeServer> {
        let clock: Arc<dyn Clock> = Arc::new(TickClock::new(1_700_000_000_000_000_000));
        let fs = Arc::new(RamFs::with_options(None, clock.clone()));
        let root = fs.root();
        let mut nodes = HashMap::new();
        let mut by_ino = HashMap::new();
        by_ino.insert(root.ino(), abi::FUSE_ROOT_ID);
        nodes.insert(abi::FUSE_ROOT_ID, FakeNode { node: root, nlookup: 0 });
        Arc::new(FakeServer {
            options,
            state: SpinLock::new(State {
                fs,
                nodes,
                by_ino,
                next_nodeid: 2,
                handles: HashMap::new(),
                next_fh: 1,
                initialized: false,
                uniques: HashSet::new(),
            }),
            rules: SpinLock::new(Vec::new()),
            dead: AtomicBool::new(false),
            counts: core::array::from_fn(|_| AtomicU64::new(0)),
            forget_messages: AtomicU64::new(0),
            violations: SpinLock::new(Vec::new()),
            sessions: AtomicU64::new(0),
            window: options.dax_window.map(FakeWindow::new),
        })
    }

    /// Misbehaves with `fault` on the next `times` requests of `opcode` (any opcode if `None`).
    pub fn inject(&self, fault: Fault, opcode: Option<u32>, times: u64) {
        self.rules.lock().push(Rule { fault, opcode, remaining: times });
    }

    /// Removes every pending fault.
    pub fn clear_faults(&self) {
        self.rules.lock().clear();
    }

    /// The server dies: every later request fails in the channel (`EIO`), FORGETs too.
    pub fn kill(&self) {
        self.dead.store(true, Ordering::Relaxed);
    }

    /// Requests of `opcode` received (FORGET and BATCH_FORGET count as messages).
    pub fn count(&self, opcode: u32) -> u64 {
        self.counts.get(opcode as usize).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// All requests received, FORGETs included.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Nodeids (other than the root) with a lookup count above zero: what virtiofsd would
    /// still hold an fd for.
    pub fn live_nodeids(&self) -> usize {
        self.state.lock().nodes.iter().filter(|(id, n)| **id != abi::FUSE_ROOT_ID && n.nlookup > 0).count()
    }

    /// The lookup count of the node named by `path` (from the root), if it has a nodeid.
    pub fn lookup_count(&self, path: &str) -> Option<u64> {
        let state = self.state.lock();
        let mut node = state.fs.root();
        for name in path.split('/').filter(|c| !c.is_empty()) {
            node = node.lookup(name).ok()?;
        }
        let id = state.by_ino.get(&node.ino())?;
        state.nodes.get(id).map(|n| n.nlookup)
    }

    /// Open file handles.
    pub fn open_handles(&self) -> usize {
        self.state.lock().handles.len()
    }

    /// How many times a client started a new session (`FUSE_INIT` again, after a reset).
    pub fn restarts(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Protocol violations seen (empty for a correct client).
    pub fn violations(&self) -> Vec<String> {
        let mut all = self.violations.lock().clone();
        all.extend(self.window.iter().flat_map(|w| w.violations()));
        all
    }

    /// The DAX window, if the server has one.
    pub fn window(&self) -> Option<Arc<FakeWindow>> {
        self.window.clone()
    }

    /// The backing file system, to prepare or inspect files "on the host".
    pub fn host(&self) -> Arc<RamFs> {
        self.state.lock().fs.clone()
    }

    fn violation(&self, what: String) {
        log::warn!("fake FUSE server: protocol violation: {what}");
        self.violations.lock().push(what);
    }

    fn take_fault(&self, opcode: u32) -> Option<Fault> {
        let mut rules = self.rules.lock();
        let index = rules.iter().position(|r| r.remaining > 0 && r.opcode.is_none_or(|o| o == opcode))?;
        let rule = &mut rules[index];
        rule.remaining -= 1;
        let fault = rule.fault;
        if rule.remaining == 0 {
            rules.remove(index);
        }
        Some(fault)
    }

    fn attr(&self, node: &Arc<dyn Node>) -> Result<proto::fuse_attr> {
        Ok(proto::attr_from_metadata(&node.metadata()?))
    }

    fn entry(&self, state: &mut State, node: Arc<dyn Node>) -> Result<Vec<u8>> {
        let attr = self.attr(&node)?;
        let ino = node.ino();
        let nodeid = match state.by_ino.get(&ino) {
            Some(&id) => id,
            None => {
                let id = state.next_nodeid;
                state.next_nodeid += 1;
                state.by_ino.insert(ino, id);
                id
            }
        };
        let slot = state.nodes.entry(nodeid).or_insert(FakeNode { node, nlookup: 0 });
        slot.nlookup += 1;
        let (entry_valid, entry_valid_nsec) = split(self.options.entry_valid_ns);
        let (attr_valid, attr_valid_nsec) = split(self.options.attr_valid_ns);
        let out = proto::fuse_entry_out { nodeid, generation: 0, entry_valid, attr_valid, entry_valid_nsec, attr_valid_nsec, attr };
        Ok(out.as_bytes().to_vec())
    }

    fn attr_out(&self, node: &Arc<dyn Node>) -> Result<Vec<u8>> {
        let (attr_valid, attr_valid_nsec) = split(self.options.attr_valid_ns);
        let out = proto::fuse_attr_out { attr_valid, attr_valid_nsec, dummy: 0, attr: self.attr(node)? };
        Ok(out.as_bytes().to_vec())
    }

    fn forget(&self, state: &mut State, nodeid: u64, nlookup: u64) {
        let Some(node) = state.nodes.get_mut(&nodeid) else {
            self.violation(alloc::format!("FORGET of unknown node {nodeid}"));
            return;
        };
        if node.nlookup < nlookup {
            self.violation(alloc::format!("FORGET of {nlookup} on node {nodeid} with {} lookups", node.nlookup));
            node.nlookup = 0;
        } else {
            node.nlookup -= nlookup;
        }
        if node.nlookup == 0 && nodeid != abi::FUSE_ROOT_ID {
            let ino = node.node.ino();
            state.nodes.remove(&nodeid);
            state.by_ino.remove(&ino);
        }
    }

    fn node(state: &State, nodeid: u64) -> Result<Arc<dyn Node>> {
        state.nodes.get(&nodeid).map(|n| n.node.clone()).ok_or(Errno::ESTALE)
    }

    fn handle(state: &State, fh: u64) -> Result<&OpenHandle> {
        state.handles.get(&fh).ok_or(Errno::EBADF)
    }

    fn open(state: &mut State, node: Arc<dyn Node>, flags: u32, dir: bool) -> u64 {
        let fh = state.next_fh;
        state.next_fh += 1;
        state.handles.insert(fh, OpenHandle { node, flags, dir });
        fh
    }

    /// Answers one request: `Ok(payload)` or `Err(errno)`.
    fn dispatch(&self, header: &proto::fuse_in_header, body: &[u8]) -> Result<Vec<u8>> {
        let mut state = self.state.lock();
        let state = &mut *state;
        if header.opcode != op::INIT && !state.initialized {
            return Err(Errno::EIO);
        }
        let nodeid = header.nodeid;
        match header.opcode {
            op::INIT => {
                let (init, _) = proto::fuse_init_in::read_from_prefix(body).map_err(|_| Errno::EINVAL)?;
                if init.major != 7 {
                    return Err(Errno::EPROTO);
                }
                if state.initialized {
                    // A new session (the device was reset): like virtiofsd, forget every
                    // nodeid and handle of the old one. Numbering starts again, so a client
                    // that kept using an old nodeid would reach another file.
                    let root = state.fs.root();
                    state.nodes.clear();
                    state.by_ino.clear();
                    state.by_ino.insert(root.ino(), abi::FUSE_ROOT_ID);
                    state.nodes.insert(abi::FUSE_ROOT_ID, FakeNode { node: root, nlookup: 0 });
                    state.next_nodeid = 2;
                    state.handles.clear();
                    self.sessions.fetch_add(1, Ordering::Relaxed);
                }
                state.initialized = true;
                let supported = abi::FUSE_BIG_WRITES
                    | abi::FUSE_MAX_PAGES
                    | abi::FUSE_PARALLEL_DIROPS
                    | abi::FUSE_DONT_MASK
                    | abi::FUSE_DO_READDIRPLUS
                    | abi::FUSE_ATOMIC_O_TRUNC
                    | abi::FUSE_WRITEBACK_CACHE
                    | if self.window.is_some() { abi::FUSE_MAP_ALIGNMENT } else { 0 };
                let out = proto::fuse_init_out {
                    major: 7,
                    minor: self.options.minor,
                    max_readahead: init.max_readahead,
                    flags: init.flags & supported,
                    max_background: 64,
                    congestion_threshold: 48,
                    max_write: self.options.max_write,
                    time_gran: 1,
                    max_pages: self.options.max_pages,
                    map_alignment: if self.window.is_some() { 12 } else { 0 },
                    ..Default::default()
                };
                Ok(out.as_bytes().to_vec())
            }
            op::LOOKUP => {
                let name = cstr(body)?;
                let dir = Self::node(state, nodeid)?;
                let node = dir.lookup(name)?;
                self.entry(state, node)
            }
            op::GETATTR => {
                let node = Self::node(state, nodeid)?;
                self.attr_out(&node)
            }
            op::SETATTR => {
                let (set, _) = proto::fuse_setattr_in::read_from_prefix(body).map_err(|_| Errno::EINVAL)?;
                let node = Self::node(state, nodeid)?;
                if set.valid & proto::FATTR_FH != 0 {
                    Self::handle(state, set.fh)?;
                }
                if set.valid & proto::FATTR_SIZE != 0 {
                    match node.file_type() {
                        FileType::Regular => node.truncate(set.size)?,
                        FileType::Directory => return Err(Errno::EISDIR),
                        _ => return Err(Errno::EINVAL),
                    }
                }
                let update = |flag: u32, now_flag: u32, secs: u64, nanos: u32| match set.valid & (flag | now_flag) {
                    0 => TimeUpdate::Keep,
                    v if v & now_flag != 0 => TimeUpdate::Now,
                    _ => TimeUpdate::To(time(secs, nanos)),
                };
                let accessed = update(proto::FATTR_ATIME, proto::FATTR_ATIME_NOW, set.atime, set.atimensec);
                let modified = update(proto::FATTR_MTIME, proto::FATTR_MTIME_NOW, set.mtime, set.mtimensec);
                let given = |flag: u32, value: u32| (set.valid & flag != 0).then_some(value);
                let attr = SetAttr {
                    perm: given(proto::FATTR_MODE, set.mode & 0o7777),
                    uid: given(proto::FATTR_UID, set.uid),
                    gid: given(proto::FATTR_GID, set.gid),
                    atime: accessed,
                    mtime: modified,
                };
                if attr != SetAttr::NONE {
                    node.set_attr(&attr)?;
                }
                self.attr_out(&node)
            }
            op::READLINK => Ok(Self::node(state, nodeid)?.read_link()?.into_bytes()),
            op::SYMLINK => {
                let name = cstr(body)?;
                let target = cstr(&body[name.len() + 1..])?;
                let node = Self::node(state, nodeid)?.create(name, NewNode::Symlink(target), 0o777, Owner::default())?;
                self.entry(state, node)
            }
            op::MKNOD => {
                let (mknod, rest) = proto::fuse_mknod_in::read_from_prefix(body).map_err(|_| Errno::EINVAL)?;
                let rdev = proto::rdev_from_wire(mknod.rdev);
                let kind = match FileType::from_mode(mknod.mode) {
                    Some(FileType::Regular) => NewNode::File,
                    Some(FileType::Fifo) => NewNode::Fifo,
                    Some(FileType::Socket) => NewNode::Socket,
                    Some(FileType::CharDevice) => NewNode::CharDevice(rdev),
                    Some(FileType::BlockDevice) => NewNode::BlockDevice(rdev),
                    _ => return Err(Errno::EINVAL),
                };
                let node = Self::node(state, nodeid)?.create(cstr(rest)?, kind, mknod.mode & 0o7777, Owner::default())?;
                self.entry(state, node)
            }
            op::MKDIR => {
                let (mkdir, rest) = proto::fuse_mkdir_in::read_from_prefix(body).map_err(|_| Errno::EINVAL)?;
                let node = Self::node(state, nodeid)?.create(cstr(rest)?, NewNode::Directory, mkdir.mode & 0o7777, Owner::default())?;
                self.entry(state, node)
            }
            op::CREATE => {
                let (create, rest) = proto::fuse_create_in::read_from_prefix(body).map_err(|_| Errno::EINVAL)?;
                let dir = Self::node(state, nodeid)?;
                let name = cstr(rest)?;
                let node = match dir.lookup(name) {
                    Ok(_) if create.flags & O_EXCL != 0 => return Err(Errno::EEXIST),
                    Ok(node) => node,
                    Err(Errno::ENOENT) => dir.create(name, NewNode::File, create.mode & 0o7777, Owner::default())?,
                    Err(e) => return Err(e),
                };
                let mut reply = self.entry(state, node.clone())?;
                let fh = Self::open(state, node, create.flags & !O_APPEND, false);
                reply.extend_from_slice(proto::fuse_open_out { fh, open_flags: 0, backing_id: 0 }.as_bytes());
                Ok(reply)
            }
            op::UNLINK | op::RMDIR => {
                let dir = Self::node(state, nodeid)?;
                let name = cstr(body)?;
                if header.opcode == op::UNLINK { dir.unlink(name) } else { dir.rmdir(name) }.map(|()| Vec::new())
            }
            op::RENAME | op::RENAME2 => {
                let (newdir, flags, rest) = if header.opcode == op::RENAME {
                    let (r, rest) = proto::fuse_rename_in::read_from_prefix(body).map_err(|_| Errno::EINVAL)?;
                    (r.newdir, 0, rest)
                } else {
                    let (r, rest) = proto::fuse_rename2_in::read_from_prefix(body).map_err(|_| Errno::EINVAL)?;
                    (r.newdir, r.flags, rest)
                };
                let old = cstr(rest)?;
                let new = cstr(&rest[old.len() + 1..])?;
                let dir = Self::node(state, nodeid)?;
                let new_dir = Self::node(state, newdir)?;
                match flags {
                    0 => dir.rename(old, &*new_dir, new),
                    1 => dir.rename_noreplace(old, &*new_dir, new),
                    2 => dir.rename_exchange(old, &*new_dir, new),
                    _ => Err(Errno::EINVAL),
                }
                .map(|()| Vec::new())
            }
            op::LINK => {
                let (link, rest) = proto::fuse_link_in::read_from_prefix(body).map_err(|_| Errno::EINVAL)?;
                let target = Self::node(state, link.oldnodeid)?;
                let dir = Self::node(state, nodeid)?;
                let name = cstr(rest)?;
                dir.link(name, &*target)?;
                self.entry(state, target)
            }
            op::OPEN | op::OPENDIR => {
                let (open, _) = proto::fuse_open_in::read_from_prefix(body).map_err(|_| Errno::EINVAL)?;
                let node = Self::node(state, nodeid)?;
                let dir = header.opcode == op::OPENDIR;
                match (node.file_type(), dir) {
                    (FileType::Directory, false) if open.flags & O_ACCMODE != 0 => return Err(Errno::EISDIR),
                    (FileType::Directory, true) | (FileType::Regular, false) => {}
                    (_, true) => return Err(Errno::ENOTDIR),
                    (FileType::Symlink, false) => return Err(Errno::ELOOP),
                    _ => return Err(Errno::ENXIO),
                }
                // Like virtiofsd: O_APPEND is dropped here and taken from each WRITE's flags.
                let fh = Self::open(state, node, open.flags & !O_APPEND, dir);
                Ok(proto::fuse_open_out { fh, open_flags: 0, backing_id: 0 }.as_bytes().to_vec())
            }
            op::READ => {
                let (read, _) = proto::fuse_read_in::read_from_prefix(body).map_err(|_| Errno::EINVAL)?;
                let handle = Self::handle(state, read.fh)?;
                if handle.dir || handle.flags & O_ACCMODE == O_WRONLY {
                    return Err(Errno::EBADF);
                }
                let mut data = alloc::vec![0u8; read.size as usize];
                let n = handle.node.read_at(read.offset, &mut data)?;
                data.truncate(n);
                Ok(data)
            }
            op::WRITE => {
                let (write, data) = proto::fuse_write_in::read_from_prefix(body).map_err(|_| Errno::EINVAL)?;
                if data.len() != write.size as usize {
                    self.violation(alloc::format!("WRITE size {} with {} data bytes", write.size, data.len()));
                    return Err(Errno::EINVAL);
                }
                if write.size > self.options.max_write {
                    self.violation(alloc::format!("WRITE of {} bytes over max_write", write.size));
                    return Err(Errno::EINVAL);
                }
                let handle = Self::handle(state, write.fh)?;
                if handle.dir || handle.flags & (O_WRONLY | O_RDWR) == 0 {
                    return Err(Errno::EBADF);
                }
                // virtiofsd writes with RWF_APPEND when the WRITE's flags carry O_APPEND.
                let offset = if write.flags & O_APPEND != 0 { handle.node.metadata()?.size } else { write.offset };
                let node = handle.node.clone();
                let n = node.write_at(offset, data)?;
                Ok(proto::fuse_write_out { size: n as u32, padding: 0 }.as_bytes().to_vec())
            }
            op::SETUPMAPPING => {
                let Some(window) = &self.window else { return Err(Errno::ENOSYS) };
                let request = proto::fuse_setupmapping_in::read_from_bytes(body).map_err(|_| Errno::EINVAL)?;
                let handle = Self::handle(state, request.fh)?;
                let writable = request.flags & u64::from(proto::FUSE_SETUPMAPPING_FLAG_WRITE) != 0;
                if handle.dir || (writable && handle.flags & (O_WRONLY | O_RDWR) == 0) || handle.flags & O_ACCMODE == O_WRONLY {
                    return Err(Errno::EBADF);
                }
                window.map(request.moffset, request.len, handle.node.clone(), request.foffset).map(|()| Vec::new())
            }
            op::REMOVEMAPPING => {
                let Some(window) = &self.window else { return Err(Errno::ENOSYS) };
                let (request, mut rest) = proto::fuse_removemapping_in::read_from_prefix(body).map_err(|_| Errno::EINVAL)?;
                for _ in 0..request.count {
                    let (one, tail) = proto::fuse_removemapping_one::read_from_prefix(rest).map_err(|_| Errno::EINVAL)?;
                    window.unmap(one.moffset, one.len);
                    rest = tail;
                }
                Ok(Vec::new())
            }
            op::FALLOCATE => {
                let request = proto::fuse_fallocate_in::read_from_bytes(body).map_err(|_| Errno::EINVAL)?;
                let handle = Self::handle(state, request.fh)?;
                if handle.dir || handle.flags & (O_WRONLY | O_RDWR) == 0 {
                    return Err(Errno::EBADF);
                }
                let node = handle.node.clone();
                match request.mode {
                    0 | 1 => node.allocate(request.offset, request.length, request.mode == 1)?,
                    3 => node.punch_hole(request.offset, request.length)?,
                    _ => return Err(Errno::EOPNOTSUPP),
                }
                Ok(Vec::new())
            }
            op::STATFS => {
                let s = state.fs.statfs()?;
                let out = proto::fuse_kstatfs {
                    blocks: s.blocks,
                    bfree: s.blocks_free,
                    bavail: s.blocks_free,
                    files: s.files,
                    ffree: s.files_free,
                    bsize: s.block_size as u32,
                    namelen: s.name_max as u32,
                    frsize: s.block_size as u32,
                    ..Default::default()
                };
                Ok(out.as_bytes().to_vec())
            }
            op::RELEASE | op::RELEASEDIR => {
                let (release, _) = proto::fuse_release_in::read_from_prefix(body).map_err(|_| Errno::EINVAL)?;
                match state.handles.remove(&release.fh) {
                    Some(h) if h.dir == (header.opcode == op::RELEASEDIR) => Ok(Vec::new()),
                    Some(_) => {
                        self.violation(alloc::format!("{} of the wrong kind of handle", op::name(header.opcode)));
                        Err(Errno::EBADF)
                    }
                    None => {
                        self.violation(alloc::format!("{} of unknown handle {}", op::name(header.opcode), release.fh));
                        Err(Errno::EBADF)
                    }
                }
            }
            op::FLUSH | op::FSYNC | op::FSYNCDIR => {
                let (fh, _) = u64::read_from_prefix(body).map_err(|_| Errno::EINVAL)?;
                Self::handle(state, fh).map(|_| Vec::new())
            }
            op::READDIR => {
                let (read, _) = proto::fuse_read_in::read_from_prefix(body).map_err(|_| Errno::EINVAL)?;
                let handle = Self::handle(state, read.fh)?;
                if !handle.dir {
                    return Err(Errno::EBADF);
                }
                let dir = handle.node.clone();
                if dir.metadata()?.nlink == 0 {
                    return Err(Errno::ENOENT); // Linux's getdents on a removed directory
                }
                readdir(&dir, read.offset, read.size as usize)
            }
            op::SYNCFS | op::DESTROY => Ok(Vec::new()),
            op::GETXATTR | op::LISTXATTR | op::SETXATTR | op::REMOVEXATTR if self.options.xattrs => {
                wire::xattr(header.opcode, &Self::node(state, nodeid)?, body)
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    fn handle_forget(&self, message: &[u8]) {
        let Ok((header, body)) = proto::fuse_in_header::read_from_prefix(message) else {
            self.violation(String::from("FORGET shorter than a header"));
            return;
        };
        if header.len as usize != message.len() {
            self.violation(alloc::format!("FORGET len {} for {} bytes", header.len, message.len()));
        }
        if let Some(c) = self.counts.get(header.opcode as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.forget_messages.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state.lock();
        match header.opcode {
            op::FORGET => match proto::fuse_forget_in::read_from_bytes(body) {
                Ok(forget) => self.forget(&mut state, header.nodeid, forget.nlookup),
                Err(_) => self.violation(String::from("FORGET body is not 8 bytes")),
            },
            op::BATCH_FORGET => {
                let Ok((batch, records)) = proto::fuse_batch_forget_in::read_from_prefix(body) else {
                    self.violation(String::from("BATCH_FORGET without its count"));
                    return;
                };
                match <[proto::fuse_forget_one]>::ref_from_bytes_with_elems(records, batch.count as usize) {
                    Ok(records) => {
                        for r in records {
                            self.forget(&mut state, r.nodeid, r.nlookup);
                        }
                    }
                    Err(_) => self.violation(alloc::format!("BATCH_FORGET count {} for {} bytes", batch.count, records.len())),
                }
            }
            other => self.violation(alloc::format!("{} sent on the forget path", op::name(other))),
        }
    }
}

impl FuseChannel for FakeServer {
    fn request(&self, request: &[&[u8]], reply: &mut [&mut [u8]]) -> Result<usize> {
        if self.dead.load(Ordering::Relaxed) {
            return Err(Errno::EIO);
        }
        let total: usize = request.iter().map(|p| p.len()).sum();
        let capacity: usize = reply.iter().map(|p| p.len()).sum();
        if total + capacity > self.options.max_transfer {
            return Err(Errno::E2BIG);
        }
        let message: Vec<u8> = request.concat();
        let Ok((header, body)) = proto::fuse_in_header::read_from_prefix(&message) else {
            self.violation(String::from("request shorter than a header"));
            return Err(Errno::EIO);
        };
        if header.len as usize != message.len() {
            self.violation(alloc::format!("{} len {} for {} bytes", op::name(header.opcode), header.len, message.len()));
        }
        if !self.state.lock().uniques.insert(header.unique) {
            self.violation(alloc::format!("unique {} reused", header.unique));
        }
        if matches!(header.opcode, op::FORGET | op::BATCH_FORGET) {
            self.violation(String::from("FORGET sent on a request queue"));
        }
        if let Some(c) = self.counts.get(header.opcode as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let fault = self.take_fault(header.opcode);
        if fault == Some(Fault::NoReply) {
            log::warn!("fake FUSE server: no reply to {}", op::name(header.opcode));
            return Err(Errno::EIO);
        }
        let result = self.dispatch(&header, body);
        let mut unique = header.unique;
        let (mut error, mut payload) = match result {
            Ok(payload) => (0i32, payload),
            Err(e) => (-e.raw(), Vec::new()),
        };
        match fault {
            Some(Fault::Error(raw)) => {
                error = raw;
                payload.clear();
            }
            Some(Fault::ErrorWithPayload) => {
                error = -Errno::ENOENT.raw();
                payload = alloc::vec![0; 16];
            }
            Some(Fault::Truncated) => payload.truncate(payload.len().saturating_sub(8)),
            Some(Fault::WrongUnique) => unique = unique.wrapping_add(1000),
            Some(Fault::BadDirents) if header.opcode == op::READDIR && payload.len() >= 24 => {
                payload[16..20].copy_from_slice(&200u32.to_le_bytes());
                payload.truncate(40);
            }
            _ => {}
        }
        let len = proto::OUT_HEADER_SIZE + payload.len();
        if len > capacity {
            // virtiofsd fails such a request rather than writing past the buffers.
            self.violation(alloc::format!("{} reply of {len} bytes for {capacity} bytes of buffers", op::name(header.opcode)));
            return Err(Errno::EIO);
        }
        let out = proto::fuse_out_header { len: len as u32, error, unique };
        let mut bytes = Vec::with_capacity(len);
        bytes.extend_from_slice(out.as_bytes());
        bytes.extend_from_slice(&payload);
        let mut written = 0;
        for part in reply.iter_mut() {
            let n = part.len().min(bytes.len() - written);
            part[..n].copy_from_slice(&bytes[written..written + n]);
            written += n;
        }
        Ok(match fault {
            Some(Fault::ShortReply) => 8,
            Some(Fault::OversizedReply) => capacity + 16,
            Some(Fault::LenMismatch) => {
                // Claim one byte more in the header than was written.
                let bad = proto::fuse_out_header { len: len as u32 + 1, error, unique };
                let first = &mut reply[0];
                let n = first.len().min(16);
                first[..n].copy_from_slice(&bad.as_bytes()[..n]);
                written
            }
            _ => written,
        })
    }

    fn send_forget(&self, request: &[u8]) -> Result<()> {
        if self.dead.load(Ordering::Relaxed) {
            return Err(Errno::EIO);
        }
        self.handle_forget(request);
        Ok(())
    }

    fn max_transfer(&self) -> usize {
        self.options.max_transfer
    }

    fn dax_window(&self) -> Option<Arc<dyn crate::channel::DaxWindow>> {
        self.window.clone().map(|w| w as Arc<dyn crate::channel::DaxWindow>)
    }
}

/// A clock that moves only when told (for cache-timeout tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock at `start` nanoseconds.
    pub fn new(start: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicU64::new(start)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, nanos: u64) {
        self.0.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::Relaxed))
    }
}
