//! Sockets shaped like `std::net`: [`TcpListener`], [`TcpStream`], [`UdpSocket`].
//!
//! Each object holds a [`Handle`]: the stack, its slot and the slot's generation (a stale
//! handle fails with `EBADF` instead of reaching a reused slot). Calls block through
//! [`Stack::block_on`] on the socket's own wait queue, honour the socket's timeout
//! (`EAGAIN` when it passes, as Linux reports `SO_RCVTIMEO`) and non-blocking mode (`EAGAIN`).
//! Errors are Linux's: `ECONNREFUSED`, `ECONNRESET`, `EPIPE`, `ETIMEDOUT` (connect),
//! `EADDRINUSE`, `ENETUNREACH` (no address or route yet), `EMSGSIZE`.

use crate::poller::{Readiness, Shared, Source};
use crate::stack::{Inner, Kind, Listener, Slot, Stack};
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use libos_core::time::Instant;
use libos_core::{Errno, Result};
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

/// Listen backlog of [`TcpListener::bind`] (Linux's `SOMAXCONN` is 4096; 128 was its default
/// for years and is what most servers ask for).
pub const DEFAULT_BACKLOG: usize = 128;
/// Most a listener may ask for.
pub const MAX_BACKLOG: usize = 4096;
/// How long a blocking `connect` waits for the handshake by default (as Linux's SYN retries).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(75);
/// Datagrams a UDP socket queues per direction, and their bytes.
const UDP_PACKETS: usize = 128;
const UDP_BYTES: usize = 256 * 1024;
/// Largest UDP payload in one Ethernet frame (no IP fragmentation: see the crate docs).
const UDP_MAX_PAYLOAD_V4: usize = 1500 - 20 - 8;
const UDP_MAX_PAYLOAD_V6: usize = 1500 - 40 - 8;

/// How to shut a connection down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// No more reads (they return end of stream).
    Read,
    /// No more writes: sends FIN once the queued data is out.
    Write,
    /// Both.
    Both,
}

/// Converts smoltcp's address to core's.
pub fn ip_from_smol(addr: IpAddress) -> IpAddr {
    match addr {
        IpAddress::Ipv4(a) => IpAddr::V4(a),
        IpAddress::Ipv6(a) => IpAddr::V6(a),
    }
}

fn ip_to_smol(addr: IpAddr) -> IpAddress {
    match addr {
        IpAddr::V4(a) => IpAddress::Ipv4(a),
        IpAddr::V6(a) => IpAddress::Ipv6(a),
    }
}

fn endpoint_to_addr(endpoint: IpEndpoint) -> SocketAddr {
    SocketAddr::new(ip_from_smol(endpoint.addr), endpoint.port)
}

fn listen_endpoint(addr: SocketAddr, port: u16) -> IpListenEndpoint {
    let ip = addr.ip();
    IpListenEndpoint { addr: (!ip.is_unspecified()).then(|| ip_to_smol(ip)), port }
}

const NO_TIMEOUT: u64 = u64::MAX;

/// A socket's place in a stack, and its per-socket options.
pub struct Handle {
    pub(crate) stack: &'static Stack,
    pub(crate) slot: usize,
    pub(crate) generation: u64,
    pub(crate) shared: Arc<Shared>,
    nonblocking: AtomicBool,
    read_timeout_ns: AtomicU64,
    write_timeout_ns: AtomicU64,
    read_shut: AtomicBool,
}

impl Handle {
    fn new(stack: &'static Stack, inner: &Inner, slot: usize) -> Handle {
        let entry = &inner.slots[slot];
        Handle {
            stack,
            slot,
            generation: entry.generation,
            shared: entry.shared.clone(),
            nonblocking: AtomicBool::new(false),
            read_timeout_ns: AtomicU64::new(NO_TIMEOUT),
            write_timeout_ns: AtomicU64::new(NO_TIMEOUT),
            read_shut: AtomicBool::new(false),
        }
    }

