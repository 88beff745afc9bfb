//! [`VirtioFs`]: the `libos_vfs` file system over a FUSE session.
//!
//! - A **session** ([`Session`]) owns the channel, the negotiated sizes, the unique-id counter,
//!   the counters, the node table and the dentry cache; it sends one request per call and
//!   verifies the reply ([`crate::protocol::verify_reply`]).
//! - A **node** ([`FuseNode`]) is one FUSE nodeid. The node table maps nodeids to weak
//!   references, so one object stands for a nodeid while anything holds it, and every reply
//!   carrying an entry (LOOKUP, CREATE, MKDIR, SYMLINK, MKNOD, LINK) adds one to that object's
//!   lookup count. When the object is dropped, its count is queued for `FUSE_BATCH_FORGET`
//!   (sent on the high-priority queue when [`MountOptions::forget_batch`] are queued, on
//!   [`FileSystem::sync`], and when the mount goes away), so the host releases its inode.
//! - The **dentry cache** holds the nodes it names strongly (bounded by
//!   [`MountOptions::dentry_capacity`]); an entry is trusted until the host's `entry_valid`,
//!   a node's attributes until `attr_valid`. Directories keep their parent alive, as Linux's
//!   dentries do, so `..` never needs a request.
//! - **File handles** are opened lazily, when a node is first read, written or synced (the VFS
//!   has no open/close hooks: an `OpenFile` is the node plus an offset), kept per node and
//!   access mode, and flushed and released when the node is dropped.
//!
//! - **Sessions end** when the device fails (a reply that never came resets it). The next
//!   operation from the root brings the device back and starts a new FUSE session
//!   ([`recovery`]); every node, file handle and queued FORGET of the old session belongs
//!   to its *epoch* and fails with `ESTALE` (never reaching the new server, where its nodeid
//!   would name another file), while new path walks from the root work.
//!
//! No spin lock is held across a request: requests block (the virtio device waits for an
//! interrupt), and a node may be dropped (sending RELEASE and queueing a FORGET) whenever an
//! `Arc` goes away, so values that might hold the last reference are dropped after the locks.
#![forbid(unsafe_code)]

use crate::channel::FuseChannel;
use crate::protocol::{self as proto, Negotiated, Reply, op};
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use fuse_abi::linux as abi;
use hashbrown::HashMap;
use libos_core::sync::SpinLock;
use libos_core::{Errno, Result};
use libos_vfs::{Clock, DirEntry, FileSystem, FileType, Metadata, MonotonicClock, NewNode, Node, Owner, SetAttr, StatFs, TimeUpdate};
use zerocopy::{FromBytes, IntoBytes};

mod dax;
mod node;
mod recovery;

pub use dax::CHUNK as DAX_CHUNK;
pub use node::FuseNode;
use node::AttrCache;

/// `statfs`'s magic number for FUSE file systems (Linux `FUSE_SUPER_MAGIC`).
pub const FUSE_SUPER_MAGIC: u64 = 0x6573_5546;

/// How long attributes and entries that just arrived stay usable when the host's timeout is
/// shorter (`--cache=never` gives 0): long enough for the path walk that fetched them to use
/// them (a `stat` after its LOOKUP, a `rename` after the walk that found its source), like
/// Linux's one-jiffy granularity. 1 ms.
pub const MIN_VALIDITY_NS: u64 = 1_000_000;

/// Bytes asked for per READDIR.
const READDIR_SIZE: usize = 32 * 1024;
/// The longest symlink target read back (Linux `PATH_MAX`).
const READLINK_SIZE: usize = libos_vfs::PATH_MAX;

const O_RDONLY: u32 = 0;
const O_WRONLY: u32 = 0o1;
const O_RDWR: u32 = 0o2;
const O_CREAT: u32 = 0o100;
const O_EXCL: u32 = 0o200;
const O_APPEND: u32 = 0o2000;

/// `renameat2` flags for [`FuseNode::rename_with_flags`] (Linux values).
pub mod rename_flags {
    /// Fail with `EEXIST` if the target exists.
    pub const NOREPLACE: u32 = 1;
    /// Swap source and target (both must exist).
    pub const EXCHANGE: u32 = 2;
}

