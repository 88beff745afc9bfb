//! `AF_UNIX` sockets inside the image: stream and datagram, `socketpair`, and names (path or
//! abstract) that other sockets of the program can `connect` or send to.
//!
//! A connected stream is two pipes ([`crate::events::Pipe`]), one per direction, so it has a
//! pipe's semantics: end of file once the peer closed (or shut down) its writing, `EPIPE` and
//! `SIGPIPE` writing to a peer that stopped reading. A datagram socket has a queue of messages;
//! a sender writes into the receiver's queue directly.
//!
//! A path name is a socket file in the file system, as on Linux; abstract names live only in
//! the shim's table (see [`super::unix_names`]).

use super::{MsgFlags, Options, Received};
use crate::events::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDHUP, Pipe, PipeEnd};
use crate::sockaddr::{SockAddr, UnixName};
use super::unix_names::{Key, Names, Owner, new_owner};
use alloc::collections::VecDeque;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use libos::sync::{Mutex, WaitQueue};
use libos::time::Instant;
use libos::{Errno, Result};

/// Bytes a datagram socket queues before senders wait (Linux's default `SO_RCVBUF`).
const DGRAM_QUEUE_BYTES: usize = 212_992;

/// What a name is bound to.
#[derive(Clone)]
enum Bound {
    /// A stream socket that did not `listen` yet: connecting is refused.
    Stream,
    Listener(Weak<Listener>),
    Datagram(Weak<Queue>),
}

static NAMES: Names<Bound> = Names::new();

/// Counts autobind names (`bind` with only the family, or a datagram send from an unbound
/// socket that the receiver should be able to answer).
static AUTOBIND: AtomicU64 = AtomicU64::new(0);

/// Connections waiting for `accept`.
struct Listener {
    pending: Mutex<VecDeque<UnixSocket>>,
    backlog: usize,
    queue: WaitQueue,
    changes: AtomicU64,
    name: UnixName,
}

impl Listener {
    fn notify(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.queue.wake_all();
        crate::events::changed();
    }
}

/// A datagram socket's receive queue.
struct Queue {
    messages: Mutex<VecDeque<(Vec<u8>, UnixName)>>,
    bytes: Mutex<usize>,
    queue: WaitQueue,
    changes: AtomicU64,
    /// Its socket was closed: senders get `ECONNREFUSED`.
    closed: AtomicBool,
}

impl Queue {
    fn new() -> Arc<Queue> {
        Arc::new(Queue { messages: Mutex::new(VecDeque::new()), bytes: Mutex::new(0), queue: WaitQueue::new(), changes: AtomicU64::new(0), closed: AtomicBool::new(false) })
    }

    fn notify(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.queue.wake_all();
        crate::events::changed();
    }
}

/// The two directions of a connected stream socket.
struct Ends {
    rx: PipeEnd,
    tx: PipeEnd,
    peer: UnixName,
}

enum State {
    Fresh,
    Listening(Arc<Listener>),
    Connected(Arc<Ends>),
    Datagram { rx: Arc<Queue>, peer: Option<(UnixName, Weak<Queue>)> },
}

/// An `AF_UNIX` socket.
pub struct UnixSocket {
    stream: bool,
    state: Mutex<State>,
    /// The name as bound (what `getsockname` reports).
    name: Mutex<UnixName>,
    /// Its key in [`NAMES`] once bound.
    key: Mutex<Option<Key>>,
    /// Who it is in [`NAMES`].
    owner: Owner,
    nonblocking: AtomicBool,
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        if let Some(key) = self.key.lock().take() {
            NAMES.release(&key, self.owner);
        }
        match &*self.state.lock() {
            State::Datagram { rx, .. } => {
                rx.closed.store(true, Ordering::Release);
                rx.notify();
            }
            State::Listening(listener) => {
                // Connections nobody accepted are closed: their clients see end of file.
                listener.pending.lock().clear();
                listener.notify();
            }
            _ => {}
        }
    }
}

fn pipe_pair(nonblocking: bool) -> (Ends, Ends) {
    let (a_to_b, b_to_a) = (Pipe::new(), Pipe::new());
    let a = Ends { rx: PipeEnd::new(b_to_a.clone(), false, nonblocking), tx: PipeEnd::new(a_to_b.clone(), true, nonblocking), peer: UnixName::Unnamed };
    let b = Ends { rx: PipeEnd::new(a_to_b, false, nonblocking), tx: PipeEnd::new(b_to_a, true, nonblocking), peer: UnixName::Unnamed };
    (a, b)
}