    /// `EBADF` when the slot was freed under us.
    pub(crate) fn check(&self) -> Result<()> {
        slot_of(&mut self.stack.lock(), self.slot, self.generation).map(|_| ())
    }

    fn deadline(timeout: &AtomicU64) -> Option<Instant> {
        match timeout.load(Ordering::Relaxed) {
            NO_TIMEOUT => None,
            ns => Some(Instant::now() + Duration::from_nanos(ns)),
        }
    }

    fn set_timeout(timeout: &AtomicU64, value: Option<Duration>) -> Result<()> {
        match value {
            Some(d) if d.is_zero() => Err(Errno::EINVAL), // as std: a zero timeout is an error
            Some(d) => {
                timeout.store(u64::try_from(d.as_nanos()).unwrap_or(NO_TIMEOUT - 1), Ordering::Relaxed);
                Ok(())
            }
            None => {
                timeout.store(NO_TIMEOUT, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    fn nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }

    /// Runs `attempt` on this socket's slot until it succeeds, fails, or the read timeout;
    /// once only when the socket is non-blocking or `dont_wait` (`MSG_DONTWAIT`).
    fn block<T>(&self, dont_wait: bool, deadline: Option<Instant>, mut attempt: impl FnMut(&mut Inner, usize) -> Result<Option<T>>) -> Result<T> {
        let (slot, generation) = (self.slot, self.generation);
        self.stack.block_on(&self.shared, dont_wait || self.nonblocking(), deadline, |inner| {
            slot_of(inner, slot, generation)?;
            attempt(inner, slot)
        })
    }
}

impl Handle {
    /// The socket's readiness now (for a poll layer outside this crate, such as posix-shim's).
    pub fn readiness(&self) -> Readiness {
        readiness(&mut self.stack.lock(), self.slot, self.generation)
    }

    /// How many times the socket has changed state: an edge-triggered watcher reports it again
    /// only when this moved.
    pub fn changes(&self) -> u64 {
        self.shared.changes()
    }

    /// Threads blocked on this socket wait here (a poll layer may wait on it too).
    pub fn waiters(&self) -> &libos_core::blocking::WaitQueue {
        &self.shared.waiters
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let (slot, generation) = (self.slot, self.generation);
        self.stack.with(|inner| {
            if slot_of(inner, slot, generation).is_ok() {
                inner.release(slot);
            }
        });
    }
}

/// Whether a socket may bind `ip`: the unspecified address, one of the interface's, or a
/// loopback address (accepted as Linux does; with no loopback device nothing arrives there).
fn bindable(inner: &Inner, ip: IpAddr) -> bool {
    ip.is_unspecified() || ip.is_loopback() || inner.iface.has_ip_addr(ip_to_smol(ip))
}

/// Slot `slot` if it still has generation `generation`.
fn slot_of(inner: &mut Inner, slot: usize, generation: u64) -> Result<&mut Slot> {
    match inner.slots.get_mut(slot) {
        Some(entry) if entry.generation == generation && !matches!(entry.kind, Kind::Free) => Ok(entry),
        _ => Err(Errno::EBADF),
    }
}

fn tcp_of(inner: &mut Inner, slot: usize) -> Result<&mut tcp::Socket<'static>> {
    inner.slots[slot].tcp().ok_or(Errno::ENOTSOCK)
}

/// The readiness of slot `slot` (for [`crate::poller::Poller`]).
pub fn readiness(inner: &mut Inner, slot: usize, generation: u64) -> Readiness {
    let Ok(entry) = slot_of(inner, slot, generation) else {
        return Readiness { hangup: true, error: true, ..Readiness::default() };
    };
    if let Kind::Listener(listener) = &entry.kind {
        return Readiness { readable: !listener.ready.is_empty(), ..Readiness::default() };
    }
    let error = entry.error.is_some();
    if let Some(socket) = entry.tcp() {
        let closed = socket.state() == tcp::State::Closed;
        return Readiness {
            readable: socket.can_recv() || !socket.may_recv() && socket.state() != tcp::State::SynSent || error,
            writable: socket.can_send() || error || closed,
            hangup: closed || !socket.may_recv() && !socket.may_send() && socket.state() != tcp::State::SynSent,
            error,
            peer_closed: !socket.may_recv() && !matches!(socket.state(), tcp::State::SynSent | tcp::State::SynReceived | tcp::State::Listen),
        };
    }
    if let Some(socket) = entry.udp() {
        return Readiness { readable: socket.can_recv(), writable: socket.can_send(), ..Readiness::default() };
    }
    Readiness::default()
}

/// A TCP socket listening for connections.
pub struct TcpListener {
    handle: Handle,
}

impl TcpListener {
    /// Listens on `addr` (port 0: a free port) with room for `backlog` connections not yet
    /// accepted (1..=[`MAX_BACKLOG`]).
    pub fn bind_on(stack: &'static Stack, addr: SocketAddr, backlog: usize) -> Result<TcpListener> {
        TcpListener::reserve_on(stack, addr, backlog.clamp(1, MAX_BACKLOG))
    }

    /// Takes `addr`'s port without listening yet (a POSIX `bind` before `listen`): a SYN to
    /// it is refused until [`TcpListener::listen`].
    pub fn bind_only_on(stack: &'static Stack, addr: SocketAddr) -> Result<TcpListener> {
        TcpListener::reserve_on(stack, addr, 0)
    }

    /// Starts listening (or changes the backlog: 1..=[`MAX_BACKLOG`]).
    pub fn listen(&self, backlog: usize) -> Result<()> {
        let (slot, generation) = (self.handle.slot, self.handle.generation);
        self.handle.stack.with(|inner| {
            let Kind::Listener(l) = &mut slot_of(inner, slot, generation)?.kind else { return Err(Errno::EINVAL) };
            l.backlog = backlog.clamp(1, MAX_BACKLOG);
            inner.replenish(slot);
            Ok(())
        })
    }

    fn reserve_on(stack: &'static Stack, addr: SocketAddr, backlog: usize) -> Result<TcpListener> {
        let handle = stack.with(|inner| {
            let port = match addr.port() {
                0 => inner.ephemeral_port(false)?,
                port if inner.listeners.contains_key(&port) => return Err(Errno::EADDRINUSE),
                port => port,
            };
            if !bindable(inner, addr.ip()) {
                return Err(Errno::EADDRNOTAVAIL);
            }
            let endpoint = listen_endpoint(addr, port);
            let slot = inner.allocate(Kind::Listener(Listener { endpoint, backlog, idle: Vec::new(), ready: VecDeque::new(), members: 0 }));
            inner.slots[slot].port = Some(port);
            inner.listeners.insert(port, slot);
            inner.replenish(slot);
            Ok(Handle::new(stack, inner, slot))
        })?;
        Ok(TcpListener { handle })
    }

    /// Takes the next established connection, waiting for one unless non-blocking (`EAGAIN`).
    pub fn accept(&self) -> Result<(TcpStream, SocketAddr)> {
        let stack = self.handle.stack;
        let (slot, remote) = self.handle.block(false, None, |inner, listener| {
            let Kind::Listener(l) = &mut inner.slots[listener].kind else { return Err(Errno::EINVAL) };
            let Some(conn) = l.ready.pop_front() else { return Ok(None) };
            l.members -= 1;
            let entry = &mut inner.slots[conn];
            entry.parent = None;
            entry.user = true;
            let remote = entry.tcp().and_then(|s| s.remote_endpoint());
            inner.replenish(listener);
            Ok(Some((conn, remote)))
        })?;
        let handle = stack.with(|inner| Handle::new(stack, inner, slot));
        let remote = remote.map(endpoint_to_addr).unwrap_or_else(|| SocketAddr::new(IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED), 0));
        Ok((TcpStream { handle }, remote))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        let mut inner = self.handle.stack.lock();
        let entry = slot_of(&mut inner, self.handle.slot, self.handle.generation)?;
        let Kind::Listener(l) = &entry.kind else { return Err(Errno::EINVAL) };
        let ip = l.endpoint.addr.map_or(IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED), ip_from_smol);
        Ok(SocketAddr::new(ip, l.endpoint.port))
    }

