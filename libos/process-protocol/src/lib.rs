//! # libos-process-protocol: what a guest and the process host say to each other
//!
//! libos runs every process of a program in its own VM (see the README's "Processes"). The
//! guest kernel and the host side (`./x`, which starts and stops the VMs) talk over one
//! byte stream per VM, the **control channel** (a virtio console port on the guest side, a
//! Unix socket on the host side). Every message is one line of ASCII text, so a run can be
//! followed with `socat` and a broken peer is easy to see.
//!
//! - [`Request`]: guest to host, `ID VERB ARGS...`. Several may be outstanding (a thread
//!   blocked in a pipe read does not hold up another's `kill`); each gets one [`Reply`] with
//!   its id, except `exit`, which gets none.
//! - [`HostMessage`]: host to guest, a reply (`reply ID ...`) or an [`Event`] (`event ...`),
//!   which comes whenever something happens to the VM's process (a child ended, a signal, a
//!   shared pipe changed).
//!
//! **Pipes between VMs.** A pipe whose ends are in different VMs lives on the host
//! ([`RequestKind::PipeNew`] registers one; the host holds its buffer). Reads and writes name
//! guest-physical [`Segment`]s of the caller's buffer, and the host copies straight between
//! the VMs' RAM (which it maps: every VM's RAM is a shared memory file), so the guest copies
//! nothing. Each VM tells the host how many read and write ends it holds
//! ([`RequestKind::PipeEnds`]); end of file and `EPIPE` follow from the totals over all VMs.
//!
//! **File offsets shared between VMs.** After a fork, parent and child share each open file
//! description, offset included, as on Linux. A description the fork copies is registered
//! with the host first ([`RequestKind::OffsetNew`]); from then on every read, write or seek
//! through it takes the host's offset ([`RequestKind::OffsetLock`], which waits while another
//! VM holds it) and gives back the new one ([`RequestKind::OffsetUnlock`]), the way Linux
//! holds a file's position lock across a read or write. [`RequestKind::OffsetDrop`] says this
//! VM closed the description.
//!
//! **Files programs run from.** Linux refuses to open a file for writing while any process
//! runs from it (`ETXTBSY`). Each VM reports the file its program came from
//! ([`RequestKind::Text`], a [`FileId`]); the host counts, per file, the processes running
//! from it (a fork runs its parent's), and tells every other VM when the count for it goes up
//! or down ([`Event::Text`]).
//!
//! **One mount namespace.** Linux's processes share their mount table; a mount, bind mount or
//! unmount one VM makes goes to the host ([`RequestKind::Namespace`]), which passes it on to
//! every other VM ([`Event::Namespace`]) before it replies.
//!
//! Exit statuses are Linux wait statuses (`code << 8` for an exit, the signal number for a
//! death by signal), the values `wait4` stores.
//!
//! Users: libos's `control` module and posix-shim (guest), xtask's `process` module (host).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use core::fmt;

/// The longest line either side accepts (a longer one is a broken peer).
pub const MAX_LINE: usize = 512;
/// Most buffer segments one pipe request names.
pub const MAX_SEGMENTS: usize = 16;
/// Bytes a host pipe holds (Linux's default): a read never returns more, so a reader names no
/// more of its buffer than this.
pub const PIPE_CAPACITY: usize = 64 * 1024;

/// A process id as the host hands them out (the first process is 1).
pub type Pid = u32;
/// A request's id, chosen by the guest (unique among its outstanding requests).
pub type RequestId = u32;
/// A pipe the host holds, by the id it gave it.
pub type PipeId = u32;
/// A shared file offset the host holds, by the id it gave it.
pub type OffsetId = u32;

/// `PipeRead`/`PipeWrite` flag: fail with `EAGAIN` instead of waiting.
pub const PIPE_NONBLOCK: u32 = 1;

/// Pipe state bits of [`Event::Pipe`]: data to read.
pub const PIPE_READABLE: u32 = 1;
/// Room for `PIPE_BUF` bytes.
pub const PIPE_WRITABLE: u32 = 2;
/// No write end open in any VM (readers see end of file once the data is read).
pub const PIPE_NO_WRITERS: u32 = 4;
/// No read end open in any VM (writers get `EPIPE`).
pub const PIPE_NO_READERS: u32 = 8;