impl UnixSocket {
    /// A new unbound socket.
    pub fn new(stream: bool, nonblocking: bool) -> UnixSocket {
        let state = if stream { State::Fresh } else { State::Datagram { rx: Queue::new(), peer: None } };
        UnixSocket {
            stream,
            state: Mutex::new(state),
            name: Mutex::new(UnixName::Unnamed),
            key: Mutex::new(None),
            owner: new_owner(),
            nonblocking: AtomicBool::new(nonblocking),
        }
    }

    /// Two connected sockets (`socketpair`).
    pub fn pair(stream: bool, nonblocking: bool) -> (UnixSocket, UnixSocket) {
        let (a, b) = (UnixSocket::new(stream, nonblocking), UnixSocket::new(stream, nonblocking));
        if stream {
            let (ends_a, ends_b) = pipe_pair(false);
            *a.state.lock() = State::Connected(Arc::new(ends_a));
            *b.state.lock() = State::Connected(Arc::new(ends_b));
        } else {
            let (qa, qb) = (a.queue(), b.queue());
            if let State::Datagram { peer, .. } = &mut *a.state.lock() {
                *peer = Some((UnixName::Unnamed, Arc::downgrade(&qb)));
            }
            if let State::Datagram { peer, .. } = &mut *b.state.lock() {
                *peer = Some((UnixName::Unnamed, Arc::downgrade(&qa)));
            }
        }
        (a, b)
    }

    fn queue(&self) -> Arc<Queue> {
        match &*self.state.lock() {
            State::Datagram { rx, .. } => rx.clone(),
            _ => Queue::new(),
        }
    }

    /// Whether this is a stream socket.
    pub fn is_stream(&self) -> bool {
        self.stream
    }