    /// Non-blocking mode: `accept` returns `EAGAIN` instead of waiting.
    pub fn set_nonblocking(&self, on: bool) -> Result<()> {
        self.handle.nonblocking.store(on, Ordering::Relaxed);
        Ok(())
    }
}

impl Source for TcpListener {
    fn handle(&self) -> &Handle {
        &self.handle
    }
}

/// A TCP connection.
pub struct TcpStream {
    handle: Handle,
}

impl TcpStream {
    /// Starts connecting to `addr` without waiting (the stream becomes writable once
    /// connected, as a non-blocking `connect` that gave `EINPROGRESS`).
    pub fn connect_start_on(stack: &'static Stack, addr: SocketAddr) -> Result<TcpStream> {
        TcpStream::connect_start_from(stack, None, addr)
    }

    /// As [`TcpStream::connect_start_on`], from local port `local_port` (`None`: a free one;
    /// `EADDRINUSE` when a listener or another connection holds it).
    pub fn connect_start_from(stack: &'static Stack, local_port: Option<u16>, addr: SocketAddr) -> Result<TcpStream> {
        if addr.ip().is_unspecified() || addr.port() == 0 {
            return Err(Errno::EINVAL);
        }
        let handle = stack.with(|inner| {
            let port = match local_port {
                None | Some(0) => inner.ephemeral_port(false)?,
                Some(port) if inner.listeners.contains_key(&port) || inner.tcp_client_ports.contains_key(&port) => return Err(Errno::EADDRINUSE),
                Some(port) => port,
            };
            let mut socket = inner.new_tcp_socket()?;
            socket.connect(inner.iface.context(), (ip_to_smol(addr.ip()), addr.port()), port).map_err(|_| Errno::ENETUNREACH)?;
            let slot = inner.allocate(Kind::Tcp);
            let handle = inner.slots[slot].set.add(socket);
            inner.slots[slot].handle = Some(handle);
            inner.slots[slot].port = Some(port);
            inner.slots[slot].last_state = tcp::State::SynSent;
            *inner.tcp_client_ports.entry(port).or_insert(0) += 1;
            inner.egress(slot);
            Ok(Handle::new(stack, inner, slot))
        })?;
        Ok(TcpStream { handle })
    }