/// Mount settings.
#[derive(Clone)]
pub struct MountOptions {
    /// Where cache timeouts are measured: the monotonic clock (tests inject a manual one); a
    /// wall clock would make caches expire or live on when a program sets the time.
    pub clock: Arc<dyn Clock>,
    /// Most dentries kept (each keeps its node, so its host inode, alive).
    pub dentry_capacity: usize,
    /// FORGETs queued before a BATCH_FORGET goes out.
    pub forget_batch: usize,
    /// Read through the device's DAX window where it has one (see [`dax`]); off: every read
    /// is a READ request.
    pub dax: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions { clock: Arc::new(MonotonicClock), dentry_capacity: 4096, forget_batch: 64, dax: true }
    }
}

impl core::fmt::Debug for MountOptions {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MountOptions")
            .field("dentry_capacity", &self.dentry_capacity)
            .field("forget_batch", &self.forget_batch)
            .field("dax", &self.dax)
            .finish_non_exhaustive()
    }
}

/// Per-mount counters (a snapshot from [`VirtioFs::stats`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuseStats {
    /// Requests sent, by opcode (FORGETs not included: see `forget_messages`).
    pub requests: [u64; op::COUNT],
    /// File data received by READ.
    pub bytes_read: u64,
    /// File data copied from the DAX window (no request).
    pub bytes_read_from_window: u64,
    /// File data sent by WRITE.
    pub bytes_written: u64,
    /// Lookup references forgotten (sum of `nlookup` over FORGET records).
    pub forgotten: u64,
    /// Nodeids forgotten (FORGET records).
    pub forget_records: u64,
    /// FORGET / BATCH_FORGET messages sent on the high-priority queue.
    pub forget_messages: u64,
    /// Requests that failed in the channel or with a malformed reply (`EIO`).
    pub transport_errors: u64,
}

impl FuseStats {
    /// Requests of one opcode.
    pub fn count(&self, opcode: u32) -> u64 {
        self.requests.get(opcode as usize).copied().unwrap_or(0)
    }

    /// All requests (not counting FORGETs).
    pub fn total(&self) -> u64 {
        self.requests.iter().sum()
    }

    /// The counts since `earlier` (a snapshot of the same mount).
    pub fn since(&self, earlier: &FuseStats) -> FuseStats {
        let mut requests = [0; op::COUNT];
        for (i, r) in requests.iter_mut().enumerate() {
            *r = self.requests[i].saturating_sub(earlier.requests[i]);
        }
        FuseStats {
            requests,
            bytes_read: self.bytes_read.saturating_sub(earlier.bytes_read),
            bytes_read_from_window: self.bytes_read_from_window.saturating_sub(earlier.bytes_read_from_window),
            bytes_written: self.bytes_written.saturating_sub(earlier.bytes_written),
            forgotten: self.forgotten.saturating_sub(earlier.forgotten),
            forget_records: self.forget_records.saturating_sub(earlier.forget_records),
            forget_messages: self.forget_messages.saturating_sub(earlier.forget_messages),
            transport_errors: self.transport_errors.saturating_sub(earlier.transport_errors),
        }
    }
}

struct Counters {
    requests: [AtomicU64; op::COUNT],
    bytes_read: AtomicU64,
    bytes_read_from_window: AtomicU64,
    bytes_written: AtomicU64,
    forgotten: AtomicU64,
    forget_records: AtomicU64,
    forget_messages: AtomicU64,
    transport_errors: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            requests: core::array::from_fn(|_| AtomicU64::new(0)),
            bytes_read: AtomicU64::new(0),
            bytes_read_from_window: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            forgotten: AtomicU64::new(0),
            forget_records: AtomicU64::new(0),
            forget_messages: AtomicU64::new(0),
            transport_errors: AtomicU64::new(0),
        }
    }
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

struct Dentry {
    node: Arc<FuseNode>,
    valid_until: u64,
}