/// A guest-physical byte range of a buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
}

/// Up to [`MAX_SEGMENTS`] segments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segments {
    list: [Segment; MAX_SEGMENTS],
    count: usize,
}

impl Segments {
    /// No segment yet.
    pub const fn new() -> Segments {
        Segments { list: [Segment { addr: 0, len: 0 }; MAX_SEGMENTS], count: 0 }
    }

    /// Adds `segment`; false when full.
    pub fn push(&mut self, segment: Segment) -> bool {
        if self.count == MAX_SEGMENTS {
            return false;
        }
        self.list[self.count] = segment;
        self.count += 1;
        true
    }

    /// The segments.
    pub fn as_slice(&self) -> &[Segment] {
        &self.list[..self.count]
    }

    /// Their total length.
    pub fn total(&self) -> u64 {
        self.as_slice().iter().map(|s| u64::from(s.len)).sum()
    }
}

/// A file as every VM of a run names it: its file system's device number and its inode. A
/// child VM starts as a copy of its parent, mount table included, so the two agree on the
/// device numbers of the file systems mounted before the fork.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    /// The file system ([`st_dev`](https://man7.org/linux/man-pages/man3/stat.3type.html)).
    pub dev: u64,
    /// The inode.
    pub ino: u64,
}

/// The longest [`NamespaceChange`], in bytes.
pub const MAX_NAMESPACE_CHANGE: usize = 240;

/// A change to the mount table, in a form only the guests read (posix-shim's `mounts`): the
/// host passes it on to the other VMs as it is. Written in hexadecimal on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NamespaceChange {
    bytes: [u8; MAX_NAMESPACE_CHANGE],
    len: usize,
}

impl NamespaceChange {
    /// `bytes` as a change; `None` when longer than [`MAX_NAMESPACE_CHANGE`].
    pub fn new(bytes: &[u8]) -> Option<NamespaceChange> {
        let mut change = NamespaceChange { bytes: [0; MAX_NAMESPACE_CHANGE], len: bytes.len() };
        change.bytes.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(change)
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl fmt::Debug for NamespaceChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NamespaceChange({:?})", self.as_bytes().escape_ascii())
    }
}

impl fmt::Display for NamespaceChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_bytes().iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A [`NamespaceChange`] from its hexadecimal form (at least one byte).
fn namespace_change(word: &str) -> Option<NamespaceChange> {
    if word.is_empty() || word.len() % 2 != 0 || word.len() > 2 * MAX_NAMESPACE_CHANGE {
        return None;
    }
    let mut bytes = [0u8; MAX_NAMESPACE_CHANGE];
    for (i, pair) in word.as_bytes().chunks(2).enumerate() {
        bytes[i] = hex(core::str::from_utf8(pair).ok()?)?;
    }
    NamespaceChange::new(&bytes[..word.len() / 2])
}

/// A guest's request: its id and what it asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Echoed in the reply.
    pub id: RequestId,
    /// What is asked.
    pub kind: RequestKind,
}