    /// Connects to `addr`, waiting up to `timeout` (`ETIMEDOUT`) for the handshake.
    pub fn connect_on(stack: &'static Stack, addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
        let stream = TcpStream::connect_start_on(stack, addr)?;
        match stream.wait_connected(Some(Instant::now() + timeout)) {
            Ok(()) => Ok(stream),
            Err(Errno::EAGAIN) => Err(Errno::ETIMEDOUT),
            Err(e) => Err(e),
        }
    }

    /// Waits until the handshake is done (`Ok`), failed (`ECONNREFUSED`, `ECONNRESET`), or
    /// `deadline` passed (`EAGAIN`); non-blocking: `EAGAIN` while it is in progress.
    pub fn wait_connected(&self, deadline: Option<Instant>) -> Result<()> {
        self.wait_connected_with(false, deadline)
    }

    /// As [`TcpStream::wait_connected`]; only checks when `dont_wait`.
    pub fn wait_connected_with(&self, dont_wait: bool, deadline: Option<Instant>) -> Result<()> {
        self.handle.block(dont_wait, deadline, |inner, slot| {
            let error = inner.slots[slot].error;
            let socket = tcp_of(inner, slot)?;
            match socket.state() {
                tcp::State::SynSent | tcp::State::SynReceived => Ok(None),
                tcp::State::Closed => Err(error.unwrap_or(Errno::ECONNREFUSED)),
                _ => Ok(Some(())),
            }
        })
    }