/// Dentries by parent nodeid, then name.
#[derive(Default)]
struct DentryCache {
    dirs: HashMap<u64, HashMap<String, Dentry>>,
    len: usize,
}

impl DentryCache {
    fn get(&self, parent: u64, name: &str, now: u64) -> Option<Arc<FuseNode>> {
        let dentry = self.dirs.get(&parent)?.get(name)?;
        (now < dentry.valid_until).then(|| dentry.node.clone())
    }

    fn remove(&mut self, parent: u64, name: &str) -> Option<Arc<FuseNode>> {
        let dir = self.dirs.get_mut(&parent)?;
        let dentry = dir.remove(name)?;
        if dir.is_empty() {
            self.dirs.remove(&parent);
        }
        self.len -= 1;
        Some(dentry.node)
    }

    /// Inserts, evicting to stay within `capacity`; evicted nodes go to `dropped` (to be
    /// dropped once the lock is released).
    fn insert(&mut self, parent: u64, name: &str, dentry: Dentry, capacity: usize, now: u64, dropped: &mut Vec<Arc<FuseNode>>) {
        if self.len >= capacity.max(1) {
            self.evict(now, capacity.max(1), dropped);
        }
        if let Some(old) = self.dirs.entry(parent).or_default().insert(String::from(name), dentry) {
            dropped.push(old.node);
        } else {
            self.len += 1;
        }
    }

    /// Drops expired entries; if that is not enough, about an eighth of the rest.
    fn evict(&mut self, now: u64, capacity: usize, dropped: &mut Vec<Arc<FuseNode>>) {
        let target = capacity - capacity / 8 - 1;
        for pass in 0..2 {
            let mut budget = self.len.saturating_sub(target);
            for dir in self.dirs.values_mut() {
                dir.retain(|_, d| {
                    let keep = budget == 0 || (pass == 0 && now < d.valid_until);
                    if !keep {
                        budget -= 1;
                        dropped.push(d.node.clone());
                    }
                    keep
                });
            }
            self.dirs.retain(|_, dir| !dir.is_empty());
            self.len = self.dirs.values().map(HashMap::len).sum();
            if self.len <= target {
                break;
            }
        }
    }

    fn clear(&mut self, dropped: &mut Vec<Arc<FuseNode>>) {
        for (_, dir) in self.dirs.drain() {
            dropped.extend(dir.into_values().map(|d| d.node));
        }
        self.len = 0;
    }
}

/// One FUSE session: the channel and everything shared by the nodes of a mount.
pub struct Session {
    channel: Arc<dyn FuseChannel>,
    negotiated: Negotiated,
    options: MountOptions,
    next_unique: AtomicU64,
    counters: Counters,
    nodes: SpinLock<HashMap<u64, Weak<FuseNode>>>,
    dentries: SpinLock<DentryCache>,
    forgets: SpinLock<Vec<proto::fuse_forget_one>>,
    /// The channel epoch this session's `FUSE_INIT` was made in (see [`recovery`]).
    epoch: AtomicU64,
    /// Set while one caller starts a new session after a device failure.
    recovering: AtomicBool,
    /// The DAX window's mapping cache, when the device has a window, the server announced a
    /// mapping alignment it fits, and [`MountOptions::dax`] is on.
    dax: Option<dax::MappingCache>,
}

/// What a request is about: a nodeid, valid in one epoch of the channel only.
#[derive(Clone, Copy, Debug)]
struct Target {
    nodeid: u64,
    epoch: u64,
}