/// What a guest asks of the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// Copy this VM into a new one (the child), which resumes at the same point.
    Fork,
    /// Send signal `signal` to process `pid` (or to every process of group `-pid` when
    /// `pid` is negative).
    Kill {
        /// The process (positive) or process group (negative).
        pid: i64,
        /// The signal number.
        signal: u32,
    },
    /// This process is ending with wait status `status` (sent just before the VM powers off;
    /// no reply).
    Exit {
        /// The wait status.
        status: u32,
    },
    /// A new host pipe, of which this VM holds `readers` read and `writers` write ends.
    /// Reply: [`Reply::Pipe`].
    PipeNew {
        /// Read ends held.
        readers: u32,
        /// Write ends held.
        writers: u32,
    },
    /// This VM now holds `readers` read and `writers` write ends of `pipe`.
    PipeEnds {
        /// The pipe.
        pipe: PipeId,
        /// Read ends held.
        readers: u32,
        /// Write ends held.
        writers: u32,
    },
    /// Read into `segments`: reply [`Reply::Count`] once there is data (0 at end of file).
    PipeRead {
        /// The pipe.
        pipe: PipeId,
        /// [`PIPE_NONBLOCK`].
        flags: u32,
        /// Where the bytes go.
        segments: Segments,
    },
    /// Write all of `segments` (waiting for room unless [`PIPE_NONBLOCK`]): reply
    /// [`Reply::Count`], or `EPIPE` without readers.
    PipeWrite {
        /// The pipe.
        pipe: PipeId,
        /// [`PIPE_NONBLOCK`].
        flags: u32,
        /// Where the bytes are.
        segments: Segments,
    },
    /// Give up request `request` (a signal interrupted its caller): it is answered now, with
    /// what it did so far or `EINTR`.
    Cancel {
        /// The request to cancel.
        request: RequestId,
    },
    /// `setpgid(pid, pgid)` with Linux's rules (`pid` 0: the caller; `pgid` 0: `pid`). Reply
    /// [`Reply::Done`], or `ESRCH`, `EPERM`, `EACCES`, `EINVAL`. The process moved hears
    /// [`Event::Group`], its parent [`Event::ChildGroup`].
    SetPgid {
        /// The process to move.
        pid: Pid,
        /// The group it joins or makes.
        pgid: Pid,
    },
    /// `setsid()`: the caller leads a new session and group (its pid). Reply [`Reply::Done`]
    /// or `EPERM` when it leads a group already; its parent hears [`Event::ChildGroup`].
    SetSid,
    /// This process called `execve` (so its parent's `setpgid` of it is `EACCES` from now on,
    /// as on Linux). Reply [`Reply::Done`].
    Exec,
    /// This process runs from file `text` now (its first program, or one `execve` loaded),
    /// which the host tells every other VM ([`Event::Text`]), so none of them writes it
    /// (`ETXTBSY`). Reply [`Reply::Done`], sent after those events.
    Text {
        /// The file.
        text: FileId,
    },
    /// `vfork` (or `clone` with `CLONE_VFORK`) made child `child`: reply [`Reply::Done`] once
    /// it runs a program of its own (its [`RequestKind::Text`] after `execve`) or has ended, as
    /// Linux holds a `vfork` parent until then; at once if that happened already.
    VforkWait {
        /// The child.
        child: Pid,
    },
    /// This process changed the mount table (one mount namespace for all processes, as
    /// Linux's processes share theirs): the host passes the change on to every other VM
    /// ([`Event::Namespace`]), then replies [`Reply::Done`].
    Namespace {
        /// The change.
        change: NamespaceChange,
    },
    /// `getpgid(pid)` of another process: reply [`Reply::Id`] or `ESRCH`.
    GetPgid {
        /// The process.
        pid: Pid,
    },
    /// `getsid(pid)` of another process: reply [`Reply::Id`] or `ESRCH`.
    GetSid {
        /// The process.
        pid: Pid,
    },
    /// A file offset shared from now on, starting at `value`, held by this VM (and by the
    /// children of its later forks). Reply: [`Reply::Id`].
    OffsetNew {
        /// The offset now.
        value: u64,
    },
    /// Take `offset` for a read, write or seek: reply [`Reply::Count`] with its value once no
    /// other VM holds it. The VM gives it back with [`RequestKind::OffsetUnlock`].
    OffsetLock {
        /// The shared offset.
        offset: OffsetId,
    },
    /// Give back `offset`, now `value`. Reply [`Reply::Done`].
    OffsetUnlock {
        /// The shared offset.
        offset: OffsetId,
        /// Its new value.
        value: u64,
    },
    /// This VM closed its last descriptor of `offset`'s description. Reply [`Reply::Done`].
    OffsetDrop {
        /// The shared offset.
        offset: OffsetId,
    },
}

