//! `AF_INET`/`AF_INET6` sockets over `libos::net` (feature `net`): a POSIX socket's life
//! (created, bound, listening or connecting, connected) on top of libos-net's objects, which
//! only exist from `listen`/`connect`/the first datagram on.
//!
//! - TCP `bind` takes the port at once through a listener that does not listen yet, so
//!   `EADDRINUSE` and the port of `bind(port 0)` are known at `bind`, as on Linux; `listen`
//!   turns it on. `connect` after `bind` connects from the bound port.
//! - Blocking calls wait inside libos-net, which ends the wait with `EINTR` when the thread
//!   has a signal to take (posix-shim installs the hook at start); `O_NONBLOCK` is kept on
//!   the libos-net object too, `MSG_DONTWAIT` is per call.
//! - A socket of family `AF_INET6` talks IPv4 through IPv4-mapped addresses
//!   ([`crate::sockaddr`]); `IPV6_V6ONLY` is recorded but not enforced (a `::` listener takes
//!   IPv4 connections either way).

use super::{MsgFlags, Options, Received};
use crate::events::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDHUP};
use crate::sockaddr::{self, AF_INET6, SockAddr};
use alloc::sync::Arc;
use core::net::SocketAddr;
use core::sync::atomic::{AtomicBool, Ordering};
use libos::net::{Shutdown, Source, TcpListener, TcpStream, UdpSocket};
use libos::sync::Mutex;
use libos::{Errno, Result};

enum State {
    /// Not listening or connected; TCP: `bound` holds the port reservation of `bind`.
    Fresh { bound: Option<Arc<TcpListener>> },
    Listening(Arc<TcpListener>),
    /// Connecting (a non-blocking `connect` gave `EINPROGRESS`) or connected.
    Stream { stream: Arc<TcpStream>, connected: bool },
    Udp(Arc<UdpSocket>),
}

/// The pieces of `parts` after the first `skip` bytes.
fn remaining<'a>(parts: &[&'a [u8]], mut skip: usize) -> alloc::vec::Vec<&'a [u8]> {
    let mut out = alloc::vec::Vec::with_capacity(parts.len());
    for part in parts {
        if skip >= part.len() {
            skip -= part.len();
            continue;
        }
        out.push(&part[skip..]);
        skip = 0;
    }
    out
}

/// An `AF_INET`/`AF_INET6` socket.
pub struct InetSocket {
    family: u16,
    stream: bool,
    state: Mutex<State>,
    nonblocking: AtomicBool,
    /// A failed connection's error, for `SO_ERROR` (cleared by reading it).
    error: Mutex<Option<Errno>>,
}

fn stack() -> Result<&'static libos::net::stack::stack::Stack> {
    libos::net::default_stack()
}

impl InetSocket {
    /// A new socket of `family`, stream (TCP) or datagram (UDP).
    pub fn new(family: u16, stream: bool, nonblocking: bool) -> InetSocket {
        let state = State::Fresh { bound: None };
        InetSocket { family, stream, state: Mutex::new(state), nonblocking: AtomicBool::new(nonblocking), error: Mutex::new(None) }
    }

    fn connected(family: u16, stream: Arc<TcpStream>, nonblocking: bool) -> InetSocket {
        let socket = InetSocket::new(family, true, nonblocking);
        *socket.state.lock() = State::Stream { stream, connected: true };
        socket
    }

    /// The socket's family.
    pub fn family(&self) -> u16 {
        self.family
    }

    /// Whether it is TCP.
    pub fn is_stream(&self) -> bool {
        self.stream
    }