    /// Reads what has arrived (at least one byte, waiting for it); `Ok(0)` at end of stream.
    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        self.receive(buf, false, false)
    }

    /// As [`TcpStream::read`], leaving the data queued.
    pub fn peek(&self, buf: &mut [u8]) -> Result<usize> {
        self.receive(buf, true, false)
    }

    /// As [`TcpStream::read`] (or [`TcpStream::peek`] with `peek`), without waiting when
    /// `dont_wait` (`EAGAIN`).
    pub fn receive(&self, buf: &mut [u8], peek: bool, dont_wait: bool) -> Result<usize> {
        if buf.is_empty() || self.handle.read_shut.load(Ordering::Relaxed) {
            return Ok(0);
        }
        let deadline = Handle::deadline(&self.handle.read_timeout_ns);
        self.handle.block(dont_wait, deadline, |inner, slot| {
            let error = inner.slots[slot].error;
            let socket = tcp_of(inner, slot)?;
            if socket.can_recv() {
                let n = if peek { socket.peek_slice(buf) } else { socket.recv_slice(buf) }.map_err(|_| Errno::ENOTCONN)?;
                if !peek {
                    inner.egress(slot); // a window update if the window opened
                }
                return Ok(Some(n));
            }
            if let Some(e) = error {
                return Err(e);
            }
            if !socket.may_recv() && socket.state() != tcp::State::SynSent {
                return Ok(Some(0));
            }
            Ok(None)
        })
    }

    /// Queues some of `buf` for sending (waiting for room); returns how much.
    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        self.send(buf, false)
    }

    /// As [`TcpStream::write`], without waiting for room when `dont_wait` (`EAGAIN`).
    pub fn send(&self, buf: &[u8], dont_wait: bool) -> Result<usize> {
        self.send_vectored(&[buf], dont_wait)
    }

    /// As [`TcpStream::send`] for the concatenation of `bufs` (`writev`): queues as much as
    /// fits, in order, and transmits once, so the pieces leave in the same segments as one
    /// buffer would (with `TCP_NODELAY`, one piece per call would mean one segment each).
    pub fn send_vectored(&self, bufs: &[&[u8]], dont_wait: bool) -> Result<usize> {
        if bufs.iter().all(|b| b.is_empty()) {
            return Ok(0);
        }
        let deadline = Handle::deadline(&self.handle.write_timeout_ns);
        self.handle.block(dont_wait, deadline, |inner, slot| {
            let error = inner.slots[slot].error;
            let socket = tcp_of(inner, slot)?;
            if let Some(e) = error {
                return Err(e);
            }
            if !socket.may_send() {
                return Err(if socket.state() == tcp::State::SynSent { Errno::ENOTCONN } else { Errno::EPIPE });
            }
            if !socket.can_send() {
                return Ok(None);
            }
            let mut n = 0;
            for buf in bufs {
                let sent = socket.send_slice(buf).map_err(|_| Errno::EPIPE)?;
                n += sent;
                if sent < buf.len() {
                    break;
                }
            }
            inner.egress(slot);
            Ok(Some(n))
        })
    }

    /// Writes all of `buf`.
    pub fn write_all(&self, mut buf: &[u8]) -> Result<()> {
        while !buf.is_empty() {
            let n = self.write(buf)?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Reads exactly `buf.len()` bytes; `ENODATA` when the stream ends first.
    pub fn read_exact(&self, mut buf: &mut [u8]) -> Result<()> {
        while !buf.is_empty() {
            match self.read(buf)? {
                0 => return Err(Errno::ENODATA),
                n => buf = &mut buf[n..],
            }
        }
        Ok(())
    }

    /// Shuts down reading, writing (FIN after the queued data), or both.
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            self.handle.read_shut.store(true, Ordering::Relaxed);
        }
        let (slot, generation) = (self.handle.slot, self.handle.generation);
        self.handle.stack.with(|inner| {
            let error = slot_of(inner, slot, generation)?.error;
            let socket = tcp_of(inner, slot)?;
            if socket.state() == tcp::State::SynSent || socket.state() == tcp::State::Closed && error.is_none() {
                return Err(Errno::ENOTCONN);
            }
            if matches!(how, Shutdown::Write | Shutdown::Both) {
                socket.close();
                inner.egress(slot);
            }
            Ok(())
        })
    }

    fn with_socket<R>(&self, f: impl FnOnce(&mut tcp::Socket<'static>) -> R) -> Result<R> {
        let (slot, generation) = (self.handle.slot, self.handle.generation);
        self.handle.stack.with(|inner| {
            slot_of(inner, slot, generation)?;
            Ok(f(tcp_of(inner, slot)?))
        })
    }

    /// Bytes received and not yet read (`FIONREAD`).
    pub fn received_len(&self) -> Result<usize> {
        self.with_socket(|s| s.recv_queue())
    }

    /// Bytes queued for sending and not yet acknowledged (`TIOCOUTQ`).
    pub fn unsent_len(&self) -> Result<usize> {
        self.with_socket(|s| s.send_queue())
    }

    /// The receive and send buffer sizes.
    pub fn buffer_sizes(&self) -> Result<(usize, usize)> {
        self.with_socket(|s| (s.recv_capacity(), s.send_capacity()))
    }

    /// Sends small writes at once (disables Nagle's algorithm) when `on`.
    pub fn set_nodelay(&self, on: bool) -> Result<()> {
        self.with_socket(|s| s.set_nagle_enabled(!on))
    }

    /// Whether Nagle's algorithm is off.
    pub fn nodelay(&self) -> Result<bool> {
        self.with_socket(|s| !s.nagle_enabled())
    }

    /// TCP keep-alive probes every `interval` of idleness (`None`: off).
    pub fn set_keepalive(&self, interval: Option<Duration>) -> Result<()> {
        self.with_socket(|s| s.set_keep_alive(interval.map(|d| smoltcp::time::Duration::from_micros(d.as_micros() as u64))))
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        self.with_socket(|s| s.remote_endpoint())?.map(endpoint_to_addr).ok_or(Errno::ENOTCONN)
    }

    /// Our address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.with_socket(|s| s.local_endpoint())?.map(endpoint_to_addr).ok_or(Errno::ENOTCONN)
    }

    /// How long `read` waits (`None`: for ever) before `EAGAIN`. `EINVAL` for zero.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        Handle::set_timeout(&self.handle.read_timeout_ns, timeout)
    }

    /// How long `write` waits for room (`None`: for ever) before `EAGAIN`. `EINVAL` for zero.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        Handle::set_timeout(&self.handle.write_timeout_ns, timeout)
    }

    /// Non-blocking mode: calls that would wait return `EAGAIN`.
    pub fn set_nonblocking(&self, on: bool) -> Result<()> {
        self.handle.nonblocking.store(on, Ordering::Relaxed);
        Ok(())
    }
}