/// The host's answer to a [`Request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// To the parent of a fork: the child's pid.
    Forked {
        /// The child's pid.
        child: Pid,
    },
    /// To the child of a fork: its own pid and its parent's.
    Child {
        /// The child's own pid.
        pid: Pid,
        /// Its parent's pid.
        parent: Pid,
    },
    /// The request was carried out.
    Done,
    /// A pipe's id ([`RequestKind::PipeNew`]).
    Pipe {
        /// The id.
        pipe: PipeId,
    },
    /// Bytes moved ([`RequestKind::PipeRead`], [`RequestKind::PipeWrite`]).
    Count {
        /// How many.
        bytes: u64,
    },
    /// A process, group or session id ([`RequestKind::GetPgid`], [`RequestKind::GetSid`]).
    Id {
        /// The id.
        id: Pid,
    },
    /// The request failed with this Linux errno (`EAGAIN`: too many processes or a pipe not
    /// ready, `ESRCH`: no such process, `ENOMEM`: the child VM could not start, `EPIPE`, `EINTR`).
    Error {
        /// The Linux errno.
        errno: i32,
    },
}

/// Something that happened to the VM's process, sent by the host whenever it happens.
// A namespace change makes every event as large as one (about 250 bytes): events are few
// (a line over a serial port each) and this crate has no allocator to box it with.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Child `pid` ended with wait status `status`.
    Exited {
        /// The child.
        pid: Pid,
        /// Its wait status.
        status: u32,
    },
    /// Process `from` sent this process signal `signal`.
    Signal {
        /// The signal number.
        signal: u32,
        /// The sender.
        from: Pid,
    },
    /// This process was moved into group `pgid` of session `sid` (by its parent's
    /// `setpgid`).
    Group {
        /// The new group.
        pgid: Pid,
        /// The session.
        sid: Pid,
    },
    /// Child `pid` is now in group `pgid` (so that `waitpid(-PGID)` can tell its children's
    /// groups apart); to the first process, also: `pid` is an orphan it adopted.
    ChildGroup {
        /// The child.
        pid: Pid,
        /// Its group.
        pgid: Pid,
    },
    /// One more (`running` true) or one fewer other process runs from file `text`: while
    /// any does, this VM opens it for no writer (`ETXTBSY`).
    Text {
        /// The file.
        text: FileId,
        /// Whether one started (else one stopped).
        running: bool,
    },
    /// Another process changed the mount table: this VM makes the same change.
    Namespace {
        /// The change.
        change: NamespaceChange,
    },
    /// Host pipe `pipe` is now in state `state` (`PIPE_*` bits).
    Pipe {
        /// The pipe.
        pipe: PipeId,
        /// `PIPE_READABLE | PIPE_WRITABLE | PIPE_NO_WRITERS | PIPE_NO_READERS`.
        state: u32,
    },
}

/// A line from the host: a reply or an event.
#[allow(clippy::large_enum_variant)] // as `Event`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostMessage {
    /// An answer to request `id`.
    Reply(RequestId, Reply),
    /// Something that happened.
    Event(Event),
}