/// The destination of a reply's payload.
enum ReplyData<'a> {
    /// A fixed-size payload: the reply must fill it exactly.
    Fixed(&'a mut [u8]),
    /// A variable payload of at most this buffer's size (READ, READDIR, READLINK).
    Upto(&'a mut [u8]),
}

impl Session {
    fn now(&self) -> u64 {
        self.options.clock.now().0
    }

    fn unique(&self) -> u64 {
        self.next_unique.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends one request (`body` after the header) and verifies the reply. Returns the payload
    /// length (for `Fixed`, always its size). Errors: `ESTALE` when `target` belongs to a
    /// session before a device reset (nothing is sent).
    fn call(&self, opcode: u32, target: Target, body: &[&[u8]], data: ReplyData<'_>) -> Result<usize> {
        if target.epoch != self.epoch.load(Ordering::Acquire) {
            return Err(Errno::ESTALE);
        }
        self.send(opcode, target, body, data)
    }

    /// [`Session::call`] without the check that `target` is of the current session (starting
    /// a new session talks to the channel's new epoch before the session moves to it).
    fn send(&self, opcode: u32, target: Target, body: &[&[u8]], data: ReplyData<'_>) -> Result<usize> {
        let nodeid = target.nodeid;
        let body_len: usize = body.iter().map(|b| b.len()).sum();
        let unique = self.unique();
        let header = proto::in_header(opcode, unique, nodeid, body_len);
        let mut request: [&[u8]; 6] = [&[]; 6];
        request[0] = header.as_bytes();
        for (slot, part) in request[1..].iter_mut().zip(body) {
            *slot = part;
        }
        debug_assert!(body.len() <= 5, "a FUSE request has at most 5 body parts");
        let parts = 1 + body.len().min(5);
        let mut out_header = [0u8; proto::OUT_HEADER_SIZE];
        let (fixed, payload) = match data {
            ReplyData::Fixed(buf) => (Some(buf.len()), buf),
            ReplyData::Upto(buf) => (None, buf),
        };
        let capacity = proto::OUT_HEADER_SIZE + payload.len();
        if let Some(counter) = self.counters.requests.get(opcode as usize) {
            bump(counter, 1);
        }
        let written = {
            let mut reply: [&mut [u8]; 2] = [&mut out_header, payload];
            let reply_parts = if capacity == proto::OUT_HEADER_SIZE { &mut reply[..1] } else { &mut reply[..] };
            self.channel.request_in(target.epoch, &request[..parts], reply_parts)
        };
        let written = match written {
            Ok(n) => n,
            Err(e) => {
                bump(&self.counters.transport_errors, 1);
                log::warn!("virtio-fs: {} request failed in the channel: {e}", op::name(opcode));
                return Err(if matches!(e, Errno::E2BIG | Errno::ESTALE) { e } else { Errno::EIO });
            }
        };
        match proto::verify_reply(&out_header, written, capacity, unique, opcode) {
            Err(e) => {
                bump(&self.counters.transport_errors, 1);
                Err(e)
            }
            Ok(Reply::Err(e)) => Err(e),
            Ok(Reply::Ok(n)) => match fixed {
                Some(size) if n != size => {
                    bump(&self.counters.transport_errors, 1);
                    log::warn!("virtio-fs: {} reply has {n} payload bytes, expected {size}: EIO", op::name(opcode));
                    Err(Errno::EIO)
                }
                _ => Ok(n),
            },
        }
    }

    /// A request whose reply is a fixed-size struct `T`.
    fn call_fixed<T: FromBytes + IntoBytes + zerocopy::KnownLayout + zerocopy::Immutable + Default>(
        &self,
        opcode: u32,
        target: Target,
        body: &[&[u8]],
    ) -> Result<T> {
        let mut out = T::default();
        self.call(opcode, target, body, ReplyData::Fixed(out.as_mut_bytes()))?;
        Ok(out)
    }

    /// A request without reply payload.
    fn call_empty(&self, opcode: u32, target: Target, body: &[&[u8]]) -> Result<()> {
        self.call(opcode, target, body, ReplyData::Fixed(&mut [])).map(drop)
    }

    /// Queues `nlookup` references of `nodeid` (of epoch `epoch`) to forget; sends the batch
    /// when it is full. References of an earlier session are dropped: its server is gone.
    fn queue_forget(&self, epoch: u64, nodeid: u64, nlookup: u64) {
        let full = {
            // Checked under the queue's lock, which `recovery` clears the queue under after
            // moving to a new epoch: no old record slips into the new session's queue.
            let mut queue = self.forgets.lock();
            if epoch != self.epoch.load(Ordering::Acquire) {
                return;
            }
            queue.push(proto::fuse_forget_one { nodeid, nlookup });
            queue.len() >= self.options.forget_batch.max(1)
        };
        if full {
            self.flush_forgets();
        }
    }

    /// Sends every queued FORGET (BATCH_FORGET messages sized to the channel).
    fn flush_forgets(&self) {
        let (queued, epoch) = {
            let mut queue = self.forgets.lock();
            (core::mem::take(&mut *queue), self.epoch.load(Ordering::Acquire))
        };
        if queued.is_empty() {
            return;
        }
        let head = proto::IN_HEADER_SIZE + size_of::<proto::fuse_batch_forget_in>();
        let per_message = (self.channel.max_transfer().saturating_sub(head) / 16).clamp(1, 4096);
        for chunk in queued.chunks(per_message) {
            let (opcode, message) = if chunk.len() == 1 {
                let body = proto::fuse_forget_in { nlookup: chunk[0].nlookup };
                let header = proto::in_header(op::FORGET, self.unique(), chunk[0].nodeid, 8);
                let mut message = Vec::with_capacity(48);
                message.extend_from_slice(header.as_bytes());
                message.extend_from_slice(body.as_bytes());
                (op::FORGET, message)
            } else {
                let body = proto::fuse_batch_forget_in { count: chunk.len() as u32, dummy: 0 };
                let header = proto::in_header(op::BATCH_FORGET, self.unique(), 0, 8 + 16 * chunk.len());
                let mut message = Vec::with_capacity(head + 16 * chunk.len());
                message.extend_from_slice(header.as_bytes());
                message.extend_from_slice(body.as_bytes());
                message.extend_from_slice(chunk.as_bytes());
                (op::BATCH_FORGET, message)
            };
            match self.channel.send_forget_in(epoch, &message) {
                Ok(()) => {
                    bump(&self.counters.forget_messages, 1);
                    bump(&self.counters.forget_records, chunk.len() as u64);
                    bump(&self.counters.forgotten, chunk.iter().map(|f| f.nlookup).sum());
                }
                Err(e) => {
                    bump(&self.counters.transport_errors, 1);
                    log::warn!("virtio-fs: {} of {} nodes failed: {e}", op::name(opcode), chunk.len());
                }
            }
        }
    }

    /// The node object for an entry reply that came in `epoch` (one more lookup reference on
    /// it). Errors: `ESTALE` when the session moved on since (the reply's nodeid means
    /// nothing to the new server).
    fn node_from_entry(self: &Arc<Session>, entry: &proto::fuse_entry_out, parent: &Arc<FuseNode>, epoch: u64) -> Result<Arc<FuseNode>> {
        if entry.nodeid == 0 {
            return Err(Errno::ENOENT); // a negative entry
        }
        let meta = proto::metadata_from_attr(&entry.attr).inspect_err(|_| {
            log::warn!("virtio-fs: entry for node {} has an invalid mode {:#o}", entry.nodeid, entry.attr.mode);
            // The server counted a lookup: give it back.
            self.queue_forget(epoch, entry.nodeid, 1);
        })?;
        let now = self.now();
        let attr_until = now.saturating_add(proto::timeout_nanos(entry.attr_valid, entry.attr_valid_nsec).max(MIN_VALIDITY_NS));
        let mut stale_parent = None;
        let mut nodes = self.nodes.lock();
        // Under the table's lock, which `recovery` empties under after moving to a new
        // epoch: an old session's node never enters the new session's table.
        if epoch != self.epoch.load(Ordering::Acquire) {
            return Err(Errno::ESTALE);
        }
        let found = nodes.get(&entry.nodeid).and_then(Weak::upgrade).filter(|node| node.epoch == epoch);
        if let Some(existing) = found {
            drop(nodes);
            existing.nlookup.fetch_add(1, Ordering::Relaxed);
            if existing.file_type == meta.file_type {
                existing.set_attr(meta, attr_until);
            } else {
                log::warn!("virtio-fs: node {} changed its type", entry.nodeid);
            }
            if existing.file_type.is_dir() && existing.nodeid != abi::FUSE_ROOT_ID {
                stale_parent = existing.parent.lock().replace(parent.clone());
            }
            drop(stale_parent);
            return Ok(existing);
        }
        let node = Arc::new(FuseNode {
            session: self.clone(),
            nodeid: entry.nodeid,
            epoch,
            ino: meta.ino,
            file_type: meta.file_type,
            nlookup: AtomicU64::new(1),
            parent: SpinLock::new(meta.file_type.is_dir().then(|| parent.clone())),
            attr: SpinLock::new(AttrCache { meta, valid_until: attr_until }),
            handles: SpinLock::new(Vec::new()),
            dir_buf: SpinLock::new(None),
            link_target: SpinLock::new(None),
            used_window: AtomicBool::new(false),
        });
        let dead = nodes.insert(entry.nodeid, Arc::downgrade(&node));
        drop(nodes);
        drop(dead);
        Ok(node)
    }

    fn cached_dentry(&self, parent: u64, name: &str) -> Option<Arc<FuseNode>> {
        let now = self.now();
        let node = self.dentries.lock().get(parent, name, now)?;
        // Once the device failed (the channel left the session's epoch) cached entries name
        // nodes the server forgot: a miss makes the walk ask the root, which starts a new
        // session. A node of an earlier session can also be found in the moment before
        // `recovery` clears the cache: look it up again.
        let epoch = self.epoch.load(Ordering::Acquire);
        (node.epoch == epoch && self.channel.epoch() == epoch).then_some(node)
    }

    fn add_dentry(&self, parent: u64, name: &str, node: Arc<FuseNode>, entry_valid: u64) {
        let now = self.now();
        let valid_until = now.saturating_add(entry_valid.max(MIN_VALIDITY_NS));
        let mut dropped = Vec::new();
        {
            let mut dentries = self.dentries.lock();
            // Checked under the lock `recovery` clears the cache under (see `node_from_entry`).
            if node.epoch == self.epoch.load(Ordering::Acquire) {
                dentries.insert(parent, name, Dentry { node, valid_until }, self.options.dentry_capacity, now, &mut dropped);
            } else {
                dropped.push(node);
            }
        }
        drop(dropped);
    }

    fn remove_dentry(&self, parent: u64, name: &str) -> Option<Arc<FuseNode>> {
        self.dentries.lock().remove(parent, name)
    }

    fn stats(&self) -> FuseStats {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut requests = [0; op::COUNT];
        for (r, a) in requests.iter_mut().zip(&c.requests) {
            *r = load(a);
        }
        FuseStats {
            requests,
            bytes_read: load(&c.bytes_read),
            bytes_read_from_window: load(&c.bytes_read_from_window),
            bytes_written: load(&c.bytes_written),
            forgotten: load(&c.forgotten),
            forget_records: load(&c.forget_records),
            forget_messages: load(&c.forget_messages),
            transport_errors: load(&c.transport_errors),
        }
    }
}

impl Drop for Session {
    /// The last node is gone: nothing can queue more FORGETs, so send what is left.
    fn drop(&mut self) {
        self.flush_forgets();
    }
}

/// A mounted virtio-fs (or any FUSE session over a [`FuseChannel`]).
pub struct VirtioFs {
    session: Arc<Session>,
    root: Arc<FuseNode>,
}

impl VirtioFs {
    /// Starts a FUSE session on `channel` (`FUSE_INIT`, then `GETATTR` of the root) and
    /// returns the file system. `EPROTO` if the server's protocol version is unusable, `EIO` if
    /// the server does not answer properly.
    pub fn mount(channel: Arc<dyn FuseChannel>, options: MountOptions) -> Result<Arc<VirtioFs>> {
        let epoch = channel.epoch();
        let negotiated = recovery::init(&*channel, epoch, 1)?;
        let dax = if options.dax { dax::cache_for(&*channel, &negotiated) } else { None };
        let session = Arc::new(Session {
            channel,
            negotiated,
            options,
            next_unique: AtomicU64::new(2),
            counters: Counters::default(),
            nodes: SpinLock::new(HashMap::new()),
            dentries: SpinLock::new(DentryCache::default()),
            forgets: SpinLock::new(Vec::new()),
            epoch: AtomicU64::new(epoch),
            recovering: AtomicBool::new(false),
            dax,
        });
        bump(&session.counters.requests[op::INIT as usize], 1);
        let (meta, valid) = session.root_attr(epoch)?;
        let root = Arc::new(FuseNode {
            session: session.clone(),
            nodeid: abi::FUSE_ROOT_ID,
            // The root's nodeid is the same in every session: requests about it go to the
            // current one (see `FuseNode::target`).
            epoch,
            ino: meta.ino,
            file_type: FileType::Directory,
            nlookup: AtomicU64::new(0),
            parent: SpinLock::new(None),
            attr: SpinLock::new(AttrCache { meta, valid_until: session.now().saturating_add(valid) }),
            handles: SpinLock::new(Vec::new()),
            dir_buf: SpinLock::new(None),
            link_target: SpinLock::new(None),
            used_window: AtomicBool::new(false),
        });
        session.nodes.lock().insert(abi::FUSE_ROOT_ID, Arc::downgrade(&root));
        Ok(Arc::new(VirtioFs { session, root }))
    }

    /// The counters of this mount.
    pub fn stats(&self) -> FuseStats {
        self.session.stats()
    }

    /// The DAX window in use: its 2 MiB slots and how many of them hold a mapping now.
    /// `None`: reads are READ requests (no window, or DAX off or given up).
    pub fn dax_usage(&self) -> Option<(usize, usize)> {
        let dax = self.session.dax.as_ref().filter(|d| d.enabled())?;
        Some((dax.slots(), dax.mapped_slots()))
    }

    /// What `FUSE_INIT` settled.
    pub fn negotiated(&self) -> Negotiated {
        self.session.negotiated
    }

    /// Sends the FORGETs queued so far (they are otherwise batched).
    pub fn flush_forgets(&self) {
        self.session.flush_forgets();
    }

    /// Drops every cached dentry (their nodes are forgotten unless still in use) and sends the
    /// queued FORGETs.
    pub fn drop_caches(&self) {
        let mut dropped = Vec::new();
        self.session.dentries.lock().clear(&mut dropped);
        drop(dropped);
        self.session.flush_forgets();
    }

    /// Node objects alive (each holds lookup references on the host), the root included.
    pub fn live_nodes(&self) -> usize {
        self.session.nodes.lock().values().filter(|w| w.strong_count() > 0).count()
    }

    /// The root directory as its concrete type (for [`FuseNode::rename_with_flags`]).
    pub fn root_node(&self) -> Arc<FuseNode> {
        self.root.clone()
    }
}

impl Drop for VirtioFs {
    /// Unmount: the dentry cache lets go of its nodes (nodes still open elsewhere stay until
    /// they are dropped) and the FORGETs go out.
    fn drop(&mut self) {
        self.drop_caches();
    }
}

impl FileSystem for VirtioFs {
    fn name(&self) -> &str {
        "virtiofs"
    }

    fn root(&self) -> Arc<dyn Node> {
        self.root.clone()
    }

    fn statfs(&self) -> Result<StatFs> {
        let out: proto::fuse_kstatfs = self.session.call_fixed(op::STATFS, self.root.target()?, &[])?;
        Ok(StatFs {
            fs_type: FUSE_SUPER_MAGIC,
            block_size: u64::from(if out.frsize != 0 { out.frsize } else { out.bsize }),
            blocks: out.blocks,
            blocks_free: out.bavail.min(out.blocks),
            files: out.files,
            files_free: out.ffree,
            name_max: u64::from(out.namelen),
            flags: 0,
        })
    }

    /// Sends the queued FORGETs and asks the host to sync the shared file system (`SYNCFS`;
    /// a server without it, `ENOSYS`, is fine: every write already reached the host).
    fn sync(&self) -> Result<()> {
        self.session.flush_forgets();
        let syncfs = [0u8; 8];
        match self.session.call_empty(op::SYNCFS, self.root.target()?, &[&syncfs]) {
            Ok(()) | Err(Errno::ENOSYS) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