impl Source for TcpStream {
    fn handle(&self) -> &Handle {
        &self.handle
    }
}

/// A UDP socket.
pub struct UdpSocket {
    handle: Handle,
    /// The peer of `connect` (for `send`/`recv`).
    peer: libos_core::sync::IrqSpinLock<Option<SocketAddr>>,
}

impl UdpSocket {
    /// Binds `addr` (port 0: a free port).
    pub fn bind_on(stack: &'static Stack, addr: SocketAddr) -> Result<UdpSocket> {
        let handle = stack.with(|inner| {
            let port = match addr.port() {
                0 => inner.ephemeral_port(true)?,
                port if inner.udp_ports.contains_key(&port) => return Err(Errno::EADDRINUSE),
                port => port,
            };
            if !bindable(inner, addr.ip()) {
                return Err(Errno::EADDRNOTAVAIL);
            }
            let buffer = || -> Result<udp::PacketBuffer<'static>> {
                Ok(udp::PacketBuffer::new(alloc::vec![udp::PacketMetadata::EMPTY; UDP_PACKETS], crate::stack::zeroed(UDP_BYTES)?))
            };
            let mut socket = udp::Socket::new(buffer()?, buffer()?);
            socket.bind(listen_endpoint(addr, port)).map_err(|_| Errno::EINVAL)?;
            let slot = inner.allocate(Kind::Udp);
            let handle = inner.slots[slot].set.add(socket);
            inner.slots[slot].handle = Some(handle);
            inner.slots[slot].port = Some(port);
            inner.udp_ports.insert(port, slot);
            Ok(Handle::new(stack, inner, slot))
        })?;
        Ok(UdpSocket { handle, peer: libos_core::sync::IrqSpinLock::new(None) })
    }

    /// Sends one datagram to `addr`. `EMSGSIZE` beyond one frame's payload.
    pub fn send_to(&self, buf: &[u8], addr: SocketAddr) -> Result<usize> {
        self.send_to_with(buf, addr, false)
    }

    /// As [`UdpSocket::send_to`], without waiting for room when `dont_wait` (`EAGAIN`).
    pub fn send_to_with(&self, buf: &[u8], addr: SocketAddr, dont_wait: bool) -> Result<usize> {
        let limit = if addr.is_ipv4() { UDP_MAX_PAYLOAD_V4 } else { UDP_MAX_PAYLOAD_V6 };
        if buf.len() > limit {
            return Err(Errno::EMSGSIZE);
        }
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(Errno::EINVAL);
        }
        let remote = IpEndpoint::new(ip_to_smol(addr.ip()), addr.port());
        let deadline = Handle::deadline(&self.handle.write_timeout_ns);
        self.handle.block(dont_wait, deadline, |inner, slot| {
            let socket = inner.slots[slot].udp().ok_or(Errno::ENOTSOCK)?;
            match socket.send_slice(buf, remote) {
                Ok(()) => {
                    inner.egress(slot);
                    Ok(Some(buf.len()))
                }
                Err(udp::SendError::BufferFull) => Ok(None),
                Err(udp::SendError::Unaddressable) => Err(Errno::ENETUNREACH),
            }
        })
    }

    /// Receives one datagram (truncated to `buf`, as Linux does) and its sender.
    pub fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr)> {
        self.receive(buf, false, false).map(|(n, _, from)| (n, from))
    }

    /// As [`UdpSocket::recv_from`], leaving the datagram queued.
    pub fn peek_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr)> {
        self.receive(buf, true, false).map(|(n, _, from)| (n, from))
    }

    /// Receives (or peeks at) one datagram without waiting when `dont_wait` (`EAGAIN`):
    /// the bytes copied, the datagram's whole length (more when it was truncated: `MSG_TRUNC`),
    /// and its sender.
    pub fn receive(&self, buf: &mut [u8], peek: bool, dont_wait: bool) -> Result<(usize, usize, SocketAddr)> {
        let deadline = Handle::deadline(&self.handle.read_timeout_ns);
        let peer = *self.peer.lock();
        self.handle.block(dont_wait, deadline, |inner, slot| {
            let socket = inner.slots[slot].udp().ok_or(Errno::ENOTSOCK)?;
            loop {
                let (data, meta) = match if peek { socket.peek().map(|(d, m)| (d, *m)) } else { socket.recv() } {
                    Ok((data, meta)) => (data, meta.endpoint),
                    Err(_) => return Ok(None),
                };
                let from = endpoint_to_addr(meta);
                if peer.is_some_and(|p| p != from) && !peek {
                    continue; // connected: datagrams from others are dropped, as Linux does
                }
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                return Ok(Some((n, data.len(), from)));
            }
        })
    }

    /// Sets the default peer for [`UdpSocket::send`] and filters what [`UdpSocket::recv`] takes.
    pub fn connect(&self, addr: SocketAddr) -> Result<()> {
        *self.peer.lock() = Some(addr);
        Ok(())
    }

    /// Forgets the peer of [`UdpSocket::connect`] (`connect` with `AF_UNSPEC`).
    pub fn disconnect(&self) {
        *self.peer.lock() = None;
    }

    /// The peer of [`UdpSocket::connect`].
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        (*self.peer.lock()).ok_or(Errno::ENOTCONN)
    }

    /// The length of the next queued datagram (0 when none: `FIONREAD`).
    pub fn next_datagram_len(&self) -> Result<usize> {
        let (slot, generation) = (self.handle.slot, self.handle.generation);
        self.handle.stack.with(|inner| {
            slot_of(inner, slot, generation)?;
            let socket = inner.slots[slot].udp().ok_or(Errno::ENOTSOCK)?;
            Ok(socket.peek().map_or(0, |(data, _)| data.len()))
        })
    }

    /// Sends to the connected peer (`EDESTADDRREQ` without one).
    pub fn send(&self, buf: &[u8]) -> Result<usize> {
        let peer = (*self.peer.lock()).ok_or(Errno::EDESTADDRREQ)?;
        self.send_to(buf, peer)
    }

    /// Receives from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_from(buf).map(|(n, _)| n)
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        let (slot, generation) = (self.handle.slot, self.handle.generation);
        self.handle.stack.with(|inner| {
            slot_of(inner, slot, generation)?;
            let endpoint = inner.slots[slot].udp().ok_or(Errno::ENOTSOCK)?.endpoint();
            let ip = endpoint.addr.map_or(IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED), ip_from_smol);
            Ok(SocketAddr::new(ip, endpoint.port))
        })
    }

    /// How long receiving waits (`None`: for ever) before `EAGAIN`.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        Handle::set_timeout(&self.handle.read_timeout_ns, timeout)
    }

    /// How long sending waits for room before `EAGAIN`.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        Handle::set_timeout(&self.handle.write_timeout_ns, timeout)
    }

    /// Non-blocking mode.
    pub fn set_nonblocking(&self, on: bool) -> Result<()> {
        self.handle.nonblocking.store(on, Ordering::Relaxed);
        Ok(())
    }
}