impl fmt::Display for Segments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.as_slice().iter().enumerate() {
            write!(f, "{}{:x}:{:x}", if i == 0 { "" } else { "," }, segment.addr, segment.len)?;
        }
        Ok(())
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.id;
        match self.kind {
            RequestKind::Fork => write!(f, "{id} fork"),
            RequestKind::Kill { pid, signal } => write!(f, "{id} kill {pid} {signal}"),
            RequestKind::Exit { status } => write!(f, "{id} exit {status}"),
            RequestKind::PipeNew { readers, writers } => write!(f, "{id} pipe-new {readers} {writers}"),
            RequestKind::PipeEnds { pipe, readers, writers } => write!(f, "{id} pipe-ends {pipe} {readers} {writers}"),
            RequestKind::PipeRead { pipe, flags, segments } => write!(f, "{id} pipe-read {pipe} {flags} {segments}"),
            RequestKind::PipeWrite { pipe, flags, segments } => write!(f, "{id} pipe-write {pipe} {flags} {segments}"),
            RequestKind::Cancel { request } => write!(f, "{id} cancel {request}"),
            RequestKind::SetPgid { pid, pgid } => write!(f, "{id} setpgid {pid} {pgid}"),
            RequestKind::SetSid => write!(f, "{id} setsid"),
            RequestKind::Exec => write!(f, "{id} exec"),
            RequestKind::Text { text } => write!(f, "{id} text {} {}", text.dev, text.ino),
            RequestKind::Namespace { change } => write!(f, "{id} namespace {change}"),
            RequestKind::VforkWait { child } => write!(f, "{id} vfork-wait {child}"),
            RequestKind::GetPgid { pid } => write!(f, "{id} getpgid {pid}"),
            RequestKind::GetSid { pid } => write!(f, "{id} getsid {pid}"),
            RequestKind::OffsetNew { value } => write!(f, "{id} offset-new {value}"),
            RequestKind::OffsetLock { offset } => write!(f, "{id} offset-lock {offset}"),
            RequestKind::OffsetUnlock { offset, value } => write!(f, "{id} offset-unlock {offset} {value}"),
            RequestKind::OffsetDrop { offset } => write!(f, "{id} offset-drop {offset}"),
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reply::Forked { child } => write!(f, "forked {child}"),
            Reply::Child { pid, parent } => write!(f, "child {pid} {parent}"),
            Reply::Done => write!(f, "done"),
            Reply::Pipe { pipe } => write!(f, "pipe {pipe}"),
            Reply::Count { bytes } => write!(f, "count {bytes}"),
            Reply::Id { id } => write!(f, "id {id}"),
            Reply::Error { errno } => write!(f, "error {errno}"),
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Event::Exited { pid, status } => write!(f, "event exited {pid} {status}"),
            Event::Signal { signal, from } => write!(f, "event signal {signal} {from}"),
            Event::Pipe { pipe, state } => write!(f, "event pipe {pipe} {state}"),
            Event::Namespace { change } => write!(f, "event namespace {change}"),
            Event::Text { text, running } => write!(f, "event text {} {} {}", text.dev, text.ino, if running { "+" } else { "-" }),
            Event::Group { pgid, sid } => write!(f, "event group {pgid} {sid}"),
            Event::ChildGroup { pid, pgid } => write!(f, "event child-group {pid} {pgid}"),
        }
    }
}

impl fmt::Display for HostMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostMessage::Reply(id, reply) => write!(f, "reply {id} {reply}"),
            HostMessage::Event(event) => event.fmt(f),
        }
    }
}

/// The words of a line, at most `N` of them; `None` when there are more.
fn words<const N: usize>(line: &str) -> Option<([&str; N], usize)> {
    let mut out = [""; N];
    let mut count = 0;
    for word in line.split_ascii_whitespace() {
        *out.get_mut(count)? = word;
        count += 1;
    }
    Some((out, count))
}

/// A decimal number with no sign and no leading `+` (`str::parse` would take `+5`).
fn number<T: core::str::FromStr>(word: &str) -> Option<T> {
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    word.parse().ok()
}

/// A hexadecimal number (no prefix).
fn hex<T: TryFrom<u64>>(word: &str) -> Option<T> {
    if word.is_empty() || word.len() > 16 || !word.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    T::try_from(u64::from_str_radix(word, 16).ok()?).ok()
}

/// A decimal number that may start with `-`.
fn signed(word: &str) -> Option<i64> {
    match word.strip_prefix('-') {
        Some(rest) => number::<i64>(rest).map(|n| -n),
        None => number(word),
    }
}

/// `ADDR:LEN,ADDR:LEN,...` in hexadecimal.
fn segments(word: &str) -> Option<Segments> {
    let mut out = Segments::new();
    for part in word.split(',') {
        let (addr, len) = part.split_once(':')?;
        if !out.push(Segment { addr: hex(addr)?, len: hex(len)? }) {
            return None;
        }
    }
    Some(out)
}