    /// `O_NONBLOCK`, here and on the libos-net object.
    pub fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
        let _ = match &*self.state.lock() {
            State::Fresh { .. } => Ok(()),
            State::Listening(l) => l.set_nonblocking(on),
            State::Stream { stream, .. } => stream.set_nonblocking(on),
            State::Udp(udp) => udp.set_nonblocking(on),
        };
    }

    /// Whether `O_NONBLOCK` is set.
    pub fn is_nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }

    fn check_family(&self, addr: &SocketAddr) -> Result<()> {
        if addr.is_ipv6() && self.family != AF_INET6 { Err(Errno::EAFNOSUPPORT) } else { Ok(()) }
    }

    /// `bind`.
    pub fn bind(&self, addr: SocketAddr, options: &Options) -> Result<()> {
        self.check_family(&addr)?;
        let mut state = self.state.lock();
        match &*state {
            State::Fresh { bound: None } => {}
            _ => return Err(Errno::EINVAL),
        }
        if self.stream {
            let listener = TcpListener::bind_only_on(stack()?, addr)?;
            listener.set_nonblocking(self.is_nonblocking())?;
            *state = State::Fresh { bound: Some(Arc::new(listener)) };
        } else {
            let udp = UdpSocket::bind_on(stack()?, addr)?;
            self.configure_udp(&udp, options)?;
            *state = State::Udp(Arc::new(udp));
        }
        Ok(())
    }

    fn configure_udp(&self, udp: &UdpSocket, options: &Options) -> Result<()> {
        udp.set_nonblocking(self.is_nonblocking())?;
        udp.set_read_timeout(options.receive_timeout)?;
        udp.set_write_timeout(options.send_timeout)
    }

    /// Applies the options a libos-net stream has to `stream` (a new connection).
    pub fn configure_stream(stream: &TcpStream, options: &Options, nonblocking: bool) -> Result<()> {
        stream.set_nonblocking(nonblocking)?;
        stream.set_read_timeout(options.receive_timeout)?;
        stream.set_write_timeout(options.send_timeout)?;
        stream.set_nodelay(options.no_delay)?;
        stream.set_keepalive(options.keepalive.then(|| options.keepalive_interval()))
    }

    /// Applies changed options to the libos-net object, if there is one yet.
    pub fn apply(&self, options: &Options) -> Result<()> {
        match &*self.state.lock() {
            State::Stream { stream, .. } => InetSocket::configure_stream(stream, options, self.is_nonblocking()),
            State::Udp(udp) => self.configure_udp(udp, options),
            _ => Ok(()),
        }
    }

    /// The UDP socket, bound to a free port first if it is not bound yet (as Linux autobinds
    /// on the first send).
    fn udp(&self, options: &Options) -> Result<Arc<UdpSocket>> {
        let mut state = self.state.lock();
        if let State::Udp(udp) = &*state {
            return Ok(udp.clone());
        }
        let udp = UdpSocket::bind_on(stack()?, sockaddr::unspecified(self.family, 0))?;
        self.configure_udp(&udp, options)?;
        let udp = Arc::new(udp);
        *state = State::Udp(udp.clone());
        Ok(udp)
    }

    /// `listen`.
    pub fn listen(&self, backlog: usize) -> Result<()> {
        if !self.stream {
            return Err(Errno::EOPNOTSUPP);
        }
        let mut state = self.state.lock();
        let listener = match &*state {
            State::Fresh { bound: Some(listener) } => listener.clone(),
            State::Fresh { bound: None } => {
                // Linux binds an unbound socket to a free port.
                let listener = TcpListener::bind_only_on(stack()?, sockaddr::unspecified(self.family, 0))?;
                listener.set_nonblocking(self.is_nonblocking())?;
                Arc::new(listener)
            }
            State::Listening(listener) => listener.clone(),
            _ => return Err(Errno::EINVAL),
        };
        listener.listen(backlog)?;
        *state = State::Listening(listener);
        Ok(())
    }

    /// `accept`: the next connection as a new socket (with `nonblocking` as `accept4` asks)
    /// and the peer's address.
    pub fn accept(&self, options: &Options, nonblocking: bool) -> Result<(InetSocket, SockAddr)> {
        let listener = match &*self.state.lock() {
            State::Listening(listener) => listener.clone(),
            _ => return Err(Errno::EINVAL),
        };
        let (stream, peer) = listener.accept()?;
        InetSocket::configure_stream(&stream, options, nonblocking)?;
        Ok((InetSocket::connected(self.family, Arc::new(stream), nonblocking), SockAddr::Inet(peer)))
    }

    /// `connect`: TCP starts the handshake and waits for it unless non-blocking
    /// (`EINPROGRESS`); UDP sets the peer (`AF_UNSPEC`: forgets it).
    pub fn connect(&self, addr: SockAddr, options: &Options) -> Result<()> {
        if !self.stream {
            let udp = self.udp(options)?;
            match addr {
                SockAddr::Inet(addr) => {
                    self.check_family(&addr)?;
                    udp.connect(addr)
                }
                _ => {
                    udp.disconnect();
                    Ok(())
                }
            }?;
            return Ok(());
        }
        let SockAddr::Inet(addr) = addr else { return Err(Errno::EAFNOSUPPORT) };
        self.check_family(&addr)?;
        let stream = {
            let mut state = self.state.lock();
            match &*state {
                State::Stream { connected: true, .. } => return Err(Errno::EISCONN),
                State::Stream { stream, connected: false } => {
                    if self.is_nonblocking() {
                        return Err(Errno::EALREADY);
                    }
                    stream.clone()
                }
                State::Listening(_) | State::Udp(_) => return Err(Errno::EINVAL),
                State::Fresh { bound } => {
                    let port = bound.as_ref().map(|l| l.local_addr().map(|a| a.port())).transpose()?;
                    *state = State::Fresh { bound: None }; // frees the port for the connection
                    let stream = TcpStream::connect_start_from(stack()?, port, addr)?;
                    InetSocket::configure_stream(&stream, options, self.is_nonblocking())?;
                    let stream = Arc::new(stream);
                    *state = State::Stream { stream: stream.clone(), connected: false };
                    if self.is_nonblocking() {
                        return Err(Errno::EINPROGRESS);
                    }
                    stream
                }
            }
        };
        let deadline = options.send_timeout.map(|t| libos::time::Instant::now() + t);
        match stream.wait_connected(deadline) {
            Ok(()) => {
                self.mark_connected();
                Ok(())
            }
            Err(Errno::EAGAIN) => Err(Errno::EINPROGRESS), // SO_SNDTIMEO passed: still connecting
            Err(Errno::EINTR) => Err(Errno::EINTR),        // it goes on; a later connect: EALREADY
            Err(e) => {
                *self.state.lock() = State::Fresh { bound: None };
                Err(e)
            }
        }
    }

    fn mark_connected(&self) {
        if let State::Stream { connected, .. } = &mut *self.state.lock() {
            *connected = true;
        }
    }

    /// Checks a connection in progress: settles it as connected, or as failed (the error
    /// kept for `SO_ERROR`, the socket unconnected again).
    fn settle(&self) {
        let stream = match &*self.state.lock() {
            State::Stream { stream, connected: false } => stream.clone(),
            _ => return,
        };
        match stream.wait_connected_with(true, None) {
            Ok(()) => self.mark_connected(),
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
            Err(e) => {
                *self.error.lock() = Some(e);
                *self.state.lock() = State::Fresh { bound: None };
            }
        }
    }

    /// `SO_ERROR`: the pending error, cleared.
    pub fn take_error(&self) -> Option<Errno> {
        self.settle();
        self.error.lock().take()
    }

    fn stream(&self) -> Result<Arc<TcpStream>> {
        // The hot path (every read and write of a connection): one lock.
        if let State::Stream { stream, connected: true } = &*self.state.lock() {
            return Ok(stream.clone());
        }
        self.settle();
        match &*self.state.lock() {
            State::Stream { stream, connected: true } => Ok(stream.clone()),
            State::Stream { connected: false, .. } => Err(Errno::EAGAIN),
            _ => Err(Errno::ENOTCONN),
        }
    }

    /// Sends `data` (TCP: to the connection; UDP: to `to` or the connected peer).
    pub fn send(&self, data: &[u8], to: Option<SocketAddr>, flags: MsgFlags, options: &Options) -> Result<usize> {
        if !self.stream {
            let udp = self.udp(options)?;
            return match to {
                Some(addr) => {
                    self.check_family(&addr)?;
                    udp.send_to_with(data, addr, flags.dont_wait)
                }
                None => udp.send_to_with(data, udp.peer_addr().map_err(|_| Errno::EDESTADDRREQ)?, flags.dont_wait),
            };
        }
        self.send_stream(&[data], flags)
    }

    /// TCP: sends the concatenation of `parts` (`writev`, `sendmsg`); a blocking socket waits
    /// until all of it is queued, as Linux does (a signal or an error after some bytes ends it
    /// with the count so far), a non-blocking one queues what fits.
    pub fn send_stream(&self, parts: &[&[u8]], flags: MsgFlags) -> Result<usize> {
        let stream = match self.stream() {
            Ok(stream) => stream,
            Err(Errno::EAGAIN) => return Err(Errno::EAGAIN),
            Err(_) => return Err(self.broken_pipe(flags)),
        };
        let all: usize = parts.iter().map(|p| p.len()).sum();
        let blocking = !flags.dont_wait && !self.is_nonblocking();
        let mut done = 0;
        loop {
            let rest = remaining(parts, done);
            match stream.send_vectored(&rest, flags.dont_wait) {
                Ok(n) => done += n,
                Err(_) if done > 0 => return Ok(done), // the error comes back on the next call
                Err(Errno::EPIPE) => return Err(self.broken_pipe(flags)),
                Err(e) => return Err(e),
            }
            if done >= all || !blocking {
                return Ok(done);
            }
        }
    }

    /// `EPIPE`, with `SIGPIPE` unless `MSG_NOSIGNAL`.
    fn broken_pipe(&self, flags: MsgFlags) -> Errno {
        if !flags.no_signal {
            crate::signal::raise_pipe();
        }
        Errno::EPIPE
    }

    /// Receives into `buf` (TCP: bytes; UDP: one datagram, truncated to `buf`).
    pub fn receive(&self, buf: &mut [u8], flags: MsgFlags, options: &Options) -> Result<Received> {
        if !self.stream {
            let udp = self.udp(options)?;
            let (len, full_len, from) = udp.receive(buf, flags.peek, flags.dont_wait)?;
            return Ok(Received { len, full_len, from: Some(SockAddr::Inet(from)) });
        }
        let stream = self.stream()?;
        let len = stream.receive(buf, flags.peek, flags.dont_wait)?;
        Ok(Received { len, full_len: len, from: None })
    }

    /// `shutdown`.
    pub fn shutdown(&self, read: bool, write: bool) -> Result<()> {
        let stream = self.stream()?;
        stream.shutdown(match (read, write) {
            (true, true) => Shutdown::Both,
            (true, false) => Shutdown::Read,
            _ => Shutdown::Write,
        })
    }

    /// The local address (the unspecified address and port 0 before `bind`).
    pub fn local_name(&self) -> Result<SockAddr> {
        let addr = match &*self.state.lock() {
            State::Fresh { bound: None } => sockaddr::unspecified(self.family, 0),
            State::Fresh { bound: Some(l) } | State::Listening(l) => l.local_addr()?,
            State::Stream { stream, .. } => stream.local_addr()?,
            State::Udp(udp) => udp.local_addr()?,
        };
        Ok(SockAddr::Inet(addr))
    }

    /// The peer's address (`ENOTCONN` when not connected).
    pub fn peer_name(&self) -> Result<SockAddr> {
        let addr = match &*self.state.lock() {
            State::Stream { stream, connected: true } => stream.peer_addr()?,
            State::Udp(udp) => udp.peer_addr()?,
            _ => return Err(Errno::ENOTCONN),
        };
        Ok(SockAddr::Inet(addr))
    }

    /// Whether it is listening (`SO_ACCEPTCONN`).
    pub fn is_listening(&self) -> bool {
        matches!(&*self.state.lock(), State::Listening(_))
    }

    /// TCP: the receive and send buffer sizes of the connection.
    pub fn buffer_sizes(&self) -> Option<(usize, usize)> {
        match &*self.state.lock() {
            State::Stream { stream, .. } => stream.buffer_sizes().ok(),
            _ => None,
        }
    }

    /// Bytes to read (TCP) or the next datagram's length (UDP): `FIONREAD`.
    pub fn available(&self) -> Result<usize> {
        match &*self.state.lock() {
            State::Stream { stream, .. } => stream.received_len(),
            State::Udp(udp) => udp.next_datagram_len(),
            State::Listening(_) => Err(Errno::EINVAL),
            State::Fresh { .. } => Ok(0),
        }
    }

    /// `poll` bits.
    pub fn ready(&self) -> i16 {
        let handle_readiness = |source: &dyn Source| source.handle().readiness();
        let state = self.state.lock();
        let r = match &*state {
            // Linux: an unconnected TCP socket is writable and hung up; a UDP one writable.
            State::Fresh { .. } => return if self.stream { POLLOUT | POLLHUP } else { POLLOUT },
            State::Listening(l) => handle_readiness(&**l),
            State::Stream { stream, .. } => handle_readiness(&**stream),
            State::Udp(udp) => handle_readiness(&**udp),
        };
        let mut bits = 0;
        if r.readable {
            bits |= POLLIN;
        }
        if r.writable {
            bits |= POLLOUT;
        }
        if r.peer_closed {
            bits |= POLLIN | POLLRDHUP;
        }
        if r.hangup {
            bits |= POLLHUP;
        }
        if r.error {
            bits |= POLLERR;
        }
        bits
    }

    /// How many times it changed (edge-triggered epoll).
    pub fn changes(&self) -> u64 {
        match &*self.state.lock() {
            State::Fresh { .. } => 0,
            State::Listening(l) => l.handle().changes(),
            State::Stream { stream, .. } => stream.handle().changes(),
            State::Udp(udp) => udp.handle().changes(),
        }
    }
}
