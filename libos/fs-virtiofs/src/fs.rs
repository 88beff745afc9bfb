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

mod recovery;

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
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions { clock: Arc::new(MonotonicClock), dentry_capacity: 4096, forget_batch: 64 }
    }
}

impl core::fmt::Debug for MountOptions {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MountOptions")
            .field("dentry_capacity", &self.dentry_capacity)
            .field("forget_batch", &self.forget_batch)
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
        });
        session.nodes.lock().insert(abi::FUSE_ROOT_ID, Arc::downgrade(&root));
        Ok(Arc::new(VirtioFs { session, root }))
    }

    /// The counters of this mount.
    pub fn stats(&self) -> FuseStats {
        self.session.stats()
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

struct AttrCache {
    meta: Metadata,
    valid_until: u64,
}

/// What a file handle may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
    Dir,
}

impl Access {
    fn serves(self, need: Access) -> bool {
        self == need || (self == Access::ReadWrite && matches!(need, Access::Read | Access::Write))
    }
}

struct Handle {
    fh: u64,
    /// The session it was opened in (only the root outlives sessions, and its handles with it).
    epoch: u64,
    access: Access,
    /// Written through: FLUSH before RELEASE.
    dirty: bool,
}

/// Directory entries of one READDIR reply, each with the cookie it starts at.
struct DirBuf {
    entries: Vec<(u64, DirEntry)>,
}

/// A file, directory or symlink of a [`VirtioFs`]: one FUSE nodeid.
pub struct FuseNode {
    session: Arc<Session>,
    nodeid: u64,
    /// The session (channel epoch) the nodeid belongs to; the root's is its first.
    epoch: u64,
    ino: u64,
    file_type: FileType,
    /// Lookup references this object holds on the host.
    nlookup: AtomicU64,
    /// A directory's parent (`None` for the root and for non-directories).
    parent: SpinLock<Option<Arc<FuseNode>>>,
    attr: SpinLock<AttrCache>,
    handles: SpinLock<Vec<Handle>>,
    dir_buf: SpinLock<Option<DirBuf>>,
    link_target: SpinLock<Option<String>>,
}

impl core::fmt::Debug for FuseNode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FuseNode").field("nodeid", &self.nodeid).field("ino", &self.ino).finish_non_exhaustive()
    }
}

impl Drop for FuseNode {
    fn drop(&mut self) {
        let handles = core::mem::take(self.handles.get_mut());
        for handle in handles {
            self.release(&handle);
        }
        {
            let mut nodes = self.session.nodes.lock();
            if nodes.get(&self.nodeid).is_some_and(|w| core::ptr::eq(w.as_ptr(), self)) {
                nodes.remove(&self.nodeid);
            }
        }
        let nlookup = *self.nlookup.get_mut();
        if nlookup > 0 {
            self.session.queue_forget(self.epoch, self.nodeid, nlookup);
        }
    }
}

fn name_parts(name: &str) -> [&[u8]; 2] {
    [name.as_bytes(), b"\0"]
}

impl FuseNode {
    /// The FUSE nodeid.
    pub fn nodeid(&self) -> u64 {
        self.nodeid
    }

    /// Lookup references this object holds on the host.
    pub fn lookup_count(&self) -> u64 {
        self.nlookup.load(Ordering::Relaxed)
    }

    /// What requests about this node name: its nodeid in its session. The root belongs to
    /// every session, so its requests go to the current one, which is started anew first if
    /// the device failed ([`Session::ready`]); every other node stays in its own.
    fn target(&self) -> Result<Target> {
        let epoch = if self.nodeid == abi::FUSE_ROOT_ID { self.session.ready()? } else { self.epoch };
        Ok(Target { nodeid: self.nodeid, epoch })
    }

    fn set_attr(&self, meta: Metadata, valid_until: u64) {
        *self.attr.lock() = AttrCache { meta, valid_until };
    }

    /// Forgets the cached attributes (after a change that moves size, times or links).
    fn stale(&self) {
        self.attr.lock().valid_until = 0;
    }

    /// After a change of this directory's entries.
    fn dir_changed(&self) {
        self.stale();
        let old = self.dir_buf.lock().take();
        drop(old);
    }