impl Request {
    /// Parses a guest's line (without its newline). `None`: not a request (the host then
    /// treats the guest as broken, see xtask's `process`).
    pub fn parse(line: &str) -> Option<Request> {
        if line.len() > MAX_LINE {
            return None;
        }
        let (w, count) = words::<6>(line)?;
        let id = number(w[0])?;
        let kind = match (w[1], count) {
            ("fork", 2) => RequestKind::Fork,
            ("kill", 4) => RequestKind::Kill { pid: signed(w[2])?, signal: number(w[3])? },
            ("exit", 3) => RequestKind::Exit { status: number(w[2])? },
            ("pipe-new", 4) => RequestKind::PipeNew { readers: number(w[2])?, writers: number(w[3])? },
            ("pipe-ends", 5) => RequestKind::PipeEnds { pipe: number(w[2])?, readers: number(w[3])?, writers: number(w[4])? },
            ("pipe-read", 5) => RequestKind::PipeRead { pipe: number(w[2])?, flags: number(w[3])?, segments: segments(w[4])? },
            ("pipe-write", 5) => RequestKind::PipeWrite { pipe: number(w[2])?, flags: number(w[3])?, segments: segments(w[4])? },
            ("cancel", 3) => RequestKind::Cancel { request: number(w[2])? },
            ("setpgid", 4) => RequestKind::SetPgid { pid: number(w[2])?, pgid: number(w[3])? },
            ("setsid", 2) => RequestKind::SetSid,
            ("exec", 2) => RequestKind::Exec,
            ("text", 4) => RequestKind::Text { text: FileId { dev: number(w[2])?, ino: number(w[3])? } },
            ("namespace", 3) => RequestKind::Namespace { change: namespace_change(w[2])? },
            ("vfork-wait", 3) => RequestKind::VforkWait { child: number(w[2])? },
            ("getpgid", 3) => RequestKind::GetPgid { pid: number(w[2])? },
            ("getsid", 3) => RequestKind::GetSid { pid: number(w[2])? },
            ("offset-new", 3) => RequestKind::OffsetNew { value: number(w[2])? },
            ("offset-lock", 3) => RequestKind::OffsetLock { offset: number(w[2])? },
            ("offset-unlock", 4) => RequestKind::OffsetUnlock { offset: number(w[2])?, value: number(w[3])? },
            ("offset-drop", 3) => RequestKind::OffsetDrop { offset: number(w[2])? },
            _ => return None,
        };
        Some(Request { id, kind })
    }
}

impl HostMessage {
    /// Parses a host's line (without its newline). `None`: not a message.
    pub fn parse(line: &str) -> Option<HostMessage> {
        if line.len() > MAX_LINE {
            return None;
        }
        let (w, count) = words::<5>(line)?;
        let message = match (w[0], w[1], count) {
            ("reply", id, _) => {
                let id = number(id)?;
                let reply = match (w[2], count) {
                    ("forked", 4) => Reply::Forked { child: number(w[3])? },
                    ("child", 5) => Reply::Child { pid: number(w[3])?, parent: number(w[4])? },
                    ("done", 3) => Reply::Done,
                    ("pipe", 4) => Reply::Pipe { pipe: number(w[3])? },
                    ("count", 4) => Reply::Count { bytes: number(w[3])? },
                    ("id", 4) => Reply::Id { id: number(w[3])? },
                    ("error", 4) => Reply::Error { errno: number(w[3])? },
                    _ => return None,
                };
                HostMessage::Reply(id, reply)
            }
            ("event", "exited", 4) => HostMessage::Event(Event::Exited { pid: number(w[2])?, status: number(w[3])? }),
            ("event", "signal", 4) => HostMessage::Event(Event::Signal { signal: number(w[2])?, from: number(w[3])? }),
            ("event", "pipe", 4) => HostMessage::Event(Event::Pipe { pipe: number(w[2])?, state: number(w[3])? }),
            ("event", "namespace", 3) => HostMessage::Event(Event::Namespace { change: namespace_change(w[2])? }),
            ("event", "text", 5) => {
                let running = match w[4] {
                    "+" => true,
                    "-" => false,
                    _ => return None,
                };
                HostMessage::Event(Event::Text { text: FileId { dev: number(w[2])?, ino: number(w[3])? }, running })
            }
            ("event", "group", 4) => HostMessage::Event(Event::Group { pgid: number(w[2])?, sid: number(w[3])? }),
            ("event", "child-group", 4) => HostMessage::Event(Event::ChildGroup { pid: number(w[2])?, pgid: number(w[3])? }),
            _ => return None,
        };
        Some(message)
    }
}