impl Source for UdpSocket {
    fn handle(&self) -> &Handle {
        &self.handle
    }
}

/// The std-shaped constructors, on the machine's network interface ([`crate::default_stack`];
/// `ENETDOWN` when the machine has no NIC).
impl TcpListener {
    /// Listens on `addr` with [`DEFAULT_BACKLOG`].
    pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
        TcpListener::bind_on(crate::default_stack()?, addr, DEFAULT_BACKLOG)
    }

    /// Listens on `addr` with room for `backlog` connections not yet accepted (1..=4096).
    pub fn bind_with_backlog(addr: SocketAddr, backlog: usize) -> Result<TcpListener> {
        TcpListener::bind_on(crate::default_stack()?, addr, backlog)
    }
}

impl TcpStream {
    /// Connects to `addr` (waiting up to [`CONNECT_TIMEOUT`]).
    pub fn connect(addr: SocketAddr) -> Result<TcpStream> {
        TcpStream::connect_on(crate::default_stack()?, addr, CONNECT_TIMEOUT)
    }

    /// Connects to `addr`, waiting up to `timeout` (`ETIMEDOUT`).
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> Result<TcpStream> {
        if timeout.is_zero() {
            return Err(Errno::EINVAL);
        }
        TcpStream::connect_on(crate::default_stack()?, *addr, timeout)
    }
}

impl UdpSocket {
    /// Binds `addr` (port 0: a free port).
    pub fn bind(addr: SocketAddr) -> Result<UdpSocket> {
        UdpSocket::bind_on(crate::default_stack()?, addr)
    }
}