    fn attr_from_reply(&self, out: &proto::fuse_attr_out) -> Result<Metadata> {
        let meta = proto::metadata_from_attr(&out.attr)?;
        if meta.file_type != self.file_type {
            log::warn!("virtio-fs: node {} changed its type", self.nodeid);
            return Err(Errno::EIO);
        }
        let valid = proto::timeout_nanos(out.attr_valid, out.attr_valid_nsec).max(MIN_VALIDITY_NS);
        self.set_attr(meta, self.session.now().saturating_add(valid));
        Ok(meta)
    }

    fn getattr(&self) -> Result<Metadata> {
        let getattr = proto::fuse_getattr_in::default();
        let out: proto::fuse_attr_out = self.session.call_fixed(op::GETATTR, self.target()?, &[getattr.as_bytes()])?;
        self.attr_from_reply(&out)
    }

    fn own<'a>(&self, node: &'a dyn Node) -> Result<&'a FuseNode> {
        match node.as_any().downcast_ref::<FuseNode>() {
            Some(other) if Arc::ptr_eq(&other.session, &self.session) => Ok(other),
            _ => Err(Errno::EXDEV),
        }
    }

    fn me(&self) -> Result<Arc<FuseNode>> {
        // The guard ends with this statement: a reference that turns out to be the last one is
        // dropped (and forgotten) without the table's lock held.
        let found = self.session.nodes.lock().get(&self.nodeid).and_then(Weak::upgrade);
        match found {
            Some(node) if core::ptr::eq(&*node, self) => Ok(node),
            _ => Err(Errno::ESTALE),
        }
    }

    /// Turns an entry reply to a request about `target` (this node) into a node and caches
    /// its dentry under `name`.
    fn adopt(&self, target: Target, name: &str, entry: &proto::fuse_entry_out) -> Result<Arc<FuseNode>> {
        let me = self.me()?;
        let node = self.session.node_from_entry(entry, &me, target.epoch)?;
        self.session.add_dentry(self.nodeid, name, node.clone(), proto::timeout_nanos(entry.entry_valid, entry.entry_valid_nsec));
        Ok(node)
    }

    /// `name` in this directory, from the dentry cache or by LOOKUP.
    fn child(&self, name: &str) -> Result<Arc<FuseNode>> {
        if let Some(node) = self.session.cached_dentry(self.nodeid, name) {
            return Ok(node);
        }
        let target = self.target()?;
        let entry: proto::fuse_entry_out = self.session.call_fixed(op::LOOKUP, target, &name_parts(name))?;
        self.adopt(target, name, &entry)
    }

    // ---- file handles ----

    fn find_handle(&self, target: Target, need: Access) -> Option<u64> {
        self.handles.lock().iter().find(|h| h.epoch == target.epoch && h.access.serves(need)).map(|h| h.fh)
    }

    fn open(&self, target: Target, access: Access) -> Result<u64> {
        let opcode = if access == Access::Dir { op::OPENDIR } else { op::OPEN };
        let flags = match access {
            Access::Read | Access::Dir => O_RDONLY,
            Access::Write => O_WRONLY,
            Access::ReadWrite => O_RDWR,
        };
        let open_in = proto::fuse_open_in { flags, open_flags: 0 };
        let out: proto::fuse_open_out = self.session.call_fixed(opcode, target, &[open_in.as_bytes()])?;
        Ok(out.fh)
    }

    /// A handle that allows `need`, opening one if there is none yet. Reads and writes first
    /// try a read-write handle (one handle serves both), and fall back to the exact mode when
    /// the host refuses it (a read-only file or share). The handle belongs to `target`'s
    /// session: use it only in requests about `target`.
    fn handle(&self, target: Target, need: Access) -> Result<u64> {
        if let Some(fh) = self.find_handle(target, need) {
            return Ok(fh);
        }
        let (fh, access) = match need {
            Access::Read | Access::Write => match self.open(target, Access::ReadWrite) {
                Ok(fh) => (fh, Access::ReadWrite),
                Err(Errno::EACCES | Errno::EPERM | Errno::EROFS | Errno::ETXTBSY) => (self.open(target, need)?, need),
                Err(e) => return Err(e),
            },
            _ => (self.open(target, need)?, need),
        };
        let epoch = target.epoch;
        let mut handles = self.handles.lock();
        if let Some(existing) = handles.iter().find(|h| h.epoch == epoch && h.access.serves(need)).map(|h| h.fh) {
            // Another thread opened one meanwhile: keep theirs.
            drop(handles);
            self.release(&Handle { fh, epoch, access, dirty: false });
            return Ok(existing);
        }
        handles.push(Handle { fh, epoch, access, dirty: false });
        Ok(fh)
    }

    fn mark_dirty(&self, fh: u64) {
        if let Some(h) = self.handles.lock().iter_mut().find(|h| h.fh == fh) {
            h.dirty = true;
        }
    }

    fn release(&self, handle: &Handle) {
        let dir = handle.access == Access::Dir;
        let target = Target { nodeid: self.nodeid, epoch: handle.epoch };
        if handle.epoch != self.session.epoch.load(Ordering::Acquire) {
            return; // its session's server is gone, and the handle with it
        }
        if handle.dirty {
            let flush = proto::fuse_flush_in { fh: handle.fh, ..Default::default() };
            if let Err(e) = self.session.call_empty(op::FLUSH, target, &[flush.as_bytes()]) {
                log::warn!("virtio-fs: FLUSH of node {} failed: {e}", self.nodeid);
            }
        }
        let release = proto::fuse_release_in { fh: handle.fh, ..Default::default() };
        let opcode = if dir { op::RELEASEDIR } else { op::RELEASE };
        if let Err(e) = self.session.call_empty(opcode, target, &[release.as_bytes()]) {
            log::warn!("virtio-fs: {} of node {} failed: {e}", op::name(opcode), self.nodeid);
        }
    }

    fn regular(&self) -> Result<()> {
        match self.file_type {
            FileType::Regular => Ok(()),
            FileType::Directory => Err(Errno::EISDIR),
            _ => Err(Errno::EINVAL),
        }
    }

    /// One WRITE of `data` (at most `max_write` bytes) through `fh`. `flags` are the file's
    /// flags as the server sees them per write (`O_APPEND`: write at the end).
    fn write_once(&self, target: Target, fh: u64, offset: u64, data: &[u8], flags: u32) -> Result<usize> {
        let write_in = proto::fuse_write_in { fh, offset, size: data.len() as u32, flags, ..Default::default() };
        let out: proto::fuse_write_out = self.session.call_fixed(op::WRITE, target, &[write_in.as_bytes(), data])?;
        let n = out.size as usize;
        if n > data.len() {
            log::warn!("virtio-fs: WRITE reply claims {n} of {} bytes: EIO", data.len());
            return Err(Errno::EIO);
        }
        bump(&self.session.counters.bytes_written, n as u64);
        Ok(n)
    }

    /// Writes `buf` in `max_write` pieces through `fh`; `at` gives each piece's offset.
    fn write_all_pieces(&self, target: Target, fh: u64, buf: &[u8], flags: u32, mut at: impl FnMut(usize) -> u64) -> Result<usize> {
        let max = self.session.negotiated.max_write;
        let mut done = 0;
        while done < buf.len() {
            let piece = &buf[done..buf.len().min(done + max)];
            match self.write_once(target, fh, at(done), piece, flags) {
                Ok(n) => {
                    done += n;
                    if n < piece.len() {
                        break;
                    }
                }
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(done)
    }

    fn setattr(&self, mut setattr: proto::fuse_setattr_in) -> Result<()> {
        let target = self.target()?;
        if let Some(fh) = self.find_handle(target, Access::Write) {
            setattr.valid |= proto::FATTR_FH;
            setattr.fh = fh;
        }
        let out: proto::fuse_attr_out = self.session.call_fixed(op::SETATTR, target, &[setattr.as_bytes()])?;
        self.attr_from_reply(&out).map(drop)
    }

    /// `renameat2`: moves `old_name` of this directory to `new_name` in `new_dir` with
    /// [`rename_flags`] (`RENAME2`; plain `RENAME` when `flags` is 0).
    pub fn rename_with_flags(&self, old_name: &str, new_dir: &dyn Node, new_name: &str, flags: u32) -> Result<()> {
        if flags & !(rename_flags::NOREPLACE | rename_flags::EXCHANGE) != 0
            || flags == rename_flags::NOREPLACE | rename_flags::EXCHANGE
        {
            return Err(Errno::EINVAL);
        }
        let new_dir = self.own(new_dir)?;
        let source = self.child(old_name)?;
        let target = self.target()?;
        // The other directory's nodeid travels in the body: it must be of the same session.
        if new_dir.target()?.epoch != target.epoch {
            return Err(Errno::ESTALE);
        }
        let [old, nul] = name_parts(old_name);
        let [new, _] = name_parts(new_name);
        if flags == 0 {
            let rename = proto::fuse_rename_in { newdir: new_dir.nodeid };
            self.session.call_empty(op::RENAME, target, &[rename.as_bytes(), old, nul, new, nul])?;
        } else {
            let rename = proto::fuse_rename2_in { newdir: new_dir.nodeid, flags, padding: 0 };
            self.session.call_empty(op::RENAME2, target, &[rename.as_bytes(), old, nul, new, nul])?;
        }
        let me = self.me()?;
        let new_dir_arc = new_dir.me()?;
        let moved = self.session.remove_dentry(self.nodeid, old_name);
        let replaced = self.session.remove_dentry(new_dir.nodeid, new_name);
        if let Some(replaced) = &replaced {
            replaced.stale();
        }
        source.stale();
        if source.file_type.is_dir() {
            let old_parent = source.parent.lock().replace(new_dir_arc.clone());
            drop(old_parent);
        }
        if flags == rename_flags::EXCHANGE {
            // The target now lives under the old name; re-learn it by LOOKUP when needed.
            if let Some(replaced) = &replaced {
                if replaced.file_type.is_dir() {
                    let old_parent = replaced.parent.lock().replace(me.clone());
                    drop(old_parent);
                }
            }
        }
        self.session.add_dentry(new_dir.nodeid, new_name, source, 0);
        self.dir_changed();
        new_dir.dir_changed();
        drop((moved, replaced, me, new_dir_arc));
        Ok(())
    }

    /// Fetches the READDIR page starting at `cookie` (skipping `.` and `..`, and names that
    /// are not UTF-8, which the VFS cannot represent).
    fn fill_dir_buf(&self, cookie: u64) -> Result<Vec<(u64, DirEntry)>> {
        let target = self.target()?;
        let fh = match self.handle(target, Access::Dir) {
            Ok(fh) => fh,
            Err(Errno::ENOENT) => return Ok(Vec::new()), // removed meanwhile, as above
            Err(e) => return Err(e),
        };
        let mut offset = cookie;
        let size = READDIR_SIZE.min(self.session.negotiated.max_read);
        let mut buf = vec![0u8; size];
        loop {
            let read_in = proto::fuse_read_in { fh, offset, size: size as u32, ..Default::default() };
            let n = match self.session.call(op::READDIR, target, &[read_in.as_bytes()], ReplyData::Upto(&mut buf)) {
                Ok(n) => n,
                // Linux (so virtiofsd) lists a removed directory with ENOENT; the VFS's
                // contract is that an open, removed directory lists nothing.
                Err(Errno::ENOENT) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let mut entries = Vec::new();
            let mut start = offset;
            let mut last_off = offset;
            for dirent in proto::Dirents::new(&buf[..n]) {
                let dirent = dirent?;
                // The first entry listed starts at the cookie asked for (skipped `.` and `..`
                // included), so a rewind to it is served from this page.
                let entry_start = if entries.is_empty() { cookie } else { start };
                start = dirent.off;
                last_off = dirent.off;
                if dirent.name == b"." || dirent.name == b".." {
                    continue;
                }
                let Ok(name) = core::str::from_utf8(dirent.name) else {
                    log::warn!("virtio-fs: skipping a directory entry whose name is not UTF-8");
                    continue;
                };
                let file_type = match proto::file_type_from_dtype(dirent.dtype) {
                    Some(t) => t,
                    None => self.child(name)?.file_type,
                };
                entries.push((entry_start, DirEntry { name: String::from(name), ino: dirent.ino, file_type, next_cookie: dirent.off }));
            }
            if n == 0 || !entries.is_empty() {
                return Ok(entries);
            }
            if last_off == offset {
                log::warn!("virtio-fs: READDIR did not advance: EIO");
                return Err(Errno::EIO);
            }
            offset = last_off;
        }
    }
}

impl Node for FuseNode {
    fn ino(&self) -> u64 {
        self.ino
    }

    fn file_type(&self) -> FileType {
        self.file_type
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    /// From the attribute cache while the host's `attr_valid` holds, else one GETATTR.
    fn metadata(&self) -> Result<Metadata> {
        let now = self.session.now();
        {
            let attr = self.attr.lock();
            if now < attr.valid_until {
                return Ok(attr.meta);
            }
        }
        self.getattr()
    }

    /// READs of up to `max_read` bytes straight into `buf`, until it is full or the file ends.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.regular()?;
        if buf.is_empty() {
            return Ok(0);
        }
        let target = self.target()?;
        let fh = self.handle(target, Access::Read)?;
        let max = self.session.negotiated.max_read;
        let mut done = 0;
        while done < buf.len() {
            let end = buf.len().min(done + max);
            let piece = &mut buf[done..end];
            let want = piece.len();
            let read_in =
                proto::fuse_read_in { fh, offset: offset + done as u64, size: want as u32, ..Default::default() };
            match self.session.call(op::READ, target, &[read_in.as_bytes()], ReplyData::Upto(piece)) {
                Ok(n) => {
                    bump(&self.session.counters.bytes_read, n as u64);
                    done += n;
                    if n < want {
                        break;
                    }
                }
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(done)
    }

    /// WRITEs of up to `max_write` bytes straight from `buf`.
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize> {
        self.regular()?;
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > libos_vfs::MAX_FILE_SIZE) {
            return Err(Errno::EFBIG);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let target = self.target()?;
        let fh = self.handle(target, Access::Write)?;
        self.mark_dirty(fh);
        let result = self.write_all_pieces(target, fh, buf, 0, |done| offset + done as u64);
        self.stale();
        result
    }

    /// WRITEs flagged `O_APPEND` (virtiofsd then writes with `RWF_APPEND`), so the host appends
    /// atomically even against its own writers; the offset written at is the new size (from
    /// GETATTR) minus what was written.
    fn append(&self, buf: &[u8]) -> Result<(u64, usize)> {
        self.regular()?;
        let target = self.target()?;
        let fh = self.handle(target, Access::Write)?;
        self.mark_dirty(fh);
        let n = self.write_all_pieces(target, fh, buf, O_APPEND, |_| 0);
        self.stale();
        let n = n?;
        let size = self.getattr()?.size;
        Ok((size.saturating_sub(n as u64), n))
    }

    fn truncate(&self, size: u64) -> Result<()> {
        self.regular()?;
        if size > libos_vfs::MAX_FILE_SIZE {
            return Err(Errno::EFBIG);
        }
        self.setattr(proto::fuse_setattr_in { valid: proto::FATTR_SIZE, size, ..Default::default() })
    }

    /// FSYNC (FSYNCDIR for a directory) through a handle of this node.
    fn sync(&self) -> Result<()> {
        let target = self.target()?;
        let (opcode, fh) = match self.file_type {
            FileType::Directory => (op::FSYNCDIR, self.handle(target, Access::Dir)?),
            FileType::Regular => {
                let any = self.handles.lock().iter().find(|h| h.epoch == target.epoch && h.access != Access::Dir).map(|h| h.fh);
                (op::FSYNC, match any {
                    Some(fh) => fh,
                    None => self.handle(target, Access::Read)?,
                })
            }
            _ => return Ok(()),
        };
        let fsync = proto::fuse_fsync_in { fh, fsync_flags: 0, padding: 0 };
        self.session.call_empty(opcode, target, &[fsync.as_bytes()])
    }

    fn read_link(&self) -> Result<String> {
        if self.file_type != FileType::Symlink {
            return Err(Errno::EINVAL);
        }
        if let Some(target) = self.link_target.lock().clone() {
            return Ok(target);
        }
        let mut buf = vec![0u8; READLINK_SIZE];
        let n = self.session.call(op::READLINK, self.target()?, &[], ReplyData::Upto(&mut buf))?;
        buf.truncate(n);
        let target = String::from_utf8(buf).map_err(|_| {
            log::warn!("virtio-fs: symlink target of node {} is not UTF-8", self.nodeid);
            Errno::EIO
        })?;
        // A symlink's target never changes.
        *self.link_target.lock() = Some(target.clone());
        Ok(target)
    }

    fn lookup(&self, name: &str) -> Result<Arc<dyn Node>> {
        if !self.file_type.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        if name == ".." {
            if self.nodeid == abi::FUSE_ROOT_ID {
                return Ok(self.me()?);
            }
            return match self.parent.lock().clone() {
                Some(parent) => Ok(parent),
                None => Err(Errno::ENOENT),
            };
        }
        Ok(self.child(name)?)
    }

    fn create(&self, name: &str, kind: NewNode<'_>, perm: u32, owner: Owner) -> Result<Arc<dyn Node>> {
        let [n, nul] = name_parts(name);
        let perm = perm & 0o7777;
        let node = match kind {
            NewNode::File => {
                let create = proto::fuse_create_in {
                    flags: O_RDWR | O_CREAT | O_EXCL,
                    mode: FileType::Regular.mode_bits() | perm,
                    umask: 0,
                    open_flags: 0,
                };
                let mut out = [0u8; 128 + 16];
                let target = self.target()?;
                self.session.call(op::CREATE, target, &[create.as_bytes(), n, nul], ReplyData::Fixed(&mut out))?;
                let entry = proto::fuse_entry_out::read_from_bytes(&out[..128]).map_err(|_| Errno::EIO)?;
                let open = proto::fuse_open_out::read_from_bytes(&out[128..]).map_err(|_| Errno::EIO)?;
                let handle = Handle { fh: open.fh, epoch: target.epoch, access: Access::ReadWrite, dirty: false };
                let node = match self.adopt(target, name, &entry) {
                    Ok(node) => node,
                    Err(e) => {
                        self.release(&handle);
                        return Err(e);
                    }
                };
                node.handles.lock().push(handle);
                node
            }
            NewNode::Directory => {
                let mkdir = proto::fuse_mkdir_in { mode: perm, umask: 0 };
                let target = self.target()?;
                let entry: proto::fuse_entry_out = self.session.call_fixed(op::MKDIR, target, &[mkdir.as_bytes(), n, nul])?;
                self.adopt(target, name, &entry)?
            }
            NewNode::Symlink(target) => {
                let at = self.target()?;
                let entry: proto::fuse_entry_out = self.session.call_fixed(op::SYMLINK, at, &[n, nul, target.as_bytes(), b"\0"])?;
                let node = self.adopt(at, name, &entry)?;
                *node.link_target.lock() = Some(String::from(target));
                node
            }
            NewNode::Fifo | NewNode::Socket | NewNode::CharDevice(_) | NewNode::BlockDevice(_) => {
                let mknod =
                    proto::fuse_mknod_in { mode: kind.file_type().mode_bits() | perm, rdev: proto::rdev_to_wire(kind.rdev()), umask: 0, padding: 0 };
                let target = self.target()?;
                let entry: proto::fuse_entry_out = self.session.call_fixed(op::MKNOD, target, &[mknod.as_bytes(), n, nul])?;
                self.adopt(target, name, &entry)?
            }
        };
        self.dir_changed();
        // The server made the node as the uid and gid of the request (root): hand it to the
        // owner the VFS chose. A failure leaves a node the caller cannot see as created, so
        // it is removed again.
        let made = node.metadata()?;
        if (made.uid, made.gid) != (owner.uid, owner.gid) {
            let chown = SetAttr { uid: Some(owner.uid), gid: Some(owner.gid), ..SetAttr::NONE };
            if let Err(e) = Node::set_attr(&*node, &chown) {
                let _ = if kind == NewNode::Directory { self.rmdir(name) } else { self.unlink(name) };
                return Err(e);
            }
        }
        Ok(node)
    }

    fn link(&self, name: &str, target: &dyn Node) -> Result<()> {
        let target = self.own(target)?;
        if target.file_type.is_dir() {
            return Err(Errno::EPERM);
        }
        let at = self.target()?;
        // The linked node's nodeid travels in the body: it must be of the same session.
        if target.target()?.epoch != at.epoch {
            return Err(Errno::ESTALE);
        }
        let link = proto::fuse_link_in { oldnodeid: target.nodeid };
        let [n, nul] = name_parts(name);
        let entry: proto::fuse_entry_out = self.session.call_fixed(op::LINK, at, &[link.as_bytes(), n, nul])?;
        let node = self.adopt(at, name, &entry)?;
        node.stale();
        target.stale();
        self.dir_changed();
        Ok(())
    }

    fn unlink(&self, name: &str) -> Result<()> {
        self.session.call_empty(op::UNLINK, self.target()?, &name_parts(name))?;
        if let Some(node) = self.session.remove_dentry(self.nodeid, name) {
            node.stale();
        }
        self.dir_changed();
        Ok(())
    }

    fn rmdir(&self, name: &str) -> Result<()> {
        self.session.call_empty(op::RMDIR, self.target()?, &name_parts(name))?;
        if let Some(node) = self.session.remove_dentry(self.nodeid, name) {
            node.dir_changed();
        }
        self.dir_changed();
        Ok(())
    }

    fn rename(&self, old_name: &str, new_dir: &dyn Node, new_name: &str) -> Result<()> {
        self.rename_with_flags(old_name, new_dir, new_name, 0)
    }

    /// Served from the last READDIR page while its cookies match; a page is fetched when the
    /// cookie is not in it, and dropped when this mount changes the directory.
    fn read_dir(&self, cookie: u64) -> Result<Option<DirEntry>> {
        if !self.file_type.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        {
            let buf = self.dir_buf.lock();
            if let Some(found) = buf.as_ref().and_then(|b| b.entries.iter().find(|(start, _)| *start == cookie)) {
                return Ok(Some(found.1.clone()));
            }
        }
        let entries = self.fill_dir_buf(cookie)?;
        let first = entries.first().map(|(_, e)| e.clone());
        let old = self.dir_buf.lock().replace(DirBuf { entries });
        drop(old);
        Ok(first)
    }

    /// One SETATTR: `FATTR_MODE`, `FATTR_UID`, `FATTR_GID`, `FATTR_ATIME`/`FATTR_MTIME`
    /// (plus `_NOW` for the host's current time).
    fn set_attr(&self, attr: &SetAttr) -> Result<()> {
        let mut setattr = proto::fuse_setattr_in::default();
        if let Some(perm) = attr.perm {
            setattr.valid |= proto::FATTR_MODE;
            setattr.mode = perm & 0o7777;
        }
        if let Some(uid) = attr.uid {
            setattr.valid |= proto::FATTR_UID;
            setattr.uid = uid;
        }
        if let Some(gid) = attr.gid {
            setattr.valid |= proto::FATTR_GID;
            setattr.gid = gid;
        }
        match attr.atime {
            TimeUpdate::Keep => {}
            TimeUpdate::Now => setattr.valid |= proto::FATTR_ATIME | proto::FATTR_ATIME_NOW,
            TimeUpdate::To(t) => {
                setattr.valid |= proto::FATTR_ATIME;
                setattr.atime = t.secs();
                setattr.atimensec = t.subsec_nanos();
            }
        }
        match attr.mtime {
            TimeUpdate::Keep => {}
            TimeUpdate::Now => setattr.valid |= proto::FATTR_MTIME | proto::FATTR_MTIME_NOW,
            TimeUpdate::To(t) => {
                setattr.valid |= proto::FATTR_MTIME;
                setattr.mtime = t.secs();
                setattr.mtimensec = t.subsec_nanos();
            }
        }
        self.setattr(setattr)
    }
}