    /// `O_NONBLOCK`.
    pub fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
    }

    /// Whether `O_NONBLOCK` is set.
    pub fn is_nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }

    fn nonblocking_for(&self, flags: MsgFlags) -> bool {
        flags.dont_wait || self.is_nonblocking()
    }

    /// `bind`: takes the name (`EADDRINUSE` if it is taken: an abstract name another socket
    /// has, a path that exists; `EINVAL` if this socket is bound already). Only the family: a
    /// fresh abstract name (autobind).
    pub fn bind(&self, name: UnixName) -> Result<()> {
        let mut mine = self.name.lock();
        if *mine != UnixName::Unnamed {
            return Err(Errno::EINVAL);
        }
        let name = match name {
            UnixName::Unnamed => autobind_name(),
            other => other,
        };
        let bound = match &*self.state.lock() {
            State::Datagram { rx, .. } => Bound::Datagram(Arc::downgrade(rx)),
            _ => Bound::Stream,
        };
        *self.key.lock() = Some(NAMES.bind(&name, self.owner, bound)?);
        *mine = name;
        Ok(())
    }

    /// `listen`: a bound stream socket starts taking connections (an unbound one is
    /// autobound first, as Linux does).
    pub fn listen(&self, backlog: usize) -> Result<()> {
        if !self.stream {
            return Err(Errno::EOPNOTSUPP);
        }
        if *self.name.lock() == UnixName::Unnamed {
            self.bind(UnixName::Unnamed)?;
        }
        let name = self.name.lock().clone();
        let mut state = self.state.lock();
        match &*state {
            State::Fresh => {
                let listener = Arc::new(Listener { pending: Mutex::new(VecDeque::new()), backlog: backlog.clamp(1, 4096), queue: WaitQueue::new(), changes: AtomicU64::new(0), name });
                if let Some(key) = &*self.key.lock() {
                    NAMES.rebind(key, self.owner, Bound::Listener(Arc::downgrade(&listener)));
                }
                *state = State::Listening(listener);
                Ok(())
            }
            State::Listening(_) => Ok(()),
            _ => Err(Errno::EINVAL),
        }
    }

    /// `accept`: the next connection, waiting unless non-blocking.
    pub fn accept(&self, options: &Options) -> Result<(UnixSocket, SockAddr)> {
        let listener = match &*self.state.lock() {
            State::Listening(listener) => listener.clone(),
            _ => return Err(Errno::EINVAL),
        };
        let deadline = options.receive_timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(socket) = listener.pending.lock().pop_front() {
                listener.notify(); // room in the backlog for a waiting connect
                return Ok((socket, SockAddr::Unix(UnixName::Unnamed)));
            }
            if self.is_nonblocking() {
                return Err(Errno::EAGAIN);
            }
            let seen = listener.changes.load(Ordering::Acquire);
            if !crate::signal::wait_interruptible_timed(&listener.queue, || listener.changes.load(Ordering::Acquire) != seen, deadline)? {
                return Err(Errno::EAGAIN);
            }
        }
    }

    /// `connect`: a stream socket connects to a listener (`ECONNREFUSED` when the name is not
    /// listening, `EAGAIN` non-blocking with a full backlog); a datagram socket sets its peer.
    pub fn connect(&self, name: UnixName, options: &Options) -> Result<()> {
        let target = match NAMES.find(&name)? {
            Bound::Stream => None,
            Bound::Listener(l) => Some(Ok(l)),
            Bound::Datagram(q) => Some(Err(q)),
        };
        if !self.stream {
            let Some(Err(queue)) = target else { return Err(Errno::EPROTOTYPE) };
            if let State::Datagram { peer, .. } = &mut *self.state.lock() {
                *peer = Some((name, queue));
            }
            return Ok(());
        }
        let listener = match target {
            Some(Ok(listener)) => listener.upgrade().ok_or(Errno::ECONNREFUSED)?,
            Some(Err(_)) => return Err(Errno::EPROTOTYPE),
            None => return Err(Errno::ECONNREFUSED),
        };
        match &*self.state.lock() {
            State::Fresh => {}
            State::Connected(_) => return Err(Errno::EISCONN),
            _ => return Err(Errno::EINVAL),
        }
        let deadline = options.send_timeout.map(|t| Instant::now() + t);
        loop {
            {
                let mut pending = listener.pending.lock();
                if pending.len() < listener.backlog {
                    let (mut mine, mut theirs) = pipe_pair(false);
                    mine.peer = listener.name.clone();
                    theirs.peer = self.name.lock().clone();
                    let server = UnixSocket::new(true, false);
                    *server.state.lock() = State::Connected(Arc::new(theirs));
                    *server.name.lock() = UnixName::Unnamed;
                    pending.push_back(server);
                    drop(pending);
                    *self.state.lock() = State::Connected(Arc::new(mine));
                    listener.notify();
                    return Ok(());
                }
            }
            if self.is_nonblocking() {
                return Err(Errno::EAGAIN);
            }
            let seen = listener.changes.load(Ordering::Acquire);
            if !crate::signal::wait_interruptible_timed(&listener.queue, || listener.changes.load(Ordering::Acquire) != seen, deadline)? {
                return Err(Errno::EAGAIN);
            }
        }
    }

    fn ends(&self) -> Result<Arc<Ends>> {
        match &*self.state.lock() {
            State::Connected(ends) => Ok(ends.clone()),
            _ => Err(Errno::ENOTCONN),
        }
    }

    /// Sends `data` (one datagram, or stream bytes) to the peer or to `to`.
    pub fn send(&self, data: &[u8], to: Option<UnixName>, flags: MsgFlags, options: &Options) -> Result<usize> {
        if self.stream {
            let ends = match self.ends() {
                Ok(ends) => ends,
                Err(_) => {
                    if !flags.no_signal {
                        crate::signal::raise_pipe();
                    }
                    return Err(Errno::EPIPE); // Linux: an unconnected stream socket is a broken pipe
                }
            };
            return ends.tx.send(data, self.nonblocking_for(flags), !flags.no_signal, options.send_timeout);
        }
        if data.len() > DGRAM_QUEUE_BYTES {
            return Err(Errno::EMSGSIZE);
        }
        let queue = match to {
            Some(name) => match NAMES.find(&name)? {
                Bound::Datagram(q) => q.upgrade().ok_or(Errno::ECONNREFUSED)?,
                _ => return Err(Errno::EPROTOTYPE),
            },
            None => match &*self.state.lock() {
                State::Datagram { peer: Some((_, q)), .. } => q.upgrade().ok_or(Errno::ECONNREFUSED)?,
                _ => return Err(Errno::ENOTCONN),
            },
        };
        let from = self.name.lock().clone();
        let deadline = options.send_timeout.map(|t| Instant::now() + t);
        loop {
            if queue.closed.load(Ordering::Acquire) {
                return Err(Errno::ECONNREFUSED);
            }
            {
                let mut bytes = queue.bytes.lock();
                if *bytes + data.len() <= DGRAM_QUEUE_BYTES {
                    *bytes += data.len();
                    queue.messages.lock().push_back((data.to_vec(), from));
                    drop(bytes);
                    queue.notify();
                    return Ok(data.len());
                }
            }
            if self.nonblocking_for(flags) {
                return Err(Errno::EAGAIN);
            }
            let seen = queue.changes.load(Ordering::Acquire);
            if !crate::signal::wait_interruptible_timed(&queue.queue, || queue.changes.load(Ordering::Acquire) != seen, deadline)? {
                return Err(Errno::EAGAIN);
            }
        }
    }

    /// Receives into `buf`: stream bytes, or one datagram (truncated to `buf`).
    pub fn receive(&self, buf: &mut [u8], flags: MsgFlags, options: &Options) -> Result<Received> {
        let nonblocking = self.nonblocking_for(flags);
        if self.stream {
            let ends = self.ends().map_err(|_| Errno::EINVAL)?;
            let len = ends.rx.receive(buf, flags.peek, nonblocking, options.receive_timeout)?;
            return Ok(Received { len, full_len: len, from: None });
        }
        let queue = self.queue();
        let deadline = options.receive_timeout.map(|t| Instant::now() + t);
        loop {
            {
                let mut messages = queue.messages.lock();
                if let Some((data, from)) = messages.front() {
                    let n = data.len().min(buf.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    let (full_len, from) = (data.len(), from.clone());
                    if !flags.peek {
                        messages.pop_front();
                        drop(messages);
                        *queue.bytes.lock() -= full_len;
                        queue.notify();
                    }
                    return Ok(Received { len: n, full_len, from: Some(SockAddr::Unix(from)) });
                }
            }
            if nonblocking {
                return Err(Errno::EAGAIN);
            }
            let seen = queue.changes.load(Ordering::Acquire);
            if !crate::signal::wait_interruptible_timed(&queue.queue, || queue.changes.load(Ordering::Acquire) != seen, deadline)? {
                return Err(Errno::EAGAIN);
            }
        }
    }

    /// `shutdown`: reading, writing or both (`ENOTCONN` unless connected).
    pub fn shutdown(&self, read: bool, write: bool) -> Result<()> {
        let ends = self.ends()?;
        if read {
            ends.rx.shut();
        }
        if write {
            ends.tx.shut();
        }
        Ok(())
    }

    /// The bound name.
    pub fn local_name(&self) -> SockAddr {
        SockAddr::Unix(self.name.lock().clone())
    }

    /// The peer's name (`ENOTCONN` when not connected).
    pub fn peer_name(&self) -> Result<SockAddr> {
        match &*self.state.lock() {
            State::Connected(ends) => Ok(SockAddr::Unix(ends.peer.clone())),
            State::Datagram { peer: Some((name, _)), .. } => Ok(SockAddr::Unix(name.clone())),
            _ => Err(Errno::ENOTCONN),
        }
    }

    /// Whether it is listening (`SO_ACCEPTCONN`).
    pub fn is_listening(&self) -> bool {
        matches!(&*self.state.lock(), State::Listening(_))
    }

    /// Bytes (stream) or the next datagram's length (datagram) to read (`FIONREAD`).
    pub fn available(&self) -> usize {
        match &*self.state.lock() {
            State::Connected(ends) => ends.rx.available(),
            State::Datagram { rx, .. } => rx.messages.lock().front().map_or(0, |(d, _)| d.len()),
            _ => 0,
        }
    }

    /// `poll` bits.
    pub fn ready(&self) -> i16 {
        match &*self.state.lock() {
            State::Fresh => POLLOUT | POLLHUP,
            State::Listening(l) => {
                if l.pending.lock().is_empty() {
                    0
                } else {
                    POLLIN
                }
            }
            State::Connected(ends) => {
                let (rx, tx) = (ends.rx.ready(), ends.tx.ready());
                let read_closed = rx & POLLHUP != 0;
                let write_closed = tx & POLLERR != 0 || ends.tx.is_shut();
                let mut bits = rx & POLLIN;
                if read_closed {
                    bits |= POLLIN | POLLRDHUP;
                }
                if tx & POLLOUT != 0 || write_closed {
                    bits |= POLLOUT;
                }
                if read_closed && write_closed {
                    bits |= POLLHUP;
                }
                bits
            }
            State::Datagram { rx, peer } => {
                let readable = if rx.messages.lock().is_empty() { 0 } else { POLLIN };
                let writable = match peer.as_ref().and_then(|(_, q)| q.upgrade()) {
                    Some(q) if *q.bytes.lock() >= DGRAM_QUEUE_BYTES => 0,
                    _ => POLLOUT,
                };
                readable | writable
            }
        }
    }

    /// How many times it changed (edge-triggered epoll).
    pub fn changes(&self) -> u64 {
        match &*self.state.lock() {
            State::Fresh => 0,
            State::Listening(l) => l.changes.load(Ordering::Acquire),
            State::Connected(ends) => ends.rx.changes() + ends.tx.changes(),
            State::Datagram { rx, peer } => rx.changes.load(Ordering::Acquire) + peer.as_ref().and_then(|(_, q)| q.upgrade()).map_or(0, |q| q.changes.load(Ordering::Acquire)),
        }
    }
}

fn autobind_name() -> UnixName {
    // Linux picks five hex digits; any name unique in the table will do.
    let n = AUTOBIND.fetch_add(1, Ordering::Relaxed);
    let mut name = alloc::format!("{:05x}", n & 0xfffff).into_bytes();
    name.truncate(5);
    UnixName::Abstract(name)
}