/// Collects a byte stream into lines: bytes go in as they arrive ([`LineBuffer::push`]) and
/// complete lines come out. A line longer than [`MAX_LINE`] is dropped whole (with the bytes
/// up to its newline) and reported as `Err(())` once.
#[derive(Debug)]
pub struct LineBuffer {
    bytes: [u8; MAX_LINE],
    len: usize,
    overlong: bool,
}

impl Default for LineBuffer {
    fn default() -> LineBuffer {
        LineBuffer::new()
    }
}

impl LineBuffer {
    /// An empty buffer.
    pub const fn new() -> LineBuffer {
        LineBuffer { bytes: [0; MAX_LINE], len: 0, overlong: false }
    }

    /// Feeds `byte`; at a newline, calls `line` with the completed line (`Err(())` when it
    /// was too long or not UTF-8).
    pub fn push(&mut self, byte: u8, mut line: impl FnMut(Result<&str, ()>)) {
        if byte == b'\n' {
            if self.overlong {
                line(Err(()));
            } else {
                let text = &self.bytes[..self.len];
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                line(core::str::from_utf8(text).map_err(|_| ()));
            }
            self.len = 0;
            self.overlong = false;
        } else if self.len < MAX_LINE {
            self.bytes[self.len] = byte;
            self.len += 1;
        } else {
            self.overlong = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::{String, ToString};
    use std::vec::Vec;

    fn two_segments() -> Segments {
        let mut s = Segments::new();
        s.push(Segment { addr: 0x4020_1000, len: 0x1000 });
        s.push(Segment { addr: 0x9000, len: 17 });
        s
    }

    #[test]
    fn every_message_reads_back_as_itself() {
        let kinds = [
            RequestKind::Fork,
            RequestKind::Kill { pid: 7, signal: 9 },
            RequestKind::Kill { pid: -3, signal: 15 },
            RequestKind::Exit { status: 0x0700 },
            RequestKind::PipeNew { readers: 1, writers: 2 },
            RequestKind::PipeEnds { pipe: 4, readers: 0, writers: 1 },
            RequestKind::PipeRead { pipe: 4, flags: PIPE_NONBLOCK, segments: two_segments() },
            RequestKind::PipeWrite { pipe: 4, flags: 0, segments: two_segments() },
            RequestKind::Cancel { request: 12 },
            RequestKind::SetPgid { pid: 0, pgid: 3 },
            RequestKind::SetSid,
            RequestKind::Exec,
            RequestKind::Text { text: FileId { dev: 1, ino: u64::MAX } },
            RequestKind::Namespace { change: NamespaceChange::new(b"bind\0/a b\0/c\0r").unwrap() },
            RequestKind::VforkWait { child: 3 },
            RequestKind::GetPgid { pid: 5 },
            RequestKind::GetSid { pid: 6 },
            RequestKind::OffsetNew { value: 1 << 40 },
            RequestKind::OffsetLock { offset: 2 },
            RequestKind::OffsetUnlock { offset: 2, value: 4096 },
            RequestKind::OffsetDrop { offset: 2 },
        ];
        for (id, kind) in kinds.into_iter().enumerate() {
            let request = Request { id: id as u32 + 1, kind };
            assert_eq!(Request::parse(&request.to_string()), Some(request));
        }
        let messages = [
            HostMessage::Reply(1, Reply::Forked { child: 2 }),
            HostMessage::Reply(2, Reply::Child { pid: 2, parent: 1 }),
            HostMessage::Reply(3, Reply::Done),
            HostMessage::Reply(4, Reply::Error { errno: 11 }),
            HostMessage::Reply(5, Reply::Pipe { pipe: 3 }),
            HostMessage::Reply(6, Reply::Count { bytes: 65536 }),
            HostMessage::Reply(7, Reply::Id { id: 4 }),
            HostMessage::Event(Event::Group { pgid: 3, sid: 1 }),
            HostMessage::Event(Event::ChildGroup { pid: 3, pgid: 3 }),
            HostMessage::Event(Event::Exited { pid: 4, status: 9 }),
            HostMessage::Event(Event::Signal { signal: 10, from: 1 }),
            HostMessage::Event(Event::Pipe { pipe: 2, state: PIPE_READABLE | PIPE_NO_WRITERS }),
            HostMessage::Event(Event::Text { text: FileId { dev: 3, ino: 12 }, running: true }),
            HostMessage::Event(Event::Text { text: FileId { dev: 3, ino: 12 }, running: false }),
            HostMessage::Event(Event::Namespace { change: NamespaceChange::new(&[0, 0xff, b' ']).unwrap() }),
        ];
        for message in messages {
            assert_eq!(HostMessage::parse(&message.to_string()), Some(message));
        }
        assert_eq!(two_segments().total(), 0x1011);
    }

    #[test]
    fn malformed_lines_are_refused() {
        let many = std::format!("1 pipe-read 1 0 {}", ["1:1"; MAX_SEGMENTS + 1].join(","));
        for line in [
            "", "fork", "1 fork now", "1 kill 1", "1 kill x 9", "1 kill 1 -9", "1 exit", "1 exit +3", "1 exit 99999999999", "1 Fork",
            "x fork", "1 setpgid -1 0", "1 setpgid 1", "1 setsid 1", "1 exec now", "1 text 1", "1 namespace", "1 namespace 0", "1 namespace zz", "1 namespace 41 42", "1 vfork-wait", "1 vfork-wait -2", "1 text -1 2", "1 text 1 2 3", "1 getpgid", "1 getsid -2", "1 offset-new", "1 offset-lock -1", "1 offset-unlock 1", "1 offset-drop 1 2", "1 pipe-read 1 0 zz:1", "1 pipe-write 1 0 1:", "1 pipe-read 1 0 1:100000000", &many, &"1 fork ".repeat(80),
        ] {
            assert_eq!(Request::parse(line), None, "{line:?}");
        }
        for line in [
            "reply", "reply 1 forked", "reply 1 forked -1", "reply 1 child 2", "event exited 1", "event bogus 1 2", "reply 1 done extra",
            "event signal 1 2 3", "reply x done", "event pipe 1", "reply 1 id -1", "event group 1", "event child-group 1 2 3", "event text 1 2", "event namespace", "event namespace 4", "event text 1 2 1", "event text 1 -2 +",
        ] {
            assert_eq!(HostMessage::parse(line), None, "{line:?}");
        }
    }

    #[test]
    fn an_empty_line_ends_a_part_left_over_so_the_next_message_reads() {
        // A forked child is a copy of its parent saved mid-line: the host starts it with an
        // empty line, so the part becomes one malformed line and the child's reply reads.
        let mut buffer = LineBuffer::new();
        let mut seen: Vec<Option<HostMessage>> = Vec::new();
        for byte in b"event pipe ".iter().chain(b"\nreply 44 child 11 1\n") {
            buffer.push(*byte, |line| seen.push(line.ok().and_then(HostMessage::parse)));
        }
        assert_eq!(seen, [None, Some(HostMessage::Reply(44, Reply::Child { pid: 11, parent: 1 }))]);
    }

    #[test]
    fn lines_are_cut_at_newlines_and_overlong_ones_dropped() {
        let mut buffer = LineBuffer::new();
        let mut seen: Vec<Result<String, ()>> = Vec::new();
        let mut stream = std::format!("1 fork\r\n2 kill 2 9\n{}\n3 exit 0\n", "x".repeat(MAX_LINE + 1)).into_bytes();
        stream.extend_from_slice(b"\xff\n");
        for byte in stream {
            buffer.push(byte, |line| seen.push(line.map(String::from)));
        }
        assert_eq!(seen, [Ok("1 fork".into()), Ok("2 kill 2 9".into()), Err(()), Ok("3 exit 0".into()), Err(())]);
        assert_eq!(Request::parse("3 exit 0").map(|r| r.to_string()), Some("3 exit 0".to_string()));
    }
}
